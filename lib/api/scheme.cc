#include "lib/api/scheme.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace capstan::api {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr int kApiVersionField = 1;
constexpr int kKindField = 2;
constexpr int kMetadataField = 3;

const Descriptor* FindType(const char* full_name) {
  return google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(full_name);
}

std::vector<ResourceInfo> BuiltInResources() {
  // Field selectors per kind are the ones Kubernetes' registries accept.
  std::vector<ResourceInfo> r = {
      {"", "v1", "namespaces", "namespace", "Namespace", false, {"ns"}, {"status", "finalize"},
       {"status.phase"}, FindType("capstan.core.v1.Namespace")},
      {"", "v1", "pods", "pod", "Pod", true, {"po"}, {"status", "binding"},
       {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"},
       FindType("capstan.core.v1.Pod")},
      {"", "v1", "nodes", "node", "Node", false, {"no"}, {"status"}, {"spec.unschedulable"},
       FindType("capstan.core.v1.Node")},
      {"", "v1", "events", "event", "Event", true, {"ev"}, {},
       {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"},
       FindType("capstan.core.v1.Event")},
      {"", "v1", "configmaps", "configmap", "ConfigMap", true, {"cm"}, {}, {},
       FindType("capstan.core.v1.ConfigMap")},
      {"", "v1", "secrets", "secret", "Secret", true, {}, {}, {"type"},
       FindType("capstan.core.v1.Secret")},
      {"apps", "v1", "deployments", "deployment", "Deployment", true, {"deploy"}, {"status"}, {},
       FindType("capstan.apps.v1.Deployment")},
      {"apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, {"rs"}, {"status"},
       {"status.replicas"}, FindType("capstan.apps.v1.ReplicaSet")},
      {"coordination.k8s.io", "v1", "leases", "lease", "Lease", true, {}, {}, {},
       FindType("capstan.coordination.v1.Lease")},
      {"scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", false,
       {"pc"}, {}, {}, FindType("capstan.scheduling.v1.PriorityClass")},
  };
  // A kind whose message is missing from the binary is a build error, not a runtime surprise.
  for (const ResourceInfo& info : r) {
    if (info.descriptor == nullptr) {
      fprintf(stderr, "scheme: no message linked for kind %s\n", info.kind.c_str());
      abort();
    }
  }
  return r;
}

const Message& SubMessage(const Message& object, int number) {
  const FieldDescriptor* f = object.GetDescriptor()->FindFieldByNumber(number);
  return object.GetReflection()->GetMessage(object, f);
}

std::string StringField(const Message& object, int number) {
  const FieldDescriptor* f = object.GetDescriptor()->FindFieldByNumber(number);
  return object.GetReflection()->GetString(object, f);
}

const FieldDescriptor* FieldByJsonName(const Descriptor* d, absl::string_view name) {
  for (int i = 0; i < d->field_count(); ++i) {
    if (d->field(i)->json_name() == name) return d->field(i);
  }
  return nullptr;
}

}  // namespace

std::string ResourceInfo::ApiVersion() const {
  return group.empty() ? version : absl::StrCat(group, "/", version);
}

std::string ResourceInfo::QualifiedResource() const {
  return group.empty() ? resource : absl::StrCat(resource, ".", group);
}

bool ResourceInfo::HasStatus() const {
  for (const std::string& s : subresources) {
    if (s == "status") return true;
  }
  return false;
}

const Scheme& Scheme::BuiltIn() {
  static const Scheme* scheme = new Scheme(BuiltInResources());
  return *scheme;
}

const ResourceInfo* Scheme::ByResource(absl::string_view group, absl::string_view version,
                                       absl::string_view resource) const {
  for (const ResourceInfo& info : resources_) {
    if (info.group == group && info.version == version && info.resource == resource) return &info;
  }
  return nullptr;
}

const ResourceInfo* Scheme::ByKind(absl::string_view api_version, absl::string_view kind) const {
  for (const ResourceInfo& info : resources_) {
    if (info.kind == kind && info.ApiVersion() == api_version) return &info;
  }
  return nullptr;
}

const ResourceInfo* Scheme::Lookup(absl::string_view name) const {
  std::string lower = absl::AsciiStrToLower(name);
  absl::string_view wanted = lower;
  absl::string_view group;
  bool qualified = false;
  if (size_t dot = wanted.find('.'); dot != absl::string_view::npos) {
    group = wanted.substr(dot + 1);
    wanted = wanted.substr(0, dot);
    qualified = true;
  }
  for (const ResourceInfo& info : resources_) {
    if (qualified && info.group != group) continue;
    if (info.resource == wanted || info.singular == wanted ||
        absl::AsciiStrToLower(info.kind) == wanted) {
      return &info;
    }
    for (const std::string& s : info.short_names) {
      if (s == wanted) return &info;
    }
  }
  return nullptr;
}

std::unique_ptr<Message> Scheme::New(const ResourceInfo& info) const {
  return std::unique_ptr<Message>(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(info.descriptor)->New());
}

const capstan::meta::v1::ObjectMeta& Meta(const Message& object) {
  return static_cast<const capstan::meta::v1::ObjectMeta&>(SubMessage(object, kMetadataField));
}

capstan::meta::v1::ObjectMeta* MutableMeta(Message* object) {
  const FieldDescriptor* f = object->GetDescriptor()->FindFieldByNumber(kMetadataField);
  return static_cast<capstan::meta::v1::ObjectMeta*>(
      object->GetReflection()->MutableMessage(object, f));
}

std::string ApiVersionOf(const Message& object) { return StringField(object, kApiVersionField); }

std::string KindOf(const Message& object) { return StringField(object, kKindField); }

void SetTypeMeta(const ResourceInfo& info, Message* object) {
  const Descriptor* d = object->GetDescriptor();
  const Reflection* r = object->GetReflection();
  r->SetString(object, d->FindFieldByNumber(kApiVersionField), info.ApiVersion());
  r->SetString(object, d->FindFieldByNumber(kKindField), info.kind);
}

namespace {

// The fields a JSON path ("spec.nodeName") names, from `type` down: embedded messages, then a
// scalar. Empty when the path names anything else (a repeated field, a message, no field).
using FieldPath = absl::InlinedVector<const FieldDescriptor*, 4>;

FieldPath FindScalarFieldPath(const Descriptor* type, absl::string_view json_path) {
  FieldPath path;
  const Descriptor* current = type;
  std::vector<absl::string_view> parts = absl::StrSplit(json_path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* f = FieldByJsonName(current, parts[i]);
    if (f == nullptr || f->is_repeated()) return {};
    const bool last = i + 1 == parts.size();
    if ((f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) == last) return {};
    if (!last) current = f->message_type();
    path.push_back(f);
  }
  return path;
}

// FindScalarFieldPath, remembered: the apiserver asks it for every selectable field of every
// object it caches, on each write and for each stored object at start-up (splitting the path and
// scanning fields by JSON name each time was ~5% of a create's handler). Callers pass paths from
// code (kinds' selectable fields, indexers); the memo stops growing at kMaxRemembered anyway.
FieldPath ScalarFieldPath(const Descriptor* type, absl::string_view json_path) {
  using Paths = absl::flat_hash_map<std::string, FieldPath>;
  static constexpr size_t kMaxRemembered = 4096;
  static absl::Mutex mu;
  static auto* by_type = new absl::flat_hash_map<const Descriptor*, Paths>();
  static size_t remembered = 0;  // Guarded by mu.
  {
    absl::ReaderMutexLock lock(&mu);
    if (auto t = by_type->find(type); t != by_type->end()) {
      if (auto p = t->second.find(json_path); p != t->second.end()) return p->second;
    }
  }
  FieldPath path = FindScalarFieldPath(type, json_path);
  absl::MutexLock lock(&mu);
  if (remembered < kMaxRemembered && (*by_type)[type].try_emplace(json_path, path).second) {
    ++remembered;
  }
  return path;
}

}  // namespace

std::optional<std::string> FieldValue(const Message& object, absl::string_view json_path) {
  const FieldPath path = ScalarFieldPath(object.GetDescriptor(), json_path);
  if (path.empty()) return std::nullopt;
  const Message* current = &object;
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    current = &current->GetReflection()->GetMessage(*current, path[i]);
  }
  const FieldDescriptor* f = path.back();
  const Reflection* r = current->GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: return r->GetString(*current, f);
    case FieldDescriptor::CPPTYPE_BOOL: return r->GetBool(*current, f) ? "true" : "false";
    case FieldDescriptor::CPPTYPE_INT32: return absl::StrCat(r->GetInt32(*current, f));
    case FieldDescriptor::CPPTYPE_INT64: return absl::StrCat(r->GetInt64(*current, f));
    case FieldDescriptor::CPPTYPE_UINT32: return absl::StrCat(r->GetUInt32(*current, f));
    case FieldDescriptor::CPPTYPE_UINT64: return absl::StrCat(r->GetUInt64(*current, f));
    default: return std::nullopt;
  }
}

namespace {

using google::protobuf::internal::WireFormatLite;

// Calls fn for every occurrence of field `number` in a message's encoding, in order, with the
// varint value (varint fields) or the bytes (length-delimited fields); other wire types of that
// field are skipped. False when the encoding is malformed.
bool ForEachOccurrence(absl::string_view encoded, int number,
                       const std::function<void(uint64_t varint, absl::string_view bytes)>& fn) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(encoded.data()),
                                            static_cast<int>(encoded.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (WireFormatLite::GetTagFieldNumber(tag) == number) {
      switch (WireFormatLite::GetTagWireType(tag)) {
        case WireFormatLite::WIRETYPE_VARINT: {
          uint64_t value;
          if (!in.ReadVarint64(&value)) return false;
          fn(value, {});
          continue;
        }
        case WireFormatLite::WIRETYPE_LENGTH_DELIMITED: {
          uint32_t size;
          if (!in.ReadVarint32(&size)) return false;
          const size_t at = static_cast<size_t>(in.CurrentPosition());
          if (at + size > encoded.size() || !in.Skip(static_cast<int>(size))) return false;
          fn(0, encoded.substr(at, size));
          continue;
        }
        default:
          break;
      }
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
  return in.ConsumedEntireMessage();
}

}  // namespace

bool ForEachEmbedded(absl::string_view encoded, int number,
                     const std::function<void(absl::string_view)>& fn) {
  return ForEachOccurrence(encoded, number,
                           [&](uint64_t, absl::string_view bytes) { fn(bytes); });
}

std::optional<std::string> FieldValueFromWire(const Descriptor* type, absl::string_view encoded,
                                              absl::string_view json_path) {
  const FieldPath path = ScalarFieldPath(type, json_path);
  if (path.empty()) return std::nullopt;
  const FieldDescriptor* leaf = path.back();
  // An unset field reads as its default, as through reflection. Wire types other than varint and
  // length-delimited (fixed, zigzag) do not occur in selectable fields: decode for those.
  std::string value;
  switch (leaf->type()) {
    case FieldDescriptor::TYPE_STRING: break;
    case FieldDescriptor::TYPE_BOOL: value = "false"; break;
    case FieldDescriptor::TYPE_INT32:
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_UINT32:
    case FieldDescriptor::TYPE_UINT64: value = "0"; break;
    default: {
      std::unique_ptr<Message> object(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(type)->New());
      if (!object->ParseFromArray(encoded.data(), static_cast<int>(encoded.size()))) {
        return std::nullopt;
      }
      return FieldValue(*object, json_path);
    }
  }
  // The occurrences of each embedded message on the way (a parser merges them), then the last
  // occurrence of the leaf among them wins, as in a parse.
  std::vector<absl::string_view> level = {encoded};
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    std::vector<absl::string_view> next;
    for (absl::string_view message : level) {
      if (!ForEachEmbedded(message, path[i]->number(),
                           [&](absl::string_view bytes) { next.push_back(bytes); })) {
        return std::nullopt;
      }
    }
    level = std::move(next);
  }
  for (absl::string_view message : level) {
    bool ok = ForEachOccurrence(message, leaf->number(), [&](uint64_t v, absl::string_view bytes) {
      switch (leaf->type()) {
        case FieldDescriptor::TYPE_STRING: value = std::string(bytes); break;
        case FieldDescriptor::TYPE_BOOL: value = v != 0 ? "true" : "false"; break;
        case FieldDescriptor::TYPE_INT32: value = absl::StrCat(static_cast<int32_t>(v)); break;
        case FieldDescriptor::TYPE_INT64: value = absl::StrCat(static_cast<int64_t>(v)); break;
        case FieldDescriptor::TYPE_UINT32: value = absl::StrCat(static_cast<uint32_t>(v)); break;
        default: value = absl::StrCat(v); break;
      }
    });
    if (!ok) return std::nullopt;
  }
  return value;
}

}  // namespace capstan::api
