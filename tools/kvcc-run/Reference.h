//===- Reference.h - Naive float64 KV-cache reference -----------*- C++ -*-===//
//
// kvcc-run checks compiled code against this reference, so it deliberately
// shares nothing with kvrt: it keeps its own dense copy of every appended
// token and computes attention in float64 with the plainest possible loops.
// The dtype conversions are written here too, so that a rounding bug in the
// runtime or the compiler cannot hide behind the same bug in the checker.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_RUN_REFERENCE_H
#define KVCC_RUN_REFERENCE_H

#include "Manifest.h"

#include <cstdint>
#include <string>
#include <vector>

namespace kvcc {
namespace run {

/// The bits of `value` in `dtype` (low 16 bits for f16/bf16), rounded to
/// nearest, ties to even; overflow gives infinity, NaN stays NaN.
uint32_t encodeValue(DType dtype, double value);
/// The exact value of `bits` interpreted as `dtype`.
double decodeValue(DType dtype, uint32_t bits);

/// Element `index` of a dense buffer of `dtype` elements.
double loadElement(DType dtype, const void *data, size_t index);
void storeElement(DType dtype, void *data, size_t index, double value);

/// A dense tensor held both as the bytes given to (or received from) the
/// compiled code and as their exact float64 values.
struct HostTensor {
  TensorType type;
  std::vector<uint8_t> bytes;
  std::vector<double> values;

  explicit HostTensor(const TensorType &type);
  /// Rounds `newValues` to the dtype and stores bytes and rounded values.
  void assign(const std::vector<double> &newValues);
  /// Recomputes `values` after `bytes` were overwritten.
  void decodeBytes();
};

/// One physical cache: per sequence, the keys and values appended so far as
/// dense [length, kv_heads, head_dim] arrays.
class ReferenceCache {
public:
  ReferenceCache(const CacheDesc &desc, unsigned numSequences);

  /// Appends keys/values [B, T, kv_heads, head_dim] to sequences 0..B-1.
  /// Returns an error message (and changes nothing) when a sequence would
  /// exceed the capacity, "" otherwise.
  std::string append(const HostTensor &keys, const HostTensor &values);

  /// Attention of queries [B, T, q_heads, head_dim] of sequences 0..B-1,
  /// which are their last T positions. Fills `out` (same shape, float64) and
  /// returns "", or returns an error when a sequence holds fewer than T
  /// tokens.
  std::string attention(const HostTensor &queries, double scale, bool causal,
                        std::vector<double> &out) const;

  const CacheDesc &desc() const { return cacheDesc; }
  unsigned numSequences() const { return sequences.size(); }
  int64_t length(unsigned seq) const { return sequences[seq].length; }
  const std::vector<uint8_t> &keyBytes(unsigned seq) const {
    return sequences[seq].keyBytes;
  }
  const std::vector<uint8_t> &valueBytes(unsigned seq) const {
    return sequences[seq].valueBytes;
  }

private:
  struct Sequence {
    int64_t length = 0;
    /// Exactly the bytes that were appended, for bit-exact comparison with
    /// what kvrt stored.
    std::vector<uint8_t> keyBytes, valueBytes;
    /// The same data as float64, for attention.
    std::vector<double> keys, values;
  };

  CacheDesc cacheDesc;
  std::vector<Sequence> sequences;
};

/// How far an output is from its reference.
struct Comparison {
  /// ||out - ref||_2 / ||ref||_2 (the absolute norm if ||ref||_2 is 0).
  double relErr = 0;
  double maxAbs = 0;
  /// Elements of `out` that are NaN or infinite.
  int64_t numNonFinite = 0;
  int64_t firstNonFinite = -1;
};
Comparison compareOutputs(const std::vector<double> &out,
                          const std::vector<double> &ref);

/// Default bound on relErr for outputs of `dtype`.
double defaultTolerance(DType dtype);

} // namespace run
} // namespace kvcc

#endif // KVCC_RUN_REFERENCE_H
