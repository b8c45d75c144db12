#include "services/node-agent/runtime/tar_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace capstan::nodeagent {
namespace {

constexpr int64_t kBlock = 512;

// Numeric header fields are octal text, NUL- or space-terminated.
int64_t Octal(const char* field, size_t size) {
  int64_t value = 0;
  for (size_t i = 0; i < size && field[i] >= '0' && field[i] <= '7'; ++i) {
    value = value * 8 + (field[i] - '0');
  }
  return value;
}

std::string Field(const char* field, size_t size) { return std::string(field, strnlen(field, size)); }

std::string CleanName(std::string name) {
  while (absl::StartsWith(name, "./")) name = name.substr(2);
  return name;
}

// A pax header is records "LEN key=value\n"; only the path matters here.
std::string PaxPath(const std::string& records) {
  size_t pos = 0;
  while (pos < records.size()) {
    size_t space = records.find(' ', pos);
    if (space == std::string::npos) break;
    int64_t len = 0;
    if (!absl::SimpleAtoi(records.substr(pos, space - pos), &len) || len <= 0) break;
    std::string record = records.substr(space + 1, pos + len - space - 2);  // without '\n'
    if (absl::StartsWith(record, "path=")) return record.substr(5);
    pos += len;
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<TarFile>> TarFile::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    absl::StatusCode code = errno == ENOENT ? absl::StatusCode::kNotFound
                                            : absl::StatusCode::kFailedPrecondition;
    return absl::Status(code, absl::StrCat("open ", path, ": ", strerror(errno)));
  }
  std::unique_ptr<TarFile> tar(new TarFile(path, fd));
  if (absl::Status s = tar->Index(); !s.ok()) return s;
  return tar;
}

TarFile::~TarFile() { close(fd_); }

absl::Status TarFile::Index() {
  int64_t offset = 0;
  std::string long_name;  // from a preceding pax or GNU long-name entry
  char header[kBlock];
  while (true) {
    ssize_t n = pread(fd_, header, kBlock, offset);
    if (n == 0) break;  // tolerate a missing end-of-archive marker
    if (n != kBlock) return absl::DataLossError(absl::StrCat(path_, ": truncated tar header"));
    if (header[0] == '\0') break;  // end-of-archive (zero blocks)
    int64_t size = Octal(header + 124, 12);
    char type = header[156];
    int64_t data = offset + kBlock;
    offset = data + (size + kBlock - 1) / kBlock * kBlock;
    if (type == 'x' || type == 'L') {
      std::string text(static_cast<size_t>(size), '\0');
      if (pread(fd_, text.data(), text.size(), data) != size) {
        return absl::DataLossError(absl::StrCat(path_, ": truncated tar entry"));
      }
      long_name = type == 'x' ? PaxPath(text) : Field(text.data(), text.size());
      continue;
    }
    std::string name = long_name;
    long_name.clear();
    if (name.empty()) {
      name = Field(header, 100);
      std::string prefix = Field(header + 345, 155);  // ustar splits long names
      if (!prefix.empty() && memcmp(header + 257, "ustar", 5) == 0) {
        name = absl::StrCat(prefix, "/", name);
      }
    }
    if (type == '0' || type == '\0') entries_[CleanName(name)] = Entry{data, size};
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TarFile::ReadAll(const std::string& name, int64_t max_size) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat(path_, ": no ", name));
  if (it->second.size > max_size) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": ", name, " is too large"));
  }
  std::string out;
  absl::Status s = Read(name, [&out](absl::string_view piece) {
    out.append(piece.data(), piece.size());
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return out;
}

absl::Status TarFile::Read(const std::string& name,
                           const std::function<absl::Status(absl::string_view)>& sink) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat(path_, ": no ", name));
  std::vector<char> buf(1 << 20);
  int64_t done = 0;
  while (done < it->second.size) {
    size_t want = static_cast<size_t>(std::min<int64_t>(buf.size(), it->second.size - done));
    ssize_t n = pread(fd_, buf.data(), want, it->second.offset + done);
    if (n <= 0) return absl::DataLossError(absl::StrCat(path_, ": short read of ", name));
    if (absl::Status s = sink(absl::string_view(buf.data(), static_cast<size_t>(n))); !s.ok()) {
      return s;
    }
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace capstan::nodeagent
