// registry: the durable store of models and load attempts (SPEC §3).
//
// Two backends behind one API (SPEC §14; registry/backend.h):
//  - SQLite (default): one file, opened in WAL mode with synchronous=FULL, so
//    that a commit that returned OK survives a crash of the process, the
//    machine or the GPU driver, and no crash at any point leaves the file
//    corrupt.
//  - PostgreSQL: Open() given a postgresql:// URL. A commit that returned OK
//    is flushed by the database server (synchronous_commit=on). Write
//    transactions of every server sharing the database run one after another
//    (an advisory lock taken at BeginWrite), as BEGIN IMMEDIATE makes them on
//    SQLite. A connection that broke is reopened by the next call; calls made
//    while the database is unreachable return kUnavailable.
// This folder is the only code that includes sqlite3.h or pqxx or runs SQL;
// everything here speaks native types (load_config stays a JSON text,
// validated by the database's own JSON functions).
//
// Schema: tables `models` and `load_attempts` exactly as SPEC §3 names them,
// with allowed values enforced by CHECK constraints, the same on both
// backends. The schema version is PRAGMA user_version (SQLite) or table
// modelwarden_schema (PostgreSQL); Open() runs the pending migrations, in
// order, in one transaction. PRAGMA application_id marks an SQLite file as ours.
//
// Ownership: Open() returns the only handle; the caller owns it (and usually
// hands references to compat/ and api/). One server owns an SQLite file: the
// startup cleanup of compat/ assumes no other live server is mid-load, and
// the server enforces that with a lock of its own on the data directory
// (common/pid_lock.h) before it opens the registry. The connection uses
// SQLite's normal locking (WAL with a -shm file), so other programs may read
// the file while the server runs (`sqlite3 registry.db .dump`, backups); a
// write of another program makes the server's writes wait up to
// busy_timeout_ms, then fail with kUnavailable (kept and retried by the server).
//
// Thread-safety: every Registry method is thread-safe (one connection behind
// one mutex). A Transaction holds that mutex until it is committed or
// destroyed; calling a Registry method on the thread that holds an open
// Transaction returns kInternal instead of deadlocking.
//
// Public API in brief (all in namespace mw):
//   enum class CompatStatus {kUnknown,kCompatible,kIncompatible,kDegraded,kTesting}
//   enum class AttemptOutcome {kSuccess,kFailed,kCrashed,kTimeout,kServerCrash,kCancelled,kCrashedWhileServing,
//                              kEnvironmentFailure}
//   ToString(CompatStatus|AttemptOutcome), ParseCompatStatus, ParseAttemptOutcome
//   IsValidModelName(name)
//   struct ModelRecord, ModelUpdate, AttemptRecord; using AttemptId = int64_t
//   Registry::Open(path, OpenOptions) -> Result<std::unique_ptr<Registry>>
//   AddModel, GetModel, ListModels, UpdateModel, DeleteModel, ListAttempts,
//   GetAttempt, CountByStatus, CheckIntegrity, BeginWrite(WriteMode) -> Transaction,
//   Checkpoint, WriteCount
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace mw {

namespace registry_internal {
class Backend;
}

// ---------------------------------------------------------------- values

// A model's compatibility status (SPEC §1). Stored as its ToString() text.
enum class CompatStatus { kUnknown, kCompatible, kIncompatible, kDegraded, kTesting };
inline constexpr CompatStatus kAllCompatStatuses[] = {CompatStatus::kUnknown, CompatStatus::kCompatible,
                                                      CompatStatus::kIncompatible, CompatStatus::kDegraded,
                                                      CompatStatus::kTesting};
// "unknown", "compatible", "incompatible", "degraded", "testing".
std::string_view ToString(CompatStatus status);
// Exact lower-case names only; nullopt otherwise.
std::optional<CompatStatus> ParseCompatStatus(std::string_view text);

// How a load attempt ended. Stored as its ToString() text.
// kCrashedWhileServing (SPEC §10): a loaded model's engine died on its own;
// recorded as a closed attempt of its own (schema version 3).
// kEnvironmentFailure (SPEC §11): the environment failed (no device, driver
// down, a system-wide failure); the model's status was kept (schema version 4).
// kHungWhileServing (SPEC §19): the health watch stopped a loaded engine that
// answered nothing, or made no progress on a request, for hang_timeout_s (schema version 7).
enum class AttemptOutcome {
  kSuccess, kFailed, kCrashed, kTimeout, kServerCrash, kCancelled, kCrashedWhileServing, kEnvironmentFailure,
  kHungWhileServing
};
// "success", "failed", "crashed", "timeout", "server_crash", "cancelled", "crashed_while_serving",
// "environment_failure", "hung_while_serving".
std::string_view ToString(AttemptOutcome outcome);
std::optional<AttemptOutcome> ParseAttemptOutcome(std::string_view text);

using AttemptId = int64_t;

inline constexpr std::string_view kEngineLlamaCpp = "llama.cpp";
inline constexpr std::string_view kEngineCommand = "command";
inline constexpr std::string_view kDefaultCacheLocation = "primary";

// [A-Za-z0-9][A-Za-z0-9._-]{0,127}: safe in URLs and file names (no '/', no "..").
bool IsValidModelName(std::string_view name);

// One row of `models`. Nullable columns are optional<>.
struct ModelRecord {
  std::string model_name{};
  std::optional<std::string> hf_path{};
  std::string cache_location{kDefaultCacheLocation};
  std::optional<std::string> file_path{};
  std::string engine{kEngineLlamaCpp};
  CompatStatus compatibility_status = CompatStatus::kUnknown;
  std::optional<std::string> compatibility_notes{};
  std::string load_config = "{}";  // JSON text of an object
  int64_t total_loads = 0;         // successful loads
  int64_t total_failures = 0;
  std::string created_at{};  // ISO-8601 UTC, set by the registry
  std::string updated_at{};  // ISO-8601 UTC, set by the registry on every write
  std::optional<std::string> last_loaded_at{};
  std::optional<std::string> last_failed_at{};
  // The environment fingerprint (SPEC §11) under which an attempt decided
  // the current status; unset after a manual change or a reverted verdict.
  std::optional<std::string> verdict_fingerprint{};
  // Whose verdict the state fields above are (SPEC §14): the environment
  // class they were read in on PostgreSQL, where WriteModelState writes them
  // back; always "" on SQLite (one verdict per model).
  std::string environment_class{};
};

// A partial update: only the fields that are set are written. For the
// nullable text columns an empty string stores NULL.
struct ModelUpdate {
  std::optional<CompatStatus> compatibility_status{};  // never kTesting
  std::optional<std::string> compatibility_notes{};
  std::optional<std::string> load_config{};  // JSON text of an object
  std::optional<std::string> hf_path{};
  std::optional<std::string> file_path{};
  std::optional<std::string> cache_location{};  // non-empty
  std::optional<std::string> engine{};          // "llama.cpp" or "command"
};

// One row of `load_attempts`. An attempt is open while finished_at is unset;
// outcome and status_after are set exactly when it is closed.
struct AttemptRecord {
  AttemptId id = 0;
  std::string model_name{};
  std::string started_at{};  // ISO-8601 UTC
  std::optional<std::string> finished_at{};
  std::optional<AttemptOutcome> outcome{};
  bool forced = false;  // force_load was requested
  CompatStatus status_before = CompatStatus::kUnknown;
  std::optional<CompatStatus> status_after{};
  std::string load_config = "{}";  // snapshot of the model's load_config at start
  std::optional<int64_t> exit_code{};
  std::optional<std::string> signal{};  // e.g. "SIGSEGV"
  std::optional<std::string> category{};
  std::optional<std::string> pattern_id{};
  std::optional<std::string> summary{};
  std::optional<std::string> matched_line{};
  std::optional<std::string> log_excerpt{};
  std::optional<int64_t> duration_ms{};  // finished_at - started_at, set on close
  std::optional<std::string> hardware_fingerprint{};
  // The server that made the attempt and its environment class (SPEC §14,
  // schema version 6). Unset on attempts made before, or by a registry with
  // no node joined (unit tests); InsertAttempt fills both from the joined
  // node when they are unset.
  std::optional<std::string> node_id{};
  std::optional<std::string> environment_class{};

  bool open() const { return !finished_at.has_value(); }
};

// A server of the fleet (SPEC §14): the row of table `nodes` (schema version 6).
// The lease is measured on the database's clock, so the nodes' clocks need
// not agree: a node holds it while lease_state is "held" and its last
// heartbeat is at most lease_s old.
struct NodeRecord {
  std::string node_id{};
  std::string host{};
  std::string environment_class{};  // "" until the node's first probe answered
  int64_t lease_s = 30;
  int64_t epoch = 0;  // +1 at every join: a write of an older epoch is refused
  std::string lease_state{};  // "held", "expired" (another node closed its attempts) or "stopped" (left)
  std::string started_at{};   // ISO-8601 UTC, this epoch's join
  std::string heartbeat_at{};  // ISO-8601 UTC, the database's clock
  int64_t heartbeat_age_ms = 0;  // how long ago, on the database's clock (at the read)
  std::vector<std::string> loaded_models{};  // as of the last heartbeat
  std::optional<std::string> expired_by{};   // the node that closed its attempts
  std::string advertise_url{};  // SPEC §21: where peers reach it ("http://host:port"); "": not routed to

  // Held and heard from within lease_s.
  bool live() const { return lease_state == "held" && heartbeat_age_ms <= lease_s * 1000; }
};

// The verdict of one environment class on a model (SPEC §14). On SQLite
// there is one class, the server's own; on PostgreSQL one row per class
// that has tried the model (table model_verdicts).
struct ClassVerdictRecord {
  std::string environment_class{};
  CompatStatus status = CompatStatus::kUnknown;
  std::optional<std::string> notes{};
  int64_t total_loads = 0;
  int64_t total_failures = 0;
  std::vector<std::string> nodes{};  // nodes that made attempts of the model in this class, sorted
};

// GET /api/models/{name}'s registry data (issue 26: one round trip on
// PostgreSQL): the model, its newest attempts, its verdicts as
// Registry::ListVerdicts orders them.
struct ModelDetail {
  ModelRecord model{};
  std::vector<AttemptRecord> attempts{};  // newest first
  std::vector<ClassVerdictRecord> verdicts{};
};

// The environment's state (SPEC §11), one row (schema version 5), so that a
// restart keeps it. The failed attempts of a streak are not copied here:
// they are the load attempts after `streak_after` (and after the last
// success), read with Registry::ListRecentLoadOutcomes.
struct EnvironmentStateRecord {
  bool failing = false;
  std::optional<std::string> reason{};
  std::optional<std::string> since{};  // ISO-8601 UTC, set while failing
  bool devices_missing = false;        // a probe saw devices of good_devices missing (while failing)
  // Attempts with an id up to this one no longer count toward a streak (a
  // reset, or returning devices, came after them).
  AttemptId streak_after = 0;
  std::string good_devices{};  // the last good probe's devices, one "kind name" per line; "" unknown
};

// Models per status; every status is present (0 when none).
using StatusCounts = std::map<CompatStatus, int64_t>;

struct OpenOptions {
  // How long a write waits for another process's lock before kUnavailable.
  int busy_timeout_ms = 1000;
  // PostgreSQL (issue 26), on every connection: how long connecting may
  // take; how long one statement may run, and how long this server waits for
  // its answer (a stalled server, or a network that drops packets silently,
  // is given up after this plus a second: the call fails with kUnavailable
  // and the next call reconnects); the TCP keepalive idle time (probes every
  // keepalive_s / 3 s, 3 unanswered: the connection is dead).
  int connect_timeout_s = 5;
  int statement_timeout_ms = 10000;
  int keepalive_s = 10;
};

// How a write transaction treats SQLite's cache and the WAL.
enum class WriteMode {
  kNormal,
  // For one large transaction (startup cleanup of many models): a 64 MiB
  // page cache while it runs, so dirty pages are not spilled to the WAL
  // mid-transaction, and no automatic WAL checkpoint inside its COMMIT (that
  // copies every changed page into the database file and fsyncs it: ~4x the
  // commit's own cost for a large WAL). Durability is the same: the COMMIT
  // still fsyncs the WAL. Call Registry::Checkpoint() afterwards, off the
  // critical path; otherwise the next ordinary commit pays for it.
  kBulk,
};

// ---------------------------------------------------------------- Transaction

// A write transaction (BEGIN IMMEDIATE) that rolls back unless Commit()
// returned OK. Move-only; holds the registry's mutex, so keep it short and
// never call Registry methods while holding one. Used by compat/ to read,
// check a transition and write in one atomic step; the row-level writes here
// validate values (the schema's CHECKs) but not transitions.
class Transaction {
 public:
  Transaction(Transaction&& other) noexcept;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  // Rolls back if not committed. Never throws.
  ~Transaction();

  // kNotFound if no such model.
  [[nodiscard]] Result<ModelRecord> GetModel(std::string_view name);
  // Models whose status is `status`, by name.
  [[nodiscard]] Result<std::vector<ModelRecord>> ListModelsWithStatus(CompatStatus status);
  // The same in environment class `environment_class` (SQLite: the one verdict).
  [[nodiscard]] Result<std::vector<ModelRecord>> ListModelsWithStatusInClass(CompatStatus status,
                                                                             std::string_view environment_class);
  // Number of models in `status`.
  [[nodiscard]] Result<int64_t> CountModelsWithStatus(CompatStatus status);
  // kNotFound if no such attempt.
  [[nodiscard]] Result<AttemptRecord> GetAttempt(AttemptId id);
  // The open attempt of `name`, if any (at most one per model: a unique index).
  [[nodiscard]] Result<std::optional<AttemptRecord>> GetOpenAttempt(std::string_view name);
  // All open attempts, oldest first.
  [[nodiscard]] Result<std::vector<AttemptRecord>> ListOpenAttempts();

  // Writes the state columns of `model` (compatibility_status,
  // compatibility_notes, total_loads, total_failures, last_loaded_at,
  // last_failed_at) and sets updated_at. kNotFound if no such model.
  [[nodiscard]] Status WriteModelState(const ModelRecord& model);
  // Writes the given fields of `update` as Registry::UpdateModel does (same
  // validation; never `testing`); sets updated_at. kNotFound if no such model.
  [[nodiscard]] Status UpdateModel(std::string_view name, const ModelUpdate& update);
  // Inserts `attempt` as an open attempt (finished_at, outcome, status_after
  // and the failure fields are ignored); started_at is now if empty.
  // kAlreadyExists if the model already has an open attempt.
  [[nodiscard]] Result<AttemptId> InsertAttempt(const AttemptRecord& attempt);
  // Closes attempt `attempt.id`: finished_at = now (if unset), outcome,
  // status_after, exit_code, signal, category, pattern_id, summary,
  // matched_line, log_excerpt; duration_ms is computed from started_at.
  // kNotFound if no such attempt; kFailedPrecondition if already closed.
  [[nodiscard]] Status CloseAttempt(const AttemptRecord& attempt);
  // WriteModelState of each model, then CloseAttempt of each attempt, as
  // few statements as the backend allows (PostgreSQL: two, whatever the
  // count: the startup cleanup of thousands of models). Fails as a whole.
  [[nodiscard]] Status WriteStatesAndCloseAttempts(const std::vector<ModelRecord>& models,
                                                   const std::vector<AttemptRecord>& attempts);
  // Rewrites the outcome and status_after of a closed attempt (a verdict
  // reverted as the environment's failure, SPEC §11). kNotFound if no such
  // attempt; kFailedPrecondition if it is still open.
  [[nodiscard]] Status ReclassifyAttempt(AttemptId id, AttemptOutcome outcome, CompatStatus status_after);
  // Keeps the components behind an environment fingerprint (first write wins).
  [[nodiscard]] Status RecordEnvironment(std::string_view fingerprint, std::string_view components);
  // Whether several servers may share this registry (PostgreSQL). An SQLite
  // file has one server: every open attempt in it is that server's.
  bool Shared() const;
  // The joined node's id and environment class ("" when not joined).
  std::string NodeId() const;
  std::string EnvironmentClass() const;
  // The class whose verdict `attempt` decides: its own (PostgreSQL, when
  // recorded), else this node's. SQLite keeps one verdict per model: always
  // this node's.
  std::string ClassOf(const AttemptRecord& attempt) const;
  // This node's open attempts (and those recorded without a node), oldest first.
  [[nodiscard]] Result<std::vector<AttemptRecord>> ListOwnOpenAttempts();
  // The open attempts that `node_id` made, oldest first.
  [[nodiscard]] Result<std::vector<AttemptRecord>> ListOpenAttemptsOfNode(std::string_view node_id);
  // The model of `attempt` with the verdict of the attempt's environment
  // class in its state fields (this node's class when the attempt has none;
  // SQLite: the one verdict). WriteModelState of the record writes that
  // class's verdict. kNotFound if no such model.
  [[nodiscard]] Result<ModelRecord> GetModelOfAttempt(const AttemptRecord& attempt);
  // Nodes whose lease is held but whose last heartbeat is older than their
  // lease_s (the database's clock), other than this node.
  [[nodiscard]] Result<std::vector<NodeRecord>> ListExpiredNodes();
  // lease_state = expired, expired_by = this node, if the node's lease is
  // still held and expired (true); false when it renewed or was taken
  // meanwhile. The node finds out at its next heartbeat or write
  // (kFailedPrecondition "lost its lease").
  [[nodiscard]] Result<bool> MarkNodeExpired(std::string_view node_id);

  // Replaces the environment state row. With `streak_now`, streak_after is
  // set to the newest closed attempt's id instead of state.streak_after.
  [[nodiscard]] Status WriteEnvironmentState(const EnvironmentStateRecord& state, bool streak_now = false);

  // COMMIT POINT: when this returns OK, every write of the transaction is on
  // disk (WAL fsynced, synchronous=FULL). On error the transaction is rolled
  // back. Calling anything after Commit() returns kFailedPrecondition.
  [[nodiscard]] Status Commit();

 private:
  friend class Registry;
  Transaction(registry_internal::Backend* db, std::unique_lock<std::mutex> lock);
  Status CheckActive() const;

  registry_internal::Backend* db_;
  std::unique_lock<std::mutex> lock_;
  bool active_ = true;
};

// ---------------------------------------------------------------- Registry

class Registry {
 public:
  // The schema version this build writes (PRAGMA user_version).
  static constexpr int kSchemaVersion = 8;

  // Opens (creating if absent, with its parent directories) the registry at
  // `path`, sets WAL + synchronous=FULL + foreign keys, and runs pending
  // migrations in one transaction. `path` may instead be a postgresql:// (or
  // postgres://) URL: the PostgreSQL backend, with the same codes
  // (kUnavailable: unreachable; kPermissionDenied: read-only or a standby;
  // kFailedPrecondition: newer schema; kDataLoss: a `models` table that is
  // not ours). A file or database it refuses is never modified:
  //   kUnavailable        another process holds the file (a running server)
  //   kPermissionDenied   the file or its directory is not writable
  //   kFailedPrecondition the file's schema is newer than this build
  //   kDataLoss           not an SQLite database, not a modelwarden
  //                       registry, or corrupt
  //   kInternal           anything else SQLite reports
  [[nodiscard]] static Result<std::unique_ptr<Registry>> Open(const std::string& path,
                                                              const OpenOptions& options = {});
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The SQLite file, or the PostgreSQL URL with its password as "***".
  const std::string& path() const;
  // Whether several servers may share this registry (PostgreSQL): other
  // nodes may expire, and verdicts are kept per environment class. An SQLite
  // file has one server.
  bool Shared() const;
  // A number that grows with every write transaction this Registry begins
  // (any table; taken before it commits). Where !Shared() only this server
  // writes, so an unchanged count means no row changed since a read.
  uint64_t WriteCount() const { return write_count_.load(); }

  // Registers a model from `model`'s descriptive fields (name, hf_path,
  // cache_location, file_path, engine, compatibility_status,
  // compatibility_notes, load_config); counters start at 0 and timestamps at
  // now. Returns the stored row. kInvalidArgument for a bad name, engine,
  // status (kTesting is never accepted) or load_config that is not a JSON
  // object; kAlreadyExists if the name is taken.
  [[nodiscard]] Result<ModelRecord> AddModel(const ModelRecord& model);
  // kNotFound if no such model; kInvalidArgument for a malformed name.
  [[nodiscard]] Result<ModelRecord> GetModel(std::string_view name);
  // All models ordered by name.
  [[nodiscard]] Result<std::vector<ModelRecord>> ListModels();
  // Applies the fields set in `update`; returns the new row. kNotFound;
  // kInvalidArgument for bad values or status kTesting (only compat/'s
  // BeginAttempt writes testing); kFailedPrecondition for a status change
  // while the model is testing (an attempt is in progress). Manual status
  // changes should go through compat::StateMachine::SetStatusManually, which
  // applies the same rules.
  [[nodiscard]] Result<ModelRecord> UpdateModel(std::string_view name, const ModelUpdate& update);
  // Deletes the model AND its attempts (ON DELETE CASCADE: a name registered
  // again later is a new model whose history starts empty). kNotFound;
  // kFailedPrecondition while the model is testing.
  [[nodiscard]] Status DeleteModel(std::string_view name);

  // The model's attempts, newest first, at most `limit` (limit <= 0: all).
  // kNotFound if no such model.
  [[nodiscard]] Result<std::vector<AttemptRecord>> ListAttempts(std::string_view name, int limit = 20);
  // kNotFound if no such attempt.
  [[nodiscard]] Result<AttemptRecord> GetAttempt(AttemptId id);
  // Number of models per status (all five keys present).
  [[nodiscard]] Result<StatusCounts> CountByStatus();
  // The components recorded for an environment fingerprint; nullopt if none.
  [[nodiscard]] Result<std::optional<std::string>> GetEnvironment(std::string_view fingerprint);
  // The environment state row; nullopt before the first write (ok).
  [[nodiscard]] Result<std::optional<EnvironmentStateRecord>> GetEnvironmentState();
  // Closed attempts with an id above `after` whose outcome is a success or
  // a failure (success, failed, crashed, timeout, environment_failure,
  // crashed_while_serving, hung_while_serving: not cancelled or server_crash), newest first, at
  // most `limit`.
  [[nodiscard]] Result<std::vector<AttemptRecord>> ListRecentLoadOutcomes(AttemptId after, int limit);
  // Model name -> finished_at (ISO-8601) of its latest attempt with
  // `outcome`, for every model that has one (SPEC §19: when each model was
  // last stopped for hanging).
  [[nodiscard]] Result<std::map<std::string, std::string>> LastAttemptEnds(AttemptOutcome outcome);

  // ---- the fleet (SPEC §14): this server as a node with a lease.
  // Joins as `self` (node_id, host, lease_s, environment_class): the node's
  // row gets a new epoch, lease_state held and a heartbeat now. From then on
  // every write transaction first checks that this epoch still holds the
  // lease, and attempts record node_id and the environment class.
  // Returns the row as written.
  [[nodiscard]] Result<NodeRecord> JoinFleet(const NodeRecord& self);
  // The environment class this node reads and writes verdicts in (PostgreSQL;
  // SQLite keeps one verdict per model whatever the class). Set again when
  // the environment changes; written to the node's row at the next heartbeat.
  void SetEnvironmentClass(std::string_view environment_class);
  std::string EnvironmentClass();
  // SPEC §21: the address peers reach this node at ("http://host:port"; ""
  // none), written to the node's row at the next heartbeat and kept across
  // a rejoin.
  void SetAdvertiseUrl(std::string_view advertise_url);
  // Renews the lease and records `loaded_models`. kFailedPrecondition with
  // "lost its lease" when another node closed this node's attempts after
  // the lease expired (or it never joined); JoinFleet again to go on.
  [[nodiscard]] Status Heartbeat(const std::vector<std::string>& loaded_models);
  // lease_state = stopped (a clean shutdown): nobody needs to wait for it.
  [[nodiscard]] Status LeaveFleet();
  // A number that changes whenever any server changed models or verdicts
  // (PostgreSQL); nullopt on SQLite, where only this server writes.
  [[nodiscard]] Result<std::optional<int64_t>> ModelChangeCount();
  // Every node, by node_id.
  [[nodiscard]] Result<std::vector<NodeRecord>> ListNodes();
  // This node's id ("" before JoinFleet).
  std::string NodeId();
  // The verdicts of every class on `name`, this node's class first (present
  // even when it has none: unknown). kNotFound if no such model.
  [[nodiscard]] Result<std::vector<ClassVerdictRecord>> ListVerdicts(std::string_view name);
  // Issue 26: another server's changes to models and verdicts, as they
  // commit (PostgreSQL LISTEN/NOTIFY on a connection of its own).
  // `on_change` runs on the watch's own thread with the names of the models
  // changed; an empty list means anything may have changed (the watch had
  // to reconnect, or one write changed very many). This server's own writes
  // are not reported. nullptr where only this server writes (SQLite).
  // Returns once the watch listens (or its first try failed; it keeps
  // trying): every change committed after that is heard. Destroy the watch
  // before the Registry.
  class ChangeWatch {
   public:
    virtual ~ChangeWatch() = default;
  };
  [[nodiscard]] std::unique_ptr<ChangeWatch> WatchChanges(
      std::function<void(const std::vector<std::string>&)> on_change);
  // GetModel, ListAttempts(name, attempt_limit) and ListVerdicts at once (on
  // PostgreSQL in one round trip, from one snapshot). kNotFound.
  [[nodiscard]] Result<ModelDetail> GetModelDetail(std::string_view name, int attempt_limit);

  // PRAGMA integrity_check: OK if "ok", else kDataLoss with SQLite's report.
  // PostgreSQL: kDataLoss if the schema version is no longer this build's.
  [[nodiscard]] Status CheckIntegrity();

  // Starts a write transaction (BEGIN IMMEDIATE; on PostgreSQL, BEGIN and
  // the fleet's write lock). kUnavailable if another process holds the file
  // past busy_timeout, or the database is unreachable. See WriteMode for kBulk.
  [[nodiscard]] Result<Transaction> BeginWrite(WriteMode mode = WriteMode::kNormal);

  // SQLite: copies committed WAL content into the database file (a PASSIVE
  // checkpoint, fsynced with synchronous=FULL), so that the next commit does
  // not pay for it. Holds the registry's mutex while it runs (a few hundred
  // ms after a large kBulk transaction); nothing is lost if it fails or the
  // process dies during it. Returns how many WAL frames were copied
  // (PostgreSQL: 0, it checkpoints by itself).
  [[nodiscard]] Result<int64_t> Checkpoint();

  // Gives back the memory of the pages the backend caches that no statement
  // holds (SQLite: sqlite3_db_release_memory; PostgreSQL: nothing). The cache
  // fills again as queries read; called every 30 s by `serve` beside its heap
  // trim, so that the server's memory follows what it uses and does not grow
  // with the database file (docs/reliability.md). Does nothing inside a
  // transaction of this thread.
  void ReleaseCachedPages();

 private:
  explicit Registry(std::unique_ptr<registry_internal::Backend> db);
  Status CheckNotInTransaction() const;

  std::unique_ptr<registry_internal::Backend> db_;
  std::atomic<uint64_t> write_count_{0};  // WriteCount(): bumped under the mutex, before a write begins
};

}  // namespace mw
