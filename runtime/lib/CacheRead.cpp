//===- CacheRead.cpp - Dense copies of a sequence's K/V ---------*- C++ -*-===//
//
// kvrt_cache_read gathers a sequence's paged keys and values into dense host
// arrays [length, kv_heads, head_dim], for tests and tools. Device pools are
// copied page by page through a host staging buffer: one transfer per page
// rather than one per token.
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
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(cache, fn, "cache"));
    KVRT_RETURN_IF_ERROR(kvrt::checkSequence(cache, id, fn));
    auto it = cache->sequences.find(id);
    if (it == cache->sequences.end() || (!keys && !values))
      return KVRT_OK;

    const kvrt_pool &pool = *cache->pool;
    const kvrt_cache_desc &desc = cache->desc;
    const int64_t rowBytes = cache->rowBytes;
    const int64_t numHeads = desc.num_kv_heads;
    const int64_t pageSize = desc.page_size;
    const int64_t valueOffset = pageSize * rowBytes;
    const int64_t cachePageBytes = 2 * valueOffset;
    const bool onDevice = pool.device == KVRT_DEVICE_CUDA;

    std::vector<char> staging;
    if (onDevice) {
      staging.resize(static_cast<size_t>(cachePageBytes));
      // Appends may still be running on a user stream that does not
      // synchronize with cudaMemcpy's legacy stream.
      KVRT_RETURN_IF_ERROR(cache->scratch.waitIdle(fn));
    }

    for (int64_t head = 0; head < numHeads; ++head) {
      const kvrt::HeadTable &table = it->second.heads[head];
      for (size_t pageIndex = 0; pageIndex < table.pages.size(); ++pageIndex) {
        int64_t first = static_cast<int64_t>(pageIndex) * pageSize;
        int64_t count = std::min(pageSize, table.length - first);
        if (count <= 0)
          break;
        const char *page = pool.pageAddress(table.pages[pageIndex]);
        if (onDevice) {
          KVRT_RETURN_IF_ERROR(kvrt::cuda::copyToHost(
              staging.data(), page, static_cast<size_t>(cachePageBytes),
              pool.cudaDevice, fn));
          page = staging.data();
        }
        for (int64_t slot = 0; slot < count; ++slot) {
          int64_t token = first + slot;
          int64_t offset = (token * numHeads + head) * rowBytes;
          if (keys)
            std::memcpy(static_cast<char *>(keys) + offset,
                        page + slot * rowBytes, rowBytes);
          if (values)
            std::memcpy(static_cast<char *>(values) + offset,
                        page + valueOffset + slot * rowBytes, rowBytes);
        }
      }
    }
    return KVRT_OK;
  });
}
