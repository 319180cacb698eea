#include "cli/run_command.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "http_client/http_client.h"
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
  // As `load` does (SPEC §18): where to look next.
  if (code == "model_not_found") std::cerr << "See `modelwarden models list` for the registered models.\n";
  return code == "model_incompatible" ? kExitIncompatible : kExitError;
}

// The request body of one turn: the system prompt first, then the conversation.
json ChatBody(const std::string& model, const json& messages, const RunOptions& options) {
  json all = json::array();
  if (!options.system.empty()) all.push_back({{"role", "system"}, {"content", options.system}});
  for (const json& m : messages) all.push_back(m);
  json body = {{"model", model}, {"messages", all}, {"stream", !options.json}};
  if (options.max_tokens) body["max_tokens"] = *options.max_tokens;
  if (options.temperature) body["temperature"] = *options.temperature;
  return body;
}

// --json: one answer, not streamed; the server's JSON is printed as it came.
Turn AskJson(http::HttpClient& client, const std::string& model, const json& body) {
  Turn turn;
  Result<http::HttpResponse> response = client.Send("POST", "/v1/chat/completions", body.dump());
  if (!response.ok()) {
    std::cerr << "modelwarden: " << response.status().message() << "\n";
    turn.exit_code = kExitError;
    return turn;
  }
  std::cout << response->body << (response->body.empty() || response->body.back() != '\n' ? "\n" : "") << std::flush;
  if (response->status != 200) {
    turn.exit_code = ErrorExit(response->status, response->body, model);
    return turn;
  }
  json answer = json::parse(response->body, nullptr, false);
  if (answer.is_object() && answer.contains("choices") && answer["choices"].is_array() && !answer["choices"].empty()) {
    const json& message = answer["choices"][0].value("message", json::object());
    if (message.is_object() && message.contains("content") && message["content"].is_string()) {
      turn.answer = message["content"].get<std::string>();
    }
  }
  return turn;
}

// One streamed answer; printed as it arrives.
Turn Ask(http::HttpClient& client, const std::string& model, const json& messages, const RunOptions& options) {
  const json body = ChatBody(model, messages, options);
  if (options.json) return AskJson(client, model, body);
  Turn turn;
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
  Result<http::HttpResponse> response = UnavailableError("not sent");
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

constexpr const char* kSlashHelp =
    "/set system TEXT      the system prompt (empty: none)\n"
    "/set temperature X    sampling temperature, e.g. 0.7\n"
    "/set max-tokens N     the longest answer, in tokens\n"
    "/clear                forget the conversation (the system prompt stays)\n"
    "/bye                  leave (as Ctrl-D)\n"
    "/help                 this list\n";

// A line starting with '/': handled here, never sent to the model. False for /bye.
bool SlashCommand(const std::string& line, RunOptions& options, json& messages) {
  std::istringstream in(line);
  std::string command, key;
  in >> command;
  if (command == "/bye") return false;
  if (command == "/help" || command == "/?") {
    std::cout << kSlashHelp;
  } else if (command == "/clear") {
    messages = json::array();
    std::cout << "Conversation cleared.\n";
  } else if (command == "/set" && (in >> key)) {
    std::string value;
    std::getline(in >> std::ws, value);
    if (key == "system") {
      options.system = value;
      std::cout << (value.empty() ? "System prompt removed.\n" : "System prompt set.\n");
    } else if (key == "temperature" || key == "max-tokens" || key == "max_tokens") {
      if (auto problem = ParseRunOption(key == "temperature" ? "--temperature" : "--max-tokens", value, options)) {
        std::cout << *problem << "\n";
      } else {
        std::cout << key << " set to " << value << ".\n";
      }
    } else {
      std::cout << "unknown setting '" << key << "'; /help lists them.\n";
    }
  } else {
    std::cout << "unknown command '" << command << "'; /help lists them.\n";
  }
  return true;
}

}  // namespace

std::optional<std::string> ParseRunOption(const std::string& name, const std::string& value, RunOptions& options) {
  try {
    size_t used = 0;
    if (name == "--max-tokens") {
      const long long n = std::stoll(value, &used);
      if (used != value.size() || n < 1) throw std::invalid_argument(value);
      options.max_tokens = n;
    } else if (name == "--temperature") {
      const double t = std::stod(value, &used);
      if (used != value.size() || !(t >= 0.0 && t <= 100.0)) throw std::invalid_argument(value);
      options.temperature = t;
    }
  } catch (const std::exception&) {
    return name == "--max-tokens" ? "max-tokens must be a whole number of at least 1 (got '" + value + "')"
                                  : "temperature must be a number from 0, e.g. 0.7 (got '" + value + "')";
  }
  return std::nullopt;
}

int RunChatCommand(const std::string& url, const std::string& api_key, const std::vector<std::string>& words,
                   RunOptions options) {
  if (words.empty()) {
    std::cerr << "usage: modelwarden run NAME [PROMPT...]\n";
    return kExitUsage;
  }
  const std::string& model = words[0];
  auto client = http::HttpClient::Create(url, api_key, std::chrono::hours(24));
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
    Turn turn = Ask(**client, model, messages, options);
    return turn.interrupted ? 130 : turn.exit_code;
  }
  const bool tty = ::isatty(STDIN_FILENO) != 0;
  if (tty) std::cout << "Chatting with " << model << " (Ctrl-C stops an answer; /help lists commands; /bye or Ctrl-D leaves)\n";
  for (;;) {
    if (tty) std::cout << ">>> " << std::flush;
    std::string line;
    if (!std::getline(std::cin, line) || g_interrupted) break;
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (!SlashCommand(line, options, messages)) break;
      continue;
    }
    messages.push_back({{"role", "user"}, {"content", line}});
    Turn turn = Ask(**client, model, messages, options);
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
