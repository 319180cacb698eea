#include "cli/client_commands.h"

#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "http_client/http_client.h"
#include "cli/advice.h"
#include "cli/model_file_offer.h"
#include "cli/pull_command.h"
#include "cli/run_command.h"
#include "cli/table.h"

namespace mw::cli {
namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "usage: modelwarden [--url URL] [--api-key KEY] [--json] <command>\n"
    "  models list\n"
    "  models add NAME [--hf-path ORG/NAME] [--file PATH [--copy|--link]] [--engine llama.cpp|command]\n"
    "                  [--preset ENGINE_PRESET] [--location LOC] [--load-config JSON]\n"
    "                  (--preset: a command model run by [engines.NAME] of the server's configuration)\n"
    "  models show NAME\n"
    "  models set NAME [--status S] [--notes TEXT] [--load-config JSON]\n"
    "  models rm NAME\n"
    "  models scan            registers the GGUF files in the locations not registered yet\n"
    "  pull REPO[:QUANT|:FILE] [--name NAME] [--location LOC] [--test]\n"
    "                         downloads a GGUF from Hugging Face and registers it\n"
    "  load NAME [--force]\n"
    "  unload NAME\n"
    "  retest NAME            a stale verdict: status unknown, then one load\n"
    "  status\n"
    "  environment reset      a failing environment back to ok\n"
    "  nodes                  the servers sharing the registry, with their leases\n"
    "  run NAME [PROMPT...] [--max-tokens N] [--system TEXT] [--temperature X]\n"
    "                         chat (streams; interactive without a prompt: /help lists its commands;\n"
    "                         Ctrl-C stops an answer; --json prints the JSON answer)\n"
    "  list | ps | show NAME | rm NAME | stop NAME\n"
    "                         models list | the loaded models | models show | models rm | unload\n"
    "Server: --url, else $MODELWARDEN_URL, else http://127.0.0.1:8080. API key: $MODELWARDEN_API_KEY.\n"
    "`modelwarden COMMAND --help` shows one command.\n";

constexpr const char* kGlobalOptions =
    "Options: --url URL (else $MODELWARDEN_URL, else http://127.0.0.1:8080), --api-key KEY (else\n"
    "$MODELWARDEN_API_KEY), --json (the server's JSON answer).\n";

// `modelwarden COMMAND --help`: one command's usage (SPEC §18). Keys are the
// command, or "models SUB".
struct CommandHelp {
  const char* command;
  const char* usage;
};
constexpr CommandHelp kCommandHelp[] = {
    {"models",
     "usage: modelwarden models list | add NAME ... | show NAME | set NAME ... | rm NAME | scan\n"
     "The registered models. `modelwarden models SUB --help` shows one subcommand.\n"},
    {"models list", "usage: modelwarden models list\nThe registered models, their status, loads and failures.\n"},
    {"models add",
     "usage: modelwarden models add NAME [--hf-path ORG/NAME] [--file PATH [--copy|--link]]\n"
     "                              [--engine llama.cpp|command] [--preset ENGINE_PRESET] [--location LOC]\n"
     "                              [--load-config JSON]\n"
     "Registers a model. --file: its GGUF file (relative to the current directory, else to the model\n"
     "location); a file outside the server's model locations is copied (--copy) or hard-linked (--link)\n"
     "into the location first; --hf-path: a Hugging Face repository in the cache;\n"
     "--location: the cache location; --load-config: a JSON object of load settings, e.g. '{\"n_ctx\": 2048}';\n"
     "--preset: a command model run by [engines.NAME] of the server's configuration.\n"},
    {"models show", "usage: modelwarden models show NAME\nOne model: status, notes, load_config, fit, recent attempts.\n"},
    {"models set",
     "usage: modelwarden models set NAME [--status S] [--notes TEXT] [--load-config JSON]\n"
     "--status: unknown, compatible or incompatible; --notes: free text; --load-config: a JSON object\n"
     "that replaces the model's whole load_config (the keys it drops are listed); a loaded model uses\n"
     "it from its next load.\n"},
    {"models rm", "usage: modelwarden models rm NAME\nRemoves a model from the registry.\n"},
    {"models scan",
     "usage: modelwarden models scan\n"
     "Registers every GGUF file in the server's locations and their Hugging Face caches that no model\n"
     "uses yet, named after the file or repository, and prints what it added.\n"},
    {"pull",
     "usage: modelwarden pull REPO[:QUANT|:FILE] [--name NAME] [--location LOC] [--test]\n"
     "Downloads a GGUF from Hugging Face (the server's hf_endpoint) into the location's Hugging Face\n"
     "cache and registers it. QUANT: a quant tag such as Q4_K_M (any case); FILE: a .gguf file of the\n"
     "repository. --name: the model's name (default: the file's); --location: the cache location\n"
     "(default primary); --test: load it once with its first decode and unload it. Gated repositories\n"
     "need HF_TOKEN (or hf_token) on the server. Shows progress: bytes, rate, ETA; Ctrl-C cancels.\n"},
    {"load",
     "usage: modelwarden load NAME [--force]\n"
     "Loads a model (waits for the attempt). --force: load a model marked incompatible, or one that\n"
     "would not fit, anyway. Exit 3 when refused as incompatible.\n"},
    {"unload", "usage: modelwarden unload NAME\nUnloads a loaded model.\n"},
    {"retest",
     "usage: modelwarden retest NAME\n"
     "Sets the model's status to unknown and loads it once (for a stale verdict: the model file, driver\n"
     "or llama.cpp changed since it was judged). Answers as load does.\n"},
    {"environment", "usage: modelwarden environment reset\nSee `modelwarden environment reset --help`.\n"},
    {"environment reset",
     "usage: modelwarden environment reset\n"
     "Sets a failing environment back to ok: device-level failures blame models again.\n"},
    {"stop", "usage: modelwarden stop NAME\nUnloads a loaded model (= modelwarden unload NAME).\n"},
    {"status", "usage: modelwarden status\nThe server: devices, memory, loaded models, the load queue.\n"},
    {"nodes", "usage: modelwarden nodes\nThe servers sharing the registry, with their leases.\n"},
    {"run",
     "usage: modelwarden run NAME [PROMPT...] [--max-tokens N] [--system TEXT] [--temperature X]\n"
     "Chats with a model, loading it on demand. With a PROMPT: one answer, streamed; without:\n"
     "interactive. Ctrl-C stops an answer. --max-tokens: the longest answer; --system: a system\n"
     "prompt; --temperature: sampling temperature; --json: no streaming, the JSON answer printed.\n"
     "Inside: /help, /set system TEXT | temperature X | max-tokens N, /clear, /bye (or Ctrl-D).\n"},
    {"list", "usage: modelwarden list\nThe registered models (= modelwarden models list).\n"},
    {"ps", "usage: modelwarden ps\nThe loaded models, with their memory and last use.\n"},
    {"show", "usage: modelwarden show NAME\nOne model (= modelwarden models show NAME).\n"},
    {"rm", "usage: modelwarden rm NAME\nRemoves a model from the registry (= modelwarden models rm NAME).\n"},
};

// The usage of the command in `positional` ("models add" for models' subcommands).
std::string HelpFor(const std::vector<std::string>& positional) {
  if (positional.empty()) return kUsage;
  std::string key = positional[0];
  if ((key == "models" || key == "environment") && positional.size() > 1) key += " " + positional[1];
  for (const CommandHelp& help : kCommandHelp) {
    if (key == help.command) return std::string(help.usage) + kGlobalOptions;
  }
  return kUsage;
}

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --name value
  bool json = false;
  bool force = false;
  bool copy = false;  // models add --copy
  bool link = false;  // models add --link
  bool test = false;  // pull --test
  bool help = false;  // --help or -h
  std::string url;
  std::string api_key;
};

const char* const kValueOptions[] = {"--url",      "--api-key",     "--hf-path", "--file",  "--engine", "--preset",
                                     "--location", "--load-config", "--status",  "--notes", "--name",
                                     "--max-tokens", "--system", "--temperature"};

int Usage(const std::string& problem) {
  std::cerr << "modelwarden: " << problem << "\n" << kUsage;
  return kExitUsage;
}

std::optional<std::string> ParseArgs(int argc, char** argv, Args& args) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      args.json = true;
    } else if (a == "--force") {
      args.force = true;
    } else if (a == "--copy") {
      args.copy = true;
    } else if (a == "--link") {
      args.link = true;
    } else if (a == "--test") {
      args.test = true;
    } else if (a == "--help" || a == "-h") {
      args.help = true;
    } else if (a.rfind("--", 0) == 0) {
      std::string name = a;
      std::optional<std::string> value;
      if (auto eq = a.find('='); eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
      }
      bool known = false;
      for (const char* o : kValueOptions) known = known || name == o;
      if (!known) return "unknown option '" + name + "'";
      if (!value) {
        if (i + 1 >= argc) return "option " + name + " needs a value";
        value = argv[++i];
      }
      args.options[name] = *value;
    } else {
      args.positional.push_back(a);
    }
  }
  if (auto it = args.options.find("--url"); it != args.options.end()) args.url = it->second;
  if (args.url.empty()) {
    const char* env = std::getenv("MODELWARDEN_URL");
    args.url = env && *env ? env : "http://127.0.0.1:8080";
  }
  if (auto it = args.options.find("--api-key"); it != args.options.end()) {
    args.api_key = it->second;
  } else if (const char* env = std::getenv("MODELWARDEN_API_KEY")) {
    args.api_key = env;
  }
  return std::nullopt;
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string OneLine(std::string text, size_t max) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

class Client {
 public:
  explicit Client(const Args& args) : args_(args) {}

  // Sends the request. On a transport error prints it and returns nullopt.
  std::optional<std::pair<int, json>> Call(const char* method, const std::string& path, const std::string& body = "") {
    if (!client_) {
      auto created = http::HttpClient::Create(args_.url, args_.api_key, std::chrono::hours(24));
      if (!created.ok()) {
        std::cerr << "modelwarden: " << created.status().message() << "\n";
        return std::nullopt;
      }
      client_ = std::move(*created);
    }
    auto response = client_->Send(method, path, body);
    if (!response.ok()) {
      std::cerr << "modelwarden: " << response.status().message() << "\n";
      return std::nullopt;
    }
    json parsed = json::parse(response->body, nullptr, false);
    if (parsed.is_discarded()) {
      std::cerr << "modelwarden: the server at " << args_.url << " answered HTTP " << response->status
                << " with a body that is not JSON (is it a modelwarden server?)\n";
      return std::nullopt;
    }
    return std::make_pair(response->status, std::move(parsed));
  }

 private:
  const Args& args_;
  std::unique_ptr<http::HttpClient> client_;
};

// Prints a server error, its advice in CLI words, and returns the exit code for it.
int ReportError(int status, const json& body, const std::string& model) {
  const json& error = body.contains("error") ? body["error"] : body;
  std::string code = Str(error, "code");
  std::cerr << "error: " << InCliWords(Str(error, "message"), model.empty() ? "NAME" : model)
            << (code.empty() ? "" : " [" + code + "]") << "\n";
  if (code == "model_incompatible") return kExitIncompatible;
  if (code == "load_failed" && error.contains("classification")) {
    const json& c = error["classification"];
    std::cerr << "  category: " << Str(c, "category") << "  pattern: " << Str(c, "pattern_id") << "\n";
    if (!Str(c, "matched_line").empty()) std::cerr << "  log: " << OneLine(Str(c, "matched_line"), 200) << "\n";
    if (c.contains("suggested_load_config") && c["suggested_load_config"].is_object()) {
      std::cerr << "  suggestion: modelwarden models set " << Str(body.value("model", json::object()), "model_name")
                << " --load-config '" << c["suggested_load_config"].dump() << "'\n";
    }
  }
  if (code == "insufficient_memory") {
    // SPEC §18: the suggested n_ctx as the command that applies it (the rest of the load_config kept).
    const json fit = error.value("fit", json::object());
    const json model_json = body.value("model", json::object());
    if (fit.is_object() && fit.contains("largest_fitting_n_ctx") && fit["largest_fitting_n_ctx"].is_number() &&
        model_json.is_object()) {
      json lc = model_json.value("load_config", json::object());
      if (!lc.is_object()) lc = json::object();
      lc["n_ctx"] = fit["largest_fitting_n_ctx"];
      std::cerr << "Apply it with: modelwarden models set " << Str(model_json, "model_name") << " --load-config '"
                << lc.dump() << "'\n";
    } else {
      std::cerr << "Lower n_ctx (or n_gpu_layers), or use --force to try anyway.\n";
    }
  }
  if (code == "model_not_found") std::cerr << "See `modelwarden models list` for the registered models.\n";
  (void)status;
  return kExitError;
}

// "a, b, c" from a JSON array of strings.
std::string JoinList(const json& list) {
  std::string text;
  for (const auto& item : list) text += (text.empty() ? "" : ", ") + (item.is_string() ? item.get<std::string>() : item.dump());
  return text;
}

void PrintModel(const json& m) {
  Table info({"FIELD", "VALUE"});
  for (const char* key : {"model_name", "compatibility_status", "engine", "hf_path", "cache_location", "file_path",
                          "load_state", "total_loads", "total_failures", "created_at", "last_loaded_at",
                          "last_failed_at", "last_hung_at", "last_error", "verdict_fingerprint"}) {
    info.AddRow({key, Str(m, key)});
  }
  if (m.value("verdict_stale", false)) {
    const std::string name = Str(m, "model_name");
    info.AddRow({"verdict_stale", "yes: " + Str(m, "verdict_stale_reason") + " (retest: modelwarden retest " + name + ")"});
  }
  info.AddRow({"load_config", m.contains("load_config") ? m["load_config"].dump() : "{}"});
  if (m.contains("fit") && m["fit"].is_object()) {
    const json& f = m["fit"];
    auto mib = [&](const char* key) {
      return f.contains(key) && f[key].is_number() ? std::to_string((f[key].get<int64_t>() + (1 << 20) - 1) >> 20) + " MiB"
                                                   : std::string("-");
    };
    info.AddRow({"fit", mib("estimate_bytes") + " estimated for n_ctx " + (f.contains("n_ctx") ? f["n_ctx"].dump() : "?") +
                            (f.value("fits", true) ? ", fits" : ", does not fit: " + Str(f, "reason")) +
                            (f.contains("memory_used") && f["memory_used"].is_number() ? "; in use " + mib("memory_used") : "")});
  }
  // SPEC §15: what a loaded model holds on each device, and its layers on GPUs.
  if (m.contains("memory") && m["memory"].is_array() && !m["memory"].empty()) {
    std::string per_device;
    for (const json& d : m["memory"]) {
      per_device += (per_device.empty() ? "" : ", ") + Str(d, "name") + " " +
                    std::to_string(d.value("memory_used", int64_t{0}) >> 20) + " MiB";
    }
    info.AddRow({"memory", per_device});
  }
  if (m.contains("n_layers") && m["n_layers"].is_number()) {
    info.AddRow({"offloaded_layers", m["offloaded_layers"].dump() + "/" + m["n_layers"].dump() + " on GPU"});
  }
  info.Print(std::cout, /*header=*/false);
  std::string notes = Str(m, "compatibility_notes");
  if (!notes.empty()) std::cout << "notes:\n  " << notes << "\n";
  // SPEC §14: what the other environment classes of the fleet found.
  if (m.contains("verdicts") && m["verdicts"].is_array() && m["verdicts"].size() > 1) {
    std::cout << "\nverdicts per environment class:\n";
    Table t({"CLASS", "STATUS", "LOADS", "FAILS", "NODES", "NOTES"});
    for (const auto& v : m["verdicts"]) {
      const std::string nodes = JoinList(v.value("nodes", json::array()));
      const std::string cls = Str(v, "environment_class");
      t.AddRow({(cls.empty() ? "-" : OneLine(cls, 50)) + (v.value("this_node_class", false) ? " (this node)" : ""),
                Str(v, "status"), Str(v, "total_loads"), Str(v, "total_failures"), nodes.empty() ? "-" : nodes,
                OneLine(Str(v, "notes"), 60)});
    }
    t.Print(std::cout, true);
  }
  if (m.contains("attempts") && !m["attempts"].empty()) {
    std::cout << "\nrecent attempts:\n";
    Table t({"ID", "STARTED", "OUTCOME", "FORCED", "BEFORE", "AFTER", "CATEGORY", "SUMMARY"});
    for (const auto& a : m["attempts"]) {
      t.AddRow({Str(a, "id"), Str(a, "started_at"), Str(a, "outcome"), Str(a, "forced"), Str(a, "status_before"),
                Str(a, "status_after"), Str(a, "category"), OneLine(Str(a, "summary"), 60)});
    }
    t.Print(std::cout, true);
  }
}

std::string EncodePath(const std::string& name) {
  // Model names are [A-Za-z0-9._-]; anything else is sent escaped and the server rejects it clearly.
  std::ostringstream out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      out << c;
    } else {
      out << '%' << std::uppercase << std::hex << std::setw(2) << std::setfill('0') << static_cast<int>(c);
    }
  }
  return out.str();
}

// load_config given on the command line must be a JSON object.
std::optional<json> ParseLoadConfig(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

// The model a command is about, for the advice printed with an error.
std::string ModelArgument(const Args& args) {
  const auto& p = args.positional;
  if (!p.empty() && p[0] == "models") return p.size() > 2 ? p[2] : "";
  return p.size() > 1 ? p[1] : "";
}

int Finish(const Args& args, int status, const json& body, int success_status, const std::function<void()>& print) {
  if (status != success_status) {
    if (args.json) std::cout << body.dump(2) << "\n";
    return ReportError(status, body, ModelArgument(args));
  }
  if (args.json) {
    std::cout << body.dump(2) << "\n";
  } else {
    print();
  }
  return kExitOk;
}

int ModelsCommand(Args& args, Client& client) {
  const auto& p = args.positional;
  if (p.size() < 2) return Usage("models needs a subcommand: list, add, show, set, rm, scan");
  const std::string& sub = p[1];
  if (sub == "scan") {
    if (p.size() != 2) return Usage("models scan takes no arguments");
    return RunScanCommand(args.url, args.api_key, args.json);
  }
  if (sub == "list") {
    if (p.size() != 2) return Usage("models list takes no arguments");
    auto r = client.Call("GET", "/api/models");
    if (!r) return kExitError;
    return Finish(args, r->first, r->second, 200, [&] {
      const json& models = r->second["models"];
      if (models.empty()) {
        std::cout << "No models registered. Add one with: modelwarden models add NAME --file PATH\n";
        return;
      }
      Table t({"NAME", "STATUS", "ENGINE", "LOADS", "FAILS", "STATE", "NOTES"});
      for (const auto& m : models) {
        std::string status = Str(m, "compatibility_status");
        if (m.value("verdict_stale", false)) status += " (stale)";
        t.AddRow({Str(m, "model_name"), status, Str(m, "engine"), Str(m, "total_loads"),
                  Str(m, "total_failures"), Str(m, "load_state"), OneLine(Str(m, "compatibility_notes"), 60)});
      }
      t.Print(std::cout, true);
    });
  }
  if (p.size() != 3) return Usage("models " + sub + " needs exactly one model NAME");
  const std::string& name = p[2];
  if (sub == "add") {
    json body{{"model_name", name}};
    if (args.options.count("--hf-path")) body["hf_path"] = args.options["--hf-path"];
    // SPEC §18: relative to the current directory when the file is there.
    const std::string file = args.options.count("--file") ? FileArgument(args.options["--file"]) : "";
    if (!file.empty()) body["file_path"] = file;
    if ((args.copy || args.link) && file.empty()) return Usage("--copy and --link go with --file");
    if (args.copy && args.link) return Usage("give --copy or --link, not both");
    if (args.options.count("--engine")) body["engine"] = args.options["--engine"];
    if (args.options.count("--location")) body["cache_location"] = args.options["--location"];
    if (args.options.count("--load-config")) {
      auto lc = ParseLoadConfig(args.options["--load-config"]);
      if (!lc) return Usage("--load-config must be a JSON object, e.g. '{\"n_ctx\": 2048}'");
      body["load_config"] = *lc;
    }
    if (args.options.count("--preset")) {
      if (body.value("engine", "command") != "command") return Usage("--preset goes with the command engine");
      body["engine"] = "command";
      if (!body.contains("load_config")) body["load_config"] = json::object();
      body["load_config"]["preset"] = args.options["--preset"];
    }
    auto r = client.Call("POST", "/api/models", body.dump());
    if (!r) return kExitError;
    // A file outside the model locations: copy or link it in, or say how.
    if (r->first == 400 && !file.empty()) {
      const json& error = r->second.value("error", json::object());
      if (std::optional<std::string> root = LocationOfOutsideRefusal(Str(error, "message"))) {
        if (!args.copy && !args.link) {
          const int code = Finish(args, r->first, r->second, 201, [] {});
          if (!args.json) std::cerr << OutsideAdvice(name, file, *root);
          return code;
        }
        Result<std::string> placed = PlaceInLocation(file, *root, args.link);
        if (!placed.ok()) {
          std::cerr << "modelwarden: " << placed.status().message() << "\n";
          return kExitError;
        }
        std::cout << (args.link ? "Linked " : "Copied ") << file << " into " << *root << ".\n";
        body["file_path"] = *placed;
        r = client.Call("POST", "/api/models", body.dump());
        if (!r) return kExitError;
      }
    }
    return Finish(args, r->first, r->second, 201, [&] {
      std::cout << "Registered '" << name << "' (" << Str(r->second, "engine") << ", " << Str(r->second, "file_path")
                << "). Load it with: modelwarden load " << name << "\n";
    });
  }
  if (sub == "show") {
    auto r = client.Call("GET", "/api/models/" + EncodePath(name));
    if (!r) return kExitError;
    return Finish(args, r->first, r->second, 200, [&] { PrintModel(r->second); });
  }
  if (sub == "set") {
    json body = json::object();
    if (args.options.count("--status")) body["compatibility_status"] = args.options["--status"];
    if (args.options.count("--notes")) body["compatibility_notes"] = args.options["--notes"];
    if (args.options.count("--load-config")) {
      auto lc = ParseLoadConfig(args.options["--load-config"]);
      if (!lc) return Usage("--load-config must be a JSON object, e.g. '{\"flash_attn\": \"off\"}'");
      body["load_config"] = *lc;
    }
    if (body.empty()) return Usage("models set needs --status, --notes or --load-config");
    // SPEC §18: --load-config replaces the whole load_config: say which keys went.
    std::vector<std::string> removed;
    if (body.contains("load_config")) {
      auto before = client.Call("GET", "/api/models/" + EncodePath(name));
      if (before && before->first == 200 && before->second.contains("load_config") &&
          before->second["load_config"].is_object()) {
        for (const auto& [key, value] : before->second["load_config"].items()) {
          if (!body["load_config"].contains(key)) removed.push_back(key);
        }
      }
    }
    auto r = client.Call("PATCH", "/api/models/" + EncodePath(name) + "/config", body.dump());
    if (!r) return kExitError;
    return Finish(args, r->first, r->second, 200, [&] {
      std::cout << "Updated '" << name << "': status " << Str(r->second, "compatibility_status") << "\n";
      if (!removed.empty()) {
        std::string keys;
        for (const std::string& k : removed) keys += (keys.empty() ? "" : ", ") + k;
        std::cout << "--load-config replaced the whole load_config; removed: " << keys << "\n";
      }
      if (!Str(r->second, "warning").empty()) {
        std::cerr << "warning: '" << name << "' is loaded: its new load_config applies at its next load "
                  << "(modelwarden unload " << name << ", then modelwarden load " << name << ")\n";
      }
    });
  }
  if (sub == "rm") {
    auto r = client.Call("DELETE", "/api/models/" + EncodePath(name));
    if (!r) return kExitError;
    return Finish(args, r->first, r->second, 200, [&] {
      std::cout << "Removed '" << name << "' from the registry (its model file, if any, was left in place).\n";
    });
  }
  return Usage("unknown models subcommand '" + sub + "'");
}

int LoadCommand(Args& args, Client& client, bool load) {
  const auto& p = args.positional;
  const bool retest = p[0] == "retest";
  if (p.size() != 2) return Usage(p[0] + " needs exactly one model NAME");
  const std::string& name = p[1];
  json body{{"model_name", name}};
  if (load && args.force) body["force_load"] = true;
  if ((!load || retest) && args.force) return Usage(p[0] + " does not take --force");
  if (!load) {
    // The server answers an unload of a model that is not loaded as done: say what it was.
    auto before = client.Call("GET", "/api/models/" + EncodePath(name));
    if (!before) return kExitError;
    if (before->first == 200 && Str(before->second, "load_state") == "idle") {
      return Finish(args, 200, json{{"unloaded", false}, {"model", before->second}}, 200,
                    [&] { std::cout << "'" << name << "' is not loaded: nothing to unload.\n"; });
    }
  }
  auto r = retest ? client.Call("POST", "/api/models/" + EncodePath(name) + "/retest")
                  : client.Call("POST", load ? "/api/orchestrate/load" : "/api/orchestrate/unload", body.dump());
  if (!r) return kExitError;
  return Finish(args, r->first, r->second, 200, [&] {
    if (!load) {
      std::cout << "Unloaded '" << name << "'.\n";
      return;
    }
    const json& b = r->second;
    if (b.value("already_loaded", false)) {
      std::cout << "'" << name << "' is already loaded.\n";
    } else {
      std::cout << "Loaded '" << name << "'" << (b.value("joined", false) ? " (joined the load in progress)" : "")
                << ". Status: " << Str(b["model"], "compatibility_status") << "\n";
    }
    if (b.contains("warning")) std::cerr << "warning: " << Str(b, "warning") << "\n";
    // SPEC §11 auto_fix, §12 auto_fit: what the server changed to make it load.
    auto settings = [](const json& o) {
      std::string text;
      if (!o.is_object()) return text;
      for (const auto& [key, value] : o.items()) text += (text.empty() ? "" : ", ") + key + " " + value.dump();
      return text;
    };
    if (b.contains("auto_fix") && b["auto_fix"].is_object()) {
      const json& fix = b["auto_fix"];
      std::cout << "auto_fix: the first attempt failed (" << Str(fix.value("first_failure", json::object()), "summary")
                << "); loaded after changing " << settings(fix.value("changed", json::object()))
                << ", now saved in its load_config\n";
    }
    if (b.contains("adjusted")) std::cout << "auto_fit: loaded with " << settings(b["adjusted"]) << " to fit in memory\n";
  });
}

// The loaded models of /api/status (residency, SPEC §12): `status` and `ps`.
void PrintLoadedModels(const json& loaded) {
  Table t({"MODEL", "MEMORY (MiB)", "LAST USED", "KEEP-ALIVE UNTIL", "IN FLIGHT"});
  for (const auto& m : loaded) {
    const std::string until = Str(m, "keep_alive_until");
    t.AddRow({Str(m, "model_name"), std::to_string(m.value("memory_used", int64_t{0}) >> 20), Str(m, "last_used_at"),
              until.empty() ? "-" : until, Str(m, "requests_in_flight")});
  }
  t.Print(std::cout, true);
}

int StatusCommand(Args& args, Client& client) {
  if (args.positional.size() != 1) return Usage("status takes no arguments");
  auto r = client.Call("GET", "/api/status");
  if (!r) return kExitError;
  return Finish(args, r->first, r->second, 200, [&] {
    const json& s = r->second;
    const json env = s.value("environment", json::object());
    if (env.value("state", "") == "failing") {
      // SPEC §11: a system-wide failure first, before anything else.
      std::cout << "!! ENVIRONMENT FAILING since " << Str(env, "since") << ": " << Str(env, "reason") << "\n"
                << "   Device-level failures blame no model until it recovers (a successful load, a device probe "
                   "that sees the missing devices again, or `modelwarden environment reset`).\n";
    }
    std::cout << "modelwarden " << Str(s, "version") << " at " << args.url << ", up " << Str(s, "uptime_s") << " s\n";
    if (s.contains("node") && s["node"].is_object() && !Str(s["node"], "node_id").empty()) {
      const json& node = s["node"];
      const std::string cls = Str(node, "environment_class");
      const int64_t live = node.value("nodes_live", int64_t{0});
      std::cout << "node: " << Str(node, "node_id") << " (class " << (cls.empty() ? "not known yet" : cls) << "), "
                << live << (live == 1 ? " node" : " nodes") << " live\n";
    }
    if (!Str(env, "fingerprint").empty()) std::cout << "environment: " << Str(env, "fingerprint") << " (" << Str(env, "state") << ")\n";
    std::cout << "models:";
    for (const auto& [k, v] : s["counts"].items()) std::cout << " " << k << "=" << v.dump();
    std::cout << "\n";
    if (!Str(s, "devices_error").empty()) std::cout << "devices: " << Str(s, "devices_error") << "\n";
    if (!s["devices"].empty()) {
      Table t({"DEVICE", "BACKEND", "KIND", "DESCRIPTION", "MEMORY TOTAL (MiB)", "FREE (MiB)", "DRIVER"});
      for (const auto& d : s["devices"]) {
        const bool has_id = !Str(d, "id").empty();
        t.AddRow({has_id ? Str(d, "id") : Str(d, "name"), Str(d, "backend"), Str(d, "kind"),
                  has_id ? Str(d, "description") : "", std::to_string(d.value("memory_total", int64_t{0}) >> 20),
                  std::to_string(d.value("memory_free", int64_t{0}) >> 20), Str(d, "driver")});
      }
      t.Print(std::cout, true);
    }
    // SPEC §15: the GPU backends found, and why any was not used.
    for (const auto& b : s.value("backends", json::array())) {
      std::cout << "backend " << Str(b, "name") << ": " << Str(b, "state")
                << (Str(b, "reason").empty() ? "" : " (" + Str(b, "reason") + ")") << "\n";
    }
    // Residency (SPEC §12): memory in use vs free, and each loaded model.
    const json memory = s.value("memory", json::object());
    std::cout << "memory: " << (memory.value("in_use_bytes", int64_t{0}) >> 20) << " MiB in use by loaded models, "
              << (memory.value("free_bytes", int64_t{0}) >> 20) << " MiB free";
    const int64_t cap = s.value("max_loaded_models", int64_t{0});
    std::cout << "; max_loaded_models " << (cap > 0 ? std::to_string(cap) : std::string("0 (as many as fit)")) << "\n";
    std::cout << "loaded: ";
    if (s["loaded_models"].empty()) std::cout << "none";
    for (const auto& m : s["loaded_models"]) std::cout << Str(m, "model_name") << " ";
    std::cout << "\n";
    if (!s["loaded_models"].empty()) PrintLoadedModels(s["loaded_models"]);
    std::cout << "queue: ";
    if (s["load_queue"].empty()) std::cout << "empty";
    for (const auto& q : s["load_queue"]) std::cout << Str(q, "model_name") << " (" << Str(q, "state") << ") ";
    std::cout << "\n";
  });
}

// `ps`: the loaded models (Ollama's verb), from /api/status.
int PsCommand(Args& args, Client& client) {
  if (args.positional.size() != 1) return Usage("ps takes no arguments");
  auto r = client.Call("GET", "/api/status");
  if (!r) return kExitError;
  return Finish(args, r->first, r->second, 200, [&] {
    const json& loaded = r->second["loaded_models"];
    if (loaded.empty()) {
      std::cout << "No model is loaded. Load one with: modelwarden load NAME\n";
      return;
    }
    PrintLoadedModels(loaded);
  });
}

// "held, 2s ago": a lease's state and the age of the node's last heartbeat.
std::string LeaseText(const json& lease) {
  std::string text = Str(lease, "state");
  if (lease.contains("heartbeat_age_s") && lease["heartbeat_age_s"].is_number()) {
    const auto age = static_cast<int64_t>(lease["heartbeat_age_s"].get<double>());
    text += ", " + std::to_string(age) + "s ago";
  }
  if (Str(lease, "state") == "held" && !lease.value("live", true)) text += " (silent past lease_s)";
  return text;
}

// SPEC §14: the nodes of the fleet that shares the registry.
int NodesCommand(Args& args, Client& client) {
  if (args.positional.size() != 1) return Usage("nodes takes no arguments");
  auto r = client.Call("GET", "/api/nodes");
  if (!r) return kExitError;
  return Finish(args, r->first, r->second, 200, [&] {
    const json& b = r->second;
    const std::string self = Str(b, "this_node");
    if (b["nodes"].empty()) {
      std::cout << "No nodes: this server has not joined the fleet yet.\n";
      return;
    }
    // This node's loaded models as of now, not of its last heartbeat (SPEC §18).
    std::optional<std::string> loaded_here;
    if (auto st = client.Call("GET", "/api/status"); st && st->first == 200 && st->second.contains("loaded_models")) {
      std::string names;
      for (const auto& m : st->second["loaded_models"]) names += (names.empty() ? "" : ", ") + Str(m, "model_name");
      loaded_here = names;
    }
    Table t({"NODE", "HOST", "URL", "CLASS", "LEASE", "LOADED"});
    for (const auto& n : b["nodes"]) {
      std::string id = Str(n, "node_id");
      const bool here = !self.empty() && id == self;
      if (here) id += " (this)";
      const std::string loaded =
          here && loaded_here ? *loaded_here : JoinList(n.value("loaded_models", json::array()));
      std::string lease = LeaseText(n.value("lease", json::object()));
      if (!Str(n, "expired_by").empty()) lease += " (closed by " + Str(n, "expired_by") + ")";
      const std::string cls = Str(n, "environment_class");
      const std::string url = Str(n, "advertise_url");  // SPEC §21: where its peers reach it
      t.AddRow({id, Str(n, "host"), url.empty() ? "-" : url, cls.empty() ? "-" : OneLine(cls, 60), lease,
                loaded.empty() ? "-" : loaded});
    }
    t.Print(std::cout, true);
    std::cout << Str(b, "live") << " of " << b["nodes"].size() << " node(s) live\n";
  });
}

// SPEC §11: `environment reset` sets a failing environment back to ok.
int EnvironmentCommand(Args& args, Client& client) {
  const auto& p = args.positional;
  if (p.size() != 2 || p[1] != "reset") return Usage("environment takes one subcommand: reset");
  auto r = client.Call("POST", "/api/environment/reset");
  if (!r) return kExitError;
  return Finish(args, r->first, r->second, 200, [&] {
    std::cout << "Environment: " << Str(r->second.value("environment", r->second), "state") << "\n";
  });
}

}  // namespace

bool IsClientCommand(const char* command) {
  for (const char* c : {"models", "load", "unload", "retest", "status", "environment", "nodes", "run", "list", "ps",
                        "show", "rm", "stop", "pull"}) {
    if (std::strcmp(command, c) == 0) return true;
  }
  return false;
}

int RunClientCommand(int argc, char** argv) {
  Args args;
  if (auto problem = ParseArgs(argc, argv, args)) return Usage(*problem);
  if (args.help) {
    std::cout << HelpFor(args.positional);
    return kExitOk;
  }
  if (args.positional.empty()) return Usage("no command");
  // Ollama's verbs (SPEC §18): list, show NAME, rm NAME are `models ...`; stop NAME is unload.
  {
    auto& p = args.positional;
    if (p[0] == "list" || p[0] == "show" || p[0] == "rm") p.insert(p.begin(), "models");
    if (p[0] == "stop") p[0] = "unload";
  }
  Client client(args);
  const std::string& command = args.positional[0];
  // The printers read the answer's fields with nlohmann, which throws on a
  // field of the wrong type (a server that is not modelwarden, a proxy):
  // that is an error answer, exit 1, not an abort.
  try {
    if (command == "models") return ModelsCommand(args, client);
    if (command == "load" || command == "retest") return LoadCommand(args, client, true);
    if (command == "environment") return EnvironmentCommand(args, client);
    if (command == "unload") return LoadCommand(args, client, false);
    if (command == "status") return StatusCommand(args, client);
    if (command == "nodes") return NodesCommand(args, client);
    if (command == "ps") return PsCommand(args, client);
    if (command == "pull") {
      if (args.positional.size() != 2) return Usage("pull needs one REPO[:QUANT|:FILE]");
      return RunPullCommand({args.url, args.api_key, args.json, args.positional[1], args.options["--name"],
                             args.options["--location"], args.test});
    }
    if (command == "run") {
      RunOptions options;
      options.json = args.json;
      for (const char* name : {"--max-tokens", "--temperature"}) {
        if (!args.options.count(name)) continue;
        if (auto problem = ParseRunOption(name, args.options[name], options)) return Usage(*problem);
      }
      if (args.options.count("--system")) options.system = args.options["--system"];
      return RunChatCommand(args.url, args.api_key, {args.positional.begin() + 1, args.positional.end()}, options);
    }
  } catch (const json::exception& e) {
    std::cout.flush();
    std::cerr << "modelwarden: unexpected answer from the server at " << args.url
              << " (is it a modelwarden server?): " << e.what() << "\n";
    return kExitError;
  }
  return Usage("unknown command '" + command + "'");
}

}  // namespace mw::cli
