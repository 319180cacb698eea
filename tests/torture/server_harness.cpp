#include "server_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>

#include <pqxx/pqxx>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "http_client/http_client.h"

extern char** environ;

namespace mw::testing_harness {
namespace fs = std::filesystem;

void SleepMs(int64_t ms) { std::this_thread::sleep_for(milliseconds(ms)); }

std::string BinDir() {
  if (const char* dir = std::getenv("MW_BIN_DIR"); dir != nullptr && *dir != '\0') return dir;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exe(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return exe.substr(0, exe.rfind('/')) + "/../bin";
}

std::string BinPath(const std::string& name) { return BinDir() + "/" + name; }

ScratchDir::ScratchDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
  if (ec) {
    // A fault test may have left a file immutable (chattr +i): clear and retry.
    std::string out;
    RunProgram({"chattr", "-R", "-i", path_}, &out);
    fs::remove_all(path_, ec);
  }
}

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

int RunProgram(const std::vector<std::string>& argv, std::string* output) {
  char templ[] = "/tmp/mw-run-XXXXXX";
  int fd = ::mkstemp(templ);
  if (fd < 0) return -1;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fd, 1);
  posix_spawn_file_actions_adddup2(&actions, fd, 2);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs = CStrings(args);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, cargs[0], &actions, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fd);
  int status = -1;
  if (rc == 0) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (output != nullptr) *output = ReadFile(templ);
  ::unlink(templ);
  return rc == 0 ? status : -1;
}

std::string TestModelPath(std::string* error) {
  static std::mutex mu;
  static std::string path;
  static std::string failure;
  static std::unique_ptr<ScratchDir> dir;
  std::lock_guard lock(mu);
  if (path.empty() && failure.empty()) {
    dir = std::make_unique<ScratchDir>("mw-torture-model");
    std::string out_path = dir->path() + "/tiny.gguf";
    std::string output;
    int status = RunProgram({BinPath("modelwarden"), "make-test-model", out_path}, &output);
    if (status == 0 && fs::exists(out_path)) {
      path = out_path;
    } else {
      failure = "make-test-model failed (status " + std::to_string(status) + "): " + output;
    }
  }
  if (error != nullptr) *error = failure;
  return path;
}

// ---------------------------------------------------------------- ServerProcess

std::unique_ptr<ServerProcess> ServerProcess::Spawn(const ServerOptions& options, std::string* error) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  server->log_path_ = options.log_path;
  std::vector<std::string> args = {
      BinPath("modelwarden"), "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", options.data_dir};
  args.insert(args.end(), options.extra_args.begin(), options.extra_args.end());

  // The environment: ours, minus what would point the server at a user's
  // configuration, plus the marker every descendant inherits.
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("HOME=", 0) == 0 || entry.rfind("XDG_", 0) == 0 || entry.rfind("MODELWARDEN_", 0) == 0 ||
        entry.rfind("MW_TEST_", 0) == 0) {
      continue;
    }
    env.emplace_back(entry);
  }
  std::string home = options.marker.empty() ? options.data_dir : options.marker;
  env.push_back("HOME=" + home + "/home");
  env.push_back("XDG_CONFIG_HOME=" + home + "/home/.config");
  env.push_back("XDG_DATA_HOME=" + home + "/home/.local/share");
  env.push_back("MW_TEST_MARK=" + options.marker);
  for (const auto& [k, v] : options.env) env.push_back(k + "=" + v);

  int fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error != nullptr) *error = "cannot open " + options.log_path + ": " + std::strerror(errno);
    return nullptr;
  }
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::vector<char*> cargs = CStrings(args);
  std::vector<char*> cenv = CStrings(env);
  const pid_t parent = ::getpid();
  // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: a test
  // killed from outside (a ctest timeout) takes its server with it, and the
  // server's keeper then takes the workers. Only async-signal-safe calls
  // between fork and exec.
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the test died already
    ::dup2(null_fd, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execve(cargs[0], cargs.data(), cenv.data());
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(fd);
  ::close(null_fd);
  if (pid < 0) {
    if (error != nullptr) *error = "cannot fork for " + args[0] + ": " + std::strerror(fork_errno);
    return nullptr;
  }
  server->pid_ = pid;
  return server;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !exit_status_) KillAndWait(SIGKILL);
}

bool ServerProcess::Reap(bool block) {
  if (exit_status_) return true;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      exit_status_ = status;
      return true;
    }
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

bool ServerProcess::Running() { return !Reap(false); }

std::string ServerProcess::Log() const { return ReadFile(log_path_); }

bool ServerProcess::WaitListening(milliseconds timeout) {
  static constexpr std::string_view kNeedle = "listening on http://127.0.0.1:";
  return PollUntil(
             [&] {
               std::string log = Log();
               size_t at = log.find(kNeedle);
               if (at != std::string::npos) {
                 size_t begin = at + kNeedle.size();
                 size_t end = log.find_first_not_of("0123456789", begin);
                 if (end != std::string::npos && end > begin) {
                   port_ = std::atoi(log.substr(begin, end - begin).c_str());
                   return port_ > 0;
                 }
               }
               return !Running();  // exited: stop waiting (port_ stays 0)
             },
             timeout) &&
         port_ > 0;
}

void ServerProcess::Signal(int sig) {
  if (!exit_status_) ::kill(pid_, sig);
}

int ServerProcess::KillAndWait(int sig) {
  if (!exit_status_) {
    ::kill(pid_, sig);
    Reap(true);
  }
  return *exit_status_;
}

int ServerProcess::Stop(milliseconds grace) {
  if (exit_status_) return *exit_status_;
  ::kill(pid_, SIGTERM);
  if (!PollUntil([&] { return !Running(); }, grace)) return KillAndWait(SIGKILL);
  return *exit_status_;
}

// ---------------------------------------------------------------- HTTP

HttpResult Http(const std::string& base_url, const std::string& method, const std::string& path,
                const Json& body, std::chrono::seconds read_timeout) {
  HttpResult result;
  auto client = http::HttpClient::Create(base_url, "", read_timeout);
  if (!client.ok()) {
    result.error = client.status().ToString();
    return result;
  }
  auto response = (*client)->Send(method, path, body.is_null() ? std::string() : body.dump());
  if (!response.ok()) {
    result.error = response.status().ToString();
    return result;
  }
  result.status = response->status;
  result.raw = response->body;
  result.body = Json::parse(result.raw, nullptr, /*allow_exceptions=*/false);
  result.json_ok = !result.body.is_discarded();
  if (!result.json_ok) result.body = Json();
  return result;
}

HttpResult RegisterModel(const std::string& url, const Json& model) {
  return Http(url, "POST", "/api/models", model);
}

Json FakeEngineConfig(const std::vector<std::string>& script, std::optional<int> load_timeout_s) {
  Json argv = Json::array({BinPath("mw-fake-engine")});
  for (const auto& a : script) argv.push_back(a);
  Json config{{"argv", argv}, {"ready_pattern", "fake-engine ready"}};
  if (load_timeout_s) config["load_timeout_s"] = *load_timeout_s;
  return config;
}

// ---------------------------------------------------------------- processes

namespace {

std::string ReadProcFile(pid_t pid, const char* name) {
  std::string content = ReadFile("/proc/" + std::to_string(pid) + "/" + name);
  for (char& c : content) {
    if (c == '\0') c = ' ';
  }
  return content;
}

}  // namespace

std::vector<pid_t> ProcessesMarked(const std::string& marker) {
  std::vector<pid_t> found;
  if (marker.empty()) return found;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return found;
  const pid_t self = ::getpid();
  while (dirent* entry = ::readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || pid == self) continue;
    // (A zombie has an empty cmdline and environ: it holds nothing.)
    std::string text = ReadProcFile(static_cast<pid_t>(pid), "cmdline") + "\n" +
                       ReadProcFile(static_cast<pid_t>(pid), "environ");
    if (text.find(marker) != std::string::npos) found.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(dir);
  return found;
}

std::string DescribeProcesses(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t pid : pids) {
    std::string stat = ReadProcFile(pid, "stat");
    size_t paren = stat.rfind(')');
    std::string state =
        paren != std::string::npos && paren + 2 < stat.size() ? stat.substr(paren + 2, 1) : "?";
    out += std::to_string(pid) + " [" + state + "]: " + ReadProcFile(pid, "cmdline").substr(0, 300) + "\n";
  }
  return out;
}

std::string WaitNoProcessesMarked(const std::string& marker, milliseconds timeout) {
  std::vector<pid_t> left;
  PollUntil(
      [&] {
        left = ProcessesMarked(marker);
        return left.empty();
      },
      timeout);
  return DescribeProcesses(left);
}

// ---------------------------------------------------------------- registry

int RegistrySnapshot::CountStatus(const std::string& status) const {
  int n = 0;
  for (const auto& [name, row] : models) n += row.status == status ? 1 : 0;
  return n;
}

int RegistrySnapshot::CountOpenAttempts() const {
  int n = 0;
  for (const auto& a : attempts) n += a.open ? 1 : 0;
  return n;
}

int RegistrySnapshot::CountOutcome(const std::string& model, const std::string& outcome) const {
  int n = 0;
  for (const auto& a : attempts) n += a.model_name == model && a.outcome == outcome ? 1 : 0;
  return n;
}

namespace {

std::string Column(sqlite3_stmt* stmt, int i) {
  const unsigned char* text = sqlite3_column_text(stmt, i);
  return text != nullptr ? reinterpret_cast<const char*>(text) : "";
}

}  // namespace

RegistrySnapshot ReadRegistryCopy(const std::string& data_dir, const std::string& scratch_dir) {
  RegistrySnapshot snap;
  std::error_code ec;
  fs::path copy_dir = fs::path(scratch_dir) / "registry-copy";
  fs::remove_all(copy_dir, ec);
  fs::create_directories(copy_dir, ec);
  const fs::path source = fs::path(data_dir) / "registry.db";
  if (!fs::exists(source)) {
    snap.error = "no registry.db in " + data_dir;
    return snap;
  }
  for (const char* suffix : {"", "-wal", "-journal"}) {
    fs::path from = source.string() + suffix;
    if (fs::exists(from)) fs::copy_file(from, copy_dir / (std::string("registry.db") + suffix), ec);
    if (ec) {
      snap.error = "copy " + from.string() + ": " + ec.message();
      return snap;
    }
  }
  sqlite3* db = nullptr;
  std::string path = (copy_dir / "registry.db").string();
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    snap.error = std::string("open copy: ") + sqlite3_errmsg(db);
    sqlite3_close(db);
    return snap;
  }
  auto query = [&](const char* sql, auto row) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      if (snap.error.empty()) snap.error = std::string(sql) + ": " + sqlite3_errmsg(db);
      return;
    }
    int rc = 0;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    if (rc != SQLITE_DONE && snap.error.empty()) snap.error = std::string(sql) + ": " + sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
  };
  query("PRAGMA integrity_check", [&](sqlite3_stmt* s) {
    if (!snap.integrity.empty()) snap.integrity += "; ";
    snap.integrity += Column(s, 0);
  });
  query("SELECT model_name, compatibility_status, total_loads, total_failures FROM models",
        [&](sqlite3_stmt* s) {
          snap.models[Column(s, 0)] =
              ModelRow{Column(s, 1), sqlite3_column_int64(s, 2), sqlite3_column_int64(s, 3)};
        });
  query(
      "SELECT id, model_name, finished_at IS NULL, coalesce(outcome,''), coalesce(status_before,''), "
      "coalesce(status_after,'') FROM load_attempts ORDER BY id",
      [&](sqlite3_stmt* s) {
        snap.attempts.push_back(AttemptRow{sqlite3_column_int64(s, 0), Column(s, 1),
                                           sqlite3_column_int(s, 2) != 0, Column(s, 3), Column(s, 4),
                                           Column(s, 5)});
      });
  sqlite3_close(db);
  return snap;
}

RegistrySnapshot ReadRegistryPostgres(const std::string& url) {
  RegistrySnapshot snap;
  try {
    pqxx::connection conn(url);
    pqxx::nontransaction tx(conn);
    for (const auto& r : tx.exec("SELECT m.model_name, COALESCE(v.compatibility_status, 'unknown'), "
                                 "COALESCE(v.total_loads, 0), COALESCE(v.total_failures, 0) FROM models m "
                                 "LEFT JOIN model_verdicts v ON v.model_name = m.model_name")) {
      snap.models[r[0].as<std::string>()] = ModelRow{r[1].as<std::string>(), r[2].as<int64_t>(), r[3].as<int64_t>()};
    }
    for (const auto& r : tx.exec("SELECT id, model_name, finished_at IS NULL, coalesce(outcome, ''), "
                                 "coalesce(status_before, ''), coalesce(status_after, '') FROM load_attempts "
                                 "ORDER BY id")) {
      snap.attempts.push_back(AttemptRow{r[0].as<int64_t>(), r[1].as<std::string>(), r[2].as<bool>(),
                                         r[3].as<std::string>(), r[4].as<std::string>(), r[5].as<std::string>()});
    }
    snap.integrity = "ok";
  } catch (const std::exception& e) {
    snap.error = std::string("reading the PostgreSQL registry: ") + e.what();
  }
  return snap;
}

}  // namespace mw::testing_harness
