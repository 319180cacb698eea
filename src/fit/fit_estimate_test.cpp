#include "fit/fit_estimate.h"

#include <gtest/gtest.h>

#include "fit/fit_test_shapes.h"

namespace mw::fit {
namespace {

using loadconfig::CacheType;
using loadconfig::LlamaConfig;

constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kMiB = int64_t{1} << 20;

// 2 layers (512 bytes of f16 KV cache per token), trained on 2048.
ModelShape Tiny() { return TestShape(2, 2048, 1'000'000); }

std::vector<Device> Cpu(int64_t free, int64_t margin = 512 * kMiB) { return {{"CPU", false, free, margin}}; }

TEST(FitEstimateTest, CacheRowBytesFollowGgmlBlockSizes) {
  EXPECT_EQ(CacheRowBytes(CacheType::kF16, 64), 128);
  EXPECT_EQ(CacheRowBytes(CacheType::kF32, 64), 256);
  EXPECT_EQ(CacheRowBytes(CacheType::kBF16, 64), 128);
  EXPECT_EQ(CacheRowBytes(CacheType::kQ8_0, 64), 68);
  EXPECT_EQ(CacheRowBytes(CacheType::kQ4_0, 64), 36);
  EXPECT_EQ(CacheRowBytes(CacheType::kQ4_1, 64), 40);
  EXPECT_EQ(CacheRowBytes(CacheType::kQ5_1, 64), 48);
}

TEST(FitEstimateTest, EffectiveCtxMatchesTheWorkerAndLlamaPadding) {
  LlamaConfig c;
  EXPECT_EQ(EffectiveCtx(Tiny(), c), 2048);  // unset: min(4096, train)
  ModelShape unknown = Tiny();
  unknown.context_train = 0;
  EXPECT_EQ(EffectiveCtx(unknown, c), 4096);
  c.n_ctx = 0;  // 0 = the training context
  EXPECT_EQ(EffectiveCtx(Tiny(), c), 2048);
  c.n_ctx = 1000;  // padded to 256
  EXPECT_EQ(EffectiveCtx(Tiny(), c), 1024);
}

TEST(FitEstimateTest, CpuOnlyBreakdownByHand) {
  Estimate e = EstimateMemory(Tiny(), LlamaConfig{}, Cpu(10 * kGiB));
  EXPECT_EQ(e.n_ctx, 2048);
  EXPECT_EQ(e.weights, 1'000'000);
  EXPECT_EQ(e.kv_cache, 2048 * 2 * (128 + 128));     // 1,048,576
  EXPECT_EQ(e.compute, 4 * 512 * (1000 + 4 * 64));   // 2,572,288
  EXPECT_EQ(e.total, 4'620'864);
  ASSERT_EQ(e.per_device.size(), 1u);
  EXPECT_EQ(e.per_device[0].bytes, 4'620'864);
  EXPECT_EQ(e.per_device[0].free_bytes, 10 * kGiB);
  EXPECT_TRUE(e.fits);
  EXPECT_EQ(e.reason, "");
}

TEST(FitEstimateTest, QuantizedCacheTypesShrinkTheKvCache) {
  LlamaConfig c;
  c.cache_type_k = CacheType::kQ8_0;
  c.cache_type_v = CacheType::kQ4_0;
  EXPECT_EQ(EstimateMemory(Tiny(), c, Cpu(kGiB)).kv_cache, 2048 * 2 * (68 + 36));
}

TEST(FitEstimateTest, FlashAttentionOffSizesTheScoresWhenWiderThanTheLogits) {
  LlamaConfig c;
  c.flash_attn = loadconfig::FlashAttn::kOff;
  // 4 heads + the mask at n_ctx 2048: 10240 columns, wider than 1000 logits.
  EXPECT_EQ(EstimateMemory(Tiny(), c, Cpu(kGiB)).compute, 4 * 512 * (5 * 2048 + 256));
  c.n_ubatch = 128;
  EXPECT_EQ(EstimateMemory(Tiny(), c, Cpu(kGiB)).compute, 4 * 128 * (5 * 2048 + 256));
  ModelShape big_vocab = Tiny();
  big_vocab.vocab = 32000;  // the logits are wider: the scores reuse their memory
  EXPECT_EQ(EstimateMemory(big_vocab, c, Cpu(kGiB)).compute, 4 * 128 * (32000 + 256));
}

TEST(FitEstimateTest, LayersSplitBetweenGpusByFreeMemory) {
  LlamaConfig c;
  c.n_gpu_layers = 1;  // half the layers offloaded, a quarter on each GPU
  std::vector<Device> devices = {{"CPU", false, 10 * kGiB, 512 * kMiB},
                                 {"GPU0", true, 8 * kGiB, kGiB},
                                 {"GPU1", true, 8 * kGiB, kGiB}};
  Estimate e = EstimateMemory(Tiny(), c, devices);
  ASSERT_EQ(e.per_device.size(), 3u);
  EXPECT_EQ(e.per_device[1].bytes, 250'000 + 262'144 + 2'572'288);  // + compute on the first GPU
  EXPECT_EQ(e.per_device[2].bytes, 250'000 + 262'144);
  EXPECT_EQ(e.per_device[0].bytes, 500'000 + 524'288);
  EXPECT_EQ(e.per_device[0].bytes + e.per_device[1].bytes + e.per_device[2].bytes, e.total);

  c.offload_kqv = false;  // the KV cache stays in RAM
  e = EstimateMemory(Tiny(), c, devices);
  EXPECT_EQ(e.per_device[0].bytes, 500'000 + 1'048'576);
  EXPECT_EQ(e.per_device[2].bytes, 250'000);

  c = LlamaConfig{};
  c.split_mode = loadconfig::SplitMode::kNone;
  c.main_gpu = 1;  // everything on GPU1
  e = EstimateMemory(Tiny(), c, devices);
  EXPECT_EQ(e.per_device[0].bytes, 0);
  EXPECT_EQ(e.per_device[1].bytes, 0);
  EXPECT_EQ(e.per_device[2].bytes, e.total);
}

TEST(FitEstimateTest, ADeviceWithoutRoomIsNamedWithNeededFreeAndMargin) {
  LlamaConfig c;
  c.n_ctx = 16384;  // KV cache 8 MiB
  Estimate e = EstimateMemory(Tiny(), c, Cpu(5 * kMiB, 0));
  EXPECT_EQ(e.total, 1'000'000 + 16384 * 2 * 256 + 2'572'288);
  EXPECT_FALSE(e.fits);
  EXPECT_FALSE(e.per_device[0].fits);
  EXPECT_EQ(e.reason, "needs 12 MiB on CPU (weights, KV cache for n_ctx 16384, compute) but 5 MiB is free and 0 MiB "
                      "is kept as margin");
  // The margin counts: fits in 5 MiB without one, not with 1 MiB kept.
  EXPECT_TRUE(EstimateMemory(Tiny(), LlamaConfig{}, Cpu(5 * kMiB, 0)).fits);
  EXPECT_FALSE(EstimateMemory(Tiny(), LlamaConfig{}, Cpu(5 * kMiB, kMiB)).fits);
}

TEST(FitEstimateTest, LargestFittingCtxByHand) {
  // 5 MiB - weights - compute = 1,670,592 bytes; 512 bytes of KV per token
  // -> 3262 tokens -> 3072 (a multiple of 256).
  EXPECT_EQ(LargestFittingCtx(Tiny(), LlamaConfig{}, Cpu(5 * kMiB, 0)), 3072);
  EXPECT_EQ(LargestFittingCtx(Tiny(), LlamaConfig{}, Cpu(kMiB, 0)), std::nullopt);  // the weights alone do not fit
  EXPECT_EQ(LargestFittingCtx(Tiny(), LlamaConfig{}, Cpu(100 * kGiB, 0)), int64_t{1} << 24);
}

// SPEC §15: `devices` puts the layers on the GPUs it names only.
TEST(FitEstimateTest, DevicesNarrowTheGpus) {
  const std::vector<Device> devices = {{"CPU", false, 8 * kGiB, 0}, {"CUDA0", true, 8 * kGiB, 0}, {"Vulkan0", true, 2 * kGiB, 0}};
  LlamaConfig c;
  c.devices = {"Vulkan0"};
  const Estimate e = EstimateMemory(Tiny(), c, devices);
  EXPECT_EQ(e.per_device[1].bytes, 0);
  EXPECT_GT(e.per_device[2].bytes, 1'000'000);
  c.devices = {"CPU"};  // no GPU named: all on the host
  EXPECT_EQ(EstimateMemory(Tiny(), c, devices).per_device[0].bytes, e.total);
}

}  // namespace
}  // namespace mw::fit
