//===- Pool.cpp - Page pools ------------------------------------*- C++ -*-===//
//
// A pool is one allocation, on the host or on a CUDA device, cut into
// equally sized pages whose ids come from a PageAllocator. The pool also
// owns the sequence id registry and the caches created from it.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"
#include "Error.h"
#include "Handles.h"

#include <cstdlib>
#include <cstring>
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
  for (kvrt_cache *cache : caches) {
    if (!cache)
      continue;
    kvrt::unregisterHandle(cache);
    delete cache;
  }
  if (device == KVRT_DEVICE_HOST)
    std::free(base);
  else
    kvrt::cuda::release(base, cudaDevice);
}

kvrt::Sequence *kvrt_pool::findSequence(int32_t id) const {
  std::lock_guard<std::mutex> lock(sequenceMutex);
  if (id < 0 || static_cast<size_t>(id) >= sequences.size())
    return nullptr;
  return sequences[id].get();
}

std::vector<kvrt::Sequence *> kvrt_pool::allSequences() const {
  std::lock_guard<std::mutex> lock(sequenceMutex);
  std::vector<kvrt::Sequence *> all;
  all.reserve(sequences.size());
  for (const auto &sequence : sequences)
    all.push_back(sequence.get());
  return all;
}

std::vector<std::unique_lock<std::mutex>>
kvrt::lockAllSequences(const kvrt_pool &pool) {
  std::vector<std::unique_lock<std::mutex>> locks;
  // Records are in id order, the order every call locks sequences in.
  for (Sequence *sequence : pool.allSequences())
    locks.emplace_back(sequence->mutex);
  return locks;
}

kvrt_status kvrt::unknownSequence(int32_t id, const char *function) {
  return fail(KVRT_ERROR_UNKNOWN_SEQUENCE,
              "%s: sequence %d does not exist in the pool (never created or "
              "already destroyed)",
              function, id);
}

kvrt_status kvrt::SequenceLocks::lock(const kvrt_pool &pool, const int32_t *ids,
                                      int32_t count, const char *function) {
  byIndex.assign(static_cast<size_t>(count), nullptr);
  std::vector<std::pair<int32_t, Sequence *>> order;
  order.reserve(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i) {
    Sequence *sequence = pool.findSequence(ids[i]);
    if (!sequence)
      return unknownSequence(ids[i], function);
    byIndex[i] = sequence;
    order.push_back({ids[i], sequence});
  }
  std::sort(order.begin(), order.end());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  locked.reserve(order.size());
  for (const auto &entry : order) {
    entry.second->mutex.lock();
    locked.push_back(entry.second);
  }
  for (int32_t i = 0; i < count; ++i)
    if (!byIndex[i]->live) {
      unlockAll();
      return unknownSequence(ids[i], function);
    }
  return KVRT_OK;
}

void kvrt::SequenceLocks::unlockAll() {
  for (Sequence *sequence : locked)
    sequence->mutex.unlock();
  locked.clear();
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
    if (const char *order = std::getenv("KVRT_RELEASE_ORDER"))
      pool->sortedRelease = std::strcmp(order, "heads") != 0;
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
    // After the page memory: a pool too large to allocate fails first.
    pool->pages.init(static_cast<int32_t>(num_pages));
    kvrt::registerPool(pool.get());
    *out = pool.release();
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_pool_destroy(kvrt_pool *pool) {
  if (!pool)
    return KVRT_OK;
  KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, "kvrt_pool_destroy"));
  // Caches created from the pool die with it (see ~kvrt_pool).
  kvrt::unregisterHandle(pool);
  delete pool;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_pool_get_stats(const kvrt_pool *pool,
                                           kvrt_pool_stats *out) {
  const char *fn = "kvrt_pool_get_stats";
  KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  int64_t numCaches = 0;
  {
    std::shared_lock<std::shared_mutex> lock(pool->structureMutex);
    for (const kvrt_cache *cache : pool->caches)
      numCaches += cache != nullptr;
  }
  out->device = pool->device;
  out->page_bytes = pool->pageBytes;
  out->pages_total = pool->numPages;
  out->pages_free = pool->pages.freeCount();
  {
    std::lock_guard<std::mutex> lock(pool->sequenceMutex);
    out->num_sequences = pool->numSequences;
  }
  out->num_caches = numCaches;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_pool_get_usage(const kvrt_pool *pool,
                                           kvrt_pool_usage *out) {
  const char *fn = "kvrt_pool_get_usage";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkPool(pool, fn));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    kvrt_pool_usage usage{};
    std::shared_lock<std::shared_mutex> lock(pool->structureMutex);
    auto locks = kvrt::lockAllSequences(*pool);
    for (const kvrt_cache *cache : pool->caches) {
      if (!cache)
        continue;
      kvrt_cache_stats stats;
      kvrt::collectCacheStats(*cache, stats);
      usage.bytes_used += stats.bytes_used;
      usage.table_bytes += stats.table_bytes;
    }
    usage.pages_total = pool->numPages;
    usage.pages_free = pool->pages.freeCount();
    usage.pages_used = usage.pages_total - usage.pages_free;
    usage.bytes_total = usage.pages_total * pool->pageBytes;
    usage.bytes_held = usage.pages_used * pool->pageBytes;
    usage.waste_bytes = usage.bytes_held - usage.bytes_used;
    *out = usage;
    return KVRT_OK;
  });
}
