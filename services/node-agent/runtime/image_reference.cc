#include "services/node-agent/runtime/image_reference.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace capstan::nodeagent {
namespace {

constexpr char kDockerHub[] = "docker.io";

// Docker's rule: the first component is a registry when it looks like a host name (a dot or a
// port) or is "localhost"; otherwise the whole reference is a Docker Hub repository.
bool LooksLikeDomain(const std::string& component) {
  return absl::StrContains(component, '.') || absl::StrContains(component, ':') ||
         component == "localhost";
}

bool ValidRepository(const std::string& repository) {
  if (repository.empty() || repository.front() == '/' || repository.back() == '/') return false;
  for (char c : repository) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-' ||
          c == '/')) {
      return false;
    }
  }
  return !absl::StrContains(repository, "//");
}

bool ValidTag(const std::string& tag) {
  if (tag.empty() || tag.size() > 128) return false;
  for (char c : tag) {
    if (!(absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-')) return false;
  }
  return tag.front() != '.' && tag.front() != '-';
}

bool ValidDigest(const std::string& digest) {
  if (!absl::StartsWith(digest, "sha256:") || digest.size() != 7 + 64) return false;
  for (char c : digest.substr(7)) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return false;
  }
  return true;
}

}  // namespace

std::string ImageReference::String() const {
  std::string s = absl::StrCat(domain, "/", repository);
  if (!tag.empty()) absl::StrAppend(&s, ":", tag);
  if (!digest.empty()) absl::StrAppend(&s, "@", digest);
  return s;
}

std::string ImageReference::RegistryHost() const {
  return domain == kDockerHub ? "registry-1.docker.io" : domain;
}

bool ImageReference::IsLoopback() const {
  std::string host = domain;
  if (absl::StartsWith(host, "[")) return absl::StartsWith(host, "[::1]");
  host = host.substr(0, host.find(':'));
  return host == "localhost" || absl::StartsWith(host, "127.");
}

absl::StatusOr<ImageReference> ParseImageReference(const std::string& reference) {
  auto invalid = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid image reference \"", reference,
                                                   "\": ", why));
  };
  ImageReference ref;
  std::string rest = reference;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    ref.digest = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (!ValidDigest(ref.digest)) return invalid("bad digest");
  }
  // A tag is after the last colon of the last component (a colon before a slash is a port).
  size_t slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    ref.tag = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
    if (!ValidTag(ref.tag)) return invalid("bad tag");
  }
  size_t first = rest.find('/');
  if (first != std::string::npos && LooksLikeDomain(rest.substr(0, first))) {
    ref.domain = rest.substr(0, first);
    ref.repository = rest.substr(first + 1);
  } else {
    ref.domain = kDockerHub;
    ref.repository = rest;
  }
  if (ref.domain == "index.docker.io") ref.domain = kDockerHub;
  if (ref.domain == kDockerHub && !absl::StrContains(ref.repository, '/')) {
    ref.repository = absl::StrCat("library/", ref.repository);
  }
  if (!ValidRepository(ref.repository)) {
    return invalid("a repository is lower-case letters, digits, and . _ - /");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace capstan::nodeagent
