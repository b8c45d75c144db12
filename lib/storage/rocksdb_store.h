// A Store on RocksDB, with group commit and automatic log retention.
//
// Usage:
//   capstan::storage::RocksDbOptions options;
//   options.path = "/var/lib/capstan/store";
//   absl::StatusOr<std::unique_ptr<Store>> store = capstan::storage::OpenRocksDbStore(options);
//
// See rocksdb_store.cc for the on-disk layout and the commit pipeline.

#ifndef CAPSTAN_LIB_STORAGE_ROCKSDB_STORE_H_
#define CAPSTAN_LIB_STORAGE_ROCKSDB_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "lib/storage/store.h"

namespace capstan::storage {

struct RocksDbOptions {
  // Directory of the database; created if missing. Only one store may have it open at a time
  // (RocksDB holds a lock file).
  std::string path;
  // Fsync the write-ahead log before Commit returns. false only for tests and benchmarks that
  // say so: a machine crash (not a process crash) may then lose acknowledged writes.
  bool sync = true;
  // Number of most recent revisions whose log entries are kept; older ones are compacted
  // automatically by a background thread (every few seconds, or sooner once the log has grown
  // a quarter past the limit), never on the commit path. <= 0 disables automatic compaction.
  int64_t log_retention = 100000;
  // Most writes one group commit (one WriteBatch, one fsync) takes from the queue.
  size_t max_batch = 1024;
};

// Counters of a RocksDbStore, for tests, benchmarks and metrics. Monotonic.
struct RocksDbStoreStats {
  uint64_t commits = 0;          // Writes that succeeded (== revisions assigned).
  uint64_t rejected = 0;         // Writes that failed (conditions, invalid, storage errors).
  uint64_t batches = 0;          // Group commits written to RocksDB (one WriteBatch each).
  uint64_t syncs = 0;            // Of those, written with sync (one WAL fsync each).
  uint64_t max_batch_size = 0;   // Largest number of writes taken in one group.
  uint64_t compactions = 0;      // Log compactions performed (manual and automatic).
};

// The RocksDB backend, with its introspection methods. Most callers only need Store.
class RocksDbStore : public Store {
 public:
  // Opens (creating if needed) the store at options.path and recovers its current revision,
  // compacted revision and key -> mod revision index. The caller owns the result; destroying
  // it finishes queued writes, stops the background threads and closes the database.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(const RocksDbOptions& options);

  // Number of WriteBatch writes done with sync (fsyncs of the log) by group commits. Under
  // concurrency this is smaller than the number of commits.
  virtual uint64_t SyncCount() const = 0;

  virtual RocksDbStoreStats GetStats() const = 0;
};

// Same as RocksDbStore::Open, for callers that only need the Store interface.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(const RocksDbOptions& options);

}  // namespace capstan::storage

#endif  // CAPSTAN_LIB_STORAGE_ROCKSDB_STORE_H_
