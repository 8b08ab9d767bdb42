//===- Handles.h - The objects behind kvrt's opaque handles -----*- C++ -*-===//
//
// Definitions of kvrt_pool and kvrt_cache, shared by the files that implement
// the C API. Neither object is thread-safe: callers serialize all calls that
// touch one pool (and its caches).
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_HANDLES_H
#define KVRT_LIB_HANDLES_H

#include "CudaBackend.h"
#include "kvrt/kvrt.h"

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

namespace kvrt {

/// Page table and length of one kv head of one sequence in one cache.
struct HeadTable {
  /// Pool page ids in token order: token i lives in pages[i / page_size].
  std::vector<int32_t> pages;
  int64_t length = 0;
};

/// What a cache stores for one sequence. Lengths are uniform across heads
/// today, but tables are per head so that heads can diverge later.
struct SequenceState {
  std::vector<HeadTable> heads;
};

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

  /// Stack of free page ids: O(1) take and return.
  std::vector<int32_t> freePages;

  /// live[id] != 0 while sequence `id` exists.
  std::vector<uint8_t> liveSequences;
  /// Freed ids, reused oldest first so that a stale id stays invalid for as
  /// long as possible.
  std::deque<int32_t> freeSequenceIds;
  int64_t numSequences = 0;

  /// Caches created from this pool; the pool owns them.
  std::vector<kvrt_cache *> caches;

  bool isLiveSequence(int32_t id) const {
    return id >= 0 && static_cast<size_t>(id) < liveSequences.size() &&
           liveSequences[id] != 0;
  }
  int64_t freePageCount() const {
    return static_cast<int64_t>(freePages.size());
  }
  /// Moves `count` page ids (count <= freePageCount()) from the free list
  /// to `out`; `out` must have room reserved so this cannot throw.
  void takePages(int64_t count, std::vector<int32_t> &out);
  /// Returns page ids to the free list (never throws: the free list was
  /// reserved for every page at creation).
  void returnPages(const std::vector<int32_t> &pages);
  char *pageAddress(int32_t page) const { return base + page * pageBytes; }
};

struct kvrt_cache {
  kvrt_pool *pool = nullptr;
  kvrt_cache_desc desc{};
  /// Bytes of one row (one token of one head): head_dim * element size.
  int64_t rowBytes = 0;
  /// Sequences that were appended to; a live sequence absent here has
  /// length 0 in this cache.
  std::unordered_map<int32_t, kvrt::SequenceState> sequences;
  /// Device index tables of CUDA launches (unused for host pools).
  mutable kvrt::cuda::Scratch scratch;

  /// Returns the pages of sequence `id` to the pool and forgets it.
  void releaseSequence(int32_t id);
  /// Returns every page of every sequence to the pool.
  void releaseAll();
};

namespace kvrt {

/// Fails with KVRT_ERROR_UNKNOWN_SEQUENCE when `id` is not a live sequence of
/// the cache's pool.
kvrt_status checkSequence(const kvrt_cache *cache, int32_t id,
                          const char *function);

/// Tokens that live sequence `id` holds in `cache` (0 before any append).
int64_t sequenceLength(const kvrt_cache *cache, int32_t id);

} // namespace kvrt

#endif // KVRT_LIB_HANDLES_H
