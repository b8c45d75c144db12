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
// whether the server or the client saturates. It never fails on timing.
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
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpcpp/grpcpp.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"
#include "proto/resource.grpc.pb.h"
#include "proto/resource.pb.h"
#include "bench/load.h"
#include "bench/pods.h"
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
using capstan::meta::v1::ObjectMeta;
using Stub = apiv1::Resources::Stub;

// The steady watch writer's write number, to match each delivery with the write's ack time.
constexpr char kWriteAnnotation[] = "bench/write";

// ---------------------------------------------------------------------------------------------
// Objects (the pod template and the create/get loops are in bench/pods.h)

// Reads only metadata (field 3 of every kind) from an encoded object: decoding the whole pod for
// each of 1,000 watchers would make the benchmark, not the server, the bottleneck.
bool DecodeMeta(const std::string& bytes, ObjectMeta* meta) {
  using google::protobuf::internal::WireFormatLite;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (tag == WireFormatLite::MakeTag(3, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) return false;
      auto limit = in.PushLimit(static_cast<int>(length));
      bool ok = meta->ParseFromCodedStream(&in);
      in.PopLimit(limit);
      return ok;
    }
    if (!WireFormatLite::SkipField(&in, tag)) return false;
  }
  return false;
}

void InvokeList(Stub* stub, grpc::ClientContext* context, const apiv1::ListRequest* request,
                apiv1::ListResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->List(context, request, response, std::move(done));
}

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
    // Pods are read in a scattered order, not one hot key.
    ClosedLoop<apiv1::Resources, apiv1::GetRequest, apiv1::ObjectResponse> loop(
        connections, clients, absl::GetFlag(FLAGS_clients_per_channel),
        absl::GetFlag(FLAGS_max_ops), absl::GetFlag(FLAGS_duration),
        [&](int64_t seq, apiv1::GetRequest* request) {
          *request->mutable_resource() = PodsIn(ns);
          request->set_encoding(apiv1::PROTOBUF);
          request->set_name(absl::StrFormat("p-%06d", (seq * 7919) % pods));
        },
        InvokeGet);
    AddRow(RowFrom("get", absl::StrCat(clients), loop.Run(), "p99 <= 1 ms", cpu, true));
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
    std::atomic<int64_t> items{0}, bytes{0};
    CpuMeter cpu(ctx.server_pid);
    ClosedLoop<apiv1::Resources, apiv1::ListRequest, apiv1::ListResponse> loop(
        connections, 1, 1, absl::GetFlag(FLAGS_lists), absl::Minutes(2),
        [&](int64_t, apiv1::ListRequest* request) {
          *request->mutable_resource() = PodsIn(ns);
          request->set_encoding(apiv1::PROTOBUF);
          request->set_label_selector(v.selector);
          request->set_resource_version(v.resource_version);
        },
        [&](Stub* stub, grpc::ClientContext* context, const apiv1::ListRequest* request,
            apiv1::ListResponse* response, std::function<void(grpc::Status)> done) {
          InvokeList(stub, context, request, response,
                     [&, response, done = std::move(done)](grpc::Status status) {
                       items = response->items_size();
                       bytes = static_cast<int64_t>(response->ByteSizeLong());
                       done(std::move(status));
                     });
        });
    LoadResult r = loop.Run();
    AddRow(RowFrom(absl::StrCat(v.name, " of ", pods, " pods"), "1", r, "p99 <= 20 ms", cpu,
                   true));
    Note(absl::StrFormat("%s: %d items, %.2f MB per response", v.name, items.load(),
                         bytes.load() / 1e6));
  }
}

// -- Watch fan-out

// Events are told apart by the pod name's prefix, so a late event is counted in its own phase.
enum Phase { kWarmup = 0, kSteady = 1, kBurst = 2, kPhases = 3 };

Phase PhaseOf(const std::string& name) {
  if (absl::StartsWith(name, "s-")) return kSteady;
  if (absl::StartsWith(name, "b-")) return kBurst;
  return kWarmup;
}

struct PhaseStats {
  Histogram latency;
  int64_t events = 0;
  int64_t last_ns = 0;  // receive time of the last event
  void Merge(const PhaseStats& other) {
    latency.Merge(other.latency);
    events += other.events;
    last_ns = std::max(last_ns, other.last_ns);
  }
};

// Tracks finished watch streams, so the benchmark can wait for all of them before exiting.
class WatchGroup {
 public:
  void Finished() {
    absl::MutexLock lock(&mu_);
    ++finished_;
  }
  int finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  // True when `total` streams finished within the timeout.
  bool WaitAll(int total, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    total_ = total;
    return mu_.AwaitWithTimeout(absl::Condition(this, &WatchGroup::AllFinished), timeout);
  }

 private:
  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_ >= total_; }

  absl::Mutex mu_;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// One watch stream, read with the callback API: gRPC's threads run OnReadDone, so 1,000 watchers
// need no thread each.
class WatchReader : public grpc::ClientReadReactor<apiv1::WatchResponse> {
 public:
  WatchReader(Stub* stub, const std::string& ns, WatchGroup* group) : group_(group) {
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
    const int64_t now = NowNs();
    {
      absl::MutexLock lock(&mu_);
      for (const apiv1::WatchEvent& event : response_.events()) {
        if (event.type() != "ADDED" && event.type() != "MODIFIED") continue;
        meta_.Clear();
        if (!DecodeMeta(event.object(), &meta_)) continue;
        PhaseStats& stats = phases_[PhaseOf(meta_.name())];
        ++stats.events;
        stats.last_ns = now;
        auto sent = meta_.annotations().find(kSentAnnotation);
        int64_t sent_ns = 0;
        if (sent != meta_.annotations().end() && absl::SimpleAtoi(sent->second, &sent_ns)) {
          stats.latency.Record(now - sent_ns);
        }
        auto write = meta_.annotations().find(kWriteAnnotation);
        int64_t write_index = 0;
        if (write != meta_.annotations().end() && absl::SimpleAtoi(write->second, &write_index)) {
          deliveries_.push_back({write_index, now});
        }
      }
    }
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      status_ = status;
      done_ = true;
    }
    group_->Finished();
  }

  void Cancel() { context_.TryCancel(); }

  PhaseStats Stats(Phase phase) {
    absl::MutexLock lock(&mu_);
    return phases_[phase];
  }
  // (write number, receive time) of each steady-phase event.
  std::vector<std::pair<int64_t, int64_t>> Deliveries() {
    absl::MutexLock lock(&mu_);
    return deliveries_;
  }
  int64_t Events(Phase phase) {
    absl::MutexLock lock(&mu_);
    return phases_[phase].events;
  }
  // The stream ended before the benchmark cancelled it (e.g. cut off as too slow).
  std::optional<grpc::Status> EndedWith() {
    absl::MutexLock lock(&mu_);
    if (!done_) return std::nullopt;
    return status_;
  }

 private:
  WatchGroup* const group_;
  grpc::ClientContext context_;
  apiv1::WatchRequest request_;
  apiv1::WatchResponse response_;
  absl::Mutex mu_;
  ObjectMeta meta_ ABSL_GUARDED_BY(mu_);  // reused: avoids an allocation per event
  PhaseStats phases_[kPhases] ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int64_t, int64_t>> deliveries_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

class WatchFanout {
 public:
  WatchFanout(const Context& ctx) : ctx_(ctx), ns_(absl::StrCat("bench-", ctx.run_id, "-watch")) {}

  ~WatchFanout() {
    for (auto& reader : readers_) reader->Cancel();
    if (group_->WaitAll(static_cast<int>(readers_.size()), absl::Seconds(20))) {
      readers_.clear();
    } else {
      // A reactor (and the group it reports to) must outlive its stream: leak them rather than
      // free what gRPC may still call.
      for (auto& reader : readers_) reader.release();
      group_.release();
    }
  }

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
      readers_.push_back(std::make_unique<WatchReader>(watch_connections_->stub(i), ns_, group_.get()));
    }
    // A watch is registered on the server some time after the call starts; warm-up pods are
    // written until every watcher has seen one (as an event, or as initial state), 30 s at most.
    int ready = 0;
    for (int i = 0; i < 300 && ready < watchers; ++i) {
      apiv1::ObjectResponse created;
      grpc::Status status = Write(writer, absl::StrFormat("w-%06d", i), &created);
      if (!status.ok() && i == 0) Note(absl::StrCat("watch warm-up write: ", Describe(status)));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ready = 0;
      for (auto& reader : readers_) ready += reader->Events(kWarmup) > 0 ? 1 : 0;
    }
    std::fprintf(stderr, "watch: %d of %d watchers ready after %.1f s\n", ready, watchers,
                 SecondsSince(start));
    if (ready < watchers) {
      Note(absl::StrCat("watch: only ", ready, " of ", watchers, " watchers saw events after ",
                        "30 s of warm-up; ", group_->finished(), " streams had ended"));
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
    const PhaseStats stats = Drain(kSteady, ok);
    const double seconds = SecondsSince(start);
    Row row;
    row.workload = absl::StrFormat("watch delivery, %.0f writes/s (%d creates, then updates)",
                                   rate, pool);
    row.clients = absl::StrCat(readers_.size(), " watchers");
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
    Note(absl::StrFormat(
        "watch steady: %d writes ok (%.0f/s achieved), writer's own create/update latency "
        "(send to ack, includes the fsync) p50 %s ms, p99 %s ms; delivered %d of %d expected "
        "events; latency is from the writer's send, so it includes the commit",
        ok, ok / write_seconds, Ms(write_latency.PercentileMs(0.5)),
        Ms(write_latency.PercentileMs(0.99)), stats.events, ok * LiveWatchers()));
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
    const PhaseStats stats = Drain(kBurst, writes.ok);
    const double seconds = (stats.last_ns - first_send_ns) / 1e9;
    Row row;
    row.workload = absl::StrFormat("watch delivery, burst (%d writer%s as fast as possible)",
                                   writers, writers == 1 ? "" : "s");
    row.clients = absl::StrCat(readers_.size(), " watchers");
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
        Ms(writes.latency.PercentileMs(0.99)), stats.events, writes.ok * LiveWatchers()));
    if (writes.failed > 0) Note(absl::StrCat("watch burst: first write error: ", writes.first_error));
    ReportEndedStreams("after burst");
  }

 private:
  // write_index >= 0 is recorded in the pod, to match deliveries with the write's ack.
  grpc::Status Write(Stub* stub, const std::string& name, apiv1::ObjectResponse* response,
                     int64_t write_index = -1) {
    apiv1::CreateRequest request;
    *request.mutable_resource() = PodsIn(ns_);
    request.set_encoding(apiv1::PROTOBUF);
    Pod pod = ctx_.pod_template;
    if (write_index >= 0) {
      (*pod.mutable_metadata()->mutable_annotations())[kWriteAnnotation] =
          absl::StrCat(write_index);
    }
    request.set_object(EncodePod(pod, ns_, name, 0));
    grpc::ClientContext context;
    SetTimeout(&context);
    return stub->Create(&context, request, response);
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
    for (auto& reader : readers_) {
      for (const auto& [write, received] : reader->Deliveries()) {
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

  int64_t LiveWatchers() {
    int64_t live = 0;
    for (auto& reader : readers_) live += reader->EndedWith() ? 0 : 1;
    return live;
  }

  // Waits (10 s at most) until every live watcher has the phase's `writes` events, then sums.
  PhaseStats Drain(Phase phase, int64_t writes) {
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      int64_t events = 0;
      for (auto& reader : readers_) events += reader->Events(phase);
      if (events >= writes * LiveWatchers()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    PhaseStats total;
    for (auto& reader : readers_) total.Merge(reader->Stats(phase));
    return total;
  }

  void ReportEndedStreams(const char* when) {
    int ended = 0;
    std::string example;
    for (auto& reader : readers_) {
      if (std::optional<grpc::Status> s = reader->EndedWith()) {
        ++ended;
        if (example.empty()) example = Describe(*s);
      }
    }
    if (ended > 0) {
      Note(absl::StrCat("watch ", when, ": ", ended, " of ", readers_.size(),
                        " watch streams were ended by the server, e.g. ", example));
    }
  }

  const Context& ctx_;
  const std::string ns_;
  std::unique_ptr<Connections> writer_connection_;
  std::unique_ptr<Connections> watch_connections_;
  std::unique_ptr<WatchGroup> group_ = std::make_unique<WatchGroup>();
  std::vector<std::unique_ptr<WatchReader>> readers_;
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
