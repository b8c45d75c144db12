#include "services/node-agent/simulated_runtime.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace capstan::nodeagent {
namespace {

std::string EnvValue(const ContainerConfig& config, const std::string& name) {
  std::string value;
  for (const auto& [k, v] : config.env) {
    if (k == name) value = v;  // the last one wins, as in a process environment
  }
  return value;
}

int EnvInt(const ContainerConfig& config, const std::string& name, int fallback) {
  int value;
  return absl::SimpleAtoi(EnvValue(config, name), &value) ? value : fallback;
}

}  // namespace

SimulatedRuntime::SimulatedRuntime(Options options) : options_(std::move(options)) {
  timer_ = std::thread([this] { TimerLoop(); });
}

SimulatedRuntime::~SimulatedRuntime() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  timer_.join();
}

absl::Status SimulatedRuntime::Healthy() {
  absl::MutexLock lock(&mu_);
  return healthy_ ? absl::OkStatus() : absl::UnavailableError("simulated runtime is down");
}

void SimulatedRuntime::SetHealthy(bool healthy) {
  absl::MutexLock lock(&mu_);
  healthy_ = healthy;
}

absl::StatusOr<std::string> SimulatedRuntime::ImageId(const std::string& image) {
  absl::MutexLock lock(&mu_);
  if (images_.count(image) == 0) return absl::NotFoundError(absl::StrCat("image ", image, " not present"));
  return absl::StrCat("sha256:simulated-", image);
}

absl::Status SimulatedRuntime::PullImage(const std::string& image) {
  absl::MutexLock lock(&mu_);
  ++pulls_[image];
  if (options_.missing_images.count(image) > 0) {
    return absl::NotFoundError(absl::StrCat("failed to resolve reference \"", image, "\": not found"));
  }
  images_.insert(image);
  return absl::OkStatus();
}

void SimulatedRuntime::LoseTask(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return;
  it->second.info.state = ContainerState::kUnknown;
  it->second.exits_at = absl::InfiniteFuture();
}

int SimulatedRuntime::PullCount(const std::string& image) {
  absl::MutexLock lock(&mu_);
  return pulls_[image];
}

absl::Status SimulatedRuntime::CreateContainer(const ContainerConfig& config) {
  absl::MutexLock lock(&mu_);
  if (images_.count(config.image) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("image ", config.image, " not present"));
  }
  if (containers_.count(config.id) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("container ", config.id, " already exists"));
  }
  Container& c = containers_[config.id];
  c.config = config;
  c.info.id = config.id;
  c.info.image = config.image;
  c.info.labels = config.labels;
  c.info.state = ContainerState::kCreated;
  c.info.created_at = options_.clock->Now();
  c.ignores_sigterm = EnvValue(config, "CAPSTAN_SIMULATE_IGNORE_SIGTERM") == "1";
  return absl::OkStatus();
}

absl::Status SimulatedRuntime::StartContainer(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
  Container& c = it->second;
  if (c.info.state != ContainerState::kCreated) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " was already started"));
  }
  const absl::Time now = options_.clock->Now();
  // Running from the end of the start delay; until then it still shows as created.
  c.info.started_at = now + options_.start_delay;
  const int run_seconds = EnvInt(c.config, "CAPSTAN_SIMULATE_RUN_SECONDS", -1);
  c.exits_at = run_seconds < 0 ? absl::InfiniteFuture()
                               : c.info.started_at + absl::Seconds(run_seconds);
  c.planned_exit_code = EnvInt(c.config, "CAPSTAN_SIMULATE_EXIT_CODE", 0);
  if (options_.start_delay == absl::ZeroDuration()) c.info.state = ContainerState::kRunning;
  changed_.SignalAll();
  return absl::OkStatus();
}

void SimulatedRuntime::ExitLocked(Container* c, int exit_code, absl::Time when) {
  c->info.state = ContainerState::kExited;
  c->info.exit_code = exit_code;
  c->info.finished_at = when;
  c->info.reason = exit_code == 0 ? "Completed" : "Error";
  c->exits_at = absl::InfiniteFuture();
}

std::vector<std::string> SimulatedRuntime::AdvanceLocked(absl::Time now) {
  std::vector<std::string> exited;
  for (auto& [id, c] : containers_) {
    if (c.info.state == ContainerState::kCreated && c.info.started_at != absl::InfinitePast() &&
        c.info.started_at <= now) {
      c.info.state = ContainerState::kRunning;
    }
    if (c.info.state == ContainerState::kRunning && c.exits_at <= now) {
      ExitLocked(&c, c.planned_exit_code, c.exits_at);
      exited.push_back(id);
    }
  }
  return exited;
}

void SimulatedRuntime::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = options_.clock->Now();
    std::vector<std::string> exited = AdvanceLocked(now);
    if (!exited.empty() && exit_handler_) {
      ExitHandler handler = exit_handler_;
      mu_.Unlock();
      for (const std::string& id : exited) handler(id);
      mu_.Lock();
      continue;
    }
    absl::Time next = absl::InfiniteFuture();
    for (const auto& [id, c] : containers_) {
      if (c.info.state == ContainerState::kCreated && c.info.started_at != absl::InfinitePast()) {
        next = std::min(next, c.info.started_at);
      }
      if (c.info.state == ContainerState::kRunning) next = std::min(next, c.exits_at);
    }
    options_.clock->WaitWithDeadline(&changed_, &mu_, next);
  }
}

absl::Status SimulatedRuntime::StopContainer(const std::string& id, absl::Duration grace) {
  absl::MutexLock lock(&mu_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return absl::OkStatus();
  Container& c = it->second;
  const absl::Time now = options_.clock->Now();
  AdvanceLocked(now);
  if (c.info.state == ContainerState::kExited) return absl::OkStatus();
  if (c.info.state == ContainerState::kCreated && c.info.started_at == absl::InfinitePast()) {
    return absl::OkStatus();  // never started: nothing to signal
  }
  // A process that traps SIGTERM exits with 143 at once; one that ignores it is SIGKILLed (137)
  // when the grace period is over, as the containerd runtime does.
  if (c.ignores_sigterm) {
    const absl::Time deadline = now + grace;
    while (options_.clock->Now() < deadline && !stopping_) {
      options_.clock->WaitWithDeadline(&changed_, &mu_, deadline);
    }
    ExitLocked(&c, 137, options_.clock->Now());
  } else {
    ExitLocked(&c, 143, now);
  }
  return absl::OkStatus();
}

absl::Status SimulatedRuntime::RemoveContainer(const std::string& id) {
  absl::MutexLock lock(&mu_);
  containers_.erase(id);
  return absl::OkStatus();
}

absl::StatusOr<ContainerInfo> SimulatedRuntime::InspectContainer(const std::string& id) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(options_.clock->Now());
  auto it = containers_.find(id);
  if (it == containers_.end()) return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
  return it->second.info;
}

absl::StatusOr<std::vector<ContainerInfo>> SimulatedRuntime::ListContainers() {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(options_.clock->Now());
  std::vector<ContainerInfo> out;
  for (const auto& [id, c] : containers_) out.push_back(c.info);
  return out;
}

absl::StatusOr<ExecResult> SimulatedRuntime::Exec(const std::string& id,
                                                  const std::vector<std::string>& cmd,
                                                  absl::Duration /*timeout*/) {
  absl::MutexLock lock(&mu_);
  AdvanceLocked(options_.clock->Now());
  auto it = containers_.find(id);
  if (it == containers_.end() || it->second.info.state != ContainerState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  }
  ExecResult result;
  result.exit_code = EnvInt(it->second.config, "CAPSTAN_SIMULATE_EXEC_EXIT_CODE", 0);
  result.output = absl::StrJoin(cmd, " ");
  return result;
}

void SimulatedRuntime::SetExitHandler(ExitHandler handler) {
  absl::MutexLock lock(&mu_);
  exit_handler_ = std::move(handler);
}

}  // namespace capstan::nodeagent
