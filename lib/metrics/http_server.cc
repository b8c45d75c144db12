#include "lib/metrics/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "lib/metrics/metrics.h"
#include "prometheus/registry.h"

namespace capstan::metrics {
namespace {

// After an error response the client may still be sending (a body we refused, a pipelined
// request). Closing with unread input makes the kernel send RST, which can destroy our response
// before the client reads it, so we drain for a little while first. Bounded in time and bytes so a
// misbehaving client cannot hold the worker.
constexpr absl::Duration kLingerTime = absl::Seconds(1);
constexpr size_t kLingerMaxBytes = 1 << 20;

std::string ErrnoMessage(absl::string_view what) {
  return absl::StrCat(what, ": ", std::strerror(errno));
}

void CloseFd(int fd) {
  if (fd >= 0) {
    // Not retried on EINTR: on Linux the descriptor is released even then.
    ::close(fd);
  }
}

const char* ReasonPhrase(int code) {
  switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

std::string FormatResponse(const Response& response, bool include_body) {
  // Both arms string_view: with a literal and a std::string the conditional would yield a
  // temporary std::string, leaving `type` dangling.
  absl::string_view type = response.content_type.empty()
                               ? absl::string_view("text/plain; charset=utf-8")
                               : absl::string_view(response.content_type);
  std::string out = absl::StrCat("HTTP/1.1 ", response.code, " ", ReasonPhrase(response.code),
                                 "\r\nContent-Type: ", type,
                                 "\r\nContent-Length: ", response.body.size(),
                                 "\r\nX-Content-Type-Options: nosniff\r\n");
  if (response.code == 405) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (include_body) out += response.body;
  return out;
}

Response TextResponse(int code, std::string body) {
  Response response;
  response.code = code;
  response.body = std::move(body);
  return response;
}

// Splits "host:port" / ":port" / "[v6]:port" and resolves it for a passive (listening) socket.
absl::Status ResolveListenAddress(const std::string& address, struct addrinfo** result) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" is not host:port"));
  }
  std::string host = address.substr(0, colon);
  std::string port_text = address.substr(colon + 1);
  int port = 0;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port) || port < 0 || port > 65535 ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\" has an invalid port"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("address \"", address, "\": IPv6 hosts must be bracketed, as in [::1]:9090"));
  }
  // An empty host means every interface. We pick IPv4's wildcard explicitly: getaddrinfo's
  // passive wildcard may return "::" first, which on hosts with IPv6 disabled fails to bind.
  if (host.empty()) host = "0.0.0.0";

  struct addrinfo hints;
  std::memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve \"", address, "\": ", ::gai_strerror(rc)));
  }
  return absl::OkStatus();
}

// Waits until `fd` is ready for `events`, the deadline passes, or the wake pipe fires.
enum class WaitResult { kReady, kTimeout, kStopping, kError };

WaitResult WaitFor(int fd, short events, int wake_fd, absl::Time deadline) {
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return WaitResult::kTimeout;
    // Round up so we never spin on a sub-millisecond remainder.
    int timeout_ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1) -
                                                     absl::Nanoseconds(1)),
                          1 << 30));
    struct pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return WaitResult::kError;
    }
    if (fds[1].revents != 0) return WaitResult::kStopping;
    // POLLERR/POLLHUP also count as ready: the following read/write reports what happened.
    if (fds[0].revents != 0) return WaitResult::kReady;
  }
}

enum class ReadResult { kData, kEof, kTimeout, kStopping, kError };

// Appends whatever is available (up to `max` bytes) to `buffer`, waiting until `deadline`.
ReadResult ReadSome(int fd, int wake_fd, absl::Time deadline, size_t max, std::string* buffer) {
  char chunk[8192];
  size_t want = std::min(max, sizeof(chunk));
  while (true) {
    ssize_t n = ::recv(fd, chunk, want, 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      return ReadResult::kData;
    }
    if (n == 0) return ReadResult::kEof;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ReadResult::kError;
    switch (WaitFor(fd, POLLIN, wake_fd, deadline)) {
      case WaitResult::kReady: break;
      case WaitResult::kTimeout: return ReadResult::kTimeout;
      case WaitResult::kStopping: return ReadResult::kStopping;
      case WaitResult::kError: return ReadResult::kError;
    }
  }
}

// Writes all of `data` unless the client stalls past `deadline`, goes away, or we are stopping.
bool WriteAll(int fd, int wake_fd, absl::Time deadline, absl::string_view data) {
  while (!data.empty()) {
    // MSG_NOSIGNAL: a client that hung up must cost us an EPIPE, not the process.
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (WaitFor(fd, POLLOUT, wake_fd, deadline) != WaitResult::kReady) return false;
  }
  return true;
}

void LingeringClose(int fd, int wake_fd) {
  ::shutdown(fd, SHUT_WR);  // Tells the client the response is complete.
  absl::Time deadline = absl::Now() + kLingerTime;
  std::string sink;
  size_t drained = 0;
  while (drained < kLingerMaxBytes) {
    sink.clear();
    if (ReadSome(fd, wake_fd, deadline, kLingerMaxBytes - drained, &sink) != ReadResult::kData) {
      break;
    }
    drained += sink.size();
  }
  CloseFd(fd);
}

// The parts of a request line and header block we act on.
struct ParsedRequest {
  Request request;
  bool has_body = false;  // Content-Length > 0 or any Transfer-Encoding: the body goes unread.
  uint64_t content_length = 0;
};

// Parses the header block (request line and header fields, without the blank line). On failure
// returns the HTTP status to answer with and sets `*error` to a message for the body.
std::optional<ParsedRequest> ParseHead(absl::string_view head, int* error_code,
                                       std::string* error) {
  auto fail = [&](int code, std::string message) -> std::optional<ParsedRequest> {
    *error_code = code;
    *error = std::move(message);
    return std::nullopt;
  };
  ParsedRequest parsed;
  bool first = true;
  bool seen_length = false;
  while (!head.empty()) {
    size_t eol = head.find('\n');
    absl::string_view line = head.substr(0, eol);
    head = eol == absl::string_view::npos ? absl::string_view() : head.substr(eol + 1);
    // RFC 9112 lets a server accept a bare LF as a line terminator; hand-typed requests
    // (nc, telnet) often use one.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    if (first) {
      first = false;
      // request-line = method SP request-target SP HTTP-version
      size_t sp1 = line.find(' ');
      size_t sp2 = sp1 == absl::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
      if (sp1 == 0 || sp2 == absl::string_view::npos ||
          line.find(' ', sp2 + 1) != absl::string_view::npos) {
        return fail(400, "malformed request line");
      }
      absl::string_view method = line.substr(0, sp1);
      absl::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      absl::string_view version = line.substr(sp2 + 1);
      for (char c : method) {
        if (!absl::ascii_isupper(static_cast<unsigned char>(c))) {
          return fail(400, "malformed method");
        }
      }
      if (!absl::StartsWith(version, "HTTP/") || version.size() != 8 || version[6] != '.' ||
          !absl::ascii_isdigit(static_cast<unsigned char>(version[5])) ||
          !absl::ascii_isdigit(static_cast<unsigned char>(version[7]))) {
        return fail(400, "malformed HTTP version");
      }
      if (version[5] != '1') return fail(505, "only HTTP/1.x is supported");
      // absolute-form ("GET http://host:9090/metrics HTTP/1.1"), sent by some proxies.
      for (absl::string_view scheme : {"http://", "https://"}) {
        if (absl::StartsWithIgnoreCase(target, scheme)) {
          target.remove_prefix(scheme.size());
          size_t slash = target.find('/');
          target = slash == absl::string_view::npos ? "/" : target.substr(slash);
          break;
        }
      }
      if (target.empty() || target.front() != '/') return fail(400, "malformed request target");
      size_t hash = target.find('#');
      if (hash != absl::string_view::npos) target = target.substr(0, hash);
      size_t question = target.find('?');
      parsed.request.method = std::string(method);
      parsed.request.path = std::string(target.substr(0, question));
      if (question != absl::string_view::npos) {
        parsed.request.query = std::string(target.substr(question + 1));
      }
      continue;
    }

    size_t colon = line.find(':');
    if (colon == 0 || colon == absl::string_view::npos) return fail(400, "malformed header");
    absl::string_view name = line.substr(0, colon);
    if (absl::ascii_isspace(static_cast<unsigned char>(name.back())) ||
        absl::ascii_isspace(static_cast<unsigned char>(name.front()))) {
      // Whitespace around a field name is a request-smuggling vector; RFC 9112 says reject.
      return fail(400, "malformed header");
    }
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (absl::EqualsIgnoreCase(name, "Content-Length")) {
      uint64_t length = 0;
      if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) {
            return absl::ascii_isdigit(static_cast<unsigned char>(c));
          }) || !absl::SimpleAtoi(value, &length)) {
        return fail(400, "invalid Content-Length");
      }
      if (seen_length && length != parsed.content_length) {
        return fail(400, "conflicting Content-Length");
      }
      seen_length = true;
      parsed.content_length = length;
      if (length > 0) parsed.has_body = true;
    } else if (absl::EqualsIgnoreCase(name, "Transfer-Encoding")) {
      parsed.has_body = true;
    }
  }
  if (first) return fail(400, "empty request");
  return parsed;
}

// Finds the blank line ending the header block; returns {end of head, start of body}.
std::optional<std::pair<size_t, size_t>> FindHeadEnd(const std::string& buffer) {
  size_t pos = 0;
  while ((pos = buffer.find('\n', pos)) != std::string::npos) {
    if (pos + 1 < buffer.size() && buffer[pos + 1] == '\n') return {{pos, pos + 2}};
    if (pos + 2 < buffer.size() && buffer[pos + 1] == '\r' && buffer[pos + 2] == '\n') {
      return {{pos, pos + 3}};
    }
    ++pos;
  }
  return std::nullopt;
}

Response CheckResponse(const std::function<absl::Status()>& check, absl::string_view name,
                       const Request& request) {
  absl::Status status = check ? check() : absl::OkStatus();
  // Kubernetes answers a bare "ok" unless asked for detail; "?verbose" (any value) asks.
  bool verbose = false;
  for (absl::string_view param : absl::StrSplit(request.query, '&')) {
    if (param == "verbose" || absl::StartsWith(param, "verbose=")) verbose = true;
  }
  if (status.ok()) {
    if (!verbose) return TextResponse(200, "ok");
    return TextResponse(200, absl::StrCat("[+]", name, " ok\n", name, " check passed\n"));
  }
  // Unlike Kubernetes we do not withhold the reason: this port is for operators and probes.
  return TextResponse(500, absl::StrCat("[-]", name, " failed: ", status.ToString(), "\n", name,
                                        " check failed\n"));
}

}  // namespace

HttpServer::HttpServer(std::string address)
    : HttpServer(std::move(address), HttpServerOptions()) {}

HttpServer::HttpServer(std::string address, HttpServerOptions options)
    : address_(std::move(address)), options_(options) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Handle(std::string path, Handler handler) {
  absl::MutexLock lock(&mu_);
  handlers_[std::move(path)] = std::move(handler);
}

absl::Status HttpServer::Start() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (state_ != State::kNew) {
    return absl::FailedPreconditionError("HttpServer can be started only once");
  }
  if (options_.num_workers < 1 || options_.max_pending < 0) {
    return absl::InvalidArgumentError("HttpServer needs at least one worker");
  }

  struct addrinfo* addresses = nullptr;
  absl::Status status = ResolveListenAddress(address_, &addresses);
  if (!status.ok()) return status;

  int fd = -1;
  std::string last_error = "no usable address";
  for (struct addrinfo* ai = addresses; ai != nullptr; ai = ai->ai_next) {
    // Non-blocking: poll() may report a connection that is reset before accept() runs.
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      last_error = ErrnoMessage("socket");
      continue;
    }
    // A restarted service must be able to bind again while old connections sit in TIME_WAIT.
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      last_error = ErrnoMessage("setsockopt(SO_REUSEADDR)");
    } else if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      last_error = ErrnoMessage("bind");
    } else if (::listen(fd, SOMAXCONN) != 0) {
      last_error = ErrnoMessage("listen");
    } else {
      break;
    }
    CloseFd(fd);
    fd = -1;
  }
  ::freeaddrinfo(addresses);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on \"", address_, "\": ", last_error));
  }

  struct sockaddr_storage bound;
  socklen_t bound_len = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &bound_len) != 0) {
    std::string error = ErrnoMessage("getsockname");
    CloseFd(fd);
    return absl::InternalError(error);
  }
  int port = bound.ss_family == AF_INET6
                 ? ntohs(reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_port)
                 : ntohs(reinterpret_cast<struct sockaddr_in*>(&bound)->sin_port);

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::string error = ErrnoMessage("pipe2");
    CloseFd(fd);
    return absl::InternalError(error);
  }

  listen_fd_ = fd;
  wake_read_fd_ = pipe_fds[0];
  wake_write_fd_ = pipe_fds[1];
  port_.store(port, std::memory_order_release);
  state_ = State::kRunning;
  workers_.reserve(options_.num_workers);
  for (int i = 0; i < options_.num_workers; ++i) {
    workers_.emplace_back(&HttpServer::WorkerLoop, this);
  }
  accept_thread_ = std::thread(&HttpServer::AcceptLoop, this);
  return absl::OkStatus();
}

void HttpServer::Stop() {
  absl::MutexLock lifecycle(&lifecycle_mu_);
  if (state_ != State::kRunning) {
    state_ = State::kStopped;  // A never-started server cannot be started after Stop either.
    return;
  }
  state_ = State::kStopped;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  // The pipe is never drained, so it stays readable and wakes every current and future poll()
  // in the accept thread and the workers at once.
  char byte = 1;
  while (::write(wake_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  accept_thread_.join();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();

  std::deque<int> abandoned;
  {
    absl::MutexLock lock(&mu_);
    abandoned.swap(pending_);
  }
  for (int fd : abandoned) CloseFd(fd);
  CloseFd(listen_fd_);
  CloseFd(wake_read_fd_);
  CloseFd(wake_write_fd_);
  listen_fd_ = wake_read_fd_ = wake_write_fd_ = -1;
}

void HttpServer::AcceptLoop() {
  while (true) {
    struct pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_read_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // Not expected with valid descriptors; nothing better to do than stop accepting.
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;

    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the pending connection stays ready, so back off instead
        // of spinning, while still reacting to Stop() at once.
        struct pollfd wake = {wake_read_fd_, POLLIN, 0};
        if (::poll(&wake, 1, 100) > 0) return;
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR, ...: just try again.
    }

    bool queued = false;
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_ && pending_.size() < static_cast<size_t>(options_.max_pending)) {
        pending_.push_back(fd);
        queued = true;
      }
    }
    if (!queued) {
      // Overloaded: say so rather than leave the client hanging. A fresh socket's send buffer is
      // empty, so this does not block the accept thread.
      std::string busy =
          FormatResponse(TextResponse(503, "server busy, try again\n"), /*include_body=*/true);
      ::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      CloseFd(fd);
    }
  }
}

void HttpServer::WorkerLoop() {
  while (true) {
    int fd;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &HttpServer::WorkAvailable));
      if (stopping_) return;  // Stop() closes whatever is still queued.
      fd = pending_.front();
      pending_.pop_front();
    }
    ServeConnection(fd);
  }
}

void HttpServer::ServeConnection(int fd) {
  const absl::Time deadline = absl::Now() + options_.read_timeout;
  const size_t limit = options_.max_request_bytes;
  auto respond = [&](const Response& response, bool include_body, bool linger) {
    // A fresh deadline: a slow handler must not eat into the time the client gets to read a
    // large /metrics response.
    bool written = WriteAll(fd, wake_read_fd_, absl::Now() + options_.read_timeout,
                            FormatResponse(response, include_body));
    if (written && linger) {
      LingeringClose(fd, wake_read_fd_);
    } else {
      CloseFd(fd);
    }
  };

  std::string buffer;
  std::optional<std::pair<size_t, size_t>> head_end;
  while (!(head_end = FindHeadEnd(buffer))) {
    if (buffer.size() > limit) {
      respond(TextResponse(413, "request too large\n"), true, true);
      return;
    }
    // Read at most one byte past the limit: enough to know it was exceeded.
    ReadResult result = ReadSome(fd, wake_read_fd_, deadline, limit + 1 - buffer.size(), &buffer);
    if (result == ReadResult::kData) continue;
    if (result == ReadResult::kTimeout && !buffer.empty()) {
      // Started a request and stalled. A client that never sent a byte (an idle pre-connect,
      // a port scan) just gets closed, as Go's net/http does.
      respond(TextResponse(408, "timed out reading request\n"), true, false);
      return;
    }
    CloseFd(fd);  // EOF, error, stopping, or silent until the deadline.
    return;
  }

  int error_code = 0;
  std::string error;
  std::optional<ParsedRequest> parsed =
      ParseHead(absl::string_view(buffer).substr(0, head_end->first), &error_code, &error);
  if (!parsed) {
    respond(TextResponse(error_code, error + "\n"), true, true);
    return;
  }
  if (head_end->second > limit || parsed->content_length > limit - head_end->second) {
    respond(TextResponse(413, "request too large\n"), true, true);
    return;
  }
  // We never read bodies (no endpoint takes one), so anything beyond the head must be drained.
  bool linger = parsed->has_body || buffer.size() > head_end->second;
  const Request& request = parsed->request;
  bool head_only = request.method == "HEAD";
  respond(Dispatch(request), !head_only, linger);
}

Response HttpServer::Dispatch(const Request& request) {
  Handler handler;
  {
    absl::MutexLock lock(&mu_);
    auto it = handlers_.find(request.path);
    if (it == handlers_.end()) return TextResponse(404, "404 page not found\n");
    // Copied so the handler runs without the lock: it may be slow (a health check doing I/O) and
    // must not serialize the other workers.
    handler = it->second;
  }
  // Path first, then method: 405 is a statement about an existing resource.
  if (request.method != "GET" && request.method != "HEAD") {
    return TextResponse(405, "method not allowed\n");
  }
  if (!handler) return TextResponse(500, "no handler\n");
  return handler(request);
}

void AddStandardHandlers(HttpServer* server, std::shared_ptr<prometheus::Registry> registry,
                         std::function<absl::Status()> healthy,
                         std::function<absl::Status()> ready) {
  server->Handle("/metrics", [registry = std::move(registry)](const Request&) {
    Response response;
    response.content_type = kPrometheusTextContentType;
    if (registry) response.body = SerializeRegistry(*registry);
    return response;
  });
  // Kubernetes keeps /healthz for compatibility and added /livez; both mean "alive".
  server->Handle("/healthz", [healthy](const Request& request) {
    return CheckResponse(healthy, "healthz", request);
  });
  server->Handle("/livez", [healthy](const Request& request) {
    return CheckResponse(healthy, "livez", request);
  });
  server->Handle("/readyz", [ready = std::move(ready)](const Request& request) {
    return CheckResponse(ready, "readyz", request);
  });
}

}  // namespace capstan::metrics
