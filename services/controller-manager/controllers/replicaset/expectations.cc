#include "services/controller-manager/controllers/replicaset/expectations.h"

namespace capstan::controllermanager::replicaset {

ControllerExpectations::ControllerExpectations(client::Clock* clock, absl::Duration timeout)
    : clock_(clock), timeout_(timeout) {}

bool ControllerExpectations::Satisfied(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return true;
  const Record& record = it->second;
  if (record.creations <= 0 && record.deletions <= 0) return true;
  return clock_->Now() - record.timestamp > timeout_;
}

void ControllerExpectations::ExpectCreations(const std::string& key, int count) {
  absl::MutexLock lock(&mu_);
  Record& record = records_[key];
  record.creations = count;
  record.deletions = 0;
  record.deleting.clear();
  record.timestamp = clock_->Now();
}

void ControllerExpectations::ExpectDeletions(const std::string& key,
                                             const std::vector<std::string>& pod_keys) {
  absl::MutexLock lock(&mu_);
  Record& record = records_[key];
  record.creations = 0;
  record.deleting = absl::flat_hash_set<std::string>(pod_keys.begin(), pod_keys.end());
  record.deletions = static_cast<int>(record.deleting.size());
  record.timestamp = clock_->Now();
}

void ControllerExpectations::CreationObserved(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(key);
  if (it != records_.end()) --it->second.creations;
}

void ControllerExpectations::DeletionObserved(const std::string& key, const std::string& pod_key) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return;
  if (it->second.deleting.erase(pod_key) > 0) --it->second.deletions;
}

void ControllerExpectations::Delete(const std::string& key) {
  absl::MutexLock lock(&mu_);
  records_.erase(key);
}

ControllerExpectations::Pending ControllerExpectations::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(key);
  if (it == records_.end()) return {};
  return {it->second.creations, it->second.deletions};
}

}  // namespace capstan::controllermanager::replicaset
