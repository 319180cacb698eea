// The environment fingerprint (SPEC §11): parsing of the files it reads, the
// stable hash, and which changes make a verdict stale for which engine.
#include "compat/environment.h"

#include <gtest/gtest.h>

namespace mw {
namespace {

EnvironmentInputs Inputs() {
  EnvironmentInputs in;
  in.devices = {{"CUDA0 NVIDIA H200", "gpu", int64_t{143771} << 20, ""}, {"CPU", "cpu", int64_t{64} << 30, ""}};
  in.devices_known = true;
  in.nvidia_version_file =
      "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
      "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n";
  in.proc_version = "Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 ...) #1 SMP\n";
  in.llama_build = "b7001";
  in.modelwarden_version = "0.3.0";
  return in;
}

TEST(EnvironmentTest, ComponentsFromWhatIsReadable) {
  EnvironmentComponents c = BuildComponents(Inputs());
  EXPECT_EQ(c["devices"], "gpu CUDA0 NVIDIA H200 143771 MiB; cpu CPU 65536 MiB");
  EXPECT_EQ(c["nvidia_driver"], "550.54.14");
  EXPECT_EQ(c.count("wsl_kernel"), 0u);  // not WSL
  EXPECT_EQ(c.count("amdgpu_driver"), 0u);
  EXPECT_EQ(c["llama.cpp"], "b7001");
  EXPECT_EQ(c["modelwarden"], "0.3.0");
  // Nothing readable: fewer components, never an error.
  EnvironmentInputs none;
  EXPECT_TRUE(BuildComponents(none).empty());
  EXPECT_EQ(Fingerprint(BuildComponents(none)).size(), 16u);
}

// SPEC §14: machines of the same hardware, driver major and llama.cpp
// build share a class; host-specific parts do not split it.
TEST(EnvironmentTest, ClassKeepsHardwareDriverMajorAndBuildOnly) {
  EnvironmentInputs in = Inputs();
  in.llama_lib = "/home/a/lib/libllama.so 123 456";
  EXPECT_EQ(SerializeComponents(ClassComponents(in)),
            "devices=cpu CPU; gpu CUDA0 NVIDIA H200\nllama.cpp=b7001\nnvidia_driver=550\n");
  const std::string cls = EnvironmentClass(in);
  EXPECT_EQ(cls.size(), 16u);
  EnvironmentInputs other_host = in;
  other_host.llama_lib = "/opt/mw/lib/libllama.so 999 1";
  other_host.modelwarden_version = "0.4.0";
  other_host.nvidia_version_file = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.90.07  Mon\n";
  other_host.devices = {{"CPU", "cpu", int64_t{128} << 30, ""}, {"CUDA0 NVIDIA H200", "gpu", int64_t{143000} << 20, ""}};
  EXPECT_EQ(EnvironmentClass(other_host), cls);
  for (auto change : {+[](EnvironmentInputs& e) { e.devices[0].name = "CUDA0 NVIDIA A100"; },
                      +[](EnvironmentInputs& e) { e.nvidia_version_file = "Kernel Module  535.1.2  x\n"; },
                      +[](EnvironmentInputs& e) { e.llama_build = "b7040"; },
                      +[](EnvironmentInputs& e) {
                        e.proc_version = "Linux version 5.15.153.1-microsoft-standard-WSL2 (x)";
                      }}) {
    EnvironmentInputs changed = in;
    change(changed);
    EXPECT_NE(EnvironmentClass(changed), cls) << SerializeComponents(ClassComponents(changed));
  }
}

TEST(EnvironmentTest, DriverFilesParse) {
  EXPECT_EQ(ParseNvidiaDriverVersion("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release "
                                     "Build  (dvs-builder@U16-I3-B03-4-3)  Fri Aug 16 21:42:42 UTC 2024\n"),
            "560.35.03");
  EXPECT_FALSE(ParseNvidiaDriverVersion("garbage\n").has_value());
  EXPECT_FALSE(ParseNvidiaDriverVersion("").has_value());
  EXPECT_EQ(ParseWslKernel("Linux version 5.15.153.1-microsoft-standard-WSL2 (root@941d701f84f1) (gcc ...)"),
            "5.15.153.1-microsoft-standard-WSL2");
  EXPECT_FALSE(ParseWslKernel("Linux version 6.1.0-18-amd64 (x)").has_value());
  EnvironmentInputs amd;
  amd.amdgpu_version_file = "6.7.0\n";
  EXPECT_EQ(BuildComponents(amd).at("amdgpu_driver"), "6.7.0");
}

TEST(EnvironmentTest, FingerprintIsStableAndSensitive) {
  EnvironmentComponents a = BuildComponents(Inputs());
  EXPECT_EQ(Fingerprint(a), Fingerprint(BuildComponents(Inputs())));
  EXPECT_EQ(ParseComponents(SerializeComponents(a)), a);
  EXPECT_EQ(Fingerprint(ParseComponents(SerializeComponents(a))), Fingerprint(a));
  EnvironmentInputs other = Inputs();
  other.devices[0].memory_total -= 1 << 20;
  EXPECT_NE(Fingerprint(BuildComponents(other)), Fingerprint(a));
}

TEST(EnvironmentTest, StaleOnlyForComponentsThatMatterToTheEngine) {
  EnvironmentComponents then = BuildComponents(Inputs());
  EnvironmentInputs newer = Inputs();
  newer.llama_build = "b7040";
  newer.modelwarden_version = "0.4.0";
  EnvironmentComponents now = BuildComponents(newer);
  VerdictStaleness llama = CompareVerdict(then, now, "llama.cpp");
  EXPECT_TRUE(llama.stale);
  EXPECT_EQ(llama.reason, "llama.cpp changed b7001 \u2192 b7040");  // modelwarden's version does not count
  EXPECT_FALSE(CompareVerdict(then, now, "command").stale);

  EnvironmentComponents cmd_then = then, cmd_now = then;
  cmd_then[std::string(kEngineBinaryKey)] = EngineBinaryComponent("/opt/e", 10, 100);
  cmd_now[std::string(kEngineBinaryKey)] = EngineBinaryComponent("/opt/e", 12, 200);
  VerdictStaleness cmd = CompareVerdict(cmd_then, cmd_now, "command");
  EXPECT_TRUE(cmd.stale);
  EXPECT_EQ(cmd.reason, "engine_binary changed /opt/e size=10 mtime=100 \u2192 /opt/e size=12 mtime=200");
  EXPECT_FALSE(CompareVerdict(cmd_then, cmd_now, "llama.cpp").stale);

  // A component unread then or now is no evidence of change.
  EnvironmentComponents fewer = then;
  fewer.erase("nvidia_driver");
  EXPECT_FALSE(CompareVerdict(then, fewer, "llama.cpp").stale);
  EXPECT_FALSE(CompareVerdict(fewer, then, "llama.cpp").stale);
  EnvironmentComponents newer_driver = then;
  newer_driver["nvidia_driver"] = "560.35.03";
  EXPECT_EQ(CompareVerdict(then, newer_driver, "llama.cpp").reason, "nvidia_driver changed 550.54.14 \u2192 560.35.03");
  EXPECT_FALSE(CompareVerdict(then, then, "llama.cpp").stale);
}

TEST(EnvironmentTest, AReplacedModelFileMakesTheVerdictStaleForEveryEngine) {
  EnvironmentComponents then = BuildComponents(Inputs()), now = then;
  then[std::string(kModelFileKey)] = ModelFileComponent(4821120, 100, "00aa");
  now[std::string(kModelFileKey)] = ModelFileComponent(9000000, 200, "00bb");
  EXPECT_EQ(CompareVerdict(then, now, "llama.cpp").reason, "model file changed");
  EXPECT_TRUE(CompareVerdict(then, now, "command").stale);
  EXPECT_FALSE(CompareVerdict(then, then, "llama.cpp").stale);
  // A verdict made before files were part of it: no evidence of a change.
  EnvironmentComponents before_files = BuildComponents(Inputs());
  EXPECT_FALSE(CompareVerdict(before_files, now, "llama.cpp").stale);
}

TEST(EnvironmentTest, MissingDevicesByKindAndName) {
  std::vector<EnvironmentDevice> before{{"CUDA0 NVIDIA H200", "gpu", 100, ""}, {"CPU", "cpu", 10, ""}, {"CPU", "cpu", 10, ""}};
  std::vector<std::string> good = DeviceKeys(before);
  EXPECT_EQ(good, (std::vector<std::string>{"cpu CPU", "gpu CUDA0 NVIDIA H200"}));
  // Memory is no part of a device's identity.
  EXPECT_TRUE(MissingDevices(good, DeviceKeys({{"CUDA0 NVIDIA H200", "gpu", 7, ""}, {"CPU", "cpu", 3, ""}})).empty());
  EXPECT_EQ(MissingDevices(good, DeviceKeys({{"CPU", "cpu", 10, ""}})), (std::vector<std::string>{"gpu CUDA0 NVIDIA H200"}));
  EXPECT_TRUE(MissingDevices({}, {}).empty());
  EXPECT_EQ(SplitLines(JoinLines(good)), good);
  EXPECT_TRUE(SplitLines("").empty());
}

// SPEC §15: the backend is part of a device's identity, but a machine whose
// devices did not change keeps its fingerprint and class when the probe
// starts naming backends (ggml's device names already start with them).
TEST(EnvironmentTest, BackendsNamedWithoutChangingKnownDevices) {
  EnvironmentInputs before = Inputs();
  EnvironmentInputs after = Inputs();
  after.devices = {{"CUDA0 NVIDIA H200", "gpu", int64_t{143771} << 20, "CUDA"}, {"CPU", "cpu", int64_t{64} << 30, "CPU"}};
  EXPECT_EQ(Fingerprint(BuildComponents(before)), Fingerprint(BuildComponents(after)));
  EXPECT_EQ(EnvironmentClass(before), EnvironmentClass(after));
  EXPECT_EQ(DeviceKeys(before.devices), DeviceKeys(after.devices));
  // A device whose name does not say its backend gets it written out.
  after.devices[0].backend = "RPC";
  EXPECT_EQ(BuildComponents(after)["devices"], "gpu RPC CUDA0 NVIDIA H200 143771 MiB; cpu CPU 65536 MiB");
  EXPECT_NE(EnvironmentClass(before), EnvironmentClass(after));
  // A new device (Vulkan0 on lavapipe) changes both.
  after = Inputs();
  after.devices.push_back({"Vulkan0 (llvmpipe)", "gpu", int64_t{2048} << 20, "Vulkan"});
  EXPECT_NE(EnvironmentClass(before), EnvironmentClass(after));
  EXPECT_EQ(MissingDevices(DeviceKeys(after.devices), DeviceKeys(before.devices)),
            (std::vector<std::string>{"gpu Vulkan0 (llvmpipe)"}));
}

TEST(EnvironmentTest, DeviceDriverFromTheComponents) {
  const EnvironmentComponents c = BuildComponents(Inputs());
  EXPECT_EQ(DeviceDriver("CUDA", "NVIDIA H200", c), "550.54.14");
  EXPECT_EQ(DeviceDriver("Vulkan", "NVIDIA GeForce RTX 4090", c), "550.54.14");
  EXPECT_EQ(DeviceDriver("Vulkan", "llvmpipe (LLVM 15.0.6, 256 bits)", c), std::nullopt);
  EXPECT_EQ(DeviceDriver("ROCm", "AMD Radeon RX 7900", c), std::nullopt);  // no amdgpu file
  EXPECT_EQ(DeviceDriver("CPU", "AMD EPYC", c), std::nullopt);
}

}  // namespace
}  // namespace mw
