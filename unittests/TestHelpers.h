//===- TestHelpers.h - Shared helpers of kvrt's unit tests ------*- C++ -*-===//
//
// RAII handles, random tensors in any kvrt dtype, and the independent
// float64 attention reference the kernels are checked against.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_UNITTESTS_TESTHELPERS_H
#define KVRT_UNITTESTS_TESTHELPERS_H

#include "Dtype.h"
#include "kvrt/kvrt.h"

#include "gtest/gtest.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace kvrt::test {

struct PoolDeleter {
  void operator()(kvrt_pool *pool) const { kvrt_pool_destroy(pool); }
};
/// A pool destroyed (with its caches) at the end of the test.
using PoolPtr = std::unique_ptr<kvrt_pool, PoolDeleter>;

/// Creates a pool or fails the current test (the result is then null).
inline PoolPtr makePool(kvrt_device device, int64_t pageBytes,
                        int64_t numPages) {
  kvrt_pool *pool = nullptr;
  kvrt_status status = kvrt_pool_create(device, pageBytes, numPages, &pool);
  EXPECT_EQ(status, KVRT_OK) << kvrt_last_error();
  return PoolPtr(pool);
}

/// A cache descriptor with the given fields.
inline kvrt_cache_desc makeDesc(int32_t numKvHeads, int32_t headDim,
                                kvrt_dtype dtype, int32_t pageSize,
                                int64_t capacity) {
  kvrt_cache_desc desc;
  desc.num_kv_heads = numKvHeads;
  desc.head_dim = headDim;
  desc.dtype = dtype;
  desc.page_size = pageSize;
  desc.capacity = capacity;
  return desc;
}

/// Creates a cache in `pool` or fails the current test.
inline kvrt_cache *makeCache(kvrt_pool *pool, const kvrt_cache_desc &desc) {
  kvrt_cache *cache = nullptr;
  kvrt_status status = kvrt_cache_create(pool, &desc, &cache);
  EXPECT_EQ(status, KVRT_OK) << kvrt_last_error();
  return cache;
}

/// Creates a sequence or fails the current test.
inline int32_t makeSequence(kvrt_pool *pool) {
  int32_t id = -1;
  kvrt_status status = kvrt_sequence_create(pool, &id);
  EXPECT_EQ(status, KVRT_OK) << kvrt_last_error();
  return id;
}

/// Dense tensor of `count` elements of `dtype`, as raw bytes.
struct Tensor {
  kvrt_dtype dtype = KVRT_DTYPE_F32;
  int64_t count = 0;
  std::vector<unsigned char> bytes;

  Tensor() = default;
  Tensor(kvrt_dtype type, int64_t elements)
      : dtype(type), count(elements),
        bytes(static_cast<size_t>(elements) * kvrt_dtype_size(type), 0) {}
  void *data() { return bytes.data(); }
  const void *data() const { return bytes.data(); }
  float at(int64_t index) const { return loadAsFloat(data(), dtype, index); }
  void set(int64_t index, float value) {
    storeFromFloat(data(), dtype, index, value);
  }
  /// Sets every byte to 0xff: NaN in f16, bf16 and f32, so unwritten
  /// outputs are caught.
  void poison() { std::fill(bytes.begin(), bytes.end(), 0xff); }
};

/// Tensor of uniform random values in [-range, range], rounded to `dtype`.
inline Tensor randomTensor(kvrt_dtype dtype, int64_t count, std::mt19937 &rng,
                           float range = 1.0f) {
  std::uniform_real_distribution<float> dist(-range, range);
  Tensor tensor(dtype, count);
  for (int64_t i = 0; i < count; ++i)
    tensor.set(i, dist(rng));
  return tensor;
}

/// Copies a tensor's values to doubles.
inline std::vector<double> toDoubles(const Tensor &tensor) {
  std::vector<double> values(static_cast<size_t>(tensor.count));
  for (int64_t i = 0; i < tensor.count; ++i)
    values[i] = tensor.at(i);
  return values;
}

/// ||actual - expected|| / ||expected|| over all elements; infinity when any
/// element of `actual` is not finite.
inline double relativeError(const Tensor &actual,
                            const std::vector<double> &expected) {
  double diff = 0.0, norm = 0.0;
  for (int64_t i = 0; i < actual.count; ++i) {
    double value = actual.at(i);
    if (!std::isfinite(value))
      return INFINITY;
    diff += (value - expected[i]) * (value - expected[i]);
    norm += expected[i] * expected[i];
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

/// Keys or values of one sequence as doubles, [length, kv_heads, head_dim].
using SequenceData = std::vector<double>;

/// Independent float64 attention, written from the definition (softmax of
/// scaled dot products, GQA head mapping, causal mask), not from kvrt's code.
/// queries/result: [batch, tokens, q_heads, head_dim].
inline std::vector<double>
referenceAttention(const std::vector<SequenceData> &keys,
                   const std::vector<SequenceData> &values,
                   const std::vector<double> &queries, int numTokens,
                   int numQHeads, int numKvHeads, int headDim, double scale,
                   bool causal) {
  const int batch = static_cast<int>(keys.size());
  const int group = numQHeads / numKvHeads;
  std::vector<double> result(static_cast<size_t>(batch) * numTokens *
                             numQHeads * headDim);
  for (int b = 0; b < batch; ++b) {
    const int length =
        static_cast<int>(keys[b].size() / (numKvHeads * headDim));
    for (int t = 0; t < numTokens; ++t) {
      const int position = length - numTokens + t;
      const int visible = causal ? position + 1 : length;
      for (int qh = 0; qh < numQHeads; ++qh) {
        const int kh = qh / group;
        const double *q =
            &queries[((static_cast<size_t>(b) * numTokens + t) * numQHeads +
                      qh) *
                     headDim];
        std::vector<double> logits(visible);
        double maxLogit = -INFINITY;
        for (int k = 0; k < visible; ++k) {
          const double *key =
              &keys[b][(static_cast<size_t>(k) * numKvHeads + kh) * headDim];
          double dot = 0.0;
          for (int d = 0; d < headDim; ++d)
            dot += q[d] * key[d];
          logits[k] = dot * scale;
          maxLogit = std::max(maxLogit, logits[k]);
        }
        double denominator = 0.0;
        for (int k = 0; k < visible; ++k) {
          logits[k] = std::exp(logits[k] - maxLogit);
          denominator += logits[k];
        }
        double *out =
            &result[((static_cast<size_t>(b) * numTokens + t) * numQHeads +
                     qh) *
                    headDim];
        for (int d = 0; d < headDim; ++d) {
          double sum = 0.0;
          for (int k = 0; k < visible; ++k)
            sum +=
                logits[k] *
                values[b][(static_cast<size_t>(k) * numKvHeads + kh) * headDim +
                          d];
          out[d] = sum / denominator;
        }
      }
    }
  }
  return result;
}

/// Relative-error bound a kernel's output must meet for `dtype`: the output
/// is rounded to the dtype, so the bound follows its precision.
inline double toleranceFor(kvrt_dtype dtype) {
  switch (dtype) {
  case KVRT_DTYPE_F32:
    return 1e-5;
  case KVRT_DTYPE_F16:
    return 2e-3;
  case KVRT_DTYPE_BF16:
    return 1.6e-2;
  }
  return 0.0;
}

/// Expects `status` and that the last error message contains `fragment`.
#define EXPECT_KVRT_ERROR(expr, status, fragment)                              \
  do {                                                                         \
    kvrt_status actual_ = (expr);                                              \
    EXPECT_EQ(actual_, (status))                                               \
        << kvrt_status_name(actual_) << ": " << kvrt_last_error();             \
    EXPECT_NE(std::string(kvrt_last_error()).find(fragment),                   \
              std::string::npos)                                               \
        << "message: " << kvrt_last_error();                                   \
  } while (false)

} // namespace kvrt::test

#endif // KVRT_UNITTESTS_TESTHELPERS_H
