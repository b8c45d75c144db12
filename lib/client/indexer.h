// The indexed cache behind an informer (client-go's cache.Indexer, in C++).
//
//   Indexer cache;
//   cache.AddIndex("spec.nodeName", FieldIndex("spec.nodeName"));
//   for (const Object& pod : cache.ByIndex("spec.nodeName", "node-1")) ...
//
// Objects are immutable snapshots: the cache hands out std::shared_ptr<const Message> and replaces
// the pointer on every update, so a reader may keep (and read) an object for as long as it likes
// while the cache moves on. Never const_cast and modify a cached object: copy it first.
//
// Keys are "namespace/name", or "name" for cluster-scoped objects (client-go's
// MetaNamespaceKeyFunc). An index maps each object to a list of index values; ByIndex(index, value)
// returns every object whose list contains value. Three indexes are always present:
//   kNamespaceIndex ("namespace"): metadata.namespace ("" for cluster-scoped objects)
//   kLabelIndex     ("labels"):    one "key=value" per label
//   kOwnerUidIndex  ("ownerUID"):  the uid of each ownerReference
//
// Thread-safe: one lock covers the objects and every index, so a reader never sees an index that
// disagrees with the objects. Writers are the informer's thread (Upsert, Remove, Replace).
#ifndef CAPSTAN_LIB_CLIENT_INDEXER_H_
#define CAPSTAN_LIB_CLIENT_INDEXER_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "lib/api/labels.h"

namespace capstan::client {

// An immutable snapshot of a kind message (metadata is field 3, see lib/api/scheme.h).
using Object = std::shared_ptr<const google::protobuf::Message>;

// The key of a kind message, from its metadata: "namespace/name", or "name" when the namespace is
// empty. (ObjectKey(ns, name) and SplitObjectKey, for keys from parts, are in controller.h.)
std::string ObjectKey(const google::protobuf::Message& object);

// The index values of an object. Returning several values puts the object under each of them;
// returning none leaves it out of the index.
using IndexFunc = std::function<std::vector<std::string>(const google::protobuf::Message&)>;

inline constexpr char kNamespaceIndex[] = "namespace";
inline constexpr char kLabelIndex[] = "labels";
inline constexpr char kOwnerUidIndex[] = "ownerUID";

// An index on a scalar field named by its JSON path ("spec.nodeName", "status.phase"), with the
// text api::FieldValue gives (an unset field indexes as "", so ByIndex(path, "") finds them).
IndexFunc FieldIndex(std::string json_path);

class Indexer {
 public:
  // An empty cache with the built-in indexes.
  Indexer();
  Indexer(const Indexer&) = delete;
  Indexer& operator=(const Indexer&) = delete;

  // Adds an index, computed at once over the objects already cached. AlreadyExists when the name
  // is taken.
  absl::Status AddIndex(const std::string& name, IndexFunc index);
  bool HasIndex(absl::string_view name) const;

  // --- Reads. Results are sorted by key. -------------------------------------------------------

  // nullptr when absent.
  Object Get(absl::string_view key) const;
  Object Get(absl::string_view ns, absl::string_view name) const;
  std::vector<Object> List() const;
  std::vector<std::string> Keys() const;
  // The objects of one namespace; ns "" lists every object (client-go's NamespaceAll).
  std::vector<Object> ListNamespace(absl::string_view ns) const;
  // The objects of namespace ns ("" for all) whose labels match selector. Uses the label index
  // for a requirement that pins a value (k=v, k in (v)) instead of scanning.
  std::vector<Object> ListSelected(absl::string_view ns, const api::LabelSelector& selector) const;
  // The objects the named index maps value to. Empty for an unknown index (see HasIndex).
  std::vector<Object> ByIndex(absl::string_view index, absl::string_view value) const;
  // The keys of ByIndex.
  std::vector<std::string> IndexKeys(absl::string_view index, absl::string_view value) const;
  // The values an index has objects for.
  std::vector<std::string> IndexValues(absl::string_view index) const;
  size_t size() const;

  // --- Writes --------------------------------------------------------------------------------

  // Stores object under its key. Returns the object it replaced, or nullptr.
  Object Upsert(Object object);
  // Removes key. Returns the object removed, or nullptr when it was absent.
  Object Remove(absl::string_view key);
  // Makes the cache hold exactly objects (keyed by ObjectKey). Returns the previous contents.
  absl::btree_map<std::string, Object> Replace(std::vector<Object> objects);

 private:
  // value -> keys
  using Index = absl::flat_hash_map<std::string, std::set<std::string>>;
  struct NamedIndex {
    IndexFunc function;
    Index entries;
  };

  void IndexLocked(const std::string& key, const google::protobuf::Message& object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnindexLocked(const std::string& key, const google::protobuf::Message& object)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<Object> ObjectsLocked(const std::set<std::string>& keys) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  absl::btree_map<std::string, Object> objects_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, NamedIndex, std::less<>> indexes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_INDEXER_H_
