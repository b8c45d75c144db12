// Kubernetes-style API errors.
//
// Inside Capstan an API error is an absl::Status whose payload is a capstan.meta.v1.Status (reason,
// HTTP-like code, message, field causes). The code of the absl::Status is chosen so that generic
// callers can act on it without looking at the payload:
//   kNotFound       NotFound (404)          kAlreadyExists   AlreadyExists (409)
//   kAborted        Conflict (409): redo the read-modify-write with a fresh object
//   kInvalidArgument Invalid (422), BadRequest (400), RequestEntityTooLarge (413)
//   kOutOfRange     Expired / Gone (410): the revision is compacted; relist
//   kFailedPrecondition Forbidden-by-state (e.g. namespace terminating), MethodNotAllowed (405)
//   kUnavailable    ServiceUnavailable (503): retry
// At the gRPC edge ToGrpcStatus/FromGrpcStatus carry the same Status in the error details.
#ifndef CAPSTAN_LIB_API_ERRORS_H_
#define CAPSTAN_LIB_API_ERRORS_H_

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "proto/meta.pb.h"

namespace capstan::api {

// Names the object an error is about: "deployments.apps" / "nginx".
struct ObjectRef {
  std::string group;
  std::string resource;  // plural
  std::string kind;
  std::string name;
};

absl::Status NotFound(const ObjectRef& ref);
absl::Status AlreadyExists(const ObjectRef& ref);
// A resourceVersion precondition failed: `detail` says which (e.g. "the object has been modified").
absl::Status Conflict(const ObjectRef& ref, absl::string_view detail);
// One cause per bad field; message is Kubernetes' `Kind "name" is invalid: [field: Reason: detail, ...]`.
struct Cause {
  std::string reason;  // FieldValueInvalid, FieldValueRequired, ...
  std::string field;   // spec.template.spec.containers[0].image
  std::string message; // the whole human text for this field
};
absl::Status Invalid(const ObjectRef& ref, const std::vector<Cause>& causes);
// The request names a resource the server does not serve (404 NotFound).
absl::Status UnknownResource(absl::string_view group, absl::string_view version,
                             absl::string_view resource);
absl::Status BadRequest(absl::string_view message);
absl::Status RequestEntityTooLarge(absl::string_view message);
absl::Status Expired(absl::string_view message);
absl::Status Forbidden(const ObjectRef& ref, absl::string_view detail);
absl::Status MethodNotSupported(const ObjectRef& ref, absl::string_view verb);
absl::Status InternalError(absl::string_view message);
absl::Status ServiceUnavailable(absl::string_view message);

// The Kubernetes Status of err: its payload, or one derived from the absl code and message.
capstan::meta::v1::Status ToApiStatus(const absl::Status& err);
// Whether err carries a Status from the API server (as opposed to, say, a failure to reach it).
bool HasApiStatus(const absl::Status& err);
// The reason of err ("NotFound", "Conflict", ...), "" for OK.
std::string Reason(const absl::Status& err);

grpc::Status ToGrpcStatus(const absl::Status& err);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_ERRORS_H_
