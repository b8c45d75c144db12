// Helpers shared by the plugins, NodeUnschedulable, NodeName, TaintToleration and DefaultPlugins.
#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "lib/api/taints.h"
#include "services/scheduler/plugins/plugins.h"

namespace capstan::scheduler::plugins {

std::string UntoleratedTaintReason(const core::v1::Taint& taint) {
  return absl::StrCat("node(s) had untolerated taint {", taint.key(), ": ", taint.value(), "}");
}

// Shared with the node lifecycle controller and the apiserver (lib/api/taints.h).
bool ToleratesTaint(const core::v1::Toleration& toleration, const core::v1::Taint& taint) {
  return ::capstan::api::ToleratesTaint(toleration, taint);
}

bool TolerationsTolerateTaint(
    const google::protobuf::RepeatedPtrField<core::v1::Toleration>& tolerations,
    const core::v1::Taint& taint) {
  return ::capstan::api::TolerationsTolerateTaint(tolerations, taint);
}

void DefaultNormalizeScore(bool reverse, std::vector<int64_t>& scores) {
  int64_t max = 0;
  for (int64_t score : scores) max = std::max(max, score);
  if (max == 0) {
    if (reverse) std::fill(scores.begin(), scores.end(), kMaxNodeScore);
    return;
  }
  for (int64_t& score : scores) {
    score = kMaxNodeScore * score / max;
    if (reverse) score = kMaxNodeScore - score;
  }
}

// --- NodeUnschedulable ---------------------------------------------------------------------------

Status NodeUnschedulable::Filter(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  const Pod& pod = to_schedule.pod;
  if (!node.node().spec().unschedulable()) return Status();
  core::v1::Taint taint;
  taint.set_key(kTaintNodeUnschedulable);
  taint.set_effect("NoSchedule");
  if (TolerationsTolerateTaint(pod.spec().tolerations(), taint)) return Status();
  return Status::UnschedulableAndUnresolvable(kReasonUnschedulable);
}

// --- NodeName ------------------------------------------------------------------------------------

Status NodeName::Filter(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  const Pod& pod = to_schedule.pod;
  const std::string& wanted = pod.spec().node_name();
  if (wanted.empty() || wanted == node.name()) return Status();
  return Status::UnschedulableAndUnresolvable(kReasonNodeName);
}

bool NodeName::SkipsFilter(const PodToSchedule& to_schedule, const Snapshot&) const {
  return to_schedule.pod.spec().node_name().empty();
}

// --- TaintToleration -----------------------------------------------------------------------------

Status TaintToleration::Filter(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  const Pod& pod = to_schedule.pod;
  for (const core::v1::Taint& taint : node.node().spec().taints()) {
    if (taint.effect() != "NoSchedule" && taint.effect() != "NoExecute") continue;
    if (!TolerationsTolerateTaint(pod.spec().tolerations(), taint)) {
      return Status::UnschedulableAndUnresolvable(UntoleratedTaintReason(taint));
    }
  }
  return Status();
}

int64_t TaintToleration::Score(const PodToSchedule& to_schedule, const NodeInfo& node, const Snapshot&) const {
  const Pod& pod = to_schedule.pod;
  // Only tolerations that can apply to PreferNoSchedule taints count.
  google::protobuf::RepeatedPtrField<core::v1::Toleration> prefer;
  for (const core::v1::Toleration& toleration : pod.spec().tolerations()) {
    if (toleration.effect().empty() || toleration.effect() == "PreferNoSchedule") {
      *prefer.Add() = toleration;
    }
  }
  int64_t count = 0;
  for (const core::v1::Taint& taint : node.node().spec().taints()) {
    if (taint.effect() != "PreferNoSchedule") continue;
    if (!TolerationsTolerateTaint(prefer, taint)) ++count;
  }
  return count;
}

void TaintToleration::NormalizeScores(const PodToSchedule&, const std::vector<const NodeInfo*>&,
                                      std::vector<int64_t>& scores) const {
  DefaultNormalizeScore(/*reverse=*/true, scores);
}

// --- DefaultPlugins ------------------------------------------------------------------------------

Plugins DefaultPlugins() {
  auto unschedulable = std::make_shared<NodeUnschedulable>();
  auto node_name = std::make_shared<NodeName>();
  auto taints = std::make_shared<TaintToleration>();
  auto node_affinity = std::make_shared<NodeAffinity>();
  auto fit = std::make_shared<NodeResourcesFit>();
  auto spread = std::make_shared<PodTopologySpread>();
  auto pod_affinity = std::make_shared<InterPodAffinity>();
  auto balanced = std::make_shared<BalancedAllocation>();
  Plugins plugins;
  plugins.filters = {unschedulable, node_name, taints, node_affinity, fit, spread, pod_affinity};
  plugins.scores = {
      {taints, 3}, {node_affinity, 2}, {spread, 2}, {pod_affinity, 2}, {fit, 1}, {balanced, 1},
  };
  return plugins;
}

}  // namespace capstan::scheduler::plugins
