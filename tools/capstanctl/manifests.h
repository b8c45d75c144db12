// Reading manifests for apply -f / delete -f: a file, a directory or stdin, holding YAML or JSON
// documents. A document of kind List contributes its items.
#ifndef CAPSTAN_TOOLS_CAPSTANCTL_MANIFESTS_H_
#define CAPSTAN_TOOLS_CAPSTANCTL_MANIFESTS_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <nlohmann/json.hpp>

namespace capstan::capstanctl {

struct Manifest {
  nlohmann::json object;
  std::string source;  // the file it came from ("STDIN" for -)
};

// path "-" reads in; a directory contributes its *.yaml, *.yml and *.json files in name order.
absl::StatusOr<std::vector<Manifest>> ReadManifests(const std::string& path, std::istream& in);

}  // namespace capstan::capstanctl

#endif  // CAPSTAN_TOOLS_CAPSTANCTL_MANIFESTS_H_
