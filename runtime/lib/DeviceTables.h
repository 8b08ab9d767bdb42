//===- DeviceTables.h - Device-resident page tables -------------*- C++ -*-===//
//
// Kernels read a batch's page tables in the CSR form of
// kvrt_attention_params (row r = b * num_kv_heads + h). Rebuilding and
// uploading every page id of the batch at every step would cost
// O(tokens / page_size) host work and bus traffic per step; instead each
// CUDA cache keeps a device "arena" holding a region of page ids per
// (sequence, head), and per launch only
//   - the page-table entries that changed since they were last mirrored
//     (usually none, or one new page per head every page_size steps), and
//   - for batches of more than KVRT_INLINE_ROWS rows, the batch's lengths
//     and region offsets (O(batch x heads); smaller batches carry them in
//     the kernel's arguments)
// travel to the device, where a scatter kernel applies the changes (when
// there are any). Kernels then read each row's page ids in place, from its
// arena region: the launch's page_indices is the arena and page_indptr[r]
// row r's region offset (kvrt/device/params.h allows any start offsets).
//
// The host keeps an exact copy of the arena (the shadow), so syncing is
// pure host bookkeeping (planDeviceTables, testable without a GPU) followed
// by at most one upload and, on steps that change the arena, one small
// kernel (getDeviceTables).
//
// Locking: a cache's mirror and scratch buffer are guarded by its
// deviceMutex; planDeviceTables also reads the batch's page tables, so the
// caller holds those sequences' locks too.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_DEVICETABLES_H
#define KVRT_LIB_DEVICETABLES_H

#include "kvrt/device/params.h"
#include "kvrt/kvrt.h"

#include <cstdint>
#include <mutex>
#include <vector>

namespace kvrt {

struct HeadTable;
class SequenceLocks;

/// Host-side bookkeeping of one cache's device arena of page-table regions.
/// A region is a power-of-two number of int32 slots holding one head's page
/// ids in token order; it moves to a larger region when the head outgrows
/// it and returns to a free list when the head's state is released.
class DeviceMirror {
public:
  DeviceMirror() = default;
  DeviceMirror(const DeviceMirror &) = delete;
  DeviceMirror &operator=(const DeviceMirror &) = delete;
  /// Frees the device arena.
  ~DeviceMirror();

  /// Makes the shadow hold the first `count` page ids of `head` in its
  /// region (allocating or growing the region as needed) and records every
  /// entry it changes for the next upload. May throw std::bad_alloc; the
  /// mirror stays consistent (what was recorded stays recorded).
  void sync(HeadTable &head, int64_t count);
  /// Returns the head's region to the free lists. Never throws.
  void releaseRegion(HeadTable &head) noexcept;

  /// The arena as the device will hold it after the next upload.
  std::vector<int32_t> shadow;
  /// Offsets into `shadow` written since the last upload.
  std::vector<int32_t> dirty;
  /// freeRegions[c]: offsets of free regions of 2^c slots.
  std::vector<std::vector<int32_t>> freeRegions;

  /// Device copy of the shadow (CUDA caches only) and its size in slots.
  void *arena = nullptr;
  int64_t arenaSlots = 0;
  int device = 0;
  /// The device arena is missing or may differ from the shadow beyond
  /// `dirty` (never uploaded, or an upload failed): upload it whole.
  bool stale = true;
};

/// What getDeviceTables uploads for one batch.
struct TablePlan {
  int64_t rows = 0;
  /// Page ids the batch's rows hold.
  int64_t totalPages = 0;
  /// Arena entries to write before the launch: (offset, value) pairs.
  int64_t numUpdates = 0;
  /// The arena must be uploaded whole (the updates are then part of it),
  /// after growing it to at least `shadow.size()` slots when it is smaller.
  bool uploadArena = false;
  /// indptr[rows + 1] (host bookkeeping, not uploaded), kv_lens[rows],
  /// region offsets[rows], then the numUpdates pairs.
  std::vector<int32_t> upload;
};

/// Syncs the mirror for rows b * num_kv_heads + h of the batch (sequences
/// already locked, in batch order, in `sequences`) and fills `plan`. The
/// caller holds the cache's deviceMutex.
void planDeviceTables(const kvrt_cache *cache, const SequenceLocks &sequences,
                      TablePlan &plan);

/// A batch's tables in the form of kvrt_attention_params, rows = batch *
/// num_kv_heads: page_indices (the arena) and, per row, its length and
/// start offset (its arena region). Batches of at most KVRT_INLINE_ROWS
/// rows carry those inline (host arrays for the launch's arguments, nothing
/// uploaded); larger ones as device arrays kv_lens[rows] and
/// page_indptr[rows] in the cache's scratch buffer.
struct DeviceTablesView {
  const int32_t *pageIndices = nullptr;
  /// Device arrays (null for inline tables).
  const int32_t *pageIndptr = nullptr;
  const int32_t *kvLens = nullptr;
  /// Inline tables: rows (0 without) and host arrays of that many lengths
  /// and start offsets, valid while the view lives.
  int32_t inlineRows = 0;
  const int32_t *inlineLens = nullptr;
  const int32_t *inlineStarts = nullptr;
  /// Fills the tables' fields of `params`.
  void fill(kvrt_attention_params &params) const;

  /// Holds the cache's deviceMutex: the tables live in the cache's scratch
  /// buffer and arena, which the next batch would overwrite. Keep the view
  /// until the kernel reading them is queued, then mark the scratch in use
  /// (also when the launch failed: it may have queued something).
  std::unique_lock<std::mutex> lock;
  /// Backs the inline arrays.
  TablePlan plan;
};

/// Brings the device tables of the batch whose sequences `sequences` holds
/// locked (validated, of `cache`, a CUDA cache) up to date on `stream` and
/// returns
/// them. They stay valid until the next call that mutates one of these
/// sequences or launches another batch on this cache. Uploads only what
/// the device lacks: with inline tables and no page-table change since the
/// last launch, nothing (no copy; a wait for the last use of the cache's
/// scratch buffer and arena only when that was on another stream).
kvrt_status getDeviceTables(const kvrt_cache *cache,
                            const SequenceLocks &sequences, void *stream,
                            DeviceTablesView *out, const char *function);

} // namespace kvrt

#endif // KVRT_LIB_DEVICETABLES_H
