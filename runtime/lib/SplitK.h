//===- SplitK.h - Split-K launches of compiled attention kernels -*- C++ -*-===//
//
// kvrt_attention_launch hands a filled kvrt_attention_params to
// launchSplitAttention, which decides how many splits of each row's pages
// the kernel runs (flash-decoding), provides their workspace, launches the
// compiled kernel with grid (num_kv_heads, batch * num_tokens, num_splits)
// and, when there is more than one split, the runtime's merge kernel.
//
// CUDA builds implement it in SplitK.cu; host-only builds link NoSplitK.cpp.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_SPLITK_H
#define KVRT_LIB_SPLITK_H

#include "kvrt/device/params.h"
#include "kvrt/kvrt.h"

#include <cstdint>
#include <cstdlib>

namespace kvrt::cuda {

/// How a launch cuts each row's pages.
struct SplitPlan {
  int32_t numSplits = 1;
  int32_t pagesPerSplit = 0;
};

/// Chooses the split of a launch of `baseBlocks` blocks (kv heads x batch x
/// tokens) over rows of at most `maxPages` units (planAttention passes
/// groups of a block's warps' turns, decodeWarpKeys; the result's
/// pagesPerSplit counts the same units) on a device that holds
/// `slots` such blocks at once: none when its waves already keep most slots
/// busy (below one wave: it nearly fills the slots; above: its last wave is
/// not mostly empty), else the fewest splits whose waves are nearly as busy
/// as the best count's. Pure function, for tests.
SplitPlan planSplits(int64_t baseBlocks, int64_t maxPages, int64_t slots);

/// Keys a warp of a decode block takes at a time, which the split count
/// must leave every warp at least one of: the tensor-core body
/// (attention_mma.cuh, kMmaAttentionSupported: fp16/bf16, head_dim 64, 128
/// or 256, groups of 1-8, pages of a multiple of 16 tokens, on sm_80 and
/// newer) deals its split's 16-key chunks to the warps in turn, the
/// CUDA-core body whole pages. Pure function, for tests.
constexpr int64_t decodeWarpKeys(kvrt_dtype dtype, int headDim, int group,
                                 int pageSize, int computeMajor) {
  const bool tensorCores =
      (dtype == KVRT_DTYPE_F16 || dtype == KVRT_DTYPE_BF16) &&
      (headDim == 64 || headDim == 128 || headDim == 256) && group >= 1 &&
      group <= 8 && pageSize >= 16 && pageSize % 16 == 0 && computeMajor >= 8;
  return tensorCores ? 16 : pageSize;
}

/// Query rows per block in the prefill layout (kvrt::device::kPrefillRows).
inline constexpr int kPrefillTileRows = 64;
/// Query rows and threads per block of the warp-specialized prefill layout
/// (kvrt::device::kPrefillWsRows, kPrefillWsThreads).
inline constexpr int kPrefillWsTileRows = 128;
inline constexpr int kPrefillWsBlockThreads = 384;
/// Keys per K/V tile of the warp-specialized prefill body
/// (kvrt::device::kPrefillWsKeys).
inline constexpr int kPrefillWsTileKeys = 128;

/// Whether that body copies whole tiles on runs of consecutive pages with
/// one tensor copy per 64 columns at this head_dim and page size
/// (kvrt::device::prefillWsRunCopies; false without CUDA).
bool prefillWsRunCopies(int headDim, int pageSize);

/// Registers a warp-specialized prefill block redistributes by setmaxnreg:
/// 24 per producer thread and 240 per consumer thread
/// (kvrt::device::kPrefillWsConsumerRegisters). The block must have been
/// given that many, or the consumers' setmaxnreg.inc would wait forever.
inline constexpr int kPrefillWsRegisterPool = 128 * 24 + 256 * 240;

/// Whether a prefill-layout launch may take the warp-specialized body's
/// blocks: compute capability 9.0 and a kernel that contains the body and
/// can run it: whose __launch_bounds__ allow its kPrefillWsBlockThreads
/// threads (`kernelMaxThreads`; kvcc's kernels with the prefill body allow
/// them only in their sm_90a code, which has the body: kPrefillMaxThreads;
/// older ones were compiled for 128) and whose `kernelRegisters` per thread
/// give such a block the registers the body redistributes
/// (kPrefillWsRegisterPool: 168, what (384, 1) bounds give).
inline bool prefillWsEligible(int computeMajor, int computeMinor,
                              int kernelMaxThreads, int kernelRegisters) {
  return computeMajor == 9 && computeMinor == 0 &&
         kernelMaxThreads >= kPrefillWsBlockThreads &&
         int64_t(kernelRegisters) * kPrefillWsBlockThreads >=
             kPrefillWsRegisterPool;
}

/// Keys a query row of the launch sees on average, at least, for which the
/// warp-specialized body beats the 64-row wgmma one. Measured on the H200
/// (bf16 GQA 32/8, d128; TFLOP/s warp-specialized / 64-row). Session 16,
/// the persistent grid (bench_prefill.py --variants): causal 8 x 1K (512
/// keys a row on average) 380 / 361-368, 16 x 512 (256) 263-266 / 273-276;
/// non-causal 16 x 512 415-419 against 377-379 with a block per tile.
/// Session 14, a block per tile: causal 512 tokens 229 / 273, 1K 348 / 375,
/// 1.5K 424 / 430, 2K 473 / 466, 3K 528 / 496; non-causal 512 tokens 372 /
/// 383, 1K 484 / 455.
inline constexpr int64_t kPrefillWsMinMeanKeys = 512;

/// Whether a prefill-layout launch of `numTokens` query tokens whose
/// longest sequence holds `maxLength` tokens (the chunk included) takes the
/// warp-specialized body where it is eligible: when its rows see at least
/// kPrefillWsMinMeanKeys keys on average (causal: the cached prefix plus
/// half the chunk; else the whole sequence), so that its deeper pipeline's
/// fill and drain are amortized. KVRT_PREFILL_WS=1 forces it, 0 turns it
/// off (benchmarking knobs; read by the caller).
inline bool prefillWsPays(int64_t maxLength, int numTokens, bool causal) {
  const int64_t meanKeys = causal ? maxLength - numTokens / 2 : maxLength;
  return meanKeys >= kPrefillWsMinMeanKeys;
}

/// Whether a launch of `params` uses the prefill layout (params.h,
/// query_tile_rows): fp16/bf16, head_dim 64/128, groups of 1, 2, 4 or 8 on
/// sm_80+ with 128 threads, and at least 64 query rows (tokens x group) per
/// sequence. KVRT_PREFILL_LAYOUT=0 turns it off (a benchmarking knob).
inline bool usePrefillLayout(const kvrt_attention_params &params,
                             kvrt_dtype dtype, int computeMajor, int threads) {
  if (params.num_kv_heads <= 0 || params.num_q_heads % params.num_kv_heads)
    return false;
  const int group = params.num_q_heads / params.num_kv_heads;
  // The shapes kvrt::device::kPrefillSupported covers, on sm_80+.
  const bool supported =
      (dtype == KVRT_DTYPE_F16 || dtype == KVRT_DTYPE_BF16) &&
      (params.head_dim == 64 || params.head_dim == 128) &&
      (group == 1 || group == 2 || group == 4 || group == 8) &&
      computeMajor >= 8 && threads == 128;
  if (!supported || int64_t(params.num_tokens) * group < kPrefillTileRows)
    return false;
  const char *text = std::getenv("KVRT_PREFILL_LAYOUT");
  return !(text && text[0] == '0');
}

/// Threads of a generated kernel's block (kvrt::device::kAttentionThreads).
inline constexpr int kAttentionBlockThreads = 128;
/// Threads of a wide decode block (kvrt::device::kWideDecodeThreads).
inline constexpr int kWideBlockThreads = 512;
/// Fraction of the SMs a wide launch's blocks must keep busy.
inline constexpr double kWideFillFraction = 0.9;

/// Threads per block of a decode launch (not the prefill layout) of
/// `baseBlocks` blocks (kv heads x batch x tokens) of a kernel allowing
/// `kernelMaxThreads` threads per block (its __launch_bounds__), on a
/// device of `sms` SMs, when the caller asked for `threads`: a wide block
/// (one per SM, streaming its row unsplit: no merge, every SM equally
/// loaded) where the caller asked for kAttentionBlockThreads, the kernel
/// allows kWideBlockThreads, and the blocks keep between kWideFillFraction
/// and all of the SMs busy; `threads` otherwise. KVRT_DECODE_WIDE=0 never
/// widens; =1 widens wherever the kernel allows (testing and tuning
/// knobs); without it, forced splits (`splitsForced`) keep `threads`.
/// Pure function of its arguments and the environment, for tests.
inline int decodeThreads(int64_t baseBlocks, int sms, int kernelMaxThreads,
                         int threads, bool splitsForced) {
  if (threads != kAttentionBlockThreads || kernelMaxThreads < kWideBlockThreads)
    return threads;
  const char *text = std::getenv("KVRT_DECODE_WIDE");
  if (text && text[0] == '0')
    return threads;
  if (text && text[0] == '1')
    return kWideBlockThreads;
  const bool fills = baseBlocks <= sms &&
                     double(baseBlocks) >= kWideFillFraction * double(sms);
  return fills && !splitsForced ? kWideBlockThreads : threads;
}

/// Slots (keys) of one key-score accumulation block (SplitK.cu's
/// accumulateKeyScores: 256 threads of 4 slots).
inline constexpr int64_t kKeyScoreBlockSlots = 1024;
/// The key-score workspace's stride is a multiple of every chunk size (16
/// at most) and of 512 slots, so that with the hook's parts on 128-byte
/// lines every query group's values and chunk maxima, and every
/// accumulation block's share of them, start on a line (halves or floats,
/// any group size, chunks of 16 keys or fewer): an accumulation block then
/// drops every line of its slots from L2 and no other block's.
inline constexpr int64_t kKeyScoreStrideUnit = 512;
static_assert(kKeyScoreBlockSlots % kKeyScoreStrideUnit == 0 &&
                  kKeyScoreStrideUnit / 16 * 4 % 128 == 0,
              "block shares and maxima rows of whole 128-byte lines");

/// Where one launch's parts lie in the device's split-K workspace, in
/// floats from its start: the split partials [slots x head_dim] and their
/// lse [slots] (with several splits), then for the key-score hook each
/// query row's lse [heads], its chunks' maxima [heads x stride / chunk
/// keys] and its per-key values [heads x stride], halves or floats
/// (params.h). Each part starts 16-byte aligned (kernels store float2
/// maxima), the hook's on 128-byte lines (the accumulation drops them
/// from L2 by whole lines).
struct WorkspaceLayout {
  int64_t partialOut = 0;
  int64_t partialLse = 0;
  int64_t rowLse = 0;
  int64_t scoreMax = 0;
  int64_t scoreScratch = 0;
  /// Slots per query row: the longest row rounded up to
  /// kKeyScoreStrideUnit (0 without the hook).
  int64_t scoreStride = 0;
  /// Floats the launch needs.
  int64_t floats = 0;
};

/// The layout for `heads` query rows (batch x tokens x q heads), `slots`
/// split partials (0 unsplit) of `headDim` floats, and with `scored` the
/// hook's parts for rows of at most `maxLength` keys, chunks of
/// `chunkKeys` keys (kvrt::device::scoreChunkKeys of the page size) and
/// float values (fp32 kernels) or halves. Pure function, for tests.
inline WorkspaceLayout workspaceLayout(int64_t heads, int64_t slots,
                                       int64_t headDim, bool scored,
                                       int64_t maxLength, int64_t chunkKeys,
                                       bool floatValues) {
  auto aligned = [](int64_t floats) { return (floats + 3) / 4 * 4; };
  auto lineAligned = [](int64_t floats) { return (floats + 31) / 32 * 32; };
  WorkspaceLayout layout;
  if (slots > 0) {
    layout.partialLse = aligned(slots * headDim);
    layout.floats = lineAligned(layout.partialLse + aligned(slots));
  }
  if (scored) {
    layout.scoreStride = (maxLength + kKeyScoreStrideUnit - 1) /
                         kKeyScoreStrideUnit * kKeyScoreStrideUnit;
    layout.rowLse = layout.floats;
    layout.scoreMax = layout.rowLse + lineAligned(heads);
    layout.scoreScratch =
        layout.scoreMax + lineAligned(heads * (layout.scoreStride / chunkKeys));
    const int64_t values = heads * layout.scoreStride;
    layout.floats = layout.scoreScratch + (floatValues ? values : values / 2);
  }
  return layout;
}

/// How launchSplitAttention runs a launch: the layout, block, grid and
/// split it chooses (kvrt_attention_plan_info's fields).
struct AttentionPlan {
  /// params.query_tile_rows: 0 for the decode layout (a block per query
  /// token and kv head), else the prefill layout's rows per block.
  int queryTileRows = 0;
  int32_t numSplits = 1;
  int32_t pagesPerSplit = 0;
  int threads = 0;
  /// Dynamic shared memory per block.
  int sharedBytes = 0;
  int64_t grid[3] = {0, 0, 0};
  /// The device's compute capability (major).
  int computeMajor = 0;
  /// Whether the warp-specialized prefill body gathers K/V by tensor
  /// copies through params.kv_tensor_map (launchSplitAttention passes the
  /// map only then).
  bool tensorCopies = false;
  /// Whether it copies the whole K/V tiles on runs of consecutive pages
  /// with one tensor copy per 64 columns (params.kv_tensor_runs; the other
  /// tiles go per page or by cp.async).
  bool tensorCopyRuns = false;
};

/// The plan of launchSplitAttention for the same arguments, `scored` for a
/// launch with the key-score hook; queues nothing (where the prefill layout
/// needs more dynamic shared memory than the kernel's default limit, the
/// limit is raised as the launch would).
kvrt_status planAttention(const void *kernel,
                          const kvrt_attention_params &params, kvrt_dtype dtype,
                          int64_t maxLength, int threads, bool scored,
                          int device, AttentionPlan *plan,
                          const char *function);

/// Launches `kernel` (a compiled `__global__ void(kvrt_attention_params)`)
/// over `params`, whose num_splits, pages_per_split and workspace fields it
/// fills, and merges the splits into params.out when there are several.
/// `maxLength` is the longest row of the launch in tokens (a longer row is
/// still covered whole by its last split, but with params.key_scores set
/// it must bound every row: the key-score workspace holds maxLength slots
/// a row, rounded up to kKeyScoreStrideUnit); `dtype` is the cache's element
/// type (the merge kernel writes it; params.dtype is set to it, which the
/// kernels check).
///
/// The split count comes from planSplits with the device's SM count and the
/// kernel's occupancy (both cached); launches that usePrefillLayout accepts
/// take the prefill layout instead, unsplit; decode launches that
/// decodeThreads widens run kWideBlockThreads threads per block (with the
/// key-score hook too). The environment variable KVRT_DECODE_SPLITS, when
/// set to a positive number, forces the count (clamped to the pages
/// available): a tuning and benchmarking knob.
kvrt_status launchSplitAttention(const void *kernel,
                                 kvrt_attention_params &params,
                                 kvrt_dtype dtype, int64_t maxLength,
                                 int threads, int device, void *stream,
                                 const char *function);

} // namespace kvrt::cuda

#endif // KVRT_LIB_SPLITK_H
