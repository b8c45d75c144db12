#include "lib/metrics/metrics.h"

#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace capstan::metrics {

std::vector<double> LatencyBuckets() {
  // Literals rather than computed powers so the `le` labels print exactly ("0.00025", not
  // "0.00025000000000000001").
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,   10.0};
}

std::string SerializeRegistry(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

}  // namespace capstan::metrics
