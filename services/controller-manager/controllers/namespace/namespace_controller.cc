#include "services/controller-manager/controllers/namespace/namespace_controller.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"

namespace capstan::controllermanager::namespacecontroller {
namespace {

using capstan::core::v1::Namespace;
using capstan::core::v1::NamespaceCondition;

// Read-modify-write attempts before giving the key back to the queue's backoff.
constexpr int kConflictRetries = 5;

bool HasKubernetesFinalizer(const Namespace& ns) {
  return std::find(ns.spec().finalizers().begin(), ns.spec().finalizers().end(),
                   kKubernetesFinalizer) != ns.spec().finalizers().end();
}

// One condition type with its "all is well" and "something is wrong" forms
// (pkg/controller/namespace/deletion/status_condition_utils.go).
struct ConditionSpec {
  const char* type;
  const char* ok_reason;
  const char* ok_message;
  const char* failed_reason;
};

constexpr ConditionSpec kDiscovery = {"NamespaceDeletionDiscoveryFailure", "ResourcesDiscovered",
                                      "All resources successfully discovered", "DiscoveryFailed"};
constexpr ConditionSpec kParsing = {
    "NamespaceDeletionGroupVersionParsingFailure", "ParsedGroupVersions",
    "All legacy kube types successfully parsed", "GroupVersionParsingFailed"};
constexpr ConditionSpec kContentFailure = {
    "NamespaceDeletionContentFailure", "ContentDeleted",
    "All content successfully deleted, may be waiting on finalization", "ContentDeletionFailed"};
constexpr ConditionSpec kContentRemaining = {"NamespaceContentRemaining", "ContentRemoved",
                                             "All content successfully removed",
                                             "SomeResourcesRemain"};
constexpr ConditionSpec kFinalizersRemaining = {
    "NamespaceFinalizersRemaining", "ContentHasNoFinalizers",
    "All content-preserving finalizers have been removed", "SomeFinalizersRemain"};

// failure: "" when all is well, else the message of the failed form.
NamespaceCondition MakeCondition(const ConditionSpec& spec, const std::string& failure) {
  NamespaceCondition c;
  c.set_type(spec.type);
  c.set_status(failure.empty() ? "False" : "True");
  c.set_reason(failure.empty() ? spec.ok_reason : spec.failed_reason);
  c.set_message(failure.empty() ? spec.ok_message : failure);
  return c;
}

}  // namespace

std::vector<NamespaceCondition> DeletionConditions(
    const ContentSummary& summary,
    const google::protobuf::RepeatedPtrField<NamespaceCondition>& existing,
    const capstan::meta::v1::Time& now) {
  std::string content_failure;
  if (!summary.failures.empty()) {
    content_failure = absl::StrCat("Failed to delete all resource types, ", summary.failures.size(),
                                   " remaining: ", absl::StrJoin(summary.failures, ", "));
  }
  std::vector<std::string> resources;
  for (const auto& [resource, count] : summary.remaining_by_resource) {
    resources.push_back(absl::StrCat(resource, " has ", count, " resource instances"));
  }
  std::vector<std::string> finalizers;
  for (const auto& [finalizer, count] : summary.remaining_by_finalizer) {
    finalizers.push_back(absl::StrCat(finalizer, " in ", count, " resource instances"));
  }
  std::vector<NamespaceCondition> out = {
      MakeCondition(kDiscovery, ""),
      MakeCondition(kParsing, ""),
      MakeCondition(kContentFailure, content_failure),
      MakeCondition(kContentRemaining, resources.empty()
                                           ? ""
                                           : absl::StrCat("Some resources are remaining: ",
                                                          absl::StrJoin(resources, ", "))),
      MakeCondition(kFinalizersRemaining,
                    finalizers.empty()
                        ? ""
                        : absl::StrCat("Some content in the namespace has finalizers remaining: ",
                                       absl::StrJoin(finalizers, ", "))),
  };
  for (NamespaceCondition& c : out) {
    auto old = std::find_if(existing.begin(), existing.end(),
                            [&](const NamespaceCondition& e) { return e.type() == c.type(); });
    if (old != existing.end() && old->status() == c.status()) {
      *c.mutable_last_transition_time() = old->last_transition_time();
    } else {
      *c.mutable_last_transition_time() = now;
    }
  }
  const size_t ours = out.size();
  for (const NamespaceCondition& e : existing) {
    bool known = std::any_of(out.begin(), out.begin() + ours,
                             [&](const NamespaceCondition& c) { return c.type() == e.type(); });
    if (!known) out.push_back(e);
  }
  return out;
}

NamespaceController::NamespaceController(const ControllerContext& ctx,
                                         NamespaceControllerOptions options)
    : client_(ctx.client),
      options_(options),
      namespaces_(ctx.informers->For<Namespace>()),
      controller_({.name = "namespace", .workers = ctx.workers, .registry = ctx.registry}, this) {
  auto enqueue_if_deleting = [this](const std::shared_ptr<const Namespace>& ns) {
    if (ns != nullptr && ns->metadata().has_deletion_timestamp()) {
      controller_.Enqueue(ns->metadata().name());
    }
  };
  namespaces_.AddEventHandler(
      {.on_add = enqueue_if_deleting,
       .on_update = [enqueue_if_deleting](const std::shared_ptr<const Namespace>&,
                                          const std::shared_ptr<const Namespace>& ns) {
         enqueue_if_deleting(ns);
       }});
}

NamespaceController::~NamespaceController() { Stop(); }

void NamespaceController::Run() {
  controller_.Run({[this] { return namespaces_.HasSynced(); }});
}

void NamespaceController::Stop() { controller_.Stop(); }

absl::StatusOr<client::ReconcileResult> NamespaceController::Reconcile(const std::string& key) {
  std::shared_ptr<const Namespace> ns = namespaces_.lister().Get(key);
  if (ns == nullptr || !ns->metadata().has_deletion_timestamp() || !HasKubernetesFinalizer(*ns)) {
    return client::ReconcileResult{};
  }
  const std::string& uid = ns->metadata().uid();
  ContentSummary summary = DeleteContent(key);
  absl::Status updated = UpdateConditions(key, uid, summary);
  if (!updated.ok()) return updated;
  if (!summary.failures.empty()) {
    return absl::UnavailableError(
        absl::StrCat("namespace ", key, ": ", absl::StrJoin(summary.failures, "; ")));
  }
  if (!summary.Done()) return client::ReconcileResult{options_.content_requeue};
  absl::Status removed = RemoveFinalizer(key, uid);
  if (!removed.ok()) return removed;
  return client::ReconcileResult{};
}

ContentSummary NamespaceController::DeleteContent(const std::string& ns) {
  ContentSummary summary;
  for (const api::ResourceInfo& info : api::Scheme::BuiltIn().resources()) {
    if (!info.namespaced) continue;
    const bool pods = info.group.empty() && info.resource == "pods";
    absl::StatusOr<client::ObjectList<client::ObjectPtr>> list = client_->List(info, ns);
    if (!list.ok()) {
      summary.failures.push_back(
          absl::StrCat(info.QualifiedResource(), ": ", list.status().message()));
      continue;
    }
    if (list->items.empty()) continue;
    std::string failure;
    for (const client::ObjectPtr& item : list->items) {
      const capstan::meta::v1::ObjectMeta& meta = api::Meta(*item);
      // Something already deleted waits for its finalizers; a pod waiting for its grace period
      // is asked again with none.
      bool pod_waiting = pods && meta.deletion_grace_period_seconds() > 0;
      if (meta.has_deletion_timestamp() && !pod_waiting) continue;
      client::DeleteOptions options;
      options.precondition_uid = meta.uid();
      options.propagation_policy = "Background";
      if (pods) options.grace_period_seconds = 0;
      absl::StatusOr<client::ObjectPtr> deleted = client_->Delete(info, ns, meta.name(), options);
      std::string reason = api::Reason(deleted.status());
      if (!deleted.ok() && reason != "NotFound" && reason != "Conflict" && failure.empty()) {
        failure = absl::StrCat(info.QualifiedResource(), ": ", deleted.status().message());
      }
    }
    if (!failure.empty()) summary.failures.push_back(std::move(failure));
    absl::StatusOr<client::ObjectList<client::ObjectPtr>> left = client_->List(info, ns);
    if (!left.ok()) {
      summary.failures.push_back(
          absl::StrCat(info.QualifiedResource(), ": ", left.status().message()));
      continue;
    }
    if (left->items.empty()) continue;
    // Kubernetes names a resource "resource.group": "pods.", "replicasets.apps".
    summary.remaining_by_resource[absl::StrCat(info.resource, ".", info.group)] =
        static_cast<int>(left->items.size());
    for (const client::ObjectPtr& item : left->items) {
      for (const std::string& finalizer : api::Meta(*item).finalizers()) {
        ++summary.remaining_by_finalizer[finalizer];
      }
    }
  }
  return summary;
}

absl::Status NamespaceController::UpdateConditions(const std::string& ns, const std::string& uid,
                                                   const ContentSummary& summary) {
  absl::Status last;
  for (int attempt = 0; attempt < kConflictRetries; ++attempt) {
    absl::StatusOr<Namespace> current = client_->Get<Namespace>("", ns);
    if (api::Reason(current.status()) == "NotFound") return absl::OkStatus();
    if (!current.ok()) return current.status();
    if (current->metadata().uid() != uid) return absl::OkStatus();
    absl::Time now_time = absl::Now();
    capstan::meta::v1::Time now;
    now.set_seconds(absl::ToUnixSeconds(now_time));
    std::vector<NamespaceCondition> conditions =
        DeletionConditions(summary, current->status().conditions(), now);
    Namespace next = *current;
    next.mutable_status()->clear_conditions();
    for (NamespaceCondition& c : conditions)
      *next.mutable_status()->add_conditions() = std::move(c);
    if (next.status().SerializeAsString() == current->status().SerializeAsString()) {
      return absl::OkStatus();
    }
    absl::StatusOr<Namespace> written = client_->UpdateStatus(next);
    if (written.ok() || api::Reason(written.status()) == "NotFound") return absl::OkStatus();
    if (api::Reason(written.status()) != "Conflict") return written.status();
    last = written.status();
  }
  return last;
}

absl::Status NamespaceController::RemoveFinalizer(const std::string& ns, const std::string& uid) {
  absl::Status last;
  for (int attempt = 0; attempt < kConflictRetries; ++attempt) {
    absl::StatusOr<Namespace> current = client_->Get<Namespace>("", ns);
    if (api::Reason(current.status()) == "NotFound") return absl::OkStatus();
    if (!current.ok()) return current.status();
    if (current->metadata().uid() != uid || !HasKubernetesFinalizer(*current)) {
      return absl::OkStatus();
    }
    auto* finalizers = current->mutable_spec()->mutable_finalizers();
    finalizers->erase(std::remove(finalizers->begin(), finalizers->end(), kKubernetesFinalizer),
                      finalizers->end());
    absl::StatusOr<Namespace> written = client_->Update(*current);
    if (written.ok() || api::Reason(written.status()) == "NotFound") return absl::OkStatus();
    if (api::Reason(written.status()) != "Conflict") return written.status();
    last = written.status();
  }
  return last;
}

}  // namespace capstan::controllermanager::namespacecontroller
