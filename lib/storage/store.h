// The apiserver's durable store: a versioned key-value map with etcd's semantics.
//
//  * A global revision counter is incremented by every successful write; the first write of a
//    fresh store gets revision 1, so CurrentRevision() == 0 means "nothing written yet".
//  * Each key remembers the revision of its last write (its mod revision). Writes can be made
//    conditional on it (optimistic concurrency), which is how the apiserver implements
//    resourceVersion preconditions.
//  * Every write appends an Event to a revision log. Watchers resume from any revision that is
//    still retained; old entries are compacted and reading from before the compacted revision
//    fails with OutOfRange (the apiserver maps it to 410 Gone, and the client re-lists).
//
// Thread safety: every method of Store may be called concurrently from any number of threads.

#ifndef CAPSTAN_LIB_STORAGE_STORE_H_
#define CAPSTAN_LIB_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace capstan::storage {

// Values of Write::expected_mod_revision with a special meaning.
inline constexpr int64_t kAnyRevision = -1;  // No condition.
inline constexpr int64_t kMustNotExist = 0;  // Create: the key must not exist.

// One change to one key.
struct Write {
  // Must not be empty.
  std::string key;
  // The new value; std::nullopt deletes the key.
  std::optional<std::string> value;
  // The key's current mod revision must equal this. kMustNotExist (0): the key must not exist.
  // kAnyRevision (-1): unconditional. A delete may not use kMustNotExist.
  int64_t expected_mod_revision = kAnyRevision;
  // Opaque to the store: handed to the observer with this write's Event (see SetObserver), so
  // that a caller which already holds the value in another form (the apiserver's decoded
  // object) does not have to rebuild it from the bytes. Dropped if the write fails.
  std::shared_ptr<void> attachment;
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t mod_revision = 0;  // The revision of the write that produced value.
};

enum class EventType { kPut, kDelete };

// One entry of the revision log: the effect of the write that produced `revision`.
struct Event {
  EventType type = EventType::kPut;
  int64_t revision = 0;
  std::string key;
  std::string value;       // The new value; for kDelete the value the key had.
  std::string prev_value;  // The value before this write ("" when the key was created).
  bool created = false;    // kPut of a key that did not exist.
  // Write::attachment of the write that produced this event; null for events read back from
  // the log (ReadLog) and for deletes.
  std::shared_ptr<void> attachment;
};

// Conflict errors returned by Store::Commit carry the key's actual mod revision (0 when the key
// does not exist) as a status payload under this type URL, so that the apiserver can report it
// without another read. Read it with ConflictModRevision().
inline constexpr char kModRevisionPayloadUrl[] = "type.capstan.dev/capstan.storage.ModRevision";

// Returns the actual mod revision attached to a conflict error from Store::Commit, or
// std::nullopt when `status` carries none (e.g. it is OK or not a conflict).
std::optional<int64_t> ConflictModRevision(const absl::Status& status);

class Store {
 public:
  virtual ~Store() = default;

  // Applies `write` atomically and durably (when the store is opened with sync, the write-ahead
  // log is fsynced before this returns) and returns the revision it was given, which is also
  // the key's new mod revision. Blocks until then. Concurrent callers share fsyncs (group
  // commit), so throughput grows with the number of concurrent callers.
  //
  // A write that fails consumes no revision and changes nothing. Errors:
  //  * InvalidArgument: empty key, expected_mod_revision < -1, a delete with kMustNotExist, or
  //    a key over 1 MiB or a value over 512 MiB.
  //  * AlreadyExists: expected_mod_revision is kMustNotExist and the key exists.
  //  * NotFound: expected_mod_revision > 0 and the key does not exist; or a delete (of any
  //    condition) of a key that does not exist — there is nothing to delete, so no event.
  //  * Aborted: expected_mod_revision > 0 and the key exists with another mod revision.
  //    The three conflict errors carry the actual mod revision (see ConflictModRevision()).
  //  * Anything else (e.g. Internal, Unavailable) is a storage failure. As with any database,
  //    a write that failed because the disk failed after the log was written may still appear
  //    after a restart.
  virtual absl::StatusOr<int64_t> Commit(Write write) = 0;

  // Commit without waiting: `done` is called with what Commit would have returned, once the
  // write is durable (after the observer has seen it) or refused. It may run on the store's
  // commit thread, holding up later writes: keep it short, and never block in it (it may call
  // CommitAsync again, not Commit). This is how a server handles many writes in flight without
  // a thread per write. The default runs Commit, then `done`, on the caller's thread.
  using CommitCallback = std::function<void(absl::StatusOr<int64_t>)>;
  virtual void CommitAsync(Write write, CommitCallback done) { done(Commit(std::move(write))); }

  // Returns the current value of `key` and its mod revision, or std::nullopt when the key does
  // not exist. Reflects every Commit that has returned.
  virtual absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) = 0;

  // Calls `fn` for every current key that starts with `prefix` ("" for all keys), in
  // lexicographic byte order, all from one consistent snapshot, and returns the revision of that
  // snapshot (the apiserver's list resourceVersion). The KeyValue passed to `fn` is only valid
  // during the call. `fn` may call other methods of the store.
  virtual absl::StatusOr<int64_t> Scan(std::string_view prefix,
                                       const std::function<void(const KeyValue&)>& fn) = 0;

  // Calls `fn`, in revision order, for every event with revision > after_revision, as of one
  // consistent snapshot (so the last event passed is the snapshot's current revision; later
  // events reach the observer, see SetObserver()). The Event is only valid during the call.
  // Errors: OutOfRange when after_revision < CompactedRevision() (those events are gone);
  // InvalidArgument when after_revision < 0.
  virtual absl::Status ReadLog(int64_t after_revision,
                               const std::function<void(const Event&)>& fn) = 0;

  // The revision of the latest successful write; 0 for an empty store.
  virtual int64_t CurrentRevision() const = 0;

  // Log entries with revision <= CompactedRevision() have been dropped; 0 if none were.
  virtual int64_t CompactedRevision() const = 0;

  // Drops log entries with revision <= `revision`, durably. Compacting to a revision at or
  // below CompactedRevision() is a no-op that returns OK. InvalidArgument when `revision` is
  // greater than CurrentRevision(). Does not affect the current keys.
  virtual absl::Status Compact(int64_t revision) = 0;

  // `fn` is called for every committed event, in revision order, after the event is durable
  // and before the Commit that made it returns, so a caller that got revision R knows `fn` has
  // seen R. Set it once, before the first Commit (events committed earlier are not delivered).
  // `fn` runs on the store's commit thread, holding up every writer: keep it short, and never
  // call Commit from it (that would deadlock). Other methods (Get, Scan, ...) are fine.
  virtual void SetObserver(std::function<void(const Event&)> fn) = 0;
};

}  // namespace capstan::storage

#endif  // CAPSTAN_LIB_STORAGE_STORE_H_
