// The request that finds its model unloaded verifies the load with its own
// first token (SPEC §16), against the real `modelwarden serve`.
// mw-fake-engine stands in for modelwarden-worker (configuration key
// `worker`): it expects `--verify request`, listens on the socket it was
// given, sends `ready`, and then either dies of SIGSEGV on the first request
// it receives (an engine crashing on that request's first decode) or holds
// every request unanswered and lets the server's word decide (`verify`: its
// own decode, then `loaded`; `verified`: an error, since no token was made).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "fault_fixture.h"

namespace mw::testing_harness {
namespace {

const Json kChat = {{"model", "cold"}, {"max_tokens", 4}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}};

class ColdRequestTest : public FaultFixture {
 protected:
  void StartWithFakeWorker(const std::string& mode) {
    ASSERT_TRUE(StartServer({{"MW_FAKE_ENGINE_SCRIPT", "--then\ncold-ready:" + mode}},
                            "worker = \"" + BinPath("mw-fake-engine") + "\"\nauto_fix = false\n"));
    ASSERT_TRUE(AddTestModelFile("cold.gguf"));
    ASSERT_EQ(RegisterModel(url(), {{"model_name", "cold"}, {"file_path", "cold.gguf"}}).status, 201);
  }
};

void ExpectCrashedAndIncompatible(const Json& model) {
  EXPECT_EQ(model.value("compatibility_status", ""), "incompatible") << model.dump();
  EXPECT_FALSE(model.value("loaded", true)) << model.dump();
  ASSERT_EQ(model["attempts"].size(), 1u) << model.dump();
  EXPECT_EQ(model["attempts"][0].value("outcome", ""), "crashed") << model.dump();
  EXPECT_EQ(model["attempts"][0].value("signal", ""), "SIGSEGV") << model.dump();
}

// A crash on the request's own first decode is a failed load, as if the
// worker's verification decode had crashed: the attempt is crashed, the
// model incompatible (rule 3), and that request gets the classified error.
// The engine is the worker the server started ahead (its pid was there
// before the request): the crash is classified as before.
TEST_F(ColdRequestTest, EngineCrashingOnTheRequestsFirstDecodeFailsTheLoadAndAnswersThatRequest) {
  StartWithFakeWorker("segv");
  if (HasFatalFailure()) return;
  const pid_t prestarted = PreStartedWorkerPid();
  ASSERT_GT(prestarted, 0) << server().Log();
  HttpResult r = Http(url(), "POST", "/v1/chat/completions", kChat);
  EXPECT_EQ(r.status, 422) << r.raw;
  const Json& error = r.body["error"];
  EXPECT_EQ(error.value("code", ""), "load_failed") << r.raw;
  const Json& cls = error["classification"];
  EXPECT_EQ(cls.value("outcome", ""), "crashed") << r.raw;
  EXPECT_EQ(cls.value("signal", ""), "SIGSEGV") << r.raw;
  EXPECT_NE(cls.value("log_excerpt", "").find("fake worker: decoding the first request"), std::string::npos) << r.raw;
  EXPECT_NE(cls.value("log_excerpt", "").find("fake worker: pre-started pid " + std::to_string(prestarted) + "\n"),
            std::string::npos)
      << r.raw;
  EXPECT_NE(server().Log().find("pid=" + std::to_string(prestarted) + " (pre-started worker)"), std::string::npos);
  ExpectCrashedAndIncompatible(GetModelJson("cold"));
  ExpectServing();
}

// The same crash after the engine's 200 head (llama.cpp sends it before the
// prompt runs): the head is no token, the load fails, and the stream that
// had begun ends with the load's error event.
TEST_F(ColdRequestTest, EngineCrashingAfterItsHeadFailsTheLoadAndEndsTheStreamWithIt) {
  StartWithFakeWorker("head-segv");
  if (HasFatalFailure()) return;
  Json streamed = kChat;
  streamed["stream"] = true;
  HttpResult r = Http(url(), "POST", "/v1/chat/completions", streamed);
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.raw.find("\"load_failed\""), std::string::npos) << r.raw;
  EXPECT_NE(r.raw.find("SIGSEGV"), std::string::npos) << r.raw;
  ExpectCrashedAndIncompatible(GetModelJson("cold"));
  ExpectServing();
}

// A client that goes away during the cold load never makes a token: the load
// becomes a success only through the worker's own decode (the fake answers
// `verified` with a failure and `verify` with `loaded`).
TEST_F(ColdRequestTest, ClientGoneBeforeTheFirstTokenLeavesTheDecodeToTheWorker) {
  StartWithFakeWorker("hold");
  if (HasFatalFailure()) return;
  // The fake engine never answers: the client gives up after a second.
  HttpResult gone = Http(url(), "POST", "/v1/chat/completions", kChat, std::chrono::seconds(1));
  EXPECT_EQ(gone.status, 0) << gone.raw;
  Json model;
  ASSERT_TRUE(PollUntil(
      [&] {
        model = GetModelJson("cold");
        return model.value("compatibility_status", "") != "testing";
      },
      std::chrono::seconds(30)))
      << model.dump();
  EXPECT_EQ(model.value("compatibility_status", ""), "compatible") << model.dump();
  EXPECT_TRUE(model.value("loaded", false)) << model.dump();
  ASSERT_FALSE(model["attempts"].empty()) << model.dump();
  EXPECT_EQ(model["attempts"][0].value("outcome", ""), "success") << model.dump();
  ASSERT_EQ(Http(url(), "POST", "/api/orchestrate/unload", {{"model_name", "cold"}}).status, 200);
}

// An unload while the request waits on the engine it was handed at `ready`
// stops that engine on purpose: the request answers at once, as for an
// unloaded model, without waiting (death_wait_ms) for a death that is not one.
TEST_F(ColdRequestTest, UnloadDuringTheColdPhaseAnswersTheRequestWithoutWaitingForADeath) {
  StartWithFakeWorker("hold");
  if (HasFatalFailure()) return;
  HttpResult answer;
  std::thread request([&] { answer = Http(url(), "POST", "/v1/chat/completions", kChat, std::chrono::seconds(60)); });
  const bool ready = PollUntil([&] { return server().Log().find("the first request verifies it") != std::string::npos; },
                               std::chrono::milliseconds(30000));
  HttpResult unload = Http(url(), "POST", "/api/orchestrate/unload", {{"model_name", "cold"}});
  request.join();
  ASSERT_TRUE(ready) << server().Log();
  EXPECT_EQ(unload.status, 200) << unload.raw;
  EXPECT_NE(answer.status, 0) << answer.error;
  EXPECT_EQ(server().Log().find("did not die within"), std::string::npos) << server().Log();
  // The unload answered after the stopped load recorded its attempt: a load
  // asked now starts anew instead of joining the cancelled one.
  const Json model = GetModelJson("cold");
  EXPECT_FALSE(model.value("loaded", true)) << model.dump();
  EXPECT_NE(model.value("compatibility_status", ""), "testing") << model.dump();
  ASSERT_FALSE(model["attempts"].empty()) << model.dump();
  EXPECT_EQ(model["attempts"][0].value("outcome", ""), "cancelled") << model.dump();
}

}  // namespace
}  // namespace mw::testing_harness
