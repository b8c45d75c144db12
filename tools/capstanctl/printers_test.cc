#include "tools/capstanctl/printers.h"

#include "gtest/gtest.h"
#include "lib/api/codec.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"

namespace capstan::capstanctl {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

template <typename T>
T Parse(const std::string& json) {
  T message;
  absl::Status s = api::ParseJson(json, &message);
  EXPECT_TRUE(s.ok()) << s;
  return message;
}

const api::ResourceInfo& Info(const char* name) { return *api::Scheme::BuiltIn().Lookup(name); }

TEST(FormatAgeTest, LikeKubectl) {
  struct {
    absl::Duration age;
    const char* want;
  } cases[] = {
      {absl::Seconds(-5), "<invalid>"},
      {absl::Seconds(-1), "0s"},
      {absl::Seconds(0), "0s"},
      {absl::Seconds(5), "5s"},
      {absl::Seconds(119), "119s"},
      {absl::Seconds(120), "2m"},
      {absl::Seconds(182), "3m2s"},
      {absl::Minutes(10), "10m"},
      {absl::Minutes(179), "179m"},
      {absl::Hours(3), "3h"},
      {absl::Hours(4) + absl::Minutes(5), "4h5m"},
      {absl::Hours(8) + absl::Minutes(5), "8h"},
      {absl::Hours(47), "47h"},
      {absl::Hours(48), "2d"},
      {absl::Hours(76), "3d4h"},
      {absl::Hours(24 * 8), "8d"},
      {absl::Hours(24 * 400), "400d"},
      {absl::Hours(24 * (365 * 2 + 10)), "2y10d"},
      {absl::Hours(24 * 365 * 9), "9y"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatAge(c.age), c.want) << c.age;
  EXPECT_EQ(AgeOf(capstan::meta::v1::Time(), kNow), "<unknown>");
}

TEST(RenderTableTest, KubectlColumns) {
  EXPECT_EQ(RenderTable({{"NAME", "READY", "AGE"}, {"nginx-1234", "1/1", "5s"}, {"a", "0/1", "10m"}}),
            "NAME         READY   AGE\n"
            "nginx-1234   1/1     5s\n"
            "a            0/1     10m\n");
  // Minimum width 6 with padding.
  EXPECT_EQ(RenderTable({{"A", "B"}}), "A     B\n");
  std::vector<size_t> widths;
  RenderTable({{"NAME", "AGE"}, {"longer-name", "1s"}}, &widths);
  EXPECT_EQ(RenderTable({{"x", "2s"}}, &widths), "x             2s\n");
}

TEST(TableTest, Pods) {
  auto pod = Parse<capstan::core::v1::Pod>(R"({
    "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2023-11-14T22:11:20Z"},
    "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
    "status": {"phase": "Running", "podIP": "10.0.0.7", "containerStatuses": [
      {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
      {"name": "b", "ready": false, "restartCount": 1,
       "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}})");
  TableOptions options;
  options.now = kNow;
  EXPECT_EQ(TableHeader(Info("po"), options), (Row{"NAME", "READY", "STATUS", "RESTARTS", "AGE"}));
  EXPECT_EQ(TableRow(Info("po"), pod, options),
            (Row{"web", "1/2", "CrashLoopBackOff", "3", "2m"}));
  options.wide = true;
  options.with_namespace = true;
  EXPECT_EQ(TableHeader(Info("po"), options),
            (Row{"NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"}));
  EXPECT_EQ(TableRow(Info("po"), pod, options),
            (Row{"prod", "web", "1/2", "CrashLoopBackOff", "3", "2m", "10.0.0.7", "node-1"}));
}

TEST(TableTest, PodStatusReasons) {
  TableOptions options;
  options.now = kNow;
  auto status = [&](const std::string& json) {
    return TableRow(Info("po"), Parse<capstan::core::v1::Pod>(json), options)[2];
  };
  EXPECT_EQ(status(R"({"metadata":{"name":"p"}})"), "Pending");
  EXPECT_EQ(status(R"({"metadata":{"name":"p"},"spec":{"initContainers":[{"name":"i"}]},
      "status":{"phase":"Pending","initContainerStatuses":[{"name":"i","state":{"running":{}}}]}})"),
            "Init:0/1");
  EXPECT_EQ(status(R"({"metadata":{"name":"p"},"status":{"phase":"Failed","containerStatuses":[
      {"name":"a","state":{"terminated":{"exitCode":3}}}]}})"),
            "ExitCode:3");
  EXPECT_EQ(status(R"({"metadata":{"name":"p","deletionTimestamp":"2023-11-14T22:13:20Z"},
      "status":{"phase":"Running"}})"),
            "Terminating");
}

TEST(TableTest, WorkloadsNodesNamespacesEvents) {
  TableOptions options;
  options.now = kNow;
  auto d = Parse<capstan::apps::v1::Deployment>(R"({
    "metadata": {"name": "nginx", "creationTimestamp": "2023-11-14T12:13:20Z"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
             "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}},
    "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}})");
  EXPECT_EQ(TableRow(Info("deploy"), d, options), (Row{"nginx", "2/3", "3", "2", "10h"}));
  options.wide = true;
  EXPECT_EQ(TableRow(Info("deploy"), d, options),
            (Row{"nginx", "2/3", "3", "2", "10h", "nginx", "nginx:1.25", "app=nginx"}));
  options.wide = false;

  auto rs = Parse<capstan::apps::v1::ReplicaSet>(R"({"metadata": {"name": "nginx-1"},
    "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 1}})");
  EXPECT_EQ(TableHeader(Info("rs"), options), (Row{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}));
  EXPECT_EQ(TableRow(Info("rs"), rs, options), (Row{"nginx-1", "3", "3", "1", "<unknown>"}));

  auto node = Parse<capstan::core::v1::Node>(R"({"metadata": {"name": "n1",
      "labels": {"node-role.kubernetes.io/control-plane": ""}},
    "spec": {"unschedulable": true},
    "status": {"conditions": [{"type": "Ready", "status": "True"}],
               "nodeInfo": {"kubeletVersion": "v1.29.0"}}})");
  EXPECT_EQ(TableRow(Info("no"), node, options),
            (Row{"n1", "Ready,SchedulingDisabled", "control-plane", "<unknown>", "v1.29.0"}));

  auto ns = Parse<capstan::core::v1::Namespace>(R"({"metadata": {"name": "x"},
    "status": {"phase": "Terminating"}})");
  EXPECT_EQ(TableRow(Info("ns"), ns, options), (Row{"x", "Terminating", "<unknown>"}));

  auto ev = Parse<capstan::core::v1::Event>(R"({"metadata": {"name": "e", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Pulled", "type": "Normal",
    "message": "pulled", "lastTimestamp": "2023-11-14T22:12:20Z"})");
  EXPECT_EQ(TableHeader(Info("ev"), options),
            (Row{"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}));
  EXPECT_EQ(TableRow(Info("ev"), ev, options), (Row{"60s", "Normal", "Pulled", "pod/web", "pulled"}));

  capstan::core::v1::ConfigMap cm;
  cm.mutable_metadata()->set_name("cfg");
  EXPECT_EQ(TableHeader(Info("cm"), options), (Row{"NAME", "AGE"}));
  EXPECT_EQ(TableRow(Info("cm"), cm, options), (Row{"cfg", "<unknown>"}));
  // Cluster-scoped kinds get no NAMESPACE column even with -A.
  options.with_namespace = true;
  EXPECT_EQ(TableHeader(Info("no"), options)[0], "NAME");
}

TEST(NamesTest, TypedAndSingular) {
  EXPECT_EQ(TypedName(Info("deploy"), "nginx"), "deployment.apps/nginx");
  EXPECT_EQ(TypedName(Info("po"), "web"), "pod/web");
  EXPECT_EQ(SingularResource(Info("pc")), "priorityclass.scheduling.k8s.io");
}

TEST(JsonTest, ObjectAndList) {
  capstan::core::v1::Pod pod;
  pod.mutable_metadata()->set_name("web");
  nlohmann::json j = ObjectJson(Info("po"), pod);
  EXPECT_EQ(j["apiVersion"], "v1");
  EXPECT_EQ(j["kind"], "Pod");
  nlohmann::json list = ListJson({j});
  EXPECT_EQ(list["kind"], "List");
  EXPECT_EQ(list["items"].size(), 1u);
}

TEST(DescribeTest, PodWithEvents) {
  auto pod = Parse<capstan::core::v1::Pod>(R"({
    "metadata": {"name": "web", "namespace": "prod", "labels": {"b": "2", "a": "1"},
                 "creationTimestamp": "2023-11-14T22:11:20Z"},
    "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})");
  auto ev = Parse<capstan::core::v1::Event>(R"({"metadata": {"name": "e"},
    "involvedObject": {"kind": "Pod", "name": "web"}, "reason": "Scheduled", "type": "Normal",
    "message": "assigned to node-1", "source": {"component": "scheduler"},
    "lastTimestamp": "2023-11-14T22:12:20Z"})");
  std::string text = Describe(Info("po"), pod, {&ev}, kNow);
  EXPECT_NE(text.find("Name:               web\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Labels:             a=1\n                    b=2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Annotations:        <none>\n"), std::string::npos) << text;
  EXPECT_NE(text.find("CreationTimestamp:  Tue, 14 Nov 2023 22:11:20 +0000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Status:             Running\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    Image:  nginx\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Conditions:\n  Type    Status   Reason\n  Ready   True     <none>\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Events:\n  Type     Reason      Age    From        Message\n  ----     ------      ----   ----        -------\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  Normal   Scheduled   60s    scheduler   assigned to node-1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace capstan::capstanctl
