//===- attention.cuh - Paged attention for compiled programs ---*- CUDA -*-===//
//
// The device template kvcc's generated kernels call:
//
//   __global__ void __launch_bounds__(128) k(kvrt_attention_params p) {
//     kvrt::device::pagedAttention<__half, 128, 4, 16, true>(p);
//   }
//
// launched by kvrt_attention_launch with grid (num_kv_heads,
// batch * num_tokens) and kAttentionThreads threads. Block (h, b * T + t)
// computes query token t of sequence b for the GroupSize query heads
// h * G .. h * G + G - 1 that share kv head h (GQA), so every K/V element is
// loaded once for the whole group.
//
// Work split: warp w takes pages w, w + W, ...; inside a page the warp's key
// groups (see RowSplit) take one key each per step; each lane holds a slice
// of head_dim. Every key group keeps an online-softmax state per query head
// in fp32; at the end the key groups of a warp merge through shuffles and
// the warps merge through shared memory.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_CUH
#define KVRT_DEVICE_ATTENTION_CUH

#include "kvrt/device/element.cuh"
#include "kvrt/device/paged.cuh"
#include "kvrt/device/params.h"
#include "kvrt/device/softmax.cuh"

namespace kvrt::device {

/// Threads per block that generated kernels declare in __launch_bounds__
/// and pass to kvrt_attention_launch. Any multiple of 32 up to 1024 works.
inline constexpr int kAttentionThreads = 128;

/// Most warps a block may have (1024 threads).
inline constexpr int kMaxWarps = 32;

/// Shared memory of one block.
template <int HeadDim, int GroupSize> struct AttentionShared {
  /// The group's queries in fp32, pre-scaled by scale * log2(e).
  float query[GroupSize][HeadDim];
  /// Sum of the warps' rescaled output accumulators.
  float out[GroupSize][HeadDim];
  float warpMax[kMaxWarps][GroupSize];
  float warpSum[kMaxWarps][GroupSize];
};

/// Online-softmax state of one key group for every query head of the group:
/// running max and sum (log2 units) and this lane's slice of the output.
template <int GroupSize, int ElemsPerLane> struct GroupState {
  float max[GroupSize];
  float sum[GroupSize];
  float acc[GroupSize][ElemsPerLane];

  __device__ void init() {
#pragma unroll
    for (int g = 0; g < GroupSize; ++g) {
      max[g] = -INFINITY;
      sum[g] = 0.0f;
#pragma unroll
      for (int e = 0; e < ElemsPerLane; ++e)
        acc[g][e] = 0.0f;
    }
  }
};

/// True when the launch agrees with the compile-time shape. kvrt_cache_check
/// should guarantee it; a mismatch would read the wrong memory, so the
/// kernel refuses and writes NaN instead.
template <int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ bool launchMatches(const kvrt_attention_params &p) {
  return p.head_dim == HeadDim && p.page_size == PageSize &&
         p.num_q_heads == p.num_kv_heads * GroupSize &&
         (p.causal != 0) == Causal && blockDim.x % 32 == 0 &&
         blockDim.x <= 32 * kMaxWarps &&
         gridDim.x == unsigned(p.num_kv_heads) &&
         gridDim.y == unsigned(p.batch) * unsigned(p.num_tokens);
}

/// Fills the block's GroupSize x HeadDim outputs with `value`.
template <typename T, int HeadDim, int GroupSize>
__device__ void fillOutputs(T *out, T value) {
  for (int i = threadIdx.x; i < GroupSize * HeadDim; i += blockDim.x)
    out[i] = value;
}

/// Loads the group's query rows (contiguous: the group's heads are
/// adjacent) into shared memory in fp32, multiplied by `factor`.
template <typename T, int HeadDim, int GroupSize>
__device__ void loadGroupQueries(const T *query, float factor,
                                 float (&shared)[GroupSize][HeadDim]) {
  for (int i = threadIdx.x; i < GroupSize * HeadDim; i += blockDim.x)
    shared[i / HeadDim][i % HeadDim] = toFloat(query[i]) * factor;
}

/// Dot products of one key (this lane's slice in `key`) with every query of
/// the group, reduced over the key group: every lane of the group gets the
/// full scores. All lanes of the warp must call it.
template <typename Split, int HeadDim, int GroupSize>
__device__ void groupScores(const float (&query)[GroupSize][HeadDim],
                            const float *key, int laneInKey,
                            float (&scores)[GroupSize]) {
#pragma unroll
  for (int g = 0; g < GroupSize; ++g) {
    float dot = 0.0f;
#pragma unroll
    for (int vec = 0; vec < Split::kVecsPerLane; ++vec) {
      const float *q = &query[g][Split::elementOffset(vec, laneInKey)];
#pragma unroll
      for (int j = 0; j < Split::kVecElems; j += 4) {
        float4 q4 = *reinterpret_cast<const float4 *>(q + j);
        const float *k = key + vec * Split::kVecElems + j;
        dot += q4.x * k[0] + q4.y * k[1] + q4.z * k[2] + q4.w * k[3];
      }
    }
    scores[g] = groupSum<Split::kLanesPerKey>(dot);
  }
}

/// Folds one key's scores and value slice into the state.
template <int GroupSize, int ElemsPerLane>
__device__ void accumulateKey(const float (&scores)[GroupSize],
                              const float *value,
                              GroupState<GroupSize, ElemsPerLane> &state) {
#pragma unroll
  for (int g = 0; g < GroupSize; ++g) {
    float oldScale, weight;
    onlineSoftmaxStep(scores[g], state.max[g], state.sum[g], oldScale, weight);
#pragma unroll
    for (int e = 0; e < ElemsPerLane; ++e)
      state.acc[g][e] = state.acc[g][e] * oldScale + weight * value[e];
  }
}

/// Loads key and value `slot` of `page` (this lane's slices) and folds
/// them into the state; lanes whose key group has no key (`valid` false)
/// only join the shuffles. All lanes of the warp must call it.
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void
attendKey(const char *page, int slot, bool valid, int laneInKey,
          const float (&query)[GroupSize][HeadDim],
          GroupState<GroupSize, RowSplit<T, HeadDim>::kElemsPerLane> &state) {
  using Split = RowSplit<T, HeadDim>;
  using Layout = PageLayout<T, HeadDim, PageSize>;
  constexpr int kElems = Split::kElemsPerLane;
  float key[kElems];
  float value[kElems];
  if (valid) {
    Split::loadSlice(Layout::key(page, slot), laneInKey, key);
    Split::loadSlice(Layout::value(page, slot), laneInKey, value);
  } else {
#pragma unroll
    for (int e = 0; e < kElems; ++e)
      key[e] = value[e] = 0.0f;
  }
  float scores[GroupSize];
  groupScores<Split, HeadDim, GroupSize>(query, key, laneInKey, scores);
  if (valid)
    accumulateKey<GroupSize, kElems>(scores, value, state);
}

/// Merges the states of the warp's key groups with butterfly shuffles; every
/// key group ends with the warp's state. All lanes must call it.
template <typename Split, int GroupSize>
__device__ void
mergeKeyGroups(GroupState<GroupSize, Split::kElemsPerLane> &state) {
#pragma unroll
  for (int offset = Split::kLanesPerKey; offset < 32; offset *= 2) {
#pragma unroll
    for (int g = 0; g < GroupSize; ++g) {
      float otherMax = __shfl_xor_sync(0xffffffffu, state.max[g], offset);
      float otherSum = __shfl_xor_sync(0xffffffffu, state.sum[g], offset);
      float selfScale, otherScale;
      mergeSoftmaxStates(state.max[g], state.sum[g], otherMax, otherSum,
                         selfScale, otherScale);
#pragma unroll
      for (int e = 0; e < Split::kElemsPerLane; ++e) {
        float other = __shfl_xor_sync(0xffffffffu, state.acc[g][e], offset);
        state.acc[g][e] = state.acc[g][e] * selfScale + other * otherScale;
      }
    }
  }
}

/// Combines the warps' states in shared memory: rescales each to the
/// block-wide maximum and sums them into shared.out (warp by warp, so the
/// result does not depend on timing), with the rescaled sums in
/// shared.warpSum. Ends with a barrier. All threads must call it.
template <typename Split, int HeadDim, int GroupSize>
__device__ void
combineWarps(const GroupState<GroupSize, Split::kElemsPerLane> &state,
             AttentionShared<HeadDim, GroupSize> &shared) {
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int numWarps = blockDim.x / 32;
  if (lane == 0) {
#pragma unroll
    for (int g = 0; g < GroupSize; ++g)
      shared.warpMax[warp][g] = state.max[g];
  }
  __syncthreads();

  float scale[GroupSize];
#pragma unroll
  for (int g = 0; g < GroupSize; ++g) {
    float blockMax = -INFINITY;
    for (int w = 0; w < numWarps; ++w)
      blockMax = fmaxf(blockMax, shared.warpMax[w][g]);
    scale[g] = rescaleFactor(state.max[g], blockMax);
    if (lane == 0)
      shared.warpSum[warp][g] = state.sum[g] * scale[g];
  }

  // Key group 0 of each warp holds the warp's (merged) slice of the output.
  const bool writer = lane < Split::kLanesPerKey;
  const int laneInKey = lane % Split::kLanesPerKey;
  for (int w = 0; w < numWarps; ++w) {
    if (warp == w && writer) {
#pragma unroll
      for (int g = 0; g < GroupSize; ++g) {
#pragma unroll
        for (int vec = 0; vec < Split::kVecsPerLane; ++vec) {
#pragma unroll
          for (int j = 0; j < Split::kVecElems; ++j) {
            int d = Split::elementOffset(vec, laneInKey) + j;
            float value = state.acc[g][vec * Split::kVecElems + j] * scale[g];
            shared.out[g][d] = w == 0 ? value : shared.out[g][d] + value;
          }
        }
      }
    }
    __syncthreads();
  }
}

/// Normalizes shared.out by the summed softmax denominators and stores the
/// group's outputs (contiguous GroupSize x HeadDim elements) as T.
template <typename T, int HeadDim, int GroupSize>
__device__ void
writeGroupOutputs(const AttentionShared<HeadDim, GroupSize> &shared, T *out) {
  const int numWarps = blockDim.x / 32;
  for (int i = threadIdx.x; i < GroupSize * HeadDim; i += blockDim.x) {
    int g = i / HeadDim;
    float sum = 0.0f;
    for (int w = 0; w < numWarps; ++w)
      sum += shared.warpSum[w][g];
    float value = sum > 0.0f ? shared.out[g][i % HeadDim] / sum : 0.0f;
    out[i] = fromFloat<T>(value);
  }
}

/// Paged attention of one (kv head, sequence, query token) block; see the
/// file comment. T: __half, __nv_bfloat16 or float; GroupSize = q heads /
/// kv heads (1..16); PageSize a power of two; Causal: query t of num_tokens
/// sees keys [0, length - num_tokens + t], else all keys.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedAttention(const kvrt_attention_params &p) {
  static_assert(kIsSupportedElement<T>,
                "T must be __half, __nv_bfloat16 or float");
  static_assert(GroupSize >= 1 && GroupSize <= 16,
                "GroupSize (q heads per kv head) must be in 1..16");
  using Split = RowSplit<T, HeadDim>;
  static_assert(PageSize > 0 && (PageSize & (PageSize - 1)) == 0,
                "PageSize must be a power of two");
  constexpr int kElems = Split::kElemsPerLane;
  // Keys in flight per key group on full pages: enough to hide some memory
  // latency without exhausting registers.
  constexpr int kStepsPerPage =
      (PageSize + Split::kKeysPerWarp - 1) / Split::kKeysPerWarp;
  constexpr int kFullPageUnroll = kStepsPerPage < 4 ? kStepsPerPage : 4;

  __shared__ __align__(16) AttentionShared<HeadDim, GroupSize> shared;

  const int kvHead = blockIdx.x;
  // Queries and outputs [batch, tokens, q_heads, head_dim]: blockIdx.y is
  // b * num_tokens + t, and the group's heads start at kvHead * GroupSize.
  const int64_t rowOffset = (static_cast<int64_t>(blockIdx.y) * p.num_q_heads +
                             static_cast<int64_t>(kvHead) * GroupSize) *
                            HeadDim;
  T *out = static_cast<T *>(p.out) + rowOffset;
  if (!launchMatches<HeadDim, GroupSize, PageSize, Causal>(p)) {
    // Poison what this block would have written, if that lies inside the
    // output the launch describes; never write outside it.
    int64_t outElements = static_cast<int64_t>(p.batch) * p.num_tokens *
                          p.num_q_heads * p.head_dim;
    if (rowOffset + GroupSize * HeadDim <= outElements)
      fillOutputs<T, HeadDim, GroupSize>(out, quietNaN<T>());
    return;
  }
  const int token = blockIdx.y % p.num_tokens;
  const int sequence = blockIdx.y / p.num_tokens;

  loadGroupQueries<T, HeadDim, GroupSize>(static_cast<const T *>(p.queries) +
                                              rowOffset,
                                          p.scale * kLog2e, shared.query);
  __syncthreads();

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  int numKeys = Causal ? row.length - p.num_tokens + token + 1 : row.length;
  numKeys = max(0, min(numKeys, row.length));

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int numWarps = blockDim.x / 32;
  const int keyGroup = lane / Split::kLanesPerKey;
  const int laneInKey = lane % Split::kLanesPerKey;

  GroupState<GroupSize, kElems> state;
  state.init();
  const int numPages = (numKeys + PageSize - 1) / PageSize;
  for (int pageIndex = warp; pageIndex < numPages; pageIndex += numWarps) {
    const char *page = row.page(pageIndex);
    const int keysInPage = min(PageSize, numKeys - pageIndex * PageSize);
    // Both loops are warp-uniform: every lane reaches the shuffles. Full
    // pages (all but the last) take the unrolled loop, whose compile-time
    // trip count lets the compiler issue several keys' loads at once.
    if (keysInPage == PageSize) {
#pragma unroll(kFullPageUnroll)
      for (int first = 0; first < PageSize; first += Split::kKeysPerWarp)
        attendKey<T, HeadDim, GroupSize, PageSize>(
            page, first + keyGroup, first + keyGroup < PageSize, laneInKey,
            shared.query, state);
    } else {
      for (int first = 0; first < keysInPage; first += Split::kKeysPerWarp)
        attendKey<T, HeadDim, GroupSize, PageSize>(
            page, first + keyGroup, first + keyGroup < keysInPage, laneInKey,
            shared.query, state);
    }
  }

  mergeKeyGroups<Split, GroupSize>(state);
  combineWarps<Split, HeadDim, GroupSize>(state, shared);
  writeGroupOutputs<T, HeadDim, GroupSize>(shared, out);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_CUH
