// /v1 (SPEC §10) against the real server: on-demand loads through the gate,
// the proxy to a real engine process (mw-openai-engine, a `command` model
// with {port}), errors in OpenAI's shape, streaming, a crash while serving,
// client disconnects, the bounded queue, keep_alive.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";

class OpenAiTest : public ::testing::Test {
 protected:
  std::filesystem::path data() const { return dir_.path() / "data"; }
  std::string stats(const std::string& name) const { return (dir_.path() / (name + ".stats")).string(); }
  // A config file with the given [server] lines.
  // The engine fixture is an argv sent through the API, which the server
  // runs only with allow_api_commands (SPEC §9.1).
  std::vector<std::string> ConfigArgs(const std::string& toml = "") {
    return itest::ConfigArgs(dir_.path(), "allow_api_commands = true\n" + toml);
  }
  // Registers an mw-openai-engine model; extra keys merge into its load_config.
  void AddEngine(Server& server, const std::string& name, json extra = json::object()) {
    json load_config = {{"argv", {(BinDir() / "mw-openai-engine").string(), "--port", "{port}", "--stats-file", stats(name)}},
                        {"health_path", "/health"}};
    for (auto& [k, v] : extra.items()) load_config[k] = v;
    auto r = server.Call("POST", "/api/models", json{{"model_name", name}, {"engine", "command"}, {"load_config", load_config}});
    ASSERT_EQ(r.status, 201) << r.raw;
  }
  json EngineStats(const std::string& name) {
    std::ifstream in(stats(name));
    std::stringstream text;
    text << in.rdbuf();
    return json::parse(text.str(), nullptr, false);
  }
  // Polls the engine's stats until `pred` holds (~15 s).
  bool WaitStats(const std::string& name, const std::function<bool(const json&)>& pred) {
    for (int i = 0; i < 300; ++i) {
      json s = EngineStats(name);
      if (s.is_object() && pred(s)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  TempDir dir_;
};

json Chat(const std::string& model, const std::string& content, json extra = json::object()) {
  json body = {{"model", model}, {"messages", {{{"role", "user"}, {"content", content}}}}};
  for (auto& [k, v] : extra.items()) body[k] = v;
  return body;
}

void ExpectOpenAiError(const HttpReply& r, int status, const std::string& code, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.raw;
  ASSERT_TRUE(r.body.is_object() && r.body.contains("error")) << what << ": " << r.raw;
  const json& e = r.body["error"];
  EXPECT_EQ(e.value("code", ""), code) << what << ": " << r.raw;
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(e["type"].is_string()) << what;
  EXPECT_TRUE(e.contains("param") && e["param"].is_null()) << what;
}

TEST_F(OpenAiTest, ModelsAndEveryError) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started()) << server.startup_output();
  AddEngine(server, "echo");
  AddEngine(server, "portless", {{"argv", {(BinDir() / "mw-openai-engine").string()}}});
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("broken", {"--port", "{port}", "--stderr", "Assertion `ok' failed.", "--then", "abort"})).status, 201);
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("refused", {"--port", "{port}", "--then", "ready"})).status, 201);
  ASSERT_EQ(server.Call("PATCH", "/api/models/refused/config",
                        R"({"compatibility_status":"incompatible","compatibility_notes":"Hardware incompatibility detected: test"})").status, 200);

  HttpReply models = server.Call("GET", "/v1/models");
  ASSERT_EQ(models.status, 200) << models.raw;
  EXPECT_EQ(models.body["object"], "list");
  ASSERT_EQ(models.body["data"].size(), 4u);
  const json& echo = models.body["data"][1];
  EXPECT_EQ(echo["id"], "echo");
  EXPECT_EQ(echo["object"], "model");
  EXPECT_EQ(echo["owned_by"], "modelwarden");
  EXPECT_EQ(echo["compatibility_status"], "unknown");
  EXPECT_EQ(echo["loaded"], false);
  EXPECT_GT(echo["created"].get<int64_t>(), 1700000000);
  EXPECT_EQ(server.Call("GET", "/v1/models/echo").body["id"], "echo");
  ExpectOpenAiError(server.Call("GET", "/v1/models/nope"), 404, "model_not_found", "retrieve unknown");

  const std::string chat = "/v1/chat/completions";
  ExpectOpenAiError(server.Call("POST", chat, Chat("nope", "hi")), 404, "model_not_found", "unknown model");
  ExpectOpenAiError(server.Call("POST", chat, "{"), 400, "invalid_request", "malformed JSON");
  ExpectOpenAiError(server.Call("POST", chat, R"({"model":"echo"})"), 400, "invalid_request", "no messages");
  ExpectOpenAiError(server.Call("POST", chat, R"({"model":"echo","messages":[{"role":"user"}]})"), 400,
                    "invalid_request", "message without content");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"max_tokens", 0}})), 400, "invalid_request", "max_tokens 0");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"max_tokens", 1LL << 40}})), 400, "invalid_request",
                    "max_tokens huge");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"n", 2}})), 400, "invalid_request", "n > 1");
  ExpectOpenAiError(server.Call("POST", "/v1/completions", R"({"model":"echo"})"), 400, "invalid_request", "no prompt");
  ExpectOpenAiError(server.Call("POST", "/v1/embeddings", R"({"model":"echo","input":"x"})"), 400, "invalid_request",
                    "embeddings not enabled");
  {
    // Issue 23: the setting applies at the next load, as PATCH's warning says (not "then loaded with it").
    const std::string raw = server.Call("POST", "/v1/embeddings", R"({"model":"echo","input":"x"})").raw;
    EXPECT_NE(raw.find("\\\"embeddings\\\": true"), std::string::npos) << raw;
    EXPECT_NE(raw.find("applies at the model's next load (if it is loaded, unload it first: POST "
                       "/api/orchestrate/unload)"),
              std::string::npos)
        << raw;
  }
  ExpectOpenAiError(server.Call("POST", chat, Chat("portless", "hi")), 409, "conflict", "no {port}");
  ExpectOpenAiError(server.Call("GET", "/v1/nothing"), 404, "not_found", "unknown path");
  ExpectOpenAiError(server.Call("DELETE", "/v1/models"), 404, "not_found", "unknown method");
  ExpectOpenAiError(server.Call("GET", chat), 405, "method_not_allowed", "GET on a POST path");
  ExpectOpenAiError(server.Call("POST", chat, std::string(2 << 20, ' ')), 413, "payload_too_large", "body over the limit");
  RawResponse chunked = RawRequest(server.port(), "POST", chat, "", "Transfer-Encoding: chunked\r\n");
  HttpReply chunked_reply{chunked.status, json::parse(chunked.body, nullptr, false), chunked.body};
  ExpectOpenAiError(chunked_reply, 411, "length_required", "chunked body (refused before routing)");
  // None of the refused requests loaded anything.
  EXPECT_TRUE(server.Call("GET", "/api/status").body["loaded_models"].empty());

  // An incompatible model is refused with its notes, never forced.
  HttpReply refused = server.Call("POST", chat, Chat("refused", "hi"));
  ExpectOpenAiError(refused, 409, "model_incompatible", "incompatible");
  EXPECT_NE(refused.body["error"]["message"].get<std::string>().find("Hardware incompatibility detected: test"), std::string::npos);
  EXPECT_TRUE(server.Call("GET", "/api/models/refused").body["attempts"].empty());

  // A load that fails: the classification, and the verdict recorded as for /api.
  HttpReply failed = server.Call("POST", chat, Chat("broken", "hi"));
  ExpectOpenAiError(failed, 422, "load_failed", "load fails");
  EXPECT_EQ(failed.body["error"]["classification"]["category"], "assertion") << failed.raw;
  EXPECT_EQ(server.Call("GET", "/api/models/broken").body["compatibility_status"], "incompatible");
  ExpectOpenAiError(server.Call("POST", chat, Chat("broken", "hi")), 409, "model_incompatible", "then refused");
  EXPECT_TRUE(server.Alive());
}

TEST_F(OpenAiTest, ApiKeyIsABearerToken) {
  Server server(data(), ConfigArgs("api_key = \"k3y\"\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ExpectOpenAiError(server.Call("GET", "/v1/models"), 401, "unauthorized", "no key");
  ExpectOpenAiError(server.Call("POST", "/v1/chat/completions", Chat("x", "hi").dump(), "wrong"), 401, "unauthorized", "wrong key");
  ExpectOpenAiError(server.Call("GET", "/v1/whatever", "", "wrong"), 401, "unauthorized", "unknown path, wrong key");
  EXPECT_EQ(server.Call("GET", "/v1/models", "", "k3y").status, 200);
}

TEST_F(OpenAiTest, LoadsOnDemandAndAnswersEveryEndpoint) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started()) << server.startup_output();
  AddEngine(server, "echo", {{"embeddings", true}});
  HttpReply chat = server.Call("POST", "/v1/chat/completions", Chat("echo", "hi TOKENS=4"));
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["object"], "chat.completion");
  EXPECT_EQ(chat.body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(chat.body["choices"][0]["message"]["content"], "Hello w1 w2 w3");
  EXPECT_EQ(chat.body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chat.body["usage"]["completion_tokens"], 4);
  // Loaded through the gate: one successful attempt, the verdict recorded.
  json model = server.Call("GET", "/api/models/echo").body;
  EXPECT_EQ(model["compatibility_status"], "compatible");
  EXPECT_EQ(model["loaded"], true);
  ASSERT_EQ(model["attempts"].size(), 1u);
  EXPECT_EQ(model["attempts"][0]["outcome"], "success");

  HttpReply text = server.Call("POST", "/v1/completions", R"({"model":"echo","prompt":"TOKENS=2"})");
  ASSERT_EQ(text.status, 200) << text.raw;
  EXPECT_EQ(text.body["object"], "text_completion");
  EXPECT_EQ(text.body["choices"][0]["text"], "Hello w1");
  HttpReply emb = server.Call("POST", "/v1/embeddings", R"({"model":"echo","input":["a","b"]})");
  ASSERT_EQ(emb.status, 200) << emb.raw;
  EXPECT_EQ(emb.body["data"].size(), 2u);
  EXPECT_EQ(emb.body["data"][1]["embedding"].size(), 8u);
  // The engine's own 4xx comes back in OpenAI's shape.
  HttpReply refused = server.Call("POST", "/v1/chat/completions", Chat("echo", "ENGINE_400"));
  ExpectOpenAiError(refused, 400, "invalid_request", "engine 400");
  EXPECT_EQ(refused.body["error"]["message"], "the fixture refuses this prompt");
  // A genuine engine failure (its 5xx) is a 502 engine_error, streamed or not,
  // and no crash: the model stays loaded and compatible.
  HttpReply failed = server.Call("POST", "/v1/chat/completions", Chat("echo", "ENGINE_500"));
  ExpectOpenAiError(failed, 502, "engine_error", "engine 500");
  EXPECT_NE(failed.body["error"]["message"].get<std::string>().find("the fixture failed on purpose"), std::string::npos);
  RawResponse failed_stream = RawRequest(server.port(), "POST", "/v1/completions",
                                         R"({"model":"echo","prompt":"ENGINE_500","stream":true})");
  HttpReply failed_stream_reply{failed_stream.status, json::parse(failed_stream.body, nullptr, false), failed_stream.body};
  ExpectOpenAiError(failed_stream_reply, 502, "engine_error", "engine 500, streamed");
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["loaded"], true);
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["compatibility_status"], "compatible");
  // Still one attempt: a loaded model is used as it is.
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["attempts"].size(), 1u);
}

// SPEC §20: only listed fields reach the engine, each checked; a non-streamed
// answer is bounded (the fixture's TOKEN_BYTES makes a big one) while the same
// answer streamed passes; answers name the requested model, never the path
// the engine reports (the fixture reports "/models/<name>.gguf", like llama.cpp).
TEST_F(OpenAiTest, FieldsAreListedAnswersBoundedAndNamedByTheRequest) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started()) << server.startup_output();
  AddEngine(server, "echo", {{"embeddings", true}});
  const std::string chat = "/v1/chat/completions";
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"max_tokens", 10}, {"n_probs", 100000}})), 400,
                    "invalid_request", "n_probs 100000");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"n_predict", 1LL << 40}})), 400, "invalid_request",
                    "n_predict huge");
  ExpectOpenAiError(server.Call("POST", "/v1/completions", R"({"model":"echo","prompt":"x","n_predict":0})"), 400,
                    "invalid_request", "n_predict 0");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"top_logprobs", 21}})), 400, "invalid_request",
                    "top_logprobs 21");
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", "hi", {{"temperature", "hot"}})), 400, "invalid_request",
                    "temperature not a number");
  const std::string unknown(5000, 'z');
  HttpReply refused = server.Call("POST", chat, Chat("echo", "hi", {{unknown, 1}}));
  ExpectOpenAiError(refused, 400, "invalid_request", "unknown field");
  const std::string message = refused.body["error"]["message"];
  EXPECT_NE(message.find("unknown field 'zzz"), std::string::npos) << message;
  EXPECT_EQ(message.find(std::string(201, 'z')), std::string::npos) << "at most 200 bytes echoed";
  ExpectOpenAiError(server.Call("POST", "/v1/embeddings", R"({"model":"echo","input":"x","temperature":1})"), 400,
                    "invalid_request", "a generation field on embeddings");
  EXPECT_TRUE(server.Call("GET", "/api/status").body["loaded_models"].empty()) << "refused before any load";

  // Listed fields pass; every answer names the model as requested.
  HttpReply ok = server.Call("POST", chat, Chat("echo", "hi TOKENS=3", {{"n_probs", 20}, {"n_predict", 3},
                                                                       {"temperature", 0.5}, {"stop", {"\n"}}}));
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["model"], "echo") << ok.raw;
  HttpReply text = server.Call("POST", "/v1/completions", R"({"model":"echo","prompt":"TOKENS=2","logprobs":5})");
  ASSERT_EQ(text.status, 200) << text.raw;
  EXPECT_EQ(text.body["model"], "echo") << text.raw;
  HttpReply emb = server.Call("POST", "/v1/embeddings", R"({"model":"echo","input":"a"})");
  ASSERT_EQ(emb.status, 200) << emb.raw;
  EXPECT_EQ(emb.body["model"], "echo") << emb.raw;
  RawResponse streamed = RawRequest(server.port(), "POST", chat, Chat("echo", "TOKENS=3", {{"stream", true}}).dump());
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  EXPECT_EQ(streamed.body.find("/models/"), std::string::npos) << streamed.body;
  for (const std::string& data : Events(streamed.body)) {
    if (data == "[DONE]") continue;
    EXPECT_EQ(json::parse(data, nullptr, false).value("model", ""), "echo") << data;
  }
  EXPECT_EQ(server.Call("GET", "/v1/models").raw.find("/models/"), std::string::npos);

  // ~10 MiB of answer: refused when it would be held, passed when streamed.
  const std::string big = "TOKENS=100 TOKEN_BYTES=100000";
  ExpectOpenAiError(server.Call("POST", chat, Chat("echo", big)), 502, "response_too_large", "assembled answer");
  ExpectOpenAiError(server.Call("POST", "/v1/completions", json{{"model", "echo"}, {"prompt", big}}), 502,
                    "response_too_large", "assembled text answer");
  RawResponse big_stream = RawRequest(server.port(), "POST", chat, Chat("echo", big, {{"stream", true}}).dump());
  EXPECT_EQ(big_stream.status, 200);
  EXPECT_GT(big_stream.body.size(), size_t{9'000'000});  // over the 8 MiB cap
  EXPECT_NE(big_stream.body.find("data: [DONE]"), std::string::npos);
  EXPECT_TRUE(server.Alive());
}

// The way to run an engine program by default (SPEC §9.1): an [engines.NAME]
// preset with {port} in the configuration, no argv over the API.
TEST_F(OpenAiTest, APresetCommandModelServes) {
  Server server(data(), itest::ConfigArgs(dir_.path(), "[engines.fixture]\nargv = [\"" +
                                                           (BinDir() / "mw-openai-engine").string() +
                                                           "\", \"--port\", \"{port}\"]\nhealth_path = \"/health\"\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models", json{{"model_name", "p"}, {"engine", "command"},
                                                    {"load_config", {{"preset", "fixture"}}}}).status, 201);
  HttpReply chat = server.Call("POST", "/v1/chat/completions", Chat("p", "TOKENS=2"));
  ASSERT_EQ(chat.status, 200) << chat.raw;
  EXPECT_EQ(chat.body["choices"][0]["message"]["content"], "Hello w1");
}

TEST_F(OpenAiTest, StreamsEventsAndUsage) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  RawResponse r = RawRequest(server.port(), "POST", "/v1/chat/completions",
                             Chat("echo", "TOKENS=3", {{"stream", true}, {"stream_options", {{"include_usage", true}}}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "text/event-stream");
  std::vector<std::string> events = Events(r.body);
  ASSERT_GE(events.size(), 5u) << r.body;
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  json usage;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json chunk = json::parse(events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    if (!chunk["choices"].empty()) text += chunk["choices"][0]["delta"].value("content", "");
    if (chunk.contains("usage")) usage = chunk["usage"];
  }
  EXPECT_EQ(text, "Hello w1 w2");
  EXPECT_EQ(usage["completion_tokens"], 3);
  // Without include_usage no usage chunk is sent.
  RawResponse plain = RawRequest(server.port(), "POST", "/v1/completions",
                                 R"({"model":"echo","prompt":"TOKENS=2","stream":true})");
  ASSERT_EQ(plain.status, 200);
  EXPECT_EQ(plain.body.find("usage"), std::string::npos) << plain.body;
  EXPECT_EQ(Events(plain.body).back(), "[DONE]");
}

TEST_F(OpenAiTest, InvalidUtf8FromTheEngineIsNeverA500) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  // The engine answers 500 to the non-streamed form of this prompt (as
  // llama.cpp's server did for random-weight models); we never ask it that.
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    json body = std::string(path) == "/v1/completions" ? json{{"model", "echo"}, {"prompt", "BAD_UTF8 TOKENS=3"}}
                                                        : Chat("echo", "BAD_UTF8 TOKENS=3");
    HttpReply r = server.Call("POST", path, body);
    ASSERT_EQ(r.status, 200) << path << ": " << r.raw;
    const json& choice = r.body["choices"][0];
    std::string text = choice.contains("text") ? choice["text"].get<std::string>() : choice["message"]["content"].get<std::string>();
    EXPECT_EQ(text, "Hello " + kReplacement + kReplacement + " w2") << path;
  }
  // Streamed: every event is valid JSON (the bytes replaced).
  RawResponse s = RawRequest(server.port(), "POST", "/v1/completions",
                             R"({"model":"echo","prompt":"BAD_UTF8 TOKENS=3","stream":true})");
  ASSERT_EQ(s.status, 200);
  std::string text;
  for (const auto& e : Events(s.body)) {
    if (e == "[DONE]") continue;
    json chunk = json::parse(e, nullptr, false);
    ASSERT_FALSE(chunk.is_discarded()) << e;
    text += chunk["choices"][0].value("text", "");
  }
  EXPECT_EQ(text, "Hello " + kReplacement + kReplacement + " w2");
}

TEST_F(OpenAiTest, EngineKilledMidStreamEndsWithAnErrorEvent) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  RawResponse r = RawRequest(server.port(), "POST", "/v1/chat/completions",
                             Chat("echo", "TOKENS=50 DELAY_MS=20 CRASH_AFTER=3", {{"stream", true}}).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  std::vector<std::string> events = Events(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  EXPECT_NE(events.back(), "[DONE]");
  json error = json::parse(events.back(), nullptr, false);
  ASSERT_TRUE(error.contains("error")) << r.body;
  EXPECT_EQ(error["error"]["code"], "engine_crashed");
  EXPECT_EQ(json::parse(events[1])["choices"][0]["delta"]["content"], "Hello");  // what came before the crash
  json model = server.Call("GET", "/api/models/echo").body;
  EXPECT_EQ(error["error"]["message"], model["last_error"]) << model.dump();
  // SPEC §10 + rule 3: one successful load before the crash, so incompatible.
  EXPECT_EQ(model["compatibility_status"], "incompatible") << model.dump();
  ASSERT_FALSE(model["attempts"].empty()) << model.dump();
  EXPECT_EQ(model["attempts"][0]["outcome"], "crashed_while_serving") << model.dump();
  EXPECT_EQ(model["loaded"], false);
  EXPECT_TRUE(server.Alive());

  // Not streamed: 502 engine_crashed with the classified summary.
  server.Call("PATCH", "/api/models/echo/config", R"({"compatibility_status":"compatible"})");
  HttpReply crashed = server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=50 CRASH_AFTER=2"));
  ExpectOpenAiError(crashed, 502, "engine_crashed", "crash, not streamed");
  model = server.Call("GET", "/api/models/echo").body;
  EXPECT_EQ(crashed.body["error"]["message"], model["last_error"]);
  // Two successful loads before: still fewer than 3, incompatible.
  EXPECT_EQ(model["compatibility_status"], "incompatible") << model.dump();
  ASSERT_FALSE(model["attempts"].empty()) << model.dump();
  EXPECT_EQ(model["attempts"][0]["outcome"], "crashed_while_serving") << model.dump();
  EXPECT_TRUE(server.Alive());
}

TEST_F(OpenAiTest, ClientDisconnectCancelsTheGeneration) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");  // n_parallel 1
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"echo"})").status, 200);
  const std::string long_run = Chat("echo", "TOKENS=2000 DELAY_MS=20", {{"stream", true}}).dump();
  {
    // Hangs up after the first tokens.
    RawConnection c(server.port());
    ASSERT_TRUE(c.Send("POST", "/v1/chat/completions", long_run));
    ASSERT_NE(c.ReadUntil("Hello").find("Hello"), std::string::npos);
  }
  ASSERT_TRUE(WaitStats("echo", [](const json& s) { return s["cancelled"] == 1; })) << EngineStats("echo");
  {
    // Hangs up at once, before any answer.
    RawConnection c(server.port());
    ASSERT_TRUE(c.Send("POST", "/v1/chat/completions", long_run));
  }
  ASSERT_TRUE(WaitStats("echo", [](const json& s) { return s["cancelled"] == 2 && s["in_flight"] == 0; }))
      << EngineStats("echo");
  {
    // A non-streamed request whose client leaves is cancelled too.
    RawConnection c(server.port());
    ASSERT_TRUE(c.Send("POST", "/v1/chat/completions", Chat("echo", "TOKENS=2000 DELAY_MS=20").dump()));
    ASSERT_TRUE(WaitStats("echo", [](const json& s) { return s["in_flight"] == 1; }));
  }
  ASSERT_TRUE(WaitStats("echo", [](const json& s) { return s["cancelled"] == 3 && s["in_flight"] == 0; }))
      << EngineStats("echo");
  // The slot is free again (n_parallel 1) and the model still loaded.
  HttpReply next = server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=2"));
  EXPECT_EQ(next.status, 200) << next.raw;
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["loaded"], true);
}

// Starts a long streamed answer from "echo" on `c` and waits for its first token.
void StartLongStream(RawConnection& c) {
  ASSERT_TRUE(c.Send("POST", "/v1/chat/completions", Chat("echo", "TOKENS=2000 DELAY_MS=20", {{"stream", true}}).dump()));
  ASSERT_NE(c.ReadUntil("Hello").find("Hello"), std::string::npos);
}

// The last event of a stream that must end with an error (closed by the server).
json LastErrorEvent(RawConnection& c) {
  RawResponse r = c.ReadResponse(std::chrono::seconds(30));
  EXPECT_TRUE(c.closed_by_peer());
  std::vector<std::string> events = Events(r.body);
  if (events.empty()) return json();
  json last = json::parse(events.back(), nullptr, false);
  EXPECT_TRUE(last.is_object() && last.contains("error")) << r.body;  // the client is told, not left guessing
  return last;
}

TEST_F(OpenAiTest, UnloadMidStreamIsNotACrash) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  RawConnection c(server.port());
  StartLongStream(c);
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"echo"})").status, 200);
  json last = LastErrorEvent(c);
  EXPECT_EQ(last["error"]["code"], "engine_error");  // not engine_crashed: it was asked to stop
  json model = server.Call("GET", "/api/models/echo").body;
  EXPECT_EQ(model["compatibility_status"], "compatible");
  EXPECT_EQ(model["attempts"].size(), 1u);  // only the load: no crash recorded
}

TEST_F(OpenAiTest, ServerStoppedMidStreamEndsTheStreamAndTheEngine) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  RawConnection c(server.port());
  StartLongStream(c);
  const int engine_pid = EngineStats("echo").value("pid", 0);
  ASSERT_GT(engine_pid, 0);
  EXPECT_EQ(server.Stop(), 0);  // SIGTERM
  json last = LastErrorEvent(c);
  EXPECT_EQ(last["error"]["code"], "engine_error");
  EXPECT_FALSE(ProcessAlive(engine_pid));  // the engine does not survive the server
}

TEST_F(OpenAiTest, HundredConcurrentRequestsAgainstTwoSlotsAndAQueueOfEight) {
  Server server(data(), ConfigArgs("max_queue = 8\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  AddEngine(server, "echo", {{"n_parallel", 2}});
  const std::string body = Chat("echo", "TOKENS=5 DELAY_MS=200").dump();
  std::vector<std::future<HttpReply>> replies;
  for (int i = 0; i < 100; ++i) {
    replies.push_back(std::async(std::launch::async, [&] { return server.Call("POST", "/v1/chat/completions", body); }));
  }
  int ok = 0, full = 0;
  for (auto& f : replies) {
    HttpReply r = f.get();  // each returns: none lost or hung (the client gives up after 120 s)
    if (r.status == 200) {
      ++ok;
      EXPECT_EQ(r.body["choices"][0]["message"]["content"], "Hello w1 w2 w3 w4") << r.raw;
    } else {
      ++full;
      ExpectOpenAiError(r, 429, "queue_full", "over the queue");
    }
  }
  EXPECT_EQ(ok + full, 100);
  EXPECT_GE(ok, 10);   // 2 in the engine + 8 waiting were admitted at least
  EXPECT_GE(full, 1);  // 100 arrive while 10 take ~5 s
  json s = EngineStats("echo");
  EXPECT_LE(s["max_in_flight"].get<int>(), 2) << s;  // never more than n_parallel in the engine
  EXPECT_EQ(s["completed"].get<int>(), ok) << s;
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["attempts"].size(), 1u);  // one load for all
  EXPECT_TRUE(server.Alive());
}

TEST_F(OpenAiTest, KeepAliveZeroUnloadsAfterTheResponse) {
  Server server(data(), ConfigArgs("keep_alive = \"-1\"\n"));
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  ASSERT_EQ(server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=1")).status, 200);
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["loaded"], true);
  ASSERT_EQ(server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=1", {{"keep_alive", "0"}})).status, 200);
  bool unloaded = false;
  for (int i = 0; i < 300 && !unloaded; ++i) {
    unloaded = server.Call("GET", "/api/models/echo").body["loaded"] == false;
    if (!unloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(unloaded);
  json model = server.Call("GET", "/api/models/echo").body;
  EXPECT_EQ(model["compatibility_status"], "compatible");  // an idle unload is not a failure
  EXPECT_FALSE(model.contains("last_error") && model["last_error"].is_string()) << model.dump();
  // The next request loads it again.
  EXPECT_EQ(server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=1")).status, 200);
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["attempts"].size(), 2u);
  ExpectOpenAiError(server.Call("POST", "/v1/chat/completions", Chat("echo", "x", {{"keep_alive", "soon"}})), 400,
                    "invalid_request", "bad keep_alive");
}

// Issue 20: a request that finds its model unloaded reads the model's row
// once and passes it down; the load job reads it again only when the
// registry was written since (a PATCH while the request waited).
TEST_F(OpenAiTest, ACallThatLoadsItsModelReadsTheRowOnce) {
  Server server(data(), ConfigArgs(), {{"MODELWARDEN_LOG", "debug"}});
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  ASSERT_EQ(server.Call("POST", "/v1/chat/completions", Chat("echo", "TOKENS=1")).status, 200);
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["loaded"], true);
  EXPECT_EQ(server.Stderr().find("model=echo read again"), std::string::npos) << server.Stderr();
}

TEST_F(OpenAiTest, DegradedModelServesWithAWarningHeader) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  ASSERT_EQ(server.Call("PATCH", "/api/models/echo/config",
                        R"({"compatibility_status":"degraded","compatibility_notes":"Intermittent issue detected"})").status, 200);
  RawResponse r = RawRequest(server.port(), "POST", "/v1/chat/completions", Chat("echo", "TOKENS=1").dump());
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(r.headers.count("x-modelwarden-warning")) << r.body;
  EXPECT_NE(r.headers["x-modelwarden-warning"].find("degraded"), std::string::npos);
}

// `modelwarden --url URL run ...` with pipes on stdin and stdout.
struct RunProcessPipes {
  pid_t pid = -1;
  int in = -1;
  int out = -1;
  std::string output;
  // Reads stdout until `needle` appears or it closes (~30 s at most).
  bool ReadUntil(const std::string& needle) {
    for (int i = 0; i < 300 && output.find(needle) == std::string::npos; ++i) {
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(out, buf, sizeof(buf));
      if (n <= 0) break;
      output.append(buf, static_cast<size_t>(n));
    }
    return output.find(needle) != std::string::npos;
  }
  int Wait() {
    ReadUntil("\x01never");  // drain until it closes
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
};

RunProcessPipes StartRun(Server& server, const std::vector<std::string>& args) {
  int in[2], out[2];
  RunProcessPipes p;
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return p;
  p.pid = ::fork();
  if (p.pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    std::vector<std::string> argv = {(BinDir() / "modelwarden").string(), "--url", server.url(), "run"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c;
    for (auto& a : argv) c.push_back(a.data());
    c.push_back(nullptr);
    ::execv(c[0], c.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  p.in = in[1];
  p.out = out[0];
  return p;
}

TEST_F(OpenAiTest, CliRunStreamsAnAnswer) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  ProcessResult one = server.Cli({"run", "echo", "TOKENS=3"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "Hello w1 w2\n");
  ProcessResult unknown = server.Cli({"run", "nope", "hi"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("model_not_found"), std::string::npos) << unknown.err;
  ASSERT_EQ(server.Call("PATCH", "/api/models/echo/config", R"({"compatibility_status":"incompatible"})").status, 200);
  server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"echo"})");
  EXPECT_EQ(server.Cli({"run", "echo", "hi"}).exit_code, 3);
  ASSERT_EQ(server.Call("PATCH", "/api/models/echo/config", R"({"compatibility_status":"compatible"})").status, 200);

  // Interactive: one answer per line, the conversation kept, /bye leaves.
  RunProcessPipes chat = StartRun(server, {"echo"});
  ASSERT_GT(chat.pid, 0);
  const std::string lines = "TOKENS=2\nTOKENS=1\n/bye\n";
  ASSERT_EQ(::write(chat.in, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  ::close(chat.in);
  EXPECT_EQ(chat.Wait(), 0);
  EXPECT_EQ(chat.output, "Hello w1\nHello\n");
}

// SPEC §18, issue 23 point 7: run's options and its slash commands.
TEST_F(OpenAiTest, CliRunOptionsAndSlashCommands) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  ProcessResult capped = server.Cli({"run", "echo", "--max-tokens", "2", "TOKENS=50"});
  EXPECT_EQ(capped.exit_code, 0) << capped.err;
  EXPECT_EQ(capped.out, "Hello w1\n");
  ProcessResult as_json = server.Cli({"--json", "run", "echo", "--system", "be brief", "--temperature", "0.2", "ROLES"});
  EXPECT_EQ(as_json.exit_code, 0) << as_json.err;
  json answer = json::parse(as_json.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << as_json.out;
  EXPECT_EQ(answer["choices"][0]["message"]["content"], "system,user") << as_json.out;
  EXPECT_EQ(answer["model"], "echo");
  EXPECT_EQ(server.Cli({"run", "echo", "--max-tokens", "0", "hi"}).exit_code, 2);
  EXPECT_EQ(server.Cli({"run", "echo", "--temperature", "warm", "hi"}).exit_code, 2);

  // Inside: /help, /set, /clear are the CLI's, never sent to the model.
  RunProcessPipes chat = StartRun(server, {"echo"});
  ASSERT_GT(chat.pid, 0);
  const std::string lines = "/help\n/set max-tokens 1\nTOKENS=5\n/clear\n/set system hi\n/set colour red\n/nope\n/bye\n";
  ASSERT_EQ(::write(chat.in, lines.data(), lines.size()), static_cast<ssize_t>(lines.size()));
  ::close(chat.in);
  EXPECT_EQ(chat.Wait(), 0);
  for (const char* expected : {"/set system TEXT", "max-tokens set to 1.", "Hello\n", "Conversation cleared.",
                               "System prompt set.", "unknown setting 'colour'", "unknown command '/nope'"}) {
    EXPECT_NE(chat.output.find(expected), std::string::npos) << expected << " in: " << chat.output;
  }
  EXPECT_EQ(chat.output.find("Hello w1"), std::string::npos) << chat.output;  // max-tokens 1 held
  EXPECT_EQ(EngineStats("echo")["completed"], 3) << EngineStats("echo");  // capped, as_json, one chat line
}

TEST_F(OpenAiTest, CliRunCtrlCStopsTheGenerationNotTheModel) {
  Server server(data(), ConfigArgs());
  ASSERT_TRUE(server.started());
  AddEngine(server, "echo");
  RunProcessPipes run = StartRun(server, {"echo", "TOKENS=2000 DELAY_MS=20"});
  ASSERT_GT(run.pid, 0);
  ASSERT_TRUE(run.ReadUntil("Hello w1")) << run.output;
  ::kill(run.pid, SIGINT);
  EXPECT_EQ(run.Wait(), 130);
  EXPECT_NE(run.output.find("[stopped]"), std::string::npos) << run.output;
  ASSERT_TRUE(WaitStats("echo", [](const json& s) { return s["cancelled"] == 1 && s["in_flight"] == 0; }))
      << EngineStats("echo");
  EXPECT_EQ(server.Call("GET", "/api/models/echo").body["loaded"], true);
}

}  // namespace
}  // namespace mw::itest
