// One network namespace per pod, with its own IP on the node's bridge (what a CNI bridge plugin
// with host-local IPAM does for a kubelet).
//
// The containers of a pod join the namespace by path (ContainerConfig::netns_path). Everything is
// relative to the network namespace the agent itself runs in, so several agents on one machine,
// each in its own namespace, do not clash as long as their name prefixes differ.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_NETWORK_POD_NETWORK_H_
#define CAPSTAN_SERVICES_NODE_AGENT_NETWORK_POD_NETWORK_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace capstan::nodeagent {

struct PodNetworkStatus {
  std::string netns_path;  // e.g. /run/netns/capstan-node1-<pod uid>
  std::string ip;          // e.g. 10.88.0.5
};

class PodNetwork {
 public:
  virtual ~PodNetwork() = default;
  // Creates the pod's namespace, veth pair and address; idempotent (the second call returns what
  // the first made, also after an agent restart). ResourceExhausted when the pod CIDR is full.
  virtual absl::StatusOr<PodNetworkStatus> SetUp(const std::string& pod_uid) = 0;
  // Removes the namespace, its veth and releases the address. OK when there is nothing to remove.
  virtual absl::Status TearDown(const std::string& pod_uid) = 0;
  // The pod uids that have a namespace now (to clean up after pods deleted while the agent was down).
  virtual absl::StatusOr<std::vector<std::string>> ListPods() = 0;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_NETWORK_POD_NETWORK_H_
