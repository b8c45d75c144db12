// Running a program to completion and capturing what it prints: the one way the project shells
// out (iproute2 for pod networks, ctr and ip in test harnesses). No shell is involved.
#ifndef CAPSTAN_LIB_BASE_SUBPROCESS_H_
#define CAPSTAN_LIB_BASE_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace capstan::base {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string out;     // stdout (and stderr, with merge_stderr)
  std::string err;     // stderr
};

struct CommandOptions {
  // After this the program and everything it started (its process group) get SIGKILL, and the
  // result is DeadlineExceeded with what it printed so far.
  absl::Duration timeout = absl::InfiniteDuration();
  bool merge_stderr = false;
};

// Runs args[0] (a path) with args; stdin is /dev/null. An error only when it could not be run or
// timed out: a non-zero exit is a result, for the caller to judge.
//
// posix_spawn (vfork semantics), not fork: the callers are large multi-threaded processes, and
// fork would copy their page tables for every run.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& args,
                                         const CommandOptions& options = {});

}  // namespace capstan::base

#endif  // CAPSTAN_LIB_BASE_SUBPROCESS_H_
