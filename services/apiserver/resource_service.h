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

// Every verb is a gRPC callback handler: it runs on gRPC's own few threads and never blocks. A
// write hands its result to the ResourceStore's asynchronous form and answers from the
// completion, so hundreds of writes wait for their group commit without a thread each. Watch
// writes pre-encoded frames that share each object's bytes across watchers.
using CallbackResources = apiv1::Resources::WithCallbackMethod_Create<
    apiv1::Resources::WithCallbackMethod_Get<apiv1::Resources::WithCallbackMethod_List<
        apiv1::Resources::WithCallbackMethod_Update<
            apiv1::Resources::WithCallbackMethod_UpdateStatus<
                apiv1::Resources::WithCallbackMethod_Patch<
                    apiv1::Resources::WithCallbackMethod_Delete<
                        apiv1::Resources::WithCallbackMethod_Discover<
                            apiv1::Resources::WithRawCallbackMethod_Watch<
                                apiv1::Resources::Service>>>>>>>>>;

class ResourceService final : public CallbackResources {
 public:
  // store and metrics must outlive the service.
  ResourceService(ResourceStore* store, ApiMetrics* metrics);
  ~ResourceService() override;

  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* context,
                                   const apiv1::CreateRequest* request,
                                   apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* context,
                                const apiv1::GetRequest* request,
                                apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* List(grpc::CallbackServerContext* context,
                                 const apiv1::ListRequest* request,
                                 apiv1::ListResponse* response) override;
  grpc::ServerUnaryReactor* Update(grpc::CallbackServerContext* context,
                                   const apiv1::UpdateRequest* request,
                                   apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* UpdateStatus(grpc::CallbackServerContext* context,
                                         const apiv1::UpdateRequest* request,
                                         apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* Patch(grpc::CallbackServerContext* context,
                                  const apiv1::PatchRequest* request,
                                  apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* context,
                                   const apiv1::DeleteRequest* request,
                                   apiv1::ObjectResponse* response) override;
  grpc::ServerUnaryReactor* Discover(grpc::CallbackServerContext* context,
                                     const apiv1::DiscoveryRequest* request,
                                     apiv1::DiscoveryResponse* response) override;
  // Raw: the request is parsed here and responses are written as pre-encoded frames.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* request) override;

 private:
  // POST .../NAME/SUBRESOURCE: pods/binding.
  void CreateSubresource(const api::ResourceInfo& info, const apiv1::CreateRequest& request,
                         ResourceStore::Done done);
  grpc::ServerUnaryReactor* DoUpdate(grpc::CallbackServerContext* context,
                                     const apiv1::UpdateRequest* request,
                                     apiv1::ObjectResponse* response, bool status);

  ResourceStore* const store_;
  ApiMetrics* const metrics_;
  std::unique_ptr<WatchSenders> senders_;  // sends watch events off the commit thread
};

}  // namespace capstan::apiserver

#endif  // CAPSTAN_SERVICES_APISERVER_RESOURCE_SERVICE_H_
