// The Capstan side of the gRPC benchmarks (bench/apiserver_bench.cc, bench/etcd_bench.cc): the
// ~1 KiB pod they create, and creates and gets of pods through capstan.api.v1.Resources.
#ifndef CAPSTAN_BENCH_PODS_H_
#define CAPSTAN_BENCH_PODS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
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

using Connections = Channels<capstan::api::v1::Resources>;

capstan::api::v1::ResourceRef PodsIn(const std::string& ns);

// A pod as a Deployment would make it, ~1 KiB encoded (see pods.cc).
capstan::core::v1::Pod MakePodTemplate(const std::string& ns);

// The pod ns/name, stamped with the current time as its send time.
std::string EncodePod(const capstan::core::v1::Pod& tmpl, const std::string& ns,
                      const std::string& name, int shard);

// Creates the namespace; OK when it exists already.
absl::Status CreateNamespace(capstan::api::v1::Resources::Stub* stub, const std::string& name);

void InvokeCreate(capstan::api::v1::Resources::Stub* stub, grpc::ClientContext* context,
                  const capstan::api::v1::CreateRequest* request,
                  capstan::api::v1::ObjectResponse* response,
                  std::function<void(grpc::Status)> done);
void InvokeGet(capstan::api::v1::Resources::Stub* stub, grpc::ClientContext* context,
               const capstan::api::v1::GetRequest* request,
               capstan::api::v1::ObjectResponse* response, std::function<void(grpc::Status)> done);

// Creates pods named prefix + seq (6 digits) in ns, shard label seq % 10, from `clients`
// concurrent clients in a closed loop, until `count` were sent or max_time passed.
LoadResult CreatePods(const Connections& connections, int clients, int clients_per_channel,
                      int64_t count, absl::Duration max_time, const capstan::core::v1::Pod& tmpl,
                      const std::string& ns, const std::string& prefix);

}  // namespace capstan::bench

#endif  // CAPSTAN_BENCH_PODS_H_
