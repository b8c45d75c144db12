// Durable Commit throughput and latency of the RocksDB store.
//
// For each number of concurrent writers, opens a fresh store (sync = true: every Commit waits
// for an fsync of the WAL, shared by group commit) and runs two workloads for --seconds each:
//   create: every commit creates a new key (kMustNotExist), so no previous value is read;
//   update: every writer updates its own 16 keys conditionally on their mod revision, so the
//           committer reads the previous value (for the event's prev_value) on every write.
// Values are --value_bytes (default 1 KiB) of incompressible bytes.
//
//   bazel run -c opt //bench:storage_bench -- --seconds=3 --threads=1,16,256

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/report.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/storage/rocksdb_store.h"
#include "lib/storage/store.h"

ABSL_FLAG(std::string, dir, "",
          "Directory for the benchmark's databases (default: a new one under $TEST_TMPDIR or "
          "the system temp directory); removed afterwards.");
ABSL_FLAG(double, seconds, 3.0, "Duration of each run.");
ABSL_FLAG(std::vector<std::string>, threads, std::vector<std::string>({"1", "16", "256"}),
          "Numbers of concurrent writer threads.");
ABSL_FLAG(int, value_bytes, 1024, "Size of each value.");
ABSL_FLAG(bool, sync, true, "Fsync the WAL on every group commit (the durable mode).");

namespace capstan::storage {
namespace {

using Clock = std::chrono::steady_clock;

struct Result {
  uint64_t commits = 0;
  double seconds = 0;
  std::vector<double> latencies_us;  // Sorted.
  RocksDbStoreStats stats;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[i];
}

std::string RandomValue(std::mt19937_64& rng, int bytes) {
  std::string v(bytes, '\0');
  for (char& c : v) c = static_cast<char>(rng());
  return v;
}

Result Run(const std::string& path, int threads, bool update, double seconds, int value_bytes) {
  RocksDbOptions options;
  options.path = path;
  options.sync = absl::GetFlag(FLAGS_sync);
  absl::StatusOr<std::unique_ptr<RocksDbStore>> opened = RocksDbStore::Open(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "open %s: %s\n", path.c_str(), opened.status().ToString().c_str());
    std::exit(1);
  }
  RocksDbStore& store = **opened;
  constexpr int kKeysPerWriter = 16;

  // Per-writer key -> mod revision for the update workload, created before timing.
  std::vector<std::vector<int64_t>> mod(threads, std::vector<int64_t>(kKeysPerWriter, 0));
  if (update) {
    std::mt19937_64 rng(42);
    for (int t = 0; t < threads; ++t) {
      for (int k = 0; k < kKeysPerWriter; ++k) {
        absl::StatusOr<int64_t> r = store.Commit(
            Write{absl::StrCat("/bench/u", t, "/", k), RandomValue(rng, value_bytes),
                  kMustNotExist});
        if (!r.ok()) std::exit(1);
        mod[t][k] = *r;
      }
    }
  }
  const RocksDbStoreStats before = store.GetStats();

  std::atomic<bool> stop{false};
  std::atomic<int> ready{0};
  std::vector<std::vector<double>> latencies(threads);
  std::vector<std::thread> workers;
  const auto deadline_after = std::chrono::duration<double>(seconds);
  Clock::time_point start;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      // A few distinct values per writer, generated up front so that the timed loop measures
      // the store, not the random number generator.
      std::vector<std::string> values;
      for (int i = 0; i < 8; ++i) values.push_back(RandomValue(rng, value_bytes));
      latencies[t].reserve(1 << 16);
      ready.fetch_add(1);
      while (ready.load() < threads + 1) std::this_thread::yield();
      for (uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        Write w;
        if (update) {
          const int k = i % kKeysPerWriter;
          w = Write{absl::StrCat("/bench/u", t, "/", k), values[i % values.size()], mod[t][k]};
        } else {
          w = Write{absl::StrCat("/bench/c", t, "/", i), values[i % values.size()],
                    kMustNotExist};
        }
        const Clock::time_point begin = Clock::now();
        absl::StatusOr<int64_t> r = store.Commit(std::move(w));
        const Clock::time_point end = Clock::now();
        if (!r.ok()) {
          std::fprintf(stderr, "commit: %s\n", r.status().ToString().c_str());
          std::exit(1);
        }
        if (update) mod[t][i % kKeysPerWriter] = *r;
        latencies[t].push_back(std::chrono::duration<double, std::micro>(end - begin).count());
      }
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  start = Clock::now();
  ready.fetch_add(1);
  std::this_thread::sleep_for(deadline_after);
  stop.store(true);
  for (std::thread& w : workers) w.join();
  const Clock::time_point end = Clock::now();

  Result result;
  result.seconds = std::chrono::duration<double>(end - start).count();
  for (const std::vector<double>& l : latencies) {
    result.latencies_us.insert(result.latencies_us.end(), l.begin(), l.end());
  }
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  result.commits = result.latencies_us.size();
  const RocksDbStoreStats after = store.GetStats();
  result.stats.commits = after.commits - before.commits;
  result.stats.syncs = after.syncs - before.syncs;
  result.stats.batches = after.batches - before.batches;
  result.stats.max_batch_size = after.max_batch_size;
  return result;
}

int Main() {
  std::string dir = absl::GetFlag(FLAGS_dir);
  bool remove_dir = false;
  if (dir.empty()) {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string tmpl = (base != nullptr ? std::filesystem::path(base)
                                        : std::filesystem::temp_directory_path()) /
                       "storage_bench.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
    remove_dir = true;
  }
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int value_bytes = absl::GetFlag(FLAGS_value_bytes);

  std::printf("storage_bench: %d-byte values, sync=%s, %.1fs per run, dir %s\n", value_bytes,
              absl::GetFlag(FLAGS_sync) ? "true" : "false", seconds, dir.c_str());
  std::printf("%-8s %8s %10s %9s %9s %9s %9s %9s %10s %9s\n", "workload", "threads", "commits/s",
              "p50(us)", "p90(us)", "p99(us)", "p99.9(us)", "max(us)", "writes/fsync",
              "max_group");
  int run = 0;
  for (const std::string& threads_flag : absl::GetFlag(FLAGS_threads)) {
    const int threads = std::atoi(threads_flag.c_str());
    if (threads <= 0) continue;
    for (bool update : {false, true}) {
      const std::string path = absl::StrCat(dir, "/run", run++);
      const Result r = Run(path, threads, update, seconds, value_bytes);
      const double per_batch =
          r.stats.batches == 0 ? 0 : static_cast<double>(r.stats.commits) / r.stats.batches;
      std::printf("%-8s %8d %10.0f %9.0f %9.0f %9.0f %9.0f %9.0f %10.1f %9llu\n",
                  update ? "update" : "create", threads, r.commits / r.seconds,
                  Percentile(r.latencies_us, 0.50), Percentile(r.latencies_us, 0.90),
                  Percentile(r.latencies_us, 0.99), Percentile(r.latencies_us, 0.999),
                  r.latencies_us.empty() ? 0 : r.latencies_us.back(), per_batch,
                  static_cast<unsigned long long>(r.stats.max_batch_size));
      std::fflush(stdout);
      capstan::bench::Report({.table = "Storage (RocksDB store alone)",
                              .workload = absl::StrCat("Durable ", update ? "updates" : "creates",
                                                       ", ", threads, " writers"),
                              .figure = {r.commits / r.seconds, "/s"}});
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  }
  if (remove_dir) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return 0;
}

}  // namespace
}  // namespace capstan::storage

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return capstan::storage::Main();
}
