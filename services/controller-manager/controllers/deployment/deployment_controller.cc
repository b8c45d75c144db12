#include "services/controller-manager/controllers/deployment/deployment_controller.h"

#include <algorithm>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"
#include "lib/api/labels.h"
#include "services/controller-manager/controllers/deployment/rollout.h"

namespace capstan::controllermanager {
namespace {

using capstan::apps::v1::Deployment;
using capstan::apps::v1::ReplicaSet;

const capstan::meta::v1::OwnerReference* ControllerOf(const ReplicaSet& rs) {
  for (const auto& ref : rs.metadata().owner_references()) {
    if (ref.has_controller() && ref.controller()) return &ref;
  }
  return nullptr;
}

}  // namespace

DeploymentController::DeploymentController(const ControllerContext& context,
                                           client::Clock* clock)
    : context_(context),
      clock_(clock),
      deployments_(context.informers->For<Deployment>()),
      replica_sets_(context.informers->For<ReplicaSet>()),
      controller_({.name = "deployment",
                   .workers = context.workers,
                   .registry = context.registry,
                   .clock = clock},
                  this) {
  deployments_.AddEventHandler({
      .on_add = [this](const auto& d) { EnqueueDeployment(*d); },
      .on_update = [this](const auto&, const auto& d) { EnqueueDeployment(*d); },
      .on_delete = [this](const auto& d) { EnqueueDeployment(*d); },
  });
  replica_sets_.AddEventHandler({
      .on_add = [this](const auto& rs) { EnqueueForReplicaSet(*rs); },
      .on_update =
          [this](const auto& old_rs, const auto& rs) {
            const auto* old_ref = ControllerOf(*old_rs);
            const auto* ref = ControllerOf(*rs);
            if (old_ref != nullptr && (ref == nullptr || ref->uid() != old_ref->uid())) {
              EnqueueForReplicaSet(*old_rs);
            }
            EnqueueForReplicaSet(*rs);
          },
      .on_delete = [this](const auto& rs) { EnqueueForReplicaSet(*rs); },
  });
}

DeploymentController::~DeploymentController() { Stop(); }

void DeploymentController::Run() {
  controller_.Run({[this] { return deployments_.HasSynced(); },
                   [this] { return replica_sets_.HasSynced(); }});
}

void DeploymentController::Stop() { controller_.Stop(); }

void DeploymentController::EnqueueDeployment(const Deployment& deployment) {
  controller_.Enqueue(
      client::ObjectKey(deployment.metadata().namespace_(), deployment.metadata().name()));
}

void DeploymentController::EnqueueForReplicaSet(const ReplicaSet& rs) {
  const std::string& ns = rs.metadata().namespace_();
  if (const auto* ref = ControllerOf(rs)) {
    if (ref->kind() == "Deployment") controller_.Enqueue(client::ObjectKey(ns, ref->name()));
    return;
  }
  for (const auto& d : deployments_.lister().ListNamespace(ns)) {
    absl::StatusOr<api::LabelSelector> selector =
        api::LabelSelector::FromProto(d->spec().selector());
    if (selector.ok() && !selector->Empty() && selector->Matches(rs.metadata().labels())) {
      EnqueueDeployment(*d);
    }
  }
}

void DeploymentController::RememberWrites(const std::string& key, std::vector<Write> writes) {
  if (writes.empty()) return;
  absl::MutexLock lock(&mu_);
  auto& pending = writes_[key];
  for (Write& w : writes) pending.push_back(std::move(w));
}

bool DeploymentController::CacheHoldsWrites(const std::string& key) {
  constexpr absl::Duration kStaleWriteTimeout = absl::Seconds(10);
  const std::string ns = client::SplitObjectKey(key).first;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = writes_.find(key);
  if (it == writes_.end()) return true;
  std::vector<Write>& pending = it->second;
  pending.erase(std::remove_if(pending.begin(), pending.end(),
                               [&](const Write& w) {
                                 if (now - w.at > kStaleWriteTimeout) return true;
                                 auto cached = replica_sets_.lister().Get(ns, w.name);
                                 if (w.resource_version == 0) return cached == nullptr;
                                 int64_t rv = 0;
                                 return cached != nullptr &&
                                        absl::SimpleAtoi(cached->metadata().resource_version(),
                                                         &rv) &&
                                        rv >= w.resource_version;
                               }),
                pending.end());
  if (!pending.empty()) return false;
  writes_.erase(it);
  return true;
}

absl::StatusOr<client::ReconcileResult> DeploymentController::Reconcile(const std::string& key) {
  auto [ns, name] = client::SplitObjectKey(key);
  std::shared_ptr<const Deployment> cached = deployments_.lister().Get(ns, name);
  if (cached == nullptr) return client::ReconcileResult{};  // gone: its ReplicaSets are the GC's
  // The ReplicaSet events that bring the cache up to date enqueue the deployment again; the
  // requeue is a safety net.
  if (!CacheHoldsWrites(key)) return client::ReconcileResult{.requeue_after = absl::Milliseconds(100)};
  std::vector<ReplicaSet> replica_sets;
  for (const auto& rs : replica_sets_.lister().ListNamespace(ns)) replica_sets.push_back(*rs);

  deployment::Plan plan = deployment::PlanRollout(*cached, replica_sets, clock_->Now());

  std::vector<Write> writes;
  for (const deployment::ReplicaSetAction& action : plan.actions) {
    const ReplicaSet& rs = action.replica_set;
    absl::StatusOr<ReplicaSet> written;
    switch (action.type) {
      case deployment::ReplicaSetAction::Type::kCreate:
        written = context_.client->Create(rs);
        break;
      case deployment::ReplicaSetAction::Type::kUpdate:
        written = context_.client->Update(rs);
        break;
      case deployment::ReplicaSetAction::Type::kDelete: {
        client::DeleteOptions options;
        options.precondition_uid = rs.metadata().uid();
        written = context_.client->Delete<ReplicaSet>(ns, rs.metadata().name(), options);
        if (api::Reason(written.status()) == "NotFound") written = ReplicaSet();
        break;
      }
    }
    if (written.ok()) {
      int64_t rv = 0;
      if (action.type != deployment::ReplicaSetAction::Type::kDelete &&
          !absl::SimpleAtoi(written->metadata().resource_version(), &rv)) {
        rv = 0;
      }
      writes.push_back({rs.metadata().name(), rv, clock_->Now()});
    }
    // The rest of the plan depends on this write: replan from the caches (with backoff).
    if (!written.ok()) {
      RememberWrites(key, std::move(writes));
      return written.status();
    }
  }
  RememberWrites(key, std::move(writes));
  if (context_.recorder != nullptr) {
    for (const deployment::PlannedEvent& event : plan.events) {
      context_.recorder->Event(*cached, event.type, event.reason, event.message);
    }
  }

  Deployment latest = *cached;
  if (plan.revision) {
    (*latest.mutable_metadata()->mutable_annotations())[deployment::kRevisionAnnotation] =
        *plan.revision;
    absl::StatusOr<Deployment> updated = context_.client->Update(latest);
    if (!updated.ok()) return updated.status();
    latest = std::move(*updated);
  }
  if (plan.status) {
    *latest.mutable_status() = *plan.status;
    absl::StatusOr<Deployment> updated = context_.client->UpdateStatus(latest);
    if (!updated.ok()) return updated.status();
  }
  return client::ReconcileResult{.requeue_after = plan.requeue_after};
}

}  // namespace capstan::controllermanager
