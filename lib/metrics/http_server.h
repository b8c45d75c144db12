#ifndef CAPSTAN_LIB_METRICS_HTTP_SERVER_H_
#define CAPSTAN_LIB_METRICS_HTTP_SERVER_H_

// A minimal HTTP/1.1 server for operational endpoints (/metrics, /healthz, /readyz, /livez).
//
// Why not prometheus-cpp's Exposer: it owns its civetweb server and cannot serve extra paths, and
// every Capstan service wants metrics and Kubernetes-style health checks on a single port.
//
// This is deliberately small and is NOT meant for the API itself: one request per connection
// (every response carries "Connection: close"), no request bodies, no TLS, no chunked encoding.
// What it does take seriously is robustness against slow or silent clients: connections are served
// by a small fixed pool of workers with a per-request deadline, and Stop() is prompt regardless of
// what clients are doing.

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace capstan::metrics {

struct Request {
  std::string method;  // "GET" or "HEAD" by the time a handler sees it.
  std::string path;    // Raw (not percent-decoded) path, e.g. "/healthz".
  std::string query;   // Raw text after '?', without the '?'; empty if none.
};

struct Response {
  int code = 200;
  std::string content_type;  // Empty means "text/plain; charset=utf-8".
  std::string body;
};

// Tuning knobs; the defaults suit a service's operational port. Tests shorten the timeout.
struct HttpServerOptions {
  // How long a client gets to deliver its complete request headers (a whole-request deadline,
  // not per read, so a client dribbling one byte at a time cannot hold a worker forever). Writing
  // the response gets the same allowance, counted from when the handler returns.
  absl::Duration read_timeout = absl::Seconds(5);
  // Connections served concurrently. Scrapers and probes are few; a silent client ties up one
  // worker for at most read_timeout.
  int num_workers = 8;
  // Accepted connections waiting for a worker. Beyond this, new connections get a 503 at once
  // rather than piling up unbounded.
  int max_pending = 64;
  // Largest request (headers plus declared body) accepted; bigger ones get 413.
  size_t max_request_bytes = 64 * 1024;
};

class HttpServer {
 public:
  // Called on a worker thread, possibly concurrently with itself: must be thread-safe. Must not
  // call Stop() on its own server (Stop joins the worker running it).
  using Handler = std::function<Response(const Request&)>;

  // `address` is "host:port": "127.0.0.1:0", "0.0.0.0:9090", ":9090" (all IPv4 interfaces),
  // "localhost:9090" or "[::1]:9090". Port 0 picks a free port; see port(). The address is
  // only parsed by Start(), which reports a malformed one.
  explicit HttpServer(std::string address);
  HttpServer(std::string address, HttpServerOptions options);
  ~HttpServer();  // Calls Stop().

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves GET and HEAD on exactly `path` (no prefix matching). Meant to be called before
  // Start(); later calls are safe and take effect for subsequent requests. A second handler for
  // the same path replaces the first.
  void Handle(std::string path, Handler handler);

  // Binds, listens and starts the serving threads; returns once the socket is listening, so a
  // client may connect as soon as this returns OK. A server runs at most once: Start() after a
  // successful Start() or after Stop() fails with FailedPrecondition (a failed Start, say because
  // the port is taken, may be retried).
  absl::Status Start();

  // The bound port once Start() succeeded (useful with port 0); 0 before.
  int port() const { return port_.load(std::memory_order_acquire); }

  // Closes the listening socket, abandons connections that are waiting or still being read, and
  // joins all threads (a handler already running is allowed to finish). Idempotent and safe to
  // call from several threads; also called by the destructor.
  void Stop();

 private:
  enum class State { kNew, kRunning, kStopped };

  void AcceptLoop();
  void WorkerLoop();
  void ServeConnection(int fd);
  Response Dispatch(const Request& request);
  bool WorkAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !pending_.empty();
  }

  const std::string address_;
  const HttpServerOptions options_;
  std::atomic<int> port_{0};

  // Serializes Start() and Stop() so concurrent Stop() calls all return after the threads exited.
  absl::Mutex lifecycle_mu_;
  State state_ ABSL_GUARDED_BY(lifecycle_mu_) = State::kNew;
  // Written only under lifecycle_mu_ while no serving thread exists (before they start, after
  // they are joined); the threads only read them in between.
  int listen_fd_ = -1;
  int wake_read_fd_ = -1;  // Readable once Stop() began: every poll() in the server watches it.
  int wake_write_fd_ = -1;
  std::thread accept_thread_;
  std::vector<std::thread> workers_;

  absl::Mutex mu_;
  std::map<std::string, Handler> handlers_ ABSL_GUARDED_BY(mu_);
  std::deque<int> pending_ ABSL_GUARDED_BY(mu_);  // Accepted fds waiting for a worker.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// Adds GET /metrics (Prometheus text format 0.0.4 of `registry`), /healthz and /livez (from
// `healthy`) and /readyz (from `ready`). A check answers 200 "ok" when it returns OkStatus, else
// 500 with the reason in Kubernetes' style ("[-]readyz failed: <reason>"). "?verbose" lists the
// check on success too. A null registry serves an empty exposition; a null check always passes.
// The checks run on server threads, concurrently with the rest of the service: keep them cheap
// and thread-safe.
void AddStandardHandlers(HttpServer* server, std::shared_ptr<prometheus::Registry> registry,
                         std::function<absl::Status()> healthy,
                         std::function<absl::Status()> ready);

}  // namespace capstan::metrics

#endif  // CAPSTAN_LIB_METRICS_HTTP_SERVER_H_
