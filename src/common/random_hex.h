// RandomHex: random bytes from the kernel (getrandom), written as lowercase
// hex. Used for secrets (a command engine's per-load key) and for names that
// must not collide (a fleet node's id), so one source serves both.
#pragma once

#include <cstddef>
#include <string>

#include "common/status.h"

namespace mw {

// 2 * `bytes` hex digits. kInternal only if the kernel refuses getrandom.
[[nodiscard]] Result<std::string> RandomHex(size_t bytes);

}  // namespace mw
