// Footprint: memory, CPU and disk of the Capstan services, measured on real processes.
//
// Starts an apiserver, a controller-manager, a scheduler (both with their default leader
// election) and a node agent acting as one simulated node, all on loopback with private temp
// directories, and measures:
//
//   idle       RSS (VmRSS, /proc/PID/status) and CPU (user+sys from /proc/PID/stat over --window)
//              of each service with nothing stored.
//   watches    the apiserver's RSS growth from --watches open watches, per watch.
//   pods       the same figures with each of --pods pods stored (~1 KiB pods from bench/pods.h,
//              created through the apiserver's gRPC API by --clients concurrent clients, spread
//              over --namespaces namespaces and bound to as many Node objects, so the scheduler
//              leaves them alone), each measured right after loading and (--measure_restarted)
//              after a clean restart of every service, which leaves out what the allocator kept
//              from the load and what the watch window and RocksDB's memtables hold of it; and
//              the memory per stored pod of each service from the RSS difference between the
//              first two counts.
//   restart    with --restart_pods pods stored, the apiserver is SIGKILLed and started again on
//              the same data directory, --restarts times: the time from the start of the process
//              until it has written its address file (it does once it serves) and until it has
//              answered a Get.
//   binaries   size on disk of the four service binaries and capstanctl, as built and stripped.
//
// Every measurement waits first until the services' CPU has settled (informers caught up,
// RocksDB done flushing), so the figures are steady state. Prints Markdown tables and BENCH lines
// (bench/report.h); never fails on a missed goal.
//
//   bazel build //bench:footprint_bench && bazel-bin/bench/footprint_bench
//   bazel-bin/bench/footprint_bench --pods=1000,10000 --restart_pods=20000 --window=5s
#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/pods.h"
#include "bench/report.h"
#include "grpcpp/grpcpp.h"
#include "lib/base/subprocess.h"
#include "proto/core_v1.pb.h"
#include "proto/resource.grpc.pb.h"
#include "proto/resource.pb.h"
#include "test/harness/apiserver_process.h"

ABSL_FLAG(std::vector<std::string>, pods, std::vector<std::string>({"10000", "100000"}),
          "Pod counts to measure at, ascending; memory per pod comes from the first two.");
ABSL_FLAG(int64_t, restart_pods, 150000,
          "Pods stored when the apiserver's restart is timed (0: no restart).");
ABSL_FLAG(int, restarts, 3, "Restarts timed (the first replays the most WAL).");
ABSL_FLAG(int, watches, 1000, "Watches opened to measure the apiserver's memory per watch.");
ABSL_FLAG(int, watch_channels, 4, "Connections the watches are spread over.");
ABSL_FLAG(int, namespaces, 4, "Namespaces the pods are spread over (one Node per namespace).");
ABSL_FLAG(int, clients, 256, "Concurrent clients creating pods.");
ABSL_FLAG(absl::Duration, window, absl::Seconds(10), "CPU measuring window of each state.");
ABSL_FLAG(double, settle_cores, 0.05,
          "A state is measured once all services together use less CPU than this.");
ABSL_FLAG(absl::Duration, settle_timeout, absl::Seconds(60),
          "Measure anyway (and say so) when the CPU has not settled after this long.");
ABSL_FLAG(bool, measure_restarted, true,
          "Also measure each pod count after a clean restart of every service (memory without "
          "what the allocator kept from the load).");
ABSL_FLAG(std::string, apiserver_flags, "",
          "Extra flags for the apiserver, separated by spaces (e.g. \"--unsafe_no_fsync\").");

namespace capstan::bench {
namespace {

namespace apiv1 = capstan::api::v1;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;

constexpr char kTable[] = "Footprint";
constexpr char kWatchNamespace[] = "footprint-watch";

// MB and KB are decimal (10^6, 10^3 bytes), the units the goals are stated in; /proc's "kB" is
// 1,024 bytes.
double Mb(int64_t bytes) { return bytes / 1e6; }
double Kb(double bytes) { return bytes / 1e3; }

void Fail(const std::string& message) {
  std::fprintf(stderr, "footprint_bench: %s\n", message.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------------------------
// Measuring processes

struct Service {
  std::string name;
  int pid = 0;
  bool control_plane = false;  // counted in the "control plane" sum (the node agent is not)
};

struct Usage {
  int64_t rss = 0;   // bytes, VmRSS: what the process has resident, shared library pages too
  // bytes, Pss: RSS with each shared page divided among the processes that map it, so that a sum
  // over processes counts the shared libraries (~20 MB each here) once, not once per process.
  int64_t pss = 0;
  int64_t anon = 0;  // bytes, RssAnon: the part that is its own heap and stacks
  double cores = 0;  // CPU seconds / wall seconds over the window
};

// A "Key:   123 kB" line of /proc/PID/FILE, in bytes; nullopt when the process is gone.
std::optional<int64_t> ProcBytes(int pid, const char* file, absl::string_view key) {
  for (absl::string_view line :
       absl::StrSplit(ReadFile(absl::StrCat("/proc/", pid, "/", file)), '\n')) {
    if (!absl::ConsumePrefix(&line, key) || !absl::ConsumePrefix(&line, ":")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    int64_t kib = 0;
    if (!parts.empty() && absl::SimpleAtoi(parts[0], &kib)) return kib * 1024;
  }
  return std::nullopt;
}

// CPU of every service over the same window, memory at its end. Exits when a service died: the
// figures would mean nothing.
std::vector<Usage> Measure(const std::vector<Service>& services, absl::Duration window) {
  std::vector<double> cpu_start;
  for (const Service& s : services) {
    std::optional<double> cpu = ProcessCpuSeconds(s.pid);
    if (!cpu) Fail(absl::StrCat(s.name, " (pid ", s.pid, ") is not running"));
    cpu_start.push_back(*cpu);
  }
  const Clock::time_point start = Clock::now();
  absl::SleepFor(window);
  const double seconds = SecondsSince(start);
  std::vector<Usage> usage;
  for (size_t i = 0; i < services.size(); ++i) {
    std::optional<double> cpu = ProcessCpuSeconds(services[i].pid);
    std::optional<int64_t> rss = ProcBytes(services[i].pid, "status", "VmRSS");
    if (!cpu || !rss) Fail(absl::StrCat(services[i].name, " exited during the measurement"));
    usage.push_back({*rss, ProcBytes(services[i].pid, "smaps_rollup", "Pss").value_or(0),
                     ProcBytes(services[i].pid, "status", "RssAnon").value_or(0),
                     (*cpu - cpu_start[i]) / seconds});
  }
  return usage;
}

double TotalCores(const std::vector<Usage>& usage) {
  double total = 0;
  for (const Usage& u : usage) total += u.cores;
  return total;
}

// Waits until the services together use less than --settle_cores in two 2 s samples in a row:
// after a bulk load the informers catch up and RocksDB flushes and compacts for a while, and that
// is not the steady state being measured. False when they did not settle in --settle_timeout.
bool Settle(const std::vector<Service>& services) {
  const Clock::time_point start = Clock::now();
  const double limit = absl::GetFlag(FLAGS_settle_cores);
  const double timeout = absl::ToDoubleSeconds(absl::GetFlag(FLAGS_settle_timeout));
  for (int quiet = 0;;) {
    const double cores = TotalCores(Measure(services, absl::Seconds(2)));
    quiet = cores < limit ? quiet + 1 : 0;
    if (quiet == 2) {
      std::fprintf(stderr, "  settled after %.0f s (%.3f cores)\n", SecondsSince(start), cores);
      return true;
    }
    if (SecondsSince(start) > timeout) {
      std::fprintf(stderr, "  NOT settled after %.0f s (%.3f cores)\n", SecondsSince(start), cores);
      return false;
    }
  }
}

// One measured state of the cluster, a row of the RSS and CPU tables.
struct State {
  std::string name;
  std::vector<Usage> usage;  // by service, in the order of the service list
  bool settled = true;
  std::string apiserver_threads;  // the busiest ones, when the apiserver was not idle
};

// The first service is the apiserver.
State MeasureState(const std::string& name, const std::vector<Service>& services) {
  std::fprintf(stderr, "%s: waiting for the CPU to settle\n", name.c_str());
  State state{name, {}, Settle(services), ""};
  CpuMeter apiserver(services[0].pid);
  state.usage = Measure(services, absl::GetFlag(FLAGS_window));
  if (state.usage[0].cores >= 0.05) state.apiserver_threads = apiserver.BusiestServerThreads();
  return state;
}

Usage ControlPlane(const std::vector<Service>& services, const State& state) {
  Usage sum;
  for (size_t i = 0; i < services.size(); ++i) {
    if (!services[i].control_plane) continue;
    sum.rss += state.usage[i].rss;
    sum.pss += state.usage[i].pss;
    sum.anon += state.usage[i].anon;
    sum.cores += state.usage[i].cores;
  }
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Objects

std::string NamespaceName(int i) { return absl::StrCat("footprint-", i); }
std::string NodeName(int i) { return absl::StrCat("footprint-node-", i); }

// A plain Node object, as scheduler_bench makes them: no agent behind it. The controller-manager
// runs with long node grace periods (Cluster::StartClients), so it never marks these Unknown.
absl::Status CreateNode(apiv1::Resources::Stub* stub, int i) {
  Node node;
  node.set_api_version("v1");
  node.set_kind("Node");
  node.mutable_metadata()->set_name(NodeName(i));
  auto& allocatable = *node.mutable_status()->mutable_allocatable();
  allocatable["cpu"].set_string("64");
  allocatable["memory"].set_string("256Gi");
  allocatable["pods"].set_string("110");
  *node.mutable_status()->mutable_capacity() = allocatable;
  return CreateClusterObject(stub, "nodes", node, NodeName(i));
}

// The namespaces the pods go to, one Node each, and the namespace the watches watch.
void CreateScaffolding(const std::string& target) {
  Connections connection(target, 1);
  const int namespaces = absl::GetFlag(FLAGS_namespaces);
  for (int i = 0; i < namespaces; ++i) {
    if (absl::Status s = CreateNamespace(connection.stub(0), NamespaceName(i)); !s.ok()) {
      Fail(std::string(s.message()));
    }
    if (absl::Status s = CreateNode(connection.stub(0), i); !s.ok()) Fail(std::string(s.message()));
  }
  if (absl::Status s = CreateNamespace(connection.stub(0), kWatchNamespace); !s.ok()) {
    Fail(std::string(s.message()));
  }
}

// The ~1 KiB pod of bench/pods.h, already bound (spec.nodeName): the scheduler only caches it.
Pod BoundPodTemplate(const std::string& ns, const std::string& node) {
  Pod pod = MakePodTemplate(ns);
  pod.mutable_spec()->set_node_name(node);
  return pod;
}

// Adds `count` pods spread evenly over the namespaces, names starting with `prefix`. Returns
// how many were created.
int64_t AddPods(const std::string& target, int64_t count, const std::string& prefix) {
  const int clients = absl::GetFlag(FLAGS_clients);
  const int namespaces = absl::GetFlag(FLAGS_namespaces);
  Connections connections(target, ChannelsFor(clients, 16));
  const Clock::time_point start = Clock::now();
  int64_t created = 0;
  for (int i = 0; i < namespaces; ++i) {
    const int64_t share = count / namespaces + (i < count % namespaces ? 1 : 0);
    const std::string ns = NamespaceName(i);
    LoadResult r = CreatePods(connections, clients, 16, share, absl::Minutes(10),
                              BoundPodTemplate(ns, NodeName(i)), ns, prefix);
    created += r.ok;
    if (r.failed > 0) {
      std::fprintf(stderr, "  %" PRId64 " creates failed in %s; first error: %s\n", r.failed,
                   ns.c_str(), r.first_error.c_str());
    }
  }
  const double seconds = SecondsSince(start);
  std::fprintf(stderr, "  created %" PRId64 " pods in %.1f s (%.0f/s)\n", created, seconds,
               created / seconds);
  return created;
}

// ---------------------------------------------------------------------------------------------
// Watches

// Counts the watches that have seen their first event and those that have ended.
class WatchTally {
 public:
  void Seen() {
    absl::MutexLock lock(&mu_);
    ++seen_;
  }
  void Ended() {
    absl::MutexLock lock(&mu_);
    ++ended_;
  }
  bool WaitSeen(int n, absl::Duration timeout) { return WaitFor(&seen_, n, timeout); }
  bool WaitEnded(int n, absl::Duration timeout) { return WaitFor(&ended_, n, timeout); }
  int seen() {
    absl::MutexLock lock(&mu_);
    return seen_;
  }

 private:
  bool WaitFor(int* counter, int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto reached = [counter, n]() { return *counter >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
  }

  absl::Mutex mu_;
  int seen_ ABSL_GUARDED_BY(mu_) = 0;
  int ended_ ABSL_GUARDED_BY(mu_) = 0;
};

// A watch that is only held open: it counts its first event and drops everything. The callback
// API runs it on gRPC's threads, so 1,000 of them need no thread each (as apiserver_bench's
// watchers, which also decode and time every event).
class HeldWatch : public grpc::ClientReadReactor<apiv1::WatchResponse> {
 public:
  HeldWatch(apiv1::Resources::Stub* stub, const std::string& ns, WatchTally* tally)
      : tally_(tally) {
    request_.mutable_resource()->set_version("v1");
    request_.mutable_resource()->set_resource("pods");
    request_.mutable_resource()->set_namespace_(ns);
    request_.set_encoding(apiv1::PROTOBUF);
    stub->async()->Watch(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (!seen_) {
      seen_ = true;
      tally_->Seen();
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status&) override { tally_->Ended(); }
  void Cancel() { context_.TryCancel(); }

 private:
  WatchTally* const tally_;
  grpc::ClientContext context_;
  apiv1::WatchRequest request_;
  apiv1::WatchResponse response_;
  bool seen_ = false;  // only this stream's (sequential) reads touch it
};

// The apiserver's RSS growth per open watch of a namespace holding one pod: the watch starts
// with that pod as its initial ADDED event, which tells that the server has registered it.
// nullopt when not every watch came up.
std::optional<double> BytesPerWatch(const std::string& target, const std::vector<Service>& services,
                                    int apiserver) {
  const int count = absl::GetFlag(FLAGS_watches);
  Connections connections(target, std::max(1, absl::GetFlag(FLAGS_watch_channels)));
  LoadResult marker = CreatePods(connections, 1, 1, 1, absl::Seconds(30),
                                 BoundPodTemplate(kWatchNamespace, NodeName(0)), kWatchNamespace,
                                 "w-");
  if (marker.ok != 1) Fail(absl::StrCat("watch marker pod: ", marker.first_error));
  std::fprintf(stderr, "watches: waiting for the CPU to settle\n");
  Settle(services);
  const int64_t before = ProcBytes(services[apiserver].pid, "status", "VmRSS").value_or(0);

  auto tally = std::make_unique<WatchTally>();
  std::vector<std::unique_ptr<HeldWatch>> watches;
  for (int i = 0; i < count; ++i) {
    watches.push_back(
        std::make_unique<HeldWatch>(connections.stub(i), kWatchNamespace, tally.get()));
  }
  const bool all_up = tally->WaitSeen(count, absl::Seconds(60));
  std::fprintf(stderr, "  %d of %d watches up\n", tally->seen(), count);
  Settle(services);
  const int64_t after = ProcBytes(services[apiserver].pid, "status", "VmRSS").value_or(0);

  for (auto& w : watches) w->Cancel();
  if (!tally->WaitEnded(count, absl::Seconds(20))) {
    // A reactor (and the tally it reports to) must outlive its stream: leak them rather than
    // free what gRPC may still call.
    for (auto& w : watches) w.release();
    tally.release();
  }
  if (!all_up) return std::nullopt;
  return static_cast<double>(after - before) / count;
}

// ---------------------------------------------------------------------------------------------
// Restart

struct RestartTime {
  double serving = 0;   // s from the start of the process until it wrote its address file
  double answered = 0;  // s until it answered a Get
};

// SIGKILL (nothing flushed, as a crash) and a start on the same data directory.
RestartTime TimeRestart(testing::ApiServerProcess* apiserver, const std::string& ns,
                        const std::string& name) {
  apiserver->Kill();
  const Clock::time_point start = Clock::now();
  // Start() returns once the address file is written, which the apiserver does once it serves.
  if (absl::Status s = apiserver->Start(); !s.ok()) Fail(std::string(s.message()));
  RestartTime time;
  time.serving = SecondsSince(start);
  Connections connection(apiserver->grpc_address(), 1);
  apiv1::GetRequest request;
  *request.mutable_resource() = PodsIn(ns);
  request.set_name(name);
  request.set_encoding(apiv1::PROTOBUF);
  apiv1::ObjectResponse response;
  grpc::ClientContext context;
  SetTimeout(&context);
  grpc::Status status = connection.stub(0)->Get(&context, request, &response);
  if (!status.ok()) Fail(absl::StrCat("Get after restart: ", Describe(status)));
  time.answered = SecondsSince(start);
  return time;
}

// ---------------------------------------------------------------------------------------------
// Binaries

struct Binary {
  std::string name;
  std::string path;
  int64_t bytes = 0;
  int64_t stripped = -1;  // -1: strip failed
};

int64_t FileBytes(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);  // follows the runfiles symlink
  return ec ? -1 : static_cast<int64_t>(size);
}

// strip writes a stripped copy (-o), so the build output is left alone.
int64_t StrippedBytes(const std::string& path, const std::string& dir) {
  const std::string out = dir + "/" + std::filesystem::path(path).filename().string();
  absl::StatusOr<base::CommandResult> r =
      base::RunCommand({"/usr/bin/strip", "-o", out, path}, {absl::Seconds(60)});
  if (!r.ok() || r->exit_code != 0) return -1;
  return FileBytes(out);
}

// The shared libraries the binaries load (Debian's gRPC, protobuf, Abseil, RocksDB, ...), by
// resolved path, from ldd.
std::set<std::string> SharedLibraries(const std::vector<Binary>& binaries) {
  std::set<std::string> libraries;
  for (const Binary& b : binaries) {
    absl::StatusOr<base::CommandResult> r = base::RunCommand({"/usr/bin/ldd", b.path});
    if (!r.ok()) continue;
    for (absl::string_view line : absl::StrSplit(r->out, '\n')) {
      size_t arrow = line.find("=> /");
      if (arrow == absl::string_view::npos) continue;
      absl::string_view path = line.substr(arrow + 3);
      path = path.substr(0, path.find(' '));
      std::error_code ec;
      std::string real = std::filesystem::canonical(std::string(path), ec).string();
      if (!ec) libraries.insert(real);
    }
  }
  return libraries;
}

std::vector<Binary> MeasureBinaries() {
  std::vector<Binary> binaries = {
      {"capstan-apiserver", testing::RunfilePath("services/apiserver/capstan-apiserver")},
      {"capstan-controller-manager",
       testing::RunfilePath("services/controller-manager/capstan-controller-manager")},
      {"capstan-scheduler", testing::RunfilePath("services/scheduler/capstan-scheduler")},
      {"capstan-node-agent", testing::RunfilePath("services/node-agent/capstan-node-agent")},
      {"capstanctl", testing::RunfilePath("tools/capstanctl/capstanctl")},
  };
  const std::string dir = testing::MakeTempDir("footprint-strip-");
  for (Binary& b : binaries) {
    b.bytes = FileBytes(b.path);
    b.stripped = StrippedBytes(b.path, dir);
  }
  testing::RemoveTree(dir);
  return binaries;
}

// ---------------------------------------------------------------------------------------------
// Output

void Row(const std::string& workload, double value, const std::string& unit,
         const std::string& goal = "", std::optional<bool> met = std::nullopt) {
  ReportRow row;
  row.table = kTable;
  row.workload = workload;
  row.figure = {value, unit};
  row.goal = goal;
  row.met = met;
  Report(row);
}

void PrintStates(const std::vector<Service>& services, const std::vector<State>& states) {
  std::string header = "\n| State |";
  for (const Service& s : services) {
    if (s.control_plane) absl::StrAppend(&header, " ", s.name, " |");
  }
  absl::StrAppend(&header, " control plane | ", services.back().name, " |\n|---|");
  std::printf("%s", header.c_str());
  for (size_t i = 0; i <= services.size(); ++i) std::printf("---:|");
  std::printf("\n");
  auto print = [&](const char* what, auto value) {
    for (const State& state : states) {
      std::string cells;
      for (size_t i = 0; i < services.size(); ++i) {
        if (services[i].control_plane) absl::StrAppend(&cells, value(state.usage[i]), " | ");
      }
      absl::StrAppend(&cells, "**", value(ControlPlane(services, state)), "** | ");
      absl::StrAppend(&cells, value(state.usage.back()));
      std::printf("| %s, %s%s | %s |\n", state.name.c_str(), what,
                  state.settled ? "" : " (CPU not settled)", cells.c_str());
    }
  };
  print("RSS MB", [](const Usage& u) { return absl::StrFormat("%.1f", Mb(u.rss)); });
  print("PSS MB", [](const Usage& u) { return absl::StrFormat("%.1f", Mb(u.pss)); });
  print("anonymous RSS MB", [](const Usage& u) { return absl::StrFormat("%.1f", Mb(u.anon)); });
  print("CPU cores", [](const Usage& u) { return absl::StrFormat("%.3f", u.cores); });
  for (const State& state : states) {
    if (state.apiserver_threads.empty()) continue;
    std::printf("\n%s: busiest apiserver threads: %s\n", state.name.c_str(),
                state.apiserver_threads.c_str());
  }
}

void PrintBinaries(const std::vector<Binary>& binaries) {
  std::printf("\n| Binary | As built (with debug info) | Stripped |\n|---|---:|---:|\n");
  int64_t total = 0, total_stripped = 0;
  for (const Binary& b : binaries) {
    std::printf("| %s | %.1f MB | %s |\n", b.name.c_str(), Mb(b.bytes),
                b.stripped < 0 ? "strip failed" : absl::StrFormat("%.1f MB", Mb(b.stripped)).c_str());
    total += b.bytes;
    total_stripped += std::max<int64_t>(b.stripped, 0);
  }
  std::printf("| all five | %.1f MB | **%.1f MB** |\n", Mb(total), Mb(total_stripped));
  const std::set<std::string> libraries = SharedLibraries(binaries);
  int64_t library_bytes = 0;
  for (const std::string& l : libraries) library_bytes += std::max<int64_t>(FileBytes(l), 0);
  std::printf("| shared libraries they load (%zu, from Debian packages; counted once) | %.1f MB | |\n",
              libraries.size(), Mb(library_bytes));
  Row("Binaries on disk: 4 services + capstanctl, stripped (shared libraries not counted)",
      Mb(total_stripped), " MB");
}

// ---------------------------------------------------------------------------------------------

std::string Count(int64_t n) { return FormatFigure({static_cast<double>(n), ""}); }

std::vector<std::string> ApiserverFlags() {
  return absl::StrSplit(absl::GetFlag(FLAGS_apiserver_flags), ' ', absl::SkipWhitespace());
}

// The four services on loopback, killed and cleaned up on destruction (the harness kills them if
// this process dies).
class Cluster {
 public:
  Cluster() : apiserver_(ApiserverFlags()), agent_dir_(testing::MakeTempDir("footprint-agent-")) {
    if (absl::Status s = apiserver_.Start(); !s.ok()) Fail(std::string(s.message()));
    StartClients();
  }
  ~Cluster() {
    StopClients(/*graceful=*/false);
    apiserver_.Kill();
    testing::RemoveTree(agent_dir_);
  }

  // The harness does not expose the pid it forked.
  static int ApiserverPid() {
    const int pid = FindChildProcess("capstan-apiserv");  // /proc's 15-character command name
    if (pid == 0) Fail("cannot find the apiserver's pid");
    return pid;
  }

  // SIGTERM lets the controller-manager and the scheduler release their leader leases, so that
  // their successors take over at once instead of waiting for the leases to expire.
  void StopClients(bool graceful) {
    for (std::optional<testing::ServiceProcess>* p : {&manager_, &scheduler_, &agent_}) {
      if (!p->has_value()) continue;
      if (graceful) {
        (*p)->Stop();
      } else {
        (*p)->Kill();
      }
    }
  }

  // A clean restart of every service on the same data: what remains in memory is what holding
  // the objects costs, without what the allocator kept from the load that created them.
  void RestartAll() {
    StopClients(/*graceful=*/true);
    apiserver_.Stop();
    if (absl::Status s = apiserver_.Start(); !s.ok()) Fail(std::string(s.message()));
    StartClients();
  }

  testing::ApiServerProcess* apiserver() { return &apiserver_; }
  std::string target() const { return apiserver_.grpc_address(); }  // changes with a restart
  const std::vector<Service>& services() const { return services_; }

 private:
  // The clients are made anew on each start: the apiserver's port changes with each start.
  void StartClients() {
    const std::string server = "--server=" + apiserver_.grpc_address();
    // Default flags (leader election on, as `make up` runs them), except the node grace periods:
    // the benchmark's Node objects have no agent renewing their Leases, and the node lifecycle
    // controller would otherwise mark them Unknown after a minute and rewrite every pod on them.
    manager_.emplace("services/controller-manager/capstan-controller-manager",
                     std::vector<std::string>{server, "--metrics_listen=127.0.0.1:0",
                                              "--node_monitor_grace_period=24h",
                                              "--node_startup_grace_period=24h"});
    scheduler_.emplace("services/scheduler/capstan-scheduler",
                       std::vector<std::string>{server, "--metrics_listen=127.0.0.1:0"});
    agent_.emplace("services/node-agent/capstan-node-agent",
                   std::vector<std::string>{server, "--simulate_nodes=1",
                                            "--node_name=footprint-sim", "--listen=127.0.0.1:0",
                                            "--data_dir=" + agent_dir_});
    for (testing::ServiceProcess* p : {&*manager_, &*scheduler_, &*agent_}) {
      if (absl::Status s = p->Start(); !s.ok()) Fail(std::string(s.message()));
    }
    services_ = {
        {"apiserver", ApiserverPid(), true},
        {"controller-manager", manager_->pid(), true},
        {"scheduler", scheduler_->pid(), true},
        {"node agent (1 simulated node)", agent_->pid(), false},
    };
  }

  testing::ApiServerProcess apiserver_;
  const std::string agent_dir_;
  std::optional<testing::ServiceProcess> manager_, scheduler_, agent_;
  std::vector<Service> services_;
};

constexpr int kApiserver = 0, kManager = 1, kScheduler = 2, kAgent = 3;  // in Cluster::services()

void ReportIdle(const State& idle_state, const std::vector<Service>& services) {
  const Usage idle = ControlPlane(services, idle_state);
  ReportRow row;
  row.table = kTable;
  row.workload = "Idle control plane (apiserver + controller-manager + scheduler), RSS";
  row.figure = {Mb(idle.rss), " MB"};
  row.baseline = Figure{510, " MB"};
  row.baseline_name = "k0s controller idle (published)";
  row.goal = "<= 50 MB";
  row.met = Mb(idle.rss) <= 50;
  Report(row);
  Row("Idle control plane, PSS (shared library pages counted once)", Mb(idle.pss), " MB");
  Row("Idle control plane, CPU", idle.cores, " cores");
  Row("Idle node agent (1 simulated node), RSS", Mb(idle_state.usage[kAgent].rss), " MB");
  Row("Idle node agent (1 simulated node), CPU", idle_state.usage[kAgent].cores, " cores");
}

// Each service's RSS growth per pod between two measured states.
std::vector<double> BytesPerPod(const State& from, const State& to, int64_t pods) {
  std::vector<double> per_pod;
  for (size_t s = 0; s < from.usage.size(); ++s) {
    per_pod.push_back(static_cast<double>(to.usage[s].rss - from.usage[s].rss) / pods);
  }
  return per_pod;
}

void ReportPerPod(const std::vector<double>& per_pod, int from, int to, const std::string& when) {
  const std::string between = absl::StrCat("(RSS growth from ", Count(from), " to ", Count(to),
                                           " pods, ", when, ")");
  Row(absl::StrCat("Apiserver memory per stored pod ", between), Kb(per_pod[kApiserver]), " KB",
      "<= 8 KB", Kb(per_pod[kApiserver]) <= 8);
  Row(absl::StrCat("Controller-manager memory per pod ", between), Kb(per_pod[kManager]), " KB");
  Row(absl::StrCat("Scheduler memory per pod ", between), Kb(per_pod[kScheduler]), " KB");
}

struct Restarts {
  int64_t pods = 0;
  std::vector<RestartTime> times;
  Usage after;  // the apiserver once settled after the last restart
};

// Fills the store up to --restart_pods, then times --restarts SIGKILL + start cycles. The
// apiserver is timed alone: its clients would re-list everything the moment it is back, which is
// their cost, not its time to come up.
Restarts MeasureRestarts(Cluster* cluster, int64_t stored, const std::string& probe_pod) {
  Restarts r;
  const int64_t want = absl::GetFlag(FLAGS_restart_pods);
  std::fprintf(stderr, "adding pods up to %s for the restart\n", Count(want).c_str());
  if (want > stored) stored += AddPods(cluster->target(), want - stored, "r-");
  r.pods = stored;
  cluster->StopClients(/*graceful=*/false);
  for (int i = 0; i < absl::GetFlag(FLAGS_restarts); ++i) {
    r.times.push_back(TimeRestart(cluster->apiserver(), NamespaceName(0), probe_pod));
    std::fprintf(stderr, "  restart %d: serving after %.2f s, answered a Get after %.2f s\n", i + 1,
                 r.times.back().serving, r.times.back().answered);
  }
  const std::vector<Service> alone = {{"apiserver", Cluster::ApiserverPid(), true}};
  std::fprintf(stderr, "after the restarts: waiting for the CPU to settle\n");
  Settle(alone);
  r.after = Measure(alone, absl::Seconds(2))[0];
  return r;
}

void PrintPerPod(const std::vector<double>& per_pod, const std::vector<int>& counts,
                 const std::string& when) {
  if (per_pod.empty()) return;
  std::printf("| memory per stored pod (RSS growth %s -> %s pods, %s) | **%.2f KB** (goal <= 8 KB) "
              "| %.2f KB | %.2f KB |\n",
              Count(counts[0]).c_str(), Count(counts[1]).c_str(), when.c_str(),
              Kb(per_pod[kApiserver]), Kb(per_pod[kManager]), Kb(per_pod[kScheduler]));
}

void PrintPerUnit(const std::vector<double>& loaded, const std::vector<double>& restarted,
                  const std::vector<int>& counts, const std::optional<double>& per_watch) {
  std::printf("\n| Per unit | apiserver | controller-manager | scheduler |\n|---|---:|---:|---:|\n");
  PrintPerPod(loaded, counts, "after loading");
  PrintPerPod(restarted, counts, "after a restart");
  if (per_watch) {
    std::printf("| memory per open watch (RSS growth with %s watches) | %.2f KB | | |\n",
                Count(absl::GetFlag(FLAGS_watches)).c_str(), Kb(*per_watch));
  } else {
    std::printf("| memory per open watch | not every watch came up | | |\n");
  }
}

void PrintRestarts(const Restarts& r) {
  std::printf("\n| Apiserver restart (SIGKILL, same data dir), %s pods stored | Serving "
              "(address file written) | Answered a Get |\n|---|---:|---:|\n",
              Count(r.pods).c_str());
  double worst = 0;
  for (size_t i = 0; i < r.times.size(); ++i) {
    std::printf("| restart %zu | %.2f s | %.2f s |\n", i + 1, r.times[i].serving,
                r.times[i].answered);
    worst = std::max(worst, r.times[i].answered);
  }
  std::printf("| apiserver after the restarts: RSS / PSS / anonymous | %.1f / %.1f / %.1f MB | |\n",
              Mb(r.after.rss), Mb(r.after.pss), Mb(r.after.anon));
  Row(absl::StrCat("Apiserver ready after a restart (SIGKILL) with ", Count(r.pods),
                   " pods stored, worst of ", r.times.size()),
      worst, " s", "<= 3 s", worst <= 3);
}

int Run() {
  const std::vector<int> counts = ParseCounts(absl::GetFlag(FLAGS_pods), "pods");
  std::printf("Machine: %d CPUs (%s), %s RAM, data on %s\n", CpusAvailable(), CpuModel().c_str(),
              MemTotal().c_str(), FilesystemType("/tmp").c_str());
  Cluster cluster;
  const std::vector<Service>& services = cluster.services();

  std::vector<State> states = {MeasureState("idle", services)};
  ReportIdle(states[0], services);

  CreateScaffolding(cluster.target());
  const std::optional<double> per_watch = BytesPerWatch(cluster.target(), services, kApiserver);
  if (per_watch) {
    Row(absl::StrCat("Apiserver memory per open watch (", Count(absl::GetFlag(FLAGS_watches)),
                     " watches)"),
        Kb(*per_watch), " KB");
  }

  // Each count is measured right after loading (what the allocator kept from the load
  // included) and, with --measure_restarted, after a clean restart of every service.
  int64_t stored = 0;
  std::vector<State> loaded, restarted;
  for (size_t i = 0; i < counts.size(); ++i) {
    std::fprintf(stderr, "adding pods up to %s\n", Count(counts[i]).c_str());
    stored += AddPods(cluster.target(), counts[i] - stored, absl::StrCat("p", i, "-"));
    loaded.push_back(MeasureState(absl::StrCat(Count(counts[i]), " pods, after loading"), services));
    states.push_back(loaded.back());
    Row(absl::StrCat("Control plane RSS with ", Count(counts[i]), " pods stored, after loading"),
        Mb(ControlPlane(services, loaded.back()).rss), " MB");
    if (!absl::GetFlag(FLAGS_measure_restarted)) continue;
    cluster.RestartAll();
    restarted.push_back(
        MeasureState(absl::StrCat(Count(counts[i]), " pods, after a restart"), services));
    states.push_back(restarted.back());
    Row(absl::StrCat("Control plane RSS with ", Count(counts[i]), " pods stored, after a restart"),
        Mb(ControlPlane(services, restarted.back()).rss), " MB");
  }
  std::vector<double> per_pod_loaded, per_pod_restarted;
  if (counts.size() >= 2) {
    per_pod_loaded = BytesPerPod(loaded[0], loaded[1], counts[1] - counts[0]);
    ReportPerPod(per_pod_loaded, counts[0], counts[1], "after loading");
    if (!restarted.empty()) {
      per_pod_restarted = BytesPerPod(restarted[0], restarted[1], counts[1] - counts[0]);
      ReportPerPod(per_pod_restarted, counts[0], counts[1], "after a restart");
    }
  }

  std::optional<Restarts> restarts;
  if (absl::GetFlag(FLAGS_restart_pods) > 0 && absl::GetFlag(FLAGS_restarts) > 0) {
    restarts = MeasureRestarts(&cluster, stored, counts.empty() ? "r-000000" : "p0-000000");
  }

  // Tables for people (the BENCH lines above are for scripts/bench.sh).
  PrintStates(services, states);
  PrintPerUnit(per_pod_loaded, per_pod_restarted, counts, per_watch);
  if (restarts) PrintRestarts(*restarts);
  PrintBinaries(MeasureBinaries());
  return 0;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Run();
}
