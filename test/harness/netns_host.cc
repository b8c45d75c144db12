#include "test/harness/netns_host.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/base/subprocess.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "test/harness/apiserver_process.h"

namespace capstan::testing {
namespace {

// Bazel's test PATH leaves out the sbin directories, where Debian puts `ip`.
const std::string& IpBinary() {
  static const std::string* path = [] {
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (access(candidate, X_OK) == 0) return new std::string(candidate);
    }
    return new std::string();
  }();
  return *path;
}

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {IpBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ExecResult> result = RunCommand(argv, absl::Seconds(10));
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(
        absl::StrCat("ip ", absl::StrJoin(args, " "), ": ", result->output));
  }
  return absl::OkStatus();
}

std::string IpOutput(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {IpBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<ExecResult> result = RunCommand(argv, absl::Seconds(10));
  return result.ok() && result->exit_code == 0 ? result->output : "";
}

// SIGKILLs every process in the namespace: children of spawned processes too, which would
// otherwise keep the namespace (and its veth) alive after its name is deleted.
void KillAllIn(const std::string& netns) {
  for (absl::string_view word :
       absl::StrSplit(IpOutput({"netns", "pids", netns}), '\n', absl::SkipWhitespace())) {
    int pid;
    if (absl::SimpleAtoi(word, &pid) && pid > 1 && pid != getpid()) kill(pid, SIGKILL);
  }
}

void DeleteNamespace(const std::string& netns) {
  KillAllIn(netns);
  (void)Ip({"netns", "del", netns});
}

std::string NamespacePrefix(int subnet) { return absl::StrCat("ct", subnet, "-"); }
std::string BridgeName(int subnet) { return absl::StrCat("ctnet", subnet); }

// Whoever holds subnet X's lock owns every name with X in it, so what is found under those names
// now was left by a run that died.
void RemoveStale(int subnet) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
    std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, NamespacePrefix(subnet))) DeleteNamespace(name);
  }
  (void)Ip({"link", "del", BridgeName(subnet)});  // usually absent
}

}  // namespace

absl::StatusOr<ExecResult> RunCommand(const std::vector<std::string>& args,
                                      absl::Duration timeout) {
  absl::StatusOr<base::CommandResult> r =
      base::RunCommand(args, {.timeout = timeout, .merge_stderr = true});
  if (!r.ok()) return r.status();
  return ExecResult{r->exit_code, std::move(r->out)};
}

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create() {
  if (IpBinary().empty()) return absl::FailedPreconditionError("iproute2's ip not found");
  if (geteuid() != 0) return absl::PermissionDeniedError("network namespaces need root");
  const char* lock_dir = access("/run/lock", W_OK) == 0 ? "/run/lock" : "/tmp";
  for (int i = 0; i < 250; ++i) {
    int subnet = (getpid() + i) % 250 + 1;
    std::string lock_path = absl::StrCat(lock_dir, "/capstan-testnet-", subnet, ".lock");
    int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) continue;
    // The lock is released when this process dies, however it dies.
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      close(fd);
      continue;
    }
    RemoveStale(subnet);
    // Something other than a test network may use this subnet.
    if (absl::StrContains(IpOutput({"-4", "-o", "addr", "show"}),
                          absl::StrCat(" 10.201.", subnet, "."))) {
      close(fd);
      continue;
    }
    std::unique_ptr<TestNetwork> network(new TestNetwork(subnet, fd));
    for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
             {"link", "add", network->bridge_, "type", "bridge"},
             {"addr", "add", network->address_ + "/24", "dev", network->bridge_},
             {"link", "set", "dev", network->bridge_, "up"}}) {
      absl::Status s = Ip(step);
      if (!s.ok()) return s;  // ~TestNetwork removes the half-made bridge
    }
    return network;
  }
  return absl::ResourceExhaustedError("no free subnet in 10.201.0.0/16");
}

TestNetwork::TestNetwork(int subnet, int lock_fd)
    : subnet_(subnet),
      lock_fd_(lock_fd),
      bridge_(BridgeName(subnet)),
      address_(absl::StrCat("10.201.", subnet, ".1")) {}

TestNetwork::~TestNetwork() {
  // Hosts still alive lose their link here; their own destructors delete them.
  (void)Ip({"link", "del", bridge_});
  close(lock_fd_);
}

absl::StatusOr<std::unique_ptr<NetnsHost>> TestNetwork::AddHost(const std::string& name) {
  if (name.empty() || name.size() > 40 ||
      !std::all_of(name.begin(), name.end(),
                   [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '-'; })) {
    return absl::InvalidArgumentError(absl::StrCat("bad host name: ", name));
  }
  if (next_host_ > 254) return absl::ResourceExhaustedError("no address left in the /24");
  int n = next_host_++;
  // Interface names have at most 15 characters: "cth" + X + "h" + N is at most 10.
  std::unique_ptr<NetnsHost> host(new NetnsHost(NamespacePrefix(subnet_) + name,
                                                absl::StrCat("cth", subnet_, "h", n),
                                                absl::StrCat("10.201.", subnet_, ".", n)));
  const std::string& ns = host->name_;
  for (const std::vector<std::string>& step : std::vector<std::vector<std::string>>{
           {"netns", "add", ns},
           {"link", "add", host->veth_, "type", "veth", "peer", "name", "eth0", "netns", ns},
           {"link", "set", "dev", host->veth_, "master", bridge_, "up"},
           {"-n", ns, "addr", "add", host->address_ + "/24", "dev", "eth0"},
           {"-n", ns, "link", "set", "dev", "lo", "up"},
           {"-n", ns, "link", "set", "dev", "eth0", "up"},
           {"-n", ns, "route", "add", "default", "via", address_}}) {
    absl::Status s = Ip(step);
    if (!s.ok()) return s;  // ~NetnsHost removes what was made
  }
  return host;
}

NetnsHost::~NetnsHost() {
  for (pid_t pid : spawned_) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  DeleteNamespace(name_);
  // Gone with the namespace normally; explicitly in case a process we could not kill holds it.
  (void)Ip({"link", "del", veth_});
}

// nsenter enters only the network namespace. `ip netns exec` would also give the process a
// mount namespace of its own (a slave of the root one), and then the network namespaces a node
// agent makes inside it (`ip netns add`, a bind mount under /run/netns) would not be visible to a
// containerd outside: the container could not join its pod's namespace.
std::vector<std::string> NetnsHost::InNamespace(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/nsenter", "--net=" + netns_path(), "--"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

absl::StatusOr<ExecResult> NetnsHost::Exec(const std::vector<std::string>& args,
                                           absl::Duration timeout) {
  std::vector<std::string> argv = InNamespace(args);
  return RunCommand(argv, timeout);
}

pid_t NetnsHost::Spawn(const std::vector<std::string>& args, const std::string& log_path) {
  pid_t pid = SpawnProcess(InNamespace(args), log_path);
  if (pid > 0) spawned_.push_back(pid);
  return pid;
}

absl::Status NetnsHost::CutLink() { return Ip({"link", "set", "dev", veth_, "down"}); }

absl::Status NetnsHost::RestoreLink() { return Ip({"link", "set", "dev", veth_, "up"}); }

}  // namespace capstan::testing
