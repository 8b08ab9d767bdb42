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
/// tokens) over rows of at most `maxPages` pages on a device that holds
/// `slots` such blocks at once: none when its waves already keep most slots
/// busy (below one wave: it nearly fills the slots; above: its last wave is
/// not mostly empty), else the fewest splits whose waves are nearly as busy
/// as the best count's. Pure function, for tests.
SplitPlan planSplits(int64_t baseBlocks, int64_t maxPages, int64_t slots);

/// Query rows per block in the prefill layout (kvrt::device::kPrefillRows).
inline constexpr int kPrefillTileRows = 64;

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

/// Launches `kernel` (a compiled `__global__ void(kvrt_attention_params)`)
/// over `params`, whose num_splits, pages_per_split and workspace fields it
/// fills, and merges the splits into params.out when there are several.
/// `maxLength` is the longest row of the launch in tokens; `dtype` is the
/// cache's element type (the merge kernel writes it).
///
/// The split count comes from planSplits with the device's SM count and the
/// kernel's occupancy (both cached); launches that usePrefillLayout accepts
/// take the prefill layout instead, unsplit. The environment variable
/// KVRT_DECODE_SPLITS, when set to a positive number, forces the count
/// (clamped to the pages available): a tuning and benchmarking knob.
kvrt_status launchSplitAttention(const void *kernel,
                                 kvrt_attention_params &params,
                                 kvrt_dtype dtype, int64_t maxLength,
                                 int threads, int device, void *stream,
                                 const char *function);

} // namespace kvrt::cuda

#endif // KVRT_LIB_SPLITK_H
