// modelwarden: the server (`serve`), the HTTP client commands and the local
// tools, behind one program. It never links llama.cpp: model files are only
// ever opened by modelwarden-worker.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "app/serve_command.h"
#include "cli/client_commands.h"
#ifdef MW_HAVE_CLASSIFY_COMMAND
#include "cli/classify_command.h"
#endif
#ifdef MW_HAVE_MAKE_TEST_MODEL_COMMAND
#include "cli/make_test_model_command.h"
#endif

#ifndef MW_VERSION
#define MW_VERSION "0.0.0"
#endif

namespace {

constexpr const char* kHelp =
    "modelwarden " MW_VERSION " — a local model server that learns which models work on this machine\n"
    "\n"
    "Server:\n"
    "  modelwarden serve [--host H] [--port P] [--data-dir DIR] [--config FILE]\n"
    "Client (talks to a running server; --url URL or $MODELWARDEN_URL, --api-key KEY, --json for scripts):\n"
    "  modelwarden models list\n"
    "  modelwarden models add NAME [--hf-path ORG/NAME] [--file PATH] [--engine llama.cpp|command]\n"
    "                              [--preset ENGINE_PRESET] [--location LOC] [--load-config JSON]\n"
    "  modelwarden models show NAME\n"
    "  modelwarden models set NAME [--status S] [--notes TEXT] [--load-config JSON]\n"
    "  modelwarden models rm NAME\n"
    "  modelwarden models scan         register the GGUF files in the locations not registered yet\n"
    "  modelwarden pull REPO[:QUANT|:FILE] [--name NAME] [--location LOC] [--test]\n"
    "                                  download a GGUF from Hugging Face and register it\n"
    "  modelwarden load NAME [--force]\n"
    "  modelwarden unload NAME\n"
    "  modelwarden status\n"
    "  modelwarden nodes               the servers sharing the registry, with their leases\n"
    "  modelwarden run NAME [PROMPT]   chat with a model (loads it on demand)\n"
    "  modelwarden list | ps | show NAME | rm NAME | stop NAME\n"
    "                                  models list | the loaded models | models show | models rm | unload\n"
    "Local tools:\n"
    "  modelwarden classify [--exit-code N] [--signal NAME] [--timed-out] [--patterns FILE] [FILE]\n"
    "  modelwarden make-test-model OUT.gguf [--layers N] [--embd N] [--ff N] [--ctx N] [--size-mb N]\n"
    "                              [--type f16|f32] [--seed N] [--vocab PATH]\n"
    "\n"
    "`modelwarden COMMAND --help` shows one command.\n"
    "\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 load refused because the model is incompatible.\n";

constexpr const char* kServeHelp =
    "usage: modelwarden serve [--host H] [--port P] [--data-dir DIR] [--config FILE]\n"
    "Runs the server. --host/--port: where it listens; --data-dir: its registry, logs and models;\n"
    "--config: its configuration file (TOML; flags take precedence over it).\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kHelp;
    return 2;
  }
  const char* command = argv[1];
  if (std::strcmp(command, "--help") == 0 || std::strcmp(command, "-h") == 0 || std::strcmp(command, "help") == 0) {
    std::cout << kHelp;
    return 0;
  }
  if (std::strcmp(command, "--version") == 0 || std::strcmp(command, "version") == 0) {
    std::cout << "modelwarden " << MW_VERSION << "\n";
    return 0;
  }
  if (std::strcmp(command, "serve") == 0) {
    for (int i = 2; i < argc; ++i) {
      if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
        std::cout << kServeHelp;
        return 0;
      }
    }
    return mw::app::RunServe(std::vector<std::string>(argv + 2, argv + argc));
  }
#ifdef MW_HAVE_CLASSIFY_COMMAND
  if (std::strcmp(command, "classify") == 0) return mw::RunClassifyCommand(argc - 1, argv + 1);
#endif
#ifdef MW_HAVE_MAKE_TEST_MODEL_COMMAND
  if (std::strcmp(command, "make-test-model") == 0) return mw::cli::RunMakeTestModelCommand(argc - 1, argv + 1);
#endif
  // Global client options may come first: `modelwarden --url U models list`.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--url") == 0 || std::strcmp(argv[i], "--api-key") == 0) {
      ++i;  // skip the option's value
      continue;
    }
    if (argv[i][0] != '-') {
      if (mw::cli::IsClientCommand(argv[i])) return mw::cli::RunClientCommand(argc - 1, argv + 1);
      break;
    }
  }
  std::cerr << "modelwarden: unknown command '" << command << "'\n\n" << kHelp;
  return 2;
}
