#include "lib/storage/store.h"

#include <cstdint>
#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"

namespace capstan::storage {

std::optional<int64_t> ConflictModRevision(const absl::Status& status) {
  // absl::optional, which is not std::optional in Debian's Abseil build.
  auto payload = status.GetPayload(kModRevisionPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  int64_t revision = 0;
  if (!absl::SimpleAtoi(std::string(*payload), &revision)) return std::nullopt;
  return revision;
}

}  // namespace capstan::storage
