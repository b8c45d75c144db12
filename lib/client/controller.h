// The controller runtime: a work queue of "namespace/name" keys, N workers, and a Reconciler.
//
// Level-triggered, as controller-runtime: informer event handlers only enqueue keys; a worker
// takes a key (never one that another worker is processing), calls Reconcile(key), which reads
// the caches, compares desired with actual state and writes through the API. An error requeues
// the key with per-key exponential backoff; a result may ask for a requeue after a delay; success
// forgets the key's backoff.
//
//   PodCounter reconciler(...);
//   Controller controller({.name = "pods", .workers = 2, .registry = registry}, &reconciler);
//   informer.AddEventHandler(controller.EnqueueHandler());   // or call controller.Enqueue(key)
//   controller.Run({[&] { return informer.HasSynced(); }});  // blocks until Stop()
#ifndef CAPSTAN_LIB_CLIENT_CONTROLLER_H_
#define CAPSTAN_LIB_CLIENT_CONTROLLER_H_

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "lib/client/workqueue.h"

namespace capstan::client {

struct ReconcileResult {
  // Requeue after this long (a periodic re-check); zero: only when something changes.
  absl::Duration requeue_after = absl::ZeroDuration();
};

class Reconciler {
 public:
  virtual ~Reconciler() = default;
  // Brings the object named by key ("namespace/name", or "name" for cluster-scoped kinds) to its
  // desired state. An error is retried with backoff. Called from several workers at once, never
  // twice at once for the same key.
  virtual absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) = 0;
};

struct ControllerOptions {
  std::string name;   // the work queue's metric label
  int workers = 2;
  prometheus::Registry* registry = nullptr;  // not owned
  Clock* clock = Clock::Real();              // not owned
};

class Controller {
 public:
  // reconciler must outlive the controller.
  Controller(ControllerOptions options, Reconciler* reconciler);
  ~Controller();  // Stop()

  void Enqueue(absl::string_view key) { queue_.Add(key); }
  void EnqueueAfter(absl::string_view key, absl::Duration delay) { queue_.AddAfter(key, delay); }

  // Waits until every `synced` check is true (caches filled), then runs the workers until Stop().
  // Returns false if stopped before the caches synced.
  bool Run(const std::vector<std::function<bool()>>& synced);
  // Stops taking keys; a key being reconciled finishes first. Idempotent.
  void Stop();

  WorkQueue& queue() { return queue_; }

 private:
  void Work();

  const ControllerOptions options_;
  Reconciler* const reconciler_;
  WorkQueue queue_;
  absl::Notification stopping_;
};

// "namespace/name", or "name" when namespace is empty: the key controllers use.
std::string ObjectKey(absl::string_view ns, absl::string_view name);
// Splits a key made by ObjectKey.
std::pair<std::string, std::string> SplitObjectKey(absl::string_view key);

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_CONTROLLER_H_
