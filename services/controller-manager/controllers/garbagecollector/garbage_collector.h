// The garbage collector (Kubernetes' pkg/controller/garbagecollector): deletes objects whose
// owners are gone and carries out the Foreground and Orphan deletion policies.
//
// It informs on every resource of the scheme (Events excepted: nothing owns them here) and keeps a
// Graph of owners and dependents from their ownerReferences. Graph changes put uids on two work
// queues, each served by a client::Controller:
//   attemptToDelete: a dependent whose owners are all gone (dangling: absent from the caches and,
//                    checked by a live GET, NotFound or now another uid) or waiting for their
//                    dependents is deleted; one with a live owner only loses its references to
//                    the others. An owner being deleted with foregroundDeletion gets its dependents
//                    deleted and, once no dependent with blockOwnerDeletion remains, loses the
//                    finalizer (the apiserver then removes it).
//   attemptToOrphan: an owner being deleted with the orphan finalizer: the references to it are
//                    removed from every dependent, then the finalizer from it.
// Writes are read-modify-write Updates at the resourceVersion just read, redone on Conflict.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GARBAGE_COLLECTOR_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GARBAGE_COLLECTOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/controller.h"
#include "lib/client/informer.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/garbagecollector/graph.h"

namespace capstan::controllermanager::garbagecollector {

class GarbageCollector : public RunnableController {
 public:
  // Registers an informer (and handler) for every resource of api::Scheme::BuiltIn() but events
  // with ctx.informers; ctx.client and ctx.informers must outlive the collector, and the informers
  // must be stopped before it is destroyed (their handlers call into it).
  explicit GarbageCollector(const ControllerContext& ctx);
  ~GarbageCollector() override;

  const char* name() const override { return "garbagecollector"; }
  // Waits for every informer's cache, then works both queues until Stop().
  void Run() override;
  void Stop() override;

  // The number of objects in the graph (for tests and debugging).
  size_t GraphSize() const;

 private:
  // Runs a member function as a client::Reconciler.
  class QueueReconciler : public client::Reconciler {
   public:
    using Method = absl::Status (GarbageCollector::*)(const std::string& uid);
    QueueReconciler(GarbageCollector* gc, Method method) : gc_(gc), method_(method) {}
    absl::StatusOr<client::ReconcileResult> Reconcile(const std::string& uid) override;

   private:
    GarbageCollector* const gc_;
    const Method method_;
  };

  void OnUpsert(const api::ResourceInfo& info, const client::Object& old_object,
                const client::Object& object);
  void OnDelete(const client::Object& object);
  void Dispatch(const std::vector<WorkItem>& work);

  absl::Status AttemptToDelete(const std::string& uid);
  absl::Status AttemptToOrphan(const std::string& uid);
  // Deletes the dependents of owner being deleted in the foreground, or removes its finalizer.
  absl::Status ProcessDeletingDependents(const Node& owner);
  // Whether ref (an ownerReference of dependent) names an object that exists, is gone, or waits
  // for its dependents: from the graph, else from a live GET.
  absl::StatusOr<OwnerState> ClassifyOwner(const Node& dependent,
                                           const capstan::meta::v1::OwnerReference& ref);
  // Removes the ownerReferences to owner_uids from the object identity names.
  absl::Status RemoveOwnerReferences(const Identity& identity,
                                     const std::vector<std::string>& owner_uids);
  absl::Status RemoveFinalizer(const Identity& identity, const std::string& finalizer);
  absl::Status DeleteObject(const Identity& identity, const std::string& policy);

  // Constant after construction.
  client::Client* const client_;
  std::vector<std::shared_ptr<client::SharedIndexInformer>> informers_;
  QueueReconciler delete_reconciler_;
  QueueReconciler orphan_reconciler_;
  client::Controller attempt_to_delete_;
  client::Controller attempt_to_orphan_;

  mutable absl::Mutex mu_;
  Graph graph_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::controllermanager::garbagecollector

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_GARBAGECOLLECTOR_GARBAGE_COLLECTOR_H_
