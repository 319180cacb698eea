// cli/model_file_offer.h: `models add --file` as a user at a shell means it
// (SPEC §18): a path relative to the current directory, and for a file
// outside the server's model locations an offer: copy it (--copy) or
// hard-link it (--link) into the location, or the [locations] lines that
// make its folder one. The CLI does the copy (the server never copies a file
// an HTTP client names). Pure helpers over the file system; never throw.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace mw::cli {

// `given` as an absolute path when it names a file relative to the current
// directory; otherwise `given` unchanged (the server reads it relative to
// the model location).
std::string FileArgument(const std::string& given);

// The location root named by the server's "file_path '...' is outside the
// model location ROOT (symlinks are resolved; ..." refusal, else nullopt.
std::optional<std::string> LocationOfOutsideRefusal(const std::string& message);

// Copies (or hard-links when `link`) `file` into `root` under its own file
// name; OK: that name. kAlreadyExists when the name is taken there (the
// message says to register that file instead); kFailedPrecondition for a
// hard link across file systems (the message says --copy); kInternal for
// other I/O errors.
Result<std::string> PlaceInLocation(const std::string& file, const std::string& root, bool link);

// What to do about a file outside the location: the --copy / --link
// commands and the [locations] lines for its folder.
std::string OutsideAdvice(const std::string& model, const std::string& file, const std::string& root);

}  // namespace mw::cli
