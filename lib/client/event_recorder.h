// Records v1 Events about objects, after client-go's tools/record EventRecorder.
//
//   EventRecorder recorder(client.get(), "deployment-controller", hostname);
//   recorder.Event(deployment, "Normal", "ScalingReplicaSet", "Scaled up replica set web-5d8 to 3");
//   recorder.Eventf(pod, "Warning", "FailedScheduling", "0/%d nodes are available", n);
//
// Event() never blocks on the server: the event is queued (at most queue_size; when the queue is
// full the event is dropped and dropped() counts it) and a background thread writes it.
//
// Repeats are aggregated as client-go's EventCorrelator does: an event with the same involved
// object (apiVersion, kind, namespace, name, uid, fieldPath), type, reason, message and source as
// one recorded within aggregation_window (10 minutes) is not created again; the existing Event
// gets count+1 and a new lastTimestamp (a merge patch; created again with the same name and count
// if it was deleted meanwhile). The recently seen keys are kept in an LRU of cache_size (4096)
// entries. Not implemented from client-go: the EventAggregator that folds *similar* events with
// different messages into "(combined from similar events)", and the per-object spam filter.
//
// Events are named as Kubernetes names them: "<object name>.<16 hex digits of the Unix time in
// ns>", in the object's namespace, or "default" for cluster-scoped objects.
//
// A write that fails without reaching the server (unavailable, deadline) is retried up to
// max_tries times, retry_interval apart; a write the server rejects is dropped (failed() counts
// both), as client-go does.
#ifndef CAPSTAN_LIB_CLIENT_EVENT_RECORDER_H_
#define CAPSTAN_LIB_CLIENT_EVENT_RECORDER_H_

#include <cstdint>
#include <deque>
#include <list>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "lib/client/client.h"
#include "lib/client/clock.h"
#include "proto/core_v1.pb.h"

namespace capstan::client {

inline constexpr absl::string_view kEventTypeNormal = "Normal";
inline constexpr absl::string_view kEventTypeWarning = "Warning";

struct EventRecorderOptions {
  size_t queue_size = 1000;                             // client-go's maxQueuedEvents
  size_t cache_size = 4096;                             // client-go's maxLruCacheEntries
  absl::Duration aggregation_window = absl::Minutes(10);
  int max_tries = 12;                                   // client-go's maxTriesPerEvent
  absl::Duration retry_interval = absl::Seconds(10);    // client-go's sleepDuration
  absl::Duration write_timeout = absl::Seconds(10);
  Clock* clock = nullptr;                               // timestamps; nullptr: Clock::Real()
};

// "<name>.<16 hex digits of t's Unix nanoseconds>".
std::string EventName(absl::string_view object_name, absl::Time t);

// The aggregation of identical events (pure; not thread-safe; used by EventRecorder's writer).
class EventCorrelator {
 public:
  EventCorrelator(size_t max_entries, absl::Duration window);

  // The key of an event: source, involved object, type, reason and message.
  static std::string Key(const capstan::core::v1::Event& event);
  // The same without the message: what makes events "similar" (Kubernetes' EventAggregator).
  static std::string SimilarKey(const capstan::core::v1::Event& event);
  // After this many distinct messages of similar events within the window, further ones are
  // folded into one Event "(combined from similar events): <latest message>" with a count, so a
  // ReplicaSet creating 10,000 pods writes a handful of Events, not 10,000.
  static constexpr size_t kMaxSimilarMessages = 10;

  // event: a new event (metadata.name a fresh name, count 1) that happened at now. When an
  // identical event was seen within the window before now, rewrites event to update that one
  // (its name and firstTimestamp, count+1) and returns true; otherwise remembers event and
  // returns false.
  bool Observe(capstan::core::v1::Event* event, absl::Time now);
  // Forgets the key (e.g. when the write of a new event failed for good).
  void Forget(const capstan::core::v1::Event& event);

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string key;
    std::string name;
    int32_t count = 0;
    capstan::meta::v1::Time first_timestamp;
    absl::Time last_seen;
  };
  struct Similar {
    std::unordered_set<std::string> messages;  // at most kMaxSimilarMessages
    absl::Time last_seen;
  };
  // Rewrites event into its combined form when it has too many similar siblings; returns the key
  // under which it is then correlated.
  std::string Aggregate(capstan::core::v1::Event* event, absl::Time now);
  void Remember(std::string key, const capstan::core::v1::Event& event, absl::Time now);

  const size_t max_entries_;
  const absl::Duration window_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> entries_;
  // Similar events by SimilarKey; bounded like entries_ (cleared when it grows past max_entries_).
  std::unordered_map<std::string, Similar> similar_;
};

class EventRecorder {
 public:
  // client must outlive the recorder. component: source.component and reportingComponent;
  // host: source.host and reportingInstance.
  EventRecorder(Client* client, std::string component, std::string host,
                EventRecorderOptions options = {});
  // Stops the writer after the event in flight; events still queued are dropped (call Flush
  // first to write them).
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // object: a kind message (a Pod, a Deployment, ...). type: "Normal" or "Warning" (others are
  // rejected, as client-go does). reason: UpperCamelCase, short. Never blocks on the server.
  void Event(const google::protobuf::Message& object, absl::string_view type,
             absl::string_view reason, absl::string_view message);
  // The same for an object known only by reference.
  void Event(const capstan::core::v1::ObjectReference& ref, absl::string_view type,
             absl::string_view reason, absl::string_view message);

  template <typename... Args>
  void Eventf(const google::protobuf::Message& object, absl::string_view type,
              absl::string_view reason, const absl::FormatSpec<Args...>& format,
              const Args&... args) {
    Event(object, type, reason, absl::StrFormat(format, args...));
  }

  // Waits until every event queued so far is written (or given up on). False on timeout.
  bool Flush(absl::Duration timeout);

  int64_t dropped() const;  // events dropped because the queue was full
  int64_t failed() const;   // events rejected (bad type, not a kind) or whose write failed for good
  int64_t written() const;  // successful creates and updates

 private:
  absl::Time Now() const { return clock_->Now(); }
  struct Pending {
    capstan::core::v1::Event event;
    absl::Time time;  // when Event() was called
  };
  void Enqueue(capstan::core::v1::Event event, absl::Time time);
  void Loop();
  // Creates or updates one event, with retries. True when written.
  bool Write(capstan::core::v1::Event& event, bool update);
  absl::Status WriteOnce(const capstan::core::v1::Event& event, bool update);

  Client* const client_;
  const std::string component_;
  const std::string host_;
  const EventRecorderOptions options_;
  Clock* const clock_;

  // Touched only by the writer thread.
  EventCorrelator correlator_;
  int64_t last_name_nanos_ = 0;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread thread_;  // last: started once everything else is constructed
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_EVENT_RECORDER_H_
