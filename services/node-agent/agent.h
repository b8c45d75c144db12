// One node: registers it, heartbeats, and runs the pods bound to it (kubelet's job).
//
//   pods bound here (informer, field selector spec.nodeName=NAME)
//        |  add / update / delete, container exits, probe flips
//        v
//   work queue keyed by pod uid (one sync of a pod at a time)  --> PodWorker::SyncPod / KillPod
//        |                                                              |
//        v                                                              v
//   pods/status written only when it changed                     Runtime + PodNetwork
//
// A pod being deleted (deletionTimestamp set) is stopped within its grace period, everything made
// for it is removed, then the agent completes the delete (grace 0, uid precondition). On start,
// containers and network namespaces left from before are adopted by their labels; those of pods
// that no longer exist are removed.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_AGENT_H_
#define CAPSTAN_SERVICES_NODE_AGENT_AGENT_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/client.h"
#include "lib/client/informer.h"
#include "lib/client/workqueue.h"
#include "proto/core_v1.pb.h"
#include "services/node-agent/network/pod_network.h"
#include "services/node-agent/node_status.h"
#include "services/node-agent/pod_worker.h"
#include "services/node-agent/probe_manager.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

struct NodeAgentOptions {
  NodeConfig node;
  PodWorkerOptions worker;  // node_ip is taken from node.ip
  int workers = 8;          // pods synced at once
  int probe_threads = 4;
  // How often the log directories of pods this node no longer has are collected; a deleted pod's
  // logs stay one to two periods (the kubelet's container GC runs every minute).
  absl::Duration log_gc_period = absl::Minutes(1);
};

class NodeAgent {
 public:
  // client, runtime and network (may be null: no pod networks) must outlive the agent.
  NodeAgent(client::Client* client, Runtime* runtime, PodNetwork* network, NodeAgentOptions options);
  ~NodeAgent();  // Stop()

  // Registers the node, adopts what the runtime holds, starts watching pods and the workers.
  // Returns once the pod cache is filled; fails only if the node cannot be registered.
  absl::Status Start();
  // Stops syncing; containers keep running (an agent restart adopts them).
  void Stop();

  const std::string& node_name() const { return options_.node.name; }

  // The log file of a container of a pod on this node (the previous instance's when previous).
  // NotFound / InvalidArgument with Kubernetes' messages.
  absl::StatusOr<std::string> LogPath(const std::string& ns, const std::string& pod,
                                      std::string container, bool previous);
  // Whether the container's current instance may still write to its log (running or starting),
  // for `logs -f`.
  bool ContainerMayWrite(const std::string& ns, const std::string& pod, const std::string& container);

 private:
  struct Entry {
    std::shared_ptr<const capstan::core::v1::Pod> pod;  // latest seen; null for adopted leftovers
    bool in_api = false;
    PodRecord record;  // touched only by the worker syncing this uid
  };

  void Adopt();
  void OnPod(const client::Object& object, bool deleted);
  void Work();
  void CollectLogs();  // The log collector thread: PodWorker::CollectPodLogs every period.
  // One sync of the pod with this uid; returns when to look again (zero: only on change).
  absl::Duration Sync(const std::string& uid);
  void WriteStatus(Entry* entry, const capstan::core::v1::Pod& pod,
                   const capstan::core::v1::PodStatus& status, absl::Duration* requeue);
  std::shared_ptr<const capstan::core::v1::Pod> FindPod(const std::string& ns, const std::string& name);

  client::Client* const client_;
  Runtime* const runtime_;
  PodNetwork* const network_;
  NodeAgentOptions options_;
  client::WorkQueue queue_;
  std::unique_ptr<ProbeManager> probes_;
  std::unique_ptr<PodWorker> worker_;
  std::unique_ptr<NodeStatusReporter> reporter_;
  std::unique_ptr<client::SharedIndexInformer> informer_;
  std::thread informer_thread_;
  std::vector<std::thread> workers_;
  std::thread log_collector_;

  absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);  // by pod uid
  bool started_ = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_AGENT_H_
