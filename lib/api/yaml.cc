#include "lib/api/yaml.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace capstan::api {
namespace {

using ::nlohmann::json;

// yaml-cpp resolves aliases by sharing nodes, so a small document can expand into a huge tree
// ("billion laughs"), and an anchor can even contain itself. Conversion is bounded in depth and
// in nodes produced; the node budget grows with the input so large real documents still pass.
constexpr int kMaxDepth = 512;
constexpr size_t kMinNodeBudget = 1'000'000;

constexpr absl::string_view kTagPrefix = "tag:yaml.org,2002:";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// [-+]?[0-9]+
bool IsDecimalInteger(absl::string_view text) {
  size_t i = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  if (i == text.size()) return false;
  for (; i < text.size(); ++i) {
    if (!IsDigit(text[i])) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsCoreFloat(absl::string_view text) {
  size_t i = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  size_t integer_digits = 0, fraction_digits = 0;
  while (i < text.size() && IsDigit(text[i])) ++i, ++integer_digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDigit(text[i])) ++i, ++fraction_digits;
  }
  if (integer_digits == 0 && fraction_digits == 0) return false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
    size_t exponent_digits = 0;
    while (i < text.size() && IsDigit(text[i])) ++i, ++exponent_digits;
    if (exponent_digits == 0) return false;
  }
  return i == text.size();
}

// 0x1F and 0o17 from the core schema. Values beyond 64 bits become floats, like decimal ones.
std::optional<json> ParseRadixInteger(absl::string_view digits, int base) {
  if (digits.empty()) return std::nullopt;
  uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (end != digits.data() + digits.size()) {
    if (error != std::errc::result_out_of_range) return std::nullopt;
    double approximate = 0;
    for (char c : digits) {
      int digit = IsDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
      approximate = approximate * base + digit;
    }
    return json(approximate);
  }
  if (value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return json(static_cast<int64_t>(value));
  }
  return json(value);
}

// The YAML 1.2 core schema's reading of a plain scalar; strings are returned as strings.
json ResolvePlainScalar(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return json();
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  const char first = text[0];
  const bool may_be_number = IsDigit(first) || first == '-' || first == '+' || first == '.';
  if (!may_be_number) return text;
  if (IsDecimalInteger(text)) {
    int64_t signed_value;
    if (absl::SimpleAtoi(text, &signed_value)) return signed_value;
    uint64_t unsigned_value;
    if (first != '-' && absl::SimpleAtoi(text, &unsigned_value)) return unsigned_value;
    double approximate;
    if (absl::SimpleAtod(text, &approximate)) return approximate;
    return text;
  }
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'o')) {
    absl::string_view digits = absl::string_view(text).substr(2);
    bool valid = true;
    for (char c : digits) {
      valid = valid && (text[1] == 'x' ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                                       : (c >= '0' && c <= '7'));
    }
    if (valid) {
      if (std::optional<json> number = ParseRadixInteger(digits, text[1] == 'x' ? 16 : 8)) {
        return *number;
      }
    }
    return text;
  }
  if (IsCoreFloat(text)) {
    double number;
    if (absl::SimpleAtod(text, &number)) return number;
    return text;
  }
  absl::string_view special = text;
  double sign = 1;
  if (special[0] == '-' || special[0] == '+') {
    sign = special[0] == '-' ? -1 : 1;
    special.remove_prefix(1);
  }
  if (special == ".inf" || special == ".Inf" || special == ".INF") {
    return sign * std::numeric_limits<double>::infinity();
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return text;
}

absl::Status ErrorAtLine(const YAML::Mark& mark, absl::string_view message) {
  if (mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("yaml: ", message));
  return absl::InvalidArgumentError(absl::StrCat("yaml: line ", mark.line + 1, ": ", message));
}

// A scalar with an explicit tag (!!int "7"): the core-schema reading, which must match the tag.
absl::StatusOr<json> ResolveTaggedScalar(const YAML::Node& node, absl::string_view type) {
  const std::string& text = node.Scalar();
  if (type == "str" || type == "binary" || type == "timestamp") return json(text);
  json value = ResolvePlainScalar(text);
  bool matches = (type == "int" && value.is_number_integer()) ||
                 (type == "float" && value.is_number()) ||
                 (type == "bool" && value.is_boolean()) || (type == "null" && value.is_null());
  if (!matches) {
    return ErrorAtLine(node.Mark(), absl::StrCat("invalid !!", type, " value \"", text, "\""));
  }
  if (type == "float" && !value.is_number_float()) value = value.get<double>();
  return value;
}

class YamlToJson {
 public:
  explicit YamlToJson(size_t node_budget) : node_budget_(node_budget) {}

  absl::Status Convert(const YAML::Node& node, json* out, int depth) {
    if (depth > kMaxDepth) return ErrorAtLine(node.Mark(), "nested too deeply");
    if (node_budget_ == 0) {
      return ErrorAtLine(node.Mark(), "document too large (aliases expand beyond the limit)");
    }
    --node_budget_;
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        // `key: !!str` is an empty string; every other empty value is null.
        *out = node.Tag() == absl::StrCat(kTagPrefix, "str") ? json("") : json();
        return absl::OkStatus();
      case YAML::NodeType::Scalar:
        return ConvertScalar(node, out);
      case YAML::NodeType::Sequence: {
        *out = json::array();
        auto& array = out->get_ref<json::array_t&>();
        array.reserve(node.size());
        for (const YAML::Node& element : node) {
          array.emplace_back();
          if (absl::Status s = Convert(element, &array.back(), depth + 1); !s.ok()) return s;
        }
        return absl::OkStatus();
      }
      case YAML::NodeType::Map: {
        *out = json::object();
        auto& object = out->get_ref<json::object_t&>();
        for (const auto& entry : node) {
          absl::StatusOr<std::string> key = KeyString(entry.first);
          if (!key.ok()) return key.status();
          auto [slot, inserted] = object.emplace(*std::move(key), json());
          if (!inserted) {
            return ErrorAtLine(entry.first.Mark(),
                               absl::StrCat("duplicate key ", json(slot->first).dump()));
          }
          if (absl::Status s = Convert(entry.second, &slot->second, depth + 1); !s.ok()) return s;
        }
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status ConvertScalar(const YAML::Node& node, json* out) {
    const std::string& tag = node.Tag();
    // yaml-cpp tags plain scalars "?" and quoted or block scalars "!".
    if (tag == "?") {
      *out = ResolvePlainScalar(node.Scalar());
      return absl::OkStatus();
    }
    if (absl::StartsWith(tag, kTagPrefix) && tag.size() > kTagPrefix.size()) {
      absl::StatusOr<json> value =
          ResolveTaggedScalar(node, absl::string_view(tag).substr(kTagPrefix.size()));
      if (!value.ok()) return value.status();
      *out = *std::move(value);
      return absl::OkStatus();
    }
    // "!", and application tags we do not know: the text as written.
    *out = node.Scalar();
    return absl::OkStatus();
  }

  // JSON keys are strings: scalars are taken as written, an empty key as "null" (as Kubernetes'
  // YAML-to-JSON conversion does); collections cannot be keys.
  static absl::StatusOr<std::string> KeyString(const YAML::Node& key) {
    switch (key.Type()) {
      case YAML::NodeType::Scalar:
        return key.Scalar();
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        return std::string("null");
      default:
        return ErrorAtLine(key.Mark(), "mapping keys must be scalars");
    }
  }

  size_t node_budget_;
};

// ---------------------------------------------------------------------------------------------
// Printing.

bool IsYaml11Word(absl::string_view text) {
  // Booleans and the merge/value keys of YAML 1.1, which kubectl's and PyYAML's readers still use.
  static constexpr absl::string_view kWords[] = {
      "y",  "Y",  "yes", "Yes", "YES", "n",  "N",   "no",  "No",  "NO",
      "on", "On", "ON",  "off", "Off", "OFF", "<<", "=",
  };
  for (absl::string_view word : kWords) {
    if (text == word) return true;
  }
  return false;
}

// Strings that look like numbers or timestamps to some YAML reader: YAML 1.1 reads 1_000, 0b101,
// 1:30 (base 60) and 2024-05-01 as non-strings. Quantities (500m, 1Gi) contain other letters and
// stay plain.
bool LooksNumeric(absl::string_view text) {
  if (text.empty()) return false;
  size_t first_digit = (text[0] == '-' || text[0] == '+' || text[0] == '.') ? 1 : 0;
  if (first_digit >= text.size() || !IsDigit(text[first_digit])) return false;
  for (char c : text) {
    bool numeric = std::isxdigit(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
                   c == '.' || c == '+' || c == '-' || c == ' ' || c == 'x' || c == 'X' ||
                   c == 'o' || c == 'O' || c == 't' || c == 'T' || c == 'z' || c == 'Z';
    if (!numeric) return false;
  }
  return true;
}

bool NeedsQuotes(const std::string& text) {
  return !ResolvePlainScalar(text).is_string() || IsYaml11Word(text) || LooksNumeric(text);
}

void EmitString(YAML::Emitter& out, const std::string& text) {
  // Anything else yaml-cpp cannot write plain (": ", leading "-", "#", newlines, ...) it quotes
  // by itself.
  if (NeedsQuotes(text)) out << YAML::DoubleQuoted;
  out << text;
}

void EmitValue(YAML::Emitter& out, const json& value) {
  switch (value.type()) {
    case json::value_t::object:
      if (value.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (auto it = value.begin(); it != value.end(); ++it) {
        out << YAML::Key;
        EmitString(out, it.key());
        out << YAML::Value;
        EmitValue(out, *it);
      }
      out << YAML::EndMap;
      return;
    case json::value_t::array:
      if (value.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const json& element : value) EmitValue(out, element);
      out << YAML::EndSeq;
      return;
    case json::value_t::string:
      EmitString(out, value.get_ref<const std::string&>());
      return;
    case json::value_t::boolean:
      out << value.get<bool>();
      return;
    case json::value_t::number_integer:
      out << value.get<int64_t>();
      return;
    case json::value_t::number_unsigned:
      out << value.get<uint64_t>();
      return;
    case json::value_t::number_float: {
      double number = value.get<double>();
      if (std::isnan(number)) {
        out << ".nan";
      } else if (std::isinf(number)) {
        out << (number > 0 ? ".inf" : "-.inf");
      } else {
        // nlohmann's shortest round-trip text; it always reads back as a float (1.0, 1e+21).
        out << value.dump();
      }
      return;
    }
    default:
      out << YAML::Null;
      return;
  }
}

}  // namespace

absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text) {
  std::vector<json> documents;
  // Fast path for JSON bodies: nlohmann's parser is exact and much faster than yaml-cpp.
  size_t start = text.find_first_not_of(" \t\r\n");
  if (start != absl::string_view::npos && (text[start] == '{' || text[start] == '[')) {
    json value = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (!value.is_discarded()) {
      documents.push_back(std::move(value));
      return documents;
    }
  }
  std::vector<YAML::Node> nodes;
  // yaml-cpp reports syntax errors only by exception; it does not leave this function.
  try {
    nodes = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& error) {
    if (error.mark.is_null()) return absl::InvalidArgumentError("yaml: " + error.msg);
    return absl::InvalidArgumentError(absl::StrCat("yaml: line ", error.mark.line + 1,
                                                   ", column ", error.mark.column + 1, ": ",
                                                   error.msg));
  }
  YamlToJson converter(std::max(kMinNodeBudget, 4 * text.size()));
  for (const YAML::Node& node : nodes) {
    if (!node.IsMap() && !node.IsSequence()) continue;
    json document;
    if (absl::Status s = converter.Convert(node, &document, 0); !s.ok()) return s;
    documents.push_back(std::move(document));
  }
  return documents;
}

std::string PrintYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  EmitValue(out, value);
  return absl::StrCat(out.c_str(), "\n");
}

}  // namespace capstan::api
