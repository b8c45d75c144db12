#include "test/harness/apiserver_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace capstan::testing {

std::string RunfilePath(const std::string& workspace_relative) {
  for (const char* var : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* dir = getenv(var)) {
      std::string path = absl::StrCat(dir, "/capstan/", workspace_relative);
      if (access(path.c_str(), F_OK) == 0) return path;
    }
  }
  // A binary run by hand from bazel-bin: its runfiles sit beside it.
  std::error_code ec;
  std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (!ec) {
    std::string path = absl::StrCat(self, ".runfiles/capstan/", workspace_relative);
    if (access(path.c_str(), F_OK) == 0) return path;
  }
  return workspace_relative;
}

std::string MakeTempDir(const std::string& prefix) {
  const char* base = getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(base ? base : "/tmp", "/", prefix, "XXXXXX");
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) abort();
  return std::string(buf.data());
}

absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("address without port");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect ", address));
  }
  std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", address,
                                     "\r\nConnection: close\r\n\r\n");
  if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::UnavailableError("write");
  }
  std::string response;
  char buf[16384];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = response.find("\r\n\r\n");
  if (body == std::string::npos) return absl::DataLossError("no HTTP header end");
  std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200 ") == std::string::npos) return absl::UnavailableError(status_line);
  return response.substr(body + 4);
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

ApiServerProcess::ApiServerProcess(std::vector<std::string> extra_flags, std::string binary)
    : extra_flags_(std::move(extra_flags)),
      binary_(binary.empty() ? RunfilePath("services/apiserver/capstan-apiserver")
                             : std::move(binary)),
      root_(MakeTempDir("apiserver-")),
      data_dir_(root_ + "/data") {}

ApiServerProcess::~ApiServerProcess() {
  Kill();
  RemoveTree(root_);
}

pid_t SpawnProcess(const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<std::string> argv_storage = args;
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  // The child must not outlive a test that crashed.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

namespace {

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> WaitForAddressFile(const std::string& path,
                                                                      pid_t pid,
                                                                      const std::string& log_path) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    // Services write the file under another name and rename it: once it exists it is whole.
    if (access(path.c_str(), F_OK) == 0) {
      std::map<std::string, std::string> values;
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        size_t eq = line.find('=');
        if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
      }
      return values;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return absl::InternalError(absl::StrCat("exited during start: ", ReadWhole(log_path)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError(absl::StrCat("not ready in 30 s: ", ReadWhole(log_path)));
}

absl::Status ApiServerProcess::Start() {
  if (running()) return absl::FailedPreconditionError("already running");
  std::string address_file = root_ + "/addresses";
  unlink(address_file.c_str());
  std::vector<std::string> args = {binary_,
                                   "--data_dir=" + data_dir_,
                                   "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0",
                                   "--address_file=" + address_file};
  args.insert(args.end(), extra_flags_.begin(), extra_flags_.end());
  std::string log = root_ + "/apiserver.log";
  pid_ = SpawnProcess(args, log);
  if (pid_ < 0) return absl::InternalError("fork failed");
  absl::StatusOr<std::map<std::string, std::string>> addresses =
      WaitForAddressFile(address_file, pid_, log);
  if (!addresses.ok()) {
    Kill();
    return absl::Status(addresses.status().code(),
                        absl::StrCat("apiserver: ", addresses.status().message()));
  }
  grpc_address_ = (*addresses)["grpc"];
  metrics_address_ = (*addresses)["metrics"];
  return absl::OkStatus();
}

ServiceProcess::ServiceProcess(std::string binary, std::vector<std::string> flags)
    : binary_(RunfilePath(binary)), flags_(std::move(flags)), root_(MakeTempDir("service-")) {}

ServiceProcess::~ServiceProcess() {
  Kill();
  RemoveTree(root_);
}

absl::Status ServiceProcess::Start() {
  if (running()) return absl::FailedPreconditionError("already running");
  std::string address_file = root_ + "/addresses";
  unlink(address_file.c_str());
  std::vector<std::string> args = {binary_, "--address_file=" + address_file};
  args.insert(args.end(), flags_.begin(), flags_.end());
  pid_ = SpawnProcess(args, root_ + "/service.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  absl::StatusOr<std::map<std::string, std::string>> addresses =
      WaitForAddressFile(address_file, pid_, root_ + "/service.log");
  if (!addresses.ok()) {
    Kill();
    return addresses.status();
  }
  addresses_ = std::move(*addresses);
  return absl::OkStatus();
}

void ServiceProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void ServiceProcess::Stop() {
  if (!running()) return;
  kill(pid_, SIGTERM);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string ServiceProcess::log() const { return ReadWhole(root_ + "/service.log"); }

void ApiServerProcess::Reap() {
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  grpc_address_.clear();
  metrics_address_.clear();
}

void ApiServerProcess::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  Reap();
}

void ApiServerProcess::Stop() {
  if (!running()) return;
  kill(pid_, SIGTERM);
  Reap();
}

}  // namespace capstan::testing
