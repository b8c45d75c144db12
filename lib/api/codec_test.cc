#include "lib/api/codec.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/api/testdata/codec_test.pb.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/meta.pb.h"

namespace capstan::api {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

// Decodes text into message, expecting success.
template <typename MessageType>
MessageType Decode(const std::string& text) {
  MessageType message;
  absl::Status status = ParseJson(text, &message);
  EXPECT_TRUE(status.ok()) << status;
  return message;
}

// The error text of decoding text into a fresh MessageType, or "OK".
template <typename MessageType>
std::string DecodeError(const std::string& text) {
  MessageType message;
  absl::Status status = ParseJson(text, &message);
  if (status.ok()) return "OK";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

// JSON -> message -> JSON must give back the input.
template <typename MessageType>
void ExpectRoundTrip(const json& input) {
  MessageType message;
  ASSERT_TRUE(JsonToMessage(input, &message).ok()) << JsonToMessage(input, &message);
  EXPECT_EQ(MessageToJson(message), input) << PrintJson(message, /*pretty=*/true);
}

TEST(CodecTest, ObjectMetaRoundTrip) {
  const json meta = json::parse(R"({
    "name": "web-0",
    "namespace": "shop",
    "uid": "5f0c6f2e-0000-4000-8000-000000000001",
    "resourceVersion": "42",
    "generation": 7,
    "creationTimestamp": "2024-05-01T10:00:00Z",
    "deletionTimestamp": "2024-05-02T11:30:15Z",
    "deletionGracePeriodSeconds": 0,
    "labels": {"app": "web", "tier": "frontend"},
    "annotations": {"example.com/note": "a: b", "empty": ""},
    "ownerReferences": [{
      "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "u-1",
      "controller": true, "blockOwnerDeletion": false
    }],
    "finalizers": ["example.com/cleanup", "kubernetes"],
    "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                       "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1"}]
  })");
  ExpectRoundTrip<meta::v1::ObjectMeta>(meta);

  meta::v1::ObjectMeta decoded;
  ASSERT_TRUE(JsonToMessage(meta, &decoded).ok());
  EXPECT_EQ(decoded.generation(), 7);
  EXPECT_EQ(decoded.labels().at("tier"), "frontend");
  EXPECT_TRUE(decoded.owner_references(0).controller());
  EXPECT_TRUE(decoded.owner_references(0).has_block_owner_deletion());
  EXPECT_TRUE(decoded.has_deletion_grace_period_seconds());
  EXPECT_EQ(decoded.creation_timestamp().seconds(), 1714557600);
  EXPECT_TRUE(MessageToJson(decoded)["generation"].is_number_integer());
}

TEST(CodecTest, Int64IsWrittenAsNumber) {
  meta::v1::ObjectMeta meta;
  meta.set_generation(int64_t{1} << 40);
  EXPECT_EQ(PrintJson(meta), R"({"generation":1099511627776})");
  testing::Scalars scalars;
  scalars.set_int64_value(std::numeric_limits<int64_t>::min());
  scalars.set_uint64_value(std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(PrintJson(scalars),
            R"({"int64Value":-9223372036854775808,"uint64Value":18446744073709551615})");
  ExpectRoundTrip<testing::Scalars>(MessageToJson(scalars));
}

TEST(CodecTest, PrettyPrinting) {
  meta::v1::ObjectMeta meta;
  meta.set_name("a");
  EXPECT_EQ(PrintJson(meta, /*pretty=*/true), "{\n  \"name\": \"a\"\n}");
}

TEST(CodecTest, OptionalScalarsArePrintedWhenSetEvenIfZero) {
  meta::v1::ListMeta list_meta;
  list_meta.set_remaining_item_count(0);
  EXPECT_EQ(PrintJson(list_meta), R"({"remainingItemCount":0})");
  list_meta.clear_remaining_item_count();
  EXPECT_EQ(PrintJson(list_meta), "{}");

  apps::v1::Deployment deployment;
  deployment.mutable_spec()->set_replicas(0);        // optional int32
  deployment.mutable_spec()->set_min_ready_seconds(0);  // plain int32: omitempty
  deployment.mutable_status()->set_replicas(0);      // plain int32: omitempty
  EXPECT_EQ(PrintJson(deployment), R"({"spec":{"replicas":0},"status":{}})");

  testing::Scalars scalars;
  scalars.set_optional_int32(0);
  scalars.set_optional_bool(false);
  scalars.set_optional_string("");
  scalars.set_int32_value(0);
  scalars.set_bool_value(false);
  scalars.set_string_value("");
  EXPECT_EQ(PrintJson(scalars), R"({"optionalBool":false,"optionalInt32":0,"optionalString":""})");
  ExpectRoundTrip<testing::Scalars>(MessageToJson(scalars));

  apps::v1::Deployment decoded = Decode<apps::v1::Deployment>(R"({"spec":{"replicas":0}})");
  EXPECT_TRUE(decoded.spec().has_replicas());
}

TEST(CodecTest, SetMessagesArePrintedEvenIfEmpty) {
  meta::v1::Status status;
  status.mutable_details();
  status.set_code(0);
  EXPECT_EQ(PrintJson(status), R"({"details":{}})");
  ExpectRoundTrip<meta::v1::Status>(json::parse(R"({"details":{}, "metadata":{}})"));
}

TEST(CodecTest, Quantity) {
  core::v1::Container container = Decode<core::v1::Container>(
      R"({"resources":{"limits":{"cpu":"500m","memory":1,"ephemeral-storage":0.5},
                       "requests":{"cpu":"1e3","memory":"1Gi"}}})");
  EXPECT_EQ(container.resources().limits().at("cpu").string(), "500m");
  EXPECT_EQ(container.resources().limits().at("memory").string(), "1");
  EXPECT_EQ(container.resources().limits().at("ephemeral-storage").string(), "0.5");
  EXPECT_EQ(MessageToJson(container)["resources"]["limits"],
            json::parse(R"({"cpu":"500m","memory":"1","ephemeral-storage":"0.5"})"));
  ExpectRoundTrip<core::v1::Container>(
      json::parse(R"({"resources":{"limits":{"cpu":"-1.5","x":"2Ki","y":"3E","z":"7n"}}})"));

  EXPECT_EQ(DecodeError<core::v1::Container>(R"({"resources":{"limits":{"cpu":"lots"}}})"),
            R"(resources.limits[cpu]: invalid quantity "lots")");
  EXPECT_EQ(DecodeError<core::v1::Container>(R"({"resources":{"limits":{"cpu":""}}})"),
            R"(resources.limits[cpu]: invalid quantity "")");
  EXPECT_EQ(DecodeError<core::v1::Container>(R"({"resources":{"limits":{"cpu":true}}})"),
            "resources.limits[cpu]: expected quantity (string or number), got boolean true");

  // Kubernetes writes the zero Quantity as "0".
  core::v1::ResourceRequirements requirements;
  (*requirements.mutable_limits())["cpu"];
  EXPECT_EQ(PrintJson(requirements), R"({"limits":{"cpu":"0"}})");
}

TEST(CodecTest, IntOrString) {
  apps::v1::Deployment deployment = Decode<apps::v1::Deployment>(
      R"({"spec":{"strategy":{"rollingUpdate":{"maxSurge":25,"maxUnavailable":"25%"}}}})");
  const auto& rolling = deployment.spec().strategy().rolling_update();
  EXPECT_EQ(rolling.max_surge().int_val(), 25);
  EXPECT_FALSE(rolling.max_surge().has_str_val());
  EXPECT_EQ(rolling.max_unavailable().str_val(), "25%");
  json out = MessageToJson(deployment)["spec"]["strategy"]["rollingUpdate"];
  EXPECT_EQ(out["maxSurge"], json(25));
  EXPECT_TRUE(out["maxSurge"].is_number_integer());
  EXPECT_EQ(out["maxUnavailable"], json("25%"));
  ExpectRoundTrip<apps::v1::Deployment>(
      json::parse(R"({"spec":{"strategy":{"rollingUpdate":{"maxSurge":0,"maxUnavailable":""}}}})"));

  EXPECT_EQ(DecodeError<apps::v1::Deployment>(
                R"({"spec":{"strategy":{"rollingUpdate":{"maxSurge":1.5}}}})"),
            "spec.strategy.rollingUpdate.maxSurge: expected integer or string, got number 1.5");
}

TEST(CodecTest, TimeIsNormalizedToUtcSeconds) {
  meta::v1::ObjectMeta meta = Decode<meta::v1::ObjectMeta>(
      R"({"creationTimestamp":"2024-05-01T12:00:00+02:00",
          "deletionTimestamp":"2024-05-01T10:00:00.5Z"})");
  EXPECT_EQ(meta.creation_timestamp().seconds(), 1714557600);
  EXPECT_EQ(meta.deletion_timestamp().seconds(), 1714557600);
  EXPECT_EQ(meta.deletion_timestamp().nanos(), 500000000);
  json out = MessageToJson(meta);
  EXPECT_EQ(out["creationTimestamp"], "2024-05-01T10:00:00Z");
  EXPECT_EQ(out["deletionTimestamp"], "2024-05-01T10:00:00Z");

  // Before 1970: nanos stay non-negative.
  meta = Decode<meta::v1::ObjectMeta>(R"({"creationTimestamp":"1969-12-31T23:59:59.25Z"})");
  EXPECT_EQ(meta.creation_timestamp().seconds(), -1);
  EXPECT_EQ(meta.creation_timestamp().nanos(), 250000000);

  EXPECT_EQ(DecodeError<meta::v1::ObjectMeta>(R"({"creationTimestamp":"yesterday"})"),
            R"(creationTimestamp: invalid time "yesterday")");
  EXPECT_EQ(DecodeError<core::v1::Pod>(R"({"metadata":{"creationTimestamp":"yesterday"}})"),
            R"(metadata.creationTimestamp: invalid time "yesterday")");
  EXPECT_EQ(DecodeError<core::v1::Pod>(R"({"metadata":{"creationTimestamp":"2024-05-01T10:00:00"}})"),
            R"(metadata.creationTimestamp: invalid time "2024-05-01T10:00:00")");
  EXPECT_EQ(DecodeError<core::v1::Pod>(R"({"metadata":{"creationTimestamp":5}})"),
            "metadata.creationTimestamp: expected string, got number 5");
}

TEST(CodecTest, MicroTimeHasSixFractionDigits) {
  coordination::v1::Lease lease = Decode<coordination::v1::Lease>(
      R"({"spec":{"renewTime":"2024-05-01T10:00:00.123456Z",
                  "acquireTime":"2024-05-01T12:00:00.5+02:00"}})");
  EXPECT_EQ(lease.spec().renew_time().nanos(), 123456000);
  json out = MessageToJson(lease);
  EXPECT_EQ(out["spec"]["renewTime"], "2024-05-01T10:00:00.123456Z");
  EXPECT_EQ(out["spec"]["acquireTime"], "2024-05-01T10:00:00.500000Z");
  lease.mutable_spec()->mutable_renew_time()->set_nanos(0);
  EXPECT_EQ(MessageToJson(lease)["spec"]["renewTime"], "2024-05-01T10:00:00.000000Z");
}

TEST(CodecTest, UnknownFieldsNameTheFullPath) {
  EXPECT_THAT(DecodeError<core::v1::Pod>(R"({"metadata":{"labelz":{"a":"b"}}})"),
              HasSubstr(R"(unknown field "metadata.labelz")"));
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"spec":{"replicass":3}})"),
            R"(unknown field "spec.replicass")");
  EXPECT_EQ(DecodeError<core::v1::Pod>(
                R"({"spec":{"containers":[{"name":"a"},{"name":"b","imagee":"x"}]}})"),
            R"(unknown field "spec.containers[1].imagee")");
  EXPECT_EQ(DecodeError<testing::Container>(R"({"byName":{"x":{"nope":1}}})"),
            R"(unknown field "byName[x].nope")");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"nope":null})"), R"(unknown field "nope")");
  // Only json_name counts: neither the proto name nor the default camelCase form of hostIP.
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"host_ip":"1.2.3.4"})"),
            R"(unknown field "host_ip")");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"hostIp":"1.2.3.4"})"), R"(unknown field "hostIp")");
  EXPECT_EQ(Decode<testing::Scalars>(R"({"hostIP":"1.2.3.4"})").host_ip(), "1.2.3.4");
  EXPECT_EQ(Decode<core::v1::ContainerPort>(R"({"hostIP":"1.2.3.4"})").host_ip(), "1.2.3.4");
}

TEST(CodecTest, WrongTypesNameThePath) {
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"spec":{"replicas":"three"}})"),
            R"(spec.replicas: expected integer, got string "three")");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"spec":{"replicas":1.5}})"),
            "spec.replicas: expected integer, got number 1.5");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"spec":{"replicas":3000000000}})"),
            "spec.replicas: value 3000000000 out of range for int32");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"spec":{"paused":"yes"}})"),
            R"(spec.paused: expected boolean, got string "yes")");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"metadata":{"labels":{"app":1}}})"),
            "metadata.labels[app]: expected string, got number 1");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"metadata":[]})"),
            "metadata: expected object, got array");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"metadata":{"finalizers":"a"}})"),
            R"(metadata.finalizers: expected array, got string "a")");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"metadata":{"finalizers":["a",2]}})"),
            "metadata.finalizers[1]: expected string, got number 2");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"({"metadata":{"labels":["a"]}})"),
            "metadata.labels: expected object, got array");
  EXPECT_EQ(DecodeError<apps::v1::Deployment>(R"([])"), "expected object, got array");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"uint32Value":-1})"),
            "uint32Value: value -1 out of range for uint32");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"int64Value":9223372036854775808})"),
            "int64Value: value 9223372036854775808 out of range for int64");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"int32Value":1e3})"),
            "int32Value: expected integer, got number 1000.0");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"floatValue":1e300})"),
            "floatValue: value 1e+300 out of range for float");
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"color":"BLUE"})"),
            R"(color: unknown value "BLUE" for enum capstan.testing.Color)");
  EXPECT_EQ(DecodeError<testing::Container>(R"({"byNumber":{"x":"a"}})"),
            R"(byNumber[x]: invalid map key "x" for type int32)");
  // Long values are cut in messages.
  EXPECT_EQ(DecodeError<testing::Scalars>(R"({"int32Value":")" + std::string(100, 'x') + R"("})"),
            R"(int32Value: expected integer, got string ")" + std::string(64, 'x') + R"("...)");
}

TEST(CodecTest, NullMeansUnset) {
  apps::v1::Deployment deployment = Decode<apps::v1::Deployment>(
      R"({"metadata":null,"spec":{"replicas":null,"selector":null,"strategy":{}},"status":null})");
  EXPECT_FALSE(deployment.has_metadata());
  EXPECT_FALSE(deployment.spec().has_replicas());
  EXPECT_FALSE(deployment.spec().has_selector());
  EXPECT_TRUE(deployment.spec().has_strategy());
  EXPECT_EQ(PrintJson(deployment), R"({"spec":{"strategy":{}}})");

  // Null elements and map values are zero values, as in Go.
  testing::Container container = Decode<testing::Container>(
      R"({"numbers":[1,null],"items":[null],"byName":{"a":null},"data":{"k":null}})");
  EXPECT_EQ(container.numbers_size(), 2);
  EXPECT_EQ(container.numbers(1), 0);
  EXPECT_EQ(container.items_size(), 1);
  EXPECT_TRUE(container.by_name().contains("a"));
  EXPECT_EQ(container.data().at("k"), "");
}

TEST(CodecTest, MessageIsClearedFirst) {
  apps::v1::Deployment deployment;
  deployment.mutable_metadata()->set_name("old");
  deployment.mutable_spec()->set_replicas(5);
  ASSERT_TRUE(ParseJson(R"({"kind":"Deployment"})", &deployment).ok());
  EXPECT_EQ(PrintJson(deployment), R"({"kind":"Deployment"})");
}

TEST(CodecTest, BytesAreBase64) {
  core::v1::Secret secret = Decode<core::v1::Secret>(
      R"({"data":{"username":"YWRtaW4=","empty":"","raw":"AP8Q"}})");
  EXPECT_EQ(secret.data().at("username"), "admin");
  EXPECT_EQ(secret.data().at("raw"), std::string("\x00\xff\x10", 3));
  ExpectRoundTrip<core::v1::Secret>(
      json::parse(R"({"data":{"username":"YWRtaW4=","empty":"","raw":"AP8Q"}})"));

  EXPECT_EQ(DecodeError<core::v1::Secret>(R"({"data":{"username":"YWRtaW4"}})"),
            R"(data[username]: invalid base64 "YWRtaW4")");
  EXPECT_EQ(DecodeError<core::v1::Secret>(R"({"data":{"username":"YW Rt"}})"),
            R"(data[username]: invalid base64 "YW Rt")");
  EXPECT_EQ(DecodeError<core::v1::Secret>(R"({"data":{"username":"YW-_"}})"),
            R"(data[username]: invalid base64 "YW-_")");
  EXPECT_EQ(DecodeError<core::v1::Secret>(R"({"data":{"username":1}})"),
            "data[username]: expected base64 string, got number 1");

  testing::Container container;
  container.mutable_scalars()->set_bytes_value(std::string("\x01\x02\x03\xfe", 4));
  container.add_blobs("hello");
  container.add_blobs("");
  json out = MessageToJson(container);
  EXPECT_EQ(out["scalars"]["bytesValue"], "AQID/g==");
  EXPECT_EQ(out["blobs"], json::parse(R"(["aGVsbG8=",""])"));
  ExpectRoundTrip<testing::Container>(out);
  EXPECT_EQ(DecodeError<testing::Container>(R"({"blobs":["aGVsbG8=","a==="]})"),
            R"(blobs[1]: invalid base64 "a===")");
}

TEST(CodecTest, EveryScalarTypeRoundTrips) {
  const json scalars = json::parse(R"({
    "int32Value": -2147483648, "int64Value": 9223372036854775807, "uint32Value": 4294967295,
    "uint64Value": 18446744073709551615, "doubleValue": 0.5, "floatValue": 0.1,
    "boolValue": true, "stringValue": "héllo \"world\"", "bytesValue": "AA==", "color": "RED",
    "optionalInt32": -1, "hostIP": "10.0.0.1"
  })");
  ExpectRoundTrip<testing::Scalars>(scalars);
  testing::Scalars decoded;
  ASSERT_TRUE(JsonToMessage(scalars, &decoded).ok());
  EXPECT_EQ(decoded.color(), testing::RED);
  EXPECT_FLOAT_EQ(decoded.float_value(), 0.1f);
  EXPECT_EQ(Decode<testing::Scalars>(R"({"color":2})").color(), testing::GREEN);
  EXPECT_EQ(Decode<testing::Scalars>(R"({"doubleValue":3})").double_value(), 3.0);

  ExpectRoundTrip<testing::Container>(json::parse(R"({
    "numbers": [1, -2, 3000000000000], "colors": ["RED", "GREEN"],
    "byNumber": {"7": "seven", "-1": "minus one"}, "byName": {"a": {"boolValue": true}, "b": {}},
    "items": [{}, {"stringValue": "x"}], "text": "chosen",
    "tree": {"name": "root", "children": [{"name": "leaf"}]}
  })"));
}

TEST(CodecTest, OneofAcceptsOneMember) {
  EXPECT_EQ(Decode<testing::Container>(R"({"number":0})").number(), 0);
  EXPECT_TRUE(Decode<testing::Container>(R"({"number":0})").has_number());
  EXPECT_EQ(PrintJson(Decode<testing::Container>(R"({"number":0})")), R"({"number":0})");
  EXPECT_EQ(Decode<testing::Container>(R"({"number":null,"text":"a"})").text(), "a");
  EXPECT_EQ(DecodeError<testing::Container>(R"({"number":1,"text":"a"})"),
            R"(text: may not be set together with "number")");
}

TEST(CodecTest, JsonSyntaxErrorsNamePosition) {
  apps::v1::Deployment deployment;
  absl::Status status = ParseJson("{\"spec\":\n  {\"replicas\": x}}", &deployment);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("invalid JSON: parse error at line 2, column"));
  status = ParseJson("", &deployment);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("line 1, column 1"));
}

TEST(CodecTest, DeepNestingIsRejected) {
  std::string deep;
  for (int i = 0; i < 150; ++i) deep += R"({"children":[)";
  deep += "{}";
  for (int i = 0; i < 150; ++i) deep += "]}";
  testing::Node node;
  absl::Status status = ParseJson(deep, &node);
  EXPECT_THAT(std::string(status.message()), HasSubstr("nested too deeply"));

  std::string shallow;
  for (int i = 0; i < 50; ++i) shallow += R"({"children":[)";
  shallow += "{}";
  for (int i = 0; i < 50; ++i) shallow += "]}";
  EXPECT_TRUE(ParseJson(shallow, &node).ok());
}

TEST(CodecTest, InvalidUtf8IsPrintedWithoutThrowing) {
  testing::Scalars scalars;
  scalars.set_string_value("bad \xff byte");
  EXPECT_EQ(PrintJson(scalars), "{\"stringValue\":\"bad \xEF\xBF\xBD byte\"}");
}

}  // namespace
}  // namespace capstan::api
