// Kubernetes' ControllerExpectations (UIDTrackingControllerExpectations): what a controller has
// asked the API server to create and delete and its informer has not yet shown it.
//
// The informer's cache lags the API server. A controller that counted pods from the cache right
// after creating some would not see them yet and would create them again. So before writing, the
// controller records what it expects (ExpectCreations / ExpectDeletions); the informer's handlers
// lower the expectation as the pods appear or go (CreationObserved / DeletionObserved), and the
// controller does not create or delete for that key again until Satisfied(): every expected
// event observed, or the expectation older than the timeout (an event may be lost: a create that
// timed out on the client but never happened, say).
//
// Deletions are tracked by pod key, so a pod that is seen terminating (deletionTimestamp set)
// and later seen gone lowers the expectation once.
//
// Thread-safe: handlers call it from informer threads, Reconcile from workers.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_EXPECTATIONS_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_EXPECTATIONS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/clock.h"

namespace capstan::controllermanager::replicaset {

// Kubernetes' ExpectationsTimeout.
inline constexpr absl::Duration kExpectationsTimeout = absl::Minutes(5);

class ControllerExpectations {
 public:
  // clock must outlive this object.
  explicit ControllerExpectations(client::Clock* clock,
                                  absl::Duration timeout = kExpectationsTimeout);

  // True when the controller may act on key: nothing recorded for it, every expected creation
  // and deletion observed, or the record older than the timeout.
  bool Satisfied(const std::string& key) const;

  // Replaces key's record: count creations expected, no deletions, timed from now.
  void ExpectCreations(const std::string& key, int count);
  // Replaces key's record: one deletion expected per pod key, no creations, timed from now.
  void ExpectDeletions(const std::string& key, const std::vector<std::string>& pod_keys);

  // One expected creation happened (the informer saw the pod), or will never happen (its create
  // failed or was skipped).
  void CreationObserved(const std::string& key);
  // The deletion of pod_key happened or will never happen. Lowers the expectation only when
  // pod_key was expected and not yet observed.
  void DeletionObserved(const std::string& key, const std::string& pod_key);

  // Forgets key (its owner is gone).
  void Delete(const std::string& key);

  // What key still waits for (0, 0 when nothing is recorded). For tests and logs.
  struct Pending {
    int creations = 0;
    int deletions = 0;
  };
  Pending Get(const std::string& key) const;

 private:
  struct Record {
    int creations = 0;
    int deletions = 0;
    absl::flat_hash_set<std::string> deleting;  // pod keys whose deletion is expected
    absl::Time timestamp;
  };

  client::Clock* const clock_;
  const absl::Duration timeout_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
};

}  // namespace capstan::controllermanager::replicaset

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLERS_REPLICASET_EXPECTATIONS_H_
