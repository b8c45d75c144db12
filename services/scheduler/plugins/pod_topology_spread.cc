// PodTopologySpread: DoNotSchedule constraints as a filter, ScheduleAnyway constraints as a score.
#include <algorithm>
#include <climits>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "lib/api/labels.h"
#include "services/scheduler/plugins/plugins.h"

namespace capstan::scheduler::plugins {
namespace {

using core::v1::TopologySpreadConstraint;

class Constraint {
 public:
  Constraint(const TopologySpreadConstraint& c, const Pod& pod)
      : topology_key_(c.topology_key()),
        max_skew_(c.max_skew()),
        min_domains_(c.has_min_domains() ? c.min_domains() : 1),
        honor_node_affinity_(!c.has_node_affinity_policy() || c.node_affinity_policy() != "Ignore"),
        honor_node_taints_(c.has_node_taints_policy() && c.node_taints_policy() == "Honor") {
    if (c.has_label_selector()) {
      absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(c.label_selector());
      if (selector.ok()) selector_ = *std::move(selector);
    }
    const auto& labels = pod.metadata().labels();
    for (const std::string& key : c.match_label_keys()) {
      auto it = labels.find(key);
      if (it != labels.end()) match_label_values_.emplace_back(key, it->second);
    }
  }

  const std::string& topology_key() const { return topology_key_; }
  int64_t max_skew() const { return max_skew_; }
  int64_t min_domains() const { return min_domains_; }
  bool honor_node_affinity() const { return honor_node_affinity_; }
  bool honor_node_taints() const { return honor_node_taints_; }

  bool Selects(const Pod& pod) const {
    if (!selector_) return false;
    const auto& labels = pod.metadata().labels();
    if (!selector_->Matches(labels)) return false;
    for (const auto& [key, value] : match_label_values_) {
      auto it = labels.find(key);
      if (it == labels.end() || it->second != value) return false;
    }
    return true;
  }

  // Existing pods on the node that count towards the spread: same namespace, not terminating.
  int64_t CountOn(const NodeInfo& node, const std::string& ns) const {
    int64_t count = 0;
    for (const PodInfo& existing : node.pods()) {
      if (existing.pod->metadata().namespace_() != ns) continue;
      if (existing.pod->metadata().has_deletion_timestamp()) continue;
      if (Selects(*existing.pod)) ++count;
    }
    return count;
  }

 private:
  std::string topology_key_;
  int64_t max_skew_;
  int64_t min_domains_;
  bool honor_node_affinity_;
  bool honor_node_taints_;
  std::optional<api::LabelSelector> selector_;
  std::vector<std::pair<std::string, std::string>> match_label_values_;
};

std::vector<Constraint> Constraints(const Pod& pod, bool hard) {
  std::vector<Constraint> out;
  for (const TopologySpreadConstraint& c : pod.spec().topology_spread_constraints()) {
    bool is_hard = c.when_unsatisfiable() != "ScheduleAnyway";
    if (is_hard == hard) out.emplace_back(c, pod);
  }
  return out;
}

const std::string* Label(const Node& node, const std::string& key) {
  const auto& labels = node.metadata().labels();
  auto it = labels.find(key);
  return it == labels.end() ? nullptr : &it->second;
}

bool HasAllKeys(const Node& node, const std::vector<Constraint>& constraints) {
  for (const Constraint& c : constraints) {
    if (Label(node, c.topology_key()) == nullptr) return false;
  }
  return true;
}

bool UntoleratedNoScheduleTaint(const Pod& pod, const Node& node) {
  for (const core::v1::Taint& taint : node.spec().taints()) {
    if (taint.effect() != "NoSchedule" && taint.effect() != "NoExecute") continue;
    if (!TolerationsTolerateTaint(pod.spec().tolerations(), taint)) return true;
  }
  return false;
}

// Whether a node's pods count for constraint `c` (nodeAffinityPolicy / nodeTaintsPolicy, and the
// node must carry every constraint's topology key).
bool Eligible(const Pod& pod, const Node& node, const Constraint& c,
              const std::vector<Constraint>& all) {
  if (!HasAllKeys(node, all)) return false;
  if (c.honor_node_affinity() && !PodMatchesNodeSelectorAndAffinityTerms(pod, node)) return false;
  if (c.honor_node_taints() && UntoleratedNoScheduleTaint(pod, node)) return false;
  return true;
}

// Matching pods per topology value of constraint `c` over the eligible nodes; every eligible
// domain is present, with 0 when it has no matching pod.
absl::flat_hash_map<std::string, int64_t> DomainCounts(const Pod& pod, const Constraint& c,
                                                       const std::vector<Constraint>& all,
                                                       const Snapshot& snapshot) {
  absl::flat_hash_map<std::string, int64_t> counts;
  for (const NodeInfo& info : snapshot.nodes()) {
    if (!Eligible(pod, info.node(), c, all)) continue;
    counts[*Label(info.node(), c.topology_key())] += c.CountOn(info, pod.metadata().namespace_());
  }
  return counts;
}

}  // namespace

Status PodTopologySpread::Filter(const PodToSchedule& to_schedule, const NodeInfo& node,
                                 const Snapshot& snapshot) const {
  const Pod& pod = to_schedule.pod;
  if (pod.spec().topology_spread_constraints().empty()) return Status();
  std::vector<Constraint> constraints = Constraints(pod, /*hard=*/true);
  for (const Constraint& c : constraints) {
    const std::string* value = Label(node.node(), c.topology_key());
    if (value == nullptr) {
      return Status::UnschedulableAndUnresolvable(kReasonTopologySpreadMissingLabel);
    }
    absl::flat_hash_map<std::string, int64_t> counts = DomainCounts(pod, c, constraints, snapshot);
    if (counts.empty()) continue;  // no domain to be skewed against
    int64_t min = INT64_MAX;
    for (const auto& [domain, count] : counts) min = std::min(min, count);
    if (static_cast<int64_t>(counts.size()) < c.min_domains()) min = 0;
    int64_t self = c.Selects(pod) ? 1 : 0;
    auto it = counts.find(*value);
    int64_t match = it == counts.end() ? 0 : it->second;
    if (match + self - min > c.max_skew()) return Status::Unschedulable(kReasonTopologySpread);
  }
  return Status();
}

int64_t PodTopologySpread::Score(const PodToSchedule& to_schedule, const NodeInfo& node,
                                 const Snapshot& snapshot) const {
  const Pod& pod = to_schedule.pod;
  if (pod.spec().topology_spread_constraints().empty()) return 0;
  std::vector<Constraint> constraints = Constraints(pod, /*hard=*/false);
  if (constraints.empty()) return 0;
  if (!HasAllKeys(node.node(), constraints)) return -1;  // ignored node
  double score = 0;
  for (const Constraint& c : constraints) {
    absl::flat_hash_map<std::string, int64_t> counts = DomainCounts(pod, c, constraints, snapshot);
    int64_t count;
    if (c.topology_key() == kLabelHostname) {
      count = c.CountOn(node, pod.metadata().namespace_());
    } else {
      auto it = counts.find(*Label(node.node(), c.topology_key()));
      count = it == counts.end() ? 0 : it->second;
    }
    // Kubernetes weighs each constraint by log(number of domains + 2), so constraints over many
    // small domains (hostname) do not drown ones over few large ones (zone).
    double weight = std::log(static_cast<double>(counts.size() + 2));
    score += static_cast<double>(count) * weight + static_cast<double>(c.max_skew() - 1);
  }
  return static_cast<int64_t>(std::round(score));
}

bool PodTopologySpread::SkipsFilter(const PodToSchedule& to_schedule, const Snapshot&) const {
  return Constraints(to_schedule.pod, /*hard=*/true).empty();
}

bool PodTopologySpread::SkipsScore(const PodToSchedule& to_schedule, const Snapshot&) const {
  return Constraints(to_schedule.pod, /*hard=*/false).empty();
}

void PodTopologySpread::NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>&,
                                        std::vector<int64_t>& scores) const {
  int64_t min = INT64_MAX;
  int64_t max = 0;
  for (int64_t score : scores) {
    if (score < 0) continue;
    min = std::min(min, score);
    max = std::max(max, score);
  }
  for (int64_t& score : scores) {
    if (score < 0) {
      score = 0;
    } else if (max == 0) {
      score = kMaxNodeScore;
    } else {
      score = kMaxNodeScore * (max + min - score) / max;
    }
  }
}

}  // namespace capstan::scheduler::plugins
