// MeteredStore: a Store that times every commit into a Prometheus histogram and forwards
// everything else. Wraps whichever backend the apiserver runs on.
#ifndef CAPSTAN_SERVICES_APISERVER_METERED_STORE_H_
#define CAPSTAN_SERVICES_APISERVER_METERED_STORE_H_

#include <chrono>

#include "lib/metrics/metrics.h"
#include "lib/storage/store.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace capstan::apiserver {

class MeteredStore : public storage::Store {
 public:
  // inner must outlive this.
  MeteredStore(storage::Store* inner, prometheus::Registry& registry)
      : inner_(inner),
        commit_latency_(prometheus::BuildHistogram()
                            .Name("apiserver_storage_commit_duration_seconds")
                            .Help("Time from a write's submission until it is durable")
                            .Register(registry)
                            .Add({}, metrics::LatencyBuckets())),
        commit_errors_(prometheus::BuildCounter()
                           .Name("apiserver_storage_commit_rejected_total")
                           .Help("Writes refused by a condition (conflicts, existing keys)")
                           .Register(registry)
                           .Add({})) {}

  absl::StatusOr<int64_t> Commit(storage::Write write) override {
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<int64_t> revision = inner_->Commit(std::move(write));
    Record(start, revision.ok());
    return revision;
  }
  void CommitAsync(storage::Write write, CommitCallback done) override {
    inner_->CommitAsync(std::move(write), [this, start = std::chrono::steady_clock::now(),
                                           done = std::move(done)](absl::StatusOr<int64_t> r) {
      Record(start, r.ok());
      done(std::move(r));
    });
  }
  absl::StatusOr<std::optional<storage::KeyValue>> Get(std::string_view key) override {
    return inner_->Get(key);
  }
  absl::StatusOr<int64_t> Scan(std::string_view prefix,
                               const std::function<void(const storage::KeyValue&)>& fn) override {
    return inner_->Scan(prefix, fn);
  }
  absl::Status ReadLog(int64_t after,
                       const std::function<void(const storage::Event&)>& fn) override {
    return inner_->ReadLog(after, fn);
  }
  int64_t CurrentRevision() const override { return inner_->CurrentRevision(); }
  int64_t CompactedRevision() const override { return inner_->CompactedRevision(); }
  absl::Status Compact(int64_t revision) override { return inner_->Compact(revision); }
  void SetObserver(std::function<void(const storage::Event&)> fn) override {
    inner_->SetObserver(std::move(fn));
  }

 private:
  void Record(std::chrono::steady_clock::time_point start, bool ok) {
    commit_latency_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!ok) commit_errors_.Increment();
  }

  storage::Store* const inner_;
  prometheus::Histogram& commit_latency_;
  prometheus::Counter& commit_errors_;
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_METERED_STORE_H_
