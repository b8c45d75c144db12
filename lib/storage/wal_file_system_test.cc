// The zero-filled WAL against real RocksDB on the real file system: the zeros are really there
// while the database is open, and a crash image (the files as they are while it runs, zeros
// included) recovers every synced write, also when an older WAL with a zero tail is followed by
// a newer one.

#include "lib/storage/wal_file_system.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "test/harness/apiserver_process.h"

namespace capstan::storage {
namespace {

namespace fs = std::filesystem;

TEST(WalFileName, OnlyNumberedLogFiles) {
  EXPECT_TRUE(IsWalFileName("/data/000012.log"));
  EXPECT_TRUE(IsWalFileName("000004.log"));
  EXPECT_TRUE(IsWalFileName("/data/archive/000004.log"));
  EXPECT_FALSE(IsWalFileName("/data/LOG"));
  EXPECT_FALSE(IsWalFileName("/data/LOG.old.1700000000"));
  EXPECT_FALSE(IsWalFileName("/data/.log"));
  EXPECT_FALSE(IsWalFileName("/data/MANIFEST-000005"));
  EXPECT_FALSE(IsWalFileName("/data/000010.sst"));
  EXPECT_FALSE(IsWalFileName("/data/x00012.log"));
  EXPECT_FALSE(IsWalFileName("/data/000012.log.tmp"));
}

// Number of zero bytes at the end of a file.
uint64_t ZeroTail(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto last = std::find_if(bytes.rbegin(), bytes.rend(), [](char c) { return c != 0; });
  return static_cast<uint64_t>(last - bytes.rbegin());
}

std::vector<fs::path> WalFiles(const std::string& dir) {
  std::vector<fs::path> wals;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (IsWalFileName(entry.path().string())) wals.push_back(entry.path());
  }
  std::sort(wals.begin(), wals.end());
  return wals;
}

// A crash image: every file of `from` as it is now, while its database is open.
void CopyDirectory(const std::string& from, const std::string& to) {
  fs::create_directories(to);
  for (const auto& entry : fs::directory_iterator(from)) {
    fs::copy_file(entry.path(), fs::path(to) / entry.path().filename());
  }
}

class ZeroFilledWalTest : public ::testing::Test {
 protected:
  ZeroFilledWalTest()
      : root_(testing::MakeTempDir("wal-")),
        env_(rocksdb::NewCompositeEnv(NewZeroFilledWalFileSystem(rocksdb::FileSystem::Default()))) {}
  ~ZeroFilledWalTest() override {
    Close();
    testing::RemoveTree(root_);
  }

  void Close() {
    for (rocksdb::ColumnFamilyHandle* h : handles_) delete h;
    handles_.clear();
    db_.reset();
  }

  // Opens (creating) the database at `path` with families "default", "a" and "b" through the
  // zero-filled WAL.
  void Open(const std::string& path) {
    rocksdb::DBOptions options;
    options.env = env_.get();
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"a", {}}, {"b", {}}};
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, families, &handles_, &db).ok());
    db_.reset(db);
  }

  void Put(rocksdb::ColumnFamilyHandle* family, const std::string& key) {
    rocksdb::WriteOptions sync;
    sync.sync = true;
    ASSERT_TRUE(db_->Put(sync, family, key, std::string(2000, 'v')).ok());
  }

  // The keys of `family` in order.
  std::vector<std::string> Keys(rocksdb::ColumnFamilyHandle* family) {
    std::vector<std::string> keys;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) keys.push_back(it->key().ToString());
    EXPECT_TRUE(it->status().ok());
    return keys;
  }

  static std::vector<std::string> Numbered(const std::string& prefix, int n) {
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(1000 + i));
    return keys;
  }

  void Reopen(const std::string& path) {
    Close();
    Open(path);
  }

  std::string root_;
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

TEST_F(ZeroFilledWalTest, TheLogIsZeroFilledAheadOfItsRecords) {
  Open(root_ + "/db");
  for (const std::string& key : Numbered("k", 100)) Put(handles_[1], key);
  std::vector<fs::path> wals = WalFiles(root_ + "/db");
  ASSERT_EQ(wals.size(), 1u);
  // 100 records of ~2 KB end near 200 KB; the zeros reach at least a chunk past them.
  EXPECT_GE(ZeroTail(wals[0]), kZeroFillChunk);
  EXPECT_GE(fs::file_size(wals[0]), 100 * 2000 + kZeroFillChunk);
}

TEST_F(ZeroFilledWalTest, ACrashImageRecoversEverySyncedWrite) {
  Open(root_ + "/db");
  // Several chunks' worth, so the zeros were extended while records were being written.
  const std::vector<std::string> keys = Numbered("k", 2000);
  for (const std::string& key : keys) Put(handles_[1], key);
  CopyDirectory(root_ + "/db", root_ + "/image");
  std::vector<fs::path> wals = WalFiles(root_ + "/image");
  ASSERT_EQ(wals.size(), 1u);
  ASSERT_GE(ZeroTail(wals[0]), kZeroFillChunk);  // The image does end in zeros.

  Reopen(root_ + "/image");
  EXPECT_EQ(Keys(handles_[1]), keys);
  // The recovered database keeps working, through a new zero-filled log.
  Put(handles_[1], "z-after-recovery");
  EXPECT_EQ(Keys(handles_[1]).back(), "z-after-recovery");
}

TEST_F(ZeroFilledWalTest, AnOlderLogsZerosDoNotEndRecoveryBeforeANewerLog) {
  Open(root_ + "/db");
  const std::vector<std::string> before = Numbered("a", 50);
  for (const std::string& key : before) Put(handles_[1], key);
  Put(handles_[2], "b-in-first-log");
  // Flushing "a" starts a new log; the first stays live because "b"'s unflushed write is only
  // in it.
  ASSERT_TRUE(db_->Flush(rocksdb::FlushOptions(), handles_[1]).ok());
  const std::vector<std::string> after = Numbered("c", 50);
  for (const std::string& key : after) Put(handles_[1], key);
  CopyDirectory(root_ + "/db", root_ + "/image");
  std::vector<fs::path> wals = WalFiles(root_ + "/image");
  ASSERT_EQ(wals.size(), 2u);
  // RocksDB closes (truncates) the older log when it switches, but a crash can come between the
  // switch and the close: give the image's older log the zeros it would then have.
  if (ZeroTail(wals[0]) < kZeroFillChunk) {
    std::ofstream(wals[0], std::ios::binary | std::ios::app) << std::string(kZeroFillChunk, '\0');
  }

  Reopen(root_ + "/image");
  std::vector<std::string> all = before;
  all.insert(all.end(), after.begin(), after.end());
  EXPECT_EQ(Keys(handles_[1]), all);
  EXPECT_EQ(Keys(handles_[2]), std::vector<std::string>{"b-in-first-log"});
}

TEST_F(ZeroFilledWalTest, ACleanCloseLeavesNoZeros) {
  Open(root_ + "/db");
  for (const std::string& key : Numbered("k", 20)) Put(handles_[1], key);
  const fs::path wal = WalFiles(root_ + "/db").at(0);
  Reopen(root_ + "/db");  // Closes the log: RocksDB truncates it to its records.
  if (fs::exists(wal)) EXPECT_EQ(ZeroTail(wal), 0u);
  EXPECT_EQ(Keys(handles_[1]), Numbered("k", 20));
}

}  // namespace
}  // namespace capstan::storage
