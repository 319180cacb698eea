// Text guard for llama.cpp's own output parser (SPEC §10: a generation that
// ran is never a 5xx). A model may sample tokens whose bytes are not valid
// UTF-8 (random-weight test models do this often); llama.cpp's chat output
// parser (common_chat_parse) then throws and the server answers 500 with the
// text lost. The serverlib build (cmake/llama-serverlib/) routes every call
// server-task.cpp makes to common_chat_parse through RepairUtf8 first
// (cmake/llama-serverlib/engine_text_guard.cpp), so the parser only ever sees
// valid UTF-8. Pure code: no llama.cpp types; compiled into libmw-llama-server.so
// and into its unit test (text_guard_test), never into modelwarden itself.
#pragma once

#include <string>
#include <string_view>

namespace mw::worker {

// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD (one per
// maximal ill-formed subpart, as Unicode recommends and nlohmann::json's
// "replace" error handler does, so what the parser sees is what the JSON
// sends). Overlong forms, surrogates and code points above U+10FFFF are
// ill-formed.
//
// A trailing sequence that is an incomplete but so far well-formed prefix of
// a character is the start of a character whose next bytes have not been
// generated yet: with `partial` it is DROPPED (the parser sees the text
// without it; the next call, with more bytes, decides), without `partial`
// (the generation has ended) it becomes U+FFFD. So for a text that only
// grows, RepairUtf8(prefix, true) is always a prefix of RepairUtf8(longer, _):
// streamed deltas stay monotonic. Returns `text` unchanged (as a copy) when it
// is valid UTF-8. Thread-safe (no state).
std::string RepairUtf8(std::string_view text, bool partial);

}  // namespace mw::worker
