// Set-up every Capstan service process shares.
#ifndef CAPSTAN_LIB_BASE_PROCESS_H_
#define CAPSTAN_LIB_BASE_PROCESS_H_

namespace capstan::base {

// Call first in main, before any thread exists:
// - turns off absl::Mutex deadlock detection, which Debian's Abseil (built without NDEBUG) leaves
//   on: it keeps one global lock-order graph updated by every lock, serializing all threads;
// - blocks SIGTERM and SIGINT in every thread, so WaitForTerminationSignal receives them and
//   shutdown runs on an ordinary thread rather than in a signal handler.
void InitServiceProcess();

// Blocks until SIGTERM or SIGINT; returns the signal.
int WaitForTerminationSignal();

}  // namespace capstan::base

#endif  // CAPSTAN_LIB_BASE_PROCESS_H_
