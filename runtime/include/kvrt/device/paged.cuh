//===- paged.cuh - Reading K/V rows from paged caches ----------*- CUDA -*-===//
//
// Addressing of kvrt pages (keys [page_size, head_dim], then values) and the
// split of one K/V row across the lanes of a warp: a row is cut into 16-byte
// vectors; a "key group" of LanesPerKey lanes covers the whole row, each lane
// loading VecsPerLane vectors, and a warp holds 32 / LanesPerKey key groups
// that work on different keys at once. Lane l of a group owns vectors
// l, l + LanesPerKey, ..., so a group's loads of one vector index are
// contiguous in memory.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_PAGED_CUH
#define KVRT_DEVICE_PAGED_CUH

#include "kvrt/device/element.cuh"
#include "kvrt/device/params.h"

#include <cstdint>

namespace kvrt::device {

/// How the lanes of a warp share the rows of element type T and HeadDim.
template <typename T, int HeadDim> struct RowSplit {
  static constexpr int kVecElems = kvrt::device::kVecElems<T>;
  static_assert(HeadDim > 0 && HeadDim % kVecElems == 0,
                "head_dim must be a multiple of one 16-byte vector");
  static constexpr int kVecsPerRow = HeadDim / kVecElems;
  static_assert(kVecsPerRow >= 32 ? kVecsPerRow % 32 == 0
                                  : (kVecsPerRow & (kVecsPerRow - 1)) == 0,
                "head_dim / (16 / sizeof(T)) must be a power of two below 32 "
                "or a multiple of 32 (e.g. head_dim 64, 128, 256)");
  static constexpr int kLanesPerKey = kVecsPerRow < 32 ? kVecsPerRow : 32;
  static constexpr int kVecsPerLane = kVecsPerRow / kLanesPerKey;
  static constexpr int kElemsPerLane = kVecsPerLane * kVecElems;
  static constexpr int kKeysPerWarp = 32 / kLanesPerKey;

  /// First element of vector `vec` (0..kVecsPerLane) of lane `laneInKey`.
  __device__ static constexpr int elementOffset(int vec, int laneInKey) {
    return (vec * kLanesPerKey + laneInKey) * kVecElems;
  }

  /// Loads this lane's kElemsPerLane elements of `row` as floats.
  __device__ static void loadSlice(const T *row, int laneInKey, float *out) {
#pragma unroll
    for (int vec = 0; vec < kVecsPerLane; ++vec)
      loadVector(row + elementOffset(vec, laneInKey), out + vec * kVecElems);
  }
};

/// Byte layout of one page for a compile-time head_dim and page_size.
template <typename T, int HeadDim, int PageSize> struct PageLayout {
  static_assert(PageSize > 0 && (PageSize & (PageSize - 1)) == 0,
                "page size must be a power of two");
  static constexpr int64_t kRowBytes = int64_t(HeadDim) * sizeof(T);
  static constexpr int64_t kValueOffset = PageSize * kRowBytes;

  /// Key row of slot `slot` (0..PageSize) of `page`.
  __device__ static const T *key(const char *page, int slot) {
    return reinterpret_cast<const T *>(page + slot * kRowBytes);
  }
  /// Value row of slot `slot` of `page`.
  __device__ static const T *value(const char *page, int slot) {
    return reinterpret_cast<const T *>(page + kValueOffset + slot * kRowBytes);
  }
};

/// The page table of one (sequence, kv head) row of a launch.
struct PagedRow {
  const char *poolBase;
  int64_t pageBytes;
  /// Page ids in token order.
  const int32_t *pages;
  /// Tokens the row holds.
  int length;

  /// Address of the row's `index`-th page; reads the page table once.
  __device__ const char *page(int index) const {
    return pageAddress(pages[index]);
  }
  /// Address of pool page `id`, for callers that staged the id themselves.
  __device__ const char *pageAddress(int32_t id) const {
    return poolBase + static_cast<int64_t>(id) * pageBytes;
  }
};

/// Tokens row `row` = batch * num_kv_heads + kv head of `p` holds, from its
/// inline table or the device table (params.h).
__device__ inline int rowLength(const kvrt_attention_params &p, int row) {
  return p.inline_rows > 0 ? p.inline_lens[row] : p.kv_lens[row];
}

/// Page table of row `row` = batch * num_kv_heads + kv head of `p`.
__device__ inline PagedRow pagedRow(const kvrt_attention_params &p, int row) {
  PagedRow result;
  result.poolBase = static_cast<const char *>(p.pool_base);
  result.pageBytes = p.page_bytes;
  if (p.inline_rows > 0) {
    result.pages = p.page_indices + p.inline_starts[row];
    result.length = p.inline_lens[row];
  } else {
    result.pages = p.page_indices + p.page_indptr[row];
    result.length = p.kv_lens[row];
  }
  return result;
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_PAGED_CUH
