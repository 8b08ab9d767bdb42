//===- CacheRead.cpp - Dense copies of a sequence's K/V ---------*- C++ -*-===//
//
// kvrt_cache_read gathers a sequence's paged keys and values into dense host
// arrays [length, kv_heads, head_dim], for tests and tools; each head fills
// its own length of rows. Device pools are copied page by page through a
// host staging buffer: one transfer per page rather than one per token.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "Handles.h"

#include <algorithm>
#include <cstring>
#include <vector>

extern "C" kvrt_status kvrt_cache_read(const kvrt_cache *cache, int32_t id,
                                       void *keys, void *values) {
  const char *fn = "kvrt_cache_read";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    if (cache->quantized())
      return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                        "%s: the cache stores quantized pages; only "
                        "unquantized K and V can be read back",
                        fn);
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    const kvrt::CacheSequence *state = cache->state(locks[0]);
    if (!state || (!keys && !values))
      return KVRT_OK;

    const kvrt_pool &pool = *cache->pool;
    const kvrt_page_layout &layout = cache->layout;
    const int64_t rowBytes = layout.key_row_bytes;
    const int64_t numHeads = cache->desc.num_kv_heads;
    const int64_t pageSize = cache->desc.page_size;
    const bool onDevice = pool.device == KVRT_DEVICE_CUDA;

    std::vector<char> staging;
    if (onDevice) {
      staging.resize(static_cast<size_t>(layout.page_bytes));
      // Writes may still be running on a user stream that does not
      // synchronize with cudaMemcpy's legacy stream.
      std::lock_guard<std::mutex> lock(cache->deviceMutex);
      KVRT_RETURN_IF_ERROR(cache->scratch.waitIdle(fn));
    }

    for (int64_t head = 0; head < numHeads; ++head) {
      const kvrt::HeadTable &table = state->heads[head];
      for (int64_t pageIndex = 0;
           pageIndex < kvrt::pagesFor(table.length, pageSize); ++pageIndex) {
        const int64_t first = pageIndex * pageSize;
        const int64_t count = std::min(pageSize, table.length - first);
        const char *page = pool.pageAddress(table.pages[pageIndex]);
        if (onDevice) {
          KVRT_RETURN_IF_ERROR(kvrt::cuda::copyToHost(
              staging.data(), page, staging.size(), pool.cudaDevice, fn));
          page = staging.data();
        }
        for (int64_t slot = 0; slot < count; ++slot) {
          const int64_t offset = ((first + slot) * numHeads + head) * rowBytes;
          if (keys)
            std::memcpy(static_cast<char *>(keys) + offset,
                        page + layout.key_offset + slot * rowBytes,
                        static_cast<size_t>(rowBytes));
          if (values)
            std::memcpy(static_cast<char *>(values) + offset,
                        page + layout.value_offset + slot * rowBytes,
                        static_cast<size_t>(rowBytes));
        }
      }
    }
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_read_positions(const kvrt_cache *cache,
                                                 int32_t id, int32_t head,
                                                 int32_t *positions) {
  const char *fn = "kvrt_cache_read_positions";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(positions, fn, "positions"));
    if (head < 0 || head >= cache->desc.num_kv_heads)
      return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE,
                        "%s: head %d is not in [0, %d)", fn, head,
                        cache->desc.num_kv_heads);
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    const kvrt::CacheSequence *state = cache->state(locks[0]);
    if (!state)
      return KVRT_OK;
    const kvrt::HeadTable &table = state->heads[head];
    for (int32_t slot = 0; slot < table.length; ++slot)
      positions[slot] = table.positionOf(slot);
    return KVRT_OK;
  });
}
