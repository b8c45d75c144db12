// The gRPC edge of the apiserver: decodes requests, calls the ResourceStore, encodes answers,
// turns errors into gRPC statuses that carry a Kubernetes Status, and records metrics.
#ifndef CAPSTAN_SERVICES_APISERVER_RESOURCE_SERVICE_H_
#define CAPSTAN_SERVICES_APISERVER_RESOURCE_SERVICE_H_

#include "proto/resource.grpc.pb.h"
#include "services/apiserver/metrics.h"
#include "services/apiserver/resource_store.h"

namespace capstan::apiserver {

namespace apiv1 = capstan::api::v1;

class WatchSenders;

// Unary verbs are synchronous handlers (a create waits for its group commit's fsync); Watch is a
// callback reactor, so open watches cost no thread, and writes pre-encoded frames that share each
// object's bytes across watchers.
class ResourceService final
    : public apiv1::Resources::WithRawCallbackMethod_Watch<apiv1::Resources::Service> {
 public:
  // store and metrics must outlive the service.
  ResourceService(ResourceStore* store, ApiMetrics* metrics);
  ~ResourceService() override;

  grpc::Status Create(grpc::ServerContext* context, const apiv1::CreateRequest* request,
                      apiv1::ObjectResponse* response) override;
  grpc::Status Get(grpc::ServerContext* context, const apiv1::GetRequest* request,
                   apiv1::ObjectResponse* response) override;
  grpc::Status List(grpc::ServerContext* context, const apiv1::ListRequest* request,
                    apiv1::ListResponse* response) override;
  grpc::Status Update(grpc::ServerContext* context, const apiv1::UpdateRequest* request,
                      apiv1::ObjectResponse* response) override;
  grpc::Status UpdateStatus(grpc::ServerContext* context, const apiv1::UpdateRequest* request,
                            apiv1::ObjectResponse* response) override;
  grpc::Status Patch(grpc::ServerContext* context, const apiv1::PatchRequest* request,
                     apiv1::ObjectResponse* response) override;
  grpc::Status Delete(grpc::ServerContext* context, const apiv1::DeleteRequest* request,
                      apiv1::ObjectResponse* response) override;
  grpc::Status Discover(grpc::ServerContext* context, const apiv1::DiscoveryRequest* request,
                        apiv1::DiscoveryResponse* response) override;
  // Raw: the request is parsed here and responses are written as pre-encoded frames.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;

 private:
  // POST .../NAME/SUBRESOURCE: pods/binding.
  absl::Status CreateSubresource(const api::ResourceInfo& info, const apiv1::CreateRequest& request,
                                 apiv1::ObjectResponse* response);
  grpc::Status DoUpdate(const apiv1::UpdateRequest* request, apiv1::ObjectResponse* response,
                        bool status);

  ResourceStore* const store_;
  ApiMetrics* const metrics_;
  std::unique_ptr<WatchSenders> senders_;  // sends watch events off the commit thread
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_RESOURCE_SERVICE_H_
