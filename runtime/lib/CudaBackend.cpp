//===- CudaBackend.cpp - kvrt's CUDA runtime calls --------------*- C++ -*-===//
//
// Device memory, copies, the per-cache scratch buffer and kernel launches of
// CUDA builds. Kernels themselves live in .cu files.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "CudaSupport.h"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <mutex>

extern "C" int32_t kvrt_has_cuda(void) { return 1; }

bool kvrt::cuda::isBuiltWithCuda() { return true; }

kvrt_status kvrt::cuda::allocate(size_t bytes, void **out, int *deviceOut,
                                 const char *function) {
  int device = 0;
  KVRT_RETURN_IF_ERROR(
      checkCuda(cudaGetDevice(&device), function, "cudaGetDevice"));
  void *memory = nullptr;
  cudaError_t error = cudaMalloc(&memory, bytes);
  if (error == cudaErrorMemoryAllocation)
    return fail(KVRT_ERROR_OUT_OF_MEMORY,
                "%s: cudaMalloc of %zu bytes on device %d failed: %s", function,
                bytes, device, cudaGetErrorString(error));
  KVRT_RETURN_IF_ERROR(checkCuda(error, function, "cudaMalloc"));
  *out = memory;
  *deviceOut = device;
  return KVRT_OK;
}

kvrt_status kvrt::cuda::allocateOn(size_t bytes, int device, void **out,
                                   const char *function) {
  ScopedDevice scoped(device);
  int current = 0;
  return allocate(bytes, out, &current, function);
}

void kvrt::cuda::release(void *pointer, int device) {
  if (!pointer)
    return;
  ScopedDevice scoped(device);
  cudaFree(pointer);
}

kvrt_status kvrt::cuda::copyToHost(void *destination, const void *source,
                                   size_t bytes, int device,
                                   const char *function) {
  ScopedDevice scoped(device);
  return checkCuda(
      cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToHost), function,
      "cudaMemcpy (device to host)");
}

kvrt_status kvrt::cuda::copyToDeviceAsync(void *destination, const void *source,
                                          size_t bytes, int device,
                                          void *stream, const char *function) {
  ScopedDevice scoped(device);
  return checkCuda(cudaMemcpyAsync(destination, source, bytes,
                                   cudaMemcpyHostToDevice,
                                   static_cast<cudaStream_t>(stream)),
                   function, "cudaMemcpyAsync (host to device)");
}

kvrt_status kvrt::cuda::checkNotCapturing(void *stream, int device,
                                          const char *function) {
  ScopedDevice scoped(device);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  KVRT_RETURN_IF_ERROR(checkCuda(
      cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status),
      function, "cudaStreamIsCapturing"));
  if (status != cudaStreamCaptureStatusNone)
    return fail(KVRT_ERROR_UNSUPPORTED,
                "%s: the stream is capturing a CUDA graph; kvrt plans each "
                "launch's page tables for the batch as it is at the call, so "
                "a replay would read stale lengths and pages: call it outside "
                "the capture",
                function);
  return KVRT_OK;
}

namespace {

/// The driver's cuTensorMapEncodeTiled (through the runtime, so that kvrt
/// needs no link to libcuda), or null where the driver lacks it.
PFN_cuTensorMapEncodeTiled_v12000 tensorMapEncoder() {
  static std::once_flag once;
  static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  std::call_once(once, [] {
    void *function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function,
                                         12000, cudaEnableDefault,
                                         &found) == cudaSuccess &&
        found == cudaDriverEntryPointSuccess)
      encode = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
    cudaGetLastError(); // not sticky: clear it
  });
  return encode;
}

} // namespace

kvrt::cuda::PageTensorMap::~PageTensorMap() { release(map, device); }

void kvrt::cuda::PageTensorMap::create(const PageTensor &tensor,
                                       int deviceIndex) {
  ScopedDevice scoped(deviceIndex);
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                             deviceIndex) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor,
                             deviceIndex) != cudaSuccess ||
      major != 9 || minor != 0) {
    cudaGetLastError();
    return;
  }
  PFN_cuTensorMapEncodeTiled_v12000 encode = tensorMapEncoder();
  if (!encode)
    return;
  // Two maps, innermost dimension first, 128-byte swizzled (the tiles'
  // layout), out-of-bounds elements (page -1) landing as zeros (params.h):
  // [0] [pages][2 pageSize rows][headDim], boxes of 64 columns (one
  // 128-byte swizzle row) by min(pageSize, 128) rows of one page;
  // [1] [pages][2][pageSize rows][headDim], boxes of 64 columns by
  // pageSize rows by the keys or the values of max(1, 128 / pageSize)
  // consecutive pages (a 128-key tile on a run of pages).
  const int64_t rowBytes = int64_t(tensor.headDim) * 2;
  const cuuint64_t pageSizes[3] = {cuuint64_t(tensor.headDim),
                                   cuuint64_t(2 * tensor.pageSize),
                                   cuuint64_t(tensor.numPages)};
  const cuuint64_t pageStrides[2] = {cuuint64_t(rowBytes),
                                     cuuint64_t(tensor.pageBytes)};
  const cuuint32_t pageBox[3] = {
      64, cuuint32_t(std::min(tensor.pageSize, 128)), 1};
  const cuuint64_t runSizes[4] = {
      cuuint64_t(tensor.headDim), cuuint64_t(tensor.pageSize), 2,
      cuuint64_t(tensor.numPages)};
  const cuuint64_t runStrides[3] = {cuuint64_t(rowBytes),
                                    cuuint64_t(tensor.pageSize * rowBytes),
                                    cuuint64_t(tensor.pageBytes)};
  const cuuint32_t runBox[4] = {
      64, cuuint32_t(std::min(tensor.pageSize, 128)), 1,
      cuuint32_t(std::max(1, 128 / tensor.pageSize))};
  const cuuint32_t steps[4] = {1, 1, 1, 1};
  CUtensorMap encoded[2];
  static_assert(sizeof(encoded[0]) == 128,
                "params.h's maps are 128 bytes each");
  auto encodeMap = [&](CUtensorMap *map, cuuint32_t rank,
                       const cuuint64_t *sizes, const cuuint64_t *strides,
                       const cuuint32_t *box) {
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_UINT16, rank,
                  const_cast<void *>(tensor.poolBase), sizes, strides, box,
                  steps, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  if (!encodeMap(&encoded[0], 3, pageSizes, pageStrides, pageBox) ||
      !encodeMap(&encoded[1], 4, runSizes, runStrides, runBox))
    return;
  void *memory = nullptr;
  if (cudaMalloc(&memory, sizeof(encoded)) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  // On a stream of its own that waits for no other work, then waited for
  // (a pageable copy may return before its DMA ends): every later launch,
  // on any stream, may read it.
  cudaStream_t stream = nullptr;
  bool copied =
      cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess;
  copied = copied &&
           cudaMemcpyAsync(memory, encoded, sizeof(encoded),
                           cudaMemcpyHostToDevice, stream) == cudaSuccess &&
           cudaStreamSynchronize(stream) == cudaSuccess;
  if (stream)
    cudaStreamDestroy(stream);
  if (!copied) {
    cudaGetLastError();
    cudaFree(memory);
    return;
  }
  map = memory;
  device = deviceIndex;
}

kvrt::cuda::Scratch::~Scratch() {
  if (!buffer && !lastUse)
    return;
  ScopedDevice scoped(device);
  // The last launch may still read the buffer; cudaFree would wait for the
  // device anyway, but only on the current context's work.
  if (lastUse) {
    cudaEventSynchronize(static_cast<cudaEvent_t>(lastUse));
    cudaEventDestroy(static_cast<cudaEvent_t>(lastUse));
  }
  cudaFree(buffer);
}

kvrt_status kvrt::cuda::Scratch::waitIdle(const char *function) const {
  if (!lastUse)
    return KVRT_OK;
  ScopedDevice scoped(device);
  return checkCuda(cudaEventSynchronize(static_cast<cudaEvent_t>(lastUse)),
                   function, "cudaEventSynchronize (scratch buffer)");
}

kvrt_status kvrt::cuda::Scratch::upload(const void *host, size_t bytes,
                                        size_t spareBytes, int deviceIndex,
                                        void *stream, void **deviceOut,
                                        const char *function) {
  ScopedDevice scoped(deviceIndex);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  size_t needed = bytes + spareBytes;
  if (needed > capacity) {
    // Growing frees the old buffer, which earlier launches may still read.
    KVRT_RETURN_IF_ERROR(waitIdle(function));
    void *grown = nullptr;
    size_t size = needed < 4096 ? 4096 : needed + needed / 2;
    KVRT_RETURN_IF_ERROR(
        checkCuda(cudaMalloc(&grown, size), function,
                  "cudaMalloc (scratch buffer for index tables)"));
    if (buffer) {
      ScopedDevice old(device);
      cudaFree(buffer);
    }
    buffer = grown;
    capacity = size;
    device = deviceIndex;
  } else {
    // The previous launch may run on another stream: order the overwrite
    // after it without blocking the host.
    KVRT_RETURN_IF_ERROR(orderAfterUse(stream, function));
  }
  *deviceOut = buffer;
  if (bytes == 0)
    return KVRT_OK;
  // From pageable memory, cudaMemcpyAsync returns only once the source has
  // been staged, so `host` may be freed right after this call.
  return checkCuda(
      cudaMemcpyAsync(buffer, host, bytes, cudaMemcpyHostToDevice, cudaStream),
      function, "cudaMemcpyAsync (index tables)");
}

kvrt_status kvrt::cuda::Scratch::orderAfterUse(void *stream,
                                               const char *function) {
  if (!lastUse)
    return KVRT_OK;
  ScopedDevice scoped(device);
  return waitForUse(static_cast<cudaStream_t>(stream),
                    static_cast<cudaEvent_t>(lastUse), lastUseStream, function,
                    "cudaStreamWaitEvent (scratch buffer)");
}

kvrt_status kvrt::cuda::Scratch::markInUse(void *stream, const char *function) {
  ScopedDevice scoped(device);
  if (!lastUse) {
    cudaEvent_t event = nullptr;
    KVRT_RETURN_IF_ERROR(
        checkCuda(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                  function, "cudaEventCreate (scratch buffer)"));
    lastUse = event;
  }
  return recordUse(static_cast<cudaStream_t>(stream),
                   static_cast<cudaEvent_t>(lastUse), &lastUseStream, function,
                   "cudaEventRecord (scratch buffer)");
}
