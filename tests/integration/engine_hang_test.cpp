// SPEC §19 against the real server and the real engine (make-test-model
// GGUFs served by modelwarden-worker): an engine that stops answering is
// judged by the health watch (short timeouts set here), and a request past
// its timeout gets 504 while the engine keeps serving. Also the /metrics
// queue depth, with a request held in a stopped engine.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "raw_http.h"

namespace mw::itest {
namespace {

json Register(const std::string& name) {
  return json{{"model_name", name}, {"file_path", name + ".gguf"}, {"load_config", {{"n_threads", 1}, {"n_ctx", 2048}}}};
}

// A generation that runs long: a random-weight model may sample its end of
// text at once, so ignore_eos (llama.cpp's, passed through).
json LongCompletion(const std::string& model) {
  return json{{"model", model}, {"prompt", "Hello"}, {"max_tokens", 1500}, {"ignore_eos", true}, {"seed", 1}};
}

// A server (keep_alive -1) with the make-test-model "tiny" registered and
// loaded; nullptr (the failure reported) when that fails.
std::unique_ptr<Server> ServeTinyLoaded(const TempDir& dir) {
  const auto data = dir.path() / "data";
  if (!MakeTestModel(data / "models" / "tiny.gguf")) {
    ADD_FAILURE() << "make-test-model failed";
    return nullptr;
  }
  auto server = std::make_unique<Server>(data, ConfigArgs(dir.path(), "keep_alive = \"-1\"\n"));
  if (!server->started()) {
    ADD_FAILURE() << server->startup_output();
    return nullptr;
  }
  HttpReply registered = server->Call("POST", "/api/models", Register("tiny"));
  HttpReply loaded = server->Call("POST", "/api/orchestrate/load", R"({"model_name":"tiny"})");
  if (registered.status != 201 || loaded.status != 200) {
    ADD_FAILURE() << registered.raw << "\n" << loaded.raw;
    return nullptr;
  }
  return server;
}

// Polls GET /api/status until `n` /v1 requests are in the engine of the
// loaded model `name` or waiting for it (requests_in_flight); false after ~15 s.
bool WaitForRequests(Server& server, const std::string& name, int n) {
  for (int i = 0; i < 300; ++i) {
    for (const json& m : server.Call("GET", "/api/status").body.value("loaded_models", json::array())) {
      if (m.value("model_name", "") == name && m.value("requests_in_flight", -1) == n) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// A SIGSTOPped engine with a request in it and one waiting in the queue
// behind it (n_parallel 1): both answer 502 engine_hung once the watch
// judges it (hang_timeout_s = 3), the attempt hung_while_serving and the
// status (rule 3: one successful load before, so incompatible) recorded; a
// request to another model is served meanwhile; a SIGCONT after the kill
// changes nothing.
TEST(EngineHangTest, ASigstoppedEngineIsStoppedAsHungAndItsRequestAnswersEngineHung) {
  TempDir dir;
  const auto data = dir.path() / "data";
  ASSERT_TRUE(MakeTestModel(data / "models" / "tiny.gguf"));
  ASSERT_TRUE(MakeTestModel(data / "models" / "other.gguf"));
  Server server(data, ConfigArgs(dir.path(), "keep_alive = \"-1\"\nhealth_interval_s = 1\nhang_timeout_s = 3\n"));
  ASSERT_TRUE(server.started()) << server.startup_output();
  for (const char* name : {"tiny", "other"}) {
    ASSERT_EQ(server.Call("POST", "/api/models", Register(name)).status, 201);
    HttpReply loaded = server.Call("POST", "/api/orchestrate/load", json{{"model_name", name}});
    ASSERT_EQ(loaded.status, 200) << loaded.raw;
  }
  const pid_t worker = RealWorkerUnder(data / "models" / "tiny.gguf");
  ASSERT_GT(worker, 0);

  RawConnection waiting(server.port());
  ASSERT_TRUE(waiting.connected());
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  ASSERT_TRUE(waiting.Send("POST", "/v1/completions", LongCompletion("tiny").dump()));
  RawConnection queued(server.port());
  ASSERT_TRUE(queued.connected());
  ASSERT_TRUE(queued.Send("POST", "/v1/completions", LongCompletion("tiny").dump()));
  ASSERT_TRUE(WaitForRequests(server, "tiny", 2));  // n_parallel 1: one in the engine, one waiting

  // Meanwhile another model's engine answers.
  HttpReply served = server.Call("POST", "/v1/completions", json{{"model", "other"}, {"prompt", "Hi"}, {"max_tokens", 4}});
  EXPECT_EQ(served.status, 200) << served.raw;

  RawResponse r = waiting.ReadResponse(std::chrono::seconds(90));
  ASSERT_EQ(r.status, 502) << r.body;
  json error = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(error.is_object() && error.contains("error")) << r.body;
  EXPECT_EQ(error["error"]["code"], "engine_hung") << r.body;
  EXPECT_NE(error["error"]["message"].get<std::string>().find("did not answer /health"), std::string::npos) << r.body;
  EXPECT_FALSE(ProcessAlive(worker));
  // The one that waited in the queue for that engine: the same answer, not a reload or a 409.
  RawResponse q = queued.ReadResponse(std::chrono::seconds(90));
  ASSERT_EQ(q.status, 502) << q.body;
  json queued_error = json::parse(q.body, nullptr, false);
  ASSERT_TRUE(queued_error.is_object() && queued_error.contains("error")) << q.body;
  EXPECT_EQ(queued_error["error"]["code"], "engine_hung") << q.body;

  json model = server.Call("GET", "/api/models/tiny").body;
  EXPECT_EQ(model["loaded"], false) << model.dump();
  EXPECT_EQ(model["compatibility_status"], "incompatible") << model.dump();
  EXPECT_TRUE(model["last_hung_at"].is_string()) << model.dump();
  ASSERT_EQ(model["attempts"].size(), 2u) << model.dump();
  const json& hang = model["attempts"][0];
  EXPECT_EQ(hang["outcome"], "hung_while_serving") << model.dump();
  EXPECT_EQ(hang["status_before"], "compatible") << model.dump();
  EXPECT_EQ(hang["status_after"], "incompatible") << model.dump();
  EXPECT_TRUE(server.Call("GET", "/metrics").raw.find("modelwarden_engine_hangs_total{model=\"tiny\"} 1") !=
              std::string::npos);

  // SIGCONT after the kill changes nothing: no process to wake, no new record.
  ::kill(worker, SIGCONT);
  json after = server.Call("GET", "/api/models/tiny").body;
  EXPECT_EQ(after["attempts"].size(), 2u) << after.dump();
  EXPECT_EQ(after["compatibility_status"], "incompatible") << after.dump();
  json other = server.Call("GET", "/api/models/other").body;
  EXPECT_EQ(other["loaded"], true) << other.dump();
  EXPECT_EQ(other["compatibility_status"], "compatible") << other.dump();
  EXPECT_TRUE(other["last_hung_at"].is_null()) << other.dump();
  EXPECT_TRUE(server.Alive());
}

// A request past its `timeout` gets 504 request_timeout (a stream ends with
// that error event), its generation is cancelled, and the engine serves the
// next request: still loaded, no attempt recorded.
TEST(EngineHangTest, ARequestPastItsTimeoutGets504AndTheEngineServesTheNext) {
  TempDir dir;
  std::unique_ptr<Server> served = ServeTinyLoaded(dir);
  ASSERT_TRUE(served);
  Server& server = *served;

  // 1 ms: past it before the engine's first piece is handed over.
  json body = LongCompletion("tiny");
  body["timeout"] = "1ms";
  HttpReply timed_out = server.Call("POST", "/v1/completions", body);
  ASSERT_EQ(timed_out.status, 504) << timed_out.raw;
  EXPECT_EQ(timed_out.body["error"]["code"], "request_timeout") << timed_out.raw;

  body["stream"] = true;
  RawResponse streamed = RawRequest(server.port(), "POST", "/v1/completions", body.dump());
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  std::vector<std::string> events = Events(streamed.body);
  ASSERT_FALSE(events.empty()) << streamed.body;
  json last = json::parse(events.back(), nullptr, false);
  ASSERT_TRUE(last.is_object() && last.contains("error")) << streamed.body;
  EXPECT_EQ(last["error"]["code"], "request_timeout") << streamed.body;

  HttpReply next = server.Call("POST", "/v1/completions", json{{"model", "tiny"}, {"prompt", "Hi"}, {"max_tokens", 4}});
  EXPECT_EQ(next.status, 200) << next.raw;
  json model = server.Call("GET", "/api/models/tiny").body;
  EXPECT_EQ(model["loaded"], true) << model.dump();
  EXPECT_EQ(model["attempts"].size(), 1u) << model.dump();
  EXPECT_TRUE(server.Call("GET", "/metrics").raw.find("modelwarden_request_timeouts_total{model=\"tiny\"} 2") !=
              std::string::npos);
}

// modelwarden_queue_depth counts the /v1 requests waiting for a slot: a
// request behind one held in a 1-slot engine (SIGSTOPped, so it stays there;
// the watch's 60 s are far) shows 1, and 0 once it got the slot (SIGCONT).
TEST(EngineHangTest, TheQueueDepthCountsARequestWaitingForABusyEngine) {
  TempDir dir;
  std::unique_ptr<Server> served = ServeTinyLoaded(dir);
  ASSERT_TRUE(served);
  Server& server = *served;
  const pid_t worker = RealWorkerUnder(dir.path() / "data" / "models" / "tiny.gguf");
  ASSERT_GT(worker, 0);
  auto depth_is = [&](int n) {
    return server.Call("GET", "/metrics").raw.find("\nmodelwarden_queue_depth " + std::to_string(n) + "\n") !=
           std::string::npos;
  };
  EXPECT_TRUE(depth_is(0));

  const json small = {{"model", "tiny"}, {"prompt", "Hello"}, {"max_tokens", 4}};
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  RawConnection in_engine(server.port());
  ASSERT_TRUE(in_engine.connected());
  ASSERT_TRUE(in_engine.Send("POST", "/v1/completions", small.dump()));
  RawConnection waiting(server.port());
  ASSERT_TRUE(waiting.connected());
  ASSERT_TRUE(waiting.Send("POST", "/v1/completions", small.dump()));
  ASSERT_TRUE(WaitForRequests(server, "tiny", 2));  // n_parallel 1: one in the engine, one waiting
  EXPECT_TRUE(depth_is(1)) << server.Call("GET", "/metrics").raw;

  ASSERT_EQ(::kill(worker, SIGCONT), 0);
  EXPECT_EQ(in_engine.ReadResponse(std::chrono::seconds(60)).status, 200);
  EXPECT_EQ(waiting.ReadResponse(std::chrono::seconds(60)).status, 200);
  EXPECT_TRUE(depth_is(0)) << server.Call("GET", "/metrics").raw;
}

}  // namespace
}  // namespace mw::itest
