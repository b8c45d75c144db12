// capstan-apiserver: the API server. Serves the generic Resource API over gRPC from an embedded
// RocksDB store, and /metrics, /healthz, /readyz over HTTP.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "lib/base/process.h"
#include "lib/metrics/http_server.h"
#include "lib/storage/rocksdb_store.h"
#include "prometheus/counter.h"
#include "services/apiserver/metered_store.h"
#include "services/apiserver/metrics.h"
#include "services/apiserver/resource_service.h"
#include "services/apiserver/resource_store.h"

ABSL_FLAG(std::string, data_dir, "", "Directory of the RocksDB store (created if missing)");
ABSL_FLAG(std::string, listen, "127.0.0.1:6443", "gRPC address; port 0 picks a free one");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:6444",
          "HTTP address of /metrics, /healthz and /readyz; port 0 picks a free one");
ABSL_FLAG(std::string, address_file, "",
          "When set, the bound addresses are written here once the server is ready "
          "(lines: grpc=HOST:PORT, metrics=HOST:PORT)");
ABSL_FLAG(int64_t, default_not_ready_toleration_seconds, 300,
          "tolerationSeconds of the node.kubernetes.io/not-ready:NoExecute toleration added to "
          "every pod that has none (Kubernetes' DefaultTolerationSeconds admission)");
ABSL_FLAG(int64_t, default_unreachable_toleration_seconds, 300,
          "tolerationSeconds of the node.kubernetes.io/unreachable:NoExecute toleration added to "
          "every pod that has none (Kubernetes' DefaultTolerationSeconds admission)");
ABSL_FLAG(int64_t, watch_window, 10000, "Recent events kept in memory per resource");
ABSL_FLAG(int64_t, log_retention, 100000,
          "Revisions kept in the revision log; a watch from an older one gets 410 Expired");
ABSL_FLAG(absl::Duration, bookmark_interval, absl::Seconds(10),
          "How often watchers that allow bookmarks get one");
ABSL_FLAG(bool, unsafe_no_fsync, false,
          "Acknowledge writes before they are synced to disk (benchmarks only: loses writes on "
          "a crash)");

namespace {

std::string HostOf(const std::string& address) {
  size_t colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("capstan-apiserver --data-dir=DIR [--listen=HOST:PORT]");
  capstan::base::InitServiceProcess();
  absl::ParseCommandLine(argc, argv);
  std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) {
    fprintf(stderr, "capstan-apiserver: --data-dir is required\n");
    return 2;
  }

  capstan::storage::RocksDbOptions store_options;
  store_options.path = data_dir;
  store_options.sync = !absl::GetFlag(FLAGS_unsafe_no_fsync);
  store_options.log_retention = absl::GetFlag(FLAGS_log_retention);
  const absl::Time opening = absl::Now();
  auto store = capstan::storage::RocksDbStore::Open(store_options);
  if (!store.ok()) {
    fprintf(stderr, "capstan-apiserver: opening the store in %s: %s\n", data_dir.c_str(),
            std::string(store.status().message()).c_str());
    return 1;
  }

  auto registry = std::make_shared<prometheus::Registry>();
  capstan::apiserver::ApiMetrics metrics(registry);
  capstan::apiserver::ResourceStore::Options options;
  options.watch_window = static_cast<size_t>(absl::GetFlag(FLAGS_watch_window));
  options.default_toleration_seconds.not_ready =
      absl::GetFlag(FLAGS_default_not_ready_toleration_seconds);
  options.default_toleration_seconds.unreachable =
      absl::GetFlag(FLAGS_default_unreachable_toleration_seconds);
  capstan::apiserver::MeteredStore metered(store->get(), *registry);
  capstan::apiserver::ResourceStore resources(&metered, capstan::api::Scheme::BuiltIn(), options);
  // fsyncs and log compactions, mirrored from the store's own counters by the housekeeping loop.
  auto& syncs = prometheus::BuildCounter()
                    .Name("apiserver_storage_syncs_total")
                    .Help("WAL fsyncs (one per group commit)")
                    .Register(*registry)
                    .Add({});
  auto& batches = prometheus::BuildCounter()
                      .Name("apiserver_storage_batches_total")
                      .Help("Group commits (one RocksDB WriteBatch each)")
                      .Register(*registry)
                      .Add({});
  auto& commits = prometheus::BuildCounter()
                      .Name("apiserver_storage_commits_total")
                      .Help("Writes committed (one revision each)")
                      .Register(*registry)
                      .Add({});
  const absl::Time loading = absl::Now();
  if (absl::Status s = resources.Start(); !s.ok()) {
    fprintf(stderr, "capstan-apiserver: starting: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  // What a restart costs (it grows with the number of objects stored): opening RocksDB (WAL
  // replay, key index) and loading every object into the watch caches.
  fprintf(stderr, "capstan-apiserver: store opened in %.2f s, %zu objects loaded in %.2f s\n",
          absl::ToDoubleSeconds(loading - opening), resources.object_count(),
          absl::ToDoubleSeconds(absl::Now() - loading));

  std::atomic<bool> serving{false};
  capstan::metrics::HttpServer http(absl::GetFlag(FLAGS_metrics_listen));
  capstan::metrics::AddStandardHandlers(
      &http, registry, [] { return absl::OkStatus(); },
      [&] {
        return serving.load() ? absl::OkStatus() : absl::UnavailableError("grpc not serving yet");
      });
  if (absl::Status s = http.Start(); !s.ok()) {
    fprintf(stderr, "capstan-apiserver: metrics listener: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  capstan::apiserver::ResourceService service(&resources, &metrics);
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&service);
  // Room for a too-large object to arrive and be refused with a clear error.
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  builder.SetMaxSendMessageSize(-1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    fprintf(stderr, "capstan-apiserver: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  serving = true;
  std::string grpc_address = absl::StrCat(HostOf(listen), ":", grpc_port);
  std::string metrics_address =
      absl::StrCat(HostOf(absl::GetFlag(FLAGS_metrics_listen)), ":", http.port());
  capstan::base::WriteAddressFile(absl::GetFlag(FLAGS_address_file),
                         {{"grpc", grpc_address}, {"metrics", metrics_address}});
  fprintf(stderr, "capstan-apiserver: serving gRPC on %s, metrics on %s, revision %lld\n",
          grpc_address.c_str(), metrics_address.c_str(),
          static_cast<long long>(resources.revision()));

  // Housekeeping: object gauges every second, bookmarks at their interval.
  absl::Notification stopping;
  std::thread housekeeping([&] {
    absl::Time next_bookmark = absl::Now() + absl::GetFlag(FLAGS_bookmark_interval);
    capstan::storage::RocksDbStoreStats last;
    while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      capstan::storage::RocksDbStoreStats now = (*store)->GetStats();
      syncs.Increment(static_cast<double>(now.syncs - last.syncs));
      batches.Increment(static_cast<double>(now.batches - last.batches));
      commits.Increment(static_cast<double>(now.commits - last.commits));
      last = now;
      for (const auto& info : resources.scheme().resources()) {
        metrics.Objects(info.QualifiedResource(), resources.cache(info).size());
      }
      if (absl::Now() >= next_bookmark) {
        resources.Bookmark();
        next_bookmark = absl::Now() + absl::GetFlag(FLAGS_bookmark_interval);
      }
    }
  });

  int sig = capstan::base::WaitForTerminationSignal();
  fprintf(stderr, "capstan-apiserver: signal %d, shutting down\n", sig);
  serving = false;
  stopping.Notify();
  housekeeping.join();
  resources.CloseWatches(absl::UnavailableError("the apiserver is shutting down"));
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  http.Stop();
  return 0;
}
