// The capstan-apiserver against a real etcd 3.4, same workload, same run, same machine.
//
// Kubernetes' apiserver keeps every object in etcd, so etcd's own put throughput bounds what a
// kube-apiserver can create. This benchmark starts both a one-member etcd
// (test/harness/etcd_process.h: Debian's /usr/bin/etcd, default durability) and a capstan-apiserver
// (test/harness/apiserver_process.h: durable, fsync per commit), both with data in private temp
// directories on the same filesystem, and drives the same closed-loop load at each in turn:
//
//   create  etcd: Put of a new key "/registry/pods/NS/NAME" whose value is the encoded ~1 KiB pod;
//           Capstan: Create of the same ~1 KiB pod. --clients concurrent clients (default
//           1, 16, 256), --duration each.
//   get     etcd: Range of one existing key (linearizable, etcd's default); Capstan: Get of one
//           existing pod. --get_clients concurrent clients (default 1, 16), --duration each.
//
// For each it reports throughput, p50/p99 latency, the ratio Capstan/etcd, and the CPU each
// server and the benchmark itself used, then checks the goals:
//   - Capstan durable create throughput >= 2x etcd put throughput at 256 clients;
//   - single-client create latency <= etcd's.
// It never fails on timing. Both servers and the load generator share the machine's CPUs.
//
//   bazel run -c opt //bench:etcd_bench
//   bazel run -c opt //bench:etcd_bench -- --duration=10s --clients=1,256
//
// The Capstan side reuses bench/pods.h (the pod and the create/get loops of apiserver_bench); both
// sides use bench/load.h's closed loop over gRPC's callback API, with --clients_per_channel clients
// sharing each connection.

#include <sys/utsname.h>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "bench/pods.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/resource.grpc.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/etcd_process.h"

ABSL_FLAG(std::vector<std::string>, clients, std::vector<std::string>({"1", "16", "256"}),
          "Numbers of concurrent clients for the create/put workload.");
ABSL_FLAG(std::vector<std::string>, get_clients, std::vector<std::string>({"1", "16"}),
          "Numbers of concurrent clients for the get/range workload.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5),
          "Duration of each run (one server, one workload, one client count).");
ABSL_FLAG(int64_t, max_ops, 500000, "Most requests in each run (a safety bound).");
ABSL_FLAG(int, clients_per_channel, 16, "Clients sharing one channel (one HTTP/2 connection).");
ABSL_FLAG(int, read_keys, 1000, "Objects created on each server for the get/range workload.");
ABSL_FLAG(std::string, apiserver_flags, "",
          "Extra flags for the apiserver, separated by spaces (default: durable).");
ABSL_FLAG(std::string, etcd_flags, "",
          "Extra flags for etcd, separated by spaces (default: etcd's defaults, durable).");

namespace capstan::bench {
namespace {

namespace apiv1 = capstan::api::v1;
using capstan::core::v1::Pod;
using EtcdChannels = Channels<etcdserverpb::KV>;



// The key kube-apiserver would store the pod under.
std::string EtcdKey(const std::string& ns, const std::string& name) {
  return absl::StrCat("/registry/pods/", ns, "/", name);
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

// Puts new keys prefix + seq under ns, each with the encoded pod (stamped like Capstan's, so the
// value is the same size and is re-encoded per request as on the Capstan side).
LoadResult PutKeys(const EtcdChannels& channels, int clients, int64_t count,
                   absl::Duration max_time, const Pod& tmpl, const std::string& ns,
                   const std::string& prefix) {
  ClosedLoop<etcdserverpb::KV, etcdserverpb::PutRequest, etcdserverpb::PutResponse> loop(
      channels, clients, absl::GetFlag(FLAGS_clients_per_channel), count, max_time,
      [&](int64_t seq, etcdserverpb::PutRequest* request) {
        const std::string name = absl::StrFormat("%s%06d", prefix, seq);
        request->set_key(EtcdKey(ns, name));
        request->set_value(EncodePod(tmpl, ns, name, static_cast<int>(seq % 10)));
      },
      InvokePut);
  return loop.Run();
}

LoadResult RangeKeys(const EtcdChannels& channels, int clients, const std::string& ns,
                     int keys) {
  ClosedLoop<etcdserverpb::KV, etcdserverpb::RangeRequest, etcdserverpb::RangeResponse> loop(
      channels, clients, absl::GetFlag(FLAGS_clients_per_channel), absl::GetFlag(FLAGS_max_ops),
      absl::GetFlag(FLAGS_duration),
      [&](int64_t seq, etcdserverpb::RangeRequest* request) {
        // Scattered keys, as on the Capstan side; linearizable (serializable = false), as
        // kube-apiserver reads a single object by default.
        request->set_key(EtcdKey(ns, absl::StrFormat("p-%06d", (seq * 7919) % keys)));
      },
      InvokeRange);
  return loop.Run();
}

// ---------------------------------------------------------------------------------------------
// Capstan side (bench/pods.h)

LoadResult GetPods(const Connections& connections, int clients, const std::string& ns, int pods) {
  ClosedLoop<apiv1::Resources, apiv1::GetRequest, apiv1::ObjectResponse> loop(
      connections, clients, absl::GetFlag(FLAGS_clients_per_channel),
      absl::GetFlag(FLAGS_max_ops), absl::GetFlag(FLAGS_duration),
      [&](int64_t seq, apiv1::GetRequest* request) {
        *request->mutable_resource() = PodsIn(ns);
        request->set_encoding(apiv1::PROTOBUF);
        request->set_name(absl::StrFormat("p-%06d", (seq * 7919) % pods));
      },
      InvokeGet);
  return loop.Run();
}

// ---------------------------------------------------------------------------------------------
// Report

struct Measure {
  LoadResult load;
  std::optional<double> server_cpu;  // seconds
  double bench_cpu = 0;              // seconds
  double Rate() const { return load.seconds > 0 ? load.ok / load.seconds : 0; }
};

struct Pair {
  std::string workload;
  int clients = 0;
  Measure etcd, capstan;
};

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
               Ms(m.load.latency.PercentileMs(0.5)).c_str(),
               Ms(m.load.latency.PercentileMs(0.99)).c_str());
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
                p.workload.c_str(), p.clients, p.etcd.Rate(), p.capstan.Rate(),
                Ratio(p.capstan.Rate(), p.etcd.Rate()).c_str(),
                Ms(p.etcd.load.latency.PercentileMs(0.5)).c_str(),
                Ms(p.capstan.load.latency.PercentileMs(0.5)).c_str(),
                Ms(p.etcd.load.latency.PercentileMs(0.99)).c_str(),
                Ms(p.capstan.load.latency.PercentileMs(0.99)).c_str(),
                Cores(p.etcd, true).c_str(), Cores(p.capstan, true).c_str(),
                Cores(p.etcd, false).c_str(), Cores(p.capstan, false).c_str());
  }
}

void PrintGoals(const std::vector<Pair>& pairs) {
  const Pair* create256 = nullptr;
  const Pair* create1 = nullptr;
  for (const Pair& p : pairs) {
    if (p.workload != "create / put") continue;
    if (p.clients == 256) create256 = &p;
    if (p.clients == 1) create1 = &p;
  }
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
    const double capstan = create1->capstan.load.latency.PercentileMs(0.5);
    const double etcd = create1->etcd.load.latency.PercentileMs(0.5);
    std::printf("| Single-client create latency <= etcd's (p50) | %s ms vs %s ms (p99 %s vs %s) "
                "| %s |\n",
                Ms(capstan).c_str(), Ms(etcd).c_str(),
                Ms(create1->capstan.load.latency.PercentileMs(0.99)).c_str(),
                Ms(create1->etcd.load.latency.PercentileMs(0.99)).c_str(),
                capstan <= etcd ? "yes" : "no");
  } else {
    std::printf("| Single-client create latency <= etcd's | not run (--clients) | — |\n");
  }
  if (!notes.empty()) {
    std::printf("\nNotes:\n");
    for (const std::string& n : notes) std::printf("- %s\n", n.c_str());
  }
}

// ---------------------------------------------------------------------------------------------

int Main() {
  const std::vector<int> create_counts = ParseCounts(absl::GetFlag(FLAGS_clients), "clients");
  const std::vector<int> get_counts = ParseCounts(absl::GetFlag(FLAGS_get_clients), "get_clients");
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const int64_t max_ops = absl::GetFlag(FLAGS_max_ops);
  const int read_keys = std::max(1, absl::GetFlag(FLAGS_read_keys));

  // Both servers run for the whole benchmark, so each run sees the other idle, not absent.
  const std::string etcd_flags = absl::GetFlag(FLAGS_etcd_flags);
  capstan::testing::EtcdProcess etcd(absl::StrSplit(etcd_flags, ' ', absl::SkipWhitespace()));
  if (absl::Status s = etcd.Start(); !s.ok()) {
    std::fprintf(stderr, "etcd_bench: starting etcd: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  const std::string apiserver_flags = absl::GetFlag(FLAGS_apiserver_flags);
  capstan::testing::ApiServerProcess apiserver(
      absl::StrSplit(apiserver_flags, ' ', absl::SkipWhitespace()));
  if (absl::Status s = apiserver.Start(); !s.ok()) {
    std::fprintf(stderr, "etcd_bench: starting the apiserver: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  const int apiserver_pid = FindChildProcess("capstan-apiserv");

  const std::string ns = "bench-etcd";
  const Pod pod = MakePodTemplate(ns);
  {
    Connections setup(apiserver.grpc_address(), 1);
    if (absl::Status s = CreateNamespace(setup.stub(0), ns); !s.ok()) {
      std::fprintf(stderr, "etcd_bench: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }

  struct utsname uts;
  uname(&uts);
  const std::string revision = GitRevision();
  std::printf("# Capstan apiserver vs etcd\n\n");
  std::printf("- Machine: %d CPUs available (nproc), %s, %s RAM, Linux %s\n", CpusAvailable(),
              CpuModel().c_str(), MemTotal().c_str(), uts.release);
  std::printf("- Capstan: %s; apiserver pid %d, flags: %s; data on %s\n",
              revision.empty() ? "revision unknown" : ("git " + revision).c_str(), apiserver_pid,
              apiserver_flags.empty() ? "(defaults: durable, fsync per commit)"
                                      : apiserver_flags.c_str(),
              FilesystemType(apiserver.data_dir()).c_str());
  std::printf("- etcd: %s, one member on loopback, pid %d, flags: %s; data on %s\n",
              etcd.version().c_str(), static_cast<int>(etcd.pid()),
              etcd_flags.empty() ? "(defaults: fsync of the WAL per commit)" : etcd_flags.c_str(),
              FilesystemType(etcd.data_dir()).c_str());
  std::printf("- Object: the same ~1 KiB pod, %zu bytes protobuf; etcd stores it as the value of "
              "key %s (%zu bytes)\n",
              pod.ByteSizeLong(), EtcdKey(ns, "c256-000000").c_str(),
              EtcdKey(ns, "c256-000000").size());
  std::printf("- Settings: create/put clients %s, get/range clients %s, %s per run (at most "
              "%" PRId64 " requests), %d clients per channel, %d objects read\n",
              absl::StrJoin(create_counts, ",").c_str(), absl::StrJoin(get_counts, ",").c_str(),
              absl::FormatDuration(duration).c_str(), max_ops,
              absl::GetFlag(FLAGS_clients_per_channel), read_keys);
  std::printf("- Closed loop: each client sends its next request when the previous one is "
              "answered. The benchmark's clients share the CPUs with both servers.\n");
  std::fflush(stdout);

  std::vector<Pair> pairs;
  // For each client count etcd runs first, then Capstan, so any drift of the machine over the
  // run (page cache, disk) affects both sides of a row alike.
  for (int clients : create_counts) {
    Pair pair;
    pair.workload = "create / put";
    pair.clients = clients;
    const std::string prefix = absl::StrCat("c", clients, "-");
    {
      EtcdChannels channels(etcd.client_address(), ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
      pair.etcd = Measured(etcd.pid(), "etcd", absl::StrCat("put, ", clients, " clients"), [&] {
        return PutKeys(channels, clients, max_ops, duration, pod, ns, prefix);
      });
    }
    {
      Connections connections(apiserver.grpc_address(), ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
      pair.capstan =
          Measured(apiserver_pid, "capstan", absl::StrCat("create, ", clients, " clients"), [&] {
            return CreatePods(connections, clients, absl::GetFlag(FLAGS_clients_per_channel),
                              max_ops, duration, pod, ns, prefix);
          });
    }
    pairs.push_back(std::move(pair));
  }

  if (!get_counts.empty()) {
    // The objects read: p-000000 ... on both, created by 64 clients (not measured).
    EtcdChannels etcd_setup(etcd.client_address(), 4);
    LoadResult put = PutKeys(etcd_setup, 64, read_keys, absl::Minutes(1), pod, ns, "p-");
    Connections capstan_setup(apiserver.grpc_address(), 4);
    LoadResult created = CreatePods(capstan_setup, 64, 16, read_keys, absl::Minutes(1), pod, ns,
                                    "p-");
    if (put.ok < read_keys || created.ok < read_keys) {
      Note(absl::StrFormat("populating the read set: etcd %d of %d keys (%s), Capstan %d of %d "
                           "pods (%s)",
                           put.ok, read_keys, put.first_error, created.ok, read_keys,
                           created.first_error));
    }
    for (int clients : get_counts) {
      Pair pair;
      pair.workload = "get / range (one key)";
      pair.clients = clients;
      {
        EtcdChannels channels(etcd.client_address(), ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
        pair.etcd = Measured(etcd.pid(), "etcd", absl::StrCat("range, ", clients, " clients"),
                             [&] { return RangeKeys(channels, clients, ns, read_keys); });
      }
      {
        Connections connections(apiserver.grpc_address(), ChannelsFor(clients, absl::GetFlag(FLAGS_clients_per_channel)));
        pair.capstan =
            Measured(apiserver_pid, "capstan", absl::StrCat("get, ", clients, " clients"),
                     [&] { return GetPods(connections, clients, ns, read_keys); });
      }
      pairs.push_back(std::move(pair));
    }
  }

  PrintTable(pairs);
  PrintGoals(pairs);
  return 0;
}

}  // namespace
}  // namespace capstan::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Capstan apiserver vs etcd, same workload, same run: "
      "bazel run -c opt //bench:etcd_bench -- [--duration=5s] [--clients=1,16,256]");
  absl::ParseCommandLine(argc, argv);
  // Abseil's deadlock detection (on in non-opt builds) updates a lock graph on every Mutex
  // acquisition; a benchmark must not pay for that, nor stop on its reports.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return capstan::bench::Main();
}
