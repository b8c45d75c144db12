// Runs a real etcd (Debian's etcd-server, /usr/bin/etcd) for tests and benchmarks: one member,
// client and peer URLs on free 127.0.0.1 ports, data in a private temp directory, etcd's default
// durability (fsync of its WAL on every commit). Killed, and its data removed, on destruction.
//
// Used to measure the apiserver against the store Kubernetes itself runs on (bench/etcd_bench.cc).
// The gRPC API is //third_party/etcd:api.
#ifndef CAPSTAN_TEST_HARNESS_ETCD_PROCESS_H_
#define CAPSTAN_TEST_HARNESS_ETCD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace capstan::testing {

class EtcdProcess {
 public:
  // extra_flags are appended to the command line (e.g. "--quota-backend-bytes=...").
  explicit EtcdProcess(std::vector<std::string> extra_flags = {});
  ~EtcdProcess();  // SIGKILL if running, remove the temp directory
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // Starts etcd and waits, up to 30 s, until it answers a gRPC Maintenance.Status call.
  absl::Status Start();
  void Kill();  // SIGKILL, as a crash would

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // "127.0.0.1:PORT", the gRPC (client) endpoint.
  const std::string& client_address() const { return client_address_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string version() const { return version_; }  // as Status reported it, e.g. "3.4.23"
  std::string log() const;                          // etcd's output so far

 private:
  absl::Status StartOnce();

  std::vector<std::string> extra_flags_;
  std::string root_;      // private temp directory
  std::string data_dir_;  // root_/data
  pid_t pid_ = -1;
  std::string client_address_;
  std::string version_;
};

// The etcd binary: `etcd` in PATH, else /usr/bin/etcd; empty when there is none.
std::string EtcdBinary();

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_ETCD_PROCESS_H_
