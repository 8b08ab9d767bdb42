//===- GpuKernels.h - Attention kernels instantiated for tests --*- C++ -*-===//
//
// GpuKernels.cu instantiates kvrt::device::pagedAttention exactly the way
// kvcc's generated code does, for a spread of element types, head dims,
// group sizes, page sizes and masks. Building it is the compile test of the
// device library; GpuAttentionTest.cpp runs the kernels when a GPU exists.
// This header keeps CUDA out of the test's C++ sources.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_UNITTESTS_GPUKERNELS_H
#define KVRT_UNITTESTS_GPUKERNELS_H

#include "kvrt/device/params.h"
#include "kvrt/kvrt.h"

#include <cstdint>
#include <vector>

namespace kvrt::test {

/// One instantiated `__global__ void(kvrt_attention_params)` kernel.
struct GpuKernel {
  const char *name;
  kvrt_dtype dtype;
  int headDim;
  int groupSize;
  int pageSize;
  bool causal;
  /// Address to pass to kvrt_attention_launch.
  const void *function;
};

/// Every kernel GpuKernels.cu instantiates.
const std::vector<GpuKernel> &gpuKernels();

/// Decode-only kernels (kvrt::device::pagedDecode) declared as kvcc emits
/// them for ops below one prefill tile of query rows: never launched with
/// enough query rows for the prefill layout.
const std::vector<GpuKernel> &decodeKernels();

/// kvrt::device::kAttentionThreads, seen from host C++.
int attentionThreads();

/// Queues on `stream` (a cudaStream_t) a one-thread kernel that keeps it
/// busy for `microseconds` of GPU time, so that a test can queue work behind
/// it and race other streams against that work deterministically. Returns
/// false when the launch failed.
bool holdStream(void *stream, unsigned microseconds);

/// A kernel that records the kvrt_attention_params it was launched with
/// (for a test that launches a kernel itself on kvrt's tables): launched
/// through kvrt_attention_launch, it stores them for capturedParams.
const void *captureParamsKernel();

/// The parameters captureParamsKernel last recorded (false when the copy
/// failed).
bool capturedParams(kvrt_attention_params *params);

/// Launches attention kernel `kernel` with `params` itself: grid `grid`,
/// `threads` threads and `sharedBytes` bytes of dynamic shared memory, on
/// the default stream. Returns the launch's cudaError_t.
int launchAttentionKernel(const void *kernel,
                          const kvrt_attention_params &params,
                          const int32_t (&grid)[3], int threads,
                          int sharedBytes);

} // namespace kvrt::test

#endif // KVRT_UNITTESTS_GPUKERNELS_H
