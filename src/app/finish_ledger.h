// app/finish_ledger.h: the outcome of each load attempt reaches the registry,
// even when the registry cannot be written at that moment (disk full,
// read-only database, PostgreSQL away: SPEC §1); a collaborator of
// ModelService (loads and their verdict).
//
// Contract: Record(finish) writes it (through `write`: the state machine's
// Finish*). When that fails with an error that may pass (storage full,
// permission, unavailable, internal, data loss), the finish is kept and
// Record returns the error: the model stays `testing` on disk until Flush
// writes it, which happens before the model's next attempt, before a PATCH
// or DELETE of it (the service calls Flush(model)), every 2 s on the
// ledger's own thread (started with the first kept finish), and at Stop.
// Flush returns the error of a finish that still cannot be written (of
// `model`'s; of any when `model` is empty). Each finish settled by a Flush,
// written late or dropped for good (its attempt is gone), is handed to
// `settled` once, after the ledger's lock is released.
// Thread-safe; its own lock (held while writing, so writes are one at a
// time) and its own thread (common/wakeable_thread.h).
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/wakeable_thread.h"
#include "compat/state_machine.h"

namespace mw::app {

// The outcome of an attempt, as handed to the state machine.
struct Finish {
  enum class Kind { kSuccess, kFailure, kCancelled, kEnvironment };
  Kind kind = Kind::kFailure;
  AttemptId attempt = 0;
  std::string model_name;
  FailureInfo failure;                 // kFailure and kEnvironment
  std::optional<HealedConfig> healed;  // kSuccess of an auto_fix retry: the load_config that worked
  std::string extra_note;              // kFailure of an auto_fix retry: what it changed
};

class FinishLedger {
 public:
  using WriteFn = std::function<Result<ModelRecord>(const Finish& finish)>;
  struct Settled {
    Finish finish;
    std::optional<ModelRecord> after;  // nullopt: dropped, it can never be written
  };
  using SettledFn = std::function<void(const std::vector<Settled>& settled)>;

  FinishLedger(WriteFn write, SettledFn settled) : write_(std::move(write)), settled_(std::move(settled)) {}
  ~FinishLedger() { Stop(); }  // the retry thread ends before kept_ and the hooks
  FinishLedger(const FinishLedger&) = delete;
  FinishLedger& operator=(const FinishLedger&) = delete;

  Result<ModelRecord> Record(const Finish& finish);
  Status Flush(const std::string& model = "");
  // Stops the retry thread (no flush: call Flush afterwards for the last
  // try). Finishes kept after it wait for a Flush.
  void Stop() { retry_thread_.Stop(); }

 private:
  void Retry();  // the retry thread's work: Flush() when a finish is kept

  const WriteFn write_;
  const SettledFn settled_;
  std::mutex mu_;  // guards kept_; held while writing them
  std::vector<Finish> kept_;
  // Every 2 s; started with the first kept finish.
  WakeableThread retry_thread_{[this] { Retry(); }, [] { return std::chrono::milliseconds(2000); },
                               /*work_first=*/false};
};

}  // namespace mw::app
