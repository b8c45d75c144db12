#include "bench/report.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace capstan::bench {
namespace {

std::string WithThousands(int64_t v) {
  std::string digits = absl::StrCat(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

// Fields are tab-separated and the table is Markdown: neither may appear inside a field.
std::string Clean(const std::string& s) {
  return absl::StrReplaceAll(s, {{"\t", " "}, {"\n", " "}, {"|", "/"}});
}

}  // namespace

std::string FormatFigure(const Figure& figure) {
  const double v = figure.value;
  std::string number;
  if (std::fabs(v) >= 1000) {
    number = WithThousands(static_cast<int64_t>(std::llround(v)));
  } else if (std::fabs(v) >= 100) {
    number = absl::StrFormat("%.0f", v);
  } else if (std::fabs(v) >= 10) {
    number = absl::StrFormat("%.1f", v);
  } else {
    number = absl::StrFormat("%.2f", v);
  }
  return number + figure.unit;
}

void Report(const ReportRow& row) {
  std::string baseline = "-";
  std::string ratio = "-";
  if (row.baseline.has_value()) {
    baseline = FormatFigure(*row.baseline);
    if (!row.baseline_name.empty()) baseline = absl::StrCat(baseline, " (", row.baseline_name, ")");
    if (row.baseline->value != 0) {
      ratio = absl::StrFormat("%.2fx", row.figure.value / row.baseline->value);
    }
  }
  std::string met = row.met.has_value() ? (*row.met ? "yes" : "no") : "-";
  std::printf("BENCH\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", Clean(row.table).c_str(),
              Clean(row.workload).c_str(), Clean(FormatFigure(row.figure)).c_str(),
              Clean(baseline).c_str(), ratio.c_str(),
              Clean(row.goal.empty() ? "-" : row.goal).c_str(), met.c_str());
  std::fflush(stdout);
}

}  // namespace capstan::bench
