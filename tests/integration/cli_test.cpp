// The command-line client against the real server: tables, --json, exit codes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"

namespace mw::itest {
namespace {

TEST(CliTest, CommandsAndExitCodes) {
  TempDir dir;
  ASSERT_TRUE(MakeTestModel(dir.path() / "data" / "models" / "tiny.gguf"));
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());

  ProcessResult empty = server.Cli({"models", "list"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_NE(empty.out.find("No models registered"), std::string::npos);

  ProcessResult add = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf", "--load-config", R"({"n_ctx":256})"});
  EXPECT_EQ(add.exit_code, 0) << add.err;
  ProcessResult dup = server.Cli({"models", "add", "tiny", "--file", "tiny.gguf"});
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("model_exists"), std::string::npos);

  ProcessResult list = server.Cli({"models", "list"});
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_NE(list.out.find("NAME"), std::string::npos);
  EXPECT_NE(list.out.find("tiny"), std::string::npos);
  ProcessResult json_list = server.Cli({"models", "list", "--json"});
  EXPECT_EQ(json_list.exit_code, 0);
  EXPECT_EQ(json::parse(json_list.out)["models"][0]["model_name"], "tiny");

  ProcessResult load = server.Cli({"load", "tiny"});
  EXPECT_EQ(load.exit_code, 0) << load.err;
  ProcessResult show = server.Cli({"models", "show", "tiny"});
  EXPECT_EQ(show.exit_code, 0);
  EXPECT_NE(show.out.find("compatible"), std::string::npos);
  EXPECT_NE(show.out.find("recent attempts"), std::string::npos);
  ProcessResult status = server.Cli({"status"});
  EXPECT_EQ(status.exit_code, 0);
  EXPECT_NE(status.out.find("loaded: tiny"), std::string::npos) << status.out;
  EXPECT_EQ(server.Cli({"unload", "tiny"}).exit_code, 0);

  ProcessResult set = server.Cli({"models", "set", "tiny", "--status", "incompatible", "--notes", "manual"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  ProcessResult refused = server.Cli({"load", "tiny"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("--force"), std::string::npos);
  EXPECT_EQ(server.Cli({"load", "tiny", "--force"}).exit_code, 0);

  EXPECT_EQ(server.Cli({"models", "show", "ghost"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny", "--status", "testing"}).exit_code, 1);
  EXPECT_EQ(server.Cli({"models", "set", "tiny"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "add", "x", "--load-config", "[1]"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"load"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 0);
  EXPECT_EQ(server.Cli({"models", "rm", "tiny"}).exit_code, 1);

  // No server there: exit 1 and a message that says what to do.
  ProcessResult down = RunProcess({(BinDir() / "modelwarden").string(), "--url", "http://127.0.0.1:1", "status"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("modelwarden serve"), std::string::npos) << down.err;
  ProcessResult env_url = RunProcess({(BinDir() / "modelwarden").string(), "models", "list"}, {{"MODELWARDEN_URL", server.url()}});
  EXPECT_EQ(env_url.exit_code, 0) << env_url.err;
}

// SPEC §18: every command and subcommand answers --help (and -h) with its
// usage on standard output, exit 0, without a server.
TEST(CliTest, HelpOnEveryCommand) {
  const std::string bin = (BinDir() / "modelwarden").string();
  // Each command, and a flag its usage must name.
  const std::vector<std::pair<std::vector<std::string>, std::string>> commands = {
      {{"serve"}, "--data-dir"},          {{"models"}, "add"},           {{"models", "list"}, "models list"},
      {{"models", "add"}, "--hf-path"},   {{"models", "show"}, "NAME"},  {{"models", "set"}, "--load-config"},
      {{"models", "rm"}, "NAME"},         {{"load"}, "--force"},         {{"unload"}, "NAME"},
      {{"status"}, "status"},             {{"nodes"}, "nodes"},          {{"run"}, "PROMPT"},
      {{"list"}, "list"},                 {{"ps"}, "ps"},                {{"show"}, "NAME"},
      {{"rm"}, "NAME"},                   {{"stop"}, "NAME"},            {{"classify"}, "--timed-out"},
      {{"make-test-model"}, "--layers"},  {{"pull"}, "--test"},             {{"models", "scan"}, "models scan"},
      {{"retest"}, "NAME"},               {{"environment", "reset"}, "reset"},
  };
  for (const auto& [command, flag] : commands) {
    for (const char* help : {"--help", "-h"}) {
      std::vector<std::string> argv{bin};
      argv.insert(argv.end(), command.begin(), command.end());
      argv.push_back(help);
      ProcessResult r = RunProcess(argv);
      const std::string what = command[0] + (command.size() > 1 ? " " + command[1] : "") + " " + help;
      EXPECT_EQ(r.exit_code, 0) << what << ": " << r.err;
      EXPECT_NE(r.out.find("usage: modelwarden " + command[0]), std::string::npos) << what << ": " << r.out;
      EXPECT_NE(r.out.find(flag), std::string::npos) << what << ": " << r.out;
      EXPECT_EQ(r.err, "") << what;
    }
  }
  ProcessResult all = RunProcess({bin, "--help"});
  EXPECT_EQ(all.exit_code, 0);
  for (const char* flag : {"--hf-path", "--file", "--engine", "--preset", "--location", "--load-config", "--status",
                           "--notes", "--force", "--timed-out", "--patterns", "--signal", "--exit-code", "ps", "stop",
                           "pull", "models scan", "--name"}) {
    EXPECT_NE(all.out.find(flag), std::string::npos) << flag;
  }
}

// No message the CLI prints names an API field or path (SPEC §18).
void ExpectCliWords(const ProcessResult& r) {
  for (const char* api : {"force_load=", "POST /api", "PATCH /api", "file_path"}) {
    EXPECT_EQ(r.out.find(api), std::string::npos) << api << " in: " << r.out;
    EXPECT_EQ(r.err.find(api), std::string::npos) << api << " in: " << r.err;
  }
}

// SPEC §18: Ollama's verbs, the unload of a model that is not loaded, and the
// server's advice in CLI words.
TEST(CliTest, AliasesAndAdviceInCliWords) {
  TempDir dir;
  ASSERT_TRUE(MakeTestModel(dir.path() / "data" / "models" / "tiny.gguf"));
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());
  ASSERT_EQ(server.Cli({"models", "add", "tiny", "--file", "tiny.gguf", "--load-config", R"({"n_ctx":256})"}).exit_code, 0);

  ProcessResult list = server.Cli({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("tiny"), std::string::npos) << list.out;
  ProcessResult show = server.Cli({"show", "tiny"});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("load_config"), std::string::npos) << show.out;
  ProcessResult none = server.Cli({"ps"});
  EXPECT_EQ(none.exit_code, 0) << none.err;
  EXPECT_NE(none.out.find("No model is loaded"), std::string::npos) << none.out;

  // unload (and stop) of a model that is not loaded says so.
  for (const char* verb : {"unload", "stop"}) {
    ProcessResult idle = server.Cli({verb, "tiny"});
    EXPECT_EQ(idle.exit_code, 0) << idle.err;
    EXPECT_NE(idle.out.find("'tiny' is not loaded"), std::string::npos) << verb << ": " << idle.out;
    EXPECT_EQ(idle.out.find("Unloaded"), std::string::npos) << idle.out;
  }
  ASSERT_EQ(server.Cli({"load", "tiny"}).exit_code, 0);
  ProcessResult ps = server.Cli({"ps"});
  EXPECT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_NE(ps.out.find("tiny"), std::string::npos) << ps.out;
  ProcessResult stop = server.Cli({"stop", "tiny"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_NE(stop.out.find("Unloaded 'tiny'"), std::string::npos) << stop.out;

  // The refusal's advice: the command, not force_load=true.
  ASSERT_EQ(server.Cli({"models", "set", "tiny", "--status", "incompatible"}).exit_code, 0);
  ProcessResult refused = server.Cli({"load", "tiny"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("modelwarden load tiny --force"), std::string::npos) << refused.err;
  ExpectCliWords(refused);
  ProcessResult chat = server.Cli({"run", "tiny", "hello"});
  EXPECT_EQ(chat.exit_code, 3);
  EXPECT_NE(chat.err.find("modelwarden load tiny --force"), std::string::npos) << chat.err;
  ExpectCliWords(chat);
  // A Hugging Face path with no file in the cache: the flag is --file.
  ProcessResult hf = server.Cli({"models", "add", "ghost", "--hf-path", "org/none"});
  if (hf.exit_code == 0) hf = server.Cli({"load", "ghost"});
  EXPECT_NE(hf.exit_code, 0);
  EXPECT_NE(hf.err.find("--file PATH"), std::string::npos) << hf.err;
  ExpectCliWords(hf);

  // The environment's reset has a command (the status banner names it, SPEC §11).
  ProcessResult reset = server.Cli({"environment", "reset"});
  EXPECT_EQ(reset.exit_code, 0) << reset.err;
  EXPECT_NE(reset.out.find("Environment: ok"), std::string::npos) << reset.out;
  EXPECT_EQ(server.Cli({"environment", "frob"}).exit_code, 2);

  ProcessResult rm = server.Cli({"rm", "tiny"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.out.find("Removed 'tiny'"), std::string::npos) << rm.out;
  EXPECT_NE(rm.out.find("model file, if any, was left in place"), std::string::npos) << rm.out;
  ProcessResult nosuch = server.Cli({"run", "nosuch", "hi"});
  EXPECT_EQ(nosuch.exit_code, 1);
  EXPECT_NE(nosuch.err.find("modelwarden models list"), std::string::npos) << nosuch.err;  // as load nosuch
  EXPECT_EQ(server.Cli({"show", "tiny"}).exit_code, 1);
}

// SPEC §18, issue 23 points 1 and 2: a file's fault is the file's (refused
// at registration when it is no GGUF; a truncated one is a corrupt file, not
// the machine), and a replaced file makes its verdict stale: retest, and
// the notes start afresh.
TEST(CliTest, AFileFaultIsTheFilesAndAReplacedFileMakesTheVerdictStale) {
  TempDir dir;
  const std::filesystem::path models = dir.path() / "data" / "models";
  ASSERT_TRUE(MakeTestModel(models / "tiny.gguf"));
  std::filesystem::copy_file(models / "tiny.gguf", models / "half.gguf");
  std::filesystem::resize_file(models / "half.gguf", std::filesystem::file_size(models / "tiny.gguf") / 2);
  std::ofstream(models / "fake.gguf") << "hello, I am a text file\n";
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());

  ProcessResult fake = server.Cli({"models", "add", "fake", "--file", "fake.gguf"});
  EXPECT_EQ(fake.exit_code, 1);
  EXPECT_NE(fake.err.find("is not a GGUF file: it does not start with the GGUF magic"), std::string::npos) << fake.err;
  EXPECT_NE(fake.err.find("[invalid_model]"), std::string::npos) << fake.err;
  HttpReply fake_api = server.Call("POST", "/api/models", R"({"model_name":"fake","file_path":"fake.gguf"})");
  EXPECT_EQ(fake_api.status, 400) << fake_api.raw;
  EXPECT_EQ(fake_api.body["error"]["code"], "invalid_model");
  // The log line may land just after the answer: wait for it, with a deadline.
  EXPECT_TRUE(server.WaitForStderr("not a GGUF file: it does not start with the GGUF magic")) << server.Stderr();

  ASSERT_EQ(server.Cli({"models", "add", "half", "--file", "half.gguf", "--load-config", R"({"n_ctx":256})"}).exit_code, 0);
  ProcessResult failed = server.Cli({"load", "half"});
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.err.find("category: unsupported_model"), std::string::npos) << failed.err;
  // The reason, in the server's log too; the line may land just after the answer.
  EXPECT_TRUE(server.WaitForStderr("category=unsupported_model pid=")) << server.Stderr();
  EXPECT_NE(server.Stderr().find("summary=corrupt model file: truncated (tensor '"), std::string::npos)
      << server.Stderr();
  ProcessResult refused = server.Cli({"load", "half"});
  EXPECT_EQ(refused.exit_code, 3);
  EXPECT_NE(refused.err.find("'half' was refused: The model file is bad: corrupt model file: truncated"),
            std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("Replace the file"), std::string::npos) << refused.err;
  for (const ProcessResult& r : {failed, refused, server.Cli({"show", "half"})}) {
    EXPECT_EQ(r.out.find("Hardware incompatibility"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find("Hardware incompatibility"), std::string::npos) << r.err;
  }
  ExpectCliWords(failed);
  ExpectCliWords(refused);

  // The good file replaces the truncated one: the verdict is stale, retest.
  std::filesystem::copy_file(models / "tiny.gguf", models / "half.gguf",
                             std::filesystem::copy_options::overwrite_existing);
  json stale = server.Call("GET", "/api/models/half").body;
  EXPECT_EQ(stale["verdict_stale"], true) << stale.dump();
  EXPECT_EQ(stale["verdict_stale_reason"], "model file changed") << stale.dump();
  ProcessResult show = server.Cli({"show", "half"});
  EXPECT_NE(show.out.find("model file changed (retest: modelwarden retest half)"), std::string::npos) << show.out;
  ProcessResult still = server.Cli({"load", "half"});
  EXPECT_EQ(still.exit_code, 3);
  EXPECT_NE(still.err.find("Its verdict is stale (model file changed): retest it with `modelwarden retest half`"),
            std::string::npos) << still.err;
  ExpectCliWords(still);
  ProcessResult retest = server.Cli({"retest", "half"});
  EXPECT_EQ(retest.exit_code, 0) << retest.err;
  json fixed = server.Call("GET", "/api/models/half").body;
  EXPECT_EQ(fixed["compatibility_status"], "compatible") << fixed.dump();
  EXPECT_EQ(fixed["compatibility_notes"], "") << fixed.dump();
  EXPECT_EQ(fixed["verdict_stale"], false) << fixed.dump();
  ASSERT_FALSE(fixed["attempts"].empty());
  EXPECT_EQ(fixed["attempts"][0]["summary"].get<std::string>().rfind("notes before this success: The model file is bad", 0),
            0u) << fixed.dump();
}

// SPEC §18, issue 23 point 9: a file outside the model location gets a way
// forward: --copy, --link, or the [locations] lines.
TEST(CliTest, AFileOutsideTheLocationIsCopiedOrLinkedIn) {
  TempDir dir;
  const std::filesystem::path nu = dir.path() / "nu";
  ASSERT_TRUE(MakeTestModel(nu / "tiny.gguf"));
  std::filesystem::copy_file(nu / "tiny.gguf", nu / "other.gguf");
  Server server(dir.path() / "data");
  ASSERT_TRUE(server.started());
  const std::string outside = (nu / "tiny.gguf").string();
  ProcessResult refused = server.Cli({"models", "add", "tiny", "--file", outside});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("modelwarden models add tiny --file " + outside + " --copy"), std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("[locations]\n  mine = \"" + nu.string() + "\""), std::string::npos) << refused.err;
  ExpectCliWords(refused);

  ProcessResult copied = server.Cli({"models", "add", "tiny", "--file", outside, "--copy"});
  EXPECT_EQ(copied.exit_code, 0) << copied.err;
  EXPECT_NE(copied.out.find("Copied " + outside), std::string::npos) << copied.out;
  EXPECT_TRUE(std::filesystem::is_regular_file(dir.path() / "data" / "models" / "tiny.gguf"));
  EXPECT_EQ(server.Call("GET", "/api/models/tiny").body["file_path"], "tiny.gguf");

  ProcessResult linked = server.Cli({"models", "add", "other", "--file", (nu / "other.gguf").string(), "--link"});
  EXPECT_EQ(linked.exit_code, 0) << linked.err;
  EXPECT_EQ(std::filesystem::hard_link_count(nu / "other.gguf"), 2u);
  EXPECT_EQ(server.Cli({"models", "add", "again", "--file", outside, "--copy"}).exit_code, 1);  // the name is taken there
}

// Answers every request on a loopback port with `response` (raw HTTP): a
// server that is not modelwarden, or a broken one.
class CannedHttpServer {
 public:
  explicit CannedHttpServer(std::string response) : response_(std::move(response)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedHttpServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  void Serve() {
    for (;;) {
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      std::string request;
      char buf[4096];
      size_t body_start = std::string::npos;
      while (body_start == std::string::npos) {
        ssize_t n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
        if (size_t end = request.find("\r\n\r\n"); end != std::string::npos) body_start = end + 4;
      }
      size_t length = 0;
      if (size_t cl = request.find("Content-Length: "); cl != std::string::npos) {
        length = std::stoul(request.substr(cl + 16));
      }
      while (body_start != std::string::npos && request.size() < body_start + length) {
        ssize_t n = ::read(conn, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      (void)!::write(conn, response_.data(), response_.size());
      ::close(conn);
    }
  }

  std::string response_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

std::string Http200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

// JSON of an unexpected shape (another server on that port, or a broken
// proxy) is an error, exit 1, not an abort from an uncaught exception.
TEST(CliTest, UnexpectedJsonFromServerIsAnErrorNotACrash) {
  const std::string cli = (BinDir() / "modelwarden").string();
  CannedHttpServer array_server(Http200("[]"));
  ProcessResult list = RunProcess({cli, "--url", array_server.url(), "models", "list"});
  EXPECT_EQ(list.exit_code, 1) << list.err;
  EXPECT_NE(list.err.find("unexpected"), std::string::npos) << list.err;

  CannedHttpServer wrong_types(Http200(R"({"already_loaded":"yes","model":[]})"));
  ProcessResult load = RunProcess({cli, "--url", wrong_types.url(), "load", "tiny"});
  EXPECT_EQ(load.exit_code, 1) << load.err;

  CannedHttpServer number_devices(Http200(R"({"version":"x","counts":{},"devices":5})"));
  ProcessResult status = RunProcess({cli, "--url", number_devices.url(), "status"});
  EXPECT_EQ(status.exit_code, 1) << status.err;
}

// SPEC §14: `modelwarden nodes` prints the fleet of the server's answer (a
// canned one: several nodes, and an expired lease, need several servers on
// PostgreSQL), and `models show` prints the verdicts of other classes.
TEST(CliTest, NodesTableAndOtherClassesVerdicts) {
  const std::string cli = (BinDir() / "modelwarden").string();
  const json nodes = {
      {"this_node", "node-a"},
      {"live", 1},
      {"nodes",
       {{{"node_id", "node-a"}, {"host", "gpu-a"}, {"environment_class", "cuda sm90"},
         {"lease", {{"state", "held"}, {"live", true}, {"lease_s", 30}, {"heartbeat_at", "t"}, {"heartbeat_age_s", 2.7}}},
         {"started_at", "t0"}, {"loaded_models", {"phi", "qwen"}}, {"expired_by", nullptr}},
        {{"node_id", "node-b"}, {"host", "gpu-b"}, {"environment_class", ""},
         {"lease", {{"state", "expired"}, {"live", false}, {"lease_s", 30}, {"heartbeat_at", "t"}, {"heartbeat_age_s", 912.0}}},
         {"started_at", "t0"}, {"loaded_models", json::array()}, {"expired_by", "node-a"}}}}};
  CannedHttpServer fleet(Http200(nodes.dump()));
  ProcessResult table = RunProcess({cli, "--url", fleet.url(), "nodes"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  for (const char* text : {"NODE", "HOST", "CLASS", "LEASE", "LOADED", "node-a (this)", "gpu-a", "cuda sm90",
                           "held, 2s ago", "phi, qwen", "node-b", "expired, 912s ago (closed by node-a)",
                           "1 of 2 node(s) live"}) {
    EXPECT_NE(table.out.find(text), std::string::npos) << text << "\n" << table.out;
  }
  ProcessResult as_json = RunProcess({cli, "--url", fleet.url(), "nodes", "--json"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  EXPECT_EQ(json::parse(as_json.out), nodes);

  json model = {{"model_name", "phi"}, {"compatibility_status", "compatible"}, {"attempts", json::array()},
                {"verdicts",
                 {{{"environment_class", "cuda sm90"}, {"status", "compatible"}, {"notes", nullptr},
                   {"nodes", {"node-a"}}, {"total_loads", 3}, {"total_failures", 0}, {"this_node_class", true}},
                  {{"environment_class", "rocm gfx1100"}, {"status", "incompatible"},
                   {"notes", "Hardware incompatibility detected: gpu_context"}, {"nodes", {"node-b", "node-c"}},
                   {"total_loads", 0}, {"total_failures", 1}, {"this_node_class", false}}}}};
  CannedHttpServer one_model(Http200(model.dump()));
  ProcessResult show = RunProcess({cli, "--url", one_model.url(), "models", "show", "phi"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  for (const char* text : {"verdicts per environment class", "cuda sm90 (this node)", "rocm gfx1100",
                           "incompatible", "node-b, node-c", "Hardware incompatibility detected"}) {
    EXPECT_NE(show.out.find(text), std::string::npos) << text << "\n" << show.out;
  }
  model["verdicts"].erase(1);  // one class (SQLite): nothing more to print
  CannedHttpServer one_class(Http200(model.dump()));
  ProcessResult single = RunProcess({cli, "--url", one_class.url(), "models", "show", "phi"});
  ASSERT_EQ(single.exit_code, 0) << single.err;
  EXPECT_EQ(single.out.find("verdicts per environment class"), std::string::npos) << single.out;

  CannedHttpServer not_ours(Http200("[]"));
  ProcessResult wrong = RunProcess({cli, "--url", not_ours.url(), "nodes"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.err;
  EXPECT_EQ(RunProcess({cli, "--url", not_ours.url(), "nodes", "extra"}).exit_code, 2);
}

}  // namespace
}  // namespace mw::itest
