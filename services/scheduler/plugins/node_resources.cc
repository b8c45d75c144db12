// NodeResourcesFit (filter + LeastAllocated score) and NodeResourcesBalancedAllocation.
#include <algorithm>
#include <cmath>

#include "services/scheduler/plugins/plugins.h"

namespace capstan::scheduler::plugins {
namespace {

int64_t LeastRequestedScore(int64_t requested, int64_t capacity) {
  if (capacity == 0) return 0;
  if (requested > capacity) return 0;
  return (capacity - requested) * kMaxNodeScore / capacity;
}

}  // namespace

Status NodeResourcesFit::Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot&) const {
  std::vector<std::string> reasons;
  if (node.pod_count() + 1 > node.allowed_pods()) reasons.push_back(kReasonTooManyPods);
  Resource request = pod.requests;
  if (request.milli_cpu != 0 || request.memory != 0) {
    const Resource& allocatable = node.allocatable();
    const Resource& requested = node.requested();
    if (request.milli_cpu > 0 && allocatable.milli_cpu < request.milli_cpu + requested.milli_cpu) {
      reasons.push_back(kReasonInsufficientCpu);
    }
    if (request.memory > 0 && allocatable.memory < request.memory + requested.memory) {
      reasons.push_back(kReasonInsufficientMemory);
    }
  }
  if (reasons.empty()) return Status();
  return Status(StatusCode::kUnschedulable, std::move(reasons));
}

int64_t NodeResourcesFit::Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot&) const {
  Resource requested = node.non_zero_requested();
  requested += pod.non_zero_requests;
  const Resource& allocatable = node.allocatable();
  // Kubernetes' default resources cpu and memory, weight 1 each.
  int64_t cpu = LeastRequestedScore(requested.milli_cpu, allocatable.milli_cpu);
  int64_t memory = LeastRequestedScore(requested.memory, allocatable.memory);
  return (cpu + memory) / 2;
}

int64_t BalancedAllocation::Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot&) const {
  // Kubernetes (1.26+) balances actual requests, not the non-zero defaults.
  Resource requested = node.requested();
  requested += pod.requests;
  const Resource& allocatable = node.allocatable();
  // Runs for every feasible node of every cycle: no allocation.
  if (allocatable.milli_cpu == 0 || allocatable.memory == 0) {
    return kMaxNodeScore;  // one resource or none: its standard deviation is 0
  }
  auto fraction = [](int64_t req, int64_t alloc) {
    return std::min(1.0, static_cast<double>(req) / static_cast<double>(alloc));
  };
  double std_dev = std::abs((fraction(requested.milli_cpu, allocatable.milli_cpu) -
                             fraction(requested.memory, allocatable.memory)) /
                            2);
  return static_cast<int64_t>((1 - std_dev) * static_cast<double>(kMaxNodeScore));
}

}  // namespace capstan::scheduler::plugins
