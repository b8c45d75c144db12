// Real namespaces and a bridge: needs root (skips otherwise), iproute2 and busybox.
#include "test/harness/netns_host.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace capstan::testing {
namespace {

// A TCP listener in the root namespace that answers every connection with "root\n".
class RootListener {
 public:
  explicit RootListener(const std::string& address) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 16) != 0) {
      ADD_FAILURE() << "bind/listen on " << address;
      return;
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p = {fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        (void)!write(conn, "root\n", 5);
        close(conn);
      }
    });
  }
  ~RootListener() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string IpPath() {
  return access("/usr/sbin/ip", X_OK) == 0 ? "/usr/sbin/ip" : "/sbin/ip";
}

// One connection attempt from inside `host` with a 1 s connect timeout: what the server said, or
// "" when it could not connect.
std::string Probe(NetnsHost& host, const std::string& address, int port) {
  absl::StatusOr<ExecResult> r =
      host.Exec({"busybox", "nc", "-w", "1", address, std::to_string(port)}, absl::Seconds(5));
  EXPECT_TRUE(r.ok()) << r.status();  // nc itself must end in time
  return r.ok() && r->exit_code == 0 ? r->output : "";
}

// Probes until it connects, for up to 5 s (a server starting, a link coming back).
std::string ProbeUntilConnected(NetnsHost& host, const std::string& address, int port) {
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  std::string out;
  while (out.empty() && absl::Now() < deadline) {
    out = Probe(host, address, port);
    if (out.empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  return out;
}

class NetnsHostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to make network namespaces";
    if (access("/usr/bin/busybox", X_OK) != 0) GTEST_SKIP() << "needs busybox (busybox-static)";
    absl::StatusOr<std::unique_ptr<TestNetwork>> network = TestNetwork::Create();
    ASSERT_TRUE(network.ok()) << network.status();
    network_ = std::move(*network);
  }

  std::unique_ptr<NetnsHost> AddHost(const std::string& name) {
    absl::StatusOr<std::unique_ptr<NetnsHost>> host = network_->AddHost(name);
    EXPECT_TRUE(host.ok()) << host.status();
    return host.ok() ? std::move(*host) : nullptr;
  }

  std::unique_ptr<TestNetwork> network_;
};

TEST_F(NetnsHostTest, HostsHaveTheirOwnAddresses) {
  auto node1 = AddHost("node1");
  auto node2 = AddHost("node2");
  ASSERT_NE(node1, nullptr);
  ASSERT_NE(node2, nullptr);
  EXPECT_TRUE(absl::StartsWith(network_->address(), "10.201."));
  EXPECT_NE(node1->address(), node2->address());
  EXPECT_NE(node1->name(), node2->name());
  EXPECT_EQ(access(node1->netns_path().c_str(), F_OK), 0);
  absl::StatusOr<ExecResult> addr = node1->Exec({"ip", "-4", "-o", "addr", "show", "dev", "eth0"});
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_TRUE(absl::StrContains(addr->output, "inet " + node1->address() + "/24")) << addr->output;
}

TEST_F(NetnsHostTest, CutLinkPartitionsOneHostUntilRestored) {
  auto node1 = AddHost("node1");
  auto node2 = AddHost("node2");
  ASSERT_NE(node1, nullptr);
  ASSERT_NE(node2, nullptr);
  RootListener listener(network_->address());
  ASSERT_NE(listener.port(), 0);

  EXPECT_EQ(ProbeUntilConnected(*node1, network_->address(), listener.port()), "root\n");
  EXPECT_EQ(ProbeUntilConnected(*node2, network_->address(), listener.port()), "root\n");

  ASSERT_TRUE(node1->CutLink().ok());
  absl::Time start = absl::Now();
  EXPECT_EQ(Probe(*node1, network_->address(), listener.port()), "");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // Only node1 is cut off.
  EXPECT_EQ(Probe(*node2, network_->address(), listener.port()), "root\n");

  ASSERT_TRUE(node1->RestoreLink().ok());
  EXPECT_EQ(ProbeUntilConnected(*node1, network_->address(), listener.port()), "root\n");
}

TEST_F(NetnsHostTest, HostsReachEachOtherButNotTheRootLoopback) {
  auto node1 = AddHost("node1");
  auto node2 = AddHost("node2");
  ASSERT_NE(node1, nullptr);
  ASSERT_NE(node2, nullptr);
  std::string log = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                                 "/node2-server.log");
  ASSERT_GT(node2->Spawn({"busybox", "nc", "-ll", "-p", "7000", "-e", "busybox", "echo", "node2"},
                         log),
            0);
  EXPECT_EQ(ProbeUntilConnected(*node1, node2->address(), 7000), "node2\n");

  // 127.0.0.1 inside a host is the host's own loopback: root-namespace services must listen on
  // the bridge address (or 0.0.0.0) to be reached.
  RootListener loopback("127.0.0.1");
  EXPECT_EQ(Probe(*node1, "127.0.0.1", loopback.port()), "");
}

TEST_F(NetnsHostTest, DestructorsRemoveProcessesNamespacesAndBridge) {
  auto node1 = AddHost("node1");
  ASSERT_NE(node1, nullptr);
  const std::string netns_path = node1->netns_path();
  const std::string log = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp",
                                       "/node1-sleep.log");
  // A process and a grandchild that the spawned process leaves behind.
  pid_t pid = node1->Spawn({"busybox", "sh", "-c", "busybox sleep 60 & exec busybox sleep 60"}, log);
  ASSERT_GT(pid, 0);
  absl::StatusOr<ExecResult> pids;
  for (int i = 0; i < 50; ++i) {  // until both sleeps run
    pids = RunCommand({IpPath(), "netns", "pids", node1->name()}, absl::Seconds(5));
    ASSERT_TRUE(pids.ok()) << pids.status();
    if (std::count(pids->output.begin(), pids->output.end(), '\n') == 2) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(std::count(pids->output.begin(), pids->output.end(), '\n'), 2) << pids->output;
  std::string bridge = network_->bridge();

  node1.reset();
  EXPECT_NE(access(netns_path.c_str(), F_OK), 0);
  EXPECT_NE(kill(pid, 0), 0);  // killed and reaped
  network_.reset();
  absl::StatusOr<ExecResult> link = RunCommand({IpPath(), "link", "show", "dev", bridge},
                                               absl::Seconds(5));
  ASSERT_TRUE(link.ok());
  EXPECT_NE(link->exit_code, 0) << link->output;
}

TEST_F(NetnsHostTest, TwoNetworksInOneProcessGetDifferentSubnets) {
  absl::StatusOr<std::unique_ptr<TestNetwork>> other = TestNetwork::Create();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_NE((*other)->address(), network_->address());
  EXPECT_NE((*other)->bridge(), network_->bridge());
}

TEST(RunCommandTest, TimesOut) {
  absl::Time start = absl::Now();
  absl::StatusOr<ExecResult> r =
      RunCommand({"/bin/sleep", "10"}, absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"},
                 absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->output, "out\nerr\n");
}

}  // namespace
}  // namespace capstan::testing
