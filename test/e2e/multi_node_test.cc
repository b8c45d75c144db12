// End to end across two hosts: apiserver, controller-manager and scheduler in the root network
// namespace, and two node agents each in its own network namespace with its own address (a
// NetnsHost), running real containers through containerd.
//
// One test walks the life of a Deployment: 3 replicas Running across both nodes, logs readable,
// scaled to 6, rolled to a new image, one node cut off (NotReady, tainted, its pods replaced on
// the other node), the link restored (taint gone, the cut-off node's leftovers cleaned), and the
// Deployment deleted with no container or pod network left on either node.
#include <unistd.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/containerd_process.h"
#include "test/harness/eventually.h"
#include "test/harness/netns_host.h"

namespace capstan::testing {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;

constexpr char kImage1[] = "capstan.local/busybox:1";
constexpr char kImage2[] = "capstan.local/busybox:2";

Deployment MakeDeployment(int replicas) {
  Deployment d;
  d.mutable_metadata()->set_name("hello");
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "hello";
  auto* tmpl = d.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "hello";
  auto* spec = tmpl->mutable_spec();
  spec->set_termination_grace_period_seconds(2);
  // Evicted 2 s after its node becomes unreachable (Kubernetes' default is 300 s).
  auto* toleration = spec->add_tolerations();
  toleration->set_key("node.kubernetes.io/unreachable");
  toleration->set_operator_("Exists");
  toleration->set_effect("NoExecute");
  toleration->set_toleration_seconds(2);
  auto* c = spec->add_containers();
  c->set_name("web");
  c->set_image(kImage1);
  c->set_image_pull_policy("Never");
  c->add_command("sh");
  c->add_command("-c");
  c->add_command("echo started on $(hostname); echo ok > /tmp/index.html; exec httpd -f -p 8080 -h /tmp");
  c->add_ports()->set_container_port(8080);
  (*c->mutable_resources()->mutable_requests())["cpu"].set_string("100m");
  auto* probe = c->mutable_readiness_probe();
  probe->mutable_http_get()->set_path("/index.html");
  probe->mutable_http_get()->mutable_port()->set_int_val(8080);
  probe->set_period_seconds(1);
  return d;
}

class MultiNodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces and containers";
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    auto network = TestNetwork::Create();
    ASSERT_TRUE(network.ok()) << network.status();
    network_ = std::move(*network);

    // The apiserver listens on every address so that agents in their namespaces reach it through
    // the bridge.
    apiserver_ = std::make_unique<ApiServerProcess>(std::vector<std::string>{"--listen=0.0.0.0:0"});
    ASSERT_TRUE(apiserver_->Start().ok());
    const std::string port = apiserver_->grpc_address().substr(apiserver_->grpc_address().rfind(':') + 1);
    local_server_ = "127.0.0.1:" + port;
    bridge_server_ = network_->address() + ":" + port;
    client_ = client::Client::Connect(local_server_);

    controllers_ = std::make_unique<ServiceProcess>(
        "services/controller-manager/capstan-controller-manager",
        std::vector<std::string>{"--server=" + local_server_, "--metrics_listen=127.0.0.1:0",
                                 "--leader_elect=false", "--node_monitor_grace_period=4s"});
    scheduler_ = std::make_unique<ServiceProcess>(
        "services/scheduler/capstan-scheduler",
        std::vector<std::string>{"--server=" + local_server_, "--metrics_listen=127.0.0.1:0",
                                 "--leader_elect=false"});
    ASSERT_TRUE(controllers_->Start().ok());
    ASSERT_TRUE(scheduler_->Start().ok());

    // One containerd for both nodes, each node in its own containerd namespace: the runtime is
    // local to a node and does not cross the cut link anyway.
    ASSERT_TRUE(containerd_.Start().ok()) << containerd_.log();
    for (int i = 1; i <= 2; ++i) ASSERT_NO_FATAL_FAILURE(StartAgent(i));
    for (const std::string& name : {"node1", "node2"}) {
      ASSERT_TRUE(Eventually([&] { return NodeReady(name) == "True"; }, 60)) << name << AgentLogs();
    }
  }

  void TearDown() override {
    agents_.clear();
    hosts_.clear();  // kills the agents and what else runs in the namespaces
    network_.reset();
  }

  void StartAgent(int i) {
    const std::string name = absl::StrCat("node", i);
    auto host = network_->AddHost(name);
    ASSERT_TRUE(host.ok()) << host.status();
    const std::string dir = MakeTempDir("agent-" + name);
    Agent agent;
    agent.log = dir + "/agent.log";
    agent.address_file = dir + "/addresses";
    agent.pid = (*host)->Spawn(
        {RunfilePath("services/node-agent/capstan-node-agent"), "--server=" + bridge_server_,
         "--node_name=" + name, "--node_ip=" + (*host)->address(),
         "--listen=" + (*host)->address() + ":0", "--address_file=" + agent.address_file,
         "--containerd_address=" + containerd_.socket(), "--containerd_namespace=" + name,
         "--data_dir=" + dir, absl::StrCat("--pod_cidr=10.89.", i, ".0/24"), "--bridge=cbr0",
         "--node_lease_renew_interval=1s",
         "--image_archives=" + RunfilePath("test/e2e/busybox-1.tar") + "," +
             RunfilePath("test/e2e/busybox-2.tar")},
        agent.log);
    ASSERT_GT(agent.pid, 0);
    auto addresses = WaitForAddressFile(agent.address_file, agent.pid, agent.log);
    ASSERT_TRUE(addresses.ok()) << addresses.status();
    hosts_.push_back(std::move(*host));
    agents_.push_back(agent);
  }

  std::string NodeReady(const std::string& name) {
    auto node = client_->Get<Node>("", name);
    if (!node.ok()) return "";
    for (const auto& c : node->status().conditions()) {
      if (c.type() == "Ready") return c.status();
    }
    return "";
  }
  bool HasTaint(const std::string& node_name, const std::string& key) {
    auto node = client_->Get<Node>("", node_name);
    if (!node.ok()) return false;
    for (const auto& t : node->spec().taints()) {
      if (t.key() == key) return true;
    }
    return false;
  }
  // Read-modify-write of the Deployment, again on Conflict: its controller writes it too.
  bool UpdateDeployment(const std::function<void(Deployment*)>& change) {
    return Eventually([&] {
      auto d = client_->Get<Deployment>("default", "hello");
      if (!d.ok()) return false;
      change(&*d);
      return client_->Update(*d).ok();
    });
  }
  std::vector<Pod> Pods() {
    auto pods = client_->List<Pod>("default", {.label_selector = "app=hello"});
    return pods.ok() ? pods->items : std::vector<Pod>{};
  }
  // The pods not being deleted, when there are `n` of them and all are Running and Ready with
  // `image`; empty otherwise.
  std::vector<Pod> ReadyPods(int n, const std::string& image) {
    std::vector<Pod> live;
    for (const Pod& p : Pods()) {
      if (!p.metadata().has_deletion_timestamp()) live.push_back(p);
    }
    if (static_cast<int>(live.size()) != n) return {};
    for (const Pod& p : live) {
      if (p.status().phase() != "Running" || p.spec().containers(0).image() != image) return {};
      if (p.status().container_statuses_size() == 0 || !p.status().container_statuses(0).ready()) return {};
    }
    return live;
  }
  // The containers the node's agent has in containerd (ids, one per line).
  std::string Containers(const std::string& ns) {
    return Shell("ctr --address '" + containerd_.socket() + "' -n " + ns + " containers ls -q");
  }
  std::string AgentLogs() {
    std::string all = "\n--- pods\n";
    for (const Pod& p : Pods()) {
      all += p.metadata().name() + " node=" + p.spec().node_name() + " phase=" + p.status().phase() +
             " ip=" + p.status().pod_ip() + " " + (p.status().container_statuses_size() > 0 ? p.status().container_statuses(0).ShortDebugString() : std::string("no container status")) + "\n";
    }
    for (const Agent& a : agents_) {
      all += "\n--- " + a.log + "\n";
      FILE* f = fopen(a.log.c_str(), "r");
      if (f == nullptr) continue;
      char buf[4096];
      size_t n;
      while ((n = fread(buf, 1, sizeof(buf), f)) > 0) all.append(buf, n);
      fclose(f);
    }
    return all.size() > 20000 ? all.substr(all.size() - 20000) : all;
  }
  std::string Capstanctl(const std::vector<std::string>& args) {
    std::string cmd = RunfilePath("tools/capstanctl/capstanctl") + " --server=" + local_server_;
    for (const auto& a : args) cmd += " '" + a + "'";
    return Shell(cmd);
  }
  static std::string Shell(std::string cmd) {
    cmd += " 2>&1";
    std::string out;
    FILE* p = popen(cmd.c_str(), "r");
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }

  struct Agent {
    pid_t pid = -1;
    std::string log;
    std::string address_file;
  };
  std::unique_ptr<TestNetwork> network_;
  std::vector<std::unique_ptr<NetnsHost>> hosts_;
  std::vector<Agent> agents_;
  std::unique_ptr<ApiServerProcess> apiserver_;
  std::string local_server_, bridge_server_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<ServiceProcess> controllers_, scheduler_;
  ContainerdProcess containerd_;
};

TEST_F(MultiNodeTest, DeploymentLifecycleAcrossTwoNodesWithANodeFailure) {
  ASSERT_TRUE(client_->Create(MakeDeployment(3)).ok());
  std::vector<Pod> pods;
  ASSERT_TRUE(Eventually([&] { return !(pods = ReadyPods(3, kImage1)).empty(); }, 90)) << AgentLogs();
  std::set<std::string> nodes, ips;
  for (const Pod& p : pods) {
    nodes.insert(p.spec().node_name());
    ips.insert(p.status().pod_ip());
    EXPECT_TRUE(absl::StartsWith(p.status().pod_ip(), "10.89.")) << p.status().pod_ip();
  }
  EXPECT_EQ(nodes, (std::set<std::string>{"node1", "node2"}));
  EXPECT_EQ(ips.size(), 3u) << "every pod has its own address";

  // The container's output, through the agent of its node.
  const std::string logs = Capstanctl({"logs", pods[0].metadata().name()});
  EXPECT_NE(logs.find("started on " + pods[0].metadata().name()), std::string::npos) << logs;

  // Scale to 6.
  ASSERT_TRUE(UpdateDeployment([](Deployment* d) { d->mutable_spec()->set_replicas(6); }));
  ASSERT_TRUE(Eventually([&] { return !ReadyPods(6, kImage1).empty(); }, 90)) << AgentLogs();

  // Roll to the second image.
  ASSERT_TRUE(UpdateDeployment([](Deployment* d) {
    d->mutable_spec()->mutable_template_()->mutable_spec()->mutable_containers(0)->set_image(kImage2);
  }));
  ASSERT_TRUE(Eventually([&] { return !(pods = ReadyPods(6, kImage2)).empty(); }, 120)) << AgentLogs();

  // Cut node2 off: it goes NotReady (Unknown), gets the unreachable taints, and its pods are
  // replaced on node1.
  ASSERT_TRUE(hosts_[1]->CutLink().ok());
  ASSERT_TRUE(Eventually([&] { return NodeReady("node2") == "Unknown"; }, 60));
  EXPECT_TRUE(HasTaint("node2", "node.kubernetes.io/unreachable"));
  ASSERT_TRUE(Eventually([&] {
    pods = ReadyPods(6, kImage2);
    if (pods.empty()) return false;
    for (const Pod& p : pods) {
      if (p.spec().node_name() != "node1") return false;
    }
    return true;
  }, 120)) << "pods were not replaced on node1";

  // Back: the taint goes, and node2's agent finishes the deletions it could not do while cut off.
  ASSERT_TRUE(hosts_[1]->RestoreLink().ok());
  ASSERT_TRUE(Eventually([&] { return NodeReady("node2") == "True"; }, 60)) << AgentLogs();
  ASSERT_TRUE(Eventually([&] { return !HasTaint("node2", "node.kubernetes.io/unreachable"); }, 60));
  ASSERT_TRUE(Eventually([&] { return Pods().size() == 6; }, 60)) << "terminating pods stayed";
  ASSERT_TRUE(Eventually([&] { return Containers("node2").empty(); }, 60)) << Containers("node2");

  // Delete the Deployment: nothing is left on either node.
  ASSERT_TRUE(client_->Delete<Deployment>("default", "hello").ok());
  ASSERT_TRUE(Eventually([&] { return Pods().empty(); }, 90));
  ASSERT_TRUE(Eventually([&] { return Containers("node1").empty() && Containers("node2").empty(); }, 60))
      << Containers("node1") << Containers("node2");
  for (const auto& host : hosts_) {
    auto netns = host->Exec({"/usr/sbin/ip", "netns", "list"});
    ASSERT_TRUE(netns.ok());
    EXPECT_EQ(netns->output.find("capstan-" + host->name() + "-"), std::string::npos) << netns->output;
  }
}

}  // namespace
}  // namespace capstan::testing
