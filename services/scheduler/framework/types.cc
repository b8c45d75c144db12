#include "services/scheduler/framework/types.h"

#include <algorithm>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "lib/api/quantity.h"

namespace capstan::scheduler {
namespace {

using QuantityMap = ::google::protobuf::Map<std::string, ::capstan::meta::v1::Quantity>;

int64_t Milli(const QuantityMap& map, const std::string& key, bool* present = nullptr) {
  auto it = map.find(key);
  if (present != nullptr) *present = it != map.end();
  if (it == map.end()) return 0;
  absl::StatusOr<int64_t> value = api::ParseQuantityMilli(it->second.string());
  return value.ok() ? *value : 0;
}

int64_t Value(const QuantityMap& map, const std::string& key, bool* present = nullptr) {
  auto it = map.find(key);
  if (present != nullptr) *present = it != map.end();
  if (it == map.end()) return 0;
  absl::StatusOr<int64_t> value = api::ParseQuantityValue(it->second.string());
  return value.ok() ? *value : 0;
}

Resource ContainerRequests(const core::v1::Container& container, bool non_zero) {
  const QuantityMap& requests = container.resources().requests();
  bool has_cpu = false;
  bool has_memory = false;
  Resource r;
  r.milli_cpu = Milli(requests, "cpu", &has_cpu);
  r.memory = Value(requests, "memory", &has_memory);
  if (non_zero) {
    // Kubernetes substitutes the default only when the request is absent, not when it is "0".
    if (!has_cpu) r.milli_cpu = kDefaultMilliCpuRequest;
    if (!has_memory) r.memory = kDefaultMemoryRequest;
  }
  return r;
}

Resource Requests(const Pod& pod, bool non_zero) {
  Resource total;
  for (const core::v1::Container& c : pod.spec().containers()) total += ContainerRequests(c, non_zero);
  for (const core::v1::Container& c : pod.spec().init_containers()) {
    Resource init = ContainerRequests(c, non_zero);
    total.milli_cpu = std::max(total.milli_cpu, init.milli_cpu);
    total.memory = std::max(total.memory, init.memory);
  }
  const QuantityMap& overhead = pod.spec().overhead();
  total.milli_cpu += Milli(overhead, "cpu");
  total.memory += Value(overhead, "memory");
  return total;
}

}  // namespace

std::string Status::Message() const { return absl::StrJoin(reasons_, ", "); }

Resource PodRequests(const Pod& pod) { return Requests(pod, /*non_zero=*/false); }

Resource PodNonZeroRequests(const Pod& pod) { return Requests(pod, /*non_zero=*/true); }

Resource NodeAllocatable(const Node& node) {
  Resource r;
  r.milli_cpu = Milli(node.status().allocatable(), "cpu");
  r.memory = Value(node.status().allocatable(), "memory");
  return r;
}

int64_t NodeAllowedPods(const Node& node) { return Value(node.status().allocatable(), "pods"); }

}  // namespace capstan::scheduler
