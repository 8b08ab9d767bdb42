//===- split_merge.cuh - Combining split-K partial states ------*- CUDA -*-===//
//
// With several splits (params.h, num_splits) each block of a (query row,
// kv head) writes its split's normalized fp32 output and log2-sum-exp per
// query head; the final output is out[d] = sum_s w_s * partial_s[d] /
// sum_s w_s with w_s = 2^(lse_s - max lse). Two places combine them with
// mergeHeads: the runtime's merge kernel (runtime/lib/SplitK.cu, one block
// per query head), and, when the runtime passes split_counters, the
// attention kernel itself: mergeIfLastSplit lets the last of a row's split
// blocks to finish combine the row's group of heads, so no second kernel
// (and no kernel boundary) follows the attention kernel.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_SPLIT_MERGE_CUH
#define KVRT_DEVICE_SPLIT_MERGE_CUH

#include "kvrt/device/element.cuh"
#include "kvrt/device/params.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace kvrt::device {

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

/// Loads N floats of a partial state from L2 (ld.global.cg: other blocks of
/// the same grid may have written them, so no L1 copy may be used); one
/// 16-byte load when N is 4 (the caller aligns them).
template <int N>
__device__ __forceinline__ void loadPartial(const float *src, float (&x)[N]) {
  if constexpr (N == 4) {
    const float4 v = __ldcg(reinterpret_cast<const float4 *>(src));
    x[0] = v.x;
    x[1] = v.y;
    x[2] = v.z;
    x[3] = v.w;
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i)
      x[i] = __ldcg(src + i);
  }
}

/// Threads that combine each N-element output vector in mergeHeads: enough
/// that each takes at most `batch` splits, with `items` vectors on at most
/// `threads` threads.
__host__ __device__ inline int mergeParts(int numSplits, int items, int threads,
                                          int batch) {
  int parts = (numSplits + batch - 1) / batch;
  const int most = threads / (items > 0 ? items : 1);
  parts = parts < most ? parts : most;
  return parts > 1 ? parts : 1;
}

/// Combines the splits of query heads firstHead .. firstHead + heads - 1
/// (each head's num_splits states at partialLse[head * numSplits + s] and
/// partialOut[(head * numSplits + s) * headDim ..]) into out[head *
/// headDim ..], and, when rowLse is set, each head's log2-sum-exp into
/// rowLse[head] (the key-score hook). Splits that saw no key have lse -inf
/// and weigh nothing; a head with no key at all gets 0, as the unsplit
/// kernel writes. Every thread of the block calls it; the first
/// min(blockDim.x, MaxThreads) take part.
///
/// The heads' output vectors are items; thread (part, item) combines item's
/// splits part, part + parts, ... online, loading the lse and values of
/// `Batch` splits before it uses any (the lse is not reduced first), so a
/// pass costs about numSplits / (parts * Batch) memory round trips. The
/// parts of an item are then combined through shared memory in part order
/// (deterministic). A warp's loads are vectors of one split (contiguous).
template <typename T, int N, int Batch, int MaxThreads>
__device__ void mergeHeads(const float *partialOut, const float *partialLse,
                           T *out, int64_t firstHead, int heads, int numSplits,
                           int headDim, float *rowLse, int parts) {
  __shared__ float sharedMax[MaxThreads];
  __shared__ float sharedWeight[MaxThreads];
  __shared__ float sharedAcc[MaxThreads][N];
  const int vectors = headDim / N;
  const int items = heads * vectors;
  const int threads =
      int(blockDim.x) < MaxThreads ? int(blockDim.x) : MaxThreads;
  const int perPass = threads / parts;
  const int thread = int(threadIdx.x);
  // Threads past parts * perPass (and past MaxThreads) only synchronize.
  const int part = thread < parts * perPass ? thread / perPass : parts;
  for (int base = 0; base < items; base += perPass) {
    const int item = base + thread % perPass;
    const bool active = part < parts && item < items;
    const int64_t head = firstHead + item / vectors;
    const int vector = item % vectors;
    const float *lse = partialLse + head * numSplits;
    const float *partial = partialOut + head * numSplits * headDim;
    MergeState<N> state;
    if (active) {
      for (int first = part; first < numSplits; first += Batch * parts) {
        float batchLse[Batch];
        float batchValues[Batch][N];
#pragma unroll
        for (int b = 0; b < Batch; ++b) {
          const int s = first + b * parts;
          batchLse[b] = -INFINITY;
#pragma unroll
          for (int i = 0; i < N; ++i)
            batchValues[b][i] = 0.0f;
          if (s < numSplits) {
            batchLse[b] = __ldcg(lse + s);
            loadPartial<N>(partial + int64_t(s) * headDim + vector * N,
                           batchValues[b]);
          }
        }
#pragma unroll
        for (int b = 0; b < Batch; ++b)
          state.add(batchLse[b], 1.0f, batchValues[b]);
      }
    }
    if (thread < MaxThreads) {
      sharedMax[thread] = state.max;
      sharedWeight[thread] = state.weight;
#pragma unroll
      for (int i = 0; i < N; ++i)
        sharedAcc[thread][i] = state.acc[i];
    }
    __syncthreads();
    if (active && part == 0) {
      for (int other = 1; other < parts; ++other) {
        const int slot = other * perPass + thread;
        float sum[N];
#pragma unroll
        for (int i = 0; i < N; ++i)
          sum[i] = sharedAcc[slot][i];
        state.add(sharedMax[slot], sharedWeight[slot], sum);
      }
      const float scale = state.weight > 0.0f ? 1.0f / state.weight : 0.0f;
#pragma unroll
      for (int i = 0; i < N; ++i)
        out[head * headDim + vector * N + i] =
            fromFloat<T>(state.acc[i] * scale);
      if (rowLse && vector == 0)
        rowLse[head] =
            state.weight > 0.0f ? state.max + log2f(state.weight) : -INFINITY;
    }
    __syncthreads(); // shared memory is reused by the next pass
  }
}

/// Splits a thread of mergeIfLastSplit loads at once.
inline constexpr int kLastSplitBatch = 16;

/// Threads of an attention block that take part in mergeIfLastSplit (the
/// blocks kvcc emits have 128; larger blocks leave the rest idle).
inline constexpr int kMaxLastSplitThreads = 128;

/// Called by every thread of a split block after it stored its partial
/// states for query heads firstHead .. firstHead + GroupSize - 1. Without
/// p.split_counters it returns (the runtime's merge kernel combines the
/// splits). With them, the block counts itself in its (query row, kv head)
/// group's counter, split_counters[firstHead / GroupSize]; the last of the
/// group's num_splits blocks to arrive resets the counter to 0 (for the
/// next launch) and merges the group's splits into p.out (and p.row_lse)
/// with mergeHeads. Each block's partial stores are made visible to the
/// whole GPU before it counts (__threadfence), and the last block reads
/// them from L2, so it sees every split.
template <typename T, int HeadDim, int GroupSize, int MaxThreads>
__device__ void mergeIfLastSplit(const kvrt_attention_params &p,
                                 int64_t firstHead) {
  if (!p.split_counters)
    return;
  __shared__ bool last;
  __threadfence(); // this thread's partial stores, before the count
  __syncthreads();
  if (threadIdx.x == 0) {
    int32_t *counter = p.split_counters + firstHead / GroupSize;
    const int arrived = atomicAdd(counter, 1);
    last = arrived == p.num_splits - 1;
    if (last) {
      atomicExch(counter, 0);
      __threadfence(); // the other splits' stores, before this block's loads
    }
  }
  __syncthreads();
  if (!last)
    return;
  constexpr int kVector = HeadDim % 4 == 0 ? 4 : 1;
  const int threads =
      int(blockDim.x) < MaxThreads ? int(blockDim.x) : MaxThreads;
  const int parts = mergeParts(p.num_splits, GroupSize * HeadDim / kVector,
                               threads, kLastSplitBatch);
  mergeHeads<T, kVector, kLastSplitBatch, MaxThreads>(
      p.partial_out, p.partial_lse, static_cast<T *>(p.out), firstHead,
      GroupSize, p.num_splits, HeadDim, p.row_lse, parts);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_SPLIT_MERGE_CUH
