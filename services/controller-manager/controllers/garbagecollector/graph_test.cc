#include "services/controller-manager/controllers/garbagecollector/graph.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/api/scheme.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"

namespace capstan::controllermanager::garbagecollector {
namespace {

using capstan::meta::v1::OwnerReference;
using Queue = WorkItem::Queue;

struct Owner {
  std::string uid;
  bool block = false;
};

OwnerReference Ref(const Owner& owner) {
  OwnerReference ref;
  ref.set_api_version("apps/v1");
  ref.set_kind("ReplicaSet");
  ref.set_name("rs-" + owner.uid);
  ref.set_uid(owner.uid);
  if (owner.block) ref.set_block_owner_deletion(true);
  return ref;
}

Node MakeNode(const std::string& uid, std::vector<Owner> owners = {},
              std::vector<std::string> finalizers = {}, bool being_deleted = false) {
  Node node;
  node.identity = {"v1", "Pod", "default", "obj-" + uid, uid};
  for (const Owner& o : owners) node.owners.push_back(Ref(o));
  node.finalizers = finalizers;
  node.being_deleted = being_deleted;
  auto has = [&](const char* f) {
    for (const auto& x : finalizers) {
      if (x == f) return true;
    }
    return false;
  };
  node.deleting_dependents = being_deleted && has(kForegroundFinalizer);
  node.orphaning = being_deleted && has(kOrphanFinalizer);
  return node;
}

Node Foreground(const std::string& uid, std::vector<Owner> owners = {}) {
  return MakeNode(uid, std::move(owners), {kForegroundFinalizer}, true);
}

WorkItem Del(const std::string& uid) { return {Queue::kAttemptToDelete, uid}; }
WorkItem Orphan(const std::string& uid) { return {Queue::kAttemptToOrphan, uid}; }

TEST(NodeFromObjectTest, TakesKindFromResourceAndFlagsFromMetadata) {
  capstan::core::v1::Pod pod;
  auto* meta = pod.mutable_metadata();
  meta->set_name("web-1");
  meta->set_namespace_("default");
  meta->set_uid("p1");
  *meta->add_owner_references() = Ref({"rs1", true});
  meta->add_finalizers(kForegroundFinalizer);
  meta->mutable_deletion_timestamp()->set_seconds(100);
  const api::ResourceInfo* info = api::Scheme::BuiltIn().ByKind("v1", "Pod");
  ASSERT_NE(info, nullptr);
  Node node = NodeFromObject(*info, pod);
  EXPECT_EQ(node.identity.api_version, "v1");
  EXPECT_EQ(node.identity.kind, "Pod");
  EXPECT_EQ(node.identity.ns, "default");
  EXPECT_EQ(node.identity.name, "web-1");
  EXPECT_EQ(node.identity.uid, "p1");
  ASSERT_EQ(node.owners.size(), 1u);
  EXPECT_EQ(node.owners[0].uid(), "rs1");
  EXPECT_TRUE(node.being_deleted);
  EXPECT_TRUE(node.deleting_dependents);
  EXPECT_FALSE(node.orphaning);
}

TEST(GraphTest, OwnersAndDependents) {
  Graph g;
  g.Observe(MakeNode("rs1"));
  g.Observe(MakeNode("rs2"));
  g.Observe(MakeNode("p1", {{"rs1", true}}));
  g.Observe(MakeNode("p2", {{"rs1", false}, {"rs2", true}}));
  g.Observe(MakeNode("p3", {{"rs2", true}}));
  EXPECT_EQ(g.size(), 5u);
  EXPECT_EQ(g.Dependents("rs1"), (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(g.Dependents("rs2"), (std::vector<std::string>{"p2", "p3"}));
  EXPECT_EQ(g.BlockingDependents("rs1"), (std::vector<std::string>{"p1"}));
  EXPECT_EQ(g.BlockingDependents("rs2"), (std::vector<std::string>{"p2", "p3"}));
  EXPECT_TRUE(g.Dependents("p1").empty());

  // p2 drops rs1: it is no longer rs1's dependent.
  g.Observe(MakeNode("p2", {{"rs2", true}}));
  EXPECT_EQ(g.Dependents("rs1"), (std::vector<std::string>{"p1"}));
  // A dependent seen before its owner is still recorded under the owner's uid.
  g.Observe(MakeNode("p4", {{"rs9", true}}));
  EXPECT_EQ(g.Dependents("rs9"), (std::vector<std::string>{"p4"}));
  EXPECT_EQ(g.Get("rs9"), nullptr);
}

// Each row: the graph before (observed in order), the change, and the work it must cause.
struct ChangeCase {
  std::string name;
  std::vector<Node> before;
  // Either an observed node or, when forget is set, the uid removed.
  Node observe;
  std::string forget;
  std::vector<WorkItem> want;
};

class GraphChangeTest : public ::testing::TestWithParam<ChangeCase> {};

TEST_P(GraphChangeTest, CausesWork) {
  const ChangeCase& c = GetParam();
  Graph g;
  for (const Node& n : c.before) g.Observe(n);
  std::vector<WorkItem> got = c.forget.empty() ? g.Observe(c.observe) : g.Forget(c.forget);
  EXPECT_EQ(got, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Table, GraphChangeTest,
    ::testing::Values(
        ChangeCase{"ObjectWithoutOwners", {}, MakeNode("a"), "", {}},
        ChangeCase{"OwnerInGraph", {MakeNode("rs1")}, MakeNode("p1", {{"rs1"}}), "", {}},
        ChangeCase{
            "OwnerNotInGraphMayHaveVanished", {}, MakeNode("p1", {{"rs1"}}), "", {Del("p1")}},
        ChangeCase{"OneOfTwoOwnersMissing",
                   {MakeNode("rs1")},
                   MakeNode("p1", {{"rs1"}, {"rs2"}}),
                   "",
                   {Del("p1")}},
        ChangeCase{"OwnerDeletedInBackground",
                   {MakeNode("rs1"), MakeNode("p1", {{"rs1"}}), MakeNode("p2", {{"rs1"}})},
                   {},
                   "rs1",
                   {Del("p1"), Del("p2")}},
        ChangeCase{"UnknownUidForgotten", {MakeNode("rs1")}, {}, "nope", {}},
        ChangeCase{"OwnerStartsForegroundDeletion",
                   {MakeNode("rs1"), MakeNode("p1", {{"rs1", true}}), MakeNode("p2", {{"rs1"}})},
                   Foreground("rs1"),
                   "",
                   {Del("p1"), Del("p2"), Del("rs1")}},
        ChangeCase{"OwnerStillInForegroundDeletionOnlyRequeuesItself",
                   {Foreground("rs1"), MakeNode("p1", {{"rs1", true}})},
                   Foreground("rs1"),
                   "",
                   {Del("rs1")}},
        ChangeCase{"DependentOfForegroundOwnerAppears",
                   {Foreground("rs1")},
                   MakeNode("p1", {{"rs1", true}}),
                   "",
                   {Del("p1")}},
        ChangeCase{"BlockingDependentGoneReleasesOwner",
                   {Foreground("rs1"), MakeNode("p1", {{"rs1", true}})},
                   {},
                   "p1",
                   {Del("rs1")}},
        ChangeCase{"DependentDropsReferenceReleasesOwner",
                   {Foreground("rs1"), MakeNode("rs2"), MakeNode("p1", {{"rs1", true}, {"rs2"}})},
                   MakeNode("p1", {{"rs2"}}),
                   "",
                   {Del("rs1")}},
        ChangeCase{"DependentStopsBlockingReleasesOwner",
                   {Foreground("rs1"), MakeNode("p1", {{"rs1", true}})},
                   MakeNode("p1", {{"rs1", false}}),
                   "",
                   {Del("p1"), Del("rs1")}},
        ChangeCase{"DependentStartsDeletionReleasesOwner",
                   {Foreground("rs1"), MakeNode("p1", {{"rs1", true}})},
                   MakeNode("p1", {{"rs1", true}}, {"example.com/hold"}, true),
                   "",
                   {Del("p1"), Del("rs1")}},
        ChangeCase{"ForgottenDependentOfLiveOwnerCausesNothing",
                   {MakeNode("rs1"), MakeNode("p1", {{"rs1", true}})},
                   {},
                   "p1",
                   {}},
        ChangeCase{"OrphanDeletion",
                   {MakeNode("rs1"), MakeNode("p1", {{"rs1"}})},
                   MakeNode("rs1", {}, {kOrphanFinalizer}, true),
                   "",
                   {Orphan("rs1")}},
        ChangeCase{"OrphanFinalizerWithoutDeletionIsNotActedOn",
                   {},
                   MakeNode("rs1", {}, {kOrphanFinalizer}, false),
                   "",
                   {}}),
    [](const ::testing::TestParamInfo<ChangeCase>& info) { return info.param.name; });

struct DecideCase {
  std::string name;
  Node node;
  std::vector<OwnerState> states;  // one per owner of node, in order
  bool has_dependents = false;
  DependentAction::Type want;
  std::vector<std::string> want_removed;
  std::string want_policy;
};

class DecideForDependentTest : public ::testing::TestWithParam<DecideCase> {};

TEST_P(DecideForDependentTest, Decides) {
  const DecideCase& c = GetParam();
  ASSERT_EQ(c.node.owners.size(), c.states.size());
  std::vector<ClassifiedOwner> owners;
  for (size_t i = 0; i < c.states.size(); ++i) owners.push_back({c.node.owners[i], c.states[i]});
  DependentAction got = DecideForDependent(c.node, owners, c.has_dependents);
  EXPECT_EQ(got.type, c.want);
  EXPECT_EQ(got.remove_owner_uids, c.want_removed);
  EXPECT_EQ(got.propagation_policy, c.want_policy);
}

using T = DependentAction::Type;
constexpr OwnerState kSolid = OwnerState::kSolid;
constexpr OwnerState kDangling = OwnerState::kDangling;
constexpr OwnerState kWaiting = OwnerState::kWaitingForDependents;

INSTANTIATE_TEST_SUITE_P(
    Table, DecideForDependentTest,
    ::testing::Values(DecideCase{"NoOwners", MakeNode("p"), {}, false, T::kNone, {}, ""},
                      DecideCase{
                          "LiveOwner", MakeNode("p", {{"a"}}), {kSolid}, false, T::kNone, {}, ""},
                      DecideCase{"VanishedOwner",
                                 MakeNode("p", {{"a"}}),
                                 {kDangling},
                                 false,
                                 T::kDelete,
                                 {},
                                 "Background"},
                      DecideCase{"AllOwnersVanished",
                                 MakeNode("p", {{"a"}, {"b"}}),
                                 {kDangling, kDangling},
                                 false,
                                 T::kDelete,
                                 {},
                                 "Background"},
                      DecideCase{"OneOfTwoOwnersVanished",
                                 MakeNode("p", {{"a"}, {"b"}}),
                                 {kDangling, kSolid},
                                 false,
                                 T::kRemoveOwnerReferences,
                                 {"a"},
                                 ""},
                      DecideCase{"LiveOwnerAndWaitingOwner",
                                 MakeNode("p", {{"a"}, {"b"}}),
                                 {kSolid, kWaiting},
                                 false,
                                 T::kRemoveOwnerReferences,
                                 {"b"},
                                 ""},
                      DecideCase{"OwnerWaitingNoDependents",
                                 MakeNode("p", {{"a", true}}),
                                 {kWaiting},
                                 false,
                                 T::kDelete,
                                 {},
                                 "Background"},
                      DecideCase{"OwnerWaitingWithDependentsDeletesInForeground",
                                 MakeNode("p", {{"a", true}}),
                                 {kWaiting},
                                 true,
                                 T::kDelete,
                                 {},
                                 "Foreground"},
                      DecideCase{"VanishedOwnerWithDependentsStillBackground",
                                 MakeNode("p", {{"a"}}),
                                 {kDangling},
                                 true,
                                 T::kDelete,
                                 {},
                                 "Background"},
                      DecideCase{"OwnFinalizerOrphanChoosesOrphan",
                                 MakeNode("p", {{"a"}}, {kOrphanFinalizer}),
                                 {kDangling},
                                 false,
                                 T::kDelete,
                                 {},
                                 "Orphan"},
                      DecideCase{"OwnFinalizerForegroundChoosesForeground",
                                 MakeNode("p", {{"a"}}, {kForegroundFinalizer}),
                                 {kDangling},
                                 false,
                                 T::kDelete,
                                 {},
                                 "Foreground"},
                      DecideCase{"AlreadyBeingDeleted",
                                 MakeNode("p", {{"a"}}, {"example.com/x"}, true),
                                 {kDangling},
                                 false,
                                 T::kNone,
                                 {},
                                 ""}),
    [](const ::testing::TestParamInfo<DecideCase>& info) { return info.param.name; });

TEST(DecideForegroundTest, WaitsForBlockingDependentsOnly) {
  Graph g;
  g.Observe(Foreground("rs1"));
  g.Observe(MakeNode("p1", {{"rs1", true}}));
  g.Observe(MakeNode("p2", {{"rs1", false}}));
  g.Observe(MakeNode("p3", {{"rs1", true}}, {"example.com/hold"}, true));

  ForegroundAction a = DecideForeground(g, "rs1");
  EXPECT_FALSE(a.remove_finalizer);
  EXPECT_EQ(a.delete_dependents, (std::vector<std::string>{"p1", "p2"}));  // p3 is on its way

  g.Forget("p1");
  g.Forget("p3");
  a = DecideForeground(g, "rs1");
  EXPECT_TRUE(a.remove_finalizer);  // p2 does not block
  EXPECT_EQ(a.delete_dependents, (std::vector<std::string>{"p2"}));

  g.Forget("p2");
  a = DecideForeground(g, "rs1");
  EXPECT_TRUE(a.remove_finalizer);
  EXPECT_TRUE(a.delete_dependents.empty());
}

}  // namespace
}  // namespace capstan::controllermanager::garbagecollector
