#include "tools/capstanctl/manifests.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/api/yaml.h"

namespace capstan::capstanctl {
namespace {

absl::Status AddDocuments(const std::string& text, const std::string& source,
                          std::vector<Manifest>* out) {
  absl::StatusOr<std::vector<nlohmann::json>> docs = api::ParseYamlDocuments(text);
  if (!docs.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("error parsing ", source, ": ", docs.status().message()));
  }
  for (nlohmann::json& doc : *docs) {
    if (!doc.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("error parsing ", source, ": a document is not an object"));
    }
    // `get -o yaml` of several objects prints a List; applying it applies the items.
    auto kind = doc.find("kind");
    auto items = doc.find("items");
    if (kind != doc.end() && *kind == "List" && items != doc.end() && items->is_array()) {
      for (nlohmann::json& item : *items) out->push_back({std::move(item), source});
      continue;
    }
    out->push_back({std::move(doc), source});
  }
  return absl::OkStatus();
}

absl::Status ReadFile(const std::string& path, std::vector<Manifest>* out) {
  std::ifstream file(path);
  if (!file) return absl::NotFoundError(absl::StrCat("the path \"", path, "\" does not exist"));
  std::stringstream text;
  text << file.rdbuf();
  return AddDocuments(text.str(), path, out);
}

bool IsManifestFile(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  return ext == ".yaml" || ext == ".yml" || ext == ".json";
}

}  // namespace

absl::StatusOr<std::vector<Manifest>> ReadManifests(const std::string& path, std::istream& in) {
  std::vector<Manifest> out;
  if (path == "-") {
    std::stringstream text;
    text << in.rdbuf();
    absl::Status s = AddDocuments(text.str(), "STDIN", &out);
    if (!s.ok()) return s;
    return out;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    std::vector<std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
      if (entry.is_regular_file() && IsManifestFile(entry.path())) {
        files.push_back(entry.path().string());
      }
    }
    std::sort(files.begin(), files.end());
    for (const std::string& file : files) {
      absl::Status s = ReadFile(file, &out);
      if (!s.ok()) return s;
    }
    return out;
  }
  absl::Status s = ReadFile(path, &out);
  if (!s.ok()) return s;
  return out;
}

}  // namespace capstan::capstanctl
