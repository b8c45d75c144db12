#include "services/apiserver/resource_store.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <future>
#include <iterator>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "lib/api/codec.h"
#include "lib/api/errors.h"
#include "lib/api/validation.h"
#include "nlohmann/json.hpp"
#include "proto/apps_v1.pb.h"
#include "proto/core_v1.pb.h"
#include "proto/scheduling_v1.pb.h"
#include "services/apiserver/registry/defaults.h"
#include "services/apiserver/registry/validation.h"

namespace capstan::apiserver {
namespace {

using google::protobuf::Message;
using capstan::meta::v1::ObjectMeta;

constexpr int kGenerateNameRetries = 8;
const char* const kSystemNamespaces[] = {"default", "kube-system", "kube-public", "kube-node-lease"};

// Kubernetes' built-in PriorityClasses (pkg/apis/scheduling: SystemPriorityClasses).
struct SystemPriorityClass {
  const char* name;
  int32_t value;
  const char* description;
};
constexpr SystemPriorityClass kSystemPriorityClasses[] = {
    {"system-node-critical", 2000001000,
     "Used for system critical pods that must not be moved from their current node."},
    {"system-cluster-critical", 2000000000,
     "Used for system critical pods that must run in the cluster, but can be moved to another "
     "node if necessary."},
};
constexpr char kDefaultPreemptionPolicy[] = "PreemptLowerPriority";

// Runs an asynchronous write and waits for its result.
absl::StatusOr<ObjectPtr> Await(const std::function<void(ResourceStore::Done)>& start) {
  auto result = std::make_shared<std::promise<absl::StatusOr<ObjectPtr>>>();
  std::future<absl::StatusOr<ObjectPtr>> future = result->get_future();
  start([result](absl::StatusOr<ObjectPtr> r) { result->set_value(std::move(r)); });
  return future.get();
}

std::string CacheKey(const std::string& ns, const std::string& name) {
  return absl::StrCat(ns, "/", name);
}

std::string StorageKey(const api::ResourceInfo& info, const std::string& ns,
                       const std::string& name) {
  return absl::StrCat(info.QualifiedResource(), "/", ns, "/", name);
}

api::ObjectRef Ref(const api::ResourceInfo& info, const std::string& name) {
  return {info.group, info.resource, info.kind, name};
}

// Deterministic so that equal objects have equal bytes (no-op updates are detected by bytes).
std::string Serialize(const Message& message) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);
  message.ByteSizeLong();  // caches the sizes SerializeWithCachedSizes needs
  message.SerializeWithCachedSizes(&coded);
  return out;
}

// Everything but type meta, metadata and status: what a generation bump is about.
std::string DesiredState(const Message& object) {
  std::unique_ptr<Message> copy(object.New());
  copy->CopyFrom(object);
  const auto* d = copy->GetDescriptor();
  const auto* r = copy->GetReflection();
  for (int number : {1, 2, 3}) r->ClearField(copy.get(), d->FindFieldByNumber(number));
  if (const auto* status = d->FindFieldByName("status")) r->ClearField(copy.get(), status);
  return Serialize(*copy);
}

const google::protobuf::FieldDescriptor* StatusField(const Message& object) {
  return object.GetDescriptor()->FindFieldByName("status");
}

capstan::meta::v1::Time Now() {
  capstan::meta::v1::Time t;
  t.set_seconds(absl::ToUnixSeconds(absl::Now()));
  return t;
}

std::string NewUid() {
  static absl::Mutex mu(absl::kConstInit);
  static absl::BitGen* gen = new absl::BitGen();
  uint64_t hi, lo;
  {
    absl::MutexLock lock(&mu);
    hi = absl::Uniform<uint64_t>(*gen);
    lo = absl::Uniform<uint64_t>(*gen);
  }
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                    // version 4
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xFFFF, hi & 0xFFFF,
                         lo >> 48, lo & 0xFFFFFFFFFFFFULL);
}

// Kubernetes' generateName suffix: 5 characters without vowels or look-alikes.
std::string RandomSuffix() {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  thread_local absl::BitGen gen;
  std::string s(5, ' ');
  for (char& c : s) c = kAlphabet[absl::Uniform<size_t>(gen, 0, sizeof(kAlphabet) - 1)];
  return s;
}

bool HasFinalizer(const ObjectMeta& meta, const std::string& name) {
  for (const auto& f : meta.finalizers()) {
    if (f == name) return true;
  }
  return false;
}

std::string PodQosClass(const capstan::core::v1::PodSpec& spec) {
  bool any = false, guaranteed = true;
  for (const auto& c : spec.containers()) {
    const auto& req = c.resources().requests();
    const auto& lim = c.resources().limits();
    if (!req.empty() || !lim.empty()) any = true;
    for (const char* r : {"cpu", "memory"}) {
      auto l = lim.find(r);
      auto q = req.find(r);
      if (l == lim.end() || (q != req.end() && q->second.string() != l->second.string())) {
        guaranteed = false;
      }
    }
  }
  if (!any) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

// Server-owned state on create, per kind (Kubernetes' PrepareForCreate).
void PrepareForCreate(Message* object) {
  if (auto* pod = dynamic_cast<capstan::core::v1::Pod*>(object)) {
    pod->clear_status();
    pod->mutable_status()->set_phase("Pending");
    pod->mutable_status()->set_qos_class(PodQosClass(pod->spec()));
  } else if (auto* d = dynamic_cast<capstan::apps::v1::Deployment*>(object)) {
    d->clear_status();
  } else if (auto* rs = dynamic_cast<capstan::apps::v1::ReplicaSet*>(object)) {
    rs->clear_status();
  } else if (auto* ns = dynamic_cast<capstan::core::v1::Namespace*>(object)) {
    ns->clear_status();
    ns->mutable_status()->set_phase("Active");
    // The namespace controller removes this once the namespace's contents are deleted.
    ns->mutable_spec()->clear_finalizers();
    ns->mutable_spec()->add_finalizers("kubernetes");
  }
}

bool IsTerminating(const Message& ns_object) {
  const auto& ns = static_cast<const capstan::core::v1::Namespace&>(ns_object);
  return ns.metadata().has_deletion_timestamp() || ns.status().phase() == "Terminating";
}

// Whether an object whose deletion has begun may now be removed from storage.
bool ReadyToRemove(const Message& object) {
  const ObjectMeta& meta = api::Meta(object);
  if (!meta.has_deletion_timestamp() || meta.finalizers_size() > 0) return false;
  if (auto* ns = dynamic_cast<const capstan::core::v1::Namespace*>(&object)) {
    return ns->spec().finalizers_size() == 0;
  }
  // A pod with a grace period left is removed by its node agent (delete with grace 0).
  return !meta.has_deletion_grace_period_seconds() || meta.deletion_grace_period_seconds() == 0;
}

}  // namespace

ResourceStore::ResourceStore(storage::Store* store, const api::Scheme& scheme, Options options)
    : store_(store), scheme_(scheme), options_(options) {
  for (const api::ResourceInfo& info : scheme_.resources()) {
    resources_.emplace(info.QualifiedResource(),
                       Resource{&info, std::make_unique<WatchCache>(info, options_.watch_window)});
  }
}

ResourceStore::~ResourceStore() = default;

WatchCache& ResourceStore::cache(const api::ResourceInfo& info) {
  return *resources_.at(info.QualifiedResource()).cache;
}

size_t ResourceStore::object_count() const {
  size_t n = 0;
  for (const auto& [name, resource] : resources_) n += resource.cache->size();
  return n;
}

absl::StatusOr<std::unique_ptr<Message>> ResourceStore::Decode(const api::ResourceInfo& info,
                                                               const std::string& bytes,
                                                               int64_t revision) const {
  std::unique_ptr<Message> object = scheme_.New(info);
  if (!object->ParseFromString(bytes)) {
    return api::InternalError(absl::StrCat("stored ", info.kind, " does not decode"));
  }
  api::MutableMeta(object.get())->set_resource_version(absl::StrCat(revision));
  return object;
}

namespace {

// Building the cache object of every stored object is most of what a restart costs, and objects
// are independent: while the caller scans the store, a few threads index what it has read, in
// chunks. At most kMaxQueuedChunks wait, so the raw bytes are never all in memory at once.
// Objects are not decoded: the cache's view is read from the encoding (CachedObject::FromStored).
class ParallelLoader {
 public:
  // prototype: the stored kind's default instance.
  ParallelLoader(size_t prefix_size, const Message* prototype)
      : prefix_size_(prefix_size), prototype_(prototype) {
    const int threads = std::clamp<int>(static_cast<int>(std::thread::hardware_concurrency()), 1, 4);
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }

  // Called by the scan, in order.
  void Add(const storage::KeyValue& kv) {
    if (chunk_.size() == kChunk) Flush();
    chunk_.push_back(kv);
  }

  // The decoded objects (in no particular order) by cache key, or the first decode error.
  absl::StatusOr<std::vector<std::pair<std::string, ObjectPtr>>> Finish() {
    Flush();
    {
      absl::MutexLock lock(&mu_);
      scanned_ = true;
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    if (!error_.ok()) return error_;
    return std::move(objects_);
  }

  ~ParallelLoader() {
    if (!threads_.empty()) Finish().IgnoreError();
  }

 private:
  static constexpr size_t kChunk = 256;
  static constexpr size_t kMaxQueuedChunks = 16;

  void Flush() {
    if (chunk_.empty()) return;
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &ParallelLoader::HasRoom));
    queue_.push_back(std::move(chunk_));
    chunk_.clear();
  }
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return queue_.size() < kMaxQueuedChunks; }
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return scanned_ || !queue_.empty(); }

  void Work() {
    for (;;) {
      std::vector<storage::KeyValue> chunk;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &ParallelLoader::HasWork));
        if (queue_.empty()) return;
        chunk = std::move(queue_.front());
        queue_.pop_front();
      }
      std::vector<std::pair<std::string, ObjectPtr>> decoded;
      decoded.reserve(chunk.size());
      absl::Status error;
      for (storage::KeyValue& kv : chunk) {
        // The stored bytes become the cached encoding (no second serialization).
        absl::StatusOr<std::shared_ptr<CachedObject>> cached =
            CachedObject::FromStored(*prototype_, std::move(kv.value), kv.mod_revision);
        if (!cached.ok()) {
          error = api::InternalError(absl::StrCat(kv.key, ": ", cached.status().message()));
          break;
        }
        decoded.emplace_back(kv.key.substr(prefix_size_), *std::move(cached));
      }
      absl::MutexLock lock(&mu_);
      if (!error.ok() && error_.ok()) error_ = error;
      std::move(decoded.begin(), decoded.end(), std::back_inserter(objects_));
    }
  }

  const size_t prefix_size_;
  const Message* const prototype_;
  std::vector<storage::KeyValue> chunk_;  // being filled by the scan
  std::vector<std::thread> threads_;

  absl::Mutex mu_;
  std::deque<std::vector<storage::KeyValue>> queue_ ABSL_GUARDED_BY(mu_);
  bool scanned_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, ObjectPtr>> objects_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::Status ResourceStore::Start() {
  int64_t revision = store_->CurrentRevision();
  for (auto& [prefix, resource] : resources_) {
    const api::ResourceInfo& info = *resource.info;
    ParallelLoader loader(prefix.size() + 1,
                          google::protobuf::MessageFactory::generated_factory()->GetPrototype(
                              info.descriptor));
    absl::StatusOr<int64_t> scanned =
        store_->Scan(prefix + "/", [&](const storage::KeyValue& kv) { loader.Add(kv); });
    absl::StatusOr<std::vector<std::pair<std::string, ObjectPtr>>> objects = loader.Finish();
    if (!scanned.ok()) return scanned.status();
    if (!objects.ok()) return objects.status();
    resource.cache->Load(std::move(*objects), revision);
  }
  applied_revision_ = revision;
  store_->SetObserver([this](const storage::Event& event) { OnCommit(event); });

  const api::ResourceInfo& ns_info = *scheme_.ByKind("v1", "Namespace");
  for (const char* name : kSystemNamespaces) {
    if (cache(ns_info).Get(CacheKey("", name)) != nullptr) continue;
    auto ns = std::make_unique<capstan::core::v1::Namespace>();
    ns->mutable_metadata()->set_name(name);
    absl::StatusOr<ObjectPtr> created = Create(ns_info, "", std::move(ns), false);
    if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
      return created.status();
    }
  }

  const api::ResourceInfo& pc_info = *scheme_.ByKind("scheduling.k8s.io/v1", "PriorityClass");
  for (const SystemPriorityClass& system : kSystemPriorityClasses) {
    if (cache(pc_info).Get(CacheKey("", system.name)) != nullptr) continue;
    auto pc = std::make_unique<capstan::scheduling::v1::PriorityClass>();
    pc->mutable_metadata()->set_name(system.name);
    pc->set_value(system.value);
    pc->set_description(system.description);
    absl::StatusOr<ObjectPtr> created = Create(pc_info, "", std::move(pc), false);
    if (!created.ok() && created.status().code() != absl::StatusCode::kAlreadyExists) {
      return created.status();
    }
  }
  return absl::OkStatus();
}

void ResourceStore::OnCommit(const storage::Event& event) {
  size_t slash = event.key.find('/');
  auto it = resources_.find(absl::string_view(event.key).substr(0, slash));
  if (it != resources_.end()) {
    // A stored object that does not decode would be a bug in this server; skipping it keeps the
    // other resources serving.
    const bool deleted = event.type == storage::EventType::kDelete;
    std::shared_ptr<CachedObject> cached;
    if (event.attachment != nullptr && !deleted) {
      // Write() attached the cache's object for this write, built off this thread: it only
      // needs its revision.
      cached = std::static_pointer_cast<CachedObject>(event.attachment);
      cached->Stamp(event.revision);
    } else if (auto object = Decode(*it->second.info, event.value, event.revision); object.ok()) {
      cached = std::make_shared<CachedObject>(std::move(*object), event.revision);
    }
    if (cached != nullptr) {
      it->second.cache->Apply(event.key.substr(slash + 1), deleted, std::move(cached),
                              event.revision);
    }
  }
  applied_revision_.store(event.revision);
}

absl::Status ResourceStore::CheckNamespace(const std::string& ns) {
  const api::ResourceInfo& ns_info = *scheme_.ByKind("v1", "Namespace");
  ObjectPtr object = cache(ns_info).Get(CacheKey("", ns));
  if (object == nullptr) return api::NotFound({"", "namespaces", "Namespace", ns});
  if (IsTerminating(*object->object())) {
    return api::Forbidden(
        {"", "namespaces", "Namespace", ns},
        absl::StrCat("unable to create new content in namespace ", ns,
                     " because it is being terminated"));
  }
  return absl::OkStatus();
}

absl::Status ResourceStore::ValidateObject(const api::ResourceInfo& info, const Message& object,
                                           const Message* old) {
  api::FieldErrors errors = registry::Validate(object, info.namespaced);
  if (old != nullptr) {
    api::FieldErrors more = registry::ValidateUpdate(object, *old);
    errors.insert(errors.end(), more.begin(), more.end());
  }
  if (errors.empty()) return absl::OkStatus();
  std::vector<api::Cause> causes;
  causes.reserve(errors.size());
  for (const api::FieldError& e : errors) {
    causes.push_back({e.type, e.field, api::FormatFieldError(e)});
  }
  return api::Invalid(Ref(info, api::Meta(object).name()), causes);
}

void ResourceStore::WriteAsync(const api::ResourceInfo& info, Message* object,
                               int64_t expected_revision, bool dry_run, Done done) {
  ObjectMeta* meta = api::MutableMeta(object);
  meta->clear_resource_version();
  std::string bytes = Serialize(*object);
  if (bytes.size() > options_.max_object_bytes) {
    return done(api::RequestEntityTooLarge(absl::StrCat(
        "Request entity too large: ", info.kind, " \"", meta->name(), "\" is ", bytes.size(),
        " bytes; the limit is ", options_.max_object_bytes)));
  }
  if (dry_run) {
    int64_t revision = expected_revision > 0 ? expected_revision : 0;
    meta->set_resource_version(revision ? absl::StrCat(revision) : "");
    std::unique_ptr<Message> copy(object->New());
    copy->CopyFrom(*object);
    return done(std::make_shared<const CachedObject>(std::move(copy), revision));
  }
  // The cache's object for this write is built here, on the request's thread; the commit
  // observer (OnCommit, on the store's single commit thread) only stamps its revision.
  auto cached = std::make_shared<CachedObject>(*object, bytes);
  storage::Write write{StorageKey(info, meta->namespace_(), meta->name()), std::move(bytes),
                       expected_revision, cached};
  store_->CommitAsync(std::move(write), [&info, name = meta->name(), cached,
                                         done = std::move(done)](absl::StatusOr<int64_t> revision) {
    if (!revision.ok()) {
      switch (revision.status().code()) {
        case absl::StatusCode::kAlreadyExists: return done(api::AlreadyExists(Ref(info, name)));
        case absl::StatusCode::kNotFound: return done(api::NotFound(Ref(info, name)));
        case absl::StatusCode::kAborted:
          return done(api::Conflict(Ref(info, name),
                                    "the object has been modified; please apply your changes to "
                                    "the latest version and try again"));
        default: return done(api::ServiceUnavailable(revision.status().message()));
      }
    }
    // The observer stamped it and put it in the cache before this runs (unless there is no
    // observer yet, and then no one else has it).
    if (cached->mod_revision() == 0) cached->Stamp(*revision);
    done(ObjectPtr(cached));
  });
}

absl::StatusOr<ObjectPtr> ResourceStore::Create(const api::ResourceInfo& info,
                                                const std::string& ns,
                                                std::unique_ptr<Message> object, bool dry_run) {
  return Await([&](Done done) { CreateAsync(info, ns, std::move(object), dry_run, done); });
}

void ResourceStore::CreateAsync(const api::ResourceInfo& info, const std::string& ns,
                                std::unique_ptr<Message> object, bool dry_run, Done done) {
  ObjectMeta* meta = api::MutableMeta(object.get());
  if (info.namespaced) {
    if (meta->namespace_().empty()) meta->set_namespace_(ns);
    if (meta->namespace_() != ns) {
      return done(api::BadRequest(
          "the namespace of the provided object does not match the namespace sent on the request"));
    }
  } else {
    meta->clear_namespace_();
  }
  api::SetTypeMeta(info, object.get());
  meta->set_uid(NewUid());
  *meta->mutable_creation_timestamp() = Now();
  meta->set_generation(1);
  meta->clear_resource_version();
  meta->clear_deletion_timestamp();
  meta->clear_deletion_grace_period_seconds();
  meta->clear_self_link();
  PrepareForCreate(object.get());
  registry::SetDefaults(object.get());

  bool generated = meta->name().empty() && !meta->generate_name().empty();
  if (generated) meta->set_name(meta->generate_name() + RandomSuffix());
  // Admission (mutating, then validating) runs before the object's own validation.
  if (auto* pod = dynamic_cast<capstan::core::v1::Pod*>(object.get())) {
    registry::AddDefaultTolerations(pod, options_.default_toleration_seconds);
    absl::Status s = AdmitPodPriority(pod);
    if (!s.ok()) return done(s);
  } else if (auto* pc = dynamic_cast<capstan::scheduling::v1::PriorityClass*>(object.get())) {
    absl::Status s = CheckGlobalDefault(info, *pc, false);
    if (!s.ok()) return done(s);
  }
  absl::Status invalid = ValidateObject(info, *object, nullptr);
  if (!invalid.ok()) return done(invalid);
  if (info.namespaced) {
    absl::Status s = CheckNamespace(meta->namespace_());
    if (!s.ok()) return done(s);
  }
  WriteCreated(info, std::move(object), generated, 0, dry_run, std::move(done));
}

void ResourceStore::WriteCreated(const api::ResourceInfo& info, std::shared_ptr<Message> object,
                                 bool generated, int attempt, bool dry_run, Done done) {
  Message* raw = object.get();
  WriteAsync(info, raw, storage::kMustNotExist, dry_run,
             [this, &info, object = std::move(object), generated, attempt, dry_run,
              done = std::move(done)](absl::StatusOr<ObjectPtr> written) {
               if (written.ok() || !generated || attempt >= kGenerateNameRetries ||
                   written.status().code() != absl::StatusCode::kAlreadyExists) {
                 return done(std::move(written));
               }
               ObjectMeta* meta = api::MutableMeta(object.get());
               meta->set_name(meta->generate_name() + RandomSuffix());
               WriteCreated(info, object, generated, attempt + 1, dry_run, done);
             });
}

absl::StatusOr<ObjectPtr> ResourceStore::Get(const api::ResourceInfo& info, const std::string& ns,
                                             const std::string& name) {
  ObjectPtr object = cache(info).Get(CacheKey(info.namespaced ? ns : "", name));
  if (object == nullptr) return api::NotFound(Ref(info, name));
  return object;
}

namespace {

absl::StatusOr<Selection> MakeSelection(const api::ResourceInfo& info, const std::string& ns,
                                        const std::string& labels, const std::string& fields) {
  Selection selection;
  selection.namespace_ = info.namespaced ? ns : "";
  absl::StatusOr<api::LabelSelector> l = api::LabelSelector::Parse(labels);
  if (!l.ok()) return api::BadRequest(absl::StrCat("unable to parse labelSelector: ", l.status().message()));
  selection.labels = std::move(*l);
  absl::StatusOr<api::FieldSelector> f = api::FieldSelector::Parse(fields);
  if (!f.ok()) return api::BadRequest(absl::StrCat("unable to parse fieldSelector: ", f.status().message()));
  absl::Status supported = f->Validate([&](std::string_view field) {
    if (field == "metadata.name" || field == "metadata.namespace") return true;
    for (const std::string& s : info.selectable_fields) {
      if (s == field) return true;
    }
    return false;
  });
  if (!supported.ok()) return api::BadRequest(supported.message());
  selection.fields = std::move(*f);
  return selection;
}

absl::StatusOr<int64_t> ParseResourceVersion(const std::string& rv) {
  if (rv.empty()) return 0;
  int64_t value;
  if (!absl::SimpleAtoi(rv, &value) || value < 0) {
    return api::BadRequest(absl::StrCat("invalid resource version \"", rv, "\""));
  }
  return value;
}

}  // namespace

absl::StatusOr<ListResult> ResourceStore::List(const api::ResourceInfo& info, const std::string& ns,
                                               const ListOptions& options) {
  absl::StatusOr<Selection> selection =
      MakeSelection(info, ns, options.label_selector, options.field_selector);
  if (!selection.ok()) return selection.status();
  absl::StatusOr<int64_t> at = ParseResourceVersion(options.resource_version);
  if (!at.ok()) return at.status();
  WatchCache& c = cache(info);
  if (*at > c.revision() && *at > revision()) {
    return absl::DeadlineExceededError(absl::StrCat(
        "Too large resource version: ", *at, ", current: ", revision()));
  }
  absl::StatusOr<ListResult> result = c.List(*selection, *at, options.limit, options.continue_token);
  if (result.ok() && options.resource_version.empty() && options.continue_token.empty()) {
    // A most-recent list reports the newest revision of the whole store, as etcd's header does.
    result->revision = std::max(result->revision, revision());
  }
  return result;
}

ObjectPtr ResourceStore::DefaultPriorityClass() {
  const api::ResourceInfo& pc_info = *scheme_.ByKind("scheduling.k8s.io/v1", "PriorityClass");
  absl::StatusOr<Selection> all = MakeSelection(pc_info, "", "", "");
  if (!all.ok()) return nullptr;
  absl::StatusOr<ListResult> classes = cache(pc_info).List(*all, 0, 0, "");
  if (!classes.ok()) return nullptr;
  ObjectPtr best;
  int32_t best_value = 0;
  for (const ObjectPtr& item : classes->items) {
    std::shared_ptr<const Message> decoded = item->object();
    const auto& pc = static_cast<const capstan::scheduling::v1::PriorityClass&>(*decoded);
    if (!pc.global_default()) continue;
    // Should several be marked (they were created concurrently), the lowest value wins, as in
    // Kubernetes.
    if (best == nullptr || pc.value() < best_value) {
      best = item;
      best_value = pc.value();
    }
  }
  return best;
}

absl::Status ResourceStore::AdmitPodPriority(capstan::core::v1::Pod* pod) {
  capstan::core::v1::PodSpec* spec = pod->mutable_spec();
  int32_t priority = 0;
  std::optional<std::string> policy;
  const api::ResourceInfo& pod_info = *scheme_.ByKind("v1", "Pod");
  const std::string& pod_name = pod->metadata().name();
  if (spec->priority_class_name().empty()) {
    ObjectPtr found = DefaultPriorityClass();
    if (found != nullptr) {
      std::shared_ptr<const Message> decoded = found->object();
      const auto& pc = static_cast<const capstan::scheduling::v1::PriorityClass&>(*decoded);
      spec->set_priority_class_name(pc.metadata().name());
      priority = pc.value();
      policy = pc.has_preemption_policy() ? pc.preemption_policy() : kDefaultPreemptionPolicy;
    }
  } else {
    const api::ResourceInfo& pc_info = *scheme_.ByKind("scheduling.k8s.io/v1", "PriorityClass");
    ObjectPtr found = cache(pc_info).Get(CacheKey("", spec->priority_class_name()));
    if (found == nullptr) {
      return api::Forbidden(Ref(pod_info, pod_name),
                            absl::StrCat("no PriorityClass with name ",
                                         spec->priority_class_name(), " was found"));
    }
    std::shared_ptr<const Message> decoded = found->object();
    const auto& pc = static_cast<const capstan::scheduling::v1::PriorityClass&>(*decoded);
    priority = pc.value();
    policy = pc.has_preemption_policy() ? pc.preemption_policy() : kDefaultPreemptionPolicy;
  }
  if (spec->has_priority() && spec->priority() != priority) {
    return api::Forbidden(
        Ref(pod_info, pod_name),
        absl::StrCat("the integer value of priority (", spec->priority(),
                     ") must not be provided in pod spec; priority admission controller "
                     "computed ", priority, " from the given PriorityClass name"));
  }
  spec->set_priority(priority);
  if (policy.has_value()) {
    if (spec->has_preemption_policy() && spec->preemption_policy() != *policy) {
      return api::Forbidden(
          Ref(pod_info, pod_name),
          absl::StrCat("the string value of PreemptionPolicy (", spec->preemption_policy(),
                       ") must not be provided in pod spec; priority admission controller "
                       "computed ", *policy, " from the given PriorityClass name"));
    }
    spec->set_preemption_policy(*policy);
  }
  return absl::OkStatus();
}

absl::Status ResourceStore::CheckGlobalDefault(
    const api::ResourceInfo& info, const capstan::scheduling::v1::PriorityClass& priority_class,
    bool update) {
  if (!priority_class.global_default()) return absl::OkStatus();
  ObjectPtr found = DefaultPriorityClass();
  if (found == nullptr) return absl::OkStatus();
  const std::string& existing = found->meta().name();
  if (update && existing == priority_class.metadata().name()) return absl::OkStatus();
  return api::Forbidden(Ref(info, priority_class.metadata().name()),
                        absl::StrCat("PriorityClass ", existing,
                                     " is already marked as default. Only one default can exist"));
}

void ResourceStore::RemoveFromStore(const api::ResourceInfo& info, std::unique_ptr<Message> last,
                                    int64_t expected_revision, Done done) {
  const ObjectMeta& meta = api::Meta(*last);
  std::string name = meta.name();
  std::shared_ptr<Message> deleted(std::move(last));
  store_->CommitAsync(
      {StorageKey(info, meta.namespace_(), name), std::nullopt, expected_revision},
      [&info, name, deleted, done = std::move(done)](absl::StatusOr<int64_t> rev) {
        if (rev.ok()) {
          std::unique_ptr<Message> copy(deleted->New());
          copy->CopyFrom(*deleted);
          api::MutableMeta(copy.get())->set_resource_version(absl::StrCat(*rev));
          return done(std::make_shared<const CachedObject>(std::move(copy), *rev));
        }
        switch (rev.status().code()) {
          case absl::StatusCode::kNotFound: return done(api::NotFound(Ref(info, name)));
          case absl::StatusCode::kAborted:
            return done(api::Conflict(Ref(info, name), "the object has been modified"));
          default: return done(api::ServiceUnavailable(rev.status().message()));
        }
      });
}

void ResourceStore::UpdateWith(const api::ResourceInfo& info, const std::string& ns,
                               const std::string& name, Mutate mutate, UpdateScope scope,
                               bool dry_run, Done done) {
  const bool status = scope == UpdateScope::kStatus;
  if (status && !info.HasStatus()) {
    return done(api::MethodNotSupported(Ref(info, name), "status update"));
  }
  std::string key = CacheKey(info.namespaced ? ns : "", name);
  ObjectPtr current = cache(info).Get(key);
  if (current == nullptr) return done(api::NotFound(Ref(info, name)));
  absl::StatusOr<std::unique_ptr<Message>> changed = mutate(*current);
  if (!changed.ok()) return done(changed.status());
  std::unique_ptr<Message> next = std::move(*changed);
  const std::shared_ptr<const Message> old_object = current->object();
  const Message& old = *old_object;
  const ObjectMeta& old_meta = api::Meta(old);
  ObjectMeta* meta = api::MutableMeta(next.get());

  // A client that names a resourceVersion gets Conflict when it is stale; one that does not gets
  // an unconditional update (retried here on races), as Kubernetes allows for built-in kinds.
  bool conditional = !meta->resource_version().empty();
  if (conditional && meta->resource_version() != old_meta.resource_version()) {
    return done(api::Conflict(Ref(info, name),
                              "the object has been modified; please apply your changes to the "
                              "latest version and try again"));
  }
  if (!meta->name().empty() && meta->name() != name) {
    return done(api::BadRequest("the name of the object does not match the name on the URL"));
  }
  if (info.namespaced && !meta->namespace_().empty() && meta->namespace_() != ns) {
    return done(api::BadRequest(
        "the namespace of the provided object does not match the namespace sent on the request"));
  }

  if (status) {
    // The status subresource changes status only: everything else comes from the stored object.
    std::unique_ptr<Message> merged(old.New());
    merged->CopyFrom(old);
    const auto* field = StatusField(old);
    merged->GetReflection()->ClearField(merged.get(), field);
    if (next->GetReflection()->HasField(*next, field)) {
      merged->GetReflection()->MutableMessage(merged.get(), field)->CopyFrom(
          next->GetReflection()->GetMessage(*next, field));
    }
    next = std::move(merged);
    meta = api::MutableMeta(next.get());
  } else if (scope == UpdateScope::kMain) {
    // Server-owned metadata is kept; status changes only through the status subresource.
    meta->set_name(name);
    meta->set_namespace_(old_meta.namespace_());
    meta->set_uid(old_meta.uid());
    *meta->mutable_creation_timestamp() = old_meta.creation_timestamp();
    if (old_meta.has_deletion_timestamp()) {
      *meta->mutable_deletion_timestamp() = old_meta.deletion_timestamp();
    } else {
      meta->clear_deletion_timestamp();
    }
    if (old_meta.has_deletion_grace_period_seconds()) {
      meta->set_deletion_grace_period_seconds(old_meta.deletion_grace_period_seconds());
    } else {
      meta->clear_deletion_grace_period_seconds();
    }
    meta->set_generation(old_meta.generation());
    if (info.HasStatus()) {
      const auto* field = StatusField(old);
      next->GetReflection()->ClearField(next.get(), field);
      if (old.GetReflection()->HasField(old, field)) {
        next->GetReflection()->MutableMessage(next.get(), field)->CopyFrom(
            old.GetReflection()->GetMessage(old, field));
      }
    }
    api::SetTypeMeta(info, next.get());
    registry::SetDefaults(next.get());
    if (auto* pod = dynamic_cast<capstan::core::v1::Pod*>(next.get())) {
      // Admission runs on updates too, as Kubernetes' DefaultTolerationSeconds does: adding
      // tolerations is an update the pod rules allow.
      registry::AddDefaultTolerations(pod, options_.default_toleration_seconds);
      // Priority admission set these on create: an update that leaves them out keeps them
      // (changing them is refused by the pod update rules).
      const auto& old_spec = static_cast<const capstan::core::v1::Pod&>(old).spec();
      if (!pod->spec().has_priority() && old_spec.has_priority()) {
        pod->mutable_spec()->set_priority(old_spec.priority());
      }
      if (!pod->spec().has_preemption_policy() && old_spec.has_preemption_policy()) {
        pod->mutable_spec()->set_preemption_policy(old_spec.preemption_policy());
      }
    }
    if (DesiredState(*next) != DesiredState(old)) meta->set_generation(old_meta.generation() + 1);
    if (old_meta.has_deletion_timestamp()) {
      for (const auto& f : meta->finalizers()) {
        if (!HasFinalizer(old_meta, f)) {
          return done(api::Forbidden(
              Ref(info, name), "no new finalizers can be added if the object is being deleted"));
        }
      }
    }
  }
  meta->set_resource_version(old_meta.resource_version());
  // A binding sets fields a user's update may not (spec.nodeName) on an object that was valid,
  // with a node name BindAsync validated: the update rules do not apply, and the whole object
  // needs no second validation (a binding is the scheduler's hot path).
  if (auto* pc = dynamic_cast<capstan::scheduling::v1::PriorityClass*>(next.get())) {
    absl::Status s = CheckGlobalDefault(info, *pc, true);
    if (!s.ok()) return done(s);
  }
  if (scope != UpdateScope::kBinding) {
    absl::Status invalid = ValidateObject(info, *next, &old);
    if (!invalid.ok()) return done(invalid);
  }

  // An unconditional update that lost a race to another writer is tried again on the fresher
  // object, for as long as it keeps losing, as Kubernetes' GuaranteedUpdate does: every round
  // lets one of the racing writers through, so they all finish.
  Done retry = [this, &info, ns, name, mutate, scope, dry_run, conditional,
                done](absl::StatusOr<ObjectPtr> written) {
    if (written.ok() || written.status().code() != absl::StatusCode::kAborted || conditional) {
      return done(std::move(written));
    }
    UpdateWith(info, ns, name, mutate, scope, dry_run, done);
  };
  if (ReadyToRemove(*next)) {
    // The last finalizer is gone: the deletion that was waiting for it completes now.
    if (dry_run) return done(current);
    return RemoveFromStore(info, std::move(next), current->mod_revision(), std::move(retry));
  }
  if (scope != UpdateScope::kBinding && Serialize(old) == Serialize(*next)) {
    return done(current);  // a no-op update writes nothing and keeps the resourceVersion
  }
  WriteAsync(info, next.get(), current->mod_revision(), dry_run, retry);
}

absl::StatusOr<ObjectPtr> ResourceStore::Update(const api::ResourceInfo& info,
                                                const std::string& ns,
                                                std::unique_ptr<Message> object, bool status,
                                                bool dry_run) {
  return Await(
      [&](Done done) { UpdateAsync(info, ns, std::move(object), status, dry_run, done); });
}

void ResourceStore::UpdateAsync(const api::ResourceInfo& info, const std::string& ns,
                                std::unique_ptr<Message> object, bool status, bool dry_run,
                                Done done) {
  std::string name = api::Meta(*object).name();
  if (name.empty()) {
    return done(api::Invalid(Ref(info, name),
                             {{"FieldValueRequired", "metadata.name",
                               "metadata.name: Required value: name is required"}}));
  }
  std::shared_ptr<Message> given(std::move(object));
  UpdateWith(
      info, ns, name,
      [given](const CachedObject&) -> absl::StatusOr<std::unique_ptr<Message>> {
        std::unique_ptr<Message> copy(given->New());
        copy->CopyFrom(*given);
        return copy;
      },
      status ? UpdateScope::kStatus : UpdateScope::kMain, dry_run, std::move(done));
}

absl::StatusOr<ObjectPtr> ResourceStore::Patch(const api::ResourceInfo& info,
                                               const std::string& ns, const std::string& name,
                                               PatchType type, const std::string& patch,
                                               bool status, bool dry_run) {
  return Await(
      [&](Done done) { PatchAsync(info, ns, name, type, patch, status, dry_run, done); });
}

void ResourceStore::PatchAsync(const api::ResourceInfo& info, const std::string& ns,
                               const std::string& name, PatchType type, const std::string& patch,
                               bool status, bool dry_run, Done done) {
  auto parsed = std::make_shared<nlohmann::json>(nlohmann::json::parse(patch, nullptr, false));
  const nlohmann::json& patch_json = *parsed;
  if (patch_json.is_discarded()) return done(api::BadRequest("the patch is not valid JSON"));
  if (type == PatchType::kMerge && !patch_json.is_object()) {
    return done(api::BadRequest("a merge patch must be a JSON object"));
  }
  if (type == PatchType::kJson && !patch_json.is_array()) {
    return done(api::BadRequest("a JSON patch must be an array of operations"));
  }
  UpdateWith(
      info, ns, name,
      [this, &info, name, type, parsed](
          const CachedObject& current) -> absl::StatusOr<std::unique_ptr<Message>> {
        const nlohmann::json& patch_json = *parsed;
        nlohmann::json doc = api::MessageToJson(*current.object());
        // The patch decides whether the update is conditional: keep its resourceVersion only.
        doc["metadata"].erase("resourceVersion");
        if (type == PatchType::kMerge) {
          doc.merge_patch(patch_json);
        } else {
          try {
            doc = doc.patch(patch_json);
          } catch (const nlohmann::json::exception& e) {
            return api::Invalid(Ref(info, name), {{"FieldValueInvalid", "", absl::StrCat(
                "the server rejected our request due to an error in our request: ", e.what())}});
          }
        }
        std::unique_ptr<Message> next = scheme_.New(info);
        absl::Status s = api::JsonToMessage(doc, next.get());
        if (!s.ok()) {
          return api::BadRequest(absl::StrCat("decoding ", info.kind, ": ", s.message()));
        }
        return next;
      },
      status ? UpdateScope::kStatus : UpdateScope::kMain, dry_run, std::move(done));
}

absl::StatusOr<ObjectPtr> ResourceStore::Bind(const std::string& ns, const std::string& pod_name,
                                              const capstan::core::v1::Binding& binding,
                                              bool dry_run) {
  return Await([&](Done done) { BindAsync(ns, pod_name, binding, dry_run, done); });
}

void ResourceStore::BindAsync(const std::string& ns, const std::string& pod_name,
                              const capstan::core::v1::Binding& binding, bool dry_run,
                              Done done) {
  const api::ResourceInfo& info = *scheme_.ByKind("v1", "Pod");
  // Kubernetes' ValidatePodBinding, plus the node name's format: the bound pod is not validated
  // again, and its spec.nodeName must stay valid.
  const std::string& kind = binding.target().kind();
  if (!kind.empty() && kind != "Node") {
    return done(api::Invalid(
        Ref(info, pod_name),
        {{"FieldValueNotSupported", "target.kind",
          absl::StrCat("target.kind: Unsupported value: \"", kind,
                       "\": supported values: \"Node\", \"<empty>\"")}}));
  }
  if (binding.target().name().empty()) {
    return done(api::Invalid(Ref(info, pod_name),
                             {{"FieldValueRequired", "target.name",
                               "target.name: Required value: the node to bind to"}}));
  }
  std::vector<std::string> bad_name = api::IsDNS1123Subdomain(binding.target().name());
  if (!bad_name.empty()) {
    return done(api::Invalid(
        Ref(info, pod_name),
        {{"FieldValueInvalid", "target.name",
          absl::StrCat("target.name: Invalid value: \"", binding.target().name(), "\": ",
                       bad_name.front())}}));
  }
  if (!binding.metadata().name().empty() && binding.metadata().name() != pod_name) {
    return done(api::BadRequest("the name of the binding does not match the name of the pod"));
  }
  UpdateWith(
      info, ns, pod_name,
      [&info, pod_name, binding](
          const CachedObject& current) -> absl::StatusOr<std::unique_ptr<Message>> {
        auto pod = std::make_unique<capstan::core::v1::Pod>(
            static_cast<const capstan::core::v1::Pod&>(*current.object()));
        if (!binding.metadata().uid().empty() && binding.metadata().uid() != pod->metadata().uid()) {
          return api::Conflict(Ref(info, pod_name), "the pod's uid does not match the binding's");
        }
        if (!pod->spec().node_name().empty()) {
          return api::Conflict(Ref(info, pod_name),
                               absl::StrCat("pod ", pod_name, " is already assigned to node \"",
                                            pod->spec().node_name(), "\""));
        }
        if (pod->metadata().has_deletion_timestamp()) {
          return api::Conflict(Ref(info, pod_name), "the pod is being deleted");
        }
        pod->mutable_spec()->set_node_name(binding.target().name());
        capstan::core::v1::PodCondition* scheduled = nullptr;
        for (auto& c : *pod->mutable_status()->mutable_conditions()) {
          if (c.type() == "PodScheduled") scheduled = &c;
        }
        if (scheduled == nullptr) scheduled = pod->mutable_status()->add_conditions();
        scheduled->set_type("PodScheduled");
        scheduled->set_status("True");
        scheduled->clear_reason();
        scheduled->clear_message();
        *scheduled->mutable_last_transition_time() = Now();
        // Unconditional: an unrelated concurrent write is retried, and the emptiness check above
        // runs again on the fresh object.
        pod->mutable_metadata()->clear_resource_version();
        return pod;
      },
      UpdateScope::kBinding, dry_run, std::move(done));
}

absl::StatusOr<ObjectPtr> ResourceStore::Delete(const api::ResourceInfo& info,
                                                const std::string& ns, const std::string& name,
                                                const DeleteOptions& options) {
  return Await([&](Done done) { DeleteAsync(info, ns, name, options, done); });
}

void ResourceStore::DeleteAsync(const api::ResourceInfo& info, const std::string& ns,
                                const std::string& name, const DeleteOptions& options,
                                Done done) {
  const std::string& policy = options.propagation_policy;
  if (!policy.empty() && policy != "Orphan" && policy != "Background" && policy != "Foreground") {
    return done(api::Invalid(
        Ref(info, name),
        {{"FieldValueNotSupported", "propagationPolicy",
          absl::StrCat("propagationPolicy: Unsupported value: \"", policy,
                       "\": supported values: \"Foreground\", \"Background\", \"Orphan\"")}}));
  }
  DeleteAttempt(info, ns, name, options, std::move(done));
}

void ResourceStore::DeleteAttempt(const api::ResourceInfo& info, const std::string& ns,
                                  const std::string& name, const DeleteOptions& options,
                                  Done done) {
  std::string key = CacheKey(info.namespaced ? ns : "", name);
  const std::string& policy = options.propagation_policy;
  ObjectPtr current = cache(info).Get(key);
  if (current == nullptr) return done(api::NotFound(Ref(info, name)));
  const std::shared_ptr<const Message> old_object = current->object();
  const ObjectMeta& old_meta = api::Meta(*old_object);
  if (!options.precondition_uid.empty() && options.precondition_uid != old_meta.uid()) {
    return done(api::Conflict(Ref(info, name),
                              absl::StrCat("Precondition failed: UID in precondition: ",
                                           options.precondition_uid,
                                           ", UID in object meta: ", old_meta.uid())));
  }
  if (!options.precondition_resource_version.empty() &&
      options.precondition_resource_version != old_meta.resource_version()) {
    return done(api::Conflict(Ref(info, name),
                              absl::StrCat("Precondition failed: ResourceVersion in precondition: ",
                                           options.precondition_resource_version,
                                           ", ResourceVersion in object meta: ",
                                           old_meta.resource_version())));
  }

  std::unique_ptr<Message> next(old_object->New());
  next->CopyFrom(*old_object);
  ObjectMeta* meta = api::MutableMeta(next.get());

  // How long the object lingers: pods bound to a node get their grace period so the node agent
  // can stop them; everything else goes at once unless a finalizer holds it.
  int64_t grace = 0;
  if (auto* pod = dynamic_cast<capstan::core::v1::Pod*>(next.get())) {
    grace = options.grace_period_seconds.value_or(
        pod->spec().has_termination_grace_period_seconds()
            ? pod->spec().termination_grace_period_seconds()
            : 30);
    const std::string& phase = pod->status().phase();
    if (pod->spec().node_name().empty() || phase == "Succeeded" || phase == "Failed") grace = 0;
    if (grace < 0) grace = 0;
  }
  if (policy == "Orphan" && !HasFinalizer(*meta, "orphan")) meta->add_finalizers("orphan");
  if (policy == "Foreground" && !HasFinalizer(*meta, "foregroundDeletion")) {
    meta->add_finalizers("foregroundDeletion");
  }
  auto* ns_object = dynamic_cast<capstan::core::v1::Namespace*>(next.get());
  bool lingers = meta->finalizers_size() > 0 || grace > 0 ||
                 (ns_object != nullptr && ns_object->spec().finalizers_size() > 0);

  // A deletion that lost a race to another writer is tried again on the fresher object (until
  // it wins, as an unconditional update is).
  Done retry = [this, &info, ns, name, options, done](absl::StatusOr<ObjectPtr> result) {
    if (result.ok() || result.status().code() != absl::StatusCode::kAborted) {
      return done(std::move(result));
    }
    DeleteAttempt(info, ns, name, options, done);
  };
  if (!lingers) {
    if (options.dry_run) return done(current);
    return RemoveFromStore(info, std::move(next), current->mod_revision(), std::move(retry));
  }
  if (old_meta.has_deletion_timestamp()) {
    // Already terminating: a shorter grace period may be asked for, nothing else changes.
    if (!meta->has_deletion_grace_period_seconds() ||
        grace >= meta->deletion_grace_period_seconds()) {
      if (Serialize(*next) == Serialize(*old_object)) return done(current);
    }
  }
  capstan::meta::v1::Time when = Now();
  when.set_seconds(when.seconds() + grace);
  if (!old_meta.has_deletion_timestamp() || grace < meta->deletion_grace_period_seconds()) {
    *meta->mutable_deletion_timestamp() = when;
    meta->set_deletion_grace_period_seconds(grace);
  }
  if (ns_object != nullptr) ns_object->mutable_status()->set_phase("Terminating");
  WriteAsync(info, next.get(), current->mod_revision(), options.dry_run, retry);
}

absl::StatusOr<std::shared_ptr<Watcher>> ResourceStore::Watch(const api::ResourceInfo& info,
                                                              const std::string& ns,
                                                              const WatchOptions& options,
                                                              std::function<void()> notify) {
  absl::StatusOr<Selection> selection =
      MakeSelection(info, ns, options.label_selector, options.field_selector);
  if (!selection.ok()) return selection.status();
  absl::StatusOr<int64_t> after = ParseResourceVersion(options.resource_version);
  if (!after.ok()) return after.status();
  // Unset or "0": start with the current state as ADDED events (Kubernetes' legacy semantics).
  bool initial = options.send_initial_events || *after == 0;
  std::string prefix = info.QualifiedResource() + "/";
  HistoryReader history = [&](int64_t from, const std::function<bool(CacheEvent)>& fn) {
    absl::Status decode_error;
    bool more = true;
    absl::Status s = store_->ReadLog(from, [&](const storage::Event& e) {
      if (!more || e.key.compare(0, prefix.size(), prefix) != 0 || !decode_error.ok()) return;
      auto object = Decode(info, e.value, e.revision);
      if (!object.ok()) {
        decode_error = object.status();
        return;
      }
      CacheEvent event{WatchEventType::kAdded, e.revision,
                       std::make_shared<CachedObject>(std::move(*object), e.revision), nullptr};
      if (e.type == storage::EventType::kDelete) event.type = WatchEventType::kDeleted;
      if (!e.created) {
        if (event.type == WatchEventType::kAdded) event.type = WatchEventType::kModified;
        auto prev = Decode(info, e.prev_value, e.revision);
        if (prev.ok()) event.prev = std::make_shared<CachedObject>(std::move(*prev), e.revision);
      }
      more = fn(std::move(event));
    });
    if (s.code() == absl::StatusCode::kOutOfRange) {
      return api::Expired(absl::StrCat("too old resource version: ", from, " (",
                                       store_->CompactedRevision(), ")"));
    }
    return s.ok() ? decode_error : s;
  };
  return cache(info).Watch(std::move(*selection), *after, initial, options.allow_bookmarks,
                           options.capacity, std::move(notify), history);
}

void ResourceStore::StopWatch(const api::ResourceInfo& info,
                              const std::shared_ptr<Watcher>& watcher) {
  cache(info).StopWatch(watcher);
}

void ResourceStore::Bookmark() {
  int64_t revision = applied_revision_.load();
  for (auto& [name, resource] : resources_) {
    resource.cache->Advance(revision);
    resource.cache->Bookmark();
  }
}

void ResourceStore::CloseWatches(absl::Status why) {
  for (auto& [name, resource] : resources_) resource.cache->CloseAll(why);
}

}  // namespace capstan::apiserver
