#include "lib/client/client.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"
#include "lib/api/yaml.h"

namespace capstan::client {
namespace {

namespace apiv1 = capstan::api::v1;
using google::protobuf::Message;

bool FileExists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

void SetRef(const api::ResourceInfo& info, absl::string_view ns, apiv1::ResourceRef* ref) {
  ref->set_group(info.group);
  ref->set_version(info.version);
  ref->set_resource(info.resource);
  // Cluster-scoped kinds have no namespace, whatever the caller passed.
  if (info.namespaced) ref->set_namespace_(std::string(ns));
}

std::unique_ptr<grpc::ClientContext> NewContext(absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

// Makes one unary call whose answer is an object, and returns the object's bytes.
template <typename Request>
absl::StatusOr<std::string> CallForObject(
    apiv1::Resources::Stub* stub,
    grpc::Status (apiv1::Resources::Stub::*method)(grpc::ClientContext*, const Request&,
                                                   apiv1::ObjectResponse*),
    const Request& request, absl::Duration timeout) {
  apiv1::ObjectResponse response;
  auto context = NewContext(timeout);
  absl::Status s = api::FromGrpcStatus((stub->*method)(context.get(), request, &response));
  if (!s.ok()) return s;
  return std::move(*response.mutable_object());
}

apiv1::PatchType ToProto(PatchType type) {
  return type == PatchType::kJson ? apiv1::JSON_PATCH : apiv1::MERGE_PATCH;
}

// Decodes a PROTOBUF answer into a new message of info's kind.
absl::StatusOr<ObjectPtr> NewObject(const api::ResourceInfo& info,
                                    absl::StatusOr<std::string> bytes) {
  if (!bytes.ok()) return bytes.status();
  ObjectPtr object = api::Scheme::BuiltIn().New(info);
  if (!object->ParseFromString(*bytes)) {
    return absl::DataLossError(absl::StrCat("the server sent an undecodable ", info.kind));
  }
  return object;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configuration

std::string DefaultConfigPath() {
  if (const char* path = getenv("CAPSTAN_CONFIG"); path != nullptr && *path != '\0') return path;
  if (const char* home = getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.capstan/config");
  }
  return "";
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  if (!FileExists(path)) return absl::NotFoundError(absl::StrCat("no config file at ", path));
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::string contents = text.str();
  absl::StatusOr<std::vector<nlohmann::json>> docs = api::ParseYamlDocuments(contents);
  if (!docs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", docs.status().message()));
  }
  Config config;
  if (docs->empty()) return config;  // an empty file keeps the defaults
  const nlohmann::json& doc = docs->front();
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a mapping"));
  }
  if (auto it = doc.find("server"); it != doc.end()) {
    if (!it->is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": server: expected HOST:PORT"));
    }
    config.server = it->get<std::string>();
  }
  return config;
}

absl::StatusOr<std::string> ServerAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  absl::StatusOr<Config> config = LoadConfig();
  if (!config.ok()) {
    return absl::NotFoundError(absl::StrCat("no --server flag and no client config: ",
                                            config.status().message()));
  }
  return config->server;
}

absl::StatusOr<Config> LoadConfig() {
  std::vector<std::string> candidates;
  if (const char* path = getenv("CAPSTAN_CONFIG"); path != nullptr && *path != '\0') {
    candidates.push_back(path);
  }
  if (const char* home = getenv("HOME"); home != nullptr && *home != '\0') {
    candidates.push_back(absl::StrCat(home, "/.capstan/config"));
  }
  for (const std::string& path : candidates) {
    if (FileExists(path)) return LoadConfigFile(path);
  }
  return absl::NotFoundError("no configuration: neither $CAPSTAN_CONFIG nor ~/.capstan/config exists");
}

absl::Status SaveConfig(const std::string& path, const Config& config) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
  std::ofstream out(path, std::ios::trunc);
  out << api::PrintYaml(nlohmann::json{{"server", config.server}});
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Resources

absl::StatusOr<const api::ResourceInfo*> ResourceFor(
    const google::protobuf::Descriptor* descriptor) {
  for (const api::ResourceInfo& info : api::Scheme::BuiltIn().resources()) {
    if (info.descriptor == descriptor) return &info;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(descriptor->full_name(), " is not a kind the API serves"));
}

std::string NamespaceFor(const api::ResourceInfo& info, const Message& object) {
  if (!info.namespaced) return "";
  const std::string& ns = api::Meta(object).namespace_();
  return ns.empty() ? "default" : ns;
}

// ---------------------------------------------------------------------------------------------
// Watch streams

RawWatchStream::RawWatchStream(std::unique_ptr<grpc::ClientContext> context,
                               std::unique_ptr<grpc::ClientReader<apiv1::WatchResponse>> reader)
    : context_(std::move(context)), reader_(std::move(reader)) {}

RawWatchStream::RawWatchStream(absl::Status status) : done_(true), status_(std::move(status)) {}

RawWatchStream::~RawWatchStream() {
  if (reader_ != nullptr && !done_) {
    // A ClientReader must be finished before it is destroyed; cancelling makes Finish prompt.
    context_->TryCancel();
    apiv1::WatchResponse discarded;
    while (reader_->Read(&discarded)) {
    }
    reader_->Finish();
  }
}

bool RawWatchStream::Next(RawWatchEvent* event) {
  while (pending_.empty()) {
    if (done_) return false;
    apiv1::WatchResponse response;
    if (!reader_->Read(&response)) {
      done_ = true;
      absl::Status status = api::FromGrpcStatus(reader_->Finish());
      absl::MutexLock lock(&mu_);
      status_ = std::move(status);
      return false;
    }
    for (apiv1::WatchEvent& e : *response.mutable_events()) {
      pending_.push_back(RawWatchEvent{std::move(*e.mutable_type()), std::move(*e.mutable_object())});
    }
  }
  *event = std::move(pending_.front());
  pending_.pop_front();
  return true;
}

void RawWatchStream::Cancel() {
  if (context_ != nullptr) context_->TryCancel();
}

absl::Status RawWatchStream::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

// ---------------------------------------------------------------------------------------------
// Client

Client::Client(std::shared_ptr<grpc::Channel> channel)
    : channel_(std::move(channel)), stub_(apiv1::Resources::NewStub(channel_)) {}

std::unique_ptr<Client> Client::Connect(const std::string& address) {
  grpc::ChannelArguments args;
  // gRPC's reconnect backoff grows to 120 s by default; controllers and informers must be back
  // within seconds of an apiserver restart.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Each client its own connection: channels with equal arguments otherwise share one subchannel,
  // and a new client would inherit another's failure backoff.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return std::make_unique<Client>(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

absl::Status Client::DecodeProtobuf(const std::string& bytes, Message* out) {
  if (!out->ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat("the server sent an undecodable ", out->GetDescriptor()->name()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Client::CreateRaw(const api::ResourceInfo& info, absl::string_view ns,
                                              absl::string_view object, apiv1::Encoding encoding,
                                              const WriteOptions& options) {
  apiv1::CreateRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_object(std::string(object));
  request.set_encoding(encoding);
  request.set_dry_run(options.dry_run);
  return CallForObject(stub_.get(), &apiv1::Resources::Stub::Create, request, options.timeout);
}

absl::StatusOr<std::string> Client::GetRaw(const api::ResourceInfo& info, absl::string_view ns,
                                           absl::string_view name, apiv1::Encoding encoding,
                                           const GetOptions& options) {
  apiv1::GetRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_name(std::string(name));
  request.set_encoding(encoding);
  return CallForObject(stub_.get(), &apiv1::Resources::Stub::Get, request, options.timeout);
}

absl::StatusOr<ObjectList<std::string>> Client::ListRaw(const api::ResourceInfo& info,
                                                        absl::string_view ns,
                                                        apiv1::Encoding encoding,
                                                        const ListOptions& options) {
  apiv1::ListRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_label_selector(options.label_selector);
  request.set_field_selector(options.field_selector);
  request.set_limit(options.limit);
  request.set_continue_(options.continue_token);
  request.set_resource_version(options.resource_version);
  request.set_encoding(encoding);
  apiv1::ListResponse response;
  auto context = NewContext(options.timeout);
  absl::Status s = api::FromGrpcStatus(stub_->List(context.get(), request, &response));
  if (!s.ok()) return s;
  ObjectList<std::string> list;
  list.items.reserve(response.items_size());
  for (std::string& item : *response.mutable_items()) list.items.push_back(std::move(item));
  list.resource_version = response.resource_version();
  list.continue_token = response.continue_();
  if (response.has_remaining_item_count()) {
    list.remaining_item_count = response.remaining_item_count();
  }
  return list;
}

absl::StatusOr<std::string> Client::UpdateRaw(const api::ResourceInfo& info, absl::string_view ns,
                                              absl::string_view object, apiv1::Encoding encoding,
                                              bool status, const WriteOptions& options) {
  apiv1::UpdateRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_object(std::string(object));
  request.set_encoding(encoding);
  request.set_dry_run(options.dry_run);
  return CallForObject(stub_.get(),
                       status ? &apiv1::Resources::Stub::UpdateStatus
                              : &apiv1::Resources::Stub::Update,
                       request, options.timeout);
}

absl::StatusOr<std::string> Client::PatchRaw(const api::ResourceInfo& info, absl::string_view ns,
                                             absl::string_view name, PatchType type,
                                             absl::string_view patch_json,
                                             apiv1::Encoding encoding,
                                             const PatchOptions& options) {
  apiv1::PatchRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_name(std::string(name));
  request.set_type(ToProto(type));
  request.set_patch(std::string(patch_json));
  request.set_encoding(encoding);
  request.set_status(options.status);
  request.set_dry_run(options.dry_run);
  return CallForObject(stub_.get(), &apiv1::Resources::Stub::Patch, request, options.timeout);
}

absl::StatusOr<std::string> Client::DeleteRaw(const api::ResourceInfo& info, absl::string_view ns,
                                              absl::string_view name, apiv1::Encoding encoding,
                                              const DeleteOptions& options) {
  apiv1::DeleteRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_name(std::string(name));
  request.mutable_preconditions()->set_uid(options.precondition_uid);
  request.mutable_preconditions()->set_resource_version(options.precondition_resource_version);
  if (options.grace_period_seconds.has_value()) {
    request.set_grace_period_seconds(*options.grace_period_seconds);
  }
  request.set_propagation_policy(options.propagation_policy);
  request.set_encoding(encoding);
  request.set_dry_run(options.dry_run);
  return CallForObject(stub_.get(), &apiv1::Resources::Stub::Delete, request, options.timeout);
}

std::unique_ptr<RawWatchStream> Client::WatchRaw(const api::ResourceInfo& info,
                                                 absl::string_view ns, apiv1::Encoding encoding,
                                                 const WatchOptions& options) {
  apiv1::WatchRequest request;
  SetRef(info, ns, request.mutable_resource());
  request.set_label_selector(options.label_selector);
  request.set_field_selector(options.field_selector);
  request.set_resource_version(options.resource_version);
  request.set_send_initial_events(options.send_initial_events);
  request.set_allow_bookmarks(options.allow_bookmarks);
  request.set_encoding(encoding);
  auto context = NewContext(options.timeout);
  auto reader = stub_->Watch(context.get(), request);
  return std::make_unique<RawWatchStream>(std::move(context), std::move(reader));
}

absl::StatusOr<apiv1::DiscoveryResponse> Client::Discover(const GetOptions& options) {
  apiv1::DiscoveryResponse response;
  auto context = NewContext(options.timeout);
  absl::Status s =
      api::FromGrpcStatus(stub_->Discover(context.get(), apiv1::DiscoveryRequest(), &response));
  if (!s.ok()) return s;
  return response;
}

// --- Untyped messages: thin over the raw calls, always PROTOBUF on the wire. -------------------

absl::StatusOr<ObjectPtr> Client::Create(const api::ResourceInfo& info, const Message& object,
                                         const WriteOptions& options) {
  return NewObject(info, CreateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                                   apiv1::PROTOBUF, options));
}

absl::StatusOr<ObjectPtr> Client::Get(const api::ResourceInfo& info, absl::string_view ns,
                                      absl::string_view name, const GetOptions& options) {
  return NewObject(info, GetRaw(info, ns, name, apiv1::PROTOBUF, options));
}

absl::StatusOr<ObjectList<ObjectPtr>> Client::List(const api::ResourceInfo& info,
                                                   absl::string_view ns,
                                                   const ListOptions& options) {
  absl::StatusOr<ObjectList<std::string>> raw = ListRaw(info, ns, apiv1::PROTOBUF, options);
  if (!raw.ok()) return raw.status();
  ObjectList<ObjectPtr> list;
  list.items.reserve(raw->items.size());
  for (std::string& item : raw->items) {
    absl::StatusOr<ObjectPtr> object = NewObject(info, std::move(item));
    if (!object.ok()) return object.status();
    list.items.push_back(std::move(*object));
  }
  list.resource_version = std::move(raw->resource_version);
  list.continue_token = std::move(raw->continue_token);
  list.remaining_item_count = raw->remaining_item_count;
  return list;
}

absl::StatusOr<ObjectPtr> Client::Update(const api::ResourceInfo& info, const Message& object,
                                         const WriteOptions& options) {
  return NewObject(info, UpdateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                                   apiv1::PROTOBUF, /*status=*/false, options));
}

absl::StatusOr<ObjectPtr> Client::UpdateStatus(const api::ResourceInfo& info,
                                               const Message& object,
                                               const WriteOptions& options) {
  return NewObject(info, UpdateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                                   apiv1::PROTOBUF, /*status=*/true, options));
}

absl::StatusOr<ObjectPtr> Client::Patch(const api::ResourceInfo& info, absl::string_view ns,
                                        absl::string_view name, PatchType type,
                                        absl::string_view patch_json,
                                        const PatchOptions& options) {
  return NewObject(info, PatchRaw(info, ns, name, type, patch_json, apiv1::PROTOBUF, options));
}

absl::StatusOr<ObjectPtr> Client::Delete(const api::ResourceInfo& info, absl::string_view ns,
                                         absl::string_view name, const DeleteOptions& options) {
  return NewObject(info, DeleteRaw(info, ns, name, apiv1::PROTOBUF, options));
}

std::unique_ptr<WatchStream<ObjectPtr>> Client::Watch(const api::ResourceInfo& info,
                                                      absl::string_view ns,
                                                      const WatchOptions& options) {
  // A copy: the caller's ResourceInfo need not outlive the stream.
  return std::make_unique<WatchStream<ObjectPtr>>(
      WatchRaw(info, ns, apiv1::PROTOBUF, options),
      [resource = info](const std::string& bytes) { return NewObject(resource, bytes); });
}

}  // namespace capstan::client
