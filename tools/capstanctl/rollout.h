// capstanctl rollout: kubectl's `rollout undo|history|status|pause|resume` for Deployments.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_ROLLOUT_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_ROLLOUT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "tools/capstanctl/commands.h"

namespace capstan::capstanctl {

// What `rollout status` says about deployment (kubectl's DeploymentStatusViewer): the line to
// print (with its newline) and whether the rollout is complete. An error (FailedPrecondition)
// when its Progressing condition has reason ProgressDeadlineExceeded.
struct RolloutState {
  std::string message;
  bool done = false;
};
absl::StatusOr<RolloutState> DeploymentRolloutState(const capstan::apps::v1::Deployment& deployment);

// The `rollout history` table of replica sets (the deployment's own), sorted by revision.
std::string RolloutHistoryTable(const std::vector<capstan::apps::v1::ReplicaSet>& owned);

// Runs `capstanctl rollout ARGS...` (args: the subcommand and what follows it). server: the
// address, for connection errors. Returns the exit code.
int Rollout(client::Client& client, const std::string& server, const Flags& flags,
            const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_ROLLOUT_H_
