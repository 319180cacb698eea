#include "fit/fit_suggest.h"

#include <gtest/gtest.h>

#include "fit/fit_test_shapes.h"

namespace mw::fit {
namespace {

using loadconfig::CacheType;
using loadconfig::FlashAttn;
using loadconfig::LlamaConfig;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

// 128 layers: an f16 KV cache of 32 KiB per token.
ModelShape Deep(int64_t train = 2048) { return TestShape(128, train, 10 * kMiB); }

std::vector<Device> Cpu(int64_t free) { return {{"CPU", false, free, 512 * kMiB}}; }
std::vector<Device> CpuAndGpu(int64_t ram, int64_t vram) {
  return {{"CPU", false, ram, 512 * kMiB}, {"GPU0", true, vram, 1024 * kMiB}};
}

LlamaConfig Ctx(uint32_t n) {
  LlamaConfig c;
  c.n_ctx = n;
  return c;
}

TEST(FitSuggestTest, OutOfMemoryOnACpuMachineLowersTheContextNeverTheGpuLayers) {
  const Change c = SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(16777216), Cpu(8 * kGiB));
  EXPECT_FALSE(c.n_gpu_layers);  // no GPU: it could not help
  ASSERT_TRUE(c.n_ctx);
  EXPECT_EQ(*c.n_ctx, 2048u);  // fits, and no more than the training context
  // Little free memory: the largest context that fits, a multiple of 256.
  const Change small = SuggestFix(FailureKind::kOutOfMemory, Deep(1 << 20), Ctx(16777216), Cpu(512 * kMiB + 40 * kMiB));
  ASSERT_TRUE(small.n_ctx);
  EXPECT_EQ(*small.n_ctx % 256, 0u);
  EXPECT_GE(*small.n_ctx, 256u);
  EXPECT_LE(*small.n_ctx, 1024u);  // 32 KiB per token in ~30 MiB beside weights and compute
  EXPECT_TRUE(EstimateMemory(Deep(1 << 20), ApplyChange(Ctx(16777216), small), Cpu(512 * kMiB + 40 * kMiB)).fits);
  // Nothing fits at all: no suggestion.
  EXPECT_TRUE(SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(16777216), Cpu(100 * kMiB)).empty());
}

TEST(FitSuggestTest, OutOfMemoryWithAGpuLowersTheGpuLayers) {
  // 10 MiB of weights and 64 MiB of KV cache at n_ctx 2048; the GPU has
  // 1024 MiB margin + 40 MiB.
  const Change c = SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(2048), CpuAndGpu(8 * kGiB, 1064 * kMiB));
  ASSERT_TRUE(c.n_gpu_layers);
  EXPECT_GT(*c.n_gpu_layers, 0);
  EXPECT_LT(*c.n_gpu_layers, 128);
  EXPECT_FALSE(c.n_ctx);
  EXPECT_TRUE(EstimateMemory(Deep(), ApplyChange(Ctx(2048), c), CpuAndGpu(8 * kGiB, 1064 * kMiB)).fits);
  // n_gpu_layers 0 already: the context is the lever.
  LlamaConfig cpu_only = Ctx(16777216);
  cpu_only.n_gpu_layers = 0;
  const Change ctx = SuggestFix(FailureKind::kOutOfMemory, Deep(), cpu_only, CpuAndGpu(8 * kGiB, 1064 * kMiB));
  EXPECT_FALSE(ctx.n_gpu_layers);
  EXPECT_EQ(ctx.n_ctx, 2048u);
}

TEST(FitSuggestTest, OutOfMemoryThatTheEstimateDidNotForeseeHalvesTheLever) {
  const Change c = SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(2048), Cpu(16 * kGiB));
  EXPECT_EQ(c.n_ctx, 1024u);
  EXPECT_TRUE(SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(256), Cpu(16 * kGiB)).empty());
  const Change gpu = SuggestFix(FailureKind::kOutOfMemory, Deep(), Ctx(2048), CpuAndGpu(16 * kGiB, 16 * kGiB));
  EXPECT_EQ(gpu.n_gpu_layers, 64);
}

TEST(FitSuggestTest, FlashAttentionAndQuantizedVCache) {
  LlamaConfig c;
  Change fa = SuggestFix(FailureKind::kFlashAttention, Deep(), c, Cpu(kGiB));
  EXPECT_EQ(fa.flash_attn, FlashAttn::kOff);
  EXPECT_FALSE(fa.cache_type_v);
  c.cache_type_v = CacheType::kQ8_0;  // a quantized V cache needs flash attention: f16 with it off
  fa = SuggestFix(FailureKind::kFlashAttention, Deep(), c, Cpu(kGiB));
  EXPECT_EQ(fa.flash_attn, FlashAttn::kOff);
  EXPECT_EQ(fa.cache_type_v, CacheType::kF16);
  const Change v = SuggestFix(FailureKind::kQuantizedVCache, Deep(), c, Cpu(kGiB));
  EXPECT_EQ(v.cache_type_v, CacheType::kF16);
  EXPECT_FALSE(v.flash_attn);
  c.flash_attn = FlashAttn::kOff;
  c.cache_type_v = CacheType::kF16;
  EXPECT_TRUE(SuggestFix(FailureKind::kFlashAttention, Deep(), c, Cpu(kGiB)).empty());
  EXPECT_TRUE(SuggestFix(FailureKind::kQuantizedVCache, Deep(), c, Cpu(kGiB)).empty());
  EXPECT_TRUE(SuggestFix(FailureKind::kOther, Deep(), c, Cpu(kGiB)).empty());
}

TEST(FitSuggestTest, FitUnsetLowersOnlyWhatTheUserLeftUnset) {
  // Trained on 2^20 tokens (32 GiB of KV cache): unset n_ctx is lowered to
  // what fits, not below the floor.
  const std::vector<Device> ram = Cpu(512 * kMiB + 200 * kMiB);
  Change c = FitUnset(Deep(1 << 20), LlamaConfig{}, ram, 4096);
  ASSERT_TRUE(c.n_ctx);
  EXPECT_TRUE(c.fits);
  EXPECT_GE(*c.n_ctx, 4096u);
  EXPECT_LT(*c.n_ctx, 1u << 20);
  EXPECT_FALSE(c.n_gpu_layers);
  EXPECT_TRUE(EstimateMemory(Deep(1 << 20), ApplyChange({}, c), ram).fits);
  // The training context fits: that is what unset means.
  c = FitUnset(Deep(2048), LlamaConfig{}, ram, 2048);
  EXPECT_EQ(c.n_ctx, 2048u);
  EXPECT_TRUE(c.fits);
  // Set by the user: never changed, even when it does not fit.
  c = FitUnset(Deep(1 << 20), Ctx(1 << 20), ram, 4096);
  EXPECT_TRUE(c.empty());
  EXPECT_FALSE(c.fits);
  // Even the floor does not fit: the floor, and fits is false.
  c = FitUnset(Deep(1 << 20), LlamaConfig{}, Cpu(512 * kMiB + 20 * kMiB), 4096);
  EXPECT_EQ(c.n_ctx, 4096u);
  EXPECT_FALSE(c.fits);
}

TEST(FitSuggestTest, FitUnsetMovesGpuLayersBeforeTheContext) {
  // 64 MiB of KV at 2048 and 10 MiB of weights; the GPU has 40 MiB beyond its margin.
  const std::vector<Device> devices = CpuAndGpu(8 * kGiB, 1064 * kMiB);
  Change c = FitUnset(Deep(2048), LlamaConfig{}, devices, 2048);
  ASSERT_TRUE(c.n_gpu_layers);
  EXPECT_LT(*c.n_gpu_layers, 128);
  EXPECT_EQ(c.n_ctx, 2048u);
  EXPECT_TRUE(c.fits);
  LlamaConfig user;
  user.n_gpu_layers = -1;  // set by the user: only the context may move
  c = FitUnset(Deep(1 << 20), user, devices, 2048);
  EXPECT_FALSE(c.n_gpu_layers);
}

// SPEC §18: the refusal's n_ctx never exceeds the training context and does
// not move with every MiB of free memory.
TEST(FitSuggestTest, SuggestedCtxIsCappedAndStable) {
  const std::vector<Device> plenty = Cpu(100 * kGiB);
  EXPECT_EQ(SuggestedCtx(Deep(2048), Ctx(1 << 20), plenty), 2048);  // LargestFittingCtx alone: far beyond
  EXPECT_EQ(SuggestedCtx(Deep(1000), Ctx(1 << 20), plenty), 768);   // a multiple of 256, not above 1000
  // Free memory for 2304 or 2816 tokens: LargestFittingCtx moves, the suggestion does not.
  auto free_for = [](uint32_t n) { return EstimateMemory(Deep(1 << 20), Ctx(n), Cpu(100 * kGiB)).total + 512 * kMiB; };
  const std::vector<Device> less = Cpu(free_for(2304)), more = Cpu(free_for(2816));
  EXPECT_NE(LargestFittingCtx(Deep(1 << 20), Ctx(1 << 20), less), LargestFittingCtx(Deep(1 << 20), Ctx(1 << 20), more));
  EXPECT_EQ(SuggestedCtx(Deep(1 << 20), Ctx(1 << 20), less), 2048);
  EXPECT_EQ(SuggestedCtx(Deep(1 << 20), Ctx(1 << 20), more), 2048);
  EXPECT_EQ(SuggestedCtx(Deep(1 << 20), Ctx(1 << 20), Cpu(free_for(3100))), 3072);
  EXPECT_EQ(SuggestedCtx(Deep(), Ctx(4096), Cpu(kMiB)), std::nullopt);
}

}  // namespace
}  // namespace mw::fit
