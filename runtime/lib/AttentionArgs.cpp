//===- AttentionArgs.cpp - Rules shared by attention calls ------*- C++ -*-===//
//
// The rules: a live cache, positive sizes, q heads a multiple of kv heads
// (GQA), live sequences that already have at least num_tokens positions (the
// queries are their last num_tokens positions; a head may hold fewer tokens
// after eviction or selection).
//
//===----------------------------------------------------------------------===//
#include "AttentionArgs.h"
#include "Error.h"
#include "Handles.h"

#include <cmath>

namespace {

/// validateAttention's rules, the query and output buffers included where
/// `buffers` (checked after num_q_heads either way, so that every entry
/// point reports the same first error).
kvrt_status validate(const kvrt_cache *cache, int32_t batch,
                     const int32_t *seqIds, int32_t numTokens,
                     int32_t numQHeads, const void *queries, const void *out,
                     bool buffers, const char *fn,
                     std::vector<int64_t> &lengths,
                     kvrt::SequenceLocks &locks) {
  using namespace kvrt;
  KVRT_RETURN_IF_ERROR(checkCache(cache, fn));
  KVRT_RETURN_IF_ERROR(checkPositive(batch, fn, "batch"));
  KVRT_RETURN_IF_ERROR(checkNotNull(seqIds, fn, "seq_ids"));
  KVRT_RETURN_IF_ERROR(checkPositive(numTokens, fn, "num_tokens"));
  KVRT_RETURN_IF_ERROR(checkPositive(numQHeads, fn, "num_q_heads"));
  if (buffers) {
    KVRT_RETURN_IF_ERROR(checkNotNull(queries, fn, "queries"));
    KVRT_RETURN_IF_ERROR(checkNotNull(out, fn, "out"));
  }
  int32_t numKvHeads = cache->desc.num_kv_heads;
  if (numQHeads % numKvHeads != 0)
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: num_q_heads %d is not a multiple of the cache's %d kv "
                "heads",
                fn, numQHeads, numKvHeads);
  lengths.assign(static_cast<size_t>(batch), 0);
  KVRT_RETURN_IF_ERROR(locks.lock(*cache->pool, seqIds, batch, fn));
  for (int32_t b = 0; b < batch; ++b) {
    int64_t length = sequenceLength(cache, locks[b]);
    if (length < numTokens)
      return fail(KVRT_ERROR_INVALID_ARGUMENT,
                  "%s: sequence %d holds %lld tokens, fewer than num_tokens "
                  "%d (append the queries' tokens first)",
                  fn, seqIds[b], static_cast<long long>(length), numTokens);
    lengths[b] = length;
  }
  return KVRT_OK;
}

} // namespace

kvrt_status kvrt::validateAttention(const kvrt_cache *cache, int32_t batch,
                                    const int32_t *seqIds, int32_t numTokens,
                                    int32_t numQHeads, const void *queries,
                                    const void *out, const char *function,
                                    std::vector<int64_t> &lengths,
                                    SequenceLocks &locks) {
  return validate(cache, batch, seqIds, numTokens, numQHeads, queries, out,
                  /*buffers=*/true, function, lengths, locks);
}

kvrt_status kvrt::checkScale(float scale, const char *function) {
  if (!(scale > 0.0f) || !std::isfinite(scale))
    return fail(KVRT_ERROR_INVALID_ARGUMENT,
                "%s: scale %g must be positive and finite (typically "
                "1/sqrt(head_dim))",
                function, static_cast<double>(scale));
  return KVRT_OK;
}

kvrt_status kvrt::validateAttentionRows(const kvrt_cache *cache, int32_t batch,
                                        const int32_t *seqIds,
                                        int32_t numTokens, int32_t numQHeads,
                                        const char *function,
                                        std::vector<int64_t> &lengths,
                                        SequenceLocks &locks) {
  return validate(cache, batch, seqIds, numTokens, numQHeads, nullptr, nullptr,
                  /*buffers=*/false, function, lengths, locks);
}
