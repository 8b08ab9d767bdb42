//===- attention_bulk.cuh - Paged decode fed by bulk copies ----*- CUDA -*-===//
//
// A second loader for the tensor-core decode body of attention_mma.cuh, for
// sm_90: the same block, grid, split-K contract and per-chunk math
// (accumulateChunk), but the 16-key chunks of K and V reach the warps
// through shared memory, copied by the Tensor Memory Accelerator's bulk
// copies (cp.async.bulk, completion counted in bytes on an mbarrier)
// instead of by each lane's 16-byte loads into registers.
//
// Each warp owns a ring of `stages` chunk buffers in dynamic shared memory,
// one mbarrier per buffer. Lane 0 keeps the ring full: it issues two bulk
// copies per chunk (the chunk's 16 contiguous K rows and its 16 contiguous
// V rows of one page) and the barrier's expected byte count. For each of
// its chunks the warp waits on the buffer's barrier (phase parity =
// round of the ring), copies the lane's fragments from shared memory into
// the same registers the global loader fills, hands the buffer back to
// lane 0, which refills it with the chunk `stages` ahead, and only then
// computes. So a warp has up to `stages` chunks in flight while it
// computes, without registers for them; the bytes in flight per SM are
// bounded by shared memory instead of by the register file.
//
// The runtime asks for it (runtime/lib/SplitK.cu, decodeBulkSharedBytes):
// the bulk loader runs when the launch passes at least
// decodeBulkSharedBytes(..., 1) bytes of dynamic shared memory, with as
// many stages as fit; with none the global loader runs.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_BULK_CUH
#define KVRT_DEVICE_ATTENTION_BULK_CUH

#include "kvrt/device/attention_mma.cuh"
#include "kvrt/device/attention_prefill.cuh"
#include "kvrt/device/paged.cuh"
#include "kvrt/device/params.h"

#include <cstdint>

namespace kvrt::device {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr bool kDeviceHasBulkCopy = true;
#else
inline constexpr bool kDeviceHasBulkCopy = false;
#endif

/// Most ring stages per warp the bulk loader uses.
inline constexpr int kMaxBulkStages = 4;

/// Bytes of one 16-key chunk of K and V in shared memory.
__host__ __device__ constexpr int bulkChunkBytes(int headDim, int elemBytes) {
  return 2 * 16 * headDim * elemBytes;
}

/// Dynamic shared memory the bulk loader needs for `stages` chunks per
/// warp: 128 bytes of alignment slack, the warps' barriers (8 bytes each,
/// padded to 128) and their rings.
__host__ __device__ constexpr int
decodeBulkSharedBytes(int headDim, int elemBytes, int warps, int stages) {
  return 128 + (warps * stages * 8 + 127) / 128 * 128 +
         warps * stages * bulkChunkBytes(headDim, elemBytes);
}

namespace bulk {

/// mbarrier.init with an arrival count of one (lane 0's arrive).
__device__ __forceinline__ void initBarrier(uint32_t barrier) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(barrier)
               : "memory");
#endif
}

/// Orders this thread's mbarrier.init before later uses of the barriers,
/// the bulk copies' included.
__device__ __forceinline__ void fenceBarrierInit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

/// Orders this thread's prior shared-memory accesses before the async
/// proxy's (the bulk copies') later ones.
__device__ __forceinline__ void fenceAsyncShared() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

/// Arrives on `barrier`, expecting `bytes` more bytes of copies this phase.
__device__ __forceinline__ void arriveExpecting(uint32_t barrier,
                                                uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(barrier),
      "r"(bytes)
      : "memory");
#endif
}

/// Copies `bytes` (a multiple of 16, both addresses 16-byte aligned) from
/// global memory to shared memory; completion counts on `barrier`.
__device__ __forceinline__ void copyToShared(uint32_t destination,
                                             const void *source, uint32_t bytes,
                                             uint32_t barrier) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::"
               "bytes [%0], [%1], %2, [%3];\n" ::"r"(destination),
               "l"(source), "r"(bytes), "r"(barrier)
               : "memory");
#endif
}

/// Whether the phase of `barrier` with parity `parity` has completed.
__device__ __forceinline__ bool phaseDone(uint32_t barrier, uint32_t parity) {
  uint32_t done = 1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n"
               "  .reg .pred complete;\n"
               "  mbarrier.try_wait.parity.shared::cta.b64 complete, [%1], "
               "%2;\n"
               "  selp.u32 %0, 1, 0, complete;\n"
               "}\n"
               : "=r"(done)
               : "r"(barrier), "r"(parity)
               : "memory");
#endif
  return done != 0;
}

/// Blocks until the phase of `barrier` with parity `parity` completes.
__device__ __forceinline__ void waitPhase(uint32_t barrier, uint32_t parity) {
  while (!phaseDone(barrier, parity)) {
  }
}

/// A chunk in shared memory (keys [16, D] at `keys`, values [16, D] at
/// `values`) read by accumulateChunk: the lane's vectors of ChunkRegisters'
/// layout, loaded from shared memory when the math needs them.
template <typename T, int HeadDim> struct SharedChunk {
  static constexpr int kRowBytes = HeadDim * int(sizeof(T));
  const unsigned char *keyRows;
  const unsigned char *valueRows;
  int r;
  int c;

  __device__ __forceinline__ void keys(int i, uint4 (&out)[2]) const {
    const int offset = mma::KeyMap<T, HeadDim>::element(i, c) * int(sizeof(T));
#pragma unroll
    for (int half = 0; half < 2; ++half)
      out[half] = *reinterpret_cast<const uint4 *>(
          keyRows + (r + 8 * half) * kRowBytes + offset);
  }
  __device__ __forceinline__ void values(int j, uint4 (&out)[4]) const {
    const int offset =
        mma::ValueMap<T, HeadDim>::element(j, r) * int(sizeof(T));
#pragma unroll
    for (int q = 0; q < 4; ++q)
      out[q] = *reinterpret_cast<const uint4 *>(
          valueRows + (2 * c + (q & 1) + 8 * (q >> 1)) * kRowBytes + offset);
  }
};

} // namespace bulk

/// Stages per warp that `bytes` of dynamic shared memory hold (0: none).
template <typename T, int HeadDim>
__device__ __forceinline__ int bulkStages(uint32_t bytes, int warps) {
  for (int stages = kMaxBulkStages; stages > 0; --stages)
    if (bytes >=
        uint32_t(decodeBulkSharedBytes(HeadDim, int(sizeof(T)), warps, stages)))
      return stages;
  return 0;
}

/// The tensor-core decode body fed by bulk copies (see the file comment),
/// `stages` (1..kMaxBulkStages) chunks per warp in `smem`, which is
/// 128-byte aligned and holds decodeBulkSharedBytes(..., stages) - 128
/// bytes. Needs sm_90, a 16-byte aligned pool base and page size.
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal>
__device__ void pagedAttentionBulkBody(const kvrt_attention_params &p,
                                       int64_t firstHead, int split,
                                       unsigned char *smem, int stages) {
  static_assert(kMmaAttentionSupported<T, HeadDim, GroupSize, PageSize>,
                "no tensor-core body for these template values");
  using namespace mma;
  using Keys = KeyMap<T, HeadDim>;
  using Layout = PageLayout<T, HeadDim, PageSize>;
  constexpr int kChunkBytes = bulkChunkBytes(HeadDim, int(sizeof(T)));
  constexpr int kRunBytes = kChunkBytes / 2; // 16 rows of K (or of V)
  constexpr int kChunksPerPage = PageSize / kChunkKeys;

  const int kvHead = blockIdx.x;
  const int token = blockIdx.y % p.num_tokens;
  const int sequence = blockIdx.y / p.num_tokens;
  const int warp = threadIdx.x / 32;
  const int numWarps = blockDim.x / 32;
  const int lane = threadIdx.x % 32;
  const int r = lane / 4;
  const int c = lane % 4;

  // This warp's barriers, then its ring.
  const int barrierBytes = (numWarps * stages * 8 + 127) / 128 * 128;
  const uint32_t barriers =
      prefill::sharedAddress(smem) + uint32_t(warp * stages * 8);
  unsigned char *ring = smem + barrierBytes + warp * stages * kChunkBytes;
  const uint32_t ringAddress = prefill::sharedAddress(ring);

  const PagedRow row = pagedRow(p, sequence * p.num_kv_heads + kvHead);
  const DecodeSpan span = decodeSpan<PageSize, Causal>(p, row, token, split);
  // The warp's n-th chunk is chunk warp + n W of the split.
  const int chunks = span.numChunks > warp
                         ? (span.numChunks - warp + numWarps - 1) / numWarps
                         : 0;
  auto pageId = [&](int n) -> int32_t {
    const int chunk = warp + n * numWarps;
    return n < chunks ? row.pages[span.beginPage + chunk / kChunksPerPage] : 0;
  };
  // Lane 0: copy the warp's n-th chunk, of page `id`, into stage n % stages.
  auto issue = [&](int n, int32_t id) {
    const int chunk = warp + n * numWarps;
    const int stage = n % stages;
    const char *page = row.pageAddress(id);
    const int slot = (chunk % kChunksPerPage) * kChunkKeys;
    const uint32_t barrier = barriers + 8 * stage;
    const uint32_t buffer = ringAddress + uint32_t(stage * kChunkBytes);
    bulk::arriveExpecting(barrier, kChunkBytes);
    bulk::copyToShared(buffer, Layout::key(page, slot), kRunBytes, barrier);
    bulk::copyToShared(buffer + kRunBytes, Layout::value(page, slot), kRunBytes,
                       barrier);
  };

  if (lane == 0) {
    for (int s = 0; s < stages; ++s)
      bulk::initBarrier(barriers + 8 * s);
    bulk::fenceBarrierInit();
    bulk::fenceAsyncShared();
    for (int n = 0; n < stages && n < chunks; ++n)
      issue(n, pageId(n));
  }
  __syncwarp();

  uint32_t query[Keys::kWords];
  loadQueryFragments<T, HeadDim, GroupSize>(
      static_cast<const T *>(p.queries) + firstHead * HeadDim, r, c, query);
  const float scaleLog2 = p.scale * kLog2e;
  MmaState<HeadDim> state;
  resetState(state);
  const ScoreSink sink = scoreSink(p, firstHead, GroupSize);

  // The page id of the chunk to issue next, read one chunk ahead.
  int32_t nextId = pageId(stages);
  int stage = 0;
  uint32_t parity = 0;
#pragma unroll 1
  for (int n = 0; n < chunks; ++n) {
    bulk::waitPhase(barriers + 8 * stage, parity);
    const unsigned char *buffer = ring + stage * kChunkBytes;
    const bulk::SharedChunk<T, HeadDim> chunk{buffer, buffer + kRunBytes, r, c};
    accumulateChunk<T, HeadDim>(chunk, query, scaleLog2,
                                span.beginKey +
                                    (warp + n * numWarps) * kChunkKeys,
                                span.endKey, r, c, state, sink);
    // Every lane has read the buffer: lane 0 refills it.
    __syncwarp();
    if (lane == 0 && n + stages < chunks) {
      bulk::fenceAsyncShared();
      issue(n + stages, nextId);
    }
    nextId = pageId(n + stages + 1);
    if (++stage == stages) {
      stage = 0;
      parity ^= 1;
    }
  }

  finishDecode<T, HeadDim, GroupSize>(state, decodeShared<HeadDim, GroupSize>(),
                                      p, firstHead, split);
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_BULK_CUH
