// The namespace controller (Kubernetes' pkg/controller/namespace): empties a namespace that is
// being deleted, then lets the apiserver remove it.
//
// A namespace with deletionTimestamp keeps the "kubernetes" entry of spec.finalizers until this
// controller removes it. Each pass over such a namespace:
//   1. lists every namespaced resource of the scheme in it through the client and deletes each
//      object not already being deleted, with Background propagation (pods with grace period 0,
//      so nothing waits for a node agent that may not exist);
//   2. lists again and counts what remains (objects held by finalizers) per resource and per
//      finalizer;
//   3. writes the deletion conditions into status.conditions (Kubernetes' types and messages:
//      NamespaceContentRemaining "Some resources are remaining: pods. has 3 resource instances",
//      NamespaceFinalizersRemaining, NamespaceDeletionContentFailure, ...);
//   4. while content remains, comes back after NamespaceControllerOptions::content_requeue; once
//      nothing is left, removes "kubernetes" from spec.finalizers (an Update), and the apiserver
//      removes the namespace when no other finalizer holds it.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NAMESPACE_NAMESPACE_CONTROLLER_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NAMESPACE_NAMESPACE_CONTROLLER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/client/controller.h"
#include "lib/client/informer.h"
#include "proto/core_v1.pb.h"
#include "services/controller-manager/controller_context.h"

namespace capstan::controllermanager::namespacecontroller {

// The finalizer this controller owns (v1.FinalizerKubernetes).
inline constexpr char kKubernetesFinalizer[] = "kubernetes";

// What one deletion pass found in a namespace.
struct ContentSummary {
  // "pods.", "replicasets.apps" (Kubernetes' resource.group) -> objects still present.
  std::map<std::string, int> remaining_by_resource;
  // finalizer -> objects still present that carry it.
  std::map<std::string, int> remaining_by_finalizer;
  // One entry per resource whose list or deletes failed: the error text.
  std::vector<std::string> failures;

  bool Done() const { return remaining_by_resource.empty() && failures.empty(); }
};

// The namespace's deletion conditions after a pass, in Kubernetes' order
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
// NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining).
// A condition whose status did not change keeps its lastTransitionTime from existing; others get
// now. Conditions of other types in existing are kept, after these.
std::vector<capstan::core::v1::NamespaceCondition> DeletionConditions(
    const ContentSummary& summary,
    const google::protobuf::RepeatedPtrField<capstan::core::v1::NamespaceCondition>& existing,
    const capstan::meta::v1::Time& now);

struct NamespaceControllerOptions {
  // How soon a namespace whose content is not gone yet is looked at again.
  absl::Duration content_requeue = absl::Seconds(1);
};

class NamespaceController : public RunnableController, private client::Reconciler {
 public:
  // Registers the namespaces informer with ctx.informers; ctx.client and ctx.informers must
  // outlive the controller, and the informers must be stopped before it is destroyed.
  explicit NamespaceController(const ControllerContext& ctx,
                               NamespaceControllerOptions options = {});
  ~NamespaceController() override;

  const char* name() const override { return "namespace"; }
  void Run() override;
  void Stop() override;

 private:
  // key: the namespace's name.
  absl::StatusOr<client::ReconcileResult> Reconcile(const std::string& key) override;
  // Deletes what namespace ns holds and counts what remains.
  ContentSummary DeleteContent(const std::string& ns);
  // Writes summary's conditions into the namespace's status when they changed.
  absl::Status UpdateConditions(const std::string& ns, const std::string& uid,
                                const ContentSummary& summary);
  // Removes "kubernetes" from the namespace's spec.finalizers.
  absl::Status RemoveFinalizer(const std::string& ns, const std::string& uid);

  client::Client* const client_;
  const NamespaceControllerOptions options_;
  client::Informer<capstan::core::v1::Namespace> namespaces_;
  client::Controller controller_;
};

}  // namespace capstan::controllermanager::namespacecontroller

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_NAMESPACE_NAMESPACE_CONTROLLER_H_
