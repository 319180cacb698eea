// cli/advice.h: the server's advice in the CLI's words (SPEC §18). Server
// messages name API fields and paths (force_load=true, POST /api/...,
// file_path); a CLI user needs the command that does the same.
#pragma once

#include <string>

namespace mw::cli {

// `message` with every API field or path it names rewritten as the
// modelwarden command for it; `model` is the model the command is about.
std::string InCliWords(std::string message, const std::string& model);

}  // namespace mw::cli
