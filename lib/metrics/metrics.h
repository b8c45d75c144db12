// Small helpers every Capstan service shares when exporting Prometheus metrics, so that dashboards
// and alerts can assume the same bucket layout everywhere.
#ifndef CAPSTAN_LIB_METRICS_METRICS_H_
#define CAPSTAN_LIB_METRICS_METRICS_H_

#include <string>
#include <vector>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace capstan::metrics {

// Histogram bucket bounds, in seconds, for latencies: 100µs to 10s in 1-2.5-5 steps per decade
// (0.0001, 0.00025, 0.0005, 0.001, ..., 2.5, 5, 10). That is exponential to within a factor
// (x2 or x2.5 per step) while keeping `le` labels short and readable, and it extends the Go
// client's DefBuckets downwards for in-process operations.
std::vector<double> LatencyBuckets();

// The registry in Prometheus text exposition format 0.0.4, as served on /metrics.
std::string SerializeRegistry(const prometheus::Registry& registry);

// The Content-Type that goes with SerializeRegistry's output.
inline constexpr char kPrometheusTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace capstan::metrics

#endif  // CAPSTAN_LIB_METRICS_METRICS_H_
