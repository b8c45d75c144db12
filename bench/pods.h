// The Capstan side of the gRPC benchmarks (bench/apiserver_bench.cc, bench/etcd_bench.cc): the
// ~1 KiB pod they create; creates, gets and lists of pods through capstan.api.v1.Resources; and
// the watch fan-out machinery (1,000 watchers read with the callback API), whose bookkeeping is
// shared with etcd_bench's etcd watchers, which see the same encoded pods as etcd values.
#ifndef CAPSTAN_BENCH_PODS_H_
#define CAPSTAN_BENCH_PODS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench/load.h"
#include "grpcpp/grpcpp.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"
#include "proto/resource.grpc.pb.h"
#include "proto/resource.pb.h"

namespace capstan::bench {

// Every pod carries its send time (steady_clock ns) in this annotation, for watch latency.
inline constexpr char kSentAnnotation[] = "bench/sent-ns";
// A writer's write number, to match each delivery with the write's ack time (apiserver_bench).
inline constexpr char kWriteAnnotation[] = "bench/write";

using Connections = Channels<capstan::api::v1::Resources>;

capstan::api::v1::ResourceRef PodsIn(const std::string& ns);

// A pod as a Deployment would make it, ~1 KiB encoded (see pods.cc).
capstan::core::v1::Pod MakePodTemplate(const std::string& ns);

// The pod ns/name, stamped with the current time as its send time.
std::string EncodePod(const capstan::core::v1::Pod& tmpl, const std::string& ns,
                      const std::string& name, int shard);

// Creates the namespace; OK when it exists already.
absl::Status CreateNamespace(capstan::api::v1::Resources::Stub* stub, const std::string& name);
// Creates a cluster-scoped core/v1 object (resource: "namespaces", "nodes", ...); one that
// already exists is fine. The error names the object.
absl::Status CreateClusterObject(capstan::api::v1::Resources::Stub* stub, const std::string& resource,
                                 const google::protobuf::Message& object, const std::string& name);

// Creates one pod ns/name from tmpl (stamped with its send time), synchronously.
grpc::Status CreatePod(capstan::api::v1::Resources::Stub* stub,
                       const capstan::core::v1::Pod& tmpl, const std::string& ns,
                       const std::string& name, capstan::api::v1::ObjectResponse* response);

void InvokeCreate(capstan::api::v1::Resources::Stub* stub, grpc::ClientContext* context,
                  const capstan::api::v1::CreateRequest* request,
                  capstan::api::v1::ObjectResponse* response,
                  std::function<void(grpc::Status)> done);
void InvokeGet(capstan::api::v1::Resources::Stub* stub, grpc::ClientContext* context,
               const capstan::api::v1::GetRequest* request,
               capstan::api::v1::ObjectResponse* response, std::function<void(grpc::Status)> done);
void InvokeList(capstan::api::v1::Resources::Stub* stub, grpc::ClientContext* context,
                const capstan::api::v1::ListRequest* request,
                capstan::api::v1::ListResponse* response, std::function<void(grpc::Status)> done);

// Creates pods named prefix + seq (6 digits) in ns, shard label seq % 10, from `clients`
// concurrent clients in a closed loop, until `count` were sent or max_time passed.
LoadResult CreatePods(const Connections& connections, int clients, int clients_per_channel,
                      int64_t count, absl::Duration max_time, const capstan::core::v1::Pod& tmpl,
                      const std::string& ns, const std::string& prefix);

// GETs of the pods p-000000 ... p-(pods-1) of ns in a scattered order (not one hot key), as a
// closed loop bounded like CreatePods.
LoadResult GetPods(const Connections& connections, int clients, int clients_per_channel,
                   int64_t count, absl::Duration max_time, const std::string& ns, int pods);

// LISTs of all pods of ns (or those matching label_selector) at resource_version ("": the most
// recent state), as a closed loop bounded like CreatePods; *size gets the latest response's.
LoadResult ListPods(const Connections& connections, int clients, int clients_per_channel,
                    int64_t count, absl::Duration max_time, const std::string& ns,
                    const std::string& label_selector, const std::string& resource_version,
                    ResponseSize* size);

// ---------------------------------------------------------------------------------------------
// Watch fan-out

// Reads only metadata (field 3 of every kind) from an encoded object: decoding the whole pod for
// each of 1,000 watchers would make the benchmark, not the server, the bottleneck.
bool DecodeMeta(const std::string& bytes, capstan::meta::v1::ObjectMeta* meta);

// Events are told apart by the pod name's prefix ("w-" warm-up, "s-" steady, "b-" burst), so a
// late event is counted in its own phase.
enum Phase { kWarmup = 0, kSteady = 1, kBurst = 2, kPhases = 3 };

Phase PhaseOf(const std::string& name);

struct PhaseStats {
  Histogram latency;  // receive time - the pod's send time (kSentAnnotation)
  int64_t events = 0;
  int64_t last_ns = 0;  // receive time of the last event
  void Merge(const PhaseStats& other);
};

// Tracks finished watch streams, so the benchmark can wait for all of them before exiting.
class WatchGroup {
 public:
  void Finished();
  int finished();
  // True when `total` streams finished within the timeout.
  bool WaitAll(int total, absl::Duration timeout);

 private:
  bool AllFinished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_ >= total_; }

  absl::Mutex mu_;
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// One watch stream of encoded pods, whatever the server: the stream's reactor (a subclass) calls
// Record for each pod delivered and Finished from OnDone. Thread-safe.
class PodWatcher {
 public:
  explicit PodWatcher(WatchGroup* group) : group_(group) {}
  virtual ~PodWatcher() = default;

  virtual void Cancel() = 0;  // ends the stream; Finished follows

  PhaseStats Stats(Phase phase);
  int64_t Events(Phase phase);
  // (write number, receive time) of each event whose pod carries kWriteAnnotation.
  std::vector<std::pair<int64_t, int64_t>> Deliveries();
  // Why the stream ended, once it has (e.g. the server cut it off as too slow).
  std::optional<grpc::Status> EndedWith();

 protected:
  // One delivered pod (encoded), received at now_ns.
  void Record(const std::string& encoded_pod, int64_t now_ns);
  // The stream ended, or is about to, for this reason; the first reason given is kept.
  void Ended(const grpc::Status& status);
  // From the reactor's OnDone: the stream is over and the reactor may be freed.
  void Finished(const grpc::Status& status);

 private:
  WatchGroup* const group_;
  absl::Mutex mu_;
  capstan::meta::v1::ObjectMeta meta_ ABSL_GUARDED_BY(mu_);  // reused: no allocation per event
  PhaseStats phases_[kPhases] ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int64_t, int64_t>> deliveries_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> ended_ ABSL_GUARDED_BY(mu_);
};

// A capstan.api.v1.Resources Watch of the pods of a namespace, read with the callback API:
// gRPC's threads run OnReadDone, so 1,000 watchers need no thread each.
class PodWatchReader : public PodWatcher,
                       public grpc::ClientReadReactor<capstan::api::v1::WatchResponse> {
 public:
  PodWatchReader(capstan::api::v1::Resources::Stub* stub, const std::string& ns,
                 WatchGroup* group);
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override { Finished(status); }
  void Cancel() override { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  capstan::api::v1::WatchRequest request_;
  capstan::api::v1::WatchResponse response_;
};

// The watch streams of one fan-out run. Destruction cancels them all and waits for their ends.
class WatcherSet {
 public:
  WatcherSet() = default;
  ~WatcherSet();
  WatcherSet(const WatcherSet&) = delete;
  WatcherSet& operator=(const WatcherSet&) = delete;

  // What each new watcher reports its end to.
  WatchGroup* group() { return group_.get(); }
  void Add(std::unique_ptr<PodWatcher> watcher) { watchers_.push_back(std::move(watcher)); }
  int size() const { return static_cast<int>(watchers_.size()); }
  const std::vector<std::unique_ptr<PodWatcher>>& watchers() const { return watchers_; }

  // A watch is registered on the server some time after its call starts: calls write(i) (the
  // i-th warm-up pod, named "w-...") every 100 ms until every watcher has seen a warm-up event,
  // for at most `timeout`. Returns how many have; *first_error gets a failed write's error.
  int WarmUp(const std::function<grpc::Status(int)>& write, absl::Duration timeout,
             std::string* first_error);
  // Watchers whose stream has not ended.
  int64_t Live();
  // Waits (at most `timeout`) until every live watcher has `writes` events of the phase, then
  // sums their stats.
  PhaseStats Drain(Phase phase, int64_t writes, absl::Duration timeout);
  // "N of M watch streams were ended by the server, e.g. ..."; "" when none was.
  std::string EndedStreams();

 private:
  // Declared first, destroyed last: the watchers report to it until their streams end.
  std::unique_ptr<WatchGroup> group_ = std::make_unique<WatchGroup>();
  std::vector<std::unique_ptr<PodWatcher>> watchers_;
};

}  // namespace capstan::bench

#endif  // CAPSTAN_BENCH_PODS_H_
