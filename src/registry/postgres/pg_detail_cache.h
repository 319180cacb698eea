// Internal to registry/postgres/: the node's copy of GetModelDetail's answers
// (issue 26: GET /api/models/{name} without a round trip to the database).
//
// Exact, not a time-to-live guess: an answer is kept only while this node
// hears every other server's change (PgBackend's LISTEN connection is open:
// SetLive(true)); a change notification forgets the models it names (all on
// "*" or when the watch reconnects), and this node's own commits forget
// everything (PgBackend::Commit, after the commit is visible). A read that
// overlapped a forget is not kept (Generation), so an answer read before
// another node's commit can never outlive that commit's notification.
// kMaxAge bounds what a write made outside modelwarden (psql, which sends no
// notification) or a LISTEN connection that died silently (until its
// keepalives notice) could leave. Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "registry/registry.h"

namespace mw::registry_internal {

class PgDetailCache {
 public:
  static constexpr std::chrono::seconds kMaxAge{5};
  static constexpr size_t kMaxEntries = 4096;  // more: start over (a fleet has far fewer models)

  // The watch is listening (true) or not (false: nothing is kept or served).
  void SetLive(bool live) {
    std::lock_guard lock(mu_);
    live_ = live;
    ForgetLocked();
  }
  // Other servers changed `names` (empty: anything may have changed).
  void Forget(const std::vector<std::string>& names) {
    std::lock_guard lock(mu_);
    if (names.empty()) return ForgetLocked();
    ++generation_;
    for (const std::string& n : names) {
      for (auto it = entries_.lower_bound({n, ""}); it != entries_.end() && it->first.first == n;) {
        it = entries_.erase(it);
      }
    }
  }
  void ForgetAll() {
    std::lock_guard lock(mu_);
    ForgetLocked();
  }

  // Taken before the read whose answer Store may keep; nullopt: not live.
  std::optional<uint64_t> Generation() {
    std::lock_guard lock(mu_);
    if (!live_) return std::nullopt;
    return generation_;
  }
  // `environment_class`: this node's now (its verdict is the model's).
  std::optional<ModelDetail> Find(std::string_view name, std::string_view environment_class, int attempt_limit) {
    std::lock_guard lock(mu_);
    if (!live_) return std::nullopt;
    auto it = entries_.find(Key(name, environment_class, attempt_limit));
    if (it == entries_.end()) return std::nullopt;
    if (std::chrono::steady_clock::now() - it->second.at > kMaxAge) {
      entries_.erase(it);
      return std::nullopt;
    }
    return it->second.detail;
  }
  // Keeps `detail`, read after Generation() gave `generation`, unless
  // something was forgotten since.
  void Store(std::string_view name, std::string_view environment_class, int attempt_limit, const ModelDetail& detail,
             uint64_t generation) {
    std::lock_guard lock(mu_);
    if (!live_ || generation != generation_) return;
    if (entries_.size() >= kMaxEntries) entries_.clear();
    entries_[Key(name, environment_class, attempt_limit)] = Entry{detail, std::chrono::steady_clock::now()};
  }

 private:
  // (model name, "class\nlimit"): a model's entries sit together (Forget).
  using EntryKey = std::pair<std::string, std::string>;
  static EntryKey Key(std::string_view name, std::string_view environment_class, int attempt_limit) {
    return {std::string(name), std::string(environment_class) + "\n" + std::to_string(attempt_limit)};
  }
  struct Entry {
    ModelDetail detail;
    std::chrono::steady_clock::time_point at;
  };
  void ForgetLocked() {
    ++generation_;
    entries_.clear();
  }

  std::mutex mu_;
  bool live_ = false;
  uint64_t generation_ = 0;
  std::map<EntryKey, Entry> entries_;
};

}  // namespace mw::registry_internal
