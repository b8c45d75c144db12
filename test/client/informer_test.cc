// Informers against a real capstan-apiserver: the initial list, events with old and new objects,
// an apiserver restart (resume without missing or repeating an event), a compacted revision
// (Expired: relist and diff), and the shared informer factory.
#include "lib/client/informer.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/api/scheme.h"
#include "lib/client/client.h"
#include "lib/client/shared_informer_factory.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

namespace capstan::client {
namespace {

using capstan::core::v1::Namespace;
using capstan::core::v1::Node;
using capstan::core::v1::Pod;
using testing::ApiServerProcess;

constexpr absl::Duration kWait = absl::Seconds(60);

Pod NewPod(const std::string& name, const std::string& app = "web") {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  (*pod.mutable_metadata()->mutable_labels())["app"] = app;
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return pod;
}

int64_t RvOf(const google::protobuf::Message& object) {
  return std::stoll(api::Meta(object).resource_version());
}

// A port that was free a moment ago, so that a restarted apiserver listens where the informer's
// channel already points.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Every handler call, per object, checked as it happens: adds of known objects, updates whose
// resourceVersion does not grow, and events for deleted objects are recorded as violations.
class Tracker {
 public:
  struct Counts {
    int adds = 0;
    int updates = 0;
    int deletes = 0;
  };

  ResourceEventHandler Handler() {
    ResourceEventHandler handler;
    handler.on_add = [this](const Object& o) {
      absl::MutexLock lock(&mu_);
      const std::string name = api::Meta(*o).name();
      Counts& c = counts_[name];
      if (live_.count(name) > 0) violations_.push_back("add of a live object " + name);
      ++c.adds;
      live_[name] = RvOf(*o);
    };
    handler.on_update = [this](const Object& a, const Object& b) {
      absl::MutexLock lock(&mu_);
      const std::string name = api::Meta(*b).name();
      ++counts_[name].updates;
      auto it = live_.find(name);
      if (it == live_.end()) {
        violations_.push_back("update of an unknown object " + name);
      } else if (it->second != RvOf(*a)) {
        violations_.push_back(absl::StrCat("update of ", name, ": old ", RvOf(*a), " but saw ",
                                           it->second));
      }
      if (RvOf(*b) <= RvOf(*a)) violations_.push_back("update that does not advance " + name);
      live_[name] = RvOf(*b);
    };
    handler.on_delete = [this](const Object& o) {
      absl::MutexLock lock(&mu_);
      const std::string name = api::Meta(*o).name();
      ++counts_[name].deletes;
      if (live_.erase(name) == 0) violations_.push_back("delete of an unknown object " + name);
    };
    return handler;
  }

  // Waits until the handlers' view (name -> resourceVersion) equals want.
  bool WaitForState(const std::map<std::string, int64_t>& want) {
    absl::MutexLock lock(&mu_);
    auto same = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return live_ == want; };
    return mu_.AwaitWithTimeout(absl::Condition(&same), kWait);
  }
  std::map<std::string, Counts> counts() {
    absl::MutexLock lock(&mu_);
    return counts_;
  }
  std::vector<std::string> violations() {
    absl::MutexLock lock(&mu_);
    return violations_;
  }
  std::map<std::string, int64_t> live() {
    absl::MutexLock lock(&mu_);
    return live_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, Counts> counts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> live_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> violations_ ABSL_GUARDED_BY(mu_);
};

// The server's pods in "default", name -> resourceVersion.
std::map<std::string, int64_t> ServerPods(Client& client) {
  std::map<std::string, int64_t> out;
  absl::StatusOr<ObjectList<Pod>> list = client.List<Pod>("default");
  EXPECT_TRUE(list.ok()) << list.status();
  if (!list.ok()) return out;
  for (const Pod& pod : list->items) out[pod.metadata().name()] = RvOf(pod);
  return out;
}

std::map<std::string, int64_t> CachePods(const Indexer& indexer) {
  std::map<std::string, int64_t> out;
  for (const Object& o : indexer.ListNamespace("default")) out[api::Meta(*o).name()] = RvOf(*o);
  return out;
}

class InformerIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  void StartServer(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<ApiServerProcess>(std::move(flags));
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
    client_ = Client::Connect(server_->grpc_address());
  }

  Pod MustCreate(const Pod& pod) {
    absl::StatusOr<Pod> created = client_->Create(pod);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? *created : Pod();
  }
  Pod MustRelabel(const std::string& name, const std::string& app) {
    absl::StatusOr<Pod> got = client_->Get<Pod>("default", name);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return Pod();
    (*got->mutable_metadata()->mutable_labels())["app"] = app;
    absl::StatusOr<Pod> updated = client_->Update(*got);
    EXPECT_TRUE(updated.ok()) << updated.status();
    return updated.ok() ? *updated : Pod();
  }
  void MustDelete(const std::string& name) {
    absl::StatusOr<Pod> deleted = client_->Delete<Pod>("default", name);
    EXPECT_TRUE(deleted.ok()) << deleted.status();
  }

  const api::ResourceInfo& PodsInfo() { return **ResourceFor(Pod::descriptor()); }

  std::unique_ptr<ApiServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(InformerIntegrationTest, ListThenEventsWithOldAndNewObjects) {
  StartServer();
  for (int i = 0; i < 20; ++i) MustCreate(NewPod(absl::StrCat("pre-", i)));

  InformerOptions options;
  options.ns = "default";
  options.page_size = 7;  // three pages
  Informer<Pod> pods(client_.get(), options);
  ASSERT_TRUE(pods.AddIndex("app", [](const google::protobuf::Message& o) {
                    return std::vector<std::string>{api::Meta(o).labels().at("app")};
                  }).ok());
  Tracker tracker;
  pods.shared().AddEventHandler(tracker.Handler());

  absl::Mutex mu;
  std::vector<std::string> log;  // the typed handler's calls after the sync
  EventHandler<Pod> typed;
  typed.on_update = [&](const std::shared_ptr<const Pod>& old_pod,
                        const std::shared_ptr<const Pod>& new_pod) {
    absl::MutexLock lock(&mu);
    log.push_back(absl::StrCat("update ", new_pod->metadata().name(), " ",
                               old_pod->metadata().labels().at("app"), "->",
                               new_pod->metadata().labels().at("app")));
  };
  typed.on_delete = [&](const std::shared_ptr<const Pod>& pod) {
    absl::MutexLock lock(&mu);
    log.push_back(absl::StrCat("delete ", pod->metadata().name()));
  };
  typed.on_add = [&](const std::shared_ptr<const Pod>& pod) {
    absl::MutexLock lock(&mu);
    log.push_back(absl::StrCat("add ", pod->metadata().name()));
  };
  pods.AddEventHandler(typed);

  pods.Run();
  ASSERT_TRUE(pods.WaitForCacheSync(kWait));
  EXPECT_EQ(pods.lister().List().size(), 20u);
  EXPECT_EQ(pods.shared().stats().lists, 1);
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(log.size(), 20u);  // OnAdd for each listed pod
    log.clear();
  }

  Pod created = MustCreate(NewPod("new", "web"));
  Pod relabeled = MustRelabel("new", "api");
  MustDelete("pre-3");
  ASSERT_TRUE(tracker.WaitForState(ServerPods(*client_)));
  {
    absl::MutexLock lock(&mu);
    EXPECT_EQ(log, (std::vector<std::string>{"add new", "update new web->api", "delete pre-3"}));
  }
  EXPECT_TRUE(tracker.violations().empty()) << tracker.violations()[0];

  // The cache and its indexes agree with the server.
  EXPECT_EQ(CachePods(pods.indexer()), ServerPods(*client_));
  std::shared_ptr<const Pod> cached = pods.lister().Get("default", "new");
  ASSERT_NE(cached, nullptr);
  EXPECT_EQ(cached->metadata().resource_version(), relabeled.metadata().resource_version());
  EXPECT_EQ(cached->metadata().uid(), created.metadata().uid());
  ASSERT_EQ(pods.lister().ByIndex("app", "api").size(), 1u);
  EXPECT_EQ(pods.lister().ByIndex("app", "web").size(), 19u);
  EXPECT_EQ(pods.lister().ListSelected("default", *api::LabelSelector::Parse("app=api")).size(),
            1u);
  EXPECT_EQ(pods.lister().Get("default", "pre-3"), nullptr);
  pods.Stop();
}

TEST_F(InformerIntegrationTest, SelectorScopesTheCache) {
  StartServer();
  MustCreate(NewPod("a", "web"));
  MustCreate(NewPod("b", "db"));
  InformerOptions options;
  options.label_selector = "app=web";
  Informer<Pod> pods(client_.get(), options);
  Tracker tracker;
  pods.shared().AddEventHandler(tracker.Handler());
  pods.Run();
  ASSERT_TRUE(pods.WaitForCacheSync(kWait));
  Pod b = MustRelabel("b", "web");  // starts matching: an add
  Pod a = MustRelabel("a", "db");   // stops matching: a delete
  ASSERT_TRUE(tracker.WaitForState({{"b", RvOf(b)}}));
  EXPECT_EQ(tracker.counts()["a"].adds, 1);
  EXPECT_EQ(tracker.counts()["a"].deletes, 1);
  EXPECT_EQ(tracker.counts()["b"].adds, 1);
  EXPECT_TRUE(tracker.violations().empty()) << tracker.violations()[0];
  pods.Stop();
}

TEST_F(InformerIntegrationTest, SurvivesAnApiserverRestartWithoutMissingOrRepeatingEvents) {
  const std::string address = absl::StrCat("127.0.0.1:", FreePort());
  StartServer({"--listen=" + address, "--bookmark_interval=1s"});
  ASSERT_EQ(server_->grpc_address(), address);

  for (int i = 0; i < 10; ++i) MustCreate(NewPod(absl::StrCat("p-", i)));
  // The informer keeps its channel across the restart; the test writes through a fresh one after
  // it (a channel that saw the server die waits out gRPC's reconnect backoff).
  std::unique_ptr<Client> informer_client = Client::Connect(address);
  SharedIndexInformer informer(informer_client.get(), PodsInfo(), {.ns = "default"});
  Tracker tracker;
  informer.AddEventHandler(tracker.Handler());
  informer.Run();
  ASSERT_TRUE(informer.WaitForCacheSync(kWait));

  // Writes the informer may or may not have seen when the server dies.
  for (int i = 10; i < 15; ++i) MustCreate(NewPod(absl::StrCat("p-", i)));
  for (int i = 0; i < 3; ++i) MustRelabel(absl::StrCat("p-", i), "api");
  MustDelete("p-9");
  server_->Kill();
  absl::SleepFor(absl::Milliseconds(300));  // the informer fails to reconnect a few times
  ASSERT_TRUE(server_->Start().ok());
  ASSERT_EQ(server_->grpc_address(), address);
  client_ = Client::Connect(address);

  for (int i = 15; i < 20; ++i) MustCreate(NewPod(absl::StrCat("p-", i)));
  for (int i = 0; i < 2; ++i) MustRelabel(absl::StrCat("p-", i), "db");
  MustDelete("p-8");

  std::map<std::string, int64_t> want = ServerPods(*client_);
  ASSERT_EQ(want.size(), 18u);
  ASSERT_TRUE(tracker.WaitForState(want));
  EXPECT_TRUE(tracker.violations().empty()) << tracker.violations()[0];
  std::map<std::string, Tracker::Counts> counts = tracker.counts();
  for (int i = 0; i < 20; ++i) {
    const std::string name = absl::StrCat("p-", i);
    SCOPED_TRACE(name);
    EXPECT_EQ(counts[name].adds, 1);
    // Each write is one event, even the ones made just before the crash.
    EXPECT_EQ(counts[name].updates, i < 2 ? 2 : i < 3 ? 1 : 0);
    EXPECT_EQ(counts[name].deletes, (i == 8 || i == 9) ? 1 : 0);
  }
  EXPECT_EQ(CachePods(informer.indexer()), want);
  EXPECT_EQ(informer.stats().lists, 1);  // resumed from its revision, never relisted
  EXPECT_GE(informer.stats().watches, 2);
  informer.Stop();
}

// Lets the test hold the informer's next watch until it says so, and cut the current one.
class GatedSource : public ListerWatcher {
 public:
  explicit GatedSource(std::unique_ptr<ListerWatcher> inner) : inner_(std::move(inner)) {}

  absl::StatusOr<ObjectList<Object>> List(const ListOptions& options) override {
    return inner_->List(options);
  }
  std::unique_ptr<EventStream> Watch(const WatchOptions& options) override {
    {
      absl::MutexLock lock(&mu_);
      ++waiting_;
      mu_.Await(absl::Condition(&open_));
      --waiting_;
    }
    auto stream = std::make_unique<Tracked>(this, inner_->Watch(options));
    absl::MutexLock lock(&mu_);
    current_ = stream.get();
    return stream;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    open_ = false;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  // Waits until the informer is watching, or already held at the gate, and cancels its watch
  // (the informer sees it end and reconnects). False when neither happens.
  bool CutCurrent() {
    absl::MutexLock lock(&mu_);
    auto watching = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return current_ != nullptr || waiting_ > 0;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&watching), kWait)) return false;
    if (current_ != nullptr) current_->Cancel();
    return true;
  }
  // How the watches that ended on their own (not cut by the test) ended.
  std::vector<std::string> ended() {
    absl::MutexLock lock(&mu_);
    return ended_;
  }
  bool WaitUntilHeld() {
    absl::MutexLock lock(&mu_);
    auto held = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return waiting_ > 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&held), kWait);
  }

 private:
  class Tracked : public EventStream {
   public:
    Tracked(GatedSource* source, std::unique_ptr<EventStream> inner)
        : source_(source), inner_(std::move(inner)) {}
    ~Tracked() override {
      absl::Status status = inner_->status();
      absl::MutexLock lock(&source_->mu_);
      if (source_->current_ == this) source_->current_ = nullptr;
      if (!absl::IsCancelled(status)) source_->ended_.push_back(status.ToString());
    }
    bool Next(WatchEvent<Object>* event) override { return inner_->Next(event); }
    void Cancel() override { inner_->Cancel(); }
    absl::Status status() const override { return inner_->status(); }

   private:
    GatedSource* source_;
    std::unique_ptr<EventStream> inner_;
  };

  std::unique_ptr<ListerWatcher> inner_;
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  EventStream* current_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<std::string> ended_ ABSL_GUARDED_BY(mu_);
};

TEST_F(InformerIntegrationTest, RelistsWhenItsRevisionIsCompacted) {
  StartServer({"--log_retention=20", "--watch_window=10"});
  for (int i = 0; i < 5; ++i) MustCreate(NewPod(absl::StrCat("p-", i)));

  auto gated = std::make_unique<GatedSource>(NewClientListerWatcher(client_.get(), PodsInfo(),
                                                                    "default"));
  GatedSource* gate = gated.get();
  InformerOptions options;
  options.initial_backoff = absl::Milliseconds(10);
  SharedIndexInformer informer(std::move(gated), options);
  // A failed assertion must not leave the informer's thread held at the gate (Stop would wait).
  struct OpenOnExit {
    GatedSource* gate;
    ~OpenOnExit() { gate->Open(); }
  } open_on_exit{gate};
  Tracker tracker;
  informer.AddEventHandler(tracker.Handler());
  informer.Run();
  ASSERT_TRUE(informer.WaitForCacheSync(kWait));
  ASSERT_TRUE(tracker.WaitForState(ServerPods(*client_)));

  // Hold the informer off the server while far more is written than the log keeps.
  gate->Close();
  ASSERT_TRUE(gate->CutCurrent());
  ASSERT_TRUE(gate->WaitUntilHeld());
  EXPECT_TRUE(gate->ended().empty()) << gate->ended()[0];
  const SharedIndexInformer::Stats before = informer.stats();
  const std::string seen = informer.LastResourceVersion();
  MustDelete("p-0");
  Pod relabeled = MustRelabel("p-1", "api");
  for (int i = 5; i < 105; ++i) MustCreate(NewPod(absl::StrCat("p-", i)));

  // Compaction runs in the background: wait until a watch from the informer's revision is Gone.
  bool expired = false;
  for (absl::Time deadline = absl::Now() + kWait; !expired && absl::Now() < deadline;) {
    WatchOptions probe;
    probe.resource_version = seen;
    probe.timeout = absl::Seconds(5);
    std::unique_ptr<WatchStream<Pod>> stream = client_->Watch<Pod>("default", probe);
    WatchEvent<Pod> event;
    if (!stream->Next(&event)) {
      expired = IsExpired(stream->status());
      EXPECT_EQ(api::Reason(stream->status()), "Expired");
    }
    stream->Cancel();
    if (!expired) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(expired) << "revision " << seen << " was never compacted";

  gate->Open();
  std::map<std::string, int64_t> want = ServerPods(*client_);
  ASSERT_EQ(want.size(), 104u);
  ASSERT_TRUE(tracker.WaitForState(want));
  EXPECT_TRUE(tracker.violations().empty()) << tracker.violations()[0];
  EXPECT_EQ(informer.stats().expired, before.expired + 1);
  EXPECT_EQ(informer.stats().lists, before.lists + 1);
  std::map<std::string, Tracker::Counts> counts = tracker.counts();
  EXPECT_EQ(counts["p-0"].deletes, 1);
  EXPECT_EQ(counts["p-1"].updates, 1);  // the relist diff: one update to the latest state
  EXPECT_EQ(counts["p-2"].updates, 0);  // unchanged objects cause no call
  for (int i = 5; i < 105; ++i) EXPECT_EQ(counts[absl::StrCat("p-", i)].adds, 1);
  EXPECT_EQ(CachePods(informer.indexer()), want);
  ASSERT_NE(informer.indexer().Get("default", "p-1"), nullptr);
  EXPECT_EQ(RvOf(*informer.indexer().Get("default", "p-1")), RvOf(relabeled));

  // And it watches again from the relist: later writes arrive as events.
  Pod late = MustCreate(NewPod("late"));
  want["late"] = RvOf(late);
  ASSERT_TRUE(tracker.WaitForState(want));
  informer.Stop();
}

TEST_F(InformerIntegrationTest, FactorySharesOneInformerPerResource) {
  StartServer();
  MustCreate(NewPod("a"));
  SharedInformerFactory factory(client_.get());
  Informer<Pod> pods = factory.For<Pod>();
  Informer<Pod> again = factory.For<Pod>();
  EXPECT_EQ(&pods.shared(), &again.shared());
  EXPECT_EQ(factory.ForResource(PodsInfo()).get(), &pods.shared());
  Informer<Namespace> namespaces = factory.For<Namespace>();
  EXPECT_NE(static_cast<void*>(&namespaces.shared()), static_cast<void*>(&pods.shared()));

  Tracker tracker;
  pods.shared().AddEventHandler(tracker.Handler());
  factory.Start();
  ASSERT_TRUE(factory.WaitForCacheSync(kWait));
  EXPECT_TRUE(pods.HasSynced());
  EXPECT_NE(namespaces.lister().Get("", "default"), nullptr);
  EXPECT_NE(namespaces.lister().Get("kube-system"), nullptr);
  EXPECT_EQ(pods.lister().ListNamespace("default").size(), 1u);

  // An informer asked for after Start starts at once; a late handler sees the cache first.
  Informer<Node> nodes = factory.For<Node>();
  ASSERT_TRUE(nodes.WaitForCacheSync(kWait));
  Tracker late;
  pods.shared().AddEventHandler(late.Handler());
  EXPECT_EQ(late.counts()["a"].adds, 1);

  MustCreate(NewPod("b"));
  ASSERT_TRUE(tracker.WaitForState(ServerPods(*client_)));
  ASSERT_TRUE(late.WaitForState(ServerPods(*client_)));
  factory.Stop();
  EXPECT_EQ(pods.lister().List().size(), 2u);  // stopped caches stay readable
}

}  // namespace
}  // namespace capstan::client
