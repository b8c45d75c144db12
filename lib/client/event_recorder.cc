#include "lib/client/event_recorder.h"

#include "nlohmann/json.hpp"

#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"

namespace capstan::client {
namespace {

using capstan::core::v1::ObjectReference;
using CoreEvent = capstan::core::v1::Event;

// metav1.Time: whole seconds.
void SetTime(absl::Time t, capstan::meta::v1::Time* out) {
  out->set_seconds(absl::ToUnixSeconds(t));
  out->set_nanos(0);
}

std::string FormatTime(const capstan::meta::v1::Time& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

bool IsKindMessage(const google::protobuf::Message& object) {
  const google::protobuf::FieldDescriptor* meta = object.GetDescriptor()->FindFieldByNumber(3);
  return meta != nullptr && meta->type() == google::protobuf::FieldDescriptor::TYPE_MESSAGE &&
         meta->message_type() == capstan::meta::v1::ObjectMeta::descriptor() &&
         !meta->is_repeated();
}

}  // namespace

std::string EventName(absl::string_view object_name, absl::Time t) {
  return absl::StrFormat("%s.%016x", object_name, static_cast<uint64_t>(absl::ToUnixNanos(t)));
}

// ---------------------------------------------------------------------------------------------
// EventCorrelator

EventCorrelator::EventCorrelator(size_t max_entries, absl::Duration window)
    : max_entries_(max_entries == 0 ? 1 : max_entries), window_(window) {}

std::string EventCorrelator::Key(const CoreEvent& event) {
  const ObjectReference& o = event.involved_object();
  // Fields joined with a byte that names and messages do not contain in practice.
  return absl::StrCat(event.source().component(), "\x1f", event.source().host(), "\x1f",
                      o.api_version(), "\x1f", o.kind(), "\x1f", o.namespace_(), "\x1f", o.name(),
                      "\x1f", o.uid(), "\x1f", o.field_path(), "\x1f", event.type(), "\x1f",
                      event.reason(), "\x1f", event.message());
}

std::string EventCorrelator::SimilarKey(const CoreEvent& event) {
  const ObjectReference& o = event.involved_object();
  return absl::StrCat(event.source().component(), "\x1f", event.source().host(), "\x1f",
                      o.api_version(), "\x1f", o.kind(), "\x1f", o.namespace_(), "\x1f", o.name(),
                      "\x1f", o.uid(), "\x1f", o.field_path(), "\x1f", event.type(), "\x1f",
                      event.reason());
}

std::string EventCorrelator::Aggregate(CoreEvent* event, absl::Time now) {
  std::string similar_key = SimilarKey(*event);
  if (similar_.size() > max_entries_) similar_.clear();
  Similar& similar = similar_[similar_key];
  if (now - similar.last_seen > window_) similar.messages.clear();
  similar.last_seen = now;
  if (similar.messages.count(event->message()) ||
      similar.messages.size() < kMaxSimilarMessages) {
    similar.messages.insert(event->message());
    return Key(*event);
  }
  event->set_message(absl::StrCat("(combined from similar events): ", event->message()));
  return absl::StrCat(similar_key, "\x1f(combined)");
}

bool EventCorrelator::Observe(CoreEvent* event, absl::Time now) {
  std::string key = Aggregate(event, now);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    Entry& entry = *it->second;
    if (now - entry.last_seen <= window_) {
      entry.count++;
      entry.last_seen = now;
      lru_.splice(lru_.begin(), lru_, it->second);
      event->mutable_metadata()->set_name(entry.name);
      event->set_count(entry.count);
      *event->mutable_first_timestamp() = entry.first_timestamp;
      return true;
    }
    lru_.erase(it->second);
    entries_.erase(it);
  }
  Entry entry;
  entry.key = key;
  entry.name = event->metadata().name();
  entry.count = 1;
  entry.first_timestamp = event->first_timestamp();
  entry.last_seen = now;
  event->set_count(1);
  lru_.push_front(std::move(entry));
  entries_[std::move(key)] = lru_.begin();
  while (entries_.size() > max_entries_) {
    entries_.erase(lru_.back().key);
    lru_.pop_back();
  }
  return false;
}

void EventCorrelator::Forget(const CoreEvent& event) {
  auto it = entries_.find(Key(event));
  if (it == entries_.end()) return;
  lru_.erase(it->second);
  entries_.erase(it);
}

// ---------------------------------------------------------------------------------------------
// EventRecorder

EventRecorder::EventRecorder(Client* client, std::string component, std::string host,
                             EventRecorderOptions options)
    : client_(client),
      component_(std::move(component)),
      host_(std::move(host)),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : Clock::Real()),
      correlator_(options_.cache_size, options_.aggregation_window),
      thread_([this] { Loop(); }) {}

EventRecorder::~EventRecorder() {
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    dropped_ += static_cast<int64_t>(queue_.size());
    queue_.clear();
    cv_.SignalAll();
  }
  thread_.join();
}

void EventRecorder::Event(const google::protobuf::Message& object, absl::string_view type,
                          absl::string_view reason, absl::string_view message) {
  if (!IsKindMessage(object)) {
    fprintf(stderr, "event recorder: %s is not a kind message; event %s dropped\n",
            object.GetDescriptor()->full_name().c_str(), std::string(reason).c_str());
    absl::MutexLock lock(&mu_);
    failed_++;
    return;
  }
  const capstan::meta::v1::ObjectMeta& meta = api::Meta(object);
  ObjectReference ref;
  bool namespaced = true;
  absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(object.GetDescriptor());
  if (info.ok()) {
    ref.set_api_version((*info)->ApiVersion());
    ref.set_kind((*info)->kind);
    namespaced = (*info)->namespaced;
  } else {
    ref.set_api_version(api::ApiVersionOf(object));
    ref.set_kind(api::KindOf(object));
  }
  ref.set_name(meta.name());
  if (namespaced) ref.set_namespace_(meta.namespace_());
  ref.set_uid(meta.uid());
  ref.set_resource_version(meta.resource_version());
  Event(ref, type, reason, message);
}

void EventRecorder::Event(const ObjectReference& ref, absl::string_view type,
                          absl::string_view reason, absl::string_view message) {
  if (type != kEventTypeNormal && type != kEventTypeWarning) {
    fprintf(stderr, "event recorder: unsupported event type '%s'; event %s dropped\n",
            std::string(type).c_str(), std::string(reason).c_str());
    absl::MutexLock lock(&mu_);
    failed_++;
    return;
  }
  absl::Time now = Now();
  CoreEvent event;
  event.set_api_version("v1");
  event.set_kind("Event");
  event.mutable_metadata()->set_namespace_(ref.namespace_().empty() ? "default"
                                                                    : ref.namespace_());
  *event.mutable_involved_object() = ref;
  event.set_reason(std::string(reason));
  event.set_message(std::string(message));
  event.set_type(std::string(type));
  event.mutable_source()->set_component(component_);
  event.mutable_source()->set_host(host_);
  SetTime(now, event.mutable_first_timestamp());
  SetTime(now, event.mutable_last_timestamp());
  event.set_count(1);
  event.set_reporting_component(component_);
  event.set_reporting_instance(host_);
  Enqueue(std::move(event), now);
}

void EventRecorder::Enqueue(CoreEvent event, absl::Time time) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  if (queue_.size() >= options_.queue_size) {
    dropped_++;
    return;
  }
  queue_.push_back(Pending{std::move(event), time});
  cv_.SignalAll();
}

bool EventRecorder::Flush(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  while (!queue_.empty() || in_flight_) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) {
      return queue_.empty() && !in_flight_;
    }
  }
  return true;
}

int64_t EventRecorder::dropped() const {
  absl::MutexLock lock(&mu_);
  return dropped_;
}

int64_t EventRecorder::failed() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

int64_t EventRecorder::written() const {
  absl::MutexLock lock(&mu_);
  return written_;
}

void EventRecorder::Loop() {
  while (true) {
    Pending pending;
    {
      absl::MutexLock lock(&mu_);
      while (!shutdown_ && queue_.empty()) cv_.Wait(&mu_);
      if (shutdown_) return;
      pending = std::move(queue_.front());
      queue_.pop_front();
      in_flight_ = true;
    }
    CoreEvent& event = pending.event;
    // A name unique within this recorder even for events in the same nanosecond.
    int64_t nanos = absl::ToUnixNanos(pending.time);
    if (nanos <= last_name_nanos_) nanos = last_name_nanos_ + 1;
    last_name_nanos_ = nanos;
    event.mutable_metadata()->set_name(
        EventName(event.involved_object().name(), absl::FromUnixNanos(nanos)));
    bool update = correlator_.Observe(&event, pending.time);
    bool ok = Write(event, update);
    if (!ok && !update) correlator_.Forget(event);
    absl::MutexLock lock(&mu_);
    in_flight_ = false;
    if (ok) {
      written_++;
    } else {
      failed_++;
    }
    cv_.SignalAll();
  }
}

absl::Status EventRecorder::WriteOnce(const CoreEvent& event, bool update) {
  if (update) {
    PatchOptions patch_options;
    patch_options.timeout = options_.write_timeout;
    // The message too: a combined event carries the latest of the messages it folds.
    nlohmann::json patch_json = {{"count", event.count()},
                                 {"lastTimestamp", FormatTime(event.last_timestamp())},
                                 {"message", event.message()}};
    std::string patch = patch_json.dump();
    absl::StatusOr<CoreEvent> patched = client_->Patch<CoreEvent>(
        event.metadata().namespace_(), event.metadata().name(), PatchType::kMerge, patch,
        patch_options);
    if (patched.ok() || api::Reason(patched.status()) != "NotFound") return patched.status();
    // Deleted meanwhile (or its first write failed): create it again, with the same name.
  }
  WriteOptions write_options;
  write_options.timeout = options_.write_timeout;
  return client_->Create(event, write_options).status();
}

bool EventRecorder::Write(CoreEvent& event, bool update) {
  std::mt19937_64 rng(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
  for (int attempt = 1;; ++attempt) {
    absl::Status s = WriteOnce(event, update);
    if (s.ok()) return true;
    if (api::HasApiStatus(s)) {
      fprintf(stderr, "event recorder: server rejected event %s/%s (will not retry): %s\n",
              event.metadata().namespace_().c_str(), event.metadata().name().c_str(),
              std::string(s.message()).c_str());
      return false;
    }
    if (attempt >= options_.max_tries) {
      fprintf(stderr, "event recorder: unable to write event %s/%s after %d tries: %s\n",
              event.metadata().namespace_().c_str(), event.metadata().name().c_str(), attempt,
              std::string(s.message()).c_str());
      return false;
    }
    // client-go: the first retry after a random part of the interval, to spread writers.
    absl::Duration wait = options_.retry_interval;
    if (attempt == 1) {
      wait = wait * std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    }
    absl::Time until = absl::Now() + wait;
    absl::MutexLock lock(&mu_);
    while (!shutdown_ && absl::Now() < until) cv_.WaitWithDeadline(&mu_, until);
    if (shutdown_) return false;
  }
}

}  // namespace capstan::client
