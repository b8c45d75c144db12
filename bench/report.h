// The figures a benchmark reports for docs/benchmarks.md.
//
// Every benchmark prints its own detailed output for people; in addition it calls Report() once
// per headline figure. Report() prints one machine-readable line to stdout:
//
//   BENCH<TAB>table<TAB>workload<TAB>figure<TAB>baseline<TAB>ratio<TAB>goal<TAB>met
//
// scripts/bench.sh (what `make bench` runs) collects these lines, adds the machine, the commit
// and the command that produced them, and rewrites the generated tables of docs/benchmarks.md.
// A benchmark never fails because a goal is missed: "met" is reported, not asserted.
#ifndef CAPSTAN_BENCH_REPORT_H_
#define CAPSTAN_BENCH_REPORT_H_

#include <optional>
#include <string>

namespace capstan::bench {

struct Figure {
  double value = 0;
  // Printed after the value: "/s", " ms", " MB", " KB", " s", "" ...
  std::string unit;
};

struct ReportRow {
  // The table the row belongs to, e.g. "Apiserver vs etcd"; rows keep the order they are
  // reported in, tables the order of their first row.
  std::string table;
  // What was measured, e.g. "Durable creates, 256 clients".
  std::string workload;
  Figure figure;
  // The same workload on the system people would use instead, measured in the same run.
  std::optional<Figure> baseline;
  // What the baseline is, e.g. "etcd 3.4 puts" (printed next to its figure).
  std::string baseline_name;
  // The goal in words, e.g. ">= 2x etcd" or "<= 1 s"; "" when there is none.
  std::string goal;
  // Whether the goal is met; std::nullopt when there is no goal.
  std::optional<bool> met;
};

// Prints the row's BENCH line (and flushes, so that a later crash does not lose it).
void Report(const ReportRow& row);

// "4,081/s", "1.79 ms", "0.38 ms", "23.3 s": thousands separators from 1,000 up, three
// significant digits below.
std::string FormatFigure(const Figure& figure);

}  // namespace capstan::bench

#endif  // CAPSTAN_BENCH_REPORT_H_
