// Set-up every Capstan service process shares.
#ifndef CAPSTAN_LIB_BASE_PROCESS_H_
#define CAPSTAN_LIB_BASE_PROCESS_H_

#include <string>
#include <utility>
#include <vector>

namespace capstan::base {

// Call first in main, before any thread exists:
// - turns off absl::Mutex deadlock detection, which Debian's Abseil (built without NDEBUG) leaves
//   on: it keeps one global lock-order graph updated by every lock, serializing all threads;
// - blocks SIGTERM and SIGINT in every thread, so WaitForTerminationSignal receives them and
//   shutdown runs on an ordinary thread rather than in a signal handler.
void InitServiceProcess();

// Blocks until SIGTERM or SIGINT; returns the signal.
int WaitForTerminationSignal();

// Writes KEY=VALUE lines (a service's --address_file, read by tests and scripts once it serves)
// to a temporary name and renames it, so that a reader never sees half a file. No-op when path
// is empty.
void WriteAddressFile(const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& addresses);

}  // namespace capstan::base

#endif  // CAPSTAN_LIB_BASE_PROCESS_H_
