// Per-kind validation of the built-in kinds, as Kubernetes' pkg/apis/*/validation does it: the
// same rules, field paths, error types and (where clients might read them) the same messages.
//
// Validation expects defaulted objects (SetDefaults in defaults.h), as Kubernetes' does: fields
// that defaulting always fills (restartPolicy, imagePullPolicy, ...) are Required when empty.
#ifndef CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_
#define CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_

#include <cstdint>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "lib/api/validation.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::apiserver::registry {

using capstan::api::FieldError;
using capstan::api::FieldErrors;

// A field's path, rendered into text only when an error names it: a valid object, the common
// case, builds no strings (Kubernetes' field.Path, as a list of steps from the root). A path
// copies its steps, so a child outlives the path it came from; the names themselves are not
// copied: pass literals, or strings that outlive the path (a message's own fields and keys).
class FieldPath {
 public:
  // A root: "spec", "metadata.labels", or "" (the object itself).
  FieldPath(const char* root) { steps_.push_back({root, 0, kChild}); }         // NOLINT: implicit
  FieldPath(const std::string& root) { steps_.push_back({root, 0, kChild}); }  // NOLINT: implicit

  FieldPath Child(absl::string_view name) const { return With({name, 0, kChild}); }
  FieldPath Index(int index) const { return With({{}, index, kIndex}); }
  FieldPath Key(absl::string_view key) const { return With({key, 0, kKey}); }

  std::string String() const {
    std::string out;
    for (const Step& step : steps_) {
      switch (step.kind) {
        case kChild:
          if (!out.empty() && !step.name.empty()) out += '.';
          out.append(step.name.data(), step.name.size());
          break;
        case kIndex:
          absl::StrAppend(&out, "[", step.index, "]");
          break;
        case kKey:
          absl::StrAppend(&out, "[", step.name, "]");
          break;
      }
    }
    return out;
  }
  // FieldErrors take the path as text.
  operator std::string() const { return String(); }  // NOLINT: implicit by design

 private:
  enum Kind : uint8_t { kChild, kIndex, kKey };
  struct Step {
    absl::string_view name;
    int index;
    Kind kind;
  };
  FieldPath With(Step step) const {
    FieldPath child = *this;
    child.steps_.push_back(step);
    return child;
  }

  absl::InlinedVector<Step, 8> steps_;
};

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
void ValidatePodSpec(const capstan::core::v1::PodSpec& spec, const FieldPath& path,
                     FieldErrors* errs);
void ValidatePodTemplateSpec(const capstan::core::v1::PodTemplateSpec& template_spec,
                             const capstan::meta::v1::LabelSelector* selector,
                             const FieldPath& path, FieldErrors* errs);
// A resources block: names, quantity syntax, non-negative, requests <= limits.
void ValidateResourceRequirements(const capstan::core::v1::ResourceRequirements& resources,
                                  const FieldPath& path, FieldErrors* errs);

// Whether the labels satisfy the selector (matchLabels and matchExpressions, ANDed). An empty
// selector matches everything, as Kubernetes' labels.Everything() does.
bool SelectorMatches(const capstan::meta::v1::LabelSelector& selector,
                     const google::protobuf::Map<std::string, std::string>& labels);

}  // namespace capstan::apiserver::registry

#endif  // CAPSTAN_SERVICES_APISERVER_REGISTRY_VALIDATION_H_
