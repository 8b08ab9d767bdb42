//===- Compaction.cpp - Keeping a subset of a head's slots ------*- C++ -*-===//
//
// Kept slot i receives the token of slot kept[i] >= i, so moving in
// increasing i never overwrites a token that is still to be read; the
// staging in runCopies makes the order irrelevant anyway, which is what lets
// the device run all moves at once.
//
//===----------------------------------------------------------------------===//
#include "Compaction.h"

void kvrt::EditPlan::prepare(kvrt_cache &target, std::vector<HeadEdit> edits) {
  cache = &target;
  const int64_t pageSize = cache->desc.page_size;
  heads.reserve(edits.size());
  for (HeadEdit &edit : edits) {
    const HeadTable &head = *edit.head;
    const int32_t count = edit.keptCount();
    const int64_t numPages = pagesFor(count, pageSize);
    Prepared prepared;
    prepared.newPages.assign(head.pages.begin(), head.pages.begin() + numPages);
    prepared.dropped.assign(head.pages.begin() + numPages, head.pages.end());

    std::vector<bool> written(static_cast<size_t>(numPages), false);
    for (int32_t i = 0; i < count; ++i)
      if (edit.keptSlot(i) != i)
        written[i / pageSize] = true;
    // A shared page about to become the partly filled last page is copied
    // as if written: appends will write into it.
    if (count % pageSize != 0)
      written[numPages - 1] = true;
    for (int64_t index = 0; index < numPages; ++index)
      if (written[index] && refCount(*cache, head.pages[index]) > 1)
        prepared.copied.push_back(static_cast<int32_t>(index));
    prepared.dropped.reserve(prepared.dropped.size() + prepared.copied.size());
    needed += static_cast<int64_t>(prepared.copied.size());

    if (edit.prefix < 0 || !head.positions.empty()) {
      prepared.newPositions.resize(static_cast<size_t>(count));
      for (int32_t i = 0; i < count; ++i)
        prepared.newPositions[i] = head.positionOf(edit.keptSlot(i));
    }
    prepared.edit = std::move(edit);
    heads.push_back(std::move(prepared));
  }
}

kvrt_status kvrt::EditPlan::run(const int32_t *fresh, void *stream,
                                const char *function) {
  const int64_t pageSize = cache->desc.page_size;
  CopyList copies;
  for (Prepared &prepared : heads) {
    const HeadTable &head = *prepared.edit.head;
    for (int32_t index : prepared.copied) {
      int32_t original = prepared.newPages[index];
      int32_t copy = *fresh++;
      copies.pageCopies.push_back(original);
      copies.pageCopies.push_back(copy);
      prepared.newPages[index] = copy;
      prepared.dropped.push_back(original);
    }
    const int32_t count = prepared.edit.keptCount();
    const int64_t numPages = static_cast<int64_t>(prepared.newPages.size());
    for (int32_t i = 0; i < count; ++i) {
      const int32_t from = prepared.edit.keptSlot(i);
      if (from == i)
        continue;
      // A source page past the new length is read before it is freed;
      // one that was copied reads the same bytes from either page.
      const int64_t fromIndex = from / pageSize;
      const int32_t fromPage = fromIndex < numPages
                                   ? prepared.newPages[fromIndex]
                                   : head.pages[fromIndex];
      copies.moveSlot(*cache, fromPage, static_cast<int32_t>(from % pageSize),
                      prepared.newPages[i / pageSize],
                      static_cast<int32_t>(i % pageSize));
    }
  }
  return runCopies(*cache, copies, stream, function);
}

void kvrt::EditPlan::commit() {
  for (Prepared &prepared : heads) {
    HeadTable &head = *prepared.edit.head;
    for (size_t index = 0; index < prepared.newPages.size(); ++index)
      if (head.pages[index] != prepared.newPages[index])
        head.setPage(index, prepared.newPages[index]);
    head.truncatePages(prepared.newPages.size());
    head.positions.swap(prepared.newPositions);
    head.length = prepared.edit.keptCount();
    cache->dropPages(prepared.dropped.data(),
                     static_cast<int64_t>(prepared.dropped.size()));
  }
}
