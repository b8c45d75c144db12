// Informers: a local, indexed, eventually consistent copy of one resource, kept current by list +
// watch (client-go's SharedIndexInformer, in C++).
//
//   Informer<Pod> pods(client.get(), {.ns = "default"});
//   pods.AddEventHandler({.on_add = [&](const auto& pod) { queue.Add(ObjectKey(*pod)); }});
//   pods.Run();
//   if (!pods.WaitForCacheSync(absl::Seconds(30))) ...
//   std::shared_ptr<const Pod> web = pods.lister().Get("default", "web");
//
// The informer's thread lists the resource (pages of InformerOptions::page_size), replaces the
// cache with the result and tells the handlers what changed (OnAdd / OnUpdate / OnDelete against
// what the cache held), then watches from the list's resourceVersion with bookmarks. It applies
// events in order and remembers the last resourceVersion seen (bookmarks included). When the
// stream ends (server restart, UNAVAILABLE, cut off as too slow, ...) it reconnects with
// exponential backoff (initial_backoff doubling to max_backoff, reset once a stream or list
// succeeds) and resumes from that resourceVersion, so no event is missed or repeated. When the
// revision is no longer available (Expired / Gone, 410) it relists and diffs against the cache.
//
// Handlers run one at a time on the informer's thread, in event order, and must be quick: a
// controller only enqueues a key there and reads the cache later. Cached objects are immutable
// snapshots (see indexer.h).
//
// The untyped SharedIndexInformer works on google::protobuf::Message (any kind, including kinds
// with no static type); Informer<T> is a typed handle on one. SharedInformerFactory
// (shared_informer_factory.h) gives each process one informer per resource.
#ifndef CAPSTAN_LIB_CLIENT_INFORMER_H_
#define CAPSTAN_LIB_CLIENT_INFORMER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "lib/api/labels.h"
#include "lib/api/scheme.h"
#include "lib/client/client.h"
#include "lib/client/indexer.h"

namespace capstan::client {

// ---------------------------------------------------------------------------------------------
// Handlers and the pure step from events to handler calls

// Any member may be empty. For an update, old_object is what the cache held and new_object what
// replaced it; for a delete, object is the last state the server sent (or, after a relist, the
// last state the cache held).
struct ResourceEventHandler {
  std::function<void(const Object& object)> on_add;
  std::function<void(const Object& old_object, const Object& new_object)> on_update;
  std::function<void(const Object& object)> on_delete;
};

// One handler call an event or a relist causes.
struct Notification {
  enum class Type { kAdd, kUpdate, kDelete };
  Type type;
  Object old_object;  // kUpdate only
  Object object;      // kAdd, kUpdate: the new state; kDelete: the last state
};

// Applies one watch event (ADDED, MODIFIED, DELETED; BOOKMARK and unknown types change nothing)
// to indexer and says which handler call it causes, if any: an ADDED or MODIFIED of an unknown
// key is an add, of a known key an update (none when the resourceVersion is the one cached, a
// replay); a DELETED of a known key is a delete, of an unknown key nothing.
std::optional<Notification> ApplyWatchEvent(Indexer& indexer, absl::string_view type,
                                            Object object);

// Replaces the content of indexer with a fresh list and returns the differences, as a
// Reflector's Replace does: adds and updates (resourceVersion changed) in the list's order, then
// deletes of the keys the list no longer has, in key order.
std::vector<Notification> ApplyList(Indexer& indexer, std::vector<Object> objects);

// Calls the handler member that notification names (if set).
void Deliver(const Notification& notification, const ResourceEventHandler& handler);

// ---------------------------------------------------------------------------------------------
// The source an informer lists and watches (the API server, or a fake in tests)

// Events of one watch, as WatchStream's but with shared, immutable objects.
class EventStream {
 public:
  virtual ~EventStream() = default;
  // Blocks until the next event; false at the end of the stream (then see status()).
  virtual bool Next(WatchEvent<Object>* event) = 0;
  // Ends the stream soon; safe from any thread.
  virtual void Cancel() = 0;
  virtual absl::Status status() const = 0;
};

class ListerWatcher {
 public:
  virtual ~ListerWatcher() = default;
  // One page of the list (options.limit, options.continue_token).
  virtual absl::StatusOr<ObjectList<Object>> List(const ListOptions& options) = 0;
  // Never null: a failure to start is a stream that has already ended.
  virtual std::unique_ptr<EventStream> Watch(const WatchOptions& options) = 0;
};

// Lists and watches resource `info` in namespace ns ("": all) through client, which must outlive
// the result.
std::unique_ptr<ListerWatcher> NewClientListerWatcher(Client* client, const api::ResourceInfo& info,
                                                      std::string ns);

// The ListerWatcher of the kind message `kind`'s built-in resource; one whose every call fails
// when kind is not a built-in kind.
std::unique_ptr<ListerWatcher> NewClientListerWatcherForKind(
    Client* client, const google::protobuf::Descriptor* kind, const std::string& ns);

// Whether a watch or list ended because its resourceVersion is gone: relist.
bool IsExpired(const absl::Status& status);

// ---------------------------------------------------------------------------------------------
// The untyped informer

struct InformerOptions {
  std::string ns;  // "": all namespaces (and the only choice for cluster-scoped kinds)
  std::string label_selector;
  std::string field_selector;
  int64_t page_size = 500;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

class SharedIndexInformer {
 public:
  // Informs on resource info through client, which must outlive the informer.
  SharedIndexInformer(Client* client, const api::ResourceInfo& info, InformerOptions options = {});
  // Informs from source. options.ns is not used (source has its scope); selectors are passed on.
  SharedIndexInformer(std::unique_ptr<ListerWatcher> source, InformerOptions options = {});
  ~SharedIndexInformer();  // Stop()
  SharedIndexInformer(const SharedIndexInformer&) = delete;
  SharedIndexInformer& operator=(const SharedIndexInformer&) = delete;

  // Adds an index to the cache (see Indexer::AddIndex); before or after Run.
  absl::Status AddIndex(const std::string& name, IndexFunc index) {
    return indexer_.AddIndex(name, std::move(index));
  }

  // Adds a handler. Before Run it sees every event; after Run it first gets on_add for each object
  // already cached (on the calling thread, with event delivery held back meanwhile), then every
  // later event. Must not be called from a handler.
  void AddEventHandler(ResourceEventHandler handler);

  // Starts the informer's thread. Does nothing when already started or stopped.
  void Run();
  // Cancels the watch, stops the thread and joins it. Final: Run will not start it again.
  void Stop();

  // True once the first list has been applied to the cache and delivered to the handlers.
  bool HasSynced() const;
  // Waits until HasSynced(); false on timeout or when stopped first.
  bool WaitForCacheSync(absl::Duration timeout) const;

  const Indexer& indexer() const { return indexer_; }
  // The last resourceVersion applied (from a list, an event or a bookmark); "" before the first
  // list.
  std::string LastResourceVersion() const;

  struct Stats {
    int64_t lists = 0;    // complete lists applied
    int64_t watches = 0;  // watch streams opened
    int64_t expired = 0;  // watches or lists that ended with Expired / Gone
  };
  Stats stats() const;

 private:
  void Loop();
  // Lists every page and applies the result. Returns the list's status.
  absl::Status ListAndReplace();
  // Watches from the last resourceVersion until the stream ends; *progressed when it delivered
  // at least one event.
  absl::Status WatchUntilEnd(bool* progressed);
  void Dispatch(const Notification& notification) ABSL_EXCLUSIVE_LOCKS_REQUIRED(dispatch_mu_);
  // Sleeps for d unless stopped first; false when stopped.
  bool SleepUnlessStopped(absl::Duration d);
  bool stopping() const;

  // Constant after construction.
  const std::unique_ptr<ListerWatcher> source_;
  const InformerOptions options_;

  Indexer indexer_;  // thread-safe itself; written only by the informer's thread

  // Held while the informer's thread applies a change to the cache and calls the handlers, so
  // AddEventHandler sees a cache and a sequence of events with no gap and no overlap.
  absl::Mutex dispatch_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::vector<ResourceEventHandler> handlers_ ABSL_GUARDED_BY(dispatch_mu_);

  absl::Mutex lifecycle_mu_;  // serializes Run and Stop
  std::thread thread_ ABSL_GUARDED_BY(lifecycle_mu_);

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
  std::string resource_version_ ABSL_GUARDED_BY(mu_);
  EventStream* current_stream_ ABSL_GUARDED_BY(mu_) = nullptr;  // for Stop to cancel
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// Typed views

// object as a T, or nullptr when it is null or not a T.
template <typename T>
std::shared_ptr<const T> ObjectAs(const Object& object) {
  if (object == nullptr || object->GetDescriptor() != T::descriptor()) return nullptr;
  return std::static_pointer_cast<const T>(object);
}

template <typename T>
struct EventHandler {
  std::function<void(const std::shared_ptr<const T>& object)> on_add;
  std::function<void(const std::shared_ptr<const T>& old_object,
                     const std::shared_ptr<const T>& new_object)>
      on_update;
  std::function<void(const std::shared_ptr<const T>& object)> on_delete;
};

// Typed reads of an Indexer whose objects are T (client-go's listers).
template <typename T>
class Lister {
 public:
  explicit Lister(const Indexer* indexer) : indexer_(indexer) {}

  std::shared_ptr<const T> Get(absl::string_view ns, absl::string_view name) const {
    return ObjectAs<T>(indexer_->Get(ns, name));
  }
  std::shared_ptr<const T> Get(absl::string_view key) const {
    return ObjectAs<T>(indexer_->Get(key));
  }
  std::vector<std::shared_ptr<const T>> List() const { return Typed(indexer_->List()); }
  std::vector<std::shared_ptr<const T>> ListNamespace(absl::string_view ns) const {
    return Typed(indexer_->ListNamespace(ns));
  }
  std::vector<std::shared_ptr<const T>> ListSelected(absl::string_view ns,
                                                     const api::LabelSelector& selector) const {
    return Typed(indexer_->ListSelected(ns, selector));
  }
  std::vector<std::shared_ptr<const T>> ByIndex(absl::string_view index,
                                                absl::string_view value) const {
    return Typed(indexer_->ByIndex(index, value));
  }

 private:
  static std::vector<std::shared_ptr<const T>> Typed(std::vector<Object> objects) {
    std::vector<std::shared_ptr<const T>> out;
    out.reserve(objects.size());
    for (const Object& object : objects) {
      if (std::shared_ptr<const T> typed = ObjectAs<T>(object)) out.push_back(std::move(typed));
    }
    return out;
  }

  const Indexer* indexer_;
};

// A typed handle on a SharedIndexInformer whose resource's kind is T (a built-in kind message
// such as capstan::core::v1::Pod). Copies share the informer.
template <typename T>
class Informer {
 public:
  // A new informer on T's resource through client (which must outlive it). When T is not a
  // built-in kind every list fails with InvalidArgument and the informer never syncs.
  explicit Informer(Client* client, InformerOptions options = {})
      : shared_(std::make_shared<SharedIndexInformer>(
            NewClientListerWatcherForKind(client, T::descriptor(), options.ns), options)) {}
  explicit Informer(std::shared_ptr<SharedIndexInformer> shared) : shared_(std::move(shared)) {}

  void AddEventHandler(EventHandler<T> handler) {
    ResourceEventHandler untyped;
    if (handler.on_add) {
      untyped.on_add = [f = std::move(handler.on_add)](const Object& o) { f(ObjectAs<T>(o)); };
    }
    if (handler.on_update) {
      untyped.on_update = [f = std::move(handler.on_update)](const Object& a, const Object& b) {
        f(ObjectAs<T>(a), ObjectAs<T>(b));
      };
    }
    if (handler.on_delete) {
      untyped.on_delete = [f = std::move(handler.on_delete)](const Object& o) {
        f(ObjectAs<T>(o));
      };
    }
    shared_->AddEventHandler(std::move(untyped));
  }
  absl::Status AddIndex(const std::string& name, IndexFunc index) {
    return shared_->AddIndex(name, std::move(index));
  }

  void Run() { shared_->Run(); }
  void Stop() { shared_->Stop(); }
  bool HasSynced() const { return shared_->HasSynced(); }
  bool WaitForCacheSync(absl::Duration timeout) const { return shared_->WaitForCacheSync(timeout); }

  Lister<T> lister() const { return Lister<T>(&shared_->indexer()); }
  const Indexer& indexer() const { return shared_->indexer(); }
  SharedIndexInformer& shared() const { return *shared_; }

 private:
  std::shared_ptr<SharedIndexInformer> shared_;
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_INFORMER_H_
