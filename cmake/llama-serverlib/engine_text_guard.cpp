// Compiled into libmw-llama-server.so only (cmake/llama-serverlib/CMakeLists.txt),
// beside llama.cpp's tools/server, whose server-task.cpp is compiled with
// -Dcommon_chat_parse=mw_common_chat_parse: every parse of a generation's text
// comes here first. The text is repaired to valid UTF-8 (src/worker/text_guard.h)
// and handed to llama.cpp's real common_chat_parse, which otherwise throws on
// ill-formed bytes ("The model produced output that does not match the expected
// ... format") and turns a generation that ran into a 500 with its text lost.
// Any other failure of the parser (a tool-call format it cannot match) is
// passed on as before.
#include <string>

#include "chat.h"  // llama.cpp common/: common_chat_parse, common_chat_parser_params
#include "worker/text_guard.h"

common_chat_msg mw_common_chat_parse(const std::string& input, bool is_partial,
                                     const common_chat_parser_params& params) {
  return common_chat_parse(mw::worker::RepairUtf8(input, is_partial), is_partial, params);
}
