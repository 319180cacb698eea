// SPEC §15 against the real server, the real engine and a real Vulkan
// driver: Mesa's lavapipe (Debian mesa-vulkan-drivers, installed by
// scripts/bootstrap) runs Vulkan on the CPU, and ggml's Vulkan backend
// exposes it as Vulkan0 when GGML_VK_VISIBLE_DEVICES=0 names it. Models are
// tiny: llvmpipe compiles its shaders slowly.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "harness.h"

namespace mw::itest {
namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::string> kVulkan0 = {{"GGML_VK_VISIBLE_DEVICES", "0"}};
// ggml's Vulkan backend sees no device: lavapipe is a CPU-type device.
const std::map<std::string, std::string> kNoGpu = {{"GGML_VK_VISIBLE_DEVICES", ""}};

class GpuTest : public ::testing::Test {
 protected:
  fs::path data() const { return dir_.path() / "data"; }
  TempDir dir_;
};

json Model(Server& s, const std::string& name) { return s.Call("GET", "/api/models/" + name).body; }
HttpReply Load(Server& s, const std::string& name) {
  return s.Call("POST", "/api/orchestrate/load", json{{"model_name", name}});
}

// The device of `status` whose id is `id`, or null.
json Device(const json& status, const std::string& id) {
  for (const json& d : status["devices"]) {
    if (d.value("id", "") == id) return d;
  }
  return nullptr;
}

// GET /api/status once the probe has answered (devices listed); ~30 s at most.
json ProbedStatus(Server& s) {
  for (int i = 0; i < 300; ++i) {
    HttpReply r = s.Call("GET", "/api/status");
    if (r.status == 200 && !r.body["devices"].empty()) return r.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return nullptr;
}

TEST_F(GpuTest, ProbeListsVulkan0BesideTheCpu) {
  Server server(data(), {}, kVulkan0);
  ASSERT_TRUE(server.started()) << server.startup_output();
  json status = ProbedStatus(server);
  ASSERT_TRUE(status.is_object()) << server.Stderr();
  json vk = Device(status, "Vulkan0");
  ASSERT_TRUE(vk.is_object()) << status["devices"].dump();
  EXPECT_EQ(vk["backend"], "Vulkan");
  EXPECT_EQ(vk["kind"], "gpu");
  EXPECT_NE(vk["description"].get<std::string>().find("llvmpipe"), std::string::npos) << vk.dump();
  EXPECT_GT(vk["memory_total"].get<int64_t>(), 0);
  EXPECT_GT(vk["memory_free"].get<int64_t>(), 0);
  json cpu = Device(status, "CPU");
  ASSERT_TRUE(cpu.is_object()) << status["devices"].dump();
  EXPECT_EQ(cpu["backend"], "CPU");
  EXPECT_NE(status["environment"]["components"]["devices"].get<std::string>().find("Vulkan0"), std::string::npos);
  bool vulkan_loaded = false;
  for (const json& b : status["backends"]) vulkan_loaded |= b["name"] == "Vulkan" && b["state"] == "loaded";
  EXPECT_TRUE(vulkan_loaded) << status["backends"].dump();
  // The log says which backends were found, and why others were not used.
  EXPECT_TRUE(server.WaitForStderr("GPU backends: ")) << server.Stderr();
  ProcessResult cli = server.Cli({"status"});
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("Vulkan0"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("backend Vulkan: loaded"), std::string::npos) << cli.out;
}

// A model offloaded to Vulkan0 loads, says so, answers /v1; restarted
// without the device, its verdict is stale, and a load that asks for the
// device fails as device_unavailable: the environment's fault, not the model's.
TEST_F(GpuTest, OffloadedToVulkan0ThenTheDeviceIsGone) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "tiny.gguf"));
  {
    Server server(data(), ConfigArgs(dir_.path(), "keep_alive = \"-1\"\n"), kVulkan0);
    ASSERT_TRUE(server.started()) << server.startup_output();
    ASSERT_TRUE(ProbedStatus(server).is_object());
    // Placement naming a device this machine lacks: 400 naming those it has.
    HttpReply bad = server.Call("POST", "/api/models",
                                json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"},
                                     {"load_config", {{"devices", {"CUDA7"}}}}});
    ASSERT_EQ(bad.status, 400) << bad.raw;
    EXPECT_NE(bad.raw.find("CUDA7"), std::string::npos) << bad.raw;
    EXPECT_NE(bad.raw.find("Vulkan0"), std::string::npos) << bad.raw;
    ASSERT_EQ(server.Call("POST", "/api/models",
                          json{{"model_name", "tiny"}, {"file_path", "tiny.gguf"},
                               {"load_config",
                                {{"devices", {"Vulkan0"}}, {"n_gpu_layers", 99}, {"n_ctx", 256}, {"n_threads", 1}}}})
                  .status,
              201);
    EXPECT_EQ(server.Call("PATCH", "/api/models/tiny/config", json{{"load_config", {{"main_gpu", 3}}}}).status, 400);
    HttpReply r = Load(server, "tiny");
    ASSERT_EQ(r.status, 200) << r.raw << server.Stderr();
    json m = Model(server, "tiny");
    EXPECT_EQ(m["compatibility_status"], "compatible") << m.dump();
    ASSERT_TRUE(m["n_layers"].is_number()) << m.dump();
    EXPECT_GT(m["n_layers"].get<int64_t>(), 0);
    EXPECT_EQ(m["offloaded_layers"], m["n_layers"]) << m.dump();
    bool on_vulkan = false;
    for (const json& d : m["memory"]) on_vulkan |= d["name"] == "Vulkan0" && d["memory_used"].get<int64_t>() > 0;
    EXPECT_TRUE(on_vulkan) << m["memory"].dump();
    HttpReply v1 = server.Call("POST", "/v1/completions",
                               json{{"model", "tiny"}, {"prompt", "Hello"}, {"max_tokens", 4}, {"seed", 1}});
    ASSERT_EQ(v1.status, 200) << v1.raw;
    EXPECT_TRUE(v1.body["choices"][0]["text"].is_string()) << v1.raw;
    ProcessResult show = server.Cli({"models", "show", "tiny"});
    EXPECT_NE(show.out.find("offloaded"), std::string::npos) << show.out;
  }
  Server server(data(), {}, kNoGpu);
  ASSERT_TRUE(server.started()) << server.startup_output();
  json status = ProbedStatus(server);
  ASSERT_TRUE(status.is_object());
  EXPECT_TRUE(Device(status, "Vulkan0").is_null()) << status["devices"].dump();
  json m = Model(server, "tiny");
  EXPECT_EQ(m["verdict_stale"], true) << m.dump();
  EXPECT_NE(m["verdict_stale_reason"].get<std::string>().find("Vulkan0"), std::string::npos) << m.dump();
  HttpReply r = Load(server, "tiny");
  ASSERT_EQ(r.status, 422) << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["category"], "device_unavailable") << r.raw;
  EXPECT_EQ(r.body["error"]["classification"]["outcome"], "environment_failure") << r.raw;
  m = Model(server, "tiny");
  EXPECT_EQ(m["compatibility_status"], "compatible") << m.dump();
  EXPECT_EQ(m["total_failures"], 0) << m.dump();
}

// auto_fit lowers an unset n_gpu_layers first (SPEC §15): the KV cache of
// n_ctx 131072 (set by the user, so kept) is 256 MiB, Vulkan0 keeps all but
// 148 MiB of its 2048 MiB as margin, and the CPU has room for the rest.
TEST_F(GpuTest, AutoFitLowersGpuLayersBeforeTheContext) {
  ASSERT_TRUE(MakeTestModel(data() / "models" / "wide.gguf", {"--layers", "8", "--ctx", "131072"}));
  Server server(data(), ConfigArgs(dir_.path(), "memory_margin_mib = 1900\n"), kVulkan0);
  ASSERT_TRUE(server.started()) << server.startup_output();
  ASSERT_TRUE(ProbedStatus(server).is_object());
  ASSERT_EQ(server.Call("POST", "/api/models",
                        json{{"model_name", "wide"}, {"file_path", "wide.gguf"},
                             {"load_config", {{"n_ctx", 131072}, {"n_threads", 1}}}})
                .status,
            201);
  json fit = Model(server, "wide")["fit"];
  bool vulkan_in_fit = false;
  for (const json& d : fit["per_device"]) vulkan_in_fit |= d["device"] == "Vulkan0";
  EXPECT_TRUE(vulkan_in_fit) << fit.dump();
  HttpReply r = Load(server, "wide");
  ASSERT_EQ(r.status, 200) << r.raw << server.Stderr();
  ASSERT_TRUE(r.body["adjusted"].is_object()) << r.raw;
  ASSERT_TRUE(r.body["adjusted"].contains("n_gpu_layers")) << r.raw;
  EXPECT_LT(r.body["adjusted"]["n_gpu_layers"].get<int64_t>(), 8) << r.raw;
  EXPECT_FALSE(r.body["adjusted"].contains("n_ctx")) << r.raw;  // set by the user: kept
  json m = Model(server, "wide");
  EXPECT_EQ(m["offloaded_layers"], r.body["adjusted"]["n_gpu_layers"]) << m.dump();
}

}  // namespace
}  // namespace mw::itest
