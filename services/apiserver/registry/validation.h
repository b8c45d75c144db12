// Per-kind validation of the built-in kinds, as Kubernetes' pkg/apis/*/validation does it: the
// same rules, field paths, error types and (where clients might read them) the same messages.
//
// Validation expects defaulted objects (SetDefaults in defaults.h), as Kubernetes' does: fields
// that defaulting always fills (restartPolicy, imagePullPolicy, ...) are Required when empty.
#ifndef CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_
#define CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_

#include "google/protobuf/message.h"
#include "lib/api/validation.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::apiserver::registry {

using capstan::api::FieldError;
using capstan::api::FieldErrors;

// Validates a new object of any built-in kind: its metadata (namespaced says whether the kind
// lives in a namespace) and its kind's own rules. Kinds without rules get metadata checks only.
FieldErrors Validate(const google::protobuf::Message& object, bool namespaced);

// Validates an update: the new object as Validate does, plus what may not change from old
// (metadata.name/namespace/uid always; per kind: selectors of workloads, most of a pod's spec,
// the data of immutable ConfigMaps and Secrets, a PriorityClass's value, ...).
FieldErrors ValidateUpdate(const google::protobuf::Message& object,
                           const google::protobuf::Message& old);

// The per-kind pieces, reusable where only part of an object is at hand (paths are prefixed with
// `path`, e.g. "spec" or "spec.template.spec").
void ValidatePodSpec(const capstan::core::v1::PodSpec& spec, const std::string& path,
                     FieldErrors* errs);
void ValidatePodTemplateSpec(const capstan::core::v1::PodTemplateSpec& template_spec,
                             const capstan::meta::v1::LabelSelector* selector,
                             const std::string& path, FieldErrors* errs);
// A resources block: names, quantity syntax, non-negative, requests <= limits.
void ValidateResourceRequirements(const capstan::core::v1::ResourceRequirements& resources,
                                  const std::string& path, FieldErrors* errs);

// Whether the labels satisfy the selector (matchLabels and matchExpressions, ANDed). An empty
// selector matches everything, as Kubernetes' labels.Everything() does.
bool SelectorMatches(const capstan::meta::v1::LabelSelector& selector,
                     const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace capstan::apiserver::registry

#endif  // CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_
