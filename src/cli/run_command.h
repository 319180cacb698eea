// cli/run_command.h: `modelwarden run NAME [PROMPT...]` (SPEC §10): chats
// with a model through the server's /v1/chat/completions, streaming the
// answer to the terminal as it is generated.
//
// With a PROMPT: one answer, then exit. Without: interactive; each line is a
// user turn (the conversation is kept), "/bye" or end of input leaves.
// Options (SPEC §18): --max-tokens N, --system TEXT, --temperature X, and
// --json (no streaming: the server's JSON answer of each turn is printed).
// Lines starting with '/' are commands, never sent to the model: /help,
// /set system TEXT | temperature X | max-tokens N, /clear (forget the
// conversation, keep the system prompt), /bye.
// Ctrl-C during an answer stops that generation (the connection is closed,
// so the server cancels it; the model stays loaded); Ctrl-C at the prompt
// leaves. Exit codes as the other client commands (3: the model is incompatible).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mw::cli {

struct RunOptions {
  std::optional<int64_t> max_tokens;
  std::optional<double> temperature;
  std::string system;  // "" = none
  bool json = false;
};

// Parses --max-tokens / --temperature values: nullopt and a message on a bad one.
std::optional<std::string> ParseRunOption(const std::string& name, const std::string& value, RunOptions& options);

// `words` = NAME [PROMPT...] (the words after "run").
int RunChatCommand(const std::string& url, const std::string& api_key, const std::vector<std::string>& words,
                   RunOptions options = {});

}  // namespace mw::cli
