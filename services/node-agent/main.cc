// capstan-node-agent: one per node (or one for many simulated nodes). Registers the Node, renews
// its Lease, and runs the pods the scheduler bound to it as containers through containerd, each
// pod in its own network namespace on the node's bridge. Serves container logs over gRPC.
//
//   capstan-node-agent --node_name=node-1 --node_ip=10.0.0.5 --pod_cidr=10.88.1.0/24 \
//       --containerd_address=/run/capstan/containerd.sock
//   capstan-node-agent --simulate_nodes=100          # 100 nodes, no containers (scale tests)
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/quantity.h"
#include "lib/base/process.h"
#include "lib/client/client.h"
#include "lib/metrics/http_server.h"
#include "prometheus/registry.h"
#include "services/node-agent/agent.h"
#include "services/node-agent/log_service.h"
#include "services/node-agent/network/bridge_network.h"
#include "services/node-agent/runtime/containerd_runtime.h"
#include "services/node-agent/simulated_network.h"
#include "services/node-agent/simulated_runtime.h"

ABSL_FLAG(std::string, server, "", "apiserver gRPC address; default: from ~/.capstan/config");
ABSL_FLAG(std::string, node_name, "", "The Node's name; default: the host name");
ABSL_FLAG(std::string, node_ip, "127.0.0.1", "The node's InternalIP (pods' hostIP; logs are served here)");
ABSL_FLAG(std::string, listen, "", "gRPC address of the agent's own service (logs); default NODE_IP:10250; port 0 picks one");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0", "HTTP address of /metrics, /healthz and /readyz");
ABSL_FLAG(std::string, address_file, "", "When set, `grpc=HOST:PORT` and `metrics=HOST:PORT` are written here once up");
ABSL_FLAG(std::string, data_dir, "/var/lib/capstan/node-agent", "Container logs and network state");
ABSL_FLAG(std::string, containerd_address, "/run/containerd/containerd.sock", "containerd's gRPC socket");
ABSL_FLAG(std::string, containerd_namespace, "capstan", "containerd namespace for this agent's containers and images");
ABSL_FLAG(std::vector<std::string>, image_archives, {}, "OCI image-layout tars to load into containerd at start");
ABSL_FLAG(std::string, pod_cidr, "10.88.0.0/24", "Pod addresses come from here; the bridge takes the first");
ABSL_FLAG(std::string, bridge, "capstan0", "The node's pod bridge");
ABSL_FLAG(std::string, cpu, "", "CPU capacity to report (e.g. 4 or 3500m); default: this machine's");
ABSL_FLAG(std::string, memory, "", "Memory capacity to report (e.g. 8Gi); default: this machine's");
ABSL_FLAG(int64_t, max_pods, 110, "Pod capacity to report");
ABSL_FLAG(std::vector<std::string>, node_labels, {}, "Extra node labels, KEY=VALUE");
ABSL_FLAG(absl::Duration, node_lease_renew_interval, absl::Seconds(10), "How often the node's Lease is renewed");
ABSL_FLAG(int, workers, 8, "Pods synced at once (per node)");
ABSL_FLAG(absl::Duration, log_gc_period, absl::Minutes(1),
          "How often log directories of pods gone from the node are removed (each is kept one to two periods)");
ABSL_FLAG(int, simulate_nodes, 0, "Act as this many nodes with a simulated runtime (no containers); never the default");
ABSL_FLAG(absl::Duration, simulated_start_delay, absl::ZeroDuration(), "Simulated nodes: how long a container takes to start");

namespace capstan::nodeagent {
namespace {

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

NodeConfig NodeConfigFromFlags(int agent_port) {
  NodeConfig node;
  node.name = absl::GetFlag(FLAGS_node_name).empty() ? Hostname() : absl::GetFlag(FLAGS_node_name);
  node.ip = absl::GetFlag(FLAGS_node_ip);
  node.pod_cidr = absl::GetFlag(FLAGS_pod_cidr);
  node.agent_port = agent_port;
  node.max_pods = absl::GetFlag(FLAGS_max_pods);
  node.renew_interval = absl::GetFlag(FLAGS_node_lease_renew_interval);
  if (std::string cpu = absl::GetFlag(FLAGS_cpu); !cpu.empty()) {
    node.cpu_millis = api::ParseQuantityMilli(cpu).value_or(0);
  }
  if (std::string memory = absl::GetFlag(FLAGS_memory); !memory.empty()) {
    node.memory_bytes = api::ParseQuantityValue(memory).value_or(0);
  }
  for (const std::string& label : absl::GetFlag(FLAGS_node_labels)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    node.labels[kv.first] = kv.second;
  }
  return node;
}

// What one node of this process is made of.
struct NodeParts {
  std::unique_ptr<Runtime> runtime;
  std::unique_ptr<PodNetwork> network;
  std::unique_ptr<NodeAgent> agent;
};

int Main() {
  absl::StatusOr<std::string> server = client::ServerAddress(absl::GetFlag(FLAGS_server));
  if (!server.ok()) {
    fprintf(stderr, "capstan-node-agent: %s\n", std::string(server.status().message()).c_str());
    return 2;
  }
  std::unique_ptr<client::Client> client = client::Client::Connect(*server);
  const int simulated = absl::GetFlag(FLAGS_simulate_nodes);
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);

  // The agent's own gRPC service first: its port goes into the Node's status.
  LogService logs_service;
  std::string listen = absl::GetFlag(FLAGS_listen);
  if (listen.empty()) listen = absl::StrCat(absl::GetFlag(FLAGS_node_ip), ":10250");
  int grpc_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&logs_service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || grpc_port == 0) {
    fprintf(stderr, "capstan-node-agent: cannot listen on %s\n", listen.c_str());
    return 1;
  }

  std::atomic<bool> ready{false};
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::HttpServer http(absl::GetFlag(FLAGS_metrics_listen));
  metrics::AddStandardHandlers(
      &http, registry, [] { return absl::OkStatus(); },
      [&] { return ready ? absl::OkStatus() : absl::UnavailableError("registering the node"); });
  if (absl::Status s = http.Start(); !s.ok()) {
    fprintf(stderr, "capstan-node-agent: metrics listener: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  std::vector<NodeParts> nodes;
  if (simulated > 0) {
    const NodeConfig base = NodeConfigFromFlags(grpc_port);
    for (int i = 0; i < simulated; ++i) {
      NodeParts parts;
      parts.runtime = std::make_unique<SimulatedRuntime>(
          SimulatedRuntime::Options{absl::GetFlag(FLAGS_simulated_start_delay), {}});
      // Node i's pods get 10.(64 + i/256).(i%256).x: distinct across up to 16,384 nodes.
      const std::string prefix = absl::StrCat("10.", 64 + i / 256, ".", i % 256);
      parts.network = std::make_unique<SimulatedNetwork>(prefix);
      NodeAgentOptions options;
      options.node = base;
      options.node.name = absl::StrCat(base.name, "-", i);
      options.node.pod_cidr = prefix + ".0/24";
      options.node.labels["capstan.io/simulated"] = "true";
      options.workers = std::max(1, absl::GetFlag(FLAGS_workers) / 4);
      options.probe_threads = 1;
      options.worker.log_root = "";  // simulated containers write nothing
      options.worker.runtime_scheme = "simulated";
      parts.agent = std::make_unique<NodeAgent>(client.get(), parts.runtime.get(), parts.network.get(), options);
      nodes.push_back(std::move(parts));
    }
  } else {
    auto runtime = std::make_unique<ContainerdRuntime>(absl::GetFlag(FLAGS_containerd_address),
                                                       absl::GetFlag(FLAGS_containerd_namespace));
    for (const std::string& archive : absl::GetFlag(FLAGS_image_archives)) {
      absl::StatusOr<std::vector<std::string>> names = runtime->ImportImage(archive);
      if (!names.ok()) {
        fprintf(stderr, "capstan-node-agent: loading %s: %s\n", archive.c_str(),
                std::string(names.status().message()).c_str());
        return 1;
      }
      for (const std::string& name : *names) fprintf(stderr, "capstan-node-agent: loaded image %s\n", name.c_str());
    }
    NodeAgentOptions options;
    options.node = NodeConfigFromFlags(grpc_port);
    options.workers = absl::GetFlag(FLAGS_workers);
    options.worker.log_root = data_dir + "/logs";
    options.log_gc_period = absl::GetFlag(FLAGS_log_gc_period);
    BridgeNetworkOptions net;
    net.bridge = absl::GetFlag(FLAGS_bridge);
    net.pod_cidr = absl::GetFlag(FLAGS_pod_cidr);
    net.netns_prefix = absl::StrCat("capstan-", options.node.name.substr(0, 20), "-");
    net.state_dir = data_dir + "/network";
    absl::StatusOr<std::unique_ptr<BridgeNetwork>> network = BridgeNetwork::Create(net);
    if (!network.ok()) {
      fprintf(stderr, "capstan-node-agent: pod network: %s\n", std::string(network.status().message()).c_str());
      return 1;
    }
    NodeParts parts;
    parts.network = std::move(*network);
    parts.agent = std::make_unique<NodeAgent>(client.get(), runtime.get(), parts.network.get(), options);
    parts.runtime = std::move(runtime);
    nodes.push_back(std::move(parts));
  }

  // Register every node at once: one slow registration does not hold up the rest.
  std::vector<std::thread> starters;
  std::atomic<int> failed{0};
  for (NodeParts& n : nodes) {
    starters.emplace_back([&n, &failed] {
      if (absl::Status s = n.agent->Start(); !s.ok()) {
        fprintf(stderr, "capstan-node-agent: %s: %s\n", n.agent->node_name().c_str(),
                std::string(s.message()).c_str());
        ++failed;
      }
    });
  }
  for (auto& t : starters) t.join();
  if (failed > 0) return 1;
  std::vector<NodeAgent*> agents;
  for (NodeParts& n : nodes) agents.push_back(n.agent.get());
  logs_service.SetAgents(agents);
  ready = true;

  const std::string host = listen.substr(0, listen.rfind(':'));
  base::WriteAddressFile(absl::GetFlag(FLAGS_address_file),
                         {{"grpc", absl::StrCat(host, ":", grpc_port)},
                          {"metrics", absl::StrCat("127.0.0.1:", http.port())}});
  fprintf(stderr, "capstan-node-agent: %zu node(s) registered with %s; logs on %s:%d\n", nodes.size(),
          server->c_str(), host.c_str(), grpc_port);

  int sig = base::WaitForTerminationSignal();
  fprintf(stderr, "capstan-node-agent: signal %d, shutting down (containers keep running)\n", sig);
  for (NodeParts& n : nodes) n.agent->Stop();
  grpc_server->Shutdown();
  http.Stop();
  return 0;
}

}  // namespace
}  // namespace capstan::nodeagent

int main(int argc, char** argv) {
  capstan::base::InitServiceProcess();
  absl::ParseCommandLine(argc, argv);
  return capstan::nodeagent::Main();
}
