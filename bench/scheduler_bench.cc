// Scheduler throughput. Two figures, printed as a table and as BENCH lines (bench/report.h;
// never a pass/fail):
//  - the algorithm alone: decisions/s of the default plugins over a snapshot of N nodes;
//  - end to end: N Node objects and P pending pods on a real apiserver, then a real scheduler
//    (both started here, loopback); persisted bindings/s from the first binding the benchmark's
//    watch sees to the last, for each P (10,000 and 50,000 by default, a fresh cluster each);
//  - the same with the pods created while the scheduler runs (creates and bindings compete).
//
//   bazel build //bench:scheduler_bench && bazel-bin/bench/scheduler_bench --nodes=5000
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "bench/report.h"
#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "services/scheduler/framework/framework.h"
#include "services/scheduler/plugins/plugins.h"
#include "test/harness/apiserver_process.h"

ABSL_FLAG(int, nodes, 5000, "Nodes");
ABSL_FLAG(std::vector<std::string>, pods, std::vector<std::string>({"10000", "50000"}),
          "Pending pods of the end-to-end runs (one fresh cluster each): created before the "
          "scheduler starts, timed from its first binding to its last");
ABSL_FLAG(int, concurrent_pods, 10000,
          "Pods of the run in which they are created while the scheduler runs");
ABSL_FLAG(int, algorithm_pods, 2000, "Decisions for the algorithm-only run");
ABSL_FLAG(int, writers, 32, "Concurrent clients creating nodes and pods");
ABSL_FLAG(int, timeout_seconds, 600, "Give up on the end-to-end run after this long");

namespace capstan::bench {
namespace {

using capstan::core::v1::Node;
using capstan::core::v1::Pod;
using Clock = std::chrono::steady_clock;

Node MakeNode(int i) {
  Node node;
  node.mutable_metadata()->set_name(absl::StrCat("node-", i));
  (*node.mutable_metadata()->mutable_labels())["kubernetes.io/hostname"] = node.metadata().name();
  (*node.mutable_metadata()->mutable_labels())["topology.kubernetes.io/zone"] =
      absl::StrCat("zone-", i % 3);
  auto& alloc = *node.mutable_status()->mutable_allocatable();
  alloc["cpu"].set_string("32");
  alloc["memory"].set_string("128Gi");
  alloc["pods"].set_string("110");
  *node.mutable_status()->mutable_capacity() = alloc;
  return node;
}

Pod MakePod(int i) {
  Pod pod;
  pod.mutable_metadata()->set_name(absl::StrCat("pod-", i));
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid(absl::StrCat("uid-", i));
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("busybox:1.36");
  (*c->mutable_resources()->mutable_requests())["cpu"].set_string("100m");
  (*c->mutable_resources()->mutable_requests())["memory"].set_string("128Mi");
  return pod;
}

void Parallel(int n, int threads, const std::function<void(int)>& fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : pool) t.join();
}

double AlgorithmDecisionsPerSecond(int nodes, int pods) {
  std::vector<Node> node_objects;
  for (int i = 0; i < nodes; ++i) node_objects.push_back(MakeNode(i));
  scheduler::Snapshot snapshot = scheduler::Snapshot::FromObjects(node_objects, {});
  scheduler::Framework framework(scheduler::plugins::DefaultPlugins(),
                                 std::make_unique<scheduler::SeededRng>(1));
  auto start = Clock::now();
  for (int i = 0; i < pods; ++i) {
    Pod pod = MakePod(i);
    scheduler::ScheduleResult result = framework.Schedule(pod, snapshot);
    if (result.scheduled()) snapshot.AssumePod(pod, result.node_name);
  }
  return pods / std::chrono::duration<double>(Clock::now() - start).count();
}

// kube-scheduler's CI floor (published) and the goal are both for 5,000 nodes.
constexpr int kGoalNodes = 5000;
constexpr double kKubeSchedulerCiFloor = 810;
constexpr double kGoalBindingsPerSecond = 5000;

struct EndToEnd {
  int pods = 0;
  int bound = 0;
  double create_seconds = 0;   // creating the pods (before the scheduler starts, or alongside)
  double seconds = 0;          // scheduler start (or first create) -> last binding
  double binding_seconds = 0;  // first binding -> last binding
  double BindingsPerSecond() const {
    return binding_seconds > 0 ? (bound - 1) / binding_seconds : 0;
  }
};

// One run on a fresh apiserver with `nodes` Node objects. pending: the pods are all created
// (pending) before the scheduler starts, and the figure is its throughput from the first binding
// to the last; otherwise the scheduler runs while the pods are being created.
EndToEnd RunEndToEnd(int nodes, int pods, bool pending) {
  EndToEnd result;
  result.pods = pods;
  const int writers = absl::GetFlag(FLAGS_writers);
  testing::ApiServerProcess apiserver;
  if (!apiserver.Start().ok()) return result;
  auto client = client::Client::Connect(apiserver.grpc_address());
  Parallel(nodes, writers, [&](int i) { (void)client->Create(MakeNode(i)); });

  // Count bindings from a watch: a pod whose nodeName becomes set.
  std::atomic<int> bound{0};
  std::atomic<int64_t> first_ns{0}, last_ns{0};
  auto stream = client->Watch<Pod>("default", {});
  std::thread counter([&] {
    client::WatchEvent<Pod> e;
    while (stream->Next(&e)) {
      if (e.type != "MODIFIED" || e.object.spec().node_name().empty()) continue;
      int64_t now = Clock::now().time_since_epoch().count();
      if (bound.fetch_add(1) == 0) first_ns = now;
      last_ns = now;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  testing::ServiceProcess scheduler(
      "services/scheduler/capstan-scheduler",
      {"--server=" + apiserver.grpc_address(), "--metrics_listen=127.0.0.1:0",
       "--leader_elect=false"});
  auto create_pods = [&] {
    auto start = Clock::now();
    Parallel(pods, writers, [&](int i) {
      Pod pod = MakePod(i);
      pod.mutable_metadata()->clear_uid();
      (void)client->Create(pod);
    });
    result.create_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  };
  Clock::time_point start;
  if (pending) {
    create_pods();
    start = Clock::now();
    if (!scheduler.Start().ok()) return result;
  } else {
    if (!scheduler.Start().ok()) return result;
    start = Clock::now();
    create_pods();
  }
  auto deadline = start + std::chrono::seconds(absl::GetFlag(FLAGS_timeout_seconds));
  while (bound.load() < pods && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.bound = bound.load();
  result.binding_seconds = (last_ns.load() - first_ns.load()) / 1e9;
  stream->Cancel();
  counter.join();
  return result;
}

void ReportFigures(int nodes, double algorithm, const std::vector<EndToEnd>& pending,
                   const EndToEnd& concurrent) {
  const std::string on = absl::StrCat(FormatFigure({static_cast<double>(nodes), ""}), " nodes");
  ReportRow decisions;
  decisions.table = "Scheduler";
  decisions.workload = absl::StrCat("Algorithm alone, default plugins, ", on, ": decisions/s");
  decisions.figure = {algorithm, "/s"};
  Report(decisions);

  auto row = [&](const EndToEnd& run, const std::string& what, bool goal) {
    ReportRow bindings;
    bindings.table = "Scheduler";
    bindings.workload = absl::StrCat("Persisted bindings/s, ", on, ", ",
                                     FormatFigure({static_cast<double>(run.pods), ""}), what);
    if (run.bound < run.pods) {
      absl::StrAppend(&bindings.workload, ", TIMED OUT at ", run.bound, " bound");
    }
    bindings.figure = {run.BindingsPerSecond(), "/s"};
    if (goal && nodes == kGoalNodes) {
      bindings.baseline = Figure{kKubeSchedulerCiFloor, "/s"};
      bindings.baseline_name = "kube-scheduler CI floor (published)";
      bindings.goal = ">= 5,000/s";
      bindings.met = run.bound == run.pods && run.BindingsPerSecond() >= kGoalBindingsPerSecond;
    }
    Report(bindings);
  };
  for (const EndToEnd& run : pending) row(run, " pending pods (real apiserver + scheduler)", true);
  row(concurrent, " pods created while the scheduler runs", false);
}

int Run() {
  const int nodes = absl::GetFlag(FLAGS_nodes);
  double algorithm = AlgorithmDecisionsPerSecond(nodes, absl::GetFlag(FLAGS_algorithm_pods));
  std::vector<EndToEnd> pending;
  for (const std::string& count : absl::GetFlag(FLAGS_pods)) {
    int pods = 0;
    if (!absl::SimpleAtoi(count, &pods) || pods < 2) {
      fprintf(stderr, "scheduler_bench: bad --pods entry \"%s\"\n", count.c_str());
      return 2;
    }
    pending.push_back(RunEndToEnd(nodes, pods, /*pending=*/true));
  }
  const EndToEnd concurrent =
      RunEndToEnd(nodes, absl::GetFlag(FLAGS_concurrent_pods), /*pending=*/false);

  printf("| Workload | Figure | Goal |\n|---|---:|---|\n");
  printf("| Algorithm alone, %d nodes, default plugins | %.0f decisions/s | — |\n", nodes, algorithm);
  bool all_bound = true;
  auto line = [&](const EndToEnd& run, const char* what) {
    all_bound = all_bound && run.bound == run.pods;
    printf("| End to end, %d nodes, %d %s (created in %.1f s): %d bound %.1f s after the "
           "scheduler started; first to last binding %.2f s | **%.0f persisted bindings/s**%s | "
           ">= 5,000/s (kube-scheduler's CI floor at 5,000 nodes: 810/s) |\n",
           nodes, run.pods, what, run.create_seconds, run.bound, run.seconds,
           run.binding_seconds, run.BindingsPerSecond(),
           run.bound < run.pods ? " (TIMED OUT)" : "");
  };
  for (const EndToEnd& run : pending) line(run, "pending pods");
  line(concurrent, "pods created while the scheduler runs");
  ReportFigures(nodes, algorithm, pending, concurrent);
  return all_bound ? 0 : 1;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Run();
}
