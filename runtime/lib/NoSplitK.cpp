//===- NoSplitK.cpp - Split-K launches in builds without CUDA ---*- C++ -*-===//
//
// kvrt_attention_launch refuses before it gets here in host-only builds;
// this keeps the link whole.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "SplitK.h"

kvrt::cuda::SplitPlan kvrt::cuda::planSplits(int64_t, int64_t, int64_t) {
  return {};
}

kvrt_status kvrt::cuda::launchSplitAttention(const void *,
                                             kvrt_attention_params &,
                                             kvrt_dtype, int64_t, int, int,
                                             void *, const char *function) {
  return fail(KVRT_ERROR_UNSUPPORTED,
              "%s: this kvrt was built without CUDA (configure with "
              "-DKVCC_ENABLE_CUDA=ON)",
              function);
}

kvrt_status kvrt::cuda::planAttention(const void *,
                                      const kvrt_attention_params &, kvrt_dtype,
                                      int64_t, int, bool, int, AttentionPlan *,
                                      const char *function) {
  return fail(KVRT_ERROR_UNSUPPORTED,
              "%s: this kvrt was built without CUDA (configure with "
              "-DKVCC_ENABLE_CUDA=ON)",
              function);
}
