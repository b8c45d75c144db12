#include "lib/metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/metrics/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace capstan::metrics {
namespace {

using ::testing::HasSubstr;

// A deliberately independent client: plain sockets, so the test does not share parsing code with
// the server it checks.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // Bounded reads so a server bug fails the test instead of hanging it.
    struct timeval tv = {10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in addr;
    std::memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() { ::close(fd_); }

  bool connected() const { return connected_; }

  bool Send(const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything until the server closes the connection (it always does: Connection: close).
  std::string ReadAll() {
    std::string out;
    char buf[4096];
    while (true) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct HttpResult {
  int code = 0;
  std::string headers;  // Status line and header fields.
  std::string body;
};

HttpResult ParseResponse(const std::string& raw) {
  HttpResult result;
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return result;
  result.headers = raw.substr(0, end);
  result.body = raw.substr(end + 4);
  // "HTTP/1.1 200 OK"
  if (absl::StartsWith(raw, "HTTP/1.1 ") && raw.size() >= 12) {
    if (!absl::SimpleAtoi(raw.substr(9, 3), &result.code)) result.code = -1;
  }
  return result;
}

HttpResult RawRequest(int port, const std::string& request) {
  Client client(port);
  if (!client.connected() || !client.Send(request)) return {};
  return ParseResponse(client.ReadAll());
}

HttpResult Get(int port, const std::string& target, const std::string& method = "GET") {
  return RawRequest(port, absl::StrCat(method, " ", target,
                                       " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n"));
}

class StandardHandlersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_ = std::make_shared<prometheus::Registry>();
    AddStandardHandlers(
        &server_, registry_,
        [this]() -> absl::Status {
          if (healthy_) return absl::OkStatus();
          return absl::UnavailableError("etcd unreachable");
        },
        [this]() -> absl::Status {
          if (ready_) return absl::OkStatus();
          return absl::UnavailableError("informers not synced");
        });
    ASSERT_TRUE(server_.Start().ok());
    ASSERT_GT(server_.port(), 0);
  }

  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> healthy_{true};
  std::atomic<bool> ready_{true};
  HttpServer server_{"127.0.0.1:0"};
};

TEST_F(StandardHandlersTest, ServesCounterOnMetrics) {
  auto& family = prometheus::BuildCounter()
                     .Name("capstan_test_requests_total")
                     .Help("Requests seen by the test.")
                     .Register(*registry_);
  auto& counter = family.Add({{"code", "200"}});
  counter.Increment();
  counter.Increment(2);

  HttpResult result = Get(server_.port(), "/metrics");
  EXPECT_EQ(result.code, 200);
  EXPECT_THAT(result.headers,
              HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  EXPECT_THAT(result.headers, HasSubstr("Connection: close"));
  EXPECT_THAT(result.headers, HasSubstr(absl::StrCat("Content-Length: ", result.body.size())));
  EXPECT_THAT(result.body, HasSubstr("# TYPE capstan_test_requests_total counter\n"));
  EXPECT_THAT(result.body, HasSubstr("\ncapstan_test_requests_total{code=\"200\"} 3\n"));

  // The value is read at scrape time.
  counter.Increment();
  EXPECT_THAT(Get(server_.port(), "/metrics").body,
              HasSubstr("\ncapstan_test_requests_total{code=\"200\"} 4\n"));
}

TEST_F(StandardHandlersTest, LatencyBucketsPrintCleanly) {
  auto& family = prometheus::BuildHistogram()
                     .Name("capstan_test_duration_seconds")
                     .Help("Durations seen by the test.")
                     .Register(*registry_);
  family.Add({}, LatencyBuckets()).Observe(0.0003);

  std::string body = Get(server_.port(), "/metrics").body;
  EXPECT_THAT(body, HasSubstr("capstan_test_duration_seconds_bucket{le=\"0.0001\"} 0\n"));
  EXPECT_THAT(body, HasSubstr("capstan_test_duration_seconds_bucket{le=\"0.00025\"} 0\n"));
  EXPECT_THAT(body, HasSubstr("capstan_test_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("capstan_test_duration_seconds_bucket{le=\"10\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("capstan_test_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
}

TEST(LatencyBucketsTest, SpansHundredMicrosecondsToTenSecondsIncreasing) {
  std::vector<double> buckets = LatencyBuckets();
  ASSERT_FALSE(buckets.empty());
  EXPECT_DOUBLE_EQ(buckets.front(), 0.0001);
  EXPECT_DOUBLE_EQ(buckets.back(), 10.0);
  for (size_t i = 1; i < buckets.size(); ++i) {
    double ratio = buckets[i] / buckets[i - 1];
    EXPECT_GE(ratio, 2.0) << i;
    EXPECT_LE(ratio, 2.5 + 1e-9) << i;
  }
}

TEST_F(StandardHandlersTest, HealthzReportsTheFailingReason) {
  HttpResult ok = Get(server_.port(), "/healthz");
  EXPECT_EQ(ok.code, 200);
  EXPECT_EQ(ok.body, "ok");

  healthy_ = false;
  HttpResult failed = Get(server_.port(), "/healthz");
  EXPECT_EQ(failed.code, 500);
  EXPECT_THAT(failed.body, HasSubstr("[-]healthz failed: UNAVAILABLE: etcd unreachable\n"));
  EXPECT_THAT(failed.body, HasSubstr("healthz check failed"));
  // /livez is the same check under Kubernetes' newer name; readiness is independent.
  EXPECT_EQ(Get(server_.port(), "/livez").code, 500);
  EXPECT_EQ(Get(server_.port(), "/readyz").code, 200);

  healthy_ = true;
  EXPECT_EQ(Get(server_.port(), "/healthz").code, 200);
  EXPECT_EQ(Get(server_.port(), "/livez").code, 200);
}

TEST_F(StandardHandlersTest, ReadyzReportsTheFailingReason) {
  ready_ = false;
  HttpResult failed = Get(server_.port(), "/readyz");
  EXPECT_EQ(failed.code, 500);
  EXPECT_THAT(failed.body, HasSubstr("[-]readyz failed: UNAVAILABLE: informers not synced"));
  EXPECT_EQ(Get(server_.port(), "/healthz").code, 200);
}

TEST_F(StandardHandlersTest, VerboseListsThePassingCheck) {
  HttpResult result = Get(server_.port(), "/readyz?verbose");
  EXPECT_EQ(result.code, 200);
  EXPECT_EQ(result.body, "[+]readyz ok\nreadyz check passed\n");
}

TEST_F(StandardHandlersTest, UnknownPathIs404) {
  HttpResult result = Get(server_.port(), "/nope");
  EXPECT_EQ(result.code, 404);
  // Exact paths only: no prefix matching.
  EXPECT_EQ(Get(server_.port(), "/metrics/extra").code, 404);
  EXPECT_EQ(Get(server_.port(), "/").code, 404);
}

TEST_F(StandardHandlersTest, PostIs405) {
  HttpResult result = RawRequest(
      server_.port(), "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(result.code, 405);
  EXPECT_THAT(result.headers, HasSubstr("Allow: GET, HEAD"));
  EXPECT_EQ(Get(server_.port(), "/healthz", "DELETE").code, 405);
  EXPECT_EQ(Get(server_.port(), "/healthz", "PUT").code, 405);
}

TEST_F(StandardHandlersTest, HeadSendsHeadersOnly) {
  HttpResult result = Get(server_.port(), "/healthz", "HEAD");
  EXPECT_EQ(result.code, 200);
  EXPECT_THAT(result.headers, HasSubstr("Content-Length: 2"));
  EXPECT_EQ(result.body, "");
}

TEST_F(StandardHandlersTest, OversizedRequestsGet413) {
  HttpResult declared = RawRequest(
      server_.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_EQ(declared.code, 413);

  // Headers alone beyond 64 KiB: the server must answer without reading all of it.
  std::string huge = absl::StrCat("GET /metrics HTTP/1.1\r\nX-Big: ", std::string(70 * 1024, 'a'),
                                  "\r\n\r\n");
  EXPECT_EQ(RawRequest(server_.port(), huge).code, 413);

  // A body just under the limit is fine (and ignored).
  HttpResult small = RawRequest(
      server_.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
  EXPECT_EQ(small.code, 200);
}

TEST_F(StandardHandlersTest, MalformedRequestsGet400) {
  EXPECT_EQ(RawRequest(server_.port(), "garbage\r\n\r\n").code, 400);
  EXPECT_EQ(RawRequest(server_.port(), "GET metrics HTTP/1.1\r\n\r\n").code, 400);
  EXPECT_EQ(RawRequest(server_.port(), "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n").code, 400);
  EXPECT_EQ(RawRequest(server_.port(), "GET /metrics HTTP/2.0\r\n\r\n").code, 505);
  EXPECT_EQ(
      RawRequest(server_.port(), "GET /healthz HTTP/1.1\r\nContent-Length: x\r\n\r\n").code, 400);
}

TEST_F(StandardHandlersTest, AcceptsBareLineFeedsAndHttp10) {
  EXPECT_EQ(RawRequest(server_.port(), "GET /healthz HTTP/1.0\n\n").code, 200);
  EXPECT_EQ(RawRequest(server_.port(), "GET http://host:1/healthz HTTP/1.1\r\n\r\n").code, 200);
}

TEST_F(StandardHandlersTest, SilentClientBlocksNeitherOtherClientsNorStop) {
  Client silent(server_.port());
  ASSERT_TRUE(silent.connected());

  absl::Time start = absl::Now();
  EXPECT_EQ(Get(server_.port(), "/healthz").code, 200);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  start = absl::Now();
  server_.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // The silent client's connection was closed, not answered.
  EXPECT_EQ(silent.ReadAll(), "");
}

TEST_F(StandardHandlersTest, ConcurrentRequests) {
  constexpr int kClients = 32;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&] {
      if (Get(server_.port(), "/metrics").code == 200) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kClients);
}

TEST(HttpServerTest, StopIsIdempotentAndClosesThePort) {
  HttpServer server("127.0.0.1:0");
  server.Handle("/x", [](const Request&) { return Response{200, "", "x"}; });
  ASSERT_TRUE(server.Start().ok());
  int port = server.port();
  EXPECT_EQ(Get(port, "/x").body, "x");
  server.Stop();
  server.Stop();
  EXPECT_FALSE(Client(port).connected());
  // Not restartable; and the destructor's Stop() is a third, harmless call.
  EXPECT_EQ(server.Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(HttpServerTest, StopWithoutStartAndConcurrentStops) {
  { HttpServer never_started("127.0.0.1:0"); }

  HttpServer server("127.0.0.1:0");
  ASSERT_TRUE(server.Start().ok());
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 4; ++i) stoppers.emplace_back([&] { server.Stop(); });
  for (std::thread& t : stoppers) t.join();
}

TEST(HttpServerTest, HandlerSeesPathAndQuery) {
  HttpServer server("127.0.0.1:0");
  server.Handle("/echo", [](const Request& request) {
    return Response{200, "application/json",
                    absl::StrCat(request.method, " ", request.path, " ", request.query)};
  });
  ASSERT_TRUE(server.Start().ok());
  HttpResult result = Get(server.port(), "/echo?a=b&c");
  EXPECT_EQ(result.code, 200);
  EXPECT_THAT(result.headers, HasSubstr("Content-Type: application/json"));
  EXPECT_EQ(result.body, "GET /echo a=b&c");
}

TEST(HttpServerTest, AddressForms) {
  HttpServer all_interfaces(":0");
  ASSERT_TRUE(all_interfaces.Start().ok());
  all_interfaces.Handle("/x", [](const Request&) { return Response{200, "", "x"}; });
  EXPECT_EQ(Get(all_interfaces.port(), "/x").code, 200);

  HttpServer localhost("localhost:0");
  EXPECT_TRUE(localhost.Start().ok());

  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x", "127.0.0.1:70000",
                          "127.0.0.1:-1", "::1:80"}) {
    HttpServer server(bad);
    EXPECT_EQ(server.Start().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(HttpServerTest, PortInUseFails) {
  HttpServer first("127.0.0.1:0");
  ASSERT_TRUE(first.Start().ok());
  HttpServer second(absl::StrCat("127.0.0.1:", first.port()));
  absl::Status status = second.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("bind"));
}

TEST(HttpServerTest, StalledRequestTimesOut) {
  HttpServerOptions options;
  options.read_timeout = absl::Milliseconds(300);
  HttpServer server("127.0.0.1:0", options);
  server.Handle("/x", [](const Request&) { return Response{200, "", "x"}; });
  ASSERT_TRUE(server.Start().ok());

  // Part of a request, then nothing: 408.
  Client partial(server.port());
  ASSERT_TRUE(partial.Send("GET /x HTTP/1.1\r\n"));
  absl::Time start = absl::Now();
  EXPECT_EQ(ParseResponse(partial.ReadAll()).code, 408);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));

  // Nothing at all: closed without a response.
  Client silent(server.port());
  EXPECT_EQ(silent.ReadAll(), "");
}

TEST(HttpServerTest, OverloadGets503) {
  HttpServerOptions options;
  options.num_workers = 1;
  options.max_pending = 1;
  HttpServer server("127.0.0.1:0", options);
  server.Handle("/x", [](const Request&) { return Response{200, "", "x"}; });
  ASSERT_TRUE(server.Start().ok());

  // The sleeps let the accept thread (and the worker, for the first) take each connection in
  // turn: one busy worker, one queued connection, then no room.
  auto busy = std::make_unique<Client>(server.port());
  absl::SleepFor(absl::Milliseconds(300));
  Client queued(server.port());
  absl::SleepFor(absl::Milliseconds(300));
  HttpResult rejected = Get(server.port(), "/x");
  EXPECT_EQ(rejected.code, 503);

  // Once the silent client goes away, the queued one is served.
  ASSERT_TRUE(queued.Send("GET /x HTTP/1.1\r\n\r\n"));
  busy.reset();
  EXPECT_EQ(ParseResponse(queued.ReadAll()).code, 200);
}

TEST(HttpServerTest, NullChecksAndRegistryAreTolerated) {
  HttpServer server("127.0.0.1:0");
  AddStandardHandlers(&server, nullptr, nullptr, nullptr);
  ASSERT_TRUE(server.Start().ok());
  EXPECT_EQ(Get(server.port(), "/metrics").code, 200);
  EXPECT_EQ(Get(server.port(), "/healthz").body, "ok");
  EXPECT_EQ(Get(server.port(), "/readyz").body, "ok");
}

}  // namespace
}  // namespace capstan::metrics
