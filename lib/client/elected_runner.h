// Runs a service's work under leader election, as kube-controller-manager and kube-scheduler do:
// the work starts once this replica holds the Lease; a replica that loses the Lease exits at once,
// so nothing of it acts next to the new leader; Stop() stops the work and releases the Lease so a
// standby takes over immediately. The --leader_elect* flags configure it.
#ifndef CAPSTAN_LIB_CLIENT_ELECTED_RUNNER_H_
#define CAPSTAN_LIB_CLIENT_ELECTED_RUNNER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "lib/client/client.h"
#include "lib/client/leader_election.h"

namespace capstan::client {

class ElectedRunner {
 public:
  // program: for log lines; lease_name: the Lease in kube-system. start runs (on the elector's
  // thread, or at once without --leader_elect) and must not block; stop runs in Stop() if start ran.
  ElectedRunner(Client* client, std::string program, std::string lease_name,
                std::function<void()> start, std::function<void()> stop);
  ~ElectedRunner();

  // Campaigns for the Lease (or starts at once with --leader_elect=false). InvalidArgument for
  // inconsistent --leader_elect_* durations.
  absl::Status Start();
  // Stops the work if it started, then releases the Lease.
  void Stop();

 private:
  Client* const client_;
  const std::string program_;
  const std::string lease_name_;
  const std::function<void()> start_;
  const std::function<void()> stop_;
  std::atomic<bool> leading_{false};
  std::atomic<bool> stopping_{false};
  std::unique_ptr<LeaderElector> elector_;
  std::thread election_;
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_ELECTED_RUNNER_H_
