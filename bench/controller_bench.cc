// Controller-manager throughput: a Deployment of N replicas on a real apiserver and a real
// controller-manager (both started here on loopback), timed until all N pods exist, then a
// cascading delete timed until none is left. Prints a table and the headline figure as a BENCH
// line (bench/report.h); never fails on timing.
//
//   bazel build //bench:controller_bench && bazel-bin/bench/controller_bench --replicas=10000
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "bench/report.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

ABSL_FLAG(int, replicas, 10000, "Replicas of the Deployment");
ABSL_FLAG(int, workers, 5, "Controller-manager reconcile workers per controller");
ABSL_FLAG(int, timeout_seconds, 300, "Give up on a phase after this long");

namespace capstan::bench {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Pod;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point from) {
  return std::chrono::duration<double>(Clock::now() - from).count();
}

// Sums the samples of a metric (all label sets) in a Prometheus text exposition.
double MetricSum(const std::string& exposition, absl::string_view name) {
  double total = 0;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::StartsWith(line, name) || line.size() <= name.size()) continue;
    char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    double value;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) total += value;
  }
  return total;
}

// Counts pods in the namespace from a watch: ADDED minus DELETED.
class PodCounter {
 public:
  explicit PodCounter(client::Client* c) {
    stream_ = c->Watch<Pod>("default", {});
    thread_ = std::thread([this] {
      client::WatchEvent<Pod> e;
      while (stream_->Next(&e)) {
        if (e.type == "ADDED") ++count_;
        if (e.type == "DELETED") --count_;
      }
    });
  }
  ~PodCounter() {
    stream_->Cancel();
    thread_.join();
  }
  int count() const { return count_.load(); }

 private:
  std::unique_ptr<client::WatchStream<Pod>> stream_;
  std::thread thread_;
  std::atomic<int> count_{0};
};

bool WaitFor(const std::function<bool()>& done, int timeout_seconds) {
  auto deadline = Clock::now() + std::chrono::seconds(timeout_seconds);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The headline figure; the goal (<= 5 s) is for 10,000 replicas.
void ReportCreate(int replicas, double seconds, bool created, int created_count) {
  constexpr int kGoalReplicas = 10000;
  ReportRow row;
  row.table = "End to end";
  row.workload = absl::StrCat("Deployment of ", FormatFigure({static_cast<double>(replicas), ""}),
                              " replicas -> all pods exist (apiserver + controller-manager)");
  if (!created) absl::StrAppend(&row.workload, ", TIMED OUT at ", created_count, " pods");
  row.figure = {seconds, " s"};
  if (replicas == kGoalReplicas) {
    row.goal = "<= 5 s";
    row.met = created && seconds <= 5;
  }
  Report(row);
}

int Run() {
  const int replicas = absl::GetFlag(FLAGS_replicas);
  const int timeout = absl::GetFlag(FLAGS_timeout_seconds);
  testing::ApiServerProcess apiserver;
  if (absl::Status s = apiserver.Start(); !s.ok()) {
    fprintf(stderr, "apiserver: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  testing::ServiceProcess manager(
      "services/controller-manager/capstan-controller-manager",
      {"--server=" + apiserver.grpc_address(), "--metrics_listen=127.0.0.1:0",
       "--leader_elect=false", absl::StrCat("--workers=", absl::GetFlag(FLAGS_workers))});
  if (absl::Status s = manager.Start(); !s.ok()) {
    fprintf(stderr, "controller-manager: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::string metrics_address = manager.addresses().at("metrics");
  auto client = client::Client::Connect(apiserver.grpc_address());
  PodCounter pods(client.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the watch is established

  Deployment d;
  d.mutable_metadata()->set_name("scale");
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "scale";
  auto* tmpl = d.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "scale";
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("busybox:1.36");

  auto start = Clock::now();
  if (!client->Create(d).ok()) return 1;
  bool created = WaitFor([&] { return pods.count() >= replicas; }, timeout);
  double create_seconds = Seconds(start);
  int created_count = pods.count();
  auto metrics = testing::HttpGet(metrics_address, "/metrics");
  double reconciles = metrics.ok() ? MetricSum(*metrics, "workqueue_work_duration_seconds_count") : 0;

  start = Clock::now();
  client::DeleteOptions background;
  if (!client->Delete<Deployment>("default", "scale", background).ok()) return 1;
  bool deleted = WaitFor([&] { return pods.count() == 0; }, timeout);
  double delete_seconds = Seconds(start);

  printf("| Workload | Figure | Goal |\n|---|---:|---|\n");
  printf("| %d-replica Deployment: all pods exist | %.2f s (%d pods%s, %.0f pods/s) | <= 5 s "
         "(kube-controller-manager defaults: ~20 pods/s) |\n",
         replicas, create_seconds, created_count, created ? "" : ", TIMED OUT",
         created_count / create_seconds);
  printf("| Reconciles during the rollout | %.0f (%.0f/s) | — |\n", reconciles,
         reconciles / create_seconds);
  printf("| Cascading delete (background) until no pod is left | %.2f s%s | — |\n",
         delete_seconds, deleted ? "" : " (TIMED OUT)");
  ReportCreate(replicas, create_seconds, created, created_count);
  return created && deleted ? 0 : 1;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Run();
}
