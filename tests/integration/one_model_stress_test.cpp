// One model, many hands (issue 20): 8 threads drive loads, unloads, /v1
// requests and engine kills (SIGKILL) against ONE model of the real server
// for MW_STRESS_S seconds (default 30), in rounds. After each round the
// server settles (no load queued or running, no death unhandled) and four
// views of the model must agree: GET /api/models/NAME, GET /api/status
// (loaded_models), GET /metrics (modelwarden_loaded_models) and the process
// table (its engine processes alive). No answer may be a 500 or a broken
// connection.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace mw::itest {
namespace {

// The pids of live (not zombie) engine processes (argv[0] mw-openai-engine,
// not the mw-keeper that runs it) whose command line contains `needle`.
std::vector<pid_t> LiveProcessesWith(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(entry.path() / "cmdline");
    std::stringstream all;
    all << cmd.rdbuf();
    const std::string text = all.str();
    const std::string argv0 = text.substr(0, text.find('\0'));
    if (text.find(needle) == std::string::npos || !argv0.ends_with("mw-openai-engine")) continue;
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z') continue;
    out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

double MetricValue(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

TEST(OneModelStressTest, ApiStatusMetricsAndProcessesAgreeAfterEveryRound) {
  TempDir dir;
  Server server(dir.path() / "data", AllowApiCommands(dir.path()));
  ASSERT_TRUE(server.started()) << server.startup_output();
  const std::string stats = (dir.path() / "m.stats").string();
  json load_config = {{"argv", {(BinDir() / "mw-openai-engine").string(), "--port", "{port}", "--stats-file", stats}},
                      {"health_path", "/health"}};
  auto reg = server.Call("POST", "/api/models", json{{"model_name", "m"}, {"engine", "command"}, {"load_config", load_config}});
  ASSERT_EQ(reg.status, 201) << reg.raw;

  const char* env = std::getenv("MW_STRESS_S");
  const int seconds = env != nullptr ? std::atoi(env) : 30;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  std::atomic<int> bad{0};
  std::atomic<int> ops{0};
  std::mutex seen_mu;
  std::map<std::string, int> seen;  // "op status" -> count, printed at the end
  int rounds = 0;
  while (std::chrono::steady_clock::now() < end && bad == 0) {
    ++rounds;
    const auto round_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(rounds * 8 + t));
        while (std::chrono::steady_clock::now() < round_end) {
          HttpReply r;
          std::string what;
          switch (rng() % 8) {
            case 0:
            case 1:
              what = "load";
              r = server.Call("POST", "/api/orchestrate/load", json{{"model_name", "m"}, {"force_load", true}});
              break;
            case 2:
              what = "unload";
              r = server.Call("POST", "/api/orchestrate/unload", json{{"model_name", "m"}});
              break;
            case 3: {
              what = "kill";
              r.status = 204;  // in the summary: 204 nothing to kill, 200 an engine killed
              for (pid_t pid : LiveProcessesWith(stats)) {
                if (::kill(pid, SIGKILL) == 0) r.status = 200;
              }
              break;
            }
            default:
              what = "v1";
              r = server.Call("POST", "/v1/chat/completions",
                              json{{"model", "m"}, {"messages", {{{"role", "user"}, {"content", "TOKENS=2"}}}}});
          }
          ++ops;
          {
            std::lock_guard lock(seen_mu);
            ++seen[what + " " + std::to_string(r.status)];
          }
          if (r.status == 0 || (r.status >= 500 && r.status != 502 && r.status != 503)) {
            ++bad;
            ADD_FAILURE() << what << " answered " << r.status << ": " << r.raw;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    // Settle: nothing queued or loading, then the four views agree (a
    // killed engine's death is noticed asynchronously: a short deadline).
    bool agreed = false;
    std::string last;
    for (int i = 0; i < 200 && !agreed; ++i) {
      HttpReply status = server.Call("GET", "/api/status");
      HttpReply model = server.Call("GET", "/api/models/m");
      HttpReply metrics = server.Call("GET", "/metrics");
      const std::vector<pid_t> engines = LiveProcessesWith(stats);
      bool in_status = false;
      for (const auto& m : status.body["loaded_models"]) in_status |= m.value("model_name", "") == "m";
      const bool loaded = model.body.value("loaded", false);
      const double gauge = MetricValue(metrics.raw, "modelwarden_loaded_models");
      const bool idle_queue = status.body["load_queue"].empty();
      agreed = idle_queue && loaded == in_status && gauge == (loaded ? 1.0 : 0.0) &&
               engines.size() == (loaded ? 1u : 0u) &&
               model.body.value("load_state", "") == (loaded ? "loaded" : "idle");
      last = "api loaded=" + std::to_string(loaded) + " load_state=" + model.body.value("load_state", "") +
             " status=" + std::to_string(in_status) + " metrics=" + std::to_string(gauge) +
             " engines=" + std::to_string(engines.size()) + " queue=" + status.body["load_queue"].dump();
      if (!agreed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(agreed) << "round " << rounds << ": the views disagree: " << last;
  }
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(server.Alive());
  std::cout << rounds << " rounds, " << ops << " operations:";
  for (const auto& [answer, count] : seen) std::cout << " " << answer << " x" << count << ";";
  std::cout << "\n";
}

}  // namespace
}  // namespace mw::itest
