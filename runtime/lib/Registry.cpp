//===- Registry.cpp - Live pool and cache handles ---------------*- C++ -*-===//
//
// Pool and cache handles are raw pointers in the C API. Every entry point
// looks its handle up here before dereferencing it, so that a handle that
// was destroyed (a double destroy, a cache used after its pool died) is an
// error code rather than a use-after-free. Lookups take a shared lock, so
// concurrent calls do not serialize on it.
//
//===----------------------------------------------------------------------===//
#include "Error.h"
#include "Handles.h"

#include <shared_mutex>
#include <unordered_map>

namespace {

/// What a registered pointer is.
enum class HandleKind { Pool, Cache };

std::shared_mutex &registryMutex() {
  static std::shared_mutex mutex;
  return mutex;
}

std::unordered_map<const void *, HandleKind> &registry() {
  static std::unordered_map<const void *, HandleKind> handles;
  return handles;
}

bool isLive(const void *handle, HandleKind kind) {
  std::shared_lock<std::shared_mutex> lock(registryMutex());
  auto it = registry().find(handle);
  return it != registry().end() && it->second == kind;
}

void add(const void *handle, HandleKind kind) {
  std::unique_lock<std::shared_mutex> lock(registryMutex());
  registry().emplace(handle, kind);
}

} // namespace

void kvrt::registerPool(const kvrt_pool *pool) { add(pool, HandleKind::Pool); }

void kvrt::registerCache(const kvrt_cache *cache) {
  add(cache, HandleKind::Cache);
}

void kvrt::unregisterHandle(const void *handle) {
  std::unique_lock<std::shared_mutex> lock(registryMutex());
  registry().erase(handle);
}

kvrt_status kvrt::checkPool(const kvrt_pool *pool, const char *function) {
  KVRT_RETURN_IF_ERROR(checkNotNull(pool, function, "pool"));
  if (isLive(pool, HandleKind::Pool))
    return KVRT_OK;
  return fail(KVRT_ERROR_INVALID_HANDLE,
              "%s: pool %p is not a live pool (never created, or already "
              "destroyed)",
              function, static_cast<const void *>(pool));
}

kvrt_status kvrt::checkCache(const kvrt_cache *cache, const char *function) {
  KVRT_RETURN_IF_ERROR(checkNotNull(cache, function, "cache"));
  if (isLive(cache, HandleKind::Cache))
    return KVRT_OK;
  return fail(KVRT_ERROR_INVALID_HANDLE,
              "%s: cache %p is not a live cache (never created, or already "
              "destroyed directly or with its pool)",
              function, static_cast<const void *>(cache));
}
