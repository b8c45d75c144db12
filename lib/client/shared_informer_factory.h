// One informer per resource for a whole process (client-go's SharedInformerFactory): every
// controller that asks for pods shares one list, one watch and one cache.
//
//   SharedInformerFactory factory(client.get());
//   Informer<Pod> pods = factory.For<Pod>();          // the same informer on every call
//   Informer<ReplicaSet> replicasets = factory.For<ReplicaSet>();
//   pods.AddEventHandler(...);
//   factory.Start();
//   if (!factory.WaitForCacheSync(absl::Seconds(30))) ...
//   ...
//   factory.Stop();
#ifndef CAPSTAN_LIB_CLIENT_SHARED_INFORMER_FACTORY_H_
#define CAPSTAN_LIB_CLIENT_SHARED_INFORMER_FACTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "lib/api/scheme.h"
#include "lib/client/client.h"
#include "lib/client/informer.h"

namespace capstan::client {

class SharedInformerFactory {
 public:
  // Informers list and watch through client, which must outlive the factory. options (namespace,
  // selectors, page size, backoff) apply to every informer the factory makes.
  explicit SharedInformerFactory(Client* client, InformerOptions options = {});
  ~SharedInformerFactory();  // Stop()
  SharedInformerFactory(const SharedInformerFactory&) = delete;
  SharedInformerFactory& operator=(const SharedInformerFactory&) = delete;

  // The informer of the resource whose kind message is T; the same one on every call. One asked
  // for after Start() starts at once.
  template <typename T>
  Informer<T> For() {
    return Informer<T>(ForKind(T::descriptor()));
  }
  // The same, untyped, for a resource the scheme describes.
  std::shared_ptr<SharedIndexInformer> ForResource(const api::ResourceInfo& info);

  // Starts every informer not yet started.
  void Start();
  // Waits until every informer made so far has synced; false on timeout.
  bool WaitForCacheSync(absl::Duration timeout);
  // Stops every informer; they stay readable (their caches keep the last state).
  void Stop();

 private:
  std::shared_ptr<SharedIndexInformer> ForKind(const google::protobuf::Descriptor* kind);
  // Returns the informer under key, making it with make() when there is none.
  template <typename Make>
  std::shared_ptr<SharedIndexInformer> GetOrMake(const std::string& key, Make make);
  std::vector<std::shared_ptr<SharedIndexInformer>> All();

  Client* const client_;
  const InformerOptions options_;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  // By "group/version/resource", or "kind:" + the message's full name when not a built-in kind.
  absl::flat_hash_map<std::string, std::shared_ptr<SharedIndexInformer>> informers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_SHARED_INFORMER_FACTORY_H_
