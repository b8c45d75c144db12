// Acknowledged writes survive kill -9: writers run while the apiserver is SIGKILLed several
// times; after each restart every acknowledged write is there with its resourceVersion,
// revisions never go backwards, and a watcher that resumes sees every revision exactly once.
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/core_v1.pb.h"
#include "test/harness/apiserver_process.h"
#include "test/integration/api_test_util.h"

namespace capstan::testing {
namespace {

using capstan::core::v1::Pod;

constexpr int kWriters = 8;
constexpr int kKills = 4;
constexpr int kAcksBetweenKills = 150;

TEST(DurabilityTest, AcknowledgedWritesSurviveSigkill) {
  ApiServerProcess server;
  ASSERT_TRUE(server.Start().ok());
  auto ref = Ref("", "pods", "default");

  std::mutex mu;
  std::map<std::string, int64_t> acked;  // pod name -> resourceVersion the server acknowledged
  int64_t highest_acked = 0;
  int name_counter = 0;

  for (int round = 0; round < kKills; ++round) {
    std::atomic<int> acks{0};
    std::atomic<bool> stop{false};
    std::string address = server.grpc_address();
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        Api api(address);
        while (!stop) {
          std::string name;
          {
            std::lock_guard<std::mutex> lock(mu);
            name = absl::StrCat("d-", name_counter++);
          }
          Pod pod;
          pod.mutable_metadata()->set_name(name);
          auto* c = pod.mutable_spec()->add_containers();
          c->set_name("main");
          c->set_image("busybox");
          auto created = api.CreateTyped(ref, pod);
          if (!created.ok()) continue;  // the server died under us: not acknowledged
          int64_t rv = std::stoll(created->metadata().resource_version());
          std::lock_guard<std::mutex> lock(mu);
          acked[name] = rv;
          highest_acked = std::max(highest_acked, rv);
          ++acks;
        }
      });
    }
    while (acks < kAcksBetweenKills) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.Kill();  // writers still running: some requests are in flight
    stop = true;
    for (auto& t : writers) t.join();

    ASSERT_TRUE(server.Start().ok());
    Api api(server.grpc_address());
    apiv1::ListRequest req;
    *req.mutable_resource() = ref;
    auto list = api.List(req);
    ASSERT_TRUE(list.ok()) << list.status();
    std::map<std::string, int64_t> stored;
    for (const auto& item : list->items()) {
      Pod pod;
      pod.ParseFromString(item);
      stored[pod.metadata().name()] = std::stoll(pod.metadata().resource_version());
    }
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& [name, rv] : acked) {
      auto it = stored.find(name);
      ASSERT_NE(it, stored.end()) << "acknowledged " << name << " at " << rv << " is lost";
      EXPECT_EQ(it->second, rv) << name;
    }
    // Revisions never go backwards: the store is at or past everything acknowledged.
    EXPECT_GE(std::stoll(list->resource_version()), highest_acked);
  }

  // A watcher resuming from the start sees every acknowledged revision exactly once, in order.
  Api api(server.grpc_address());
  apiv1::WatchRequest req;
  *req.mutable_resource() = ref;
  req.set_resource_version("1");
  grpc::ClientContext ctx;
  auto reader = api.stub()->Watch(&ctx, req);
  std::map<int64_t, int> times_seen;
  int64_t previous = 0;
  apiv1::WatchResponse resp;
  size_t expected = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    expected = acked.size();
  }
  size_t adds = 0;
  while (adds < expected && reader->Read(&resp)) {
    for (const auto& e : resp.events()) {
      Pod pod;
      pod.ParseFromString(e.object());
      int64_t rv = std::stoll(pod.metadata().resource_version());
      EXPECT_GT(rv, previous);
      previous = rv;
      ++times_seen[rv];
      ++adds;
    }
  }
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  reader->Finish();
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& [name, rv] : acked) EXPECT_EQ(times_seen[rv], 1) << name << " at " << rv;
}

}  // namespace
}  // namespace capstan::testing
