#include "registry/sqlite_util.h"

#include <utility>

namespace mw::registry_internal {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
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
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_CANTOPEN:
      return PermissionDeniedError(msg + " (check the permissions of the file and its directory)");
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return DataLossError(msg);
    case SQLITE_FULL:
      return ResourceExhaustedError(msg + " (the disk is full)");
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
