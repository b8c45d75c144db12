// Throughput of the controller work queue (lib/client/workqueue.h): Add + Get + Done.
//
// For each number of workers and of distinct keys, one producer thread (an informer's event
// handler) adds --adds keys, cycling through the distinct keys in a shuffled order, while the
// workers Get and Done them with no work in between, so that only the queue's own cost shows.
// Adds of a key that is still queued are deduplicated (that is the queue's job), so fewer keys
// are processed than added; the table shows both rates. The run ends with ShutDownWithDrain and
// the workers draining what is left. Each configuration runs without and with metrics.
//
//   bazel run -c opt //bench:workqueue_bench -- --adds=2000000 --workers=1,2,8 --keys=1000,100000

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/report.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/workqueue.h"
#include "prometheus/registry.h"

ABSL_FLAG(int64_t, adds, 2'000'000, "Adds per run (by the one producer thread).");
ABSL_FLAG(std::vector<std::string>, workers, std::vector<std::string>({"1", "2", "8"}),
          "Numbers of worker threads.");
ABSL_FLAG(std::vector<std::string>, keys, std::vector<std::string>({"1000", "100000"}),
          "Numbers of distinct keys.");

namespace capstan::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct Result {
  double add_seconds = 0;    // Producer's time for all adds.
  double total_seconds = 0;  // Until the workers have drained the queue.
  int64_t processed = 0;
};

double Seconds(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Result Run(int workers, const std::vector<std::string>& keys, int64_t adds, bool with_metrics) {
  prometheus::Registry registry;
  WorkQueueOptions options;
  options.name = "bench";
  if (with_metrics) options.registry = &registry;
  WorkQueue queue(std::move(options));

  std::atomic<int64_t> processed{0};
  std::vector<std::thread> threads;
  const SteadyClock::time_point start = SteadyClock::now();
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      int64_t mine = 0;
      while (std::optional<std::string> key = queue.Get()) {
        queue.Done(*key);
        ++mine;
      }
      processed += mine;
    });
  }
  for (int64_t i = 0; i < adds; ++i) queue.Add(keys[i % keys.size()]);
  const SteadyClock::time_point added = SteadyClock::now();
  queue.ShutDownWithDrain();
  for (std::thread& t : threads) t.join();
  const SteadyClock::time_point end = SteadyClock::now();
  return Result{Seconds(start, added), Seconds(start, end), processed.load()};
}

std::vector<int> ParseInts(const std::vector<std::string>& values) {
  std::vector<int> out;
  for (const std::string& v : values) {
    int n;
    if (!absl::SimpleAtoi(v, &n) || n <= 0) {
      std::fprintf(stderr, "not a positive number: %s\n", v.c_str());
      std::exit(2);
    }
    out.push_back(n);
  }
  return out;
}

int Main() {
  // Debian's Abseil is built without NDEBUG: deadlock detection would dominate the figures.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const int64_t adds = absl::GetFlag(FLAGS_adds);
  std::printf("workqueue: %lld adds per run by 1 producer; workers Get+Done with no work\n\n",
              static_cast<long long>(adds));
  std::printf("%7s %8s %7s | %12s | %10s %12s %8s\n", "workers", "keys", "metrics", "adds/s",
              "processed", "processed/s", "deduped");
  for (int n : ParseInts(absl::GetFlag(FLAGS_keys))) {
    std::vector<std::string> keys;
    keys.reserve(n);
    for (int i = 0; i < n; ++i) keys.push_back(absl::StrCat("namespace-", i % 97, "/object-", i));
    std::shuffle(keys.begin(), keys.end(), std::mt19937(42));
    for (int workers : ParseInts(absl::GetFlag(FLAGS_workers))) {
      for (bool with_metrics : {false, true}) {
        const Result r = Run(workers, keys, adds, with_metrics);
        std::printf("%7d %8d %7s | %12.0f | %10lld %12.0f %7.1f%%\n", workers, n,
                    with_metrics ? "on" : "off", adds / r.add_seconds,
                    static_cast<long long>(r.processed), r.processed / r.total_seconds,
                    100.0 * (adds - r.processed) / adds);
        std::fflush(stdout);
        capstan::bench::Report(
            {.table = "Work queue",
             .workload = absl::StrCat(workers, " workers, ", n, " keys, metrics ",
                                      with_metrics ? "on" : "off", ": processed"),
             .figure = {r.processed / r.total_seconds, "/s"}});
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace capstan::client

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return capstan::client::Main();
}
