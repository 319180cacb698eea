// The subcommands of modelwarden-worker (see worker.h): argument parsing,
// protocol replies, exit codes.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "common/time_util.h"
#include "llama.h"
#include "loadconfig/loadconfig.h"
#include "worker/backends.h"
#include "worker/channel.h"
#include "worker/engine.h"
#include "worker/gguf_inspect.h"
#include "worker/llama_session.h"
#include "worker/test_model.h"
#include "worker/worker.h"

namespace mw::worker {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: modelwarden-worker load --model PATH --socket DIR/NAME.sock [--config JSON] [--verify decode|load|request]\n"
    "       modelwarden-worker load --standby --socket DIR/NAME.sock   (then one 'load {...}' line on stdin)\n"
    "       modelwarden-worker probe\n"
    "       modelwarden-worker inspect PATH\n"
    "       modelwarden-worker generate --model PATH [--config JSON] [--prompt TEXT] [--n N]\n"
    "       modelwarden-worker make-test-model OUT.gguf [--layers N] [--embd N] [--ff N] [--ctx N]\n"
    "                          [--size-mb N] [--type f16|f32] [--seed N] [--vocab PATH]\n";

int Usage(const std::string& problem) {
  ProtocolChannel::Get().SendError(protocol::kErrInvalidArguments, problem);
  std::fputs(kUsage, stderr);
  return kExitUsage;
}

int Fail(const Status& status) {
  ProtocolChannel::Get().SendError(ProtocolErrorCode(status), status.message());
  return kExitFailure;
}

// --model / --config / --verify / --prompt / --n of load and generate.
struct LoadArgs {
  std::string model;
  std::string config = "{}";
  Verify verify = Verify::kDecode;
  std::string socket;
  std::string prompt = "Once upon a time";
  int n = 8;
};

Result<LoadArgs> ParseLoadArgs(const std::vector<std::string>& args, bool allow_generate_flags) {
  LoadArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (i + 1 >= args.size()) return InvalidArgumentError("'" + a + "' needs a value");
    const std::string& v = args[++i];
    if (a == "--model") {
      out.model = v;
    } else if (a == "--config") {
      out.config = v;
    } else if (!allow_generate_flags && a == "--verify") {
      if (v != "decode" && v != "load" && v != "request") {
        return InvalidArgumentError("--verify must be 'decode', 'load' or 'request'");
      }
      out.verify = v == "load" ? Verify::kLoad : v == "request" ? Verify::kRequest : Verify::kDecode;
    } else if (!allow_generate_flags && a == "--socket") {
      out.socket = v;
    } else if (allow_generate_flags && a == "--prompt") {
      out.prompt = v;
    } else if (allow_generate_flags && a == "--n") {
      out.n = std::atoi(v.c_str());
      if (out.n < 1 || out.n > 4096) return InvalidArgumentError("--n must be in [1, 4096]");
    } else {
      return InvalidArgumentError("unknown option '" + a + "'");
    }
  }
  if (out.model.empty()) return InvalidArgumentError("--model PATH is required");
  if (!allow_generate_flags) RETURN_IF_ERROR(CheckEngineSocketPath(out.socket));
  return out;
}

Result<std::unique_ptr<LlamaSession>> LoadFromArgs(const LoadArgs& args) {
  ASSIGN_OR_RETURN(loadconfig::LoadConfig config, loadconfig::ValidateLoadConfig(loadconfig::Engine::kLlamaCpp, args.config));
  InitBackendsOnce();
  return LlamaSession::Load(args.model, *config.llama(), nullptr, nullptr);
}

// One line of stdin, read a byte at a time (what follows it stays unread for
// the StopWatcher). nullopt at EOF.
std::optional<std::string> ReadStdinLine() {
  std::string line;
  for (;;) {
    char c = 0;
    const ssize_t n = ::read(STDIN_FILENO, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    if (line.size() > protocol::kMaxLineBytes) return std::nullopt;
    line.push_back(c);
  }
}

// `load --standby --socket PATH` (a pre-started worker): libraries and ggml
// backends loaded ahead, then `standby`, then the model comes as one `load`
// line on stdin and the worker goes on as `load --model ...` would. "stop" or
// EOF instead: exit 0, nothing loaded.
int RunStandby(const std::string& socket) {
  if (Status st = CheckEngineSocketPath(socket); !st.ok()) return Usage(st.message());
  const int64_t started_ms = MonotonicMillis();
  InitBackendsOnce();
  const int64_t backends_ms = MonotonicMillis();
  std::fflush(stdout);
  std::fflush(stderr);
  ProtocolChannel::Get().Send(protocol::StandbyMessage{});
  std::optional<std::string> line = ReadStdinLine();
  if (!line || *line == protocol::kStopCommand) return kExitOk;
  Result<protocol::LoadCommand> load = protocol::DecodeLoadCommand(*line);
  if (!load.ok()) return Usage(load.status().message());
  std::vector<std::string> argv = {"--model", load->model, "--config", load->config_json,
                                   "--verify", load->verify, "--socket", socket};
  Result<LoadArgs> args = ParseLoadArgs(argv, false);
  if (!args.ok()) return Usage(args.status().message());
  return RunEngine({args->model, args->config, args->verify, args->socket, started_ms, backends_ms});
}

// Serves the model with llama.cpp's own server code until stopped (engine.h).
int RunLoad(const std::vector<std::string>& argv) {
  if (argv.size() == 3 && argv[0] == "--standby" && argv[1] == "--socket") return RunStandby(argv[2]);
  Result<LoadArgs> args = ParseLoadArgs(argv, false);
  if (!args.ok()) return Usage(args.status().message());
  return RunEngine({args->model, args->config, args->verify, args->socket, 0, 0});
}

int RunProbe(const std::vector<std::string>& argv) {
  if (!argv.empty()) return Usage("probe takes no arguments");
  InitBackendsOnce();
  ProtocolChannel::Get().Send(protocol::ProbeMessage{ProbeDevices(), ProbeBackends()});
  return kExitOk;
}

int RunInspect(const std::vector<std::string>& argv) {
  if (argv.size() != 1) return Usage("inspect takes exactly one model path");
  Result<protocol::MetadataMessage> m = InspectGguf(argv[0]);
  if (!m.ok()) return Fail(m.status());
  ProtocolChannel::Get().Send(*m);
  return kExitOk;
}

// Greedy decoding of a few tokens: proves the model computes, not just loads.
int RunGenerate(const std::vector<std::string>& argv) {
  Result<LoadArgs> args = ParseLoadArgs(argv, true);
  if (!args.ok()) return Usage(args.status().message());
  auto session = LoadFromArgs(*args);
  if (!session.ok()) return Fail(session.status());
  llama_context* ctx = (*session)->context();
  const llama_vocab* vocab = llama_model_get_vocab((*session)->model());

  std::vector<llama_token> tokens(args->prompt.size() + 8);
  int32_t n = llama_tokenize(vocab, args->prompt.data(), static_cast<int32_t>(args->prompt.size()), tokens.data(),
                             static_cast<int32_t>(tokens.size()), /*add_special=*/true, /*parse_special=*/false);
  if (n <= 0) return Fail(InternalError("tokenizing the prompt failed"));
  tokens.resize(static_cast<size_t>(n));

  llama_sampler* sampler = llama_sampler_chain_init(llama_sampler_chain_default_params());
  llama_sampler_chain_add(sampler, llama_sampler_init_greedy());
  std::string text;
  int generated = 0;
  llama_batch batch = llama_batch_get_one(tokens.data(), static_cast<int32_t>(tokens.size()));
  llama_token next = 0;
  for (; generated < args->n; ++generated) {
    if (llama_decode(ctx, batch) != 0) {
      llama_sampler_free(sampler);
      return Fail(InternalError("llama_decode failed after " + std::to_string(generated) + " tokens"));
    }
    next = llama_sampler_sample(sampler, ctx, -1);
    char piece[256];
    int len = llama_token_to_piece(vocab, next, piece, sizeof piece, 0, true);
    if (len > 0) text.append(piece, static_cast<size_t>(len));
    batch = llama_batch_get_one(&next, 1);
  }
  llama_sampler_free(sampler);
  std::fprintf(stdout, "%s\n", text.c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "modelwarden-worker: generated %d tokens from a %d-token prompt\n", generated, n);
  return kExitOk;
}

int RunMakeTestModel(const std::vector<std::string>& argv) {
  Result<TestModelOptions> options = ParseTestModelArgs(argv);
  if (!options.ok()) return Usage(options.status().message());
  Result<TestModelSummary> s = WriteTestModel(*options);
  if (!s.ok()) return Fail(s.status());
  std::fprintf(stderr,
               "wrote %s: llama, %lld layers, n_embd %lld, n_ff %lld, %lld heads, ctx %lld, vocab %lld, "
               "%llu parameters, %llu bytes\n",
               options->out_path.c_str(), static_cast<long long>(s->layers), static_cast<long long>(s->embd),
               static_cast<long long>(s->ff), static_cast<long long>(s->heads), static_cast<long long>(s->ctx),
               static_cast<long long>(s->vocab), static_cast<unsigned long long>(s->parameter_count),
               static_cast<unsigned long long>(s->file_size));
  return kExitOk;
}

}  // namespace

int RunWorker(int argc, char** argv) {
  if (argc < 2) return Usage("missing subcommand");
  const std::string sub = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (sub == "load") return RunLoad(args);
  if (sub == "probe") return RunProbe(args);
  if (sub == "inspect") return RunInspect(args);
  if (sub == "generate") return RunGenerate(args);
  if (sub == "make-test-model") return RunMakeTestModel(args);
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  return Usage("unknown subcommand '" + sub + "'");
}

}  // namespace mw::worker
