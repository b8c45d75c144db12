#include "lib/client/indexer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "lib/api/scheme.h"

namespace capstan::client {

namespace {

// The same keys as controller.h's ObjectKey(ns, name), which a cache must not depend on.
std::string KeyOf(absl::string_view ns, absl::string_view name) {
  if (ns.empty()) return std::string(name);
  return absl::StrCat(ns, "/", name);
}

}  // namespace

std::string ObjectKey(const google::protobuf::Message& object) {
  const capstan::meta::v1::ObjectMeta& meta = api::Meta(object);
  return KeyOf(meta.namespace_(), meta.name());
}

IndexFunc FieldIndex(std::string json_path) {
  return [path = std::move(json_path)](const google::protobuf::Message& object) {
    std::optional<std::string> value = api::FieldValue(object, path);
    if (!value.has_value()) return std::vector<std::string>{};
    return std::vector<std::string>{std::move(*value)};
  };
}

namespace {

std::vector<std::string> NamespaceValues(const google::protobuf::Message& object) {
  return {api::Meta(object).namespace_()};
}

std::vector<std::string> LabelValues(const google::protobuf::Message& object) {
  std::vector<std::string> values;
  for (const auto& [key, value] : api::Meta(object).labels()) {
    values.push_back(absl::StrCat(key, "=", value));
  }
  return values;
}

std::vector<std::string> OwnerUidValues(const google::protobuf::Message& object) {
  std::vector<std::string> values;
  for (const auto& owner : api::Meta(object).owner_references()) values.push_back(owner.uid());
  return values;
}

}  // namespace

Indexer::Indexer() {
  indexes_[kNamespaceIndex].function = NamespaceValues;
  indexes_[kLabelIndex].function = LabelValues;
  indexes_[kOwnerUidIndex].function = OwnerUidValues;
}

absl::Status Indexer::AddIndex(const std::string& name, IndexFunc index) {
  absl::MutexLock lock(&mu_);
  if (indexes_.count(name) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("index \"", name, "\" already exists"));
  }
  NamedIndex& added = indexes_[name];
  added.function = std::move(index);
  for (const auto& [key, object] : objects_) {
    for (std::string& value : added.function(*object)) added.entries[value].insert(key);
  }
  return absl::OkStatus();
}

Object Indexer::Get(absl::string_view ns, absl::string_view name) const {
  return Get(KeyOf(ns, name));
}

bool Indexer::HasIndex(absl::string_view name) const {
  absl::ReaderMutexLock lock(&mu_);
  return indexes_.count(std::string(name)) > 0;
}

Object Indexer::Get(absl::string_view key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = objects_.find(std::string(key));
  return it == objects_.end() ? nullptr : it->second;
}

std::vector<Object> Indexer::List() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Object> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_) out.push_back(object);
  return out;
}

std::vector<std::string> Indexer::Keys() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> out;
  out.reserve(objects_.size());
  for (const auto& [key, object] : objects_) out.push_back(key);
  return out;
}

std::vector<Object> Indexer::ListNamespace(absl::string_view ns) const {
  if (ns.empty()) return List();
  absl::ReaderMutexLock lock(&mu_);
  // Keys of a namespace share the prefix "ns/" and so are adjacent in the sorted map.
  const std::string prefix = absl::StrCat(ns, "/");
  std::vector<Object> out;
  for (auto it = objects_.lower_bound(prefix);
       it != objects_.end() && absl::string_view(it->first).substr(0, prefix.size()) == prefix;
       ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<Object> Indexer::ListSelected(absl::string_view ns,
                                          const api::LabelSelector& selector) const {
  std::optional<std::string> pinned;
  for (const api::LabelRequirement& requirement : selector.requirements()) {
    if (std::optional<std::string> value = selector.RequiredValue(requirement.key())) {
      pinned = absl::StrCat(requirement.key(), "=", *value);
      break;
    }
  }
  std::vector<Object> candidates =
      pinned.has_value() ? ByIndex(kLabelIndex, *pinned) : ListNamespace(ns);
  std::vector<Object> out;
  for (Object& object : candidates) {
    const capstan::meta::v1::ObjectMeta& meta = api::Meta(*object);
    if (!ns.empty() && meta.namespace_() != ns) continue;
    if (selector.Matches(meta.labels())) out.push_back(std::move(object));
  }
  return out;
}

std::vector<Object> Indexer::ObjectsLocked(const std::set<std::string>& keys) const {
  std::vector<Object> out;
  out.reserve(keys.size());
  for (const std::string& key : keys) {
    auto it = objects_.find(key);
    if (it != objects_.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<Object> Indexer::ByIndex(absl::string_view index, absl::string_view value) const {
  absl::ReaderMutexLock lock(&mu_);
  auto named = indexes_.find(std::string(index));
  if (named == indexes_.end()) return {};
  auto entry = named->second.entries.find(std::string(value));
  if (entry == named->second.entries.end()) return {};
  return ObjectsLocked(entry->second);
}

std::vector<std::string> Indexer::IndexKeys(absl::string_view index,
                                            absl::string_view value) const {
  absl::ReaderMutexLock lock(&mu_);
  auto named = indexes_.find(std::string(index));
  if (named == indexes_.end()) return {};
  auto entry = named->second.entries.find(std::string(value));
  if (entry == named->second.entries.end()) return {};
  return std::vector<std::string>(entry->second.begin(), entry->second.end());
}

std::vector<std::string> Indexer::IndexValues(absl::string_view index) const {
  absl::ReaderMutexLock lock(&mu_);
  auto named = indexes_.find(std::string(index));
  if (named == indexes_.end()) return {};
  std::vector<std::string> out;
  for (const auto& [value, keys] : named->second.entries) out.push_back(value);
  std::sort(out.begin(), out.end());
  return out;
}

size_t Indexer::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return objects_.size();
}

void Indexer::IndexLocked(const std::string& key, const google::protobuf::Message& object) {
  for (auto& [name, index] : indexes_) {
    for (std::string& value : index.function(object)) index.entries[value].insert(key);
  }
}

void Indexer::UnindexLocked(const std::string& key, const google::protobuf::Message& object) {
  // Objects are immutable, so the index function gives the values it gave when they were added.
  for (auto& [name, index] : indexes_) {
    for (const std::string& value : index.function(object)) {
      auto entry = index.entries.find(value);
      if (entry == index.entries.end()) continue;
      entry->second.erase(key);
      if (entry->second.empty()) index.entries.erase(entry);
    }
  }
}

Object Indexer::Upsert(Object object) {
  std::string key = ObjectKey(*object);
  absl::MutexLock lock(&mu_);
  Object& slot = objects_[key];
  Object previous = std::move(slot);
  if (previous != nullptr) UnindexLocked(key, *previous);
  IndexLocked(key, *object);
  slot = std::move(object);
  return previous;
}

Object Indexer::Remove(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(std::string(key));
  if (it == objects_.end()) return nullptr;
  Object previous = std::move(it->second);
  objects_.erase(it);
  UnindexLocked(std::string(key), *previous);
  return previous;
}

absl::btree_map<std::string, Object> Indexer::Replace(std::vector<Object> objects) {
  absl::btree_map<std::string, Object> fresh;
  for (Object& object : objects) {
    std::string key = ObjectKey(*object);
    fresh[std::move(key)] = std::move(object);
  }
  absl::MutexLock lock(&mu_);
  for (auto& [name, index] : indexes_) index.entries.clear();
  for (const auto& [key, object] : fresh) IndexLocked(key, *object);
  objects_.swap(fresh);
  return fresh;
}

}  // namespace capstan::client
