//===- AttentionArgs.h - Checks shared by attention entry points ---*- C++ -*-//
//
// kvrt_attention_host, kvrt_attention_launch and kvrt_attention_plan take the
// same arguments and obey the same rules; one validator keeps their messages
// identical.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_ATTENTIONARGS_H
#define KVRT_LIB_ATTENTIONARGS_H

#include "kvrt/kvrt.h"

#include <cstdint>
#include <vector>

namespace kvrt {

class SequenceLocks;

/// Validates the arguments every attention entry point shares (the pool's
/// device is checked by the caller) and returns each sequence's number of
/// positions (kvrt_cache_sequence_length) in `lengths`. On success `locks`
/// holds the batch's sequences (in batch order), so that what was checked
/// stays true while the caller reads their tables.
kvrt_status validateAttention(const kvrt_cache *cache, int32_t batch,
                              const int32_t *seqIds, int32_t numTokens,
                              int32_t numQHeads, const void *queries,
                              const void *out, const char *function,
                              std::vector<int64_t> &lengths,
                              SequenceLocks &locks);

/// The softmax scale every call that computes attention takes: positive
/// and finite, as kv.attention's verifier requires (the kernels find each
/// row's maximum score from the unscaled dot products, which a negative or
/// zero scale breaks, and an infinite or NaN one has no softmax).
kvrt_status checkScale(float scale, const char *function);

/// validateAttention without the query and output buffers (what
/// kvrt_attention_plan takes).
kvrt_status validateAttentionRows(const kvrt_cache *cache, int32_t batch,
                                  const int32_t *seqIds, int32_t numTokens,
                                  int32_t numQHeads, const char *function,
                                  std::vector<int64_t> &lengths,
                                  SequenceLocks &locks);

} // namespace kvrt

#endif // KVRT_LIB_ATTENTIONARGS_H
