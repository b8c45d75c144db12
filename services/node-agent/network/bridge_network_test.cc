// Makes real namespaces, veth pairs and a bridge, so it needs root. Every run uses its own bridge
// name, namespace prefix and /24 (locked, so parallel runs on one machine do not share it), and
// removes what it made even when a test fails.
#include "services/node-agent/network/bridge_network.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace capstan::nodeagent {
namespace {

struct Output {
  int exit_code;
  std::string text;  // stdout and stderr
};

// The test may use a shell: every name in it is made by the test itself.
Output Sh(const std::string& command) {
  std::string full = absl::StrCat("PATH=/usr/sbin:/sbin:/usr/bin:/bin; ", command, " 2>&1");
  FILE* pipe = popen(full.c_str(), "r");
  Output out{-1, ""};
  if (pipe == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.text.append(buf, n);
  int status = pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

// A background process, killed by the test (or with the test process).
pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<std::string> storage = args;
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Connects to address:port with busybox nc from inside `netns` ("" = this namespace) and returns
// what the server said, retrying for up to ~3 s while the server starts.
std::string ReadFrom(const std::string& netns, const std::string& address, int port) {
  std::string prefix = netns.empty() ? "" : absl::StrCat("ip netns exec ", netns, " ");
  std::string text;
  for (int i = 0; i < 30; ++i) {
    Output out = Sh(absl::StrCat(prefix, "busybox nc -w 1 ", address, " ", port));
    if (out.exit_code == 0) return out.text;
    text = out.text;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return absl::StrCat("connect failed: ", text);
}

class BridgeNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces and a bridge";
    if (Sh("ip -V").exit_code != 0) GTEST_SKIP() << "iproute2 is not installed";
    static int counter = 0;
    base_ = absl::StrCat("cbt", getpid() % 100000, "x", counter++);
    // Flock one /24 of 10.202.0.0/16 for this run; the lock goes with the process.
    for (int i = 0; i < 250 && subnet_.empty(); ++i) {
      int third = (getpid() + i) % 250 + 1;
      std::string lock = absl::StrCat("/tmp/capstan-bridge-test-", third, ".lock");
      int fd = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) continue;
      std::string prefix = absl::StrCat("10.202.", third, ".");
      if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
          !absl::StrContains(Sh("ip -4 -o addr show").text, " " + prefix)) {
        lock_fd_ = fd;
        subnet_ = prefix;
      } else {
        close(fd);
      }
    }
    ASSERT_FALSE(subnet_.empty()) << "no free 10.202.X.0/24";
    state_dir_ = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp", "/", base_);
    options_.bridge = base_;  // at most 15 characters: "cbt" + 5 + "x" + a few
    options_.pod_cidr = subnet_ + "0/24";
    options_.netns_prefix = base_ + "a-";
    options_.state_dir = state_dir_;
  }

  void TearDown() override {
    for (pid_t pid : spawned_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (base_.empty()) return;
    // Everything this run made carries base_ in its name: namespaces, then the veths left on the
    // bridge (none, unless a namespace outlived its name), then the bridge.
    Sh(absl::StrCat("for n in $(ls /run/netns | grep '^", base_, "'); do ip netns del $n; done"));
    Sh(absl::StrCat("for l in $(ip -o link show master ", base_,
                    " | awk -F': ' '{print $2}' | cut -d@ -f1); do ip link del $l; done"));
    Sh(absl::StrCat("ip link del ", base_));
    EXPECT_EQ(Sh(absl::StrCat("ls /run/netns | grep '^", base_, "'")).text, "");
    std::error_code ec;
    std::filesystem::remove_all(state_dir_, ec);
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  std::unique_ptr<BridgeNetwork> NewNetwork(BridgeNetworkOptions options) {
    absl::StatusOr<std::unique_ptr<BridgeNetwork>> network = BridgeNetwork::Create(options);
    EXPECT_TRUE(network.ok()) << network.status();
    return network.ok() ? std::move(*network) : nullptr;
  }
  std::unique_ptr<BridgeNetwork> NewNetwork() { return NewNetwork(options_); }

  // A server in `netns` that answers every connection on `port` with `reply`.
  void Serve(const std::string& netns, int port, const std::string& reply) {
    spawned_.push_back(Spawn({"/usr/bin/env", "PATH=/usr/sbin:/sbin:/usr/bin:/bin", "ip", "netns",
                              "exec", netns, "busybox", "nc", "-ll", "-p", std::to_string(port),
                              "-e", "busybox", "echo", reply}));
  }

  std::string base_, subnet_, state_dir_;
  int lock_fd_ = -1;
  BridgeNetworkOptions options_;
  std::vector<pid_t> spawned_;
};

TEST_F(BridgeNetworkTest, SetUpMakesNamespaceWithAddressOnTheBridge) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  EXPECT_EQ(network->gateway(), subnet_ + "1");
  absl::StatusOr<PodNetworkStatus> pod = network->SetUp("pod-a");
  ASSERT_TRUE(pod.ok()) << pod.status();
  const std::string ns = options_.netns_prefix + "pod-a";
  EXPECT_EQ(pod->netns_path, "/run/netns/" + ns);
  EXPECT_EQ(access(pod->netns_path.c_str(), F_OK), 0);
  EXPECT_EQ(pod->ip, subnet_ + "2");  // the first address after the gateway

  Output addr = Sh(absl::StrCat("ip -n ", ns, " -4 -o addr show dev eth0"));
  EXPECT_EQ(addr.exit_code, 0) << addr.text;
  EXPECT_TRUE(absl::StrContains(addr.text, absl::StrCat("inet ", pod->ip, "/24"))) << addr.text;
  EXPECT_TRUE(absl::StrContains(Sh(absl::StrCat("ip -n ", ns, " route show default")).text,
                                "via " + network->gateway()));
  EXPECT_TRUE(absl::StrContains(Sh("ip -o link show dev " + BridgeNetwork::HostVethName(ns)).text,
                                "master " + options_.bridge));
  EXPECT_TRUE(absl::StrContains(Sh("ip -4 -o addr show dev " + options_.bridge).text,
                                "inet " + network->gateway() + "/24"));

  Output ping = Sh(absl::StrCat("ip netns exec ", ns, " busybox ping -c1 -W1 ", network->gateway()));
  EXPECT_EQ(ping.exit_code, 0) << ping.text;
}

TEST_F(BridgeNetworkTest, PodsReachEachOtherAndTheHostOverTcp) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  absl::StatusOr<PodNetworkStatus> b = network->SetUp("pod-b");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(a->ip, b->ip);
  Serve(options_.netns_prefix + "pod-a", 7777, "hello-from-a");
  // From the other pod, across the bridge.
  EXPECT_EQ(ReadFrom(options_.netns_prefix + "pod-b", a->ip, 7777), "hello-from-a\n");
  // From the node itself (the agent's namespace), through its bridge address.
  EXPECT_EQ(ReadFrom("", a->ip, 7777), "hello-from-a\n");
}

TEST_F(BridgeNetworkTest, SetUpIsIdempotentAlsoAfterRestart) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> first = network->SetUp("pod-a");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<PodNetworkStatus> again = network->SetUp("pod-a");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ip, first->ip);
  EXPECT_EQ(again->netns_path, first->netns_path);

  network.reset();  // the agent restarts
  auto restarted = NewNetwork();
  ASSERT_NE(restarted, nullptr);
  absl::StatusOr<PodNetworkStatus> after = restarted->SetUp("pod-a");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->ip, first->ip);
  absl::StatusOr<PodNetworkStatus> other = restarted->SetUp("pod-b");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE(other->ip, first->ip);
  // Still exactly one address on eth0.
  Output addr = Sh(absl::StrCat("ip -n ", options_.netns_prefix, "pod-a -4 -o addr show dev eth0"));
  EXPECT_EQ(std::count(addr.text.begin(), addr.text.end(), '\n'), 1) << addr.text;
}

TEST_F(BridgeNetworkTest, KeepsNamespaceAddressesWhenStateDirectoryIsLost) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  ASSERT_TRUE(a.ok()) << a.status();
  network.reset();
  std::filesystem::remove_all(state_dir_);

  auto restarted = NewNetwork();
  ASSERT_NE(restarted, nullptr);
  absl::StatusOr<PodNetworkStatus> b = restarted->SetUp("pod-b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(b->ip, a->ip);  // recovered from pod-a's eth0, so not handed out again
  absl::StatusOr<PodNetworkStatus> a2 = restarted->SetUp("pod-a");
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_EQ(a2->ip, a->ip);
}

TEST_F(BridgeNetworkTest, ReleasesAddressesOfNamespacesDeletedWhileDown) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  ASSERT_TRUE(a.ok()) << a.status();
  network.reset();
  // As after a reboot, when /run/netns is empty again.
  ASSERT_EQ(Sh(absl::StrCat("ip netns del ", options_.netns_prefix, "pod-a")).exit_code, 0);

  auto restarted = NewNetwork();
  ASSERT_NE(restarted, nullptr);
  absl::StatusOr<PodNetworkStatus> b = restarted->SetUp("pod-b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ip, a->ip);
}

TEST_F(BridgeNetworkTest, TearDownRemovesEverythingAndTheAddressIsReused) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  absl::StatusOr<PodNetworkStatus> b = network->SetUp("pod-b");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string ns = options_.netns_prefix + "pod-a";

  ASSERT_TRUE(network->TearDown("pod-a").ok());
  EXPECT_NE(access(a->netns_path.c_str(), F_OK), 0);
  EXPECT_NE(Sh("ip link show dev " + BridgeNetwork::HostVethName(ns)).exit_code, 0);
  EXPECT_EQ(*network->ListPods(), std::vector<std::string>{"pod-b"});
  // Nothing left to remove is fine, also for a pod that never existed.
  EXPECT_TRUE(network->TearDown("pod-a").ok());
  EXPECT_TRUE(network->TearDown("never-set-up").ok());

  absl::StatusOr<PodNetworkStatus> c = network->SetUp("pod-c");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ip, a->ip);
  // pod-b was not disturbed.
  Output ping = Sh(absl::StrCat("ip netns exec ", options_.netns_prefix, "pod-b busybox ping -c1 -W1 ",
                                c->ip));
  EXPECT_EQ(ping.exit_code, 0) << ping.text;
}

TEST_F(BridgeNetworkTest, ListPodsSeesOnlyItsOwnPrefix) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  BridgeNetworkOptions other_options = options_;
  other_options.netns_prefix = base_ + "b-";  // another agent on the same machine
  other_options.state_dir = state_dir_ + "-b";
  auto other = NewNetwork(other_options);
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(network->SetUp("y").ok());
  ASSERT_TRUE(network->SetUp("x").ok());
  ASSERT_TRUE(Sh(absl::StrCat("ip netns add ", other_options.netns_prefix, "z")).exit_code == 0);

  EXPECT_EQ(*network->ListPods(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(*other->ListPods(), std::vector<std::string>{"z"});
  std::filesystem::remove_all(other_options.state_dir);
}

TEST_F(BridgeNetworkTest, ConcurrentSetUpsGetDistinctAddresses) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  constexpr int kPods = 20;
  std::vector<absl::StatusOr<PodNetworkStatus>> results(kPods, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] { results[i] = network->SetUp(absl::StrCat("pod-", i)); });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> addresses;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    addresses.insert(results[i]->ip);
  }
  EXPECT_EQ(addresses.size(), kPods);
  EXPECT_EQ(network->ListPods()->size(), kPods);
  // The kernel agrees: 20 pod veths on the bridge.
  Output ports = Sh("ip -o link show master " + options_.bridge);
  EXPECT_EQ(std::count(ports.text.begin(), ports.text.end(), '\n'), kPods) << ports.text;
}

TEST_F(BridgeNetworkTest, FullCidrIsResourceExhausted) {
  options_.pod_cidr = subnet_ + "0/30";  // network, gateway, one pod, broadcast
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ip, subnet_ + "2");
  absl::StatusOr<PodNetworkStatus> b = network->SetUp("pod-b");
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted) << b.status();
  ASSERT_TRUE(network->TearDown("pod-a").ok());
  b = network->SetUp("pod-b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->ip, a->ip);
}

TEST_F(BridgeNetworkTest, MakesTheBridgeAgainIfItWasDeleted) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  absl::StatusOr<PodNetworkStatus> a = network->SetUp("pod-a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(Sh("ip link del " + options_.bridge).exit_code, 0);

  absl::StatusOr<PodNetworkStatus> b = network->SetUp("pod-b");
  ASSERT_TRUE(b.ok()) << b.status();
  a = network->SetUp("pod-a");  // attaches pod-a's veth to the new bridge
  ASSERT_TRUE(a.ok()) << a.status();
  Output ping = Sh(absl::StrCat("ip netns exec ", options_.netns_prefix, "pod-b busybox ping -c1 -W1 ",
                                a->ip));
  EXPECT_EQ(ping.exit_code, 0) << ping.text;
}

TEST_F(BridgeNetworkTest, RejectsBadInput) {
  auto network = NewNetwork();
  ASSERT_NE(network, nullptr);
  EXPECT_EQ(network->SetUp("../etc").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(network->SetUp("").status().code(), absl::StatusCode::kInvalidArgument);
  BridgeNetworkOptions bad = options_;
  bad.pod_cidr = "10.0.0.0/31";
  EXPECT_EQ(BridgeNetwork::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.pod_cidr = "not-a-cidr";
  EXPECT_EQ(BridgeNetwork::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = options_;
  bad.bridge = "a-name-longer-than-15";
  EXPECT_EQ(BridgeNetwork::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace capstan::nodeagent
