// Field validation shared by every kind: name formats and ObjectMeta, with Kubernetes' limits and
// messages (k8s.io/apimachinery/pkg/util/validation and pkg/api/validation), so clients that
// parse error text or causes see what they would see from a real API server.
#ifndef CAPSTAN_LIB_API_VALIDATION_H_
#define CAPSTAN_LIB_API_VALIDATION_H_

#include <string>
#include <string_view>
#include <vector>

#include "proto/meta.pb.h"

namespace capstan::api {

// The type strings are Kubernetes' CauseType values, so they go straight into
// StatusCause.reason.
inline constexpr char kFieldValueRequired[] = "FieldValueRequired";
inline constexpr char kFieldValueInvalid[] = "FieldValueInvalid";
inline constexpr char kFieldValueNotSupported[] = "FieldValueNotSupported";
inline constexpr char kFieldValueDuplicate[] = "FieldValueDuplicate";
inline constexpr char kFieldValueTooLong[] = "FieldValueTooLong";
inline constexpr char kFieldValueForbidden[] = "FieldValueForbidden";

struct FieldError {
  std::string type;       // one of the kFieldValue* constants above
  std::string field;      // "spec.template.spec.containers[0].name"
  std::string detail;     // human-readable reason, without the field or value
  std::string bad_value;  // the offending value as written; empty for Required/Forbidden/TooLong
};
using FieldErrors = std::vector<FieldError>;

// Kubernetes' text for one error, e.g.
//   metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must ...
//   metadata.name: Required value: name or generateName is required
std::string FormatFieldError(const FieldError& error);
// The errors' texts joined by ", " (Kubernetes' aggregate form, without the brackets it adds
// for more than one error).
std::string FormatFieldErrors(const FieldErrors& errors);

// Convenience constructors, so per-kind validation reads like Kubernetes' field.Invalid(...).
FieldError Required(std::string field, std::string detail);
FieldError Invalid(std::string field, std::string bad_value, std::string detail);
FieldError NotSupported(std::string field, std::string bad_value,
                        const std::vector<std::string>& valid_values);
FieldError Duplicate(std::string field, std::string bad_value);
FieldError TooLong(std::string field, size_t max_length);
FieldError Forbidden(std::string field, std::string detail);

// Each returns the problems with the value, empty when it is valid (Kubernetes' IsXxx functions).
inline constexpr size_t kDNS1123LabelMaxLength = 63;
inline constexpr size_t kDNS1123SubdomainMaxLength = 253;
inline constexpr size_t kQualifiedNameMaxLength = 63;
inline constexpr size_t kLabelValueMaxLength = 63;
inline constexpr size_t kTotalAnnotationSizeLimitBytes = 256 * 1024;

std::vector<std::string> IsDNS1123Subdomain(std::string_view value);
std::vector<std::string> IsDNS1123Label(std::string_view value);
// "[prefix/]name": prefix a DNS-1123 subdomain, name <= 63 of [-A-Za-z0-9_.] with
// alphanumeric ends.
std::vector<std::string> IsQualifiedName(std::string_view value);
// Empty, or <= 63 of [-A-Za-z0-9_.] with alphanumeric ends.
std::vector<std::string> IsValidLabelValue(std::string_view value);

// Allocation-free yes/no forms of the above, for hot paths (label selector matching, indexes).
bool IsDNS1123SubdomainValid(std::string_view value);
bool IsDNS1123LabelValid(std::string_view value);
bool IsQualifiedNameValid(std::string_view value);
bool IsLabelValueValid(std::string_view value);

// Validates name, generateName, namespace, labels, annotations, ownerReferences and finalizers
// under "metadata". name_is_dns_label: the kind's names must be DNS-1123 labels (Namespace,
// Service) rather than subdomains.
void ValidateObjectMeta(const capstan::meta::v1::ObjectMeta& meta, bool namespaced,
                        bool name_is_dns_label, FieldErrors* errs);

// Validates matchLabels and matchExpressions; `path` is the selector's field path
// ("spec.selector").
void ValidateLabelSelector(const capstan::meta::v1::LabelSelector& selector,
                           const std::string& path, FieldErrors* errs);

// Lower-level pieces of ValidateObjectMeta that specs reuse (pod template labels, ...).
void ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                    const std::string& path, FieldErrors* errs);
void ValidateAnnotations(const google::protobuf::Map<std::string, std::string>& annotations,
                         const std::string& path, FieldErrors* errs);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_VALIDATION_H_
