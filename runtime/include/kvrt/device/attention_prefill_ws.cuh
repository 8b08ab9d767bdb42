//===- attention_prefill_ws.cuh - Warp-specialized prefill -----*- CUDA -*-===//
//
// An sm_90a prefill body with producer and consumer warpgroups, the
// structure of FlashAttention-3: a block of 384 threads takes 128 query
// rows of one (sequence, kv head). Warpgroup 0 is the producer: it gathers
// each tile of K and V (64, 128 or 192 keys) from the pages into a ring of
// `Stages` swizzled shared-memory slots by cp.async and tells the consumers
// through one mbarrier per slot (cp.async.mbarrier.arrive: the barrier
// completes when the copies have landed, so the producer never waits on
// memory); where the launch carries the cache's tensor maps (kvrt passes
// them on pages of 32 tokens or more, and on pages of 16 where most tiles
// lie on runs of consecutive pages), one producer warp gathers them by
// tensor copies instead: a tile on a run at once, others a page at a time
// (sessions 25 and 26, below).
// Warpgroups 1 and 2 are consumers, 64 rows each (the rows, GQA mapping,
// wgmma products and online softmax of pagedPrefillWgmmaBody,
// attention_prefill_wgmma.cuh): they wait for a slot's K, compute
// S = Q·Kᵀ and release the K slot, then issue P·V of that tile together
// with S of the next, so that each tile's P·V runs during the next tile's
// softmax (FlashAttention-3's intra-warpgroup overlap), and release the V
// slot once its P·V is done. Against pagedPrefillWgmmaBody (three
// blocks of one warpgroup per SM, each copying its own tiles) every K/V
// tile is gathered once per 128 rows instead of 64 and the consumers
// copy no K/V (only their own rows of Q).
//
// kvrt's kernels run it on sm_90a in the configuration kPrefillWs*
// (pagedAttention, attention.cuh; the runtime picks the launch where the
// kernel's __launch_bounds__ allow 384 threads and the rows are long).
// How it got there, measured on the H200 (bf16 causal GQA 32/8, TFLOP/s at
// 1 x 8K / 4 x 4K / 8 x 1K, bench_prefill.py --variants; the 64-row
// pagedPrefillWgmmaBody 493-496 / 446-453 / 341-344, cuDNN 617-621 /
// 602-608 / 439-443): producer and consumers alone, with three slots of 64
// keys, 443-448 / 407-412 / 285-287 (the consumers taking turns at S through
// named barriers, FlashAttention-3's ping-pong: 445-449 / 416-421 /
// 301-303; both left out since, commit 4c5ef79); with the intra-warpgroup
// overlap 477-485 / 451-456 / 320-321; with it, 128-key tiles, two slots
// and the consumers at 240 registers 569-577 / 528-533 / 339-340. Session
// 15, on top of that (A/B/A against the same kernel without, bf16): the
// consumers taking turns again gained in causal launches (1 x 8K / 4 x 4K
// / 8 x 2K 616 / 563 / 477 against 614 / 556 / 472; chunks 1 x (15872 +
// 512) 625 against 617, 8 x (768 + 512) 455 against 446) and lost in
// non-causal ones (1 x 8K / 4 x 4K 618 / 595 against 632 / 622), so kvrt's
// kernels take turns where causal (kPrefillWsTurns); the body alone,
// launched directly (bench --variants, ws2t128 against ws2o128), shows no
// consistent difference either way (-4% to +2%, within the run-to-run
// spread): the gain lives in how ptxas allocates kvrt's whole kernel.
// Then a third slot (226 KiB at head_dim 128, once the decode bodies'
// block state had moved to dynamic shared memory): non-causal 1 x 8K 624 /
// 608 against 600, the other shapes within the spread. Session 16: a
// persistent grid (`Persistent`: a block per SM taking (sequence, kv head,
// tile) items in rounds, each consumer copying its next item's Q before its
// current item's last P·V), against a block per item through kvrt, bf16:
// non-causal 8 x 1K 518 / 519 against 484 / 486, 16 x 512 416 against the
// 64-row body's 382, causal 8 x 1K 380 / 377 against the 64-row body's 373,
// long rows within the spread or 1-2% below (chunks 1 x (15872 + 512) 611
// against 622) while the copy sat in the tile loop's last iteration; issued
// after the loop, the long rows gained 0.5-1.5% back (interleaved A/B).
// kvrt's kernels run it on every warp-specialized launch. Session 17: the
// output written with 16-byte stores (RowSoftmax::store) took the per-item
// trace's stores from 1.2-1.5 to 0.8-0.9 us and short rows up to 16%;
// 192-key tiles in two slots gained only on long non-causal rows (+4%) and
// lost 7-14% on short ones (bench_kernels.cu, kvcc_prefill_ws2p192).
// Session 18, measured and not adopted (docs/architecture.md): the stores
// deferred into the next item's first S (short non-causal rows 7% slower)
// and two Q tiles per consumer with two slots (within 1%).
// Session 19: the intra-warpgroup overlap had not been there since it was
// written: ptxas put the wait for P·V(kt - 1) above tile kt's softmax
// (and packed P(kt) into P·V(kt - 1)'s operand registers after it).
// With the softmax in place in fp32, a scheduling barrier before the wait
// (wgmma::schedulingBarrier), the packing after it and the output's
// rescale moved between S(kt) and P·V(kt - 1), interleaved A/B against the
// previous body (bf16, two runs, bit-identical outputs): long rows
// +1.5-3% (non-causal 1 x 8K 566-591 against 553-574, 4 x 4K +2.5%,
// chunks 1 x (15872 + 512) +2-3%, causal 1 x 8K +1-2%), short rows 0.5-1.5%
// below (non-causal 16 x 512, causal 8 x 1K); the barrier alone, the
// rescale left after the wait, gained 1-1.5% on long rows.
// Session 21 (interleaved A/B against session 20's body, bf16, two orders,
// bit-identical outputs, bench/results/prefill_ab/): each consumer warp
// holds its 16 rows of Q in registers for the item (kQueryInRegisters) and
// the next item's Q is copied at once, and a row's rescale factor is 1
// until it has seen a visible key, so that the rescale before an item's
// first P·V is skipped: +0.5-2.4% on every non-causal shape, +1.4-3.0% on
// every causal one (the registers alone: causal +0.6-2.9%, short
// non-causal rows -0.3-0%; the factor alone: non-causal +0.6-2.6%, causal
// -0.2-+1.1%). Then the next item's Q copied after the item's first S is
// issued rather than before (its ~120 instructions of addresses and
// copies run under that S): non-causal +0.5-1.6% on every shape, causal
// -0.8-+0.7% (A/B against the above, run124.sh, bit-identical outputs).
// Session 22: the consumers' item loop pipelined across items, so that
// the per-item code runs under tensor-core work: an item's last P·V runs
// while the next item is planned, and in causal launches (which take
// turns) the item's output is stored while the next item's first S runs
// (kStoreUnderNextScores). Interleaved A/B against session 21's body
// (run130.sh, bf16, three orders, bit-identical outputs): causal +1.4-2.6%
// on short rows (8 x 1K, 8 x 1040, 16 x 512), -0.6-+0.5% on long ones;
// non-causal +0.4-2.3% except 1 x 8K (-0.9%). With the stores under the
// next S in non-causal launches too: 16 x 512 +1.6% but 8 x 1040 and
// 1 x 8K 1.0-1.1% below (run129.sh).
// Session 24, measured and not adopted (bench/results/prefill_ab/,
// stream_tail_session24.diff): a stream-K tail for non-causal launches
// (the last two rounds' items shared out by tile over all blocks, split
// items merged through global memory): at best +0.7% / +1.6% at 1 x 8K /
// 4 x 4K, up to 1% lost elsewhere. The producer's tile loop is on the
// critical path: counting its tiles from a unit's first one (6 more
// instructions and 4 more spill accesses a tile) cost 2.7-5.3% on every
// shape.
// Session 25: K/V by tensor copies (TMA) on pages of 32 and 64 tokens
// (prefillWsTensorCopies; interleaved with cp.async through kvrt in one
// process, bench/prefill/ab_tensor_copies.py, bf16): page 64 +2.6-5.4%
// (8 x 1040 +-0), page 32 +0.6-3.7% (8 x 1040 -3.1%); on pages of 16 the
// 2 KiB boxes ran 3-11% slower, so they kept cp.async.
// Session 26: a whole tile on a run of consecutive pages (ids n, n + 1,
// ...) by one box per 64 columns of a second map (prefillWsRunCopies;
// 16 KiB boxes), the other tiles a page at a time; kvrt passes the maps on
// pages of 16 only where most tiles lie on runs (runtime/lib/TileRuns.h).
// Through kvrt in one process (ab_tensor_copies.py, bf16, allocator
// order): page 16 against cp.async causal +1.7-4.0%, non-causal -1.3 to
// +2.9%; page 32 against per-page copies +0.5-4.2% (8 x 1040 +4.2%) but
// non-causal 1 x 8K -0.6 to -2%; page 64 within 2%. The check inside the
// cp.async producer cost 1-6% everywhere (its loop at 24 registers grew),
// so that producer has none and compiles as before.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_DEVICE_ATTENTION_PREFILL_WS_CUH
#define KVRT_DEVICE_ATTENTION_PREFILL_WS_CUH

#include "kvrt/device/attention_prefill_wgmma.cuh"
#include "kvrt/device/element.cuh"
#include "kvrt/device/params.h"

#include <cstdint>

namespace kvrt::device {

/// Query rows of one warp-specialized prefill block (two consumer
/// warpgroups of kPrefillRows).
inline constexpr int kPrefillWsRows = 2 * kPrefillRows;
/// Threads of one warp-specialized prefill block (three warpgroups).
inline constexpr int kPrefillWsThreads = 384;

/// The configuration kvrt's kernels run (pagedAttention on sm_90a, the
/// runtime's prefill layout with query_tile_rows = kPrefillWsRows): three
/// slots of 128-key tiles (226 KiB at head_dim 128: the kernels declare no
/// static shared memory, shared.cuh), the intra-warpgroup overlap, 240
/// registers per consumer thread, a persistent grid.
inline constexpr int kPrefillWsStages = 3;
inline constexpr int kPrefillWsKeys = 128;
inline constexpr int kPrefillWsConsumerRegisters = 240;
/// Whether the consumers take turns at issuing their products
/// (ConsumerTurns): where causal (measured in the file comment). It also
/// decides where the body stores an item's output (kStoreUnderNextScores).
template <bool Causal> inline constexpr bool kPrefillWsTurns = Causal;
static_assert(!kDeviceHasWgmma || kPrefillWsThreads == kPrefillMaxThreads,
              "sm_90a kernels with the prefill body allow the "
              "warp-specialized one");

/// Bytes of dynamic shared memory pagedPrefillWsBody needs: two Q tiles,
/// `stages` K and V tiles of `keys` keys, 1024 bytes to align them and 1024
/// for the barriers.
__host__ __device__ constexpr int
prefillWsSharedBytes(int headDim, int stages, int keys = kPrefillWgmmaKeys) {
  return (kPrefillWsRows + 2 * stages * keys) * headDim * 2 + 2048;
}

/// Dynamic shared memory of kvrt's warp-specialized configuration.
__host__ __device__ constexpr int prefillWsDefaultSharedBytes(int headDim) {
  return prefillWsSharedBytes(headDim, kPrefillWsStages, kPrefillWsKeys);
}
// sm_90 gives a block at most 227 KiB; a kernel whose own static shared
// memory leaves less gets the 64-row body (runtime/lib/SplitK.cu,
// prefillLaunch).
static_assert(prefillWsDefaultSharedBytes(128) <= 227 * 1024,
              "the warp-specialized configuration fits an sm_90 block");

/// launchMatches for the warp-specialized prefill layout.
/// With `Persistent` the grid is any number of blocks along x, each taking
/// work items in rounds (pagedPrefillWsBody).
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          bool Persistent = false>
__device__ bool prefillWsLaunchMatches(const kvrt_attention_params &p) {
  if (p.query_tile_rows != kPrefillWsRows || p.num_tokens <= 0)
    return false;
  const unsigned tiles =
      unsigned((int64_t(p.num_tokens) * GroupSize + kPrefillWsRows - 1) /
               kPrefillWsRows);
  return p.dtype == kElementDtype<T> && p.head_dim == HeadDim &&
         p.page_size == PageSize &&
         p.num_q_heads == p.num_kv_heads * GroupSize &&
         (p.causal != 0) == Causal && p.num_splits <= 1 &&
         blockDim.x == kPrefillWsThreads && gridDim.z == 1 &&
         (Persistent ? gridDim.y == 1
                     : gridDim.x == unsigned(p.num_kv_heads) &&
                           gridDim.y == unsigned(p.batch) * tiles);
}

namespace mbarrier {

__device__ __forceinline__ void init(uint64_t *barrier, int count) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(
                   prefill::sharedAddress(barrier)),
               "r"(count)
               : "memory");
#endif
}

/// Makes the barriers' initialization visible to the other threads (and
/// to cp.async's arrivals); a __syncthreads must follow.
__device__ __forceinline__ void fenceInit() {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

/// One arrival of this thread.
__device__ __forceinline__ void arrive(uint64_t *barrier) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\n" ::"r"(
                   prefill::sharedAddress(barrier))
               : "memory");
#endif
}

/// One arrival of this thread once all its earlier cp.async copies have
/// landed (the barrier's count includes it: .noinc).
__device__ __forceinline__ void arriveOnCopies(uint64_t *barrier) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(
                   prefill::sharedAddress(barrier))
               : "memory");
#endif
}

/// One arrival of this thread that also expects `bytes` more bytes of
/// tensor copies (tma::load3d) in the current phase.
__device__ __forceinline__ void arriveExpectBytes(uint64_t *barrier,
                                                  uint32_t bytes) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile(
      "mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\n" ::
          "r"(prefill::sharedAddress(barrier)),
      "r"(bytes)
      : "memory");
#endif
}

/// Waits until the barrier's phase of parity `parity` has completed.
__device__ __forceinline__ void wait(uint64_t *barrier, uint32_t parity) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("{\n"
               ".reg .pred done;\n"
               "wait_%=:\n"
               "mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 done, "
               "[%0], %1;\n"
               "@!done bra wait_%=;\n"
               "}\n" ::"r"(prefill::sharedAddress(barrier)),
               "r"(parity)
               : "memory");
#endif
}

} // namespace mbarrier

/// The tensor memory accelerator's copies (cp.async.bulk.tensor) through a
/// tensor map in global memory (params.h, kv_tensor_map).
namespace tma {

/// Bytes of one CUtensorMap (params.h's maps lie one after the other).
inline constexpr int kMapBytes = 128;

/// Orders this thread's later tensor copies through `map` after the map's
/// writes (kvrt writes it once, before any launch that reads it) and
/// fetches it into the tensor-map cache.
__device__ __forceinline__ void acquireMap(const void *map) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;\n"
               "prefetch.tensormap [%0];\n" ::"l"(map)
               : "memory");
#endif
}

/// Copies the box of `map` at coordinates (x, y, z) (innermost first) to
/// shared memory at shared-window address `destination` and completes its
/// bytes on `barrier`. Elements outside the tensor (e.g. z = -1) land as
/// zeros and read nothing.
__device__ __forceinline__ void load3d(uint32_t destination, const void *map,
                                       int x, int y, int z,
                                       uint64_t *barrier) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::"
               "complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
                   destination),
               "l"(map), "r"(x), "r"(y), "r"(z),
               "r"(prefill::sharedAddress(barrier))
               : "memory");
#endif
}

/// Copies the box of the 4-dimensional `map` at coordinates (x, y, z, w)
/// (innermost first) like load3d.
__device__ __forceinline__ void load4d(uint32_t destination, const void *map,
                                       int x, int y, int z, int w,
                                       uint64_t *barrier) {
#if KVRT_DEVICE_HAS_WGMMA
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::"
               "complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(
                   destination),
               "l"(map), "r"(x), "r"(y), "r"(z), "r"(w),
               "r"(prefill::sharedAddress(barrier))
               : "memory");
#endif
}

} // namespace tma

/// Whether pagedPrefillWsBody's producer gathers its K/V tiles by tensor
/// copies for these template values where the launch passes the cache's
/// tensor maps (params.h, kv_tensor_map). A box of the per-page map is 64
/// columns of 2-byte elements (one swizzle row of 128 bytes) by
/// min(PageSize, Keys) rows of one page; it must start at a 1024-byte
/// boundary of the tile (whole swizzle periods of 8 rows), and one warp
/// issues a tile's boxes, one per lane. On the H200 (bf16, d 128,
/// interleaved in one process against cp.async,
/// bench/prefill/ab_tensor_copies.py) boxes of 32 and 64 rows ran 1-5%
/// faster than cp.async, but pages of 16 (boxes of 2 KiB, 16 a tile's
/// keys) 3-11% slower: the tensor copies do not keep up with boxes that
/// small. So kvrt passes the maps on pages of 16 only where most of a
/// batch's tiles lie on runs of consecutive pages (prefillWsRunCopies:
/// one 16 KiB box per 64 columns; runtime/lib/TileRuns.h).
__host__ __device__ constexpr bool prefillWsTensorCopies(int headDim,
                                                         int pageSize,
                                                         int keys) {
  return pageSize >= 16 && (keys % pageSize == 0 || pageSize % keys == 0) &&
         headDim % 64 == 0 &&
         keys / (pageSize < keys ? pageSize : keys) * (headDim / 64) <= 32 &&
         // The map's boxes are min(pageSize, 128) rows (params.h).
         (pageSize < keys ? pageSize : keys) ==
             (pageSize < 128 ? pageSize : 128);
}
template <int HeadDim, int PageSize, int Keys>
inline constexpr bool kPrefillWsTensorCopies =
    prefillWsTensorCopies(HeadDim, PageSize, Keys);

/// Whether pagedPrefillWsBody's tensor-copy producer copies a whole
/// `keys`-key tile whose pages are consecutive in the pool (a run: page ids
/// n, n + 1, ...) with one box per 64 columns of the runs map (params.h,
/// kv_tensor_map [1]; 128 rows, 16 KiB) where the launch allows it
/// (kv_tensor_runs): pages of 16 to 64 tokens, whose per-page boxes are
/// 2-8 KiB; its other tiles go by per-page boxes. kvrt's allocator hands a
/// fresh sequence its pages in runs. The runs map's boxes are 128 rows:
/// tiles of 128 keys.
__host__ __device__ constexpr bool prefillWsRunCopies(int headDim,
                                                      int pageSize, int keys) {
  return keys == 128 && pageSize >= 16 && pageSize < keys &&
         headDim % 64 == 0 && headDim / 64 <= 32;
}
template <int HeadDim, int PageSize, int Keys>
inline constexpr bool kPrefillWsRunCopies =
    prefillWsRunCopies(HeadDim, PageSize, Keys);

/// Sets this warpgroup's registers per thread to `Count` (setmaxnreg:
/// `Increase` takes them from the block's pool, else gives them back; all
/// its warps execute it). ptxas allocates the code that follows within
/// the new count.
template <bool Increase, int Count>
__device__ __forceinline__ void setMaxRegisters() {
#if KVRT_DEVICE_HAS_WGMMA
  if constexpr (Increase)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Count));
  else
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Count));
#endif
}

/// Keeps `words` in their registers, unchanged, up to this point: a wgmma
/// issued earlier may still read them.
template <int M, int N>
__device__ __forceinline__ void pinWords(uint32_t (&words)[M][N]) {
#pragma unroll
  for (int i = 0; i < M; ++i)
#pragma unroll
    for (int j = 0; j < N; ++j)
      asm volatile("" : "+r"(words[i][j])::"memory");
}

/// Synchronizes the 128 threads of one warpgroup on named barrier `id`
/// (1..15; 0 is __syncthreads').
__device__ __forceinline__ void warpgroupBarrier(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

/// FlashAttention-3's warp scheduler barriers: the two consumers take
/// turns at issuing their products (named barriers 3 and 4, one per
/// consumer), so that one consumer's wgmmas run while the other computes
/// its softmax. Consumer `c` waits for its turn with wait() and passes it
/// on with pass(); with `Enabled` false both are no-ops.
template <bool Enabled> struct ConsumerTurns {
  int c;
  __device__ __forceinline__ void wait() const {
    if constexpr (Enabled)
      asm volatile("bar.sync %0, 256;\n" ::"r"(3 + c) : "memory");
  }
  __device__ __forceinline__ void pass() const {
    if constexpr (Enabled)
      asm volatile("bar.arrive %0, 256;\n" ::"r"(4 - c) : "memory");
  }
};

/// The warp-specialized sm_90a prefill body; see the file comment. `shared`
/// is the block's dynamic shared memory, 1024-byte aligned,
/// prefillWsSharedBytes(HeadDim, Stages, Keys) - 1024 bytes long. The launch
/// has kPrefillWsThreads threads and a grid of (kv heads, batch x ceil(tokens
/// x G / kPrefillWsRows)), or, `Persistent`, any along x. A consumer issues
/// P·V of one tile together with S = Q·Kᵀ of the next and runs the next
/// tile's softmax while P·V runs (FlashAttention-3's intra-warpgroup
/// overlap; the output's rescale waits for P·V). `Keys` keys (64, 128 or
/// 192; 192 where a warp's 48 rows lie on whole pages) per K/V tile, in a
/// ring of `Stages` slots. With `ConsumerRegisters` (a multiple of 8 up to
/// 240) the producer gives its registers back down to 24 and the consumers
/// take that many (FlashAttention-3's register split; 0 keeps the launch's
/// 168). With `Turns` the consumers take turns at issuing their products
/// (ConsumerTurns). With `Persistent` the grid is any number of blocks
/// along x (prefillWsLaunchMatches), each taking the launch's items in
/// rounds (see itemOf below): the K/V ring and the turns run on across a
/// block's items, and each consumer copies its next item's Q once its
/// current item's last S has read the tile; with 240 consumer registers
/// and tiles of at most 128 keys (kQueryInRegisters) the consumers hold Q
/// in registers and copy the next item's Q once the current item's first S
/// is issued, so that the copy runs during the whole item. An item's last
/// P·V runs while the next item is planned, and with `Turns` its output is
/// stored while the next item's first S runs (kStoreUnderNextScores).
template <typename T, int HeadDim, int GroupSize, int PageSize, bool Causal,
          int Stages, int Keys = kPrefillWgmmaKeys, int ConsumerRegisters = 0,
          bool Turns = false, bool Persistent = false>
__device__ void pagedPrefillWsBody(const kvrt_attention_params &p,
                                   unsigned char *shared) {
  static_assert(kPrefillSupported<T, HeadDim, GroupSize, PageSize>,
                "no prefill body for these template values");
  static_assert(Stages >= 2, "at least two stages");
  static_assert(Keys == 64 || Keys == 128 || Keys == 192,
                "Keys must be 64, 128 or 192");
  static_assert(ConsumerRegisters == 0 ||
                    (ConsumerRegisters % 8 == 0 && ConsumerRegisters <= 240 &&
                     128 * 24 + 256 * ConsumerRegisters <= 65536),
                "the consumers' registers must fit the register file");
  using namespace prefill;
  constexpr int kKeys = Keys;
  constexpr int kKeyTiles = kKeys / 8;
  constexpr int kDimTiles = HeadDim / 8;
  constexpr int kQueryBytes = kPrefillRows * HeadDim * int(sizeof(T));
  constexpr int kTileBytes = kKeys * HeadDim * int(sizeof(T));
  unsigned char *const keyTiles = shared + 2 * kQueryBytes;
  unsigned char *const valueTiles = keyTiles + Stages * kTileBytes;
  uint64_t *const barriers =
      reinterpret_cast<uint64_t *>(valueTiles + Stages * kTileBytes);
  uint64_t *const keyFull = barriers;
  uint64_t *const valueFull = barriers + Stages;
  uint64_t *const keyEmpty = barriers + 2 * Stages;
  uint64_t *const valueEmpty = barriers + 3 * Stages;

  const int rowsPerSequence = p.num_tokens * GroupSize;
  const int tiles = (rowsPerSequence + kPrefillWsRows - 1) / kPrefillWsRows;

  // Work items: a (sequence, kv head, 128-row tile) each. A block per item
  // (the grid of prefillWsLaunchMatches), or, `Persistent`, gridDim.x
  // blocks taking items in rounds: block b takes item r G + b in even
  // rounds r and r G + G - 1 - b in odd ones. Causal items run from the
  // last tile (the most keys) down, every (sequence, kv head) of a tile
  // together, so that work decreases along the items and each pair of
  // rounds evens it out; non-causal ones by sequence and tile, a tile's kv
  // heads together.
  struct Item {
    int sequence, kvHead, tile;
  };
  auto itemOf = [&](int round, Item &item) {
    if constexpr (!Persistent) {
      item.kvHead = blockIdx.x;
      item.sequence = blockIdx.y / tiles;
      item.tile = Causal ? tiles - 1 - int(blockIdx.y % tiles)
                         : int(blockIdx.y % tiles);
      return round == 0;
    } else {
      const int blocks = int(gridDim.x);
      const int i = round * blocks +
                    (round % 2 == 0 ? int(blockIdx.x) : blocks - 1 -
                                                            int(blockIdx.x));
      if (i >= p.batch * p.num_kv_heads * tiles)
        return false;
      item.kvHead = i % p.num_kv_heads;
      const int rest = i / p.num_kv_heads;
      if constexpr (Causal) {
        item.sequence = rest % p.batch;
        item.tile = tiles - 1 - rest / p.batch;
      } else {
        item.tile = rest % tiles;
        item.sequence = rest / tiles;
      }
      return true;
    }
  };
  // Keys the `rows` rows from `first` of a row of `length` keys can see.
  auto visibleKeys = [&](int length, int first, int rows) {
    const int last = min(rowsPerSequence, first + rows) - 1;
    int end = length;
    if (Causal)
      end = min(length, length - p.num_tokens + last / GroupSize + 1);
    return max(0, end);
  };
  // The K/V tiles of an item (its 128 rows'), at least one (see the
  // consumers' item loop).
  auto itemTiles = [&](int length, const Item &item) {
    return max(1, (visibleKeys(length, item.tile * kPrefillWsRows,
                               kPrefillWsRows) +
                   kKeys - 1) /
                      kKeys);
  };
  // The ring position `n` tiles after (slot, phase).
  auto advance = [](int &slot, uint32_t &phase, int n) {
    const int end = slot + n;
    phase ^= uint32_t(end / Stages) & 1;
    slot = end % Stages;
  };

  // The producer gathers K/V by tensor copies where the launch carries the
  // cache's tensor map (one warp; see below), else by cp.async (all four).
  const void *const tensorMap =
      kPrefillWsTensorCopies<HeadDim, PageSize, kKeys> ? p.kv_tensor_map
                                                        : nullptr;
  // The tensor-copy producer's whole tiles on runs of consecutive pages
  // by the runs map (params.h, kv_tensor_map [1]) where the launch allows
  // it.
  constexpr bool kRunCopies = kPrefillWsRunCopies<HeadDim, PageSize, kKeys>;
  constexpr int kRunPages = kRunCopies ? kKeys / PageSize : 1;
  const void *const runMap =
      kRunCopies && p.kv_tensor_runs != 0 && p.kv_tensor_map != nullptr
          ? static_cast<const unsigned char *>(p.kv_tensor_map) +
                tma::kMapBytes
          : nullptr;
  // Whether the `kt`-th tile of a row whose item sees `blockKeyEnd` keys
  // is whole and on a run of pages (warp-uniform), and the run's first
  // page. Lanes read the tile's page ids kRunPages apart.
  auto tileRun = [&](const PagedRow &row, int kt, int blockKeyEnd,
                     int &firstPage) -> bool {
    if constexpr (kRunCopies) {
      if (runMap == nullptr || (kt + 1) * kKeys > blockKeyEnd)
        return false;
      const int i = int(threadIdx.x) % 32 % kRunPages;
      const int id = __ldg(row.pages + kt * kRunPages + i);
      firstPage = __shfl_sync(0xffffffffu, id, 0);
      return __all_sync(0xffffffffu, id == firstPage + i) != 0;
    } else {
      return false;
    }
  };
  // Copies the keys (`half` 0) or values (1) of a tile on a run of pages
  // starting at `firstPage` into `tile`: one box per 64 columns.
  auto copyRun = [&](unsigned char *tile, int half, int firstPage,
                     uint64_t *barrier) {
#pragma unroll
    for (int h = 0; h < HeadDim / 64; ++h)
      tma::load4d(sharedAddress(tile) + h * kKeys * wgmma::kRowBytes, runMap,
                  64 * h, 0, half, firstPage, barrier);
  };
  if (threadIdx.x == 0) {
    const int fullCount = tensorMap != nullptr ? 1 : 128;
    for (int s = 0; s < Stages; ++s) {
      mbarrier::init(keyFull + s, fullCount);
      mbarrier::init(valueFull + s, fullCount);
      mbarrier::init(keyEmpty + s, 256);
      mbarrier::init(valueEmpty + s, 256);
    }
    mbarrier::fenceInit();
  }
  __syncthreads();

  // Broadcast from lane 0 so that ptxas sees it warp-uniform (as
  // CUTLASS's canonical_warp_group_idx does).
  const int group = __shfl_sync(0xffffffffu, int(threadIdx.x) / 128, 0);
  if (group == 0) {
    if constexpr (ConsumerRegisters > 0)
      setMaxRegisters<false, 24>();
    // Producer: the block's n-th K/V tile (over its items) into slot
    // n % Stages once the consumers released the slot's tile n - Stages.
    int slot = 0;
    uint32_t phase = 0;
    int used = 0;
    Item item;
    if constexpr (kPrefillWsTensorCopies<HeadDim, PageSize, kKeys>) {
      if (tensorMap != nullptr) {
        // By tensor copies: the pool is a tensor of [pages][2 PageSize
        // rows (keys, then values)][HeadDim] (kvrt's tensor map, created
        // with the cache), each box 64 columns by kBoxRows rows of one
        // page, 128-byte swizzled on the way (the tiles' layout,
        // wgmma::swizzledOffset). Lane b issues box b of each tile: rows
        // b / kHalves * kBoxRows.., columns 64 (b % kHalves)..; one lane
        // expects the tile's bytes on its full barrier. Boxes whose keys
        // the item's rows cannot see read no page (z = -1: zeros), so a
        // tile never reads a page past its row's table. The box the row
        // ends inside comes whole: its keys past the end are masked, its
        // values there are zeroed by the consumers that read the tile
        // (zeroValueTail below).
        if (threadIdx.x >= 32)
          return;
        constexpr int kBoxRows = PageSize < kKeys ? PageSize : kKeys;
        constexpr int kHalves = HeadDim / 64;
        constexpr int kBoxes = kKeys / kBoxRows * kHalves;
        const int lane = threadIdx.x;
        const int boxRow = lane / kHalves * kBoxRows;
        const int column = lane % kHalves * 64;
        const uint32_t keyBox = sharedAddress(keyTiles) +
                                column / 64 * kKeys * wgmma::kRowBytes +
                                boxRow * wgmma::kRowBytes;
        const uint32_t valueBox =
            keyBox + uint32_t(sharedAddress(valueTiles) -
                              sharedAddress(keyTiles));
        tma::acquireMap(tensorMap);
        if (runMap != nullptr)
          tma::acquireMap(runMap);
#pragma unroll 1
        for (int round = 0; itemOf(round, item); ++round) {
          const PagedRow row =
              pagedRow(p, item.sequence * p.num_kv_heads + item.kvHead);
          const int blockKeyEnd = visibleKeys(
              row.length, item.tile * kPrefillWsRows, kPrefillWsRows);
          const int numTiles = itemTiles(row.length, item);
#pragma unroll 1
          for (int kt = 0; kt < numTiles; ++kt) {
            const int key = kt * kKeys + boxRow;
            int page = -1;
            if (lane < kBoxes && key < blockKeyEnd)
              page = __ldg(row.pages + key / PageSize);
            const int pageRow = key % PageSize;
            // A whole tile on a run of pages: lane 0 issues its boxes of
            // the runs map instead.
            int firstPage = 0;
            const bool run = tileRun(row, kt, blockKeyEnd, firstPage);
            if (used >= Stages)
              mbarrier::wait(keyEmpty + slot, phase ^ 1);
            if (lane == 0)
              mbarrier::arriveExpectBytes(keyFull + slot, kTileBytes);
            if (run) {
              if (lane == 0)
                copyRun(keyTiles + slot * kTileBytes, 0, firstPage,
                        keyFull + slot);
            } else if (lane < kBoxes) {
              tma::load3d(keyBox + slot * kTileBytes, tensorMap, column,
                          pageRow, page, keyFull + slot);
            }
            if (used >= Stages)
              mbarrier::wait(valueEmpty + slot, phase ^ 1);
            if (lane == 0)
              mbarrier::arriveExpectBytes(valueFull + slot, kTileBytes);
            if (run) {
              if (lane == 0)
                copyRun(valueTiles + slot * kTileBytes, 1, firstPage,
                        valueFull + slot);
            } else if (lane < kBoxes) {
              tma::load3d(valueBox + slot * kTileBytes, tensorMap, column,
                          PageSize + pageRow, page, valueFull + slot);
            }
            ++used;
            if (++slot == Stages) {
              slot = 0;
              phase ^= 1;
            }
          }
        }
        return;
      }
    }
#pragma unroll 1
    for (int round = 0; itemOf(round, item); ++round) {
      const PagedRow row =
          pagedRow(p, item.sequence * p.num_kv_heads + item.kvHead);
      const int blockKeyEnd =
          visibleKeys(row.length, item.tile * kPrefillWsRows, kPrefillWsRows);
      const int numTiles = itemTiles(row.length, item);
#pragma unroll 1
      for (int kt = 0; kt < numTiles; ++kt) {
        const TilePages<PageSize, kKeys> pages =
            tilePages<T, HeadDim, PageSize, kKeys>(row, kt * kKeys,
                                                   blockKeyEnd);
        if (used >= Stages)
          mbarrier::wait(keyEmpty + slot, phase ^ 1);
        copySwizzledTile<T, HeadDim, PageSize, kKeys>(
            row, pages, kt * kKeys, blockKeyEnd, false,
            keyTiles + slot * kTileBytes);
        mbarrier::arriveOnCopies(keyFull + slot);
        if (used >= Stages)
          mbarrier::wait(valueEmpty + slot, phase ^ 1);
        copySwizzledTile<T, HeadDim, PageSize, kKeys>(
            row, pages, kt * kKeys, blockKeyEnd, true,
            valueTiles + slot * kTileBytes);
        mbarrier::arriveOnCopies(valueFull + slot);
        ++used;
        if (++slot == Stages) {
          slot = 0;
          phase ^= 1;
        }
      }
    }
    waitCopies();
    return;
  }

  // Consumer c: rows 64 c .. 64 c + 63 of each item's 128.
  if constexpr (ConsumerRegisters > 0)
    setMaxRegisters<true, ConsumerRegisters>();
  const int c = group - 1;
  const int local = threadIdx.x % 128;
  const int warp = local / 32;
  const int lane = local % 32;
  const int r = lane / 4;
  unsigned char *const query = shared + c * kQueryBytes;
  const float scaleLog2 = p.scale * kLog2e;
  const uint64_t queryDesc =
      wgmma::descriptor(sharedAddress(query), 16, wgmma::kAtomBytes);
  // With 240 registers per consumer and tiles of at most 128 keys, each
  // warp holds its 16 rows of Q in registers (the A operand of S = Q·Kᵀ,
  // loaded by ldmatrix at the item's start): S reads a third less shared
  // memory and the Q tile is free at once, so the next item's Q is copied
  // a whole item ahead. (With fewer registers or 192-key tiles ptxas
  // serialized the wgmmas, C7512.)
  constexpr bool kQueryInRegisters = ConsumerRegisters >= 240 && Keys <= 128;
  uint32_t queryFragments[kQueryInRegisters ? HeadDim / 16 : 1][4];
  auto loadQueryFragments = [&]() {
    // ldmatrix .x4's matrices: rows 0-7 and 8-15 of the warp's 16, dims
    // 0-7 of the step, then the same for dims 8-15 (the m16n8k16 A
    // fragment, wgmma.cuh).
    const int matrix = lane / 8;
    const int row = warp * 16 + (matrix % 2) * 8 + lane % 8;
#pragma unroll
    for (int step = 0; step < HeadDim / 16; ++step)
      loadMatrices(queryFragments[step],
                   query + wgmma::swizzledOffset(kPrefillRows, row,
                                                 2 * step + matrix / 2));
  };

  // The descriptors of S (Q's and K slot `slot`'s, per 16 dims) and of P·V
  // (V slot `slot`'s, per 16 keys).
  auto keyDescriptors = [&](int slot, uint64_t(&q)[HeadDim / 16],
                            uint64_t(&k)[HeadDim / 16]) {
    const uint64_t keyDesc =
        wgmma::descriptor(sharedAddress(keyTiles + slot * kTileBytes), 16,
                          wgmma::kAtomBytes);
#pragma unroll
    for (int step = 0; step < HeadDim / 16; ++step) {
      q[step] =
          wgmma::advanceLow(queryDesc, wgmma::kStepOffset(kPrefillRows, step));
      k[step] = wgmma::advanceLow(keyDesc, wgmma::kStepOffset(kKeys, step));
    }
  };
  auto valueDescriptors = [&](int slot, uint64_t(&v)[kKeys / 16]) {
    const uint64_t valueDesc =
        wgmma::descriptor(sharedAddress(valueTiles + slot * kTileBytes),
                          kKeys * wgmma::kRowBytes, wgmma::kAtomBytes);
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
      v[kk] = wgmma::advanceLow(valueDesc, kk * 16 * wgmma::kRowBytes);
  };

  // With tensor copies, the values past a row's end in the page box it
  // ends inside come from the pool (the producer copies whole boxes);
  // P·V multiplies them by probabilities of 0, which do not cancel a NaN
  // or an infinity the pool may hold there, so a consumer whose last tile
  // holds that box zeroes them in its slot before its last P·V (the
  // item's last tile: boxes do not cross tiles, and the item sees the
  // box). Both consumers may write the same zeros; each orders its own
  // stores before its products. The loop's tiles never hold the box.
  // (Each warp writing all of them without the warpgroup barrier measured
  // the same, run147.sh.)
  auto zeroValueTail = [&](int slot, const auto &w) {
    constexpr int kBoxRows = PageSize < kKeys ? PageSize : kKeys;
    constexpr int kChunks = HeadDim * int(sizeof(T)) / 16;
    const int endBox = w.length - w.length % kBoxRows;
    const int blockKeyEnd =
        visibleKeys(w.length, w.item.tile * kPrefillWsRows, kPrefillWsRows);
    if (w.length % kBoxRows == 0 || endBox >= blockKeyEnd)
      return;
    const int first = w.length - (w.numTiles - 1) * kKeys;
    const int count = (endBox + kBoxRows - w.length) * kChunks;
    unsigned char *const tile = valueTiles + slot * kTileBytes;
#pragma unroll 1
    for (int i = local; i < count; i += 128)
      *reinterpret_cast<uint4 *>(
          tile + wgmma::swizzledOffset(kKeys, first + i / kChunks,
                                       i % kChunks)) = make_uint4(0, 0, 0, 0);
    wgmma::sharedProxyFence();
    warpgroupBarrier(1 + c);
  };

  // Each consumer takes one turn per K/V tile of each of its block's items
  // (S of that tile with P·V of the one before, or nothing past its rows'
  // keys; an item's last P·V is issued outside the turns), consumer 0
  // first, and passes it on; consumer 0 takes consumer 1's last pass
  // after its last item, so that no arrival is left pending on either
  // barrier.
  const ConsumerTurns<Turns> turns{c};

  // What a consumer needs of one item: the item, the one after it in the
  // block's rounds (`hasNext`), the row's keys, the keys its 64 rows see,
  // the item's K/V tiles and this consumer's. Every item has at least one
  // tile and every consumer computes at least one, so that every item
  // issues the same wgmmas on every path (see below): a consumer whose
  // rows see no key computes its first tile all masked (probabilities 0,
  // so its output is 0 as before) and stores nothing where its rows lie
  // past the chunk (the last item of a sequence whose rows do not fill
  // it), zeros where they exist but see no key (per-head lengths shorter
  // than the chunk).
  struct Work {
    Item item, next;
    bool hasNext;
    int length, numTiles, firstRow, keyEnd, myTiles;
  };
  // (`it` by value: the loop plans w.next into w.)
  auto plan = [&](const Item it, int round, Work &w) {
    w.item = it;
    w.next = it;
    w.hasNext = Persistent && itemOf(round + 1, w.next);
    w.length = pagedRow(p, it.sequence * p.num_kv_heads + it.kvHead).length;
    w.numTiles = itemTiles(w.length, it);
    w.firstRow = it.tile * kPrefillWsRows + c * kPrefillRows;
    w.keyEnd = w.firstRow < rowsPerSequence
                   ? visibleKeys(w.length, w.firstRow, kPrefillRows)
                   : 0;
    w.myTiles = max(1, (w.keyEnd + kKeys - 1) / kKeys);
  };
  // The next item's Q into the tile, once every warp's products of the
  // item have read it.
  auto prefetchQuery = [&](const Work &w) {
    if (w.hasNext) {
      warpgroupBarrier(1 + c);
      copyQueryTile<T, HeadDim, GroupSize>(
          p, w.next.sequence, w.next.kvHead,
          w.next.tile * kPrefillWsRows + c * kPrefillRows, local, query);
      commitCopies();
    }
  };
  // S = Q·Kᵀ (descriptors from keyDescriptors), A from the registers
  // (kQueryInRegisters) or from the Q tile.
  auto issueScores = [&](const uint64_t(&q)[HeadDim / 16],
                         const uint64_t(&k)[HeadDim / 16],
                         float(&scoresFlat)[kKeys / 2]) {
#pragma unroll
    for (int step = 0; step < HeadDim / 16; ++step) {
      if constexpr (kQueryInRegisters)
        wgmma::mmaRegisterAKMajorB<T, kKeys>(scoresFlat, queryFragments[step],
                                             k[step], step > 0);
      else
        wgmma::mmaShared<T, kKeys>(scoresFlat, q[step], k[step], step > 0);
    }
    wgmma::commit();
  };

  // With the consumers taking turns, an item's output is stored while the
  // next item's first S runs: the output and the softmax state are carried
  // from an item's iteration into the next one's start. Measured on the
  // H200 against session 21's body (bench/results/prefill_ab/): causal
  // launches, which take turns, +1.4-2.6% on short rows and within 0.6% on
  // long ones; non-causal ones +1.6% at 16 x 512 but 1.0-1.1% below at
  // 1 x 8K and 8 x 1040, and with the stores at the item's end +0.4-2.3%
  // except 1 x 8K (-0.9%): they store there.
  constexpr bool kStoreUnderNextScores = Turns;
  // Every iteration issues the same wgmma groups on every path (the first
  // S; pairs of S and P·V; the last P·V) and waits for all of them before
  // the next, so that the waits are right without predicates: ptxas
  // tracks the wgmmas in flight along the code, and serialized every wgmma
  // when a group depended on a branch (C7514/C7515) or a P·V was in
  // flight across the item loop's back edge (C7514).
  float acc[kDimTiles][4] = {};
  float(&accFlat)[HeadDim / 2] = reinterpret_cast<float(&)[HeadDim / 2]>(acc);
  uint32_t probs[kKeys / 16][4] = {};
  RowSoftmax softmax;
  // The previous item's output rows (kStoreUnderNextScores), or this one's.
  T *pendingOut[2] = {nullptr, nullptr};
  bool pendingValid[2] = {false, false};

  auto issueValues = [&](const uint64_t(&v)[kKeys / 16]) {
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
      wgmma::mmaRegisterA<T, HeadDim>(accFlat, probs[kk], v[kk]);
    wgmma::commit();
  };
  // Done while the next S runs, just before P·V (a wgmma fence between),
  // and before the item's last P·V. Skipped when no row of the warp moved
  // its maximum: the softmax keeps a row's maximum unless a tile's
  // exceeds it by more than kPrefillMaxSlack, so after the first tiles
  // most are skipped, and the first tile's factors are 1. (While
  // the rescale followed the wait for P·V, the skip made ptxas serialize
  // every wgmma, C7513; here it does not: e2e/cuda-wgmma-ptxas.mlir.)
  auto rescale = [&](const float(&factor)[2]) {
    if (__any_sync(0xffffffffu, factor[0] != 1.0f || factor[1] != 1.0f))
      scaleRows(acc, factor);
  };

  // The ring position of the item's first tile.
  int slot = 0;
  uint32_t phase = 0;
  Item firstItem;
  if (!itemOf(0, firstItem))
    return;
  copyQueryTile<T, HeadDim, GroupSize>(
      p, firstItem.sequence, firstItem.kvHead,
      firstItem.tile * kPrefillWsRows + c * kPrefillRows, local, query);
  commitCopies();
  Work w;
  plan(firstItem, 0, w);
  if (c == 1)
    turns.pass();
  // The item's Q (copied before the loop or during the previous item) in
  // the tile, the K of its first tile in its slot.
  auto awaitItem = [&]() {
    waitCopies();
    wgmma::sharedProxyFence();
    warpgroupBarrier(1 + c);
    mbarrier::wait(keyFull + slot, phase);
    wgmma::sharedProxyFence();
  };
  awaitItem();
#pragma unroll 1
  for (int round = 0;; ++round) {
    const int keyEnd = w.keyEnd;
    const int myTiles = w.myTiles;
    // S of the item's first tile, then (kQueryInRegisters) the next
    // item's Q copied and (kStoreUnderNextScores) the previous item's
    // output stored while it runs.
    if constexpr (kQueryInRegisters)
      loadQueryFragments();
    float firstScores[kKeyTiles][4];
    float(&firstScoresFlat)[kKeys / 2] =
        reinterpret_cast<float(&)[kKeys / 2]>(firstScores);
    {
      uint64_t q[HeadDim / 16], k[HeadDim / 16];
      keyDescriptors(slot, q, k);
      wgmma::fence();
      turns.wait();
      issueScores(q, k, firstScoresFlat);
      turns.pass();
    }
    // With kQueryInRegisters every warp's fragments are loaded once the
    // barrier in prefetchQuery passes, so that the copy runs during the
    // whole item; else once the item's last S has read the tile.
    if constexpr (kQueryInRegisters)
      prefetchQuery(w);
    if (kStoreUnderNextScores && round > 0)
      softmax.store<T>(acc, pendingOut, pendingValid);
    wgmma::wait<0>();
    wgmma::pin(firstScoresFlat);
    mbarrier::arrive(keyEmpty + slot);
    if (!kQueryInRegisters && myTiles == 1)
      prefetchQuery(w);

    const WarpRows<Causal, GroupSize> rows(p, w.length, rowsPerSequence,
                                           w.firstRow + warp * 16, r);
#pragma unroll
    for (int t = 0; t < kDimTiles; ++t)
#pragma unroll
      for (int j = 0; j < 4; ++j)
        acc[t][j] = 0.0f;
    softmax = RowSoftmax();

    // The softmax of tile kt: its scores become probabilities in place
    // (fp32; the caller packs them into P·V's operand registers once the
    // previous P·V is done with them) and `factor` the rows' factors the
    // output must be rescaled by before P·V(kt): 1 while a row has seen no
    // visible key (its output is still zero), so that the rescale before
    // P·V(0) is skipped like most later ones. A dummy accumulator takes
    // update's rescale.
    auto softmaxTile = [&](int kt, float(&scores)[kKeyTiles][4],
                           float(&factor)[2]) {
      const int first = kt * kKeys;
      const float oldMax[2] = {softmax.runningMax[0], softmax.runningMax[1]};
      float unused[1][4] = {};
      softmax.update<Causal>(scores, unused,
                             rows.needsMask(first, kKeys, keyEnd), first,
                             keyEnd, rows.valid, rows.position, scaleLog2,
                             kPrefillMaxSlack);
#pragma unroll
      for (int half = 0; half < 2; ++half)
        factor[half] = oldMax[half] == -INFINITY
                           ? 1.0f
                           : fastExp2(oldMax[half] - softmax.runningMax[half]);
    };

    // Tile kt - 1's factors, applied before P·V(kt - 1).
    float factor[2];
    softmaxTile(0, firstScores, factor);
    packProbabilities<T, kKeys>(firstScores, probs);

    // K of tile kt in (keySlot, keyPhase), V of tile kt - 1 in
    // (valueSlot, valuePhase).
    int keySlot = slot;
    uint32_t keyPhase = phase;
    int valueSlot = keySlot;
    uint32_t valuePhase = keyPhase;
#pragma unroll 1
    for (int kt = 1; kt < myTiles; ++kt) {
      if (++keySlot == Stages) {
        keySlot = 0;
        keyPhase ^= 1;
      }
      float scores[kKeyTiles][4];
      float(&scoresFlat)[kKeys / 2] =
          reinterpret_cast<float(&)[kKeys / 2]>(scores);
      uint64_t q[HeadDim / 16], k[HeadDim / 16], v[kKeys / 16];
      keyDescriptors(keySlot, q, k);
      valueDescriptors(valueSlot, v);
      mbarrier::wait(keyFull + keySlot, keyPhase);
      mbarrier::wait(valueFull + valueSlot, valuePhase);
      wgmma::sharedProxyFence();
      wgmma::fence();
      turns.wait();
      issueScores(q, k, scoresFlat);
      // The output's rescale for tile kt - 1 while S(kt) runs.
      rescale(factor);
      wgmma::fence();
      issueValues(v);
      turns.pass();
      wgmma::wait<1>(); // S(kt); P·V(kt - 1) may still run
      mbarrier::arrive(keyEmpty + keySlot);
      wgmma::pin(scoresFlat);
      // The softmax while P·V(kt - 1) runs (without the barrier ptxas
      // moved the wait above it, see the file comment), then P(kt) packed
      // into the registers P·V(kt - 1) read.
      softmaxTile(kt, scores, factor);
      wgmma::schedulingBarrier();
      wgmma::wait<0>();
      wgmma::pin(accFlat);
      pinWords(probs);
      mbarrier::arrive(valueEmpty + valueSlot);
      packProbabilities<T, kKeys>(scores, probs);
      valueSlot = keySlot;
      valuePhase = keyPhase;
    }
    // The next item's Q (Q in shared memory): here rather than in the
    // loop's last iteration (during that tile's softmax), which put the
    // copy's code into the loop and ran long rows 0.5-1.5% slower (session
    // 16, run83.sh).
    if (!kQueryInRegisters && myTiles > 1)
      prefetchQuery(w);
    // The item's last P·V, running while the next item is planned; the
    // output rows' addresses.
    {
      uint64_t v[kKeys / 16];
      valueDescriptors(valueSlot, v);
      mbarrier::wait(valueFull + valueSlot, valuePhase);
      if (tensorMap != nullptr && myTiles == w.numTiles)
        zeroValueTail(valueSlot, w);
      wgmma::sharedProxyFence();
      rescale(factor);
      wgmma::fence();
      issueValues(v);
    }
    rows.template outputs<T, HeadDim>(p, w.item.sequence, w.item.kvHead,
                                      pendingOut);
    pendingValid[0] = rows.valid[0];
    pendingValid[1] = rows.valid[1];
    int skipSlot = slot;
    uint32_t skipPhase = phase;
    advance(skipSlot, skipPhase, myTiles);
    const int skipped = w.numTiles - myTiles;
    advance(slot, phase, w.numTiles);
    const bool more = w.hasNext;
    if (more)
      plan(w.next, round + 1, w);
    // (Waited here, not after the next item's first S is issued: with a
    // P·V in flight across the loop's back edge ptxas serialized every
    // wgmma, C7514.)
    wgmma::wait<0>();
    wgmma::pin(accFlat);
    pinWords(probs);
    mbarrier::arrive(valueEmpty + valueSlot);
    if constexpr (!kStoreUnderNextScores)
      softmax.store<T>(acc, pendingOut, pendingValid);
    // Keys past this warpgroup's rows: release the slots untouched (after
    // the last V slot: the producer may need it for a skipped tile).
#pragma unroll 1
    for (int kt = 0; kt < skipped; ++kt) {
      mbarrier::wait(keyFull + skipSlot, skipPhase);
      turns.wait();
      turns.pass();
      mbarrier::arrive(keyEmpty + skipSlot);
      mbarrier::wait(valueFull + skipSlot, skipPhase);
      mbarrier::arrive(valueEmpty + skipSlot);
      advance(skipSlot, skipPhase, 1);
    }
    if (!more)
      break;
    awaitItem();
  }
  // The last item's output.
  if constexpr (kStoreUnderNextScores)
    softmax.store<T>(acc, pendingOut, pendingValid);
  if (c == 0)
    turns.wait();
}

} // namespace kvrt::device

#endif // KVRT_DEVICE_ATTENTION_PREFILL_WS_CUH
