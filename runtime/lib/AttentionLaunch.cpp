//===- AttentionLaunch.cpp - Launching compiled attention kernels -*- C++ -*-//
//
// kvrt_attention_launch turns a batch of sequence ids into the page tables
// of kvrt_attention_params (each row's page ids read in place from the
// cache's device arena, DeviceTables.h; the lengths and offsets inline in
// the arguments for batches of up to KVRT_INLINE_ROWS rows, else uploaded
// to the cache's scratch buffer on the caller's stream) and launches the
// compiled kernel through
// launchSplitAttention (SplitK.h), which splits long rows over more blocks
// and merges the splits. The kernel's template parameters (head_dim,
// page_size, group) are baked in at compile time; kvrt_cache_check is what
// ties them to the cache.
//
//===----------------------------------------------------------------------===//
#include "AttentionArgs.h"
#include "CudaBackend.h"
#include "DeviceTables.h"
#include "Error.h"
#include "Handles.h"
#include "SplitK.h"
#include "TileRuns.h"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace {
/// gridDim.y limit of CUDA; the grid's y dimension is batch * num_tokens.
constexpr int64_t kMaxGridY = 65535;
} // namespace

namespace {

/// KVRT_ERROR_UNSUPPORTED where kvrt was built without CUDA.
kvrt_status checkBuiltWithCuda(const char *fn) {
  if (kvrt::cuda::isBuiltWithCuda())
    return KVRT_OK;
  return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                    "%s: this kvrt was built without CUDA (configure with "
                    "-DKVCC_ENABLE_CUDA=ON)",
                    fn);
}

/// What kvrt_attention_launch and kvrt_attention_plan check after the
/// arguments every attention call shares: a CUDA pool and a kernel.
kvrt_status checkPoolAndKernel(const char *fn, const kvrt_cache *cache,
                               const void *kernel) {
  if (cache->pool->device != KVRT_DEVICE_CUDA)
    return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                      "%s: the cache lives in a host pool; compiled kernels "
                      "read CUDA pools only (use kvrt_attention_host)",
                      fn);
  return kvrt::checkNotNull(kernel, fn, "kernel");
}

/// Then (the launch checks its buffers' alignment in between): a block size
/// and a grid the launch can take.
kvrt_status checkBlockAndGrid(const char *fn, int32_t batch, int32_t num_tokens,
                              int32_t threads) {
  if (threads < 32 || threads > 1024 || threads % 32 != 0)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: threads %d must be a multiple of 32 in [32, 1024]",
                      fn, threads);
  if (static_cast<int64_t>(batch) * num_tokens > kMaxGridY)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: batch %d x num_tokens %d exceeds %lld, the most "
                      "blocks the grid's y dimension holds",
                      fn, batch, num_tokens, static_cast<long long>(kMaxGridY));
  return KVRT_OK;
}

/// The cache's tensor maps for a launch over the batch's sequences
/// `locks` (params.h, kv_tensor_map), or null. On pages below 32 tokens the
/// warp-specialized prefill body's tensor copies pay only for whole tiles
/// on runs of consecutive pages (one copy per 64 columns; a page's own is
/// slower than cp.async), so there the maps go only to launches of several
/// tokens whose rows' tiles mostly lie on runs (TileRuns.h); decode
/// launches never use them.
const void *launchTensorMap(const kvrt_cache *cache,
                            const kvrt::SequenceLocks &locks,
                            int32_t num_tokens) {
  const void *map = cache->tensorMap.get();
  const int32_t pageSize = cache->desc.page_size;
  if (!map || pageSize >= 32)
    return map;
  if (num_tokens <= 1 ||
      !kvrt::cuda::prefillWsRunCopies(cache->desc.head_dim, pageSize))
    return nullptr;
  std::vector<kvrt::RowPages> rows;
  rows.reserve(locks.size() * size_t(cache->desc.num_kv_heads));
  for (size_t b = 0; b < locks.size(); ++b) {
    const kvrt::CacheSequence *state = cache->state(locks[b]);
    if (!state)
      continue;
    for (const kvrt::HeadTable &head : state->heads)
      rows.push_back({head.pages.data(), head.length});
  }
  return kvrt::mostTilesOnRuns(rows, pageSize,
                               kvrt::cuda::kPrefillWsTileKeys)
             ? map
             : nullptr;
}

/// The launch's shape in kvrt_attention_params (no tables or buffers).
kvrt_attention_params shapeParams(const kvrt_cache *cache,
                                  const kvrt::SequenceLocks &locks,
                                  int32_t batch, int32_t num_tokens,
                                  int32_t num_q_heads, int32_t causal) {
  kvrt_attention_params params{};
  params.batch = batch;
  params.num_tokens = num_tokens;
  params.num_q_heads = num_q_heads;
  params.num_kv_heads = cache->desc.num_kv_heads;
  params.head_dim = cache->desc.head_dim;
  params.page_size = cache->desc.page_size;
  params.causal = causal ? 1 : 0;
  // The launch keeps them only where the warp-specialized prefill body
  // runs (planAttention).
  params.kv_tensor_map = launchTensorMap(cache, locks, num_tokens);
  return params;
}

/// The batch's longest sequence: splits are sized for it (the kernel
/// covers any longer head row whole in its last split).
int64_t longest(const std::vector<int64_t> &lengths) {
  int64_t result = 0;
  for (int64_t length : lengths)
    result = std::max(result, length);
  return result;
}

/// kvrt_attention_launch and kvrt_attention_launch_scored; `keyScores`
/// may be null.
kvrt_status launchAttention(const char *fn, const kvrt_cache *cache,
                            int32_t batch, const int32_t *seq_ids,
                            int32_t num_tokens, int32_t num_q_heads,
                            const void *queries, void *out, float scale,
                            int32_t causal, const void *kernel,
                            int32_t threads, float *keyScores,
                            int64_t keyScoresStride, void *stream) {
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(checkBuiltWithCuda(fn));
    std::vector<int64_t> lengths;
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(
        kvrt::validateAttention(cache, batch, seq_ids, num_tokens, num_q_heads,
                                queries, out, fn, lengths, locks));
    KVRT_RETURN_IF_ERROR(kvrt::checkScale(scale, fn));
    KVRT_RETURN_IF_ERROR(checkPoolAndKernel(fn, cache, kernel));
    // The kernels read query rows as 16-byte vectors (and the prefill
    // bodies copy them with cp.async).
    for (const auto &[pointer, name] :
         {std::pair<const void *, const char *>{queries, "queries"},
          {out, "out"}})
      if (reinterpret_cast<uintptr_t>(pointer) % 16 != 0)
        return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                          "%s: %s (%p) must be aligned to 16 bytes", fn, name,
                          pointer);
    KVRT_RETURN_IF_ERROR(checkBlockAndGrid(fn, batch, num_tokens, threads));

    const int64_t maxLength = longest(lengths);
    if (keyScores && keyScoresStride < maxLength)
      // Head lengths never exceed their sequence's.
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: key_scores_stride %lld is below the longest "
                        "sequence of the batch (%lld tokens)",
                        fn, static_cast<long long>(keyScoresStride),
                        static_cast<long long>(maxLength));

    const kvrt_pool &pool = *cache->pool;
    KVRT_RETURN_IF_ERROR(
        kvrt::cuda::checkNotCapturing(stream, pool.cudaDevice, fn));

    // Step 1, device tables: kept on the device and brought up to date for
    // this batch (DeviceTables.h); valid while `tables` lives.
    kvrt::DeviceTablesView tables;
    KVRT_RETURN_IF_ERROR(
        kvrt::getDeviceTables(cache, locks, stream, &tables, fn));

    kvrt_attention_params params =
        shapeParams(cache, locks, batch, num_tokens, num_q_heads, causal);
    params.pool_base = pool.base;
    params.page_bytes = pool.pageBytes;
    tables.fill(params);
    params.queries = queries;
    params.out = out;
    params.scale = scale;
    params.key_scores = keyScores;
    params.key_scores_stride = keyScores ? keyScoresStride : 0;

    // Step 2, launch (planAttention's plan, SplitK.h).
    const kvrt_status launched = kvrt::cuda::launchSplitAttention(
        kernel, params, cache->desc.dtype, maxLength, threads, pool.cudaDevice,
        stream, fn);
    if (launched == KVRT_OK)
      return cache->scratch.markInUse(stream, fn);
    // The attention kernel may be queued even though a later step failed
    // (the merge's launch): it reads the scratch buffer and the arena, so
    // the next upload must still wait for it.
    return kvrt::afterQueued(
        launched, [&] { return cache->scratch.markInUse(stream, fn); });
  });
}

} // namespace

extern "C" kvrt_status
kvrt_attention_launch(const kvrt_cache *cache, int32_t batch,
                      const int32_t *seq_ids, int32_t num_tokens,
                      int32_t num_q_heads, const void *queries, void *out,
                      float scale, int32_t causal, const void *kernel,
                      int32_t threads, void *stream) {
  return launchAttention("kvrt_attention_launch", cache, batch, seq_ids,
                         num_tokens, num_q_heads, queries, out, scale, causal,
                         kernel, threads, nullptr, 0, stream);
}

extern "C" kvrt_status kvrt_attention_plan(
    const kvrt_cache *cache, int32_t batch, const int32_t *seq_ids,
    int32_t num_tokens, int32_t num_q_heads, int32_t causal, const void *kernel,
    int32_t threads, int32_t scored, kvrt_attention_plan_info *out) {
  const char *fn = "kvrt_attention_plan";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(checkBuiltWithCuda(fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    std::vector<int64_t> lengths;
    kvrt::SequenceLocks locks;
    KVRT_RETURN_IF_ERROR(kvrt::validateAttentionRows(
        cache, batch, seq_ids, num_tokens, num_q_heads, fn, lengths, locks));
    KVRT_RETURN_IF_ERROR(checkPoolAndKernel(fn, cache, kernel));
    KVRT_RETURN_IF_ERROR(checkBlockAndGrid(fn, batch, num_tokens, threads));
    const kvrt_attention_params params =
        shapeParams(cache, locks, batch, num_tokens, num_q_heads, causal);
    kvrt::cuda::AttentionPlan plan;
    KVRT_RETURN_IF_ERROR(kvrt::cuda::planAttention(
        kernel, params, cache->desc.dtype, longest(lengths), threads,
        scored != 0, cache->pool->cudaDevice, &plan, fn));
    out->query_tile_rows = plan.queryTileRows;
    out->num_splits = plan.numSplits;
    out->pages_per_split = plan.pagesPerSplit;
    out->block_threads = plan.threads;
    out->shared_bytes = plan.sharedBytes;
    out->tensor_copies = plan.tensorCopies ? 1 : 0;
    out->tensor_copy_runs = plan.tensorCopyRuns ? 1 : 0;
    for (int i = 0; i < 3; ++i)
      out->grid[i] = static_cast<int32_t>(plan.grid[i]);
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_attention_launch_scored(
    const kvrt_cache *cache, int32_t batch, const int32_t *seq_ids,
    int32_t num_tokens, int32_t num_q_heads, const void *queries, void *out,
    float scale, int32_t causal, const void *kernel, int32_t threads,
    float *key_scores, int64_t key_scores_stride, void *stream) {
  const char *fn = "kvrt_attention_launch_scored";
  if (!key_scores)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT, "%s: key_scores is null",
                      fn);
  return launchAttention(fn, cache, batch, seq_ids, num_tokens, num_q_heads,
                         queries, out, scale, causal, kernel, threads,
                         key_scores, key_scores_stride, stream);
}
