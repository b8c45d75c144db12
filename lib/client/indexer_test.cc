#include "lib/client/indexer.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/api/labels.h"
#include "lib/api/scheme.h"
#include "proto/core_v1.pb.h"

namespace capstan::client {
namespace {

using capstan::core::v1::Namespace;
using capstan::core::v1::Pod;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::shared_ptr<const Pod> MakePod(const std::string& ns, const std::string& name,
                                   const std::string& rv,
                                   std::map<std::string, std::string> labels = {},
                                   const std::string& node = "",
                                   const std::string& owner_uid = "") {
  auto pod = std::make_shared<Pod>();
  pod->mutable_metadata()->set_namespace_(ns);
  pod->mutable_metadata()->set_name(name);
  pod->mutable_metadata()->set_resource_version(rv);
  for (const auto& [k, v] : labels) (*pod->mutable_metadata()->mutable_labels())[k] = v;
  pod->mutable_spec()->set_node_name(node);
  if (!owner_uid.empty()) pod->mutable_metadata()->add_owner_references()->set_uid(owner_uid);
  return pod;
}

std::vector<std::string> Names(const std::vector<Object>& objects) {
  std::vector<std::string> names;
  for (const Object& object : objects) names.push_back(ObjectKey(*object));
  return names;
}

class IndexerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
};

TEST_F(IndexerTest, Keys) {
  Namespace ns;
  ns.mutable_metadata()->set_name("kube-system");
  EXPECT_EQ(ObjectKey(ns), "kube-system");
  EXPECT_EQ(ObjectKey(*MakePod("a", "p", "1")), "a/p");
}

TEST_F(IndexerTest, GetListAndNamespaces) {
  Indexer cache;
  EXPECT_EQ(cache.Upsert(MakePod("b", "p2", "1")), nullptr);
  cache.Upsert(MakePod("a", "p1", "2"));
  cache.Upsert(MakePod("ab", "p3", "3"));  // "ab/" must not be listed under "a"
  cache.Upsert(MakePod("a", "p0", "4"));
  EXPECT_EQ(cache.size(), 4u);
  EXPECT_THAT(cache.Keys(), ElementsAre("a/p0", "a/p1", "ab/p3", "b/p2"));
  EXPECT_THAT(Names(cache.List()), ElementsAre("a/p0", "a/p1", "ab/p3", "b/p2"));
  EXPECT_THAT(Names(cache.ListNamespace("a")), ElementsAre("a/p0", "a/p1"));
  EXPECT_THAT(Names(cache.ListNamespace("")), ElementsAre("a/p0", "a/p1", "ab/p3", "b/p2"));
  EXPECT_THAT(Names(cache.ListNamespace("zzz")), IsEmpty());
  EXPECT_THAT(cache.IndexKeys(kNamespaceIndex, "a"), ElementsAre("a/p0", "a/p1"));
  EXPECT_THAT(cache.IndexValues(kNamespaceIndex), ElementsAre("a", "ab", "b"));
  ASSERT_NE(cache.Get("a", "p1"), nullptr);
  EXPECT_EQ(cache.Get("a/p1")->GetDescriptor(), Pod::descriptor());
  EXPECT_EQ(cache.Get("a", "missing"), nullptr);
}

TEST_F(IndexerTest, IndexesFollowUpdatesAndDeletes) {
  Indexer cache;
  ASSERT_TRUE(cache.AddIndex("spec.nodeName", FieldIndex("spec.nodeName")).ok());
  EXPECT_EQ(cache.AddIndex("spec.nodeName", FieldIndex("spec.nodeName")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(cache.HasIndex(kLabelIndex));
  EXPECT_TRUE(cache.HasIndex(kOwnerUidIndex));
  EXPECT_FALSE(cache.HasIndex("nope"));

  cache.Upsert(MakePod("ns", "a", "1", {{"app", "web"}}, "node-1", "rs-1"));
  cache.Upsert(MakePod("ns", "b", "2", {{"app", "web"}, {"tier", "fe"}}, "", "rs-1"));
  cache.Upsert(MakePod("ns", "c", "3", {{"app", "db"}}, "node-2", "rs-2"));

  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=web")), ElementsAre("ns/a", "ns/b"));
  EXPECT_THAT(Names(cache.ByIndex(kOwnerUidIndex, "rs-1")), ElementsAre("ns/a", "ns/b"));
  EXPECT_THAT(Names(cache.ByIndex("spec.nodeName", "node-1")), ElementsAre("ns/a"));
  EXPECT_THAT(Names(cache.ByIndex("spec.nodeName", "")), ElementsAre("ns/b"));  // unscheduled
  EXPECT_THAT(Names(cache.ByIndex("nope", "x")), IsEmpty());

  // An update moves the object between index values.
  Object previous = cache.Upsert(MakePod("ns", "b", "4", {{"app", "api"}}, "node-1", "rs-2"));
  ASSERT_NE(previous, nullptr);
  EXPECT_EQ(api::Meta(*previous).resource_version(), "2");
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=web")), ElementsAre("ns/a"));
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=api")), ElementsAre("ns/b"));
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "tier=fe")), IsEmpty());
  EXPECT_THAT(Names(cache.ByIndex(kOwnerUidIndex, "rs-2")), ElementsAre("ns/b", "ns/c"));
  EXPECT_THAT(Names(cache.ByIndex("spec.nodeName", "node-1")), ElementsAre("ns/a", "ns/b"));
  EXPECT_THAT(cache.IndexValues("spec.nodeName"), ElementsAre("node-1", "node-2"));

  // A delete leaves no trace in any index.
  Object removed = cache.Remove("ns/a");
  ASSERT_NE(removed, nullptr);
  EXPECT_EQ(cache.Remove("ns/a"), nullptr);
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=web")), IsEmpty());
  EXPECT_THAT(cache.IndexValues(kLabelIndex), ElementsAre("app=api", "app=db"));
  EXPECT_THAT(cache.IndexValues(kOwnerUidIndex), ElementsAre("rs-2"));
  EXPECT_THAT(Names(cache.ByIndex("spec.nodeName", "node-1")), ElementsAre("ns/b"));
}

TEST_F(IndexerTest, IndexAddedLaterCoversExistingObjects) {
  Indexer cache;
  cache.Upsert(MakePod("ns", "a", "1", {}, "node-1"));
  cache.Upsert(MakePod("ns", "b", "2", {}, "node-2"));
  ASSERT_TRUE(cache.AddIndex("spec.nodeName", FieldIndex("spec.nodeName")).ok());
  EXPECT_THAT(Names(cache.ByIndex("spec.nodeName", "node-2")), ElementsAre("ns/b"));
  // A custom function can give several values, or none.
  ASSERT_TRUE(cache
                  .AddIndex("labelKeys",
                            [](const google::protobuf::Message& object) {
                              std::vector<std::string> keys;
                              for (const auto& [k, v] : api::Meta(object).labels()) {
                                keys.push_back(k);
                              }
                              return keys;
                            })
                  .ok());
  cache.Upsert(MakePod("ns", "c", "3", {{"x", "1"}, {"y", "2"}}));
  EXPECT_THAT(Names(cache.ByIndex("labelKeys", "x")), ElementsAre("ns/c"));
  EXPECT_THAT(Names(cache.ByIndex("labelKeys", "y")), ElementsAre("ns/c"));
  EXPECT_THAT(cache.IndexValues("labelKeys"), ElementsAre("x", "y"));
}

TEST_F(IndexerTest, ReplaceRebuildsIndexesAndReturnsPreviousContent) {
  Indexer cache;
  cache.Upsert(MakePod("ns", "a", "1", {{"app", "web"}}));
  cache.Upsert(MakePod("ns", "b", "2", {{"app", "web"}}));
  auto previous = cache.Replace({MakePod("ns", "b", "3", {{"app", "db"}}),
                                 MakePod("other", "c", "4", {{"app", "web"}})});
  ASSERT_EQ(previous.size(), 2u);
  EXPECT_EQ(api::Meta(*previous.at("ns/b")).resource_version(), "2");
  EXPECT_THAT(cache.Keys(), ElementsAre("ns/b", "other/c"));
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=web")), ElementsAre("other/c"));
  EXPECT_THAT(Names(cache.ByIndex(kLabelIndex, "app=db")), ElementsAre("ns/b"));
  EXPECT_THAT(cache.IndexValues(kNamespaceIndex), ElementsAre("ns", "other"));
}

TEST_F(IndexerTest, ListSelected) {
  Indexer cache;
  cache.Upsert(MakePod("ns", "a", "1", {{"app", "web"}, {"tier", "fe"}}));
  cache.Upsert(MakePod("ns", "b", "2", {{"app", "web"}}));
  cache.Upsert(MakePod("other", "c", "3", {{"app", "web"}, {"tier", "fe"}}));
  cache.Upsert(MakePod("ns", "d", "4", {{"app", "db"}}));

  auto select = [&](const std::string& ns, const std::string& text) {
    absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::Parse(text);
    EXPECT_TRUE(selector.ok()) << selector.status();
    return Names(cache.ListSelected(ns, *selector));
  };
  EXPECT_THAT(select("ns", "app=web"), ElementsAre("ns/a", "ns/b"));
  EXPECT_THAT(select("", "app=web"), ElementsAre("ns/a", "ns/b", "other/c"));
  EXPECT_THAT(select("", "app=web,tier=fe"), ElementsAre("ns/a", "other/c"));
  EXPECT_THAT(select("ns", "app=web,!tier"), ElementsAre("ns/b"));
  EXPECT_THAT(select("ns", "app!=web"), ElementsAre("ns/d"));
  EXPECT_THAT(select("ns", "tier"), ElementsAre("ns/a"));
  EXPECT_THAT(select("ns", ""), ElementsAre("ns/a", "ns/b", "ns/d"));
  EXPECT_THAT(select("ns", "app in (db)"), ElementsAre("ns/d"));
  EXPECT_THAT(select("ns", "app=nothing"), IsEmpty());
}

TEST_F(IndexerTest, SnapshotsSurviveUpdates) {
  Indexer cache;
  cache.Upsert(MakePod("ns", "a", "1", {{"app", "web"}}));
  Object held = cache.Get("ns/a");
  std::vector<Object> listed = cache.List();
  cache.Upsert(MakePod("ns", "a", "2", {{"app", "db"}}));
  cache.Remove("ns/a");
  // What a reader took is unchanged and still valid.
  EXPECT_EQ(api::Meta(*held).resource_version(), "1");
  EXPECT_EQ(api::Meta(*held).labels().at("app"), "web");
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0], held);
  EXPECT_EQ(cache.Get("ns/a"), nullptr);
}

TEST_F(IndexerTest, ConcurrentReadersSeeConsistentIndexes) {
  Indexer cache;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) {
      const std::string app = i % 2 == 0 ? "web" : "db";
      cache.Upsert(MakePod("ns", "p" + std::to_string(i % 10), std::to_string(i), {{"app", app}}));
    }
    done = true;
  });
  while (!done) {
    for (const Object& object : cache.ByIndex(kLabelIndex, "app=web")) {
      // An object the index returns has the label it is indexed under.
      ASSERT_EQ(api::Meta(*object).labels().at("app"), "web");
    }
  }
  writer.join();
  EXPECT_EQ(cache.size(), 10u);
}

}  // namespace
}  // namespace capstan::client
