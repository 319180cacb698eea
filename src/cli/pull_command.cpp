#include "cli/pull_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_client/http_client.h"
#include "cli/client_commands.h"

namespace mw::cli {
namespace {

using nlohmann::json;

// Ctrl-C while following a pull cancels it on the server (DELETE /api/pulls/{id}).
std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

std::string Size(double bytes) {
  char buf[32];
  if (bytes >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / (1024.0 * 1024));
  return buf;
}

std::string Eta(const json& pull) {
  if (!pull.contains("eta_s") || !pull["eta_s"].is_number_integer()) return "--";
  int64_t s = pull["eta_s"].get<int64_t>();
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60));
  else if (s >= 60) std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  else std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  return buf;
}

// "45% [=========>          ] 12.3 MiB/27.0 MiB  5.1 MiB/s  ETA 3s"
std::string ProgressLine(const json& pull, bool bar) {
  const double done = pull.value("bytes_done", 0.0);
  const double total = pull.value("bytes_total", 0.0);
  const double fraction = total > 0 ? std::min(1.0, done / total) : 0;
  std::string line = std::to_string(static_cast<int>(fraction * 100)) + "% ";
  if (bar) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(fraction * kWidth);
    line += "[" + std::string(filled, '=') + (filled < kWidth ? ">" + std::string(kWidth - filled - 1, ' ') : "") + "] ";
  }
  line += Size(done) + "/" + Size(total) + "  " + Size(pull.value("rate_bytes_per_s", 0.0)) + "/s  ETA " + Eta(pull);
  return line;
}

int ErrorAnswer(const http::HttpResponse& r) {
  json body = json::parse(r.body, nullptr, false);
  std::string message = r.body;
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    message = body["error"].value("message", r.body);
  }
  std::cerr << "modelwarden: " << message << "\n";
  return kExitError;
}

std::unique_ptr<http::HttpClient> Connect(const std::string& url, const std::string& api_key) {
  auto client = http::HttpClient::Create(url, api_key, std::chrono::seconds(300));
  if (!client.ok()) {
    std::cerr << "modelwarden: " << client.status().message() << "\n";
    return nullptr;
  }
  return std::move(*client);
}

}  // namespace

int RunPullCommand(const PullArgs& args) {
  json body{{"hf_path", args.target}};
  // REPO:FILE when the part after ':' names a .gguf file, else REPO:QUANT.
  if (size_t colon = args.target.find(':'); colon != std::string::npos) {
    const std::string what = args.target.substr(colon + 1);
    body["hf_path"] = args.target.substr(0, colon);
    const bool is_file = what.size() > 5 && (what.substr(what.size() - 5) == ".gguf" || what.substr(what.size() - 5) == ".GGUF");
    body[is_file ? "file" : "quant"] = what;
  }
  if (!args.name.empty()) body["model_name"] = args.name;
  if (!args.location.empty()) body["cache_location"] = args.location;
  if (args.test) body["test"] = true;
  auto client = Connect(args.url, args.api_key);
  if (!client) return kExitError;
  auto started = client->Send("POST", "/api/models/pull", body.dump());
  if (!started.ok()) {
    std::cerr << "modelwarden: " << started.status().message() << "\n";
    return kExitError;
  }
  if (started->status != 202) {
    if (args.json) std::cout << started->body << "\n";
    return ErrorAnswer(*started);
  }
  json pull = json::parse(started->body)["pull"];
  const std::string id = pull.value("id", "");
  const bool tty = isatty(STDOUT_FILENO) == 1 && !args.json;
  if (!args.json) {
    std::string files;
    for (const auto& f : pull["files"]) files += (files.empty() ? "" : ", ") + f.get<std::string>();
    std::cout << "pulling " << pull.value("hf_path", "") << ": " << files << " (" << id << ")" << std::endl;
  }
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  bool cancel_sent = false;
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  std::string last_state;
  for (;;) {
    auto list = client->Send("GET", "/api/pulls");
    if (!list.ok()) {
      std::cerr << "\nmodelwarden: " << list.status().message() << "\n";
      return kExitError;
    }
    json pulls = json::parse(list->body, nullptr, false);
    bool found = false;
    if (pulls.is_object() && pulls.contains("pulls")) {
      for (const auto& p : pulls["pulls"]) {
        if (p.value("id", "") == id) {
          pull = p;
          found = true;
        }
      }
    }
    if (!found) {
      std::cerr << "modelwarden: the server no longer knows pull " << id << " (restarted?)\n";
      return kExitError;
    }
    const std::string state = pull.value("state", "");
    const bool finished = state == "done" || state == "failed" || state == "cancelled";
    if (!args.json) {
      const auto now = std::chrono::steady_clock::now();
      if (tty) {
        std::cout << "\r\033[K" << (state == "downloading" ? ProgressLine(pull, true) : state) << std::flush;
      } else if (state != last_state || now - last_line >= std::chrono::seconds(2) || finished) {
        std::cout << (state == "downloading" ? ProgressLine(pull, false) : state) << std::endl;
        last_line = now;
      }
      last_state = state;
    }
    if (finished) break;
    if (g_interrupted && !cancel_sent) {
      cancel_sent = true;
      (void)client->Send("DELETE", "/api/pulls/" + id);  // the next round sees it cancelled
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  if (tty) std::cout << "\n";
  if (args.json) std::cout << pull.dump(2) << "\n";
  const std::string state = pull.value("state", "");
  if (state == "failed") {
    std::cerr << "modelwarden: pull failed: " << pull.value("error", "") << "\n";
    return kExitError;
  }
  if (state == "cancelled") {
    std::cerr << "modelwarden: pull cancelled; nothing was registered\n";
    return kExitError;
  }
  if (!args.json) {
    std::cout << "registered " << pull.value("model_name", "") << " (unknown until its first load)";
    if (pull.contains("compatibility_status")) std::cout << "; tested: " << pull.value("compatibility_status", "");
    std::cout << "\n";
  }
  return kExitOk;
}

int RunScanCommand(const std::string& url, const std::string& api_key, bool json_out) {
  auto client = Connect(url, api_key);
  if (!client) return kExitError;
  auto r = client->Send("POST", "/api/models/scan");
  if (!r.ok()) {
    std::cerr << "modelwarden: " << r.status().message() << "\n";
    return kExitError;
  }
  if (r->status != 200) return ErrorAnswer(*r);
  if (json_out) {
    std::cout << r->body << "\n";
    return kExitOk;
  }
  json added = json::parse(r->body)["added"];
  if (added.empty()) {
    std::cout << "No new GGUF files: every one in the locations is registered.\n";
    return kExitOk;
  }
  for (const auto& m : added) {
    std::cout << "added " << m.value("model_name", "") << "  (" << m.value("cache_location", "") << ": "
              << m.value("file_path", "") << ")\n";
  }
  return kExitOk;
}

}  // namespace mw::cli
