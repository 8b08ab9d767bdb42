//===- Handles.h - The objects behind kvrt's opaque handles -----*- C++ -*-===//
//
// Definitions of kvrt_pool and kvrt_cache and of the per-sequence state,
// shared by the files that implement the C API.
//
// Ownership: a pool owns its page memory, its caches and one Sequence
// record per id ever handed out (records are reused, never freed before the
// pool, so a pointer to one stays valid). A Sequence holds, per cache, one
// HeadTable per kv head.
//
// Locks, in the order they are taken (never the other way round):
//   1. kvrt_pool::structureMutex  shared by calls that walk the pool's caches;
//                                 exclusive for cache create and destroy
//   2. Sequence::mutex            the sequence's tables in every cache; a
//                                 call naming several takes them in id order
//   3. kvrt_cache::deviceMutex    a CUDA cache's scratch buffer and mirror
//   4. PageAllocator's mutex      the free list and reference counts
// kvrt_pool::sequenceMutex (the id registry) is a leaf: nothing else is
// taken while it is held.
//
// Sharing invariant: a page referenced more than once (after a fork) is
// full, identical in every table that holds it, and never written; a write
// to it copies it first. Hence appends, which write at or past a head's
// length, never need a copy.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_HANDLES_H
#define KVRT_LIB_HANDLES_H

#include "CudaBackend.h"
#include "DeviceTables.h"
#include "PageAllocator.h"
#include "kvrt/kvrt.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

namespace kvrt {

/// Page table, length and capacity of one kv head of one sequence in one
/// cache.
struct HeadTable {
  /// Page ids in slot order: slot s lives in pages[s / page_size]. Holds at
  /// least pagesFor(length) entries; any beyond are reserved pages.
  std::vector<int32_t> pages;
  /// Position of the token in each slot; empty while slot s holds position
  /// s (no eviction or selection yet), which costs no memory.
  std::vector<int32_t> positions;
  int32_t length = 0;
  int32_t capacity = 0;
  /// Region of the cache's device mirror (offset -1: none) and how many
  /// leading entries of `pages` it is known to hold.
  int32_t mirrorOffset = -1;
  int32_t mirrorSlots = 0;
  int32_t mirrorValid = 0;

  /// Position of the token in `slot` (< length).
  int32_t positionOf(int32_t slot) const {
    return positions.empty() ? slot : positions[slot];
  }
  /// Replaces page `index` (keeps the mirror's bookkeeping right).
  void setPage(size_t index, int32_t page) {
    pages[index] = page;
    mirrorValid = std::min(mirrorValid, static_cast<int32_t>(index));
  }
  /// Keeps the first `count` pages.
  void truncatePages(size_t count) {
    pages.resize(count);
    mirrorValid = std::min(mirrorValid, static_cast<int32_t>(count));
  }
};

/// What one cache stores for one sequence. `heads` is empty until the
/// sequence first touches the cache.
struct CacheSequence {
  std::vector<HeadTable> heads;
  /// Positions the sequence has in this cache (kvrt_cache_sequence_length).
  int64_t nextPosition = 0;
  /// True once the sequence touched the cache.
  bool active() const { return !heads.empty(); }
};

/// One sequence id's record.
struct Sequence {
  std::mutex mutex;
  bool live = false;
  /// Indexed by kvrt_cache::slot; shorter when later caches were never used.
  std::vector<CacheSequence> caches;
};

/// Pages needed for `tokens` tokens.
inline int64_t pagesFor(int64_t tokens, int64_t pageSize) {
  return (tokens + pageSize - 1) / pageSize;
}

/// Records a new pool or cache handle as live (may throw std::bad_alloc).
void registerPool(const kvrt_pool *pool);
void registerCache(const kvrt_cache *cache);
/// Forgets a handle (never throws).
void unregisterHandle(const void *handle);
/// Fail with KVRT_ERROR_INVALID_ARGUMENT for null and
/// KVRT_ERROR_INVALID_HANDLE for a handle that is not live.
kvrt_status checkPool(const kvrt_pool *pool, const char *function);
kvrt_status checkCache(const kvrt_cache *cache, const char *function);

} // namespace kvrt

struct kvrt_pool {
  kvrt_pool() = default;
  kvrt_pool(const kvrt_pool &) = delete;
  kvrt_pool &operator=(const kvrt_pool &) = delete;
  /// Destroys the caches created from the pool and frees its memory.
  ~kvrt_pool();

  kvrt_device device = KVRT_DEVICE_HOST;
  /// CUDA device ordinal the memory lives on (CUDA pools only).
  int cudaDevice = 0;
  int64_t pageBytes = 0;
  int64_t numPages = 0;
  /// The one allocation all pages are carved from.
  char *base = nullptr;
  kvrt::PageAllocator pages;
  /// Whether a destroyed sequence returns each cache's pages in ascending
  /// id order (kvrt_cache::release); false: head by head in token order,
  /// as before session 28 (KVRT_RELEASE_ORDER=heads at pool creation, a
  /// benchmarking knob).
  bool sortedRelease = true;

  /// Guards `caches` (see the lock order above).
  mutable std::shared_mutex structureMutex;
  /// Indexed by kvrt_cache::slot; null where a destroyed cache was.
  std::vector<kvrt_cache *> caches;

  /// Guards the id registry below.
  mutable std::mutex sequenceMutex;
  std::vector<std::unique_ptr<kvrt::Sequence>> sequences;
  /// Freed ids, reused oldest first so that a stale id stays invalid for as
  /// long as possible.
  std::deque<int32_t> freeSequenceIds;
  int64_t numSequences = 0;

  /// The record of id `id`, or null for an id never handed out. Live or
  /// not: check Sequence::live under its mutex.
  kvrt::Sequence *findSequence(int32_t id) const;
  /// Every record, for walks over all sequences.
  std::vector<kvrt::Sequence *> allSequences() const;
  char *pageAddress(int32_t page) const { return base + page * pageBytes; }
};

struct kvrt_cache {
  kvrt_pool *pool = nullptr;
  kvrt_cache_desc desc{};
  kvrt_page_layout layout{};
  /// Index into kvrt_pool::caches and Sequence::caches.
  int32_t slot = 0;
  /// Capacity of each head of a sequence that first touches the cache.
  std::vector<int32_t> headCapacities;
  /// Distinct pages the cache holds (changed only through takePages and
  /// dropPages).
  std::atomic<int64_t> pagesHeld{0};

  /// The cache's pages as a tensor map for sm_90's tensor copies (CUDA
  /// caches of fp16 or bf16 pages; params.h, kv_tensor_map), or none.
  /// Declared before `scratch`, so it outlives the last launch.
  kvrt::cuda::PageTensorMap tensorMap;

  /// Guards `mirror` and `scratch` (CUDA caches).
  mutable std::mutex deviceMutex;
  mutable kvrt::DeviceMirror mirror;
  /// Device buffer of index tables of CUDA launches. Declared after the
  /// mirror so it is destroyed first: its destructor waits for the last
  /// launch, which may read the mirror's arena.
  mutable kvrt::cuda::Scratch scratch;

  /// True when the page format stores K or V quantized.
  bool quantized() const;
  /// Takes `count` pages for this cache, or fails with
  /// KVRT_ERROR_OUT_OF_MEMORY ("<function>: <what> needs N pages, M free").
  kvrt_status takePages(int64_t count, int32_t *out, const char *what,
                        const char *function);
  /// Drops one reference to each page (pages whose last reference goes
  /// return to the pool). Never fails.
  void dropPages(const int32_t *pages, int64_t count);
  /// The state of `sequence` in this cache, created (empty, heads at their
  /// default capacities) when `create` is set; null when absent otherwise.
  /// The caller holds the sequence's lock. Creating may throw bad_alloc.
  kvrt::CacheSequence *state(kvrt::Sequence &sequence, bool create) const;
  /// The state of `sequence` in this cache, or null (lock held).
  const kvrt::CacheSequence *state(const kvrt::Sequence &sequence) const;
  /// Frees everything `sequence` holds in this cache (lock held): its pages
  /// return to the free list in ascending id order (pool->sortedRelease),
  /// so that the next allocations take its runs of consecutive pages
  /// whole. Never fails (head by head where the ordering's scratch does not
  /// fit in memory).
  void release(kvrt::Sequence &sequence);
};

namespace kvrt {

/// Locks the sequences of a batch (duplicates allowed) in id order and
/// unlocks them on destruction.
class SequenceLocks {
public:
  SequenceLocks() = default;
  SequenceLocks(const SequenceLocks &) = delete;
  SequenceLocks &operator=(const SequenceLocks &) = delete;
  ~SequenceLocks() { unlockAll(); }

  /// Locks `ids[0 .. count)`; fails with KVRT_ERROR_UNKNOWN_SEQUENCE (and
  /// holds nothing) when one is not live. May throw bad_alloc.
  kvrt_status lock(const kvrt_pool &pool, const int32_t *ids, int32_t count,
                   const char *function);
  /// The record of batch entry `index`.
  Sequence &operator[](size_t index) const { return *byIndex[index]; }
  size_t size() const { return byIndex.size(); }
  /// Unlocks everything now.
  void unlockAll();

private:
  std::vector<Sequence *> byIndex;
  /// Distinct records in lock order.
  std::vector<Sequence *> locked;
};

/// Fails with KVRT_ERROR_UNKNOWN_SEQUENCE naming `id`.
kvrt_status unknownSequence(int32_t id, const char *function);

/// Positions of `sequence` in `cache` (0 when it never touched it); the
/// caller holds its lock.
int64_t sequenceLength(const kvrt_cache *cache, const Sequence &sequence);

/// Locks every sequence record of `pool` (in id order), so that no page
/// changes hands until the locks go: every call that takes or drops pages
/// holds the locks of the sequences involved.
std::vector<std::unique_lock<std::mutex>>
lockAllSequences(const kvrt_pool &pool);

/// Computes the cache's statistics. The caller holds the pool's
/// structureMutex (shared) and every sequence's lock (lockAllSequences).
void collectCacheStats(const kvrt_cache &cache, kvrt_cache_stats &out);

} // namespace kvrt

#endif // KVRT_LIB_HANDLES_H
