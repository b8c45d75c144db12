// Conversions between absl::Time and the API's Time (Kubernetes' metav1.Time: whole seconds).
#ifndef CAPSTAN_LIB_API_META_TIME_H_
#define CAPSTAN_LIB_API_META_TIME_H_

#include "absl/time/time.h"
#include "proto/meta.pb.h"

namespace capstan::api {

// Truncated to the second, as metav1.Time serializes.
inline capstan::meta::v1::Time ToMetaTime(absl::Time t) {
  capstan::meta::v1::Time out;
  out.set_seconds(absl::ToUnixSeconds(t));
  return out;
}

inline absl::Time FromMetaTime(const capstan::meta::v1::Time& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// Microsecond precision, as metav1.MicroTime.
inline capstan::meta::v1::MicroTime ToMicroTime(absl::Time t) {
  capstan::meta::v1::MicroTime out;
  const int64_t micros = absl::ToUnixMicros(t);
  out.set_seconds(micros / 1000000);
  out.set_nanos(static_cast<int32_t>(micros % 1000000) * 1000);
  return out;
}

inline absl::Time FromMicroTime(const capstan::meta::v1::MicroTime& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

}  // namespace capstan::api

#endif  // CAPSTAN_LIB_API_META_TIME_H_
