// Runs a real capstan-apiserver process for tests and benchmarks: private data directory, free
// ports (port 0, read back from --address-file), killed and cleaned up on destruction.
#ifndef CAPSTAN_TEST_HARNESS_APISERVER_PROCESS_H_
#define CAPSTAN_TEST_HARNESS_APISERVER_PROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace capstan::testing {

class ApiServerProcess {
 public:
  // binary: path of capstan-apiserver; empty finds it in the Bazel runfiles
  // (services/apiserver/capstan-apiserver), or next to the current executable's workspace.
  // extra_flags are passed on every start.
  explicit ApiServerProcess(std::vector<std::string> extra_flags = {}, std::string binary = "");
  ~ApiServerProcess();  // SIGKILLs the process if running and removes the data directory

  // Starts the process and waits (up to 30 s) until it serves. Reuses the same data directory
  // across restarts.
  absl::Status Start();
  // SIGKILL, as a crash would: nothing is flushed.
  void Kill();
  // SIGTERM and wait: a clean shutdown.
  void Stop();
  absl::Status Restart() {
    Kill();
    return Start();
  }

  bool running() const { return pid_ > 0; }
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  void Reap();

  std::vector<std::string> extra_flags_;
  std::string binary_;
  std::string root_;      // private temp directory
  std::string data_dir_;  // root_/data
  pid_t pid_ = -1;
  std::string grpc_address_;
  std::string metrics_address_;
};

// Starts `args[0]` with `args`, stdout and stderr appended to log_path; the child is killed if
// this process dies. Returns the pid, or -1.
pid_t SpawnProcess(const std::vector<std::string>& args, const std::string& log_path);

// Waits until `path` holds a complete KEY=VALUE file (written by a service's --address_file) and
// returns its values by key. Fails if `pid` exits first (the error quotes log_path) or after 30 s.
absl::StatusOr<std::map<std::string, std::string>> WaitForAddressFile(const std::string& path,
                                                                      pid_t pid,
                                                                      const std::string& log_path);

// A service process other than the apiserver (controller-manager, scheduler, ...) started with
// --address_file in a private temp directory.
class ServiceProcess {
 public:
  // binary: workspace-relative path found in the runfiles, e.g.
  // "services/controller-manager/capstan-controller-manager".
  ServiceProcess(std::string binary, std::vector<std::string> flags);
  ~ServiceProcess();  // SIGKILL if running, remove the temp directory
  absl::Status Start();
  void Kill();  // SIGKILL
  void Stop();  // SIGTERM and wait
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::map<std::string, std::string>& addresses() const { return addresses_; }
  std::string log() const;

 private:
  std::string binary_;
  std::vector<std::string> flags_;
  std::string root_;
  pid_t pid_ = -1;
  std::map<std::string, std::string> addresses_;
};

// The runfiles-relative path of a file in this workspace, for tests run by Bazel (or the path
// itself when not under Bazel).
std::string RunfilePath(const std::string& workspace_relative);

// GET http://address/path over a plain socket; returns the body, or an error with the status line.
absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path);

// A fresh private directory under TEST_TMPDIR (or /tmp); the caller removes it.
std::string MakeTempDir(const std::string& prefix);
void RemoveTree(const std::string& path);

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_APISERVER_PROCESS_H_
