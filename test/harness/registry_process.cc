#include "test/harness/registry_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "test/harness/apiserver_process.h"
#include "test/harness/containerd_process.h"

namespace capstan::testing {

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

RegistryProcess::RegistryProcess() : dir_(MakeTempDir("registry-")), port_(FreeLoopbackPort()) {}

RegistryProcess::~RegistryProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  RemoveTree(dir_);
}

std::string RegistryProcess::address() const { return absl::StrCat("127.0.0.1:", port_); }

absl::Status RegistryProcess::Start() {
  const std::string config = dir_ + "/config.yml";
  std::ofstream(config) << "version: 0.1\n"
                        << "storage:\n  filesystem:\n    rootdirectory: " << dir_ << "/data\n"
                        << "http:\n  addr: " << address() << "\n";
  pid_ = SpawnProcess({"/usr/bin/docker-registry", "serve", config}, dir_ + "/registry.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  for (int i = 0; i < 500; ++i) {
    if (HttpGet(address(), "/v2/").ok()) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream in(dir_ + "/registry.log");
  std::stringstream log;
  log << in.rdbuf();
  return absl::UnavailableError("registry did not start: " + log.str());
}

absl::Status RegistryProcess::PushOciArchive(const std::string& archive,
                                             const std::string& repository_and_tag) {
  return RunCommand({"/usr/bin/skopeo", "--insecure-policy", "copy", "--quiet",
                     "--dest-tls-verify=false", "oci-archive:" + archive,
                     absl::StrCat("docker://", address(), "/", repository_and_tag)})
      .status();
}

}  // namespace capstan::testing
