// Kubernetes resource quantities ("500m", "1Gi", "2", "1e3", "0.5"), as
// k8s.io/apimachinery/pkg/api/resource parses them:
//
//   <quantity> ::= <signedNumber><suffix>
//   <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//   <suffix>   ::= "" | n | u | m | k | M | G | T | P | E          (decimal SI)
//                | Ki | Mi | Gi | Ti | Pi | Ei                     (binary SI)
//                | e<signedInteger> | E<signedInteger>             (decimal exponent)
//
// Values are exact to a nano-unit; anything finer is rounded up (away from zero), as Kubernetes
// rounds. Conversions to coarser units round up too, so "1m" CPU is never mistaken for zero and
// "0.5" bytes reads as 1 byte, matching Quantity.MilliValue() and Quantity.Value().
#ifndef CAPSTAN_LIB_API_QUANTITY_H_
#define CAPSTAN_LIB_API_QUANTITY_H_

#include <cstdint>
#include <string_view>

#include "absl/numeric/int128.h"
#include "absl/status/statusor.h"

namespace capstan::api {

// Kubernetes' message for a malformed quantity, used as the field error detail.
inline constexpr char kQuantityFormatError[] =
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

// The exact value in nano-units (10^-9). InvalidArgument for bad syntax or suffix,
// OutOfRange when the value does not fit. Use this to compare quantities exactly.
absl::StatusOr<absl::int128> ParseQuantityNano(std::string_view text);

// The value in milli-units ("250m" -> 250, "1" -> 1000, "1Ki" -> 1024000), rounded up.
// This is how CPU is compared. OutOfRange when it does not fit in int64 (e.g. "9Ei").
absl::StatusOr<int64_t> ParseQuantityMilli(std::string_view text);

// The value in base units ("64Mi" -> 67108864, "250m" -> 1), rounded up. This is how memory
// and storage are compared.
absl::StatusOr<int64_t> ParseQuantityValue(std::string_view text);

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_QUANTITY_H_
