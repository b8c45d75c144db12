#include "test/harness/containerd_process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/base/subprocess.h"
#include "absl/strings/str_split.h"
#include "test/harness/apiserver_process.h"

namespace capstan::testing {
namespace {

std::string FindBinary(const std::string& name) {
  if (const char* path = getenv("PATH")) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      std::string candidate = absl::StrCat(dir, "/", name);
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin", "/sbin", "/bin"}) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool SocketAnswers(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// A unix socket path must fit in 108 bytes, and Bazel's TEST_TMPDIR can be longer than that.
std::string MakeShortTempDir() {
  std::string dir = MakeTempDir("containerd-");
  if (dir.size() + sizeof("/containerd-ttrpc.sock") < 100) return dir;
  RemoveTree(dir);
  char pattern[] = "/tmp/capstan-containerd-XXXXXX";
  if (mkdtemp(pattern) == nullptr) abort();
  return pattern;
}

}  // namespace

std::string RequiresRootReason() {
  if (geteuid() != 0) return "containerd needs root (mounts, cgroups, namespaces); run as root";
  return "";
}

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& args) {
  absl::StatusOr<base::CommandResult> r = base::RunCommand(args, {.merge_stderr = true});
  if (!r.ok()) return r.status();
  if (r->exit_code != 0) {
    return absl::InternalError(absl::StrCat(args[0], " failed (exit ", r->exit_code, "): ", r->out));
  }
  return std::move(r->out);
}

ContainerdProcess::ContainerdProcess()
    : dir_(MakeShortTempDir()), socket_(dir_ + "/containerd.sock") {}

ContainerdProcess::~ContainerdProcess() {
  Stop();
  RemoveTree(dir_);
}

std::string ContainerdProcess::log() const { return ReadFile(dir_ + "/containerd.log"); }

absl::Status ContainerdProcess::Start() {
  if (running()) return absl::FailedPreconditionError("already running");
  std::string config = dir_ + "/config.toml";
  {
    std::ofstream out(config);
    out << "version = 2\n"
        << "root = \"" << dir_ << "/root\"\n"
        << "state = \"" << dir_ << "/state\"\n"
        // CRI is not used by Capstan and would want a CNI config.
        << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        << "[grpc]\n  address = \"" << socket_ << "\"\n"
        << "[ttrpc]\n  address = \"" << dir_ << "/containerd-ttrpc.sock\"\n"
        << "[debug]\n  level = \"info\"\n";
  }
  pid_ = SpawnProcess({FindBinary("containerd"), "--config", config}, dir_ + "/containerd.log");
  if (pid_ < 0) return absl::InternalError("fork failed");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (SocketAnswers(socket_)) return absl::OkStatus();
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("containerd exited during start: ", log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Stop();
  return absl::DeadlineExceededError(absl::StrCat("containerd not ready in 30 s: ", log()));
}

absl::StatusOr<std::string> ContainerdProcess::Ctr(const std::vector<std::string>& args) const {
  std::vector<std::string> full = {FindBinary("ctr"), "--address", socket_};
  full.insert(full.end(), args.begin(), args.end());
  return RunCommand(full);
}

void ContainerdProcess::RemoveAllTasks() {
  absl::StatusOr<std::string> namespaces = Ctr({"namespaces", "ls", "-q"});
  if (!namespaces.ok()) return;
  for (absl::string_view ns : absl::StrSplit(*namespaces, '\n', absl::SkipWhitespace())) {
    absl::StatusOr<std::string> ids = Ctr({"-n", std::string(ns), "tasks", "ls", "-q"});
    if (!ids.ok()) continue;
    for (absl::string_view id : absl::StrSplit(*ids, '\n', absl::SkipWhitespace())) {
      // --force kills a running task first; deleting it unmounts its rootfs.
      Ctr({"-n", std::string(ns), "tasks", "delete", "--force", std::string(id)}).IgnoreError();
    }
  }
}

// Shims outlive containerd by design (containers survive a containerd restart); ours are the
// ones told our socket address.
void ContainerdProcess::KillShims() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (absl::StrContains(cmdline, "containerd-shim") && absl::StrContains(cmdline, socket_ + " ")) {
      pid_t pid = atoi(entry.path().filename().c_str());
      if (pid > 0) kill(pid, SIGKILL);
    }
  }
}

void ContainerdProcess::UnmountUnder(const std::string& dir) {
  std::vector<std::string> mounts;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 4 && absl::StartsWith(fields[4], dir + "/")) mounts.push_back(fields[4]);
  }
  // Deepest first.
  std::sort(mounts.begin(), mounts.end(), [](const std::string& a, const std::string& b) {
    return a.size() > b.size();
  });
  for (const std::string& m : mounts) umount2(m.c_str(), MNT_DETACH);
}

void ContainerdProcess::Stop() {
  if (running()) {
    RemoveAllTasks();
    kill(pid_, SIGTERM);
    for (int i = 0; i < 500; ++i) {  // up to 5 s
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  KillShims();
  UnmountUnder(dir_);
}

}  // namespace capstan::testing
