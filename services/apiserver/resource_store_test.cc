// ResourceStore over a real RocksDB store in a temp directory: Kubernetes' API semantics.
#include "services/apiserver/resource_store.h"

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "lib/storage/rocksdb_store.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::apiserver {
namespace {

using capstan::apps::v1::Deployment;
using capstan::core::v1::Namespace;
using capstan::core::v1::Pod;
using capstan::scheduling::v1::PriorityClass;

class ResourceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/resource-store-XXXXXX";
    const char* base = getenv("TEST_TMPDIR");
    dir_ = base ? absl::StrCat(base, "/rs") : std::string(mkdtemp(tmpl));
    Open();
  }
  void TearDown() override {
    resources_.reset();
    store_.reset();
    std::string cmd = absl::StrCat("rm -rf '", dir_, "'");
    ASSERT_EQ(system(cmd.c_str()), 0);
  }
  void Open(int64_t retention = 100000, size_t window = 10000) {
    resources_.reset();
    store_.reset();
    storage::RocksDbOptions options;
    options.path = dir_;
    options.log_retention = retention;
    auto store = storage::OpenRocksDbStore(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    ResourceStore::Options o;
    o.watch_window = window;
    resources_ = std::make_unique<ResourceStore>(store_.get(), api::Scheme::BuiltIn(), o);
    ASSERT_TRUE(resources_->Start().ok());
  }
  const api::ResourceInfo& Info(const char* api_version, const char* kind) {
    return *api::Scheme::BuiltIn().ByKind(api_version, kind);
  }
  template <typename T>
  T As(const absl::StatusOr<ObjectPtr>& object) {
    EXPECT_TRUE(object.ok()) << object.status();
    if (!object.ok()) return T();
    return dynamic_cast<const T&>(*(*object)->object());
  }
  absl::StatusOr<ObjectPtr> CreatePod(const std::string& name, const std::string& ns = "default",
                                      const std::string& node = "") {
    auto pod = std::make_unique<Pod>();
    pod->mutable_metadata()->set_name(name);
    (*pod->mutable_metadata()->mutable_labels())["app"] = "web";
    auto* c = pod->mutable_spec()->add_containers();
    c->set_name("web");
    c->set_image("nginx:1.25");
    pod->mutable_spec()->set_node_name(node);
    return resources_->Create(Info("v1", "Pod"), ns, std::move(pod), false);
  }
  std::unique_ptr<Pod> NewPod(const std::string& name) {
    auto pod = std::make_unique<Pod>();
    pod->mutable_metadata()->set_name(name);
    auto* c = pod->mutable_spec()->add_containers();
    c->set_name("web");
    c->set_image("nginx:1.25");
    return pod;
  }
  absl::StatusOr<ObjectPtr> CreatePriorityClass(const std::string& name, int32_t value,
                                                bool global_default = false,
                                                const std::string& policy = "") {
    auto pc = std::make_unique<PriorityClass>();
    pc->mutable_metadata()->set_name(name);
    pc->set_value(value);
    pc->set_global_default(global_default);
    if (!policy.empty()) pc->set_preemption_policy(policy);
    return resources_->Create(Info("scheduling.k8s.io/v1", "PriorityClass"), "", std::move(pc),
                              false);
  }
  std::unique_ptr<Deployment> NewDeployment(const std::string& name) {
    auto d = std::make_unique<Deployment>();
    d->mutable_metadata()->set_name(name);
    (*d->mutable_spec()->mutable_selector()->mutable_match_labels())["app"] = name;
    (*d->mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = name;
    auto* c = d->mutable_spec()->mutable_template_()->mutable_spec()->add_containers();
    c->set_name("web");
    c->set_image("nginx:1.7.9");
    return d;
  }

  std::string dir_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<ResourceStore> resources_;
};

TEST_F(ResourceStoreTest, SystemNamespacesExistFromTheStart) {
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    auto got = resources_->Get(Info("v1", "Namespace"), "", ns);
    ASSERT_TRUE(got.ok()) << ns;
    EXPECT_EQ(As<Namespace>(got).status().phase(), "Active");
  }
}

TEST_F(ResourceStoreTest, CreateSetsServerFieldsAndDefaults) {
  Pod pod = As<Pod>(CreatePod("web-0"));
  EXPECT_EQ(pod.api_version(), "v1");
  EXPECT_EQ(pod.kind(), "Pod");
  EXPECT_EQ(pod.metadata().namespace_(), "default");
  EXPECT_EQ(pod.metadata().uid().size(), 36u);
  EXPECT_GT(pod.metadata().creation_timestamp().seconds(), 0);
  EXPECT_EQ(pod.metadata().generation(), 1);
  EXPECT_FALSE(pod.metadata().resource_version().empty());
  EXPECT_EQ(pod.status().phase(), "Pending");
  EXPECT_EQ(pod.spec().restart_policy(), "Always");
  EXPECT_EQ(pod.spec().containers(0).image_pull_policy(), "IfNotPresent");

  Pod got = As<Pod>(resources_->Get(Info("v1", "Pod"), "default", "web-0"));
  EXPECT_EQ(got.metadata().uid(), pod.metadata().uid());
  EXPECT_EQ(api::Reason(CreatePod("web-0").status()), "AlreadyExists");
}

TEST_F(ResourceStoreTest, GenerateNameMakesUniqueNames) {
  std::set<std::string> names;
  for (int i = 0; i < 20; ++i) {
    auto pod = std::make_unique<Pod>();
    pod->mutable_metadata()->set_generate_name("web-");
    pod->mutable_spec()->add_containers()->set_name("c");
    pod->mutable_spec()->mutable_containers(0)->set_image("busybox");
    Pod created = As<Pod>(resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false));
    EXPECT_EQ(created.metadata().name().rfind("web-", 0), 0u);
    EXPECT_EQ(created.metadata().name().size(), 9u);
    names.insert(created.metadata().name());
  }
  EXPECT_EQ(names.size(), 20u);
}

TEST_F(ResourceStoreTest, NamespaceMustExistAndNotBeTerminating) {
  EXPECT_EQ(api::Reason(CreatePod("p", "nowhere").status()), "NotFound");
  auto ns = std::make_unique<Namespace>();
  ns->mutable_metadata()->set_name("team-a");
  ASSERT_TRUE(resources_->Create(Info("v1", "Namespace"), "", std::move(ns), false).ok());
  ASSERT_TRUE(CreatePod("p", "team-a").ok());
  // The namespace's "kubernetes" finalizer keeps it Terminating until its contents are gone.
  Namespace deleting =
      As<Namespace>(resources_->Delete(Info("v1", "Namespace"), "", "team-a", {}));
  EXPECT_EQ(deleting.status().phase(), "Terminating");
  EXPECT_TRUE(deleting.metadata().has_deletion_timestamp());
  absl::Status refused = CreatePod("q", "team-a").status();
  EXPECT_EQ(api::Reason(refused), "Forbidden");
  EXPECT_NE(refused.message().find("being terminated"), absl::string_view::npos);
}

TEST_F(ResourceStoreTest, StaleResourceVersionConflicts) {
  const auto& info = Info("apps/v1", "Deployment");
  Deployment d = As<Deployment>(resources_->Create(info, "default", NewDeployment("web"), false));
  auto first = std::make_unique<Deployment>(d);
  first->mutable_spec()->set_replicas(5);
  Deployment updated = As<Deployment>(resources_->Update(info, "default", std::move(first), false, false));
  EXPECT_EQ(updated.spec().replicas(), 5);
  auto stale = std::make_unique<Deployment>(d);  // still has the first resourceVersion
  stale->mutable_spec()->set_replicas(7);
  absl::Status s = resources_->Update(info, "default", std::move(stale), false, false).status();
  EXPECT_EQ(api::Reason(s), "Conflict");
  EXPECT_NE(s.message().find("the object has been modified"), absl::string_view::npos);
}

TEST_F(ResourceStoreTest, GenerationFollowsSpecAndStatusNeedsItsSubresource) {
  const auto& info = Info("apps/v1", "Deployment");
  Deployment d = As<Deployment>(resources_->Create(info, "default", NewDeployment("web"), false));
  EXPECT_EQ(d.metadata().generation(), 1);
  EXPECT_EQ(d.spec().replicas(), 1);  // defaulted

  // A label change is not a spec change; a status written through Update is ignored.
  auto labels = std::make_unique<Deployment>(d);
  (*labels->mutable_metadata()->mutable_labels())["tier"] = "front";
  labels->mutable_status()->set_replicas(99);
  Deployment l = As<Deployment>(resources_->Update(info, "default", std::move(labels), false, false));
  EXPECT_EQ(l.metadata().generation(), 1);
  EXPECT_EQ(l.status().replicas(), 0);

  auto scaled = std::make_unique<Deployment>(l);
  scaled->mutable_spec()->set_replicas(3);
  Deployment s = As<Deployment>(resources_->Update(info, "default", std::move(scaled), false, false));
  EXPECT_EQ(s.metadata().generation(), 2);

  auto status = std::make_unique<Deployment>(s);
  status->mutable_status()->set_replicas(3);
  status->mutable_spec()->set_replicas(10);  // ignored by the status subresource
  Deployment st = As<Deployment>(resources_->Update(info, "default", std::move(status), true, false));
  EXPECT_EQ(st.status().replicas(), 3);
  EXPECT_EQ(st.spec().replicas(), 3);
  EXPECT_EQ(st.metadata().generation(), 2);
}

TEST_F(ResourceStoreTest, NoOpUpdateKeepsTheResourceVersion) {
  const auto& info = Info("apps/v1", "Deployment");
  Deployment d = As<Deployment>(resources_->Create(info, "default", NewDeployment("web"), false));
  Deployment same = As<Deployment>(
      resources_->Update(info, "default", std::make_unique<Deployment>(d), false, false));
  EXPECT_EQ(same.metadata().resource_version(), d.metadata().resource_version());
}

TEST_F(ResourceStoreTest, InvalidObjectsNameEveryBadField) {
  const auto& info = Info("apps/v1", "Deployment");
  auto bad = NewDeployment("Bad_Name");
  bad->mutable_spec()->set_replicas(-1);
  (*bad->mutable_spec()->mutable_template_()->mutable_metadata()->mutable_labels())["app"] = "x";
  absl::Status s = resources_->Create(info, "default", std::move(bad), false).status();
  auto status = api::ToApiStatus(s);
  EXPECT_EQ(status.reason(), "Invalid");
  EXPECT_EQ(status.code(), 422);
  std::set<std::string> fields;
  for (const auto& c : status.details().causes()) fields.insert(c.field());
  EXPECT_TRUE(fields.count("metadata.name")) << status.message();
  EXPECT_TRUE(fields.count("spec.replicas")) << status.message();
  EXPECT_TRUE(fields.count("spec.template.metadata.labels")) << status.message();
  EXPECT_EQ(resources_->cache(info).size(), 0u);
}

TEST_F(ResourceStoreTest, OversizedObjectIsRefused) {
  auto pod = std::make_unique<Pod>();
  pod->mutable_metadata()->set_name("big");
  pod->mutable_spec()->add_containers()->set_name("c");
  pod->mutable_spec()->mutable_containers(0)->set_image("busybox");
  for (int i = 0; i < 8; ++i) {
    (*pod->mutable_metadata()->mutable_annotations())[absl::StrCat("k", i)] =
        std::string(250 * 1024, 'x');
  }
  absl::Status s = resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false).status();
  EXPECT_NE(api::Reason(s), "");
  EXPECT_FALSE(resources_->Get(Info("v1", "Pod"), "default", "big").ok());
}

TEST_F(ResourceStoreTest, FinalizersHoldDeletionUntilRemoved) {
  const auto& info = Info("apps/v1", "Deployment");
  auto d = NewDeployment("held");
  d->mutable_metadata()->add_finalizers("example.com/cleanup");
  ASSERT_TRUE(resources_->Create(info, "default", std::move(d), false).ok());
  Deployment deleting = As<Deployment>(resources_->Delete(info, "default", "held", {}));
  EXPECT_TRUE(deleting.metadata().has_deletion_timestamp());
  ASSERT_TRUE(resources_->Get(info, "default", "held").ok());

  auto adding = std::make_unique<Deployment>(deleting);
  adding->mutable_metadata()->add_finalizers("example.com/other");
  EXPECT_EQ(api::Reason(resources_->Update(info, "default", std::move(adding), false, false).status()),
            "Forbidden");

  auto released = std::make_unique<Deployment>(deleting);
  released->mutable_metadata()->clear_finalizers();
  ASSERT_TRUE(resources_->Update(info, "default", std::move(released), false, false).ok());
  EXPECT_EQ(api::Reason(resources_->Get(info, "default", "held").status()), "NotFound");
}

TEST_F(ResourceStoreTest, BoundPodsGetTheirGracePeriod) {
  const auto& info = Info("v1", "Pod");
  ASSERT_TRUE(CreatePod("unbound").ok());
  ASSERT_TRUE(resources_->Delete(info, "default", "unbound", {}).ok());
  EXPECT_FALSE(resources_->Get(info, "default", "unbound").ok());

  ASSERT_TRUE(CreatePod("bound", "default", "node-1").ok());
  Pod terminating = As<Pod>(resources_->Delete(info, "default", "bound", {}));
  EXPECT_EQ(terminating.metadata().deletion_grace_period_seconds(), 30);
  EXPECT_TRUE(resources_->Get(info, "default", "bound").ok());
  DeleteOptions now;
  now.grace_period_seconds = 0;
  ASSERT_TRUE(resources_->Delete(info, "default", "bound", now).ok());
  EXPECT_FALSE(resources_->Get(info, "default", "bound").ok());
}

TEST_F(ResourceStoreTest, DeletePreconditions) {
  const auto& info = Info("v1", "Pod");
  Pod pod = As<Pod>(CreatePod("p"));
  DeleteOptions wrong_uid;
  wrong_uid.precondition_uid = "not-the-uid";
  EXPECT_EQ(api::Reason(resources_->Delete(info, "default", "p", wrong_uid).status()), "Conflict");
  DeleteOptions wrong_rv;
  wrong_rv.precondition_resource_version = "1";
  EXPECT_EQ(api::Reason(resources_->Delete(info, "default", "p", wrong_rv).status()), "Conflict");
  DeleteOptions right;
  right.precondition_uid = pod.metadata().uid();
  right.precondition_resource_version = pod.metadata().resource_version();
  EXPECT_TRUE(resources_->Delete(info, "default", "p", right).ok());
}

TEST_F(ResourceStoreTest, MergeAndJsonPatch) {
  const auto& info = Info("apps/v1", "Deployment");
  ASSERT_TRUE(resources_->Create(info, "default", NewDeployment("web"), false).ok());
  Deployment merged = As<Deployment>(resources_->Patch(
      info, "default", "web", PatchType::kMerge,
      R"({"spec":{"replicas":4},"metadata":{"labels":{"team":"a"}}})", false, false));
  EXPECT_EQ(merged.spec().replicas(), 4);
  EXPECT_EQ(merged.metadata().labels().at("team"), "a");
  Deployment patched = As<Deployment>(resources_->Patch(
      info, "default", "web", PatchType::kJson,
      R"([{"op":"replace","path":"/spec/replicas","value":6},{"op":"remove","path":"/metadata/labels/team"}])",
      false, false));
  EXPECT_EQ(patched.spec().replicas(), 6);
  EXPECT_EQ(patched.metadata().labels().count("team"), 0u);
  EXPECT_EQ(api::Reason(resources_->Patch(info, "default", "web", PatchType::kJson,
                                          R"([{"op":"test","path":"/spec/replicas","value":1}])",
                                          false, false)
                            .status()),
            "Invalid");
  EXPECT_EQ(api::Reason(resources_->Patch(info, "default", "web", PatchType::kMerge,
                                          R"({"spec":{"replicas":"three"}})", false, false)
                            .status()),
            "BadRequest");
  EXPECT_EQ(api::Reason(resources_->Patch(info, "default", "web", PatchType::kMerge,
                                          R"({"metadata":{"resourceVersion":"1"}})", false, false)
                            .status()),
            "Conflict");
}

// The asynchronous writes, as the gRPC service drives them: many in flight from one thread, each
// completed once, with its own result. Unconditional patches of one object race each other: the
// losers are retried from the fresher object (on the commit thread), so no patch is lost.
TEST_F(ResourceStoreTest, AsyncWritesInFlightCompleteOnceAndRacingPatchesAreRetried) {
  constexpr int kPods = 200;
  constexpr int kPatches = 50;
  const auto& pods = Info("v1", "Pod");
  ASSERT_TRUE(CreatePod("target").ok());

  absl::Mutex mu;
  std::vector<int> completions(kPods + kPatches, 0);
  std::vector<absl::Status> results(kPods + kPatches);
  auto record = [&](int i) {
    return [&, i](absl::StatusOr<ObjectPtr> r) {
      absl::MutexLock lock(&mu);
      ++completions[i];
      results[i] = r.status();
    };
  };
  for (int i = 0; i < kPods; ++i) {
    resources_->CreateAsync(pods, "default", NewPod(absl::StrCat("p", i)), false, record(i));
    if (i < kPatches) {
      resources_->PatchAsync(pods, "default", "target", PatchType::kMerge,
                             absl::StrCat(R"({"metadata":{"annotations":{"a)", i, R"(":"x"}}})"),
                             false, false, record(kPods + i));
    }
  }
  // Duplicates of an existing name and a missing object fail through the callback.
  absl::Status duplicate, missing;
  resources_->CreateAsync(pods, "default", NewPod("p0"), false,
                          [&](absl::StatusOr<ObjectPtr> r) {
                            absl::MutexLock lock(&mu);
                            duplicate = r.status();
                          });
  resources_->DeleteAsync(pods, "default", "nope", {}, [&](absl::StatusOr<ObjectPtr> r) {
    absl::MutexLock lock(&mu);
    missing = r.status();
  });
  {
    absl::MutexLock lock(&mu);
    auto all_done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      for (int c : completions) {
        if (c == 0) return false;
      }
      return !duplicate.ok() && !missing.ok();
    };
    mu.Await(absl::Condition(&all_done));
  }
  absl::SleepFor(absl::Milliseconds(50));  // a second completion would arrive meanwhile
  absl::MutexLock lock(&mu);
  for (int i = 0; i < kPods + kPatches; ++i) {
    EXPECT_EQ(completions[i], 1) << i;
    EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
  }
  EXPECT_EQ(api::Reason(duplicate), "AlreadyExists");
  EXPECT_EQ(api::Reason(missing), "NotFound");
  Pod target = As<Pod>(resources_->Get(pods, "default", "target"));
  EXPECT_EQ(target.metadata().annotations_size(), kPatches);
  for (int i = 0; i < kPods; ++i) {
    EXPECT_TRUE(resources_->Get(pods, "default", absl::StrCat("p", i)).ok()) << i;
  }
}

TEST_F(ResourceStoreTest, ListSelectsAndPages) {
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(CreatePod(absl::StrCat("p", i), "default", i % 2 ? "n1" : "").ok());
  ListOptions by_field;
  by_field.field_selector = "spec.nodeName=n1";
  EXPECT_EQ(resources_->List(Info("v1", "Pod"), "default", by_field)->items.size(), 3u);
  ListOptions unsupported;
  unsupported.field_selector = "spec.image=x";
  EXPECT_EQ(api::Reason(resources_->List(Info("v1", "Pod"), "default", unsupported).status()),
            "BadRequest");
  ListOptions paged;
  paged.limit = 3;
  auto page = resources_->List(Info("v1", "Pod"), "default", paged);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->remaining, 4);
  paged.continue_token = page->continue_token;
  EXPECT_EQ(resources_->List(Info("v1", "Pod"), "default", paged)->items.size(), 3u);
}

TEST_F(ResourceStoreTest, WatchResumesAcrossARestartFromTheRevisionLog) {
  const auto& info = Info("v1", "Pod");
  Pod first = As<Pod>(CreatePod("a"));
  ASSERT_TRUE(CreatePod("b").ok());
  ASSERT_TRUE(resources_->Delete(info, "default", "a", {}).ok());
  Open();  // a new ResourceStore over the reopened RocksDB: an apiserver restart
  ASSERT_TRUE(CreatePod("c").ok());
  WatchOptions options;
  options.resource_version = first.metadata().resource_version();
  auto w = resources_->Watch(info, "default", options, [] {});
  ASSERT_TRUE(w.ok()) << w.status();
  std::vector<std::string> seen;
  for (const auto& e : (*w)->Take(100)) {
    seen.push_back(absl::StrCat(WatchEventTypeName(e.type), " ", e.object->meta().name()));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"ADDED b", "DELETED a", "ADDED c"}));
}

TEST_F(ResourceStoreTest, CompactedRevisionIsExpired) {
  Open(/*retention=*/5, /*window=*/2);
  const auto& info = Info("v1", "Pod");
  Pod first = As<Pod>(CreatePod("first"));
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(CreatePod(absl::StrCat("p", i)).ok());
  ASSERT_TRUE(store_->Compact(store_->CurrentRevision() - 3).ok());
  WatchOptions options;
  options.resource_version = first.metadata().resource_version();
  auto w = resources_->Watch(info, "default", options, [] {});
  EXPECT_EQ(api::Reason(w.status()), "Expired");
  EXPECT_EQ(api::ToApiStatus(w.status()).code(), 410);
}

TEST_F(ResourceStoreTest, BuiltInPriorityClassesExistFromTheStart) {
  const auto& info = Info("scheduling.k8s.io/v1", "PriorityClass");
  PriorityClass cluster = As<PriorityClass>(resources_->Get(info, "", "system-cluster-critical"));
  EXPECT_EQ(cluster.value(), 2000000000);
  EXPECT_FALSE(cluster.global_default());
  EXPECT_EQ(cluster.preemption_policy(), "PreemptLowerPriority");
  EXPECT_EQ(cluster.description(),
            "Used for system critical pods that must run in the cluster, but can be moved to "
            "another node if necessary.");
  PriorityClass node = As<PriorityClass>(resources_->Get(info, "", "system-node-critical"));
  EXPECT_EQ(node.value(), 2000001000);
  EXPECT_EQ(node.description(),
            "Used for system critical pods that must not be moved from their current node.");

  // A restart finds them and creates nothing.
  std::string rv = cluster.metadata().resource_version();
  Open();
  EXPECT_EQ(As<PriorityClass>(resources_->Get(info, "", "system-cluster-critical"))
                .metadata()
                .resource_version(),
            rv);
}

TEST_F(ResourceStoreTest, PodGetsThePriorityOfItsClass) {
  ASSERT_TRUE(CreatePriorityClass("high", 1000, false, "Never").ok());
  auto pod = NewPod("web-0");
  pod->mutable_spec()->set_priority_class_name("high");
  Pod created = As<Pod>(resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false));
  EXPECT_EQ(created.spec().priority(), 1000);
  EXPECT_EQ(created.spec().preemption_policy(), "Never");

  pod = NewPod("critical");
  pod->mutable_spec()->set_priority_class_name("system-node-critical");
  created = As<Pod>(resources_->Create(Info("v1", "Pod"), "kube-system", std::move(pod), false));
  EXPECT_EQ(created.spec().priority(), 2000001000);
  EXPECT_EQ(created.spec().preemption_policy(), "PreemptLowerPriority");

  // Without a class and without a default: priority 0.
  created = As<Pod>(CreatePod("plain"));
  EXPECT_TRUE(created.spec().has_priority());
  EXPECT_EQ(created.spec().priority(), 0);
  EXPECT_EQ(created.spec().priority_class_name(), "");

  // An update that leaves priority out keeps it; one that changes it is invalid (immutable).
  Pod update = As<Pod>(resources_->Get(Info("v1", "Pod"), "default", "web-0"));
  update.mutable_spec()->clear_priority();
  update.mutable_spec()->clear_preemption_policy();
  update.mutable_spec()->mutable_containers(0)->set_image("nginx:1.26");
  Pod updated = As<Pod>(resources_->Update(Info("v1", "Pod"), "default",
                                           std::make_unique<Pod>(update), false, false));
  EXPECT_EQ(updated.spec().priority(), 1000);
  EXPECT_EQ(updated.spec().preemption_policy(), "Never");
  updated.mutable_spec()->set_priority(5);
  EXPECT_EQ(api::Reason(resources_->Update(Info("v1", "Pod"), "default",
                                           std::make_unique<Pod>(updated), false, false)
                            .status()),
            "Invalid");
}

TEST_F(ResourceStoreTest, UnknownPriorityClassIsForbidden) {
  auto pod = NewPod("web-0");
  pod->mutable_spec()->set_priority_class_name("missing");
  auto created = resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false);
  ASSERT_FALSE(created.ok());
  capstan::meta::v1::Status status = api::ToApiStatus(created.status());
  EXPECT_EQ(status.reason(), "Forbidden");
  EXPECT_EQ(status.code(), 403);
  EXPECT_NE(status.message().find("no PriorityClass with name missing was found"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(api::Reason(resources_->Get(Info("v1", "Pod"), "default", "web-0").status()),
            "NotFound");
}

TEST_F(ResourceStoreTest, GlobalDefaultPriorityClassAppliesToPodsWithoutAClass) {
  ASSERT_TRUE(CreatePriorityClass("normal", 100, true).ok());
  Pod created = As<Pod>(CreatePod("web-0"));
  EXPECT_EQ(created.spec().priority_class_name(), "normal");
  EXPECT_EQ(created.spec().priority(), 100);
  EXPECT_EQ(created.spec().preemption_policy(), "PreemptLowerPriority");

  // A pod naming its class gets that class, not the default.
  ASSERT_TRUE(CreatePriorityClass("low", 10).ok());
  auto pod = NewPod("web-1");
  pod->mutable_spec()->set_priority_class_name("low");
  created = As<Pod>(resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false));
  EXPECT_EQ(created.spec().priority(), 10);
}

TEST_F(ResourceStoreTest, PodsFollowTheGlobalDefaultAsItChanges) {
  const auto& info = Info("scheduling.k8s.io/v1", "PriorityClass");
  Pod before = As<Pod>(CreatePod("web-0"));
  EXPECT_EQ(before.spec().priority_class_name(), "");
  EXPECT_EQ(before.spec().priority(), 0);

  ASSERT_TRUE(CreatePriorityClass("normal", 100, true).ok());
  EXPECT_EQ(As<Pod>(CreatePod("web-1")).spec().priority(), 100);

  // Another class's change is seen too: the default's value does not change, so pods keep it.
  ASSERT_TRUE(CreatePriorityClass("low", 10).ok());
  EXPECT_EQ(As<Pod>(CreatePod("web-2")).spec().priority_class_name(), "normal");

  ASSERT_TRUE(resources_
                  ->Patch(info, "", "normal", PatchType::kMerge, R"({"globalDefault":false})",
                          false, false)
                  .ok());
  Pod unmarked = As<Pod>(CreatePod("web-3"));
  EXPECT_EQ(unmarked.spec().priority_class_name(), "");
  EXPECT_EQ(unmarked.spec().priority(), 0);

  ASSERT_TRUE(resources_
                  ->Patch(info, "", "low", PatchType::kMerge, R"({"globalDefault":true})", false,
                          false)
                  .ok());
  EXPECT_EQ(As<Pod>(CreatePod("web-4")).spec().priority(), 10);
  ASSERT_TRUE(resources_->Delete(info, "", "low", DeleteOptions()).ok());
  EXPECT_EQ(As<Pod>(CreatePod("web-5")).spec().priority_class_name(), "");
}

TEST_F(ResourceStoreTest, OnlyOnePriorityClassMayBeTheGlobalDefault) {
  const auto& info = Info("scheduling.k8s.io/v1", "PriorityClass");
  ASSERT_TRUE(CreatePriorityClass("first", 100, true).ok());
  auto second = CreatePriorityClass("second", 200, true);
  ASSERT_FALSE(second.ok());
  capstan::meta::v1::Status status = api::ToApiStatus(second.status());
  EXPECT_EQ(status.reason(), "Forbidden");
  EXPECT_EQ(status.code(), 403);
  EXPECT_NE(status.message().find(
                "PriorityClass first is already marked as default. Only one default can exist"),
            std::string::npos)
      << status.message();
  EXPECT_EQ(api::Reason(resources_->Get(info, "", "second").status()), "NotFound");

  // Marking another class default by update or patch is refused too; the default itself may be
  // updated.
  PriorityClass other = As<PriorityClass>(CreatePriorityClass("other", 300));
  other.set_global_default(true);
  EXPECT_EQ(api::Reason(resources_->Update(info, "", std::make_unique<PriorityClass>(other), false,
                                           false)
                            .status()),
            "Forbidden");
  EXPECT_EQ(api::Reason(resources_->Patch(info, "", "other", PatchType::kMerge,
                                          R"({"globalDefault":true})", false, false)
                            .status()),
            "Forbidden");
  EXPECT_TRUE(resources_->Patch(info, "", "first", PatchType::kMerge,
                                R"({"description":"the default"})", false, false)
                  .ok());
  // Once the default gives it up, another may take it.
  ASSERT_TRUE(resources_->Patch(info, "", "first", PatchType::kMerge,
                                R"({"globalDefault":false})", false, false)
                  .ok());
  EXPECT_TRUE(resources_->Patch(info, "", "other", PatchType::kMerge,
                                R"({"globalDefault":true})", false, false)
                  .ok());
}

TEST_F(ResourceStoreTest, PodGivingAConflictingPriorityIsForbidden) {
  ASSERT_TRUE(CreatePriorityClass("high", 1000).ok());
  auto pod = NewPod("web-0");
  pod->mutable_spec()->set_priority_class_name("high");
  pod->mutable_spec()->set_priority(7);
  auto created = resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false);
  ASSERT_FALSE(created.ok());
  capstan::meta::v1::Status status = api::ToApiStatus(created.status());
  EXPECT_EQ(status.reason(), "Forbidden");
  EXPECT_EQ(status.code(), 403);
  EXPECT_NE(status.message().find("the integer value of priority (7) must not be provided in pod "
                                  "spec; priority admission controller computed 1000 from the "
                                  "given PriorityClass name"),
            std::string::npos)
      << status.message();

  // Without a class the computed priority is 0.
  pod = NewPod("web-1");
  pod->mutable_spec()->set_priority(5);
  EXPECT_EQ(api::Reason(
                resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false).status()),
            "Forbidden");

  // The same value as the class's is accepted.
  pod = NewPod("web-2");
  pod->mutable_spec()->set_priority_class_name("high");
  pod->mutable_spec()->set_priority(1000);
  EXPECT_EQ(As<Pod>(resources_->Create(Info("v1", "Pod"), "default", std::move(pod), false))
                .spec()
                .priority(),
            1000);
}

TEST_F(ResourceStoreTest, PodsGetDefaultNotReadyAndUnreachableTolerations) {
  Pod pod = As<Pod>(CreatePod("web"));
  ASSERT_EQ(pod.spec().tolerations_size(), 2) << pod.DebugString();
  EXPECT_EQ(pod.spec().tolerations(0).key(), "node.kubernetes.io/not-ready");
  EXPECT_EQ(pod.spec().tolerations(1).key(), "node.kubernetes.io/unreachable");
  for (const auto& toleration : pod.spec().tolerations()) {
    EXPECT_EQ(toleration.operator_(), "Exists");
    EXPECT_EQ(toleration.effect(), "NoExecute");
    EXPECT_EQ(toleration.toleration_seconds(), 300);
  }
  // An update that leaves them out gets them back (and so is not refused for removing them).
  auto update = std::make_unique<Pod>(pod);
  update->mutable_spec()->clear_tolerations();
  (*update->mutable_metadata()->mutable_labels())["tier"] = "front";
  Pod updated = As<Pod>(resources_->Update(Info("v1", "Pod"), "default", std::move(update),
                                           /*status=*/false, /*dry_run=*/false));
  EXPECT_EQ(updated.spec().tolerations_size(), 2) << updated.DebugString();
  EXPECT_EQ(updated.metadata().labels().at("tier"), "front");
  // Templates are not pods: a Deployment's template is left alone.
  auto created = resources_->Create(Info("apps/v1", "Deployment"), "default",
                                    NewDeployment("web"), false);
  Deployment d = As<Deployment>(created);
  EXPECT_EQ(d.spec().template_().spec().tolerations_size(), 0);
}

}  // namespace
}  // namespace capstan::apiserver
