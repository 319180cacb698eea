#include "classifier/crash_classifier.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>

#include "classifier/crash_classifier_text.h"

namespace mw {
namespace {

const CrashClassifier& Builtin() {
  static const CrashClassifier* classifier = [] {
    Result<CrashClassifier> loaded = CrashClassifier::Load("");
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return new CrashClassifier(std::move(loaded).value());
  }();
  return *classifier;
}

Classification Check(std::string_view log, std::optional<int64_t> exit_code = std::nullopt,
                   std::optional<std::string> signal = std::nullopt, bool timed_out = false) {
  return Builtin().Classify(CrashEvidence{log, exit_code, std::move(signal), timed_out});
}

std::string Name(const Classification& c) { return std::string(CrashCategoryName(c.category)); }

CatalogEntry Entry(std::string id, CrashCategory category, std::string pattern, std::string summary,
                   int priority = -1) {
  CatalogEntry e;
  e.id = std::move(id);
  e.category = category;
  e.pattern = std::move(pattern);
  e.summary = std::move(summary);
  e.priority = priority >= 0 ? priority : DefaultCrashPriority(category);
  e.origin = "test";
  return e;
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             ("mw_crash_catalog_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".toml"))
                .string();
    std::ofstream(path_) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CrashCatalogTest, BuiltinParsesAndCompiles) {
  Result<std::vector<CatalogEntry>> builtin = BuiltinCrashCatalog();
  ASSERT_TRUE(builtin.ok()) << builtin.status().ToString();
  EXPECT_GT(builtin->size(), 40u);
  Result<CrashClassifier> classifier = CrashClassifier::Create(*builtin);
  ASSERT_TRUE(classifier.ok()) << classifier.status().ToString();
  // Every category of SPEC §2 except timeout-by-flag has built-in entries.
  for (auto category : {CrashCategory::kFlashAttention, CrashCategory::kGpuContext, CrashCategory::kOutOfMemory,
                        CrashCategory::kAssertion, CrashCategory::kAbortedSignal,
                        CrashCategory::kUnsupportedModel, CrashCategory::kTimeout, CrashCategory::kOther}) {
    bool found = false;
    for (const CatalogEntry& e : *builtin) found = found || e.category == category;
    EXPECT_TRUE(found) << CrashCategoryName(category);
  }
}

TEST(CrashCatalogTest, CategoryNamesRoundTrip) {
  for (std::string_view name : {"flash_attention", "gpu_context", "device_unavailable", "out_of_memory", "assertion",
                                "aborted_signal", "unsupported_model", "timeout", "other"}) {
    std::optional<CrashCategory> c = ParseCrashCategory(name);
    ASSERT_TRUE(c.has_value()) << name;
    EXPECT_EQ(CrashCategoryName(*c), name);
  }
  EXPECT_FALSE(ParseCrashCategory("segfault").has_value());
}

TEST(CrashCatalogTest, ParseErrorsNameFileAndEntry) {
  auto bad = ParseCrashCatalog("[[pattern]]\nid = \"x.y\"\ncategory = \"nope\"\nregex = 'a'\nsummary = 's'\n",
                               "/etc/mw/extra.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("/etc/mw/extra.toml"), std::string::npos);
  EXPECT_NE(bad.status().message().find("'x.y'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("unknown category 'nope'"), std::string::npos);

  EXPECT_FALSE(ParseCrashCatalog("[[pattern]]\nid = 'a'\n", "f").ok());  // missing fields
  EXPECT_FALSE(ParseCrashCatalog("this is not toml", "f").ok());
  EXPECT_FALSE(ParseCrashCatalog("[[pattern]]\nid='a'\ncategory='other'\nregex='a'\nsummary='s'\n"
                                 "[[pattern]]\nid='a'\ncategory='other'\nregex='b'\nsummary='s'\n",
                                 "f")
                   .ok());  // duplicate id
  EXPECT_FALSE(ParseCrashCatalog("[[pattern]]\nid='a'\ncategory='other'\nregex='a'\nsummary='s'\npriority=5000\n",
                                 "f")
                   .ok());
  EXPECT_FALSE(ParseCrashCatalog("[[pattern]]\nid='a'\ncategory='other'\nregex='a'\nsummary='s'\nscope='x'\n", "f")
                   .ok());
  EXPECT_FALSE(ParseCrashCatalog("[[pattern]]\nid='a'\ncategory='other'\nregex='a'\nsummary='s'\nrgex='b'\n", "f")
                   .ok());  // unknown key (typo) is not silently ignored
  auto empty = ParseCrashCatalog("", "f");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CrashCatalogTest, ParsesSuggestionsAsNativeValues) {
  auto parsed = ParseCrashCatalog(
      "[[pattern]]\nid='a'\ncategory='out_of_memory'\nregex='x'\nsummary='s'\n"
      "suggest = { n_ctx = 2048, flash_attn = false, device_map = 'cpu', rope = 0.5 }\n",
      "f");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  const auto& s = (*parsed)[0].suggest;
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ((*parsed)[0].priority, 80);
  bool saw_ctx = false, saw_fa = false, saw_map = false, saw_rope = false;
  for (const ConfigSetting& c : s) {
    if (c.key == "n_ctx") saw_ctx = std::get<int64_t>(c.value) == 2048;
    if (c.key == "flash_attn") saw_fa = std::get<bool>(c.value) == false;
    if (c.key == "device_map") saw_map = std::get<std::string>(c.value) == "cpu";
    if (c.key == "rope") saw_rope = std::get<double>(c.value) == 0.5;
  }
  EXPECT_TRUE(saw_ctx && saw_fa && saw_map && saw_rope);
}

TEST(CrashCatalogTest, BadUserPatternIsAClearStartupError) {
  TempFile file(
      "[[pattern]]\nid = \"mine.broken\"\ncategory = \"other\"\nregex = '''oops (unclosed'''\nsummary = \"x\"\n");
  Result<CrashClassifier> loaded = CrashClassifier::Load(file.path());
  ASSERT_FALSE(loaded.ok());
  const std::string& message = loaded.status().message();
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(message.find(file.path()), std::string::npos) << message;
  EXPECT_NE(message.find("'mine.broken'"), std::string::npos) << message;
  EXPECT_NE(message.find("missing )"), std::string::npos) << message;  // RE2's own words
}

TEST(CrashCatalogTest, MissingUserFileIsNotFound) {
  Result<CrashClassifier> loaded = CrashClassifier::Load("/nonexistent/dir/patterns.toml");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find("/nonexistent/dir/patterns.toml"), std::string::npos);
}

TEST(CrashClassifierTest, UserEntriesTakePrecedence) {
  TempFile file(
      "[[pattern]]\nid = \"site.bad_driver\"\ncategory = \"gpu_context\"\n"
      "regex = '''GGML_ASSERT\\(.*\\) failed'''\nsummary = \"known bad driver on this box\"\n"
      "suggest = { n_gpu_layers = 0 }\n"
      "[[pattern]]\nid = \"assertion.ggml_assert\"\ncategory = \"assertion\"\nregex = '''never-matches-xyz'''\n"
      "summary = \"replaced\"\n");
  Result<CrashClassifier> loaded = CrashClassifier::Load(file.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  // gpu_context (60) outranks the built-in partial GGML_ASSERT (50); the
  // built-in with the same id was replaced, so it no longer matches.
  Classification c = loaded->Classify({"ggml.c:1:  GGML_ASSERT(x == y) failed\n", std::nullopt, std::nullopt, false});
  EXPECT_EQ(c.pattern_id, "site.bad_driver");
  EXPECT_EQ(Name(c), "gpu_context");
  EXPECT_EQ(c.summary, "known bad driver on this box");
  ASSERT_EQ(c.suggested_load_config.size(), 1u);
  EXPECT_EQ(c.suggested_load_config[0].key, "n_gpu_layers");
}

TEST(CrashClassifierTest, UserEntryWinsTieOnSameLine) {
  std::vector<CatalogEntry> user = {Entry("user.seg", CrashCategory::kAbortedSignal, "SIGSEGV", "user says segv")};
  auto builtin = BuiltinCrashCatalog();
  ASSERT_TRUE(builtin.ok());
  auto classifier = CrashClassifier::Create(MergeCrashCatalogs(user, *builtin));
  ASSERT_TRUE(classifier.ok());
  EXPECT_EQ(classifier->Classify({"SIGSEGV: segmentation violation", std::nullopt, std::nullopt, false}).pattern_id,
            "user.seg");
}

TEST(CrashClassifierTest, HigherPriorityBeatsLaterLine) {
  auto c = Check("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 512.00 MiB on device 0: cudaMalloc failed: "
               "out of memory\nsome progress\nAborted (core dumped)\n");
  EXPECT_EQ(Name(c), "out_of_memory");
  EXPECT_EQ(c.summary, "cudaMalloc failed: out of memory (512.00 MiB on device 0)");
  EXPECT_EQ(c.matched_line.rfind("ggml_backend_cuda_buffer_type_alloc_buffer:", 0), 0u);
}

TEST(CrashClassifierTest, LaterLineWinsAmongEqualPriority) {
  auto c = Check("GGML_ASSERT(a == b) failed\nfoo\nGGML_ASSERT(c != d) failed\n");
  EXPECT_EQ(c.summary, "GGML_ASSERT(c != d) failed");
}

TEST(CrashClassifierTest, OrderingDecidesOnOneLine) {
  auto a = Entry("first", CrashCategory::kOther, "boom", "first");
  auto b = Entry("second", CrashCategory::kOther, "boom", "second");
  auto classifier = CrashClassifier::Create({a, b});
  ASSERT_TRUE(classifier.ok());
  EXPECT_EQ(classifier->Classify({"x boom y", std::nullopt, std::nullopt, false}).pattern_id, "first");
  auto reversed = CrashClassifier::Create({b, a});
  ASSERT_TRUE(reversed.ok());
  EXPECT_EQ(reversed->Classify({"x boom y", std::nullopt, std::nullopt, false}).pattern_id, "second");
}

TEST(CrashClassifierTest, AssertionInFlashAttentionKernelIsFlashAttention) {
  auto c = Check("llama_context: flash_attn = 1\n"
               "/src/ggml/src/ggml-cuda/fattn-common.cuh:745: GGML_ASSERT(ne11 % 256 == 0) failed\n"
               "Aborted (core dumped)\n");
  EXPECT_EQ(Name(c), "flash_attention");
  ASSERT_FALSE(c.suggested_load_config.empty());
  EXPECT_EQ(c.suggested_load_config[0].key, "flash_attn");
  EXPECT_EQ(std::get<bool>(c.suggested_load_config[0].value), false);
}

TEST(CrashClassifierTest, UnsupportedFlashAttentionThenAssertIsFlashAttention) {
  auto c = Check("ggml_cuda_flash_attn_ext: flash attention not supported\n"
               "GGML_ASSERT(false) failed\n");
  EXPECT_EQ(Name(c), "flash_attention");
  EXPECT_EQ(c.matched_line, "ggml_cuda_flash_attn_ext: flash attention not supported");
  // ... but the same words as a warning before llama.cpp turns it off are harmless.
  auto harmless = Check("llama_context: flash_attn is not supported by this backend - forcing off\n"
                        "llama_model_load: error loading model: unknown model architecture: 'foo'\n");
  EXPECT_EQ(Name(harmless), "unsupported_model");
}

TEST(CrashClassifierTest, GpuErrorInsideFlashKernelIsRefined) {
  auto c = Check("CUDA error: an illegal memory access was encountered\n"
               "  current device: 0, in function ggml_cuda_flash_attn_ext_vec_f16 at ggml-cuda/fattn-vec.cuh:500\n"
               "ggml-cuda.cu:90: CUDA error\n");
  EXPECT_EQ(Name(c), "flash_attention");
  EXPECT_EQ(c.pattern_id, "flash_attention.in_kernel");
  EXPECT_NE(c.summary.find("an illegal memory access was encountered"), std::string::npos) << c.summary;
  EXPECT_EQ(c.matched_line, "CUDA error: an illegal memory access was encountered");
}

TEST(CrashClassifierTest, FlashAttentionMentionsAloneAreHarmless) {
  auto c = Check("llama_context: flash_attn = auto -> enabled\nmsg=\"enabling flash attention\"\n"
               "llama_model_load: error loading model: error loading model architecture: unknown model "
               "architecture: 'foo'\n");
  EXPECT_EQ(Name(c), "unsupported_model");
  EXPECT_EQ(c.summary, "unknown model architecture 'foo'");
}

// A device without flash attention turns `auto` off, and llama.cpp then
// refuses the quantized V cache: the fix is an f16 V cache.
TEST(CrashClassifierTest, QuantizedVCacheWithoutFlashAttentionSuggestsF16) {
  auto c = Check("llama_context: flash_attn is not supported by this backend - forcing off\n"
                 "llama_init_from_model: failed to initialize the context: quantized V cache was requested, "
                 "but this requires Flash Attention\n"
                 "common_init_from_params: failed to create context with model 'm.gguf'\n", 1);
  EXPECT_EQ(Name(c), "flash_attention");
  EXPECT_EQ(c.pattern_id, "flash_attention.quantized_v_cache");
  ASSERT_EQ(c.suggested_load_config.size(), 1u);
  EXPECT_EQ(c.suggested_load_config[0].key, "cache_type_v");
  EXPECT_EQ(std::get<std::string>(c.suggested_load_config[0].value), "f16");
}

TEST(CrashClassifierTest, WarningBeforeFallbackIsDemoted) {
  auto c = Check("ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected\n"
               "load_tensors: offloading 0 layers to GPU\n"
               "GGML_ASSERT(ggml_can_mul_mat(a, b)) failed\n");
  EXPECT_EQ(Name(c), "assertion");
}

TEST(CrashClassifierTest, CreateContextFailureSuggestsCpu) {
  auto c = Check("rocm: CreateContext failed: hipErrorNoDevice\n", 1);
  EXPECT_EQ(Name(c), "gpu_context");
  EXPECT_EQ(c.summary, "CreateContext failed (hipErrorNoDevice)");
  ASSERT_EQ(c.suggested_load_config.size(), 1u);
  EXPECT_EQ(c.suggested_load_config[0].key, "n_gpu_layers");
  EXPECT_EQ(std::get<int64_t>(c.suggested_load_config[0].value), 0);
}

TEST(CrashClassifierTest, SignalIsEvidenceWithoutMatchingLine) {
  auto segv = Check("loading model\nall fine so far\n", std::nullopt, "SIGSEGV");
  EXPECT_EQ(Name(segv), "aborted_signal");
  EXPECT_EQ(segv.pattern_id, "aborted_signal.sigsegv");
  EXPECT_EQ(segv.matched_line, "");

  auto kill = Check("loading model\n", std::nullopt, "9");
  EXPECT_EQ(Name(kill), "out_of_memory");
  EXPECT_EQ(kill.pattern_id, "out_of_memory.killed");

  EXPECT_EQ(Name(Check("", std::nullopt, "abrt")), "aborted_signal");
  EXPECT_EQ(Name(Check("", std::nullopt, "SIGBUS")), "aborted_signal");
  EXPECT_EQ(Name(Check("", std::nullopt, "SIGILL")), "aborted_signal");
  auto odd = Check("", std::nullopt, "SIGUSR1");
  EXPECT_EQ(Name(odd), "aborted_signal");
  EXPECT_EQ(odd.summary, "killed by signal SIGUSR1");
}

TEST(CrashClassifierTest, RealLineOfEqualWeightBeatsSignal) {
  auto c = Check("Aborted (core dumped)\n", std::nullopt, "SIGABRT");
  EXPECT_EQ(c.matched_line, "Aborted (core dumped)");
}

TEST(CrashClassifierTest, SpecificLineBeatsSignal) {
  auto c = Check("GGML_ASSERT(x) failed\n", std::nullopt, "SIGABRT");
  EXPECT_EQ(Name(c), "assertion");
}

TEST(CrashClassifierTest, ExitCodesAreEvidence) {
  EXPECT_EQ(Check("", int64_t{3221226505}).pattern_id, "aborted_signal.win_fail_fast");
  EXPECT_EQ(Check("", int64_t{-1073740791}).pattern_id, "aborted_signal.win_fail_fast");
  EXPECT_EQ(Check("", int64_t{0xC0000005}).pattern_id, "aborted_signal.win_access_violation");
  EXPECT_EQ(Check("", int64_t{3221225785}).pattern_id, "other.win_entry_point");
  EXPECT_EQ(Check("", int64_t{139}).pattern_id, "aborted_signal.sigsegv");  // shell: 128 + 11
  auto one = Check("starting\n", 1);
  EXPECT_EQ(Name(one), "other");
  EXPECT_EQ(one.pattern_id, "unmatched");
  EXPECT_EQ(one.summary, "exited with status 1");
  EXPECT_EQ(one.matched_line, "starting");
}

// Exit codes in every form loaders report: negative, unsigned 32- and
// 64-bit, hex; each form of one code classifies the same.
TEST(CrashClassifierTest, ExitCodeInEveryForm) {
  EXPECT_EQ(ParseExitCode("1"), 1);
  EXPECT_EQ(ParseExitCode(" 139\n"), 139);
  EXPECT_EQ(ParseExitCode("-1"), -1);
  EXPECT_EQ(ParseExitCode("+2"), 2);
  EXPECT_EQ(ParseExitCode("0x7f"), 127);
  EXPECT_EQ(ParseExitCode("-0x1"), -1);
  EXPECT_EQ(ParseExitCode("18446744073709551615"), -1);  // unsigned 64-bit -1
  EXPECT_EQ(ParseExitCode("0xFFFFFFFFFFFFFFFF"), -1);
  EXPECT_EQ(ParseExitCode("-9223372036854775808"), std::numeric_limits<int64_t>::min());
  for (const char* bad : {"", "-", "0x", "abc", "1.5", "0xG1", "18446744073709551616", "-9223372036854775809", "1 2"}) {
    EXPECT_FALSE(ParseExitCode(bad).has_value()) << bad;
  }
  // STATUS_STACK_BUFFER_OVERRUN (fail fast) as Windows, Go, Python and Node report it.
  for (const char* form : {"3221226505", "-1073740791", "0xC0000409", "0xc0000409", "18446744072635810825",
                           "0xFFFFFFFFC0000409"}) {
    auto code = ParseExitCode(form);
    ASSERT_TRUE(code.has_value()) << form;
    EXPECT_EQ(Check("", *code).pattern_id, "aborted_signal.win_fail_fast") << form;
  }
  for (const char* form : {"3221225477", "-1073741819", "0xC0000005", "18446744072635809797"}) {
    EXPECT_EQ(Check("", *ParseExitCode(form)).pattern_id, "aborted_signal.win_access_violation") << form;
  }
  // A shell's 128 + signal, in decimal or hex.
  EXPECT_EQ(Check("", *ParseExitCode("0x8b")).pattern_id, "aborted_signal.sigsegv");
}

TEST(CrashClassifierTest, TimeoutFlagDecides) {
  auto plain = Check("loading tensors 10%\n", std::nullopt, "SIGKILL", true);
  EXPECT_EQ(Name(plain), "timeout");
  EXPECT_EQ(plain.pattern_id, "timeout.load");
  auto with_error = Check("CUDA error: unspecified launch failure\n", std::nullopt, std::nullopt, true);
  EXPECT_EQ(Name(with_error), "timeout");
  EXPECT_NE(with_error.summary.find("last error: CUDA error: unspecified launch failure"), std::string::npos)
      << with_error.summary;
  EXPECT_EQ(with_error.matched_line, "CUDA error: unspecified launch failure");
  EXPECT_EQ(Name(Check("Error: timed out waiting for llama runner to start - progress 0.00 -\n")), "timeout");
}

TEST(CrashClassifierTest, CancelledIsNotTimeout) {
  auto c = Check("msg=\"error loading llama server\" error=\"timed out waiting for llama runner to start: context "
               "canceled\"\n");
  EXPECT_EQ(Name(c), "other");
  EXPECT_EQ(c.pattern_id, "other.cancelled");
}

TEST(CrashClassifierTest, EmptyInput) {
  auto c = Check("");
  EXPECT_EQ(Name(c), "other");
  EXPECT_EQ(c.pattern_id, "unmatched");
  EXPECT_EQ(c.matched_line, "");
  EXPECT_FALSE(c.summary.empty());
}

// No usable device, a driver that does not initialise, a device lost: the
// environment's failure (SPEC §11), across backends. No suggestion: the fix
// is on the machine.
TEST(CrashClassifierTest, DeviceUnavailableAcrossBackends) {
  const char* lines[] = {
      "CUDA error: no CUDA-capable device is detected",
      "ggml_cuda_init: failed to initialize CUDA: no CUDA-capable device is detected",
      "Failed to initialize NVML: Driver/library version mismatch",
      "NVML: Driver/library version mismatch",
      "CUDA error 35 at ggml-cuda.cu:1234: CUDA driver version is insufficient for CUDA runtime version",
      "hipErrorNoDevice",
      "HIP error: hipErrorNoDevice",
      "vk::Queue::submit: ErrorDeviceLost",
      "ggml_vulkan: device lost: VK_ERROR_DEVICE_LOST",
      "NVRM: Xid 79, GPU has fallen off the bus.",
      "ggml_metal_init: error: MTLCreateSystemDefaultDevice returned nil",
      "libcuda.so.1: cannot open shared object file: No such file or directory (WSL: /usr/lib/wsl/lib)",
  };
  for (const char* line : lines) {
    auto c = Check(std::string(line) + "\n", 1);
    EXPECT_EQ(Name(c), "device_unavailable") << line << " -> " << c.pattern_id;
    EXPECT_TRUE(c.suggested_load_config.empty()) << line;
  }
  // CreateContext stays gpu_context (SPEC §1's example verdict), which still
  // counts as device-level for a system-wide streak.
  EXPECT_EQ(Name(Check("rocm: CreateContext failed: hipErrorNoDevice\n", 1)), "gpu_context");
  EXPECT_TRUE(IsDeviceLevelCategory("gpu_context"));
  EXPECT_TRUE(IsDeviceLevelCategory("device_unavailable"));
  EXPECT_FALSE(IsDeviceLevelCategory("out_of_memory"));
}

TEST(CrashClassifierTest, BinaryInputIsSafeAndOutputIsValidUtf8) {
  std::mt19937 rng(42);
  std::string garbage(200000, '\0');
  for (char& ch : garbage) ch = static_cast<char>(rng() & 0xFF);
  auto c = Check(garbage);
  EXPECT_LE(c.matched_line.size(), 512u);
  EXPECT_EQ(SanitizeUtf8Line(c.matched_line, 1000), c.matched_line);  // already clean
  std::string mixed = garbage.substr(0, 3000) + "\nCUDA error: \xff\xfe bad \x1b[31mthing\x1b[0m\n" + '\0' + "x";
  auto m = Check(mixed);
  EXPECT_EQ(Name(m), "gpu_context");
  EXPECT_EQ(SanitizeUtf8Line(m.matched_line, 1000), m.matched_line);
  EXPECT_NE(m.matched_line.find("\xEF\xBF\xBD"), std::string::npos);
  EXPECT_EQ(m.matched_line.find('\x1b'), std::string::npos);
}

TEST(CrashClassifierTest, HugeInputLooksAtTheEnd) {
  std::string log = "GGML_ASSERT(early) failed\n";
  while (log.size() < (3u << 20)) log += "llama_model_loader: - kv  12: some.key u32 = 4096\n";
  log += "cudaMalloc failed: out of memory\n";
  auto c = Check(log);
  EXPECT_EQ(Name(c), "out_of_memory");
}

TEST(CrashClassifierTest, CrlfLines) {
  auto c = Check("a\r\nGGML_ASSERT(x) failed\r\nb\r\n");
  EXPECT_EQ(c.matched_line, "GGML_ASSERT(x) failed");
}

// Typical final errors of each backend family, worded as the engines print
// them (not taken from the corpus): each must land in its category.
TEST(CrashClassifierTest, BackendFamilies) {
  struct Case {
    const char* line;
    const char* category;
  };
  const Case cases[] = {
      // CUDA
      {"CUDA error: out of memory", "out_of_memory"},
      {"CUDA error: unspecified launch failure", "gpu_context"},
      {"CUDA error: CUDA driver version is insufficient for CUDA runtime version", "device_unavailable"},
      {"libcuda.so.1: cannot open shared object file: No such file or directory", "device_unavailable"},
      {"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", "out_of_memory"},
      // ROCm / HIP
      {"rocBLAS error: Cannot read /opt/rocm/lib/rocblas/library/TensileLibrary.dat: No such file or directory",
       "gpu_context"},
      {"HIP error: hipErrorNoBinaryForGpu: Unable to find code object for all current devices!", "gpu_context"},
      {"ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000.00 MiB on device 0: hipMalloc failed: "
       "out of memory",
       "out_of_memory"},
      {"amdgpu_device_initialize: amdgpu CreateContext failed (-19)", "gpu_context"},
      // Vulkan
      {"ggml_vulkan: Device memory allocation of size 4294967296 failed.", "out_of_memory"},
      {"vk::Device::allocateMemory: ErrorOutOfDeviceMemory", "out_of_memory"},
      {"vk::createInstance: ErrorIncompatibleDriver", "device_unavailable"},
      // SYCL / Level Zero
      {"UR_RESULT_ERROR_DEVICE_LOST", "device_unavailable"},
      {"terminate called after throwing an instance of 'sycl::_V1::runtime_error'\n  what():  No device of "
       "requested type available.",
       "device_unavailable"},
      // Metal
      {"ggml_metal_init: error: failed to create command queue", "gpu_context"},
      {"ggml_backend_metal_buffer_type_alloc_buffer: error: failed to allocate buffer, size = 8192.00 MiB",
       "out_of_memory"},
      // CPU
      {"ggml_aligned_malloc: insufficient memory (attempted to allocate 70000.00 MB)", "out_of_memory"},
      {"Illegal instruction (core dumped)", "aborted_signal"},
      {"Bus error (core dumped)", "aborted_signal"},
      {"terminate called after throwing an instance of 'std::bad_alloc'", "out_of_memory"},
      // Model files
      {"gguf_init_from_file_impl: invalid magic characters: 'PK\x03\x04', expected 'GGUF'", "unsupported_model"},
      {"llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds, "
       "model is corrupted or incomplete",
       "unsupported_model"},
      {"llama_model_load: error loading model: error loading model hyperparameters: key not found in model: "
       "llama.context_length",
       "unsupported_model"},
      {"llama_model_load: error loading model: unknown pre-tokenizer type: 'superbpe'", "unsupported_model"},
      // Flash attention
      {"RuntimeError: FlashAttention only supports Ampere GPUs or newer.", "flash_attention"},
      {"ImportError: FlashAttention2 has been toggled on, but it cannot be used due to the following error: the "
       "package flash_attn seems to be not installed.",
       "flash_attention"},
      // Hangs, libraries
      {"Error: timed out waiting for llama runner to start", "timeout"},
      {"./llama-server: error while loading shared libraries: libggml.so: cannot open shared object file", "other"},
  };
  for (const Case& c : cases) {
    std::string log = std::string("llama_model_loader: - kv   0: general.architecture str = llama\n") + c.line + "\n";
    Classification result = Check(log);
    EXPECT_EQ(Name(result), c.category) << c.line << "\n  -> " << result.pattern_id << ": " << result.summary;
  }
}

// Lines real engines print on successful loads must not decide a failure.
TEST(CrashClassifierTest, HarmlessLinesDoNotDecide) {
  const char* harmless =
      "ggml_cuda_init: GGML_CUDA_FORCE_MMQ:    no\n"
      "llama_context: flash_attn = auto -> enabled\n"
      "ggml_metal_init: loaded kernel_flash_attn_ext_f16_h64 0x600003e00000 | th_max = 896 | th_width = 32\n"
      "ggml_metal_init: skipping kernel_get_rows_bf16 (not supported)\n"
      "WARNING: failed to allocate 512.00 MB of pinned memory: out of memory\n"
      "load_tensors: tensor 'token_embd.weight' (q4_K) cannot be used with preferred buffer type CUDA_Host, "
      "using CPU instead\n"
      "/opt/amdgpu/share/libdrm/amdgpu.ids: No such file or directory\n"
      "common_init_from_params: warming up the model with an empty run - please wait ... (--no-warmup to disable)\n"
      "time=2025-01-01T00:00:00Z level=INFO source=server.go:182 msg=\"enabling flash attention\"\n"
      "UserWarning: 1Torch was not compiled with flash attention.\n";
  Classification result = Check(harmless, std::nullopt, "SIGSEGV");
  EXPECT_EQ(result.pattern_id, "aborted_signal.sigsegv") << result.summary << " / " << result.matched_line;
}

TEST(CrashClassifierTest, ParseSignalForms) {
  EXPECT_EQ(ParseSignal("SIGSEGV")->number, 11);
  EXPECT_EQ(ParseSignal("segv")->name, "SIGSEGV");
  EXPECT_EQ(ParseSignal(" 6 ")->name, "SIGABRT");
  EXPECT_EQ(ParseSignal("signal 9")->name, "SIGKILL");
  EXPECT_EQ(ParseSignal("42")->name, "signal 42");
  EXPECT_FALSE(ParseSignal("  ").has_value());
}

TEST(CrashClassifierTextTest, Sanitize) {
  EXPECT_EQ(SanitizeUtf8Line("  \x1b[1mhi\x1b[0m\tthere  ", 100), "hi there");
  EXPECT_EQ(SanitizeUtf8Line("caf\xc3\xa9", 100), "caf\xc3\xa9");
  EXPECT_EQ(SanitizeUtf8Line("a\xff", 100), "a\xEF\xBF\xBD");
  std::string cut = SanitizeUtf8Line(std::string(50, 'x') + "\xc3\xa9\xc3\xa9\xc3\xa9", 53);
  EXPECT_LE(cut.size(), 53u);
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_EQ(SanitizeUtf8Line(cut, 100), cut);
}

}  // namespace
}  // namespace mw

// Live bytes of C++ allocations (RE2 allocates with new), counted exactly:
// the C library's own figures (mallinfo2) count chunks kept in its per-thread
// caches as in use, which is noise of the size this test looks for.
std::atomic<long> g_live_bytes{0};

void* operator new(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_live_bytes += static_cast<long>(malloc_usable_size(p));
  return p;
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_bytes -= static_cast<long>(malloc_usable_size(p));
  std::free(p);
}
void operator delete[](void* p) noexcept { operator delete(p); }
void operator delete(void* p, std::size_t) noexcept { operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { operator delete(p); }

namespace mw {
namespace {

// The server keeps one classifier for its life and classifies every load's
// log with it: what the classifier keeps between calls must not grow with each
// new log (RE2's Set keeps every DFA state it builds for its life, up to a
// 64 MB budget). Logs in the loader's style whose words and numbers differ
// every time, as no two loads print the same; what is live after 64 of them
// and after 512 more (the same point of the Set's recompilation cycle)
// differs by far less than what the 512 logs' DFA states hold when the Set is
// compiled once.
TEST(CrashClassifierMemory, WhatItKeepsDoesNotGrowWithEveryNewLog) {
  Result<CrashClassifier> classifier = CrashClassifier::Load("");
  ASSERT_TRUE(classifier.ok()) << classifier.status().ToString();
  std::mt19937 rng(25);
  const std::string letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.";
  auto word = [&] {
    std::string w(2 + rng() % 10, ' ');
    for (char& c : w) c = letters[rng() % letters.size()];
    return w;
  };
  auto classify_logs = [&](int n) {
    CrashEvidence evidence;
    for (int i = 0; i < n; ++i) {
      std::string log;
      while (log.size() < 16384) {
        log += "llama_model_loader: - kv " + std::to_string(rng() % 100) + ": " + word() + " " + word() + " = " +
               std::to_string(rng()) + " (" + word() + ")\n";
      }
      evidence.output = log;
      (void)classifier->Classify(evidence);
    }
  };
  classify_logs(64);
  const long after_64 = g_live_bytes.load();
  classify_logs(512);
  const long grown = g_live_bytes.load() - after_64;
  std::printf("live C++ heap grew by %ld bytes over the last 512 logs\n", grown);
  EXPECT_LT(grown, 64L << 10);
}

}  // namespace
}  // namespace mw
