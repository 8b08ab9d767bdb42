//===- NoSplitK.cpp - Split-K launches in builds without CUDA ---*- C++ -*-===//
//
// kvrt_attention_launch and kvrt_attention_plan refuse before they get here
// in host-only builds; this keeps the link whole.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "SplitK.h"

namespace {
kvrt_status withoutCuda(const char *function) {
  return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                    "%s: this kvrt was built without CUDA (configure with "
                    "-DKVCC_ENABLE_CUDA=ON)",
                    function);
}
} // namespace

kvrt::cuda::SplitPlan kvrt::cuda::planSplits(int64_t, int64_t, int64_t) {
  return {};
}

bool kvrt::cuda::prefillWsRunCopies(int, int) { return false; }

kvrt_status kvrt::cuda::launchSplitAttention(const void *,
                                             kvrt_attention_params &,
                                             kvrt_dtype, int64_t, int, int,
                                             void *, const char *function) {
  return withoutCuda(function);
}

kvrt_status kvrt::cuda::planAttention(const void *,
                                      const kvrt_attention_params &, kvrt_dtype,
                                      int64_t, int, bool, int, AttentionPlan *,
                                      const char *function) {
  return withoutCuda(function);
}
