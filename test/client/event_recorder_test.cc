// The event recorder against a real capstan-apiserver: the fields of a recorded Event,
// aggregation of repeats into one Event with a count, distinct messages as distinct Events,
// listing by involvedObject, cluster-scoped objects, and a caller that never blocks.
#include "lib/client/event_recorder.h"

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/client/client.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

namespace capstan::client {
namespace {

using capstan::core::v1::Event;
using capstan::core::v1::Namespace;
using capstan::core::v1::Pod;

// Debian's Abseil has deadlock detection on, which is slow.
const bool kNoDeadlockDetection = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

Pod NewPod(const std::string& name) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return pod;
}

bool IsHex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

class EventRecorderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new testing::ApiServerProcess();
    absl::Status s = server_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    ASSERT_TRUE(server_->running());
    client_ = Client::Connect(server_->grpc_address());
    recorder_ = std::make_unique<EventRecorder>(client_.get(), "test-controller", "host-1");
  }

  Pod CreatePod(const std::string& name) {
    absl::StatusOr<Pod> pod = client_->Create(NewPod(name));
    EXPECT_TRUE(pod.ok()) << pod.status();
    return pod.ok() ? *pod : NewPod(name);
  }

  std::vector<Event> ListEvents(const std::string& ns, const std::string& field_selector) {
    ListOptions options;
    options.field_selector = field_selector;
    absl::StatusOr<ObjectList<Event>> list = client_->List<Event>(ns, options);
    EXPECT_TRUE(list.ok()) << list.status();
    return list.ok() ? list->items : std::vector<Event>();
  }

  static testing::ApiServerProcess* server_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<EventRecorder> recorder_;
};

testing::ApiServerProcess* EventRecorderTest::server_ = nullptr;

TEST_F(EventRecorderTest, EventHasTheRightFields) {
  Pod pod = CreatePod("fields");
  absl::Time before = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  recorder_->Event(pod, "Normal", "Scheduled", "Successfully assigned default/fields to node-1");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  EXPECT_EQ(recorder_->written(), 1);
  EXPECT_EQ(recorder_->failed(), 0);

  std::vector<Event> events = ListEvents("default", "involvedObject.name=fields");
  ASSERT_EQ(events.size(), 1u);
  const Event& e = events[0];
  EXPECT_EQ(e.metadata().namespace_(), "default");
  ASSERT_TRUE(absl::StartsWith(e.metadata().name(), "fields.")) << e.metadata().name();
  std::string suffix = e.metadata().name().substr(std::string("fields.").size());
  EXPECT_EQ(suffix.size(), 16u);
  EXPECT_TRUE(IsHex(suffix)) << suffix;
  EXPECT_EQ(e.involved_object().api_version(), "v1");
  EXPECT_EQ(e.involved_object().kind(), "Pod");
  EXPECT_EQ(e.involved_object().name(), "fields");
  EXPECT_EQ(e.involved_object().namespace_(), "default");
  EXPECT_EQ(e.involved_object().uid(), pod.metadata().uid());
  EXPECT_FALSE(e.involved_object().uid().empty());
  EXPECT_EQ(e.involved_object().resource_version(), pod.metadata().resource_version());
  EXPECT_EQ(e.type(), "Normal");
  EXPECT_EQ(e.reason(), "Scheduled");
  EXPECT_EQ(e.message(), "Successfully assigned default/fields to node-1");
  EXPECT_EQ(e.source().component(), "test-controller");
  EXPECT_EQ(e.source().host(), "host-1");
  EXPECT_EQ(e.reporting_component(), "test-controller");
  EXPECT_EQ(e.reporting_instance(), "host-1");
  EXPECT_EQ(e.count(), 1);
  EXPECT_GE(e.first_timestamp().seconds(), absl::ToUnixSeconds(before));
  EXPECT_LE(e.first_timestamp().seconds(), absl::ToUnixSeconds(absl::Now()));
  EXPECT_EQ(e.last_timestamp().seconds(), e.first_timestamp().seconds());
}

TEST_F(EventRecorderTest, RepeatsAreAggregatedAndNewMessagesAreNot) {
  Pod pod = CreatePod("repeats");
  for (int i = 0; i < 5; ++i) {
    recorder_->Event(pod, "Warning", "BackOff", "Back-off restarting failed container");
  }
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  std::vector<Event> events = ListEvents("default", "involvedObject.name=repeats");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].count(), 5);
  EXPECT_EQ(events[0].type(), "Warning");
  EXPECT_GE(events[0].last_timestamp().seconds(), events[0].first_timestamp().seconds());
  std::string name = events[0].metadata().name();

  // Later repeats keep updating the same Event.
  absl::SleepFor(absl::Milliseconds(1100));
  recorder_->Event(pod, "Warning", "BackOff", "Back-off restarting failed container");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  events = ListEvents("default", "involvedObject.name=repeats");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metadata().name(), name);
  EXPECT_EQ(events[0].count(), 6);
  EXPECT_GT(events[0].last_timestamp().seconds(), events[0].first_timestamp().seconds());

  // A different message is a different Event.
  recorder_->Eventf(pod, "Warning", "BackOff", "Back-off %d restarting failed container %s", 2,
                    "app");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  events = ListEvents("default", "involvedObject.name=repeats");
  ASSERT_EQ(events.size(), 2u);
  int found = 0;
  for (const Event& e : events) {
    if (e.message() == "Back-off 2 restarting failed container app") {
      EXPECT_EQ(e.count(), 1);
      EXPECT_NE(e.metadata().name(), name);
      found++;
    }
  }
  EXPECT_EQ(found, 1);

  // Field selectors narrow it down.
  EXPECT_EQ(ListEvents("default", "involvedObject.name=repeats,involvedObject.kind=Pod,type=Warning")
                .size(),
            2u);
  EXPECT_EQ(ListEvents("default", "involvedObject.name=repeats,type=Normal").size(), 0u);
  EXPECT_EQ(ListEvents("", "involvedObject.name=repeats").size(), 2u);  // all namespaces
  EXPECT_EQ(ListEvents("default", "involvedObject.name=nothing-like-it").size(), 0u);
}

TEST_F(EventRecorderTest, SameMessageForAnotherObjectIsAnotherEvent) {
  Pod a = CreatePod("twin-a");
  Pod b = CreatePod("twin-b");
  recorder_->Event(a, "Normal", "Pulled", "Container image already present");
  recorder_->Event(b, "Normal", "Pulled", "Container image already present");
  recorder_->Event(a, "Normal", "Pulled", "Container image already present");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  std::vector<Event> ea = ListEvents("default", "involvedObject.name=twin-a");
  std::vector<Event> eb = ListEvents("default", "involvedObject.name=twin-b");
  ASSERT_EQ(ea.size(), 1u);
  ASSERT_EQ(eb.size(), 1u);
  EXPECT_EQ(ea[0].count(), 2);
  EXPECT_EQ(eb[0].count(), 1);
}

TEST_F(EventRecorderTest, ClusterScopedObjectsGetEventsInDefault) {
  Namespace ns;
  ns.mutable_metadata()->set_name("events-about-me");
  absl::StatusOr<Namespace> created = client_->Create(ns);
  ASSERT_TRUE(created.ok()) << created.status();
  recorder_->Event(*created, "Normal", "Created", "namespace created");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  std::vector<Event> events =
      ListEvents("default", "involvedObject.name=events-about-me,involvedObject.kind=Namespace");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metadata().namespace_(), "default");
  EXPECT_EQ(events[0].involved_object().namespace_(), "");
  EXPECT_EQ(events[0].involved_object().uid(), created->metadata().uid());
  EXPECT_TRUE(absl::StartsWith(events[0].metadata().name(), "events-about-me."));
}

TEST_F(EventRecorderTest, EventOfADeletedEventIsCreatedAgain) {
  Pod pod = CreatePod("recreated");
  recorder_->Event(pod, "Normal", "Started", "Started container app");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  std::vector<Event> events = ListEvents("default", "involvedObject.name=recreated");
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(client_->Delete<Event>("default", events[0].metadata().name()).ok());
  recorder_->Event(pod, "Normal", "Started", "Started container app");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  events = ListEvents("default", "involvedObject.name=recreated");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].count(), 2);
}

TEST_F(EventRecorderTest, BadTypeIsRejected) {
  Pod pod = CreatePod("bad-type");
  recorder_->Event(pod, "Info", "Whatever", "not a type");
  ASSERT_TRUE(recorder_->Flush(absl::Seconds(10)));
  EXPECT_EQ(recorder_->failed(), 1);
  EXPECT_EQ(ListEvents("default", "involvedObject.name=bad-type").size(), 0u);
}

// With the server unreachable the caller still never waits: the queue fills and the rest is
// dropped and counted.
TEST(EventRecorderUnreachable, NeverBlocksAndDropsWhenFull) {
  testing::ApiServerProcess server;
  ASSERT_TRUE(server.Start().ok());
  std::string address = server.grpc_address();
  server.Kill();  // nothing listens there now
  std::unique_ptr<Client> client = Client::Connect(address);
  EventRecorderOptions options;
  options.queue_size = 3;
  options.write_timeout = absl::Seconds(1);
  auto recorder = std::make_unique<EventRecorder>(client.get(), "c", "h", options);
  Pod pod = NewPod("unreachable");
  absl::Time start = absl::Now();
  for (int i = 0; i < 10; ++i) {
    recorder->Event(pod, "Normal", "Tick", absl::StrCat("tick ", i));
  }
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
  // One in the writer's hands (or not yet taken), three queued, the rest dropped.
  EXPECT_GE(recorder->dropped(), 6);
  EXPECT_LE(recorder->dropped(), 7);
  EXPECT_FALSE(recorder->Flush(absl::Milliseconds(200)));
  start = absl::Now();
  recorder.reset();  // stops the retries
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace capstan::client
