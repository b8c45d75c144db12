// The apiserver's Prometheus metrics (names follow kube-apiserver's where one exists).
#ifndef CAPSTAN_SERVICES_APISERVER_METRICS_H_
#define CAPSTAN_SERVICES_APISERVER_METRICS_H_

#include <memory>
#include <string>

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
  void WatchEventsSent(const std::string& resource, size_t count);
  void Objects(const std::string& resource, size_t count);

  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Gauge>& watches_;
  prometheus::Family<prometheus::Counter>& watch_events_;
  prometheus::Family<prometheus::Gauge>& objects_;
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_METRICS_H_
