// Kubernetes' JSON form of the API's protobuf messages, by reflection.
//
// Protobuf's own JSON mapping does not match Kubernetes (int64 as strings, no Quantity,
// IntOrString or Time forms, errors without field paths), so this codec walks messages with
// google::protobuf reflection and nlohmann::json following the conventions stated in
// proto/meta.proto:
// - field names come only from FieldDescriptor::json_name();
// - integers are JSON numbers; bytes are standard base64 with padding; enums are their names;
// - `optional` scalars and message fields are written when set, other scalars only when non-zero
//   (Kubernetes' omitempty); repeated fields and maps when non-empty;
// - capstan.meta.v1.Time / MicroTime are RFC 3339 strings, Quantity a string ("500m"), and
//   IntOrString a number or a string, as their Kubernetes namesakes.
// Nothing is cached globally: every function is safe to call from any thread.
#ifndef CAPSTAN_LIB_API_CODEC_H_
#define CAPSTAN_LIB_API_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include <nlohmann/json.hpp>

namespace capstan::api {

// Decodes a Kubernetes JSON value into message (which is cleared first). Errors are
// absl::InvalidArgumentError whose message names the field path as Kubernetes does:
//   unknown field "spec.replicass"
//   spec.replicas: expected integer, got string "three"
//   metadata.creationTimestamp: invalid time "yesterday"
// Array elements are named by index ("spec.containers[0].name"), map entries by key
// ("metadata.labels[app]"). JSON null for any field means "unset".
absl::Status JsonToMessage(const nlohmann::json& json, google::protobuf::Message* message);

// Parses text as JSON (syntax errors name line and column) then JsonToMessage.
absl::Status ParseJson(std::string_view text, google::protobuf::Message* message);

// Kubernetes' JSON form of message.
nlohmann::json MessageToJson(const google::protobuf::Message& message);

// MessageToJson as text: compact, or indented by two spaces when pretty.
std::string PrintJson(const google::protobuf::Message& message, bool pretty = false);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_CODEC_H_
