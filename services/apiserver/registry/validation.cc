#include "services/apiserver/registry/validation.h"

#include <arpa/inet.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/util/message_differencer.h"
#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "lib/api/quantity.h"

namespace capstan::apiserver::registry {
namespace {

using capstan::api::Duplicate;
using capstan::api::Forbidden;
using capstan::api::Invalid;
using capstan::api::Required;
using capstan::api::TooLong;
using capstan::core::v1::Container;
using capstan::core::v1::PodSpec;
using capstan::meta::v1::IntOrString;
using capstan::meta::v1::LabelSelector;
using capstan::meta::v1::ObjectMeta;
using google::protobuf::Map;
using google::protobuf::RepeatedPtrField;
using google::protobuf::util::MessageDifferencer;

// Kubernetes' limits and messages that appear in more than one place.
constexpr int64_t kMaxInt32 = 2147483647;
constexpr size_t kMaxConfigMapOrSecretBytes = 1024 * 1024;  // core.MaxSecretSize
constexpr int32_t kHighestUserDefinablePriority = 1000000000;
constexpr char kNonNegative[] = "must be greater than or equal to 0";
constexpr char kPositive[] = "must be greater than 0";
constexpr char kImmutable[] = "field is immutable";
constexpr char kPortRange[] = "must be between 1 and 65535, inclusive";

// --- field paths, as field.Path renders them ---

FieldPath Child(const FieldPath& path, absl::string_view name) { return path.Child(name); }
FieldPath Index(const FieldPath& path, int index) { return path.Index(index); }
FieldPath Key(const FieldPath& path, absl::string_view key) { return path.Key(key); }

// --- small shared checks ---

void AddInvalidPerMessage(const FieldPath& path, const std::string& value,
                          const std::vector<std::string>& msgs, FieldErrors* errs) {
  for (const std::string& msg : msgs) errs->push_back(Invalid(path, value, msg));
}

void ValidateDNS1123Label(const std::string& value, const FieldPath& path, FieldErrors* errs) {
  AddInvalidPerMessage(path, value, api::IsDNS1123Label(value), errs);
}

void ValidateDNS1123Subdomain(const std::string& value, const FieldPath& path,
                              FieldErrors* errs) {
  AddInvalidPerMessage(path, value, api::IsDNS1123Subdomain(value), errs);
}

// Kubernetes' ValidateLabelName: a qualified name, one error per problem.
void ValidateQualifiedName(const std::string& value, const FieldPath& path, FieldErrors* errs) {
  AddInvalidPerMessage(path, value, api::IsQualifiedName(value), errs);
}

void ValidateNonNegative(int64_t value, const FieldPath& path, FieldErrors* errs) {
  if (value < 0) errs->push_back(Invalid(path, std::to_string(value), kNonNegative));
}

// The allowed values of an enum-like field, as literals: no strings are built to check one.
using Allowed = absl::Span<const absl::string_view>;

bool OneOf(absl::string_view value, Allowed allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

FieldError NotSupported(const FieldPath& path, const std::string& value, Allowed allowed) {
  return api::NotSupported(path, value, std::vector<std::string>(allowed.begin(), allowed.end()));
}

// Required when empty, NotSupported when not one of `allowed`.
void ValidateEnum(const std::string& value, Allowed allowed, const FieldPath& path,
                  FieldErrors* errs) {
  if (value.empty()) {
    errs->push_back(Required(path, ""));
  } else if (!OneOf(value, allowed)) {
    errs->push_back(NotSupported(path, value, allowed));
  }
}

std::string IntOrStringText(const IntOrString& value) {
  return value.value_case() == IntOrString::kStrVal ? value.str_val()
                                                     : std::to_string(value.int_val());
}

// Go's %#v of a map[string]string, keys sorted: what Kubernetes shows for a bad label map.
std::string GoMapLiteral(const Map<std::string, std::string>& map) {
  std::map<std::string, std::string> sorted(map.begin(), map.end());
  std::string out = "map[string]string{";
  bool first = true;
  for (const auto& [key, value] : sorted) {
    if (!first) out += ", ";
    first = false;
    out += "\"" + key + "\":\"" + value + "\"";
  }
  return out + "}";
}

// A selector in Kubernetes' text form ("app=nginx,tier in (web,api)"), for error values.
std::string SelectorText(const LabelSelector& selector) {
  std::map<std::string, std::string> sorted(selector.match_labels().begin(),
                                            selector.match_labels().end());
  std::vector<std::string> parts;
  for (const auto& [key, value] : sorted) parts.push_back(key + "=" + value);
  for (const auto& expr : selector.match_expressions()) {
    const std::string& op = expr.operator_();
    if (op == "Exists") {
      parts.push_back(expr.key());
    } else if (op == "DoesNotExist") {
      parts.push_back("!" + expr.key());
    } else {
      std::string values;
      for (const std::string& value : expr.values()) values += (values.empty() ? "" : ",") + value;
      parts.push_back(expr.key() + (op == "NotIn" ? " notin (" : " in (") + values + ")");
    }
  }
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : ",") + part;
  return out;
}

// --- names Kubernetes checks with dedicated rules ---

// IsValidPortName: an IANA_SVC_NAME.
std::vector<std::string> IsValidPortName(const std::string& port) {
  std::vector<std::string> msgs;
  if (port.size() > 15) msgs.push_back("must be no more than 15 characters");
  bool charset_ok = !port.empty();
  bool has_letter = false;
  for (char c : port) {
    if (c >= 'a' && c <= 'z') {
      has_letter = true;
    } else if (!(c >= '0' && c <= '9') && c != '-') {
      charset_ok = false;
    }
  }
  if (!charset_ok) {
    msgs.push_back("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  }
  if (!has_letter) msgs.push_back("must contain at least one letter (a-z)");
  if (port.find("--") != std::string::npos) msgs.push_back("must not contain consecutive hyphens");
  if (!port.empty() && (port.front() == '-' || port.back() == '-')) {
    msgs.push_back("must not begin or end with a hyphen");
  }
  return msgs;
}

// hasChDirPrefix: keys become file names in volumes, so "." and ".." are refused.
void AddChDirPrefixErrors(const std::string& value, std::vector<std::string>* msgs) {
  if (value == ".") {
    msgs->push_back("must not be '.'");
  } else if (value == "..") {
    msgs->push_back("must not be '..'");
  } else if (value.rfind("..", 0) == 0) {
    msgs->push_back("must not start with '..'");
  }
}

bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// IsEnvVarName: [-._a-zA-Z][-._a-zA-Z0-9]*
std::vector<std::string> IsEnvVarName(const std::string& value) {
  std::vector<std::string> msgs;
  bool ok = !value.empty() && !IsDigit(value[0]);
  for (char c : value) {
    if (!IsAsciiAlpha(c) && !IsDigit(c) && c != '-' && c != '.' && c != '_') ok = false;
  }
  if (!ok) {
    msgs.push_back(
        "a valid environment variable name must consist of alphabetic characters, digits, '_', "
        "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  "
        "or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')");
  }
  AddChDirPrefixErrors(value, &msgs);
  return msgs;
}

// IsConfigMapKey: [-._a-zA-Z0-9]+, at most 253 characters.
std::vector<std::string> IsConfigMapKey(const std::string& value) {
  std::vector<std::string> msgs;
  if (value.size() > api::kDNS1123SubdomainMaxLength) {
    msgs.push_back("must be no more than 253 characters");
  }
  bool ok = !value.empty();
  for (char c : value) {
    if (!IsAsciiAlpha(c) && !IsDigit(c) && c != '-' && c != '.' && c != '_') ok = false;
  }
  if (!ok) {
    msgs.push_back(
        "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
        "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
        "'[-._a-zA-Z0-9]+')");
  }
  AddChDirPrefixErrors(value, &msgs);
  return msgs;
}

bool IsValidCIDR(const std::string& value) {
  size_t slash = value.find('/');
  if (slash == std::string::npos || slash + 1 >= value.size()) return false;
  std::string address = value.substr(0, slash);
  std::string prefix = value.substr(slash + 1);
  if (prefix.size() > 3 || !std::all_of(prefix.begin(), prefix.end(), IsDigit)) return false;
  int bits = std::stoi(prefix);
  unsigned char buffer[16];
  if (inet_pton(AF_INET, address.c_str(), buffer) == 1) return bits <= 32;
  if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) return bits <= 128;
  return false;
}

bool IsIPv4CIDR(const std::string& value) { return value.find(':') == std::string::npos; }

// ValidatePortNumOrName, for probe ports.
void ValidatePortNumOrName(const IntOrString& port, const FieldPath& path, FieldErrors* errs) {
  if (port.value_case() == IntOrString::kStrVal) {
    AddInvalidPerMessage(path, port.str_val(), IsValidPortName(port.str_val()), errs);
  } else if (port.int_val() < 1 || port.int_val() > 65535) {
    errs->push_back(Invalid(path, std::to_string(port.int_val()), kPortRange));
  }
}

// --- resources ---

bool IsStandardContainerResourceName(const std::string& name) {
  return name == "cpu" || name == "memory" || name == "ephemeral-storage" ||
         name.rfind("hugepages-", 0) == 0;
}

void ValidateContainerResourceName(const std::string& name, const FieldPath& path,
                                   FieldErrors* errs) {
  std::vector<std::string> msgs = api::IsQualifiedName(name);
  if (!msgs.empty()) {
    AddInvalidPerMessage(path, name, msgs, errs);
  } else if (name.find('/') == std::string::npos && !IsStandardContainerResourceName(name)) {
    errs->push_back(Invalid(path, name, "must be a standard resource for containers"));
  }
}

// One valid quantity of a resource list, in nano-units.
struct ParsedQuantity {
  absl::string_view name;  // The list's key.
  absl::int128 nano;
};

// Validates one resource list (requests, limits, capacity), in key order as Kubernetes reports
// it; returns the valid quantities, for comparisons the caller makes.
std::vector<ParsedQuantity> ValidateResourceList(
    const Map<std::string, capstan::meta::v1::Quantity>& list, const FieldPath& path,
    bool container_resources, FieldErrors* errs) {
  std::vector<const Map<std::string, capstan::meta::v1::Quantity>::value_type*> sorted;
  sorted.reserve(list.size());
  for (const auto& entry : list) sorted.push_back(&entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  std::vector<ParsedQuantity> parsed;
  parsed.reserve(sorted.size());
  for (const auto* entry : sorted) {
    const std::string& name = entry->first;
    const std::string& text = entry->second.string();
    const FieldPath entry_path = Key(path, name);
    if (container_resources) {
      ValidateContainerResourceName(name, entry_path, errs);
    } else {
      ValidateQualifiedName(name, entry_path, errs);
    }
    absl::StatusOr<absl::int128> value = api::ParseQuantityNano(text);
    if (!value.ok()) {
      errs->push_back(Invalid(entry_path, text, api::kQuantityFormatError));
      continue;
    }
    if (*value < 0) {
      errs->push_back(Invalid(entry_path, text, kNonNegative));
      continue;
    }
    parsed.push_back({name, *value});
  }
  return parsed;
}

// --- pod spec pieces ---

void ValidateProbe(const capstan::core::v1::Probe& probe, const FieldPath& path,
                   FieldErrors* errs) {
  absl::InlinedVector<absl::string_view, 4> handlers;
  if (probe.has_exec()) handlers.push_back("exec");
  if (probe.has_http_get()) handlers.push_back("httpGet");
  if (probe.has_tcp_socket()) handlers.push_back("tcpSocket");
  if (probe.has_grpc()) handlers.push_back("grpc");
  if (handlers.empty()) {
    errs->push_back(Required(path, "must specify a handler type"));
  } else if (handlers.size() > 1) {
    errs->push_back(Forbidden(Child(path, handlers[1]), "may not specify more than 1 handler type"));
  }
  if (probe.has_exec() && probe.exec().command().empty()) {
    errs->push_back(Required(Child(path, "exec.command"), ""));
  }
  if (probe.has_http_get()) {
    const auto& http_get = probe.http_get();
    const FieldPath http_path = Child(path, "httpGet");
    if (http_get.path().empty()) errs->push_back(Required(Child(http_path, "path"), ""));
    ValidatePortNumOrName(http_get.port(), Child(http_path, "port"), errs);
    if (!OneOf(http_get.scheme(), {"HTTP", "HTTPS"})) {
      errs->push_back(NotSupported(Child(http_path, "scheme"), http_get.scheme(), {"HTTP", "HTTPS"}));
    }
  }
  if (probe.has_tcp_socket()) {
    ValidatePortNumOrName(probe.tcp_socket().port(), Child(path, "tcpSocket.port"), errs);
  }
  if (probe.has_grpc() && (probe.grpc().port() < 1 || probe.grpc().port() > 65535)) {
    errs->push_back(Invalid(Child(path, "grpc.port"), std::to_string(probe.grpc().port()), kPortRange));
  }
  ValidateNonNegative(probe.initial_delay_seconds(), Child(path, "initialDelaySeconds"), errs);
  ValidateNonNegative(probe.timeout_seconds(), Child(path, "timeoutSeconds"), errs);
  ValidateNonNegative(probe.period_seconds(), Child(path, "periodSeconds"), errs);
  ValidateNonNegative(probe.success_threshold(), Child(path, "successThreshold"), errs);
  ValidateNonNegative(probe.failure_threshold(), Child(path, "failureThreshold"), errs);
  if (probe.has_termination_grace_period_seconds() && probe.termination_grace_period_seconds() <= 0) {
    errs->push_back(Invalid(Child(path, "terminationGracePeriodSeconds"),
                            std::to_string(probe.termination_grace_period_seconds()), kPositive));
  }
}

void ValidateEnv(const RepeatedPtrField<capstan::core::v1::EnvVar>& env, const FieldPath& path,
                 FieldErrors* errs) {
  for (int i = 0; i < env.size(); ++i) {
    const auto& var = env[i];
    const FieldPath var_path = Index(path, i);
    if (var.name().empty()) {
      errs->push_back(Required(Child(var_path, "name"), ""));
    } else {
      AddInvalidPerMessage(Child(var_path, "name"), var.name(), IsEnvVarName(var.name()), errs);
    }
    if (!var.has_value_from()) continue;
    const auto& source = var.value_from();
    const FieldPath source_path = Child(var_path, "valueFrom");
    int sources = source.has_field_ref() + source.has_resource_field_ref() +
                  source.has_config_map_key_ref() + source.has_secret_key_ref();
    if (!var.value().empty() && sources != 0) {
      errs->push_back(Invalid(source_path, "", "may not be specified when `value` is not empty"));
    }
    if (sources == 0) {
      errs->push_back(Invalid(source_path, "",
                              "must specify one of: `fieldRef`, `resourceFieldRef`, "
                              "`configMapKeyRef` or `secretKeyRef`"));
    } else if (sources > 1) {
      errs->push_back(Invalid(source_path, "", "may not have more than one field specified at a time"));
    }
    if (source.has_field_ref() && source.field_ref().field_path().empty()) {
      errs->push_back(Required(Child(source_path, "fieldRef.fieldPath"), ""));
    }
    if (source.has_resource_field_ref() && source.resource_field_ref().resource().empty()) {
      errs->push_back(Required(Child(source_path, "resourceFieldRef.resource"), ""));
    }
    auto validate_key_ref = [&](const std::string& name, const std::string& key,
                                const FieldPath& ref_path) {
      if (name.empty()) {
        errs->push_back(Required(Child(ref_path, "name"), ""));
      } else {
        ValidateDNS1123Subdomain(name, Child(ref_path, "name"), errs);
      }
      if (key.empty()) {
        errs->push_back(Required(Child(ref_path, "key"), ""));
      } else {
        AddInvalidPerMessage(Child(ref_path, "key"), key, IsConfigMapKey(key), errs);
      }
    };
    if (source.has_config_map_key_ref()) {
      validate_key_ref(source.config_map_key_ref().name(), source.config_map_key_ref().key(),
                       Child(source_path, "configMapKeyRef"));
    }
    if (source.has_secret_key_ref()) {
      validate_key_ref(source.secret_key_ref().name(), source.secret_key_ref().key(),
                       Child(source_path, "secretKeyRef"));
    }
  }
}

void ValidateContainerPorts(const Container& container, bool host_network,
                            const FieldPath& path, FieldErrors* errs) {
  std::set<std::string> port_names;
  for (int i = 0; i < container.ports_size(); ++i) {
    const auto& port = container.ports(i);
    const FieldPath port_path = Index(path, i);
    if (!port.name().empty()) {
      AddInvalidPerMessage(Child(port_path, "name"), port.name(), IsValidPortName(port.name()), errs);
      if (!port_names.insert(port.name()).second) {
        errs->push_back(Duplicate(Child(port_path, "name"), port.name()));
      }
    }
    if (port.container_port() == 0) {
      errs->push_back(Required(Child(port_path, "containerPort"), ""));
    } else if (port.container_port() < 1 || port.container_port() > 65535) {
      errs->push_back(Invalid(Child(port_path, "containerPort"),
                              std::to_string(port.container_port()), kPortRange));
    }
    if (port.host_port() != 0 && (port.host_port() < 1 || port.host_port() > 65535)) {
      errs->push_back(Invalid(Child(port_path, "hostPort"), std::to_string(port.host_port()), kPortRange));
    }
    if (host_network && port.host_port() != port.container_port()) {
      errs->push_back(Invalid(Child(port_path, "hostPort"), std::to_string(port.host_port()),
                              "must match `containerPort` when `hostNetwork` is true"));
    }
    ValidateEnum(port.protocol(), {"SCTP", "TCP", "UDP"}, Child(port_path, "protocol"), errs);
  }
}

void ValidateVolumeMounts(const Container& container, const std::set<std::string>& volume_names,
                          const FieldPath& path, FieldErrors* errs) {
  std::set<std::string> mount_paths;
  for (int i = 0; i < container.volume_mounts_size(); ++i) {
    const auto& mount = container.volume_mounts(i);
    const FieldPath mount_path = Index(path, i);
    if (mount.name().empty()) {
      errs->push_back(Required(Child(mount_path, "name"), ""));
    } else if (!volume_names.count(mount.name())) {
      // Kubernetes reports this as NotFound; the six cause types here have no NotFound.
      errs->push_back(Invalid(Child(mount_path, "name"), mount.name(),
                              "must match the name of a volume in spec.volumes"));
    }
    if (mount.mount_path().empty()) {
      errs->push_back(Required(Child(mount_path, "mountPath"), ""));
    } else if (!mount_paths.insert(mount.mount_path()).second) {
      errs->push_back(Invalid(Child(mount_path, "mountPath"), mount.mount_path(), "must be unique"));
    }
  }
}

// Checks one container; `names` accumulates container names across the pod for uniqueness.
void ValidateContainer(const Container& container, bool is_init, bool host_network,
                       const std::set<std::string>& volume_names, std::set<std::string>* names,
                       const FieldPath& path, FieldErrors* errs) {
  const FieldPath name_path = Child(path, "name");
  if (container.name().empty()) {
    errs->push_back(Required(name_path, ""));
  } else {
    ValidateDNS1123Label(container.name(), name_path, errs);
    if (!names->insert(container.name()).second) {
      errs->push_back(Duplicate(name_path, container.name()));
    }
  }
  const std::string& image = container.image();
  if (image.empty()) {
    errs->push_back(Required(Child(path, "image"), ""));
  } else if (image.find_first_not_of(" \t\n\r") != 0 ||
             image.find_last_not_of(" \t\n\r") != image.size() - 1) {
    errs->push_back(Invalid(Child(path, "image"), image,
                            "must not have leading or trailing whitespace"));
  }
  ValidateEnum(container.image_pull_policy(), {"Always", "IfNotPresent", "Never"},
               Child(path, "imagePullPolicy"), errs);
  ValidateEnum(container.termination_message_policy(), {"File", "FallbackToLogsOnError"},
               Child(path, "terminationMessagePolicy"), errs);
  ValidateContainerPorts(container, host_network, Child(path, "ports"), errs);
  ValidateEnv(container.env(), Child(path, "env"), errs);
  ValidateVolumeMounts(container, volume_names, Child(path, "volumeMounts"), errs);
  if (container.has_resources()) {
    ValidateResourceRequirements(container.resources(), Child(path, "resources"), errs);
  }
  // Init containers run to completion, so probes mean nothing for them.
  const std::pair<bool, const char*> probes[] = {
      {container.has_liveness_probe(), "livenessProbe"},
      {container.has_readiness_probe(), "readinessProbe"},
      {container.has_startup_probe(), "startupProbe"}};
  if (is_init) {
    for (const auto& [present, field] : probes) {
      if (present) {
        errs->push_back(Forbidden(Child(path, field), "may not be set for init containers"));
      }
    }
    return;
  }
  if (container.has_liveness_probe()) {
    ValidateProbe(container.liveness_probe(), Child(path, "livenessProbe"), errs);
    if (container.liveness_probe().success_threshold() != 1) {
      errs->push_back(Invalid(Child(path, "livenessProbe.successThreshold"),
                              std::to_string(container.liveness_probe().success_threshold()),
                              "must be 1"));
    }
  }
  if (container.has_readiness_probe()) {
    ValidateProbe(container.readiness_probe(), Child(path, "readinessProbe"), errs);
    if (container.readiness_probe().has_termination_grace_period_seconds()) {
      errs->push_back(Invalid(
          Child(path, "readinessProbe.terminationGracePeriodSeconds"),
          std::to_string(container.readiness_probe().termination_grace_period_seconds()),
          "must not be set for readinessProbes"));
    }
  }
  if (container.has_startup_probe()) {
    ValidateProbe(container.startup_probe(), Child(path, "startupProbe"), errs);
    if (container.startup_probe().success_threshold() != 1) {
      errs->push_back(Invalid(Child(path, "startupProbe.successThreshold"),
                              std::to_string(container.startup_probe().success_threshold()),
                              "must be 1"));
    }
  }
}

std::set<std::string> ValidateVolumes(const RepeatedPtrField<capstan::core::v1::Volume>& volumes,
                                      const FieldPath& path, FieldErrors* errs) {
  std::set<std::string> names;
  for (int i = 0; i < volumes.size(); ++i) {
    const auto& volume = volumes[i];
    const FieldPath volume_path = Index(path, i);
    if (volume.name().empty()) {
      errs->push_back(Required(Child(volume_path, "name"), ""));
    } else {
      ValidateDNS1123Label(volume.name(), Child(volume_path, "name"), errs);
      if (!names.insert(volume.name()).second) {
        errs->push_back(Duplicate(Child(volume_path, "name"), volume.name()));
      }
    }
    std::vector<std::string> sources;
    if (volume.has_empty_dir()) sources.push_back("emptyDir");
    if (volume.has_config_map()) sources.push_back("configMap");
    if (volume.has_secret()) sources.push_back("secret");
    if (volume.has_host_path()) sources.push_back("hostPath");
    if (volume.has_persistent_volume_claim()) sources.push_back("persistentVolumeClaim");
    if (sources.empty()) {
      errs->push_back(Required(volume_path, "must specify a volume type"));
    } else if (sources.size() > 1) {
      errs->push_back(Forbidden(Child(volume_path, sources[1]), "may not specify more than 1 volume type"));
    }
    if (volume.has_empty_dir()) {
      const auto& empty_dir = volume.empty_dir();
      ValidateEnum(empty_dir.medium().empty() ? "Default" : empty_dir.medium(),
                   {"Default", "Memory", "HugePages"}, Child(volume_path, "emptyDir.medium"), errs);
      if (empty_dir.has_size_limit()) {
        absl::StatusOr<absl::int128> size = api::ParseQuantityNano(empty_dir.size_limit().string());
        if (!size.ok()) {
          errs->push_back(Invalid(Child(volume_path, "emptyDir.sizeLimit"),
                                  empty_dir.size_limit().string(), api::kQuantityFormatError));
        } else if (*size < 0) {
          errs->push_back(Invalid(Child(volume_path, "emptyDir.sizeLimit"),
                                  empty_dir.size_limit().string(), kNonNegative));
        }
      }
    }
    if (volume.has_config_map()) {
      if (volume.config_map().name().empty()) {
        errs->push_back(Required(Child(volume_path, "configMap.name"), ""));
      } else {
        ValidateDNS1123Subdomain(volume.config_map().name(), Child(volume_path, "configMap.name"), errs);
      }
    }
    if (volume.has_secret()) {
      if (volume.secret().secret_name().empty()) {
        errs->push_back(Required(Child(volume_path, "secret.secretName"), ""));
      } else {
        ValidateDNS1123Subdomain(volume.secret().secret_name(),
                                 Child(volume_path, "secret.secretName"), errs);
      }
    }
    if (volume.has_host_path()) {
      const auto& host_path = volume.host_path();
      if (host_path.path().empty()) errs->push_back(Required(Child(volume_path, "hostPath.path"), ""));
      constexpr absl::string_view types[] = {"",     "DirectoryOrCreate", "Directory",
                                              "FileOrCreate", "File",       "Socket",
                                              "CharDevice",   "BlockDevice"};
      if (host_path.has_type() && !OneOf(host_path.type(), types)) {
        errs->push_back(NotSupported(Child(volume_path, "hostPath.type"), host_path.type(), types));
      }
    }
    if (volume.has_persistent_volume_claim() && volume.persistent_volume_claim().claim_name().empty()) {
      errs->push_back(Required(Child(volume_path, "persistentVolumeClaim.claimName"), ""));
    }
  }
  return names;
}

void ValidateTolerations(const RepeatedPtrField<capstan::core::v1::Toleration>& tolerations,
                         const FieldPath& path, FieldErrors* errs) {
  constexpr absl::string_view effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute"};
  for (int i = 0; i < tolerations.size(); ++i) {
    const auto& toleration = tolerations[i];
    const FieldPath toleration_path = Index(path, i);
    const FieldPath operator_path = Child(toleration_path, "operator");
    if (!toleration.key().empty()) {
      ValidateQualifiedName(toleration.key(), Child(toleration_path, "key"), errs);
    }
    if (toleration.key().empty() && toleration.operator_() != "Exists") {
      errs->push_back(Invalid(operator_path, toleration.operator_(),
                              "operator must be Exists when `key` is empty, which means \"match "
                              "all values and all keys\""));
    }
    if (toleration.has_toleration_seconds() && toleration.effect() != "NoExecute") {
      errs->push_back(Invalid(Child(toleration_path, "effect"), toleration.effect(),
                              "effect must be 'NoExecute' when `tolerationSeconds` is set"));
    }
    const std::string& op = toleration.operator_();
    if (op.empty() || op == "Equal") {
      // Kubernetes reports a bad value under "operator"; kept for parity.
      std::vector<std::string> msgs = api::IsValidLabelValue(toleration.value());
      if (!msgs.empty()) {
        std::string joined;
        for (const std::string& msg : msgs) joined += (joined.empty() ? "" : ";") + msg;
        errs->push_back(Invalid(operator_path, toleration.value(), joined));
      }
    } else if (op == "Exists") {
      if (!toleration.value().empty()) {
        errs->push_back(Invalid(operator_path, toleration.value(),
                                "value must be empty when `operator` is 'Exists'"));
      }
    } else {
      errs->push_back(NotSupported(operator_path, op, {"Equal", "Exists"}));
    }
    if (!toleration.effect().empty() && !OneOf(toleration.effect(), effects)) {
      errs->push_back(NotSupported(Child(toleration_path, "effect"), toleration.effect(), effects));
    }
  }
}

void ValidateNodeSelectorRequirement(const capstan::core::v1::NodeSelectorRequirement& requirement,
                                     bool is_field, const FieldPath& path, FieldErrors* errs) {
  const std::string& op = requirement.operator_();
  const FieldPath values_path = Child(path, "values");
  if (op == "In" || op == "NotIn") {
    if (requirement.values().empty()) {
      errs->push_back(Required(values_path, "must be specified when `operator` is 'In' or 'NotIn'"));
    }
  } else if (op == "Exists" || op == "DoesNotExist") {
    if (!requirement.values().empty()) {
      errs->push_back(Forbidden(values_path,
                                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
    }
  } else if (op == "Gt" || op == "Lt") {
    if (requirement.values_size() != 1) {
      errs->push_back(Required(values_path, "must be specified single value when `operator` is 'Lt' or 'Gt'"));
    }
  } else {
    errs->push_back(Invalid(Child(path, "operator"), op, "not a valid selector operator"));
  }
  if (is_field) {
    // Only metadata.name can be matched as a field, and only by exact value.
    if (requirement.key() != "metadata.name") {
      errs->push_back(NotSupported(Child(path, "key"), requirement.key(), {"metadata.name"}));
    }
  } else {
    ValidateQualifiedName(requirement.key(), Child(path, "key"), errs);
  }
}

void ValidateNodeSelectorTerm(const capstan::core::v1::NodeSelectorTerm& term,
                              const FieldPath& path, FieldErrors* errs) {
  for (int i = 0; i < term.match_expressions_size(); ++i) {
    ValidateNodeSelectorRequirement(term.match_expressions(i), false,
                                    Index(Child(path, "matchExpressions"), i), errs);
  }
  for (int i = 0; i < term.match_fields_size(); ++i) {
    ValidateNodeSelectorRequirement(term.match_fields(i), true,
                                    Index(Child(path, "matchFields"), i), errs);
  }
}

void ValidateWeight(int32_t weight, const FieldPath& path, FieldErrors* errs) {
  if (weight < 1 || weight > 100) {
    errs->push_back(Invalid(path, std::to_string(weight), "must be in the range 1-100"));
  }
}

void ValidatePodAffinityTerm(const capstan::core::v1::PodAffinityTerm& term,
                             const FieldPath& path, FieldErrors* errs) {
  if (term.has_label_selector()) {
    api::ValidateLabelSelector(term.label_selector(), Child(path, "labelSelector"), errs);
  }
  if (term.has_namespace_selector()) {
    api::ValidateLabelSelector(term.namespace_selector(), Child(path, "namespaceSelector"), errs);
  }
  for (const std::string& ns : term.namespaces()) {
    ValidateDNS1123Label(ns, Child(path, "namespace"), errs);
  }
  if (term.topology_key().empty()) {
    errs->push_back(Required(Child(path, "topologyKey"), "can not be empty"));
  } else {
    ValidateQualifiedName(term.topology_key(), Child(path, "topologyKey"), errs);
  }
}

template <typename Affinity>
void ValidatePodAffinityRules(const Affinity& affinity, const FieldPath& path, FieldErrors* errs) {
  const FieldPath required_path = Child(path, "requiredDuringSchedulingIgnoredDuringExecution");
  for (int i = 0; i < affinity.required_during_scheduling_ignored_during_execution_size(); ++i) {
    ValidatePodAffinityTerm(affinity.required_during_scheduling_ignored_during_execution(i),
                            Index(required_path, i), errs);
  }
  const FieldPath preferred_path = Child(path, "preferredDuringSchedulingIgnoredDuringExecution");
  for (int i = 0; i < affinity.preferred_during_scheduling_ignored_during_execution_size(); ++i) {
    const auto& weighted = affinity.preferred_during_scheduling_ignored_during_execution(i);
    ValidateWeight(weighted.weight(), Child(Index(preferred_path, i), "weight"), errs);
    ValidatePodAffinityTerm(weighted.pod_affinity_term(),
                            Child(Index(preferred_path, i), "podAffinityTerm"), errs);
  }
}

void ValidateAffinity(const capstan::core::v1::Affinity& affinity, const FieldPath& path,
                      FieldErrors* errs) {
  if (affinity.has_node_affinity()) {
    const auto& node_affinity = affinity.node_affinity();
    const FieldPath node_path = Child(path, "nodeAffinity");
    if (node_affinity.has_required_during_scheduling_ignored_during_execution()) {
      const auto& selector = node_affinity.required_during_scheduling_ignored_during_execution();
      const FieldPath terms_path =
          Child(node_path, "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
      if (selector.node_selector_terms().empty()) {
        errs->push_back(Required(terms_path, "must have at least one node selector term"));
      }
      for (int i = 0; i < selector.node_selector_terms_size(); ++i) {
        ValidateNodeSelectorTerm(selector.node_selector_terms(i), Index(terms_path, i), errs);
      }
    }
    const FieldPath preferred_path =
        Child(node_path, "preferredDuringSchedulingIgnoredDuringExecution");
    for (int i = 0; i < node_affinity.preferred_during_scheduling_ignored_during_execution_size(); ++i) {
      const auto& term = node_affinity.preferred_during_scheduling_ignored_during_execution(i);
      ValidateWeight(term.weight(), Child(Index(preferred_path, i), "weight"), errs);
      ValidateNodeSelectorTerm(term.preference(), Child(Index(preferred_path, i), "preference"), errs);
    }
  }
  if (affinity.has_pod_affinity()) {
    ValidatePodAffinityRules(affinity.pod_affinity(), Child(path, "podAffinity"), errs);
  }
  if (affinity.has_pod_anti_affinity()) {
    ValidatePodAffinityRules(affinity.pod_anti_affinity(), Child(path, "podAntiAffinity"), errs);
  }
}

void ValidateTopologySpreadConstraints(
    const RepeatedPtrField<capstan::core::v1::TopologySpreadConstraint>& constraints,
    const FieldPath& path, FieldErrors* errs) {
  constexpr absl::string_view actions[] = {"DoNotSchedule", "ScheduleAnyway"};
  std::set<std::pair<std::string, std::string>> seen;
  for (int i = 0; i < constraints.size(); ++i) {
    const auto& constraint = constraints[i];
    const FieldPath constraint_path = Index(path, i);
    if (constraint.max_skew() <= 0) {
      errs->push_back(Invalid(Child(constraint_path, "maxSkew"), std::to_string(constraint.max_skew()),
                              "must be greater than zero"));
    }
    if (constraint.topology_key().empty()) {
      errs->push_back(Required(Child(constraint_path, "topologyKey"), "can not be empty"));
    } else {
      ValidateQualifiedName(constraint.topology_key(), Child(constraint_path, "topologyKey"), errs);
    }
    const FieldPath action_path = Child(constraint_path, "whenUnsatisfiable");
    ValidateEnum(constraint.when_unsatisfiable(), actions, action_path, errs);
    if (constraint.has_min_domains()) {
      if (constraint.min_domains() <= 0) {
        errs->push_back(Invalid(Child(constraint_path, "minDomains"),
                                std::to_string(constraint.min_domains()), "must be greater than 0"));
      } else if (constraint.when_unsatisfiable() != "DoNotSchedule") {
        errs->push_back(Invalid(Child(constraint_path, "minDomains"),
                                std::to_string(constraint.min_domains()),
                                "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not " +
                                    constraint.when_unsatisfiable()));
      }
    }
    if (!seen.insert({constraint.topology_key(), constraint.when_unsatisfiable()}).second) {
      errs->push_back(Duplicate(Child(constraint_path, "{topologyKey, whenUnsatisfiable}"),
                                constraint.topology_key() + ", " + constraint.when_unsatisfiable()));
    }
    if (constraint.has_label_selector()) {
      api::ValidateLabelSelector(constraint.label_selector(), Child(constraint_path, "labelSelector"), errs);
    }
  }
}

// --- workloads ---

void ValidatePositiveIntOrPercent(const IntOrString& value, const FieldPath& path,
                                  FieldErrors* errs) {
  if (value.value_case() == IntOrString::kStrVal) {
    const std::string& text = value.str_val();
    bool is_percent = text.size() >= 2 && text.back() == '%' &&
                      std::all_of(text.begin(), text.end() - 1, IsDigit);
    if (!is_percent) {
      errs->push_back(Invalid(path, text, "must be an integer or percentage (e.g '5%')"));
    }
  } else {
    ValidateNonNegative(value.int_val(), path, errs);
  }
}

// getIntOrPercentValue: the number, whether written as 5 or "5%"; anything unreadable is 0.
int64_t IntOrPercentValue(const IntOrString& value) {
  if (value.value_case() != IntOrString::kStrVal) return value.int_val();
  std::string digits = value.str_val();
  if (!digits.empty() && digits.back() == '%') digits.pop_back();
  if (digits.empty() || digits.size() > 9 || !std::all_of(digits.begin(), digits.end(), IsDigit)) {
    return 0;
  }
  return std::stoll(digits);
}

void ValidateRollingUpdate(const capstan::apps::v1::RollingUpdateDeployment& rolling_update,
                           const FieldPath& path, FieldErrors* errs) {
  const FieldPath unavailable_path = Child(path, "maxUnavailable");
  const FieldPath surge_path = Child(path, "maxSurge");
  ValidatePositiveIntOrPercent(rolling_update.max_unavailable(), unavailable_path, errs);
  ValidatePositiveIntOrPercent(rolling_update.max_surge(), surge_path, errs);
  if (IntOrPercentValue(rolling_update.max_unavailable()) == 0 &&
      IntOrPercentValue(rolling_update.max_surge()) == 0) {
    // Nothing could ever be replaced.
    errs->push_back(Invalid(unavailable_path, IntOrStringText(rolling_update.max_unavailable()),
                            "may not be 0 when `maxSurge` is 0"));
  }
  const auto& max_unavailable = rolling_update.max_unavailable();
  if (max_unavailable.value_case() == IntOrString::kStrVal &&
      IntOrPercentValue(max_unavailable) > 100) {
    errs->push_back(Invalid(unavailable_path, max_unavailable.str_val(),
                            "must not be greater than 100%"));
  }
}

// Selector and template of a Deployment or ReplicaSet (ValidateReplicaSetSpec and
// ValidateDeploymentSpec share these rules).
void ValidateWorkloadSelectorAndTemplate(bool has_selector, const LabelSelector& selector,
                                         bool has_template,
                                         const capstan::core::v1::PodTemplateSpec& template_spec,
                                         const FieldPath& path, FieldErrors* errs) {
  const FieldPath selector_path = Child(path, "selector");
  bool selector_usable = false;
  if (!has_selector) {
    errs->push_back(Required(selector_path, ""));
  } else {
    size_t before = errs->size();
    api::ValidateLabelSelector(selector, selector_path, errs);
    bool selector_valid = errs->size() == before;
    if (selector.match_labels().empty() && selector.match_expressions().empty()) {
      // Kubernetes uses this text for ReplicaSets too.
      errs->push_back(Invalid(selector_path, SelectorText(selector),
                              "empty selector is invalid for deployment"));
    } else {
      selector_usable = selector_valid;
    }
  }
  const FieldPath template_path = Child(path, "template");
  if (!has_template) {
    errs->push_back(Required(template_path, ""));
    return;
  }
  ValidatePodTemplateSpec(template_spec, selector_usable ? &selector : nullptr, template_path, errs);
  const auto& pod_spec = template_spec.spec();
  // A workload's pods are replaced, never left finished: only Always makes sense.
  if (pod_spec.restart_policy() != "Always") {
    errs->push_back(NotSupported(Child(template_path, "spec.restartPolicy"), pod_spec.restart_policy(),
                                 {"Always"}));
  }
  if (pod_spec.has_active_deadline_seconds()) {
    errs->push_back(Forbidden(Child(template_path, "spec.activeDeadlineSeconds"),
                              "activeDeadlineSeconds in ReplicaSet is not Supported"));
  }
}

void ValidateDeploymentSpec(const capstan::apps::v1::DeploymentSpec& spec, const FieldPath& path,
                            FieldErrors* errs) {
  if (spec.has_replicas()) ValidateNonNegative(spec.replicas(), Child(path, "replicas"), errs);
  ValidateWorkloadSelectorAndTemplate(spec.has_selector(), spec.selector(), spec.has_template_(),
                                      spec.template_(), path, errs);
  const auto& strategy = spec.strategy();
  const FieldPath strategy_path = Child(path, "strategy");
  if (strategy.type() == "Recreate") {
    if (strategy.has_rolling_update()) {
      errs->push_back(Forbidden(Child(strategy_path, "rollingUpdate"),
                                "may not be specified when strategy `type` is 'Recreate'"));
    }
  } else if (strategy.type() == "RollingUpdate") {
    if (!strategy.has_rolling_update()) {
      errs->push_back(Required(Child(strategy_path, "rollingUpdate"),
                               "this should be defaulted and never be nil"));
    } else {
      ValidateRollingUpdate(strategy.rolling_update(), Child(strategy_path, "rollingUpdate"), errs);
    }
  } else {
    errs->push_back(NotSupported(Child(strategy_path, "type"), strategy.type(),
                                 {"Recreate", "RollingUpdate"}));
  }
  ValidateNonNegative(spec.min_ready_seconds(), Child(path, "minReadySeconds"), errs);
  if (spec.has_revision_history_limit()) {
    ValidateNonNegative(spec.revision_history_limit(), Child(path, "revisionHistoryLimit"), errs);
  }
  if (spec.has_progress_deadline_seconds()) {
    const FieldPath deadline_path = Child(path, "progressDeadlineSeconds");
    ValidateNonNegative(spec.progress_deadline_seconds(), deadline_path, errs);
    if (spec.progress_deadline_seconds() <= spec.min_ready_seconds()) {
      errs->push_back(Invalid(deadline_path, std::to_string(spec.progress_deadline_seconds()),
                              "must be greater than minReadySeconds"));
    }
  }
}

void ValidateReplicaSetSpec(const capstan::apps::v1::ReplicaSetSpec& spec, const FieldPath& path,
                            FieldErrors* errs) {
  if (spec.has_replicas()) ValidateNonNegative(spec.replicas(), Child(path, "replicas"), errs);
  ValidateNonNegative(spec.min_ready_seconds(), Child(path, "minReadySeconds"), errs);
  ValidateWorkloadSelectorAndTemplate(spec.has_selector(), spec.selector(), spec.has_template_(),
                                      spec.template_(), path, errs);
}

// --- other kinds ---

void ValidateTaints(const RepeatedPtrField<capstan::core::v1::Taint>& taints,
                    const FieldPath& path, FieldErrors* errs) {
  constexpr absl::string_view effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute"};
  std::set<std::pair<std::string, std::string>> seen;  // (effect, key)
  for (int i = 0; i < taints.size(); ++i) {
    const auto& taint = taints[i];
    const FieldPath taint_path = Index(path, i);
    ValidateQualifiedName(taint.key(), Child(taint_path, "key"), errs);
    std::vector<std::string> msgs = api::IsValidLabelValue(taint.value());
    if (!msgs.empty()) {
      std::string joined;
      for (const std::string& msg : msgs) joined += (joined.empty() ? "" : ";") + msg;
      errs->push_back(Invalid(Child(taint_path, "value"), taint.value(), joined));
    }
    ValidateEnum(taint.effect(), effects, Child(taint_path, "effect"), errs);
    if (!seen.insert({taint.effect(), taint.key()}).second) {
      FieldError duplicate = Duplicate(taint_path, taint.key() + ":" + taint.effect());
      duplicate.detail = "taints must be unique by key and effect pair";
      errs->push_back(std::move(duplicate));
    }
  }
}

void ValidateNode(const capstan::core::v1::Node& node, FieldErrors* errs) {
  ValidateTaints(node.spec().taints(), "spec.taints", errs);
  const auto& cidrs = node.spec().pod_cidrs();
  for (int i = 0; i < cidrs.size(); ++i) {
    if (!IsValidCIDR(cidrs[i])) {
      errs->push_back(Invalid(Index("spec.podCIDRs", i), cidrs[i], "must be a valid CIDR"));
    }
  }
  // More than one CIDR must be a dual-stack pair: one IPv4 and one IPv6.
  if (cidrs.size() > 2 || (cidrs.size() == 2 && IsIPv4CIDR(cidrs[0]) == IsIPv4CIDR(cidrs[1]))) {
    std::string joined;
    for (const std::string& cidr : cidrs) joined += (joined.empty() ? "" : " ") + cidr;
    errs->push_back(Invalid("spec.podCIDRs", "[" + joined + "]",
                            "may specify no more than one CIDR for each IP family"));
  }
  if (!node.spec().pod_cidr().empty() && !IsValidCIDR(node.spec().pod_cidr())) {
    errs->push_back(Invalid("spec.podCIDR", node.spec().pod_cidr(), "must be a valid CIDR"));
  }
  ValidateResourceList(node.status().capacity(), "status.capacity", false, errs);
  ValidateResourceList(node.status().allocatable(), "status.allocatable", false, errs);
}

void ValidateConfigMap(const capstan::core::v1::ConfigMap& config_map, FieldErrors* errs) {
  size_t total_size = 0;
  std::map<std::string, std::string> data(config_map.data().begin(), config_map.data().end());
  std::map<std::string, std::string> binary(config_map.binary_data().begin(),
                                            config_map.binary_data().end());
  for (const auto& [key, value] : data) {
    AddInvalidPerMessage(Key("data", key), key, IsConfigMapKey(key), errs);
    if (binary.count(key)) {
      errs->push_back(Invalid(Key("data", key), key, "duplicate of key present in binaryData"));
    }
    total_size += value.size();
  }
  for (const auto& [key, value] : binary) {
    AddInvalidPerMessage(Key("binaryData", key), key, IsConfigMapKey(key), errs);
    if (data.count(key)) {
      errs->push_back(Invalid(Key("binaryData", key), key, "duplicate of key present in data"));
    }
    total_size += value.size();
  }
  if (total_size > kMaxConfigMapOrSecretBytes) {
    errs->push_back(TooLong("", kMaxConfigMapOrSecretBytes));  // "" names the whole object
  }
}

void ValidateSecret(const capstan::core::v1::Secret& secret, FieldErrors* errs) {
  size_t total_size = 0;
  std::map<std::string, std::string> data(secret.data().begin(), secret.data().end());
  for (const auto& [key, value] : data) {
    AddInvalidPerMessage(Key("data", key), key, IsConfigMapKey(key), errs);
    total_size += value.size();
  }
  // stringData is merged into data by defaulting; checked here for callers that skip it.
  std::map<std::string, std::string> string_data(secret.string_data().begin(),
                                                 secret.string_data().end());
  for (const auto& [key, value] : string_data) {
    AddInvalidPerMessage(Key("stringData", key), key, IsConfigMapKey(key), errs);
    if (!data.count(key)) total_size += value.size();
  }
  if (total_size > kMaxConfigMapOrSecretBytes) {
    errs->push_back(TooLong("data", kMaxConfigMapOrSecretBytes));
  }
  auto has_key = [&](const std::string& key) {
    return data.count(key) > 0 || string_data.count(key) > 0;
  };
  const std::string& type = secret.type();
  if (type == "kubernetes.io/service-account-token") {
    auto it = secret.metadata().annotations().find("kubernetes.io/service-account.name");
    if (it == secret.metadata().annotations().end() || it->second.empty()) {
      errs->push_back(
          Required(Key("metadata.annotations", "kubernetes.io/service-account.name"), ""));
    }
  } else if (type == "kubernetes.io/dockercfg") {
    if (!has_key(".dockercfg")) errs->push_back(Required(Key("data", ".dockercfg"), ""));
  } else if (type == "kubernetes.io/dockerconfigjson") {
    if (!has_key(".dockerconfigjson")) errs->push_back(Required(Key("data", ".dockerconfigjson"), ""));
  } else if (type == "kubernetes.io/basic-auth") {
    if (!has_key("username") && !has_key("password")) {
      errs->push_back(Required(Key("data", "username"), ""));
      errs->push_back(Required(Key("data", "password"), ""));
    }
  } else if (type == "kubernetes.io/ssh-auth") {
    if (!has_key("ssh-privatekey")) errs->push_back(Required(Key("data", "ssh-privatekey"), ""));
  } else if (type == "kubernetes.io/tls") {
    if (!has_key("tls.crt")) errs->push_back(Required(Key("data", "tls.crt"), ""));
    if (!has_key("tls.key")) errs->push_back(Required(Key("data", "tls.key"), ""));
  }
}

void ValidateEvent(const capstan::core::v1::Event& event, FieldErrors* errs) {
  if (!event.has_involved_object()) {
    errs->push_back(Required("involvedObject", ""));
  } else {
    const auto& involved = event.involved_object();
    if (involved.kind().empty()) errs->push_back(Required("involvedObject.kind", ""));
    if (involved.name().empty()) errs->push_back(Required("involvedObject.name", ""));
    // An event lives with its object; events about cluster-scoped objects go to "default".
    const std::string& event_ns = event.metadata().namespace_();
    if (involved.namespace_().empty()) {
      if (!event_ns.empty() && event_ns != "default") {
        errs->push_back(Invalid("involvedObject.namespace", involved.namespace_(),
                                "does not match event.namespace"));
      }
    } else if (involved.namespace_() != event_ns) {
      errs->push_back(Invalid("involvedObject.namespace", involved.namespace_(),
                              "does not match event.namespace"));
    }
  }
  if (!event.type().empty() && !OneOf(event.type(), {"Normal", "Warning"})) {
    errs->push_back(NotSupported("type", event.type(), {"Normal", "Warning"}));
  }
  ValidateNonNegative(event.count(), "count", errs);
}

void ValidateLease(const capstan::coordination::v1::Lease& lease, FieldErrors* errs) {
  const auto& spec = lease.spec();
  if (spec.has_lease_duration_seconds() && spec.lease_duration_seconds() <= 0) {
    errs->push_back(Invalid("spec.leaseDurationSeconds",
                            std::to_string(spec.lease_duration_seconds()), kPositive));
  }
  if (spec.has_lease_transitions()) {
    ValidateNonNegative(spec.lease_transitions(), "spec.leaseTransitions", errs);
  }
}

struct SystemPriorityClass {
  const char* name;
  int32_t value;
};
constexpr SystemPriorityClass kSystemPriorityClasses[] = {
    {"system-node-critical", 2000001000},
    {"system-cluster-critical", 2000000000},
};

void ValidatePreemptionPolicy(const std::string& policy, const FieldPath& path,
                              FieldErrors* errs) {
  ValidateEnum(policy, {"PreemptLowerPriority", "Never"}, path, errs);
}

void ValidatePriorityClass(const capstan::scheduling::v1::PriorityClass& priority_class,
                           FieldErrors* errs) {
  const std::string& name = priority_class.metadata().name();
  if (name.rfind("system-", 0) == 0) {
    // The "system-" prefix is reserved for the classes the control plane itself relies on.
    std::string problem = name + " is not a known system priority class";
    for (const auto& known : kSystemPriorityClasses) {
      if (name != known.name) continue;
      if (priority_class.value() != known.value) {
        problem = "value of " + name + " PriorityClass must be " + std::to_string(known.value);
      } else if (priority_class.global_default()) {
        problem = "globalDefault of " + name + " PriorityClass must be false";
      } else {
        problem.clear();
      }
    }
    if (!problem.empty()) {
      errs->push_back(Forbidden("metadata.name",
                                "priority class names with 'system-' prefix are reserved for "
                                "system use only. error: " + problem));
    }
  } else if (priority_class.value() > kHighestUserDefinablePriority) {
    errs->push_back(Forbidden("value", "maximum allowed value of a user defined priority is " +
                                           std::to_string(kHighestUserDefinablePriority)));
  }
  if (priority_class.has_preemption_policy()) {
    ValidatePreemptionPolicy(priority_class.preemption_policy(), "preemptionPolicy", errs);
  }
}

void ValidateBinding(const capstan::core::v1::Binding& binding, FieldErrors* errs) {
  const auto& target = binding.target();
  if (!target.kind().empty() && target.kind() != "Node") {
    errs->push_back(NotSupported("target.kind", target.kind(), {"Node", "<empty>"}));
  }
  if (target.name().empty()) errs->push_back(Required("target.name", ""));
}

void ValidateNamespace(const capstan::core::v1::Namespace& ns, FieldErrors* errs) {
  // Kubernetes reports these under the list's path, without an index.
  for (const std::string& finalizer : ns.spec().finalizers()) {
    std::vector<std::string> msgs = api::IsQualifiedName(finalizer);
    AddInvalidPerMessage("spec.finalizers", finalizer, msgs, errs);
    if (msgs.empty() && finalizer.find('/') == std::string::npos &&
        !OneOf(finalizer, {"kubernetes", "orphan", "foregroundDeletion"})) {
      errs->push_back(Invalid("spec.finalizers", finalizer,
                              "name is neither a standard finalizer name nor is it fully qualified"));
    }
  }
}

// --- updates ---

const ObjectMeta* MetaOf(const google::protobuf::Message& object) {
  const auto* field = object.GetDescriptor()->FindFieldByNumber(3);
  if (field == nullptr || field->message_type() != ObjectMeta::descriptor()) return nullptr;
  return static_cast<const ObjectMeta*>(&object.GetReflection()->GetMessage(object, field));
}

void ValidateObjectMetaUpdate(const ObjectMeta& meta, const ObjectMeta& old, FieldErrors* errs) {
  if (meta.name() != old.name()) errs->push_back(Invalid("metadata.name", meta.name(), kImmutable));
  if (meta.namespace_() != old.namespace_()) {
    errs->push_back(Invalid("metadata.namespace", meta.namespace_(), kImmutable));
  }
  // The server fills a missing uid from the stored object; a different one is a different object.
  if (!meta.uid().empty() && !old.uid().empty() && meta.uid() != old.uid()) {
    errs->push_back(Invalid("metadata.uid", meta.uid(), kImmutable));
  }
}

void ValidateSelectorUnchanged(const LabelSelector& selector, const LabelSelector& old,
                               FieldErrors* errs) {
  if (!MessageDifferencer::Equals(selector, old)) {
    errs->push_back(Invalid("spec.selector", SelectorText(selector), kImmutable));
  }
}

constexpr char kPodUpdateForbidden[] =
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set "
    "to 1 if it was previously negative)";

void ValidatePodUpdate(const capstan::core::v1::Pod& pod, const capstan::core::v1::Pod& old,
                       FieldErrors* errs) {
  const PodSpec& spec = pod.spec();
  const PodSpec& old_spec = old.spec();
  if (spec.containers_size() != old_spec.containers_size()) {
    errs->push_back(Forbidden("spec.containers", "pod updates may not add or remove containers"));
    return;
  }
  if (spec.init_containers_size() != old_spec.init_containers_size()) {
    errs->push_back(Forbidden("spec.initContainers", "pod updates may not add or remove containers"));
    return;
  }
  // activeDeadlineSeconds may be set, or lowered, never raised or removed.
  if (spec.has_active_deadline_seconds()) {
    if (old_spec.has_active_deadline_seconds() &&
        old_spec.active_deadline_seconds() < spec.active_deadline_seconds()) {
      errs->push_back(Invalid("spec.activeDeadlineSeconds",
                              std::to_string(spec.active_deadline_seconds()),
                              "must be less than or equal to previous value"));
    }
  } else if (old_spec.has_active_deadline_seconds()) {
    errs->push_back(Invalid("spec.activeDeadlineSeconds", "",
                            "must not update from a positive integer to nil value"));
  }
  // Existing tolerations stay (their tolerationSeconds may change); new ones may be added.
  for (const auto& old_toleration : old_spec.tolerations()) {
    bool kept = false;
    for (const auto& toleration : spec.tolerations()) {
      capstan::core::v1::Toleration comparable = old_toleration;
      comparable.clear_toleration_seconds();
      if (toleration.has_toleration_seconds()) {
        comparable.set_toleration_seconds(toleration.toleration_seconds());
      }
      if (MessageDifferencer::Equals(comparable, toleration)) {
        kept = true;
        break;
      }
    }
    if (!kept) {
      errs->push_back(Forbidden("spec.tolerations",
                                "existing toleration can not be modified except its tolerationSeconds"));
      break;
    }
  }
  // Everything else must be as it was: copy the updatable fields from the old spec and compare.
  PodSpec munged = spec;
  for (int i = 0; i < munged.containers_size(); ++i) {
    munged.mutable_containers(i)->set_image(old_spec.containers(i).image());
  }
  for (int i = 0; i < munged.init_containers_size(); ++i) {
    munged.mutable_init_containers(i)->set_image(old_spec.init_containers(i).image());
  }
  if (old_spec.has_active_deadline_seconds()) {
    munged.set_active_deadline_seconds(old_spec.active_deadline_seconds());
  } else {
    munged.clear_active_deadline_seconds();
  }
  *munged.mutable_tolerations() = old_spec.tolerations();
  if (old_spec.has_termination_grace_period_seconds() &&
      old_spec.termination_grace_period_seconds() < 0 && munged.termination_grace_period_seconds() == 1) {
    munged.set_termination_grace_period_seconds(old_spec.termination_grace_period_seconds());
  }
  MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  if (!differencer.Compare(old_spec, munged)) {
    errs->push_back(Forbidden("spec", std::string(kPodUpdateForbidden) + "\n" + diff));
  }
}

void ValidateImmutableData(bool was_immutable, bool is_immutable, bool data_equal,
                           bool binary_data_equal, FieldErrors* errs) {
  if (!was_immutable) return;
  constexpr char kImmutableWhenSet[] = "field is immutable when `immutable` is set";
  if (!is_immutable) errs->push_back(Forbidden("immutable", kImmutableWhenSet));
  if (!data_equal) errs->push_back(Forbidden("data", kImmutableWhenSet));
  if (!binary_data_equal) errs->push_back(Forbidden("binaryData", kImmutableWhenSet));
}

template <typename MapType>
bool MapsEqual(const MapType& a, const MapType& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    if (it == b.end() || !(it->second == value)) return false;
  }
  return true;
}

// Cluster-scoped built-in kinds; everything else lives in a namespace.
bool IsClusterScoped(const google::protobuf::Message& object) {
  return dynamic_cast<const capstan::core::v1::Namespace*>(&object) != nullptr ||
         dynamic_cast<const capstan::core::v1::Node*>(&object) != nullptr ||
         dynamic_cast<const capstan::scheduling::v1::PriorityClass*>(&object) != nullptr;
}

}  // namespace

bool SelectorMatches(const LabelSelector& selector, const Map<std::string, std::string>& labels) {
  for (const auto& [key, value] : selector.match_labels()) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  for (const auto& expr : selector.match_expressions()) {
    auto it = labels.find(expr.key());
    bool present = it != labels.end();
    bool in_values = present && std::find(expr.values().begin(), expr.values().end(), it->second) !=
                                    expr.values().end();
    const std::string& op = expr.operator_();
    if (op == "In" && !in_values) return false;
    if (op == "NotIn" && in_values) return false;
    if (op == "Exists" && !present) return false;
    if (op == "DoesNotExist" && present) return false;
  }
  return true;
}

void ValidateResourceRequirements(const capstan::core::v1::ResourceRequirements& resources,
                                  const FieldPath& path, FieldErrors* errs) {
  const FieldPath requests_path = Child(path, "requests");
  std::vector<ParsedQuantity> limits =
      ValidateResourceList(resources.limits(), Child(path, "limits"), true, errs);
  std::vector<ParsedQuantity> requests =
      ValidateResourceList(resources.requests(), requests_path, true, errs);
  for (const ParsedQuantity& request : requests) {
    auto limit = std::find_if(limits.begin(), limits.end(),
                              [&](const ParsedQuantity& l) { return l.name == request.name; });
    if (limit != limits.end() && request.nano > limit->nano) {
      const std::string name(request.name);
      errs->push_back(Invalid(Key(requests_path, name), resources.requests().at(name).string(),
                              "must be less than or equal to " + name + " limit of " +
                                  resources.limits().at(name).string()));
    }
  }
}

void ValidatePodSpec(const PodSpec& spec, const FieldPath& path, FieldErrors* errs) {
  std::set<std::string> volume_names = ValidateVolumes(spec.volumes(), Child(path, "volumes"), errs);
  std::set<std::string> container_names;
  const FieldPath containers_path = Child(path, "containers");
  if (spec.containers().empty()) errs->push_back(Required(containers_path, ""));
  for (int i = 0; i < spec.containers_size(); ++i) {
    ValidateContainer(spec.containers(i), /*is_init=*/false, spec.host_network(), volume_names,
                      &container_names, Index(containers_path, i), errs);
  }
  for (int i = 0; i < spec.init_containers_size(); ++i) {
    ValidateContainer(spec.init_containers(i), /*is_init=*/true, spec.host_network(), volume_names,
                      &container_names, Index(Child(path, "initContainers"), i), errs);
  }
  ValidateEnum(spec.restart_policy(), {"Always", "OnFailure", "Never"}, Child(path, "restartPolicy"),
               errs);
  ValidateEnum(spec.dns_policy(), {"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"},
               Child(path, "dnsPolicy"), errs);
  api::ValidateLabels(spec.node_selector(), Child(path, "nodeSelector"), errs);
  if (!spec.service_account_name().empty()) {
    ValidateDNS1123Subdomain(spec.service_account_name(), Child(path, "serviceAccountName"), errs);
  }
  if (!spec.node_name().empty()) {
    ValidateDNS1123Subdomain(spec.node_name(), Child(path, "nodeName"), errs);
  }
  if (spec.has_active_deadline_seconds() &&
      (spec.active_deadline_seconds() < 1 || spec.active_deadline_seconds() > kMaxInt32)) {
    errs->push_back(Invalid(Child(path, "activeDeadlineSeconds"),
                            std::to_string(spec.active_deadline_seconds()),
                            "must be between 1 and 2147483647, inclusive"));
  }
  if (spec.has_termination_grace_period_seconds()) {
    ValidateNonNegative(spec.termination_grace_period_seconds(),
                        Child(path, "terminationGracePeriodSeconds"), errs);
  }
  if (!spec.hostname().empty()) ValidateDNS1123Label(spec.hostname(), Child(path, "hostname"), errs);
  if (!spec.subdomain().empty()) {
    ValidateDNS1123Label(spec.subdomain(), Child(path, "subdomain"), errs);
  }
  if (spec.has_affinity()) ValidateAffinity(spec.affinity(), Child(path, "affinity"), errs);
  ValidateTolerations(spec.tolerations(), Child(path, "tolerations"), errs);
  ValidateTopologySpreadConstraints(spec.topology_spread_constraints(),
                                    Child(path, "topologySpreadConstraints"), errs);
  if (!spec.priority_class_name().empty()) {
    ValidateDNS1123Subdomain(spec.priority_class_name(), Child(path, "priorityClassName"), errs);
  }
  if (spec.has_preemption_policy()) {
    ValidatePreemptionPolicy(spec.preemption_policy(), Child(path, "preemptionPolicy"), errs);
  }
  if (!spec.scheduler_name().empty()) {
    ValidateDNS1123Subdomain(spec.scheduler_name(), Child(path, "schedulerName"), errs);
  }
  for (int i = 0; i < spec.readiness_gates_size(); ++i) {
    ValidateQualifiedName(spec.readiness_gates(i).condition_type(),
                          Child(Index(Child(path, "readinessGates"), i), "conditionType"), errs);
  }
  for (int i = 0; i < spec.image_pull_secrets_size(); ++i) {
    if (spec.image_pull_secrets(i).name().empty()) {
      errs->push_back(Required(Child(Index(Child(path, "imagePullSecrets"), i), "name"), ""));
    }
  }
  ValidateResourceList(spec.overhead(), Child(path, "overhead"), true, errs);
}

void ValidatePodTemplateSpec(const capstan::core::v1::PodTemplateSpec& template_spec,
                             const LabelSelector* selector, const FieldPath& path,
                             FieldErrors* errs) {
  const ObjectMeta& meta = template_spec.metadata();
  const FieldPath labels_path = Child(path, "metadata.labels");
  if (selector != nullptr && !SelectorMatches(*selector, meta.labels())) {
    errs->push_back(Invalid(labels_path, GoMapLiteral(meta.labels()),
                            "`selector` does not match template `labels`"));
  }
  api::ValidateLabels(meta.labels(), labels_path, errs);
  api::ValidateAnnotations(meta.annotations(), Child(path, "metadata.annotations"), errs);
  ValidatePodSpec(template_spec.spec(), Child(path, "spec"), errs);
}

FieldErrors Validate(const google::protobuf::Message& object, bool namespaced) {
  FieldErrors errs;
  const ObjectMeta* meta = MetaOf(object);
  const bool name_is_dns_label = dynamic_cast<const capstan::core::v1::Namespace*>(&object) != nullptr;
  if (meta != nullptr) api::ValidateObjectMeta(*meta, namespaced, name_is_dns_label, &errs);

  if (auto* pod = dynamic_cast<const capstan::core::v1::Pod*>(&object)) {
    ValidatePodSpec(pod->spec(), "spec", &errs);
  } else if (auto* deployment = dynamic_cast<const capstan::apps::v1::Deployment*>(&object)) {
    ValidateDeploymentSpec(deployment->spec(), "spec", &errs);
  } else if (auto* replica_set = dynamic_cast<const capstan::apps::v1::ReplicaSet*>(&object)) {
    ValidateReplicaSetSpec(replica_set->spec(), "spec", &errs);
  } else if (auto* ns = dynamic_cast<const capstan::core::v1::Namespace*>(&object)) {
    ValidateNamespace(*ns, &errs);
  } else if (auto* node = dynamic_cast<const capstan::core::v1::Node*>(&object)) {
    ValidateNode(*node, &errs);
  } else if (auto* config_map = dynamic_cast<const capstan::core::v1::ConfigMap*>(&object)) {
    ValidateConfigMap(*config_map, &errs);
  } else if (auto* secret = dynamic_cast<const capstan::core::v1::Secret*>(&object)) {
    ValidateSecret(*secret, &errs);
  } else if (auto* event = dynamic_cast<const capstan::core::v1::Event*>(&object)) {
    ValidateEvent(*event, &errs);
  } else if (auto* lease = dynamic_cast<const capstan::coordination::v1::Lease*>(&object)) {
    ValidateLease(*lease, &errs);
  } else if (auto* priority_class =
                 dynamic_cast<const capstan::scheduling::v1::PriorityClass*>(&object)) {
    ValidatePriorityClass(*priority_class, &errs);
  } else if (auto* binding = dynamic_cast<const capstan::core::v1::Binding*>(&object)) {
    ValidateBinding(*binding, &errs);
  }
  return errs;
}

FieldErrors ValidateUpdate(const google::protobuf::Message& object,
                           const google::protobuf::Message& old) {
  if (object.GetDescriptor() != old.GetDescriptor()) {
    return {Invalid("kind", object.GetDescriptor()->name(),
                    "must be " + old.GetDescriptor()->name() + ", the kind of the stored object")};
  }
  const ObjectMeta* meta = MetaOf(object);
  const ObjectMeta* old_meta = MetaOf(old);
  bool namespaced = !IsClusterScoped(object);
  if (old_meta != nullptr && !IsClusterScoped(object) && old_meta->namespace_().empty()) {
    namespaced = false;  // a kind this file does not know, stored without a namespace
  }
  FieldErrors errs = Validate(object, namespaced);
  if (meta != nullptr && old_meta != nullptr) ValidateObjectMetaUpdate(*meta, *old_meta, &errs);

  if (auto* pod = dynamic_cast<const capstan::core::v1::Pod*>(&object)) {
    ValidatePodUpdate(*pod, static_cast<const capstan::core::v1::Pod&>(old), &errs);
  } else if (auto* deployment = dynamic_cast<const capstan::apps::v1::Deployment*>(&object)) {
    // apps/v1 made workload selectors immutable: changing one would orphan the existing pods.
    ValidateSelectorUnchanged(deployment->spec().selector(),
                              static_cast<const capstan::apps::v1::Deployment&>(old).spec().selector(),
                              &errs);
  } else if (auto* replica_set = dynamic_cast<const capstan::apps::v1::ReplicaSet*>(&object)) {
    ValidateSelectorUnchanged(replica_set->spec().selector(),
                              static_cast<const capstan::apps::v1::ReplicaSet&>(old).spec().selector(),
                              &errs);
  } else if (auto* config_map = dynamic_cast<const capstan::core::v1::ConfigMap*>(&object)) {
    const auto& old_config_map = static_cast<const capstan::core::v1::ConfigMap&>(old);
    ValidateImmutableData(old_config_map.immutable(), config_map->immutable(),
                          MapsEqual(config_map->data(), old_config_map.data()),
                          MapsEqual(config_map->binary_data(), old_config_map.binary_data()), &errs);
  } else if (auto* secret = dynamic_cast<const capstan::core::v1::Secret*>(&object)) {
    const auto& old_secret = static_cast<const capstan::core::v1::Secret&>(old);
    if (secret->type() != old_secret.type()) errs.push_back(Invalid("type", secret->type(), kImmutable));
    ValidateImmutableData(old_secret.immutable(), secret->immutable(),
                          MapsEqual(secret->data(), old_secret.data()), true, &errs);
  } else if (auto* node = dynamic_cast<const capstan::core::v1::Node*>(&object)) {
    const auto& old_node = static_cast<const capstan::core::v1::Node&>(old);
    // podCIDR and providerID are assigned once, then fixed.
    bool cidrs_changed = old_node.spec().pod_cidrs_size() != node->spec().pod_cidrs_size();
    for (int i = 0; !cidrs_changed && i < node->spec().pod_cidrs_size(); ++i) {
      cidrs_changed = node->spec().pod_cidrs(i) != old_node.spec().pod_cidrs(i);
    }
    if (!old_node.spec().pod_cidrs().empty() && cidrs_changed) {
      errs.push_back(Forbidden("spec.podCIDRs", "node updates may not change podCIDR except from \"\" to valid"));
    }
    if (!old_node.spec().provider_id().empty() &&
        node->spec().provider_id() != old_node.spec().provider_id()) {
      errs.push_back(Forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"));
    }
  } else if (auto* priority_class =
                 dynamic_cast<const capstan::scheduling::v1::PriorityClass*>(&object)) {
    const auto& old_class = static_cast<const capstan::scheduling::v1::PriorityClass&>(old);
    if (priority_class->value() != old_class.value()) {
      errs.push_back(Forbidden("value", "may not be changed in an update."));
    }
    if (priority_class->has_preemption_policy() != old_class.has_preemption_policy() ||
        priority_class->preemption_policy() != old_class.preemption_policy()) {
      errs.push_back(Invalid("preemptionPolicy", priority_class->preemption_policy(), kImmutable));
    }
  }
  return errs;
}

}  // namespace capstan::apiserver::registry
