// Pod "networks" for simulated nodes: an address per pod from the node's CIDR, nothing on the host.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_NETWORK_H_
#define CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_NETWORK_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "services/node-agent/network/pod_network.h"

namespace capstan::nodeagent {

class SimulatedNetwork : public PodNetwork {
 public:
  // prefix: the first three octets of a /24, e.g. "10.64.3".
  explicit SimulatedNetwork(std::string prefix) : prefix_(std::move(prefix)) {}

  absl::StatusOr<PodNetworkStatus> SetUp(const std::string& pod_uid) override {
    absl::MutexLock lock(&mu_);
    auto it = pods_.find(pod_uid);
    if (it == pods_.end()) {
      int host = 2;  // .1 is the node's bridge
      while (used_.count(host) > 0) ++host;
      if (host > 254) return absl::ResourceExhaustedError(absl::StrCat(prefix_, ".0/24 is full"));
      used_.insert(host);
      it = pods_.emplace(pod_uid, host).first;
    }
    return PodNetworkStatus{"", absl::StrCat(prefix_, ".", it->second)};
  }
  absl::Status TearDown(const std::string& pod_uid) override {
    absl::MutexLock lock(&mu_);
    auto it = pods_.find(pod_uid);
    if (it != pods_.end()) {
      used_.erase(it->second);
      pods_.erase(it);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> ListPods() override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [uid, host] : pods_) out.push_back(uid);
    return out;
  }

 private:
  const std::string prefix_;
  absl::Mutex mu_;
  std::map<std::string, int> pods_ ABSL_GUARDED_BY(mu_);
  std::set<int> used_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_NETWORK_H_
