#include "services/node-agent/agent.h"

#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/api/errors.h"

namespace capstan::nodeagent {
namespace {

using capstan::core::v1::Pod;

// Container ids are "<pod uid>-<index>-<restart>" (PodWorker::StartNew): the uid is what comes
// before the last two dashes.
std::string PodUidOfContainer(const std::string& id) {
  size_t last = id.rfind('-');
  if (last == std::string::npos || last == 0) return "";
  size_t second = id.rfind('-', last - 1);
  return second == std::string::npos ? "" : id.substr(0, second);
}

int64_t ResourceVersionOf(const Pod& pod) {
  int64_t rv = 0;
  return absl::SimpleAtoi(pod.metadata().resource_version(), &rv) ? rv : 0;
}

}  // namespace

NodeAgent::NodeAgent(client::Client* client, Runtime* runtime, PodNetwork* network,
                     NodeAgentOptions options)
    : client_(client), runtime_(runtime), network_(network), options_(std::move(options)) {
  options_.worker.node_ip = options_.node.ip;
  probes_ = std::make_unique<ProbeManager>(
      runtime_, [this](const std::string& uid) { queue_.Add(uid); }, options_.probe_threads,
      options_.worker.clock);
  worker_ = std::make_unique<PodWorker>(runtime_, network_, probes_.get(), options_.worker);
  reporter_ = std::make_unique<NodeStatusReporter>(client_, runtime_, options_.node);
}

NodeAgent::~NodeAgent() { Stop(); }

absl::Status NodeAgent::Start() {
  runtime_->SetExitHandler([this](const std::string& id) {
    std::string uid = PodUidOfContainer(id);
    if (!uid.empty()) queue_.Add(uid);
  });
  absl::Status registered = reporter_->Register();
  if (!registered.ok()) return registered;
  Adopt();

  absl::StatusOr<const api::ResourceInfo*> pods = client::ResourceFor(Pod::descriptor());
  if (!pods.ok()) return pods.status();
  client::InformerOptions informer_options;
  informer_options.field_selector = absl::StrCat("spec.nodeName=", options_.node.name);
  informer_ = std::make_unique<client::SharedIndexInformer>(client_, **pods, informer_options);
  client::ResourceEventHandler handler;
  handler.on_add = [this](const client::Object& o) { OnPod(o, false); };
  handler.on_update = [this](const client::Object&, const client::Object& o) { OnPod(o, false); };
  handler.on_delete = [this](const client::Object& o) { OnPod(o, true); };
  informer_->AddEventHandler(std::move(handler));
  informer_thread_ = std::thread([this] { informer_->Run(); });
  while (!informer_->WaitForCacheSync(absl::Seconds(1))) {
    fprintf(stderr, "capstan-node-agent: %s: waiting for the pod cache\n", options_.node.name.c_str());
  }
  {
    // Adopted pods the API no longer has are cleaned up by their first sync.
    absl::MutexLock lock(&mu_);
    for (const auto& [uid, entry] : entries_) queue_.Add(uid);
  }
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { Work(); });
  if (!options_.worker.log_root.empty()) log_collector_ = std::thread([this] { CollectLogs(); });
  reporter_->Start();
  started_ = true;
  return absl::OkStatus();
}

void NodeAgent::Stop() {
  reporter_->Stop();
  if (informer_) informer_->Stop();
  if (informer_thread_.joinable()) informer_thread_.join();
  queue_.ShutDown();
  for (auto& t : workers_) t.join();
  workers_.clear();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (log_collector_.joinable()) log_collector_.join();
}

void NodeAgent::CollectLogs() {
  for (;;) {
    std::set<std::string> live;
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.log_gc_period)) return;
      for (const auto& [uid, entry] : entries_) live.insert(uid);
    }
    worker_->CollectPodLogs(live);
  }
}

void NodeAgent::Adopt() {
  absl::StatusOr<std::vector<ContainerInfo>> containers = runtime_->ListContainers();
  if (!containers.ok()) {
    fprintf(stderr, "capstan-node-agent: listing containers: %s\n",
            std::string(containers.status().message()).c_str());
    return;
  }
  std::map<std::string, PodRecord> records = PodWorker::Adopt(*containers);
  // Older instances of a container (a restart interrupted before the old one was removed) are
  // removed now: only the newest is the pod's.
  std::set<std::string> current;
  for (const auto& [uid, r] : records) {
    for (const auto& [name, c] : r.containers) current.insert(c.id);
  }
  for (const ContainerInfo& info : *containers) {
    if (info.labels.count(kLabelPodUid) > 0 && current.count(info.id) == 0) {
      runtime_->StopContainer(info.id, absl::ZeroDuration()).IgnoreError();
      runtime_->RemoveContainer(info.id).IgnoreError();
    }
  }
  absl::MutexLock lock(&mu_);
  for (auto& [uid, r] : records) entries_[uid].record = std::move(r);
  if (network_ != nullptr) {
    absl::StatusOr<std::vector<std::string>> netns = network_->ListPods();
    if (netns.ok()) {
      for (const std::string& uid : *netns) entries_[uid].record.uid = uid;
    }
  }
}

void NodeAgent::OnPod(const client::Object& object, bool deleted) {
  std::shared_ptr<const Pod> pod = client::ObjectAs<Pod>(object);
  if (pod == nullptr) return;
  const std::string& uid = pod->metadata().uid();
  {
    absl::MutexLock lock(&mu_);
    Entry& e = entries_[uid];
    if (e.pod == nullptr || ResourceVersionOf(*pod) >= ResourceVersionOf(*e.pod) || deleted) e.pod = pod;
    e.in_api = !deleted;
  }
  queue_.Add(uid);
}

void NodeAgent::Work() {
  while (std::optional<std::string> uid = queue_.Get()) {
    absl::Duration again = Sync(*uid);
    queue_.Done(*uid);
    if (again > absl::ZeroDuration()) queue_.AddAfter(*uid, again);
  }
}

absl::Duration NodeAgent::Sync(const std::string& uid) {
  Entry* entry;
  std::shared_ptr<const Pod> pod;
  bool in_api;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(uid);
    if (it == entries_.end()) return absl::ZeroDuration();
    entry = &it->second;  // std::map: stable; only this worker erases it
    pod = entry->pod;
    in_api = entry->in_api;
  }
  PodRecord& record = entry->record;
  if (record.uid.empty()) record.uid = uid;

  if (!in_api) {
    // Deleted from the API (or left from before a restart): stop what is left and forget it.
    absl::Duration grace = absl::Seconds(2);
    if (pod != nullptr && pod->metadata().has_deletion_grace_period_seconds()) {
      grace = absl::Seconds(pod->metadata().deletion_grace_period_seconds());
    }
    absl::Status killed = worker_->KillPod(&record, grace);
    if (!killed.ok()) {
      fprintf(stderr, "capstan-node-agent: cleaning up pod %s: %s\n", uid.c_str(),
              std::string(killed.message()).c_str());
      return absl::Seconds(1);
    }
    absl::MutexLock lock(&mu_);
    if (!entries_[uid].in_api) entries_.erase(uid);  // unless it came back meanwhile
    return absl::ZeroDuration();
  }

  if (pod->metadata().has_deletion_timestamp()) {
    const absl::Duration grace = absl::Seconds(pod->metadata().deletion_grace_period_seconds());
    absl::Status killed = worker_->KillPod(&record, grace);
    if (!killed.ok()) {
      fprintf(stderr, "capstan-node-agent: stopping pod %s/%s: %s\n",
              pod->metadata().namespace_().c_str(), pod->metadata().name().c_str(),
              std::string(killed.message()).c_str());
      return absl::Seconds(1);
    }
    // Everything is gone from the node: complete the delete. The uid precondition keeps a pod of
    // the same name made meanwhile from being deleted in its place.
    client::DeleteOptions options;
    options.grace_period_seconds = 0;
    options.precondition_uid = uid;
    absl::StatusOr<Pod> deleted =
        client_->Delete<Pod>(pod->metadata().namespace_(), pod->metadata().name(), options);
    const std::string reason = deleted.ok() ? "" : api::Reason(deleted.status());
    if (!deleted.ok() && reason != "NotFound" && reason != "Conflict") {
      fprintf(stderr, "capstan-node-agent: deleting pod %s/%s: %s\n",
              pod->metadata().namespace_().c_str(), pod->metadata().name().c_str(),
              std::string(deleted.status().message()).c_str());
      return absl::Seconds(1);
    }
    return absl::ZeroDuration();  // the informer's DELETED event forgets the entry
  }

  SyncResult result = worker_->SyncPod(*pod, &record);
  if (StatusChanged(pod->status(), result.status)) WriteStatus(entry, *pod, result.status, &result.requeue_after);
  return result.requeue_after;
}

void NodeAgent::WriteStatus(Entry* entry, const Pod& pod, const capstan::core::v1::PodStatus& status,
                            absl::Duration* requeue) {
  Pod updated = pod;
  *updated.mutable_status() = status;
  absl::StatusOr<Pod> written = client_->UpdateStatus(updated);
  if (written.ok()) {
    // Later syncs compare against what was written, not the informer's older copy.
    auto fresh = std::make_shared<const Pod>(std::move(*written));
    absl::MutexLock lock(&mu_);
    if (entry->pod == nullptr || ResourceVersionOf(*fresh) > ResourceVersionOf(*entry->pod)) {
      entry->pod = std::move(fresh);
    }
    return;
  }
  const std::string reason = api::Reason(written.status());
  if (reason == "NotFound") return;  // deleted meanwhile; the informer says so soon
  // Conflict: the pod changed; the informer brings the new version, and this sync runs again.
  if (reason != "Conflict") {
    fprintf(stderr, "capstan-node-agent: status of pod %s/%s: %s\n", pod.metadata().namespace_().c_str(),
            pod.metadata().name().c_str(), std::string(written.status().message()).c_str());
  }
  *requeue = *requeue == absl::ZeroDuration() ? absl::Milliseconds(200)
                                              : std::min(*requeue, absl::Milliseconds(200));
}

std::shared_ptr<const Pod> NodeAgent::FindPod(const std::string& ns, const std::string& name) {
  absl::MutexLock lock(&mu_);
  for (const auto& [uid, e] : entries_) {
    if (e.pod != nullptr && e.pod->metadata().namespace_() == ns && e.pod->metadata().name() == name) {
      return e.pod;
    }
  }
  return nullptr;
}

absl::StatusOr<std::string> NodeAgent::LogPath(const std::string& ns, const std::string& name,
                                               std::string container, bool previous) {
  std::shared_ptr<const Pod> pod = FindPod(ns, name);
  if (pod == nullptr) {
    return absl::NotFoundError(absl::StrCat("pods \"", name, "\" not found on node ", options_.node.name));
  }
  std::vector<std::string> names;
  for (const auto& c : pod->spec().containers()) names.push_back(c.name());
  if (container.empty()) {
    if (names.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat("a container name must be specified for pod ", name,
                                                     ", choose one of: [", absl::StrJoin(names, " "), "]"));
    }
    container = names[0];
  }
  if (std::find(names.begin(), names.end(), container) == names.end()) {
    return absl::InvalidArgumentError(absl::StrCat("container ", container, " is not valid for pod ", name));
  }
  int restarts = 0;
  for (const auto& cs : pod->status().container_statuses()) {
    if (cs.name() == container) restarts = cs.restart_count();
  }
  if (previous && restarts == 0) {
    return absl::NotFoundError(absl::StrCat("previous terminated container \"", container,
                                            "\" in pod \"", name, "\" not found"));
  }
  PodRecord where;
  where.uid = pod->metadata().uid();
  where.ns = ns;
  where.name = name;
  return worker_->LogPath(where, container, previous ? restarts - 1 : restarts);
}

bool NodeAgent::ContainerMayWrite(const std::string& ns, const std::string& name,
                                 const std::string& container) {
  std::shared_ptr<const Pod> pod = FindPod(ns, name);
  if (pod == nullptr) return false;
  for (const auto& cs : pod->status().container_statuses()) {
    if (cs.name() != container && !container.empty()) continue;
    // Still (or soon) writing: running, or being created. Exited or waiting to restart: done.
    return !cs.state().has_terminated() && cs.state().waiting().reason() != "CrashLoopBackOff";
  }
  return false;
}

}  // namespace capstan::nodeagent
