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

/// `recordedOn` of a use whose stream is not known.
constexpr unsigned long long kUnknownStream = ~0ull;

/// Waits on `stream` for `event`, the last use of a buffer recorded on the
/// stream with process-unique id `recordedOn` (recordUse), unless
/// `stream` is that stream: its own order already puts the new work after
/// the use, and the wait would only cost a command.
inline kvrt_status waitForUse(cudaStream_t stream, cudaEvent_t event,
                              unsigned long long recordedOn,
                              const char *function, const char *what) {
  unsigned long long id = kUnknownStream;
  if (cudaStreamGetId(stream, &id) != cudaSuccess) {
    cudaGetLastError(); // not sticky: just wait
    id = kUnknownStream;
  }
  if (id != kUnknownStream && id == recordedOn)
    return KVRT_OK;
  return checkCuda(cudaStreamWaitEvent(stream, event, 0), function, what);
}

/// Records `event` on `stream` and sets `*recordedOn` to the stream's
/// process-unique id (kUnknownStream when CUDA cannot say: the next
/// waitForUse then waits).
inline kvrt_status recordUse(cudaStream_t stream, cudaEvent_t event,
                             unsigned long long *recordedOn,
                             const char *function, const char *what) {
  *recordedOn = kUnknownStream;
  KVRT_RETURN_IF_ERROR(
      checkCuda(cudaEventRecord(event, stream), function, what));
  // Ids are unique for the life of the process: a destroyed stream's
  // handle reused by a new stream gets a new id.
  if (cudaStreamGetId(stream, recordedOn) != cudaSuccess) {
    cudaGetLastError(); // not sticky
    *recordedOn = kUnknownStream;
  }
  return KVRT_OK;
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
