#include "services/scheduler/framework/node_info.h"

#include <algorithm>

#include <utility>

namespace capstan::scheduler {

bool HasRequiredAntiAffinity(const Pod& pod) {
  return pod.spec().has_affinity() && pod.spec().affinity().has_pod_anti_affinity() &&
         pod.spec()
                 .affinity()
                 .pod_anti_affinity()
                 .required_during_scheduling_ignored_during_execution_size() > 0;
}

bool HasPodAffinity(const Pod& pod) {
  if (!pod.spec().has_affinity()) return false;
  const core::v1::Affinity& a = pod.spec().affinity();
  return a.pod_affinity().required_during_scheduling_ignored_during_execution_size() > 0 ||
         a.pod_affinity().preferred_during_scheduling_ignored_during_execution_size() > 0 ||
         a.pod_anti_affinity().required_during_scheduling_ignored_during_execution_size() > 0 ||
         a.pod_anti_affinity().preferred_during_scheduling_ignored_during_execution_size() > 0;
}

namespace {

// Bound to a node and not finished: holds resources there.
bool BoundAndRunning(const Pod& pod) {
  const std::string& phase = pod.status().phase();
  return !pod.spec().node_name().empty() && phase != "Succeeded" && phase != "Failed";
}

}  // namespace

NodeInfo::NodeInfo(Node node) { SetNode(std::move(node)); }

void NodeInfo::SetNode(Node node) {
  node_ = std::move(node);
  allocatable_ = NodeAllocatable(node_);
  allowed_pods_ = NodeAllowedPods(node_);
}

void NodeInfo::AddPod(const Pod& pod) { AddPod(std::make_shared<const Pod>(pod)); }

void NodeInfo::AddPod(std::shared_ptr<const Pod> pod) {
  PodInfo info;
  info.requests = PodRequests(*pod);
  info.non_zero_requests = PodNonZeroRequests(*pod);
  info.has_required_anti_affinity = HasRequiredAntiAffinity(*pod);
  info.has_pod_affinity = HasPodAffinity(*pod);
  info.pod = std::move(pod);
  requested_ += info.requests;
  non_zero_requested_ += info.non_zero_requests;
  if (info.has_required_anti_affinity) ++pods_with_required_anti_affinity_;
  if (info.has_pod_affinity) ++pods_with_affinity_;
  RemovePod(*info.pod);  // a pod is here once: adding it again replaces it
  index_[KeyOf(*info.pod)] = pods_.size();
  pods_.push_back(std::move(info));
}

NodeInfo::PodKey NodeInfo::KeyOf(const Pod& pod) {
  return {pod.metadata().namespace_(), pod.metadata().name()};
}

bool NodeInfo::RemovePod(const Pod& pod) {
  auto found = index_.find(KeyOf(pod));
  if (found == index_.end()) return false;
  const size_t i = found->second;
  index_.erase(found);
  const PodInfo& gone = pods_[i];
  requested_ -= gone.requests;
  non_zero_requested_ -= gone.non_zero_requests;
  if (gone.has_required_anti_affinity) --pods_with_required_anti_affinity_;
  if (gone.has_pod_affinity) --pods_with_affinity_;
  // The last pod takes its place: O(1) however many pods the node has (the order of pods() is
  // not meaningful).
  if (i + 1 != pods_.size()) {
    pods_[i] = std::move(pods_.back());
    index_[KeyOf(*pods_[i].pod)] = i;
  }
  pods_.pop_back();
  return true;
}

Snapshot Snapshot::FromObjects(const std::vector<Node>& nodes, const std::vector<Pod>& pods) {
  Snapshot snapshot;
  for (const Node& node : nodes) snapshot.AddNode(node);
  for (const Pod& pod : pods) {
    // Copies only the pods kept.
    if (BoundAndRunning(pod)) snapshot.AddBoundPod(std::make_shared<const Pod>(pod));
  }
  return snapshot;
}

Snapshot Snapshot::FromShared(const std::vector<Node>& nodes,
                              const std::vector<std::shared_ptr<const Pod>>& pods) {
  Snapshot snapshot;
  for (const Node& node : nodes) snapshot.AddNode(node);
  for (const std::shared_ptr<const Pod>& pod : pods) snapshot.AddBoundPod(pod);
  return snapshot;
}

bool Snapshot::AddBoundPod(std::shared_ptr<const Pod> pod) {
  if (!BoundAndRunning(*pod)) return false;
  NodeInfo* info = GetMutable(pod->spec().node_name());
  if (info == nullptr) return false;
  info->AddPod(std::move(pod));
  return true;
}

NodeInfo& Snapshot::AddNode(Node node) {
  // The totals stay right: a replaced node keeps its pods, a new one has none.
  auto it = index_.find(node.metadata().name());
  if (it != index_.end()) {
    nodes_[it->second].SetNode(std::move(node));
    return nodes_[it->second];
  }
  index_[node.metadata().name()] = nodes_.size();
  nodes_.emplace_back(std::move(node));
  return nodes_.back();
}

bool Snapshot::RemoveNode(const std::string& name) {
  totals_.reset();  // node indexes change
  changed_.clear();
  auto it = index_.find(name);
  if (it == index_.end()) return false;
  nodes_.erase(nodes_.begin() + it->second);
  index_.clear();
  for (size_t i = 0; i < nodes_.size(); ++i) index_[nodes_[i].name()] = i;
  return true;
}

bool Snapshot::AssumePod(Pod pod, const std::string& node_name) {
  NodeInfo* info = GetMutable(node_name);
  if (info == nullptr) return false;
  pod.mutable_spec()->set_node_name(node_name);
  info->AddPod(std::make_shared<const Pod>(std::move(pod)));
  return true;
}

bool Snapshot::ForgetPod(const Pod& pod) {
  NodeInfo* info = GetMutable(pod.spec().node_name());
  return info != nullptr && info->RemovePod(pod);
}

const Snapshot::AffinityTotals& Snapshot::Totals() const {
  if (!totals_) {
    AffinityTotals totals;
    for (const NodeInfo& node : nodes_) {
      totals.required_anti_affinity += node.pods_with_required_anti_affinity();
      totals.affinity += node.pods_with_affinity();
    }
    totals_ = totals;
  } else {
    for (size_t i : changed_) {
      totals_->required_anti_affinity += nodes_[i].pods_with_required_anti_affinity();
      totals_->affinity += nodes_[i].pods_with_affinity();
    }
  }
  changed_.clear();
  return *totals_;
}

const NodeInfo* Snapshot::Get(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &nodes_[it->second];
}

NodeInfo* Snapshot::GetMutable(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return nullptr;
  // The caller may change this node's pods: its counts leave the totals until Totals() adds them
  // back as they are then. (The scheduler changes one node per cycle; after many changes a
  // recount is cheaper than the bookkeeping.)
  if (totals_ &&
      std::find(changed_.begin(), changed_.end(), it->second) == changed_.end()) {
    if (changed_.size() >= kMaxChangedNodes) {
      totals_.reset();
      changed_.clear();
    } else {
      totals_->required_anti_affinity -= nodes_[it->second].pods_with_required_anti_affinity();
      totals_->affinity -= nodes_[it->second].pods_with_affinity();
      changed_.push_back(it->second);
    }
  }
  return &nodes_[it->second];
}

void Snapshot::SetNamespaceLabels(const std::string& ns,
                                  std::map<std::string, std::string> labels) {
  namespace_labels_[ns] = std::move(labels);
}

const std::map<std::string, std::string>& Snapshot::NamespaceLabels(const std::string& ns) const {
  static const auto* const kEmpty = new std::map<std::string, std::string>();
  auto it = namespace_labels_.find(ns);
  return it == namespace_labels_.end() ? *kEmpty : it->second;
}

}  // namespace capstan::scheduler
