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

namespace kvrt::cuda {

/// How a launch cuts each row's pages.
struct SplitPlan {
  int32_t numSplits = 1;
  int32_t pagesPerSplit = 0;
};

/// Chooses the split of a launch of `baseBlocks` blocks (kv heads x batch x
/// tokens) over rows of at most `maxPages` pages on a device that holds
/// `slots` such blocks at once: none when the launch nearly fills the slots,
/// else the fewest splits whose last wave of blocks is nearly as full as the
/// best count's. Pure function, for tests.
SplitPlan planSplits(int64_t baseBlocks, int64_t maxPages, int64_t slots);

/// Launches `kernel` (a compiled `__global__ void(kvrt_attention_params)`)
/// over `params`, whose num_splits, pages_per_split and workspace fields it
/// fills, and merges the splits into params.out when there are several.
/// `maxLength` is the longest row of the launch in tokens; `dtype` is the
/// cache's element type (the merge kernel writes it).
///
/// The split count comes from planSplits with the device's SM count and the
/// kernel's occupancy (both cached). The environment variable
/// KVRT_DECODE_SPLITS, when set to a positive number, forces the count
/// (clamped to the pages available): a tuning and benchmarking knob.
kvrt_status launchSplitAttention(const void *kernel,
                                 kvrt_attention_params &params,
                                 kvrt_dtype dtype, int64_t maxLength,
                                 int threads, int device, void *stream,
                                 const char *function);

} // namespace kvrt::cuda

#endif // KVRT_LIB_SPLITK_H
