// Storage failures while the server runs (the file was fine at open): a
// write refused by the OS (EPERM: an immutable or read-only file), a full
// disk (ENOSPC), any other I/O error (EIO). Each must come back as a Status
// whose code says which (the API turns them into 503 storage_read_only, 507
// insufficient_storage, 503 unavailable) and whose message names the file
// and says what to do; and the registry must work again once the fault is
// gone, without reopening.
//
// The faults are injected by a VFS shim registered as SQLite's default: it
// is the real unix VFS, except that the files it opens get a copy of the
// real io_methods whose xWrite, while `g_fail_errno` is set, fails as the
// unix VFS fails (errno set; SQLITE_FULL for ENOSPC, else SQLITE_IOERR_WRITE).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cerrno>
#include <string>

#include "registry/registry.h"
#include "support/registry_test_util.h"

namespace mw {
namespace {

using testing_util::TempDir;

int g_fail_errno = 0;  // 0: writes go through
sqlite3_vfs g_shim_vfs;

// The unix VFS uses different method tables for different files (the
// database file, its journal and WAL): one shim table per real one.
struct MethodPair {
  const sqlite3_io_methods* real = nullptr;
  sqlite3_io_methods shim{};
};
MethodPair g_methods[8];

int ShimWrite(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  if (g_fail_errno != 0) {
    errno = g_fail_errno;  // what the unix VFS's xGetLastError reports
    return g_fail_errno == ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
  }
  for (const MethodPair& pair : g_methods) {
    if (file->pMethods == &pair.shim) return pair.real->xWrite(file, data, amount, offset);
  }
  return SQLITE_IOERR_WRITE;
}

// The real VFS opens the file in place; only its method table is swapped
// (the unix methods never look at pMethods themselves).
int ShimOpen(sqlite3_vfs* vfs, const char* name, sqlite3_file* file, int flags, int* out_flags) {
  auto* real = static_cast<sqlite3_vfs*>(vfs->pAppData);
  const int rc = real->xOpen(real, name, file, flags, out_flags);
  if (file->pMethods == nullptr) return rc;
  for (MethodPair& pair : g_methods) {
    if (pair.real == nullptr) {
      pair.real = file->pMethods;
      pair.shim = *file->pMethods;
      pair.shim.xWrite = ShimWrite;
    }
    if (pair.real == file->pMethods) {
      file->pMethods = &pair.shim;
      break;
    }
  }
  return rc;
}

class StorageErrorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
    ASSERT_NE(real, nullptr);
    g_shim_vfs = *real;
    g_shim_vfs.zName = "mw-fault-shim";
    g_shim_vfs.pAppData = real;
    g_shim_vfs.xOpen = ShimOpen;
    ASSERT_EQ(sqlite3_vfs_register(&g_shim_vfs, /*makeDflt=*/1), SQLITE_OK);
  }
  static void TearDownTestSuite() { sqlite3_vfs_unregister(&g_shim_vfs); }

  void SetUp() override {
    path_ = dir_.File("registry.db");
    auto reg = Registry::Open(path_);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    registry_ = std::move(reg).value();
    ASSERT_TRUE(registry_->AddModel(Model("before")).ok());
  }
  void TearDown() override { g_fail_errno = 0; }

  static ModelRecord Model(const std::string& name) {
    ModelRecord m;
    m.model_name = name;
    return m;
  }

  // Adds a model while writes fail with `err`; returns the error. Then
  // checks that nothing was half-written and that, with the fault gone, the
  // same registry writes again.
  Status FailedWrite(int err) {
    g_fail_errno = err;
    auto added = registry_->AddModel(Model("during"));
    g_fail_errno = 0;
    EXPECT_FALSE(added.ok());
    EXPECT_EQ(registry_->GetModel("during").status().code(), StatusCode::kNotFound);
    EXPECT_TRUE(registry_->GetModel("before").ok());
    auto after = registry_->AddModel(Model("after"));
    EXPECT_TRUE(after.ok()) << after.status().ToString();
    EXPECT_TRUE(registry_->CheckIntegrity().ok());
    return added.ok() ? Status::Ok() : added.status();
  }

  void ExpectNamesFile(const Status& st) {
    EXPECT_NE(st.message().find("'" + path_ + "'"), std::string::npos) << st.ToString();
  }

  TempDir dir_;
  std::string path_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(StorageErrorTest, WriteRefusedByTheOsIsReadOnly) {
  Status st = FailedWrite(EPERM);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  ExpectNamesFile(st);
  EXPECT_NE(st.message().find("is read-only"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("writable"), std::string::npos) << st.ToString();
  EXPECT_EQ(st.message().find("disk I/O error"), st.message().rfind("disk I/O error"));  // SQLite's words once
}

TEST_F(StorageErrorTest, ReadOnlyFileSystemIsReadOnly) {
  Status st = FailedWrite(EROFS);
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
  ExpectNamesFile(st);
}

TEST_F(StorageErrorTest, DiskFullIsResourceExhausted) {
  Status st = FailedWrite(ENOSPC);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  ExpectNamesFile(st);
  EXPECT_NE(st.message().find("disk full"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("free space"), std::string::npos) << st.ToString();
}

TEST_F(StorageErrorTest, QuotaExceededIsResourceExhausted) {
  Status st = FailedWrite(EDQUOT);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
}

TEST_F(StorageErrorTest, OtherIoErrorIsUnavailable) {
  Status st = FailedWrite(EIO);
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  ExpectNamesFile(st);
  EXPECT_NE(st.message().find("I/O error"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("check the disk"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace mw
