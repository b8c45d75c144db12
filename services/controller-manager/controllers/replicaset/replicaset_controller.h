// The ReplicaSet controller (Kubernetes' pkg/controller/replicaset): keeps spec.replicas active
// pods of each ReplicaSet's template running, and reports how many there are in its status.
//
//   ReplicaSetController replicasets(ctx);   // registers informers and handlers
//   ctx.informers->Start();
//   std::thread t([&] { replicasets.Run(); });
//   ...
//   replicasets.Stop(); t.join();
//   ctx.informers->Stop();                   // before the controller is destroyed
//
// Informers: ReplicaSets and Pods from the shared factory. A ReplicaSet event enqueues its key; a
// pod event enqueues the ReplicaSet that controls it (controller ownerReference), or, for an
// orphan, every ReplicaSet of its namespace whose selector matches it (adoption).
//
// Reconcile(key), after Kubernetes' syncReplicaSet:
//   - the ReplicaSet is gone: nothing (the garbage collector deletes its pods);
//   - claim pods (PlanReplicaSet): adopt matching orphans, release owned pods that no longer
//     match; pods being deleted and pods Succeeded/Failed are not counted;
//   - when the expectations of earlier creates/deletes are met (ControllerExpectations) and the
//     ReplicaSet is not being deleted: create the missing pods in slow-start batches (1, 2, 4,
//     ...; stop at the first batch with a failure) or delete the surplus, least valuable first
//     (RankForDeletion), at most burst_replicas per reconcile;
//   - write the status when it changed (UpdateStatus); requeue when a pod will become available
//     after minReadySeconds.
// A failed create/delete sets the ReplicaFailure condition and is retried with backoff. Events
// (SuccessfulCreate, FailedCreate, SuccessfulDelete, FailedDelete) go to ctx.recorder when set.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_REPLICASET_CONTROLLER_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_REPLICASET_CONTROLLER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/client/client.h"
#include "lib/client/clock.h"
#include "lib/client/controller.h"
#include "lib/client/event_recorder.h"
#include "lib/client/informer.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/replicaset/expectations.h"
#include "services/controller-manager/controllers/replicaset/plan.h"

namespace capstan::controllermanager {

struct ReplicaSetControllerOptions {
  int burst_replicas = replicaset::kBurstReplicas;
  absl::Duration expectations_timeout = replicaset::kExpectationsTimeout;
  client::Clock* clock = client::Clock::Real();  // not owned; expectations and availability
};

class ReplicaSetController : public RunnableController, public client::Reconciler {
 public:
  // Registers the ReplicaSet and Pod informers and their handlers with ctx.informers, which must
  // not have been started yet (or its handlers see the current objects at once) and must be
  // stopped before this controller is destroyed (its handlers refer to it). ctx's pointers must
  // outlive the controller.
  explicit ReplicaSetController(const ControllerContext& ctx,
                                ReplicaSetControllerOptions options = {});
  ~ReplicaSetController() override;  // Stop()

  const char* name() const override { return "replicaset"; }
  void Run() override;
  void Stop() override;

  absl::StatusOr<client::ReconcileResult> Reconcile(const std::string& key) override;

  replicaset::ControllerExpectations& expectations() { return expectations_; }

 private:
  using Pod = capstan::core::v1::Pod;
  using ReplicaSet = capstan::apps::v1::ReplicaSet;

  // --- event handlers (informer threads) ---
  void OnPodAdd(const std::shared_ptr<const Pod>& pod);
  void OnPodUpdate(const std::shared_ptr<const Pod>& old_pod,
                   const std::shared_ptr<const Pod>& pod);
  void OnPodDelete(const std::shared_ptr<const Pod>& pod);
  // The ReplicaSet a controller ownerReference names, when it exists with that uid.
  std::shared_ptr<const ReplicaSet> ResolveControllerRef(
      const std::string& ns, const capstan::meta::v1::OwnerReference& ref) const;
  // Enqueues every ReplicaSet of pod's namespace whose selector matches it.
  void EnqueueMatchingReplicaSets(const Pod& pod);

  // --- reconcile steps ---
  // The pods that matter to rs: those its selector matches and those it owns.
  std::vector<replicaset::PodPtr> PodsFor(const ReplicaSet& rs,
                                          const api::LabelSelector& selector) const;
  // Adopts plan.adopt and releases plan.release. Aborted when an orphan changed meanwhile (the
  // plan is stale: retry); other errors as the API gave them.
  absl::Status Claim(const ReplicaSet& rs, const replicaset::ReplicaSetPlan& plan);
  // Creates / deletes as plan says, with expectations and events. The first error, if any.
  absl::Status Manage(const std::string& key, const ReplicaSet& rs,
                      const replicaset::ReplicaSetPlan& plan);
  absl::Status CreatePods(const std::string& key, const ReplicaSet& rs, int count);
  absl::Status DeletePods(const std::string& key, const ReplicaSet& rs,
                          const std::vector<replicaset::PodPtr>& pods);
  absl::Status WriteStatus(const ReplicaSet& rs, const capstan::apps::v1::ReplicaSetStatus& status);
  void RecordEvent(const ReplicaSet& rs, absl::string_view type, absl::string_view reason,
                   const std::string& message);

  // Constant after construction.
  client::Client* const client_;
  client::EventRecorder* const recorder_;
  const ReplicaSetControllerOptions options_;
  client::Informer<ReplicaSet> replicasets_;
  client::Informer<Pod> pods_;

  replicaset::ControllerExpectations expectations_;  // thread-safe
  client::Controller controller_;                    // last: its workers call Reconcile
};

}  // namespace capstan::controllermanager

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_REPLICASET_CONTROLLER_H_
