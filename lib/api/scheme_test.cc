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

// The field paths are remembered per type: asking the same path of another kind, and asking
// again, answer for that kind.
TEST(SchemeTest, FieldValueAnswersPerKindWhenAskedAgain) {
  capstan::core::v1::Pod pod;
  pod.mutable_spec()->set_node_name("node-1");
  capstan::core::v1::Namespace ns;
  ns.mutable_status()->set_phase("Active");
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(FieldValue(pod, "spec.nodeName"), "node-1");
    EXPECT_EQ(FieldValue(ns, "spec.nodeName"), std::nullopt);
    EXPECT_EQ(FieldValue(ns, "status.phase"), "Active");
    EXPECT_EQ(FieldValue(pod, "status.phase"), "");
    EXPECT_EQ(FieldValueFromWire(ns.GetDescriptor(), ns.SerializeAsString(), "status.phase"),
              "Active");
    EXPECT_EQ(FieldValue(pod, "spec.bogus"), std::nullopt);
  }
}

// FieldValueFromWire answers as FieldValue for every selectable field of every kind, set or
// unset, including where a parser merges repeated occurrences of an embedded message.
TEST(SchemeTest, FieldValueFromWireAgreesWithFieldValue) {
  capstan::core::v1::Pod bound;
  bound.mutable_metadata()->set_name("web-0");
  bound.mutable_spec()->set_node_name("node-1");
  bound.mutable_spec()->set_host_network(true);
  bound.mutable_spec()->add_containers()->set_name("c");
  bound.mutable_status()->set_phase("Running");
  bound.mutable_status()->set_pod_ip("10.0.0.7");
  capstan::core::v1::Pod bare;  // every selectable field unset
  capstan::core::v1::Node cordoned;
  cordoned.mutable_spec()->set_unschedulable(true);
  capstan::core::v1::Event event;
  event.mutable_involved_object()->set_kind("Pod");
  event.mutable_involved_object()->set_name("web-0");
  event.set_reason("Scheduled");
  event.set_type("Normal");
  event.mutable_source()->set_component("scheduler");
  capstan::apps::v1::ReplicaSet replicas;
  replicas.mutable_status()->set_replicas(-3);  // a negative int32 is a 10-byte varint
  capstan::core::v1::Secret secret;
  secret.set_type("Opaque");
  capstan::core::v1::Namespace terminating;
  terminating.mutable_status()->set_phase("Terminating");

  // Two encodings one after the other: a parser merges them (later scalars win).
  capstan::core::v1::Pod later;
  later.mutable_spec()->set_scheduler_name("other");
  later.mutable_status()->set_phase("Succeeded");
  const std::string merged_bytes = bound.SerializeAsString() + later.SerializeAsString();
  capstan::core::v1::Pod merged;
  ASSERT_TRUE(merged.ParseFromString(merged_bytes));

  struct Case {
    const google::protobuf::Message* object;
    std::string bytes;
  };
  std::vector<Case> cases = {{&bound, bound.SerializeAsString()},
                             {&bare, bare.SerializeAsString()},
                             {&cordoned, cordoned.SerializeAsString()},
                             {&event, event.SerializeAsString()},
                             {&replicas, replicas.SerializeAsString()},
                             {&secret, secret.SerializeAsString()},
                             {&terminating, terminating.SerializeAsString()},
                             {&merged, merged_bytes}};
  int compared = 0;
  for (const Case& c : cases) {
    const ResourceInfo* info = Scheme::BuiltIn().ByKind(
        c.object->GetDescriptor()->full_name() == "capstan.apps.v1.ReplicaSet" ? "apps/v1" : "v1",
        c.object->GetDescriptor()->name());
    ASSERT_NE(info, nullptr) << c.object->GetDescriptor()->name();
    std::vector<std::string> paths = info->selectable_fields;
    paths.push_back("metadata.name");
    paths.push_back("spec.containers");  // repeated: nullopt from both
    for (const std::string& path : paths) {
      EXPECT_EQ(FieldValueFromWire(c.object->GetDescriptor(), c.bytes, path),
                FieldValue(*c.object, path))
          << info->kind << " " << path;
      ++compared;
    }
  }
  EXPECT_GT(compared, 40);
  EXPECT_EQ(FieldValueFromWire(merged.GetDescriptor(), merged_bytes, "status.phase"), "Succeeded");
  EXPECT_EQ(FieldValueFromWire(merged.GetDescriptor(), merged_bytes, "spec.nodeName"), "node-1");
  EXPECT_EQ(FieldValueFromWire(replicas.GetDescriptor(), replicas.SerializeAsString(),
                               "status.replicas"),
            "-3");
  // Malformed bytes (a length past the end) read as nullopt.
  EXPECT_EQ(FieldValueFromWire(bound.GetDescriptor(), std::string("\x12\x7f", 2), "spec.nodeName"),
            std::nullopt);
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
