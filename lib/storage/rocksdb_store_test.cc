#include "lib/storage/rocksdb_store.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/storage/store.h"

extern char** environ;

namespace capstan::storage {
namespace {

// ---- Helpers -------------------------------------------------------------------------------

// A fresh directory under the test's temp dir, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl =
        (base != nullptr ? std::filesystem::path(base) : std::filesystem::temp_directory_path()) /
        "store.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Write Put(std::string key, std::string value, int64_t expected = kAnyRevision) {
  return Write{std::move(key), std::move(value), expected};
}

Write Del(std::string key, int64_t expected = kAnyRevision) {
  return Write{std::move(key), std::nullopt, expected};
}

RocksDbOptions Options(const std::string& path) {
  RocksDbOptions options;
  options.path = path + "/db";
  return options;
}

std::unique_ptr<RocksDbStore> MustOpen(const RocksDbOptions& options) {
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store = RocksDbStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Commits and expects success; returns the revision (or -1 after a failure was recorded).
int64_t MustCommit(Store& store, Write write) {
  const std::string key = write.key;
  absl::StatusOr<int64_t> r = store.Commit(std::move(write));
  EXPECT_TRUE(r.ok()) << key << ": " << r.status();
  return r.ok() ? *r : -1;
}

std::vector<Event> ReadAll(Store& store, int64_t after, absl::Status* status = nullptr) {
  std::vector<Event> events;
  absl::Status s = store.ReadLog(after, [&](const Event& e) { events.push_back(e); });
  if (status != nullptr) {
    *status = s;
  } else {
    EXPECT_TRUE(s.ok()) << s;
  }
  return events;
}

std::vector<KeyValue> ScanAll(Store& store, std::string_view prefix, int64_t* revision = nullptr) {
  std::vector<KeyValue> out;
  absl::StatusOr<int64_t> r = store.Scan(prefix, [&](const KeyValue& kv) { out.push_back(kv); });
  EXPECT_TRUE(r.ok()) << r.status();
  if (revision != nullptr) *revision = r.ok() ? *r : -1;
  return out;
}

std::vector<std::string> Keys(const std::vector<KeyValue>& kvs) {
  std::vector<std::string> keys;
  for (const KeyValue& kv : kvs) keys.push_back(kv.key);
  return keys;
}

// ---- Basic semantics -----------------------------------------------------------------------

TEST(RocksDbStoreTest, ConditionsAndErrorCodes) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CurrentRevision(), 0);

  // Create.
  EXPECT_EQ(MustCommit(*store, Put("/a", "v1", kMustNotExist)), 1);
  absl::StatusOr<std::optional<KeyValue>> got = store->Get("/a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->value, "v1");
  EXPECT_EQ((*got)->mod_revision, 1);

  // Create of an existing key: AlreadyExists, carrying the actual mod revision.
  absl::StatusOr<int64_t> r = store->Commit(Put("/a", "v2", kMustNotExist));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  EXPECT_EQ(ConflictModRevision(r.status()), 1);

  // Conditional update.
  EXPECT_EQ(MustCommit(*store, Put("/a", "v2", 1)), 2);
  r = store->Commit(Put("/a", "v3", 1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(ConflictModRevision(r.status()), 2);

  // Conditional write / delete of a missing key: NotFound; so is any delete of a missing key.
  r = store->Commit(Put("/missing", "x", 5));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_EQ(ConflictModRevision(r.status()), 0);
  EXPECT_EQ(store->Commit(Del("/missing", 5)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->Commit(Del("/missing")).status().code(), absl::StatusCode::kNotFound);

  // Conditional delete with a stale revision.
  r = store->Commit(Del("/a", 1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(ConflictModRevision(r.status()), 2);

  // Unconditional update, conditional delete, re-create.
  EXPECT_EQ(MustCommit(*store, Put("/a", "v3")), 3);
  EXPECT_EQ(MustCommit(*store, Del("/a", 3)), 4);
  got = store->Get("/a");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  EXPECT_EQ(MustCommit(*store, Put("/a", "again", kMustNotExist)), 5);

  // Invalid writes.
  EXPECT_EQ(store->Commit(Put("", "x")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit(Put("/k", "x", -2)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Commit(Del("/k", kMustNotExist)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ConflictModRevision(absl::InvalidArgumentError("x")), std::nullopt);

  // Rejected writes consumed no revision.
  EXPECT_EQ(store->CurrentRevision(), 5);
  const RocksDbStoreStats stats = store->GetStats();
  EXPECT_EQ(stats.commits, 5u);
  EXPECT_EQ(stats.rejected, 9u);
  EXPECT_EQ(ReadAll(*store, 0).size(), 5u);
}

TEST(RocksDbStoreTest, RevisionsStrictlyIncrease) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  int64_t last = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string key = absl::StrCat("/k", i % 7);
    absl::StatusOr<int64_t> r =
        (i % 5 == 4) ? store->Commit(Del(key)) : store->Commit(Put(key, absl::StrCat(i)));
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
      continue;
    }
    EXPECT_EQ(*r, last + 1);  // Strictly increasing and gap-free.
    EXPECT_EQ(store->CurrentRevision(), *r);
    last = *r;
  }
}

TEST(RocksDbStoreTest, ScanPrefix) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  for (const char* key : {"/b/1", "/a/2", "/ab", "/a/1", "/a/3", "\xff\xff", "\xff\xffx"}) {
    MustCommit(*store, Put(key, absl::StrCat("value of ", key)));
  }
  int64_t revision = 0;
  std::vector<KeyValue> kvs = ScanAll(*store, "/a/", &revision);
  EXPECT_EQ(revision, 7);
  EXPECT_EQ(Keys(kvs), (std::vector<std::string>{"/a/1", "/a/2", "/a/3"}));
  ASSERT_EQ(kvs.size(), 3u);
  EXPECT_EQ(kvs[0].value, "value of /a/1");
  EXPECT_EQ(kvs[0].mod_revision, 4);
  EXPECT_EQ(kvs[1].mod_revision, 2);

  EXPECT_EQ(Keys(ScanAll(*store, "")),
            (std::vector<std::string>{"/a/1", "/a/2", "/a/3", "/ab", "/b/1", "\xff\xff",
                                      "\xff\xffx"}));
  EXPECT_EQ(Keys(ScanAll(*store, "/a")), (std::vector<std::string>{"/a/1", "/a/2", "/a/3", "/ab"}));
  EXPECT_EQ(Keys(ScanAll(*store, "\xff\xff")), (std::vector<std::string>{"\xff\xff", "\xff\xffx"}));
  EXPECT_TRUE(ScanAll(*store, "/c").empty());

  MustCommit(*store, Del("/a/2"));
  EXPECT_EQ(Keys(ScanAll(*store, "/a/", &revision)), (std::vector<std::string>{"/a/1", "/a/3"}));
  EXPECT_EQ(revision, 8);
}

TEST(RocksDbStoreTest, ReadLogReturnsLaterEventsInOrder) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  MustCommit(*store, Put("/x", "1", kMustNotExist));  // 1
  MustCommit(*store, Put("/x", "2", 1));              // 2
  MustCommit(*store, Put("/y", "a"));                 // 3
  MustCommit(*store, Del("/x"));                      // 4
  MustCommit(*store, Put("/x", "3"));                 // 5

  std::vector<Event> all = ReadAll(*store, 0);
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i].revision, static_cast<int64_t>(i + 1));
  EXPECT_EQ(all[0].type, EventType::kPut);
  EXPECT_EQ(all[0].key, "/x");
  EXPECT_EQ(all[0].value, "1");
  EXPECT_EQ(all[0].prev_value, "");
  EXPECT_TRUE(all[0].created);
  EXPECT_EQ(all[1].value, "2");
  EXPECT_EQ(all[1].prev_value, "1");
  EXPECT_FALSE(all[1].created);
  EXPECT_EQ(all[2].key, "/y");
  EXPECT_TRUE(all[2].created);
  EXPECT_EQ(all[3].type, EventType::kDelete);
  EXPECT_EQ(all[3].key, "/x");
  EXPECT_EQ(all[3].value, "2");
  EXPECT_EQ(all[3].prev_value, "2");
  EXPECT_FALSE(all[3].created);
  EXPECT_EQ(all[4].type, EventType::kPut);
  EXPECT_EQ(all[4].value, "3");
  EXPECT_EQ(all[4].prev_value, "");
  EXPECT_TRUE(all[4].created);

  std::vector<Event> later = ReadAll(*store, 2);
  ASSERT_EQ(later.size(), 3u);
  EXPECT_EQ(later[0].revision, 3);
  EXPECT_EQ(later[2].revision, 5);
  EXPECT_TRUE(ReadAll(*store, 5).empty());
  EXPECT_TRUE(ReadAll(*store, 100).empty());
  absl::Status s;
  ReadAll(*store, -1, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(RocksDbStoreTest, CompactThenReadLogBeforeItIsOutOfRange) {
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 10; ++i) MustCommit(*store, Put(absl::StrCat("/k", i % 3), "v"));
  EXPECT_EQ(store->CompactedRevision(), 0);
  ASSERT_TRUE(store->Compact(4).ok());
  EXPECT_EQ(store->CompactedRevision(), 4);

  absl::Status s;
  ReadAll(*store, 3, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  ReadAll(*store, 0, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  std::vector<Event> events = ReadAll(*store, 4);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events.front().revision, 5);
  EXPECT_EQ(events.back().revision, 10);

  EXPECT_TRUE(store->Compact(2).ok());  // Already compacted past it: no-op.
  EXPECT_EQ(store->CompactedRevision(), 4);
  EXPECT_EQ(store->Compact(11).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(store->Compact(10).ok());
  EXPECT_TRUE(ReadAll(*store, 10).empty());
  ReadAll(*store, 9, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);

  // Compaction only affects the log.
  EXPECT_EQ(ScanAll(*store, "/").size(), 3u);
  MustCommit(*store, Put("/k0", "w"));
  events = ReadAll(*store, 10);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].prev_value, "v");
}

TEST(RocksDbStoreTest, ReopenKeepsRevisionDataAndCompaction) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.path());
  {
    std::unique_ptr<RocksDbStore> store = MustOpen(options);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 20; ++i) {
      MustCommit(*store, Put(absl::StrCat("/k", i % 5), absl::StrCat(i)));
    }
    MustCommit(*store, Del("/k4"));  // 21
    ASSERT_TRUE(store->Compact(15).ok());
  }
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CurrentRevision(), 21);
  EXPECT_EQ(store->CompactedRevision(), 15);
  std::vector<KeyValue> kvs = ScanAll(*store, "/");
  ASSERT_EQ(kvs.size(), 4u);
  EXPECT_EQ(kvs[0].key, "/k0");
  EXPECT_EQ(kvs[0].value, "15");
  EXPECT_EQ(kvs[0].mod_revision, 16);
  absl::Status s;
  ReadAll(*store, 14, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  std::vector<Event> events = ReadAll(*store, 15);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events.back().type, EventType::kDelete);

  // The key index was recovered: conditions see the old mod revisions.
  EXPECT_EQ(store->Commit(Put("/k0", "x", kMustNotExist)).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->Commit(Put("/k0", "x", 15)).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store->Commit(Put("/k4", "x", 20)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(MustCommit(*store, Put("/k0", "x", 16)), 22);
  EXPECT_EQ(MustCommit(*store, Put("/k4", "x", kMustNotExist)), 23);
}

TEST(RocksDbStoreTest, ReopenEmptyStore) {
  TempDir dir;
  const RocksDbOptions options = Options(dir.path());
  { ASSERT_NE(MustOpen(options), nullptr); }
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->CurrentRevision(), 0);
  EXPECT_EQ(store->CompactedRevision(), 0);
  EXPECT_EQ(MustCommit(*store, Put("/a", "b")), 1);
}

TEST(RocksDbStoreTest, OpenFailsOnBadOptionsAndLockedDirectory) {
  TempDir dir;
  EXPECT_EQ(OpenRocksDbStore(RocksDbOptions{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const RocksDbOptions options = Options(dir.path());
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(OpenRocksDbStore(options).ok());  // RocksDB's LOCK file.
}

// ---- Background retention ------------------------------------------------------------------

TEST(RocksDbStoreTest, AutomaticRetentionCompaction) {
  TempDir dir;
  RocksDbOptions options = Options(dir.path());
  options.log_retention = 20;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 200; ++i) MustCommit(*store, Put(absl::StrCat("/k", i % 10), "v"));

  // The committer asks for a compaction once the log is 20 + 5 long; it runs in the background,
  // so wait for it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (store->CurrentRevision() - store->CompactedRevision() > 25 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int64_t compacted = store->CompactedRevision();
  EXPECT_GE(compacted, 200 - 25);
  EXPECT_LE(compacted, 200 - 20);  // Never more than the retention asks for.
  EXPECT_GE(store->GetStats().compactions, 1u);
  absl::Status s;
  ReadAll(*store, 0, &s);
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange);
  std::vector<Event> events = ReadAll(*store, compacted);
  ASSERT_EQ(events.size(), static_cast<size_t>(200 - compacted));
  EXPECT_EQ(events.back().revision, 200);

  // Without further commits the periodic pass (every few seconds) trims to exactly 20.
  const auto deadline2 = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (store->CompactedRevision() < 180 && std::chrono::steady_clock::now() < deadline2) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(store->CompactedRevision(), 180);
}

// Below the commit-count trigger, the periodic pass (every few seconds) still enforces the
// retention.
TEST(RocksDbStoreTest, PeriodicRetentionCompaction) {
  TempDir dir;
  RocksDbOptions options = Options(dir.path());
  options.log_retention = 100;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 110; ++i) MustCommit(*store, Put(absl::StrCat("/k", i % 10), "v"));
  EXPECT_EQ(store->CompactedRevision(), 0);  // 110 < 100 + 25: no request from the committer.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (store->CompactedRevision() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(store->CompactedRevision(), 10);
  EXPECT_EQ(ReadAll(*store, 10).size(), 100u);
}

TEST(RocksDbStoreTest, RetentionDisabled) {
  TempDir dir;
  RocksDbOptions options = Options(dir.path());
  options.log_retention = 0;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 50; ++i) MustCommit(*store, Put("/k", "v"));
  EXPECT_EQ(store->CompactedRevision(), 0);
  EXPECT_EQ(ReadAll(*store, 0).size(), 50u);
}

// ---- Concurrency ---------------------------------------------------------------------------

TEST(RocksDbStoreTest, ConcurrentWritersGroupCommit) {
  constexpr int kThreads = 16;
  constexpr int kWritesPerThread = 200;
  constexpr int kTotal = kThreads * kWritesPerThread;
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);

  // The observer runs on the commit thread only; the mutex is for the test thread's reads.
  absl::Mutex mu;
  std::vector<Event> observed;
  std::atomic<int64_t> last_observed{0};
  store->SetObserver([&](const Event& e) {
    absl::MutexLock lock(&mu);
    observed.push_back(e);
    last_observed.store(e.revision);
  });

  std::vector<std::vector<int64_t>> revisions(kThreads);
  std::atomic<int> observer_late{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        absl::StatusOr<int64_t> r = store->Commit(
            Put(absl::StrCat("/t", t, "/", i), std::string(100, 'a' + t), kMustNotExist));
        if (!r.ok()) {
          ADD_FAILURE() << r.status();
          continue;
        }
        // The observer saw R before Commit returned R.
        if (last_observed.load() < *r) observer_late.fetch_add(1);
        revisions[t].push_back(*r);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(observer_late.load(), 0);

  // Every write succeeded, with distinct, gap-free revisions; each thread's are increasing.
  std::vector<int64_t> all;
  for (const std::vector<int64_t>& rs : revisions) {
    EXPECT_TRUE(std::is_sorted(rs.begin(), rs.end()));
    all.insert(all.end(), rs.begin(), rs.end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kTotal));
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(all[i], i + 1);
  EXPECT_EQ(store->CurrentRevision(), kTotal);

  // The observer saw every event exactly once, in order, and they match the log.
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(observed.size(), static_cast<size_t>(kTotal));
    for (int i = 0; i < kTotal; ++i) ASSERT_EQ(observed[i].revision, i + 1);
    std::vector<Event> log = ReadAll(*store, 0);
    ASSERT_EQ(log.size(), observed.size());
    for (int i = 0; i < kTotal; ++i) {
      EXPECT_EQ(log[i].key, observed[i].key);
      EXPECT_EQ(log[i].value, observed[i].value);
      EXPECT_TRUE(observed[i].created);
    }
  }

  // Group commit grouped: fewer fsyncs than writes.
  const RocksDbStoreStats stats = store->GetStats();
  EXPECT_EQ(stats.commits, static_cast<uint64_t>(kTotal));
  EXPECT_EQ(store->SyncCount(), stats.batches);
  EXPECT_LT(store->SyncCount(), static_cast<uint64_t>(kTotal));
  EXPECT_GT(stats.max_batch_size, 1u);
  std::cout << "syncs for " << kTotal << " writes: " << store->SyncCount()
            << ", largest group: " << stats.max_batch_size << "\n";
}

// CommitAsync: many writes in flight from one thread share fsyncs; each callback gets what
// Commit would have returned, after the observer has seen the event; a callback may queue
// another write; writes queued when the store closes are still finished.
TEST(RocksDbStoreTest, CommitAsyncCallsBackAfterTheWriteIsDurable) {
  constexpr int kWrites = 2000;
  TempDir dir;
  RocksDbOptions options = Options(dir.path());
  absl::Mutex mu;
  std::vector<absl::StatusOr<int64_t>> results(kWrites + 2);
  int called = 0;
  int observer_late = 0;
  {
    std::unique_ptr<RocksDbStore> store = MustOpen(options);
    ASSERT_NE(store, nullptr);
    std::atomic<int64_t> last_observed{0};
    store->SetObserver([&](const Event& e) { last_observed.store(e.revision); });
    auto record = [&](int i) {
      return [&, i](absl::StatusOr<int64_t> r) {
        absl::MutexLock lock(&mu);
        if (r.ok() && last_observed.load() < *r) ++observer_late;
        results[i] = std::move(r);
        ++called;
      };
    };
    for (int i = 0; i < kWrites; ++i) {
      store->CommitAsync(Put(absl::StrCat("/a/", i), "v", kMustNotExist), record(i));
    }
    // A refused write is refused through its callback, with Commit's error.
    store->CommitAsync(Put("/a/0", "again", kMustNotExist), record(kWrites));
    // A callback that queues the next write (as a retry does).
    store->CommitAsync(Put("/chain", "1"), [&, next = record(kWrites + 1)](absl::StatusOr<int64_t> r) {
      ASSERT_TRUE(r.ok()) << r.status();
      store->CommitAsync(Put("/chain", "2", *r), next);
    });
    absl::MutexLock lock(&mu);
    auto all_called = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return called == kWrites + 2; };
    mu.Await(absl::Condition(&all_called));
    const RocksDbStoreStats stats = store->GetStats();
    EXPECT_LT(stats.batches, static_cast<uint64_t>(kWrites) / 4) << "writes in flight share fsyncs";
  }
  EXPECT_EQ(observer_late, 0);
  std::vector<int64_t> revisions;
  for (int i = 0; i < kWrites; ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    revisions.push_back(*results[i]);
  }
  std::sort(revisions.begin(), revisions.end());
  EXPECT_EQ(std::adjacent_find(revisions.begin(), revisions.end()), revisions.end());
  EXPECT_EQ(results[kWrites].status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ConflictModRevision(results[kWrites].status()), *results[0]);
  ASSERT_TRUE(results[kWrites + 1].ok()) << results[kWrites + 1].status();

  // Everything acknowledged is there after reopening.
  std::unique_ptr<RocksDbStore> reopened = MustOpen(options);
  ASSERT_NE(reopened, nullptr);
  absl::StatusOr<std::optional<KeyValue>> chain = reopened->Get("/chain");
  ASSERT_TRUE(chain.ok() && chain->has_value());
  EXPECT_EQ((*chain)->value, "2");
  EXPECT_EQ((*chain)->mod_revision, *results[kWrites + 1]);
  int count = 0;
  ASSERT_TRUE(reopened->Scan("/a/", [&](const KeyValue&) { ++count; }).ok());
  EXPECT_EQ(count, kWrites);
}

TEST(RocksDbStoreTest, MaxBatchOneMeansOneSyncPerWrite) {
  TempDir dir;
  RocksDbOptions options = Options(dir.path());
  options.max_batch = 1;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) MustCommit(*store, Put(absl::StrCat("/", t, "/", i), "v"));
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(store->SyncCount(), 80u);
  EXPECT_EQ(store->GetStats().max_batch_size, 1u);
}

// Optimistic concurrency: racing read-modify-write loops lose no update, and racing creates of
// one key let exactly one through. Racing writers land in the same group, so this also checks
// that a write sees the writes before it in its group.
TEST(RocksDbStoreTest, OptimisticConcurrency) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  TempDir dir;
  std::unique_ptr<RocksDbStore> store = MustOpen(Options(dir.path()));
  ASSERT_NE(store, nullptr);
  MustCommit(*store, Put("/counter", "0", kMustNotExist));

  std::atomic<int> created{0};
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      absl::StatusOr<int64_t> c = store->Commit(Put("/once", "x", kMustNotExist));
      if (c.ok()) {
        created.fetch_add(1);
      } else {
        EXPECT_EQ(c.status().code(), absl::StatusCode::kAlreadyExists) << c.status();
      }
      for (int i = 0; i < kIncrements;) {
        absl::StatusOr<std::optional<KeyValue>> kv = store->Get("/counter");
        ASSERT_TRUE(kv.ok() && kv->has_value());
        const int value = std::stoi((*kv)->value);
        absl::StatusOr<int64_t> r =
            store->Commit(Put("/counter", std::to_string(value + 1), (*kv)->mod_revision));
        if (r.ok()) {
          ++i;
        } else {
          ASSERT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
          conflicts.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  absl::StatusOr<std::optional<KeyValue>> kv = store->Get("/counter");
  ASSERT_TRUE(kv.ok() && kv->has_value());
  EXPECT_EQ((*kv)->value, std::to_string(kThreads * kIncrements));
  EXPECT_EQ(store->CurrentRevision(), 1 + 1 + kThreads * kIncrements);
  // Each event's prev_value is the value before it: the log replays the counter exactly.
  int expected = 0;
  for (const Event& e : ReadAll(*store, 1)) {
    if (e.key != "/counter") continue;
    EXPECT_EQ(e.prev_value, std::to_string(expected));
    EXPECT_EQ(e.value, std::to_string(++expected));
  }
  std::cout << "conflicts: " << conflicts.load() << "\n";
}

// ---- Durability across kill -9 -------------------------------------------------------------

// The crash test re-executes this binary with these variables set; it then runs CrashChild()
// instead of the tests, once every static initializer has run (RocksDB's own, linked into this
// binary, run in no set order with this file's). A fresh process (rather than a bare fork() of the test
// process) keeps RocksDB's process-wide thread pools intact in the child.
constexpr char kCrashChildDirEnv[] = "CAPSTAN_STORE_CRASH_CHILD_DIR";
constexpr char kCrashChildFdEnv[] = "CAPSTAN_STORE_CRASH_CHILD_FD";
constexpr int kCrashChildThreads = 4;

// What the child reports for each acknowledged Commit. Smaller than PIPE_BUF, so concurrent
// writes to the pipe do not interleave.
struct Ack {
  int64_t revision;
  int32_t thread;
  int32_t index;
};

std::string CrashKey(int thread, int index) { return absl::StrCat("/crash/", thread, "/", index); }
std::string CrashValue(int thread, int index) {
  return absl::StrCat("value-", thread, "-", index, std::string(200, 'v'));
}

[[noreturn]] void CrashChild(const char* dir, int fd) {
  RocksDbOptions options;
  options.path = dir;
  absl::StatusOr<std::unique_ptr<Store>> store = OpenRocksDbStore(options);
  if (!store.ok()) _exit(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < kCrashChildThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0;; ++i) {
        absl::StatusOr<int64_t> r =
            (*store)->Commit(Put(CrashKey(t, i), CrashValue(t, i), kMustNotExist));
        if (!r.ok()) _exit(3);
        const Ack ack{*r, t, i};
        if (write(fd, &ack, sizeof ack) != sizeof ack) _exit(4);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  _exit(0);
}

// Runs CrashChild() where gtest would start the tests.
class CrashChildEnvironment : public testing::Environment {
 public:
  CrashChildEnvironment(const char* dir, int fd) : dir_(dir), fd_(fd) {}
  void SetUp() override { CrashChild(dir_, fd_); }

 private:
  const char* dir_;
  int fd_;
};

const bool kIsCrashChild = [] {
  const char* dir = std::getenv(kCrashChildDirEnv);
  const char* fd = std::getenv(kCrashChildFdEnv);
  if (dir == nullptr || fd == nullptr) return false;
  testing::AddGlobalTestEnvironment(new CrashChildEnvironment(dir, std::atoi(fd)));
  return true;
}();

TEST(RocksDbStoreTest, AcknowledgedWritesSurviveKill9) {
  ASSERT_FALSE(kIsCrashChild);
  TempDir dir;
  const std::string db_path = dir.path() + "/db";
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);

  // Everything the child needs is built before fork(): after it, only async-signal-safe calls.
  std::vector<std::string> env_strings = {absl::StrCat(kCrashChildDirEnv, "=", db_path),
                                          absl::StrCat(kCrashChildFdEnv, "=", fds[1])};
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};

  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    execve(self, argv, envp.data());
    _exit(127);
  }
  close(fds[1]);

  // Let the child get well into its stream, then kill it mid-stream.
  constexpr size_t kAcksBeforeKill = 300;
  std::vector<Ack> acks;
  Ack ack;
  size_t filled = 0;
  auto read_ack = [&]() -> bool {  // false at EOF
    while (filled < sizeof ack) {
      const ssize_t n = read(fds[0], reinterpret_cast<char*>(&ack) + filled, sizeof ack - filled);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      filled += n;
    }
    filled = 0;
    return true;
  };
  while (acks.size() < kAcksBeforeKill && read_ack()) acks.push_back(ack);
  ASSERT_EQ(acks.size(), kAcksBeforeKill) << "the child stopped early";
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  // Acks already in the pipe were acknowledged before the kill: they count too.
  while (read_ack()) acks.push_back(ack);
  close(fds[0]);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL) << wstatus;

  RocksDbOptions options;
  options.path = db_path;
  std::unique_ptr<RocksDbStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  int64_t max_acked = 0;
  absl::flat_hash_set<int64_t> seen;
  for (const Ack& a : acks) {
    EXPECT_TRUE(seen.insert(a.revision).second) << "revision " << a.revision << " acked twice";
    max_acked = std::max(max_acked, a.revision);
    absl::StatusOr<std::optional<KeyValue>> kv = store->Get(CrashKey(a.thread, a.index));
    ASSERT_TRUE(kv.ok()) << kv.status();
    ASSERT_TRUE(kv->has_value()) << "lost acknowledged write at revision " << a.revision;
    EXPECT_EQ((*kv)->value, CrashValue(a.thread, a.index));
    EXPECT_EQ((*kv)->mod_revision, a.revision);
  }
  EXPECT_GE(store->CurrentRevision(), max_acked);
  // The log is intact and gap-free up to the recovered revision.
  EXPECT_EQ(ReadAll(*store, 0).size(), static_cast<size_t>(store->CurrentRevision()));
  // Revisions do not go backwards.
  EXPECT_GT(MustCommit(*store, Put("/after", "crash")), max_acked);
  std::cout << "acknowledged before/after kill: " << kAcksBeforeKill << "/" << acks.size()
            << ", recovered revision " << store->CurrentRevision() - 1 << "\n";
}

}  // namespace
}  // namespace capstan::storage
