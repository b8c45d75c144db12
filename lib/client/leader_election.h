// Leader election on a coordination.k8s.io/v1 Lease, after client-go's tools/leaderelection.
//
//   LeaderElectionConfig config;
//   config.lease_namespace = "kube-system";
//   config.lease_name = "capstan-controller-manager";
//   config.identity = LeaderElectionConfig::DefaultIdentity();
//   config.on_started_leading = [&] { controllers.Start(); };
//   config.on_stopped_leading = [&] { controllers.Stop(); };
//   LeaderElector elector(client.get(), config);
//   std::thread t([&] { elector.Run(); });   // blocks until Stop()
//   ...
//   elector.Stop();  // releases the lease (release_on_cancel) so a standby takes over at once
//   t.join();
//
// The protocol is client-go's:
//  * Every retry_period (with client-go's jitter) a candidate reads the Lease. If there is none it
//    creates one naming itself. If another identity holds it, the candidate waits until
//    leaseDurationSeconds have passed since it *locally observed* the record last change (the
//    remote renewTime is not compared with the local clock, which tolerates clock skew). Then it
//    takes the lease over with an Update carrying the resourceVersion it read (leaseTransitions+1);
//    a Conflict means someone else won. An empty holderIdentity (a released lease) is taken over
//    at once.
//  * The leader renews every retry_period. If no renewal has succeeded within renew_deadline of
//    the start of the last successful one, or it sees another identity in the lease, it stops
//    leading at once: IsLeader() turns false and on_stopped_leading is called. It then goes back
//    to trying to acquire (unlike client-go, whose Run returns; here Run returns only on Stop).
//  * On Stop() with release_on_cancel the leader first stops leading (on_stopped_leading), then
//    writes holderIdentity "" (leaseDurationSeconds 1, leaseTransitions kept) with its last
//    resourceVersion, so a standby takes over on its next try.
//
// Safety needs renew_deadline < lease_duration (the margin covers request latency) and
// retry_period < renew_deadline: Run() checks the configuration with Validate() and returns at
// once (with a message on stderr) when it is invalid.
//
// All timing (observed times, renew deadlines, the waits between tries) goes through the Clock
// (lib/client/clock.h); request deadlines are real time.
#ifndef CAPSTAN_LIB_CLIENT_LEADER_ELECTION_H_
#define CAPSTAN_LIB_CLIENT_LEADER_ELECTION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/client/client.h"
#include "lib/client/clock.h"
#include "proto/coordination_v1.pb.h"

namespace capstan::client {

struct LeaderElectionConfig {
  std::string lease_namespace = "kube-system";
  std::string lease_name;
  std::string identity;  // unique per candidate, e.g. DefaultIdentity()

  absl::Duration lease_duration = absl::Seconds(15);
  absl::Duration renew_deadline = absl::Seconds(10);
  absl::Duration retry_period = absl::Seconds(2);

  // Called on the elector's thread when this candidate becomes leader. Start work and return:
  // the elector does not renew while the callback runs.
  std::function<void()> on_started_leading;
  // Called on the elector's thread as soon as leadership is lost or released (before the release
  // is written). Stop work.
  std::function<void()> on_stopped_leading;
  // Called on the elector's thread when the observed (non-empty) holder changes, including to
  // this candidate.
  std::function<void(const std::string& identity)> on_new_leader;

  bool release_on_cancel = true;

  // hostname + "_" + 16 random hex characters.
  static std::string DefaultIdentity();
  // InvalidArgument unless lease_name and identity are set, all durations are positive,
  // lease_duration > renew_deadline > retry_period.
  absl::Status Validate() const;
};

// --- The decision, as a pure function (what tryAcquireOrRenew does with one read) ------------

// What the candidate knows about the lease after reading it.
struct ObservedLease {
  bool exists = false;                // false: the Get said NotFound
  std::string holder;                 // spec.holderIdentity ("" when released or unset)
  absl::Duration lease_duration;      // spec.leaseDurationSeconds; <= 0: unset
  absl::Time observed_time;           // local time at which the record was last seen to change
};

enum class LeaseAction {
  kCreate,    // no lease: create one naming me
  kRenew,     // I hold it: update renewTime
  kTakeOver,  // released, or the holder's lease expired: update holder = me, transitions+1
  kWait,      // another holder's lease is still valid: try again later
};

absl::string_view LeaseActionName(LeaseAction action);

// now and lease.observed_time come from the same (local) clock. default_lease_duration is used
// when the record has none.
LeaseAction DecideLeaseAction(const ObservedLease& lease, absl::string_view identity,
                              absl::Time now, absl::Duration default_lease_duration);

// The spec to write for action (kCreate, kRenew or kTakeOver) given the current one (ignored for
// kCreate): holder = identity, renewTime = now, leaseDurationSeconds = lease_duration rounded up
// to whole seconds (at least 1); kRenew keeps acquireTime and leaseTransitions, kTakeOver sets
// acquireTime = now and leaseTransitions+1, kCreate starts at 0.
capstan::coordination::v1::LeaseSpec NextLeaseSpec(LeaseAction action,
                                                   const capstan::coordination::v1::LeaseSpec& current,
                                                   absl::string_view identity, absl::Time now,
                                                   absl::Duration lease_duration);

// The spec a leader writes to release: holder "", leaseDurationSeconds 1, acquireTime and
// renewTime now, leaseTransitions kept.
capstan::coordination::v1::LeaseSpec ReleasedLeaseSpec(
    const capstan::coordination::v1::LeaseSpec& current, absl::Time now);

// --- The elector ------------------------------------------------------------------------------

class LeaderElector {
 public:
  // client and clock must outlive the elector; clock nullptr means Clock::Real().
  LeaderElector(Client* client, LeaderElectionConfig config, Clock* clock = nullptr);
  ~LeaderElector();  // Stop()s; Run must have returned before destruction
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Campaigns and leads until Stop(); returns after stopping leading (and releasing). Call once.
  // Returns at once when config().Validate() fails.
  void Run();
  // Asks Run to return. Non-blocking and safe from any thread, callbacks included. A request in
  // flight is not interrupted (it has a deadline: at most renew_deadline).
  void Stop();

  // Whether this candidate leads now. Safe from any thread. Turns false as soon as the renew
  // deadline passes, even if the elector's thread is still busy.
  bool IsLeader() const;
  // The holder identity last observed ("" before the first read or after a release).
  std::string GetLeader() const;

  const LeaderElectionConfig& config() const { return config_; }

 private:
  enum class Attempt { kAcquired, kHeldByOther, kFailed };
  // One read (and a write when needed), all within timeout.
  Attempt TryAcquireOrRenew(absl::Duration timeout);
  // Records a freshly read (or written) lease; reports a new leader.
  void Observe(const capstan::coordination::v1::Lease& lease, absl::Time now);
  void StopLeading();
  void LogError(absl::string_view what, const absl::Status& status);
  void Release();
  // Waits for d (by the clock) or until Stop(); true when stopped.
  bool WaitOrStopped(absl::Duration d);
  absl::Duration Jittered(absl::Duration d, double max_factor);

  Client* const client_;
  const LeaderElectionConfig config_;
  Clock* const clock_;

  // Touched only by the Run thread.
  std::optional<capstan::coordination::v1::Lease> observed_lease_;
  absl::Time observed_time_;
  std::string reported_leader_;
  std::string last_error_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  bool leading_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time lead_until_ ABSL_GUARDED_BY(mu_);  // renew deadline of the current term
  std::string leader_ ABSL_GUARDED_BY(mu_);
  uint64_t rng_state_ = 0;
};

}  // namespace capstan::client

#endif  // CAPSTAN_LIB_CLIENT_LEADER_ELECTION_H_
