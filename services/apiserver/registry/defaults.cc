#include "services/apiserver/registry/defaults.h"

#include <algorithm>
#include <string>

#include "lib/api/taints.h"

namespace capstan::apiserver::registry {
namespace {

using capstan::core::v1::Container;
using capstan::core::v1::PodSpec;
using capstan::core::v1::Probe;

void SetProbeDefaults(Probe* probe) {
  if (probe->timeout_seconds() == 0) probe->set_timeout_seconds(1);
  if (probe->period_seconds() == 0) probe->set_period_seconds(10);
  if (probe->success_threshold() == 0) probe->set_success_threshold(1);
  if (probe->failure_threshold() == 0) probe->set_failure_threshold(3);
  if (probe->has_http_get()) {
    auto* http_get = probe->mutable_http_get();
    if (http_get->path().empty()) http_get->set_path("/");
    if (http_get->scheme().empty()) http_get->set_scheme("HTTP");
  }
}

void SetContainerDefaults(Container* container) {
  if (container->image_pull_policy().empty()) {
    container->set_image_pull_policy(DefaultImagePullPolicy(container->image()));
  }
  if (container->termination_message_path().empty()) {
    container->set_termination_message_path("/dev/termination-log");
  }
  if (container->termination_message_policy().empty()) {
    container->set_termination_message_policy("File");
  }
  for (auto& port : *container->mutable_ports()) {
    if (port.protocol().empty()) port.set_protocol("TCP");
  }
  for (auto& env : *container->mutable_env()) {
    if (env.has_value_from() && env.value_from().has_field_ref() &&
        env.value_from().field_ref().api_version().empty()) {
      env.mutable_value_from()->mutable_field_ref()->set_api_version("v1");
    }
  }
  if (container->has_liveness_probe()) SetProbeDefaults(container->mutable_liveness_probe());
  if (container->has_readiness_probe()) SetProbeDefaults(container->mutable_readiness_probe());
  if (container->has_startup_probe()) SetProbeDefaults(container->mutable_startup_probe());
}

// With the host's network, a container port is the host port (Kubernetes' defaultHostNetworkPorts).
void SetHostNetworkPorts(google::protobuf::RepeatedPtrField<Container>* containers) {
  for (auto& container : *containers) {
    for (auto& port : *container.mutable_ports()) {
      if (port.host_port() == 0) port.set_host_port(port.container_port());
    }
  }
}

// Requests default to limits, per resource, when only the limit is set (SetDefaults_Pod). This is
// done for pods only, not templates, as Kubernetes does: the pods made from a template get it.
void SetRequestsFromLimits(Container* container) {
  if (!container->has_resources()) return;
  auto* resources = container->mutable_resources();
  for (const auto& [name, limit] : resources->limits()) {
    if (!resources->requests().contains(name)) (*resources->mutable_requests())[name] = limit;
  }
}

constexpr int32_t kDefaultVolumeMode = 0644;  // Kubernetes' ConfigMap/Secret volume default

void SetVolumeDefaults(capstan::core::v1::Volume* volume) {
  // A volume with no source is an emptyDir (SetDefaults_Volume).
  if (!volume->has_empty_dir() && !volume->has_config_map() && !volume->has_secret() &&
      !volume->has_host_path() && !volume->has_persistent_volume_claim()) {
    volume->mutable_empty_dir();
  }
  if (volume->has_config_map() && !volume->config_map().has_default_mode()) {
    volume->mutable_config_map()->set_default_mode(kDefaultVolumeMode);
  }
  if (volume->has_secret() && !volume->secret().has_default_mode()) {
    volume->mutable_secret()->set_default_mode(kDefaultVolumeMode);
  }
  if (volume->has_host_path() && !volume->host_path().has_type()) {
    volume->mutable_host_path()->set_type("");
  }
}

}  // namespace

const char* DefaultImagePullPolicy(const std::string& image) {
  if (image.find('@') != std::string::npos) return "IfNotPresent";  // pinned by digest
  // The tag follows the last ':' after the last '/' ("registry:5000/app" has a port, no tag).
  size_t last_slash = image.rfind('/');
  size_t colon = image.rfind(':');
  bool has_tag = colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash);
  if (!has_tag) return "Always";  // no tag means :latest
  return image.compare(colon + 1, std::string::npos, "latest") == 0 ? "Always" : "IfNotPresent";
}

void SetPodSpecDefaults(PodSpec* spec) {
  if (spec->dns_policy().empty()) spec->set_dns_policy("ClusterFirst");
  if (spec->restart_policy().empty()) spec->set_restart_policy("Always");
  if (spec->scheduler_name().empty()) spec->set_scheduler_name("default-scheduler");
  if (!spec->has_termination_grace_period_seconds()) {
    spec->set_termination_grace_period_seconds(30);
  }
  if (spec->host_network()) {
    SetHostNetworkPorts(spec->mutable_init_containers());
    SetHostNetworkPorts(spec->mutable_containers());
  }
  for (auto& container : *spec->mutable_init_containers()) SetContainerDefaults(&container);
  for (auto& container : *spec->mutable_containers()) SetContainerDefaults(&container);
  for (auto& volume : *spec->mutable_volumes()) SetVolumeDefaults(&volume);
  // An empty operator means Equal; spelling it out makes stored tolerations explicit. A toleration
  // with neither key nor value keeps its empty operator so validation reports it as written.
  for (auto& toleration : *spec->mutable_tolerations()) {
    if (toleration.operator_().empty() && (!toleration.key().empty() || !toleration.value().empty())) {
      toleration.set_operator_("Equal");
    }
  }
}

void SetPodDefaults(capstan::core::v1::Pod* pod) {
  PodSpec* spec = pod->mutable_spec();
  SetPodSpecDefaults(spec);
  for (auto& container : *spec->mutable_init_containers()) SetRequestsFromLimits(&container);
  for (auto& container : *spec->mutable_containers()) SetRequestsFromLimits(&container);
}

void AddDefaultTolerations(capstan::core::v1::Pod* pod, const DefaultTolerationSeconds& seconds) {
  bool tolerates_not_ready = false;
  bool tolerates_unreachable = false;
  for (const auto& toleration : pod->spec().tolerations()) {
    const bool no_execute =
        toleration.effect().empty() || toleration.effect() == api::kTaintEffectNoExecute;
    if (!no_execute) continue;
    if (toleration.key().empty() || toleration.key() == api::kTaintNodeNotReady) {
      tolerates_not_ready = true;
    }
    if (toleration.key().empty() || toleration.key() == api::kTaintNodeUnreachable) {
      tolerates_unreachable = true;
    }
  }
  auto add = [pod](const char* key, int64_t toleration_seconds) {
    capstan::core::v1::Toleration* toleration = pod->mutable_spec()->add_tolerations();
    toleration->set_key(key);
    toleration->set_operator_("Exists");
    toleration->set_effect(api::kTaintEffectNoExecute);
    toleration->set_toleration_seconds(toleration_seconds);
  };
  if (!tolerates_not_ready) add(api::kTaintNodeNotReady, seconds.not_ready);
  if (!tolerates_unreachable) add(api::kTaintNodeUnreachable, seconds.unreachable);
}

void SetDeploymentDefaults(capstan::apps::v1::Deployment* deployment) {
  auto* spec = deployment->mutable_spec();
  if (!spec->has_replicas()) spec->set_replicas(1);
  auto* strategy = spec->mutable_strategy();
  if (strategy->type().empty()) strategy->set_type("RollingUpdate");
  if (strategy->type() == "RollingUpdate") {
    auto* rolling_update = strategy->mutable_rolling_update();
    if (!rolling_update->has_max_unavailable()) {
      rolling_update->mutable_max_unavailable()->set_str_val("25%");
    }
    if (!rolling_update->has_max_surge()) rolling_update->mutable_max_surge()->set_str_val("25%");
  }
  if (!spec->has_revision_history_limit()) spec->set_revision_history_limit(10);
  if (!spec->has_progress_deadline_seconds()) spec->set_progress_deadline_seconds(600);
  SetPodSpecDefaults(spec->mutable_template_()->mutable_spec());
}

void SetReplicaSetDefaults(capstan::apps::v1::ReplicaSet* replica_set) {
  auto* spec = replica_set->mutable_spec();
  if (!spec->has_replicas()) spec->set_replicas(1);
  SetPodSpecDefaults(spec->mutable_template_()->mutable_spec());
}

void SetNamespaceDefaults(capstan::core::v1::Namespace* ns) {
  // Kubernetes adds the "kubernetes" finalizer when a namespace is created (its strategy's
  // PrepareForCreate). A namespace without a phase has not been stored yet; one that has a phase
  // may be terminating, and its finalizer must stay removed once the namespace controller is done.
  auto* status = ns->mutable_status();
  if (status->phase().empty()) {
    auto* finalizers = ns->mutable_spec()->mutable_finalizers();
    if (std::find(finalizers->begin(), finalizers->end(), "kubernetes") == finalizers->end()) {
      finalizers->Add("kubernetes");
    }
    status->set_phase("Active");
  }
}

void SetNodeDefaults(capstan::core::v1::Node* node) {
  // Allocatable defaults to capacity (SetDefaults_NodeStatus).
  if (!node->has_status()) return;
  auto* status = node->mutable_status();
  if (status->allocatable().empty() && !status->capacity().empty()) {
    *status->mutable_allocatable() = status->capacity();
  }
}

void SetSecretDefaults(capstan::core::v1::Secret* secret) {
  if (secret->type().empty()) secret->set_type("Opaque");
  // stringData is write-only: Kubernetes merges it into data (overriding same-named keys) when it
  // decodes the object, so it is never stored or returned.
  for (const auto& [key, value] : secret->string_data()) (*secret->mutable_data())[key] = value;
  secret->clear_string_data();
}

void SetLeaseDefaults(capstan::coordination::v1::Lease*) {
  // Kubernetes defines no defaults for Lease: an unset holder or duration means "not held".
}

void SetPriorityClassDefaults(capstan::scheduling::v1::PriorityClass* priority_class) {
  if (!priority_class->has_preemption_policy()) {
    priority_class->set_preemption_policy("PreemptLowerPriority");
  }
}

void SetEventDefaults(capstan::core::v1::Event*) {
  // core/v1 Event has no defaults in Kubernetes; timestamps and counts are the recorder's job.
}

void SetDefaults(google::protobuf::Message* object) {
  if (auto* pod = dynamic_cast<capstan::core::v1::Pod*>(object)) {
    SetPodDefaults(pod);
  } else if (auto* deployment = dynamic_cast<capstan::apps::v1::Deployment*>(object)) {
    SetDeploymentDefaults(deployment);
  } else if (auto* replica_set = dynamic_cast<capstan::apps::v1::ReplicaSet*>(object)) {
    SetReplicaSetDefaults(replica_set);
  } else if (auto* ns = dynamic_cast<capstan::core::v1::Namespace*>(object)) {
    SetNamespaceDefaults(ns);
  } else if (auto* node = dynamic_cast<capstan::core::v1::Node*>(object)) {
    SetNodeDefaults(node);
  } else if (auto* secret = dynamic_cast<capstan::core::v1::Secret*>(object)) {
    SetSecretDefaults(secret);
  } else if (auto* lease = dynamic_cast<capstan::coordination::v1::Lease*>(object)) {
    SetLeaseDefaults(lease);
  } else if (auto* priority_class = dynamic_cast<capstan::scheduling::v1::PriorityClass*>(object)) {
    SetPriorityClassDefaults(priority_class);
  } else if (auto* event = dynamic_cast<capstan::core::v1::Event*>(object)) {
    SetEventDefaults(event);
  }
}

}  // namespace capstan::apiserver::registry
