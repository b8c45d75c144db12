// Preemption (Kubernetes' DefaultPreemption PostFilter, simplified): when a pod fits nowhere, find
// a node where evicting some lower-priority pods would let it fit, and the fewest, least important
// such pods. Pure: no I/O; the caller deletes the victims and nominates the node.
#ifndef CAPSTAN_SERVICES_SCHEDULER_PREEMPTION_H_
#define CAPSTAN_SERVICES_SCHEDULER_PREEMPTION_H_

#include <optional>
#include <string>
#include <vector>

#include "services/scheduler/framework/framework.h"
#include "services/scheduler/framework/node_info.h"

namespace capstan::scheduler {

struct PreemptionPlan {
  std::string node_name;
  std::vector<Pod> victims;  // most important first
};

// Whether the pod may preempt others at all (spec.preemptionPolicy is not "Never").
bool MayPreempt(const Pod& pod);

// For every node on which the pod does not fit for a reason evictions could cure (a filter said
// Unschedulable, not UnschedulableAndUnresolvable): remove every pod with lower priority than the
// pod; if the pod then passes the filters, give the removed pods back one at a time, most
// important first (higher priority, then newer), keeping each whose return still lets the pod
// fit. What is left out are that node's victims. Of the candidate nodes the one chosen has the
// lowest highest-victim priority, then the smallest sum of victim priorities, then the fewest
// victims, then the smallest name. nullopt when the pod may not preempt or no node would do.
// Pods with the pod's priority or higher are never victims.
std::optional<PreemptionPlan> FindPreemption(const Framework& framework, const Pod& pod,
                                             const Snapshot& snapshot);

}  // namespace capstan::scheduler

#endif  // CAPSTAN_SERVICES_SCHEDULER_PREEMPTION_H_
