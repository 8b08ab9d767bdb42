//===- DeviceTables.cpp - Device-resident page tables -----------*- C++ -*-===//
//
// See DeviceTables.h. Regions come in power-of-two sizes from per-size free
// lists or from the end of the arena, so a head that grows page by page is
// moved O(log pages) times, and a sequence that finishes leaves regions the
// next sequences reuse.
//
//===----------------------------------------------------------------------===//
#include "DeviceTables.h"
#include "Error.h"
#include "Handles.h"

#include <algorithm>
#include <limits>
#include <new>

namespace {

/// Smallest region: 8 page ids (128 tokens at page size 16).
constexpr int kMinRegionClass = 3;
/// Smallest device arena, in slots; it grows to 3/2 of the shadow.
constexpr int64_t kMinArenaSlots = 1024;

/// Size class of a region holding `count` page ids.
int regionClass(int64_t count) {
  int sizeClass = kMinRegionClass;
  while ((int64_t(1) << sizeClass) < count)
    ++sizeClass;
  return sizeClass;
}

/// Size class of a region of `slots` slots (a power of two).
int classOf(int32_t slots) {
  int sizeClass = 0;
  while ((int32_t(1) << sizeClass) < slots)
    ++sizeClass;
  return sizeClass;
}

} // namespace

kvrt::DeviceMirror::~DeviceMirror() { cuda::release(arena, device); }

void kvrt::DeviceMirror::sync(HeadTable &head, int64_t count) {
  if (count <= head.mirrorValid)
    return;
  if (head.mirrorOffset < 0 || head.mirrorSlots < count) {
    const int sizeClass = regionClass(count);
    const int64_t slots = int64_t(1) << sizeClass;
    if (freeRegions.size() <= static_cast<size_t>(sizeClass))
      freeRegions.resize(static_cast<size_t>(sizeClass) + 1);
    int32_t offset;
    if (!freeRegions[sizeClass].empty()) {
      offset = freeRegions[sizeClass].back();
      freeRegions[sizeClass].pop_back();
    } else {
      // Offsets are int32 in the uploaded tables.
      if (static_cast<int64_t>(shadow.size()) + slots >
          std::numeric_limits<int32_t>::max())
        throw std::bad_alloc();
      offset = static_cast<int32_t>(shadow.size());
      shadow.resize(shadow.size() + static_cast<size_t>(slots), 0);
    }
    releaseRegion(head);
    head.mirrorOffset = offset;
    head.mirrorSlots = static_cast<int32_t>(slots);
  }
  dirty.reserve(dirty.size() + static_cast<size_t>(count - head.mirrorValid));
  for (int64_t i = head.mirrorValid; i < count; ++i) {
    const int32_t offset = head.mirrorOffset + static_cast<int32_t>(i);
    shadow[offset] = head.pages[i];
    dirty.push_back(offset);
  }
  head.mirrorValid = static_cast<int32_t>(count);
}

void kvrt::DeviceMirror::releaseRegion(HeadTable &head) noexcept {
  if (head.mirrorOffset >= 0) {
    // Losing a region to bad_alloc only leaves a hole in the arena.
    try {
      freeRegions[classOf(head.mirrorSlots)].push_back(head.mirrorOffset);
    } catch (...) {
    }
  }
  head.mirrorOffset = -1;
  head.mirrorSlots = 0;
  head.mirrorValid = 0;
}

void kvrt::planDeviceTables(const kvrt_cache *cache,
                            const SequenceLocks &sequences, TablePlan &plan) {
  DeviceMirror &mirror = cache->mirror;
  const int64_t numHeads = cache->desc.num_kv_heads;
  const int64_t pageSize = cache->desc.page_size;
  const int64_t batch = static_cast<int64_t>(sequences.size());
  const int64_t rows = batch * numHeads;
  plan.rows = rows;
  plan.upload.assign(static_cast<size_t>(3 * rows + 1), 0);
  int32_t *indptr = plan.upload.data();
  int32_t *lengths = indptr + rows + 1;
  int32_t *regions = lengths + rows;
  for (int64_t b = 0; b < batch; ++b) {
    CacheSequence *state = cache->state(sequences[b], false);
    for (int64_t h = 0; h < numHeads; ++h) {
      const int64_t row = b * numHeads + h;
      int64_t count = 0;
      if (state) {
        HeadTable &head = state->heads[h];
        count = pagesFor(head.length, pageSize);
        mirror.sync(head, count);
        lengths[row] = head.length;
        regions[row] = count > 0 ? head.mirrorOffset : 0;
      }
      indptr[row + 1] = indptr[row] + static_cast<int32_t>(count);
    }
  }
  plan.totalPages = indptr[rows];
  // Past half the arena, one bulk copy beats applying updates one by one.
  plan.uploadArena =
      mirror.stale ||
      mirror.arenaSlots < static_cast<int64_t>(mirror.shadow.size()) ||
      2 * mirror.dirty.size() > mirror.shadow.size();
  plan.numUpdates = 0;
  if (plan.uploadArena)
    return;
  plan.numUpdates = static_cast<int64_t>(mirror.dirty.size());
  plan.upload.reserve(plan.upload.size() + 2 * mirror.dirty.size());
  for (int32_t offset : mirror.dirty) {
    plan.upload.push_back(offset);
    plan.upload.push_back(mirror.shadow[offset]);
  }
}

kvrt_status kvrt::getDeviceTables(const kvrt_cache *cache,
                                  const SequenceLocks &sequences, void *stream,
                                  DeviceTablesView *out, const char *fn) {
  const kvrt_pool &pool = *cache->pool;
  if (pool.device != KVRT_DEVICE_CUDA)
    return fail(KVRT_ERROR_UNSUPPORTED,
                "%s: device page tables exist for CUDA pools only", fn);
  if (cache->quantized())
    return fail(KVRT_ERROR_UNSUPPORTED,
                "%s: the cache stores quantized pages; attention kernels "
                "read unquantized K and V",
                fn);
  std::unique_lock<std::mutex> lock(cache->deviceMutex);
  DeviceMirror &mirror = cache->mirror;
  TablePlan &plan = out->plan;
  planDeviceTables(cache, sequences, plan);

  // Until the kernels are queued, a failure leaves the device arena in an
  // unknown state: the next call then uploads it whole.
  mirror.stale = true;
  const size_t shadowSlots = mirror.shadow.size();
  if (plan.uploadArena &&
      mirror.arenaSlots < static_cast<int64_t>(shadowSlots)) {
    // The old arena may still be read by earlier launches.
    KVRT_RETURN_IF_ERROR(cache->scratch.waitIdle(fn));
    cuda::release(mirror.arena, mirror.device);
    mirror.arena = nullptr;
    mirror.arenaSlots = 0;
    const int64_t slots = std::max<int64_t>(
        kMinArenaSlots, static_cast<int64_t>(shadowSlots + shadowSlots / 2));
    KVRT_RETURN_IF_ERROR(
        cuda::allocateOn(static_cast<size_t>(slots) * sizeof(int32_t),
                         mirror.device, &mirror.arena, fn));
    mirror.arenaSlots = slots;
  }
  // The plan's upload: indptr[rows + 1] (host bookkeeping), lengths[rows],
  // region offsets[rows], update pairs. The device needs the updates, and
  // the lengths and offsets unless the launch carries them inline.
  const int64_t rows = plan.rows;
  const bool inlined = rows <= KVRT_INLINE_ROWS;
  const size_t skipped = static_cast<size_t>(inlined ? 3 * rows + 1 : rows + 1);
  const size_t bytes = (plan.upload.size() - skipped) * sizeof(int32_t);
  int32_t *tables = nullptr;
  // Writing the scratch buffer or the arena waits for earlier users
  // (Scratch::upload). With nothing to write the launch still reads the
  // arena, which earlier calls may have updated on another stream, and its
  // markInUse must cover them: it waits for the last use all the same (no
  // wait on the stream that recorded it, the usual decode loop).
  if (bytes == 0 && !plan.uploadArena) {
    KVRT_RETURN_IF_ERROR(cache->scratch.orderAfterUse(stream, fn));
  } else {
    void *buffer = nullptr;
    KVRT_RETURN_IF_ERROR(cache->scratch.upload(plan.upload.data() + skipped,
                                               bytes, 0, pool.cudaDevice,
                                               stream, &buffer, fn));
    tables = static_cast<int32_t *>(buffer);
    // From here on work is queued: a failure must still record it, so that
    // the next writer waits for it.
    auto queued = [&](kvrt_status status) {
      return afterQueued(status,
                         [&] { return cache->scratch.markInUse(stream, fn); });
    };
    if (plan.uploadArena && shadowSlots > 0)
      KVRT_RETURN_IF_ERROR(queued(cuda::copyToDeviceAsync(
          mirror.arena, mirror.shadow.data(), shadowSlots * sizeof(int32_t),
          pool.cudaDevice, stream, fn)));
    if (plan.numUpdates > 0) {
      cuda::TableLaunch launch{};
      launch.arena = static_cast<int32_t *>(mirror.arena);
      launch.updates = tables + (inlined ? 0 : 2 * rows);
      launch.numUpdates = plan.numUpdates;
      KVRT_RETURN_IF_ERROR(
          queued(cuda::launchTableUpdate(launch, pool.cudaDevice, stream, fn)));
    }
  }
  mirror.dirty.clear();
  mirror.stale = false;

  // Kernels read row r's page ids from the arena at its region's offset
  // (params.h).
  out->pageIndices = static_cast<const int32_t *>(mirror.arena);
  if (inlined) {
    out->inlineRows = static_cast<int32_t>(rows);
    out->inlineLens = plan.upload.data() + rows + 1;
    out->inlineStarts = out->inlineLens + rows;
  } else {
    out->kvLens = tables;
    out->pageIndptr = tables + rows;
  }
  out->lock = std::move(lock);
  return KVRT_OK;
}

void kvrt::DeviceTablesView::fill(kvrt_attention_params &params) const {
  params.page_indices = pageIndices;
  params.page_indptr = pageIndptr;
  params.kv_lens = kvLens;
  params.inline_rows = inlineRows;
  std::copy(inlineLens, inlineLens + inlineRows, params.inline_lens);
  std::copy(inlineStarts, inlineStarts + inlineRows, params.inline_starts);
}
