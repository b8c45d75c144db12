#include "services/controller-manager/controllers/nodelifecycle/nodelifecycle_controller.h"

#include <cstdio>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"
#include "lib/api/meta_time.h"
#include "lib/api/taints.h"
#include "lib/client/indexer.h"

namespace capstan::controllermanager::nodelifecycle {
namespace {

using capstan::coordination::v1::Lease;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;
using capstan::core::v1::Taint;

client::ControllerOptions QueueOptions(const char* name, const ControllerContext& ctx,
                                       client::Clock* clock) {
  client::ControllerOptions options;
  options.name = name;
  options.workers = ctx.workers;
  options.registry = ctx.registry;
  options.clock = clock;
  return options;
}

NodeLifecycleOptions OptionsFrom(const ControllerContext& ctx) {
  NodeLifecycleOptions options;
  options.health.grace_period = ctx.node_monitor_grace_period;
  options.health.startup_grace_period = ctx.node_startup_grace_period;
  return options;
}

bool HasNoExecuteTaint(const Node& node) {
  for (const Taint& taint : node.spec().taints()) {
    if (taint.effect() == api::kTaintEffectNoExecute) return true;
  }
  return false;
}

// The NoExecute taints as text, to tell whether they changed.
std::string NoExecuteSignature(const Node* node) {
  std::string out;
  if (node == nullptr) return out;
  for (const Taint& taint : node->spec().taints()) {
    if (taint.effect() == api::kTaintEffectNoExecute) out += taint.SerializeAsString() + "\n";
  }
  return out;
}

std::string TaintId(const Taint& taint) { return absl::StrCat(taint.key(), ":", taint.effect()); }

// The node's Ready condition status, "" when it has none.
std::string NodeReadyStatus(const Node& node) {
  for (const auto& c : node.status().conditions()) {
    if (c.type() == "Ready") return c.status();
  }
  return "";
}

}  // namespace

NodeLifecycleController::NodeLifecycleController(const ControllerContext& ctx)
    : NodeLifecycleController(ctx, OptionsFrom(ctx)) {}

NodeLifecycleController::NodeLifecycleController(const ControllerContext& ctx,
                                                 NodeLifecycleOptions options)
    : client_(ctx.client),
      recorder_(ctx.recorder),
      options_(options),
      nodes_(ctx.informers->For<Node>()),
      leases_(ctx.informers->For<Lease>()),
      pods_(ctx.informers->For<Pod>()),
      node_reconciler_([this](const std::string& key) { return ReconcileNode(key); }),
      pod_reconciler_([this](const std::string& key) { return ReconcilePod(key); }),
      node_controller_(QueueOptions("nodelifecycle", ctx, options.clock), &node_reconciler_),
      pod_controller_(QueueOptions("taint_eviction", ctx, options.clock), &pod_reconciler_) {
  // Another controller of the process may have added the same index to the shared informer.
  absl::Status indexed = pods_.AddIndex(kPodNodeNameIndex, client::FieldIndex("spec.nodeName"));
  if (!indexed.ok() && indexed.code() != absl::StatusCode::kAlreadyExists) {
    fprintf(stderr, "nodelifecycle: pod index: %s\n", std::string(indexed.message()).c_str());
  }
  nodes_.AddEventHandler(
      {.on_add = [this](const std::shared_ptr<const Node>& node) { OnNodeChange(nullptr, node); },
       .on_update = [this](
                        const std::shared_ptr<const Node>& old_node,
                        const std::shared_ptr<const Node>& node) { OnNodeChange(old_node, node); },
       .on_delete = [this](const std::shared_ptr<const Node>& node) { OnNodeDelete(node); }});
  auto on_lease = [this](const std::shared_ptr<const Lease>& lease) {
    if (lease != nullptr && lease->metadata().namespace_() == kNodeLeaseNamespace) {
      node_controller_.Enqueue(lease->metadata().name());
    }
  };
  leases_.AddEventHandler(
      {.on_add = on_lease,
       .on_update = [on_lease](const std::shared_ptr<const Lease>&,
                               const std::shared_ptr<const Lease>& lease) { on_lease(lease); },
       .on_delete = on_lease});
  pods_.AddEventHandler(
      {.on_add = [this](const std::shared_ptr<const Pod>& pod) { OnPodChange(pod); },
       .on_update = [this](const std::shared_ptr<const Pod>&,
                           const std::shared_ptr<const Pod>& pod) { OnPodChange(pod); }});
}

NodeLifecycleController::~NodeLifecycleController() { Stop(); }

void NodeLifecycleController::Run() {
  std::vector<std::function<bool()>> synced = {[this] { return nodes_.HasSynced(); },
                                               [this] { return leases_.HasSynced(); },
                                               [this] { return pods_.HasSynced(); }};
  std::thread evictions([this, synced] { pod_controller_.Run(synced); });
  node_controller_.Run(synced);
  evictions.join();
}

void NodeLifecycleController::Stop() {
  node_controller_.Stop();
  pod_controller_.Stop();
}

// --- event handlers ---------------------------------------------------------------------------

void NodeLifecycleController::OnNodeChange(const std::shared_ptr<const Node>& old_node,
                                           const std::shared_ptr<const Node>& node) {
  if (node == nullptr) return;
  node_controller_.Enqueue(node->metadata().name());
  if (NoExecuteSignature(old_node.get()) == NoExecuteSignature(node.get())) return;
  {
    // Forget first sightings of taints the node no longer has.
    absl::MutexLock lock(&mu_);
    auto it = first_seen_.find(node->metadata().name());
    if (it != first_seen_.end()) {
      std::map<std::string, absl::Time> kept;
      for (const Taint& taint : node->spec().taints()) {
        auto seen = it->second.find(TaintId(taint));
        if (seen != it->second.end()) kept.insert(*seen);
      }
      if (kept.empty()) {
        first_seen_.erase(it);
      } else {
        it->second = std::move(kept);
      }
    }
  }
  // Taints came or went: every pod on the node is judged again.
  EnqueuePodsOn(node->metadata().name());
}

void NodeLifecycleController::OnNodeDelete(const std::shared_ptr<const Node>& node) {
  if (node == nullptr) return;
  {
    absl::MutexLock lock(&mu_);
    first_seen_.erase(node->metadata().name());
  }
  node_controller_.Enqueue(node->metadata().name());
}

void NodeLifecycleController::OnPodChange(const std::shared_ptr<const Pod>& pod) {
  if (pod == nullptr || pod->spec().node_name().empty()) return;
  // Only pods on a node with a NoExecute taint have anything to decide; the rest are enqueued by
  // the node's update when it gets one.
  std::shared_ptr<const Node> node = nodes_.lister().Get(pod->spec().node_name());
  if (node == nullptr || !HasNoExecuteTaint(*node)) return;
  pod_controller_.Enqueue(client::ObjectKey(*pod));
}

void NodeLifecycleController::EnqueuePodsOn(const std::string& node_name) {
  for (const std::string& key : pods_.indexer().IndexKeys(kPodNodeNameIndex, node_name)) {
    pod_controller_.Enqueue(key);
  }
}

// --- nodes ------------------------------------------------------------------------------------

absl::StatusOr<client::ReconcileResult> NodeLifecycleController::ReconcileNode(
    const std::string& key) {
  std::shared_ptr<const Node> cached = nodes_.lister().Get(key);
  if (cached == nullptr) return client::ReconcileResult{};
  std::shared_ptr<const Lease> lease = leases_.lister().Get(kNodeLeaseNamespace, key);
  const absl::Time now = options_.clock->Now();

  Node node = *cached;
  HealthCheck check = CheckNodeHealth(node, lease.get(), now, options_.health);
  if (check.conditions_changed) {
    Node next = node;
    *next.mutable_status()->mutable_conditions() = check.conditions;
    absl::StatusOr<Node> written = client_->UpdateStatus(next);
    if (api::Reason(written.status()) == "NotFound") return client::ReconcileResult{};
    // A Conflict (the agent wrote meanwhile, or the cache is behind) is retried with backoff,
    // from the cache, which by then shows the newer node.
    if (!written.ok()) return written.status();
    fprintf(stderr, "nodelifecycle: node %s: no heartbeat since %s, conditions set to Unknown\n",
            key.c_str(), absl::FormatTime(LastHeartbeat(node, lease.get())).c_str());
    if (recorder_ != nullptr && NodeReadyStatus(node) == "True") {
      recorder_->Event(node, client::kEventTypeNormal, "NodeNotReady",
                       absl::StrCat("Node ", key, " status is now: NodeNotReady"));
    }
    node = std::move(*written);
  }

  TaintUpdate taints = ReconcileTaints(node.spec().taints(), node.status().conditions(),
                                       node.spec().unschedulable(), now);
  if (taints.changed) {
    Node next = node;
    *next.mutable_spec()->mutable_taints() = taints.taints;
    absl::StatusOr<Node> written = client_->Update(next);
    if (api::Reason(written.status()) == "NotFound") return client::ReconcileResult{};
    if (!written.ok()) return written.status();
    std::string now_tainted;
    for (const Taint& t : taints.taints) {
      absl::StrAppend(&now_tainted, now_tainted.empty() ? "" : ", ", TaintId(t));
    }
    fprintf(stderr, "nodelifecycle: node %s (Ready %s): taints now [%s]\n", key.c_str(),
            NodeReadyStatus(node).c_str(), now_tainted.c_str());
  }
  // Look again when the heartbeat would go stale; a new heartbeat enqueues the node anyway.
  if (!check.stale) return client::ReconcileResult{check.stale_at - now};
  return client::ReconcileResult{};
}

// --- pods -------------------------------------------------------------------------------------

std::vector<TaintSince> NodeLifecycleController::NoExecuteTaints(const Node& node, absl::Time now) {
  std::vector<TaintSince> out;
  absl::MutexLock lock(&mu_);
  for (const Taint& taint : node.spec().taints()) {
    if (taint.effect() != api::kTaintEffectNoExecute) continue;
    absl::Time since;
    if (taint.has_time_added()) {
      since = api::FromMetaTime(taint.time_added());
    } else {
      since = first_seen_[node.metadata().name()].emplace(TaintId(taint), now).first->second;
    }
    out.push_back({taint, since});
  }
  return out;
}

absl::StatusOr<client::ReconcileResult> NodeLifecycleController::ReconcilePod(
    const std::string& key) {
  std::shared_ptr<const Pod> pod = pods_.lister().Get(key);
  // A pod already being deleted is on its way out; its node agent (or a forced delete) ends it.
  if (pod == nullptr || pod->spec().node_name().empty() ||
      pod->metadata().has_deletion_timestamp()) {
    return client::ReconcileResult{};
  }
  std::shared_ptr<const Node> node = nodes_.lister().Get(pod->spec().node_name());
  if (node == nullptr) return client::ReconcileResult{};
  const absl::Time now = options_.clock->Now();
  EvictionDecision decision =
      DecideEviction(pod->spec().tolerations(), NoExecuteTaints(*node, now), now);
  const bool evict = decision.action == EvictionDecision::Action::kEvictNow;

  // One status write for both: not Ready when the agent is silent (an agent that reports its
  // node not ready still reports its pods itself), DisruptionTarget before an eviction.
  Pod next = *pod;
  bool changed = NodeReadyStatus(*node) == "Unknown" && MarkPodNotReady(&next, now);
  changed = (evict && MarkDisruptionTarget(&next, now)) || changed;
  if (changed) {
    absl::StatusOr<Pod> written = client_->UpdateStatus(next);
    if (api::Reason(written.status()) == "NotFound") return client::ReconcileResult{};
    // Conflict: decided again, with backoff, from a fresher cache.
    if (!written.ok()) return written.status();
  }
  if (decision.action == EvictionDecision::Action::kEvictAt) {
    return client::ReconcileResult{decision.at - now};
  }
  if (evict) {
    absl::Status evicted = Evict(*pod);
    if (!evicted.ok()) return evicted;
  }
  return client::ReconcileResult{};
}

absl::Status NodeLifecycleController::Evict(const Pod& pod) {
  const std::string& ns = pod.metadata().namespace_();
  const std::string& name = pod.metadata().name();
  if (recorder_ != nullptr) {
    recorder_->Event(pod, client::kEventTypeNormal, "TaintManagerEviction",
                     absl::StrCat("Marking for deletion Pod ", ns, "/", name));
  }
  client::DeleteOptions options;
  options.precondition_uid = pod.metadata().uid();
  absl::StatusOr<Pod> deleted = client_->Delete<Pod>(ns, name, options);
  const std::string reason = api::Reason(deleted.status());
  if (reason == "NotFound" || reason == "Conflict") return absl::OkStatus();  // gone or replaced
  if (!deleted.ok()) return deleted.status();
  fprintf(stderr, "nodelifecycle: evicted pod %s/%s from node %s\n", ns.c_str(), name.c_str(),
          pod.spec().node_name().c_str());
  return absl::OkStatus();
}

}  // namespace capstan::controllermanager::nodelifecycle
