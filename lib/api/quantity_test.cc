#include "lib/api/quantity.h"

#include <string>

#include "gtest/gtest.h"

namespace capstan::api {
namespace {

struct MilliCase {
  std::string text;
  int64_t milli;
};

class ParseQuantityMilliTest : public testing::TestWithParam<MilliCase> {};

TEST_P(ParseQuantityMilliTest, ParsesToMilliUnits) {
  absl::StatusOr<int64_t> milli = ParseQuantityMilli(GetParam().text);
  ASSERT_TRUE(milli.ok()) << GetParam().text << ": " << milli.status();
  EXPECT_EQ(*milli, GetParam().milli) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Quantities, ParseQuantityMilliTest,
    testing::Values(MilliCase{"0", 0}, MilliCase{"1", 1000}, MilliCase{"250m", 250},
                    MilliCase{"0.5", 500}, MilliCase{".5", 500}, MilliCase{"5.", 5000},
                    MilliCase{"1.5", 1500}, MilliCase{"+2", 2000}, MilliCase{"-2", -2000},
                    MilliCase{"1k", 1000000}, MilliCase{"1M", 1000000000},
                    MilliCase{"1Ki", 1024000}, MilliCase{"1.5Ki", 1536000},
                    MilliCase{"1e3", 1000000}, MilliCase{"1E3", 1000000},
                    MilliCase{"1e-3", 1}, MilliCase{"1.5e+2", 150000},
                    MilliCase{"100u", 1},    // 0.1m rounds up to 1m
                    MilliCase{"1n", 1},      // as does a nano-unit
                    MilliCase{"-100u", -1},  // away from zero, as Kubernetes rounds
                    MilliCase{"3920m", 3920}, MilliCase{"007", 7000},
                    MilliCase{"1G", 1000000000000}, MilliCase{"1Ti", 1099511627776000}));

struct ValueCase {
  std::string text;
  int64_t value;
};

class ParseQuantityValueTest : public testing::TestWithParam<ValueCase> {};

TEST_P(ParseQuantityValueTest, ParsesToBaseUnits) {
  absl::StatusOr<int64_t> value = ParseQuantityValue(GetParam().text);
  ASSERT_TRUE(value.ok()) << GetParam().text << ": " << value.status();
  EXPECT_EQ(*value, GetParam().value) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Quantities, ParseQuantityValueTest,
    testing::Values(ValueCase{"64Mi", 67108864}, ValueCase{"128Mi", 134217728},
                    ValueCase{"1Gi", 1073741824}, ValueCase{"1G", 1000000000},
                    ValueCase{"16085948Ki", 16472010752}, ValueCase{"93478772582", 93478772582},
                    ValueCase{"250m", 1},  // rounds up, as Quantity.Value() does
                    ValueCase{"1500m", 2}, ValueCase{"2000m", 2}, ValueCase{"1Ei", 1152921504606846976},
                    ValueCase{"8E", 8000000000000000000}, ValueCase{"0.5Gi", 536870912},
                    ValueCase{"1e9", 1000000000}, ValueCase{"12e-1", 2}));

TEST(ParseQuantityTest, RejectsMalformedText) {
  for (const char* text :
       {"", "abc", "1.2.3", ".", "+", "-", "1K", "1Kb", "1mi", "1e", "1e+", "1ee3", "1 ", " 1",
        "1,5", "1Mi3", "1e3.5", "--1", "1m1", "0x10", "Gi"}) {
    absl::StatusOr<absl::int128> nano = ParseQuantityNano(text);
    EXPECT_FALSE(nano.ok()) << "\"" << text << "\" was accepted";
    if (!nano.ok()) {
      EXPECT_EQ(nano.status().code(), absl::StatusCode::kInvalidArgument) << text;
    }
  }
}

TEST(ParseQuantityTest, ReportsOverflowAsOutOfRange) {
  EXPECT_EQ(ParseQuantityMilli("9Ei").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseQuantityValue("1e30").status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(ParseQuantityNano("1e100").status().code(), absl::StatusCode::kOutOfRange);
  // Fits in nano-units but not as an int64 of base units.
  EXPECT_TRUE(ParseQuantityNano("100Ei").ok());
}

TEST(ParseQuantityTest, NanoValuesCompareExactly) {
  // 1Gi and 1073741824 are the same amount written two ways; 1G is less.
  EXPECT_EQ(*ParseQuantityNano("1Gi"), *ParseQuantityNano("1073741824"));
  EXPECT_LT(*ParseQuantityNano("1G"), *ParseQuantityNano("1Gi"));
  EXPECT_EQ(*ParseQuantityNano("0.1"), *ParseQuantityNano("100m"));
  EXPECT_EQ(*ParseQuantityNano("1n"), absl::int128(1));
  // Below a nano-unit rounds up to one.
  EXPECT_EQ(*ParseQuantityNano("0.0000000001"), absl::int128(1));
  EXPECT_EQ(*ParseQuantityNano("0.0000000000000000000000000000000000000001"), absl::int128(1));
  EXPECT_EQ(*ParseQuantityNano("0.000"), absl::int128(0));
  EXPECT_EQ(*ParseQuantityNano("0.0000000000001Ki"), absl::int128(1));  // 1.024e-10
  EXPECT_EQ(*ParseQuantityNano("0.000000001Ki"), absl::int128(1024));
  EXPECT_EQ(*ParseQuantityNano("1e-12"), absl::int128(1));
  EXPECT_FALSE(ParseQuantityNano("1e-20Ki").ok());  // an exponent and a suffix do not combine
}

}  // namespace
}  // namespace capstan::api
