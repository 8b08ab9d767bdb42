//===- CopyKernel.cu - Page and row copies on the device --------*- C++ -*-===//
//
// Copy-on-write page copies, fork copies and the two halves of in-place
// compaction (rows to a staging area, then back to their new slots) are
// lists of independent byte spans. One block copies one span at a time
// (grid-stride over spans), with 16-byte vectors when the span allows.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "CudaSupport.h"

#include <algorithm>
#include <cstdint>

namespace {

constexpr int kCopyThreads = 256;
/// Enough blocks to fill any current GPU; the grid-stride loop does the rest.
constexpr int64_t kMaxCopyBlocks = 4096;
constexpr int64_t kVectorBytes = sizeof(uint4);

__global__ void copySpansKernel(kvrt::cuda::CopyLaunch launch) {
  for (int64_t span = blockIdx.x; span < launch.count; span += gridDim.x) {
    const int64_t sourceOffset = launch.spans[3 * span];
    const int64_t destinationOffset = launch.spans[3 * span + 1];
    const int64_t bytes = launch.spans[3 * span + 2];
    const char *source = launch.source + sourceOffset;
    char *destination = launch.destination + destinationOffset;
    const uint64_t bits = reinterpret_cast<uintptr_t>(source) |
                          reinterpret_cast<uintptr_t>(destination) |
                          static_cast<uint64_t>(bytes);
    if ((bits & (kVectorBytes - 1)) == 0) {
      const int64_t vectors = bytes / kVectorBytes;
      for (int64_t i = threadIdx.x; i < vectors; i += blockDim.x)
        reinterpret_cast<uint4 *>(destination)[i] =
            reinterpret_cast<const uint4 *>(source)[i];
    } else {
      for (int64_t i = threadIdx.x; i < bytes; i += blockDim.x)
        destination[i] = source[i];
    }
  }
}

} // namespace

kvrt_status kvrt::cuda::launchCopies(const CopyLaunch &launch, int device,
                                     void *stream, const char *function) {
  if (launch.count == 0)
    return KVRT_OK;
  ScopedDevice scoped(device);
  int64_t blocks = std::min(kMaxCopyBlocks, launch.count);
  copySpansKernel<<<static_cast<unsigned>(blocks), kCopyThreads, 0,
                    static_cast<cudaStream_t>(stream)>>>(launch);
  return checkCuda(cudaGetLastError(), function, "launching the copy kernel");
}
