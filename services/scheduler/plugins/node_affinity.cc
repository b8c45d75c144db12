// NodeAffinity: spec.nodeSelector and spec.affinity.nodeAffinity (required filter, preferred score).
#include <algorithm>
#include <optional>

#include "lib/api/labels.h"
#include "services/scheduler/plugins/plugins.h"

namespace capstan::scheduler::plugins {
namespace {

// One requirement against a value (nullptr: the label or field is absent), as
// nodeaffinity's NodeSelectorRequirementsAsSelector + labels.Requirement.Matches.
bool RequirementMatches(const core::v1::NodeSelectorRequirement& req, const std::string* value) {
  const std::string& op = req.operator_();
  auto contains = [&req](const std::string& v) {
    return std::find(req.values().begin(), req.values().end(), v) != req.values().end();
  };
  if (op == "In") return value != nullptr && contains(*value);
  if (op == "NotIn") return value == nullptr || !contains(*value);
  if (op == "Exists") return value != nullptr;
  if (op == "DoesNotExist") return value == nullptr;
  if (op == "Gt" || op == "Lt") {
    if (value == nullptr || req.values_size() != 1) return false;
    std::optional<int64_t> have = api::ParseInt64(*value);
    std::optional<int64_t> bound = api::ParseInt64(req.values(0));
    if (!have || !bound) return false;
    return op == "Gt" ? *have > *bound : *have < *bound;
  }
  return false;  // unknown operator: invalid selector, matches nothing
}

}  // namespace

bool NodeSelectorTermMatches(const core::v1::NodeSelectorTerm& term, const Node& node) {
  if (term.match_expressions_size() == 0 && term.match_fields_size() == 0) return false;
  const auto& labels = node.metadata().labels();
  for (const core::v1::NodeSelectorRequirement& req : term.match_expressions()) {
    auto it = labels.find(req.key());
    if (!RequirementMatches(req, it == labels.end() ? nullptr : &it->second)) return false;
  }
  for (const core::v1::NodeSelectorRequirement& req : term.match_fields()) {
    // The only supported field is metadata.name, with In / NotIn.
    if (req.key() != "metadata.name") return false;
    if (req.operator_() != "In" && req.operator_() != "NotIn") return false;
    if (!RequirementMatches(req, &node.metadata().name())) return false;
  }
  return true;
}

bool PodMatchesNodeSelectorAndAffinityTerms(const Pod& pod, const Node& node) {
  const auto& labels = node.metadata().labels();
  for (const auto& [key, value] : pod.spec().node_selector()) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  if (!pod.spec().has_affinity() || !pod.spec().affinity().has_node_affinity()) return true;
  const core::v1::NodeAffinity& affinity = pod.spec().affinity().node_affinity();
  if (!affinity.has_required_during_scheduling_ignored_during_execution()) return true;
  // Terms are ORed; no terms matches nothing.
  for (const core::v1::NodeSelectorTerm& term :
       affinity.required_during_scheduling_ignored_during_execution().node_selector_terms()) {
    if (NodeSelectorTermMatches(term, node)) return true;
  }
  return false;
}

Status NodeAffinity::Filter(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  if (!to_schedule.constrains_nodes) return Status();
  if (PodMatchesNodeSelectorAndAffinityTerms(to_schedule.pod, node.node())) return Status();
  return Status::UnschedulableAndUnresolvable(kReasonNodeAffinity);
}

int64_t NodeAffinity::Score(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  const Pod& pod = to_schedule.pod;
  if (!pod.spec().has_affinity() || !pod.spec().affinity().has_node_affinity()) return 0;
  int64_t score = 0;
  for (const core::v1::PreferredSchedulingTerm& term : pod.spec()
                                                           .affinity()
                                                           .node_affinity()
                                                           .preferred_during_scheduling_ignored_during_execution()) {
    if (term.weight() == 0) continue;
    if (NodeSelectorTermMatches(term.preference(), node.node())) score += term.weight();
  }
  return score;
}

bool NodeAffinity::SkipsFilter(const PodToSchedule& to_schedule, const Snapshot&) const {
  return !to_schedule.constrains_nodes;
}

bool NodeAffinity::SkipsScore(const PodToSchedule& to_schedule, const Snapshot&) const {
  return to_schedule.pod.spec()
      .affinity()
      .node_affinity()
      .preferred_during_scheduling_ignored_during_execution()
      .empty();
}

void NodeAffinity::NormalizeScores(const PodToSchedule&, const std::vector<const NodeInfo*>&,
                                   std::vector<int64_t>& scores) const {
  DefaultNormalizeScore(/*reverse=*/false, scores);
}

}  // namespace capstan::scheduler::plugins
