#include "harness.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>

namespace mw::itest {
namespace fs = std::filesystem;

fs::path BinDir() {
  const char* dir = std::getenv("MW_BIN_DIR");
  return dir ? fs::path(dir) : fs::path("build/bin");
}

std::string FakeEngine() { return (BinDir() / "mw-fake-engine").string(); }

TempDir::TempDir() {
  std::random_device rd;
  path_ = fs::temp_directory_path() / ("mw_itest_" + std::to_string(::getpid()) + "_" + std::to_string(rd()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

namespace {

// fork + exec with stdout/stderr to pipes; stdin from /dev/null.
pid_t Spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env, int* out_fd,
            int* err_fd) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  *out_fd = out[0];
  *err_fd = err[0];
  return pid;
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -1;
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  ProcessResult result;
  int out_fd = -1, err_fd = -1;
  pid_t pid = Spawn(argv, env, &out_fd, &err_fd);
  if (pid < 0) return result;
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    if (::poll(fds, 2, 1000) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = ExitCodeOf(status);
  return result;
}

Server::Server(const fs::path& data_dir, std::vector<std::string> extra_args, std::map<std::string, std::string> env) {
  std::vector<std::string> argv = {(BinDir() / "modelwarden").string(), "serve", "--port", "0", "--data-dir",
                                   data_dir.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // No user configuration file may leak into a test.
  env.emplace("XDG_CONFIG_HOME", (data_dir / "no-config").string());
  int err_fd = -1;
  pid_ = Spawn(argv, env, &out_fd_, &err_fd);
  // stderr goes to a thread that keeps it (Stderr()) and, with
  // MW_ITEST_SERVER_LOG set, copies it to the test's stderr (logs help when a test fails).
  std::thread([err_fd, buffer = stderr_] {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(err_fd, buf, sizeof(buf))) > 0) {
      {
        std::lock_guard lock(buffer->mu);
        buffer->text.append(buf, static_cast<size_t>(n));
      }
      if (std::getenv("MW_ITEST_SERVER_LOG")) (void)!::write(2, buf, static_cast<size_t>(n));
    }
    ::close(err_fd);
  }).detach();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::string buffer;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) break;  // exited before listening
    buffer.append(buf, static_cast<size_t>(n));
    auto at = buffer.find("listening on http://");
    if (at != std::string::npos && buffer.find('\n', at) != std::string::npos) {
      auto colon = buffer.find(':', buffer.find("//", at) + 2);
      port_ = std::atoi(buffer.c_str() + colon + 1);
      break;
    }
  }
  startup_output_ = buffer;
  if (port_ == 0) {
    int status = 0;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

Server::~Server() { Stop(); }

std::string Server::Stderr() const {
  std::lock_guard lock(stderr_->mu);
  return stderr_->text;
}

std::string Server::Stdout() {
  for (;;) {
    if (out_fd_ < 0) break;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(out_fd_, buf, sizeof(buf));
    if (n <= 0) break;
    stdout_rest_.append(buf, static_cast<size_t>(n));
  }
  return stdout_rest_;
}

bool Server::WaitForStdout(const std::string& text, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    if (Stdout().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

bool Server::WaitForStderr(const std::string& text) const {
  for (int i = 0; i < 300; ++i) {
    if (Stderr().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

HttpReply Server::Call(const std::string& method, const std::string& path, const std::string& body,
                       const std::string& api_key) {
  HttpReply reply;
  auto client = http::HttpClient::Create(url(), api_key, std::chrono::seconds(120));
  if (!client.ok()) return reply;
  auto r = (*client)->Send(method, path, body);
  if (!r.ok()) {
    reply.raw = "(no answer: " + r.status().message() + ")";  // status stays 0
    return reply;
  }
  reply.status = r->status;
  reply.raw = r->body;
  reply.body = json::parse(r->body, nullptr, false);
  return reply;
}

ProcessResult Server::Cli(std::vector<std::string> args) {
  std::vector<std::string> argv = {(BinDir() / "modelwarden").string(), "--url", url()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

bool Server::Alive() {
  if (pid_ <= 0) return false;
  return Call("GET", "/api/status").status == 200;
}

int Server::Stop() {
  if (pid_ <= 0) return exit_code_;
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exit_code_ = ExitCodeOf(status);
  pid_ = -1;
  if (out_fd_ >= 0) ::close(out_fd_);
  out_fd_ = -1;
  return exit_code_;
}

void Server::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  if (out_fd_ >= 0) ::close(out_fd_);
  out_fd_ = -1;
}

std::vector<std::string> ConfigArgs(const fs::path& dir, const std::string& config_toml, const std::string& name) {
  fs::create_directories(dir);
  fs::path file = dir / name;
  std::ofstream(file) << config_toml;
  return {"--config", file.string()};
}

std::vector<std::string> AllowApiCommands(const fs::path& dir) {
  return ConfigArgs(dir, "allow_api_commands = true\n", "allow-api-commands.toml");
}

bool MakeTestModel(const fs::path& out, const std::vector<std::string>& extra) {
  fs::create_directories(out.parent_path());
  std::vector<std::string> argv = {(BinDir() / "modelwarden").string(), "make-test-model", out.string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv).exit_code == 0;
}

json FakeArgv(const std::vector<std::string>& fake_args) {
  json argv = json::array({FakeEngine()});
  for (const auto& a : fake_args) argv.push_back(a);
  return argv;
}

json CommandModel(const std::string& name, const std::vector<std::string>& fake_args,
                  const std::string& ready_pattern) {
  return json{{"model_name", name},
              {"engine", "command"},
              {"load_config", {{"argv", FakeArgv(fake_args)}, {"ready_pattern", ready_pattern}}}};
}

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

pid_t RealWorkerUnder(const std::filesystem::path& path) {
  static constexpr std::string_view kWorker = "modelwarden-worker";
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline", std::ios::binary);
    std::string argv0;
    std::getline(in, argv0, '\0');
    std::ostringstream rest;
    rest << in.rdbuf();
    const std::string cmdline = argv0 + '\0' + rest.str();
    if (argv0.size() < kWorker.size() || argv0.compare(argv0.size() - kWorker.size(), kWorker.size(), kWorker) != 0) {
      continue;
    }
    // A pre-started worker (`load --standby`, SPEC §16) names no model in
    // its argv (only its socket): it is a model's once it maps the file.
    if (cmdline.find(std::string("\0--standby\0", 11)) != std::string::npos) {
      std::ifstream maps(entry.path() / "maps");
      for (std::string line; std::getline(maps, line);) {
        if (line.find(".gguf") != std::string::npos && line.find(path.string()) != std::string::npos) {
          return static_cast<pid_t>(std::stol(pid));
        }
      }
    } else if (cmdline.find(path.string()) != std::string::npos) {
      return static_cast<pid_t>(std::stol(pid));
    }
  }
  return 0;
}

bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

bool WaitForStatus(Server& server, const std::string& name, const std::string& status) {
  for (int i = 0; i < 300; ++i) {
    if (server.Call("GET", "/api/models/" + name).body.value("compatibility_status", "") == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::string StartupLog(const Server& server) {
  const std::string marker = "[serve] startup cleanup: ";
  server.WaitForStderr(marker);
  std::string log = server.Stderr();
  const size_t at = log.find(marker);
  if (at == std::string::npos) return log;
  const size_t end = log.find('\n', at);
  return log.substr(0, end == std::string::npos ? log.size() : end + 1);
}

}  // namespace mw::itest
