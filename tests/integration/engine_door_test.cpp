// SPEC §20, the engine behind a locked door, against the real server: a
// loaded llama.cpp model's engine listens on a Unix socket in a directory
// only the server's user can enter (no TCP port at all), /v1 still answers
// through the proxy, a command preset gets a per-load secret the proxy
// sends, placeholders are substituted once, and no child inherits the
// server's secrets.
#include <dirent.h>
#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

const std::string kServerKey = "server-key-0123456789";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A process's parent pid, from /proc/PID/stat (0 if gone).
pid_t ParentOf(pid_t pid) {
  const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  char state = 0;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::vector<pid_t> AllPids() {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end != e->d_name && *end == '\0') out.push_back(static_cast<pid_t>(pid));
  }
  if (d) ::closedir(d);
  return out;
}

// `root` and every process below it.
std::vector<pid_t> ProcessTree(pid_t root) {
  std::vector<pid_t> tree{root};
  for (pid_t pid : AllPids()) {
    for (pid_t p = ParentOf(pid), hops = 0; p > 1 && hops < 16; p = ParentOf(p), ++hops) {
      if (p == root) {
        tree.push_back(pid);
        break;
      }
    }
  }
  return tree;
}

// argv[0] of a process (empty if gone).
std::string Program(pid_t pid) {
  const std::string cmdline = ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
  return cmdline.substr(0, cmdline.find('\0'));
}

// The worker serving a model: the process below the server running
// modelwarden-worker with a GGUF mapped (not the pre-started one beside it,
// which waits for a model: SPEC §16).
pid_t WorkerOf(const Server& server) {
  for (pid_t pid : ProcessTree(server.pid())) {
    const std::string program = Program(pid);
    if (program.size() < 18 || program.compare(program.size() - 18, 18, "modelwarden-worker") != 0) continue;
    if (ReadFile("/proc/" + std::to_string(pid) + "/maps").find(".gguf") != std::string::npos) return pid;
  }
  return 0;
}

// The socket inodes a process holds.
std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    char target[256];
    ssize_t n = ::readlink((dir + "/" + e->d_name).c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    std::string link(target, static_cast<size_t>(n));
    if (link.rfind("socket:[", 0) == 0) out.insert(link.substr(8, link.size() - 9));
  }
  if (d) ::closedir(d);
  return out;
}

// Listening TCP sockets (IPv4 and IPv6) as inode -> port.
std::map<std::string, int> ListeningTcp() {
  std::map<std::string, int> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream in(ReadFile(table));
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >> inode;
      if (state != "0A") continue;  // TCP_LISTEN
      out[inode] = static_cast<int>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return out;
}

// The TCP ports that processes of `pids` listen on.
std::set<int> ListeningPortsOf(const std::vector<pid_t>& pids) {
  const std::map<std::string, int> listening = ListeningTcp();
  std::set<int> ports;
  for (pid_t pid : pids) {
    for (const std::string& inode : SocketInodes(pid)) {
      if (auto it = listening.find(inode); it != listening.end()) ports.insert(it->second);
    }
  }
  return ports;
}

// The Unix socket paths a process listens on (/proc/net/unix, by inode).
std::vector<std::string> UnixSocketPathsOf(pid_t pid) {
  const std::set<std::string> inodes = SocketInodes(pid);
  std::vector<std::string> out;
  std::istringstream in(ReadFile("/proc/net/unix"));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string num, refcount, protocol, flags, type, st, inode, path;
    f >> num >> refcount >> protocol >> flags >> type >> st >> inode >> path;
    if (flags == "00010000" && !path.empty() && inodes.count(inode)) out.push_back(path);  // __SO_ACCEPTCON
  }
  return out;
}

// The environment of a process, NAME=value entries.
std::vector<std::string> EnvironOf(pid_t pid) {
  const std::string raw = ReadFile("/proc/" + std::to_string(pid) + "/environ");
  std::vector<std::string> out;
  for (size_t start = 0; start < raw.size();) {
    size_t end = raw.find('\0', start);
    if (end == std::string::npos) end = raw.size();
    out.push_back(raw.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool HasVariable(const std::vector<std::string>& env, const std::string& name) {
  for (const std::string& e : env) {
    if (e.rfind(name + "=", 0) == 0) return true;
  }
  return false;
}

// connect() to a Unix socket as uid/gid 65534 (nobody), in a child process;
// returns the errno it failed with (0: it connected).
int ConnectAsNobody(const std::string& path) {
  pid_t child = ::fork();
  if (child == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(200);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::_exit(rc == 0 ? 0 : (errno & 0x7f));
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

json Chat(const std::string& model) {
  return {{"model", model}, {"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", "Hello"}}}}};
}

TEST(EngineDoorTest, TheLlamaEngineListensOnlyOnAPrivateUnixSocketAndInheritsNoSecret) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ASSERT_TRUE(MakeTestModel(data / "models" / "tiny.gguf"));
  Server server(data, ConfigArgs(dir.path(), "keep_alive = \"-1\"\n"),
                {{"MODELWARDEN_API_KEY", kServerKey}, {"HF_TOKEN", "hf-secret"}, {"PGPASSWORD", "pg-secret"}});
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"}, {"load_config", {{"n_ctx", 256}}}}.dump(),
                        kServerKey).status, 201);
  // /v1 answers through the proxy, whole and streamed.
  HttpReply chat = server.Call("POST", "/v1/chat/completions", Chat("tiny").dump(), kServerKey);
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["object"], "chat.completion") << chat.raw;
  json streamed = Chat("tiny");
  streamed["stream"] = true;
  RawResponse sse = RawRequest(server.port(), "POST", "/v1/chat/completions", streamed.dump(),
                               "Authorization: Bearer " + kServerKey + "\r\n");
  ASSERT_EQ(sse.status, 200) << sse.body;
  std::vector<std::string> events = Events(sse.body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "[DONE]") << sse.body;

  const pid_t worker = WorkerOf(server);
  ASSERT_GT(worker, 0);
  // No secret of the server's in the worker's (or its keeper's) environment.
  for (pid_t pid : {worker, ParentOf(worker)}) {
    const std::vector<std::string> env = EnvironOf(pid);
    ASSERT_FALSE(env.empty()) << pid;
    EXPECT_FALSE(HasVariable(env, "MODELWARDEN_API_KEY")) << Program(pid);
    EXPECT_FALSE(HasVariable(env, "HF_TOKEN")) << Program(pid);
    EXPECT_FALSE(HasVariable(env, "PGPASSWORD")) << Program(pid);
  }
  // No TCP listener in the worker; in the whole process tree, only the server's port.
  EXPECT_TRUE(ListeningPortsOf({worker}).empty());
  EXPECT_EQ(ListeningPortsOf(ProcessTree(server.pid())), std::set<int>{server.port()});
  // The engine's Unix socket, in <data_dir>/run, which only this user can enter.
  std::vector<std::string> sockets = UnixSocketPathsOf(worker);
  ASSERT_EQ(sockets.size(), 1u);
  const std::string run = (data / "run").string();
  EXPECT_EQ(sockets[0].rfind(run + "/", 0), 0u) << sockets[0];
  struct stat st {};
  ASSERT_EQ(::stat(run.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  if (::geteuid() == 0) {
    // Another local user (nobody) cannot reach the engine.
    EXPECT_EQ(ConnectAsNobody(sockets[0]), EACCES);
  }
  // The socket goes with the engine.
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", json{{"model_name", "tiny"}}.dump(), kServerKey).status, 200);
  EXPECT_NE(::access(sockets[0].c_str(), F_OK), 0);
}

TEST(EngineDoorTest, ACommandPresetGetsItsFileVerbatimAndAPerLoadKeyThatTheProxySends) {
  TempDir dir;
  const auto data = dir.path() / "data";
  const std::string file = "x{port}{model_name}.gguf";
  std::filesystem::create_directories(data / "models");
  std::ofstream(data / "models" / file) << "not a model";
  const std::string seen = (dir.path() / "seen").string();
  const std::string engine = (BinDir() / "mw-openai-engine").string();
  const std::string toml =
      "[engines.echo]\n"
      "argv = [\"/bin/sh\", \"-c\", \"printf %s \\\"$1\\\" > " + seen + ".argv; env > " + seen +
      ".env; echo ready; exec cat\", \"sh\", \"{model_path}\"]\n"
      "ready_pattern = \"ready\"\n"
      "[engines.keyed]\n"
      "argv = [\"" + engine + "\", \"--port\", \"{port}\", \"--api-key\", \"{api_key}\"]\n"
      "health_path = \"/health\"\n";
  Server server(data, ConfigArgs(dir.path(), toml), {{"MODELWARDEN_API_KEY", kServerKey}});
  ASSERT_TRUE(server.started()) << server.startup_output();

  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "c11"}, {"engine", "command"}, {"file_path", file},
                             {"load_config", {{"preset", "echo"}}}}.dump(), kServerKey).status, 201);
  HttpReply load = server.Call("POST", "/api/orchestrate/load", json{{"model_name", "c11"}}.dump(), kServerKey);
  ASSERT_EQ(load.status, 200) << load.raw;
  const std::string argv = ReadFile(seen + ".argv");
  EXPECT_EQ(argv, (data / "models" / file).string());  // not x<port>c11.gguf
  const std::string env = ReadFile(seen + ".env");
  EXPECT_EQ(env.find("MODELWARDEN_API_KEY="), std::string::npos) << env;
  EXPECT_NE(env.find("MODELWARDEN_ENGINE_API_KEY="), std::string::npos) << env;

  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "keyed"}, {"engine", "command"}, {"load_config", {{"preset", "keyed"}}}}.dump(),
                        kServerKey).status, 201);
  // Loaded (the health check carried the key) and served (so did the proxy).
  HttpReply chat = server.Call("POST", "/v1/chat/completions", Chat("keyed").dump(), kServerKey);
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["choices"][0]["message"]["content"], "Hello w1 w2 w3") << chat.raw;  // max_tokens 4
  // The engine's own TCP port refuses whoever does not know the key.
  int port = 0;
  for (pid_t pid : ProcessTree(server.pid())) {
    if (Program(pid) != engine) continue;
    for (int p : ListeningPortsOf({pid})) port = p;
  }
  ASSERT_GT(port, 0);
  RawResponse direct = RawRequest(port, "POST", "/v1/chat/completions", Chat("keyed").dump());
  EXPECT_EQ(direct.status, 401) << direct.body;
  RawResponse wrong = RawRequest(port, "POST", "/v1/chat/completions", Chat("keyed").dump(),
                                 "Authorization: Bearer " + kServerKey + "\r\n");
  EXPECT_EQ(wrong.status, 401) << wrong.body;
}

}  // namespace
}  // namespace mw::itest
