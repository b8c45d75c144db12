// The apiserver as a real process, through its gRPC API: Kubernetes semantics end to end.
#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/api/codec.h"
#include "lib/api/yaml.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/integration/api_test_util.h"

namespace capstan::testing {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Pod;

Pod MakePod(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  for (const auto& [k, v] : labels) (*pod.mutable_metadata()->mutable_labels())[k] = v;
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("busybox:1.36");
  return pod;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Reads watch responses into events until `count` arrive or the stream ends.
struct WatchReader {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<apiv1::WatchResponse>> reader;
  std::vector<std::pair<std::string, Pod>> events;

  WatchReader(Api& api, const std::string& ns, const std::string& rv, bool bookmarks = false) {
    apiv1::WatchRequest req;
    *req.mutable_resource() = Ref("", "pods", ns);
    req.set_resource_version(rv);
    req.set_allow_bookmarks(bookmarks);
    reader = api.stub()->Watch(&ctx, req);
  }
  bool ReadUntil(size_t count) {
    apiv1::WatchResponse resp;
    while (events.size() < count && reader->Read(&resp)) {
      for (const auto& e : resp.events()) {
        Pod pod;
        pod.ParseFromString(e.object());
        events.emplace_back(e.type(), pod);
      }
    }
    return events.size() >= count;
  }
  grpc::Status Finish() {
    ctx.TryCancel();
    apiv1::WatchResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  }
};

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    api_ = std::make_unique<Api>(server_.grpc_address());
  }
  ApiServerProcess server_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiServerTest, SeedManifestAppliesUnchangedAndReadsBackInJson) {
  std::string yaml = ReadFile(RunfilePath("test/fixtures/manifests/deployment-seed.yaml"));
  auto docs = api::ParseYamlDocuments(yaml);
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  auto created = api_->Create(Ref("apps", "deployments", "default"), (*docs)[0].dump(), apiv1::JSON);
  ASSERT_TRUE(created.ok()) << created.status();
  nlohmann::json back = nlohmann::json::parse(*created);
  EXPECT_EQ(back["metadata"]["name"], "nginx-deployment");
  EXPECT_EQ(back["spec"]["replicas"], 3);  // a number, not "3"
  EXPECT_EQ(back["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.7.9");
  EXPECT_EQ(back["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
  EXPECT_EQ(back["metadata"]["generation"], 1);
  EXPECT_TRUE(back["metadata"]["creationTimestamp"].is_string());
  // What the server printed re-applies unchanged: an update with it keeps the resourceVersion.
  auto again = api_->Update(Ref("apps", "deployments", "default"), *created, apiv1::JSON);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(nlohmann::json::parse(*again)["metadata"]["resourceVersion"],
            back["metadata"]["resourceVersion"]);
}

TEST_F(ApiServerTest, CrudWithConflictsAcrossEncodings) {
  auto ref = Ref("", "pods", "default");
  auto created = api_->CreateTyped(ref, MakePod("web-0", {{"app", "web"}}));
  ASSERT_TRUE(created.ok()) << created.status();
  auto json = api_->Get(ref, "web-0", apiv1::JSON);
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(nlohmann::json::parse(*json)["metadata"]["uid"], created->metadata().uid());

  Pod first = *created;
  (*first.mutable_metadata()->mutable_labels())["v"] = "1";
  auto updated = api_->UpdateTyped(ref, first);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_GT(std::stoll(updated->metadata().resource_version()),
            std::stoll(created->metadata().resource_version()));

  Pod stale = *created;
  (*stale.mutable_metadata()->mutable_labels())["v"] = "2";
  absl::Status conflict = api_->UpdateTyped(ref, stale).status();
  EXPECT_EQ(conflict.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(api::ToApiStatus(conflict).reason(), "Conflict");
  EXPECT_EQ(api::ToApiStatus(conflict).code(), 409);

  Pod status = *updated;
  status.mutable_status()->set_phase("Running");
  status.mutable_status()->set_pod_ip("10.0.0.5");
  auto with_status = api_->UpdateTyped(ref, status, /*status=*/true);
  ASSERT_TRUE(with_status.ok()) << with_status.status();
  EXPECT_EQ(with_status->status().pod_ip(), "10.0.0.5");

  ASSERT_TRUE(api_->Delete(ref, "web-0").ok());
  EXPECT_EQ(api::Reason(api_->Get(ref, "web-0").status()), "NotFound");
  EXPECT_EQ(api::Reason(api_->Delete(ref, "web-0").status()), "NotFound");
}

TEST_F(ApiServerTest, SelectorsAndPagesWhileOthersWrite) {
  auto ref = Ref("", "pods", "default");
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(api_->CreateTyped(ref, MakePod(absl::StrCat("base-", i),
                                               {{"batch", "base"}, {"tier", i % 4 ? "web" : "db"}}))
                    .ok());
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    Api api(server_.grpc_address());
    for (int i = 0; i < 2000 && !stop; ++i) {
      std::string name = absl::StrCat("churn-", i);
      (void)api.CreateTyped(ref, MakePod(name, {{"batch", "churn"}}));
      if (i % 2) (void)api.Delete(ref, absl::StrCat("churn-", i - 1));
    }
  });
  // Set-based and equality selectors.
  apiv1::ListRequest req;
  *req.mutable_resource() = ref;
  req.set_label_selector("batch=base,tier in (db)");
  auto db = api_->List(req);
  ASSERT_TRUE(db.ok()) << db.status();
  EXPECT_EQ(db->items_size(), 10);
  req.set_label_selector("batch=base,tier notin (db),!missing");
  EXPECT_EQ(api_->List(req)->items_size(), 30);

  // Paging through everything: every page at the same revision, no name twice, every base pod.
  for (int round = 0; round < 3; ++round) {
    apiv1::ListRequest page_req;
    *page_req.mutable_resource() = ref;
    page_req.set_limit(7);
    std::set<std::string> names;
    std::string revision;
    int pages = 0;
    while (true) {
      auto page = api_->List(page_req);
      ASSERT_TRUE(page.ok()) << page.status();
      if (revision.empty()) revision = page->resource_version();
      EXPECT_EQ(page->resource_version(), revision);
      for (const auto& item : page->items()) {
        Pod pod;
        pod.ParseFromString(item);
        EXPECT_TRUE(names.insert(pod.metadata().name()).second) << pod.metadata().name();
        EXPECT_LE(std::stoll(pod.metadata().resource_version()), std::stoll(revision));
      }
      ++pages;
      if (page->continue_().empty()) break;
      page_req.set_continue_(page->continue_());
    }
    int base = 0;
    for (const auto& n : names) base += n.rfind("base-", 0) == 0;
    EXPECT_EQ(base, 40);
    EXPECT_GT(pages, 5);
  }
  stop = true;
  writer.join();
}

TEST_F(ApiServerTest, WatchResumesAcrossAKilledApiServerWithNothingMissedOrRepeated) {
  auto ref = Ref("", "pods", "default");
  auto first = api_->CreateTyped(ref, MakePod("w-0"));
  ASSERT_TRUE(first.ok());
  // Events after start: w-0 itself is the first one.
  std::string start = std::to_string(std::stoll(first->metadata().resource_version()) - 1);
  for (int i = 1; i < 30; ++i) ASSERT_TRUE(api_->CreateTyped(ref, MakePod(absl::StrCat("w-", i))).ok());

  std::vector<std::string> seen;
  std::string last = start;
  {
    WatchReader watch(*api_, "default", start);
    ASSERT_TRUE(watch.ReadUntil(10));
    // Stop after exactly 10 events, as a client cut off mid-stream would.
    for (size_t i = 0; i < 10; ++i) {
      seen.push_back(watch.events[i].second.metadata().name());
      last = watch.events[i].second.metadata().resource_version();
    }
    watch.Finish();
  }
  server_.Kill();
  ASSERT_TRUE(server_.Start().ok());
  api_ = std::make_unique<Api>(server_.grpc_address());
  for (int i = 30; i < 40; ++i) ASSERT_TRUE(api_->CreateTyped(ref, MakePod(absl::StrCat("w-", i))).ok());
  ASSERT_TRUE(api_->Delete(ref, "w-5").ok());

  WatchReader resumed(*api_, "default", last);
  ASSERT_TRUE(resumed.ReadUntil(30));
  int64_t previous = std::stoll(last);
  for (const auto& [type, pod] : resumed.events) {
    int64_t rv = std::stoll(pod.metadata().resource_version());
    EXPECT_GT(rv, previous);
    previous = rv;
    if (type == "DELETED") {
      EXPECT_EQ(pod.metadata().name(), "w-5");
    } else {
      EXPECT_EQ(type, "ADDED");
      seen.push_back(pod.metadata().name());
    }
  }
  resumed.Finish();
  ASSERT_EQ(seen.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(seen[i], absl::StrCat("w-", i));
}

TEST_F(ApiServerTest, InitialStateThenChangesWhenNoRevisionIsGiven) {
  auto ref = Ref("", "pods", "default");
  ASSERT_TRUE(api_->CreateTyped(ref, MakePod("a")).ok());
  ASSERT_TRUE(api_->CreateTyped(ref, MakePod("b")).ok());
  WatchReader watch(*api_, "default", "");
  ASSERT_TRUE(watch.ReadUntil(2));
  ASSERT_TRUE(api_->Delete(ref, "a").ok());
  ASSERT_TRUE(watch.ReadUntil(3));
  EXPECT_EQ(watch.events[0].first, "ADDED");
  EXPECT_EQ(watch.events[1].first, "ADDED");
  EXPECT_EQ(watch.events[2].first, "DELETED");
  EXPECT_EQ(watch.events[2].second.metadata().name(), "a");
  watch.Finish();
}

TEST_F(ApiServerTest, FinalizersAndGracefulDeletionOverTheWire) {
  auto ref = Ref("", "pods", "default");
  Pod held = MakePod("held");
  held.mutable_metadata()->add_finalizers("example.com/drain");
  held.mutable_spec()->set_node_name("node-1");
  ASSERT_TRUE(api_->CreateTyped(ref, held).ok());

  WatchReader watch(*api_, "default", "");
  ASSERT_TRUE(watch.ReadUntil(1));

  // Bound pod: the grace period starts; the finalizer keeps it after that too.
  apiv1::DeleteRequest del;
  *del.mutable_resource() = ref;
  del.set_name("held");
  del.set_grace_period_seconds(5);
  apiv1::ObjectResponse resp;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(api_->stub()->Delete(&ctx, del, &resp).ok());
  }
  Pod terminating;
  terminating.ParseFromString(resp.object());
  EXPECT_TRUE(terminating.metadata().has_deletion_timestamp());
  EXPECT_EQ(terminating.metadata().deletion_grace_period_seconds(), 5);
  del.set_grace_period_seconds(0);  // the node agent's final delete
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(api_->stub()->Delete(&ctx, del, &resp).ok());
  }
  auto still = api_->GetTyped<Pod>(ref, "held");
  ASSERT_TRUE(still.ok()) << "the finalizer must keep the pod";
  EXPECT_EQ(still->metadata().deletion_grace_period_seconds(), 0);

  // Removing the last finalizer completes the deletion.
  Pod released = *still;
  released.mutable_metadata()->clear_finalizers();
  ASSERT_TRUE(api_->UpdateTyped(ref, released).ok());
  EXPECT_EQ(api::Reason(api_->Get(ref, "held").status()), "NotFound");

  ASSERT_TRUE(watch.ReadUntil(4));
  std::vector<std::string> types;
  for (const auto& e : watch.events) types.push_back(e.first);
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "MODIFIED", "DELETED"}));
  watch.Finish();
}

absl::StatusOr<Pod> Bind(Api& api, const std::string& pod, const std::string& node,
                         const std::string& kind = "Node") {
  capstan::core::v1::Binding binding;
  binding.mutable_metadata()->set_name(pod);
  binding.mutable_target()->set_kind(kind);
  binding.mutable_target()->set_name(node);
  apiv1::CreateRequest req;
  *req.mutable_resource() = Ref("", "pods", "default");
  req.set_subresource("binding");
  req.set_name(pod);
  req.set_object(binding.SerializeAsString());
  apiv1::ObjectResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = api.stub()->Create(&ctx, req, &resp);
  if (!s.ok()) return api::FromGrpcStatus(s);
  Pod bound;
  bound.ParseFromString(resp.object());
  return bound;
}

TEST_F(ApiServerTest, BindingSetsTheNodeOnceAndRacingBindersNeverDoubleBind) {
  auto ref = Ref("", "pods", "default");
  ASSERT_TRUE(api_->CreateTyped(ref, MakePod("b-0")).ok());
  auto bound = Bind(*api_, "b-0", "node-1");
  ASSERT_TRUE(bound.ok()) << bound.status();
  EXPECT_EQ(bound->spec().node_name(), "node-1");
  bool scheduled = false;
  for (const auto& c : bound->status().conditions()) {
    scheduled |= c.type() == "PodScheduled" && c.status() == "True";
  }
  EXPECT_TRUE(scheduled);
  absl::Status again = Bind(*api_, "b-0", "node-2").status();
  EXPECT_EQ(api::Reason(again), "Conflict");
  EXPECT_NE(again.message().find("already assigned to node \"node-1\""), std::string::npos);
  EXPECT_EQ(api_->GetTyped<Pod>(ref, "b-0")->spec().node_name(), "node-1");
  EXPECT_EQ(api::Reason(Bind(*api_, "missing", "node-1").status()), "NotFound");
  EXPECT_EQ(api::Reason(Bind(*api_, "b-0", "").status()), "Invalid");
  // The bound pod is not validated again, so the binding's own fields are, by name.
  ASSERT_TRUE(api_->CreateTyped(ref, MakePod("b-1")).ok());
  absl::Status bad_node = Bind(*api_, "b-1", "Not_A_Node").status();
  EXPECT_EQ(api::Reason(bad_node), "Invalid");
  EXPECT_NE(bad_node.message().find("target.name: Invalid value: \"Not_A_Node\""),
            std::string::npos) << bad_node;
  absl::Status bad_kind = Bind(*api_, "b-1", "node-1", "Pod").status();
  EXPECT_EQ(api::Reason(bad_kind), "Invalid");
  EXPECT_NE(bad_kind.message().find("target.kind: Unsupported value: \"Pod\""),
            std::string::npos) << bad_kind;
  EXPECT_TRUE(api_->GetTyped<Pod>(ref, "b-1")->spec().node_name().empty());
  EXPECT_TRUE(Bind(*api_, "b-1", "node-1", "").ok());  // an empty kind means Node

  // Two binders race over the same pods with different nodes: each pod is bound exactly once.
  constexpr int kPods = 30;
  for (int i = 0; i < kPods; ++i) {
    ASSERT_TRUE(api_->CreateTyped(ref, MakePod(absl::StrCat("race-", i))).ok());
  }
  std::vector<std::string> winners[2];
  std::vector<std::thread> binders;
  for (int b = 0; b < 2; ++b) {
    binders.emplace_back([&, b] {
      Api api(server_.grpc_address());
      for (int i = 0; i < kPods; ++i) {
        std::string pod = absl::StrCat("race-", i);
        if (Bind(api, pod, absl::StrCat("node-", b)).ok()) winners[b].push_back(pod);
      }
    });
  }
  for (auto& t : binders) t.join();
  EXPECT_EQ(winners[0].size() + winners[1].size(), static_cast<size_t>(kPods));
  for (int b = 0; b < 2; ++b) {
    for (const std::string& pod : winners[b]) {
      EXPECT_EQ(api_->GetTyped<Pod>(ref, pod)->spec().node_name(), absl::StrCat("node-", b));
    }
  }
}

TEST_F(ApiServerTest, UnknownSubresourceIsNotFound) {
  apiv1::CreateRequest req;
  *req.mutable_resource() = Ref("", "pods", "default");
  req.set_subresource("eviction");
  req.set_name("x");
  apiv1::ObjectResponse resp;
  grpc::ClientContext ctx;
  absl::Status s = api::FromGrpcStatus(api_->stub()->Create(&ctx, req, &resp));
  EXPECT_EQ(api::Reason(s), "NotFound");
}

TEST_F(ApiServerTest, DiscoveryNamesEveryKind) {
  apiv1::DiscoveryResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(api_->stub()->Discover(&ctx, apiv1::DiscoveryRequest(), &resp).ok());
  std::map<std::string, apiv1::APIResource> by_name;
  for (const auto& r : resp.resources()) by_name[r.name()] = r;
  for (const char* name : {"pods", "nodes", "namespaces", "events", "configmaps", "secrets",
                           "deployments", "replicasets", "leases", "priorityclasses"}) {
    EXPECT_TRUE(by_name.count(name)) << name;
  }
  EXPECT_EQ(by_name["deployments"].group(), "apps");
  EXPECT_EQ(by_name["deployments"].short_names(0), "deploy");
  EXPECT_FALSE(by_name["nodes"].namespaced());
}

TEST_F(ApiServerTest, MetricsAndHealthReflectTraffic) {
  auto ready = HttpGet(server_.metrics_address(), "/readyz");
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, "ok");
  EXPECT_TRUE(HttpGet(server_.metrics_address(), "/healthz").ok());
  auto ref = Ref("", "pods", "default");
  ASSERT_TRUE(api_->CreateTyped(ref, MakePod("m-0")).ok());
  EXPECT_FALSE(api_->CreateTyped(ref, MakePod("m-0")).ok());
  WatchReader watch(*api_, "default", "");
  ASSERT_TRUE(watch.ReadUntil(1));
  // The object gauges and storage counters are refreshed every second.
  std::string body;
  for (int i = 0; i < 50; ++i) {
    auto metrics = HttpGet(server_.metrics_address(), "/metrics");
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    body = *metrics;
    if (body.find("apiserver_storage_syncs_total") != std::string::npos &&
        body.find("apiserver_storage_objects{resource=\"pods\"} 1") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (const char* line :
       {"apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"create\"} 1",
        "apiserver_request_total{code=\"409\",resource=\"pods\",verb=\"create\"} 1",
        "apiserver_registered_watchers{resource=\"pods\"} 1",
        "apiserver_watch_events_total{resource=\"pods\"} 1",
        "apiserver_storage_objects{resource=\"pods\"} 1",
        "apiserver_storage_commit_duration_seconds_count",
        "apiserver_request_duration_seconds_bucket"}) {
    EXPECT_NE(body.find(line), std::string::npos) << line << "\n" << body;
  }
  watch.Finish();
}

class BookmarkingApiServerTest : public ::testing::Test {
 protected:
  ApiServerProcess server_{{"--bookmark_interval=200ms"}};
};

TEST_F(BookmarkingApiServerTest, WatchersThatAllowBookmarksGetTheCurrentRevision) {
  ASSERT_TRUE(server_.Start().ok());
  Api api(server_.grpc_address());
  auto ref = Ref("", "pods", "default");
  auto first = api.CreateTyped(ref, MakePod("k-0"));
  ASSERT_TRUE(first.ok());
  WatchReader with(api, "default", first->metadata().resource_version(), /*bookmarks=*/true);
  // Writes to another resource move the revision on; the bookmark tells the watcher, so it can
  // resume past them.
  capstan::core::v1::ConfigMap cm;
  cm.mutable_metadata()->set_name("elsewhere");
  auto other = api.CreateTyped(Ref("", "configmaps", "default"), cm);
  ASSERT_TRUE(other.ok());
  int64_t other_rv = std::stoll(other->metadata().resource_version());
  bool seen = false;
  for (int i = 0; i < 50 && !seen; ++i) {
    ASSERT_TRUE(with.ReadUntil(with.events.size() + 1));
    const auto& [type, pod] = with.events.back();
    EXPECT_EQ(type, "BOOKMARK");
    EXPECT_TRUE(pod.metadata().name().empty());
    seen = std::stoll(pod.metadata().resource_version()) >= other_rv;
  }
  EXPECT_TRUE(seen);
  with.Finish();

  // A watcher that did not ask for bookmarks gets none: its next event is a real change.
  WatchReader without(api, "default", other->metadata().resource_version());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(api.CreateTyped(ref, MakePod("k-1")).ok());
  ASSERT_TRUE(without.ReadUntil(1));
  EXPECT_EQ(without.events[0].first, "ADDED");
  EXPECT_EQ(without.events[0].second.metadata().name(), "k-1");
  without.Finish();
}

class CompactingApiServerTest : public ::testing::Test {
 protected:
  ApiServerProcess server_{{"--log_retention=20", "--watch_window=10"}};
};

TEST_F(CompactingApiServerTest, CompactedRevisionAnswersExpiredAndRelistWorks) {
  ASSERT_TRUE(server_.Start().ok());
  Api api(server_.grpc_address());
  auto ref = Ref("", "pods", "default");
  auto first = api.CreateTyped(ref, MakePod("c-0"));
  ASSERT_TRUE(first.ok());
  for (int i = 1; i < 120; ++i) ASSERT_TRUE(api.CreateTyped(ref, MakePod(absl::StrCat("c-", i))).ok());
  // Compaction runs in the background once the log is past its retention; wait for it.
  grpc::Status status;
  for (int attempt = 0; attempt < 100; ++attempt) {
    WatchReader watch(api, "default", first->metadata().resource_version());
    apiv1::WatchResponse resp;
    if (!watch.reader->Read(&resp)) {
      status = watch.reader->Finish();
      break;
    }
    watch.Finish();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE) << status.error_message();
  auto expired = api::ToApiStatus(api::FromGrpcStatus(status));
  EXPECT_EQ(expired.reason(), "Expired");
  EXPECT_EQ(expired.code(), 410);
  // The client relists and watches from the list's revision.
  apiv1::ListRequest req;
  *req.mutable_resource() = ref;
  auto list = api.List(req);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->items_size(), 120);
  WatchReader resumed(api, "default", list->resource_version());
  ASSERT_TRUE(api.CreateTyped(ref, MakePod("after")).ok());
  ASSERT_TRUE(resumed.ReadUntil(1));
  EXPECT_EQ(resumed.events[0].second.metadata().name(), "after");
  resumed.Finish();
}

}  // namespace
}  // namespace capstan::testing
