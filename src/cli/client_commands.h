// cli/client_commands.h: the command-line client (SPEC §8) that talks to a
// running `modelwarden serve` over HTTP (through http_client/http_client.h).
//
//   modelwarden [--url URL] [--json] models list
//   modelwarden models add NAME [--hf-path ORG/NAME] [--file PATH] [--engine E]
//                               [--location LOC] [--load-config JSON]
//   modelwarden models show NAME
//   modelwarden models set NAME [--status S] [--notes TEXT] [--load-config JSON]
//   modelwarden models rm NAME
//   modelwarden models scan | pull REPO[:QUANT|:FILE] ...   (cli/pull_command.h)
//   modelwarden load NAME [--force]
//   modelwarden unload NAME
//   modelwarden status
//   modelwarden nodes                    (SPEC §14: the servers sharing the registry)
//   modelwarden run NAME [PROMPT...]     (cli/run_command.h)
//   modelwarden list | ps | show NAME | rm NAME | stop NAME   (SPEC §18: Ollama's verbs)
// Every command takes --help / -h. Server messages are printed with their
// advice in CLI words (cli/advice.h).
// The server is --url, else $MODELWARDEN_URL, else http://127.0.0.1:8080;
// the API key is $MODELWARDEN_API_KEY (or --api-key). Output is a readable
// table/text by default and the server's JSON with --json.
#pragma once

namespace mw::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitIncompatible = 3;  // load refused: the model is incompatible

// True if `command` (argv[0] of a subcommand) is one of the client commands.
bool IsClientCommand(const char* command);

// argv[0] is the subcommand ("models", "load", "unload", "status", "nodes", ...); global
// options (--url, --json, --api-key) may appear anywhere. Returns an exit
// code above. Blocks until the server answers (a load waits for its attempt).
int RunClientCommand(int argc, char** argv);

}  // namespace mw::cli
