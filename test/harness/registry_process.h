// Runs Debian's docker-registry (distribution 2.8) on a free loopback port for tests that pull
// images for real: storage in a private temp directory, killed and removed on destruction.
// Images get in with skopeo (PushOciArchive), as a CI job pushing to a registry would.
#ifndef CAPSTAN_TEST_HARNESS_REGISTRY_PROCESS_H_
#define CAPSTAN_TEST_HARNESS_REGISTRY_PROCESS_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace capstan::testing {

// A loopback TCP port that was free a moment ago (bound to port 0, read back, closed).
int FreeLoopbackPort();

class RegistryProcess {
 public:
  RegistryProcess();
  ~RegistryProcess();  // SIGKILL, then remove the storage
  RegistryProcess(const RegistryProcess&) = delete;
  RegistryProcess& operator=(const RegistryProcess&) = delete;

  // Starts /usr/bin/docker-registry and waits (up to 10 s) until GET /v2/ answers.
  absl::Status Start();
  // "127.0.0.1:PORT": images are named address() + "/busybox:1" and pulled over plain HTTP.
  std::string address() const;
  // Copies an OCI image-layout tar into the registry as `repository_and_tag` ("busybox:1").
  absl::Status PushOciArchive(const std::string& archive, const std::string& repository_and_tag);

 private:
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_HARNESS_REGISTRY_PROCESS_H_
