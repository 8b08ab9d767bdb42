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

#include "kvrt/device/attention_prefill.cuh"
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

/// Upper bound on splits: bounds the workspace and the merge's work.
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

/// Block-wide reduction of `value` with `op` (all threads get the result).
/// `scratch` holds one float per warp; the block has kMergeThreads threads.
template <typename Op>
__device__ float blockReduce(float value, float *scratch, Op op) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int warp = threadIdx.x / 32;
  __syncthreads(); // scratch may still be read by a previous reduction
  if (threadIdx.x % 32 == 0)
    scratch[warp] = value;
  __syncthreads();
  float result = scratch[0];
  for (int w = 1; w < kMergeThreads / 32; ++w)
    result = op(result, scratch[w]);
  return result;
}

/// Combines the splits of one query head (one block per head): out[d] =
/// sum_s w_s * partial[s][d] / sum_s w_s with w_s = 2^(lse_s - max lse).
/// Splits that saw no key have lse -inf and weigh nothing; a head with no
/// key at all gets 0, as the unsplit kernel writes.
///
/// Every load is independent of the others: the block reduces the lse
/// values in parallel, and its threads split the sum over splits into
/// `parts` interleaved partial sums of 16-byte vectors (four dims each),
/// combined through shared memory at the end. A serial loop over the
/// splits per dim was latency-bound (one L2 round trip per few splits).
template <typename T>
__global__ void __launch_bounds__(kMergeThreads)
    mergeSplits(const float *partialOut, const float *partialLse, T *out,
                int numSplits, int headDim, float *rowLse) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Launched as a programmatic dependent of the attention kernel (see
  // queueMerge): wait until its partial states are complete and visible.
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
  extern __shared__ float weights[];
  __shared__ float scratch[kMergeThreads / 32];
  __shared__ float4 partSums[kMergeThreads];
  const int64_t head = blockIdx.x;
  const float *lse = partialLse + head * numSplits;
  float localMax = -INFINITY;
  for (int s = threadIdx.x; s < numSplits; s += blockDim.x)
    localMax = fmaxf(localMax, lse[s]);
  const float maxLse = blockReduce(
      localMax, scratch, [](float a, float b) { return fmaxf(a, b); });
  float localTotal = 0.0f;
  for (int s = threadIdx.x; s < numSplits; s += blockDim.x) {
    const float w = lse[s] == -INFINITY ? 0.0f : exp2f(lse[s] - maxLse);
    weights[s] = w;
    localTotal += w;
  }
  const float total = blockReduce(localTotal, scratch,
                                  [](float a, float b) { return a + b; });
  // The key-score hook's log2-sum-exp of the row (null when off).
  if (rowLse && threadIdx.x == 0)
    rowLse[head] = total > 0.0f ? maxLse + log2f(total) : -INFINITY;
  const float *partial = partialOut + head * numSplits * headDim;
  T *result = out + head * headDim;

  const int vecs = headDim / 4;
  if (headDim % 4 != 0 || vecs > kMergeThreads) {
    for (int d = threadIdx.x; d < headDim; d += blockDim.x) {
      float sum = 0.0f;
      for (int s = 0; s < numSplits; ++s)
        sum = fmaf(weights[s], partial[int64_t(s) * headDim + d], sum);
      result[d] = kvrt::device::fromFloat<T>(total > 0.0f ? sum / total : 0.0f);
    }
    return;
  }
  const int parts = kMergeThreads / vecs;
  const int part = threadIdx.x / vecs;
  const int vec = threadIdx.x % vecs;
  float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (part < parts) {
#pragma unroll 4
    for (int s = part; s < numSplits; s += parts) {
      const float4 x = *reinterpret_cast<const float4 *>(
          partial + int64_t(s) * headDim + 4 * vec);
      const float w = weights[s];
      sum.x = fmaf(w, x.x, sum.x);
      sum.y = fmaf(w, x.y, sum.y);
      sum.z = fmaf(w, x.z, sum.z);
      sum.w = fmaf(w, x.w, sum.w);
    }
  }
  partSums[threadIdx.x] = sum;
  __syncthreads();
  if (part != 0)
    return;
  for (int other = 1; other < parts; ++other) {
    const float4 x = partSums[other * vecs + vec];
    sum.x += x.x;
    sum.y += x.y;
    sum.z += x.z;
    sum.w += x.w;
  }
  const float scale = total > 0.0f ? 1.0f / total : 0.0f;
  result[4 * vec] = kvrt::device::fromFloat<T>(sum.x * scale);
  result[4 * vec + 1] = kvrt::device::fromFloat<T>(sum.y * scale);
  result[4 * vec + 2] = kvrt::device::fromFloat<T>(sum.z * scale);
  result[4 * vec + 3] = kvrt::device::fromFloat<T>(sum.w * scale);
}

/// Threads of a key-score accumulation block; each takes one slot.
constexpr int kKeyScoreThreads = 256;

/// The key-score hook's second pass: adds, for every slot of row (b, kv
/// head h) = blockIdx.x, the probability its key got from each query token
/// t and head g of the group, 2^(score - lse), over the keys each query saw
/// (the kernels' causal rule). Grid (batch * num_kv_heads, slots / 256).
__global__ void __launch_bounds__(kKeyScoreThreads)
    accumulateKeyScores(kvrt_attention_params p) {
  const int row = blockIdx.x;
  const int slot = blockIdx.y * kKeyScoreThreads + threadIdx.x;
  const int length = p.kv_lens[row];
  if (slot >= length)
    return;
  const int sequence = row / p.num_kv_heads;
  const int kvHead = row % p.num_kv_heads;
  const int group = p.num_q_heads / p.num_kv_heads;
  float sum = 0.0f;
  for (int t = 0; t < p.num_tokens; ++t) {
    int visible = p.causal ? length - p.num_tokens + t + 1 : length;
    if (slot >= visible)
      continue;
    // Query rows first .. first + group - 1; their scores of this slot are
    // contiguous (params.h).
    const int64_t first =
        (int64_t(sequence) * p.num_tokens + t) * p.num_q_heads +
        int64_t(kvHead) * group;
    const float *scores = p.score_scratch + first * p.key_scores_stride +
                          int64_t(slot) * group;
    for (int g = 0; g < group; ++g) {
      const float lse = p.row_lse[first + g];
      if (lse != -INFINITY)
        sum += exp2f(scores[g] - lse);
    }
  }
  p.key_scores[int64_t(row) * p.key_scores_stride + slot] += sum;
}

/// Attribute `attribute` of `device` (`what` names it in errors), asked
/// once per (device, attribute).
kvrt_status deviceAttribute(int device, cudaDeviceAttr attribute,
                            const char *what, int *value,
                            const char *function) {
  static std::mutex mutex;
  static std::map<std::pair<int, int>, int> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const std::pair<int, int> key{device, int(attribute)};
  auto found = cache.find(key);
  if (found == cache.end()) {
    int result = 0;
    KVRT_RETURN_IF_ERROR(
        checkCuda(cudaDeviceGetAttribute(&result, attribute, device), function,
                  what));
    found = cache.emplace(key, result).first;
  }
  *value = found->second;
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

/// Dynamic shared memory for a prefill-layout launch of `kernel` on
/// `device`: what the sm_90a body needs on compute capability 9.0, else
/// what the mma.sync body needs (attention.cuh picks the body by the bytes
/// it gets). Raises the kernel's limit above the default 48 KiB once per
/// (device, kernel); where that fails (the kernel's own shared memory
/// leaves no room), the mma.sync body's bytes. KVRT_PREFILL_WGMMA=0 asks
/// for the mma.sync body (a benchmarking knob).
int prefillSharedBytes(int device, const void *kernel, int headDim,
                       int major, int minor) {
  const int fallback = kvrt::device::prefillSharedBytes(headDim, false);
  const char *text = std::getenv("KVRT_PREFILL_WGMMA");
  if (major != 9 || minor != 0 || (text && text[0] == '0'))
    return fallback;
  const int wanted = kvrt::device::prefillSharedBytes(headDim, true);
  static std::mutex mutex;
  static std::map<std::pair<int, const void *>, int> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const std::pair<int, const void *> key{device, kernel};
  auto found = cache.find(key);
  if (found == cache.end()) {
    int allowed = wanted;
    if (cudaFuncSetAttribute(kernel,
                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                             wanted) != cudaSuccess) {
      cudaGetLastError(); // not sticky: clear it
      allowed = fallback;
    }
    found = cache.emplace(key, allowed).first;
  }
  return found->second;
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

/// Queues mergeSplits<T> for `heads` query heads. On sm_90 and newer it is
/// a programmatic dependent launch: the GPU may start the merge's blocks
/// once every attention block has started (pagedAttention allows it) and
/// the merge waits for the attention kernel's results with
/// griddepcontrol.wait, which hides the launch gap between the two.
template <typename T>
cudaError_t queueMerge(const kvrt_attention_params &p, int64_t heads,
                       bool dependentLaunch, cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(heads));
  config.blockDim = dim3(kMergeThreads);
  config.dynamicSmemBytes = sizeof(float) * size_t(p.num_splits);
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (dependentLaunch) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  return cudaLaunchKernelEx(&config, mergeSplits<T>, p.partial_out,
                            p.partial_lse, static_cast<T *>(p.out),
                            int(p.num_splits), int(p.head_dim), p.row_lse);
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
  params.query_tile_rows = 0;
  int major = 0;
  KVRT_RETURN_IF_ERROR(deviceAttribute(
      device, cudaDevAttrComputeCapabilityMajor,
      "cudaDeviceGetAttribute (compute capability)", &major, function));
  if (!params.key_scores && usePrefillLayout(params, dtype, major, threads)) {
    // Many query rows: blocks of 64 (token, group head) rows that share
    // each K/V tile (attention_prefill.cuh); no split.
    const int group = params.num_q_heads / params.num_kv_heads;
    const int64_t tiles =
        (int64_t(params.num_tokens) * group + kPrefillTileRows - 1) /
        kPrefillTileRows;
    int minor = 0;
    KVRT_RETURN_IF_ERROR(deviceAttribute(
        device, cudaDevAttrComputeCapabilityMinor,
        "cudaDeviceGetAttribute (compute capability)", &minor, function));
    const int sharedBytes =
        prefillSharedBytes(device, kernel, params.head_dim, major, minor);
    params.query_tile_rows = kPrefillTileRows;
    params.num_splits = 1;
    params.pages_per_split = 0;
    params.partial_out = nullptr;
    params.partial_lse = nullptr;
    kvrt_attention_params copy = params;
    void *args[] = {&copy};
    const dim3 grid(unsigned(params.num_kv_heads),
                    unsigned(int64_t(params.batch) * tiles), 1);
    cudaError_t error = cudaLaunchKernel(kernel, grid, dim3(threads), args,
                                         size_t(sharedBytes), cudaStream);
    if (error == cudaSuccess)
      error = cudaGetLastError();
    return error == cudaSuccess ? KVRT_OK : launchError(error, function);
  }
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
    KVRT_RETURN_IF_ERROR(deviceAttribute(
        device, cudaDevAttrMultiProcessorCount,
        "cudaDeviceGetAttribute (multiprocessor count)", &sms, function));
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
  const bool scored = params.key_scores != nullptr;
  if (plan.numSplits <= 1 && !scored) {
    kvrt_attention_params copy = params;
    void *args[] = {&copy};
    cudaError_t error =
        cudaLaunchKernel(kernel, grid, dim3(threads), args, 0, cudaStream);
    if (error == cudaSuccess)
      error = cudaGetLastError();
    return error == cudaSuccess ? KVRT_OK : launchError(error, function);
  }

  // Workspace: split partials [slots x (head_dim + 1)], then for the
  // key-score hook each query row's lse and its scores [heads x stride].
  const int64_t heads = rows * params.num_q_heads;
  const int64_t slots = plan.numSplits > 1 ? heads * plan.numSplits : 0;
  // Each part starts 16-byte aligned (kernels store float2 scores).
  auto aligned = [](int64_t floats) { return (floats + 3) / 4 * 4; };
  const int64_t partialFloats =
      slots ? aligned(slots * params.head_dim) + aligned(slots) : 0;
  const int64_t scoreFloats =
      scored ? aligned(heads) + heads * params.key_scores_stride : 0;
  const size_t bytes =
      size_t(partialFloats + scoreFloats) * sizeof(float);
  Workspace &workspace = workspaceOf(device);
  std::lock_guard<std::mutex> lock(workspace.mutex);
  KVRT_RETURN_IF_ERROR(workspace.acquire(bytes, cudaStream, function));
  float *next = static_cast<float *>(workspace.buffer);
  if (slots) {
    params.partial_out = next;
    params.partial_lse = params.partial_out + aligned(slots * params.head_dim);
    next = params.partial_lse + aligned(slots);
  }
  if (scored) {
    params.row_lse = next;
    params.score_scratch = next + aligned(heads);
  }

  kvrt_attention_params copy = params;
  void *args[] = {&copy};
  cudaError_t error =
      cudaLaunchKernel(kernel, grid, dim3(threads), args, 0, cudaStream);
  if (error == cudaSuccess)
    error = cudaGetLastError();
  if (error != cudaSuccess)
    return launchError(error, function);
  if (slots) {
    const bool dependent = major >= 9;
    switch (dtype) {
    case KVRT_DTYPE_F16:
      error = queueMerge<__half>(params, heads, dependent, cudaStream);
      break;
    case KVRT_DTYPE_BF16:
      error = queueMerge<__nv_bfloat16>(params, heads, dependent, cudaStream);
      break;
    case KVRT_DTYPE_F32:
      error = queueMerge<float>(params, heads, dependent, cudaStream);
      break;
    }
    KVRT_RETURN_IF_ERROR(checkCuda(error, function, "mergeSplits launch"));
  }
  if (scored) {
    // Every row's slots lie below the stride (checked by the caller).
    const int64_t stride = params.key_scores_stride;
    const dim3 scoreGrid(
        unsigned(int64_t(params.batch) * params.num_kv_heads),
        unsigned((stride + kKeyScoreThreads - 1) / kKeyScoreThreads));
    if (stride > 0) {
      accumulateKeyScores<<<scoreGrid, kKeyScoreThreads, 0, cudaStream>>>(
          params);
      KVRT_RETURN_IF_ERROR(checkCuda(cudaGetLastError(), function,
                                     "accumulateKeyScores launch"));
    }
  }
  return workspace.release(cudaStream, function);
}
