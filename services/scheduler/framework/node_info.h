// NodeInfo (a node plus the pods bound or assumed on it, with their summed requests) and the
// Snapshot of all of them that one scheduling cycle reads.
#ifndef CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_NODE_INFO_H_
#define CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_NODE_INFO_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "services/scheduler/framework/types.h"

namespace capstan::scheduler {

// A pod on a node with its requests computed once. The pod is shared, not copied: the scheduler's
// cache points at the informer's immutable objects, so a cached pod costs a few dozen bytes
// instead of a second full copy, and copying a snapshot (preemption's scratch) is cheap.
struct PodInfo {
  std::shared_ptr<const Pod> pod;  // never null
  Resource requests;
  Resource non_zero_requests;
  bool has_required_anti_affinity = false;
  bool has_pod_affinity = false;  // any pod affinity or anti-affinity term, required or preferred
};

class NodeInfo {
 public:
  explicit NodeInfo(Node node);

  const Node& node() const { return node_; }
  const std::string& name() const { return node_.metadata().name(); }
  const std::vector<PodInfo>& pods() const { return pods_; }

  // Sum of the pods' requests (what fit is decided on) and of their non-zero requests (what the
  // scoring plugins balance).
  const Resource& requested() const { return requested_; }
  const Resource& non_zero_requested() const { return non_zero_requested_; }
  int64_t pod_count() const { return static_cast<int64_t>(pods_.size()); }

  // From status.allocatable.
  const Resource& allocatable() const { return allocatable_; }
  int64_t allowed_pods() const { return allowed_pods_; }

  // How many pods here carry required pod anti-affinity (so the InterPodAffinity filter can skip
  // nodes without any).
  int64_t pods_with_required_anti_affinity() const { return pods_with_required_anti_affinity_; }
  // How many pods here carry any pod affinity or anti-affinity (InterPodAffinity's score skips
  // nodes without any when the incoming pod has no preferred terms).
  int64_t pods_with_affinity() const { return pods_with_affinity_; }

  // Shares pod (immutable from here on); the Pod overload makes a copy to share.
  void AddPod(std::shared_ptr<const Pod> pod);
  void AddPod(const Pod& pod);
  // Removes the pod with the pod's namespace and name; false when it is not here. O(1).
  bool RemovePod(const Pod& pod);
  // Replaces the node object (labels, taints, allocatable) and keeps the pods.
  void SetNode(Node node);

 private:
  // A pod's namespace and name, viewing its (immutable, shared) object.
  using PodKey = std::pair<std::string_view, std::string_view>;
  static PodKey KeyOf(const Pod& pod);

  Node node_;
  std::vector<PodInfo> pods_;
  absl::flat_hash_map<PodKey, size_t> index_;  // position of each pod in pods_
  Resource requested_;
  Resource non_zero_requested_;
  Resource allocatable_;
  int64_t allowed_pods_ = 0;
  int64_t pods_with_required_anti_affinity_ = 0;
  int64_t pods_with_affinity_ = 0;
};

// All nodes for one scheduling cycle, in a stable order (the order they were added).
class Snapshot {
 public:
  Snapshot() = default;
  // Nodes, then every pod whose spec.nodeName names one of them (pods that are Succeeded or Failed
  // hold no resources and are skipped; pods naming unknown nodes are ignored).
  static Snapshot FromObjects(const std::vector<Node>& nodes, const std::vector<Pod>& pods);
  // The same, sharing the pods (an informer's cached objects) instead of copying them.
  static Snapshot FromShared(const std::vector<Node>& nodes,
                             const std::vector<std::shared_ptr<const Pod>>& pods);

  // Adds a node, or replaces it (keeping its pods) when the name is already here.
  NodeInfo& AddNode(Node node);
  bool RemoveNode(const std::string& name);

  // Records `pod` on `node_name` (the scheduler's assume step) with spec.nodeName set. False when
  // there is no such node.
  bool AssumePod(Pod pod, const std::string& node_name);
  // Removes the pod from the node its spec.nodeName names.
  bool ForgetPod(const Pod& pod);
  // Records a pod that its spec.nodeName binds (shared, not copied), unless it is Succeeded or
  // Failed (they hold no resources) or its node is unknown. False when not recorded.
  bool AddBoundPod(std::shared_ptr<const Pod> pod);

  const NodeInfo* Get(const std::string& name) const;
  NodeInfo* GetMutable(const std::string& name);
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  size_t size() const { return nodes_.size(); }

  // Pods anywhere in the snapshot with required pod anti-affinity / with any pod (anti-)affinity.
  // Lets InterPodAffinity skip its cluster-wide scans for the common pod that has none. Kept up
  // to date incrementally (the nodes handed out by GetMutable are recounted on the next call);
  // not safe to call from several threads while the snapshot changes.
  int64_t PodsWithRequiredAntiAffinity() const { return Totals().required_anti_affinity; }
  int64_t PodsWithAffinity() const { return Totals().affinity; }

  // Namespace labels, for pod affinity terms with a namespaceSelector.
  void SetNamespaceLabels(const std::string& ns, std::map<std::string, std::string> labels);
  // Empty map when the namespace is unknown.
  const std::map<std::string, std::string>& NamespaceLabels(const std::string& ns) const;

 private:
  struct AffinityTotals {
    int64_t required_anti_affinity = 0;
    int64_t affinity = 0;
  };
  const AffinityTotals& Totals() const;

  static constexpr size_t kMaxChangedNodes = 64;
  // The totals without the nodes in changed_ (indexes of nodes GetMutable handed out since).
  mutable std::optional<AffinityTotals> totals_;
  mutable std::vector<size_t> changed_;
  std::vector<NodeInfo> nodes_;
  absl::flat_hash_map<std::string, size_t> index_;
  absl::flat_hash_map<std::string, std::map<std::string, std::string>> namespace_labels_;
};

// Whether the pod has required anti-affinity terms.
bool HasRequiredAntiAffinity(const Pod& pod);
// Whether the pod has any pod affinity or anti-affinity term.
bool HasPodAffinity(const Pod& pod);

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_NODE_INFO_H_
