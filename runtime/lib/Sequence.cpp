//===- Sequence.cpp - Sequence ids, forks and truncation --------*- C++ -*-===//
//
// Sequences belong to a pool, not to a cache: one id names the same request
// in every layer's cache, and destroying, forking or truncating it acts on
// all of them at once.
//
//===----------------------------------------------------------------------===//
#include "Compaction.h"
#include "Error.h"
#include "Handles.h"
#include "Transfer.h"

#include <limits>

namespace {

/// Takes an id from the registry (reusing the oldest freed one) and returns
/// its record, still not live.
kvrt_status allocateId(kvrt_pool &pool, int32_t &id, const char *fn) {
  std::lock_guard<std::mutex> lock(pool.sequenceMutex);
  if (!pool.freeSequenceIds.empty()) {
    id = pool.freeSequenceIds.front();
    pool.freeSequenceIds.pop_front();
  } else {
    if (pool.sequences.size() >=
        static_cast<size_t>(std::numeric_limits<int32_t>::max()))
      return kvrt::fail(KVRT_ERROR_OUT_OF_MEMORY,
                        "%s: the pool already holds %d sequences, the most "
                        "32-bit ids allow",
                        fn, std::numeric_limits<int32_t>::max());
    pool.sequences.push_back(std::make_unique<kvrt::Sequence>());
    id = static_cast<int32_t>(pool.sequences.size() - 1);
  }
  ++pool.numSequences;
  return KVRT_OK;
}

/// Returns an id to the registry (the record is no longer live).
void freeId(kvrt_pool &pool, int32_t id) {
  std::lock_guard<std::mutex> lock(pool.sequenceMutex);
  // The deque may need a new block; losing the id for reuse on bad_alloc
  // is harmless, while failing here would leave a half-destroyed sequence.
  try {
    pool.freeSequenceIds.push_back(id);
  } catch (...) {
  }
  --pool.numSequences;
}

/// The live caches of the pool (structureMutex held).
std::vector<kvrt_cache *> liveCaches(const kvrt_pool &pool) {
  std::vector<kvrt_cache *> caches;
  for (kvrt_cache *cache : pool.caches)
    if (cache)
      caches.push_back(cache);
  return caches;
}

} // namespace

extern "C" kvrt_status kvrt_sequence_create(kvrt_pool *pool, int32_t *out_id) {
  const char *fn = "kvrt_sequence_create";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out_id, fn, "out_id"));
    int32_t id = -1;
    KVRT_RETURN_IF_ERROR(allocateId(*pool, id, fn));
    kvrt::Sequence *sequence = pool->findSequence(id);
    {
      std::lock_guard<std::mutex> lock(sequence->mutex);
      sequence->live = true;
    }
    *out_id = id;
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_sequence_destroy(kvrt_pool *pool, int32_t id) {
  const char *fn = "kvrt_sequence_destroy";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    std::shared_lock<std::shared_mutex> structure(pool->structureMutex);
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*pool, &id, 1, fn));
    kvrt::Sequence &sequence = locks[0];
    for (kvrt_cache *cache : liveCaches(*pool))
      cache->release(sequence);
    sequence.live = false;
    locks.unlockAll();
    freeId(*pool, id);
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_sequence_fork(kvrt_pool *pool, int32_t parent,
                                          void *stream, int32_t *out_child) {
  const char *fn = "kvrt_sequence_fork";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out_child, fn, "out_child"));
    std::shared_lock<std::shared_mutex> structure(pool->structureMutex);
    if (!pool->findSequence(parent))
      return kvrt::unknownSequence(parent, fn);
    int32_t child = -1;
    KVRT_RETURN_IF_ERROR(allocateId(*pool, child, fn));
    // From here on, every failure must give the child's id back.
    struct IdGuard {
      kvrt_pool &pool;
      int32_t id;
      bool keep = false;
      ~IdGuard() {
        if (!keep)
          freeId(pool, id);
      }
    } idGuard{*pool, child};

    kvrt::Sequence *childRecord = pool->findSequence(child);
    kvrt::Sequence *parentRecord = pool->findSequence(parent);
    // The child is not live yet, so lock both by hand, in id order.
    std::unique_lock<std::mutex> first(
        (parent < child ? parentRecord : childRecord)->mutex);
    std::unique_lock<std::mutex> second(
        (parent < child ? childRecord : parentRecord)->mutex);
    if (!parentRecord->live)
      return kvrt::unknownSequence(parent, fn);

    // Plan: per cache, the child's tables and the partly filled last pages
    // to copy.
    struct CacheFork {
      kvrt_cache *cache;
      const kvrt::CacheSequence *from;
      kvrt::CacheSequence to;
      size_t share;
      /// Heads whose last page is copied.
      std::vector<int32_t> copiedHeads;
    };
    std::vector<CacheFork> forks;
    kvrt::PageGrant grant;
    for (kvrt_cache *cache : liveCaches(*pool)) {
      const kvrt::CacheSequence *from = cache->state(*parentRecord);
      if (!from)
        continue;
      CacheFork fork{cache, from, {}, 0, {}};
      const int64_t pageSize = cache->desc.page_size;
      fork.to.nextPosition = from->nextPosition;
      fork.to.heads.resize(from->heads.size());
      for (size_t h = 0; h < from->heads.size(); ++h) {
        const kvrt::HeadTable &head = from->heads[h];
        kvrt::HeadTable &copy = fork.to.heads[h];
        copy.length = head.length;
        copy.capacity = head.capacity;
        copy.positions = head.positions;
        const int64_t used = kvrt::pagesFor(head.length, pageSize);
        copy.pages.assign(head.pages.begin(), head.pages.begin() + used);
        if (head.length % pageSize != 0)
          fork.copiedHeads.push_back(static_cast<int32_t>(h));
      }
      fork.share =
          grant.want(cache, static_cast<int64_t>(fork.copiedHeads.size()));
      forks.push_back(std::move(fork));
    }
    if (childRecord->caches.size() < pool->caches.size())
      childRecord->caches.resize(pool->caches.size());
    KVRT_RETURN_IF_ERROR(grant.take(*pool, "the fork", fn));

    for (CacheFork &fork : forks) {
      const int32_t *fresh = grant.pagesOf(fork.share);
      kvrt::CopyList copies;
      for (int32_t h : fork.copiedHeads) {
        kvrt::HeadTable &copy = fork.to.heads[h];
        copies.pageCopies.push_back(copy.pages.back());
        copies.pageCopies.push_back(*fresh);
        copy.pages.back() = *fresh++;
      }
      KVRT_RETURN_IF_ERROR(kvrt::runCopies(*fork.cache, copies, stream, fn));
    }

    // Commit: share the full pages, install the tables.
    grant.commit();
    for (CacheFork &fork : forks) {
      const int64_t pageSize = fork.cache->desc.page_size;
      for (const kvrt::HeadTable &head : fork.from->heads)
        pool->pages.retain(head.pages.data(), head.length / pageSize);
      childRecord->caches[fork.cache->slot] = std::move(fork.to);
    }
    childRecord->live = true;
    idGuard.keep = true;
    *out_child = child;
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_sequence_truncate(kvrt_pool *pool, int32_t id,
                                              int64_t length, void *stream) {
  const char *fn = "kvrt_sequence_truncate";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    if (length < 0)
      return kvrt::fail(KVRT_ERROR_OUT_OF_RANGE, "%s: length %lld is negative",
                        fn, static_cast<long long>(length));
    std::shared_lock<std::shared_mutex> structure(pool->structureMutex);
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(locks.lock(*pool, &id, 1, fn));
    kvrt::Sequence &sequence = locks[0];

    struct CacheTruncation {
      kvrt_cache *cache;
      kvrt::CacheSequence *state;
      kvrt::EditPlan plan;
      size_t share;
    };
    std::vector<CacheTruncation> truncations;
    kvrt::PageGrant grant;
    for (kvrt_cache *cache : liveCaches(*pool)) {
      kvrt::CacheSequence *state = cache->state(sequence, false);
      if (!state || state->nextPosition <= length)
        continue;
      std::vector<kvrt::HeadEdit> edits(state->heads.size());
      for (size_t h = 0; h < state->heads.size(); ++h) {
        kvrt::HeadTable &head = state->heads[h];
        kvrt::HeadEdit &edit = edits[h];
        edit.head = &head;
        if (head.positions.empty()) {
          edit.prefix =
              static_cast<int32_t>(std::min<int64_t>(head.length, length));
          continue;
        }
        for (int32_t slot = 0; slot < head.length; ++slot)
          if (head.positions[slot] < length)
            edit.kept.push_back(slot);
      }
      truncations.push_back({cache, state, {}, 0});
      CacheTruncation &truncation = truncations.back();
      truncation.plan.prepare(*cache, std::move(edits));
      truncation.share = grant.want(cache, truncation.plan.pagesNeeded());
    }
    KVRT_RETURN_IF_ERROR(grant.take(*pool, "the truncation", fn));
    for (CacheTruncation &truncation : truncations)
      KVRT_RETURN_IF_ERROR(
          truncation.plan.run(grant.pagesOf(truncation.share), stream, fn));
    grant.commit();
    for (CacheTruncation &truncation : truncations) {
      truncation.plan.commit();
      truncation.state->nextPosition = length;
    }
    return KVRT_OK;
  });
}
