//===- Pool.cpp - Page pools ------------------------------------*- C++ -*-===//
//
// A pool is one allocation, on the host or on a CUDA device, cut into
// equally sized pages. Page ids come from a free-list stack, so taking and
// returning a page is O(1) and never touches the memory itself.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"
#include "Error.h"
#include "Handles.h"

#include <cstdlib>
#include <limits>
#include <memory>

namespace {
/// Host pages start 256-byte aligned: enough for any vector load and for
/// cache-line and DMA friendliness.
constexpr size_t kHostAlignment = 256;
/// Pages must keep 16-byte alignment so that kernels can use 16-byte loads
/// on every page of a pool whose base is aligned.
constexpr int64_t kPageBytesMultiple = 16;
} // namespace

kvrt_pool::~kvrt_pool() {
  for (kvrt_cache *cache : caches)
    delete cache;
  if (device == KVRT_DEVICE_HOST)
    std::free(base);
  else
    kvrt::cuda::release(base, cudaDevice);
}

void kvrt_pool::takePages(int64_t count, std::vector<int32_t> &out) {
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(freePages.back());
    freePages.pop_back();
  }
}

void kvrt_pool::returnPages(const std::vector<int32_t> &pages) {
  for (int32_t page : pages)
    freePages.push_back(page);
}

extern "C" kvrt_status kvrt_pool_create(kvrt_device device, int64_t page_bytes,
                                        int64_t num_pages, kvrt_pool **out) {
  const char *fn = "kvrt_pool_create";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    if (!kvrt::isValidDevice(device))
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: device %d is not a kvrt_device (0 = host, 1 = "
                        "cuda)",
                        fn, kvrt::rawEnum(device));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(page_bytes, fn, "page_bytes"));
    KVRT_RETURN_IF_ERROR(kvrt::checkPositive(num_pages, fn, "num_pages"));
    if (page_bytes % kPageBytesMultiple != 0)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: page_bytes %lld is not a multiple of %lld (pages "
                        "must stay 16-byte aligned for vector loads)",
                        fn, static_cast<long long>(page_bytes),
                        static_cast<long long>(kPageBytesMultiple));
    // Page ids are int32 in page tables and kernel parameters.
    if (num_pages > std::numeric_limits<int32_t>::max())
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: num_pages %lld exceeds the limit of %d (page ids "
                        "are 32-bit)",
                        fn, static_cast<long long>(num_pages),
                        std::numeric_limits<int32_t>::max());
    int64_t limit = std::numeric_limits<int64_t>::max() - kHostAlignment;
    if (page_bytes > limit / num_pages)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: %lld pages of %lld bytes overflow a 64-bit size",
                        fn, static_cast<long long>(num_pages),
                        static_cast<long long>(page_bytes));
    if (device == KVRT_DEVICE_CUDA && !kvrt::cuda::isBuiltWithCuda())
      return kvrt::fail(KVRT_ERROR_UNSUPPORTED,
                        "%s: this kvrt was built without CUDA, so it cannot "
                        "create CUDA pools (configure with "
                        "-DKVCC_ENABLE_CUDA=ON)",
                        fn);

    auto pool = std::make_unique<kvrt_pool>();
    pool->device = device;
    pool->pageBytes = page_bytes;
    pool->numPages = num_pages;
    size_t bytes = static_cast<size_t>(page_bytes * num_pages);
    if (device == KVRT_DEVICE_HOST) {
      // aligned_alloc wants a size that is a multiple of the alignment.
      size_t rounded =
          (bytes + kHostAlignment - 1) / kHostAlignment * kHostAlignment;
      pool->base =
          static_cast<char *>(std::aligned_alloc(kHostAlignment, rounded));
      if (!pool->base)
        return kvrt::fail(KVRT_ERROR_OUT_OF_MEMORY,
                          "%s: cannot allocate %zu bytes of host memory for "
                          "%lld pages",
                          fn, bytes, static_cast<long long>(num_pages));
    } else {
      void *memory = nullptr;
      KVRT_RETURN_IF_ERROR(
          kvrt::cuda::allocate(bytes, &memory, &pool->cudaDevice, fn));
      pool->base = static_cast<char *>(memory);
    }
    // Reserving the whole free list up front is what lets returnPages run
    // without allocating, so destroy paths cannot fail. (After the page
    // memory: a pool too large to allocate fails before this loop runs.)
    pool->freePages.reserve(static_cast<size_t>(num_pages));
    // Hand out low page ids first (the stack pops from the back).
    for (int64_t page = num_pages - 1; page >= 0; --page)
      pool->freePages.push_back(static_cast<int32_t>(page));
    *out = pool.release();
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_pool_destroy(kvrt_pool *pool) {
  // Caches created from the pool die with it (see ~kvrt_pool); handles to
  // them must not be used afterwards, not even for kvrt_cache_destroy.
  delete pool;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_pool_get_stats(const kvrt_pool *pool,
                                           kvrt_pool_stats *out) {
  const char *fn = "kvrt_pool_get_stats";
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(pool, fn, "pool"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  out->device = pool->device;
  out->page_bytes = pool->pageBytes;
  out->pages_total = pool->numPages;
  out->pages_free = pool->freePageCount();
  out->num_sequences = pool->numSequences;
  out->num_caches = static_cast<int64_t>(pool->caches.size());
  return KVRT_OK;
}
