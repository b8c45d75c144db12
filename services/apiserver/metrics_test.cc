#include "services/apiserver/metrics.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"

namespace capstan::apiserver {
namespace {

TEST(ApiMetricsTest, RequestsCountPerVerbResourceAndCode) {
  auto registry = std::make_shared<prometheus::Registry>();
  ApiMetrics metrics(registry);
  metrics.Request("create", "pods", 200, 0.001);
  metrics.Request("create", "pods", 200, 0.002);  // the remembered series
  metrics.Request("create", "pods", 409, 0.001);
  metrics.Request("get", "deployments.apps", 200, 0.0001);
  const std::string text = metrics::SerializeRegistry(*registry);
  for (const char* line :
       {"apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"create\"} 2",
        "apiserver_request_total{code=\"409\",resource=\"pods\",verb=\"create\"} 1",
        "apiserver_request_total{code=\"200\",resource=\"deployments.apps\",verb=\"get\"} 1",
        // Latency is per verb and resource, whatever the code.
        "apiserver_request_duration_seconds_count{resource=\"pods\",verb=\"create\"} 3",
        "apiserver_request_duration_seconds_count{resource=\"deployments.apps\",verb=\"get\"} 1"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

TEST(ApiMetricsTest, WatchEventsAddUpPerResource) {
  auto registry = std::make_shared<prometheus::Registry>();
  ApiMetrics metrics(registry);
  prometheus::Counter& pods = metrics.WatchEventsSent("pods");
  pods.Increment(3);
  metrics.WatchEventsSent("pods").Increment(2);  // another stream of the same resource
  const std::string text = metrics::SerializeRegistry(*registry);
  EXPECT_NE(text.find("apiserver_watch_events_total{resource=\"pods\"} 5"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace capstan::apiserver
