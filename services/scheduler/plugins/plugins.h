// Kubernetes' in-tree scheduling plugins (pkg/scheduler/framework/plugins), as pure functions of
// (pod, node, snapshot). Reason strings are Kubernetes' own, so "0/N nodes are available" messages
// read the same.
#ifndef CAPSTAN_SERVICES_SCHEDULER_PLUGINS_PLUGINS_H_
#define CAPSTAN_SERVICES_SCHEDULER_PLUGINS_PLUGINS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "services/scheduler/framework/framework.h"

namespace capstan::scheduler::plugins {

// Reason texts.
inline constexpr char kReasonUnschedulable[] = "node(s) were unschedulable";
inline constexpr char kReasonNodeName[] = "node(s) didn't match the requested node name";
inline constexpr char kReasonNodeAffinity[] = "node(s) didn't match Pod's node affinity/selector";
inline constexpr char kReasonInsufficientCpu[] = "Insufficient cpu";
inline constexpr char kReasonInsufficientMemory[] = "Insufficient memory";
inline constexpr char kReasonTooManyPods[] = "Too many pods";
inline constexpr char kReasonPodAffinity[] = "node(s) didn't match pod affinity rules";
inline constexpr char kReasonPodAntiAffinity[] = "node(s) didn't match pod anti-affinity rules";
inline constexpr char kReasonExistingAntiAffinity[] =
    "node(s) didn't satisfy existing pods anti-affinity rules";
inline constexpr char kReasonTopologySpread[] =
    "node(s) didn't match pod topology spread constraints";
inline constexpr char kReasonTopologySpreadMissingLabel[] =
    "node(s) didn't match pod topology spread constraints (missing required label)";
// "node(s) had untolerated taint {key: value}"
std::string UntoleratedTaintReason(const core::v1::Taint& taint);

inline constexpr char kTaintNodeUnschedulable[] = "node.kubernetes.io/unschedulable";
inline constexpr char kLabelHostname[] = "kubernetes.io/hostname";
inline constexpr char kLabelZone[] = "topology.kubernetes.io/zone";

// v1helper.TolerationsTolerateTaint.
bool ToleratesTaint(const core::v1::Toleration& toleration, const core::v1::Taint& taint);
bool TolerationsTolerateTaint(const google::protobuf::RepeatedPtrField<core::v1::Toleration>& tolerations,
                              const core::v1::Taint& taint);

// The pod's nodeSelector and required node affinity against a node (the NodeAffinity filter's
// test, shared with PodTopologySpread's nodeAffinityPolicy: Honor).
bool PodMatchesNodeSelectorAndAffinityTerms(const Pod& pod, const Node& node);
// One NodeSelectorTerm: its expressions and fields ANDed; a term with neither matches nothing.
bool NodeSelectorTermMatches(const core::v1::NodeSelectorTerm& term, const Node& node);

// Kubernetes' helper.DefaultNormalizeScore: scales so the largest is 100 (reverse: 100 - that).
void DefaultNormalizeScore(bool reverse, std::vector<int64_t>& scores);

class NodeUnschedulable : public FilterPlugin {
 public:
  std::string name() const override { return "NodeUnschedulable"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
};

class NodeName : public FilterPlugin {
 public:
  std::string name() const override { return "NodeName"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  bool SkipsFilter(const PodToSchedule& pod, const Snapshot& snapshot) const override;
};

// Filter: cpu, memory and pod count against allocatable minus what the node's pods request.
// Score: LeastAllocated, mean over cpu and memory of (allocatable - requested) * 100 / allocatable
// with non-zero requests.
class NodeResourcesFit : public FilterPlugin, public ScorePlugin {
 public:
  std::string name() const override { return "NodeResourcesFit"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
};

// Score: 100 * (1 - |cpuFraction - memoryFraction| / 2) with the pod added.
class BalancedAllocation : public ScorePlugin {
 public:
  std::string name() const override { return "NodeResourcesBalancedAllocation"; }
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
};

// Filter: nodeSelector and required node affinity. Score: sum of matching preferred terms'
// weights, normalized so the best node gets 100.
class NodeAffinity : public FilterPlugin, public ScorePlugin {
 public:
  std::string name() const override { return "NodeAffinity"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  void NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                       std::vector<int64_t>& scores) const override;
  bool SkipsFilter(const PodToSchedule& pod, const Snapshot& snapshot) const override;
  bool SkipsScore(const PodToSchedule& pod, const Snapshot& snapshot) const override;
};

// Filter: NoSchedule / NoExecute taints the pod does not tolerate. Score: fewer untolerated
// PreferNoSchedule taints is better (reverse-normalized).
class TaintToleration : public FilterPlugin, public ScorePlugin {
 public:
  std::string name() const override { return "TaintToleration"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  void NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                       std::vector<int64_t>& scores) const override;
};

// Filter: the pod's required affinity / anti-affinity and existing pods' required anti-affinity.
// Score: preferred terms both ways (and existing pods' required affinity at weight 1),
// min-max normalized.
class InterPodAffinity : public FilterPlugin, public ScorePlugin {
 public:
  std::string name() const override { return "InterPodAffinity"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  void NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                       std::vector<int64_t>& scores) const override;
  bool SkipsFilter(const PodToSchedule& pod, const Snapshot& snapshot) const override;
  bool SkipsScore(const PodToSchedule& pod, const Snapshot& snapshot) const override;
};

// Filter: DoNotSchedule constraints (skew = matching pods in the node's domain + self - global
// minimum must not exceed maxSkew). Score: ScheduleAnyway constraints, fewer matching pods in the
// node's domain is better.
class PodTopologySpread : public FilterPlugin, public ScorePlugin {
 public:
  std::string name() const override { return "PodTopologySpread"; }
  Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  // -1 for nodes missing a constraint's topology label (they end at 0 after normalization).
  int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const override;
  void NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                       std::vector<int64_t>& scores) const override;
  bool SkipsFilter(const PodToSchedule& pod, const Snapshot& snapshot) const override;
  bool SkipsScore(const PodToSchedule& pod, const Snapshot& snapshot) const override;
};

// Kubernetes' default plugin set: filters NodeUnschedulable, NodeName, TaintToleration,
// NodeAffinity, NodeResourcesFit, PodTopologySpread, InterPodAffinity; scores TaintToleration 3,
// NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit 1,
// BalancedAllocation 1.
Plugins DefaultPlugins();

}  // namespace capstan::scheduler::plugins

#endif  // CAPSTAN_SERVICES_SCHEDULER_PLUGINS_PLUGINS_H_
