// capstanctl's commands: kubectl's look and feel over lib/client.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_COMMANDS_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_COMMANDS_H_

#include <cstdint>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace capstan::capstanctl {

// Exit codes, as kubectl's: 1 for any failure, 2 for a command line that makes no sense.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

struct Flags {
  std::string server;             // --server: overrides the configuration
  std::string config;             // --config PATH
  std::string ns;                 // -n / --namespace; empty: the default namespace
  bool all_namespaces = false;    // -A
  std::string selector;           // -l
  std::string field_selector;     // --field-selector
  std::string output;             // -o: "", wide, yaml, json, name
  bool watch = false;             // -w
  int64_t chunk_size = 500;       // --chunk-size; 0 lists everything at once
  std::vector<std::string> filenames;    // -f
  std::optional<int64_t> grace_period;   // --grace-period (negative: the object's own)
  std::string cascade = "background";    // --cascade
  int64_t to_revision = 0;        // --to-revision (rollout undo); 0: the previous revision
  int64_t revision = 0;           // --revision (rollout history); 0: the whole history
  std::string timeout;            // --timeout (rollout status), a duration; "" or 0: forever
  std::string container;           // -c / --container (logs)
  bool follow = false;            // --follow, and -f after `logs`
  bool previous = false;          // -p / --previous (logs)
  int64_t tail = -1;              // --tail (logs); -1: everything
  bool help = false;
};

struct Invocation {
  std::string command;
  std::vector<std::string> args;  // positional arguments after the command
  Flags flags;
};

// Parses argv (without the program name). InvalidArgument with a message for usage errors.
absl::StatusOr<Invocation> ParseArgs(const std::vector<std::string>& argv);

// Runs a whole command line; returns the exit code.
int Run(const std::vector<std::string>& argv, std::istream& in, std::ostream& out,
        std::ostream& err);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_COMMANDS_H_
