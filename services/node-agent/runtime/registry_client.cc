#include "services/node-agent/runtime/registry_client.h"

#include <curl/curl.h>

#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace capstan::nodeagent {
namespace {

constexpr long kConnectTimeoutSeconds = 10;
// A transfer slower than 1 KiB/s for 60 s is given up (a stalled registry), however large the blob.
constexpr long kLowSpeedBytes = 1024;
constexpr long kLowSpeedSeconds = 60;

struct Transfer {
  const std::function<absl::Status(absl::string_view)>* sink;
  absl::Status sink_status;
  std::string content_type;
  std::string www_authenticate;
  std::string error_body;  // the body of a non-2xx answer (small), for messages
  long status = 0;
  CURL* curl;
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string line(data, size * count);
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = absl::AsciiStrToLower(line.substr(0, colon));
    std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    // After a redirect the final answer's headers win.
    if (name == "content-type") t->content_type = value;
    if (name == "www-authenticate") t->www_authenticate = value;
  }
  return size * count;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->status < 200 || t->status >= 300) {
    if (t->error_body.size() < 4096) t->error_body.append(data, size * count);
    return size * count;
  }
  t->sink_status = (*t->sink)(absl::string_view(data, size * count));
  return t->sink_status.ok() ? size * count : 0;  // 0 aborts the transfer
}

// "Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="..."" -> fields.
std::map<std::string, std::string> ParseChallenge(const std::string& header) {
  std::map<std::string, std::string> fields;
  size_t pos = header.find(' ');
  while (pos != std::string::npos && pos < header.size()) {
    size_t eq = header.find('=', pos);
    if (eq == std::string::npos) break;
    std::string key(absl::StripAsciiWhitespace(header.substr(pos, eq - pos)));
    if (!key.empty() && key[0] == ',') key = std::string(absl::StripAsciiWhitespace(key.substr(1)));
    std::string value;
    size_t end;
    if (eq + 1 < header.size() && header[eq + 1] == '"') {
      end = header.find('"', eq + 2);
      if (end == std::string::npos) break;
      value = header.substr(eq + 2, end - eq - 2);
      ++end;
    } else {
      end = header.find(',', eq);
      value = header.substr(eq + 1, end == std::string::npos ? std::string::npos : end - eq - 1);
    }
    fields[absl::AsciiStrToLower(key)] = value;
    pos = end;
  }
  return fields;
}

std::string Escape(CURL* curl, const std::string& s) {
  char* e = curl_easy_escape(curl, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

}  // namespace

RegistryClient::RegistryClient(ImageReference ref) : ref_(std::move(ref)) {
  // Process-wide, not thread-safe set-up libcurl asks for once before any other call.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string RegistryClient::Url(const std::string& kind, const std::string& ref) const {
  return absl::StrCat(ref_.IsLoopback() ? "http://" : "https://", ref_.RegistryHost(), "/v2/",
                      ref_.repository, "/", kind, "/", ref);
}

absl::StatusOr<RegistryClient::Response> RegistryClient::GetOnce(
    const std::string& url, const std::string& accept,
    const std::function<absl::Status(absl::string_view)>& sink) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  Transfer t{&sink, absl::OkStatus(), "", "", "", 0, curl};
  curl_slist* headers = nullptr;
  if (!accept.empty()) headers = curl_slist_append(headers, ("Accept: " + accept).c_str());
  if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  // Blobs are often served by redirect to a storage host; libcurl does not send our
  // Authorization header to another host.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // we are multi-threaded
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedBytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, kLowSpeedSeconds);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  if (!t.sink_status.ok()) return t.sink_status;
  if (rc != CURLE_OK) {
    return absl::UnavailableError(absl::StrCat("GET ", url, ": ", curl_easy_strerror(rc)));
  }
  Response r;
  r.status = t.status;
  r.content_type = t.content_type;
  r.www_authenticate = t.www_authenticate;
  if (r.status == 404) {
    return absl::NotFoundError(absl::StrCat("image ", ref_.String(), " not found (GET ", url, ")"));
  }
  if (r.status != 401 && (r.status < 200 || r.status >= 300)) {
    absl::StatusCode code = r.status >= 500 ? absl::StatusCode::kUnavailable
                            : r.status == 403 ? absl::StatusCode::kPermissionDenied
                                              : absl::StatusCode::kFailedPrecondition;
    return absl::Status(code, absl::StrCat("GET ", url, ": HTTP ", r.status, " ", t.error_body));
  }
  return r;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Get(
    const std::string& url, const std::string& accept,
    const std::function<absl::Status(absl::string_view)>& sink) {
  absl::StatusOr<Response> r = GetOnce(url, accept, sink);
  if (r.ok() && r->status == 401 && absl::StartsWithIgnoreCase(r->www_authenticate, "bearer ")) {
    if (absl::Status s = FetchToken(r->www_authenticate); !s.ok()) return s;
    r = GetOnce(url, accept, sink);
  }
  if (r.ok() && r->status == 401) {
    // Docker Hub answers 401 rather than 404 for repositories that do not exist.
    return absl::NotFoundError(
        absl::StrCat("image ", ref_.String(), " not found or not public (GET ", url, ": 401)"));
  }
  return r;
}

absl::Status RegistryClient::FetchToken(const std::string& challenge) {
  std::map<std::string, std::string> fields = ParseChallenge(challenge);
  if (fields["realm"].empty()) return absl::UnavailableError("registry asked for a token without a realm");
  CURL* curl = curl_easy_init();
  std::string url = absl::StrCat(fields["realm"], "?service=", Escape(curl, fields["service"]),
                                 "&scope=", Escape(curl, fields["scope"]));
  curl_easy_cleanup(curl);
  std::string body;
  std::string saved = std::move(token_);
  token_.clear();
  absl::StatusOr<Response> r = GetOnce(url, "", [&body](absl::string_view piece) {
    body.append(piece.data(), piece.size());
    return absl::OkStatus();
  });
  if (!r.ok()) return r.status();
  if (r->status != 200) return absl::PermissionDeniedError(absl::StrCat("token from ", url, ": HTTP ", r->status));
  nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  for (const char* key : {"token", "access_token"}) {
    if (doc.is_object() && doc.contains(key) && doc[key].is_string()) {
      token_ = doc[key].get<std::string>();
      return absl::OkStatus();
    }
  }
  return absl::PermissionDeniedError(absl::StrCat("token from ", url, ": no token in the answer"));
}

absl::StatusOr<RegistryClient::Document> RegistryClient::GetManifest(
    const std::string& tag_or_digest) {
  Document doc;
  constexpr int64_t kMaxManifest = 4 << 20;
  std::string url = Url("manifests", tag_or_digest);
  absl::StatusOr<Response> r =
      Get(url, absl::StrJoin({kOciIndex, kOciManifest, kDockerManifestList, kDockerManifest}, ", "),
          [&doc](absl::string_view piece) {
            if (doc.body.size() + piece.size() > kMaxManifest) {
              return absl::FailedPreconditionError("manifest larger than 4 MiB");
            }
            doc.body.append(piece.data(), piece.size());
            return absl::OkStatus();
          });
  if (!r.ok()) return r.status();
  doc.descriptor.digest = Sha256Digest(doc.body);
  if (absl::StartsWith(tag_or_digest, "sha256:") && doc.descriptor.digest != tag_or_digest) {
    return absl::DataLossError(absl::StrCat("GET ", url, ": the manifest's digest is ",
                                            doc.descriptor.digest));
  }
  std::string type = r->content_type.substr(0, r->content_type.find(';'));
  doc.descriptor.media_type =
      IsIndex(type) || IsManifest(type) ? type : DetectMediaType(doc.body);
  doc.descriptor.size = static_cast<int64_t>(doc.body.size());
  return doc;
}

absl::Status RegistryClient::GetBlob(const std::string& digest,
                                     const std::function<absl::Status(absl::string_view)>& sink) {
  Sha256 sha;
  std::string url = Url("blobs", digest);
  absl::StatusOr<Response> r = Get(url, "", [&](absl::string_view piece) {
    sha.Update(piece.data(), piece.size());
    return sink(piece);
  });
  if (!r.ok()) return r.status();
  if (std::string got = sha.Digest(); got != digest) {
    return absl::DataLossError(absl::StrCat("GET ", url, ": got content with digest ", got));
  }
  return absl::OkStatus();
}

}  // namespace capstan::nodeagent
