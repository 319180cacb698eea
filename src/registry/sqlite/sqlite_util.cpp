#include "registry/sqlite/sqlite_util.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace mw::registry_internal {

namespace {

// The file a storage error is about, quoted, for messages.
std::string DatabaseName(sqlite3* db) {
  const char* file = db != nullptr ? sqlite3_db_filename(db, "main") : nullptr;
  if (file == nullptr || *file == '\0') return "the registry database";
  return std::string("the registry database '") + file + "'";
}

bool IsNoSpace(int err) { return err == ENOSPC || err == EDQUOT; }
bool IsNotWritable(int err) { return err == EPERM || err == EACCES || err == EROFS; }

// The OS error under an SQLite storage error. sqlite3_system_errno is not
// set when the write failed inside COMMIT (where WAL writes happen), so the
// file is asked directly: not writable (read-only mode or file system, an
// immutable file: access() sees all three), or no space left. Last, errno
// as SQLite left it when it returned.
int StorageErrno(sqlite3* db, int errno_on_return) {
  if (db == nullptr) return errno_on_return;
  if (int err = sqlite3_system_errno(db); err != 0) return err;
  const char* file = sqlite3_db_filename(db, "main");
  if (file == nullptr || *file == '\0') return errno_on_return;
  const std::string path = file;
  const std::string dir = std::filesystem::path(path).parent_path().string();
  for (const std::string& p : {path, path + "-wal", dir}) {
    if (!p.empty() && access(p.c_str(), F_OK) == 0 && access(p.c_str(), W_OK) != 0) return errno;
  }
  struct statvfs fs {};
  if (statvfs(dir.empty() ? "." : dir.c_str(), &fs) == 0 && fs.f_bavail == 0) return ENOSPC;
  return errno_on_return;
}

// Storage errors say which file, what happened and what to do; SQLite's own
// words follow in brackets. An I/O error is named by the OS error under it
// (SQLite reports a write refused with EPERM, e.g. an immutable file, as
// SQLITE_IOERR_WRITE "disk I/O error").
Status StorageStatus(sqlite3* db, int rc, int errno_on_return, const std::string& msg) {
  const int primary = rc & 0xff;
  const int err = StorageErrno(db, errno_on_return);
  const std::string file = DatabaseName(db);
  const std::string os = err != 0 ? std::string(" (") + std::strerror(err) + ")" : std::string();
  if (primary == SQLITE_FULL || (primary == SQLITE_IOERR && IsNoSpace(err))) {
    return ResourceExhaustedError("disk full while writing " + file + os +
                                  ": free space on that disk and retry; nothing recorded before was lost [" +
                                  msg + "; the disk is full]");
  }
  if (primary != SQLITE_IOERR || IsNotWritable(err)) {
    return PermissionDeniedError(file + " is read-only" + os +
                                 ": make the file, its -wal file and its directory writable (chmod, chattr -i, or "
                                 "remount the disk read-write) and retry [" + msg + "]");
  }
  return UnavailableError("I/O error on " + file + os + ": check the disk (dmesg) and retry [" + msg + "]");
}

}  // namespace

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  const int errno_on_return = errno;  // before anything else can change it
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = std::string(what) + ": " + detail;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(msg + " (another process holds the database; stop it or wait)");
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
        return AlreadyExistsError(msg);
      }
      return InvalidArgumentError(msg);
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
      return PermissionDeniedError(msg + " (check the permissions of the file and its directory)");
    case SQLITE_READONLY:
    case SQLITE_FULL:
    case SQLITE_IOERR:
      return StorageStatus(db, rc, errno_on_return, msg);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return DataLossError(msg);
    default:
      return InternalError(msg);
  }
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

static void Keep(int& first_rc, int rc) {
  if (first_rc == SQLITE_OK) first_rc = rc;
}

void Stmt::Bind(int index, std::string_view text) {
  Keep(bind_rc_, sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}
void Stmt::Bind(int index, int64_t value) { Keep(bind_rc_, sqlite3_bind_int64(stmt_, index, value)); }
void Stmt::BindNull(int index) { Keep(bind_rc_, sqlite3_bind_null(stmt_, index)); }
void Stmt::Bind(int index, const std::optional<std::string>& text) {
  if (text) {
    Bind(index, std::string_view(*text));
  } else {
    BindNull(index);
  }
}
void Stmt::Bind(int index, const std::optional<int64_t>& value) {
  if (value) {
    Bind(index, *value);
  } else {
    BindNull(index);
  }
}

Result<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) return SqliteStatus(db_, bind_rc_, "binding a query parameter");
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // sqlite3_step returns the extended code; errmsg describes it.
  return SqliteStatus(db_, rc, "registry query failed");
}

Status Stmt::Run() {
  while (true) {
    ASSIGN_OR_RETURN(const bool row, Step());
    if (!row) return Status::Ok();
  }
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
std::string Stmt::Text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
}
std::optional<std::string> Stmt::OptText(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Text(col);
}
std::optional<int64_t> Stmt::OptInt(int col) const {
  if (IsNull(col)) return std::nullopt;
  return Int(col);
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  // sqlite3_close_v2 checkpoints the WAL when this is the last connection.
  sqlite3_close_v2(conn_);
}

Result<Stmt> Db::Prepare(const char* sql) {
  auto it = cache_.find(std::string_view(sql));
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(conn_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(conn_, rc, "preparing a registry query");
    it = cache_.emplace(sql, stmt).first;
  }
  return Stmt(conn_, it->second);
}

Status Db::Exec(const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(conn_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(conn_, rc, what);
  return Status::Ok();
}

}  // namespace mw::registry_internal
