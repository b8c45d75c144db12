// The Deployment controller's decisions, as pure functions over (deployment, replica sets, now):
// Kubernetes' pkg/controller/deployment (sync.go, rolling.go, recreate.go, progress.go,
// util/deployment_util.go) without the API calls. PlanRollout returns what one reconcile pass
// writes; the controller (deployment_controller.h) only executes it, so tests can drive a whole
// rollout step by step without threads or a server.
//
//   Plan plan = PlanRollout(deployment, replica_sets_in_namespace, absl::Now());
//   for (const ReplicaSetAction& a : plan.actions) ... create / update / delete a.replica_set
//   if (plan.revision) ... write the deployment's revision annotation
//   if (plan.status) ... UpdateStatus
//   requeue after plan.requeue_after (the progress deadline check), when non-zero
//
// One ReplicaSet per pod template: its name is "<deployment>-<pod-template-hash>", the hash (see
// ComputeHash) is added as label "pod-template-hash" to its selector, its template's labels and
// its own labels, and it carries a controller owner reference to the deployment.
//
// Where this differs from Kubernetes, on purpose (both make the rollout bounds hold against an
// informer cache that lags the ReplicaSet controller):
// - a ReplicaSet counts as max(spec.replicas, status.replicas) pods when deciding how far the new
//   ReplicaSet may scale up, and how much a scale-up of spec.replicas may add at once (pods of a
//   scaled-down ReplicaSet exist until its controller deletes them; the rest of such a scale-up
//   comes with the rollout, within maxSurge), and
// - a ReplicaSet counts as min(status.availableReplicas, spec.replicas) available pods when deciding
//   how far old ReplicaSets may scale down (its status may still count pods being deleted).
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_ROLLOUT_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_ROLLOUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"

namespace capstan::controllermanager::deployment {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::DeploymentCondition;
using capstan::apps::v1::DeploymentStatus;
using capstan::apps::v1::ReplicaSet;

inline constexpr char kPodTemplateHashLabel[] = "pod-template-hash";
inline constexpr char kRevisionAnnotation[] = "deployment.kubernetes.io/revision";
inline constexpr char kRevisionHistoryAnnotation[] = "deployment.kubernetes.io/revision-history";
inline constexpr char kDesiredReplicasAnnotation[] = "deployment.kubernetes.io/desired-replicas";
inline constexpr char kMaxReplicasAnnotation[] = "deployment.kubernetes.io/max-replicas";

// Condition types and reasons (Kubernetes' names).
inline constexpr char kAvailable[] = "Available";
inline constexpr char kProgressing[] = "Progressing";
inline constexpr char kMinimumReplicasAvailable[] = "MinimumReplicasAvailable";
inline constexpr char kMinimumReplicasUnavailable[] = "MinimumReplicasUnavailable";
inline constexpr char kNewReplicaSetCreated[] = "NewReplicaSetCreated";
inline constexpr char kFoundNewReplicaSet[] = "FoundNewReplicaSet";
inline constexpr char kReplicaSetUpdated[] = "ReplicaSetUpdated";
inline constexpr char kNewReplicaSetAvailable[] = "NewReplicaSetAvailable";
inline constexpr char kProgressDeadlineExceeded[] = "ProgressDeadlineExceeded";
inline constexpr char kDeploymentPaused[] = "DeploymentPaused";
inline constexpr char kDeploymentResumed[] = "DeploymentResumed";

// ---------------------------------------------------------------------------------------------
// Pod template hash

// Kubernetes' rand.SafeEncodeString: every byte of text mapped onto the alphabet
// "bcdfghjklmnpqrstvwxz2456789" (no vowels, no look-alikes), byte value modulo 27.
std::string SafeEncodeString(absl::string_view text);

// The pod-template-hash of template: FNV-1a 32-bit over the template's deterministic protobuf
// serialization (then the collision count's decimal digits when set), its decimal digits safe-
// encoded. Stable across processes and runs for the same template.
std::string ComputeHash(const capstan::core::v1::PodTemplateSpec& pod_template,
                        std::optional<int32_t> collision_count);

// Whether a and b are the same template once the pod-template-hash label is removed from both
// (Kubernetes' EqualIgnoreHash).
bool EqualIgnoreHash(const capstan::core::v1::PodTemplateSpec& a,
                     const capstan::core::v1::PodTemplateSpec& b);

// ---------------------------------------------------------------------------------------------
// maxSurge / maxUnavailable

// An IntOrString as a count of total: the number itself, or "N%" of total rounded up (round_up)
// or down. InvalidArgument for a string that is not a percentage.
absl::StatusOr<int32_t> ScaledValue(const capstan::meta::v1::IntOrString& value, int32_t total,
                                    bool round_up);

struct Fenceposts {
  int32_t max_surge = 0;
  int32_t max_unavailable = 0;
};
// The deployment's maxSurge (rounded up) and maxUnavailable (rounded down) against
// spec.replicas; when both come out 0, maxUnavailable is 1 (Kubernetes' ResolveFenceposts:
// a rollout must be able to move). Zero for a Recreate deployment; unparsable values count as 0.
Fenceposts ResolveFenceposts(const Deployment& deployment);
// maxSurge of a RollingUpdate deployment, 0 otherwise.
int32_t MaxSurge(const Deployment& deployment);
// maxUnavailable of a RollingUpdate deployment, at most spec.replicas; 0 otherwise.
int32_t MaxUnavailable(const Deployment& deployment);

// ---------------------------------------------------------------------------------------------
// Small helpers over replica sets (exposed for tests and for the CLI)

int32_t Replicas(const ReplicaSet& rs);  // spec.replicas (1 when unset, as defaulting does)
// The revision annotation as a number; 0 when missing or not a number.
int64_t Revision(const ReplicaSet& rs);
// The new ReplicaSet of deployment among replica_sets: the oldest whose template equals the
// deployment's ignoring the hash label (Kubernetes' FindNewReplicaSet). Null when none.
const ReplicaSet* FindNewReplicaSet(const Deployment& deployment,
                                    const std::vector<ReplicaSet>& replica_sets);

// ---------------------------------------------------------------------------------------------
// The plan of one reconcile pass

struct ReplicaSetAction {
  enum class Type { kCreate, kUpdate, kDelete };
  Type type = Type::kUpdate;
  // kCreate: the object to create. kUpdate: the whole object to write, carrying the resourceVersion
  // it was planned from (a Conflict means the plan was made on stale data: replan). kDelete: the
  // object to delete (its uid is the delete's precondition).
  ReplicaSet replica_set;
};

struct PlannedEvent {
  std::string type;  // Normal, Warning
  std::string reason;
  std::string message;
};

struct Plan {
  // In order. Each ReplicaSet appears at most once.
  std::vector<ReplicaSetAction> actions;
  // When set: the deployment's deployment.kubernetes.io/revision annotation must become this
  // (written with Update, not UpdateStatus, as Capstan's status subresource changes only status).
  std::optional<std::string> revision;
  // When set: the status to write (it differs from the deployment's).
  std::optional<DeploymentStatus> status;
  // Reconcile again after this long even if nothing changes (to notice a progress deadline);
  // zero: only on change.
  absl::Duration requeue_after = absl::ZeroDuration();
  std::vector<PlannedEvent> events;
};

// What the Deployment controller does for deployment in one pass. replica_sets: every ReplicaSet
// of the deployment's namespace (the ones it owns are found by controller reference; orphans whose
// labels match its selector are adopted, ones it owns that no longer match are released, ones
// another controller owns are ignored). now: the time stamped on changed conditions and compared
// with the progress deadline.
//
// Per strategy, as Kubernetes' syncDeployment: a deployment being deleted only gets its status;
// a paused one, or one whose spec.replicas changed (a ReplicaSet's desired-replicas annotation
// differs), is scaled proportionally (no rollout progress); otherwise RollingUpdate or Recreate
// makes one step of the rollout, and old ReplicaSets with 0 replicas beyond revisionHistoryLimit
// are deleted once the rollout is complete (or while paused).
Plan PlanRollout(const Deployment& deployment, const std::vector<ReplicaSet>& replica_sets,
                 absl::Time now);

// The status the deployment would have with these (its own) replica sets: counts from the
// ReplicaSets' status, condition Available, conditions of deployment.status kept (Kubernetes'
// calculateStatus). new_rs may be null.
DeploymentStatus CalculateStatus(const Deployment& deployment,
                                 const std::vector<const ReplicaSet*>& all, const ReplicaSet* new_rs,
                                 absl::Time now);

// Whether status says the rollout is complete: updated, total and available replicas all equal
// spec.replicas and the newest generation observed (Kubernetes' DeploymentComplete).
bool DeploymentComplete(const Deployment& deployment, const DeploymentStatus& status);

// ---------------------------------------------------------------------------------------------
// Rollback (`capstanctl rollout undo`; Kubernetes does this in kubectl, client-side)

// The pod template to write into deployment.spec.template to roll back to to_revision (0: the
// revision before the current one, i.e. the second-highest revision among its ReplicaSets).
// replica_sets: the deployment's ReplicaSets (owned by it; others are ignored). The result is
// that ReplicaSet's template without its pod-template-hash label. Writing it makes the old
// ReplicaSet the new one again: the controller gives it the next revision (its old revision goes
// to deployment.kubernetes.io/revision-history) and scales it up.
// Errors: FailedPrecondition when the deployment is paused ("resume it first", as kubectl);
// NotFound when there is no such revision (or, for 0, no previous one).
// *unchanged (when not null) tells whether the template already equals the deployment's (kubectl
// then reports "skipped rollback").
absl::StatusOr<capstan::core::v1::PodTemplateSpec> RollbackTemplate(
    const Deployment& deployment, const std::vector<ReplicaSet>& replica_sets, int64_t to_revision,
    bool* unchanged = nullptr);

}  // namespace capstan::controllermanager::deployment

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_DEPLOYMENT_ROLLOUT_H_
