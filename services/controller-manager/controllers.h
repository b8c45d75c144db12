// The controllers this controller-manager runs, by name (as kube-controller-manager's
// --controllers flag: "replicaset", "deployment", "garbagecollector", "namespace").
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/controller-manager/controller_context.h"

namespace capstan::controllermanager {

std::vector<std::string> AllControllerNames();

// Builds the named controllers (every one when names is empty); each registers its informers with
// ctx.informers, which must not be started yet. InvalidArgument for an unknown name.
absl::StatusOr<std::vector<std::unique_ptr<RunnableController>>> NewControllers(
    const ControllerContext& ctx, const std::vector<std::string>& names);

}  // namespace capstan::controllermanager

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_H_
