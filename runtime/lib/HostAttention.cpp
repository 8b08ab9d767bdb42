//===- HostAttention.cpp - Reference attention on host pools ----*- C++ -*-===//
//
// The CPU reference that compiled kernels are tested against. It favours
// clarity over speed: each (sequence, kv head) is gathered into dense fp32
// K/V once, then every query of the group runs an exact two-pass softmax in
// fp32 (max first, then exponentials), so no intermediate can overflow.
// Every head attends over its own length, with the device template's
// masking rule (see kvrt_attention_host in kvrt.h).
//
//===----------------------------------------------------------------------===//
#include "AttentionArgs.h"
#include "Dtype.h"
#include "Error.h"
#include "Handles.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

/// Converts the first `length` tokens of (sequence, head) to dense fp32
/// [length, head_dim] keys and values.
void gatherHead(const kvrt_cache &cache, const kvrt::HeadTable &table,
                int64_t length, std::vector<float> &keys,
                std::vector<float> &values) {
  const kvrt_cache_desc &desc = cache.desc;
  const kvrt_page_layout &layout = cache.layout;
  const int64_t dim = desc.head_dim;
  const int64_t pageSize = desc.page_size;
  keys.resize(static_cast<size_t>(length * dim));
  values.resize(static_cast<size_t>(length * dim));
  for (int64_t token = 0; token < length; ++token) {
    const char *page = cache.pool->pageAddress(table.pages[token / pageSize]);
    int64_t slot = token & (pageSize - 1);
    const char *keyRow = page + layout.key_offset + slot * layout.key_row_bytes;
    const char *valueRow =
        page + layout.value_offset + slot * layout.value_row_bytes;
    for (int64_t d = 0; d < dim; ++d) {
      keys[token * dim + d] = kvrt::loadAsFloat(keyRow, desc.dtype, d);
      values[token * dim + d] = kvrt::loadAsFloat(valueRow, desc.dtype, d);
    }
  }
}

/// Attention of one query row `q` over keys [0, numKeys), plus `mask[k]`
/// on key k's score when `mask` is not null: writes the head_dim outputs
/// to `out` in the cache dtype.
void attendOne(const float *q, const std::vector<float> &keys,
               const std::vector<float> &values, int64_t numKeys, int64_t dim,
               float scale, const float *mask, kvrt_dtype dtype, void *out,
               int64_t outIndex, std::vector<float> &scores,
               std::vector<float> &accumulator, float *keyScores) {
  scores.resize(static_cast<size_t>(numKeys));
  float maxScore = -INFINITY;
  for (int64_t k = 0; k < numKeys; ++k) {
    float dot = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      dot += q[d] * keys[k * dim + d];
    scores[k] = dot * scale + (mask ? mask[k] : 0.0f);
    maxScore = std::max(maxScore, scores[k]);
  }
  float sum = 0.0f;
  accumulator.assign(static_cast<size_t>(dim), 0.0f);
  for (int64_t k = 0; k < numKeys; ++k) {
    // Every score -inf (all keys masked out): no weight anywhere.
    float weight =
        scores[k] == -INFINITY ? 0.0f : std::exp(scores[k] - maxScore);
    sum += weight;
    for (int64_t d = 0; d < dim; ++d)
      accumulator[d] += weight * values[k * dim + d];
  }
  float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;
  for (int64_t d = 0; d < dim; ++d)
    kvrt::storeFromFloat(out, dtype, outIndex + d, accumulator[d] * inverse);
  if (keyScores)
    for (int64_t k = 0; k < numKeys; ++k)
      if (scores[k] != -INFINITY)
        keyScores[k] += std::exp(scores[k] - maxScore) * inverse;
}

} // namespace

namespace {

/// kvrt_attention_host and kvrt_attention_host_masked; `mask` may be null.
kvrt_status attentionHost(const char *fn, const kvrt_cache *cache,
                          int32_t batch, const int32_t *seq_ids,
                          int32_t num_tokens, int32_t num_q_heads,
                          const void *queries, void *out, float scale,
                          int32_t causal, const float *mask,
                          int32_t mask_keys, float *keyScores = nullptr,
                          int64_t keyScoresStride = 0) {
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    std::vector<int64_t> lengths;
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(
        kvrt::validateAttention(cache, batch, seq_ids, num_tokens, num_q_heads,
                                queries, out, fn, lengths, locks));
    KVRT_RETURN_IF_ERROR(kvrt::checkScale(scale, fn));
    if (cache->pool->device != KVRT_DEVICE_HOST)
      return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                        "%s: the cache lives in a CUDA pool; the reference "
                        "kernel reads host pools only (use "
                        "kvrt_attention_launch)",
                        fn);
    if (cache->quantized())
      return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                        "%s: the cache stores quantized pages; the reference "
                        "kernel reads unquantized K and V",
                        fn);

    const kvrt_cache_desc &desc = cache->desc;
    const int64_t dim = desc.head_dim;
    const int64_t numKvHeads = desc.num_kv_heads;
    const int64_t group = num_q_heads / numKvHeads;
    if (keyScores)
      for (int64_t length : lengths)
        if (length > keyScoresStride)
          return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                            "%s: key_scores_stride %lld is below the longest "
                            "sequence of the batch (%lld tokens)",
                            fn, static_cast<long long>(keyScoresStride),
                            static_cast<long long>(length));
    if (mask) {
      // The mask covers exactly mask_keys slots of every head.
      for (int64_t b = 0; b < batch; ++b) {
        const kvrt::CacheSequence *state = cache->state(locks[b]);
        for (int64_t h = 0; h < numKvHeads; ++h) {
          const int64_t length = state ? state->heads[h].length : 0;
          if (length != mask_keys)
            return kvrt::fail(KVRT_ERROR_MISMATCH,
                              "%s: sequence %d head %lld holds %lld tokens "
                              "but the mask covers %d keys",
                              fn, seq_ids[b], static_cast<long long>(h),
                              static_cast<long long>(length), mask_keys);
        }
      }
    }
    std::vector<float> keys, values, query(static_cast<size_t>(dim)), scores,
        accumulator;
    for (int64_t b = 0; b < batch; ++b) {
      // Absent only if another thread emptied the sequence since the
      // validation; its heads then hold nothing.
      const kvrt::CacheSequence *state = cache->state(locks[b]);
      const kvrt::HeadTable empty;
      for (int64_t h = 0; h < numKvHeads; ++h) {
        const kvrt::HeadTable &head = state ? state->heads[h] : empty;
        const int64_t length = head.length;
        gatherHead(*cache, head, length, keys, values);
        for (int64_t t = 0; t < num_tokens; ++t) {
          // Query t is the head's slot length - num_tokens + t; a head
          // shorter than the queries sees fewer keys, possibly none.
          int64_t numKeys = causal ? length - num_tokens + t + 1 : length;
          numKeys = std::max<int64_t>(0, std::min(numKeys, length));
          const float *maskRow =
              mask ? mask + (b * num_tokens + t) * int64_t(mask_keys)
                   : nullptr;
          for (int64_t g = 0; g < group; ++g) {
            int64_t qh = h * group + g;
            int64_t rowIndex = ((b * num_tokens + t) * num_q_heads + qh) * dim;
            for (int64_t d = 0; d < dim; ++d)
              query[d] = kvrt::loadAsFloat(queries, desc.dtype, rowIndex + d);
            float *rowScores =
                keyScores ? keyScores + (b * numKvHeads + h) * keyScoresStride
                          : nullptr;
            attendOne(query.data(), keys, values, numKeys, dim, scale, maskRow,
                      desc.dtype, out, rowIndex, scores, accumulator,
                      rowScores);
          }
        }
      }
    }
    return KVRT_OK;
  });
}

} // namespace

extern "C" kvrt_status
kvrt_attention_host(const kvrt_cache *cache, int32_t batch,
                    const int32_t *seq_ids, int32_t num_tokens,
                    int32_t num_q_heads, const void *queries, void *out,
                    float scale, int32_t causal) {
  return attentionHost("kvrt_attention_host", cache, batch, seq_ids,
                       num_tokens, num_q_heads, queries, out, scale, causal,
                       nullptr, 0);
}

extern "C" kvrt_status kvrt_attention_host_masked(
    const kvrt_cache *cache, int32_t batch, const int32_t *seq_ids,
    int32_t num_tokens, int32_t num_q_heads, const void *queries, void *out,
    float scale, int32_t causal, const float *mask, int32_t mask_keys) {
  const char *fn = "kvrt_attention_host_masked";
  if (!mask)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: mask is null", fn);
  if (mask_keys < num_tokens)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: the mask covers %d keys, fewer than the %d query "
                      "tokens",
                      fn, mask_keys, num_tokens);
  return attentionHost(fn, cache, batch, seq_ids, num_tokens, num_q_heads,
                       queries, out, scale, causal, mask, mask_keys);
}

extern "C" kvrt_status kvrt_attention_host_scored(
    const kvrt_cache *cache, int32_t batch, const int32_t *seq_ids,
    int32_t num_tokens, int32_t num_q_heads, const void *queries, void *out,
    float scale, int32_t causal, float *key_scores,
    int64_t key_scores_stride) {
  const char *fn = "kvrt_attention_host_scored";
  if (!key_scores)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: key_scores is null",
                      fn);
  return attentionHost(fn, cache, batch, seq_ids, num_tokens, num_q_heads,
                       queries, out, scale, causal, nullptr, 0, key_scores,
                       key_scores_stride);
}
