// The parts of the client that need no server: configuration files, and which resource a kind
// message addresses. The calls themselves are tested against a real apiserver in
// test/capstanctl/client_test.cc.
#include "lib/client/client.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"

namespace capstan::client {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = getenv("TEST_TMPDIR");
    dir_ = std::filesystem::path(tmp ? tmp : "/tmp") / "client_config_test";
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    // Each test decides which of the two variables point somewhere.
    const char* home = getenv("HOME");
    saved_home_ = home ? home : "";
    unsetenv("CAPSTAN_CONFIG");
    setenv("HOME", (dir_ / "home").c_str(), 1);
  }
  void TearDown() override {
    unsetenv("CAPSTAN_CONFIG");
    setenv("HOME", saved_home_.c_str(), 1);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_;
  std::string saved_home_;
};

TEST_F(ConfigTest, NotFoundWhenNeitherExists) {
  absl::StatusOr<Config> config = LoadConfig();
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigTest, SaveThenLoadFromHome) {
  std::string path = (dir_ / "home/.capstan/config").string();
  ASSERT_TRUE(SaveConfig(path, Config{"10.0.0.1:7443"}).ok());  // creates ~/.capstan
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "10.0.0.1:7443");
  EXPECT_EQ(DefaultConfigPath(), path);
}

TEST_F(ConfigTest, EnvironmentVariableWins) {
  ASSERT_TRUE(SaveConfig((dir_ / "home/.capstan/config").string(), Config{"home:1"}).ok());
  std::string path = (dir_ / "other.yaml").string();
  ASSERT_TRUE(SaveConfig(path, Config{"env:2"}).ok());
  setenv("CAPSTAN_CONFIG", path.c_str(), 1);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "env:2");
  EXPECT_EQ(DefaultConfigPath(), path);
}

TEST_F(ConfigTest, MissingEnvironmentFileFallsBackToHome) {
  ASSERT_TRUE(SaveConfig((dir_ / "home/.capstan/config").string(), Config{"home:1"}).ok());
  setenv("CAPSTAN_CONFIG", (dir_ / "missing").c_str(), 1);
  absl::StatusOr<Config> config = LoadConfig();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->server, "home:1");
}

TEST_F(ConfigTest, BadFiles) {
  std::string path = (dir_ / "bad.yaml").string();
  std::ofstream(path) << "server: [1, 2]\n";
  EXPECT_EQ(LoadConfigFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::ofstream(path, std::ios::trunc) << "server: {\n";
  EXPECT_EQ(LoadConfigFile(path).status().code(), absl::StatusCode::kInvalidArgument);
  std::ofstream(path, std::ios::trunc) << "# only a comment\n";
  absl::StatusOr<Config> empty = LoadConfigFile(path);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->server, Config().server);
}

TEST(ResourceForTest, KindsResolveByDescriptor) {
  absl::StatusOr<const api::ResourceInfo*> pods = ResourceFor(capstan::core::v1::Pod::descriptor());
  ASSERT_TRUE(pods.ok());
  EXPECT_EQ((*pods)->resource, "pods");
  EXPECT_EQ((*pods)->group, "");
  absl::StatusOr<const api::ResourceInfo*> deployments =
      ResourceFor(capstan::apps::v1::Deployment::descriptor());
  ASSERT_TRUE(deployments.ok());
  EXPECT_EQ((*deployments)->QualifiedResource(), "deployments.apps");
  EXPECT_EQ(ResourceFor(capstan::meta::v1::ObjectMeta::descriptor()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NamespaceForTest, DefaultsForNamespacedKindsOnly) {
  const api::ResourceInfo& pods = *api::Scheme::BuiltIn().Lookup("pods");
  const api::ResourceInfo& nodes = *api::Scheme::BuiltIn().Lookup("nodes");
  capstan::core::v1::Pod pod;
  EXPECT_EQ(NamespaceFor(pods, pod), "default");
  pod.mutable_metadata()->set_namespace_("team-a");
  EXPECT_EQ(NamespaceFor(pods, pod), "team-a");
  capstan::core::v1::Node node;
  node.mutable_metadata()->set_namespace_("ignored");
  EXPECT_EQ(NamespaceFor(nodes, node), "");
}

TEST(ClientTest, UnreachableServerFailsWithinTheDeadline) {
  // Port 1 on loopback: nothing listens there.
  std::unique_ptr<Client> client = Client::Connect("127.0.0.1:1");
  GetOptions options;
  options.timeout = absl::Seconds(2);
  absl::StatusOr<capstan::core::v1::Pod> pod =
      client->Get<capstan::core::v1::Pod>("default", "x", options);
  ASSERT_FALSE(pod.ok());
  EXPECT_TRUE(pod.status().code() == absl::StatusCode::kUnavailable ||
              pod.status().code() == absl::StatusCode::kDeadlineExceeded)
      << pod.status();
}

TEST(ClientTest, WatchOfANonKindEndsAtOnce) {
  std::unique_ptr<Client> client = Client::Connect("127.0.0.1:1");
  auto stream = client->Watch<capstan::meta::v1::ObjectMeta>("");
  WatchEvent<capstan::meta::v1::ObjectMeta> event;
  EXPECT_FALSE(stream->Next(&event));
  EXPECT_EQ(stream->status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace capstan::client
