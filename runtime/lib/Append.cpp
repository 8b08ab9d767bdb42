//===- Append.cpp - Appending tokens to paged caches ------------*- C++ -*-===//
//
// kvrt_append is all-or-nothing: every check runs and every page the batch
// needs is taken from the pool before any byte is copied or any length
// changes, so a failing call leaves the cache and the pool as they were.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "Handles.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

namespace {

/// Where one sequence of the batch stands before the append.
struct BatchEntry {
  kvrt::SequenceState *state;
  int64_t start; // length before the append
  /// Offset into the batch's fresh pages of head 0's new pages; head h's
  /// follow at firstFresh + h * freshPerHead.
  int64_t firstFresh;
  int64_t freshPerHead;
};

/// Pages needed to hold `tokens` tokens.
int64_t pagesFor(int64_t tokens, int64_t pageSize) {
  return (tokens + pageSize - 1) / pageSize;
}

/// Page holding logical page `index` of (entry, head): an existing page or
/// one of the batch's fresh pages.
int32_t pageOf(const BatchEntry &entry, int64_t head, int64_t index,
               const std::vector<int32_t> &fresh) {
  const std::vector<int32_t> &held = entry.state->heads[head].pages;
  int64_t heldCount = static_cast<int64_t>(held.size());
  if (index < heldCount)
    return held[index];
  return fresh[entry.firstFresh + head * entry.freshPerHead + index -
               heldCount];
}

/// Host pools: one memcpy per token, head and K/V.
void copyOnHost(const kvrt_cache &cache, const std::vector<BatchEntry> &batch,
                int64_t numTokens, const char *keys, const char *values,
                const std::vector<int32_t> &fresh) {
  const kvrt_pool &pool = *cache.pool;
  const int64_t numHeads = cache.desc.num_kv_heads;
  const int64_t pageSize = cache.desc.page_size;
  const int64_t rowBytes = cache.rowBytes;
  const int64_t valueOffset = pageSize * rowBytes;
  for (size_t b = 0; b < batch.size(); ++b) {
    for (int64_t t = 0; t < numTokens; ++t) {
      int64_t position = batch[b].start + t;
      int64_t slot = position & (pageSize - 1);
      for (int64_t h = 0; h < numHeads; ++h) {
        char *page =
            pool.pageAddress(pageOf(batch[b], h, position / pageSize, fresh));
        int64_t source =
            ((static_cast<int64_t>(b) * numTokens + t) * numHeads + h) *
            rowBytes;
        std::memcpy(page + slot * rowBytes, keys + source, rowBytes);
        std::memcpy(page + valueOffset + slot * rowBytes, values + source,
                    rowBytes);
      }
    }
  }
}

/// CUDA pools: upload the batch's page lists and run the append kernel.
kvrt_status copyOnDevice(const kvrt_cache &cache,
                         const std::vector<BatchEntry> &batch,
                         int32_t numTokens, const void *keys,
                         const void *values, const std::vector<int32_t> &fresh,
                         void *stream, const char *fn) {
  const int64_t numHeads = cache.desc.num_kv_heads;
  const int64_t pageSize = cache.desc.page_size;
  const int64_t batchSize = static_cast<int64_t>(batch.size());
  // The widest page span of any sequence sets the stride of the table.
  int64_t stride = 1;
  for (const BatchEntry &entry : batch) {
    int64_t first = entry.start / pageSize;
    int64_t last = (entry.start + numTokens - 1) / pageSize;
    stride = std::max(stride, last - first + 1);
  }
  // Layout: starts[batch], then pages[batch * heads * stride].
  std::vector<int32_t> table(
      static_cast<size_t>(batchSize + batchSize * numHeads * stride), 0);
  for (int64_t b = 0; b < batchSize; ++b) {
    const BatchEntry &entry = batch[b];
    table[b] = static_cast<int32_t>(entry.start);
    int64_t first = entry.start / pageSize;
    int64_t last = (entry.start + numTokens - 1) / pageSize;
    for (int64_t h = 0; h < numHeads; ++h)
      for (int64_t index = first; index <= last; ++index)
        table[batchSize + (b * numHeads + h) * stride + (index - first)] =
            pageOf(entry, h, index, fresh);
  }

  void *deviceTable = nullptr;
  const kvrt_pool &pool = *cache.pool;
  KVRT_RETURN_IF_ERROR(
      cache.scratch.upload(table.data(), table.size() * sizeof(int32_t),
                           pool.cudaDevice, stream, &deviceTable, fn));
  const int32_t *starts = static_cast<const int32_t *>(deviceTable);

  kvrt::cuda::AppendLaunch launch{};
  launch.keys = keys;
  launch.values = values;
  launch.poolBase = pool.base;
  launch.pageBytes = pool.pageBytes;
  launch.rowBytes = cache.rowBytes;
  launch.valueOffset = pageSize * cache.rowBytes;
  launch.batch = static_cast<int32_t>(batchSize);
  launch.numTokens = numTokens;
  launch.numHeads = static_cast<int32_t>(numHeads);
  launch.pageSize = static_cast<int32_t>(pageSize);
  launch.starts = starts;
  launch.pages = starts + batchSize;
  launch.pageStride = static_cast<int32_t>(stride);
  KVRT_RETURN_IF_ERROR(
      kvrt::cuda::launchAppend(launch, pool.cudaDevice, stream, fn));
  return cache.scratch.markInUse(stream, fn);
}

} // namespace

extern "C" kvrt_status kvrt_append(kvrt_cache *cache, int32_t batch,
                                   const int32_t *seq_ids, int32_t num_tokens,
                                   const void *keys, const void *values,
                                   void *stream) {
  const char *fn = "kvrt_append";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(cache, fn, "cache"));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(batch, fn, "batch"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(seq_ids, fn, "seq_ids"));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(num_tokens, fn, "num_tokens"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(keys, fn, "keys"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(values, fn, "values"));

    kvrt_pool &pool = *cache->pool;
    const kvrt_cache_desc &desc = cache->desc;
    const int64_t pageSize = desc.page_size;
    const int64_t numHeads = desc.num_kv_heads;

    // Validate ids, uniqueness and capacity before touching anything.
    std::unordered_map<int32_t, int32_t> firstIndex;
    firstIndex.reserve(static_cast<size_t>(batch));
    for (int32_t b = 0; b < batch; ++b) {
      int32_t id = seq_ids[b];
      KVRT_RETURN_IF_ERROR(kvrt::checkSequence(cache, id, fn));
      auto inserted = firstIndex.emplace(id, b);
      if (!inserted.second)
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: seq_ids[%d] and seq_ids[%d] are both sequence "
                          "%d; a batch may append to a sequence only once",
                          fn, inserted.first->second, b, id);
      int64_t after = kvrt::sequenceLength(cache, id) + num_tokens;
      if (after > desc.capacity)
        return kvrt::fail(KVRT_ERROR_CAPACITY,
                          "%s: sequence %d would hold %lld tokens, beyond the "
                          "cache's capacity of %lld",
                          fn, id, static_cast<long long>(after),
                          static_cast<long long>(desc.capacity));
    }

    // Count the pages the whole batch needs.
    std::vector<BatchEntry> entries(static_cast<size_t>(batch));
    int64_t freshTotal = 0;
    for (int32_t b = 0; b < batch; ++b) {
      int64_t start = kvrt::sequenceLength(cache, seq_ids[b]);
      auto it = cache->sequences.find(seq_ids[b]);
      int64_t held =
          it == cache->sequences.end() || it->second.heads.empty()
              ? 0
              : static_cast<int64_t>(it->second.heads.front().pages.size());
      int64_t perHead =
          std::max<int64_t>(0, pagesFor(start + num_tokens, pageSize) - held);
      entries[b] = BatchEntry{nullptr, start, freshTotal, perHead};
      freshTotal += perHead * numHeads;
    }
    if (freshTotal > pool.freePageCount())
      return kvrt::fail(KVRT_ERROR_OUT_OF_MEMORY,
                        "%s: the batch needs %lld pages, %lld free in the pool",
                        fn, static_cast<long long>(freshTotal),
                        static_cast<long long>(pool.freePageCount()));

    // Allocate all bookkeeping now; until the commit below nothing a caller
    // can observe changes (an empty entry reads as length 0).
    for (int32_t b = 0; b < batch; ++b) {
      kvrt::SequenceState &state = cache->sequences[seq_ids[b]];
      if (state.heads.empty())
        state.heads.resize(static_cast<size_t>(numHeads));
      for (kvrt::HeadTable &head : state.heads)
        head.pages.reserve(head.pages.size() + entries[b].freshPerHead);
      entries[b].state = &state;
    }
    std::vector<int32_t> fresh;
    fresh.reserve(static_cast<size_t>(freshTotal));
    pool.takePages(freshTotal, fresh);

    if (pool.device == KVRT_DEVICE_HOST) {
      copyOnHost(*cache, entries, num_tokens, static_cast<const char *>(keys),
                 static_cast<const char *>(values), fresh);
    } else {
      // The pages go back to the pool on every failure, thrown or returned.
      kvrt_status status;
      try {
        status = copyOnDevice(*cache, entries, num_tokens, keys, values, fresh,
                              stream, fn);
      } catch (...) {
        pool.returnPages(fresh);
        throw;
      }
      if (status != KVRT_OK) {
        pool.returnPages(fresh);
        return status;
      }
    }

    // Commit: cannot throw, capacity was reserved above.
    for (const BatchEntry &entry : entries) {
      for (int64_t h = 0; h < numHeads; ++h) {
        kvrt::HeadTable &head = entry.state->heads[h];
        auto begin = fresh.begin() + entry.firstFresh + h * entry.freshPerHead;
        head.pages.insert(head.pages.end(), begin, begin + entry.freshPerHead);
        head.length = entry.start + num_tokens;
      }
    }
    return KVRT_OK;
  });
}
