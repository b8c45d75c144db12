// The pod worker's state machine over the simulated runtime and a fake clock: every transition a
// pod's containers go through, and the status each one shows.
#include "services/node-agent/pod_worker.h"

#include <filesystem>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"
#include "services/node-agent/simulated_network.h"
#include "services/node-agent/simulated_runtime.h"

namespace capstan::nodeagent {
namespace {

using capstan::core::v1::ContainerStatus;
using capstan::core::v1::Pod;
using capstan::core::v1::PodStatus;

Pod MakePod(const std::string& restart_policy = "Always",
            std::vector<std::pair<std::string, std::string>> env = {}) {
  Pod pod;
  pod.mutable_metadata()->set_name("web");
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid("0b6f3c1e-1111-2222-3333-444455556666");
  pod.mutable_spec()->set_restart_policy(restart_policy);
  pod.mutable_spec()->set_node_name("node-1");
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("capstan.local/busybox:1");
  c->set_image_pull_policy("IfNotPresent");
  for (const auto& [k, v] : env) {
    auto* e = c->add_env();
    e->set_name(k);
    e->set_value(v);
  }
  return pod;
}

class PodWorkerTest : public ::testing::Test {
 protected:
  PodWorkerTest() { Make(absl::ZeroDuration()); }

  void Make(absl::Duration start_delay, std::set<std::string> missing = {},
            std::string log_root = ::testing::TempDir()) {
    worker_.reset();
    runtime_ = std::make_unique<SimulatedRuntime>(
        SimulatedRuntime::Options{start_delay, std::move(missing), &clock_});
    PodWorkerOptions options;
    options.node_ip = "192.168.1.10";
    options.log_root = std::move(log_root);
    options.clock = &clock_;
    worker_ = std::make_unique<PodWorker>(runtime_.get(), &network_, nullptr, options);
  }

  // Syncs, and feeds the status back into the pod as the API would.
  SyncResult Sync() {
    SyncResult r = worker_->SyncPod(pod_, &record_);
    *pod_.mutable_status() = r.status;
    return r;
  }
  const ContainerStatus& App() { return pod_.status().container_statuses(0); }
  std::string Condition(const std::string& type) {
    for (const auto& c : pod_.status().conditions()) {
      if (c.type() == type) return c.status();
    }
    return "";
  }
  // Lets the simulated container reach its planned exit (the runtime's timer runs on real time
  // polling of the fake clock).
  void WaitExited() {
    for (int i = 0; i < 2000; ++i) {
      absl::StatusOr<ContainerInfo> info = runtime_->InspectContainer(record_.containers["app"].id);
      if (info.ok() && info->state == ContainerState::kExited) return;
      absl::SleepFor(absl::Milliseconds(1));
    }
    FAIL() << "container did not exit";
  }

  client::FakeClock clock_;
  SimulatedNetwork network_{"10.64.0"};
  std::unique_ptr<SimulatedRuntime> runtime_;
  std::unique_ptr<PodWorker> worker_;
  Pod pod_ = MakePod();
  PodRecord record_;
};

TEST_F(PodWorkerTest, NewPodRunsWithAnAddressAndIsReady) {
  SyncResult r = Sync();
  EXPECT_EQ(pod_.status().phase(), "Running");
  EXPECT_EQ(pod_.status().pod_ip(), "10.64.0.2");
  EXPECT_EQ(pod_.status().host_ip(), "192.168.1.10");
  ASSERT_EQ(pod_.status().container_statuses_size(), 1);
  EXPECT_TRUE(App().state().has_running());
  EXPECT_TRUE(App().ready());
  EXPECT_EQ(App().restart_count(), 0);
  EXPECT_EQ(App().container_id(), "containerd://" + record_.containers["app"].id);
  EXPECT_EQ(Condition("Ready"), "True");
  EXPECT_EQ(Condition("ContainersReady"), "True");
  EXPECT_EQ(Condition("PodScheduled"), "True");
  EXPECT_EQ(r.requeue_after, absl::ZeroDuration());
  EXPECT_EQ(runtime_->PullCount("capstan.local/busybox:1"), 1);

  // A second sync changes nothing: no status write would follow.
  PodStatus before = pod_.status();
  clock_.Advance(absl::Seconds(5));
  Sync();
  EXPECT_FALSE(StatusChanged(before, pod_.status()));
}

TEST_F(PodWorkerTest, ContainerCreatingUntilTheRuntimeStartsIt) {
  Make(absl::Seconds(2));
  SyncResult r = Sync();
  EXPECT_EQ(pod_.status().phase(), "Pending");
  EXPECT_EQ(App().state().waiting().reason(), "ContainerCreating");
  EXPECT_EQ(Condition("Ready"), "False");
  EXPECT_GT(r.requeue_after, absl::ZeroDuration());
  clock_.Advance(absl::Seconds(2));
  Sync();
  EXPECT_EQ(pod_.status().phase(), "Running");
  EXPECT_TRUE(App().state().has_running());
}

TEST_F(PodWorkerTest, NeverRestartedPodSucceedsOrFails) {
  for (const auto& [code, phase] : std::vector<std::pair<std::string, std::string>>{{"0", "Succeeded"}, {"3", "Failed"}}) {
    pod_ = MakePod("Never", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}, {"CAPSTAN_SIMULATE_EXIT_CODE", code}});
    pod_.mutable_metadata()->set_uid("uid-" + code);
    record_ = PodRecord();
    Sync();
    clock_.Advance(absl::Seconds(1));
    WaitExited();
    Sync();
    EXPECT_EQ(pod_.status().phase(), phase) << "exit code " << code;
    EXPECT_EQ(App().state().terminated().exit_code(), std::stoi(code));
    EXPECT_EQ(App().state().terminated().reason(), code == "0" ? "Completed" : "Error");
    EXPECT_EQ(App().restart_count(), 0);
    EXPECT_EQ(Condition("Ready"), "False");
    EXPECT_TRUE(record_.terminal);
    // Terminal: the address is given back, nothing restarts.
    EXPECT_TRUE(network_.ListPods()->empty());
    clock_.Advance(absl::Minutes(10));
    Sync();
    EXPECT_EQ(pod_.status().phase(), phase);
  }
}

TEST_F(PodWorkerTest, OnFailureRestartsFailuresOnly) {
  pod_ = MakePod("OnFailure", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}, {"CAPSTAN_SIMULATE_EXIT_CODE", "2"}});
  Sync();
  clock_.Advance(absl::Seconds(1));
  WaitExited();
  Sync();
  EXPECT_EQ(App().restart_count(), 1);
  EXPECT_EQ(pod_.status().phase(), "Running");
  EXPECT_EQ(App().last_state().terminated().exit_code(), 2);

  pod_ = MakePod("OnFailure", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}});
  pod_.mutable_metadata()->set_uid("other");
  record_ = PodRecord();
  Sync();
  clock_.Advance(absl::Seconds(1));
  WaitExited();
  Sync();
  EXPECT_EQ(pod_.status().phase(), "Succeeded");
  EXPECT_EQ(App().restart_count(), 0);
}

// A container that has exited already when the sync that started it looks at it (`exit 1` at
// once) is not final under OnFailure: the pod stays Running and the next sync restarts it.
TEST_F(PodWorkerTest, OnFailureContainerExitingAtOnceIsRestarted) {
  pod_ = MakePod("OnFailure", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "0"}, {"CAPSTAN_SIMULATE_EXIT_CODE", "1"}});
  SyncResult first = Sync();
  EXPECT_EQ(pod_.status().phase(), "Running");
  EXPECT_EQ(App().last_state().terminated().exit_code(), 1);
  EXPECT_GT(first.requeue_after, absl::ZeroDuration());
  Sync();
  EXPECT_EQ(App().restart_count(), 1);
  EXPECT_NE(pod_.status().phase(), "Failed");
}

TEST_F(PodWorkerTest, CrashLoopBacksOffTenSecondsDoubling) {
  pod_ = MakePod("Always", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}, {"CAPSTAN_SIMULATE_EXIT_CODE", "1"}});
  Sync();
  clock_.Advance(absl::Seconds(1));
  WaitExited();
  // The first restart is immediate.
  Sync();
  EXPECT_EQ(App().restart_count(), 1);
  EXPECT_TRUE(App().state().has_running());
  EXPECT_EQ(App().last_state().terminated().exit_code(), 1);

  absl::Duration expected = absl::Seconds(10);
  for (int restart = 2; restart <= 4; ++restart) {
    clock_.Advance(absl::Seconds(1));
    WaitExited();
    SyncResult r = Sync();
    EXPECT_EQ(App().state().waiting().reason(), "CrashLoopBackOff") << restart;
    EXPECT_NE(App().state().waiting().message().find("back-off " + absl::FormatDuration(expected)),
              std::string::npos)
        << App().state().waiting().message();
    EXPECT_EQ(App().restart_count(), restart - 1);
    EXPECT_EQ(pod_.status().phase(), "Running");
    EXPECT_EQ(r.requeue_after, expected);
    clock_.Advance(expected - absl::Seconds(1));
    Sync();
    EXPECT_EQ(App().state().waiting().reason(), "CrashLoopBackOff") << "restarted too early";
    clock_.Advance(absl::Seconds(1));
    Sync();
    EXPECT_EQ(App().restart_count(), restart);
    EXPECT_TRUE(App().state().has_running());
    expected *= 2;
  }
}

TEST_F(PodWorkerTest, MissingImageIsErrImagePullThenImagePullBackOff) {
  Make(absl::ZeroDuration(), {"capstan.local/busybox:1"});
  SyncResult r = Sync();
  EXPECT_EQ(App().state().waiting().reason(), "ErrImagePull");
  EXPECT_NE(App().state().waiting().message().find("Failed to pull image \"capstan.local/busybox:1\""),
            std::string::npos);
  EXPECT_EQ(pod_.status().phase(), "Pending");
  EXPECT_EQ(r.requeue_after, absl::Seconds(10));
  clock_.Advance(absl::Seconds(5));
  Sync();
  EXPECT_EQ(App().state().waiting().reason(), "ImagePullBackOff");
  EXPECT_EQ(runtime_->PullCount("capstan.local/busybox:1"), 1);
  clock_.Advance(absl::Seconds(5));
  r = Sync();
  EXPECT_EQ(App().state().waiting().reason(), "ErrImagePull");
  EXPECT_EQ(runtime_->PullCount("capstan.local/busybox:1"), 2);
  EXPECT_EQ(r.requeue_after, absl::Seconds(20));
}

TEST_F(PodWorkerTest, PullPolicies) {
  pod_.mutable_spec()->mutable_containers(0)->set_image_pull_policy("Never");
  Sync();
  EXPECT_EQ(App().state().waiting().reason(), "ErrImageNeverPull");
  EXPECT_EQ(runtime_->PullCount("capstan.local/busybox:1"), 0);

  // Always pulls for every container it starts; IfNotPresent only once.
  for (const std::string policy : {"Always", "IfNotPresent"}) {
    Make(absl::ZeroDuration());
    pod_ = MakePod("Always", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}});
    pod_.mutable_spec()->mutable_containers(0)->set_image_pull_policy(policy);
    record_ = PodRecord();
    Sync();
    clock_.Advance(absl::Seconds(1));
    WaitExited();
    Sync();
    EXPECT_EQ(App().restart_count(), 1);
    EXPECT_EQ(runtime_->PullCount("capstan.local/busybox:1"), policy == "Always" ? 2 : 1) << policy;
  }
}

TEST_F(PodWorkerTest, KillPodStopsAndRemovesEverything) {
  Sync();
  const std::string id = record_.containers["app"].id;
  ASSERT_TRUE(worker_->KillPod(&record_, absl::Seconds(30)).ok());
  EXPECT_TRUE(absl::IsNotFound(runtime_->InspectContainer(id).status()));
  EXPECT_TRUE(runtime_->ListContainers()->empty());
  EXPECT_TRUE(network_.ListPods()->empty());
  // Idempotent.
  EXPECT_TRUE(worker_->KillPod(&record_, absl::Seconds(30)).ok());
}

TEST_F(PodWorkerTest, LogsOfPodsNoLongerLiveGoOnTheSecondPass) {
  const std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / "log-gc";
  std::filesystem::create_directories(root);
  Make(absl::ZeroDuration(), {}, root.string());
  Sync();
  const std::filesystem::path logs =
      std::filesystem::path(worker_->LogPath(record_, "app", 0)).parent_path().parent_path();
  ASSERT_TRUE(std::filesystem::is_directory(logs)) << logs;
  const std::filesystem::path dead = root / "default_gone_uid-gone";
  std::filesystem::create_directories(dead / "app");

  // The live pod's logs stay, pass after pass; the dead one's survive the pass that first finds
  // them (a deleted pod's logs can still be read for a while), then go.
  EXPECT_EQ(worker_->CollectPodLogs({record_.uid}), 0);
  EXPECT_TRUE(std::filesystem::is_directory(dead / "app"));
  EXPECT_EQ(worker_->CollectPodLogs({record_.uid}), 1);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::is_directory(logs));

  // A pod that comes back (or was only briefly unknown) between passes keeps its logs.
  ASSERT_TRUE(worker_->KillPod(&record_, absl::Seconds(30)).ok());
  EXPECT_EQ(worker_->CollectPodLogs({}), 0);
  EXPECT_EQ(worker_->CollectPodLogs({record_.uid}), 0);
  EXPECT_EQ(worker_->CollectPodLogs({}), 0);
  EXPECT_TRUE(std::filesystem::is_directory(logs));
  EXPECT_EQ(worker_->CollectPodLogs({}), 1);
  EXPECT_FALSE(std::filesystem::exists(logs));
}

TEST_F(PodWorkerTest, AdoptedContainersAreNotRestarted) {
  pod_ = MakePod("Always", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}});
  Sync();
  clock_.Advance(absl::Seconds(1));
  WaitExited();
  Sync();  // restart 1
  const std::string id = record_.containers["app"].id;
  PodStatus before = pod_.status();

  // A new agent (same runtime) rebuilds its records from the containers' labels.
  std::map<std::string, PodRecord> adopted = PodWorker::Adopt(*runtime_->ListContainers());
  ASSERT_EQ(adopted.count(pod_.metadata().uid()), 1u);
  record_ = adopted[pod_.metadata().uid()];
  EXPECT_EQ(record_.containers["app"].id, id);
  EXPECT_EQ(record_.containers["app"].restart_count, 1);
  Sync();
  EXPECT_EQ(record_.containers["app"].id, id) << "a healthy container was replaced";
  EXPECT_EQ(App().restart_count(), 1);
  EXPECT_EQ(App().last_state().terminated().exit_code(), 0);
  EXPECT_EQ(pod_.status().start_time().seconds(), before.start_time().seconds());
}

TEST_F(PodWorkerTest, ContainerWhoseTaskVanishedIsRestartedOrFails) {
  Sync();
  runtime_->LoseTask(record_.containers["app"].id);
  Sync();
  EXPECT_EQ(App().restart_count(), 1);
  EXPECT_TRUE(App().state().has_running());
  EXPECT_EQ(App().last_state().terminated().reason(), "ContainerStatusUnknown");

  pod_ = MakePod("Never");
  pod_.mutable_metadata()->set_uid("never");
  record_ = PodRecord();
  Sync();
  runtime_->LoseTask(record_.containers["app"].id);
  Sync();
  EXPECT_EQ(pod_.status().phase(), "Failed");
  EXPECT_EQ(App().state().terminated().reason(), "ContainerStatusUnknown");
  EXPECT_EQ(App().state().terminated().exit_code(), 137);
}

TEST_F(PodWorkerTest, AdoptedContainerThatNeverStartedIsStarted) {
  // An agent that stopped between create and start left this behind.
  ASSERT_TRUE(runtime_->PullImage("capstan.local/busybox:1").ok());
  ContainerConfig config;
  config.id = pod_.metadata().uid() + "-0-0";
  config.image = "capstan.local/busybox:1";
  config.labels = {{kLabelPodUid, pod_.metadata().uid()}, {kLabelPodNamespace, "default"},
                   {kLabelPodName, "web"}, {kLabelContainerName, "app"}, {kLabelRestartCount, "0"}};
  ASSERT_TRUE(runtime_->CreateContainer(config).ok());
  record_ = PodWorker::Adopt(*runtime_->ListContainers())[pod_.metadata().uid()];
  Sync();
  EXPECT_TRUE(App().state().has_running());
  EXPECT_EQ(App().restart_count(), 0);
  EXPECT_EQ(record_.containers["app"].id, config.id);
}

TEST(PodPhaseTest, Table) {
  auto running = [] { ContainerStatus s; s.mutable_state()->mutable_running(); return s; };
  auto waiting = [] { ContainerStatus s; s.mutable_state()->mutable_waiting()->set_reason("ContainerCreating"); return s; };
  auto exited = [](int code) { ContainerStatus s; s.mutable_state()->mutable_terminated()->set_exit_code(code); return s; };
  auto backoff = [](int code) {
    ContainerStatus s;
    s.mutable_state()->mutable_waiting()->set_reason("CrashLoopBackOff");
    s.mutable_last_state()->mutable_terminated()->set_exit_code(code);
    return s;
  };
  struct Case { std::string policy; std::vector<ContainerStatus> statuses; std::string phase; };
  std::vector<Case> cases = {
      {"Always", {waiting()}, "Pending"},
      {"Always", {running(), waiting()}, "Pending"},
      {"Always", {running(), running()}, "Running"},
      {"Always", {running(), exited(0)}, "Running"},
      {"Always", {backoff(1)}, "Running"},
      {"Never", {exited(0), exited(0)}, "Succeeded"},
      {"Never", {exited(0), exited(1)}, "Failed"},
      {"Never", {running(), exited(1)}, "Running"},
      {"OnFailure", {exited(0)}, "Succeeded"},
      {"OnFailure", {backoff(1)}, "Running"},
      {"OnFailure", {exited(1)}, "Failed"},
  };
  for (const Case& c : cases) {
    capstan::core::v1::PodSpec spec;
    spec.set_restart_policy(c.policy);
    EXPECT_EQ(PodPhase(spec, c.statuses), c.phase) << c.policy << " " << c.statuses.size();
  }
}

}  // namespace
}  // namespace capstan::nodeagent
