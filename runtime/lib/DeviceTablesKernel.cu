//===- DeviceTablesKernel.cu - Assembling a batch's tables ------*- C++ -*-===//
//
// The device half of getDeviceTables (DeviceTables.h): apply the page-table
// entries that changed to the cache's arena. Attention kernels queued after
// it on the same stream read each row's page ids straight from its arena
// region.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "CudaSupport.h"

#include <algorithm>
#include <cstdint>

namespace {

constexpr int kTableThreads = 256;
constexpr int64_t kMaxTableBlocks = 4096;

__global__ void applyUpdatesKernel(kvrt::cuda::TableLaunch launch) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < launch.numUpdates; i += step)
    launch.arena[launch.updates[2 * i]] = launch.updates[2 * i + 1];
}

} // namespace

kvrt_status kvrt::cuda::launchTableUpdate(const TableLaunch &launch, int device,
                                          void *stream, const char *function) {
  ScopedDevice scoped(device);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  if (launch.numUpdates == 0)
    return KVRT_OK;
  const int64_t blocks = std::min(
      kMaxTableBlocks, (launch.numUpdates + kTableThreads - 1) / kTableThreads);
  applyUpdatesKernel<<<static_cast<unsigned>(blocks), kTableThreads, 0,
                       cudaStream>>>(launch);
  return checkCuda(cudaGetLastError(), function,
                   "launching the table update kernel");
}
