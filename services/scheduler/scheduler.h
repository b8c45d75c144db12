// The scheduler: takes pending pods from the scheduling queue, picks a node with the plugin
// framework, and binds through the apiserver's pods/binding subresource (which refuses a pod that
// is already bound, so two schedulers never double-bind).
//
// Informers feed it: unbound pods of this scheduler go to the queue; node changes and deleted
// pods move unschedulable pods back. A bound pod is "assumed" on its node until the informer shows
// the binding, so the next decisions count it.
#ifndef CAPSTAN_SERVICES_SCHEDULER_SCHEDULER_H_
#define CAPSTAN_SERVICES_SCHEDULER_SCHEDULER_H_

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "lib/client/client.h"
#include "lib/client/event_recorder.h"
#include "lib/client/informer.h"
#include "lib/client/shared_informer_factory.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/scheduler/framework/framework.h"
#include "services/scheduler/queue/scheduling_queue.h"

namespace capstan::scheduler {

struct SchedulerOptions {
  std::string scheduler_name = "default-scheduler";  // pods with this spec.schedulerName
  uint64_t seed = 0;                                 // tie-break randomness; 0: from the clock
  // Grace period of the deletions that evict preemption victims; unset: each pod's own
  // terminationGracePeriodSeconds (the apiserver's default).
  std::optional<int64_t> eviction_grace_period;
};

class Scheduler {
 public:
  // Registers informers with factory (not started yet). Everything passed must outlive this; stop
  // the factory before destroying the scheduler. recorder and registry may be null.
  Scheduler(client::Client* client, client::SharedInformerFactory* factory,
            client::EventRecorder* recorder, prometheus::Registry* registry,
            SchedulerOptions options = {});
  ~Scheduler();

  // Waits for the caches, then schedules until Stop(). Blocks.
  void Run();
  void Stop();

  // One scheduling attempt (exposed for tests). The binding it decides is an asynchronous call;
  // Run() and the destructor wait for the calls in flight.
  void ScheduleOne(QueuedPodInfo info);

 private:
  bool Responsible(const Pod& pod) const;
  // The cache follows the informers with idempotent steps (remove, then add), so an event seen
  // twice, or before the bootstrap read, does no harm.
  // The cache shares pod (the informer's immutable object) instead of copying it.
  void CachePod(const Pod* old_pod, const std::shared_ptr<const Pod>& pod)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The binding cycle of a pod assumed on node: sends the binding (waiting first while
  // kMaxBindingsInFlight are), and records the outcome when the apiserver answers.
  void BindAssumed(QueuedPodInfo info, std::shared_ptr<const Pod> pod, std::string node,
                   std::chrono::steady_clock::time_point start);
  void BindingDone(const QueuedPodInfo& info, const std::shared_ptr<const Pod>& pod,
                   const std::string& node, std::chrono::steady_clock::time_point start,
                   absl::Status bound);
  void WaitForBindings();
  // Records FailedScheduling and the PodScheduled=False condition, and status.nominatedNodeName
  // when `nominated_node` is non-empty (one status write for both).
  void MarkUnschedulable(const Pod& pod, const std::string& message,
                         const std::string& nominated_node = "");
  // Called with an unschedulable pod: when preempting lower-priority pods would make room, deletes
  // them and returns the nominated node; "" otherwise. A pod whose earlier victims are still in
  // the cache waits for them instead of preempting again.
  std::string Preempt(const Pod& pod);

  const SchedulerOptions options_;
  client::Client* const client_;
  client::EventRecorder* const recorder_;
  client::Informer<Pod> pods_;
  client::Informer<Node> nodes_;
  SchedulingQueue queue_;
  Framework framework_;
  // Bindings are asynchronous gRPC calls, answered on gRPC's threads, many at once (they share
  // the apiserver's fsyncs) while the next pod is scheduled against a cache in which this one
  // is already assumed. A bound on them holds the scheduling loop back when the apiserver is
  // slower than the algorithm, so assumed-but-unbound pods do not pile up.
  static constexpr int kMaxBindingsInFlight = 64;
  absl::Mutex bindings_mu_;
  int bindings_in_flight_ ABSL_GUARDED_BY(bindings_mu_) = 0;

  // The cluster as the scheduler sees it: every node with its bound pods plus the pods this
  // scheduler bound that the informer has not shown bound yet (assumed), so the next decisions
  // count them. Kept up to date by the informers' events instead of being rebuilt per pod.
  absl::Mutex mu_;
  Snapshot cache_ ABSL_GUARDED_BY(mu_);
  bool cache_ready_ ABSL_GUARDED_BY(mu_) = false;
  // Preemptions under way, by preemptor uid: the nominated node and the victims deleted for it.
  struct Preemption {
    std::string node;
    std::vector<Pod> victims;
  };
  std::map<std::string, Preemption> preemptions_ ABSL_GUARDED_BY(mu_);

  prometheus::Family<prometheus::Counter>* attempts_ = nullptr;
  prometheus::Histogram* latency_ = nullptr;
  prometheus::Family<prometheus::Gauge>* pending_ = nullptr;
};

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_SCHEDULER_H_
