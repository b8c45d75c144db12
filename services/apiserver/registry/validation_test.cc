#include "services/apiserver/registry/validation.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "services/apiserver/registry/defaults.h"

namespace capstan::apiserver::registry {
namespace {

using api::FormatFieldErrors;
using google::protobuf::Message;
using google::protobuf::TextFormat;

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// Defaulted, as the API server validates them.
template <typename T>
T Defaulted(const std::string& text) {
  T message = Parse<T>(text);
  SetDefaults(&message);
  return message;
}

TEST(FieldPathTest, RendersAsKubernetesFieldPath) {
  const FieldPath object("");
  EXPECT_EQ(object.Child("metadata").String(), "metadata");
  const FieldPath spec("spec");
  const FieldPath container = spec.Child("containers").Index(2);
  EXPECT_EQ(container.String(), "spec.containers[2]");
  const FieldPath cpu = container.Child("resources.requests").Key("cpu");
  EXPECT_EQ(cpu.String(), "spec.containers[2].resources.requests[cpu]");
  EXPECT_EQ(FieldPath("data").Key("tls.key").Index(0).String(), "data[tls.key][0]");
  // Errors take it as text.
  FieldError err = api::Required(cpu, "");
  EXPECT_EQ(err.field, "spec.containers[2].resources.requests[cpu]");
}

bool HasError(const FieldErrors& errs, const std::string& field, const std::string& type) {
  for (const FieldError& err : errs) {
    if (err.field == field && err.type == type) return true;
  }
  return false;
}

// The pod of test/fixtures/manifests/pod.yaml, trimmed.
constexpr char kPod[] = R"pb(
  metadata { name: "frontend" namespace: "default" labels { key: "app" value: "frontend" } }
  spec {
    containers {
      name: "app"
      image: "registry.example.com/frontend:v2.3.1"
      ports { name: "http" container_port: 8080 }
      env { name: "POD_NAME" value_from { field_ref { field_path: "metadata.name" } } }
      resources {
        requests { key: "cpu" value { string: "250m" } }
        requests { key: "memory" value { string: "64Mi" } }
        limits { key: "cpu" value { string: "1" } }
        limits { key: "memory" value { string: "128Mi" } }
      }
      readiness_probe { http_get { path: "/healthz" port { int_val: 8080 } } }
      liveness_probe { tcp_socket { port { str_val: "http" } } }
      volume_mounts { name: "config" mount_path: "/etc/frontend" }
    }
    containers { name: "log-shipper" image: "fluent/fluent-bit:2.2" }
    volumes { name: "config" config_map { name: "frontend-config" } }
    node_selector { key: "disktype" value: "ssd" }
    tolerations { key: "example.com/dedicated" operator: "Equal" value: "frontend" effect: "NoSchedule" }
    tolerations { key: "node.kubernetes.io/unreachable" operator: "Exists" effect: "NoExecute" toleration_seconds: 300 }
    affinity {
      node_affinity {
        required_during_scheduling_ignored_during_execution {
          node_selector_terms {
            match_expressions { key: "topology.kubernetes.io/zone" operator: "In" values: "us-east-1a" }
          }
        }
      }
      pod_anti_affinity {
        preferred_during_scheduling_ignored_during_execution {
          weight: 100
          pod_affinity_term {
            label_selector { match_labels { key: "app" value: "frontend" } }
            topology_key: "kubernetes.io/hostname"
          }
        }
      }
    }
    topology_spread_constraints {
      max_skew: 1
      topology_key: "topology.kubernetes.io/zone"
      when_unsatisfiable: "ScheduleAnyway"
    }
  }
)pb";

// deployment-seed.yaml.
constexpr char kDeployment[] = R"pb(
  metadata { name: "nginx-deployment" namespace: "default" labels { key: "app" value: "nginx" } }
  spec {
    replicas: 3
    selector { match_labels { key: "app" value: "nginx" } }
    template {
      metadata { labels { key: "app" value: "nginx" } }
      spec { containers { name: "nginx" image: "nginx:1.7.9" } }
    }
  }
)pb";

// replicaset.yaml.
constexpr char kReplicaSet[] = R"pb(
  metadata { name: "frontend" namespace: "default" }
  spec {
    replicas: 3
    selector {
      match_labels { key: "tier" value: "frontend" }
      match_expressions { key: "environment" operator: "In" values: "production" values: "staging" }
      match_expressions { key: "canary" operator: "DoesNotExist" }
    }
    template {
      metadata {
        labels { key: "tier" value: "frontend" }
        labels { key: "environment" value: "production" }
      }
      spec { containers { name: "php-redis" image: "gcr.io/google_samples/gb-frontend:v3" } }
    }
  }
)pb";

constexpr char kNode[] = R"pb(
  metadata { name: "worker-1" }
  spec {
    pod_cidr: "10.244.1.0/24"
    pod_cidrs: "10.244.1.0/24"
    pod_cidrs: "fd00:10:244:1::/64"
    taints { key: "example.com/dedicated" value: "frontend" effect: "NoSchedule" }
  }
  status {
    capacity { key: "cpu" value { string: "4" } }
    capacity { key: "memory" value { string: "16085948Ki" } }
    capacity { key: "pods" value { string: "110" } }
  }
)pb";

constexpr char kEvent[] = R"pb(
  metadata { name: "frontend.17c1f2a3b4c5d6e7" namespace: "default" }
  involved_object { kind: "Pod" name: "frontend" namespace: "default" }
  reason: "Pulled"
  type: "Normal"
  count: 1
)pb";

TEST(ValidateTest, ValidObjectsOfEveryKindPass) {
  std::vector<std::pair<std::unique_ptr<Message>, bool>> objects;  // object, namespaced
  auto add = [&](auto message, bool namespaced) {
    SetDefaults(&message);
    objects.emplace_back(std::make_unique<decltype(message)>(message), namespaced);
  };
  add(Parse<core::v1::Pod>(kPod), true);
  add(Parse<apps::v1::Deployment>(kDeployment), true);
  add(Parse<apps::v1::ReplicaSet>(kReplicaSet), true);
  add(Parse<core::v1::Namespace>(R"pb(metadata { name: "development" })pb"), false);
  add(Parse<core::v1::Node>(kNode), false);
  add(Parse<core::v1::ConfigMap>(R"pb(
        metadata { name: "game-demo" namespace: "default" }
        data { key: "game.properties" value: "enemy.types=aliens" }
        binary_data { key: "logo.png" value: "\x89PNG" }
      )pb"),
      true);
  add(Parse<core::v1::Secret>(R"pb(
        metadata { name: "mysecret" namespace: "default" }
        data { key: "username" value: "admin" }
      )pb"),
      true);
  add(Parse<core::v1::Event>(kEvent), true);
  add(Parse<coordination::v1::Lease>(R"pb(
        metadata { name: "kube-scheduler" namespace: "kube-system" }
        spec { holder_identity: "cp-1" lease_duration_seconds: 15 lease_transitions: 2 }
      )pb"),
      true);
  add(Parse<scheduling::v1::PriorityClass>(R"pb(
        metadata { name: "high-priority" } value: 1000000 description: "XYZ pods only"
      )pb"),
      false);
  add(Parse<scheduling::v1::PriorityClass>(R"pb(
        metadata { name: "system-node-critical" } value: 2000001000
      )pb"),
      false);
  add(Parse<core::v1::Binding>(R"pb(
        metadata { name: "frontend" namespace: "default" } target { kind: "Node" name: "worker-1" }
      )pb"),
      true);
  for (const auto& [object, namespaced] : objects) {
    FieldErrors errs = Validate(*object, namespaced);
    EXPECT_TRUE(errs.empty()) << object->GetTypeName() << ": " << FormatFieldErrors(errs);
  }
}

// One bad object: a valid one, broken by `mutate`, must yield an error of `type` at `field`.
struct BadCase {
  std::string name;
  std::function<std::unique_ptr<Message>()> make;
  bool namespaced;
  std::string field;
  std::string type;
};

template <typename T>
std::function<std::unique_ptr<Message>()> Broken(const char* base, std::function<void(T*)> mutate,
                                                 bool apply_defaults = true) {
  return [base, mutate, apply_defaults]() -> std::unique_ptr<Message> {
    auto object = std::make_unique<T>(Parse<T>(base));
    if (apply_defaults) SetDefaults(object.get());
    mutate(object.get());
    return object;
  };
}

using core::v1::Pod;
using apps::v1::Deployment;
using apps::v1::ReplicaSet;

core::v1::Container* App(Pod* pod) { return pod->mutable_spec()->mutable_containers(0); }
core::v1::PodSpec* TemplateSpec(Deployment* d) { return d->mutable_spec()->mutable_template_()->mutable_spec(); }

std::vector<BadCase> BadCases() {
  const std::string kRequired = api::kFieldValueRequired;
  const std::string kInvalid = api::kFieldValueInvalid;
  const std::string kNotSupported = api::kFieldValueNotSupported;
  const std::string kDuplicate = api::kFieldValueDuplicate;
  const std::string kForbidden = api::kFieldValueForbidden;
  return {
      // --- metadata ---
      {"bad name", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_metadata()->set_name("Bad_Name");
       }), true, "metadata.name", kInvalid},
      {"missing namespace", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_metadata()->clear_namespace_();
       }), true, "metadata.namespace", kRequired},
      // --- pods ---
      {"no containers", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->clear_containers();
       }), true, "spec.containers", kRequired},
      {"container name not a label", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->set_name("App_1");
       }), true, "spec.containers[0].name", kInvalid},
      {"duplicate container name", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_containers(1)->set_name("app");
       }), true, "spec.containers[1].name", kDuplicate},
      {"init container reuses a name", Broken<Pod>(kPod, [](Pod* p) {
         auto* init = p->mutable_spec()->add_init_containers();
         init->set_name("app");
         init->set_image("busybox");
         init->set_image_pull_policy("Always");
         init->set_termination_message_policy("File");
       }), true, "spec.initContainers[0].name", kDuplicate},
      {"missing image", Broken<Pod>(kPod, [](Pod* p) { App(p)->clear_image(); }), true,
       "spec.containers[0].image", kRequired},
      {"port out of range", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_ports(0)->set_container_port(70000);
       }), true, "spec.containers[0].ports[0].containerPort", kInvalid},
      {"missing port", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_ports(0)->set_container_port(0);
       }), true, "spec.containers[0].ports[0].containerPort", kRequired},
      {"bad port name", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_ports(0)->set_name("HTTP--port");
       }), true, "spec.containers[0].ports[0].name", kInvalid},
      {"bad protocol", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_ports(0)->set_protocol("ICMP");
       }), true, "spec.containers[0].ports[0].protocol", kNotSupported},
      {"bad restart policy", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->set_restart_policy("Sometimes");
       }), true, "spec.restartPolicy", kNotSupported},
      {"bad image pull policy", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->set_image_pull_policy("Maybe");
       }), true, "spec.containers[0].imagePullPolicy", kNotSupported},
      {"bad dns policy", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->set_dns_policy("Google");
       }), true, "spec.dnsPolicy", kNotSupported},
      {"undefaulted restart policy", Broken<Pod>(kPod, [](Pod*) {}, /*apply_defaults=*/false),
       true, "spec.restartPolicy", kRequired},
      {"bad quantity", Broken<Pod>(kPod, [](Pod* p) {
         (*App(p)->mutable_resources()->mutable_limits())["memory"].set_string("lots");
       }), true, "spec.containers[0].resources.limits[memory]", kInvalid},
      {"negative quantity", Broken<Pod>(kPod, [](Pod* p) {
         (*App(p)->mutable_resources()->mutable_requests())["cpu"].set_string("-1");
       }), true, "spec.containers[0].resources.requests[cpu]", kInvalid},
      {"request above limit", Broken<Pod>(kPod, [](Pod* p) {
         (*App(p)->mutable_resources()->mutable_requests())["memory"].set_string("1Gi");
       }), true, "spec.containers[0].resources.requests[memory]", kInvalid},
      {"unknown resource name", Broken<Pod>(kPod, [](Pod* p) {
         (*App(p)->mutable_resources()->mutable_limits())["gpu"].set_string("1");
       }), true, "spec.containers[0].resources.limits[gpu]", kInvalid},
      {"negative probe period", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_readiness_probe()->set_period_seconds(-1);
       }), true, "spec.containers[0].readinessProbe.periodSeconds", kInvalid},
      {"probe without handler", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_readiness_probe()->clear_http_get();
       }), true, "spec.containers[0].readinessProbe", kRequired},
      {"probe with two handlers", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_readiness_probe()->mutable_exec()->add_command("true");
       }), true, "spec.containers[0].readinessProbe.httpGet", kForbidden},
      {"liveness success threshold", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_liveness_probe()->set_success_threshold(2);
       }), true, "spec.containers[0].livenessProbe.successThreshold", kInvalid},
      {"probe port out of range", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_readiness_probe()->mutable_http_get()->mutable_port()->set_int_val(0);
       }), true, "spec.containers[0].readinessProbe.httpGet.port", kInvalid},
      {"mount of unknown volume", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_volume_mounts(0)->set_name("missing");
       }), true, "spec.containers[0].volumeMounts[0].name", kInvalid},
      {"duplicate volume", Broken<Pod>(kPod, [](Pod* p) {
         *p->mutable_spec()->add_volumes() = p->spec().volumes(0);
       }), true, "spec.volumes[1].name", kDuplicate},
      {"bad env name", Broken<Pod>(kPod, [](Pod* p) {
         App(p)->mutable_env(0)->set_name("1POD");
       }), true, "spec.containers[0].env[0].name", kInvalid},
      {"negative grace period", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->set_termination_grace_period_seconds(-5);
       }), true, "spec.terminationGracePeriodSeconds", kInvalid},
      {"bad toleration operator", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_tolerations(0)->set_operator_("Like");
       }), true, "spec.tolerations[0].operator", kNotSupported},
      {"bad toleration effect", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_tolerations(0)->set_effect("NoRun");
       }), true, "spec.tolerations[0].effect", kNotSupported},
      {"toleration seconds without NoExecute", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_tolerations(0)->set_toleration_seconds(10);
       }), true, "spec.tolerations[0].effect", kInvalid},
      {"exists with a value", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_tolerations(1)->set_value("x");
       }), true, "spec.tolerations[1].operator", kInvalid},
      {"empty key without Exists", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_tolerations(0)->clear_key();
       }), true, "spec.tolerations[0].operator", kInvalid},
      {"bad node selector operator", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_affinity()->mutable_node_affinity()
             ->mutable_required_during_scheduling_ignored_during_execution()
             ->mutable_node_selector_terms(0)->mutable_match_expressions(0)->set_operator_("Near");
       }), true,
       "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
       "nodeSelectorTerms[0].matchExpressions[0].operator", kInvalid},
      {"affinity weight out of range", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_affinity()->mutable_pod_anti_affinity()
             ->mutable_preferred_during_scheduling_ignored_during_execution(0)->set_weight(101);
       }), true, "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
       kInvalid},
      {"affinity term without topology key", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_affinity()->mutable_pod_anti_affinity()
             ->mutable_preferred_during_scheduling_ignored_during_execution(0)
             ->mutable_pod_affinity_term()->clear_topology_key();
       }), true,
       "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]."
       "podAffinityTerm.topologyKey", kRequired},
      {"zero max skew", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->mutable_topology_spread_constraints(0)->set_max_skew(0);
       }), true, "spec.topologySpreadConstraints[0].maxSkew", kInvalid},
      {"bad node selector label", Broken<Pod>(kPod, [](Pod* p) {
         (*p->mutable_spec()->mutable_node_selector())["disktype"] = "s s d";
       }), true, "spec.nodeSelector", kInvalid},
      {"bad preemption policy", Broken<Pod>(kPod, [](Pod* p) {
         p->mutable_spec()->set_preemption_policy("Always");
       }), true, "spec.preemptionPolicy", kNotSupported},
      // --- deployments and replica sets ---
      {"negative replicas", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->set_replicas(-1);
       }), true, "spec.replicas", kInvalid},
      {"missing selector", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->clear_selector();
       }), true, "spec.selector", kRequired},
      {"empty selector", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->mutable_selector()->clear_match_labels();
       }), true, "spec.selector", kInvalid},
      {"selector does not match template", Broken<Deployment>(kDeployment, [](Deployment* d) {
         (*d->mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "apache";
       }), true, "spec.template.metadata.labels", kInvalid},
      {"template restart policy Never", Broken<Deployment>(kDeployment, [](Deployment* d) {
         TemplateSpec(d)->set_restart_policy("Never");
       }), true, "spec.template.spec.restartPolicy", kNotSupported},
      {"template container without image", Broken<Deployment>(kDeployment, [](Deployment* d) {
         TemplateSpec(d)->mutable_containers(0)->clear_image();
       }), true, "spec.template.spec.containers[0].image", kRequired},
      {"surge and unavailable both 0", Broken<Deployment>(kDeployment, [](Deployment* d) {
         auto* rolling_update = d->mutable_spec()->mutable_strategy()->mutable_rolling_update();
         rolling_update->mutable_max_surge()->set_int_val(0);
         rolling_update->mutable_max_unavailable()->set_str_val("0%");
       }), true, "spec.strategy.rollingUpdate.maxUnavailable", kInvalid},
      {"bad percentage", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->mutable_strategy()->mutable_rolling_update()->mutable_max_surge()
             ->set_str_val("25 percent");
       }), true, "spec.strategy.rollingUpdate.maxSurge", kInvalid},
      {"unavailable over 100%", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->mutable_strategy()->mutable_rolling_update()->mutable_max_unavailable()
             ->set_str_val("150%");
       }), true, "spec.strategy.rollingUpdate.maxUnavailable", kInvalid},
      {"recreate with rolling update", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->mutable_strategy()->set_type("Recreate");
       }), true, "spec.strategy.rollingUpdate", kForbidden},
      {"unknown strategy", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->mutable_strategy()->set_type("BlueGreen");
       }), true, "spec.strategy.type", kNotSupported},
      {"negative min ready", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->set_min_ready_seconds(-1);
       }), true, "spec.minReadySeconds", kInvalid},
      {"deadline not above min ready", Broken<Deployment>(kDeployment, [](Deployment* d) {
         d->mutable_spec()->set_min_ready_seconds(600);
       }), true, "spec.progressDeadlineSeconds", kInvalid},
      {"replica set expression mismatch", Broken<ReplicaSet>(kReplicaSet, [](ReplicaSet* r) {
         (*r->mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["canary"] = "true";
       }), true, "spec.template.metadata.labels", kInvalid},
      {"replica set bad selector operator", Broken<ReplicaSet>(kReplicaSet, [](ReplicaSet* r) {
         r->mutable_spec()->mutable_selector()->mutable_match_expressions(0)->set_operator_("Like");
       }), true, "spec.selector.matchExpressions[0].operator", kInvalid},
      {"replica set negative replicas", Broken<ReplicaSet>(kReplicaSet, [](ReplicaSet* r) {
         r->mutable_spec()->set_replicas(-3);
       }), true, "spec.replicas", kInvalid},
      // --- other kinds ---
      {"namespace name not a label", Broken<core::v1::Namespace>(
           R"pb(metadata { name: "dev.example" })pb", [](core::v1::Namespace*) {}),
       false, "metadata.name", kInvalid},
      {"namespace bad finalizer", Broken<core::v1::Namespace>(
           R"pb(metadata { name: "dev" } spec { finalizers: "cleanup" })pb", [](core::v1::Namespace*) {}),
       false, "spec.finalizers", kInvalid},
      {"node bad taint effect", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         n->mutable_spec()->mutable_taints(0)->set_effect("NoRun");
       }), false, "spec.taints[0].effect", kNotSupported},
      {"node duplicate taint", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         *n->mutable_spec()->add_taints() = n->spec().taints(0);
       }), false, "spec.taints[1]", kDuplicate},
      {"node bad cidr", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         n->mutable_spec()->set_pod_cidrs(0, "10.244.1.0/33");
       }), false, "spec.podCIDRs[0]", kInvalid},
      {"node two ipv4 cidrs", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         n->mutable_spec()->set_pod_cidrs(1, "10.245.1.0/24");
       }), false, "spec.podCIDRs", kInvalid},
      {"node bad capacity", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         (*n->mutable_status()->mutable_capacity())["cpu"].set_string("four");
       }), false, "status.capacity[cpu]", kInvalid},
      {"node with namespace", Broken<core::v1::Node>(kNode, [](core::v1::Node* n) {
         n->mutable_metadata()->set_namespace_("default");
       }), false, "metadata.namespace", kForbidden},
      {"config map bad key", Broken<core::v1::ConfigMap>(
           R"pb(metadata { name: "c" namespace: "default" } data { key: "a b" value: "x" })pb",
           [](core::v1::ConfigMap*) {}),
       true, "data[a b]", kInvalid},
      {"config map key in both", Broken<core::v1::ConfigMap>(
           R"pb(metadata { name: "c" namespace: "default" } data { key: "k" value: "x" }
                binary_data { key: "k" value: "y" })pb",
           [](core::v1::ConfigMap*) {}),
       true, "binaryData[k]", kInvalid},
      {"tls secret without key", Broken<core::v1::Secret>(
           R"pb(metadata { name: "s" namespace: "default" } type: "kubernetes.io/tls"
                data { key: "tls.crt" value: "x" })pb",
           [](core::v1::Secret*) {}),
       true, "data[tls.key]", kRequired},
      {"event without involved object", Broken<core::v1::Event>(kEvent, [](core::v1::Event* e) {
         e->clear_involved_object();
       }), true, "involvedObject", kRequired},
      {"event in another namespace", Broken<core::v1::Event>(kEvent, [](core::v1::Event* e) {
         e->mutable_involved_object()->set_namespace_("kube-system");
       }), true, "involvedObject.namespace", kInvalid},
      {"event bad type", Broken<core::v1::Event>(kEvent, [](core::v1::Event* e) {
         e->set_type("Info");
       }), true, "type", kNotSupported},
      {"lease zero duration", Broken<coordination::v1::Lease>(
           R"pb(metadata { name: "l" namespace: "default" } spec { lease_duration_seconds: 0 })pb",
           [](coordination::v1::Lease*) {}),
       true, "spec.leaseDurationSeconds", kInvalid},
      {"user priority too high", Broken<scheduling::v1::PriorityClass>(
           R"pb(metadata { name: "urgent" } value: 1000000001)pb", [](scheduling::v1::PriorityClass*) {}),
       false, "value", kForbidden},
      {"reserved priority class name", Broken<scheduling::v1::PriorityClass>(
           R"pb(metadata { name: "system-important" } value: 10)pb", [](scheduling::v1::PriorityClass*) {}),
       false, "metadata.name", kForbidden},
      {"system priority class wrong value", Broken<scheduling::v1::PriorityClass>(
           R"pb(metadata { name: "system-node-critical" } value: 10)pb", [](scheduling::v1::PriorityClass*) {}),
       false, "metadata.name", kForbidden},
      {"priority class bad preemption", Broken<scheduling::v1::PriorityClass>(
           R"pb(metadata { name: "p" } value: 10 preemption_policy: "Sometimes")pb",
           [](scheduling::v1::PriorityClass*) {}),
       false, "preemptionPolicy", kNotSupported},
      {"binding without node", Broken<core::v1::Binding>(
           R"pb(metadata { name: "p" namespace: "default" } target { kind: "Node" })pb",
           [](core::v1::Binding*) {}),
       true, "target.name", kRequired},
      {"binding to a non-node", Broken<core::v1::Binding>(
           R"pb(metadata { name: "p" namespace: "default" } target { kind: "Pod" name: "x" })pb",
           [](core::v1::Binding*) {}),
       true, "target.kind", kNotSupported},
  };
}

TEST(ValidateTest, BadObjectsReportTheFieldAndType) {
  for (const BadCase& c : BadCases()) {
    std::unique_ptr<Message> object = c.make();
    FieldErrors errs = Validate(*object, c.namespaced);
    EXPECT_TRUE(HasError(errs, c.field, c.type))
        << c.name << ": want " << c.type << " at " << c.field << ", got: " << FormatFieldErrors(errs);
  }
}

TEST(ValidateTest, SelectorMismatchReadsAsKubernetesDoes) {
  auto deployment = Defaulted<Deployment>(kDeployment);
  (*deployment.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "web";
  FieldErrors errs = Validate(deployment, true);
  ASSERT_EQ(errs.size(), 1u) << FormatFieldErrors(errs);
  std::string text = api::FormatFieldError(errs[0]);
  EXPECT_EQ(text.rfind("spec.template.metadata.labels: Invalid value: ", 0), 0u) << text;
  // Go's %#v of the label map, as Kubernetes shows it.
  EXPECT_EQ(errs[0].bad_value, "map[string]string{\"app\":\"web\"}");
  EXPECT_NE(text.find(": `selector` does not match template `labels`"), std::string::npos) << text;
}

TEST(ValidateTest, RequestAboveLimitNamesTheLimit) {
  auto pod = Defaulted<Pod>(kPod);
  (*App(&pod)->mutable_resources()->mutable_requests())["cpu"].set_string("1500m");
  FieldErrors errs = Validate(pod, true);
  ASSERT_EQ(errs.size(), 1u) << FormatFieldErrors(errs);
  EXPECT_EQ(errs[0].detail, "must be less than or equal to cpu limit of 1");
  EXPECT_EQ(errs[0].bad_value, "1500m");
}

TEST(ValidateTest, EqualQuantitiesWrittenDifferentlyAreNotAboveTheLimit) {
  auto pod = Defaulted<Pod>(kPod);
  (*App(&pod)->mutable_resources()->mutable_requests())["cpu"].set_string("1000m");
  (*App(&pod)->mutable_resources()->mutable_requests())["memory"].set_string("134217728");
  FieldErrors errs = Validate(pod, true);
  EXPECT_TRUE(errs.empty()) << FormatFieldErrors(errs);
}

TEST(ValidateTest, OnlyAlwaysRestartPolicyForWorkloadTemplates) {
  auto pod = Defaulted<Pod>(kPod);
  pod.mutable_spec()->set_restart_policy("Never");
  EXPECT_TRUE(Validate(pod, true).empty());  // fine for a bare pod
  auto deployment = Defaulted<Deployment>(kDeployment);
  TemplateSpec(&deployment)->set_restart_policy("OnFailure");
  FieldErrors errs = Validate(deployment, true);
  ASSERT_EQ(errs.size(), 1u) << FormatFieldErrors(errs);
  EXPECT_EQ(errs[0].detail, "supported values: \"Always\"");
}

// --- updates ---

TEST(ValidateUpdateTest, DeploymentSelectorIsImmutable) {
  auto old = Defaulted<Deployment>(kDeployment);
  auto updated = old;
  updated.mutable_spec()->set_replicas(5);  // fine
  EXPECT_TRUE(ValidateUpdate(updated, old).empty());

  (*updated.mutable_spec()->mutable_selector()->mutable_match_labels())["tier"] = "web";
  (*updated.mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["tier"] = "web";
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "spec.selector", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
  EXPECT_EQ(errs.size(), 1u) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, ReplicaSetSelectorIsImmutable) {
  auto old = Defaulted<ReplicaSet>(kReplicaSet);
  auto updated = old;
  updated.mutable_spec()->mutable_selector()->mutable_match_expressions()->RemoveLast();
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "spec.selector", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, NameAndNamespaceAreImmutable) {
  auto old = Defaulted<Pod>(kPod);
  auto updated = old;
  updated.mutable_metadata()->set_name("other");
  updated.mutable_metadata()->set_namespace_("other");
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "metadata.name", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
  EXPECT_TRUE(HasError(errs, "metadata.namespace", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, PodImagesMayChange) {
  auto old = Defaulted<Pod>(kPod);
  auto updated = old;
  App(&updated)->set_image("registry.example.com/frontend:v2.4.0");
  (*updated.mutable_metadata()->mutable_labels())["version"] = "v2.4.0";
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(errs.empty()) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, OtherPodSpecChangesAreForbidden) {
  auto old = Defaulted<Pod>(kPod);
  auto updated = old;
  App(&updated)->mutable_ports(0)->set_container_port(9090);
  FieldErrors errs = ValidateUpdate(updated, old);
  ASSERT_TRUE(HasError(errs, "spec", api::kFieldValueForbidden)) << FormatFieldErrors(errs);
  EXPECT_EQ(errs[0].detail.rfind("pod updates may not change fields other than "
                                 "`spec.containers[*].image`",
                                 0),
            0u)
      << errs[0].detail;

  auto moved = old;
  moved.mutable_spec()->set_node_name("worker-2");  // binding is the only way to set a node
  EXPECT_TRUE(HasError(ValidateUpdate(moved, old), "spec", api::kFieldValueForbidden));

  auto fewer = old;
  fewer.mutable_spec()->mutable_containers()->RemoveLast();
  EXPECT_TRUE(HasError(ValidateUpdate(fewer, old), "spec.containers", api::kFieldValueForbidden));
}

TEST(ValidateUpdateTest, PodTolerationsMayOnlyBeAdded) {
  auto old = Defaulted<Pod>(kPod);
  auto added = old;
  auto* toleration = added.mutable_spec()->add_tolerations();
  toleration->set_key("example.com/gpu");
  toleration->set_operator_("Exists");
  toleration->set_effect("NoSchedule");
  added.mutable_spec()->mutable_tolerations(1)->set_toleration_seconds(60);  // may change
  FieldErrors errs = ValidateUpdate(added, old);
  EXPECT_TRUE(errs.empty()) << FormatFieldErrors(errs);

  auto removed = old;
  removed.mutable_spec()->mutable_tolerations()->RemoveLast();
  EXPECT_TRUE(HasError(ValidateUpdate(removed, old), "spec.tolerations", api::kFieldValueForbidden));
}

TEST(ValidateUpdateTest, PodActiveDeadlineMayBeSetOrLowered) {
  auto old = Defaulted<Pod>(kPod);
  auto set = old;
  set.mutable_spec()->set_active_deadline_seconds(600);
  EXPECT_TRUE(ValidateUpdate(set, old).empty());
  auto lowered = set;
  lowered.mutable_spec()->set_active_deadline_seconds(300);
  EXPECT_TRUE(ValidateUpdate(lowered, set).empty());
  EXPECT_TRUE(HasError(ValidateUpdate(set, lowered), "spec.activeDeadlineSeconds",
                       api::kFieldValueInvalid));
  EXPECT_TRUE(HasError(ValidateUpdate(old, set), "spec.activeDeadlineSeconds",
                       api::kFieldValueInvalid));
}

TEST(ValidateUpdateTest, ImmutableConfigMapKeepsItsData) {
  auto old = Parse<core::v1::ConfigMap>(R"pb(
    metadata { name: "c" namespace: "default" } immutable: true data { key: "k" value: "v" }
  )pb");
  auto updated = old;
  (*updated.mutable_data())["k"] = "changed";
  updated.set_immutable(false);
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "data", api::kFieldValueForbidden)) << FormatFieldErrors(errs);
  EXPECT_TRUE(HasError(errs, "immutable", api::kFieldValueForbidden)) << FormatFieldErrors(errs);

  auto mutable_old = old;
  mutable_old.clear_immutable();
  EXPECT_TRUE(ValidateUpdate(updated, mutable_old).empty());
}

TEST(ValidateUpdateTest, SecretTypeIsImmutableAndImmutableDataStays) {
  auto old = Defaulted<core::v1::Secret>(R"pb(
    metadata { name: "s" namespace: "default" } immutable: true data { key: "k" value: "v" }
  )pb");
  auto updated = old;
  updated.set_type("kubernetes.io/basic-auth");
  (*updated.mutable_data())["username"] = "admin";
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "type", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
  EXPECT_TRUE(HasError(errs, "data", api::kFieldValueForbidden)) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, PriorityClassValueIsFixed) {
  auto old = Defaulted<scheduling::v1::PriorityClass>(R"pb(metadata { name: "p" } value: 10)pb");
  auto updated = old;
  updated.set_value(20);
  updated.set_preemption_policy("Never");
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(HasError(errs, "value", api::kFieldValueForbidden)) << FormatFieldErrors(errs);
  EXPECT_TRUE(HasError(errs, "preemptionPolicy", api::kFieldValueInvalid)) << FormatFieldErrors(errs);
}

TEST(ValidateUpdateTest, NodePodCIDRsAreSetOnce) {
  auto unassigned = Defaulted<core::v1::Node>(R"pb(metadata { name: "worker-1" })pb");
  auto assigned = Defaulted<core::v1::Node>(kNode);
  EXPECT_TRUE(ValidateUpdate(assigned, unassigned).empty())
      << FormatFieldErrors(ValidateUpdate(assigned, unassigned));
  auto changed = assigned;
  changed.mutable_spec()->set_pod_cidrs(0, "10.244.9.0/24");
  EXPECT_TRUE(HasError(ValidateUpdate(changed, assigned), "spec.podCIDRs", api::kFieldValueForbidden));
}

TEST(ValidateUpdateTest, ClusterScopedKindsNeedNoNamespace) {
  auto old = Defaulted<core::v1::Namespace>(R"pb(metadata { name: "dev" })pb");
  auto updated = old;
  (*updated.mutable_metadata()->mutable_labels())["team"] = "a";
  FieldErrors errs = ValidateUpdate(updated, old);
  EXPECT_TRUE(errs.empty()) << FormatFieldErrors(errs);
}

}  // namespace
}  // namespace capstan::apiserver::registry
