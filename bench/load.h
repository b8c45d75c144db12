// Pieces shared by the gRPC benchmarks (bench/apiserver_bench.cc, bench/etcd_bench.cc): a
// latency histogram, machine and CPU accounting from /proc, and a closed-loop load generator over
// gRPC's callback API.
//
// Clients use the callback API rather than a thread per client with the sync stub: the benchmark
// and the server share the machine, and 256 blocked threads would spend the CPU the server needs
// on context switches. A closed loop keeps exactly `clients` requests in flight, which is what N
// concurrent synchronous clients would do.
#ifndef CAPSTAN_BENCH_LOAD_H_
#define CAPSTAN_BENCH_LOAD_H_

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace capstan::bench {

using Clock = std::chrono::steady_clock;

// No single request may hang a benchmark.
constexpr auto kRpcTimeout = std::chrono::seconds(30);

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

// Log-linear histogram of nanosecond values: 32 sub-buckets per power of two, so a percentile is
// within 3% of the exact value, in fixed memory however many samples (1,000 watchers record
// millions). Not thread-safe.
class Histogram {
 public:
  void Record(int64_t ns) {
    if (buckets_.empty()) buckets_.assign(kBuckets, 0);
    ++buckets_[Index(std::max<int64_t>(ns, 0))];
    ++count_;
  }
  void Merge(const Histogram& other) {
    if (other.count_ == 0) return;
    if (buckets_.empty()) buckets_.assign(kBuckets, 0);
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
  }
  int64_t count() const { return count_; }
  // The value below which a fraction p of the samples fall, in milliseconds (0 when empty).
  double PercentileMs(double p) const {
    if (count_ == 0) return 0;
    const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(p * count_)));
    int64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return Midpoint(i) / 1e6;
    }
    return Midpoint(kBuckets - 1) / 1e6;
  }

 private:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kMaxExponent = 40;  // 2^40 ns is 18 minutes: larger values are clamped
  static constexpr size_t kBuckets = (kMaxExponent - kSubBits + 2) * kSub;

  static size_t Index(int64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    int exponent = 63 - __builtin_clzll(static_cast<uint64_t>(v));
    if (exponent > kMaxExponent) return kBuckets - 1;
    int sub = static_cast<int>((v >> (exponent - kSubBits)) & (kSub - 1));
    return static_cast<size_t>((exponent - kSubBits + 1) * kSub + sub);
  }
  static double Midpoint(size_t index) {
    if (index < static_cast<size_t>(kSub)) return static_cast<double>(index);
    int exponent = static_cast<int>(index / kSub) + kSubBits - 1;
    int sub = static_cast<int>(index % kSub);
    double width = std::ldexp(1.0, exponent - kSubBits);
    return (kSub + sub) * width + width / 2;
  }

  std::vector<uint64_t> buckets_;  // allocated on first use
  int64_t count_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Machine and CPU accounting

// The client counts of a flag like --clients=1,16,256; exits with a message on a bad value.
std::vector<int> ParseCounts(const std::vector<std::string>& values, const char* flag);
// How many channels `clients` closed-loop clients use, at most clients_per_channel on each.
inline int ChannelsFor(int clients, int clients_per_channel) {
  const int per = std::max(1, clients_per_channel);
  return (clients + per - 1) / per;
}

// Reads a whole file ("" when it cannot).
std::string ReadFile(const std::string& path);
// The CPU's "model name" from /proc/cpuinfo.
std::string CpuModel();
// Total RAM, e.g. "7.8 GiB".
std::string MemTotal();
// CPUs this process may run on (what nproc prints).
int CpusAvailable();
// The filesystem a path lives on: fsync cost depends on it (tmpfs makes it free).
std::string FilesystemType(const std::string& path);
// user+system CPU seconds of a process so far (from /proc/PID/stat).
std::optional<double> ProcessCpuSeconds(int pid);
// user+system CPU seconds of this process so far.
double SelfCpuSeconds();
// The pid of a child of this process whose command name (/proc/PID/stat, at most 15 characters)
// starts with name_prefix; 0 if none. The test harness does not expose the pids it forks.
int FindChildProcess(const std::string& name_prefix);
// `git rev-parse --short HEAD` of the workspace this runs from, or "" (not a checkout, no git).
std::string GitRevision();

struct ThreadCpu {
  std::string name;
  double seconds = 0;
};

// user+system CPU seconds of each thread of a process, by thread id.
std::map<int, ThreadCpu> ThreadCpuSeconds(int pid);

// CPU used by the server and by this process over a run.
class CpuMeter {
 public:
  explicit CpuMeter(int server_pid) : server_pid_(server_pid), start_(Clock::now()) {
    if (server_pid_ > 0) {
      server_start_ = ProcessCpuSeconds(server_pid_);
      threads_start_ = ThreadCpuSeconds(server_pid_);
    }
    self_start_ = SelfCpuSeconds();
  }
  // The server threads that used the most CPU since the start, as "name[tid] 0.93 cores, ...":
  // one thread near 1.00 core is a serial bottleneck however many CPUs there are.
  std::string BusiestServerThreads(int top = 3) const {
    if (server_pid_ <= 0) return "";
    const double wall = SecondsSince(start_);
    std::vector<std::pair<double, std::string>> used;
    for (const auto& [tid, now] : ThreadCpuSeconds(server_pid_)) {
      auto before = threads_start_.find(tid);
      double seconds = now.seconds - (before == threads_start_.end() ? 0 : before->second.seconds);
      if (seconds > 0) used.push_back({seconds, absl::StrCat(now.name, "[", tid, "]")});
    }
    std::sort(used.rbegin(), used.rend());
    std::vector<std::string> parts;
    for (int i = 0; i < top && i < static_cast<int>(used.size()); ++i) {
      parts.push_back(absl::StrFormat("%s %.2f cores", used[i].second, used[i].first / wall));
    }
    return absl::StrJoin(parts, ", ");
  }
  std::optional<double> ServerSeconds() const {
    if (!server_start_) return std::nullopt;
    std::optional<double> now = ProcessCpuSeconds(server_pid_);
    if (!now) return std::nullopt;
    return *now - *server_start_;
  }
  double ClientSeconds() const { return SelfCpuSeconds() - self_start_; }

 private:
  int server_pid_;
  Clock::time_point start_;
  std::optional<double> server_start_;
  std::map<int, ThreadCpu> threads_start_;
  double self_start_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Connections

// A channel with its own TCP connection (see load.cc), no limit on received message size.
std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, int id);
void SetTimeout(grpc::ClientContext* context);  // kRpcTimeout from now
std::string Describe(const grpc::Status& status);

// `count` connected channels (one HTTP/2 connection each) with a stub of Service each; exits
// when one cannot connect in 10 s.
template <typename Service>
class Channels {
 public:
  using Stub = typename Service::Stub;

  Channels(const std::string& target, int count) {
    static std::atomic<int> next_id{0};
    for (int i = 0; i < count; ++i) {
      channels_.push_back(NewChannel(target, next_id++));
      stubs_.push_back(Service::NewStub(channels_.back()));
    }
    for (auto& channel : channels_) {
      if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                     std::chrono::seconds(10))) {
        std::fprintf(stderr, "%s: cannot connect to %s\n", program_invocation_short_name,
                     target.c_str());
        std::exit(1);
      }
    }
  }
  int size() const { return static_cast<int>(stubs_.size()); }
  Stub* stub(int i) const { return stubs_[i % stubs_.size()].get(); }

 private:
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<Stub>> stubs_;
};

// ---------------------------------------------------------------------------------------------
// Closed-loop load

// Items and bytes of the latest response of a list (or range) loop, written from gRPC's
// callbacks: a list that returns fewer objects than were written is not the workload intended.
struct ResponseSize {
  std::atomic<int64_t> items{0};
  std::atomic<int64_t> bytes{0};
};

struct LoadResult {
  int64_t ok = 0;
  int64_t failed = 0;
  std::string first_error;
  double seconds = 0;
  Histogram latency;  // of successful requests
};

// Keeps `clients` unary requests in flight until max_ops have been sent or the deadline passed:
// each client sends its next request from the completion callback of the previous one.
// Service is the gRPC service class (e.g. capstan::api::v1::Resources, etcdserverpb::KV).
template <typename Service, typename Request, typename Response>
class ClosedLoop {
 public:
  using Stub = typename Service::Stub;
  // Fills the request with sequence number seq; called concurrently for different seq.
  using Fill = std::function<void(int64_t seq, Request*)>;
  // Starts the call on the stub (stub->async()->Method(...)).
  using Invoke = std::function<void(Stub*, grpc::ClientContext*, const Request*, Response*,
                                    std::function<void(grpc::Status)>)>;

  ClosedLoop(const Channels<Service>& connections, int clients, int clients_per_channel,
             int64_t max_ops, absl::Duration max_time, Fill fill, Invoke invoke)
      : max_ops_(max_ops),
        max_time_(absl::ToChronoNanoseconds(max_time)),
        fill_(std::move(fill)),
        invoke_(std::move(invoke)) {
    for (int i = 0; i < clients; ++i) {
      clients_.push_back(std::make_unique<Client>());
      clients_.back()->stub = connections.stub(i / std::max(1, clients_per_channel));
    }
  }

  LoadResult Run() {
    const Clock::time_point start = Clock::now();
    deadline_ = start + max_time_;
    {
      absl::MutexLock lock(&mu_);
      active_ = static_cast<int>(clients_.size());
    }
    for (auto& client : clients_) Next(client.get());
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* active) { return *active == 0; }, &active_));
    }
    LoadResult result;
    result.seconds = SecondsSince(start);
    for (auto& client : clients_) {
      result.ok += client->ok;
      result.failed += client->failed;
      if (result.first_error.empty()) result.first_error = client->first_error;
      result.latency.Merge(client->latency);
    }
    return result;
  }

 private:
  // One client's state; only its own (sequential) callbacks touch it.
  struct Client {
    Stub* stub = nullptr;
    std::unique_ptr<grpc::ClientContext> context;  // a context serves one call only
    Request request;
    Response response;
    Clock::time_point sent;
    Histogram latency;
    int64_t ok = 0;
    int64_t failed = 0;
    std::string first_error;
  };

  void Next(Client* client) {
    const int64_t seq = next_seq_.fetch_add(1);
    if (seq >= max_ops_ || Clock::now() >= deadline_) {
      absl::MutexLock lock(&mu_);
      --active_;
      return;
    }
    fill_(seq, &client->request);
    client->context = std::make_unique<grpc::ClientContext>();
    SetTimeout(client->context.get());
    client->response.Clear();
    client->sent = Clock::now();
    invoke_(client->stub, client->context.get(), &client->request, &client->response,
            [this, client](grpc::Status status) {
              if (status.ok()) {
                client->latency.Record(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() -
                                                                         client->sent)
                        .count());
                ++client->ok;
              } else {
                ++client->failed;
                if (client->first_error.empty()) client->first_error = Describe(status);
              }
              Next(client);
            });
  }

  const int64_t max_ops_;
  const Clock::duration max_time_;
  const Fill fill_;
  const Invoke invoke_;
  std::vector<std::unique_ptr<Client>> clients_;
  Clock::time_point deadline_;
  std::atomic<int64_t> next_seq_{0};
  absl::Mutex mu_;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace capstan::bench

#endif  // CAPSTAN_BENCH_LOAD_H_
