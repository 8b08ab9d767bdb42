//===- element.cuh - Element types of compiled kernels ---------*- CUDA -*-===//
//
// Conversions between the cache element types (__half, __nv_bfloat16, float)
// and the fp32 that kernels compute in, 16-byte vector loads that widen
// a whole vector to fp32 at once, and pointers whose accesses ask L2 to
// keep their lines. Part of the device library that kvcc's
// generated CUDA includes.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ELEMENT_CUH
#define KVRT_DEVICE_ELEMENT_CUH

#include "kvrt/kvrt.h"

#include <cuda/annotated_ptr>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

namespace kvrt::device {

/// True for the element types the device library supports.
template <typename T>
inline constexpr bool kIsSupportedElement =
    std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16> ||
    std::is_same_v<T, float>;

/// The kvrt_dtype of element type T (params.h's dtype).
template <typename T>
inline constexpr int kElementDtype =
    std::is_same_v<T, __half>          ? KVRT_DTYPE_F16
    : std::is_same_v<T, __nv_bfloat16> ? KVRT_DTYPE_BF16
                                       : KVRT_DTYPE_F32;

/// Elements of T in one 16-byte vector: the unit of every K/V load.
template <typename T> inline constexpr int kVecElems = 16 / sizeof(T);

/// The key-score hook's per-key value type for kernels of element T
/// (params.h): fp32 kernels keep floats, fp16 and bf16 kernels IEEE halves.
template <typename T>
using ScoreValue = std::conditional_t<std::is_same_v<T, float>, float, __half>;

/// Keys per maximum of the key-score hook's values (params.h's C) for
/// pages of `pageSize` tokens: 16, or the page where it is smaller (so a
/// chunk never spans pages that different warps or splits take).
__host__ __device__ constexpr int scoreChunkKeys(int pageSize) {
  return pageSize < 16 ? pageSize : 16;
}

/// Widens one element to fp32.
__device__ __forceinline__ float toFloat(float x) { return x; }
__device__ __forceinline__ float toFloat(__half x) { return __half2float(x); }
__device__ __forceinline__ float toFloat(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

/// Narrows fp32 to T, rounding to nearest even (as the host reference does).
template <typename T> __device__ __forceinline__ T fromFloat(float x);
template <> __device__ __forceinline__ float fromFloat<float>(float x) {
  return x;
}
template <> __device__ __forceinline__ __half fromFloat<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

/// Loads the 16 bytes at `source` (16-byte aligned) and widens them to
/// kVecElems<T> floats in `out`: one memory instruction per vector.
__device__ __forceinline__ void loadVector(const float *source, float *out) {
  float4 raw = *reinterpret_cast<const float4 *>(source);
  out[0] = raw.x;
  out[1] = raw.y;
  out[2] = raw.z;
  out[3] = raw.w;
}
__device__ __forceinline__ void loadVector(const __half *source, float *out) {
  uint4 raw = *reinterpret_cast<const uint4 *>(source);
  const __half2 *pairs = reinterpret_cast<const __half2 *>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 pair = __half22float2(pairs[i]);
    out[2 * i] = pair.x;
    out[2 * i + 1] = pair.y;
  }
}
__device__ __forceinline__ void loadVector(const __nv_bfloat16 *source,
                                           float *out) {
  uint4 raw = *reinterpret_cast<const uint4 *>(source);
  const __nv_bfloat162 *pairs = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    float2 pair = __bfloat1622float2(pairs[i]);
    out[2 * i] = pair.x;
    out[2 * i + 1] = pair.y;
  }
}

/// A quiet NaN of type T, written where a kernel refuses to compute.
template <typename T> __device__ __forceinline__ T quietNaN() {
  return fromFloat<T>(__int_as_float(0x7fc00000));
}

/// `at`, for stores (and loads) that ask L2 to keep their lines: on sm_80
/// and later, accesses through the result carry an evict-last cache policy
/// (cuda::associate_access_property with access_property::persisting:
/// st.global.L2::cache_hint); elsewhere it is `at`. They stay ordinary C++
/// accesses that the compiler schedules freely: the same stores as inline
/// PTX took the CUDA-core decode body from 168 to 225 registers.
template <typename V> __device__ __forceinline__ V *evictLast(V *at) {
  return ::cuda::associate_access_property(
      at, ::cuda::access_property::persisting{});
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ELEMENT_CUH
