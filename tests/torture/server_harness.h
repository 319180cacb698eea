// server_harness: drives the real `modelwarden serve` from a test, for the
// crash-torture loop (tests/torture) and the fault matrix (tests/faults).
//
// Nothing here is mocked: ServerProcess runs the binary from MW_BIN_DIR on
// port 0 (the server prints the port it got, so there is no port race) with
// a data directory of the test's own; Http talks to it with the project's
// own client; ReadRegistryCopy() inspects the database file as a crash left
// it (on a copy, so the server's next start sees the untouched files).
//
// Every process the server starts (keeper, worker, engine and their
// children) inherits the environment variable MW_TEST_MARK=<scratch dir>, so
// ProcessesMarked() finds them all in /proc, whatever their parentage, and a
// test can prove that none outlived the server.
//
// Thread-safety: Http() may be called from any thread (one client per call).
// A ServerProcess is used from one thread, except pid(), which is constant.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mw::testing_harness {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// MW_BIN_DIR (set by CTest), else "<exe dir>/../bin".
std::string BinDir();
// The path of a program in BinDir().
std::string BinPath(const std::string& name);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// destroyed (immutable flags are cleared first, see faults).
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs argv to completion (no shell); returns the wait status, output in *output.
int RunProgram(const std::vector<std::string>& argv, std::string* output);

// A small GGUF model made by `modelwarden make-test-model`, once per process.
// Returns its path ("" and a message in *error if it could not be made).
std::string TestModelPath(std::string* error);

struct ServerOptions {
  std::string data_dir;                                  // --data-dir
  std::string marker;                                    // MW_TEST_MARK value (usually the scratch dir)
  std::string log_path;                                  // the server's stdout+stderr go here (truncated)
  std::vector<std::pair<std::string, std::string>> env;  // extra environment
  std::vector<std::string> extra_args;                   // e.g. --config FILE
};

class ServerProcess {
 public:
  // Spawns `modelwarden serve --host 127.0.0.1 --port 0 --data-dir D`.
  // Returns nullptr (with *error) if the spawn itself failed.
  static std::unique_ptr<ServerProcess> Spawn(const ServerOptions& options, std::string* error);
  // SIGKILLs and reaps the server if it still runs.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Waits for the "listening on http://H:P" line. False if the server exited
  // or `timeout` passed (the log says why).
  bool WaitListening(milliseconds timeout = milliseconds(30000));
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // Everything the server printed so far.
  std::string Log() const;
  // True while the process has not exited (reaps it if it has).
  bool Running();
  // Sends `sig` without waiting.
  void Signal(int sig);
  // Sends `sig` and waits for the exit; returns the wait status (or the
  // status it had already exited with).
  int KillAndWait(int sig = 9);
  // SIGTERM, then SIGKILL after `grace`; returns the wait status.
  int Stop(milliseconds grace = milliseconds(20000));
  // The wait status once exited.
  std::optional<int> exit_status() const { return exit_status_; }

 private:
  ServerProcess() = default;
  bool Reap(bool block);

  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
  std::optional<int> exit_status_;
};

struct HttpResult {
  int status = 0;        // 0: no response (transport error in `error`)
  Json body;             // parsed JSON (null if the body was not JSON)
  std::string raw;       // the body as received
  std::string error;     // transport error, if any
  bool json_ok = false;  // the body parsed as JSON
};

// One request with a fresh client. `body` is sent as JSON when not null.
HttpResult Http(const std::string& base_url, const std::string& method, const std::string& path,
                const Json& body = Json(), std::chrono::seconds read_timeout = std::chrono::seconds(120));

// Pids (other than this process) whose command line or environment contains
// `marker`.
std::vector<pid_t> ProcessesMarked(const std::string& marker);
// Polls until no such process is left or `timeout`; returns the survivors
// with their command lines ("" if none).
std::string WaitNoProcessesMarked(const std::string& marker, milliseconds timeout = milliseconds(10000));
// "pid: cmdline" lines for `pids`.
std::string DescribeProcesses(const std::vector<pid_t>& pids);

// The registry file as it is on disk now, read from a copy of registry.db
// and its -wal (the originals are not touched).
struct ModelRow {
  std::string status;
  int64_t total_loads = 0;
  int64_t total_failures = 0;
};
struct AttemptRow {
  int64_t id = 0;
  std::string model_name;
  bool open = false;
  std::string outcome;
  std::string status_before;
  std::string status_after;
};
struct RegistrySnapshot {
  std::string error;      // non-empty: could not be read at all
  std::string integrity;  // PRAGMA integrity_check result ("ok" when fine)
  std::map<std::string, ModelRow> models;
  std::vector<AttemptRow> attempts;
  bool ok() const { return error.empty() && integrity == "ok"; }
  int CountStatus(const std::string& status) const;
  int CountOpenAttempts() const;
  int CountOutcome(const std::string& model, const std::string& outcome) const;
};
RegistrySnapshot ReadRegistryCopy(const std::string& data_dir, const std::string& scratch_dir);
// The same from a PostgreSQL registry (SPEC §14): each model with the
// verdict of its one class (one node runs), integrity "ok" (PostgreSQL
// checks its own pages), error when it cannot be read.
RegistrySnapshot ReadRegistryPostgres(const std::string& url);

void SleepMs(int64_t ms);

// Polls `predicate` every 20 ms until true or `timeout`.
template <typename Predicate>
bool PollUntil(Predicate predicate, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    SleepMs(20);
  }
}

// Registers a model; returns the HTTP result (201 expected).
HttpResult RegisterModel(const std::string& url, const Json& model);
// A `command` model load_config running mw-fake-engine with `script` (its
// flags) and a ready pattern "fake-engine ready".
Json FakeEngineConfig(const std::vector<std::string>& script,
                      std::optional<int> load_timeout_s = std::nullopt);

}  // namespace mw::testing_harness
