#include "services/controller-manager/controllers/nodelifecycle/node_health.h"

#include <algorithm>
#include <string>
#include <vector>

#include "lib/api/meta_time.h"
#include "lib/api/taints.h"

namespace capstan::controllermanager::nodelifecycle {
namespace {

using capstan::core::v1::Node;
using capstan::core::v1::NodeCondition;
using capstan::core::v1::Taint;
using Conditions = google::protobuf::RepeatedPtrField<NodeCondition>;

constexpr char kReady[] = "Ready";
// The conditions the agent owns; the controller speaks for it when it is silent.
// NetworkUnavailable is not among them: the network plugin owns it.
constexpr const char* kAgentConditions[] = {kReady, "MemoryPressure", "DiskPressure",
                                            "PIDPressure"};

const NodeCondition* FindCondition(const Conditions& conditions, const std::string& type) {
  for (const NodeCondition& c : conditions) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

// A condition type and status that calls for a NoSchedule taint (Kubernetes'
// nodeConditionToTaintKeyStatusMap).
struct ConditionTaint {
  const char* condition;
  const char* status;
  const char* taint_key;
};
constexpr ConditionTaint kNoScheduleTaints[] = {
    {kReady, "False", api::kTaintNodeNotReady},
    {kReady, "Unknown", api::kTaintNodeUnreachable},
    {"MemoryPressure", "True", api::kTaintNodeMemoryPressure},
    {"DiskPressure", "True", api::kTaintNodeDiskPressure},
    {"NetworkUnavailable", "True", api::kTaintNodeNetworkUnavailable},
    {"PIDPressure", "True", api::kTaintNodePIDPressure},
};

// Whether this controller owns taint (adds and removes it by the node's state).
bool Managed(const Taint& taint) {
  if (taint.effect() == api::kTaintEffectNoExecute) {
    return taint.key() == api::kTaintNodeNotReady || taint.key() == api::kTaintNodeUnreachable;
  }
  if (taint.effect() != api::kTaintEffectNoSchedule) return false;
  if (taint.key() == api::kTaintNodeUnschedulable) return true;
  return std::any_of(std::begin(kNoScheduleTaints), std::end(kNoScheduleTaints),
                     [&](const ConditionTaint& ct) { return taint.key() == ct.taint_key; });
}

Taint MakeTaint(const char* key, const char* effect) {
  Taint taint;
  taint.set_key(key);
  taint.set_effect(effect);
  return taint;
}

}  // namespace

absl::Time LastHeartbeat(const Node& node, const capstan::coordination::v1::Lease* lease) {
  absl::Time last = absl::InfinitePast();
  if (const NodeCondition* ready = FindCondition(node.status().conditions(), kReady)) {
    if (ready->has_last_heartbeat_time()) {
      last = api::FromMetaTime(ready->last_heartbeat_time());
    }
  }
  if (lease != nullptr && lease->spec().has_renew_time()) {
    last = std::max(last, api::FromMicroTime(lease->spec().renew_time()));
  }
  if (last == absl::InfinitePast()) last = api::FromMetaTime(node.metadata().creation_timestamp());
  return last;
}

HealthCheck CheckNodeHealth(const Node& node, const capstan::coordination::v1::Lease* lease,
                            absl::Time now, const HealthOptions& options) {
  HealthCheck check;
  check.conditions = node.status().conditions();
  // An agent that never posted Ready gets the longer startup grace (it may still be booting).
  const bool never_posted = FindCondition(check.conditions, kReady) == nullptr;
  check.stale_at = LastHeartbeat(node, lease) +
                   (never_posted ? options.startup_grace_period : options.grace_period);
  check.stale = now >= check.stale_at;
  if (!check.stale) return check;

  const capstan::meta::v1::Time now_meta = api::ToMetaTime(now);
  for (const char* type : kAgentConditions) {
    NodeCondition* existing = nullptr;
    for (NodeCondition& c : check.conditions) {
      if (c.type() == type) existing = &c;
    }
    if (existing == nullptr) {
      NodeCondition* added = check.conditions.Add();
      added->set_type(type);
      added->set_status("Unknown");
      added->set_reason(kReasonNodeStatusNeverUpdated);
      added->set_message(kMessageNodeStatusNeverUpdated);
      *added->mutable_last_heartbeat_time() = node.metadata().creation_timestamp();
      *added->mutable_last_transition_time() = now_meta;
      check.conditions_changed = true;
    } else if (existing->status() != "Unknown") {
      existing->set_status("Unknown");
      existing->set_reason(kReasonNodeStatusUnknown);
      existing->set_message(kMessageNodeStatusUnknown);
      *existing->mutable_last_transition_time() = now_meta;
      check.conditions_changed = true;
    }
  }
  return check;
}

TaintUpdate ReconcileTaints(const google::protobuf::RepeatedPtrField<Taint>& taints,
                            const Conditions& conditions, bool unschedulable, absl::Time now) {
  std::vector<Taint> wanted;
  const NodeCondition* ready = FindCondition(conditions, kReady);
  if (ready != nullptr && ready->status() == "False") {
    wanted.push_back(MakeTaint(api::kTaintNodeNotReady, api::kTaintEffectNoExecute));
  } else if (ready != nullptr && ready->status() == "Unknown") {
    wanted.push_back(MakeTaint(api::kTaintNodeUnreachable, api::kTaintEffectNoExecute));
  }
  for (const ConditionTaint& ct : kNoScheduleTaints) {
    const NodeCondition* c = FindCondition(conditions, ct.condition);
    if (c != nullptr && c->status() == ct.status) {
      wanted.push_back(MakeTaint(ct.taint_key, api::kTaintEffectNoSchedule));
    }
  }
  if (unschedulable) {
    wanted.push_back(MakeTaint(api::kTaintNodeUnschedulable, api::kTaintEffectNoSchedule));
  }

  auto is_wanted = [&](const Taint& taint) {
    return std::any_of(wanted.begin(), wanted.end(),
                       [&](const Taint& w) { return api::MatchTaint(w, taint); });
  };
  TaintUpdate update;
  for (const Taint& taint : taints) {
    if (Managed(taint) && !is_wanted(taint)) {
      update.changed = true;
      continue;
    }
    *update.taints.Add() = taint;
  }
  for (Taint& taint : wanted) {
    bool present = std::any_of(update.taints.begin(), update.taints.end(),
                               [&](const Taint& t) { return api::MatchTaint(t, taint); });
    if (present) continue;
    // NoExecute taints carry the time they were added: tolerationSeconds count from it.
    if (taint.effect() == api::kTaintEffectNoExecute) {
      *taint.mutable_time_added() = api::ToMetaTime(now);
    }
    *update.taints.Add() = std::move(taint);
    update.changed = true;
  }
  return update;
}

}  // namespace capstan::controllermanager::nodelifecycle
