#include "app/finish_ledger.h"

#include "common/log.h"

namespace mw::app {
namespace {

// Errors of the storage (disk full, read-only, I/O, locked): writing again
// later may work. Anything else (the attempt is gone or already closed)
// will never be written.
bool MayWriteLater(StatusCode code) {
  return code == StatusCode::kResourceExhausted || code == StatusCode::kPermissionDenied ||
         code == StatusCode::kUnavailable || code == StatusCode::kInternal || code == StatusCode::kDataLoss;
}

}  // namespace

Result<ModelRecord> FinishLedger::Record(const Finish& finish) {
  Result<ModelRecord> after = write_(finish);
  if (after.ok() || !MayWriteLater(after.status().code())) return after;
  MW_LOG(kError, "load") << "model=" << finish.model_name << " attempt=" << finish.attempt
                         << ": outcome not recorded, kept to retry: " << after.status().ToString();
  {
    std::lock_guard lock(mu_);
    kept_.push_back(finish);
  }
  retry_thread_.Start();  // once; never after Stop
  return after.status().WithContext("kept in memory and written as soon as the registry can be written again");
}

Status FinishLedger::Flush(const std::string& model) {
  Status first_error;
  std::vector<Settled> settled;
  {
    std::lock_guard lock(mu_);
    for (auto it = kept_.begin(); it != kept_.end();) {
      Result<ModelRecord> after = write_(*it);
      if (!after.ok() && MayWriteLater(after.status().code())) {
        if (first_error.ok() && (model.empty() || model == it->model_name)) {
          first_error = after.status().WithContext(
              "the outcome of the last load attempt of '" + it->model_name +
              "' is not recorded yet (no new attempt starts before it is)");
        }
        ++it;
        continue;
      }
      if (after.ok()) {
        MW_LOG(kInfo, "load") << "model=" << it->model_name << " attempt=" << it->attempt
                              << ": outcome recorded late, model is now " << ToString(after->compatibility_status);
        settled.push_back({*it, *after});
      } else {
        MW_LOG(kWarn, "load") << "model=" << it->model_name << " attempt=" << it->attempt
                              << ": outcome dropped: " << after.status().ToString();
        settled.push_back({*it, std::nullopt});
      }
      it = kept_.erase(it);
    }
  }
  if (!settled.empty() && settled_) settled_(settled);
  return first_error;
}

void FinishLedger::Retry() {
  {
    std::lock_guard lock(mu_);
    if (kept_.empty()) return;
  }
  (void)Flush();
}

}  // namespace mw::app
