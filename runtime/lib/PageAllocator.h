//===- PageAllocator.h - Free list and page reference counts ----*- C++ -*-===//
//
// The page ids of one pool: a stack of free ids and a reference count per
// page. Taking and returning a page is O(1) and never touches page memory.
// One mutex guards both; every critical section is a few loads and stores
// per page, so contention stays short even with many threads.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_PAGEALLOCATOR_H
#define KVRT_LIB_PAGEALLOCATOR_H

#include <cstdint>
#include <memory>
#include <mutex>

namespace kvrt {

/// Page ids 0 .. numPages-1 with reference counts. A page is free exactly
/// when its count is 0.
class PageAllocator {
public:
  /// Sets up `numPages` free pages. Throws std::bad_alloc when the
  /// bookkeeping does not fit in memory; nothing is allocated later, so no
  /// other member can fail.
  void init(int32_t numPages);

  /// Takes `count` pages (count >= 0) with reference count 1 and writes
  /// their ids to `out`, or takes nothing and returns false when fewer than
  /// `count` are free.
  bool allocate(int64_t count, int32_t *out);
  /// Adds one reference to each of `count` pages (all in use).
  void retain(const int32_t *pages, int64_t count);
  /// Drops one reference from each of `count` pages (all in use); pages
  /// whose count reaches 0 return to the free list, on top, so that the
  /// next allocation takes them first and in the order given here.
  /// Returns how many did.
  int64_t release(const int32_t *pages, int64_t count);

  /// Current reference count of `page`.
  int32_t refCount(int32_t page) const;
  /// Pages on the free list.
  int64_t freeCount() const;
  int64_t totalCount() const { return numPages; }

private:
  mutable std::mutex mutex;
  int32_t numPages = 0;
  /// freeStack[0 .. freeTop) are the free page ids; allocation pops from
  /// the top, so recently freed (cache-warm) pages are reused first.
  std::unique_ptr<int32_t[]> freeStack;
  int32_t freeTop = 0;
  std::unique_ptr<int32_t[]> refCounts;
};

} // namespace kvrt

#endif // KVRT_LIB_PAGEALLOCATOR_H
