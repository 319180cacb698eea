#include "worker/backends.h"

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "ggml-backend.h"
#include "llama.h"

namespace mw::worker {
namespace {

// The Debian package bundles the llama.cpp libraries beside the worker
// (<exe dir>/../lib, cmake/packaging.cmake); empty when they are not there.
std::string BundledBackendDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string exe(buf, static_cast<size_t>(n));
  std::string dir = exe.substr(0, exe.rfind('/')) + "/../lib";
  return ::access((dir + "/libggml-base.so").c_str(), R_OK) == 0 ? dir : "";
}

}  // namespace

void InitBackendsOnce() {
  static bool done = false;
  if (done) return;
  done = true;
  llama_backend_init();
  const char* env = std::getenv("MODELWARDEN_GGML_BACKEND_DIR");
  std::string dir = env != nullptr ? env : "";
  if (dir.empty()) dir = BundledBackendDir();
  if (dir.empty()) dir = MW_GGML_BACKEND_DIR;
  ggml_backend_load_all_from_path(dir.c_str());
}

std::vector<protocol::DeviceInfo> ProbeDevices() {
  std::vector<protocol::DeviceInfo> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    protocol::DeviceInfo info;
    switch (ggml_backend_dev_type(dev)) {
      case GGML_BACKEND_DEVICE_TYPE_CPU: info.kind = protocol::DeviceKind::kCpu; break;
      case GGML_BACKEND_DEVICE_TYPE_GPU: info.kind = protocol::DeviceKind::kGpu; break;
      case GGML_BACKEND_DEVICE_TYPE_IGPU: info.kind = protocol::DeviceKind::kIgpu; break;
      case GGML_BACKEND_DEVICE_TYPE_ACCEL: info.kind = protocol::DeviceKind::kAccel; break;
      default: continue;  // META: a wrapper over devices already listed
    }
    const char* name = ggml_backend_dev_name(dev);
    const char* description = ggml_backend_dev_description(dev);
    info.name = name != nullptr ? name : "";
    info.description = description != nullptr ? description : "";
    size_t free_bytes = 0;
    size_t total_bytes = 0;
    ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);
    info.memory_free = free_bytes;
    info.memory_total = total_bytes;
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace mw::worker
