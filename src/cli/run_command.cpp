#include "cli/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/http_client.h"
#include "cli/advice.h"
#include "cli/client_commands.h"

namespace mw::cli {
namespace {

using nlohmann::json;

std::atomic<bool> g_interrupted{false};

void OnInterrupt(int) { g_interrupted = true; }

// Ctrl-C sets the flag and interrupts a blocking read of the prompt (no SA_RESTART).
void InstallInterruptHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnInterrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGINT, &sa, nullptr);
}

struct Turn {
  int exit_code = kExitOk;
  std::string answer;
  bool interrupted = false;
};

int ErrorExit(int status, const std::string& body, const std::string& model) {
  json j = json::parse(body, nullptr, false);
  std::string message = "HTTP " + std::to_string(status);
  std::string code;
  if (j.is_object() && j.contains("error") && j["error"].is_object()) {
    message = j["error"].value("message", message);
    code = j["error"].value("code", "");
  }
  std::cerr << "modelwarden: " << InCliWords(message, model) << (code.empty() ? "" : " (" + code + ")") << "\n";
  return code == "model_incompatible" ? kExitIncompatible : kExitError;
}

// One streamed answer; printed as it arrives.
Turn Ask(api::HttpClient& client, const std::string& model, const json& messages) {
  Turn turn;
  json body = {{"model", model}, {"messages", messages}, {"stream", true}};
  std::string pending;
  bool failed_in_stream = false;
  auto on_data = [&](std::string_view data) {
    if (g_interrupted) return false;
    pending.append(data);
    size_t end;
    while ((end = pending.find("\n\n")) != std::string::npos) {
      std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;
      std::string payload = event.substr(6);
      if (payload == "[DONE]") continue;
      json chunk = json::parse(payload, nullptr, false);
      if (!chunk.is_object()) continue;
      if (chunk.contains("error")) {
        std::cout << std::endl;
        turn.exit_code = ErrorExit(502, payload, model);
        failed_in_stream = true;
        return false;
      }
      if (!chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty()) continue;
      const json& delta = chunk["choices"][0].value("delta", json::object());
      if (delta.is_object() && delta.contains("content") && delta["content"].is_string()) {
        const std::string& text = delta["content"].get_ref<const std::string&>();
        turn.answer += text;
        std::cout << text << std::flush;
      }
    }
    return true;
  };
  // The request runs on its own thread, so that Ctrl-C is noticed even while
  // nothing arrives (a long prompt): Stop() closes the connection.
  Result<api::HttpResponse> response = UnavailableError("not sent");
  std::atomic<bool> done{false};
  std::thread worker([&] {
    response = client.PostStreaming("/v1/chat/completions", body.dump(), on_data);
    done = true;
  });
  while (!done) {
    if (g_interrupted) client.Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  worker.join();
  if (g_interrupted) {
    g_interrupted = false;
    turn.interrupted = true;
    std::cout << "\n[stopped]" << std::endl;
    return turn;
  }
  if (failed_in_stream) return turn;
  if (!response.ok()) {
    std::cout << std::endl;
    std::cerr << "modelwarden: " << response.status().message() << "\n";
    turn.exit_code = kExitError;
    return turn;
  }
  if (response->status != 200) {
    turn.exit_code = ErrorExit(response->status, response->body, model);
    return turn;
  }
  std::cout << std::endl;
  return turn;
}

}  // namespace

int RunChatCommand(const std::string& url, const std::string& api_key, const std::vector<std::string>& words) {
  if (words.empty()) {
    std::cerr << "usage: modelwarden run NAME [PROMPT...]\n";
    return kExitUsage;
  }
  const std::string& model = words[0];
  auto client = api::HttpClient::Create(url, api_key, std::chrono::hours(24));
  if (!client.ok()) {
    std::cerr << "modelwarden: " << client.status().message() << "\n";
    return kExitError;
  }
  InstallInterruptHandler();
  json messages = json::array();
  if (words.size() > 1) {
    std::string prompt;
    for (size_t i = 1; i < words.size(); ++i) prompt += (i > 1 ? " " : "") + words[i];
    messages.push_back({{"role", "user"}, {"content", prompt}});
    Turn turn = Ask(**client, model, messages);
    return turn.interrupted ? 130 : turn.exit_code;
  }
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (tty) std::cout << "Chatting with " << model << " (Ctrl-C stops an answer; /bye or Ctrl-D leaves)\n";
  for (;;) {
    if (tty) std::cout << ">>> " << std::flush;
    std::string line;
    if (!std::getline(std::cin, line) || g_interrupted) break;
    if (line == "/bye") break;
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    Turn turn = Ask(**client, model, messages);
    if (turn.exit_code != kExitOk) return turn.exit_code;
    if (turn.interrupted) {
      messages.erase(messages.size() - 1);  // forget the question whose answer was stopped
      continue;
    }
    messages.push_back({{"role", "assistant"}, {"content", turn.answer}});
  }
  if (tty) std::cout << std::endl;
  return kExitOk;
}

}  // namespace mw::cli
