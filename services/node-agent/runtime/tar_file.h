// Reads files out of an uncompressed tar archive (an OCI image layout as `skopeo` or
// scripts/make-image.sh write it): one pass to index the entries, then reads by name.
// Understands ustar, pax ("x" headers' path=) and GNU long names; regular files only.
#ifndef CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_TAR_FILE_H_
#define CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_TAR_FILE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace capstan::nodeagent {

class TarFile {
 public:
  static absl::StatusOr<std::unique_ptr<TarFile>> Open(const std::string& path);
  ~TarFile();

  bool Contains(const std::string& name) const { return entries_.count(name) > 0; }
  // The whole file; FailedPrecondition when larger than max_size.
  absl::StatusOr<std::string> ReadAll(const std::string& name, int64_t max_size) const;
  // The file in pieces of at most 1 MiB; stops at the first error sink returns.
  absl::Status Read(const std::string& name,
                    const std::function<absl::Status(absl::string_view)>& sink) const;

 private:
  struct Entry {
    int64_t offset;
    int64_t size;
  };
  TarFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  absl::Status Index();

  std::string path_;
  int fd_;
  std::map<std::string, Entry> entries_;  // by name without a leading "./"
};

}  // namespace capstan::nodeagent

#endif  // CAPSTAN_SERVICES_NODE_AGENT_RUNTIME_TAR_FILE_H_
