//===- TileRuns.h - Whether a batch's K/V tiles lie on page runs -*- C++ -*-===//
//
// The warp-specialized prefill body copies a whole 128-key K/V tile whose
// pages are consecutive in the pool as one tensor copy per 64 columns, and
// its other tiles a page at a time (attention_prefill_ws.cuh,
// prefillWsRunCopies). On pages of 16 tokens a page's tensor copy (2 KiB)
// is slower than the cp.async producer, so kvrt passes the cache's tensor
// maps on such pages only where most of the batch's tiles lie on runs
// (AttentionLaunch.cpp): this is that test, on the host's page tables.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_TILERUNS_H
#define KVRT_LIB_TILERUNS_H

#include <cstdint>
#include <vector>

namespace kvrt {

/// One (sequence, kv head) row's page table: ids in token order and the
/// tokens it holds.
struct RowPages {
  const int32_t *pages;
  int64_t length;
};

/// Most whole tiles mostTilesOnRuns looks at: evenly spread over the
/// batch's, so that the test costs a few microseconds however long the
/// rows.
inline constexpr int64_t kRunSampleTiles = 1024;

/// Whether at least three quarters of the rows' whole `tileKeys`-key tiles
/// (tile k of a row: its keys k tileKeys .. (k + 1) tileKeys - 1, on pages
/// of `pageSize` tokens, tileKeys a multiple of pageSize) lie on runs of
/// consecutive page ids (n, n + 1, ...), judged from kRunSampleTiles of
/// them at most. False where no row holds a whole tile.
bool mostTilesOnRuns(const std::vector<RowPages> &rows, int32_t pageSize,
                     int32_t tileKeys);

} // namespace kvrt

#endif // KVRT_LIB_TILERUNS_H
