// Integration-test harness: starts the real `modelwarden serve` on a free
// port with a temporary data directory, talks to it over HTTP and runs the
// real CLI. Binaries come from $MW_BIN_DIR (set by CTest).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "http_client/http_client.h"

namespace mw::itest {

using nlohmann::json;

std::filesystem::path BinDir();
std::string FakeEngine();  // path of mw-fake-engine

// A fresh directory removed at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs a program to completion, capturing stdout and stderr.
ProcessResult RunProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {});

struct HttpReply {
  int status = 0;
  json body;
  std::string raw;
};

class Server {
 public:
  // Starts `modelwarden serve --port 0 --data-dir DIR extra...` and waits for its
  // "listening on" line. Check started() / startup_output().
  Server(const std::filesystem::path& data_dir, std::vector<std::string> extra_args = {},
         std::map<std::string, std::string> env = {});
  ~Server();  // Stop()

  bool started() const { return port_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // stdout before (and including) the "listening" line, and stderr if it failed.
  const std::string& startup_output() const { return startup_output_; }
  int exit_code() const { return exit_code_; }
  pid_t pid() const { return pid_; }
  // Everything the server wrote to stderr so far (its log lines).
  std::string Stderr() const;
  // Polls Stderr() until it contains `text`; false after ~15 s.
  bool WaitForStderr(const std::string& text) const;
  // What the server printed on stdout after its "listening" line, so far
  // (read from the pipe on each call).
  std::string Stdout();
  // Polls Stdout() until it contains `text`; false after `seconds`.
  bool WaitForStdout(const std::string& text, int seconds = 15);

  HttpReply Call(const std::string& method, const std::string& path, const std::string& body = "",
                 const std::string& api_key = "");
  HttpReply Call(const std::string& method, const std::string& path, const char* body) {
    return Call(method, path, std::string(body));
  }
  HttpReply Call(const std::string& method, const std::string& path, const json& body) {
    return Call(method, path, body.dump());
  }
  // The CLI against this server: modelwarden --url URL args...
  ProcessResult Cli(std::vector<std::string> args);
  bool Alive();

  // SIGTERM and wait; returns the exit code (-1 if killed by a signal).
  int Stop();
  // SIGKILL and reap (a crash of the server).
  void Kill();

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string startup_output_;
  std::string stdout_rest_;
  int out_fd_ = -1;
  struct StderrBuffer {
    mutable std::mutex mu;
    std::string text;
  };
  // Shared with the thread that drains the pipe (it may outlive the Server).
  std::shared_ptr<StderrBuffer> stderr_ = std::make_shared<StderrBuffer>();
};

// Writes `config_toml` to DIR/NAME and returns {"--config", path}: extra
// arguments for Server.
std::vector<std::string> ConfigArgs(const std::filesystem::path& dir, const std::string& config_toml,
                                    const std::string& name = "config.toml");
// The configuration of tests that register `command` models with an argv
// through the API (mw-fake-engine scripts): allow_api_commands = true
// (SPEC §9.1: off by default).
std::vector<std::string> AllowApiCommands(const std::filesystem::path& dir);

// Writes a small real GGUF with `modelwarden make-test-model` (extra: its
// options, e.g. {"--layers", "8"}).
bool MakeTestModel(const std::filesystem::path& out, const std::vector<std::string>& extra = {});

// Registration bodies for command models driven by mw-fake-engine.
json CommandModel(const std::string& name, const std::vector<std::string>& fake_args,
                  const std::string& ready_pattern = "ready");
json FakeArgv(const std::vector<std::string>& fake_args);

// A raw TCP connection to 127.0.0.1:port (for requests HttpClient would not
// send: any Host, Origin, Content-Type). -1 if it cannot connect.
int ConnectLoopback(int port);

// True if a process with this pid exists (and is not a zombie).
bool ProcessAlive(pid_t pid);

// The real worker (argv[0] modelwarden-worker) whose command line names
// `path` (a model file, or a directory above it), found in the process
// table; 0 if none.
pid_t RealWorkerUnder(const std::filesystem::path& path);

// Polls GET /api/models/{name} until its compatibility_status is `status`;
// false after ~15 s. Tests wait on this, never on a fixed pause: the CI
// machine may be slow.
bool WaitForStatus(Server& server, const std::string& name, const std::string& status);

// The server's stderr through its "startup cleanup: N models" log line
// (waited for, ~15 s): the log lines of its start, with SPEC §1.4's
// cleanup lines among them. Everything so far if that line never came.
std::string StartupLog(const Server& server);

}  // namespace mw::itest
