// The containerd runtime's pure parts: image references, the OCI spec, manifests, chain ids and
// the tar reader. No containerd needed.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "nlohmann/json.hpp"
#include "services/node-agent/runtime/containerd_runtime.h"
#include "services/node-agent/runtime/image_content.h"
#include "services/node-agent/runtime/image_reference.h"
#include "services/node-agent/runtime/oci_spec.h"
#include "services/node-agent/runtime/tar_file.h"
#include "test/harness/apiserver_process.h"

namespace capstan::nodeagent {
namespace {

using nlohmann::json;

std::string Normalise(const std::string& ref) {
  absl::StatusOr<ImageReference> parsed = ParseImageReference(ref);
  return parsed.ok() ? parsed->String() : "error: " + std::string(parsed.status().message());
}

TEST(ImageReferenceTest, NormalisesLikeDocker) {
  EXPECT_EQ(Normalise("busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Normalise("busybox:1.36"), "docker.io/library/busybox:1.36");
  EXPECT_EQ(Normalise("user/app"), "docker.io/user/app:latest");
  EXPECT_EQ(Normalise("docker.io/library/busybox:latest"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Normalise("index.docker.io/library/busybox"), "docker.io/library/busybox:latest");
  EXPECT_EQ(Normalise("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000/busybox:1");
  EXPECT_EQ(Normalise("localhost/x"), "localhost/x:latest");
  EXPECT_EQ(Normalise("capstan.local/busybox:1"), "capstan.local/busybox:1");
  std::string digest = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(Normalise("busybox@" + digest), "docker.io/library/busybox@" + digest);
  EXPECT_TRUE(absl::StartsWith(Normalise("BusyBox"), "error"));
  EXPECT_TRUE(absl::StartsWith(Normalise("busybox@sha256:12"), "error"));
  EXPECT_TRUE(absl::StartsWith(Normalise(""), "error"));
}

TEST(ImageReferenceTest, RegistryAndScheme) {
  ImageReference hub = *ParseImageReference("busybox");
  EXPECT_EQ(hub.RegistryHost(), "registry-1.docker.io");
  EXPECT_FALSE(hub.IsLoopback());
  EXPECT_TRUE(ParseImageReference("127.0.0.1:5000/x")->IsLoopback());
  EXPECT_TRUE(ParseImageReference("localhost:5000/x")->IsLoopback());
  EXPECT_FALSE(ParseImageReference("registry.example.com/x")->IsLoopback());
}

ImageConfig BusyboxConfig() {
  ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"default", "cmd"};
  image.env = {"PATH=/bin", "A=image"};
  image.working_dir = "/work";
  image.diff_ids = {"sha256:" + std::string(64, '1')};
  return image;
}

TEST(OciSpecTest, KubernetesCommandRules) {
  ImageConfig image = BusyboxConfig();
  ContainerConfig c;
  EXPECT_EQ(*ProcessArgs(c, image), (std::vector<std::string>{"/entry", "default", "cmd"}));
  c.args = {"x"};
  EXPECT_EQ(*ProcessArgs(c, image), (std::vector<std::string>{"/entry", "x"}));
  c.command = {"sh", "-c"};
  EXPECT_EQ(*ProcessArgs(c, image), (std::vector<std::string>{"sh", "-c", "x"}));
  c.args.clear();
  EXPECT_EQ(*ProcessArgs(c, image), (std::vector<std::string>{"sh", "-c"}));
  EXPECT_FALSE(ProcessArgs(ContainerConfig(), ImageConfig()).ok());
}

TEST(OciSpecTest, SpecCarriesConfig) {
  ContainerConfig c;
  c.id = "c1";
  c.hostname = "pod-a";
  c.env = {{"A", "config"}, {"B", "b"}};
  c.netns_path = "/run/netns/x";
  c.cpu_limit_millis = 250;
  c.memory_limit_bytes = 64 << 20;
  json spec = json::parse(*BuildRuntimeSpec(c, BusyboxConfig(), "/ns/c1"));
  EXPECT_EQ(spec["hostname"], "pod-a");
  EXPECT_EQ(spec["process"]["cwd"], "/work");
  EXPECT_EQ(spec["process"]["env"],
            json({"PATH=/bin", "A=config", "HOSTNAME=pod-a", "B=b"}));
  EXPECT_EQ(spec["root"]["path"], "rootfs");
  EXPECT_EQ(spec["linux"]["cgroupsPath"], "/ns/c1");
  EXPECT_EQ(spec["linux"]["resources"]["cpu"]["quota"], 25000);
  EXPECT_EQ(spec["linux"]["resources"]["cpu"]["period"], 100000);
  EXPECT_EQ(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
  json network;
  std::vector<std::string> types;
  for (const json& ns : spec["linux"]["namespaces"]) {
    types.push_back(ns["type"]);
    if (ns["type"] == "network") network = ns;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"pid", "ipc", "uts", "mount", "network"}));
  EXPECT_EQ(network["path"], "/run/netns/x");
  std::vector<std::string> mounts;
  for (const json& m : spec["mounts"]) mounts.push_back(m["destination"]);
  EXPECT_EQ(mounts, (std::vector<std::string>{"/proc", "/dev", "/dev/pts", "/dev/shm",
                                              "/dev/mqueue", "/sys"}));

  // No limits, no netns: nothing of them in the spec.
  ContainerConfig plain;
  plain.command = {"true"};
  json bare = json::parse(*BuildRuntimeSpec(plain, BusyboxConfig(), "/ns/c2"));
  EXPECT_FALSE(bare["linux"]["resources"].contains("cpu"));
  EXPECT_FALSE(bare["linux"]["resources"].contains("memory"));
  EXPECT_FALSE(bare.contains("hostname"));
  EXPECT_EQ(bare["process"]["cwd"], "/work");
}

TEST(OciSpecTest, ExecProcessKeepsContainerProcess) {
  ContainerConfig c;
  c.env = {{"K", "v"}};
  std::string spec = *BuildRuntimeSpec(c, BusyboxConfig(), "/ns/c1");
  json process = json::parse(*BuildExecProcess(spec, {"cat", "/x"}));
  EXPECT_EQ(process["args"], json({"cat", "/x"}));
  EXPECT_EQ(process["cwd"], "/work");
  EXPECT_EQ(process["terminal"], false);
  EXPECT_FALSE(BuildExecProcess(spec, {}).ok());
}

TEST(OciSpecTest, NonNumericUserIsRefused) {
  ImageConfig image = BusyboxConfig();
  image.user = "nginx";
  EXPECT_FALSE(BuildRuntimeSpec(ContainerConfig(), image, "/x").ok());
  image.user = "1000:1001";
  json spec = json::parse(*BuildRuntimeSpec(ContainerConfig(), image, "/x"));
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);
  EXPECT_EQ(spec["process"]["user"]["gid"], 1001);
}

TEST(ImageContentTest, ChainIdsFollowTheOciSpec) {
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::vector<std::string> chain = ChainIds({"sha256:a", "sha256:b", "sha256:c"});
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0], "sha256:a");
  EXPECT_EQ(chain[1], Sha256Digest("sha256:a sha256:b"));
  EXPECT_EQ(chain[2], Sha256Digest(chain[1] + " sha256:c"));
}

TEST(ImageContentTest, PicksLinuxAmd64) {
  std::string index = R"({"schemaVersion":2,"manifests":[
    {"digest":"sha256:arm","size":1,"platform":{"os":"linux","architecture":"arm64"}},
    {"digest":"sha256:amd","size":2,"platform":{"os":"linux","architecture":"amd64"}}]})";
  EXPECT_EQ(DetectMediaType(index), kOciIndex);
  EXPECT_EQ(SelectPlatform(*ParseIndex(index))->digest, "sha256:amd");
  std::string arm_only = R"({"manifests":[
    {"digest":"sha256:arm","platform":{"os":"linux","architecture":"arm64"}}]})";
  EXPECT_TRUE(absl::IsNotFound(SelectPlatform(*ParseIndex(arm_only)).status()));
}

// The image scripts/make-image.sh makes, read back: an OCI layout whose blobs match their names.
TEST(ImageContentTest, MakeImageWritesAValidLayout) {
  auto tar = TarFile::Open(capstan::testing::RunfilePath("services/node-agent/runtime/busybox-image.tar"));
  ASSERT_TRUE(tar.ok()) << tar.status();
  ASSERT_TRUE((*tar)->Contains("oci-layout"));
  std::vector<Descriptor> entries = *ParseIndex(*(*tar)->ReadAll("index.json", 1 << 20));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].annotations["io.containerd.image.name"], "capstan.local/busybox:1");
  auto blob = [&](const std::string& digest) {
    return *(*tar)->ReadAll("blobs/sha256/" + digest.substr(7), 64 << 20);
  };
  std::string manifest_bytes = blob(entries[0].digest);
  EXPECT_EQ(Sha256Digest(manifest_bytes), entries[0].digest);
  Manifest manifest = *ParseManifest(manifest_bytes);
  ImageConfig config = *ParseImageConfig(blob(manifest.config.digest));
  EXPECT_EQ(config.cmd, std::vector<std::string>{"sh"});
  ASSERT_EQ(manifest.layers.size(), 1u);
  EXPECT_EQ(Sha256Digest(blob(manifest.layers[0].digest)), manifest.layers[0].digest);
}

// A shim blocked opening a dead agent's exec FIFO for writing is let go, and the FIFO removed;
// a recent one (an exec in flight) is left alone.
TEST(ExecFifoTest, LeftoverFifosAreReleased) {
  namespace fs = std::filesystem;
  // Node agents of tests running alongside release old FIFOs in the shared temporary directory
  // when they start (and would release this test's "old" one early): use the test's own.
  if (const char* own = getenv("TEST_TMPDIR")) setenv("TMPDIR", own, 1);
  auto make = [](const std::string& suffix) {
    fs::path dir = fs::temp_directory_path() / ("capstan-exec-test" + suffix);
    fs::create_directories(dir);
    EXPECT_EQ(mkfifo((dir / "output").c_str(), 0600), 0);
    return dir;
  };
  fs::path old_dir = make(std::to_string(getpid()) + "a");
  fs::path new_dir = make(std::to_string(getpid()) + "b");
  fs::last_write_time(old_dir, fs::file_time_type::clock::now() - std::chrono::minutes(10));
  // The "shim": open for writing blocks until a reader opens the FIFO.
  std::future<int> writer = std::async(std::launch::async, [&] {
    int fd = open((old_dir / "output").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) close(fd);
    return fd;
  });
  ASSERT_EQ(writer.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  ReleaseLeftoverExecFifos(absl::Minutes(2));
  ASSERT_EQ(writer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_GE(writer.get(), 0);
  EXPECT_FALSE(fs::exists(old_dir));
  EXPECT_TRUE(fs::exists(new_dir / "output"));
  fs::remove_all(new_dir);
}

}  // namespace
}  // namespace capstan::nodeagent
