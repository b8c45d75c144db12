// lib/client against a real capstan-apiserver: the typed verbs, errors carrying Kubernetes
// reasons, patches, the status subresource, selectors and watches.
#include "lib/client/client.h"

#include <algorithm>
#include <map>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"

namespace capstan::client {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Pod;

Pod NewPod(const std::string& name, std::map<std::string, std::string> labels = {}) {
  Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  for (const auto& [k, v] : labels) (*pod.mutable_metadata()->mutable_labels())[k] = v;
  auto* c = pod.mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return pod;
}

Deployment NewDeployment(const std::string& name, int replicas) {
  Deployment d;
  d.mutable_metadata()->set_name(name);
  d.mutable_metadata()->set_namespace_("default");
  d.mutable_spec()->set_replicas(replicas);
  (*d.mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = name;
  auto* tmpl = d.mutable_spec()->mutable_template_();
  (*tmpl->mutable_metadata()->mutable_labels())["app"] = name;
  auto* c = tmpl->mutable_spec()->add_containers();
  c->set_name("app");
  c->set_image("nginx:1.25");
  return d;
}

class ClientTest : public ::testing::Test {
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
  }

  static testing::ApiServerProcess* server_;
  std::unique_ptr<Client> client_;
};

testing::ApiServerProcess* ClientTest::server_ = nullptr;

TEST_F(ClientTest, PodLifecycle) {
  absl::StatusOr<Pod> created = client_->Create(NewPod("lifecycle"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->metadata().uid().empty());
  EXPECT_FALSE(created->metadata().resource_version().empty());
  EXPECT_EQ(created->kind(), "Pod");

  absl::StatusOr<Pod> again = client_->Create(NewPod("lifecycle"));
  EXPECT_EQ(api::Reason(again.status()), "AlreadyExists");

  absl::StatusOr<Pod> got = client_->Get<Pod>("default", "lifecycle");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->metadata().uid(), created->metadata().uid());

  absl::StatusOr<ObjectList<Pod>> list = client_->List<Pod>("default");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_FALSE(list->resource_version.empty());
  bool found = false;
  for (const Pod& p : list->items) found |= p.metadata().name() == "lifecycle";
  EXPECT_TRUE(found);

  // Update with the current resourceVersion succeeds; the old one is now stale.
  Pod changed = *got;
  (*changed.mutable_metadata()->mutable_labels())["tier"] = "web";
  absl::StatusOr<Pod> updated = client_->Update(changed);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->metadata().labels().at("tier"), "web");
  EXPECT_NE(updated->metadata().resource_version(), got->metadata().resource_version());

  (*changed.mutable_metadata()->mutable_labels())["tier"] = "api";
  absl::StatusOr<Pod> stale = client_->Update(changed);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(api::Reason(stale.status()), "Conflict");
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(api::ToApiStatus(stale.status()).code(), 409);

  absl::StatusOr<Pod> deleted = client_->Delete<Pod>("default", "lifecycle");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  absl::StatusOr<Pod> gone = client_->Get<Pod>("default", "lifecycle");
  EXPECT_EQ(api::Reason(gone.status()), "NotFound");
  EXPECT_EQ(gone.status().message(), "pods \"lifecycle\" not found");
  EXPECT_EQ(api::Reason(client_->Delete<Pod>("default", "lifecycle").status()), "NotFound");
}

TEST_F(ClientTest, InvalidObjectsCarryCauses) {
  absl::StatusOr<Deployment> bad = client_->Create(NewDeployment("Bad_Name", 1));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(api::Reason(bad.status()), "Invalid");
  capstan::meta::v1::Status status = api::ToApiStatus(bad.status());
  EXPECT_EQ(status.code(), 422);
  ASSERT_GT(status.details().causes_size(), 0);
  EXPECT_EQ(status.details().causes(0).field(), "metadata.name");
}

TEST_F(ClientTest, DeploymentUpdateConflictAndDelete) {
  absl::StatusOr<Deployment> created = client_->Create(NewDeployment("dep", 2));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->metadata().generation(), 1);

  Deployment scaled = *created;
  scaled.mutable_spec()->set_replicas(4);
  absl::StatusOr<Deployment> updated = client_->Update(scaled);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->spec().replicas(), 4);
  EXPECT_EQ(updated->metadata().generation(), 2);

  scaled.mutable_spec()->set_replicas(5);  // still carries the creation's resourceVersion
  EXPECT_EQ(api::Reason(client_->Update(scaled).status()), "Conflict");

  // Without a resourceVersion an update is unconditional, as Kubernetes allows.
  scaled.mutable_metadata()->clear_resource_version();
  absl::StatusOr<Deployment> forced = client_->Update(scaled);
  ASSERT_TRUE(forced.ok()) << forced.status();
  EXPECT_EQ(forced->spec().replicas(), 5);

  ASSERT_TRUE(client_->Delete<Deployment>("default", "dep").ok());
  EXPECT_EQ(api::Reason(client_->Get<Deployment>("default", "dep").status()), "NotFound");
}

TEST_F(ClientTest, UpdateStatusChangesOnlyStatus) {
  absl::StatusOr<Deployment> created = client_->Create(NewDeployment("status", 3));
  ASSERT_TRUE(created.ok()) << created.status();

  Deployment next = *created;
  next.mutable_status()->set_replicas(3);
  next.mutable_status()->set_ready_replicas(2);
  next.mutable_spec()->set_replicas(9);  // ignored by the status subresource
  absl::StatusOr<Deployment> updated = client_->UpdateStatus(next);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status().ready_replicas(), 2);
  EXPECT_EQ(updated->spec().replicas(), 3);

  // And a main-resource update leaves status alone.
  Deployment spec_only = *updated;
  spec_only.mutable_status()->Clear();
  spec_only.mutable_spec()->set_replicas(1);
  absl::StatusOr<Deployment> after = client_->Update(spec_only);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->spec().replicas(), 1);
  EXPECT_EQ(after->status().ready_replicas(), 2);

  // Status patches go through the same subresource.
  PatchOptions status_patch;
  status_patch.status = true;
  absl::StatusOr<Deployment> patched = client_->Patch<Deployment>(
      "default", "status", PatchType::kMerge, R"({"status":{"availableReplicas":2}})",
      status_patch);
  ASSERT_TRUE(patched.ok()) << patched.status();
  EXPECT_EQ(patched->status().available_replicas(), 2);
  EXPECT_EQ(patched->status().ready_replicas(), 2);
}

TEST_F(ClientTest, MergeAndJsonPatch) {
  ASSERT_TRUE(client_->Create(NewDeployment("patched", 1)).ok());

  absl::StatusOr<Deployment> merged = client_->Patch<Deployment>(
      "default", "patched", PatchType::kMerge,
      R"({"metadata":{"labels":{"team":"a"}},"spec":{"replicas":3}})");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->spec().replicas(), 3);
  EXPECT_EQ(merged->metadata().labels().at("team"), "a");

  // null deletes in a merge patch.
  absl::StatusOr<Deployment> unlabelled = client_->Patch<Deployment>(
      "default", "patched", PatchType::kMerge, R"({"metadata":{"labels":{"team":null}}})");
  ASSERT_TRUE(unlabelled.ok()) << unlabelled.status();
  EXPECT_EQ(unlabelled->metadata().labels().count("team"), 0);

  absl::StatusOr<Deployment> json_patched = client_->Patch<Deployment>(
      "default", "patched", PatchType::kJson,
      R"([{"op":"test","path":"/spec/replicas","value":3},
          {"op":"replace","path":"/spec/replicas","value":7},
          {"op":"add","path":"/spec/template/spec/containers/0/image","value":"nginx:1.26"}])");
  ASSERT_TRUE(json_patched.ok()) << json_patched.status();
  EXPECT_EQ(json_patched->spec().replicas(), 7);
  EXPECT_EQ(json_patched->spec().template_().spec().containers(0).image(), "nginx:1.26");

  absl::StatusOr<Deployment> failed_test = client_->Patch<Deployment>(
      "default", "patched", PatchType::kJson,
      R"([{"op":"test","path":"/spec/replicas","value":1}])");
  EXPECT_FALSE(failed_test.ok());

  // A patch with a resourceVersion is conditional.
  absl::StatusOr<Deployment> stale = client_->Patch<Deployment>(
      "default", "patched", PatchType::kMerge,
      R"({"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}})");
  EXPECT_EQ(api::Reason(stale.status()), "Conflict");

  absl::StatusOr<Deployment> unknown = client_->Patch<Deployment>(
      "default", "patched", PatchType::kMerge, R"({"spec":{"replicass":2}})");
  EXPECT_EQ(api::Reason(unknown.status()), "BadRequest");

  EXPECT_EQ(api::Reason(client_->Patch<Deployment>("default", "missing", PatchType::kMerge, "{}")
                            .status()),
            "NotFound");
}

TEST_F(ClientTest, LabelAndFieldSelectors) {
  ASSERT_TRUE(client_->Create(NewPod("sel-web-1", {{"app", "sel"}, {"tier", "web"}})).ok());
  ASSERT_TRUE(client_->Create(NewPod("sel-web-2", {{"app", "sel"}, {"tier", "web"}})).ok());
  ASSERT_TRUE(client_->Create(NewPod("sel-api", {{"app", "sel"}, {"tier", "api"}})).ok());

  auto names = [&](const ListOptions& options) {
    std::vector<std::string> out;
    absl::StatusOr<ObjectList<Pod>> list = client_->List<Pod>("default", options);
    EXPECT_TRUE(list.ok()) << list.status();
    if (list.ok()) {
      for (const Pod& p : list->items) out.push_back(p.metadata().name());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  ListOptions web;
  web.label_selector = "app=sel,tier=web";
  EXPECT_EQ(names(web), (std::vector<std::string>{"sel-web-1", "sel-web-2"}));
  ListOptions not_web;
  not_web.label_selector = "app=sel,tier notin (web)";
  EXPECT_EQ(names(not_web), (std::vector<std::string>{"sel-api"}));
  ListOptions by_name;
  by_name.label_selector = "app=sel";
  by_name.field_selector = "metadata.name=sel-web-2";
  EXPECT_EQ(names(by_name), (std::vector<std::string>{"sel-web-2"}));

  // Pages of one, joined by the continue token.
  ListOptions paged;
  paged.label_selector = "app=sel";
  paged.limit = 1;
  std::vector<std::string> all;
  for (int pages = 0; pages < 10; ++pages) {
    absl::StatusOr<ObjectList<Pod>> page = client_->List<Pod>("default", paged);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->items.size(), 1u);
    for (const Pod& p : page->items) all.push_back(p.metadata().name());
    if (page->continue_token.empty()) break;
    paged.continue_token = page->continue_token;
  }
  EXPECT_EQ(all.size(), 3u);

  ListOptions bad;
  bad.label_selector = "app in (";
  EXPECT_FALSE(client_->List<Pod>("default", bad).ok());
}

TEST_F(ClientTest, WatchAndResume) {
  ListOptions mine;
  mine.label_selector = "app=watched";
  absl::StatusOr<ObjectList<Pod>> initial = client_->List<Pod>("default", mine);
  ASSERT_TRUE(initial.ok()) << initial.status();

  WatchOptions options;
  options.label_selector = "app=watched";
  options.resource_version = initial->resource_version;
  std::unique_ptr<WatchStream<Pod>> stream = client_->Watch<Pod>("default", options);

  absl::StatusOr<Pod> created = client_->Create(NewPod("watched", {{"app", "watched"}}));
  ASSERT_TRUE(created.ok()) << created.status();
  absl::StatusOr<Pod> patched = client_->Patch<Pod>("default", "watched", PatchType::kMerge,
                                                    R"({"metadata":{"labels":{"v":"2"}}})");
  ASSERT_TRUE(patched.ok()) << patched.status();
  ASSERT_TRUE(client_->Delete<Pod>("default", "watched").ok());

  WatchEvent<Pod> event;
  std::vector<std::string> types;
  std::string modified_revision;
  while (types.size() < 3 && stream->Next(&event)) {
    if (event.type == "BOOKMARK") continue;
    types.push_back(event.type);
    EXPECT_EQ(event.object.metadata().name(), "watched");
    if (event.type == "MODIFIED") {
      modified_revision = event.object.metadata().resource_version();
      EXPECT_EQ(event.object.metadata().labels().at("v"), "2");
    }
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ADDED", "MODIFIED", "DELETED"}));

  // Cancel from another thread ends a blocked Next.
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(200));
    stream->Cancel();
  });
  EXPECT_FALSE(stream->Next(&event));
  canceller.join();
  EXPECT_EQ(stream->status().code(), absl::StatusCode::kCancelled);

  // Resuming from the MODIFIED event's revision replays what came after it.
  ASSERT_FALSE(modified_revision.empty());
  options.resource_version = modified_revision;
  std::unique_ptr<WatchStream<Pod>> resumed = client_->Watch<Pod>("default", options);
  ASSERT_TRUE(resumed->Next(&event)) << resumed->status();
  EXPECT_EQ(event.type, "DELETED");
  EXPECT_EQ(event.object.metadata().name(), "watched");
  resumed->Cancel();
  while (resumed->Next(&event)) {
  }
}

TEST_F(ClientTest, WatchWithoutRevisionStartsWithCurrentState) {
  ASSERT_TRUE(client_->Create(NewPod("existing", {{"app", "initial"}})).ok());
  WatchOptions options;
  options.label_selector = "app=initial";
  options.allow_bookmarks = true;
  std::unique_ptr<WatchStream<Pod>> stream = client_->Watch<Pod>("default", options);
  WatchEvent<Pod> event;
  ASSERT_TRUE(stream->Next(&event)) << stream->status();
  EXPECT_EQ(event.type, "ADDED");
  EXPECT_EQ(event.object.metadata().name(), "existing");
  stream->Cancel();
}

TEST_F(ClientTest, UntypedCallsAndDiscovery) {
  const api::ResourceInfo& cms = *api::Scheme::BuiltIn().Lookup("cm");
  absl::StatusOr<std::string> created = client_->CreateRaw(
      cms, "default", R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw"},"data":{"k":"v"}})",
      capstan::api::v1::JSON);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_NE(created->find("\"k\":\"v\""), std::string::npos) << *created;

  absl::StatusOr<ObjectPtr> got = client_->Get(cms, "default", "raw");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(api::Meta(**got).name(), "raw");
  EXPECT_EQ((*got)->GetDescriptor()->full_name(), "capstan.core.v1.ConfigMap");

  absl::StatusOr<ObjectList<ObjectPtr>> list = client_->List(cms, "");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_GE(list->items.size(), 1u);

  absl::StatusOr<capstan::api::v1::DiscoveryResponse> discovery = client_->Discover();
  ASSERT_TRUE(discovery.ok()) << discovery.status();
  bool deployments = false;
  for (const auto& r : discovery->resources()) deployments |= r.name() == "deployments";
  EXPECT_TRUE(deployments);
}

}  // namespace
}  // namespace capstan::client
