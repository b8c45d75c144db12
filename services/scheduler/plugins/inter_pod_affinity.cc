// InterPodAffinity: required pod affinity / anti-affinity (both the incoming pod's and existing
// pods' anti-affinity against it) as a filter, preferred terms as a score.
#include <algorithm>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "lib/api/labels.h"
#include "services/scheduler/plugins/plugins.h"

namespace capstan::scheduler::plugins {
namespace {

using core::v1::PodAffinityTerm;

// Kubernetes' hardPodAffinityWeight: how much an existing pod's required affinity towards the
// incoming pod counts in the score.
constexpr int64_t kHardPodAffinityWeight = 1;

// A PodAffinityTerm compiled against the namespace (and labels) of the pod that owns it.
class Term {
 public:
  Term(const PodAffinityTerm& term, const Pod& owner, int64_t weight = 0)
      : topology_key_(term.topology_key()), weight_(weight) {
    if (term.has_label_selector()) {
      absl::StatusOr<api::LabelSelector> selector = api::LabelSelector::FromProto(term.label_selector());
      if (selector.ok()) selector_ = *std::move(selector);
    }
    for (const std::string& ns : term.namespaces()) namespaces_.insert(ns);
    if (term.has_namespace_selector()) {
      absl::StatusOr<api::LabelSelector> selector =
          api::LabelSelector::FromProto(term.namespace_selector());
      if (selector.ok()) namespace_selector_ = *std::move(selector);
    } else if (term.namespaces().empty()) {
      namespaces_.insert(owner.metadata().namespace_());
    }
    // matchLabelKeys / mismatchLabelKeys: the owner's values, ANDed to the selector.
    const auto& labels = owner.metadata().labels();
    for (const std::string& key : term.match_label_keys()) {
      auto it = labels.find(key);
      if (it != labels.end()) extra_.push_back({key, it->second, true});
    }
    for (const std::string& key : term.mismatch_label_keys()) {
      auto it = labels.find(key);
      if (it != labels.end()) extra_.push_back({key, it->second, false});
    }
  }

  const std::string& topology_key() const { return topology_key_; }
  int64_t weight() const { return weight_; }

  bool Matches(const Pod& pod, const Snapshot& snapshot) const {
    if (!selector_) return false;  // no labelSelector selects nothing
    const std::string& ns = pod.metadata().namespace_();
    if (!namespaces_.contains(ns) &&
        !(namespace_selector_ && namespace_selector_->Matches(snapshot.NamespaceLabels(ns)))) {
      return false;
    }
    const auto& labels = pod.metadata().labels();
    if (!selector_->Matches(labels)) return false;
    for (const Extra& extra : extra_) {
      auto it = labels.find(extra.key);
      bool equal = it != labels.end() && it->second == extra.value;
      if (equal != extra.equal) return false;
    }
    return true;
  }

 private:
  struct Extra {
    std::string key;
    std::string value;
    bool equal;
  };
  std::string topology_key_;
  int64_t weight_;
  std::optional<api::LabelSelector> selector_;
  absl::flat_hash_set<std::string> namespaces_;
  std::optional<api::LabelSelector> namespace_selector_;
  std::vector<Extra> extra_;
};

const std::string* Label(const Node& node, const std::string& key) {
  const auto& labels = node.metadata().labels();
  auto it = labels.find(key);
  return it == labels.end() ? nullptr : &it->second;
}

// Whether nodes `a` and `b` share a value for `key` (both must carry the label).
bool SameTopology(const Node& a, const Node& b, const std::string& key) {
  const std::string* va = Label(a, key);
  const std::string* vb = Label(b, key);
  return va != nullptr && vb != nullptr && *va == *vb;
}

std::vector<Term> RequiredTerms(const google::protobuf::RepeatedPtrField<PodAffinityTerm>& terms,
                                const Pod& owner, int64_t weight = 0) {
  std::vector<Term> out;
  out.reserve(terms.size());
  for (const PodAffinityTerm& term : terms) out.emplace_back(term, owner, weight);
  return out;
}

std::vector<Term> PreferredTerms(
    const google::protobuf::RepeatedPtrField<core::v1::WeightedPodAffinityTerm>& terms,
    const Pod& owner, int64_t sign) {
  std::vector<Term> out;
  out.reserve(terms.size());
  for (const auto& term : terms) out.emplace_back(term.pod_affinity_term(), owner, sign * term.weight());
  return out;
}

bool MatchesAll(const std::vector<Term>& terms, const Pod& pod, const Snapshot& snapshot) {
  if (terms.empty()) return false;
  for (const Term& term : terms) {
    if (!term.Matches(pod, snapshot)) return false;
  }
  return true;
}

}  // namespace

Status InterPodAffinity::Filter(const PodToSchedule& to_schedule, const NodeInfo& node,
                                const Snapshot& snapshot) const {
  const Pod& pod = to_schedule.pod;
  const Node& candidate = node.node();
  const core::v1::Affinity& affinity = pod.spec().affinity();

  // 1. The pod's required affinity: every term needs a pod matching all terms in the candidate's
  //    topology domain, unless no such pod exists anywhere and the pod matches its own terms.
  const auto& required_affinity =
      affinity.pod_affinity().required_during_scheduling_ignored_during_execution();
  if (!required_affinity.empty()) {
    std::vector<Term> affinity_terms = RequiredTerms(required_affinity, pod);
    bool has_all_keys = true;
    for (const Term& term : affinity_terms) {
      if (Label(candidate, term.topology_key()) == nullptr) has_all_keys = false;
    }
    if (!has_all_keys) return Status::UnschedulableAndUnresolvable(kReasonPodAffinity);
    std::vector<bool> satisfied(affinity_terms.size(), false);
    bool any_match = false;
    for (const NodeInfo& other : snapshot.nodes()) {
      for (const PodInfo& existing : other.pods()) {
        if (!MatchesAll(affinity_terms, *existing.pod, snapshot)) continue;
        for (size_t i = 0; i < affinity_terms.size(); ++i) {
          if (Label(other.node(), affinity_terms[i].topology_key()) == nullptr) continue;
          any_match = true;
          if (SameTopology(other.node(), candidate, affinity_terms[i].topology_key())) {
            satisfied[i] = true;
          }
        }
      }
    }
    bool all = std::all_of(satisfied.begin(), satisfied.end(), [](bool b) { return b; });
    if (!all && !(!any_match && MatchesAll(affinity_terms, pod, snapshot))) {
      return Status::UnschedulableAndUnresolvable(kReasonPodAffinity);
    }
  }

  // 2. The pod's required anti-affinity: no matching pod in the candidate's domain.
  const auto& required_anti =
      affinity.pod_anti_affinity().required_during_scheduling_ignored_during_execution();
  for (const Term& term : required_anti.empty() ? std::vector<Term>()
                                                : RequiredTerms(required_anti, pod)) {
    if (Label(candidate, term.topology_key()) == nullptr) continue;
    for (const NodeInfo& other : snapshot.nodes()) {
      if (!SameTopology(other.node(), candidate, term.topology_key())) continue;
      for (const PodInfo& existing : other.pods()) {
        if (term.Matches(*existing.pod, snapshot)) {
          return Status::Unschedulable(kReasonPodAntiAffinity);
        }
      }
    }
  }

  // 3. Existing pods' required anti-affinity against this pod (none in most clusters).
  if (snapshot.PodsWithRequiredAntiAffinity() == 0) return Status();
  for (const NodeInfo& other : snapshot.nodes()) {
    if (other.pods_with_required_anti_affinity() == 0) continue;
    for (const PodInfo& existing : other.pods()) {
      if (!existing.has_required_anti_affinity) continue;
      for (const Term& term : RequiredTerms(existing.pod->spec()
                                                .affinity()
                                                .pod_anti_affinity()
                                                .required_during_scheduling_ignored_during_execution(),
                                            *existing.pod)) {
        if (SameTopology(other.node(), candidate, term.topology_key()) &&
            term.Matches(pod, snapshot)) {
          return Status::Unschedulable(kReasonExistingAntiAffinity);
        }
      }
    }
  }
  return Status();
}

int64_t InterPodAffinity::Score(const PodToSchedule& to_schedule, const NodeInfo& node,
                                const Snapshot& snapshot) const {
  const Pod& pod = to_schedule.pod;
  const Node& candidate = node.node();
  const core::v1::Affinity& affinity = pod.spec().affinity();
  // Most pods have no preferred terms, and most clusters no pods with terms: nothing to score.
  if (!affinity.has_pod_affinity() && !affinity.has_pod_anti_affinity() &&
      snapshot.PodsWithAffinity() == 0) {
    return 0;
  }
  // The incoming pod's preferred terms, judged against each existing pod.
  std::vector<Term> incoming = PreferredTerms(
      affinity.pod_affinity().preferred_during_scheduling_ignored_during_execution(), pod, +1);
  std::vector<Term> incoming_anti = PreferredTerms(
      affinity.pod_anti_affinity().preferred_during_scheduling_ignored_during_execution(), pod, -1);
  incoming.insert(incoming.end(), incoming_anti.begin(), incoming_anti.end());

  int64_t score = 0;
  if (incoming.empty() && snapshot.PodsWithAffinity() == 0) return 0;
  for (const NodeInfo& other : snapshot.nodes()) {
    if (incoming.empty() && other.pods_with_affinity() == 0) continue;
    for (const PodInfo& existing : other.pods()) {
      for (const Term& term : incoming) {
        if (SameTopology(other.node(), candidate, term.topology_key()) &&
            term.Matches(*existing.pod, snapshot)) {
          score += term.weight();
        }
      }
      // The existing pod's terms, judged against the incoming pod (symmetry).
      if (!existing.has_pod_affinity) continue;
      const core::v1::Affinity& theirs = existing.pod->spec().affinity();
      std::vector<Term> terms = RequiredTerms(
          theirs.pod_affinity().required_during_scheduling_ignored_during_execution(),
          *existing.pod, kHardPodAffinityWeight);
      std::vector<Term> preferred = PreferredTerms(
          theirs.pod_affinity().preferred_during_scheduling_ignored_during_execution(),
          *existing.pod, +1);
      std::vector<Term> preferred_anti = PreferredTerms(
          theirs.pod_anti_affinity().preferred_during_scheduling_ignored_during_execution(),
          *existing.pod, -1);
      terms.insert(terms.end(), preferred.begin(), preferred.end());
      terms.insert(terms.end(), preferred_anti.begin(), preferred_anti.end());
      for (const Term& term : terms) {
        if (SameTopology(other.node(), candidate, term.topology_key()) &&
            term.Matches(pod, snapshot)) {
          score += term.weight();
        }
      }
    }
  }
  return score;
}

bool InterPodAffinity::SkipsFilter(const PodToSchedule& to_schedule,
                                   const Snapshot& snapshot) const {
  const core::v1::Affinity& affinity = to_schedule.pod.spec().affinity();
  return affinity.pod_affinity().required_during_scheduling_ignored_during_execution().empty() &&
         affinity.pod_anti_affinity()
             .required_during_scheduling_ignored_during_execution()
             .empty() &&
         snapshot.PodsWithRequiredAntiAffinity() == 0;
}

bool InterPodAffinity::SkipsScore(const PodToSchedule& to_schedule,
                                  const Snapshot& snapshot) const {
  const core::v1::Affinity& affinity = to_schedule.pod.spec().affinity();
  return !affinity.has_pod_affinity() && !affinity.has_pod_anti_affinity() &&
         snapshot.PodsWithAffinity() == 0;
}

void InterPodAffinity::NormalizeScores(const PodToSchedule&, const std::vector<const NodeInfo*>&,
                                       std::vector<int64_t>& scores) const {
  if (scores.empty()) return;
  auto [min_it, max_it] = std::minmax_element(scores.begin(), scores.end());
  int64_t min = *min_it;
  int64_t max = *max_it;
  for (int64_t& score : scores) {
    score = max > min ? static_cast<int64_t>(static_cast<double>(kMaxNodeScore) *
                                             static_cast<double>(score - min) /
                                             static_cast<double>(max - min))
                      : 0;
  }
}

}  // namespace capstan::scheduler::plugins
