// The watch cache: one per resource, in memory, fed by the store's commit observer.
//
// It holds every current object of the resource (parsed once, serialized once, shared by all
// readers) and a window of recent events. LIST and WATCH are served from it and never scan
// RocksDB on the hot path. Because the store calls its observer before a Commit returns, the cache
// is never behind an acknowledged write: a reader that got revision R from a write sees R here.
//
// Events older than the window are still available from the store's revision log (watch resume
// after an apiserver restart reads them there); events older than the log's compaction are gone
// and the caller answers 410 Expired.
#ifndef CAPSTAN_SERVICES_APISERVER_WATCH_CACHE_H_
#define CAPSTAN_SERVICES_APISERVER_WATCH_CACHE_H_

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "lib/api/fields.h"
#include "lib/api/labels.h"
#include "lib/api/scheme.h"
#include "proto/meta.pb.h"

namespace capstan::apiserver {

// An object as the cache keeps it: its encoding, and what selections read (namespace, name,
// labels and the values of its kind's selectable fields). Immutable once built; shared by the
// map, the event window and every reader.
//
// The decoded message is not kept: a ~1 KiB pod takes ~7 KB of heap as a protobuf message (every
// string, map entry and repeated field is an allocation) against ~2 KB this way. object()
// decodes it again (a few microseconds), which only writes, admission and JSON need; reads,
// lists and watches send the encoding as it is. The exception is the few kinds that admission
// reads on every write of other objects (Namespace, PriorityClass: see KeepsDecoded): a
// cluster has a handful of them, and decoding them for each pod created was ~15% of a create.
// The metadata a selection reads: name, namespace and labels. An ObjectMeta message would hold
// them too, but is 416 bytes even when only these are set, on every object cached.
class SelectableMeta {
 public:
  const std::string& name() const { return name_; }
  const std::string& namespace_() const { return namespace_name_; }
  const google::protobuf::Map<std::string, std::string>& labels() const { return labels_; }

 private:
  friend class CachedObject;
  std::string name_;
  std::string namespace_name_;
  google::protobuf::Map<std::string, std::string> labels_;
};

class CachedObject {
 public:
  // object must carry metadata.resourceVersion == mod_revision.
  CachedObject(std::unique_ptr<google::protobuf::Message> object, int64_t mod_revision);
  // An object about to be committed, built from the bytes the store keeps (`stored`: its
  // encoding without metadata.resourceVersion), so that it is not serialized again. Stamp() must
  // be called with its revision before the object is shared.
  CachedObject(const google::protobuf::Message& object, std::string stored);

  // Sets the revision: the encoding sent to clients becomes `stored` followed by an encoded
  // `metadata` holding only the resourceVersion (protobuf parsers merge an embedded message that
  // appears twice, so this decodes to the object with its resourceVersion). Once, before the
  // object is shared.
  void Stamp(int64_t mod_revision);

  // An object read back from the store (`stored`: its encoding without
  // metadata.resourceVersion; `prototype`: its kind's), indexed from the encoding without
  // decoding the rest of it: what a restart does for every stored object. InvalidArgument when
  // the encoding is malformed.
  static absl::StatusOr<std::shared_ptr<CachedObject>> FromStored(
      const google::protobuf::Message& prototype, std::string stored, int64_t mod_revision);

  // The object: decoded from the encoding on each call, or the one kept for the kinds that
  // KeepsDecoded.
  std::shared_ptr<const google::protobuf::Message> object() const;
  const SelectableMeta& meta() const { return meta_; }
  // The value of one of the kind's selectable fields (api::ResourceInfo::selectable_fields, as
  // api::FieldValue reads it), or nullopt for any other field.
  std::optional<std::string> field(std::string_view path) const;
  int64_t mod_revision() const { return mod_revision_; }
  const std::string& proto() const { return proto_; }  // protobuf encoding
  const std::string& json() const;                     // JSON encoding, made on first use

 private:
  CachedObject() = default;
  void Index(const google::protobuf::Message& object);
  std::shared_ptr<const google::protobuf::Message> Decode() const;
  // Sets decoded_ for the kinds that keep it; called once the encoding is final.
  void KeepDecodedIfWanted();

  const google::protobuf::Message* prototype_ = nullptr;  // of the kind, to decode with
  int metadata_field_ = 0;  // the number of the kind's `metadata` field
  SelectableMeta meta_;
  // Selectable field (its path as the kind's ResourceInfo names it, which lives as long as the
  // scheme) and its value.
  std::vector<std::pair<std::string_view, std::string>> fields_;
  int64_t mod_revision_ = 0;
  std::string proto_;
  // Set before the object is shared, for KeepsDecoded kinds only.
  std::shared_ptr<const google::protobuf::Message> decoded_;
  mutable std::once_flag json_once_;
  mutable std::string json_;
};
using ObjectPtr = std::shared_ptr<const CachedObject>;

// Whether the cache keeps objects of this type decoded (see CachedObject).
bool KeepsDecoded(const google::protobuf::Descriptor* type);

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark };
const char* WatchEventTypeName(WatchEventType type);

struct CacheEvent {
  WatchEventType type;
  int64_t revision;
  ObjectPtr object;  // for kDeleted the object as it was; null for kBookmark
  ObjectPtr prev;    // the object before this event (null when created)
  // Bookmarks only: this bookmark ends the initial events (k8s.io/initial-events-end).
  bool initial_events_end = false;
};

// What a LIST or WATCH selects.
struct Selection {
  std::string namespace_;  // empty: every namespace
  api::LabelSelector labels;
  api::FieldSelector fields;
  bool Matches(const CachedObject& object) const;
};

// A watch's queue of events. The cache pushes, the stream writer takes. When the queue grows past
// its capacity the watcher is cut off: its status says why, and the client resumes or relists.
class Watcher {
 public:
  // notify is called (from the pushing thread, without locks held) when events arrive for a
  // watcher whose last Take() came back empty, and when the watcher is closed.
  Watcher(Selection selection, size_t capacity, bool bookmarks, std::function<void()> notify);

  // Moves up to max queued events out. An empty result arms the next notify.
  std::vector<CacheEvent> Take(size_t max);
  // OK while open; the reason once closed (too slow, or the server is stopping).
  absl::Status status() const;
  bool wants_bookmarks() const { return bookmarks_; }
  const Selection& selection() const { return selection_; }

 private:
  friend class WatchCache;
  // Queues the event if it passes the selection. Returns false when the queue is over capacity.
  bool Offer(const CacheEvent& event);
  bool Push(CacheEvent event);
  void Close(absl::Status why);

  const Selection selection_;
  const size_t capacity_;
  const bool bookmarks_;
  const std::function<void()> notify_;

  mutable absl::Mutex mu_;
  std::deque<CacheEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool armed_ ABSL_GUARDED_BY(mu_) = false;  // a Take() found nothing; the next push notifies
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

struct ListResult {
  std::vector<ObjectPtr> items;
  int64_t revision = 0;
  std::string continue_token;
  std::optional<int64_t> remaining;
};

// Reads retained events after a revision from the store (for watches older than the window).
// Calls fn for each event of this resource in order until fn returns false (the reader should
// then stop decoding events); OutOfRange when compacted.
using HistoryReader =
    std::function<absl::Status(int64_t after, const std::function<bool(CacheEvent)>& fn)>;

class WatchCache {
 public:
  // window: how many recent events are kept in memory.
  WatchCache(const api::ResourceInfo& info, size_t window);

  const api::ResourceInfo& info() const { return info_; }

  // Startup: the objects read from the store at revision.
  void Load(std::vector<std::pair<std::string, ObjectPtr>> objects, int64_t revision);

  // Applies one committed event: key is "namespace/name" ("/name" when cluster-scoped); object is
  // the new object, or for a delete the object as it was.
  void Apply(const std::string& key, bool deleted, ObjectPtr object, int64_t revision);
  // Moves the cache's revision on for a write to another resource (so lists report it).
  void Advance(int64_t revision);

  ObjectPtr Get(const std::string& key) const;
  int64_t revision() const;
  size_t size() const;

  // Lists at revision `at` (0: now), starting after continue_token if set, at most limit items
  // (0: all). The revision must still be inside the event window, or the answer is Expired.
  absl::StatusOr<ListResult> List(const Selection& selection, int64_t at, int64_t limit,
                                  const std::string& continue_token) const;

  // Starts a watch: events after revision `after` (and first, if initial_events, the state at
  // `after` as ADDED events followed by an initial-events-end bookmark when bookmarks are on).
  // after == 0 means now. history reads events older than the window from the store.
  absl::StatusOr<std::shared_ptr<Watcher>> Watch(Selection selection, int64_t after,
                                                 bool initial_events, bool bookmarks,
                                                 size_t capacity, std::function<void()> notify,
                                                 const HistoryReader& history);
  void StopWatch(const std::shared_ptr<Watcher>& watcher);
  // Sends a bookmark at the current revision to every watcher that asked for bookmarks.
  void Bookmark();
  // Closes every watcher (server shutdown).
  void CloseAll(absl::Status why);
  size_t watcher_count() const;

 private:
  // State at revision `at` for keys changed after it: key -> object then (null: absent then).
  absl::Status UndoAfter(int64_t at, absl::btree_map<std::string, ObjectPtr>* overlay) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void Deliver(const CacheEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const api::ResourceInfo& info_;
  const size_t window_;

  mutable absl::Mutex mu_;
  absl::btree_map<std::string, ObjectPtr> objects_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, CacheEvent>> events_ ABSL_GUARDED_BY(mu_);
  // Every event of this resource after this revision is in events_.
  int64_t window_start_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Watchers without a trigger value get every event and filter it themselves.
  std::vector<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  // Kubernetes' watch-cache triggers: for pods, watchers selecting spec.nodeName=X (every node
  // agent) are indexed by X, so an event is only offered to the watchers of the node(s) it
  // concerns instead of being filtered by all of them.
  const std::string trigger_field_;  // "" when this resource has none
  absl::flat_hash_map<std::string, std::vector<std::shared_ptr<Watcher>>> triggered_ ABSL_GUARDED_BY(mu_);
  std::optional<std::string> TriggerValue(const Selection& selection) const;
  void Register(std::shared_ptr<Watcher> watcher) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Offers event to each watcher of list; drops (and closes) those that fell too far behind.
  void OfferAll(const CacheEvent& event, std::vector<std::shared_ptr<Watcher>>* list)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  template <typename Fn>
  void ForEachWatcher(Fn fn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& w : watchers_) fn(w);
    for (auto& [value, list] : triggered_) {
      for (auto& w : list) fn(w);
    }
  }
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_WATCH_CACHE_H_
