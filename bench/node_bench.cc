// Deployments on simulated nodes, end to end: a real apiserver, controller-manager, scheduler and
// one node agent acting as N nodes (--simulate_nodes), all started here on loopback. For each
// replica count R of --replicas, on a fresh cluster:
//  - rollout: a Deployment of R replicas, timed from its creation until a watch has seen every pod
//    created, bound and Running;
//  - cascading delete: the Deployment is deleted (background propagation, the default) and timed
//    until the watch has seen every pod deleted (the garbage collector deletes the ReplicaSet and
//    its pods; the simulated agents complete each graceful deletion).
// Prints a table per count and BENCH lines (bench/report.h); never fails on timing.
//
// A fresh cluster per count rather than a clean namespace: every count starts from the same state
// (no revisions, tombstones or compaction backlog left by the previous one, caches empty), and the
// number of nodes can follow the replica count.
//
//   bazel build //bench:node_bench && bazel-bin/bench/node_bench --replicas=1000,10000,50000
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "bench/load.h"
#include "bench/report.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

ABSL_FLAG(std::vector<std::string>, replicas, std::vector<std::string>({"1000", "10000", "50000"}),
          "Replica counts: one Deployment each, on a fresh cluster");
ABSL_FLAG(int, pods_per_node, 100,
          "At most this many replicas per simulated node: a count runs on replicas / pods_per_node "
          "nodes, rounded up (or --nodes if more)");
ABSL_FLAG(int, nodes, 0, "At least this many simulated nodes for every count");
ABSL_FLAG(int, timeout_seconds, 600, "Give up on a phase (rollout or delete) after this long");
ABSL_FLAG(bool, unsafe_no_fsync, false, "Run the apiserver without fsync (to see what durability costs)");

namespace capstan::bench {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;

// Each pod requests this much CPU; nodes report enough for their pod capacity.
constexpr int kPodCpuMillis = 10;
// A simulated node's pod addresses come from one /24 (services/node-agent/simulated_network.h).
constexpr int kMaxPodsPerSimulatedNode = 253;
// The goal and KWOK's CI limit are both for 10,000 pods.
constexpr int kGoalReplicas = 10000;
constexpr double kGoalSeconds = 5;
constexpr double kKwokCiSeconds = 120;

// "10,000"; FormatFigure alone would print small counts with a decimal ("10.0").
std::string Count(int n) {
  return n >= 1000 ? FormatFigure({static_cast<double>(n), ""}) : absl::StrCat(n);
}

// How many simulated nodes a count runs on, and the pod capacity each reports.
struct Shape {
  int nodes = 0;
  int max_pods = 0;
};

// Enough nodes for --pods_per_node each, at least --nodes. The pods must fit with 10% to spare
// (the scheduler spreads pods, it does not pack nodes to the last slot), and a node never reports
// less than the default of 110.
absl::StatusOr<Shape> ShapeFor(int replicas) {
  const int per_node = std::max(1, absl::GetFlag(FLAGS_pods_per_node));
  Shape shape;
  shape.nodes = std::max(absl::GetFlag(FLAGS_nodes), (replicas + per_node - 1) / per_node);
  const int fit = (replicas + shape.nodes - 1) / shape.nodes;
  shape.max_pods = std::max(110, fit + (fit + 9) / 10);
  if (shape.max_pods > kMaxPodsPerSimulatedNode) {
    return absl::InvalidArgumentError(
        absl::StrCat(replicas, " replicas on ", shape.nodes, " nodes need ", shape.max_pods,
                     " pods per node; a simulated node holds ", kMaxPodsPerSimulatedNode,
                     ": lower --pods_per_node"));
  }
  return shape;
}

// One control plane and its simulated nodes, all on loopback; killed and removed on destruction.
class Cluster {
 public:
  ~Cluster() {
    client_.reset();
    services_.clear();
    apiserver_.reset();
    if (!agent_dir_.empty()) testing::RemoveTree(agent_dir_);
  }

  absl::Status Start(const Shape& shape) {
    std::vector<std::string> apiserver_flags;
    if (absl::GetFlag(FLAGS_unsafe_no_fsync)) apiserver_flags.push_back("--unsafe_no_fsync");
    apiserver_ = std::make_unique<testing::ApiServerProcess>(apiserver_flags);
    if (absl::Status s = apiserver_->Start(); !s.ok()) return s;
    const std::string server = "--server=" + apiserver_->grpc_address();
    agent_dir_ = testing::MakeTempDir("node-bench-");
    AddService("services/controller-manager/capstan-controller-manager",
               {server, "--metrics_listen=127.0.0.1:0", "--leader_elect=false"});
    AddService("services/scheduler/capstan-scheduler",
               {server, "--metrics_listen=127.0.0.1:0", "--leader_elect=false"});
    // CPU follows the pod capacity so that pods, not this machine's cores, limit a node.
    AddService("services/node-agent/capstan-node-agent",
               {server, absl::StrCat("--simulate_nodes=", shape.nodes), "--node_name=sim",
                absl::StrCat("--max_pods=", shape.max_pods),
                absl::StrCat("--cpu=", shape.max_pods * kPodCpuMillis, "m"),
                "--listen=127.0.0.1:0", "--data_dir=" + agent_dir_});
    for (auto& service : services_) {
      if (absl::Status s = service->Start(); !s.ok()) return s;
    }
    client_ = client::Client::Connect(apiserver_->grpc_address());
    absl::StatusOr<client::ObjectList<Node>> registered = client_->List<Node>("", {});
    if (!registered.ok()) return registered.status();
    if (static_cast<int>(registered->items.size()) != shape.nodes) {
      return absl::InternalError(absl::StrCat("expected ", shape.nodes, " nodes registered, found ",
                                              registered->items.size()));
    }
    return absl::OkStatus();
  }

  client::Client* client() { return client_.get(); }

 private:
  void AddService(const std::string& binary, std::vector<std::string> flags) {
    services_.push_back(std::make_unique<testing::ServiceProcess>(binary, std::move(flags)));
  }

  std::unique_ptr<testing::ApiServerProcess> apiserver_;
  std::vector<std::unique_ptr<testing::ServiceProcess>> services_;
  std::string agent_dir_;
  std::unique_ptr<client::Client> client_;
};

// From one pod watch: when the Nth pod was first seen created, bound and Running, and when the
// last pod seen was deleted. Times are seconds from Start().
class PodProgress {
 public:
  explicit PodProgress(client::Client* c, int target) : target_(target) {
    stream_ = c->Watch<Pod>("default", {});
    thread_ = std::thread([this] {
      client::WatchEvent<Pod> e;
      while (stream_->Next(&e)) {
        if (e.type == "ADDED" || e.type == "MODIFIED" || e.type == "DELETED") Observe(e.type, e.object);
      }
    });
  }
  ~PodProgress() {
    stream_->Cancel();
    thread_.join();
  }
  void Start() {
    absl::MutexLock lock(&mu_);
    start_ = Clock::now();
  }
  double Elapsed() {
    absl::MutexLock lock(&mu_);
    return ElapsedLocked();
  }
  bool WaitAllRunning(int timeout_seconds) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_ >= target_; };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(timeout_seconds));
  }
  // Every pod the watch has seen is gone (call once no more are being created).
  bool WaitAllDeleted(int timeout_seconds) {
    absl::MutexLock lock(&mu_);
    auto gone = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return deleted_ == static_cast<int>(pods_.size());
    };
    return mu_.AwaitWithTimeout(absl::Condition(&gone), absl::Seconds(timeout_seconds));
  }
  struct Figures {
    int created, bound, running, deleted;
    double all_created, all_bound, all_running;  // < 0 when not reached
    double last_deleted;                         // < 0 when none was
  };
  Figures figures() {
    absl::MutexLock lock(&mu_);
    return {created_, bound_, running_, deleted_, all_created_, all_bound_, all_running_, last_deleted_};
  }

 private:
  double ElapsedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::chrono::duration<double>(Clock::now() - start_).count();
  }

  void Observe(const std::string& type, const Pod& pod) {
    absl::MutexLock lock(&mu_);
    State& s = pods_[pod.metadata().name()];
    const double now = ElapsedLocked();
    if (type == "DELETED") {
      if (!s.deleted) {
        s.deleted = true;
        ++deleted_;
        last_deleted_ = now;
      }
      return;
    }
    if (!s.created) {
      s.created = true;
      if (++created_ == target_) all_created_ = now;
    }
    if (!s.bound && !pod.spec().node_name().empty()) {
      s.bound = true;
      if (++bound_ == target_) all_bound_ = now;
    }
    if (!s.running && pod.status().phase() == "Running") {
      s.running = true;
      if (++running_ == target_) all_running_ = now;
    }
  }

  struct State {
    bool created = false, bound = false, running = false, deleted = false;
  };
  const int target_;
  std::unique_ptr<client::WatchStream<Pod>> stream_;
  std::thread thread_;
  absl::Mutex mu_;
  Clock::time_point start_ ABSL_GUARDED_BY(mu_) = Clock::now();
  std::map<std::string, State> pods_ ABSL_GUARDED_BY(mu_);
  int created_ ABSL_GUARDED_BY(mu_) = 0;
  int bound_ ABSL_GUARDED_BY(mu_) = 0;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  int deleted_ ABSL_GUARDED_BY(mu_) = 0;
  double all_created_ ABSL_GUARDED_BY(mu_) = -1;
  double all_bound_ ABSL_GUARDED_BY(mu_) = -1;
  double all_running_ ABSL_GUARDED_BY(mu_) = -1;
  double last_deleted_ ABSL_GUARDED_BY(mu_) = -1;
};

Deployment MakeDeployment(int replicas) {
  Deployment d;
  d.mutable_metadata()->set_name("scale");
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = "scale";
  auto* tmpl = d.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = "scale";
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("capstan.local/busybox:1");
  (*c->mutable_resources()->mutable_requests())["cpu"].set_string(absl::StrCat(kPodCpuMillis, "m"));
  return d;
}

// What one replica count measured.
struct CountResult {
  int replicas = 0;
  Shape shape;
  PodProgress::Figures f{};
  bool running = false;         // all replicas Running in time
  double rollout_seconds = 0;   // all Running, or when the rollout was given up
  bool deleted = false;         // every pod gone in time
  double delete_seconds = 0;    // Deployment deleted -> last pod deleted (or given up)
  int listed_after_delete = -1; // pods the apiserver still lists after the delete phase
};

absl::StatusOr<CountResult> RunCount(int replicas, const Shape& shape) {
  const int timeout = absl::GetFlag(FLAGS_timeout_seconds);
  Cluster cluster;
  if (absl::Status s = cluster.Start(shape); !s.ok()) return s;
  client::Client* client = cluster.client();
  PodProgress progress(client, replicas);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the watch is established

  CountResult r;
  r.replicas = replicas;
  r.shape = shape;
  progress.Start();
  if (absl::StatusOr<Deployment> made = client->Create(MakeDeployment(replicas)); !made.ok()) {
    return made.status();
  }
  r.running = progress.WaitAllRunning(timeout);
  r.rollout_seconds = r.running ? progress.figures().all_running : progress.Elapsed();

  const double delete_start = progress.Elapsed();
  client::DeleteOptions background;
  background.propagation_policy = "Background";
  if (absl::StatusOr<Deployment> gone = client->Delete<Deployment>("default", "scale", background); !gone.ok()) {
    return gone.status();
  }
  r.deleted = progress.WaitAllDeleted(timeout);
  r.f = progress.figures();
  r.delete_seconds = (r.deleted ? r.f.last_deleted : progress.Elapsed()) - delete_start;
  // The watch says so; the apiserver confirms (a pod the watch missed would still be listed).
  if (auto left = client->List<Pod>("default", {}); left.ok()) r.listed_after_delete = left->items.size();
  return r;
}

void PrintCount(const CountResult& r) {
  const PodProgress::Figures& f = r.f;
  auto shown = [](double s) {
    return s < 0 ? std::string("not reached") : absl::StrCat(absl::SixDigits(s), " s");
  };
  const bool goal = r.replicas == kGoalReplicas;
  printf("| %d-replica Deployment on %d simulated nodes (%d pods max each) | Figure | Goal |\n"
         "|---|---:|---|\n",
         r.replicas, r.shape.nodes, r.shape.max_pods);
  printf("| all pods created | %s (%d) | — |\n", shown(f.all_created).c_str(), f.created);
  printf("| all pods bound | %s (%d) | — |\n", shown(f.all_bound).c_str(), f.bound);
  printf("| all pods Running | %s (%d%s) | %s |\n", shown(f.all_running).c_str(), f.running,
         r.running ? "" : ", TIMED OUT", goal ? "<= 5 s (KWOK's CI allows 120 s)" : "—");
  printf("| Deployment deleted (background) -> no pod left | %s (%d deleted, %d listed after%s) | — |\n\n",
         shown(r.delete_seconds).c_str(), f.deleted, r.listed_after_delete,
         r.deleted ? "" : ", TIMED OUT");
  fflush(stdout);
}

// A row of the "End to end" table; the workload says when the phase timed out.
ReportRow EndToEnd(std::string workload, double seconds, bool done, int reached, const char* what) {
  ReportRow row;
  row.table = "End to end";
  row.workload = std::move(workload);
  if (!done) absl::StrAppend(&row.workload, ", TIMED OUT at ", Count(reached), " ", what);
  row.figure = {seconds, " s"};
  return row;
}

void ReportCount(const CountResult& r) {
  const std::string on = absl::StrCat(" (", Count(r.shape.nodes), " simulated nodes)");
  ReportRow rollout = EndToEnd(
      absl::StrCat("Deployment of ", Count(r.replicas), " replicas -> all pods Running", on),
      r.rollout_seconds, r.running, r.f.running, "Running");
  if (r.replicas == kGoalReplicas) {
    rollout.baseline = Figure{kKwokCiSeconds, " s"};
    rollout.baseline_name = "KWOK CI limit (published)";
    rollout.goal = "<= 5 s";
    rollout.met = r.running && r.rollout_seconds <= kGoalSeconds;
  }
  Report(rollout);
  Report(EndToEnd(absl::StrCat("Cascading delete of the ", Count(r.replicas),
                               "-replica Deployment -> no pod left", on),
                  r.delete_seconds, r.deleted, r.f.deleted, "deleted"));
}

absl::StatusOr<CountResult> MeasureCount(int replicas) {
  absl::StatusOr<Shape> shape = ShapeFor(replicas);
  if (!shape.ok()) return shape.status();
  return RunCount(replicas, *shape);
}

int Run() {
  int rc = 0;
  for (int replicas : ParseCounts(absl::GetFlag(FLAGS_replicas), "replicas")) {
    absl::StatusOr<CountResult> result = MeasureCount(replicas);
    if (!result.ok()) {
      fprintf(stderr, "node_bench: %d replicas: %s\n", replicas,
              std::string(result.status().message()).c_str());
      rc = 1;
      continue;
    }
    PrintCount(*result);
    ReportCount(*result);
    if (!result->running || !result->deleted) rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Run();
}
