// capstan-controller-manager: runs the level-triggered controllers (ReplicaSet, Deployment,
// garbage collector, namespace, node lifecycle) against the apiserver. Several replicas may run;
// a Lease elects the one that reconciles. A replica that loses its lease exits at once, as
// kube-controller-manager does, so that it can never act on a stale view next to the new leader.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "lib/client/client.h"
#include "lib/client/event_recorder.h"
#include "lib/base/process.h"
#include "lib/client/elected_runner.h"
#include "lib/client/shared_informer_factory.h"
#include "lib/metrics/http_server.h"
#include "services/controller-manager/controllers.h"

ABSL_FLAG(std::string, server, "", "apiserver gRPC address; default: from ~/.capstan/config");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:10257",
          "HTTP address of /metrics, /healthz and /readyz; port 0 picks a free one");
ABSL_FLAG(std::string, address_file, "", "When set, `metrics=HOST:PORT` is written here once up");
ABSL_FLAG(std::string, controllers, "", "Comma-separated controllers to run; empty: all");
ABSL_FLAG(int, workers, 5, "Reconcile workers per controller");
ABSL_FLAG(absl::Duration, node_monitor_grace_period, absl::Seconds(50),
          "How long a node may go without a heartbeat (Lease renewal or Ready heartbeat) before "
          "the nodelifecycle controller marks it Unknown and taints it unreachable");
ABSL_FLAG(absl::Duration, node_startup_grace_period, absl::Seconds(60),
          "The same for a node whose agent never posted a Ready condition, from its creation");

namespace capstan::controllermanager {
namespace {

// Runs the controllers until Stop(): one shared informer factory, one thread per controller.
class ControllerRunner {
 public:
  // ctx: everything but the informers, which the runner owns.
  ControllerRunner(const ControllerContext& ctx, std::vector<std::string> names)
      : factory_(ctx.client), ctx_(ctx), names_(std::move(names)) {
    ctx_.informers = &factory_;
  }

  absl::Status Start() {
    absl::StatusOr<std::vector<std::unique_ptr<RunnableController>>> made =
        NewControllers(ctx_, names_);
    if (!made.ok()) return made.status();
    controllers_ = std::move(*made);
    factory_.Start();
    for (auto& c : controllers_) {
      fprintf(stderr, "capstan-controller-manager: starting %s controller\n", c->name());
      threads_.emplace_back([c = c.get()] { c->Run(); });
    }
    return absl::OkStatus();
  }

  void Stop() {
    for (auto& c : controllers_) c->Stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    factory_.Stop();
  }

  bool Synced() { return factory_.WaitForCacheSync(absl::ZeroDuration()); }

 private:
  client::SharedInformerFactory factory_;
  ControllerContext ctx_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<RunnableController>> controllers_;
  std::vector<std::thread> threads_;
};

std::string Hostname() {
  char buf[256] = {0};
  gethostname(buf, sizeof(buf) - 1);
  return buf;
}

int Main() {
  absl::StatusOr<std::string> server_address = client::ServerAddress(absl::GetFlag(FLAGS_server));
  if (!server_address.ok()) {
    fprintf(stderr, "capstan-controller-manager: %s\n", std::string(server_address.status().message()).c_str());
    return 2;
  }
  const std::string server = *server_address;
  std::vector<std::string> names;
  for (absl::string_view n : absl::StrSplit(absl::GetFlag(FLAGS_controllers), ',', absl::SkipEmpty())) {
    names.emplace_back(n);
  }

  std::unique_ptr<client::Client> client = client::Client::Connect(server);
  auto registry = std::make_shared<prometheus::Registry>();
  client::EventRecorder recorder(client.get(), "controller-manager", Hostname());
  ControllerContext ctx;
  ctx.client = client.get();
  ctx.recorder = &recorder;
  ctx.registry = registry.get();
  ctx.workers = absl::GetFlag(FLAGS_workers);
  ctx.node_monitor_grace_period = absl::GetFlag(FLAGS_node_monitor_grace_period);
  ctx.node_startup_grace_period = absl::GetFlag(FLAGS_node_startup_grace_period);
  ControllerRunner runner(ctx, names);

  metrics::HttpServer http(absl::GetFlag(FLAGS_metrics_listen));
  metrics::AddStandardHandlers(
      &http, registry, [] { return absl::OkStatus(); },
      [&] {
        // A standby is ready too: it is doing its job, which is waiting.
        return absl::OkStatus();
      });
  if (absl::Status s = http.Start(); !s.ok()) {
    fprintf(stderr, "capstan-controller-manager: metrics listener: %s\n",
            std::string(s.message()).c_str());
    return 1;
  }
  base::WriteAddressFile(absl::GetFlag(FLAGS_address_file),
                         {{"metrics", absl::StrCat("127.0.0.1:", http.port())}});

  client::ElectedRunner elected(
      client.get(), "capstan-controller-manager", "capstan-controller-manager",
      [&] {
        if (absl::Status s = runner.Start(); !s.ok()) {
          fprintf(stderr, "capstan-controller-manager: %s\n", std::string(s.message()).c_str());
          _exit(2);
        }
      },
      [&] { runner.Stop(); });
  if (absl::Status s = elected.Start(); !s.ok()) {
    fprintf(stderr, "capstan-controller-manager: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  fprintf(stderr, "capstan-controller-manager: talking to %s, metrics on port %d\n",
          server.c_str(), http.port());

  int sig = base::WaitForTerminationSignal();
  fprintf(stderr, "capstan-controller-manager: signal %d, shutting down\n", sig);
  elected.Stop();
  recorder.Flush(absl::Seconds(2));
  http.Stop();
  return 0;
}

}  // namespace
}  // namespace capstan::controllermanager

int main(int argc, char** argv) {
  capstan::base::InitServiceProcess();
  absl::ParseCommandLine(argc, argv);
  return capstan::controllermanager::Main();
}
