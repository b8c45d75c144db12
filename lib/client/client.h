// A typed client for Capstan's Resource API, in the spirit of client-go's clientset.
//
//   auto client = capstan::client::Client::Connect("127.0.0.1:6443");
//   absl::StatusOr<capstan::core::v1::Pod> pod = client->Get<capstan::core::v1::Pod>("default", "web");
//   if (capstan::api::Reason(pod.status()) == "NotFound") ...
//
// Typed calls take and return kind messages (capstan::core::v1::Pod, capstan::apps::v1::Deployment,
// ...); the resource they address comes from api::Scheme::BuiltIn() by the message's descriptor,
// and objects travel in the PROTOBUF encoding. Tools that have no static type use the untyped
// calls, which take an api::ResourceInfo and carry objects either as google::protobuf::Message or
// as raw bytes in a chosen encoding (JSON text, for example).
//
// Errors are absl::Status values that carry the server's Kubernetes Status as payload (see
// lib/api/errors.h): api::Reason(err) == "NotFound", "Conflict", "Invalid", ... Client-side failures
// (no connection, deadline) are plain absl::Status values with the gRPC code.
//
// A Client is thread-safe; WatchStream is used by one reader thread, but Cancel() may be called
// from any thread.
#ifndef CAPSTAN_LIB_CLIENT_CLIENT_H_
#define CAPSTAN_LIB_CLIENT_CLIENT_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/scheme.h"
#include "proto/resource.grpc.pb.h"
#include "proto/resource.pb.h"

namespace capstan::client {

// ---------------------------------------------------------------------------------------------
// Configuration

struct Config {
  std::string server = "127.0.0.1:6443";
};

// The configuration file a tool uses: $CAPSTAN_CONFIG when set, else $HOME/.capstan/config.
// Empty when neither variable is set.
std::string DefaultConfigPath();
// Reads $CAPSTAN_CONFIG, else $HOME/.capstan/config (YAML: `server: HOST:PORT`).
// NotFound when neither exists; InvalidArgument when the file does not parse.
absl::StatusOr<Config> LoadConfig();
// Reads one configuration file. NotFound when it does not exist.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);
// The apiserver address a service or tool uses: `flag` when set, else the client config's server.
// NotFound (naming both) when neither is there.
absl::StatusOr<std::string> ServerAddress(const std::string& flag);
// Writes config as YAML, creating the parent directory if needed.
absl::Status SaveConfig(const std::string& path, const Config& config);

// ---------------------------------------------------------------------------------------------
// Options: they mirror the fields of proto/resource.proto's requests.

inline constexpr absl::Duration kDefaultTimeout = absl::Seconds(30);

enum class PatchType { kMerge, kJson };

struct GetOptions {
  absl::Duration timeout = kDefaultTimeout;
};

struct WriteOptions {
  bool dry_run = false;
  absl::Duration timeout = kDefaultTimeout;
};

struct ListOptions {
  std::string label_selector;  // "app=nginx,tier in (web, api),!canary"
  std::string field_selector;  // "metadata.name=x,spec.nodeName!="
  int64_t limit = 0;           // 0: no limit
  std::string continue_token;
  // "": the most recent state; "0": any state the server has; otherwise exactly this revision.
  std::string resource_version;
  absl::Duration timeout = kDefaultTimeout;
};

struct PatchOptions {
  bool status = false;  // patch the status subresource
  bool dry_run = false;
  absl::Duration timeout = kDefaultTimeout;
};

struct DeleteOptions {
  std::string precondition_uid;
  std::string precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
  std::string propagation_policy;  // "Orphan", "Background" (the server's default), "Foreground"
  bool dry_run = false;
  absl::Duration timeout = kDefaultTimeout;
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  // Events after this revision; "" or "0" first sends the current state as ADDED events.
  std::string resource_version;
  bool send_initial_events = false;
  bool allow_bookmarks = false;
  // A watch is long-lived: no deadline unless one is asked for.
  absl::Duration timeout = absl::InfiniteDuration();
};

// ---------------------------------------------------------------------------------------------
// Results

template <typename T>
struct ObjectList {
  std::vector<T> items;
  std::string resource_version;
  std::string continue_token;  // non-empty when more items remain (ListOptions::limit)
  std::optional<int64_t> remaining_item_count;
};

template <typename T>
struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK
  T object;          // for BOOKMARK: only metadata.resourceVersion (and annotations) are set
};

// One event as it came from the server: the object as bytes in the watch's encoding.
using RawWatchEvent = WatchEvent<std::string>;

// The events of one Watch call, one at a time (the server batches several per message).
class RawWatchStream {
 public:
  RawWatchStream(std::unique_ptr<grpc::ClientContext> context,
                 std::unique_ptr<grpc::ClientReader<capstan::api::v1::WatchResponse>> reader);
  // An already finished stream (for a request that failed before reaching the server).
  explicit RawWatchStream(absl::Status status);
  ~RawWatchStream();

  // Blocks until the next event. False when the stream ended: status() says why (CANCELLED after
  // Cancel(); Expired when the resourceVersion is too old; ...).
  bool Next(RawWatchEvent* event);
  // Ends the stream; Next returns false soon after. Safe from any thread.
  void Cancel();
  absl::Status status() const;

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<capstan::api::v1::WatchResponse>> reader_;
  std::deque<RawWatchEvent> pending_;
  bool done_ = false;
  mutable absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// Decodes a RawWatchStream's objects into T.
template <typename T>
class WatchStream {
 public:
  using Decoder = std::function<absl::StatusOr<T>(const std::string& bytes)>;
  WatchStream(std::unique_ptr<RawWatchStream> raw, Decoder decode)
      : raw_(std::move(raw)), decode_(std::move(decode)) {}

  // Blocks until the next event; false at the end of the stream (then see status()).
  bool Next(WatchEvent<T>* event) {
    if (!decode_error_.ok()) return false;
    RawWatchEvent raw;
    if (!raw_->Next(&raw)) return false;
    absl::StatusOr<T> object = decode_(raw.object);
    if (!object.ok()) {
      decode_error_ = object.status();
      raw_->Cancel();
      return false;
    }
    event->type = std::move(raw.type);
    event->object = std::move(*object);
    return true;
  }
  void Cancel() { raw_->Cancel(); }
  absl::Status status() const { return decode_error_.ok() ? raw_->status() : decode_error_; }

 private:
  std::unique_ptr<RawWatchStream> raw_;
  Decoder decode_;
  absl::Status decode_error_;
};

using ObjectPtr = std::unique_ptr<google::protobuf::Message>;

// The resource a kind message belongs to, from api::Scheme::BuiltIn(). InvalidArgument when the
// message is not a built-in kind.
absl::StatusOr<const api::ResourceInfo*> ResourceFor(const google::protobuf::Descriptor* descriptor);

// The namespace a write of object goes to: its metadata.namespace, "default" when that is empty,
// "" for cluster-scoped kinds.
std::string NamespaceFor(const api::ResourceInfo& info, const google::protobuf::Message& object);

// ---------------------------------------------------------------------------------------------
// The client

class Client {
 public:
  explicit Client(std::shared_ptr<grpc::Channel> channel);
  // An insecure channel to address ("host:port").
  static std::unique_ptr<Client> Connect(const std::string& address);

  // --- Typed ------------------------------------------------------------------------------------
  // The namespace of writes comes from the object (see NamespaceFor); ns "" in List/Watch means
  // all namespaces.

  template <typename T>
  absl::StatusOr<T> Create(const T& object, const WriteOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return CreateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                       capstan::api::v1::PROTOBUF, options);
    });
  }

  template <typename T>
  absl::StatusOr<T> Get(absl::string_view ns, absl::string_view name,
                        const GetOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return GetRaw(info, ns, name, capstan::api::v1::PROTOBUF, options);
    });
  }

  template <typename T>
  absl::StatusOr<ObjectList<T>> List(absl::string_view ns, const ListOptions& options = {}) {
    absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(T::descriptor());
    if (!info.ok()) return info.status();
    absl::StatusOr<ObjectList<std::string>> raw =
        ListRaw(**info, ns, capstan::api::v1::PROTOBUF, options);
    if (!raw.ok()) return raw.status();
    ObjectList<T> list;
    list.items.resize(raw->items.size());
    for (size_t i = 0; i < raw->items.size(); ++i) {
      // Each item's bytes are freed once decoded, so a page is not held twice (bytes + objects).
      const std::string bytes = std::move(raw->items[i]);
      absl::Status s = DecodeProtobuf(bytes, &list.items[i]);
      if (!s.ok()) return s;
    }
    list.resource_version = std::move(raw->resource_version);
    list.continue_token = std::move(raw->continue_token);
    list.remaining_item_count = raw->remaining_item_count;
    return list;
  }

  template <typename T>
  absl::StatusOr<T> Update(const T& object, const WriteOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return UpdateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                       capstan::api::v1::PROTOBUF, /*status=*/false, options);
    });
  }

  template <typename T>
  absl::StatusOr<T> UpdateStatus(const T& object, const WriteOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return UpdateRaw(info, NamespaceFor(info, object), object.SerializeAsString(),
                       capstan::api::v1::PROTOBUF, /*status=*/true, options);
    });
  }

  template <typename T>
  absl::StatusOr<T> Patch(absl::string_view ns, absl::string_view name, PatchType type,
                          absl::string_view patch_json, const PatchOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return PatchRaw(info, ns, name, type, patch_json, capstan::api::v1::PROTOBUF, options);
    });
  }

  // The object as deleted, or as it now is when finalizers or a grace period keep it.
  template <typename T>
  absl::StatusOr<T> Delete(absl::string_view ns, absl::string_view name,
                           const DeleteOptions& options = {}) {
    return Typed<T>([&](const api::ResourceInfo& info) {
      return DeleteRaw(info, ns, name, capstan::api::v1::PROTOBUF, options);
    });
  }

  template <typename T>
  std::unique_ptr<WatchStream<T>> Watch(absl::string_view ns, const WatchOptions& options = {}) {
    absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(T::descriptor());
    std::unique_ptr<RawWatchStream> raw =
        info.ok() ? WatchRaw(**info, ns, capstan::api::v1::PROTOBUF, options)
                  : std::make_unique<RawWatchStream>(info.status());
    return std::make_unique<WatchStream<T>>(std::move(raw), [](const std::string& bytes) {
      T object;
      absl::Status s = DecodeProtobuf(bytes, &object);
      if (!s.ok()) return absl::StatusOr<T>(s);
      return absl::StatusOr<T>(std::move(object));
    });
  }

  // --- Untyped, as messages (created with Scheme::New, PROTOBUF on the wire) ------------------

  absl::StatusOr<ObjectPtr> Create(const api::ResourceInfo& info,
                                   const google::protobuf::Message& object,
                                   const WriteOptions& options = {});
  absl::StatusOr<ObjectPtr> Get(const api::ResourceInfo& info, absl::string_view ns,
                                absl::string_view name, const GetOptions& options = {});
  absl::StatusOr<ObjectList<ObjectPtr>> List(const api::ResourceInfo& info, absl::string_view ns,
                                             const ListOptions& options = {});
  absl::StatusOr<ObjectPtr> Update(const api::ResourceInfo& info,
                                   const google::protobuf::Message& object,
                                   const WriteOptions& options = {});
  absl::StatusOr<ObjectPtr> UpdateStatus(const api::ResourceInfo& info,
                                         const google::protobuf::Message& object,
                                         const WriteOptions& options = {});
  absl::StatusOr<ObjectPtr> Patch(const api::ResourceInfo& info, absl::string_view ns,
                                  absl::string_view name, PatchType type,
                                  absl::string_view patch_json, const PatchOptions& options = {});
  absl::StatusOr<ObjectPtr> Delete(const api::ResourceInfo& info, absl::string_view ns,
                                   absl::string_view name, const DeleteOptions& options = {});
  std::unique_ptr<WatchStream<ObjectPtr>> Watch(const api::ResourceInfo& info,
                                                absl::string_view ns,
                                                const WatchOptions& options = {});

  // --- Untyped, as bytes in a chosen encoding (JSON: Kubernetes' JSON text) --------------------
  // Answers come in the request's encoding.

  absl::StatusOr<std::string> CreateRaw(const api::ResourceInfo& info, absl::string_view ns,
                                        absl::string_view object,
                                        capstan::api::v1::Encoding encoding,
                                        const WriteOptions& options = {});
  absl::StatusOr<std::string> GetRaw(const api::ResourceInfo& info, absl::string_view ns,
                                     absl::string_view name, capstan::api::v1::Encoding encoding,
                                     const GetOptions& options = {});
  absl::StatusOr<ObjectList<std::string>> ListRaw(const api::ResourceInfo& info,
                                                  absl::string_view ns,
                                                  capstan::api::v1::Encoding encoding,
                                                  const ListOptions& options = {});
  absl::StatusOr<std::string> UpdateRaw(const api::ResourceInfo& info, absl::string_view ns,
                                        absl::string_view object,
                                        capstan::api::v1::Encoding encoding, bool status,
                                        const WriteOptions& options = {});
  absl::StatusOr<std::string> PatchRaw(const api::ResourceInfo& info, absl::string_view ns,
                                       absl::string_view name, PatchType type,
                                       absl::string_view patch_json,
                                       capstan::api::v1::Encoding encoding,
                                       const PatchOptions& options = {});
  absl::StatusOr<std::string> DeleteRaw(const api::ResourceInfo& info, absl::string_view ns,
                                        absl::string_view name,
                                        capstan::api::v1::Encoding encoding,
                                        const DeleteOptions& options = {});
  std::unique_ptr<RawWatchStream> WatchRaw(const api::ResourceInfo& info, absl::string_view ns,
                                           capstan::api::v1::Encoding encoding,
                                           const WatchOptions& options = {});

  absl::StatusOr<capstan::api::v1::DiscoveryResponse> Discover(const GetOptions& options = {});

  capstan::api::v1::Resources::Stub* stub() { return stub_.get(); }

 private:
  static absl::Status DecodeProtobuf(const std::string& bytes, google::protobuf::Message* out);

  // Resolves T's resource, runs call, and decodes its PROTOBUF answer into T.
  template <typename T, typename Call>
  absl::StatusOr<T> Typed(Call call) {
    absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(T::descriptor());
    if (!info.ok()) return info.status();
    absl::StatusOr<std::string> bytes = call(**info);
    if (!bytes.ok()) return bytes.status();
    T object;
    absl::Status s = DecodeProtobuf(*bytes, &object);
    if (!s.ok()) return s;
    return object;
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<capstan::api::v1::Resources::Stub> stub_;
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_CLIENT_H_
