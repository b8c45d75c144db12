// The ReplicaSet controller's decisions as pure functions of the ReplicaSet and the pods in its
// namespace: which pods to adopt or release, how many to create, which to delete, in which batch
// sizes, and the status to report. Reconcile (replicaset_controller.cc) gathers the inputs from
// the informers' caches, calls these, and carries out the result through the API.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_PLAN_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"
#include "services/controller-manager/controllers/replicaset/pod_ranking.h"

namespace capstan::controllermanager::replicaset {

// Kubernetes' BurstReplicas: at most this many creates or deletes per reconcile.
inline constexpr int kBurstReplicas = 500;

// The controller ownerReference of object, or nullptr when it has none.
const capstan::meta::v1::OwnerReference* ControllerRef(const capstan::meta::v1::ObjectMeta& meta);

// The controller ownerReference a ReplicaSet puts on its pods: apps/v1 ReplicaSet, its name and
// uid, controller and blockOwnerDeletion true.
capstan::meta::v1::OwnerReference ControllerRefFor(const capstan::apps::v1::ReplicaSet& rs);

// A pod of rs's template: generateName "<rs name>-", rs's namespace, the template's labels,
// annotations, finalizers and spec, owned by rs (ControllerRefFor).
capstan::core::v1::Pod PodFromTemplate(const capstan::apps::v1::ReplicaSet& rs);

struct ReplicaSetPlan {
  // Active orphans that match the selector: take ownership (not when rs is being deleted).
  std::vector<PodPtr> adopt;
  // Active pods rs owns that no longer match the selector: give up ownership (not when rs is
  // being deleted).
  std::vector<PodPtr> release;
  // The active pods rs owns once adoption and release are done (adopted ones included): what
  // counts as its replicas.
  std::vector<PodPtr> active;
  // len(active) - spec.replicas (replicas unset: 1).
  int diff = 0;
  // Pods to create (diff < 0), capped at the burst; 0 when rs is being deleted.
  int to_create = 0;
  // The least valuable active pods to delete (diff > 0), capped at the burst, in rank order;
  // none when rs is being deleted.
  std::vector<PodPtr> pods_to_delete;
};

// Decides what rs's reconcile does, as Kubernetes' syncReplicaSet / claimPods / manageReplicas:
// pods are the pods of rs's namespace (others are ignored, as are inactive pods and pods another
// controller owns). InvalidArgument when rs's selector does not parse.
absl::StatusOr<ReplicaSetPlan> PlanReplicaSet(const capstan::apps::v1::ReplicaSet& rs,
                                              const std::vector<PodPtr>& pods,
                                              int burst_replicas = kBurstReplicas);

// Kubernetes' slowStartBatch sizes for count operations: 1, 2, 4, 8, ... (starting at
// initial_batch_size), the last batch whatever remains. Empty for count <= 0.
std::vector<int> SlowStartBatchSizes(int count, int initial_batch_size = 1);

// The status rs should report given its active pods (ReplicaSetPlan::active, as counted before
// this reconcile's creates and deletes) and the error of this reconcile's creates/deletes:
// replicas, fullyLabeledReplicas (labels include every template label), readyReplicas,
// availableReplicas (ready for minReadySeconds at now), observedGeneration = metadata.generation,
// and the ReplicaFailure condition: added (reason FailedCreate or FailedDelete by the sign of
// diff, message the error) when manage_error is set and there is none, removed when
// manage_error is OK, otherwise kept as it is.
capstan::apps::v1::ReplicaSetStatus CalculateStatus(const capstan::apps::v1::ReplicaSet& rs,
                                                    const std::vector<PodPtr>& active, int diff,
                                                    const absl::Status& manage_error,
                                                    absl::Time now);

// How long until the next of pods that is ready but not yet available (minReadySeconds) becomes
// available; nullopt when none is waiting.
std::optional<absl::Duration> NextAvailableIn(const std::vector<PodPtr>& pods,
                                              int32_t min_ready_seconds, absl::Time now);

// Whether two statuses say the same (conditions compared in full).
bool SameStatus(const capstan::apps::v1::ReplicaSetStatus& a,
                const capstan::apps::v1::ReplicaSetStatus& b);

}  // namespace capstan::controllermanager::replicaset

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_PLAN_H_
