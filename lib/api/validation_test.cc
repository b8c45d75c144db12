#include "lib/api/validation.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace capstan::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kSubdomainMsg[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
constexpr char kLabelMsg[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
constexpr char kQualifiedNameMsg[] =
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

std::vector<std::string> Formatted(const FieldErrors& errs) {
  std::vector<std::string> out;
  for (const FieldError& e : errs) out.push_back(FormatFieldError(e));
  return out;
}

capstan::meta::v1::ObjectMeta ValidMeta() {
  capstan::meta::v1::ObjectMeta meta;
  meta.set_name("web-1");
  meta.set_namespace_("default");
  return meta;
}

FieldErrors ValidateMeta(const capstan::meta::v1::ObjectMeta& meta, bool namespaced = true,
                         bool dns_label = false) {
  FieldErrors errs;
  ValidateObjectMeta(meta, namespaced, dns_label, &errs);
  return errs;
}

TEST(NameFormats, DNS1123Subdomain) {
  for (const char* valid : {"a", "example.com", "a-b.c-d", "0", "x.0.y", "123"}) {
    EXPECT_THAT(IsDNS1123Subdomain(valid), IsEmpty()) << valid;
    EXPECT_TRUE(IsDNS1123SubdomainValid(valid)) << valid;
  }
  for (const char* invalid : {"", "A", "-a", "a-", "a..b", ".a", "a.", "a_b", "a b", "a.-b"}) {
    EXPECT_THAT(IsDNS1123Subdomain(invalid), ElementsAre(kSubdomainMsg)) << invalid;
    EXPECT_FALSE(IsDNS1123SubdomainValid(invalid)) << invalid;
  }
  EXPECT_THAT(IsDNS1123Subdomain(std::string(253, 'a')), IsEmpty());
  EXPECT_THAT(IsDNS1123Subdomain(std::string(254, 'a')),
              ElementsAre("must be no more than 253 characters"));
  EXPECT_FALSE(IsDNS1123SubdomainValid(std::string(254, 'a')));
}

TEST(NameFormats, DNS1123Label) {
  for (const char* valid : {"a", "my-name", "123-abc", "0"}) {
    EXPECT_THAT(IsDNS1123Label(valid), IsEmpty()) << valid;
    EXPECT_TRUE(IsDNS1123LabelValid(valid)) << valid;
  }
  EXPECT_THAT(IsDNS1123Label("a.b"), ElementsAre("must not contain dots"));
  EXPECT_THAT(IsDNS1123Label("Bad"), ElementsAre(kLabelMsg));
  EXPECT_THAT(IsDNS1123Label(""), ElementsAre(kLabelMsg));
  EXPECT_THAT(IsDNS1123Label(std::string(63, 'a')), IsEmpty());
  EXPECT_THAT(IsDNS1123Label(std::string(64, 'a')),
              ElementsAre("must be no more than 63 characters"));
  EXPECT_FALSE(IsDNS1123LabelValid(std::string(64, 'a')));
}

TEST(NameFormats, QualifiedName) {
  for (const char* valid : {"a", "MyName", "my.name", "123-abc", "a_b", "example.com/MyName",
                            "k8s.io/app", "a/b"}) {
    EXPECT_THAT(IsQualifiedName(valid), IsEmpty()) << valid;
    EXPECT_TRUE(IsQualifiedNameValid(valid)) << valid;
  }
  for (const char* invalid : {"", "-a", "a-", "a b", "/a", "a/", "Example.com/a", "a/b/c",
                              "_a", "a$"}) {
    EXPECT_THAT(IsQualifiedName(invalid), ::testing::Not(IsEmpty())) << invalid;
    EXPECT_FALSE(IsQualifiedNameValid(invalid)) << invalid;
  }
  EXPECT_THAT(IsQualifiedName("a$"), ElementsAre(kQualifiedNameMsg));
  EXPECT_THAT(IsQualifiedName("/a"), ElementsAre("prefix part must be non-empty"));
  EXPECT_THAT(IsQualifiedName("a/"), ElementsAre("name part must be non-empty", kQualifiedNameMsg));
  EXPECT_THAT(IsQualifiedName("A_/b"),
              ElementsAre(std::string("prefix part ") + kSubdomainMsg));
  EXPECT_THAT(IsQualifiedName("a/b/c"),
              ElementsAre("a qualified name must consist of alphanumeric characters, '-', '_' "
                          "or '.', and must start and end with an alphanumeric character (e.g. "
                          "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                          "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
                          "subdomain prefix and '/' (e.g. 'example.com/MyName')"));
  EXPECT_THAT(IsQualifiedName(std::string(63, 'a')), IsEmpty());
  EXPECT_THAT(IsQualifiedName(std::string(64, 'a')),
              ElementsAre("name part must be no more than 63 characters"));
  EXPECT_THAT(IsQualifiedName(std::string(253, 'a') + "/" + std::string(63, 'b')), IsEmpty());
  EXPECT_THAT(IsQualifiedName(std::string(254, 'a') + "/b"),
              ElementsAre("prefix part must be no more than 253 characters"));
}

TEST(NameFormats, LabelValue) {
  for (const char* valid : {"", "a", "MyValue", "my_value", "12345", "a.b-c_d"}) {
    EXPECT_THAT(IsValidLabelValue(valid), IsEmpty()) << valid;
    EXPECT_TRUE(IsLabelValueValid(valid)) << valid;
  }
  EXPECT_THAT(IsValidLabelValue("-a"),
              ElementsAre("a valid label must be an empty string or consist of alphanumeric "
                          "characters, '-', '_' or '.', and must start and end with an "
                          "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
                          "regex used for validation is "
                          "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
  EXPECT_FALSE(IsLabelValueValid("a/b"));
  EXPECT_THAT(IsValidLabelValue(std::string(63, 'v')), IsEmpty());
  EXPECT_THAT(IsValidLabelValue(std::string(64, 'v')),
              ElementsAre("must be no more than 63 characters"));
}

TEST(FormatFieldError, KubernetesText) {
  EXPECT_EQ(FormatFieldError(Invalid("metadata.name", "Bad_Name", kSubdomainMsg)),
            std::string("metadata.name: Invalid value: \"Bad_Name\": ") + kSubdomainMsg);
  EXPECT_EQ(FormatFieldError(Required("metadata.name", "name or generateName is required")),
            "metadata.name: Required value: name or generateName is required");
  EXPECT_EQ(FormatFieldError(Required("metadata.namespace", "")),
            "metadata.namespace: Required value");
  EXPECT_EQ(FormatFieldError(Forbidden("metadata.namespace", "not allowed on this type")),
            "metadata.namespace: Forbidden: not allowed on this type");
  EXPECT_EQ(FormatFieldError(TooLong("metadata.annotations", 262144)),
            "metadata.annotations: Too long: must have at most 262144 bytes");
  EXPECT_EQ(FormatFieldError(NotSupported("spec.restartPolicy", "Sometimes",
                                          {"Always", "OnFailure", "Never"})),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: "
            "\"Always\", \"OnFailure\", \"Never\"");
  EXPECT_EQ(FormatFieldError(Duplicate("spec.containers[1].name", "app")),
            "spec.containers[1].name: Duplicate value: \"app\"");
  EXPECT_EQ(FormatFieldError(Invalid("f", "a\"b\\c\n", "x")),
            "f: Invalid value: \"a\\\"b\\\\c\\n\": x");
  EXPECT_EQ(Invalid("f", "v", "d").type, "FieldValueInvalid");
  EXPECT_EQ(Required("f", "d").type, "FieldValueRequired");
  EXPECT_EQ(NotSupported("f", "v", {}).type, "FieldValueNotSupported");
  EXPECT_EQ(Duplicate("f", "v").type, "FieldValueDuplicate");
  EXPECT_EQ(TooLong("f", 1).type, "FieldValueTooLong");
  EXPECT_EQ(Forbidden("f", "d").type, "FieldValueForbidden");
  EXPECT_EQ(FormatFieldErrors({Required("a", ""), Forbidden("b", "no")}),
            "a: Required value, b: Forbidden: no");
}

TEST(ValidateObjectMeta, ValidObject) {
  auto meta = ValidMeta();
  (*meta.mutable_labels())["app"] = "web";
  (*meta.mutable_labels())["example.com/tier"] = "";
  (*meta.mutable_annotations())["Example.com/Note"] = "anything at all: {\"json\": true}";
  meta.add_finalizers("example.com/cleanup");
  meta.add_finalizers("kubernetes");
  meta.add_finalizers("foregroundDeletion");
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());
}

TEST(ValidateObjectMeta, Names) {
  struct Case {
    const char* name;
    bool dns_label;
    std::vector<std::string> want;
  };
  const Case cases[] = {
      {"web-1", false, {}},
      {"web.example", false, {}},
      {"web.example",
       true,
       {"metadata.name: Invalid value: \"web.example\": must not contain dots"}},
      {"Bad_Name", false, {std::string("metadata.name: Invalid value: \"Bad_Name\": ") +
                           kSubdomainMsg}},
      {"Bad", true, {std::string("metadata.name: Invalid value: \"Bad\": ") + kLabelMsg}},
      {"", false, {"metadata.name: Required value: name or generateName is required"}},
  };
  for (const Case& c : cases) {
    auto meta = ValidMeta();
    meta.set_name(c.name);
    EXPECT_EQ(Formatted(ValidateMeta(meta, true, c.dns_label)), c.want) << c.name;
  }
  auto meta = ValidMeta();
  meta.set_name(std::string(254, 'a'));
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.name: Invalid value: \"" + std::string(254, 'a') +
                          "\": must be no more than 253 characters"));
  auto errs = ValidateMeta(meta);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].type, kFieldValueInvalid);
  EXPECT_EQ(errs[0].field, "metadata.name");
  EXPECT_EQ(errs[0].bad_value, std::string(254, 'a'));
}

TEST(ValidateObjectMeta, GenerateName) {
  struct Case {
    const char* generate_name;
    bool dns_label;
    bool valid;
  };
  const Case cases[] = {
      {"web-", false, true},   // the trailing dash is followed by random characters
      {"web", false, true},
      {"w-", true, true},
      {"-", false, false},     // a lone dash is not masked (Kubernetes needs len > 1)
      {"web--", false, true},
      {"Web-", false, false},
      {"web.-", false, true},  // masked to "web.a"
      {"a.b-", true, false},
  };
  for (const Case& c : cases) {
    auto meta = ValidMeta();
    meta.clear_name();
    meta.set_generate_name(c.generate_name);
    FieldErrors errs = ValidateMeta(meta, true, c.dns_label);
    EXPECT_EQ(errs.empty(), c.valid) << c.generate_name << ": " << FormatFieldErrors(errs);
    for (const FieldError& e : errs) EXPECT_EQ(e.field, "metadata.generateName");
  }
  // Both set: each validated on its own.
  auto meta = ValidMeta();
  meta.set_generate_name("Bad-");
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre(std::string("metadata.generateName: Invalid value: \"Bad-\": ") +
                          kSubdomainMsg));
}

TEST(ValidateObjectMeta, Namespace) {
  auto meta = ValidMeta();
  meta.clear_namespace_();
  EXPECT_THAT(Formatted(ValidateMeta(meta, true)),
              ElementsAre("metadata.namespace: Required value"));
  EXPECT_THAT(ValidateMeta(meta, false), IsEmpty());

  meta.set_namespace_("default");
  EXPECT_THAT(Formatted(ValidateMeta(meta, false)),
              ElementsAre("metadata.namespace: Forbidden: not allowed on this type"));

  meta.set_namespace_("kube.system");
  EXPECT_THAT(Formatted(ValidateMeta(meta, true)),
              ElementsAre("metadata.namespace: Invalid value: \"kube.system\": must not contain "
                          "dots"));
}

TEST(ValidateObjectMeta, Labels) {
  auto meta = ValidMeta();
  (*meta.mutable_labels())["bad key"] = "ok";
  (*meta.mutable_labels())["good"] = "-bad";
  FieldErrors errs = ValidateMeta(meta);
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_EQ(errs[0].field, "metadata.labels");
  EXPECT_EQ(errs[0].bad_value, "bad key");
  EXPECT_EQ(errs[1].field, "metadata.labels");
  EXPECT_EQ(errs[1].bad_value, "-bad");
}

TEST(ValidateObjectMeta, AnnotationSizeBoundary) {
  // Key "k" (1 byte) + value: 262144 bytes in total is allowed, one more is not.
  auto meta = ValidMeta();
  (*meta.mutable_annotations())["k"] = std::string(262143, 'v');
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());

  (*meta.mutable_annotations())["k"] = std::string(262144, 'v');
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.annotations: Too long: must have at most 262144 bytes"));
  FieldErrors errs = ValidateMeta(meta);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].type, "FieldValueTooLong");

  // Keys count too, summed over all entries.
  auto split = ValidMeta();
  (*split.mutable_annotations())["a"] = std::string(131071, 'v');
  (*split.mutable_annotations())["b"] = std::string(131071, 'v');
  EXPECT_THAT(ValidateMeta(split), IsEmpty());
  (*split.mutable_annotations())["bb"] = "";
  EXPECT_THAT(ValidateMeta(split), ::testing::SizeIs(1));
}

TEST(ValidateObjectMeta, AnnotationKeys) {
  auto meta = ValidMeta();
  (*meta.mutable_annotations())["Example.COM/Key"] = "";  // case does not matter
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());
  (*meta.mutable_annotations())["a/b/c"] = "";
  FieldErrors errs = ValidateMeta(meta);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].field, "metadata.annotations");
  EXPECT_EQ(errs[0].bad_value, "a/b/c");
}

TEST(ValidateObjectMeta, OwnerReferences) {
  auto meta = ValidMeta();
  auto* ref = meta.add_owner_references();
  ref->set_api_version("apps/v1");
  ref->set_kind("ReplicaSet");
  ref->set_name("web-abc");
  ref->set_uid("1234");
  ref->set_controller(true);
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());

  auto* second = meta.add_owner_references();
  *second = *ref;
  second->set_name("web-def");
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.ownerReferences: Invalid value: \"ReplicaSet/web-def\": Only "
                          "one reference can have Controller set to true. Found \"true\" in "
                          "references for ReplicaSet/web-abc and ReplicaSet/web-def"));
  second->set_controller(false);
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());

  auto* empty = meta.add_owner_references();
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.ownerReferences.apiVersion: Invalid value: \"\": version must "
                          "not be empty",
                          "metadata.ownerReferences.kind: Invalid value: \"\": kind must not be "
                          "empty",
                          "metadata.ownerReferences.name: Invalid value: \"\": name must not be "
                          "empty",
                          "metadata.ownerReferences.uid: Invalid value: \"\": uid must not be "
                          "empty"));
  *empty = *second;
  empty->set_api_version("apps/");
  EXPECT_THAT(ValidateMeta(meta), ::testing::SizeIs(1));
  empty->set_api_version("v1");
  empty->set_kind("Event");
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.ownerReferences: Invalid value: \"Event/web-def\": /v1, "
                          "Kind=Event is disallowed from being an owner"));
}

TEST(ValidateObjectMeta, Finalizers) {
  auto meta = ValidMeta();
  meta.add_finalizers("example.com/x");
  meta.add_finalizers("orphan");
  EXPECT_THAT(ValidateMeta(meta), IsEmpty());
  meta.add_finalizers("foregroundDeletion");
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.finalizers: Invalid value: "
                          "\"example.com/x,orphan,foregroundDeletion\": finalizer orphan and "
                          "foregroundDeletion cannot be both set"));

  auto custom = ValidMeta();
  custom.add_finalizers("cleanup");
  EXPECT_THAT(Formatted(ValidateMeta(custom)),
              ElementsAre("metadata.finalizers: Invalid value: \"cleanup\": name is neither a "
                          "standard finalizer name nor is it fully qualified"));
  auto bad = ValidMeta();
  bad.add_finalizers("a/b/c");
  EXPECT_THAT(ValidateMeta(bad), ::testing::SizeIs(1));
}

TEST(ValidateObjectMeta, Generation) {
  auto meta = ValidMeta();
  meta.set_generation(-1);
  EXPECT_THAT(Formatted(ValidateMeta(meta)),
              ElementsAre("metadata.generation: Invalid value: \"-1\": must be greater than or "
                          "equal to 0"));
}

TEST(ValidateLabelSelector, Table) {
  capstan::meta::v1::LabelSelector selector;
  (*selector.mutable_match_labels())["app"] = "web";
  auto* in = selector.add_match_expressions();
  in->set_key("tier");
  in->set_operator_("In");
  in->add_values("web");
  auto* exists = selector.add_match_expressions();
  exists->set_key("gpu");
  exists->set_operator_("Exists");
  FieldErrors errs;
  ValidateLabelSelector(selector, "spec.selector", &errs);
  EXPECT_THAT(errs, IsEmpty());

  in->clear_values();
  exists->add_values("x");
  auto* bad_op = selector.add_match_expressions();
  bad_op->set_key("Bad Key");
  bad_op->set_operator_("Gt");
  bad_op->add_values("-1");
  (*selector.mutable_match_labels())["app"] = "-web";
  errs.clear();
  ValidateLabelSelector(selector, "spec.selector", &errs);
  std::vector<std::string> fields;
  for (const auto& e : errs) fields.push_back(e.type + " " + e.field);
  EXPECT_THAT(fields, ElementsAre("FieldValueInvalid spec.selector.matchLabels",
                                  "FieldValueRequired spec.selector.matchExpressions[0].values",
                                  "FieldValueForbidden spec.selector.matchExpressions[1].values",
                                  "FieldValueInvalid spec.selector.matchExpressions[2].operator",
                                  "FieldValueInvalid spec.selector.matchExpressions[2].key",
                                  "FieldValueInvalid spec.selector.matchExpressions[2].values[0]"));
  EXPECT_EQ(FormatFieldError(errs[1]),
            "spec.selector.matchExpressions[0].values: Required value: must be specified when "
            "`operator` is 'In' or 'NotIn'");
  EXPECT_EQ(FormatFieldError(errs[3]),
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Gt\": not a valid "
            "selector operator");
}

}  // namespace
}  // namespace capstan::api
