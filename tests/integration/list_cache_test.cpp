// GET /api/models is served from a cached body while nothing changed. After
// every kind of change (register, notes, status, load, unload, failed load,
// worker death after loading, delete) the list, read right after the
// change, must show it: each entry equals the model's own GET
// /api/models/{name} (which is never cached) minus its attempts and
// verdicts (detail only).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "harness.h"

namespace mw::itest {
namespace {

// The list, after checking every entry against the model's detail view.
json CheckedList(Server& server, const std::string& what) {
  HttpReply list = server.Call("GET", "/api/models");
  EXPECT_EQ(list.status, 200) << what;
  for (const json& model : list.body["models"]) {
    HttpReply one = server.Call("GET", "/api/models/" + model["model_name"].get<std::string>());
    EXPECT_EQ(one.status, 200) << what;
    json detail = one.body;
    detail.erase("attempts");
    detail.erase("verdicts");
    EXPECT_EQ(model, detail) << what;
  }
  // Asked again with nothing changed in between: the same answer.
  EXPECT_EQ(server.Call("GET", "/api/models").body, list.body) << what;
  return list.body["models"];
}

json Find(const json& models, const std::string& name) {
  for (const json& m : models) {
    if (m["model_name"] == name) return m;
  }
  return json();
}

TEST(ModelListCache, ListFollowsEveryChange) {
  TempDir dir;
  Server server(dir.path() / "data", AllowApiCommands(dir.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  EXPECT_TRUE(CheckedList(server, "empty").empty());

  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("a", {"--then", "ready"})).status, 201);
  ASSERT_EQ(server.Call("POST", "/api/models", CommandModel("b", {"--stderr", "fatal: bad", "--then", "exit1"})).status,
            201);
  json models = CheckedList(server, "registered");
  ASSERT_EQ(models.size(), 2u);

  ASSERT_EQ(server.Call("PATCH", "/api/models/a/config", R"({"compatibility_notes":"hello"})").status, 200);
  EXPECT_EQ(Find(CheckedList(server, "notes"), "a")["compatibility_notes"], "hello");

  ASSERT_EQ(server.Call("PATCH", "/api/models/a/config", R"({"compatibility_status":"degraded"})").status, 200);
  EXPECT_EQ(Find(CheckedList(server, "status"), "a")["compatibility_status"], "degraded");

  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"a"})").status, 200);
  json a = Find(CheckedList(server, "loaded"), "a");
  EXPECT_EQ(a["loaded"], true);
  EXPECT_EQ(a["load_state"], "loaded");
  EXPECT_EQ(a["compatibility_status"], "compatible");
  EXPECT_EQ(a["total_loads"], 1);

  ASSERT_EQ(server.Call("POST", "/api/orchestrate/unload", R"({"model_name":"a"})").status, 200);
  a = Find(CheckedList(server, "unloaded"), "a");
  EXPECT_EQ(a["loaded"], false);
  EXPECT_EQ(a["load_state"], "idle");

  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"b"})").status, 422);
  json b = Find(CheckedList(server, "failed load"), "b");
  EXPECT_EQ(b["compatibility_status"], "incompatible");
  EXPECT_EQ(b["total_failures"], 1);
  EXPECT_TRUE(b["last_error"].is_string());

  // Loads (the ready line), then dies on its own: the list must notice.
  ASSERT_EQ(server.Call("POST", "/api/models",
                        CommandModel("c", {"--print", "ready", "--sleep-ms", "300", "--then", "segv"}))
                .status,
            201);
  ASSERT_EQ(server.Call("POST", "/api/orchestrate/load", R"({"model_name":"c"})").status, 200);
  json c;
  for (int i = 0; i < 100; ++i) {
    c = Find(server.Call("GET", "/api/models").body["models"], "c");
    if (c["loaded"] == false) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(c["loaded"], false);
  c = Find(CheckedList(server, "died after loading"), "c");
  EXPECT_TRUE(c["last_error"].is_string());

  ASSERT_EQ(server.Call("DELETE", "/api/models/b").status, 200);
  models = CheckedList(server, "deleted");
  ASSERT_EQ(models.size(), 2u);
  EXPECT_TRUE(Find(models, "b").is_null());
}

}  // namespace
}  // namespace mw::itest
