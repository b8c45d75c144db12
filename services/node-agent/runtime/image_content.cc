#include "services/node-agent/runtime/image_content.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace capstan::nodeagent {
namespace {

using nlohmann::json;

absl::StatusOr<json> ParseObject(const std::string& document, const char* what) {
  json doc = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::DataLossError(absl::StrCat(what, " is not a JSON object"));
  return doc;
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& j) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string()) {
    return absl::DataLossError("descriptor without a digest");
  }
  Descriptor d;
  d.digest = j["digest"].get<std::string>();
  if (j.contains("mediaType") && j["mediaType"].is_string()) {
    d.media_type = j["mediaType"].get<std::string>();
  }
  if (j.contains("size") && j["size"].is_number_integer()) d.size = j["size"].get<int64_t>();
  if (j.contains("platform") && j["platform"].is_object()) {
    d.os = j["platform"].value("os", "");
    d.architecture = j["platform"].value("architecture", "");
  }
  if (j.contains("annotations") && j["annotations"].is_object()) {
    for (const auto& [key, value] : j["annotations"].items()) {
      if (value.is_string()) d.annotations[key] = value.get<std::string>();
    }
  }
  return d;
}

}  // namespace

bool IsIndex(const std::string& media_type) {
  return media_type == kOciIndex || media_type == kDockerManifestList;
}

bool IsManifest(const std::string& media_type) {
  return media_type == kOciManifest || media_type == kDockerManifest;
}

std::string DetectMediaType(const std::string& document) {
  json doc = json::parse(document, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return "";
  if (doc.contains("mediaType") && doc["mediaType"].is_string()) {
    return doc["mediaType"].get<std::string>();
  }
  if (doc.contains("manifests")) return kOciIndex;
  if (doc.contains("layers")) return kOciManifest;
  return "";
}

absl::StatusOr<std::vector<Descriptor>> ParseIndex(const std::string& document) {
  absl::StatusOr<json> doc = ParseObject(document, "image index");
  if (!doc.ok()) return doc.status();
  if (!doc->contains("manifests") || !(*doc)["manifests"].is_array()) {
    return absl::DataLossError("image index without manifests");
  }
  std::vector<Descriptor> out;
  for (const json& m : (*doc)["manifests"]) {
    absl::StatusOr<Descriptor> d = ParseDescriptor(m);
    if (!d.ok()) return d.status();
    out.push_back(std::move(*d));
  }
  return out;
}

absl::StatusOr<Descriptor> SelectPlatform(const std::vector<Descriptor>& manifests) {
  for (const Descriptor& d : manifests) {
    if (d.os == "linux" && d.architecture == "amd64") return d;
  }
  if (manifests.size() == 1 && manifests[0].os.empty()) return manifests[0];
  return absl::NotFoundError("the image has no linux/amd64 variant");
}

absl::StatusOr<Manifest> ParseManifest(const std::string& document) {
  absl::StatusOr<json> doc = ParseObject(document, "image manifest");
  if (!doc.ok()) return doc.status();
  if (!doc->contains("config") || !doc->contains("layers") || !(*doc)["layers"].is_array()) {
    return absl::DataLossError("image manifest without config or layers");
  }
  Manifest manifest;
  absl::StatusOr<Descriptor> config = ParseDescriptor((*doc)["config"]);
  if (!config.ok()) return config.status();
  manifest.config = std::move(*config);
  for (const json& l : (*doc)["layers"]) {
    absl::StatusOr<Descriptor> layer = ParseDescriptor(l);
    if (!layer.ok()) return layer.status();
    manifest.layers.push_back(std::move(*layer));
  }
  return manifest;
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr);
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::Update(const char* data, size_t size) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, size);
}

std::string Sha256::Digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), md, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

std::string Sha256Digest(const std::string& data) {
  Sha256 sha;
  sha.Update(data.data(), data.size());
  return sha.Digest();
}

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> chain;
  for (const std::string& diff_id : diff_ids) {
    chain.push_back(chain.empty() ? diff_id : Sha256Digest(chain.back() + " " + diff_id));
  }
  return chain;
}

}  // namespace capstan::nodeagent
