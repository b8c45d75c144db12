#include "services/node-agent/runtime/oci_spec.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace capstan::nodeagent {
namespace {

using nlohmann::json;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr int64_t kCpuPeriodMicros = 100000;  // 100 ms, as Kubernetes uses

std::vector<std::string> StringList(const json& object, const char* key) {
  std::vector<std::string> out;
  auto it = object.find(key);
  if (it == object.end() || !it->is_array()) return out;
  for (const json& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string StringField(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The image's env, then the container's: a later KEY replaces an earlier one in place, as
// Kubernetes does.
std::vector<std::string> MergeEnv(const ContainerConfig& config, const ImageConfig& image) {
  std::vector<std::string> env = image.env;
  auto set = [&env](const std::string& key, const std::string& value) {
    std::string entry = absl::StrCat(key, "=", value);
    for (std::string& e : env) {
      if (e.compare(0, key.size() + 1, key + "=") == 0) {
        e = entry;
        return;
      }
    }
    env.push_back(entry);
  };
  if (!config.hostname.empty()) set("HOSTNAME", config.hostname);
  for (const auto& [key, value] : config.env) set(key, value);
  bool has_path = std::any_of(env.begin(), env.end(),
                              [](const std::string& e) { return e.rfind("PATH=", 0) == 0; });
  if (!has_path) env.insert(env.begin(), kDefaultPath);
  return env;
}

// Only numeric users ("1000" or "1000:1000"): names would need the image's /etc/passwd.
absl::StatusOr<json> ProcessUser(const std::string& user) {
  uint32_t uid = 0, gid = 0;
  if (!user.empty()) {
    std::vector<std::string> parts = absl::StrSplit(user, ':');
    if (parts.size() > 2 || !absl::SimpleAtoi(parts[0], &uid) ||
        (parts.size() == 2 && !absl::SimpleAtoi(parts[1], &gid))) {
      return absl::InvalidArgumentError(
          absl::StrCat("image user \"", user, "\" is not numeric (uid[:gid]); names are not supported"));
    }
  }
  return json{{"uid", uid}, {"gid", gid}};
}

json Capabilities() {
  // containerd's default set for containers (oci.defaultUnixCaps).
  json caps = json::array({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
                           "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP",
                           "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
                           "CAP_AUDIT_WRITE"});
  return json{{"bounding", caps}, {"permitted", caps}, {"effective", caps}};
}

json Mount(const char* destination, const char* type, const char* source,
           std::vector<std::string> options) {
  return json{{"destination", destination}, {"type", type}, {"source", source},
              {"options", options}};
}

// What every Linux container has mounted (containerd's defaults).
json StandardMounts() {
  return json::array({
      Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
  });
}

json Namespaces(const ContainerConfig& config) {
  json namespaces = json::array();
  for (const char* type : {"pid", "ipc", "uts", "mount"}) namespaces.push_back({{"type", type}});
  json network = {{"type", "network"}};
  if (!config.netns_path.empty()) network["path"] = config.netns_path;
  namespaces.push_back(network);
  return namespaces;
}

json Resources(const ContainerConfig& config) {
  // Deny every device but the standard ones (runc adds /dev/null, /dev/zero, ... itself).
  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (config.cpu_limit_millis > 0) {
    resources["cpu"] = {{"quota", config.cpu_limit_millis * kCpuPeriodMicros / 1000},
                        {"period", kCpuPeriodMicros}};
  }
  if (config.memory_limit_bytes > 0) {
    resources["memory"] = {{"limit", config.memory_limit_bytes}};
  }
  return resources;
}

}  // namespace

absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::DataLossError("image config is not a JSON object");
  ImageConfig image;
  if (auto it = doc.find("config"); it != doc.end() && it->is_object()) {
    image.entrypoint = StringList(*it, "Entrypoint");
    image.cmd = StringList(*it, "Cmd");
    image.env = StringList(*it, "Env");
    image.working_dir = StringField(*it, "WorkingDir");
    image.user = StringField(*it, "User");
  }
  if (auto it = doc.find("rootfs"); it != doc.end() && it->is_object()) {
    image.diff_ids = StringList(*it, "diff_ids");
  }
  if (image.diff_ids.empty()) return absl::DataLossError("image config lists no layers");
  return image;
}

absl::StatusOr<std::vector<std::string>> ProcessArgs(const ContainerConfig& config,
                                                     const ImageConfig& image) {
  std::vector<std::string> args;
  if (!config.command.empty()) {
    args = config.command;
    args.insert(args.end(), config.args.begin(), config.args.end());
  } else {
    args = image.entrypoint;
    const std::vector<std::string>& rest = config.args.empty() ? image.cmd : config.args;
    args.insert(args.end(), rest.begin(), rest.end());
  }
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "no command: neither the container nor its image names one");
  }
  return args;
}

absl::StatusOr<std::string> BuildRuntimeSpec(const ContainerConfig& config,
                                             const ImageConfig& image,
                                             const std::string& cgroups_path) {
  absl::StatusOr<std::vector<std::string>> args = ProcessArgs(config, image);
  if (!args.ok()) return args.status();
  absl::StatusOr<json> user = ProcessUser(image.user);
  if (!user.ok()) return user.status();
  std::string cwd = !config.working_dir.empty() ? config.working_dir
                    : !image.working_dir.empty() ? image.working_dir
                                                 : "/";
  json process = {
      {"terminal", false},
      {"user", *user},
      {"args", *args},
      {"env", MergeEnv(config, image)},
      {"cwd", cwd},
      {"capabilities", Capabilities()},
      // No rlimits: the process inherits the shim's, as under Kubernetes' CRI (raising them needs
      // CAP_SYS_RESOURCE, which root does not always have).
      {"noNewPrivileges", true},
  };
  json spec = {
      {"ociVersion", "1.0.2"},
      {"process", process},
      // The bundle's rootfs directory, where containerd mounts the snapshot.
      {"root", {{"path", "rootfs"}}},
      {"mounts", StandardMounts()},
      {"linux",
       {
           {"cgroupsPath", cgroups_path},
           {"resources", Resources(config)},
           {"namespaces", Namespaces(config)},
           {"maskedPaths", {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
           {"readonlyPaths",
            {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
       }},
  };
  if (!config.hostname.empty()) spec["hostname"] = config.hostname;
  return spec.dump();
}

absl::StatusOr<std::string> BuildExecProcess(const std::string& spec_json,
                                             const std::vector<std::string>& args) {
  if (args.empty()) return absl::InvalidArgumentError("exec: empty command");
  json spec = json::parse(spec_json, nullptr, /*allow_exceptions=*/false);
  if (!spec.is_object() || !spec.contains("process") || !spec["process"].is_object()) {
    return absl::DataLossError("container spec has no process");
  }
  json process = spec["process"];
  process["args"] = args;
  process["terminal"] = false;
  return process.dump();
}

}  // namespace capstan::nodeagent
