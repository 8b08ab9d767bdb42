//===- SplitK.cu - Split-K attention launches and the merge kernel -*- CUDA -*-//
//
// Flash-decoding for compiled attention kernels. At batch 1 a decode step
// has only num_kv_heads (kv head, token) blocks, far fewer than the SMs can
// run, so each row's pages are cut into num_splits ranges that run as
// separate blocks (grid z). Each writes its normalized partial output and
// log2-sum-exp to a workspace; mergeSplits then combines, per query head,
// the splits into the final output with weights 2^(lse_s - max lse).
//
// The workspace belongs to the device, not to a cache: one buffer per CUDA
// device, grown on demand and never shrunk, kept until the process exits.
// Launches take a per-device lock from the workspace's first use to the
// merge's enqueue; an event recorded after the merge orders the next
// launch's writes after this launch's reads on whatever stream it runs.
//
//===----------------------------------------------------------------------===//
#include "CudaSupport.h"
#include "SplitK.h"

#include "kvrt/device/element.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

namespace {

using kvrt::cuda::checkCuda;
using kvrt::cuda::ScopedDevice;
using kvrt::cuda::SplitPlan;

/// Threads of a merge block; each takes head_dim / kMergeThreads elements.
constexpr int kMergeThreads = 128;

/// Upper bound on splits: bounds the workspace and the merge's serial loop.
/// 256 splits of 4 pages already cover 1024 pages per wave.
constexpr int64_t kMaxSplits = 256;

/// A split count is good enough once its waves are this full relative to
/// the best count's (the rule FlashAttention-2 uses): fewer splits mean less
/// merge work and longer, more efficient blocks.
constexpr double kWaveEfficiencyTolerance = 0.85;

/// Launches already this close to filling every block slot are not split.
constexpr double kFullChipFraction = 0.8;

/// Most blocks gridDim.z may hold.
constexpr int64_t kMaxGridZ = 65535;

/// Combines the splits of one query head (one block per head): out[d] =
/// sum_s w_s * partial[s][d] / sum_s w_s with w_s = 2^(lse_s - max lse).
/// Splits that saw no key have lse -inf and weigh nothing; a head with no
/// key at all gets 0, as the unsplit kernel writes.
template <typename T>
__global__ void __launch_bounds__(kMergeThreads)
    mergeSplits(const float *partialOut, const float *partialLse, T *out,
                int numSplits, int headDim) {
  extern __shared__ float weights[];
  const int64_t head = blockIdx.x;
  const float *lse = partialLse + head * numSplits;
  float maxLse = -INFINITY;
  for (int s = 0; s < numSplits; ++s)
    maxLse = fmaxf(maxLse, lse[s]);
  for (int s = threadIdx.x; s < numSplits; s += blockDim.x)
    weights[s] = lse[s] == -INFINITY ? 0.0f : exp2f(lse[s] - maxLse);
  __syncthreads();
  float total = 0.0f;
  for (int s = 0; s < numSplits; ++s)
    total += weights[s];
  const float *partial = partialOut + head * numSplits * headDim;
  for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
    float sum = 0.0f;
#pragma unroll 4
    for (int s = 0; s < numSplits; ++s)
      sum = fmaf(weights[s], partial[int64_t(s) * headDim + d], sum);
    out[head * headDim + d] =
        kvrt::device::fromFloat<T>(total > 0.0f ? sum / total : 0.0f);
  }
}

/// Multiprocessors of `device`, asked once per device.
kvrt_status smCount(int device, int *count, const char *function) {
  static std::mutex mutex;
  static std::map<int, int> counts;
  std::lock_guard<std::mutex> lock(mutex);
  auto found = counts.find(device);
  if (found == counts.end()) {
    int value = 0;
    KVRT_RETURN_IF_ERROR(checkCuda(
        cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, device),
        function, "cudaDeviceGetAttribute (multiprocessor count)"));
    found = counts.emplace(device, value).first;
  }
  *count = found->second;
  return KVRT_OK;
}

/// Blocks of `kernel` with `threads` threads one SM holds at once, asked
/// once per (device, kernel, threads).
kvrt_status blocksPerSm(int device, const void *kernel, int threads,
                        int *blocks, const char *function) {
  using Key = std::pair<std::pair<int, const void *>, int>;
  static std::mutex mutex;
  static std::map<Key, int> cache;
  std::lock_guard<std::mutex> lock(mutex);
  Key key{{device, kernel}, threads};
  auto found = cache.find(key);
  if (found == cache.end()) {
    int value = 0;
    KVRT_RETURN_IF_ERROR(checkCuda(
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&value, kernel, threads,
                                                      0),
        function, "cudaOccupancyMaxActiveBlocksPerMultiprocessor"));
    found = cache.emplace(key, std::max(1, value)).first;
  }
  *blocks = found->second;
  return KVRT_OK;
}

/// One device's split-K workspace; see the file comment.
struct Workspace {
  std::mutex mutex;
  void *buffer = nullptr;
  size_t capacity = 0;
  /// Recorded after the last merge that read the buffer; null before.
  cudaEvent_t lastUse = nullptr;

  /// Makes `bytes` available and orders `stream` after the previous user.
  /// Call with `mutex` held and the device current.
  kvrt_status acquire(size_t bytes, cudaStream_t stream, const char *function) {
    if (bytes > capacity) {
      // The previous launch may still read the old buffer.
      if (lastUse)
        KVRT_RETURN_IF_ERROR(checkCuda(cudaEventSynchronize(lastUse), function,
                                       "cudaEventSynchronize (workspace)"));
      cudaFree(buffer);
      buffer = nullptr;
      capacity = 0;
      size_t size = std::max<size_t>(bytes + bytes / 2, size_t(1) << 20);
      KVRT_RETURN_IF_ERROR(checkCuda(cudaMalloc(&buffer, size), function,
                                     "cudaMalloc (split-K workspace)"));
      capacity = size;
    } else if (lastUse) {
      KVRT_RETURN_IF_ERROR(
          checkCuda(cudaStreamWaitEvent(stream, lastUse, 0), function,
                    "cudaStreamWaitEvent (workspace)"));
    }
    return KVRT_OK;
  }

  /// Records that work queued on `stream` so far reads the buffer.
  kvrt_status release(cudaStream_t stream, const char *function) {
    if (!lastUse)
      KVRT_RETURN_IF_ERROR(checkCuda(
          cudaEventCreateWithFlags(&lastUse, cudaEventDisableTiming), function,
          "cudaEventCreate (workspace)"));
    return checkCuda(cudaEventRecord(lastUse, stream), function,
                     "cudaEventRecord (workspace)");
  }
};

/// The workspace of `device`. Never destroyed: freeing device memory while
/// the CUDA runtime shuts down at exit is not allowed.
Workspace &workspaceOf(int device) {
  static std::mutex mutex;
  static auto *workspaces = new std::map<int, Workspace>();
  std::lock_guard<std::mutex> lock(mutex);
  return (*workspaces)[device];
}

/// KVRT_DECODE_SPLITS when set to a positive number, else 0.
int64_t splitOverride() {
  const char *text = std::getenv("KVRT_DECODE_SPLITS");
  if (!text)
    return 0;
  char *end = nullptr;
  long value = std::strtol(text, &end, 10);
  return end != text && value > 0 ? value : 0;
}

/// SplitPlan for exactly `splits` splits of `maxPages` pages (fewer when
/// the pages do not go round).
SplitPlan fixedSplits(int64_t splits, int64_t maxPages) {
  SplitPlan plan;
  splits = std::clamp<int64_t>(splits, 1, std::max<int64_t>(1, maxPages));
  if (splits <= 1)
    return plan;
  int64_t perSplit = (maxPages + splits - 1) / splits;
  plan.numSplits = static_cast<int32_t>((maxPages + perSplit - 1) / perSplit);
  plan.pagesPerSplit = static_cast<int32_t>(perSplit);
  if (plan.numSplits <= 1)
    plan = SplitPlan();
  return plan;
}

kvrt_status launchError(cudaError_t error, const char *function) {
  if (error == cudaErrorInvalidResourceHandle ||
      error == cudaErrorInvalidDeviceFunction)
    // The usual cause: the kernel was registered with another copy of the
    // CUDA runtime (nvcc links cudart statically by default).
    return kvrt::fail(KVRT_ERROR_CUDA,
                      "%s: launching the attention kernel failed: %s (%s); "
                      "the kernel must be built for this GPU and linked "
                      "against the shared CUDA runtime (nvcc -cudart shared), "
                      "like kvrt",
                      function, cudaGetErrorString(error),
                      cudaGetErrorName(error));
  return checkCuda(error, function, "cudaLaunchKernel (attention)");
}

/// Queues mergeSplits<T> for `heads` query heads.
template <typename T>
cudaError_t queueMerge(const kvrt_attention_params &p, int64_t heads,
                       cudaStream_t stream) {
  size_t shared = sizeof(float) * size_t(p.num_splits);
  mergeSplits<T><<<dim3(unsigned(heads)), kMergeThreads, shared, stream>>>(
      p.partial_out, p.partial_lse, static_cast<T *>(p.out), p.num_splits,
      p.head_dim);
  return cudaGetLastError();
}

} // namespace

SplitPlan kvrt::cuda::planSplits(int64_t baseBlocks, int64_t maxPages,
                                 int64_t slots) {
  if (baseBlocks <= 0 || maxPages <= 1 || slots <= 0 ||
      baseBlocks >= kFullChipFraction * double(slots))
    return SplitPlan();
  const int64_t most =
      std::min({kMaxSplits, maxPages, kMaxGridZ});
  // Fraction of the last wave's slots that do work, for s splits.
  auto efficiency = [&](int64_t s) {
    double waves = double(baseBlocks * s) / double(slots);
    return waves / std::ceil(waves);
  };
  double best = 0.0;
  for (int64_t s = 1; s <= most; ++s)
    best = std::max(best, efficiency(s));
  for (int64_t s = 1; s <= most; ++s)
    if (efficiency(s) >= kWaveEfficiencyTolerance * best)
      return fixedSplits(s, maxPages);
  return SplitPlan();
}

kvrt_status kvrt::cuda::launchSplitAttention(const void *kernel,
                                             kvrt_attention_params &params,
                                             kvrt_dtype dtype,
                                             int64_t maxLength, int threads,
                                             int device, void *stream,
                                             const char *function) {
  ScopedDevice scoped(device);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  const int64_t rows = int64_t(params.batch) * params.num_tokens;
  const int64_t baseBlocks = rows * params.num_kv_heads;
  const int64_t maxPages =
      (maxLength + params.page_size - 1) / params.page_size;
  // Every split should give each warp at least one page.
  const int64_t warps = threads / 32;

  SplitPlan plan;
  if (int64_t forced = splitOverride()) {
    plan = fixedSplits(std::min(forced, kMaxSplits), maxPages);
  } else {
    int sms = 0, perSm = 0;
    KVRT_RETURN_IF_ERROR(smCount(device, &sms, function));
    KVRT_RETURN_IF_ERROR(blocksPerSm(device, kernel, threads, &perSm, function));
    plan = planSplits(baseBlocks, maxPages / std::max<int64_t>(1, warps),
                      int64_t(sms) * perSm);
    // planSplits counted groups of `warps` pages; convert back to pages.
    if (plan.numSplits > 1)
      plan = fixedSplits(plan.numSplits, maxPages);
  }
  params.num_splits = plan.numSplits;
  params.pages_per_split = plan.pagesPerSplit;
  params.partial_out = nullptr;
  params.partial_lse = nullptr;

  const dim3 grid(unsigned(params.num_kv_heads), unsigned(rows),
                  unsigned(std::max(1, plan.numSplits)));
  if (plan.numSplits <= 1) {
    kvrt_attention_params copy = params;
    void *args[] = {&copy};
    cudaError_t error =
        cudaLaunchKernel(kernel, grid, dim3(threads), args, 0, cudaStream);
    if (error == cudaSuccess)
      error = cudaGetLastError();
    return error == cudaSuccess ? KVRT_OK : launchError(error, function);
  }

  const int64_t heads = rows * params.num_q_heads;
  const int64_t slots = heads * plan.numSplits;
  const size_t bytes = size_t(slots) * (size_t(params.head_dim) + 1) *
                       sizeof(float);
  Workspace &workspace = workspaceOf(device);
  std::lock_guard<std::mutex> lock(workspace.mutex);
  KVRT_RETURN_IF_ERROR(workspace.acquire(bytes, cudaStream, function));
  params.partial_out = static_cast<float *>(workspace.buffer);
  params.partial_lse = params.partial_out + slots * params.head_dim;

  kvrt_attention_params copy = params;
  void *args[] = {&copy};
  cudaError_t error =
      cudaLaunchKernel(kernel, grid, dim3(threads), args, 0, cudaStream);
  if (error == cudaSuccess)
    error = cudaGetLastError();
  if (error != cudaSuccess)
    return launchError(error, function);
  switch (dtype) {
  case KVRT_DTYPE_F16:
    error = queueMerge<__half>(params, heads, cudaStream);
    break;
  case KVRT_DTYPE_BF16:
    error = queueMerge<__nv_bfloat16>(params, heads, cudaStream);
    break;
  case KVRT_DTYPE_F32:
    error = queueMerge<float>(params, heads, cudaStream);
    break;
  }
  KVRT_RETURN_IF_ERROR(checkCuda(error, function, "mergeSplits launch"));
  return workspace.release(cudaStream, function);
}
