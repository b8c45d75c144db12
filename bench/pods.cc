#include "bench/pods.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace capstan::bench {

namespace apiv1 = capstan::api::v1;
using capstan::core::v1::Pod;
using capstan::meta::v1::ObjectMeta;
using Stub = apiv1::Resources::Stub;

apiv1::ResourceRef PodsIn(const std::string& ns) {
  apiv1::ResourceRef ref;
  ref.set_version("v1");
  ref.set_resource("pods");
  ref.set_namespace_(ns);
  return ref;
}

// A pod as a Deployment would make it: labels, one container with image, command, args, ports,
// env, resources and a readiness probe. Env entries are added until the encoding reaches ~1 KiB,
// the size the goals are stated for.
Pod MakePodTemplate(const std::string& ns) {
  Pod pod;
  pod.set_api_version("v1");
  pod.set_kind("Pod");
  ObjectMeta* meta = pod.mutable_metadata();
  meta->set_name("template-000000");
  meta->set_namespace_(ns);
  auto& labels = *meta->mutable_labels();
  labels["app"] = "checkout";
  labels["tier"] = "backend";
  labels["release"] = "stable";
  labels["pod-template-hash"] = "7d9f8c6b54";
  labels["shard"] = "0";
  (*meta->mutable_annotations())[kSentAnnotation] = "0000000000000000000";

  auto* spec = pod.mutable_spec();
  spec->set_restart_policy("Always");
  spec->set_termination_grace_period_seconds(30);
  spec->set_dns_policy("ClusterFirst");
  spec->set_service_account_name("checkout");
  (*spec->mutable_node_selector())["kubernetes.io/os"] = "linux";
  auto* toleration = spec->add_tolerations();
  toleration->set_key("node.kubernetes.io/not-ready");
  toleration->set_operator_("Exists");
  toleration->set_effect("NoExecute");
  toleration->set_toleration_seconds(300);

  auto* c = spec->add_containers();
  c->set_name("checkout");
  c->set_image("registry.example.com/shop/checkout:v1.24.3");
  c->set_image_pull_policy("IfNotPresent");
  c->add_command("/usr/local/bin/checkout");
  c->add_args("--listen=:8080");
  c->add_args("--metrics-listen=:9090");
  c->add_args("--log-level=info");
  auto* port = c->add_ports();
  port->set_name("http");
  port->set_container_port(8080);
  port->set_protocol("TCP");
  port = c->add_ports();
  port->set_name("metrics");
  port->set_container_port(9090);
  port->set_protocol("TCP");
  auto& requests = *c->mutable_resources()->mutable_requests();
  requests["cpu"].set_string("250m");
  requests["memory"].set_string("256Mi");
  auto& limits = *c->mutable_resources()->mutable_limits();
  limits["cpu"].set_string("1");
  limits["memory"].set_string("512Mi");
  auto* probe = c->mutable_readiness_probe();
  probe->mutable_http_get()->set_path("/healthz");
  probe->mutable_http_get()->mutable_port()->set_int_val(8080);
  probe->set_period_seconds(5);
  probe->set_failure_threshold(3);
  const char* const kEnv[][2] = {
      {"DATABASE_HOST", "postgres.shop.svc.cluster.local"},
      {"DATABASE_PORT", "5432"},
      {"CACHE_URL", "redis://redis.shop.svc.cluster.local:6379/0"},
      {"PAYMENTS_ENDPOINT", "https://payments.shop.svc.cluster.local:8443/v2"},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4317"},
      {"LOG_FORMAT", "json"},
      {"FEATURE_FLAGS", "new-cart,fast-checkout,async-receipts"},
  };
  for (const auto& env : kEnv) {
    auto* e = c->add_env();
    e->set_name(env[0]);
    e->set_value(env[1]);
  }
  for (int i = 0; pod.ByteSizeLong() < 1000; ++i) {
    auto* e = c->add_env();
    e->set_name(absl::StrCat("EXTRA_SETTING_", i));
    e->set_value("enabled");
  }
  return pod;
}

// The pod ns/name, stamped with the current time as its send time.
std::string EncodePod(const Pod& tmpl, const std::string& ns, const std::string& name,
                      int shard) {
  Pod pod = tmpl;
  ObjectMeta* meta = pod.mutable_metadata();
  meta->set_namespace_(ns);
  meta->set_name(name);
  (*meta->mutable_labels())["shard"] = absl::StrCat(shard);
  (*meta->mutable_annotations())[kSentAnnotation] = absl::StrCat(NowNs());
  return pod.SerializeAsString();
}

absl::Status CreateClusterObject(Stub* stub, const std::string& resource,
                                 const google::protobuf::Message& object, const std::string& name) {
  apiv1::CreateRequest request;
  request.mutable_resource()->set_version("v1");
  request.mutable_resource()->set_resource(resource);
  request.set_object(object.SerializeAsString());
  apiv1::ObjectResponse response;
  grpc::ClientContext context;
  SetTimeout(&context);
  grpc::Status status = stub->Create(&context, request, &response);
  if (status.ok() || status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat("creating ", resource, " ", name, ": ", Describe(status)));
}

absl::Status CreateNamespace(Stub* stub, const std::string& name) {
  capstan::core::v1::Namespace ns;
  ns.set_api_version("v1");
  ns.set_kind("Namespace");
  ns.mutable_metadata()->set_name(name);
  return CreateClusterObject(stub, "namespaces", ns, name);
}

grpc::Status CreatePod(Stub* stub, const Pod& tmpl, const std::string& ns,
                       const std::string& name, apiv1::ObjectResponse* response) {
  apiv1::CreateRequest request;
  *request.mutable_resource() = PodsIn(ns);
  request.set_encoding(apiv1::PROTOBUF);
  request.set_object(EncodePod(tmpl, ns, name, 0));
  grpc::ClientContext context;
  SetTimeout(&context);
  return stub->Create(&context, request, response);
}

void InvokeCreate(Stub* stub, grpc::ClientContext* context, const apiv1::CreateRequest* request,
                  apiv1::ObjectResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->Create(context, request, response, std::move(done));
}
void InvokeGet(Stub* stub, grpc::ClientContext* context, const apiv1::GetRequest* request,
               apiv1::ObjectResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->Get(context, request, response, std::move(done));
}
void InvokeList(Stub* stub, grpc::ClientContext* context, const apiv1::ListRequest* request,
                apiv1::ListResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->List(context, request, response, std::move(done));
}

// Creates pods named prefix + seq in ns, shard label seq % 10, as a closed loop.
LoadResult CreatePods(const Connections& connections, int clients, int clients_per_channel,
                      int64_t count, absl::Duration max_time, const Pod& tmpl,
                      const std::string& ns, const std::string& prefix) {
  ClosedLoop<apiv1::Resources, apiv1::CreateRequest, apiv1::ObjectResponse> loop(
      connections, clients, clients_per_channel, count, max_time,
      [&](int64_t seq, apiv1::CreateRequest* request) {
        *request->mutable_resource() = PodsIn(ns);
        request->set_encoding(apiv1::PROTOBUF);
        request->set_object(
            EncodePod(tmpl, ns, absl::StrFormat("%s%06d", prefix, seq), static_cast<int>(seq % 10)));
      },
      InvokeCreate);
  return loop.Run();
}

LoadResult GetPods(const Connections& connections, int clients, int clients_per_channel,
                   int64_t count, absl::Duration max_time, const std::string& ns, int pods) {
  ClosedLoop<apiv1::Resources, apiv1::GetRequest, apiv1::ObjectResponse> loop(
      connections, clients, clients_per_channel, count, max_time,
      [&](int64_t seq, apiv1::GetRequest* request) {
        *request->mutable_resource() = PodsIn(ns);
        request->set_encoding(apiv1::PROTOBUF);
        request->set_name(absl::StrFormat("p-%06d", (seq * 7919) % pods));
      },
      InvokeGet);
  return loop.Run();
}

LoadResult ListPods(const Connections& connections, int clients, int clients_per_channel,
                    int64_t count, absl::Duration max_time, const std::string& ns,
                    const std::string& label_selector, const std::string& resource_version,
                    ResponseSize* size) {
  ClosedLoop<apiv1::Resources, apiv1::ListRequest, apiv1::ListResponse> loop(
      connections, clients, clients_per_channel, count, max_time,
      [&](int64_t, apiv1::ListRequest* request) {
        *request->mutable_resource() = PodsIn(ns);
        request->set_encoding(apiv1::PROTOBUF);
        request->set_label_selector(label_selector);
        request->set_resource_version(resource_version);
      },
      [size](Stub* stub, grpc::ClientContext* context, const apiv1::ListRequest* request,
             apiv1::ListResponse* response, std::function<void(grpc::Status)> done) {
        InvokeList(stub, context, request, response,
                   [size, response, done = std::move(done)](grpc::Status status) {
                     if (status.ok()) {
                       size->items = response->items_size();
                       size->bytes = static_cast<int64_t>(response->ByteSizeLong());
                     }
                     done(std::move(status));
                   });
      });
  return loop.Run();
}

// ---------------------------------------------------------------------------------------------
// Watch fan-out

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

Phase PhaseOf(const std::string& name) {
  if (absl::StartsWith(name, "s-")) return kSteady;
  if (absl::StartsWith(name, "b-")) return kBurst;
  return kWarmup;
}

void PhaseStats::Merge(const PhaseStats& other) {
  latency.Merge(other.latency);
  events += other.events;
  last_ns = std::max(last_ns, other.last_ns);
}

void WatchGroup::Finished() {
  absl::MutexLock lock(&mu_);
  ++finished_;
}

int WatchGroup::finished() {
  absl::MutexLock lock(&mu_);
  return finished_;
}

bool WatchGroup::WaitAll(int total, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  total_ = total;
  return mu_.AwaitWithTimeout(absl::Condition(this, &WatchGroup::AllFinished), timeout);
}

PhaseStats PodWatcher::Stats(Phase phase) {
  absl::MutexLock lock(&mu_);
  return phases_[phase];
}

int64_t PodWatcher::Events(Phase phase) {
  absl::MutexLock lock(&mu_);
  return phases_[phase].events;
}

std::vector<std::pair<int64_t, int64_t>> PodWatcher::Deliveries() {
  absl::MutexLock lock(&mu_);
  return deliveries_;
}

std::optional<grpc::Status> PodWatcher::EndedWith() {
  absl::MutexLock lock(&mu_);
  return ended_;
}

void PodWatcher::Record(const std::string& encoded_pod, int64_t now_ns) {
  absl::MutexLock lock(&mu_);
  meta_.Clear();
  if (!DecodeMeta(encoded_pod, &meta_)) return;
  PhaseStats& stats = phases_[PhaseOf(meta_.name())];
  ++stats.events;
  stats.last_ns = now_ns;
  const auto& annotations = meta_.annotations();
  int64_t sent_ns = 0;
  auto sent = annotations.find(kSentAnnotation);
  if (sent != annotations.end() && absl::SimpleAtoi(sent->second, &sent_ns)) {
    stats.latency.Record(now_ns - sent_ns);
  }
  int64_t write_index = 0;
  auto write = annotations.find(kWriteAnnotation);
  if (write != annotations.end() && absl::SimpleAtoi(write->second, &write_index)) {
    deliveries_.push_back({write_index, now_ns});
  }
}

void PodWatcher::Ended(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!ended_) ended_ = status;
}

void PodWatcher::Finished(const grpc::Status& status) {
  Ended(status);
  group_->Finished();
}

PodWatchReader::PodWatchReader(Stub* stub, const std::string& ns, WatchGroup* group)
    : PodWatcher(group) {
  *request_.mutable_resource() = PodsIn(ns);
  request_.set_encoding(apiv1::PROTOBUF);
  stub->async()->Watch(&context_, &request_, this);
  StartRead(&response_);
  StartCall();
}

void PodWatchReader::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended; OnDone follows
  const int64_t now = NowNs();
  for (const apiv1::WatchEvent& event : response_.events()) {
    if (event.type() == "ADDED" || event.type() == "MODIFIED") Record(event.object(), now);
  }
  StartRead(&response_);
}

WatcherSet::~WatcherSet() {
  for (auto& watcher : watchers_) watcher->Cancel();
  if (group_->WaitAll(size(), absl::Seconds(20))) return;
  // A reactor (and the group it reports to) must outlive its stream: leak them rather than
  // free what gRPC may still call.
  for (auto& watcher : watchers_) watcher.release();
  group_.release();
}

int WatcherSet::WarmUp(const std::function<grpc::Status(int)>& write, absl::Duration timeout,
                       std::string* first_error) {
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(timeout);
  int ready = 0;
  for (int i = 0; ready < size() && Clock::now() < deadline; ++i) {
    grpc::Status status = write(i);
    if (!status.ok() && first_error->empty()) *first_error = Describe(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ready = 0;
    for (auto& watcher : watchers_) ready += watcher->Events(kWarmup) > 0 ? 1 : 0;
  }
  return ready;
}

int64_t WatcherSet::Live() {
  int64_t live = 0;
  for (auto& watcher : watchers_) live += watcher->EndedWith() ? 0 : 1;
  return live;
}

PhaseStats WatcherSet::Drain(Phase phase, int64_t writes, absl::Duration timeout) {
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(timeout);
  while (Clock::now() < deadline) {
    int64_t events = 0;
    for (auto& watcher : watchers_) events += watcher->Events(phase);
    if (events >= writes * Live()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  PhaseStats total;
  for (auto& watcher : watchers_) total.Merge(watcher->Stats(phase));
  return total;
}

std::string WatcherSet::EndedStreams() {
  int ended = 0;
  std::string example;
  for (auto& watcher : watchers_) {
    if (std::optional<grpc::Status> s = watcher->EndedWith()) {
      ++ended;
      if (example.empty()) example = Describe(*s);
    }
  }
  if (ended == 0) return "";
  return absl::StrCat(ended, " of ", size(), " watch streams were ended by the server, e.g. ",
                      example);
}

}  // namespace capstan::bench
