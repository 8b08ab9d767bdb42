//===- AllocatorHelpers.h - Helpers of the allocator tests ------*- C++ -*-===//
//
// Readers of per-head state through the C API, a white-box checker of the
// allocator's invariants (it reads kvrt's internal structures), the device
// table emulation that checks planDeviceTables without a GPU, and a float64
// attention reference for heads of different lengths.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_UNITTESTS_ALLOCATORHELPERS_H
#define KVRT_UNITTESTS_ALLOCATORHELPERS_H

#include "DeviceTables.h"
#include "Handles.h"
#include "TestHelpers.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace kvrt::test {

/// Head lengths of sequence `id` in `cache`.
inline std::vector<int64_t> headLengths(const kvrt_cache *cache, int32_t id) {
  kvrt_cache_desc desc;
  EXPECT_EQ(kvrt_cache_get_desc(cache, &desc), KVRT_OK);
  std::vector<int64_t> lengths(static_cast<size_t>(desc.num_kv_heads), -1);
  EXPECT_EQ(kvrt_cache_get_heads(cache, id, lengths.data(), nullptr), KVRT_OK)
      << kvrt_last_error();
  return lengths;
}

/// Positions held by head `head` of sequence `id`.
inline std::vector<int32_t> headPositions(const kvrt_cache *cache, int32_t id,
                                          int32_t head) {
  int64_t length = headLengths(cache, id)[head];
  // One spare entry: it must stay untouched, and the array is never empty.
  std::vector<int32_t> positions(static_cast<size_t>(length) + 1, -1);
  EXPECT_EQ(kvrt_cache_read_positions(cache, id, head, positions.data()),
            KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(positions.back(), -1);
  positions.pop_back();
  return positions;
}

/// Keys (or values) of sequence `id` as rows per head: result[h][slot] is
/// the row's bytes.
using HeadRows = std::vector<std::vector<std::vector<unsigned char>>>;
inline HeadRows readHeads(const kvrt_cache *cache, int32_t id, bool values) {
  kvrt_cache_desc desc;
  EXPECT_EQ(kvrt_cache_get_desc(cache, &desc), KVRT_OK);
  int64_t length = -1;
  EXPECT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
  const size_t rowBytes = size_t(desc.head_dim) * kvrt_dtype_size(desc.dtype);
  std::vector<unsigned char> dense(size_t(length) * desc.num_kv_heads *
                                   rowBytes);
  EXPECT_EQ(kvrt_cache_read(cache, id, values ? nullptr : dense.data(),
                            values ? dense.data() : nullptr),
            KVRT_OK)
      << kvrt_last_error();
  std::vector<int64_t> lengths = headLengths(cache, id);
  HeadRows rows(static_cast<size_t>(desc.num_kv_heads));
  for (int h = 0; h < desc.num_kv_heads; ++h)
    for (int64_t t = 0; t < lengths[h]; ++t) {
      const unsigned char *row =
          dense.data() + (size_t(t) * desc.num_kv_heads + h) * rowBytes;
      rows[h].emplace_back(row, row + rowBytes);
    }
  return rows;
}

/// Free pages of a pool.
inline int64_t freePages(const kvrt_pool *pool) {
  kvrt_pool_stats stats;
  EXPECT_EQ(kvrt_pool_get_stats(pool, &stats), KVRT_OK);
  return stats.pages_free;
}

/// Stats of a cache.
inline kvrt_cache_stats cacheStats(const kvrt_cache *cache) {
  kvrt_cache_stats stats{};
  EXPECT_EQ(kvrt_cache_get_stats(cache, &stats), KVRT_OK) << kvrt_last_error();
  return stats;
}

/// The internal state of sequence `id` in `cache` (null when absent).
inline const CacheSequence *internalState(const kvrt_cache *cache, int32_t id) {
  const Sequence *sequence = cache->pool->findSequence(id);
  return sequence ? cache->state(*sequence) : nullptr;
}

/// Checks, with nothing else running on the pool, that
///  - every page a table references has a reference count equal to the
///    number of table entries naming it, belongs to one cache, and is not
///    free; pages no table names are free (no leak, no double ownership);
///  - each cache's pagesHeld is its number of distinct pages;
///  - a head holds at least the pages its length needs, its positions are
///    distinct and below the sequence's next position;
///  - a shared page is full in every table that references it;
///  - the statistics agree with the tables.
/// Reports failures through gtest; returns false on the first violation.
inline bool checkInvariants(const kvrt_pool *pool) {
  std::map<int32_t, int64_t> references;
  std::map<int32_t, const kvrt_cache *> owner;
  std::map<const kvrt_cache *, std::set<int32_t>> cachePages;
  for (const kvrt_cache *cache : pool->caches) {
    if (!cache)
      continue;
    const int64_t pageSize = cache->desc.page_size;
    for (const auto &record : pool->sequences) {
      const CacheSequence *state = cache->state(*record);
      if (!state)
        continue;
      if (!record->live) {
        ADD_FAILURE() << "a dead sequence holds state";
        return false;
      }
      for (size_t h = 0; h < state->heads.size(); ++h) {
        const HeadTable &head = state->heads[h];
        if (int64_t(head.pages.size()) < pagesFor(head.length, pageSize)) {
          ADD_FAILURE() << "head " << h << " lacks pages for its length";
          return false;
        }
        if (head.length > head.capacity || head.length > state->nextPosition) {
          ADD_FAILURE() << "head " << h << " length " << head.length
                        << " beyond capacity " << head.capacity
                        << " or positions " << state->nextPosition;
          return false;
        }
        if (!head.positions.empty() &&
            int64_t(head.positions.size()) != head.length) {
          ADD_FAILURE() << "positions and length differ";
          return false;
        }
        std::set<int32_t> seen;
        for (int32_t slot = 0; slot < head.length; ++slot) {
          int32_t position = head.positionOf(slot);
          if (position < 0 || position >= state->nextPosition ||
              !seen.insert(position).second) {
            ADD_FAILURE() << "bad or repeated position " << position;
            return false;
          }
        }
        for (size_t index = 0; index < head.pages.size(); ++index) {
          int32_t page = head.pages[index];
          ++references[page];
          auto inserted = owner.emplace(page, cache);
          if (!inserted.second && inserted.first->second != cache) {
            ADD_FAILURE() << "page " << page << " held by two caches";
            return false;
          }
          cachePages[cache].insert(page);
        }
      }
    }
  }
  for (const auto &entry : references) {
    int32_t count = pool->pages.refCount(entry.first);
    if (count != entry.second) {
      ADD_FAILURE() << "page " << entry.first << " has reference count "
                    << count << " but " << entry.second << " table entries";
      return false;
    }
  }
  if (pool->pages.freeCount() + int64_t(references.size()) != pool->numPages) {
    ADD_FAILURE() << pool->pages.freeCount() << " free + " << references.size()
                  << " referenced != " << pool->numPages
                  << " pages (leak or double free)";
    return false;
  }
  // Shared pages are full wherever they appear.
  for (const kvrt_cache *cache : pool->caches) {
    if (!cache)
      continue;
    const int64_t pageSize = cache->desc.page_size;
    for (const auto &record : pool->sequences) {
      const CacheSequence *state = cache->state(*record);
      if (!state)
        continue;
      for (const HeadTable &head : state->heads)
        for (size_t index = 0; index < head.pages.size(); ++index)
          if (references[head.pages[index]] > 1 &&
              int64_t(index + 1) * pageSize > head.length) {
            ADD_FAILURE() << "shared page " << head.pages[index]
                          << " is not full in a table";
            return false;
          }
    }
    if (cache->pagesHeld != int64_t(cachePages[cache].size())) {
      ADD_FAILURE() << "pagesHeld " << cache->pagesHeld << " but "
                    << cachePages[cache].size() << " distinct pages";
      return false;
    }
    kvrt_cache_stats stats;
    collectCacheStats(*cache, stats);
    int64_t tokens = 0, refs = 0, partial = 0;
    for (const auto &record : pool->sequences) {
      const CacheSequence *state = cache->state(*record);
      if (!state)
        continue;
      for (const HeadTable &head : state->heads) {
        tokens += head.length;
        refs += int64_t(head.pages.size());
        partial += head.length % pageSize != 0;
      }
    }
    if (stats.pages != cache->pagesHeld || stats.tokens != tokens ||
        stats.page_refs != refs || stats.partial_pages != partial ||
        stats.waste_bytes != stats.bytes_held - stats.bytes_used ||
        stats.bytes_used < 0 || stats.waste_bytes < 0) {
      ADD_FAILURE() << "statistics disagree with the tables";
      return false;
    }
  }
  return true;
}

/// What a CUDA device would hold for one cache: the arena, maintained from
/// planDeviceTables's uploads exactly as getDeviceTables does.
struct EmulatedDevice {
  std::vector<int32_t> arena;

  /// Plans the tables of `ids` in `cache`, applies the upload to the
  /// emulated arena, reads each row's page ids from its arena region as
  /// attention kernels do and checks them against the page tables. Then records
  /// success in the mirror as getDeviceTables does.
  void launch(const kvrt_cache *cache, const std::vector<int32_t> &ids) {
    SequenceLocks locks;
    ASSERT_EQ(locks.lock(*cache->pool, ids.data(), int32_t(ids.size()), "test"),
              KVRT_OK);
    std::lock_guard<std::mutex> lock(cache->deviceMutex);
    DeviceMirror &mirror = cache->mirror;
    TablePlan plan;
    planDeviceTables(cache, locks, plan);
    const int64_t rows = plan.rows;
    ASSERT_EQ(rows, int64_t(ids.size()) * cache->desc.num_kv_heads);
    if (plan.uploadArena) {
      arena = mirror.shadow;
      mirror.arenaSlots =
          std::max<int64_t>(mirror.arenaSlots, int64_t(mirror.shadow.size()));
    } else {
      ASSERT_EQ(int64_t(plan.upload.size()),
                3 * rows + 1 + 2 * plan.numUpdates);
      for (int64_t i = 0; i < plan.numUpdates; ++i) {
        int32_t offset = plan.upload[3 * rows + 1 + 2 * i];
        ASSERT_LT(size_t(offset), arena.size());
        arena[offset] = plan.upload[3 * rows + 1 + 2 * i + 1];
      }
    }
    const int32_t *indptr = plan.upload.data();
    const int32_t *lengths = indptr + rows + 1;
    const int32_t *regions = lengths + rows;
    ASSERT_EQ(indptr[0], 0);
    ASSERT_EQ(indptr[rows], plan.totalPages);
    const int64_t pageSize = cache->desc.page_size;
    for (size_t b = 0; b < ids.size(); ++b) {
      const CacheSequence *state = cache->state(locks[b]);
      for (int32_t h = 0; h < cache->desc.num_kv_heads; ++h) {
        const int64_t row = int64_t(b) * cache->desc.num_kv_heads + h;
        const int64_t length = state ? state->heads[h].length : 0;
        ASSERT_EQ(lengths[row], length) << "row " << row;
        const int64_t count = indptr[row + 1] - indptr[row];
        ASSERT_EQ(count, pagesFor(length, pageSize)) << "row " << row;
        for (int64_t i = 0; i < count; ++i) {
          ASSERT_LT(size_t(regions[row] + i), arena.size());
          ASSERT_EQ(arena[regions[row] + i], state->heads[h].pages[i])
              << "row " << row << " page " << i;
        }
      }
    }
    mirror.dirty.clear();
    mirror.stale = false;
  }
};

/// Float64 attention over heads of different lengths, written from the
/// definition: head h of sequence b holds keys[b][h] (rows of head_dim);
/// causal query t of T sees its head's first length - T + t + 1 rows (none
/// below zero), else all; a query that sees nothing gives zeros.
/// queries/result: [batch, T, q_heads, head_dim].
inline std::vector<double>
perHeadReference(const std::vector<std::vector<std::vector<double>>> &keys,
                 const std::vector<std::vector<std::vector<double>>> &values,
                 const std::vector<double> &queries, int numTokens,
                 int numQHeads, int headDim, double scale, bool causal) {
  const int batch = int(keys.size());
  const int numKvHeads = int(keys[0].size());
  const int group = numQHeads / numKvHeads;
  std::vector<double> result(size_t(batch) * numTokens * numQHeads * headDim,
                             0.0);
  for (int b = 0; b < batch; ++b)
    for (int t = 0; t < numTokens; ++t)
      for (int qh = 0; qh < numQHeads; ++qh) {
        const int kh = qh / group;
        const int length = int(keys[b][kh].size()) / headDim;
        int visible = causal ? length - numTokens + t + 1 : length;
        visible = std::max(0, std::min(visible, length));
        const size_t base =
            ((size_t(b) * numTokens + t) * numQHeads + qh) * headDim;
        if (visible == 0)
          continue;
        std::vector<double> logits(static_cast<size_t>(visible));
        double maxLogit = -INFINITY;
        for (int k = 0; k < visible; ++k) {
          double dot = 0.0;
          for (int d = 0; d < headDim; ++d)
            dot += queries[base + d] * keys[b][kh][size_t(k) * headDim + d];
          logits[k] = dot * scale;
          maxLogit = std::max(maxLogit, logits[k]);
        }
        double denominator = 0.0;
        for (double &logit : logits) {
          logit = std::exp(logit - maxLogit);
          denominator += logit;
        }
        for (int d = 0; d < headDim; ++d) {
          double sum = 0.0;
          for (int k = 0; k < visible; ++k)
            sum += logits[k] * values[b][kh][size_t(k) * headDim + d];
          result[base + d] = sum / denominator;
        }
      }
  return result;
}

} // namespace kvrt::test

#endif // KVRT_UNITTESTS_ALLOCATORHELPERS_H
