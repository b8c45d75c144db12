// The node's side of node lifecycle: registers the Node, renews its Lease in kube-node-lease, and
// keeps the Node's status (capacity, addresses, nodeInfo, conditions) true (kubelet's node status
// manager and node lease controller).
//
// Heartbeats are cheap on purpose: the Lease is renewed every renew_interval (10 s); the Node's
// status is written only when it differs from what the API shows (for example Ready=Unknown set
// by the node lifecycle controller while this node was cut off) or when status_report_interval
// (5 min) has passed, which refreshes the conditions' lastHeartbeatTime.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_NODE_STATUS_H_
#define CAPSTAN_SERVICES_NODE_AGENT_NODE_STATUS_H_

#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

inline constexpr char kNodeLeaseNamespace[] = "kube-node-lease";

struct NodeConfig {
  std::string name;
  std::string ip;                             // InternalIP; pods' hostIP
  std::map<std::string, std::string> labels;  // added to the standard ones
  int64_t cpu_millis = 0;                     // capacity; 0 = this machine's
  int64_t memory_bytes = 0;                   // capacity; 0 = this machine's
  int64_t max_pods = 110;
  std::string pod_cidr;
  int agent_port = 0;  // status.daemonEndpoints.kubeletEndpoint.Port (logs)
  absl::Duration renew_interval = absl::Seconds(10);
  absl::Duration lease_duration = absl::Seconds(40);
  absl::Duration status_report_interval = absl::Minutes(5);
};

// The Node object this agent registers (spec, labels and status with conditions), as of now.
capstan::core::v1::Node DesiredNode(const NodeConfig& config, const std::string& runtime_version,
                                    const absl::Status& runtime_health, absl::Time now);

// Whether `current` (from the API) needs a status write to become `desired`: conditions' status,
// reason or message, capacity, allocatable, addresses, nodeInfo or daemon endpoints differ.
bool NodeStatusDiffers(const capstan::core::v1::NodeStatus& current,
                       const capstan::core::v1::NodeStatus& desired);

class NodeStatusReporter {
 public:
  // client and runtime must outlive the reporter.
  NodeStatusReporter(client::Client* client, Runtime* runtime, NodeConfig config);
  ~NodeStatusReporter();  // Stop()

  // Creates the Node (or takes over an existing one of the same name), writes its status and the
  // Lease. Retries until it succeeds or Stop() is called.
  absl::Status Register();
  // Renews the Lease and reports status in the background until Stop().
  void Start();
  void Stop();

  // One heartbeat: renew the Lease, write the status if needed. Exposed for tests.
  absl::Status Heartbeat();

 private:
  absl::Status RenewLease(absl::Time now);
  absl::Status ReportStatus(absl::Time now, bool force);

  client::Client* const client_;
  Runtime* const runtime_;
  const NodeConfig config_;
  std::string node_uid_;
  absl::Time last_report_ = absl::InfinitePast();
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_NODE_STATUS_H_
