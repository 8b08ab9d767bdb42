//===- Sequence.cpp - Sequence ids of a pool --------------------*- C++ -*-===//
//
// Sequences belong to a pool, not to a cache: one id names the same request
// in every layer's cache, and destroying it frees its pages everywhere.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "Handles.h"

#include <limits>

extern "C" kvrt_status kvrt_sequence_create(kvrt_pool *pool, int32_t *out_id) {
  const char *fn = "kvrt_sequence_create";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(pool, fn, "pool"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out_id, fn, "out_id"));
    int32_t id;
    if (!pool->freeSequenceIds.empty()) {
      id = pool->freeSequenceIds.front();
      pool->freeSequenceIds.pop_front();
    } else {
      if (pool->liveSequences.size() >=
          static_cast<size_t>(std::numeric_limits<int32_t>::max()))
        return kvrt::fail(KVRT_ERROR_OUT_OF_MEMORY,
                          "%s: the pool already holds %d sequences, the most "
                          "32-bit ids allow",
                          fn, std::numeric_limits<int32_t>::max());
      // Grow first: if this throws, nothing has changed yet.
      pool->liveSequences.push_back(0);
      id = static_cast<int32_t>(pool->liveSequences.size() - 1);
    }
    pool->liveSequences[id] = 1;
    ++pool->numSequences;
    *out_id = id;
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_sequence_destroy(kvrt_pool *pool, int32_t id) {
  const char *fn = "kvrt_sequence_destroy";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(pool, fn, "pool"));
    if (!pool->isLiveSequence(id))
      return kvrt::fail(KVRT_ERROR_UNKNOWN_SEQUENCE,
                        "%s: sequence %d does not exist in this pool (never "
                        "created or already destroyed)",
                        fn, id);
    // Grow the id queue before releasing anything so that a failure to
    // allocate leaves the sequence fully intact.
    pool->freeSequenceIds.push_back(id);
    for (kvrt_cache *cache : pool->caches)
      cache->releaseSequence(id);
    pool->liveSequences[id] = 0;
    --pool->numSequences;
    return KVRT_OK;
  });
}
