// The Deployment controller (Kubernetes' pkg/controller/deployment): rolls a Deployment's pod
// template out through one ReplicaSet per template.
//
//   DeploymentController controller(context);   // registers its informers with the factory
//   context.informers->Start();
//   std::thread t([&] { controller.Run(); });    // blocks until Stop()
//   ...
//   controller.Stop(); t.join();
//
// Watches Deployments and ReplicaSets (shared informers). Events enqueue the deployment's
// "namespace/name": for a ReplicaSet, its controlling Deployment, or for an orphan every
// Deployment of its namespace whose selector matches it. Reconcile reads both caches, asks
// PlanRollout (rollout.h) what to do and writes it: ReplicaSet creates, updates (with the cached
// resourceVersion, so a plan made on stale data fails with Conflict and is retried) and deletes,
// the deployment's revision annotation (Update), its status (UpdateStatus, only when it changed),
// and Normal events when a recorder is given. The ReplicaSet controller makes the pods; this
// controller never touches pods (a ReplicaSet's status tells it how many exist and are available).
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_DEPLOYMENT_CONTROLLER_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_DEPLOYMENT_CONTROLLER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#include "absl/status/statusor.h"
#include "lib/client/clock.h"
#include "lib/client/controller.h"
#include "lib/client/informer.h"
#include "proto/apps_v1.pb.h"
#include "services/controller-manager/controller_context.h"

namespace capstan::controllermanager {

class DeploymentController : public RunnableController, private client::Reconciler {
 public:
  // Registers the Deployment and ReplicaSet informers with context.informers (which must not
  // have been started yet for them to share the first list) and their handlers. Everything in
  // context must outlive the controller. clock: condition timestamps and the progress deadline.
  explicit DeploymentController(const ControllerContext& context,
                                client::Clock* clock = client::Clock::Real());
  ~DeploymentController() override;

  const char* name() const override { return "deployment"; }
  void Run() override;
  void Stop() override;

  // One reconcile of "namespace/name" (what the workers call); public for tests.
  absl::StatusOr<client::ReconcileResult> Reconcile(const std::string& key) override;

 private:
  void EnqueueDeployment(const capstan::apps::v1::Deployment& deployment);
  // The controlling Deployment of rs, or for an orphan every Deployment that selects it.
  void EnqueueForReplicaSet(const capstan::apps::v1::ReplicaSet& rs);

  // A plan is only as good as the cache it reads: after this controller writes a ReplicaSet, the
  // deployment is not reconciled again until the cache holds that write (or kStaleWriteTimeout
  // passed), so one ReplicaSet is never sized from a stale view of another.
  struct Write {
    std::string name;
    int64_t resource_version = 0;  // 0: a delete (the cache must no longer have it)
    absl::Time at;
  };
  bool CacheHoldsWrites(const std::string& key);
  void RememberWrites(const std::string& key, std::vector<Write> writes);

  // Constant after construction.
  ControllerContext context_;
  client::Clock* const clock_;
  client::Informer<capstan::apps::v1::Deployment> deployments_;
  client::Informer<capstan::apps::v1::ReplicaSet> replica_sets_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<Write>> writes_ ABSL_GUARDED_BY(mu_);

  client::Controller controller_;  // thread-safe itself; last: its workers use the above
};

}  // namespace capstan::controllermanager

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_DEPLOYMENT_CONTROLLER_H_
