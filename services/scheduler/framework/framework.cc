#include "services/scheduler/framework/framework.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace capstan::scheduler {

std::string FitErrorMessage(int64_t num_all_nodes, const Diagnosis& diagnosis) {
  if (num_all_nodes == 0) return "no nodes available to schedule pods";
  absl::flat_hash_map<std::string, int64_t> counts;
  for (const auto& [node, status] : diagnosis.node_to_status) {
    for (const std::string& reason : status.reasons()) ++counts[reason];
  }
  std::vector<std::pair<int64_t, std::string>> entries;
  entries.reserve(counts.size());
  for (const auto& [reason, count] : counts) entries.emplace_back(count, reason);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  });
  std::string message = absl::StrCat("0/", num_all_nodes, " nodes are available");
  if (entries.empty()) return absl::StrCat(message, ".");
  std::vector<std::string> parts;
  parts.reserve(entries.size());
  for (const auto& [count, reason] : entries) parts.push_back(absl::StrCat(count, " ", reason));
  return absl::StrCat(message, ": ", absl::StrJoin(parts, ", "), ".");
}

Status Framework::RunFilters(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot,
                             std::string* failed_plugin) const {
  ActiveFilters all;
  for (const auto& filter : plugins_.filters) all.push_back(filter.get());
  return RunFilters(pod, node, snapshot, all, failed_plugin);
}

Status Framework::RunFilters(const PodToSchedule& pod, const NodeInfo& node, const Snapshot& snapshot,
                             const ActiveFilters& filters, std::string* failed_plugin) const {
  for (const FilterPlugin* filter : filters) {
    Status status = filter->Filter(pod, node, snapshot);
    if (!status.ok()) {
      if (failed_plugin != nullptr) *failed_plugin = filter->name();
      return status;
    }
  }
  return Status();
}

std::vector<NodeScore> Framework::RunScores(const PodToSchedule& pod,
                                            const std::vector<const NodeInfo*>& nodes,
                                            const Snapshot& snapshot) const {
  std::vector<NodeScore> result;
  result.reserve(nodes.size());
  for (const NodeInfo* node : nodes) result.emplace_back(node);
  std::vector<int64_t> scores(nodes.size());
  for (const WeightedScorePlugin& weighted : plugins_.scores) {
    const ScorePlugin& plugin = *weighted.plugin;
    if (plugin.SkipsScore(pod, snapshot)) {
      for (NodeScore& node_score : result) node_score.by_plugin.push_back(0);
      continue;
    }
    for (size_t i = 0; i < nodes.size(); ++i) scores[i] = plugin.Score(pod, *nodes[i], snapshot);
    plugin.NormalizeScores(pod, nodes, scores);
    for (size_t i = 0; i < nodes.size(); ++i) {
      int64_t score = std::clamp(scores[i], kMinNodeScore, kMaxNodeScore);
      result[i].by_plugin.push_back(score);
      result[i].total += score * weighted.weight;
    }
  }
  return result;
}

int64_t NumFeasibleNodesToFind(int64_t all_nodes) {
  constexpr int64_t kMinFeasibleNodesToFind = 100;
  constexpr int64_t kMinPercentage = 5;
  if (all_nodes < kMinFeasibleNodesToFind) return all_nodes;
  int64_t percentage = std::max(kMinPercentage, 50 - all_nodes / 125);
  return std::max(kMinFeasibleNodesToFind, all_nodes * percentage / 100);
}

ScheduleResult Framework::Schedule(const Pod& pod_object, const Snapshot& snapshot) {
  const PodToSchedule pod(pod_object);  // parsed once for every node of the cycle
  ScheduleResult result;
  std::vector<const NodeInfo*> feasible;
  const std::vector<NodeInfo>& nodes = snapshot.nodes();
  const int64_t wanted = NumFeasibleNodesToFind(static_cast<int64_t>(nodes.size()));
  // Start where the previous cycle stopped, so every node gets its turn to be considered.
  const size_t start = nodes.empty() ? 0 : next_start_node_index_ % nodes.size();
  ActiveFilters filters;
  for (const auto& filter : plugins_.filters) {
    if (!filter->SkipsFilter(pod, snapshot)) filters.push_back(filter.get());
  }
  for (size_t i = 0; i < nodes.size() && static_cast<int64_t>(feasible.size()) < wanted; ++i) {
    const NodeInfo& node = nodes[(start + i) % nodes.size()];
    ++result.evaluated_nodes;
    std::string plugin;
    Status status = RunFilters(pod, node, snapshot, filters, &plugin);
    if (status.ok()) {
      feasible.push_back(&node);
    } else {
      result.diagnosis.node_to_status[node.name()] = std::move(status);
      result.diagnosis.node_to_plugin[node.name()] = std::move(plugin);
    }
  }
  if (!nodes.empty()) next_start_node_index_ = (start + result.evaluated_nodes) % nodes.size();
  result.feasible_nodes = static_cast<int64_t>(feasible.size());
  if (feasible.empty()) {
    result.message = FitErrorMessage(static_cast<int64_t>(snapshot.size()), result.diagnosis);
    return result;
  }
  if (feasible.size() == 1) {  // as Kubernetes: nothing to compare
    result.node_name = feasible.front()->name();
    return result;
  }
  result.scores = RunScores(pod, feasible, snapshot);
  int64_t best = result.scores.front().total;
  for (const NodeScore& score : result.scores) best = std::max(best, score.total);
  std::vector<size_t> ties;
  for (size_t i = 0; i < result.scores.size(); ++i) {
    if (result.scores[i].total == best) ties.push_back(i);
  }
  size_t pick = ties.size() == 1 ? ties.front() : ties[rng_->Uniform(ties.size())];
  result.node_name = std::string(result.scores[pick].name());
  return result;
}

}  // namespace capstan::scheduler
