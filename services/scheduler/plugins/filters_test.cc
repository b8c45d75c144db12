// Each filter plugin over a table of (pod, node, cluster) -> expected status.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "services/scheduler/plugins/plugins.h"
#include "services/scheduler/plugins/testing.h"

namespace capstan::scheduler::plugins {
namespace {

using testing::MakeNode;
using testing::MakePod;
using testing::MakeSnapshot;
using testing::On;

// "" means the filter passes; otherwise the expected reasons joined with ", ".
std::string RunFilter(const FilterPlugin& plugin, const Pod& pod, const Snapshot& snapshot,
                const std::string& node) {
  const NodeInfo* info = snapshot.Get(node);
  EXPECT_NE(info, nullptr) << node;
  if (info == nullptr) return "no node";
  Status status = plugin.Filter(pod, *info, snapshot);
  return status.ok() ? "" : status.Message();
}

struct Case {
  std::string name;
  std::string pod_spec;  // text of PodSpec fields
  std::string node_extra;  // text of Node fields
  std::string want;
};

TEST(NodeUnschedulable, Table) {
  std::vector<Case> cases = {
      {"schedulable", "", "", ""},
      {"unschedulable", "", "spec { unschedulable: true }", kReasonUnschedulable},
      {"tolerated", "tolerations { key: 'node.kubernetes.io/unschedulable' operator: 'Exists' effect: 'NoSchedule' }",
       "spec { unschedulable: true }", ""},
      {"tolerate everything", "tolerations { operator: 'Exists' }", "spec { unschedulable: true }", ""},
      {"wrong effect", "tolerations { key: 'node.kubernetes.io/unschedulable' operator: 'Exists' effect: 'NoExecute' }",
       "spec { unschedulable: true }", kReasonUnschedulable},
  };
  NodeUnschedulable plugin;
  for (const Case& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {}, c.node_extra)});
    EXPECT_EQ(RunFilter(plugin, MakePod("p", "", "", {}, c.pod_spec), s, "n1"), c.want) << c.name;
  }
}

TEST(NodeName, Table) {
  std::vector<Case> cases = {
      {"unset", "", "", ""},
      {"same", "node_name: 'n1'", "", ""},
      {"other", "node_name: 'n2'", "", kReasonNodeName},
  };
  NodeName plugin;
  Snapshot s = MakeSnapshot({MakeNode("n1")});
  for (const Case& c : cases) {
    EXPECT_EQ(RunFilter(plugin, MakePod("p", "", "", {}, c.pod_spec), s, "n1"), c.want) << c.name;
  }
}

TEST(NodeResourcesFit, Table) {
  struct FitCase {
    std::string name;
    std::string cpu, memory;        // the pod's requests
    std::string node_pods;          // allocatable pods
    std::vector<Pod> existing;
    std::string want;
  };
  std::vector<FitCase> cases = {
      {"empty node", "1", "1Gi", "110", {}, ""},
      {"fits exactly", "1", "4Gi", "110", {On(MakePod("a", "3", "4Gi"), "n1")}, ""},
      {"one milli too many", "1001m", "1Gi", "110", {On(MakePod("a", "3", "1Gi"), "n1")},
       "Insufficient cpu"},
      {"memory", "100m", "5Gi", "110", {On(MakePod("a", "1", "4Gi"), "n1")}, "Insufficient memory"},
      {"both", "2", "8Gi", "110", {On(MakePod("a", "3", "1Gi"), "n1")},
       "Insufficient cpu, Insufficient memory"},
      {"pod count", "", "", "1", {On(MakePod("a", "", ""), "n1")}, "Too many pods"},
      {"pod count and cpu", "4", "", "1", {On(MakePod("a", "1", ""), "n1")},
       "Too many pods, Insufficient cpu"},
      {"no requests fit a full node", "", "", "110", {On(MakePod("a", "4", "8Gi"), "n1")}, ""},
      {"init container counts", "", "", "110", {On(MakePod("a", "3", ""), "n1")}, "Insufficient cpu"},
  };
  NodeResourcesFit plugin;
  for (FitCase& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", c.node_pods)}, c.existing);
    Pod pod = MakePod("p", c.cpu, c.memory);
    if (c.name == "init container counts") {
      auto* init = pod.mutable_spec()->add_init_containers();
      (*init->mutable_resources()->mutable_requests())["cpu"].set_string("2");
    }
    EXPECT_EQ(RunFilter(plugin, pod, s, "n1"), c.want) << c.name;
  }
}

std::string Required(const std::string& terms) {
  return "affinity { node_affinity { required_during_scheduling_ignored_during_execution { " +
         terms + " } } }";
}
std::string Expr(const std::string& key, const std::string& op, const std::vector<std::string>& values = {}) {
  std::string text = "key: '" + key + "' operator: '" + op + "'";
  for (const std::string& v : values) text += " values: '" + v + "'";
  return text;
}
std::string Term(const std::vector<std::string>& exprs, const std::vector<std::string>& fields = {}) {
  std::string text = "node_selector_terms { ";
  for (const std::string& e : exprs) text += "match_expressions { " + e + " } ";
  for (const std::string& f : fields) text += "match_fields { " + f + " } ";
  return text + "}";
}

TEST(NodeAffinity, Table) {
  std::vector<Case> cases = {
      {"nothing asked", "", "", ""},
      {"nodeSelector match", "node_selector { key: 'disk' value: 'ssd' }", "", ""},
      {"nodeSelector mismatch", "node_selector { key: 'disk' value: 'hdd' }", "", kReasonNodeAffinity},
      {"nodeSelector missing", "node_selector { key: 'gpu' value: 'yes' }", "", kReasonNodeAffinity},
      {"In", Required(Term({Expr("zone", "In", {"a", "b"})})), "", ""},
      {"In miss", Required(Term({Expr("zone", "In", {"b"})})), "", kReasonNodeAffinity},
      {"NotIn", Required(Term({Expr("zone", "NotIn", {"a"})})), "", kReasonNodeAffinity},
      {"NotIn absent", Required(Term({Expr("gpu", "NotIn", {"a"})})), "", ""},
      {"Exists", Required(Term({Expr("zone", "Exists")})), "", ""},
      {"Exists absent", Required(Term({Expr("gpu", "Exists")})), "", kReasonNodeAffinity},
      {"DoesNotExist", Required(Term({Expr("gpu", "DoesNotExist")})), "", ""},
      {"DoesNotExist present", Required(Term({Expr("zone", "DoesNotExist")})), "", kReasonNodeAffinity},
      {"Gt", Required(Term({Expr("gen", "Gt", {"4"})})), "", ""},
      {"Gt equal", Required(Term({Expr("gen", "Gt", {"5"})})), "", kReasonNodeAffinity},
      {"Lt", Required(Term({Expr("gen", "Lt", {"6"})})), "", ""},
      {"Lt miss", Required(Term({Expr("gen", "Lt", {"4"})})), "", kReasonNodeAffinity},
      {"Gt not a number", Required(Term({Expr("zone", "Gt", {"4"})})), "", kReasonNodeAffinity},
      {"expressions ANDed", Required(Term({Expr("zone", "In", {"a"}), Expr("disk", "In", {"hdd"})})), "",
       kReasonNodeAffinity},
      {"terms ORed", Required(Term({Expr("zone", "In", {"b"})}) + Term({Expr("disk", "In", {"ssd"})})), "", ""},
      {"empty term matches nothing", Required("node_selector_terms { }"), "", kReasonNodeAffinity},
      {"no terms matches nothing", Required(""), "", kReasonNodeAffinity},
      {"matchFields name", Required(Term({}, {Expr("metadata.name", "In", {"n1"})})), "", ""},
      {"matchFields other name", Required(Term({}, {Expr("metadata.name", "In", {"n2"})})), "",
       kReasonNodeAffinity},
      {"matchFields NotIn", Required(Term({}, {Expr("metadata.name", "NotIn", {"n2"})})), "", ""},
      {"selector and affinity both needed",
       "node_selector { key: 'disk' value: 'hdd' } " + Required(Term({Expr("zone", "In", {"a"})})), "",
       kReasonNodeAffinity},
  };
  NodeAffinity plugin;
  Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {{"zone", "a"}, {"disk", "ssd"}, {"gen", "5"}})});
  for (const Case& c : cases) {
    EXPECT_EQ(RunFilter(plugin, MakePod("p", "", "", {}, c.pod_spec), s, "n1"), c.want) << c.name;
  }
}

TEST(TaintToleration, FilterTable) {
  const std::string master = "spec { taints { key: 'node-role' value: 'master' effect: 'NoSchedule' } }";
  const std::string want = "node(s) had untolerated taint {node-role: master}";
  std::vector<Case> cases = {
      {"no taints", "", "", ""},
      {"untolerated", "", master, want},
      {"Equal", "tolerations { key: 'node-role' operator: 'Equal' value: 'master' effect: 'NoSchedule' }", master, ""},
      {"default operator is Equal", "tolerations { key: 'node-role' value: 'master' }", master, ""},
      {"Exists", "tolerations { key: 'node-role' operator: 'Exists' }", master, ""},
      {"wrong value", "tolerations { key: 'node-role' value: 'worker' }", master, want},
      {"wrong effect", "tolerations { key: 'node-role' operator: 'Exists' effect: 'NoExecute' }", master, want},
      {"PreferNoSchedule does not filter", "",
       "spec { taints { key: 'k' value: 'v' effect: 'PreferNoSchedule' } }", ""},
      {"NoExecute filters", "", "spec { taints { key: 'k' value: 'v' effect: 'NoExecute' } }",
       "node(s) had untolerated taint {k: v}"},
      {"first untolerated is named", "tolerations { key: 'node-role' operator: 'Exists' }",
       "spec { taints { key: 'node-role' value: 'master' effect: 'NoSchedule' } "
       "taints { key: 'gpu' value: 'true' effect: 'NoSchedule' } }",
       "node(s) had untolerated taint {gpu: true}"},
  };
  TaintToleration plugin;
  for (const Case& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {}, c.node_extra)});
    EXPECT_EQ(RunFilter(plugin, MakePod("p", "", "", {}, c.pod_spec), s, "n1"), c.want) << c.name;
  }
}

std::string PodTerm(const std::string& app, const std::string& key, const std::string& extra = "") {
  return "{ label_selector { match_labels { key: 'app' value: '" + app + "' } } topology_key: '" + key +
         "' " + extra + " }";
}
std::string Affinity(const std::string& term) {
  return "affinity { pod_affinity { required_during_scheduling_ignored_during_execution " + term + " } }";
}
std::string AntiAffinity(const std::string& term) {
  return "affinity { pod_anti_affinity { required_during_scheduling_ignored_during_execution " + term +
         " } }";
}

TEST(InterPodAffinity, FilterTable) {
  const std::string host = kLabelHostname;
  const std::string zone = kLabelZone;
  struct AffCase {
    std::string name;
    std::map<std::string, std::string> labels;  // the incoming pod's
    std::string pod_spec;
    std::vector<Pod> existing;
    std::vector<std::string> want;  // per node n1, n2, n3
  };
  Pod db = On(MakePod("db", "", "", {{"app", "db"}}), "n1");
  Pod db_other_ns = db;
  db_other_ns.mutable_metadata()->set_namespace_("other");
  Pod guard_host = On(MakePod("guard", "", "", {}, AntiAffinity(PodTerm("web", host))), "n1");
  Pod guard_zone = On(MakePod("guard", "", "", {}, AntiAffinity(PodTerm("web", zone))), "n1");
  const std::string aff = kReasonPodAffinity, anti = kReasonPodAntiAffinity,
                    existing = kReasonExistingAntiAffinity;
  std::vector<AffCase> cases = {
      {"no rules", {}, "", {db}, {"", "", ""}},
      {"affinity hostname", {}, Affinity(PodTerm("db", host)), {db}, {"", aff, aff}},
      {"affinity zone", {}, Affinity(PodTerm("db", zone)), {db}, {"", "", aff}},
      {"anti-affinity hostname", {}, AntiAffinity(PodTerm("db", host)), {db}, {anti, "", ""}},
      {"anti-affinity zone", {}, AntiAffinity(PodTerm("db", zone)), {db}, {anti, anti, ""}},
      {"first pod of a self-affine group", {{"app", "web"}}, Affinity(PodTerm("web", zone)), {db}, {"", "", ""}},
      {"no match and not self-affine", {{"app", "api"}}, Affinity(PodTerm("web", zone)), {db}, {aff, aff, aff}},
      {"other namespace not seen", {}, Affinity(PodTerm("db", host)), {db_other_ns}, {aff, aff, aff}},
      {"namespaces list", {}, Affinity(PodTerm("db", host, "namespaces: 'other'")), {db_other_ns}, {"", aff, aff}},
      {"empty namespaceSelector is all", {}, Affinity(PodTerm("db", host, "namespace_selector { }")),
       {db_other_ns}, {"", aff, aff}},
      {"existing anti-affinity hostname", {{"app", "web"}}, "", {guard_host}, {existing, "", ""}},
      {"existing anti-affinity zone", {{"app", "web"}}, "", {guard_zone}, {existing, existing, ""}},
      {"existing anti-affinity other label", {{"app", "api"}}, "", {guard_zone}, {"", "", ""}},
      {"no label selector selects nothing", {}, AntiAffinity("{ topology_key: '" + host + "' }"), {db},
       {"", "", ""}},
  };
  InterPodAffinity plugin;
  for (const AffCase& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {{zone, "a"}}),
                               MakeNode("n2", "4", "8Gi", "110", {{zone, "a"}}),
                               MakeNode("n3", "4", "8Gi", "110", {{zone, "b"}})},
                              c.existing);
    Pod pod = MakePod("p", "", "", c.labels, c.pod_spec);
    for (int i = 0; i < 3; ++i) {
      std::string node = "n" + std::to_string(i + 1);
      EXPECT_EQ(RunFilter(plugin, pod, s, node), c.want[i]) << c.name << " on " << node;
    }
  }
}

TEST(PodTopologySpread, FilterTable) {
  const std::string zone = kLabelZone;
  auto constraint = [](const std::string& key, int skew, const std::string& extra = "") {
    return "topology_spread_constraints { max_skew: " + std::to_string(skew) + " topology_key: '" + key +
           "' when_unsatisfiable: 'DoNotSchedule' label_selector { match_labels { key: 'app' value: 'web' } } " +
           extra + " }";
  };
  auto web = [](const std::string& name, const std::string& node) {
    return On(MakePod(name, "", "", {{"app", "web"}}), node);
  };
  struct SpreadCase {
    std::string name;
    std::map<std::string, std::string> labels;
    std::string pod_spec;
    std::vector<Pod> existing;
    std::vector<std::string> want;  // n1, n2, n3, n4 (n4 has no zone label)
  };
  const std::string skew = kReasonTopologySpread, missing = kReasonTopologySpreadMissingLabel;
  std::vector<SpreadCase> cases = {
      {"no constraints", {{"app", "web"}}, "", {web("a", "n1")}, {"", "", "", ""}},
      {"zone", {{"app", "web"}}, constraint(zone, 1), {web("a", "n1"), web("b", "n1")},
       {skew, skew, "", missing}},
      {"zone balanced", {{"app", "web"}}, constraint(zone, 1), {web("a", "n1"), web("b", "n3")},
       {"", "", "", missing}},
      {"hostname", {{"app", "web"}}, constraint(kLabelHostname, 1), {web("a", "n1"), web("b", "n1")},
       {skew, "", "", ""}},
      {"hostname skew 2", {{"app", "web"}}, constraint(kLabelHostname, 2), {web("a", "n1")}, {"", "", "", ""}},
      {"not self-matching", {{"app", "api"}}, constraint(kLabelHostname, 1),
       {web("a", "n1"), web("b", "n1")}, {skew, "", "", ""}},
      {"minDomains raises skew", {{"app", "web"}}, constraint(zone, 1, "min_domains: 3"),
       {web("a", "n1"), web("b", "n3")}, {skew, skew, skew, missing}},
      {"ScheduleAnyway does not filter", {{"app", "web"}},
       "topology_spread_constraints { max_skew: 1 topology_key: 'topology.kubernetes.io/zone' "
       "when_unsatisfiable: 'ScheduleAnyway' label_selector { match_labels { key: 'app' value: 'web' } } }",
       {web("a", "n1"), web("b", "n1")}, {"", "", "", ""}},
  };
  PodTopologySpread plugin;
  for (const SpreadCase& c : cases) {
    Snapshot s = MakeSnapshot({MakeNode("n1", "4", "8Gi", "110", {{zone, "a"}}),
                               MakeNode("n2", "4", "8Gi", "110", {{zone, "a"}}),
                               MakeNode("n3", "4", "8Gi", "110", {{zone, "b"}}),
                               MakeNode("n4", "4", "8Gi", "110")},
                              c.existing);
    Pod pod = MakePod("p", "", "", c.labels, c.pod_spec);
    for (int i = 0; i < 4; ++i) {
      std::string node = "n" + std::to_string(i + 1);
      EXPECT_EQ(RunFilter(plugin, pod, s, node), c.want[i]) << c.name << " on " << node;
    }
  }
}

}  // namespace
}  // namespace capstan::scheduler::plugins
