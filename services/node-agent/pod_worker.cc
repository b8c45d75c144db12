#include "services/node-agent/pod_worker.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "lib/api/meta_time.h"
#include "lib/api/quantity.h"

namespace capstan::nodeagent {
namespace {

using capstan::core::v1::Container;
using capstan::core::v1::ContainerStateTerminated;
using capstan::core::v1::ContainerStatus;
using capstan::core::v1::Pod;
using capstan::core::v1::PodCondition;
using capstan::core::v1::PodStatus;

// A container that ran this long before exiting starts over with no crash-loop backoff.
constexpr absl::Duration kBackoffResetAfter = absl::Minutes(10);

ContainerStateTerminated TerminatedOf(const ContainerInfo& info, const std::string& scheme) {
  ContainerStateTerminated t;
  t.set_exit_code(info.exit_code);
  t.set_reason(info.reason.empty() ? (info.exit_code == 0 ? "Completed" : "Error") : info.reason);
  if (info.started_at != absl::InfinitePast()) *t.mutable_started_at() = api::ToMetaTime(info.started_at);
  if (info.finished_at != absl::InfinitePast()) *t.mutable_finished_at() = api::ToMetaTime(info.finished_at);
  t.set_container_id(absl::StrCat(scheme, "://", info.id));
  return t;
}

std::string LabelOr(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

// The value of an env var's valueFrom.fieldRef, for the fields Kubernetes' downward API offers.
std::string FieldRefValue(const Pod& pod, const std::string& path, const std::string& pod_ip,
                          const std::string& node_ip) {
  if (path == "metadata.name") return pod.metadata().name();
  if (path == "metadata.namespace") return pod.metadata().namespace_();
  if (path == "metadata.uid") return pod.metadata().uid();
  if (path == "spec.nodeName") return pod.spec().node_name();
  if (path == "spec.serviceAccountName") return pod.spec().service_account_name();
  if (path == "status.podIP") return pod_ip;
  if (path == "status.hostIP") return node_ip;
  return "";
}

void SetMin(absl::Duration* current, absl::Duration candidate) {
  candidate = std::max(candidate, absl::Milliseconds(1));
  if (*current == absl::ZeroDuration() || candidate < *current) *current = candidate;
}

}  // namespace

PodWorker::PodWorker(Runtime* runtime, PodNetwork* network, ProbeManager* probes,
                     PodWorkerOptions options)
    : runtime_(runtime), network_(network), probes_(probes), options_(std::move(options)) {}

std::string PodWorker::LogPath(const PodRecord& record, const std::string& container,
                               int restart) const {
  return absl::StrCat(options_.log_root, "/", record.ns, "_", record.name, "_", record.uid, "/",
                      container, "/", restart, ".log");
}

int PodWorker::CollectPodLogs(const std::set<std::string>& live) {
  if (options_.log_root.empty()) return 0;
  std::set<std::string> dead;
  int removed = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.log_root, error)) {
    const std::string name = entry.path().filename().string();
    const size_t underscore = name.rfind('_');
    if (underscore == std::string::npos || live.count(name.substr(underscore + 1)) > 0) continue;
    if (dead_log_dirs_.count(name) == 0) {
      dead.insert(name);  // Removed on the next pass if still not live.
      continue;
    }
    std::error_code ignored;
    if (std::filesystem::remove_all(entry.path(), ignored) != static_cast<std::uintmax_t>(-1)) {
      ++removed;
    }
  }
  dead_log_dirs_ = std::move(dead);
  return removed;
}

bool PodWorker::EnsureImage(const Container& spec, ContainerRecord* c, absl::Time now,
                            absl::Duration* requeue) {
  const std::string& image = spec.image();
  if (now < c->pull_retry_at) {
    c->waiting_reason = "ImagePullBackOff";
    c->waiting_message = absl::StrCat("Back-off pulling image \"", image, "\"");
    SetMin(requeue, c->pull_retry_at - now);
    return false;
  }
  absl::StatusOr<std::string> present = runtime_->ImageId(image);
  const std::string policy = spec.image_pull_policy().empty() ? "IfNotPresent" : spec.image_pull_policy();
  if (present.ok() && policy != "Always") {
    c->image_id = *present;
    return true;
  }
  if (policy == "Never") {
    c->waiting_reason = "ErrImageNeverPull";
    c->waiting_message = absl::StrCat("Container image \"", image,
                                      "\" is not present with pull policy of Never");
    return false;
  }
  absl::Status pulled = runtime_->PullImage(image);
  if (!pulled.ok()) {
    c->pull_backoff = c->pull_backoff == absl::ZeroDuration()
                          ? options_.pull_backoff_initial
                          : std::min(2 * c->pull_backoff, options_.pull_backoff_max);
    c->pull_retry_at = now + c->pull_backoff;
    c->waiting_reason = "ErrImagePull";
    c->waiting_message = absl::StrCat("Failed to pull image \"", image, "\": ", pulled.message());
    SetMin(requeue, c->pull_backoff);
    return false;
  }
  c->pull_backoff = absl::ZeroDuration();
  c->pull_retry_at = absl::InfinitePast();
  absl::StatusOr<std::string> id = runtime_->ImageId(image);
  c->image_id = id.ok() ? *id : "";
  return true;
}

absl::Status PodWorker::StartNew(const Pod& pod, int index, PodRecord* record) {
  const Container& spec = pod.spec().containers(index);
  ContainerRecord& c = record->containers[spec.name()];
  const std::string pod_ip = record->network ? record->network->ip : "";

  ContainerConfig config;
  config.id = absl::StrCat(record->uid, "-", index, "-", c.restart_count);
  config.image = spec.image();
  config.command.assign(spec.command().begin(), spec.command().end());
  config.args.assign(spec.args().begin(), spec.args().end());
  for (const auto& env : spec.env()) {
    std::string value = env.value();
    if (env.has_value_from() && env.value_from().has_field_ref()) {
      value = FieldRefValue(pod, env.value_from().field_ref().field_path(), pod_ip, options_.node_ip);
    }
    config.env.emplace_back(env.name(), value);
  }
  config.working_dir = spec.working_dir();
  config.hostname = pod.metadata().name().substr(0, 63);
  config.netns_path = record->network ? record->network->netns_path : "";
  config.log_path = LogPath(*record, spec.name(), c.restart_count);
  const auto& limits = spec.resources().limits();
  if (auto it = limits.find("cpu"); it != limits.end()) {
    absl::StatusOr<int64_t> milli = api::ParseQuantityMilli(it->second.string());
    if (milli.ok()) config.cpu_limit_millis = *milli;
  }
  if (auto it = limits.find("memory"); it != limits.end()) {
    absl::StatusOr<int64_t> bytes = api::ParseQuantityValue(it->second.string());
    if (bytes.ok()) config.memory_limit_bytes = *bytes;
  }
  config.labels = {{kLabelPodUid, record->uid},
                   {kLabelPodNamespace, record->ns},
                   {kLabelPodName, record->name},
                   {kLabelContainerName, spec.name()},
                   {kLabelRestartCount, absl::StrCat(c.restart_count)}};

  if (!options_.log_root.empty()) {
    std::error_code ignored;
    std::filesystem::create_directories(std::filesystem::path(config.log_path).parent_path(), ignored);
  }
  absl::Status created = runtime_->CreateContainer(config);
  if (absl::IsAlreadyExists(created)) {
    // Left by a sync that failed between create and start: start over.
    runtime_->RemoveContainer(config.id).IgnoreError();
    created = runtime_->CreateContainer(config);
  }
  if (!created.ok()) return created;
  c.id = config.id;
  c.waiting_reason.clear();
  c.waiting_message.clear();
  return runtime_->StartContainer(config.id);
}

ContainerStatus PodWorker::ContainerStatusOf(const Container& spec, const ContainerRecord& c,
                                             const std::optional<ContainerInfo>& info,
                                             bool restarting) {
  ContainerStatus cs;
  cs.set_name(spec.name());
  cs.set_image(spec.image());
  cs.set_image_id(c.image_id);
  cs.set_restart_count(c.restart_count);
  cs.set_started(false);
  if (c.last_termination) *cs.mutable_last_state()->mutable_terminated() = *c.last_termination;
  if (!info || info->state == ContainerState::kCreated || info->state == ContainerState::kUnknown) {
    auto* waiting = cs.mutable_state()->mutable_waiting();
    waiting->set_reason(c.waiting_reason.empty() ? "ContainerCreating" : c.waiting_reason);
    waiting->set_message(c.waiting_message);
    if (info) cs.set_container_id(absl::StrCat(options_.runtime_scheme, "://", info->id));
    return cs;
  }
  cs.set_container_id(absl::StrCat(options_.runtime_scheme, "://", info->id));
  if (info->state == ContainerState::kRunning) {
    *cs.mutable_state()->mutable_running()->mutable_started_at() = api::ToMetaTime(info->started_at);
    cs.set_started(true);
    cs.set_ready(probes_ == nullptr || probes_->Ready(info->id));
    return cs;
  }
  ContainerStateTerminated terminated = TerminatedOf(*info, options_.runtime_scheme);
  if (restarting) {
    auto* waiting = cs.mutable_state()->mutable_waiting();
    waiting->set_reason("CrashLoopBackOff");
    waiting->set_message(absl::StrCat("back-off ", absl::FormatDuration(c.crash_backoff),
                                      " restarting failed container=", spec.name(), " pod=",
                                      LabelOr(info->labels, kLabelPodName), "_",
                                      LabelOr(info->labels, kLabelPodNamespace), "(",
                                      LabelOr(info->labels, kLabelPodUid), ")"));
    *cs.mutable_last_state()->mutable_terminated() = terminated;
  } else {
    *cs.mutable_state()->mutable_terminated() = terminated;
  }
  return cs;
}

SyncResult PodWorker::SyncPod(const Pod& pod, PodRecord* record) {
  const absl::Time now = options_.clock->Now();
  SyncResult result;
  absl::Duration& requeue = result.requeue_after;
  record->uid = pod.metadata().uid();
  record->ns = pod.metadata().namespace_();
  record->name = pod.metadata().name();
  if (record->start_time == absl::InfinitePast()) {
    record->start_time = pod.status().has_start_time() ? api::FromMetaTime(pod.status().start_time()) : now;
  }

  std::string network_error;
  if (!record->network && !record->terminal && network_ != nullptr) {
    absl::StatusOr<PodNetworkStatus> net = network_->SetUp(record->uid);
    if (net.ok()) {
      record->network = *net;
    } else {
      network_error = absl::StrCat("failed to set up the pod network: ", net.status().message());
      SetMin(&requeue, absl::Seconds(2));
    }
  }
  const bool network_ready = network_ == nullptr || record->network.has_value();
  const std::string pod_ip = record->network ? record->network->ip : "";
  const std::string policy = pod.spec().restart_policy().empty() ? "Always" : pod.spec().restart_policy();
  const absl::Duration grace = absl::Seconds(
      pod.spec().has_termination_grace_period_seconds() ? pod.spec().termination_grace_period_seconds() : 30);

  std::vector<ContainerStatus> statuses;
  for (int i = 0; i < pod.spec().containers_size(); ++i) {
    const Container& spec = pod.spec().containers(i);
    ContainerRecord& c = record->containers[spec.name()];
    if (!c.last_termination && c.restart_count > 0) {
      // After an agent restart: what the API last showed.
      for (const auto& old : pod.status().container_statuses()) {
        if (old.name() == spec.name() && old.last_state().has_terminated()) {
          c.last_termination = old.last_state().terminated();
        }
      }
    }
    std::optional<ContainerInfo> info;
    if (!c.id.empty()) {
      absl::StatusOr<ContainerInfo> inspected = runtime_->InspectContainer(c.id);
      if (inspected.ok()) {
        info = *inspected;
      } else if (absl::IsNotFound(inspected.status())) {
        c.id.clear();  // gone from the runtime (removed by hand): make a new one
      } else {
        SetMin(&requeue, absl::Seconds(1));
      }
    }
    if (info && info->state == ContainerState::kUnknown) {
      // Its process is gone without an exit status (containerd's state lost in a reboot, or its
      // task deleted): Kubernetes' ContainerStatusUnknown, an exit like any other from here on,
      // so the restart policy decides what happens next.
      info->state = ContainerState::kExited;
      info->exit_code = 137;
      info->reason = "ContainerStatusUnknown";
      // A time that does not move between syncs, so that a crash-loop backoff can run out.
      if (info->started_at == absl::InfinitePast()) info->started_at = info->created_at;
      info->finished_at = info->started_at;
    }
    if (info && info->state == ContainerState::kCreated && info->started_at == absl::InfinitePast() &&
        !record->terminal) {
      // Created but never started (the agent stopped in between): start it now.
      if (runtime_->StartContainer(c.id).ok()) {
        absl::StatusOr<ContainerInfo> started = runtime_->InspectContainer(c.id);
        if (started.ok()) info = *started;
      }
    }

    if (info && info->state == ContainerState::kRunning && probes_ != nullptr) {
      probes_->Add(record->uid, c.id, spec, pod_ip, info->started_at);
      std::string why;
      if (probes_->LivenessFailed(c.id, &why)) {
        // Kubernetes: "Container X failed liveness probe, will be restarted".
        runtime_->StopContainer(c.id, grace).IgnoreError();
        absl::StatusOr<ContainerInfo> after = runtime_->InspectContainer(c.id);
        if (after.ok()) info = *after;
      }
    }

    auto should_restart = [&](const ContainerInfo& exited) {
      return !record->terminal && (policy == "Always" || (policy == "OnFailure" && exited.exit_code != 0));
    };
    bool restarting = false;
    if (info && info->state == ContainerState::kExited) {
      if (probes_ != nullptr) probes_->Remove(c.id);
      if (should_restart(*info)) {
        if (info->finished_at - info->started_at >= kBackoffResetAfter) c.crash_backoff = absl::ZeroDuration();
        const absl::Time restart_at = info->finished_at + c.crash_backoff;
        if (now >= restart_at && network_ready) {
          c.last_termination = TerminatedOf(*info, options_.runtime_scheme);
          runtime_->RemoveContainer(c.id).IgnoreError();
          c.id.clear();
          ++c.restart_count;
          c.crash_backoff = c.crash_backoff == absl::ZeroDuration()
                                ? options_.crash_backoff_initial
                                : std::min(2 * c.crash_backoff, options_.crash_backoff_max);
          info.reset();
        } else {
          restarting = true;
          SetMin(&requeue, restart_at - now);
        }
      }
    }

    if (c.id.empty() && !record->terminal) {
      if (!network_ready) {
        c.waiting_reason = "ContainerCreating";
        c.waiting_message = network_error;
      } else if (EnsureImage(spec, &c, now, &requeue)) {
        absl::Status started = StartNew(pod, i, record);
        if (!started.ok()) {
          c.waiting_reason = "RunContainerError";
          c.waiting_message = std::string(started.message());
          SetMin(&requeue, options_.crash_backoff_initial);
        }
        if (!c.id.empty()) {
          absl::StatusOr<ContainerInfo> inspected = runtime_->InspectContainer(c.id);
          if (inspected.ok()) info = *inspected;
          if (info && info->state == ContainerState::kExited && should_restart(*info)) {
            // It exited before this sync was over (`exit 1` at once). Reported as terminated, an
            // OnFailure pod would turn Failed for good; it is waiting for its restart instead,
            // which the next sync does like for any other exit.
            restarting = true;
            SetMin(&requeue, info->finished_at + c.crash_backoff - now);
          }
        }
      }
    }
    if (info && info->state == ContainerState::kCreated) SetMin(&requeue, absl::Seconds(1));
    statuses.push_back(ContainerStatusOf(spec, c, info, restarting));
  }

  PodStatus& status = result.status;
  status.set_phase(PodPhase(pod.spec(), statuses));
  if (status.phase() == "Succeeded" || status.phase() == "Failed") {
    if (!record->terminal && network_ != nullptr) {
      // Nothing will run in it again: give the address back (kubelet stops the pod's sandbox).
      network_->TearDown(record->uid).IgnoreError();
    }
    record->terminal = true;
  }
  status.set_host_ip(options_.node_ip);
  if (!options_.node_ip.empty()) status.add_host_ips()->set_ip(options_.node_ip);
  if (!pod_ip.empty()) {
    status.set_pod_ip(pod_ip);
    status.add_pod_ips()->set_ip(pod_ip);
  } else if (!pod.status().pod_ip().empty()) {
    status.set_pod_ip(pod.status().pod_ip());  // kept after a terminal pod released its address
    *status.mutable_pod_ips() = pod.status().pod_ips();
  }
  *status.mutable_start_time() = api::ToMetaTime(record->start_time);
  status.set_qos_class(pod.status().qos_class());
  status.set_nominated_node_name(pod.status().nominated_node_name());
  for (auto& cs : statuses) *status.add_container_statuses() = std::move(cs);
  SetPodConditions(pod.status(), now, &status);
  return result;
}

absl::Status PodWorker::KillPod(PodRecord* record, absl::Duration grace) {
  std::vector<std::string> ids;
  for (auto& [name, c] : record->containers) {
    if (!c.id.empty()) ids.push_back(c.id);
  }
  // All containers get SIGTERM at once and share the one grace period, as in Kubernetes.
  std::vector<absl::Status> stopped(ids.size());
  std::vector<std::thread> stoppers;
  for (size_t i = 0; i < ids.size(); ++i) {
    stoppers.emplace_back([&, i] { stopped[i] = runtime_->StopContainer(ids[i], grace); });
  }
  for (auto& t : stoppers) t.join();
  absl::Status result;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (probes_ != nullptr) probes_->Remove(ids[i]);
    if (!stopped[i].ok()) result.Update(stopped[i]);
    absl::Status removed = runtime_->RemoveContainer(ids[i]);
    if (!removed.ok()) result.Update(removed);
  }
  if (result.ok()) {
    for (auto& [name, c] : record->containers) c.id.clear();
  }
  if (network_ != nullptr) result.Update(network_->TearDown(record->uid));
  if (result.ok()) record->network.reset();
  return result;
}

std::map<std::string, PodRecord> PodWorker::Adopt(const std::vector<ContainerInfo>& containers) {
  std::map<std::string, PodRecord> records;
  for (const ContainerInfo& info : containers) {
    const std::string uid = LabelOr(info.labels, kLabelPodUid);
    const std::string name = LabelOr(info.labels, kLabelContainerName);
    if (uid.empty() || name.empty()) continue;  // not made by a node agent
    PodRecord& r = records[uid];
    r.uid = uid;
    r.ns = LabelOr(info.labels, kLabelPodNamespace);
    r.name = LabelOr(info.labels, kLabelPodName);
    int restart = 0;
    if (!absl::SimpleAtoi(LabelOr(info.labels, kLabelRestartCount), &restart)) restart = 0;
    ContainerRecord& c = r.containers[name];
    if (c.id.empty() || restart >= c.restart_count) {
      c.id = info.id;
      c.restart_count = restart;
    }
  }
  return records;
}

std::string PodPhase(const capstan::core::v1::PodSpec& spec,
                     const std::vector<ContainerStatus>& statuses) {
  int pending = 0, running = 0, stopped = 0, succeeded = 0;
  for (const ContainerStatus& cs : statuses) {
    if (cs.state().has_running()) {
      ++running;
    } else if (cs.state().has_terminated()) {
      ++stopped;
      if (cs.state().terminated().exit_code() == 0) ++succeeded;
    } else if (cs.last_state().has_terminated()) {
      ++stopped;  // waiting to restart: it has run
      if (cs.last_state().terminated().exit_code() == 0) ++succeeded;
    } else {
      ++pending;
    }
  }
  const std::string policy = spec.restart_policy().empty() ? "Always" : spec.restart_policy();
  if (pending > 0) return "Pending";
  if (running > 0) return "Running";
  if (stopped == 0) return "Pending";
  // Everything has stopped.
  if (policy == "Always") return "Running";  // restarting
  if (stopped == succeeded) return "Succeeded";
  if (policy == "Never") return "Failed";
  // OnFailure: failed containers restart, unless they are all done.
  for (const ContainerStatus& cs : statuses) {
    if (!cs.state().has_terminated()) return "Running";
  }
  return "Failed";
}

void SetPodConditions(const PodStatus& old, absl::Time now, PodStatus* status) {
  const bool done = status->phase() == "Succeeded" || status->phase() == "Failed";
  std::vector<std::string> unready;
  for (const auto& cs : status->container_statuses()) {
    if (!cs.ready()) unready.push_back(cs.name());
  }
  auto make = [&](const std::string& type, bool ok, const std::string& reason,
                  const std::string& message) {
    PodCondition c;
    c.set_type(type);
    c.set_status(ok ? "True" : "False");
    if (!ok) {
      c.set_reason(reason);
      c.set_message(message);
    }
    *c.mutable_last_transition_time() = api::ToMetaTime(now);
    for (const PodCondition& o : old.conditions()) {
      if (o.type() == type && o.status() == c.status()) *c.mutable_last_transition_time() = o.last_transition_time();
    }
    return c;
  };
  const std::string unready_message =
      absl::StrCat("containers with unready status: [", absl::StrJoin(unready, " "), "]");
  const std::string reason = done ? "PodCompleted" : "ContainersNotReady";
  const std::string message = done ? "" : unready_message;

  // Keep what others set (the scheduler's PodScheduled, a controller's DisruptionTarget, ...).
  bool scheduled = false;
  for (const PodCondition& o : old.conditions()) {
    if (o.type() == "Initialized" || o.type() == "ContainersReady" || o.type() == "Ready") continue;
    if (o.type() == "PodScheduled") scheduled = true;
    *status->add_conditions() = o;
  }
  if (!scheduled) *status->add_conditions() = make("PodScheduled", true, "", "");
  *status->add_conditions() = make("Initialized", true, "", "");
  *status->add_conditions() = make("ContainersReady", !done && unready.empty(), reason, message);
  *status->add_conditions() = make("Ready", !done && unready.empty(), reason, message);
}

bool StatusChanged(const PodStatus& a, const PodStatus& b) {
  return !google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace capstan::nodeagent
