#include "lib/client/controller.h"

#include "absl/strings/str_cat.h"

namespace capstan::client {
namespace {

WorkQueueOptions QueueOptions(const ControllerOptions& options) {
  WorkQueueOptions q;
  q.name = options.name;
  q.registry = options.registry;
  q.clock = options.clock;
  return q;
}

}  // namespace

Controller::Controller(ControllerOptions options, Reconciler* reconciler)
    : options_(std::move(options)), reconciler_(reconciler), queue_(QueueOptions(options_)) {}

Controller::~Controller() { Stop(); }

bool Controller::Run(const std::vector<std::function<bool()>>& synced) {
  // Workers start only on full caches, or they would act on a partial view of the cluster
  // (e.g. create pods that already exist but were not listed yet).
  while (true) {
    bool all = true;
    for (const auto& check : synced) all = all && check();
    if (all) break;
    if (stopping_.WaitForNotificationWithTimeout(absl::Milliseconds(20))) return false;
  }
  std::vector<std::thread> workers;
  for (int i = 0; i < std::max(1, options_.workers); ++i) workers.emplace_back([this] { Work(); });
  for (auto& w : workers) w.join();
  return true;
}

void Controller::Stop() {
  if (!stopping_.HasBeenNotified()) stopping_.Notify();
  queue_.ShutDown();
}

void Controller::Work() {
  while (std::optional<std::string> key = queue_.Get()) {
    if (stopping_.HasBeenNotified()) {
      queue_.Done(*key);
      continue;  // drain without reconciling
    }
    absl::StatusOr<ReconcileResult> result = reconciler_->Reconcile(*key);
    if (!result.ok()) {
      queue_.AddRateLimited(*key);
    } else {
      queue_.Forget(*key);
      if (result->requeue_after > absl::ZeroDuration()) {
        queue_.AddAfter(*key, result->requeue_after);
      }
    }
    queue_.Done(*key);
  }
}

std::string ObjectKey(absl::string_view ns, absl::string_view name) {
  return ns.empty() ? std::string(name) : absl::StrCat(ns, "/", name);
}

std::pair<std::string, std::string> SplitObjectKey(absl::string_view key) {
  size_t slash = key.find('/');
  if (slash == absl::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

}  // namespace capstan::client
