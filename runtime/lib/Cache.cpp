//===- Cache.cpp - Caches and their descriptors -----------------*- C++ -*-===//
//
// A cache is one layer's K/V storage inside a pool. It owns nothing but page
// tables: the memory belongs to the pool, which also owns the cache object.
//
//===----------------------------------------------------------------------===//
#include "Dtype.h"
#include "Error.h"
#include "Handles.h"

#include <algorithm>
#include <limits>
#include <memory>

namespace {

/// Checks every field of a descriptor; messages name the field and the rule.
kvrt_status validateDesc(const kvrt_cache_desc &desc, const char *fn) {
  KVRT_RETURN_IF_ERROR(
      kvrt::checkPositive(desc.num_kv_heads, fn, "desc->num_kv_heads"));
  KVRT_RETURN_IF_ERROR(
      kvrt::checkPositive(desc.head_dim, fn, "desc->head_dim"));
  if (!kvrt::isValidDtype(desc.dtype))
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: desc->dtype %d is not a kvrt_dtype (0 = f16, 1 = "
                      "bf16, 2 = f32)",
                      fn, kvrt::rawEnum(desc.dtype));
  KVRT_RETURN_IF_ERROR(
      kvrt::checkPositive(desc.page_size, fn, "desc->page_size"));
  if ((desc.page_size & (desc.page_size - 1)) != 0)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: desc->page_size %d is not a power of two", fn,
                      desc.page_size);
  KVRT_RETURN_IF_ERROR(
      kvrt::checkPositive(desc.capacity, fn, "desc->capacity"));
  // Kernels receive lengths as int32 (kvrt_attention_params::kv_lens).
  if (desc.capacity > std::numeric_limits<int32_t>::max())
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: desc->capacity %lld exceeds %d (kernels use 32-bit "
                      "lengths)",
                      fn, static_cast<long long>(desc.capacity),
                      std::numeric_limits<int32_t>::max());
  if (kvrt_cache_page_bytes(&desc) == 0)
    return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                      "%s: a page of %d tokens x %d dims overflows 64 bits", fn,
                      desc.page_size, desc.head_dim);
  return KVRT_OK;
}

} // namespace

kvrt_status kvrt::checkSequence(const kvrt_cache *cache, int32_t id,
                                const char *function) {
  if (cache->pool->isLiveSequence(id))
    return KVRT_OK;
  return fail(KVRT_ERROR_UNKNOWN_SEQUENCE,
              "%s: sequence %d does not exist in the cache's pool (never "
              "created or already destroyed)",
              function, id);
}

int64_t kvrt::sequenceLength(const kvrt_cache *cache, int32_t id) {
  auto it = cache->sequences.find(id);
  if (it == cache->sequences.end() || it->second.heads.empty())
    return 0;
  return it->second.heads.front().length;
}

void kvrt_cache::releaseSequence(int32_t id) {
  auto it = sequences.find(id);
  if (it == sequences.end())
    return;
  for (const kvrt::HeadTable &head : it->second.heads)
    pool->returnPages(head.pages);
  sequences.erase(it);
}

void kvrt_cache::releaseAll() {
  for (const auto &entry : sequences)
    for (const kvrt::HeadTable &head : entry.second.heads)
      pool->returnPages(head.pages);
  sequences.clear();
}

extern "C" int64_t kvrt_cache_page_bytes(const kvrt_cache_desc *desc) {
  // 0 flags a descriptor that has no meaningful page size (null, a bad
  // dtype, a non-positive size, or a product beyond int64).
  if (!desc || desc->page_size <= 0 || desc->head_dim <= 0)
    return 0;
  size_t elementSize = kvrt::elementSize(desc->dtype);
  if (elementSize == 0)
    return 0;
  unsigned __int128 bytes = static_cast<unsigned __int128>(2) *
                            static_cast<unsigned>(desc->page_size) *
                            static_cast<unsigned>(desc->head_dim) * elementSize;
  if (bytes >
      static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()))
    return 0;
  return static_cast<int64_t>(bytes);
}

extern "C" kvrt_status kvrt_cache_create(kvrt_pool *pool,
                                         const kvrt_cache_desc *desc,
                                         kvrt_cache **out) {
  const char *fn = "kvrt_cache_create";
  return kvrt::guardCall(fn, [&]() -> kvrt_status {
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(pool, fn, "pool"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(desc, fn, "desc"));
    KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
    KVRT_RETURN_IF_ERROR(validateDesc(*desc, fn));
    int64_t pageBytes = kvrt_cache_page_bytes(desc);
    if (pageBytes > pool->pageBytes)
      return kvrt::fail(KVRT_ERROR_INVALID_ARGUMENT,
                        "%s: a page of this cache needs %lld bytes (2 x %d "
                        "tokens x %d dims x %zu bytes), more than the pool's "
                        "page size of %lld bytes",
                        fn, static_cast<long long>(pageBytes), desc->page_size,
                        desc->head_dim, kvrt_dtype_size(desc->dtype),
                        static_cast<long long>(pool->pageBytes));
    auto cache = std::make_unique<kvrt_cache>();
    cache->pool = pool;
    cache->desc = *desc;
    cache->rowBytes =
        static_cast<int64_t>(desc->head_dim) * kvrt_dtype_size(desc->dtype);
    pool->caches.push_back(cache.get());
    *out = cache.release();
    return KVRT_OK;
  });
}

extern "C" kvrt_status kvrt_cache_destroy(kvrt_cache *cache) {
  // A cache whose pool was destroyed is already gone; passing it here is a
  // use-after-free in the caller that kvrt cannot detect.
  if (!cache)
    return KVRT_OK;
  kvrt_pool *pool = cache->pool;
  cache->releaseAll();
  pool->caches.erase(
      std::remove(pool->caches.begin(), pool->caches.end(), cache),
      pool->caches.end());
  delete cache;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_cache_get_desc(const kvrt_cache *cache,
                                           kvrt_cache_desc *out) {
  const char *fn = "kvrt_cache_get_desc";
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(cache, fn, "cache"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  *out = cache->desc;
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_cache_sequence_length(const kvrt_cache *cache,
                                                  int32_t id, int64_t *out) {
  const char *fn = "kvrt_cache_sequence_length";
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(cache, fn, "cache"));
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(out, fn, "out"));
  KVRT_RETURN_IF_ERROR(kvrt::checkSequence(cache, id, fn));
  *out = kvrt::sequenceLength(cache, id);
  return KVRT_OK;
}

extern "C" kvrt_status kvrt_cache_check(const kvrt_cache *cache,
                                        kvrt_device device,
                                        int32_t num_kv_heads, int32_t head_dim,
                                        kvrt_dtype dtype, int32_t page_size,
                                        int64_t capacity) {
  const char *fn = "kvrt_cache_check";
  KVRT_RETURN_IF_ERROR(kvrt::checkNotNull(cache, fn, "cache"));
  const kvrt_cache_desc &desc = cache->desc;
  kvrt_device actualDevice = cache->pool->device;
  // Fields are compared in the order a reader checks a layout: where the
  // memory is, then its shape, then its paging.
  if (kvrt::rawEnum(actualDevice) != kvrt::rawEnum(device))
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache lives on %s, the program was compiled for %s",
                      fn, kvrt::deviceName(actualDevice),
                      kvrt::deviceName(device));
  if (desc.num_kv_heads != num_kv_heads)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has %d kv heads, the program was compiled "
                      "for %d",
                      fn, desc.num_kv_heads, num_kv_heads);
  if (desc.head_dim != head_dim)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has head_dim %d, the program was compiled "
                      "for %d",
                      fn, desc.head_dim, head_dim);
  if (kvrt::rawEnum(desc.dtype) != kvrt::rawEnum(dtype))
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has dtype %s, the program was compiled for "
                      "%s",
                      fn, kvrt::dtypeName(desc.dtype), kvrt::dtypeName(dtype));
  if (desc.page_size != page_size)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has page_size %d, the program was compiled "
                      "for %d",
                      fn, desc.page_size, page_size);
  if (desc.capacity != capacity)
    return kvrt::fail(KVRT_ERROR_MISMATCH,
                      "%s: cache has capacity %lld, the program was compiled "
                      "for %lld",
                      fn, static_cast<long long>(desc.capacity),
                      static_cast<long long>(capacity));
  return KVRT_OK;
}
