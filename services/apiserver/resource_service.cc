#include "services/apiserver/resource_service.h"

#include <chrono>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/api/codec.h"
#include "lib/api/errors.h"
#include "proto/core_v1.pb.h"

namespace capstan::apiserver {
namespace {

using google::protobuf::Message;

// Requests larger than this are refused before decoding (objects are limited to 1.5 MiB; JSON
// and the request's own fields need some room on top).
constexpr size_t kMaxRequestObjectBytes = 3 * 1024 * 1024;
constexpr size_t kMaxEventsPerWatchMessage = 512;

// Times one request; Done records it (once) and turns its outcome into the gRPC status.
class RequestTimer {
 public:
  RequestTimer(ApiMetrics* metrics, const char* verb, const apiv1::ResourceRef& ref)
      : metrics_(metrics), verb_(verb), ref_(&ref), start_(std::chrono::steady_clock::now()) {}
  grpc::Status Done(const absl::Status& status) const {
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start_;
    std::string resource = ref_->group().empty()
                               ? ref_->resource()
                               : absl::StrCat(ref_->resource(), ".", ref_->group());
    metrics_->Request(verb_, resource, status.ok() ? 200 : api::ToApiStatus(status).code(),
                      took.count());
    return api::ToGrpcStatus(status);
  }

 private:
  ApiMetrics* metrics_;
  const char* verb_;
  const apiv1::ResourceRef* ref_;  // the request's, alive until the call is finished
  std::chrono::steady_clock::time_point start_;
};

// The completion of a verb that answers with one object: fills the response, records the
// request and finishes the call. Runs wherever the result is ready (gRPC's thread or the
// store's commit thread); request and response live until the call is finished.
ResourceStore::Done Answer(RequestTimer timer, grpc::ServerUnaryReactor* reactor,
                           apiv1::ObjectResponse* response, apiv1::Encoding encoding);

absl::StatusOr<const api::ResourceInfo*> Resolve(const ResourceStore& store,
                                                 const apiv1::ResourceRef& ref) {
  const api::ResourceInfo* info =
      store.scheme().ByResource(ref.group(), ref.version(), ref.resource());
  if (info == nullptr) return api::UnknownResource(ref.group(), ref.version(), ref.resource());
  return info;
}

absl::StatusOr<std::unique_ptr<Message>> DecodeObject(const api::ResourceInfo& info,
                                                      const std::string& bytes,
                                                      apiv1::Encoding encoding) {
  if (bytes.size() > kMaxRequestObjectBytes) {
    return api::RequestEntityTooLarge(
        absl::StrCat("Request entity too large: limit is ", kMaxRequestObjectBytes, " bytes"));
  }
  std::unique_ptr<Message> object = api::Scheme::BuiltIn().New(info);
  if (encoding == apiv1::JSON) {
    absl::Status s = api::ParseJson(bytes, object.get());
    if (!s.ok()) return api::BadRequest(absl::StrCat("decoding ", info.kind, ": ", s.message()));
  } else if (!object->ParseFromString(bytes)) {
    return api::BadRequest(absl::StrCat("the body is not a valid protobuf encoding of ", info.kind));
  }
  std::string api_version = api::ApiVersionOf(*object);
  std::string kind = api::KindOf(*object);
  if ((!api_version.empty() && api_version != info.ApiVersion()) ||
      (!kind.empty() && kind != info.kind)) {
    return api::BadRequest(absl::StrCat("the object's apiVersion/kind (", api_version, ", ", kind,
                                        ") does not match the resource ", info.QualifiedResource(),
                                        " (", info.ApiVersion(), ", ", info.kind, ")"));
  }
  return object;
}

const std::string& Encode(const CachedObject& object, apiv1::Encoding encoding) {
  return encoding == apiv1::JSON ? object.json() : object.proto();
}

ResourceStore::Done Answer(RequestTimer timer, grpc::ServerUnaryReactor* reactor,
                           apiv1::ObjectResponse* response, apiv1::Encoding encoding) {
  return [timer, reactor, response, encoding](absl::StatusOr<ObjectPtr> result) {
    if (result.ok()) {
      response->set_object(Encode(**result, encoding));
      response->set_encoding(encoding);
    }
    reactor->Finish(timer.Done(result.status()));
  };
}

// The shape of every verb that answers with one object: resolves the request's resource and
// passes it to `start` with the call's completion (an unknown resource is answered at once).
template <typename Request>
grpc::ServerUnaryReactor* AnswerObject(
    grpc::CallbackServerContext* context, ApiMetrics* metrics, const ResourceStore& store,
    const char* verb, const Request& request, apiv1::ObjectResponse* response,
    const std::function<void(const api::ResourceInfo&, ResourceStore::Done)>& start) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  ResourceStore::Done done =
      Answer(RequestTimer(metrics, verb, request.resource()), reactor, response, request.encoding());
  absl::StatusOr<const api::ResourceInfo*> info = Resolve(store, request.resource());
  if (!info.ok()) {
    done(info.status());
  } else {
    start(**info, std::move(done));
  }
  return reactor;
}

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

// Appends one WatchResponse.events entry in protobuf wire format: a small header slice, then the
// object's bytes as a slice that references the cached object (kept alive by the slice), so the
// same bytes go to every watcher without a copy or a re-serialization. The frames of several
// events concatenate into a valid WatchResponse.
void AppendEventFrame(absl::string_view type, const ObjectPtr& holder, const std::string& payload,
                      std::vector<grpc::Slice>* out) {
  size_t event_size = 1 + VarintSize(type.size()) + type.size() + 1 +
                      VarintSize(payload.size()) + payload.size();
  std::string header;
  header.reserve(24 + type.size());
  header.push_back(0x0A);  // WatchResponse.events, length-delimited
  AppendVarint(event_size, &header);
  header.push_back(0x0A);  // WatchEvent.type
  AppendVarint(type.size(), &header);
  header.append(type.data(), type.size());
  header.push_back(0x12);  // WatchEvent.object
  AppendVarint(payload.size(), &header);
  out->emplace_back(header.data(), header.size());
  if (holder == nullptr) {
    out->emplace_back(payload.data(), payload.size());  // copied: a bookmark is tiny
    return;
  }
  auto* keep = new ObjectPtr(holder);
  out->emplace_back(const_cast<char*>(payload.data()), payload.size(),
                    [](void* p) { delete static_cast<ObjectPtr*>(p); }, keep);
}

// One watch stream's state, shared by its gRPC reactor and the sender pool. The cache's commit
// thread only queues events into the Watcher and schedules the stream; the message is built and
// the write started here, by a sender thread or by the gRPC thread that finished the previous
// write. One write is in flight at a time; whatever is queued meanwhile goes out as one message.
class WatchStream {
 public:
  WatchStream(grpc::ServerWriteReactor<grpc::ByteBuffer>* reactor, ResourceStore* store,
              ApiMetrics* metrics, const api::ResourceInfo* info, apiv1::Encoding encoding)
      : store_(store),
        info_(info),
        encoding_(encoding),
        events_sent_(info != nullptr ? &metrics->WatchEventsSent(info->QualifiedResource())
                                     : nullptr),
        reactor_(reactor) {}

  void Start(std::shared_ptr<Watcher> watcher) {
    {
      absl::MutexLock lock(&mu_);
      watcher_ = std::move(watcher);
    }
    Pump();
  }

  // Starts the next write if none is in flight and events are queued; finishes the stream when
  // the client cancelled or the watcher was closed (too slow, or the server is stopping).
  void Pump() {
    absl::MutexLock lock(&mu_);
    if (reactor_ == nullptr || writing_ || finished_) return;
    if (cancelled_) {
      finished_ = true;
      reactor_->Finish(grpc::Status::CANCELLED);
      return;
    }
    if (watcher_ == nullptr) return;
    std::vector<CacheEvent> events = watcher_->Take(kMaxEventsPerWatchMessage);
    if (events.empty()) {
      absl::Status status = watcher_->status();
      if (!status.ok()) {
        finished_ = true;
        reactor_->Finish(api::ToGrpcStatus(status));
      }
      return;
    }
    std::vector<grpc::Slice> slices;
    slices.reserve(events.size() * 2 + 1);
    for (const CacheEvent& e : events) {
      const char* type = WatchEventTypeName(e.type);
      if (e.type == WatchEventType::kBookmark) {
        AppendEventFrame(type, nullptr, BookmarkObject(e), &slices);
      } else {
        AppendEventFrame(type, e.object, Encode(*e.object, encoding_), &slices);
      }
    }
    if (encoding_ != apiv1::PROTOBUF) {
      // WatchResponse.encoding (field 2, varint).
      char tail[2] = {0x10, static_cast<char>(encoding_)};
      slices.emplace_back(tail, sizeof(tail));
    }
    response_ = grpc::ByteBuffer(slices.data(), slices.size());
    events_sent_->Increment(static_cast<double>(events.size()));
    writing_ = true;
    reactor_->StartWrite(&response_);
  }

  void WriteDone(bool ok) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) cancelled_ = true;
    }
    Pump();
  }

  // Every RPC must be finished, even a cancelled one, but not while a write is in flight: Pump
  // finishes it now or after the write completes.
  void Cancel() {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    }
    Pump();
  }

  void FinishEarly(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    reactor_->Finish(api::ToGrpcStatus(status));
  }

  // The reactor is gone: later pumps do nothing. Returns the watcher to unregister.
  std::shared_ptr<Watcher> Detach() {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    return std::move(watcher_);
  }

 private:
  // A bookmark is an object of the watched kind carrying only its resourceVersion.
  std::string BookmarkObject(const CacheEvent& e) const {
    std::unique_ptr<Message> object = store_->scheme().New(*info_);
    api::SetTypeMeta(*info_, object.get());
    auto* meta = api::MutableMeta(object.get());
    meta->set_resource_version(absl::StrCat(e.revision));
    if (e.initial_events_end) (*meta->mutable_annotations())["k8s.io/initial-events-end"] = "true";
    return encoding_ == apiv1::JSON ? api::PrintJson(*object) : object->SerializeAsString();
  }

  ResourceStore* const store_;
  const api::ResourceInfo* const info_;
  const apiv1::Encoding encoding_;
  prometheus::Counter* const events_sent_;  // null when info_ is (a stream that fails at once)

  absl::Mutex mu_;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* reactor_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Watcher> watcher_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer response_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

// A few threads that pump watch streams the commit thread scheduled.
class WatchSenders {
 public:
  explicit WatchSenders(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WatchSenders() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (auto& t : threads_) t.join();
  }
  void Schedule(std::shared_ptr<WatchStream> stream) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(stream));
  }

 private:
  void Run() {
    for (;;) {
      std::shared_ptr<WatchStream> stream;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;
        stream = std::move(queue_.front());
        queue_.pop_front();
      }
      stream->Pump();
    }
  }

  absl::Mutex mu_;
  std::deque<std::shared_ptr<WatchStream>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

namespace {

class WatchReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  WatchReactor(ResourceStore* store, ApiMetrics* metrics, WatchSenders* senders,
               const apiv1::WatchRequest& request)
      : store_(store), metrics_(metrics) {
    absl::StatusOr<const api::ResourceInfo*> info = Resolve(*store, request.resource());
    stream_ = std::make_shared<WatchStream>(this, store, metrics, info.ok() ? *info : nullptr,
                                            request.encoding());
    if (!info.ok()) {
      stream_->FinishEarly(info.status());
      return;
    }
    info_ = *info;
    WatchOptions options;
    options.label_selector = request.label_selector();
    options.field_selector = request.field_selector();
    options.resource_version = request.resource_version();
    options.send_initial_events = request.send_initial_events();
    options.allow_bookmarks = request.allow_bookmarks();
    std::weak_ptr<WatchStream> weak = stream_;
    absl::StatusOr<std::shared_ptr<Watcher>> watcher =
        store->Watch(*info_, request.resource().namespace_(), options, [weak, senders] {
          if (auto stream = weak.lock()) senders->Schedule(std::move(stream));
        });
    if (!watcher.ok()) {
      stream_->FinishEarly(watcher.status());
      return;
    }
    metrics_->WatchOpened(info_->QualifiedResource());
    stream_->Start(*watcher);
  }

  void OnWriteDone(bool ok) override { stream_->WriteDone(ok); }
  void OnCancel() override { stream_->Cancel(); }
  void OnDone() override {
    if (std::shared_ptr<Watcher> watcher = stream_->Detach()) {
      store_->StopWatch(*info_, watcher);
      metrics_->WatchClosed(info_->QualifiedResource());
    }
    delete this;
  }

 private:
  ResourceStore* const store_;
  ApiMetrics* const metrics_;
  const api::ResourceInfo* info_ = nullptr;
  std::shared_ptr<WatchStream> stream_;
};

}  // namespace

ResourceService::ResourceService(ResourceStore* store, ApiMetrics* metrics)
    : store_(store), metrics_(metrics), senders_(std::make_unique<WatchSenders>(2)) {}

ResourceService::~ResourceService() = default;

grpc::ServerUnaryReactor* ResourceService::Create(grpc::CallbackServerContext* context,
                                                  const apiv1::CreateRequest* request,
                                                  apiv1::ObjectResponse* response) {
  return AnswerObject(
      context, metrics_, *store_, "create", *request, response,
      [&](const api::ResourceInfo& info, ResourceStore::Done done) {
        if (!request->subresource().empty()) {
          return CreateSubresource(info, *request, std::move(done));
        }
        absl::StatusOr<std::unique_ptr<Message>> object =
            DecodeObject(info, request->object(), request->encoding());
        if (!object.ok()) return done(object.status());
        store_->CreateAsync(info, request->resource().namespace_(), std::move(*object),
                            request->dry_run(), std::move(done));
      });
}

void ResourceService::CreateSubresource(const api::ResourceInfo& info,
                                        const apiv1::CreateRequest& request,
                                        ResourceStore::Done done) {
  if (info.kind != "Pod" || request.subresource() != "binding") {
    return done(api::UnknownResource(info.group, info.version,
                                     absl::StrCat(info.resource, "/", request.subresource())));
  }
  capstan::core::v1::Binding binding;
  if (request.encoding() == apiv1::JSON) {
    absl::Status s = api::ParseJson(request.object(), &binding);
    if (!s.ok()) return done(api::BadRequest(absl::StrCat("decoding Binding: ", s.message())));
  } else if (!binding.ParseFromString(request.object())) {
    return done(api::BadRequest("the body is not a valid protobuf encoding of Binding"));
  }
  store_->BindAsync(request.resource().namespace_(), request.name(), binding, request.dry_run(),
                    std::move(done));
}

grpc::ServerUnaryReactor* ResourceService::Get(grpc::CallbackServerContext* context,
                                               const apiv1::GetRequest* request,
                                               apiv1::ObjectResponse* response) {
  return AnswerObject(context, metrics_, *store_, "get", *request, response,
                      [&](const api::ResourceInfo& info, ResourceStore::Done done) {
                        done(store_->Get(info, request->resource().namespace_(), request->name()));
                      });
}

grpc::ServerUnaryReactor* ResourceService::List(grpc::CallbackServerContext* context,
                                                const apiv1::ListRequest* request,
                                                apiv1::ListResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RequestTimer timer(metrics_, "list", request->resource());
  reactor->Finish(timer.Done([&]() -> absl::Status {
    absl::StatusOr<const api::ResourceInfo*> info = Resolve(*store_, request->resource());
    if (!info.ok()) return info.status();
    ListOptions options;
    options.label_selector = request->label_selector();
    options.field_selector = request->field_selector();
    options.limit = request->limit();
    options.continue_token = request->continue_();
    options.resource_version = request->resource_version();
    absl::StatusOr<ListResult> result =
        store_->List(**info, request->resource().namespace_(), options);
    if (!result.ok()) return result.status();
    response->mutable_items()->Reserve(static_cast<int>(result->items.size()));
    for (const ObjectPtr& item : result->items) {
      response->add_items(Encode(*item, request->encoding()));
    }
    response->set_resource_version(absl::StrCat(result->revision));
    response->set_continue_(result->continue_token);
    if (result->remaining) response->set_remaining_item_count(*result->remaining);
    response->set_encoding(request->encoding());
    return absl::OkStatus();
  }()));
  return reactor;
}

grpc::ServerUnaryReactor* ResourceService::DoUpdate(grpc::CallbackServerContext* context,
                                                    const apiv1::UpdateRequest* request,
                                                    apiv1::ObjectResponse* response,
                                                    bool status) {
  return AnswerObject(
      context, metrics_, *store_, status ? "update_status" : "update", *request, response,
      [&](const api::ResourceInfo& info, ResourceStore::Done done) {
        absl::StatusOr<std::unique_ptr<Message>> object =
            DecodeObject(info, request->object(), request->encoding());
        if (!object.ok()) return done(object.status());
        store_->UpdateAsync(info, request->resource().namespace_(), std::move(*object), status,
                            request->dry_run(), std::move(done));
      });
}

grpc::ServerUnaryReactor* ResourceService::Update(grpc::CallbackServerContext* context,
                                                  const apiv1::UpdateRequest* request,
                                                  apiv1::ObjectResponse* response) {
  return DoUpdate(context, request, response, false);
}

grpc::ServerUnaryReactor* ResourceService::UpdateStatus(grpc::CallbackServerContext* context,
                                                        const apiv1::UpdateRequest* request,
                                                        apiv1::ObjectResponse* response) {
  return DoUpdate(context, request, response, true);
}

grpc::ServerUnaryReactor* ResourceService::Patch(grpc::CallbackServerContext* context,
                                                 const apiv1::PatchRequest* request,
                                                 apiv1::ObjectResponse* response) {
  return AnswerObject(
      context, metrics_, *store_, "patch", *request, response,
      [&](const api::ResourceInfo& info, ResourceStore::Done done) {
        if (request->patch().size() > kMaxRequestObjectBytes) {
          return done(api::RequestEntityTooLarge("Request entity too large"));
        }
        store_->PatchAsync(
            info, request->resource().namespace_(), request->name(),
            request->type() == apiv1::JSON_PATCH ? PatchType::kJson : PatchType::kMerge,
            request->patch(), request->status(), request->dry_run(), std::move(done));
      });
}

grpc::ServerUnaryReactor* ResourceService::Delete(grpc::CallbackServerContext* context,
                                                  const apiv1::DeleteRequest* request,
                                                  apiv1::ObjectResponse* response) {
  return AnswerObject(
      context, metrics_, *store_, "delete", *request, response,
      [&](const api::ResourceInfo& info, ResourceStore::Done done) {
        DeleteOptions options;
        options.precondition_uid = request->preconditions().uid();
        options.precondition_resource_version = request->preconditions().resource_version();
        if (request->has_grace_period_seconds()) {
          options.grace_period_seconds = request->grace_period_seconds();
        }
        options.propagation_policy = request->propagation_policy();
        options.dry_run = request->dry_run();
        store_->DeleteAsync(info, request->resource().namespace_(), request->name(), options,
                            std::move(done));
      });
}

grpc::ServerUnaryReactor* ResourceService::Discover(grpc::CallbackServerContext* context,
                                                    const apiv1::DiscoveryRequest*,
                                                    apiv1::DiscoveryResponse* response) {
  for (const api::ResourceInfo& info : store_->scheme().resources()) {
    auto* r = response->add_resources();
    r->set_name(info.resource);
    r->set_singular_name(info.singular);
    r->set_namespaced(info.namespaced);
    r->set_group(info.group);
    r->set_version(info.version);
    r->set_kind(info.kind);
    for (const char* verb :
         {"create", "delete", "get", "list", "patch", "update", "watch"}) {
      r->add_verbs(verb);
    }
    for (const std::string& s : info.short_names) r->add_short_names(s);
    for (const std::string& s : info.subresources) r->add_subresources(s);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ResourceService::Watch(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* raw_request) {
  apiv1::WatchRequest request;
  grpc::ByteBuffer copy(*raw_request);  // Deserialize consumes its buffer; copies are refcounted
  if (!grpc::SerializationTraits<apiv1::WatchRequest>::Deserialize(&copy, &request).ok()) {
    request.Clear();
    request.mutable_resource()->set_resource("");  // answered as an unknown resource
  }
  return new WatchReactor(store_, metrics_, senders_.get(), request);
}

}  // namespace capstan::apiserver
