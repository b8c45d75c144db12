// RocksDB backend of Store.
//
// On-disk layout: three column families, so that each gets options that suit its access
// pattern, while one WriteBatch still updates all three atomically (they share the WAL).
//
//   "objects": key -> mod_revision (8 bytes, big-endian) + value.
//              Point lookups and prefix scans: bloom filter, shared block cache.
//   "log":     revision (8 bytes, big-endian, so byte order is revision order) -> encoded Event
//              (see EncodeEvent; the revision is the key, not repeated). Appended in order, read
//              by range scans, dropped from the front by DeleteRange: no bloom filter.
//   "default": metadata: "current_revision" and "compacted_revision" (8 bytes, big-endian each)
//              and "format_version" ("1").
//
// Commit pipeline (group commit): Commit() enqueues a PendingWrite and sleeps on its own CondVar.
// One committer thread repeatedly takes everything queued (up to max_batch), checks each
// write's condition against the in-memory index key -> mod revision (later writes in the group
// see earlier ones), gives accepted writes consecutive revisions, writes ONE WriteBatch (object
// puts/deletes, log entries, current_revision) with sync, updates the index, calls the observer
// for each event in order, and only then wakes the writers. While one group is being fsynced,
// the next one queues up, so one fsync is shared by every writer that arrived meanwhile.
// The WAL file is kept zero-filled ahead of its end (wal_file_system.h), so that fsync writes
// the log's data blocks and not, each time, its inode as well.
//
// Automatic log retention runs on a separate thread (woken every few seconds, or by the
// committer once the log is a quarter past log_retention) so that no commit ever pays for it.

#include "lib/storage/rocksdb_store.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/storage/wal_file_system.h"
#include "rocksdb/cache.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/snapshot.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

namespace capstan::storage {
namespace {

constexpr char kObjectsFamily[] = "objects";
constexpr char kLogFamily[] = "log";
constexpr char kMetaCurrentRevision[] = "current_revision";
constexpr char kMetaCompactedRevision[] = "compacted_revision";
constexpr char kMetaFormatVersion[] = "format_version";
constexpr char kFormatVersion[] = "1";

// Limits that keep an encoded log entry (key + value + prev_value) far below WriteBatch's 4 GiB
// per-entry limit, so building a batch cannot fail halfway. The apiserver's own limits (etcd
// allows ~1.5 MiB requests) are much lower.
constexpr size_t kMaxKeySize = size_t{1} << 20;
constexpr size_t kMaxValueSize = size_t{512} << 20;

// How often the retention thread wakes up on its own.
constexpr absl::Duration kRetentionPeriod = absl::Seconds(5);

constexpr size_t kBlockCacheBytes = size_t{64} << 20;

// ---- Encoding ------------------------------------------------------------------------------

void EncodeRevisionTo(int64_t revision, char out[8]) {
  uint64_t v = static_cast<uint64_t>(revision);
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

std::string EncodeRevision(int64_t revision) {
  std::string out(8, '\0');
  EncodeRevisionTo(revision, out.data());
  return out;
}

// `in` must hold at least 8 bytes.
int64_t DecodeRevision(const char* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return static_cast<int64_t>(v);
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    *v |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool GetLengthPrefixed(std::string_view* in, std::string* out) {
  uint64_t n = 0;
  if (!GetVarint(in, &n) || n > in->size()) return false;
  out->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

// Log entry: flags byte (bit 0: delete, bit 1: created), varint-length-prefixed key and value,
// then prev_value up to the end. The revision is the entry's key.
constexpr uint8_t kFlagDelete = 1;
constexpr uint8_t kFlagCreated = 2;

std::string EncodeEvent(const Event& e) {
  std::string out;
  out.reserve(1 + 2 * 5 + e.key.size() + e.value.size() + e.prev_value.size());
  uint8_t flags = 0;
  if (e.type == EventType::kDelete) flags |= kFlagDelete;
  if (e.created) flags |= kFlagCreated;
  out.push_back(static_cast<char>(flags));
  PutVarint(&out, e.key.size());
  out.append(e.key);
  PutVarint(&out, e.value.size());
  out.append(e.value);
  out.append(e.prev_value);
  return out;
}

bool DecodeEvent(std::string_view in, Event* e) {
  if (in.empty()) return false;
  const auto flags = static_cast<uint8_t>(in.front());
  in.remove_prefix(1);
  e->type = (flags & kFlagDelete) ? EventType::kDelete : EventType::kPut;
  e->created = (flags & kFlagCreated) != 0;
  if (!GetLengthPrefixed(&in, &e->key) || !GetLengthPrefixed(&in, &e->value)) return false;
  e->prev_value.assign(in.data(), in.size());
  return true;
}

// The smallest string greater than every string with `prefix`, or "" if there is none (prefix
// empty or all 0xff).
std::string PrefixSuccessor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return s;
}

std::string_view View(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

// Debian's Abseil is built with its own absl::string_view (not std::string_view), which
// StrCat and Status accept; this converts.
absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status ToStatus(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("rocksdb ", what, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(message);
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(message);
  if (s.IsNotSupported()) return absl::UnimplementedError(message);
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

absl::Status Conflict(absl::StatusCode code, absl::string_view key, int64_t actual,
                      absl::string_view why) {
  absl::Status status(code, absl::StrCat("key \"", key, "\" ", why, " (its mod revision is ",
                                         actual, ")"));
  status.SetPayload(kModRevisionPayloadUrl, absl::Cord(absl::StrCat(actual)));
  return status;
}

// ---- Options -------------------------------------------------------------------------------

rocksdb::CompressionType BestCompression() {
  // Objects are JSON or protobuf; LZ4 is nearly free in CPU. Debian's RocksDB has it, but
  // fall back rather than fail to open if a build lacks it.
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  for (rocksdb::CompressionType c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  }
  return rocksdb::kNoCompression;
}

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           bool bloom, size_t block_size,
                                           size_t write_buffer_size) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.block_size = block_size;
  // Index and filter blocks compete for the same cache budget instead of growing unbounded
  // with the data; L0's are pinned because every read touches them.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.format_version = 5;
  if (bloom) table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));

  rocksdb::ColumnFamilyOptions cf;
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = BestCompression();
  cf.write_buffer_size = write_buffer_size;
  // Keeps space amplification near 1.1x regardless of the DB size.
  cf.level_compaction_dynamic_level_bytes = true;
  return cf;
}

// ---- The store -----------------------------------------------------------------------------

using ObserverFn = std::function<void(const Event&)>;

// A write waiting for the committer: a Commit() call's lives on the caller's stack; a
// CommitAsync() call's on the heap, owned by the queue until its callback has run.
struct PendingWrite {
  explicit PendingWrite(Write w) : write(std::move(w)) {}
  PendingWrite(Write w, Store::CommitCallback cb) : write(std::move(w)), callback(std::move(cb)) {}

  // The committer moves key and value out of it once the write is accepted.
  Write write;
  // Set by the committer before `done`; read by the caller after.
  absl::StatusOr<int64_t> result;
  bool done = false;  // Guarded by RocksDbStoreImpl::mu_.
  absl::CondVar cv;   // Signalled when done is set (a Commit() call).
  Store::CommitCallback callback;  // Called instead (a CommitAsync() call).
};

class RocksDbStoreImpl final : public RocksDbStore {
 public:
  RocksDbStoreImpl(const RocksDbOptions& options, std::unique_ptr<rocksdb::Env> env,
                   std::unique_ptr<rocksdb::DB> db,
                   rocksdb::ColumnFamilyHandle* meta, rocksdb::ColumnFamilyHandle* objects,
                   rocksdb::ColumnFamilyHandle* log)
      : options_(options),
        env_(std::move(env)),
        db_(std::move(db)),
        meta_(meta),
        objects_(objects),
        log_(log) {}

  ~RocksDbStoreImpl() override {
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      queue_cv_.SignalAll();
      retention_cv_.SignalAll();
    }
    // The committer finishes every write queued before closing_ was set.
    if (committer_.joinable()) committer_.join();
    if (retention_thread_.joinable()) retention_thread_.join();
    for (rocksdb::ColumnFamilyHandle* h : {meta_, objects_, log_}) {
      db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    db_->Close().PermitUncheckedError();
  }

  // Loads the revisions and the key index. Called once, before Start().
  absl::Status Recover();

  // Starts the committer and (unless retention is disabled) the retention thread.
  void Start() {
    committer_ = std::thread([this] { CommitLoop(); });
    if (options_.log_retention > 0) retention_thread_ = std::thread([this] { RetentionLoop(); });
  }

  absl::StatusOr<int64_t> Commit(Write write) override;
  void CommitAsync(Write write, CommitCallback done) override;
  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key) override;
  absl::StatusOr<int64_t> Scan(std::string_view prefix,
                               const std::function<void(const KeyValue&)>& fn) override;
  absl::Status ReadLog(int64_t after_revision,
                       const std::function<void(const Event&)>& fn) override;
  int64_t CurrentRevision() const override {
    return current_revision_.load(std::memory_order_acquire);
  }
  int64_t CompactedRevision() const override {
    return compacted_revision_.load(std::memory_order_acquire);
  }
  absl::Status Compact(int64_t revision) override;
  void SetObserver(ObserverFn fn) override {
    auto observer = fn ? std::make_shared<const ObserverFn>(std::move(fn)) : nullptr;
    absl::MutexLock lock(&mu_);
    observer_ = std::move(observer);
  }

  uint64_t SyncCount() const override { return syncs_.load(std::memory_order_relaxed); }
  RocksDbStoreStats GetStats() const override {
    RocksDbStoreStats s;
    s.commits = commits_.load(std::memory_order_relaxed);
    s.rejected = rejected_.load(std::memory_order_relaxed);
    s.batches = batches_.load(std::memory_order_relaxed);
    s.syncs = syncs_.load(std::memory_order_relaxed);
    s.max_batch_size = max_batch_size_.load(std::memory_order_relaxed);
    s.compactions = compactions_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  void CommitLoop();
  void CommitBatch(absl::Span<PendingWrite* const> batch, const ObserverFn* observer);
  // Checks `w` against the index and the writes staged earlier in this batch; if it holds,
  // moves it into a new entry of `events` (with `revision`) and adds it to `wb`.
  absl::Status Stage(Write& w, int64_t revision,
                     absl::flat_hash_map<std::string_view, size_t>& staged,
                     std::vector<Event>& events, rocksdb::WriteBatch& wb);
  void RetentionLoop();
  // Reads a revision from the metadata family; 0 if absent.
  absl::StatusOr<int64_t> ReadMetaRevision(const rocksdb::ReadOptions& ro, const char* key);

  // Constant after construction.
  const RocksDbOptions options_;
  // The database's Env (its file system), if not RocksDB's default; outlives db_.
  const std::unique_ptr<rocksdb::Env> env_;
  const std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* const meta_;     // Owned; destroyed before db_ closes.
  rocksdb::ColumnFamilyHandle* const objects_;  // Owned.
  rocksdb::ColumnFamilyHandle* const log_;      // Owned.
  std::thread committer_;         // Set by Start().
  std::thread retention_thread_;  // Set by Start().

  // Protected by mu_.
  absl::Mutex mu_;
  std::deque<PendingWrite*> queue_ ABSL_GUARDED_BY(mu_);
  absl::CondVar queue_cv_;  // Signalled when queue_ gets an entry or closing_ is set.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool compaction_requested_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar retention_cv_;  // Signalled when compaction_requested_ or closing_ is set.
  // A shared_ptr so that the committer takes a reference per batch instead of copying the
  // function, and SetObserver can never race with a running callback.
  std::shared_ptr<const ObserverFn> observer_ ABSL_GUARDED_BY(mu_);

  // Owned by the committer thread (after Recover(), which runs before it starts): no lock.
  // key -> mod revision of every current key. It answers conditions without a disk read and
  // tells creates (the common write) that there is no previous value to read. Old values for
  // prev_value are NOT kept here: that would double the memory of the store, while a Get of a
  // just-written object is served from the memtable or block cache and is only needed for
  // updates and deletes.
  absl::flat_hash_map<std::string, int64_t> mod_revisions_;

  // Serializes compactions (manual and automatic).
  absl::Mutex compact_mu_;

  // Written only by the committer (current) or under compact_mu_ (compacted), after the
  // corresponding RocksDB write; read by anyone.
  std::atomic<int64_t> current_revision_{0};
  std::atomic<int64_t> compacted_revision_{0};

  // Statistics.
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> max_batch_size_{0};
  std::atomic<uint64_t> compactions_{0};
};

absl::StatusOr<int64_t> RocksDbStoreImpl::ReadMetaRevision(const rocksdb::ReadOptions& ro,
                                                           const char* key) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(ro, meta_, key, &value);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return ToStatus(s, "read metadata");
  if (value.size() != 8) return absl::DataLossError(absl::StrCat("bad metadata ", key));
  return DecodeRevision(value.data());
}

absl::Status RocksDbStoreImpl::Recover() {
  rocksdb::ReadOptions ro;
  {
    std::string format;
    rocksdb::Status s = db_->Get(ro, meta_, kMetaFormatVersion, &format);
    if (s.IsNotFound()) {
      rocksdb::WriteOptions wo;
      wo.sync = options_.sync;
      s = db_->Put(wo, meta_, kMetaFormatVersion, kFormatVersion);
      if (!s.ok()) return ToStatus(s, "write format version");
    } else if (!s.ok()) {
      return ToStatus(s, "read format version");
    } else if (format != kFormatVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("store at ", options_.path, " has format ", format, ", want ",
                       kFormatVersion));
    }
  }
  absl::StatusOr<int64_t> current = ReadMetaRevision(ro, kMetaCurrentRevision);
  if (!current.ok()) return current.status();
  absl::StatusOr<int64_t> compacted = ReadMetaRevision(ro, kMetaCompactedRevision);
  if (!compacted.ok()) return compacted.status();

  // The log's last entry and current_revision are written by the same batch, so they agree;
  // taking the maximum anyway guarantees revisions never go backwards.
  int64_t revision = *current;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, log_));
    it->SeekToLast();
    if (it->Valid()) {
      if (it->key().size() != 8) return absl::DataLossError("bad revision log key");
      revision = std::max(revision, DecodeRevision(it->key().data()));
    }
    if (!it->status().ok()) return ToStatus(it->status(), "read revision log");
  }
  {
    rocksdb::ReadOptions scan_ro;
    scan_ro.fill_cache = false;  // A one-off full scan should not evict the hot set.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan_ro, objects_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->value().size() < 8) {
        return absl::DataLossError(absl::StrCat("bad object \"", Absl(View(it->key())), "\""));
      }
      const int64_t mod = DecodeRevision(it->value().data());
      mod_revisions_.emplace(View(it->key()), mod);
      revision = std::max(revision, mod);
    }
    if (!it->status().ok()) return ToStatus(it->status(), "read objects");
  }
  current_revision_.store(revision, std::memory_order_release);
  compacted_revision_.store(std::min(*compacted, revision), std::memory_order_release);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> RocksDbStoreImpl::Commit(Write write) {
  PendingWrite pending(std::move(write));
  absl::MutexLock lock(&mu_);
  if (closing_) return absl::UnavailableError("store is closing");
  queue_.push_back(&pending);
  queue_cv_.Signal();
  while (!pending.done) pending.cv.Wait(&mu_);
  return std::move(pending.result);
}

void RocksDbStoreImpl::CommitAsync(Write write, CommitCallback done) {
  auto* pending = new PendingWrite(std::move(write), std::move(done));
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      queue_.push_back(pending);
      queue_cv_.Signal();
      return;
    }
  }
  std::unique_ptr<PendingWrite> refused(pending);
  refused->callback(absl::UnavailableError("store is closing"));
}

void RocksDbStoreImpl::CommitLoop() {
  std::vector<PendingWrite*> batch;
  batch.reserve(options_.max_batch);
  for (;;) {
    std::shared_ptr<const ObserverFn> observer;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !closing_) queue_cv_.Wait(&mu_);
      if (queue_.empty()) return;  // Closing, and every queued write is done.
      const size_t n = std::min(queue_.size(), options_.max_batch);
      batch.assign(queue_.begin(), queue_.begin() + n);
      queue_.erase(queue_.begin(), queue_.begin() + n);
      observer = observer_;
    }
    CommitBatch(batch, observer.get());
    batch.clear();
  }
}

absl::Status RocksDbStoreImpl::Stage(Write& w, int64_t revision,
                                     absl::flat_hash_map<std::string_view, size_t>& staged,
                                     std::vector<Event>& events, rocksdb::WriteBatch& wb) {
  if (w.key.empty()) return absl::InvalidArgumentError("empty key");
  if (w.key.size() > kMaxKeySize) return absl::InvalidArgumentError("key too large");
  if (w.value.has_value() && w.value->size() > kMaxValueSize) {
    return absl::InvalidArgumentError(absl::StrCat("value of \"", w.key, "\" too large"));
  }
  const int64_t expected = w.expected_mod_revision;
  if (expected < kAnyRevision) {
    return absl::InvalidArgumentError(absl::StrCat("bad expected mod revision ", expected));
  }
  const bool is_delete = !w.value.has_value();
  if (is_delete && expected == kMustNotExist) {
    return absl::InvalidArgumentError("a delete cannot require the key not to exist");
  }

  // The key's state as of the writes before this one: staged in this batch, else the index.
  int64_t actual = 0;
  const std::string* staged_value = nullptr;
  if (auto it = staged.find(w.key); it != staged.end()) {
    const Event& prev = events[it->second];
    if (prev.type == EventType::kPut) {
      actual = prev.revision;
      staged_value = &prev.value;
    }
  } else if (auto it = mod_revisions_.find(w.key); it != mod_revisions_.end()) {
    actual = it->second;
  }

  if (expected == kMustNotExist && actual != 0) {
    return Conflict(absl::StatusCode::kAlreadyExists, w.key, actual, "already exists");
  }
  if (expected > 0 && actual == 0) {
    return Conflict(absl::StatusCode::kNotFound, w.key, 0, "does not exist");
  }
  if (expected > 0 && actual != expected) {
    return Conflict(absl::StatusCode::kAborted, w.key, actual,
                    absl::StrCat("was modified: expected mod revision ", expected));
  }
  if (is_delete && actual == 0) {
    return Conflict(absl::StatusCode::kNotFound, w.key, 0, "does not exist");
  }

  std::string prev_value;
  if (staged_value != nullptr) {
    prev_value = *staged_value;
  } else if (actual != 0) {
    rocksdb::PinnableSlice old;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), objects_, w.key, &old);
    if (!s.ok()) return ToStatus(s, absl::StrCat("read previous value of \"", w.key, "\""));
    if (old.size() < 8 || DecodeRevision(old.data()) != actual) {
      return absl::DataLossError(absl::StrCat("object \"", w.key, "\" disagrees with the index"));
    }
    prev_value.assign(old.data() + 8, old.size() - 8);
  }

  Event& e = events.emplace_back();
  e.revision = revision;
  e.key = std::move(w.key);
  char rev[8];
  EncodeRevisionTo(revision, rev);
  rocksdb::Status s;
  if (is_delete) {
    e.type = EventType::kDelete;
    e.value = prev_value;
    e.prev_value = std::move(prev_value);
    s = wb.Delete(objects_, e.key);
  } else {
    e.type = EventType::kPut;
    e.created = actual == 0;
    e.value = std::move(*w.value);
    e.prev_value = std::move(prev_value);
    e.attachment = std::move(w.attachment);
    const rocksdb::Slice key_part(e.key);
    const rocksdb::Slice value_parts[2] = {rocksdb::Slice(rev, 8), rocksdb::Slice(e.value)};
    s = wb.Put(objects_, rocksdb::SliceParts(&key_part, 1), rocksdb::SliceParts(value_parts, 2));
  }
  if (s.ok()) s = wb.Put(log_, rocksdb::Slice(rev, 8), EncodeEvent(e));
  // Cannot fail given the size limits above; if it did, the batch is unusable, so the caller
  // fails all of it.
  if (!s.ok()) return absl::InternalError(absl::StrCat("build write batch: ", s.ToString()));
  // The view points into the event, which does not move: `events` has reserved capacity.
  staged.insert_or_assign(std::string_view(e.key), events.size() - 1);
  return absl::OkStatus();
}

void RocksDbStoreImpl::CommitBatch(absl::Span<PendingWrite* const> batch,
                                   const ObserverFn* observer) {
  std::vector<Event> events;
  events.reserve(batch.size());
  std::vector<PendingWrite*> accepted;
  accepted.reserve(batch.size());
  absl::flat_hash_map<std::string_view, size_t> staged;
  rocksdb::WriteBatch wb;
  absl::Status batch_error;

  const int64_t first = current_revision_.load(std::memory_order_relaxed) + 1;
  int64_t revision = first - 1;
  for (PendingWrite* p : batch) {
    const size_t events_before = events.size();
    absl::Status s = Stage(p->write, revision + 1, staged, events, wb);
    if (s.ok()) {
      ++revision;
      accepted.push_back(p);
      p->result = revision;
    } else {
      p->result = s;
      // Only a WriteBatch failure leaves a staged event behind: the batch is then unusable.
      if (events.size() != events_before) batch_error = s;
    }
  }

  if (!accepted.empty() && batch_error.ok()) {
    char rev[8];
    EncodeRevisionTo(revision, rev);
    rocksdb::Status s = wb.Put(meta_, kMetaCurrentRevision, rocksdb::Slice(rev, 8));
    if (s.ok()) {
      rocksdb::WriteOptions wo;
      wo.sync = options_.sync;
      s = db_->Write(wo, &wb);
      batches_.fetch_add(1, std::memory_order_relaxed);
      if (options_.sync) syncs_.fetch_add(1, std::memory_order_relaxed);
    }
    if (!s.ok()) batch_error = ToStatus(s, "commit");
  }

  bool request_compaction = false;
  if (!batch_error.ok()) {
    for (PendingWrite* p : accepted) p->result = batch_error;
    accepted.clear();
  } else if (!accepted.empty()) {
    for (const Event& e : events) {
      if (e.type == EventType::kPut) {
        auto [it, inserted] = mod_revisions_.try_emplace(e.key, e.revision);
        if (!inserted) it->second = e.revision;
      } else {
        mod_revisions_.erase(e.key);
      }
    }
    current_revision_.store(revision, std::memory_order_release);
    if (observer != nullptr) {
      for (const Event& e : events) (*observer)(e);
    }
    if (options_.log_retention > 0) {
      // Wake the retention thread once the log is a quarter past the limit, so that each
      // compaction drops a sizable range instead of one entry per commit.
      const int64_t slack = std::clamp<int64_t>(options_.log_retention / 4, 1, 10000);
      request_compaction = revision - compacted_revision_.load(std::memory_order_relaxed) >=
                           options_.log_retention + slack;
    }
  }

  commits_.fetch_add(accepted.size(), std::memory_order_relaxed);
  rejected_.fetch_add(batch.size() - accepted.size(), std::memory_order_relaxed);
  if (batch.size() > max_batch_size_.load(std::memory_order_relaxed)) {
    max_batch_size_.store(batch.size(), std::memory_order_relaxed);  // Only this thread writes.
  }

  std::vector<std::unique_ptr<PendingWrite>> callbacks;
  {
    absl::MutexLock lock(&mu_);
    for (PendingWrite* p : batch) {
      if (p->callback) {
        callbacks.emplace_back(p);
        continue;
      }
      p->done = true;
      p->cv.Signal();  // p may be destroyed as soon as mu_ is released.
    }
    if (request_compaction && !compaction_requested_) {
      compaction_requested_ = true;
      retention_cv_.Signal();
    }
  }
  // Outside the lock: a callback may queue another write.
  for (auto& p : callbacks) p->callback(std::move(p->result));
}

void RocksDbStoreImpl::RetentionLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline = absl::Now() + kRetentionPeriod;
      while (!closing_ && !compaction_requested_) {
        if (retention_cv_.WaitWithDeadline(&mu_, deadline)) break;  // Timed out.
      }
      if (closing_) return;
      compaction_requested_ = false;
    }
    const int64_t target = CurrentRevision() - options_.log_retention;
    if (target > CompactedRevision()) {
      // A failure (e.g. a full disk) is retried on the next round; commits report the
      // underlying problem themselves.
      Compact(target).IgnoreError();
    }
  }
}

absl::Status RocksDbStoreImpl::Compact(int64_t revision) {
  absl::MutexLock lock(&compact_mu_);
  const int64_t compacted = CompactedRevision();
  if (revision <= compacted) return absl::OkStatus();
  const int64_t current = CurrentRevision();
  if (revision > current) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot compact to revision ", revision, ": current revision is ", current));
  }
  rocksdb::WriteBatch wb;
  // Entries <= compacted are already gone: one range tombstone per compaction, covering only
  // the new range. RocksDB drops the covered entries as its compactions reach them.
  rocksdb::Status s = wb.DeleteRange(log_, EncodeRevision(compacted + 1),
                                     EncodeRevision(revision + 1));
  if (s.ok()) s = wb.Put(meta_, kMetaCompactedRevision, EncodeRevision(revision));
  if (s.ok()) {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    s = db_->Write(wo, &wb);
  }
  if (!s.ok()) return ToStatus(s, "compact");
  compacted_revision_.store(revision, std::memory_order_release);
  compactions_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<KeyValue>> RocksDbStoreImpl::Get(std::string_view key) {
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(rocksdb::ReadOptions(), objects_, rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) return ToStatus(s, "get");
  if (value.size() < 8) return absl::DataLossError(absl::StrCat("bad object \"", Absl(key), "\""));
  KeyValue kv;
  kv.key = std::string(key);
  kv.mod_revision = DecodeRevision(value.data());
  kv.value.assign(value.data() + 8, value.size() - 8);
  return kv;
}

absl::StatusOr<int64_t> RocksDbStoreImpl::Scan(std::string_view prefix,
                                               const std::function<void(const KeyValue&)>& fn) {
  // Declared first so that it outlives the iterator.
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  // current_revision is written in the same batch as the objects, so in the snapshot it is
  // exactly the revision of the data we return.
  absl::StatusOr<int64_t> revision = ReadMetaRevision(ro, kMetaCurrentRevision);
  if (!revision.ok()) return revision.status();

  const std::string upper = PrefixSuccessor(prefix);
  const rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, objects_));
  KeyValue kv;
  for (it->Seek(rocksdb::Slice(prefix.data(), prefix.size())); it->Valid(); it->Next()) {
    const std::string_view key = View(it->key());
    if (key.substr(0, prefix.size()) != prefix) break;
    const rocksdb::Slice value = it->value();
    if (value.size() < 8) {
      return absl::DataLossError(absl::StrCat("bad object \"", Absl(key), "\""));
    }
    kv.key.assign(key.data(), key.size());
    kv.mod_revision = DecodeRevision(value.data());
    kv.value.assign(value.data() + 8, value.size() - 8);
    fn(kv);
  }
  if (!it->status().ok()) return ToStatus(it->status(), "scan");
  return *revision;
}

absl::Status RocksDbStoreImpl::ReadLog(int64_t after_revision,
                                       const std::function<void(const Event&)>& fn) {
  if (after_revision < 0) {
    return absl::InvalidArgumentError(absl::StrCat("bad revision ", after_revision));
  }
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  // Read from the snapshot, not compacted_revision_: a compaction committed between reading
  // the atomic and taking the snapshot would otherwise silently hide events.
  absl::StatusOr<int64_t> compacted = ReadMetaRevision(ro, kMetaCompactedRevision);
  if (!compacted.ok()) return compacted.status();
  if (after_revision < *compacted) {
    return absl::OutOfRangeError(absl::StrCat("revision ", after_revision,
                                              " has been compacted; compacted revision is ",
                                              *compacted));
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, log_));
  Event e;
  int64_t next = after_revision + 1;
  for (it->Seek(EncodeRevision(next)); it->Valid(); it->Next(), ++next) {
    if (it->key().size() != 8) return absl::DataLossError("bad revision log key");
    e.revision = DecodeRevision(it->key().data());
    // Every revision has exactly one entry, so a gap means lost data, never a normal state.
    if (e.revision != next) {
      return absl::DataLossError(absl::StrCat("revision log has no entry for revision ", next));
    }
    if (!DecodeEvent(View(it->value()), &e)) {
      return absl::DataLossError(absl::StrCat("bad revision log entry ", e.revision));
    }
    fn(e);
  }
  return ToStatus(it->status(), "read revision log");
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(const RocksDbOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("RocksDbOptions.path is empty");
  if (options.max_batch == 0) return absl::InvalidArgumentError("RocksDbOptions.max_batch is 0");

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  // One flush and one compaction at a time is plenty for a control plane's write rate and
  // leaves the CPU to the apiserver.
  db_options.max_background_jobs = 2;
  // Write SST files back gradually instead of in one burst at the end of a flush.
  db_options.bytes_per_sync = 1 << 20;
  // The metadata family is tiny and rarely flushes, and a WAL file can only be deleted once
  // every family has flushed past it: without a cap, WALs would accumulate forever. The cap is
  // also what a restart after a crash replays: 64 MB (~25,000 pod writes) replays in ~0.5 s,
  // where 256 MB took ~1.2 s more, at no measurable cost in write throughput.
  db_options.max_total_wal_size = uint64_t{64} << 20;
  db_options.keep_log_file_num = 4;  // RocksDB's own info LOG files.
  // No enable_pipelined_write / concurrent writers: the committer is the only writer of
  // consequence and batches by itself.
  // Durable commits overwrite zeros instead of growing the WAL file: one disk write per
  // fdatasync instead of two (wal_file_system.h).
  std::unique_ptr<rocksdb::Env> env;
  if (options.sync) {
    env = rocksdb::NewCompositeEnv(NewZeroFilledWalFileSystem(rocksdb::FileSystem::Default()));
    db_options.env = env.get();
  }

  const std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(kBlockCacheBytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName,
       FamilyOptions(cache, /*bloom=*/false, /*block_size=*/4096, size_t{4} << 20)},
      // Small objects read by key: small blocks, bloom filter (10 bits/key, ~1% false
      // positives) so that a Get of a missing key rarely touches a data block.
      {kObjectsFamily, FamilyOptions(cache, /*bloom=*/true, /*block_size=*/4096,
                                     size_t{64} << 20)},
      // Only scanned in order: bigger blocks compress better, a filter would never be used.
      {kLogFamily, FamilyOptions(cache, /*bloom=*/false, /*block_size=*/16384,
                                 size_t{64} << 20)},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, families, &handles, &raw_db);
  if (!s.ok()) return ToStatus(s, absl::StrCat("open ", options.path));

  auto store = std::make_unique<RocksDbStoreImpl>(options, std::move(env),
                                                  std::unique_ptr<rocksdb::DB>(raw_db),
                                                  handles[0], handles[1], handles[2]);
  if (absl::Status recovered = store->Recover(); !recovered.ok()) return recovered;
  store->Start();
  return store;
}

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = RocksDbStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace capstan::storage
