// FaultFixture: one real `modelwarden serve` per test, in a scratch
// directory, with helpers to provoke a fault and check its record. TearDown
// stops the server gracefully and checks that no process it started is left
// and that the registry file is intact.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server_harness.h"

namespace mw::testing_harness {

class FaultFixture : public ::testing::Test {
 protected:
  FaultFixture();
  void TearDown() override;

  // Starts the server (again, on the same data directory, if it ran before).
  // `config_toml`, when not empty, is written to a file given with --config.
  bool StartServer(std::vector<std::pair<std::string, std::string>> env = {},
                   const std::string& config_toml = "");
  std::string url() const { return server_->url(); }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& scratch() const { return scratch_.path(); }
  ServerProcess& server() { return *server_; }

  // Copies the make-test-model GGUF into the primary location as `file_name`.
  bool AddTestModelFile(const std::string& file_name);
  // GET /api/models/{name} (with attempts); null on error.
  Json GetModelJson(const std::string& name);

  // Loads `name` and expects 422 load_failed with this classification, and
  // the model incompatible with a closed attempt carrying the same facts.
  // `category` / `log_line` may be nullptr (not checked); `signal` "" = none,
  // nullopt = not checked.
  HttpResult ExpectFailedLoad(const std::string& name, const char* outcome, const char* category,
                              const std::optional<std::string>& signal, std::optional<int> exit_code,
                              const char* log_line);

  // The server still serves: lists, reports status, and loads and unloads a
  // healthy command model.
  void ExpectServing();

  // The pid of modelwarden-worker loading `model_path` (0 if none).
  static pid_t FindWorker(const std::string& model_path);
  // The pid of the latest worker the server pre-started (SPEC §16: its
  // "pre-started a worker pid=N" log line), waiting for one up to 30 s; 0 if none.
  pid_t PreStartedWorkerPid();
  // Spins on /proc until modelwarden-worker loading `model_path` exists, and
  // stops it with SIGSTOP; returns its pid (0 after `timeout`).
  pid_t StopWorkerAsSoonAsItStarts(const std::string& model_path, milliseconds timeout = milliseconds(20000));

 private:
  ScratchDir scratch_;
  std::string data_dir_;
  std::unique_ptr<ServerProcess> server_;
  int starts_ = 0;
  int healthy_models_ = 0;
};

}  // namespace mw::testing_harness
