// capstan-scheduler: binds pending pods to nodes. Several replicas may run; a Lease elects the
// one that schedules, and a replica that loses its lease exits at once (as kube-scheduler does).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/synchronization/mutex.h"
#include "lib/client/client.h"
#include "lib/client/event_recorder.h"
#include "lib/base/process.h"
#include "lib/client/elected_runner.h"
#include "lib/client/shared_informer_factory.h"
#include "lib/metrics/http_server.h"
#include "services/scheduler/scheduler.h"

ABSL_FLAG(std::string, server, "", "apiserver gRPC address; default: from ~/.capstan/config");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:10259",
          "HTTP address of /metrics, /healthz and /readyz; port 0 picks a free one");
ABSL_FLAG(std::string, address_file, "", "When set, `metrics=HOST:PORT` is written here once up");
ABSL_FLAG(std::string, scheduler_name, "default-scheduler", "Schedules pods with this schedulerName");
ABSL_FLAG(int64_t, eviction_grace_period, -1,
          "Grace period (seconds) of the deletions evicting preemption victims; negative: each "
          "pod's own terminationGracePeriodSeconds");

namespace capstan::scheduler {
namespace {

int Main() {
  absl::StatusOr<std::string> server_address = client::ServerAddress(absl::GetFlag(FLAGS_server));
  if (!server_address.ok()) {
    fprintf(stderr, "capstan-scheduler: %s\n", std::string(server_address.status().message()).c_str());
    return 2;
  }
  const std::string server = *server_address;
  std::unique_ptr<client::Client> client = client::Client::Connect(server);
  auto registry = std::make_shared<prometheus::Registry>();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  client::EventRecorder recorder(client.get(), absl::GetFlag(FLAGS_scheduler_name), host);
  client::SharedInformerFactory informers(client.get());
  SchedulerOptions options;
  options.scheduler_name = absl::GetFlag(FLAGS_scheduler_name);
  if (int64_t grace = absl::GetFlag(FLAGS_eviction_grace_period); grace >= 0) {
    options.eviction_grace_period = grace;
  }
  Scheduler scheduler(client.get(), &informers, &recorder, registry.get(), options);

  metrics::HttpServer http(absl::GetFlag(FLAGS_metrics_listen));
  metrics::AddStandardHandlers(
      &http, registry, [] { return absl::OkStatus(); }, [] { return absl::OkStatus(); });
  if (absl::Status s = http.Start(); !s.ok()) {
    fprintf(stderr, "capstan-scheduler: metrics listener: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  base::WriteAddressFile(absl::GetFlag(FLAGS_address_file),
                         {{"metrics", absl::StrCat("127.0.0.1:", http.port())}});

  std::thread worker;
  client::ElectedRunner elected(
      client.get(), "capstan-scheduler", "capstan-scheduler",
      [&] {
        informers.Start();
        worker = std::thread([&] { scheduler.Run(); });
      },
      [&] {
        scheduler.Stop();
        worker.join();
      });
  if (absl::Status s = elected.Start(); !s.ok()) {
    fprintf(stderr, "capstan-scheduler: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  fprintf(stderr, "capstan-scheduler: talking to %s, metrics on port %d\n", server.c_str(),
          http.port());

  base::WaitForTerminationSignal();
  elected.Stop();
  informers.Stop();
  recorder.Flush(absl::Seconds(2));
  http.Stop();
  return 0;
}

}  // namespace
}  // namespace capstan::scheduler

int main(int argc, char** argv) {
  capstan::base::InitServiceProcess();
  absl::ParseCommandLine(argc, argv);
  return capstan::scheduler::Main();
}
