// The decision logic of leader election, without a server (the integration test is
// test/client/leader_election_test).
#include "lib/client/leader_election.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/client/clock.h"

namespace capstan::client {
namespace {

using capstan::coordination::v1::LeaseSpec;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

struct Case {
  std::string name;
  ObservedLease lease;
  absl::Duration since_observed;  // now - observed_time
  LeaseAction want;
};

ObservedLease Held(const std::string& holder, absl::Duration duration) {
  ObservedLease l;
  l.exists = true;
  l.holder = holder;
  l.lease_duration = duration;
  l.observed_time = kT0;
  return l;
}

TEST(DecideLeaseAction, Table) {
  const absl::Duration d15 = absl::Seconds(15);
  std::vector<Case> cases = {
      {"no lease: create", ObservedLease{}, absl::ZeroDuration(), LeaseAction::kCreate},
      {"held by me: renew", Held("me", d15), absl::ZeroDuration(), LeaseAction::kRenew},
      {"held by me, even long expired: renew", Held("me", d15), absl::Hours(1),
       LeaseAction::kRenew},
      {"held by other, just seen: wait", Held("other", d15), absl::ZeroDuration(),
       LeaseAction::kWait},
      {"held by other, seen 14.9 s ago: wait", Held("other", d15), absl::Milliseconds(14900),
       LeaseAction::kWait},
      {"held by other, exactly the duration: take over", Held("other", d15), d15,
       LeaseAction::kTakeOver},
      {"held by other, expired: take over", Held("other", d15), absl::Seconds(16),
       LeaseAction::kTakeOver},
      {"released (empty holder), just seen: take over", Held("", absl::Seconds(1)),
       absl::ZeroDuration(), LeaseAction::kTakeOver},
      {"record's own duration counts: 30 s lease seen 20 s ago: wait",
       Held("other", absl::Seconds(30)), absl::Seconds(20), LeaseAction::kWait},
      {"record's own duration counts: 2 s lease seen 3 s ago: take over",
       Held("other", absl::Seconds(2)), absl::Seconds(3), LeaseAction::kTakeOver},
      {"no duration in the record: the default (15 s) applies, 10 s: wait",
       Held("other", absl::ZeroDuration()), absl::Seconds(10), LeaseAction::kWait},
      {"no duration in the record: the default (15 s) applies, 16 s: take over",
       Held("other", absl::ZeroDuration()), absl::Seconds(16), LeaseAction::kTakeOver},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(LeaseActionName(DecideLeaseAction(c.lease, "me", kT0 + c.since_observed, d15)),
              LeaseActionName(c.want));
  }
}

// The remote renewTime plays no part: only when the record was last seen to change, locally.
TEST(DecideLeaseAction, ToleratesClockSkew) {
  FakeClock clock(kT0);
  ObservedLease lease = Held("other", absl::Seconds(15));
  lease.observed_time = clock.Now();
  // The holder's clock may be an hour behind ours; the lease is still valid for 15 s of ours.
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(DecideLeaseAction(lease, "me", clock.Now(), absl::Seconds(15)), LeaseAction::kWait);
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(DecideLeaseAction(lease, "me", clock.Now(), absl::Seconds(15)),
            LeaseAction::kTakeOver);
}

TEST(NextLeaseSpec, CreateRenewTakeOver) {
  LeaseSpec created = NextLeaseSpec(LeaseAction::kCreate, {}, "a", kT0, absl::Seconds(15));
  EXPECT_EQ(created.holder_identity(), "a");
  EXPECT_EQ(created.lease_duration_seconds(), 15);
  EXPECT_EQ(created.lease_transitions(), 0);
  EXPECT_TRUE(created.has_lease_transitions());
  EXPECT_EQ(created.acquire_time().seconds(), 1700000000);
  EXPECT_EQ(created.renew_time().seconds(), 1700000000);

  LeaseSpec renewed = NextLeaseSpec(LeaseAction::kRenew, created, "a", kT0 + absl::Seconds(2),
                                    absl::Seconds(15));
  EXPECT_EQ(renewed.holder_identity(), "a");
  EXPECT_EQ(renewed.acquire_time().seconds(), 1700000000);  // kept
  EXPECT_EQ(renewed.renew_time().seconds(), 1700000002);
  EXPECT_EQ(renewed.lease_transitions(), 0);

  LeaseSpec taken = NextLeaseSpec(LeaseAction::kTakeOver, renewed, "b",
                                  kT0 + absl::Milliseconds(20500), absl::Seconds(15));
  EXPECT_EQ(taken.holder_identity(), "b");
  EXPECT_EQ(taken.acquire_time().seconds(), 1700000020);
  EXPECT_EQ(taken.acquire_time().nanos(), 500000000);
  EXPECT_EQ(taken.renew_time().seconds(), 1700000020);
  EXPECT_EQ(taken.lease_transitions(), 1);

  LeaseSpec again = NextLeaseSpec(LeaseAction::kTakeOver, taken, "a", kT0, absl::Seconds(15));
  EXPECT_EQ(again.lease_transitions(), 2);
}

TEST(NextLeaseSpec, DurationRoundsUpToWholeSeconds) {
  EXPECT_EQ(NextLeaseSpec(LeaseAction::kCreate, {}, "a", kT0, absl::Milliseconds(1500))
                .lease_duration_seconds(),
            2);
  EXPECT_EQ(NextLeaseSpec(LeaseAction::kCreate, {}, "a", kT0, absl::Milliseconds(100))
                .lease_duration_seconds(),
            1);
}

TEST(ReleasedLeaseSpec, EmptiesHolderAndKeepsTransitions) {
  LeaseSpec held = NextLeaseSpec(LeaseAction::kCreate, {}, "a", kT0, absl::Seconds(15));
  held.set_lease_transitions(7);
  LeaseSpec released = ReleasedLeaseSpec(held, kT0 + absl::Seconds(5));
  EXPECT_TRUE(released.has_holder_identity());
  EXPECT_EQ(released.holder_identity(), "");
  EXPECT_EQ(released.lease_duration_seconds(), 1);
  EXPECT_EQ(released.lease_transitions(), 7);
  EXPECT_EQ(released.renew_time().seconds(), 1700000005);
  // A standby takes a released lease over at once, whatever it observed.
  ObservedLease observed;
  observed.exists = true;
  observed.holder = released.holder_identity();
  observed.lease_duration = absl::Seconds(1);
  observed.observed_time = kT0 + absl::Seconds(5);
  EXPECT_EQ(DecideLeaseAction(observed, "b", kT0 + absl::Seconds(5), absl::Seconds(15)),
            LeaseAction::kTakeOver);
}

TEST(LeaderElectionConfig, Validate) {
  LeaderElectionConfig c;
  EXPECT_FALSE(c.Validate().ok());
  c.lease_name = "x";
  c.identity = LeaderElectionConfig::DefaultIdentity();
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  EXPECT_NE(c.identity.find('_'), std::string::npos);
  c.renew_deadline = c.lease_duration;
  EXPECT_FALSE(c.Validate().ok());
}

}  // namespace
}  // namespace capstan::client
