#include "lib/api/fields.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace capstan::api {
namespace {

using Op = FieldSelector::Operator;

FieldSelector MustParse(std::string_view text) {
  absl::StatusOr<FieldSelector> selector = FieldSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << text << ": " << selector.status();
  return selector.ok() ? *selector : FieldSelector();
}

// An object's fields as the server would expose them; unknown fields have no value.
struct Object {
  std::map<std::string, std::string, std::less<>> fields;
  std::optional<std::string_view> operator()(std::string_view field) const {
    auto it = fields.find(field);
    if (it == fields.end()) return std::nullopt;
    return std::string_view(it->second);
  }
};

TEST(FieldSelectorParse, Valid) {
  FieldSelector selector = MustParse("metadata.name=x,spec.nodeName!=,status.phase==Running");
  ASSERT_EQ(selector.requirements().size(), 3u);
  EXPECT_EQ(selector.requirements()[0],
            (FieldSelector::Requirement{"metadata.name", Op::kEquals, "x"}));
  EXPECT_EQ(selector.requirements()[1],
            (FieldSelector::Requirement{"spec.nodeName", Op::kNotEquals, ""}));
  EXPECT_EQ(selector.requirements()[2],
            (FieldSelector::Requirement{"status.phase", Op::kEquals, "Running"}));
  EXPECT_EQ(selector.String(), "metadata.name=x,spec.nodeName!=,status.phase=Running");
  EXPECT_FALSE(selector.Empty());

  struct Case {
    const char* text;
    const char* canonical;
  };
  for (const Case& c : {Case{"", ""}, Case{",", ""}, Case{"a=b,,c=d", "a=b,c=d"},
                        Case{"b=1,a=2", "a=2,b=1"}, Case{"a==b", "a=b"},
                        Case{"a=b,a=b", "a=b"}, Case{"x!=y", "x!=y"},
                        Case{"a=x\\,y", "a=x\\,y"}, Case{"a=x\\=y", "a=x\\=y"},
                        Case{"a=x\\\\y", "a=x\\\\y"}, Case{"a= b ", "a= b "}}) {
    FieldSelector parsed = MustParse(c.text);
    EXPECT_EQ(parsed.String(), c.canonical) << c.text;
    EXPECT_EQ(MustParse(parsed.String()), parsed) << c.text;
  }
  EXPECT_TRUE(MustParse("").Empty());
}

TEST(FieldSelectorParse, Escapes) {
  FieldSelector selector = MustParse("a=x\\,y\\=z\\\\w,b=1");
  ASSERT_EQ(selector.requirements().size(), 2u);
  EXPECT_EQ(selector.requirements()[0].value, "x,y=z\\w");
  EXPECT_EQ(selector.requirements()[1].value, "1");
  EXPECT_EQ(EscapeFieldSelectorValue("x,y=z\\w"), "x\\,y\\=z\\\\w");
  EXPECT_EQ(*UnescapeFieldSelectorValue("x\\,y\\=z\\\\w"), "x,y=z\\w");
  EXPECT_EQ(*UnescapeFieldSelectorValue("plain"), "plain");
  // The field part is not unescaped: the first operator splits the term.
  FieldSelector odd = MustParse("a\\=b");
  ASSERT_EQ(odd.requirements().size(), 1u);
  EXPECT_EQ(odd.requirements()[0].field, "a\\");
  EXPECT_EQ(odd.requirements()[0].value, "b");
  // "b=c" as value has an unescaped '='.
  EXPECT_FALSE(FieldSelector::Parse("a==b=c").ok());
}

TEST(FieldSelectorParse, Errors) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {"a", "invalid selector: 'a'; can't understand 'a'"},
      {"a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"},
      {"a>1", "invalid selector: 'a>1'; can't understand 'a>1'"},
      {"a=b=c", "invalid field selector: unescaped character in value: '='"},
      {"a=\\x", "invalid field selector: invalid escape sequence: \\x"},
      {"a=x\\", "invalid field selector: invalid escape sequence: \\"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<FieldSelector> selector = FieldSelector::Parse(c.text);
    ASSERT_FALSE(selector.ok()) << c.text;
    EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(selector.status().message(), c.want) << c.text;
  }
}

TEST(FieldSelectorMatches, TruthTable) {
  Object pod{{{"metadata.name", "web-1"}, {"spec.nodeName", ""}, {"status.phase", "Running"}}};
  struct Case {
    const char* selector;
    bool want;
  };
  const Case cases[] = {
      {"", true},
      {"metadata.name=web-1", true},
      {"metadata.name==web-1", true},
      {"metadata.name=web-2", false},
      {"metadata.name!=web-2", true},
      {"metadata.name!=web-1", false},
      {"spec.nodeName=", true},
      {"spec.nodeName!=", false},
      {"status.phase=Running,metadata.name=web-1", true},
      {"status.phase=Running,metadata.name=web-2", false},
      // No value compares as "" (Kubernetes' fields.Set).
      {"spec.unknown=", true},
      {"spec.unknown!=x", true},
      {"spec.unknown=x", false},
  };
  for (const Case& c : cases) {
    FieldSelector selector = MustParse(c.selector);
    EXPECT_EQ(selector.Matches(pod), c.want) << c.selector;
    // The std::function form with owned strings works the same.
    std::function<std::optional<std::string>(std::string_view)> get =
        [&](std::string_view field) -> std::optional<std::string> {
      auto value = pod(field);
      if (!value) return std::nullopt;
      return std::string(*value);
    };
    EXPECT_EQ(selector.Matches(get), c.want) << c.selector;
  }
}

TEST(FieldSelectorMatches, StringViewGetterDoesNotNeedCopies) {
  // Values long enough to defeat the small-string optimisation: a copying getter would show.
  Object pod{{{"metadata.name", std::string(100, 'n')}}};
  FieldSelector selector = MustParse("metadata.name=" + std::string(100, 'n'));
  int calls = 0;
  auto get = [&](std::string_view field) -> std::optional<std::string_view> {
    ++calls;
    return pod(field);
  };
  EXPECT_TRUE(selector.Matches(get));
  EXPECT_EQ(calls, 1);
}

TEST(FieldSelector, Validate) {
  auto supported = [](std::string_view field) {
    return field == "metadata.name" || field == "metadata.namespace";
  };
  EXPECT_TRUE(MustParse("metadata.name=x,metadata.namespace!=y").Validate(supported).ok());
  EXPECT_TRUE(MustParse("").Validate(supported).ok());
  absl::Status status = MustParse("metadata.name=x,spec.foo=y").Validate(supported);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "field label not supported: spec.foo");
}

TEST(FieldSelector, RequiredValue) {
  FieldSelector selector = MustParse("metadata.name=x,spec.nodeName!=n1,status.phase==Running");
  EXPECT_EQ(selector.RequiredValue("metadata.name"), "x");
  EXPECT_EQ(selector.RequiredValue("status.phase"), "Running");
  EXPECT_EQ(selector.RequiredValue("spec.nodeName"), std::nullopt);
  EXPECT_EQ(selector.RequiredValue("metadata.namespace"), std::nullopt);
  EXPECT_EQ(MustParse("spec.nodeName=").RequiredValue("spec.nodeName"), "");
}

}  // namespace
}  // namespace capstan::api
