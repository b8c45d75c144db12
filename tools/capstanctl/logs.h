// capstanctl logs: a container's output, read from the node agent of the pod's node.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_LOGS_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_LOGS_H_

#include <ostream>
#include <string>
#include <vector>

#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "tools/capstanctl/commands.h"

namespace capstan::capstanctl {

// Where the node agent of `node` serves: its InternalIP (else its first address) and
// status.daemonEndpoints.kubeletEndpoint.Port. FailedPrecondition when the node does not say.
absl::StatusOr<std::string> NodeAgentAddress(const capstan::core::v1::Node& node);

// Runs `capstanctl logs POD [-c C] [-f] [-p] [--tail N]`; returns the exit code.
int Logs(client::Client& client, const Flags& flags, const std::vector<std::string>& args,
         std::ostream& out, std::ostream& err);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_LOGS_H_
