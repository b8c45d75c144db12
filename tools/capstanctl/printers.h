// What capstanctl prints: kubectl-style tables, ages, YAML/JSON, names and describe output.
// Pure functions of objects and a clock, so tests construct objects and compare text.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_PRINTERS_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_PRINTERS_H_

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "lib/api/scheme.h"
#include "proto/meta.pb.h"
#include <nlohmann/json.hpp>

namespace capstan::capstanctl {

// kubectl's HumanDuration: "5s", "3m2s", "15m", "4h", "4h5m", "2d", "3d4h", "400d", "2y10d".
std::string FormatAge(absl::Duration age);
// The age of a timestamp at now; "<unknown>" when the timestamp is unset.
std::string AgeOf(const capstan::meta::v1::Time& timestamp, absl::Time now);

struct TableOptions {
  bool wide = false;            // -o wide
  bool with_namespace = false;  // -A: a NAMESPACE column first
  absl::Time now = absl::Now();
};

using Row = std::vector<std::string>;

// The header and one row of `get`'s table for objects of info's kind.
Row TableHeader(const api::ResourceInfo& info, const TableOptions& options);
Row TableRow(const api::ResourceInfo& info, const google::protobuf::Message& object,
             const TableOptions& options);

// Aligns rows in columns as kubectl's tabwriter does (3 spaces of padding, minimum width 6, the
// last column unpadded). Each row ends with a newline. widths, when given, carries column widths
// from one call to the next (they only grow), so rows printed later line up with earlier ones.
std::string RenderTable(const std::vector<Row>& rows, std::vector<size_t>* widths = nullptr);

// "deployment.apps/nginx" (or "pod/web" for the core group), as -o name and apply print.
std::string TypedName(const api::ResourceInfo& info, const std::string& name);
// "deployment.apps" / "pod", as delete prints it: `pod "web" deleted`.
std::string SingularResource(const api::ResourceInfo& info);

// The object's JSON with apiVersion and kind set.
nlohmann::json ObjectJson(const api::ResourceInfo& info, const google::protobuf::Message& object);
// What kubectl prints for several objects: {apiVersion: v1, kind: List, items, metadata}.
nlohmann::json ListJson(std::vector<nlohmann::json> items);

// A readable multi-line summary of one object, ending with its events (objects of kind Event
// about it, in any order: they are sorted by time here).
std::string Describe(const api::ResourceInfo& info, const google::protobuf::Message& object,
                     const std::vector<const google::protobuf::Message*>& events, absl::Time now);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_PRINTERS_H_
