//===- GpuSplitKTest.cpp - Split-K decode and its merge -----------*- C++ -*-===//
//
// Checks the flash-decoding path of kvrt_attention_launch: the split plan
// (host only), long sequences at batch 1 that the planner splits, forced
// split counts for every element type (so the merge kernel runs for f16,
// bf16 and f32 and for head dims 64/128/256), prefill chunks whose causal
// masks leave some splits empty, and hand-built page tables with ragged
// per-head lengths including rows of length 0, which the public API cannot
// make yet. GPU cases skip without a device.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "GpuKernels.h"
#include "SplitK.h"
#include "TestHelpers.h"

#include "GpuTestHelpers.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

using namespace kvrt::test;

namespace {

const GpuKernel &kernelNamed(const std::string &name) {
  for (const GpuKernel &kernel : gpuKernels())
    if (name == kernel.name)
      return kernel;
  for (const GpuKernel &kernel : decodeKernels())
    if (name == kernel.name)
      return kernel;
  ADD_FAILURE() << "no kernel " << name;
  return gpuKernels().front();
}

/// Forces KVRT_DECODE_SPLITS to `splits` for its lifetime (unset for 0).
class ForcedSplits : public ScopedEnv {
public:
  explicit ForcedSplits(int splits)
      : ScopedEnv("KVRT_DECODE_SPLITS",
                  splits > 0 ? std::to_string(splits).c_str() : nullptr) {}
};

/// Device memory freed at scope exit.
struct DeviceMemory {
  void *pointer = nullptr;
  explicit DeviceMemory(size_t bytes) {
    EXPECT_EQ(cudaMalloc(&pointer, bytes), cudaSuccess);
  }
  ~DeviceMemory() { cudaFree(pointer); }
  DeviceMemory(const DeviceMemory &) = delete;
  DeviceMemory &operator=(const DeviceMemory &) = delete;
};

/// Whether kvrt may run `function` in the warp-specialized prefill layout
/// on device 0 (kvrt::cuda::prefillWsEligible).
bool warpSpecializedEligible(const void *function) {
  int major = 0, minor = 0;
  cudaFuncAttributes attributes{};
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) !=
          cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) !=
          cudaSuccess ||
      cudaFuncGetAttributes(&attributes, function) != cudaSuccess) {
    ADD_FAILURE() << "device or kernel attributes unavailable";
    return false;
  }
  return kvrt::cuda::prefillWsEligible(
      major, minor, attributes.maxThreadsPerBlock, attributes.numRegs);
}

/// Elements of `tensor` that are finite.
int64_t finiteCount(const Tensor &tensor) {
  int64_t finite = 0;
  for (int64_t i = 0; i < tensor.count; ++i)
    finite += std::isfinite(tensor.at(i));
  return finite;
}

/// `count` random fp16 queries on the device, an output buffer for the
/// launch under test and one for the reference launch.
struct DeviceQueries {
  DeviceQueries(int64_t count, std::mt19937 &rng)
      : count(count), bytes(size_t(count) * 2), queries(bytes), out(bytes),
        expected(bytes) {
    Tensor host = randomTensor(KVRT_DTYPE_F16, count, rng);
    EXPECT_EQ(cudaMemcpy(queries.pointer, host.data(), bytes,
                         cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  /// The fp16 tensor at `pointer` (out or expected).
  Tensor read(const void *pointer) const {
    Tensor result(KVRT_DTYPE_F16, count);
    EXPECT_EQ(cudaMemcpy(result.data(), pointer, bytes, cudaMemcpyDeviceToHost),
              cudaSuccess);
    return result;
  }
  int64_t count;
  size_t bytes;
  DeviceMemory queries, out, expected;
};

TEST(SplitPlanTest, FillsTheChipOnlyWhenNeeded) {
  // A full chip is not split.
  EXPECT_EQ(kvrt::cuda::planSplits(1024, 512, 264).numSplits, 1);
  // One page cannot be split.
  EXPECT_EQ(kvrt::cuda::planSplits(8, 1, 264).numSplits, 1);
  // Batch 1, 8 kv heads, 2048 pages: enough splits to fill most slots, each
  // split at least one page, every page covered.
  kvrt::cuda::SplitPlan plan = kvrt::cuda::planSplits(8, 2048, 264);
  EXPECT_GE(plan.numSplits * 8, 0.85 * 264 * 0.85);
  EXPECT_LE(plan.numSplits * 8, 264);
  EXPECT_GE(int64_t(plan.numSplits) * plan.pagesPerSplit, 2048);
  EXPECT_LT(int64_t(plan.numSplits - 1) * plan.pagesPerSplit, 2048);
  // Short rows bound the count by their pages.
  EXPECT_LE(kvrt::cuda::planSplits(8, 3, 264).numSplits, 3);
  // 1.29 waves (the last one 29% full, 65% of the slots busy) are split
  // into the fewest splits that keep 85% busy (2: 2.59 waves); 2.59 waves
  // are not split (86% busy).
  plan = kvrt::cuda::planSplits(512, 512, 396);
  EXPECT_EQ(plan.numSplits, 2);
  EXPECT_EQ(kvrt::cuda::planSplits(1024, 512, 396).numSplits, 1);
}

TEST(SplitPlanTest, WarpTurnsFollowTheBody) {
  using kvrt::cuda::decodeWarpKeys;
  // The tensor-core body deals 16-key chunks to its warps, whatever the
  // page size.
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 128, 4, 16, 9), 16);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 128, 4, 64, 9), 16);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_BF16, 256, 8, 32, 8), 16);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_BF16, 64, 1, 128, 8), 16);
  // The CUDA-core body deals pages: fp32, other head dims, groups above 8,
  // pages below 16 tokens, GPUs before sm_80.
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F32, 128, 4, 64, 9), 64);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 96, 4, 64, 9), 64);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 128, 16, 64, 9), 64);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 128, 4, 8, 9), 8);
  EXPECT_EQ(decodeWarpKeys(KVRT_DTYPE_F16, 128, 4, 64, 7), 64);
}

TEST(WorkspaceLayoutTest, HookPartsOnLinesAndBlockSharesExclusive) {
  using kvrt::cuda::kKeyScoreBlockSlots;
  // The accumulation drops whole 128-byte lines of each block's slots from
  // L2 (discard.global.L2), so every block's share of a query group's
  // values and chunk maxima must begin and end on a line, and the parts
  // must not overlap.
  for (int64_t group : {1, 2, 3, 4, 8})
    for (int64_t heads : {group, 7 * group, 96 * group})
      for (int64_t splits : {0, 3})
        for (int64_t headDim : {64, 128, 256})
          for (int64_t maxLength : {1, 40, 511, 512, 513, 3000, 32768})
            for (int64_t chunkKeys : {16, 8, 2})
              for (bool floatValues : {false, true}) {
                SCOPED_TRACE(testing::Message()
                             << "group " << group << " heads " << heads
                             << " splits " << splits << " d " << headDim
                             << " length " << maxLength << " chunk "
                             << chunkKeys << (floatValues ? " floats" : ""));
                const int64_t slots = splits * heads;
                const kvrt::cuda::WorkspaceLayout layout =
                    kvrt::cuda::workspaceLayout(heads, slots, headDim, true,
                                                maxLength, chunkKeys,
                                                floatValues);
                const int64_t stride = layout.scoreStride;
                ASSERT_GE(stride, maxLength);
                ASSERT_EQ(stride % kvrt::cuda::kKeyScoreStrideUnit, 0);
                EXPECT_EQ(layout.partialLse % 4, 0);
                EXPECT_GE(layout.partialLse, slots * headDim);
                EXPECT_GE(layout.rowLse, layout.partialLse + slots);
                EXPECT_GE(layout.scoreMax, layout.rowLse + heads);
                EXPECT_GE(layout.scoreScratch,
                          layout.scoreMax + heads * (stride / chunkKeys));
                const int64_t valueBytes = floatValues ? 4 : 2;
                EXPECT_GE(layout.floats * 4, layout.scoreScratch * 4 +
                                                 heads * stride * valueBytes);
                for (int64_t part :
                     {layout.rowLse, layout.scoreMax, layout.scoreScratch})
                  EXPECT_EQ(part * 4 % 128, 0);
                // Query group r (rows r * group ..) and a block's slots
                // [first, end): values at ((r * stride + s) * group),
                // maxima at ((r * stride / C + s / C) * group) (params.h).
                for (int64_t r : {int64_t(0), heads / group - 1})
                  for (int64_t first = 0; first < stride;
                       first += kKeyScoreBlockSlots) {
                    const int64_t end =
                        std::min(first + kKeyScoreBlockSlots, stride);
                    for (int64_t s : {first, end}) {
                      EXPECT_EQ((layout.scoreScratch * 4 +
                                 (r * stride + s) * group * valueBytes) %
                                    128,
                                0);
                      EXPECT_EQ(
                          (layout.scoreMax +
                           (r * (stride / chunkKeys) + s / chunkKeys) * group) *
                              4 % 128,
                          0);
                    }
                  }
              }
  // Without the hook, only the partials; without splits, nothing.
  const kvrt::cuda::WorkspaceLayout partials =
      kvrt::cuda::workspaceLayout(32, 96, 128, false, 4096, 16, false);
  EXPECT_EQ(partials.scoreStride, 0);
  EXPECT_GE(partials.floats, 96 * 128 + 96);
  EXPECT_EQ(
      kvrt::cuda::workspaceLayout(32, 0, 128, false, 4096, 16, false).floats,
      0);
}

TEST(DecodeThreadsTest, WideBlocksForAboutOneRowPerSm) {
  using kvrt::cuda::decodeThreads;
  unsetenv("KVRT_DECODE_WIDE");
  // 128 rows on 132 SMs: one 512-thread block per row (97% of the SMs).
  EXPECT_EQ(decodeThreads(128, 132, 512, 128, false), 512);
  EXPECT_EQ(decodeThreads(132, 132, 1024, 128, false), 512);
  // Too few rows (80%), more rows than SMs, a kernel bound to 128 threads,
  // a caller asking for other threads, forced splits: unchanged.
  EXPECT_EQ(decodeThreads(106, 132, 512, 128, false), 128);
  EXPECT_EQ(decodeThreads(133, 132, 512, 128, false), 128);
  EXPECT_EQ(decodeThreads(128, 132, 128, 128, false), 128);
  EXPECT_EQ(decodeThreads(128, 132, 512, 256, false), 256);
  EXPECT_EQ(decodeThreads(128, 132, 512, 128, true), 128);
  {
    ScopedEnv off("KVRT_DECODE_WIDE", "0");
    EXPECT_EQ(decodeThreads(128, 132, 512, 128, false), 128);
  }
  {
    ScopedEnv on("KVRT_DECODE_WIDE", "1");
    EXPECT_EQ(decodeThreads(8, 132, 512, 128, true), 512);
    EXPECT_EQ(decodeThreads(8, 132, 128, 128, false), 128);
  }
}

TEST(PrefillLayoutTest, ManyQueryRowsOfTensorCoreShapes) {
  kvrt_attention_params p{};
  p.num_kv_heads = 8;
  p.num_q_heads = 32;
  p.head_dim = 128;
  p.num_tokens = 16; // 16 tokens x group 4 = 64 rows
  EXPECT_TRUE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  EXPECT_TRUE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_BF16, 8, 128));
  // Fewer rows, fp32, head_dim 256, pre-Ampere, other block sizes: the
  // per-token layout.
  p.num_tokens = 15;
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  p.num_tokens = 16;
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F32, 9, 128));
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 7, 128));
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 256));
  p.head_dim = 256;
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  // Groups that do not divide the 64 rows.
  p.head_dim = 128;
  p.num_q_heads = 24;
  p.num_tokens = 100;
  EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  p.num_q_heads = 8; // MHA: 64 tokens
  p.num_tokens = 64;
  EXPECT_TRUE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  {
    ScopedEnv off("KVRT_PREFILL_LAYOUT", "0");
    EXPECT_FALSE(kvrt::cuda::usePrefillLayout(p, KVRT_DTYPE_F16, 9, 128));
  }
}

TEST(PrefillLayoutTest, WarpSpecializedBlocksOnHopperForKernelsAllowingThem) {
  using kvrt::cuda::prefillWsEligible;
  // kvcc's sm_90a kernels with the prefill body (__launch_bounds__(384, 1):
  // 168 registers) on sm_90.
  EXPECT_TRUE(prefillWsEligible(9, 0, 384, 168));
  // Kernels compiled for 128-thread blocks (kvcc's before, and its
  // kernels for targets without the body: sm_90, sm_80) keep 64-row
  // blocks; other GPUs have no sm_90a code (wgmma, setmaxnreg).
  EXPECT_FALSE(prefillWsEligible(9, 0, 128, 168));
  EXPECT_FALSE(prefillWsEligible(9, 0, 256, 168));
  EXPECT_FALSE(prefillWsEligible(8, 0, 384, 168));
  EXPECT_FALSE(prefillWsEligible(8, 9, 384, 168));
  EXPECT_FALSE(prefillWsEligible(10, 0, 384, 168));
  // Fewer registers per thread (a lower -maxrregcount, wider bounds) leave
  // the block short of what setmaxnreg hands the consumers: refused
  // rather than hung.
  EXPECT_FALSE(prefillWsEligible(9, 0, 384, 160));
  EXPECT_FALSE(prefillWsEligible(9, 0, 512, 128));
}

TEST(PrefillLayoutTest, WarpSpecializedBodyForRowsOfManyKeys) {
  using kvrt::cuda::kPrefillWsMinMeanKeys;
  using kvrt::cuda::prefillWsPays;
  // Causal chunks without a cached prefix: half the chunk on average.
  EXPECT_FALSE(prefillWsPays(512, 512, true));
  EXPECT_FALSE(prefillWsPays(1022, 1022, true));
  EXPECT_TRUE(prefillWsPays(1024, 1024, true));
  EXPECT_TRUE(prefillWsPays(8192, 8192, true));
  // A short chunk after a long cached prefix.
  EXPECT_TRUE(prefillWsPays(512 + 64, 64, true));
  EXPECT_FALSE(prefillWsPays(256 + 64, 64, true));
  // Non-causal rows see the whole sequence.
  EXPECT_TRUE(prefillWsPays(kPrefillWsMinMeanKeys, 1024, false));
  EXPECT_FALSE(prefillWsPays(kPrefillWsMinMeanKeys - 1, 1024, false));
  EXPECT_TRUE(prefillWsPays(kPrefillWsMinMeanKeys + 512, 1024, true));
  EXPECT_FALSE(prefillWsPays(kPrefillWsMinMeanKeys + 511, 1024, true));
}

/// Appends `length` tokens of host `keys` and `values` to sequence `id`
/// of the CUDA cache `cache` (through device copies).
void appendFromHost(kvrt_cache *cache, int32_t id, int length,
                    const Tensor &keys, const Tensor &values) {
  DeviceMemory deviceKeys(keys.bytes.size()), deviceValues(values.bytes.size());
  ASSERT_EQ(cudaMemcpy(deviceKeys.pointer, keys.data(), keys.bytes.size(),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(deviceValues.pointer, values.data(), values.bytes.size(),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(kvrt_append(cache, 1, &id, length, deviceKeys.pointer,
                        deviceValues.pointer, nullptr),
            KVRT_OK)
      << kvrt_last_error();
}

/// The first 16 dimensions of every key follow its position (-3 at token 0,
/// 0 at 1500, 3 at 3000 and on), plus 3 at token 1500 alone, and those of
/// every query are 3: each row's scores climb steadily (in log2 units,
/// about 1.6 per 128-key tile at d 128, 2.2 at d 64) and jump once (by
/// about 18 at d 128), past which they stay below the jump's key until
/// token 3000.
constexpr int kRampDims = 16;
void rampKeys(Tensor &keys, int length, int numKvHeads, int headDim) {
  for (int t = 0; t < length; ++t) {
    const float value =
        -3.0f + 6.0f * float(t) / 3000.0f + (t == 1500 ? 3.0f : 0.0f);
    for (int h = 0; h < numKvHeads; ++h)
      for (int i = 0; i < kRampDims; ++i)
        keys.set((int64_t(t) * numKvHeads + h) * headDim + i, value);
  }
}

/// Appends random K/V for `lengths` sequences to a CUDA cache and a host
/// cache, then compares kvrt_attention_launch (with `splits` forced, or the
/// planner's choice for 0) with kvrt_attention_host. With `scored`, the
/// _scored variants of both, and their per-key scores too, in rows of the
/// longest length plus `scorePadding` slots (which must stay 0). With
/// `rampScores`, keys and queries as rampKeys describes.
void checkAgainstHost(const GpuKernel &kernel, const std::vector<int> &lengths,
                      int numTokens, int splits, unsigned seed,
                      bool scored = false, int scorePadding = 0,
                      bool rampScores = false) {
  const int numKvHeads = kernel.groupSize == 8 ? 2 : 8;
  const int numQHeads = numKvHeads * kernel.groupSize;
  const int batch = static_cast<int>(lengths.size());
  int maxLength = 0;
  int64_t numPages = 8;
  for (int length : lengths) {
    maxLength = std::max(maxLength, length);
    numPages += (length + kernel.pageSize - 1) / kernel.pageSize * numKvHeads;
  }
  kvrt_cache_desc desc = makeDesc(numKvHeads, kernel.headDim, kernel.dtype,
                                  kernel.pageSize, maxLength);
  int64_t pageBytes = kvrt_cache_page_bytes(&desc);
  PoolPtr host = makePool(KVRT_DEVICE_HOST, pageBytes, numPages);
  PoolPtr device = makePool(KVRT_DEVICE_CUDA, pageBytes, numPages);
  ASSERT_TRUE(host && device);
  kvrt_cache *hostCache = makeCache(host.get(), desc);
  kvrt_cache *deviceCache = makeCache(device.get(), desc);
  ASSERT_TRUE(hostCache && deviceCache);

  std::mt19937 rng(seed);
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    int32_t id = makeSequence(host.get());
    ASSERT_EQ(makeSequence(device.get()), id);
    ids.push_back(id);
    int64_t elements = int64_t(lengths[b]) * numKvHeads * kernel.headDim;
    Tensor keys = randomTensor(kernel.dtype, elements, rng);
    Tensor values = randomTensor(kernel.dtype, elements, rng);
    if (rampScores)
      rampKeys(keys, lengths[b], numKvHeads, kernel.headDim);
    ASSERT_EQ(kvrt_append(hostCache, 1, &id, lengths[b], keys.data(),
                          values.data(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_NO_FATAL_FAILURE(
        appendFromHost(deviceCache, id, lengths[b], keys, values));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }

  const int64_t queryElements =
      int64_t(batch) * numTokens * numQHeads * kernel.headDim;
  Tensor queries = randomTensor(kernel.dtype, queryElements, rng, 2.0f);
  if (rampScores)
    for (int64_t row = 0; row < queryElements / kernel.headDim; ++row)
      for (int i = 0; i < kRampDims; ++i)
        queries.set(row * kernel.headDim + i, 3.0f);
  const float scale = 1.0f / std::sqrt(float(kernel.headDim));
  Tensor expected(kernel.dtype, queryElements);
  expected.poison();
  // Per-key scores [batch, kv heads, scoreStride], accumulated into: slots
  // below the longest row start at 0.25 (the launch must add to them), the
  // padding past it at 0 (which must stay).
  const int64_t scoreStride = maxLength + scorePadding;
  const int64_t scoreElements = int64_t(batch) * numKvHeads * scoreStride;
  std::vector<float> initialScores(scoreElements, 0.0f);
  for (int64_t i = 0; i < scoreElements; ++i)
    if (i % scoreStride < maxLength)
      initialScores[i] = 0.25f;
  std::vector<float> expectedScores = initialScores;
  if (scored)
    ASSERT_EQ(kvrt_attention_host_scored(
                  hostCache, batch, ids.data(), numTokens, numQHeads,
                  queries.data(), expected.data(), scale, kernel.causal,
                  expectedScores.data(), scoreStride),
              KVRT_OK)
        << kvrt_last_error();
  else
    ASSERT_EQ(kvrt_attention_host(hostCache, batch, ids.data(), numTokens,
                                  numQHeads, queries.data(), expected.data(),
                                  scale, kernel.causal),
              KVRT_OK)
        << kvrt_last_error();
  DeviceMemory deviceScores(scoreElements * sizeof(float));

  DeviceMemory deviceQueries(queries.bytes.size()),
      deviceOut(queries.bytes.size());
  ASSERT_EQ(cudaMemcpy(deviceQueries.pointer, queries.data(),
                       queries.bytes.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  // Two launches with different forced counts on one stream: the second
  // reuses the workspace the first's merge reads.
  for (int attempt = 0; attempt < 2; ++attempt) {
    ASSERT_EQ(cudaMemset(deviceOut.pointer, 0xff, queries.bytes.size()),
              cudaSuccess);
    ForcedSplits forced(splits > 0 ? splits + attempt : 0);
    if (scored) {
      ASSERT_EQ(cudaMemcpy(deviceScores.pointer, initialScores.data(),
                           scoreElements * sizeof(float),
                           cudaMemcpyHostToDevice),
                cudaSuccess);
      ASSERT_EQ(kvrt_attention_launch_scored(
                    deviceCache, batch, ids.data(), numTokens, numQHeads,
                    deviceQueries.pointer, deviceOut.pointer, scale,
                    kernel.causal, kernel.function, attentionThreads(),
                    static_cast<float *>(deviceScores.pointer), scoreStride,
                    nullptr),
                KVRT_OK)
          << kvrt_last_error();
    } else {
      ASSERT_EQ(kvrt_attention_launch(deviceCache, batch, ids.data(),
                                      numTokens, numQHeads,
                                      deviceQueries.pointer, deviceOut.pointer,
                                      scale, kernel.causal, kernel.function,
                                      attentionThreads(), nullptr),
                KVRT_OK)
          << kvrt_last_error();
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    if (scored) {
      std::vector<float> actualScores(scoreElements);
      ASSERT_EQ(cudaMemcpy(actualScores.data(), deviceScores.pointer,
                           scoreElements * sizeof(float),
                           cudaMemcpyDeviceToHost),
                cudaSuccess);
      double diff = 0.0, norm = 0.0, total = 0.0;
      int64_t padding = 0;
      for (int64_t i = 0; i < scoreElements; ++i) {
        diff += std::pow(double(actualScores[i]) - expectedScores[i], 2);
        norm += std::pow(double(expectedScores[i]) - initialScores[i], 2);
        total += double(actualScores[i]) - initialScores[i];
        padding += i % scoreStride >= maxLength && actualScores[i] != 0.0f;
      }
      EXPECT_EQ(padding, 0) << kernel.name << " slots past the longest row";
      // Each query row's probabilities sum to 1 (every row here sees a key):
      // what the launch added.
      EXPECT_NEAR(total, double(batch) * numTokens * numQHeads,
                  1e-3 * batch * numTokens * numQHeads)
          << kernel.name;
      EXPECT_LT(std::sqrt(diff / norm), 1e-3)
          << kernel.name << " key scores, splits " << splits << " attempt "
          << attempt;
    }
    Tensor actual(kernel.dtype, queryElements);
    ASSERT_EQ(cudaMemcpy(actual.data(), deviceOut.pointer, actual.bytes.size(),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
    double error = relativeError(actual, toDoubles(expected));
    EXPECT_LT(error, toleranceFor(kernel.dtype))
        << kernel.name << " splits " << splits << " attempt " << attempt;
  }
}

TEST(GpuSplitKTest, LongSequenceAtBatchOne) {
  SKIP_WITHOUT_GPU();
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {20000}, 1, 0, 1);
  checkAgainstHost(kernelNamed("bf16_d128_g4_p64_full"), {9000}, 1, 0, 2);
  checkAgainstHost(kernelNamed("bf16_d256_g2_p16_full"), {12000}, 1, 0, 8);
}

TEST(GpuSplitKTest, RaggedBatchWithPlannedSplits) {
  SKIP_WITHOUT_GPU();
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_full"), {1, 3000, 17, 700}, 1,
                   0, 3);
}

TEST(GpuSplitKTest, ForcedSplitsEveryElementType) {
  SKIP_WITHOUT_GPU();
  for (const char *name :
       {"f16_d64_g4_p16_causal", "bf16_d64_g1_p16_causal",
        "f32_d64_g1_p16_causal", "f32_d256_g8_p64_full",
        "f16_d256_g8_p64_causal", "bf16_d128_g4_p64_full"})
    checkAgainstHost(kernelNamed(name), {1500, 33, 900}, 1, 7, 4);
}

TEST(GpuSplitKTest, ManySplitsMergeInSeveralBatches) {
  SKIP_WITHOUT_GPU();
  // 150 splits: a merge thread combines several batches of kMergeBatch
  // splits; d256 with 150 splits also gives the merge fewer parts per vector.
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {20000, 3000}, 1,
                   150, 6);
  checkAgainstHost(kernelNamed("f16_d256_g8_p64_causal"), {12000}, 1, 150, 7);
}

TEST(GpuSplitKTest, KeyScoresMatchHost) {
  SKIP_WITHOUT_GPU();
  // Tensor-core and CUDA-core bodies, with and without splits, decode steps
  // and causal chunks (a 70-token chunk keeps the one-token layout); an odd
  // group (unpaired stores); pages of 8 and 2 (chunks of one page); the
  // CUDA-core body with pages of 64 (page maxima over four chunks); the
  // tensor-core body's stores for groups of 1, 2, 4 and 8.
  for (const char *name :
       {"f16_d128_g4_p16_causal", "bf16_d64_g8_p16_full",
        "f32_d64_g1_p16_causal", "f16_d256_g4_p32_causal",
        "simt_f16_d128_g4_p16_causal", "decode_f16_d64_g3_p16_causal",
        "f16_d64_g4_p8_causal", "f16_d64_g2_p2_causal",
        "f32_d256_g8_p64_full", "bf16_d128_g2_p16_full"})
    for (int tokens : {1, 5})
      for (int splits : {0, 7})
        checkAgainstHost(kernelNamed(name), {1500, 33, 900}, tokens, splits, 9,
                         /*scored=*/true);
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {300, 700}, 70, 0,
                   10, /*scored=*/true);
  // Caller rows far longer than the batch's longest sequence (the workspace
  // is sized by the latter).
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {300, 40}, 1, 0, 12,
                   /*scored=*/true, /*scorePadding=*/5000);
  checkAgainstHost(kernelNamed("simt_f16_d128_g4_p16_causal"), {300, 40}, 3, 5,
                   13, /*scored=*/true, /*scorePadding=*/777);
}

/// A CUDA pool and cache holding one sequence of random keys and values
/// per entry of `lengths` (fillRandomDeviceCache).
struct RandomDeviceCache {
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
  std::vector<int32_t> ids;
};

/// Makes `out`: a cache of `numKvHeads` heads of `headDim` `dtype` values
/// in pages of `pageSize` tokens, rows up to the longest length, and its
/// sequences' keys and values drawn from `rng`.
void fillRandomDeviceCache(const std::vector<int> &lengths, int numKvHeads,
                           int headDim, kvrt_dtype dtype, int pageSize,
                           std::mt19937 &rng, RandomDeviceCache &out) {
  const int maxLength = *std::max_element(lengths.begin(), lengths.end());
  kvrt_cache_desc desc =
      makeDesc(numKvHeads, headDim, dtype, pageSize, maxLength);
  int64_t pages = 8;
  for (int length : lengths)
    pages += int64_t(length + pageSize - 1) / pageSize * numKvHeads;
  out.pool = makePool(KVRT_DEVICE_CUDA, kvrt_cache_page_bytes(&desc), pages);
  ASSERT_TRUE(out.pool);
  out.cache = makeCache(out.pool.get(), desc);
  ASSERT_TRUE(out.cache);
  for (int length : lengths) {
    int32_t id = makeSequence(out.pool.get());
    out.ids.push_back(id);
    const int64_t elements = int64_t(length) * numKvHeads * headDim;
    Tensor keys = randomTensor(dtype, elements, rng);
    Tensor values = randomTensor(dtype, elements, rng);
    ASSERT_NO_FATAL_FAILURE(
        appendFromHost(out.cache, id, length, keys, values));
  }
}

TEST(GpuSplitKTest, KeyScoresSameWithAndWithoutL2Discard) {
  SKIP_WITHOUT_GPU();
  // The accumulation drops the workspace lines it has read from L2
  // (KVRT_SCORE_DISCARD=0 keeps them): a line dropped before every thread
  // that reads it has read it would change the sums. Each launch adds to
  // the previous one's key scores, so the runs must agree bit for bit.
  const GpuKernel &kernel = kernelNamed("f16_d128_g4_p16_causal");
  const int numKvHeads = 8, numQHeads = 32, headDim = 128, pageSize = 16;
  const std::vector<int> lengths = {3000, 70, 1500};
  const int batch = int(lengths.size()), maxLength = 3000, maxTokens = 5;
  std::mt19937 rng(41);
  RandomDeviceCache device;
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache(
      lengths, numKvHeads, headDim, KVRT_DTYPE_F16, pageSize, rng, device));
  kvrt_cache *cache = device.cache;
  const std::vector<int32_t> &ids = device.ids;
  // Each launch of a run has queries of its own, so that a launch never
  // rewrites the values the one before it left in the workspace.
  constexpr int kLaunches = 3;
  const int launchTokens[kLaunches] = {1, maxTokens, 1};
  const int64_t queryElements =
      int64_t(batch) * maxTokens * numQHeads * headDim;
  Tensor queries =
      randomTensor(KVRT_DTYPE_F16, kLaunches * queryElements, rng, 2.0f);
  DeviceMemory deviceQueries(queries.bytes.size()),
      deviceOut(queries.bytes.size() / kLaunches);
  ASSERT_EQ(cudaMemcpy(deviceQueries.pointer, queries.data(),
                       queries.bytes.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  const int64_t scoreElements = int64_t(batch) * numKvHeads * maxLength;
  DeviceMemory scores(scoreElements * sizeof(float));
  // Three launches in a row (tokens 1, 5, 1; splits as planned, then 6),
  // from key scores of 0, under one discard setting.
  auto run = [&](const char *discard, int splits) {
    ScopedEnv env("KVRT_SCORE_DISCARD", discard);
    ForcedSplits forced(splits);
    EXPECT_EQ(cudaMemset(scores.pointer, 0, scoreElements * sizeof(float)),
              cudaSuccess);
    for (int launch = 0; launch < kLaunches; ++launch)
      EXPECT_EQ(kvrt_attention_launch_scored(
                    cache, batch, ids.data(), launchTokens[launch], numQHeads,
                    static_cast<const char *>(deviceQueries.pointer) +
                        launch * queries.bytes.size() / kLaunches,
                    deviceOut.pointer, 0.09f, 1, kernel.function,
                    attentionThreads(), static_cast<float *>(scores.pointer),
                    maxLength, nullptr),
                KVRT_OK)
          << kvrt_last_error();
    std::vector<float> result(scoreElements);
    EXPECT_EQ(cudaMemcpy(result.data(), scores.pointer,
                         scoreElements * sizeof(float), cudaMemcpyDeviceToHost),
              cudaSuccess);
    return result;
  };
  for (int splits : {0, 6}) {
    SCOPED_TRACE(testing::Message() << "splits " << splits);
    const std::vector<float> kept = run("0", splits);
    const std::vector<float> dropped = run("1", splits);
    const std::vector<float> again = run("0", splits);
    // Every row's probabilities sum to 1: 7 query tokens x 32 heads per
    // sequence.
    double total = 0.0;
    for (float value : kept)
      total += value;
    EXPECT_NEAR(total, 7.0 * batch * numQHeads, 7e-3 * batch * numQHeads);
    EXPECT_EQ(
        std::memcmp(kept.data(), dropped.data(), kept.size() * sizeof(float)),
        0);
    EXPECT_EQ(
        std::memcmp(kept.data(), again.data(), kept.size() * sizeof(float)), 0);
  }
}

TEST(GpuSplitKTest, WideDecodeBlocks) {
  SKIP_WITHOUT_GPU();
  unsetenv("KVRT_DECODE_WIDE");
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0),
            cudaSuccess);
  for (const GpuKernel &kernel : decodeKernels()) {
    // The kernel's own limit (its emitted __launch_bounds__): wide blocks
    // for the tensor-core shapes of head_dim 64/128, not for fp32 or d256,
    // in code compiled for sm_80 or newer (the bounds follow the
    // compilation target, kWideDecodeSupported).
    cudaFuncAttributes attributes = {};
    ASSERT_EQ(cudaFuncGetAttributes(&attributes, kernel.function), cudaSuccess);
    const bool wideKernel = kernel.dtype != KVRT_DTYPE_F32 &&
                            kernel.headDim <= 128 &&
                            attributes.ptxVersion >= 80;
    EXPECT_EQ(attributes.maxThreadsPerBlock,
              wideKernel ? kvrt::cuda::kWideBlockThreads
                         : kvrt::cuda::kAttentionBlockThreads)
        << kernel.name;
    // checkAgainstHost's kv heads: 2 for groups of 8, else 8. Batches of
    // about one (sequence, kv head, token) row per SM, ragged: wide blocks
    // where the kernel allows them and the rows fill 90% of the SMs
    // (decodeThreads, DecodeThreadsTest; on the H200's 132 SMs all four).
    const int numKvHeads = kernel.groupSize == 8 ? 2 : 8;
    for (int tokens : {1, 3}) {
      const int batch = std::max(1, sms / (numKvHeads * tokens));
      std::vector<int> lengths;
      for (int b = 0; b < batch; ++b)
        lengths.push_back(tokens + (b * 997) % 1500);
      checkAgainstHost(kernel, lengths, tokens, 0, 11 + tokens);
      // The key-score hook on the same launch (row_lse from the unsplit
      // blocks, scores from all 16 warps).
      checkAgainstHost(kernel, lengths, tokens, 0, 21 + tokens,
                       /*scored=*/true);
    }
    // Wide blocks on a small batch, split and merged.
    ScopedEnv wide("KVRT_DECODE_WIDE", "1");
    checkAgainstHost(kernel, {1500, 33, 900}, 1, 0, 15);
    checkAgainstHost(kernel, {1500, 33, 900}, 5, 7, 16);
  }
}

TEST(GpuSplitKTest, PrefillRowsOfManyKeysTakeTheWarpSpecializedBody) {
  SKIP_WITHOUT_GPU();
  // Rows whose mean visible keys pass kPrefillWsMinMeanKeys: the runtime's
  // own choice on sm_90 (as kvcc emits it, the kernel allows 384 threads),
  // ragged, with a partial last tile of 128 rows (70 tokens x 4 heads)
  // and a causal row shorter than the others' prefixes.
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {3000, 200, 1700}, 70,
                   0, 14);
  checkAgainstHost(kernelNamed("bf16_d64_g8_p16_full"), {2100, 1600}, 40, 0,
                   15);
}

TEST(GpuSplitKTest, PrefillScoresClimbingAcrossTiles) {
  SKIP_WITHOUT_GPU();
  // Scores that climb slowly and jump once (rampKeys): the sm_90a prefill
  // bodies keep a row's maximum until a tile's exceeds it by more than
  // kPrefillMaxSlack (8, log2 units), so their probabilities climb to 2^8
  // before it moves, and the jump moves it at once. Emulated on this data
  // (bench/prefill/emulate_max_slack.py: f16 probabilities, fp32 sums),
  // any threshold of 17 or more overflows f16 probabilities, as would a
  // maximum that never moved (the outputs then are not finite); at 8 the
  // error is that of random scores. The warp-specialized body, the 64-row
  // wgmma body, the mma.sync body (no threshold) and the decode body,
  // against kvrt_attention_host.
  for (const char *name : {"f16_d128_g4_p16_causal", "bf16_d128_g4_p16_causal",
                           "bf16_d64_g8_p16_full", "f16_d128_g4_p16_full"}) {
    const GpuKernel &kernel = kernelNamed(name);
    checkAgainstHost(kernel, {3000, 2300}, 70, 0, 21, false, 0, true);
    {
      ScopedEnv noWs("KVRT_PREFILL_WS", "0");
      checkAgainstHost(kernel, {3000, 2300}, 70, 0, 22, false, 0, true);
    }
    ScopedEnv noWgmma("KVRT_PREFILL_WGMMA", "0");
    checkAgainstHost(kernel, {3000, 2300}, 70, 0, 23, false, 0, true);
  }
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {4000, 900}, 1, 0, 24,
                   false, 0, true);
}

TEST(GpuSplitKTest, PlanReportsTheLayoutAndSplitOfALaunch) {
  SKIP_WITHOUT_GPU();
  // kvrt_attention_plan: the layout a call gets, from the rules the CPU
  // tests above cover (planSplits, prefillWsPays, prefillWsEligible) and
  // this device's and kernel's attributes.
  const int numKvHeads = 8, numQHeads = 32, headDim = 128, pageSize = 16;
  std::mt19937 rng(53);
  RandomDeviceCache longRows, shortRows;
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache({3000, 200, 1700}, numKvHeads,
                                                headDim, KVRT_DTYPE_F16,
                                                pageSize, rng, longRows));
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache({300, 80}, numKvHeads, headDim,
                                                KVRT_DTYPE_F16, pageSize, rng,
                                                shortRows));
  const GpuKernel &kernel = kernelNamed("f16_d128_g4_p16_causal");
  const GpuKernel &legacy = kernelNamed("legacy_f16_d128_g4_p16_causal");
  auto plan = [&](const RandomDeviceCache &c, int tokens, const GpuKernel &k,
                  bool scored = false) {
    kvrt_attention_plan_info info;
    std::memset(&info, 0xff, sizeof(info));
    EXPECT_EQ(kvrt_attention_plan(c.cache, int32_t(c.ids.size()), c.ids.data(),
                                  tokens, numQHeads, 1, k.function,
                                  attentionThreads(), scored, &info),
              KVRT_OK)
        << kvrt_last_error();
    return info;
  };
  const bool wsEligible = warpSpecializedEligible(kernel.function);

  // One query token: the decode layout, a block per (token, kv head) row
  // and split; 3 rows of up to 188 pages on a whole GPU get split.
  kvrt_attention_plan_info decode = plan(longRows, 1, kernel);
  EXPECT_EQ(decode.query_tile_rows, 0);
  EXPECT_EQ(decode.grid[0], numKvHeads);
  EXPECT_EQ(decode.grid[1], 3);
  EXPECT_GT(decode.num_splits, 1);
  EXPECT_EQ(decode.grid[2], decode.num_splits);
  EXPECT_GT(decode.pages_per_split, 0);
  EXPECT_LT(int64_t(decode.pages_per_split) * (decode.num_splits - 1),
            (3000 + pageSize - 1) / pageSize);
  // The decode bodies' block state in dynamic shared memory
  // (kvrt::device::decodeSharedBytes): the tensor-core body's MmaShared at
  // head_dim 128, groups of 4, 4 x 4 x (4 x 129 + 66) bytes, and 16 to
  // align it.
  EXPECT_EQ(decode.shared_bytes, 9328);
  {
    ForcedSplits four(4);
    kvrt_attention_plan_info forced = plan(longRows, 1, kernel);
    EXPECT_EQ(forced.num_splits, 4);
    EXPECT_EQ(forced.grid[2], 4);
    EXPECT_EQ(forced.pages_per_split, (188 + 3) / 4);
  }

  // 70 tokens x 4 heads: the prefill layout, unsplit. Rows that see 2965
  // keys on average take the warp-specialized body where the kernel and
  // device allow it; short rows, the legacy kernel's 128-thread blocks and
  // KVRT_PREFILL_WS=0 the 64-row blocks.
  kvrt_attention_plan_info longPrefill = plan(longRows, 70, kernel);
  EXPECT_EQ(longPrefill.query_tile_rows, wsEligible ? 128 : 64);
  EXPECT_EQ(longPrefill.block_threads, wsEligible ? 384 : 128);
  EXPECT_EQ(longPrefill.num_splits, 1);
  // The warp-specialized body's persistent grid: a block per (sequence, kv
  // head, 128-row tile) item up to one per SM; 64-row blocks, a block per
  // (kv head; sequence and tile).
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0),
            cudaSuccess);
  EXPECT_EQ(longPrefill.grid[0],
            wsEligible ? std::min(3 * numKvHeads * 3, sms) : numKvHeads);
  EXPECT_EQ(longPrefill.grid[1], wsEligible ? 1 : 3 * 5);
  EXPECT_EQ(longPrefill.grid[2], 1);
  if (wsEligible) {
    // 190 tokens: 6 tiles a sequence, more items than SMs on big GPUs.
    const int items = 3 * numKvHeads * 6;
    EXPECT_EQ(plan(longRows, 190, kernel).grid[0], std::min(items, sms));
    ScopedEnv oneEach("KVRT_PREFILL_PERSISTENT", "0");
    EXPECT_EQ(plan(longRows, 190, kernel).grid[0], items);
  }
  // The warp-specialized body's Q tiles and three slots of 128-key K and V
  // tiles, 1024 bytes to align them and 1024 for its barriers (the kernel
  // declares no static shared memory, so the whole 227 KiB are the
  // launch's to give).
  if (wsEligible)
    EXPECT_EQ(longPrefill.shared_bytes, (128 + 6 * 128) * 128 * 2 + 2048);
  EXPECT_GT(longPrefill.shared_bytes, 0);
  kvrt_attention_plan_info shortPrefill = plan(shortRows, 70, kernel);
  EXPECT_EQ(shortPrefill.query_tile_rows, 64);
  EXPECT_EQ(shortPrefill.block_threads, 128);
  EXPECT_EQ(shortPrefill.grid[1], 2 * 5);
  EXPECT_EQ(plan(longRows, 70, legacy).query_tile_rows, 64);
  {
    ScopedEnv off("KVRT_PREFILL_WS", "0");
    EXPECT_EQ(plan(longRows, 70, kernel).query_tile_rows, 64);
  }
  // The key-score hook keeps the decode layout.
  kvrt_attention_plan_info scored = plan(longRows, 70, kernel, true);
  EXPECT_EQ(scored.query_tile_rows, 0);
  EXPECT_EQ(scored.grid[1], 3 * 70);

  // Pages of 64 tokens: the tensor-core body's warps take 16-key chunks, so
  // a split needs a page (four chunks) rather than a page per warp, and
  // 8192 keys (128 pages) split as planSplits counts 128 groups of four
  // chunks: on the H200 43 splits of 3 pages, where counting pages allowed
  // 16 splits of 8.
  {
    RandomDeviceCache pages64;
    ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache(
        {8192}, numKvHeads, headDim, KVRT_DTYPE_BF16, 64, rng, pages64));
    const GpuKernel &kernel64 = kernelNamed("bf16_d128_g4_p64_full");
    kvrt_attention_plan_info decode64 = plan(pages64, 1, kernel64);
    int perSm = 0;
    ASSERT_EQ(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                  &perSm, kernel64.function, decode64.block_threads,
                  size_t(decode64.shared_bytes)),
              cudaSuccess);
    const kvrt::cuda::SplitPlan want =
        kvrt::cuda::planSplits(numKvHeads, 128, int64_t(sms) * perSm);
    EXPECT_EQ(decode64.num_splits, want.numSplits);
    if (want.numSplits > 1) {
      EXPECT_EQ(decode64.pages_per_split, want.pagesPerSplit);
      EXPECT_GE(int64_t(decode64.num_splits) * decode64.pages_per_split, 128);
    }
  }

  kvrt_attention_plan_info info;
  EXPECT_KVRT_ERROR(kvrt_attention_plan(longRows.cache, 3, longRows.ids.data(),
                                        201, numQHeads, 1, kernel.function, 128,
                                        0, &info),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "holds 200 tokens, fewer than num_tokens 201");
  EXPECT_KVRT_ERROR(
      kvrt_attention_plan(longRows.cache, 3, longRows.ids.data(), 1, numQHeads,
                          1, kernel.function, 100, 0, &info),
      KVRT_ERROR_INVALID_ARGUMENT, "threads 100 must be a multiple of 32");
  EXPECT_KVRT_ERROR(kvrt_attention_plan(longRows.cache, 3, longRows.ids.data(),
                                        1, numQHeads, 1, nullptr, 128, 0,
                                        &info),
                    KVRT_ERROR_INVALID_ARGUMENT, "kernel must not be null");
}

TEST(GpuSplitKTest, DecodeLaunchNeedsItsSharedState) {
  SKIP_WITHOUT_GPU();
  // The decode bodies keep their block state in the dynamic shared memory
  // the runtime passes (kvrt_attention_plan's shared_bytes). The kernel
  // launched by hand on kvrt's parameters (captured from a launch through
  // kvrt) with that much gives kvrt's output bit for bit; with less it
  // refuses: every output is NaN. Tensor-core and CUDA-core bodies, unsplit
  // and split.
  const int numKvHeads = 8, numQHeads = 32, headDim = 128, pageSize = 16;
  const std::vector<int> lengths = {300, 80};
  const int batch = int(lengths.size());
  std::mt19937 rng(37);
  RandomDeviceCache device;
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache(
      lengths, numKvHeads, headDim, KVRT_DTYPE_F16, pageSize, rng, device));
  DeviceQueries io(int64_t(batch) * numQHeads * headDim, rng);
  const size_t bytes = io.bytes;
  auto read = [&](const void *pointer) { return io.read(pointer); };
  for (const char *name :
       {"f16_d128_g4_p16_causal", "simt_f16_d128_g4_p16_causal"})
    for (int splits : {1, 3}) {
      SCOPED_TRACE(testing::Message() << name << " splits " << splits);
      const GpuKernel &kernel = kernelNamed(name);
      ForcedSplits forced(splits);
      kvrt_attention_plan_info plan;
      ASSERT_EQ(kvrt_attention_plan(device.cache, batch, device.ids.data(), 1,
                                    numQHeads, 1, kernel.function,
                                    attentionThreads(), 0, &plan),
                KVRT_OK)
          << kvrt_last_error();
      EXPECT_EQ(plan.shared_bytes, 9328);
      ASSERT_EQ(kvrt_attention_launch(device.cache, batch, device.ids.data(),
                                      1, numQHeads, io.queries.pointer,
                                      io.expected.pointer, 0.1f, 1,
                                      kernel.function, attentionThreads(),
                                      nullptr),
                KVRT_OK)
          << kvrt_last_error();
      {
        const Tensor reference = read(io.expected.pointer);
        EXPECT_EQ(finiteCount(reference), reference.count);
      }
      // Split launches need the runtime's workspace and merge: only the
      // unsplit ones are launched by hand.
      if (splits > 1)
        continue;
      ASSERT_EQ(kvrt_attention_launch(device.cache, batch, device.ids.data(),
                                      1, numQHeads, io.queries.pointer,
                                      io.out.pointer, 0.1f, 1,
                                      captureParamsKernel(),
                                      attentionThreads(), nullptr),
                KVRT_OK)
          << kvrt_last_error();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      kvrt_attention_params params;
      ASSERT_TRUE(capturedParams(&params));
      ASSERT_EQ(params.num_splits, 1);
      // kvrt's own parameters and tables (unchanged since), this kernel's
      // plan.
      for (int sharedBytes : {plan.shared_bytes, plan.shared_bytes - 16, 0}) {
        SCOPED_TRACE(testing::Message() << sharedBytes << " bytes");
        ASSERT_EQ(cudaMemset(io.out.pointer, 0, bytes), cudaSuccess);
        ASSERT_EQ(launchAttentionKernel(kernel.function, params, plan.grid,
                                        plan.block_threads, sharedBytes),
                  0);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        const Tensor got = read(io.out.pointer);
        if (sharedBytes == plan.shared_bytes) {
          EXPECT_EQ(got.bytes, read(io.expected.pointer).bytes);
          continue;
        }
        int64_t finite = 0;
        for (int64_t i = 0; i < got.count; ++i)
          finite += !std::isnan(got.at(i));
        EXPECT_EQ(finite, 0) << "of " << got.count << " outputs";
      }
    }
}

TEST(GpuSplitKTest, WarpSpecializedPrefillOnAnyGrid) {
  SKIP_WITHOUT_GPU();
  // The warp-specialized body's blocks take (sequence, kv head, tile)
  // items in rounds over whatever grid they get along x: kvrt's kernel
  // launched by hand on kvrt's parameters (captured) with 1, 3 or 7 blocks,
  // with kvrt's grid and with a block per item gives kvrt's output bit for
  // bit. Ragged causal chunks (tiles past a short sequence's rows, a
  // sequence of one tile) and non-causal ones, three slots' ring carried
  // across items.
  const int numKvHeads = 2, numQHeads = 8, headDim = 128, pageSize = 16;
  const int tokens = 100; // 4 tiles of 128 (token, head) rows a sequence
  const std::vector<int> lengths = {1900, tokens, 700};
  const int batch = int(lengths.size());
  std::mt19937 rng(71);
  RandomDeviceCache device;
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache(
      lengths, numKvHeads, headDim, KVRT_DTYPE_F16, pageSize, rng, device));
  DeviceQueries io(int64_t(batch) * tokens * numQHeads * headDim, rng);
  const size_t bytes = io.bytes;
  auto read = [&](const void *pointer) { return io.read(pointer); };
  ScopedEnv ws("KVRT_PREFILL_WS", "1");
  for (const char *name : {"f16_d128_g4_p16_causal", "f16_d128_g4_p16_full"}) {
    SCOPED_TRACE(name);
    const GpuKernel &kernel = kernelNamed(name);
    const int causal = std::strstr(name, "causal") != nullptr;
    if (!warpSpecializedEligible(kernel.function))
      GTEST_SKIP() << "no warp-specialized prefill on this device";
    kvrt_attention_plan_info plan;
    ASSERT_EQ(kvrt_attention_plan(device.cache, batch, device.ids.data(),
                                  tokens, numQHeads, causal, kernel.function,
                                  attentionThreads(), 0, &plan),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(plan.query_tile_rows, 128);
    const int items = batch * numKvHeads * 4;
    EXPECT_EQ(plan.grid[1], 1);
    EXPECT_LE(plan.grid[0], items);
    ASSERT_EQ(kvrt_attention_launch(device.cache, batch, device.ids.data(),
                                    tokens, numQHeads, io.queries.pointer,
                                    io.expected.pointer, 0.1f, causal,
                                    kernel.function, attentionThreads(),
                                    nullptr),
              KVRT_OK)
        << kvrt_last_error();
    const Tensor reference = read(io.expected.pointer);
    EXPECT_EQ(finiteCount(reference), reference.count);
    ASSERT_EQ(kvrt_attention_launch(device.cache, batch, device.ids.data(),
                                    tokens, numQHeads, io.queries.pointer,
                                    io.out.pointer, 0.1f, causal,
                                    captureParamsKernel(), attentionThreads(),
                                    nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    kvrt_attention_params params;
    ASSERT_TRUE(capturedParams(&params));
    // The capture kernel's launch was planned for the capture kernel (no
    // warp-specialized body): take this kernel's plan.
    params.query_tile_rows = plan.query_tile_rows;
    // The kernel on `blocks` blocks along x, outputs NaN-poisoned first.
    auto launchOn = [&](int blocks) {
      EXPECT_EQ(cudaMemset(io.out.pointer, 0xff, bytes), cudaSuccess);
      const int32_t grid[3] = {blocks, 1, 1};
      EXPECT_EQ(launchAttentionKernel(kernel.function, params, grid,
                                      plan.block_threads, plan.shared_bytes),
                0);
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      return read(io.out.pointer);
    };
    for (int blocks : {1, 3, 7, plan.grid[0], items}) {
      SCOPED_TRACE(testing::Message() << blocks << " blocks");
      EXPECT_EQ(launchOn(blocks).bytes, reference.bytes);
    }
    // Rows (sequence, kv head) of their own lengths, shorter than the
    // sequence's (as selection leaves them): items without a key (a head
    // row of none, a causal head row shorter than its chunk, the last items
    // of a block's rounds), and items whose first consumer sees fewer tiles
    // than the block (1876 keys: 14 against 15 at tile 0). Every grid gives
    // what a block per item gives.
    ASSERT_GT(params.inline_rows, 0);
    params.inline_lens[0 * numKvHeads + 0] = 1876;
    params.inline_lens[1 * numKvHeads + 0] = 0;
    params.inline_lens[2 * numKvHeads + 1] = 10;
    const Tensor oneEach = launchOn(items);
    EXPECT_EQ(finiteCount(oneEach), oneEach.count);
    // A query that sees no key outputs zeros (kvrt.h): every row of
    // sequence 1's kv head 0 (no keys) and, causal, the rows of sequence
    // 2's kv head 1 (10 keys) before its last 10 tokens. Since session 22
    // their consumers compute a first tile all masked instead of none.
    const int group = numQHeads / numKvHeads;
    int64_t checked = 0, nonzero = 0;
    for (int t = 0; t < tokens; ++t)
      for (int h = 0; h < numQHeads; ++h)
        for (int s = 0; s < batch; ++s) {
          const int kvHead = h / group;
          const bool noKeys =
              (s == 1 && kvHead == 0) ||
              (s == 2 && kvHead == 1 && causal && t < tokens - 10);
          if (!noKeys)
            continue;
          const int64_t row = (int64_t(s) * tokens + t) * numQHeads + h;
          for (int d = 0; d < headDim; ++d) {
            ++checked;
            nonzero += oneEach.at(row * headDim + d) != 0.0f;
          }
        }
    EXPECT_GT(checked, 0);
    EXPECT_EQ(nonzero, 0) << "of " << checked
                          << " outputs of rows without keys";
    for (int blocks : {1, 3, 7}) {
      SCOPED_TRACE(testing::Message() << blocks << " blocks, short rows");
      EXPECT_EQ(launchOn(blocks).bytes, oneEach.bytes);
    }
  }
}

TEST(GpuSplitKTest, PrefillChunkWithEmptySplits) {
  SKIP_WITHOUT_GPU();
  // More splits than the short row has pages, and causal queries whose
  // visible prefix ends before the last splits begin.
  checkAgainstHost(kernelNamed("f16_d128_g4_p16_causal"), {40, 600}, 5, 13, 5);
}

TEST(GpuSplitKTest, RefusedLaunchPoisonsEveryOutputAndKeyScore) {
  SKIP_WITHOUT_GPU();
  // A cache of fp16, head_dim 128, 8 kv heads (groups of 4), pages of 16,
  // launched with kernels of another element type, group, head_dim, page
  // size or causality: the kernel must refuse, every output element is NaN
  // and, with the key-score hook, every slot below the sequence's length
  // too (whatever the split count, and whatever an earlier valid launch
  // left in the runtime's workspace); slots past it stay as they were, and
  // so do the bytes right after the output (a kernel of a wider element
  // type must not poison past it).
  const int numKvHeads = 8, numQHeads = 32, headDim = 128, pageSize = 16;
  const std::vector<int> lengths = {300, 80};
  const int batch = int(lengths.size()), maxLength = 300;
  std::mt19937 rng(31);
  RandomDeviceCache device;
  ASSERT_NO_FATAL_FAILURE(fillRandomDeviceCache(
      lengths, numKvHeads, headDim, KVRT_DTYPE_F16, pageSize, rng, device));
  kvrt_cache *cache = device.cache;
  const std::vector<int32_t> &ids = device.ids;
  const int maxTokens = 70;
  const size_t queryBytes = size_t(batch) * maxTokens * numQHeads * headDim * 2;
  constexpr size_t kGuardBytes = 4096;
  DeviceMemory queries(queryBytes), out(queryBytes + kGuardBytes);
  Tensor hostQueries = randomTensor(
      KVRT_DTYPE_F16, int64_t(batch) * maxTokens * numQHeads * headDim, rng);
  ASSERT_EQ(cudaMemcpy(queries.pointer, hostQueries.data(), queryBytes,
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  const int64_t scoreElements = int64_t(batch) * numKvHeads * maxLength;
  DeviceMemory scores(scoreElements * sizeof(float));
  const GpuKernel &valid = kernelNamed("f16_d128_g4_p16_causal");
  // Each launch's output ends where the guard bytes begin.
  auto outputOf = [&](int tokens) {
    return static_cast<char *>(out.pointer) + queryBytes -
           size_t(batch) * tokens * numQHeads * headDim * 2;
  };
  auto launch = [&](const GpuKernel &kernel, int tokens, bool scored) {
    return scored
               ? kvrt_attention_launch_scored(
                     cache, batch, ids.data(), tokens, numQHeads,
                     queries.pointer, outputOf(tokens), 0.1f, 1,
                     kernel.function, attentionThreads(),
                     static_cast<float *>(scores.pointer), maxLength, nullptr)
               : kvrt_attention_launch(
                     cache, batch, ids.data(), tokens, numQHeads,
                     queries.pointer, outputOf(tokens), 0.1f, 1,
                     kernel.function, attentionThreads(), nullptr);
  };
  for (const char *name :
       {"f16_d128_g1_p16_causal", "f16_d128_g8_p16_causal",
        "f16_d64_g4_p16_causal", "decode_f16_d64_g3_p16_causal",
        "f16_d256_g8_p64_causal", "f16_d128_g4_p16_full",
        "f16_d128_g4_p32_causal", "bf16_d128_g4_p16_causal",
        "decode_f32_d64_g4_p16_causal", "decode_f32_d128_g4_p16_causal"}) {
    const GpuKernel &kernel = kernelNamed(name);
    // Splits forced to 1 (unsplit decode: the kernel writes the row lse) or
    // 6 (the merge does); 70 tokens: the prefill layout (unscored only).
    for (int tokens : {1, 5, 70})
      for (int splits : {1, 6})
        for (bool scored : {false, true}) {
          if (tokens == 70 && (scored || splits != 1))
            continue;
          SCOPED_TRACE(testing::Message()
                       << name << " tokens " << tokens << " splits " << splits
                       << (scored ? " scored" : ""));
          ForcedSplits forced(splits);
          // A valid launch first leaves finite values in the workspace
          // (kept in it: not dropped from L2 after their accumulation).
          {
            ScopedEnv keep("KVRT_SCORE_DISCARD", "0");
            ASSERT_EQ(launch(valid, tokens, scored), KVRT_OK)
                << kvrt_last_error();
          }
          ASSERT_EQ(cudaMemset(out.pointer, 0, queryBytes), cudaSuccess);
          ASSERT_EQ(cudaMemset(static_cast<char *>(out.pointer) + queryBytes,
                               0x5a, kGuardBytes),
                    cudaSuccess);
          std::vector<float> before(scoreElements, 0.5f);
          ASSERT_EQ(cudaMemcpy(scores.pointer, before.data(),
                               scoreElements * sizeof(float),
                               cudaMemcpyHostToDevice),
                    cudaSuccess);
          ASSERT_EQ(launch(kernel, tokens, scored), KVRT_OK)
              << kvrt_last_error();
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          Tensor result(KVRT_DTYPE_F16,
                        int64_t(batch) * tokens * numQHeads * headDim);
          ASSERT_EQ(cudaMemcpy(result.data(), outputOf(tokens),
                               result.bytes.size(), cudaMemcpyDeviceToHost),
                    cudaSuccess);
          int64_t finite = 0;
          for (int64_t i = 0; i < result.count; ++i)
            finite += !std::isnan(result.at(i));
          EXPECT_EQ(finite, 0) << "of " << result.count << " outputs";
          std::vector<unsigned char> guard(kGuardBytes);
          ASSERT_EQ(cudaMemcpy(guard.data(),
                               static_cast<char *>(out.pointer) + queryBytes,
                               kGuardBytes, cudaMemcpyDeviceToHost),
                    cudaSuccess);
          EXPECT_EQ(std::count(guard.begin(), guard.end(), 0x5a),
                    int64_t(kGuardBytes))
              << "bytes after the output changed";
          if (!scored)
            continue;
          std::vector<float> after(scoreElements);
          ASSERT_EQ(cudaMemcpy(after.data(), scores.pointer,
                               scoreElements * sizeof(float),
                               cudaMemcpyDeviceToHost),
                    cudaSuccess);
          int64_t wrong = 0;
          for (int b = 0; b < batch; ++b)
            for (int h = 0; h < numKvHeads; ++h)
              for (int s = 0; s < maxLength; ++s) {
                const float value =
                    after[(int64_t(b) * numKvHeads + h) * maxLength + s];
                wrong += s < lengths[b] ? !std::isnan(value) : value != 0.5f;
              }
          EXPECT_EQ(wrong, 0) << "of " << scoreElements << " key scores";
        }
  }
}

/// Hand-built tables: per-head lengths differ inside one sequence and some
/// rows are empty, as the allocator's per-head tables allow. `numTokens`
/// queries per sequence, non-causal (every query sees its head's keys).
/// `kernel` (fp16, non-causal) over a batch of 2 whose heads hold ragged
/// lengths (empty ones among them) on pages in scrambled order, whose rows
/// past each head's end hold NaN (kernels must neither read them nor
/// multiply them by a probability of 0); with `tensorCopies`, the launch
/// carries the tensor maps of the pool (params.h, kv_tensor_map) as kvrt's
/// caches do. With `pageRuns` the rows' pages come in runs of consecutive
/// ids (1-24 long, a quarter of them descending, the runs shuffled), so
/// that some 128-key tiles lie on a run and others break inside one.
void checkRaggedHeads(int splits, int numTokens = 1,
                      const char *kernelName = "f16_d128_g4_p16_full",
                      bool tensorCopies = false, bool pageRuns = false) {
  const GpuKernel &kernel = kernelNamed(kernelName);
  const int numKvHeads = 8, group = kernel.groupSize,
            headDim = kernel.headDim, pageSize = kernel.pageSize;
  const int numQHeads = numKvHeads * group;
  const int batch = 2;
  std::mt19937 rng(11 + splits);
  std::uniform_int_distribution<int> lengthDist(0, 2500);
  std::vector<int32_t> kvLens(batch * numKvHeads);
  for (int32_t &length : kvLens)
    length = lengthDist(rng);
  kvLens[0] = 0;
  kvLens[numKvHeads + 5] = 0;
  kvLens[3] = 1;

  // Pages are handed out in a scrambled order so that table lookups matter.
  std::vector<int32_t> indptr{0}, indices;
  for (int32_t length : kvLens)
    indptr.push_back(indptr.back() + (length + pageSize - 1) / pageSize);
  const int totalPages = indptr.back();
  if (pageRuns) {
    std::vector<std::vector<int32_t>> runs;
    std::uniform_int_distribution<int> runLength(1, 24);
    for (int first = 0; first < totalPages;) {
      std::vector<int32_t> run(
          std::min(runLength(rng), totalPages - first));
      std::iota(run.begin(), run.end(), first);
      if (rng() % 4 == 0)
        std::reverse(run.begin(), run.end());
      first += int(run.size());
      runs.push_back(std::move(run));
    }
    std::shuffle(runs.begin(), runs.end(), rng);
    for (const std::vector<int32_t> &run : runs)
      indices.insert(indices.end(), run.begin(), run.end());
  } else {
    for (int i = 0; i < totalPages; ++i)
      indices.push_back(int32_t((int64_t(i) * 7919) % totalPages));
  }
  const int64_t rowElements = int64_t(pageSize) * headDim;
  Tensor pool = randomTensor(KVRT_DTYPE_F16, 2 * rowElements * totalPages, rng);
  for (size_t row = 0; row < kvLens.size(); ++row) {
    const int length = kvLens[row];
    if (length % pageSize == 0)
      continue;
    const int64_t page = indices[indptr[row] + length / pageSize];
    for (int value = 0; value < 2; ++value)
      std::fill_n(pool.bytes.begin() +
                      ((page * 2 + value) * rowElements +
                       int64_t(length % pageSize) * headDim) *
                          2,
                  (pageSize - length % pageSize) * headDim * 2, 0xff);
  }
  const int64_t queryElements =
      int64_t(batch) * numTokens * numQHeads * headDim;
  Tensor queries = randomTensor(KVRT_DTYPE_F16, queryElements, rng, 2.0f);
  const float scale = 1.0f / std::sqrt(float(headDim));

  // Reference straight from the tables.
  std::vector<double> expected(queryElements, 0.0);
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < numTokens; ++t)
    for (int q = 0; q < numQHeads; ++q) {
      const int row = b * numKvHeads + q / group;
      const int length = kvLens[row];
      if (length == 0)
        continue;
      auto element = [&](int key, bool value, int d) {
        int page = indices[indptr[row] + key / pageSize];
        return double(pool.at((int64_t(page) * 2 + (value ? 1 : 0)) *
                                  rowElements +
                              int64_t(key % pageSize) * headDim + d));
      };
      const int64_t qBase =
          ((int64_t(b) * numTokens + t) * numQHeads + q) * headDim;
      std::vector<double> logits(length);
      double maxLogit = -INFINITY;
      for (int k = 0; k < length; ++k) {
        double dot = 0.0;
        for (int d = 0; d < headDim; ++d)
          dot += queries.at(qBase + d) * element(k, false, d);
        logits[k] = dot * scale;
        maxLogit = std::max(maxLogit, logits[k]);
      }
      double total = 0.0;
      for (double &logit : logits)
        total += (logit = std::exp(logit - maxLogit));
      for (int d = 0; d < headDim; ++d) {
        double sum = 0.0;
        for (int k = 0; k < length; ++k)
          sum += logits[k] * element(k, true, d);
        expected[qBase + d] = sum / total;
      }
    }

  std::vector<int32_t> tables = indptr;
  tables.insert(tables.end(), kvLens.begin(), kvLens.end());
  tables.insert(tables.end(), indices.begin(), indices.end());
  DeviceMemory devicePool(pool.bytes.size()), deviceQueries(queries.bytes.size()),
      deviceOut(queries.bytes.size()),
      deviceTables(tables.size() * sizeof(int32_t));
  ASSERT_EQ(cudaMemcpy(devicePool.pointer, pool.data(), pool.bytes.size(),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(deviceQueries.pointer, queries.data(),
                       queries.bytes.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(deviceTables.pointer, tables.data(),
                       tables.size() * sizeof(int32_t), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemset(deviceOut.pointer, 0xff, queries.bytes.size()),
            cudaSuccess);
  const int32_t *deviceInts = static_cast<const int32_t *>(deviceTables.pointer);
  kvrt_attention_params params{};
  params.pool_base = devicePool.pointer;
  params.page_bytes = 2 * rowElements * 2;
  params.page_indptr = deviceInts;
  params.kv_lens = deviceInts + indptr.size();
  params.page_indices = deviceInts + indptr.size() + kvLens.size();
  params.queries = deviceQueries.pointer;
  params.out = deviceOut.pointer;
  params.batch = batch;
  params.num_tokens = numTokens;
  params.num_q_heads = numQHeads;
  params.num_kv_heads = numKvHeads;
  params.head_dim = headDim;
  params.page_size = pageSize;
  params.scale = scale;
  params.causal = 0;
  int maxLength = *std::max_element(kvLens.begin(), kvLens.end());
  kvrt::cuda::PageTensorMap map;
  if (tensorCopies) {
    map.create({devicePool.pointer, totalPages, params.page_bytes, headDim,
                pageSize},
               0);
    params.kv_tensor_map = map.get();
    // Made on sm_90 only (elsewhere the launch copies by cp.async).
    EXPECT_EQ(params.kv_tensor_map != nullptr, deviceIsSm90());
    kvrt::cuda::AttentionPlan plan;
    ASSERT_EQ(kvrt::cuda::planAttention(kernel.function, params,
                                        KVRT_DTYPE_F16, maxLength / 2,
                                        attentionThreads(), false, 0, &plan,
                                        "test"),
              KVRT_OK)
        << kvrt_last_error();
    const char *knob = std::getenv("KVRT_PREFILL_TMA");
    const char *runsKnob = std::getenv("KVRT_PREFILL_TMA_RUNS");
    const bool maps = params.kv_tensor_map != nullptr &&
                      !(knob && knob[0] == '0');
    EXPECT_EQ(plan.tensorCopies, maps && pageSize >= 16);
    EXPECT_EQ(plan.tensorCopyRuns,
              maps && pageSize < 128 && !(runsKnob && runsKnob[0] == '0'));
  }
  // Planning for a shorter row than the longest checks that the last split
  // still covers the rest.
  ForcedSplits forced(splits);
  ASSERT_EQ(kvrt::cuda::launchSplitAttention(
                kernel.function, params, KVRT_DTYPE_F16, maxLength / 2,
                attentionThreads(), 0, nullptr, "test"),
            KVRT_OK)
      << kvrt_last_error();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  Tensor actual(KVRT_DTYPE_F16, queryElements);
  ASSERT_EQ(cudaMemcpy(actual.data(), deviceOut.pointer, actual.bytes.size(),
                       cudaMemcpyDeviceToHost),
            cudaSuccess);
  // Empty rows give exact zeros.
  for (int q = 0; q < group * headDim; ++q)
    ASSERT_EQ(actual.at(q), 0.0f) << q;
  EXPECT_LT(relativeError(actual, expected), toleranceFor(KVRT_DTYPE_F16))
      << "splits " << splits << ", tokens " << numTokens;
}

TEST(GpuSplitKTest, RaggedPerHeadLengthsAndEmptyRows) {
  SKIP_WITHOUT_GPU();
  for (int splits : {0, 1, 5, 40})
    checkRaggedHeads(splits);
  // 70 tokens x group 4: the prefill layout, with empty and short heads.
  checkRaggedHeads(0, 70);
  // The warp-specialized body, its K/V by tensor copies (pages of 64).
  ScopedEnv warpSpecialized("KVRT_PREFILL_WS", "1");
  checkRaggedHeads(0, 70, "f16_d128_g8_p64_full", true);
  ScopedEnv cpAsync("KVRT_PREFILL_TMA", "0");
  checkRaggedHeads(0, 70, "f16_d128_g8_p64_full", true);
}

TEST(GpuSplitKTest, TilesOnRunsOfPages) {
  SKIP_WITHOUT_GPU();
  // Whole tiles on runs of consecutive pages by one tensor copy per 64
  // columns, the others a page at a time (the tables carry the maps, as
  // kvrt passes them on pages of 16 where most tiles lie on runs); then
  // every tile a page at a time, and cp.async alone.
  ScopedEnv warpSpecialized("KVRT_PREFILL_WS", "1");
  for (const char *kernel : {"f16_d128_g4_p16_full", "f16_d128_g8_p64_full"}) {
    SCOPED_TRACE(kernel);
    checkRaggedHeads(0, 70, kernel, true, true);
    {
      ScopedEnv noRuns("KVRT_PREFILL_TMA_RUNS", "0");
      checkRaggedHeads(0, 70, kernel, true, true);
    }
    ScopedEnv cpAsync("KVRT_PREFILL_TMA", "0");
    checkRaggedHeads(0, 70, kernel, true, true);
  }
}

} // namespace
