#include "services/scheduler/preemption.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <tuple>

#include "services/scheduler/queue/scheduling_queue.h"

namespace capstan::scheduler {
namespace {

// More important first: higher priority, then newer (later creation), then name for stability.
bool MoreImportant(const Pod& a, const Pod& b) {
  int32_t pa = PodPriority(a), pb = PodPriority(b);
  if (pa != pb) return pa > pb;
  const auto& ta = a.metadata().creation_timestamp();
  const auto& tb = b.metadata().creation_timestamp();
  // As Kubernetes' MoreImportantPod: at equal priority the pod that started earlier matters more,
  // so it is given back first and the newest is the victim.
  if (ta.seconds() != tb.seconds()) return ta.seconds() < tb.seconds();
  if (ta.nanos() != tb.nanos()) return ta.nanos() < tb.nanos();
  return std::tie(a.metadata().namespace_(), a.metadata().name()) <
         std::tie(b.metadata().namespace_(), b.metadata().name());
}

struct Candidate {
  std::string node_name;
  std::vector<Pod> victims;
  int64_t highest_priority = std::numeric_limits<int64_t>::min();
  int64_t priority_sum = 0;  // each shifted by 2^31 so negative priorities count as less
};

// Kubernetes' pickOneNodeForPreemption, without the PodDisruptionBudget and start-time criteria.
bool Better(const Candidate& a, const Candidate& b) {
  if (a.highest_priority != b.highest_priority) return a.highest_priority < b.highest_priority;
  if (a.priority_sum != b.priority_sum) return a.priority_sum < b.priority_sum;
  if (a.victims.size() != b.victims.size()) return a.victims.size() < b.victims.size();
  return a.node_name < b.node_name;
}

// The victims on `name` (in `scratch`, which is mutated and then restored), or nullopt.
std::optional<Candidate> SelectVictims(const Framework& framework, const Pod& pod,
                                       const std::string& name, Snapshot& scratch) {
  const int32_t priority = PodPriority(pod);
  NodeInfo saved = *scratch.Get(name);
  // Shared with the snapshot, not copied; only the victims are copied out.
  std::vector<std::shared_ptr<const Pod>> removed;
  for (const PodInfo& info : saved.pods()) {
    if (PodPriority(*info.pod) < priority) removed.push_back(info.pod);
  }
  if (removed.empty()) return std::nullopt;
  for (const auto& p : removed) scratch.GetMutable(name)->RemovePod(*p);

  std::optional<Candidate> result;
  if (framework.RunFilters(pod, *scratch.Get(name), scratch).ok()) {
    std::sort(removed.begin(), removed.end(),
              [](const auto& a, const auto& b) { return MoreImportant(*a, *b); });
    Candidate candidate;
    candidate.node_name = name;
    for (const auto& p : removed) {
      scratch.GetMutable(name)->AddPod(p);
      if (framework.RunFilters(pod, *scratch.Get(name), scratch).ok()) continue;  // reprieved
      scratch.GetMutable(name)->RemovePod(*p);
      candidate.victims.push_back(*p);
    }
    if (!candidate.victims.empty()) {
      for (const Pod& v : candidate.victims) {
        int64_t p = PodPriority(v);
        candidate.highest_priority = std::max(candidate.highest_priority, p);
        candidate.priority_sum += p + (int64_t{1} << 31);
      }
      result = std::move(candidate);
    }
  }
  *scratch.GetMutable(name) = std::move(saved);
  return result;
}

}  // namespace

bool MayPreempt(const Pod& pod) { return pod.spec().preemption_policy() != "Never"; }

std::optional<PreemptionPlan> FindPreemption(const Framework& framework, const Pod& pod,
                                             const Snapshot& snapshot) {
  if (!MayPreempt(pod)) return std::nullopt;
  std::optional<Snapshot> scratch;  // copied on the first node worth trying
  std::optional<Candidate> best;
  for (const NodeInfo& node : snapshot.nodes()) {
    Status status = framework.RunFilters(pod, node, snapshot);
    // Fits already (nothing to preempt for), or no eviction could make it fit.
    if (status.code() != StatusCode::kUnschedulable) continue;
    if (!scratch.has_value()) scratch.emplace(snapshot);
    std::optional<Candidate> candidate = SelectVictims(framework, pod, node.name(), *scratch);
    if (candidate.has_value() && (!best.has_value() || Better(*candidate, *best))) {
      best = std::move(candidate);
    }
  }
  if (!best.has_value()) return std::nullopt;
  return PreemptionPlan{std::move(best->node_name), std::move(best->victims)};
}

}  // namespace capstan::scheduler
