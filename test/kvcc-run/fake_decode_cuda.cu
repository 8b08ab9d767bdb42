//===- fake_decode_cuda.cu - CUDA stand-in for a kvcc lib ----*- CUDA -*-===//
//
// The CUDA twin of fake_decode.cpp: the same three layers and entry points,
// but the caches live in a CUDA pool, tensors are device pointers, every
// entry takes a trailing stream, and attention runs a naive kernel through
// kvrt_attention_launch the way kvcc's generated kernels do. It tests
// kvcc-run's CUDA path (device buffers, copies, synchronization) without the
// compiler; the kernel is written for clarity, not speed.
//
//===----------------------------------------------------------------------===//

#include "kvrt/device/params.h"
#include "kvrt/kvrt.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define KVCC_EXPORT extern "C" __attribute__((visibility("default")))

/// Returns early with the status of the first kvrt call that fails.
#define TRY(call)                                                              \
  do {                                                                         \
    kvrt_status status_ = (call);                                              \
    if (status_ != KVRT_OK)                                                    \
      return status_;                                                          \
  } while (0)

namespace {

constexpr int kMaxHeadDim = 128;
constexpr int kThreads = 32;

__device__ float toFloat(__half value) { return __half2float(value); }
__device__ float toFloat(__nv_bfloat16 value) {
  return __bfloat162float(value);
}
__device__ float toFloat(float value) { return value; }

template <typename T> __device__ T fromFloat(float value);
template <> __device__ __half fromFloat<__half>(float value) {
  return __float2half_rn(value);
}
template <> __device__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float value) {
  return __float2bfloat16_rn(value);
}
template <> __device__ float fromFloat<float>(float value) { return value; }

/// Block (kv head h, row b * num_tokens + t); each thread handles one query
/// head of h's group with an online softmax over the visible keys, read
/// through the page table the way kvrt_attention_params describes it.
template <typename T> __global__ void naiveAttention(kvrt_attention_params p) {
  const int h = blockIdx.x, row = blockIdx.y;
  const int b = row / p.num_tokens, t = row % p.num_tokens;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int table = b * p.num_kv_heads + h;
  // Small batches carry their tables inline (params.h).
  const bool inlined = p.inline_rows > 0;
  const int length = inlined ? p.inline_lens[table] : p.kv_lens[table];
  const int visible = p.causal ? length - p.num_tokens + t + 1 : length;
  const int32_t *pages =
      p.page_indices +
      (inlined ? p.inline_starts[table] : p.page_indptr[table]);
  for (int g = threadIdx.x; g < group; g += blockDim.x) {
    const size_t offset =
        (size_t(row) * p.num_q_heads + h * group + g) * p.head_dim;
    const T *q = static_cast<const T *>(p.queries) + offset;
    float acc[kMaxHeadDim];
    for (int d = 0; d < p.head_dim; ++d)
      acc[d] = 0;
    float maxScore = -INFINITY, sum = 0;
    for (int j = 0; j < visible; ++j) {
      const T *page = reinterpret_cast<const T *>(
          static_cast<const char *>(p.pool_base) +
          int64_t(pages[j / p.page_size]) * p.page_bytes);
      const T *k = page + (j % p.page_size) * p.head_dim;
      const T *v = page + (p.page_size + j % p.page_size) * p.head_dim;
      float score = 0;
      for (int d = 0; d < p.head_dim; ++d)
        score += toFloat(q[d]) * toFloat(k[d]);
      score *= p.scale;
      const float newMax = fmaxf(maxScore, score);
      const float rescale = expf(maxScore - newMax);
      const float weight = expf(score - newMax);
      sum = sum * rescale + weight;
      for (int d = 0; d < p.head_dim; ++d)
        acc[d] = acc[d] * rescale + weight * toFloat(v[d]);
      maxScore = newMax;
    }
    T *o = static_cast<T *>(p.out) + offset;
    for (int d = 0; d < p.head_dim; ++d)
      o[d] = fromFloat<T>(acc[d] / sum);
  }
}

kvrt_status run(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                const int32_t *seqs, int32_t batch, int32_t tokens,
                const void *q0, const void *k0, const void *v0, const void *q1,
                const void *k1, const void *v1, const void *q2, const void *k2,
                const void *v2, void *out0, void *out1, void *out2,
                int32_t causal1, void *stream) {
  TRY(kvrt_cache_check(c0, KVRT_DEVICE_CUDA, 2, 64, KVRT_DTYPE_F16, 16, 256));
  TRY(kvrt_cache_check(c1, KVRT_DEVICE_CUDA, 1, 32, KVRT_DTYPE_BF16, 8, 32));
  TRY(kvrt_cache_check(c2, KVRT_DEVICE_CUDA, 2, 16, KVRT_DTYPE_F32, 4, 64));
  TRY(kvrt_append(c0, batch, seqs, tokens, k0, v0, stream));
  TRY(kvrt_attention_launch(
      c0, batch, seqs, tokens, 4, q0, out0, 0.125f, 1,
      reinterpret_cast<const void *>(&naiveAttention<__half>), kThreads,
      stream));
  TRY(kvrt_append(c1, batch, seqs, tokens, k1, v1, stream));
  TRY(kvrt_attention_launch(
      c1, batch, seqs, tokens, 4, q1, out1, 0.17677669529663687f, causal1,
      reinterpret_cast<const void *>(&naiveAttention<__nv_bfloat16>), kThreads,
      stream));
  TRY(kvrt_append(c2, batch, seqs, tokens, k2, v2, stream));
  TRY(kvrt_attention_launch(
      c2, batch, seqs, tokens, 2, q2, out2, 0.25f, 1,
      reinterpret_cast<const void *>(&naiveAttention<float>), kThreads,
      stream));
  return KVRT_OK;
}

} // namespace

KVCC_EXPORT int32_t prefill(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                            const int32_t *seqs, const void *q0, const void *k0,
                            const void *v0, const void *q1, const void *k1,
                            const void *v1, const void *q2, const void *k2,
                            const void *v2, void *out0, void *out1, void *out2,
                            void *stream) {
  return run(c0, c1, c2, seqs, 3, 20, q0, k0, v0, q1, k1, v1, q2, k2, v2, out0,
             out1, out2, /*causal1=*/0, stream);
}

KVCC_EXPORT int32_t decode_step(kvrt_cache *c0, kvrt_cache *c1, kvrt_cache *c2,
                                const int32_t *seqs, const void *q0,
                                const void *k0, const void *v0, const void *q1,
                                const void *k1, const void *v1, const void *q2,
                                const void *k2, const void *v2, void *out0,
                                void *out1, void *out2, void *stream) {
  return run(c0, c1, c2, seqs, 2, 1, q0, k0, v0, q1, k1, v1, q2, k2, v2, out0,
             out1, out2, /*causal1=*/1, stream);
}
