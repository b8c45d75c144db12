#include "bench/load.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace capstan::bench {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string CpuModel() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/cpuinfo"), '\n')) {
    if (absl::StartsWith(line, "model name")) {
      size_t colon = line.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "unknown";
}

std::string MemTotal() {
  for (absl::string_view line : absl::StrSplit(ReadFile("/proc/meminfo"), '\n')) {
    if (absl::StartsWith(line, "MemTotal:")) {
      int64_t kib = 0;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line.substr(9), ' ', absl::SkipWhitespace());
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kib)) {
        return absl::StrFormat("%.1f GiB", kib / 1048576.0);
      }
    }
  }
  return "unknown";
}

int CpusAvailable() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
}

std::string FilesystemType(const std::string& path) {
  struct statfs fs;
  if (statfs(path.c_str(), &fs) != 0) return "unknown";
  switch (static_cast<uint64_t>(fs.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794C7630: return "overlayfs";
    default: return absl::StrFormat("0x%x", static_cast<uint64_t>(fs.f_type));
  }
}

// Fields 14 and 15 of /proc/PID/stat, in ticks.
std::optional<double> ProcessCpuSeconds(int pid) {
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  size_t paren = stat.rfind(')');  // the command name may contain spaces
  if (paren == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(paren + 1), ' ', absl::SkipWhitespace());
  // fields[0] is field 3 (state), so utime (14) is fields[11] and stime (15) fields[12].
  int64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return std::nullopt;
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double SelfCpuSeconds() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

int FindChildProcess(const std::string& name_prefix) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return 0;
  int found = 0;
  while (dirent* entry = readdir(proc)) {
    int pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipWhitespace());
    int ppid = 0;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) && ppid == getpid() &&
        absl::StartsWith(stat.substr(open + 1, close - open - 1), name_prefix)) {
      found = pid;
    }
  }
  closedir(proc);
  return found;
}

std::string GitRevision() {
  // Under `bazel run` the working directory is the runfiles tree; BUILD_WORKSPACE_DIRECTORY
  // names the checkout. Otherwise try the current directory.
  std::string dir = ".";
  if (const char* workspace = getenv("BUILD_WORKSPACE_DIRECTORY")) dir = workspace;
  std::string command = absl::StrCat("git -C '", dir, "' rev-parse --short HEAD 2>/dev/null");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[64] = {0};
  std::string out;
  if (fgets(buffer, sizeof(buffer), pipe) != nullptr) out = buffer;
  pclose(pipe);
  return std::string(absl::StripAsciiWhitespace(out));
}

std::map<int, ThreadCpu> ThreadCpuSeconds(int pid) {
  std::map<int, ThreadCpu> threads;
  const std::string dir = absl::StrCat("/proc/", pid, "/task");
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return threads;
  while (dirent* entry = readdir(tasks)) {
    int tid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &tid)) continue;
    std::string stat = ReadFile(absl::StrCat(dir, "/", tid, "/stat"));
    size_t open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(stat).substr(close + 1), ' ', absl::SkipWhitespace());
    int64_t utime = 0, stime = 0;
    if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
        !absl::SimpleAtoi(fields[12], &stime)) {
      continue;
    }
    threads[tid] = {stat.substr(open + 1, close - open - 1),
                    static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK)};
  }
  closedir(tasks);
  return threads;
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, int id) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // a LIST of thousands of pods exceeds the 4 MiB default
  // Channels with equal arguments share one TCP connection through gRPC's global subchannel
  // pool; a local pool and a distinct argument give each channel its own connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("capstan.bench.channel_id", id);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

void SetTimeout(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat("code ", status.error_code(), ": ", status.error_message());
}

std::vector<int> ParseCounts(const std::vector<std::string>& values, const char* flag) {
  std::vector<int> counts;
  for (const std::string& v : values) {
    int n = 0;
    if (!absl::SimpleAtoi(v, &n) || n <= 0) {
      std::fprintf(stderr, "bad --%s value '%s'\n", flag, v.c_str());
      std::exit(2);
    }
    counts.push_back(n);
  }
  return counts;
}

}  // namespace capstan::bench
