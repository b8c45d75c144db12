// The node agent's Logs RPC: streams a container's log file (`capstanctl logs`).
//
// Logs are plain files written by the runtime (stdout and stderr together, as the container wrote
// them), one per container instance, so --previous is the file of the instance before.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_LOG_SERVICE_H_
#define CAPSTAN_SERVICES_NODE_AGENT_LOG_SERVICE_H_

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "proto/node_agent.grpc.pb.h"
#include "services/node-agent/agent.h"

namespace capstan::nodeagent {

// The last n lines of text (all of it when n <= 0).
std::string LastLines(const std::string& text, int64_t n);

class LogService final : public capstan::nodeagent::v1::NodeAgent::Service {
 public:
  // The service starts before its nodes are registered (their Node objects carry its port);
  // until SetAgents it answers Unavailable.
  LogService() = default;
  // agents: the nodes this process runs (one, or many with --simulate_nodes); not owned.
  void SetAgents(std::vector<NodeAgent*> agents) {
    absl::MutexLock lock(&mu_);
    agents_ = std::move(agents);
  }

  grpc::Status Logs(grpc::ServerContext* context, const capstan::nodeagent::v1::LogsRequest* request,
                    grpc::ServerWriter<capstan::nodeagent::v1::LogsChunk>* writer) override;

 private:
  absl::Mutex mu_;
  std::vector<NodeAgent*> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_LOG_SERVICE_H_
