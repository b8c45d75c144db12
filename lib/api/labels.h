// Label selectors with the semantics of k8s.io/apimachinery/pkg/labels: the string form used in
// ?labelSelector= and the structured form in specs (matchLabels + matchExpressions).
//
// Matching runs for every object on every list and watch event, so Matches does no allocation:
// requirements are parsed once, their values kept sorted, and Gt/Lt bounds pre-parsed.
#ifndef CAPSTAN_LIB_API_LABELS_H_
#define CAPSTAN_LIB_API_LABELS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/meta.pb.h"

namespace capstan::api {

enum class LabelOperator {
  kIn,
  kNotIn,
  kEquals,        // "="
  kDoubleEquals,  // "==": same meaning as "=", kept so String() writes what was parsed
  kNotEquals,
  kExists,
  kDoesNotExist,
  kGreaterThan,  // values[0] is an integer; the label's value must parse as a larger one
  kLessThan,
};

// Parses a decimal int64 like Go's strconv.ParseInt(s, 10, 64) (optional sign, no spaces,
// overflow is an error). Allocation-free; shared with field selectors and tests.
std::optional<int64_t> ParseInt64(std::string_view text);

// One "key op values" term. Built only through LabelSelector, so it is always valid.
class LabelRequirement {
 public:
  const std::string& key() const { return key_; }
  LabelOperator op() const { return op_; }
  // Sorted and without duplicates (Kubernetes keeps them as a set).
  const std::vector<std::string>& values() const { return values_; }

  // `value` is the label's value, or nullptr when the object has no label with this key.
  bool Matches(const std::string* value) const;

  std::string String() const;

  friend bool operator==(const LabelRequirement& a, const LabelRequirement& b) {
    return a.op_ == b.op_ && a.key_ == b.key_ && a.values_ == b.values_;
  }
  friend bool operator!=(const LabelRequirement& a, const LabelRequirement& b) {
    return !(a == b);
  }
  friend bool operator<(const LabelRequirement& a, const LabelRequirement& b);

 private:
  friend class LabelSelector;
  LabelRequirement(std::string key, LabelOperator op, std::vector<std::string> values);

  bool HasValue(const std::string& value) const;

  std::string key_;
  LabelOperator op_;
  std::vector<std::string> values_;
  int64_t bound_ = 0;  // the parsed integer of values_[0] for kGreaterThan / kLessThan
};

class LabelSelector {
 public:
  // Selects everything.
  LabelSelector() = default;

  // Parses the string form: "app=nginx,tier in (web, api),!canary,env!=prod,version,
  // gpu notin (a)", also "==" and "x>3" / "x<5" (integers). Empty or blank text selects
  // everything. Errors carry Kubernetes' parser text plus the byte offset where parsing failed.
  static absl::StatusOr<LabelSelector> Parse(std::string_view text);

  // From the structured form used in specs, as metav1.LabelSelectorAsSelector: an empty selector
  // (no labels, no expressions) selects everything.
  static absl::StatusOr<LabelSelector> FromProto(const capstan::meta::v1::LabelSelector& selector);

  // Any map-like container of std::string -> std::string with find() and end():
  // google::protobuf::Map, std::map, absl::flat_hash_map, ...
  template <typename LabelMap>
  bool Matches(const LabelMap& labels) const {
    for (const LabelRequirement& requirement : requirements_) {
      auto it = labels.find(requirement.key());
      if (!requirement.Matches(it == labels.end() ? nullptr : &it->second)) return false;
    }
    return true;
  }

  // No requirements: selects everything.
  bool Empty() const { return requirements_.empty(); }

  // Canonical form: requirements sorted by key (then operator and values), values sorted;
  // Parse(String()) gives an equal selector. Empty selector: "".
  std::string String() const;

  // The value every matching object must have for `key` (from k=v, k==v or k in (v)), so a
  // cache can answer from an index instead of scanning.
  std::optional<std::string> RequiredValue(std::string_view key) const;

  const std::vector<LabelRequirement>& requirements() const { return requirements_; }

  friend bool operator==(const LabelSelector& a, const LabelSelector& b) {
    return a.requirements_ == b.requirements_;
  }
  friend bool operator!=(const LabelSelector& a, const LabelSelector& b) { return !(a == b); }

 private:
  // Validates as labels.NewRequirement does; sorts and dedups values.
  static absl::StatusOr<LabelRequirement> MakeRequirement(std::string key, LabelOperator op,
                                                          std::vector<std::string> values);
  void SortRequirements();

  friend class LabelSelectorParser;
  std::vector<LabelRequirement> requirements_;
};

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_LABELS_H_
