#include "cli/classify_command.h"

#include <array>
#include <charconv>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "classifier/crash_classifier.h"
#include "loadconfig/loadconfig.h"

namespace mw {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitIoError = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: modelwarden classify [--exit-code N] [--signal NAME] [--timed-out] [--patterns FILE] [FILE]\n"
    "--exit-code: the loader's exit code; --signal: the signal that killed it (SIGSEGV, segv, 11);\n"
    "--timed-out: it was stopped for taking too long; --patterns: a crash-pattern catalog instead of the built-in one.\n"
    "Classifies a saved loader log (FILE, or standard input) and prints one JSON object:\n"
    "{\"category\", \"pattern_id\", \"summary\", \"matched_line\", \"suggested_load_config\"}.\n";

struct Options {
  std::optional<int64_t> exit_code;
  std::optional<std::string> signal;
  bool timed_out = false;
  std::string patterns;
  std::string file;  // empty or "-": standard input
};

// Returns an error message for a usage error.
std::optional<std::string> ParseArgs(const std::vector<std::string>& args, Options* options) {
  bool have_file = false;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (arg.rfind("--", 0) == 0 && arg.find('=') != std::string::npos) {
      inline_value = arg.substr(arg.find('=') + 1);
      arg = arg.substr(0, arg.find('='));
    }
    auto value = [&]() -> std::optional<std::string> {
      if (inline_value) return inline_value;
      if (i + 1 < args.size()) return args[++i];
      return std::nullopt;
    };
    if (arg == "--exit-code") {
      std::optional<std::string> v = value();
      if (!v) return "--exit-code needs a value";
      options->exit_code = ParseExitCode(*v);
      if (!options->exit_code) return "--exit-code: not an integer: " + *v;
    } else if (arg == "--signal") {
      std::optional<std::string> v = value();
      if (!v || v->empty()) return "--signal needs a value";
      // A name the classifier does not know would be matched as text, never as the signal.
      if (ParseSignal(*v)->number == 0) {
        return "--signal: unknown signal '" + *v +
               "'; give a signal name or number, e.g. SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE, SIGKILL, SIGTERM, 11";
      }
      options->signal = *v;
    } else if (arg == "--patterns") {
      std::optional<std::string> v = value();
      if (!v || v->empty()) return "--patterns needs a file";
      options->patterns = *v;
    } else if (arg == "--timed-out" && !inline_value) {
      options->timed_out = true;
    } else if (arg.size() > 1 && arg[0] == '-' && arg != "-") {
      return "unknown option: " + arg;
    } else if (have_file) {
      return "more than one FILE given";
    } else {
      options->file = arg;
      have_file = true;
    }
  }
  return std::nullopt;
}

// Reads all of `in`; false on a read error.
bool ReadAll(std::istream& in, std::string* text) {
  std::array<char, 1 << 16> buffer;
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0) {
    text->append(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return !in.bad();
}

nlohmann::json ToJson(const ConfigValue& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

}  // namespace

int RunClassifyCommand(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                       std::ostream& err) {
  for (const std::string& arg : args) {
    if (arg == "--help" || arg == "-h") {
      out << kUsage;
      return kExitOk;
    }
  }
  Options options;
  if (std::optional<std::string> error = ParseArgs(args, &options)) {
    err << "modelwarden classify: " << *error << "\n" << kUsage;
    return kExitUsage;
  }
  Result<CrashClassifier> classifier = CrashClassifier::Load(options.patterns);
  if (!classifier.ok()) {
    err << "modelwarden classify: " << classifier.status().message() << "\n";
    return kExitIoError;
  }
  std::string log;
  if (options.file.empty() || options.file == "-") {
    if (!ReadAll(in, &log)) {
      err << "modelwarden classify: cannot read standard input\n";
      return kExitIoError;
    }
  } else {
    std::ifstream file(options.file, std::ios::binary);
    if (!file) {
      err << "modelwarden classify: cannot open " << options.file << "\n";
      return kExitIoError;
    }
    if (!ReadAll(file, &log)) {
      err << "modelwarden classify: cannot read " << options.file << "\n";
      return kExitIoError;
    }
  }
  Classification result =
      classifier->Classify(CrashEvidence{log, options.exit_code, options.signal, options.timed_out});
  nlohmann::json suggested = nlohmann::json::object();
  for (const ConfigSetting& setting : result.suggested_load_config) suggested[setting.key] = ToJson(setting.value);
  // Offered only when it is a valid llama.cpp load_config (a user catalog
  // may suggest anything).
  if (!loadconfig::ValidateLoadConfig(loadconfig::Engine::kLlamaCpp, suggested.dump()).ok()) {
    suggested = nlohmann::json::object();
  }
  nlohmann::json json = {
      {"category", std::string(CrashCategoryName(result.category))},
      {"pattern_id", result.pattern_id},
      {"summary", result.summary},
      {"matched_line", result.matched_line},
      {"suggested_load_config", suggested},
  };
  // The classifier already emits valid UTF-8; `replace` guards the edge anyway.
  out << json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  out.flush();
  return out ? kExitOk : kExitIoError;
}

int RunClassifyCommand(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return RunClassifyCommand(args, std::cin, std::cout, std::cerr);
}

}  // namespace mw
