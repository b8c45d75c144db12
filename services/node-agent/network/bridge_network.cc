#include "services/node-agent/network/bridge_network.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/base/subprocess.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace capstan::nodeagent {
namespace {

// Where `ip netns add` puts its namespaces (iproute2's NETNS_RUN_DIR).
constexpr char kNetnsDir[] = "/run/netns";


std::string FindIpBinary() {
  const char* path = getenv("PATH");
  std::vector<std::string> dirs = absl::StrSplit(path ? path : "", ':', absl::SkipEmpty());
  // Bazel's test PATH and many service managers' leave out the sbin directories.
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) dirs.push_back(d);
  for (const std::string& dir : dirs) {
    std::string candidate = dir + "/ip";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

bool ParseAddress(const std::string& text, uint32_t* address) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return false;
  *address = ntohl(a.s_addr);
  return true;
}

std::string FormatAddress(uint32_t address) {
  in_addr a{};
  a.s_addr = htonl(address);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

// Pod uids become file names and namespace names: keep them to a safe alphabet.
bool ValidPodUid(const std::string& uid) {
  if (uid.empty() || uid.size() > 200 || uid == "." || uid == "..") return false;
  for (char c : uid) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class PodLock {
 public:
  explicit PodLock(std::function<void()> unlock) : unlock_(std::move(unlock)) {}
  ~PodLock() { unlock_(); }

 private:
  std::function<void()> unlock_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<BridgeNetwork>> BridgeNetwork::Create(
    BridgeNetworkOptions options) {
  if (options.bridge.empty() || options.bridge.size() > 15) {
    return absl::InvalidArgumentError(
        absl::StrCat("bridge name must have 1 to 15 characters: ", options.bridge));
  }
  if (options.netns_prefix.empty()) return absl::InvalidArgumentError("empty netns_prefix");
  if (options.state_dir.empty()) return absl::InvalidArgumentError("empty state_dir");
  std::vector<std::string> parts = absl::StrSplit(options.pod_cidr, '/');
  uint32_t address = 0;
  int prefix_length = 0;
  if (parts.size() != 2 || !ParseAddress(parts[0], &address) ||
      !absl::SimpleAtoi(parts[1], &prefix_length) || prefix_length < 1 || prefix_length > 30) {
    // Up to /30: the network, the gateway, one pod and the broadcast address.
    return absl::InvalidArgumentError(
        absl::StrCat("pod_cidr must be an IPv4 CIDR of /1 to /30: ", options.pod_cidr));
  }
  uint32_t mask = ~uint32_t{0} << (32 - prefix_length);
  std::string ip_binary = options.ip_binary.empty() ? FindIpBinary() : options.ip_binary;
  if (ip_binary.empty() || access(ip_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError("iproute2's ip not found (install iproute2)");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.state_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create state_dir ", options.state_dir, ": ", ec.message()));
  }
  std::unique_ptr<BridgeNetwork> network(
      new BridgeNetwork(std::move(options), std::move(ip_binary), address & mask, prefix_length));
  absl::Status reconciled = network->Reconcile();
  if (!reconciled.ok()) return reconciled;
  return network;
}

BridgeNetwork::BridgeNetwork(BridgeNetworkOptions options, std::string ip_binary,
                             uint32_t network, int prefix_length)
    : options_(std::move(options)),
      ip_binary_(std::move(ip_binary)),
      network_(network),
      prefix_length_(prefix_length) {}

std::string BridgeNetwork::gateway() const { return FormatAddress(network_ + 1); }

std::string BridgeNetwork::NamespaceName(const std::string& pod_uid) const {
  return options_.netns_prefix + pod_uid;
}

std::string BridgeNetwork::HostVethName(const std::string& netns_name) {
  // Interface names have at most 15 characters; a pod uid alone is 36. FNV-1a is stable across
  // builds and restarts (std::hash is not promised to be), and 48 bits make a clash unlikely.
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : netns_name) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return absl::StrFormat("cpv%012x", hash & 0xffffffffffffULL);
}

absl::StatusOr<std::string> BridgeNetwork::Ip(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {ip_binary_};
  argv.insert(argv.end(), args.begin(), args.end());
  // ip does not hang in practice; the bound keeps a wedged kernel call from holding a pod's sync.
  absl::StatusOr<base::CommandResult> result =
      base::RunCommand(argv, {.timeout = absl::Seconds(30)});
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("ip ", absl::StrJoin(args, " "), ": exit ",
                                            result->exit_code, ": ",
                                            absl::StripAsciiWhitespace(result->err)));
  }
  return std::move(result->out);
}

absl::Status BridgeNetwork::IpBatch(const std::vector<std::string>& options,
                                    const std::vector<std::string>& commands) const {
  std::string path = options_.state_dir + "/.batch-XXXXXX";
  int fd = mkstemp(path.data());
  if (fd < 0) return absl::InternalError(absl::StrCat("mkstemp in ", options_.state_dir));
  const std::string text = absl::StrJoin(commands, "\n") + "\n";
  const bool written = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  absl::StatusOr<std::string> r = written ? absl::StatusOr<std::string>("") : absl::InternalError("write " + path);
  if (r.ok()) {
    std::vector<std::string> args = options;
    args.push_back("-batch");
    args.push_back(path);
    r = Ip(args);
  }
  unlink(path.c_str());
  return r.status();
}

absl::Status BridgeNetwork::SetUpFresh(const std::string& ns, const std::string& veth,
                                       const std::string& address) {
  absl::Status s = IpBatch({}, {absl::StrCat("netns add ", ns),
                                absl::StrCat("link add ", veth, " type veth peer name eth0 netns ", ns),
                                absl::StrCat("link set dev ", veth, " master ", options_.bridge, " up")});
  if (!s.ok()) return s;
  // The default route after eth0 is up: the gateway must be on a connected route.
  return IpBatch({"-n", ns}, {absl::StrCat("addr add ", address, "/", prefix_length_, " dev eth0"),
                              "link set dev lo up", "link set dev eth0 up",
                              absl::StrCat("route replace default via ", gateway(), " dev eth0")});
}

absl::Status BridgeNetwork::EnsureBridge() {
  absl::MutexLock lock(&bridge_mu_);
  if (bridge_ready_) return absl::OkStatus();
  const std::string& bridge = options_.bridge;
  if (!Ip({"link", "show", "dev", bridge}).ok()) {
    absl::StatusOr<std::string> added = Ip({"link", "add", bridge, "type", "bridge"});
    // Another agent sharing this network namespace may have made it meanwhile.
    if (!added.ok() && !Ip({"link", "show", "dev", bridge}).ok()) return added.status();
  }
  // `replace` keeps this idempotent; other addresses on the bridge are left alone.
  absl::StatusOr<std::string> r =
      Ip({"addr", "replace", absl::StrCat(gateway(), "/", prefix_length_), "dev", bridge});
  if (!r.ok()) return r.status();
  r = Ip({"link", "set", "dev", bridge, "up"});
  if (!r.ok()) return r.status();
  bridge_ready_ = true;
  return absl::OkStatus();
}

void BridgeNetwork::LockPod(const std::string& pod_uid) {
  absl::MutexLock lock(&mu_);
  auto free = [this, &pod_uid]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !busy_pods_.contains(pod_uid);
  };
  mu_.Await(absl::Condition(&free));
  busy_pods_.insert(pod_uid);
}

void BridgeNetwork::UnlockPod(const std::string& pod_uid) {
  absl::MutexLock lock(&mu_);
  busy_pods_.erase(pod_uid);
}

absl::StatusOr<std::string> BridgeNetwork::ReservedAddress(const std::string& pod_uid) const {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir, ec)) {
    std::string name = entry.path().filename().string();
    uint32_t address;
    if (!ParseAddress(name, &address)) continue;  // e.g. a half-written .reserve- file
    if (absl::StripAsciiWhitespace(ReadFile(entry.path().string())) == pod_uid) return name;
  }
  if (ec) return absl::InternalError(absl::StrCat("read ", options_.state_dir, ": ", ec.message()));
  return std::string();
}

absl::Status BridgeNetwork::Reserve(uint32_t address, const std::string& pod_uid,
                                    bool* taken) const {
  // Write the owner to a private file, then link it to the address's name: link() fails if the
  // name exists, so exactly one caller wins an address and its file is never seen half-written.
  std::string tmp = options_.state_dir + "/.reserve-XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return absl::InternalError(absl::StrCat("mkstemp in ", options_.state_dir));
  std::string content = pod_uid + "\n";
  bool written = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  close(fd);
  if (!written) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("write ", tmp));
  }
  std::string path = options_.state_dir + "/" + FormatAddress(address);
  int rc = link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  unlink(tmp.c_str());
  *taken = rc != 0 && link_errno == EEXIST;
  if (rc != 0 && !*taken) {
    return absl::InternalError(absl::StrCat("link ", path, ": ", strerror(link_errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BridgeNetwork::Allocate(const std::string& pod_uid) const {
  // The lowest free address, from the one after the gateway to the one before the broadcast.
  uint32_t first = network_ + 2;
  uint32_t last = network_ + static_cast<uint32_t>((uint64_t{1} << (32 - prefix_length_)) - 2);
  for (uint32_t address = first; address <= last; ++address) {
    if (Exists(options_.state_dir + "/" + FormatAddress(address))) continue;
    bool taken = false;
    absl::Status s = Reserve(address, pod_uid, &taken);
    if (!s.ok()) return s;
    if (!taken) return FormatAddress(address);
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("no free address in ", options_.pod_cidr, " for pod ", pod_uid));
}

absl::Status BridgeNetwork::Release(const std::string& pod_uid) const {
  // Normally one file; more only if an earlier run crashed between two reservations.
  for (;;) {
    absl::StatusOr<std::string> address = ReservedAddress(pod_uid);
    if (!address.ok()) return address.status();
    if (address->empty()) return absl::OkStatus();
    std::string path = options_.state_dir + "/" + *address;
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError(absl::StrCat("unlink ", path, ": ", strerror(errno)));
    }
  }
}

std::string BridgeNetwork::NamespaceAddress(const std::string& netns_name) const {
  if (!Exists(absl::StrCat(kNetnsDir, "/", netns_name))) return "";
  absl::StatusOr<std::string> out = Ip({"-n", netns_name, "-4", "-o", "addr", "show", "dev", "eth0"});
  if (!out.ok()) return "";
  // "2: eth0    inet 10.88.0.2/24 scope global eth0 ..."
  std::vector<std::string> words = absl::StrSplit(*out, ' ', absl::SkipWhitespace());
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "inet") return words[i + 1].substr(0, words[i + 1].find('/'));
  }
  return "";
}

absl::Status BridgeNetwork::Reconcile() {
  absl::StatusOr<std::vector<std::string>> pods = ListPods();
  if (!pods.ok()) return pods.status();
  std::set<std::string> live(pods->begin(), pods->end());
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.state_dir, ec)) {
    std::string name = entry.path().filename().string();
    uint32_t address;
    if (absl::StartsWith(name, ".reserve-")) {
      unlink(entry.path().c_str());  // left by a crash inside Reserve
      continue;
    }
    if (!ParseAddress(name, &address)) continue;
    std::string owner(absl::StripAsciiWhitespace(ReadFile(entry.path().string())));
    if (live.count(owner) == 0) unlink(entry.path().c_str());
  }
  if (ec) return absl::InternalError(absl::StrCat("read ", options_.state_dir, ": ", ec.message()));
  // Namespaces the state directory does not know (e.g. it was lost) keep their address, so that
  // it is not handed out twice.
  for (const std::string& pod : live) {
    absl::StatusOr<std::string> reserved = ReservedAddress(pod);
    if (!reserved.ok()) return reserved.status();
    if (!reserved->empty()) continue;
    uint32_t address;
    if (!ParseAddress(NamespaceAddress(NamespaceName(pod)), &address)) continue;
    uint32_t mask = ~uint32_t{0} << (32 - prefix_length_);
    if ((address & mask) != network_) continue;
    bool taken = false;
    absl::Status s = Reserve(address, pod, &taken);
    if (!s.ok()) return s;
    // If taken, two namespaces claim one address; SetUp of this pod will give it a new one.
  }
  return absl::OkStatus();
}

absl::StatusOr<PodNetworkStatus> BridgeNetwork::SetUp(const std::string& pod_uid) {
  if (!ValidPodUid(pod_uid)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid pod uid: ", pod_uid));
  }
  LockPod(pod_uid);
  PodLock unlock([this, &pod_uid] { UnlockPod(pod_uid); });
  absl::Status s = EnsureBridge();
  if (!s.ok()) return s;

  const std::string ns = NamespaceName(pod_uid);
  const std::string ns_path = absl::StrCat(kNetnsDir, "/", ns);
  const std::string veth = HostVethName(ns);
  const std::string current = NamespaceAddress(ns);

  // Every step below is idempotent, so a SetUp that failed half-way is completed by the next one.
  absl::StatusOr<std::string> address = ReservedAddress(pod_uid);
  if (!address.ok()) return address.status();
  if (address->empty() && !current.empty()) {
    // The namespace has an address the state directory lost: keep it if it is still free.
    uint32_t a;
    uint32_t mask = ~uint32_t{0} << (32 - prefix_length_);
    bool taken = true;
    if (ParseAddress(current, &a) && (a & mask) == network_) {
      s = Reserve(a, pod_uid, &taken);
      if (!s.ok()) return s;
    }
    if (!taken) *address = current;
  }
  if (address->empty()) {
    address = Allocate(pod_uid);
    if (!address.ok()) return address.status();
  }

  absl::StatusOr<std::string> r;
  if (!Exists(ns_path)) {
    // The usual case, a new pod: all steps at once. If any fails, the step-by-step path below
    // finds what is there, completes it, and reports the step that fails.
    if (SetUpFresh(ns, veth, *address).ok()) return PodNetworkStatus{ns_path, *address};
  }
  if (!Exists(ns_path)) {
    r = Ip({"netns", "add", ns});
    if (!r.ok()) return r.status();
  }
  if (!Ip({"-n", ns, "link", "show", "dev", "eth0"}).ok()) {
    (void)Ip({"link", "del", veth});  // a host end left without its peer; usually absent
    r = Ip({"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns});
    if (!r.ok()) return r.status();
  }
  if (current != *address) {
    r = Ip({"-n", ns, "addr", "flush", "dev", "eth0"});
    if (!r.ok()) return r.status();
    r = Ip({"-n", ns, "addr", "add", absl::StrCat(*address, "/", prefix_length_), "dev", "eth0"});
    if (!r.ok()) return r.status();
  }
  for (const char* dev : {"lo", "eth0"}) {
    r = Ip({"-n", ns, "link", "set", "dev", dev, "up"});
    if (!r.ok()) return r.status();
  }
  // After eth0 is up: the gateway must be on a connected route.
  r = Ip({"-n", ns, "route", "replace", "default", "via", gateway(), "dev", "eth0"});
  if (!r.ok()) return r.status();
  std::vector<std::string> attach = {"link", "set", "dev", veth, "master", options_.bridge, "up"};
  r = Ip(attach);
  if (!r.ok()) {
    // Perhaps the bridge was deleted behind our back: make it again and retry once.
    {
      absl::MutexLock lock(&bridge_mu_);
      bridge_ready_ = false;
    }
    s = EnsureBridge();
    if (!s.ok()) return s;
    r = Ip(attach);
    if (!r.ok()) return r.status();
  }
  return PodNetworkStatus{ns_path, *address};
}

absl::Status BridgeNetwork::TearDown(const std::string& pod_uid) {
  if (!ValidPodUid(pod_uid)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid pod uid: ", pod_uid));
  }
  LockPod(pod_uid);
  PodLock unlock([this, &pod_uid] { UnlockPod(pod_uid); });
  const std::string ns = NamespaceName(pod_uid);
  const std::string veth = HostVethName(ns);
  // Delete the veth explicitly: deleting the namespace's name does not free the namespace (nor
  // its eth0) while a process still runs in it.
  if (Ip({"link", "show", "dev", veth}).ok()) {
    absl::StatusOr<std::string> r = Ip({"link", "del", veth});
    if (!r.ok()) return r.status();
  }
  if (Exists(absl::StrCat(kNetnsDir, "/", ns))) {
    absl::StatusOr<std::string> r = Ip({"netns", "del", ns});
    if (!r.ok()) return r.status();
  }
  return Release(pod_uid);
}

absl::StatusOr<std::vector<std::string>> BridgeNetwork::ListPods() {
  std::vector<std::string> pods;
  DIR* dir = opendir(kNetnsDir);
  if (dir == nullptr) {
    if (errno == ENOENT) return pods;  // no namespace was ever made on this machine
    return absl::InternalError(absl::StrCat("open ", kNetnsDir, ": ", strerror(errno)));
  }
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (absl::StartsWith(name, options_.netns_prefix) && name.size() > options_.netns_prefix.size()) {
      pods.push_back(name.substr(options_.netns_prefix.size()));
    }
  }
  closedir(dir);
  std::sort(pods.begin(), pods.end());
  return pods;
}

}  // namespace capstan::nodeagent
