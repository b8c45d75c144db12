// Bad requests get the right Kubernetes reason, and nothing is stored.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/integration/api_test_util.h"

namespace capstan::testing {
namespace {

struct BadCreate {
  const char* name;
  apiv1::ResourceRef ref;
  std::string body;
  apiv1::Encoding encoding;
  const char* reason;
  const char* message_part;  // the field or cause the message must name
};

std::string Repeat(char c, size_t n) { return std::string(n, c); }

TEST(BadInputTest, EachBadRequestIsAnsweredWithItsReasonAndNothingIsStored) {
  ApiServerProcess server;
  ASSERT_TRUE(server.Start().ok());
  Api api(server.grpc_address());
  auto pods = Ref("", "pods", "default");
  auto deployments = Ref("apps", "deployments", "default");
  const std::string good_pod =
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"ok"},"spec":{"containers":[{"name":"c","image":"busybox"}]}})";

  std::vector<BadCreate> cases = {
      {"malformed json", pods, "{\"metadata\": {", apiv1::JSON, "BadRequest", "decoding Pod"},
      {"malformed protobuf", pods, "\xff\xff\xff\xff", apiv1::PROTOBUF, "BadRequest", "protobuf"},
      {"unknown field", deployments,
       R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicass":3}})",
       apiv1::JSON, "BadRequest", "spec.replicass"},
      {"wrong type", deployments,
       R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":"three"}})",
       apiv1::JSON, "BadRequest", "spec.replicas"},
      {"kind mismatch", pods,
       R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}})", apiv1::JSON,
       "BadRequest", "does not match"},
      {"namespace mismatch", pods,
       R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"other"},"spec":{"containers":[{"name":"c","image":"busybox"}]}})",
       apiv1::JSON, "BadRequest", "namespace"},
      {"invalid name", pods,
       R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c","image":"busybox"}]}})",
       apiv1::JSON, "Invalid", "metadata.name"},
      {"no containers", pods, R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{}})",
       apiv1::JSON, "Invalid", "spec.containers"},
      {"selector does not match template", deployments,
       R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"b"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}})",
       apiv1::JSON, "Invalid", "spec.template.metadata.labels"},
      {"negative replicas", deployments,
       R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":-1,"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"a"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}})",
       apiv1::JSON, "Invalid", "spec.replicas"},
      {"bad label value", pods,
       absl::StrCat(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":")",
                    Repeat('x', 64), R"("}},"spec":{"containers":[{"name":"c","image":"busybox"}]}})"),
       apiv1::JSON, "Invalid", "metadata.labels"},
      {"missing namespace", Ref("", "pods", "nowhere"), good_pod, apiv1::JSON, "NotFound",
       "namespaces \"nowhere\" not found"},
      {"unknown resource", Ref("", "widgets", "default"), good_pod, apiv1::JSON, "NotFound",
       "could not find the requested resource"},
      {"annotations over 256 KiB", pods,
       absl::StrCat(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":")",
                    Repeat('x', 300 * 1024),
                    R"("}},"spec":{"containers":[{"name":"c","image":"busybox"}]}})"),
       apiv1::JSON, "Invalid", "metadata.annotations"},
      {"object over 1.5 MiB", pods,
       absl::StrCat(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"big"},"spec":{"containers":[{"name":"c","image":"busybox","args":[")",
                    Repeat('x', 1600 * 1024), R"("]}]}})"),
       apiv1::JSON, "RequestEntityTooLarge", "too large"},
      {"request over 3 MiB", Ref("", "configmaps", "default"),
       absl::StrCat(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"huge"},"data":{"a":")",
                    Repeat('x', 4 * 1024 * 1024), R"("}})"),
       apiv1::JSON, "RequestEntityTooLarge", "too large"},
  };

  apiv1::ListRequest everything;
  *everything.mutable_resource() = Ref("", "pods", "");
  auto before = api.List(everything);
  ASSERT_TRUE(before.ok());

  for (const BadCreate& c : cases) {
    absl::Status s = api.Create(c.ref, c.body, c.encoding).status();
    ASSERT_FALSE(s.ok()) << c.name;
    auto status = api::ToApiStatus(s);
    if (*c.reason) EXPECT_EQ(status.reason(), c.reason) << c.name << ": " << status.message();
    EXPECT_NE(absl::AsciiStrToLower(status.message()).find(absl::AsciiStrToLower(c.message_part)),
              std::string::npos)
        << c.name << ": " << status.message();
    if (status.reason() == "Invalid") {
      ASSERT_GT(status.details().causes_size(), 0) << c.name;
      EXPECT_EQ(status.code(), 422);
    }
  }

  // Bad list and watch parameters.
  apiv1::ListRequest bad_selector;
  *bad_selector.mutable_resource() = pods;
  bad_selector.set_label_selector("app in (");
  EXPECT_EQ(api::Reason(api.List(bad_selector).status()), "BadRequest");
  apiv1::ListRequest bad_field;
  *bad_field.mutable_resource() = pods;
  bad_field.set_field_selector("spec.image=x");
  EXPECT_EQ(api::Reason(api.List(bad_field).status()), "BadRequest");
  apiv1::ListRequest bad_rv;
  *bad_rv.mutable_resource() = pods;
  bad_rv.set_resource_version("yesterday");
  EXPECT_EQ(api::Reason(api.List(bad_rv).status()), "BadRequest");
  apiv1::ListRequest bad_continue;
  *bad_continue.mutable_resource() = pods;
  bad_continue.set_continue_("garbage!");
  EXPECT_EQ(api::Reason(api.List(bad_continue).status()), "BadRequest");

  // Nothing was stored: same revision, same objects.
  auto after = api.List(everything);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->resource_version(), before->resource_version());
  EXPECT_EQ(after->items_size(), before->items_size());
}

}  // namespace
}  // namespace capstan::testing
