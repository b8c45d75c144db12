#include "bench/pods.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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

absl::Status CreateNamespace(Stub* stub, const std::string& name) {
  capstan::core::v1::Namespace ns;
  ns.set_api_version("v1");
  ns.set_kind("Namespace");
  ns.mutable_metadata()->set_name(name);
  apiv1::CreateRequest request;
  request.mutable_resource()->set_version("v1");
  request.mutable_resource()->set_resource("namespaces");
  request.set_object(ns.SerializeAsString());
  apiv1::ObjectResponse response;
  grpc::ClientContext context;
  SetTimeout(&context);
  grpc::Status status = stub->Create(&context, request, &response);
  if (status.ok() || status.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return absl::OkStatus();
  }
  return absl::InternalError(absl::StrCat("creating namespace ", name, ": ", Describe(status)));
}

void InvokeCreate(Stub* stub, grpc::ClientContext* context, const apiv1::CreateRequest* request,
                  apiv1::ObjectResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->Create(context, request, response, std::move(done));
}
void InvokeGet(Stub* stub, grpc::ClientContext* context, const apiv1::GetRequest* request,
               apiv1::ObjectResponse* response, std::function<void(grpc::Status)> done) {
  stub->async()->Get(context, request, response, std::move(done));
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

}  // namespace capstan::bench
