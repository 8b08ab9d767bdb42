//===- CudaBackend.h - What kvrt needs from CUDA ----------------*- C++ -*-===//
//
// The host-side library talks to CUDA only through this interface, which
// mentions no CUDA type. CUDA builds implement it in CudaBackend.cpp and
// AppendKernel.cu; host-only builds link NoCudaBackend.cpp, whose functions
// fail with KVRT_ERROR_UNSUPPORTED. This keeps every #ifdef out of the rest
// of the runtime.
//
// All functions take the ordinal of the device a pool lives on and make it
// current for the duration of the call only, restoring the caller's device.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_CUDABACKEND_H
#define KVRT_LIB_CUDABACKEND_H

#include "kvrt/kvrt.h"

#include <cstddef>
#include <cstdint>

namespace kvrt::cuda {

/// True when this build of kvrt was compiled with CUDA support.
bool isBuiltWithCuda();

/// Allocates `bytes` of device memory on the current device; returns the
/// pointer and the device's ordinal.
kvrt_status allocate(size_t bytes, void **out, int *deviceOut,
                     const char *function);

/// Allocates `bytes` of device memory on device `device`.
kvrt_status allocateOn(size_t bytes, int device, void **out,
                       const char *function);

/// Frees memory from allocate() or allocateOn(). Errors are ignored: this
/// runs on destroy paths that cannot fail.
void release(void *pointer, int device);

/// Synchronous copy of `bytes` from device memory to host memory.
kvrt_status copyToHost(void *destination, const void *source, size_t bytes,
                       int device, const char *function);

/// Copy of `bytes` from host memory to device memory queued on `stream`;
/// the host memory may be reused as soon as this returns.
kvrt_status copyToDeviceAsync(void *destination, const void *source,
                              size_t bytes, int device, void *stream,
                              const char *function);

/// Fails with KVRT_ERROR_UNSUPPORTED when `stream` is capturing a CUDA
/// graph: kvrt computes a launch's page tables, splits and workspace on the
/// host for the batch as it is at the call, which a replay would reuse
/// after the sequences changed (or their table regions moved).
kvrt_status checkNotCapturing(void *stream, int device, const char *function);

/// A device buffer for the small index tables a launch reads (write page
/// lists, copy spans and their staging rows, attention tables), owned by one
/// cache and grown on demand.
///
/// The same event also orders the cache's device arena of page tables
/// (DeviceTables.h), which launches read and table updates write.
///
/// Safety rule: before its contents are overwritten, the work that read the
/// previous contents must be finished or ordered before the overwrite; and
/// work that reads what an earlier user wrote must be ordered after it. One
/// event, recorded (markInUse) after every launch that reads or writes the
/// buffer or the arena, gives both as long as every user first orders its
/// stream after the previous use (upload, or orderAfterUse for a launch
/// that writes nothing; no wait on the stream the event was recorded on):
/// then the event covers every earlier use, on any stream. Growing the
/// buffer first waits for it on the host before freeing the old one.
class Scratch {
public:
  Scratch() = default;
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  ~Scratch();

  /// The CUDA device of the cache's pool (where the event lives); set
  /// before the first use.
  void setDevice(int index) { device = index; }

  /// Copies `bytes` of host memory into the buffer, followed by
  /// `spareBytes` of room the launch may write to, ordered on `stream` after
  /// the previous use; returns the device address of the copy. The host
  /// memory may be freed as soon as this returns.
  kvrt_status upload(const void *host, size_t bytes, size_t spareBytes,
                     int device, void *stream, void **deviceOut,
                     const char *function);
  /// Orders `stream` after the last use, like upload without a copy.
  kvrt_status orderAfterUse(void *stream, const char *function);
  /// Records that work queued on `stream` so far uses the buffer.
  kvrt_status markInUse(void *stream, const char *function);
  /// Blocks until all work recorded by markInUse has finished.
  kvrt_status waitIdle(const char *function) const;

private:
  void *buffer = nullptr;
  size_t capacity = 0;
  int device = 0;
  /// cudaEvent_t of the last markInUse, or null before the first.
  void *lastUse = nullptr;
  /// Id of the stream it was recorded on (CudaSupport.h's recordUse;
  /// ~0: kUnknownStream).
  unsigned long long lastUseStream = ~0ull;
};

/// What the tensor maps of a cache's pages describe (params.h,
/// kv_tensor_map): `numPages` pages of `pageBytes` bytes from `poolBase`,
/// each `pageSize` key rows then `pageSize` value rows of `headDim`
/// elements of 2 bytes.
struct PageTensor {
  const void *poolBase;
  int64_t numPages;
  int64_t pageBytes;
  int32_t headDim;
  int32_t pageSize;
};

/// The two tensor maps of a cache's pages in device memory (params.h,
/// kv_tensor_map: per page, and for runs of consecutive pages) for the
/// warp-specialized prefill body's tensor copies on sm_90, freed with this
/// object.
class PageTensorMap {
public:
  PageTensorMap() = default;
  PageTensorMap(const PageTensorMap &) = delete;
  PageTensorMap &operator=(const PageTensorMap &) = delete;
  ~PageTensorMap();

  /// Creates the maps on device `device` where it is compute capability
  /// 9.0 and the driver encodes both; otherwise, and on any CUDA error
  /// (cleared), leaves none: launches then copy by cp.async. Returns once
  /// the maps are in device memory.
  void create(const PageTensor &tensor, int device);
  /// The maps' device address (the per-page map, the runs map 128 bytes
  /// after it), or null.
  const void *get() const { return map; }

private:
  void *map = nullptr;
  int device = 0;
};

/// Device-side description of a batch of token writes (kvrt_append and the
/// evicting writes): the index tables are device pointers (in a Scratch).
struct AppendLaunch {
  const void *keys;
  const void *values;
  void *poolBase;
  int64_t pageBytes;   // stride between pages of the pool
  int64_t rowBytes;    // head_dim * element size
  int64_t valueOffset; // page_size * rowBytes: where the values start
  int32_t batch;
  int32_t numTokens;
  int32_t numHeads;
  int32_t pageSize;
  /// starts[b * numHeads + h]: slot of head h of sequence b that receives
  /// token 0 (its length before an append, or the slot an evicting write
  /// replaces); token t goes to slot starts[...] + t.
  const int32_t *starts;
  /// pages[(b * numHeads + h) * pageStride + k]: the k-th page the row
  /// touches (k = 0 is the page holding slot starts[b * numHeads + h]).
  const int32_t *pages;
  int32_t pageStride;
};

/// Byte copies inside device memory, all independent of each other.
struct CopyLaunch {
  const char *source;
  char *destination;
  /// Device memory: `count` (source offset, destination offset, bytes)
  /// triples, relative to `source` and `destination`.
  const int64_t *spans;
  int64_t count;
};

/// Queues the copies on `stream`.
kvrt_status launchCopies(const CopyLaunch &launch, int device, void *stream,
                         const char *function);

/// One batch's table assembly (see DeviceTables.h); device pointers.
struct TableLaunch {
  int32_t *arena;
  /// numUpdates (arena offset, page id) pairs to write into the arena.
  const int32_t *updates;
  int64_t numUpdates;
};

/// Queues the update kernel on `stream` (nothing without updates).
kvrt_status launchTableUpdate(const TableLaunch &launch, int device,
                              void *stream, const char *function);

/// Queues the append kernel on `stream`.
kvrt_status launchAppend(const AppendLaunch &launch, int device, void *stream,
                         const char *function);

} // namespace kvrt::cuda

#endif // KVRT_LIB_CUDABACKEND_H
