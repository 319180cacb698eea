// libFuzzer target: load_config validation (loadconfig/loadconfig.h) for
// both engines and for arbitrary engine names.
//
// Input: byte 0 picks the engine: '0' llama.cpp, '1' command, '2' the engine
// name given on the next line (the string overload, as the API calls it);
// the rest is the load_config text. Besides "no crash, no UB,
// no exception", it checks the contract: an accepted config has the
// engine's variant and re-validating its normalized_json gives the same
// typed settings (what the server saves is what the worker will load).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_support.h"
#include "loadconfig/loadconfig.h"

namespace {

using mw::loadconfig::Engine;
using mw::loadconfig::LoadConfig;

void CheckAccepted(Engine engine, const LoadConfig& config) {
  MW_FUZZ_CHECK(config.engine == engine);
  MW_FUZZ_CHECK((engine == Engine::kLlamaCpp) == (config.llama() != nullptr));
  MW_FUZZ_CHECK((engine == Engine::kCommand) == (config.command() != nullptr));
  if (const auto* command = config.command()) {
    MW_FUZZ_CHECK(!command->argv.empty() && !command->argv.front().empty());
  }
  if (config.load_timeout_s) {
    MW_FUZZ_CHECK(*config.load_timeout_s >= 1 && *config.load_timeout_s <= mw::loadconfig::kMaxLoadTimeoutSeconds);
  }
  auto again = mw::loadconfig::ValidateLoadConfig(engine, config.normalized_json);
  MW_FUZZ_CHECK(again.ok());
  MW_FUZZ_CHECK(again->settings == config.settings);
  MW_FUZZ_CHECK(again->load_timeout_s == config.load_timeout_s);
  MW_FUZZ_CHECK(again->normalized_json == config.normalized_json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const uint8_t mode = input.Byte();
  if (mode % 3 == 2) {
    // The string overload (engine names come from the API): any name.
    std::string engine_name = input.Line(32);
    std::string text = input.Rest();
    auto parsed = mw::loadconfig::ParseEngine(engine_name);
    auto result = mw::loadconfig::ValidateLoadConfig(engine_name, text);
    MW_FUZZ_CHECK(parsed.ok() || !result.ok());
    if (result.ok()) CheckAccepted(*parsed, *result);
    return 0;
  }
  const Engine engine = mode % 3 == 0 ? Engine::kLlamaCpp : Engine::kCommand;
  std::string text = input.Rest();
  auto result = mw::loadconfig::ValidateLoadConfig(engine, text);
  if (result.ok()) {
    CheckAccepted(engine, *result);
  } else {
    MW_FUZZ_CHECK(!result.status().message().empty());
  }
  return 0;
}
