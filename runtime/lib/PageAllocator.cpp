//===- PageAllocator.cpp - Free list and page reference counts --*- C++ -*-===//
//
// Fixed-size arrays sized at pool creation: allocate and release only move
// ids between the stack and the callers' tables, so neither can fail for
// lack of memory.
//
//===----------------------------------------------------------------------===//
#include "PageAllocator.h"

void kvrt::PageAllocator::init(int32_t count) {
  freeStack = std::make_unique<int32_t[]>(static_cast<size_t>(count));
  refCounts = std::make_unique<int32_t[]>(static_cast<size_t>(count));
  numPages = count;
  // Low ids on top: a fresh pool hands out pages 0, 1, 2, ...
  for (int32_t i = 0; i < count; ++i) {
    freeStack[i] = count - 1 - i;
    refCounts[i] = 0;
  }
  freeTop = count;
}

bool kvrt::PageAllocator::allocate(int64_t count, int32_t *out) {
  std::lock_guard<std::mutex> lock(mutex);
  if (count > freeTop)
    return false;
  for (int64_t i = 0; i < count; ++i) {
    int32_t page = freeStack[--freeTop];
    refCounts[page] = 1;
    out[i] = page;
  }
  return true;
}

void kvrt::PageAllocator::retain(const int32_t *pages, int64_t count) {
  std::lock_guard<std::mutex> lock(mutex);
  for (int64_t i = 0; i < count; ++i)
    ++refCounts[pages[i]];
}

int64_t kvrt::PageAllocator::release(const int32_t *pages, int64_t count) {
  std::lock_guard<std::mutex> lock(mutex);
  int64_t freed = 0;
  // Pushed last to first, so that the next allocation takes them in the
  // caller's order: a sequence's pages, released in token order, come back
  // in that order (runs of consecutive ids stay runs: the prefill body
  // copies a tile on consecutive pages at once, attention_prefill_ws.cuh).
  for (int64_t i = count - 1; i >= 0; --i) {
    int32_t page = pages[i];
    if (--refCounts[page] == 0) {
      freeStack[freeTop++] = page;
      ++freed;
    }
  }
  return freed;
}

int32_t kvrt::PageAllocator::refCount(int32_t page) const {
  std::lock_guard<std::mutex> lock(mutex);
  return refCounts[page];
}

int64_t kvrt::PageAllocator::freeCount() const {
  std::lock_guard<std::mutex> lock(mutex);
  return freeTop;
}
