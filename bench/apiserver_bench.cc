// Throughput and latency of a real capstan-apiserver over gRPC.
//
// Starts its own apiserver (test/harness/apiserver_process.h: private data directory, loopback
// ports, durable writes unless --apiserver_flags says otherwise), or targets a running one with
// --server=127.0.0.1:PORT, and runs these workloads, each bounded in count and time:
//
//   create  Durable creates of ~1 KiB Pods from --clients concurrent clients (closed loop: each
//           client sends its next create when the previous one is answered).
//   get     GETs of existing pods from --get_clients concurrent clients.
//   list    LISTs of --list_pods pods in one namespace, all of them and with a label selector
//           that matches 10%.
//   watch   --watchers concurrent watches of one namespace, one writer creating then updating
//           pods at --watch_rate per second; every pod carries its send time (steady_clock ns,
//           same process, so clocks agree) in the annotation "bench/sent-ns" and every watcher
//           records the delivery latency from it.
//   burst   The same watchers, the writer as fast as it can for --burst_seconds.
//
// It prints the machine, the settings and a Markdown table with the goal next to each figure,
// and the apiserver's CPU (user+sys from /proc/PID/stat) during each run, so one can tell
// whether the server or the client saturates; the headline figures with issue 2's goals also go
// out as BENCH lines (bench/report.h) for docs/benchmarks.md's "API server" table. It never
// fails on timing.
//
//   bazel run -c opt //bench:apiserver_bench
//   bazel run -c opt //bench:apiserver_bench -- --clients=256 --skip=watch,burst
//
// Clients use gRPC's callback API rather than a thread per client with the sync stub: the
// benchmark and the server share the machine, and 256 (or 1,000 watching) blocked threads would
// spend the CPU the server needs on context switches. A closed loop keeps exactly `clients`
// requests in flight, which is what N concurrent synchronous clients would do.

#include <sched.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"
#include "proto/resource.grpc.pb.h"
#include "proto/resource.pb.h"
#include "bench/load.h"
#include "bench/pods.h"
#include "bench/report.h"
#include "test/harness/apiserver_process.h"

ABSL_FLAG(std::vector<std::string>, clients, std::vector<std::string>({"1", "16", "256"}),
          "Numbers of concurrent clients for the create workload.");
ABSL_FLAG(std::vector<std::string>, get_clients, std::vector<std::string>({"1", "16"}),
          "Numbers of concurrent clients for the get workload.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10),
          "Longest time of each create and get run (a run also stops at --max_ops).");
ABSL_FLAG(int64_t, max_ops, 50000, "Most requests in each create and get run.");
ABSL_FLAG(int, clients_per_channel, 16,
          "Clients sharing one channel (one HTTP/2 connection) in the create and get runs.");
ABSL_FLAG(int, list_pods, 3000, "Pods in the namespace the list workload lists.");
ABSL_FLAG(int, lists, 50, "LIST requests per list run.");
ABSL_FLAG(int, watchers, 1000, "Concurrent watchers in the watch and burst workloads.");
ABSL_FLAG(int, watch_channels, 4, "Channels the watchers are spread over.");
ABSL_FLAG(double, watch_rate, 100, "Writes per second of the steady watch workload's writer.");
ABSL_FLAG(absl::Duration, watch_duration, absl::Seconds(10),
          "Duration of the steady watch workload's writer.");
ABSL_FLAG(int, watch_pods, 100,
          "Pods the steady writer creates before it turns to updating them in turn.");
ABSL_FLAG(absl::Duration, burst_duration, absl::Seconds(3),
          "Duration of the burst workload's writer.");
ABSL_FLAG(int64_t, burst_max_writes, 20000, "Most writes of the burst workload.");
ABSL_FLAG(int, burst_writers, 1, "Concurrent writers in the burst workload.");
ABSL_FLAG(std::string, server, "",
          "HOST:PORT of a running apiserver to measure (loopback only); empty starts one.");
ABSL_FLAG(int, server_pid, 0,
          "With --server: the apiserver's process id, to report its CPU (0: not reported).");
ABSL_FLAG(std::vector<std::string>, skip, std::vector<std::string>(),
          "Workloads to skip: create, get, list, watch, burst.");
ABSL_FLAG(std::string, apiserver_flags, "",
          "Extra flags for the apiserver this starts, separated by spaces "
          "(e.g. \"--watch_window=20000 --unsafe_no_fsync\").");

namespace capstan::bench {
namespace {

namespace apiv1 = capstan::api::v1;
using capstan::core::v1::Pod;
using Stub = apiv1::Resources::Stub;

// ---------------------------------------------------------------------------------------------
// Report

struct Row {
  std::string workload;
  std::string clients;
  int64_t ops = 0;
  int64_t errors = 0;
  double seconds = 0;
  double rate = 0;
  double p50 = 0, p99 = 0, p999 = 0;  // ms
  std::string goal;
  std::optional<double> server_cpu;  // seconds
  double client_cpu = 0;            // seconds
  int64_t cpu_ops = 0;              // what server CPU per 1,000 ops is reported for (0: none)
};

std::vector<Row>& Rows() {
  static auto* rows = new std::vector<Row>();
  return *rows;
}
std::vector<std::string>& Notes() {
  static auto* notes = new std::vector<std::string>();
  return *notes;
}

void Note(const std::string& note) {
  std::fprintf(stderr, "  %s\n", note.c_str());
  Notes().push_back(note);
}

std::string Ms(double ms) { return ms < 10 ? absl::StrFormat("%.3f", ms) : absl::StrFormat("%.1f", ms); }

void NoteThreads(const std::string& what, double seconds, const CpuMeter& cpu) {
  if (seconds < 0.5) return;  // too short for 10 ms ticks
  std::string threads = cpu.BusiestServerThreads();
  if (!threads.empty()) Note(absl::StrCat(what, ": busiest apiserver threads: ", threads));
}

void AddRow(Row row) {
  std::fprintf(stderr,
               "%s, %s clients: %" PRId64 " ok, %" PRId64 " errors in %.2f s = %.0f/s; "
               "p50 %s ms, p99 %s ms, p999 %s ms\n",
               row.workload.c_str(), row.clients.c_str(), row.ops, row.errors, row.seconds,
               row.rate, Ms(row.p50).c_str(), Ms(row.p99).c_str(), Ms(row.p999).c_str());
  Rows().push_back(std::move(row));
}

Row RowFrom(const std::string& workload, const std::string& clients, const LoadResult& r,
            const std::string& goal, const CpuMeter& cpu, bool cpu_per_op) {
  Row row;
  row.workload = workload;
  row.clients = clients;
  row.ops = r.ok;
  row.errors = r.failed;
  row.seconds = r.seconds;
  row.rate = r.seconds > 0 ? r.ok / r.seconds : 0;
  row.p50 = r.latency.PercentileMs(0.50);
  row.p99 = r.latency.PercentileMs(0.99);
  row.p999 = r.latency.PercentileMs(0.999);
  row.goal = goal;
  row.server_cpu = cpu.ServerSeconds();
  row.client_cpu = cpu.ClientSeconds();
  row.cpu_ops = cpu_per_op ? r.ok : 0;
  NoteThreads(workload + " (" + clients + ")", r.seconds, cpu);
  if (r.failed > 0) Note(absl::StrCat(workload, " (", clients, "): first error: ", r.first_error));
  return row;
}

void PrintTable() {
  std::printf(
      "\n| Workload | Clients | OK | Errors | Seconds | Per second | p50 ms | p99 ms | p999 ms "
      "| Goal | Server CPU (cores) | Server CPU s / 1k ops | Bench CPU (cores) |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
  for (const Row& r : Rows()) {
    std::string server_cores = "n/a", per_k = "—";
    // /proc counts CPU in 10 ms ticks: too coarse for runs shorter than half a second.
    if (r.server_cpu && r.seconds >= 0.5) {
      server_cores = absl::StrFormat("%.2f", *r.server_cpu / r.seconds);
      if (r.cpu_ops > 0) per_k = absl::StrFormat("%.3f", *r.server_cpu * 1000 / r.cpu_ops);
    }
    const std::string client_cores =
        r.seconds >= 0.5 ? absl::StrFormat("%.2f", r.client_cpu / r.seconds) : "n/a";
    std::printf("| %s | %s | %" PRId64 " | %" PRId64 " | %.2f | %.0f | %s | %s | %s | %s | %s | %s "
                "| %s |\n",
                r.workload.c_str(), r.clients.c_str(), r.ops, r.errors, r.seconds, r.rate,
                Ms(r.p50).c_str(), Ms(r.p99).c_str(), Ms(r.p999).c_str(), r.goal.c_str(),
                server_cores.c_str(), per_k.c_str(), client_cores.c_str());
  }
  if (!Notes().empty()) {
    std::printf("\nNotes:\n");
    for (const std::string& n : Notes()) std::printf("- %s\n", n.c_str());
  }
}

// A headline figure for docs/benchmarks.md's "API server" table, with issue 2's goal.
void ReportGoal(const std::string& workload, Figure figure, const std::string& goal, bool met) {
  ReportRow row;
  row.table = "API server";
  row.workload = workload;
  row.figure = std::move(figure);
  row.goal = goal;
  row.met = met;
  Report(row);
}

// ---------------------------------------------------------------------------------------------
// Workloads

struct Context {
  std::string target;
  int server_pid = 0;
  std::string run_id;  // makes names unique when --server is measured more than once
  Pod pod_template;
};



void RunCreates(const Context& ctx) {
  const std::string ns = absl::StrCat("bench-", ctx.run_id, "-create");
  Connections setup(ctx.target, 1);
  if (absl::Status s = CreateNamespace(setup.stub(0), ns); !s.ok()) {
    Note(std::string(s.message()));
    return;
  }
  for (int clients : ParseCounts(absl::GetFlag(FLAGS_clients), "clients")) {
    Connections connections(ctx.target, ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
    CpuMeter cpu(ctx.server_pid);
    LoadResult r =
        CreatePods(connections, clients, absl::GetFlag(FLAGS_clients_per_channel),
                   absl::GetFlag(FLAGS_max_ops), absl::GetFlag(FLAGS_duration), ctx.pod_template,
                   ns, absl::StrCat("c", clients, "-"));
    AddRow(RowFrom("create (durable)", absl::StrCat(clients), r,
                   clients == 256 ? ">= 20,000/s (etcd, 2 vCPU: ~4,000/s)" : "—", cpu, true));
    if (clients == 256) {
      const double rate = r.seconds > 0 ? r.ok / r.seconds : 0;
      ReportGoal("Durable creates of ~1 KiB pods, 256 clients", {rate, "/s"}, ">= 20,000/s",
                 rate >= 20000);
    }
  }
}

// The namespace the get and list workloads read: --list_pods pods, shard label 0-9.
std::string PopulateReadNamespace(const Context& ctx) {
  const std::string ns = absl::StrCat("bench-", ctx.run_id, "-read");
  Connections connections(ctx.target, 4);
  if (absl::Status s = CreateNamespace(connections.stub(0), ns); !s.ok()) {
    Note(std::string(s.message()));
    return "";
  }
  const int pods = absl::GetFlag(FLAGS_list_pods);
  LoadResult r = CreatePods(connections, 64, 16, pods, absl::Minutes(2), ctx.pod_template, ns,
                            "p-");
  std::fprintf(stderr, "populated %s: %" PRId64 " pods in %.1f s (%" PRId64 " errors)\n",
               ns.c_str(), r.ok, r.seconds, r.failed);
  if (r.ok < pods) {
    Note(absl::StrCat("populating the read namespace: only ", r.ok, " of ", pods,
                      " pods created; first error: ", r.first_error));
  }
  return ns;
}

void RunGets(const Context& ctx, const std::string& ns) {
  const int pods = absl::GetFlag(FLAGS_list_pods);
  for (int clients : ParseCounts(absl::GetFlag(FLAGS_get_clients), "get_clients")) {
    Connections connections(ctx.target, ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
    CpuMeter cpu(ctx.server_pid);
    LoadResult r = GetPods(connections, clients, absl::GetFlag(FLAGS_clients_per_channel),
                           absl::GetFlag(FLAGS_max_ops), absl::GetFlag(FLAGS_duration), ns, pods);
    AddRow(RowFrom("get", absl::StrCat(clients), r, "p99 <= 1 ms", cpu, true));
    if (clients == 1 || clients == 16) {
      const double p99 = r.latency.PercentileMs(0.99);
      ReportGoal(absl::StrCat("GET p99 latency, ", clients, clients == 1 ? " client" : " clients"),
                 {p99, " ms"}, "<= 1 ms", r.ok > 0 && p99 <= 1);
    }
  }
}

void RunLists(const Context& ctx, const std::string& ns) {
  Connections connections(ctx.target, 1);
  struct Variant {
    const char* name;
    const char* selector;
    const char* resource_version;
  };
  const Variant variants[] = {
      {"list all", "", ""},
      {"list 10% (label selector)", "shard=3", ""},
      {"list all, resourceVersion=0", "", "0"},
  };
  const int pods = absl::GetFlag(FLAGS_list_pods);
  for (const Variant& v : variants) {
    ResponseSize size;
    CpuMeter cpu(ctx.server_pid);
    LoadResult r = ListPods(connections, 1, 1, absl::GetFlag(FLAGS_lists), absl::Minutes(2), ns,
                            v.selector, v.resource_version, &size);
    AddRow(RowFrom(absl::StrCat(v.name, " of ", pods, " pods"), "1", r, "p99 <= 20 ms", cpu,
                   true));
    Note(absl::StrFormat("%s: %d items, %.2f MB per response", v.name, size.items.load(),
                         size.bytes.load() / 1e6));
    if (&v == &variants[0]) {  // all pods, most recent state: what issue 2's goal is for
      const double p99 = r.latency.PercentileMs(0.99);
      ReportGoal(absl::StrFormat("LIST of %s pods p99 latency, 1 client",
                                 FormatFigure({static_cast<double>(pods), ""})),
                 {p99, " ms"}, "<= 20 ms", r.ok > 0 && p99 <= 20);
    }
  }
}

// -- Watch fan-out

class WatchFanout {
 public:
  WatchFanout(const Context& ctx) : ctx_(ctx), ns_(absl::StrCat("bench-", ctx.run_id, "-watch")) {}

  // Opens the watches and waits until every one sees events.
  bool Start() {
    writer_connection_ = std::make_unique<Connections>(ctx_.target, 1);
    Stub* writer = writer_connection_->stub(0);
    if (absl::Status s = CreateNamespace(writer, ns_); !s.ok()) {
      Note(std::string(s.message()));
      return false;
    }
    const int watchers = absl::GetFlag(FLAGS_watchers);
    watch_connections_ =
        std::make_unique<Connections>(ctx_.target, std::max(1, absl::GetFlag(FLAGS_watch_channels)));
    const Clock::time_point start = Clock::now();
    for (int i = 0; i < watchers; ++i) {
      watchers_.Add(
          std::make_unique<PodWatchReader>(watch_connections_->stub(i), ns_, watchers_.group()));
    }
    // Every watcher has seen a warm-up pod (as an event, or as initial state), 30 s at most.
    std::string warmup_error;
    const int ready = watchers_.WarmUp(
        [&](int i) {
          apiv1::ObjectResponse created;
          return Write(writer, absl::StrFormat("w-%06d", i), &created);
        },
        absl::Seconds(30), &warmup_error);
    if (!warmup_error.empty()) Note(absl::StrCat("watch warm-up write: ", warmup_error));
    std::fprintf(stderr, "watch: %d of %d watchers ready after %.1f s\n", ready, watchers,
                 SecondsSince(start));
    if (ready < watchers) {
      Note(absl::StrCat("watch: only ", ready, " of ", watchers, " watchers saw events after ",
                        "30 s of warm-up; ", watchers_.group()->finished(), " streams had ended"));
    }
    return ready > 0;
  }

  // One writer at --watch_rate: creates --watch_pods pods, then updates them in turn.
  void Steady() {
    Stub* writer = writer_connection_->stub(0);
    const double rate = absl::GetFlag(FLAGS_watch_rate);
    const int pool = std::max(1, absl::GetFlag(FLAGS_watch_pods));
    const int64_t writes = static_cast<int64_t>(
        rate * absl::ToDoubleSeconds(absl::GetFlag(FLAGS_watch_duration)));
    std::vector<Pod> current(pool);  // the server's copy of each pod, for updates
    std::vector<int64_t> ack_ns(writes, 0);  // when each write's answer arrived (0: failed)
    Histogram write_latency;
    int64_t ok = 0, failed = 0;
    std::string first_error;
    CpuMeter cpu(ctx_.server_pid);
    const Clock::time_point start = Clock::now();
    // Bounded in time too: when writes take longer than their interval (the writer is one
    // synchronous client), fewer are made and the achieved rate says so.
    const Clock::time_point deadline =
        start + absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_watch_duration));
    for (int64_t i = 0; i < writes && Clock::now() < deadline; ++i) {
      std::this_thread::sleep_until(start + std::chrono::nanoseconds(
                                                static_cast<int64_t>(i * 1e9 / rate)));
      const int slot = static_cast<int>(i % pool);
      const Clock::time_point sent = Clock::now();
      grpc::Status status;
      apiv1::ObjectResponse response;
      if (i < pool) {
        status = Write(writer, absl::StrFormat("s-%06d", slot), &response, i);
      } else {
        status = Update(writer, &current[slot], &response, i);
      }
      if (status.ok()) {
        ack_ns[i] = NowNs();
        ++ok;
        write_latency.Record(
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - sent).count());
        current[slot].ParseFromString(response.object());
      } else {
        ++failed;
        if (first_error.empty()) first_error = Describe(status);
      }
    }
    const double write_seconds = SecondsSince(start);
    const PhaseStats stats = watchers_.Drain(kSteady, ok, absl::Seconds(10));
    const double seconds = SecondsSince(start);
    Row row;
    row.workload = absl::StrFormat("watch delivery, %.0f writes/s (%d creates, then updates)",
                                   rate, pool);
    row.clients = absl::StrCat(watchers_.size(), " watchers");
    row.ops = stats.events;
    row.errors = failed;
    row.seconds = seconds;
    row.rate = stats.events / seconds;
    row.p50 = stats.latency.PercentileMs(0.50);
    row.p99 = stats.latency.PercentileMs(0.99);
    row.p999 = stats.latency.PercentileMs(0.999);
    row.goal = "p99 <= 5 ms";
    row.server_cpu = cpu.ServerSeconds();
    row.client_cpu = cpu.ClientSeconds();
    NoteThreads(row.workload, row.seconds, cpu);
    AddRow(row);
    ReportGoal(absl::StrFormat("Watch delivery p99 latency, %s watchers, %.0f writes/s",
                               FormatFigure({static_cast<double>(watchers_.size()), ""}), rate),
               {row.p99, " ms"}, "<= 5 ms", stats.events > 0 && row.p99 <= 5);
    Note(absl::StrFormat(
        "watch steady: %d writes ok (%.0f/s achieved), writer's own create/update latency "
        "(send to ack, includes the fsync) p50 %s ms, p99 %s ms; delivered %d of %d expected "
        "events; latency is from the writer's send, so it includes the commit",
        ok, ok / write_seconds, Ms(write_latency.PercentileMs(0.5)),
        Ms(write_latency.PercentileMs(0.99)), stats.events, ok * watchers_.Live()));
    ReportAfterAck(ack_ns);
    if (failed > 0) Note(absl::StrCat("watch steady: first write error: ", first_error));
    ReportEndedStreams("after steady");
  }

  // --burst_writers writers creating pods as fast as they can for --burst_duration.
  void Burst() {
    const int writers = std::max(1, absl::GetFlag(FLAGS_burst_writers));
    const int64_t max_writes = absl::GetFlag(FLAGS_burst_max_writes);
    CpuMeter cpu(ctx_.server_pid);
    const int64_t first_send_ns = NowNs();
    LoadResult writes = CreatePods(*writer_connection_, writers, writers, max_writes,
                                   absl::GetFlag(FLAGS_burst_duration), ctx_.pod_template, ns_,
                                   "b-");
    const PhaseStats stats = watchers_.Drain(kBurst, writes.ok, absl::Seconds(10));
    const double seconds = (stats.last_ns - first_send_ns) / 1e9;
    Row row;
    row.workload = absl::StrFormat("watch delivery, burst (%d writer%s as fast as possible)",
                                   writers, writers == 1 ? "" : "s");
    row.clients = absl::StrCat(watchers_.size(), " watchers");
    row.ops = stats.events;
    row.errors = writes.failed;
    row.seconds = seconds;
    row.rate = seconds > 0 ? stats.events / seconds : 0;
    row.p50 = stats.latency.PercentileMs(0.50);
    row.p99 = stats.latency.PercentileMs(0.99);
    row.p999 = stats.latency.PercentileMs(0.999);
    row.goal = "— (report deliveries/s)";
    row.server_cpu = cpu.ServerSeconds();
    row.client_cpu = cpu.ClientSeconds();
    NoteThreads(row.workload, row.seconds, cpu);
    AddRow(row);
    Note(absl::StrFormat(
        "watch burst: %d creates in %.2f s (%.0f/s, create p50 %s ms, p99 %s ms); delivered "
        "%d of %d expected events; seconds = first send to last delivery",
        writes.ok, writes.seconds, writes.ok / writes.seconds, Ms(writes.latency.PercentileMs(0.5)),
        Ms(writes.latency.PercentileMs(0.99)), stats.events, writes.ok * watchers_.Live()));
    if (writes.failed > 0) Note(absl::StrCat("watch burst: first write error: ", writes.first_error));
    ReportEndedStreams("after burst");
  }

 private:
  // write_index >= 0 is recorded in the pod, to match deliveries with the write's ack.
  grpc::Status Write(Stub* stub, const std::string& name, apiv1::ObjectResponse* response,
                     int64_t write_index = -1) {
    Pod pod = ctx_.pod_template;
    if (write_index >= 0) {
      (*pod.mutable_metadata()->mutable_annotations())[kWriteAnnotation] =
          absl::StrCat(write_index);
    }
    return CreatePod(stub, pod, ns_, name, response);
  }

  // Updates the pod (as the server last returned it, so its resourceVersion is current) with a
  // new send time.
  grpc::Status Update(Stub* stub, Pod* pod, apiv1::ObjectResponse* response,
                      int64_t write_index) {
    auto& annotations = *pod->mutable_metadata()->mutable_annotations();
    annotations[kWriteAnnotation] = absl::StrCat(write_index);
    annotations[kSentAnnotation] = absl::StrCat(NowNs());
    apiv1::UpdateRequest request;
    *request.mutable_resource() = PodsIn(ns_);
    request.set_encoding(apiv1::PROTOBUF);
    request.set_object(pod->SerializeAsString());
    grpc::ClientContext context;
    SetTimeout(&context);
    return stub->Update(&context, request, response);
  }

  // Delivery time after the writer received its answer: the commit happened before the answer,
  // so this approximates "from commit" without the commit's own (fsync) latency. Negative when
  // a watcher had the event before the writer had its answer.
  void ReportAfterAck(const std::vector<int64_t>& ack_ns) {
    std::vector<int64_t> after_ack;
    for (const auto& watcher : watchers_.watchers()) {
      for (const auto& [write, received] : watcher->Deliveries()) {
        if (write >= 0 && write < static_cast<int64_t>(ack_ns.size()) && ack_ns[write] > 0) {
          after_ack.push_back(received - ack_ns[write]);
        }
      }
    }
    if (after_ack.empty()) return;
    std::sort(after_ack.begin(), after_ack.end());
    auto at = [&](double p) {
      size_t i = std::min(after_ack.size() - 1, static_cast<size_t>(p * after_ack.size()));
      return after_ack[i] / 1e6;
    };
    const int64_t before = std::lower_bound(after_ack.begin(), after_ack.end(), 0) -
                           after_ack.begin();
    Note(absl::StrFormat(
        "watch steady, delivery after the writer's ack (~ after commit): p50 %.3f ms, p99 "
        "%.3f ms, p999 %.3f ms; %.1f%% of deliveries arrived before the writer's ack",
        at(0.5), at(0.99), at(0.999), 100.0 * before / after_ack.size()));
  }

  void ReportEndedStreams(const char* when) {
    const std::string ended = watchers_.EndedStreams();
    if (!ended.empty()) Note(absl::StrCat("watch ", when, ": ", ended));
  }

  const Context& ctx_;
  const std::string ns_;
  std::unique_ptr<Connections> writer_connection_;
  std::unique_ptr<Connections> watch_connections_;
  WatcherSet watchers_;  // declared last: its streams end before their connections close
};

bool Skipped(const std::string& workload) {
  for (const std::string& s : absl::GetFlag(FLAGS_skip)) {
    if (s == workload) return true;
  }
  return false;
}

int Main() {
  Context ctx;
  ctx.run_id = absl::StrFormat("%06x", static_cast<uint32_t>(NowNs() / 1000) & 0xffffff);
  std::string apiserver_flags = absl::GetFlag(FLAGS_apiserver_flags);
  std::unique_ptr<capstan::testing::ApiServerProcess> server;
  std::string data_fs = "n/a (external server)";
  if (absl::GetFlag(FLAGS_server).empty()) {
    std::vector<std::string> flags =
        absl::StrSplit(apiserver_flags, ' ', absl::SkipWhitespace());
    server = std::make_unique<capstan::testing::ApiServerProcess>(flags);
    if (absl::Status s = server->Start(); !s.ok()) {
      std::fprintf(stderr, "apiserver_bench: starting the apiserver: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
    ctx.target = server->grpc_address();
    ctx.server_pid = FindChildProcess("capstan-apiserv");
    data_fs = FilesystemType(server->data_dir());
  } else {
    ctx.target = absl::GetFlag(FLAGS_server);
    ctx.server_pid = absl::GetFlag(FLAGS_server_pid);
  }
  ctx.pod_template = MakePodTemplate(absl::StrCat("bench-", ctx.run_id, "-create"));

  // Size as sent, and as the server stores and returns it (defaults, uid, timestamps added).
  size_t stored_size = 0;
  {
    Connections connections(ctx.target, 1);
    const std::string ns = absl::StrCat("bench-", ctx.run_id, "-size");
    if (CreateNamespace(connections.stub(0), ns).ok()) {
      apiv1::CreateRequest request;
      *request.mutable_resource() = PodsIn(ns);
      Pod pod = ctx.pod_template;
      pod.mutable_metadata()->set_namespace_(ns);
      request.set_object(pod.SerializeAsString());
      apiv1::ObjectResponse response;
      grpc::ClientContext context;
      SetTimeout(&context);
      grpc::Status status = connections.stub(0)->Create(&context, request, &response);
      if (status.ok()) {
        stored_size = response.object().size();
      } else {
        std::fprintf(stderr, "apiserver_bench: creating a sample pod failed: %s\n",
                     Describe(status).c_str());
        return 1;
      }
    }
  }

  struct utsname uts;
  uname(&uts);
  std::printf("# capstan apiserver benchmark\n\n");
  std::printf("- Machine: %d CPUs available (nproc), %s, %s RAM, Linux %s\n", CpusAvailable(),
              CpuModel().c_str(), MemTotal().c_str(), uts.release);
  std::printf("- Apiserver: %s, pid %s, flags: %s; data directory on %s\n",
              server ? "started by the benchmark" : "external (--server)",
              ctx.server_pid > 0 ? absl::StrCat(ctx.server_pid).c_str() : "unknown",
              apiserver_flags.empty() ? "(defaults: durable, fsync per commit)"
                                      : apiserver_flags.c_str(),
              data_fs.c_str());
  std::printf("- Pod: %zu bytes protobuf as sent, %zu bytes as stored and returned\n",
              ctx.pod_template.ByteSizeLong(), stored_size);
  std::printf(
      "- Settings: create clients %s, get clients %s, %s or %" PRId64
      " requests per run, %d clients per channel; list %d pods x %d; %d watchers on %d "
      "channels, steady %.0f writes/s for %s, burst %d writer(s) for %s\n",
      absl::StrJoin(absl::GetFlag(FLAGS_clients), ",").c_str(),
      absl::StrJoin(absl::GetFlag(FLAGS_get_clients), ",").c_str(),
      absl::FormatDuration(absl::GetFlag(FLAGS_duration)).c_str(), absl::GetFlag(FLAGS_max_ops),
      absl::GetFlag(FLAGS_clients_per_channel), absl::GetFlag(FLAGS_list_pods),
      absl::GetFlag(FLAGS_lists), absl::GetFlag(FLAGS_watchers),
      absl::GetFlag(FLAGS_watch_channels), absl::GetFlag(FLAGS_watch_rate),
      absl::FormatDuration(absl::GetFlag(FLAGS_watch_duration)).c_str(),
      absl::GetFlag(FLAGS_burst_writers),
      absl::FormatDuration(absl::GetFlag(FLAGS_burst_duration)).c_str());
  std::printf("- The benchmark's clients run on the same machine as the server and share its "
              "CPUs.\n");
  std::fflush(stdout);

  if (!Skipped("create")) RunCreates(ctx);
  if (!Skipped("get") || !Skipped("list")) {
    std::string ns = PopulateReadNamespace(ctx);
    if (!ns.empty() && !Skipped("get")) RunGets(ctx, ns);
    if (!ns.empty() && !Skipped("list")) RunLists(ctx, ns);
  }
  if (!Skipped("watch") || !Skipped("burst")) {
    WatchFanout fanout(ctx);
    if (fanout.Start()) {
      if (!Skipped("watch")) fanout.Steady();
      if (!Skipped("burst")) fanout.Burst();
    }
  }
  PrintTable();
  return 0;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Throughput and latency of capstan-apiserver over gRPC: "
      "bazel run -c opt //bench:apiserver_bench -- [--clients=1,16,256] [--skip=watch,burst]");
  absl::ParseCommandLine(argc, argv);
  return capstan::bench::Main();
}
