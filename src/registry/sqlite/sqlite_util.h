// Internal to registry/: a thin RAII layer over the SQLite C API.
// Not part of the contract; other folders include registry/registry.h only.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/status.h"

namespace mw::registry_internal {

// Maps an SQLite result code to a Status with a message saying what failed
// (`what`), SQLite's own words, and, where there is one, what to do about it.
Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

// A cached prepared statement, borrowed for one use: bind, step, read
// columns; the destructor resets it for the next user. Not copyable.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  // Parameters are 1-based, as in SQLite. Texts are copied (SQLITE_TRANSIENT).
  void Bind(int index, std::string_view text);
  void Bind(int index, const std::string& text) { Bind(index, std::string_view(text)); }
  void Bind(int index, int64_t value);
  void BindNull(int index);
  void Bind(int index, const std::optional<std::string>& text);
  void Bind(int index, const std::optional<int64_t>& value);

  // Steps once: true if a row is available, false when done.
  [[nodiscard]] Result<bool> Step();
  // Steps to the end, for statements that return no rows.
  [[nodiscard]] Status Run();

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  std::string Text(int col) const;
  std::optional<std::string> OptText(int col) const;
  std::optional<int64_t> OptInt(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// One connection and its statement cache. SqliteBackend owns it; the
// backend's mutex serialises all use of it.
class Db {
 public:
  Db(sqlite3* conn, std::string path) : conn_(conn), path_(std::move(path)) {}
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  sqlite3* conn() const { return conn_; }
  const std::string& path() const { return path_; }

  // Returns a cached statement for `sql` (prepared on first use).
  // Precondition: the backend's mutex is held.
  [[nodiscard]] Result<Stmt> Prepare(const char* sql);
  // Runs SQL text with no parameters and no result rows (BEGIN, COMMIT, DDL).
  [[nodiscard]] Status Exec(const char* sql, std::string_view what);

 private:
  sqlite3* conn_;
  std::string path_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

}  // namespace mw::registry_internal
