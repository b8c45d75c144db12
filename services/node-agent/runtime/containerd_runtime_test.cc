// ContainerdRuntime against a real, private containerd (test/harness/containerd_process.h) with
// real containers from the busybox image scripts/make-image.sh makes. Needs root; skipped
// otherwise.
#include "services/node-agent/runtime/containerd_runtime.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/containerd_process.h"
#include "test/harness/registry_process.h"

namespace capstan::nodeagent {
namespace {

using capstan::testing::ContainerdProcess;
using capstan::testing::RunCommand;

// Per test process: cgroup paths are /<namespace>/<id>, shared by every containerd on the machine.
const std::string kNamespace = absl::StrCat("capstan-test-", getpid());
constexpr char kImage[] = "capstan.local/busybox:1";

absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
#define EXPECT_OK(expr)                  \
  do {                                   \
    absl::Status _s = ToStatus(expr);    \
    EXPECT_TRUE(_s.ok()) << _s;          \
  } while (0)
#define ASSERT_OK(expr)                  \
  do {                                   \
    absl::Status _s = ToStatus(expr);    \
    ASSERT_TRUE(_s.ok()) << _s;          \
  } while (0)

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Exits the exit handler reported, for tests to wait on.
class ExitRecorder {
 public:
  void Record(const std::string& id) {
    absl::MutexLock lock(&mu_);
    exited_.insert(id);
  }
  bool WaitFor(const std::string& id, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [this, &id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return exited_.count(id) > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
  }

 private:
  absl::Mutex mu_;
  std::set<std::string> exited_ ABSL_GUARDED_BY(mu_);
};

class ContainerdRuntimeTest : public ::testing::Test {
 protected:
  // One containerd and one imported image for the whole suite: each test uses its own ids.
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(capstan::testing::RequiresRootReason());
    if (!skip_reason_->empty()) return;
    containerd_ = new ContainerdProcess();
    setup_ = new absl::Status(containerd_->Start());
    if (!setup_->ok()) return;
    runtime_ = new ContainerdRuntime(containerd_->socket(), kNamespace);
    absl::StatusOr<std::vector<std::string>> names = runtime_->ImportImage(
        capstan::testing::RunfilePath("services/node-agent/runtime/busybox-image.tar"));
    if (!names.ok()) {
      *setup_ = names.status();
      return;
    }
    exits_ = new ExitRecorder();
    runtime_->SetExitHandler([](const std::string& id) { exits_->Record(id); });
    logs_ = new std::string(capstan::testing::MakeTempDir("container-logs-"));
  }

  static void TearDownTestSuite() {
    delete runtime_;
    delete containerd_;  // removes whatever a failed test left running
    delete exits_;
    if (logs_ != nullptr) capstan::testing::RemoveTree(*logs_);
    delete logs_;
    delete setup_;
    delete skip_reason_;
  }

  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_;
    ASSERT_TRUE(setup_->ok()) << *setup_ << "\n" << containerd_->log();
  }

  // A container of the test image running `sh -c script`, logging to a file of its own.
  static ContainerConfig Config(const std::string& id, const std::string& script) {
    ContainerConfig c;
    c.id = id;
    c.image = kImage;
    c.command = {"sh", "-c", script};
    c.hostname = "pod-" + id;
    c.log_path = absl::StrCat(*logs_, "/", id, ".log");
    c.labels = {{kLabelPodName, "pod-" + id}, {kLabelContainerName, "main"}};
    return c;
  }

  static absl::Status CreateAndStart(const ContainerConfig& c) {
    if (absl::Status s = runtime_->CreateContainer(c); !s.ok()) return s;
    return runtime_->StartContainer(c.id);
  }

  // Inspects the container until it has exited (up to timeout).
  static ContainerInfo WaitExited(const std::string& id, absl::Duration timeout = absl::Seconds(20)) {
    absl::Time deadline = absl::Now() + timeout;
    absl::StatusOr<ContainerInfo> info;
    do {
      info = runtime_->InspectContainer(id);
      if (info.ok() && info->state == ContainerState::kExited) return *info;
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << id << " did not exit: " << info.status();
    return info.ok() ? *info : ContainerInfo();
  }

  // The log once it contains `text` (the shim may still be copying when the exit is seen).
  static std::string WaitLog(const ContainerConfig& c, const std::string& text) {
    absl::Time deadline = absl::Now() + absl::Seconds(5);
    std::string log;
    do {
      log = ReadFile(c.log_path);
      if (absl::StrContains(log, text)) break;
      absl::SleepFor(absl::Milliseconds(20));
    } while (absl::Now() < deadline);
    return log;
  }

  static absl::StatusOr<std::string> Ctr(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"/usr/bin/ctr", "--address", containerd_->socket(), "-n",
                                     kNamespace};
    full.insert(full.end(), args.begin(), args.end());
    return RunCommand(full);
  }

  static std::string* skip_reason_;
  static absl::Status* setup_;
  static ContainerdProcess* containerd_;
  static ContainerdRuntime* runtime_;
  static ExitRecorder* exits_;
  static std::string* logs_;
};

std::string* ContainerdRuntimeTest::skip_reason_ = nullptr;
absl::Status* ContainerdRuntimeTest::setup_ = nullptr;
ContainerdProcess* ContainerdRuntimeTest::containerd_ = nullptr;
ContainerdRuntime* ContainerdRuntimeTest::runtime_ = nullptr;
ExitRecorder* ContainerdRuntimeTest::exits_ = nullptr;
std::string* ContainerdRuntimeTest::logs_ = nullptr;

TEST_F(ContainerdRuntimeTest, VersionHealthAndImage) {
  absl::StatusOr<std::string> version = runtime_->Version();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_TRUE(absl::StartsWith(*version, "containerd://1.")) << *version;
  EXPECT_OK(runtime_->Healthy());
  absl::StatusOr<std::string> id = runtime_->ImageId(kImage);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(absl::StartsWith(*id, "sha256:")) << *id;
  EXPECT_TRUE(absl::IsNotFound(runtime_->ImageId("capstan.local/missing:1").status()));
  // Importing again changes nothing.
  EXPECT_TRUE(runtime_->ImportImage(
      capstan::testing::RunfilePath("services/node-agent/runtime/busybox-image.tar")).ok());
  EXPECT_EQ(*runtime_->ImageId(kImage), *id);
}

TEST_F(ContainerdRuntimeTest, RunsAndLogsOutput) {
  // The pause before the last line: containerd 1.6's shim can drop stderr written just before
  // the exit when both streams go to one file (see README.md, "How it fails").
  ContainerConfig c = Config("logs", "echo hello from $(hostname); echo to-stderr >&2; sleep 0.2; "
                                     "echo $GREETING");
  c.env = {{"GREETING", "hi-env"}};
  absl::Time before = absl::Now();
  ASSERT_OK(CreateAndStart(c));
  ContainerInfo info = WaitExited(c.id);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_EQ(info.reason, "Completed");
  EXPECT_EQ(info.image, kImage);
  EXPECT_GE(info.started_at, before - absl::Seconds(1));
  EXPECT_GE(info.finished_at, info.started_at);
  EXPECT_NE(info.created_at, absl::InfinitePast());
  std::string log = WaitLog(c, "hi-env");
  EXPECT_TRUE(absl::StrContains(log, "hello from pod-logs")) << log;
  EXPECT_TRUE(absl::StrContains(log, "to-stderr")) << log;
  EXPECT_TRUE(absl::StrContains(log, "hi-env")) << log;
  EXPECT_OK(runtime_->RemoveContainer(c.id));
  // The log stays.
  EXPECT_TRUE(absl::StrContains(ReadFile(c.log_path), "hello"));
}

TEST_F(ContainerdRuntimeTest, ExitCodesAndReasons) {
  ContainerConfig fail = Config("exit3", "exit 3");
  ASSERT_OK(CreateAndStart(fail));
  ContainerInfo info = WaitExited(fail.id);
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.exit_code, 3);
  EXPECT_EQ(info.reason, "Error");

  ContainerConfig created = Config("never-started", "true");
  ASSERT_OK(runtime_->CreateContainer(created));
  EXPECT_EQ(runtime_->InspectContainer(created.id)->state, ContainerState::kCreated);
  EXPECT_TRUE(absl::IsAlreadyExists(runtime_->CreateContainer(created)));
  EXPECT_OK(runtime_->StopContainer(created.id, absl::Seconds(1)));  // not running: at once

  ContainerConfig missing_image = Config("no-image", "true");
  missing_image.image = "capstan.local/missing:1";
  EXPECT_TRUE(absl::IsNotFound(runtime_->CreateContainer(missing_image)));
  EXPECT_TRUE(absl::IsNotFound(runtime_->StartContainer("no-such-container")));
  EXPECT_TRUE(absl::IsNotFound(runtime_->InspectContainer("no-such-container").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(runtime_->CreateContainer(Config("bad/id", "true"))));

  EXPECT_OK(runtime_->RemoveContainer(fail.id));
  EXPECT_OK(runtime_->RemoveContainer(created.id));
}

TEST_F(ContainerdRuntimeTest, StopLetsATrappingProcessExitGracefully) {
  ContainerConfig c = Config("graceful", "trap 'echo got-term; exit 0' TERM; echo ready; "
                                         "while true; do sleep 0.1; done");
  ASSERT_OK(CreateAndStart(c));
  WaitLog(c, "ready");
  absl::Time start = absl::Now();
  ASSERT_OK(runtime_->StopContainer(c.id, absl::Seconds(20)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  ContainerInfo info = *runtime_->InspectContainer(c.id);
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(WaitLog(c, "got-term"), "got-term"));
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, StopKillsAProcessIgnoringTermAfterGrace) {
  // A shell as PID 1 without a trap ignores SIGTERM.
  ContainerConfig c = Config("stubborn", "echo ready; while true; do sleep 0.1; done");
  ASSERT_OK(CreateAndStart(c));
  WaitLog(c, "ready");
  absl::Time start = absl::Now();
  ASSERT_OK(runtime_->StopContainer(c.id, absl::Seconds(1)));
  absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Seconds(10));
  ContainerInfo info = *runtime_->InspectContainer(c.id);
  EXPECT_EQ(info.state, ContainerState::kExited);
  EXPECT_EQ(info.exit_code, 128 + 9);
  EXPECT_EQ(info.reason, "Error");
  EXPECT_OK(runtime_->StopContainer(c.id, absl::Seconds(1)));  // again: at once
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, ExitHandlerFires) {
  ContainerConfig c = Config("notify", "sleep 0.2");
  ASSERT_OK(CreateAndStart(c));
  EXPECT_TRUE(exits_->WaitFor(c.id, absl::Seconds(10)));
  EXPECT_EQ(runtime_->InspectContainer(c.id)->state, ContainerState::kExited);
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, ExecRunsInTheContainer) {
  ContainerConfig c = Config("exec", "echo secret > /tmp/file; exec sleep 1000");
  c.env = {{"PROBE_ENV", "from-config"}};
  ASSERT_OK(CreateAndStart(c));
  absl::StatusOr<ExecResult> result;
  // The file is written once the shell has run.
  for (int i = 0; i < 100; ++i) {
    result = runtime_->Exec(c.id, {"sh", "-c", "echo err >&2; cat /tmp/file; echo $PROBE_ENV; exit 7"},
                            absl::Seconds(10));
    if (!result.ok() || absl::StrContains(result->output, "secret")) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 7);
  EXPECT_TRUE(absl::StrContains(result->output, "secret")) << result->output;
  EXPECT_TRUE(absl::StrContains(result->output, "from-config")) << result->output;
  EXPECT_TRUE(absl::StrContains(result->output, "err")) << result->output;

  absl::StatusOr<ExecResult> ok = runtime_->Exec(c.id, {"true"}, absl::Seconds(10));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->exit_code, 0);

  absl::Time start = absl::Now();
  absl::StatusOr<ExecResult> slow = runtime_->Exec(c.id, {"sleep", "30"}, absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsDeadlineExceeded(slow.status())) << slow.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));

  // An exec's exit is not the container's.
  EXPECT_EQ(runtime_->InspectContainer(c.id)->state, ContainerState::kRunning);
  ASSERT_OK(runtime_->StopContainer(c.id, absl::Seconds(1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(runtime_->Exec(c.id, {"true"}, absl::Seconds(5)).status()));
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, AdoptedAfterRestartWithLabels) {
  ContainerConfig c = Config("adopt", "exec sleep 1000");
  c.labels[kLabelPodUid] = "uid-123";
  c.labels[kLabelRestartCount] = "2";
  ASSERT_OK(CreateAndStart(c));

  // A new runtime object, as after an agent restart, finds the container through containerd alone.
  ContainerdRuntime restarted(containerd_->socket(), kNamespace);
  absl::StatusOr<std::vector<ContainerInfo>> all = restarted.ListContainers();
  ASSERT_TRUE(all.ok()) << all.status();
  const ContainerInfo* found = nullptr;
  for (const ContainerInfo& info : *all) {
    if (info.id == c.id) found = &info;
  }
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->labels, c.labels);  // exactly the agent's labels: none of the runtime's own
  EXPECT_EQ(found->state, ContainerState::kRunning);
  EXPECT_EQ(found->image, kImage);
  EXPECT_NE(found->started_at, absl::InfinitePast());

  // Another namespace holds none of them.
  ContainerdRuntime other(containerd_->socket(), "capstan-other");
  EXPECT_TRUE(other.ListContainers()->empty());
  EXPECT_OK(restarted.RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, RemoveLeavesNothing) {
  ContainerConfig c = Config("remove-me", "exec sleep 1000");
  ASSERT_OK(CreateAndStart(c));
  ASSERT_TRUE(absl::StrContains(*Ctr({"snapshots", "ls"}), c.id));
  // Running: removing kills it first.
  ASSERT_OK(runtime_->RemoveContainer(c.id));
  EXPECT_TRUE(absl::IsNotFound(runtime_->InspectContainer(c.id).status()));
  EXPECT_FALSE(absl::StrContains(*Ctr({"tasks", "ls"}), c.id));
  EXPECT_FALSE(absl::StrContains(*Ctr({"containers", "ls"}), c.id));
  EXPECT_FALSE(absl::StrContains(*Ctr({"snapshots", "ls"}), c.id));
  EXPECT_OK(runtime_->RemoveContainer(c.id));  // gone already: OK
  // The image is untouched and a container of the same id can be made again.
  ASSERT_OK(CreateAndStart(Config(c.id, "true")));
  EXPECT_EQ(WaitExited(c.id).exit_code, 0);
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, LimitsLandInTheCgroup) {
  ContainerConfig c = Config("limits", "exec sleep 1000");
  c.memory_limit_bytes = 64 << 20;
  c.cpu_limit_millis = 500;
  ASSERT_OK(CreateAndStart(c));
  // cgroup v1 (this project's machines run the hybrid layout); v2 has memory.max instead.
  std::string memory = "/sys/fs/cgroup/memory" + runtime_->CgroupsPath(c.id);
  if (access(memory.c_str(), F_OK) == 0) {
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(memory + "/memory.limit_in_bytes")), "67108864");
    std::string cpu = "/sys/fs/cgroup/cpu" + runtime_->CgroupsPath(c.id);
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(cpu + "/cpu.cfs_quota_us")), "50000");
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(cpu + "/cpu.cfs_period_us")), "100000");
  } else {
    std::string v2 = "/sys/fs/cgroup" + runtime_->CgroupsPath(c.id);
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(v2 + "/memory.max")), "67108864");
    EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(v2 + "/cpu.max")), "50000 100000");
  }
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, OutOfMemoryIsReported) {
  // dd's 64 MiB buffer is touched as /dev/zero fills it: over a 16 MiB limit.
  ContainerConfig c = Config("oom", "dd if=/dev/zero of=/dev/null bs=64M count=1");
  c.memory_limit_bytes = 16 << 20;
  ASSERT_OK(CreateAndStart(c));
  // The agent inspects a container when the exit handler tells it to: the reason is set by then.
  ASSERT_TRUE(exits_->WaitFor(c.id, absl::Seconds(20)));
  ContainerInfo info = *runtime_->InspectContainer(c.id);
  EXPECT_EQ(info.exit_code, 128 + 9);
  EXPECT_EQ(info.reason, "OOMKilled");
  EXPECT_OK(runtime_->RemoveContainer(c.id));
}

TEST_F(ContainerdRuntimeTest, JoinsANetworkNamespaceByPath) {
  std::string netns = absl::StrCat("capstan-rt-test-", getpid());
  ASSERT_TRUE(RunCommand({"/usr/sbin/ip", "netns", "add", netns}).ok());
  absl::Cleanup remove_netns = [&netns] {
    RunCommand({"/usr/sbin/ip", "netns", "delete", netns}).IgnoreError();
  };
  std::string path = "/run/netns/" + netns;
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);

  ContainerConfig joined = Config("netns-joined", "readlink /proc/self/ns/net");
  joined.netns_path = path;
  ContainerConfig own = Config("netns-own", "readlink /proc/self/ns/net");
  ASSERT_OK(CreateAndStart(joined));
  ASSERT_OK(CreateAndStart(own));
  WaitExited(joined.id);
  WaitExited(own.id);
  std::string expected = absl::StrCat("net:[", st.st_ino, "]");
  EXPECT_TRUE(absl::StrContains(WaitLog(joined, expected), expected));
  std::string own_log = WaitLog(own, "net:[");
  EXPECT_TRUE(absl::StrContains(own_log, "net:[")) << own_log;
  EXPECT_FALSE(absl::StrContains(own_log, expected)) << own_log;  // a namespace of its own
  EXPECT_OK(runtime_->RemoveContainer(joined.id));
  EXPECT_OK(runtime_->RemoveContainer(own.id));
}

// --- pulling from a real registry --------------------------------------------------------------------

TEST_F(ContainerdRuntimeTest, PullsFromARegistry) {
  capstan::testing::RegistryProcess registry;
  ASSERT_OK(registry.Start());
  std::string ref = registry.address() + "/busybox:1";
  ASSERT_OK(registry.PushOciArchive(
      capstan::testing::RunfilePath("services/node-agent/runtime/busybox-image.tar"), "busybox:1"));

  EXPECT_TRUE(absl::IsNotFound(runtime_->ImageId(ref).status()));
  absl::Status pulled = runtime_->PullImage(ref);
  ASSERT_TRUE(pulled.ok()) << pulled;
  absl::StatusOr<std::string> id = runtime_->ImageId(ref);
  ASSERT_TRUE(id.ok()) << id.status();
  // skopeo may rewrite the manifest, never the config: the same image id as the imported one.
  EXPECT_EQ(*id, *runtime_->ImageId(kImage));
  EXPECT_OK(runtime_->PullImage(ref));  // again: nothing new to fetch

  ContainerConfig c = Config("pulled", "echo pulled-image-runs");
  c.image = ref;
  ASSERT_OK(CreateAndStart(c));
  EXPECT_EQ(WaitExited(c.id).exit_code, 0);
  EXPECT_TRUE(absl::StrContains(WaitLog(c, "pulled-image-runs"), "pulled-image-runs"));
  EXPECT_OK(runtime_->RemoveContainer(c.id));

  absl::Status missing = runtime_->PullImage(registry.address() + "/missing:1");
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  absl::Status missing_tag = runtime_->PullImage(registry.address() + "/busybox:2");
  EXPECT_TRUE(absl::IsNotFound(missing_tag)) << missing_tag;
  absl::Status unreachable = runtime_->PullImage(absl::StrCat("127.0.0.1:", capstan::testing::FreeLoopbackPort(), "/x:1"));
  EXPECT_TRUE(absl::IsUnavailable(unreachable)) << unreachable;
}

}  // namespace
}  // namespace capstan::nodeagent
