// /v1 (SPEC §10) against the real server and the real engine: a
// make-test-model GGUF loaded by modelwarden-worker (llama.cpp's own server
// code). Random weights sample tokens whose bytes are often not valid UTF-8;
// llama.cpp's output parser threw on them, so such a generation ended as a
// 502 (or a stream ending in an error event) with its text lost. The text
// guard in the engine (src/worker/text_guard.h) repairs the bytes first:
// every generation that ran is an answer. And a real engine that crashes in
// the middle of a stream (SIGSEGV sent to the real worker).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

const std::string kReplacement = "\xEF\xBF\xBD";

// The text of one choice: a completion's `text`, a chat message's `content`,
// or a chat chunk's `delta.content`.
std::string ChoiceText(const json& choice) {
  if (choice.contains("text") && choice["text"].is_string()) return choice["text"];
  for (const char* key : {"message", "delta"}) {
    if (choice.contains(key) && choice[key].contains("content") && choice[key]["content"].is_string()) {
      return choice[key]["content"];
    }
  }
  return "";
}

// Seeds 1..20 at default sampling, 32 tokens, prompt "Hello", n_threads 1:
// before the guard, on the machine where this was written, seeds 2, 6, 10 and
// 16 ended in an error on /v1/completions and 4, 12, 14, 15 and 18 on
// /v1/chat/completions (502 engine_error, or the stream's error event),
// streamed or not. Other CPUs may sample other bytes; 20 seeds on four forms
// make it near certain that some generations hold ill-formed bytes anywhere.
TEST(OpenAiLlamaTest, EveryGenerationOfARandomWeightModelIsAnAnswerInValidUtf8) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ASSERT_TRUE(MakeTestModel(data / "models" / "tiny.gguf"));
  Server server(data, ConfigArgs(dir.path(), "keep_alive = \"-1\"\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"},
                             {"load_config", {{"n_threads", 1}, {"n_ctx", 2048}}}}).status, 201);
  int replaced = 0;  // answers that hold U+FFFD: the repaired ones
  for (const std::string path : {"/v1/completions", "/v1/chat/completions"}) {
    for (const bool stream : {false, true}) {
      for (int seed = 1; seed <= 20; ++seed) {
        const std::string what = path + (stream ? " streamed" : "") + ", seed " + std::to_string(seed);
        json body = {{"model", "tiny"}, {"max_tokens", 32}, {"seed", seed}};
        if (path == "/v1/completions") {
          body["prompt"] = "Hello";
        } else {
          body["messages"] = {{{"role", "user"}, {"content", "Hello"}}};
        }
        std::string text;
        json usage;
        if (!stream) {
          // Call() parses the body with nlohmann::json, which refuses ill-formed UTF-8.
          HttpReply r = server.Call("POST", path, body);
          ASSERT_EQ(r.status, 200) << what << ": " << r.raw;
          ASSERT_TRUE(r.body.is_object() && r.body.contains("choices")) << what << ": " << r.raw;
          text = ChoiceText(r.body["choices"][0]);
          usage = r.body["usage"];
          // The engine reports its file path; the client gets the name it asked for (SPEC §20).
          EXPECT_EQ(r.body["model"], "tiny") << what;
          EXPECT_TRUE(r.body["choices"][0]["finish_reason"].is_string()) << what << ": " << r.raw;
        } else {
          body["stream"] = true;
          body["stream_options"] = {{"include_usage", true}};
          RawResponse r = RawRequest(server.port(), "POST", path, body.dump());
          ASSERT_EQ(r.status, 200) << what << ": " << r.body;
          std::vector<std::string> events = Events(r.body);
          ASSERT_FALSE(events.empty()) << what;
          EXPECT_EQ(events.back(), "[DONE]") << what << ": " << r.body;
          for (size_t i = 0; i + 1 < events.size(); ++i) {
            json chunk = json::parse(events[i], nullptr, false);  // refuses ill-formed UTF-8 too
            ASSERT_FALSE(chunk.is_discarded()) << what << ": " << events[i];
            ASSERT_FALSE(chunk.contains("error")) << what << ": " << events[i];
            EXPECT_EQ(chunk.value("model", ""), "tiny") << what << ": " << events[i];
            if (chunk.contains("choices") && !chunk["choices"].empty()) text += ChoiceText(chunk["choices"][0]);
            if (chunk.contains("usage") && chunk["usage"].is_object()) usage = chunk["usage"];
          }
        }
        EXPECT_FALSE(text.empty()) << what;
        EXPECT_FALSE(json::parse(json(text).dump(), nullptr, false).is_discarded()) << what;
        ASSERT_TRUE(usage.is_object()) << what;
        EXPECT_GT(usage.value("completion_tokens", 0), 0) << what << ": " << usage.dump();
        EXPECT_GT(usage.value("prompt_tokens", 0), 0) << what << ": " << usage.dump();
        if (text.find(kReplacement) != std::string::npos) ++replaced;
      }
    }
  }
  EXPECT_GT(replaced, 0) << "no generation held ill-formed bytes: the test did not reach the guard";
  json model = server.Call("GET", "/api/models/tiny").body;
  EXPECT_EQ(model["compatibility_status"], "compatible") << model.dump();
  EXPECT_EQ(model["attempts"].size(), 1u) << model.dump();  // one load served them all
  EXPECT_TRUE(server.Alive());
}

// SPEC §10, a worker that dies while serving, with the real engine: the
// stream has begun (a first token arrived) when the real worker gets SIGSEGV.
// It is frozen (SIGSTOP) the moment the first chunk is read, so the crash
// lands mid-generation however fast the machine is; the SIGSEGV is delivered
// when it runs again. The stream ends with an `engine_crashed` error event
// (no [DONE]), and the verdict is recorded: a closed attempt
// crashed_while_serving with the signal, and, after one successful load,
// `incompatible` (rule 3), so the next request is refused with 409.
// SPEC §18, issue 23 point 4: "embeddings": true alone serves /v1/embeddings
// (mean pooling for a model with none); set while loaded, the answer says it
// applies at the next load; `models set --load-config` names what it removed.
TEST(OpenAiLlamaTest, EmbeddingsWithOneKey) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ASSERT_TRUE(MakeTestModel(data / "models" / "tiny.gguf"));
  Server server(data);
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server.Cli({"models", "add", "tiny", "--file", "tiny.gguf", "--load-config", R"({"n_threads":1,"n_ctx":256})"})
                .exit_code,
            0);
  const std::string input = R"({"model":"tiny","input":"hello"})";
  HttpReply not_yet = server.Call("POST", "/v1/embeddings", input);
  EXPECT_EQ(not_yet.status, 400) << not_yet.raw;
  ASSERT_EQ(server.Cli({"load", "tiny"}).exit_code, 0);
  ProcessResult set = server.Cli({"models", "set", "tiny", "--load-config", R"({"n_ctx":256,"embeddings":true})"});
  EXPECT_EQ(set.exit_code, 0) << set.err;
  EXPECT_NE(set.out.find("removed: n_threads"), std::string::npos) << set.out;
  EXPECT_NE(set.err.find("applies at its next load (modelwarden unload tiny, then modelwarden load tiny)"),
            std::string::npos) << set.err;
  HttpReply patched = server.Call("PATCH", "/api/models/tiny/config", R"({"load_config":{"n_ctx":256,"embeddings":true}})");
  EXPECT_NE(patched.body.value("warning", "").find("applies at its next load"), std::string::npos) << patched.raw;
  ASSERT_EQ(server.Cli({"unload", "tiny"}).exit_code, 0);
  HttpReply embedded = server.Call("POST", "/v1/embeddings", input);
  ASSERT_EQ(embedded.status, 200) << embedded.raw;
  EXPECT_EQ(embedded.body["model"], "tiny");
  EXPECT_FALSE(embedded.body["data"][0]["embedding"].empty()) << embedded.raw;
}

TEST(OpenAiLlamaTest, ARealEngineThatCrashesMidStreamEndsItWithEngineCrashed) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ASSERT_TRUE(MakeTestModel(data / "models" / "tiny.gguf"));
  Server server(data, ConfigArgs(dir.path(), "keep_alive = \"-1\"\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_EQ(server
                .Call("POST", "/api/models",
                      json{{"model_name", "tiny"},
                           {"file_path", "tiny.gguf"},
                           {"load_config", {{"n_threads", 1}, {"n_ctx", 2048}}}})
                .status,
            201);
  HttpReply loaded = server.Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  ASSERT_EQ(loaded.status, 200) << loaded.raw;
  const pid_t worker = RealWorkerUnder(dir.path());
  ASSERT_GT(worker, 0) << "no modelwarden-worker process serves " << (data / "models" / "tiny.gguf");

  RawConnection stream(server.port());
  ASSERT_TRUE(stream.connected());
  // ignore_eos (llama.cpp's, passed through): a random-weight model may
  // sample its end of text at once; this generation runs 1500 tokens.
  const json body = {{"model", "tiny"},
                     {"max_tokens", 1500},
                     {"ignore_eos", true},
                     {"seed", 1},
                     {"stream", true},
                     {"messages", {{{"role", "user"}, {"content", "Hello"}}}}};
  ASSERT_TRUE(stream.Send("POST", "/v1/chat/completions", body.dump()));
  const std::string first = stream.ReadUntil("\"content\"", std::chrono::seconds(60));
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  ASSERT_NE(first.find("\"content\""), std::string::npos) << "no token streamed: " << first;
  ASSERT_EQ(first.find("[DONE]"), std::string::npos) << "the generation ended before the crash: " << first;
  ASSERT_EQ(::kill(worker, SIGSEGV), 0);
  ASSERT_EQ(::kill(worker, SIGCONT), 0);

  RawResponse r = stream.ReadResponse(std::chrono::seconds(60));
  ASSERT_EQ(r.status, 200) << r.body;  // the stream had begun
  std::vector<std::string> events = Events(r.body);
  ASSERT_GE(events.size(), 2u) << r.body;
  EXPECT_EQ(std::count(events.begin(), events.end(), "[DONE]"), 0) << r.body;
  json error = json::parse(events.back(), nullptr, false);
  ASSERT_TRUE(error.is_object() && error.contains("error")) << r.body;
  EXPECT_EQ(error["error"]["code"], "engine_crashed") << r.body;
  EXPECT_NE(error["error"]["message"].get<std::string>().find("SIGSEGV"), std::string::npos) << r.body;
  EXPECT_TRUE(json::parse(events.front(), nullptr, false).contains("choices"))
      << r.body;  // tokens came first

  json model = server.Call("GET", "/api/models/tiny").body;
  EXPECT_EQ(model["loaded"], false) << model.dump();
  EXPECT_EQ(model["last_error"], error["error"]["message"]) << model.dump();
  EXPECT_EQ(model["compatibility_status"], "incompatible") << model.dump();
  ASSERT_EQ(model["attempts"].size(), 2u) << model.dump();
  const json& death = model["attempts"][0];
  EXPECT_EQ(death["outcome"], "crashed_while_serving") << model.dump();
  EXPECT_EQ(death["signal"], "SIGSEGV") << model.dump();
  EXPECT_EQ(death["status_before"], "compatible") << model.dump();
  EXPECT_EQ(death["status_after"], "incompatible") << model.dump();
  EXPECT_FALSE(ProcessAlive(worker));
  HttpReply refused =
      server.Call("POST", "/v1/chat/completions",
                  json{{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_TRUE(server.Alive());
}

}  // namespace
}  // namespace mw::itest
