// PgBackend: connection, errors, write transactions and Open (the schema
// migrations are in pg_schema.cpp, the rows in pg_rows.cpp).
#include "registry/postgres/pg_backend.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/log.h"

namespace mw::registry_internal {
namespace {

// How long a write waits for the fleet's write lock (another server's write
// transaction) before kUnavailable; at least the SQLite busy timeout.
constexpr int kMinLockTimeoutMs = 30000;
// How often a lost COMMIT's outcome is asked for while the database is away.
constexpr auto kLostCommitRetry = std::chrono::milliseconds(100);

std::string WithConnectTimeout(const std::string& url) {
  if (url.find("connect_timeout=") != std::string::npos) return url;
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "connect_timeout=10";
}

}  // namespace

std::string RedactPostgresUrl(std::string_view url) {
  std::string out(url);
  // postgresql://user:PASSWORD@host...
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t at = out.find('@', start);
    const size_t slash = out.find('/', start);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // ...?password=PASSWORD&...
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    const size_t value = p + 9;
    const size_t end = out.find('&', value);
    out.replace(value, (end == std::string::npos ? out.size() : end) - value, "***");
  }
  return out;
}

PgBackend::PgBackend(std::string url, const OpenOptions& options)
    : url_(WithConnectTimeout(url)), display_(RedactPostgresUrl(url)), options_(options) {}

PgBackend::~PgBackend() { Drop(); }

void PgBackend::Drop() {
  // Destructors of libpqxx objects do not throw (a failed ROLLBACK is
  // reported to the notice handler); the server discards an aborted
  // transaction when the connection closes.
  tx_.reset();
  conn_.reset();
}

Status PgBackend::Connect() {
  if (conn_ && conn_->is_open()) return Status::Ok();
  Drop();
  try {
    conn_ = std::make_unique<pqxx::connection>(url_);
    pqxx::nontransaction n(*conn_);
    // on: COMMIT returns after the WAL is flushed (the default, made sure:
    // the state machine's commit points rely on it).
    const auto r = n.exec("SET synchronous_commit = on; SET client_min_messages = warning; SET lock_timeout = " +
                          std::to_string(WriteWaitMs()) + "; SELECT pg_postmaster_start_time()::text");
    server_started_ = r[0][0].as<std::string>();
    return Status::Ok();
  } catch (...) {
    return MapError("connecting");
  }
}

Status PgBackend::MapError(std::string_view what) {
  const std::string db = "registry database " + display_;
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    Drop();
    return UnavailableError("lost the connection to " + db + " during COMMIT (" + std::string(what) +
                            "): whether it was recorded is unknown; the server retries [" + e.what() + "]");
  } catch (const pqxx::broken_connection& e) {
    Drop();
    return UnavailableError("cannot reach " + db + " (" + std::string(what) +
                            "): is PostgreSQL running and reachable? The server reconnects on its next "
                            "registry call [" + std::string(e.what()) + "]");
  } catch (const pqxx::sql_error& e) {
    const std::string& code = e.sqlstate();
    std::string msg = std::string(what) + ": " + e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (code == "23505") return AlreadyExistsError(msg);
    if (code == "23503") return InvalidArgumentError(msg + " (FOREIGN KEY)");
    if (code.starts_with("23") || code.starts_with("22")) return InvalidArgumentError(msg);
    if (code == "25006") {
      return PermissionDeniedError(db + " is read-only (a standby, or default_transaction_read_only is on): "
                                   "point `registry` at the primary server [" + msg + "]");
    }
    if (code == "42501" || code.starts_with("28")) {
      return PermissionDeniedError("the role of " + db + " may not do this; grant it CREATE and read/write "
                                   "on its schema [" + msg + "]");
    }
    if (code == "55P03" || code == "40001" || code == "40P01") {
      return UnavailableError(db + " is busy (another server holds its write lock); retry [" + msg + "]");
    }
    if (code.starts_with("53")) {
      return ResourceExhaustedError(db + " is out of resources (disk full, too many connections); free some "
                                    "and retry [" + msg + "]");
    }
    if (code.starts_with("08") || code.starts_with("57P")) {
      Drop();
      return UnavailableError(db + " is shutting down or unreachable; the server reconnects [" + msg + "]");
    }
    return InternalError(db + ": " + msg + " (SQLSTATE " + code + ")");
  } catch (const std::exception& e) {
    return InternalError(db + ": " + std::string(what) + ": " + e.what());
  } catch (...) {
    return InternalError(db + ": " + std::string(what) + ": unknown error");
  }
}

Status PgBackend::Begin(WriteMode mode) {
  if (tx_) return InternalError("a registry write transaction is already open");
  // A bulk transaction (the startup cleanup) is all or nothing: its rows
  // need no savepoint each (two round trips per row saved).
  bulk_ = mode == WriteMode::kBulk;
  for (int attempt = 0;; ++attempt) {
    const bool had_connection = conn_ != nullptr;
    RETURN_IF_ERROR(Connect());
    try {
      tx_ = std::make_unique<pqxx::work>(*conn_);
      // The transaction's id, for asking after a COMMIT whose answer is lost.
      const auto r =
          tx_->exec("SELECT pg_advisory_xact_lock(" + std::to_string(kWriteLockKey) + "), txid_current()");
      tx_xid_ = r[0][1].as<int64_t>();
      return Status::Ok();
    } catch (const pqxx::broken_connection&) {
      // Nothing was written yet: one retry on a fresh connection.
      Status st = MapError("starting a registry transaction");
      if (attempt > 0 || !had_connection) return st;
    } catch (...) {
      Status st = MapError("starting a registry transaction");
      tx_.reset();
      return st;
    }
  }
}

Status PgBackend::Commit() {
  if (!tx_) return InternalError("no registry write transaction is open");
  try {
    // COMMIT POINT: with synchronous_commit=on, COMMIT returns after the
    // server flushed its WAL to disk.
    tx_->commit();
    tx_.reset();
    return Status::Ok();
  } catch (const pqxx::in_doubt_error&) {
    const std::string lost = MapError("committing a registry transaction").message();  // drops the connection
    return ResolveLostCommit(tx_xid_, lost);
  } catch (...) {
    Status st = MapError("committing a registry transaction");
    tx_.reset();  // a failed COMMIT has rolled back
    return st;
  }
}

int PgBackend::WriteWaitMs() const { return std::max(options_.busy_timeout_ms, kMinLockTimeoutMs); }

Status PgBackend::ResolveLostCommit(int64_t xid, const std::string& lost) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(WriteWaitMs());
  const std::string started_before = server_started_;  // Connect() overwrites it
  const std::string x = std::to_string(xid);
  const std::string not_recorded =
      "registry database " + display_ + " went away during COMMIT and the write was not recorded; retry";
  Status last = Status::Ok();
  for (;;) {
    last = Connect();
    if (last.ok()) {
      try {
        pqxx::nontransaction n(*conn_);
        // After a restart, a transaction id whose WAL was lost can be handed
        // out again, so txid_status alone could answer for another one. The
        // latest checkpoint (the one ending recovery or the shutdown) tells:
        // its next id is past every id that was made durable.
        if (server_started_ != started_before) {
          const auto r = n.exec("SELECT next_xid FROM pg_control_checkpoint()");
          const std::string next = r[0][0].as<std::string>();  // "epoch:xid"
          const size_t colon = next.find(':');
          const int64_t next_xid = colon == std::string::npos
                                       ? std::stoll(next)
                                       : (std::stoll(next.substr(0, colon)) << 32) + std::stoll(next.substr(colon + 1));
          if (next_xid <= xid) return UnavailableError(not_recorded);
        }
        const auto r = n.exec("SELECT txid_status(" + x + ")");
        const std::string state = r[0][0].is_null() ? "" : r[0][0].as<std::string>();
        if (state == "committed") {
          MW_LOG(kWarn, "registry") << "the answer to a COMMIT on " << display_
                                    << " was lost; the database, back, says it was recorded";
          return Status::Ok();
        }
        if (state == "aborted") return UnavailableError(not_recorded);
        // "in progress": its old session has not ended yet (a broken network): ask again.
        // NULL: too old to tell (cannot be, it just ran).
        last = UnavailableError("transaction " + x + " is " + (state.empty() ? "unknown" : state));
        if (state != "in progress") break;
      } catch (const pqxx::sql_error& e) {
        // 22023 "transaction ID ... is in the future": it never became durable.
        if (e.sqlstate() == "22023") return UnavailableError(not_recorded);
        last = MapError("asking whether transaction " + x + " was recorded");
      } catch (...) {
        last = MapError("asking whether transaction " + x + " was recorded");
      }
    }
    if (last.code() != StatusCode::kUnavailable) break;  // no use waiting (a refused login, ...)
    if (std::chrono::steady_clock::now() + kLostCommitRetry >= deadline) break;
    std::this_thread::sleep_for(kLostCommitRetry);
  }
  return UnavailableError(lost + "; still unknown after asking for " + std::to_string(WriteWaitMs() / 1000) +
                          " s (" + last.message() + ")");
}

void PgBackend::Rollback() {
  if (!tx_) return;
  try {
    tx_->abort();
  } catch (const std::exception& e) {
    MW_LOG(kWarn, "registry") << "rollback on " << display_ << " failed: " << e.what();
  }
  tx_.reset();
}

Status PgBackend::CheckIntegrity() {
  // PostgreSQL keeps its own files consistent; what can differ is the
  // schema another server migrated since.
  return Read("checking the schema version", [&](pqxx::transaction_base& tx) -> Status {
    const auto r = tx.exec("SELECT version FROM modelwarden_schema");
    if (r.size() != 1) return DataLossError("registry database " + display_ + " has no schema version row");
    const int64_t v = r[0][0].as<int64_t>();
    if (v != Registry::kSchemaVersion) {
      return DataLossError("registry database " + display_ + " has schema version " + std::to_string(v) +
                           ", this server uses " + std::to_string(Registry::kSchemaVersion));
    }
    return Status::Ok();
  });
}

Result<int64_t> PgBackend::Checkpoint() { return int64_t{0}; }  // PostgreSQL checkpoints by itself

Result<std::unique_ptr<Backend>> OpenPostgres(const std::string& url, const OpenOptions& options) {
  auto backend = std::make_unique<PgBackend>(url, options);
  RETURN_IF_ERROR(backend->Open());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace mw::registry_internal
