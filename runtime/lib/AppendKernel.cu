//===- AppendKernel.cu - Scattering new tokens into pages -------*- C++ -*-===//
//
// The CUDA side of kvrt_append and of evicting writes: copies the rows of
// dense K/V [batch, tokens, heads, head_dim] into their page slots, each
// (sequence, head) from its own start slot. Each thread moves one vector of
// the widest width (16, 8, 4, 2 or 1 bytes) that every address involved is
// aligned to, so typical caches (head_dim * element size a multiple of 16)
// use 16-byte copies.
//
//===----------------------------------------------------------------------===//
#include "CudaBackend.h"
#include "CudaSupport.h"

#include <algorithm>
#include <cstdint>

namespace {

constexpr int kAppendThreads = 256;
/// Enough blocks to fill any current GPU; a grid-stride loop does the rest.
constexpr int64_t kMaxAppendBlocks = 8192;

/// One thread per vector of `Vec` in a row; rows are (b, t, h) in the dense
/// input's order, so consecutive threads read consecutive source memory.
template <typename Vec>
__global__ void appendKernel(kvrt::cuda::AppendLaunch launch) {
  const int64_t vecsPerRow =
      launch.rowBytes / static_cast<int64_t>(sizeof(Vec));
  const int64_t totalVecs = static_cast<int64_t>(launch.batch) *
                            launch.numTokens * launch.numHeads * vecsPerRow;
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < totalVecs; i += step) {
    const int64_t row = i / vecsPerRow;
    const int64_t vec = i - row * vecsPerRow;
    const int64_t head = row % launch.numHeads;
    const int64_t bt = row / launch.numHeads;
    const int64_t token = bt % launch.numTokens;
    const int64_t b = bt / launch.numTokens;

    const int64_t start = launch.starts[b * launch.numHeads + head];
    const int64_t position = start + token;
    const int64_t pageIndex =
        position / launch.pageSize - start / launch.pageSize;
    const int64_t slot = position & (launch.pageSize - 1);
    const int32_t page =
        launch.pages[(b * launch.numHeads + head) * launch.pageStride +
                     pageIndex];

    char *destination = static_cast<char *>(launch.poolBase) +
                        page * launch.pageBytes + slot * launch.rowBytes;
    const int64_t source = row * launch.rowBytes;
    reinterpret_cast<Vec *>(destination)[vec] = reinterpret_cast<const Vec *>(
        static_cast<const char *>(launch.keys) + source)[vec];
    reinterpret_cast<Vec *>(destination + launch.valueOffset)[vec] =
        reinterpret_cast<const Vec *>(static_cast<const char *>(launch.values) +
                                      source)[vec];
  }
}

/// Largest power of two <= 16 dividing every address and stride involved.
int vectorBytes(const kvrt::cuda::AppendLaunch &launch) {
  uint64_t bits = reinterpret_cast<uintptr_t>(launch.keys) |
                  reinterpret_cast<uintptr_t>(launch.values) |
                  reinterpret_cast<uintptr_t>(launch.poolBase) |
                  static_cast<uint64_t>(launch.pageBytes) |
                  static_cast<uint64_t>(launch.rowBytes) |
                  static_cast<uint64_t>(launch.valueOffset);
  for (int width = 16; width > 1; width /= 2)
    if ((bits & (width - 1)) == 0)
      return width;
  return 1;
}

template <typename Vec>
cudaError_t launchWith(const kvrt::cuda::AppendLaunch &launch,
                       cudaStream_t stream) {
  int64_t totalVecs = static_cast<int64_t>(launch.batch) * launch.numTokens *
                      launch.numHeads *
                      (launch.rowBytes / static_cast<int64_t>(sizeof(Vec)));
  int64_t blocks = std::min(kMaxAppendBlocks,
                            (totalVecs + kAppendThreads - 1) / kAppendThreads);
  appendKernel<Vec>
      <<<static_cast<unsigned>(blocks), kAppendThreads, 0, stream>>>(launch);
  return cudaGetLastError();
}

} // namespace

kvrt_status kvrt::cuda::launchAppend(const AppendLaunch &launch, int device,
                                     void *stream, const char *function) {
  ScopedDevice scoped(device);
  cudaStream_t cudaStream = static_cast<cudaStream_t>(stream);
  cudaError_t error;
  switch (vectorBytes(launch)) {
  case 16:
    error = launchWith<uint4>(launch, cudaStream);
    break;
  case 8:
    error = launchWith<uint2>(launch, cudaStream);
    break;
  case 4:
    error = launchWith<uint32_t>(launch, cudaStream);
    break;
  case 2:
    error = launchWith<uint16_t>(launch, cudaStream);
    break;
  default:
    error = launchWith<uint8_t>(launch, cudaStream);
    break;
  }
  return checkCuda(error, function, "launching the append kernel");
}
