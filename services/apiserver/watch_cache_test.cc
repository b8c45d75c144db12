#include "services/apiserver/watch_cache.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::apiserver {
namespace {

using capstan::core::v1::Pod;

const api::ResourceInfo& PodInfo() { return *api::Scheme::BuiltIn().ByKind("v1", "Pod"); }

ObjectPtr MakePod(const std::string& name, int64_t revision, const std::string& app = "web") {
  auto pod = std::make_unique<Pod>();
  pod->mutable_metadata()->set_name(name);
  pod->mutable_metadata()->set_namespace_("default");
  pod->mutable_metadata()->set_resource_version(absl::StrCat(revision));
  (*pod->mutable_metadata()->mutable_labels())["app"] = app;
  return std::make_shared<CachedObject>(std::move(pod), revision);
}

Selection All() { return Selection{}; }

Selection WithLabels(const std::string& text) {
  Selection s;
  s.labels = *api::LabelSelector::Parse(text);
  return s;
}

std::vector<std::string> Names(const ListResult& r) {
  std::vector<std::string> names;
  for (const auto& o : r.items) names.push_back(o->meta().name());
  return names;
}

HistoryReader NoHistory() {
  return [](int64_t, const std::function<bool(CacheEvent)>&) {
    ADD_FAILURE() << "history should not be needed";
    return absl::OkStatus();
  };
}

TEST(WatchCacheTest, ListAtAnOlderRevisionUndoesLaterEvents) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 10);
  cache.Apply("default/a", false, MakePod("a", 11), 11);
  cache.Apply("default/b", false, MakePod("b", 12), 12);
  cache.Apply("default/a", true, MakePod("a", 13), 13);
  cache.Apply("default/c", false, MakePod("c", 14), 14);

  EXPECT_EQ(Names(*cache.List(All(), 0, 0, "")), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Names(*cache.List(All(), 12, 0, "")), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(Names(*cache.List(All(), 11, 0, "")), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Names(*cache.List(All(), 10, 0, "")), (std::vector<std::string>{}));
  EXPECT_EQ(cache.List(All(), 12, 0, "")->revision, 12);
}

TEST(WatchCacheTest, PagesStayConsistentWhileOthersWrite) {
  WatchCache cache(PodInfo(), 1000);
  cache.Load({}, 0);
  int64_t rev = 0;
  for (int i = 0; i < 10; ++i) {
    std::string name = absl::StrCat("p", i);
    ++rev;
    cache.Apply("default/" + name, false, MakePod(name, rev), rev);
  }
  auto page1 = cache.List(All(), 0, 4, "");
  ASSERT_TRUE(page1.ok());
  EXPECT_EQ(Names(*page1), (std::vector<std::string>{"p0", "p1", "p2", "p3"}));
  EXPECT_EQ(page1->remaining, 6);
  ASSERT_FALSE(page1->continue_token.empty());

  // Writes after the first page: a delete of an unread item and a new item.
  ++rev;  // (not inside the call: the order arguments are evaluated in is unspecified)
  cache.Apply("default/p5", true, MakePod("p5", rev), rev);
  ++rev;
  cache.Apply("default/p55", false, MakePod("p55", rev), rev);

  std::vector<std::string> rest;
  std::string token = page1->continue_token;
  while (!token.empty()) {
    auto page = cache.List(All(), 0, 4, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->revision, page1->revision);
    for (auto& n : Names(*page)) rest.push_back(n);
    token = page->continue_token;
  }
  EXPECT_EQ(rest, (std::vector<std::string>{"p4", "p5", "p6", "p7", "p8", "p9"}));
}

TEST(WatchCacheTest, ListOutsideTheWindowIsExpired) {
  WatchCache cache(PodInfo(), 2);
  cache.Load({}, 0);
  for (int64_t r = 1; r <= 5; ++r) cache.Apply(absl::StrCat("default/p", r), false,
                                               MakePod(absl::StrCat("p", r), r), r);
  auto old = cache.List(All(), 1, 0, "");
  EXPECT_EQ(old.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(cache.List(All(), 4, 0, "").ok());
  EXPECT_EQ(cache.List(All(), 0, 0, "not-a-token").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(WatchCacheTest, SelectorTransitionsBecomeAddedAndDeleted) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  int notified = 0;
  auto w = cache.Watch(WithLabels("app=web"), 0, false, false, 100, [&] { ++notified; },
                       NoHistory());
  ASSERT_TRUE(w.ok());
  cache.Apply("default/a", false, MakePod("a", 1, "db"), 1);   // not selected
  cache.Apply("default/a", false, MakePod("a", 2, "web"), 2);  // starts matching: ADDED
  cache.Apply("default/a", false, MakePod("a", 3, "web"), 3);  // MODIFIED
  cache.Apply("default/a", false, MakePod("a", 4, "db"), 4);   // stops matching: DELETED
  cache.Apply("default/a", true, MakePod("a", 5, "db"), 5);    // not selected
  auto events = (*w)->Take(100);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(events[0].revision, 2);
  EXPECT_EQ(events[1].type, WatchEventType::kModified);
  EXPECT_EQ(events[2].type, WatchEventType::kDeleted);
  EXPECT_EQ(events[2].revision, 4);
  EXPECT_EQ(notified, 0);  // never armed: Take() had not come back empty yet
  EXPECT_TRUE((*w)->Take(10).empty());
  cache.Apply("default/b", false, MakePod("b", 6), 6);
  EXPECT_EQ(notified, 1);
}

TEST(WatchCacheTest, WatchResumesFromTheWindowWithoutRepeats) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  for (int64_t r = 1; r <= 5; ++r) {
    cache.Apply(absl::StrCat("default/p", r), false, MakePod(absl::StrCat("p", r), r), r);
  }
  auto w = cache.Watch(All(), 3, false, false, 100, [] {}, NoHistory());
  ASSERT_TRUE(w.ok());
  cache.Apply("default/p6", false, MakePod("p6", 6), 6);
  auto events = (*w)->Take(100);
  std::vector<int64_t> revisions;
  for (auto& e : events) revisions.push_back(e.revision);
  EXPECT_EQ(revisions, (std::vector<int64_t>{4, 5, 6}));
}

TEST(WatchCacheTest, InitialEventsThenBookmarkThenChanges) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({{"default/a", MakePod("a", 1)}, {"default/b", MakePod("b", 2)}}, 2);
  auto w = cache.Watch(All(), 0, true, true, 100, [] {}, NoHistory());
  ASSERT_TRUE(w.ok());
  cache.Apply("default/c", false, MakePod("c", 3), 3);
  auto events = (*w)->Take(100);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(events[1].type, WatchEventType::kAdded);
  EXPECT_EQ(events[2].type, WatchEventType::kBookmark);
  EXPECT_TRUE(events[2].initial_events_end);
  EXPECT_EQ(events[2].revision, 2);
  EXPECT_EQ(events[3].revision, 3);
}

TEST(WatchCacheTest, OlderThanTheWindowReadsHistoryOnce) {
  WatchCache cache(PodInfo(), 2);
  cache.Load({}, 0);
  for (int64_t r = 1; r <= 6; ++r) {
    cache.Apply(absl::StrCat("default/p", r), false, MakePod(absl::StrCat("p", r), r), r);
  }
  int reads = 0;
  HistoryReader history = [&](int64_t after, const std::function<bool(CacheEvent)>& fn) {
    ++reads;
    // The store's log holds every revision; the cache must take only what it lacks.
    for (int64_t r = after + 1; r <= 6; ++r) {
      if (!fn({WatchEventType::kAdded, r, MakePod(absl::StrCat("p", r), r), nullptr})) break;
    }
    return absl::OkStatus();
  };
  auto w = cache.Watch(All(), 1, false, false, 100, [] {}, history);
  ASSERT_TRUE(w.ok());
  std::vector<int64_t> revisions;
  for (auto& e : (*w)->Take(100)) revisions.push_back(e.revision);
  EXPECT_EQ(revisions, (std::vector<int64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(reads, 1);
}

// A resume whose backlog is over the watcher's capacity would be cut off, resume from the same
// revision and be cut off again, forever: it is answered Expired (410) so that the client relists.
TEST(WatchCacheTest, ResumeWithMoreEventsThanTheCapacityIsExpired) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  for (int64_t r = 1; r <= 6; ++r) {
    cache.Apply(absl::StrCat("default/p", r), false, MakePod(absl::StrCat("p", r), r), r);
  }
  auto too_far = cache.Watch(All(), 1, false, false, 3, [] {}, NoHistory());
  EXPECT_EQ(api::Reason(too_far.status()), "Expired") << too_far.status();
  EXPECT_EQ(cache.watcher_count(), 0u);
  auto near = cache.Watch(All(), 3, false, false, 3, [] {}, NoHistory());
  ASSERT_TRUE(near.ok()) << near.status();
  EXPECT_EQ((*near)->Take(10).size(), 3u);
}

TEST(WatchCacheTest, HistoryLongerThanTheCapacityIsExpiredWithoutReadingItAll) {
  WatchCache cache(PodInfo(), 2);
  cache.Load({}, 0);
  for (int64_t r = 1; r <= 20; ++r) {
    cache.Apply(absl::StrCat("default/p", r), false, MakePod(absl::StrCat("p", r), r), r);
  }
  int offered = 0;
  HistoryReader history = [&](int64_t after, const std::function<bool(CacheEvent)>& fn) {
    for (int64_t r = after + 1; r <= 20; ++r) {
      ++offered;
      if (!fn({WatchEventType::kAdded, r, MakePod(absl::StrCat("p", r), r), nullptr})) break;
    }
    return absl::OkStatus();
  };
  auto w = cache.Watch(All(), 1, false, false, 5, [] {}, history);
  EXPECT_EQ(api::Reason(w.status()), "Expired") << w.status();
  EXPECT_EQ(offered, 6);  // the sixth did not fit: the reader was told to stop there
}

TEST(WatchCacheTest, HistoryErrorsPassThrough) {
  WatchCache cache(PodInfo(), 1);
  cache.Load({}, 10);
  cache.Apply("default/a", false, MakePod("a", 11), 11);
  cache.Apply("default/b", false, MakePod("b", 12), 12);
  auto w = cache.Watch(All(), 3, false, false, 100, [] {},
                       [](int64_t, const std::function<bool(CacheEvent)>&) {
                         return absl::OutOfRangeError("compacted");
                       });
  EXPECT_EQ(w.status().code(), absl::StatusCode::kOutOfRange);
}

TEST(WatchCacheTest, SlowWatcherIsCutOffAndOthersContinue) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  int slow_notified = 0;
  auto slow = cache.Watch(All(), 0, false, false, 3, [&] { ++slow_notified; }, NoHistory());
  auto fast = cache.Watch(All(), 0, false, false, 100, [] {}, NoHistory());
  for (int64_t r = 1; r <= 5; ++r) {
    cache.Apply(absl::StrCat("default/p", r), false, MakePod(absl::StrCat("p", r), r), r);
  }
  EXPECT_EQ((*slow)->status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(slow_notified, 1);
  EXPECT_TRUE((*slow)->Take(10).empty());
  EXPECT_EQ((*fast)->Take(10).size(), 5u);
  EXPECT_EQ(cache.watcher_count(), 1u);
}

TEST(WatchCacheTest, NamespaceAndFieldSelection) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  auto in_other = std::make_unique<Pod>();
  in_other->mutable_metadata()->set_name("x");
  in_other->mutable_metadata()->set_namespace_("other");
  in_other->mutable_spec()->set_node_name("n1");
  cache.Apply("other/x", false, std::make_shared<CachedObject>(std::move(in_other), 1), 1);
  cache.Apply("default/a", false, MakePod("a", 2), 2);
  Selection ns;
  ns.namespace_ = "other";
  EXPECT_EQ(Names(*cache.List(ns, 0, 0, "")), (std::vector<std::string>{"x"}));
  Selection field;
  field.fields = *api::FieldSelector::Parse("spec.nodeName=n1");
  EXPECT_EQ(Names(*cache.List(field, 0, 0, "")), (std::vector<std::string>{"x"}));
  field.fields = *api::FieldSelector::Parse("spec.nodeName!=n1,metadata.name=a");
  EXPECT_EQ(Names(*cache.List(field, 0, 0, "")), (std::vector<std::string>{"a"}));
}

ObjectPtr PodOn(const std::string& name, const std::string& node, int64_t revision) {
  auto pod = std::make_unique<Pod>();
  pod->mutable_metadata()->set_name(name);
  pod->mutable_metadata()->set_namespace_("default");
  pod->mutable_spec()->set_node_name(node);
  return std::make_shared<CachedObject>(std::move(pod), revision);
}

// Node agents watch spec.nodeName=THEIR_NODE; those watchers are indexed by node, and must still
// see exactly what a filtering watcher would: a pod bound to their node as ADDED, its changes, and
// its deletion.
TEST(WatchCacheTest, NodeWatchersSeeOnlyTheirNodesPods) {
  WatchCache cache(PodInfo(), 100);
  cache.Load({}, 0);
  auto watch = [&](const std::string& selector) {
    Selection s;
    s.fields = *api::FieldSelector::Parse(selector);
    return *cache.Watch(s, 0, false, false, 100, [] {}, NoHistory());
  };
  auto n1 = watch("spec.nodeName=n1");
  auto n2 = watch("spec.nodeName=n2");
  auto unbound = watch("spec.nodeName=");
  auto not_n1 = watch("spec.nodeName!=n1");
  EXPECT_EQ(cache.watcher_count(), 4u);

  cache.Apply("default/a", false, PodOn("a", "", 1), 1);    // created, not bound
  cache.Apply("default/a", false, PodOn("a", "n1", 2), 2);  // bound to n1
  cache.Apply("default/b", false, PodOn("b", "n2", 3), 3);
  cache.Apply("default/a", false, PodOn("a", "n1", 4), 4);  // status update on n1
  cache.Apply("default/a", true, PodOn("a", "n1", 5), 5);   // deleted

  auto types = [](const std::shared_ptr<Watcher>& w) {
    std::vector<std::string> out;
    for (const CacheEvent& e : w->Take(100)) {
      out.push_back(absl::StrCat(e.object->meta().name(), ":", static_cast<int>(e.type), "@",
                                 e.revision));
    }
    return out;
  };
  const int added = static_cast<int>(WatchEventType::kAdded);
  const int modified = static_cast<int>(WatchEventType::kModified);
  const int deleted = static_cast<int>(WatchEventType::kDeleted);
  EXPECT_EQ(types(n1), (std::vector<std::string>{absl::StrCat("a:", added, "@2"),
                                                 absl::StrCat("a:", modified, "@4"),
                                                 absl::StrCat("a:", deleted, "@5")}));
  EXPECT_EQ(types(n2), (std::vector<std::string>{absl::StrCat("b:", added, "@3")}));
  // The unbound-pods watcher (the scheduler's view) sees a leave its selection when bound.
  EXPECT_EQ(types(unbound), (std::vector<std::string>{absl::StrCat("a:", added, "@1"),
                                                      absl::StrCat("a:", deleted, "@2")}));
  // A != selector is not indexed and filters every event itself.
  EXPECT_EQ(types(not_n1), (std::vector<std::string>{absl::StrCat("a:", added, "@1"),
                                                     absl::StrCat("a:", deleted, "@2"),
                                                     absl::StrCat("b:", added, "@3")}));
  cache.StopWatch(n1);
  EXPECT_EQ(cache.watcher_count(), 3u);
}

TEST(CachedObjectTest, NamespacesAndPriorityClassesStayDecodedPodsDoNot) {
  EXPECT_TRUE(KeepsDecoded(capstan::core::v1::Namespace::descriptor()));
  EXPECT_TRUE(KeepsDecoded(capstan::scheduling::v1::PriorityClass::descriptor()));
  EXPECT_FALSE(KeepsDecoded(Pod::descriptor()));

  capstan::core::v1::Namespace ns;
  ns.mutable_metadata()->set_name("prod");
  ns.mutable_status()->set_phase("Active");
  const std::string stored = ns.SerializeAsString();
  CachedObject committed(ns, stored);
  committed.Stamp(7);
  absl::StatusOr<std::shared_ptr<CachedObject>> loaded =
      CachedObject::FromStored(capstan::core::v1::Namespace::default_instance(), stored, 8);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto with_version = std::make_unique<capstan::core::v1::Namespace>(ns);
  with_version->mutable_metadata()->set_resource_version("9");
  CachedObject built(std::move(with_version), 9);

  for (const CachedObject* cached : {&committed, loaded->get(), &built}) {
    std::shared_ptr<const google::protobuf::Message> first = cached->object();
    EXPECT_EQ(first.get(), cached->object().get()) << "decoded once, then shared";
    const auto& back = static_cast<const capstan::core::v1::Namespace&>(*first);
    EXPECT_EQ(back.metadata().resource_version(), absl::StrCat(cached->mod_revision()));
    EXPECT_EQ(back.status().phase(), "Active");
  }

  Pod pod;
  pod.mutable_metadata()->set_name("web-0");
  CachedObject pod_object(pod, pod.SerializeAsString());
  pod_object.Stamp(10);
  EXPECT_NE(pod_object.object().get(), pod_object.object().get()) << "pods are decoded per call";
}

}  // namespace
}  // namespace capstan::apiserver

namespace capstan::apiserver {
namespace {

// A restart builds each cache object from the stored bytes without decoding them: it must be
// the object a decode would have made (view, field values, encoding).
TEST(CachedObjectTest, FromStoredMatchesTheDecodedObject) {
  Pod pod;
  pod.mutable_metadata()->set_name("web-0");
  pod.mutable_metadata()->set_namespace_("prod");
  (*pod.mutable_metadata()->mutable_labels())["app"] = "web";
  (*pod.mutable_metadata()->mutable_annotations())["note"] = "not in the view";
  pod.mutable_spec()->set_node_name("node-3");
  pod.mutable_spec()->add_containers()->set_name("c");
  pod.mutable_status()->set_phase("Running");
  const std::string stored = pod.SerializeAsString();  // as the store keeps it: no resourceVersion

  CachedObject decoded(pod, stored);
  decoded.Stamp(42);
  absl::StatusOr<std::shared_ptr<CachedObject>> from_stored =
      CachedObject::FromStored(Pod::default_instance(), stored, 42);
  ASSERT_TRUE(from_stored.ok()) << from_stored.status();
  const CachedObject& loaded = **from_stored;
  EXPECT_EQ(loaded.meta().name(), "web-0");
  EXPECT_EQ(loaded.meta().namespace_(), "prod");
  ASSERT_EQ(loaded.meta().labels().size(), 1u);
  EXPECT_EQ(loaded.meta().labels().at("app"), "web");
  EXPECT_EQ(decoded.meta().name(), loaded.meta().name());
  EXPECT_EQ(decoded.meta().namespace_(), loaded.meta().namespace_());
  ASSERT_EQ(decoded.meta().labels().size(), 1u);
  EXPECT_EQ(decoded.meta().labels().at("app"), "web");
  for (const char* path : {"spec.nodeName", "status.phase", "spec.schedulerName",
                           "spec.hostNetwork", "status.podIP", "metadata.name"}) {
    EXPECT_EQ(loaded.field(path), decoded.field(path)) << path;
  }
  EXPECT_EQ(loaded.field("spec.nodeName"), "node-3");
  EXPECT_EQ(loaded.mod_revision(), 42);
  EXPECT_EQ(loaded.proto(), decoded.proto());
  std::shared_ptr<const google::protobuf::Message> object = loaded.object();
  const auto& back = static_cast<const Pod&>(*object);
  EXPECT_EQ(back.metadata().resource_version(), "42");
  EXPECT_EQ(back.spec().node_name(), "node-3");

  EXPECT_FALSE(CachedObject::FromStored(Pod::default_instance(), "\x0a\x7f", 1).ok());
}

}  // namespace
}  // namespace capstan::apiserver
