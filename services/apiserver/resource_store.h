// ResourceStore: the generic registry behind every kind (Kubernetes' genericregistry.Store).
//
// It turns API verbs into conditional writes on the Store and reads from the watch caches:
// server-set metadata (uid, creationTimestamp, generation), the status subresource, optimistic
// concurrency on resourceVersion, generateName, finalizers and graceful deletion, namespace
// lifecycle, and built-in defaulting and validation (services/apiserver/registry).
//
// Storage layout: the object of kind K named N in namespace NS is at key "<resource.group>/NS/N"
// ("nodes//node-1" for cluster-scoped kinds), stored as the kind's protobuf without
// metadata.resourceVersion, which is the key's mod revision and is stamped on read.
#ifndef CAPSTAN_SERVICES_APISERVER_RESOURCE_STORE_H_
#define CAPSTAN_SERVICES_APISERVER_RESOURCE_STORE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "lib/api/scheme.h"
#include "lib/storage/store.h"
#include "proto/core_v1.pb.h"
#include "services/apiserver/registry/defaults.h"
#include "services/apiserver/watch_cache.h"

namespace capstan::scheduling::v1 {
class PriorityClass;
}  // namespace capstan::scheduling::v1

namespace capstan::apiserver {

struct DeleteOptions {
  std::string precondition_uid;
  std::string precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
  std::string propagation_policy;  // Orphan, Background (default), Foreground
  bool dry_run = false;
};

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;
  std::string continue_token;
  std::string resource_version;  // "" most recent, "0" any, else exact
};

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;
  bool send_initial_events = false;
  bool allow_bookmarks = false;
  size_t capacity = 10000;  // queued events before a slow watcher is cut off
};

enum class PatchType { kMerge, kJson };

class ResourceStore {
 public:
  struct Options {
    size_t watch_window = 10000;  // recent events kept in memory per resource
    size_t max_object_bytes = 1536 * 1024;
    // The DefaultTolerationSeconds admission of pods (see registry/defaults.h).
    registry::DefaultTolerationSeconds default_toleration_seconds;
  };

  // store must outlive this. Start() must be called before anything else.
  ResourceStore(storage::Store* store, const api::Scheme& scheme, Options options);
  ~ResourceStore();

  // Loads every resource's objects into its cache, starts following commits, and makes sure the
  // system namespaces (default, kube-system, kube-public, kube-node-lease) and the built-in
  // PriorityClasses (system-cluster-critical, system-node-critical) exist.
  absl::Status Start();

  // Writes come in two forms. The asynchronous one (XxxAsync) calls `done` with the result once
  // the write is durable (or refused), from the store's commit thread or, when nothing had to be
  // written, from the caller's; `done` must be short and must not block. It lets the server keep
  // hundreds of writes in flight without a thread per write. The plain form waits for it.
  using Done = std::function<void(absl::StatusOr<ObjectPtr>)>;

  absl::StatusOr<ObjectPtr> Create(const api::ResourceInfo& info, const std::string& ns,
                                   std::unique_ptr<google::protobuf::Message> object, bool dry_run);
  void CreateAsync(const api::ResourceInfo& info, const std::string& ns,
                   std::unique_ptr<google::protobuf::Message> object, bool dry_run, Done done);
  absl::StatusOr<ObjectPtr> Get(const api::ResourceInfo& info, const std::string& ns,
                                const std::string& name);
  absl::StatusOr<ListResult> List(const api::ResourceInfo& info, const std::string& ns,
                                  const ListOptions& options);
  // Replaces the object (status: only its status, through the status subresource).
  absl::StatusOr<ObjectPtr> Update(const api::ResourceInfo& info, const std::string& ns,
                                   std::unique_ptr<google::protobuf::Message> object, bool status,
                                   bool dry_run);
  void UpdateAsync(const api::ResourceInfo& info, const std::string& ns,
                   std::unique_ptr<google::protobuf::Message> object, bool status, bool dry_run,
                   Done done);
  absl::StatusOr<ObjectPtr> Patch(const api::ResourceInfo& info, const std::string& ns,
                                  const std::string& name, PatchType type, const std::string& patch,
                                  bool status, bool dry_run);
  void PatchAsync(const api::ResourceInfo& info, const std::string& ns, const std::string& name,
                  PatchType type, const std::string& patch, bool status, bool dry_run, Done done);
  // The pods/binding subresource: sets spec.nodeName of an unbound pod and its PodScheduled
  // condition, in one write. Conflict when the pod is already bound (so two schedulers racing
  // never bind a pod twice), or being deleted.
  absl::StatusOr<ObjectPtr> Bind(const std::string& ns, const std::string& pod_name,
                                 const capstan::core::v1::Binding& binding, bool dry_run);
  void BindAsync(const std::string& ns, const std::string& pod_name,
                 const capstan::core::v1::Binding& binding, bool dry_run, Done done);
  // Returns the object as deleted, or, when finalizers or a grace period keep it, as it now is
  // (with deletionTimestamp set).
  absl::StatusOr<ObjectPtr> Delete(const api::ResourceInfo& info, const std::string& ns,
                                   const std::string& name, const DeleteOptions& options);
  void DeleteAsync(const api::ResourceInfo& info, const std::string& ns, const std::string& name,
                   const DeleteOptions& options, Done done);
  absl::StatusOr<std::shared_ptr<Watcher>> Watch(const api::ResourceInfo& info,
                                                 const std::string& ns, const WatchOptions& options,
                                                 std::function<void()> notify);
  void StopWatch(const api::ResourceInfo& info, const std::shared_ptr<Watcher>& watcher);

  WatchCache& cache(const api::ResourceInfo& info);
  // Objects in every cache.
  size_t object_count() const;
  const api::Scheme& scheme() const { return scheme_; }
  // The newest revision every cache has applied.
  int64_t revision() const { return applied_revision_.load(); }
  // Sends bookmarks to watchers that asked for them; the server calls this periodically.
  void Bookmark();
  void CloseWatches(absl::Status why);

 private:
  // What an update may change: the object but not its status; only its status; or, for the
  // binding subresource, what its mutation sets on the stored object (spec.nodeName and the
  // PodScheduled condition), neither validated again nor compared, as Kubernetes' binding.
  enum class UpdateScope { kMain, kStatus, kBinding };

  struct Resource {
    const api::ResourceInfo* info;
    std::unique_ptr<WatchCache> cache;
  };

  void OnCommit(const storage::Event& event);
  absl::StatusOr<std::unique_ptr<google::protobuf::Message>> Decode(const api::ResourceInfo& info,
                                                                    const std::string& bytes,
                                                                    int64_t revision) const;
  // Stores object (without its resourceVersion) if its key's revision is still
  // expected_revision, and passes the cache's object for it to `done`. object is only read
  // during the call.
  void WriteAsync(const api::ResourceInfo& info, google::protobuf::Message* object,
                  int64_t expected_revision, bool dry_run, Done done);
  // Deletes `last` (the object as deleted) from the store if its revision is still
  // expected_revision; passes it, with the deletion's resourceVersion, to `done`.
  void RemoveFromStore(const api::ResourceInfo& info,
                       std::unique_ptr<google::protobuf::Message> last, int64_t expected_revision,
                       Done done);
  // Writes a new object, trying other generated names while they are taken.
  void WriteCreated(const api::ResourceInfo& info,
                    std::shared_ptr<google::protobuf::Message> object, bool generated,
                    int attempt, bool dry_run, Done done);
  // Computes the next object from the current one and writes it; an unconditional update that
  // lost a race is retried from the fresher object.
  using Mutate = std::function<absl::StatusOr<std::unique_ptr<google::protobuf::Message>>(
      const CachedObject& current)>;
  void UpdateWith(const api::ResourceInfo& info, const std::string& ns, const std::string& name,
                  Mutate mutate, UpdateScope scope, bool dry_run, Done done);
  void DeleteAttempt(const api::ResourceInfo& info, const std::string& ns,
                     const std::string& name, const DeleteOptions& options, Done done);
  absl::Status CheckNamespace(const std::string& ns);
  // Kubernetes' Priority admission. On pod create: resolves spec.priorityClassName (or the
  // globalDefault class) into spec.priority and spec.preemptionPolicy.
  absl::Status AdmitPodPriority(capstan::core::v1::Pod* pod);
  // Only one PriorityClass may be the global default (create, and update of another class).
  absl::Status CheckGlobalDefault(const api::ResourceInfo& info,
                                  const capstan::scheduling::v1::PriorityClass& priority_class,
                                  bool update);
  // The PriorityClass with globalDefault (the lowest value if several), or null.
  ObjectPtr DefaultPriorityClass();
  absl::Status ValidateObject(const api::ResourceInfo& info, const google::protobuf::Message& object,
                              const google::protobuf::Message* old);

  storage::Store* const store_;
  const api::Scheme& scheme_;
  const Options options_;
  // One per resource, keyed by qualified resource ("deployments.apps"); fixed after construction.
  absl::flat_hash_map<std::string, Resource> resources_;
  std::atomic<int64_t> applied_revision_{0};
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_RESOURCE_STORE_H_
