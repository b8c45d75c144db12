// The node lifecycle controller (Kubernetes' pkg/controller/nodelifecycle with its taint-based
// eviction, pkg/controller/tainteviction): notices nodes whose agent went silent, marks them, and
// moves pods off nodes that carry NoExecute taints the pods do not tolerate.
//
// Two work queues over the shared informers (Nodes, Leases, Pods):
//   - nodes, keyed by name: the node's health is the later of its Lease's renewTime
//     (kube-node-lease/<node>) and its Ready condition's lastHeartbeatTime. Past the grace period
//     its agent's conditions become Unknown (UpdateStatus); then its taints follow its conditions
//     (Update): unreachable or not-ready NoExecute + NoSchedule, the pressure NoSchedule taints,
//     unschedulable. A healthy node is looked at again when its grace period would run out, and
//     on every Node or Lease change.
//     The first time a Ready node goes Unknown, a NodeNotReady Event is recorded on it.
//   - pods, keyed by namespace/name: a bound pod whose node has NoExecute taints is deleted
//     (graceful delete, after the DisruptionTarget condition and a TaintManagerEviction Event)
//     at once when it does not tolerate one of them, or when its tolerationSeconds, counted from
//     the taint's timeAdded, run out (the key is requeued for then). A pod on a node whose Ready
//     is Unknown also gets Ready=False (Kubernetes' MarkPodsNotReady).
// See README.md in this directory.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODELIFECYCLE_CONTROLLER_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODELIFECYCLE_CONTROLLER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/client.h"
#include "lib/client/clock.h"
#include "lib/client/controller.h"
#include "lib/client/event_recorder.h"
#include "lib/client/informer.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"
#include "services/controller-manager/controllers/nodelifecycle/eviction.h"
#include "services/controller-manager/controllers/nodelifecycle/node_health.h"

namespace capstan::controllermanager::nodelifecycle {

// The pod index by node this controller adds to the shared pod informer.
inline constexpr char kPodNodeNameIndex[] = "spec.nodeName";

struct NodeLifecycleOptions {
  HealthOptions health;
  client::Clock* clock = client::Clock::Real();  // not owned
};

class NodeLifecycleController : public RunnableController {
 public:
  // Registers the Node, Lease and Pod informers and their handlers with ctx.informers, which must
  // be started after this and stopped before this is destroyed. ctx's pointers must outlive it.
  NodeLifecycleController(const ControllerContext& ctx, NodeLifecycleOptions options);
  // Options from ctx (node_monitor_grace_period, node_startup_grace_period), the real clock.
  explicit NodeLifecycleController(const ControllerContext& ctx);
  ~NodeLifecycleController() override;  // Stop()

  const char* name() const override { return "nodelifecycle"; }
  void Run() override;
  void Stop() override;

  // key: the node's name.
  absl::StatusOr<client::ReconcileResult> ReconcileNode(const std::string& key);
  // key: namespace/name of a pod.
  absl::StatusOr<client::ReconcileResult> ReconcilePod(const std::string& key);

 private:
  using Node = capstan::core::v1::Node;
  using Pod = capstan::core::v1::Pod;

  // One class, two work queues: each queue calls one member through this.
  class Adapter : public client::Reconciler {
   public:
    explicit Adapter(std::function<absl::StatusOr<client::ReconcileResult>(const std::string&)> fn)
        : fn_(std::move(fn)) {}
    absl::StatusOr<client::ReconcileResult> Reconcile(const std::string& key) override {
      return fn_(key);
    }

   private:
    std::function<absl::StatusOr<client::ReconcileResult>(const std::string&)> fn_;
  };

  // --- event handlers (informer threads) ---
  void OnNodeChange(const std::shared_ptr<const Node>& old_node,
                    const std::shared_ptr<const Node>& node);
  void OnNodeDelete(const std::shared_ptr<const Node>& node);
  void OnPodChange(const std::shared_ptr<const Pod>& pod);
  void EnqueuePodsOn(const std::string& node_name);

  // The node's NoExecute taints with the time each was added.
  std::vector<TaintSince> NoExecuteTaints(const Node& node, absl::Time now);
  // Records the TaintManagerEviction Event and deletes pod (gracefully, with its uid as
  // precondition).
  absl::Status Evict(const Pod& pod);

  // Constant after construction.
  client::Client* const client_;
  client::EventRecorder* const recorder_;
  const NodeLifecycleOptions options_;
  client::Informer<Node> nodes_;
  client::Informer<capstan::coordination::v1::Lease> leases_;
  client::Informer<Pod> pods_;

  // When each NoExecute taint without timeAdded was first seen, by node, then "key:effect".
  // Kubernetes' taint manager counts tolerationSeconds from when it saw the taint; taints this
  // controller adds carry timeAdded, so this only serves taints others add without one.
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::map<std::string, absl::Time>> first_seen_
      ABSL_GUARDED_BY(mu_);

  Adapter node_reconciler_;
  Adapter pod_reconciler_;
  client::Controller node_controller_;  // last: their workers call the reconcilers
  client::Controller pod_controller_;
};

}  // namespace capstan::controllermanager::nodelifecycle

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NODELIFECYCLE_NODELIFECYCLE_CONTROLLER_H_
