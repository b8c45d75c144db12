// The scheduler's vocabulary: plugin statuses and a pod's resource requests.
// Pure data and pure functions, no I/O (Kubernetes' pkg/scheduler/framework).
#ifndef CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_TYPES_H_
#define CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_TYPES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "proto/core_v1.pb.h"

namespace capstan::scheduler {

using Pod = ::capstan::core::v1::Pod;
using Node = ::capstan::core::v1::Node;

inline constexpr int64_t kMaxNodeScore = 100;
inline constexpr int64_t kMinNodeScore = 0;

// Kubernetes' framework.Code, the ones a filter can return.
enum class StatusCode {
  kSuccess,
  kUnschedulable,                 // may fit after other pods go away (preemption could help)
  kUnschedulableAndUnresolvable,  // will not fit on this node whatever happens to other pods
  kError,
};

// A plugin's answer: success, or a failure with one or more reasons worded as Kubernetes words
// them ("Insufficient cpu"). Each reason counts once per node in the "0/N nodes are available"
// message.
class Status {
 public:
  Status() = default;  // success
  Status(StatusCode code, std::vector<std::string> reasons)
      : code_(code), reasons_(std::move(reasons)) {}

  static Status Unschedulable(std::string reason) {
    return Status(StatusCode::kUnschedulable, {std::move(reason)});
  }
  static Status UnschedulableAndUnresolvable(std::string reason) {
    return Status(StatusCode::kUnschedulableAndUnresolvable, {std::move(reason)});
  }
  static Status Error(std::string reason) { return Status(StatusCode::kError, {std::move(reason)}); }

  bool ok() const { return code_ == StatusCode::kSuccess; }
  StatusCode code() const { return code_; }
  const std::vector<std::string>& reasons() const { return reasons_; }
  // The reasons joined with ", " (Kubernetes' Status.Message()).
  std::string Message() const;

 private:
  StatusCode code_ = StatusCode::kSuccess;
  std::vector<std::string> reasons_;
};

// The resources the scheduler accounts for.
struct Resource {
  int64_t milli_cpu = 0;
  int64_t memory = 0;  // bytes

  Resource& operator+=(const Resource& other) {
    milli_cpu += other.milli_cpu;
    memory += other.memory;
    return *this;
  }
  Resource& operator-=(const Resource& other) {
    milli_cpu -= other.milli_cpu;
    memory -= other.memory;
    return *this;
  }
  friend bool operator==(const Resource& a, const Resource& b) {
    return a.milli_cpu == b.milli_cpu && a.memory == b.memory;
  }
};

// Defaults the scoring plugins assume for a container that requests nothing
// (Kubernetes' DefaultMilliCPURequest / DefaultMemoryRequest), so best-effort pods still spread.
inline constexpr int64_t kDefaultMilliCpuRequest = 100;
inline constexpr int64_t kDefaultMemoryRequest = 200 * 1024 * 1024;

// What the pod asks for, as Kubernetes' resource.PodRequests computes it: the sum over the
// containers, raised to any single init container's request when that is larger, plus the pod's
// overhead. Unparseable quantities count as zero (admission rejects them before they get here).
Resource PodRequests(const Pod& pod);

// The same with kDefault*Request standing in for a container's missing cpu or memory request
// (Kubernetes' non-zero requests); used by the scoring plugins only, never to decide fit.
Resource PodNonZeroRequests(const Pod& pod);

// The pod a cycle schedules, with what plugins need from it worked out once per cycle instead of
// once per node (kube-scheduler's framework.PodInfo and PreFilter state). Implicit from a Pod so
// that a single plugin call (tests, preemption's what-ifs) needs no ceremony.
struct PodToSchedule {
  PodToSchedule(const Pod& p)  // NOLINT(google-explicit-constructor): see above
      : pod(p),
        requests(PodRequests(p)),
        non_zero_requests(PodNonZeroRequests(p)),
        constrains_nodes(!p.spec().node_selector().empty() ||
                         (p.spec().affinity().has_node_affinity() &&
                          p.spec().affinity().node_affinity()
                              .has_required_during_scheduling_ignored_during_execution())) {}
  const core::v1::PodSpec& spec() const { return pod.spec(); }
  const meta::v1::ObjectMeta& metadata() const { return pod.metadata(); }

  const Pod& pod;
  const Resource requests;
  const Resource non_zero_requests;
  // A nodeSelector or required node affinity: without one every node passes NodeAffinity, and
  // the node's labels need not be looked at.
  const bool constrains_nodes;
};

// Allocatable cpu, memory and pod count of a node; missing entries are zero.
Resource NodeAllocatable(const Node& node);
int64_t NodeAllowedPods(const Node& node);

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_TYPES_H_
