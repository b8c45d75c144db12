#include "services/node-agent/node_status.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/api/errors.h"
#include "lib/api/meta_time.h"
#include "proto/coordination_v1.pb.h"

namespace capstan::nodeagent {
namespace {

using capstan::core::v1::Node;
using capstan::core::v1::NodeCondition;
using capstan::core::v1::NodeStatus;
using google::protobuf::util::MessageDifferencer;

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

std::string OsImage() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest(line);
    if (absl::ConsumePrefix(&rest, "PRETTY_NAME=")) {
      return std::string(absl::StripSuffix(absl::StripPrefix(rest, "\""), "\""));
    }
  }
  return "Linux";
}

std::string CpuQuantity(int64_t millis) {
  return millis % 1000 == 0 ? absl::StrCat(millis / 1000) : absl::StrCat(millis, "m");
}

}  // namespace

Node DesiredNode(const NodeConfig& config, const std::string& runtime_version,
                 const absl::Status& runtime_health, absl::Time now) {
  Node node;
  node.set_api_version("v1");
  node.set_kind("Node");
  auto* meta = node.mutable_metadata();
  meta->set_name(config.name);
  auto& labels = *meta->mutable_labels();
  labels["kubernetes.io/hostname"] = config.name;
  labels["kubernetes.io/os"] = "linux";
  labels["kubernetes.io/arch"] = "amd64";
  labels["beta.kubernetes.io/os"] = "linux";
  labels["beta.kubernetes.io/arch"] = "amd64";
  for (const auto& [k, v] : config.labels) labels[k] = v;
  if (!config.pod_cidr.empty()) {
    node.mutable_spec()->set_pod_cidr(config.pod_cidr);
    node.mutable_spec()->add_pod_cidrs(config.pod_cidr);
  }

  NodeStatus* status = node.mutable_status();
  const int64_t cpu = config.cpu_millis > 0 ? config.cpu_millis : sysconf(_SC_NPROCESSORS_ONLN) * 1000;
  const int64_t memory = config.memory_bytes > 0
                             ? config.memory_bytes
                             : static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  for (auto* list : {status->mutable_capacity(), status->mutable_allocatable()}) {
    (*list)["cpu"].set_string(CpuQuantity(cpu));
    (*list)["memory"].set_string(absl::StrCat(memory / 1024, "Ki"));
    (*list)["pods"].set_string(absl::StrCat(config.max_pods));
  }
  if (!config.ip.empty()) {
    auto* a = status->add_addresses();
    a->set_type("InternalIP");
    a->set_address(config.ip);
  }
  auto* host = status->add_addresses();
  host->set_type("Hostname");
  host->set_address(config.name);
  if (config.agent_port > 0) {
    status->mutable_daemon_endpoints()->mutable_kubelet_endpoint()->set_port(config.agent_port);
  }
  utsname uts{};
  uname(&uts);
  auto* info = status->mutable_node_info();
  info->set_machine_id(ReadFirstLine("/etc/machine-id"));
  info->set_system_uuid(info->machine_id());
  info->set_boot_id(ReadFirstLine("/proc/sys/kernel/random/boot_id"));
  info->set_kernel_version(uts.release);
  info->set_os_image(OsImage());
  info->set_container_runtime_version(runtime_version);
  info->set_kubelet_version("capstan-node-agent/v0.1");
  info->set_operating_system("linux");
  info->set_architecture("amd64");

  auto add = [&](const char* type, bool value, const char* reason, const std::string& message) {
    NodeCondition* c = status->add_conditions();
    c->set_type(type);
    c->set_status(value ? "True" : "False");
    c->set_reason(reason);
    c->set_message(message);
    *c->mutable_last_heartbeat_time() = api::ToMetaTime(now);
    *c->mutable_last_transition_time() = api::ToMetaTime(now);
  };
  add("MemoryPressure", false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available");
  add("DiskPressure", false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure");
  add("PIDPressure", false, "KubeletHasSufficientPID", "kubelet has sufficient PID available");
  if (runtime_health.ok()) {
    add("Ready", true, "KubeletReady", "kubelet is posting ready status");
  } else {
    add("Ready", false, "KubeletNotReady",
        absl::StrCat("container runtime is down: ", runtime_health.message()));
  }
  return node;
}

bool NodeStatusDiffers(const NodeStatus& current, const NodeStatus& desired) {
  if (current.conditions_size() != desired.conditions_size()) return true;
  for (const NodeCondition& want : desired.conditions()) {
    bool same = false;
    for (const NodeCondition& have : current.conditions()) {
      if (have.type() == want.type()) {
        same = have.status() == want.status() && have.reason() == want.reason() &&
               have.message() == want.message();
      }
    }
    if (!same) return true;
  }
  NodeStatus a = current, b = desired;
  a.clear_conditions();
  b.clear_conditions();
  a.clear_images();
  b.clear_images();
  return !MessageDifferencer::Equals(a, b);
}

NodeStatusReporter::NodeStatusReporter(client::Client* client, Runtime* runtime, NodeConfig config)
    : client_(client), runtime_(runtime), config_(std::move(config)) {}

NodeStatusReporter::~NodeStatusReporter() { Stop(); }

absl::Status NodeStatusReporter::Register() {
  absl::Status last;
  for (int attempt = 0; !stop_.HasBeenNotified(); ++attempt) {
    if (attempt > 0) stop_.WaitForNotificationWithTimeout(absl::Seconds(std::min(attempt, 5)));
    absl::StatusOr<std::string> version = runtime_->Version();
    Node desired = DesiredNode(config_, version.ok() ? *version : "unknown", runtime_->Healthy(), absl::Now());
    absl::StatusOr<Node> created = client_->Create(desired);
    if (!created.ok() && api::Reason(created.status()) != "AlreadyExists") {
      last = created.status();
      fprintf(stderr, "capstan-node-agent: registering node %s: %s\n", config_.name.c_str(),
              std::string(last.message()).c_str());
      continue;
    }
    last = ReportStatus(absl::Now(), /*force=*/true);
    if (last.ok()) last = RenewLease(absl::Now());
    if (last.ok()) return last;
    fprintf(stderr, "capstan-node-agent: node %s status: %s\n", config_.name.c_str(),
            std::string(last.message()).c_str());
  }
  return last.ok() ? absl::CancelledError("stopped before the node registered") : last;
}

absl::Status NodeStatusReporter::ReportStatus(absl::Time now, bool force) {
  absl::StatusOr<Node> current = client_->Get<Node>("", config_.name);
  if (!current.ok()) return current.status();
  absl::StatusOr<std::string> version = runtime_->Version();
  Node desired = DesiredNode(config_, version.ok() ? *version : "unknown", runtime_->Healthy(), now);
  const bool due = now - last_report_ >= config_.status_report_interval;
  if (!force && !due && !NodeStatusDiffers(current->status(), desired.status())) return absl::OkStatus();
  // Conditions that keep their status keep their lastTransitionTime.
  for (auto& want : *desired.mutable_status()->mutable_conditions()) {
    for (const auto& have : current->status().conditions()) {
      if (have.type() == want.type() && have.status() == want.status()) {
        *want.mutable_last_transition_time() = have.last_transition_time();
      }
    }
  }
  Node updated = *current;
  *updated.mutable_status() = desired.status();
  *updated.mutable_status()->mutable_images() = current->status().images();
  absl::StatusOr<Node> written = client_->UpdateStatus(updated);
  if (!written.ok()) return written.status();
  node_uid_ = written->metadata().uid();
  last_report_ = now;
  return absl::OkStatus();
}

absl::Status NodeStatusReporter::RenewLease(absl::Time now) {
  using capstan::coordination::v1::Lease;
  absl::StatusOr<Lease> lease = client_->Get<Lease>(kNodeLeaseNamespace, config_.name);
  if (!lease.ok() && api::Reason(lease.status()) != "NotFound") return lease.status();
  Lease next;
  if (lease.ok()) {
    next = *lease;
  } else {
    next.mutable_metadata()->set_name(config_.name);
    next.mutable_metadata()->set_namespace_(kNodeLeaseNamespace);
    if (!node_uid_.empty()) {
      // Owned by the Node, so that the garbage collector removes it with the Node.
      auto* owner = next.mutable_metadata()->add_owner_references();
      owner->set_api_version("v1");
      owner->set_kind("Node");
      owner->set_name(config_.name);
      owner->set_uid(node_uid_);
    }
  }
  next.mutable_spec()->set_holder_identity(config_.name);
  next.mutable_spec()->set_lease_duration_seconds(
      static_cast<int32_t>(absl::ToInt64Seconds(config_.lease_duration)));
  *next.mutable_spec()->mutable_renew_time() = api::ToMicroTime(now);
  absl::StatusOr<Lease> written = lease.ok() ? client_->Update(next) : client_->Create(next);
  return written.status();
}

absl::Status NodeStatusReporter::Heartbeat() {
  const absl::Time now = absl::Now();
  absl::Status lease = RenewLease(now);
  absl::Status status = ReportStatus(now, /*force=*/false);
  return lease.ok() ? status : lease;
}

void NodeStatusReporter::Start() {
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(config_.renew_interval)) {
      absl::Status beat = Heartbeat();
      if (!beat.ok()) {
        fprintf(stderr, "capstan-node-agent: heartbeat of %s: %s\n", config_.name.c_str(),
                std::string(beat.message()).c_str());
      }
    }
  });
}

void NodeStatusReporter::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace capstan::nodeagent
