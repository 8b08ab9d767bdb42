//===- Float16.h - Software half and bfloat16 conversion --------*- C++ -*-===//
//
// Host code cannot rely on a native half type (C++17, any compiler), so kvrt
// converts IEEE binary16 and bfloat16 bit patterns in software. Conversions
// to the narrow types round to nearest, ties to even, like the GPU's
// __float2half_rn / __float2bfloat16_rn, so host and device agree bit for
// bit. Header-only so that unit tests can use the exact same routines.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_FLOAT16_H
#define KVRT_LIB_FLOAT16_H

#include <cstdint>
#include <cstring>

namespace kvrt {

/// Bit pattern of a float.
inline uint32_t floatBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

/// Float with the given bit pattern.
inline float floatFromBits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

/// Shifts `value` right by `shift` (1..31) bits rounding to nearest, ties to
/// even; the carry of a round-up may ripple into higher bits, which is what
/// both the subnormal and the normal path of floatToHalf want.
inline uint32_t shiftRightRoundEven(uint32_t value, unsigned shift) {
  uint32_t result = value >> shift;
  uint32_t remainder = value & ((1u << shift) - 1u);
  uint32_t halfway = 1u << (shift - 1u);
  if (remainder > halfway || (remainder == halfway && (result & 1u)))
    ++result;
  return result;
}

/// Converts a float to IEEE binary16 bits. Overflow gives infinity, values
/// below half the smallest subnormal give signed zero, NaN stays a (quiet)
/// NaN with the top payload bits kept.
inline uint16_t floatToHalf(float value) {
  uint32_t bits = floatBits(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    if (magnitude == 0x7f800000u)
      return static_cast<uint16_t>(sign | 0x7c00u);
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x1ffu));
  }
  // Exponent re-biased for binary16 (bias 15 instead of 127).
  int exponent = static_cast<int>(magnitude >> 23) - 127 + 15;
  uint32_t mantissa = magnitude & 0x7fffffu;
  if (exponent >= 31)
    return static_cast<uint16_t>(sign | 0x7c00u);
  if (exponent <= 0) {
    // Subnormal (or zero) result: value = M * 2^(exponent - 38) with the
    // implicit bit in M, and a subnormal half is m * 2^-24, so m is M shifted
    // right by 14 - exponent. Below 2^-25 even rounding cannot reach 2^-24.
    if (exponent < -10)
      return static_cast<uint16_t>(sign);
    uint32_t full = mantissa | 0x800000u;
    return static_cast<uint16_t>(
        sign | shiftRightRoundEven(full, static_cast<unsigned>(14 - exponent)));
  }
  // Normal result; a round-up carry may move into the exponent and may even
  // produce infinity (0x7c00), both of which are the correctly rounded result.
  uint32_t half = (static_cast<uint32_t>(exponent) << 10) | (mantissa >> 13);
  uint32_t remainder = mantissa & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u)))
    ++half;
  return static_cast<uint16_t>(sign | half);
}

/// Converts IEEE binary16 bits to float (exact: every half is a float).
inline float halfToFloat(uint16_t half) {
  uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  uint32_t exponent = (half >> 10) & 0x1fu;
  uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float arithmetic.
    float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31)
    return floatFromBits(sign | 0x7f800000u | (mantissa << 13));
  return floatFromBits(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

/// Converts a float to bfloat16 bits (the top half of a float), rounding to
/// nearest even; NaN stays a quiet NaN.
inline uint16_t floatToBFloat16(float value) {
  uint32_t bits = floatBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  // Adding 0x7fff plus the lowest kept bit rounds ties to even; a carry into
  // the exponent is the correct rounding, up to infinity.
  uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

/// Converts bfloat16 bits to float (exact).
inline float bfloat16ToFloat(uint16_t value) {
  return floatFromBits(static_cast<uint32_t>(value) << 16);
}

} // namespace kvrt

#endif // KVRT_LIB_FLOAT16_H
