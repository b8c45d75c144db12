#include "test/harness/etcd_process.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "test/harness/apiserver_process.h"

namespace capstan::testing {
namespace {

// A port that was free a moment ago on 127.0.0.1. etcd cannot listen on port 0 and report the
// port it got (its advertised URLs must be known up front), so ports are picked here; the small
// race with other processes is covered by retrying the start.
int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace

std::string EtcdBinary() {
  if (const char* path = getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      std::string candidate = absl::StrCat(dir, "/etcd");
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return access("/usr/bin/etcd", X_OK) == 0 ? "/usr/bin/etcd" : "";
}

EtcdProcess::EtcdProcess(std::vector<std::string> extra_flags)
    : extra_flags_(std::move(extra_flags)),
      root_(MakeTempDir("etcd-")),
      data_dir_(root_ + "/data") {}

EtcdProcess::~EtcdProcess() {
  Kill();
  RemoveTree(root_);
}

std::string EtcdProcess::log() const {
  std::ifstream in(root_ + "/etcd.log");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

absl::Status EtcdProcess::Start() {
  if (running()) return absl::FailedPreconditionError("etcd already running");
  absl::Status status;
  // A port picked by FreeLoopbackPort may be taken before etcd binds it: try again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    status = StartOnce();
    if (status.ok() || status.code() != absl::StatusCode::kUnavailable) return status;
  }
  return status;
}

absl::Status EtcdProcess::StartOnce() {
  const std::string binary = EtcdBinary();
  if (binary.empty()) {
    return absl::NotFoundError("no etcd binary (apt-get install etcd-server)");
  }
  const int client_port = FreeLoopbackPort();
  const int peer_port = FreeLoopbackPort();
  if (client_port <= 0 || peer_port <= 0 || client_port == peer_port) {
    return absl::UnavailableError("no free loopback port");
  }
  const std::string client_url = absl::StrCat("http://127.0.0.1:", client_port);
  const std::string peer_url = absl::StrCat("http://127.0.0.1:", peer_port);
  std::vector<std::string> args = {
      binary,
      "--name=capstan-test",
      "--data-dir=" + data_dir_,
      "--listen-client-urls=" + client_url,
      "--advertise-client-urls=" + client_url,
      "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url,
      "--initial-cluster=capstan-test=" + peer_url,
      "--initial-cluster-state=new",
      // zap to stderr (the log file) rather than the deprecated capnslog default.
      "--logger=zap",
      "--log-outputs=stderr",
  };
  args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
  pid_ = SpawnProcess(args, root_ + "/etcd.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  client_address_ = absl::StrCat("127.0.0.1:", client_port);

  auto channel = grpc::CreateChannel(client_address_, grpc::InsecureChannelCredentials());
  auto maintenance = etcdserverpb::Maintenance::NewStub(channel);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int wait_status;
    if (waitpid(pid_, &wait_status, WNOHANG) == pid_) {
      pid_ = -1;
      client_address_.clear();
      // Most often a port clash ("address already in use"): Start() retries on kUnavailable.
      return absl::UnavailableError(absl::StrCat("etcd exited during start: ", log()));
    }
    // Status answers once the member has joined its one-member cluster and serves.
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
    etcdserverpb::StatusRequest request;
    etcdserverpb::StatusResponse response;
    if (maintenance->Status(&context, request, &response).ok() && response.leader() != 0) {
      version_ = response.version();
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::string output = log();
  Kill();
  return absl::DeadlineExceededError(absl::StrCat("etcd not ready in 30 s: ", output));
}

void EtcdProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  client_address_.clear();
}

}  // namespace capstan::testing
