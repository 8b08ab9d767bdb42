//===- NoCudaBackend.cpp - CUDA backend of host-only builds -----*- C++ -*-===//
//
// Host-only builds link these stubs instead of CudaBackend.cpp. Pool creation
// rejects CUDA pools before any of them is reached, so they only guard
// against a caller that got past that check.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "Error.h"

namespace {
kvrt_status unsupported(const char *function) {
  return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                    "%s: this kvrt was built without CUDA (configure with "
                    "-DKVCC_ENABLE_CUDA=ON)",
                    function);
}
} // namespace

extern "C" int32_t kvrt_has_cuda(void) { return 0; }

bool kvrt::cuda::isBuiltWithCuda() { return false; }

kvrt_status kvrt::cuda::allocate(size_t, void **, int *, const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::allocateOn(size_t, int, void **, const char *function) {
  return unsupported(function);
}

void kvrt::cuda::release(void *, int) {}

kvrt_status kvrt::cuda::copyToHost(void *, const void *, size_t, int,
                                   const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::checkNotCapturing(void *, int, const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::copyToDeviceAsync(void *, const void *, size_t, int,
                                          void *, const char *function) {
  return unsupported(function);
}

kvrt::cuda::PageTensorMap::~PageTensorMap() = default;

void kvrt::cuda::PageTensorMap::create(const PageTensor &, int) {}

kvrt::cuda::Scratch::~Scratch() = default;

kvrt_status kvrt::cuda::Scratch::upload(const void *, size_t, size_t, int,
                                        void *, void **, const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::Scratch::orderAfterUse(void *, const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::Scratch::markInUse(void *, const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::Scratch::waitIdle(const char *) const {
  return KVRT_OK;
}

kvrt_status kvrt::cuda::launchAppend(const AppendLaunch &, int, void *,
                                     const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::launchCopies(const CopyLaunch &, int, void *,
                                     const char *function) {
  return unsupported(function);
}

kvrt_status kvrt::cuda::launchTableUpdate(const TableLaunch &, int, void *,
                                          const char *function) {
  return unsupported(function);
}
