// The node lifecycle controller's decisions about a node, as pure functions of the node, its
// Lease and the time (Kubernetes' pkg/controller/nodelifecycle: tryUpdateNodeHealth and the
// NoExecute / NoSchedule tainting passes).
//
//   HealthCheck check = CheckNodeHealth(node, lease, now, options);
//   if (check.conditions_changed) ... UpdateStatus with check.conditions
//   TaintUpdate taints = ReconcileTaints(node.spec().taints(), check.conditions,
//                                        node.spec().unschedulable(), now);
//   if (taints.changed) ... Update with taints.taints
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODE_HEALTH_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODE_HEALTH_H_

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"

namespace capstan::controllermanager::nodelifecycle {

// Where node agents keep their heartbeat Leases (one per node, named after it).
inline constexpr char kNodeLeaseNamespace[] = "kube-node-lease";

// Kubernetes' reasons and messages for conditions the controller sets when the agent is silent.
inline constexpr char kReasonNodeStatusUnknown[] = "NodeStatusUnknown";
inline constexpr char kMessageNodeStatusUnknown[] = "Kubelet stopped posting node status.";
inline constexpr char kReasonNodeStatusNeverUpdated[] = "NodeStatusNeverUpdated";
inline constexpr char kMessageNodeStatusNeverUpdated[] = "Kubelet never posted node status.";

struct HealthOptions {
  // How long a node may go without a heartbeat before it is Unknown (kube-controller-manager's
  // --node-monitor-grace-period).
  absl::Duration grace_period = absl::Seconds(50);
  // The same for a node whose agent never posted a Ready condition, counted from its creation
  // (--node-startup-grace-period).
  absl::Duration startup_grace_period = absl::Seconds(60);
};

// When the node's agent was last heard from: the later of its Lease's spec.renewTime (lease may
// be null) and its Ready condition's lastHeartbeatTime; its creationTimestamp when it has neither.
absl::Time LastHeartbeat(const capstan::core::v1::Node& node,
                         const capstan::coordination::v1::Lease* lease);

struct HealthCheck {
  // Not heard from within the grace period: every condition the agent owns is Unknown.
  bool stale = false;
  // When the node goes stale without a new heartbeat (the time to look again).
  absl::Time stale_at;
  // status.conditions as they should be; the node's own when it is not stale.
  google::protobuf::RepeatedPtrField<capstan::core::v1::NodeCondition> conditions;
  bool conditions_changed = false;
};

// A stale node's Ready, MemoryPressure, DiskPressure and PIDPressure conditions become Unknown
// (reason NodeStatusUnknown, "Kubelet stopped posting node status.", lastTransitionTime now,
// lastHeartbeatTime kept); a missing one is added as Unknown with NodeStatusNeverUpdated and
// lastHeartbeatTime = the node's creation. Conditions already Unknown and other types (e.g.
// NetworkUnavailable, which the network owns) are left alone.
HealthCheck CheckNodeHealth(const capstan::core::v1::Node& node,
                            const capstan::coordination::v1::Lease* lease, absl::Time now,
                            const HealthOptions& options);

struct TaintUpdate {
  google::protobuf::RepeatedPtrField<capstan::core::v1::Taint> taints;  // spec.taints after
  bool changed = false;
};

// The node's taints with the ones this controller manages brought in line with its conditions:
//   NoExecute:  node.kubernetes.io/not-ready when Ready is False, node.kubernetes.io/unreachable
//               when Ready is Unknown (timeAdded = now when added; kept while it stays);
//   NoSchedule: not-ready / unreachable as above, memory-pressure, disk-pressure, pid-pressure and
//               network-unavailable when that condition is True, unschedulable when
//               spec.unschedulable (no timeAdded, as Kubernetes).
// Taints of other keys or effects are kept as they are, in their order; added ones go last.
TaintUpdate ReconcileTaints(
    const google::protobuf::RepeatedPtrField<capstan::core::v1::Taint>& taints,
    const google::protobuf::RepeatedPtrField<capstan::core::v1::NodeCondition>& conditions,
    bool unschedulable, absl::Time now);

}  // namespace capstan::controllermanager::nodelifecycle

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODE_HEALTH_H_
