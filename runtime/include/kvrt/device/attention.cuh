//===- attention.cuh - Paged attention for compiled programs ---*- CUDA -*-===//
//
// The device template kvcc's generated kernels call:
//
//   __global__ void __launch_bounds__(kvrt::device::kPrefillMaxThreads,
//                                     kvrt::device::kPrefillMinBlocks)
//       k(kvrt_attention_params p) {
//     kvrt::device::pagedAttention<__half, 128, 4, 16, true>(p);
//   }
//
// launched by kvrt_attention_launch with grid (num_kv_heads,
// batch * num_tokens, num_splits) and kAttentionThreads threads. Block
// (h, b * T + t, s) computes query token t of sequence b for the GroupSize
// query heads h * G .. h * G + G - 1 that share kv head h (GQA), over split
// s of the row's pages, so every K/V element is loaded once for the whole
// group. With one split the block writes the output; with several
// (flash-decoding) it writes a partial softmax state that the runtime's
// merge kernel (runtime/lib/SplitK.cu) combines.
//
// Two bodies compute this: the tensor-core one of attention_mma.cuh where
// it supports the template values and the GPU, and the CUDA-core one below
// for everything else (pagedAttentionSimt forces it). Launches the runtime
// makes in the prefill layout (params.query_tile_rows) run a prefill body
// instead: on sm_90a the warp-specialized one (attention_prefill_ws.cuh)
// for 128-row, 384-thread launches, else wgmma (attention_prefill_wgmma.cuh);
// mma.sync elsewhere (attention_prefill.cuh), picked by the dynamic shared
// memory the runtime passed.
//
// CUDA-core body. Work split: warp w takes pages w, w + W, ... of the block's
// split; a page is processed in tiles of several keys per key group (see
// RowSplit) whose 16-byte K and V loads are all issued before any is used, so
// each lane has several loads in flight. Each lane keeps its slice of its query
// heads and their outputs in registers; every key group keeps an online-softmax
// state per query head in fp32, updated once per tile. Large groups split their
// heads across key groups that read the same keys (see LaneLayout), so a
// lane's registers stay bounded and tiles stay long. At the end the key
// groups of a warp merge through shuffles and the warps through shared
// memory.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_CUH
#define KVRT_DEVICE_ATTENTION_CUH

#include "kvrt/device/attention_mma.cuh"
#include "kvrt/device/attention_prefill.cuh"
#include "kvrt/device/attention_prefill_wgmma.cuh"
#include "kvrt/device/attention_prefill_ws.cuh"
#include "kvrt/device/element.cuh"
#include "kvrt/device/paged.cuh"
#include "kvrt/device/params.h"
#include "kvrt/device/softmax.cuh"

namespace kvrt::device {

/// Threads per block that generated kernels declare in __launch_bounds__
/// and pass to kvrt_attention_launch. Any multiple of 32 up to 1024 works.
inline constexpr int kAttentionThreads = 128;

/// Whether a decode-only kernel (pagedDecode) allows wide blocks of
/// kWideDecodeThreads: where the tensor-core body runs (sm_80 and newer)
/// at head_dim 64 or 128, which fits 128 registers under that bound without
/// spilling (ptxas 13.0, every fp16/bf16 shape; keep it so: the d128
/// bodies are at 128). The d256 body takes 242-246, and the CUDA-core body
/// older GPUs run spilled 324-372 bytes under it (sm_75, d128). Bounds are
/// per compilation target: an sm_75 build of the same kernel allows 128
/// threads, and the runtime reads them from the kernel it launches.
template <typename T, int HeadDim, int GroupSize, int PageSize>
inline constexpr bool kWideDecodeSupported =
    kDeviceHasMma && kMmaAttentionSupported<T, HeadDim, GroupSize, PageSize> &&
    HeadDim <= 128;

/// __launch_bounds__ of a decode-only kernel, which kvcc emits as
/// (kDecodeMaxThreads<...>, kDecodeMinBlocks<...>): up to
/// kWideDecodeThreads threads in one block per SM (at most 128 registers,
/// which the body uses in blocks of kAttentionThreads too) where
/// kWideDecodeSupported, so that the runtime may launch wide blocks;
/// kAttentionThreads otherwise (minimum 0: none, as if left out).
template <typename T, int HeadDim, int GroupSize, int PageSize>
inline constexpr int kDecodeMaxThreads =
    kWideDecodeSupported<T, HeadDim, GroupSize, PageSize> ? kWideDecodeThreads
                                                          : kAttentionThreads;
template <typename T, int HeadDim, int GroupSize, int PageSize>
inline constexpr int kDecodeMinBlocks =
    kWideDecodeSupported<T, HeadDim, GroupSize, PageSize> ? 1 : 0;

/// Most warps a block may have (1024 threads).
inline constexpr int kMaxWarps = 32;

/// Registers a lane may spend on its query slice, its accumulators and the
/// raw (not yet widened) K and V vectors of one tile, which are the loads it
/// has in flight. 160 keeps three blocks of 128 threads per SM for GQA
/// groups of 4 at d128 fp16 with a whole 16-token page in flight per warp;
/// larger states get shorter tiles instead of spilling.
inline constexpr int kTileRegisterBudget = 160;

/// Registers a lane may spend on its query slices and output accumulators
/// (2 x its heads x its elements) before LaneLayout splits the group's
/// heads across key groups. 64 is what a GQA group of 4 takes at d128 fp16,
/// which leaves the tile budget room for a whole 16-token page; a group of
/// 8 holding all its heads per lane (128 registers) left tiles of 2 keys
/// per key group, too few loads in flight to approach memory bandwidth.
inline constexpr int kLaneStateRegisters = 64;

/// Key groups that share each key in LaneLayout: the fewest (a power of two
/// up to `keyGroups`, dividing `groupSize`) that bring a lane's state of
/// groupSize / parts heads within kLaneStateRegisters, if any does.
constexpr int headParts(int groupSize, int elemsPerLane, int keyGroups) {
  int parts = 1;
  while (2 * parts <= keyGroups && groupSize % (2 * parts) == 0 &&
         2 * (groupSize / parts) * elemsPerLane > kLaneStateRegisters)
    parts *= 2;
  return parts;
}

/// How the lanes of a warp divide keys and query heads. RowSplit cuts a warp
/// into key groups of kLanesPerKey lanes that each cover a whole K/V row.
/// kHeadParts adjacent key groups form a key slot: they load the same key
/// (the same addresses within one load instruction, so memory traffic does
/// not grow) and each takes kHeadsPerLane of the group's query heads. With
/// one part every key group works on its own key with all heads, as before.
template <typename T, int HeadDim, int GroupSize> struct LaneLayout {
  using Split = RowSplit<T, HeadDim>;
  static constexpr int kHeadParts =
      headParts(GroupSize, Split::kElemsPerLane, Split::kKeysPerWarp);
  static_assert(GroupSize % kHeadParts == 0 &&
                    Split::kKeysPerWarp % kHeadParts == 0,
                "head parts must divide the group and the key groups");
  static constexpr int kHeadsPerLane = GroupSize / kHeadParts;
  /// Distinct keys a warp works on at once: one per key slot.
  static constexpr int kKeysPerWarp = Split::kKeysPerWarp / kHeadParts;
  /// Lanes of one key slot.
  static constexpr int kLanesPerSlot = Split::kLanesPerKey * kHeadParts;

  /// Which key, heads and row slice lane `lane` (0..31) works on.
  int keySlot;
  /// First query head of the group this lane's state covers.
  int firstHead;
  /// Index within the key group: selects the lane's slice of a row.
  int laneInKey;

  __device__ explicit LaneLayout(int lane)
      : keySlot(lane / kLanesPerSlot),
        firstHead((lane / Split::kLanesPerKey) % kHeadParts * kHeadsPerLane),
        laneInKey(lane % Split::kLanesPerKey) {}
};

/// Shared memory of one block.
template <int HeadDim, int GroupSize> struct AttentionShared {
  /// Sum of the warps' rescaled output accumulators.
  float out[GroupSize][HeadDim];
  float warpMax[kMaxWarps][GroupSize];
  float warpSum[kMaxWarps][GroupSize];
};

/// Bytes of dynamic shared memory a decode-layout launch (params.h,
/// query_tile_rows 0) of pagedAttention for `headDim` and `groupSize` needs:
/// its body's block state (AttentionShared on CUDA cores, MmaShared on
/// tensor cores, which groups of up to 8 may run) and 16 bytes to align
/// it. Launches with less get NaN (poisonLaunch).
__host__ __device__ constexpr int decodeSharedBytes(int headDim,
                                                    int groupSize) {
  const int simt = 4 * groupSize * (headDim + 2 * kMaxWarps);
  const int tensor =
      4 * groupSize * (mma::kCombineSlices * (headDim + 1) + 2 * 32 + 2);
  return (groupSize <= 8 && tensor > simt ? tensor : simt) + 16;
}

/// Online-softmax state of one key group for each of its GroupSize query
/// heads (the lane's heads, see LaneLayout): running max and sum (log2
/// units) and this lane's slice of the output.
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

/// How a page is cut into tiles: each key group takes kSteps keys of a tile,
/// kKeys keys per warp in all, loaded together before any is used.
template <typename T, int HeadDim, int PageSize, int GroupSize>
struct TileShape {
  using Layout = LaneLayout<T, HeadDim, GroupSize>;
  using Split = typename Layout::Split;
  /// 32-bit registers that one key step takes in a lane: its raw K and V
  /// slices and its scores (reused as probabilities) for its heads.
  static constexpr int kRegistersPerStep =
      2 * Split::kVecsPerLane * 4 + Layout::kHeadsPerLane;
  static constexpr int kStepsPerPage =
      (PageSize + Layout::kKeysPerWarp - 1) / Layout::kKeysPerWarp;
  /// What the query slice and the accumulators leave of the budget.
  static constexpr int kRawRegisters =
      kTileRegisterBudget - 2 * Layout::kHeadsPerLane * Split::kElemsPerLane;
  static constexpr int kBudgetSteps = kRawRegisters / kRegistersPerStep;
  static constexpr int kSteps =
      kBudgetSteps < 1 ? 1
                       : (kBudgetSteps < kStepsPerPage ? kBudgetSteps
                                                       : kStepsPerPage);
  static constexpr int kKeys = kSteps * Layout::kKeysPerWarp;
};

/// Raw K and V vectors of one tile, as loaded (16 bytes each).
template <typename T, int HeadDim, int PageSize, int GroupSize>
struct RawTile {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Split = typename Shape::Split;
  uint4 key[Shape::kSteps][Split::kVecsPerLane];
  uint4 value[Shape::kSteps][Split::kVecsPerLane];
};

/// True when the launch agrees with the compile-time element type and shape.
/// kvrt_cache_check should guarantee it; a mismatch would read the wrong
/// memory, so the kernel refuses and writes NaN instead.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ bool launchMatches(const kvrt_attention_params &p) {
  static_assert(kIsSupportedElement<T>,
                "T must be __half, __nv_bfloat16 or float");
  const unsigned splits = p.num_splits > 1 ? unsigned(p.num_splits) : 1u;
  const bool workspaceOk =
      splits == 1 ||
      (p.pages_per_split > 0 && p.partial_out && p.partial_lse);
  return p.dtype == kElementDtype<T> && p.head_dim == HeadDim &&
         p.page_size == PageSize &&
         p.num_q_heads == p.num_kv_heads * GroupSize &&
         (p.causal != 0) == Causal && blockDim.x % 32 == 0 &&
         blockDim.x <= 32 * kMaxWarps &&
         gridDim.x == unsigned(p.num_kv_heads) &&
         gridDim.y == unsigned(p.batch) * unsigned(p.num_tokens) &&
         gridDim.z == splits && workspaceOk;
}

/// launchMatches for the prefill layout (query_tile_rows set).
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ bool prefillLaunchMatches(const kvrt_attention_params &p) {
  static_assert(kIsSupportedElement<T>,
                "T must be __half, __nv_bfloat16 or float");
  if (p.query_tile_rows != kPrefillRows || p.num_tokens <= 0)
    return false;
  const unsigned tiles = unsigned(
      (int64_t(p.num_tokens) * GroupSize + kPrefillRows - 1) / kPrefillRows);
  return p.dtype == kElementDtype<T> && p.head_dim == HeadDim &&
         p.page_size == PageSize &&
         p.num_q_heads == p.num_kv_heads * GroupSize &&
         (p.causal != 0) == Causal && p.num_splits <= 1 && blockDim.x == 128 &&
         gridDim.x == unsigned(p.num_kv_heads) &&
         gridDim.y == unsigned(p.batch) * tiles && gridDim.z == 1;
}

/// Fills `count` elements of type E at `out` with NaN, a grid-stride share
/// per thread (poisonLaunch).
template <typename E>
__device__ void fillNaN(void *out, int64_t count, int64_t first,
                        int64_t stride) {
  for (int64_t i = first; i < count; i += stride)
    static_cast<E *>(out)[i] = quietNaN<E>();
}

/// On a refused launch: fills everything the launch describes with NaN,
/// whatever the kernel's template values (a kernel of another element type,
/// head_dim or group size than the launch would otherwise leave some of it
/// unwritten, or write past it): the output [batch, tokens, q_heads,
/// head_dim] of the launch's dtype (nothing for an unknown one); with
/// splits the partial
/// state, so that the merge, which overwrites the output and the row lse,
/// yields NaN too; without splits the key-score hook's row lse, so that the
/// accumulation adds NaN instead of a workspace no block wrote. Sizes come
/// from the launch, as the runtime sized its buffers. Every block takes a
/// grid-stride share; the launch checks give every block the same answer,
/// so no block of a refused launch writes anything else.
__device__ inline void poisonLaunch(const kvrt_attention_params &p) {
  if (p.batch <= 0 || p.num_tokens <= 0 || p.num_q_heads <= 0 ||
      p.head_dim <= 0)
    return;
  const int64_t block =
      blockIdx.x +
      int64_t(gridDim.x) * (blockIdx.y + int64_t(gridDim.y) * blockIdx.z);
  const int64_t first = block * blockDim.x + threadIdx.x;
  const int64_t stride =
      int64_t(gridDim.x) * gridDim.y * gridDim.z * blockDim.x;
  const int64_t rows = int64_t(p.batch) * p.num_tokens * p.num_q_heads;
  const float nan = __int_as_float(0x7fc00000);
  const int64_t outElements = rows * p.head_dim;
  switch (p.dtype) {
  case KVRT_DTYPE_F16:
    fillNaN<__half>(p.out, outElements, first, stride);
    break;
  case KVRT_DTYPE_BF16:
    fillNaN<__nv_bfloat16>(p.out, outElements, first, stride);
    break;
  case KVRT_DTYPE_F32:
    fillNaN<float>(p.out, outElements, first, stride);
    break;
  default:
    break;
  }
  if (p.num_splits > 1 && p.partial_out && p.partial_lse) {
    const int64_t slots = rows * p.num_splits;
    for (int64_t i = first; i < slots * p.head_dim; i += stride)
      p.partial_out[i] = nan;
    for (int64_t i = first; i < slots; i += stride)
      p.partial_lse[i] = nan;
  } else if (p.row_lse) {
    for (int64_t i = first; i < rows; i += stride)
      p.row_lse[i] = nan;
  }
}

/// Loads this lane's slice of the query rows of its heads into registers in
/// fp32, times `factor`. `query` is the group's first row (the group's heads
/// are adjacent). Scalar loads: queries need no 16-byte alignment and are
/// read once.
template <typename Layout, typename T, int HeadDim>
__device__ void
loadQuerySlice(const T *query, float factor, const Layout &lane,
               float (&slice)[Layout::kHeadsPerLane]
                             [Layout::Split::kElemsPerLane]) {
  using Split = typename Layout::Split;
#pragma unroll
  for (int g = 0; g < Layout::kHeadsPerLane; ++g)
#pragma unroll
    for (int vec = 0; vec < Split::kVecsPerLane; ++vec)
#pragma unroll
      for (int j = 0; j < Split::kVecElems; ++j)
        slice[g][vec * Split::kVecElems + j] =
            toFloat(query[(lane.firstHead + g) * HeadDim +
                          Split::elementOffset(vec, lane.laneInKey) + j]) *
            factor;
}

/// Issues the loads of one tile: key slot `lane.keySlot` takes page slots
/// first + step * kKeysPerWarp + keySlot. Slots at or past `keysInPage`
/// load nothing (zeros), so a partial last page reads no stale memory.
template <typename T, int HeadDim, int PageSize, int GroupSize>
__device__ __forceinline__ void
loadTile(const char *page, int first, int keysInPage,
         const LaneLayout<T, HeadDim, GroupSize> &lane,
         RawTile<T, HeadDim, PageSize, GroupSize> &tile) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Split = typename Shape::Split;
  using Page = PageLayout<T, HeadDim, PageSize>;
#pragma unroll
  for (int step = 0; step < Shape::kSteps; ++step) {
    const int slot = first + step * Shape::Layout::kKeysPerWarp + lane.keySlot;
    const bool valid = slot < keysInPage;
#pragma unroll
    for (int vec = 0; vec < Split::kVecsPerLane; ++vec) {
      const int offset = Split::elementOffset(vec, lane.laneInKey);
      tile.key[step][vec] =
          valid ? *reinterpret_cast<const uint4 *>(Page::key(page, slot) +
                                                   offset)
                : make_uint4(0, 0, 0, 0);
      tile.value[step][vec] =
          valid ? *reinterpret_cast<const uint4 *>(Page::value(page, slot) +
                                                   offset)
                : make_uint4(0, 0, 0, 0);
    }
  }
}

/// Widens this lane's slice of one raw row to fp32.
template <typename Split, typename T>
__device__ __forceinline__ void widenSlice(const uint4 (&raw)[Split::kVecsPerLane],
                                           float (&out)[Split::kElemsPerLane]) {
#pragma unroll
  for (int vec = 0; vec < Split::kVecsPerLane; ++vec)
    loadVector(reinterpret_cast<const T *>(&raw[vec]),
               out + vec * Split::kVecElems);
}

/// Scores (log2 units) of every key of the tile against every query head of
/// the lane, reduced over the key group; keys past `keysInPage` score -inf.
/// All lanes of the warp must call it.
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void
tileScores(const RawTile<T, HeadDim, PageSize, GroupSize> &tile,
           const float (&query)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]
                               [RowSplit<T, HeadDim>::kElemsPerLane],
           int first, int keysInPage,
           const LaneLayout<T, HeadDim, GroupSize> &lane,
           float (&scores)[TileShape<T, HeadDim, PageSize, GroupSize>::kSteps]
                          [LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Split = typename Shape::Split;
  using Layout = typename Shape::Layout;
#pragma unroll
  for (int step = 0; step < Shape::kSteps; ++step) {
    float key[Split::kElemsPerLane];
    widenSlice<Split, T>(tile.key[step], key);
    const bool valid =
        first + step * Layout::kKeysPerWarp + lane.keySlot < keysInPage;
#pragma unroll
    for (int g = 0; g < Layout::kHeadsPerLane; ++g) {
      float dot = 0.0f;
#pragma unroll
      for (int e = 0; e < Split::kElemsPerLane; ++e)
        dot = fmaf(query[g][e], key[e], dot);
      dot = groupSum<Split::kLanesPerKey>(dot);
      scores[step][g] = valid ? dot : -INFINITY;
    }
  }
}

/// Folds one tile into the state: one max update and one rescale of the
/// accumulators per tile (not per key), then one FMA per key and element.
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void accumulateTile(
    const RawTile<T, HeadDim, PageSize, GroupSize> &tile,
    const float (&scores)[TileShape<T, HeadDim, PageSize, GroupSize>::kSteps]
                         [LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane],
    GroupState<LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane,
               RowSplit<T, HeadDim>::kElemsPerLane> &state) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Split = typename Shape::Split;
  constexpr int kHeads = Shape::Layout::kHeadsPerLane;
  float probs[Shape::kSteps][kHeads];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    float tileMax = scores[0][g];
#pragma unroll
    for (int step = 1; step < Shape::kSteps; ++step)
      tileMax = fmaxf(tileMax, scores[step][g]);
    const float newMax = fmaxf(state.max[g], tileMax);
    // An all -inf tile on an empty state leaves newMax -inf: skip the
    // exponentials, which would compute -inf - -inf.
    const float oldScale = rescaleFactor(state.max[g], newMax);
    float tileSum = 0.0f;
#pragma unroll
    for (int step = 0; step < Shape::kSteps; ++step) {
      probs[step][g] = scores[step][g] == -INFINITY
                           ? 0.0f
                           : exp2f(scores[step][g] - newMax);
      tileSum += probs[step][g];
    }
    state.sum[g] = state.sum[g] * oldScale + tileSum;
    state.max[g] = newMax;
#pragma unroll
    for (int e = 0; e < Split::kElemsPerLane; ++e)
      state.acc[g][e] *= oldScale;
  }
#pragma unroll
  for (int step = 0; step < Shape::kSteps; ++step) {
    float value[Split::kElemsPerLane];
    widenSlice<Split, T>(tile.value[step], value);
#pragma unroll
    for (int g = 0; g < kHeads; ++g)
#pragma unroll
      for (int e = 0; e < Split::kElemsPerLane; ++e)
        state.acc[g][e] = fmaf(probs[step][g], value[e], state.acc[g][e]);
  }
}

/// Merges the states of the warp's key slots with butterfly shuffles (the
/// offsets flip only key-slot bits, so lanes merge with the lanes of the
/// same heads and row slice); every key slot ends with the warp's state.
/// All lanes must call it.
template <typename Layout>
__device__ void
mergeKeyGroups(GroupState<Layout::kHeadsPerLane, Layout::Split::kElemsPerLane>
                   &state) {
  using Split = typename Layout::Split;
#pragma unroll
  for (int offset = Layout::kLanesPerSlot; offset < 32; offset *= 2) {
#pragma unroll
    for (int g = 0; g < Layout::kHeadsPerLane; ++g) {
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

/// Largest of the warps' maxima of query head `g`.
template <int HeadDim, int GroupSize>
__device__ float blockMax(const AttentionShared<HeadDim, GroupSize> &shared,
                          int g) {
  float result = -INFINITY;
  for (int w = 0; w < int(blockDim.x / 32); ++w)
    result = fmaxf(result, shared.warpMax[w][g]);
  return result;
}

/// Sum of the warps' rescaled softmax denominators of query head `g`.
template <int HeadDim, int GroupSize>
__device__ float blockSum(const AttentionShared<HeadDim, GroupSize> &shared,
                          int g) {
  float result = 0.0f;
  for (int w = 0; w < int(blockDim.x / 32); ++w)
    result += shared.warpSum[w][g];
  return result;
}

/// Combines the warps' states in shared memory: rescales each to the
/// block-wide maximum and sums them into shared.out (warp by warp, so the
/// result does not depend on timing), with the rescaled sums in
/// shared.warpSum. Ends with a barrier. All threads must call it.
template <typename Layout, int HeadDim, int GroupSize>
__device__ void combineWarps(
    const GroupState<Layout::kHeadsPerLane, Layout::Split::kElemsPerLane>
        &state,
    const Layout &lane, AttentionShared<HeadDim, GroupSize> &shared) {
  using Split = typename Layout::Split;
  constexpr int kHeads = Layout::kHeadsPerLane;
  const int warp = threadIdx.x / 32;
  const int numWarps = blockDim.x / 32;
  // Key slot 0 of each warp holds the warp's (merged) state, each of its
  // key groups for its own heads; their first lanes publish max and sum.
  const bool writer = lane.keySlot == 0;
  const bool leader = writer && lane.laneInKey == 0;
  if (leader) {
#pragma unroll
    for (int g = 0; g < kHeads; ++g)
      shared.warpMax[warp][lane.firstHead + g] = state.max[g];
  }
  __syncthreads();

  float scale[kHeads];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    scale[g] =
        rescaleFactor(state.max[g], blockMax(shared, lane.firstHead + g));
    if (leader)
      shared.warpSum[warp][lane.firstHead + g] = state.sum[g] * scale[g];
  }

  for (int w = 0; w < numWarps; ++w) {
    if (warp == w && writer) {
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        float *out = shared.out[lane.firstHead + g];
#pragma unroll
        for (int vec = 0; vec < Split::kVecsPerLane; ++vec) {
#pragma unroll
          for (int j = 0; j < Split::kVecElems; ++j) {
            int d = Split::elementOffset(vec, lane.laneInKey) + j;
            float value = state.acc[g][vec * Split::kVecElems + j] * scale[g];
            out[d] = w == 0 ? value : out[d] + value;
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
writeGroupOutputs(const AttentionShared<HeadDim, GroupSize> &shared, T *out,
                  float *rowLse) {
  for (int i = threadIdx.x; i < GroupSize * HeadDim; i += blockDim.x) {
    int g = i / HeadDim;
    float sum = blockSum(shared, g);
    float value = sum > 0.0f ? shared.out[g][i % HeadDim] / sum : 0.0f;
    out[i] = fromFloat<T>(value);
    // The key-score hook's log2-sum-exp of each row (null when off).
    if (rowLse && i % HeadDim == 0)
      rowLse[g] = sum > 0.0f ? blockMax(shared, g) + __log2f(sum) : -INFINITY;
  }
}

/// Stores the block's partial state for the merge kernel: per query head,
/// the split's normalized output in fp32 and its log2-sum-exp (-inf when
/// the split saw no key). `firstHead` is the flat index
/// (b * num_tokens + t) * num_q_heads + kv head * GroupSize.
template <int HeadDim, int GroupSize>
__device__ void
writePartialState(const AttentionShared<HeadDim, GroupSize> &shared,
                  const kvrt_attention_params &p, int64_t firstHead,
                  int split) {
  for (int i = threadIdx.x; i < GroupSize * HeadDim; i += blockDim.x) {
    const int g = i / HeadDim;
    const int d = i % HeadDim;
    const float sum = blockSum(shared, g);
    const int64_t slot = (firstHead + g) * p.num_splits + split;
    p.partial_out[slot * HeadDim + d] =
        sum > 0.0f ? shared.out[g][d] / sum : 0.0f;
    if (d == 0)
      p.partial_lse[slot] =
          sum > 0.0f ? blockMax(shared, g) + __log2f(sum) : -INFINITY;
  }
}

/// Loads the tile of the page's keys from `first` (of `keysInPage`) into
/// `tile` and scores the lane's keys and heads into `scores` (tileScores).
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void loadAndScoreTile(
    const char *page, int first, int keysInPage,
    const float (&query)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]
                        [RowSplit<T, HeadDim>::kElemsPerLane],
    const LaneLayout<T, HeadDim, GroupSize> &lane,
    RawTile<T, HeadDim, PageSize, GroupSize> &tile,
    float (&scores)[TileShape<T, HeadDim, PageSize, GroupSize>::kSteps]
                   [LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]) {
  loadTile<T, HeadDim, PageSize, GroupSize>(page, first, keysInPage, lane,
                                            tile);
  tileScores<T, HeadDim, GroupSize, PageSize>(tile, query, first, keysInPage,
                                              lane, scores);
}

/// Folds one tile's scores into the running maxima per head of the lane
/// (`maxima`).
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void foldTileMaxima(
    const float (&scores)[TileShape<T, HeadDim, PageSize, GroupSize>::kSteps]
                         [LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane],
    float (&maxima)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
#pragma unroll
  for (int step = 0; step < Shape::kSteps; ++step)
#pragma unroll
    for (int g = 0; g < Shape::Layout::kHeadsPerLane; ++g)
      maxima[g] = fmaxf(maxima[g], scores[step][g]);
}

/// Reduces each lane's maxima over the warp's key slots, so that every lane
/// of the same heads agrees. All lanes of the warp must call it.
template <typename Layout>
__device__ __forceinline__ void
reduceSlotMaxima(float (&maxima)[Layout::kHeadsPerLane]) {
#pragma unroll
  for (int offset = Layout::kLanesPerSlot; offset < 32; offset *= 2)
#pragma unroll
    for (int g = 0; g < Layout::kHeadsPerLane; ++g)
      maxima[g] =
          fmaxf(maxima[g], __shfl_xor_sync(0xffffffffu, maxima[g], offset));
}

/// The largest score per head of the lane over the page's first
/// `keysInPage` keys (reduced over the warp's key slots, so every lane of
/// the same heads agrees): a pass over the page's keys before its tiles are
/// accumulated, for pages of several tiles. All lanes of the warp must call
/// it.
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void pageMaxima(
    const char *page, int keysInPage,
    const float (&query)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]
                        [RowSplit<T, HeadDim>::kElemsPerLane],
    const LaneLayout<T, HeadDim, GroupSize> &lane,
    float (&maxima)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Layout = typename Shape::Layout;
  constexpr int kHeads = Layout::kHeadsPerLane;
#pragma unroll
  for (int g = 0; g < kHeads; ++g)
    maxima[g] = -INFINITY;
#pragma unroll 1
  for (int first = 0; first < keysInPage; first += Shape::kKeys) {
    RawTile<T, HeadDim, PageSize, GroupSize> tile;
    float scores[Shape::kSteps][kHeads];
    loadAndScoreTile<T, HeadDim, GroupSize, PageSize>(
        page, first, keysInPage, query, lane, tile, scores);
    foldTileMaxima<T, HeadDim, GroupSize, PageSize>(scores, maxima);
  }
  reduceSlotMaxima<Layout>(maxima);
}

/// Stores one tile's key-score hook values (params.h) for the lane's keys
/// and heads: probabilities relative to `pageMax`, and (key slot 0) that
/// maximum for each chunk of the page, whose first key in the row is
/// `pageKey` (a multiple of PageSize, so of the chunk size). Plain stores:
/// unlike the tensor-core body's (ScoreSink), evict-last stores measured no
/// faster here (decode_profile_h200.md, session 12).
template <typename T, int HeadDim, int GroupSize, int PageSize>
__device__ __forceinline__ void storeTileScores(
    const kvrt_attention_params &p, int64_t firstHead, int pageKey, int first,
    int keysInPage, const LaneLayout<T, HeadDim, GroupSize> &lane,
    const float (&scores)[TileShape<T, HeadDim, PageSize, GroupSize>::kSteps]
                         [LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane],
    const float (&pageMax)[LaneLayout<T, HeadDim, GroupSize>::kHeadsPerLane]) {
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Layout = typename Shape::Layout;
  constexpr int kHeads = Layout::kHeadsPerLane;
  constexpr int kChunk = scoreChunkKeys(PageSize);
  static_assert(PageSize % kChunk == 0, "pages of whole chunks");
  // Slot s's heads are contiguous: probs[s * GroupSize + head].
  ScoreValue<T> *probs = static_cast<ScoreValue<T> *>(p.score_scratch) +
                         firstHead * p.score_stride;
#pragma unroll
  for (int step = 0; step < Shape::kSteps; ++step) {
    const int key = first + step * Layout::kKeysPerWarp + lane.keySlot;
    if (key < keysInPage)
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        const float prob = scores[step][g] == -INFINITY
                               ? 0.0f
                               : exp2f(scores[step][g] - pageMax[g]);
        probs[int64_t(pageKey + key) * GroupSize + lane.firstHead + g] =
            fromFloat<ScoreValue<T>>(prob);
      }
  }
  if (first == 0 && lane.keySlot == 0) {
    float *maxima = p.score_max + firstHead * (p.score_stride / kChunk);
    for (int chunk = 0; chunk * kChunk < keysInPage; ++chunk)
#pragma unroll
      for (int g = 0; g < kHeads; ++g)
        maxima[int64_t(pageKey / kChunk + chunk) * GroupSize + lane.firstHead +
               g] = pageMax[g];
  }
}

/// The pages [begin, end) of a row that split `split` covers; the last
/// split also takes any pages past num_splits * pages_per_split, so a row
/// longer than the host planned for is still covered whole.
struct PageRange {
  int begin;
  int end;
};
__device__ inline PageRange splitPages(const kvrt_attention_params &p,
                                       int split, int numPages) {
  if (p.num_splits <= 1)
    return {0, numPages};
  const int begin = min(numPages, split * p.pages_per_split);
  const int end = split == p.num_splits - 1
                      ? numPages
                      : min(numPages, begin + p.pages_per_split);
  return {begin, end};
}

/// The CUDA-core body of pagedAttention (see the file comment) for query
/// token `token` of sequence `sequence`, kv head `kvHead` and split
/// `split`, in a launch launchMatches (or a prefill layout's check)
/// accepted.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedAttentionSimtBody(const kvrt_attention_params &p,
                                       int sequence, int token, int kvHead,
                                       int split) {
  using Split = RowSplit<T, HeadDim>;
  using Shape = TileShape<T, HeadDim, PageSize, GroupSize>;
  using Layout = LaneLayout<T, HeadDim, GroupSize>;
  constexpr int kElems = Split::kElemsPerLane;
  constexpr int kHeads = Layout::kHeadsPerLane;
  // One tile holds a whole page (the loop below runs once per page).
  constexpr bool kOneTilePerPage = Shape::kKeys >= PageSize;

  AttentionShared<HeadDim, GroupSize> &shared =
      sharedState<AttentionShared<HeadDim, GroupSize>>();

  // The group's first query head: queries and outputs are [batch, tokens,
  // q_heads, head_dim] and the group's heads start at kvHead * GroupSize.
  const int64_t firstHead =
      (static_cast<int64_t>(sequence) * p.num_tokens + token) * p.num_q_heads +
      static_cast<int64_t>(kvHead) * GroupSize;
  const int64_t rowOffset = firstHead * HeadDim;
  T *out = static_cast<T *>(p.out) + rowOffset;

  const int warp = threadIdx.x / 32;
  const int numWarps = blockDim.x / 32;
  const Layout lane(threadIdx.x % 32);

  float query[kHeads][kElems];
  loadQuerySlice<Layout, T, HeadDim>(
      static_cast<const T *>(p.queries) + rowOffset, p.scale * kLog2e, lane,
      query);

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  int numKeys = Causal ? row.length - p.num_tokens + token + 1 : row.length;
  numKeys = max(0, min(numKeys, row.length));
  const PageRange range =
      splitPages(p, split, (numKeys + PageSize - 1) / PageSize);

  GroupState<kHeads, kElems> state;
  state.init();
  // The page id of the next iteration is read one iteration ahead, so its
  // latency overlaps the current page's loads instead of preceding them.
  int pageIndex = range.begin + warp;
  int32_t pageId = pageIndex < range.end ? row.pages[pageIndex] : 0;
  for (; pageIndex < range.end; pageIndex += numWarps) {
    const int nextIndex = pageIndex + numWarps;
    const int32_t nextId = nextIndex < range.end ? row.pages[nextIndex] : 0;
    const char *page = row.pageAddress(pageId);
    const int keysInPage = min(PageSize, numKeys - pageIndex * PageSize);
    // The key-score hook stores probabilities relative to the page's
    // maximum per head (params.h). Where one tile holds the page, its
    // scores give that maximum; pages of several tiles are scored once
    // first (pageMaxima).
    float pageMax[kHeads];
    if (!kOneTilePerPage && p.key_scores)
      pageMaxima<T, HeadDim, GroupSize, PageSize>(page, keysInPage, query, lane,
                                                  pageMax);
#pragma unroll 1
    for (int first = 0; first < keysInPage; first += Shape::kKeys) {
      RawTile<T, HeadDim, PageSize, GroupSize> tile;
      float scores[Shape::kSteps][kHeads];
      loadAndScoreTile<T, HeadDim, GroupSize, PageSize>(
          page, first, keysInPage, query, lane, tile, scores);
      if (p.key_scores) {
        if constexpr (kOneTilePerPage) {
#pragma unroll
          for (int g = 0; g < kHeads; ++g)
            pageMax[g] = -INFINITY;
          foldTileMaxima<T, HeadDim, GroupSize, PageSize>(scores, pageMax);
          reduceSlotMaxima<Layout>(pageMax);
        }
        if (lane.laneInKey == 0)
          storeTileScores<T, HeadDim, GroupSize, PageSize>(
              p, firstHead, pageIndex * PageSize, first, keysInPage, lane,
              scores, pageMax);
      }
      accumulateTile<T, HeadDim, GroupSize, PageSize>(tile, scores, state);
    }
    pageId = nextId;
  }

  mergeKeyGroups<Layout>(state);
  combineWarps<Layout, HeadDim, GroupSize>(state, lane, shared);
  if (p.num_splits > 1)
    writePartialState<HeadDim, GroupSize>(shared, p, firstHead, split);
  else
    writeGroupOutputs<T, HeadDim, GroupSize>(
        shared, out, p.row_lse ? p.row_lse + firstHead : nullptr);
}

/// A prefill-layout block's tiles of `Rows` query rows on the CUDA-core
/// body, token by token over each tile's whole tokens (GroupSize divides
/// the rows): the tile (kv head blockIdx.x, sequence and tile blockIdx.y),
/// or, `Persistent` (the warp-specialized layout's grid along x), tiles
/// blockIdx.x, blockIdx.x + gridDim.x, ... of the launch's kv head-major
/// list.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          int Rows, bool Persistent = false>
__device__ void prefillTokensOnCudaCores(const kvrt_attention_params &p) {
  static_assert(Rows % GroupSize == 0, "tiles of whole tokens");
  if (dynamicSharedBytes() < uint32_t(decodeSharedBytes(HeadDim, GroupSize))) {
    poisonLaunch(p);
    return;
  }
  const int tiles = (p.num_tokens * GroupSize + Rows - 1) / Rows;
  const int items = Persistent ? p.num_kv_heads * p.batch * tiles : 1;
  for (int item = Persistent ? int(blockIdx.x) : 0; item < items;
       item += Persistent ? int(gridDim.x) : 1) {
    const int kvHead = Persistent ? item / (p.batch * tiles) : blockIdx.x;
    const int tile = Persistent ? item % (p.batch * tiles) : blockIdx.y;
    const int sequence = tile / tiles;
    const int firstToken = tile % tiles * (Rows / GroupSize);
    const int endToken = min(p.num_tokens, firstToken + Rows / GroupSize);
    for (int token = firstToken; token < endToken; ++token) {
      pagedAttentionSimtBody<T, HeadDim, GroupSize, PageSize, Causal>(
          p, sequence, token, kvHead, 0);
      __syncthreads(); // shared memory is reused by the next token
    }
  }
}

/// Checks the launch, then runs the tensor-core body when `AllowMma` and
/// the template values and device support it, else the CUDA-core body. The
/// prefill layout (params.h, query_tile_rows) is served only when
/// `AllowPrefill`; otherwise such a launch gets NaN.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          bool AllowMma, bool AllowPrefill>
__device__ void pagedAttentionChecked(const kvrt_attention_params &p) {
  static_assert(kIsSupportedElement<T>,
                "T must be __half, __nv_bfloat16 or float");
  static_assert(GroupSize >= 1 && GroupSize <= 16,
                "GroupSize (q heads per kv head) must be in 1..16");
  static_assert(PageSize > 0 && (PageSize & (PageSize - 1)) == 0,
                "PageSize must be a power of two");
  static_assert(sizeof(AttentionShared<HeadDim, GroupSize>) + 16 <=
                    decodeSharedBytes(HeadDim, GroupSize),
                "decodeSharedBytes covers the CUDA-core body's state");
  static_assert(GroupSize > 8 || sizeof(mma::MmaShared<HeadDim, GroupSize>) +
                                         16 <=
                                     decodeSharedBytes(HeadDim, GroupSize),
                "decodeSharedBytes covers the tensor-core body's state");

  if (p.query_tile_rows == kPrefillWsRows) {
    // The warp-specialized prefill layout (the runtime chose it; see
    // runtime/lib/SplitK.h, prefillWsEligible).
    if constexpr (AllowPrefill && kPrefillWsRows % GroupSize == 0) {
      if (prefillWsLaunchMatches<T, HeadDim, GroupSize, PageSize, Causal,
                                 true>(p)) {
        if constexpr (AllowMma && kDeviceHasWgmma &&
                      kPrefillSupported<T, HeadDim, GroupSize, PageSize>) {
          if (prefill::dynamicSharedBytes() >=
              uint32_t(prefillWsDefaultSharedBytes(HeadDim))) {
            pagedPrefillWsBody<T, HeadDim, GroupSize, PageSize, Causal,
                               kPrefillWsStages, kPrefillWsKeys,
                               kPrefillWsConsumerRegisters,
                               kPrefillWsTurns<Causal>, true>(
                p, prefill::alignedDynamicShared<wgmma::kAtomBytes>());
            return;
          }
        } else {
          // Code without the warp-specialized body whose bounds still let
          // the runtime pick its layout (a kernel written without
          // __launch_bounds__, built for a target other than sm_90a): the
          // CUDA-core body, correct if slow.
          prefillTokensOnCudaCores<T, HeadDim, GroupSize, PageSize, Causal,
                                   kPrefillWsRows, true>(p);
          return;
        }
      }
    }
    poisonLaunch(p);
    return;
  }
  if (p.query_tile_rows != 0) {
    // The prefill layout (the runtime chose it; see params.h).
    if constexpr (AllowPrefill && kPrefillRows % GroupSize == 0) {
      if (prefillLaunchMatches<T, HeadDim, GroupSize, PageSize, Causal>(p)) {
        if constexpr (AllowMma && kDeviceHasMma &&
                      kPrefillSupported<T, HeadDim, GroupSize, PageSize>) {
          // The tensor-core bodies keep their tiles in the dynamic shared
          // memory the runtime passes: enough for the wgmma body on sm_90
          // (which an sm_90a build has), else for the mma.sync body.
          const uint32_t bytes = prefill::dynamicSharedBytes();
          if constexpr (kDeviceHasWgmma) {
            if (bytes >= uint32_t(prefillSharedBytes(HeadDim, true))) {
              pagedPrefillWgmmaBody<T, HeadDim, GroupSize, PageSize, Causal>(
                  p, prefill::alignedDynamicShared<wgmma::kAtomBytes>());
              return;
            }
          }
          if (bytes >= uint32_t(prefillSharedBytes(HeadDim, false))) {
            pagedPrefillMmaBody<T, HeadDim, GroupSize, PageSize, Causal>(p);
            return;
          }
        } else {
          prefillTokensOnCudaCores<T, HeadDim, GroupSize, PageSize, Causal,
                                   kPrefillRows>(p);
          return;
        }
      }
    }
    poisonLaunch(p);
    return;
  }
  // The decode layout: the bodies keep their block state in the dynamic
  // shared memory the runtime passes (decodeSharedBytes).
  if (!launchMatches<T, HeadDim, GroupSize, PageSize, Causal>(p) ||
      dynamicSharedBytes() < uint32_t(decodeSharedBytes(HeadDim, GroupSize))) {
    poisonLaunch(p);
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // With several splits the runtime launches its merge kernel as a
  // programmatic dependent of this one (runtime/lib/SplitK.cu): let it be
  // scheduled now; it waits for this grid's completion before reading.
  if (p.num_splits > 1)
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const int split = blockIdx.z;
  if constexpr (AllowMma && kDeviceHasMma &&
                kMmaAttentionSupported<T, HeadDim, GroupSize, PageSize>) {
    // Queries and outputs [batch, tokens, q_heads, head_dim]: blockIdx.y is
    // b * num_tokens + t, and the group's heads start at kv head (blockIdx.x)
    // * GroupSize.
    const int64_t firstHead = static_cast<int64_t>(blockIdx.y) * p.num_q_heads +
                              static_cast<int64_t>(blockIdx.x) * GroupSize;
    pagedAttentionMmaBody<T, HeadDim, GroupSize, PageSize, Causal>(
        p, firstHead, split);
  } else
    pagedAttentionSimtBody<T, HeadDim, GroupSize, PageSize, Causal>(
        p, blockIdx.y / p.num_tokens, blockIdx.y % p.num_tokens, blockIdx.x,
        split);
}

/// Paged attention of one (kv head, sequence, query token, split) block, or
/// of one prefill block when the runtime picked the prefill layout; see the
/// file comment. T: __half, __nv_bfloat16 or float; GroupSize = q heads /
/// kv heads (1..16); PageSize a power of two; Causal: query t of num_tokens
/// sees keys [0, length - num_tokens + t], else all keys. Runs on tensor
/// cores where attention_mma.cuh / attention_prefill.cuh support the shape
/// and the GPU (decode: fp16/bf16, head_dim 64/128/256, groups up to 8,
/// sm_80+; prefill: the same at head_dim 64/128, kPrefillSupported), on
/// CUDA cores otherwise.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedAttention(const kvrt_attention_params &p) {
  pagedAttentionChecked<T, HeadDim, GroupSize, PageSize, Causal, true, true>(
      p);
}

/// pagedAttention without the prefill body, for ops whose query rows
/// (tokens x group) are below one prefill tile, which the runtime never
/// launches in the prefill layout. Registers are allocated per kernel, for
/// its most demanding path: without the prefill body a decode kernel keeps
/// the decode body's 127-128 registers (4 blocks per SM) instead of about 205.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedDecode(const kvrt_attention_params &p) {
  pagedAttentionChecked<T, HeadDim, GroupSize, PageSize, Causal, true, false>(
      p);
}

/// pagedAttention on CUDA cores only, for every shape (the prefill layout
/// runs the CUDA-core body token by token): the reference the tensor-core
/// bodies are tested and benchmarked against.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedAttentionSimt(const kvrt_attention_params &p) {
  pagedAttentionChecked<T, HeadDim, GroupSize, PageSize, Causal, false, true>(
      p);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_CUH
