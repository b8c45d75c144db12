#include "services/controller-manager/controllers/nodelifecycle/node_health.h"

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace capstan::controllermanager::nodelifecycle {
namespace {

using capstan::coordination::v1::Lease;
using capstan::core::v1::Node;
using capstan::core::v1::NodeCondition;
using capstan::core::v1::Taint;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
constexpr int64_t kT0s = 1'700'000'000;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// A node created at kT0 whose agent posted Ready with status `ready` and a heartbeat at
// kT0 + heartbeat seconds; no Ready condition when ready is empty.
Node MakeNode(const std::string& ready, int heartbeat = 0) {
  Node node;
  node.mutable_metadata()->set_name("n1");
  node.mutable_metadata()->mutable_creation_timestamp()->set_seconds(kT0s);
  if (!ready.empty()) {
    NodeCondition* c = node.mutable_status()->add_conditions();
    c->set_type("Ready");
    c->set_status(ready);
    c->set_reason("KubeletReady");
    c->mutable_last_heartbeat_time()->set_seconds(kT0s + heartbeat);
    c->mutable_last_transition_time()->set_seconds(kT0s);
  }
  return node;
}

Lease MakeLease(int renew) {
  Lease lease;
  lease.mutable_metadata()->set_name("n1");
  lease.mutable_metadata()->set_namespace_(kNodeLeaseNamespace);
  lease.mutable_spec()->mutable_renew_time()->set_seconds(kT0s + renew);
  return lease;
}

const NodeCondition* Find(const google::protobuf::RepeatedPtrField<NodeCondition>& conditions,
                          const std::string& type) {
  for (const NodeCondition& c : conditions) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

TEST(CheckNodeHealthTest, StalenessTable) {
  struct Case {
    const char* name;
    Node node;
    std::optional<Lease> lease;
    int now;  // seconds after kT0
    bool stale;
    int stale_at;  // seconds after kT0
  };
  const Case cases[] = {
      {"heartbeat within the grace period", MakeNode("True", 0), std::nullopt, 49, false, 50},
      {"grace period used up", MakeNode("True", 0), std::nullopt, 50, true, 50},
      {"a lease renewal keeps it healthy", MakeNode("True", 0), MakeLease(40), 60, false, 90},
      {"an older lease does not shorten it", MakeNode("True", 30), MakeLease(0), 60, false, 80},
      {"a stale lease and a stale heartbeat", MakeNode("True", 10), MakeLease(20), 71, true, 70},
      {"never posted: the startup grace from creation", MakeNode(""), std::nullopt, 59, false, 60},
      {"never posted, past the startup grace", MakeNode(""), std::nullopt, 60, true, 60},
      {"never posted Ready but renews its lease", MakeNode(""), MakeLease(100), 150, false, 160},
  };
  HealthOptions options;  // 50 s, 60 s
  for (const Case& c : cases) {
    const Lease* lease = c.lease ? &*c.lease : nullptr;
    HealthCheck check = CheckNodeHealth(c.node, lease, kT0 + absl::Seconds(c.now), options);
    EXPECT_EQ(check.stale, c.stale) << c.name;
    EXPECT_EQ(check.stale_at, kT0 + absl::Seconds(c.stale_at)) << c.name;
    EXPECT_EQ(check.conditions_changed, c.stale) << c.name;
    if (!c.stale) {
      EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
          c.node.status(),
          [&] {
            capstan::core::v1::NodeStatus s;
            *s.mutable_conditions() = check.conditions;
            return s;
          }()))
          << c.name;
    }
  }
}

TEST(CheckNodeHealthTest, StaleNodeConditionsBecomeUnknownAsKubernetesWritesThem) {
  Node node = MakeNode("True", 0);
  *node.mutable_status()->add_conditions() = Parse<NodeCondition>(R"pb(
    type: "MemoryPressure"
    status: "False"
    reason: "KubeletHasSufficientMemory"
    last_heartbeat_time { seconds: 1700000000 }
    last_transition_time { seconds: 1699999000 }
  )pb");
  *node.mutable_status()->add_conditions() =
      Parse<NodeCondition>(R"pb(
        type: "NetworkUnavailable" status: "False" reason: "RouteCreated"
      )pb");
  const absl::Time now = kT0 + absl::Seconds(100);
  HealthCheck check = CheckNodeHealth(node, nullptr, now, HealthOptions{});
  ASSERT_TRUE(check.stale);
  ASSERT_TRUE(check.conditions_changed);

  const NodeCondition* ready = Find(check.conditions, "Ready");
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->status(), "Unknown");
  EXPECT_EQ(ready->reason(), "NodeStatusUnknown");
  EXPECT_EQ(ready->message(), "Kubelet stopped posting node status.");
  EXPECT_EQ(ready->last_heartbeat_time().seconds(), kT0s);  // the last one heard, not now
  EXPECT_EQ(ready->last_transition_time().seconds(), kT0s + 100);

  const NodeCondition* memory = Find(check.conditions, "MemoryPressure");
  ASSERT_NE(memory, nullptr);
  EXPECT_EQ(memory->status(), "Unknown");
  EXPECT_EQ(memory->reason(), "NodeStatusUnknown");
  // Never posted by the agent: added, with the node's creation as heartbeat.
  for (const char* type : {"DiskPressure", "PIDPressure"}) {
    const NodeCondition* c = Find(check.conditions, type);
    ASSERT_NE(c, nullptr) << type;
    EXPECT_EQ(c->status(), "Unknown") << type;
    EXPECT_EQ(c->reason(), "NodeStatusNeverUpdated") << type;
    EXPECT_EQ(c->message(), "Kubelet never posted node status.") << type;
    EXPECT_EQ(c->last_heartbeat_time().seconds(), kT0s) << type;
  }
  // The network's condition is not the agent's to report.
  const NodeCondition* network = Find(check.conditions, "NetworkUnavailable");
  ASSERT_NE(network, nullptr);
  EXPECT_EQ(network->status(), "False");
  EXPECT_EQ(check.conditions.size(), 5);

  // Checking the result again changes nothing (no rewrite while the node stays silent).
  Node marked = node;
  *marked.mutable_status()->mutable_conditions() = check.conditions;
  HealthCheck again = CheckNodeHealth(marked, nullptr, now + absl::Seconds(30), HealthOptions{});
  EXPECT_TRUE(again.stale);
  EXPECT_FALSE(again.conditions_changed);
}

TEST(CheckNodeHealthTest, NeverPostedNodeGetsReadyUnknownNeverUpdated) {
  HealthCheck check = CheckNodeHealth(MakeNode(""), nullptr, kT0 + absl::Seconds(61), {});
  ASSERT_TRUE(check.conditions_changed);
  const NodeCondition* ready = Find(check.conditions, "Ready");
  ASSERT_NE(ready, nullptr);
  EXPECT_EQ(ready->status(), "Unknown");
  EXPECT_EQ(ready->reason(), "NodeStatusNeverUpdated");
  EXPECT_EQ(ready->message(), "Kubelet never posted node status.");
}

TEST(LastHeartbeatTest, LaterOfLeaseAndReady) {
  EXPECT_EQ(LastHeartbeat(MakeNode("True", 5), nullptr), kT0 + absl::Seconds(5));
  Lease lease = MakeLease(7);
  lease.mutable_spec()->mutable_renew_time()->set_nanos(500'000'000);
  EXPECT_EQ(LastHeartbeat(MakeNode("True", 5), &lease), kT0 + absl::Milliseconds(7500));
  EXPECT_EQ(LastHeartbeat(MakeNode(""), nullptr), kT0);
}

// --- ReconcileTaints ---

Taint T(const std::string& key, const std::string& effect, int64_t added = 0,
        const std::string& value = "") {
  Taint t;
  t.set_key(key);
  t.set_value(value);
  t.set_effect(effect);
  if (added != 0) t.mutable_time_added()->set_seconds(added);
  return t;
}

google::protobuf::RepeatedPtrField<NodeCondition> Conditions(
    const std::vector<std::pair<std::string, std::string>>& type_status) {
  google::protobuf::RepeatedPtrField<NodeCondition> out;
  for (const auto& [type, status] : type_status) {
    NodeCondition* c = out.Add();
    c->set_type(type);
    c->set_status(status);
  }
  return out;
}

std::string Describe(const google::protobuf::RepeatedPtrField<Taint>& taints) {
  std::string out;
  for (const Taint& t : taints) {
    out += t.key() + (t.value().empty() ? "" : "=" + t.value()) + ":" + t.effect();
    if (t.has_time_added()) out += "@" + std::to_string(t.time_added().seconds() - kT0s);
    out += " ";
  }
  return out;
}

TEST(ReconcileTaintsTest, Table) {
  constexpr char kNotReady[] = "node.kubernetes.io/not-ready";
  constexpr char kUnreachable[] = "node.kubernetes.io/unreachable";
  const int64_t now = kT0s + 100;
  struct Case {
    const char* name;
    std::vector<Taint> taints;
    std::vector<std::pair<std::string, std::string>> conditions;
    bool unschedulable;
    std::string want;  // Describe() of the result; "@N": timeAdded kT0 + N
    bool changed;
  };
  const Case cases[] = {
      {"healthy node, nothing to do", {}, {{"Ready", "True"}}, false, "", false},
      {"unreachable: NoExecute with timeAdded, and NoSchedule",
       {},
       {{"Ready", "Unknown"}},
       false,
       "node.kubernetes.io/unreachable:NoExecute@100 node.kubernetes.io/unreachable:NoSchedule ",
       true},
      {"not ready: the not-ready pair",
       {},
       {{"Ready", "False"}},
       false,
       "node.kubernetes.io/not-ready:NoExecute@100 node.kubernetes.io/not-ready:NoSchedule ",
       true},
      {"still unreachable: timeAdded kept, nothing written",
       {T(kUnreachable, "NoExecute", kT0s + 3), T(kUnreachable, "NoSchedule")},
       {{"Ready", "Unknown"}},
       false,
       "node.kubernetes.io/unreachable:NoExecute@3 node.kubernetes.io/unreachable:NoSchedule ",
       false},
      {"unreachable -> not ready swaps the taints",
       {T(kUnreachable, "NoExecute", kT0s + 3), T(kUnreachable, "NoSchedule")},
       {{"Ready", "False"}},
       false,
       "node.kubernetes.io/not-ready:NoExecute@100 node.kubernetes.io/not-ready:NoSchedule ",
       true},
      {"recovered: ours removed, others kept in order",
       {T("dedicated", "NoSchedule", 0, "gpu"), T(kUnreachable, "NoExecute", kT0s + 3),
        T(kUnreachable, "NoSchedule"), T("example.com/maintenance", "NoExecute")},
       {{"Ready", "True"}},
       false,
       "dedicated=gpu:NoSchedule example.com/maintenance:NoExecute ",
       true},
      {"agent's registration taint goes once Ready",
       {T(kNotReady, "NoSchedule")},
       {{"Ready", "True"}},
       false,
       "",
       true},
      {"pressure conditions and unschedulable",
       {},
       {{"Ready", "True"},
        {"MemoryPressure", "True"},
        {"DiskPressure", "False"},
        {"PIDPressure", "True"},
        {"NetworkUnavailable", "True"}},
       true,
       "node.kubernetes.io/memory-pressure:NoSchedule node.kubernetes.io/network-unavailable:"
       "NoSchedule node.kubernetes.io/pid-pressure:NoSchedule "
       "node.kubernetes.io/unschedulable:NoSchedule ",
       true},
      {"a not-ready taint of another effect is not ours",
       {T(kNotReady, "PreferNoSchedule")},
       {{"Ready", "True"}},
       false,
       "node.kubernetes.io/not-ready:PreferNoSchedule ",
       false},
      {"no Ready condition yet: no NoExecute taint", {}, {}, false, "", false},
  };
  for (const Case& c : cases) {
    google::protobuf::RepeatedPtrField<Taint> taints(c.taints.begin(), c.taints.end());
    TaintUpdate update = ReconcileTaints(taints, Conditions(c.conditions), c.unschedulable,
                                         absl::FromUnixSeconds(now));
    EXPECT_EQ(Describe(update.taints), c.want) << c.name;
    EXPECT_EQ(update.changed, c.changed) << c.name;
  }
}

}  // namespace
}  // namespace capstan::controllermanager::nodelifecycle
