// The garbage collector's view of the cluster: a graph of owners and dependents, built from the
// ownerReferences of every object (Kubernetes' pkg/controller/garbagecollector GraphBuilder and
// the decisions of attemptToDeleteItem), with no I/O and no threads so that tables can test it.
//
//   Graph graph;
//   for (WorkItem item : graph.Observe(NodeFromObject(info, object))) queue(item);
//   for (WorkItem item : graph.Forget(uid)) queue(item);
//
// Nodes are keyed by uid. The dependents of an owner are kept by the owner's uid whether or not the
// owner itself is in the graph: a dependent may be seen before its owner, and dependents outlive
// an owner that was deleted (they are what the collector must then clean up).
//
// Observe and Forget return the work a change causes, as uids on two queues:
//   attemptToDelete: a dependent whose owners may have vanished or started a foreground deletion,
//                    or an owner in foreground deletion that may now be finished;
//   attemptToOrphan: an owner deleted with propagationPolicy Orphan.
// Not thread-safe: the collector guards it with a mutex.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GRAPH_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GRAPH_H_

#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "google/protobuf/message.h"
#include "lib/api/scheme.h"
#include "proto/meta.pb.h"

namespace capstan::controllermanager::garbagecollector {

// metav1.FinalizerOrphanDependents and metav1.FinalizerDeleteDependents.
inline constexpr char kOrphanFinalizer[] = "orphan";
inline constexpr char kForegroundFinalizer[] = "foregroundDeletion";

// Which object a node is: enough to address it through the API.
struct Identity {
  std::string api_version;  // "apps/v1"
  std::string kind;         // "ReplicaSet"
  std::string ns;           // "" for cluster-scoped kinds
  std::string name;
  std::string uid;
};

struct Node {
  Identity identity;
  std::vector<capstan::meta::v1::OwnerReference> owners;  // the object's ownerReferences
  std::vector<std::string> finalizers;                    // the object's metadata.finalizers
  bool being_deleted = false;                             // deletionTimestamp is set
  bool deleting_dependents = false;  // being deleted with the foregroundDeletion finalizer
  bool orphaning = false;            // being deleted with the orphan finalizer
};

// A node of object, an instance of info's kind (apiVersion and kind come from info, so objects
// whose type meta is empty are named correctly).
Node NodeFromObject(const api::ResourceInfo& info, const google::protobuf::Message& object);

struct WorkItem {
  enum class Queue { kAttemptToDelete, kAttemptToOrphan };
  Queue queue;
  std::string uid;

  bool operator==(const WorkItem& o) const { return queue == o.queue && uid == o.uid; }
  bool operator<(const WorkItem& o) const {
    return queue != o.queue ? queue < o.queue : uid < o.uid;
  }
};

class Graph {
 public:
  // Records node (an object added or updated) and returns the work it causes, sorted and without
  // duplicates:
  //   - the node itself on attemptToOrphan when it is being deleted with the orphan finalizer;
  //   - the node on attemptToDelete when it is being deleted with foregroundDeletion, and, when
  //     that state is new, every dependent of it;
  //   - the node on attemptToDelete when one of its owners is not in the graph (it may have
  //     vanished) or is deleting its dependents;
  //   - an owner that is deleting its dependents, when the node stopped referencing it, stopped
  //     blocking it, or started being deleted (the owner may now be free to go).
  std::vector<WorkItem> Observe(Node node);
  // Removes the node of uid (the object is gone) and returns the work that causes: every
  // dependent on attemptToDelete (its owner vanished) and every owner that is deleting its
  // dependents (it may now be finished). Nothing when uid is unknown.
  std::vector<WorkItem> Forget(const std::string& uid);

  // nullptr when absent.
  const Node* Get(const std::string& uid) const;
  // The uids of the nodes whose ownerReferences name uid, sorted.
  std::vector<std::string> Dependents(const std::string& uid) const;
  // The dependents whose ownerReference to uid has blockOwnerDeletion true: a foreground deletion
  // of uid waits for them.
  std::vector<std::string> BlockingDependents(const std::string& uid) const;
  size_t size() const { return nodes_.size(); }

 private:
  absl::flat_hash_map<std::string, Node> nodes_;
  // Owner uid -> uids of the nodes that reference it.
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> dependents_;
};

// ---------------------------------------------------------------------------------------------
// Decisions (attemptToDeleteItem)

// What the collector found out about one owner of a dependent.
enum class OwnerState {
  kSolid,                 // exists and is not deleting its dependents
  kDangling,              // vanished: absent, or its name now belongs to another uid
  kWaitingForDependents,  // exists, being deleted with foregroundDeletion
};

struct ClassifiedOwner {
  capstan::meta::v1::OwnerReference ref;
  OwnerState state;
};

struct DependentAction {
  enum class Type {
    kNone,
    kRemoveOwnerReferences,  // drop the references to remove_owner_uids from the dependent
    kDelete,                 // delete the dependent with propagation_policy
  };
  Type type = Type::kNone;
  std::vector<std::string> remove_owner_uids;
  std::string propagation_policy;  // "Background", "Foreground" or "Orphan"
};

// What to do with a dependent whose owners are classified as owners (one entry per
// ownerReference of node), as Kubernetes decides:
//   - a node that is being deleted, or that has no owners, is left alone;
//   - with at least one solid owner it stays, and loses its references to dangling owners and to
//     owners waiting for their dependents;
//   - otherwise (every owner dangling or waiting) it is deleted: in the foreground when some owner
//     waits and the node has dependents of its own (so the owner keeps waiting for the whole
//     chain), else with the policy its own finalizers ask for (orphan: Orphan;
//     foregroundDeletion: Foreground), else Background.
DependentAction DecideForDependent(const Node& node, const std::vector<ClassifiedOwner>& owners,
                                   bool has_dependents);

// What to do with an owner being deleted with foregroundDeletion.
struct ForegroundAction {
  bool remove_finalizer = false;  // no blocking dependent remains: let the owner go
  // Otherwise: the dependents to attempt to delete (those not already being deleted).
  std::vector<std::string> delete_dependents;
};
ForegroundAction DecideForeground(const Graph& graph, const std::string& owner_uid);

}  // namespace capstan::controllermanager::garbagecollector

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GRAPH_H_
