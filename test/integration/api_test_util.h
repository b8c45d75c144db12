// Small helpers for integration tests that talk to a real apiserver through the raw gRPC stub.
#ifndef CAPSTAN_TEST_INTEGRATION_API_TEST_UTIL_H_
#define CAPSTAN_TEST_INTEGRATION_API_TEST_UTIL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "lib/api/errors.h"
#include "proto/resource.grpc.pb.h"

namespace capstan::testing {

namespace apiv1 = capstan::api::v1;

inline apiv1::ResourceRef Ref(const std::string& group, const std::string& resource,
                              const std::string& ns = "") {
  apiv1::ResourceRef ref;
  ref.set_group(group);
  ref.set_version("v1");
  ref.set_resource(resource);
  ref.set_namespace_(ns);
  return ref;
}

class Api {
 public:
  explicit Api(const std::string& address)
      : stub_(apiv1::Resources::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {}

  apiv1::Resources::Stub* stub() { return stub_.get(); }

  // Raw calls returning the object bytes in the request's encoding.
  absl::StatusOr<std::string> Create(const apiv1::ResourceRef& ref, const std::string& object,
                                     apiv1::Encoding encoding = apiv1::PROTOBUF) {
    apiv1::CreateRequest req;
    *req.mutable_resource() = ref;
    req.set_object(object);
    req.set_encoding(encoding);
    apiv1::ObjectResponse resp;
    grpc::ClientContext ctx;
    return Result(stub_->Create(&ctx, req, &resp), resp);
  }
  absl::StatusOr<std::string> Get(const apiv1::ResourceRef& ref, const std::string& name,
                                  apiv1::Encoding encoding = apiv1::PROTOBUF) {
    apiv1::GetRequest req;
    *req.mutable_resource() = ref;
    req.set_name(name);
    req.set_encoding(encoding);
    apiv1::ObjectResponse resp;
    grpc::ClientContext ctx;
    return Result(stub_->Get(&ctx, req, &resp), resp);
  }
  absl::StatusOr<std::string> Update(const apiv1::ResourceRef& ref, const std::string& object,
                                     apiv1::Encoding encoding = apiv1::PROTOBUF,
                                     bool status = false) {
    apiv1::UpdateRequest req;
    *req.mutable_resource() = ref;
    req.set_object(object);
    req.set_encoding(encoding);
    apiv1::ObjectResponse resp;
    grpc::ClientContext ctx;
    return Result(status ? stub_->UpdateStatus(&ctx, req, &resp) : stub_->Update(&ctx, req, &resp),
                  resp);
  }
  absl::StatusOr<std::string> Delete(const apiv1::ResourceRef& ref, const std::string& name) {
    apiv1::DeleteRequest req;
    *req.mutable_resource() = ref;
    req.set_name(name);
    apiv1::ObjectResponse resp;
    grpc::ClientContext ctx;
    return Result(stub_->Delete(&ctx, req, &resp), resp);
  }
  absl::StatusOr<apiv1::ListResponse> List(const apiv1::ListRequest& req) {
    apiv1::ListResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = stub_->List(&ctx, req, &resp);
    if (!s.ok()) return api::FromGrpcStatus(s);
    return resp;
  }

  // Typed helpers over the protobuf encoding.
  template <typename T>
  absl::StatusOr<T> CreateTyped(const apiv1::ResourceRef& ref, const T& object) {
    return Parse<T>(Create(ref, object.SerializeAsString()));
  }
  template <typename T>
  absl::StatusOr<T> GetTyped(const apiv1::ResourceRef& ref, const std::string& name) {
    return Parse<T>(Get(ref, name));
  }
  template <typename T>
  absl::StatusOr<T> UpdateTyped(const apiv1::ResourceRef& ref, const T& object,
                                bool status = false) {
    return Parse<T>(Update(ref, object.SerializeAsString(), apiv1::PROTOBUF, status));
  }

 private:
  static absl::StatusOr<std::string> Result(const grpc::Status& s,
                                            const apiv1::ObjectResponse& resp) {
    if (!s.ok()) return api::FromGrpcStatus(s);
    return resp.object();
  }
  template <typename T>
  static absl::StatusOr<T> Parse(absl::StatusOr<std::string> bytes) {
    if (!bytes.ok()) return bytes.status();
    T object;
    if (!object.ParseFromString(*bytes)) return absl::InternalError("response does not parse");
    return object;
  }

  std::unique_ptr<apiv1::Resources::Stub> stub_;
};

}  // namespace capstan::testing

#endif  // CAPSTAN_TEST_INTEGRATION_API_TEST_UTIL_H_
