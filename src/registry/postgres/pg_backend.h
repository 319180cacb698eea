// Internal to registry/: the PostgreSQL implementation of Backend (libpqxx).
// One connection, reopened on the next call after it broke (PostgreSQL
// restarted, network); a call that finds the database down fails with
// kUnavailable and says so. Write transactions are READ COMMITTED and
// start by taking one transaction-scoped advisory lock (kWriteLockKey), so
// the writes of every server sharing the database run one after another,
// as SQLite's BEGIN IMMEDIATE makes them on one machine: each write
// transaction sees everything committed before it (stronger than
// SERIALIZABLE, and no serialization failure can occur between them).
// When the connection breaks during COMMIT (PostgreSQL crashed or restarted
// after the commit record may have been written), Commit asks the server,
// once it is back, whether that transaction committed (txid_status) rather
// than leave the outcome unknown: a recorded write is reported as done, so a
// client never retries one into "already exists"; that wait runs on a
// connection of its own after the registry's mutex is released
// (TakeLostCommit). Reads outside a transaction run in autocommit.
// Issue 26: every connection has TCP keepalives, a connect timeout and a
// statement_timeout (OpenOptions), and each call on it a client-side
// deadline (SocketWatchdog: a stalled server never enforces its own
// statement_timeout); after a connection could not be made or was cut at its
// deadline, calls fail at once with kUnavailable for kRetryPauseMs before the
// next one tries again, so requests queued behind a stuck database answer
// 503 instead of waiting their turn for one timeout each. The heartbeat has
// a connection of its own (HeartbeatApart). libpqxx exceptions never leave
// this class.
#pragma once

#include <chrono>
#include <memory>
#include <pqxx/pqxx>

#include "registry/backend.h"
#include "registry/postgres/pg_detail_cache.h"
#include "registry/postgres/pg_watchdog.h"

namespace mw::registry_internal {

class PgBackend final : public Backend {
 public:
  // Advisory lock key of write transactions and migrations ('MWRG').
  static constexpr int64_t kWriteLockKey = 0x4D575247;

  PgBackend(std::string url, const OpenOptions& options);
  ~PgBackend() override;

  // Connects, refuses a read-only server or a newer schema, and runs the
  // pending migrations. Errors as Registry::Open documents.
  Status Open();

  const std::string& path() const override { return display_; }
  bool verdicts_per_class() const override { return true; }
  Status Begin(WriteMode mode) override;
  Status Commit() override;
  void Rollback() override;
  std::function<Status()> TakeLostCommit() override;

  Result<ModelRecord> SelectModel(std::string_view name) override;
  Result<std::vector<ModelRecord>> SelectModels(std::optional<CompatStatus> status) override;
  Result<int64_t> CountModels(CompatStatus status) override;
  Result<StatusCounts> CountAllStatuses() override;
  Status InsertModel(const ModelRecord& model) override;
  Status UpdateModelRow(std::string_view name, const ModelUpdate& update) override;
  Status WriteModelStateRow(const ModelRecord& model) override;
  Status DeleteModelRow(std::string_view name) override;
  Result<AttemptRecord> SelectAttempt(AttemptId id) override;
  Result<std::vector<AttemptRecord>> SelectAttemptsOfModel(std::string_view name, int limit) override;
  Result<std::vector<AttemptRecord>> SelectOpenAttempts(std::optional<std::string_view> name) override;
  Result<AttemptId> InsertAttemptRow(const AttemptRecord& attempt) override;
  Status CloseAttemptRow(const AttemptRecord& attempt) override;
  Status WriteStatesAndCloseAttemptRows(const std::vector<ModelRecord>& models,
                                        const std::vector<AttemptRecord>& attempts) override;
  Status ReclassifyAttemptRow(AttemptId id, AttemptOutcome outcome, CompatStatus status_after) override;
  Status InsertEnvironmentRow(std::string_view fingerprint, std::string_view components) override;
  Result<std::optional<std::string>> SelectEnvironment(std::string_view fingerprint) override;
  Status WriteEnvironmentStateRow(const EnvironmentStateRecord& state, bool streak_now) override;
  Result<std::optional<EnvironmentStateRecord>> SelectEnvironmentState() override;
  Result<std::vector<AttemptRecord>> SelectRecentLoadOutcomes(AttemptId after, int limit) override;
  Result<std::map<std::string, std::string>> SelectLastFinishedByOutcome(AttemptOutcome outcome) override;
  Result<std::vector<AttemptRecord>> SelectOpenAttemptsOfNode(std::string_view node_id,
                                                              bool include_unowned) override;
  Result<ModelRecord> SelectModelInClass(std::string_view name, std::string_view environment_class) override;
  Result<std::vector<ModelRecord>> SelectModelsInClass(CompatStatus status,
                                                       std::string_view environment_class) override;
  Result<std::vector<ClassVerdictRecord>> SelectVerdicts(std::string_view name) override;
  Result<ModelDetail> SelectModelDetail(std::string_view name, int attempt_limit) override;
  Result<NodeRecord> JoinNodeRow(const NodeRecord& self) override;
  Result<int64_t> HeartbeatNodeRow(const std::string& loaded_models) override;
  std::optional<Result<int64_t>> HeartbeatApart(const NodeScope& node, const std::string& loaded_models) override;
  Status LeaveNodeRow() override;
  Result<std::vector<NodeRecord>> SelectNodes(bool only_expired) override;
  Result<bool> MarkNodeExpiredRow(std::string_view node_id) override;
  Status CheckLease() override;
  Result<std::optional<int64_t>> SelectModelChangeCount() override;
  std::unique_ptr<Registry::ChangeWatch> WatchChanges(
      std::function<void(const std::vector<std::string>&)> on_change) override;
  Status CheckIntegrity() override;

  // The NOTIFY channel of model and verdict changes; its payload is the
  // writing node's id, then the names of the models changed, one per line
  // ("*" for all). Sent inside the write transaction (delivered on COMMIT).
  // With a search_path other than the default the channel's name carries a
  // hash of it: fleets in separate schemas of one database (NOTIFY is
  // database-wide) do not hear each other's changes.
  static constexpr const char* kChangeChannel = "modelwarden_models";
  static std::string ChangeChannel(std::string_view search_path);
  // For the watch (pg_listen.cpp): a connection of its own and the channel
  // of its schema. Thread-safe.
  std::unique_ptr<pqxx::connection> OpenWatchConnection(std::string* channel) {
    return OpenConnection(nullptr, channel);
  }
  Result<int64_t> Checkpoint() override;
  // SelectModelDetail's answers, kept while the watch hears every change
  // (pg_listen.cpp drives it; pg_detail_cache.h). Thread-safe.
  PgDetailCache& details() { return details_; }

 private:
  // Runs `fn(pqxx::transaction_base&)` (returning Status or Result<T>)
  // inside the open write transaction, or, with none open, in autocommit
  // (retried once on a fresh connection if the old one had broken: reads
  // are idempotent). Any exception becomes a Status naming `what`.
  template <typename Fn>
  auto Read(std::string_view what, Fn fn) -> decltype(fn(std::declval<pqxx::transaction_base&>()));
  // Runs `fn` inside a savepoint of the open write transaction, so that a
  // refused row (a constraint) leaves the transaction usable, as on SQLite.
  template <typename Fn>
  auto Write(std::string_view what, Fn fn) -> decltype(fn(std::declval<pqxx::transaction_base&>()));

  Status Connect();
  void Drop();
  // A new connection with this server's session settings; *started (when
  // given) gets pg_postmaster_start_time(). Throws what libpqxx throws.
  // `channel` (optional): the change channel of the connection's search_path.
  std::unique_ptr<pqxx::connection> OpenConnection(std::string* started, std::string* channel = nullptr);
  // Runs fn() with the watchdog on `conn`'s socket: past `timeout` the
  // socket is shut down (fn throws broken_connection) and *cut is set.
  // Exceptions pass through, after the watchdog has let go of the socket.
  template <typename Fn>
  auto Guarded(pqxx::connection& conn, std::chrono::milliseconds timeout, bool* cut, Fn fn) -> decltype(fn());
  // The client-side deadline of one ordinary statement.
  std::chrono::milliseconds CallTimeout() const;
  // After COMMIT lost its answer: whether transaction `xid` committed (OK),
  // rolled back (kUnavailable, "was not recorded"), or cannot be told while
  // the database stays away (kUnavailable naming `lost`). Asks on fresh
  // connections of its own until the write wait (max(busy_timeout, 30 s))
  // has passed. Thread-safe: run without the registry's mutex.
  Status ResolveLostCommit(int64_t xid, const std::string& lost, const std::string& started_before);
  // How long a write waits for the database: the write lock, a lost COMMIT.
  int WriteWaitMs() const;
  Status MapError(std::string_view what);  // the exception being handled
  Status Migrate();
  Status MigrateLocked();
  Status ValidateLoadConfig(pqxx::transaction_base& tx, std::string_view json_text);
  // In this node's environment class, or in `environment_class`.
  Result<ModelRecord> SelectModelIn(pqxx::transaction_base& tx, std::string_view name);
  Result<ModelRecord> SelectModelIn(pqxx::transaction_base& tx, std::string_view name,
                                    std::string_view environment_class);
  Status UpsertVerdict(pqxx::transaction_base& tx, const ModelRecord& model, const std::string& now);
  Result<std::vector<ModelRecord>> SelectModelsOfClass(std::optional<CompatStatus> status,
                                                       std::string_view environment_class);
  Status CheckNotTestingAnywhere(pqxx::transaction_base& tx, std::string_view name);
  Result<AttemptRecord> SelectAttemptIn(pqxx::transaction_base& tx, AttemptId id);
  // SelectModelDetail from the database (one round trip).
  Result<ModelDetail> ReadModelDetail(std::string_view name, int attempt_limit);

  std::string url_;      // as given, plus connect_timeout and keepalives
  std::string display_;  // without the password
  OpenOptions options_;
  SocketWatchdog watchdog_;
  bool cut_ = false;  // the watchdog cut the call on conn_ that just failed (MapError reads and clears it)
  // No connection is tried before this (see the class comment); why.
  std::chrono::steady_clock::time_point retry_at_{};
  std::string down_reason_;
  std::function<Status()> lost_commit_;  // set by a Commit whose answer was lost
  // Models whose rows or verdicts the open transaction wrote (NOTIFY at Commit).
  void NoteChanged(std::string_view name);
  std::vector<std::string> changed_;
  bool changed_all_ = false;
  // The heartbeat's connection (HeartbeatApart), under side_mu_ only.
  std::mutex side_mu_;
  std::unique_ptr<pqxx::connection> side_conn_;
  std::unique_ptr<pqxx::connection> conn_;
  std::unique_ptr<pqxx::work> tx_;
  bool bulk_ = false;  // the open transaction is WriteMode::kBulk: rows without savepoints
  int64_t tx_xid_ = 0;          // txid_current() of tx_
  std::string server_started_;  // pg_postmaster_start_time() seen by Connect
  std::string channel_ = kChangeChannel;  // ChangeChannel of this connection's search_path (set by Connect)
  PgDetailCache details_;
};

// One row of kAttemptColumns, and rows of them (pg_rows.cpp).
Result<AttemptRecord> PgReadAttempt(const pqxx::row& row);
Result<std::vector<AttemptRecord>> PgReadAttempts(const pqxx::result& rows);

// The verdict rows of one model (pg_nodes.cpp): kSelectVerdicts, $1 the name.
extern const char* const kSelectVerdicts;
Result<std::vector<ClassVerdictRecord>> PgReadVerdicts(const pqxx::result& rows);

// The URL with its password replaced by "***" (for messages and logs).
std::string RedactPostgresUrl(std::string_view url);

template <typename Fn>
auto PgBackend::Read(std::string_view what, Fn fn) -> decltype(fn(std::declval<pqxx::transaction_base&>())) {
  if (tx_) {
    try {
      return Guarded(*conn_, CallTimeout(), &cut_, [&] { return fn(*tx_); });
    } catch (...) {
      return MapError(what);
    }
  }
  for (int attempt = 0;; ++attempt) {
    const bool had_connection = conn_ != nullptr;
    RETURN_IF_ERROR(Connect());
    try {
      pqxx::nontransaction n(*conn_);
      return Guarded(*conn_, CallTimeout(), &cut_, [&] { return fn(n); });
    } catch (const pqxx::broken_connection&) {
      const bool cut = cut_;  // a stalled database: asking again would wait as long again
      Status st = MapError(what);
      if (attempt > 0 || !had_connection || cut) return st;
    } catch (...) {
      return MapError(what);
    }
  }
}

template <typename Fn>
auto PgBackend::Guarded(pqxx::connection& conn, std::chrono::milliseconds timeout, bool* cut, Fn fn)
    -> decltype(fn()) {
  const int64_t id = watchdog_.Arm(conn.sock(), timeout);
  try {
    auto result = fn();
    watchdog_.Disarm(id);
    return result;
  } catch (...) {
    if (watchdog_.Disarm(id) && cut != nullptr) *cut = true;
    throw;
  }
}

template <typename Fn>
auto PgBackend::Write(std::string_view what, Fn fn) -> decltype(fn(std::declval<pqxx::transaction_base&>())) {
  using R = decltype(fn(std::declval<pqxx::transaction_base&>()));
  if (!tx_) return InternalError(std::string(what) + ": no write transaction is open");
  if (bulk_) {  // all or nothing: the caller rolls back on any error
    try {
      return Guarded(*conn_, CallTimeout(), &cut_, [&] { return fn(*tx_); });
    } catch (...) {
      return MapError(what);
    }
  }
  // Savepoints by hand: libpqxx 6.4's subtransaction does not roll back to
  // its savepoint after a failed exec_params (the transaction stays aborted).
  try {
    Guarded(*conn_, CallTimeout(), &cut_, [&] { return tx_->exec("SAVEPOINT mw_row"); });
  } catch (...) {
    return MapError(what);
  }
  R result = [&]() -> R {
    try {
      return Guarded(*conn_, CallTimeout(), &cut_, [&] { return fn(*tx_); });
    } catch (...) {
      return MapError(what);
    }
  }();
  if (!tx_) return result;  // the connection broke: the transaction is gone
  try {
    Guarded(*conn_, CallTimeout(), &cut_,
            [&] { return tx_->exec(result.ok() ? "RELEASE SAVEPOINT mw_row" : "ROLLBACK TO SAVEPOINT mw_row"); });
  } catch (...) {
    Status st = MapError(what);
    if (result.ok()) return st;
  }
  return result;
}

}  // namespace mw::registry_internal
