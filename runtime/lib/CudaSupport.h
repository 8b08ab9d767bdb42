//===- CudaSupport.h - Helpers for kvrt's CUDA sources ----------*- C++ -*-===//
//
// Shared by CudaBackend.cpp and AppendKernel.cu (CUDA builds only): turning
// cudaError_t into kvrt statuses and switching devices for one call.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_CUDASUPPORT_H
#define KVRT_LIB_CUDASUPPORT_H

#include "Error.h"

#include <cuda_runtime.h>

namespace kvrt::cuda {

/// KVRT_OK for cudaSuccess; otherwise records "<function>: <what> failed:
/// <CUDA's message>" and returns KVRT_ERROR_CUDA (KVRT_ERROR_OUT_OF_MEMORY
/// for cudaErrorMemoryAllocation, which the user can act on).
inline kvrt_status checkCuda(cudaError_t error, const char *function,
                             const char *what) {
  if (error == cudaSuccess)
    return KVRT_OK;
  kvrt_status status = error == cudaErrorMemoryAllocation
                           ? KVRT_ERROR_OUT_OF_MEMORY
                           : KVRT_ERROR_CUDA;
  return fail(status, "%s: %s failed: %s (%s)", function, what,
              cudaGetErrorString(error), cudaGetErrorName(error));
}

/// Makes a device current for the lifetime of the object and restores the
/// caller's device afterwards, so kvrt never changes the caller's state.
class ScopedDevice {
public:
  explicit ScopedDevice(int device) {
    if (cudaGetDevice(&previous) != cudaSuccess)
      return;
    if (previous != device && cudaSetDevice(device) == cudaSuccess)
      restore = true;
  }
  ScopedDevice(const ScopedDevice &) = delete;
  ScopedDevice &operator=(const ScopedDevice &) = delete;
  ~ScopedDevice() {
    if (restore)
      cudaSetDevice(previous);
  }

private:
  int previous = 0;
  bool restore = false;
};

} // namespace kvrt::cuda

#endif // KVRT_LIB_CUDASUPPORT_H
