// Taints and tolerations (Kubernetes' v1 helper: Toleration.ToleratesTaint, Taint.MatchTaint,
// and the well-known taint keys of k8s.io/api/core/v1/well_known_taints.go). Shared by the
// scheduler's TaintToleration filter, the node lifecycle controller's taint-based eviction and the
// apiserver's DefaultTolerationSeconds admission.
#ifndef CAPSTAN_LIB_API_TAINTS_H_
#define CAPSTAN_LIB_API_TAINTS_H_

#include "google/protobuf/repeated_ptr_field.h"
#include "proto/core_v1.pb.h"

namespace capstan::api {

// Effects.
inline constexpr char kTaintEffectNoSchedule[] = "NoSchedule";
inline constexpr char kTaintEffectPreferNoSchedule[] = "PreferNoSchedule";
inline constexpr char kTaintEffectNoExecute[] = "NoExecute";

// Taint keys the control plane sets on nodes.
inline constexpr char kTaintNodeNotReady[] = "node.kubernetes.io/not-ready";
inline constexpr char kTaintNodeUnreachable[] = "node.kubernetes.io/unreachable";
inline constexpr char kTaintNodeUnschedulable[] = "node.kubernetes.io/unschedulable";
inline constexpr char kTaintNodeMemoryPressure[] = "node.kubernetes.io/memory-pressure";
inline constexpr char kTaintNodeDiskPressure[] = "node.kubernetes.io/disk-pressure";
inline constexpr char kTaintNodeNetworkUnavailable[] = "node.kubernetes.io/network-unavailable";
inline constexpr char kTaintNodePIDPressure[] = "node.kubernetes.io/pid-pressure";

// Whether toleration tolerates taint: an empty effect matches every effect, an empty key with
// operator Exists matches every key; Exists ignores the value, Equal (or empty) compares it.
bool ToleratesTaint(const capstan::core::v1::Toleration& toleration,
                    const capstan::core::v1::Taint& taint);
// Whether any of tolerations tolerates taint.
bool TolerationsTolerateTaint(
    const google::protobuf::RepeatedPtrField<capstan::core::v1::Toleration>& tolerations,
    const capstan::core::v1::Taint& taint);
// The first of tolerations that tolerates taint, or nullptr (the per-taint step of Kubernetes'
// GetMatchingTolerations: the first match is the one whose tolerationSeconds counts).
const capstan::core::v1::Toleration* FirstTolerationOf(
    const google::protobuf::RepeatedPtrField<capstan::core::v1::Toleration>& tolerations,
    const capstan::core::v1::Taint& taint);

// Taint.MatchTaint: the same key and effect (a node has at most one taint per key and effect;
// value and timeAdded do not make another one).
bool MatchTaint(const capstan::core::v1::Taint& a, const capstan::core::v1::Taint& b);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_TAINTS_H_
