// The node agent binary with --simulate_nodes against a real apiserver (and, for the Deployment
// case, a real controller-manager and scheduler): nodes register and heartbeat; pods bound to them
// run through the same pod-lifecycle code as on containerd, report status, restart per policy and
// are deleted gracefully.
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/client/client.h"
#include "lib/api/errors.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/eventually.h"

namespace capstan::testing {
namespace {

using capstan::core::v1::Node;
using capstan::core::v1::Pod;

Pod MakePod(const std::string& name, const std::string& node,
            std::vector<std::pair<std::string, std::string>> env = {}) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_spec()->set_node_name(node);
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("capstan.local/busybox:1");
  for (const auto& [k, v] : env) {
    auto* e = c->add_env();
    e->set_name(k);
    e->set_value(v);
  }
  return pod;
}

std::string ConditionOf(const Node& node, const std::string& type) {
  for (const auto& c : node.status().conditions()) {
    if (c.type() == type) return c.status();
  }
  return "";
}

class SimulatedNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    ASSERT_TRUE(apiserver_.Start().ok());
    client_ = client::Client::Connect(apiserver_.grpc_address());
    agent_ = std::make_unique<ServiceProcess>(
        "services/node-agent/capstan-node-agent",
        std::vector<std::string>{"--server=" + apiserver_.grpc_address(), "--simulate_nodes=2",
                                 "--node_name=sim", "--listen=127.0.0.1:0",
                                 "--node_lease_renew_interval=1s", "--data_dir=" + MakeTempDir("agent")});
    ASSERT_TRUE(agent_->Start().ok());
  }
  absl::StatusOr<Pod> GetPod(const std::string& name) { return client_->Get<Pod>("default", name); }

  ApiServerProcess apiserver_;
  std::unique_ptr<client::Client> client_;
  std::unique_ptr<ServiceProcess> agent_;
};

TEST_F(SimulatedNodesTest, NodesRegisterReadyAndRenewTheirLeases) {
  for (const std::string name : {"sim-0", "sim-1"}) {
    absl::StatusOr<Node> node = client_->Get<Node>("", name);
    ASSERT_TRUE(node.ok()) << node.status();
    EXPECT_EQ(ConditionOf(*node, "Ready"), "True");
    EXPECT_EQ(ConditionOf(*node, "MemoryPressure"), "False");
    EXPECT_EQ(node->metadata().labels().at("kubernetes.io/hostname"), name);
    EXPECT_FALSE(node->status().allocatable().at("cpu").string().empty());
    EXPECT_EQ(node->status().allocatable().at("pods").string(), "110");
    EXPECT_GT(node->status().daemon_endpoints().kubelet_endpoint().port(), 0);
    EXPECT_EQ(node->status().node_info().container_runtime_version(), "simulated://1");
  }
  using capstan::coordination::v1::Lease;
  absl::StatusOr<Lease> first = client_->Get<Lease>("kube-node-lease", "sim-0");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->spec().holder_identity(), "sim-0");
  EXPECT_EQ(first->metadata().owner_references(0).kind(), "Node");
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<Lease> later = client_->Get<Lease>("kube-node-lease", "sim-0");
    return later.ok() && later->spec().renew_time().seconds() > first->spec().renew_time().seconds();
  })) << "the lease is not renewed";
}

TEST_F(SimulatedNodesTest, BoundPodRunsWithAnAddressAndReadyConditions) {
  ASSERT_TRUE(client_->Create(MakePod("web", "sim-1")).ok());
  ASSERT_TRUE(Eventually([&] {
    auto pod = GetPod("web");
    return pod.ok() && pod->status().phase() == "Running";
  }));
  Pod pod = *GetPod("web");
  EXPECT_EQ(pod.status().pod_ip().rfind("10.64.1.", 0), 0u) << pod.status().pod_ip();
  EXPECT_EQ(pod.status().host_ip(), "127.0.0.1");
  ASSERT_EQ(pod.status().container_statuses_size(), 1);
  EXPECT_TRUE(pod.status().container_statuses(0).state().has_running());
  EXPECT_TRUE(pod.status().container_statuses(0).ready());
  std::map<std::string, std::string> conditions;
  for (const auto& c : pod.status().conditions()) conditions[c.type()] = c.status();
  EXPECT_EQ(conditions["Ready"], "True");
  EXPECT_EQ(conditions["ContainersReady"], "True");
  EXPECT_EQ(conditions["Initialized"], "True");
  EXPECT_TRUE(pod.status().has_start_time());
}

TEST_F(SimulatedNodesTest, CrashingContainerRestartsAndBacksOff) {
  ASSERT_TRUE(client_->Create(MakePod("crash", "sim-0",
                                      {{"CAPSTAN_SIMULATE_RUN_SECONDS", "0"},
                                       {"CAPSTAN_SIMULATE_EXIT_CODE", "7"}}))
                  .ok());
  ASSERT_TRUE(Eventually([&] {
    auto pod = GetPod("crash");
    if (!pod.ok() || pod->status().container_statuses_size() == 0) return false;
    const auto& cs = pod->status().container_statuses(0);
    return cs.restart_count() >= 1 && cs.state().waiting().reason() == "CrashLoopBackOff";
  }));
  const Pod crashed = *GetPod("crash");
  const auto& cs = crashed.status().container_statuses(0);
  EXPECT_EQ(cs.last_state().terminated().exit_code(), 7);
  EXPECT_EQ(cs.last_state().terminated().reason(), "Error");
  EXPECT_EQ(crashed.status().phase(), "Running");
}

TEST_F(SimulatedNodesTest, NeverRestartedPodSucceeds) {
  Pod pod = MakePod("job", "sim-0", {{"CAPSTAN_SIMULATE_RUN_SECONDS", "1"}});
  pod.mutable_spec()->set_restart_policy("Never");
  ASSERT_TRUE(client_->Create(pod).ok());
  ASSERT_TRUE(Eventually([&] {
    auto p = GetPod("job");
    return p.ok() && p->status().phase() == "Succeeded";
  }));
  EXPECT_EQ(GetPod("job")->status().container_statuses(0).state().terminated().reason(), "Completed");
}

TEST_F(SimulatedNodesTest, DeletionWaitsForTheGracePeriodThenCompletes) {
  Pod pod = MakePod("stubborn", "sim-0", {{"CAPSTAN_SIMULATE_IGNORE_SIGTERM", "1"}});
  pod.mutable_spec()->set_termination_grace_period_seconds(3);
  ASSERT_TRUE(client_->Create(pod).ok());
  ASSERT_TRUE(Eventually([&] {
    auto p = GetPod("stubborn");
    return p.ok() && p->status().phase() == "Running";
  }));
  ASSERT_TRUE(client_->Delete<Pod>("default", "stubborn").ok());
  // Terminating while the agent waits out the grace period, then gone.
  auto terminating = GetPod("stubborn");
  ASSERT_TRUE(terminating.ok());
  EXPECT_TRUE(terminating->metadata().has_deletion_timestamp());
  ASSERT_TRUE(Eventually([&] { return api::Reason(GetPod("stubborn").status()) == "NotFound"; }));
}

TEST_F(SimulatedNodesTest, DeploymentRunsOnSimulatedNodes) {
  ServiceProcess controllers("services/controller-manager/capstan-controller-manager",
                             {"--server=" + apiserver_.grpc_address(), "--metrics_listen=127.0.0.1:0",
                              "--leader_elect=false"});
  ServiceProcess scheduler("services/scheduler/capstan-scheduler",
                           {"--server=" + apiserver_.grpc_address(), "--metrics_listen=127.0.0.1:0",
                            "--leader_elect=false"});
  ASSERT_TRUE(controllers.Start().ok());
  ASSERT_TRUE(scheduler.Start().ok());
  capstan::apps::v1::Deployment d;
  d.mutable_metadata()->set_name("web");
  d.mutable_spec()->set_replicas(20);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "web";
  (*d.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "web";
  auto* c = d.mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("capstan.local/busybox:1");
  ASSERT_TRUE(client_->Create(d).ok());
  std::set<std::string> nodes;
  ASSERT_TRUE(Eventually([&] {
    auto pods = client_->List<Pod>("default", {.label_selector = "app=web"});
    if (!pods.ok() || pods->items.size() != 20) return false;
    nodes.clear();
    for (const Pod& p : pods->items) {
      if (p.status().phase() != "Running") return false;
      nodes.insert(p.spec().node_name());
    }
    return true;
  }, 60));
  EXPECT_EQ(nodes, (std::set<std::string>{"sim-0", "sim-1"}));
  auto deployment = client_->Get<capstan::apps::v1::Deployment>("default", "web");
  ASSERT_TRUE(Eventually([&] {
    deployment = client_->Get<capstan::apps::v1::Deployment>("default", "web");
    return deployment.ok() && deployment->status().available_replicas() == 20;
  }));
}

}  // namespace
}  // namespace capstan::testing
