#include "lib/api/taints.h"

#include "gtest/gtest.h"

namespace capstan::api {
namespace {

using capstan::core::v1::Taint;
using capstan::core::v1::Toleration;

Taint MakeTaint(const std::string& key, const std::string& value, const std::string& effect) {
  Taint t;
  t.set_key(key);
  t.set_value(value);
  t.set_effect(effect);
  return t;
}

Toleration MakeToleration(const std::string& key, const std::string& op, const std::string& value,
                          const std::string& effect) {
  Toleration t;
  t.set_key(key);
  t.set_operator_(op);
  t.set_value(value);
  t.set_effect(effect);
  return t;
}

TEST(TaintsTest, ToleratesTaintTable) {
  const Taint taint = MakeTaint("dedicated", "gpu", kTaintEffectNoExecute);
  struct Case {
    const char* name;
    Toleration toleration;
    bool tolerates;
  };
  const Case cases[] = {
      {"equal, same value", MakeToleration("dedicated", "Equal", "gpu", "NoExecute"), true},
      {"empty operator means Equal", MakeToleration("dedicated", "", "gpu", "NoExecute"), true},
      {"equal, other value", MakeToleration("dedicated", "Equal", "cpu", "NoExecute"), false},
      {"exists ignores the value", MakeToleration("dedicated", "Exists", "", "NoExecute"), true},
      {"empty effect matches all", MakeToleration("dedicated", "Exists", "", ""), true},
      {"other effect", MakeToleration("dedicated", "Exists", "", "NoSchedule"), false},
      {"other key", MakeToleration("zone", "Exists", "", "NoExecute"), false},
      {"empty key + Exists tolerates everything", MakeToleration("", "Exists", "", ""), true},
      {"unknown operator", MakeToleration("dedicated", "Gt", "gpu", "NoExecute"), false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ToleratesTaint(c.toleration, taint), c.tolerates) << c.name;
  }
}

TEST(TaintsTest, FirstTolerationOfPicksTheFirstMatch) {
  google::protobuf::RepeatedPtrField<Toleration> tolerations;
  *tolerations.Add() = MakeToleration("zone", "Exists", "", "");
  Toleration timed = MakeToleration(kTaintNodeUnreachable, "Exists", "", "NoExecute");
  timed.set_toleration_seconds(300);
  *tolerations.Add() = timed;
  *tolerations.Add() = MakeToleration("", "Exists", "", "");
  const Taint unreachable = MakeTaint(kTaintNodeUnreachable, "", kTaintEffectNoExecute);
  const Toleration* first = FirstTolerationOf(tolerations, unreachable);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->toleration_seconds(), 300);
  EXPECT_TRUE(TolerationsTolerateTaint(tolerations, unreachable));
  google::protobuf::RepeatedPtrField<Toleration> none;
  EXPECT_EQ(FirstTolerationOf(none, unreachable), nullptr);
}

TEST(TaintsTest, MatchTaintComparesKeyAndEffectOnly) {
  Taint a = MakeTaint("k", "v1", kTaintEffectNoExecute);
  Taint b = MakeTaint("k", "v2", kTaintEffectNoExecute);
  b.mutable_time_added()->set_seconds(5);
  EXPECT_TRUE(MatchTaint(a, b));
  EXPECT_FALSE(MatchTaint(a, MakeTaint("k", "v1", kTaintEffectNoSchedule)));
  EXPECT_FALSE(MatchTaint(a, MakeTaint("other", "v1", kTaintEffectNoExecute)));
}

}  // namespace
}  // namespace capstan::api
