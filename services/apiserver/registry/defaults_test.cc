#include "services/apiserver/registry/defaults.h"

#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace capstan::apiserver::registry {
namespace {

using google::protobuf::TextFormat;
using google::protobuf::util::MessageDifferencer;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

constexpr char kPod[] = R"pb(
  metadata { name: "web" namespace: "default" }
  spec {
    containers {
      name: "app"
      image: "registry.example.com/app:v1"
      ports { container_port: 8080 }
      resources {
        limits { key: "cpu" value { string: "1" } }
        limits { key: "memory" value { string: "128Mi" } }
        requests { key: "memory" value { string: "64Mi" } }
      }
      readiness_probe { http_get { port { int_val: 8080 } } }
      liveness_probe { tcp_socket { port { str_val: "http" } } period_seconds: 20 }
    }
    init_containers { name: "init" image: "busybox" }
    tolerations { key: "dedicated" value: "web" effect: "NoSchedule" }
    tolerations { operator: "Exists" }
    volumes { name: "scratch" }
    volumes { name: "config" config_map { name: "web-config" } }
  }
)pb";

TEST(SetDefaultsTest, PodSpecGetsKubernetesDefaults) {
  auto pod = Parse<core::v1::Pod>(kPod);
  SetDefaults(&pod);
  const auto& spec = pod.spec();
  EXPECT_EQ(spec.restart_policy(), "Always");
  EXPECT_EQ(spec.dns_policy(), "ClusterFirst");
  EXPECT_EQ(spec.scheduler_name(), "default-scheduler");
  ASSERT_TRUE(spec.has_termination_grace_period_seconds());
  EXPECT_EQ(spec.termination_grace_period_seconds(), 30);

  const auto& app = spec.containers(0);
  EXPECT_EQ(app.image_pull_policy(), "IfNotPresent");
  EXPECT_EQ(app.termination_message_path(), "/dev/termination-log");
  EXPECT_EQ(app.termination_message_policy(), "File");
  EXPECT_EQ(app.ports(0).protocol(), "TCP");
  EXPECT_EQ(app.ports(0).host_port(), 0);  // only host-network pods get host ports

  const auto& readiness = app.readiness_probe();
  EXPECT_EQ(readiness.timeout_seconds(), 1);
  EXPECT_EQ(readiness.period_seconds(), 10);
  EXPECT_EQ(readiness.success_threshold(), 1);
  EXPECT_EQ(readiness.failure_threshold(), 3);
  EXPECT_EQ(readiness.http_get().path(), "/");
  EXPECT_EQ(readiness.http_get().scheme(), "HTTP");
  EXPECT_EQ(app.liveness_probe().period_seconds(), 20);  // set values are kept

  EXPECT_EQ(spec.init_containers(0).image_pull_policy(), "Always");  // no tag means :latest

  EXPECT_EQ(spec.tolerations(0).operator_(), "Equal");
  EXPECT_EQ(spec.tolerations(1).operator_(), "Exists");

  EXPECT_TRUE(spec.volumes(0).has_empty_dir());  // a volume without a source is an emptyDir
  EXPECT_EQ(spec.volumes(1).config_map().default_mode(), 0644);
}

TEST(SetDefaultsTest, PodRequestsDefaultToLimitsOnlyWhereUnset) {
  auto pod = Parse<core::v1::Pod>(kPod);
  SetDefaults(&pod);
  const auto& requests = pod.spec().containers(0).resources().requests();
  ASSERT_TRUE(requests.contains("cpu"));
  EXPECT_EQ(requests.at("cpu").string(), "1");
  EXPECT_EQ(requests.at("memory").string(), "64Mi");  // an explicit request stays
}

TEST(SetDefaultsTest, ExplicitValuesAreKept) {
  auto pod = Parse<core::v1::Pod>(R"pb(
    spec {
      restart_policy: "Never"
      dns_policy: "Default"
      scheduler_name: "custom"
      termination_grace_period_seconds: 0
      containers { name: "a" image: "nginx" image_pull_policy: "Never" }
    }
  )pb");
  SetDefaults(&pod);
  EXPECT_EQ(pod.spec().restart_policy(), "Never");
  EXPECT_EQ(pod.spec().dns_policy(), "Default");
  EXPECT_EQ(pod.spec().scheduler_name(), "custom");
  EXPECT_EQ(pod.spec().termination_grace_period_seconds(), 0);  // 0 is set, not unset
  EXPECT_EQ(pod.spec().containers(0).image_pull_policy(), "Never");
}

TEST(SetDefaultsTest, HostNetworkPodsExposeContainerPortsOnTheHost) {
  auto pod = Parse<core::v1::Pod>(R"pb(
    spec {
      host_network: true
      containers { name: "a" image: "nginx" ports { container_port: 80 } }
    }
  )pb");
  SetDefaults(&pod);
  EXPECT_EQ(pod.spec().containers(0).ports(0).host_port(), 80);
}

TEST(AddDefaultTolerationsTest, AddsNotReadyAndUnreachableNoExecuteTolerations) {
  auto pod = Parse<core::v1::Pod>(R"pb(
    spec {
      containers { name: "a" image: "nginx" }
      tolerations { key: "dedicated" operator: "Equal" value: "web" effect: "NoSchedule" }
    }
  )pb");
  AddDefaultTolerations(&pod, {.not_ready = 300, .unreachable = 120});
  auto want = Parse<core::v1::Pod>(R"pb(
    spec {
      containers { name: "a" image: "nginx" }
      tolerations { key: "dedicated" operator: "Equal" value: "web" effect: "NoSchedule" }
      tolerations {
        key: "node.kubernetes.io/not-ready"
        operator: "Exists"
        effect: "NoExecute"
        toleration_seconds: 300
      }
      tolerations {
        key: "node.kubernetes.io/unreachable"
        operator: "Exists"
        effect: "NoExecute"
        toleration_seconds: 120
      }
    }
  )pb");
  EXPECT_TRUE(MessageDifferencer::Equals(pod, want)) << pod.DebugString();
  // Applying it again adds nothing.
  AddDefaultTolerations(&pod, {});
  EXPECT_TRUE(MessageDifferencer::Equals(pod, want)) << pod.DebugString();
}

TEST(AddDefaultTolerationsTest, KeepsWhatThePodAlreadyTolerates) {
  struct Case {
    const char* name;
    const char* toleration;  // text of the pod's one toleration
    int want_added;
  };
  const Case cases[] = {
      {"its own not-ready toleration",
       R"pb(key: "node.kubernetes.io/not-ready" operator: "Exists" effect: "NoExecute"
            toleration_seconds: 5)pb",
       1},
      {"unreachable with any effect",
       R"pb(key: "node.kubernetes.io/unreachable" operator: "Exists")pb", 1},
      {"everything", R"pb(operator: "Exists")pb", 0},
      {"every NoExecute taint", R"pb(operator: "Exists" effect: "NoExecute")pb", 0},
      {"a NoSchedule toleration does not count",
       R"pb(key: "node.kubernetes.io/unreachable" operator: "Exists" effect: "NoSchedule")pb", 2},
  };
  for (const Case& c : cases) {
    core::v1::Pod pod;
    *pod.mutable_spec()->add_tolerations() = Parse<core::v1::Toleration>(c.toleration);
    AddDefaultTolerations(&pod, {});
    EXPECT_EQ(pod.spec().tolerations_size(), 1 + c.want_added) << c.name;
    for (int i = 1; i < pod.spec().tolerations_size(); ++i) {
      EXPECT_EQ(pod.spec().tolerations(i).toleration_seconds(), 300) << c.name;
    }
  }
}

TEST(DefaultImagePullPolicyTest, FollowsTheImageTag) {
  struct Case {
    const char* image;
    const char* policy;
  };
  for (const Case& c : std::vector<Case>{
           {"nginx", "Always"},
           {"nginx:latest", "Always"},
           {"nginx:1.7.9", "IfNotPresent"},
           {"registry.example.com:5000/team/app", "Always"},  // a port is not a tag
           {"registry.example.com:5000/team/app:v2", "IfNotPresent"},
           {"registry.example.com:5000/team/app:latest", "Always"},
           {"nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
            "IfNotPresent"},
           {"nginx:latest@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
            "IfNotPresent"},
       }) {
    EXPECT_STREQ(DefaultImagePullPolicy(c.image), c.policy) << c.image;
  }
}

constexpr char kDeployment[] = R"pb(
  metadata { name: "nginx-deployment" namespace: "default" labels { key: "app" value: "nginx" } }
  spec {
    selector { match_labels { key: "app" value: "nginx" } }
    template {
      metadata { labels { key: "app" value: "nginx" } }
      spec {
        containers {
          name: "nginx"
          image: "nginx:1.7.9"
          resources { limits { key: "cpu" value { string: "500m" } } }
        }
      }
    }
  }
)pb";

TEST(SetDefaultsTest, DeploymentGetsReplicasStrategyAndTemplateDefaults) {
  auto deployment = Parse<apps::v1::Deployment>(kDeployment);
  SetDefaults(&deployment);
  const auto& spec = deployment.spec();
  ASSERT_TRUE(spec.has_replicas());
  EXPECT_EQ(spec.replicas(), 1);
  EXPECT_EQ(spec.strategy().type(), "RollingUpdate");
  EXPECT_EQ(spec.strategy().rolling_update().max_unavailable().str_val(), "25%");
  EXPECT_EQ(spec.strategy().rolling_update().max_surge().str_val(), "25%");
  EXPECT_EQ(spec.revision_history_limit(), 10);
  EXPECT_EQ(spec.progress_deadline_seconds(), 600);
  const auto& pod_spec = spec.template_().spec();
  EXPECT_EQ(pod_spec.restart_policy(), "Always");
  EXPECT_EQ(pod_spec.containers(0).image_pull_policy(), "IfNotPresent");
  // Templates do not get requests from limits; the pods made from them do.
  EXPECT_TRUE(pod_spec.containers(0).resources().requests().empty());
}

TEST(SetDefaultsTest, DeploymentKeepsZeroReplicasAndRecreate) {
  auto deployment = Parse<apps::v1::Deployment>(kDeployment);
  deployment.mutable_spec()->set_replicas(0);
  deployment.mutable_spec()->mutable_strategy()->set_type("Recreate");
  deployment.mutable_spec()->set_revision_history_limit(0);
  SetDefaults(&deployment);
  EXPECT_EQ(deployment.spec().replicas(), 0);
  EXPECT_EQ(deployment.spec().revision_history_limit(), 0);
  EXPECT_FALSE(deployment.spec().strategy().has_rolling_update());
}

TEST(SetDefaultsTest, DeploymentKeepsAnExplicitMaxSurge) {
  auto deployment = Parse<apps::v1::Deployment>(kDeployment);
  deployment.mutable_spec()->mutable_strategy()->mutable_rolling_update()->mutable_max_surge()->set_int_val(1);
  SetDefaults(&deployment);
  const auto& rolling_update = deployment.spec().strategy().rolling_update();
  EXPECT_EQ(rolling_update.max_surge().int_val(), 1);
  EXPECT_EQ(rolling_update.max_unavailable().str_val(), "25%");
}

TEST(SetDefaultsTest, ReplicaSetGetsReplicasAndTemplateDefaults) {
  auto replica_set = Parse<apps::v1::ReplicaSet>(R"pb(
    spec { template { spec { containers { name: "a" image: "nginx:1.25" } } } }
  )pb");
  SetDefaults(&replica_set);
  EXPECT_EQ(replica_set.spec().replicas(), 1);
  EXPECT_EQ(replica_set.spec().template_().spec().dns_policy(), "ClusterFirst");
}

TEST(SetDefaultsTest, NewNamespaceGetsFinalizerAndActivePhase) {
  auto ns = Parse<core::v1::Namespace>(R"pb(metadata { name: "development" })pb");
  SetDefaults(&ns);
  ASSERT_EQ(ns.spec().finalizers_size(), 1);
  EXPECT_EQ(ns.spec().finalizers(0), "kubernetes");
  EXPECT_EQ(ns.status().phase(), "Active");
}

TEST(SetDefaultsTest, TerminatingNamespaceIsNotFinalizedAgain) {
  // The namespace controller removed the finalizer; defaulting must not bring it back.
  auto ns = Parse<core::v1::Namespace>(R"pb(
    metadata { name: "old" } status { phase: "Terminating" }
  )pb");
  SetDefaults(&ns);
  EXPECT_TRUE(ns.spec().finalizers().empty());
  EXPECT_EQ(ns.status().phase(), "Terminating");
}

TEST(SetDefaultsTest, NodeAllocatableDefaultsToCapacity) {
  auto node = Parse<core::v1::Node>(R"pb(
    metadata { name: "worker-1" }
    status { capacity { key: "cpu" value { string: "4" } } }
  )pb");
  SetDefaults(&node);
  ASSERT_TRUE(node.status().allocatable().contains("cpu"));
  EXPECT_EQ(node.status().allocatable().at("cpu").string(), "4");

  auto bare = Parse<core::v1::Node>(R"pb(metadata { name: "worker-2" })pb");
  SetDefaults(&bare);
  EXPECT_FALSE(bare.has_status());
}

TEST(SetDefaultsTest, SecretIsOpaqueAndStringDataMergesIntoData) {
  auto secret = Parse<core::v1::Secret>(R"pb(
    metadata { name: "s" }
    data { key: "username" value: "admin" }
    data { key: "password" value: "old" }
    string_data { key: "password" value: "new" }
  )pb");
  SetDefaults(&secret);
  EXPECT_EQ(secret.type(), "Opaque");
  EXPECT_EQ(secret.data().at("password"), "new");
  EXPECT_EQ(secret.data().at("username"), "admin");
  EXPECT_TRUE(secret.string_data().empty());
}

TEST(SetDefaultsTest, PriorityClassPreemptsLowerPriority) {
  auto priority_class = Parse<scheduling::v1::PriorityClass>(R"pb(value: 1000)pb");
  SetDefaults(&priority_class);
  EXPECT_EQ(priority_class.preemption_policy(), "PreemptLowerPriority");
  auto never = Parse<scheduling::v1::PriorityClass>(R"pb(preemption_policy: "Never")pb");
  SetDefaults(&never);
  EXPECT_EQ(never.preemption_policy(), "Never");
}

TEST(SetDefaultsTest, KindsWithoutDefaultsAreUnchanged) {
  auto lease = Parse<coordination::v1::Lease>(R"pb(metadata { name: "l" })pb");
  auto event = Parse<core::v1::Event>(R"pb(metadata { name: "e" } reason: "Pulled")pb");
  auto config_map = Parse<core::v1::ConfigMap>(R"pb(data { key: "a" value: "b" })pb");
  for (google::protobuf::Message* message :
       std::vector<google::protobuf::Message*>{&lease, &event, &config_map}) {
    std::unique_ptr<google::protobuf::Message> before(message->New());
    before->CopyFrom(*message);
    SetDefaults(message);
    EXPECT_TRUE(MessageDifferencer::Equals(*before, *message)) << message->GetTypeName();
  }
}

TEST(SetDefaultsTest, DefaultingTwiceChangesNothing) {
  std::vector<std::unique_ptr<google::protobuf::Message>> objects;
  objects.push_back(std::make_unique<core::v1::Pod>(Parse<core::v1::Pod>(kPod)));
  objects.push_back(std::make_unique<apps::v1::Deployment>(Parse<apps::v1::Deployment>(kDeployment)));
  objects.push_back(std::make_unique<apps::v1::ReplicaSet>(
      Parse<apps::v1::ReplicaSet>(R"pb(spec { template { spec { containers { name: "a" image: "x" } } } })pb")));
  objects.push_back(std::make_unique<core::v1::Namespace>(Parse<core::v1::Namespace>(R"pb(metadata { name: "n" })pb")));
  objects.push_back(std::make_unique<core::v1::Node>(
      Parse<core::v1::Node>(R"pb(status { capacity { key: "pods" value { string: "110" } } })pb")));
  objects.push_back(std::make_unique<core::v1::Secret>(
      Parse<core::v1::Secret>(R"pb(string_data { key: "k" value: "v" })pb")));
  objects.push_back(std::make_unique<scheduling::v1::PriorityClass>());
  for (auto& object : objects) {
    SetDefaults(object.get());
    std::unique_ptr<google::protobuf::Message> once(object->New());
    once->CopyFrom(*object);
    SetDefaults(object.get());
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(*once, *object)) << object->GetTypeName() << ":\n" << diff;
  }
}

}  // namespace
}  // namespace capstan::apiserver::registry
