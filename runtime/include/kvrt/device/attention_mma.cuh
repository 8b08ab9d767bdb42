//===- attention_mma.cuh - Tensor-core paged decode attention --*- CUDA -*-===//
//
// The tensor-core body of kvrt::device::pagedAttention (attention.cuh), used
// for fp16/bf16 caches with head_dim 64, 128 or 256, GQA groups of up to 8 query
// heads and pages of at least 16 tokens on sm_80 and newer. Same block,
// grid and split-K contract as the CUDA-core body: block (h, b * T + t, s)
// computes one query token for the group of kv head h over split s.
//
// Each warp takes chunks of 16 keys of the block's split and computes, with
// mma.sync m16n8k16 (fp32 accumulation), the transposed problem so that the
// 16 keys fill the MMA's M dimension and the group's heads its N = 8:
//
//   Sᵀ [16 keys x 8 heads]  = K [16 x D] · Qᵀ [D x 8]
//   Oᵀ [D x 8 heads]       += Vᵀ [D x 16 keys] · Pᵀ [16 keys x 8 heads]
//
// No shared memory is staged: every lane loads, with 16-byte loads straight
// from the paged pool, exactly the K and V elements its MMA fragments need.
// This works because a dot product does not depend on the order of its
// terms: the fragments' logical head_dim index is mapped to physical
// elements so that each lane's share of a row is whole 16-byte vectors
// (KeyMap, ValueMap), and the output is written back through the same map.
// Probabilities go from the Sᵀ accumulator layout to the Pᵀ operand layout
// with two movmatrix transposes; Vᵀ fragments pair elements of two keys
// with byte permutes.
//
// Per 16-key chunk a lane issues D / 16 loads of 16 bytes for K and as many
// for V before it uses any, so a warp has 2 x 16 x D x sizeof(T) bytes in
// flight (8 KiB at d128) and the SM as many times that as it holds warps.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_MMA_CUH
#define KVRT_DEVICE_ATTENTION_MMA_CUH

#include "kvrt/device/element.cuh"
#include "kvrt/device/paged.cuh"
#include "kvrt/device/params.h"
#include "kvrt/device/shared.cuh"
#include "kvrt/device/softmax.cuh"

#include <cstdint>
#include <type_traits>

namespace kvrt::device {

/// True when this compilation targets a GPU with mma.sync m16n8k16 and
/// movmatrix (sm_80 and newer).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
inline constexpr bool kDeviceHasMma = true;
#else
inline constexpr bool kDeviceHasMma = false;
#endif

/// Whether pagedAttention takes the tensor-core body for these template
/// values (the architecture check is separate: sm_80 or newer).
template <typename T, int HeadDim, int GroupSize, int PageSize>
inline constexpr bool kMmaAttentionSupported =
    (std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) &&
    (HeadDim == 64 || HeadDim == 128 || HeadDim == 256) && GroupSize >= 1 &&
    GroupSize <= 8 &&
    PageSize >= 16 && PageSize % 16 == 0;

/// Threads of a wide decode block: one 16-warp block per SM streams a
/// (sequence, kv head) row unsplit. runtime/lib/SplitK.cu launches it for
/// batches of about one such row per SM, where the kernel allows it
/// (kWideDecodeSupported in attention.cuh).
inline constexpr int kWideDecodeThreads = 512;

namespace mma {

/// Keys of one chunk: the M dimension of one m16n8k16 MMA.
inline constexpr int kChunkKeys = 16;

/// D += A · B for one m16n8k16 tile, fp32 accumulation.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4],
                                         uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0),
                   "r"(b1));
#endif
}

/// Transposes an 8x8 matrix of 16-bit elements held in MMA fragment layout
/// (lane l holds row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1).
__device__ __forceinline__ uint32_t transpose8x8(uint32_t x) {
  uint32_t y = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n"
               : "=r"(y)
               : "r"(x));
#endif
  return y;
}

/// Two floats as one 32-bit word of T (lo in the low half), rounded.
template <typename T> __device__ __forceinline__ uint32_t pack(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    __half2 pair = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&pair);
  } else {
    __nv_bfloat162 pair = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&pair);
  }
}

/// A lane's share of key rows: the MMA's A fragment of K [16 keys x D]
/// (and the B fragment of Qᵀ) has lane l = 4 r + c hold rows r and r + 8
/// (keys; heads for Q) at logical columns 2c, 2c + 1, 2c + 8, 2c + 9 of
/// each 16-column k-step. Lane c instead owns kVectors whole 16-byte
/// vectors of a row, vector i at element (4 i + c) * 8, so four lanes read
/// 64 contiguous bytes per load; its 32-bit words 2s and 2s + 1 serve as
/// the fragment's columns of k-step s.
template <typename T, int HeadDim> struct KeyMap {
  static constexpr int kVectors = HeadDim / 32;
  static constexpr int kWords = kVectors * 4;
  static constexpr int kSteps = HeadDim / 16;
  __device__ static constexpr int element(int vector, int c) {
    return (4 * vector + c) * 8;
  }
};

/// A lane's share of value rows: the A fragment of Vᵀ [D x 16 keys] has
/// lane l = 4 r + c hold logical rows (dims) r and r + 8 of each 16-row
/// m-tile at keys 2c, 2c + 1, 2c + 8, 2c + 9. Lane r owns kVectors whole
/// 16-byte vectors of each of those four key rows, vector j at element
/// (8 j + r) * 8 (eight lanes read 128 contiguous bytes per load); m-tile t
/// takes its word t: the low halves are logical dim r, the high halves
/// logical dim r + 8.
template <typename T, int HeadDim> struct ValueMap {
  static constexpr int kVectors = HeadDim / 64;
  static constexpr int kWords = kVectors * 4;
  static constexpr int kTiles = HeadDim / 16;
  static_assert(kWords == kTiles, "one word per m-tile");
  __device__ static constexpr int element(int vector, int r) {
    return (8 * vector + r) * 8;
  }
  /// Physical element of element index e (0..2 kWords) of lane r's share.
  __device__ static constexpr int physical(int e, int r) {
    return element(e / 8, r) + e % 8;
  }
};

/// Raw K and V of one chunk as a lane loads them. accumulateChunk reads a
/// chunk through keys() and values(), so another loader (a chunk in shared
/// memory, as the bulk-copy loader of commit a1472a9 had, or a dequantizing
/// one) can provide them too.
template <typename T, int HeadDim> struct ChunkRegisters {
  /// Key rows r and r + 8.
  uint4 key[2][KeyMap<T, HeadDim>::kVectors];
  /// Value rows 2c, 2c + 1, 2c + 8, 2c + 9.
  uint4 value[4][ValueMap<T, HeadDim>::kVectors];

  /// Vector i of this lane's key rows r and r + 8.
  __device__ __forceinline__ void keys(int i, uint4 (&out)[2]) const {
    out[0] = key[0][i];
    out[1] = key[1][i];
  }
  /// Vector j of this lane's value rows 2c, 2c + 1, 2c + 8, 2c + 9.
  __device__ __forceinline__ void values(int j, uint4 (&out)[4]) const {
#pragma unroll
    for (int q = 0; q < 4; ++q)
      out[q] = value[q][j];
  }
};

/// 32-bit word w (0..3) of a 16-byte vector.
__device__ __forceinline__ uint32_t word(const uint4 &v, int w) {
  switch (w) {
  case 0:
    return v.x;
  case 1:
    return v.y;
  case 2:
    return v.z;
  default:
    return v.w;
  }
}

/// One 16-byte load of data read once (evict-first). An L2::256B prefetch
/// hint (ld.global.nc.L1::no_allocate.L2::256B) was 6-8% slower on the
/// H200 at every benchmark shape (bench/decode, variant runs).
/// `Mode` (benchmark variants): 0 ld.global.cs (__ldcs), 1
/// ld.global.nc.L1::no_allocate, 2 ld.global.nc (__ldg).
template <int Mode = 0>
__device__ __forceinline__ uint4 loadStreaming(const void *address) {
  if constexpr (Mode == 1) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(address));
    return v;
  } else if constexpr (Mode == 2) {
    return __ldg(reinterpret_cast<const uint4 *>(address));
  } else {
    return __ldcs(reinterpret_cast<const uint4 *>(address));
  }
}

/// Asks the TMA unit to bring `bytes` (a multiple of 16) at `address` into
/// L2 (cp.async.bulk.prefetch.L2, sm_90): no registers, no L1.
__device__ __forceinline__ void prefetchBulkL2(const void *address,
                                               uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(address),
               "r"(bytes)
               : "memory");
#endif
}

/// Issues the loads of the chunk of 16 keys starting at `slot` of `page`.
template <typename T, int HeadDim, int PageSize, int LoadMode = 0>
__device__ __forceinline__ void loadChunk(const char *page, int slot, int r,
                                          int c,
                                          ChunkRegisters<T, HeadDim> &regs) {
  using Keys = KeyMap<T, HeadDim>;
  using Values = ValueMap<T, HeadDim>;
  using Layout = PageLayout<T, HeadDim, PageSize>;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const T *row = Layout::key(page, slot + r + 8 * half);
#pragma unroll
    for (int i = 0; i < Keys::kVectors; ++i)
      regs.key[half][i] = loadStreaming<LoadMode>(row + Keys::element(i, c));
  }
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const int key = 2 * c + (q & 1) + 8 * (q >> 1);
    const T *row = Layout::value(page, slot + key);
#pragma unroll
    for (int j = 0; j < Values::kVectors; ++j)
      regs.value[q][j] = loadStreaming<LoadMode>(row + Values::element(j, r));
  }
}

/// Online-softmax state of one lane: heads 2c and 2c + 1 of the MMA's N
/// dimension, their running maxima (log2 units, the same in every lane of
/// a column after each chunk), this lane's partial sums, and its Oᵀ
/// accumulators (m-tile t: c0/c1 logical dim r of heads 2c/2c+1, c2/c3
/// logical dim r + 8).
template <int HeadDim> struct MmaState {
  float max[2];
  float sum[2];
  float acc[HeadDim / 16][4];
};

/// Where accumulateChunk writes the key-score hook's values (params.h)
/// for a group of `Heads` query heads, both pointers already at this
/// lane's first entry (scoreSink): head 2c + h's probability of key
/// firstKey + r (+ 8) relative to the chunk's maximum for that head goes
/// to probs[firstKey * Heads (+ 8 * Heads) + h], and lanes r = 0 store that
/// maximum to maxima[(firstKey / 16) * Heads + h]; null when the hook is
/// off. With `EvictLast` the pointers ask L2 to keep the values
/// (evictLast): the accumulation reads them from L2 and drops them without
/// a write-back (runtime/lib/SplitK.cu); without it (a benchmark variant)
/// they are plain stores.
template <int Heads, bool EvictLast = true> struct ScoreSink {
  __half *probs = nullptr;
  float *maxima = nullptr;
};

/// A lane's Qᵀ fragments in registers (loadQueryFragments' words): words
/// 2s and 2s + 1 are k-step s's B operand.
template <int Words> struct RegisterQuery {
  uint32_t words[Words];
  __device__ __forceinline__ uint2 step(int s) const {
    return make_uint2(words[2 * s], words[2 * s + 1]);
  }
};

/// The same fragments in shared memory, step-major (lane l's step s at
/// lane[s * 32], so a warp's reads of one step are contiguous).
struct SharedQuery {
  const uint2 *lane;
  __device__ __forceinline__ uint2 step(int s) const { return lane[s * 32]; }
};

/// Stores a chunk's values for the key-score hook: this lane's keys r and
/// r + 8 (scores[0..1] and scores[2..3], log2 units, -inf where masked) of
/// heads 2c and 2c + 1 relative to the chunk's maxima for those heads
/// (`maxima`, which lanes 0-3 store; the largest value of a head is 1, so
/// the halves keep 11 bits of every term within 2^-14 of it). With an even
/// head count a key's two heads share one 4-byte store (the group's heads
/// of 16 keys form one contiguous block); odd counts store them one by one.
template <int Heads, bool EvictLast>
__device__ __forceinline__ void
storeScores(const ScoreSink<Heads, EvictLast> &sink, const float (&scores)[4],
            const float (&maxima)[2], int firstKey, int r, int c, bool lowValid,
            bool highValid) {
  if (2 * c >= Heads)
    return;
  float probs[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    probs[i] = scores[i] == -INFINITY ? 0.0f : exp2f(scores[i] - maxima[i % 2]);
  __half *low = sink.probs + int64_t(firstKey) * Heads;
  __half *high = low + 8 * Heads;
  // firstKey is a multiple of 16: the chunk's index.
  float *maximum = sink.maxima + (firstKey / kChunkKeys) * Heads;
  if constexpr (Heads % 2 == 0) {
    if (lowValid)
      *reinterpret_cast<__half2 *>(low) = __floats2half2_rn(probs[0], probs[1]);
    if (highValid)
      *reinterpret_cast<__half2 *>(high) =
          __floats2half2_rn(probs[2], probs[3]);
    if (r == 0)
      *reinterpret_cast<float2 *>(maximum) = make_float2(maxima[0], maxima[1]);
  } else {
    const bool second = 2 * c + 1 < Heads;
    if (lowValid) {
      low[0] = __float2half_rn(probs[0]);
      if (second)
        low[1] = __float2half_rn(probs[1]);
    }
    if (highValid) {
      high[0] = __float2half_rn(probs[2]);
      if (second)
        high[1] = __float2half_rn(probs[3]);
    }
    if (r == 0) {
      maximum[0] = maxima[0];
      if (second)
        maximum[1] = maxima[1];
    }
  }
}

/// Folds one loaded chunk whose first key is `firstKey` (keys at or past
/// `endKey` are masked) into `state`.
/// `Chunk` gives the lane's raw vectors of the chunk (ChunkRegisters, or
/// any type with the same keys() and values()); `Query` its Qᵀ fragments
/// per k-step (RegisterQuery or SharedQuery).
template <typename T, int HeadDim, typename Chunk, typename Query, int Heads,
          bool EvictLast>
__device__ __forceinline__ void
accumulateChunk(const Chunk &chunk, const Query &query, float scaleLog2,
                int firstKey, int endKey, int r, int c,
                MmaState<HeadDim> &state,
                const ScoreSink<Heads, EvictLast> &sink) {
  using Keys = KeyMap<T, HeadDim>;
  using Values = ValueMap<T, HeadDim>;
  // Sᵀ = K · Qᵀ: key vector i holds the columns of k-steps 2i and 2i + 1.
  float scores[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < Keys::kVectors; ++i) {
    uint4 key[2];
    chunk.keys(i, key);
#pragma unroll
    for (int u = 0; u < 2; ++u) {
      const int s = 2 * i + u;
      const uint32_t a[4] = {word(key[0], 2 * u), word(key[1], 2 * u),
                             word(key[0], 2 * u + 1), word(key[1], 2 * u + 1)};
      const uint2 b = query.step(s);
      mma16816<T>(scores, a, b.x, b.y);
    }
  }
  const bool lowValid = firstKey + r < endKey;
  const bool highValid = firstKey + r + 8 < endKey;
  // scores[0..1]: key r, heads 2c, 2c + 1; scores[2..3]: key r + 8.
  scores[0] = lowValid ? scores[0] * scaleLog2 : -INFINITY;
  scores[1] = lowValid ? scores[1] * scaleLog2 : -INFINITY;
  scores[2] = highValid ? scores[2] * scaleLog2 : -INFINITY;
  scores[3] = highValid ? scores[3] * scaleLog2 : -INFINITY;
  float probs[4];
  float scale[2];
  float chunkMax[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    chunkMax[h] = fmaxf(scores[h], scores[h + 2]);
    // Lanes with the same c hold the same heads: reduce over r.
#pragma unroll
    for (int offset = 4; offset < 32; offset *= 2)
      chunkMax[h] =
          fmaxf(chunkMax[h], __shfl_xor_sync(0xffffffffu, chunkMax[h], offset));
    const float newMax = fmaxf(state.max[h], chunkMax[h]);
    scale[h] = rescaleFactor(state.max[h], newMax);
    probs[h] = scores[h] == -INFINITY ? 0.0f : exp2f(scores[h] - newMax);
    probs[h + 2] =
        scores[h + 2] == -INFINITY ? 0.0f : exp2f(scores[h + 2] - newMax);
    state.sum[h] = state.sum[h] * scale[h] + probs[h] + probs[h + 2];
    state.max[h] = newMax;
  }
  if (sink.probs)
    storeScores(sink, scores, chunkMax, firstKey, r, c, lowValid, highValid);
#pragma unroll
  for (int t = 0; t < Values::kTiles; ++t) {
    state.acc[t][0] *= scale[0];
    state.acc[t][1] *= scale[1];
    state.acc[t][2] *= scale[0];
    state.acc[t][3] *= scale[1];
  }

  // Pᵀ operand: transpose the two 8x8 halves (keys 0-7, 8-15) of P.
  const uint32_t b0 = transpose8x8(pack<T>(probs[0], probs[1]));
  const uint32_t b1 = transpose8x8(pack<T>(probs[2], probs[3]));

  // Oᵀ += Vᵀ · Pᵀ: value vector j holds the words of m-tiles 4j .. 4j + 3.
  // Keys past the end may hold anything, NaN included (0 · NaN is NaN):
  // their values are zeroed.
  const bool partial = firstKey + kChunkKeys > endKey;
#pragma unroll
  for (int j = 0; j < Values::kVectors; ++j) {
    uint4 value[4];
    chunk.values(j, value);
    if (partial) {
#pragma unroll
      for (int q = 0; q < 4; ++q)
        if (firstKey + 2 * c + (q & 1) + 8 * (q >> 1) >= endKey)
          value[q] = make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int t = 4 * j + u;
      const uint32_t v0 = word(value[0], u), v1 = word(value[1], u);
      const uint32_t v8 = word(value[2], u), v9 = word(value[3], u);
      const uint32_t a[4] = {
          __byte_perm(v0, v1, 0x5410), __byte_perm(v0, v1, 0x7632),
          __byte_perm(v8, v9, 0x5410), __byte_perm(v8, v9, 0x7632)};
      mma16816<T>(state.acc[t], a, b0, b1);
    }
  }
}

/// Loads this lane's Qᵀ fragments: head r of the group (zero past the
/// group) at the elements KeyMap gives lane c, whose words w = 4 v .. 4 v +
/// 3 are one 16-byte run of the row: one vector load each
/// (kvrt_attention_launch refuses queries not aligned to 16 bytes).
template <typename T, int HeadDim, int GroupSize>
__device__ __forceinline__ void
loadQueryFragments(const T *group, int r, int c,
                   uint32_t (&query)[KeyMap<T, HeadDim>::kWords]) {
  using Keys = KeyMap<T, HeadDim>;
  static_assert(HeadDim * sizeof(T) % 16 == 0, "rows of whole vectors");
#pragma unroll
  for (int v = 0; v < Keys::kVectors; ++v) {
    uint4 words = make_uint4(0, 0, 0, 0);
    if (r < GroupSize)
      words = *reinterpret_cast<const uint4 *>(group + r * HeadDim +
                                               Keys::element(v, c));
    query[4 * v] = words.x;
    query[4 * v + 1] = words.y;
    query[4 * v + 2] = words.z;
    query[4 * v + 3] = words.w;
  }
}

/// Slices of finishDecode's output buffer: each of a 128-thread block's 4
/// warps gets its own, so that one barrier combines them (8.3 KiB at d128
/// for groups of 4, 16.5 KiB for groups of 8; a kernel that also has the
/// mma.sync prefill body then needs more than the default 48 KiB of shared
/// memory, which the runtime asks for: runtime/lib/SplitK.cu).
inline constexpr int kCombineSlices = 4;

/// Shared memory of one block of the tensor-core body.
template <int HeadDim, int GroupSize> struct MmaShared {
  static constexpr int kSlices = kCombineSlices;
  /// Rows of the slices, padded by one float so that a warp's stores hit
  /// at most two lanes per bank.
  static constexpr int kRow = HeadDim + 1;
  /// Warp w's rescaled outputs go to slice w % kSlices (in larger blocks
  /// warps w, w + kSlices, ... add into it in turn).
  float out[kSlices][GroupSize][kRow];
  /// Each warp's running maximum and (unscaled) sum per head.
  float warpMax[32][GroupSize];
  float warpSum[32][GroupSize];
  /// The block's maximum per head, and its sum rescaled to it.
  float headMax[GroupSize];
  float headSum[GroupSize];
};

/// The keys one decode block covers: the query token's visible keys
/// (causal or not) within split `split` of the row's pages.
struct DecodeSpan {
  /// First page of the split (an index into the row's page table).
  int beginPage;
  /// Keys [beginKey, endKey) of the row; beginKey = beginPage * PageSize.
  int beginKey;
  int endKey;
  /// 16-key chunks from beginKey, the last one possibly partial.
  int numChunks;
};

template <int PageSize, bool Causal>
__device__ __forceinline__ DecodeSpan decodeSpan(const kvrt_attention_params &p,
                                                 const PagedRow &row, int token,
                                                 int split) {
  int numKeys = Causal ? row.length - p.num_tokens + token + 1 : row.length;
  numKeys = max(0, min(numKeys, row.length));
  int beginPage = 0, endPage = (numKeys + PageSize - 1) / PageSize;
  if (p.num_splits > 1) {
    const int numPages = endPage;
    beginPage = min(numPages, split * p.pages_per_split);
    endPage = split == p.num_splits - 1
                  ? numPages
                  : min(numPages, beginPage + p.pages_per_split);
  }
  DecodeSpan span;
  span.beginPage = beginPage;
  span.beginKey = beginPage * PageSize;
  span.endKey = min(numKeys, endPage * PageSize);
  span.numChunks =
      max(0, (span.endKey - span.beginKey + kChunkKeys - 1) / kChunkKeys);
  return span;
}

/// A fresh online-softmax state.
template <int HeadDim>
__device__ __forceinline__ void resetState(MmaState<HeadDim> &state) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    state.max[h] = -INFINITY;
    state.sum[h] = 0.0f;
  }
#pragma unroll
  for (int t = 0; t < HeadDim / 16; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      state.acc[t][i] = 0.0f;
}

/// Lane (r, c)'s ScoreSink for a decode block of query heads firstHead ..
/// firstHead + Heads - 1 whose keys start at the row's key `beginKey` (a
/// whole number of pages, so of 16-key chunks).
template <int Heads, bool EvictLast>
__device__ __forceinline__ ScoreSink<Heads, EvictLast>
scoreSink(const kvrt_attention_params &p, int64_t firstHead, int beginKey,
          int r, int c) {
  ScoreSink<Heads, EvictLast> sink;
  if (p.key_scores) {
    // Query group firstHead / G starts at (firstHead / G) * stride * G.
    // Pages of the tensor-core body hold whole 16-key chunks (params.h's
    // C is 16).
    sink.probs = static_cast<__half *>(p.score_scratch) +
                 firstHead * p.score_stride + int64_t(beginKey + r) * Heads +
                 2 * c;
    sink.maxima = p.score_max + firstHead * (p.score_stride / kChunkKeys) +
                  int64_t(beginKey / kChunkKeys) * Heads + 2 * c;
    if constexpr (EvictLast) {
      sink.probs = evictLast(sink.probs);
      sink.maxima = evictLast(sink.maxima);
    }
  }
  return sink;
}

/// The block's MmaShared, in its dynamic shared memory (decodeSharedBytes,
/// attention.cuh).
template <int HeadDim, int GroupSize>
__device__ __forceinline__ MmaShared<HeadDim, GroupSize> &decodeShared() {
  return sharedState<MmaShared<HeadDim, GroupSize>>();
}

/// Combines the warps' states of one decode block (deterministic order)
/// and stores the normalized output, or the split's partial state.
template <typename T, int HeadDim, int GroupSize>
__device__ void
finishDecode(MmaState<HeadDim> &state, MmaShared<HeadDim, GroupSize> &shared,
             const kvrt_attention_params &p, int64_t firstHead, int split) {
  using Values = ValueMap<T, HeadDim>;
  constexpr int kHeads = GroupSize;
  const int warp = threadIdx.x / 32;
  const int numWarps = blockDim.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;
  const int c = lane % 4;

  // Each lane summed only its own keys: add up the lanes of each column.
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int offset = 4; offset < 32; offset *= 2)
      state.sum[h] += __shfl_xor_sync(0xffffffffu, state.sum[h], offset);

  // Publish each warp's maxima and sums; after one barrier every lane
  // rescales its outputs to the block's maxima, and warp 0 adds the warps'
  // sums, rescaled likewise, in warp order for the whole block.
  if (r == 0) {
#pragma unroll
    for (int h = 0; h < 2; ++h)
      if (2 * c + h < kHeads) {
        shared.warpMax[warp][2 * c + h] = state.max[h];
        shared.warpSum[warp][2 * c + h] = state.sum[h];
      }
  }
  __syncthreads();
  float scale[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int head = 2 * c + h;
    float blockMax = -INFINITY;
    if (head < kHeads)
      for (int w = 0; w < numWarps; ++w)
        blockMax = fmaxf(blockMax, shared.warpMax[w][head]);
    scale[h] = rescaleFactor(state.max[h], blockMax);
    if (warp == 0 && r == 0 && head < kHeads) {
      // (__fmul_rn: each warp's rescaled sum rounded before it is added.)
      float sum = 0.0f;
      for (int w = 0; w < numWarps; ++w)
        sum += __fmul_rn(shared.warpSum[w][head],
                         rescaleFactor(shared.warpMax[w][head], blockMax));
      shared.headMax[head] = blockMax;
      shared.headSum[head] = sum;
    }
  }
  // Each warp writes its rescaled outputs to its own slice: one barrier
  // for blocks of up to kSlices warps; the warps of larger blocks add
  // theirs in turns. (Two barriers per warp and every warp's outputs added
  // into one array took 5-6.5 µs of a block's end on the H200, four slices
  // 2.6; bench/results/decode_profile_h200.md.)
  using Shared = MmaShared<HeadDim, GroupSize>;
  constexpr int kSlices = Shared::kSlices;
  constexpr int kRow = Shared::kRow;
  auto store = [&](float *slice, bool add) {
#pragma unroll
    for (int t = 0; t < Values::kTiles; ++t) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int head = 2 * c + (i & 1);
        if (head >= kHeads)
          continue;
        const int d = Values::physical(2 * t + (i >> 1), r);
        const float value = state.acc[t][i] * scale[i & 1];
        float &out = slice[head * kRow + d];
        out = add ? out + value : value;
      }
    }
  };
  float *mine = &shared.out[warp % kSlices][0][0];
  if (warp < kSlices)
    store(mine, false);
  __syncthreads();
  for (int turn = 1; turn * kSlices < numWarps; ++turn) {
    if (warp / kSlices == turn)
      store(mine, true);
    __syncthreads();
  }
  const int slices = min(numWarps, kSlices);

  // Normalize and store: the final output, or the split's partial state.
  for (int i = threadIdx.x; i < kHeads * HeadDim; i += blockDim.x) {
    const int g = i / HeadDim;
    const int d = i % HeadDim;
    const float sum = shared.headSum[g];
    const float blockMax = shared.headMax[g];
    // The slices in warp order: for four warps the same sum, rounding
    // included, as adding the warps one after another.
    const float *column = &shared.out[0][g][d];
    constexpr int kSlice = GroupSize * kRow;
    float total = column[0];
#pragma unroll
    for (int k = 1; k < kSlices; ++k)
      if (k < slices)
        total += column[k * kSlice];
    const float value = sum > 0.0f ? total / sum : 0.0f;
    if (p.num_splits > 1) {
      const int64_t slot = (firstHead + g) * p.num_splits + split;
      p.partial_out[slot * HeadDim + d] = value;
      if (d == 0)
        p.partial_lse[slot] = sum > 0.0f ? blockMax + __log2f(sum) : -INFINITY;
    } else {
      static_cast<T *>(p.out)[(firstHead + g) * HeadDim + d] =
          fromFloat<T>(value);
      if (p.row_lse && d == 0)
        p.row_lse[firstHead + g] =
            sum > 0.0f ? blockMax + __log2f(sum) : -INFINITY;
    }
  }
}

} // namespace mma

/// pagedAttentionMmaBody's default Probe: no marks.
struct NoProbe {
  __device__ static void mark(int) {}
};

/// The tensor-core body; see the file comment. pagedAttention calls it
/// after checking the launch (launchMatches) and computes the same results.
/// `ChunksPerStep` chunks are loaded before the first of them is used (2
/// was no faster on the H200 than the default 1, bench/decode variants).
/// With `PrefetchNext`, the warp asks L2 for its next step's chunks while
/// it loads and computes this one (prefetch.global.L2: no registers); it
/// was 4-13% slower at every benchmark shape on the H200, so it is off.
/// BulkPrefetch, LoadMode, QueryInShared and DynamicSteps are benchmark
/// variants (bench/decode/bench_kernels.cu), off by default. (QueryInShared
/// at head_dim 256, where the fragments take 32 registers a lane: 168
/// registers and three 128-thread blocks per SM instead of 242 and two,
/// but 1.4-7% slower on the H200 (two runs),
/// bench/results/decode_d256_h200.md.) Probe::mark(i) is called by every lane
/// when its warp has folded its first chunk (i = 0) and when it has folded its
/// last (i = 1), for the benchmark's timeline. ScoresEvictLast: the
/// key-score hook's stores ask L2 to keep the values (ScoreSink); false
/// is a benchmark variant.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          int ChunksPerStep = 1, bool PrefetchNext = false,
          int BulkPrefetch = 0, int LoadMode = 0, bool QueryInShared = false,
          bool DynamicSteps = false, typename Probe = NoProbe,
          bool ScoresEvictLast = true>
__device__ void pagedAttentionMmaBody(const kvrt_attention_params &p,
                                      int64_t firstHead, int split) {
  static_assert(kMmaAttentionSupported<T, HeadDim, GroupSize, PageSize>,
                "no tensor-core body for these template values");
  static_assert(!(DynamicSteps && BulkPrefetch > 0),
                "BulkPrefetch looks steps ahead in the static order");
  static_assert(scoreChunkKeys(PageSize) == mma::kChunkKeys,
                "the key-score sink's chunks are the body's 16-key chunks");
  using namespace mma;
  using Keys = KeyMap<T, HeadDim>;
  using Values = ValueMap<T, HeadDim>;
  constexpr int kHeads = GroupSize;

  MmaShared<HeadDim, kHeads> &shared = decodeShared<HeadDim, kHeads>();

  const int kvHead = blockIdx.x;
  const int token = blockIdx.y % p.num_tokens;
  const int sequence = blockIdx.y / p.num_tokens;
  const int warp = threadIdx.x / 32;
  const int numWarps = blockDim.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;
  const int c = lane % 4;

  RegisterQuery<Keys::kWords> query;
  loadQueryFragments<T, HeadDim, GroupSize>(static_cast<const T *>(p.queries) +
                                                firstHead * HeadDim,
                                            r, c, query.words);
  const float scaleLog2 = p.scale * kLog2e;
  // QueryInShared: the fragments (the same in every warp) go to shared
  // memory once and are read per k-step, freeing 16 registers per lane.
  __shared__ uint2 sharedQuery[QueryInShared ? Keys::kSteps * 32 : 1];
  if constexpr (QueryInShared) {
    if (warp == 0)
#pragma unroll
      for (int s = 0; s < Keys::kSteps; ++s)
        sharedQuery[s * 32 + lane] = query.step(s);
    __syncthreads();
  }

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  const DecodeSpan span = decodeSpan<PageSize, Causal>(p, row, token, split);
  // The split's page ids (one pointer instead of the row's and an index).
  const int32_t *spanPages = row.pages + span.beginPage;
  // Keys are counted from the split's first (the sink is moved there):
  // chunk k covers keys 16 k .. 16 k + 15 of the split's spanKeys.
  const int spanKeys = span.endKey - span.beginKey;
  // Chunk k exists while 16 k < spanKeys (k < span.numChunks).
  auto inSpan = [&](int chunk) { return chunk * kChunkKeys < spanKeys; };
  constexpr int kChunksPerPage = PageSize / kChunkKeys;

  MmaState<HeadDim> state;
  resetState(state);

  // Chunk k of the split starts at its key 16 k; warp w takes steps
  // w, w + W, ... (with DynamicSteps: w, then the steps it claims), each of
  // ChunksPerStep consecutive chunks. The page ids
  // of the next step are read one step ahead, so their latency overlaps
  // this step's loads instead of preceding the next step's.
  const ScoreSink<kHeads, ScoresEvictLast> sink =
      scoreSink<kHeads, ScoresEvictLast>(p, firstHead, span.beginKey, r, c);
  auto pageIds = [&](int step, int32_t(&ids)[ChunksPerStep]) {
#pragma unroll
    for (int u = 0; u < ChunksPerStep; ++u) {
      const int chunk = step * ChunksPerStep + u;
      ids[u] = inSpan(chunk) ? spanPages[chunk / kChunksPerPage] : 0;
    }
  };
  // DynamicSteps: after its first step (its warp index), a warp claims the
  // block's next unclaimed step from a shared counter, one step ahead, so
  // warps whose loads come back late take fewer steps.
  __shared__ int stepCounter;
  if constexpr (DynamicSteps) {
    if (threadIdx.x == 0)
      stepCounter = numWarps;
    __syncthreads();
  }
  auto followingStep = [&](int step) {
    if constexpr (DynamicSteps) {
      int claimed = 0;
      if (lane == 0)
        claimed = atomicAdd(&stepCounter, 1);
      return __shfl_sync(0xffffffffu, claimed, 0);
    } else {
      return step + numWarps;
    }
  };
  int32_t ids[ChunksPerStep];
  pageIds(warp, ids);
  int step = warp;
  int nextStep = followingStep(step);
  bool firstStep = true;
#pragma unroll 1
  for (; inSpan(step * ChunksPerStep);
       step = nextStep, nextStep = followingStep(step)) {
    int32_t nextIds[ChunksPerStep];
    pageIds(nextStep, nextIds);
    if constexpr (PrefetchNext) {
      // The next step's K rows and V rows: two contiguous runs of
      // 16 * row bytes in its page, in 128-byte lines spread over lanes.
      using Layout = PageLayout<T, HeadDim, PageSize>;
      constexpr int kLines = int(kChunkKeys * Layout::kRowBytes / 128);
#pragma unroll
      for (int u = 0; u < ChunksPerStep; ++u) {
        const int chunk = nextStep * ChunksPerStep + u;
        if (inSpan(chunk)) {
          const char *base = row.pageAddress(nextIds[u]) +
                             (chunk % kChunksPerPage) * kChunkKeys *
                                 Layout::kRowBytes;
          for (int line = lane; line < 2 * kLines; line += 32) {
            const char *address =
                base + (line < kLines ? 0 : Layout::kValueOffset) +
                (line % kLines) * 128;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
            asm volatile("prefetch.global.L2 [%0];\n" ::"l"(address));
#endif
          }
        }
      }
    }
    ChunkRegisters<T, HeadDim> regs[ChunksPerStep];
#pragma unroll
    for (int u = 0; u < ChunksPerStep; ++u) {
      const int chunk = step * ChunksPerStep + u;
      if (inSpan(chunk))
        loadChunk<T, HeadDim, PageSize, LoadMode>(
            row.pageAddress(ids[u]), (chunk % kChunksPerPage) * kChunkKeys, r,
            c, regs[u]);
    }
    if constexpr (BulkPrefetch > 0) {
      // Lane 0 asks the TMA unit to bring the chunk BulkPrefetch steps
      // ahead (its K run and V run) into L2.
      using Layout = PageLayout<T, HeadDim, PageSize>;
      constexpr uint32_t kRun = uint32_t(kChunkKeys * Layout::kRowBytes);
      const int ahead = step + BulkPrefetch * numWarps;
      if (lane == 0 && inSpan(ahead * ChunksPerStep)) {
        const int chunk = ahead * ChunksPerStep;
        const int32_t id =
            BulkPrefetch == 1 ? nextIds[0] : spanPages[chunk / kChunksPerPage];
        const char *page = row.pageAddress(id);
        const int slot = (chunk % kChunksPerPage) * kChunkKeys;
        prefetchBulkL2(Layout::key(page, slot), kRun);
        prefetchBulkL2(Layout::value(page, slot), kRun);
      }
    }
#pragma unroll
    for (int u = 0; u < ChunksPerStep; ++u) {
      const int chunk = step * ChunksPerStep + u;
      if (inSpan(chunk)) {
        if constexpr (QueryInShared)
          accumulateChunk<T, HeadDim>(regs[u], SharedQuery{sharedQuery + lane},
                                      scaleLog2, chunk * kChunkKeys, spanKeys,
                                      r, c, state, sink);
        else
          accumulateChunk<T, HeadDim>(regs[u], query, scaleLog2,
                                      chunk * kChunkKeys, spanKeys, r, c, state,
                                      sink);
      }
    }
#pragma unroll
    for (int u = 0; u < ChunksPerStep; ++u)
      ids[u] = nextIds[u];
    if (firstStep)
      Probe::mark(0);
    firstStep = false;
  }
  Probe::mark(1);

  finishDecode<T, HeadDim, GroupSize>(state, shared, p, firstHead, split);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_MMA_CUH
