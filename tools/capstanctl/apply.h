// kubectl apply's client-side three-way merge, as pure functions over JSON values.
//
// The last manifest applied to an object is kept in its annotation
// kubectl.kubernetes.io/last-applied-configuration. A new apply sends a JSON merge patch (RFC 7386)
// made of the new manifest's fields that differ from the live object, plus null for each field
// the last-applied manifest had and the new one dropped (so fields set by others, such as server
// defaults or a controller's, survive). Objects are diffed recursively; arrays are replaced whole.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_APPLY_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_APPLY_H_

#include <string>

#include <nlohmann/json.hpp>

namespace capstan::capstanctl {

inline constexpr char kLastAppliedAnnotation[] = "kubectl.kubernetes.io/last-applied-configuration";

// The annotation's value for manifest: its compact JSON without the annotation itself.
std::string LastAppliedConfiguration(const nlohmann::json& manifest);

// manifest with the annotation set to LastAppliedConfiguration(manifest).
nlohmann::json WithLastApplied(const nlohmann::json& manifest);

// The last-applied manifest recorded on a live object; null when there is none (or it is not
// valid JSON, in which case nothing is deleted, as kubectl does).
nlohmann::json LastAppliedOf(const nlohmann::json& live);

// The merge patch that takes `current` (the live object) to `modified` (the new manifest with its
// annotation), deleting what `original` (the last-applied manifest, or null) had and `modified`
// dropped. An empty object when nothing differs.
nlohmann::json ThreeWayMergePatch(const nlohmann::json& original, const nlohmann::json& modified,
                                  const nlohmann::json& current);

// True when patch changes nothing but the last-applied annotation (or nothing at all).
bool OnlyLastAppliedChanges(const nlohmann::json& patch);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_APPLY_H_
