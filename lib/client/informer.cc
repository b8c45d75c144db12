#include "lib/client/informer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "lib/api/errors.h"

namespace capstan::client {

// ---------------------------------------------------------------------------------------------
// The pure step

namespace {

const std::string& ResourceVersionOf(const Object& object) {
  return api::Meta(*object).resource_version();
}

}  // namespace

std::optional<Notification> ApplyWatchEvent(Indexer& indexer, absl::string_view type,
                                            Object object) {
  if (object == nullptr) return std::nullopt;
  if (type == "ADDED" || type == "MODIFIED") {
    Object previous = indexer.Upsert(object);
    if (previous == nullptr) {
      return Notification{Notification::Type::kAdd, nullptr, std::move(object)};
    }
    if (ResourceVersionOf(previous) == ResourceVersionOf(object)) return std::nullopt;
    return Notification{Notification::Type::kUpdate, std::move(previous), std::move(object)};
  }
  if (type == "DELETED") {
    if (indexer.Remove(ObjectKey(*object)) == nullptr) return std::nullopt;
    return Notification{Notification::Type::kDelete, nullptr, std::move(object)};
  }
  return std::nullopt;  // BOOKMARK, or a type this client does not know
}

std::vector<Notification> ApplyList(Indexer& indexer, std::vector<Object> objects) {
  absl::btree_map<std::string, Object> previous = indexer.Replace(objects);
  std::vector<Notification> out;
  absl::flat_hash_set<std::string> listed;
  for (Object& object : objects) {
    std::string key = ObjectKey(*object);
    if (!listed.insert(key).second) continue;
    auto it = previous.find(key);
    if (it == previous.end()) {
      out.push_back({Notification::Type::kAdd, nullptr, std::move(object)});
    } else if (ResourceVersionOf(it->second) != ResourceVersionOf(object)) {
      out.push_back({Notification::Type::kUpdate, it->second, std::move(object)});
    }
  }
  for (auto& [key, object] : previous) {
    if (!listed.contains(key)) out.push_back({Notification::Type::kDelete, nullptr, object});
  }
  return out;
}

void Deliver(const Notification& notification, const ResourceEventHandler& handler) {
  switch (notification.type) {
    case Notification::Type::kAdd:
      if (handler.on_add) handler.on_add(notification.object);
      break;
    case Notification::Type::kUpdate:
      if (handler.on_update) handler.on_update(notification.old_object, notification.object);
      break;
    case Notification::Type::kDelete:
      if (handler.on_delete) handler.on_delete(notification.object);
      break;
  }
}

bool IsExpired(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kOutOfRange) return true;
  std::string reason = api::Reason(status);
  return reason == "Expired" || reason == "Gone";
}

// ---------------------------------------------------------------------------------------------
// Listing and watching through a Client

namespace {

class ClientEventStream : public EventStream {
 public:
  explicit ClientEventStream(std::unique_ptr<WatchStream<ObjectPtr>> stream)
      : stream_(std::move(stream)) {}

  bool Next(WatchEvent<Object>* event) override {
    WatchEvent<ObjectPtr> next;
    if (!stream_->Next(&next)) return false;
    event->type = std::move(next.type);
    event->object = std::move(next.object);
    return true;
  }
  void Cancel() override { stream_->Cancel(); }
  absl::Status status() const override { return stream_->status(); }

 private:
  std::unique_ptr<WatchStream<ObjectPtr>> stream_;
};

class FailedEventStream : public EventStream {
 public:
  explicit FailedEventStream(absl::Status status) : status_(std::move(status)) {}
  bool Next(WatchEvent<Object>*) override { return false; }
  void Cancel() override {}
  absl::Status status() const override { return status_; }

 private:
  absl::Status status_;
};

class ClientListerWatcher : public ListerWatcher {
 public:
  ClientListerWatcher(Client* client, api::ResourceInfo info, std::string ns)
      : client_(client), info_(std::move(info)), ns_(std::move(ns)) {}

  absl::StatusOr<ObjectList<Object>> List(const ListOptions& options) override {
    absl::StatusOr<ObjectList<ObjectPtr>> page = client_->List(info_, ns_, options);
    if (!page.ok()) return page.status();
    ObjectList<Object> out;
    out.items.reserve(page->items.size());
    for (ObjectPtr& item : page->items) out.items.push_back(std::move(item));
    out.resource_version = std::move(page->resource_version);
    out.continue_token = std::move(page->continue_token);
    out.remaining_item_count = page->remaining_item_count;
    return out;
  }

  std::unique_ptr<EventStream> Watch(const WatchOptions& options) override {
    return std::make_unique<ClientEventStream>(client_->Watch(info_, ns_, options));
  }

 private:
  Client* const client_;
  const api::ResourceInfo info_;
  const std::string ns_;
};

class FailingListerWatcher : public ListerWatcher {
 public:
  explicit FailingListerWatcher(absl::Status status) : status_(std::move(status)) {}
  absl::StatusOr<ObjectList<Object>> List(const ListOptions&) override { return status_; }
  std::unique_ptr<EventStream> Watch(const WatchOptions&) override {
    return std::make_unique<FailedEventStream>(status_);
  }

 private:
  const absl::Status status_;
};

}  // namespace

std::unique_ptr<ListerWatcher> NewClientListerWatcher(Client* client, const api::ResourceInfo& info,
                                                      std::string ns) {
  return std::make_unique<ClientListerWatcher>(client, info, std::move(ns));
}

std::unique_ptr<ListerWatcher> NewClientListerWatcherForKind(
    Client* client, const google::protobuf::Descriptor* kind, const std::string& ns) {
  absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(kind);
  if (!info.ok()) return std::make_unique<FailingListerWatcher>(info.status());
  return NewClientListerWatcher(client, **info, ns);
}

// ---------------------------------------------------------------------------------------------
// SharedIndexInformer

SharedIndexInformer::SharedIndexInformer(Client* client, const api::ResourceInfo& info,
                                         InformerOptions options)
    : SharedIndexInformer(NewClientListerWatcher(client, info, options.ns), options) {}

SharedIndexInformer::SharedIndexInformer(std::unique_ptr<ListerWatcher> source,
                                         InformerOptions options)
    : source_(std::move(source)), options_(std::move(options)) {}

SharedIndexInformer::~SharedIndexInformer() { Stop(); }

void SharedIndexInformer::AddEventHandler(ResourceEventHandler handler) {
  absl::MutexLock lock(&dispatch_mu_);
  if (handler.on_add) {
    for (const Object& object : indexer_.List()) handler.on_add(object);
  }
  handlers_.push_back(std::move(handler));
}

void SharedIndexInformer::Run() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
}

void SharedIndexInformer::Stop() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (current_stream_ != nullptr) current_stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool SharedIndexInformer::HasSynced() const {
  absl::MutexLock lock(&mu_);
  return synced_;
}

bool SharedIndexInformer::WaitForCacheSync(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return synced_ || stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return synced_;
}

std::string SharedIndexInformer::LastResourceVersion() const {
  absl::MutexLock lock(&mu_);
  return resource_version_;
}

SharedIndexInformer::Stats SharedIndexInformer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool SharedIndexInformer::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool SharedIndexInformer::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void SharedIndexInformer::Dispatch(const Notification& notification) {
  for (const ResourceEventHandler& handler : handlers_) Deliver(notification, handler);
}

void SharedIndexInformer::Loop() {
  absl::Duration backoff = options_.initial_backoff;
  auto next_backoff = [&] { backoff = std::min(backoff * 2, options_.max_backoff); };
  bool need_list = true;
  while (!stopping()) {
    if (need_list) {
      absl::Status listed = ListAndReplace();
      if (!listed.ok()) {
        if (IsExpired(listed)) {
          absl::MutexLock lock(&mu_);
          ++stats_.expired;
        }
        if (!SleepUnlessStopped(backoff)) break;
        next_backoff();
        continue;
      }
      need_list = false;
      backoff = options_.initial_backoff;
    }
    bool progressed = false;
    absl::Status ended = WatchUntilEnd(&progressed);
    if (stopping()) break;
    if (IsExpired(ended)) {
      // Our revision is compacted: what happened since is known only from a fresh list.
      absl::MutexLock lock(&mu_);
      ++stats_.expired;
      need_list = true;
      continue;
    }
    if (progressed) backoff = options_.initial_backoff;
    if (!SleepUnlessStopped(backoff)) break;
    next_backoff();
  }
}

absl::Status SharedIndexInformer::ListAndReplace() {
  ListOptions options;
  options.label_selector = options_.label_selector;
  options.field_selector = options_.field_selector;
  options.limit = options_.page_size;
  std::vector<Object> objects;
  std::string resource_version;
  do {
    absl::StatusOr<ObjectList<Object>> page = source_->List(options);
    if (!page.ok()) return page.status();
    // Later pages continue the first one's snapshot.
    if (resource_version.empty()) resource_version = page->resource_version;
    for (Object& item : page->items) objects.push_back(std::move(item));
    options.continue_token = std::move(page->continue_token);
  } while (!options.continue_token.empty() && !stopping());
  if (!options.continue_token.empty()) return absl::CancelledError("informer stopped");

  {
    absl::MutexLock dispatch(&dispatch_mu_);
    std::vector<Notification> notifications = ApplyList(indexer_, std::move(objects));
    {
      // Before the handlers run, so that what they cause sees the informer's state up to date.
      absl::MutexLock lock(&mu_);
      resource_version_ = std::move(resource_version);
      ++stats_.lists;
    }
    for (const Notification& notification : notifications) Dispatch(notification);
  }
  absl::MutexLock lock(&mu_);
  synced_ = true;
  return absl::OkStatus();
}

absl::Status SharedIndexInformer::WatchUntilEnd(bool* progressed) {
  WatchOptions options;
  options.label_selector = options_.label_selector;
  options.field_selector = options_.field_selector;
  options.allow_bookmarks = true;
  {
    absl::MutexLock lock(&mu_);
    options.resource_version = resource_version_;
  }
  std::unique_ptr<EventStream> stream = source_->Watch(options);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::CancelledError("informer stopped");
    current_stream_ = stream.get();
    ++stats_.watches;
  }
  WatchEvent<Object> event;
  while (stream->Next(&event)) {
    *progressed = true;
    if (event.object == nullptr) continue;
    std::string resource_version = ResourceVersionOf(event.object);
    absl::MutexLock dispatch(&dispatch_mu_);
    std::optional<Notification> notification =
        ApplyWatchEvent(indexer_, event.type, std::move(event.object));
    if (!resource_version.empty()) {
      absl::MutexLock lock(&mu_);
      resource_version_ = std::move(resource_version);
    }
    if (notification.has_value()) Dispatch(*notification);
  }
  absl::MutexLock lock(&mu_);
  current_stream_ = nullptr;
  return stream->status();
}

}  // namespace capstan::client
