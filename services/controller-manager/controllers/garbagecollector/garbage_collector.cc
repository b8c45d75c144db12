#include "services/controller-manager/controllers/garbagecollector/garbage_collector.h"

#include <algorithm>
#include <functional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"

namespace capstan::controllermanager::garbagecollector {
namespace {

using capstan::meta::v1::OwnerReference;

// Read-modify-write attempts before giving the key back to the queue's backoff.
constexpr int kConflictRetries = 5;

const api::ResourceInfo* InfoOf(const std::string& api_version, const std::string& kind) {
  return api::Scheme::BuiltIn().ByKind(api_version, kind);
}

bool HasFinalizer(const capstan::meta::v1::ObjectMeta& meta, const std::string& finalizer) {
  return std::find(meta.finalizers().begin(), meta.finalizers().end(), finalizer) !=
         meta.finalizers().end();
}

// Reads the object identity names, lets mutate change it (false: nothing to change) and writes it
// back at the resourceVersion read, again on Conflict. An object that is gone, or whose name now
// belongs to another uid, needs nothing.
absl::Status ReadModifyWrite(client::Client* client, const Identity& identity,
                             const std::function<bool(google::protobuf::Message*)>& mutate) {
  const api::ResourceInfo* info = InfoOf(identity.api_version, identity.kind);
  if (info == nullptr) return absl::OkStatus();
  absl::Status last;
  for (int attempt = 0; attempt < kConflictRetries; ++attempt) {
    absl::StatusOr<client::ObjectPtr> got = client->Get(*info, identity.ns, identity.name);
    if (api::Reason(got.status()) == "NotFound") return absl::OkStatus();
    if (!got.ok()) return got.status();
    if (api::Meta(**got).uid() != identity.uid) return absl::OkStatus();
    if (!mutate(got->get())) return absl::OkStatus();
    absl::StatusOr<client::ObjectPtr> updated = client->Update(*info, **got);
    if (updated.ok() || api::Reason(updated.status()) == "NotFound") return absl::OkStatus();
    if (api::Reason(updated.status()) != "Conflict") return updated.status();
    last = updated.status();
  }
  return last;
}

}  // namespace

absl::StatusOr<client::ReconcileResult> GarbageCollector::QueueReconciler::Reconcile(
    const std::string& uid) {
  absl::Status s = (gc_->*method_)(uid);
  if (!s.ok()) return s;
  return client::ReconcileResult{};
}

GarbageCollector::GarbageCollector(const ControllerContext& ctx)
    : client_(ctx.client),
      delete_reconciler_(this, &GarbageCollector::AttemptToDelete),
      orphan_reconciler_(this, &GarbageCollector::AttemptToOrphan),
      attempt_to_delete_({.name = "garbagecollector_attempt_to_delete",
                          .workers = ctx.workers,
                          .registry = ctx.registry},
                         &delete_reconciler_),
      attempt_to_orphan_({.name = "garbagecollector_attempt_to_orphan",
                          .workers = ctx.workers,
                          .registry = ctx.registry},
                         &orphan_reconciler_) {
  for (const api::ResourceInfo& info : api::Scheme::BuiltIn().resources()) {
    if (info.group.empty() && info.resource == "events") continue;
    std::shared_ptr<client::SharedIndexInformer> informer = ctx.informers->ForResource(info);
    const api::ResourceInfo* resource = &info;  // the scheme is static
    client::ResourceEventHandler handler;
    handler.on_add = [this, resource](const client::Object& object) {
      OnUpsert(*resource, nullptr, object);
    };
    handler.on_update = [this, resource](const client::Object& old_object,
                                         const client::Object& object) {
      OnUpsert(*resource, old_object, object);
    };
    handler.on_delete = [this](const client::Object& object) { OnDelete(object); };
    informer->AddEventHandler(std::move(handler));
    informers_.push_back(std::move(informer));
  }
}

GarbageCollector::~GarbageCollector() { Stop(); }

void GarbageCollector::Run() {
  std::vector<std::function<bool()>> synced;
  for (const auto& informer : informers_) {
    synced.push_back([informer] { return informer->HasSynced(); });
  }
  std::thread orphaner([this, &synced] { attempt_to_orphan_.Run(synced); });
  attempt_to_delete_.Run(synced);
  orphaner.join();
}

void GarbageCollector::Stop() {
  attempt_to_delete_.Stop();
  attempt_to_orphan_.Stop();
}

size_t GarbageCollector::GraphSize() const {
  absl::MutexLock lock(&mu_);
  return graph_.size();
}

void GarbageCollector::OnUpsert(const api::ResourceInfo& info, const client::Object& old_object,
                                const client::Object& object) {
  std::vector<WorkItem> work;
  {
    absl::MutexLock lock(&mu_);
    // A relist may show a name that now belongs to a new object: the old one is gone.
    if (old_object != nullptr && api::Meta(*old_object).uid() != api::Meta(*object).uid()) {
      work = graph_.Forget(api::Meta(*old_object).uid());
    }
    std::vector<WorkItem> more = graph_.Observe(NodeFromObject(info, *object));
    work.insert(work.end(), more.begin(), more.end());
  }
  Dispatch(work);
}

void GarbageCollector::OnDelete(const client::Object& object) {
  std::vector<WorkItem> work;
  {
    absl::MutexLock lock(&mu_);
    work = graph_.Forget(api::Meta(*object).uid());
  }
  Dispatch(work);
}

void GarbageCollector::Dispatch(const std::vector<WorkItem>& work) {
  for (const WorkItem& item : work) {
    if (item.queue == WorkItem::Queue::kAttemptToOrphan) {
      attempt_to_orphan_.Enqueue(item.uid);
    } else {
      attempt_to_delete_.Enqueue(item.uid);
    }
  }
}

absl::Status GarbageCollector::AttemptToDelete(const std::string& uid) {
  Node node;
  bool has_dependents = false;
  {
    absl::MutexLock lock(&mu_);
    const Node* found = graph_.Get(uid);
    if (found == nullptr) return absl::OkStatus();  // gone already
    node = *found;
    has_dependents = !graph_.Dependents(uid).empty();
  }
  if (node.deleting_dependents) return ProcessDeletingDependents(node);
  if (node.being_deleted || node.owners.empty()) return absl::OkStatus();

  std::vector<ClassifiedOwner> owners;
  for (const OwnerReference& ref : node.owners) {
    absl::StatusOr<OwnerState> state = ClassifyOwner(node, ref);
    if (!state.ok()) return state.status();
    owners.push_back({ref, *state});
  }
  DependentAction action = DecideForDependent(node, owners, has_dependents);
  switch (action.type) {
    case DependentAction::Type::kNone:
      return absl::OkStatus();
    case DependentAction::Type::kRemoveOwnerReferences:
      return RemoveOwnerReferences(node.identity, action.remove_owner_uids);
    case DependentAction::Type::kDelete:
      return DeleteObject(node.identity, action.propagation_policy);
  }
  return absl::OkStatus();
}

absl::Status GarbageCollector::ProcessDeletingDependents(const Node& owner) {
  ForegroundAction action;
  {
    absl::MutexLock lock(&mu_);
    action = DecideForeground(graph_, owner.identity.uid);
  }
  for (const std::string& dependent : action.delete_dependents)
    attempt_to_delete_.Enqueue(dependent);
  if (!action.remove_finalizer) return absl::OkStatus();  // a dependent's removal requeues us
  return RemoveFinalizer(owner.identity, kForegroundFinalizer);
}

absl::StatusOr<OwnerState> GarbageCollector::ClassifyOwner(const Node& dependent,
                                                           const OwnerReference& ref) {
  {
    absl::MutexLock lock(&mu_);
    if (const Node* owner = graph_.Get(ref.uid())) {
      return owner->deleting_dependents ? OwnerState::kWaitingForDependents : OwnerState::kSolid;
    }
  }
  // Absent from the caches: they may lag behind the server, so ask it before calling the owner
  // gone.
  const api::ResourceInfo* info = InfoOf(ref.api_version(), ref.kind());
  if (info == nullptr) return OwnerState::kSolid;  // a kind we cannot check: never guess "gone"
  // A namespaced owner lives in its dependent's namespace; a cluster-scoped dependent cannot have
  // one.
  if (info->namespaced && dependent.identity.ns.empty()) return OwnerState::kDangling;
  absl::StatusOr<client::ObjectPtr> got =
      client_->Get(*info, info->namespaced ? dependent.identity.ns : "", ref.name());
  if (api::Reason(got.status()) == "NotFound") return OwnerState::kDangling;
  if (!got.ok()) return got.status();
  const capstan::meta::v1::ObjectMeta& meta = api::Meta(**got);
  if (meta.uid() != ref.uid()) return OwnerState::kDangling;
  if (meta.has_deletion_timestamp() && HasFinalizer(meta, kForegroundFinalizer)) {
    return OwnerState::kWaitingForDependents;
  }
  return OwnerState::kSolid;
}

absl::Status GarbageCollector::AttemptToOrphan(const std::string& uid) {
  Node owner;
  std::vector<Identity> dependents;
  {
    absl::MutexLock lock(&mu_);
    const Node* found = graph_.Get(uid);
    if (found == nullptr || !found->orphaning) return absl::OkStatus();
    owner = *found;
    for (const std::string& d : graph_.Dependents(uid)) {
      if (const Node* node = graph_.Get(d)) dependents.push_back(node->identity);
    }
  }
  for (const Identity& dependent : dependents) {
    absl::Status s = RemoveOwnerReferences(dependent, {uid});
    if (!s.ok()) return s;
  }
  return RemoveFinalizer(owner.identity, kOrphanFinalizer);
}

absl::Status GarbageCollector::RemoveOwnerReferences(const Identity& identity,
                                                     const std::vector<std::string>& owner_uids) {
  return ReadModifyWrite(client_, identity, [&](google::protobuf::Message* object) {
    auto* refs = api::MutableMeta(object)->mutable_owner_references();
    int before = refs->size();
    refs->erase(std::remove_if(refs->begin(), refs->end(),
                               [&](const OwnerReference& ref) {
                                 return std::find(owner_uids.begin(), owner_uids.end(),
                                                  ref.uid()) != owner_uids.end();
                               }),
                refs->end());
    return refs->size() != before;
  });
}

absl::Status GarbageCollector::RemoveFinalizer(const Identity& identity,
                                               const std::string& finalizer) {
  return ReadModifyWrite(client_, identity, [&](google::protobuf::Message* object) {
    auto* finalizers = api::MutableMeta(object)->mutable_finalizers();
    int before = finalizers->size();
    finalizers->erase(std::remove(finalizers->begin(), finalizers->end(), finalizer),
                      finalizers->end());
    return finalizers->size() != before;
  });
}

absl::Status GarbageCollector::DeleteObject(const Identity& identity, const std::string& policy) {
  const api::ResourceInfo* info = InfoOf(identity.api_version, identity.kind);
  if (info == nullptr) return absl::OkStatus();
  client::DeleteOptions options;
  options.precondition_uid = identity.uid;  // never a namesake created since
  options.propagation_policy = policy;
  absl::StatusOr<client::ObjectPtr> deleted =
      client_->Delete(*info, identity.ns, identity.name, options);
  std::string reason = api::Reason(deleted.status());
  if (deleted.ok() || reason == "NotFound" || reason == "Conflict") return absl::OkStatus();
  return deleted.status();
}

}  // namespace capstan::controllermanager::garbagecollector
