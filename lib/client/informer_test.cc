// The informer without a server: the pure event step, and the list/watch loop over a scripted
// ListerWatcher (resume from the last resourceVersion, relist on Expired, backoff, Stop).
#include "lib/client/informer.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "proto/core_v1.pb.h"

namespace capstan::client {
namespace {

using capstan::core::v1::Pod;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(30);

std::shared_ptr<const Pod> MakePod(const std::string& name, int64_t rv,
                                   const std::string& app = "web") {
  auto pod = std::make_shared<Pod>();
  pod->mutable_metadata()->set_namespace_("ns");
  pod->mutable_metadata()->set_name(name);
  pod->mutable_metadata()->set_resource_version(absl::StrCat(rv));
  (*pod->mutable_metadata()->mutable_labels())["app"] = app;
  return pod;
}

std::shared_ptr<const Pod> Bookmark(int64_t rv) {
  auto pod = std::make_shared<Pod>();
  pod->mutable_metadata()->set_resource_version(absl::StrCat(rv));
  return pod;
}

std::string Rv(const Object& object) { return api::Meta(*object).resource_version(); }

// A watch stream the test feeds.
class FakeStream : public EventStream {
 public:
  explicit FakeStream(WatchOptions options) : options_(std::move(options)) {}

  bool Next(WatchEvent<Object>* event) override {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !events_.empty() || ended_; };
    mu_.Await(absl::Condition(&ready));
    if (events_.empty()) return false;
    *event = std::move(events_.front());
    events_.pop_front();
    return true;
  }
  void Cancel() override { End(absl::CancelledError("cancelled")); }
  absl::Status status() const override {
    absl::MutexLock lock(&mu_);
    return status_;
  }

  void Send(const std::string& type, Object object) {
    absl::MutexLock lock(&mu_);
    events_.push_back({type, std::move(object)});
  }
  // Ends the stream after the events already sent.
  void End(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    status_ = std::move(status);
  }
  bool drained() const {
    absl::MutexLock lock(&mu_);
    return events_.empty();
  }

  const WatchOptions options_;

 private:
  mutable absl::Mutex mu_;
  std::deque<WatchEvent<Object>> events_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
};

// A server state the test sets, listed in pages; watches are FakeStreams the test drives.
class FakeSource : public ListerWatcher {
 public:
  struct State {
    absl::Mutex mu;
    std::map<std::string, Object> objects ABSL_GUARDED_BY(mu);  // by name
    int64_t revision ABSL_GUARDED_BY(mu) = 1;
    int list_failures ABSL_GUARDED_BY(mu) = 0;  // fail this many list calls with UNAVAILABLE
    std::vector<ListOptions> lists ABSL_GUARDED_BY(mu);
    std::vector<std::shared_ptr<FakeStream>> watches ABSL_GUARDED_BY(mu);
  };

  explicit FakeSource(std::shared_ptr<State> state) : state_(std::move(state)) {}

  absl::StatusOr<ObjectList<Object>> List(const ListOptions& options) override {
    absl::MutexLock lock(&state_->mu);
    state_->lists.push_back(options);
    if (state_->list_failures > 0) {
      --state_->list_failures;
      return absl::UnavailableError("connection refused");
    }
    ObjectList<Object> page;
    page.resource_version = absl::StrCat(state_->revision);
    auto it = state_->objects.upper_bound(options.continue_token);
    for (; it != state_->objects.end() &&
           (options.limit == 0 || static_cast<int64_t>(page.items.size()) < options.limit);
         ++it) {
      page.items.push_back(it->second);
    }
    if (it != state_->objects.end()) page.continue_token = std::prev(it)->first;
    return page;
  }

  std::unique_ptr<EventStream> Watch(const WatchOptions& options) override {
    auto stream = std::make_shared<FakeStream>(options);
    absl::MutexLock lock(&state_->mu);
    state_->watches.push_back(stream);
    return std::make_unique<Forwarder>(stream);
  }

 private:
  // The informer owns its stream; the test keeps the FakeStream too.
  class Forwarder : public EventStream {
   public:
    explicit Forwarder(std::shared_ptr<FakeStream> stream) : stream_(std::move(stream)) {}
    bool Next(WatchEvent<Object>* event) override { return stream_->Next(event); }
    void Cancel() override { stream_->Cancel(); }
    absl::Status status() const override { return stream_->status(); }

   private:
    std::shared_ptr<FakeStream> stream_;
  };

  std::shared_ptr<State> state_;
};

// Records handler calls as "add name rv", "update name rv->rv", "delete name rv".
class Recorder {
 public:
  ResourceEventHandler Handler() {
    ResourceEventHandler handler;
    handler.on_add = [this](const Object& o) {
      Record(absl::StrCat("add ", api::Meta(*o).name(), " ", Rv(o)));
    };
    handler.on_update = [this](const Object& a, const Object& b) {
      Record(absl::StrCat("update ", api::Meta(*b).name(), " ", Rv(a), "->", Rv(b)));
    };
    handler.on_delete = [this](const Object& o) {
      Record(absl::StrCat("delete ", api::Meta(*o).name(), " ", Rv(o)));
    };
    return handler;
  }
  void Record(std::string call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
  }
  // Waits until n calls were recorded, then returns them all.
  std::vector<std::string> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return calls_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
    return calls_;
  }
  std::vector<std::string> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  void Clear() {
    absl::MutexLock lock(&mu_);
    calls_.clear();
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
};

class InformerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  void SetUp() override {
    state_ = std::make_shared<FakeSource::State>();
    InformerOptions options;
    options.page_size = 2;
    options.initial_backoff = absl::Milliseconds(1);
    options.max_backoff = absl::Milliseconds(20);
    informer_ = std::make_unique<SharedIndexInformer>(std::make_unique<FakeSource>(state_),
                                                      options);
  }

  void Put(Object object) {
    absl::MutexLock lock(&state_->mu);
    state_->revision = std::max<int64_t>(state_->revision, std::stoll(Rv(object)));
    state_->objects[api::Meta(*object).name()] = std::move(object);
  }
  void Erase(const std::string& name, int64_t rv) {
    absl::MutexLock lock(&state_->mu);
    state_->revision = std::max(state_->revision, rv);
    state_->objects.erase(name);
  }
  // Waits for the informer's n-th watch (1-based).
  std::shared_ptr<FakeStream> WaitForWatch(size_t n) {
    absl::MutexLock lock(&state_->mu);
    auto opened = [&]() ABSL_SHARED_LOCKS_REQUIRED(state_->mu) {
      return state_->watches.size() >= n;
    };
    if (!state_->mu.AwaitWithTimeout(absl::Condition(&opened), kWait)) return nullptr;
    return state_->watches[n - 1];
  }
  size_t ListCalls() {
    absl::MutexLock lock(&state_->mu);
    return state_->lists.size();
  }
  // Waits until the informer has consumed every event sent on stream.
  void Drain(const std::shared_ptr<FakeStream>& stream, size_t calls) {
    recorder_.WaitFor(calls);
    absl::Time deadline = absl::Now() + kWait;
    while (!stream->drained() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  }

  std::shared_ptr<FakeSource::State> state_;
  std::unique_ptr<SharedIndexInformer> informer_;
  Recorder recorder_;
};

// --- The pure step ---------------------------------------------------------------------------

TEST(ApplyTest, WatchEvents) {
  Indexer cache;
  auto n = ApplyWatchEvent(cache, "ADDED", MakePod("a", 2));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, Notification::Type::kAdd);
  EXPECT_EQ(Rv(n->object), "2");

  // A replay of what is cached changes nothing.
  EXPECT_FALSE(ApplyWatchEvent(cache, "ADDED", MakePod("a", 2)).has_value());
  EXPECT_FALSE(ApplyWatchEvent(cache, "MODIFIED", MakePod("a", 2)).has_value());

  n = ApplyWatchEvent(cache, "MODIFIED", MakePod("a", 3, "db"));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, Notification::Type::kUpdate);
  EXPECT_EQ(Rv(n->old_object), "2");
  EXPECT_EQ(Rv(n->object), "3");
  EXPECT_THAT(cache.IndexKeys(kLabelIndex, "app=db"), ElementsAre("ns/a"));

  // MODIFIED of an object never seen (e.g. it started to match a selector) is an add.
  n = ApplyWatchEvent(cache, "MODIFIED", MakePod("b", 4));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, Notification::Type::kAdd);

  EXPECT_FALSE(ApplyWatchEvent(cache, "BOOKMARK", Bookmark(5)).has_value());
  EXPECT_EQ(cache.size(), 2u);

  n = ApplyWatchEvent(cache, "DELETED", MakePod("a", 6, "db"));
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->type, Notification::Type::kDelete);
  EXPECT_EQ(Rv(n->object), "6");
  EXPECT_EQ(cache.Get("ns/a"), nullptr);
  EXPECT_FALSE(ApplyWatchEvent(cache, "DELETED", MakePod("a", 7)).has_value());
  EXPECT_THAT(cache.Keys(), ElementsAre("ns/b"));
}

TEST(ApplyTest, ListDiffsAgainstCache) {
  Indexer cache;
  ApplyList(cache, {MakePod("a", 1), MakePod("b", 2), MakePod("c", 3)});
  std::vector<Notification> diff =
      ApplyList(cache, {MakePod("a", 1), MakePod("c", 5), MakePod("d", 6)});
  ASSERT_EQ(diff.size(), 3u);
  EXPECT_EQ(diff[0].type, Notification::Type::kUpdate);
  EXPECT_EQ(Rv(diff[0].old_object), "3");
  EXPECT_EQ(Rv(diff[0].object), "5");
  EXPECT_EQ(diff[1].type, Notification::Type::kAdd);
  EXPECT_EQ(api::Meta(*diff[1].object).name(), "d");
  EXPECT_EQ(diff[2].type, Notification::Type::kDelete);
  EXPECT_EQ(api::Meta(*diff[2].object).name(), "b");
  EXPECT_THAT(cache.Keys(), ElementsAre("ns/a", "ns/c", "ns/d"));
  EXPECT_THAT(ApplyList(cache, {}).size(), 3u);
  EXPECT_EQ(cache.size(), 0u);
}

// --- The loop ----------------------------------------------------------------------------------

TEST_F(InformerTest, ListsInPagesThenWatchesFromTheListRevision) {
  Put(MakePod("a", 2));
  Put(MakePod("b", 3));
  Put(MakePod("c", 4));
  informer_->AddEventHandler(recorder_.Handler());
  EXPECT_FALSE(informer_->HasSynced());
  informer_->Run();
  ASSERT_TRUE(informer_->WaitForCacheSync(kWait));
  EXPECT_THAT(recorder_.calls(), ElementsAre("add a 2", "add b 3", "add c 4"));
  EXPECT_EQ(informer_->indexer().size(), 3u);
  EXPECT_EQ(ListCalls(), 2u);  // page size 2
  {
    absl::MutexLock lock(&state_->mu);
    EXPECT_EQ(state_->lists[0].limit, 2);
    EXPECT_EQ(state_->lists[1].continue_token, "b");
  }
  std::shared_ptr<FakeStream> watch = WaitForWatch(1);
  ASSERT_NE(watch, nullptr);
  EXPECT_EQ(watch->options_.resource_version, "4");
  EXPECT_TRUE(watch->options_.allow_bookmarks);
  EXPECT_EQ(informer_->LastResourceVersion(), "4");
}

TEST_F(InformerTest, EventsReachHandlersInOrder) {
  informer_->AddEventHandler(recorder_.Handler());
  informer_->Run();
  ASSERT_TRUE(informer_->WaitForCacheSync(kWait));
  std::shared_ptr<FakeStream> watch = WaitForWatch(1);
  ASSERT_NE(watch, nullptr);
  watch->Send("ADDED", MakePod("a", 2));
  watch->Send("MODIFIED", MakePod("a", 3));
  watch->Send("ADDED", MakePod("b", 4));
  watch->Send("DELETED", MakePod("a", 5));
  watch->Send("BOOKMARK", Bookmark(9));
  EXPECT_THAT(recorder_.WaitFor(4),
              ElementsAre("add a 2", "update a 2->3", "add b 4", "delete a 5"));
  Drain(watch, 4);
  EXPECT_EQ(informer_->LastResourceVersion(), "9");
  EXPECT_THAT(informer_->indexer().Keys(), ElementsAre("ns/b"));
}

TEST_F(InformerTest, ResumesFromTheLastRevisionAfterTheStreamEnds) {
  Put(MakePod("a", 2));
  informer_->AddEventHandler(recorder_.Handler());
  informer_->Run();
  std::shared_ptr<FakeStream> first = WaitForWatch(1);
  ASSERT_NE(first, nullptr);
  first->Send("MODIFIED", MakePod("a", 3));
  first->Send("BOOKMARK", Bookmark(7));
  first->End(absl::UnavailableError("server went away"));

  std::shared_ptr<FakeStream> second = WaitForWatch(2);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->options_.resource_version, "7");
  second->End(api::ServiceUnavailable("cut off"));
  std::shared_ptr<FakeStream> third = WaitForWatch(3);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third->options_.resource_version, "7");
  third->Send("ADDED", MakePod("b", 8));
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("add a 2", "update a 2->3", "add b 8"));
  EXPECT_EQ(ListCalls(), 1u);  // resumed, never relisted
  EXPECT_EQ(informer_->stats().watches, 3);
  EXPECT_EQ(informer_->stats().expired, 0);
}

TEST_F(InformerTest, RelistsAndDiffsWhenTheRevisionExpired) {
  Put(MakePod("a", 2));
  Put(MakePod("b", 3));
  Put(MakePod("c", 4));
  informer_->AddEventHandler(recorder_.Handler());
  informer_->Run();
  std::shared_ptr<FakeStream> first = WaitForWatch(1);
  ASSERT_NE(first, nullptr);
  recorder_.WaitFor(3);
  recorder_.Clear();

  // While the informer was not looking: b changed, c went away, d appeared; a is untouched.
  Put(MakePod("b", 10, "db"));
  Erase("c", 11);
  Put(MakePod("d", 12));
  first->End(api::Expired("too old resource version: 4 (10)"));

  std::shared_ptr<FakeStream> second = WaitForWatch(2);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->options_.resource_version, "12");
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("update b 3->10", "add d 12", "delete c 4"));
  EXPECT_THAT(informer_->indexer().Keys(), ElementsAre("ns/a", "ns/b", "ns/d"));
  EXPECT_THAT(informer_->indexer().IndexKeys(kLabelIndex, "app=db"), ElementsAre("ns/b"));
  EXPECT_EQ(informer_->stats().lists, 2);
  EXPECT_EQ(informer_->stats().expired, 1);
}

TEST_F(InformerTest, RetriesAFailingListWithBackoff) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->list_failures = 5;
  }
  Put(MakePod("a", 2));
  informer_->AddEventHandler(recorder_.Handler());
  informer_->Run();
  ASSERT_TRUE(informer_->WaitForCacheSync(kWait));
  EXPECT_EQ(ListCalls(), 6u);
  EXPECT_THAT(recorder_.calls(), ElementsAre("add a 2"));
}

TEST_F(InformerTest, LateHandlerFirstSeesTheCache) {
  Put(MakePod("a", 2));
  Put(MakePod("b", 3));
  informer_->Run();
  ASSERT_TRUE(informer_->WaitForCacheSync(kWait));
  std::shared_ptr<FakeStream> watch = WaitForWatch(1);
  ASSERT_NE(watch, nullptr);
  informer_->AddEventHandler(recorder_.Handler());
  EXPECT_THAT(recorder_.calls(), ElementsAre("add a 2", "add b 3"));
  watch->Send("DELETED", MakePod("a", 4));
  EXPECT_THAT(recorder_.WaitFor(3), ElementsAre("add a 2", "add b 3", "delete a 4"));
}

TEST_F(InformerTest, StopCancelsTheWatch) {
  informer_->Run();
  ASSERT_NE(WaitForWatch(1), nullptr);
  informer_->Stop();  // returns: the blocked Next was cancelled and the thread joined
  EXPECT_TRUE(informer_->HasSynced());
  informer_->Run();  // final: does not start again
  absl::MutexLock lock(&state_->mu);
  EXPECT_EQ(state_->watches.size(), 1u);
}

TEST_F(InformerTest, WaitForCacheSyncGivesUpWhenStopped) {
  {
    absl::MutexLock lock(&state_->mu);
    state_->list_failures = 1 << 30;
  }
  informer_->Run();
  EXPECT_FALSE(informer_->WaitForCacheSync(absl::Milliseconds(50)));
  informer_->Stop();
  EXPECT_FALSE(informer_->WaitForCacheSync(kWait));  // at once: stopped
}

TEST_F(InformerTest, TypedHandle) {
  Put(MakePod("a", 2));
  Informer<Pod> pods(std::shared_ptr<SharedIndexInformer>(std::move(informer_)));
  ASSERT_TRUE(pods.AddIndex("app", [](const google::protobuf::Message& o) {
                    return std::vector<std::string>{api::Meta(o).labels().at("app")};
                  }).ok());
  std::vector<std::string> seen;
  absl::Mutex mu;
  EventHandler<Pod> handler;
  handler.on_add = [&](const std::shared_ptr<const Pod>& pod) {
    absl::MutexLock lock(&mu);
    seen.push_back(absl::StrCat("add ", pod->metadata().name()));
  };
  handler.on_update = [&](const std::shared_ptr<const Pod>& old_pod,
                          const std::shared_ptr<const Pod>& new_pod) {
    absl::MutexLock lock(&mu);
    seen.push_back(absl::StrCat("update ", old_pod->metadata().labels().at("app"), "->",
                                new_pod->metadata().labels().at("app")));
  };
  pods.AddEventHandler(handler);
  pods.Run();
  ASSERT_TRUE(pods.WaitForCacheSync(kWait));
  std::shared_ptr<FakeStream> watch = WaitForWatch(1);
  ASSERT_NE(watch, nullptr);
  watch->Send("MODIFIED", MakePod("a", 3, "db"));
  {
    absl::MutexLock lock(&mu);
    auto two = [&] { return seen.size() >= 2; };
    mu.AwaitWithTimeout(absl::Condition(&two), kWait);
    EXPECT_THAT(seen, ElementsAre("add a", "update web->db"));
  }
  std::shared_ptr<const Pod> a = pods.lister().Get("ns", "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->metadata().resource_version(), "3");
  EXPECT_EQ(pods.lister().ByIndex("app", "db").size(), 1u);
  EXPECT_THAT(pods.lister().ByIndex("app", "web"), IsEmpty());
  EXPECT_EQ(pods.lister().ListNamespace("ns").size(), 1u);
  pods.Stop();
}

}  // namespace
}  // namespace capstan::client
