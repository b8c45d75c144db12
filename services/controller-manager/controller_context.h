// What every controller of the controller-manager is given, and what it offers back.
//
// A controller registers its informers with the shared factory in its constructor (before the
// factory starts, so every controller of the process shares one watch per resource), adds event
// handlers that only enqueue keys, and runs a client::Controller (work queue + workers) whose
// Reconcile reads the informers' caches and writes through the API.
#ifndef CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLER_CONTEXT_H_
#define CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLER_CONTEXT_H_

#include <string>

#include "absl/time/time.h"
#include "lib/client/client.h"
#include "lib/client/event_recorder.h"
#include "lib/client/shared_informer_factory.h"
#include "prometheus/registry.h"

namespace capstan::controllermanager {

struct ControllerContext {
  client::Client* client = nullptr;                        // not owned
  client::SharedInformerFactory* informers = nullptr;      // not owned; started after construction
  client::EventRecorder* recorder = nullptr;               // not owned; may be null in unit tests
  prometheus::Registry* registry = nullptr;                // not owned; may be null
  int workers = 5;                                         // reconcile workers per controller
  // The node lifecycle controller: how long a node may go without a heartbeat before it is
  // marked Unknown (--node_monitor_grace_period), and the same for a node whose agent never
  // posted a Ready condition, from its creation (--node_startup_grace_period).
  absl::Duration node_monitor_grace_period = absl::Seconds(50);
  absl::Duration node_startup_grace_period = absl::Seconds(60);
};

class RunnableController {
 public:
  virtual ~RunnableController() = default;
  virtual const char* name() const = 0;
  // Waits for the informers' caches, then reconciles until Stop(). Blocks.
  virtual void Run() = 0;
  // Stops at once: no reconcile starts after this returns (a leader that loses its lease must
  // stop acting immediately).
  virtual void Stop() = 0;
};

}  // namespace capstan::controllermanager

#endif  // CAPSTAN_SERVICES_CONTROLLER_MANAGER_CONTROLLER_CONTEXT_H_
