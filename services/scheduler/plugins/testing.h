// Test helpers: nodes and pods from protobuf text, as small as the tables need.
#ifndef CAPSTAN_SERVICES_SCHEDULER_PLUGINS_TESTING_H_
#define CAPSTAN_SERVICES_SCHEDULER_PLUGINS_TESTING_H_

#include <map>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "services/scheduler/framework/framework.h"

namespace capstan::scheduler::testing {

template <typename T>
T Parse(const std::string& text) {
  T message;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

inline Node MakeNode(const std::string& name, const std::string& cpu = "4",
                     const std::string& memory = "8Gi", const std::string& pods = "110",
                     const std::map<std::string, std::string>& labels = {},
                     const std::string& extra = "") {
  Node node = Parse<Node>(extra);
  node.mutable_metadata()->set_name(name);
  (*node.mutable_metadata()->mutable_labels())["kubernetes.io/hostname"] = name;
  for (const auto& [k, v] : labels) (*node.mutable_metadata()->mutable_labels())[k] = v;
  auto& alloc = *node.mutable_status()->mutable_allocatable();
  alloc["cpu"].set_string(cpu);
  alloc["memory"].set_string(memory);
  alloc["pods"].set_string(pods);
  return node;
}

inline Pod MakePod(const std::string& name, const std::string& cpu = "", const std::string& memory = "",
                   const std::map<std::string, std::string>& labels = {},
                   const std::string& spec_extra = "") {
  Pod pod = Parse<Pod>("spec { " + spec_extra + " }");
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  for (const auto& [k, v] : labels) (*pod.mutable_metadata()->mutable_labels())[k] = v;
  auto* container = pod.mutable_spec()->add_containers();
  container->set_name("c");
  if (!cpu.empty()) (*container->mutable_resources()->mutable_requests())["cpu"].set_string(cpu);
  if (!memory.empty()) {
    (*container->mutable_resources()->mutable_requests())["memory"].set_string(memory);
  }
  return pod;
}

// A snapshot of `nodes` with `pods` bound to the node each names in spec.nodeName.
inline Snapshot MakeSnapshot(const std::vector<Node>& nodes, const std::vector<Pod>& pods = {}) {
  return Snapshot::FromObjects(nodes, pods);
}

inline Pod On(Pod pod, const std::string& node) {
  pod.mutable_spec()->set_node_name(node);
  return pod;
}

// Scores of one plugin over all nodes of the snapshot, normalized as the framework does.
inline std::vector<int64_t> ScoreAll(const ScorePlugin& plugin, const Pod& pod,
                                     const Snapshot& snapshot) {
  std::vector<const NodeInfo*> nodes;
  for (const NodeInfo& n : snapshot.nodes()) nodes.push_back(&n);
  std::vector<int64_t> scores;
  for (const NodeInfo* n : nodes) scores.push_back(plugin.Score(pod, *n, snapshot));
  plugin.NormalizeScores(pod, nodes, scores);
  return scores;
}

}  // namespace capstan::scheduler::testing

#endif  // CAPSTAN_SERVICES_SCHEDULER_PLUGINS_TESTING_H_
