#include "lib/api/yaml.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "lib/api/codec.h"
#include "lib/api/validation.h"
#include "proto/apps_v1.pb.h"
#include "proto/coordination_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"

namespace capstan::api {
namespace {

using ::google::protobuf::Message;
using ::google::protobuf::util::MessageDifferencer;
using ::nlohmann::json;
using ::testing::HasSubstr;

constexpr char kSeedManifest[] = R"(apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  labels: {app: nginx}
spec:
  replicas: 3
  selector:
    matchLabels: {app: nginx}
  template:
    metadata:
      labels: {app: nginx}
    spec:
      containers: [{name: nginx, image: 'nginx:1.7.9'}]
)";

std::vector<json> ParseOk(const std::string& text) {
  absl::StatusOr<std::vector<json>> documents = ParseYamlDocuments(text);
  EXPECT_TRUE(documents.ok()) << documents.status();
  return documents.ok() ? *documents : std::vector<json>{};
}

json ParseOne(const std::string& text) {
  std::vector<json> documents = ParseOk(text);
  EXPECT_EQ(documents.size(), 1u) << text;
  return documents.empty() ? json() : documents[0];
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<std::vector<json>> documents = ParseYamlDocuments(text);
  if (documents.ok()) return "OK";
  EXPECT_EQ(documents.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(documents.status().message());
}

TEST(YamlTest, SeedManifestParses) {
  EXPECT_EQ(ParseOne(kSeedManifest), json::parse(R"({
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
    "spec": {
      "replicas": 3,
      "selector": {"matchLabels": {"app": "nginx"}},
      "template": {
        "metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.7.9"}]}
      }
    }
  })"));
}

TEST(YamlTest, SeedManifestRoundTripsThroughDeployment) {
  apps::v1::Deployment deployment;
  ASSERT_TRUE(JsonToMessage(ParseOne(kSeedManifest), &deployment).ok());
  EXPECT_EQ(deployment.spec().replicas(), 3);
  EXPECT_EQ(deployment.spec().template_().spec().containers(0).image(), "nginx:1.7.9");

  const std::string printed = PrintYaml(MessageToJson(deployment));
  EXPECT_THAT(printed, HasSubstr("replicas: 3\n"));
  EXPECT_THAT(printed, HasSubstr("image: nginx:1.7.9\n"));
  apps::v1::Deployment reparsed;
  ASSERT_TRUE(JsonToMessage(ParseOne(printed), &reparsed).ok()) << printed;
  EXPECT_TRUE(MessageDifferencer::Equals(deployment, reparsed))
      << deployment.DebugString() << "\nvs\n" << reparsed.DebugString();
}

TEST(YamlTest, MultipleDocumentsSkipEmptyAndCommentOnlyOnes) {
  std::vector<json> documents = ParseOk(R"(# leading comment
---
a: 1
---
# only a comment
---
---
b: [x, y]   # trailing comment
...
---
just a scalar
---
- 1
- two
)");
  ASSERT_EQ(documents.size(), 3u);
  EXPECT_EQ(documents[0], json::parse(R"({"a":1})"));
  EXPECT_EQ(documents[1], json::parse(R"({"b":["x","y"]})"));
  EXPECT_EQ(documents[2], json::parse(R"([1,"two"])"));
  EXPECT_TRUE(ParseOk("").empty());
  EXPECT_TRUE(ParseOk("# nothing\n").empty());
}

TEST(YamlTest, PlainScalarsGetCoreSchemaTypesQuotedOnesStayStrings) {
  json value = ParseOne(R"(
plain_true: true
title_true: True
quoted_true: "true"
single_quoted_true: 'true'
yes_is_a_string: yes
on_is_a_string: on
null_word: null
tilde: ~
empty:
quoted_null: "null"
int: 42
negative: -7
plus: +3
hex: 0x1F
octal: 0o17
leading_zero: 010
quoted_int: "42"
float: 1.5
exponent: 1e3
fraction_only: .5
trailing_dot: 1.
quoted_float: '1.5'
infinity: .inf
minus_infinity: -.Inf
big: 18446744073709551615
huge: 123456789012345678901234567890
version: 1.2.3
quantity: 500m
image: nginx:1.7.9
literal: |
  line one
  line two
folded: >-
  folded
  text
tagged_str: !!str 123
tagged_int: !!int "7"
1: numeric key
true: bool key
)");
  EXPECT_EQ(value["plain_true"], json(true));
  EXPECT_EQ(value["title_true"], json(true));
  EXPECT_EQ(value["quoted_true"], json("true"));
  EXPECT_EQ(value["single_quoted_true"], json("true"));
  EXPECT_EQ(value["yes_is_a_string"], json("yes"));
  EXPECT_EQ(value["on_is_a_string"], json("on"));
  EXPECT_TRUE(value["null_word"].is_null());
  EXPECT_TRUE(value["tilde"].is_null());
  EXPECT_TRUE(value["empty"].is_null());
  EXPECT_TRUE(value.contains("empty"));
  EXPECT_EQ(value["quoted_null"], json("null"));
  EXPECT_TRUE(value["int"].is_number_integer());
  EXPECT_EQ(value["int"], json(42));
  EXPECT_EQ(value["negative"], json(-7));
  EXPECT_EQ(value["plus"], json(3));
  EXPECT_EQ(value["hex"], json(31));
  EXPECT_EQ(value["octal"], json(15));
  EXPECT_EQ(value["leading_zero"], json(10));
  EXPECT_EQ(value["quoted_int"], json("42"));
  EXPECT_TRUE(value["float"].is_number_float());
  EXPECT_EQ(value["float"], json(1.5));
  EXPECT_EQ(value["exponent"], json(1000.0));
  EXPECT_TRUE(value["exponent"].is_number_float());
  EXPECT_EQ(value["fraction_only"], json(0.5));
  EXPECT_EQ(value["trailing_dot"], json(1.0));
  EXPECT_EQ(value["quoted_float"], json("1.5"));
  EXPECT_TRUE(std::isinf(value["infinity"].get<double>()));
  EXPECT_LT(value["minus_infinity"].get<double>(), 0);
  EXPECT_TRUE(value["big"].is_number_unsigned());
  EXPECT_EQ(value["big"].get<uint64_t>(), 18446744073709551615u);
  EXPECT_TRUE(value["huge"].is_number_float());
  EXPECT_EQ(value["version"], json("1.2.3"));
  EXPECT_EQ(value["quantity"], json("500m"));
  EXPECT_EQ(value["image"], json("nginx:1.7.9"));
  EXPECT_EQ(value["literal"], json("line one\nline two\n"));
  EXPECT_EQ(value["folded"], json("folded text"));
  EXPECT_EQ(value["tagged_str"], json("123"));
  EXPECT_EQ(value["tagged_int"], json(7));
  // Keys are always strings.
  EXPECT_EQ(value["1"], json("numeric key"));
  EXPECT_EQ(value["true"], json("bool key"));
}

TEST(YamlTest, JsonIsYaml) {
  EXPECT_EQ(ParseOne(R"({"a": [1, 2.5, "x", null, true], "b": {"c": "d"}})"),
            json::parse(R"({"a": [1, 2.5, "x", null, true], "b": {"c": "d"}})"));
  // Not JSON (unquoted keys), but YAML flow style.
  EXPECT_EQ(ParseOne("{a: 1, b: [x]}"), json::parse(R"({"a": 1, "b": ["x"]})"));
}

TEST(YamlTest, ErrorsNameTheLine) {
  EXPECT_THAT(ParseError("a: 1\nb: [1, 2\nc: 3\n"), HasSubstr("yaml: line "));
  EXPECT_EQ(ParseError("a: 1\nb:\n  c: 1\n  c: 2\n"), "yaml: line 4: duplicate key \"c\"");
  EXPECT_EQ(ParseError("a: 1\n? [x]\n: y\n"), "yaml: line 2: mapping keys must be scalars");
  EXPECT_EQ(ParseError("a: 1\nb: !!int seven\n"), "yaml: line 2: invalid !!int value \"seven\"");
  EXPECT_THAT(ParseError("a: 1\n  b: 2\n"), HasSubstr("line 2"));
}

TEST(YamlTest, AliasExpansionIsBounded) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char previous = 'a';
  for (char name = 'b'; name <= 'j'; ++name) {
    absl::StrAppend(&bomb, std::string(1, name), ": &", std::string(1, name), " [");
    for (int i = 0; i < 10; ++i) absl::StrAppend(&bomb, i ? ", " : "", "*", std::string(1, previous));
    bomb += "]\n";
    previous = name;
  }
  EXPECT_THAT(ParseError(bomb), HasSubstr("too large"));
  // Ordinary aliases expand.
  EXPECT_EQ(ParseOne("base: &base {a: 1}\ncopy: *base\n"),
            json::parse(R"({"base": {"a": 1}, "copy": {"a": 1}})"));
}

TEST(YamlTest, PrintYamlQuotesOnlyWhereNeeded) {
  EXPECT_EQ(PrintYaml(json::parse(R"({"b": "plain", "a": {"num": 1, "f": 0.5, "t": true, "z": null},
                                      "l": ["x", 2], "e": {}, "s": [], "q": "true", "i": "1"})")),
            R"(a:
  f: 0.5
  num: 1
  t: true
  z: ~
b: plain
e: {}
i: "1"
l:
  - x
  - 2
q: "true"
s: []
)");
}

TEST(YamlTest, PrintedStringsReadBackUnchanged) {
  const std::vector<std::string> strings = {
      "", "true", "True", "false", "null", "Null", "~", "yes", "no", "on", "off", "y", "n",
      "1", "-1", "+1", "1.5", ".5", "1e3", "0x1F", "0o17", "010", "1_000", "12:30", ".inf", "-.inf",
      ".nan", "2024-05-01", "2024-05-01T10:00:00Z", "1.2.3", "500m", "1Gi", "a: b", "a:b",
      "- x", "-", "?", ":", "#c", "x #y", " lead", "trail ", "*a", "&a", "!t", "%x", "@a", "`x",
      "'q", "\"d", "a\nb", "trailing newline\n", "tab\there", "{", "}", "[x]", ",", "|", ">",
      "<<", "=", "é ü 日本", "nginx:1.7.9", "http://example.com/a?b=c#d", "key=value",
      "\x01 control", "---", "...", "a'b\"c"};
  json object = json::object();
  json array = json::array();
  for (const std::string& text : strings) {
    object[text] = text;
    array.push_back(text);
  }
  const json document = {{"object", object}, {"array", array}};
  const std::string printed = PrintYaml(document);
  EXPECT_EQ(ParseOne(printed), document) << printed;
  EXPECT_THAT(printed, HasSubstr("  - 500m\n"));
  EXPECT_THAT(printed, HasSubstr("  - \"true\"\n"));
  EXPECT_THAT(printed, HasSubstr("  - \"2024-05-01T10:00:00Z\"\n"));
}

TEST(YamlTest, PrintedNumbersReadBackUnchanged) {
  const json document = json::parse(R"({"numbers": [0, -1, 9223372036854775807,
      -9223372036854775808, 18446744073709551615, 0.1, -2.5, 1.0, 1e21, 5e-324, 1.7976931348623157e308],
      "nested": [[1, [2, {}]], {"a": [[]]}]})");
  const std::string printed = PrintYaml(document);
  EXPECT_EQ(ParseOne(printed), document) << printed;
  json infinity = {{"x", std::numeric_limits<double>::infinity()}};
  EXPECT_TRUE(std::isinf(ParseOne(PrintYaml(infinity))["x"].get<double>()));
}

// --- Fixtures: test/fixtures/manifests ---------------------------------------------------------

struct KindInfo {
  std::unique_ptr<Message> message;
  bool namespaced = true;
  bool name_is_dns_label = false;
};

// A local stand-in for the kind registry (lib/api/scheme), which this library must not depend on.
std::optional<KindInfo> NewMessageFor(const std::string& api_version, const std::string& kind) {
  auto make = [](std::unique_ptr<Message> message, bool namespaced, bool dns_label = false) {
    return std::optional<KindInfo>(KindInfo{std::move(message), namespaced, dns_label});
  };
  if (api_version == "v1") {
    if (kind == "Pod") return make(std::make_unique<core::v1::Pod>(), true);
    if (kind == "Namespace") return make(std::make_unique<core::v1::Namespace>(), false, true);
    if (kind == "Node") return make(std::make_unique<core::v1::Node>(), false);
    if (kind == "Event") return make(std::make_unique<core::v1::Event>(), true);
    if (kind == "ConfigMap") return make(std::make_unique<core::v1::ConfigMap>(), true);
    if (kind == "Secret") return make(std::make_unique<core::v1::Secret>(), true);
    if (kind == "Binding") return make(std::make_unique<core::v1::Binding>(), true);
  } else if (api_version == "apps/v1") {
    if (kind == "Deployment") return make(std::make_unique<apps::v1::Deployment>(), true);
    if (kind == "ReplicaSet") return make(std::make_unique<apps::v1::ReplicaSet>(), true);
  } else if (api_version == "coordination.k8s.io/v1") {
    if (kind == "Lease") return make(std::make_unique<coordination::v1::Lease>(), true);
  } else if (api_version == "scheduling.k8s.io/v1") {
    if (kind == "PriorityClass") {
      return make(std::make_unique<scheduling::v1::PriorityClass>(), false);
    }
  }
  return std::nullopt;
}

constexpr char kManifestDir[] = "test/fixtures/manifests";

std::vector<std::string> YamlFilesIn(const std::string& directory) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Checks that output is input in Kubernetes' canonical form: equal, except that zero values of
// omitempty fields (false, 0, "", empty lists and maps) are dropped and numbers given for
// Quantities come back as strings ("cpu: 1" -> "1").
void ExpectCanonicalFormOf(const json& input, const json& output, const std::string& path) {
  if (input.is_object() && output.is_object()) {
    for (auto it = input.begin(); it != input.end(); ++it) {
      const std::string child = path.empty() ? it.key() : path + "." + it.key();
      if (!output.contains(it.key())) {
        const json& dropped = *it;
        bool zero = dropped.is_null() || dropped == json(false) || dropped == json(0) ||
                    dropped == json("") || (dropped.is_array() && dropped.empty()) ||
                    (dropped.is_object() && dropped.empty());
        EXPECT_TRUE(zero) << child << " was dropped: " << dropped.dump();
        continue;
      }
      ExpectCanonicalFormOf(*it, output[it.key()], child);
    }
    for (auto it = output.begin(); it != output.end(); ++it) {
      EXPECT_TRUE(input.contains(it.key())) << path << "." << it.key() << " was added";
    }
    return;
  }
  if (input.is_array() && output.is_array() && input.size() == output.size()) {
    for (size_t i = 0; i < input.size(); ++i) {
      ExpectCanonicalFormOf(input[i], output[i], absl::StrCat(path, "[", i, "]"));
    }
    return;
  }
  if (input.is_number() && output.is_string()) {
    EXPECT_EQ(output.get<std::string>(), input.dump()) << path;
    return;
  }
  EXPECT_EQ(output, input) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Decodes one manifest document; then, as the API server would, validates its metadata. The
// error text, or "" when the object is accepted.
std::string DecodeAndValidate(const json& document, KindInfo& info) {
  if (absl::Status status = JsonToMessage(document, info.message.get()); !status.ok()) {
    return std::string(status.message());
  }
  const auto* metadata_field = info.message->GetDescriptor()->FindFieldByNumber(3);
  const auto& metadata = static_cast<const meta::v1::ObjectMeta&>(
      info.message->GetReflection()->GetMessage(*info.message, metadata_field));
  FieldErrors errors;
  ValidateObjectMeta(metadata, info.namespaced, info.name_is_dns_label, &errors);
  return FormatFieldErrors(errors);
}

TEST(ManifestFixturesTest, EveryManifestReEncodesInCanonicalFormAndReappliesUnchanged) {
  const std::vector<std::string> files = YamlFilesIn(kManifestDir);
  ASSERT_GE(files.size(), 5u) << "fixtures not found under " << kManifestDir;
  int documents_checked = 0;
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    absl::StatusOr<std::vector<json>> documents = ParseYamlDocuments(ReadFile(file));
    ASSERT_TRUE(documents.ok()) << documents.status();
    ASSERT_FALSE(documents->empty());
    for (const json& document : *documents) {
      const std::string api_version = document.value("apiVersion", "");
      const std::string kind = document.value("kind", "");
      std::optional<KindInfo> info = NewMessageFor(api_version, kind);
      ASSERT_TRUE(info.has_value()) << "no message for " << api_version << " " << kind;
      absl::Status status = JsonToMessage(document, info->message.get());
      ASSERT_TRUE(status.ok()) << status;
      const json encoded = MessageToJson(*info->message);
      ExpectCanonicalFormOf(document, encoded, "");
      // Applying the output again gives the same object, and so does its YAML form.
      std::unique_ptr<Message> reapplied(info->message->New());
      ASSERT_TRUE(JsonToMessage(encoded, reapplied.get()).ok());
      EXPECT_TRUE(MessageDifferencer::Equals(*info->message, *reapplied));
      EXPECT_EQ(MessageToJson(*reapplied), encoded);
      std::unique_ptr<Message> from_yaml(info->message->New());
      ASSERT_TRUE(JsonToMessage(ParseOne(PrintYaml(encoded)), from_yaml.get()).ok());
      EXPECT_TRUE(MessageDifferencer::Equals(*info->message, *from_yaml))
          << PrintYaml(encoded);
      ++documents_checked;
    }
  }
  EXPECT_GE(documents_checked, static_cast<int>(files.size()));
}

TEST(ManifestFixturesTest, EveryBadManifestIsRejectedNamingTheField) {
  // The field each known bad fixture must name; fixtures added later must at least name a path.
  const std::map<std::string, std::string> expected_field = {
      {"bad-name.yaml", "metadata.name"},
      {"unknown-field.yaml", "unknown field \"spec.replicass\""},
      {"wrong-type.yaml", "spec.replicas: expected integer, got string \"three\""},
  };
  const std::vector<std::string> files = YamlFilesIn(std::string(kManifestDir) + "/bad");
  ASSERT_FALSE(files.empty());
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    absl::StatusOr<std::vector<json>> documents = ParseYamlDocuments(ReadFile(file));
    std::string error;
    if (!documents.ok()) {
      error = std::string(documents.status().message());
    } else {
      for (const json& document : *documents) {
        std::optional<KindInfo> info =
            NewMessageFor(document.value("apiVersion", ""), document.value("kind", ""));
        ASSERT_TRUE(info.has_value());
        error = DecodeAndValidate(document, *info);
        if (!error.empty()) break;
      }
    }
    ASSERT_FALSE(error.empty()) << "accepted";
    auto expected = expected_field.find(std::filesystem::path(file).filename().string());
    if (expected != expected_field.end()) {
      EXPECT_THAT(error, HasSubstr(expected->second));
    } else {
      EXPECT_THAT(error, ::testing::ContainsRegex("[a-zA-Z]+\\.[a-zA-Z]+"));
    }
  }
}

}  // namespace
}  // namespace capstan::api
