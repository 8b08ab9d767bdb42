//===- softmax.cuh - Online softmax and warp reductions --------*- CUDA -*-===//
//
// Building blocks of streaming (online) softmax: a running maximum and sum
// per query head, updated one score at a time, and the merge of two such
// states computed over disjoint key sets. Scores are in log2 units (the
// query is pre-multiplied by scale * log2(e)) so that exp2f, a single
// hardware instruction, replaces expf.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_SOFTMAX_CUH
#define KVRT_DEVICE_SOFTMAX_CUH

#include <cuda_runtime.h>

namespace kvrt::device {

/// log2(e): turns natural-log scores into log2 scores.
inline constexpr float kLog2e = 1.4426950408889634f;

/// Adds one score to a running (max, sum) state. On return `oldScale` is the
/// factor that rescales everything accumulated so far to the new maximum
/// and `weight` is the new score's (unnormalized) probability; callers apply
/// both to their output accumulators: acc = acc * oldScale + weight * value.
__device__ __forceinline__ void
onlineSoftmaxStep(float score, float &runningMax, float &runningSum,
                  float &oldScale, float &weight) {
  float newMax = fmaxf(runningMax, score);
  if (newMax == -INFINITY) {
    // No finite score yet: -inf - -inf would be NaN.
    oldScale = 1.0f;
    weight = 0.0f;
    return;
  }
  oldScale = exp2f(runningMax - newMax);
  weight = exp2f(score - newMax);
  runningSum = runningSum * oldScale + weight;
  runningMax = newMax;
}

/// Scales that bring a state with maximum `fromMax` to the maximum `toMax`
/// (toMax >= fromMax); an empty state (-inf) contributes nothing.
__device__ __forceinline__ float rescaleFactor(float fromMax, float toMax) {
  return fromMax == -INFINITY ? 0.0f : exp2f(fromMax - toMax);
}

/// Merges state (otherMax, otherSum) into (runningMax, runningSum), as if
/// all of the other state's scores had been added one by one. Returns the
/// factors for this state's and the other state's accumulators.
__device__ __forceinline__ void
mergeSoftmaxStates(float &runningMax, float &runningSum, float otherMax,
                   float otherSum, float &selfScale, float &otherScale) {
  float merged = fmaxf(runningMax, otherMax);
  selfScale = rescaleFactor(runningMax, merged);
  otherScale = rescaleFactor(otherMax, merged);
  runningSum = runningSum * selfScale + otherSum * otherScale;
  runningMax = merged;
}

/// Sum of `value` over the aligned group of `Width` lanes (a power of two
/// <= 32) this lane belongs to; every lane of the group gets the sum. All 32
/// lanes of the warp must call it.
template <int Width> __device__ __forceinline__ float groupSum(float value) {
  static_assert(Width >= 1 && Width <= 32 && (Width & (Width - 1)) == 0,
                "group width must be a power of two <= 32");
#pragma unroll
  for (int offset = Width / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_SOFTMAX_CUH
