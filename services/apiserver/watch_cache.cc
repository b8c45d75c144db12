#include "services/apiserver/watch_cache.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/api/codec.h"
#include "lib/api/errors.h"

namespace capstan::apiserver {
namespace {

// Continue tokens carry the list's revision and the last key returned, so the next page is read
// at the same revision (as Kubernetes does, with its own opaque format).
std::string EncodeContinue(int64_t revision, const std::string& last_key) {
  return absl::WebSafeBase64Escape(absl::StrCat(revision, ":", last_key));
}

absl::Status DecodeContinue(const std::string& token, int64_t* revision, std::string* last_key) {
  std::string raw;
  size_t colon;
  if (!absl::WebSafeBase64Unescape(token, &raw) || (colon = raw.find(':')) == std::string::npos ||
      !absl::SimpleAtoi(raw.substr(0, colon), revision) || *revision <= 0) {
    return api::BadRequest("continue key is not valid: malformed token");
  }
  *last_key = raw.substr(colon + 1);
  return absl::OkStatus();
}

absl::Status TooOld(int64_t revision, int64_t oldest) {
  return api::Expired(absl::StrCat("too old resource version: ", revision, " (", oldest, ")"));
}

// A watch resumed from a revision with more events since than the watcher may queue could never
// catch up: it would be cut off as too slow, resume from the same revision, and so on forever.
// It is answered as Kubernetes' watch cache answers a revision it cannot serve, 410 Expired, so
// the client relists instead.
absl::Status BacklogTooLong(int64_t revision, size_t capacity) {
  return api::Expired(absl::StrCat("too old resource version: ", revision, " (more than ",
                                   capacity, " events since; list again)"));
}

// Kubernetes semantics for a watch with a selector: an object that starts matching is ADDED, one
// that stops matching is DELETED.
std::optional<WatchEventType> FilteredType(const Selection& s, const CacheEvent& e) {
  if (e.type == WatchEventType::kBookmark) return e.type;
  bool now = s.Matches(*e.object);
  if (e.type == WatchEventType::kDeleted) return now ? std::optional(e.type) : std::nullopt;
  bool before = e.prev != nullptr && s.Matches(*e.prev);
  if (now && before) return WatchEventType::kModified;
  if (now) return WatchEventType::kAdded;
  if (before) return WatchEventType::kDeleted;
  return std::nullopt;
}

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A protobuf field of wire type 2 (length-delimited): tag, length, bytes.
void AppendLengthDelimited(int field_number, const std::string& bytes, std::string* out) {
  AppendVarint((static_cast<uint64_t>(field_number) << 3) | 2, out);
  AppendVarint(bytes.size(), out);
  out->append(bytes);
}

// The selectable fields of a message's kind, found by its type: objects do not always carry
// apiVersion and kind.
const std::vector<std::string>& SelectableFields(const google::protobuf::Descriptor* type) {
  static const auto* by_type = [] {
    auto* fields =
        new absl::flat_hash_map<const google::protobuf::Descriptor*, const std::vector<std::string>*>();
    const api::Scheme& scheme = api::Scheme::BuiltIn();
    for (const api::ResourceInfo& info : scheme.resources()) {
      (*fields)[scheme.New(info)->GetDescriptor()] = &info.selectable_fields;
    }
    return fields;
  }();
  static const std::vector<std::string> kNone;
  auto it = by_type->find(type);
  return it == by_type->end() ? kNone : *it->second;
}

}  // namespace

CachedObject::CachedObject(std::unique_ptr<google::protobuf::Message> object, int64_t mod_revision)
    : mod_revision_(mod_revision) {
  Index(*object);
  object->SerializeToString(&proto_);
  if (KeepsDecoded(object->GetDescriptor())) decoded_ = std::move(object);
}

CachedObject::CachedObject(const google::protobuf::Message& object, std::string stored)
    : proto_(std::move(stored)) {
  Index(object);
}

absl::StatusOr<std::shared_ptr<CachedObject>> CachedObject::FromStored(
    const google::protobuf::Message& prototype, std::string stored, int64_t mod_revision) {
  std::shared_ptr<CachedObject> cached(new CachedObject());
  const google::protobuf::Descriptor* type = prototype.GetDescriptor();
  // The generated default instance, which lives as long as the program.
  cached->prototype_ = prototype.GetReflection()->GetMessageFactory()->GetPrototype(type);
  cached->metadata_field_ = type->FindFieldByName("metadata")->number();
  // The view, as Index() makes it from a decoded object: name, namespace, labels and the
  // selectable field values.
  capstan::meta::v1::ObjectMeta meta;
  bool merged = true;
  bool well_formed =
      api::ForEachEmbedded(stored, cached->metadata_field_, [&](absl::string_view bytes) {
        merged = merged && meta.MergeFromString(std::string(bytes));
      });
  if (!well_formed || !merged) {
    return absl::InvalidArgumentError(absl::StrCat("stored ", type->name(), " does not decode"));
  }
  cached->meta_.name_ = std::move(*meta.mutable_name());
  cached->meta_.namespace_name_ = std::move(*meta.mutable_namespace_());
  cached->meta_.labels_.swap(*meta.mutable_labels());
  for (const std::string& path : SelectableFields(type)) {
    if (path == "metadata.name" || path == "metadata.namespace") continue;
    std::optional<std::string> value = api::FieldValueFromWire(type, stored, path);
    if (value) cached->fields_.emplace_back(path, std::move(*value));
  }
  cached->proto_ = std::move(stored);
  cached->Stamp(mod_revision);
  return cached;
}

void CachedObject::Stamp(int64_t mod_revision) {
  mod_revision_ = mod_revision;
  std::string meta;  // ObjectMeta{resourceVersion}
  AppendLengthDelimited(capstan::meta::v1::ObjectMeta::kResourceVersionFieldNumber,
                        absl::StrCat(mod_revision), &meta);
  proto_.reserve(proto_.size() + meta.size() + 4);
  AppendLengthDelimited(metadata_field_, meta, &proto_);
  KeepDecodedIfWanted();
}

void CachedObject::Index(const google::protobuf::Message& object) {
  prototype_ = object.GetReflection()->GetMessageFactory()->GetPrototype(object.GetDescriptor());
  metadata_field_ = object.GetDescriptor()->FindFieldByName("metadata")->number();
  const capstan::meta::v1::ObjectMeta& meta = api::Meta(object);
  meta_.name_ = meta.name();
  meta_.namespace_name_ = meta.namespace_();
  meta_.labels_ = meta.labels();
  for (const std::string& path : SelectableFields(object.GetDescriptor())) {
    if (path == "metadata.name" || path == "metadata.namespace") continue;
    std::optional<std::string> value = api::FieldValue(object, path);
    if (value) fields_.emplace_back(path, std::move(*value));
  }
}

void CachedObject::KeepDecodedIfWanted() {
  if (KeepsDecoded(prototype_->GetDescriptor())) decoded_ = Decode();
}

std::shared_ptr<const google::protobuf::Message> CachedObject::object() const {
  return decoded_ != nullptr ? decoded_ : Decode();
}

std::shared_ptr<const google::protobuf::Message> CachedObject::Decode() const {
  std::shared_ptr<google::protobuf::Message> object(prototype_->New());
  // The encoding was made from a valid message by this process: it always decodes.
  object->ParseFromString(proto_);
  return object;
}

std::optional<std::string> CachedObject::field(std::string_view path) const {
  if (path == "metadata.name") return meta_.name();
  if (path == "metadata.namespace") return meta_.namespace_();
  for (const auto& [name, value] : fields_) {
    if (name == path) return value;
  }
  return std::nullopt;
}

const std::string& CachedObject::json() const {
  std::call_once(json_once_, [this] { json_ = api::PrintJson(*object()); });
  return json_;
}

bool KeepsDecoded(const google::protobuf::Descriptor* type) {
  // Every namespaced create reads its Namespace; every pod create looks for the default
  // PriorityClass among all of them.
  const std::string& name = type->full_name();
  return name == "capstan.core.v1.Namespace" || name == "capstan.scheduling.v1.PriorityClass";
}

const char* WatchEventTypeName(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
  }
  return "";
}

bool Selection::Matches(const CachedObject& cached) const {
  const auto& meta = cached.meta();
  if (!namespace_.empty() && meta.namespace_() != namespace_) return false;
  if (!labels.Matches(meta.labels())) return false;
  if (fields.Empty()) return true;
  return fields.Matches([&](std::string_view field) { return cached.field(field); });
}

Watcher::Watcher(Selection selection, size_t capacity, bool bookmarks, std::function<void()> notify)
    : selection_(std::move(selection)),
      capacity_(capacity),
      bookmarks_(bookmarks),
      notify_(std::move(notify)) {}

std::vector<CacheEvent> Watcher::Take(size_t max) {
  absl::MutexLock lock(&mu_);
  std::vector<CacheEvent> out;
  if (!status_.ok()) return out;
  size_t n = std::min(max, queue_.size());
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  armed_ = out.empty();
  return out;
}

absl::Status Watcher::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

bool Watcher::Offer(const CacheEvent& event) {
  std::optional<WatchEventType> type = FilteredType(selection_, event);
  if (!type) return true;
  if (*type == WatchEventType::kBookmark && !bookmarks_) return true;
  CacheEvent copy = event;
  copy.type = *type;
  return Push(std::move(copy));
}

bool Watcher::Push(CacheEvent event) {
  bool wake;
  {
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) return true;
    if (queue_.size() >= capacity_) return false;
    queue_.push_back(std::move(event));
    wake = armed_;
    armed_ = false;
  }
  if (wake) notify_();
  return true;
}

void Watcher::Close(absl::Status why) {
  {
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) return;
    status_ = std::move(why);
    queue_.clear();
  }
  notify_();
}

WatchCache::WatchCache(const api::ResourceInfo& info, size_t window)
    : info_(info),
      window_(std::max<size_t>(window, 1)),
      trigger_field_(info.group.empty() && info.resource == "pods" ? "spec.nodeName" : "") {}

std::optional<std::string> WatchCache::TriggerValue(const Selection& selection) const {
  if (trigger_field_.empty()) return std::nullopt;
  for (const auto& r : selection.fields.requirements()) {
    if (r.field == trigger_field_ && r.op == api::FieldSelector::Operator::kEquals) return r.value;
  }
  return std::nullopt;
}

void WatchCache::Register(std::shared_ptr<Watcher> watcher) {
  if (std::optional<std::string> value = TriggerValue(watcher->selection())) {
    triggered_[*value].push_back(std::move(watcher));
  } else {
    watchers_.push_back(std::move(watcher));
  }
}

void WatchCache::Load(std::vector<std::pair<std::string, ObjectPtr>> objects, int64_t revision) {
  absl::MutexLock lock(&mu_);
  objects_.clear();
  for (auto& [key, object] : objects) objects_.emplace(std::move(key), std::move(object));
  events_.clear();
  window_start_ = revision;
  revision_ = revision;
}

void WatchCache::Apply(const std::string& key, bool deleted, ObjectPtr object, int64_t revision) {
  absl::MutexLock lock(&mu_);
  CacheEvent event{WatchEventType::kAdded, revision, object, nullptr};
  auto it = objects_.find(key);
  if (it != objects_.end()) event.prev = it->second;
  if (deleted) {
    event.type = WatchEventType::kDeleted;
    if (it != objects_.end()) objects_.erase(it);
  } else if (it != objects_.end()) {
    event.type = WatchEventType::kModified;
    it->second = object;
  } else {
    objects_.emplace(key, object);
  }
  revision_ = revision;
  events_.emplace_back(key, event);
  if (events_.size() > window_) {
    window_start_ = events_.front().second.revision;
    events_.pop_front();
  }
  Deliver(event);
}

void WatchCache::Advance(int64_t revision) {
  absl::MutexLock lock(&mu_);
  if (revision > revision_) revision_ = revision;
}

void WatchCache::OfferAll(const CacheEvent& event, std::vector<std::shared_ptr<Watcher>>* list) {
  for (size_t i = 0; i < list->size();) {
    if ((*list)[i]->Offer(event)) {
      ++i;
      continue;
    }
    // Too slow: cut it off rather than let its queue grow without bound. The client resumes from
    // the last revision it saw (or relists once that is compacted).
    (*list)[i]->Close(absl::ResourceExhaustedError(
        absl::StrCat("watch of ", info_.QualifiedResource(),
                     " closed: the client fell more than ", (*list)[i]->capacity_,
                     " events behind; resume from the last resourceVersion received")));
    (*list)[i] = list->back();
    list->pop_back();
  }
}

void WatchCache::Deliver(const CacheEvent& event) {
  OfferAll(event, &watchers_);
  if (triggered_.empty()) return;
  // Only the watchers of the node the object is on now, and of the one it was on before (a pod
  // that leaves a selection must reach its watchers as DELETED).
  auto value_of = [&](const ObjectPtr& o) -> std::string {
    if (o == nullptr) return "";
    return o->field(trigger_field_).value_or("");
  };
  const std::string now = value_of(event.object);
  const std::string before = value_of(event.prev);
  if (auto it = triggered_.find(now); it != triggered_.end()) OfferAll(event, &it->second);
  if (before != now) {
    if (auto it = triggered_.find(before); it != triggered_.end()) OfferAll(event, &it->second);
  }
}

ObjectPtr WatchCache::Get(const std::string& key) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = objects_.find(key);
  return it == objects_.end() ? nullptr : it->second;
}

int64_t WatchCache::revision() const {
  absl::ReaderMutexLock lock(&mu_);
  return revision_;
}

size_t WatchCache::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return objects_.size();
}

size_t WatchCache::watcher_count() const {
  absl::ReaderMutexLock lock(&mu_);
  size_t n = watchers_.size();
  for (const auto& [value, list] : triggered_) n += list.size();
  return n;
}

absl::Status WatchCache::UndoAfter(int64_t at,
                                   absl::btree_map<std::string, ObjectPtr>* overlay) const {
  if (at < window_start_) return TooOld(at, window_start_);
  // Walking back from the newest event, the last assignment for a key is its earliest change after
  // `at`, whose prev is the object as it was at `at`.
  for (auto it = events_.rbegin(); it != events_.rend() && it->second.revision > at; ++it) {
    (*overlay)[it->first] = it->second.prev;
  }
  return absl::OkStatus();
}

absl::StatusOr<ListResult> WatchCache::List(const Selection& selection, int64_t at, int64_t limit,
                                            const std::string& continue_token) const {
  absl::ReaderMutexLock lock(&mu_);
  std::string start_after;
  bool paging = !continue_token.empty();
  if (paging) {
    absl::Status s = DecodeContinue(continue_token, &at, &start_after);
    if (!s.ok()) return s;
  }
  if (at == 0 || at > revision_) at = revision_;
  absl::btree_map<std::string, ObjectPtr> overlay;
  if (at < revision_) {
    absl::Status s = UndoAfter(at, &overlay);
    if (!s.ok()) {
      if (paging) {
        return api::Expired(
            "The provided continue parameter is too old to display a consistent list result. You "
            "can start a new list without the continue parameter.");
      }
      return s;
    }
  }
  // A namespace narrows the scan to its key range ("ns/" .. "ns0", '0' follows '/').
  std::string from = selection.namespace_.empty() ? "" : selection.namespace_ + "/";
  std::string to = selection.namespace_.empty() ? "" : selection.namespace_ + "0";
  if (paging && start_after >= from) from = start_after + '\0';

  ListResult result;
  result.revision = at;
  auto cur = objects_.lower_bound(from);
  auto old = overlay.lower_bound(from);
  auto in_range = [&](const std::string& key) { return to.empty() || key < to; };
  std::string last_key;
  bool more = false;
  int64_t remaining = 0;
  while (true) {
    bool cur_ok = cur != objects_.end() && in_range(cur->first);
    bool old_ok = old != overlay.end() && in_range(old->first);
    if (!cur_ok && !old_ok) break;
    const std::string* key;
    ObjectPtr object;
    if (old_ok && (!cur_ok || old->first <= cur->first)) {
      // The overlay wins for keys changed after `at`.
      key = &old->first;
      object = old->second;
      if (cur_ok && cur->first == old->first) ++cur;
      ++old;
    } else {
      key = &cur->first;
      object = cur->second;
      ++cur;
    }
    if (object == nullptr || !selection.Matches(*object)) continue;
    if (limit > 0 && static_cast<int64_t>(result.items.size()) >= limit) {
      more = true;
      ++remaining;
      continue;
    }
    last_key = *key;
    result.items.push_back(std::move(object));
  }
  if (more) {
    result.continue_token = EncodeContinue(at, last_key);
    // Kubernetes only reports the count when no selector filtered the list.
    if (selection.labels.Empty() && selection.fields.Empty()) result.remaining = remaining;
  }
  return result;
}

absl::StatusOr<std::shared_ptr<Watcher>> WatchCache::Watch(Selection selection, int64_t after,
                                                           bool initial_events, bool bookmarks,
                                                           size_t capacity,
                                                           std::function<void()> notify,
                                                           const HistoryReader& history) {
  int64_t now = revision();
  if (after == 0) after = now;
  std::vector<CacheEvent> backlog;
  if (initial_events) {
    absl::StatusOr<ListResult> state = List(selection, after, 0, "");
    if (!state.ok()) return state.status();
    for (ObjectPtr& object : state->items) {
      backlog.push_back({WatchEventType::kAdded, object->mod_revision(), std::move(object), nullptr});
    }
    after = state->revision;
    if (bookmarks) backlog.push_back({WatchEventType::kBookmark, after, nullptr, nullptr, true});
  }
  auto watcher = std::make_shared<Watcher>(std::move(selection),
                                           std::max(capacity, backlog.size() + capacity), bookmarks,
                                           std::move(notify));
  for (CacheEvent& e : backlog) watcher->Push(std::move(e));

  // Events older than the window come from the store's log, up to the revision the cache had
  // reached before the read (later ones are in the window or will be applied after we register).
  // Repeat until the window reaches back to what was replayed; it only moves forward, so this ends.
  int64_t delivered = after;
  while (true) {
    int64_t limit;
    {
      absl::MutexLock lock(&mu_);
      if (delivered >= window_start_) {
        for (const auto& [key, event] : events_) {
          if (event.revision > delivered && !watcher->Offer(event)) {
            return BacklogTooLong(after, capacity);
          }
        }
        Register(watcher);
        return watcher;
      }
      limit = revision_;
    }
    bool overflow = false;
    absl::Status s = history(delivered, [&](CacheEvent event) {
      if (event.revision <= delivered) return true;
      if (event.revision > limit) return false;
      overflow = !watcher->Offer(event);
      return !overflow;
    });
    if (!s.ok()) return s;
    if (overflow) return BacklogTooLong(after, capacity);
    delivered = limit;
  }
}

void WatchCache::StopWatch(const std::shared_ptr<Watcher>& watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(std::remove(watchers_.begin(), watchers_.end(), watcher), watchers_.end());
  if (std::optional<std::string> value = TriggerValue(watcher->selection())) {
    auto it = triggered_.find(*value);
    if (it != triggered_.end()) {
      auto& list = it->second;
      list.erase(std::remove(list.begin(), list.end(), watcher), list.end());
      if (list.empty()) triggered_.erase(it);
    }
  }
}

void WatchCache::Bookmark() {
  absl::MutexLock lock(&mu_);
  CacheEvent bookmark{WatchEventType::kBookmark, revision_, nullptr, nullptr};
  ForEachWatcher([&](const std::shared_ptr<Watcher>& w) {
    if (w->wants_bookmarks()) w->Push(bookmark);
  });
}

void WatchCache::CloseAll(absl::Status why) {
  absl::MutexLock lock(&mu_);
  ForEachWatcher([&](const std::shared_ptr<Watcher>& w) { w->Close(why); });
  watchers_.clear();
  triggered_.clear();
}

}  // namespace capstan::apiserver
