// A container runtime without containers, for scale tests and benchmarks (--simulate_nodes) and
// for unit tests of the pod worker: the same pod-lifecycle code runs above it as above containerd.
//
// A "container" is a record. StartContainer makes it running after Options::start_delay; it exits
// after a run time with an exit code. Both come from the container's environment, so a manifest
// can ask for a crash loop without a real process:
//   CAPSTAN_SIMULATE_RUN_SECONDS=2   exits 2 s after it started (default: runs until stopped)
//   CAPSTAN_SIMULATE_EXIT_CODE=3     the exit code it then exits with (default 0)
//   CAPSTAN_SIMULATE_IGNORE_SIGTERM=1  StopContainer only ends it when the grace period is over
// Images named in Options::missing_images fail to pull with NotFound; every other image "pulls".
// Exec runs nothing: it answers the exit code in CAPSTAN_SIMULATE_EXEC_EXIT_CODE (default 0) and
// echoes the command.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_RUNTIME_H_
#define CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_RUNTIME_H_

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/clock.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

class SimulatedRuntime : public Runtime {
 public:
  struct Options {
    absl::Duration start_delay = absl::ZeroDuration();
    std::set<std::string> missing_images;
    client::Clock* clock = client::Clock::Real();  // not owned
  };
  explicit SimulatedRuntime(Options options);
  ~SimulatedRuntime() override;

  absl::StatusOr<std::string> Version() override { return std::string("simulated://1"); }
  absl::Status Healthy() override;
  absl::StatusOr<std::string> ImageId(const std::string& image) override;
  absl::Status PullImage(const std::string& image) override;
  absl::Status CreateContainer(const ContainerConfig& config) override;
  absl::Status StartContainer(const std::string& id) override;
  absl::Status StopContainer(const std::string& id, absl::Duration grace) override;
  absl::Status RemoveContainer(const std::string& id) override;
  absl::StatusOr<ContainerInfo> InspectContainer(const std::string& id) override;
  absl::StatusOr<std::vector<ContainerInfo>> ListContainers() override;
  absl::StatusOr<ExecResult> Exec(const std::string& id, const std::vector<std::string>& cmd,
                                  absl::Duration timeout) override;
  void SetExitHandler(ExitHandler handler) override;

  // For tests: makes Healthy() fail (a runtime that went away).
  void SetHealthy(bool healthy);
  // For tests: the container's process vanishes without an exit status (as when containerd's
  // state is lost): it shows as kUnknown.
  void LoseTask(const std::string& id);
  // For tests: how many pulls have been made of image.
  int PullCount(const std::string& image);

 private:
  struct Container {
    ContainerConfig config;
    ContainerInfo info;
    absl::Time exits_at = absl::InfiniteFuture();  // when running: the planned exit
    int planned_exit_code = 0;
    bool ignores_sigterm = false;
  };
  // Moves containers whose start delay or run time has passed to their next state; returns the
  // ids that exited.
  std::vector<std::string> AdvanceLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExitLocked(Container* c, int exit_code, absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop();

  const Options options_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  std::map<std::string, Container> containers_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> pulls_ ABSL_GUARDED_BY(mu_);
  ExitHandler exit_handler_ ABSL_GUARDED_BY(mu_);
  bool healthy_ ABSL_GUARDED_BY(mu_) = true;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread timer_;
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_SIMULATED_RUNTIME_H_
