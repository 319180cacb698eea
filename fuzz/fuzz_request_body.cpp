// libFuzzer target: the API's request-body parsers (api/json_codec.h), the
// first code an HTTP body from anyone reaches.
//
// Input: byte 0 picks the parser ('0' register, '1' config patch, '2' load,
// '3' unload);
// the rest is the body. A body that parses and carries a load_config is
// passed on to ValidateLoadConfig with the engine it names, as the core
// does before saving. Checked: no crash/UB/escaping exception, errors carry
// a message, and a load_config that passes the codec is the text of a JSON
// object (the core and the registry rely on that), and a command config has
// exactly one of preset and argv (the API's command policy relies on that).
#include <cstdint>
#include <optional>
#include <string>

#include "api/json_codec.h"
#include "fuzz_support.h"
#include "loadconfig/loadconfig.h"

namespace {

void CheckLoadConfig(const std::optional<std::string>& engine, const std::optional<std::string>& load_config) {
  if (!load_config) return;
  MW_FUZZ_CHECK(!load_config->empty() && load_config->front() == '{' && load_config->back() == '}');
  auto validated = mw::loadconfig::ValidateLoadConfig(engine.value_or("llama.cpp"), *load_config);
  if (!validated.ok()) {
    MW_FUZZ_CHECK(!validated.status().message().empty());
    return;
  }
  // A command config names a program in exactly one way: a preset of the
  // server's configuration, or an argv (which the API refuses by default).
  if (const auto* command = validated->command()) {
    MW_FUZZ_CHECK(command->preset.has_value() != !command->argv.empty());
  }
}

template <typename T>
void CheckError(const mw::Result<T>& result) {
  if (!result.ok()) {
    MW_FUZZ_CHECK(result.status().code() == mw::StatusCode::kInvalidArgument);
    MW_FUZZ_CHECK(!result.status().message().empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const uint8_t which = input.Byte() % 4;
  const std::string body = input.Rest();
  switch (which) {
    case 0: {
      auto request = mw::api::ParseRegisterRequest(body);
      CheckError(request);
      if (request.ok()) CheckLoadConfig(request->engine, request->load_config_json);
      break;
    }
    case 1: {
      auto patch = mw::api::ParseConfigPatch(body);
      CheckError(patch);
      if (patch.ok()) {
        MW_FUZZ_CHECK(patch->compatibility_status || patch->compatibility_notes || patch->load_config_json);
        CheckLoadConfig(std::nullopt, patch->load_config_json);
        CheckLoadConfig(std::string("command"), patch->load_config_json);
      }
      break;
    }
    default: {
      auto request = mw::api::ParseLoadRequest(body, /*allow_force=*/which == 2);
      CheckError(request);
      if (request.ok() && which == 3) MW_FUZZ_CHECK(!request->force);
      break;
    }
  }
  return 0;
}
