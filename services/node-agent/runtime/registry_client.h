// A client of an OCI registry's Distribution API (v2), enough to pull: manifests and blobs, with
// the anonymous bearer-token handshake public registries use. Plain HTTP for loopback registries,
// HTTPS (with the system's CA certificates) otherwise.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_REGISTRY_CLIENT_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_REGISTRY_CLIENT_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/node-agent/runtime/image_content.h"
#include "services/node-agent/runtime/image_reference.h"

namespace capstan::nodeagent {

class RegistryClient {
 public:
  explicit RegistryClient(ImageReference ref);

  struct Document {
    Descriptor descriptor;  // media type from Content-Type, digest of the bytes
    std::string body;
  };
  // GET /v2/<repository>/manifests/<tag or digest>, accepting OCI and Docker manifests and indexes.
  // NotFound when the registry does not have it; Unavailable when it cannot be reached.
  absl::StatusOr<Document> GetManifest(const std::string& tag_or_digest);
  // GET /v2/<repository>/blobs/<digest>, streamed to sink in pieces; the digest is checked.
  absl::Status GetBlob(const std::string& digest,
                       const std::function<absl::Status(absl::string_view)>& sink);

 private:
  struct Response {
    long status = 0;
    std::string content_type;
    std::string www_authenticate;
  };
  // One GET; body pieces go to sink. Retries once with a bearer token after a 401 that asks for one.
  absl::StatusOr<Response> Get(const std::string& url, const std::string& accept,
                               const std::function<absl::Status(absl::string_view)>& sink);
  absl::StatusOr<Response> GetOnce(const std::string& url, const std::string& accept,
                                   const std::function<absl::Status(absl::string_view)>& sink);
  absl::Status FetchToken(const std::string& challenge);
  std::string Url(const std::string& kind, const std::string& ref) const;

  ImageReference ref_;
  std::string token_;  // bearer token, once a registry asked for one
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_REGISTRY_CLIENT_H_
