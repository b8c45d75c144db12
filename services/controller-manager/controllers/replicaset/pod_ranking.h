// Pure facts about pods that the ReplicaSet controller decides with: which pods count, which are
// ready or available, and which are worth least (deleted first on a scale-down).
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_POD_RANKING_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_POD_RANKING_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"

namespace capstan::controllermanager::replicaset {

using PodPtr = std::shared_ptr<const capstan::core::v1::Pod>;

// A meta Time as an absl::Time; an unset (zero) Time is absl::InfinitePast(), Go's zero time.
absl::Time FromMetaTime(const capstan::meta::v1::Time& t);
capstan::meta::v1::Time ToMetaTime(absl::Time t);

// Kubernetes' IsPodActive: not being deleted and not in phase Succeeded or Failed. Only active
// pods count towards a ReplicaSet's replicas.
bool IsPodActive(const capstan::core::v1::Pod& pod);

// The Ready condition's status is True.
bool IsPodReady(const capstan::core::v1::Pod& pod);

// The Ready condition's lastTransitionTime (InfinitePast when there is no Ready condition or it
// has no time).
absl::Time PodReadySince(const capstan::core::v1::Pod& pod);

// Kubernetes' IsPodAvailable: ready, and ready for at least min_ready_seconds at now (a pod whose
// Ready condition has no transition time is only available when min_ready_seconds is 0).
bool IsPodAvailable(const capstan::core::v1::Pod& pod, int32_t min_ready_seconds, absl::Time now);

// The highest restartCount among the pod's containers.
int32_t MaxContainerRestarts(const capstan::core::v1::Pod& pod);

// Kubernetes' ActivePods ordering: true when a is worth less than b, so a scale-down deletes it
// first. Earlier criteria win:
//   1. unassigned (no spec.nodeName) < assigned
//   2. phase Pending < Unknown < Running
//   3. not ready < ready
//   4. both ready: ready for less time < ready longer (an unknown ready time counts as least)
//   5. more container restarts < fewer
//   6. newer creationTimestamp < older (an unset one counts as newest)
//   7. then by name, so the order is total and deterministic.
bool DeleteBefore(const capstan::core::v1::Pod& a, const capstan::core::v1::Pod& b);

// Sorts pods so that the least valuable come first (DeleteBefore).
void RankForDeletion(std::vector<PodPtr>* pods);

}  // namespace capstan::controllermanager::replicaset

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_POD_RANKING_H_
