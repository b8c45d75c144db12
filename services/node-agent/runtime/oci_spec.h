// The OCI runtime spec (config.json, as runc reads it) for a container: built here as JSON from
// the agent's ContainerConfig and the image's config, and handed to containerd in an Any.
//
// Pure functions, so the rules (Kubernetes' command/args, env merging, limits) are tested without
// containerd.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_OCI_SPEC_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_OCI_SPEC_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/node-agent/runtime/runtime.h"

namespace capstan::nodeagent {

// containerd's type URLs for a whole spec (container records) and for a process (exec).
inline constexpr char kSpecTypeUrl[] = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
inline constexpr char kProcessTypeUrl[] =
    "types.containerd.io/opencontainers/runtime-spec/1/Process";

// What a container needs from an image's config blob (the "config" object of the OCI image config).
struct ImageConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string working_dir;
  std::string user;
  std::vector<std::string> diff_ids;  // rootfs.diff_ids: the layers, uncompressed, bottom first
};

absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& json);

// Kubernetes' rules: command replaces the entrypoint, args replace cmd; with neither, the
// image's entrypoint + cmd. InvalidArgument when nothing is left to run.
absl::StatusOr<std::vector<std::string>> ProcessArgs(const ContainerConfig& config,
                                                     const ImageConfig& image);

// The spec's JSON. cgroups_path is where runc puts the container's cgroups ("/namespace/id").
absl::StatusOr<std::string> BuildRuntimeSpec(const ContainerConfig& config,
                                             const ImageConfig& image,
                                             const std::string& cgroups_path);

// The process of an exec: the container's own process (env, cwd, user, capabilities) from its
// spec JSON, running args instead.
absl::StatusOr<std::string> BuildExecProcess(const std::string& spec_json,
                                             const std::vector<std::string>& args);

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_OCI_SPEC_H_
