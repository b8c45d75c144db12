#include "lib/client/shared_informer_factory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace capstan::client {

namespace {

std::string ResourceKey(const api::ResourceInfo& info) {
  return absl::StrCat(info.group, "/", info.version, "/", info.resource);
}

}  // namespace

SharedInformerFactory::SharedInformerFactory(Client* client, InformerOptions options)
    : client_(client), options_(std::move(options)) {}

SharedInformerFactory::~SharedInformerFactory() { Stop(); }

template <typename Make>
std::shared_ptr<SharedIndexInformer> SharedInformerFactory::GetOrMake(const std::string& key,
                                                                      Make make) {
  std::shared_ptr<SharedIndexInformer> informer;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<SharedIndexInformer>& slot = informers_[key];
    if (slot == nullptr) {
      slot = make();
      start = started_;
    }
    informer = slot;
  }
  if (start) informer->Run();
  return informer;
}

std::shared_ptr<SharedIndexInformer> SharedInformerFactory::ForResource(
    const api::ResourceInfo& info) {
  return GetOrMake(ResourceKey(info), [&] {
    return std::make_shared<SharedIndexInformer>(client_, info, options_);
  });
}

std::shared_ptr<SharedIndexInformer> SharedInformerFactory::ForKind(
    const google::protobuf::Descriptor* kind) {
  absl::StatusOr<const api::ResourceInfo*> info = ResourceFor(kind);
  if (info.ok()) return ForResource(**info);
  return GetOrMake(absl::StrCat("kind:", kind->full_name()), [&] {
    return std::make_shared<SharedIndexInformer>(
        NewClientListerWatcherForKind(client_, kind, options_.ns), options_);
  });
}

std::vector<std::shared_ptr<SharedIndexInformer>> SharedInformerFactory::All() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<SharedIndexInformer>> out;
  for (const auto& [key, informer] : informers_) out.push_back(informer);
  return out;
}

void SharedInformerFactory::Start() {
  {
    absl::MutexLock lock(&mu_);
    started_ = true;
  }
  for (const auto& informer : All()) informer->Run();
}

bool SharedInformerFactory::WaitForCacheSync(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (const auto& informer : All()) {
    if (!informer->WaitForCacheSync(deadline - absl::Now())) return false;
  }
  return true;
}

void SharedInformerFactory::Stop() {
  {
    absl::MutexLock lock(&mu_);
    started_ = false;
  }
  for (const auto& informer : All()) informer->Stop();
}

}  // namespace capstan::client
