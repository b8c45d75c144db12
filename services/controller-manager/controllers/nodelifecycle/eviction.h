// Taint-based eviction decisions (Kubernetes' taint eviction controller, formerly the
// NoExecuteTaintManager), as a pure function of a pod's tolerations, its node's NoExecute taints
// and the time.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_EVICTION_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_EVICTION_H_

#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/core_v1.pb.h"

namespace capstan::controllermanager::nodelifecycle {

// A taint of the pod's node and since when it has been there (its timeAdded, or when the
// controller first saw it if it has none).
struct TaintSince {
  capstan::core::v1::Taint taint;
  absl::Time since;
};

struct EvictionDecision {
  enum class Action {
    kKeep,      // no NoExecute taint, or every one tolerated forever
    kEvictNow,  // a NoExecute taint not tolerated, or a tolerationSeconds already used up
    kEvictAt,   // every NoExecute taint tolerated, the earliest bound runs out at `at`
  };
  Action action = Action::kKeep;
  absl::Time at = absl::InfiniteFuture();  // kEvictAt only

  bool operator==(const EvictionDecision& o) const { return action == o.action && at == o.at; }
};

// What to do with a pod that has `tolerations` on a node with `taints` (taints of other effects
// are ignored) at `now`. As Kubernetes' GetMatchingTolerations + getMinTolerationTime, each
// NoExecute taint is matched by the first toleration that tolerates it; a matched toleration's
// tolerationSeconds counts from that taint's `since` (0 or negative: evict now), and the pod goes
// when the first of those runs out. Tolerations without tolerationSeconds tolerate forever.
EvictionDecision DecideEviction(
    const google::protobuf::RepeatedPtrField<capstan::core::v1::Toleration>& tolerations,
    const std::vector<TaintSince>& taints, absl::Time now);

// Pod status changes that go with the decisions; each returns whether it changed pod.
//
// Kubernetes' MarkPodsNotReady: a pod on a node whose agent went silent is no longer Ready (so
// Services stop sending it traffic): a Ready=True condition becomes False at now.
bool MarkPodNotReady(capstan::core::v1::Pod* pod, absl::Time now);
// Before a taint-based eviction: the DisruptionTarget condition (True, DeletionByTaintManager,
// "Taint manager: deleting due to NoExecute taint"), so the pod's owner can tell why it went.
bool MarkDisruptionTarget(capstan::core::v1::Pod* pod, absl::Time now);

}  // namespace capstan::controllermanager::nodelifecycle

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_EVICTION_H_
