// hub/pull_manager.h: pulls of models from the Hugging Face hub (SPEC §17).
//
// Start() resolves what to download before answering (the tree API, the quant
// tag, the free disk space), so a caller gets those errors at once; the
// download then runs in the background and its progress (bytes, rate, ETA)
// reaches Hooks::on_change about four times a second, and once at the end.
// Each blob is downloaded once however many pulls want it: a transfer per
// blob (blobs/SHA256.incomplete, resumed, sha256 checked) that every pull of
// that file waits on; it is cancelled only when every pull waiting on it was.
// When every file is in place the snapshot links and refs/main are written
// and Hooks::register_model runs; a failed or cancelled pull registers
// nothing and leaves nothing but the .incomplete file (a hash mismatch not
// even that). With HubOptions::offline the cache is all there is.
// Thread-safe. The destructor cancels every pull and waits for its thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "hub/hf_client.h"
#include "hub/pull_types.h"

namespace mw::hub {

// A model name from a repository file: the base name without ".gguf" and
// the split suffix, characters outside [A-Za-z0-9._-] as '-'.
std::string ModelNameForFile(std::string_view file);

class PullManager {
 public:
  struct Hooks {
    // A location's directory; kInvalidArgument for an unknown name.
    std::function<Result<std::filesystem::path>(const std::string& location)> location_root;
    // Before anything is downloaded: kAlreadyExists when the name is taken.
    std::function<Status(const std::string& model_name)> check_name;
    // Registers the pulled model (`unknown`, hf_path, file_path relative to the location).
    std::function<Status(const PullView& pull, const std::string& file_path)> register_model;
    // `test`: one load and unload; returns the compatibility status after it.
    std::function<std::string(const std::string& model_name)> test_model;
    std::function<void(const PullView& pull)> on_change;
  };

  PullManager(HubOptions options, Hooks hooks);
  ~PullManager();
  PullManager(const PullManager&) = delete;
  PullManager& operator=(const PullManager&) = delete;

  // kInvalidArgument (hf_path, quant ambiguity, location), kNotFound (repository
  // or file), kUnauthenticated (gated), kResourceExhausted (disk space),
  // kAlreadyExists (model name), kUnavailable (network).
  [[nodiscard]] Result<PullView> Start(const PullSpec& spec);
  // Every pull of this run, newest first.
  std::vector<PullView> List();
  // kNotFound; a finished pull is returned as it is.
  [[nodiscard]] Result<PullView> Cancel(const std::string& id);
  // Waits until the pull finished (tests and the CLI's --wait use events instead).
  std::optional<PullView> Wait(const std::string& id, std::chrono::milliseconds timeout);

 private:
  struct Transfer;
  struct Pull;
  void Run(const std::shared_ptr<Pull>& pull);
  void RunTransfer(const std::shared_ptr<Transfer>& transfer);
  PullView Snapshot(const Pull& pull);
  void Finish(const std::shared_ptr<Pull>& pull, const std::string& state, const Status& status);
  // Starts a thread (mu_ held); joins the ones that have ended first.
  void SpawnLocked(std::function<void()> body);

  HfClient client_;
  Hooks hooks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closing_ = false;
  int64_t next_id_ = 1;
  std::vector<std::shared_ptr<Pull>> pulls_;
  std::map<std::string, std::shared_ptr<Transfer>> transfers_;  // by blob path
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> ended;
  };
  std::list<Worker> workers_;
};

}  // namespace mw::hub
