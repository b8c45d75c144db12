#include "tools/capstanctl/apply.h"

#include "gtest/gtest.h"

namespace capstan::capstanctl {
namespace {

using nlohmann::json;

struct Case {
  const char* name;
  const char* original;  // last applied ("null" when none)
  const char* modified;  // the new manifest
  const char* current;   // the live object
  const char* patch;     // expected
};

const Case kCases[] = {
    {"identical", R"({"a":1})", R"({"a":1})", R"({"a":1})", R"({})"},
    {"changed scalar", R"({"a":1})", R"({"a":2})", R"({"a":1})", R"({"a":2})"},
    {"added field", R"({"a":1})", R"({"a":1,"b":2})", R"({"a":1})", R"({"b":2})"},
    {"dropped field deleted", R"({"a":1,"b":2})", R"({"a":1})", R"({"a":1,"b":2})",
     R"({"b":null})"},
    {"dropped field already gone", R"({"a":1,"b":2})", R"({"a":1})", R"({"a":1})", R"({})"},
    {"others' fields kept", R"({"a":1})", R"({"a":1})", R"({"a":1,"status":{"x":1}})", R"({})"},
    {"no last applied deletes nothing", "null", R"({"a":1})", R"({"a":1,"b":2})", R"({})"},
    {"nested deletion", R"({"spec":{"x":1,"y":2}})", R"({"spec":{"x":1}})",
     R"({"spec":{"x":1,"y":2,"z":3}})", R"({"spec":{"y":null}})"},
    {"nested change keeps siblings", R"({"spec":{"x":1}})", R"({"spec":{"x":2}})",
     R"({"spec":{"x":1,"z":3}})", R"({"spec":{"x":2}})"},
    {"whole object dropped", R"({"m":{"labels":{"a":"b"}}})", R"({"m":{}})",
     R"({"m":{"labels":{"a":"b"}}})", R"({"m":{"labels":null}})"},
    {"arrays replaced whole", R"({"l":[1,2,3]})", R"({"l":[1,2]})", R"({"l":[1,2,3]})",
     R"({"l":[1,2]})"},
    {"array elements not merged", R"({"c":[{"n":"a","i":"x"}]})", R"({"c":[{"n":"a","i":"y"}]})",
     R"({"c":[{"n":"a","i":"x","p":"IfNotPresent"}]})", R"({"c":[{"n":"a","i":"y"}]})"},
    {"live edit reverted", R"({"r":3})", R"({"r":3})", R"({"r":5})", R"({"r":3})"},
    {"object replaces scalar", R"({"a":1})", R"({"a":{"b":1}})", R"({"a":1})", R"({"a":{"b":1}})"},
    {"explicit null deletes", "null", R"({"a":null})", R"({"a":1})", R"({"a":null})"},
    {"explicit null of nothing", "null", R"({"a":null})", R"({})", R"({})"},
    {"invalid last applied", R"("garbage")", R"({"a":1})", R"({"a":1,"b":2})", R"({})"},
};

class ThreeWayTest : public ::testing::TestWithParam<Case> {};

TEST_P(ThreeWayTest, Patch) {
  const Case& c = GetParam();
  json patch = ThreeWayMergePatch(json::parse(c.original), json::parse(c.modified),
                                  json::parse(c.current));
  EXPECT_EQ(patch, json::parse(c.patch)) << c.name << ": " << patch.dump();
  // Applying the patch makes the live object agree with the manifest on every field it names.
  json result = json::parse(c.current);
  result.merge_patch(patch);
  json modified = json::parse(c.modified);
  for (auto it = modified.begin(); it != modified.end(); ++it) {
    if (it->is_null()) {
      EXPECT_FALSE(result.contains(it.key())) << c.name;
    } else if (!it->is_object()) {
      EXPECT_EQ(result[it.key()], *it) << c.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ThreeWayTest, ::testing::ValuesIn(kCases));

TEST(LastAppliedTest, AnnotationExcludesItself) {
  json manifest = json::parse(R"({"kind":"Pod","metadata":{"name":"p","annotations":{"k":"v"}}})");
  json with = WithLastApplied(manifest);
  EXPECT_EQ(with["metadata"]["annotations"]["k"], "v");
  std::string value = with["metadata"]["annotations"][kLastAppliedAnnotation];
  EXPECT_EQ(value, R"({"kind":"Pod","metadata":{"annotations":{"k":"v"},"name":"p"}})");
  // Applying an object that already carries an annotation (from get -o yaml) does not nest it.
  EXPECT_EQ(LastAppliedConfiguration(with), value);
  EXPECT_EQ(LastAppliedOf(with), manifest);
}

TEST(LastAppliedTest, OnlyOurAnnotationLeavesNoAnnotations) {
  json manifest = json::parse(R"({"metadata":{"name":"p"}})");
  EXPECT_EQ(LastAppliedConfiguration(WithLastApplied(manifest)), R"({"metadata":{"name":"p"}})");
  EXPECT_TRUE(LastAppliedOf(manifest).is_null());
}

TEST(LastAppliedTest, OnlyLastAppliedChanges) {
  EXPECT_TRUE(OnlyLastAppliedChanges(json::object()));
  EXPECT_TRUE(OnlyLastAppliedChanges(
      json::parse(R"({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}}})")));
  EXPECT_FALSE(OnlyLastAppliedChanges(json::parse(
      R"({"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}","x":"y"}}})")));
  EXPECT_FALSE(OnlyLastAppliedChanges(json::parse(R"({"spec":{"replicas":2}})")));
}

}  // namespace
}  // namespace capstan::capstanctl
