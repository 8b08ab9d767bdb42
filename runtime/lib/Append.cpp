//===- Append.cpp - Appending, evicting writes and reservations -*- C++ -*-===//
//
// kvrt_append, kvrt_append_evict and kvrt_reserve are all-or-nothing:
// every check runs and every page the batch needs is taken from the pool
// before any byte is copied or any length changes (see Transfer.h), so a
// failing call leaves the caches and the pool as they were.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "Handles.h"
#include "Transfer.h"

#include <limits>
#include <numeric>
#include <unordered_map>

namespace {

constexpr int64_t kMaxPosition = std::numeric_limits<int32_t>::max();

/// Fails when a sequence appears twice in a batch that writes.
kvrt_status checkUnique(const int32_t *ids, int32_t batch, const char *fn) {
  std::unordered_map<int32_t, int32_t> firstIndex;
  firstIndex.reserve(static_cast<size_t>(batch));
  for (int32_t b = 0; b < batch; ++b) {
    auto inserted = firstIndex.emplace(ids[b], b);
    if (!inserted.second)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: seq_ids[%d] and seq_ids[%d] are both sequence "
                        "%d; a batch may write to a sequence only once",
                        fn, inserted.first->second, b, ids[b]);
  }
  return KVRT_OK;
}

/// Fails unless the cache stores unquantized K and V.
kvrt_status checkWritable(const kvrt_cache &cache, const char *fn) {
  if (!cache.quantized())
    return KVRT_OK;
  return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                    "%s: the cache stores quantized pages, which "
                    "quantize-on-append kernels write; this call writes "
                    "unquantized K and V",
                    fn);
}

/// The checks every batched write of K/V shares: handles, sizes and
/// pointers, an unquantized cache, and each sequence at most once.
kvrt_status checkBatchWrite(const kvrt_cache *cache, int32_t batch,
                            const int32_t *seqIds, const void *keys,
                            const void *values, const char *fn) {
  KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
  KVRT_RETURN_IF_ERROR(kvrt::checkPositive(batch, fn, "batch"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(seqIds, fn, "seq_ids"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(keys, fn, "keys"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(values, fn, "values"));
  KVRT_RETURN_IF_ERROR(checkWritable(*cache, fn));
  return checkUnique(seqIds, batch, fn);
}

/// Fails when head `h` of sequence `id` cannot grow to `after` tokens.
kvrt_status checkCapacity(const kvrt_cache &cache, int32_t id, int32_t h,
                          int64_t after, int64_t capacity, const char *fn) {
  if (after <= capacity)
    return KVRT_OK;
  if (capacity == cache.desc.capacity)
    return kvrt::fail(KVRT_ERROR_CAPACITY,
                      "%s: sequence %d would hold %lld tokens, beyond the "
                      "cache's capacity of %lld",
                      fn, id, static_cast<long long>(after),
                      static_cast<long long>(capacity));
  return kvrt::fail(KVRT_ERROR_CAPACITY,
                    "%s: head %d of sequence %d would hold %lld tokens, beyond "
                    "its capacity of %lld (evict instead)",
                    fn, h, id, static_cast<long long>(after),
                    static_cast<long long>(capacity));
}

/// Fails when `count` more positions would not fit in 32 bits.
kvrt_status checkPositions(int64_t next, int64_t count, int32_t id,
                           const char *fn) {
  if (next + count <= kMaxPosition)
    return KVRT_OK;
  return kvrt::fail(KVRT_ERROR_CAPACITY,
                    "%s: sequence %d would reach position %lld; positions "
                    "are 32-bit",
                    fn, id, static_cast<long long>(next + count));
}

/// Makes `head` list its positions explicitly (slot s held position s).
void materializePositions(kvrt::HeadTable &head) {
  if (!head.positions.empty())
    return;
  head.positions.resize(static_cast<size_t>(head.length));
  std::iota(head.positions.begin(), head.positions.end(), 0);
}

/// Prepares `head` to receive `extra` tokens from position `nextPosition`
/// on. Returns true when their positions must be stored: the head no
/// longer holds position s in slot s, or would not after the append. Then
/// the head's positions are explicit, with room for the new ones.
bool preparePositions(kvrt::HeadTable &head, int64_t nextPosition,
                      int64_t extra) {
  if (head.positions.empty() && head.length == nextPosition)
    return false;
  materializePositions(head);
  head.positions.reserve(head.positions.size() + static_cast<size_t>(extra));
  return true;
}

} // namespace

extern "C" kvrt_status kvrt_append(kvrt_cache *cache, int32_t batch,
                                   const int32_t *seq_ids, int32_t num_tokens,
                                   const void *keys, const void *values,
                                   void *stream) {
  const char *fn = "kvrt_append";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(
        checkBatchWrite(cache, batch, seq_ids, keys, values, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(num_tokens, fn, "num_tokens"));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, seq_ids, batch, fn));

    const int32_t numHeads = cache->desc.num_kv_heads;
    const int64_t pageSize = cache->desc.page_size;
    for (int32_t b = 0; b < batch; ++b) {
      const kvrt::CacheSequence *current = cache->state(locks[b]);
      KVRT_RETURN_IF_ERROR(checkPositions(current ? current->nextPosition : 0,
                                          num_tokens, seq_ids[b], fn));
      for (int32_t h = 0; h < numHeads; ++h) {
        int64_t length = current ? current->heads[h].length : 0;
        int64_t capacity =
            current ? current->heads[h].capacity : cache->headCapacities[h];
        KVRT_RETURN_IF_ERROR(checkCapacity(*cache, seq_ids[b], h,
                                           length + num_tokens, capacity, fn));
      }
    }

    // Plan: fresh pages per row (rows b * numHeads + h), in row order.
    std::vector<kvrt::CacheSequence *> states(static_cast<size_t>(batch));
    std::vector<int64_t> freshPerRow(static_cast<size_t>(batch) * numHeads);
    std::vector<uint8_t> storesPositions(freshPerRow.size());
    int64_t freshTotal = 0;
    int64_t stride = 1;
    for (int32_t b = 0; b < batch; ++b) {
      states[b] = cache->state(locks[b], true);
      for (int32_t h = 0; h < numHeads; ++h) {
        kvrt::HeadTable &head = states[b]->heads[h];
        const int64_t after = head.length + num_tokens;
        const int64_t need =
            std::max<int64_t>(0, kvrt::pagesFor(after, pageSize) -
                                     static_cast<int64_t>(head.pages.size()));
        head.pages.reserve(head.pages.size() + static_cast<size_t>(need));
        storesPositions[b * numHeads + h] =
            preparePositions(head, states[b]->nextPosition, num_tokens);
        freshPerRow[b * numHeads + h] = need;
        freshTotal += need;
        stride = std::max(stride,
                          (after - 1) / pageSize - head.length / pageSize + 1);
      }
    }
    kvrt::PageGrant grant;
    grant.want(cache, freshTotal);
    KVRT_RETURN_IF_ERROR(grant.take(*cache->pool, "the batch", fn));

    kvrt::RowWrites writes;
    writes.keys = keys;
    writes.values = values;
    writes.batch = batch;
    writes.numTokens = num_tokens;
    writes.numHeads = numHeads;
    writes.stride = static_cast<int32_t>(stride);
    writes.starts.resize(static_cast<size_t>(batch) * numHeads);
    writes.pages.assign(static_cast<size_t>(int64_t(batch) * numHeads * stride),
                        0);
    const int32_t *fresh = grant.pagesOf(0);
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < numHeads; ++h) {
        const kvrt::HeadTable &head = states[b]->heads[h];
        const int64_t row = b * numHeads + h;
        const int64_t first = head.length / pageSize;
        const int64_t last = (head.length + num_tokens - 1) / pageSize;
        const int64_t held = static_cast<int64_t>(head.pages.size());
        writes.starts[row] = head.length;
        for (int64_t index = first; index <= last; ++index)
          writes.pages[row * stride + index - first] =
              index < held ? head.pages[index] : fresh[index - held];
        fresh += freshPerRow[row];
      }
    KVRT_RETURN_IF_ERROR(kvrt::runWrites(*cache, writes, stream, fn));

    // Commit: cannot throw, every vector has its room reserved.
    grant.commit();
    fresh = grant.pagesOf(0);
    for (int32_t b = 0; b < batch; ++b) {
      kvrt::CacheSequence &state = *states[b];
      for (int32_t h = 0; h < numHeads; ++h) {
        kvrt::HeadTable &head = state.heads[h];
        const int64_t need = freshPerRow[b * numHeads + h];
        head.pages.insert(head.pages.end(), fresh, fresh + need);
        fresh += need;
        if (storesPositions[b * numHeads + h])
          for (int32_t t = 0; t < num_tokens; ++t)
            head.positions.push_back(
                static_cast<int32_t>(state.nextPosition + t));
        head.length += num_tokens;
      }
      state.nextPosition += num_tokens;
    }
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_append_evict(kvrt_cache *cache, int32_t batch,
                                         const int32_t *seq_ids,
                                         const void *keys, const void *values,
                                         const int32_t *slots, void *stream) {
  const char *fn = "kvrt_append_evict";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(
        checkBatchWrite(cache, batch, seq_ids, keys, values, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(slots, fn, "slots"));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, seq_ids, batch, fn));

    const int32_t numHeads = cache->desc.num_kv_heads;
    const int64_t pageSize = cache->desc.page_size;
    for (int32_t b = 0; b < batch; ++b) {
      const kvrt::CacheSequence *current = cache->state(locks[b]);
      KVRT_RETURN_IF_ERROR(checkPositions(current ? current->nextPosition : 0,
                                          1, seq_ids[b], fn));
      for (int32_t h = 0; h < numHeads; ++h) {
        const int64_t row = int64_t(b) * numHeads + h;
        const int32_t slot = slots[row];
        int64_t length = current ? current->heads[h].length : 0;
        if (slot < 0) {
          int64_t capacity =
              current ? current->heads[h].capacity : cache->headCapacities[h];
          KVRT_RETURN_IF_ERROR(
              checkCapacity(*cache, seq_ids[b], h, length + 1, capacity, fn));
        } else if (slot >= length) {
          return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE,
                            "%s: slots[%lld] = %d, but head %d of sequence %d "
                            "holds %lld tokens",
                            fn, static_cast<long long>(row), slot, h,
                            seq_ids[b], static_cast<long long>(length));
        }
      }
    }

    // Plan: one fresh page for a row that appends into a new page or
    // replaces a slot of a shared page (copy on write).
    std::vector<kvrt::CacheSequence *> states(static_cast<size_t>(batch));
    std::vector<uint8_t> takesFresh(static_cast<size_t>(batch) * numHeads, 0);
    std::vector<uint8_t> storesPositions(takesFresh.size(), 1);
    std::vector<int32_t> originals;
    int64_t freshTotal = 0;
    for (int32_t b = 0; b < batch; ++b) {
      states[b] = cache->state(locks[b], true);
      for (int32_t h = 0; h < numHeads; ++h) {
        const int64_t row = int64_t(b) * numHeads + h;
        kvrt::HeadTable &head = states[b]->heads[h];
        const int32_t slot = slots[row];
        if (slot < 0) {
          takesFresh[row] = kvrt::pagesFor(head.length + 1, pageSize) >
                            static_cast<int64_t>(head.pages.size());
          head.pages.reserve(head.pages.size() + takesFresh[row]);
          storesPositions[row] =
              preparePositions(head, states[b]->nextPosition, 1);
        } else {
          takesFresh[row] =
              kvrt::refCount(*cache, head.pages[slot / pageSize]) > 1;
          materializePositions(head);
        }
        freshTotal += takesFresh[row];
      }
    }
    originals.reserve(static_cast<size_t>(freshTotal));
    kvrt::PageGrant grant;
    grant.want(cache, freshTotal);
    KVRT_RETURN_IF_ERROR(grant.take(*cache->pool, "the batch", fn));

    kvrt::CopyList copies;
    kvrt::RowWrites writes;
    writes.keys = keys;
    writes.values = values;
    writes.batch = batch;
    writes.numTokens = 1;
    writes.numHeads = numHeads;
    writes.starts.resize(static_cast<size_t>(batch) * numHeads);
    writes.pages.resize(static_cast<size_t>(batch) * numHeads);
    const int32_t *fresh = grant.pagesOf(0);
    for (int32_t b = 0; b < batch; ++b)
      for (int32_t h = 0; h < numHeads; ++h) {
        const int64_t row = int64_t(b) * numHeads + h;
        const kvrt::HeadTable &head = states[b]->heads[h];
        const int32_t slot = slots[row] < 0 ? head.length : slots[row];
        writes.starts[row] = slot;
        if (!takesFresh[row]) {
          writes.pages[row] = head.pages[slot / pageSize];
          continue;
        }
        writes.pages[row] = *fresh++;
        if (slots[row] >= 0) {
          copies.pageCopies.push_back(head.pages[slot / pageSize]);
          copies.pageCopies.push_back(writes.pages[row]);
        }
      }
    KVRT_RETURN_IF_ERROR(kvrt::runCopies(*cache, copies, stream, fn));
    KVRT_RETURN_IF_ERROR(kvrt::runWrites(*cache, writes, stream, fn));

    grant.commit();
    for (int32_t b = 0; b < batch; ++b) {
      kvrt::CacheSequence &state = *states[b];
      const int32_t position = static_cast<int32_t>(state.nextPosition);
      for (int32_t h = 0; h < numHeads; ++h) {
        const int64_t row = int64_t(b) * numHeads + h;
        kvrt::HeadTable &head = state.heads[h];
        if (slots[row] < 0) {
          if (takesFresh[row])
            head.pages.push_back(writes.pages[row]);
          if (storesPositions[row])
            head.positions.push_back(position);
          ++head.length;
          continue;
        }
        const size_t index = static_cast<size_t>(slots[row] / pageSize);
        if (takesFresh[row]) {
          originals.push_back(head.pages[index]);
          head.setPage(index, writes.pages[row]);
        }
        head.positions[slots[row]] = position;
      }
      ++state.nextPosition;
    }
    cache->dropPages(originals.data(), static_cast<int64_t>(originals.size()));
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_reserve(int32_t num_caches,
                                    kvrt_cache *const *caches, int32_t batch,
                                    const int32_t *seq_ids,
                                    int32_t num_tokens) {
  const char *fn = "kvrt_reserve";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(num_caches, fn, "num_caches"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(caches, fn, "caches"));
    for (int32_t c = 0; c < num_caches; ++c) {
      KVRT_RETURN_IF_ERROR(kvrt::checkCache(caches[c], fn));
      if (caches[c]->pool != caches[0]->pool)
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: caches[%d] belongs to another pool than "
                          "caches[0]",
                          fn, c);
      for (int32_t other = 0; other < c; ++other)
        if (caches[other] == caches[c])
          return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                            "%s: caches[%d] and caches[%d] are the same cache",
                            fn, other, c);
    }
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(batch, fn, "batch"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(seq_ids, fn, "seq_ids"));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(num_tokens, fn, "num_tokens"));
    KVRT_RETURN_IF_ERROR(checkUnique(seq_ids, batch, fn));
    kvrt_pool &pool = *caches[0]->pool;
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(pool, seq_ids, batch, fn));

    // Plan: the pages each head lacks, grouped by cache, heads in order.
    struct Need {
      kvrt::HeadTable *head;
      int64_t count;
    };
    std::vector<std::vector<Need>> needs(static_cast<size_t>(num_caches));
    kvrt::PageGrant grant;
    for (int32_t c = 0; c < num_caches; ++c) {
      kvrt_cache *cache = caches[c];
      const int64_t pageSize = cache->desc.page_size;
      int64_t total = 0;
      for (int32_t b = 0; b < batch; ++b)
        for (kvrt::HeadTable &head : cache->state(locks[b], true)->heads) {
          int64_t target = std::min<int64_t>(head.length + int64_t(num_tokens),
                                             head.capacity);
          int64_t count = kvrt::pagesFor(target, pageSize) -
                          static_cast<int64_t>(head.pages.size());
          if (count <= 0)
            continue;
          head.pages.reserve(head.pages.size() + static_cast<size_t>(count));
          needs[c].push_back({&head, count});
          total += count;
        }
      grant.want(cache, total);
    }
    KVRT_RETURN_IF_ERROR(grant.take(pool, "the reservation", fn));
    grant.commit();
    for (int32_t c = 0; c < num_caches; ++c) {
      const int32_t *fresh = grant.pagesOf(static_cast<size_t>(c));
      for (const Need &need : needs[c]) {
        need.head->pages.insert(need.head->pages.end(), fresh,
                                fresh + need.count);
        fresh += need.count;
      }
    }
    return KVRT_OK;
  });
}
