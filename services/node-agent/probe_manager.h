// Readiness and liveness probes of running containers (Kubernetes' prober manager).
//
// The pod worker asks for a container to be probed once it runs and forgets it once it stops.
// Every probe runs on its own period (periodSeconds after initialDelaySeconds); a result flips only
// after successThreshold successes or failureThreshold failures in a row. When a result flips, the
// handler is called with the pod's uid so that the pod is synced again: readiness goes into the
// pod's status, a failed liveness probe makes the worker restart the container.
//
// Probe kinds: exec (through the runtime), httpGet (status 200-399 is success) and tcpSocket, both
// against the pod's IP.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_PROBE_MANAGER_H_
#define CAPSTAN_SERVICES_NODE_AGENT_PROBE_MANAGER_H_

#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/clock.h"
#include "proto/core_v1.pb.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

// One probe's outcome: success, and a message for failures ("HTTP probe failed with statuscode: 500").
struct ProbeOutcome {
  bool success = false;
  std::string message;
};

// Runs one probe once. Exposed for tests.
ProbeOutcome RunProbe(Runtime* runtime, const std::string& container_id, const std::string& pod_ip,
                      const capstan::core::v1::Probe& probe);

class ProbeManager {
 public:
  using ResultHandler = std::function<void(const std::string& pod_uid)>;
  ProbeManager(Runtime* runtime, ResultHandler on_change, int threads = 4,
               client::Clock* clock = client::Clock::Real());
  ~ProbeManager();

  // Starts probing container_id (no-op when it is already probed). started_at: when it began to
  // run (initialDelaySeconds counts from there).
  void Add(const std::string& pod_uid, const std::string& container_id,
           const capstan::core::v1::Container& spec, const std::string& pod_ip,
           absl::Time started_at);
  // Stops probing container_id and drops its results.
  void Remove(const std::string& container_id);

  // True once the readiness probe has succeeded (successThreshold times in a row), and always
  // for a container without one. False for a container not added.
  bool Ready(const std::string& container_id);
  // True once the liveness probe has failed failureThreshold times in a row; the message says why.
  bool LivenessFailed(const std::string& container_id, std::string* message = nullptr);

 private:
  enum class Kind { kReadiness, kLiveness };
  struct Worker {
    std::string pod_uid;
    std::string container_id;
    std::string pod_ip;
    Kind kind;
    capstan::core::v1::Probe probe;
    absl::Time next_run;
    bool running = false;  // a probe of this worker is in flight
    int successes = 0;     // in a row
    int failures = 0;      // in a row
    bool result = false;   // readiness: ready; liveness: failed
    std::string message;
  };
  using WorkerKey = std::pair<std::string, Kind>;  // container id, kind

  void SchedulerLoop();
  void ProbeLoop();
  // Records one outcome; true when the worker's result flipped.
  static bool Record(Worker* w, const ProbeOutcome& outcome);

  Runtime* const runtime_;
  const ResultHandler on_change_;
  client::Clock* const clock_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<WorkerKey, Worker> workers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> containers_ ABSL_GUARDED_BY(mu_);  // added, with or without probes
  std::vector<WorkerKey> due_ ABSL_GUARDED_BY(mu_);         // probes waiting for a thread
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_PROBE_MANAGER_H_
