// The scheduling framework's decision core (Kubernetes' pkg/scheduler/framework + schedule_one):
// run every filter over every node, score the feasible ones, pick the best. No I/O, no threads:
// the caller owns the Snapshot and binds the result.
#ifndef CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_FRAMEWORK_H_
#define CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_FRAMEWORK_H_

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "services/scheduler/framework/node_info.h"
#include "services/scheduler/framework/types.h"

namespace capstan::scheduler {

class FilterPlugin {
 public:
  virtual ~FilterPlugin() = default;
  virtual std::string name() const = 0;
  // Ok when the pod may run on the node; otherwise Unschedulable(AndUnresolvable) with
  // Kubernetes' reason text.
  virtual Status Filter(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const = 0;
  // Kubernetes' PreFilter returning Skip: true when Filter would pass every node for this pod
  // (it asks nothing of nodes), so a scheduling cycle leaves the plugin out. Asked once a cycle.
  virtual bool SkipsFilter(const PodToSchedule& pod, const Snapshot& snapshot) const { return false; }
};

class ScorePlugin {
 public:
  virtual ~ScorePlugin() = default;
  virtual std::string name() const = 0;
  // The node's score for the pod. After NormalizeScores it must lie in [0, 100]; plugins whose
  // raw score already does need not override NormalizeScores.
  virtual int64_t Score(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot) const = 0;
  // Kubernetes' ScoreExtensions.NormalizeScore: rescales the raw scores of all feasible nodes
  // (same order as `nodes`) into [0, 100].
  virtual void NormalizeScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                               std::vector<int64_t>& scores) const {}
  // Kubernetes' PreScore returning Skip: true when the plugin has nothing to score for this pod
  // (every node would get the same score), so a cycle leaves it out of the sum.
  virtual bool SkipsScore(const PodToSchedule& pod, const Snapshot& snapshot) const { return false; }
};

// Source of randomness for the tie-break, injected so tests and replays are deterministic.
class Rng {
 public:
  virtual ~Rng() = default;
  // Uniform in [0, n); n > 0.
  virtual uint64_t Uniform(uint64_t n) = 0;
};

class SeededRng : public Rng {
 public:
  explicit SeededRng(uint64_t seed) : engine_(seed) {}
  uint64_t Uniform(uint64_t n) override {
    return std::uniform_int_distribution<uint64_t>(0, n - 1)(engine_);
  }

 private:
  std::mt19937_64 engine_;
};

struct WeightedScorePlugin {
  std::shared_ptr<const ScorePlugin> plugin;
  int64_t weight = 1;
};

// A plugin set: filters run in order, scores are summed with their weights.
struct Plugins {
  std::vector<std::shared_ptr<const FilterPlugin>> filters;
  std::vector<WeightedScorePlugin> scores;
};

// Why nodes were rejected: each failing node's status (from the first filter that failed it).
struct Diagnosis {
  std::map<std::string, Status> node_to_status;
  std::map<std::string, std::string> node_to_plugin;  // the plugin that failed the node
};

// "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {node-role:
// master}." Every reason of every failing node counts once; the entries are ordered by count,
// larger first, then by text. With no nodes at all: "no nodes available to schedule pods".
std::string FitErrorMessage(int64_t num_all_nodes, const Diagnosis& diagnosis);

// Filled for every feasible node of every cycle, so it allocates nothing: the node is the
// snapshot's (valid while the snapshot is unchanged) and the plugins' scores are inline.
struct NodeScore {
  using PluginScores = absl::InlinedVector<int64_t, 8>;
  explicit NodeScore(const NodeInfo* node) : node(node) {}
  // Read only for the winner: each node's name is one more cache miss per node and cycle.
  std::string_view name() const { return node->name(); }

  const NodeInfo* node;
  int64_t total = 0;  // weighted sum
  // Each score plugin's normalized score, before weighting, in the order of Plugins::scores;
  // 0 for a plugin that skipped the pod.
  PluginScores by_plugin;
};

struct ScheduleResult {
  bool scheduled() const { return !node_name.empty(); }
  std::string node_name;  // empty when no node fits
  int64_t evaluated_nodes = 0;
  int64_t feasible_nodes = 0;
  Diagnosis diagnosis;
  std::string message;            // FitErrorMessage when not scheduled
  std::vector<NodeScore> scores;  // feasible nodes, in snapshot order
};

class Framework {
 public:
  Framework(Plugins plugins, std::unique_ptr<Rng> rng)
      : plugins_(std::move(plugins)), rng_(std::move(rng)) {}

  // Runs the filters on one node, stopping at the first failure; Ok when all pass. Sets
  // `failed_plugin` (when non-null) to the failing plugin's name.
  Status RunFilters(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot,
                    std::string* failed_plugin = nullptr) const;

  // Scores the given (feasible) nodes: each plugin's raw scores, normalized, clamped to [0, 100],
  // weighted and summed; plugins that skip the pod add nothing.
  std::vector<NodeScore> RunScores(const PodToSchedule& pod, const std::vector<const NodeInfo*>& nodes,
                                   const Snapshot& snapshot) const;

  // One scheduling cycle for `pod`. As kube-scheduler (percentageOfNodesToScore, adaptive), it
  // stops filtering once NumFeasibleNodesToFind nodes fit, starting each cycle where the previous
  // one stopped; a pod that fits nowhere is checked against every node. The snapshot is not
  // changed; call Snapshot::AssumePod with the result to account for the placement.
  ScheduleResult Schedule(const Pod& pod, const Snapshot& snapshot);

  const Plugins& plugins() const { return plugins_; }

 private:
  using ActiveFilters = absl::InlinedVector<const FilterPlugin*, 8>;
  Status RunFilters(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot,
                    const ActiveFilters& filters, std::string* failed_plugin) const;

  Plugins plugins_;
  std::unique_ptr<Rng> rng_;
  size_t next_start_node_index_ = 0;
};

// How many feasible nodes a cycle looks for among all_nodes: all below 100; else
// max(100, all_nodes * max(5, 50 - all_nodes / 125) / 100), as kube-scheduler's default.
int64_t NumFeasibleNodesToFind(int64_t all_nodes);

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_FRAMEWORK_FRAMEWORK_H_
