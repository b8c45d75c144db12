#include "tools/capstanctl/apply.h"

namespace capstan::capstanctl {
namespace {

using nlohmann::json;

const json& Member(const json& object, const std::string& key) {
  static const json* const kNull = new json(nullptr);
  if (!object.is_object()) return *kNull;
  auto it = object.find(key);
  return it == object.end() ? *kNull : *it;
}

bool Has(const json& object, const std::string& key) {
  return object.is_object() && object.contains(key);
}

// One level of the three-way diff; modified is an object here.
json Diff(const json& original, const json& modified, const json& current) {
  json patch = json::object();
  for (auto it = modified.begin(); it != modified.end(); ++it) {
    const std::string& key = it.key();
    const json& want = it.value();
    if (!Has(current, key)) {
      // null asks to delete what is not there: nothing to send.
      if (!want.is_null()) patch[key] = want;
      continue;
    }
    const json& have = current.at(key);
    if (want.is_object() && have.is_object()) {
      json sub = Diff(Member(original, key), want, have);
      if (!sub.empty()) patch[key] = std::move(sub);
    } else if (want != have) {
      patch[key] = want;  // scalars and arrays are replaced whole
    }
  }
  if (original.is_object()) {
    for (auto it = original.begin(); it != original.end(); ++it) {
      if (!modified.contains(it.key()) && Has(current, it.key())) patch[it.key()] = nullptr;
    }
  }
  return patch;
}

}  // namespace

std::string LastAppliedConfiguration(const json& manifest) {
  json copy = manifest;
  if (copy.is_object() && copy.contains("metadata") && copy["metadata"].is_object()) {
    json& metadata = copy["metadata"];
    if (metadata.contains("annotations") && metadata["annotations"].is_object()) {
      metadata["annotations"].erase(kLastAppliedAnnotation);
      // An annotations map that only held ours was not written by the user.
      if (metadata["annotations"].empty()) metadata.erase("annotations");
    }
  }
  return copy.dump();
}

json WithLastApplied(const json& manifest) {
  json result = manifest;
  result["metadata"]["annotations"][kLastAppliedAnnotation] = LastAppliedConfiguration(manifest);
  return result;
}

json LastAppliedOf(const json& live) {
  const json& value = Member(Member(Member(live, "metadata"), "annotations"), kLastAppliedAnnotation);
  if (!value.is_string()) return nullptr;
  json parsed = json::parse(value.get<std::string>(), nullptr, /*allow_exceptions=*/false);
  return parsed.is_discarded() ? json(nullptr) : parsed;
}

json ThreeWayMergePatch(const json& original, const json& modified, const json& current) {
  if (!modified.is_object()) return json::object();
  return Diff(original, modified, current);
}

bool OnlyLastAppliedChanges(const json& patch) {
  json rest = patch;
  if (Has(rest, "metadata") && Has(rest["metadata"], "annotations") &&
      rest["metadata"]["annotations"].is_object()) {
    rest["metadata"]["annotations"].erase(kLastAppliedAnnotation);
    if (rest["metadata"]["annotations"].empty()) rest["metadata"].erase("annotations");
    if (rest["metadata"].empty()) rest.erase("metadata");
  }
  return rest.empty();
}

}  // namespace capstan::capstanctl
