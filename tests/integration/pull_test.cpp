// Getting models (SPEC §17) against a Hugging Face–compatible hub of the
// suite's own (tests/hub/fake_hub.mjs: tree and resolve endpoints, a 302 to a
// second host serving the bytes with Range, X-Repo-Commit, X-Linked-Etag,
// injected faults). No internet. The files are make-test-model GGUFs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.h"
#include "raw_http.h"
#include "require.h"

namespace mw::itest {
namespace {
namespace fs = std::filesystem;

constexpr const char* kCommit = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

bool HaveNode() { return RunProcess({"/bin/sh", "-c", "command -v node"}).exit_code == 0; }

// tests/hub/fake_hub.mjs, started with a config of repositories; stopped at destruction.
class FakeHub {
 public:
  FakeHub(const fs::path& dir, const json& repos) {
    const fs::path config = dir / "hub.json";
    std::ofstream(config) << json{{"repos", repos}}.dump();
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      const std::string script = std::string(MW_TESTS_DIR) + "/hub/fake_hub.mjs";
      execlp("node", "node", script.c_str(), config.c_str(), nullptr);
      _exit(127);
    }
    close(out[1]);
    FILE* f = fdopen(out[0], "r");
    char line[128] = {};
    if (f && fgets(line, sizeof(line), f)) std::sscanf(line, "hub %d cdn %d", &port_, &cdn_port_);
    if (f) fclose(f);
  }
  ~FakeHub() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return port_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  void SetFaults(const json& faults) { RawRequest(port_, "POST", "/_control/faults", faults.dump()); }
  json Stats() { return json::parse(RawRequest(port_, "GET", "/_control/stats", "").body); }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int cdn_port_ = 0;
};

std::string Sha256(const fs::path& p) {
  ProcessResult r = RunProcess({"/usr/bin/sha256sum", p.string()});
  return r.out.substr(0, 64);
}

// Polls GET /api/pulls until pull `id` finished; its JSON (null on timeout).
json WaitForPull(Server& server, const std::string& id, int seconds = 60) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    HttpReply r = server.Call("GET", "/api/pulls");
    for (const auto& p : r.body["pulls"]) {
      if (p["id"] == id && (p["state"] == "done" || p["state"] == "failed" || p["state"] == "cancelled")) return p;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return nullptr;
}

// Polls until pull `id` has downloaded some bytes (it is in the middle of its body).
bool WaitForBytes(Server& server, const std::string& id) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  json last;
  while (std::chrono::steady_clock::now() < until) {
    last = server.Call("GET", "/api/pulls").body;
    for (const auto& p : last["pulls"]) {
      if (p["id"] == id && p["bytes_done"].get<int64_t>() > 0) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "no bytes yet: " << last.dump();
  return false;
}

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MW_REQUIRE(HaveNode(), "node (scripts/bootstrap installs nodejs) for the test hub");
    ASSERT_TRUE(MakeTestModel(files_ / "tiny.gguf"));
    // Two files (copy.gguf differs by its tail), several names each: the layout keys blobs by sha256.
    fs::copy_file(files_ / "tiny.gguf", files_ / "copy.gguf");
    std::ofstream(files_ / "copy.gguf", std::ios::app) << std::string(4096, '\0');  // another sha256
    std::ofstream(files_ / "part2.bin") << std::string(4096, 'x');
  }

  json Repos() {
    const std::string tiny = (files_ / "tiny.gguf").string();
    const std::string copy = (files_ / "copy.gguf").string();
    return json{
        {"org/tiny-GGUF",
         {{"commit", kCommit},
          {"files",
           {{"README.md", (files_ / "part2.bin").string()},
            {"tiny.Q4_K_M.gguf", tiny},
            {"tiny.Q8_0.gguf", copy},
            {"tiny-v2.Q8_0.gguf", copy},
            {"mmproj-tiny-f16.gguf", copy},
            {"split/big-Q2_K-00001-of-00002.gguf", tiny},
            {"split/big-Q2_K-00002-of-00002.gguf", (files_ / "part2.bin").string()}}}}},
        {"org/gated", {{"commit", kCommit}, {"gated", true}, {"token", "hf_secret"}, {"files", {{"g.gguf", tiny}}}}},
    };
  }

  std::vector<std::string> HubConfig(const std::string& extra = "") {
    return ConfigArgs(dir_.path(), "hf_endpoint = \"" + hub_->url() + "\"\nkeep_alive = \"-1\"\n" + extra);
  }

  void StartAll(const std::string& extra_config = "", std::map<std::string, std::string> env = {}) {
    hub_ = std::make_unique<FakeHub>(dir_.path(), Repos());
    ASSERT_TRUE(hub_->started());
    server_ = std::make_unique<Server>(data_, HubConfig(extra_config), env);
    ASSERT_TRUE(server_->started()) << server_->startup_output();
  }

  // POST /api/models/pull; the pull's id after a 202.
  std::string Pull(const json& body) {
    HttpReply r = server_->Call("POST", "/api/models/pull", body);
    EXPECT_EQ(r.status, 202) << r.raw;
    return r.status == 202 ? r.body["pull"]["id"].get<std::string>() : "";
  }

  fs::path Repo() const { return data_ / "models" / "models--org--tiny-GGUF"; }

  TempDir dir_;
  fs::path files_ = dir_.path() / "files";
  fs::path data_ = dir_.path() / "data";
  std::unique_ptr<FakeHub> hub_;
  std::unique_ptr<Server> server_;
};

// The whole path: tree API, quant tag, 302 to the CDN, the cache layout, the
// registration, --test's load, and /v1 on the pulled model; progress and the
// end arrive as `event: pull` frames.
TEST_F(PullTest, PullByQuantFillsTheCacheRegistersTestsAndServes) {
  StartAll();
  RawConnection events(server_->port());
  ASSERT_TRUE(events.Send("GET", "/api/events", ""));
  events.ReadUntil("\r\n\r\n", std::chrono::seconds(10));
  const std::string id = Pull({{"hf_path", "org/tiny-GGUF"}, {"quant", "q4_k_m"}, {"model_name", "tiny"}, {"test", true}});
  json pull = WaitForPull(*server_, id);
  ASSERT_EQ(pull["state"], "done") << pull.dump();
  EXPECT_EQ(pull["files"], json({"tiny.Q4_K_M.gguf"}));
  EXPECT_EQ(pull["compatibility_status"], "compatible") << pull.dump();
  EXPECT_EQ(pull["bytes_done"], fs::file_size(files_ / "tiny.gguf"));
  const std::string& sse = events.ReadUntil("\"state\":\"done\"", std::chrono::seconds(10));
  EXPECT_NE(sse.find("event: pull"), std::string::npos) << sse;
  EXPECT_NE(sse.find("\"state\":\"done\""), std::string::npos) << sse;

  const std::string sha = Sha256(files_ / "tiny.gguf");
  EXPECT_TRUE(fs::is_regular_file(Repo() / "blobs" / sha));
  const fs::path link = Repo() / "snapshots" / kCommit / "tiny.Q4_K_M.gguf";
  EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs/" + sha));
  std::ifstream ref(Repo() / "refs" / "main");
  std::string commit;
  std::getline(ref, commit);
  EXPECT_EQ(commit, kCommit);

  HttpReply model = server_->Call("GET", "/api/models/tiny");
  ASSERT_EQ(model.status, 200);
  EXPECT_EQ(model.body["hf_path"], "org/tiny-GGUF");
  EXPECT_EQ(model.body["file_path"], std::string("models--org--tiny-GGUF/snapshots/") + kCommit + "/tiny.Q4_K_M.gguf");
  EXPECT_EQ(model.body["compatibility_status"], "compatible");
  EXPECT_EQ(model.body["load_state"], "idle") << "--test unloads after its load";
  HttpReply v1 = server_->Call("POST", "/v1/completions",
                               json{{"model", "tiny"}, {"prompt", "Hello"}, {"max_tokens", 4}});
  EXPECT_EQ(v1.status, 200) << v1.raw;

  // The same file again under another name: nothing is downloaded twice.
  const json before = hub_->Stats();
  pull = WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"file", "tiny.Q4_K_M.gguf"}, {"model_name", "again"}}));
  EXPECT_EQ(pull["state"], "done") << pull.dump();
  EXPECT_EQ(hub_->Stats()["cdn_gets"], before["cdn_gets"]);
}

TEST_F(PullTest, QuantAmbiguityUnknownFilesAndGatedRepositoriesAreClearErrors) {
  StartAll();
  HttpReply r = server_->Call("POST", "/api/models/pull", json{{"hf_path", "org/tiny-GGUF"}, {"quant", "Q8_0"}});
  EXPECT_EQ(r.status, 400) << r.raw;
  const std::string many = r.body["error"]["message"];
  for (const char* f : {"tiny.Q8_0.gguf", "tiny-v2.Q8_0.gguf", "mmproj-tiny-f16.gguf"}) {
    EXPECT_NE(many.find(f), std::string::npos) << many;
  }
  r = server_->Call("POST", "/api/models/pull", json{{"hf_path", "org/tiny-GGUF"}});
  EXPECT_EQ(r.status, 400) << "several GGUFs and no tag: " << r.raw;
  r = server_->Call("POST", "/api/models/pull", json{{"hf_path", "org/tiny-GGUF"}, {"file", "nope.gguf"}});
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_NE(r.raw.find("tiny.Q4_K_M.gguf"), std::string::npos) << "lists what exists: " << r.raw;
  r = server_->Call("POST", "/api/models/pull", json{{"hf_path", "org/missing"}});
  EXPECT_EQ(r.status, 404) << r.raw;
  r = server_->Call("POST", "/api/models/pull", json{{"hf_path", "org/gated"}});
  EXPECT_EQ(r.status, 401) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "repository_gated") << r.raw;
  const std::string gated = r.body["error"]["message"];
  EXPECT_NE(gated.find("HF_TOKEN"), std::string::npos) << gated;
  EXPECT_NE(gated.find(hub_->url() + "/org/gated"), std::string::npos) << gated;
  EXPECT_EQ(server_->Call("GET", "/api/models").body["models"].size(), 0u);
}

TEST_F(PullTest, GatedRepositoryPullsWithHfToken) {
  StartAll("", {{"HF_TOKEN", "hf_secret"}});
  json pull = WaitForPull(*server_, Pull({{"hf_path", "org/gated"}}));
  EXPECT_EQ(pull["state"], "done") << pull.dump();
  EXPECT_EQ(server_->Call("GET", "/api/models/g").status, 200);
}

// A connection dropped mid-body resumes with Range (the sha256 matches), and
// a 429 with Retry-After is waited out.
TEST_F(PullTest, DroppedConnectionResumesAnd429IsRetried) {
  StartAll();
  hub_->SetFaults({{"tiny.Q4_K_M.gguf", {{"drop", 1}, {"status429", 1}}}});
  json pull = WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}}));
  ASSERT_EQ(pull["state"], "done") << pull.dump();
  json stats = hub_->Stats();
  EXPECT_EQ(stats["cdn_gets"]["tiny.Q4_K_M.gguf"], 2) << "the second request resumed: " << stats.dump();
  EXPECT_EQ(stats["resolve_gets"]["tiny.Q4_K_M.gguf"], 3) << stats.dump();  // 429, the dropped one, the resume
  const std::string sha = Sha256(files_ / "tiny.gguf");
  EXPECT_EQ(Sha256(Repo() / "blobs" / sha), sha);
  EXPECT_FALSE(fs::exists(Repo() / "blobs" / (sha + ".incomplete")));
  EXPECT_EQ(server_->Call("GET", "/api/models/tiny.Q4_K_M").status, 200) << "named after the file";
}

TEST_F(PullTest, PersistentServerErrorsAndWrongBytesRegisterNothing) {
  StartAll();
  hub_->SetFaults({{"tiny.Q4_K_M.gguf", {{"status500", true}}}, {"tiny.Q8_0.gguf", {{"corrupt", true}}}});
  json failed = WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"model_name", "a"}}));
  EXPECT_EQ(failed["state"], "failed") << failed.dump();
  EXPECT_NE(failed["error"].get<std::string>().find("HTTP 500"), std::string::npos) << failed.dump();
  json corrupt = WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"file", "tiny.Q8_0.gguf"}, {"model_name", "b"}}));
  EXPECT_EQ(corrupt["state"], "failed") << corrupt.dump();
  EXPECT_NE(corrupt["error"].get<std::string>().find("sha256 mismatch"), std::string::npos) << corrupt.dump();
  EXPECT_NE(corrupt["error"].get<std::string>().find("discarded"), std::string::npos) << corrupt.dump();
  EXPECT_EQ(server_->Call("GET", "/api/models").body["models"].size(), 0u);
  const std::string sha = Sha256(files_ / "copy.gguf");
  EXPECT_FALSE(fs::exists(Repo() / "blobs" / sha));
  EXPECT_FALSE(fs::exists(Repo() / "blobs" / (sha + ".incomplete")));
  EXPECT_FALSE(fs::exists(Repo() / "snapshots"));
}

// Two pulls of one file share one download; a cancelled pull registers
// nothing and keeps its .incomplete file, which the next pull resumes.
TEST_F(PullTest, TwoPullsShareOneDownloadAndCancelKeepsOnlyTheIncompleteFile) {
  StartAll();
  hub_->SetFaults({{"tiny.Q4_K_M.gguf", {{"slow_ms", 20}, {"chunk", 32768}}},
                   {"tiny.Q8_0.gguf", {{"slow_ms", 50}, {"chunk", 16384}}}});
  const std::string a = Pull({{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"model_name", "a"}});
  ASSERT_TRUE(WaitForBytes(*server_, a));
  HttpReply second = server_->Call("POST", "/api/models/pull",
                                   json{{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"model_name", "b"}});
  ASSERT_EQ(second.status, 202) << second.raw;
  const std::string b = second.body["pull"]["id"];
  EXPECT_EQ(WaitForPull(*server_, a)["state"], "done");
  json pb = WaitForPull(*server_, b);
  EXPECT_EQ(pb["state"], "done") << pb.dump();
  EXPECT_TRUE(pb["shared"].get<bool>()) << pb.dump();
  EXPECT_EQ(hub_->Stats()["cdn_gets"]["tiny.Q4_K_M.gguf"], 1);

  const std::string c = Pull({{"hf_path", "org/tiny-GGUF"}, {"file", "tiny.Q8_0.gguf"}, {"model_name", "c"}});
  ASSERT_TRUE(WaitForBytes(*server_, c));
  HttpReply cancel = server_->Call("DELETE", "/api/pulls/" + c);
  ASSERT_EQ(cancel.status, 200) << cancel.raw;
  EXPECT_EQ(cancel.body["pull"]["state"], "cancelled") << cancel.raw;
  EXPECT_EQ(server_->Call("GET", "/api/models/c").status, 404);
  const std::string sha = Sha256(files_ / "copy.gguf");
  EXPECT_TRUE(fs::exists(Repo() / "blobs" / (sha + ".incomplete")));
  EXPECT_FALSE(fs::exists(Repo() / "blobs" / sha));
  EXPECT_EQ(server_->Call("DELETE", "/api/pulls/nope").status, 404);
  // The next pull resumes from the .incomplete file (at full speed now).
  hub_->SetFaults(json::object());
  json d = WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"file", "tiny.Q8_0.gguf"}, {"model_name", "d"}}));
  EXPECT_EQ(d["state"], "done") << d.dump();
  EXPECT_EQ(Sha256(Repo() / "blobs" / sha), sha);
}

TEST_F(PullTest, SplitGgufDownloadsEveryPartAndTheCliShowsProgress) {
  StartAll();
  ProcessResult r = server_->Cli({"pull", "org/tiny-GGUF:split/big-Q2_K-00001-of-00002.gguf", "--name", "big"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("pulling org/tiny-GGUF: split/big-Q2_K-00001-of-00002.gguf, split/big-Q2_K-00002-of-00002.gguf"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("registered big"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\r'), std::string::npos) << "plain lines when stdout is not a terminal";
  const fs::path snap = Repo() / "snapshots" / kCommit / "split";
  EXPECT_TRUE(fs::is_regular_file(snap / "big-Q2_K-00001-of-00002.gguf"));
  EXPECT_TRUE(fs::is_regular_file(snap / "big-Q2_K-00002-of-00002.gguf"));
  r = server_->Cli({"pull", "org/tiny-GGUF:Q8_0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("several GGUF files match"), std::string::npos) << r.err;
}

// A location too small for the file: 507 naming needed and free, before any download.
TEST_F(PullTest, DiskTooSmallIs507) {
  if (getuid() != 0) MW_MACHINE_CANNOT("mounting a small tmpfs needs root");
  const fs::path small = dir_.path() / "small";
  fs::create_directories(small);
  if (mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) MW_MACHINE_CANNOT("mount tmpfs: " << strerror(errno));
  {
    hub_ = std::make_unique<FakeHub>(dir_.path(), Repos());
    ASSERT_TRUE(hub_->started());
    Server server(data_, HubConfig("[locations]\nsmall = \"" + small.string() + "\"\n"));
    ASSERT_TRUE(server.started()) << server.startup_output();
    HttpReply r = server.Call("POST", "/api/models/pull",
                              json{{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"cache_location", "small"}});
    EXPECT_EQ(r.status, 507) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "insufficient_storage") << r.raw;
    const std::string message = r.body["error"]["message"];
    EXPECT_NE(message.find("needs"), std::string::npos) << message;
    EXPECT_NE(message.find("free"), std::string::npos) << message;
  }
  umount2(small.c_str(), MNT_DETACH);
}

// models scan and scan_on_start register what is on disk, once; HF_HUB_OFFLINE=1 pulls from the cache only.
TEST_F(PullTest, ScanRegistersWhatIsOnDiskAndOfflineUsesTheCache) {
  StartAll();
  ASSERT_EQ(WaitForPull(*server_, Pull({{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"model_name", "pulled"}}))["state"], "done");
  ASSERT_EQ(server_->Call("DELETE", "/api/models/pulled").status, 200);
  fs::copy_file(files_ / "tiny.gguf", data_ / "models" / "plain.gguf");
  fs::create_directories(data_ / "models" / "sub");
  fs::copy_file(files_ / "tiny.gguf", data_ / "models" / "sub" / "tiny-GGUF.gguf");  // the repository's name
  ProcessResult r = server_->Cli({"models", "scan"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("added plain  (primary: plain.gguf)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("added tiny-GGUF  (primary: models--org--tiny-GGUF/snapshots/"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("added tiny-GGUF-2  (primary: sub/tiny-GGUF.gguf)"), std::string::npos) << "a taken name is suffixed: " << r.out;
  EXPECT_EQ(server_->Call("GET", "/api/models/tiny-GGUF").body["hf_path"], "org/tiny-GGUF");
  r = server_->Cli({"models", "scan"});
  EXPECT_NE(r.out.find("No new GGUF files"), std::string::npos) << r.out;
  server_.reset();

  fs::copy_file(files_ / "tiny.gguf", data_ / "models" / "later.gguf");
  Server offline(data_, HubConfig("scan_on_start = true\n"), {{"HF_HUB_OFFLINE", "1"}});
  ASSERT_TRUE(offline.started()) << offline.startup_output();
  EXPECT_NE(offline.startup_output().find("scan: registered 1 model(s): later"), std::string::npos)
      << offline.startup_output();
  const json before = hub_->Stats();
  json pull = WaitForPull(offline, offline.Call("POST", "/api/models/pull",
                                                json{{"hf_path", "org/tiny-GGUF"}, {"quant", "Q4_K_M"}, {"model_name", "cached"}})
                                       .body["pull"]["id"]);
  EXPECT_EQ(pull["state"], "done") << pull.dump();
  HttpReply missing = offline.Call("POST", "/api/models/pull", json{{"hf_path", "org/gated"}});
  EXPECT_EQ(missing.status, 404) << missing.raw;
  EXPECT_NE(missing.raw.find("HF_HUB_OFFLINE"), std::string::npos) << missing.raw;
  EXPECT_EQ(hub_->Stats(), before) << "offline: the hub is not asked";
}

}  // namespace
}  // namespace mw::itest
