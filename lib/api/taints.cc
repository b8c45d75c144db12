#include "lib/api/taints.h"

namespace capstan::api {

using capstan::core::v1::Taint;
using capstan::core::v1::Toleration;

bool ToleratesTaint(const Toleration& toleration, const Taint& taint) {
  if (!toleration.effect().empty() && toleration.effect() != taint.effect()) return false;
  if (!toleration.key().empty() && toleration.key() != taint.key()) return false;
  const std::string& op = toleration.operator_();
  if (op == "Exists") return true;
  if (op.empty() || op == "Equal") return toleration.value() == taint.value();
  return false;
}

bool TolerationsTolerateTaint(const google::protobuf::RepeatedPtrField<Toleration>& tolerations,
                              const Taint& taint) {
  return FirstTolerationOf(tolerations, taint) != nullptr;
}

const Toleration* FirstTolerationOf(
    const google::protobuf::RepeatedPtrField<Toleration>& tolerations, const Taint& taint) {
  for (const Toleration& toleration : tolerations) {
    if (ToleratesTaint(toleration, taint)) return &toleration;
  }
  return nullptr;
}

bool MatchTaint(const Taint& a, const Taint& b) {
  return a.key() == b.key() && a.effect() == b.effect();
}

}  // namespace capstan::api
