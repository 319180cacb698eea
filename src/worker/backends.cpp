#include "worker/backends.h"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

namespace {

// The GPU backend libraries ggml's loader looks for, the name their
// registry takes, and the vendor library each needs at run time (its
// absence means this machine has no such driver: the backend is skipped).
struct GpuLibrary {
  const char* file;
  const char* backend;
  const char* driver;
};
constexpr GpuLibrary kGpuLibraries[] = {
    {"libggml-cuda.so", "CUDA", "libcuda.so.1"},         {"libggml-hip.so", "ROCm", "libamdhip64.so"},
    {"libggml-vulkan.so", "Vulkan", "libvulkan.so.1"},   {"libggml-musa.so", "MUSA", "libmusa.so"},
    {"libggml-sycl.so", "SYCL", "libsycl.so"},           {"libggml-opencl.so", "OpenCL", "libOpenCL.so.1"},
};

std::vector<protocol::BackendInfo>& Backends() {
  static std::vector<protocol::BackendInfo> backends;
  return backends;
}

std::string FirstLine(const char* text) {
  std::string s = text != nullptr ? text : "";
  return s.substr(0, s.find('\n'));
}

// What became of one GPU backend library present in `dir` after ggml's loader ran.
protocol::BackendInfo Diagnose(const std::string& dir, const GpuLibrary& lib) {
  protocol::BackendInfo info;
  info.name = lib.backend;
  if (ggml_backend_reg_t reg = ggml_backend_reg_by_name(lib.backend)) {
    info.devices = static_cast<int64_t>(ggml_backend_reg_dev_count(reg));
    if (info.devices > 0) {
      info.state = "loaded";
      return info;
    }
    info.state = "skipped";
    info.reason = std::string("no ") + lib.backend + " device";
    if (std::strcmp(lib.backend, "Vulkan") == 0) {
      info.reason += " (CPU-type Vulkan devices such as Mesa's lavapipe are used only when "
                     "GGML_VK_VISIBLE_DEVICES names them)";
    }
    return info;
  }
  const std::string path = dir + "/" + lib.file;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const std::string error = FirstLine(::dlerror());
    const bool driver_missing = error.find(lib.driver) != std::string::npos &&
                                error.find("cannot open shared object file") != std::string::npos;
    info.state = driver_missing ? "skipped" : "failed";
    info.reason = driver_missing ? std::string("no ") + lib.backend + " driver on this machine (" + lib.driver +
                                       " not found)"
                                 : "cannot load " + path + ": " + error;
    return info;
  }
  ::dlclose(handle);
  info.state = "failed";
  info.reason = std::string(lib.file) + " loaded but the " + lib.backend +
                " backend did not initialise (the driver or runtime failed; see the worker's stderr)";
  return info;
}

}  // namespace

// Loads a GPU backend library of the GPU directory that ggml's own loader
// did not (it looks in the CPU directory only). Tried with dlopen first: a
// library whose driver is missing (libcuda.so.1) is left to Diagnose, so
// ggml never logs a "cannot open shared object file" line that a crash
// classifier would read as the driver failing.
void LoadGpuLibrary(const std::string& dir, const GpuLibrary& lib) {
  if (ggml_backend_reg_by_name(lib.backend) != nullptr) return;
  const std::string path = dir + "/" + lib.file;
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return;
  ggml_backend_load(path.c_str());  // kept open by `handle` too: loaded once
}

// ggml's log while the backends load: as ggml prints it, but for the
// Vulkan backend's "No devices found." on every machine without a Vulkan
// GPU, which a crash classifier would read as "no usable device" in the
// log of any later failure (SPEC §15: a machine without a GPU behaves as before).
void BackendLoadLog(ggml_log_level, const char* text, void*) {
  if (text == nullptr || std::strstr(text, "ggml_vulkan: No devices found") != nullptr) return;
  std::fputs(text, stderr);
}

void InitBackendsOnce() {
  static bool done = false;
  if (done) return;
  done = true;
  llama_backend_init();
  ggml_log_set(BackendLoadLog, nullptr);
  const char* env = std::getenv("MODELWARDEN_GGML_BACKEND_DIR");
  std::string dir = env != nullptr ? env : "";
  if (dir.empty()) dir = BundledBackendDir();
  const bool bundled = !dir.empty() && env == nullptr;
  if (dir.empty()) dir = MW_GGML_BACKEND_DIR;
  ggml_backend_load_all_from_path(dir.c_str());
  // The GPU plugins (SPEC §15): beside the CPU ones in the Debian package,
  // else in their own directory (env MODELWARDEN_GGML_GPU_DIR, else the build's).
  const char* gpu_env = std::getenv("MODELWARDEN_GGML_GPU_DIR");
  const std::string gpu_dir = gpu_env != nullptr ? gpu_env : bundled ? dir : MW_GGML_GPU_BACKEND_DIR;
  for (const GpuLibrary& lib : kGpuLibraries) {
    std::string where = dir;
    if (::access((where + "/" + lib.file).c_str(), R_OK) != 0) {
      where = gpu_dir;
      if (where.empty() || ::access((where + "/" + lib.file).c_str(), R_OK) != 0) continue;
      LoadGpuLibrary(where, lib);
    }
    Backends().push_back(Diagnose(where, lib));
  }
  ggml_log_set(nullptr, nullptr);  // ggml's default again (llama.cpp's server sets its own)
}

std::vector<protocol::BackendInfo> ProbeBackends() { return Backends(); }

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

bool HasGpuDevice() {
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    if (KindOf(ggml_backend_dev_get(i)).value_or(protocol::DeviceKind::kCpu) != protocol::DeviceKind::kCpu) return true;
  }
  return false;
}

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

int64_t OffloadedLayers(std::optional<int32_t> n_gpu_layers, int64_t n_layer,
                        const std::vector<protocol::DeviceUsage>& used, int64_t* n_layers) {
  *n_layers = n_layer > 0 ? n_layer + 1 : 0;
  bool gpu = false;
  for (const auto& u : used) gpu = gpu || (u.kind != protocol::DeviceKind::kCpu && u.memory_used > 0);
  if (!gpu) return 0;
  if (!n_gpu_layers || *n_gpu_layers < 0) return *n_layers;
  return std::min<int64_t>(*n_gpu_layers, *n_layers);
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
    if (ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev)) info.backend = ggml_backend_reg_name(reg);
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace mw::worker
