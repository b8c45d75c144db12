#include "services/controller-manager/controllers/nodelifecycle/eviction.h"

#include <algorithm>
#include <cstdint>

#include "lib/api/meta_time.h"
#include "lib/api/taints.h"

namespace capstan::controllermanager::nodelifecycle {

EvictionDecision DecideEviction(
    const google::protobuf::RepeatedPtrField<capstan::core::v1::Toleration>& tolerations,
    const std::vector<TaintSince>& taints, absl::Time now) {
  using Action = EvictionDecision::Action;
  absl::Time deadline = absl::InfiniteFuture();
  for (const TaintSince& t : taints) {
    if (t.taint.effect() != api::kTaintEffectNoExecute) continue;
    const capstan::core::v1::Toleration* toleration = api::FirstTolerationOf(tolerations, t.taint);
    if (toleration == nullptr) return {Action::kEvictNow};
    if (!toleration->has_toleration_seconds()) continue;  // tolerated forever
    // No time left at all, whenever the taint came (Kubernetes' getMinTolerationTime).
    if (toleration->toleration_seconds() <= 0) return {Action::kEvictNow};
    deadline = std::min(deadline, t.since + absl::Seconds(toleration->toleration_seconds()));
  }
  if (deadline == absl::InfiniteFuture()) return {Action::kKeep};
  if (deadline <= now) return {Action::kEvictNow};
  return {Action::kEvictAt, deadline};
}

bool MarkPodNotReady(capstan::core::v1::Pod* pod, absl::Time now) {
  for (auto& condition : *pod->mutable_status()->mutable_conditions()) {
    if (condition.type() != "Ready") continue;
    if (condition.status() == "False") return false;
    condition.set_status("False");
    *condition.mutable_last_transition_time() = api::ToMetaTime(now);
    return true;
  }
  return false;
}

bool MarkDisruptionTarget(capstan::core::v1::Pod* pod, absl::Time now) {
  capstan::core::v1::PodCondition* condition = nullptr;
  for (auto& c : *pod->mutable_status()->mutable_conditions()) {
    if (c.type() == "DisruptionTarget") condition = &c;
  }
  if (condition != nullptr && condition->status() == "True" &&
      condition->reason() == "DeletionByTaintManager") {
    return false;
  }
  if (condition == nullptr) condition = pod->mutable_status()->add_conditions();
  condition->set_type("DisruptionTarget");
  condition->set_status("True");
  condition->set_reason("DeletionByTaintManager");
  condition->set_message("Taint manager: deleting due to NoExecute taint");
  *condition->mutable_last_transition_time() = api::ToMetaTime(now);
  return true;
}

}  // namespace capstan::controllermanager::nodelifecycle
