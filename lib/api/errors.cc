#include "lib/api/errors.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace capstan::api {
namespace {

using capstan::meta::v1::Status;

constexpr char kStatusPayloadUrl[] = "type.capstan.io/capstan.meta.v1.Status";

std::string QualifiedResource(const ObjectRef& ref) {
  return ref.group.empty() ? ref.resource : absl::StrCat(ref.resource, ".", ref.group);
}

Status NewStatus(absl::string_view reason, int code, absl::string_view message) {
  Status s;
  s.set_api_version("v1");
  s.set_kind("Status");
  s.set_status("Failure");
  s.set_reason(std::string(reason));
  s.set_code(code);
  s.set_message(std::string(message));
  return s;
}

void SetDetails(const ObjectRef& ref, Status* s) {
  auto* d = s->mutable_details();
  d->set_name(ref.name);
  d->set_group(ref.group);
  d->set_kind(ref.resource);
}

absl::Status WithPayload(absl::StatusCode code, const Status& status) {
  absl::Status err(code, status.message());
  err.SetPayload(kStatusPayloadUrl, absl::Cord(status.SerializeAsString()));
  return err;
}

struct CodeInfo {
  const char* reason;
  int http;
};

// What Kubernetes would answer for an error that carries no Status of its own.
CodeInfo DefaultsFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kNotFound: return {"NotFound", 404};
    case absl::StatusCode::kAlreadyExists: return {"AlreadyExists", 409};
    case absl::StatusCode::kAborted: return {"Conflict", 409};
    case absl::StatusCode::kInvalidArgument: return {"BadRequest", 400};
    case absl::StatusCode::kOutOfRange: return {"Expired", 410};
    case absl::StatusCode::kFailedPrecondition: return {"Forbidden", 403};
    case absl::StatusCode::kPermissionDenied: return {"Forbidden", 403};
    case absl::StatusCode::kUnauthenticated: return {"Unauthorized", 401};
    case absl::StatusCode::kUnavailable: return {"ServiceUnavailable", 503};
    case absl::StatusCode::kDeadlineExceeded: return {"Timeout", 504};
    case absl::StatusCode::kResourceExhausted: return {"TooManyRequests", 429};
    case absl::StatusCode::kUnimplemented: return {"MethodNotAllowed", 405};
    default: return {"InternalError", 500};
  }
}

}  // namespace

absl::Status NotFound(const ObjectRef& ref) {
  Status s = NewStatus("NotFound", 404,
                       absl::StrCat(QualifiedResource(ref), " \"", ref.name, "\" not found"));
  SetDetails(ref, &s);
  return WithPayload(absl::StatusCode::kNotFound, s);
}

absl::Status AlreadyExists(const ObjectRef& ref) {
  Status s = NewStatus("AlreadyExists", 409,
                       absl::StrCat(QualifiedResource(ref), " \"", ref.name, "\" already exists"));
  SetDetails(ref, &s);
  return WithPayload(absl::StatusCode::kAlreadyExists, s);
}

absl::Status Conflict(const ObjectRef& ref, absl::string_view detail) {
  Status s = NewStatus("Conflict", 409,
                       absl::StrCat("Operation cannot be fulfilled on ", QualifiedResource(ref),
                                    " \"", ref.name, "\": ", detail));
  SetDetails(ref, &s);
  return WithPayload(absl::StatusCode::kAborted, s);
}

absl::Status Invalid(const ObjectRef& ref, const std::vector<Cause>& causes) {
  std::vector<std::string> parts;
  parts.reserve(causes.size());
  for (const Cause& c : causes) parts.push_back(c.message);
  std::string joined = parts.size() == 1 ? parts[0] : absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
  Status s = NewStatus("Invalid", 422,
                       absl::StrCat(ref.kind, " \"", ref.name, "\" is invalid: ", joined));
  SetDetails(ref, &s);
  s.mutable_details()->set_kind(ref.kind);
  for (const Cause& c : causes) {
    auto* cause = s.mutable_details()->add_causes();
    cause->set_reason(c.reason);
    cause->set_field(c.field);
    cause->set_message(c.message);
  }
  return WithPayload(absl::StatusCode::kInvalidArgument, s);
}

absl::Status UnknownResource(absl::string_view group, absl::string_view version,
                             absl::string_view resource) {
  Status s = NewStatus("NotFound", 404,
                       absl::StrCat("the server could not find the requested resource ",
                                    group.empty() ? "" : absl::StrCat(group, "/"), version, "/",
                                    resource));
  return WithPayload(absl::StatusCode::kNotFound, s);
}

absl::Status BadRequest(absl::string_view message) {
  return WithPayload(absl::StatusCode::kInvalidArgument, NewStatus("BadRequest", 400, message));
}

absl::Status RequestEntityTooLarge(absl::string_view message) {
  return WithPayload(absl::StatusCode::kInvalidArgument,
                     NewStatus("RequestEntityTooLarge", 413, message));
}

absl::Status Expired(absl::string_view message) {
  return WithPayload(absl::StatusCode::kOutOfRange, NewStatus("Expired", 410, message));
}

absl::Status Forbidden(const ObjectRef& ref, absl::string_view detail) {
  Status s = NewStatus("Forbidden", 403,
                       absl::StrCat(QualifiedResource(ref), " \"", ref.name, "\" is forbidden: ", detail));
  SetDetails(ref, &s);
  return WithPayload(absl::StatusCode::kFailedPrecondition, s);
}

absl::Status MethodNotSupported(const ObjectRef& ref, absl::string_view verb) {
  Status s = NewStatus("MethodNotAllowed", 405,
                       absl::StrCat(verb, " is not supported on resources of kind \"",
                                    QualifiedResource(ref), "\""));
  SetDetails(ref, &s);
  return WithPayload(absl::StatusCode::kUnimplemented, s);
}

absl::Status InternalError(absl::string_view message) {
  return WithPayload(absl::StatusCode::kInternal,
                     NewStatus("InternalError", 500, absl::StrCat("Internal error occurred: ", message)));
}

absl::Status ServiceUnavailable(absl::string_view message) {
  return WithPayload(absl::StatusCode::kUnavailable, NewStatus("ServiceUnavailable", 503, message));
}

Status ToApiStatus(const absl::Status& err) {
  if (err.ok()) {
    Status s;
    s.set_api_version("v1");
    s.set_kind("Status");
    s.set_status("Success");
    s.set_code(200);
    return s;
  }
  if (auto payload = err.GetPayload(kStatusPayloadUrl)) {
    Status s;
    if (s.ParseFromString(std::string(*payload))) return s;
  }
  CodeInfo info = DefaultsFor(err.code());
  return NewStatus(info.reason, info.http, err.message());
}

bool HasApiStatus(const absl::Status& err) {
  return err.GetPayload(kStatusPayloadUrl).has_value();
}

std::string Reason(const absl::Status& err) {
  return err.ok() ? std::string() : ToApiStatus(err).reason();
}

grpc::Status ToGrpcStatus(const absl::Status& err) {
  if (err.ok()) return grpc::Status::OK;
  Status s = ToApiStatus(err);
  return grpc::Status(static_cast<grpc::StatusCode>(err.code()), s.message(), s.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  auto code = static_cast<absl::StatusCode>(status.error_code());
  Status s;
  if (!status.error_details().empty() && s.ParseFromString(status.error_details())) {
    return WithPayload(code, s);
  }
  return absl::Status(code, status.error_message());
}

}  // namespace capstan::api
