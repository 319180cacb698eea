#include "worker/backends.h"

#include <unistd.h>

#include <cstdlib>
#include <optional>
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

namespace {

// nullopt for META devices (wrappers over devices already listed).
std::optional<protocol::DeviceKind> KindOf(ggml_backend_dev_t dev) {
  switch (ggml_backend_dev_type(dev)) {
    case GGML_BACKEND_DEVICE_TYPE_CPU: return protocol::DeviceKind::kCpu;
    case GGML_BACKEND_DEVICE_TYPE_GPU: return protocol::DeviceKind::kGpu;
    case GGML_BACKEND_DEVICE_TYPE_IGPU: return protocol::DeviceKind::kIgpu;
    case GGML_BACKEND_DEVICE_TYPE_ACCEL: return protocol::DeviceKind::kAccel;
    default: return std::nullopt;
  }
}

}  // namespace

std::vector<size_t> FreeMemoryPerDevice() {
  std::vector<size_t> out(ggml_backend_dev_count(), 0);
  for (size_t i = 0; i < out.size(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (KindOf(dev).value_or(protocol::DeviceKind::kCpu) == protocol::DeviceKind::kCpu) continue;
    size_t total = 0;
    ggml_backend_dev_memory(dev, &out[i], &total);
  }
  return out;
}

std::vector<protocol::DeviceUsage> MemoryUsedSince(const std::vector<size_t>& free_before, uint64_t host_estimate) {
  std::vector<protocol::DeviceUsage> out;
  const std::vector<size_t> free_after = FreeMemoryPerDevice();
  uint64_t offloaded = 0;
  std::string cpu_name = "CPU";
  for (size_t i = 0; i < free_after.size() && i < free_before.size(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    std::optional<protocol::DeviceKind> kind = KindOf(dev);
    if (!kind) continue;
    if (*kind == protocol::DeviceKind::kCpu) {
      cpu_name = ggml_backend_dev_name(dev);
      continue;
    }
    if (free_before[i] <= free_after[i]) continue;
    uint64_t used = free_before[i] - free_after[i];
    offloaded += used;
    out.push_back({ggml_backend_dev_name(dev), *kind, used});
  }
  out.insert(out.begin(), {cpu_name, protocol::DeviceKind::kCpu, host_estimate > offloaded ? host_estimate - offloaded : 0});
  return out;
}

std::vector<protocol::DeviceInfo> ProbeDevices() {
  std::vector<protocol::DeviceInfo> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    protocol::DeviceInfo info;
    std::optional<protocol::DeviceKind> kind = KindOf(dev);
    if (!kind) continue;
    info.kind = *kind;
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
