#include "services/controller-manager/controllers/replicaset/pod_ranking.h"

#include <algorithm>
#include <string>

namespace capstan::controllermanager::replicaset {
namespace {

using capstan::core::v1::Pod;

const capstan::core::v1::PodCondition* ReadyCondition(const Pod& pod) {
  for (const auto& condition : pod.status().conditions()) {
    if (condition.type() == "Ready") return &condition;
  }
  return nullptr;
}

int PhaseOrdinal(const std::string& phase) {
  if (phase == "Unknown") return 1;
  if (phase == "Running") return 2;
  return 0;  // Pending, and anything else (as Go's missing map key)
}

// Go's afterOrZero: a zero time sorts first; otherwise the later time sorts first.
bool AfterOrZero(absl::Time t1, absl::Time t2) {
  if (t1 == absl::InfinitePast() || t2 == absl::InfinitePast()) {
    return t1 == absl::InfinitePast();
  }
  return t1 > t2;
}

}  // namespace

absl::Time FromMetaTime(const capstan::meta::v1::Time& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

capstan::meta::v1::Time ToMetaTime(absl::Time t) {
  capstan::meta::v1::Time out;
  const int64_t nanos = absl::ToUnixNanos(t);
  int64_t seconds = nanos / 1000000000;
  int64_t rest = nanos % 1000000000;
  if (rest < 0) {
    rest += 1000000000;
    --seconds;
  }
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(rest));
  return out;
}

bool IsPodActive(const Pod& pod) {
  return !pod.metadata().has_deletion_timestamp() && pod.status().phase() != "Succeeded" &&
         pod.status().phase() != "Failed";
}

bool IsPodReady(const Pod& pod) {
  const auto* ready = ReadyCondition(pod);
  return ready != nullptr && ready->status() == "True";
}

absl::Time PodReadySince(const Pod& pod) {
  const auto* ready = ReadyCondition(pod);
  return ready == nullptr ? absl::InfinitePast() : FromMetaTime(ready->last_transition_time());
}

bool IsPodAvailable(const Pod& pod, int32_t min_ready_seconds, absl::Time now) {
  if (!IsPodReady(pod)) return false;
  if (min_ready_seconds <= 0) return true;
  const absl::Time since = PodReadySince(pod);
  return since != absl::InfinitePast() && since + absl::Seconds(min_ready_seconds) < now;
}

int32_t MaxContainerRestarts(const Pod& pod) {
  int32_t max = 0;
  for (const auto& status : pod.status().container_statuses()) {
    max = std::max(max, status.restart_count());
  }
  return max;
}

bool DeleteBefore(const Pod& a, const Pod& b) {
  const bool a_assigned = !a.spec().node_name().empty();
  const bool b_assigned = !b.spec().node_name().empty();
  if (a_assigned != b_assigned) return !a_assigned;

  const int a_phase = PhaseOrdinal(a.status().phase());
  const int b_phase = PhaseOrdinal(b.status().phase());
  if (a_phase != b_phase) return a_phase < b_phase;

  const bool a_ready = IsPodReady(a);
  const bool b_ready = IsPodReady(b);
  if (a_ready != b_ready) return !a_ready;

  if (a_ready && b_ready) {
    const absl::Time a_since = PodReadySince(a);
    const absl::Time b_since = PodReadySince(b);
    if (a_since != b_since) return AfterOrZero(a_since, b_since);
  }

  const int32_t a_restarts = MaxContainerRestarts(a);
  const int32_t b_restarts = MaxContainerRestarts(b);
  if (a_restarts != b_restarts) return a_restarts > b_restarts;

  const absl::Time a_created = FromMetaTime(a.metadata().creation_timestamp());
  const absl::Time b_created = FromMetaTime(b.metadata().creation_timestamp());
  if (a_created != b_created) return AfterOrZero(a_created, b_created);

  return a.metadata().name() < b.metadata().name();
}

void RankForDeletion(std::vector<PodPtr>* pods) {
  std::sort(pods->begin(), pods->end(),
            [](const PodPtr& a, const PodPtr& b) { return DeleteBefore(*a, *b); });
}

}  // namespace capstan::controllermanager::replicaset
