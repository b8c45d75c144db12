// Event naming and aggregation, without a server (the integration test is
// test/client/event_recorder_test).
#include "lib/client/event_recorder.h"

#include <string>

#include "absl/time/time.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace capstan::client {
namespace {

using capstan::core::v1::Event;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

Event NewEvent(const std::string& object, const std::string& reason, const std::string& message,
               absl::Time t) {
  Event e;
  e.mutable_metadata()->set_namespace_("default");
  e.mutable_metadata()->set_name(EventName(object, t));
  e.mutable_involved_object()->set_kind("Pod");
  e.mutable_involved_object()->set_api_version("v1");
  e.mutable_involved_object()->set_namespace_("default");
  e.mutable_involved_object()->set_name(object);
  e.mutable_involved_object()->set_uid("uid-" + object);
  e.set_type("Normal");
  e.set_reason(reason);
  e.set_message(message);
  e.mutable_source()->set_component("test");
  e.mutable_source()->set_host("h");
  e.mutable_first_timestamp()->set_seconds(absl::ToUnixSeconds(t));
  e.mutable_last_timestamp()->set_seconds(absl::ToUnixSeconds(t));
  e.set_count(1);
  return e;
}

TEST(EventName, ObjectNameDotSixteenHexDigits) {
  std::string name = EventName("web-1", kT0);
  ASSERT_EQ(name.size(), std::string("web-1.").size() + 16);
  EXPECT_EQ(name, "web-1.17979cfe362a0000" /* 1700000000e9 ns in hex */);
}

TEST(EventCorrelator, IdenticalEventsWithinTheWindowAreAggregated) {
  EventCorrelator c(4096, absl::Minutes(10));
  Event first = NewEvent("web", "Started", "started", kT0);
  EXPECT_FALSE(c.Observe(&first, kT0));
  EXPECT_EQ(first.count(), 1);
  std::string name = first.metadata().name();

  for (int i = 2; i <= 5; ++i) {
    absl::Time t = kT0 + absl::Minutes(i);
    Event again = NewEvent("web", "Started", "started", t);
    EXPECT_TRUE(c.Observe(&again, t));
    EXPECT_EQ(again.count(), i);
    EXPECT_EQ(again.metadata().name(), name);
    EXPECT_EQ(again.first_timestamp().seconds(), absl::ToUnixSeconds(kT0));
    EXPECT_EQ(again.last_timestamp().seconds(), absl::ToUnixSeconds(t));
  }
  EXPECT_EQ(c.size(), 1u);
}

TEST(EventCorrelator, DifferentFieldsMakeDifferentEvents) {
  EventCorrelator c(4096, absl::Minutes(10));
  Event a = NewEvent("web", "Started", "started", kT0);
  EXPECT_FALSE(c.Observe(&a, kT0));
  Event message = NewEvent("web", "Started", "started again", kT0);
  EXPECT_FALSE(c.Observe(&message, kT0));
  Event reason = NewEvent("web", "Pulled", "started", kT0);
  EXPECT_FALSE(c.Observe(&reason, kT0));
  Event object = NewEvent("db", "Started", "started", kT0);
  EXPECT_FALSE(c.Observe(&object, kT0));
  Event warning = NewEvent("web", "Started", "started", kT0);
  warning.set_type("Warning");
  EXPECT_FALSE(c.Observe(&warning, kT0));
  Event uid = NewEvent("web", "Started", "started", kT0);
  uid.mutable_involved_object()->set_uid("another");
  EXPECT_FALSE(c.Observe(&uid, kT0));
  EXPECT_EQ(c.size(), 6u);
}

TEST(EventCorrelator, ManySimilarEventsAreCombinedIntoOne) {
  EventCorrelator c(4096, absl::Minutes(10));
  // The first kMaxSimilarMessages distinct messages are events of their own.
  for (size_t i = 0; i < EventCorrelator::kMaxSimilarMessages; ++i) {
    Event e = NewEvent("rs", "SuccessfulCreate", absl::StrCat("Created pod: p", i), kT0);
    EXPECT_FALSE(c.Observe(&e, kT0)) << i;
    EXPECT_EQ(e.message(), absl::StrCat("Created pod: p", i));
  }
  // Further ones fold into one combined event whose count grows.
  Event combined = NewEvent("rs", "SuccessfulCreate", "Created pod: p10", kT0);
  EXPECT_FALSE(c.Observe(&combined, kT0));
  EXPECT_EQ(combined.message(), "(combined from similar events): Created pod: p10");
  for (int i = 11; i < 100; ++i) {
    Event e = NewEvent("rs", "SuccessfulCreate", absl::StrCat("Created pod: p", i), kT0);
    EXPECT_TRUE(c.Observe(&e, kT0)) << i;
    EXPECT_EQ(e.metadata().name(), combined.metadata().name());
    EXPECT_EQ(e.count(), i - 9);
    EXPECT_EQ(e.message(), absl::StrCat("(combined from similar events): Created pod: p", i));
  }
  // A repeat of an early message is still its own event; another reason is not combined.
  Event repeat = NewEvent("rs", "SuccessfulCreate", "Created pod: p3", kT0);
  EXPECT_TRUE(c.Observe(&repeat, kT0));
  EXPECT_EQ(repeat.count(), 2);
  Event other = NewEvent("rs", "SuccessfulDelete", "Deleted pod: p1", kT0);
  EXPECT_FALSE(c.Observe(&other, kT0));
  EXPECT_EQ(other.message(), "Deleted pod: p1");
}

TEST(EventCorrelator, AfterTheWindowANewEventStarts) {
  EventCorrelator c(4096, absl::Minutes(10));
  Event a = NewEvent("web", "Started", "started", kT0);
  EXPECT_FALSE(c.Observe(&a, kT0));
  absl::Time later = kT0 + absl::Minutes(10) + absl::Seconds(1);
  Event b = NewEvent("web", "Started", "started", later);
  EXPECT_FALSE(c.Observe(&b, later));
  EXPECT_EQ(b.count(), 1);
  EXPECT_NE(b.metadata().name(), a.metadata().name());
  // The window slides with each repeat.
  absl::Time later2 = later + absl::Minutes(9);
  Event d = NewEvent("web", "Started", "started", later2);
  EXPECT_TRUE(c.Observe(&d, later2));
  EXPECT_EQ(d.count(), 2);
  EXPECT_EQ(d.metadata().name(), b.metadata().name());
}

TEST(EventCorrelator, LeastRecentlyUsedKeysAreEvicted) {
  EventCorrelator c(2, absl::Minutes(10));
  Event a = NewEvent("a", "R", "m", kT0);
  Event b = NewEvent("b", "R", "m", kT0);
  Event cc = NewEvent("c", "R", "m", kT0);
  EXPECT_FALSE(c.Observe(&a, kT0));
  EXPECT_FALSE(c.Observe(&b, kT0));
  Event a2 = NewEvent("a", "R", "m", kT0);
  EXPECT_TRUE(c.Observe(&a2, kT0));    // a is now the most recent
  EXPECT_FALSE(c.Observe(&cc, kT0));   // evicts b
  EXPECT_EQ(c.size(), 2u);
  Event b2 = NewEvent("b", "R", "m", kT0);
  EXPECT_FALSE(c.Observe(&b2, kT0));   // b was forgotten; evicts a
  Event c2 = NewEvent("c", "R", "m", kT0);
  EXPECT_TRUE(c.Observe(&c2, kT0));
}

TEST(EventCorrelator, Forget) {
  EventCorrelator c(16, absl::Minutes(10));
  Event a = NewEvent("a", "R", "m", kT0);
  EXPECT_FALSE(c.Observe(&a, kT0));
  c.Forget(a);
  EXPECT_EQ(c.size(), 0u);
  Event a2 = NewEvent("a", "R", "m", kT0);
  EXPECT_FALSE(c.Observe(&a2, kT0));
}

}  // namespace
}  // namespace capstan::client
