#include "lib/api/labels.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "lib/api/validation.h"

namespace capstan::api {

std::optional<int64_t> ParseInt64(std::string_view text) {
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    negative = text[i] == '-';
    ++i;
  }
  if (i == text.size()) return std::nullopt;
  // Accumulate as a negative number so that INT64_MIN parses without overflow.
  int64_t value = 0;
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c < '0' || c > '9') return std::nullopt;
    int digit = c - '0';
    if (value < (kMin + digit) / 10) return std::nullopt;
    value = value * 10 - digit;
  }
  if (!negative) {
    if (value == kMin) return std::nullopt;
    value = -value;
  }
  return value;
}

namespace {

const char* OperatorText(LabelOperator op) {
  switch (op) {
    case LabelOperator::kIn: return "in";
    case LabelOperator::kNotIn: return "notin";
    case LabelOperator::kEquals: return "=";
    case LabelOperator::kDoubleEquals: return "==";
    case LabelOperator::kNotEquals: return "!=";
    case LabelOperator::kExists: return "exists";
    case LabelOperator::kDoesNotExist: return "!";
    case LabelOperator::kGreaterThan: return "gt";
    case LabelOperator::kLessThan: return "lt";
  }
  return "";
}

// Tokens of Kubernetes' selector lexer (pkg/labels/selector.go).
enum class Token {
  kEndOfString,
  kClosedPar,
  kComma,
  kDoesNotExist,  // "!"
  kDoubleEquals,
  kEquals,
  kGreaterThan,
  kIdentifier,
  kIn,
  kLessThan,
  kNotEquals,
  kNotIn,
  kOpenPar,
};

struct Lexeme {
  Token token;
  std::string_view literal;
  size_t position;  // byte offset in the selector text, for error messages
};

bool IsWhitespace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }
bool IsSpecialSymbol(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

std::vector<Lexeme> Lex(std::string_view text) {
  std::vector<Lexeme> out;
  size_t i = 0;
  while (true) {
    while (i < text.size() && IsWhitespace(text[i])) ++i;
    if (i == text.size()) {
      out.push_back({Token::kEndOfString, {}, i});
      return out;
    }
    size_t start = i;
    char c = text[i];
    if (IsSpecialSymbol(c)) {
      // Longest match among the two-character operators "!=" and "==".
      bool followed_by_equals = i + 1 < text.size() && text[i + 1] == '=';
      Token token;
      size_t length = 1;
      switch (c) {
        case '!':
          token = followed_by_equals ? Token::kNotEquals : Token::kDoesNotExist;
          length = followed_by_equals ? 2 : 1;
          break;
        case '=':
          token = followed_by_equals ? Token::kDoubleEquals : Token::kEquals;
          length = followed_by_equals ? 2 : 1;
          break;
        case '(': token = Token::kOpenPar; break;
        case ')': token = Token::kClosedPar; break;
        case ',': token = Token::kComma; break;
        case '>': token = Token::kGreaterThan; break;
        default: token = Token::kLessThan; break;
      }
      i += length;
      out.push_back({token, text.substr(start, length), start});
      continue;
    }
    while (i < text.size() && !IsWhitespace(text[i]) && !IsSpecialSymbol(text[i])) ++i;
    std::string_view word = text.substr(start, i - start);
    Token token = word == "in" ? Token::kIn : word == "notin" ? Token::kNotIn : Token::kIdentifier;
    out.push_back({token, word, start});
  }
}

}  // namespace

// A recursive-descent parser following Kubernetes' Parser, with the same error texts; the
// position of the offending token is appended since Kubernetes' messages are hard to place in
// long selectors.
class LabelSelectorParser {
 public:
  explicit LabelSelectorParser(std::string_view text) : lexemes_(Lex(text)) {}

  absl::StatusOr<LabelSelector> Parse() {
    LabelSelector selector;
    while (true) {
      const Lexeme& next = Lookahead(/*values=*/true);
      if (next.token == Token::kEndOfString) break;
      if (next.token != Token::kIdentifier && next.token != Token::kDoesNotExist) {
        return Error(next, "expected: !, identifier, or 'end of string'");
      }
      absl::StatusOr<LabelRequirement> requirement = ParseRequirement();
      if (!requirement.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unable to parse requirement: ", requirement.status().message()));
      }
      selector.requirements_.push_back(*std::move(requirement));
      const Lexeme& separator = Consume(/*values=*/true);
      if (separator.token == Token::kEndOfString) break;
      if (separator.token != Token::kComma) {
        return Error(separator, "expected: ',' or 'end of string'");
      }
      const Lexeme& after = Lookahead(/*values=*/true);
      if (after.token != Token::kIdentifier && after.token != Token::kDoesNotExist) {
        return Error(after, "expected: identifier after ','");
      }
    }
    selector.SortRequirements();
    return selector;
  }

 private:
  // In value position the keywords "in" and "notin" are ordinary identifiers.
  Lexeme Adjust(Lexeme lexeme, bool values) const {
    if (values && (lexeme.token == Token::kIn || lexeme.token == Token::kNotIn)) {
      lexeme.token = Token::kIdentifier;
    }
    return lexeme;
  }
  Lexeme Lookahead(bool values) const { return Adjust(lexemes_[next_], values); }
  Lexeme Consume(bool values) {
    Lexeme lexeme = Adjust(lexemes_[next_], values);
    if (lexeme.token != Token::kEndOfString) ++next_;
    return lexeme;
  }

  static absl::Status Error(const Lexeme& at, std::string_view expected) {
    return absl::InvalidArgumentError(absl::StrCat("found '", std::string(at.literal), "', ",
                                                   std::string(expected), " (at position ",
                                                   at.position, ")"));
  }

  absl::StatusOr<LabelRequirement> ParseRequirement() {
    bool does_not_exist = false;
    Lexeme key = Consume(/*values=*/true);
    if (key.token == Token::kDoesNotExist) {
      does_not_exist = true;
      key = Consume(/*values=*/true);
    }
    if (key.token != Token::kIdentifier) return Error(key, "expected: identifier");
    std::string key_text(key.literal);
    // Kubernetes checks the key before reading the operator, so a bad key is the error reported
    // even when the rest is malformed too.
    if (!IsQualifiedNameValid(key_text)) {
      return absl::InvalidArgumentError(FormatFieldError(
          Invalid("key", key_text, absl::StrJoin(IsQualifiedName(key_text), "; "))));
    }
    const Token after_key = Lookahead(/*values=*/true).token;
    if (does_not_exist) {
      return LabelSelector::MakeRequirement(std::move(key_text), LabelOperator::kDoesNotExist, {});
    }
    if (after_key == Token::kEndOfString || after_key == Token::kComma) {
      return LabelSelector::MakeRequirement(std::move(key_text), LabelOperator::kExists, {});
    }

    Lexeme op_lexeme = Consume(/*values=*/false);
    LabelOperator op;
    switch (op_lexeme.token) {
      case Token::kIn: op = LabelOperator::kIn; break;
      case Token::kNotIn: op = LabelOperator::kNotIn; break;
      case Token::kEquals: op = LabelOperator::kEquals; break;
      case Token::kDoubleEquals: op = LabelOperator::kDoubleEquals; break;
      case Token::kNotEquals: op = LabelOperator::kNotEquals; break;
      case Token::kGreaterThan: op = LabelOperator::kGreaterThan; break;
      case Token::kLessThan: op = LabelOperator::kLessThan; break;
      default:
        return Error(op_lexeme, "expected: in, notin, =, ==, !=, gt, lt");
    }
    std::vector<std::string> values;
    absl::Status status = op == LabelOperator::kIn || op == LabelOperator::kNotIn
                              ? ParseValueSet(&values)
                              : ParseExactValue(&values);
    if (!status.ok()) return status;
    return LabelSelector::MakeRequirement(std::move(key_text), op, std::move(values));
  }

  // "(" [value] {"," [value]} ")": empty entries stand for the empty value, as in Kubernetes
  // ("x in ()" and "x in (a,)" both include "").
  absl::Status ParseValueSet(std::vector<std::string>* values) {
    Lexeme open = Consume(/*values=*/true);
    if (open.token != Token::kOpenPar) return Error(open, "expected: '('");
    Lexeme first = Lookahead(/*values=*/true);
    if (first.token == Token::kClosedPar) {
      Consume(/*values=*/true);
      values->emplace_back();
      return absl::OkStatus();
    }
    if (first.token != Token::kIdentifier && first.token != Token::kComma) {
      return Error(first, "expected: ',', ')' or identifier");
    }
    bool expect_value = true;  // at the start or just after a comma
    while (true) {
      Lexeme lexeme = Consume(/*values=*/true);
      if (lexeme.token == Token::kIdentifier && expect_value) {
        values->emplace_back(lexeme.literal);
        expect_value = false;
        Lexeme after = Lookahead(/*values=*/true);
        if (after.token != Token::kComma && after.token != Token::kClosedPar) {
          return Error(after, "expected: ',' or ')'");
        }
      } else if (lexeme.token == Token::kComma) {
        if (expect_value) values->emplace_back();  // "(," or ",,"
        expect_value = true;
      } else if (lexeme.token == Token::kClosedPar) {
        if (expect_value) values->emplace_back();  // ",)"
        return absl::OkStatus();
      } else {
        return Error(lexeme, "expected: ',', or identifier");
      }
    }
  }

  // A single value; nothing before "," or the end means the empty value ("x=" or "x!=").
  absl::Status ParseExactValue(std::vector<std::string>* values) {
    Lexeme next = Lookahead(/*values=*/true);
    if (next.token == Token::kEndOfString || next.token == Token::kComma) {
      values->emplace_back();
      return absl::OkStatus();
    }
    Lexeme value = Consume(/*values=*/true);
    if (value.token != Token::kIdentifier) return Error(value, "expected: identifier");
    values->emplace_back(value.literal);
    return absl::OkStatus();
  }

  std::vector<Lexeme> lexemes_;
  size_t next_ = 0;
};

LabelRequirement::LabelRequirement(std::string key, LabelOperator op,
                                   std::vector<std::string> values)
    : key_(std::move(key)), op_(op), values_(std::move(values)) {
  if ((op_ == LabelOperator::kGreaterThan || op_ == LabelOperator::kLessThan) &&
      values_.size() == 1) {
    bound_ = ParseInt64(values_[0]).value_or(0);
  }
}

bool operator<(const LabelRequirement& a, const LabelRequirement& b) {
  if (a.key_ != b.key_) return a.key_ < b.key_;
  if (a.op_ != b.op_) return a.op_ < b.op_;
  return a.values_ < b.values_;
}

bool LabelRequirement::HasValue(const std::string& value) const {
  // Values are few; a linear scan beats binary search below a handful.
  if (values_.size() <= 8) {
    for (const std::string& v : values_) {
      if (v == value) return true;
    }
    return false;
  }
  return std::binary_search(values_.begin(), values_.end(), value);
}

bool LabelRequirement::Matches(const std::string* value) const {
  switch (op_) {
    case LabelOperator::kIn:
    case LabelOperator::kEquals:
    case LabelOperator::kDoubleEquals:
      return value != nullptr && HasValue(*value);
    case LabelOperator::kNotIn:
    case LabelOperator::kNotEquals:
      // Kubernetes: an absent label is "not in" any set.
      return value == nullptr || !HasValue(*value);
    case LabelOperator::kExists:
      return value != nullptr;
    case LabelOperator::kDoesNotExist:
      return value == nullptr;
    case LabelOperator::kGreaterThan:
    case LabelOperator::kLessThan: {
      if (value == nullptr) return false;
      std::optional<int64_t> number = ParseInt64(*value);
      if (!number) return false;
      return op_ == LabelOperator::kGreaterThan ? *number > bound_ : *number < bound_;
    }
  }
  return false;
}

std::string LabelRequirement::String() const {
  switch (op_) {
    case LabelOperator::kExists:
      return key_;
    case LabelOperator::kDoesNotExist:
      return "!" + key_;
    case LabelOperator::kIn:
    case LabelOperator::kNotIn:
      return absl::StrCat(key_, op_ == LabelOperator::kIn ? " in (" : " notin (",
                          absl::StrJoin(values_, ","), ")");
    case LabelOperator::kGreaterThan:
      return absl::StrCat(key_, ">", values_.empty() ? "" : values_[0]);
    case LabelOperator::kLessThan:
      return absl::StrCat(key_, "<", values_.empty() ? "" : values_[0]);
    default:
      return absl::StrCat(key_, OperatorText(op_), values_.empty() ? "" : values_[0]);
  }
}

absl::StatusOr<LabelRequirement> LabelSelector::MakeRequirement(std::string key,
                                                                LabelOperator op,
                                                                std::vector<std::string> values) {
  // Same checks and texts as labels.NewRequirement; all problems are reported together.
  std::vector<std::string> problems;
  std::vector<std::string> key_errors = IsQualifiedName(key);
  if (!key_errors.empty()) {
    problems.push_back(FormatFieldError(Invalid("key", key, absl::StrJoin(key_errors, "; "))));
  }
  switch (op) {
    case LabelOperator::kIn:
    case LabelOperator::kNotIn:
      if (values.empty()) {
        problems.push_back("values: Invalid value: []: for 'in', 'notin' operators, values set "
                           "can't be empty");
      }
      break;
    case LabelOperator::kEquals:
    case LabelOperator::kDoubleEquals:
    case LabelOperator::kNotEquals:
      if (values.size() != 1) {
        problems.push_back("values: Invalid value: exact-match compatibility requires one single "
                           "value");
      }
      break;
    case LabelOperator::kExists:
    case LabelOperator::kDoesNotExist:
      if (!values.empty()) {
        problems.push_back("values: Invalid value: values set must be empty for exists and does "
                           "not exist");
      }
      break;
    case LabelOperator::kGreaterThan:
    case LabelOperator::kLessThan:
      if (values.size() != 1) {
        problems.push_back("values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is "
                           "required");
      }
      for (size_t i = 0; i < values.size(); ++i) {
        if (!ParseInt64(values[i])) {
          problems.push_back(FormatFieldError(
              Invalid(absl::StrCat("values[", i, "]"), values[i],
                      "for 'Gt', 'Lt' operators, the value must be an integer")));
        }
      }
      break;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    std::vector<std::string> value_errors = IsValidLabelValue(values[i]);
    if (!value_errors.empty()) {
      problems.push_back(FormatFieldError(Invalid(absl::StrCat("values[", i, "][", key, "]"),
                                                  values[i], absl::StrJoin(value_errors, "; "))));
    }
  }
  if (!problems.empty()) {
    // Kubernetes' aggregate: one error bare, several in brackets.
    return absl::InvalidArgumentError(problems.size() == 1
                                          ? problems[0]
                                          : absl::StrCat("[", absl::StrJoin(problems, ", "), "]"));
  }
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  return LabelRequirement(std::move(key), op, std::move(values));
}

void LabelSelector::SortRequirements() {
  std::sort(requirements_.begin(), requirements_.end());
  // Identical terms add nothing; dropping them keeps String() and == canonical.
  requirements_.erase(std::unique(requirements_.begin(), requirements_.end()),
                      requirements_.end());
}

absl::StatusOr<LabelSelector> LabelSelector::Parse(std::string_view text) {
  return LabelSelectorParser(text).Parse();
}

absl::StatusOr<LabelSelector> LabelSelector::FromProto(
    const capstan::meta::v1::LabelSelector& proto) {
  LabelSelector selector;
  selector.requirements_.reserve(proto.match_labels_size() + proto.match_expressions_size());
  for (const auto& [key, value] : proto.match_labels()) {
    absl::StatusOr<LabelRequirement> requirement =
        MakeRequirement(key, LabelOperator::kEquals, {value});
    if (!requirement.ok()) return requirement.status();
    selector.requirements_.push_back(*std::move(requirement));
  }
  for (const auto& expression : proto.match_expressions()) {
    LabelOperator op;
    const std::string& name = expression.operator_();
    if (name == "In") {
      op = LabelOperator::kIn;
    } else if (name == "NotIn") {
      op = LabelOperator::kNotIn;
    } else if (name == "Exists") {
      op = LabelOperator::kExists;
    } else if (name == "DoesNotExist") {
      op = LabelOperator::kDoesNotExist;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" is not a valid label selector operator"));
    }
    absl::StatusOr<LabelRequirement> requirement = MakeRequirement(
        expression.key(), op,
        std::vector<std::string>(expression.values().begin(), expression.values().end()));
    if (!requirement.ok()) return requirement.status();
    selector.requirements_.push_back(*std::move(requirement));
  }
  selector.SortRequirements();
  return selector;
}

std::string LabelSelector::String() const {
  std::string out;
  for (const LabelRequirement& requirement : requirements_) {
    if (!out.empty()) out += ',';
    out += requirement.String();
  }
  return out;
}

std::optional<std::string> LabelSelector::RequiredValue(std::string_view key) const {
  // Requirements are sorted by key, so the ones for `key` are adjacent.
  auto it = std::lower_bound(
      requirements_.begin(), requirements_.end(), key,
      [](const LabelRequirement& r, std::string_view k) { return r.key() < k; });
  for (; it != requirements_.end() && it->key() == key; ++it) {
    switch (it->op()) {
      case LabelOperator::kEquals:
      case LabelOperator::kDoubleEquals:
      case LabelOperator::kIn:
        if (it->values().size() == 1) return it->values()[0];
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

}  // namespace capstan::api
