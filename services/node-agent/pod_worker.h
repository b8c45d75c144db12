// The pod worker: drives one pod on this node to the state its spec asks for, one step per sync
// (Kubernetes' kubelet syncPod), and computes the status to report.
//
// Level-triggered: SyncPod looks at the pod, at what the runtime has, and at what the agent
// remembers (PodRecord: container ids, restart counts, backoffs), acts, and says when it wants to
// look again. The agent calls it from a work queue keyed by pod uid, so one pod is never synced by
// two threads at once, and again whenever the pod changes, a container exits or a probe flips.
//
// For each container:
//   no container yet   -> make sure the image is there (imagePullPolicy; ErrImagePull, then
//                         ImagePullBackOff with a 10 s doubling backoff), create and start it
//   running            -> ready per its readiness probe; restarted if its liveness probe fails
//   exited             -> restarted per restartPolicy (Always; OnFailure when the exit code is not
//                         0; Never), the first time at once, then after a crash-loop backoff of
//                         10 s doubling to 5 min (CrashLoopBackOff), reset after 10 min of running
// A pod whose phase is Succeeded or Failed is never restarted.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_POD_WORKER_H_
#define CAPSTAN_SERVICES_NODE_AGENT_POD_WORKER_H_

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/time/time.h"
#include "lib/client/clock.h"
#include "proto/core_v1.pb.h"
#include "services/node-agent/network/pod_network.h"
#include "services/node-agent/probe_manager.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

// What the agent remembers of one container of a pod between syncs.
struct ContainerRecord {
  std::string id;         // the current runtime container; "" before the first one is made
  int restart_count = 0;  // containers made for this name, minus one
  // The previous container's end, for status.lastState and `logs --previous`.
  std::optional<capstan::core::v1::ContainerStateTerminated> last_termination;
  absl::Duration crash_backoff = absl::ZeroDuration();  // the next restart's delay
  absl::Duration pull_backoff = absl::ZeroDuration();
  absl::Time pull_retry_at = absl::InfinitePast();
  // Why the container is not running yet (ErrImagePull, ...); "" = ContainerCreating.
  std::string waiting_reason;
  std::string waiting_message;
  std::string image_id;
};

// What the agent remembers of one pod.
struct PodRecord {
  std::string uid;
  std::string ns;
  std::string name;
  absl::Time start_time = absl::InfinitePast();  // first seen by this agent
  std::optional<PodNetworkStatus> network;
  std::map<std::string, ContainerRecord> containers;  // by container name
  bool terminal = false;  // phase reached Succeeded or Failed: nothing restarts any more
};

struct SyncResult {
  capstan::core::v1::PodStatus status;  // what the pod's status should be now
  absl::Duration requeue_after = absl::ZeroDuration();  // zero: only when something changes
};

struct PodWorkerOptions {
  std::string node_ip;          // status.hostIP
  std::string log_root;         // container logs go under here; "" = none (simulated nodes)
  std::string runtime_scheme = "containerd";  // containerID prefix: "containerd://ID"
  absl::Duration crash_backoff_initial = absl::Seconds(10);
  absl::Duration crash_backoff_max = absl::Minutes(5);
  absl::Duration pull_backoff_initial = absl::Seconds(10);
  absl::Duration pull_backoff_max = absl::Minutes(5);
  client::Clock* clock = client::Clock::Real();
};

class PodWorker {
 public:
  // runtime, network and probes must outlive the worker; probes may be null (no probing).
  PodWorker(Runtime* runtime, PodNetwork* network, ProbeManager* probes, PodWorkerOptions options);

  // One step of a live (not terminating) pod. Errors talking to the runtime end up in the status
  // (waiting reasons) and a short requeue, not in a failed sync.
  SyncResult SyncPod(const capstan::core::v1::Pod& pod, PodRecord* record);

  // Stops every container of the pod (SIGTERM, SIGKILL after grace, all at once), removes them and
  // the pod's network. OK when there was nothing left.
  absl::Status KillPod(PodRecord* record, absl::Duration grace);

  // Rebuilds records from what the runtime holds (after an agent restart): containers are matched
  // to pods by their labels, the newest container of each name is the current one.
  static std::map<std::string, PodRecord> Adopt(const std::vector<ContainerInfo>& containers);

  // The log file of a container's given restart (kubelet's layout: NS_NAME_UID/CONTAINER/N.log).
  std::string LogPath(const PodRecord& record, const std::string& container, int restart) const;

  // One pass of the log garbage collector, as the kubelet's container GC: a pod's log directory
  // (NS_NAME_UID) whose uid is not in `live` is removed if it was already not live on the previous
  // pass, so a deleted pod's logs stay readable for one to two passes. Returns how many it
  // removed. Called from one thread at a time.
  int CollectPodLogs(const std::set<std::string>& live);

 private:
  // Makes sure the container's image is on the node; false (and the record's waiting reason set)
  // when it is not (yet).
  bool EnsureImage(const capstan::core::v1::Container& spec, ContainerRecord* c, absl::Time now,
                   absl::Duration* requeue);
  absl::Status StartNew(const capstan::core::v1::Pod& pod, int index, PodRecord* record);
  capstan::core::v1::ContainerStatus ContainerStatusOf(const capstan::core::v1::Container& spec,
                                                       const ContainerRecord& c,
                                                       const std::optional<ContainerInfo>& info,
                                                       bool restarting);

  Runtime* const runtime_;
  PodNetwork* const network_;
  ProbeManager* const probes_;
  const PodWorkerOptions options_;
  std::set<std::string> dead_log_dirs_;  // seen not live by the last CollectPodLogs
};

// Kubernetes' pod phase from its containers' states (kubelet's getPhase, without init containers).
std::string PodPhase(const capstan::core::v1::PodSpec& spec,
                     const std::vector<capstan::core::v1::ContainerStatus>& statuses);

// Conditions for a status: PodScheduled kept from `old`, Initialized, ContainersReady and Ready
// computed; lastTransitionTime kept from `old` where the status did not change.
void SetPodConditions(const capstan::core::v1::PodStatus& old, absl::Time now,
                      capstan::core::v1::PodStatus* status);

// Whether two statuses differ in anything but timestamps of conditions that did not change.
bool StatusChanged(const capstan::core::v1::PodStatus& a, const capstan::core::v1::PodStatus& b);

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_POD_WORKER_H_
