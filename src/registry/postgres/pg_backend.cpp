// PgBackend: connection, errors, write transactions and Open (the schema
// migrations are in pg_schema.cpp, the rows in pg_rows.cpp).
#include "registry/postgres/pg_backend.h"

#include <algorithm>
#include <utility>
#include <chrono>
#include <thread>

#include "common/fnv_hash.h"
#include "common/log.h"

namespace mw::registry_internal {
namespace {

// How long a write waits for the fleet's write lock (another server's write
// transaction) before kUnavailable; at least the SQLite busy timeout.
constexpr int kMinLockTimeoutMs = 30000;
// How often a lost COMMIT's outcome is asked for while the database is away.
constexpr auto kLostCommitRetry = std::chrono::milliseconds(100);
// After a connection could not be made, or was cut at its deadline, calls
// fail at once for this long before the next one tries again.
constexpr auto kRetryPause = std::chrono::milliseconds(1000);
// What the client waits beyond statement_timeout before it cuts the
// connection itself (the server's own timeout answers first when it can).
constexpr int kDeadlineSlackMs = 1000;

// The URL plus the connection parameters of OpenOptions (issue 26), each
// unless the URL already sets it.
std::string WithConnectOptions(const std::string& url, const OpenOptions& o) {
  std::string out = url;
  auto add = [&](const std::string& key, int value) {
    if (url.find(key + "=") != std::string::npos) return;
    out += (out.find('?') == std::string::npos ? "?" : "&") + key + "=" + std::to_string(value);
  };
  add("connect_timeout", std::max(1, o.connect_timeout_s));
  add("keepalives", 1);
  add("keepalives_idle", std::max(1, o.keepalive_s));
  add("keepalives_interval", std::max(1, o.keepalive_s / 3));
  add("keepalives_count", 3);
  // Data sent and not acknowledged for this long: the connection is dead
  // (a network that drops packets; keepalives only probe an idle one).
  add("tcp_user_timeout", o.statement_timeout_ms + kDeadlineSlackMs);
  return out;
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
    : url_(WithConnectOptions(url, options)), display_(RedactPostgresUrl(url)), options_(options) {}

PgBackend::~PgBackend() { Drop(); }

void PgBackend::Drop() {
  // Destructors of libpqxx objects do not throw (a failed ROLLBACK is
  // reported to the notice handler); the server discards an aborted
  // transaction when the connection closes.
  tx_.reset();
  conn_.reset();
}

std::chrono::milliseconds PgBackend::CallTimeout() const {
  return std::chrono::milliseconds(options_.statement_timeout_ms + kDeadlineSlackMs);
}

std::string PgBackend::ChangeChannel(std::string_view search_path) {
  if (search_path.empty() || search_path == "\"$user\", public") return kChangeChannel;
  // Hex digits: a plain identifier, whatever the path holds.
  return std::string(kChangeChannel) + "_" + Fnv1a64Hex(search_path);
}

std::unique_ptr<pqxx::connection> PgBackend::OpenConnection(std::string* started, std::string* channel) {
  auto conn = std::make_unique<pqxx::connection>(url_);  // connect_timeout bounds it
  // on: COMMIT returns after the WAL is flushed (the default, made sure:
  // the state machine's commit points rely on it).
  const std::string settings = "SET synchronous_commit = on; SET client_min_messages = warning; SET lock_timeout = " +
                               std::to_string(WriteWaitMs()) + "; SET statement_timeout = " +
                               std::to_string(options_.statement_timeout_ms) +
                               "; SELECT pg_postmaster_start_time()::text, current_setting('search_path')";
  const auto r = Guarded(*conn, CallTimeout(), nullptr, [&] {
    pqxx::nontransaction n(*conn);
    return n.exec(settings);
  });
  if (started != nullptr) *started = r[0][0].as<std::string>();
  if (channel != nullptr) *channel = ChangeChannel(r[0][1].as<std::string>());
  return conn;
}

Status PgBackend::Connect() {
  if (conn_ && conn_->is_open()) return Status::Ok();
  Drop();
  if (std::chrono::steady_clock::now() < retry_at_) return UnavailableError(down_reason_);
  const auto start = std::chrono::steady_clock::now();
  try {
    conn_ = OpenConnection(&server_started_, &channel_);
    return Status::Ok();
  } catch (...) {
    Status st = MapError("connecting");
    // A refusal came at once (PostgreSQL down: the next call may find it
    // back); a connection that timed out makes the next callers answer at once.
    if (std::chrono::steady_clock::now() - start >= kRetryPause) {
      retry_at_ = std::chrono::steady_clock::now() + kRetryPause;
      down_reason_ = st.message() + " (not tried again for a second)";
    }
    return st;
  }
}

Status PgBackend::MapError(std::string_view what) {
  const std::string db = "registry database " + display_;
  if (std::exchange(cut_, false)) {
    Drop();
    retry_at_ = std::chrono::steady_clock::now() + kRetryPause;
    down_reason_ = db + " did not answer within " + std::to_string(CallTimeout().count() / 1000) +
                   " s (registry_statement_timeout_s, plus a second): is it stalled or overloaded? "
                   "The server reconnects on a later registry call";
    return UnavailableError(down_reason_ + " (" + std::string(what) + ")");
  }
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
    if (code == "57014") {  // statement_timeout
      return UnavailableError(db + " did not finish " + std::string(what) + " within registry_statement_timeout_s (" +
                              std::to_string(options_.statement_timeout_ms / 1000) + " s): is it overloaded? [" +
                              msg + "]");
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
  changed_.clear();
  changed_all_ = false;
  for (int attempt = 0;; ++attempt) {
    const bool had_connection = conn_ != nullptr;
    RETURN_IF_ERROR(Connect());
    try {
      Guarded(*conn_, CallTimeout(), &cut_, [&] {
        tx_ = std::make_unique<pqxx::work>(*conn_);
        return 0;
      });
      // The transaction's id, for asking after a COMMIT whose answer is lost.
      // The write lock may be waited for up to lock_timeout: its statement
      // alone gets that long (statement_timeout counts per statement of a
      // multi-statement query since PostgreSQL 13; set_config runs after
      // the lock is taken and applies from the next statement on).
      const int lock_wait_ms = WriteWaitMs() + kDeadlineSlackMs;
      const auto r = Guarded(*conn_, std::chrono::milliseconds(lock_wait_ms) + CallTimeout(), &cut_, [&] {
        return tx_->exec("SET LOCAL statement_timeout = " + std::to_string(lock_wait_ms) +
                         "; SELECT pg_advisory_xact_lock(" + std::to_string(kWriteLockKey) +
                         "), txid_current(), set_config('statement_timeout', '" +
                         std::to_string(options_.statement_timeout_ms) + "', true)");
      });
      tx_xid_ = r[0][1].as<int64_t>();
      return Status::Ok();
    } catch (const pqxx::broken_connection&) {
      // Nothing was written yet: one retry on a fresh connection.
      const bool cut = cut_;
      Status st = MapError("starting a registry transaction");
      if (attempt > 0 || !had_connection || cut) return st;
    } catch (...) {
      Status st = MapError("starting a registry transaction");
      tx_.reset();
      return st;
    }
  }
}

void PgBackend::NoteChanged(std::string_view name) {
  constexpr size_t kMaxNames = 100;  // more: "*" (a NOTIFY payload is at most 8 000 bytes)
  if (changed_all_ || std::find(changed_.begin(), changed_.end(), name) != changed_.end()) return;
  if (changed_.size() >= kMaxNames) {
    changed_all_ = true;
    changed_.clear();
    return;
  }
  changed_.emplace_back(name);
}

Status PgBackend::Commit() {
  if (!tx_) return InternalError("no registry write transaction is open");
  if (changed_all_ || !changed_.empty()) {
    // Issue 26: every node's event stream and list cache hear of it (LISTEN).
    std::string payload = ScopeSnapshot().node_id;
    if (changed_all_) payload += "\n*";
    for (const std::string& name : changed_) payload += "\n" + name;
    changed_.clear();
    changed_all_ = false;
    try {
      Guarded(*conn_, CallTimeout(), &cut_, [&] {
        return tx_->exec("SELECT pg_notify(" + tx_->quote(channel_) + ", " + tx_->quote(payload) +
                         ")");
      });
    } catch (...) {
      Status st = MapError("committing a registry transaction");
      tx_.reset();
      return st;
    }
  }
  try {
    // COMMIT POINT: with synchronous_commit=on, COMMIT returns after the
    // server flushed its WAL to disk.
    Guarded(*conn_, CallTimeout(), &cut_, [&] {
      tx_->commit();
      return 0;
    });
    tx_.reset();
    details_.ForgetAll();  // this node's own write: visible now
    return Status::Ok();
  } catch (const pqxx::in_doubt_error&) {
    cut_ = false;  // the message says the answer was lost, which says it all
    const std::string lost = MapError("committing a registry transaction").message();  // drops the connection
    // Asked after the registry's mutex is released (Transaction::Commit).
    lost_commit_ = [this, xid = tx_xid_, lost, started = server_started_] {
      Status st = ResolveLostCommit(xid, lost, started);
      details_.ForgetAll();  // whatever it was, it is settled now
      return st;
    };
    return UnavailableError(lost);
  } catch (...) {
    Status st = MapError("committing a registry transaction");
    tx_.reset();  // a failed COMMIT has rolled back
    return st;
  }
}

int PgBackend::WriteWaitMs() const { return std::max(options_.busy_timeout_ms, kMinLockTimeoutMs); }

std::function<Status()> PgBackend::TakeLostCommit() { return std::exchange(lost_commit_, {}); }

Status PgBackend::ResolveLostCommit(int64_t xid, const std::string& lost, const std::string& started_before) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(WriteWaitMs());
  const std::string x = std::to_string(xid);
  const std::string not_recorded =
      "registry database " + display_ + " went away during COMMIT and the write was not recorded; retry";
  // Its own connections: conn_ belongs to whoever holds the registry now.
  std::unique_ptr<pqxx::connection> conn;
  std::string server_started;
  Status last = Status::Ok();
  for (;;) {
    if (!conn) {
      try {
        conn = OpenConnection(&server_started);
        last = Status::Ok();
      } catch (const std::exception& e) {
        last = UnavailableError(std::string("cannot reach the database: ") + e.what());
      }
    }
    if (conn) {
      try {
        pqxx::nontransaction n(*conn);
        // After a restart, a transaction id whose WAL was lost can be handed
        // out again, so txid_status alone could answer for another one. The
        // latest checkpoint (the one ending recovery or the shutdown) tells:
        // its next id is past every id that was made durable.
        if (server_started != started_before) {
          const auto r = Guarded(*conn, CallTimeout(), nullptr,
                                 [&] { return n.exec("SELECT next_xid FROM pg_control_checkpoint()"); });
          const std::string next = r[0][0].as<std::string>();  // "epoch:xid"
          const size_t colon = next.find(':');
          const int64_t next_xid = colon == std::string::npos
                                       ? std::stoll(next)
                                       : (std::stoll(next.substr(0, colon)) << 32) + std::stoll(next.substr(colon + 1));
          if (next_xid <= xid) return UnavailableError(not_recorded);
        }
        const auto r =
            Guarded(*conn, CallTimeout(), nullptr, [&] { return n.exec("SELECT txid_status(" + x + ")"); });
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
        last = e.sqlstate().starts_with("08") || e.sqlstate().starts_with("57P")
                   ? UnavailableError("asking whether transaction " + x + " was recorded: " + e.what())
                   : InternalError("asking whether transaction " + x + " was recorded: " + e.what());
        conn.reset();
      } catch (const std::exception& e) {
        last = UnavailableError("asking whether transaction " + x + " was recorded: " + e.what());
        conn.reset();
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
    Guarded(*conn_, CallTimeout(), &cut_, [&] {
      tx_->abort();
      return 0;
    });
  } catch (const std::exception& e) {
    MW_LOG(kWarn, "registry") << "rollback on " << display_ << " failed: " << e.what();
  }
  tx_.reset();
  if (cut_) (void)MapError("rolling back");  // drops the connection cut at its deadline
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
