#include "services/controller-manager/controllers/deployment/rollout.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <deque>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "lib/api/labels.h"
#include "lib/api/meta_time.h"

namespace capstan::controllermanager::deployment {
namespace {

using capstan::core::v1::PodTemplateSpec;
using capstan::meta::v1::IntOrString;
using capstan::meta::v1::OwnerReference;

constexpr size_t kMaxRevisionHistoryChars = 2000;  // Kubernetes' maxRevHistoryLengthInChars

std::string Deterministic(const google::protobuf::Message& message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

PodTemplateSpec WithoutHash(const PodTemplateSpec& t) {
  PodTemplateSpec copy = t;
  copy.mutable_metadata()->mutable_labels()->erase(kPodTemplateHashLabel);
  return copy;
}

int32_t DesiredReplicas(const Deployment& d) {
  return d.spec().has_replicas() ? d.spec().replicas() : 1;
}

bool IsRollingUpdate(const Deployment& d) {
  return d.spec().strategy().type() != "Recreate";
}

bool HasProgressDeadline(const Deployment& d) {
  return d.spec().has_progress_deadline_seconds() &&
         d.spec().progress_deadline_seconds() != INT32_MAX;
}

bool HasRevisionHistoryLimit(const Deployment& d) {
  return d.spec().has_revision_history_limit() && d.spec().revision_history_limit() != INT32_MAX;
}

bool CreatedBefore(const ReplicaSet& a, const ReplicaSet& b) {
  const auto& ta = a.metadata().creation_timestamp();
  const auto& tb = b.metadata().creation_timestamp();
  if (ta.seconds() != tb.seconds()) return ta.seconds() < tb.seconds();
  if (ta.nanos() != tb.nanos()) return ta.nanos() < tb.nanos();
  return a.metadata().name() < b.metadata().name();
}

std::optional<int32_t> IntAnnotation(const ReplicaSet& rs, const char* key) {
  auto it = rs.metadata().annotations().find(key);
  int32_t value = 0;
  if (it == rs.metadata().annotations().end() || !absl::SimpleAtoi(it->second, &value)) {
    return std::nullopt;
  }
  return value;
}

const OwnerReference* ControllerRef(const ReplicaSet& rs) {
  for (const OwnerReference& ref : rs.metadata().owner_references()) {
    if (ref.has_controller() && ref.controller()) return &ref;
  }
  return nullptr;
}

// --- conditions (Kubernetes' deployment util) ---

const DeploymentCondition* GetCondition(const DeploymentStatus& status, absl::string_view type) {
  for (const DeploymentCondition& c : status.conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

void RemoveCondition(DeploymentStatus* status, absl::string_view type) {
  auto* conditions = status->mutable_conditions();
  for (int i = conditions->size() - 1; i >= 0; --i) {
    if (conditions->Get(i).type() == type) conditions->DeleteSubrange(i, 1);
  }
}

DeploymentCondition NewCondition(absl::string_view type, absl::string_view status,
                                 absl::string_view reason, absl::string_view message,
                                 absl::Time now) {
  DeploymentCondition c;
  c.set_type(std::string(type));
  c.set_status(std::string(status));
  c.set_reason(std::string(reason));
  c.set_message(std::string(message));
  *c.mutable_last_update_time() = api::ToMetaTime(now);
  *c.mutable_last_transition_time() = api::ToMetaTime(now);
  return c;
}

// Kubernetes' SetDeploymentCondition: no change when status and reason are the same; the
// transition time is kept when only the reason changes.
void SetCondition(DeploymentStatus* status, DeploymentCondition condition) {
  const DeploymentCondition* current = GetCondition(*status, condition.type());
  if (current != nullptr && current->status() == condition.status() &&
      current->reason() == condition.reason()) {
    return;
  }
  if (current != nullptr && current->status() == condition.status()) {
    *condition.mutable_last_transition_time() = current->last_transition_time();
  }
  RemoveCondition(status, condition.type());
  *status->add_conditions() = std::move(condition);
}

bool StatusEqual(const DeploymentStatus& a, const DeploymentStatus& b) {
  return Deterministic(a) == Deterministic(b);
}

// Kubernetes' DeploymentProgressing: any sign of progress between the stored and the new status.
bool DeploymentProgressing(const Deployment& d, const DeploymentStatus& next) {
  const DeploymentStatus& prev = d.status();
  int32_t prev_old = prev.replicas() - prev.updated_replicas();
  int32_t next_old = next.replicas() - next.updated_replicas();
  return next.updated_replicas() > prev.updated_replicas() || next_old < prev_old ||
         next.ready_replicas() > prev.ready_replicas() ||
         next.available_replicas() > prev.available_replicas();
}

bool DeploymentTimedOut(const Deployment& d, const DeploymentStatus& status, absl::Time now) {
  if (!HasProgressDeadline(d)) return false;
  const DeploymentCondition* c = GetCondition(status, kProgressing);
  if (c == nullptr) return false;
  if (c->reason() == kNewReplicaSetAvailable) return false;
  if (c->reason() == kProgressDeadlineExceeded) return true;
  return api::FromMetaTime(c->last_update_time()) + absl::Seconds(d.spec().progress_deadline_seconds()) <
         now;
}

// --- the planner: one reconcile pass over a working copy of the replica sets ---

struct Working {
  ReplicaSet rs;
  bool created = false;
  bool updated = false;
  bool deleted = false;
};

class Planner {
 public:
  Planner(const Deployment& d, absl::Time now)
      : d_(d), now_(now), replicas_(DesiredReplicas(d)), status_(d.status()) {}

  Plan Run(const std::vector<ReplicaSet>& replica_sets);

 private:
  // Claims the deployment's replica sets: owned (and matching), adopted, released.
  void Claim(const std::vector<ReplicaSet>& replica_sets, const api::LabelSelector& selector);
  Working* Touch(Working* w) {
    if (!w->created && !w->updated) touched_.push_back(w);
    if (!w->created) w->updated = true;
    return w;
  }

  // Kubernetes' getAllReplicaSetsAndSyncRevision: finds (or creates) the new RS, sets old_.
  // False when the new RS could not be made (hash collision: status carries the new count).
  bool SyncRevision(bool create);
  std::vector<Working*> All() const {
    std::vector<Working*> all = old_;
    if (new_rs_ != nullptr) all.push_back(new_rs_);
    return all;
  }
  static std::vector<Working*> Active(const std::vector<Working*>& rss) {
    std::vector<Working*> out;
    for (Working* w : rss) {
      if (Replicas(w->rs) > 0) out.push_back(w);
    }
    return out;
  }
  static void SortByCreation(std::vector<Working*>* rss) {
    std::stable_sort(rss->begin(), rss->end(),
                     [](Working* a, Working* b) { return CreatedBefore(a->rs, b->rs); });
  }

  bool SetNewReplicaSetAnnotations(ReplicaSet* rs, const std::string& revision, bool exists);
  bool SetReplicasAnnotations(ReplicaSet* rs);
  // Sets the size and the replicas annotations; true when the size changed.
  bool ScaleReplicaSet(Working* w, int32_t size);
  // Scales only when the size differs (Kubernetes' scaleReplicaSetAndRecordEvent).
  bool ScaleAndRecord(Working* w, int32_t size) {
    if (Replicas(w->rs) == size) return false;
    return ScaleReplicaSet(w, size);
  }

  int32_t NewRSNewReplicas(const ReplicaSet& new_rs) const;
  bool ReconcileNewReplicaSet();
  bool ReconcileOldReplicaSets();
  int32_t CleanupUnhealthyReplicas(std::vector<Working*> olds, int32_t max_cleanup);
  int32_t ScaleDownOldReplicaSetsForRollingUpdate(std::vector<Working*> olds);

  bool IsScalingEvent();
  void Scale();
  void CleanupDeployment();
  void CheckPausedConditions();

  void RolloutRolling();
  void RolloutRecreate();
  void SyncRolloutStatus();
  void SyncDeploymentStatus() { final_status_ = CalculateStatusNow(); }
  DeploymentStatus CalculateStatusNow() const;

  void Event(absl::string_view reason, std::string message) {
    plan_.events.push_back({"Normal", std::string(reason), std::move(message)});
  }

  const Deployment& d_;
  const absl::Time now_;
  const int32_t replicas_;
  Plan plan_;
  // The deployment's status as Kubernetes' d.Status is after the writes a pass makes before its
  // final status (new RS conditions, paused conditions).
  DeploymentStatus status_;
  DeploymentStatus final_status_;
  std::deque<Working> items_;      // every replica set seen or made; stable addresses
  std::vector<Working*> owned_;    // the deployment's
  std::vector<Working*> touched_;  // in order of first change
  std::vector<const ReplicaSet*> namespace_rss_;
  Working* new_rs_ = nullptr;
  std::vector<Working*> old_;
};

void Planner::Claim(const std::vector<ReplicaSet>& replica_sets,
                    const api::LabelSelector& selector) {
  const bool deleting = d_.metadata().has_deletion_timestamp();
  for (const ReplicaSet& rs : replica_sets) {
    if (rs.metadata().namespace_() != d_.metadata().namespace_()) continue;
    namespace_rss_.push_back(&rs);
    const OwnerReference* ref = ControllerRef(rs);
    const bool matches = selector.Matches(rs.metadata().labels());
    if (ref != nullptr) {
      if (ref->uid() != d_.metadata().uid()) continue;  // another controller's
      if (matches) {
        items_.push_back({rs});
        owned_.push_back(&items_.back());
      } else if (!deleting) {
        // Release: it no longer matches (Kubernetes' ClaimObject).
        items_.push_back({rs});
        Working* w = Touch(&items_.back());
        auto* refs = w->rs.mutable_metadata()->mutable_owner_references();
        for (int i = refs->size() - 1; i >= 0; --i) {
          if (refs->Get(i).uid() == d_.metadata().uid()) refs->DeleteSubrange(i, 1);
        }
      }
      continue;
    }
    if (!matches || deleting || rs.metadata().has_deletion_timestamp()) continue;
    items_.push_back({rs});
    Working* w = Touch(&items_.back());
    OwnerReference* owner = w->rs.mutable_metadata()->add_owner_references();
    owner->set_api_version("apps/v1");
    owner->set_kind("Deployment");
    owner->set_name(d_.metadata().name());
    owner->set_uid(d_.metadata().uid());
    owner->set_controller(true);
    owner->set_block_owner_deletion(true);
    owned_.push_back(w);
  }
}

bool Planner::SetReplicasAnnotations(ReplicaSet* rs) {
  auto* annotations = rs->mutable_metadata()->mutable_annotations();
  std::string desired = absl::StrCat(replicas_);
  std::string max = absl::StrCat(replicas_ + MaxSurge(d_));
  bool changed = false;
  auto set = [&](const char* key, const std::string& value) {
    auto it = annotations->find(key);
    if (it != annotations->end() && it->second == value) return;
    (*annotations)[key] = value;
    changed = true;
  };
  set(kDesiredReplicasAnnotation, desired);
  set(kMaxReplicasAnnotation, max);
  return changed;
}

bool Planner::SetNewReplicaSetAnnotations(ReplicaSet* rs, const std::string& revision,
                                          bool exists) {
  auto* annotations = rs->mutable_metadata()->mutable_annotations();
  bool changed = false;
  // The deployment's annotations, except the ones that describe the deployment itself.
  for (const auto& [key, value] : d_.metadata().annotations()) {
    if (key == kRevisionAnnotation || key == kRevisionHistoryAnnotation ||
        key == kDesiredReplicasAnnotation || key == kMaxReplicasAnnotation ||
        key == "kubectl.kubernetes.io/last-applied-configuration" ||
        key == "deprecated.deployment.rollback.to") {
      continue;
    }
    auto it = annotations->find(key);
    if (it != annotations->end() && it->second == value) continue;
    (*annotations)[key] = value;
    changed = true;
  }
  auto it = annotations->find(kRevisionAnnotation);
  const bool had_revision = it != annotations->end();
  const std::string old_revision = had_revision ? it->second : "";
  int64_t old_number = 0;
  if (had_revision && !absl::SimpleAtoi(old_revision, &old_number)) return changed;
  int64_t new_number = 0;
  if (!absl::SimpleAtoi(revision, &new_number)) return changed;
  if (old_number < new_number) {
    (*annotations)[kRevisionAnnotation] = revision;
    changed = true;
    // A replica set that had a revision and gets a newer one is being rolled back to: keep its
    // earlier revisions for `rollout history`.
    if (had_revision) {
      std::string history = (*annotations)[kRevisionHistoryAnnotation];
      std::vector<std::string> revisions;
      if (!history.empty()) revisions = absl::StrSplit(history, ',');
      revisions.push_back(old_revision);
      size_t total = absl::StrJoin(revisions, ",").size();
      size_t start = 0;
      while (total > kMaxRevisionHistoryChars && start < revisions.size()) {
        total -= revisions[start].size() + 1;
        ++start;
      }
      (*annotations)[kRevisionHistoryAnnotation] = absl::StrJoin(
          std::vector<std::string>(revisions.begin() + start, revisions.end()), ",");
    }
  }
  if (!exists && SetReplicasAnnotations(rs)) changed = true;
  return changed;
}

bool Planner::ScaleReplicaSet(Working* w, int32_t size) {
  const int32_t before = Replicas(w->rs);
  const bool size_changed = before != size;
  ReplicaSet copy = w->rs;
  const bool annotations_changed = SetReplicasAnnotations(&copy);
  if (!size_changed && !annotations_changed) return false;
  Touch(w);
  w->rs = std::move(copy);
  w->rs.mutable_spec()->set_replicas(size);
  if (size_changed) {
    Event("ScalingReplicaSet",
          absl::StrCat("Scaled ", size > before ? "up" : "down", " replica set ",
                       w->rs.metadata().name(), " from ", before, " to ", size));
  }
  return size_changed;
}

bool Planner::SyncRevision(bool create) {
  const ReplicaSet* found = nullptr;
  {
    std::vector<Working*> sorted = owned_;
    SortByCreation(&sorted);
    for (Working* w : sorted) {
      if (EqualIgnoreHash(w->rs.spec().template_(), d_.spec().template_())) {
        found = &w->rs;
        new_rs_ = w;
        break;
      }
    }
  }
  old_.clear();
  int64_t max_old_revision = 0;
  for (Working* w : owned_) {
    if (w == new_rs_) continue;
    old_.push_back(w);
    max_old_revision = std::max(max_old_revision, Revision(w->rs));
  }
  const std::string new_revision = absl::StrCat(max_old_revision + 1);

  if (found != nullptr) {
    ReplicaSet copy = new_rs_->rs;
    bool changed = SetNewReplicaSetAnnotations(&copy, new_revision, /*exists=*/true);
    if (copy.spec().min_ready_seconds() != d_.spec().min_ready_seconds()) {
      copy.mutable_spec()->set_min_ready_seconds(d_.spec().min_ready_seconds());
      changed = true;
    }
    if (changed) {
      Touch(new_rs_);
      new_rs_->rs = std::move(copy);
    }
    const auto& rs_annotations = new_rs_->rs.metadata().annotations();
    auto it = rs_annotations.find(kRevisionAnnotation);
    if (it != rs_annotations.end()) {
      auto current = d_.metadata().annotations().find(kRevisionAnnotation);
      if (current == d_.metadata().annotations().end() || current->second != it->second) {
        plan_.revision = it->second;
      }
    }
    if (HasProgressDeadline(d_) && GetCondition(status_, kProgressing) == nullptr) {
      SetCondition(&status_, NewCondition(kProgressing, "True", kFoundNewReplicaSet,
                                          absl::StrCat("Found new replica set \"",
                                                       new_rs_->rs.metadata().name(), "\""),
                                          now_));
    }
    return true;
  }
  if (!create) return true;

  // A new replica set for the current template.
  std::optional<int32_t> collision_count;
  if (d_.status().has_collision_count()) collision_count = d_.status().collision_count();
  const std::string hash = ComputeHash(d_.spec().template_(), collision_count);
  ReplicaSet rs;
  rs.set_api_version("apps/v1");
  rs.set_kind("ReplicaSet");
  auto* meta = rs.mutable_metadata();
  meta->set_name(absl::StrCat(d_.metadata().name(), "-", hash));
  meta->set_namespace_(d_.metadata().namespace_());
  OwnerReference* owner = meta->add_owner_references();
  owner->set_api_version("apps/v1");
  owner->set_kind("Deployment");
  owner->set_name(d_.metadata().name());
  owner->set_uid(d_.metadata().uid());
  owner->set_controller(true);
  owner->set_block_owner_deletion(true);
  auto* spec = rs.mutable_spec();
  spec->set_min_ready_seconds(d_.spec().min_ready_seconds());
  *spec->mutable_selector() = d_.spec().selector();
  (*spec->mutable_selector()->mutable_match_labels())[kPodTemplateHashLabel] = hash;
  *spec->mutable_template_() = d_.spec().template_();
  (*spec->mutable_template_()->mutable_metadata()->mutable_labels())[kPodTemplateHashLabel] = hash;
  *meta->mutable_labels() = spec->template_().metadata().labels();
  spec->set_replicas(0);

  // The name is taken by a replica set that is not this template's: Kubernetes bumps
  // status.collisionCount so that the next hash differs.
  for (const ReplicaSet* existing : namespace_rss_) {
    if (existing->metadata().name() == meta->name()) {
      status_.set_collision_count(d_.status().collision_count() + 1);
      return false;
    }
  }

  items_.push_back({std::move(rs)});
  Working* w = &items_.back();
  w->created = true;
  touched_.push_back(w);
  new_rs_ = w;
  w->rs.mutable_spec()->set_replicas(NewRSNewReplicas(w->rs));
  SetNewReplicaSetAnnotations(&w->rs, new_revision, /*exists=*/false);
  Event("ScalingReplicaSet", absl::StrCat("Scaled up replica set ", w->rs.metadata().name(),
                                          " from 0 to ", Replicas(w->rs)));
  if (HasProgressDeadline(d_)) {
    SetCondition(&status_, NewCondition(kProgressing, "True", kNewReplicaSetCreated,
                                        absl::StrCat("Created new replica set \"",
                                                     w->rs.metadata().name(), "\""),
                                        now_));
  }
  auto current = d_.metadata().annotations().find(kRevisionAnnotation);
  if (current == d_.metadata().annotations().end() || current->second != new_revision) {
    plan_.revision = new_revision;
  }
  return true;
}

int32_t Planner::NewRSNewReplicas(const ReplicaSet& new_rs) const {
  if (!IsRollingUpdate(d_)) return replicas_;
  const int32_t max_total = replicas_ + MaxSurge(d_);
  // Pods that exist or are about to: a scaled-down replica set keeps its pods until its controller
  // deletes them, a scaled-up one gets them soon.
  int32_t current = 0;
  for (Working* w : All()) {
    current += std::max(Replicas(w->rs), w->rs.status().replicas());
  }
  if (new_rs_ == nullptr || &new_rs_->rs != &new_rs) {
    current += std::max(Replicas(new_rs), new_rs.status().replicas());
  }
  if (current >= max_total) return Replicas(new_rs);
  int32_t scale_up = std::min(max_total - current, replicas_ - Replicas(new_rs));
  return Replicas(new_rs) + std::max(scale_up, 0);
}

bool Planner::ReconcileNewReplicaSet() {
  const int32_t size = Replicas(new_rs_->rs);
  if (size == replicas_) return false;
  if (size > replicas_) return ScaleAndRecord(new_rs_, replicas_);
  return ScaleAndRecord(new_rs_, NewRSNewReplicas(new_rs_->rs));
}

int32_t AvailableCapped(const ReplicaSet& rs) {
  return std::min(rs.status().available_replicas(), Replicas(rs));
}

bool Planner::ReconcileOldReplicaSets() {
  std::vector<Working*> olds = Active(old_);
  int32_t old_pods = 0;
  for (Working* w : olds) old_pods += Replicas(w->rs);
  if (old_pods == 0) return false;
  int32_t all_pods = 0;
  for (Working* w : All()) all_pods += Replicas(w->rs);
  const int32_t min_available = replicas_ - MaxUnavailable(d_);
  const int32_t new_unavailable = Replicas(new_rs_->rs) - AvailableCapped(new_rs_->rs);
  const int32_t max_scaled_down = all_pods - min_available - new_unavailable;
  if (max_scaled_down <= 0) return false;
  const int32_t cleaned = CleanupUnhealthyReplicas(olds, max_scaled_down);
  const int32_t scaled = ScaleDownOldReplicaSetsForRollingUpdate(olds);
  return cleaned + scaled > 0;
}

int32_t Planner::CleanupUnhealthyReplicas(std::vector<Working*> olds, int32_t max_cleanup) {
  SortByCreation(&olds);
  int32_t total = 0;
  for (Working* w : olds) {
    if (total >= max_cleanup) break;
    const int32_t size = Replicas(w->rs);
    const int32_t available = AvailableCapped(w->rs);
    if (size == 0 || size == available) continue;
    const int32_t down = std::min(max_cleanup - total, size - available);
    ScaleAndRecord(w, size - down);
    total += down;
  }
  return total;
}

int32_t Planner::ScaleDownOldReplicaSetsForRollingUpdate(std::vector<Working*> olds) {
  const int32_t min_available = replicas_ - MaxUnavailable(d_);
  int32_t available = 0;
  for (Working* w : All()) available += AvailableCapped(w->rs);
  if (available <= min_available) return 0;
  SortByCreation(&olds);
  const int32_t to_scale_down = available - min_available;
  int32_t total = 0;
  for (Working* w : olds) {
    if (total >= to_scale_down) break;
    const int32_t size = Replicas(w->rs);
    if (size == 0) continue;
    const int32_t down = std::min(size, to_scale_down - total);
    ScaleAndRecord(w, size - down);
    total += down;
  }
  return total;
}

bool Planner::IsScalingEvent() {
  for (Working* w : Active(All())) {
    std::optional<int32_t> desired = IntAnnotation(w->rs, kDesiredReplicasAnnotation);
    if (desired && *desired != replicas_) return true;
  }
  return false;
}

// Kubernetes' scale(): a change of spec.replicas spread over the active replica sets in
// proportion to their sizes.
void Planner::Scale() {
  // One active (or only the latest) replica set: it takes the whole size.
  {
    std::vector<Working*> olds = old_;
    std::stable_sort(olds.begin(), olds.end(),
                     [](Working* a, Working* b) { return CreatedBefore(b->rs, a->rs); });
    std::vector<Working*> candidates = olds;
    if (new_rs_ != nullptr) candidates.push_back(new_rs_);
    std::vector<Working*> active = Active(candidates);
    Working* target = nullptr;
    if (active.size() == 1) {
      target = active[0];
    } else if (active.empty()) {
      target = new_rs_ != nullptr ? new_rs_ : (olds.empty() ? nullptr : olds[0]);
    }
    if (active.size() <= 1) {
      if (target != nullptr && Replicas(target->rs) != replicas_) {
        int32_t size = replicas_;
        if (IsRollingUpdate(d_) && size > Replicas(target->rs)) {
          // Pods of the other replica sets still being deleted count against maxSurge; what is
          // left of the increase comes with the rollout (the annotations say it is no longer a
          // scaling event).
          int32_t room = replicas_ + MaxSurge(d_);
          for (Working* w : All()) {
            if (w != target) room -= std::max(Replicas(w->rs), w->rs.status().replicas());
          }
          size = std::min(size, std::max(Replicas(target->rs), room));
        }
        ScaleReplicaSet(target, size);
      }
      if (target != nullptr || (new_rs_ == nullptr && old_.empty())) return;
    }
  }
  // The new replica set is saturated: old ones go to zero.
  if (new_rs_ != nullptr && Replicas(new_rs_->rs) == replicas_ &&
      IntAnnotation(new_rs_->rs, kDesiredReplicasAnnotation) == replicas_ &&
      new_rs_->rs.status().available_replicas() == replicas_) {
    for (Working* w : Active(old_)) ScaleReplicaSet(w, 0);
    return;
  }
  if (!IsRollingUpdate(d_)) return;
  std::vector<Working*> all = Active(All());
  int32_t current = 0;
  for (Working* w : all) current += Replicas(w->rs);
  const int32_t allowed = replicas_ > 0 ? replicas_ + MaxSurge(d_) : 0;
  int32_t to_add = allowed - current;
  if (to_add > 0) {
    // As above: pods that still exist beyond the replica sets' sizes use up the surge.
    int32_t pods = 0;
    for (Working* w : All()) pods += std::max(Replicas(w->rs), w->rs.status().replicas());
    to_add = std::max(to_add - (pods - current), 0);
  }
  if (to_add > 0) {  // larger first, newer first on ties
    std::stable_sort(all.begin(), all.end(), [](Working* a, Working* b) {
      if (Replicas(a->rs) != Replicas(b->rs)) return Replicas(a->rs) > Replicas(b->rs);
      return CreatedBefore(b->rs, a->rs);
    });
  } else if (to_add < 0) {  // larger first, older first on ties
    std::stable_sort(all.begin(), all.end(), [](Working* a, Working* b) {
      if (Replicas(a->rs) != Replicas(b->rs)) return Replicas(a->rs) > Replicas(b->rs);
      return CreatedBefore(a->rs, b->rs);
    });
  }
  std::vector<int32_t> sizes(all.size());
  int32_t added = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const ReplicaSet& rs = all[i]->rs;
    int32_t proportion = 0;
    if (to_add != 0 && Replicas(rs) != 0 && to_add != added) {
      // Kubernetes' getReplicaSetFraction and GetProportion.
      int32_t fraction = 0;
      if (replicas_ == 0) {
        fraction = -Replicas(rs);
      } else {
        const int32_t max_now = replicas_ + MaxSurge(d_);
        std::optional<int32_t> max_before = IntAnnotation(rs, kMaxReplicasAnnotation);
        int32_t base = (max_before && *max_before != 0) ? *max_before : d_.status().replicas();
        if (base != 0) {
          double size = static_cast<double>(Replicas(rs)) * max_now / base;
          fraction = static_cast<int32_t>(std::lround(size)) - Replicas(rs);
        }
      }
      const int32_t allowed_left = to_add - added;
      proportion = to_add > 0 ? std::min(fraction, allowed_left) : std::max(fraction, allowed_left);
    }
    sizes[i] = Replicas(rs) + proportion;
    added += proportion;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    if (i == 0 && to_add != 0) sizes[i] = std::max(sizes[i] + to_add - added, 0);  // leftovers
    ScaleReplicaSet(all[i], sizes[i]);
  }
}

void Planner::CleanupDeployment() {
  if (!HasRevisionHistoryLimit(d_)) return;
  std::vector<Working*> cleanable;
  for (Working* w : old_) {
    if (!w->rs.metadata().has_deletion_timestamp() && !w->deleted) cleanable.push_back(w);
  }
  const int32_t diff = static_cast<int32_t>(cleanable.size()) - d_.spec().revision_history_limit();
  if (diff <= 0) return;
  std::stable_sort(cleanable.begin(), cleanable.end(), [](Working* a, Working* b) {
    if (Revision(a->rs) != Revision(b->rs)) return Revision(a->rs) < Revision(b->rs);
    return CreatedBefore(a->rs, b->rs);
  });
  for (int32_t i = 0; i < diff; ++i) {
    Working* w = cleanable[i];
    // Only replica sets with no pods, whose status has caught up with their spec.
    if (w->rs.status().replicas() != 0 || Replicas(w->rs) != 0 ||
        w->rs.metadata().generation() > w->rs.status().observed_generation() || w->created ||
        w->updated) {
      continue;
    }
    touched_.push_back(w);
    w->deleted = true;
    Event("DeletingReplicaSet", absl::StrCat("Deleted old replica set ", w->rs.metadata().name()));
  }
}

void Planner::CheckPausedConditions() {
  if (!HasProgressDeadline(d_)) return;
  const DeploymentCondition* c = GetCondition(status_, kProgressing);
  if (c != nullptr && c->reason() == kProgressDeadlineExceeded) return;
  const bool paused_condition = c != nullptr && c->reason() == kDeploymentPaused;
  if (d_.spec().paused() && !paused_condition) {
    SetCondition(&status_,
                 NewCondition(kProgressing, "Unknown", kDeploymentPaused, "Deployment is paused",
                              now_));
  } else if (!d_.spec().paused() && paused_condition) {
    SetCondition(&status_, NewCondition(kProgressing, "Unknown", kDeploymentResumed,
                                        "Deployment is resumed", now_));
  }
}

DeploymentStatus Planner::CalculateStatusNow() const {
  Deployment d = d_;
  *d.mutable_status() = status_;
  std::vector<const ReplicaSet*> all;
  for (Working* w : All()) all.push_back(&w->rs);
  return CalculateStatus(d, all, new_rs_ != nullptr ? &new_rs_->rs : nullptr, now_);
}

void Planner::SyncRolloutStatus() {
  DeploymentStatus next = CalculateStatusNow();
  if (!HasProgressDeadline(d_)) RemoveCondition(&next, kProgressing);
  const DeploymentCondition* current = GetCondition(status_, kProgressing);
  const bool complete = next.replicas() == next.updated_replicas() && current != nullptr &&
                        current->reason() == kNewReplicaSetAvailable;
  const std::string rs_name = new_rs_ != nullptr ? new_rs_->rs.metadata().name() : "";
  if (HasProgressDeadline(d_) && !complete) {
    if (DeploymentComplete(d_, next)) {
      SetCondition(&next, NewCondition(kProgressing, "True", kNewReplicaSetAvailable,
                                       absl::StrCat("ReplicaSet \"", rs_name,
                                                    "\" has successfully progressed."),
                                       now_));
    } else if (DeploymentProgressing(d_, next)) {
      // Progress refreshes lastUpdateTime even when the reason stays the same.
      DeploymentCondition c = NewCondition(
          kProgressing, "True", kReplicaSetUpdated,
          absl::StrCat("ReplicaSet \"", rs_name, "\" is progressing."), now_);
      if (current != nullptr) {
        if (current->status() == "True") {
          *c.mutable_last_transition_time() = current->last_transition_time();
        }
        RemoveCondition(&next, kProgressing);
      }
      SetCondition(&next, std::move(c));
    } else if (DeploymentTimedOut(d_, next, now_)) {
      SetCondition(&next, NewCondition(kProgressing, "False", kProgressDeadlineExceeded,
                                       absl::StrCat("ReplicaSet \"", rs_name,
                                                    "\" has timed out progressing."),
                                       now_));
    }
  }
  final_status_ = std::move(next);
  // A rollout still in progress is looked at again when its deadline would pass.
  const DeploymentCondition* c = GetCondition(final_status_, kProgressing);
  if (HasProgressDeadline(d_) && c != nullptr && c->status() == "True" &&
      c->reason() != kNewReplicaSetAvailable && !DeploymentComplete(d_, final_status_)) {
    absl::Duration after = api::FromMetaTime(c->last_update_time()) +
                           absl::Seconds(d_.spec().progress_deadline_seconds()) - now_;
    plan_.requeue_after = std::max(after, absl::ZeroDuration()) + absl::Seconds(1);
  }
}

void Planner::RolloutRolling() {
  if (!SyncRevision(/*create=*/true)) return SyncDeploymentStatus();
  if (ReconcileNewReplicaSet()) return SyncRolloutStatus();
  if (ReconcileOldReplicaSets()) return SyncRolloutStatus();
  if (DeploymentComplete(d_, d_.status())) CleanupDeployment();
  SyncRolloutStatus();
}

void Planner::RolloutRecreate() {
  SyncRevision(/*create=*/false);
  bool scaled_down = false;
  for (Working* w : Active(old_)) scaled_down = ScaleAndRecord(w, 0) || scaled_down;
  if (scaled_down) return SyncRolloutStatus();
  // Wait until the old pods are gone.
  int32_t old_pods = 0;
  for (Working* w : old_) old_pods += w->rs.status().replicas();
  if (old_pods > 0) return SyncRolloutStatus();
  if (new_rs_ == nullptr && !SyncRevision(/*create=*/true)) return SyncDeploymentStatus();
  ScaleAndRecord(new_rs_, replicas_);
  if (DeploymentComplete(d_, d_.status())) CleanupDeployment();
  SyncRolloutStatus();
}

Plan Planner::Run(const std::vector<ReplicaSet>& replica_sets) {
  absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(d_.spec().selector());
  // A selector that selects everything (or none that parses) would claim every replica set of
  // the namespace: Kubernetes does nothing but record the generation.
  if (!selector.ok() || selector->Empty()) {
    DeploymentStatus next = d_.status();
    next.set_observed_generation(d_.metadata().generation());
    if (!StatusEqual(next, d_.status())) plan_.status = next;
    return std::move(plan_);
  }
  Claim(replica_sets, *selector);

  if (d_.metadata().has_deletion_timestamp()) {
    SyncRevision(/*create=*/false);
    SyncDeploymentStatus();
  } else {
    CheckPausedConditions();
    if (d_.spec().paused()) {
      SyncRevision(/*create=*/false);
      Scale();
      CleanupDeployment();
      SyncDeploymentStatus();
    } else {
      SyncRevision(/*create=*/false);
      if (IsScalingEvent()) {
        Scale();
        SyncDeploymentStatus();
      } else if (IsRollingUpdate(d_)) {
        RolloutRolling();
      } else {
        RolloutRecreate();
      }
    }
  }

  for (Working* w : touched_) {
    ReplicaSetAction action;
    action.type = w->deleted   ? ReplicaSetAction::Type::kDelete
                  : w->created ? ReplicaSetAction::Type::kCreate
                               : ReplicaSetAction::Type::kUpdate;
    action.replica_set = w->rs;
    plan_.actions.push_back(std::move(action));
  }
  if (!StatusEqual(final_status_, d_.status())) plan_.status = final_status_;
  return std::move(plan_);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string SafeEncodeString(absl::string_view text) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string out(text.size(), ' ');
  for (size_t i = 0; i < text.size(); ++i) {
    out[i] = kAlphabet[static_cast<unsigned char>(text[i]) % 27];
  }
  return out;
}

std::string ComputeHash(const PodTemplateSpec& pod_template,
                        std::optional<int32_t> collision_count) {
  uint32_t hash = 2166136261u;
  auto add = [&hash](absl::string_view bytes) {
    for (unsigned char c : bytes) {
      hash ^= c;
      hash *= 16777619u;
    }
  };
  add(Deterministic(pod_template));
  if (collision_count) add(absl::StrCat(*collision_count));
  return SafeEncodeString(absl::StrCat(hash));
}

bool EqualIgnoreHash(const PodTemplateSpec& a, const PodTemplateSpec& b) {
  return Deterministic(WithoutHash(a)) == Deterministic(WithoutHash(b));
}

absl::StatusOr<int32_t> ScaledValue(const IntOrString& value, int32_t total, bool round_up) {
  if (value.value_case() != IntOrString::kStrVal) return value.int_val();
  absl::string_view s = value.str_val();
  int32_t percent = 0;
  if (s.empty() || s.back() != '%' || !absl::SimpleAtoi(s.substr(0, s.size() - 1), &percent)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid value for IntOrString: \"", s,
                                                   "\": must be an integer or a percentage"));
  }
  double v = static_cast<double>(percent) * total / 100.0;
  return static_cast<int32_t>(round_up ? std::ceil(v) : std::floor(v));
}

Fenceposts ResolveFenceposts(const Deployment& deployment) {
  Fenceposts out;
  if (!IsRollingUpdate(deployment)) return out;
  const auto& rolling = deployment.spec().strategy().rolling_update();
  const int32_t replicas = DesiredReplicas(deployment);
  IntOrString surge = rolling.max_surge();
  IntOrString unavailable = rolling.max_unavailable();
  // Unset values are the defaults (the apiserver sets them; a bare object in a test may not).
  if (!rolling.has_max_surge()) surge.set_str_val("25%");
  if (!rolling.has_max_unavailable()) unavailable.set_str_val("25%");
  absl::StatusOr<int32_t> s = ScaledValue(surge, replicas, /*round_up=*/true);
  absl::StatusOr<int32_t> u = ScaledValue(unavailable, replicas, /*round_up=*/false);
  out.max_surge = s.ok() ? std::max(*s, 0) : 0;
  out.max_unavailable = u.ok() ? std::max(*u, 0) : 0;
  if (out.max_surge == 0 && out.max_unavailable == 0) out.max_unavailable = 1;
  return out;
}

int32_t MaxSurge(const Deployment& deployment) {
  return IsRollingUpdate(deployment) ? ResolveFenceposts(deployment).max_surge : 0;
}

int32_t MaxUnavailable(const Deployment& deployment) {
  const int32_t replicas = DesiredReplicas(deployment);
  if (!IsRollingUpdate(deployment) || replicas == 0) return 0;
  return std::min(ResolveFenceposts(deployment).max_unavailable, replicas);
}

int32_t Replicas(const ReplicaSet& rs) {
  return rs.spec().has_replicas() ? rs.spec().replicas() : 1;
}

int64_t Revision(const ReplicaSet& rs) {
  auto it = rs.metadata().annotations().find(kRevisionAnnotation);
  int64_t revision = 0;
  if (it == rs.metadata().annotations().end() || !absl::SimpleAtoi(it->second, &revision)) {
    return 0;
  }
  return revision;
}

const ReplicaSet* FindNewReplicaSet(const Deployment& deployment,
                                    const std::vector<ReplicaSet>& replica_sets) {
  const ReplicaSet* best = nullptr;
  for (const ReplicaSet& rs : replica_sets) {
    if (!EqualIgnoreHash(rs.spec().template_(), deployment.spec().template_())) continue;
    if (best == nullptr || CreatedBefore(rs, *best)) best = &rs;
  }
  return best;
}

DeploymentStatus CalculateStatus(const Deployment& deployment,
                                 const std::vector<const ReplicaSet*>& all,
                                 const ReplicaSet* new_rs, absl::Time now) {
  int32_t available = 0, spec_total = 0, actual = 0, ready = 0;
  for (const ReplicaSet* rs : all) {
    available += rs->status().available_replicas();
    spec_total += Replicas(*rs);
    actual += rs->status().replicas();
    ready += rs->status().ready_replicas();
  }
  DeploymentStatus status;
  status.set_observed_generation(deployment.metadata().generation());
  status.set_replicas(actual);
  status.set_updated_replicas(new_rs != nullptr ? new_rs->status().replicas() : 0);
  status.set_ready_replicas(ready);
  status.set_available_replicas(available);
  status.set_unavailable_replicas(std::max(spec_total - available, 0));
  if (deployment.status().has_collision_count()) {
    status.set_collision_count(deployment.status().collision_count());
  }
  *status.mutable_conditions() = deployment.status().conditions();
  if (available >= DesiredReplicas(deployment) - MaxUnavailable(deployment)) {
    SetCondition(&status, NewCondition(kAvailable, "True", kMinimumReplicasAvailable,
                                       "Deployment has minimum availability.", now));
  } else {
    SetCondition(&status, NewCondition(kAvailable, "False", kMinimumReplicasUnavailable,
                                       "Deployment does not have minimum availability.", now));
  }
  return status;
}

bool DeploymentComplete(const Deployment& deployment, const DeploymentStatus& status) {
  const int32_t replicas = DesiredReplicas(deployment);
  return status.updated_replicas() == replicas && status.replicas() == replicas &&
         status.available_replicas() == replicas &&
         status.observed_generation() >= deployment.metadata().generation();
}

Plan PlanRollout(const Deployment& deployment, const std::vector<ReplicaSet>& replica_sets,
                 absl::Time now) {
  return Planner(deployment, now).Run(replica_sets);
}

absl::StatusOr<PodTemplateSpec> RollbackTemplate(const Deployment& deployment,
                                                 const std::vector<ReplicaSet>& replica_sets,
                                                 int64_t to_revision, bool* unchanged) {
  if (deployment.spec().paused()) {
    return absl::FailedPreconditionError(
        absl::StrCat("you cannot rollback a paused deployment; resume it first with "
                     "'capstanctl rollout resume deployment/",
                     deployment.metadata().name(), "' and try again"));
  }
  std::vector<const ReplicaSet*> owned;
  for (const ReplicaSet& rs : replica_sets) {
    const OwnerReference* ref = ControllerRef(rs);
    if (ref != nullptr && ref->uid() == deployment.metadata().uid()) owned.push_back(&rs);
  }
  int64_t target = to_revision;
  if (target == 0) {
    // kubectl's previous revision: the second-highest.
    int64_t max = 0, second = 0;
    for (const ReplicaSet* rs : owned) {
      const int64_t r = Revision(*rs);
      if (r > max) {
        second = max;
        max = r;
      } else if (r > second && r < max) {
        second = r;
      }
    }
    if (second == 0) return absl::NotFoundError("no rollout history found");
    target = second;
  }
  for (const ReplicaSet* rs : owned) {
    if (Revision(*rs) != target) continue;
    PodTemplateSpec t = WithoutHash(rs->spec().template_());
    if (unchanged != nullptr) *unchanged = EqualIgnoreHash(t, deployment.spec().template_());
    return t;
  }
  return absl::NotFoundError(absl::StrCat("unable to find specified revision ", target,
                                          " in history"));
}

}  // namespace capstan::controllermanager::deployment
