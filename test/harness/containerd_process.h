// Runs a private containerd for a test: its root, state, gRPC and ttrpc sockets all under one
// private directory, so it never touches (or clashes with) the machine's own containerd. On
// destruction it removes every task it still runs, stops containerd and its shims, and deletes
// the directory.
//
// containerd needs root (mounts, cgroups, namespaces): tests call RequiresRootReason() first and
// skip with that reason when it is not empty.
#ifndef CAPSTAN_TEST_HARNESS_CONTAINERD_PROCESS_H_
#define CAPSTAN_TEST_HARNESS_CONTAINERD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace capstan::testing {

class ContainerdProcess {
 public:
  ContainerdProcess();
  ~ContainerdProcess();
  ContainerdProcess(const ContainerdProcess&) = delete;
  ContainerdProcess& operator=(const ContainerdProcess&) = delete;

  // Starts containerd (the one in PATH, or /usr/bin/containerd) and waits, up to 30 s, until its
  // socket accepts connections.
  absl::Status Start();
  // Removes what containers left (tasks, mounts), then stops containerd and any shim of its.
  void Stop();

  bool running() const { return pid_ > 0; }
  const std::string& socket() const { return socket_; }  // containerd's gRPC socket path
  const std::string& root() const { return dir_; }
  std::string log() const;  // containerd's output so far

 private:
  // Runs `ctr --address SOCKET args...` and returns its stdout.
  absl::StatusOr<std::string> Ctr(const std::vector<std::string>& args) const;
  void RemoveAllTasks();
  void KillShims();
  void UnmountUnder(const std::string& dir);

  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

// "" when containerd can run here; otherwise why not (for GTEST_SKIP).
std::string RequiresRootReason();

// Runs args[0] with args and returns its stdout; an error (with its output) unless it exits 0.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& args);

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_CONTAINERD_PROCESS_H_
