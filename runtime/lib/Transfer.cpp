//===- Transfer.cpp - Taking pages, moving bytes in a pool ------*- C++ -*-===//
//
// Host pools run copies with memcpy; CUDA pools upload the same spans to
// the cache's scratch buffer and run CopyKernel.cu / AppendKernel.cu on the
// caller's stream. Row moves go through a staging area in both cases so
// that a row may move into a slot another move reads from.
//
//===----------------------------------------------------------------------===//
#include "Transfer.h"
#include "Error.h"

#include <cstring>

namespace {

/// Staging rows start 16-byte aligned so device copies can use vectors.
constexpr int64_t kStagingAlignment = 16;

int64_t alignStaging(int64_t bytes) {
  return (bytes + kStagingAlignment - 1) / kStagingAlignment *
         kStagingAlignment;
}

/// Builds the three span lists of a CopyList: pool-to-pool page copies,
/// rows to staging and rows back from staging. Returns the staging size.
int64_t buildSpans(const kvrt_cache &cache, const kvrt::CopyList &list,
                   std::vector<int64_t> &spans, int64_t &numPageSpans,
                   int64_t &numRowSpans) {
  const kvrt_pool &pool = *cache.pool;
  numPageSpans = static_cast<int64_t>(list.pageCopies.size() / 2);
  numRowSpans = static_cast<int64_t>(list.rowMoves.size() / 3);
  spans.reserve(static_cast<size_t>(3 * numPageSpans + 6 * numRowSpans));
  for (int64_t i = 0; i < numPageSpans; ++i) {
    spans.push_back(list.pageCopies[2 * i] * pool.pageBytes);
    spans.push_back(list.pageCopies[2 * i + 1] * pool.pageBytes);
    spans.push_back(cache.layout.page_bytes);
  }
  int64_t staging = 0;
  std::vector<int64_t> stagingOffsets(static_cast<size_t>(numRowSpans));
  for (int64_t i = 0; i < numRowSpans; ++i) {
    stagingOffsets[i] = staging;
    staging += alignStaging(list.rowMoves[3 * i + 2]);
  }
  for (int64_t i = 0; i < numRowSpans; ++i) {
    spans.push_back(list.rowMoves[3 * i]);
    spans.push_back(stagingOffsets[i]);
    spans.push_back(list.rowMoves[3 * i + 2]);
  }
  for (int64_t i = 0; i < numRowSpans; ++i) {
    spans.push_back(stagingOffsets[i]);
    spans.push_back(list.rowMoves[3 * i + 1]);
    spans.push_back(list.rowMoves[3 * i + 2]);
  }
  return staging;
}

/// memcpy of `count` spans from `source` to `destination`.
void copySpansOnHost(const char *source, char *destination,
                     const int64_t *spans, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(destination + spans[3 * i + 1], source + spans[3 * i],
                static_cast<size_t>(spans[3 * i + 2]));
}

} // namespace

kvrt::PageGrant::~PageGrant() {
  if (!taken || committed)
    return;
  for (const auto &entry : shares)
    entry.second.cache->dropPages(pages.data() + entry.first,
                                  entry.second.count);
}

size_t kvrt::PageGrant::want(kvrt_cache *cache, int64_t count) {
  shares.push_back({static_cast<int64_t>(pages.size()), Share{cache, count}});
  pages.resize(pages.size() + static_cast<size_t>(count));
  return shares.size() - 1;
}

kvrt_status kvrt::PageGrant::take(kvrt_pool &pool, const char *what,
                                  const char *function) {
  if (!pool.pages.allocate(total(), pages.data()))
    return fail(KVRT_ERROR_OUT_OF_MEMORY, "%s: %s needs %lld pages, %lld free",
                function, what, static_cast<long long>(total()),
                static_cast<long long>(pool.pages.freeCount()));
  taken = true;
  for (const auto &entry : shares)
    entry.second.cache->pagesHeld += entry.second.count;
  return KVRT_OK;
}

void kvrt::CopyList::moveSlot(const kvrt_cache &cache, int32_t fromPage,
                              int32_t fromSlot, int32_t toPage,
                              int32_t toSlot) {
  const kvrt_page_layout &layout = cache.layout;
  const int64_t pageBytes = cache.pool->pageBytes;
  const std::pair<int64_t, int64_t> regions[] = {
      {layout.key_offset, layout.key_row_bytes},
      {layout.value_offset, layout.value_row_bytes},
      {layout.key_meta_offset, layout.key_meta_row_bytes},
      {layout.value_meta_offset, layout.value_meta_row_bytes}};
  for (const auto &region : regions) {
    if (region.second == 0)
      continue;
    rowMoves.push_back(fromPage * pageBytes + region.first +
                       fromSlot * region.second);
    rowMoves.push_back(toPage * pageBytes + region.first +
                       toSlot * region.second);
    rowMoves.push_back(region.second);
  }
}

kvrt_status kvrt::runCopies(const kvrt_cache &cache, const CopyList &list,
                            void *stream, const char *function) {
  if (list.empty())
    return KVRT_OK;
  std::vector<int64_t> spans;
  int64_t numPageSpans = 0, numRowSpans = 0;
  const int64_t staging =
      buildSpans(cache, list, spans, numPageSpans, numRowSpans);
  const kvrt_pool &pool = *cache.pool;

  if (pool.device == KVRT_DEVICE_HOST) {
    std::vector<char> stage(static_cast<size_t>(staging));
    const int64_t *pageSpans = spans.data();
    const int64_t *gather = pageSpans + 3 * numPageSpans;
    const int64_t *scatter = gather + 3 * numRowSpans;
    copySpansOnHost(pool.base, pool.base, pageSpans, numPageSpans);
    copySpansOnHost(pool.base, stage.data(), gather, numRowSpans);
    copySpansOnHost(stage.data(), pool.base, scatter, numRowSpans);
    return KVRT_OK;
  }

  std::lock_guard<std::mutex> lock(cache.deviceMutex);
  const size_t spanBytes =
      alignStaging(static_cast<int64_t>(spans.size() * sizeof(int64_t)));
  void *device = nullptr;
  KVRT_RETURN_IF_ERROR(
      cache.scratch.upload(spans.data(), spans.size() * sizeof(int64_t),
                           spanBytes - spans.size() * sizeof(int64_t) + staging,
                           pool.cudaDevice, stream, &device, function));
  const int64_t *deviceSpans = static_cast<const int64_t *>(device);
  char *deviceStaging = static_cast<char *>(device) + spanBytes;
  cuda::CopyLaunch pages{pool.base, pool.base, deviceSpans, numPageSpans};
  cuda::CopyLaunch gather{pool.base, deviceStaging,
                          deviceSpans + 3 * numPageSpans, numRowSpans};
  cuda::CopyLaunch scatter{deviceStaging, pool.base,
                           deviceSpans + 3 * (numPageSpans + numRowSpans),
                           numRowSpans};
  // Launches on one stream run in order: page copies, then the gather, then
  // the scatter, each seeing the previous one's writes.
  for (const cuda::CopyLaunch &launch : {pages, gather, scatter})
    KVRT_RETURN_IF_ERROR(
        cuda::launchCopies(launch, pool.cudaDevice, stream, function));
  return cache.scratch.markInUse(stream, function);
}

kvrt_status kvrt::runWrites(const kvrt_cache &cache, const RowWrites &writes,
                            void *stream, const char *function) {
  const kvrt_pool &pool = *cache.pool;
  const kvrt_page_layout &layout = cache.layout;
  const int64_t pageSize = cache.desc.page_size;
  const int64_t rowBytes = layout.key_row_bytes;
  if (pool.device == KVRT_DEVICE_HOST) {
    // The loop of AppendKernel.cu, one row at a time.
    const char *keys = static_cast<const char *>(writes.keys);
    const char *values = static_cast<const char *>(writes.values);
    for (int64_t b = 0; b < writes.batch; ++b)
      for (int64_t t = 0; t < writes.numTokens; ++t)
        for (int64_t h = 0; h < writes.numHeads; ++h) {
          const int64_t row = b * writes.numHeads + h;
          const int64_t start = writes.starts[row];
          const int64_t slot = start + t;
          const int64_t pageIndex = slot / pageSize - start / pageSize;
          char *page =
              pool.pageAddress(writes.pages[row * writes.stride + pageIndex]);
          const int64_t offset = (slot & (pageSize - 1)) * rowBytes;
          const int64_t source =
              ((b * writes.numTokens + t) * writes.numHeads + h) * rowBytes;
          std::memcpy(page + layout.key_offset + offset, keys + source,
                      static_cast<size_t>(rowBytes));
          std::memcpy(page + layout.value_offset + offset, values + source,
                      static_cast<size_t>(rowBytes));
        }
    return KVRT_OK;
  }

  std::vector<int32_t> table;
  table.reserve(writes.starts.size() + writes.pages.size());
  table.insert(table.end(), writes.starts.begin(), writes.starts.end());
  table.insert(table.end(), writes.pages.begin(), writes.pages.end());
  std::lock_guard<std::mutex> lock(cache.deviceMutex);
  void *device = nullptr;
  KVRT_RETURN_IF_ERROR(
      cache.scratch.upload(table.data(), table.size() * sizeof(int32_t), 0,
                           pool.cudaDevice, stream, &device, function));
  const int32_t *deviceTable = static_cast<const int32_t *>(device);
  cuda::AppendLaunch launch{};
  launch.keys = writes.keys;
  launch.values = writes.values;
  launch.poolBase = pool.base;
  launch.pageBytes = pool.pageBytes;
  launch.rowBytes = rowBytes;
  launch.valueOffset = layout.value_offset;
  launch.batch = writes.batch;
  launch.numTokens = writes.numTokens;
  launch.numHeads = writes.numHeads;
  launch.pageSize = static_cast<int32_t>(pageSize);
  launch.starts = deviceTable;
  launch.pages = deviceTable + writes.starts.size();
  launch.pageStride = writes.stride;
  KVRT_RETURN_IF_ERROR(
      cuda::launchAppend(launch, pool.cudaDevice, stream, function));
  return cache.scratch.markInUse(stream, function);
}

int32_t kvrt::refCount(const kvrt_cache &cache, int32_t page) {
  return cache.pool->pages.refCount(page);
}
