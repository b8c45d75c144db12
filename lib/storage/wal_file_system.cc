#include "lib/storage/wal_file_system.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"

namespace capstan::storage {
namespace {

// Forwards everything to the file RocksDB opened; before an append would come within
// kZeroFillChunk of the end of the zero-filled region, writes the next kZeroFillChunk of zeros
// past it through a descriptor of its own (same inode, same page cache).
class ZeroFilledWalFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  ZeroFilledWalFile(std::unique_ptr<rocksdb::FSWritableFile> file, int fd)
      : FSWritableFileOwnerWrapper(std::move(file)), fd_(fd) {}
  ~ZeroFilledWalFile() override { CloseOwnDescriptor(); }

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = ZeroFillFor(data.size()); !s.ok()) return s;
    return target()->Append(data, options, dbg);
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                           const rocksdb::DataVerificationInfo& info,
                           rocksdb::IODebugContext* dbg) override {
    if (rocksdb::IOStatus s = ZeroFillFor(data.size()); !s.ok()) return s;
    return target()->Append(data, options, info, dbg);
  }
  rocksdb::IOStatus Close(const rocksdb::IOOptions& options,
                          rocksdb::IODebugContext* dbg) override {
    CloseOwnDescriptor();
    return target()->Close(options, dbg);
  }

 private:
  rocksdb::IOStatus ZeroFillFor(size_t bytes) {
    end_ += bytes;
    if (fd_ < 0 || end_ + kZeroFillChunk <= zeroed_) return rocksdb::IOStatus::OK();
    static const char kZeros[64 << 10] = {};
    const uint64_t target = end_ + 2 * kZeroFillChunk;
    while (zeroed_ < target) {
      const ssize_t n = pwrite(fd_, kZeros, sizeof kZeros, static_cast<off_t>(zeroed_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // Not fatal: the log is still written correctly, only by growing the file.
        CloseOwnDescriptor();
        return rocksdb::IOStatus::OK();
      }
      zeroed_ += static_cast<uint64_t>(n);
    }
    return rocksdb::IOStatus::OK();
  }

  void CloseOwnDescriptor() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  int fd_;               // Our own write descriptor of the log file; -1 once given up.
  uint64_t end_ = 0;     // End of the records RocksDB has appended (a new file starts empty).
  uint64_t zeroed_ = 0;  // End of the zero-filled region: [end_, zeroed_) is zeros.
};

class ZeroFilledWalFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit ZeroFilledWalFileSystem(std::shared_ptr<rocksdb::FileSystem> base)
      : FileSystemWrapper(std::move(base)) {}

  const char* Name() const override { return "CapstanZeroFilledWal"; }

  rocksdb::IOStatus NewWritableFile(const std::string& path,
                                    const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(path, options, result, dbg);
    if (!s.ok() || !IsWalFileName(path)) return s;
    const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return s;  // Keep RocksDB's file as it is.
    *result = std::make_unique<ZeroFilledWalFile>(std::move(*result), fd);
    return s;
  }
};

}  // namespace

bool IsWalFileName(std::string_view path) {
  const size_t slash = path.rfind('/');
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  constexpr std::string_view kSuffix = ".log";
  if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) {
    return false;
  }
  for (char c : name.substr(0, name.size() - kSuffix.size())) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::shared_ptr<rocksdb::FileSystem> NewZeroFilledWalFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base) {
  return std::make_shared<ZeroFilledWalFileSystem>(std::move(base));
}

}  // namespace capstan::storage
