#include "lib/api/quantity.h"

#include <limits>
#include <string>

#include "absl/status/status.h"

namespace capstan::api {
namespace {

using absl::int128;

// |value| * factor, or false on overflow (operands are non-negative).
bool CheckedMultiply(int128 value, int128 factor, int128* out) {
  if (value != 0 && factor > absl::Int128Max() / value) return false;
  *out = value * factor;
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

absl::Status FormatError(std::string_view text) {
  // std::string, not absl::StrCat: Debian's Abseil has its own string_view type.
  return absl::InvalidArgumentError("invalid quantity \"" + std::string(text) + "\": " +
                                    kQuantityFormatError);
}

// The suffix as a power of ten and a power of two: "Ki" -> (0, 10), "m" -> (-3, 0),
// "e3" -> (3, 0). False when it is not a suffix Kubernetes knows.
bool InterpretSuffix(std::string_view suffix, int* exp10, int* exp2) {
  *exp10 = 0;
  *exp2 = 0;
  if (suffix.empty()) return true;
  if (suffix.size() == 1) {
    switch (suffix[0]) {
      case 'n': *exp10 = -9; return true;
      case 'u': *exp10 = -6; return true;
      case 'm': *exp10 = -3; return true;
      case 'k': *exp10 = 3; return true;
      case 'M': *exp10 = 6; return true;
      case 'G': *exp10 = 9; return true;
      case 'T': *exp10 = 12; return true;
      case 'P': *exp10 = 15; return true;
      case 'E': *exp10 = 18; return true;
      default: return false;
    }
  }
  if (suffix.size() == 2 && suffix[1] == 'i') {
    static constexpr std::string_view kBinary = "KMGTPE";
    size_t index = kBinary.find(suffix[0]);
    if (index == std::string_view::npos) return false;
    *exp2 = 10 * static_cast<int>(index + 1);
    return true;
  }
  // A decimal exponent: e or E, an optional sign, then digits only.
  if (suffix[0] != 'e' && suffix[0] != 'E') return false;
  std::string_view rest = suffix.substr(1);
  bool negative = false;
  if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
    negative = rest[0] == '-';
    rest.remove_prefix(1);
  }
  if (rest.empty() || rest.size() > 4) return false;  // |exponent| beyond 9999 cannot fit anyway
  int value = 0;
  for (char c : rest) {
    if (!IsDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  *exp10 = negative ? -value : value;
  return true;
}

int128 PowerOfTen(int exponent) {
  int128 result = 1;
  for (int i = 0; i < exponent; ++i) result *= 10;
  return result;
}

// Divides the nano value by 10^exponent, rounding the magnitude up.
absl::StatusOr<int64_t> ScaleDownRoundingUp(int128 nano, int exponent) {
  bool negative = nano < 0;
  int128 magnitude = negative ? -nano : nano;
  int128 divisor = PowerOfTen(exponent);
  int128 scaled = magnitude / divisor + (magnitude % divisor != 0 ? 1 : 0);
  if (scaled > std::numeric_limits<int64_t>::max()) {
    return absl::OutOfRangeError("quantity is too large");
  }
  int64_t result = static_cast<int64_t>(scaled);
  return negative ? -result : result;
}

}  // namespace

absl::StatusOr<int128> ParseQuantityNano(std::string_view text) {
  if (text.empty()) {
    return absl::InvalidArgumentError("quantities must be non-empty");
  }
  size_t pos = 0;
  bool negative = false;
  if (text[0] == '+' || text[0] == '-') {
    negative = text[0] == '-';
    pos = 1;
  }
  // The number: digits, at most one '.', and at least one digit somewhere.
  std::string digits;  // integer and fraction digits, without the point
  int fraction_digits = 0;
  bool seen_point = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (IsDigit(c)) {
      digits += c;
      if (seen_point) ++fraction_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (digits.empty()) return FormatError(text);

  int exp10 = 0;
  int exp2 = 0;
  if (!InterpretSuffix(text.substr(pos), &exp10, &exp2)) {
    // Kubernetes separates a suffix it cannot read from a malformed string; both are invalid.
    return FormatError(text);
  }

  // Leading zeros carry no value and would only waste int128 headroom.
  size_t first_nonzero = digits.find_first_not_of('0');
  if (first_nonzero == std::string::npos) return int128(0);
  digits.erase(0, first_nonzero);
  // Trailing zeros become part of the exponent, for the same reason.
  int scale = exp10 + 9 - fraction_digits;  // value = digits * 10^scale * 2^exp2 nano-units
  while (digits.size() > 1 && digits.back() == '0') {
    digits.pop_back();
    ++scale;
  }

  const int128 binary_factor = int128(1) << exp2;
  int128 nano = 0;
  if (scale >= 0) {
    int128 mantissa = 0;
    for (char c : digits) {
      if (!CheckedMultiply(mantissa, 10, &mantissa)) return absl::OutOfRangeError("quantity is too large");
      mantissa += c - '0';
    }
    int128 power = 1;
    for (int i = 0; i < scale; ++i) {
      if (!CheckedMultiply(power, 10, &power)) return absl::OutOfRangeError("quantity is too large");
    }
    if (!CheckedMultiply(mantissa, power, &nano) || !CheckedMultiply(nano, binary_factor, &nano)) {
      return absl::OutOfRangeError("quantity is too large");
    }
  } else {
    // Finer than a nano-unit: keep a bounded number of sub-nano digits for the binary multiply,
    // remember whether anything non-zero was cut, and round the magnitude up.
    const int sub_nano_digits = -scale;
    constexpr int kKeptSubNanoDigits = 18;
    int dropped = sub_nano_digits > kKeptSubNanoDigits ? sub_nano_digits - kKeptSubNanoDigits : 0;
    bool dropped_nonzero = false;
    if (dropped > 0) {
      size_t keep = digits.size() > static_cast<size_t>(dropped) ? digits.size() - dropped : 0;
      dropped_nonzero = digits.find_first_not_of('0', keep) != std::string::npos;
      digits.resize(keep);
    }
    int128 mantissa = 0;
    for (char c : digits) {
      if (!CheckedMultiply(mantissa, 10, &mantissa)) return absl::OutOfRangeError("quantity is too large");
      mantissa += c - '0';
    }
    int128 scaled;
    if (!CheckedMultiply(mantissa, binary_factor, &scaled)) {
      return absl::OutOfRangeError("quantity is too large");
    }
    int128 divisor = PowerOfTen(sub_nano_digits - dropped);
    nano = scaled / divisor;
    if (scaled % divisor != 0 || dropped_nonzero) nano += 1;
  }
  return negative ? -nano : nano;
}

absl::StatusOr<int64_t> ParseQuantityMilli(std::string_view text) {
  absl::StatusOr<int128> nano = ParseQuantityNano(text);
  if (!nano.ok()) return nano.status();
  return ScaleDownRoundingUp(*nano, 6);
}

absl::StatusOr<int64_t> ParseQuantityValue(std::string_view text) {
  absl::StatusOr<int128> nano = ParseQuantityNano(text);
  if (!nano.ok()) return nano.status();
  return ScaleDownRoundingUp(*nano, 9);
}

}  // namespace capstan::api
