//===- attention_prefill_wgmma.cuh - Hopper paged prefill ------*- CUDA -*-===//
//
// The prefill body of kvrt::device::pagedAttention on sm_90a: the same
// launch, rows and results as pagedPrefillMmaBody (attention_prefill.cuh),
// with the two matrix products on Hopper's warpgroup MMA (wgmma.cuh).
//
// A block of 128 threads is one warpgroup and takes 64 token-major query
// rows (warp w: rows 16 w .. 16 w + 15). Q is copied once into swizzled
// shared memory; each 64-key tile of K and V is gathered from the pages by
// cp.async (K into one of two tiles, a tile ahead; V while S and the
// softmax run). Per key tile: S = Q·Kᵀ by HeadDim / 16 wgmma m64n64k16
// with both operands in shared memory; online softmax on the fp32
// accumulators (the scale folded into ex2, masks only where needed); then
// O += P·V by four wgmma m64nHeadDimk16 with P in registers (the
// accumulator layout is the A operand's) and V read MN-major from the same
// swizzled layout. The body needs prefillSharedBytes(HeadDim, true) bytes
// of dynamic shared memory (64 KiB + 1 KiB at head_dim 128), which the
// runtime passes on sm_90 (runtime/lib/SplitK.cu); three blocks share an
// SM, so the other blocks' MMAs overlap one block's softmax and copies.
// (Issuing S(kt) together with P·V(kt - 1) so the softmax overlaps the
// block's own P·V, with two V tiles and two blocks per SM, measured 13%
// slower on the H200; so did 128-key tiles (Keys = 128: m64n128k16 for S,
// half the rescales and barriers per key, 225 registers and 113 KiB of
// shared memory, two blocks per SM): 8-13% below 64-key tiles at three
// blocks, bench_prefill.py --variants.)
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_PREFILL_WGMMA_CUH
#define KVRT_DEVICE_ATTENTION_PREFILL_WGMMA_CUH

#include "kvrt/device/attention_prefill.cuh"
#include "kvrt/device/wgmma.cuh"

#include <cstdint>
#include <type_traits>

namespace kvrt::device {

namespace prefill {

/// The tile copies below split a `Keys`-key tile among the 4 warps of the
/// copying warpgroup (threads threadIdx.x % 128): warp w copies rows
/// [w Keys/4, (w + 1) Keys/4), each warp instruction 32 / kChunks whole
/// rows (16 lanes a 256-byte row at d128 fp16), so that a warp's rows lie
/// on Keys/4 / PageSize whole pages or inside one page and a lane looks up
/// no page but those. Where a page holds fewer rows than one instruction
/// (kWarpPageCopy false: pages of 1-2 tokens), each row's page is looked
/// up instead.
template <typename T, int HeadDim, int PageSize, int Keys>
inline constexpr bool kWarpPageCopy =
    PageSize % (32 / (HeadDim * int(sizeof(T)) / 16)) == 0;

/// Pages one warp's rows of a tile touch.
template <int PageSize, int Keys>
inline constexpr int kWarpTilePages =
    Keys / 4 > PageSize ? Keys / 4 / PageSize : 1;

/// Where each of this warp's pages of one `Keys`-key tile holds the warp's
/// first row on it (the pool's base past the row's length, so that the
/// copy's offsets from it stay inside the pool's first page): read once
/// per tile and used for its keys and values.
template <int PageSize, int Keys> struct TilePages {
  const char *page[kWarpTilePages<PageSize, Keys>];
};

/// This warp's pages of the tile whose first key (a multiple of Keys) is
/// `first`.
template <typename T, int HeadDim, int PageSize, int Keys>
__device__ __forceinline__ TilePages<PageSize, Keys>
tilePages(const PagedRow &row, int first, int length) {
  using Layout = PageLayout<T, HeadDim, PageSize>;
  TilePages<PageSize, Keys> result{};
  if constexpr (kWarpPageCopy<T, HeadDim, PageSize, Keys>) {
    const int warpFirst = first + (threadIdx.x % 128) / 32 * (Keys / 4);
#pragma unroll
    for (int i = 0; i < kWarpTilePages<PageSize, Keys>; ++i) {
      const int key = warpFirst + i * PageSize;
      result.page[i] =
          key < length ? row.pageAddress(__ldg(row.pages + key / PageSize)) +
                             (key % PageSize) * Layout::kRowBytes
                       : row.poolBase;
    }
  }
  return result;
}

/// Starts the copy of keys (`values` false) or values of the `Keys`-key
/// tile whose first key (a multiple of Keys) is `first` into the swizzled
/// tile at `tile` (see kWarpPageCopy for who copies what); keys at or past
/// `length` are zeros. Rows' sources are constant offsets from the warp's
/// pages (`pages`, from tilePages) and their destinations from one
/// address per swizzle phase, and tiles wholly below `length` copy without
/// per-row tests.
template <typename T, int HeadDim, int PageSize, int Keys>
__device__ __forceinline__ void
copySwizzledTile(const PagedRow &row, const TilePages<PageSize, Keys> &pages,
                 int first, int length, bool values, unsigned char *tile) {
  using Layout = PageLayout<T, HeadDim, PageSize>;
  constexpr int kChunks = HeadDim * int(sizeof(T)) / 16;
  constexpr int kStep = 32 / kChunks; // rows per warp instruction
  constexpr int kWarpRows = Keys / 4;
  // Rows 8 apart share the swizzle: kPhases destinations, then steps of
  // 8 rows.
  constexpr int kPhases = 8 / kStep;
  static_assert(kWarpRows % 8 == 0, "a warp must copy whole swizzle rows");
  static_assert(!kWarpPageCopy<T, HeadDim, PageSize, Keys> ||
                    kWarpRows % PageSize == 0 || PageSize % kWarpRows == 0,
                "a warp's rows must lie on whole pages or inside one");
  const int lane = threadIdx.x % 32;
  const int c = lane % kChunks;
  const int laneRow = lane / kChunks;
  const int warpRow = (threadIdx.x % 128) / 32 * kWarpRows;
  const int64_t offset = (values ? Layout::kValueOffset : 0) + 16 * c;
  uint32_t destination[kPhases];
#pragma unroll
  for (int p = 0; p < kPhases; ++p)
    destination[p] =
        sharedAddress(tile) +
        wgmma::swizzledOffset(Keys, warpRow + laneRow + kStep * p, c);
  auto target = [&](int u) {
    return destination[u % kPhases] + (u / kPhases) * 8 * wgmma::kRowBytes;
  };
  if constexpr (kWarpPageCopy<T, HeadDim, PageSize, Keys>) {
    const char *source[kWarpTilePages<PageSize, Keys>];
#pragma unroll
    for (int i = 0; i < kWarpTilePages<PageSize, Keys>; ++i)
      source[i] = pages.page[i] + offset + laneRow * Layout::kRowBytes;
    auto copyRows = [&](auto checked) {
#pragma unroll
      for (int u = 0; u < kWarpRows / kStep; ++u) {
        // Row laneRow + kStep u of the warp's, on its page i.
        constexpr int kPerPage = PageSize < kWarpRows ? PageSize : kWarpRows;
        const int i = kStep * u / kPerPage;
        const bool valid = !decltype(checked)::value ||
                           first + warpRow + laneRow + kStep * u < length;
        copyAsync16(target(u),
                    valid ? source[i] + (kStep * u - i * kPerPage) *
                                            Layout::kRowBytes
                          : row.poolBase,
                    valid);
      }
    };
    if (first + Keys <= length)
      copyRows(std::false_type());
    else
      copyRows(std::true_type());
  } else {
#pragma unroll
    for (int u = 0; u < kWarpRows / kStep; ++u) {
      const int key = first + warpRow + laneRow + kStep * u;
      const bool valid = key < length;
      copyAsync16(target(u),
                  tileRowSource<T, HeadDim, PageSize>(row, key, offset, valid),
                  valid);
    }
  }
}

/// P·V's A fragments from a tile's probabilities in S's accumulator layout
/// (which is the A operand's): 16 keys per fragment.
template <typename T, int Keys>
__device__ __forceinline__ void
packProbabilities(const float (&scores)[Keys / 8][4],
                  uint32_t (&probs)[Keys / 16][4]) {
#pragma unroll
  for (int kk = 0; kk < Keys / 16; ++kk) {
    probs[kk][0] = mma::pack<T>(scores[2 * kk][0], scores[2 * kk][1]);
    probs[kk][1] = mma::pack<T>(scores[2 * kk][2], scores[2 * kk][3]);
    probs[kk][2] = mma::pack<T>(scores[2 * kk + 1][0], scores[2 * kk + 1][1]);
    probs[kk][3] = mma::pack<T>(scores[2 * kk + 1][2], scores[2 * kk + 1][3]);
  }
}

/// Starts copying (cp.async, not committed) the kPrefillRows query rows of
/// `sequence`'s chunk from `firstRow` into `destination`, in the swizzled
/// K-major layout the wgmma bodies read; `thread` (of 128) copies its
/// 16-byte chunks. Rows past the chunk are zeros. A thread's rows lie
/// kRowsPerPass apart, a whole number of tokens (GroupSize divides it): the
/// same heads of tokens a fixed stride apart, so that the source address is
/// computed once (the per-row division and 64-bit multiplies took about 25
/// instructions per row).
template <typename T, int HeadDim, int GroupSize>
__device__ __forceinline__ void
copyQueryTile(const kvrt_attention_params &p, int sequence, int kvHead,
              int firstRow, int thread, unsigned char *destination) {
  constexpr int kChunks = HeadDim * int(sizeof(T)) / 16;
  constexpr int kRowsPerPass = 128 / kChunks;
  static_assert(kRowsPerPass % GroupSize == 0,
                "a pass covers whole tokens");
  const int rowsPerSequence = p.num_tokens * GroupSize;
  const int chunk = thread % kChunks;
  const int first = firstRow + thread / kChunks;
  const T *const queries = static_cast<const T *>(p.queries);
  const T *const source =
      queries + queryRowOffset<HeadDim, GroupSize>(p, sequence, kvHead, first) +
      chunk * (16 / int(sizeof(T)));
  const int64_t stride =
      int64_t(kRowsPerPass / GroupSize) * p.num_q_heads * HeadDim;
#pragma unroll
  for (int u = 0; u < kPrefillRows / kRowsPerPass; ++u) {
    const int local = thread / kChunks + u * kRowsPerPass;
    const bool valid = first + u * kRowsPerPass < rowsPerSequence;
    copyAsync16(destination + wgmma::swizzledOffset(kPrefillRows, local, chunk),
                valid ? source + u * stride : queries, valid);
  }
}

} // namespace prefill

/// The sm_90a prefill body; see the file comment. `shared` is the block's
/// dynamic shared memory, 1024-byte aligned, prefillWgmmaSharedBytes(HeadDim,
/// Keys) - wgmma::kAtomBytes bytes long. `Keys` keys (64 or 128) per K/V
/// tile.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          int Keys = kPrefillWgmmaKeys>
__device__ void pagedPrefillWgmmaBody(const kvrt_attention_params &p,
                                      unsigned char *shared) {
  static_assert(kPrefillSupported<T, HeadDim, GroupSize, PageSize>,
                "no prefill body for these template values");
  static_assert(Keys == 64 || Keys == 128, "Keys must be 64 or 128");
  using namespace prefill;
  constexpr int kKeys = Keys;
  constexpr int kKeyTiles = kKeys / 8;   // 8-column tiles of S
  constexpr int kDimTiles = HeadDim / 8; // 8-column tiles of O
  constexpr int kQueryBytes = kPrefillRows * HeadDim * int(sizeof(T));
  constexpr int kTileBytes = kKeys * HeadDim * int(sizeof(T));
  // Shared memory: Q, two K tiles (tile kt in kt % 2), one V tile.
  auto keyTile = [&](int kt) {
    return shared + kQueryBytes + (kt % 2) * kTileBytes;
  };
  unsigned char *const valueTile = shared + kQueryBytes + 2 * kTileBytes;

  const int kvHead = blockIdx.x;
  const int rowsPerSequence = p.num_tokens * GroupSize;
  const int tiles = (rowsPerSequence + kPrefillRows - 1) / kPrefillRows;
  const int sequence = blockIdx.y / tiles;
  // Heaviest causal tiles first (as in pagedPrefillMmaBody).
  const int tile =
      Causal ? tiles - 1 - int(blockIdx.y % tiles) : int(blockIdx.y % tiles);
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  const int length = row.length;

  // Q into shared memory (rows past the sequence's end are zeros).
  copyQueryTile<T, HeadDim, GroupSize>(p, sequence, kvHead, tile * kPrefillRows,
                                       threadIdx.x, shared);

  // This lane's two rows: warp rows r and r + 8.
  const WarpRows<Causal, GroupSize> rows(p, length, rowsPerSequence,
                                         tile * kPrefillRows + warp * 16, r);

  // Keys the block's rows can see.
  const int lastRow = min(rowsPerSequence, (tile + 1) * kPrefillRows) - 1;
  int keyEnd = length;
  if (Causal)
    keyEnd = min(length, length - p.num_tokens + lastRow / GroupSize + 1);
  keyEnd = max(0, keyEnd);
  const int numTiles = (keyEnd + kKeys - 1) / kKeys;
  const float scaleLog2 = p.scale * kLog2e;

  // Pages of tile kt (its keys were copied, its values are next).
  TilePages<PageSize, kKeys> pages;
  if (numTiles > 0) {
    pages = tilePages<T, HeadDim, PageSize, kKeys>(row, 0, keyEnd);
    copySwizzledTile<T, HeadDim, PageSize, kKeys>(row, pages, 0, keyEnd, false,
                                                  keyTile(0));
  }
  commitCopies();

  // K-major descriptors of Q and the K tiles advance 32 bytes per 16 dims
  // within a 64-dim column block; V's MN-major descriptor spans the column
  // blocks (leading = one block) and advances 16 rows per 16 keys.
  const uint64_t queryDesc =
      wgmma::descriptor(sharedAddress(shared), 16, wgmma::kAtomBytes);

  float acc[kDimTiles][4] = {};
  float(&accFlat)[HeadDim / 2] = reinterpret_cast<float(&)[HeadDim / 2]>(acc);
  RowSoftmax softmax;
  const uint64_t valueDesc = wgmma::descriptor(
      sharedAddress(valueTile), kKeys * wgmma::kRowBytes, wgmma::kAtomBytes);

  // Per key tile, two barriers: K(kt) is in and V's tile free -> issue
  // S(kt), then copy V(kt) and K(kt + 1) while S(kt) and its softmax run;
  // V(kt) is in -> P·V(kt).
#pragma unroll 1
  for (int kt = 0; kt < numTiles; ++kt) {
    const int first = kt * kKeys;
    waitCopies();
    wgmma::sharedProxyFence();
    // K(kt) is in for every thread; every warp finished P·V(kt - 1) and
    // S(kt - 1), so V(kt) and K(kt + 1) may refill their tiles.
    __syncthreads();

    // S = Q·Kᵀ: 64 rows x kKeys keys.
    float scores[kKeyTiles][4];
    float(&scoresFlat)[kKeys / 2] =
        reinterpret_cast<float(&)[kKeys / 2]>(scores);
    const uint64_t keyDesc =
        wgmma::descriptor(sharedAddress(keyTile(kt)), 16, wgmma::kAtomBytes);
    wgmma::fence();
#pragma unroll
    for (int s = 0; s < HeadDim / 16; ++s)
      wgmma::mmaShared<T, kKeys>(
          scoresFlat, wgmma::advance(queryDesc, wgmma::kStepOffset(kPrefillRows, s)),
          wgmma::advance(keyDesc, wgmma::kStepOffset(kKeys, s)), s > 0);
    wgmma::commit();
    // While the tensor cores compute S: copy V(kt) and K(kt + 1).
    copySwizzledTile<T, HeadDim, PageSize, kKeys>(row, pages, first, keyEnd,
                                                  true, valueTile);
    commitCopies();
    const bool prefetchKeys = kt + 1 < numTiles;
    if (prefetchKeys) {
      pages =
          tilePages<T, HeadDim, PageSize, kKeys>(row, first + kKeys, keyEnd);
      copySwizzledTile<T, HeadDim, PageSize, kKeys>(
          row, pages, first + kKeys, keyEnd, false, keyTile(kt + 1));
      commitCopies();
    }

    wgmma::wait<0>();
    wgmma::pin(scoresFlat);

    // Online softmax (masks only where a key may be invisible to one of
    // the warp's rows).
    softmax.update<Causal>(scores, acc, rows.needsMask(first, kKeys, keyEnd),
                           first, keyEnd, rows.valid, rows.position, scaleLog2,
                           kPrefillMaxSlack);
    uint32_t probs[kKeys / 16][4];
    packProbabilities<T, kKeys>(scores, probs);

    // O += P·V once V(kt) is in (K(kt + 1) may still be on its way).
    if (prefetchKeys)
      waitCopiesExceptNewest();
    else
      waitCopies();
    wgmma::sharedProxyFence();
    __syncthreads();
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
      wgmma::mmaRegisterA<T, HeadDim>(
          accFlat, probs[kk],
          wgmma::advance(valueDesc, kk * 16 * wgmma::kRowBytes));
    wgmma::commit();
    wgmma::wait<0>();
    wgmma::pin(accFlat);
  }
  waitCopies(); // Q's copy when there was no key tile

  T *outRow[2];
  rows.template outputs<T, HeadDim>(p, sequence, kvHead, outRow);
  softmax.store<T>(acc, outRow, rows.valid);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_PREFILL_WGMMA_CUH
