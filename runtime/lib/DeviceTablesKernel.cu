//===- DeviceTablesKernel.cu - Assembling a batch's tables ------*- C++ -*-===//
//
// The device half of getDeviceTables (DeviceTables.h): apply the page-table
// entries that changed to the cache's arena, then gather each row's page
// ids from its arena region into the batch's contiguous page_indices. The
// second kernel runs after the first on the same stream, so it sees every
// update.
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

/// One block per row (grid-stride): rows are short (a few hundred page ids
/// at most), and a block keeps each row's reads and writes contiguous.
__global__ void gatherRowsKernel(kvrt::cuda::TableLaunch launch) {
  for (int64_t row = blockIdx.x; row < launch.rows; row += gridDim.x) {
    const int32_t first = launch.indptr[row];
    const int32_t count = launch.indptr[row + 1] - first;
    const int32_t *region = launch.arena + launch.regions[row];
    for (int32_t i = threadIdx.x; i < count; i += blockDim.x)
      launch.pageIndices[first + i] = region[i];
  }
}

} // namespace

kvrt_status kvrt::cuda::launchTableUpdate(const TableLaunch &launch, int device,
                                          void *stream, const char *function) {
  ScopedDevice scoped(device);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  if (launch.numUpdates > 0) {
    int64_t blocks =
        std::min(kMaxTableBlocks,
                 (launch.numUpdates + kTableThreads - 1) / kTableThreads);
    applyUpdatesKernel<<<static_cast<unsigned>(blocks), kTableThreads, 0,
                         cudaStream>>>(launch);
    KVRT_RETURN_IF_ERROR(checkCuda(cudaGetLastError(), function,
                                   "launching the table update kernel"));
  }
  if (launch.rows == 0)
    return KVRT_OK;
  int64_t blocks = std::min(kMaxTableBlocks, launch.rows);
  gatherRowsKernel<<<static_cast<unsigned>(blocks), kTableThreads, 0,
                     cudaStream>>>(launch);
  return checkCuda(cudaGetLastError(), function,
                   "launching the table gather kernel");
}
