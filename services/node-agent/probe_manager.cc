#include "services/node-agent/probe_manager.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace capstan::nodeagent {
namespace {

using capstan::core::v1::Probe;

int Threshold(int value, int fallback) { return value > 0 ? value : fallback; }
absl::Duration Timeout(const Probe& p) { return absl::Seconds(Threshold(p.timeout_seconds(), 1)); }
absl::Duration Period(const Probe& p) { return absl::Seconds(Threshold(p.period_seconds(), 10)); }

// A TCP connection to ip:port within timeout; -1 and a message on failure.
int ConnectWithTimeout(const std::string& ip, int port, absl::Duration timeout, std::string* error) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    *error = absl::StrCat("bad address \"", ip, "\"");
    return -1;
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = "socket failed";
    return -1;
  }
  const std::string target = absl::StrCat(ip, ":", port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS) {
    *error = absl::StrCat("dial tcp ", target, ": connect: connection refused");
    close(fd);
    return -1;
  }
  pollfd pfd{fd, POLLOUT, 0};
  int ready = poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  int so_error = 0;
  socklen_t len = sizeof(so_error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (ready <= 0 || so_error != 0) {
    *error = ready <= 0 ? absl::StrCat("dial tcp ", target, ": i/o timeout")
                        : absl::StrCat("dial tcp ", target, ": connect: ", strerror(so_error));
    close(fd);
    return -1;
  }
  return fd;
}

ProbeOutcome HttpProbe(const std::string& pod_ip, const Probe& probe) {
  const auto& http = probe.http_get();
  const std::string host = http.host().empty() ? pod_ip : http.host();
  const int port = http.port().int_val();
  std::string error;
  int fd = ConnectWithTimeout(host, port, Timeout(probe), &error);
  if (fd < 0) return {false, absl::StrCat("Get \"http://", host, ":", port, http.path(), "\": ", error)};
  std::string request = absl::StrCat("GET ", http.path().empty() ? "/" : http.path(),
                                     " HTTP/1.1\r\nHost: ", host, ":", port,
                                     "\r\nUser-Agent: capstan-probe/1.0\r\nConnection: close\r\n");
  for (const auto& h : http.http_headers()) absl::StrAppend(&request, h.name(), ": ", h.value(), "\r\n");
  request += "\r\n";
  const absl::Time deadline = absl::Now() + Timeout(probe);
  size_t sent = 0;
  std::string response;
  while (absl::Now() < deadline) {
    pollfd pfd{fd, static_cast<short>(sent < request.size() ? POLLOUT : POLLIN), 0};
    int ms = static_cast<int>(std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now())));
    if (poll(&pfd, 1, ms) <= 0) break;
    if (sent < request.size()) {
      ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += n;
      continue;
    }
    char buf[1024];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, n);
    if (response.find("\r\n") != std::string::npos) break;  // the status line is all we need
  }
  close(fd);
  // "HTTP/1.1 200 OK"
  std::vector<std::string> parts = absl::StrSplit(response.substr(0, response.find("\r\n")), ' ');
  int code = 0;
  if (parts.size() < 2 || !absl::SimpleAtoi(parts[1], &code)) {
    return {false, absl::StrCat("Get \"http://", host, ":", port, http.path(),
                                "\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")};
  }
  if (code >= 200 && code < 400) return {true, ""};
  return {false, absl::StrCat("HTTP probe failed with statuscode: ", code)};
}

}  // namespace

ProbeOutcome RunProbe(Runtime* runtime, const std::string& container_id, const std::string& pod_ip,
                      const Probe& probe) {
  if (probe.has_exec()) {
    std::vector<std::string> cmd(probe.exec().command().begin(), probe.exec().command().end());
    absl::StatusOr<ExecResult> result = runtime->Exec(container_id, cmd, Timeout(probe));
    if (!result.ok()) {
      if (absl::IsDeadlineExceeded(result.status())) {
        return {false, absl::StrCat("command timed out after ", Timeout(probe) / absl::Seconds(1), "s")};
      }
      return {false, std::string(result.status().message())};
    }
    if (result->exit_code == 0) return {true, ""};
    return {false, result->output.empty()
                       ? absl::StrCat("command exited with code ", result->exit_code)
                       : result->output};
  }
  if (probe.has_http_get()) return HttpProbe(pod_ip, probe);
  if (probe.has_tcp_socket()) {
    const std::string host = probe.tcp_socket().host().empty() ? pod_ip : probe.tcp_socket().host();
    std::string error;
    int fd = ConnectWithTimeout(host, probe.tcp_socket().port().int_val(), Timeout(probe), &error);
    if (fd < 0) return {false, error};
    close(fd);
    return {true, ""};
  }
  return {false, "probe has no handler (exec, httpGet or tcpSocket)"};
}

ProbeManager::ProbeManager(Runtime* runtime, ResultHandler on_change, int threads,
                           client::Clock* clock)
    : runtime_(runtime), on_change_(std::move(on_change)), clock_(clock) {
  threads_.emplace_back([this] { SchedulerLoop(); });
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { ProbeLoop(); });
}

ProbeManager::~ProbeManager() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    changed_.SignalAll();
  }
  for (auto& t : threads_) t.join();
}

namespace {

// A named port ("http") is resolved against the container's ports once, when probing starts.
void ResolvePort(const capstan::core::v1::Container& spec, capstan::meta::v1::IntOrString* port) {
  if (!port->has_str_val()) return;
  for (const auto& p : spec.ports()) {
    if (p.name() == port->str_val()) {
      port->set_int_val(p.container_port());
      return;
    }
  }
  int value = 0;
  if (absl::SimpleAtoi(port->str_val(), &value)) port->set_int_val(value);
}

}  // namespace

void ProbeManager::Add(const std::string& pod_uid, const std::string& container_id,
                       const capstan::core::v1::Container& spec, const std::string& pod_ip,
                       absl::Time started_at) {
  absl::MutexLock lock(&mu_);
  if (!containers_.insert(container_id).second) return;
  auto add = [&](Kind kind, const Probe& probe) {
    Worker w;
    w.pod_uid = pod_uid;
    w.container_id = container_id;
    w.pod_ip = pod_ip;
    w.kind = kind;
    w.probe = probe;
    if (w.probe.has_http_get()) ResolvePort(spec, w.probe.mutable_http_get()->mutable_port());
    if (w.probe.has_tcp_socket()) ResolvePort(spec, w.probe.mutable_tcp_socket()->mutable_port());
    w.next_run = std::max(clock_->Now(), started_at + absl::Seconds(probe.initial_delay_seconds()));
    workers_[{container_id, kind}] = std::move(w);
  };
  if (spec.has_readiness_probe()) add(Kind::kReadiness, spec.readiness_probe());
  if (spec.has_liveness_probe()) add(Kind::kLiveness, spec.liveness_probe());
  // Most containers have no probe: nothing to schedule, no thread to wake.
  if (spec.has_readiness_probe() || spec.has_liveness_probe()) changed_.SignalAll();
}

void ProbeManager::Remove(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  containers_.erase(container_id);
  workers_.erase({container_id, Kind::kReadiness});
  workers_.erase({container_id, Kind::kLiveness});
}

bool ProbeManager::Ready(const std::string& container_id) {
  absl::MutexLock lock(&mu_);
  if (containers_.count(container_id) == 0) return false;
  auto it = workers_.find({container_id, Kind::kReadiness});
  return it == workers_.end() || it->second.result;
}

bool ProbeManager::LivenessFailed(const std::string& container_id, std::string* message) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find({container_id, Kind::kLiveness});
  if (it == workers_.end() || !it->second.result) return false;
  if (message != nullptr) *message = it->second.message;
  return true;
}

bool ProbeManager::Record(Worker* w, const ProbeOutcome& outcome) {
  const Probe& p = w->probe;
  if (outcome.success) {
    w->failures = 0;
    ++w->successes;
  } else {
    w->successes = 0;
    ++w->failures;
    w->message = outcome.message;
  }
  const bool before = w->result;
  if (w->kind == Kind::kReadiness) {
    if (outcome.success && w->successes >= Threshold(p.success_threshold(), 1)) w->result = true;
    if (!outcome.success && w->failures >= Threshold(p.failure_threshold(), 3)) w->result = false;
  } else {
    // Liveness: "failed" once failureThreshold failures in a row; the container is then restarted
    // and a new container id starts with fresh counts.
    if (!outcome.success && w->failures >= Threshold(p.failure_threshold(), 3)) w->result = true;
    if (outcome.success) w->result = false;
  }
  return before != w->result;
}

void ProbeManager::SchedulerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const absl::Time now = clock_->Now();
    absl::Time next = absl::InfiniteFuture();
    for (auto& [key, w] : workers_) {
      if (w.running) continue;
      if (w.next_run <= now) {
        w.running = true;
        due_.push_back(key);
      } else {
        next = std::min(next, w.next_run);
      }
    }
    if (!due_.empty()) changed_.SignalAll();
    clock_->WaitWithDeadline(&changed_, &mu_, next);
  }
}

void ProbeManager::ProbeLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!stopping_ && due_.empty()) changed_.Wait(&mu_);
    if (stopping_) return;
    WorkerKey key = due_.back();
    due_.pop_back();
    auto it = workers_.find(key);
    if (it == workers_.end()) continue;  // removed while waiting
    const Worker snapshot = it->second;
    mu_.Unlock();
    ProbeOutcome outcome = RunProbe(runtime_, snapshot.container_id, snapshot.pod_ip, snapshot.probe);
    mu_.Lock();
    it = workers_.find(key);
    if (it == workers_.end()) continue;
    Worker& w = it->second;
    w.running = false;
    w.next_run = clock_->Now() + Period(w.probe);
    const bool flipped = Record(&w, outcome);
    changed_.SignalAll();
    if (flipped) {
      const std::string uid = w.pod_uid;
      mu_.Unlock();
      on_change_(uid);
      mu_.Lock();
    }
  }
}

}  // namespace capstan::nodeagent
