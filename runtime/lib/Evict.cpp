//===- Evict.cpp - Slot replacement and selection ---------------*- C++ -*-===//
//
// Eviction without data movement: kvrt_cache_replace_slot stores the
// incoming token in the evicted token's slot (attention does not depend on
// slot order, and the slot's position is kept for RoPE and masking).
// Selection (kvrt_cache_select) keeps a set of slots per head, compacting
// them within the head's pages and freeing the pages that empty.
//
//===----------------------------------------------------------------------===//
#include "Compaction.h"
#include "Error.h"
#include "Handles.h"
#include "Transfer.h"

#include <numeric>

extern "C" kvrt_status kvrt_cache_replace_slot(kvrt_cache *cache, int32_t id,
                                               int32_t head, int32_t slot,
                                               const void *key,
                                               const void *value,
                                               int32_t position, void *stream) {
  const char *fn = "kvrt_cache_replace_slot";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(key, fn, "key"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(value, fn, "value"));
    if (cache->quantized())
      return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                        "%s: the cache stores quantized pages; this call "
                        "writes unquantized K and V",
                        fn);
    if (head < 0 || head >= cache->desc.num_kv_heads)
      return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE,
                        "%s: head %d is not in [0, %d)", fn, head,
                        cache->desc.num_kv_heads);
    if (position < 0)
      return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE, "%s: position %d is negative",
                        fn, position);
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    kvrt::CacheSequence *state = cache->state(locks[0], false);
    const int32_t length = state ? state->heads[head].length : 0;
    if (slot < 0 || slot >= length)
      return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE,
                        "%s: slot %d is not in [0, %d), the slots head %d of "
                        "sequence %d holds",
                        fn, slot, length, head, id);
    kvrt::HeadTable &table = state->heads[head];
    for (int32_t other = 0; other < length; ++other)
      if (other != slot && table.positionOf(other) == position)
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: position %d is already held by slot %d of "
                          "head %d",
                          fn, position, other, head);

    const int64_t pageSize = cache->desc.page_size;
    const size_t index = static_cast<size_t>(slot / pageSize);
    if (table.positions.empty()) {
      table.positions.resize(static_cast<size_t>(length));
      std::iota(table.positions.begin(), table.positions.end(), 0);
    }
    const bool copy = kvrt::refCount(*cache, table.pages[index]) > 1;
    kvrt::PageGrant grant;
    grant.want(cache, copy ? 1 : 0);
    KVRT_RETURN_IF_ERROR(grant.take(*cache->pool, "the copy on write", fn));

    kvrt::CopyList copies;
    kvrt::RowWrites writes;
    writes.keys = key;
    writes.values = value;
    writes.batch = 1;
    writes.numTokens = 1;
    writes.numHeads = 1;
    writes.starts = {slot};
    writes.pages = {copy ? grant.pagesOf(0)[0] : table.pages[index]};
    if (copy)
      copies.pageCopies = {table.pages[index], writes.pages[0]};
    KVRT_RETURN_IF_ERROR(kvrt::runCopies(*cache, copies, stream, fn));
    KVRT_RETURN_IF_ERROR(kvrt::runWrites(*cache, writes, stream, fn));

    grant.commit();
    if (copy) {
      const int32_t original = table.pages[index];
      table.setPage(index, writes.pages[0]);
      cache->dropPages(&original, 1);
    }
    table.positions[slot] = position;
    state->nextPosition =
        std::max<int64_t>(state->nextPosition, int64_t(position) + 1);
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_select(kvrt_cache *cache, int32_t id,
                                         const int32_t *kept_indptr,
                                         const int32_t *kept_slots,
                                         void *stream) {
  const char *fn = "kvrt_cache_select";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkCache(cache, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(kept_indptr, fn, "kept_indptr"));
    const int32_t numHeads = cache->desc.num_kv_heads;
    if (kept_indptr[0] != 0)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: kept_indptr[0] is %d, not 0", fn, kept_indptr[0]);
    for (int32_t h = 0; h < numHeads; ++h)
      if (kept_indptr[h + 1] < kept_indptr[h])
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: kept_indptr decreases from %d to %d at head %d",
                          fn, kept_indptr[h], kept_indptr[h + 1], h);
    if (kept_indptr[numHeads] > 0)
      KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(kept_slots, fn, "kept_slots"));
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, &id, 1, fn));
    kvrt::CacheSequence *state = cache->state(locks[0], false);
    for (int32_t h = 0; h < numHeads; ++h) {
      const int32_t length = state ? state->heads[h].length : 0;
      for (int32_t i = kept_indptr[h]; i < kept_indptr[h + 1]; ++i) {
        if (kept_slots[i] < 0 || kept_slots[i] >= length)
          return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE,
                            "%s: kept slot %d of head %d is not in [0, %d), "
                            "the slots the head holds",
                            fn, kept_slots[i], h, length);
        if (i > kept_indptr[h] && kept_slots[i] <= kept_slots[i - 1])
          return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                            "%s: kept slots of head %d are not strictly "
                            "increasing (%d after %d)",
                            fn, h, kept_slots[i], kept_slots[i - 1]);
      }
    }
    if (!state)
      return KVRT_OK;

    std::vector<kvrt::HeadEdit> edits(static_cast<size_t>(numHeads));
    for (int32_t h = 0; h < numHeads; ++h) {
      kvrt::HeadEdit &edit = edits[h];
      edit.head = &state->heads[h];
      const int32_t first = kept_indptr[h];
      const int32_t count = kept_indptr[h + 1] - first;
      // Strictly increasing slots from 0 are a prefix when the last one is
      // count - 1: nothing moves.
      if (count == 0 || kept_slots[first + count - 1] == count - 1)
        edit.prefix = count;
      else
        edit.kept.assign(kept_slots + first, kept_slots + first + count);
    }
    kvrt::EditPlan plan;
    plan.prepare(*cache, std::move(edits));
    kvrt::PageGrant grant;
    grant.want(cache, plan.pagesNeeded());
    KVRT_RETURN_IF_ERROR(grant.take(*cache->pool, "the selection", fn));
    KVRT_RETURN_IF_ERROR(plan.run(grant.pagesOf(0), stream, fn));
    grant.commit();
    plan.commit();
    return KVRT_OK;
  });
}
