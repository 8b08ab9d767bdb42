//===- shared.cuh - The block's dynamic shared memory ----------*- CUDA -*-===//
//
// Shared-window addresses and the dynamic shared memory every body of
// pagedAttention keeps its block state in: the decode bodies' combine
// state (a few KiB) and the prefill bodies' tiles. In the configuration
// kvcc's kernels instantiate none of them declares static shared memory
// (only the decode body's benchmark variants, QueryInShared and
// DynamicSteps in attention_mma.cuh, add small static arrays), so that a
// kernel's whole allowance (227 KiB on sm_90) is the launch's to give: the
// warp-specialized prefill body's three slots of 128-key tiles take 226
// KiB at head_dim 128. Part of the device library that kvcc's generated
// CUDA includes.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_SHARED_CUH
#define KVRT_DEVICE_SHARED_CUH

#include <cstdint>

namespace kvrt::device {

/// The shared-window address of `pointer` (which points into shared
/// memory).
__device__ __forceinline__ uint32_t sharedAddress(const void *pointer) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(pointer));
}

/// Bytes of dynamic shared memory this block was launched with.
__device__ __forceinline__ uint32_t dynamicSharedBytes() {
  uint32_t bytes;
  asm("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(bytes));
  return bytes;
}

/// The block's dynamic shared memory, its start rounded up to `Align`
/// bytes (Align bytes of the launch's allowance go to the rounding).
template <int Align>
__device__ __forceinline__ unsigned char *alignedDynamicShared() {
  extern __shared__ unsigned char kvrtDynamicShared[];
  const uint32_t address = sharedAddress(kvrtDynamicShared);
  return kvrtDynamicShared + (Align - address % Align) % Align;
}

/// The block's dynamic shared memory as a `State` (at a 16-byte boundary);
/// the launch gives at least sizeof(State) + 16 bytes.
template <typename State> __device__ __forceinline__ State &sharedState() {
  static_assert(alignof(State) <= 16, "State needs at most 16-byte alignment");
  return *reinterpret_cast<State *>(alignedDynamicShared<16>());
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_SHARED_CUH
