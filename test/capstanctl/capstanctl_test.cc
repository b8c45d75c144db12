// The capstanctl binary against a real capstan-apiserver: what a user sees (stdout, stderr, exit
// code) for apply, get, delete and errors. The server address reaches the child through a config
// file named by CAPSTAN_CONFIG, as it would for a user.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/time/clock.h"
#include "lib/client/client.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

namespace capstan {
namespace {

using ::testing::HasSubstr;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class CapstanctlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new testing::ApiServerProcess();
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
    dir_ = new std::string(testing::MakeTempDir("capstanctl-"));
    std::string config = *dir_ + "/config";
    ASSERT_TRUE(client::SaveConfig(config, client::Config{server_->grpc_address()}).ok());
    setenv("CAPSTAN_CONFIG", config.c_str(), 1);  // inherited by every child
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    testing::RemoveTree(*dir_);
    delete dir_;
  }

  // Runs capstanctl with args (and stdin_text on its standard input).
  Result Ctl(const std::vector<std::string>& args, const std::string& stdin_text = "") {
    static int counter = 0;
    std::string base = absl::StrCat(*dir_, "/run", counter++);
    std::string in_path = base + ".in", out_path = base + ".out", err_path = base + ".err";
    std::ofstream(in_path) << stdin_text;
    std::string binary = testing::RunfilePath("tools/capstanctl/capstanctl");
    pid_t pid = fork();
    if (pid == 0) {
      int in = open(in_path.c_str(), O_RDONLY);
      int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(in, 0);
      dup2(out, 1);
      dup2(err, 2);
      std::vector<std::string> argv_storage = {binary};
      argv_storage.insert(argv_storage.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (std::string& a : argv_storage) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    Result result;
    int status = 0;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = ReadAll(out_path);
    result.err = ReadAll(err_path);
    return result;
  }

  static std::string Fixture(const std::string& name) {
    return testing::RunfilePath("test/fixtures/manifests/" + name);
  }

  static testing::ApiServerProcess* server_;
  static std::string* dir_;
};

testing::ApiServerProcess* CapstanctlTest::server_ = nullptr;
std::string* CapstanctlTest::dir_ = nullptr;

TEST_F(CapstanctlTest, ApplyGetReapplyDelete) {
  const std::string seed = Fixture("deployment-seed.yaml");
  Result r = Ctl({"apply", "-f", seed});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/nginx-deployment created\n");

  r = Ctl({"apply", "-f", seed});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/nginx-deployment unchanged\n");

  // The same manifest with replicas edited, through stdin.
  std::string text = ReadAll(seed);
  ASSERT_TRUE(absl::StrContains(text, "replicas: 3"));
  std::string edited = text;
  edited.replace(edited.find("replicas: 3"), 11, "replicas: 5");
  r = Ctl({"apply", "-f", "-"}, edited);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/nginx-deployment configured\n");

  r = Ctl({"get", "deploy"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "NAME               READY   UP-TO-DATE   AVAILABLE   AGE\n"))
      << r.out;
  EXPECT_THAT(r.out, HasSubstr("nginx-deployment   0/5     0            0           "));

  r = Ctl({"get", "deployments.apps", "nginx-deployment", "-o", "name"});
  EXPECT_EQ(r.out, "deployment.apps/nginx-deployment\n");

  // What get -o yaml prints applies back as unchanged, alone or as a List.
  r = Ctl({"get", "deployment", "nginx-deployment", "-o", "yaml"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("kind: Deployment\n"));
  EXPECT_THAT(r.out, HasSubstr("replicas: 5\n"));
  Result reapplied = Ctl({"apply", "-f", "-"}, r.out);
  EXPECT_EQ(reapplied.exit_code, 0) << reapplied.err;
  EXPECT_EQ(reapplied.out, "deployment.apps/nginx-deployment unchanged\n");

  r = Ctl({"get", "deploy", "-o", "yaml"});
  EXPECT_THAT(r.out, HasSubstr("kind: List\n"));
  reapplied = Ctl({"apply", "-f", "-"}, r.out);
  EXPECT_EQ(reapplied.out, "deployment.apps/nginx-deployment unchanged\n") << reapplied.err;

  // Fields dropped from the manifest are deleted: the labels go away.
  std::string unlabelled = text;
  unlabelled.erase(unlabelled.find("  labels: {app: nginx}\n"), 23);
  r = Ctl({"apply", "-f", "-"}, unlabelled);
  EXPECT_EQ(r.out, "deployment.apps/nginx-deployment configured\n") << r.err;
  r = Ctl({"get", "deploy", "nginx-deployment", "-o", "json"});
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("\"labels\": {\n            \"app\"")));
  EXPECT_THAT(r.out, HasSubstr("\"replicas\": 3"));

  r = Ctl({"delete", "deploy", "nginx-deployment"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps \"nginx-deployment\" deleted\n");

  r = Ctl({"get", "deploy", "nginx-deployment"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error from server (NotFound): deployments.apps \"nginx-deployment\" not found\n");
}

TEST_F(CapstanctlTest, GetWatchPrintsTheTableThenEachChange) {
  std::string out_path = *dir_ + "/watch.out";
  std::string binary = testing::RunfilePath("tools/capstanctl/capstanctl");
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    execl(binary.c_str(), binary.c_str(), "get", "configmaps", "-l", "watched=yes", "-w",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  auto wait_for = [&](const std::string& text) {
    for (int i = 0; i < 400; ++i) {
      if (absl::StrContains(ReadAll(out_path), text)) return true;
      usleep(25 * 1000);
    }
    return false;
  };
  // Nothing matches yet; the watch is open. A new matching object streams in as a row.
  usleep(300 * 1000);
  Result r = Ctl({"apply", "-f", "-"},
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: streamed\n"
                 "  labels: {watched: \"yes\"}\ndata: {a: \"1\"}\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(wait_for("streamed")) << ReadAll(out_path);
  r = Ctl({"delete", "configmap", "streamed"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  std::string out = ReadAll(out_path);
  EXPECT_TRUE(absl::StrContains(out, "NAME")) << out;
}

TEST_F(CapstanctlTest, Errors) {
  Result r = Ctl({"get", "pods", "missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error from server (NotFound): pods \"missing\" not found\n");

  r = Ctl({"delete", "po", "missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error from server (NotFound): pods \"missing\" not found\n");

  r = Ctl({"get", "widgets"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: the server doesn't have a resource type \"widgets\"\n");

  r = Ctl({"get"});
  EXPECT_EQ(r.exit_code, 2);
  r = Ctl({"get", "pods", "--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown flag: --no-such-flag"));
  r = Ctl({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2);

  r = Ctl({"get", "pods", "--server", "127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Unable to connect to the server 127.0.0.1:1"));
}

TEST_F(CapstanctlTest, BadManifests) {
  const std::string bad_name = Fixture("bad/bad-name.yaml");
  if (!std::filesystem::exists(bad_name)) GTEST_SKIP() << "no bad/ fixtures";
  Result r = Ctl({"apply", "-f", bad_name});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error from server (Invalid): "));
  EXPECT_THAT(r.err, HasSubstr("Deployment \"Bad_Name\" is invalid: metadata.name: Invalid value"));

  r = Ctl({"apply", "-f", Fixture("bad/unknown-field.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error from server (BadRequest): "));
  EXPECT_THAT(r.err, HasSubstr("unknown field \"spec.replicass\""));

  r = Ctl({"apply", "-f", Fixture("bad/wrong-type.yaml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("Error from server (BadRequest): "));
  EXPECT_THAT(r.err, HasSubstr("spec.replicas"));

  r = Ctl({"apply", "-f", "-"}, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no matches for kind \"Widget\" in version \"example.com/v1\""));

  r = Ctl({"apply", "-f", "does-not-exist.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
}

TEST_F(CapstanctlTest, PodsNamespacesSelectorsAndDescribe) {
  Result r = Ctl({"apply", "-f", Fixture("pod.yaml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pod/frontend created\n");

  r = Ctl({"get", "po", "-A", "-o", "wide"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "NAMESPACE   NAME       READY   STATUS    RESTARTS   AGE   IP       NODE\n")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("default     frontend   0/2     Pending   0          "));

  r = Ctl({"get", "pods", "-l", "tier=web", "--chunk-size", "1", "-o", "name"});
  EXPECT_EQ(r.out, "pod/frontend\n");
  r = Ctl({"get", "pods", "-l", "tier=db"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "No resources found in default namespace.\n");
  r = Ctl({"get", "pods", "--field-selector", "metadata.name=frontend", "-o", "name"});
  EXPECT_EQ(r.out, "pod/frontend\n");

  r = Ctl({"get", "ns"});
  EXPECT_THAT(r.out, HasSubstr("kube-system       Active   "));

  r = Ctl({"describe", "pod", "frontend"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Name:               frontend\n"));
  EXPECT_THAT(r.out, HasSubstr("Namespace:          default\n"));
  EXPECT_THAT(r.out, HasSubstr("                    tier=web\n"));
  EXPECT_THAT(r.out, HasSubstr("Events:  <none>\n"));

  r = Ctl({"delete", "-f", Fixture("pod.yaml"), "--grace-period=0"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "pod \"frontend\" deleted\n");

  r = Ctl({"delete", "po", "x", "--cascade=sideways"});
  EXPECT_EQ(r.exit_code, 2);
}

TEST_F(CapstanctlTest, ApiResourcesAndVersion) {
  Result r = Ctl({"api-resources"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "NAME ")) << r.out;
  EXPECT_THAT(r.out, HasSubstr("SHORTNAMES   APIVERSION"));
  EXPECT_THAT(r.out, HasSubstr("deploy       apps/v1"));

  r = Ctl({"version"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Client Version: "));
}

// rollout against the real controller-manager binary, in a suite of its own (its own apiserver,
// so the controllers leave the other suites' deployments alone). No kubelet runs: a thread plays
// one, marking every pod Running and Ready, so that rollouts complete.
class RolloutTest : public CapstanctlTest {
 protected:
  void SetUp() override {
    manager_ = std::make_unique<testing::ServiceProcess>(
        "services/controller-manager/capstan-controller-manager",
        std::vector<std::string>{"--server=" + server_->grpc_address(),
                                 "--metrics_listen=127.0.0.1:0", "--leader_elect=false"});
    absl::Status s = manager_->Start();
    ASSERT_TRUE(s.ok()) << s;
    kubelet_ = std::thread([this] { MarkPodsReady(); });
  }
  void TearDown() override {
    stop_ = true;
    if (kubelet_.joinable()) kubelet_.join();
    manager_.reset();
  }

  void MarkPodsReady() {
    std::unique_ptr<client::Client> c = client::Client::Connect(server_->grpc_address());
    while (!stop_) {
      auto pods = c->List<core::v1::Pod>("default");
      if (pods.ok()) {
        for (core::v1::Pod& pod : pods->items) {
          if (pod.metadata().has_deletion_timestamp() || pod.status().phase() == "Running") {
            continue;
          }
          pod.mutable_status()->set_phase("Running");
          pod.mutable_status()->clear_conditions();
          auto* ready = pod.mutable_status()->add_conditions();
          ready->set_type("Ready");
          ready->set_status("True");
          ready->mutable_last_transition_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
          (void)c->UpdateStatus(pod);  // a Conflict is retried on the next pass
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  std::string Image() {
    Result r = Ctl({"get", "deploy", "web", "-o",  "json"});
    size_t at = r.out.find("\"image\": \"");
    if (at == std::string::npos) return "";
    at += 10;
    return r.out.substr(at, r.out.find('"', at) - at);
  }

  static std::string Manifest(const std::string& image) {
    return absl::StrCat(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec:\n      containers:\n      - {name: web, image: \"",
        image, "\"}\n");
  }

  std::unique_ptr<testing::ServiceProcess> manager_;
  std::thread kubelet_;
  std::atomic<bool> stop_{false};
};

TEST_F(RolloutTest, StatusHistoryUndoPauseResume) {
  Result r = Ctl({"apply", "-f", "-"}, Manifest("nginx:1.24"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"rollout", "status", "deployment/web", "--timeout=60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << manager_->log();
  EXPECT_TRUE(absl::EndsWith(r.out, "deployment \"web\" successfully rolled out\n")) << r.out;

  r = Ctl({"apply", "-f", "-"}, Manifest("nginx:1.25"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/web configured\n");
  r = Ctl({"rollout", "status", "deploy", "web", "--timeout", "60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << manager_->log();
  EXPECT_TRUE(absl::EndsWith(r.out, "deployment \"web\" successfully rolled out\n")) << r.out;

  r = Ctl({"rollout", "history", "deployment/web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "deployment.apps/web\n"
            "REVISION  CHANGE-CAUSE\n"
            "1         <none>\n"
            "2         <none>\n"
            "\n");

  // Back to revision 1 (the previous one): the old template comes back, as revision 3.
  r = Ctl({"rollout", "undo", "deployment/web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/web rolled back\n");
  EXPECT_EQ(Image(), "nginx:1.24");
  r = Ctl({"rollout", "status", "deployment/web", "--timeout=60s"});
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out << manager_->log();
  EXPECT_TRUE(absl::EndsWith(r.out, "deployment \"web\" successfully rolled out\n")) << r.out;
  r = Ctl({"rollout", "history", "deployment/web"});
  EXPECT_THAT(r.out, HasSubstr("2         <none>\n3         <none>\n")) << r.out;
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("1         <none>"))) << r.out;

  // Rolling back to the revision it already runs changes nothing.
  r = Ctl({"rollout", "undo", "deployment/web", "--to-revision=3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "deployment.apps/web skipped rollback (current template already matches revision 3)\n");

  r = Ctl({"rollout", "undo", "deployment/web", "--to-revision=9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: unable to find specified revision 9 in history\n");
  EXPECT_EQ(Image(), "nginx:1.24");

  r = Ctl({"rollout", "pause", "deployment/web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/web paused\n");
  r = Ctl({"rollout", "pause", "deployment/web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: deployments.apps \"web\" is already paused\n");
  r = Ctl({"rollout", "undo", "deployment/web"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "error: you cannot rollback a paused deployment; resume it first with 'capstanctl "
            "rollout resume deployment/web' and try again\n");
  EXPECT_EQ(Image(), "nginx:1.24");

  r = Ctl({"rollout", "resume", "deploy/web"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/web resumed\n");
  r = Ctl({"rollout", "undo", "deployment/web", "--to-revision=2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deployment.apps/web rolled back\n");
  EXPECT_EQ(Image(), "nginx:1.25");
  r = Ctl({"rollout", "status", "deployment/web", "--timeout=60s"});
  EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
}

TEST_F(RolloutTest, Errors) {
  Result r = Ctl({"rollout", "status", "deployment/missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error from server (NotFound): deployments.apps \"missing\" not found\n");
  r = Ctl({"rollout", "undo", "deployment/missing"});
  EXPECT_EQ(r.exit_code, 1);
  r = Ctl({"rollout", "sideways", "deployment/web"});
  EXPECT_EQ(r.exit_code, 2);
  r = Ctl({"rollout", "undo"});
  EXPECT_EQ(r.exit_code, 2);
  r = Ctl({"rollout", "status", "pods/x"});
  EXPECT_EQ(r.exit_code, 1);

  // Never-ready pods (no kubelet for this one: its pods are never marked) time out.
  stop_ = true;
  kubelet_.join();
  r = Ctl({"apply", "-f", "-"}, absl::StrReplaceAll(Manifest("busybox"), {{"web", "slow"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"rollout", "status", "deployment/slow", "--timeout=2s"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_EQ(r.err, "error: timed out waiting for the condition\n");
  EXPECT_THAT(r.out, HasSubstr("Waiting for deployment \"slow\" rollout to finish: "));
}

}  // namespace
}  // namespace capstan
