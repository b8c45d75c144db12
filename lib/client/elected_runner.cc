#include "lib/client/elected_runner.h"

#include <unistd.h>

#include <cstdio>

#include "absl/flags/flag.h"

ABSL_FLAG(bool, leader_elect, true, "Elect a leader on a Lease before doing any work");
ABSL_FLAG(std::string, leader_elect_identity, "", "This replica's identity; default: host_random");
ABSL_FLAG(absl::Duration, leader_elect_lease_duration, absl::Seconds(15), "Lease duration");
ABSL_FLAG(absl::Duration, leader_elect_renew_deadline, absl::Seconds(10),
          "A leader that cannot renew for this long stops");
ABSL_FLAG(absl::Duration, leader_elect_retry_period, absl::Seconds(2), "Acquire/renew interval");

namespace capstan::client {

ElectedRunner::ElectedRunner(Client* client, std::string program, std::string lease_name,
                             std::function<void()> start, std::function<void()> stop)
    : client_(client),
      program_(std::move(program)),
      lease_name_(std::move(lease_name)),
      start_(std::move(start)),
      stop_(std::move(stop)) {}

ElectedRunner::~ElectedRunner() { Stop(); }

absl::Status ElectedRunner::Start() {
  auto start = [this] {
    leading_ = true;
    start_();
  };
  if (!absl::GetFlag(FLAGS_leader_elect)) {
    start();
    return absl::OkStatus();
  }
  LeaderElectionConfig config;
  config.lease_namespace = "kube-system";
  config.lease_name = lease_name_;
  config.identity = absl::GetFlag(FLAGS_leader_elect_identity);
  if (config.identity.empty()) config.identity = LeaderElectionConfig::DefaultIdentity();
  config.lease_duration = absl::GetFlag(FLAGS_leader_elect_lease_duration);
  config.renew_deadline = absl::GetFlag(FLAGS_leader_elect_renew_deadline);
  config.retry_period = absl::GetFlag(FLAGS_leader_elect_retry_period);
  config.on_started_leading = [this, start, id = config.identity] {
    fprintf(stderr, "%s: %s is the leader\n", program_.c_str(), id.c_str());
    start();
  };
  config.on_stopped_leading = [this] {
    if (stopping_) return;
    // Exit rather than stop in place: nothing of this replica may act after the lease is lost.
    fprintf(stderr, "%s: leader election lost\n", program_.c_str());
    _exit(1);
  };
  config.on_new_leader = [this](const std::string& id) {
    fprintf(stderr, "%s: the leader is %s\n", program_.c_str(), id.c_str());
  };
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  elector_ = std::make_unique<LeaderElector>(client_, config);
  election_ = std::thread([this] { elector_->Run(); });
  return absl::OkStatus();
}

void ElectedRunner::Stop() {
  if (stopping_.exchange(true)) return;
  if (leading_) stop_();
  if (elector_ != nullptr) {
    elector_->Stop();  // releases the lease so a standby takes over at once
    election_.join();
  }
}

}  // namespace capstan::client
