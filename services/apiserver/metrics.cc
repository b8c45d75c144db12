#include "services/apiserver/metrics.h"

#include "lib/metrics/metrics.h"

namespace capstan::apiserver {

ApiMetrics::ApiMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      requests_(prometheus::BuildCounter()
                    .Name("apiserver_request_total")
                    .Help("API requests by verb, resource and code")
                    .Register(*registry_)),
      latency_(prometheus::BuildHistogram()
                   .Name("apiserver_request_duration_seconds")
                   .Help("API request latency by verb and resource (watches: until they end)")
                   .Register(*registry_)),
      watches_(prometheus::BuildGauge()
                   .Name("apiserver_registered_watchers")
                   .Help("Open watches by resource")
                   .Register(*registry_)),
      watch_events_(prometheus::BuildCounter()
                        .Name("apiserver_watch_events_total")
                        .Help("Watch events sent by resource")
                        .Register(*registry_)),
      objects_(prometheus::BuildGauge()
                   .Name("apiserver_storage_objects")
                   .Help("Stored objects by resource")
                   .Register(*registry_)) {}

void ApiMetrics::Request(const std::string& verb, const std::string& resource, int code,
                         double seconds) {
  SeriesKey key(verb, resource, code);
  RequestSeries series;
  bool found;
  {
    absl::ReaderMutexLock lock(&series_mu_);
    auto it = series_.find(key);
    found = it != series_.end();
    if (found) series = it->second;
  }
  if (!found) {
    absl::MutexLock lock(&series_mu_);
    series.total =
        &requests_.Add({{"verb", verb}, {"resource", resource}, {"code", std::to_string(code)}});
    series.latency =
        &latency_.Add({{"verb", verb}, {"resource", resource}}, metrics::LatencyBuckets());
    series_.emplace(std::move(key), series);
  }
  series.total->Increment();
  series.latency->Observe(seconds);
}

void ApiMetrics::WatchOpened(const std::string& resource) {
  watches_.Add({{"resource", resource}}).Increment();
}

void ApiMetrics::WatchClosed(const std::string& resource) {
  watches_.Add({{"resource", resource}}).Decrement();
}

prometheus::Counter& ApiMetrics::WatchEventsSent(const std::string& resource) {
  return watch_events_.Add({{"resource", resource}});
}

void ApiMetrics::Objects(const std::string& resource, size_t count) {
  objects_.Add({{"resource", resource}}).Set(static_cast<double>(count));
}

}  // namespace capstan::apiserver
