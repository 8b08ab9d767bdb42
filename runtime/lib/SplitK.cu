//===- SplitK.cu - Split-K attention launches and the merge kernel -*- CUDA
//-*-//
//
// Flash-decoding for compiled attention kernels. At batch 1 a decode step
// has only num_kv_heads (kv head, token) blocks, far fewer than the SMs can
// run, so each row's pages are cut into num_splits ranges that run as
// separate blocks (grid z). Each writes its normalized partial output and
// log2-sum-exp to a workspace; the last block of each row to finish
// combines the row's splits (kvrt/device/split_merge.cuh, counted in
// per-row split counters), or, with KVRT_SPLIT_MERGE=kernel, mergeSplits
// does it per query head after the attention kernel.
//
// On sm_90 and newer the attention kernel and the merge kernel are
// programmatic dependent launches (kvrt/device/launch.cuh): their blocks
// may be scheduled while the stream's previous kernel drains.
//
// The workspace belongs to the device, not to a cache: one buffer (and one
// counter array) per CUDA device, grown on demand and never shrunk, kept
// until the process exits. Launches take a per-device lock from the
// workspace's first use to the last kernel's enqueue; an event recorded
// after it orders the next launch's writes after this launch's reads on
// whatever stream it runs.
//
//===----------------------------------------------------------------------===//
#include "CudaSupport.h"
#include "SplitK.h"

#include "kvrt/device/attention_prefill.cuh"
#include "kvrt/device/element.cuh"
#include "kvrt/device/launch.cuh"
#include "kvrt/device/split_merge.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace {

using kvrt::cuda::checkCuda;
using kvrt::cuda::ScopedDevice;
using kvrt::cuda::SplitPlan;

/// Most threads of a merge block (see mergeShape).
constexpr int kMergeThreads = 256;

/// Splits whose partial states a merge thread loads before it combines any
/// of them: the loads of a batch are in flight together.
constexpr int kMergeBatch = 8;

/// Upper bound on splits: bounds the workspace and the merge's work.
/// 256 splits of 4 pages already cover 1024 pages per wave.
constexpr int64_t kMaxSplits = 256;

/// A split count is good enough once its waves are this full relative to
/// the best count's (the rule FlashAttention-2 uses): fewer splits mean less
/// merge work and longer, more efficient blocks.
constexpr double kWaveEfficiencyTolerance = 0.85;

/// Launches whose waves already keep this fraction of the block slots busy
/// are not split.
constexpr double kFullChipFraction = 0.8;

/// Most blocks gridDim.z may hold.
constexpr int64_t kMaxGridZ = 65535;

/// How a merge block covers one head: `parts` threads per N-element vector
/// of the output, each taking every parts-th split, so that a thread has
/// at most kMergeBatch splits while the block stays within kMergeThreads
/// (a whole number of warps).
struct MergeShape {
  int parts;
  int threads;
};
MergeShape mergeShape(int numSplits, int headDim) {
  const int vectors = headDim % 4 == 0 ? headDim / 4 : headDim;
  const int parts =
      kvrt::device::mergeParts(numSplits, vectors, kMergeThreads, kMergeBatch);
  const int threads = std::min(kMergeThreads, parts * vectors);
  return {parts, (threads + 31) / 32 * 32};
}

/// The merge kernel: one block of mergeShape(...).threads threads per
/// query head; 16-byte vectors where head_dim allows (see mergeHeads).
template <typename T>
__global__ void __launch_bounds__(kMergeThreads)
    mergeSplits(const float *partialOut, const float *partialLse, T *out,
                int numSplits, int headDim, float *rowLse, int parts) {
  // Launched as a programmatic dependent of the attention kernel (see
  // queueMerge): wait until its partial states are complete and visible.
  // The stream's next attention kernel may be scheduled meanwhile.
  kvrt::device::allowDependentLaunch();
  kvrt::device::waitForPrecedingKernels();
  // Block x combines query head x.
  if (headDim % 4 == 0)
    kvrt::device::mergeHeads<T, 4, kMergeBatch, kMergeThreads>(
        partialOut, partialLse, out, blockIdx.x, 1, numSplits, headDim, rowLse,
        parts);
  else
    kvrt::device::mergeHeads<T, 1, kMergeBatch, kMergeThreads>(
        partialOut, partialLse, out, blockIdx.x, 1, numSplits, headDim, rowLse,
        parts);
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

/// Whether launches of `kernel` on `device` (compute capability `major`)
/// are programmatic dependent launches (kvrt/device/launch.cuh): on sm_90
/// and newer, for kernels whose device code was compiled for sm_90 or newer
/// (so pagedAttention's griddepcontrol.wait is in it; PTX of an older
/// target, JIT-compiled here, has none). Asked once per (device, kernel).
kvrt_status dependentLaunch(int device, const void *kernel, int major,
                            bool *dependent, const char *function) {
  *dependent = false;
  if (major < 9)
    return KVRT_OK;
  static std::mutex mutex;
  static std::map<std::pair<int, const void *>, bool> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const std::pair<int, const void *> key{device, kernel};
  auto found = cache.find(key);
  if (found == cache.end()) {
    cudaFuncAttributes attributes = {};
    KVRT_RETURN_IF_ERROR(checkCuda(cudaFuncGetAttributes(&attributes, kernel),
                                   function, "cudaFuncGetAttributes"));
    found = cache.emplace(key, attributes.ptxVersion >= 90).first;
  }
  *dependent = found->second;
  return KVRT_OK;
}

/// Queues `kernel` over a copy of `params` (read during the call), as a
/// programmatic dependent launch when `dependent`.
cudaError_t queueAttention(const void *kernel,
                           const kvrt_attention_params &params, dim3 grid,
                           int threads, size_t sharedBytes, bool dependent,
                           cudaStream_t stream) {
  kvrt_attention_params copy = params;
  void *args[] = {&copy};
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(unsigned(threads));
  config.dynamicSmemBytes = sharedBytes;
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (dependent) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  cudaError_t error = cudaLaunchKernelExC(&config, kernel, args);
  if (error == cudaSuccess)
    error = cudaGetLastError();
  return error;
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
  /// The kernels' split counters (params.h, split_counters): every one is 0
  /// between launches (zeroed when allocated; each launch's last split
  /// blocks reset theirs).
  int32_t *counters = nullptr;
  size_t counterCapacity = 0;
  /// Recorded after the last launch that used the buffers; null before.
  cudaEvent_t lastUse = nullptr;

  /// Makes `bytes` of buffer and `numCounters` counters available and
  /// orders `stream` after the previous user. Call with `mutex` held and the
  /// device current.
  kvrt_status acquire(size_t bytes, size_t numCounters, cudaStream_t stream,
                      const char *function) {
    if (bytes <= capacity && numCounters <= counterCapacity) {
      if (lastUse)
        KVRT_RETURN_IF_ERROR(checkCuda(cudaStreamWaitEvent(stream, lastUse, 0),
                                       function,
                                       "cudaStreamWaitEvent (workspace)"));
      return KVRT_OK;
    }
    // The previous launch may still use the old buffers.
    if (lastUse)
      KVRT_RETURN_IF_ERROR(checkCuda(cudaEventSynchronize(lastUse), function,
                                     "cudaEventSynchronize (workspace)"));
    if (bytes > capacity) {
      cudaFree(buffer);
      buffer = nullptr;
      capacity = 0;
      size_t size = std::max<size_t>(bytes + bytes / 2, size_t(1) << 20);
      KVRT_RETURN_IF_ERROR(checkCuda(cudaMalloc(&buffer, size), function,
                                     "cudaMalloc (split-K workspace)"));
      capacity = size;
    }
    if (numCounters > counterCapacity) {
      cudaFree(counters);
      counters = nullptr;
      counterCapacity = 0;
      size_t count = std::max<size_t>(numCounters + numCounters / 2, 4096);
      KVRT_RETURN_IF_ERROR(
          checkCuda(cudaMalloc(reinterpret_cast<void **>(&counters),
                               count * sizeof(int32_t)),
                    function, "cudaMalloc (split counters)"));
      counterCapacity = count;
      KVRT_RETURN_IF_ERROR(checkCuda(
          cudaMemsetAsync(counters, 0, count * sizeof(int32_t), stream),
          function, "cudaMemsetAsync (split counters)"));
    }
    return KVRT_OK;
  }

  /// Records that work queued on `stream` so far uses the buffers.
  kvrt_status release(cudaStream_t stream, const char *function) {
    if (!lastUse)
      KVRT_RETURN_IF_ERROR(checkCuda(
          cudaEventCreateWithFlags(&lastUse, cudaEventDisableTiming), function,
          "cudaEventCreate (workspace)"));
    return checkCuda(cudaEventRecord(lastUse, stream), function,
                     "cudaEventRecord (workspace)");
  }
};

/// Whether split launches merge in the attention kernel (split_counters)
/// rather than in the merge kernel. KVRT_SPLIT_MERGE=kernel asks for the
/// merge kernel (a benchmarking knob).
bool mergeInAttentionKernel() {
  const char *text = std::getenv("KVRT_SPLIT_MERGE");
  return !(text && std::strcmp(text, "kernel") == 0);
}

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

/// The merge kernel for split states of a `dtype` cache.
const void *mergeKernel(kvrt_dtype dtype) {
  switch (dtype) {
  case KVRT_DTYPE_F16:
    return reinterpret_cast<const void *>(&mergeSplits<__half>);
  case KVRT_DTYPE_BF16:
    return reinterpret_cast<const void *>(&mergeSplits<__nv_bfloat16>);
  case KVRT_DTYPE_F32:
    break;
  }
  return reinterpret_cast<const void *>(&mergeSplits<float>);
}

/// Queues `merge` (mergeKernel's) for `heads` query heads. Where
/// `dependent` (dependentLaunch: sm_90 and newer) it is a programmatic
/// dependent launch: the GPU may start the merge's blocks once every
/// attention block has started (pagedAttention allows it) and the merge
/// waits for the attention kernel's results with griddepcontrol.wait,
/// which hides the launch gap between the two.
cudaError_t queueMerge(const void *merge, const kvrt_attention_params &p,
                       int64_t heads, bool dependent, cudaStream_t stream) {
  const MergeShape shape = mergeShape(p.num_splits, p.head_dim);
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(unsigned(heads));
  config.blockDim = dim3(unsigned(shape.threads));
  config.stream = stream;
  cudaLaunchAttribute attribute = {};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  if (dependent) {
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  // mergeSplits' parameters in order (the output's element type is the
  // kernel's; a pointer is passed the same way whatever it points to).
  const float *partialOut = p.partial_out;
  const float *partialLse = p.partial_lse;
  void *out = p.out;
  int numSplits = int(p.num_splits);
  int headDim = int(p.head_dim);
  float *rowLse = p.row_lse;
  int parts = shape.parts;
  void *args[] = {&partialOut, &partialLse, &out,  &numSplits,
                  &headDim,    &rowLse,     &parts};
  return cudaLaunchKernelExC(&config, merge, args);
}

} // namespace

SplitPlan kvrt::cuda::planSplits(int64_t baseBlocks, int64_t maxPages,
                                 int64_t slots) {
  if (baseBlocks <= 0 || maxPages <= 1 || slots <= 0)
    return SplitPlan();
  // Fraction of the slots of the waves that do work, for s splits.
  auto efficiency = [&](int64_t s) {
    double waves = double(baseBlocks * s) / double(slots);
    return waves / std::ceil(waves);
  };
  // Grids that already keep their waves this busy are not split: below one
  // wave that is the fraction of the chip's slots they fill; above it, a
  // last wave that runs mostly empty (5 blocks on 4 slots) is split too.
  if (efficiency(1) >= kFullChipFraction)
    return SplitPlan();
  const int64_t most =
      std::min({kMaxSplits, maxPages, kMaxGridZ});
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
  // KVRT_ATTENTION_PDL=0 launches the attention kernel the plain way (a
  // benchmarking knob; the merge stays a dependent launch).
  bool dependent = false;
  const char *pdl = std::getenv("KVRT_ATTENTION_PDL");
  if (!(pdl && pdl[0] == '0'))
    KVRT_RETURN_IF_ERROR(
        dependentLaunch(device, kernel, major, &dependent, function));
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
    params.split_counters = nullptr;
    const dim3 grid(unsigned(params.num_kv_heads),
                    unsigned(int64_t(params.batch) * tiles), 1);
    const cudaError_t error =
        queueAttention(kernel, params, grid, threads, size_t(sharedBytes),
                       dependent, cudaStream);
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
  params.split_counters = nullptr;

  const dim3 grid(unsigned(params.num_kv_heads), unsigned(rows),
                  unsigned(std::max(1, plan.numSplits)));
  const bool scored = params.key_scores != nullptr;
  if (plan.numSplits <= 1 && !scored) {
    const cudaError_t error =
        queueAttention(kernel, params, grid, threads, 0, dependent, cudaStream);
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
  // One counter per (query row, kv head) when the kernel merges.
  const bool mergeInKernel = slots && mergeInAttentionKernel();
  const size_t numCounters = mergeInKernel ? size_t(baseBlocks) : 0;
  Workspace &workspace = workspaceOf(device);
  std::lock_guard<std::mutex> lock(workspace.mutex);
  KVRT_RETURN_IF_ERROR(
      workspace.acquire(bytes, numCounters, cudaStream, function));
  float *next = static_cast<float *>(workspace.buffer);
  if (slots) {
    params.partial_out = next;
    params.partial_lse = params.partial_out + aligned(slots * params.head_dim);
    next = params.partial_lse + aligned(slots);
    params.split_counters = mergeInKernel ? workspace.counters : nullptr;
  }
  if (scored) {
    params.row_lse = next;
    params.score_scratch = next + aligned(heads);
  }

  cudaError_t error =
      queueAttention(kernel, params, grid, threads, 0, dependent, cudaStream);
  if (error != cudaSuccess)
    return launchError(error, function);
  if (slots && !mergeInKernel) {
    const void *merge = mergeKernel(dtype);
    bool mergeDependent = false;
    KVRT_RETURN_IF_ERROR(
        dependentLaunch(device, merge, major, &mergeDependent, function));
    error = queueMerge(merge, params, heads, mergeDependent, cudaStream);
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
