#include "services/controller-manager/controllers.h"

#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/controller-manager/controllers/deployment/deployment_controller.h"
#include "services/controller-manager/controllers/garbagecollector/garbage_collector.h"
#include "services/controller-manager/controllers/namespace/namespace_controller.h"
#include "services/controller-manager/controllers/nodelifecycle/nodelifecycle_controller.h"
#include "services/controller-manager/controllers/replicaset/replicaset_controller.h"

namespace capstan::controllermanager {
namespace {

using Factory = std::function<std::unique_ptr<RunnableController>(const ControllerContext&)>;

const std::map<std::string, Factory>& Factories() {
  static const auto* factories = new std::map<std::string, Factory>{
      {"replicaset",
       [](const ControllerContext& ctx) { return std::make_unique<ReplicaSetController>(ctx); }},
      {"deployment",
       [](const ControllerContext& ctx) { return std::make_unique<DeploymentController>(ctx); }},
      {"garbagecollector",
       [](const ControllerContext& ctx) {
         return std::make_unique<garbagecollector::GarbageCollector>(ctx);
       }},
      {"namespace",
       [](const ControllerContext& ctx) {
         return std::make_unique<namespacecontroller::NamespaceController>(ctx);
       }},
      {"nodelifecycle",
       [](const ControllerContext& ctx) {
         return std::make_unique<nodelifecycle::NodeLifecycleController>(ctx);
       }},
  };
  return *factories;
}

}  // namespace

std::vector<std::string> AllControllerNames() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : Factories()) names.push_back(name);
  return names;
}

absl::StatusOr<std::vector<std::unique_ptr<RunnableController>>> NewControllers(
    const ControllerContext& ctx, const std::vector<std::string>& names) {
  std::vector<std::string> wanted = names.empty() ? AllControllerNames() : names;
  std::vector<std::unique_ptr<RunnableController>> controllers;
  for (const std::string& name : wanted) {
    auto it = Factories().find(name);
    if (it == Factories().end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown controller \"", name,
                                                     "\"; known: ",
                                                     absl::StrJoin(AllControllerNames(), ", ")));
    }
    controllers.push_back(it->second(ctx));
  }
  return controllers;
}

}  // namespace capstan::controllermanager
