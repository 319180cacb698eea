// app/host_memory.h: the host's free RAM, one figure for every place that
// shows or uses it (the fit check, the memory line and the CPU device of
// /api/status, the page: SPEC §18).
#pragma once

#include <cstdint>
#include <optional>

namespace mw::app {

// MemAvailable of /proc/meminfo in bytes, read at the time of asking (RAM
// changes while the server runs); nullopt if it cannot be read. Thread-safe.
std::optional<int64_t> AvailableRam();

}  // namespace mw::app
