#include "services/controller-manager/controllers/namespace/namespace_controller.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/core_v1.pb.h"

namespace capstan::controllermanager::namespacecontroller {
namespace {

using capstan::core::v1::NamespaceCondition;

capstan::meta::v1::Time At(int64_t seconds) {
  capstan::meta::v1::Time t;
  t.set_seconds(seconds);
  return t;
}

const NamespaceCondition* Find(const std::vector<NamespaceCondition>& conditions,
                               const std::string& type) {
  for (const auto& c : conditions) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

TEST(DeletionConditionsTest, ContentAndFinalizersRemaining) {
  ContentSummary summary;
  summary.remaining_by_resource = {{"pods.", 3}, {"replicasets.apps", 1}};
  summary.remaining_by_finalizer = {{"example.com/hold", 1}};
  google::protobuf::RepeatedPtrField<NamespaceCondition> none;
  std::vector<NamespaceCondition> got = DeletionConditions(summary, none, At(10));
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0].type(), "NamespaceDeletionDiscoveryFailure");
  EXPECT_EQ(got[0].status(), "False");
  EXPECT_EQ(got[1].type(), "NamespaceDeletionGroupVersionParsingFailure");
  EXPECT_EQ(got[2].type(), "NamespaceDeletionContentFailure");
  EXPECT_EQ(got[2].status(), "False");
  EXPECT_EQ(got[2].reason(), "ContentDeleted");

  EXPECT_EQ(got[3].type(), "NamespaceContentRemaining");
  EXPECT_EQ(got[3].status(), "True");
  EXPECT_EQ(got[3].reason(), "SomeResourcesRemain");
  EXPECT_EQ(got[3].message(),
            "Some resources are remaining: pods. has 3 resource instances, replicasets.apps has 1 "
            "resource instances");
  EXPECT_EQ(got[4].type(), "NamespaceFinalizersRemaining");
  EXPECT_EQ(got[4].status(), "True");
  EXPECT_EQ(got[4].reason(), "SomeFinalizersRemain");
  EXPECT_EQ(got[4].message(),
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
            "resource instances");
  for (const auto& c : got) EXPECT_EQ(c.last_transition_time().seconds(), 10);
}

TEST(DeletionConditionsTest, FailuresAreReported) {
  ContentSummary summary;
  summary.failures = {"pods: boom", "secrets: bang"};
  EXPECT_FALSE(summary.Done());
  google::protobuf::RepeatedPtrField<NamespaceCondition> none;
  std::vector<NamespaceCondition> got = DeletionConditions(summary, none, At(10));
  const NamespaceCondition* c = Find(got, "NamespaceDeletionContentFailure");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->status(), "True");
  EXPECT_EQ(c->reason(), "ContentDeletionFailed");
  EXPECT_EQ(c->message(),
            "Failed to delete all resource types, 2 remaining: pods: boom, secrets: bang");
}

TEST(DeletionConditionsTest, TransitionTimeMovesOnlyWithStatusAndOtherTypesAreKept) {
  ContentSummary remaining;
  remaining.remaining_by_resource = {{"pods.", 1}};
  google::protobuf::RepeatedPtrField<NamespaceCondition> existing;
  for (auto& c : DeletionConditions(remaining, existing, At(10))) *existing.Add() = c;
  NamespaceCondition other;
  other.set_type("SomethingElse");
  other.set_status("True");
  *existing.Add() = other;

  ContentSummary empty;
  EXPECT_TRUE(empty.Done());
  std::vector<NamespaceCondition> got = DeletionConditions(empty, existing, At(20));
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(Find(got, "NamespaceDeletionDiscoveryFailure")->last_transition_time().seconds(), 10);
  const NamespaceCondition* content = Find(got, "NamespaceContentRemaining");
  EXPECT_EQ(content->status(), "False");
  EXPECT_EQ(content->reason(), "ContentRemoved");
  EXPECT_EQ(content->message(), "All content successfully removed");
  EXPECT_EQ(content->last_transition_time().seconds(), 20);
  EXPECT_EQ(got[5].type(), "SomethingElse");
}

}  // namespace
}  // namespace capstan::controllermanager::namespacecontroller
