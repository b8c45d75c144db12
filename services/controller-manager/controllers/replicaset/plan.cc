#include "services/controller-manager/controllers/replicaset/plan.h"

#include <algorithm>
#include <utility>

#include "google/protobuf/util/message_differencer.h"
#include "lib/api/labels.h"

namespace capstan::controllermanager::replicaset {

using capstan::apps::v1::ReplicaSet;
using capstan::apps::v1::ReplicaSetStatus;
using capstan::core::v1::Pod;

const capstan::meta::v1::OwnerReference* ControllerRef(const capstan::meta::v1::ObjectMeta& meta) {
  for (const auto& ref : meta.owner_references()) {
    if (ref.has_controller() && ref.controller()) return &ref;
  }
  return nullptr;
}

capstan::meta::v1::OwnerReference ControllerRefFor(const ReplicaSet& rs) {
  capstan::meta::v1::OwnerReference ref;
  ref.set_api_version("apps/v1");
  ref.set_kind("ReplicaSet");
  ref.set_name(rs.metadata().name());
  ref.set_uid(rs.metadata().uid());
  ref.set_controller(true);
  ref.set_block_owner_deletion(true);
  return ref;
}

Pod PodFromTemplate(const ReplicaSet& rs) {
  const auto& tmpl = rs.spec().template_();
  Pod pod;
  pod.set_api_version("v1");
  pod.set_kind("Pod");
  auto* meta = pod.mutable_metadata();
  meta->set_generate_name(rs.metadata().name() + "-");
  meta->set_namespace_(rs.metadata().namespace_());
  *meta->mutable_labels() = tmpl.metadata().labels();
  *meta->mutable_annotations() = tmpl.metadata().annotations();
  *meta->mutable_finalizers() = tmpl.metadata().finalizers();
  *meta->add_owner_references() = ControllerRefFor(rs);
  *pod.mutable_spec() = tmpl.spec();
  return pod;
}

absl::StatusOr<ReplicaSetPlan> PlanReplicaSet(const ReplicaSet& rs, const std::vector<PodPtr>& pods,
                                              int burst_replicas) {
  absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(rs.spec().selector());
  if (!selector.ok()) return selector.status();
  const bool deleting = rs.metadata().has_deletion_timestamp();
  const std::string& uid = rs.metadata().uid();

  ReplicaSetPlan plan;
  for (const PodPtr& pod : pods) {
    if (pod->metadata().namespace_() != rs.metadata().namespace_() || !IsPodActive(*pod)) continue;
    const bool matches = selector->Matches(pod->metadata().labels());
    const auto* ref = ControllerRef(pod->metadata());
    if (ref != nullptr) {
      if (ref->uid() != uid) continue;  // another controller's
      if (matches) {
        plan.active.push_back(pod);
      } else if (!deleting) {
        plan.release.push_back(pod);
      }
      continue;
    }
    if (deleting || !matches) continue;
    plan.adopt.push_back(pod);
    plan.active.push_back(pod);
  }

  const int replicas = rs.spec().has_replicas() ? rs.spec().replicas() : 1;
  plan.diff = static_cast<int>(plan.active.size()) - replicas;
  if (deleting) return plan;
  if (plan.diff < 0) {
    plan.to_create = std::min(-plan.diff, burst_replicas);
  } else if (plan.diff > 0) {
    std::vector<PodPtr> ranked = plan.active;
    RankForDeletion(&ranked);
    ranked.resize(std::min(plan.diff, burst_replicas));
    plan.pods_to_delete = std::move(ranked);
  }
  return plan;
}

std::vector<int> SlowStartBatchSizes(int count, int initial_batch_size) {
  std::vector<int> sizes;
  int remaining = count;
  int batch = std::min(remaining, std::max(initial_batch_size, 1));
  while (batch > 0) {
    sizes.push_back(batch);
    remaining -= batch;
    batch = std::min(2 * batch, remaining);
  }
  return sizes;
}

ReplicaSetStatus CalculateStatus(const ReplicaSet& rs, const std::vector<PodPtr>& active, int diff,
                                 const absl::Status& manage_error, absl::Time now) {
  ReplicaSetStatus status = rs.status();
  const auto& template_labels = rs.spec().template_().metadata().labels();
  int fully_labeled = 0, ready = 0, available = 0;
  for (const PodPtr& pod : active) {
    const auto& labels = pod->metadata().labels();
    const bool fully = std::all_of(template_labels.begin(), template_labels.end(),
                                   [&](const auto& kv) {
                                     auto it = labels.find(kv.first);
                                     return it != labels.end() && it->second == kv.second;
                                   });
    if (fully) ++fully_labeled;
    if (IsPodReady(*pod)) {
      ++ready;
      if (IsPodAvailable(*pod, rs.spec().min_ready_seconds(), now)) ++available;
    }
  }
  status.set_replicas(static_cast<int32_t>(active.size()));
  status.set_fully_labeled_replicas(fully_labeled);
  status.set_ready_replicas(ready);
  status.set_available_replicas(available);
  status.set_observed_generation(rs.metadata().generation());

  auto* conditions = status.mutable_conditions();
  auto failure = std::find_if(conditions->begin(), conditions->end(),
                              [](const auto& c) { return c.type() == "ReplicaFailure"; });
  if (!manage_error.ok() && failure == conditions->end()) {
    auto* condition = conditions->Add();
    condition->set_type("ReplicaFailure");
    condition->set_status("True");
    *condition->mutable_last_transition_time() = ToMetaTime(now);
    condition->set_reason(diff < 0 ? "FailedCreate" : diff > 0 ? "FailedDelete" : "");
    condition->set_message(std::string(manage_error.message()));
  } else if (manage_error.ok() && failure != conditions->end()) {
    conditions->erase(failure);
  }
  return status;
}

std::optional<absl::Duration> NextAvailableIn(const std::vector<PodPtr>& pods,
                                              int32_t min_ready_seconds, absl::Time now) {
  if (min_ready_seconds <= 0) return std::nullopt;
  std::optional<absl::Duration> next;
  for (const PodPtr& pod : pods) {
    if (!IsPodReady(*pod) || IsPodAvailable(*pod, min_ready_seconds, now)) continue;
    const absl::Time since = PodReadySince(*pod);
    if (since == absl::InfinitePast()) continue;  // never becomes available by time alone
    // Available once strictly past since + minReadySeconds: check just after.
    const absl::Duration wait =
        std::max(since + absl::Seconds(min_ready_seconds) - now, absl::ZeroDuration()) +
        absl::Milliseconds(1);
    if (!next || wait < *next) next = wait;
  }
  return next;
}

bool SameStatus(const ReplicaSetStatus& a, const ReplicaSetStatus& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace capstan::controllermanager::replicaset
