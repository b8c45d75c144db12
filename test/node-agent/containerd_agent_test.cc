// The real capstan-node-agent binary with real containers: a capstan-apiserver, a private
// containerd and the agent in the root network namespace (its own bridge, pod CIDR and containerd
// namespace, so it clashes with nothing else on the machine). Pods are bound by setting
// spec.nodeName; no scheduler runs.
//
// Covered: container logs through `capstanctl logs` (-c, --previous, -f), exit codes under each
// restart policy, readiness and liveness probes, graceful deletion and what it leaves behind,
// image pull errors, a pull from a real registry, and an agent restart that adopts its running
// containers and removes those of pods deleted while it was down.
//
// Every wait polls the API (or containerd) with a generous bound against hanging; nothing asserts
// how long something took. Needs root (bridges, network namespaces, containers); skipped otherwise.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/containerd_process.h"
#include "test/harness/eventually.h"
#include "test/harness/registry_process.h"

namespace capstan::testing {
namespace {

using capstan::core::v1::ContainerStatus;
using capstan::core::v1::Pod;

constexpr char kImage[] = "capstan.local/busybox:1";
constexpr char kImageArchive[] = "services/node-agent/runtime/busybox-image.tar";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A pod bound to `node` whose one container "app" runs `sh -c script` from the local image.
Pod MakePod(const std::string& name, const std::string& node, const std::string& script,
            const std::string& restart_policy = "Always") {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_spec()->set_node_name(node);
  pod.mutable_spec()->set_restart_policy(restart_policy);
  // Containers that ignore SIGTERM (sh as PID 1 without a trap) must not hold a test up for 30 s.
  pod.mutable_spec()->set_termination_grace_period_seconds(1);
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image(kImage);
  c->set_image_pull_policy("Never");
  c->add_command("sh");
  c->add_command("-c");
  c->add_command(script);
  return pod;
}

// The first container's status, or an empty one.
ContainerStatus StatusOf(const Pod& pod) {
  return pod.status().container_statuses_size() > 0 ? pod.status().container_statuses(0) : ContainerStatus();
}

std::string ConditionOf(const Pod& pod, const std::string& type) {
  for (const auto& c : pod.status().conditions()) {
    if (c.type() == type) return c.status();
  }
  return "";
}

// What a command printed (stdout and stderr together) and how it exited.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// A child process whose stdout and stderr are read through a pipe; SIGKILLed on destruction.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      std::vector<char*> argv;
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      Wait();
    }
    if (fd_ >= 0) close(fd_);
  }

  // Reads until `done(output so far)` holds, the output ends, or `seconds` pass.
  const std::string& ReadUntil(const std::function<bool(const std::string&)>& done, int seconds = 30) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done(output_) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n <= 0) break;
      output_.append(buf, static_cast<size_t>(n));
    }
    return output_;
  }
  bool Exited() {
    int status;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      pid_ = -1;
    }
    return pid_ <= 0;
  }
  int Wait() {
    if (pid_ > 0) {
      int status;
      waitpid(pid_, &status, 0);
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      pid_ = -1;
    }
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  int exit_code_ = -1;
  std::string output_;
};

CommandResult RunCommandLine(const std::vector<std::string>& args) {
  Child child(args);
  CommandResult r;
  r.output = child.ReadUntil([](const std::string&) { return false; }, 60);
  r.exit_code = child.Wait();
  return r;
}

// Every version of every pod a watch on the default namespace saw, so that a test can ask whether
// a state was ever shown, however briefly (a poll could miss it).
class PodHistory {
 public:
  explicit PodHistory(client::Client* client) : stream_(client->Watch<Pod>("default", {})) {
    thread_ = std::thread([this] {
      client::WatchEvent<Pod> e;
      while (stream_->Next(&e)) {
        absl::MutexLock lock(&mu_);
        seen_[e.object.metadata().name()].push_back(e.object);
      }
    });
  }
  ~PodHistory() {
    stream_->Cancel();
    thread_.join();
  }
  bool Seen(const std::string& name, const std::function<bool(const Pod&)>& predicate) {
    absl::MutexLock lock(&mu_);
    for (const Pod& p : seen_[name]) {
      if (predicate(p)) return true;
    }
    return false;
  }
  // The distinct values of f over the pod's versions, in the order they first appeared after a change.
  std::vector<std::string> Sequence(const std::string& name, const std::function<std::string(const Pod&)>& f) {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> values;
    for (const Pod& p : seen_[name]) {
      std::string v = f(p);
      if (values.empty() || values.back() != v) values.push_back(v);
    }
    return values;
  }

 private:
  std::unique_ptr<client::WatchStream<Pod>> stream_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<Pod>> seen_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class ContainerdAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: bridges, network namespaces and containers";
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    // Names unique to this test process, so that runs in parallel never share a bridge, an
    // address range, network namespaces or cgroups.
    const int tag = getpid() % 10000;
    node_ = absl::StrCat("cat", tag);
    bridge_ = absl::StrCat("cbt", tag);
    pod_cidr_prefix_ = absl::StrCat("10.90.", getpid() % 256, ".");
    containerd_namespace_ = absl::StrCat("capstan-agent-test-", getpid());

    apiserver_ = std::make_unique<ApiServerProcess>();
    ASSERT_TRUE(apiserver_->Start().ok());
    client_ = client::Client::Connect(apiserver_->grpc_address());
    containerd_ = std::make_unique<ContainerdProcess>();
    ASSERT_TRUE(containerd_->Start().ok()) << containerd_->log();
    data_dir_ = MakeTempDir("agent-data-");
    agent_ = std::make_unique<ServiceProcess>(
        "services/node-agent/capstan-node-agent",
        std::vector<std::string>{
            "--server=" + apiserver_->grpc_address(), "--node_name=" + node_, "--node_ip=127.0.0.1",
            "--listen=127.0.0.1:0", "--containerd_address=" + containerd_->socket(),
            "--containerd_namespace=" + containerd_namespace_, "--data_dir=" + data_dir_,
            "--pod_cidr=" + pod_cidr_prefix_ + "0/24", "--bridge=" + bridge_,
            "--node_lease_renew_interval=1s", "--log_gc_period=2s",
            "--image_archives=" + RunfilePath(kImageArchive)});
    absl::Status started = agent_->Start();
    ASSERT_TRUE(started.ok()) << started << "\n" << agent_->log();
  }

  // Runs even when SetUp or the test failed: nothing may stay behind on the machine.
  void TearDown() override {
    if (agent_ != nullptr) {
      if (HasFailure()) std::cerr << "--- agent log\n" << AgentLogTail() << "\n";
      StopAgent();  // first, so that it makes nothing new while the rest goes
    }
    if (containerd_ != nullptr) containerd_->Stop();  // removes every task and the shims
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
      const std::string name = entry.path().filename().string();
      if (absl::StartsWith(name, NetnsPrefix())) Ip({"netns", "del", name});
    }
    if (!bridge_.empty()) Ip({"link", "del", bridge_});
    agent_.reset();
    containerd_.reset();
    if (!data_dir_.empty()) RemoveTree(data_dir_);
  }

  // SIGTERM, and SIGKILL if it has not exited after 15 s. A clean stop lets probes in flight
  // finish: an agent killed during an exec leaves containerd's shim blocked opening the exec's
  // output FIFO, which then holds up removing the container.
  void StopAgent() {
    if (!agent_->running()) return;
    const pid_t pid = agent_->pid();
    kill(pid, SIGTERM);
    Eventually([pid] {
      std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
      std::string pid_field, comm, state;
      stat >> pid_field >> comm >> state;
      return state == "Z";  // exited, not reaped yet
    }, 15);
    agent_->Kill();  // reaps it
  }

  static void Ip(const std::vector<std::string>& args) {
    std::vector<std::string> full = {std::filesystem::exists("/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip"};
    full.insert(full.end(), args.begin(), args.end());
    RunCommand(full).IgnoreError();
  }

  // The agent names pod network namespaces "capstan-<node>-<pod uid>" (services/node-agent/main.cc).
  std::string NetnsPrefix() const { return "capstan-" + node_ + "-"; }

  std::string AgentLogTail() const {
    std::string log = agent_->log();
    return log.size() > 8000 ? log.substr(log.size() - 8000) : log;
  }

  absl::StatusOr<Pod> GetPod(const std::string& name) { return client_->Get<Pod>("default", name); }

  // Creates the pod and returns it as created (with its uid); fails the test otherwise.
  Pod Create(const Pod& pod) {
    absl::StatusOr<Pod> created = client_->Create(pod);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : pod;
  }

  // Polls the pod until `condition` holds (up to `seconds`); the pod as last seen.
  ::testing::AssertionResult WaitForPod(const std::string& name, const std::function<bool(const Pod&)>& condition,
                                        int seconds = 60) {
    Pod last;
    bool ok = Eventually([&] {
      absl::StatusOr<Pod> pod = GetPod(name);
      if (!pod.ok()) return false;
      last = *pod;
      return condition(last);
    }, seconds);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "pod " << name << " last seen as " << last.status().ShortDebugString();
  }
  ::testing::AssertionResult WaitForPhase(const std::string& name, const std::string& phase, int seconds = 60) {
    return WaitForPod(name, [&](const Pod& p) { return p.status().phase() == phase; }, seconds);
  }
  ::testing::AssertionResult WaitGone(const std::string& name, int seconds = 60) {
    bool gone = Eventually([&] { return api::Reason(GetPod(name).status()) == "NotFound"; }, seconds);
    return gone ? ::testing::AssertionSuccess() : ::testing::AssertionFailure() << "pod " << name << " stays";
  }

  // The agent's containers in containerd (their ids, which start with the pod's uid).
  std::vector<std::string> Containers() {
    absl::StatusOr<std::string> ids =
        RunCommand({"/usr/bin/ctr", "--address", containerd_->socket(), "-n", containerd_namespace_,
                    "containers", "ls", "-q"});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? absl::StrSplit(*ids, '\n', absl::SkipWhitespace()) : std::vector<std::string>{};
  }
  bool HasContainerOf(const std::string& uid) {
    for (const std::string& id : Containers()) {
      if (absl::StartsWith(id, uid)) return true;
    }
    return false;
  }
  bool HasNetnsOf(const std::string& uid) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
      if (absl::StrContains(entry.path().filename().string(), uid)) return true;
    }
    return false;
  }

  // Kubernetes' log layout under the agent's --data_dir: logs/NS_NAME_UID/CONTAINER/RESTART.log.
  std::string LogFile(const Pod& pod, const std::string& container, int restart) const {
    return absl::StrCat(data_dir_, "/logs/default_", pod.metadata().name(), "_", pod.metadata().uid(), "/",
                        container, "/", restart, ".log");
  }

  std::vector<std::string> Capstanctl(const std::vector<std::string>& args) const {
    std::vector<std::string> full = {RunfilePath("tools/capstanctl/capstanctl"),
                                     "--server=" + apiserver_->grpc_address()};
    full.insert(full.end(), args.begin(), args.end());
    return full;
  }

  std::string node_, bridge_, pod_cidr_prefix_, containerd_namespace_, data_dir_;
  std::unique_ptr<ApiServerProcess> apiserver_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<ContainerdProcess> containerd_;
  std::unique_ptr<ServiceProcess> agent_;
};

// --- logs --------------------------------------------------------------------------------------------

TEST_F(ContainerdAgentTest, LogsShowWhatTheContainerPrinted) {
  Create(MakePod("hello", node_, "echo hello from $(hostname); exec sleep 3600"));
  ASSERT_TRUE(WaitForPhase("hello", "Running"));
  CommandResult logs;
  ASSERT_TRUE(Eventually([&] {
    logs = RunCommandLine(Capstanctl({"logs", "hello"}));
    return absl::StrContains(logs.output, "hello from hello");
  })) << logs.output;
  EXPECT_EQ(logs.exit_code, 0);
}

TEST_F(ContainerdAgentTest, LogsOfEachContainerOfATwoContainerPod) {
  Pod pod = MakePod("pair", node_, "echo from-a; exec sleep 3600");
  auto* b = pod.mutable_spec()->add_containers();
  *b = pod.spec().containers(0);
  b->set_name("b");
  b->set_command(2, "echo from-b; exec sleep 3600");
  pod.mutable_spec()->mutable_containers(0)->set_name("a");
  Create(pod);
  ASSERT_TRUE(WaitForPhase("pair", "Running"));

  CommandResult a, bl;
  ASSERT_TRUE(Eventually([&] {
    a = RunCommandLine(Capstanctl({"logs", "pair", "-c", "a"}));
    bl = RunCommandLine(Capstanctl({"logs", "pair", "-c", "b"}));
    return absl::StrContains(a.output, "from-a") && absl::StrContains(bl.output, "from-b");
  })) << a.output << bl.output;
  EXPECT_FALSE(absl::StrContains(a.output, "from-b")) << a.output;
  EXPECT_FALSE(absl::StrContains(bl.output, "from-a")) << bl.output;

  // Without -c the container is ambiguous, as in kubectl.
  CommandResult ambiguous = RunCommandLine(Capstanctl({"logs", "pair"}));
  EXPECT_NE(ambiguous.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(ambiguous.output, "a container name must be specified")) << ambiguous.output;
}

TEST_F(ContainerdAgentTest, LogsPreviousShowsThePreviousInstance) {
  // Each instance prints an id of its own, runs a little and fails; the first restart is at once,
  // the next one only after a 10 s back-off, so restartCount stays 1 for a good while.
  const Pod pod = Create(MakePod(
      "restarts", node_, "echo instance $(cat /proc/sys/kernel/random/uuid); sleep 3; exit 1"));
  ASSERT_TRUE(WaitForPod("restarts", [](const Pod& p) { return StatusOf(p).restart_count() == 1; }));
  // The current instance's id is in 1.log once it has printed it.
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(ReadFile(LogFile(pod, "app", 1)), "instance"); }));
  const std::string first = ReadFile(LogFile(pod, "app", 0));
  const std::string second = ReadFile(LogFile(pod, "app", 1));
  ASSERT_TRUE(absl::StrContains(first, "instance")) << first;
  ASSERT_NE(first, second);

  CommandResult previous = RunCommandLine(Capstanctl({"logs", "restarts", "--previous"}));
  CommandResult current = RunCommandLine(Capstanctl({"logs", "restarts"}));
  // Meaningful only if no further restart happened meanwhile.
  ASSERT_EQ(StatusOf(*GetPod("restarts")).restart_count(), 1);
  EXPECT_EQ(previous.output, first);
  EXPECT_EQ(current.output, second);
}

TEST_F(ContainerdAgentTest, LogsFollowStreamsLinesAsTheyAreWritten) {
  const Pod pod = Create(MakePod(
      "ticker", node_, "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"));
  ASSERT_TRUE(WaitForPhase("ticker", "Running"));
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(ReadFile(LogFile(pod, "app", 0)), "tick 0"); }));

  // What the log holds when -f starts: the lines after it can only arrive by streaming.
  const std::vector<std::string> before =
      absl::StrSplit(ReadFile(LogFile(pod, "app", 0)), '\n', absl::SkipEmpty());
  Child follow(Capstanctl({"logs", "-f", "ticker"}));
  const std::string later = absl::StrCat("tick ", before.size() + 2, "\n");
  const std::string& out = follow.ReadUntil([&](const std::string& o) { return absl::StrContains(o, later); });
  EXPECT_TRUE(absl::StrContains(out, "tick 0\n")) << out;  // what was there first
  EXPECT_TRUE(absl::StrContains(out, later)) << out;       // and what came after
  EXPECT_FALSE(follow.Exited()) << "-f must keep streaming while the container runs";
}

// --- exit codes and restart policies ---------------------------------------------------------------

TEST_F(ContainerdAgentTest, NeverAndAFailingExitIsFailed) {
  Create(MakePod("fail", node_, "echo failing; exit 3", "Never"));
  ASSERT_TRUE(WaitForPhase("fail", "Failed"));
  const ContainerStatus cs = StatusOf(*GetPod("fail"));
  EXPECT_EQ(cs.state().terminated().exit_code(), 3);
  EXPECT_EQ(cs.state().terminated().reason(), "Error");
  EXPECT_EQ(cs.restart_count(), 0);
}

TEST_F(ContainerdAgentTest, NeverAndASuccessfulExitIsSucceeded) {
  Create(MakePod("done", node_, "exit 0", "Never"));
  ASSERT_TRUE(WaitForPhase("done", "Succeeded"));
  const ContainerStatus cs = StatusOf(*GetPod("done"));
  EXPECT_EQ(cs.state().terminated().exit_code(), 0);
  EXPECT_EQ(cs.state().terminated().reason(), "Completed");
}

TEST_F(ContainerdAgentTest, OnFailureAndASuccessfulExitIsSucceededWithoutRestart) {
  Create(MakePod("job", node_, "sleep 0.5; exit 0", "OnFailure"));
  ASSERT_TRUE(WaitForPhase("job", "Succeeded"));
  const ContainerStatus cs = StatusOf(*GetPod("job"));
  EXPECT_EQ(cs.restart_count(), 0);
  EXPECT_EQ(cs.state().terminated().reason(), "Completed");
}

TEST_F(ContainerdAgentTest, OnFailureAndAFailingExitRestarts) {
  Create(MakePod("retry", node_, "exit 1", "OnFailure"));
  ASSERT_TRUE(WaitForPod("retry", [](const Pod& p) { return StatusOf(p).restart_count() >= 1; }));
  ASSERT_TRUE(WaitForPod("retry", [](const Pod& p) {
    return StatusOf(p).last_state().terminated().exit_code() == 1;
  }));
  const ContainerStatus cs = StatusOf(*GetPod("retry"));
  EXPECT_EQ(cs.last_state().terminated().reason(), "Error");
  EXPECT_NE(GetPod("retry")->status().phase(), "Succeeded");
}

TEST_F(ContainerdAgentTest, AlwaysRestartsEvenASuccessfulExitThenBacksOff) {
  Create(MakePod("loop", node_, "exit 0", "Always"));
  ASSERT_TRUE(WaitForPod("loop", [](const Pod& p) {
    return StatusOf(p).restart_count() >= 1 && StatusOf(p).state().waiting().reason() == "CrashLoopBackOff";
  }));
  const Pod pod = *GetPod("loop");
  EXPECT_EQ(StatusOf(pod).last_state().terminated().reason(), "Completed");
  EXPECT_EQ(pod.status().phase(), "Running");  // restarting, as Kubernetes reports it
}

// --- probes ----------------------------------------------------------------------------------------

TEST_F(ContainerdAgentTest, ExecReadinessProbeFlipsReady) {
  // Not ready, then ready for a while, then not ready again.
  Pod pod = MakePod("flip", node_, "sleep 3; touch /tmp/ready; sleep 5; rm /tmp/ready; exec sleep 3600");
  auto* probe = pod.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  probe->mutable_exec()->add_command("test");
  probe->mutable_exec()->add_command("-f");
  probe->mutable_exec()->add_command("/tmp/ready");
  probe->set_period_seconds(1);
  PodHistory history(client_.get());
  Create(pod);
  ASSERT_TRUE(WaitForPod("flip", [](const Pod& p) { return p.status().phase() == "Running"; }));
  auto ready = [](const Pod& p) { return ConditionOf(p, "Ready"); };
  ASSERT_TRUE(WaitForPod("flip", [&](const Pod& p) { return ready(p) == "True"; }));
  ASSERT_TRUE(WaitForPod("flip", [&](const Pod& p) { return ready(p) == "False"; }));
  // The watch saw every version: while running, Ready was False, then True, then False.
  std::vector<std::string> seq = history.Sequence("flip", [&](const Pod& p) {
    return p.status().phase() == "Running" ? ready(p) : std::string("-");
  });
  std::vector<std::string> running(std::find(seq.begin(), seq.end(), "False"), seq.end());
  EXPECT_EQ(running, (std::vector<std::string>{"False", "True", "False"})) << absl::StrJoin(seq, ",");
}

TEST_F(ContainerdAgentTest, HttpReadinessProbeOnThePodIpMakesItReady) {
  Pod pod = MakePod("web", node_, "echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp");
  auto* probe = pod.mutable_spec()->mutable_containers(0)->mutable_readiness_probe();
  probe->mutable_http_get()->set_path("/index.html");
  probe->mutable_http_get()->mutable_port()->set_int_val(8080);
  probe->set_period_seconds(1);
  Create(pod);
  ASSERT_TRUE(WaitForPod("web", [](const Pod& p) { return ConditionOf(p, "Ready") == "True"; }));
  const Pod ready = *GetPod("web");
  EXPECT_TRUE(absl::StartsWith(ready.status().pod_ip(), pod_cidr_prefix_)) << ready.status().pod_ip();
  EXPECT_TRUE(StatusOf(ready).ready());
  EXPECT_EQ(StatusOf(ready).restart_count(), 0);
}

TEST_F(ContainerdAgentTest, FailingLivenessProbeRestartsTheContainer) {
  Pod pod = MakePod("sick", node_, "exec sleep 3600");
  auto* probe = pod.mutable_spec()->mutable_containers(0)->mutable_liveness_probe();
  probe->mutable_exec()->add_command("test");
  probe->mutable_exec()->add_command("-f");
  probe->mutable_exec()->add_command("/tmp/alive");  // never there
  probe->set_period_seconds(1);
  probe->set_failure_threshold(2);
  Create(pod);
  ASSERT_TRUE(WaitForPod("sick", [](const Pod& p) { return StatusOf(p).restart_count() >= 1; }));
}

// --- graceful deletion -----------------------------------------------------------------------------

TEST_F(ContainerdAgentTest, DeletionSendsSigtermFirst) {
  Pod pod = MakePod("polite", node_, "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done");
  pod.mutable_spec()->set_termination_grace_period_seconds(30);
  pod = Create(pod);
  ASSERT_TRUE(WaitForPhase("polite", "Running"));
  ASSERT_TRUE(client_->Delete<Pod>("default", "polite").ok());
  ASSERT_TRUE(WaitGone("polite"));
  // The container's log outlives it; the handler ran, so it got SIGTERM (not only SIGKILL).
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(ReadFile(LogFile(pod, "app", 0)), "got TERM"); }, 10))
      << ReadFile(LogFile(pod, "app", 0));
  EXPECT_FALSE(HasContainerOf(pod.metadata().uid()));
  EXPECT_FALSE(HasNetnsOf(pod.metadata().uid()));
}

TEST_F(ContainerdAgentTest, ADeletedPodsLogsAreRemovedAfterAWhile) {
  Pod pod = Create(MakePod("short-lived", node_, "echo bye; exec sleep 3600"));
  ASSERT_TRUE(WaitForPhase("short-lived", "Running"));
  const std::string dir = std::filesystem::path(LogFile(pod, "app", 0)).parent_path().parent_path();
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(ReadFile(LogFile(pod, "app", 0)), "bye"); }));
  Pod other = Create(MakePod("staying", node_, "exec sleep 3600"));
  ASSERT_TRUE(WaitForPhase("staying", "Running"));
  const std::string other_dir =
      std::filesystem::path(LogFile(other, "app", 0)).parent_path().parent_path();

  ASSERT_TRUE(client_->Delete<Pod>("default", "short-lived").ok());
  ASSERT_TRUE(WaitGone("short-lived"));
  // --log_gc_period=2s: the directory stays one to two periods after the pod is gone, then goes.
  EXPECT_TRUE(Eventually([&] { return !std::filesystem::exists(dir); }, 20)) << dir;
  EXPECT_TRUE(std::filesystem::is_directory(other_dir)) << other_dir;
}

TEST_F(ContainerdAgentTest, DeletionKillsAContainerIgnoringSigtermAfterTheGracePeriod) {
  Pod pod = MakePod("stubborn", node_, "trap '' TERM; while true; do sleep 0.1; done");
  pod.mutable_spec()->set_termination_grace_period_seconds(2);
  pod = Create(pod);
  ASSERT_TRUE(WaitForPhase("stubborn", "Running"));
  ASSERT_TRUE(HasContainerOf(pod.metadata().uid()));
  ASSERT_TRUE(HasNetnsOf(pod.metadata().uid()));
  ASSERT_TRUE(client_->Delete<Pod>("default", "stubborn").ok());
  ASSERT_TRUE(WaitGone("stubborn"));
  EXPECT_FALSE(HasContainerOf(pod.metadata().uid())) << absl::StrJoin(Containers(), " ");
  EXPECT_FALSE(HasNetnsOf(pod.metadata().uid()));
}

// --- images ----------------------------------------------------------------------------------------

TEST_F(ContainerdAgentTest, MissingImageIsErrImagePullThenImagePullBackOff) {
  Pod pod = MakePod("missing", node_, "true");
  pod.mutable_spec()->mutable_containers(0)->set_image("127.0.0.1:1/missing:1");  // nothing listens
  pod.mutable_spec()->mutable_containers(0)->set_image_pull_policy("Always");
  PodHistory history(client_.get());
  Create(pod);
  auto reason_is = [](const std::string& reason) {
    return [reason](const Pod& p) { return StatusOf(p).state().waiting().reason() == reason; };
  };
  // ErrImagePull may show only briefly before the back-off: ask the watch, not a poll.
  ASSERT_TRUE(Eventually([&] { return history.Seen("missing", reason_is("ErrImagePull")); }));
  ASSERT_TRUE(Eventually([&] { return history.Seen("missing", reason_is("ImagePullBackOff")); }));
  const Pod now = *GetPod("missing");
  EXPECT_EQ(now.status().phase(), "Pending");
  EXPECT_FALSE(HasContainerOf(now.metadata().uid()));
}

TEST_F(ContainerdAgentTest, NeverPullPolicyWithAnAbsentImageIsErrImageNeverPull) {
  Pod pod = MakePod("never", node_, "true");
  pod.mutable_spec()->mutable_containers(0)->set_image("capstan.local/absent:1");
  Create(pod);
  ASSERT_TRUE(WaitForPod("never", [](const Pod& p) {
    return StatusOf(p).state().waiting().reason() == "ErrImageNeverPull";
  }));
  EXPECT_EQ(GetPod("never")->status().phase(), "Pending");
}

TEST_F(ContainerdAgentTest, PullsFromALocalRegistry) {
  RegistryProcess registry;
  ASSERT_TRUE(registry.Start().ok());
  absl::Status pushed = registry.PushOciArchive(RunfilePath(kImageArchive), "busybox:1");
  ASSERT_TRUE(pushed.ok()) << pushed;
  Pod pod = MakePod("pulled", node_, "echo pulled; exec sleep 3600");
  pod.mutable_spec()->mutable_containers(0)->set_image(registry.address() + "/busybox:1");
  pod.mutable_spec()->mutable_containers(0)->set_image_pull_policy("IfNotPresent");  // not there yet
  Create(pod);
  ASSERT_TRUE(WaitForPhase("pulled", "Running"));
  EXPECT_TRUE(absl::StartsWith(StatusOf(*GetPod("pulled")).image_id(), "sha256:"));
}

// --- agent restart ---------------------------------------------------------------------------------

TEST_F(ContainerdAgentTest, RestartedAgentAdoptsRunningPodsAndRemovesDeletedOnes) {
  const Pod a = Create(MakePod("keep", node_, "exec sleep 3600"));
  const Pod b = Create(MakePod("drop", node_, "exec sleep 3600"));
  ASSERT_TRUE(WaitForPhase("keep", "Running"));
  ASSERT_TRUE(WaitForPhase("drop", "Running"));
  const ContainerStatus before = StatusOf(*GetPod("keep"));
  ASSERT_FALSE(before.container_id().empty());

  agent_->Kill();  // SIGKILL: the containers keep running
  // With grace 0 the pod leaves the API at once; nothing on the node knows yet.
  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(client_->Delete<Pod>("default", "drop", now).ok());
  ASSERT_EQ(api::Reason(GetPod("drop").status()), "NotFound");
  ASSERT_TRUE(HasContainerOf(b.metadata().uid()));
  ASSERT_TRUE(HasNetnsOf(b.metadata().uid()));

  absl::Status restarted = agent_->Start();  // same flags, same data dir
  ASSERT_TRUE(restarted.ok()) << restarted << "\n" << agent_->log();
  ASSERT_TRUE(Eventually([&] { return !HasContainerOf(b.metadata().uid()); }, 60))
      << absl::StrJoin(Containers(), " ");
  ASSERT_TRUE(Eventually([&] { return !HasNetnsOf(b.metadata().uid()); }, 60));

  // The running pod was adopted, not restarted: same container, same count, still Running.
  const Pod after = *GetPod("keep");
  EXPECT_EQ(after.status().phase(), "Running");
  EXPECT_EQ(StatusOf(after).container_id(), before.container_id());
  EXPECT_EQ(StatusOf(after).restart_count(), before.restart_count());
  EXPECT_TRUE(StatusOf(after).state().has_running());
  const std::string id = before.container_id().substr(before.container_id().find("://") + 3);
  std::vector<std::string> containers = Containers();
  EXPECT_EQ(std::count(containers.begin(), containers.end(), id), 1) << absl::StrJoin(containers, " ");
  EXPECT_TRUE(HasNetnsOf(a.metadata().uid()));
}

}  // namespace
}  // namespace capstan::testing
