// Kubernetes' defaulting for the built-in kinds (pkg/apis/core/v1/defaults.go,
// pkg/apis/apps/v1/defaults.go and friends): what the API server fills in before validating and
// storing an object, so that stored objects are complete and clients read back what a real
// Kubernetes API server would return.
//
// Defaulting only fills fields that are unset, so applying it twice changes nothing.
#ifndef CAPSTAN_SERVICES_APISERVER_REGISTRY_DEFAULTS_H_
#define CAPSTAN_SERVICES_APISERVER_REGISTRY_DEFAULTS_H_

#include <cstdint>

#include "google/protobuf/message.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::apiserver::registry {

// Applies the defaults of the object's kind; kinds without defaults are left alone.
void SetDefaults(google::protobuf::Message* object);

// The per-kind pieces, for callers that hold a concrete type.
void SetPodDefaults(capstan::core::v1::Pod* pod);
// Defaults of a pod spec wherever it appears (Pod, and the templates of workloads).
void SetPodSpecDefaults(capstan::core::v1::PodSpec* spec);
void SetDeploymentDefaults(capstan::apps::v1::Deployment* deployment);
void SetReplicaSetDefaults(capstan::apps::v1::ReplicaSet* replica_set);
void SetNamespaceDefaults(capstan::core::v1::Namespace* ns);
void SetNodeDefaults(capstan::core::v1::Node* node);
void SetSecretDefaults(capstan::core::v1::Secret* secret);
void SetLeaseDefaults(capstan::coordination::v1::Lease* lease);
void SetPriorityClassDefaults(capstan::scheduling::v1::PriorityClass* priority_class);
void SetEventDefaults(capstan::core::v1::Event* event);

// Kubernetes' DefaultTolerationSeconds admission plugin: a pod that does not tolerate the
// node.kubernetes.io/not-ready or node.kubernetes.io/unreachable NoExecute taint gets a toleration
// for it (operator Exists) bounded by these seconds, so its pods leave a failed node after that
// long instead of at once (the node lifecycle controller's taint-based eviction). A toleration
// with that key or an empty key, and effect NoExecute or empty, counts as tolerating already.
struct DefaultTolerationSeconds {
  int64_t not_ready = 300;    // capstan-apiserver --default_not_ready_toleration_seconds
  int64_t unreachable = 300;  // capstan-apiserver --default_unreachable_toleration_seconds
};
void AddDefaultTolerations(capstan::core::v1::Pod* pod, const DefaultTolerationSeconds& seconds);

// The pull policy Kubernetes picks for an image: Always for ":latest" or no tag, IfNotPresent for
// any other tag or a digest ("nginx@sha256:...").
const char* DefaultImagePullPolicy(const std::string& image);

}  // namespace capstan::apiserver::registry

#endif  // CAPSTAN_SERVICES_APISERVER_REGISTRY_DEFAULTS_H_
