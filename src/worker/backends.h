// ggml backends and devices, seen from inside the worker.
#pragma once

#include <vector>

#include "protocol/protocol.h"

namespace mw::worker {

// llama_backend_init + ggml_backend_load_all_from_path(dir), once per process.
// dir = env MODELWARDEN_GGML_BACKEND_DIR, else <exe dir>/../lib when it holds
// libggml-base.so (the Debian package's bundled libraries), else the
// compile-time MW_GGML_BACKEND_DIR (the llama.cpp lib directory). Not thread-safe; call
// from main before any other thread uses ggml.
void InitBackendsOnce();

// Every device the loaded backends expose (META wrappers skipped), with the
// free/total memory the backend reports now.
std::vector<protocol::DeviceInfo> ProbeDevices();

}  // namespace mw::worker
