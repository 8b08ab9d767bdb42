//===- attention_prefill.cuh - Tensor-core paged prefill -------*- CUDA -*-===//
//
// The prefill body of kvrt::device::pagedAttention (attention.cuh): many
// query tokens per sequence, so attention is compute-bound and each block
// shares every K/V tile it loads among 64 query rows.
//
// Launch (the runtime chooses it, see kvrt_attention_params.query_tile_rows):
// grid (num_kv_heads, batch * ceil(num_tokens * G / 64)), 128 threads. Block
// (h, b * tiles + q) takes rows [64 q, 64 q + 64) of sequence b's
// num_tokens x G query rows of kv head h, ordered token-major (row R is
// token R / G, query head h * G + R % G), so the group's heads share the
// K/V tiles (GQA). Warp w owns rows 16 w .. 16 w + 15.
//
// FlashAttention-2 structure on mma.sync m16n8k16 with fp32 accumulation:
// per tile of 64 keys, S = Q·Kᵀ (Q fragments in registers for the whole
// block, K fragments by ldmatrix from shared memory), online softmax on the
// accumulator rows, P reused in registers as the A operand of O += P·V (V
// fragments by ldmatrix.trans). K and V tiles are gathered from the pages
// by cp.async into XOR-swizzled shared memory (16-byte chunk c of row r at
// c ^ (r % 8), so ldmatrix's eight rows hit eight bank groups); V's copy
// overlaps S, and the next K tile's copy overlaps P·V. Keys past the row's
// length are zero-filled and masked; causal rows mask keys after their
// position. The tiles live in the block's dynamic shared memory
// (prefillSharedBytes). On sm_90a, attention_prefill_wgmma.cuh's body runs
// instead, on the same launch and rows, or the warp-specialized body of
// attention_prefill_ws.cuh on its own launch (128 rows, 384 threads).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_PREFILL_CUH
#define KVRT_DEVICE_ATTENTION_PREFILL_CUH

#include "kvrt/device/attention_mma.cuh"
#include "kvrt/device/element.cuh"
#include "kvrt/device/paged.cuh"
#include "kvrt/device/params.h"
#include "kvrt/device/shared.cuh"
#include "kvrt/device/softmax.cuh"
#include "kvrt/device/wgmma.cuh"

#include <cstdint>
#include <type_traits>

namespace kvrt::device {

/// Query rows of one prefill block (4 warps x 16 rows).
inline constexpr int kPrefillRows = 64;
/// Threads and blocks per SM that kernels with the prefill body are
/// compiled for (__launch_bounds__(kPrefillMaxThreads, kPrefillMinBlocks)
/// in generated code). For sm_90a: one block of 384 threads, the
/// warp-specialized body's (attention_prefill_ws.cuh), so at most 168
/// registers per thread; its consumer warpgroups take 240 by setmaxnreg.
/// The 128-thread bodies get the same 168 and run three blocks per SM: the
/// wgmma one (attention_prefill_wgmma.cuh: about 158 registers, 65 KiB of
/// shared memory) where the warp-specialized one does not run. For other
/// targets, which have no warp-specialized body: three blocks of 128
/// threads (168 registers), for the mma.sync body (alone it takes about
/// 207 registers; three blocks with a few spilled registers measured 8%
/// faster on the H200 than two without). So only kernels that contain the
/// warp-specialized body allow its 384-thread blocks, which is what the
/// runtime checks before it launches them (runtime/lib/SplitK.h,
/// prefillWsEligible); kernels compiled for (128, 3), as kvcc emitted
/// them before, keep the 128-thread bodies. The host pass sees the sm_90a
/// values (the bounds that count are the device code's).
#if KVRT_DEVICE_HAS_WGMMA || !defined(__CUDA_ARCH__)
inline constexpr int kPrefillMaxThreads = 384;
inline constexpr int kPrefillMinBlocks = 1;
#else
inline constexpr int kPrefillMaxThreads = 128;
inline constexpr int kPrefillMinBlocks = 3;
#endif
/// Keys per K/V tile (pagedPrefillMmaBody's default KeyTile).
inline constexpr int kPrefillKeys = 64;
/// Keys per K/V tile of the sm_90a body (attention_prefill_wgmma.cuh).
inline constexpr int kPrefillWgmmaKeys = 64;
/// How far (log2 units) a tile's maximum may exceed a row's running one
/// before the sm_90a bodies move it (RowSoftmax::update's maxSlack;
/// FlashAttention-4's threshold). Probabilities then reach 2^8 at most,
/// which fp32 sums and bf16/f16 P operands hold at full relative precision,
/// and once a row's maximum settles most tiles skip the output's rescale:
/// up to +4% in the warp-specialized body and in the 64-row one (H200,
/// interleaved A/B, session 20; bench/results/prefill_ab). The mma.sync
/// body keeps 0 (unmeasured).
inline constexpr float kPrefillMaxSlack = 8.0f;

/// Bytes of dynamic shared memory the sm_90a prefill body needs with tiles
/// of `keys` keys (elements are 16-bit): Q, two K tiles and a V tile plus
/// 1024 bytes to align them for the swizzle.
__host__ __device__ constexpr int prefillWgmmaSharedBytes(int headDim,
                                                          int keys) {
  return (kPrefillRows + 3 * keys) * headDim * 2 + 1024;
}
/// Bytes of dynamic shared memory a prefill block needs (the runtime passes
/// them at launch): the K and V tiles of pagedPrefillMmaBody plus 128 bytes
/// to align them, or, for the sm_90a body (`wgmma`),
/// prefillWgmmaSharedBytes with kPrefillWgmmaKeys.
__host__ __device__ constexpr int prefillSharedBytes(int headDim, bool wgmma) {
  return wgmma ? prefillWgmmaSharedBytes(headDim, kPrefillWgmmaKeys)
               : 2 * kPrefillKeys * headDim * 2 + 128;
}

/// Whether the prefill body exists for these template values (sm_80+ is
/// checked separately). The runtime applies the same rule
/// (runtime/lib/SplitK.cu) before it launches in prefill mode.
template <typename T, int HeadDim, int GroupSize, int PageSize>
inline constexpr bool kPrefillSupported =
    (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) &&
    (HeadDim == 64 || HeadDim == 128) &&
    (GroupSize == 1 || GroupSize == 2 || GroupSize == 4 || GroupSize == 8);

namespace prefill {

using kvrt::device::alignedDynamicShared;
using kvrt::device::dynamicSharedBytes;
using kvrt::device::sharedAddress;

/// Copies 16 bytes to shared memory (at shared-window address
/// `destination`) asynchronously; zero-fills when not `valid` (then
/// `source` is not read).
__device__ __forceinline__ void copyAsync16(uint32_t destination,
                                            const void *source, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                   destination),
               "l"(source), "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void copyAsync16(void *destination,
                                            const void *source, bool valid) {
  copyAsync16(sharedAddress(destination), source, valid);
}

__device__ __forceinline__ void commitCopies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

__device__ __forceinline__ void waitCopies() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

/// Waits for every committed copy group but the newest.
__device__ __forceinline__ void waitCopiesExceptNewest() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group 1;\n" ::: "memory");
#endif
}

/// 2^x by the hardware approximation (ex2.approx.ftz: 2^-inf = 0, relative
/// error about 2^-22), one instruction instead of exp2f's range handling.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

/// ldmatrix .x4: four 8x8 b16 matrices whose rows lanes 8i..8i+7 address.
__device__ __forceinline__ void loadMatrices(uint32_t (&r)[4],
                                             const void *row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, "
               "[%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(row)));
#endif
}

/// ldmatrix .x4 .trans: the same, each matrix transposed.
__device__ __forceinline__ void loadMatricesTransposed(uint32_t (&r)[4],
                                                       const void *row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, "
               "%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(sharedAddress(row)));
#endif
}

/// A K or V tile in shared memory: kPrefillKeys rows of HeadDim elements,
/// 16-byte chunk c of row r stored at chunk c ^ (r % 8).
template <typename T, int HeadDim, int Rows> struct SwizzledTile {
  static constexpr int kChunks = HeadDim * int(sizeof(T)) / 16;
  static_assert(kChunks % 8 == 0, "rows must be whole 8-chunk groups");
  uint4 chunks[Rows][kChunks];

  __device__ uint4 *chunk(int row, int c) {
    return &chunks[row][c ^ (row % 8)];
  }
};

template <typename T, int HeadDim, int KeyTile> struct PrefillShared {
  SwizzledTile<T, HeadDim, KeyTile> key;
  SwizzledTile<T, HeadDim, KeyTile> value;
};

/// Where a tile copier reads the 16 bytes at `offset` (from the start of
/// the key row; values add Layout::kValueOffset) of K/V row `key` of `row`,
/// looking the key's page up in the page table; for a row that is not
/// `valid` (past the keys the tile may see), the pool's base, a valid
/// address for a copy that reads nothing and writes zeros.
template <typename T, int HeadDim, int PageSize>
__device__ __forceinline__ const char *
tileRowSource(const PagedRow &row, int key, int64_t offset, bool valid) {
  using Layout = PageLayout<T, HeadDim, PageSize>;
  if (!valid)
    return row.poolBase;
  return row.pageAddress(__ldg(row.pages + key / PageSize)) +
         (key % PageSize) * Layout::kRowBytes + offset;
}

/// Starts the copy of keys (`values` false) or values of the tile whose
/// first key is `first` into `tile`; keys at or past `length` are zeros.
/// Thread i copies chunk i % kChunks of rows i / kChunks + u * (128 /
/// kChunks): consecutive threads read consecutive 16 bytes of a row.
template <typename T, int HeadDim, int PageSize, int KeyTile>
__device__ __forceinline__ void
copyTile(const PagedRow &row, int first, int length, bool values,
         SwizzledTile<T, HeadDim, KeyTile> &tile) {
  using Layout = PageLayout<T, HeadDim, PageSize>;
  using Tile = SwizzledTile<T, HeadDim, KeyTile>;
  constexpr int kRowsPerPass = 128 / Tile::kChunks;
  const int c = threadIdx.x % Tile::kChunks;
  const int firstRow = threadIdx.x / Tile::kChunks;
  const int64_t offset =
      (values ? Layout::kValueOffset : 0) + 16 * c;
#pragma unroll
  for (int u = 0; u < KeyTile / kRowsPerPass; ++u) {
    const int r = firstRow + u * kRowsPerPass;
    const int key = first + r;
    const bool valid = key < length;
    copyAsync16(tile.chunk(r, c),
                tileRowSource<T, HeadDim, PageSize>(row, key, offset, valid),
                valid);
  }
}

/// Element offset of query row R of `sequence`'s chunk in the queries and
/// the output (both [sequence, token, query head, HeadDim]): row R is token
/// R / GroupSize of query head kvHead * GroupSize + R % GroupSize.
template <int HeadDim, int GroupSize>
__device__ __forceinline__ int64_t queryRowOffset(
    const kvrt_attention_params &p, int sequence, int kvHead, int R) {
  // R >= 0: unsigned, so that GroupSize's powers of two divide by a shift.
  const int token = int(unsigned(R) / GroupSize);
  const int head = kvHead * GroupSize + int(unsigned(R) % GroupSize);
  return ((int64_t(sequence) * p.num_tokens + token) * p.num_q_heads + head) *
         int64_t(HeadDim);
}

/// The 16 query rows of a prefill warp from `warpFirstRow` (of the
/// sequence's `rowsPerSequence`) as far as this lane holds them in the m16n8
/// layout (rows r and r + 8, r = lane / 4) and as masking needs them. Query
/// t of num_tokens sits at key position length - num_tokens + t.
template <bool Causal, int GroupSize> struct WarpRows {
  /// Row index of this lane's row 0 (row 1 is 8 further).
  int lane0;
  bool valid[2];
  int position[2];
  /// All 16 rows exist (row < rowsPerSequence).
  bool allValid;
  /// The position of the warp's first row, the smallest of its rows.
  int firstPosition;

  __device__ __forceinline__ WarpRows(const kvrt_attention_params &p,
                                      int length, int rowsPerSequence,
                                      int warpFirstRow, int r)
      : lane0(warpFirstRow + r), allValid(warpFirstRow + 15 < rowsPerSequence),
        firstPosition(length - p.num_tokens +
                      min(warpFirstRow, rowsPerSequence - 1) / GroupSize) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int R = lane0 + 8 * half;
      valid[half] = R < rowsPerSequence;
      position[half] =
          length - p.num_tokens + (valid[half] ? R / GroupSize : 0);
    }
  }

  /// Whether keys [first, first + keys) hold a key invisible to one of the
  /// warp's rows (warp-uniform): past `keyEnd`, after a row's position, or
  /// the warp has rows past the chunk.
  __device__ __forceinline__ bool needsMask(int first, int keys,
                                            int keyEnd) const {
    return !allValid || first + keys > keyEnd ||
           (Causal && first + keys - 1 > firstPosition);
  }

  /// This lane's output rows (HeadDim elements of T each); p.out itself
  /// for a row past the chunk (never stored to: no pointer past the
  /// output is formed).
  template <typename T, int HeadDim>
  __device__ __forceinline__ void outputs(const kvrt_attention_params &p,
                                          int sequence, int kvHead,
                                          T *(&out)[2]) const {
#pragma unroll
    for (int half = 0; half < 2; ++half)
      out[half] = static_cast<T *>(p.out) +
                  (valid[half] ? queryRowOffset<HeadDim, GroupSize>(
                                     p, sequence, kvHead, lane0 + 8 * half)
                               : 0);
  }
};

/// Multiplies a thread's accumulators of its two rows (the m16n8 layout:
/// acc[t][0..1] row r, acc[t][2..3] row r + 8) by their rows' factors.
template <int DimTiles>
__device__ __forceinline__ void scaleRows(float (&acc)[DimTiles][4],
                                          const float (&factor)[2]) {
#pragma unroll
  for (int t = 0; t < DimTiles; ++t) {
    acc[t][0] *= factor[0];
    acc[t][1] *= factor[0];
    acc[t][2] *= factor[1];
    acc[t][3] *= factor[1];
  }
}

/// The online softmax of a thread's two query rows (warp rows r and r + 8,
/// `half` 0 and 1) in the prefill bodies, over score tiles in the m16n8
/// accumulator layout: scores[n][2 half + j] is key 8 n + 2 c + j of the
/// tile for the thread's row `half` (c = lane % 4).
struct RowSoftmax {
  /// Running maxima in scaled log2 units: -inf while a row has seen no
  /// visible key (then every probability is 2^-inf = 0).
  float runningMax[2] = {-INFINITY, -INFINITY};
  /// This lane's share of each row's sum of probabilities.
  float runningSum[2] = {0.0f, 0.0f};

  /// Turns the raw scores of the tile whose first key is `first` into
  /// probabilities and rescales the output accumulators `acc` to the new
  /// maxima. The scale folds into the exponent (2^(s * scale·log2e - max)).
  /// When `needsMask` (warp-uniform: a key may be invisible to one of the
  /// warp's rows), keys at or past `keyEnd`, rows that are not `rowValid`
  /// and, if Causal, keys after the row's `position` are masked first.
  template <bool Causal, int KeyTiles, int DimTiles>
  __device__ __forceinline__ void
  update(float (&scores)[KeyTiles][4], float (&acc)[DimTiles][4],
         bool needsMask, int first, int keyEnd, const bool (&rowValid)[2],
         const int (&position)[2], float scaleLog2, float maxSlack = 0.0f) {
    const int c = threadIdx.x % 4;
    if (needsMask) {
#pragma unroll
      for (int half = 0; half < 2; ++half)
#pragma unroll
        for (int n = 0; n < KeyTiles; ++n)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int key = first + 8 * n + 2 * c + j;
            const bool visible = rowValid[half] && key < keyEnd &&
                                 (!Causal || key <= position[half]);
            if (!visible)
              scores[n][2 * half + j] = -INFINITY;
          }
    }
    float rescale[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tileMax = -INFINITY;
#pragma unroll
      for (int n = 0; n < KeyTiles; ++n)
        tileMax =
            fmaxf(tileMax, fmaxf(scores[n][2 * half], scores[n][2 * half + 1]));
      tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 1));
      tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, 2));
      // A row keeps its maximum unless the tile's exceeds it by more than
      // maxSlack (log2 units): probabilities up to 2^maxSlack, the result
      // exact up to rounding (kPrefillMaxSlack).
      const float tileScaled = tileMax * scaleLog2;
      const float newMax = tileScaled > runningMax[half] + maxSlack
                               ? tileScaled
                               : runningMax[half];
      rescale[half] = fastExp2(runningMax[half] - newMax);
      const float shift = newMax == -INFINITY ? 0.0f : newMax;
      if (runningMax[half] == -INFINITY)
        rescale[half] = 0.0f;
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < KeyTiles; ++n)
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const float prob =
              fastExp2(fmaf(scores[n][2 * half + j], scaleLog2, -shift));
          scores[n][2 * half + j] = prob;
          sum += prob;
        }
      runningSum[half] = runningSum[half] * rescale[half] + sum;
      runningMax[half] = newMax;
    }
    // Once the rows' maxima settle, most tiles change none of the warp's
    // maxima: skip the rescale then (a warp-uniform branch).
    if (__any_sync(0xffffffffu, rescale[0] != 1.0f || rescale[1] != 1.0f))
      scaleRows(acc, rescale);
  }

  /// Normalizes the accumulators and stores the thread's share of each
  /// valid row: outRow[half] is the row's output (HeadDim elements of T,
  /// 16-byte aligned). The four lanes of a row hold two columns of every
  /// 8-column tile (the m16n8 layout); they exchange them (a 4 x 4
  /// transpose of 32-bit words across the quad per four tiles) so that each
  /// lane stores one tile's 8 columns with a 16-byte store: a warp's store
  /// then writes 64 whole bytes of each of its 8 rows instead of 16 bytes
  /// of each with four times as many instructions. On the H200 (session
  /// 17, kvrt's persistent warp-specialized kernel against the same kernel
  /// with 4-byte stores, interleaved in one process, bf16 TFLOP/s) short
  /// rows gained most: non-causal 16 x 512 438 / 378, 8 x 1K 505 / 468,
  /// causal 8 x 1K 386 / 343, 4 x 4K 484 / 462; long rows 1-2%. The
  /// kernel's per-item trace: 0.8-0.9 us from the last P·V to the stores
  /// instead of 1.2-1.5, and 0.5-0.65 us to the next item instead of 0.7-1.6
  /// (likely: the 4-byte stores' requests had held up the memory pipe the
  /// next item's copies use).
  template <typename T, int DimTiles>
  __device__ __forceinline__ void store(const float (&acc)[DimTiles][4],
                                        T *const (&outRow)[2],
                                        const bool (&rowValid)[2]) {
    static_assert(DimTiles % 4 == 0, "whole groups of four column tiles");
    const int c = threadIdx.x % 4;
    // Each lane summed its own keys: add up the four lanes of each row.
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      runningSum[half] += __shfl_xor_sync(0xffffffffu, runningSum[half], 1);
      runningSum[half] += __shfl_xor_sync(0xffffffffu, runningSum[half], 2);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      // Every lane of the quad shuffles (rowValid is the same for the
      // four lanes of a row, but the shuffles name all 32).
      const float inverse =
          runningSum[half] > 0.0f ? 1.0f / runningSum[half] : 0.0f;
#pragma unroll
      for (int group = 0; group < DimTiles / 4; ++group) {
        // word[j]: this lane's columns 2c, 2c + 1 of tile 4 group + j.
        uint32_t word[4];
#pragma unroll
        for (int j = 0; j < 4; ++j)
          word[j] = mma::pack<T>(acc[4 * group + j][2 * half] * inverse,
                                 acc[4 * group + j][2 * half + 1] * inverse);
        // Transpose across the quad, one lane bit at a time: for bit b,
        // lanes exchange the words whose index differs from theirs in b.
#pragma unroll
        for (int bit = 1; bit <= 2; bit *= 2) {
          const bool upper = (c & bit) != 0;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (j & bit)
              continue;
            const uint32_t sent = upper ? word[j] : word[j + bit];
            const uint32_t got = __shfl_xor_sync(0xffffffffu, sent, bit);
            if (upper)
              word[j] = got;
            else
              word[j + bit] = got;
          }
        }
        // Now word[i] holds lane i's columns of tile 4 group + c.
        if (rowValid[half])
          *reinterpret_cast<uint4 *>(outRow[half] + 8 * (4 * group + c)) =
              make_uint4(word[0], word[1], word[2], word[3]);
      }
    }
  }
};

} // namespace prefill

/// The prefill body; see the file comment. pagedAttention calls it after
/// checking the launch (prefillLaunchMatches) and that the block has
/// prefillSharedBytes(HeadDim, false) bytes of dynamic shared memory.
/// `KeyTile` keys (32 or 64) per K/V tile.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          int KeyTile = kPrefillKeys>
__device__ void pagedPrefillMmaBody(const kvrt_attention_params &p) {
  static_assert(kPrefillSupported<T, HeadDim, GroupSize, PageSize>,
                "no prefill body for these template values");
  using namespace prefill;
  using mma::mma16816;
  using mma::pack;
  constexpr int kSteps = HeadDim / 16;      // k-steps of S = Q·Kᵀ
  static_assert(KeyTile == 32 || KeyTile == 64, "KeyTile must be 32 or 64");
  constexpr int kKeyTiles = KeyTile / 8;    // n-tiles of S
  constexpr int kDimTiles = HeadDim / 8;    // n-tiles of O

  PrefillShared<T, HeadDim, KeyTile> &shared =
      *reinterpret_cast<PrefillShared<T, HeadDim, KeyTile> *>(
          alignedDynamicShared<128>());

  const int kvHead = blockIdx.x;
  const int rowsPerSequence = p.num_tokens * GroupSize;
  const int tiles = (rowsPerSequence + kPrefillRows - 1) / kPrefillRows;
  const int sequence = blockIdx.y / tiles;
  // Causal rows further down see more keys: blocks are issued in grid
  // order, so the heaviest tiles go first and the last wave is the
  // lightest (as FlashAttention-2 orders them).
  const int tile = Causal ? tiles - 1 - int(blockIdx.y % tiles)
                          : int(blockIdx.y % tiles);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;
  const int c = lane % 4;

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  const int length = row.length;

  // This lane's two query rows: warp rows r and r + 8.
  const WarpRows<Causal, GroupSize> rows(p, length, rowsPerSequence,
                                         tile * kPrefillRows + warp * 16, r);
  const T *queryRow[2];
#pragma unroll
  for (int half = 0; half < 2; ++half)
    queryRow[half] =
        static_cast<const T *>(p.queries) +
        queryRowOffset<HeadDim, GroupSize>(
            p, sequence, kvHead, rows.valid[half] ? rows.lane0 + 8 * half : 0);

  // Q as A fragments of every k-step: a0a1 row r dims 2c..2c+1, a2a3 row
  // r + 8, a4a5/a6a7 the same 8 dims further.
  uint32_t query[kSteps][4];
#pragma unroll
  for (int s = 0; s < kSteps; ++s) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int half = i % 2;
      const int dim = 16 * s + 2 * c + 8 * (i / 2);
      query[s][i] =
          rows.valid[half]
              ? *reinterpret_cast<const uint32_t *>(queryRow[half] + dim)
              : 0u;
    }
  }

  // Keys the block's rows can see.
  int lastRow = min(rowsPerSequence, (tile + 1) * kPrefillRows) - 1;
  int keyEnd = length;
  if (Causal)
    keyEnd = min(length, length - p.num_tokens + lastRow / GroupSize + 1);
  keyEnd = max(0, keyEnd);
  const int numTiles = (keyEnd + KeyTile - 1) / KeyTile;
  const float scaleLog2 = p.scale * kLog2e;

  float acc[kDimTiles][4] = {};
  RowSoftmax softmax;

  if (numTiles > 0) {
    copyTile<T, HeadDim, PageSize, KeyTile>(row, 0, keyEnd, false,
                                            shared.key);
    commitCopies();
  }
#pragma unroll 1
  for (int kt = 0; kt < numTiles; ++kt) {
    const int first = kt * KeyTile;
    waitCopies();
    __syncthreads(); // K(kt) is in; every warp is done with V(kt - 1)
    copyTile<T, HeadDim, PageSize, KeyTile>(row, first, keyEnd, true,
                                            shared.value);
    commitCopies();

    // S = Q·Kᵀ for 16 rows x 64 keys.
    float scores[kKeyTiles][4];
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        scores[n][i] = 0.0f;
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
#pragma unroll
      for (int n = 0; n < kKeyTiles; n += 2) {
        // Matrices: keys 8n.. x dims 16s.., keys 8n.. x dims 16s+8..,
        // then the same for keys 8(n+1)...
        const int m = lane / 8;
        const int key = (n + m / 2) * 8 + lane % 8;
        uint32_t b[4];
        loadMatrices(b, shared.key.chunk(key, 2 * s + m % 2));
        mma16816<T>(scores[n], query[s], b[0], b[1]);
        mma16816<T>(scores[n + 1], query[s], b[2], b[3]);
      }
    }

    // Online softmax per row. Masking is needed only where a key may be
    // invisible to one of the warp's rows: the causal diagonal, the row's
    // end, padding rows of the last tile (warp-uniform test).
    softmax.update<Causal>(scores, acc, rows.needsMask(first, KeyTile, keyEnd),
                           first, keyEnd, rows.valid, rows.position, scaleLog2);
    const float(&probs)[kKeyTiles][4] = scores;

    waitCopies();
    __syncthreads(); // V(kt) is in; every warp is done with K(kt)
    if (kt + 1 < numTiles) {
      copyTile<T, HeadDim, PageSize, KeyTile>(row, first + KeyTile, keyEnd,
                                              false, shared.key);
      commitCopies();
    }

    // O += P·V: P's accumulator layout is the A operand's.
#pragma unroll
    for (int kk = 0; kk < KeyTile / 16; ++kk) {
      const uint32_t a[4] = {pack<T>(probs[2 * kk][0], probs[2 * kk][1]),
                             pack<T>(probs[2 * kk][2], probs[2 * kk][3]),
                             pack<T>(probs[2 * kk + 1][0], probs[2 * kk + 1][1]),
                             pack<T>(probs[2 * kk + 1][2], probs[2 * kk + 1][3])};
#pragma unroll
      for (int dp = 0; dp < HeadDim / 16; ++dp) {
        // Matrices (transposed): keys 16kk.. x dims 16dp.., keys 16kk+8.. x
        // dims 16dp.., keys 16kk.. x dims 16dp+8.., keys 16kk+8.. x
        // dims 16dp+8...
        const int m = lane / 8;
        const int key = 16 * kk + (m % 2) * 8 + lane % 8;
        uint32_t b[4];
        loadMatricesTransposed(b, shared.value.chunk(key, 2 * dp + m / 2));
        mma16816<T>(acc[2 * dp], a, b[0], b[1]);
        mma16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
      }
    }
  }

  T *outRow[2];
  rows.template outputs<T, HeadDim>(p, sequence, kvHead, outRow);
  softmax.store<T>(acc, outRow, rows.valid);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_PREFILL_CUH
