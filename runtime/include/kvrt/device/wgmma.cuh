//===- wgmma.cuh - Hopper warpgroup MMA building blocks --------*- CUDA -*-===//
//
// Thin wrappers over sm_90a's asynchronous warpgroup MMA (wgmma.mma_async)
// and the shared-memory matrix descriptors it reads, for the kernels of
// kvrt (attention_prefill_wgmma.cuh). A warpgroup is four consecutive warps
// (128 threads, the first a multiple of 128); every wgmma instruction is
// executed by all of them together.
//
// Shared-memory operands use the 128-byte swizzled layout: a tile of R rows
// of 16-bit elements is stored as column blocks of 64 elements (128 bytes),
// block after block; within a block, row r's 16-byte chunk c lives at byte
// 128 r + 16 (c ^ (r % 8)), and every block starts 1024-byte aligned. The
// same bytes serve as a K-major operand (rows = M or N, e.g. Q or K for
// S = Q·Kᵀ) and as an MN-major one (rows = K, e.g. V for O = P·V).
//
// Accumulators and register operands follow mma.sync m16n8k16 within each
// warp: warp w of the warpgroup owns rows 16 w .. 16 w + 15; for column tile
// n (8 columns) a thread holds d[4n .. 4n + 3] = (row r, columns 2c, 2c + 1)
// and (row r + 8, the same columns), r = lane / 4, c = lane % 4. So an fp32
// accumulator converts to the A operand of the next MMA in registers.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_WGMMA_CUH
#define KVRT_DEVICE_WGMMA_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace kvrt::device {

/// True when this compilation targets sm_90a, whose wgmma instructions the
/// functions below emit (they compile to nothing elsewhere).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ == 900 &&                          \
    defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define KVRT_DEVICE_HAS_WGMMA 1
inline constexpr bool kDeviceHasWgmma = true;
#else
#define KVRT_DEVICE_HAS_WGMMA 0
inline constexpr bool kDeviceHasWgmma = false;
#endif

namespace wgmma {

/// Bytes of one swizzled column block row (64 16-bit elements).
inline constexpr int kRowBytes = 128;
/// Bytes of 8 rows: the swizzle's period and the descriptors' stride.
inline constexpr int kAtomBytes = 8 * kRowBytes;

/// Byte offset of 16-byte chunk `chunk` of row `row` in a swizzled tile of
/// `rows` rows (see the file comment).
__host__ __device__ constexpr int swizzledOffset(int rows, int row, int chunk) {
  return (chunk / 8) * rows * kRowBytes + row * kRowBytes +
         ((chunk % 8) ^ (row % 8)) * 16;
}

/// Byte offset of k-step `step` (16 elements of 2 bytes) in a K-major
/// swizzled operand of `rows` rows: 32 bytes per step inside a 64-element
/// column block, then the next block.
__host__ __device__ constexpr uint32_t kStepOffset(int rows, int step) {
  return uint32_t((step / 4) * rows * kRowBytes + (step % 4) * 32);
}

/// Descriptor of a 128-byte-swizzled shared-memory operand starting at
/// shared address `address`: `leading` and `stride` are the byte strides
/// PTX calls the leading and stride dimension byte offsets (K-major: stride
/// = 8-row step, leading unused; MN-major: leading = next 64-element
/// column block, stride = next 8 rows of K).
__device__ __forceinline__ uint64_t descriptor(uint32_t address,
                                               uint32_t leading,
                                               uint32_t stride) {
  uint64_t d = (address & 0x3FFFFu) >> 4;
  d |= uint64_t((leading >> 4) & 0x3FFFu) << 16;
  d |= uint64_t((stride >> 4) & 0x3FFFu) << 32;
  d |= uint64_t(1) << 62; // 128-byte swizzle
  return d;
}

/// The descriptor `d` moved by `bytes` (a multiple of 16) in shared memory.
__device__ __forceinline__ uint64_t advance(uint64_t d, uint32_t bytes) {
  return d + (bytes >> 4);
}

/// advance as one 32-bit add on the descriptor's low word (the address
/// field cannot carry out of it: shared addresses are below 256 KiB). In
/// the warp-specialized body's consumer loop ptxas then builds each
/// descriptor with one uniform add instead of a 64-bit pair (760 → 743
/// instructions per tile); the 64-row body's loop got longer with it
/// (639 → 658), so it keeps advance.
__device__ __forceinline__ uint64_t advanceLow(uint64_t d, uint32_t bytes) {
  return (d & 0xffffffff00000000ull) | uint32_t(uint32_t(d) + (bytes >> 4));
}

/// Orders this warpgroup's register writes before the wgmma instructions
/// that follow (accumulators and register operands).
__device__ __forceinline__ void fence() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

/// Closes the group of wgmma instructions issued since the last commit.
__device__ __forceinline__ void commit() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

/// Waits until at most `Pending` committed groups are still running.
template <int Pending> __device__ __forceinline__ void wait() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#endif
}

/// A point ptxas does not schedule instructions across: put before a
/// wait<N> that must stay after the code above it. ptxas treats
/// wgmma.wait_group as free and moves it up over independent arithmetic
/// (in the warp-specialized prefill body, ptxas 13.0 put the wait for the
/// previous tile's P·V above the whole softmax of the next, so the two did
/// not overlap); a CTA-scope fence is a scheduling barrier to it, and
/// costs little where the thread has no memory operations of its own in
/// flight. (__syncwarp and a named barrier did not hold the wait back; a
/// branch to a trap on a condition that is never true did, but ptxas then
/// serialized the kernel's wgmmas, C7512.)
__device__ __forceinline__ void schedulingBarrier() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("fence.acq_rel.cta;\n" ::: "memory");
#endif
}

/// Makes this thread's generic-proxy writes to shared memory (st.shared,
/// cp.async after its wait) visible to wgmma's async-proxy reads; a barrier
/// must follow before another thread's wgmma reads them.
__device__ __forceinline__ void sharedProxyFence() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/// Keeps the compiler from moving reads or writes of `d`'s registers across
/// this point, where a wgmma that writes them is issued or completes.
template <int N> __device__ __forceinline__ void pin(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}

// Operands of the wgmma statements below: a thread's N / 2 accumulator
// registers of a 64 x N fp32 tile (N = 64, 128 or 192) and their
// placeholders.
#define KVRT_WGMMA_D32(d)                                                      \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),      \
      "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]),             \
      "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),         \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),         \
      "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),         \
      "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),         \
      "+f"(d[31])
#define KVRT_WGMMA_D64(d)                                                      \
  KVRT_WGMMA_D32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),       \
      "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),         \
      "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),         \
      "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),         \
      "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),         \
      "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),         \
      "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define KVRT_WGMMA_D96(d)                                                      \
  KVRT_WGMMA_D64(d), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]),       \
      "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]),         \
      "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]),         \
      "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]),         \
      "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),         \
      "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]),         \
      "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
#define KVRT_WGMMA_R32                                                         \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "     \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, "     \
  "%30, %31"
#define KVRT_WGMMA_R64                                                         \
  KVRT_WGMMA_R32 ", %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, "   \
                 "%43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, "     \
                 "%54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define KVRT_WGMMA_R96                                                         \
  KVRT_WGMMA_R64 ", %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, "   \
                 "%75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, "     \
                 "%86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
// wgmma.mma_async of `shape` (m64nNk16) with `type` (f16 or bf16) inputs
// and fp32 accumulators `dRegs` (placeholders) / `...` (operands); `aRegs`
// the A operand (a shared-memory descriptor or "{...}" registers), `bReg`
// B's descriptor, `setp` sets the scale-d predicate p, `tail` the A/B scale
// and transpose flags, `inputs` the input operands.
#define KVRT_WGMMA(shape, type, dRegs, aRegs, bReg, setp, tail, inputs, ...)   \
  asm volatile("{\n.reg .pred p;\n" setp "\n"                                  \
               "wgmma.mma_async.sync.aligned." shape ".f32." type "." type     \
               " {" dRegs "}, " aRegs ", " bReg ", p, " tail ";\n}\n"          \
               : __VA_ARGS__                                                   \
               : inputs)
// Passes a list of input operands as one macro argument.
#define KVRT_WGMMA_INPUTS(...) __VA_ARGS__

/// d (64 x N, fp32) = A · B (+ d when `accumulate`), A (64 x 16) and B
/// (16 x N) K-major in shared memory (descriptors `a`, `b`). N: 64, 128 or
/// 192.
template <typename T, int N>
__device__ __forceinline__ void mmaShared(float (&d)[N / 2], uint64_t a,
                                          uint64_t b, int accumulate) {
  static_assert(N == 64 || N == 128 || N == 192, "N must be 64, 128 or 192");
#if KVRT_DEVICE_HAS_WGMMA
#define KVRT_WGMMA_SS_64(type)                                                 \
  KVRT_WGMMA("m64n64k16", type, KVRT_WGMMA_R32, "%32", "%33",                  \
             "setp.ne.b32 p, %34, 0;", "1, 1, 0, 0",                           \
             KVRT_WGMMA_INPUTS("l"(a), "l"(b), "r"(accumulate)),               \
             KVRT_WGMMA_D32(d))
#define KVRT_WGMMA_SS_128(type)                                                \
  KVRT_WGMMA("m64n128k16", type, KVRT_WGMMA_R64, "%64", "%65",                 \
             "setp.ne.b32 p, %66, 0;", "1, 1, 0, 0",                           \
             KVRT_WGMMA_INPUTS("l"(a), "l"(b), "r"(accumulate)),               \
             KVRT_WGMMA_D64(d))
#define KVRT_WGMMA_SS_192(type)                                                \
  KVRT_WGMMA("m64n192k16", type, KVRT_WGMMA_R96, "%96", "%97",                 \
             "setp.ne.b32 p, %98, 0;", "1, 1, 0, 0",                           \
             KVRT_WGMMA_INPUTS("l"(a), "l"(b), "r"(accumulate)),               \
             KVRT_WGMMA_D96(d))
  if constexpr (std::is_same_v<T, __half> && N == 64)
    KVRT_WGMMA_SS_64("f16");
  else if constexpr (std::is_same_v<T, __half> && N == 128)
    KVRT_WGMMA_SS_128("f16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 64)
    KVRT_WGMMA_SS_64("bf16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 128)
    KVRT_WGMMA_SS_128("bf16");
  else if constexpr (std::is_same_v<T, __half> && N == 192)
    KVRT_WGMMA_SS_192("f16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 192)
    KVRT_WGMMA_SS_192("bf16");
#undef KVRT_WGMMA_SS_64
#undef KVRT_WGMMA_SS_128
#undef KVRT_WGMMA_SS_192
#endif
}

/// d (64 x N, fp32) += A · B, A (64 x 16) in registers (`a`, the m16n8k16
/// A fragment of the thread's warp rows) and B (16 x N) MN-major in shared
/// memory (descriptor `b`). N: 64 or 128.
template <typename T, int N>
__device__ __forceinline__ void
mmaRegisterA(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t b) {
  static_assert(N == 64 || N == 128, "N must be 64 or 128");
#if KVRT_DEVICE_HAS_WGMMA
#define KVRT_WGMMA_RS_64(type)                                                 \
  KVRT_WGMMA(                                                                  \
      "m64n64k16", type, KVRT_WGMMA_R32, "{%32, %33, %34, %35}", "%36",        \
      "setp.eq.u32 p, 1, 1;", "1, 1, 1",                                       \
      KVRT_WGMMA_INPUTS("r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b)),   \
      KVRT_WGMMA_D32(d))
#define KVRT_WGMMA_RS_128(type)                                                \
  KVRT_WGMMA(                                                                  \
      "m64n128k16", type, KVRT_WGMMA_R64, "{%64, %65, %66, %67}", "%68",       \
      "setp.eq.u32 p, 1, 1;", "1, 1, 1",                                       \
      KVRT_WGMMA_INPUTS("r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b)),   \
      KVRT_WGMMA_D64(d))
  if constexpr (std::is_same_v<T, __half> && N == 64)
    KVRT_WGMMA_RS_64("f16");
  else if constexpr (std::is_same_v<T, __half> && N == 128)
    KVRT_WGMMA_RS_128("f16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 64)
    KVRT_WGMMA_RS_64("bf16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 128)
    KVRT_WGMMA_RS_128("bf16");
#undef KVRT_WGMMA_RS_64
#undef KVRT_WGMMA_RS_128
#endif
}

/// d (64 x N, fp32) = A · B (+ d when `accumulate`), A (64 x 16) in
/// registers (`a`, as for mmaRegisterA) and B (16 x N) K-major in shared
/// memory (descriptor `b`, as for mmaShared): S = Q·Kᵀ with Q's fragments
/// held in registers. N: 64, 128 or 192.
template <typename T, int N>
__device__ __forceinline__ void mmaRegisterAKMajorB(float (&d)[N / 2],
                                                    const uint32_t (&a)[4],
                                                    uint64_t b,
                                                    int accumulate) {
  static_assert(N == 64 || N == 128 || N == 192, "N must be 64, 128 or 192");
#if KVRT_DEVICE_HAS_WGMMA
#define KVRT_WGMMA_RK_64(type)                                                 \
  KVRT_WGMMA("m64n64k16", type, KVRT_WGMMA_R32, "{%32, %33, %34, %35}", "%36", \
             "setp.ne.b32 p, %37, 0;", "1, 1, 0",                              \
             KVRT_WGMMA_INPUTS("r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),     \
                               "l"(b), "r"(accumulate)),                       \
             KVRT_WGMMA_D32(d))
#define KVRT_WGMMA_RK_128(type)                                                \
  KVRT_WGMMA("m64n128k16", type, KVRT_WGMMA_R64, "{%64, %65, %66, %67}",       \
             "%68", "setp.ne.b32 p, %69, 0;", "1, 1, 0",                       \
             KVRT_WGMMA_INPUTS("r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),     \
                               "l"(b), "r"(accumulate)),                       \
             KVRT_WGMMA_D64(d))
#define KVRT_WGMMA_RK_192(type)                                                \
  KVRT_WGMMA("m64n192k16", type, KVRT_WGMMA_R96, "{%96, %97, %98, %99}",       \
             "%100", "setp.ne.b32 p, %101, 0;", "1, 1, 0",                     \
             KVRT_WGMMA_INPUTS("r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]),     \
                               "l"(b), "r"(accumulate)),                       \
             KVRT_WGMMA_D96(d))
  if constexpr (std::is_same_v<T, __half> && N == 64)
    KVRT_WGMMA_RK_64("f16");
  else if constexpr (std::is_same_v<T, __half> && N == 128)
    KVRT_WGMMA_RK_128("f16");
  else if constexpr (std::is_same_v<T, __half> && N == 192)
    KVRT_WGMMA_RK_192("f16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 64)
    KVRT_WGMMA_RK_64("bf16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 128)
    KVRT_WGMMA_RK_128("bf16");
  else if constexpr (std::is_same_v<T, __nv_bfloat16> && N == 192)
    KVRT_WGMMA_RK_192("bf16");
#undef KVRT_WGMMA_RK_64
#undef KVRT_WGMMA_RK_128
#undef KVRT_WGMMA_RK_192
#endif
}

#undef KVRT_WGMMA
#undef KVRT_WGMMA_INPUTS
#undef KVRT_WGMMA_D32
#undef KVRT_WGMMA_D64
#undef KVRT_WGMMA_D96
#undef KVRT_WGMMA_R32
#undef KVRT_WGMMA_R64
#undef KVRT_WGMMA_R96

} // namespace wgmma
} // namespace kvrt::device

#endif // KVRT_DEVICE_WGMMA_CUH
