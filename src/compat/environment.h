// compat/environment: the environment a verdict is made in (SPEC §11).
//
// Pure logic, no I/O: the caller reads the files and the probe and hands
// their text in; everything here is a function of its inputs.
//
//   Components            ordered key -> value, e.g. "llama.cpp" -> "b7040"
//   EnvironmentInputs     raw texts: probe devices, /proc/driver/nvidia/version,
//                         /sys/module/amdgpu/version, /proc/version, builds
//   BuildComponents(inputs) -> Components   (a part that cannot be read is
//                         simply absent: never an error)
//   EngineBinaryComponent(path, size, mtime) -> the "engine_binary" value
//   Fingerprint(components) -> 16 hex digits (FNV-1a 64 over the canonical
//                         text: stable across runs, builds and machines)
//   SerializeComponents / ParseComponents: "key=value\n" lines (the registry's
//                         `environments` table keeps them)
//   CompareVerdict(then, now, engine) -> {stale, reason}: only components
//                         that matter to a model of `engine` count:
//                         devices and drivers always, "llama.cpp" and
//                         "llama.cpp_lib" for llama.cpp models,
//                         "engine_binary" for command models,
//                         "model_file" for all (its change reads "model
//                         file changed", SPEC §18). The
//                         modelwarden version is recorded, never compared
//                         (an upgrade alone does not void every verdict).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/text_lines.h"

namespace mw {

using EnvironmentComponents = std::map<std::string, std::string, std::less<>>;

struct EnvironmentDevice {
  std::string name;  // as the engine names it, e.g. "CUDA0 (NVIDIA H200)"
  std::string kind;  // "cpu", "gpu", "accel", ...
  int64_t memory_total = 0;
  // The ggml backend ("CUDA", "Vulkan", "CPU"; "" when unknown). Part of the
  // device's identity (SPEC §15) but written only where the name does not
  // already start with it, as ggml's names do ("CUDA0", "Vulkan0", "CPU"):
  // so the fingerprint of a machine whose devices did not change stays the
  // same when backends are added or the probe starts reporting them.
  std::string backend;
};

struct EnvironmentInputs {
  std::vector<EnvironmentDevice> devices;
  bool devices_known = false;        // the probe answered (else no "devices" component)
  std::optional<std::string> nvidia_version_file;  // text of /proc/driver/nvidia/version
  std::optional<std::string> amdgpu_version_file;  // text of /sys/module/amdgpu/version
  std::optional<std::string> proc_version;         // text of /proc/version
  std::string llama_build;                         // the llama.cpp release/build this server uses
  std::string llama_lib;                           // "path size mtime" of the llama library, or ""
  std::string modelwarden_version;
};

// Keys: "devices", "nvidia_driver", "amdgpu_driver", "wsl_kernel",
// "llama.cpp", "llama.cpp_lib", "modelwarden". Absent when unknown.
EnvironmentComponents BuildComponents(const EnvironmentInputs& inputs);

// "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu ..." -> "550.54.14".
std::optional<std::string> ParseNvidiaDriverVersion(std::string_view text);
// The kernel release of a WSL kernel ("5.15.153.1-microsoft-standard-WSL2"), else nullopt.
std::optional<std::string> ParseWslKernel(std::string_view proc_version);

// The value of the "engine_binary" component of a command model.
std::string EngineBinaryComponent(std::string_view resolved_path, int64_t size, int64_t mtime_s);
inline constexpr std::string_view kEngineBinaryKey = "engine_binary";
// The model file's identity (SPEC §18): "size=N mtime=S gguf=HASH" (the hash
// of its GGUF header and tensor index), for every engine when the model
// names a file. A change reads "model file changed".
std::string ModelFileComponent(uint64_t size, int64_t mtime_s, std::string_view index_hash);
inline constexpr std::string_view kModelFileKey = "model_file";

std::string Fingerprint(const EnvironmentComponents& components);

// SPEC §14: the environment class, what the nodes of a fleet share a verdict
// by: the fingerprint's components without the host-specific parts. Kept:
// "devices" (kind and name of each, sorted: no memory sizes), the major of
// "nvidia_driver" and "amdgpu_driver", "wsl" (yes when a WSL kernel runs,
// not its release), "llama.cpp" (the build). Dropped: "llama.cpp_lib" (a
// path and mtime), "modelwarden", engine binaries.
EnvironmentComponents ClassComponents(const EnvironmentInputs& inputs);
// Fingerprint(ClassComponents(inputs)): 16 hex digits.
std::string EnvironmentClass(const EnvironmentInputs& inputs);
std::string SerializeComponents(const EnvironmentComponents& components);
EnvironmentComponents ParseComponents(std::string_view text);

// The driver version of a device when the components know it (SPEC §15):
// "nvidia_driver" for CUDA devices and Vulkan devices described as NVIDIA,
// "amdgpu_driver" for ROCm devices and Vulkan devices described as AMD/Radeon.
std::optional<std::string> DeviceDriver(std::string_view backend, std::string_view description,
                                        const EnvironmentComponents& components);

// Device identities for the probe's "no longer sees a device" check: one
// "kind name" per device (memory is not part of it), sorted, unique.
std::vector<std::string> DeviceKeys(const std::vector<EnvironmentDevice>& devices);
// The keys of `good` that `now` lacks (in `good`'s order).
std::vector<std::string> MissingDevices(const std::vector<std::string>& good, const std::vector<std::string>& now);
// One key per line (the registry keeps the last good probe's); SplitLines
// (common/text_lines.h) reads them back.
std::string JoinLines(const std::vector<std::string>& lines);

struct VerdictStaleness {
  bool stale = false;
  std::string reason;  // "llama.cpp changed b7001 → b7040; ..." (empty when not stale)
};
// `engine`: "llama.cpp" or "command".
VerdictStaleness CompareVerdict(const EnvironmentComponents& then, const EnvironmentComponents& now,
                                std::string_view engine);

}  // namespace mw
