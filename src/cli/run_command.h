// cli/run_command.h: `modelwarden run NAME [PROMPT...]` (SPEC §10): chats
// with a model through the server's /v1/chat/completions, streaming the
// answer to the terminal as it is generated.
//
// With a PROMPT: one answer, then exit. Without: interactive; each line is a
// user turn (the conversation is kept), "/bye" or end of input leaves.
// Ctrl-C during an answer stops that generation (the connection is closed,
// so the server cancels it; the model stays loaded); Ctrl-C at the prompt
// leaves. Exit codes as the other client commands (3: the model is incompatible).
#pragma once

#include <string>
#include <vector>

namespace mw::cli {

// `words` = NAME [PROMPT...] (the words after "run").
int RunChatCommand(const std::string& url, const std::string& api_key, const std::vector<std::string>& words);

}  // namespace mw::cli
