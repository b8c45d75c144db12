#include "lib/api/validation.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace capstan::api {
namespace {

// Texts and regexes as Kubernetes writes them in k8s.io/apimachinery/pkg/util/validation, so that
// messages compare equal with a real API server's. The regexes appear only in messages: matching
// is done by the hand-written loops below (std::regex is far too slow for per-object use).
constexpr char kDNS1123LabelFmt[] = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
constexpr char kDNS1123LabelErrMsg[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character";
constexpr char kDNS1123SubdomainFmt[] =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr char kDNS1123SubdomainErrMsg[] =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character";
constexpr char kQualifiedNameFmt[] = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr char kQualifiedNameErrMsg[] =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";
constexpr char kLabelValueFmt[] = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr char kLabelValueErrMsg[] =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character";

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// [a-z0-9]([-a-z0-9]*[a-z0-9])? without a length limit (the subdomain regex applies it per part).
bool MatchesDNS1123LabelPattern(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool MatchesDNS1123SubdomainPattern(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part =
        s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!MatchesDNS1123LabelPattern(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool MatchesQualifiedNamePattern(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

std::string MaxLenError(size_t length) {
  return "must be no more than " + std::to_string(length) + " characters";
}

// Kubernetes' RegexError: msg (e.g. 'a' or 'b', regex used for validation is 'fmt').
std::string RegexError(const char* msg, const char* fmt,
                       std::initializer_list<const char*> examples) {
  std::string out = msg;
  out += " (e.g. ";
  bool first = true;
  for (const char* example : examples) {
    if (!first) out += " or ";
    first = false;
    out += "'";
    out += example;
    out += "', ";
  }
  out += "regex used for validation is '";
  out += fmt;
  out += "')";
  return out;
}

// Go's %q for the printable ASCII the validated values normally hold; other bytes are escaped
// as \xNN, so the output is always one line.
std::string GoQuote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

// Kubernetes' maskTrailingDash: a generateName prefix may end in '-' since random characters
// follow it, so the last dash is replaced before validating the prefix as a name.
std::string MaskTrailingDash(std::string_view prefix) {
  std::string out(prefix);
  if (out.size() > 1 && out.back() == '-') out.back() = 'a';
  return out;
}

std::vector<std::string> ValidateName(std::string_view name, bool is_prefix,
                                      bool name_is_dns_label) {
  std::string masked;
  if (is_prefix) {
    masked = MaskTrailingDash(name);
    name = masked;
  }
  return name_is_dns_label ? IsDNS1123Label(name) : IsDNS1123Subdomain(name);
}

// Proto maps iterate in an unspecified order; errors come out sorted by key so that messages
// are stable across runs.
std::vector<const google::protobuf::MapPair<std::string, std::string>*> SortedEntries(
    const google::protobuf::Map<std::string, std::string>& map) {
  std::vector<const google::protobuf::MapPair<std::string, std::string>*> entries;
  entries.reserve(map.size());
  for (const auto& entry : map) entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  return entries;
}

void ValidateLabelName(const std::string& key, const std::string& path, FieldErrors* errs) {
  for (std::string& msg : IsQualifiedName(key)) {
    errs->push_back(Invalid(path, key, std::move(msg)));
  }
}

// metav1.FinalizerOrphanDependents and FinalizerDeleteDependents, plus the namespace finalizer:
// the only finalizers allowed without a domain prefix (IsStandardFinalizerName).
constexpr char kFinalizerOrphanDependents[] = "orphan";
constexpr char kFinalizerDeleteDependents[] = "foregroundDeletion";
constexpr char kFinalizerKubernetes[] = "kubernetes";

void ValidateFinalizers(const google::protobuf::RepeatedPtrField<std::string>& finalizers,
                        const std::string& path, FieldErrors* errs) {
  bool has_orphan = false;
  bool has_foreground = false;
  for (const std::string& finalizer : finalizers) {
    std::vector<std::string> msgs = IsQualifiedName(finalizer);
    for (std::string& msg : msgs) errs->push_back(Invalid(path, finalizer, std::move(msg)));
    if (msgs.empty() && finalizer.find('/') == std::string::npos &&
        finalizer != kFinalizerOrphanDependents && finalizer != kFinalizerDeleteDependents &&
        finalizer != kFinalizerKubernetes) {
      errs->push_back(
          Invalid(path, finalizer,
                  "name is neither a standard finalizer name nor is it fully qualified"));
    }
    has_orphan |= finalizer == kFinalizerOrphanDependents;
    has_foreground |= finalizer == kFinalizerDeleteDependents;
  }
  if (has_orphan && has_foreground) {
    std::string all;
    for (const std::string& finalizer : finalizers) {
      if (!all.empty()) all += ",";
      all += finalizer;
    }
    errs->push_back(Invalid(path, all,
                            std::string("finalizer ") + kFinalizerOrphanDependents + " and " +
                                kFinalizerDeleteDependents + " cannot be both set"));
  }
}

// The version part of an apiVersion, as schema.ParseGroupVersion splits it: "v1" -> "v1",
// "apps/v1" -> "v1"; anything with more than one '/' does not parse and has no version.
std::string_view VersionOf(std::string_view api_version) {
  size_t slash = api_version.find('/');
  if (slash == std::string_view::npos) return api_version;
  if (api_version.find('/', slash + 1) != std::string_view::npos) return {};
  return api_version.substr(slash + 1);
}

void ValidateOwnerReferences(
    const google::protobuf::RepeatedPtrField<capstan::meta::v1::OwnerReference>& refs,
    const std::string& path, FieldErrors* errs) {
  // Kubernetes reports these fields under the list's path without an index; kept for parity.
  std::string first_controller;
  for (const auto& ref : refs) {
    if (VersionOf(ref.api_version()).empty()) {
      errs->push_back(
          Invalid(path + ".apiVersion", ref.api_version(), "version must not be empty"));
    }
    if (ref.kind().empty()) {
      errs->push_back(Invalid(path + ".kind", ref.kind(), "kind must not be empty"));
    }
    if (ref.name().empty()) {
      errs->push_back(Invalid(path + ".name", ref.name(), "name must not be empty"));
    }
    if (ref.uid().empty()) {
      errs->push_back(Invalid(path + ".uid", ref.uid(), "uid must not be empty"));
    }
    // BannedOwners: events are deleted independently, so nothing may depend on one.
    if (ref.api_version() == "v1" && ref.kind() == "Event") {
      errs->push_back(Invalid(path, ref.kind() + "/" + ref.name(),
                              "/v1, Kind=Event is disallowed from being an owner"));
    }
    if (ref.has_controller() && ref.controller()) {
      std::string current = ref.kind() + "/" + ref.name();
      if (!first_controller.empty()) {
        errs->push_back(Invalid(
            path, current,
            "Only one reference can have Controller set to true. Found \"true\" in references "
            "for " + first_controller + " and " + current));
      } else {
        first_controller = std::move(current);
      }
    }
  }
}

}  // namespace

FieldError Required(std::string field, std::string detail) {
  return FieldError{kFieldValueRequired, std::move(field), std::move(detail), ""};
}
FieldError Invalid(std::string field, std::string bad_value, std::string detail) {
  return FieldError{kFieldValueInvalid, std::move(field), std::move(detail), std::move(bad_value)};
}
FieldError NotSupported(std::string field, std::string bad_value,
                        const std::vector<std::string>& valid_values) {
  std::string detail;
  if (!valid_values.empty()) {
    detail = "supported values: ";
    for (size_t i = 0; i < valid_values.size(); ++i) {
      if (i > 0) detail += ", ";
      detail += GoQuote(valid_values[i]);
    }
  }
  return FieldError{kFieldValueNotSupported, std::move(field), std::move(detail),
                    std::move(bad_value)};
}
FieldError Duplicate(std::string field, std::string bad_value) {
  return FieldError{kFieldValueDuplicate, std::move(field), "", std::move(bad_value)};
}
FieldError TooLong(std::string field, size_t max_length) {
  return FieldError{kFieldValueTooLong, std::move(field),
                    "must have at most " + std::to_string(max_length) + " bytes", ""};
}
FieldError Forbidden(std::string field, std::string detail) {
  return FieldError{kFieldValueForbidden, std::move(field), std::move(detail), ""};
}

std::string FormatFieldError(const FieldError& error) {
  // field.Error.Error(): "<field>: <type>[: <value>][: <detail>]"; Required, Forbidden and
  // TooLong carry no value.
  std::string out = error.field;
  out += ": ";
  if (error.type == kFieldValueRequired) {
    out += "Required value";
  } else if (error.type == kFieldValueForbidden) {
    out += "Forbidden";
  } else if (error.type == kFieldValueTooLong) {
    out += "Too long";
  } else {
    if (error.type == kFieldValueInvalid) {
      out += "Invalid value";
    } else if (error.type == kFieldValueNotSupported) {
      out += "Unsupported value";
    } else if (error.type == kFieldValueDuplicate) {
      out += "Duplicate value";
    } else {
      out += error.type;
    }
    out += ": ";
    out += GoQuote(error.bad_value);
  }
  if (!error.detail.empty()) {
    out += ": ";
    out += error.detail;
  }
  return out;
}

std::string FormatFieldErrors(const FieldErrors& errors) {
  std::string out;
  for (const FieldError& error : errors) {
    if (!out.empty()) out += ", ";
    out += FormatFieldError(error);
  }
  return out;
}

bool IsDNS1123SubdomainValid(std::string_view value) {
  return value.size() <= kDNS1123SubdomainMaxLength && MatchesDNS1123SubdomainPattern(value);
}
bool IsDNS1123LabelValid(std::string_view value) {
  return value.size() <= kDNS1123LabelMaxLength && MatchesDNS1123LabelPattern(value);
}
bool IsQualifiedNameValid(std::string_view value) {
  size_t slash = value.find('/');
  std::string_view name = value;
  if (slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) return false;
    if (!IsDNS1123SubdomainValid(value.substr(0, slash))) return false;
    name = value.substr(slash + 1);
  }
  return name.size() <= kQualifiedNameMaxLength && MatchesQualifiedNamePattern(name);
}
bool IsLabelValueValid(std::string_view value) {
  return value.empty() ||
         (value.size() <= kLabelValueMaxLength && MatchesQualifiedNamePattern(value));
}

std::vector<std::string> IsDNS1123Subdomain(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kDNS1123SubdomainMaxLength) {
    errs.push_back(MaxLenError(kDNS1123SubdomainMaxLength));
  }
  if (!MatchesDNS1123SubdomainPattern(value)) {
    errs.push_back(RegexError(kDNS1123SubdomainErrMsg, kDNS1123SubdomainFmt, {"example.com"}));
  }
  return errs;
}

std::vector<std::string> IsDNS1123Label(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kDNS1123LabelMaxLength) errs.push_back(MaxLenError(kDNS1123LabelMaxLength));
  if (!MatchesDNS1123LabelPattern(value)) {
    // A valid subdomain that is not a valid label can only be failing on its dots.
    if (MatchesDNS1123SubdomainPattern(value)) {
      errs.push_back("must not contain dots");
    } else {
      errs.push_back(RegexError(kDNS1123LabelErrMsg, kDNS1123LabelFmt, {"my-name", "123-abc"}));
    }
  }
  return errs;
}

std::vector<std::string> IsQualifiedName(std::string_view value) {
  std::vector<std::string> errs;
  std::string_view name = value;
  size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    if (value.find('/', slash + 1) != std::string_view::npos) {
      errs.push_back("a qualified name " +
                     RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                {"MyName", "my.name", "123-abc"}) +
                     " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
      return errs;
    }
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) {
      errs.push_back("prefix part must be non-empty");
    } else {
      for (std::string& msg : IsDNS1123Subdomain(prefix)) errs.push_back("prefix part " + msg);
    }
  }
  if (name.empty()) {
    errs.push_back("name part must be non-empty");
  } else if (name.size() > kQualifiedNameMaxLength) {
    errs.push_back("name part " + MaxLenError(kQualifiedNameMaxLength));
  }
  if (!MatchesQualifiedNamePattern(name)) {
    errs.push_back("name part " + RegexError(kQualifiedNameErrMsg, kQualifiedNameFmt,
                                             {"MyName", "my.name", "123-abc"}));
  }
  return errs;
}

std::vector<std::string> IsValidLabelValue(std::string_view value) {
  std::vector<std::string> errs;
  if (value.size() > kLabelValueMaxLength) errs.push_back(MaxLenError(kLabelValueMaxLength));
  if (!value.empty() && !MatchesQualifiedNamePattern(value)) {
    errs.push_back(
        RegexError(kLabelValueErrMsg, kLabelValueFmt, {"MyValue", "my_value", "12345"}));
  }
  return errs;
}

void ValidateLabels(const google::protobuf::Map<std::string, std::string>& labels,
                    const std::string& path, FieldErrors* errs) {
  // Fast path: nearly every object is valid, and then nothing is sorted or allocated.
  bool all_valid = true;
  for (const auto& [key, value] : labels) {
    if (!IsQualifiedNameValid(key) || !IsLabelValueValid(value)) {
      all_valid = false;
      break;
    }
  }
  if (all_valid) return;
  for (const auto* entry : SortedEntries(labels)) {
    ValidateLabelName(entry->first, path, errs);
    for (std::string& msg : IsValidLabelValue(entry->second)) {
      errs->push_back(Invalid(path, entry->second, std::move(msg)));
    }
  }
}

void ValidateAnnotations(const google::protobuf::Map<std::string, std::string>& annotations,
                         const std::string& path, FieldErrors* errs) {
  size_t total_size = 0;
  bool all_keys_valid = true;
  std::string lowered;
  for (const auto& [key, value] : annotations) {
    total_size += key.size() + value.size();
    // Annotation keys are qualified names in which case does not matter (the prefix may have
    // capitals), so Kubernetes lowercases before checking.
    lowered.assign(key);
    for (char& c : lowered) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    if (!IsQualifiedNameValid(lowered)) all_keys_valid = false;
  }
  if (!all_keys_valid) {
    for (const auto* entry : SortedEntries(annotations)) {
      lowered.assign(entry->first);
      for (char& c : lowered) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      for (std::string& msg : IsQualifiedName(lowered)) {
        errs->push_back(Invalid(path, entry->first, std::move(msg)));
      }
    }
  }
  if (total_size > kTotalAnnotationSizeLimitBytes) {
    errs->push_back(TooLong(path, kTotalAnnotationSizeLimitBytes));
  }
}

void ValidateObjectMeta(const capstan::meta::v1::ObjectMeta& meta, bool namespaced,
                        bool name_is_dns_label, FieldErrors* errs) {
  if (!meta.generate_name().empty()) {
    for (std::string& msg : ValidateName(meta.generate_name(), /*is_prefix=*/true,
                                         name_is_dns_label)) {
      errs->push_back(Invalid("metadata.generateName", meta.generate_name(), std::move(msg)));
    }
  }
  // The server fills name from generateName before storing; an object that has neither cannot
  // be named.
  if (meta.name().empty()) {
    if (meta.generate_name().empty()) {
      errs->push_back(Required("metadata.name", "name or generateName is required"));
    }
  } else {
    for (std::string& msg : ValidateName(meta.name(), /*is_prefix=*/false, name_is_dns_label)) {
      errs->push_back(Invalid("metadata.name", meta.name(), std::move(msg)));
    }
  }
  if (namespaced) {
    if (meta.namespace_().empty()) {
      errs->push_back(Required("metadata.namespace", ""));
    } else {
      for (std::string& msg : IsDNS1123Label(meta.namespace_())) {
        errs->push_back(Invalid("metadata.namespace", meta.namespace_(), std::move(msg)));
      }
    }
  } else if (!meta.namespace_().empty()) {
    errs->push_back(Forbidden("metadata.namespace", "not allowed on this type"));
  }
  if (meta.generation() < 0) {
    errs->push_back(Invalid("metadata.generation", std::to_string(meta.generation()),
                            "must be greater than or equal to 0"));
  }
  ValidateLabels(meta.labels(), "metadata.labels", errs);
  ValidateAnnotations(meta.annotations(), "metadata.annotations", errs);
  ValidateOwnerReferences(meta.owner_references(), "metadata.ownerReferences", errs);
  ValidateFinalizers(meta.finalizers(), "metadata.finalizers", errs);
}

void ValidateLabelSelector(const capstan::meta::v1::LabelSelector& selector,
                           const std::string& path, FieldErrors* errs) {
  ValidateLabels(selector.match_labels(), path + ".matchLabels", errs);
  for (int i = 0; i < selector.match_expressions_size(); ++i) {
    const auto& expr = selector.match_expressions(i);
    const std::string expr_path = path + ".matchExpressions[" + std::to_string(i) + "]";
    const std::string& op = expr.operator_();
    if (op == "In" || op == "NotIn") {
      if (expr.values().empty()) {
        errs->push_back(Required(expr_path + ".values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"));
      }
    } else if (op == "Exists" || op == "DoesNotExist") {
      if (!expr.values().empty()) {
        errs->push_back(Forbidden(expr_path + ".values",
                                  "may not be specified when `operator` is 'Exists' or "
                                  "'DoesNotExist'"));
      }
    } else {
      errs->push_back(Invalid(expr_path + ".operator", op, "not a valid selector operator"));
    }
    ValidateLabelName(expr.key(), expr_path + ".key", errs);
    for (int j = 0; j < expr.values_size(); ++j) {
      for (std::string& msg : IsValidLabelValue(expr.values(j))) {
        errs->push_back(Invalid(expr_path + ".values[" + std::to_string(j) + "]", expr.values(j),
                                std::move(msg)));
      }
    }
  }
}

}  // namespace capstan::api
