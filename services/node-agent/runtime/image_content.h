// OCI image content as the runtime reads it: descriptors, indexes and manifests (OCI or Docker
// schema 2), picking the linux/amd64 manifest, and layer chain ids. Pure functions over JSON.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_CONTENT_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_CONTENT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace capstan::nodeagent {

// A pointer to a blob: what it is, its digest, its size.
struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:<hex>"
  int64_t size = 0;
  std::string os;            // platform, for index entries ("" when not given)
  std::string architecture;
  std::map<std::string, std::string> annotations;
};

// Media types the registry is asked for, in order of preference.
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";

bool IsIndex(const std::string& media_type);
bool IsManifest(const std::string& media_type);

// The media type of a manifest or index document, from its own mediaType field or, when absent
// (allowed by OCI), from its shape.
std::string DetectMediaType(const std::string& document);

// An index's entries.
absl::StatusOr<std::vector<Descriptor>> ParseIndex(const std::string& document);
// The linux/amd64 entry of an index (or its only entry when it names no platform).
absl::StatusOr<Descriptor> SelectPlatform(const std::vector<Descriptor>& manifests);

struct Manifest {
  Descriptor config;
  std::vector<Descriptor> layers;  // bottom first
};
absl::StatusOr<Manifest> ParseManifest(const std::string& document);

// "sha256:<hex>" of data.
std::string Sha256Digest(const std::string& data);
// An incremental SHA-256, for blobs streamed in pieces.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const char* data, size_t size);
  std::string Digest();  // "sha256:<hex>"; once
 private:
  void* ctx_;
};

// The snapshot names of an image's layers: chain[0] = diff_ids[0],
// chain[i] = sha256(chain[i-1] + " " + diff_ids[i]) (the OCI image spec's ChainID).
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_IMAGE_CONTENT_H_
