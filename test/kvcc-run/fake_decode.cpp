//===- fake_decode.cpp - Stand-in for a kvcc library -----------*- C++ -*-===//
//
// What kvcc emits for a three-layer decoder with a prefill and a decode
// entry point, written by hand so that kvcc-run can be tested without the
// compiler. It follows the entry-point ABI of fake_decode.kvcc: check each
// cache against the compiled-in description first, then run the ops in
// manifest order through kvrt. The three layers cover GQA (f16), MQA (bf16)
// and plain multi-head attention (f32).
//
//===----------------------------------------------------------------------===//

#include "kvrt/kvrt.h"

#define KVCC_EXPORT extern "C" __attribute__((visibility("default")))

/// Returns early with the status of the first kvrt call that fails.
#define TRY(call)                                                              \
  do {                                                                         \
    kvrt_status status_ = (call);                                              \
    if (status_ != KVRT_OK)                                                    \
      return status_;                                                          \
  } while (0)

namespace {

kvrt_status checkCaches(const kvrt_cache *c0, const kvrt_cache *c1,
                        const kvrt_cache *c2) {
  TRY(kvrt_cache_check(c0, KVRT_DEVICE_HOST, 2, 64, KVRT_DTYPE_F16, 16, 256));
  TRY(kvrt_cache_check(c1, KVRT_DEVICE_HOST, 1, 32, KVRT_DTYPE_BF16, 8, 32));
  TRY(kvrt_cache_check(c2, KVRT_DEVICE_HOST, 2, 16, KVRT_DTYPE_F32, 4, 64));
  return KVRT_OK;
}

/// One decoder step over all three layers: `tokens` new tokens for each of
/// `batch` sequences. Layer 1 attends non-causally in prefill only, which
/// makes no difference for a single token but keeps the flag exercised.
kvrt_status run(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                const int32_t *seqs, int32_t batch, int32_t tokens,
                const void *q0, const void *k0, const void *v0, const void *q1,
                const void *k1, const void *v1, const void *q2, const void *k2,
                const void *v2, void *out0, void *out1, void *out2,
                int32_t causal1) {
  TRY(checkCaches(c0, c1, c2));
  TRY(kvrt_append(c0, batch, seqs, tokens, k0, v0, nullptr));
  TRY(kvrt_attention_host(c0, batch, seqs, tokens, 4, q0, out0, 0.125f, 1));
  TRY(kvrt_append(c1, batch, seqs, tokens, k1, v1, nullptr));
  TRY(kvrt_attention_host(c1, batch, seqs, tokens, 4, q1, out1,
                          0.17677669529663687f, causal1));
  TRY(kvrt_append(c2, batch, seqs, tokens, k2, v2, nullptr));
  TRY(kvrt_attention_host(c2, batch, seqs, tokens, 2, q2, out2, 0.25f, 1));
  return KVRT_OK;
}

} // namespace

KVCC_EXPORT int32_t prefill(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                            const int32_t *seqs, const void *q0, const void *k0,
                            const void *v0, const void *q1, const void *k1,
                            const void *v1, const void *q2, const void *k2,
                            const void *v2, void *out0, void *out1,
                            void *out2) {
  return run(c0, c1, c2, seqs, 3, 20, q0, k0, v0, q1, k1, v1, q2, k2, v2, out0,
             out1, out2, /*causal1=*/0);
}

KVCC_EXPORT int32_t decode_step(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                                const int32_t *seqs, const void *q0,
                                const void *k0, const void *v0, const void *q1,
                                const void *k1, const void *v1, const void *q2,
                                const void *k2, const void *v2, void *out0,
                                void *out1, void *out2) {
  return run(c0, c1, c2, seqs, 2, 1, q0, k0, v0, q1, k1, v1, q2, k2, v2, out0,
             out1, out2, /*causal1=*/1);
}
