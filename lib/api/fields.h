// Field selectors with the semantics of k8s.io/apimachinery/pkg/fields: "metadata.name=x,
// spec.nodeName!=,status.phase==Running". Only =, == and != exist; values escape '\', ',' and
// '=' with a backslash.
#ifndef CAPSTAN_LIB_API_FIELDS_H_
#define CAPSTAN_LIB_API_FIELDS_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace capstan::api {

// EscapeValue / UnescapeValue from Kubernetes' fields package.
std::string EscapeFieldSelectorValue(std::string_view value);
absl::StatusOr<std::string> UnescapeFieldSelectorValue(std::string_view value);

class FieldSelector {
 public:
  enum class Operator {
    kEquals,  // "=" and "==" (Kubernetes folds both into selection.Equals)
    kNotEquals,
  };
  struct Requirement {
    std::string field;
    Operator op;
    std::string value;  // unescaped
    friend bool operator==(const Requirement& a, const Requirement& b) {
      return a.op == b.op && a.field == b.field && a.value == b.value;
    }
  };

  // Selects everything.
  FieldSelector() = default;

  // Empty text selects everything. Errors are Kubernetes' texts:
  // "invalid selector: 'a'; can't understand 'a'", "invalid field selector: invalid escape
  // sequence: \x", ...
  static absl::StatusOr<FieldSelector> Parse(std::string_view text);

  // InvalidArgument "field label not supported: spec.foo" for the first field (in canonical
  // order) that `supported` rejects. The server calls this once per request, so Matches can
  // stay check-free.
  absl::Status Validate(const std::function<bool(std::string_view field)>& supported) const;

  // `get(field)` returns the object's value for the field: std::optional<std::string> or
  // std::optional<std::string_view> (the latter lets Matches run without allocating). A field
  // without a value (nullopt) compares as "", as Kubernetes' fields.Set does for absent keys;
  // unsupported fields are Validate's concern.
  template <typename Getter>
  bool Matches(const Getter& get) const {
    for (const Requirement& requirement : requirements_) {
      const auto value = get(std::string_view(requirement.field));
      const bool equal = value ? std::string_view(*value) == requirement.value
                               : requirement.value.empty();
      if (equal != (requirement.op == Operator::kEquals)) return false;
    }
    return true;
  }

  // The value every matching object has for `field` (from field=v or field==v), for index use.
  std::optional<std::string> RequiredValue(std::string_view field) const;

  // Sorted by field, then operator and value.
  const std::vector<Requirement>& requirements() const { return requirements_; }

  bool Empty() const { return requirements_.empty(); }

  // Canonical: sorted, "==" written as "=", values escaped; re-parses to an equal selector.
  std::string String() const;

  friend bool operator==(const FieldSelector& a, const FieldSelector& b) {
    return a.requirements_ == b.requirements_;
  }
  friend bool operator!=(const FieldSelector& a, const FieldSelector& b) { return !(a == b); }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_FIELDS_H_
