#include "lib/api/fields.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace capstan::api {
namespace {

// Kubernetes' splitTerms: commas split terms unless backslash-escaped; the escapes stay in the
// terms for UnescapeFieldSelectorValue.
std::vector<std::string_view> SplitTerms(std::string_view text) {
  std::vector<std::string_view> terms;
  if (text.empty()) return terms;
  size_t start = 0;
  bool escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (escaped) {
      escaped = false;
    } else if (text[i] == '\\') {
      escaped = true;
    } else if (text[i] == ',') {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

// Kubernetes' splitTerm: the field cannot be escaped, so the first operator found splits the
// term; "!=" and "==" are tried before "=" at each position.
bool SplitTerm(std::string_view term, std::string_view* field, FieldSelector::Operator* op,
               std::string_view* value) {
  for (size_t i = 0; i < term.size(); ++i) {
    std::string_view rest = term.substr(i);
    size_t op_length = 0;
    if (rest.substr(0, 2) == "!=") {
      *op = FieldSelector::Operator::kNotEquals;
      op_length = 2;
    } else if (rest.substr(0, 2) == "==") {
      *op = FieldSelector::Operator::kEquals;
      op_length = 2;
    } else if (rest.front() == '=') {
      *op = FieldSelector::Operator::kEquals;
      op_length = 1;
    } else {
      continue;
    }
    *field = term.substr(0, i);
    *value = rest.substr(op_length);
    return true;
  }
  return false;
}

bool RequirementLess(const FieldSelector::Requirement& a, const FieldSelector::Requirement& b) {
  return std::tie(a.field, a.op, a.value) < std::tie(b.field, b.op, b.value);
}

}  // namespace

std::string EscapeFieldSelectorValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\' || c == ',' || c == '=') out += '\\';
    out += c;
  }
  return out;
}

absl::StatusOr<std::string> UnescapeFieldSelectorValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool escaped = false;
  for (char c : value) {
    if (escaped) {
      if (c != '\\' && c != ',' && c != '=') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid field selector: invalid escape sequence: \\", std::string(1, c)));
      }
      out += c;
      escaped = false;
    } else if (c == '\\') {
      escaped = true;
    } else if (c == ',' || c == '=') {
      // Kubernetes prints the rune's number here (%v of a rune); the character is clearer.
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid field selector: unescaped character in value: '", std::string(1, c), "'"));
    } else {
      out += c;
    }
  }
  if (escaped) {
    return absl::InvalidArgumentError("invalid field selector: invalid escape sequence: \\");
  }
  return out;
}

absl::StatusOr<FieldSelector> FieldSelector::Parse(std::string_view text) {
  FieldSelector selector;
  for (std::string_view term : SplitTerms(text)) {
    if (term.empty()) continue;  // Kubernetes skips empty terms ("a=b,,c=d")
    std::string_view field;
    std::string_view raw_value;
    Operator op;
    if (!SplitTerm(term, &field, &op, &raw_value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid selector: '", std::string(text), "'; can't understand '",
                       std::string(term), "'"));
    }
    absl::StatusOr<std::string> value = UnescapeFieldSelectorValue(raw_value);
    if (!value.ok()) return value.status();
    selector.requirements_.push_back(Requirement{std::string(field), op, *std::move(value)});
  }
  std::sort(selector.requirements_.begin(), selector.requirements_.end(), RequirementLess);
  selector.requirements_.erase(
      std::unique(selector.requirements_.begin(), selector.requirements_.end()),
      selector.requirements_.end());
  return selector;
}

absl::Status FieldSelector::Validate(
    const std::function<bool(std::string_view field)>& supported) const {
  for (const Requirement& requirement : requirements_) {
    if (!supported(requirement.field)) {
      return absl::InvalidArgumentError(
          absl::StrCat("field label not supported: ", requirement.field));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> FieldSelector::RequiredValue(std::string_view field) const {
  for (const Requirement& requirement : requirements_) {
    if (requirement.op == Operator::kEquals && requirement.field == field) {
      return requirement.value;
    }
  }
  return std::nullopt;
}

std::string FieldSelector::String() const {
  std::string out;
  for (const Requirement& requirement : requirements_) {
    if (!out.empty()) out += ',';
    absl::StrAppend(&out, requirement.field, requirement.op == Operator::kEquals ? "=" : "!=",
                    EscapeFieldSelectorValue(requirement.value));
  }
  return out;
}

}  // namespace capstan::api
