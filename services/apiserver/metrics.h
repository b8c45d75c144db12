// The apiserver's Prometheus metrics (names follow kube-apiserver's where one exists).
#ifndef CAPSTAN_SERVICES_APISERVER_METRICS_H_
#define CAPSTAN_SERVICES_APISERVER_METRICS_H_

#include <memory>
#include <string>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace capstan::apiserver {

class ApiMetrics {
 public:
  explicit ApiMetrics(std::shared_ptr<prometheus::Registry> registry);

  // One finished request: verb (create, get, list, update, patch, delete, watch), resource
  // ("deployments.apps"), the Kubernetes HTTP-like code (200, 404, 409, 422, ...).
  void Request(const std::string& verb, const std::string& resource, int code, double seconds);
  void WatchOpened(const std::string& resource);
  void WatchClosed(const std::string& resource);
  // Watch events sent for resource: a stream looks its counter up once and adds each message's
  // events to it (a lookup per message cost more than building the message's frames).
  prometheus::Counter& WatchEventsSent(const std::string& resource);
  void Objects(const std::string& resource, size_t count);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  // One (verb, resource, code)'s children of requests_ and latency_.
  struct RequestSeries {
    prometheus::Counter* total;
    prometheus::Histogram* latency;
  };
  using SeriesKey = std::tuple<std::string, std::string, int>;

  std::shared_ptr<prometheus::Registry> registry_;
  // Request() runs for every call, for writes on the store's commit thread before the answer is
  // sent; Family::Add builds, hashes and compares a label map each time, so the children are
  // looked up once per (verb, resource, code) and remembered.
  absl::Mutex series_mu_;
  absl::flat_hash_map<SeriesKey, RequestSeries> series_ ABSL_GUARDED_BY(series_mu_);
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Gauge>& watches_;
  prometheus::Family<prometheus::Counter>& watch_events_;
  prometheus::Family<prometheus::Gauge>& objects_;
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_METRICS_H_
