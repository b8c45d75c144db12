// What the node agent needs from a container runtime, and nothing more.
//
// The pod worker (services/node-agent/pod_worker.h) drives every pod to its desired state through
// this interface. Two implementations exist: ContainerdRuntime (containerd's native gRPC API; real
// containers) and SimulatedRuntime (no processes; a configurable start delay and exit code, for
// scale tests with --simulate_nodes).
//
// Containers are flat: the runtime knows nothing of pods. The agent puts the pod's identity in
// each container's labels, so that after an agent restart ListContainers() is enough to adopt
// what is running and to remove leftovers of pods deleted meanwhile.
//
// All methods are thread-safe. Errors are absl::Status: NotFound for a missing image or
// container; the message names what failed (it ends up in a pod's status message).
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_RUNTIME_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_RUNTIME_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace capstan::nodeagent {

// Labels the agent sets on every container it creates.
inline constexpr char kLabelPodUid[] = "capstan.io/pod-uid";
inline constexpr char kLabelPodNamespace[] = "capstan.io/pod-namespace";
inline constexpr char kLabelPodName[] = "capstan.io/pod-name";
inline constexpr char kLabelContainerName[] = "capstan.io/container-name";
inline constexpr char kLabelRestartCount[] = "capstan.io/restart-count";

struct ContainerConfig {
  std::string id;     // unique on this node; [a-zA-Z0-9_.-], at most 76 characters
  std::string image;  // a reference as PullImage accepted it ("busybox:latest", "127.0.0.1:5000/x:1")
  // Kubernetes' rules: command replaces the image's entrypoint, args replace its cmd; when both
  // are empty the image's own entrypoint + cmd run.
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;  // appended to (and overriding) the image's
  std::string working_dir;                               // "" = the image's, else "/"
  std::string hostname;                                  // the pod's name
  // The network namespace to join (a path like /run/netns/NAME); "" = a new, empty one.
  std::string netns_path;
  // stdout and stderr are appended to this file (created if missing), as the container writes them.
  std::string log_path;
  int64_t cpu_limit_millis = 0;      // 0 = no limit (cgroup cpu quota over a 100 ms period)
  int64_t memory_limit_bytes = 0;    // 0 = no limit
  std::map<std::string, std::string> labels;
};

enum class ContainerState {
  kCreated,  // created, never started
  kRunning,
  kExited,
  kUnknown,
};

struct ContainerInfo {
  std::string id;
  std::string image;
  ContainerState state = ContainerState::kUnknown;
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();   // set once running
  absl::Time finished_at = absl::InfinitePast();  // set once exited
  int exit_code = 0;                              // valid when exited
  // "Completed", "Error" or "OOMKilled" (Kubernetes' terminated reasons), when exited.
  std::string reason;
  std::map<std::string, std::string> labels;
};

struct ExecResult {
  int exit_code = 0;
  std::string output;  // stdout and stderr, at most 4 KiB kept
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  // "containerd://1.6.20" style: what Node.status.nodeInfo.containerRuntimeVersion shows.
  virtual absl::StatusOr<std::string> Version() = 0;
  // OK while the runtime answers; the node's Ready condition follows it.
  virtual absl::Status Healthy() = 0;

  // --- images ---
  // The image's id (config digest) when present on the node; NotFound otherwise.
  virtual absl::StatusOr<std::string> ImageId(const std::string& image) = 0;
  // Pulls image from its registry (plain HTTP for loopback registries, HTTPS otherwise) and
  // unpacks it. NotFound when the registry does not have it; Unavailable when it cannot be reached.
  virtual absl::Status PullImage(const std::string& image) = 0;

  // --- containers ---
  virtual absl::Status CreateContainer(const ContainerConfig& config) = 0;
  virtual absl::Status StartContainer(const std::string& id) = 0;
  // SIGTERM, then SIGKILL once grace has passed; returns when the container has exited (at once
  // when it is not running).
  virtual absl::Status StopContainer(const std::string& id, absl::Duration grace) = 0;
  // Removes the container and everything made for it (task, snapshot). The log file stays.
  // OK when it does not exist.
  virtual absl::Status RemoveContainer(const std::string& id) = 0;
  virtual absl::StatusOr<ContainerInfo> InspectContainer(const std::string& id) = 0;
  // Every container this runtime holds for the agent (its containerd namespace).
  virtual absl::StatusOr<std::vector<ContainerInfo>> ListContainers() = 0;
  // Runs cmd inside a running container (exec probes). DeadlineExceeded after timeout.
  virtual absl::StatusOr<ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                                          absl::Duration timeout) = 0;

  // Called (from a runtime thread) with a container's id whenever it exits, so that the agent
  // reacts at once instead of polling. Set once, before any container is started.
  using ExitHandler = std::function<void(const std::string& id)>;
  virtual void SetExitHandler(ExitHandler handler) = 0;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_RUNTIME_H_
