//===- SplitK.cu - Split-K attention launches and their merge --*- CUDA -*-===//
//
// Flash-decoding for compiled attention kernels. At batch 1 a decode step
// has only num_kv_heads (kv head, token) blocks, far fewer than the SMs can
// run, so each row's pages are cut into num_splits ranges that run as
// separate blocks (grid z). Each writes its normalized partial output and
// log2-sum-exp to a workspace; mergeSplits then combines, per query head,
// the splits into the final output with weights 2^(lse_s - max lse).
//
// The workspace belongs to the device, not to a cache: one buffer per CUDA
// device, grown on demand and never shrunk, kept until the process exits.
// Launches take a per-device lock from the workspace's first use to the
// enqueue of its last reader (the merge, or the key-score accumulation);
// an event recorded after it orders the next launch's writes after this
// launch's reads on whatever stream it runs.
//
//===----------------------------------------------------------------------===//
#include "CudaSupport.h"
#include "SplitK.h"

#include "kvrt/device/attention.cuh"
#include "kvrt/device/attention_prefill.cuh"
#include "kvrt/device/attention_prefill_ws.cuh"
#include "kvrt/device/element.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

namespace {

using kvrt::cuda::checkCuda;
using kvrt::cuda::ScopedDevice;
using kvrt::cuda::SplitPlan;

// SplitK.h's copies of the device templates' constants.
static_assert(kvrt::cuda::kPrefillTileRows == kvrt::device::kPrefillRows);
static_assert(kvrt::cuda::kPrefillWsRegisterPool ==
              128 * 24 + 256 * kvrt::device::kPrefillWsConsumerRegisters);
static_assert(kvrt::cuda::kPrefillWsTileKeys == kvrt::device::kPrefillWsKeys);
static_assert(kvrt::cuda::kPrefillWsTileRows == kvrt::device::kPrefillWsRows &&
              kvrt::cuda::kPrefillWsBlockThreads ==
                  kvrt::device::kPrefillWsThreads);
static_assert(
    std::is_same_v<kvrt::device::ScoreValue<float>, float> &&
        std::is_same_v<kvrt::device::ScoreValue<__half>, __half> &&
        std::is_same_v<kvrt::device::ScoreValue<__nv_bfloat16>, __half>,
    "accumulateKeyScores reads floats for fp32 kernels, else halves");
static_assert(kvrt::cuda::kWideBlockThreads ==
              kvrt::device::kWideDecodeThreads);

/// Most threads of a merge block (see mergeShape).
constexpr int kMergeThreads = 256;

/// Splits whose partial states a merge thread loads before it combines any
/// of them: the loads of a batch are in flight together.
constexpr int kMergeBatch = 8;

/// Upper bound on splits: bounds the workspace and the merge's work.
/// 256 splits of 4 pages already cover 1024 pages per wave.
constexpr int64_t kMaxSplits = 256;

/// A split count is good enough once its waves are this full relative to
/// the best count's (the rule FlashAttention-2 uses): fewer splits mean less
/// merge work and longer, more efficient blocks.
constexpr double kWaveEfficiencyTolerance = 0.85;

/// Launches whose waves already keep this fraction of the block slots busy
/// are not split.
constexpr double kFullChipFraction = 0.8;

/// Most blocks gridDim.z (and gridDim.y) may hold.
constexpr int64_t kMaxGridZ = 65535;
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kMaxGridX = 2147483647;

/// Running combination of split partial states: the largest lse seen
/// (log2 units), the sum of the states' weights rescaled to it, and the
/// matching weighted sum of N consecutive output elements.
template <int N> struct MergeState {
  float max = -INFINITY;
  float weight = 0.0f;
  float acc[N] = {};

  /// Adds a state with maximum `lse`, weight `w` and weighted sum `sum`
  /// (a split's normalized output is the state (lse_s, 1, partial_s)).
  /// States with maximum -inf (splits that saw no key) weigh nothing.
  __device__ void add(float lse, float w, const float (&sum)[N]) {
    if (lse == -INFINITY)
      return;
    const float newMax = fmaxf(max, lse);
    const float keep = exp2f(max - newMax); // 0 while max is -inf
    const float take = exp2f(lse - newMax);
    weight = weight * keep + w * take;
#pragma unroll
    for (int i = 0; i < N; ++i)
      acc[i] = acc[i] * keep + sum[i] * take;
    max = newMax;
  }
};

/// Loads N floats (one 16-byte load when N is 4: the caller aligns them).
template <int N>
__device__ __forceinline__ void loadVector(const float *src, float (&x)[N]) {
  if constexpr (N == 4) {
    const float4 v = *reinterpret_cast<const float4 *>(src);
    x[0] = v.x;
    x[1] = v.y;
    x[2] = v.z;
    x[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i)
      x[i] = src[i];
  }
}

/// How a merge block covers one head: `parts` threads per N-element vector
/// of the output, each taking every parts-th split, so that a thread has
/// at most kMergeBatch splits while the block stays within kMergeThreads
/// (a whole number of warps).
struct MergeShape {
  int parts;
  int threads;
};
MergeShape mergeShape(int numSplits, int headDim) {
  const int vectors = headDim % 4 == 0 ? headDim / 4 : headDim;
  int parts = (numSplits + kMergeBatch - 1) / kMergeBatch;
  parts = std::max(1, std::min(parts, kMergeThreads / std::max(1, vectors)));
  const int threads = std::min(kMergeThreads, parts * vectors);
  return {parts, (threads + 31) / 32 * 32};
}

/// Combines the splits of one query head (block x = head): out[d] =
/// sum_s w_s * partial[s][d] / sum_s w_s with w_s = 2^(lse_s - max lse).
/// Splits that saw no key have lse -inf and weigh nothing; a head with no
/// key at all gets 0, as the unsplit kernel writes.
///
/// Thread (part, vector) combines, online, output vector `vector` of
/// splits part, part + parts, ...: it loads the lse and values of
/// kMergeBatch splits before it uses any, and the lse is not reduced
/// first, so the merge after the attention kernel costs about one memory
/// round trip. A warp's loads are vectors of one split (contiguous). The
/// parts of a vector are then combined through shared memory in part
/// order (deterministic).
template <typename T, int N>
__device__ void mergeHead(const float *partialOut, const float *partialLse,
                          T *out, int numSplits, int headDim, float *rowLse,
                          int parts) {
  __shared__ float sharedMax[kMergeThreads];
  __shared__ float sharedWeight[kMergeThreads];
  __shared__ float sharedAcc[kMergeThreads][N];
  const int64_t head = blockIdx.x;
  const float *lse = partialLse + head * numSplits;
  const float *partial = partialOut + head * numSplits * headDim;
  T *result = out + head * headDim;
  const int vectors = headDim / N;
  const int perPass = int(blockDim.x) / parts;
  const int part = int(threadIdx.x) / perPass;
  // head_dim above kMergeThreads * N takes several passes (parts is 1).
  for (int base = 0; base < vectors; base += perPass) {
    const int vector = base + int(threadIdx.x) % perPass;
    const bool active = part < parts && vector < vectors;
    MergeState<N> state;
    if (active) {
      for (int first = part; first < numSplits; first += kMergeBatch * parts) {
        float batchLse[kMergeBatch];
        float batchValues[kMergeBatch][N];
#pragma unroll
        for (int b = 0; b < kMergeBatch; ++b) {
          const int s = first + b * parts;
          batchLse[b] = -INFINITY;
#pragma unroll
          for (int i = 0; i < N; ++i)
            batchValues[b][i] = 0.0f;
          if (s < numSplits) {
            batchLse[b] = lse[s];
            loadVector<N>(partial + int64_t(s) * headDim + vector * N,
                          batchValues[b]);
          }
        }
#pragma unroll
        for (int b = 0; b < kMergeBatch; ++b)
          state.add(batchLse[b], 1.0f, batchValues[b]);
      }
    }
    sharedMax[threadIdx.x] = state.max;
    sharedWeight[threadIdx.x] = state.weight;
#pragma unroll
    for (int i = 0; i < N; ++i)
      sharedAcc[threadIdx.x][i] = state.acc[i];
    __syncthreads();
    if (active && part == 0) {
      for (int other = 1; other < parts; ++other) {
        const int slot = other * perPass + int(threadIdx.x);
        float sum[N];
#pragma unroll
        for (int i = 0; i < N; ++i)
          sum[i] = sharedAcc[slot][i];
        state.add(sharedMax[slot], sharedWeight[slot], sum);
      }
      const float scale = state.weight > 0.0f ? 1.0f / state.weight : 0.0f;
#pragma unroll
      for (int i = 0; i < N; ++i)
        result[vector * N + i] =
            kvrt::device::fromFloat<T>(state.acc[i] * scale);
      // The key-score hook's log2-sum-exp of the row (null when off): -inf
      // for a row without keys, NaN for a poisoned one (NaN weight).
      if (rowLse && vector == 0)
        rowLse[head] = state.weight > 0.0f    ? state.max + log2f(state.weight)
                       : state.weight == 0.0f ? -INFINITY
                                              : __int_as_float(0x7fc00000);
    }
    __syncthreads(); // shared memory is reused by the next pass
  }
}

/// The merge kernel: one block of mergeShape(...).threads threads per
/// query head; 16-byte vectors where head_dim allows (see mergeHead).
template <typename T>
__global__ void __launch_bounds__(kMergeThreads)
    mergeSplits(const float *partialOut, const float *partialLse, T *out,
                int numSplits, int headDim, float *rowLse, int parts) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Launched as a programmatic dependent of the attention kernel (see
  // queueMerge): wait until its partial states are complete and visible.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  if (headDim % 4 == 0)
    mergeHead<T, 4>(partialOut, partialLse, out, numSplits, headDim, rowLse,
                    parts);
  else
    mergeHead<T, 1>(partialOut, partialLse, out, numSplits, headDim, rowLse,
                    parts);
}

/// Threads of a key-score accumulation block.
constexpr int kKeyScoreThreads = 256;
/// Slots of one key-score accumulation thread.
constexpr int kKeyScoreSlotsPerThread = 4;
static_assert(kKeyScoreThreads * kKeyScoreSlotsPerThread ==
                  kvrt::cuda::kKeyScoreBlockSlots,
              "SplitK.h's block share");
static_assert(kvrt::cuda::kKeyScoreStrideUnit %
                      kvrt::device::scoreChunkKeys(1024) ==
                  0 &&
              kvrt::device::scoreChunkKeys(1024) == 16 &&
              kvrt::device::mma::kChunkKeys == 16);
using kvrt::cuda::kKeyScoreBlockSlots;

/// `N` elements of type E loaded as one access, or two of 16 bytes (N *
/// sizeof(E) bytes, a power of two; the caller guarantees that alignment,
/// or 16 bytes where it is larger).
template <typename E, int N>
struct alignas(sizeof(E) * N < 16 ? sizeof(E) * N : 16) Packed {
  E e[N];
};

/// The group's N values of one key-score slot (or maxima of one chunk, or
/// lse of one query token) at `at`, widened to floats: one access for N up
/// to 16 bytes' worth.
template <int N, typename E>
__device__ __forceinline__ void loadGroup(const E *at, float (&out)[N]) {
  const Packed<E, N> packed = *reinterpret_cast<const Packed<E, N> *>(at);
#pragma unroll
  for (int g = 0; g < N; ++g)
    out[g] = kvrt::device::toFloat(packed.e[g]);
}

/// Lets L2 drop the 128-byte lines lying wholly within [begin, end)
/// without writing them back to DRAM (discard.global.L2: their contents
/// become undefined), spread over the block's threads. For workspace whose
/// every location is written before anything reads it.
__device__ void discardLines(const void *begin, const void *end) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  constexpr uintptr_t kLine = 128;
  const uintptr_t first =
      (reinterpret_cast<uintptr_t>(begin) + kLine - 1) & ~(kLine - 1);
  const uintptr_t last = reinterpret_cast<uintptr_t>(end) & ~(kLine - 1);
  for (uintptr_t line = first + threadIdx.x * kLine; line < last;
       line += blockDim.x * kLine)
    asm volatile("discard.global.L2 [%0], 128;\n" ::"l"(line) : "memory");
#endif
}

/// The key-score hook's second pass: adds, for every slot of row (b, kv
/// head h) = blockIdx.x, the probability its key got from each query token
/// t and head g of the group, over the keys each query saw (the kernels'
/// causal rule): the kernel's value relative to its chunk's maximum m,
/// times 2^(m - lse) (params.h). `Value` is the kernel's score type
/// (kvrt::device::ScoreValue). `Group` is the group size (query heads per
/// kv head) when it is 1, 2, 4 or 8, so that a slot's values, its chunk's
/// maxima and a token's lse are each one vector load (the workspace's
/// layout aligns them: params.h); 0 for any other, read one by one. Each
/// thread takes kKeyScoreSlotsPerThread slots kKeyScoreThreads apart (its
/// share of the row's indexing is paid once for them) and reads their
/// key_scores before the sums, so that those loads overlap the
/// workspace's. With `discard`, the block then drops its slots' values
/// and chunk maxima from L2 (discardLines), so that the lines still there
/// are never written back to DRAM. Grid (batch * num_kv_heads, ceil(longest
/// row / kKeyScoreBlockSlots)).
template <typename Value, int Group>
__global__ void __launch_bounds__(kKeyScoreThreads)
    accumulateKeyScores(kvrt_attention_params p, bool discard) {
  static_assert(Group == 0 || Group == 1 || Group == 2 || Group == 4 ||
                    Group == 8,
                "vector loads of 1, 2, 4 or 8 values");
  constexpr int kSlots = kKeyScoreSlotsPerThread;
  const int row = blockIdx.x;
  const int firstSlot = blockIdx.y * kKeyScoreBlockSlots;
  const int begin = firstSlot + threadIdx.x;
  const int length = kvrt::device::rowLength(p, row);
  if (firstSlot >= length)
    return; // the whole block
  const int sequence = row / p.num_kv_heads;
  const int kvHead = row - sequence * p.num_kv_heads;
  const int group = Group > 0 ? Group : p.num_q_heads / p.num_kv_heads;
  // Chunks of C = scoreChunkKeys(page_size) keys, a power of two.
  const int chunkShift = __ffs(kvrt::device::scoreChunkKeys(p.page_size)) - 1;
  const int64_t chunks = p.score_stride >> chunkShift;
  float *scores = p.key_scores + int64_t(row) * p.key_scores_stride;
  float sums[kSlots];
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int slot = begin + i * kKeyScoreThreads;
    sums[i] = slot < length ? scores[slot] : 0.0f;
  }
  // Token t's keys (the causal rule) and its query rows first .. first +
  // group - 1, whose values of a slot are contiguous, and so are their
  // maxima of its chunk (params.h).
  auto visibleKeys = [&](int t) {
    return p.causal ? length - p.num_tokens + t + 1 : length;
  };
  auto firstRow = [&](int t) {
    return (int64_t(sequence) * p.num_tokens + t) * p.num_q_heads +
           int64_t(kvHead) * group;
  };
  auto valuesOf = [&](int64_t first) {
    return static_cast<const Value *>(p.score_scratch) + first * p.score_stride;
  };
  for (int t = 0; t < p.num_tokens; ++t) {
    const int visible = visibleKeys(t);
    const int64_t first = firstRow(t);
    const Value *values = valuesOf(first);
    const float *maxima = p.score_max + first * chunks;
    if constexpr (Group > 0) {
      float lse[Group];
      loadGroup<Group>(p.row_lse + first, lse);
#pragma unroll
      for (int i = 0; i < kSlots; ++i) {
        const int slot = begin + i * kKeyScoreThreads;
        if (slot >= visible)
          continue;
        float value[Group], maximum[Group];
        loadGroup<Group>(values + int64_t(slot) * Group, value);
        loadGroup<Group>(maxima + int64_t(slot >> chunkShift) * Group, maximum);
        // A row that saw no keys (lse -inf) left its values unwritten.
#pragma unroll
        for (int g = 0; g < Group; ++g)
          if (lse[g] != -INFINITY)
            sums[i] += value[g] * exp2f(maximum[g] - lse[g]);
      }
    } else {
      for (int g = 0; g < group; ++g) {
        const float lse = p.row_lse[first + g];
        if (lse == -INFINITY)
          continue;
#pragma unroll
        for (int i = 0; i < kSlots; ++i) {
          const int slot = begin + i * kKeyScoreThreads;
          if (slot < visible)
            sums[i] +=
                kvrt::device::toFloat(values[int64_t(slot) * group + g]) *
                exp2f(maxima[int64_t(slot >> chunkShift) * group + g] - lse);
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kSlots; ++i) {
    const int slot = begin + i * kKeyScoreThreads;
    if (slot < length)
      scores[slot] = sums[i];
  }
  if (!discard)
    return;
  // Once every thread of the block has read its slots, the values and
  // chunk maxima of the block's slots, [firstSlot, endSlot) of each
  // token's query group (no other block reads them; slots past a token's
  // visible keys hold nothing anyone reads), leave L2 without a
  // write-back. The workspace's layout starts each of them on a 128-byte
  // line (launchSplitAttention).
  __syncthreads();
  const int endSlot =
      int(::min(int64_t(firstSlot + kKeyScoreBlockSlots), p.score_stride));
  for (int t = 0; t < p.num_tokens; ++t) {
    const int64_t first = firstRow(t);
    const Value *values = valuesOf(first);
    const float *maxima = p.score_max + first * chunks;
    discardLines(values + int64_t(firstSlot) * group,
                 values + int64_t(endSlot) * group);
    discardLines(maxima + int64_t(firstSlot >> chunkShift) * group,
                 maxima + int64_t(endSlot >> chunkShift) * group);
  }
}

/// Queues accumulateKeyScores<Value, group or 0> on `stream`.
template <typename Value>
void queueKeyScores(const kvrt_attention_params &p, dim3 grid, bool discard,
                    cudaStream_t stream) {
  switch (p.num_q_heads / p.num_kv_heads) {
  case 1:
    accumulateKeyScores<Value, 1>
        <<<grid, kKeyScoreThreads, 0, stream>>>(p, discard);
    break;
  case 2:
    accumulateKeyScores<Value, 2>
        <<<grid, kKeyScoreThreads, 0, stream>>>(p, discard);
    break;
  case 4:
    accumulateKeyScores<Value, 4>
        <<<grid, kKeyScoreThreads, 0, stream>>>(p, discard);
    break;
  case 8:
    accumulateKeyScores<Value, 8>
        <<<grid, kKeyScoreThreads, 0, stream>>>(p, discard);
    break;
  default:
    accumulateKeyScores<Value, 0>
        <<<grid, kKeyScoreThreads, 0, stream>>>(p, discard);
    break;
  }
}

/// Values asked of the CUDA runtime once per key: the first get() of a
/// key runs `compute(&value)` under the cache's lock and keeps the value if
/// it returns KVRT_OK (a failure is returned and asked again next time).
template <typename Key, typename Value> class QueryCache {
public:
  template <typename Compute>
  kvrt_status get(const Key &key, Value *value, Compute compute) {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = values.find(key);
    if (found == values.end()) {
      Value computed{};
      KVRT_RETURN_IF_ERROR(compute(&computed));
      found = values.emplace(key, computed).first;
    }
    *value = found->second;
    return KVRT_OK;
  }

private:
  std::mutex mutex;
  std::map<Key, Value> values;
};

/// Attribute `attribute` of `device` (`what` names it in errors), asked
/// once per (device, attribute).
kvrt_status deviceAttribute(int device, cudaDeviceAttr attribute,
                            const char *what, int *value,
                            const char *function) {
  static QueryCache<std::pair<int, int>, int> cache;
  return cache.get(
      {device, int(attribute)}, value, [&](int *result) -> kvrt_status {
        return checkCuda(cudaDeviceGetAttribute(result, attribute, device),
                         function, what);
      });
}

/// Blocks of `kernel` with `threads` threads and `sharedBytes` bytes of
/// dynamic shared memory one SM holds at once (at least 1), asked once per
/// (device, kernel, threads, sharedBytes).
kvrt_status blocksPerSm(int device, const void *kernel, int threads,
                        int sharedBytes, int *blocks, const char *function) {
  static QueryCache<std::tuple<int, const void *, int, int>, int> cache;
  return cache.get(
      {device, kernel, threads, sharedBytes}, blocks,
      [&](int *result) -> kvrt_status {
        KVRT_RETURN_IF_ERROR(checkCuda(
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                result, kernel, threads, size_t(sharedBytes)),
            function, "cudaOccupancyMaxActiveBlocksPerMultiprocessor"));
        *result = std::max(1, *result);
        return KVRT_OK;
      });
}

/// What kvrt asks of a compiled kernel for one device.
struct KernelLimits {
  /// The most threads per block it may be launched with (its
  /// __launch_bounds__ and resources).
  int maxThreads;
  /// Registers per thread of its code for that device.
  int registers;
};

/// `kernel`'s KernelLimits on `device`, asked once per (device, kernel).
kvrt_status kernelLimits(int device, const void *kernel, KernelLimits *limits,
                         const char *function) {
  static QueryCache<std::pair<int, const void *>, KernelLimits> cache;
  return cache.get(
      {device, kernel}, limits, [&](KernelLimits *result) -> kvrt_status {
        cudaFuncAttributes attributes = {};
        KVRT_RETURN_IF_ERROR(
            checkCuda(cudaFuncGetAttributes(&attributes, kernel), function,
                      "cudaFuncGetAttributes (attention kernel)"));
        *result = {attributes.maxThreadsPerBlock, attributes.numRegs};
        return KVRT_OK;
      });
}

/// Whether mergeSplits for `dtype` on `device` (compute capability
/// `major`) may be a programmatic dependent launch: only where its device
/// code was compiled for sm_90 or newer, so that its griddepcontrol.wait is
/// there (a kvrt built for an older target runs JIT-compiled PTX without
/// it, and would read the partial states before they are written). Asked
/// once per (device, dtype).
kvrt_status mergeWaits(int device, kvrt_dtype dtype, int major,
                       bool *dependent, const char *function) {
  *dependent = false;
  if (major < 9)
    return KVRT_OK;
  static QueryCache<std::pair<int, int>, bool> cache;
  return cache.get(
      {device, int(dtype)}, dependent, [&](bool *result) -> kvrt_status {
        const void *kernel =
            dtype == KVRT_DTYPE_F16
                ? reinterpret_cast<const void *>(&mergeSplits<__half>)
            : dtype == KVRT_DTYPE_BF16
                ? reinterpret_cast<const void *>(&mergeSplits<__nv_bfloat16>)
                : reinterpret_cast<const void *>(&mergeSplits<float>);
        cudaFuncAttributes attributes = {};
        KVRT_RETURN_IF_ERROR(
            checkCuda(cudaFuncGetAttributes(&attributes, kernel), function,
                      "cudaFuncGetAttributes (mergeSplits)"));
        *result = attributes.ptxVersion >= 90;
        return KVRT_OK;
      });
}

/// How a prefill-layout launch of `kernel` runs.
struct PrefillLaunch {
  /// Query rows per block (params.query_tile_rows).
  int rows;
  int threads;
  int sharedBytes;
};

/// The prefill-layout launch of `kernel` on `device` (compute capability
/// `major`.`minor`) for a caller asking for `threads` threads: on 9.0, the
/// warp-specialized body's blocks (kPrefillWsTileRows rows, 384 threads,
/// its shared memory) where the kernel's __launch_bounds__ allow 384
/// threads (prefillWsEligible), else the sm_90a wgmma body's shared memory
/// on 64-row blocks; elsewhere what the mma.sync body needs (attention.cuh
/// picks the body by the rows and bytes it gets). Raises the kernel's
/// limit above its default (48 KiB less its static shared memory, none in
/// kvcc's kernels) where needed, once per (device, kernel) and size. Where
/// a body's bytes are refused (a kernel with its own static shared memory:
/// the warp-specialized body's 226 KiB at d128 leave 1 KiB of sm_90's 227),
/// the next body's; where the mma.sync body's are refused as well, the
/// launch reports the error. The warp-specialized
/// body runs where its rows are long enough (prefillWsPays for `params`
/// and `maxLength`); KVRT_PREFILL_WS=1 forces it, KVRT_PREFILL_WS=0 skips
/// it and KVRT_PREFILL_WGMMA=0 both sm_90a bodies (benchmarking knobs).
kvrt_status prefillLaunch(int device, const void *kernel,
                          const kvrt_attention_params &params,
                          int64_t maxLength, int major, int minor, int threads,
                          PrefillLaunch *out, const char *function) {
  const int headDim = params.head_dim;
  KernelLimits limits = {};
  KVRT_RETURN_IF_ERROR(kernelLimits(device, kernel, &limits, function));
  /// What cudaFuncSetAttribute did for one (device, kernel).
  struct Limit {
    int raised = 0;
    int refused = std::numeric_limits<int>::max();
  };
  static std::mutex mutex;
  static std::map<std::pair<int, const void *>, Limit> cache;
  std::lock_guard<std::mutex> lock(mutex);
  Limit &limit = cache[{device, kernel}];
  auto allow = [&](int bytes) {
    if (bytes <= limit.raised)
      return true;
    if (bytes >= limit.refused)
      return false;
    if (cudaFuncSetAttribute(kernel,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             bytes) != cudaSuccess) {
      cudaGetLastError(); // not sticky: clear it
      limit.refused = bytes;
      return false;
    }
    limit.raised = bytes;
    return true;
  };
  auto knob = [](const char *name) -> char {
    const char *text = std::getenv(name);
    return text ? text[0] : '\0';
  };
  if (major == 9 && minor == 0 && knob("KVRT_PREFILL_WGMMA") != '0') {
    const int wsBytes = kvrt::device::prefillWsDefaultSharedBytes(headDim);
    const char ws = knob("KVRT_PREFILL_WS");
    const bool pays =
        ws == '1' ||
        (ws != '0' && kvrt::cuda::prefillWsPays(maxLength, params.num_tokens,
                                                params.causal != 0));
    if (kvrt::cuda::prefillWsEligible(major, minor, limits.maxThreads,
                                      limits.registers) &&
        pays && allow(wsBytes)) {
      *out = {kvrt::cuda::kPrefillWsTileRows,
              kvrt::cuda::kPrefillWsBlockThreads, wsBytes};
      return KVRT_OK;
    }
    const int wgmmaBytes = kvrt::device::prefillSharedBytes(headDim, true);
    if (allow(wgmmaBytes)) {
      *out = {kvrt::cuda::kPrefillTileRows, threads, wgmmaBytes};
      return KVRT_OK;
    }
  }
  const int mmaBytes = kvrt::device::prefillSharedBytes(headDim, false);
  allow(mmaBytes);
  *out = {kvrt::cuda::kPrefillTileRows, threads, mmaBytes};
  return KVRT_OK;
}

/// One device's split-K workspace; see the file comment.
struct Workspace {
  std::mutex mutex;
  void *buffer = nullptr;
  size_t capacity = 0;
  /// Recorded after the last kernel that read the buffer (a merge or a
  /// key-score accumulation); null before.
  cudaEvent_t lastUse = nullptr;
  /// Id of the stream it was recorded on (CudaSupport.h's recordUse).
  unsigned long long lastUseStream = kvrt::cuda::kUnknownStream;

  /// Makes `bytes` available and orders `stream` after the previous user.
  /// Call with `mutex` held and the device current.
  kvrt_status acquire(size_t bytes, cudaStream_t stream, const char *function) {
    if (bytes > capacity) {
      // The previous launch may still read the old buffer.
      if (lastUse)
        KVRT_RETURN_IF_ERROR(checkCuda(cudaEventSynchronize(lastUse), function,
                                       "cudaEventSynchronize (workspace)"));
      cudaFree(buffer);
      buffer = nullptr;
      capacity = 0;
      size_t size = std::max<size_t>(bytes + bytes / 2, size_t(1) << 20);
      KVRT_RETURN_IF_ERROR(checkCuda(cudaMalloc(&buffer, size), function,
                                     "cudaMalloc (split-K workspace)"));
      capacity = size;
    } else if (lastUse) {
      KVRT_RETURN_IF_ERROR(
          kvrt::cuda::waitForUse(stream, lastUse, lastUseStream, function,
                                 "cudaStreamWaitEvent (workspace)"));
    }
    return KVRT_OK;
  }

  /// Records that work queued on `stream` so far reads the buffer.
  kvrt_status release(cudaStream_t stream, const char *function) {
    if (!lastUse)
      KVRT_RETURN_IF_ERROR(checkCuda(
          cudaEventCreateWithFlags(&lastUse, cudaEventDisableTiming), function,
          "cudaEventCreate (workspace)"));
    return kvrt::cuda::recordUse(stream, lastUse, &lastUseStream, function,
                                 "cudaEventRecord (workspace)");
  }
};

/// The workspace of `device`. Never destroyed: freeing device memory while
/// the CUDA runtime shuts down at exit is not allowed.
Workspace &workspaceOf(int device) {
  static std::mutex mutex;
  static auto *workspaces = new std::map<int, Workspace>();
  std::lock_guard<std::mutex> lock(mutex);
  return (*workspaces)[device];
}

/// KVRT_DECODE_SPLITS when set to a positive number, else 0.
int64_t splitOverride() {
  const char *text = std::getenv("KVRT_DECODE_SPLITS");
  if (!text)
    return 0;
  char *end = nullptr;
  long value = std::strtol(text, &end, 10);
  return end != text && value > 0 ? value : 0;
}

/// Whether the key-score accumulation drops the workspace lines it has
/// read from L2 (accumulateKeyScores): yes unless KVRT_SCORE_DISCARD=0
/// (for comparisons; read at every launch, like KVRT_DECODE_SPLITS). Off,
/// the tensor-core kernels' evict-last values stay in L2 until other
/// evict-last data or their eviction after all normal data moves them, and
/// are written back then.
bool discardScores() {
  const char *text = std::getenv("KVRT_SCORE_DISCARD");
  return !(text && text[0] == '0');
}

/// SplitPlan for exactly `splits` splits of `maxPages` pages (fewer when
/// the pages do not go round).
SplitPlan fixedSplits(int64_t splits, int64_t maxPages) {
  SplitPlan plan;
  splits = std::clamp<int64_t>(splits, 1, std::max<int64_t>(1, maxPages));
  if (splits <= 1)
    return plan;
  int64_t perSplit = (maxPages + splits - 1) / splits;
  plan.numSplits = static_cast<int32_t>((maxPages + perSplit - 1) / perSplit);
  plan.pagesPerSplit = static_cast<int32_t>(perSplit);
  if (plan.numSplits <= 1)
    plan = SplitPlan();
  return plan;
}

/// planSplits(baseBlocks, maxPages, slots), remembered for the last
/// arguments this thread asked about: successive decode steps and layers
/// repeat them (the longest row gains a page every page_size tokens), and
/// the search over split counts costs about a microsecond.
SplitPlan lastPlan(int64_t baseBlocks, int64_t maxPages, int64_t slots) {
  struct Last {
    int64_t baseBlocks = -1, maxPages = -1, slots = -1;
    SplitPlan plan;
  };
  thread_local Last last;
  if (last.baseBlocks != baseBlocks || last.maxPages != maxPages ||
      last.slots != slots)
    last = {baseBlocks, maxPages, slots,
            kvrt::cuda::planSplits(baseBlocks, maxPages, slots)};
  return last.plan;
}

kvrt_status launchError(cudaError_t error, const char *function) {
  if (error == cudaErrorInvalidResourceHandle ||
      error == cudaErrorInvalidDeviceFunction)
    // The usual cause: the kernel was registered with another copy of the
    // CUDA runtime (nvcc links cudart statically by default).
    return kvrt::fail(KVRT_ERROR_CUDA,
                      "%s: launching the attention kernel failed: %s (%s); "
                      "the kernel must be built for this GPU and linked "
                      "against the shared CUDA runtime (nvcc -cudart shared), "
                      "like kvrt",
                      function, cudaGetErrorString(error),
                      cudaGetErrorName(error));
  return checkCuda(error, function, "cudaLaunchKernel (attention)");
}

/// Queues mergeSplits<T> for `heads` query heads. Where mergeWaits allows
/// (sm_90 and newer) it is a programmatic dependent launch: the GPU may
/// start the merge's blocks once every attention block has started
/// (pagedAttention allows it) and the merge waits for the attention
/// kernel's results with griddepcontrol.wait, which hides the launch gap
/// between the two.
template <typename T>
cudaError_t queueMerge(const kvrt_attention_params &p, int64_t heads,
                       bool dependentLaunch, cudaStream_t stream) {
  const MergeShape shape = mergeShape(p.num_splits, p.head_dim);
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(heads));
  config.blockDim = dim3(unsigned(shape.threads));
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (dependentLaunch) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, mergeSplits<T>, p.partial_out,
                            p.partial_lse, static_cast<T *>(p.out),
                            int(p.num_splits), int(p.head_dim), p.row_lse,
                            shape.parts);
}

} // namespace

bool kvrt::cuda::prefillWsRunCopies(int headDim, int pageSize) {
  return kvrt::device::prefillWsRunCopies(headDim, pageSize,
                                          kvrt::device::kPrefillWsKeys);
}

namespace {
/// decodeWarpKeys restates which shapes the tensor-core decode body takes
/// (kMmaAttentionSupported, on sm_80+): checked here against it over
/// element types, head dims, groups and page sizes on both sides of each
/// of its bounds.
template <typename T>
constexpr kvrt_dtype dtypeOf() {
  return std::is_same_v<T, __half>          ? KVRT_DTYPE_F16
         : std::is_same_v<T, __nv_bfloat16> ? KVRT_DTYPE_BF16
                                            : KVRT_DTYPE_F32;
}
template <typename T, int HeadDim, int Group, int Page>
constexpr bool warpKeysAgree() {
  return kvrt::cuda::decodeWarpKeys(dtypeOf<T>(), HeadDim, Group, Page, 8) ==
         (kvrt::device::kMmaAttentionSupported<T, HeadDim, Group, Page> ? 16
                                                                        : Page);
}
template <typename T, int HeadDim, int Group, int... Pages>
constexpr bool warpKeysAgreePages() {
  return (warpKeysAgree<T, HeadDim, Group, Pages>() && ...);
}
template <typename T, int HeadDim, int... Groups>
constexpr bool warpKeysAgreeGroups() {
  return (warpKeysAgreePages<T, HeadDim, Groups, 4, 8, 16, 32, 48, 64,
                             128>() &&
          ...);
}
template <typename T, int... HeadDims> constexpr bool warpKeysAgreeAll() {
  return (warpKeysAgreeGroups<T, HeadDims, 1, 2, 3, 4, 5, 8, 9, 16>() &&
          ...);
}
static_assert(warpKeysAgreeAll<__half, 32, 64, 96, 128, 256, 512>() &&
                  warpKeysAgreeAll<__nv_bfloat16, 32, 64, 96, 128, 256,
                                   512>() &&
                  warpKeysAgreeAll<float, 64, 128, 256>(),
              "decodeWarpKeys and kMmaAttentionSupported disagree");
} // namespace

SplitPlan kvrt::cuda::planSplits(int64_t baseBlocks, int64_t maxPages,
                                 int64_t slots) {
  if (baseBlocks <= 0 || maxPages <= 1 || slots <= 0)
    return SplitPlan();
  // Fraction of the slots of the waves that do work, for s splits.
  auto efficiency = [&](int64_t s) {
    double waves = double(baseBlocks * s) / double(slots);
    return waves / std::ceil(waves);
  };
  // Grids that already keep their waves this busy are not split: below one
  // wave that is the fraction of the chip's slots they fill; above it, a
  // last wave that runs mostly empty (5 blocks on 4 slots) is split too.
  if (efficiency(1) >= kFullChipFraction)
    return SplitPlan();
  const int64_t most =
      std::min({kMaxSplits, maxPages, kMaxGridZ});
  double best = 0.0;
  for (int64_t s = 1; s <= most; ++s)
    best = std::max(best, efficiency(s));
  for (int64_t s = 1; s <= most; ++s)
    if (efficiency(s) >= kWaveEfficiencyTolerance * best)
      return fixedSplits(s, maxPages);
  return SplitPlan();
}

kvrt_status kvrt::cuda::planAttention(const void *kernel,
                                      const kvrt_attention_params &params,
                                      kvrt_dtype dtype, int64_t maxLength,
                                      int threads, bool scored, int device,
                                      AttentionPlan *out,
                                      const char *function) {
  ScopedDevice scoped(device);
  AttentionPlan plan;
  KVRT_RETURN_IF_ERROR(deviceAttribute(
      device, cudaDevAttrComputeCapabilityMajor,
      "cudaDeviceGetAttribute (compute capability)", &plan.computeMajor,
      function));
  if (!scored && usePrefillLayout(params, dtype, plan.computeMajor, threads)) {
    // Many query rows: blocks of 64 or 128 (token, group head) rows that
    // share each K/V tile (attention_prefill*.cuh); no split.
    int minor = 0;
    KVRT_RETURN_IF_ERROR(deviceAttribute(
        device, cudaDevAttrComputeCapabilityMinor,
        "cudaDeviceGetAttribute (compute capability)", &minor, function));
    PrefillLaunch launch = {};
    KVRT_RETURN_IF_ERROR(prefillLaunch(device, kernel, params, maxLength,
                                       plan.computeMajor, minor, threads,
                                       &launch, function));
    const int group = params.num_q_heads / params.num_kv_heads;
    const int64_t tiles =
        (int64_t(params.num_tokens) * group + launch.rows - 1) / launch.rows;
    plan.queryTileRows = launch.rows;
    plan.threads = launch.threads;
    // The prefill bodies' tiles, or the block state of the CUDA-core body
    // that code without them runs token by token (less at every supported
    // shape).
    plan.sharedBytes = std::max(
        launch.sharedBytes,
        kvrt::device::decodeSharedBytes(params.head_dim, group));
    plan.grid[0] = params.num_kv_heads;
    plan.grid[1] = int64_t(params.batch) * tiles;
    plan.grid[2] = 1;
    if (launch.rows == kPrefillWsTileRows) {
      // The warp-specialized body's persistent grid: as many blocks as fit
      // on the device at once (one per SM), each taking (sequence, kv
      // head, tile) items in rounds, no more blocks than items.
      // KVRT_PREFILL_PERSISTENT=0 gives every item its own block (a
      // benchmarking knob).
      const int64_t items = int64_t(params.num_kv_heads) * params.batch * tiles;
      int64_t blocks = items;
      const char *persistent = std::getenv("KVRT_PREFILL_PERSISTENT");
      if (!persistent || persistent[0] != '0') {
        int sms = 0, perSm = 0;
        KVRT_RETURN_IF_ERROR(deviceAttribute(
            device, cudaDevAttrMultiProcessorCount,
            "cudaDeviceGetAttribute (multiprocessor count)", &sms, function));
        KVRT_RETURN_IF_ERROR(blocksPerSm(device, kernel, launch.threads,
                                         plan.sharedBytes, &perSm, function));
        blocks = std::min(items, int64_t(sms) * std::max(1, perSm));
      }
      if (items > kMaxGridX)
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: %lld prefill tiles exceed the grid", function,
                          static_cast<long long>(items));
      plan.grid[0] = blocks;
      plan.grid[1] = 1;
      // K/V by tensor copies where the cache has tensor maps (sm_90) and
      // the shape allows them: every tile a page at a time (pages of 32
      // and more), whole tiles on runs of consecutive pages at once (pages
      // of 16 to 64). KVRT_PREFILL_TMA=0 keeps cp.async,
      // KVRT_PREFILL_TMA_RUNS=0 the copies a page at a time (benchmarking
      // knobs).
      auto knobOff = [](const char *name) {
        const char *value = std::getenv(name);
        return value && value[0] == '0';
      };
      const bool maps =
          params.kv_tensor_map != nullptr && !knobOff("KVRT_PREFILL_TMA");
      plan.tensorCopies =
          maps && kvrt::device::prefillWsTensorCopies(
                      params.head_dim, params.page_size,
                      kvrt::device::kPrefillWsKeys);
      plan.tensorCopyRuns =
          maps && !knobOff("KVRT_PREFILL_TMA_RUNS") &&
          kvrt::device::prefillWsRunCopies(params.head_dim, params.page_size,
                                           kvrt::device::kPrefillWsKeys);
    }
    *out = plan;
    return KVRT_OK;
  }
  const int64_t rows = int64_t(params.batch) * params.num_tokens;
  const int64_t baseBlocks = rows * params.num_kv_heads;
  // The decode bodies' block state lives in dynamic shared memory: at most
  // 35 KiB (head_dim 256, group 8), within every kernel's default limit.
  plan.sharedBytes = kvrt::device::decodeSharedBytes(
      params.head_dim, params.num_q_heads / params.num_kv_heads);
  const int64_t maxPages =
      (maxLength + params.page_size - 1) / params.page_size;
  const int64_t forced = splitOverride();
  int sms = 0;
  KVRT_RETURN_IF_ERROR(deviceAttribute(
      device, cudaDevAttrMultiProcessorCount,
      "cudaDeviceGetAttribute (multiprocessor count)", &sms, function));
  KernelLimits limits = {};
  KVRT_RETURN_IF_ERROR(kernelLimits(device, kernel, &limits, function));
  threads =
      decodeThreads(baseBlocks, sms, limits.maxThreads, threads, forced != 0);
  // Every split should give each warp at least one turn of its body's
  // work: a 16-key chunk in the tensor-core body, a page in the CUDA-core
  // one. (Counting pages for both gave rows on pages of 32 or 64 tokens
  // too few splits: 9-75% fewer blocks at batch 1 up to 64K keys, and
  // batch 1 x 32K at page 64 ran 43 splits instead of 57, 2.1-2.7% slower.)
  const int64_t warps = threads / 32;
  const int64_t warpKeys = decodeWarpKeys(
      dtype, params.head_dim, params.num_q_heads / params.num_kv_heads,
      params.page_size, plan.computeMajor);
  const int64_t turns = maxPages * (params.page_size / warpKeys);

  SplitPlan split;
  if (forced) {
    split = fixedSplits(std::min(forced, kMaxSplits), maxPages);
  } else {
    int perSm = 0;
    KVRT_RETURN_IF_ERROR(blocksPerSm(device, kernel, threads, plan.sharedBytes,
                                     &perSm, function));
    split = lastPlan(baseBlocks, turns / std::max<int64_t>(1, warps),
                     int64_t(sms) * perSm);
    // planSplits counted groups of `warps` turns; convert back to pages.
    if (split.numSplits > 1)
      split = fixedSplits(split.numSplits, maxPages);
  }
  plan.numSplits = split.numSplits;
  plan.pagesPerSplit = split.pagesPerSplit;
  plan.threads = threads;
  plan.grid[0] = params.num_kv_heads;
  plan.grid[1] = rows;
  plan.grid[2] = std::max(1, split.numSplits);
  *out = plan;
  return KVRT_OK;
}

kvrt_status kvrt::cuda::launchSplitAttention(const void *kernel,
                                             kvrt_attention_params &params,
                                             kvrt_dtype dtype,
                                             int64_t maxLength, int threads,
                                             int device, void *stream,
                                             const char *function) {
  ScopedDevice scoped(device);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  const bool scored = params.key_scores != nullptr;
  AttentionPlan plan;
  KVRT_RETURN_IF_ERROR(planAttention(kernel, params, dtype, maxLength, threads,
                                     scored, device, &plan, function));
  params.dtype = int32_t(dtype);
  params.query_tile_rows = plan.queryTileRows;
  params.num_splits = plan.numSplits;
  params.pages_per_split = plan.pagesPerSplit;
  params.partial_out = nullptr;
  params.partial_lse = nullptr;
  if (!plan.tensorCopies && !plan.tensorCopyRuns)
    params.kv_tensor_map = nullptr;
  params.kv_tensor_runs = plan.tensorCopyRuns ? 1 : 0;
  const dim3 grid(unsigned(plan.grid[0]), unsigned(plan.grid[1]),
                  unsigned(plan.grid[2]));
  if (plan.numSplits <= 1 && !scored) {
    kvrt_attention_params copy = params;
    void *args[] = {&copy};
    cudaError_t error =
        cudaLaunchKernel(kernel, grid, dim3(unsigned(plan.threads)), args,
                         size_t(plan.sharedBytes), cudaStream);
    if (error == cudaSuccess)
      error = cudaGetLastError();
    return error == cudaSuccess ? KVRT_OK : launchError(error, function);
  }

  // Workspace: split partials, then the key-score hook's parts (the
  // longest row's slots a row, not the caller's key_scores_stride).
  const int64_t heads =
      int64_t(params.batch) * params.num_tokens * params.num_q_heads;
  const int64_t slots = plan.numSplits > 1 ? heads * plan.numSplits : 0;
  const WorkspaceLayout layout = workspaceLayout(
      heads, slots, params.head_dim, scored, maxLength,
      kvrt::device::scoreChunkKeys(params.page_size), dtype == KVRT_DTYPE_F32);
  const int64_t scoreBlocks =
      (maxLength + kKeyScoreBlockSlots - 1) / kKeyScoreBlockSlots;
  if (scored && scoreBlocks > kMaxGridY)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: rows of %lld tokens exceed the key-score "
                      "accumulation's grid (%lld tokens at most)",
                      function, static_cast<long long>(maxLength),
                      static_cast<long long>(kMaxGridY * kKeyScoreBlockSlots));
  const size_t bytes = size_t(layout.floats) * sizeof(float);
  // Asked before anything is queued, so that a failure leaves no half-done
  // launch behind.
  bool dependent = false;
  if (slots)
    KVRT_RETURN_IF_ERROR(
        mergeWaits(device, dtype, plan.computeMajor, &dependent, function));
  Workspace &workspace = workspaceOf(device);
  std::lock_guard<std::mutex> lock(workspace.mutex);
  KVRT_RETURN_IF_ERROR(workspace.acquire(bytes, cudaStream, function));
  float *const base = static_cast<float *>(workspace.buffer);
  if (slots) {
    params.partial_out = base + layout.partialOut;
    params.partial_lse = base + layout.partialLse;
  }
  if (scored) {
    params.row_lse = base + layout.rowLse;
    params.score_max = base + layout.scoreMax;
    params.score_stride = layout.scoreStride;
    params.score_scratch = base + layout.scoreScratch;
  }

  kvrt_attention_params copy = params;
  void *args[] = {&copy};
  cudaError_t error =
      cudaLaunchKernel(kernel, grid, dim3(unsigned(plan.threads)), args,
                       size_t(plan.sharedBytes), cudaStream);
  if (error == cudaSuccess)
    error = cudaGetLastError();
  if (error != cudaSuccess)
    return launchError(error, function);
  // The attention kernel is queued and uses the workspace: whatever happens
  // to the launches after it, the workspace records it (keeping the first
  // error).
  kvrt_status status = KVRT_OK;
  if (slots) {
    switch (dtype) {
    case KVRT_DTYPE_F16:
      error = queueMerge<__half>(params, heads, dependent, cudaStream);
      break;
    case KVRT_DTYPE_BF16:
      error = queueMerge<__nv_bfloat16>(params, heads, dependent, cudaStream);
      break;
    case KVRT_DTYPE_F32:
      error = queueMerge<float>(params, heads, dependent, cudaStream);
      break;
    }
    status = checkCuda(error, function, "mergeSplits launch");
  }
  if (scored && status == KVRT_OK) {
    // Every row's slots lie below maxLength, and so below the caller's
    // key_scores_stride (checked by the caller).
    const dim3 scoreGrid(unsigned(int64_t(params.batch) * params.num_kv_heads),
                         unsigned(scoreBlocks));
    if (scoreBlocks > 0) {
      if (dtype == KVRT_DTYPE_F32)
        queueKeyScores<float>(params, scoreGrid, discardScores(), cudaStream);
      else
        queueKeyScores<__half>(params, scoreGrid, discardScores(), cudaStream);
      status =
          checkCuda(cudaGetLastError(), function, "accumulateKeyScores launch");
    }
  }
  if (status == KVRT_OK)
    return workspace.release(cudaStream, function);
  return kvrt::afterQueued(
      status, [&] { return workspace.release(cudaStream, function); });
}
