#include "services/node-agent/runtime/containerd_runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "github.com/containerd/containerd/api/events/task.pb.h"
#include "github.com/containerd/containerd/api/services/containers/v1/containers.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/content/v1/content.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/diff/v1/diff.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/events/v1/events.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/images/v1/images.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/leases/v1/leases.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/tasks/v1/tasks.grpc.pb.h"
#include "github.com/containerd/containerd/api/services/version/v1/version.grpc.pb.h"
#include "google/protobuf/empty.pb.h"
#include "grpcpp/grpcpp.h"
#include "nlohmann/json.hpp"
#include "services/node-agent/runtime/image_content.h"
#include "services/node-agent/runtime/image_reference.h"
#include "services/node-agent/runtime/oci_spec.h"
#include "services/node-agent/runtime/registry_client.h"
#include "services/node-agent/runtime/tar_file.h"

namespace capstan::nodeagent {

namespace containers = ::containerd::services::containers::v1;
namespace content = ::containerd::services::content::v1;
namespace diff = ::containerd::services::diff::v1;
namespace events = ::containerd::services::events::v1;
namespace images = ::containerd::services::images::v1;
namespace leases = ::containerd::services::leases::v1;
namespace snapshots = ::containerd::services::snapshots::v1;
namespace tasks = ::containerd::services::tasks::v1;
namespace version = ::containerd::services::version::v1;
namespace task_types = ::containerd::v1::types;

class ContainerdStubs {
 public:
  explicit ContainerdStubs(const std::shared_ptr<grpc::Channel>& channel)
      : containers(containers::Containers::NewStub(channel)),
        content(content::Content::NewStub(channel)),
        diff(diff::Diff::NewStub(channel)),
        events(events::Events::NewStub(channel)),
        images(images::Images::NewStub(channel)),
        leases(leases::Leases::NewStub(channel)),
        snapshots(snapshots::Snapshots::NewStub(channel)),
        tasks(tasks::Tasks::NewStub(channel)),
        version(version::Version::NewStub(channel)) {}

  std::unique_ptr<containers::Containers::Stub> containers;
  std::unique_ptr<content::Content::Stub> content;
  std::unique_ptr<diff::Diff::Stub> diff;
  std::unique_ptr<events::Events::Stub> events;
  std::unique_ptr<images::Images::Stub> images;
  std::unique_ptr<leases::Leases::Stub> leases;
  std::unique_ptr<snapshots::Snapshots::Stub> snapshots;
  std::unique_ptr<tasks::Tasks::Stub> tasks;
  std::unique_ptr<version::Version::Stub> version;
};

namespace {

constexpr char kRuncRuntime[] = "io.containerd.runc.v2";

// Labels only this runtime reads (stripped from ContainerInfo::labels).
constexpr char kPrivateLabelPrefix[] = "io.capstan.runtime.";
constexpr char kLabelLogPath[] = "io.capstan.runtime.log-path";
constexpr char kLabelStartedAt[] = "io.capstan.runtime.started-at";
constexpr char kLabelOomKilled[] = "io.capstan.runtime.oom-killed";

// Our own event topic: seeing it on the stream proves the subscription is live (see SetExitHandler).
constexpr char kSyncTopic[] = "/capstan/runtime/sync";

constexpr absl::Duration kCallTimeout = absl::Seconds(30);
// Writing a layer and applying it can take as long as the download; curl gives up on a stalled
// registry by itself, so this only bounds a stuck containerd.
constexpr absl::Duration kBlobTimeout = absl::Hours(1);
constexpr absl::Duration kKillWait = absl::Seconds(30);
constexpr int64_t kMaxDocument = 8 << 20;  // manifests, indexes, configs
constexpr size_t kWriteChunk = 1 << 20;
constexpr size_t kMaxExecOutput = 4096;

absl::Status FromGrpc(const grpc::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat(what, ": ", s.error_message()));
}

bool IsNotFound(const grpc::Status& s) { return s.error_code() == grpc::StatusCode::NOT_FOUND; }

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

::containerd::types::Descriptor ToProto(const Descriptor& d) {
  ::containerd::types::Descriptor out;
  out.set_media_type(d.media_type);
  out.set_digest(d.digest);
  out.set_size(d.size);
  return out;
}

// Container ids become file names (bundle, snapshot, cgroup), so containerd only takes these.
absl::Status ValidateId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 76 && absl::ascii_isalnum(id[0]);
  for (char c : id) ok = ok && (absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-');
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "container id \"", id, "\": want 1-76 of [a-zA-Z0-9_.-], starting with a letter or digit"));
  }
  return absl::OkStatus();
}

// The shim opens the log itself, but with the mode it chooses; created here it is ours.
absl::Status EnsureLogFile(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("log file ", path, ": ", strerror(errno)));
  close(fd);
  return absl::OkStatus();
}

std::string FileUri(const std::string& path) { return path.empty() ? "" : "file://" + path; }

// The names an image may have in containerd: its normalised reference first, then the string as
// given (images loaded by other tools under names that are not normalised).
std::vector<std::string> CandidateNames(const std::string& image) {
  std::vector<std::string> names;
  absl::StatusOr<ImageReference> ref = ParseImageReference(image);
  if (ref.ok()) names.push_back(ref->String());
  if (names.empty() || names[0] != image) names.push_back(image);
  return names;
}

// Whether the kernel OOM-killed a process of the cgroup at cgroups_path: "oom_kill N" in cgroup
// v1's memory.oom_control or v2's memory.events (this process must see the host's cgroupfs).
bool CgroupSawOomKill(const std::string& cgroups_path) {
  for (const std::string& file : {"/sys/fs/cgroup/memory" + cgroups_path + "/memory.oom_control",
                                  "/sys/fs/cgroup" + cgroups_path + "/memory.events"}) {
    std::ifstream in(file);
    std::string key;
    int64_t value;
    while (in >> key >> value) {
      if (key == "oom_kill") return value > 0;
    }
  }
  return false;
}

// containerd passes on a deadline that expires inside it as UNKNOWN "context deadline exceeded".
absl::Status WaitStatus(const grpc::Status& s, absl::Time deadline, absl::string_view what) {
  if (!s.ok() && (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                  absl::Now() >= deadline ||
                  absl::StrContains(s.error_message(), "deadline exceeded"))) {
    return absl::DeadlineExceededError(absl::StrCat(what, ": not exited in time"));
  }
  return FromGrpc(s, what);
}

// Collects an exec's output through a FIFO the shim writes stdout and stderr to. (A file:// URI
// would be simpler, but containerd 1.6's shim closes a shared file when stdout ends, losing
// stderr written just before the exit.) Keeps the first kMaxExecOutput bytes, drains the rest so
// the process never blocks on a full pipe.
class FifoReader {
 public:
  static absl::StatusOr<std::unique_ptr<FifoReader>> Create() {
    std::string dir = (std::filesystem::temp_directory_path() / "capstan-exec-XXXXXX").string();
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::InternalError(absl::StrCat("exec output directory: ", strerror(errno)));
    }
    std::unique_ptr<FifoReader> reader(new FifoReader(dir));
    if (mkfifo(reader->path().c_str(), 0600) != 0) {
      return absl::InternalError(absl::StrCat("exec output fifo: ", strerror(errno)));
    }
    // Non-blocking: opening for reading must not wait for the shim to open it for writing.
    reader->fd_ = open(reader->path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (reader->fd_ < 0) return absl::InternalError(absl::StrCat("exec output fifo: ", strerror(errno)));
    reader->thread_ = std::thread([r = reader.get()] { r->Run(); });
    return reader;
  }

  ~FifoReader() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    unlink(path().c_str());
    rmdir(dir_.c_str());
  }

  std::string path() const { return dir_ + "/output"; }

  // Called once the process has started: the shim holds the FIFO open for writing from then
  // on, so end-of-file means it has copied everything.
  void WritersOpened() {
    absl::MutexLock lock(&mu_);
    writers_opened_ = true;
  }

  // The output, once the shim has closed the FIFO (or after timeout: what came until then).
  std::string Finish(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&eof_), timeout);
    stop_ = true;
    return output_;
  }

 private:
  explicit FifoReader(std::string dir) : dir_(std::move(dir)) {}

  void Run() {
    char buf[4096];
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      poll(&p, 1, 20);
      ssize_t n = read(fd_, buf, sizeof(buf));
      absl::MutexLock lock(&mu_);
      if (n > 0) {
        output_.append(buf, std::min(static_cast<size_t>(n), kMaxExecOutput - output_.size()));
      } else if (n == 0 && writers_opened_) {
        eof_ = true;
        return;
      }
      if (stop_) return;
    }
  }

  const std::string dir_;
  int fd_ = -1;
  std::thread thread_;
  absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
  bool writers_opened_ ABSL_GUARDED_BY(mu_) = false;
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
};

// A name unique enough for leases, extraction snapshots and exec processes.
std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(getpid(), "-", absl::ToUnixNanos(absl::Now()), "-", counter++);
}

}  // namespace

// --- private types -------------------------------------------------------------------------------

struct ContainerdRuntime::ResolvedImage {
  std::string name;       // as recorded in containerd
  std::string id;         // the config digest (Kubernetes' image id)
  ImageConfig config;
  std::string top_chain;  // the snapshot a container's rootfs is prepared from
};

// Where blobs come from: a registry or a tar. Reads one blob, in pieces, into sink.
struct ContainerdRuntime::BlobSource {
  std::function<absl::Status(const Descriptor&, const std::function<absl::Status(absl::string_view)>&)>
      read;

  absl::StatusOr<std::string> ReadAll(const Descriptor& d) const {
    std::string out;
    absl::Status s = read(d, [&out](absl::string_view piece) {
      if (out.size() + piece.size() > static_cast<size_t>(kMaxDocument)) {
        return absl::FailedPreconditionError("document larger than 8 MiB");
      }
      out.append(piece.data(), piece.size());
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
    return out;
  }
};

struct ContainerdRuntime::TaskState {
  task_types::Status status = task_types::UNKNOWN;
  uint32_t exit_status = 0;
  absl::Time exited_at = absl::InfinitePast();
};

// A containerd lease: what is made under it (content, snapshots) is kept by the garbage collector
// until the lease is deleted; the expiry label bounds what a crash in between leaves behind.
class ContainerdRuntime::Lease {
 public:
  static absl::StatusOr<std::unique_ptr<Lease>> Create(ContainerdRuntime* runtime) {
    leases::CreateRequest request;
    request.set_id(absl::StrCat("capstan-", UniqueSuffix()));
    (*request.mutable_labels())["containerd.io/gc.expire"] =
        absl::FormatTime(absl::RFC3339_sec, absl::Now() + absl::Hours(1), absl::UTCTimeZone());
    leases::CreateResponse response;
    auto context = runtime->Context(kCallTimeout);
    absl::Status s = FromGrpc(runtime->stubs_->leases->Create(context.get(), request, &response),
                              "containerd: create lease");
    if (!s.ok()) return s;
    return std::unique_ptr<Lease>(new Lease(runtime, request.id()));
  }
  ~Lease() {
    leases::DeleteRequest request;
    request.set_id(id_);
    google::protobuf::Empty empty;
    auto context = runtime_->Context(kCallTimeout);
    runtime_->stubs_->leases->Delete(context.get(), request, &empty);  // else it expires
  }
  const std::string& id() const { return id_; }

 private:
  Lease(ContainerdRuntime* runtime, std::string id) : runtime_(runtime), id_(std::move(id)) {}
  ContainerdRuntime* runtime_;
  std::string id_;
};

// --- set-up ----------------------------------------------------------------------------------------

void ReleaseLeftoverExecFifos(absl::Duration older_than) {
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
    const std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, "capstan-exec-")) continue;
    const std::filesystem::path fifo = entry.path() / "output";
    std::error_code stat_error;
    const auto modified = std::filesystem::last_write_time(entry.path(), stat_error);
    if (stat_error || now - modified < absl::ToChronoSeconds(older_than)) continue;
    int fd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) close(fd);
    unlink(fifo.c_str());
    rmdir(entry.path().c_str());
  }
}

ContainerdRuntime::ContainerdRuntime(const std::string& socket, std::string ns,
                                     std::string snapshotter)
    : ns_(std::move(ns)), snapshotter_(std::move(snapshotter)) {
  std::string target = absl::StartsWith(socket, "unix:") ? socket : "unix://" + socket;
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  channel_ = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  stubs_ = std::make_unique<ContainerdStubs>(channel_);
  ReleaseLeftoverExecFifos();
}

ContainerdRuntime::~ContainerdRuntime() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (event_context_ != nullptr) event_context_->TryCancel();
  }
  if (event_thread_.joinable()) event_thread_.join();
}

std::unique_ptr<grpc::ClientContext> ContainerdRuntime::Context(absl::Duration timeout,
                                                                const std::string& lease) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->AddMetadata("containerd-namespace", ns_);
  if (!lease.empty()) context->AddMetadata("containerd-lease", lease);
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  return context;
}

std::string ContainerdRuntime::CgroupsPath(const std::string& id) const {
  return absl::StrCat("/", ns_, "/", id);
}

absl::StatusOr<std::string> ContainerdRuntime::Version() {
  version::VersionResponse response;
  auto context = Context(absl::Seconds(5));
  absl::Status s = FromGrpc(
      stubs_->version->Version(context.get(), google::protobuf::Empty(), &response), "containerd");
  if (!s.ok()) return s;
  return absl::StrCat("containerd://", response.version());
}

absl::Status ContainerdRuntime::Healthy() { return Version().status(); }

// --- images ----------------------------------------------------------------------------------------

absl::StatusOr<std::string> ContainerdRuntime::ReadContent(const std::string& digest,
                                                           int64_t max_size) {
  content::ReadContentRequest request;
  request.set_digest(digest);
  auto context = Context(kCallTimeout);
  auto reader = stubs_->content->Read(context.get(), request);
  std::string out;
  content::ReadContentResponse piece;
  while (reader->Read(&piece)) {
    if (static_cast<int64_t>(out.size() + piece.data().size()) > max_size) {
      context->TryCancel();
      reader->Finish();
      return absl::FailedPreconditionError(absl::StrCat("content ", digest, " is too large"));
    }
    out += piece.data();
  }
  absl::Status s = FromGrpc(reader->Finish(), absl::StrCat("containerd: read ", digest));
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<ContainerdRuntime::ResolvedImage> ContainerdRuntime::ResolveImage(
    const std::string& image) {
  images::GetImageResponse record;
  grpc::Status got;
  for (const std::string& name : CandidateNames(image)) {
    images::GetImageRequest request;
    request.set_name(name);
    auto context = Context(kCallTimeout);
    got = stubs_->images->Get(context.get(), request, &record);
    if (!IsNotFound(got)) break;
  }
  if (IsNotFound(got)) {
    return absl::NotFoundError(absl::StrCat("image ", image, " is not present on this node"));
  }
  if (absl::Status s = FromGrpc(got, absl::StrCat("containerd: get image ", image)); !s.ok()) return s;

  // The target is content-addressed, so what it resolves to never changes: cache it.
  const std::string& target = record.image().target().digest();
  {
    absl::MutexLock lock(&mu_);
    if (auto it = images_.find(target); it != images_.end()) return *it->second;
  }
  absl::StatusOr<std::string> top = ReadContent(target, kMaxDocument);
  if (!top.ok()) return top.status();
  std::string manifest_bytes = *top;
  std::string media_type = record.image().target().media_type();
  if (media_type.empty()) media_type = DetectMediaType(*top);
  if (IsIndex(media_type)) {  // images imported by other tools point at an index
    absl::StatusOr<std::vector<Descriptor>> entries = ParseIndex(*top);
    if (!entries.ok()) return entries.status();
    absl::StatusOr<Descriptor> chosen = SelectPlatform(*entries);
    if (!chosen.ok()) return chosen.status();
    absl::StatusOr<std::string> bytes = ReadContent(chosen->digest, kMaxDocument);
    if (!bytes.ok()) return bytes.status();
    manifest_bytes = std::move(*bytes);
  }
  absl::StatusOr<Manifest> manifest = ParseManifest(manifest_bytes);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<std::string> config_bytes = ReadContent(manifest->config.digest, kMaxDocument);
  if (!config_bytes.ok()) return config_bytes.status();
  absl::StatusOr<ImageConfig> config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return config.status();

  auto resolved = std::make_shared<ResolvedImage>();
  resolved->name = record.image().name();
  resolved->id = manifest->config.digest;
  resolved->config = std::move(*config);
  resolved->top_chain = ChainIds(resolved->config.diff_ids).back();
  absl::MutexLock lock(&mu_);
  images_[target] = resolved;
  return *resolved;
}

absl::StatusOr<std::string> ContainerdRuntime::ImageId(const std::string& image) {
  absl::StatusOr<ResolvedImage> resolved = ResolveImage(image);
  if (!resolved.ok()) return resolved.status();
  return resolved->id;
}

absl::Status ContainerdRuntime::PullImage(const std::string& image) {
  absl::StatusOr<ImageReference> ref = ParseImageReference(image);
  if (!ref.ok()) return ref.status();
  RegistryClient registry(*ref);
  absl::StatusOr<RegistryClient::Document> top = registry.GetManifest(ref->TagOrDigest());
  if (!top.ok()) return top.status();
  BlobSource source;
  source.read = [&registry](const Descriptor& d,
                            const std::function<absl::Status(absl::string_view)>& sink) {
    // Manifests are served under /manifests/, everything else under /blobs/.
    if (IsIndex(d.media_type) || IsManifest(d.media_type)) {
      absl::StatusOr<RegistryClient::Document> doc = registry.GetManifest(d.digest);
      if (!doc.ok()) return doc.status();
      return sink(doc->body);
    }
    return registry.GetBlob(d.digest, sink);
  };
  return StoreImage(ref->String(), top->descriptor, top->body, source);
}

absl::StatusOr<std::vector<std::string>> ContainerdRuntime::ImportImage(const std::string& path) {
  absl::StatusOr<std::unique_ptr<TarFile>> tar = TarFile::Open(path);
  if (!tar.ok()) return tar.status();
  absl::StatusOr<std::string> index_bytes = (*tar)->ReadAll("index.json", kMaxDocument);
  if (!index_bytes.ok()) return index_bytes.status();
  absl::StatusOr<std::vector<Descriptor>> entries = ParseIndex(*index_bytes);
  if (!entries.ok()) return entries.status();

  BlobSource source;
  source.read = [&tar](const Descriptor& d,
                       const std::function<absl::Status(absl::string_view)>& sink) {
    std::string name = d.digest;
    std::replace(name.begin(), name.end(), ':', '/');  // "sha256:abc" -> blobs/sha256/abc
    return (*tar)->Read("blobs/" + name, sink);
  };
  std::vector<std::string> names;
  for (const Descriptor& entry : *entries) {
    std::string name;
    for (const char* key : {"io.containerd.image.name", "org.opencontainers.image.ref.name"}) {
      auto it = entry.annotations.find(key);
      if (it == entry.annotations.end() || !name.empty()) continue;
      // The OCI annotation is often only a tag ("1"): a name needs a repository.
      if (absl::StrContains(it->second, '/') || key[0] == 'i') name = it->second;
    }
    if (name.empty()) continue;
    absl::StatusOr<ImageReference> ref = ParseImageReference(name);
    if (!ref.ok()) return ref.status();
    absl::StatusOr<std::string> top = source.ReadAll(entry);
    if (!top.ok()) return top.status();
    Descriptor top_descriptor = entry;
    if (top_descriptor.media_type.empty()) top_descriptor.media_type = DetectMediaType(*top);
    if (absl::Status s = StoreImage(ref->String(), top_descriptor, *top, source); !s.ok()) return s;
    names.push_back(ref->String());
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no image in it is named"));
  }
  return names;
}

absl::Status ContainerdRuntime::StoreImage(const std::string& name, const Descriptor& top,
                                           const std::string& top_bytes,
                                           const BlobSource& source) {
  // The image record points at the linux/amd64 manifest itself: an index would only add
  // entries for platforms this node never fetches.
  Descriptor manifest_descriptor = top;
  std::string manifest_bytes = top_bytes;
  if (IsIndex(top.media_type)) {
    absl::StatusOr<std::vector<Descriptor>> entries = ParseIndex(top_bytes);
    if (!entries.ok()) return entries.status();
    absl::StatusOr<Descriptor> chosen = SelectPlatform(*entries);
    if (!chosen.ok()) return absl::NotFoundError(absl::StrCat(name, ": ", chosen.status().message()));
    absl::StatusOr<std::string> bytes = source.ReadAll(*chosen);
    if (!bytes.ok()) return bytes.status();
    manifest_descriptor = *chosen;
    manifest_bytes = std::move(*bytes);
  }
  if (manifest_descriptor.media_type.empty() || !IsManifest(manifest_descriptor.media_type)) {
    manifest_descriptor.media_type = DetectMediaType(manifest_bytes);
  }
  manifest_descriptor.size = static_cast<int64_t>(manifest_bytes.size());
  absl::StatusOr<Manifest> manifest = ParseManifest(manifest_bytes);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<std::string> config_bytes = source.ReadAll(manifest->config);
  if (!config_bytes.ok()) return config_bytes.status();
  absl::StatusOr<ImageConfig> config = ParseImageConfig(*config_bytes);
  if (!config.ok()) return config.status();
  if (config->diff_ids.size() != manifest->layers.size()) {
    return absl::DataLossError(absl::StrCat(name, ": ", manifest->layers.size(), " layers but ",
                                            config->diff_ids.size(), " diff ids"));
  }
  std::vector<std::string> chain = ChainIds(config->diff_ids);

  absl::MutexLock pull_lock(&pull_mu_);
  absl::StatusOr<std::unique_ptr<Lease>> lease = Lease::Create(this);
  if (!lease.ok()) return lease.status();
  const std::string& lease_id = (*lease)->id();

  // Blobs bottom-up, each with labels naming what it references, so that once the lease is gone
  // the garbage collector keeps exactly: image -> manifest -> config and layers -> snapshots.
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    absl::Status s = WriteBlob(manifest->layers[i], nullptr, &source,
                               {{"containerd.io/uncompressed", config->diff_ids[i]}}, lease_id);
    if (!s.ok()) return s;
  }
  absl::Status s = WriteBlob(manifest->config, &*config_bytes, nullptr,
                             {{"containerd.io/gc.ref.snapshot." + snapshotter_, chain.back()}},
                             lease_id);
  if (!s.ok()) return s;
  std::map<std::string, std::string> manifest_labels = {
      {"containerd.io/gc.ref.content.config", manifest->config.digest}};
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    manifest_labels[absl::StrCat("containerd.io/gc.ref.content.l.", i)] =
        manifest->layers[i].digest;
  }
  s = WriteBlob(manifest_descriptor, &manifest_bytes, nullptr, manifest_labels, lease_id);
  if (!s.ok()) return s;
  if (s = Unpack(manifest->layers, config->diff_ids, lease_id); !s.ok()) return s;
  return SetImageRecord(name, manifest_descriptor, lease_id);
}

absl::Status ContainerdRuntime::WriteBlob(const Descriptor& blob, const std::string* bytes,
                                          const BlobSource* source,
                                          const std::map<std::string, std::string>& labels,
                                          const std::string& lease) {
  // Already there (another image shares it): only make sure it carries our labels.
  content::InfoRequest info_request;
  info_request.set_digest(blob.digest);
  content::InfoResponse info;
  auto info_context = Context(kCallTimeout, lease);
  grpc::Status got = stubs_->content->Info(info_context.get(), info_request, &info);
  if (got.ok()) {
    content::UpdateRequest update;
    update.mutable_info()->set_digest(blob.digest);
    for (const auto& [key, value] : labels) {
      (*update.mutable_info()->mutable_labels())[key] = value;
      update.mutable_update_mask()->add_paths("labels." + key);
    }
    content::UpdateResponse updated;
    auto context = Context(kCallTimeout, lease);
    return FromGrpc(stubs_->content->Update(context.get(), update, &updated),
                    absl::StrCat("containerd: label ", blob.digest));
  }
  if (!IsNotFound(got)) return FromGrpc(got, absl::StrCat("containerd: info ", blob.digest));

  // Stream it in: WRITE requests of up to 1 MiB, the last one a COMMIT, which containerd checks
  // against the expected size and digest. Each request gets one answer.
  auto context = Context(kBlobTimeout, lease);
  auto stream = stubs_->content->Write(context.get());
  std::string pending;
  int64_t offset = 0;
  bool broken = false;
  auto send = [&](bool commit) {
    content::WriteContentRequest request;
    request.set_action(commit ? content::COMMIT : content::WRITE);
    request.set_ref(absl::StrCat("capstan-", blob.digest));
    request.set_offset(offset);
    request.set_data(pending);
    if (offset == 0 || commit) {
      request.set_total(blob.size);
      request.set_expected(blob.digest);
    }
    if (commit) request.mutable_labels()->insert(labels.begin(), labels.end());
    content::WriteContentResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) {
      broken = true;
      return absl::AbortedError("content stream broken");
    }
    offset += static_cast<int64_t>(pending.size());
    pending.clear();
    return absl::OkStatus();
  };
  absl::Status read_status;
  if (bytes != nullptr) {
    pending = *bytes;
  } else {
    read_status = source->read(blob, [&](absl::string_view piece) {
      pending.append(piece.data(), piece.size());
      return pending.size() >= kWriteChunk ? send(false) : absl::OkStatus();
    });
  }
  // A failed send marks the stream broken; Finish() below says why.
  if (read_status.ok() && !broken) send(true).IgnoreError();
  if (!broken) stream->WritesDone();
  if (!read_status.ok() && !broken) context->TryCancel();
  content::WriteContentResponse rest;
  while (stream->Read(&rest)) {
  }
  grpc::Status finished = stream->Finish();
  if (!read_status.ok()) return read_status;  // the source's error says more than a cancel
  // AlreadyExists: another writer committed the same blob meanwhile; it lacks nothing but labels.
  if (finished.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return WriteBlob(blob, bytes, source, labels, lease);
  }
  return FromGrpc(finished, absl::StrCat("containerd: write ", blob.digest));
}

absl::Status ContainerdRuntime::Unpack(const std::vector<Descriptor>& layers,
                                       const std::vector<std::string>& diff_ids,
                                       const std::string& lease) {
  std::vector<std::string> chain = ChainIds(diff_ids);
  for (size_t i = 0; i < layers.size(); ++i) {
    snapshots::StatSnapshotRequest stat;
    stat.set_snapshotter(snapshotter_);
    stat.set_key(chain[i]);
    snapshots::StatSnapshotResponse stat_response;
    auto stat_context = Context(kCallTimeout, lease);
    grpc::Status exists = stubs_->snapshots->Stat(stat_context.get(), stat, &stat_response);
    if (exists.ok()) continue;  // this layer (and those below) are unpacked already
    if (!IsNotFound(exists)) return FromGrpc(exists, absl::StrCat("containerd: stat snapshot ", chain[i]));

    // Apply the layer onto a fresh active snapshot over the previous layer, then commit it under
    // its chain id. Any failure removes the active snapshot.
    std::string key = absl::StrCat("capstan-extract-", UniqueSuffix(), "-", chain[i]);
    snapshots::PrepareSnapshotRequest prepare;
    prepare.set_snapshotter(snapshotter_);
    prepare.set_key(key);
    if (i > 0) prepare.set_parent(chain[i - 1]);
    snapshots::PrepareSnapshotResponse prepared;
    auto prepare_context = Context(kCallTimeout, lease);
    absl::Status s = FromGrpc(stubs_->snapshots->Prepare(prepare_context.get(), prepare, &prepared),
                              absl::StrCat("containerd: prepare snapshot for layer ", i));
    if (!s.ok()) return s;
    absl::Cleanup remove_key = [this, &key, &lease] {
      snapshots::RemoveSnapshotRequest remove;
      remove.set_snapshotter(snapshotter_);
      remove.set_key(key);
      google::protobuf::Empty empty;
      auto context = Context(kCallTimeout, lease);
      stubs_->snapshots->Remove(context.get(), remove, &empty);
    };

    diff::ApplyRequest apply;
    *apply.mutable_diff() = ToProto(layers[i]);
    *apply.mutable_mounts() = prepared.mounts();
    diff::ApplyResponse applied;
    auto apply_context = Context(kBlobTimeout, lease);
    s = FromGrpc(stubs_->diff->Apply(apply_context.get(), apply, &applied),
                 absl::StrCat("containerd: apply layer ", layers[i].digest));
    if (!s.ok()) return s;
    if (applied.applied().digest() != diff_ids[i]) {
      return absl::DataLossError(absl::StrCat("layer ", layers[i].digest, " unpacked to ",
                                              applied.applied().digest(), ", not ", diff_ids[i]));
    }

    snapshots::CommitSnapshotRequest commit;
    commit.set_snapshotter(snapshotter_);
    commit.set_name(chain[i]);
    commit.set_key(key);
    google::protobuf::Empty empty;
    auto commit_context = Context(kCallTimeout, lease);
    grpc::Status committed = stubs_->snapshots->Commit(commit_context.get(), commit, &empty);
    if (committed.ok()) std::move(remove_key).Cancel();  // the key is gone with the commit
    if (!committed.ok() && committed.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
      return FromGrpc(committed, absl::StrCat("containerd: commit snapshot ", chain[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status ContainerdRuntime::SetImageRecord(const std::string& name, const Descriptor& target,
                                               const std::string& lease) {
  images::Image image;
  image.set_name(name);
  *image.mutable_target() = ToProto(target);
  images::CreateImageRequest create;
  *create.mutable_image() = image;
  images::CreateImageResponse created;
  auto context = Context(kCallTimeout, lease);
  grpc::Status s = stubs_->images->Create(context.get(), create, &created);
  if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {  // a new version of the tag
    images::UpdateImageRequest update;
    *update.mutable_image() = image;
    images::UpdateImageResponse updated;
    auto update_context = Context(kCallTimeout, lease);
    s = stubs_->images->Update(update_context.get(), update, &updated);
  }
  return FromGrpc(s, absl::StrCat("containerd: image record ", name));
}

// --- containers ------------------------------------------------------------------------------------

absl::Status ContainerdRuntime::CreateContainer(const ContainerConfig& config) {
  if (absl::Status s = ValidateId(config.id); !s.ok()) return s;
  absl::StatusOr<ResolvedImage> image = ResolveImage(config.image);
  if (!image.ok()) return image.status();
  absl::StatusOr<std::string> spec = BuildRuntimeSpec(config, image->config, CgroupsPath(config.id));
  if (!spec.ok()) return spec.status();
  if (absl::Status s = EnsureLogFile(config.log_path); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<Lease>> lease = Lease::Create(this);
  if (!lease.ok()) return lease.status();
  const std::string& lease_id = (*lease)->id();

  // The rootfs: an active snapshot over the image's top layer, named after the container.
  auto prepare = [&]() {
    snapshots::PrepareSnapshotRequest request;
    request.set_snapshotter(snapshotter_);
    request.set_key(config.id);
    request.set_parent(image->top_chain);
    snapshots::PrepareSnapshotResponse response;
    auto context = Context(kCallTimeout, lease_id);
    return stubs_->snapshots->Prepare(context.get(), request, &response);
  };
  auto remove_snapshot = [&]() {
    snapshots::RemoveSnapshotRequest request;
    request.set_snapshotter(snapshotter_);
    request.set_key(config.id);
    google::protobuf::Empty empty;
    auto context = Context(kCallTimeout, lease_id);
    stubs_->snapshots->Remove(context.get(), request, &empty);
  };
  grpc::Status prepared = prepare();
  if (prepared.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    if (InspectContainer(config.id).ok()) {
      return absl::AlreadyExistsError(absl::StrCat("container ", config.id, " exists"));
    }
    remove_snapshot();  // left by a create that failed half-way
    prepared = prepare();
  }
  if (absl::Status s = FromGrpc(prepared, absl::StrCat("containerd: rootfs of ", config.id)); !s.ok()) {
    return s;
  }

  containers::CreateContainerRequest request;
  containers::Container* c = request.mutable_container();
  c->set_id(config.id);
  c->mutable_labels()->insert(config.labels.begin(), config.labels.end());
  (*c->mutable_labels())[kLabelLogPath] = config.log_path;
  c->set_image(image->name);
  c->mutable_runtime()->set_name(kRuncRuntime);
  c->mutable_spec()->set_type_url(kSpecTypeUrl);
  c->mutable_spec()->set_value(*spec);
  c->set_snapshotter(snapshotter_);
  c->set_snapshot_key(config.id);
  containers::CreateContainerResponse response;
  auto context = Context(kCallTimeout, lease_id);
  absl::Status s = FromGrpc(stubs_->containers->Create(context.get(), request, &response),
                            absl::StrCat("containerd: create container ", config.id));
  if (!s.ok()) remove_snapshot();
  return s;
}

absl::StatusOr<ContainerdRuntime::TaskState> ContainerdRuntime::GetTask(const std::string& id,
                                                                        const std::string& exec_id) {
  tasks::GetRequest request;
  request.set_container_id(id);
  request.set_exec_id(exec_id);
  tasks::GetResponse response;
  auto context = Context(kCallTimeout);
  absl::Status s = FromGrpc(stubs_->tasks->Get(context.get(), request, &response),
                            absl::StrCat("containerd: task of ", id));
  if (!s.ok()) return s;
  TaskState state;
  state.status = response.process().status();
  state.exit_status = response.process().exit_status();
  state.exited_at = FromProto(response.process().exited_at());
  return state;
}

absl::Status ContainerdRuntime::StartContainer(const std::string& id) {
  containers::GetContainerRequest get;
  get.set_id(id);
  containers::GetContainerResponse container;
  auto get_context = Context(kCallTimeout);
  absl::Status s = FromGrpc(stubs_->containers->Get(get_context.get(), get, &container),
                            absl::StrCat("container ", id));
  if (!s.ok()) return s;

  // A task left from an earlier start: running is done; exited is replaced by a new one.
  if (absl::StatusOr<TaskState> task = GetTask(id); task.ok()) {
    if (task->status != task_types::STOPPED) {
      return absl::FailedPreconditionError(absl::StrCat("container ", id, " is already started"));
    }
    tasks::DeleteTaskRequest del;
    del.set_container_id(id);
    tasks::DeleteResponse deleted;
    auto context = Context(kCallTimeout);
    s = FromGrpc(stubs_->tasks->Delete(context.get(), del, &deleted),
                 absl::StrCat("containerd: delete old task of ", id));
    if (!s.ok()) return s;
  }

  snapshots::MountsRequest mounts_request;
  mounts_request.set_snapshotter(container.container().snapshotter());
  mounts_request.set_key(container.container().snapshot_key());
  snapshots::MountsResponse mounts;
  auto mounts_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->snapshots->Mounts(mounts_context.get(), mounts_request, &mounts),
               absl::StrCat("containerd: rootfs of ", id));
  if (!s.ok()) return s;

  std::string log_path;
  if (auto it = container.container().labels().find(kLabelLogPath);
      it != container.container().labels().end()) {
    log_path = it->second;
  }
  if (s = EnsureLogFile(log_path); !s.ok()) return s;

  // The shim appends the process's stdout and stderr to the file named by a file:// URI.
  tasks::CreateTaskRequest create;
  create.set_container_id(id);
  *create.mutable_rootfs() = mounts.mounts();
  create.set_stdout(FileUri(log_path));
  create.set_stderr(FileUri(log_path));
  tasks::CreateTaskResponse created;
  auto create_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->tasks->Create(create_context.get(), create, &created),
               absl::StrCat("start container ", id));
  if (!s.ok()) return s;

  absl::Time started = absl::Now();
  tasks::StartRequest start;
  start.set_container_id(id);
  tasks::StartResponse start_response;
  auto start_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->tasks->Start(start_context.get(), start, &start_response),
               absl::StrCat("start container ", id));
  if (!s.ok()) {
    tasks::DeleteTaskRequest del;
    del.set_container_id(id);
    tasks::DeleteResponse deleted;
    auto context = Context(kCallTimeout);
    stubs_->tasks->Delete(context.get(), del, &deleted);
    return s;
  }
  // containerd keeps no start time for a task.
  return SetLabel(id, kLabelStartedAt,
                  absl::FormatTime(absl::RFC3339_full, started, absl::UTCTimeZone()));
}

absl::Status ContainerdRuntime::SetLabel(const std::string& id, const std::string& key,
                                         const std::string& value) {
  containers::UpdateContainerRequest request;
  request.mutable_container()->set_id(id);
  (*request.mutable_container()->mutable_labels())[key] = value;
  request.mutable_update_mask()->add_paths("labels." + key);
  containers::UpdateContainerResponse response;
  auto context = Context(kCallTimeout);
  return FromGrpc(stubs_->containers->Update(context.get(), request, &response),
                  absl::StrCat("containerd: label container ", id));
}

absl::Status ContainerdRuntime::Kill(const std::string& id, int signal, bool all,
                                     const std::string& exec_id) {
  tasks::KillRequest request;
  request.set_container_id(id);
  request.set_exec_id(exec_id);
  request.set_signal(static_cast<uint32_t>(signal));
  request.set_all(all);
  google::protobuf::Empty empty;
  auto context = Context(kCallTimeout);
  grpc::Status s = stubs_->tasks->Kill(context.get(), request, &empty);
  if (IsNotFound(s)) return absl::OkStatus();  // exited meanwhile
  return FromGrpc(s, absl::StrCat("containerd: signal ", signal, " to ", id));
}

absl::Status ContainerdRuntime::Wait(const std::string& id, absl::Duration timeout,
                                     const std::string& exec_id) {
  tasks::WaitRequest request;
  request.set_container_id(id);
  request.set_exec_id(exec_id);
  tasks::WaitResponse response;
  absl::Time deadline = absl::Now() + std::max(timeout, absl::Milliseconds(1));
  auto context = Context(deadline - absl::Now());
  grpc::Status s = stubs_->tasks->Wait(context.get(), request, &response);
  if (IsNotFound(s)) return absl::OkStatus();  // deleted meanwhile: not running either
  return WaitStatus(s, deadline,
                    absl::StrCat("wait for ", id, exec_id.empty() ? "" : " exec ", exec_id));
}

absl::Status ContainerdRuntime::StopContainer(const std::string& id, absl::Duration grace) {
  absl::StatusOr<TaskState> task = GetTask(id);
  if (absl::IsNotFound(task.status())) {
    // No task: never started, or already removed. Only a missing container is an error.
    absl::StatusOr<ContainerInfo> info = InspectContainer(id);
    return info.ok() ? absl::OkStatus() : info.status();
  }
  if (!task.ok()) return task.status();
  if (task->status == task_types::STOPPED) return absl::OkStatus();

  if (grace > absl::ZeroDuration()) {
    // SIGTERM to the container's first process only, as Kubernetes does: it decides what its
    // children get.
    if (absl::Status s = Kill(id, SIGTERM, /*all=*/false); !s.ok()) return s;
    absl::Status waited = Wait(id, grace);
    if (!absl::IsDeadlineExceeded(waited)) return waited;
  }
  // A shell as PID 1 ignores SIGTERM (the kernel drops signals PID 1 has no handler for).
  if (absl::Status s = Kill(id, SIGKILL, /*all=*/true); !s.ok()) return s;
  return Wait(id, kKillWait);
}

absl::Status ContainerdRuntime::RemoveContainer(const std::string& id) {
  containers::GetContainerRequest get;
  get.set_id(id);
  containers::GetContainerResponse container;
  auto get_context = Context(kCallTimeout);
  grpc::Status got = stubs_->containers->Get(get_context.get(), get, &container);
  if (!got.ok() && !IsNotFound(got)) return FromGrpc(got, absl::StrCat("containerd: container ", id));
  std::string snapshotter = got.ok() ? container.container().snapshotter() : snapshotter_;
  std::string snapshot_key = got.ok() ? container.container().snapshot_key() : id;

  // The task first: containerd refuses to delete a running one, and a container with a task.
  if (absl::StatusOr<TaskState> task = GetTask(id); task.ok()) {
    if (task->status != task_types::STOPPED) {
      if (absl::Status s = Kill(id, SIGKILL, /*all=*/true); !s.ok()) return s;
      if (absl::Status s = Wait(id, kKillWait); !s.ok()) return s;
    }
    tasks::DeleteTaskRequest del;
    del.set_container_id(id);
    tasks::DeleteResponse deleted;
    auto context = Context(kCallTimeout);
    grpc::Status s = stubs_->tasks->Delete(context.get(), del, &deleted);
    if (!s.ok() && !IsNotFound(s)) return FromGrpc(s, absl::StrCat("containerd: delete task ", id));
  }
  if (got.ok()) {
    containers::DeleteContainerRequest del;
    del.set_id(id);
    google::protobuf::Empty empty;
    auto context = Context(kCallTimeout);
    grpc::Status s = stubs_->containers->Delete(context.get(), del, &empty);
    if (!s.ok() && !IsNotFound(s)) return FromGrpc(s, absl::StrCat("containerd: delete container ", id));
  }
  // containerd leaves the container's snapshot to its owner.
  snapshots::RemoveSnapshotRequest remove;
  remove.set_snapshotter(snapshotter);
  remove.set_key(snapshot_key);
  google::protobuf::Empty empty;
  auto context = Context(kCallTimeout);
  grpc::Status s = stubs_->snapshots->Remove(context.get(), remove, &empty);
  if (!s.ok() && !IsNotFound(s)) return FromGrpc(s, absl::StrCat("containerd: remove rootfs of ", id));
  return absl::OkStatus();
}

namespace {

// A container record and its task (if any) as the agent sees them.
ContainerInfo ToInfo(const containers::Container& c, const task_types::Process* task) {
  ContainerInfo info;
  info.id = c.id();
  info.image = c.image();
  info.created_at = FromProto(c.created_at());
  bool oom_killed = false;
  for (const auto& [key, value] : c.labels()) {
    if (!absl::StartsWith(key, kPrivateLabelPrefix)) {
      info.labels[key] = value;
    } else if (key == kLabelStartedAt) {
      std::string error;
      absl::ParseTime(absl::RFC3339_full, value, &info.started_at, &error);
    } else if (key == kLabelOomKilled) {
      oom_killed = value == "true";
    }
  }
  if (task == nullptr) {
    // Never started, or started and its task lost (containerd's state did not survive a reboot).
    info.state = info.started_at == absl::InfinitePast() ? ContainerState::kCreated
                                                         : ContainerState::kUnknown;
    return info;
  }
  switch (task->status()) {
    case task_types::CREATED:
      info.state = ContainerState::kCreated;
      break;
    case task_types::RUNNING:
    case task_types::PAUSED:
    case task_types::PAUSING:
      info.state = ContainerState::kRunning;
      break;
    case task_types::STOPPED:
      info.state = ContainerState::kExited;
      info.exit_code = static_cast<int>(task->exit_status());
      info.finished_at = FromProto(task->exited_at());
      info.reason = oom_killed ? "OOMKilled" : info.exit_code == 0 ? "Completed" : "Error";
      break;
    default:
      info.state = ContainerState::kUnknown;
  }
  return info;
}

}  // namespace

absl::StatusOr<ContainerInfo> ContainerdRuntime::InspectContainer(const std::string& id) {
  containers::GetContainerRequest get;
  get.set_id(id);
  containers::GetContainerResponse container;
  auto context = Context(kCallTimeout);
  absl::Status s = FromGrpc(stubs_->containers->Get(context.get(), get, &container),
                            absl::StrCat("container ", id));
  if (!s.ok()) return s;
  tasks::GetRequest request;
  request.set_container_id(id);
  tasks::GetResponse task;
  auto task_context = Context(kCallTimeout);
  grpc::Status got = stubs_->tasks->Get(task_context.get(), request, &task);
  if (!got.ok() && !IsNotFound(got)) return FromGrpc(got, absl::StrCat("containerd: task of ", id));
  return ToInfo(container.container(), got.ok() ? &task.process() : nullptr);
}

absl::StatusOr<std::vector<ContainerInfo>> ContainerdRuntime::ListContainers() {
  containers::ListContainersResponse listed;
  auto context = Context(kCallTimeout);
  absl::Status s = FromGrpc(
      stubs_->containers->List(context.get(), containers::ListContainersRequest(), &listed),
      "containerd: list containers");
  if (!s.ok()) return s;
  tasks::ListTasksResponse task_list;
  auto task_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->tasks->List(task_context.get(), tasks::ListTasksRequest(), &task_list),
               "containerd: list tasks");
  if (!s.ok()) return s;
  std::map<std::string, const task_types::Process*> by_id;
  // containerd 1.6 fills a listed task's id (the container's), not its container_id.
  for (const task_types::Process& t : task_list.tasks()) {
    by_id[t.container_id().empty() ? t.id() : t.container_id()] = &t;
  }
  std::vector<ContainerInfo> out;
  for (const containers::Container& c : listed.containers()) {
    auto it = by_id.find(c.id());
    out.push_back(ToInfo(c, it == by_id.end() ? nullptr : it->second));
  }
  return out;
}

absl::StatusOr<ExecResult> ContainerdRuntime::Exec(const std::string& id,
                                                   const std::vector<std::string>& cmd,
                                                   absl::Duration timeout) {
  containers::GetContainerRequest get;
  get.set_id(id);
  containers::GetContainerResponse container;
  auto get_context = Context(kCallTimeout);
  absl::Status s = FromGrpc(stubs_->containers->Get(get_context.get(), get, &container),
                            absl::StrCat("container ", id));
  if (!s.ok()) return s;
  absl::StatusOr<TaskState> task = GetTask(id);
  if (!task.ok() || task->status != task_types::RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("exec in ", id, ": container is not running"));
  }
  absl::StatusOr<std::string> process = BuildExecProcess(container.container().spec().value(), cmd);
  if (!process.ok()) return process.status();

  // The shim runs on this host, so sees the same paths.
  absl::StatusOr<std::unique_ptr<FifoReader>> output = FifoReader::Create();
  if (!output.ok()) return output.status();

  std::string exec_id = absl::StrCat("exec-", exec_counter_++, "-", UniqueSuffix());
  tasks::ExecProcessRequest request;
  request.set_container_id(id);
  request.set_exec_id(exec_id);
  request.set_stdout((*output)->path());
  request.set_stderr((*output)->path());
  request.mutable_spec()->set_type_url(kProcessTypeUrl);
  request.mutable_spec()->set_value(*process);
  google::protobuf::Empty empty;
  auto exec_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->tasks->Exec(exec_context.get(), request, &empty),
               absl::StrCat("exec in ", id));
  if (!s.ok()) return s;
  absl::Cleanup delete_process = [&] {
    tasks::DeleteProcessRequest del;
    del.set_container_id(id);
    del.set_exec_id(exec_id);
    tasks::DeleteResponse deleted;
    auto context = Context(kCallTimeout);
    stubs_->tasks->DeleteProcess(context.get(), del, &deleted);
  };

  tasks::StartRequest start;
  start.set_container_id(id);
  start.set_exec_id(exec_id);
  tasks::StartResponse started;
  auto start_context = Context(kCallTimeout);
  s = FromGrpc(stubs_->tasks->Start(start_context.get(), start, &started),
               absl::StrCat("exec in ", id));
  if (!s.ok()) return s;
  (*output)->WritersOpened();

  tasks::WaitRequest wait;
  wait.set_container_id(id);
  wait.set_exec_id(exec_id);
  tasks::WaitResponse waited;
  absl::Time deadline = absl::Now() + std::max(timeout, absl::Milliseconds(1));
  auto wait_context = Context(deadline - absl::Now());
  s = WaitStatus(stubs_->tasks->Wait(wait_context.get(), wait, &waited), deadline,
                 absl::StrCat("exec in ", id));
  if (absl::IsDeadlineExceeded(s)) {
    Kill(id, SIGKILL, /*all=*/false, exec_id).IgnoreError();
    Wait(id, absl::Seconds(5), exec_id).IgnoreError();
    return absl::DeadlineExceededError(
        absl::StrCat("exec in ", id, ": no exit after ", absl::FormatDuration(timeout)));
  }
  if (!s.ok()) return s;
  ExecResult result;
  result.exit_code = static_cast<int>(waited.exit_status());
  // The shim closes the FIFO once it has copied the last output (at the latest when the
  // process is deleted).
  result.output = (*output)->Finish(absl::Seconds(2));
  return result;
}

// --- events ------------------------------------------------------------------------------------------

void ContainerdRuntime::SetExitHandler(ExitHandler handler) {
  {
    absl::MutexLock lock(&mu_);
    exit_handler_ = std::move(handler);
    if (event_thread_.joinable()) return;
    event_thread_ = std::thread([this] { EventLoop(); });
  }
  // A server-streaming call gives no sign that the server has subscribed, so publish our own
  // event until it comes back on the stream (bounded: containerd may be down, which the agent
  // learns from Healthy()).
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    PublishSyncEvent().IgnoreError();
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&subscribed_), absl::Milliseconds(50))) return;
  }
}

absl::Status ContainerdRuntime::PublishSyncEvent() {
  events::PublishRequest request;
  request.set_topic(kSyncTopic);
  request.mutable_event()->set_type_url("capstan.runtime.Sync");
  google::protobuf::Empty empty;
  auto context = Context(absl::Seconds(2));
  return FromGrpc(stubs_->events->Publish(context.get(), request, &empty), "containerd: publish");
}

void ContainerdRuntime::EventLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  bool reconnected = false;
  while (true) {
    grpc::ClientContext context;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      event_context_ = &context;
    }
    events::SubscribeRequest request;
    for (const char* topic : {"/tasks/exit", "/tasks/oom", kSyncTopic}) {
      request.add_filters(absl::StrCat("namespace==\"", ns_, "\",topic==\"", topic, "\""));
    }
    auto stream = stubs_->events->Subscribe(&context, request);
    if (reconnected) {
      // Exits while the stream was down were missed: tell the agent about every exited
      // container; it re-checks them (calls for containers it already knew about are harmless).
      if (absl::StatusOr<std::vector<ContainerInfo>> all = ListContainers(); all.ok()) {
        ExitHandler handler;
        {
          absl::MutexLock lock(&mu_);
          handler = exit_handler_;
        }
        for (const ContainerInfo& c : *all) {
          if (c.state == ContainerState::kExited && handler) handler(c.id);
        }
      }
    }
    events::Envelope envelope;
    while (stream->Read(&envelope)) {
      backoff = absl::Milliseconds(100);
      if (envelope.topic() == kSyncTopic) {
        absl::MutexLock lock(&mu_);
        subscribed_ = true;
        continue;
      }
      // Event type URLs ("containerd.events.TaskExit") have no '/', which Any::UnpackTo wants:
      // parse the payload directly.
      HandleEvent(envelope.topic(), envelope.event().value());
    }
    stream->Finish();
    absl::MutexLock lock(&mu_);
    event_context_ = nullptr;
    subscribed_ = false;
    // Reconnect (containerd restarted, or was not up yet) after a pause that grows to 2 s.
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff)) return;
    backoff = std::min(backoff * 2, absl::Seconds(2));
    reconnected = true;
  }
}

void ContainerdRuntime::HandleEvent(const std::string& topic, const std::string& payload) {
  if (topic == "/tasks/oom") {
    ::containerd::events::TaskOOM oom;
    // Kept on the container, so the reason survives an agent restart.
    if (oom.ParseFromString(payload)) {
      SetLabel(oom.container_id(), kLabelOomKilled, "true").IgnoreError();
    }
    return;
  }
  ::containerd::events::TaskExit exit;
  if (!exit.ParseFromString(payload)) return;
  if (exit.id() != exit.container_id()) return;  // an exec'd process, not the container
  // The shim sends the OOM and the exit event from different goroutines, so the exit can come
  // first. The cgroup (kept until the task is deleted) has the last word; label the container
  // before the agent hears of the exit.
  if (exit.exit_status() != 0 && CgroupSawOomKill(CgroupsPath(exit.container_id()))) {
    SetLabel(exit.container_id(), kLabelOomKilled, "true").IgnoreError();
  }
  ExitHandler handler;
  {
    absl::MutexLock lock(&mu_);
    handler = exit_handler_;
  }
  if (handler) handler(exit.container_id());
}

}  // namespace capstan::nodeagent
