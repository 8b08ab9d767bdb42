//===- Reference.cpp - Naive float64 KV-cache reference --------*- C++ -*-===//

#include "Reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace kvcc::run;

namespace {

/// Layout of a binary IEEE-754 format narrower than double.
struct FloatFormat {
  int expBits;
  int mantBits;
};

FloatFormat formatOf(DType dtype) {
  switch (dtype) {
  case DType::F16:
    return {5, 10};
  case DType::BF16:
    return {8, 7};
  case DType::F32:
    return {8, 23};
  }
  return {8, 23};
}

/// Rounds the 53-bit significand `mant` right by `shift` bits, to nearest
/// with ties to even. A carry out of the kept bits is left in the result for
/// the caller to renormalize.
uint64_t roundShift(uint64_t mant, int shift) {
  if (shift >= 64)
    return 0; // below half of the smallest step: rounds to zero
  uint64_t kept = mant >> shift;
  uint64_t rest = mant & ((uint64_t(1) << shift) - 1);
  uint64_t half = uint64_t(1) << (shift - 1);
  if (rest > half || (rest == half && (kept & 1)))
    ++kept;
  return kept;
}

/// Encodes a double directly into a narrower format. Going through float
/// first would round twice, which differs from a single rounding for f16 and
/// bf16 in rare tie cases.
uint32_t encodeFormat(double value, FloatFormat format) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const int bias = (1 << (format.expBits - 1)) - 1;
  const int maxExp = (1 << format.expBits) - 1;
  const uint32_t sign = uint32_t(bits >> 63)
                        << (format.expBits + format.mantBits);
  const uint32_t infinity = uint32_t(maxExp) << format.mantBits;
  const int exp = int((bits >> 52) & 0x7ff);
  const uint64_t fraction = bits & ((uint64_t(1) << 52) - 1);

  if (exp == 0x7ff) // NaN becomes a quiet NaN, infinity stays infinity
    return sign | infinity |
           (fraction ? uint32_t(1) << (format.mantBits - 1) : 0);
  if (exp == 0) // double zeros and subnormals are far below any step here
    return sign;

  const uint64_t mant = fraction | (uint64_t(1) << 52);
  int biased = exp - 1023 + bias;
  if (biased >= 1) {
    uint64_t kept = roundShift(mant, 52 - format.mantBits);
    if (kept >> (format.mantBits + 1)) { // rounded up to the next binade
      kept >>= 1;
      ++biased;
    }
    if (biased >= maxExp)
      return sign | infinity;
    return sign | (uint32_t(biased) << format.mantBits) |
           uint32_t(kept & ((uint64_t(1) << format.mantBits) - 1));
  }
  // Subnormal in the target: count in units of the smallest subnormal,
  // 2^(1 - bias - mantBits). Rounding up into the smallest normal yields
  // exactly its encoding, because the implicit bit lands in the exponent.
  int shift = 53 - bias - format.mantBits - (exp - 1023);
  return sign | uint32_t(roundShift(mant, shift));
}

double decodeFormat(uint32_t bits, FloatFormat format) {
  const int bias = (1 << (format.expBits - 1)) - 1;
  const int maxExp = (1 << format.expBits) - 1;
  const bool negative = (bits >> (format.expBits + format.mantBits)) & 1;
  const int exp = int((bits >> format.mantBits) & uint32_t(maxExp));
  const uint32_t mant = bits & ((uint32_t(1) << format.mantBits) - 1);
  double magnitude;
  if (exp == maxExp)
    magnitude = mant ? NAN : INFINITY;
  else if (exp == 0)
    magnitude = std::ldexp(double(mant), 1 - bias - format.mantBits);
  else
    magnitude = std::ldexp(double(mant | (uint32_t(1) << format.mantBits)),
                           exp - bias - format.mantBits);
  return negative ? -magnitude : magnitude;
}

} // namespace

uint32_t kvcc::run::encodeValue(DType dtype, double value) {
  return encodeFormat(value, formatOf(dtype));
}

double kvcc::run::decodeValue(DType dtype, uint32_t bits) {
  return decodeFormat(bits, formatOf(dtype));
}

double kvcc::run::loadElement(DType dtype, const void *data, size_t index) {
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  if (dtype == DType::F32) {
    uint32_t bits;
    std::memcpy(&bits, bytes + 4 * index, 4);
    return decodeValue(dtype, bits);
  }
  uint16_t bits;
  std::memcpy(&bits, bytes + 2 * index, 2);
  return decodeValue(dtype, bits);
}

void kvcc::run::storeElement(DType dtype, void *data, size_t index,
                             double value) {
  uint8_t *bytes = static_cast<uint8_t *>(data);
  uint32_t bits = encodeValue(dtype, value);
  if (dtype == DType::F32) {
    std::memcpy(bytes + 4 * index, &bits, 4);
    return;
  }
  uint16_t half = uint16_t(bits);
  std::memcpy(bytes + 2 * index, &half, 2);
}

HostTensor::HostTensor(const TensorType &type)
    : type(type), bytes(type.numElements() * dtypeSize(type.dtype)),
      values(type.numElements()) {}

void HostTensor::assign(const std::vector<double> &newValues) {
  for (size_t i = 0; i < values.size(); ++i)
    storeElement(type.dtype, bytes.data(), i, newValues[i]);
  decodeBytes();
}

void HostTensor::decodeBytes() {
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = loadElement(type.dtype, bytes.data(), i);
}

ReferenceCache::ReferenceCache(const CacheDesc &desc, unsigned numSequences)
    : cacheDesc(desc), sequences(numSequences) {}

std::string ReferenceCache::append(const HostTensor &keys,
                                   const HostTensor &values) {
  const int64_t batch = keys.type.shape[0], tokens = keys.type.shape[1];
  // Like kvrt_append, all or nothing: check every sequence first.
  for (int64_t b = 0; b < batch; ++b)
    if (sequences[b].length + tokens > cacheDesc.capacity)
      return "sequence " + std::to_string(b) + " would hold " +
             std::to_string(sequences[b].length + tokens) +
             " tokens, more than the capacity " +
             std::to_string(cacheDesc.capacity);

  // keys[b] is already [T, kv_heads, head_dim], the per-sequence layout, so
  // appending is one contiguous copy per sequence.
  const size_t elements =
      size_t(tokens) * cacheDesc.numKvHeads * cacheDesc.headDim;
  const size_t bytes = elements * dtypeSize(cacheDesc.dtype);
  for (int64_t b = 0; b < batch; ++b) {
    Sequence &seq = sequences[b];
    seq.keyBytes.insert(seq.keyBytes.end(), keys.bytes.begin() + b * bytes,
                        keys.bytes.begin() + (b + 1) * bytes);
    seq.valueBytes.insert(seq.valueBytes.end(),
                          values.bytes.begin() + b * bytes,
                          values.bytes.begin() + (b + 1) * bytes);
    seq.keys.insert(seq.keys.end(), keys.values.begin() + b * elements,
                    keys.values.begin() + (b + 1) * elements);
    seq.values.insert(seq.values.end(), values.values.begin() + b * elements,
                      values.values.begin() + (b + 1) * elements);
    seq.length += tokens;
  }
  return "";
}

std::string ReferenceCache::attention(const HostTensor &queries, double scale,
                                      bool causal,
                                      std::vector<double> &out) const {
  const int64_t batch = queries.type.shape[0], tokens = queries.type.shape[1];
  const int64_t qHeads = queries.type.shape[2];
  const int64_t kvHeads = cacheDesc.numKvHeads, dim = cacheDesc.headDim;
  const int64_t group = qHeads / kvHeads;
  for (int64_t b = 0; b < batch; ++b)
    if (sequences[b].length < tokens)
      return "sequence " + std::to_string(b) + " holds " +
             std::to_string(sequences[b].length) + " tokens, fewer than its " +
             std::to_string(tokens) + " queries";

  out.assign(queries.values.size(), 0.0);
  std::vector<double> scores;
  for (int64_t b = 0; b < batch; ++b) {
    const Sequence &seq = sequences[b];
    for (int64_t t = 0; t < tokens; ++t) {
      // Query t is position length - T + t; causally it sees itself and
      // everything before it.
      const int64_t visible = causal ? seq.length - tokens + t + 1 : seq.length;
      for (int64_t qh = 0; qh < qHeads; ++qh) {
        const int64_t kh = qh / group;
        const double *q =
            &queries.values[((b * tokens + t) * qHeads + qh) * dim];
        double *o = &out[((b * tokens + t) * qHeads + qh) * dim];
        scores.assign(visible, 0.0);
        double maxScore = -INFINITY;
        for (int64_t j = 0; j < visible; ++j) {
          const double *k = &seq.keys[(j * kvHeads + kh) * dim];
          double dot = 0;
          for (int64_t d = 0; d < dim; ++d)
            dot += q[d] * k[d];
          scores[j] = scale * dot;
          maxScore = std::max(maxScore, scores[j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < visible; ++j) {
          scores[j] = std::exp(scores[j] - maxScore);
          sum += scores[j];
        }
        for (int64_t j = 0; j < visible; ++j) {
          const double *v = &seq.values[(j * kvHeads + kh) * dim];
          const double weight = scores[j] / sum;
          for (int64_t d = 0; d < dim; ++d)
            o[d] += weight * v[d];
        }
      }
    }
  }
  return "";
}

Comparison kvcc::run::compareOutputs(const std::vector<double> &out,
                                     const std::vector<double> &ref) {
  Comparison result;
  double diffSquared = 0, refSquared = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      if (!result.numNonFinite++)
        result.firstNonFinite = i;
      continue;
    }
    const double diff = std::fabs(out[i] - ref[i]);
    result.maxAbs = std::max(result.maxAbs, diff);
    diffSquared += diff * diff;
    refSquared += ref[i] * ref[i];
  }
  result.relErr = refSquared > 0 ? std::sqrt(diffSquared / refSquared)
                                 : std::sqrt(diffSquared);
  return result;
}

double kvcc::run::defaultTolerance(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return 1e-5;
  case DType::F16:
    return 2e-3;
  case DType::BF16:
    return 1.6e-2;
  }
  return 1e-5;
}
