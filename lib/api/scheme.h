// The Scheme: which kinds exist, how they are addressed, and generic access to the parts every
// kind shares (apiVersion, kind, metadata).
//
// Built-in kinds are protobuf messages (proto/*.proto) that follow the field-number convention of
// proto/meta.proto: 1 apiVersion, 2 kind, 3 metadata. That lets the API server, clients and tools
// handle any kind through google::protobuf::Message without a switch over types.
#ifndef CAPSTAN_LIB_API_SCHEME_H_
#define CAPSTAN_LIB_API_SCHEME_H_

#include <memory>
#include <functional>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "proto/meta.pb.h"

namespace capstan::api {

struct ResourceInfo {
  std::string group;     // "" for the core group
  std::string version;   // "v1"
  std::string resource;  // plural, lower case: "deployments"
  std::string singular;  // "deployment"
  std::string kind;      // "Deployment"
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> subresources;  // "status", "binding"
  // Field selector labels beyond metadata.name and metadata.namespace, as JSON paths.
  std::vector<std::string> selectable_fields;
  const google::protobuf::Descriptor* descriptor = nullptr;

  std::string ApiVersion() const;         // "apps/v1", or "v1" for the core group
  std::string QualifiedResource() const;  // "deployments.apps", or "pods"
  bool HasStatus() const;                 // the kind has a status subresource
};

class Scheme {
 public:
  // The built-in kinds: v1 Namespace, Pod, Node, Event, ConfigMap, Secret, Binding; apps/v1
  // Deployment, ReplicaSet; coordination.k8s.io/v1 Lease; scheduling.k8s.io/v1 PriorityClass.
  static const Scheme& BuiltIn();

  const std::vector<ResourceInfo>& resources() const { return resources_; }
  // nullptr when unknown.
  const ResourceInfo* ByResource(absl::string_view group, absl::string_view version,
                                 absl::string_view resource) const;
  const ResourceInfo* ByKind(absl::string_view api_version, absl::string_view kind) const;
  // What a person types: plural, singular, kind or short name, optionally qualified by group
  // ("po", "pods", "Pod", "deploy", "deployments.apps"). Case-insensitive.
  const ResourceInfo* Lookup(absl::string_view name) const;
  // A new, empty message of the kind.
  std::unique_ptr<google::protobuf::Message> New(const ResourceInfo& info) const;

 private:
  explicit Scheme(std::vector<ResourceInfo> resources) : resources_(std::move(resources)) {}
  std::vector<ResourceInfo> resources_;
};

// Generic access to the shared fields. object must be a kind message (field 3 is ObjectMeta).
const capstan::meta::v1::ObjectMeta& Meta(const google::protobuf::Message& object);
capstan::meta::v1::ObjectMeta* MutableMeta(google::protobuf::Message* object);
std::string ApiVersionOf(const google::protobuf::Message& object);
std::string KindOf(const google::protobuf::Message& object);
void SetTypeMeta(const ResourceInfo& info, google::protobuf::Message* object);

// The value of a scalar field named by its JSON path ("spec.nodeName", "status.phase",
// "involvedObject.name"), as the text a field selector compares with (bools as "true"/"false",
// numbers in decimal). An unset field reads as "". nullopt when the path names no scalar field.
std::optional<std::string> FieldValue(const google::protobuf::Message& object,
                                      absl::string_view json_path);

// FieldValue read from the protobuf encoding of a `type` message instead of the decoded message:
// the same answer, without decoding the rest of the object (what the apiserver needs when it
// loads every stored object at start-up). Malformed bytes read as nullopt.
std::optional<std::string> FieldValueFromWire(const google::protobuf::Descriptor* type,
                                              absl::string_view encoded,
                                              absl::string_view json_path);

// Calls fn with the bytes of every occurrence of the embedded message `number` in a message's
// encoding, in order (a parser merges them). False when the encoding is malformed.
bool ForEachEmbedded(absl::string_view encoded, int number,
                     const std::function<void(absl::string_view)>& fn);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_SCHEME_H_
