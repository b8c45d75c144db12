#include "lib/api/codec.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace capstan::api {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumValueDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::nlohmann::json;

// Deeper JSON than any API object needs; bounds the recursion for recursive message types.
constexpr int kMaxDepth = 100;

// ---------------------------------------------------------------------------------------------
// Field paths, built only when an error is reported.

// One step from the root to the value being decoded. Segments live on the decoder's stack and
// point at their parent, so the happy path never builds path strings.
struct PathSegment {
  enum class Kind { kField, kIndex, kMapKey };
  const PathSegment* parent;
  Kind kind;
  absl::string_view name;  // kField: the JSON name; kMapKey: the key
  size_t index;           // kIndex
};

PathSegment FieldSegment(const PathSegment* parent, absl::string_view name) {
  return {parent, PathSegment::Kind::kField, name, 0};
}
PathSegment IndexSegment(const PathSegment* parent, size_t index) {
  return {parent, PathSegment::Kind::kIndex, {}, index};
}
PathSegment MapKeySegment(const PathSegment* parent, absl::string_view key) {
  return {parent, PathSegment::Kind::kMapKey, key, 0};
}

// "spec.template.spec.containers[0].name", "metadata.labels[app]".
std::string PathString(const PathSegment* leaf) {
  std::vector<const PathSegment*> chain;
  for (const PathSegment* segment = leaf; segment != nullptr; segment = segment->parent) {
    chain.push_back(segment);
  }
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const PathSegment& segment = **it;
    switch (segment.kind) {
      case PathSegment::Kind::kField:
        if (!path.empty()) path += '.';
        path.append(segment.name.data(), segment.name.size());
        break;
      case PathSegment::Kind::kIndex:
        absl::StrAppend(&path, "[", segment.index, "]");
        break;
      case PathSegment::Kind::kMapKey:
        absl::StrAppend(&path, "[", segment.name, "]");
        break;
    }
  }
  return path;
}

// JSON text never throws on invalid UTF-8 here: the codec must not let exceptions escape.
std::string DumpJson(const json& value, int indent = -1) {
  return value.dump(indent, ' ', /*ensure_ascii=*/false, json::error_handler_t::replace);
}

std::string Quote(absl::string_view text) { return DumpJson(json(std::string(text))); }

// Quote for error messages: long values are cut, so a bad multi-kilobyte field stays readable.
std::string QuoteForError(absl::string_view text) {
  constexpr size_t kMaxShown = 64;
  if (text.size() <= kMaxShown) return Quote(text);
  return absl::StrCat(Quote(text.substr(0, kMaxShown)), "...");
}

// The offending value for an error message: its JSON type and, for scalars, its text.
std::string DescribeJson(const json& value) {
  switch (value.type()) {
    case json::value_t::string:
      return "string " + QuoteForError(value.get_ref<const std::string&>());
    case json::value_t::boolean:
      return value.get<bool>() ? "boolean true" : "boolean false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return "number " + DumpJson(value);
    case json::value_t::object:
      return "object";
    case json::value_t::array:
      return "array";
    case json::value_t::null:
      return "null";
    default:
      return "value";
  }
}

absl::Status ErrorAt(const PathSegment* path, absl::string_view message) {
  if (path == nullptr) return absl::InvalidArgumentError(message);
  return absl::InvalidArgumentError(absl::StrCat(PathString(path), ": ", message));
}

absl::Status TypeError(const PathSegment* path, absl::string_view expected, const json& got) {
  return ErrorAt(path, absl::StrCat("expected ", expected, ", got ", DescribeJson(got)));
}

// ---------------------------------------------------------------------------------------------
// Messages with a Kubernetes-specific JSON form, recognized by full name.

enum class SpecialMessage { kNone, kTime, kMicroTime, kQuantity, kIntOrString };

SpecialMessage SpecialMessageOf(const Descriptor* descriptor) {
  constexpr absl::string_view kMetaPackage = "capstan.meta.v1.";
  absl::string_view name = descriptor->full_name();
  if (name.size() <= kMetaPackage.size() || name.substr(0, kMetaPackage.size()) != kMetaPackage) {
    return SpecialMessage::kNone;
  }
  name.remove_prefix(kMetaPackage.size());
  if (name == "Time") return SpecialMessage::kTime;
  if (name == "MicroTime") return SpecialMessage::kMicroTime;
  if (name == "Quantity") return SpecialMessage::kQuantity;
  if (name == "IntOrString") return SpecialMessage::kIntOrString;
  return SpecialMessage::kNone;
}

// Kubernetes' quantity grammar (k8s.io/apimachinery/pkg/api/resource):
//   <signedNumber><suffix>, suffix one of Ki Mi Gi Ti Pi Ei, n u m "" k M G T P E,
//   or e/E followed by a signed integer.
// Kubernetes rejects other text when decoding, so the codec does too.
bool IsValidQuantity(absl::string_view text) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  size_t digits = 0;
  while (i < text.size() && is_digit(text[i])) ++i, ++digits;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && is_digit(text[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  absl::string_view suffix = text.substr(i);
  if (suffix.empty()) return true;
  if (suffix.size() == 1 && absl::string_view("numkMGTPE").find(suffix[0]) != absl::string_view::npos) {
    return true;
  }
  if (suffix.size() == 2 && suffix[1] == 'i' &&
      absl::string_view("KMGTPE").find(suffix[0]) != absl::string_view::npos) {
    return true;
  }
  if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t j = 1;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) ++j;
    if (j == suffix.size()) return false;
    for (; j < suffix.size(); ++j) {
      if (!is_digit(suffix[j])) return false;
    }
    return true;
  }
  return false;
}

// Standard base64 with padding, as Go's encoding/json writes []byte. absl::Base64Unescape also
// accepts missing padding and whitespace, which Kubernetes rejects, so check the shape first.
bool DecodeStrictBase64(absl::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') {
    ++padding;
  }
  for (size_t i = 0; i < text.size() - padding; ++i) {
    char c = text[i];
    bool valid = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '+' || c == '/';
    if (!valid) return false;
  }
  return absl::Base64Unescape(text, out);
}

// ---------------------------------------------------------------------------------------------
// Decoding.

absl::Status DecodeMessage(const json& value, Message* message, const PathSegment* path,
                           int depth);

// The field whose json_name is key, or nullptr. FindFieldByCamelcaseName is protobuf's own
// thread-safe index and equals json_name for every field without an explicit json_name; the
// scan covers the rest (podIP, hostIP, ...).
const FieldDescriptor* FindFieldByJsonName(const Descriptor* descriptor, const std::string& key) {
  const FieldDescriptor* field = descriptor->FindFieldByCamelcaseName(key);
  if (field != nullptr && field->json_name() == key) return field;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i)->json_name() == key) return descriptor->field(i);
  }
  return nullptr;
}

template <typename Int>
absl::Status DecodeInteger(const json& value, const PathSegment* path, Int* out) {
  constexpr absl::string_view kTypeName = std::is_same_v<Int, int32_t>    ? "int32"
                                         : std::is_same_v<Int, int64_t>  ? "int64"
                                         : std::is_same_v<Int, uint32_t> ? "uint32"
                                                                         : "uint64";
  auto out_of_range = [&] {
    return ErrorAt(path, absl::StrCat("value ", DumpJson(value), " out of range for ", kTypeName));
  };
  if (value.is_number_unsigned()) {
    uint64_t number = value.get<uint64_t>();
    if (number > static_cast<uint64_t>(std::numeric_limits<Int>::max())) return out_of_range();
    *out = static_cast<Int>(number);
    return absl::OkStatus();
  }
  if (value.is_number_integer()) {
    int64_t number = value.get<int64_t>();
    if constexpr (std::is_unsigned_v<Int>) {
      if (number < 0) return out_of_range();
    } else if (number < std::numeric_limits<Int>::min() ||
               number > std::numeric_limits<Int>::max()) {
      return out_of_range();
    }
    *out = static_cast<Int>(number);
    return absl::OkStatus();
  }
  return TypeError(path, "integer", value);
}

// Floats convert through their shortest decimal form, so 0.1f is written as 0.1 rather than
// 0.10000000149011612.
double FloatToDouble(float number) {
  if (!std::isfinite(number)) return number;
  char buffer[32];
  auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), number);
  double result = number;
  if (error == std::errc()) std::from_chars(buffer, end, result);
  return result;
}

absl::Status DecodeEnum(const json& value, const FieldDescriptor* field, const PathSegment* path,
                        int* out) {
  if (value.is_string()) {
    const std::string& name = value.get_ref<const std::string&>();
    const EnumValueDescriptor* enum_value = field->enum_type()->FindValueByName(name);
    if (enum_value == nullptr) {
      return ErrorAt(path, absl::StrCat("unknown value ", QuoteForError(name), " for enum ",
                                        field->enum_type()->full_name()));
    }
    *out = enum_value->number();
    return absl::OkStatus();
  }
  if (value.is_number_integer()) return DecodeInteger<int32_t>(value, path, out);
  return TypeError(path, "string", value);
}

// Decodes a scalar (non-message) value into field: appended when the field is repeated.
absl::Status DecodeScalar(const json& value, Message* message, const FieldDescriptor* field,
                          const PathSegment* path) {
  const Reflection* reflection = message->GetReflection();
  const bool repeated = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t number = 0;
      if (absl::Status s = DecodeInteger(value, path, &number); !s.ok()) return s;
      repeated ? reflection->AddInt32(message, field, number)
               : reflection->SetInt32(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t number = 0;
      if (absl::Status s = DecodeInteger(value, path, &number); !s.ok()) return s;
      repeated ? reflection->AddInt64(message, field, number)
               : reflection->SetInt64(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t number = 0;
      if (absl::Status s = DecodeInteger(value, path, &number); !s.ok()) return s;
      repeated ? reflection->AddUInt32(message, field, number)
               : reflection->SetUInt32(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t number = 0;
      if (absl::Status s = DecodeInteger(value, path, &number); !s.ok()) return s;
      repeated ? reflection->AddUInt64(message, field, number)
               : reflection->SetUInt64(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      if (!value.is_number()) return TypeError(path, "number", value);
      double number = value.get<double>();
      repeated ? reflection->AddDouble(message, field, number)
               : reflection->SetDouble(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      if (!value.is_number()) return TypeError(path, "number", value);
      double number = value.get<double>();
      if (std::isfinite(number) && std::abs(number) > std::numeric_limits<float>::max()) {
        return ErrorAt(path, absl::StrCat("value ", DumpJson(value), " out of range for float"));
      }
      repeated ? reflection->AddFloat(message, field, static_cast<float>(number))
               : reflection->SetFloat(message, field, static_cast<float>(number));
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!value.is_boolean()) return TypeError(path, "boolean", value);
      bool flag = value.get<bool>();
      repeated ? reflection->AddBool(message, field, flag)
               : reflection->SetBool(message, field, flag);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number = 0;
      if (absl::Status s = DecodeEnum(value, field, path, &number); !s.ok()) return s;
      repeated ? reflection->AddEnumValue(message, field, number)
               : reflection->SetEnumValue(message, field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!value.is_string()) {
        return TypeError(path, field->type() == FieldDescriptor::TYPE_BYTES ? "base64 string"
                                                                            : "string",
                         value);
      }
      const std::string& text = value.get_ref<const std::string&>();
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        std::string bytes;
        if (!DecodeStrictBase64(text, &bytes)) {
          return ErrorAt(path, absl::StrCat("invalid base64 ", QuoteForError(text)));
        }
        repeated ? reflection->AddString(message, field, std::move(bytes))
                 : reflection->SetString(message, field, std::move(bytes));
      } else {
        repeated ? reflection->AddString(message, field, text)
                 : reflection->SetString(message, field, text);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return ErrorAt(path, "internal error: not a scalar field");
}

// A repeated scalar element written as null: Go decodes it as the zero value, and so do we.
void AddZeroScalar(Message* message, const FieldDescriptor* field) {
  const Reflection* reflection = message->GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: reflection->AddInt32(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_INT64: reflection->AddInt64(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_UINT32: reflection->AddUInt32(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_UINT64: reflection->AddUInt64(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_DOUBLE: reflection->AddDouble(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_FLOAT: reflection->AddFloat(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_BOOL: reflection->AddBool(message, field, false); break;
    case FieldDescriptor::CPPTYPE_ENUM: reflection->AddEnumValue(message, field, 0); break;
    case FieldDescriptor::CPPTYPE_STRING: reflection->AddString(message, field, ""); break;
    case FieldDescriptor::CPPTYPE_MESSAGE: reflection->AddMessage(message, field); break;
  }
}

// Sets a map entry's key from the JSON object key (JSON keys are always strings).
absl::Status SetMapKey(const std::string& key, Message* entry, const FieldDescriptor* key_field,
                       const PathSegment* path) {
  const Reflection* reflection = entry->GetReflection();
  auto invalid = [&] {
    return ErrorAt(path, absl::StrCat("invalid map key ", QuoteForError(key), " for type ",
                                      key_field->cpp_type_name()));
  };
  switch (key_field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      reflection->SetString(entry, key_field, key);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t number = 0;
      if (!absl::SimpleAtoi(key, &number)) return invalid();
      reflection->SetInt32(entry, key_field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t number = 0;
      if (!absl::SimpleAtoi(key, &number)) return invalid();
      reflection->SetInt64(entry, key_field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t number = 0;
      if (!absl::SimpleAtoi(key, &number)) return invalid();
      reflection->SetUInt32(entry, key_field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t number = 0;
      if (!absl::SimpleAtoi(key, &number)) return invalid();
      reflection->SetUInt64(entry, key_field, number);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (key != "true" && key != "false") return invalid();
      reflection->SetBool(entry, key_field, key == "true");
      return absl::OkStatus();
    default:
      return invalid();
  }
}

absl::Status DecodeMap(const json& value, Message* message, const FieldDescriptor* field,
                       const PathSegment* path, int depth) {
  if (!value.is_object()) return TypeError(path, "object", value);
  const Reflection* reflection = message->GetReflection();
  const FieldDescriptor* key_field = field->message_type()->map_key();
  const FieldDescriptor* value_field = field->message_type()->map_value();
  for (auto it = value.begin(); it != value.end(); ++it) {
    const PathSegment entry_path = MapKeySegment(path, it.key());
    Message* entry = reflection->AddMessage(message, field);
    if (absl::Status s = SetMapKey(it.key(), entry, key_field, &entry_path); !s.ok()) return s;
    // A null value leaves the entry's value at its zero value, as Go does.
    if (it->is_null()) continue;
    absl::Status status =
        value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE
            ? DecodeMessage(*it, entry->GetReflection()->MutableMessage(entry, value_field),
                            &entry_path, depth + 1)
            : DecodeScalar(*it, entry, value_field, &entry_path);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status DecodeRepeated(const json& value, Message* message, const FieldDescriptor* field,
                            const PathSegment* path, int depth) {
  if (!value.is_array()) return TypeError(path, "array", value);
  const Reflection* reflection = message->GetReflection();
  const bool is_message = field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
  for (size_t i = 0; i < value.size(); ++i) {
    const json& element = value[i];
    const PathSegment element_path = IndexSegment(path, i);
    if (element.is_null()) {
      AddZeroScalar(message, field);
      continue;
    }
    absl::Status status =
        is_message
            ? DecodeMessage(element, reflection->AddMessage(message, field), &element_path,
                            depth + 1)
            : DecodeScalar(element, message, field, &element_path);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// Time and MicroTime: any RFC 3339 time (fraction and offset optional), kept to the nanosecond.
absl::Status DecodeTime(const json& value, Message* message, const PathSegment* path) {
  if (!value.is_string()) return TypeError(path, "string", value);
  const std::string& text = value.get_ref<const std::string&>();
  absl::Time time;
  std::string parse_error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &parse_error)) {
    return ErrorAt(path, absl::StrCat("invalid time ", QuoteForError(text)));
  }
  const Descriptor* descriptor = message->GetDescriptor();
  const FieldDescriptor* seconds_field = descriptor->FindFieldByNumber(1);
  const FieldDescriptor* nanos_field = descriptor->FindFieldByNumber(2);
  if (seconds_field == nullptr || nanos_field == nullptr) {
    return absl::InternalError(descriptor->full_name() + " lacks seconds and nanos fields");
  }
  // ToUnixSeconds rounds toward the infinite past, so nanos is always in [0, 1e9).
  const int64_t seconds = absl::ToUnixSeconds(time);
  const int64_t nanos = absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds));
  const Reflection* reflection = message->GetReflection();
  reflection->SetInt64(message, seconds_field, seconds);
  reflection->SetInt32(message, nanos_field, static_cast<int32_t>(nanos));
  return absl::OkStatus();
}

absl::Status DecodeQuantity(const json& value, Message* message, const PathSegment* path) {
  std::string text;
  if (value.is_string()) {
    text = value.get_ref<const std::string&>();
  } else if (value.is_number()) {
    // nlohmann writes numbers in their shortest round-trip form: 1 -> "1", 0.5 -> "0.5".
    text = DumpJson(value);
  } else {
    return TypeError(path, "quantity (string or number)", value);
  }
  if (!IsValidQuantity(text)) {
    return ErrorAt(path, absl::StrCat("invalid quantity ", QuoteForError(text)));
  }
  const FieldDescriptor* string_field = message->GetDescriptor()->FindFieldByNumber(1);
  if (string_field == nullptr) {
    return absl::InternalError(message->GetDescriptor()->full_name() + " lacks a string field");
  }
  message->GetReflection()->SetString(message, string_field, std::move(text));
  return absl::OkStatus();
}

absl::Status DecodeIntOrString(const json& value, Message* message, const PathSegment* path) {
  const Descriptor* descriptor = message->GetDescriptor();
  const FieldDescriptor* int_field = descriptor->FindFieldByNumber(1);
  const FieldDescriptor* string_field = descriptor->FindFieldByNumber(2);
  if (int_field == nullptr || string_field == nullptr) {
    return absl::InternalError(descriptor->full_name() + " lacks int_val and str_val fields");
  }
  const Reflection* reflection = message->GetReflection();
  if (value.is_string()) {
    reflection->SetString(message, string_field, value.get_ref<const std::string&>());
    return absl::OkStatus();
  }
  if (value.is_number_integer()) {
    int32_t number = 0;
    if (absl::Status s = DecodeInteger(value, path, &number); !s.ok()) return s;
    reflection->SetInt32(message, int_field, number);
    return absl::OkStatus();
  }
  return TypeError(path, "integer or string", value);
}

absl::Status DecodeMessage(const json& value, Message* message, const PathSegment* path,
                           int depth) {
  const Descriptor* descriptor = message->GetDescriptor();
  switch (SpecialMessageOf(descriptor)) {
    case SpecialMessage::kTime:
    case SpecialMessage::kMicroTime:
      return DecodeTime(value, message, path);
    case SpecialMessage::kQuantity:
      return DecodeQuantity(value, message, path);
    case SpecialMessage::kIntOrString:
      return DecodeIntOrString(value, message, path);
    case SpecialMessage::kNone:
      break;
  }
  if (!value.is_object()) return TypeError(path, "object", value);
  if (depth > kMaxDepth) return ErrorAt(path, "nested too deeply");
  const Reflection* reflection = message->GetReflection();
  for (auto it = value.begin(); it != value.end(); ++it) {
    const std::string& key = it.key();
    const PathSegment field_path = FieldSegment(path, key);
    const FieldDescriptor* field = FindFieldByJsonName(descriptor, key);
    if (field == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown field \"", PathString(&field_path), "\""));
    }
    if (it->is_null()) continue;
    if (const auto* oneof = field->real_containing_oneof();
        oneof != nullptr && reflection->HasOneof(*message, oneof)) {
      const FieldDescriptor* other = reflection->GetOneofFieldDescriptor(*message, oneof);
      return ErrorAt(&field_path, absl::StrCat("may not be set together with ",
                                               Quote(other->json_name())));
    }
    absl::Status status;
    if (field->is_map()) {
      status = DecodeMap(*it, message, field, &field_path, depth);
    } else if (field->is_repeated()) {
      status = DecodeRepeated(*it, message, field, &field_path, depth);
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      status = DecodeMessage(*it, reflection->MutableMessage(message, field), &field_path,
                             depth + 1);
    } else {
      status = DecodeScalar(*it, message, field, &field_path);
    }
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Encoding.

json EncodeMessage(const Message& message);

std::string FormatTime(const Message& message, const char* format) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  const FieldDescriptor* seconds_field = descriptor->FindFieldByNumber(1);
  const FieldDescriptor* nanos_field = descriptor->FindFieldByNumber(2);
  int64_t seconds = seconds_field ? reflection->GetInt64(message, seconds_field) : 0;
  int32_t nanos = nanos_field ? reflection->GetInt32(message, nanos_field) : 0;
  return absl::FormatTime(format, absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos),
                          absl::UTCTimeZone());
}

json EncodeSpecial(const Message& message, SpecialMessage kind) {
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* reflection = message.GetReflection();
  switch (kind) {
    case SpecialMessage::kTime:
      return FormatTime(message, "%Y-%m-%dT%H:%M:%SZ");
    case SpecialMessage::kMicroTime:
      return FormatTime(message, "%Y-%m-%dT%H:%M:%E6SZ");
    case SpecialMessage::kQuantity: {
      const FieldDescriptor* string_field = descriptor->FindFieldByNumber(1);
      std::string text = string_field ? reflection->GetString(message, string_field) : "";
      // Kubernetes writes the zero Quantity as "0"; "" would not decode again.
      return text.empty() ? std::string("0") : text;
    }
    case SpecialMessage::kIntOrString: {
      const FieldDescriptor* string_field = descriptor->FindFieldByNumber(2);
      if (string_field != nullptr && reflection->HasField(message, string_field)) {
        return reflection->GetString(message, string_field);
      }
      const FieldDescriptor* int_field = descriptor->FindFieldByNumber(1);
      // Neither set is Kubernetes' zero IntOrString, which is the integer 0.
      return int_field ? reflection->GetInt32(message, int_field) : 0;
    }
    case SpecialMessage::kNone:
      break;
  }
  return json();
}

json EncodeScalar(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* reflection = message.GetReflection();
  const bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return repeated ? reflection->GetRepeatedInt32(message, field, index)
                      : reflection->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return repeated ? reflection->GetRepeatedInt64(message, field, index)
                      : reflection->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return repeated ? reflection->GetRepeatedUInt32(message, field, index)
                      : reflection->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return repeated ? reflection->GetRepeatedUInt64(message, field, index)
                      : reflection->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return repeated ? reflection->GetRepeatedDouble(message, field, index)
                      : reflection->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FloatToDouble(repeated ? reflection->GetRepeatedFloat(message, field, index)
                                    : reflection->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return repeated ? reflection->GetRepeatedBool(message, field, index)
                      : reflection->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number = repeated ? reflection->GetRepeatedEnumValue(message, field, index)
                            : reflection->GetEnumValue(message, field);
      const EnumValueDescriptor* value = field->enum_type()->FindValueByNumber(number);
      // Proto3 enums are open: a number without a name is still written.
      if (value == nullptr) return number;
      return value->name();
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text =
          repeated ? reflection->GetRepeatedStringReference(message, field, index, &scratch)
                   : reflection->GetStringReference(message, field, &scratch);
      if (field->type() == FieldDescriptor::TYPE_BYTES) return absl::Base64Escape(text);
      return text;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return EncodeMessage(repeated ? reflection->GetRepeatedMessage(message, field, index)
                                    : reflection->GetMessage(message, field));
  }
  return json();
}

std::string MapKeyString(const Message& entry, const FieldDescriptor* key_field) {
  const Reflection* reflection = entry.GetReflection();
  switch (key_field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      return reflection->GetString(entry, key_field);
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(reflection->GetInt32(entry, key_field));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(reflection->GetInt64(entry, key_field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(reflection->GetUInt32(entry, key_field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(reflection->GetUInt64(entry, key_field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return reflection->GetBool(entry, key_field) ? "true" : "false";
    default:
      return "";
  }
}

json EncodeField(const Message& message, const FieldDescriptor* field) {
  const Reflection* reflection = message.GetReflection();
  if (field->is_map()) {
    json object = json::object();
    const FieldDescriptor* key_field = field->message_type()->map_key();
    const FieldDescriptor* value_field = field->message_type()->map_value();
    const int size = reflection->FieldSize(message, field);
    for (int i = 0; i < size; ++i) {
      const Message& entry = reflection->GetRepeatedMessage(message, field, i);
      object[MapKeyString(entry, key_field)] = EncodeScalar(entry, value_field, -1);
    }
    return object;
  }
  if (field->is_repeated()) {
    json array = json::array();
    const int size = reflection->FieldSize(message, field);
    array.get_ref<json::array_t&>().reserve(size);
    for (int i = 0; i < size; ++i) array.push_back(EncodeScalar(message, field, i));
    return array;
  }
  return EncodeScalar(message, field, -1);
}

json EncodeMessage(const Message& message) {
  if (SpecialMessage kind = SpecialMessageOf(message.GetDescriptor());
      kind != SpecialMessage::kNone) {
    return EncodeSpecial(message, kind);
  }
  json object = json::object();
  // ListFields returns exactly what Kubernetes writes: set optional scalars (even zero), set
  // messages (even empty), non-zero plain scalars (omitempty) and non-empty repeated fields.
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    object.emplace(field->json_name(), EncodeField(message, field));
  }
  return object;
}

}  // namespace

absl::Status JsonToMessage(const json& value, Message* message) {
  message->Clear();
  return DecodeMessage(value, message, /*path=*/nullptr, /*depth=*/0);
}

absl::Status ParseJson(std::string_view text, Message* message) {
  json value;
  // nlohmann reports positions only through parse_error; the exception stays in this function.
  try {
    value = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& error) {
    absl::string_view what = error.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " tag; keep "parse error at line 1, ...".
    if (size_t tag_end = what.find("] "); tag_end != absl::string_view::npos) {
      what.remove_prefix(tag_end + 2);
    }
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", what));
  } catch (const json::exception& error) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", error.what()));
  }
  return JsonToMessage(value, message);
}

json MessageToJson(const Message& message) { return EncodeMessage(message); }

std::string PrintJson(const Message& message, bool pretty) {
  return DumpJson(MessageToJson(message), pretty ? 2 : -1);
}

}  // namespace capstan::api
