#include "tools/capstanctl/logs.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/errors.h"
#include "proto/node_agent.grpc.pb.h"

namespace capstan::capstanctl {

using capstan::core::v1::Node;
using capstan::core::v1::Pod;

absl::StatusOr<std::string> NodeAgentAddress(const Node& node) {
  const int port = node.status().daemon_endpoints().kubelet_endpoint().port();
  std::string host;
  for (const auto& a : node.status().addresses()) {
    if (a.type() == "InternalIP") host = a.address();
  }
  if (host.empty() && node.status().addresses_size() > 0) host = node.status().addresses(0).address();
  if (host.empty() || port <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("node ", node.metadata().name(), " does not report its agent's address"));
  }
  return absl::StrCat(host, ":", port);
}

int Logs(client::Client& client, const Flags& flags, const std::vector<std::string>& args,
         std::ostream& out, std::ostream& err) {
  if (args.size() != 1) {
    err << "error: expected POD (and no other argument); see capstanctl logs --help\n";
    return kExitUsage;
  }
  std::string name = args[0];
  if (name.rfind("pod/", 0) == 0) name = name.substr(4);
  const std::string ns = flags.ns.empty() ? "default" : flags.ns;
  absl::StatusOr<Pod> pod = client.Get<Pod>(ns, name);
  if (!pod.ok()) {
    err << "Error from server (" << api::Reason(pod.status()) << "): " << pod.status().message() << "\n";
    return kExitError;
  }
  if (pod->spec().node_name().empty()) {
    err << "error: pod " << name << " is not scheduled to a node yet\n";
    return kExitError;
  }
  absl::StatusOr<Node> node = client.Get<Node>("", pod->spec().node_name());
  absl::StatusOr<std::string> address = node.ok() ? NodeAgentAddress(*node) : node.status();
  if (!address.ok()) {
    err << "error: " << address.status().message() << "\n";
    return kExitError;
  }

  auto stub = capstan::nodeagent::v1::NodeAgent::NewStub(
      grpc::CreateChannel(*address, grpc::InsecureChannelCredentials()));
  capstan::nodeagent::v1::LogsRequest request;
  request.set_namespace_(ns);
  request.set_pod(name);
  request.set_container(flags.container);
  request.set_follow(flags.follow);
  request.set_previous(flags.previous);
  request.set_tail_lines(flags.tail > 0 ? flags.tail : 0);
  grpc::ClientContext context;
  if (!flags.follow) context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto reader = stub->Logs(&context, request);
  capstan::nodeagent::v1::LogsChunk chunk;
  while (reader->Read(&chunk)) out << chunk.data() << std::flush;
  grpc::Status status = reader->Finish();
  if (!status.ok()) {
    absl::Status s = api::FromGrpcStatus(status);
    if (api::HasApiStatus(s)) {
      err << "Error from server (" << api::Reason(s) << "): " << s.message() << "\n";
    } else {
      err << "error: " << s.message() << "\n";
    }
    return kExitError;
  }
  return kExitOk;
}

}  // namespace capstan::capstanctl
