//===- bench_kernels.cu - Decode kernels of the benchmark shapes -*- CUDA -*-//
//
// The kernels kvcc generates for the benchmark's kv.attention ops (fp16,
// d128, GQA groups 4 and 8, pages 16 and 64, decode without mask; d256
// group 2 for bench_d256.py; causal
// prefill chunks in fp16/bf16), defined exactly as generated code defines
// them. bench_decode.py loads this
// library next to libkvrt.so, asks kvcc_bench_kernel for the kernel and
// passes it to kvrt_attention_launch: the path compiled programs take.
// Build: nvcc -shared -cudart shared (one CUDA runtime with kvrt).
//
//===----------------------------------------------------------------------===//
#include "kvrt/device/attention.cuh"
#include "kvrt/device/attention_prefill_ws.cuh"
#include "kvrt/kvrt.h"
#include <algorithm>

// The start of kernels that call the tensor-core body directly (page 16):
// pagedAttentionChecked's launch check, then the group's first head.
#define KVCC_BENCH_CHECKED_HEAD(p, group)                                      \
  if (!kvrt::device::launchMatches<__half, 128, group, 16, false>(p))          \
    return;                                                                    \
  const int64_t firstHead =                                                    \
      int64_t(blockIdx.y) * (p).num_q_heads + int64_t(blockIdx.x) * (group)

#define KVCC_BENCH_KERNEL(name, group, pageSize)                               \
  __global__ __launch_bounds__(                                                \
      (kvrt::device::kDecodeMaxThreads<__half, 128, group, pageSize>),         \
      (kvrt::device::kDecodeMinBlocks<__half, 128, group, pageSize>)) void     \
  name(kvrt_attention_params p) {                                              \
    kvrt::device::pagedDecode<__half, 128, group, pageSize, false>(p);         \
  }

KVCC_BENCH_KERNEL(kvcc_f16_d128_g4_p16, 4, 16)
KVCC_BENCH_KERNEL(kvcc_f16_d128_g4_p64, 4, 64)
KVCC_BENCH_KERNEL(kvcc_f16_d128_g8_p16, 8, 16)
KVCC_BENCH_KERNEL(kvcc_f16_d128_g8_p64, 8, 64)

#undef KVCC_BENCH_KERNEL

// Variants of the page-16 kernels for comparison, not what kvcc emits:
// the CUDA-core body, the tensor-core body loading two chunks per step, and
// the kernel compiled for five blocks per SM.
#define KVCC_BENCH_SIMT(name, group)                                           \
  __global__ __launch_bounds__(kvrt::device::kAttentionThreads) void name(     \
      kvrt_attention_params p) {                                               \
    kvrt::device::pagedAttentionSimt<__half, 128, group, 16, false>(p);        \
  }
#define KVCC_BENCH_MMA2(name, group)                                           \
  __global__ __launch_bounds__(kvrt::device::kAttentionThreads) void name(     \
      kvrt_attention_params p) {                                               \
    const int64_t firstHead =                                                  \
        int64_t(blockIdx.y) * p.num_q_heads + int64_t(blockIdx.x) * group;     \
    kvrt::device::pagedAttentionMmaBody<__half, 128, group, 16, false, 2>(     \
        p, firstHead, blockIdx.z);                                             \
  }
// The emitted page-16 decode kernel compiled for other launch bounds.
#define KVCC_BENCH_BOUNDS(name, group, threads, blocks)                        \
  __global__ __launch_bounds__(threads, blocks) void name(                     \
      kvrt_attention_params p) {                                               \
    kvrt::device::pagedDecode<__half, 128, group, 16, false>(p);               \
  }
// Five blocks of 128 threads per SM (at most 102 registers) instead of 4.
KVCC_BENCH_BOUNDS(kvcc_lb5_g4_p16, 4, kvrt::device::kAttentionThreads, 5)
KVCC_BENCH_BOUNDS(kvcc_lb5_g8_p16, 8, kvrt::device::kAttentionThreads, 5)
// The tensor-core decode body prefetching its next chunk into L2.
#define KVCC_BENCH_PREFETCH(name, group)                                       \
  __global__ __launch_bounds__(kvrt::device::kAttentionThreads) void name(     \
      kvrt_attention_params p) {                                               \
    KVCC_BENCH_CHECKED_HEAD(p, group);                                         \
    kvrt::device::pagedAttentionMmaBody<__half, 128, group, 16, false, 1,      \
                                        true>(p, firstHead, blockIdx.z);       \
  }
// Lets the merge kernel launch early, as pagedAttentionChecked does (sm_90).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define KVCC_BENCH_LAUNCH_DEPENDENTS(p)                                        \
  if ((p).num_splits > 1)                                                      \
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory")
#else
#define KVCC_BENCH_LAUNCH_DEPENDENTS(p)
#endif
// The tensor-core body with its benchmark knobs (TMA L2 prefetch of the
// chunk 1 or 2 steps ahead; other load instructions; Qᵀ fragments in
// shared memory; steps claimed from a block-wide counter), four blocks per
// SM (128 registers) like the kernels kvcc emits.
#define KVCC_BENCH_BODY(name, group, bulk, load, queryInShared, dynamic)       \
  __global__ __launch_bounds__(kvrt::device::kAttentionThreads, 4) void name(  \
      kvrt_attention_params p) {                                               \
    KVCC_BENCH_CHECKED_HEAD(p, group);                                         \
    KVCC_BENCH_LAUNCH_DEPENDENTS(p);                                           \
    kvrt::device::pagedAttentionMmaBody<__half, 128, group, 16, false, 1,      \
                                        false, bulk, load, queryInShared,      \
                                        dynamic>(p, firstHead, blockIdx.z);    \
  }
KVCC_BENCH_BODY(kvcc_bulk1_g4_p16, 4, 1, 0, false, false)
KVCC_BENCH_BODY(kvcc_bulk1_g8_p16, 8, 1, 0, false, false)
KVCC_BENCH_BODY(kvcc_bulk2_g4_p16, 4, 2, 0, false, false)
KVCC_BENCH_BODY(kvcc_bulk2_g8_p16, 8, 2, 0, false, false)
KVCC_BENCH_BODY(kvcc_nc_g4_p16, 4, 0, 1, false, false)
KVCC_BENCH_BODY(kvcc_nc_g8_p16, 8, 0, 1, false, false)
KVCC_BENCH_BODY(kvcc_ldg_g4_p16, 4, 0, 2, false, false)
KVCC_BENCH_BODY(kvcc_ldg_g8_p16, 8, 0, 2, false, false)
KVCC_BENCH_BODY(kvcc_base_g4_p16, 4, 0, 0, false, false)
KVCC_BENCH_BODY(kvcc_base_g8_p16, 8, 0, 0, false, false)
KVCC_BENCH_BODY(kvcc_qsmem_g4_p16, 4, 0, 0, true, false)
KVCC_BENCH_BODY(kvcc_qsmem_g8_p16, 8, 0, 0, true, false)
KVCC_BENCH_BODY(kvcc_dyn_g4_p16, 4, 0, 0, false, true)
KVCC_BENCH_BODY(kvcc_dyn_g8_p16, 8, 0, 0, false, true)
#undef KVCC_BENCH_BODY
// Three blocks per SM (at most 168 registers; 152 used): every lane issues
// a chunk's K and V loads before its first MMA, which at 128 registers
// ptxas defers until the keys have arrived.
KVCC_BENCH_BOUNDS(kvcc_lb3_g4_p16, 4, kvrt::device::kAttentionThreads, 3)
KVCC_BENCH_BOUNDS(kvcc_lb3_g8_p16, 8, kvrt::device::kAttentionThreads, 3)
KVCC_BENCH_PREFETCH(kvcc_prefetch_g4_p16, 4)
KVCC_BENCH_PREFETCH(kvcc_prefetch_g8_p16, 8)
#undef KVCC_BENCH_PREFETCH
KVCC_BENCH_SIMT(kvcc_simt_g4_p16, 4)
KVCC_BENCH_SIMT(kvcc_simt_g8_p16, 8)
KVCC_BENCH_MMA2(kvcc_mma2_g4_p16, 4)
KVCC_BENCH_MMA2(kvcc_mma2_g8_p16, 8)
#undef KVCC_BENCH_SIMT
#undef KVCC_BENCH_MMA2

// The kernel kvcc emits compiled for blocks of 16 warps (512 threads, one
// block per SM), launched with 512 threads: one block streams a whole
// (sequence, kv head) row, or a split of it, as cuDNN's kernel does.
KVCC_BENCH_BOUNDS(kvcc_w16_g4_p16, 4, 512, 1)
KVCC_BENCH_BOUNDS(kvcc_w16_g8_p16, 8, 512, 1)
// The kernel kvcc emits under the bound it had before wide blocks
// (__launch_bounds__(128)): never widened by the runtime.
KVCC_BENCH_BOUNDS(kvcc_b128_g4_p16, 4, kvrt::device::kAttentionThreads, 0)
KVCC_BENCH_BOUNDS(kvcc_b128_g8_p16, 8, kvrt::device::kAttentionThreads, 0)
#undef KVCC_BENCH_BOUNDS

// The kernel kvcc emits with each block's start and end time (the GPU's
// global nanosecond timer) and SM recorded, for the --block-times
// breakdown of one call: slot x + gridDim.x * (y + gridDim.y * z).
constexpr int kTimedBlocks = 1 << 16;
/// Warps per block whose marks are kept (a wide block's 16).
constexpr int kTimedWarps = 16;
__device__ unsigned long long kvccTimedStart[kTimedBlocks];
__device__ unsigned long long kvccTimedEnd[kTimedBlocks];
__device__ unsigned int kvccTimedSm[kTimedBlocks];
/// Per block and warp (4 warps): when the warp folded its first chunk and
/// its last (TimedProbe).
__device__ unsigned long long kvccTimedPhase[kTimedBlocks][kTimedWarps][2];
__device__ __forceinline__ unsigned long long globalTimer() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
/// Records, from lane 0 of each warp, the times of the body's marks.
struct TimedProbe {
  __device__ static void mark(int phase) {
    const unsigned block =
        blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0 && block < kTimedBlocks && warp < kTimedWarps)
      kvccTimedPhase[block][warp][phase] = globalTimer();
  }
};
// The emitted kernel's body (pagedDecode minus its launch check) with the
// probe, for --block-times.
#define KVCC_BENCH_TIMED(name, group)                                          \
  __global__ __launch_bounds__(                                                \
      (kvrt::device::kDecodeMaxThreads<__half, 128, group, 16>),               \
      (kvrt::device::kDecodeMinBlocks<__half, 128, group, 16>)) void           \
  name(kvrt_attention_params p) {                                              \
    const unsigned long long start = globalTimer();                            \
    KVCC_BENCH_CHECKED_HEAD(p, group);                                         \
    KVCC_BENCH_LAUNCH_DEPENDENTS(p);                                           \
    kvrt::device::pagedAttentionMmaBody<__half, 128, group, 16, false, 1,      \
                                        false, 0, 0, false, false,             \
                                        TimedProbe>(p, firstHead, blockIdx.z); \
    __syncthreads();                                                           \
    const unsigned block =                                                     \
        blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);        \
    if (threadIdx.x == 0 && block < kTimedBlocks) {                            \
      unsigned sm;                                                             \
      asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));                          \
      kvccTimedStart[block] = start;                                           \
      kvccTimedEnd[block] = globalTimer();                                     \
      kvccTimedSm[block] = sm;                                                 \
    }                                                                          \
  }
KVCC_BENCH_TIMED(kvcc_timed_g4_p16, 4)
KVCC_BENCH_TIMED(kvcc_timed_g8_p16, 8)
#undef KVCC_BENCH_TIMED

// The emitted kernel's body reading its parameters from a copy in shared
// memory (smemparams) and, with Fold (l2scores), writing the key-score
// hook's values of every sequence onto those of sequence 0 (the scratch
// and chunk maxima of 8 kv heads' rows: 2-4 MiB at 32K keys, which stay in
// L2): the same instructions and stores, without the scratch's write-back
// to DRAM. l2scores' key scores are wrong; both are for timing only.
template <int Group, bool Fold>
__device__ void sharedParamsKernel(const kvrt_attention_params &p) {
  KVCC_BENCH_CHECKED_HEAD(p, Group);
  KVCC_BENCH_LAUNCH_DEPENDENTS(p);
  __shared__ kvrt_attention_params copy;
  if (threadIdx.x == 0) {
    copy = p;
    if (Fold && p.key_scores) {
      const int64_t shift = firstHead - firstHead % p.num_q_heads;
      copy.score_scratch =
          static_cast<__half *>(p.score_scratch) - shift * p.score_stride;
      copy.score_max = p.score_max -
                       shift * (p.score_stride / kvrt::device::mma::kChunkKeys);
    }
  }
  __syncthreads();
  kvrt::device::pagedAttentionMmaBody<__half, 128, Group, 16, false>(
      copy, firstHead, blockIdx.z);
}
#define KVCC_BENCH_SHARED_PARAMS(name, group, fold)                            \
  __global__ __launch_bounds__(                                                \
      (kvrt::device::kDecodeMaxThreads<__half, 128, group, 16>),               \
      (kvrt::device::kDecodeMinBlocks<__half, 128, group, 16>)) void           \
  name(kvrt_attention_params p) {                                              \
    sharedParamsKernel<group, fold>(p);                                        \
  }
// The emitted kernel with evict-normal key-score stores (the emitted one's
// are evict-last).
#define KVCC_BENCH_SCORENORMAL(name, group)                                    \
  __global__ __launch_bounds__(                                                \
      (kvrt::device::kDecodeMaxThreads<__half, 128, group, 16>),               \
      (kvrt::device::kDecodeMinBlocks<__half, 128, group, 16>)) void           \
  name(kvrt_attention_params p) {                                              \
    KVCC_BENCH_CHECKED_HEAD(p, group);                                         \
    KVCC_BENCH_LAUNCH_DEPENDENTS(p);                                           \
    kvrt::device::pagedAttentionMmaBody<__half, 128, group, 16, false, 1,      \
                                        false, 0, 0, false, false,             \
                                        kvrt::device::NoProbe, false>(         \
        p, firstHead, blockIdx.z);                                             \
  }
KVCC_BENCH_SCORENORMAL(kvcc_scorenormal_g4_p16, 4)
KVCC_BENCH_SCORENORMAL(kvcc_scorenormal_g8_p16, 8)
#undef KVCC_BENCH_SCORENORMAL
KVCC_BENCH_SHARED_PARAMS(kvcc_smemparams_g4_p16, 4, false)
KVCC_BENCH_SHARED_PARAMS(kvcc_smemparams_g8_p16, 8, false)
KVCC_BENCH_SHARED_PARAMS(kvcc_l2scores_g4_p16, 4, true)
KVCC_BENCH_SHARED_PARAMS(kvcc_l2scores_g8_p16, 8, true)
#undef KVCC_BENCH_SHARED_PARAMS
#undef KVCC_BENCH_CHECKED_HEAD

/// Copies the first `n` (at most kTimedBlocks) blocks' (start, end, SM)
/// and their warps' marks (`phase`: n x kTimedWarps x 2, 0 where a warp
/// made no mark or does not exist) of the last timed call
/// and clears the arrays (an end of 0: no block ran) for the next. Returns a
/// cudaError_t.
extern "C" int kvcc_bench_block_times(unsigned long long *start,
                                      unsigned long long *end, unsigned *sm,
                                      unsigned long long *phase, int n) {
  n = n < 0 ? 0 : n < kTimedBlocks ? n : kTimedBlocks;
  cudaError_t error = cudaDeviceSynchronize();
  if (error == cudaSuccess)
    error = cudaMemcpyFromSymbol(start, kvccTimedStart, n * sizeof(*start));
  if (error == cudaSuccess)
    error = cudaMemcpyFromSymbol(end, kvccTimedEnd, n * sizeof(*end));
  if (error == cudaSuccess)
    error = cudaMemcpyFromSymbol(sm, kvccTimedSm, n * sizeof(*sm));
  if (error == cudaSuccess)
    error = cudaMemcpyFromSymbol(phase, kvccTimedPhase,
                                 n * sizeof(kvccTimedPhase[0]));
  for (const void *symbol : {static_cast<const void *>(kvccTimedStart),
                             static_cast<const void *>(kvccTimedEnd),
                             static_cast<const void *>(kvccTimedSm),
                             static_cast<const void *>(kvccTimedPhase)}) {
    void *address = nullptr;
    size_t bytes = 0;
    if (error == cudaSuccess)
      error = cudaGetSymbolAddress(&address, symbol);
    if (error == cudaSuccess)
      error = cudaGetSymbolSize(&bytes, symbol);
    if (error == cudaSuccess)
      error = cudaMemset(address, 0, bytes);
  }
  return int(error);
}

namespace {
/// 0: the kernels kvcc emits; 1: CUDA-core body; 2: two chunks per step;
/// 3: five blocks per SM; 4: L2 prefetch of the next chunk; 5-9: TMA L2
/// prefetch 1 and 2 steps ahead, nc and ldg loads, base (their control);
/// 10: three blocks per SM; 11: Qᵀ fragments in shared memory; 12: steps
/// claimed from a block-wide counter; 13: the emitted kernel timing its
/// blocks; 14: blocks of 16 warps (launched with 512 threads); 15: the
/// emitted kernel under __launch_bounds__(128); 16: parameters read from
/// shared memory (smemparams); 17: the same, key-score values of every
/// sequence written onto sequence 0's (l2scores); 18: evict-normal
/// key-score stores (scorenormal).
int benchVariant = 0;
} // namespace

/// Selects the kernels kvcc_bench_kernel returns for page 16 (see above).
extern "C" void kvcc_bench_set_variant(int variant) { benchVariant = variant; }

/// The kernel for GQA group `group` and page size `pageSize`, or null.
extern "C" const void *kvcc_bench_kernel(int group, int pageSize) {
#define KVCC_PAIR(variant)                                                     \
  {reinterpret_cast<const void *>(&kvcc_##variant##_g4_p16),                   \
   reinterpret_cast<const void *>(&kvcc_##variant##_g8_p16)}
  // Page-16 variants 1.. (see benchVariant), groups 4 and 8.
  static const void *const variants[][2] = {
      KVCC_PAIR(simt),       KVCC_PAIR(mma2),     KVCC_PAIR(lb5),
      KVCC_PAIR(prefetch),   KVCC_PAIR(bulk1),    KVCC_PAIR(bulk2),
      KVCC_PAIR(nc),         KVCC_PAIR(ldg),      KVCC_PAIR(base),
      KVCC_PAIR(lb3),        KVCC_PAIR(qsmem),    KVCC_PAIR(dyn),
      KVCC_PAIR(timed),      KVCC_PAIR(w16),      KVCC_PAIR(b128),
      KVCC_PAIR(smemparams), KVCC_PAIR(l2scores), KVCC_PAIR(scorenormal)};
#undef KVCC_PAIR
  constexpr int kVariants = int(sizeof(variants) / sizeof(variants[0]));
  if (pageSize == 16 && benchVariant >= 1 && benchVariant <= kVariants &&
      (group == 4 || group == 8))
    return variants[benchVariant - 1][group == 4 ? 0 : 1];
  if (group == 4 && pageSize == 16)
    return reinterpret_cast<const void *>(&kvcc_f16_d128_g4_p16);
  if (group == 4 && pageSize == 64)
    return reinterpret_cast<const void *>(&kvcc_f16_d128_g4_p64);
  if (group == 8 && pageSize == 16)
    return reinterpret_cast<const void *>(&kvcc_f16_d128_g8_p16);
  if (group == 8 && pageSize == 64)
    return reinterpret_cast<const void *>(&kvcc_f16_d128_g8_p64);
  return nullptr;
}

// Head dim 256 (GQA 16/8: group 2, fp16, no mask), bench_d256.py: the
// kernels kvcc emits (pages 16 and 64) and two page-16 variants for
// comparison: the tensor-core body keeping the query fragments in shared
// memory (168 registers, three blocks per SM, instead of registers: 246,
// two), and the CUDA-core body head_dim 256 ran on before.
#define KVCC_BENCH_D256(name, pageSize)                                        \
  __global__ __launch_bounds__(                                                \
      (kvrt::device::kDecodeMaxThreads<__half, 256, 2, pageSize>),             \
      (kvrt::device::kDecodeMinBlocks<__half, 256, 2, pageSize>)) void         \
  name(kvrt_attention_params p) {                                              \
    kvrt::device::pagedDecode<__half, 256, 2, pageSize, false>(p);             \
  }
KVCC_BENCH_D256(kvcc_f16_d256_g2_p16, 16)
KVCC_BENCH_D256(kvcc_f16_d256_g2_p64, 64)
#undef KVCC_BENCH_D256
__global__
__launch_bounds__(kvrt::device::kAttentionThreads) void kvcc_d256_qsmem_g2_p16(
    kvrt_attention_params p) {
  if (!kvrt::device::launchMatches<__half, 256, 2, 16, false>(p))
    return;
  KVCC_BENCH_LAUNCH_DEPENDENTS(p);
  const int64_t firstHead =
      int64_t(blockIdx.y) * p.num_q_heads + int64_t(blockIdx.x) * 2;
  kvrt::device::pagedAttentionMmaBody<__half, 256, 2, 16, false, 1, false, 0, 0,
                                      true>(p, firstHead, blockIdx.z);
}
__global__ __launch_bounds__(kvrt::device::kAttentionThreads) void
kvcc_d256_simt_g2_p16(kvrt_attention_params p) {
  kvrt::device::pagedAttentionSimt<__half, 256, 2, 16, false>(p);
}

/// The head-dim-256 kernel for `pageSize` (16 or 64): variant 0 the
/// emitted one, 1 query fragments in shared memory, 2 the CUDA-core body
/// (page 16 only); null otherwise.
extern "C" const void *kvcc_bench_kernel_d256(int pageSize, int variant) {
  if (variant == 0 && pageSize == 16)
    return reinterpret_cast<const void *>(&kvcc_f16_d256_g2_p16);
  if (variant == 0 && pageSize == 64)
    return reinterpret_cast<const void *>(&kvcc_f16_d256_g2_p64);
  if (variant == 1 && pageSize == 16)
    return reinterpret_cast<const void *>(&kvcc_d256_qsmem_g2_p16);
  if (variant == 2 && pageSize == 16)
    return reinterpret_cast<const void *>(&kvcc_d256_simt_g2_p16);
  return nullptr;
}

// Prefill chunks (16+ tokens with group 4): the full template, whose
// prefill body the runtime launches for them; causal and not.
#define KVCC_BENCH_PREFILL(name, T, group, causal, pageSize)                   \
  __global__ __launch_bounds__(kvrt::device::kPrefillMaxThreads,               \
                               kvrt::device::kPrefillMinBlocks) void           \
  name(kvrt_attention_params p) {                                              \
    kvrt::device::pagedAttention<T, 128, group, pageSize, causal>(p);          \
  }
KVCC_BENCH_PREFILL(kvcc_prefill_f16_g4, __half, 4, true, 16)
KVCC_BENCH_PREFILL(kvcc_prefill_bf16_g4, __nv_bfloat16, 4, true, 16)
KVCC_BENCH_PREFILL(kvcc_prefill_bf16_g8, __nv_bfloat16, 8, true, 16)
KVCC_BENCH_PREFILL(kvcc_prefill_full_f16_g4, __half, 4, false, 16)
KVCC_BENCH_PREFILL(kvcc_prefill_full_bf16_g4, __nv_bfloat16, 4, false, 16)
// Pages of 32 and 64 tokens (bf16, group 4): kvcc_bench_prefill_kernel_page.
KVCC_BENCH_PREFILL(kvcc_prefill_bf16_g4_p32, __nv_bfloat16, 4, true, 32)
KVCC_BENCH_PREFILL(kvcc_prefill_full_bf16_g4_p32, __nv_bfloat16, 4, false, 32)
KVCC_BENCH_PREFILL(kvcc_prefill_bf16_g4_p64, __nv_bfloat16, 4, true, 64)
KVCC_BENCH_PREFILL(kvcc_prefill_full_bf16_g4_p64, __nv_bfloat16, 4, false, 64)
#undef KVCC_BENCH_PREFILL

/// The bf16 group-4 prefill kernel for pages of `pageSize` (16, 32 or 64)
/// tokens and `causal` (0 or 1), or null.
extern "C" const void *kvcc_bench_prefill_kernel_page(int causal,
                                                      int pageSize) {
  switch (pageSize) {
  case 16:
    return causal ? reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4)
                  : reinterpret_cast<const void *>(&kvcc_prefill_full_bf16_g4);
  case 32:
    return causal
               ? reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4_p32)
               : reinterpret_cast<const void *>(&kvcc_prefill_full_bf16_g4_p32);
  case 64:
    return causal
               ? reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4_p64)
               : reinterpret_cast<const void *>(&kvcc_prefill_full_bf16_g4_p64);
  default:
    return nullptr;
  }
}

// Prefill variants (bf16, group 4), not what kvcc emits: 32-key tiles, and
// the body compiled without a minimum of blocks per SM (about 207
// registers, two blocks).
__global__ __launch_bounds__(128) void kvcc_prefill_keys32(
    kvrt_attention_params p) {
  if (kvrt::device::prefillLaunchMatches<__nv_bfloat16, 128, 4, 16, true>(p))
    kvrt::device::pagedPrefillMmaBody<__nv_bfloat16, 128, 4, 16, true, 32>(p);
}
__global__ __launch_bounds__(128) void kvcc_prefill_2blocks(
    kvrt_attention_params p) {
  if (kvrt::device::prefillLaunchMatches<__nv_bfloat16, 128, 4, 16, true>(p))
    kvrt::device::pagedPrefillMmaBody<__nv_bfloat16, 128, 4, 16, true>(p);
}

// The wgmma prefill body in kernels without the mma.sync prefill body
// (sm_90a builds never run it: the runtime passes the wgmma body's shared
// memory there), its decode layout on CUDA cores (simtdecode) or tensor
// cores (nommasync): how the rest of the kernel changes ptxas's allocation
// of the tile loop. Three blocks of 128 threads per SM, as kvcc's kernels
// with the prefill body were compiled before the warp-specialized body.
template <bool MmaDecode>
__device__ void prefillWgmmaKernel(const kvrt_attention_params &p) {
  using namespace kvrt::device;
  if (p.query_tile_rows != 0) {
    if constexpr (kDeviceHasWgmma) {
      if (prefillLaunchMatches<__nv_bfloat16, 128, 4, 16, true>(p) &&
          prefill::dynamicSharedBytes() >=
              uint32_t(prefillSharedBytes(128, true))) {
        pagedPrefillWgmmaBody<__nv_bfloat16, 128, 4, 16, true>(
            p, prefill::alignedDynamicShared<wgmma::kAtomBytes>());
        return;
      }
    }
    poisonLaunch(p);
    return;
  }
  if (!launchMatches<__nv_bfloat16, 128, 4, 16, true>(p))
    return;
  if constexpr (MmaDecode)
    pagedAttentionMmaBody<__nv_bfloat16, 128, 4, 16, true>(
        p, int64_t(blockIdx.y) * p.num_q_heads + int64_t(blockIdx.x) * 4,
        blockIdx.z);
  else
    pagedAttentionSimtBody<__nv_bfloat16, 128, 4, 16, true>(
        p, blockIdx.y / p.num_tokens, blockIdx.y % p.num_tokens, blockIdx.x,
        blockIdx.z);
}
__global__
__launch_bounds__(kvrt::device::kAttentionThreads,
                  3) void kvcc_prefill_simtdecode(kvrt_attention_params p) {
  prefillWgmmaKernel<false>(p);
}
__global__
__launch_bounds__(kvrt::device::kAttentionThreads,
                  3) void kvcc_prefill_nommasync(kvrt_attention_params p) {
  prefillWgmmaKernel<true>(p);
}

// The wgmma prefill body alone (bf16, group 4, causal) with `Keys`-key
// tiles at `MinBlocks` blocks per SM, launched by kvcc_bench_prefill_direct
// (which passes prefillWgmmaSharedBytes(128, Keys)): 128-key tiles compute
// S = Q·Kᵀ by m64n128k16 and halve the online-softmax rescales and barriers
// per key, at two blocks per SM (their registers and 113 KiB of shared
// memory); 64-key tiles at three blocks are its control (what kvcc emits
// without the other bodies sharing the kernel's registers).
template <int Keys>
__device__ void prefillWgmmaOnly(const kvrt_attention_params &p) {
  using namespace kvrt::device;
  if constexpr (kDeviceHasWgmma) {
    if (prefillLaunchMatches<__nv_bfloat16, 128, 4, 16, true>(p) &&
        prefill::dynamicSharedBytes() >=
            uint32_t(prefillWgmmaSharedBytes(128, Keys))) {
      pagedPrefillWgmmaBody<__nv_bfloat16, 128, 4, 16, true, Keys>(
          p, prefill::alignedDynamicShared<wgmma::kAtomBytes>());
      return;
    }
  }
  poisonLaunch(p);
}
__global__
__launch_bounds__(kvrt::device::kAttentionThreads,
                  2) void kvcc_prefill_keys128(kvrt_attention_params p) {
  prefillWgmmaOnly<128>(p);
}
__global__
__launch_bounds__(kvrt::device::kAttentionThreads,
                  3) void kvcc_prefill_keys64(kvrt_attention_params p) {
  prefillWgmmaOnly<64>(p);
}

// The warp-specialized prefill body (attention_prefill_ws.cuh: a producer
// and two consumer warpgroups, 128 query rows per block, the
// intra-warpgroup overlap) with a ring of `Stages` slots of `Keys`-key
// tiles, `ConsumerRegisters` (0: the launch's 168) and the consumers taking
// turns at their products or not (`Turns`), launched by
// kvcc_bench_prefill_direct; kvrt's kernels run <3, 128, 240> with turns
// where causal (kPrefillWsTurns).
template <int Stages, int Keys, int ConsumerRegisters, bool Causal = true,
          bool Turns = false, bool Persistent = false>
__device__ void prefillWsOnly(const kvrt_attention_params &p) {
  using namespace kvrt::device;
  if constexpr (kDeviceHasWgmma) {
    if (prefillWsLaunchMatches<__nv_bfloat16, 128, 4, 16, Causal,
                               Persistent>(p) &&
        prefill::dynamicSharedBytes() >=
            uint32_t(prefillWsSharedBytes(128, Stages, Keys))) {
      pagedPrefillWsBody<__nv_bfloat16, 128, 4, 16, Causal, Stages, Keys,
                         ConsumerRegisters, Turns, Persistent>(
          p, prefill::alignedDynamicShared<wgmma::kAtomBytes>());
      return;
    }
  }
  poisonLaunch(p);
}
#define KVCC_BENCH_WS(name, ...)                                               \
  __global__ __launch_bounds__(kvrt::device::kPrefillWsThreads,                \
                               1) void name(kvrt_attention_params p) {         \
    prefillWsOnly<__VA_ARGS__>(p);                                             \
  }
// Three slots of 64-key tiles at 168 and 240 registers, three slots of
// 128-key tiles at 240.
KVCC_BENCH_WS(kvcc_prefill_ws3o, 3, 64, 0)
KVCC_BENCH_WS(kvcc_prefill_ws3or, 3, 64, 240)
KVCC_BENCH_WS(kvcc_prefill_ws3o128, 3, 128, 240)
// Two slots of 128-key tiles at 240 (kvrt's configuration before session
// 15, which runs ws3o128's three slots with turns where causal), the
// consumers taking turns (t) or not (o); causal and non-causal (nc, with
// the three slots of ws3o128 too).
KVCC_BENCH_WS(kvcc_prefill_ws2o128, 2, 128, 240)
KVCC_BENCH_WS(kvcc_prefill_ws2t128, 2, 128, 240, true, true)
KVCC_BENCH_WS(kvcc_prefill_nc_ws3o128, 3, 128, 240, false)
KVCC_BENCH_WS(kvcc_prefill_nc_ws2o128, 2, 128, 240, false)
KVCC_BENCH_WS(kvcc_prefill_nc_ws2t128, 2, 128, 240, false, true)
// Persistent grids (a block per SM taking items in rounds, the next
// item's Q copied during the current one's last tile): three slots of
// 128-key tiles, without (p) and with (pt) turns, causal and non-causal.
KVCC_BENCH_WS(kvcc_prefill_ws3p128, 3, 128, 240, true, false, true)
KVCC_BENCH_WS(kvcc_prefill_ws3pt128, 3, 128, 240, true, true, true)
KVCC_BENCH_WS(kvcc_prefill_nc_ws3p128, 3, 128, 240, false, false, true)
KVCC_BENCH_WS(kvcc_prefill_nc_ws3pt128, 3, 128, 240, false, true, true)
KVCC_BENCH_WS(kvcc_prefill_ws3t128, 3, 128, 240, true, true)
KVCC_BENCH_WS(kvcc_prefill_nc_ws3t128, 3, 128, 240, false, true)
// Persistent, two slots of 192-key tiles (m64n192k16 for S, 226 KiB), no
// turns (with turns the causal consumer loop spills 60 instructions' worth;
// without, none, 931 SASS instructions per 192 keys against 696 per 128).
// Session 17, interleaved against directws in one process (.device/ab17.py,
// bf16 TFLOP/s, 192 / 128): non-causal 1 x 8K 575 / 554, 1 x (15872 + 512)
// 551 / 529, 4 x 4K 555 / 553, 8 x 1K 461 / 505, 16 x 512 397 / 438; causal
// 1 x 8K 543 / 547, 4 x 4K 463 / 484, 8 x 1K 331 / 386: only long
// non-causal rows gain, so kvrt keeps 128-key tiles.
KVCC_BENCH_WS(kvcc_prefill_ws2p192, 2, 192, 240, true, false, true)
KVCC_BENCH_WS(kvcc_prefill_nc_ws2p192, 2, 192, 240, false, false, true)
#undef KVCC_BENCH_WS

namespace {
/// 0: the kernels kvcc emits; 1: 32-key tiles; 2: two blocks per SM;
/// 3: simtdecode; 4: nommasync.
int prefillVariant = 0;
} // namespace

/// Selects the kernel kvcc_bench_prefill_kernel returns for bf16, group 4.
extern "C" void kvcc_bench_set_prefill_variant(int variant) {
  prefillVariant = variant;
}

/// The prefill kernel (d128, page 16) for `dtype` (kvrt_dtype), `group`
/// and `causal` (0 or 1), or null.
extern "C" const void *kvcc_bench_prefill_kernel(int dtype, int group,
                                                 int causal) {
  if (!causal) {
    if (dtype == KVRT_DTYPE_F16 && group == 4)
      return reinterpret_cast<const void *>(&kvcc_prefill_full_f16_g4);
    if (dtype == KVRT_DTYPE_BF16 && group == 4)
      return reinterpret_cast<const void *>(&kvcc_prefill_full_bf16_g4);
    return nullptr;
  }
  if (dtype == KVRT_DTYPE_BF16 && group == 4 && prefillVariant == 1)
    return reinterpret_cast<const void *>(&kvcc_prefill_keys32);
  if (dtype == KVRT_DTYPE_BF16 && group == 4 && prefillVariant == 2)
    return reinterpret_cast<const void *>(&kvcc_prefill_2blocks);
  if (dtype == KVRT_DTYPE_BF16 && group == 4 && prefillVariant == 3)
    return reinterpret_cast<const void *>(&kvcc_prefill_simtdecode);
  if (dtype == KVRT_DTYPE_BF16 && group == 4 && prefillVariant == 4)
    return reinterpret_cast<const void *>(&kvcc_prefill_nommasync);
  if (dtype == KVRT_DTYPE_F16 && group == 4)
    return reinterpret_cast<const void *>(&kvcc_prefill_f16_g4);
  if (dtype == KVRT_DTYPE_BF16 && group == 4)
    return reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4);
  if (dtype == KVRT_DTYPE_BF16 && group == 8)
    return reinterpret_cast<const void *>(&kvcc_prefill_bf16_g8);
  return nullptr;
}

/// kvrt::device::kAttentionThreads: the threads of the kernels kvcc emits,
/// which kvrt_attention_launch callers pass.
extern "C" int kvcc_bench_threads(void) {
  return kvrt::device::kAttentionThreads;
}

/// Threads of a launch of kvcc_bench_kernel(group, pageSize): 512 for the
/// w16 variant's kernels, else kAttentionThreads.
static int benchThreads(int group, int pageSize) {
  return benchVariant == 14 && pageSize == 16 && (group == 4 || group == 8)
             ? 512
             : kvrt::device::kAttentionThreads;
}

#include "SplitK.h"

#include "CudaBackend.h"

#include <memory>

/// The tensor map kvcc_bench_prefill_direct passes (params.kv_tensor_map),
/// made by kvcc_bench_page_tensor; none before.
static std::unique_ptr<kvrt::cuda::PageTensorMap> benchPageTensor;
static const void *benchPageTensorPool = nullptr;

/// Makes kvcc_bench_prefill_direct's launches over the pool at `poolBase`
/// (`numPages` pages of `pageBytes`, head_dim 128, bf16) carry a tensor
/// map of it, as kvrt's caches do, so that the warp-specialized bodies
/// gather K/V by tensor copies (sm_90); with `numPages` 0, none. Returns 1
/// when they will, 0 otherwise (another device, a driver without tensor
/// maps).
extern "C" int kvcc_bench_page_tensor(const void *poolBase, int64_t pageBytes,
                                      int64_t numPages, int pageSize) {
  benchPageTensor.reset();
  benchPageTensorPool = nullptr;
  if (numPages <= 0)
    return 0;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess)
    return 0;
  benchPageTensor = std::make_unique<kvrt::cuda::PageTensorMap>();
  benchPageTensor->create({poolBase, numPages, pageBytes, 128, pageSize},
                          device);
  benchPageTensorPool = poolBase;
  return benchPageTensor->get() != nullptr;
}

/// The arguments of a launch over page tables the caller keeps on the
/// device (CSR `indptr` / `indices`, per-row `kvLens`), head_dim 128.
static kvrt_attention_params
directParams(const void *poolBase, int64_t pageBytes, const int32_t *indptr,
             const int32_t *kvLens, const int32_t *indices, const void *queries,
             void *out, int batch, int numTokens, int numQHeads, int numKvHeads,
             int pageSize, float scale, int causal) {
  kvrt_attention_params params{};
  params.pool_base = poolBase;
  params.page_bytes = pageBytes;
  params.page_indptr = indptr;
  params.kv_lens = kvLens;
  params.page_indices = indices;
  params.queries = queries;
  params.out = out;
  params.batch = batch;
  params.num_tokens = numTokens;
  params.num_q_heads = numQHeads;
  params.num_kv_heads = numKvHeads;
  params.head_dim = 128;
  params.page_size = pageSize;
  params.scale = scale;
  params.causal = causal;
  return params;
}

/// Launches the kernel for (group, pageSize) over page tables the caller
/// keeps on the device (the resident tables kvrt's device-table work
/// provides), through the runtime's split-K launcher and merge: the
/// kernel's own cost, without kvrt_attention_launch's per-call host table
/// build and upload. Returns a kvrt_status.
extern "C" int
kvcc_bench_launch_direct(const void *poolBase, int64_t pageBytes,
                         const int32_t *indptr, const int32_t *kvLens,
                         const int32_t *indices, const void *queries, void *out,
                         int batch, int numQHeads, int numKvHeads, int pageSize,
                         int64_t maxLength, float scale, void *stream) {
  kvrt_attention_params params =
      directParams(poolBase, pageBytes, indptr, kvLens, indices, queries, out,
                   batch, 1, numQHeads, numKvHeads, pageSize, scale, 0);
  return kvrt::cuda::launchSplitAttention(
      kvcc_bench_kernel(numQHeads / numKvHeads, pageSize), params,
      KVRT_DTYPE_F16, maxLength, benchThreads(numQHeads / numKvHeads, pageSize),
      0, stream, "kvcc_bench_launch_direct");
}

namespace {
/// Streams `vectors` 16-byte vectors from `data` (streaming, evict-first loads,
/// four in flight per thread, grid-stride) and folds them into one word per
/// thread, stored only in the impossible case that it matches `never`
/// (so that nothing is written and the loads stay): the device's read
/// bandwidth, the roofline of a decode kernel, which only reads.
__global__ void __launch_bounds__(512)
    readStream(const uint4 *data, int64_t vectors, unsigned never,
               unsigned *sink) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  unsigned folded = 0;
  for (; i + 3 * stride < vectors; i += 4 * stride) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u)
      v[u] = __ldcs(data + i + u * stride);
#pragma unroll
    for (int u = 0; u < 4; ++u)
      folded ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  for (; i < vectors; i += stride) {
    const uint4 v = __ldcs(data + i);
    folded ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (folded == never)
    sink[0] = folded;
}
} // namespace

/// Launches readStream over `bytes` (a multiple of 16) at `data` on
/// `stream`: 4 blocks of 512 threads per SM. Returns a cudaError_t.
extern "C" int kvcc_bench_read(const void *data, int64_t bytes, void *sink,
                               void *stream) {
  int device = 0, sms = 0;
  cudaError_t error = cudaGetDevice(&device);
  if (error == cudaSuccess)
    error =
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  if (error != cudaSuccess)
    return int(error);
  readStream<<<4 * sms, 512, 0, static_cast<cudaStream_t>(stream)>>>(
      static_cast<const uint4 *>(data), bytes / 16, 0x9e3779b9u,
      static_cast<unsigned *>(sink));
  return int(cudaGetLastError());
}

/// Launches a bf16 group-4 d128 page-16 prefill kernel directly over page
/// tables the caller keeps on the device (as kvcc_bench_launch_direct),
/// with the grid and block kvrt_attention_launch uses for the prefill
/// layout and the dynamic shared memory its body needs: `variant` 0 the
/// kernel kvcc emits on 64-row blocks, 1 kvcc_prefill_keys64, 2
/// kvcc_prefill_keys128, 3/4/5 kvcc_prefill_ws3o/3or/3o128 (384 threads,
/// 128 query rows per block), 6 the kernel kvcc emits on the
/// warp-specialized layout, 7/8 kvcc_prefill_ws2o128/2t128 (the same body
/// alone, without or with the consumers' turns), 9/10 kvcc_prefill_ws3p128
/// / ws3pt128 (persistent grid), 11 kvcc_prefill_ws3t128, 12
/// kvcc_prefill_ws2p192 (persistent, 192-key tiles). Non-causal (`causal`
/// 0): variants 5-12, as kvcc_prefill_nc_* (6: the emitted non-causal
/// kernel).
/// Returns a cudaError_t.
extern "C" int kvcc_bench_prefill_direct(
    int variant, const void *poolBase, int64_t pageBytes, const int32_t *indptr,
    const int32_t *kvLens, const int32_t *indices, const void *queries,
    void *out, int batch, int numTokens, int numQHeads, int numKvHeads,
    float scale, int causal, void *stream) {
  using namespace kvrt::device;
  static const void *const kernels[][2] = {
      {reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4), nullptr},
      {reinterpret_cast<const void *>(&kvcc_prefill_keys64), nullptr},
      {reinterpret_cast<const void *>(&kvcc_prefill_keys128), nullptr},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3o), nullptr},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3or), nullptr},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3o128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws3o128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_bf16_g4),
       reinterpret_cast<const void *>(&kvcc_prefill_full_bf16_g4)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws2o128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws2o128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws2t128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws2t128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3p128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws3p128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3pt128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws3pt128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws3t128),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws3t128)},
      {reinterpret_cast<const void *>(&kvcc_prefill_ws2p192),
       reinterpret_cast<const void *>(&kvcc_prefill_nc_ws2p192)}};
  constexpr int kKeys[] = {64,  64,  128, 64,  64,  128, 128,
                           128, 128, 128, 128, 128, 192};
  constexpr int kStages[] = {0, 0, 0, 3, 3, 3, kPrefillWsStages,
                             2, 2, 3, 3, 3, 2};
  constexpr bool kPersistent[] = {false, false, false, false, false,
                                  false, true,  false, false, true,
                                  true,  false, true};
  constexpr int kVariants = int(sizeof(kKeys) / sizeof(kKeys[0]));
  if (variant < 0 || variant >= kVariants ||
      !kernels[variant][causal ? 0 : 1])
    return int(cudaErrorInvalidValue);
  const void *kernel = kernels[variant][causal ? 0 : 1];
  const bool ws = variant >= 3;
  const int sharedBytes = ws
                              ? prefillWsSharedBytes(128, kStages[variant],
                                                     kKeys[variant])
                              : prefillWgmmaSharedBytes(128, kKeys[variant]);
  const int rowsPerBlock = ws ? kPrefillWsRows : kPrefillRows;
  const int threads = ws ? kPrefillWsThreads : kAttentionThreads;
  // Raise the kernel's limit, never lower it: kvrt launches the emitted
  // kernel (variants 0 and 6) too and remembers the limit it raised.
  cudaFuncAttributes attributes = {};
  cudaError_t error = cudaFuncGetAttributes(&attributes, kernel);
  if (error == cudaSuccess && attributes.maxDynamicSharedSizeBytes < sharedBytes)
    error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, sharedBytes);
  if (error != cudaSuccess)
    return int(error);
  kvrt_attention_params params =
      directParams(poolBase, pageBytes, indptr, kvLens, indices, queries, out,
                   batch, numTokens, numQHeads, numKvHeads, 16, scale, causal);
  params.num_splits = 1;
  params.query_tile_rows = rowsPerBlock;
  params.dtype = KVRT_DTYPE_BF16;
  if (benchPageTensor && benchPageTensorPool == poolBase) {
    params.kv_tensor_map = benchPageTensor->get();
    params.kv_tensor_runs = 1;
  }
  const int group = numQHeads / numKvHeads;
  const int64_t tiles =
      (int64_t(numTokens) * group + rowsPerBlock - 1) / rowsPerBlock;
  void *args[] = {&params};
  dim3 grid(unsigned(numKvHeads), unsigned(batch * tiles));
  if (kPersistent[variant]) {
    // A block per SM (one fits), no more than there are items.
    int device = 0, sms = 0;
    if ((error = cudaGetDevice(&device)) != cudaSuccess ||
        (error = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount,
                                        device)) != cudaSuccess)
      return int(error);
    grid = dim3(unsigned(std::min<int64_t>(sms, int64_t(numKvHeads) * batch *
                                                    tiles)));
  }
  error = cudaLaunchKernel(kernel, grid,
                           dim3(threads), args, size_t(sharedBytes),
                           static_cast<cudaStream_t>(stream));
  return int(error == cudaSuccess ? cudaGetLastError() : error);
}
