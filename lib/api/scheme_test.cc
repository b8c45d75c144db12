#include "lib/api/scheme.h"

#include "gtest/gtest.h"
#include "lib/api/errors.h"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"

namespace capstan::api {
namespace {

TEST(SchemeTest, LooksUpByWhatPeopleType) {
  const Scheme& s = Scheme::BuiltIn();
  for (const char* name : {"po", "pod", "pods", "Pod", "PODS"}) {
    ASSERT_NE(s.Lookup(name), nullptr) << name;
    EXPECT_EQ(s.Lookup(name)->kind, "Pod") << name;
  }
  EXPECT_EQ(s.Lookup("deploy")->kind, "Deployment");
  EXPECT_EQ(s.Lookup("deployments.apps")->kind, "Deployment");
  EXPECT_EQ(s.Lookup("rs")->kind, "ReplicaSet");
  EXPECT_EQ(s.Lookup("no")->kind, "Node");
  EXPECT_EQ(s.Lookup("ns")->kind, "Namespace");
  EXPECT_EQ(s.Lookup("deployments.core"), nullptr);
  EXPECT_EQ(s.Lookup("widgets"), nullptr);
}

TEST(SchemeTest, AddressesByResourceAndKind) {
  const Scheme& s = Scheme::BuiltIn();
  const ResourceInfo* d = s.ByResource("apps", "v1", "deployments");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->ApiVersion(), "apps/v1");
  EXPECT_EQ(d->QualifiedResource(), "deployments.apps");
  EXPECT_TRUE(d->namespaced);
  EXPECT_EQ(s.ByKind("apps/v1", "Deployment"), d);
  EXPECT_EQ(s.ByKind("v1", "Deployment"), nullptr);
  EXPECT_FALSE(s.ByResource("", "v1", "nodes")->namespaced);
  EXPECT_EQ(s.ByKind("coordination.k8s.io/v1", "Lease")->resource, "leases");
}

TEST(SchemeTest, GenericMetaAccessReachesTheTypedMessage) {
  const ResourceInfo& info = *Scheme::BuiltIn().ByKind("v1", "Pod");
  auto object = Scheme::BuiltIn().New(info);
  MutableMeta(object.get())->set_name("web-0");
  SetTypeMeta(info, object.get());
  auto* pod = dynamic_cast<capstan::core::v1::Pod*>(object.get());
  ASSERT_NE(pod, nullptr);
  EXPECT_EQ(pod->metadata().name(), "web-0");
  EXPECT_EQ(pod->api_version(), "v1");
  EXPECT_EQ(KindOf(*pod), "Pod");
  EXPECT_EQ(Meta(*pod).name(), "web-0");
}

TEST(SchemeTest, FieldValueFollowsJsonPaths) {
  capstan::core::v1::Pod pod;
  pod.mutable_spec()->set_node_name("node-1");
  pod.mutable_status()->set_phase("Running");
  EXPECT_EQ(FieldValue(pod, "spec.nodeName"), "node-1");
  EXPECT_EQ(FieldValue(pod, "status.phase"), "Running");
  EXPECT_EQ(FieldValue(pod, "status.podIP"), "");
  EXPECT_EQ(FieldValue(pod, "spec.hostNetwork"), "false");
  EXPECT_EQ(FieldValue(pod, "spec.nodename"), std::nullopt);
  EXPECT_EQ(FieldValue(pod, "spec"), std::nullopt);
  EXPECT_EQ(FieldValue(pod, "spec.containers"), std::nullopt);
}

TEST(ErrorsTest, StatusSurvivesTheGrpcEdge) {
  absl::Status err = Invalid({"apps", "deployments", "Deployment", "web"},
                             {{"FieldValueInvalid", "spec.replicas",
                               "spec.replicas: Invalid value: -1: must be greater than or equal to 0"}});
  EXPECT_EQ(err.code(), absl::StatusCode::kInvalidArgument);
  absl::Status back = FromGrpcStatus(ToGrpcStatus(err));
  auto status = ToApiStatus(back);
  EXPECT_EQ(status.reason(), "Invalid");
  EXPECT_EQ(status.code(), 422);
  ASSERT_EQ(status.details().causes_size(), 1);
  EXPECT_EQ(status.details().causes(0).field(), "spec.replicas");
  EXPECT_EQ(status.message(),
            "Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than "
            "or equal to 0");
}

TEST(ErrorsTest, ReasonsAndCodes) {
  ObjectRef ref{"", "pods", "Pod", "p"};
  EXPECT_EQ(Reason(NotFound(ref)), "NotFound");
  EXPECT_EQ(NotFound(ref).message(), "pods \"p\" not found");
  EXPECT_EQ(Reason(AlreadyExists(ref)), "AlreadyExists");
  EXPECT_EQ(Conflict(ref, "x").code(), absl::StatusCode::kAborted);
  EXPECT_EQ(ToApiStatus(Expired("too old")).code(), 410);
  // An error with no Status of its own still maps to a Kubernetes reason.
  EXPECT_EQ(Reason(absl::UnavailableError("down")), "ServiceUnavailable");
  EXPECT_EQ(Reason(absl::OkStatus()), "");
}

}  // namespace
}  // namespace capstan::api
