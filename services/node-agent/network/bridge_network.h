// PodNetwork as the CNI bridge plugin with host-local IPAM does it, using iproute2's `ip`:
//
//   bridge (options.bridge)  10.88.0.1/24, the pods' gateway; made on first use
//     +-- cpv<hash> (veth) <-> eth0 in /run/netns/<prefix><pod uid>  10.88.0.N/24
//
// Addresses are reserved in the state directory, one file per address (named by the address,
// holding the pod uid), created atomically so that concurrent SetUp calls, also from several
// processes, never hand out one address twice. The files survive an agent restart; on Create,
// reservations whose namespace is gone are released (e.g. after a reboot: /run is a tmpfs) and
// namespaces without a reservation are reserved again from the address on their eth0.
//
// No NAT and no forwarding are set up: pods reach the node and each other on the bridge.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_NETWORK_BRIDGE_NETWORK_H_
#define CAPSTAN_SERVICES_NODE_AGENT_NETWORK_BRIDGE_NETWORK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/node-agent/network/pod_network.h"

namespace capstan::nodeagent {

struct BridgeNetworkOptions {
  std::string bridge = "capstan0";  // at most 15 characters (a Linux interface name)
  std::string pod_cidr = "10.88.0.0/24";
  // Namespace names are netns_prefix + pod uid. Namespace names are global to the machine (they
  // are files in /run/netns), so agents on one machine need prefixes of which none starts
  // another, e.g. "capstan-node1-" and "capstan-node2-".
  std::string netns_prefix = "capstan-";
  // Where address reservations are kept; created if missing. One per agent.
  std::string state_dir;
  // Path of iproute2's `ip`; empty looks in PATH, /usr/sbin and /sbin.
  std::string ip_binary;
};

class BridgeNetwork final : public PodNetwork {
 public:
  // Checks the options, creates the state directory and reconciles it with the namespaces that
  // exist (see above). Does not touch the bridge: the first SetUp makes it.
  static absl::StatusOr<std::unique_ptr<BridgeNetwork>> Create(BridgeNetworkOptions options);

  absl::StatusOr<PodNetworkStatus> SetUp(const std::string& pod_uid) override;
  absl::Status TearDown(const std::string& pod_uid) override;
  absl::StatusOr<std::vector<std::string>> ListPods() override;

  // The gateway address on the bridge, e.g. "10.88.0.1", and the prefix length, e.g. 24.
  std::string gateway() const;
  int prefix_length() const { return prefix_length_; }
  // The namespace name and host-side veth name of a pod (exposed for tests and debugging).
  std::string NamespaceName(const std::string& pod_uid) const;
  static std::string HostVethName(const std::string& netns_name);

 private:
  BridgeNetwork(BridgeNetworkOptions options, std::string ip_binary, uint32_t network,
                int prefix_length);

  // Runs `ip args...`; returns its stdout, or an error quoting its stderr.
  absl::StatusOr<std::string> Ip(const std::vector<std::string>& args) const;
  // Runs several `ip` commands in one process (`ip [options] -batch FILE`), stopping at the first
  // that fails: forking `ip` once per step cost more CPU than the rest of a pod's start.
  absl::Status IpBatch(const std::vector<std::string>& options,
                       const std::vector<std::string>& commands) const;
  // A new pod's namespace, veth, address and routes in two `ip -batch` runs.
  absl::Status SetUpFresh(const std::string& ns, const std::string& veth, const std::string& address);
  absl::Status EnsureBridge();
  absl::Status Reconcile();

  // Address reservations in the state directory.
  absl::StatusOr<std::string> ReservedAddress(const std::string& pod_uid) const;
  absl::Status Reserve(uint32_t address, const std::string& pod_uid, bool* taken) const;
  absl::StatusOr<std::string> Allocate(const std::string& pod_uid) const;
  absl::Status Release(const std::string& pod_uid) const;
  // The IPv4 address on eth0 in the namespace; empty when there is none (or no namespace).
  std::string NamespaceAddress(const std::string& netns_name) const;

  // One SetUp/TearDown at a time per pod; different pods proceed in parallel.
  void LockPod(const std::string& pod_uid);
  void UnlockPod(const std::string& pod_uid);

  const BridgeNetworkOptions options_;
  const std::string ip_binary_;
  const uint32_t network_;  // host byte order
  const int prefix_length_;

  absl::Mutex mu_;
  absl::flat_hash_set<std::string> busy_pods_ ABSL_GUARDED_BY(mu_);
  bool bridge_ready_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex bridge_mu_;  // serializes making the bridge
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_NETWORK_BRIDGE_NETWORK_H_
