//===- Cache.cpp - Caches, their descriptors and statistics -----*- C++ -*-===//
//
// A cache is one layer's K/V storage inside a pool. It owns nothing but page
// tables (kept in the sequences' records): the memory belongs to the pool,
// which also owns the cache object.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"
#include "Error.h"
#include "Handles.h"
#include "PageFormat.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <vector>

namespace {

/// Checks a [num_kv_heads] capacity array against the descriptor.
kvrt_status checkCapacities(const kvrt_cache_desc &desc,
                            const int64_t *capacities, const char *fn) {
  for (int32_t h = 0; h < desc.num_kv_heads; ++h)
    if (capacities[h] < 1 || capacities[h] > desc.capacity)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: head_capacities[%d] = %lld is not in [1, %lld] "
                        "(desc.capacity)",
                        fn, h, static_cast<long long>(capacities[h]),
                        static_cast<long long>(desc.capacity));
  return KVRT_OK;
}

/// The shared body of both create functions (arguments not yet checked
/// beyond null pointers).
kvrt_status createCache(kvrt_pool *pool, const kvrt_cache_desc &desc,
                        const kvrt_page_format *format,
                        const int64_t *headCapacities, kvrt_cache **out,
                        const char *fn) {
  KVRT_RETURN_IF_ERROR(kvrt::validateDesc(desc, fn));
  kvrt_page_layout layout;
  KVRT_RETURN_IF_ERROR(kvrt::computeLayout(desc, format, layout, fn));
  if (layout.page_bytes > pool->pageBytes) {
    if (kvrt::isQuantized(layout))
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: a page of this cache needs %lld bytes, more than "
                        "the pool's page size of %lld bytes",
                        fn, static_cast<long long>(layout.page_bytes),
                        static_cast<long long>(pool->pageBytes));
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: a page of this cache needs %lld bytes (2 x %d "
                      "tokens x %d dims x %zu bytes), more than the pool's "
                      "page size of %lld bytes",
                      fn, static_cast<long long>(layout.page_bytes),
                      desc.page_size, desc.head_dim,
                      kvrt_dtype_size(desc.dtype),
                      static_cast<long long>(pool->pageBytes));
  }
  if (headCapacities)
    KVRT_RETURN_IF_ERROR(checkCapacities(desc, headCapacities, fn));

  auto cache = std::make_unique<kvrt_cache>();
  cache->pool = pool;
  cache->desc = desc;
  cache->layout = layout;
  cache->mirror.device = pool->cudaDevice;
  cache->scratch.setDevice(pool->cudaDevice);
  const int64_t rowBytes = int64_t(desc.head_dim) * 2;
  if (pool->device == KVRT_DEVICE_CUDA && !kvrt::isQuantized(layout) &&
      (desc.dtype == KVRT_DTYPE_F16 || desc.dtype == KVRT_DTYPE_BF16) &&
      layout.key_offset == 0 && layout.key_row_bytes == rowBytes &&
      layout.value_offset == desc.page_size * rowBytes &&
      layout.value_row_bytes == rowBytes)
    cache->tensorMap.create({pool->base, pool->numPages, pool->pageBytes,
                             desc.head_dim, desc.page_size},
                            pool->cudaDevice);
  cache->headCapacities.resize(static_cast<size_t>(desc.num_kv_heads));
  for (int32_t h = 0; h < desc.num_kv_heads; ++h)
    cache->headCapacities[h] = static_cast<int32_t>(
        headCapacities ? headCapacities[h] : desc.capacity);

  std::unique_lock<std::shared_mutex> structure(pool->structureMutex);
  auto freeSlot = std::find(pool->caches.begin(), pool->caches.end(), nullptr);
  cache->slot = static_cast<int32_t>(freeSlot - pool->caches.begin());
  if (freeSlot == pool->caches.end())
    pool->caches.push_back(nullptr);
  kvrt::registerCache(cache.get());
  pool->caches[cache->slot] = cache.get();
  *out = cache.release();
  return KVRT_OK;
}

} // namespace

bool kvrt_cache::quantized() const { return kvrt::isQuantized(layout); }

void kvrt_cache::dropPages(const int32_t *pageIds, int64_t count) {
  pagesHeld -= pool->pages.release(pageIds, count);
}

kvrt::CacheSequence *kvrt_cache::state(kvrt::Sequence &sequence,
                                       bool create) const {
  const size_t index = static_cast<size_t>(slot);
  if (sequence.caches.size() <= index) {
    if (!create)
      return nullptr;
    sequence.caches.resize(index + 1);
  }
  kvrt::CacheSequence &cacheState = sequence.caches[index];
  if (!cacheState.active()) {
    if (!create)
      return nullptr;
    cacheState.heads.resize(headCapacities.size());
    for (size_t h = 0; h < headCapacities.size(); ++h)
      cacheState.heads[h].capacity = headCapacities[h];
  }
  return &cacheState;
}

const kvrt::CacheSequence *
kvrt_cache::state(const kvrt::Sequence &sequence) const {
  const size_t index = static_cast<size_t>(slot);
  if (sequence.caches.size() <= index || !sequence.caches[index].active())
    return nullptr;
  return &sequence.caches[index];
}

namespace {

/// Whether the heads' pages, head after head, are already in ascending id
/// order (a sequence appended at once: one run a head).
bool headsAscending(const std::vector<kvrt::HeadTable> &heads) {
  int32_t last = -1;
  for (const kvrt::HeadTable &head : heads)
    for (int32_t page : head.pages) {
      if (page <= last)
        return false;
      last = page;
    }
  return true;
}

/// Every page of `heads` in ascending id order into `out`, or false where
/// the scratch does not fit in memory or a page appears twice. A bitmap
/// over the pages' id range instead of a comparison sort: a decode-grown
/// sequence's pages are mostly runs of one, and sorting them cost ten times
/// what returning them does (bench/allocator, SequenceDestroy).
bool ascendingPages(const std::vector<kvrt::HeadTable> &heads,
                    std::vector<int32_t> &out) {
  size_t total = 0;
  int32_t low = std::numeric_limits<int32_t>::max(), high = -1;
  for (const kvrt::HeadTable &head : heads)
    for (int32_t page : head.pages) {
      low = std::min(low, page);
      high = std::max(high, page);
      ++total;
    }
  if (total == 0)
    return true;
  std::vector<uint64_t> bits;
  try {
    bits.assign(static_cast<size_t>(high - low) / 64 + 1, 0);
    out.reserve(total);
  } catch (const std::bad_alloc &) {
    return false;
  }
  for (const kvrt::HeadTable &head : heads)
    for (int32_t page : head.pages) {
      const size_t offset = static_cast<size_t>(page - low);
      const uint64_t bit = uint64_t(1) << (offset % 64);
      if (bits[offset / 64] & bit)
        return false;
      bits[offset / 64] |= bit;
    }
  for (size_t word = 0; word < bits.size(); ++word)
    for (uint64_t set = bits[word]; set != 0; set &= set - 1)
      out.push_back(low + static_cast<int32_t>(word * 64) +
                    __builtin_ctzll(set));
  return true;
}

} // namespace

void kvrt_cache::release(kvrt::Sequence &sequence) {
  const size_t index = static_cast<size_t>(slot);
  if (sequence.caches.size() <= index)
    return;
  kvrt::CacheSequence &cacheState = sequence.caches[index];
  bool mirrored = false;
  for (const kvrt::HeadTable &head : cacheState.heads)
    mirrored = mirrored || head.mirrorOffset >= 0;
  // Every head's pages at once in ascending id order: the free list hands
  // them out in that order, so what was consecutive in the pool comes
  // back as runs, whichever heads and appends took it. Head by head in
  // token order, a decode-grown sequence's pages (taken a step at a time,
  // between other sequences') come back interleaved, and after a few
  // generations of sequences a row's pages lie almost nowhere side by
  // side (bench/results/decode_churn/).
  std::vector<int32_t> all;
  if (pool->sortedRelease && headsAscending(cacheState.heads)) {
    // Each release goes on top: the last head first, so that the first
    // head's pages are taken first.
    for (auto head = cacheState.heads.rbegin();
         head != cacheState.heads.rend(); ++head)
      dropPages(head->pages.data(), static_cast<int64_t>(head->pages.size()));
  } else if (pool->sortedRelease && ascendingPages(cacheState.heads, all)) {
    dropPages(all.data(), static_cast<int64_t>(all.size()));
  } else {
    for (kvrt::HeadTable &head : cacheState.heads)
      dropPages(head.pages.data(), static_cast<int64_t>(head.pages.size()));
  }
  if (mirrored) {
    std::lock_guard<std::mutex> lock(deviceMutex);
    for (kvrt::HeadTable &head : cacheState.heads)
      mirror.releaseRegion(head);
  }
  cacheState = kvrt::CacheSequence();
}

int64_t kvrt::sequenceLength(const kvrt_cache *cache,
                             const Sequence &sequence) {
  const CacheSequence *cacheState = cache->state(sequence);
  return cacheState ? cacheState->nextPosition : 0;
}

void kvrt::collectCacheStats(const kvrt_cache &cache, kvrt_cache_stats &out) {
  const int64_t pageSize = cache.desc.page_size;
  kvrt_cache_stats stats{};
  int64_t tableEntries = 0;
  for (Sequence *sequence : cache.pool->allSequences()) {
    const CacheSequence *cacheState = cache.state(*sequence);
    if (!sequence->live || !cacheState)
      continue;
    bool holds = false;
    for (const HeadTable &head : cacheState->heads) {
      const int64_t held = static_cast<int64_t>(head.pages.size());
      stats.page_refs += held;
      stats.reserved_pages += held - pagesFor(head.length, pageSize);
      stats.partial_pages += head.length % pageSize != 0;
      stats.tokens += head.length;
      tableEntries += held + static_cast<int64_t>(head.positions.size());
      holds = holds || held > 0;
    }
    stats.sequences += holds;
  }
  int64_t mirrorSlots;
  {
    std::lock_guard<std::mutex> lock(cache.deviceMutex);
    mirrorSlots = static_cast<int64_t>(cache.mirror.shadow.size()) +
                  cache.mirror.arenaSlots;
  }
  stats.pages = cache.pagesHeld;
  // Every extra reference is to a full shared page (the sharing invariant),
  // whose tokens were counted once per holder.
  const int64_t distinctTokens =
      stats.tokens - pageSize * (stats.page_refs - stats.pages);
  stats.bytes_held = stats.pages * cache.pool->pageBytes;
  stats.bytes_used = distinctTokens * cache.layout.token_bytes;
  stats.waste_bytes = stats.bytes_held - stats.bytes_used;
  stats.table_bytes =
      (tableEntries + mirrorSlots) * static_cast<int64_t>(sizeof(int32_t));
  out = stats;
}

extern "C" int64_t kvrt_cache_page_bytes(const kvrt_cache_desc *desc) {
  // 0 flags a descriptor that has no meaningful page size (null, a bad
  // dtype, a non-positive size, or a product beyond int64).
  if (!desc || desc->page_size <= 0 || desc->head_dim <= 0)
    return 0;
  size_t elementSize = kvrt::elementSize(desc->dtype);
  if (elementSize == 0)
    return 0;
  unsigned __int128 bytes = static_cast<unsigned __int128>(2) *
                            static_cast<unsigned>(desc->page_size) *
                            static_cast<unsigned>(desc->head_dim) * elementSize;
  if (bytes >
      static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
    return 0;
  return static_cast<int64_t>(bytes);
}

extern "C" kvrt_status kvrt_cache_create(kvrt_pool *pool,
                                         const kvrt_cache_desc *desc,
                                         kvrt_cache **out) {
  const char *fn = "kvrt_cache_create";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(desc, fn, "desc"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    return createCache(pool, *desc, nullptr, nullptr, out, fn);
  });
}

extern "C" kvrt_status
kvrt_cache_create_with_config(kvrt_pool *pool, const kvrt_cache_config *config,
                              kvrt_cache **out) {
  const char *fn = "kvrt_cache_create_with_config";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(config, fn, "config"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    return createCache(pool, config->desc, config->format,
                       config->head_capacities, out, fn);
  });
}

extern "C" kvrt_status kvrt_cache_destroy(kvrt_cache *cache) {
  const char *fn = "kvrt_cache_destroy";
  if (!cache)
    return KVRT_OK;
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    kvrt_pool *pool = cache->pool;
    std::unique_lock<std::shared_mutex> structure(pool->structureMutex);
    for (kvrt::Sequence *sequence : pool->allSequences()) {
      std::lock_guard<std::mutex> lock(sequence->mutex);
      cache->release(*sequence);
    }
    pool->caches[cache->slot] = nullptr;
    kvrt::unregisterHandle(cache);
    delete cache;
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_get_desc(const kvrt_cache *cache,
                                           kvrt_cache_desc *out) {
  const char *fn = "kvrt_cache_get_desc";
  KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  *out = cache->desc;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_cache_get_layout(const kvrt_cache *cache,
                                             kvrt_page_layout *out) {
  const char *fn = "kvrt_cache_get_layout";
  KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  *out = cache->layout;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_cache_sequence_length(const kvrt_cache *cache,
                                                  int32_t id, int64_t *out) {
  const char *fn = "kvrt_cache_sequence_length";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    *out = kvrt::sequenceLength(cache, locks[0]);
    return KVRT_OK;
  });
}

extern "C" kvrt_status
kvrt_cache_set_capacities(kvrt_cache *cache, int32_t id,
                          const int64_t *head_capacities) {
  const char *fn = "kvrt_cache_set_capacities";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(
        kvrt::checkNotNull(head_capacities, fn, "head_capacities"));
    KVRT_RETURN_IF_ERROR(checkCapacities(cache->desc, head_capacities, fn));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    kvrt::CacheSequence *cacheState = cache->state(locks[0], true);
    for (size_t h = 0; h < cacheState->heads.size(); ++h)
      if (cacheState->heads[h].length > head_capacities[h])
        return kvrt::fail(KVRT_ERROR_CAPACITY,
                          "%s: head %zu of sequence %d holds %d tokens, more "
                          "than the new capacity %lld (evict or select "
                          "first)",
                          fn, h, id, cacheState->heads[h].length,
                          static_cast<long long>(head_capacities[h]));
    for (size_t h = 0; h < cacheState->heads.size(); ++h)
      cacheState->heads[h].capacity = static_cast<int32_t>(head_capacities[h]);
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_get_heads(const kvrt_cache *cache, int32_t id,
                                            int64_t *lengths,
                                            int64_t *capacities) {
  const char *fn = "kvrt_cache_get_heads";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    const kvrt::CacheSequence *cacheState = cache->state(locks[0]);
    for (int32_t h = 0; h < cache->desc.num_kv_heads; ++h) {
      if (lengths)
        lengths[h] = cacheState ? cacheState->heads[h].length : 0;
      if (capacities)
        capacities[h] = cacheState ? cacheState->heads[h].capacity
                                   : cache->headCapacities[h];
    }
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_get_stats(const kvrt_cache *cache,
                                            kvrt_cache_stats *out) {
  const char *fn = "kvrt_cache_get_stats";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    std::shared_lock<std::shared_mutex> structure(cache->pool->structureMutex);
    auto locks = kvrt::lockAllSequences(*cache->pool);
    kvrt::collectCacheStats(*cache, *out);
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_check(const kvrt_cache *cache,
                                        kvrt_device device,
                                        int32_t num_kv_heads, int32_t head_dim,
                                        kvrt_dtype dtype, int32_t page_size,
                                        int64_t capacity) {
  const char *fn = "kvrt_cache_check";
  KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
  const kvrt_cache_desc &desc = cache->desc;
  kvrt_device actualDevice = cache->pool->device;
  // Fields are compared in the order a reader checks a layout: where the
  // memory is, then its shape, then its paging.
  if (kvrt::rawEnum(actualDevice) != kvrt::rawEnum(device))
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache lives on %s, the program was compiled for %s",
                      fn, kvrt::deviceName(actualDevice),
                      kvrt::deviceName(device));
  if (desc.num_kv_heads != num_kv_heads)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has %d kv heads, the program was compiled "
                      "for %d",
                      fn, desc.num_kv_heads, num_kv_heads);
  if (desc.head_dim != head_dim)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has head_dim %d, the program was compiled "
                      "for %d",
                      fn, desc.head_dim, head_dim);
  if (kvrt::rawEnum(desc.dtype) != kvrt::rawEnum(dtype))
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has dtype %s, the program was compiled for "
                      "%s",
                      fn, kvrt::dtypeName(desc.dtype), kvrt::dtypeName(dtype));
  if (desc.page_size != page_size)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has page_size %d, the program was compiled "
                      "for %d",
                      fn, desc.page_size, page_size);
  if (desc.capacity != capacity)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has capacity %lld, the program was compiled "
                      "for %lld",
                      fn, static_cast<long long>(desc.capacity),
                      static_cast<long long>(capacity));
  if (cache->quantized())
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache stores quantized pages, the program was "
                      "compiled for unquantized K and V",
                      fn);
  return KVRT_OK;
}
