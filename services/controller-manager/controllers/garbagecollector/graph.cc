#include "services/controller-manager/controllers/garbagecollector/graph.h"

#include <algorithm>
#include <set>
#include <utility>

namespace capstan::controllermanager::garbagecollector {
namespace {

using capstan::meta::v1::OwnerReference;

bool HasFinalizer(const std::vector<std::string>& finalizers, const char* finalizer) {
  return std::find(finalizers.begin(), finalizers.end(), finalizer) != finalizers.end();
}

const OwnerReference* FindOwner(const Node& node, const std::string& owner_uid) {
  for (const OwnerReference& ref : node.owners) {
    if (ref.uid() == owner_uid) return &ref;
  }
  return nullptr;
}

bool Blocks(const OwnerReference* ref) {
  return ref != nullptr && ref->has_block_owner_deletion() && ref->block_owner_deletion();
}

std::vector<WorkItem> Sorted(std::set<WorkItem> items) {
  return std::vector<WorkItem>(items.begin(), items.end());
}

}  // namespace

Node NodeFromObject(const api::ResourceInfo& info, const google::protobuf::Message& object) {
  const capstan::meta::v1::ObjectMeta& meta = api::Meta(object);
  Node node;
  node.identity = {info.ApiVersion(), info.kind, info.namespaced ? meta.namespace_() : "",
                   meta.name(), meta.uid()};
  node.owners.assign(meta.owner_references().begin(), meta.owner_references().end());
  node.finalizers.assign(meta.finalizers().begin(), meta.finalizers().end());
  node.being_deleted = meta.has_deletion_timestamp();
  node.deleting_dependents =
      node.being_deleted && HasFinalizer(node.finalizers, kForegroundFinalizer);
  node.orphaning = node.being_deleted && HasFinalizer(node.finalizers, kOrphanFinalizer);
  return node;
}

std::vector<WorkItem> Graph::Observe(Node node) {
  const std::string uid = node.identity.uid;
  std::set<WorkItem> work;
  auto enqueue_delete = [&](const std::string& u) {
    work.insert({WorkItem::Queue::kAttemptToDelete, u});
  };
  auto deleting_dependents = [&](const std::string& u) {
    auto it = nodes_.find(u);
    return it != nodes_.end() && it->second.deleting_dependents;
  };

  auto old_it = nodes_.find(uid);
  const bool was_deleting_dependents = old_it != nodes_.end() && old_it->second.deleting_dependents;
  if (old_it != nodes_.end()) {
    const Node& old = old_it->second;
    for (const OwnerReference& ref : old.owners) {
      const OwnerReference* now = FindOwner(node, ref.uid());
      if (now == nullptr) {
        auto deps = dependents_.find(ref.uid());
        if (deps != dependents_.end()) {
          deps->second.erase(uid);
          if (deps->second.empty()) dependents_.erase(deps);
        }
      }
      // The owner may be waiting for this node: it no longer has to when the reference is gone,
      // no longer blocks, or the node is on its way out.
      bool released = now == nullptr || (Blocks(&ref) && !Blocks(now)) ||
                      (node.being_deleted && !old.being_deleted);
      if (released && deleting_dependents(ref.uid())) enqueue_delete(ref.uid());
    }
  }
  for (const OwnerReference& ref : node.owners) {
    dependents_[ref.uid()].insert(uid);
    if (nodes_.find(ref.uid()) == nodes_.end() || deleting_dependents(ref.uid())) {
      enqueue_delete(uid);
    }
  }
  if (node.orphaning) work.insert({WorkItem::Queue::kAttemptToOrphan, uid});
  if (node.deleting_dependents) {
    enqueue_delete(uid);
    if (!was_deleting_dependents) {
      auto deps = dependents_.find(uid);
      if (deps != dependents_.end()) {
        for (const std::string& d : deps->second) enqueue_delete(d);
      }
    }
  }
  nodes_[uid] = std::move(node);
  return Sorted(std::move(work));
}

std::vector<WorkItem> Graph::Forget(const std::string& uid) {
  auto it = nodes_.find(uid);
  if (it == nodes_.end()) return {};
  Node node = std::move(it->second);
  nodes_.erase(it);
  std::set<WorkItem> work;
  for (const OwnerReference& ref : node.owners) {
    auto deps = dependents_.find(ref.uid());
    if (deps != dependents_.end()) {
      deps->second.erase(uid);
      if (deps->second.empty()) dependents_.erase(deps);
    }
    auto owner = nodes_.find(ref.uid());
    if (owner != nodes_.end() && owner->second.deleting_dependents) {
      work.insert({WorkItem::Queue::kAttemptToDelete, ref.uid()});
    }
  }
  auto deps = dependents_.find(uid);
  if (deps != dependents_.end()) {
    for (const std::string& d : deps->second) {
      work.insert({WorkItem::Queue::kAttemptToDelete, d});
    }
  }
  return Sorted(std::move(work));
}

const Node* Graph::Get(const std::string& uid) const {
  auto it = nodes_.find(uid);
  return it == nodes_.end() ? nullptr : &it->second;
}

std::vector<std::string> Graph::Dependents(const std::string& uid) const {
  auto it = dependents_.find(uid);
  if (it == dependents_.end()) return {};
  return std::vector<std::string>(it->second.begin(), it->second.end());
}

std::vector<std::string> Graph::BlockingDependents(const std::string& uid) const {
  std::vector<std::string> out;
  for (const std::string& d : Dependents(uid)) {
    const Node* node = Get(d);
    if (node != nullptr && Blocks(FindOwner(*node, uid))) out.push_back(d);
  }
  return out;
}

DependentAction DecideForDependent(const Node& node, const std::vector<ClassifiedOwner>& owners,
                                   bool has_dependents) {
  DependentAction action;
  if (node.being_deleted || owners.empty()) return action;
  bool solid = false;
  bool waiting = false;
  std::vector<std::string> not_solid;
  for (const ClassifiedOwner& owner : owners) {
    if (owner.state == OwnerState::kSolid) {
      solid = true;
    } else {
      waiting |= owner.state == OwnerState::kWaitingForDependents;
      not_solid.push_back(owner.ref.uid());
    }
  }
  if (solid) {
    if (!not_solid.empty()) {
      action.type = DependentAction::Type::kRemoveOwnerReferences;
      action.remove_owner_uids = std::move(not_solid);
    }
    return action;
  }
  action.type = DependentAction::Type::kDelete;
  if (waiting && has_dependents) {
    action.propagation_policy = "Foreground";
  } else if (HasFinalizer(node.finalizers, kOrphanFinalizer)) {
    action.propagation_policy = "Orphan";
  } else if (HasFinalizer(node.finalizers, kForegroundFinalizer)) {
    action.propagation_policy = "Foreground";
  } else {
    action.propagation_policy = "Background";
  }
  return action;
}

ForegroundAction DecideForeground(const Graph& graph, const std::string& owner_uid) {
  ForegroundAction action;
  action.remove_finalizer = graph.BlockingDependents(owner_uid).empty();
  for (const std::string& d : graph.Dependents(owner_uid)) {
    const Node* node = graph.Get(d);
    if (node != nullptr && !node->being_deleted) action.delete_dependents.push_back(d);
  }
  return action;
}

}  // namespace capstan::controllermanager::garbagecollector
