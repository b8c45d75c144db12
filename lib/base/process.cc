#include "lib/base/process.h"

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <fstream>

#include "absl/synchronization/mutex.h"

namespace capstan::base {
namespace {

sigset_t TerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

}  // namespace

void InitServiceProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  sigset_t signals = TerminationSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int WaitForTerminationSignal() {
  sigset_t signals = TerminationSignals();
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

void WriteAddressFile(const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& addresses) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    for (const auto& [key, value] : addresses) out << key << "=" << value << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());
}

}  // namespace capstan::base
