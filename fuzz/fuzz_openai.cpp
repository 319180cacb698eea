// libFuzzer target: the /v1 wire format (api/v1/openai_codec.h): what a client
// sends, and what an engine streams back.
//
// Input: byte 0 picks: '0' chat, '1' completions, '2' embeddings request body
// (ParseOpenAiRequest); '3' an engine's SSE byte stream (SseParser ->
// SanitizeUtf8 -> ErrorInEventData / StreamAssembler), cut in two at byte 1;
// '4' an engine's error body (EngineErrorToOpenAi). Checked: no crash, UB or
// escaping exception; errors are kInvalidArgument with a message; an accepted
// request has a model and an engine body that is a JSON object; what we send
// on is valid UTF-8 and valid JSON.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "api/v1/openai_codec.h"
#include "fuzz_support.h"

namespace {

using nlohmann::json;
using mw::api::OpenAiEndpoint;

bool IsJsonObject(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_object();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mw::fuzz::InputReader input(data, size);
  const uint8_t which = input.Byte() % 5;
  if (which <= 2) {
    const auto endpoint = which == 0 ? OpenAiEndpoint::kChatCompletions
                          : which == 1 ? OpenAiEndpoint::kCompletions
                                       : OpenAiEndpoint::kEmbeddings;
    auto request = mw::api::ParseOpenAiRequest(endpoint, input.Rest());
    if (!request.ok()) {
      MW_FUZZ_CHECK(request.status().code() == mw::StatusCode::kInvalidArgument);
      MW_FUZZ_CHECK(!request.status().message().empty());
      return 0;
    }
    MW_FUZZ_CHECK(!request->model.empty());
    MW_FUZZ_CHECK(IsJsonObject(request->upstream_body));
    MW_FUZZ_CHECK(mw::api::IsValidUtf8(request->upstream_body));
    return 0;
  }
  if (which == 3) {
    const size_t cut = input.Byte();
    const std::string bytes = input.Rest();
    mw::api::SseParser parser;
    mw::api::StreamAssembler assembler(cut % 2 == 0 ? OpenAiEndpoint::kChatCompletions : OpenAiEndpoint::kCompletions);
    const size_t at = bytes.empty() ? 0 : cut % (bytes.size() + 1);
    for (const std::string& piece : {bytes.substr(0, at), bytes.substr(at)}) {
      parser.Feed(piece);
      while (auto event = parser.Next()) {
        std::string clean = mw::api::SanitizeUtf8(*event);
        MW_FUZZ_CHECK(mw::api::IsValidUtf8(clean));
        auto payload = mw::api::SseData(clean);
        if (!payload || *payload == "[DONE]") continue;
        if (auto error = mw::api::ErrorInEventData(*payload)) {
          MW_FUZZ_CHECK(IsJsonObject(error->body));
          continue;
        }
        (void)assembler.Add(*payload);
      }
    }
    const std::string answer = assembler.Finish();
    MW_FUZZ_CHECK(IsJsonObject(answer));
    return 0;
  }
  const std::string body = input.Rest();
  for (int status : {400, 500}) {
    mw::api::OpenAiError error = mw::api::EngineErrorToOpenAi(status, body);
    MW_FUZZ_CHECK(error.http_status == (status == 400 ? 400 : 502));
    MW_FUZZ_CHECK(IsJsonObject(error.body));
    MW_FUZZ_CHECK(mw::api::IsValidUtf8(error.body));
  }
  return 0;
}
