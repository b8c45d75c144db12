// The node agent's container runtime on containerd 1.6, through containerd's native gRPC API
// (not CRI: the agent does the pod-level work itself).
//
// What it makes in containerd, all in one containerd namespace:
// - an image record per image (named by its normalised reference, e.g.
//   docker.io/library/busybox:latest), its blobs in the content store and one committed snapshot
//   per layer, named by chain id. Pulling and unpacking are client-side in containerd 1.6, so
//   this class does them: registry -> content service -> diff service (apply a layer onto a
//   snapshot) -> snapshot commit.
// - per container: a container record (the OCI spec as JSON, the agent's labels), an active
//   snapshot named after the container (its rootfs), and, once started, a task (runc, through
//   containerd's shim), whose stdout and stderr the shim appends to the container's log file.
// Every call carries the `containerd-namespace` header; everything made in several steps is made
// under a containerd lease, so containerd's garbage collector cannot take half-made content.
//
// Runtime-private labels (prefix "io.capstan.runtime.") keep what containerd does not: the log
// path, when the task started, and whether it was OOM-killed. They are not shown to the agent.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_CONTAINERD_RUNTIME_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_CONTAINERD_RUNTIME_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/node-agent/runtime/runtime.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace capstan::nodeagent {

struct Descriptor;
struct ImageConfig;
class ContainerdStubs;  // the gRPC stubs, kept out of this header

// An agent killed during an exec leaves the exec's output FIFO without a reader, and containerd's
// shim blocks opening it for writing (the task then stops answering for ~30 s). This opens such
// FIFOs for reading, which lets the shim go on, and removes them. Only those older than
// older_than (longer than any exec's timeout) are touched, so in-flight execs of other agents on
// the machine are left alone. The constructor calls it.
void ReleaseLeftoverExecFifos(absl::Duration older_than = absl::Minutes(2));

class ContainerdRuntime : public Runtime {
 public:
  // socket: containerd's gRPC socket ("/run/containerd/containerd.sock" or "unix:///...").
  // ns: the containerd namespace that holds this agent's images and containers.
  ContainerdRuntime(const std::string& socket, std::string ns,
                    std::string snapshotter = "overlayfs");
  ~ContainerdRuntime() override;  // stops the event thread

  absl::StatusOr<std::string> Version() override;
  absl::Status Healthy() override;

  absl::StatusOr<std::string> ImageId(const std::string& image) override;
  absl::Status PullImage(const std::string& image) override;
  // Loads every image of an OCI image-layout tar (scripts/make-image.sh, `skopeo copy ...
  // oci-archive:`), named by its index's io.containerd.image.name annotation (else
  // org.opencontainers.image.ref.name when that is a whole reference). Returns the normalised names.
  absl::StatusOr<std::vector<std::string>> ImportImage(const std::string& path);

  absl::Status CreateContainer(const ContainerConfig& config) override;
  absl::Status StartContainer(const std::string& id) override;
  absl::Status StopContainer(const std::string& id, absl::Duration grace) override;
  absl::Status RemoveContainer(const std::string& id) override;
  absl::StatusOr<ContainerInfo> InspectContainer(const std::string& id) override;
  absl::StatusOr<std::vector<ContainerInfo>> ListContainers() override;
  absl::StatusOr<ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                                  absl::Duration timeout) override;

  // Starts the event thread (a subscription to containerd's /tasks/exit and /tasks/oom events)
  // and returns once it is subscribed, so no exit after this call is missed.
  void SetExitHandler(ExitHandler handler) override;

  // Where the container's cgroups are, relative to each cgroup v1 hierarchy (or the v2 root):
  // "/<namespace>/<id>", as containerd's own clients do.
  std::string CgroupsPath(const std::string& id) const;

 private:
  struct ResolvedImage;      // an image record with its config, read from the content store
  class Lease;               // a containerd lease for the duration of a multi-step change
  struct BlobSource;         // where PullImage / ImportImage read blobs from
  struct TaskState;

  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout,
                                               const std::string& lease = "") const;

  // --- images ---
  absl::StatusOr<ResolvedImage> ResolveImage(const std::string& image);
  absl::StatusOr<std::string> ReadContent(const std::string& digest, int64_t max_size);
  // Stores an image (its top manifest or index given as bytes) and unpacks it; names it `name`.
  absl::Status StoreImage(const std::string& name, const Descriptor& top,
                          const std::string& top_bytes, const BlobSource& source);
  absl::Status WriteBlob(const Descriptor& blob, const std::string* bytes,
                         const BlobSource* source, const std::map<std::string, std::string>& labels,
                         const std::string& lease);
  absl::Status Unpack(const std::vector<Descriptor>& layers, const std::vector<std::string>& diff_ids,
                      const std::string& lease);
  absl::Status SetImageRecord(const std::string& name, const Descriptor& target,
                              const std::string& lease);

  // --- containers and tasks ---
  absl::StatusOr<TaskState> GetTask(const std::string& id, const std::string& exec_id = "");
  absl::Status Kill(const std::string& id, int signal, bool all, const std::string& exec_id = "");
  // Waits for the process to exit; DeadlineExceeded after timeout.
  absl::Status Wait(const std::string& id, absl::Duration timeout, const std::string& exec_id = "");
  absl::Status SetLabel(const std::string& id, const std::string& key, const std::string& value);

  // --- events ---
  void EventLoop();
  absl::Status PublishSyncEvent();
  void HandleEvent(const std::string& topic, const std::string& payload);

  const std::string ns_;
  const std::string snapshotter_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<ContainerdStubs> stubs_;

  absl::Mutex pull_mu_;  // one image write at a time: content writes of one blob share a ref

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const ResolvedImage>> images_ ABSL_GUARDED_BY(mu_);
  ExitHandler exit_handler_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* event_context_ ABSL_GUARDED_BY(mu_) = nullptr;  // to cancel the stream
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread event_thread_;
  std::atomic<uint64_t> exec_counter_{0};
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_CONTAINERD_RUNTIME_H_
