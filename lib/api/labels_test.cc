#include "lib/api/labels.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <new>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

// Counts heap allocations so the tests can hold Matches to its no-allocation promise.
static std::atomic<long> g_allocations{0};
void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

namespace capstan::api {
namespace {

using ::testing::HasSubstr;
using Labels = std::map<std::string, std::string>;

LabelSelector MustParse(std::string_view text) {
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
  EXPECT_TRUE(selector.ok()) << text << ": " << selector.status();
  return selector.ok() ? *selector : LabelSelector();
}

TEST(ParseInt64, LikeGoStrconv) {
  EXPECT_EQ(ParseInt64("0"), 0);
  EXPECT_EQ(ParseInt64("42"), 42);
  EXPECT_EQ(ParseInt64("-42"), -42);
  EXPECT_EQ(ParseInt64("+7"), 7);
  EXPECT_EQ(ParseInt64("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(ParseInt64("-9223372036854775808"), INT64_MIN);
  EXPECT_EQ(ParseInt64("9223372036854775808"), std::nullopt);
  EXPECT_EQ(ParseInt64("-9223372036854775809"), std::nullopt);
  EXPECT_EQ(ParseInt64(""), std::nullopt);
  EXPECT_EQ(ParseInt64("-"), std::nullopt);
  EXPECT_EQ(ParseInt64("1.5"), std::nullopt);
  EXPECT_EQ(ParseInt64(" 1"), std::nullopt);
}

TEST(LabelSelectorParse, ValidStringsAndCanonicalForm) {
  struct Case {
    const char* text;
    const char* canonical;
  };
  const Case cases[] = {
      {"", ""},
      {"   ", ""},
      {"app=nginx", "app=nginx"},
      {"app==nginx", "app==nginx"},
      {"app = nginx", "app=nginx"},
      {"env!=prod", "env!=prod"},
      {"version", "version"},
      {"!canary", "!canary"},
      {"tier in (web, api)", "tier in (api,web)"},
      {"tier in (web,api,web)", "tier in (api,web)"},
      {"gpu notin (a)", "gpu notin (a)"},
      {"x>3", "x>3"},
      {"x<5", "x<5"},
      {"x > 0", "x>0"},
      {"app=nginx,tier in (web, api),!canary,env!=prod,version,gpu notin (a)",
       "app=nginx,!canary,env!=prod,gpu notin (a),tier in (api,web),version"},
      {"example.com/app=x", "example.com/app=x"},
      {"a=", "a="},
      {"a!=", "a!="},
      {"a in ()", "a in ()"},
      {"a in (,b)", "a in (,b)"},
      {"a in (b,)", "a in (,b)"},
      {"a in (b,,c)", "a in (,b,c)"},
      {"in in (in, notin)", "in in (in,notin)"},  // keywords are identifiers in key/value places
      {"b=1,a=2,b=1", "a=2,b=1"},
      {"\tapp=web\n", "app=web"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(c.text);
    ASSERT_TRUE(selector.ok()) << c.text << ": " << selector.status();
    EXPECT_EQ(selector->String(), c.canonical) << c.text;
    absl::StatusOr<LabelSelector> reparsed = LabelSelector::Parse(selector->String());
    ASSERT_TRUE(reparsed.ok()) << selector->String() << ": " << reparsed.status();
    EXPECT_EQ(*reparsed, *selector) << c.text;
    EXPECT_EQ(reparsed->String(), c.canonical);
  }
  EXPECT_TRUE(MustParse("").Empty());
  EXPECT_FALSE(MustParse("a").Empty());
}

TEST(LabelSelectorParse, Errors) {
  struct Case {
    const char* text;
    const char* want;  // exact message
  };
  const Case cases[] = {
      {"a=b,", "found '', expected: identifier after ',' (at position 4)"},
      {",a", "found ',', expected: !, identifier, or 'end of string' (at position 0)"},
      {"=a", "found '=', expected: !, identifier, or 'end of string' (at position 0)"},
      {"a=b c", "found 'c', expected: ',' or 'end of string' (at position 4)"},
      {"a=b,,c", "found ',', expected: identifier after ',' (at position 4)"},
      {"!", "unable to parse requirement: found '', expected: identifier (at position 1)"},
      {"!=a", "found '!=', expected: !, identifier, or 'end of string' (at position 0)"},
      {"!a=b", "found '=', expected: ',' or 'end of string' (at position 2)"},
      {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt "
              "(at position 2)"},
      {"a (", "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt "
              "(at position 2)"},
      {"a in b", "unable to parse requirement: found 'b', expected: '(' (at position 5)"},
      {"a in (b", "unable to parse requirement: found '', expected: ',' or ')' (at position 7)"},
      {"a in (b c)",
       "unable to parse requirement: found 'c', expected: ',' or ')' (at position 8)"},
      {"a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier "
                   "(at position 6)"},
      {"a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier "
                     "(at position 8)"},
      {"a in (", "unable to parse requirement: found '', expected: ',', ')' or identifier "
                 "(at position 6)"},
      {"a=(", "unable to parse requirement: found '(', expected: identifier (at position 2)"},
      {"a===b", "unable to parse requirement: found '=', expected: identifier (at position 3)"},
      {"x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' "
              "operators, the value must be an integer"},
      {"x<", "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' "
             "operators, the value must be an integer"},
      {"a=-b", "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label "
               "must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
               "and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
               "'my_value',  or '12345', regex used for validation is "
               "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(c.text);
    ASSERT_FALSE(selector.ok()) << c.text << " parsed as " << selector->String();
    EXPECT_EQ(selector.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(selector.status().message(), c.want) << c.text;
  }
  // Bad keys are reported before the rest of the term is read, as Kubernetes does.
  for (const char* text : {"-a=b", "a/b/c", "Bad$", "example.com/=x", "a_=b"}) {
    absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(text);
    ASSERT_FALSE(selector.ok()) << text;
    EXPECT_THAT(selector.status().message(),
                HasSubstr("unable to parse requirement: key: Invalid value: "))
        << text;
  }
  // Values are label values in every operator, so negative bounds cannot be written.
  EXPECT_FALSE(LabelSelector::Parse("x > -3").ok());
  EXPECT_FALSE(LabelSelector::Parse(std::string(64, 'k') + "=v").ok());
  EXPECT_FALSE(LabelSelector::Parse("k=" + std::string(64, 'v')).ok());
  EXPECT_TRUE(LabelSelector::Parse("k=" + std::string(63, 'v')).ok());
}

TEST(LabelSelectorMatches, TruthTable) {
  struct Case {
    const char* selector;
    Labels labels;
    bool want;
  };
  const Case cases[] = {
      {"", {}, true},
      {"", {{"a", "b"}}, true},
      // =, ==, In
      {"a=b", {{"a", "b"}}, true},
      {"a=b", {{"a", "c"}}, false},
      {"a=b", {}, false},
      {"a==b", {{"a", "b"}}, true},
      {"a in (b,c)", {{"a", "c"}}, true},
      {"a in (b,c)", {{"a", "d"}}, false},
      {"a in (b,c)", {}, false},
      {"a=", {{"a", ""}}, true},
      {"a=", {}, false},
      // !=, NotIn: an absent key matches
      {"a!=b", {{"a", "b"}}, false},
      {"a!=b", {{"a", "c"}}, true},
      {"a!=b", {}, true},
      {"a notin (b,c)", {{"a", "b"}}, false},
      {"a notin (b,c)", {{"a", "d"}}, true},
      {"a notin (b,c)", {}, true},
      // Exists, DoesNotExist
      {"a", {{"a", ""}}, true},
      {"a", {{"b", "x"}}, false},
      {"!a", {{"a", "x"}}, false},
      {"!a", {{"b", "x"}}, true},
      // Gt, Lt: integers only; absent or non-integer values never match
      {"a>3", {{"a", "4"}}, true},
      {"a>3", {{"a", "3"}}, false},
      {"a>3", {{"a", "x"}}, false},
      {"a>3", {}, false},
      {"a<5", {{"a", "4"}}, true},
      {"a<5", {{"a", "5"}}, false},
      {"a<5", {{"a", "-9"}}, true},
      {"a>0", {{"a", "-1"}}, false},
      {"a>3", {{"a", "10"}}, true},  // numeric, not lexical
      // conjunction
      {"a=b,c", {{"a", "b"}, {"c", ""}}, true},
      {"a=b,c", {{"a", "b"}}, false},
      {"a=b,!c,d notin (x)", {{"a", "b"}, {"d", "y"}}, true},
      {"a in (x),a in (y)", {{"a", "x"}}, false},
  };
  for (const Case& c : cases) {
    LabelSelector selector = MustParse(c.selector);
    EXPECT_EQ(selector.Matches(c.labels), c.want) << c.selector;
    google::protobuf::Map<std::string, std::string> proto_labels(c.labels.begin(),
                                                                 c.labels.end());
    EXPECT_EQ(selector.Matches(proto_labels), c.want) << c.selector;
    absl::flat_hash_map<std::string, std::string> hashed(c.labels.begin(), c.labels.end());
    EXPECT_EQ(selector.Matches(hashed), c.want) << c.selector;
  }
}

TEST(LabelSelectorMatches, ManyValuesUseBinarySearch) {
  std::string text = "a in (";
  for (int i = 0; i < 40; ++i) text += (i ? "," : "") + std::to_string(i * 2);
  text += ")";
  LabelSelector selector = MustParse(text);
  for (int i = 0; i < 80; ++i) {
    EXPECT_EQ(selector.Matches(Labels{{"a", std::to_string(i)}}), i % 2 == 0) << i;
  }
}

TEST(LabelSelectorMatches, DoesNotAllocate) {
  LabelSelector selector =
      MustParse("app=web,tier in (a,b,c),!canary,env!=prod,gpu,x notin (y),n>3,m<100");
  google::protobuf::Map<std::string, std::string> labels;
  labels["app"] = "web";
  labels["tier"] = "b";
  labels["gpu"] = "";
  labels["n"] = "4";
  labels["m"] = "99";
  labels["some-long-label-key-that-is-not-in-sso"] = "a-long-value-that-is-also-not-in-sso";
  Labels std_labels(labels.begin(), labels.end());
  long before = g_allocations.load();
  bool matched = selector.Matches(labels) && selector.Matches(std_labels);
  long after = g_allocations.load();
  EXPECT_TRUE(matched);
  EXPECT_EQ(after - before, 0);
  // The counter itself works.
  delete new std::string(64, 'x');
  EXPECT_GT(g_allocations.load(), after);
}

TEST(LabelSelectorFromProto, Table) {
  capstan::meta::v1::LabelSelector proto;
  absl::StatusOr<LabelSelector> empty = LabelSelector::FromProto(proto);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->Empty());
  EXPECT_TRUE(empty->Matches(Labels{{"anything", "at-all"}}));

  (*proto.mutable_match_labels())["app"] = "web";
  (*proto.mutable_match_labels())["tier"] = "front";
  auto* in = proto.add_match_expressions();
  in->set_key("env");
  in->set_operator_("In");
  in->add_values("prod");
  in->add_values("staging");
  auto* not_in = proto.add_match_expressions();
  not_in->set_key("track");
  not_in->set_operator_("NotIn");
  not_in->add_values("canary");
  auto* exists = proto.add_match_expressions();
  exists->set_key("gpu");
  exists->set_operator_("Exists");
  auto* absent = proto.add_match_expressions();
  absent->set_key("legacy");
  absent->set_operator_("DoesNotExist");

  absl::StatusOr<LabelSelector> selector = LabelSelector::FromProto(proto);
  ASSERT_TRUE(selector.ok()) << selector.status();
  EXPECT_EQ(selector->String(),
            "app=web,env in (prod,staging),gpu,!legacy,tier=front,track notin (canary)");
  EXPECT_EQ(*selector, MustParse(selector->String()));
  EXPECT_TRUE(selector->Matches(
      Labels{{"app", "web"}, {"tier", "front"}, {"env", "prod"}, {"gpu", "1"}}));
  EXPECT_FALSE(selector->Matches(
      Labels{{"app", "web"}, {"tier", "front"}, {"env", "dev"}, {"gpu", "1"}}));
  EXPECT_FALSE(selector->Matches(Labels{
      {"app", "web"}, {"tier", "front"}, {"env", "prod"}, {"gpu", "1"}, {"legacy", ""}}));
  EXPECT_FALSE(selector->Matches(Labels{
      {"app", "web"}, {"tier", "front"}, {"env", "prod"}, {"gpu", "1"}, {"track", "canary"}}));
  EXPECT_EQ(selector->RequiredValue("app"), "web");
  EXPECT_EQ(selector->RequiredValue("env"), std::nullopt);

  struct BadCase {
    const char* op;
    std::vector<std::string> values;
    const char* key;
    const char* want;
  };
  const BadCase bad[] = {
      {"Gt", {"1"}, "k", "\"Gt\" is not a valid label selector operator"},
      {"in", {"1"}, "k", "\"in\" is not a valid label selector operator"},
      {"In", {}, "k", "values: Invalid value: []: for 'in', 'notin' operators, values set can't "
                      "be empty"},
      {"NotIn", {}, "k", "values: Invalid value: []: for 'in', 'notin' operators, values set "
                         "can't be empty"},
      {"Exists", {"x"}, "k", "values: Invalid value: values set must be empty for exists and "
                             "does not exist"},
      {"DoesNotExist", {"x"}, "k", "values: Invalid value: values set must be empty for exists "
                                   "and does not exist"},
      {"In", {"ok"}, "bad key", nullptr},
      {"In", {"-bad"}, "k", nullptr},
  };
  for (const BadCase& c : bad) {
    capstan::meta::v1::LabelSelector p;
    auto* e = p.add_match_expressions();
    e->set_key(c.key);
    e->set_operator_(c.op);
    for (const auto& v : c.values) e->add_values(v);
    absl::StatusOr<LabelSelector> s = LabelSelector::FromProto(p);
    ASSERT_FALSE(s.ok()) << c.op;
    if (c.want != nullptr) {
      EXPECT_EQ(s.status().message(), c.want);
    }
  }
  capstan::meta::v1::LabelSelector bad_label;
  (*bad_label.mutable_match_labels())["app"] = "not valid";
  EXPECT_FALSE(LabelSelector::FromProto(bad_label).ok());
}

TEST(LabelSelector, RequiredValue) {
  EXPECT_EQ(MustParse("app=web,tier!=x").RequiredValue("app"), "web");
  EXPECT_EQ(MustParse("app==web").RequiredValue("app"), "web");
  EXPECT_EQ(MustParse("app in (web)").RequiredValue("app"), "web");
  EXPECT_EQ(MustParse("app in (web,api)").RequiredValue("app"), std::nullopt);
  EXPECT_EQ(MustParse("app!=web").RequiredValue("app"), std::nullopt);
  EXPECT_EQ(MustParse("app").RequiredValue("app"), std::nullopt);
  EXPECT_EQ(MustParse("tier=x").RequiredValue("app"), std::nullopt);
  // Any pinning requirement suffices, even beside others on the same key.
  EXPECT_EQ(MustParse("app notin (x),app in (y,z),app=y").RequiredValue("app"), "y");
  EXPECT_EQ(MustParse("").RequiredValue("app"), std::nullopt);
}

TEST(LabelSelector, EqualityIsOrderInsensitive) {
  EXPECT_EQ(MustParse("a=1,b in (y,x)"), MustParse("b in (x,y), a=1"));
  EXPECT_NE(MustParse("a=1"), MustParse("a==1"));
  EXPECT_NE(MustParse("a=1"), MustParse("a=2"));
  EXPECT_EQ(LabelSelector(), MustParse(""));
}

}  // namespace
}  // namespace capstan::api
