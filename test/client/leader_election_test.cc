// Leader election against a real capstan-apiserver, with short durations (lease 2 s, renew
// deadline 1.5 s, retry 0.2 s): one leader among candidates, hand-over on release, take-over on
// expiry, and a leader that cannot reach the apiserver stops leading within the renew deadline.
#include "lib/client/leader_election.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "proto/coordination_v1.pb.h"
#include "test/harness/apiserver_process.h"

namespace capstan::client {
namespace {

using capstan::coordination::v1::Lease;

// Debian's Abseil has deadlock detection on, which is slow.
const bool kNoDeadlockDetection = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

constexpr absl::Duration kLease = absl::Seconds(2);
constexpr absl::Duration kRenew = absl::Milliseconds(1500);
constexpr absl::Duration kRetry = absl::Milliseconds(200);

// A port nobody listens on right now, so that a restarted apiserver can come back on the same
// address and the candidates' channels reconnect to it.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Each candidate has its own connection, as separate processes would, that reconnects quickly.
std::unique_ptr<Client> NewClient(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // no connection shared between candidates
  return std::make_unique<Client>(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

class Candidate {
 public:
  Candidate(const std::string& address, const std::string& lease_name, const std::string& id,
            bool release_on_cancel = true)
      : client_(NewClient(address)) {
    LeaderElectionConfig config;
    config.lease_namespace = "kube-system";
    config.lease_name = lease_name;
    config.identity = id;
    config.lease_duration = kLease;
    config.renew_deadline = kRenew;
    config.retry_period = kRetry;
    config.release_on_cancel = release_on_cancel;
    config.on_started_leading = [this] {
      absl::MutexLock lock(&mu_);
      started_++;
      working_ = true;
    };
    config.on_stopped_leading = [this] {
      absl::MutexLock lock(&mu_);
      stopped_++;
      working_ = false;
      last_stopped_ = absl::Now();
    };
    config.on_new_leader = [this](const std::string& leader) {
      absl::MutexLock lock(&mu_);
      new_leaders_.push_back(leader);
    };
    EXPECT_TRUE(config.Validate().ok()) << config.Validate();
    elector_ = std::make_unique<LeaderElector>(client_.get(), config);
    thread_ = std::thread([this] { elector_->Run(); });
  }
  ~Candidate() { Stop(); }

  void Stop() {
    if (!thread_.joinable()) return;
    elector_->Stop();
    thread_.join();
  }

  LeaderElector& elector() { return *elector_; }
  const std::string& id() const { return elector_->config().identity; }
  int started() const {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  int stopped() const {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }
  bool working() const {
    absl::MutexLock lock(&mu_);
    return working_;
  }
  absl::Time last_stopped() const {
    absl::MutexLock lock(&mu_);
    return last_stopped_;
  }
  std::vector<std::string> new_leaders() const {
    absl::MutexLock lock(&mu_);
    return new_leaders_;
  }

 private:
  std::unique_ptr<Client> client_;
  std::unique_ptr<LeaderElector> elector_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  int started_ = 0;
  int stopped_ = 0;
  bool working_ = false;
  absl::Time last_stopped_ = absl::InfinitePast();
  std::vector<std::string> new_leaders_;
};

// The candidates that lead now.
std::vector<Candidate*> Leaders(const std::vector<Candidate*>& candidates) {
  std::vector<Candidate*> leaders;
  for (Candidate* c : candidates) {
    if (c->elector().IsLeader()) leaders.push_back(c);
  }
  return leaders;
}

// Waits until exactly one candidate leads; nullptr on timeout.
Candidate* AwaitOneLeader(const std::vector<Candidate*>& candidates, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::vector<Candidate*> leaders = Leaders(candidates);
    if (leaders.size() == 1) return leaders[0];
    absl::SleepFor(absl::Milliseconds(10));
  }
  return nullptr;
}

class LeaderElectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<testing::ApiServerProcess>(
        std::vector<std::string>{absl::StrCat("--listen=127.0.0.1:", FreePort())});
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
    address_ = server_->grpc_address();
    client_ = Client::Connect(address_);
  }

  Lease GetLease(const std::string& name) {
    absl::StatusOr<Lease> lease = client_->Get<Lease>("kube-system", name);
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.ok() ? *lease : Lease();
  }

  std::unique_ptr<testing::ApiServerProcess> server_;
  std::string address_;
  std::unique_ptr<Client> client_;
};

TEST_F(LeaderElectionTest, ExactlyOneOfTwoLeads) {
  Candidate a(address_, "one-leader", "a"), b(address_, "one-leader", "b");
  std::vector<Candidate*> all = {&a, &b};
  Candidate* leader = AwaitOneLeader(all, absl::Seconds(10));
  ASSERT_NE(leader, nullptr);
  Candidate* standby = leader == &a ? &b : &a;

  // For three lease durations, never two leaders, and always the same one.
  absl::Time until = absl::Now() + 3 * kLease;
  while (absl::Now() < until) {
    std::vector<Candidate*> leaders = Leaders(all);
    ASSERT_EQ(leaders.size(), 1u);
    ASSERT_EQ(leaders[0], leader);
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(leader->started(), 1);
  EXPECT_EQ(leader->stopped(), 0);
  EXPECT_TRUE(leader->working());
  EXPECT_EQ(standby->started(), 0);
  EXPECT_EQ(leader->elector().GetLeader(), leader->id());
  EXPECT_EQ(standby->elector().GetLeader(), leader->id());
  EXPECT_EQ(standby->new_leaders(), std::vector<std::string>{leader->id()});
  EXPECT_EQ(leader->new_leaders(), std::vector<std::string>{leader->id()});

  Lease lease = GetLease("one-leader");
  EXPECT_EQ(lease.spec().holder_identity(), leader->id());
  EXPECT_EQ(lease.spec().lease_duration_seconds(), 2);
  EXPECT_EQ(lease.spec().lease_transitions(), 0);
  EXPECT_GT(lease.spec().acquire_time().seconds(), 0);
  // Renewed every retry period.
  absl::Time renewed = absl::FromUnixSeconds(lease.spec().renew_time().seconds()) +
                       absl::Nanoseconds(lease.spec().renew_time().nanos());
  EXPECT_LT(absl::Now() - renewed, absl::Seconds(1));
}

TEST_F(LeaderElectionTest, ReleaseHandsOverAtOnce) {
  Candidate a(address_, "release", "a"), b(address_, "release", "b");
  Candidate* leader = AwaitOneLeader({&a, &b}, absl::Seconds(10));
  ASSERT_NE(leader, nullptr);
  Candidate* standby = leader == &a ? &b : &a;
  int32_t transitions = GetLease("release").spec().lease_transitions();

  absl::Time stop = absl::Now();
  leader->Stop();  // release_on_cancel
  EXPECT_EQ(leader->stopped(), 1);
  EXPECT_FALSE(leader->working());
  EXPECT_FALSE(leader->elector().IsLeader());

  ASSERT_EQ(AwaitOneLeader({standby}, absl::Seconds(5)), standby);
  absl::Duration handover = absl::Now() - stop;
  // Well under the lease duration a standby would otherwise wait for.
  EXPECT_LT(handover, absl::Seconds(1)) << handover;
  Lease lease = GetLease("release");
  EXPECT_EQ(lease.spec().holder_identity(), standby->id());
  EXPECT_EQ(lease.spec().lease_transitions(), transitions + 1);
  EXPECT_EQ(standby->started(), 1);
}

TEST_F(LeaderElectionTest, TakeOverAfterExpiryIncrementsTransitions) {
  auto a = std::make_unique<Candidate>(address_, "expiry", "a", /*release_on_cancel=*/false);
  ASSERT_EQ(AwaitOneLeader({a.get()}, absl::Seconds(10)), a.get());
  Candidate b(address_, "expiry", "b", /*release_on_cancel=*/false);
  absl::SleepFor(3 * kRetry);
  EXPECT_FALSE(b.elector().IsLeader());
  EXPECT_EQ(GetLease("expiry").spec().lease_transitions(), 0);

  absl::Time stop = absl::Now();
  a->Stop();  // no release: b must wait for the lease to expire
  EXPECT_EQ(GetLease("expiry").spec().holder_identity(), "a");
  ASSERT_EQ(AwaitOneLeader({&b}, absl::Seconds(10)), &b);
  absl::Duration takeover = absl::Now() - stop;
  EXPECT_GE(takeover, kLease - kRetry) << takeover;
  Lease lease = GetLease("expiry");
  EXPECT_EQ(lease.spec().holder_identity(), "b");
  EXPECT_EQ(lease.spec().lease_transitions(), 1);
  a.reset();

  // And back: a new candidate takes over from b once b stops.
  Candidate c(address_, "expiry", "c");
  b.Stop();
  ASSERT_EQ(AwaitOneLeader({&c}, absl::Seconds(10)), &c);
  EXPECT_EQ(GetLease("expiry").spec().lease_transitions(), 2);
}

TEST_F(LeaderElectionTest, LeaderThatLosesTheApiServerStopsWithinRenewDeadline) {
  Candidate a(address_, "unreachable", "a"), b(address_, "unreachable", "b");
  std::vector<Candidate*> all = {&a, &b};
  Candidate* leader = AwaitOneLeader(all, absl::Seconds(10));
  ASSERT_NE(leader, nullptr);
  absl::SleepFor(3 * kRetry);  // a few renewals

  absl::Time kill = absl::Now();
  server_->Kill();
  // Leadership ends within renew_deadline of the last successful renewal, which began before
  // the kill; allow a little for scheduling.
  absl::Time deadline = kill + kRenew + absl::Milliseconds(300);
  while (leader->stopped() == 0 && absl::Now() < deadline + absl::Seconds(2)) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(leader->stopped(), 1) << "on_stopped_leading was not called";
  EXPECT_LE(leader->last_stopped(), deadline) << (leader->last_stopped() - kill);
  EXPECT_FALSE(leader->working());
  EXPECT_TRUE(Leaders(all).empty());

  // Nobody leads while the apiserver is away.
  absl::SleepFor(kLease);
  EXPECT_TRUE(Leaders(all).empty());

  ASSERT_TRUE(server_->Start().ok());
  ASSERT_EQ(server_->grpc_address(), address_);
  Candidate* next = AwaitOneLeader(all, absl::Seconds(20));
  ASSERT_NE(next, nullptr);
  absl::Time until = absl::Now() + kLease;
  while (absl::Now() < until) {
    ASSERT_LE(Leaders(all).size(), 1u);
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(Leaders(all).size(), 1u);
}

TEST_F(LeaderElectionTest, IsLeaderIsSafeFromWorkerThreads) {
  Candidate a(address_, "threads", "a"), b(address_, "threads", "b");
  std::atomic<bool> done{false};
  std::atomic<int> both{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) {
    workers.emplace_back([&] {
      while (!done) {
        if (a.elector().IsLeader() && b.elector().IsLeader()) both++;
        (void)a.elector().GetLeader();
      }
    });
  }
  ASSERT_NE(AwaitOneLeader({&a, &b}, absl::Seconds(10)), nullptr);
  absl::SleepFor(absl::Seconds(1));
  done = true;
  for (auto& t : workers) t.join();
  EXPECT_EQ(both, 0);
}

}  // namespace
}  // namespace capstan::client
