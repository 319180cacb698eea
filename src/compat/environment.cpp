#include "compat/environment.h"

#include <algorithm>

#include "common/fnv_hash.h"

namespace mw {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\n' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\n' || s[e - 1] == '\r')) --e;
  return std::string(s.substr(b, e - b));
}

// One line: control characters become spaces (values are kept as lines).
std::string OneLine(std::string_view s) {
  std::string out;
  for (char c : s) out += (static_cast<unsigned char>(c) < 0x20) ? ' ' : c;
  return Trim(out);
}

// "kind [backend ]name" (see EnvironmentDevice::backend).
std::string Identity(const EnvironmentDevice& d) {
  const std::string name = OneLine(d.name);
  const std::string backend = OneLine(d.backend);
  const bool named = backend.empty() || name.rfind(backend, 0) == 0;
  return OneLine(d.kind) + " " + (named ? "" : backend + " ") + name;
}

std::string MiB(int64_t bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

bool Matters(std::string_view key, std::string_view engine) {
  if (key == "modelwarden") return false;
  if (key == "llama.cpp" || key == "llama.cpp_lib") return engine != "command";
  if (key == kEngineBinaryKey) return engine == "command";
  return true;
}

}  // namespace

std::optional<std::string> ParseNvidiaDriverVersion(std::string_view text) {
  // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 ..."
  // (open kernel modules: "NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build ...")
  const size_t line_end = text.find('\n');
  std::string_view line = text.substr(0, line_end);
  size_t pos = line.find("Module");
  if (pos == std::string_view::npos) return std::nullopt;
  for (size_t i = pos; i < line.size(); ++i) {
    if (line[i] >= '0' && line[i] <= '9') {
      size_t j = i;
      while (j < line.size() && ((line[j] >= '0' && line[j] <= '9') || line[j] == '.')) ++j;
      if (line.substr(i, j - i).find('.') != std::string_view::npos) return std::string(line.substr(i, j - i));
      i = j;
    }
  }
  return std::nullopt;
}

std::optional<std::string> ParseWslKernel(std::string_view proc_version) {
  // "Linux version 5.15.153.1-microsoft-standard-WSL2 (root@...) ..."
  constexpr std::string_view kPrefix = "Linux version ";
  if (proc_version.rfind(kPrefix, 0) != 0) return std::nullopt;
  std::string_view rest = proc_version.substr(kPrefix.size());
  std::string release(rest.substr(0, rest.find(' ')));
  std::string lower;
  for (char c : release) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower.find("microsoft") == std::string::npos && lower.find("wsl") == std::string::npos) return std::nullopt;
  return release;
}

EnvironmentComponents BuildComponents(const EnvironmentInputs& in) {
  EnvironmentComponents c;
  if (in.devices_known) {
    std::string devices;
    for (const EnvironmentDevice& d : in.devices) {
      if (!devices.empty()) devices += "; ";
      devices += Identity(d) + " " + MiB(d.memory_total);
    }
    c["devices"] = devices.empty() ? "(none)" : devices;
  }
  if (in.nvidia_version_file) {
    if (auto v = ParseNvidiaDriverVersion(*in.nvidia_version_file)) c["nvidia_driver"] = *v;
  }
  if (in.amdgpu_version_file) {
    std::string v = OneLine(*in.amdgpu_version_file);
    if (!v.empty()) c["amdgpu_driver"] = v;
  }
  if (in.proc_version) {
    if (auto v = ParseWslKernel(*in.proc_version)) c["wsl_kernel"] = *v;
  }
  if (!in.llama_build.empty()) c["llama.cpp"] = OneLine(in.llama_build);
  if (!in.llama_lib.empty()) c["llama.cpp_lib"] = OneLine(in.llama_lib);
  if (!in.modelwarden_version.empty()) c["modelwarden"] = OneLine(in.modelwarden_version);
  return c;
}

std::string EngineBinaryComponent(std::string_view resolved_path, int64_t size, int64_t mtime_s) {
  return OneLine(resolved_path) + " size=" + std::to_string(size) + " mtime=" + std::to_string(mtime_s);
}

std::string ModelFileComponent(uint64_t size, int64_t mtime_s, std::string_view index_hash) {
  return "size=" + std::to_string(size) + " mtime=" + std::to_string(mtime_s) + " gguf=" + OneLine(index_hash);
}

std::string SerializeComponents(const EnvironmentComponents& components) {
  std::string out;
  for (const auto& [key, value] : components) out += OneLine(key) + "=" + OneLine(value) + "\n";
  return out;
}

EnvironmentComponents ParseComponents(std::string_view text) {
  EnvironmentComponents c;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    c[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return c;
}

std::vector<std::string> DeviceKeys(const std::vector<EnvironmentDevice>& devices) {
  std::vector<std::string> keys;
  for (const EnvironmentDevice& d : devices) keys.push_back(Identity(d));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

std::vector<std::string> MissingDevices(const std::vector<std::string>& good, const std::vector<std::string>& now) {
  std::vector<std::string> missing;
  for (const std::string& key : good) {
    if (std::find(now.begin(), now.end(), key) == now.end()) missing.push_back(key);
  }
  return missing;
}

std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += OneLine(line) + "\n";
  return out;
}

std::string Fingerprint(const EnvironmentComponents& components) {
  return Fnv1a64Hex(SerializeComponents(components));
}

VerdictStaleness CompareVerdict(const EnvironmentComponents& then, const EnvironmentComponents& now,
                                std::string_view engine) {
  VerdictStaleness out;
  EnvironmentComponents keys;
  for (const auto& [k, v] : then) keys[k];
  for (const auto& [k, v] : now) keys[k];
  for (const auto& [key, unused] : keys) {
    if (!Matters(key, engine)) continue;
    auto a = then.find(key);
    auto b = now.find(key);
    const std::string* before = a == then.end() ? nullptr : &a->second;
    const std::string* after = b == now.end() ? nullptr : &b->second;
    // A component unread then or now (no driver file, the probe not done
    // yet) is no evidence of a change.
    if (before == nullptr || after == nullptr || *before == *after) continue;
    out.stale = true;
    if (!out.reason.empty()) out.reason += "; ";
    out.reason += key == kModelFileKey ? std::string("model file changed")
                                       : key + " changed " + *before + " \u2192 " + *after;
  }
  return out;
}

EnvironmentComponents ClassComponents(const EnvironmentInputs& in) {
  const EnvironmentComponents full = BuildComponents(in);
  EnvironmentComponents c;
  if (in.devices_known) {
    std::vector<std::string> devices;
    for (const EnvironmentDevice& d : in.devices) devices.push_back(Identity(d));
    std::sort(devices.begin(), devices.end());
    std::string text;
    for (const std::string& d : devices) text += (text.empty() ? "" : "; ") + d;
    c["devices"] = text.empty() ? "(none)" : text;
  }
  auto major = [](const std::string& version) { return version.substr(0, version.find('.')); };
  if (auto it = full.find("nvidia_driver"); it != full.end()) c["nvidia_driver"] = major(it->second);
  if (auto it = full.find("amdgpu_driver"); it != full.end()) c["amdgpu_driver"] = major(it->second);
  if (full.count("wsl_kernel") != 0) c["wsl"] = "yes";
  if (auto it = full.find("llama.cpp"); it != full.end()) c["llama.cpp"] = it->second;
  return c;
}

std::optional<std::string> DeviceDriver(std::string_view backend, std::string_view description,
                                        const EnvironmentComponents& components) {
  auto has = [&](std::string_view word) { return description.find(word) != std::string_view::npos; };
  const char* key = nullptr;
  if (backend == "CUDA" || (backend == "Vulkan" && has("NVIDIA"))) key = "nvidia_driver";
  if (backend == "ROCm" || (backend == "Vulkan" && (has("AMD") || has("Radeon")))) key = "amdgpu_driver";
  if (key == nullptr) return std::nullopt;
  auto it = components.find(key);
  if (it == components.end()) return std::nullopt;
  return it->second;
}

std::string EnvironmentClass(const EnvironmentInputs& inputs) { return Fingerprint(ClassComponents(inputs)); }

}  // namespace mw
