// Starts the real modelwarden-worker (from $MW_BIN_DIR) the way the server
// does: protocol on fd 3, commands on stdin, log on stdout/stderr.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "loadconfig/loadconfig.h"
#include "protocol/protocol.h"

namespace mw::worker {
namespace {

namespace fs = std::filesystem;
using protocol::Message;

std::string WorkerPath() {
  const char* dir = std::getenv("MW_BIN_DIR");
  return std::string(dir != nullptr ? dir : "bin") + "/modelwarden-worker";
}

// One worker child. Reads protocol messages with a deadline; never hangs a test.
class Worker {
 public:
  // log_on_stdout: stderr (llama.cpp's log) goes to the stdout pipe too.
  // A `load` with more than its --model gets a --socket of its own (a
  // bare `load` stays a usage error).
  explicit Worker(std::vector<std::string> args, bool with_protocol_fd = true, bool log_on_stdout = false) {
    static int sockets = 0;
    if (args.size() > 1 && args[0] == "load" && std::find(args.begin(), args.end(), "--socket") == args.end()) {
      args.push_back("--socket");
      // In the suite's directory (WorkerTest::dir_), removed at its end.
      args.push_back((fs::temp_directory_path() / ("mw-worker-test-" + std::to_string(::getpid())) /
                      (std::to_string(++sockets) + ".sock")).string());
    }
    int proto[2], in[2], out[2];
    EXPECT_EQ(::pipe2(proto, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      if (log_on_stdout) ::dup2(out[1], 2);
      if (with_protocol_fd) ::dup2(proto[1], 3); else ::close(3);
      std::vector<char*> argv;
      std::string path = WorkerPath();
      argv.push_back(path.data());
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(path.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(proto[1]);
    ::close(in[0]);
    ::close(out[1]);
    proto_ = proto[0];
    stdin_ = in[1];
    stdout_ = out[0];
  }
  ~Worker() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int fd : {proto_, stdin_, stdout_}) if (fd >= 0) ::close(fd);
  }

  // Next protocol message, or nullopt on EOF / timeout.
  std::optional<Message> Next(int timeout_ms = 30000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
      if (auto line = buffer_.Next()) {
        EXPECT_TRUE(line->ok());
        auto m = protocol::DecodeMessage(**line);
        EXPECT_TRUE(m.ok()) << m.status().ToString() << " line: " << **line;
        if (m.ok()) return *m;
        continue;
      }
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return std::nullopt;
      pollfd p{proto_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(proto_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.Append(std::string_view(buf, static_cast<size_t>(n)));
    }
  }
  // Skips progress messages; returns the first other message.
  std::optional<Message> NextNonProgress(std::vector<double>* progress = nullptr) {
    while (auto m = Next()) {
      if (auto* p = std::get_if<protocol::ProgressMessage>(&*m)) {
        if (progress) progress->push_back(p->progress);
        continue;
      }
      return m;
    }
    return std::nullopt;
  }
  void Send(const std::string& text) { ASSERT_EQ(::write(stdin_, text.data(), text.size()), static_cast<ssize_t>(text.size())); }
  void CloseStdin() { ::close(stdin_); stdin_ = -1; }
  std::string ReadStdout() {
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stdout_, buf, sizeof buf)) > 0) s.append(buf, static_cast<size_t>(n));
    return s;
  }
  // Reads stdout until a line containing `text` (true) or EOF / timeout (false).
  bool WaitForOutput(const std::string& text, int timeout_ms = 60000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (output_.find(text) != std::string::npos) return true;
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(stdout_, buf, sizeof buf);
      if (n <= 0) return false;
      output_.append(buf, static_cast<size_t>(n));
    }
  }
  const std::string& output() const { return output_; }
  void Signal(int sig) { ::kill(pid_, sig); }
  // Exit code, or 128+signal; -1 if it did not exit within the timeout.
  int Wait(int timeout_ms = 30000) {
    for (int waited = 0; waited < timeout_ms; waited += 10) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      ::usleep(10000);
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int proto_ = -1, stdin_ = -1, stdout_ = -1;
  protocol::LineBuffer buffer_;
  std::string output_;
};

// Runs a one-shot subcommand; returns its single message and exit code.
std::pair<std::optional<Message>, int> RunOnce(const std::vector<std::string>& args) {
  Worker w(args);
  auto m = w.Next();
  return {m, w.Wait()};
}

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("mw-worker-test-" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    model_ = new std::string((*dir_ / "tiny.gguf").string());
    Worker w({"make-test-model", *model_});
    ASSERT_EQ(w.Wait(120000), 0);
    ASSERT_TRUE(fs::exists(*model_));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete model_;
  }
  static std::string WriteFile(const std::string& name, const std::string& bytes) {
    std::string path = (*dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static std::string ModelBytes() {
    std::string bytes(fs::file_size(*model_), '\0');
    std::ifstream in(*model_, std::ios::binary);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
  }

  // Load, expect progress + loaded, then stop via `stop` (or EOF), stopped, exit 0.
  static protocol::LoadedMessage LoadAndStop(const std::string& config, bool stop_by_eof) {
    Worker w({"load", "--model", *model_, "--config", config});
    std::vector<double> progress;
    auto m = w.NextNonProgress(&progress);
    EXPECT_TRUE(m.has_value());
    if (!m) return {};
    auto* err = std::get_if<protocol::ErrorMessage>(&*m);
    EXPECT_EQ(err, nullptr) << (err ? err->code + ": " + err->message : "");
    auto* loaded = std::get_if<protocol::LoadedMessage>(&*m);
    EXPECT_NE(loaded, nullptr);
    if (!loaded) return {};
    EXPECT_FALSE(progress.empty());
    EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
    EXPECT_LE(progress.size(), 101u);
    if (!progress.empty()) {
      EXPECT_DOUBLE_EQ(progress.back(), 1.0);
    }
    EXPECT_FALSE(loaded->devices.empty());
    EXPECT_GT(loaded->model_size, 0u);
    EXPECT_NE(loaded->socket.find(".sock"), std::string::npos);  // llama.cpp's server answers there (SPEC §20)
    // Still holding the model: nothing more until told to stop (the next
    // message must be the `stopped` that answers the stop, no fixed wait).
    if (stop_by_eof) {
      w.CloseStdin();
    } else {
      w.Send("status\n");  // unknown commands are ignored
      w.Send("stop\n");
    }
    auto stopped = w.Next();
    EXPECT_TRUE(stopped && std::holds_alternative<protocol::StoppedMessage>(*stopped));
    EXPECT_EQ(w.Wait(), 0);
    return *loaded;
  }

  static fs::path* dir_;
  static std::string* model_;
};
fs::path* WorkerTest::dir_ = nullptr;
std::string* WorkerTest::model_ = nullptr;

TEST_F(WorkerTest, LoadReportsProgressAndLoadedThenStops) {
  protocol::LoadedMessage loaded = LoadAndStop("{}", /*stop_by_eof=*/false);
  EXPECT_EQ(loaded.n_ctx, 2048);  // min(4096, the model's context length)
  EXPECT_EQ(loaded.devices.front().kind, protocol::DeviceKind::kCpu);
  EXPECT_GT(loaded.devices.front().memory_used, loaded.model_size);  // weights + KV cache
}

TEST_F(WorkerTest, LoadWithTheOriginalDesignExampleConfig) {
  LoadAndStop(R"({"attn_implementation": "eager", "torch_dtype": "bfloat16", "device_map": "auto"})",
              /*stop_by_eof=*/true);
}

TEST_F(WorkerTest, LoadHonoursNCtxAndLlamaKeys) {
  protocol::LoadedMessage loaded =
      LoadAndStop(R"({"n_ctx": 512, "n_batch": 256, "n_ubatch": 128, "n_threads": 1, "flash_attn": "on",
                      "cache_type_k": "f16", "cache_type_v": "f32", "use_mmap": false, "n_gpu_layers": 0})",
                  false);
  EXPECT_EQ(loaded.n_ctx, 512);
}

// verify "decode" (SPEC §10): `loaded` comes only after the first decode,
// so a crash in that decode is a crashed load, never a loaded model. The
// worker is frozen (SIGSTOP) the moment llama.cpp starts the decode
// (its log line "processing task"), then killed: no `loaded` was sent.
// A 64 MB model keeps that decode long enough to freeze it inside.
TEST_F(WorkerTest, NothingIsLoadedBeforeTheFirstDecodeEnds) {
  const std::string slow = (*dir_ / "slow.gguf").string();
  {
    Worker make({"make-test-model", slow, "--size-mb", "64"});
    ASSERT_EQ(make.Wait(120000), 0);
  }
  Worker w({"load", "--model", slow, "--config", R"({"n_ctx":256})", "--verify", "decode"}, true, true);
  ASSERT_TRUE(w.WaitForOutput("processing task")) << w.output();
  w.Signal(SIGSTOP);
  std::optional<Message> m;
  while ((m = w.Next(300)) && std::holds_alternative<protocol::ProgressMessage>(*m)) {
  }
  EXPECT_FALSE(m.has_value()) << "a message before the first decode ended: " << protocol::EncodeMessage(*m);
  w.Signal(SIGKILL);
  EXPECT_EQ(w.Wait(), 128 + SIGKILL);
  EXPECT_FALSE(w.Next(1000).has_value());  // the pipe closes with no `loaded`

  // verify "load": no decode at all before `loaded` (nor llama.cpp's warm-up).
  Worker l({"load", "--model", *model_, "--config", R"({"n_ctx":256})", "--verify", "load"}, true, true);
  auto loaded = l.NextNonProgress();
  ASSERT_TRUE(loaded && std::holds_alternative<protocol::LoadedMessage>(*loaded));
  l.WaitForOutput("waiting for stop");
  EXPECT_EQ(l.output().find("processing task"), std::string::npos) << l.output();
  l.Send("stop\n");
  EXPECT_EQ(l.Wait(), 0);
}

// verify "request" (SPEC §16, an on-demand load): `ready` once the engine
// listens, no decode of its own; then `verified` (the request's first token
// exists) gives `loaded` without a decode, and `verify` (the request ended
// without one) gives `loaded` only after the worker's own short decode.
TEST_F(WorkerTest, VerifyRequestWaitsForTheServersWordAfterReady) {
  for (const std::string word : {"verified", "verify"}) {
    Worker w({"load", "--model", *model_, "--config", R"({"n_ctx":256,"n_threads":1})", "--verify", "request"}, true,
             true);
    auto ready = w.NextNonProgress();
    ASSERT_TRUE(ready && std::holds_alternative<protocol::ReadyMessage>(*ready)) << word << "\n" << w.output();
    EXPECT_FALSE(std::get<protocol::ReadyMessage>(*ready).socket.empty());
    EXPECT_FALSE(w.Next(300).has_value()) << "nothing before the server's word";
    w.Send(word + "\n");
    auto loaded = w.NextNonProgress();
    ASSERT_TRUE(loaded && std::holds_alternative<protocol::LoadedMessage>(*loaded)) << word << "\n" << w.output();
    w.WaitForOutput("waiting for stop");
    const bool decoded = w.output().find("processing task") != std::string::npos;
    EXPECT_EQ(decoded, word == "verify") << word << "\n" << w.output();
    EXPECT_NE(w.output().find("first decode ok"), std::string::npos) << w.output();
    w.Send("stop\n");
    EXPECT_EQ(w.Wait(), 0);
  }
  // A stop while it waits for the word: `stopped`, exit 0 (never a failure).
  Worker s({"load", "--model", *model_, "--config", R"({"n_ctx":256,"n_threads":1})", "--verify", "request"});
  auto ready = s.NextNonProgress();
  ASSERT_TRUE(ready && std::holds_alternative<protocol::ReadyMessage>(*ready));
  s.Send("stop\n");
  auto stopped = s.NextNonProgress();
  ASSERT_TRUE(stopped && std::holds_alternative<protocol::StoppedMessage>(*stopped));
  EXPECT_EQ(s.Wait(), 0);
}

// SPEC §16: a pre-started worker (`load --standby`) says `standby` with its
// backends loaded, and its one `load` line makes it the load `load --model`
// would be (its phases line says it was pre-started); a stop instead of the
// line: exit 0, nothing loaded.
TEST_F(WorkerTest, StandbyTakesItsModelFromOneLoadLine) {
  Worker w({"load", "--standby"}, true, true);
  auto standby = w.Next();
  ASSERT_TRUE(standby && std::holds_alternative<protocol::StandbyMessage>(*standby)) << w.output();
  EXPECT_FALSE(w.Next(300).has_value()) << "nothing before the load line";
  w.Send(protocol::EncodeLoadCommand({*model_, R"({"n_ctx":256,"n_threads":1})", "decode"}));
  auto loaded = w.NextNonProgress();
  ASSERT_TRUE(loaded && std::holds_alternative<protocol::LoadedMessage>(*loaded)) << w.output();
  w.WaitForOutput("waiting for stop");
  EXPECT_NE(w.output().find("first decode ok"), std::string::npos) << w.output();
  EXPECT_NE(w.output().find(" (pre-started "), std::string::npos) << w.output();
  w.Send("stop\n");
  auto stopped = w.Next();
  EXPECT_TRUE(stopped && std::holds_alternative<protocol::StoppedMessage>(*stopped));
  EXPECT_EQ(w.Wait(), 0);

  Worker idle({"load", "--standby"});
  auto waiting = idle.Next();
  ASSERT_TRUE(waiting && std::holds_alternative<protocol::StandbyMessage>(*waiting));
  idle.Send("stop\n");
  EXPECT_EQ(idle.Wait(), 0);
}

// A stop sent the moment `loaded` arrives, with verify "load" (no first
// decode to wait for): llama.cpp's /health answers 200 just before its main
// thread can be stopped, so the worker reports `loaded` only once the task
// loop answers; a stop then always stops (it was lost before, and the engine
// ran on until the supervisor's SIGKILL). The gap is short: each round is a
// chance to hit it, most on a busy machine.
TEST_F(WorkerTest, StopAtOnceAfterALoadWithoutDecodeStops) {
  for (int round = 0; round < 5; ++round) {
    Worker w({"load", "--model", *model_, "--config", R"({"n_ctx":256,"n_threads":1})", "--verify", "load"});
    auto loaded = w.NextNonProgress();
    ASSERT_TRUE(loaded && std::holds_alternative<protocol::LoadedMessage>(*loaded)) << "round " << round;
    w.Send("stop\n");
    auto stopped = w.Next();
    if (!stopped) {
      w.Signal(SIGKILL);  // the stop was lost: the engine runs on
      w.Wait();
      FAIL() << "round " << round << ": no `stopped` 30 s after the stop";
    }
    EXPECT_TRUE(std::holds_alternative<protocol::StoppedMessage>(*stopped)) << "round " << round;
    EXPECT_EQ(w.Wait(), 0) << "round " << round;
  }
}

TEST_F(WorkerTest, BadConfigIsAValidationError) {
  auto [m, code] = RunOnce({"load", "--model", *model_, "--config", R"({"n_gpu_layer": 3})"});
  ASSERT_TRUE(m.has_value());
  auto& err = std::get<protocol::ErrorMessage>(*m);
  EXPECT_EQ(err.code, protocol::kErrInvalidConfig);
  EXPECT_NE(err.message.find("n_gpu_layers"), std::string::npos) << err.message;
  EXPECT_EQ(code, 1);
}

TEST_F(WorkerTest, TruncatedModelFailsCleanly) {
  std::string bytes = ModelBytes();
  for (size_t cut : {bytes.size() / 2, bytes.size() - 1000, size_t{100}, size_t{10}}) {
    std::string path = WriteFile("cut" + std::to_string(cut) + ".gguf", bytes.substr(0, cut));
    auto [m, code] = RunOnce({"load", "--model", path});
    ASSERT_TRUE(m.has_value()) << cut;
    auto* err = std::get_if<protocol::ErrorMessage>(&*m);
    ASSERT_NE(err, nullptr) << cut;
    EXPECT_TRUE(err->code == protocol::kErrInvalidModel || err->code == protocol::kErrModelLoadFailed) << err->code;
    EXPECT_EQ(code, 1) << cut;
  }
}

TEST_F(WorkerTest, RandomBytesAndMissingFilesFailCleanly) {
  std::mt19937 rng(7);
  std::string noise(1 << 16, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  auto [m, code] = RunOnce({"load", "--model", WriteFile("noise.gguf", noise)});
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(std::get<protocol::ErrorMessage>(*m).code, protocol::kErrInvalidModel);
  EXPECT_EQ(code, 1);
  auto [m2, code2] = RunOnce({"load", "--model", (*dir_ / "absent.gguf").string()});
  ASSERT_TRUE(m2.has_value());
  EXPECT_EQ(std::get<protocol::ErrorMessage>(*m2).code, protocol::kErrFileNotFound);
  EXPECT_EQ(code2, 1);
}

TEST_F(WorkerTest, InspectReportsArchitectureAndParameterCount) {
  auto [m, code] = RunOnce({"inspect", *model_});
  ASSERT_TRUE(m.has_value());
  auto& meta = std::get<protocol::MetadataMessage>(*m);
  const uint64_t vocab = 32000, embd = 64, ff = 128, layers = 2;
  const uint64_t expected = 2 * vocab * embd + embd + layers * (2 * embd + 4 * embd * embd + 3 * embd * ff);
  EXPECT_EQ(meta.architecture, "llama");
  EXPECT_EQ(meta.parameter_count, expected);
  EXPECT_EQ(meta.quantization, "F16");
  EXPECT_EQ(meta.file_type, 1);
  EXPECT_EQ(meta.context_length, 2048);
  EXPECT_EQ(meta.file_size, fs::file_size(*model_));
  EXPECT_EQ(meta.name, "modelwarden-test-model");
  // The shape the memory estimate needs (SPEC §12).
  EXPECT_EQ(meta.block_count, 2);
  EXPECT_EQ(meta.embedding_length, 64);
  EXPECT_EQ(meta.head_count, 4);
  EXPECT_EQ(meta.head_count_kv, 4);
  EXPECT_EQ(meta.key_length, 16);  // not in the file: embedding / heads
  EXPECT_EQ(meta.value_length, 16);
  EXPECT_EQ(meta.vocab_size, 32000);
  // Matrices in f16, norms in f32.
  EXPECT_EQ(meta.tensor_bytes, 2 * (expected - embd - layers * 2 * embd) + 4 * (embd + layers * 2 * embd));
  EXPECT_EQ(code, 0);
}

TEST_F(WorkerTest, InspectRejectsCorruptFilesWithoutCrashing) {
  std::string bytes = ModelBytes();
  std::mt19937 rng(99);
  for (int i = 0; i < 12; ++i) {
    std::string damaged = bytes.substr(0, 1 << 20);  // header + some data, tensors cut off
    if (i > 0) {
      for (int k = 0; k < 8; ++k) damaged[rng() % 4096] = static_cast<char>(rng());
    }
    auto [m, code] = RunOnce({"inspect", WriteFile("damaged.gguf", damaged)});
    ASSERT_TRUE(m.has_value()) << i;
    auto* err = std::get_if<protocol::ErrorMessage>(&*m);
    ASSERT_NE(err, nullptr) << i;
    EXPECT_EQ(err->code, protocol::kErrInvalidModel);
    EXPECT_EQ(code, 1);
  }
}

TEST_F(WorkerTest, GenerateProducesTokens) {
  Worker w({"generate", "--model", *model_, "--n", "6", "--prompt", "Hello"});
  int code = w.Wait(60000);
  std::string text = w.ReadStdout();
  EXPECT_EQ(code, 0);
  EXPECT_GT(text.size(), 1u) << "generated text: '" << text << "'";
}

TEST_F(WorkerTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunOnce({"frobnicate"}).second, 2);
  EXPECT_EQ(RunOnce({"load"}).second, 2);
  EXPECT_EQ(RunOnce({"make-test-model"}).second, 2);
  EXPECT_EQ(RunOnce({"make-test-model", "x.gguf", "--layers", "zero"}).second, 2);
  EXPECT_EQ(RunOnce({"inspect"}).second, 2);
}

TEST(WorkerProbeTest, ListsACpuDevice) {
  auto [m, code] = RunOnce({"probe"});
  ASSERT_TRUE(m.has_value());
  auto& probe = std::get<protocol::ProbeMessage>(*m);
  bool cpu = false;
  for (const auto& d : probe.devices) cpu |= d.kind == protocol::DeviceKind::kCpu && d.memory_total > 0;
  EXPECT_TRUE(cpu);
  EXPECT_EQ(code, 0);
}

TEST(WorkerProbeTest, AnswersOnStdoutWithoutAProtocolFd) {
  Worker w({"probe"}, /*with_protocol_fd=*/false);
  EXPECT_EQ(w.Wait(), 0);
  std::string out = w.ReadStdout();
  auto m = protocol::DecodeMessage(out);
  ASSERT_TRUE(m.ok()) << out;
  EXPECT_TRUE(std::holds_alternative<protocol::ProbeMessage>(*m));
}

}  // namespace
}  // namespace mw::worker
