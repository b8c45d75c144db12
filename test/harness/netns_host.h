// Several "hosts" on one machine for end-to-end tests: each NetnsHost is a network namespace with
// its own address, joined to a bridge in the root namespace by a veth pair, so that cutting the
// veth partitions that host for real.
//
//   root namespace: bridge ctnetX 10.201.X.1/24   <- services here listen on this address (or
//      |                                             0.0.0.0); 127.0.0.1 is not reachable from
//      +-- cthXhN (veth) <-> eth0 10.201.X.N/24      a host, which has its own loopback
//                            in namespace ctX-NAME, default route via 10.201.X.1
//
// X is chosen per TestNetwork under a lock file (/run/lock or /tmp), so parallel test processes do
// not share a subnet or names; what a crashed run left under the same X is removed first. Needs
// root and iproute2 (and busybox for the usual probes). No forwarding or NAT is set up: traffic
// stays on the bridge.
//
//   auto network = TestNetwork::Create();          // check ok()
//   auto node1 = (*network)->AddHost("node1");
//   (*node1)->Spawn({agent_binary, "--apiserver=" + (*network)->address() + ":" + port}, log);
//   (*node1)->CutLink();  ...  (*node1)->RestoreLink();
#ifndef CAPSTAN_TEST_HARNESS_NETNS_HOST_H_
#define CAPSTAN_TEST_HARNESS_NETNS_HOST_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace capstan::testing {

struct ExecResult {
  int exit_code = -1;  // -1 when killed by a signal (also on timeout)
  std::string output;  // stdout and stderr together
};

// Runs args[0] (an absolute path) to completion with stdout and stderr captured; killed with
// SIGKILL after `timeout`, which is then DeadlineExceeded.
absl::StatusOr<ExecResult> RunCommand(const std::vector<std::string>& args,
                                      absl::Duration timeout);

class NetnsHost;

class TestNetwork {
 public:
  // Picks a free 10.201.X.0/24 and makes the bridge with 10.201.X.1.
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create();
  // Deletes the bridge. Destroy the hosts first (their destructors stop their processes).
  ~TestNetwork();

  const std::string& bridge() const { return bridge_; }
  // The root namespace's address on the bridge, e.g. "10.201.7.1".
  const std::string& address() const { return address_; }

  // A new host with the next free address (10.201.X.2, .3, ...). `name` is short and unique in
  // this network, e.g. "node1"; the namespace is called ctX-name.
  absl::StatusOr<std::unique_ptr<NetnsHost>> AddHost(const std::string& name);

 private:
  TestNetwork(int subnet, int lock_fd);

  const int subnet_;  // X
  const int lock_fd_;
  const std::string bridge_;
  const std::string address_;
  int next_host_ = 2;
};

class NetnsHost {
 public:
  ~NetnsHost();  // SIGKILLs every process in the namespace, deletes the namespace and its veth

  const std::string& name() const { return name_; }  // for `ip netns exec NAME` / `ip -n NAME`
  std::string netns_path() const { return "/run/netns/" + name_; }
  const std::string& address() const { return address_; }  // e.g. "10.201.7.2"

  // Runs args inside the namespace to completion (`ip netns exec`, so args[0] may be a name
  // found in PATH). A non-zero exit is a result, not an error; the timeout is an error.
  absl::StatusOr<ExecResult> Exec(const std::vector<std::string>& args,
                                  absl::Duration timeout = absl::Seconds(10));
  // Starts args inside the namespace in the background, stdout and stderr appended to
  // log_path. Returns the pid (the process itself: `ip netns exec` execs it), or -1.
  pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path);

  // Sets the root-side veth down: the host loses its link (its packets are dropped, connections
  // hang rather than reset) until RestoreLink().
  absl::Status CutLink();
  // args run inside this host's network namespace (and nothing else of it).
  std::vector<std::string> InNamespace(const std::vector<std::string>& args) const;
  absl::Status RestoreLink();

 private:
  friend class TestNetwork;
  NetnsHost(std::string name, std::string veth, std::string address)
      : name_(std::move(name)), veth_(std::move(veth)), address_(std::move(address)) {}

  const std::string name_;
  const std::string veth_;  // root side
  const std::string address_;
  std::vector<pid_t> spawned_;
};

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_NETNS_HOST_H_
