// Image references as Kubernetes and containerd understand them.
//
// "busybox" means docker.io/library/busybox:latest; "127.0.0.1:5000/x:1" names its registry. The
// normalised form is the image's name in containerd, so a pod's "busybox" and an image imported as
// "docker.io/library/busybox:latest" are the same image, and local names such as
// "capstan.local/busybox:1" stay as they are.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_REFERENCE_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_REFERENCE_H_

#include <string>

#include "absl/status/statusor.h"

namespace capstan::nodeagent {

struct ImageReference {
  std::string domain;      // "docker.io", "127.0.0.1:5000", "capstan.local"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" when neither a tag nor a digest was given
  std::string digest;      // "sha256:...", or ""

  // domain/repository[:tag][@digest]
  std::string String() const;
  // What to ask the registry for: the digest when there is one, else the tag.
  std::string TagOrDigest() const { return digest.empty() ? tag : digest; }
  // The registry's address: Docker Hub's API is not served at docker.io itself.
  std::string RegistryHost() const;
  // Loopback registries are spoken to in plain HTTP, every other one in HTTPS.
  bool IsLoopback() const;
};

// InvalidArgument for what is not a reference (upper case, empty parts, bad digest).
absl::StatusOr<ImageReference> ParseImageReference(const std::string& reference);

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_REFERENCE_H_
