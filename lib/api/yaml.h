// YAML manifests as JSON values, and JSON values as YAML, for lib/api/codec.
//
// Kubernetes reads YAML by converting it to JSON first; so do we. Types follow the YAML 1.2 core
// schema (no YAML 1.1 yes/no/on/off booleans), and printing quotes any string another YAML
// reader might take for a different type, so printed manifests read back the same anywhere.
#ifndef CAPSTAN_LIB_API_YAML_H_
#define CAPSTAN_LIB_API_YAML_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace capstan::api {

// Splits multi-document YAML (or JSON, which is YAML) into JSON values, skipping empty documents
// (and documents that are only a scalar, such as comments-only ones).
// Plain scalars get YAML 1.2 core-schema types (true/false, null/~, integers, floats); quoted ones
// stay strings. Integers that do not fit 64 bits become floats. Mapping keys are always strings;
// a key repeated in one mapping is an error. Errors are InvalidArgument and name the line.
absl::StatusOr<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text);

// Block style, keys in the json's order, strings quoted only where YAML needs it.
std::string PrintYaml(const nlohmann::json& value);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_YAML_H_
