#include "services/scheduler/scheduler.h"

#include <chrono>
#include <cstdio>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/api/errors.h"
#include "lib/metrics/metrics.h"
#include "services/scheduler/plugins/plugins.h"
#include "services/scheduler/preemption.h"
#include "services/scheduler/queue/scheduling_queue.h"

namespace capstan::scheduler {
namespace {

namespace apiv1 = capstan::api::v1;

uint64_t Seed(uint64_t seed) {
  return seed != 0 ? seed : static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
}

}  // namespace

Scheduler::~Scheduler() { WaitForBindings(); }

Scheduler::Scheduler(client::Client* client, client::SharedInformerFactory* factory,
                     client::EventRecorder* recorder, prometheus::Registry* registry,
                     SchedulerOptions options)
    : options_(std::move(options)),
      client_(client),
      recorder_(recorder),
      pods_(factory->For<Pod>()),
      nodes_(factory->For<Node>()),
      framework_(plugins::DefaultPlugins(), std::make_unique<SeededRng>(Seed(options_.seed))) {
  if (registry != nullptr) {
    attempts_ = &prometheus::BuildCounter()
                     .Name("scheduler_schedule_attempts_total")
                     .Help("Scheduling attempts by result (scheduled, unschedulable, error)")
                     .Register(*registry);
    latency_ = &prometheus::BuildHistogram()
                    .Name("scheduler_scheduling_attempt_duration_seconds")
                    .Help("Time of one scheduling attempt, binding included")
                    .Register(*registry)
                    .Add({}, metrics::LatencyBuckets());
    pending_ = &prometheus::BuildGauge()
                    .Name("scheduler_pending_pods")
                    .Help("Pending pods by queue (active, backoff, unschedulable)")
                    .Register(*registry);
  }
  pods_.AddEventHandler(client::EventHandler<Pod>{
      [this](const std::shared_ptr<const Pod>& pod) {
        {
          absl::MutexLock lock(&mu_);
          CachePod(nullptr, pod);
        }
        if (pod->spec().node_name().empty() && Responsible(*pod)) queue_.Add(pod);
      },
      [this](const std::shared_ptr<const Pod>& old_pod, const std::shared_ptr<const Pod>& pod) {
        {
          absl::MutexLock lock(&mu_);
          CachePod(old_pod.get(), pod);
        }
        if (!pod->spec().node_name().empty()) {
          queue_.Delete(*pod);  // bound (by us or anyone): no longer pending
        } else if (Responsible(*pod)) {
          queue_.Update(old_pod, pod);
        }
      },
      [this](const std::shared_ptr<const Pod>& pod) {
        {
          absl::MutexLock lock(&mu_);
          CachePod(pod.get(), nullptr);
          preemptions_.erase(pod->metadata().uid());
        }
        queue_.Delete(*pod);
        // Freed room may let unschedulable pods fit.
        if (!pod->spec().node_name().empty()) queue_.MoveAllToActiveOrBackoff("AssignedPodDelete");
      }});
  nodes_.AddEventHandler(client::EventHandler<Node>{
      [this](const std::shared_ptr<const Node>& node) {
        {
          absl::MutexLock lock(&mu_);
          if (cache_ready_) cache_.AddNode(*node);
        }
        queue_.MoveAllToActiveOrBackoff("NodeAdd");
      },
      [this](const std::shared_ptr<const Node>&, const std::shared_ptr<const Node>& node) {
        {
          absl::MutexLock lock(&mu_);
          if (cache_ready_) cache_.AddNode(*node);  // replaces the node, keeps its pods
        }
        queue_.MoveAllToActiveOrBackoff("NodeUpdate");
      },
      [this](const std::shared_ptr<const Node>& node) {
        absl::MutexLock lock(&mu_);
        if (cache_ready_) cache_.RemoveNode(node->metadata().name());
      }});
}

void Scheduler::CachePod(const Pod* old_pod, const std::shared_ptr<const Pod>& pod) {
  if (!cache_ready_) return;
  // Remove whatever this pod held (its old node, and an assumed copy on its new node), then add
  // it where it now runs. Terminal pods hold nothing.
  if (old_pod != nullptr && !old_pod->spec().node_name().empty()) cache_.ForgetPod(*old_pod);
  if (pod == nullptr || pod->spec().node_name().empty()) return;
  cache_.ForgetPod(*pod);
  cache_.AddBoundPod(pod);  // shares the informer's object
}

bool Scheduler::Responsible(const Pod& pod) const {
  if (pod.metadata().has_deletion_timestamp()) return false;
  const std::string& name = pod.spec().scheduler_name();
  return name.empty() ? options_.scheduler_name == "default-scheduler"
                      : name == options_.scheduler_name;
}

void Scheduler::Run() {
  while (!pods_.WaitForCacheSync(absl::Milliseconds(100)) ||
         !nodes_.WaitForCacheSync(absl::Milliseconds(100))) {
  }
  {
    // The cache shares the informer's pods rather than copying them. Copying every stored pod
    // here (into a vector, then into the cache, on this thread's malloc arena) left the
    // scheduler after a restart with ~3x the memory per pod it has when the same pods arrive one
    // by one (footprint_bench). Nodes are few; they are copied.
    std::vector<Node> nodes;
    for (const auto& n : nodes_.lister().List()) nodes.push_back(*n);
    std::vector<std::shared_ptr<const Pod>> pods = pods_.lister().List();
    absl::MutexLock lock(&mu_);
    cache_ = Snapshot::FromShared(nodes, pods);
    cache_ready_ = true;
  }
  while (std::optional<QueuedPodInfo> info = queue_.Pop()) {
    ScheduleOne(std::move(*info));
    if (pending_ != nullptr) {
      pending_->Add({{"queue", "active"}}).Set(static_cast<double>(queue_.ActiveSize()));
      pending_->Add({{"queue", "backoff"}}).Set(static_cast<double>(queue_.BackoffSize()));
      pending_->Add({{"queue", "unschedulable"}})
          .Set(static_cast<double>(queue_.UnschedulableSize()));
    }
  }
  WaitForBindings();  // finish the bindings already decided
}

void Scheduler::Stop() { queue_.Close(); }

void Scheduler::ScheduleOne(QueuedPodInfo info) {
  auto start = std::chrono::steady_clock::now();
  const Pod& queued = *info.pod;
  // Act on the newest state of the pod; it may have been bound or deleted since it was queued.
  std::shared_ptr<const Pod> pod =
      pods_.lister().Get(queued.metadata().namespace_(), queued.metadata().name());
  if (pod == nullptr || !pod->spec().node_name().empty() || !Responsible(*pod)) {
    queue_.Done(queued);
    return;
  }
  ScheduleResult result;
  {
    absl::MutexLock lock(&mu_);
    result = framework_.Schedule(*pod, cache_);
    // Assumed at once, so the next decision counts this pod even before the binding is seen.
    if (result.scheduled()) {
      cache_.AssumePod(*pod, result.node_name);
      preemptions_.erase(pod->metadata().uid());
    }
  }
  if (result.scheduled()) {
    BindAssumed(std::move(info), std::move(pod), std::move(result.node_name), start);
    return;
  }
  // Back to the queue as unschedulable either way: the victims' deletions requeue it.
  MarkUnschedulable(*pod, result.message, Preempt(*pod));
  queue_.AddUnschedulable(info, info.scheduling_cycle);
  if (attempts_ != nullptr) attempts_->Add({{"result", "unschedulable"}}).Increment();
  if (latency_ != nullptr) {
    latency_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

void Scheduler::BindAssumed(QueuedPodInfo info, std::shared_ptr<const Pod> pod, std::string node,
                            std::chrono::steady_clock::time_point start) {
  {
    absl::MutexLock lock(&bindings_mu_);
    auto room = [this]() ABSL_SHARED_LOCKS_REQUIRED(bindings_mu_) {
      return bindings_in_flight_ < kMaxBindingsInFlight;
    };
    bindings_mu_.Await(absl::Condition(&room));
    ++bindings_in_flight_;
  }
  // Owned by the call until gRPC answers.
  struct Call {
    grpc::ClientContext context;
    apiv1::CreateRequest request;
    apiv1::ObjectResponse response;
  };
  auto call = std::make_shared<Call>();
  capstan::core::v1::Binding binding;
  binding.mutable_metadata()->set_name(pod->metadata().name());
  binding.mutable_metadata()->set_namespace_(pod->metadata().namespace_());
  binding.mutable_metadata()->set_uid(pod->metadata().uid());
  binding.mutable_target()->set_kind("Node");
  binding.mutable_target()->set_name(node);
  apiv1::CreateRequest& request = call->request;
  request.mutable_resource()->set_version("v1");
  request.mutable_resource()->set_resource("pods");
  request.mutable_resource()->set_namespace_(pod->metadata().namespace_());
  request.set_subresource("binding");
  request.set_name(pod->metadata().name());
  request.set_object(binding.SerializeAsString());
  call->context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  client_->stub()->async()->Create(
      &call->context, &call->request, &call->response,
      [this, call, info = std::move(info), pod = std::move(pod), node = std::move(node),
       start](grpc::Status status) {
        BindingDone(info, pod, node, start, api::FromGrpcStatus(status));
        absl::MutexLock lock(&bindings_mu_);
        --bindings_in_flight_;
      });
}

void Scheduler::BindingDone(const QueuedPodInfo& info, const std::shared_ptr<const Pod>& pod,
                            const std::string& node, std::chrono::steady_clock::time_point start,
                            absl::Status bound) {
  std::string result_label = "scheduled";
  if (bound.ok()) {
    queue_.Done(*pod);
    if (recorder_ != nullptr) {
      recorder_->Event(*pod, client::kEventTypeNormal, "Scheduled",
                       absl::StrCat("Successfully assigned ", pod->metadata().namespace_(), "/",
                                    pod->metadata().name(), " to ", node));
    }
  } else {
    {
      absl::MutexLock lock(&mu_);
      Pod assumed = *pod;
      assumed.mutable_spec()->set_node_name(node);
      cache_.ForgetPod(assumed);
    }
    result_label = "error";
    if (api::Reason(bound) == "Conflict" || api::Reason(bound) == "NotFound") {
      queue_.Done(*pod);  // bound by someone else, or gone: nothing left to do
    } else {
      queue_.AddUnschedulable(info, info.scheduling_cycle);
    }
  }
  if (attempts_ != nullptr) attempts_->Add({{"result", result_label}}).Increment();
  if (latency_ != nullptr) {
    latency_->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

void Scheduler::WaitForBindings() {
  absl::MutexLock lock(&bindings_mu_);
  auto none = [this]() ABSL_SHARED_LOCKS_REQUIRED(bindings_mu_) {
    return bindings_in_flight_ == 0;
  };
  bindings_mu_.Await(absl::Condition(&none));
}

std::string Scheduler::Preempt(const Pod& pod) {
  std::optional<PreemptionPlan> plan;
  {
    absl::MutexLock lock(&mu_);
    if (!cache_ready_) return "";
    auto it = preemptions_.find(pod.metadata().uid());
    if (it != preemptions_.end()) {
      // Victims of an earlier preemption still hold their room: wait for them to go.
      if (const NodeInfo* node = cache_.Get(it->second.node)) {
        for (const Pod& victim : it->second.victims) {
          for (const PodInfo& p : node->pods()) {
            if (p.pod->metadata().uid() == victim.metadata().uid()) return it->second.node;
          }
        }
      }
      preemptions_.erase(it);
    }
    // As Kubernetes' PodEligibleToPreemptOthers: lower-priority pods still terminating on the
    // nominated node (say, deleted by a previous run of the scheduler) will make the room.
    if (const NodeInfo* node = cache_.Get(pod.status().nominated_node_name())) {
      for (const PodInfo& p : node->pods()) {
        if (p.pod->metadata().has_deletion_timestamp() && PodPriority(*p.pod) < PodPriority(pod)) {
          return node->name();
        }
      }
    }
    plan = FindPreemption(framework_, pod, cache_);
    if (!plan.has_value()) return "";
  }
  // Deleted one by one outside the lock; only the pods actually going count as this pod's victims.
  Preemption preemption{plan->node_name, {}};
  for (const Pod& victim : plan->victims) {
    client::DeleteOptions options;
    options.precondition_uid = victim.metadata().uid();
    options.grace_period_seconds = options_.eviction_grace_period;
    absl::StatusOr<Pod> deleted =
        client_->Delete<Pod>(victim.metadata().namespace_(), victim.metadata().name(), options);
    if (!deleted.ok() && api::Reason(deleted.status()) != "NotFound") {
      fprintf(stderr, "capstan-scheduler: preempting %s/%s: %s\n",
              victim.metadata().namespace_().c_str(), victim.metadata().name().c_str(),
              std::string(deleted.status().message()).c_str());
      continue;
    }
    preemption.victims.push_back(victim);
    if (recorder_ != nullptr) {
      recorder_->Event(victim, client::kEventTypeNormal, "Preempted",
                       absl::StrCat("Preempted by ", pod.metadata().namespace_(), "/",
                                    pod.metadata().name(), " on node ", plan->node_name));
    }
  }
  if (preemption.victims.empty()) return "";
  absl::MutexLock lock(&mu_);
  preemptions_[pod.metadata().uid()] = std::move(preemption);
  return plan->node_name;
}

void Scheduler::MarkUnschedulable(const Pod& pod, const std::string& message,
                                  const std::string& nominated_node) {
  if (recorder_ != nullptr) {
    recorder_->Event(pod, client::kEventTypeWarning, "FailedScheduling", message);
  }
  // Condition PodScheduled=False, reason Unschedulable, written only when it (or the nominated
  // node) changes.
  bool nominate = !nominated_node.empty() && pod.status().nominated_node_name() != nominated_node;
  for (const auto& c : pod.status().conditions()) {
    if (c.type() == "PodScheduled" && c.status() == "False" && c.reason() == "Unschedulable" &&
        c.message() == message && !nominate) {
      return;
    }
  }
  Pod updated = pod;
  if (nominate) updated.mutable_status()->set_nominated_node_name(nominated_node);
  capstan::core::v1::PodCondition* condition = nullptr;
  for (auto& c : *updated.mutable_status()->mutable_conditions()) {
    if (c.type() == "PodScheduled") condition = &c;
  }
  if (condition == nullptr) condition = updated.mutable_status()->add_conditions();
  condition->set_type("PodScheduled");
  condition->set_status("False");
  condition->set_reason("Unschedulable");
  condition->set_message(message);
  condition->mutable_last_transition_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  // A conflict means the pod changed; the informer's update requeues it and this runs again.
  (void)client_->UpdateStatus(updated);
}

}  // namespace capstan::scheduler
