#include "services/controller-manager/controllers/replicaset/replicaset_controller.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/api/errors.h"
#include "lib/api/labels.h"
#include "lib/client/indexer.h"

namespace capstan::controllermanager {
namespace {

using capstan::apps::v1::ReplicaSet;
using capstan::core::v1::Pod;
using replicaset::ControllerRef;
using replicaset::PodPtr;

// Writes that lose a resourceVersion race are redone on a fresh read this many times.
constexpr int kConflictRetries = 5;
// Creates or deletes of one batch run on at most this many threads.
constexpr int kMaxParallelWrites = 16;

client::ControllerOptions MakeControllerOptions(const ControllerContext& ctx,
                                                client::Clock* clock) {
  client::ControllerOptions options;
  options.name = "replicaset";
  options.workers = ctx.workers;
  options.registry = ctx.registry;
  options.clock = clock;
  return options;
}

// Runs fn(0) ... fn(n-1), on up to kMaxParallelWrites threads.
void ParallelFor(int n, const std::function<void(int)>& fn) {
  if (n <= 1) {
    if (n == 1) fn(0);
    return;
  }
  std::atomic<int> next{0};
  auto work = [&] {
    for (int i = next++; i < n; i = next++) fn(i);
  };
  std::vector<std::thread> threads;
  const int count = std::min(n, kMaxParallelWrites);
  threads.reserve(count - 1);
  for (int t = 1; t < count; ++t) threads.emplace_back(work);
  work();
  for (std::thread& thread : threads) thread.join();
}

// Remembers the first error of several concurrent calls.
class FirstError {
 public:
  void Add(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (status_.ok()) status_ = status;
  }
  absl::Status Get() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

bool SameControllerRef(const capstan::meta::v1::OwnerReference* a,
                       const capstan::meta::v1::OwnerReference* b) {
  if (a == nullptr || b == nullptr) return a == b;
  return a->uid() == b->uid() && a->name() == b->name() && a->kind() == b->kind();
}

bool SameLabels(const Pod& a, const Pod& b) {
  const auto& x = a.metadata().labels();
  const auto& y = b.metadata().labels();
  if (x.size() != y.size()) return false;
  for (const auto& [key, value] : x) {
    auto it = y.find(key);
    if (it == y.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace

ReplicaSetController::ReplicaSetController(const ControllerContext& ctx,
                                           ReplicaSetControllerOptions options)
    : client_(ctx.client),
      recorder_(ctx.recorder),
      options_(options),
      replicasets_(ctx.informers->For<ReplicaSet>()),
      pods_(ctx.informers->For<Pod>()),
      expectations_(options.clock, options.expectations_timeout),
      controller_(MakeControllerOptions(ctx, options.clock), this) {
  if (!pods_.indexer().HasIndex(client::kOwnerUidIndex)) {
    // Another controller may add it between the check and the add: AlreadyExists is fine.
    pods_.AddIndex(client::kOwnerUidIndex, [](const google::protobuf::Message& object) {
      std::vector<std::string> uids;
      for (const auto& ref : api::Meta(object).owner_references()) uids.push_back(ref.uid());
      return uids;
    }).IgnoreError();
  }

  client::EventHandler<ReplicaSet> rs_handler;
  rs_handler.on_add = [this](const std::shared_ptr<const ReplicaSet>& rs) {
    if (rs) controller_.Enqueue(client::ObjectKey(*rs));
  };
  rs_handler.on_update = [this](const std::shared_ptr<const ReplicaSet>&,
                                const std::shared_ptr<const ReplicaSet>& rs) {
    if (rs) controller_.Enqueue(client::ObjectKey(*rs));
  };
  rs_handler.on_delete = [this](const std::shared_ptr<const ReplicaSet>& rs) {
    if (!rs) return;
    const std::string key = client::ObjectKey(*rs);
    expectations_.Delete(key);
    controller_.Enqueue(key);
  };
  replicasets_.AddEventHandler(std::move(rs_handler));

  client::EventHandler<Pod> pod_handler;
  pod_handler.on_add = [this](const std::shared_ptr<const Pod>& pod) { OnPodAdd(pod); };
  pod_handler.on_update = [this](const std::shared_ptr<const Pod>& old_pod,
                                 const std::shared_ptr<const Pod>& pod) {
    OnPodUpdate(old_pod, pod);
  };
  pod_handler.on_delete = [this](const std::shared_ptr<const Pod>& pod) { OnPodDelete(pod); };
  pods_.AddEventHandler(std::move(pod_handler));
}

ReplicaSetController::~ReplicaSetController() { Stop(); }

void ReplicaSetController::Run() {
  controller_.Run({[this] { return replicasets_.HasSynced(); },
                   [this] { return pods_.HasSynced(); }});
}

void ReplicaSetController::Stop() { controller_.Stop(); }

// ---------------------------------------------------------------------------------------------
// Event handlers

std::shared_ptr<const ReplicaSet> ReplicaSetController::ResolveControllerRef(
    const std::string& ns, const capstan::meta::v1::OwnerReference& ref) const {
  if (ref.kind() != "ReplicaSet") return nullptr;
  std::shared_ptr<const ReplicaSet> rs = replicasets_.lister().Get(ns, ref.name());
  if (rs == nullptr || rs->metadata().uid() != ref.uid()) return nullptr;
  return rs;
}

void ReplicaSetController::EnqueueMatchingReplicaSets(const Pod& pod) {
  for (const auto& rs : replicasets_.lister().ListNamespace(pod.metadata().namespace_())) {
    absl::StatusOr<api::LabelSelector> selector =
        api::LabelSelector::FromProto(rs->spec().selector());
    // An empty selector would match every pod: Kubernetes lets it match none.
    if (!selector.ok() || selector->Empty()) continue;
    if (selector->Matches(pod.metadata().labels())) controller_.Enqueue(client::ObjectKey(*rs));
  }
}

void ReplicaSetController::OnPodAdd(const std::shared_ptr<const Pod>& pod) {
  if (!pod) return;
  if (pod->metadata().has_deletion_timestamp()) {
    // Seen for the first time already terminating (e.g. after a relist): a deletion.
    OnPodDelete(pod);
    return;
  }
  if (const auto* ref = ControllerRef(pod->metadata())) {
    std::shared_ptr<const ReplicaSet> rs = ResolveControllerRef(pod->metadata().namespace_(), *ref);
    if (rs == nullptr) return;
    const std::string key = client::ObjectKey(*rs);
    expectations_.CreationObserved(key);
    controller_.Enqueue(key);
    return;
  }
  EnqueueMatchingReplicaSets(*pod);
}

void ReplicaSetController::OnPodUpdate(const std::shared_ptr<const Pod>& old_pod,
                                       const std::shared_ptr<const Pod>& pod) {
  if (!old_pod || !pod) return;
  if (old_pod->metadata().resource_version() == pod->metadata().resource_version()) return;
  const bool labels_changed = !SameLabels(*old_pod, *pod);
  if (pod->metadata().has_deletion_timestamp()) {
    // A graceful deletion started: count it as the deletion now, so a replacement is made
    // without waiting for the grace period.
    OnPodDelete(pod);
    if (labels_changed) OnPodDelete(old_pod);
    return;
  }
  const auto* old_ref = ControllerRef(old_pod->metadata());
  const auto* ref = ControllerRef(pod->metadata());
  const bool ref_changed = !SameControllerRef(old_ref, ref);
  if (ref_changed && old_ref != nullptr) {
    if (auto rs = ResolveControllerRef(old_pod->metadata().namespace_(), *old_ref)) {
      controller_.Enqueue(client::ObjectKey(*rs));
    }
  }
  if (ref != nullptr) {
    if (auto rs = ResolveControllerRef(pod->metadata().namespace_(), *ref)) {
      controller_.Enqueue(client::ObjectKey(*rs));
    }
    return;
  }
  if (labels_changed || ref_changed) EnqueueMatchingReplicaSets(*pod);
}

void ReplicaSetController::OnPodDelete(const std::shared_ptr<const Pod>& pod) {
  if (!pod) return;
  const auto* ref = ControllerRef(pod->metadata());
  if (ref == nullptr) return;  // an orphan's deletion changes no ReplicaSet's count
  std::shared_ptr<const ReplicaSet> rs = ResolveControllerRef(pod->metadata().namespace_(), *ref);
  if (rs == nullptr) return;
  const std::string key = client::ObjectKey(*rs);
  expectations_.DeletionObserved(key, client::ObjectKey(*pod));
  controller_.Enqueue(key);
}

// ---------------------------------------------------------------------------------------------
// Reconcile

absl::StatusOr<client::ReconcileResult> ReplicaSetController::Reconcile(const std::string& key) {
  std::shared_ptr<const ReplicaSet> rs = replicasets_.lister().Get(key);
  if (rs == nullptr) {
    expectations_.Delete(key);
    return client::ReconcileResult{};
  }
  absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(rs->spec().selector());
  // A selector the server accepted but this controller cannot parse will not parse on a retry.
  if (!selector.ok()) return client::ReconcileResult{};

  // Read before the cache: an event observed in between only makes this more conservative.
  const bool expectations_met = expectations_.Satisfied(key);
  absl::StatusOr<replicaset::ReplicaSetPlan> plan =
      replicaset::PlanReplicaSet(*rs, PodsFor(*rs, *selector), options_.burst_replicas);
  if (!plan.ok()) return client::ReconcileResult{};

  if (absl::Status claimed = Claim(*rs, *plan); !claimed.ok()) return claimed;

  absl::Status manage_error;
  if (expectations_met && !rs->metadata().has_deletion_timestamp()) {
    manage_error = Manage(key, *rs, *plan);
  }

  const absl::Time now = options_.clock->Now();
  capstan::apps::v1::ReplicaSetStatus status =
      replicaset::CalculateStatus(*rs, plan->active, plan->diff, manage_error, now);
  if (!replicaset::SameStatus(status, rs->status())) {
    if (absl::Status written = WriteStatus(*rs, status); !written.ok()) return written;
  }
  if (!manage_error.ok()) return manage_error;

  client::ReconcileResult result;
  if (std::optional<absl::Duration> next =
          replicaset::NextAvailableIn(plan->active, rs->spec().min_ready_seconds(), now)) {
    result.requeue_after = *next;
  }
  return result;
}

std::vector<PodPtr> ReplicaSetController::PodsFor(const ReplicaSet& rs,
                                                  const api::LabelSelector& selector) const {
  const std::string& ns = rs.metadata().namespace_();
  std::vector<PodPtr> pods = pods_.lister().ListSelected(ns, selector);
  std::set<std::string> seen;
  for (const PodPtr& pod : pods) seen.insert(pod->metadata().name());
  for (PodPtr& pod : pods_.lister().ByIndex(client::kOwnerUidIndex, rs.metadata().uid())) {
    if (pod->metadata().namespace_() == ns && seen.insert(pod->metadata().name()).second) {
      pods.push_back(std::move(pod));
    }
  }
  return pods;
}

absl::Status ReplicaSetController::Claim(const ReplicaSet& rs,
                                         const replicaset::ReplicaSetPlan& plan) {
  const std::string& ns = rs.metadata().namespace_();
  const std::string& uid = rs.metadata().uid();
  if (!plan.adopt.empty()) {
    // The cache may be behind: adopt only for a ReplicaSet that exists and is not being deleted,
    // as the server says now (Kubernetes' RecheckDeletionTimestamp).
    absl::StatusOr<ReplicaSet> fresh = client_->Get<ReplicaSet>(ns, rs.metadata().name());
    if (!fresh.ok()) return fresh.status();
    if (fresh->metadata().uid() != uid) {
      return absl::AbortedError(absl::StrCat("original ReplicaSet ", ns, "/", rs.metadata().name(),
                                             " is gone: got uid ", fresh->metadata().uid(),
                                             ", wanted ", uid));
    }
    if (fresh->metadata().has_deletion_timestamp()) {
      return absl::AbortedError(absl::StrCat("ReplicaSet ", ns, "/", rs.metadata().name(),
                                             " is being deleted: not adopting"));
    }
  }
  absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(rs.spec().selector());
  if (!selector.ok()) return selector.status();

  FirstError first_error;
  for (const PodPtr& orphan : plan.adopt) {
    Pod pod = *orphan;
    for (int attempt = 0;; ++attempt) {
      if (const auto* ref = ControllerRef(pod.metadata())) {
        if (ref->uid() != uid) {
          first_error.Add(absl::AbortedError(absl::StrCat(
              "pod ", pod.metadata().name(), " was adopted by ", ref->kind(), " ", ref->name())));
        }
        break;
      }
      if (pod.metadata().has_deletion_timestamp() || !selector->Matches(pod.metadata().labels())) {
        first_error.Add(absl::AbortedError(
            absl::StrCat("pod ", pod.metadata().name(), " changed while being adopted")));
        break;
      }
      *pod.mutable_metadata()->add_owner_references() = replicaset::ControllerRefFor(rs);
      absl::StatusOr<Pod> updated = client_->Update(pod);
      if (updated.ok()) break;
      const std::string reason = api::Reason(updated.status());
      if (reason == "Conflict" && attempt < kConflictRetries) {
        absl::StatusOr<Pod> reread = client_->Get<Pod>(ns, pod.metadata().name());
        if (reread.ok()) {
          pod = *std::move(reread);
          continue;
        }
        updated = reread.status();
      }
      // A pod that is gone was counted in the plan: retry with a fresh plan.
      first_error.Add(updated.status());
      break;
    }
  }

  for (const PodPtr& owned : plan.release) {
    Pod pod = *owned;
    for (int attempt = 0;; ++attempt) {
      auto* refs = pod.mutable_metadata()->mutable_owner_references();
      const int before = refs->size();
      refs->erase(std::remove_if(refs->begin(), refs->end(),
                                 [&](const auto& ref) { return ref.uid() == uid; }),
                  refs->end());
      if (refs->size() == before) break;  // not ours any more
      absl::StatusOr<Pod> updated = client_->Update(pod);
      if (updated.ok() || api::Reason(updated.status()) == "NotFound") break;
      if (api::Reason(updated.status()) == "Conflict" && attempt < kConflictRetries) {
        absl::StatusOr<Pod> reread = client_->Get<Pod>(ns, pod.metadata().name());
        if (reread.ok()) {
          pod = *std::move(reread);
          continue;
        }
        if (api::Reason(reread.status()) == "NotFound") break;
        updated = reread.status();
      }
      first_error.Add(updated.status());
      break;
    }
  }
  return first_error.Get();
}

absl::Status ReplicaSetController::Manage(const std::string& key, const ReplicaSet& rs,
                                          const replicaset::ReplicaSetPlan& plan) {
  if (plan.to_create > 0) return CreatePods(key, rs, plan.to_create);
  if (!plan.pods_to_delete.empty()) return DeletePods(key, rs, plan.pods_to_delete);
  return absl::OkStatus();
}

absl::Status ReplicaSetController::CreatePods(const std::string& key, const ReplicaSet& rs,
                                              int count) {
  // Recorded before the first create, so the informer cannot observe a pod before it is expected.
  expectations_.ExpectCreations(key, count);
  const Pod pod = replicaset::PodFromTemplate(rs);
  int created = 0;
  FirstError first_error;
  for (int batch : replicaset::SlowStartBatchSizes(count)) {
    std::atomic<int> batch_created{0};
    ParallelFor(batch, [&](int) {
      absl::StatusOr<Pod> result = client_->Create(pod);
      if (result.ok()) {
        ++batch_created;
        RecordEvent(rs, client::kEventTypeNormal, "SuccessfulCreate",
                    absl::StrCat("Created pod: ", result->metadata().name()));
      } else {
        RecordEvent(rs, client::kEventTypeWarning, "FailedCreate",
                    absl::StrCat("Error creating: ", result.status().message()));
        first_error.Add(result.status());
      }
    });
    created += batch_created;
    if (!first_error.Get().ok()) break;  // the rest would likely fail the same way
  }
  // The informer will never see the pods that were not created.
  for (int i = created; i < count; ++i) expectations_.CreationObserved(key);
  return first_error.Get();
}

absl::Status ReplicaSetController::DeletePods(const std::string& key, const ReplicaSet& rs,
                                              const std::vector<PodPtr>& pods) {
  std::vector<std::string> pod_keys;
  pod_keys.reserve(pods.size());
  for (const PodPtr& pod : pods) pod_keys.push_back(client::ObjectKey(*pod));
  expectations_.ExpectDeletions(key, pod_keys);
  FirstError first_error;
  ParallelFor(static_cast<int>(pods.size()), [&](int i) {
    const auto& meta = pods[i]->metadata();
    absl::StatusOr<Pod> result = client_->Delete<Pod>(meta.namespace_(), meta.name());
    if (result.ok()) {
      RecordEvent(rs, client::kEventTypeNormal, "SuccessfulDelete",
                  absl::StrCat("Deleted pod: ", meta.name()));
      return;
    }
    // The informer will not see a deletion that did not happen (or happened before).
    expectations_.DeletionObserved(key, pod_keys[i]);
    if (api::Reason(result.status()) == "NotFound") return;
    RecordEvent(rs, client::kEventTypeWarning, "FailedDelete",
                absl::StrCat("Error deleting: ", result.status().message()));
    first_error.Add(result.status());
  });
  return first_error.Get();
}

absl::Status ReplicaSetController::WriteStatus(const ReplicaSet& rs,
                                               const capstan::apps::v1::ReplicaSetStatus& status) {
  ReplicaSet updated = rs;
  for (int attempt = 0;; ++attempt) {
    *updated.mutable_status() = status;
    absl::StatusOr<ReplicaSet> result = client_->UpdateStatus(updated);
    if (result.ok()) return absl::OkStatus();
    const std::string reason = api::Reason(result.status());
    if (reason == "NotFound") return absl::OkStatus();  // deleted meanwhile
    if (reason != "Conflict" || attempt >= kConflictRetries) return result.status();
    absl::StatusOr<ReplicaSet> fresh =
        client_->Get<ReplicaSet>(rs.metadata().namespace_(), rs.metadata().name());
    if (!fresh.ok()) {
      return api::Reason(fresh.status()) == "NotFound" ? absl::OkStatus() : fresh.status();
    }
    if (fresh->metadata().uid() != rs.metadata().uid()) return absl::OkStatus();  // replaced
    updated = *std::move(fresh);
  }
}

void ReplicaSetController::RecordEvent(const ReplicaSet& rs, absl::string_view type,
                                       absl::string_view reason, const std::string& message) {
  if (recorder_ != nullptr) recorder_->Event(rs, type, reason, message);
}

}  // namespace capstan::controllermanager
