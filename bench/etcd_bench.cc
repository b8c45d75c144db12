// The capstan-apiserver against a real etcd 3.4, same workload, same run, same machine.
//
// Kubernetes' apiserver keeps every object in etcd, so etcd's own put throughput bounds what a
// kube-apiserver can create. This benchmark starts both a one-member etcd
// (test/harness/etcd_process.h: Debian's /usr/bin/etcd, default durability) and a capstan-apiserver
// (test/harness/apiserver_process.h: durable, fsync per commit), both with data in private temp
// directories on the same filesystem, and drives the same closed-loop load at each in turn:
//
//   create  etcd: Put of a new key "/registry/pods/NS/NAME" whose value is the encoded ~1 KiB pod,
//           and, as an extra row, the Txn kube-apiserver sends for a create (the key's
//           mod_revision == 0, then Put); Capstan: Create of the same ~1 KiB pod. --clients
//           concurrent clients (default 1, 16, 256), --duration each, taken in
//           --create_rounds alternating rounds (etcd put, etcd txn, Capstan, and again).
//   get     etcd: Range of one existing key (linearizable, etcd's default); Capstan: Get of one
//           existing pod. --get_clients concurrent clients (default 1, 16), --duration each.
//   list    etcd: Range of a prefix holding --read_keys (3,000) of the ~1 KiB values; Capstan:
//           List of a namespace holding as many of the pods. --list_clients (default 1, 16),
//           --duration each.
//   watch   --watchers (1,000) watch streams spread over --watch_channels connections: etcd Watch
//           of a prefix, Capstan Watch of a namespace. --watch_writers closed-loop writers put or
//           create as fast as they can (at most --watch_max_writes, --watch_duration), then the
//           benchmark waits up to --watch_drain for every watcher to have every event. Deliveries
//           per second (events received by all watchers together, from the first send to the last
//           delivery) and delivery latency (from the send time in the pod's annotation; same
//           process, so steady_clock agrees).
//
// For each it reports throughput, p50/p99 latency, the ratio Capstan/etcd, and the CPU each
// server and the benchmark itself used, then checks the goals:
//   - Capstan durable create throughput >= 2x etcd put throughput at 256 clients;
//   - single-client create latency <= etcd's;
//   - watch deliveries >= 1,000,000 events/s across 1,000 watchers.
// The comparisons also go out as BENCH lines (bench/report.h) for docs/benchmarks.md's "API
// server vs etcd" table. It never fails on timing. Both servers and the load generator share the
// machine's CPUs.
//
//   bazel build //bench:etcd_bench && bazel-bin/bench/etcd_bench
//   bazel-bin/bench/etcd_bench --duration=10s --clients=1,256 --skip=watch
//
// The Capstan side reuses bench/pods.h (the pod, the create/get/list loops and the watch readers
// of apiserver_bench); both sides use bench/load.h's closed loop over gRPC's callback API, with
// --clients_per_channel clients sharing each connection. etcd's values are the encoded pods, so
// etcd watchers decode and time them with the same code as Capstan's.

#include <sys/utsname.h>

#include <cinttypes>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/pods.h"
#include "bench/report.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/resource.grpc.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/etcd_process.h"

ABSL_FLAG(std::vector<std::string>, clients, std::vector<std::string>({"1", "16", "256"}),
          "Numbers of concurrent clients for the create/put workload.");
ABSL_FLAG(std::vector<std::string>, get_clients, std::vector<std::string>({"1", "16"}),
          "Numbers of concurrent clients for the get/range workload.");
ABSL_FLAG(std::vector<std::string>, list_clients, std::vector<std::string>({"1", "16"}),
          "Numbers of concurrent clients for the list/range-of-a-prefix workload.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5),
          "Duration of each run (one server, one workload, one client count).");
ABSL_FLAG(int, create_rounds, 4,
          "The create workload alternates etcd and Capstan in this many rounds of "
          "--duration/rounds each, so that the machine's drift hits both alike.");
ABSL_FLAG(int64_t, max_ops, 500000, "Most requests in each run (a safety bound).");
ABSL_FLAG(int, clients_per_channel, 16, "Clients sharing one channel (one HTTP/2 connection).");
ABSL_FLAG(int, read_keys, 3000,
          "Objects written on each server for the get and list workloads; a list returns all.");
ABSL_FLAG(int, watchers, 1000, "Concurrent watch streams in the watch workload.");
ABSL_FLAG(int, watch_channels, 4, "Channels (HTTP/2 connections) the watch streams share.");
ABSL_FLAG(int, watch_writers, 16, "Concurrent closed-loop writers in the watch workload.");
ABSL_FLAG(absl::Duration, watch_duration, absl::Seconds(2),
          "Longest time the watch workload's writers write.");
ABSL_FLAG(int64_t, watch_max_writes, 1000,
          "Most writes in the watch workload: every one is an event for every watcher, and "
          "Capstan cuts off a watcher 10,000 events behind.");
ABSL_FLAG(absl::Duration, watch_drain, absl::Seconds(10),
          "Longest wait, once the writers stop, for every watcher to have every event.");
ABSL_FLAG(std::vector<std::string>, skip, std::vector<std::string>(),
          "Workloads to skip: create, get, list, watch.");
ABSL_FLAG(std::string, apiserver_flags, "",
          "Extra flags for the apiserver, separated by spaces (default: durable).");
ABSL_FLAG(std::string, etcd_flags, "",
          "Extra flags for etcd, separated by spaces (default: etcd's defaults, durable).");

namespace capstan::bench {
namespace {

namespace apiv1 = capstan::api::v1;
using capstan::core::v1::Pod;
using EtcdChannels = Channels<etcdserverpb::KV>;
using EtcdWatchChannels = Channels<etcdserverpb::Watch>;

// The key kube-apiserver would store the pod under.
std::string EtcdKey(const std::string& ns, const std::string& name) {
  return absl::StrCat("/registry/pods/", ns, "/", name);
}

// etcd's range_end for "every key that starts with prefix": the prefix with its last byte
// incremented (the prefix ends with '/', so there is no carry).
std::string PrefixEnd(std::string prefix) {
  ++prefix.back();
  return prefix;
}

int ClientsPerChannel() { return absl::GetFlag(FLAGS_clients_per_channel); }
// Channels for `clients` clients, --clients_per_channel on each.
int ChannelsFor(int clients) { return capstan::bench::ChannelsFor(clients, ClientsPerChannel()); }

bool Skipped(const std::string& workload) {
  for (const std::string& s : absl::GetFlag(FLAGS_skip)) {
    if (s == workload) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// etcd side

void InvokePut(etcdserverpb::KV::Stub* stub, grpc::ClientContext* context,
               const etcdserverpb::PutRequest* request, etcdserverpb::PutResponse* response,
               std::function<void(grpc::Status)> done) {
  stub->async()->Put(context, request, response, std::move(done));
}

void InvokeRange(etcdserverpb::KV::Stub* stub, grpc::ClientContext* context,
                 const etcdserverpb::RangeRequest* request, etcdserverpb::RangeResponse* response,
                 std::function<void(grpc::Status)> done) {
  stub->async()->Range(context, request, response, std::move(done));
}

// A Txn whose compare failed is answered OK with succeeded = false: for a create that means the
// key existed, which the loop must count as a failure.
void InvokeTxn(etcdserverpb::KV::Stub* stub, grpc::ClientContext* context,
               const etcdserverpb::TxnRequest* request, etcdserverpb::TxnResponse* response,
               std::function<void(grpc::Status)> done) {
  stub->async()->Txn(context, request, response,
                     [response, done = std::move(done)](grpc::Status status) {
                       if (status.ok() && !response->succeeded()) {
                         status = grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                                               "txn compare failed: the key exists");
                       }
                       done(std::move(status));
                     });
}

// Puts new keys prefix + seq under ns, each with the encoded pod (stamped like Capstan's, so the
// value is the same size and is re-encoded per request as on the Capstan side).
LoadResult PutKeys(const EtcdChannels& channels, int clients, int64_t count,
                   absl::Duration max_time, const Pod& tmpl, const std::string& ns,
                   const std::string& prefix) {
  ClosedLoop<etcdserverpb::KV, etcdserverpb::PutRequest, etcdserverpb::PutResponse> loop(
      channels, clients, ClientsPerChannel(), count, max_time,
      [&](int64_t seq, etcdserverpb::PutRequest* request) {
        const std::string name = absl::StrFormat("%s%06d", prefix, seq);
        request->set_key(EtcdKey(ns, name));
        request->set_value(EncodePod(tmpl, ns, name, static_cast<int>(seq % 10)));
      },
      InvokePut);
  return loop.Run();
}

// Creates new keys as kube-apiserver does (storage/etcd3 store.Create): a Txn that puts the key
// only if its mod_revision is 0, i.e. it does not exist (the same as create_revision == 0 then).
LoadResult TxnCreateKeys(const EtcdChannels& channels, int clients, int64_t count,
                         absl::Duration max_time, const Pod& tmpl, const std::string& ns,
                         const std::string& prefix) {
  ClosedLoop<etcdserverpb::KV, etcdserverpb::TxnRequest, etcdserverpb::TxnResponse> loop(
      channels, clients, ClientsPerChannel(), count, max_time,
      [&](int64_t seq, etcdserverpb::TxnRequest* request) {
        const std::string name = absl::StrFormat("%s%06d", prefix, seq);
        const std::string key = EtcdKey(ns, name);
        request->Clear();  // the loop reuses a client's request, and these fields repeat
        etcdserverpb::Compare* absent = request->add_compare();
        absent->set_key(key);
        absent->set_target(etcdserverpb::Compare::MOD);
        absent->set_result(etcdserverpb::Compare::EQUAL);
        absent->set_mod_revision(0);
        etcdserverpb::PutRequest* put = request->add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(EncodePod(tmpl, ns, name, static_cast<int>(seq % 10)));
      },
      InvokeTxn);
  return loop.Run();
}

// Ranges of one key out of p-000000 ... in a scattered order, as GetPods on the Capstan side;
// linearizable (serializable = false), as kube-apiserver reads a single object by default.
LoadResult RangeKeys(const EtcdChannels& channels, int clients, const std::string& ns,
                     int keys) {
  ClosedLoop<etcdserverpb::KV, etcdserverpb::RangeRequest, etcdserverpb::RangeResponse> loop(
      channels, clients, ClientsPerChannel(), absl::GetFlag(FLAGS_max_ops),
      absl::GetFlag(FLAGS_duration),
      [&](int64_t seq, etcdserverpb::RangeRequest* request) {
        request->set_key(EtcdKey(ns, absl::StrFormat("p-%06d", (seq * 7919) % keys)));
      },
      InvokeRange);
  return loop.Run();
}

// Ranges of every key under ns's prefix (the etcd side of a LIST), linearizable and unpaged, as
// Capstan's List of the namespace is; *size gets the latest response's.
LoadResult RangePrefix(const EtcdChannels& channels, int clients, const std::string& ns,
                       ResponseSize* size) {
  const std::string prefix = EtcdKey(ns, "");
  ClosedLoop<etcdserverpb::KV, etcdserverpb::RangeRequest, etcdserverpb::RangeResponse> loop(
      channels, clients, ClientsPerChannel(), absl::GetFlag(FLAGS_max_ops),
      absl::GetFlag(FLAGS_duration),
      [&](int64_t, etcdserverpb::RangeRequest* request) {
        request->set_key(prefix);
        request->set_range_end(PrefixEnd(prefix));
      },
      [size](etcdserverpb::KV::Stub* stub, grpc::ClientContext* context,
             const etcdserverpb::RangeRequest* request, etcdserverpb::RangeResponse* response,
             std::function<void(grpc::Status)> done) {
        InvokeRange(stub, context, request, response,
                    [size, response, done = std::move(done)](grpc::Status status) {
                      if (status.ok()) {
                        size->items = response->kvs_size();
                        size->bytes = static_cast<int64_t>(response->ByteSizeLong());
                      }
                      done(std::move(status));
                    });
      });
  return loop.Run();
}

// Puts one key ns/name, synchronously (the watch warm-up).
grpc::Status PutKey(etcdserverpb::KV::Stub* stub, const Pod& tmpl, const std::string& ns,
                    const std::string& name) {
  etcdserverpb::PutRequest request;
  request.set_key(EtcdKey(ns, name));
  request.set_value(EncodePod(tmpl, ns, name, 0));
  etcdserverpb::PutResponse response;
  grpc::ClientContext context;
  SetTimeout(&context);
  return stub->Put(&context, request, &response);
}

// One etcd Watch stream with one watch of a prefix, read with the callback API like Capstan's
// PodWatchReader. etcd could multiplex many watches on one stream; one each keeps the two sides
// alike (1,000 streams on a few connections) and lets etcd's per-stream send loops run in
// parallel.
class EtcdWatcher : public PodWatcher,
                    public grpc::ClientBidiReactor<etcdserverpb::WatchRequest,
                                                   etcdserverpb::WatchResponse> {
 public:
  EtcdWatcher(etcdserverpb::Watch::Stub* stub, const std::string& prefix, WatchGroup* group)
      : PodWatcher(group) {
    etcdserverpb::WatchCreateRequest* create = request_.mutable_create_request();
    create->set_key(prefix);
    create->set_range_end(PrefixEnd(prefix));
    stub->async()->Watch(&context_, this);
    // No WritesDone: the stream lives until the benchmark cancels it.
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (response_.canceled()) {
      Ended(grpc::Status(grpc::StatusCode::ABORTED,
                         absl::StrCat("etcd canceled the watch: ", response_.cancel_reason())));
      context_.TryCancel();
      return;
    }
    const int64_t now = NowNs();
    for (const mvccpb::Event& event : response_.events()) {
      if (event.type() == mvccpb::Event::PUT) Record(event.kv().value(), now);
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override { Finished(status); }
  void Cancel() override { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  etcdserverpb::WatchRequest request_;
  etcdserverpb::WatchResponse response_;
};

// ---------------------------------------------------------------------------------------------
// Report

struct Measure {
  LoadResult load;
  std::optional<double> server_cpu;  // seconds
  double bench_cpu = 0;              // seconds
  int64_t expected_events = 0;       // watch: every watcher receiving every write
  double Rate() const { return load.seconds > 0 ? load.ok / load.seconds : 0; }
  double P50() const { return load.latency.PercentileMs(0.5); }
  double P99() const { return load.latency.PercentileMs(0.99); }
};

enum class Kind { kCreatePut, kCreateTxn, kGet, kList, kWatch };

struct Pair {
  Kind kind;
  int clients = 0;  // watchers for kWatch
  Measure etcd, capstan;
};

// "3,000": the objects each list returns.
std::string ReadKeys() {
  return FormatFigure({static_cast<double>(absl::GetFlag(FLAGS_read_keys)), ""});
}

std::string Label(Kind kind) {
  switch (kind) {
    case Kind::kCreatePut: return "create / put";
    case Kind::kCreateTxn: return "create / txn create (same Capstan run as above)";
    case Kind::kGet: return "get / range (one key)";
    case Kind::kList:
      return absl::StrCat("list / range of ", ReadKeys(), " objects");
    case Kind::kWatch:
      return absl::StrFormat("watch, %d writers (ops/s: deliveries/s; clients: watchers)",
                             absl::GetFlag(FLAGS_watch_writers));
  }
  return "";
}

std::vector<std::string> notes;

void Note(const std::string& note) {
  std::fprintf(stderr, "  %s\n", note.c_str());
  notes.push_back(note);
}

std::string Ms(double ms) {
  return ms < 10 ? absl::StrFormat("%.2f", ms) : absl::StrFormat("%.1f", ms);
}

std::string Cores(const Measure& m, bool server) {
  // /proc counts CPU in 10 ms ticks: too coarse for runs shorter than half a second.
  if (m.load.seconds < 0.5) return "n/a";
  if (server) return m.server_cpu ? absl::StrFormat("%.2f", *m.server_cpu / m.load.seconds) : "n/a";
  return absl::StrFormat("%.2f", m.bench_cpu / m.load.seconds);
}

std::string Ratio(double capstan, double etcd) {
  return etcd > 0 ? absl::StrFormat("%.2f", capstan / etcd) : "n/a";
}

// Runs `run` while measuring the CPU of the server (pid) and of this process.
template <typename Run>
Measure Measured(int pid, const char* side, const std::string& what, Run run) {
  CpuMeter cpu(pid);
  Measure m;
  m.load = run();
  m.server_cpu = cpu.ServerSeconds();
  m.bench_cpu = cpu.ClientSeconds();
  std::fprintf(stderr,
               "%s %s: %" PRId64 " ok, %" PRId64 " errors in %.2f s = %.0f/s; p50 %s ms, "
               "p99 %s ms\n",
               side, what.c_str(), m.load.ok, m.load.failed, m.load.seconds, m.Rate(),
               Ms(m.P50()).c_str(), Ms(m.P99()).c_str());
  if (m.load.failed > 0) {
    Note(absl::StrCat(side, " ", what, ": ", m.load.failed,
                      " requests failed; first error: ", m.load.first_error));
  }
  return m;
}

void PrintTable(const std::vector<Pair>& pairs) {
  std::printf(
      "\n| Workload | Clients | etcd ops/s | Capstan ops/s | Capstan/etcd | etcd p50 ms | "
      "Capstan p50 ms | etcd p99 ms | Capstan p99 ms | etcd CPU (cores) | Capstan CPU (cores) | "
      "Bench CPU etcd/Capstan (cores) |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Pair& p : pairs) {
    std::printf("| %s | %d | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n",
                Label(p.kind).c_str(), p.clients, p.etcd.Rate(), p.capstan.Rate(),
                Ratio(p.capstan.Rate(), p.etcd.Rate()).c_str(), Ms(p.etcd.P50()).c_str(),
                Ms(p.capstan.P50()).c_str(), Ms(p.etcd.P99()).c_str(),
                Ms(p.capstan.P99()).c_str(), Cores(p.etcd, true).c_str(),
                Cores(p.capstan, true).c_str(), Cores(p.etcd, false).c_str(),
                Cores(p.capstan, false).c_str());
  }
}

const Pair* Find(const std::vector<Pair>& pairs, Kind kind, int clients) {
  for (const Pair& p : pairs) {
    if (p.kind == kind && p.clients == clients) return &p;
  }
  return nullptr;
}

void PrintGoals(const std::vector<Pair>& pairs) {
  const Pair* create256 = Find(pairs, Kind::kCreatePut, 256);
  const Pair* create1 = Find(pairs, Kind::kCreatePut, 1);
  const Pair* watch = Find(pairs, Kind::kWatch, 1000);
  std::printf("\n| Goal | Measured | Met |\n|---|---|---|\n");
  if (create256 != nullptr) {
    const double ratio =
        create256->etcd.Rate() > 0 ? create256->capstan.Rate() / create256->etcd.Rate() : 0;
    std::printf("| Capstan durable create throughput >= 2x etcd put throughput at 256 clients "
                "| %.0f/s vs %.0f/s = %.2fx | %s |\n",
                create256->capstan.Rate(), create256->etcd.Rate(), ratio,
                ratio >= 2 ? "yes" : "no");
  } else {
    std::printf("| Capstan create >= 2x etcd put at 256 clients | not run (--clients) | — |\n");
  }
  if (create1 != nullptr) {
    const double capstan = create1->capstan.P50();
    const double etcd = create1->etcd.P50();
    std::printf("| Single-client create latency <= etcd's (p50) | %s ms vs %s ms (p99 %s vs %s) "
                "| %s |\n",
                Ms(capstan).c_str(), Ms(etcd).c_str(), Ms(create1->capstan.P99()).c_str(),
                Ms(create1->etcd.P99()).c_str(), capstan <= etcd ? "yes" : "no");
  } else {
    std::printf("| Single-client create latency <= etcd's | not run (--clients) | — |\n");
  }
  if (watch != nullptr) {
    std::printf("| Watch deliveries >= 1,000,000 events/s across 1,000 watchers | %.0f/s (etcd "
                "%.0f/s) | %s |\n",
                watch->capstan.Rate(), watch->etcd.Rate(),
                watch->capstan.Rate() >= 1e6 ? "yes" : "no");
  } else {
    std::printf("| Watch deliveries >= 1,000,000/s across 1,000 watchers | not run (--watchers) "
                "| — |\n");
  }
  if (!notes.empty()) {
    std::printf("\nNotes:\n");
    for (const std::string& n : notes) std::printf("- %s\n", n.c_str());
  }
}

// One BENCH line of the "API server vs etcd" table: Capstan's figure, etcd's as the baseline.
void ReportVsEtcd(const std::string& workload, Figure capstan, Figure etcd,
                  const std::string& etcd_name, const std::string& goal = "",
                  std::optional<bool> met = std::nullopt) {
  ReportRow row;
  row.table = "API server vs etcd";
  row.workload = workload;
  row.figure = std::move(capstan);
  row.baseline = std::move(etcd);
  row.baseline_name = etcd_name;
  row.goal = goal;
  row.met = met;
  Report(row);
}

std::string Clients(int n) { return absl::StrCat(n, n == 1 ? " client" : " clients"); }

void ReportPair(const Pair& p) {
  const std::string keys = ReadKeys();
  switch (p.kind) {
    case Kind::kCreatePut: {
      const bool goal = p.clients == 256;
      ReportVsEtcd(absl::StrCat("Durable creates of ~1 KiB pods, ", Clients(p.clients)),
                   {p.capstan.Rate(), "/s"}, {p.etcd.Rate(), "/s"}, "etcd 3.4 put",
                   goal ? ">= 2x etcd put" : "",
                   goal ? std::optional<bool>(p.capstan.Rate() >= 2 * p.etcd.Rate())
                        : std::nullopt);
      if (p.clients == 1) {
        ReportVsEtcd("Create p50 latency, 1 client", {p.capstan.P50(), " ms"},
                     {p.etcd.P50(), " ms"}, "etcd 3.4 put", "<= etcd",
                     p.capstan.P50() <= p.etcd.P50());
      }
      break;
    }
    case Kind::kCreateTxn:
      ReportVsEtcd(absl::StrCat("Durable creates of ~1 KiB pods, ", Clients(p.clients),
                                " (vs etcd txn create)"),
                   {p.capstan.Rate(), "/s"}, {p.etcd.Rate(), "/s"}, "etcd 3.4 txn create");
      break;
    case Kind::kGet:
      ReportVsEtcd(absl::StrCat("GETs of one pod, ", Clients(p.clients)), {p.capstan.Rate(), "/s"},
                   {p.etcd.Rate(), "/s"}, "etcd 3.4 range of one key");
      break;
    case Kind::kList:
      ReportVsEtcd(absl::StrCat("LISTs of ", keys, " pods, ", Clients(p.clients)),
                   {p.capstan.Rate(), "/s"}, {p.etcd.Rate(), "/s"},
                   absl::StrCat("etcd 3.4 range of ", keys, " keys"));
      ReportVsEtcd(absl::StrCat("LIST of ", keys, " pods p99 latency, ", Clients(p.clients)),
                   {p.capstan.P99(), " ms"}, {p.etcd.P99(), " ms"},
                   absl::StrCat("etcd 3.4 range of ", keys, " keys"));
      break;
    case Kind::kWatch: {
      const std::string watchers =
          absl::StrCat(FormatFigure({static_cast<double>(p.clients), ""}), " watchers");
      const bool goal = p.clients == 1000;
      ReportVsEtcd(absl::StrCat("Watch deliveries, ", watchers, ", ",
                                absl::GetFlag(FLAGS_watch_writers), " writers"),
                   {p.capstan.Rate(), "/s"}, {p.etcd.Rate(), "/s"}, "etcd 3.4 watch",
                   goal ? ">= 1,000,000/s" : "",
                   goal ? std::optional<bool>(p.capstan.Rate() >= 1e6) : std::nullopt);
      ReportVsEtcd(absl::StrCat("Watch delivery p99 latency (from send), ", watchers),
                   {p.capstan.P99(), " ms"}, {p.etcd.P99(), " ms"}, "etcd 3.4 watch");
      auto delivered = [](const Measure& m) {
        return m.expected_events > 0 ? 100.0 * m.load.ok / m.expected_events : 0;
      };
      ReportVsEtcd(absl::StrCat("Watch events delivered of those written, ", watchers),
                   {delivered(p.capstan), "%"}, {delivered(p.etcd), "%"}, "etcd 3.4 watch");
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Workloads

// Where each server listens and what it is measured with.
struct Targets {
  std::string etcd;  // gRPC address
  int etcd_pid = 0;
  std::string capstan;
  int capstan_pid = 0;
  Pod pod;
};

// Adds one round's measurement to the total of the rounds before.
void Accumulate(const Measure& round, Measure* total) {
  total->load.ok += round.load.ok;
  total->load.failed += round.load.failed;
  if (total->load.first_error.empty()) total->load.first_error = round.load.first_error;
  total->load.seconds += round.load.seconds;
  total->load.latency.Merge(round.load.latency);
  if (round.server_cpu) total->server_cpu = total->server_cpu.value_or(0) + *round.server_cpu;
  total->bench_cpu += round.bench_cpu;
}

// For each client count, --create_rounds rounds of: etcd put, etcd txn, Capstan create, each
// for --duration/rounds. This machine's speed drifts by up to 1.5-2x within minutes; rounds
// this short spread the drift over both sides of a row instead of giving it to one.
void RunCreates(const Targets& t, const std::string& ns, std::vector<Pair>* pairs) {
  const int rounds = std::max(1, absl::GetFlag(FLAGS_create_rounds));
  const int64_t max_ops = absl::GetFlag(FLAGS_max_ops) / rounds;
  const absl::Duration duration = absl::GetFlag(FLAGS_duration) / rounds;
  for (int clients : ParseCounts(absl::GetFlag(FLAGS_clients), "clients")) {
    Pair put{Kind::kCreatePut, clients}, txn{Kind::kCreateTxn, clients};
    EtcdChannels channels(t.etcd, ChannelsFor(clients));
    Connections connections(t.capstan, ChannelsFor(clients));
    for (int round = 0; round < rounds; ++round) {
      const std::string prefix = absl::StrCat(clients, "-r", round, "-");
      const std::string what = absl::StrCat(Clients(clients), ", round ", round + 1);
      Accumulate(Measured(t.etcd_pid, "etcd", absl::StrCat("put, ", what),
                          [&] {
                            return PutKeys(channels, clients, max_ops, duration, t.pod, ns,
                                           absl::StrCat("c", prefix));
                          }),
                 &put.etcd);
      Accumulate(Measured(t.etcd_pid, "etcd", absl::StrCat("txn create, ", what),
                          [&] {
                            return TxnCreateKeys(channels, clients, max_ops, duration, t.pod, ns,
                                                 absl::StrCat("t", prefix));
                          }),
                 &txn.etcd);
      Accumulate(Measured(t.capstan_pid, "capstan", absl::StrCat("create, ", what),
                          [&] {
                            return CreatePods(connections, clients, ClientsPerChannel(), max_ops,
                                              duration, t.pod, ns, absl::StrCat("c", prefix));
                          }),
                 &put.capstan);
    }
    txn.capstan = put.capstan;  // one Capstan run serves both rows
    pairs->push_back(std::move(put));
    pairs->push_back(std::move(txn));
  }
}

// The objects the get and list workloads read: p-000000 ... on both, in a namespace (prefix) of
// their own so that a list returns exactly these; written by 64 clients, not measured.
void PopulateReadSet(const Targets& t, const std::string& ns, int keys) {
  EtcdChannels etcd(t.etcd, 4);
  LoadResult put = PutKeys(etcd, 64, keys, absl::Minutes(1), t.pod, ns, "p-");
  Connections capstan(t.capstan, 4);
  LoadResult created = CreatePods(capstan, 64, 16, keys, absl::Minutes(1), t.pod, ns, "p-");
  if (put.ok < keys || created.ok < keys) {
    Note(absl::StrFormat("populating the read set: etcd %d of %d keys (%s), Capstan %d of %d "
                         "pods (%s)",
                         put.ok, keys, put.first_error, created.ok, keys, created.first_error));
  }
}

void RunGets(const Targets& t, const std::string& ns, int keys, std::vector<Pair>* pairs) {
  for (int clients : ParseCounts(absl::GetFlag(FLAGS_get_clients), "get_clients")) {
    Pair pair{Kind::kGet, clients};
    {
      EtcdChannels channels(t.etcd, ChannelsFor(clients));
      pair.etcd = Measured(t.etcd_pid, "etcd", absl::StrCat("range, ", Clients(clients)),
                           [&] { return RangeKeys(channels, clients, ns, keys); });
    }
    {
      Connections connections(t.capstan, ChannelsFor(clients));
      pair.capstan = Measured(t.capstan_pid, "capstan", absl::StrCat("get, ", Clients(clients)),
                              [&] {
                                return GetPods(connections, clients, ClientsPerChannel(),
                                               absl::GetFlag(FLAGS_max_ops),
                                               absl::GetFlag(FLAGS_duration), ns, keys);
                              });
    }
    pairs->push_back(std::move(pair));
  }
}

// A list that does not return the whole read set measures something else: say so.
void CheckListSize(const char* side, const ResponseSize& size, int keys) {
  std::fprintf(stderr, "  %s list: %" PRId64 " items, %.2f MB per response\n", side,
               size.items.load(), size.bytes.load() / 1e6);
  if (size.items.load() != keys) {
    Note(absl::StrFormat("%s list returned %d items, not %d", side, size.items.load(), keys));
  }
}

void RunLists(const Targets& t, const std::string& ns, int keys, std::vector<Pair>* pairs) {
  for (int clients : ParseCounts(absl::GetFlag(FLAGS_list_clients), "list_clients")) {
    Pair pair{Kind::kList, clients};
    {
      EtcdChannels channels(t.etcd, ChannelsFor(clients));
      ResponseSize size;
      pair.etcd =
          Measured(t.etcd_pid, "etcd", absl::StrCat("range of a prefix, ", Clients(clients)),
                   [&] { return RangePrefix(channels, clients, ns, &size); });
      CheckListSize("etcd", size, keys);
    }
    {
      Connections connections(t.capstan, ChannelsFor(clients));
      ResponseSize size;
      pair.capstan =
          Measured(t.capstan_pid, "capstan", absl::StrCat("list, ", Clients(clients)), [&] {
            return ListPods(connections, clients, ClientsPerChannel(),
                            absl::GetFlag(FLAGS_max_ops), absl::GetFlag(FLAGS_duration), ns, "",
                            "", &size);
          });
      CheckListSize("capstan", size, keys);
    }
    pairs->push_back(std::move(pair));
  }
}

// -- Watch fan-out

// Writes warm-up objects until every watcher has seen one (30 s at most); false if none has.
bool WarmUp(const char* side, WatcherSet* watchers, const std::function<grpc::Status(int)>& write) {
  const Clock::time_point start = Clock::now();
  std::string error;
  const int ready = watchers->WarmUp(write, absl::Seconds(30), &error);
  std::fprintf(stderr, "%s watch: %d of %d watchers ready after %.1f s\n", side, ready,
               watchers->size(), SecondsSince(start));
  if (!error.empty()) Note(absl::StrCat(side, " watch warm-up write: ", error));
  if (ready < watchers->size()) {
    Note(absl::StrCat(side, " watch: only ", ready, " of ", watchers->size(),
                      " watchers saw events after 30 s of warm-up"));
  }
  return ready > 0;
}

// Runs the writers (`write`, a closed loop of "b-" objects), then waits (--watch_drain at most)
// until every watcher has every write. The result counts deliveries, not writes: ok = events
// received by all watchers together, seconds = first send to last delivery, latency = the pod's
// send time to its delivery; failed = failed writes.
LoadResult FanOut(const char* side, WatcherSet* watchers, const std::function<LoadResult()>& write,
                  int64_t* expected) {
  const int64_t first_send_ns = NowNs();
  const LoadResult writes = write();
  const PhaseStats stats = watchers->Drain(kBurst, writes.ok, absl::GetFlag(FLAGS_watch_drain));
  *expected = writes.ok * watchers->size();
  LoadResult r;
  r.ok = stats.events;
  r.failed = writes.failed;
  r.first_error = writes.first_error;
  r.seconds = stats.last_ns > first_send_ns ? (stats.last_ns - first_send_ns) / 1e9 : 0;
  r.latency = stats.latency;
  Note(absl::StrFormat("%s watch: %d writes in %.2f s (%.0f/s, write p50 %s ms, p99 %s ms); "
                       "delivered %d of %d events (%s)",
                       side, writes.ok, writes.seconds,
                       writes.seconds > 0 ? writes.ok / writes.seconds : 0,
                       Ms(writes.latency.PercentileMs(0.5)), Ms(writes.latency.PercentileMs(0.99)),
                       stats.events, *expected,
                       stats.events >= *expected ? "all" : "NOT all: --watch_drain ran out"));
  if (std::string ended = watchers->EndedStreams(); !ended.empty()) {
    Note(absl::StrCat(side, " watch: ", ended));
  }
  return r;
}

Measure EtcdWatch(const Targets& t, const std::string& ns) {
  const int writers = absl::GetFlag(FLAGS_watch_writers);
  EtcdChannels writer(t.etcd, ChannelsFor(writers));
  EtcdWatchChannels channels(t.etcd, std::max(1, absl::GetFlag(FLAGS_watch_channels)));
  WatcherSet watchers;  // after the channels: its streams end before their connections close
  for (int i = 0; i < absl::GetFlag(FLAGS_watchers); ++i) {
    watchers.Add(
        std::make_unique<EtcdWatcher>(channels.stub(i), EtcdKey(ns, ""), watchers.group()));
  }
  if (!WarmUp("etcd", &watchers, [&](int i) {
        return PutKey(writer.stub(0), t.pod, ns, absl::StrFormat("w-%06d", i));
      })) {
    return Measure();
  }
  int64_t expected = 0;
  Measure m = Measured(t.etcd_pid, "etcd", "watch", [&] {
    return FanOut("etcd", &watchers, [&] {
      return PutKeys(writer, writers, absl::GetFlag(FLAGS_watch_max_writes),
                     absl::GetFlag(FLAGS_watch_duration), t.pod, ns, "b-");
    }, &expected);
  });
  m.expected_events = expected;
  return m;
}

Measure CapstanWatch(const Targets& t, const std::string& ns) {
  const int writers = absl::GetFlag(FLAGS_watch_writers);
  Connections writer(t.capstan, ChannelsFor(writers));
  Connections channels(t.capstan, std::max(1, absl::GetFlag(FLAGS_watch_channels)));
  if (absl::Status s = CreateNamespace(writer.stub(0), ns); !s.ok()) {
    Note(std::string(s.message()));
    return Measure();
  }
  WatcherSet watchers;  // after the channels: its streams end before their connections close
  for (int i = 0; i < absl::GetFlag(FLAGS_watchers); ++i) {
    watchers.Add(std::make_unique<PodWatchReader>(channels.stub(i), ns, watchers.group()));
  }
  if (!WarmUp("capstan", &watchers, [&](int i) {
        apiv1::ObjectResponse created;
        return CreatePod(writer.stub(0), t.pod, ns, absl::StrFormat("w-%06d", i), &created);
      })) {
    return Measure();
  }
  int64_t expected = 0;
  Measure m = Measured(t.capstan_pid, "capstan", "watch", [&] {
    return FanOut("capstan", &watchers, [&] {
      return CreatePods(writer, writers, ClientsPerChannel(),
                        absl::GetFlag(FLAGS_watch_max_writes),
                        absl::GetFlag(FLAGS_watch_duration), t.pod, ns, "b-");
    }, &expected);
  });
  m.expected_events = expected;
  return m;
}

// Each side's watchers are cancelled before the other side's open, so a backlog one server is
// still sending does not take CPU from the other's run.
void RunWatch(const Targets& t, const std::string& ns, std::vector<Pair>* pairs) {
  Pair pair{Kind::kWatch, absl::GetFlag(FLAGS_watchers)};
  pair.etcd = EtcdWatch(t, ns);
  pair.capstan = CapstanWatch(t, ns);
  pairs->push_back(std::move(pair));
}

// ---------------------------------------------------------------------------------------------

void PrintHeader(const Targets& t, const capstan::testing::EtcdProcess& etcd,
                 const capstan::testing::ApiServerProcess& apiserver, const std::string& ns) {
  struct utsname uts;
  uname(&uts);
  const std::string revision = GitRevision();
  const std::string apiserver_flags = absl::GetFlag(FLAGS_apiserver_flags);
  const std::string etcd_flags = absl::GetFlag(FLAGS_etcd_flags);
  std::printf("# Capstan apiserver vs etcd\n\n");
  std::printf("- Machine: %d CPUs available (nproc), %s, %s RAM, Linux %s\n", CpusAvailable(),
              CpuModel().c_str(), MemTotal().c_str(), uts.release);
  std::printf("- Capstan: %s; apiserver pid %d, flags: %s; data on %s\n",
              revision.empty() ? "revision unknown" : ("git " + revision).c_str(), t.capstan_pid,
              apiserver_flags.empty() ? "(defaults: durable, fsync per commit)"
                                      : apiserver_flags.c_str(),
              FilesystemType(apiserver.data_dir()).c_str());
  std::printf("- etcd: %s, one member on loopback, pid %d, flags: %s; data on %s\n",
              etcd.version().c_str(), t.etcd_pid,
              etcd_flags.empty() ? "(defaults: fsync of the WAL per commit)" : etcd_flags.c_str(),
              FilesystemType(etcd.data_dir()).c_str());
  std::printf("- Object: the same ~1 KiB pod, %zu bytes protobuf; etcd stores it as the value of "
              "key %s (%zu bytes)\n",
              t.pod.ByteSizeLong(), EtcdKey(ns, "c256-000000").c_str(),
              EtcdKey(ns, "c256-000000").size());
  std::printf("- Settings: create/put clients %s, get/range clients %s, list/range clients %s, "
              "%s per run (at most %" PRId64 " requests), %d clients per channel, %d objects "
              "read and listed; watch: %d watchers on %d channels, %d writers, at most %" PRId64
              " writes in %s, then at most %s for deliveries\n",
              absl::StrJoin(absl::GetFlag(FLAGS_clients), ",").c_str(),
              absl::StrJoin(absl::GetFlag(FLAGS_get_clients), ",").c_str(),
              absl::StrJoin(absl::GetFlag(FLAGS_list_clients), ",").c_str(),
              absl::FormatDuration(absl::GetFlag(FLAGS_duration)).c_str(),
              absl::GetFlag(FLAGS_max_ops), ClientsPerChannel(), absl::GetFlag(FLAGS_read_keys),
              absl::GetFlag(FLAGS_watchers), absl::GetFlag(FLAGS_watch_channels),
              absl::GetFlag(FLAGS_watch_writers), absl::GetFlag(FLAGS_watch_max_writes),
              absl::FormatDuration(absl::GetFlag(FLAGS_watch_duration)).c_str(),
              absl::FormatDuration(absl::GetFlag(FLAGS_watch_drain)).c_str());
  std::printf("- Closed loop: each client sends its next request when the previous one is "
              "answered. The benchmark's clients share the CPUs with both servers.\n");
  std::fflush(stdout);
}

int Main() {
  // Parsed up front, so that a bad value stops the benchmark before the servers start.
  ParseCounts(absl::GetFlag(FLAGS_clients), "clients");
  ParseCounts(absl::GetFlag(FLAGS_get_clients), "get_clients");
  ParseCounts(absl::GetFlag(FLAGS_list_clients), "list_clients");
  const int read_keys = std::max(1, absl::GetFlag(FLAGS_read_keys));

  // Both servers run for the whole benchmark, so each run sees the other idle, not absent.
  capstan::testing::EtcdProcess etcd(
      absl::StrSplit(absl::GetFlag(FLAGS_etcd_flags), ' ', absl::SkipWhitespace()));
  if (absl::Status s = etcd.Start(); !s.ok()) {
    std::fprintf(stderr, "etcd_bench: starting etcd: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  capstan::testing::ApiServerProcess apiserver(
      absl::StrSplit(absl::GetFlag(FLAGS_apiserver_flags), ' ', absl::SkipWhitespace()));
  if (absl::Status s = apiserver.Start(); !s.ok()) {
    std::fprintf(stderr, "etcd_bench: starting the apiserver: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }

  // One namespace (etcd key prefix) per workload: a list or a watch sees only its own objects.
  const std::string create_ns = "bench-etcd", read_ns = "bench-etcd-read",
                    watch_ns = "bench-etcd-watch";
  Targets t;
  t.etcd = etcd.client_address();
  t.etcd_pid = static_cast<int>(etcd.pid());
  t.capstan = apiserver.grpc_address();
  t.capstan_pid = FindChildProcess("capstan-apiserv");
  t.pod = MakePodTemplate(create_ns);
  {
    Connections setup(t.capstan, 1);
    for (const std::string& ns : {create_ns, read_ns}) {
      if (absl::Status s = CreateNamespace(setup.stub(0), ns); !s.ok()) {
        std::fprintf(stderr, "etcd_bench: %s\n", std::string(s.message()).c_str());
        return 1;
      }
    }
  }
  PrintHeader(t, etcd, apiserver, create_ns);

  std::vector<Pair> pairs;
  if (!Skipped("create")) RunCreates(t, create_ns, &pairs);
  if (!Skipped("get") || !Skipped("list")) {
    PopulateReadSet(t, read_ns, read_keys);
    if (!Skipped("get")) RunGets(t, read_ns, read_keys, &pairs);
    if (!Skipped("list")) RunLists(t, read_ns, read_keys, &pairs);
  }
  if (!Skipped("watch")) RunWatch(t, watch_ns, &pairs);

  PrintTable(pairs);
  PrintGoals(pairs);
  std::printf("\n");
  for (const Pair& p : pairs) ReportPair(p);
  return 0;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Capstan apiserver vs etcd, same workload, same run: "
      "bazel-bin/bench/etcd_bench [--duration=5s] [--clients=1,16,256] "
      "[--skip=create,get,list,watch]");
  absl::ParseCommandLine(argc, argv);
  // Abseil's deadlock detection (on in non-opt builds) updates a lock graph on every Mutex
  // acquisition; a benchmark must not pay for that, nor stop on its reports.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Main();
}
