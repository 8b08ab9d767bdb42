//===- Float16Test.cpp - Software half and bfloat16 conversion --*- C++ -*-===//
//
// Exhaustive round trips of every 16-bit pattern, plus the rounding cases
// that matter: ties to even, subnormals, overflow, infinities and NaN.
//
//===----------------------------------------------------------------------===//
#include "Float16.h"

#include "gtest/gtest.h"

#include <cmath>
#include <limits>

using namespace kvrt;

namespace {

TEST(Float16Test, HalfRoundTripsEveryPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    uint16_t half = static_cast<uint16_t>(bits);
    float value = halfToFloat(half);
    bool isNaN = (half & 0x7c00) == 0x7c00 && (half & 0x3ff) != 0;
    if (isNaN) {
      EXPECT_TRUE(std::isnan(value)) << std::hex << bits;
      EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(value))));
      continue;
    }
    EXPECT_EQ(floatToHalf(value), half) << std::hex << bits;
  }
}

TEST(Float16Test, HalfKnownValues) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff); // largest finite
  EXPECT_EQ(floatToHalf(0.0f), 0x0000);
  EXPECT_EQ(floatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(halfToFloat(0x0001), std::ldexp(1.0f, -24)); // smallest subnormal
  EXPECT_EQ(halfToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(halfToFloat(0x0400), std::ldexp(1.0f, -14)); // smallest normal
  EXPECT_EQ(halfToFloat(0x3555), 0.333251953125f);
}

TEST(Float16Test, HalfRoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  // 1 + 3 * 2^-11 is halfway between 0x3c01 and 0x3c02: even is 0x3c02.
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Just above the tie rounds up.
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)),
            0x3c01);
  // Mantissa carry into the exponent: just below 2 rounds to 2.
  EXPECT_EQ(floatToHalf(2.0f - std::ldexp(1.0f, -12)), 0x4000);
}

TEST(Float16Test, HalfOverflowAndSubnormals) {
  EXPECT_EQ(floatToHalf(65519.0f), 0x7bff); // rounds down to 65504
  EXPECT_EQ(floatToHalf(65520.0f), 0x7c00); // tie rounds to even: infinity
  EXPECT_EQ(floatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(floatToHalf(-1e10f), 0xfc00);
  // 2^-25 is half the smallest subnormal: a tie, rounds to even zero.
  EXPECT_EQ(floatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(floatToHalf(-std::ldexp(1.0f, -25)), 0x8000);
  // Anything above the tie rounds to the smallest subnormal.
  EXPECT_EQ(floatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  // 1.5 * 2^-24 is a tie between 1 and 2 subnormal units: even is 2.
  EXPECT_EQ(floatToHalf(std::ldexp(1.5f, -24)), 0x0002);
  EXPECT_EQ(floatToHalf(std::ldexp(2.5f, -24)), 0x0002);
  EXPECT_EQ(floatToHalf(1e-30f), 0x0000);
  // Largest subnormal plus half a unit rounds up to the smallest normal.
  EXPECT_EQ(floatToHalf(std::ldexp(1023.5f, -24)), 0x0400);
  // Float subnormals are far below half's range.
  EXPECT_EQ(floatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(Float16Test, HalfInfinityAndNaN) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(floatToHalf(inf), 0x7c00);
  EXPECT_EQ(floatToHalf(-inf), 0xfc00);
  EXPECT_EQ(halfToFloat(0x7c00), inf);
  EXPECT_EQ(halfToFloat(0xfc00), -inf);
  uint16_t nan = floatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  // A signalling NaN whose payload lives only in low bits stays a NaN.
  EXPECT_TRUE(std::isnan(halfToFloat(floatToHalf(floatFromBits(0x7f800001)))));
}

TEST(Float16Test, BFloat16RoundTripsEveryPattern) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    uint16_t value16 = static_cast<uint16_t>(bits);
    float value = bfloat16ToFloat(value16);
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(bfloat16ToFloat(floatToBFloat16(value))));
      continue;
    }
    EXPECT_EQ(floatToBFloat16(value), value16) << std::hex << bits;
  }
}

TEST(Float16Test, BFloat16Rounding) {
  EXPECT_EQ(floatToBFloat16(1.0f), 0x3f80);
  // 1 + 2^-8 is a tie between 1 and 1 + 2^-7: even is 1.
  EXPECT_EQ(floatToBFloat16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  // 1 + 3 * 2^-8 ties between 0x3f81 and 0x3f82: even is 0x3f82.
  EXPECT_EQ(floatToBFloat16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(
      floatToBFloat16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)),
      0x3f81);
  // The largest float rounds up to infinity.
  EXPECT_EQ(floatToBFloat16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(floatToBFloat16(-std::numeric_limits<float>::infinity()), 0xff80);
  // Subnormals keep their top bits.
  EXPECT_EQ(floatToBFloat16(floatFromBits(0x00010000)), 0x0001);
  uint16_t nan = floatToBFloat16(floatFromBits(0x7f800001));
  EXPECT_TRUE(std::isnan(bfloat16ToFloat(nan)));
}

} // namespace
