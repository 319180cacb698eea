#include "api/v1/openai_codec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mw::api {
namespace {

using nlohmann::json;

std::string BadRequest(OpenAiEndpoint endpoint, const std::string& body) {
  auto r = ParseOpenAiRequest(endpoint, body);
  EXPECT_FALSE(r.ok()) << body;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(OpenAiCodec, ChatRequestIsAskedAsAStreamWhenTheClientIsNot) {
  auto r = ParseOpenAiRequest(OpenAiEndpoint::kChatCompletions,
                              R"({"model":"m","messages":[{"role":"user","content":"hi"}],"keep_alive":"0","temperature":0.7})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->model, "m");
  EXPECT_FALSE(r->stream);
  EXPECT_TRUE(r->assemble);
  EXPECT_EQ(r->keep_alive_ms, 0);
  json up = json::parse(r->upstream_body);
  EXPECT_EQ(up["stream"], true);
  EXPECT_EQ(up["stream_options"]["include_usage"], true);
  EXPECT_FALSE(up.contains("keep_alive"));
  EXPECT_EQ(up["temperature"], 0.7);
}

TEST(OpenAiCodec, TimeoutIsOursAndNeverReachesTheEngine) {  // SPEC §19
  auto r = ParseOpenAiRequest(OpenAiEndpoint::kCompletions, R"({"model":"m","prompt":"x","timeout":"90s"})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->timeout_ms, 90000);
  EXPECT_FALSE(json::parse(r->upstream_body).contains("timeout"));
  r = ParseOpenAiRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m","input":"x","timeout":2})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->timeout_ms, 2000);
  EXPECT_FALSE(ParseOpenAiRequest(OpenAiEndpoint::kCompletions, R"({"model":"m","prompt":"x"})")->timeout_ms);
  for (const char* bad : {R"({"model":"m","prompt":"x","timeout":0})", R"({"model":"m","prompt":"x","timeout":-1})",
                          R"({"model":"m","prompt":"x","timeout":true})", R"({"model":"m","prompt":"x","timeout":"soon"})"}) {
    EXPECT_NE(BadRequest(OpenAiEndpoint::kCompletions, bad).find("'timeout'"), std::string::npos) << bad;
  }
}

TEST(OpenAiCodec, StreamingRequestGoesAsGiven) {
  auto r = ParseOpenAiRequest(OpenAiEndpoint::kCompletions,
                              R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true},"keep_alive":30})");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->stream);
  EXPECT_TRUE(r->include_usage);
  EXPECT_FALSE(r->assemble);
  EXPECT_EQ(r->keep_alive_ms, 30000);
  EXPECT_EQ(json::parse(r->upstream_body), json::parse(R"({"model":"m","prompt":"x","stream":true,"stream_options":{"include_usage":true}})"));
  auto e = ParseOpenAiRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m","input":["a","b"]})");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->assemble);
}

TEST(OpenAiCodec, BadInputNamesTheField) {
  const auto chat = OpenAiEndpoint::kChatCompletions;
  EXPECT_NE(BadRequest(chat, "{").find("JSON"), std::string::npos);
  BadRequest(chat, "[]");
  EXPECT_NE(BadRequest(chat, R"({"messages":[{"role":"user","content":"x"}]})").find("model"), std::string::npos);
  EXPECT_NE(BadRequest(chat, R"({"model":"m"})").find("messages"), std::string::npos);
  BadRequest(chat, R"({"model":"m","messages":[]})");
  BadRequest(chat, R"({"model":"m","messages":"hi"})");
  BadRequest(chat, R"({"model":"m","messages":[{"content":"x"}]})");
  BadRequest(chat, R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})");
  BadRequest(chat, R"({"model":"m","messages":[{"role":"user"}]})");
  BadRequest(chat, R"({"model":"m","messages":[{"role":"user","content":5}]})");
  BadRequest(chat, R"({"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]})");
  const std::string ok_msgs = R"("messages":[{"role":"user","content":"x"}])";
  for (const char* v : {"0", "-1", "99999999999", "1.5", "\"10\""}) {
    EXPECT_NE(BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"max_tokens\":" + v + "}").find("max_tokens"),
              std::string::npos) << v;
  }
  BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"max_completion_tokens\":0}");
  EXPECT_NE(BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"n\":2}").find("not supported"), std::string::npos);
  BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"n\":0}");
  BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"stream\":\"yes\"}");
  BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"keep_alive\":\"forever\"}");
  BadRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"stream_options\":{\"include_usage\":1}}");
  EXPECT_TRUE(ParseOpenAiRequest(chat, "{\"model\":\"m\"," + ok_msgs + ",\"n\":1,\"max_tokens\":16}").ok());
  BadRequest(OpenAiEndpoint::kCompletions, R"({"model":"m"})");
  BadRequest(OpenAiEndpoint::kCompletions, R"({"model":"m","prompt":[]})");
  BadRequest(OpenAiEndpoint::kCompletions, R"({"model":"m","prompt":{"a":1}})");
  BadRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m"})");
  BadRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m","input":"x","stream":true})");
  // An assistant turn with tool calls and no content is valid.
  EXPECT_TRUE(ParseOpenAiRequest(chat, R"({"model":"m","messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"1","content":"42"}]})").ok());
}

// SPEC §20: only the fields of docs/api.md's list reach the engine, each checked.
TEST(OpenAiCodec, OnlyListedFieldsPassEachChecked) {
  const std::string chat = R"({"model":"m","messages":[{"role":"user","content":"hi"}],)";
  auto with = [&](const std::string& field) { return chat + field + "}"; };
  EXPECT_NE(BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("n_probs":100000)")).find("'n_probs'"), std::string::npos);
  EXPECT_NE(BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("n_predict":5000000000)")).find("'n_predict'"),
            std::string::npos);
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("n_predict":-1)"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("top_logprobs":21)"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("logprobs":5)"));  // a boolean in chat
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("temperature":"hot")"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("stop":[1])"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("lora":[{"id":0,"scale":1}])"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("id_slot":0)"));
  BadRequest(OpenAiEndpoint::kChatCompletions, with(R"("prompt":"x")"));  // a completions field
  BadRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m","input":"x","n_probs":1})");
  const std::string unknown = BadRequest(OpenAiEndpoint::kChatCompletions, with("\"" + std::string(5000, 'u') + "\":1"));
  EXPECT_NE(unknown.find("unknown field 'uuu"), std::string::npos) << unknown.substr(0, 300);
  EXPECT_EQ(unknown.find(std::string(201, 'u')), std::string::npos);

  auto ok = ParseOpenAiRequest(OpenAiEndpoint::kChatCompletions,
                               with(R"("n_probs":20,"n_predict":16,"seed":-1,"stop":["a"],"logprobs":true,"top_logprobs":20,)"
                                    R"("tools":[],"tool_choice":"auto","response_format":{"type":"json_object"},"user":"u")"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  json up = json::parse(ok->upstream_body);
  EXPECT_EQ(up["n_probs"], 20);
  EXPECT_EQ(up["n_predict"], 16);
  auto text = ParseOpenAiRequest(OpenAiEndpoint::kCompletions, R"({"model":"m","prompt":"x","logprobs":5,"suffix":"s"})");
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  auto emb = ParseOpenAiRequest(OpenAiEndpoint::kEmbeddings, R"({"model":"m","input":"x","encoding_format":"float"})");
  EXPECT_TRUE(emb.ok()) << emb.status().ToString();
}

TEST(OpenAiCodec, AnswersNameTheRequestedModel) {
  EXPECT_EQ(json::parse(WithModelName(R"({"model":"/m/tiny.gguf","x":1})", "tiny")),
            json::parse(R"({"model":"tiny","x":1})"));
  EXPECT_EQ(WithModelName(R"({"x":1})", "tiny"), R"({"x":1})");
  EXPECT_EQ(WithModelName("not json \"model\"", "tiny"), "not json \"model\"");
  StreamAssembler a(OpenAiEndpoint::kChatCompletions);
  ASSERT_TRUE(a.Add(R"({"model":"/m/tiny.gguf","choices":[{"index":0,"delta":{"content":"hi"}}]})").ok());
  EXPECT_EQ(json::parse(a.Finish("tiny"))["model"], "tiny");
}

TEST(OpenAiCodec, DeepNestingIsRefusedNotACrash) {
  // dump() recurses per level: a 1 MiB body of '[' must be a 400, not a stack overflow.
  std::string deep = R"({"model":"m","messages":[{"role":"user","content":"x"}],"x":)" + std::string(500000, '[') +
                     std::string(500000, ']') + "}";
  EXPECT_NE(BadRequest(OpenAiEndpoint::kChatCompletions, deep).find("nested too deeply"), std::string::npos);
  StreamAssembler a(OpenAiEndpoint::kChatCompletions);
  EXPECT_FALSE(a.Add(R"({"choices":)" + std::string(300000, '[') + std::string(300000, ']') + "}").ok());
  OpenAiError e = EngineErrorToOpenAi(400, std::string(300000, '[') + std::string(300000, ']'));
  EXPECT_EQ(e.http_status, 400);
}

TEST(OpenAiCodec, ErrorShape) {
  json e = json::parse(OpenAiErrorJson(404, "model_not_found", "no such model"));
  EXPECT_EQ(e, json::parse(R"({"error":{"message":"no such model","type":"invalid_request_error","code":"model_not_found","param":null}})"));
  EXPECT_EQ(json::parse(OpenAiErrorJson(502, "engine_crashed", "x"))["error"]["type"], "server_error");
  EXPECT_EQ(json::parse(OpenAiErrorJson(429, "queue_full", "x"))["error"]["type"], "rate_limit_error");
  EXPECT_EQ(json::parse(OpenAiErrorJson(401, "unauthorized", "x"))["error"]["type"], "authentication_error");
  json extra = json::parse(OpenAiErrorJson(422, "load_failed", "m", R"({"classification":{"category":"aborted_signal"}})"));
  EXPECT_EQ(extra["error"]["classification"]["category"], "aborted_signal");
  std::string event = OpenAiErrorEvent(502, "engine_crashed", "died");
  EXPECT_EQ(event.rfind("data: {", 0), 0u);
  EXPECT_EQ(event.substr(event.size() - 2), "\n\n");
}

TEST(OpenAiCodec, EngineErrorsBecomeOurShape) {
  OpenAiError e = EngineErrorToOpenAi(400, R"({"error":{"code":400,"message":"context too long","type":"invalid_request_error"}})");
  EXPECT_EQ(e.http_status, 400);
  json j = json::parse(e.body);
  EXPECT_EQ(j["error"]["message"], "context too long");
  EXPECT_EQ(j["error"]["code"], "invalid_request");
  EXPECT_TRUE(j["error"]["param"].is_null());
  OpenAiError five = EngineErrorToOpenAi(500, "boom");
  EXPECT_EQ(five.http_status, 502);
  EXPECT_EQ(json::parse(five.body)["error"]["code"], "engine_error");
  EXPECT_FALSE(ErrorInEventData(R"({"choices":[]})"));
  auto in_event = ErrorInEventData(R"({"error":{"code":500,"message":"decode failed"}})");
  ASSERT_TRUE(in_event);
  EXPECT_EQ(in_event->http_status, 502);
}

TEST(OpenAiCodec, ApiShapedErrorsAreConverted) {
  auto c = ApiErrorToOpenAi(403, R"({"error":{"code":"host_not_allowed","message":"no","host":"evil"}})");
  ASSERT_TRUE(c);
  json j = json::parse(c->body);
  EXPECT_EQ(j["error"]["code"], "host_not_allowed");
  EXPECT_EQ(j["error"]["type"], "permission_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_EQ(j["error"]["host"], "evil");
  EXPECT_FALSE(ApiErrorToOpenAi(404, OpenAiErrorJson(404, "not_found", "x")));  // already OpenAI's shape
  EXPECT_FALSE(ApiErrorToOpenAi(400, "not json"));
}

TEST(OpenAiCodec, Utf8) {
  EXPECT_TRUE(IsValidUtf8("héllo €𝄞"));
  EXPECT_FALSE(IsValidUtf8("a\xff" "b"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));            // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));        // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));    // surrogate
  EXPECT_EQ(SanitizeUtf8("a\xff\xfe" "b"), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
  EXPECT_EQ(SanitizeUtf8("ok é"), "ok é");
  EXPECT_EQ(HeaderSafe("a\nb\xc3\xa9"), "a b  ");
}

TEST(OpenAiCodec, SseParser) {
  SseParser p;
  p.Feed("data: {\"a\":1}\n\ndata: {\"b\"");
  auto first = p.Next();
  ASSERT_TRUE(first);
  EXPECT_EQ(SseData(*first), "{\"a\":1}");
  EXPECT_FALSE(p.Next());
  p.Feed(":2}\r\n\r\n: comment\n\ndata: [DONE]\n\n");
  EXPECT_EQ(SseData(*p.Next()), "{\"b\":2}");
  EXPECT_FALSE(SseData(*p.Next()));  // a comment has no data
  EXPECT_EQ(SseData(*p.Next()), "[DONE]");
  EXPECT_EQ(SseData("event: x\ndata: one\ndata: two"), "one\ntwo");
}

TEST(OpenAiCodec, AssemblesAChatCompletion) {
  StreamAssembler a(OpenAiEndpoint::kChatCompletions);
  const char* chunks[] = {
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
  };
  for (const char* c : chunks) ASSERT_TRUE(a.Add(c).ok()) << c;
  json out = json::parse(a.Finish());
  EXPECT_EQ(out["object"], "chat.completion");
  EXPECT_EQ(out["id"], "c1");
  ASSERT_EQ(out["choices"].size(), 1u);
  const json& c = out["choices"][0];
  EXPECT_EQ(c["message"]["role"], "assistant");
  EXPECT_EQ(c["message"]["content"], "Hello");
  EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(c["message"]["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_TRUE(c["logprobs"].is_null());
  EXPECT_EQ(out["usage"]["total_tokens"], 5);
  EXPECT_FALSE(a.Add("not json").ok());
}

TEST(OpenAiCodec, AssemblesATextCompletion) {
  StreamAssembler a(OpenAiEndpoint::kCompletions);
  ASSERT_TRUE(a.Add(R"({"id":"x","object":"text_completion","choices":[{"index":0,"text":"He","finish_reason":null}]})").ok());
  ASSERT_TRUE(a.Add(R"({"id":"x","object":"text_completion","choices":[{"index":0,"text":"y \uFFFD","finish_reason":"length"}]})").ok());
  json out = json::parse(a.Finish());
  EXPECT_EQ(out["object"], "text_completion");
  EXPECT_EQ(out["choices"][0]["text"], "Hey \xEF\xBF\xBD");
  EXPECT_EQ(out["choices"][0]["finish_reason"], "length");
}

TEST(OpenAiCodec, ModelList) {
  ModelView m;
  m.model_name = "tiny";
  m.compatibility_status = "compatible";
  m.loaded = true;
  m.created_at = "2026-12-03T08:11:15.123Z";
  json list = json::parse(OpenAiModelListJson({m}));
  EXPECT_EQ(list["object"], "list");
  EXPECT_EQ(list["data"][0], json::parse(R"({"id":"tiny","object":"model","created":1796285475,"owned_by":"modelwarden","compatibility_status":"compatible","loaded":true})"));
  EXPECT_EQ(IsoToUnixSeconds("garbage"), 0);
}

}  // namespace
}  // namespace mw::api
