//===- GpuKernels.cu - Attention kernels instantiated for tests ---*- CUDA -*-//
//
// Each kernel has the exact shape kvcc emits for a kv.attention op. The set
// covers every supported element type, head dims 64/128/256, groups
// 1/2/4/8, pages 16/32/64 and both masks without instantiating the full
// cross product, which would take long to compile, and both bodies of
// pagedAttention (tensor cores where supported, CUDA cores otherwise; the
// simt_ kernels force the CUDA-core body on tensor-core shapes).
//
//===----------------------------------------------------------------------===//
#include "GpuKernels.h"
#include "SplitK.h"

#include "kvrt/device/attention.cuh"

/// Defines kernel `name` the way generated code does.
#define KVRT_TEST_KERNEL(name, T, headDim, group, pageSize, causal)            \
  __global__ void __launch_bounds__(kvrt::device::kPrefillMaxThreads,          \
                                    kvrt::device::kPrefillMinBlocks)           \
      name(kvrt_attention_params p) {                                          \
    kvrt::device::pagedAttention<T, headDim, group, pageSize, causal>(p);      \
  }

// The shapes the GPU test runs: GQA 32/8 and 8/8, d 64/128, page 16.
KVRT_TEST_KERNEL(f16_d64_g4_p16_causal, __half, 64, 4, 16, true)
KVRT_TEST_KERNEL(f16_d64_g1_p16_causal, __half, 64, 1, 16, true)
KVRT_TEST_KERNEL(f16_d128_g4_p16_causal, __half, 128, 4, 16, true)
KVRT_TEST_KERNEL(f16_d128_g1_p16_causal, __half, 128, 1, 16, true)
KVRT_TEST_KERNEL(bf16_d64_g4_p16_causal, __nv_bfloat16, 64, 4, 16, true)
KVRT_TEST_KERNEL(bf16_d64_g1_p16_causal, __nv_bfloat16, 64, 1, 16, true)
KVRT_TEST_KERNEL(bf16_d128_g4_p16_causal, __nv_bfloat16, 128, 4, 16, true)
KVRT_TEST_KERNEL(bf16_d128_g1_p16_causal, __nv_bfloat16, 128, 1, 16, true)
// Coverage of the remaining template values.
KVRT_TEST_KERNEL(f32_d64_g1_p16_causal, float, 64, 1, 16, true)
KVRT_TEST_KERNEL(f32_d256_g8_p64_full, float, 256, 8, 64, false)
KVRT_TEST_KERNEL(f16_d256_g8_p64_causal, __half, 256, 8, 64, true)
KVRT_TEST_KERNEL(bf16_d128_g4_p64_full, __nv_bfloat16, 128, 4, 64, false)
KVRT_TEST_KERNEL(f16_d128_g4_p16_full, __half, 128, 4, 16, false)
// Groups of 8 whose heads split across key groups that share keys.
KVRT_TEST_KERNEL(f16_d128_g8_p16_causal, __half, 128, 8, 16, true)
KVRT_TEST_KERNEL(f16_d128_g8_p64_full, __half, 128, 8, 64, false)
KVRT_TEST_KERNEL(bf16_d64_g8_p16_full, __nv_bfloat16, 64, 8, 16, false)

// Tensor-core body (attention_mma.cuh): page 32, a group of 2; head_dim
// 256 for bf16 and page 32 too.
KVRT_TEST_KERNEL(f16_d128_g4_p32_causal, __half, 128, 4, 32, true)
// The warp-specialized prefill body's tensor copies at head_dim 64 (one box
// a page) and pages of 64, causal.
KVRT_TEST_KERNEL(bf16_d64_g2_p64_causal, __nv_bfloat16, 64, 2, 64, true)
KVRT_TEST_KERNEL(bf16_d128_g2_p16_full, __nv_bfloat16, 128, 2, 16, false)
KVRT_TEST_KERNEL(bf16_d256_g2_p16_full, __nv_bfloat16, 256, 2, 16, false)
KVRT_TEST_KERNEL(f16_d256_g4_p32_causal, __half, 256, 4, 32, true)
// Pages below 16 tokens (kvcc allows any power of two): the CUDA-core body,
// whose key-score chunks are then one page.
KVRT_TEST_KERNEL(f16_d64_g4_p8_causal, __half, 64, 4, 8, true)
// Pages of 2: the CUDA-core decode body with 2-key score chunks, the
// prefill bodies with many pages per tile.
KVRT_TEST_KERNEL(f16_d64_g2_p2_causal, __half, 64, 2, 2, true)

#undef KVRT_TEST_KERNEL

// A kernel as kvcc emitted them before the warp-specialized prefill body
// (three blocks of 128 threads): prefill launches keep 64-row blocks.
__global__ void __launch_bounds__(128, 3)
    legacy_f16_d128_g4_p16_causal(kvrt_attention_params p) {
  kvrt::device::pagedAttention<__half, 128, 4, 16, true>(p);
}

// The CUDA-core body on shapes pagedAttention runs on tensor cores.
#define KVRT_TEST_SIMT_KERNEL(name, T, headDim, group, pageSize, causal)       \
  __global__ void __launch_bounds__(128) name(kvrt_attention_params p) {       \
    kvrt::device::pagedAttentionSimt<T, headDim, group, pageSize, causal>(p);  \
  }
KVRT_TEST_SIMT_KERNEL(simt_f16_d128_g4_p16_causal, __half, 128, 4, 16, true)
KVRT_TEST_SIMT_KERNEL(simt_bf16_d64_g8_p16_full, __nv_bfloat16, 64, 8, 16,
                      false)
KVRT_TEST_SIMT_KERNEL(simt_f16_d256_g4_p16_causal, __half, 256, 4, 16, true)
#undef KVRT_TEST_SIMT_KERNEL

// The tensor-core decode body loading two chunks per step (a tuning
// variant); launches in the prefill layout take the standard template.
__global__ void __launch_bounds__(128)
    mma2_f16_d128_g8_p64_causal(kvrt_attention_params p) {
  if (p.query_tile_rows != 0) {
    kvrt::device::pagedAttention<__half, 128, 8, 64, true>(p);
    return;
  }
  if (!kvrt::device::launchMatches<__half, 128, 8, 64, true>(p))
    return;
  const int64_t firstHead =
      int64_t(blockIdx.y) * p.num_q_heads + int64_t(blockIdx.x) * 8;
  kvrt::device::pagedAttentionMmaBody<__half, 128, 8, 64, true, 2>(
      p, firstHead, blockIdx.z);
}

// Decode-only kernels with the bounds kvcc emits for them (wide blocks
// allowed on the tensor-core body, not on the CUDA-core one).
#define KVRT_TEST_DECODE_KERNEL(name, T, headDim, group, pageSize, causal)     \
  __global__ void __launch_bounds__(                                           \
      (kvrt::device::kDecodeMaxThreads<T, headDim, group, pageSize>),          \
      (kvrt::device::kDecodeMinBlocks<T, headDim, group, pageSize>))           \
      name(kvrt_attention_params p) {                                          \
    kvrt::device::pagedDecode<T, headDim, group, pageSize, causal>(p);         \
  }
KVRT_TEST_DECODE_KERNEL(decode_f16_d128_g4_p16_causal, __half, 128, 4, 16, true)
KVRT_TEST_DECODE_KERNEL(decode_bf16_d64_g8_p64_full, __nv_bfloat16, 64, 8, 64,
                        false)
KVRT_TEST_DECODE_KERNEL(decode_f16_d128_g8_p64_full, __half, 128, 8, 64, false)
KVRT_TEST_DECODE_KERNEL(decode_f32_d64_g4_p16_causal, float, 64, 4, 16, true)
// fp32 at the fp16 test cache's other values: a launch on that cache is
// refused for the element type alone.
KVRT_TEST_DECODE_KERNEL(decode_f32_d128_g4_p16_causal, float, 128, 4, 16, true)
KVRT_TEST_DECODE_KERNEL(decode_bf16_d256_g2_p16_causal, __nv_bfloat16, 256, 2,
                        16, true)
// An odd group: a key's heads start at odd offsets of the score workspace.
KVRT_TEST_DECODE_KERNEL(decode_f16_d64_g3_p16_causal, __half, 64, 3, 16, true)
#undef KVRT_TEST_DECODE_KERNEL

// Bounds are per compilation target (kWideDecodeSupported): wide blocks
// where the tensor-core body runs at d64/d128 on sm_80+, none in the host
// pass or for older GPUs (whose CUDA-core body would spill under them).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
static_assert(kvrt::device::kDecodeMaxThreads<__half, 128, 4, 16> == 512 &&
                  kvrt::device::kDecodeMaxThreads<__nv_bfloat16, 64, 8, 64> ==
                      512 &&
                  kvrt::device::kDecodeMaxThreads<__half, 128, 8, 64> == 512 &&
                  kvrt::device::kDecodeMaxThreads<float, 64, 4, 16> ==
                      kvrt::device::kAttentionThreads &&
                  kvrt::device::kDecodeMaxThreads<__nv_bfloat16, 256, 2, 16> ==
                      kvrt::device::kAttentionThreads,
              "wide blocks where the tensor-core body runs at d64/d128");
#else
static_assert(kvrt::device::kDecodeMaxThreads<__half, 128, 4, 16> ==
                  kvrt::device::kAttentionThreads,
              "no wide blocks without the tensor-core body");
#endif
static_assert(kvrt::cuda::kAttentionBlockThreads ==
                  kvrt::device::kAttentionThreads,
              "SplitK.h's copy of the generated kernels' block size");

namespace {
/// Spins until the GPU's global timer has advanced by `nanoseconds`.
__global__ void holdKernel(unsigned long long nanoseconds) {
  unsigned long long start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < nanoseconds);
}

__device__ kvrt_attention_params capturedLaunch;

__global__ void captureParams(kvrt_attention_params p) {
  if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 &&
      blockIdx.z == 0)
    capturedLaunch = p;
}
} // namespace

namespace kvrt::test {

const void *captureParamsKernel() {
  return reinterpret_cast<const void *>(&captureParams);
}

bool capturedParams(kvrt_attention_params *params) {
  return cudaMemcpyFromSymbol(params, capturedLaunch, sizeof(*params)) ==
         cudaSuccess;
}

int launchAttentionKernel(const void *kernel,
                          const kvrt_attention_params &params,
                          const int32_t (&grid)[3], int threads,
                          int sharedBytes) {
  kvrt_attention_params copy = params;
  void *args[] = {&copy};
  cudaError_t error = cudaLaunchKernel(
      kernel, dim3(unsigned(grid[0]), unsigned(grid[1]), unsigned(grid[2])),
      dim3(unsigned(threads)), args, size_t(sharedBytes), nullptr);
  return int(error == cudaSuccess ? cudaGetLastError() : error);
}

bool holdStream(void *stream, unsigned microseconds) {
  holdKernel<<<1, 1, 0, static_cast<cudaStream_t>(stream)>>>(1000ull *
                                                             microseconds);
  return cudaGetLastError() == cudaSuccess;
}

const std::vector<GpuKernel> &gpuKernels() {
#define KVRT_ENTRY(name, dtype, headDim, group, pageSize, causal)              \
  GpuKernel {                                                                  \
#name, dtype, headDim, group, pageSize, causal,                            \
        reinterpret_cast < const void *>(&name)                                \
  }
  static const std::vector<GpuKernel> kernels = {
      KVRT_ENTRY(f16_d64_g4_p16_causal, KVRT_DTYPE_F16, 64, 4, 16, true),
      KVRT_ENTRY(f16_d64_g1_p16_causal, KVRT_DTYPE_F16, 64, 1, 16, true),
      KVRT_ENTRY(f16_d128_g4_p16_causal, KVRT_DTYPE_F16, 128, 4, 16, true),
      KVRT_ENTRY(f16_d128_g1_p16_causal, KVRT_DTYPE_F16, 128, 1, 16, true),
      KVRT_ENTRY(bf16_d64_g4_p16_causal, KVRT_DTYPE_BF16, 64, 4, 16, true),
      KVRT_ENTRY(bf16_d64_g1_p16_causal, KVRT_DTYPE_BF16, 64, 1, 16, true),
      KVRT_ENTRY(bf16_d128_g4_p16_causal, KVRT_DTYPE_BF16, 128, 4, 16, true),
      KVRT_ENTRY(bf16_d128_g1_p16_causal, KVRT_DTYPE_BF16, 128, 1, 16, true),
      KVRT_ENTRY(f32_d64_g1_p16_causal, KVRT_DTYPE_F32, 64, 1, 16, true),
      KVRT_ENTRY(f32_d256_g8_p64_full, KVRT_DTYPE_F32, 256, 8, 64, false),
      KVRT_ENTRY(f16_d256_g8_p64_causal, KVRT_DTYPE_F16, 256, 8, 64, true),
      KVRT_ENTRY(bf16_d128_g4_p64_full, KVRT_DTYPE_BF16, 128, 4, 64, false),
      KVRT_ENTRY(f16_d128_g4_p16_full, KVRT_DTYPE_F16, 128, 4, 16, false),
      KVRT_ENTRY(f16_d64_g4_p8_causal, KVRT_DTYPE_F16, 64, 4, 8, true),
      KVRT_ENTRY(f16_d64_g2_p2_causal, KVRT_DTYPE_F16, 64, 2, 2, true),
      KVRT_ENTRY(f16_d128_g8_p16_causal, KVRT_DTYPE_F16, 128, 8, 16, true),
      KVRT_ENTRY(f16_d128_g8_p64_full, KVRT_DTYPE_F16, 128, 8, 64, false),
      KVRT_ENTRY(bf16_d64_g8_p16_full, KVRT_DTYPE_BF16, 64, 8, 16, false),
      KVRT_ENTRY(f16_d128_g4_p32_causal, KVRT_DTYPE_F16, 128, 4, 32, true),
      KVRT_ENTRY(bf16_d64_g2_p64_causal, KVRT_DTYPE_BF16, 64, 2, 64, true),
      KVRT_ENTRY(bf16_d128_g2_p16_full, KVRT_DTYPE_BF16, 128, 2, 16, false),
      KVRT_ENTRY(bf16_d256_g2_p16_full, KVRT_DTYPE_BF16, 256, 2, 16, false),
      KVRT_ENTRY(f16_d256_g4_p32_causal, KVRT_DTYPE_F16, 256, 4, 32, true),
      KVRT_ENTRY(simt_f16_d128_g4_p16_causal, KVRT_DTYPE_F16, 128, 4, 16, true),
      KVRT_ENTRY(simt_bf16_d64_g8_p16_full, KVRT_DTYPE_BF16, 64, 8, 16, false),
      KVRT_ENTRY(simt_f16_d256_g4_p16_causal, KVRT_DTYPE_F16, 256, 4, 16, true),
      KVRT_ENTRY(mma2_f16_d128_g8_p64_causal, KVRT_DTYPE_F16, 128, 8, 64, true),
      KVRT_ENTRY(legacy_f16_d128_g4_p16_causal, KVRT_DTYPE_F16, 128, 4, 16,
                 true),
  };
#undef KVRT_ENTRY
  return kernels;
}

const std::vector<GpuKernel> &decodeKernels() {
  static const std::vector<GpuKernel> kernels = {
      {"decode_f16_d128_g4_p16_causal", KVRT_DTYPE_F16, 128, 4, 16, true,
       reinterpret_cast<const void *>(&decode_f16_d128_g4_p16_causal)},
      {"decode_bf16_d64_g8_p64_full", KVRT_DTYPE_BF16, 64, 8, 64, false,
       reinterpret_cast<const void *>(&decode_bf16_d64_g8_p64_full)},
      {"decode_f16_d128_g8_p64_full", KVRT_DTYPE_F16, 128, 8, 64, false,
       reinterpret_cast<const void *>(&decode_f16_d128_g8_p64_full)},
      {"decode_f32_d64_g4_p16_causal", KVRT_DTYPE_F32, 64, 4, 16, true,
       reinterpret_cast<const void *>(&decode_f32_d64_g4_p16_causal)},
      {"decode_f32_d128_g4_p16_causal", KVRT_DTYPE_F32, 128, 4, 16, true,
       reinterpret_cast<const void *>(&decode_f32_d128_g4_p16_causal)},
      {"decode_bf16_d256_g2_p16_causal", KVRT_DTYPE_BF16, 256, 2, 16, true,
       reinterpret_cast<const void *>(&decode_bf16_d256_g2_p16_causal)},
      {"decode_f16_d64_g3_p16_causal", KVRT_DTYPE_F16, 64, 3, 16, true,
       reinterpret_cast<const void *>(&decode_f16_d64_g3_p16_causal)},
  };
  return kernels;
}

int attentionThreads() { return kvrt::device::kAttentionThreads; }

} // namespace kvrt::test
