#include "lib/client/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "lib/api/errors.h"

namespace capstan::client {
namespace {

using capstan::coordination::v1::Lease;
using capstan::coordination::v1::LeaseSpec;

void SetMicroTime(absl::Time t, capstan::meta::v1::MicroTime* out) {
  // Microsecond precision, as the JSON form carries.
  int64_t micros = absl::ToUnixMicros(t);
  int64_t seconds = micros >= 0 ? micros / 1000000 : -((-micros + 999999) / 1000000);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>((micros - seconds * 1000000) * 1000));
}

int32_t WholeSeconds(absl::Duration d) {
  double s = std::ceil(absl::ToDoubleSeconds(d));
  if (s < 1) return 1;
  if (s > 2147483647.0) return 2147483647;
  return static_cast<int32_t>(s);
}

constexpr absl::Duration kMinTimeout = absl::Milliseconds(1);

}  // namespace

std::string LeaderElectionConfig::DefaultIdentity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    snprintf(host, sizeof(host), "unknown");
  }
  std::random_device rd;
  uint64_t r = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrFormat("%s_%016x", host, r);
}

absl::Status LeaderElectionConfig::Validate() const {
  if (lease_name.empty()) return absl::InvalidArgumentError("lease_name is required");
  if (identity.empty()) return absl::InvalidArgumentError("identity is required");
  if (retry_period <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("retry_period must be positive");
  }
  if (renew_deadline <= retry_period) {
    return absl::InvalidArgumentError("renew_deadline must be greater than retry_period");
  }
  if (lease_duration <= renew_deadline) {
    return absl::InvalidArgumentError("lease_duration must be greater than renew_deadline");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// The decision

absl::string_view LeaseActionName(LeaseAction action) {
  switch (action) {
    case LeaseAction::kCreate:
      return "Create";
    case LeaseAction::kRenew:
      return "Renew";
    case LeaseAction::kTakeOver:
      return "TakeOver";
    case LeaseAction::kWait:
      return "Wait";
  }
  return "?";
}

LeaseAction DecideLeaseAction(const ObservedLease& lease, absl::string_view identity,
                              absl::Time now, absl::Duration default_lease_duration) {
  if (!lease.exists) return LeaseAction::kCreate;
  if (lease.holder == identity) return LeaseAction::kRenew;
  if (lease.holder.empty()) return LeaseAction::kTakeOver;  // released
  absl::Duration duration =
      lease.lease_duration > absl::ZeroDuration() ? lease.lease_duration : default_lease_duration;
  // Valid while the record has been seen to change within its duration, by the local clock.
  if (lease.observed_time + duration > now) return LeaseAction::kWait;
  return LeaseAction::kTakeOver;
}

LeaseSpec NextLeaseSpec(LeaseAction action, const LeaseSpec& current, absl::string_view identity,
                        absl::Time now, absl::Duration lease_duration) {
  LeaseSpec spec;
  spec.set_holder_identity(std::string(identity));
  spec.set_lease_duration_seconds(WholeSeconds(lease_duration));
  SetMicroTime(now, spec.mutable_renew_time());
  switch (action) {
    case LeaseAction::kRenew:
      if (current.has_acquire_time()) {
        *spec.mutable_acquire_time() = current.acquire_time();
      } else {
        SetMicroTime(now, spec.mutable_acquire_time());
      }
      spec.set_lease_transitions(current.lease_transitions());
      break;
    case LeaseAction::kTakeOver:
      SetMicroTime(now, spec.mutable_acquire_time());
      spec.set_lease_transitions(current.lease_transitions() + 1);
      break;
    case LeaseAction::kCreate:
    case LeaseAction::kWait:
      SetMicroTime(now, spec.mutable_acquire_time());
      spec.set_lease_transitions(0);
      break;
  }
  return spec;
}

LeaseSpec ReleasedLeaseSpec(const LeaseSpec& current, absl::Time now) {
  LeaseSpec spec;
  spec.set_holder_identity("");
  spec.set_lease_duration_seconds(1);
  SetMicroTime(now, spec.mutable_acquire_time());
  SetMicroTime(now, spec.mutable_renew_time());
  spec.set_lease_transitions(current.lease_transitions());
  return spec;
}

// ---------------------------------------------------------------------------------------------
// The elector

LeaderElector::LeaderElector(Client* client, LeaderElectionConfig config, Clock* clock)
    : client_(client),
      config_(std::move(config)),
      clock_(clock != nullptr ? clock : Clock::Real()) {
  std::random_device rd;
  rng_state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ULL;
}

LeaderElector::~LeaderElector() { Stop(); }

void LeaderElector::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  cv_.SignalAll();
}

bool LeaderElector::IsLeader() const {
  absl::MutexLock lock(&mu_);
  return leading_ && clock_->Now() < lead_until_;
}

std::string LeaderElector::GetLeader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

bool LeaderElector::WaitOrStopped(absl::Duration d) {
  absl::Time until = clock_->Now() + d;
  absl::MutexLock lock(&mu_);
  while (!stopped_) {
    if (clock_->WaitWithDeadline(&cv_, &mu_, until)) break;
  }
  return stopped_;
}

absl::Duration LeaderElector::Jittered(absl::Duration d, double max_factor) {
  // xorshift64*: cheap and good enough for spreading retries.
  rng_state_ ^= rng_state_ >> 12;
  rng_state_ ^= rng_state_ << 25;
  rng_state_ ^= rng_state_ >> 27;
  uint64_t r = rng_state_ * 0x2545F4914F6CDD1DULL;
  double u = static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53);
  return d + d * (u * max_factor);
}

void LeaderElector::Observe(const Lease& lease, absl::Time now) {
  if (!observed_lease_.has_value() ||
      observed_lease_->spec().SerializeAsString() != lease.spec().SerializeAsString()) {
    observed_time_ = now;
  }
  observed_lease_ = lease;
  const std::string& holder = lease.spec().holder_identity();
  {
    absl::MutexLock lock(&mu_);
    leader_ = holder;
  }
  if (holder == reported_leader_) return;
  reported_leader_ = holder;
  if (!holder.empty() && config_.on_new_leader) config_.on_new_leader(holder);
}

LeaderElector::Attempt LeaderElector::TryAcquireOrRenew(absl::Duration timeout) {
  const absl::Time start = clock_->Now();
  auto remaining = [&] { return std::max(start + timeout - clock_->Now(), kMinTimeout); };
  GetOptions get_options;
  get_options.timeout = remaining();
  absl::StatusOr<Lease> got =
      client_->Get<Lease>(config_.lease_namespace, config_.lease_name, get_options);
  absl::Time now = clock_->Now();
  WriteOptions write_options;
  if (!got.ok()) {
    if (api::Reason(got.status()) != "NotFound") {
      LogError("reading lease", got.status());
      return Attempt::kFailed;
    }
    Lease lease;
    lease.set_api_version("coordination.k8s.io/v1");
    lease.set_kind("Lease");
    lease.mutable_metadata()->set_name(config_.lease_name);
    lease.mutable_metadata()->set_namespace_(config_.lease_namespace);
    *lease.mutable_spec() =
        NextLeaseSpec(LeaseAction::kCreate, {}, config_.identity, now, config_.lease_duration);
    write_options.timeout = remaining();
    absl::StatusOr<Lease> created = client_->Create(lease, write_options);
    if (!created.ok()) {
      // AlreadyExists: another candidate created it first; the next read shows whom.
      if (api::Reason(created.status()) != "AlreadyExists") {
        LogError("creating lease", created.status());
      }
      return Attempt::kFailed;
    }
    Observe(*created, clock_->Now());
    return Attempt::kAcquired;
  }

  last_error_.clear();
  Observe(*got, now);
  ObservedLease observed;
  observed.exists = true;
  observed.holder = got->spec().holder_identity();
  observed.lease_duration = absl::Seconds(got->spec().lease_duration_seconds());
  observed.observed_time = observed_time_;
  LeaseAction action =
      DecideLeaseAction(observed, config_.identity, now, config_.lease_duration);
  if (action == LeaseAction::kWait) return Attempt::kHeldByOther;

  Lease update = *got;  // carries the resourceVersion read: a concurrent writer gets a Conflict
  *update.mutable_spec() =
      NextLeaseSpec(action, got->spec(), config_.identity, now, config_.lease_duration);
  write_options.timeout = remaining();
  absl::StatusOr<Lease> updated = client_->Update(update, write_options);
  if (!updated.ok()) {
    if (api::Reason(updated.status()) != "Conflict") {
      LogError("updating lease", updated.status());
    }
    return Attempt::kFailed;
  }
  if (action == LeaseAction::kTakeOver) {
    fprintf(stderr, "leaderelection %s: took over lease %s/%s from \"%s\"\n",
            config_.identity.c_str(), config_.lease_namespace.c_str(), config_.lease_name.c_str(),
            observed.holder.c_str());
  }
  Observe(*updated, clock_->Now());
  return Attempt::kAcquired;
}

void LeaderElector::LogError(absl::string_view what, const absl::Status& status) {
  // Once per distinct error, not once per retry period.
  std::string text = absl::StrCat(what, ": ", status.message());
  if (text == last_error_) return;
  last_error_ = text;
  fprintf(stderr, "leaderelection %s: error %s (lease %s/%s)\n", config_.identity.c_str(),
          text.c_str(), config_.lease_namespace.c_str(), config_.lease_name.c_str());
}

void LeaderElector::StopLeading() {
  {
    absl::MutexLock lock(&mu_);
    if (!leading_) return;
    leading_ = false;
  }
  fprintf(stderr, "leaderelection %s: stopped leading %s/%s\n", config_.identity.c_str(),
          config_.lease_namespace.c_str(), config_.lease_name.c_str());
  if (config_.on_stopped_leading) config_.on_stopped_leading();
}

void LeaderElector::Release() {
  if (!observed_lease_.has_value() ||
      observed_lease_->spec().holder_identity() != config_.identity) {
    return;
  }
  Lease lease = *observed_lease_;
  *lease.mutable_spec() = ReleasedLeaseSpec(lease.spec(), clock_->Now());
  WriteOptions options;
  options.timeout = config_.renew_deadline;
  absl::StatusOr<Lease> released = client_->Update(lease, options);
  if (!released.ok()) {
    fprintf(stderr, "leaderelection %s: failed to release lease: %s\n", config_.identity.c_str(),
            std::string(released.status().message()).c_str());
    return;
  }
  Observe(*released, clock_->Now());
}

void LeaderElector::Run() {
  if (absl::Status valid = config_.Validate(); !valid.ok()) {
    fprintf(stderr, "leaderelection: invalid configuration, not campaigning: %s\n",
            std::string(valid.message()).c_str());
    return;
  }
  while (true) {
    // Campaign until this candidate holds the lease.
    absl::Time term_start;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopped_) return;
      }
      term_start = clock_->Now();
      if (TryAcquireOrRenew(config_.renew_deadline) == Attempt::kAcquired) break;
      if (WaitOrStopped(Jittered(config_.retry_period, 1.2))) return;  // client-go's JitterFactor
    }
    {
      absl::MutexLock lock(&mu_);
      leading_ = true;
      lead_until_ = term_start + config_.renew_deadline;
    }
    fprintf(stderr, "leaderelection %s: acquired lease %s/%s\n", config_.identity.c_str(),
            config_.lease_namespace.c_str(), config_.lease_name.c_str());
    if (config_.on_started_leading) config_.on_started_leading();

    // Lead: renew every retry_period; give up when renew_deadline passes without success.
    absl::Time last_success = term_start;
    while (true) {
      absl::Time deadline = last_success + config_.renew_deadline;
      absl::Duration left = deadline - clock_->Now();
      if (left <= absl::ZeroDuration()) {
        StopLeading();
        break;
      }
      if (WaitOrStopped(std::min(config_.retry_period, left))) {
        StopLeading();
        if (config_.release_on_cancel) Release();
        return;
      }
      absl::Time start = clock_->Now();
      if (start >= deadline) {
        StopLeading();
        break;
      }
      Attempt attempt = TryAcquireOrRenew(deadline - start);
      if (attempt == Attempt::kAcquired) {
        last_success = start;
        absl::MutexLock lock(&mu_);
        lead_until_ = start + config_.renew_deadline;
      } else if (attempt == Attempt::kHeldByOther) {
        StopLeading();  // someone else holds it: we lost it already
        break;
      }
    }
  }
}

}  // namespace capstan::client
