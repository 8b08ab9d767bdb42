//===- Compaction.h - Keeping a subset of a head's slots --------*- C++ -*-===//
//
// kvrt_cache_select and kvrt_sequence_truncate both reduce a head to a
// subset of its slots: the kept tokens move down to slots 0, 1, ... (in
// place, within the head's own pages) and the pages past the new length
// are freed. Pages shared with a fork are copied before they are written,
// and a shared page that would become the partly filled last page is copied
// too, which keeps the sharing invariant of Handles.h.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_COMPACTION_H
#define KVRT_LIB_COMPACTION_H

#include "Transfer.h"

#include <cstdint>
#include <vector>

namespace kvrt {

/// The slots a head keeps, in increasing order.
struct HeadEdit {
  HeadTable *head = nullptr;
  /// When >= 0, the head keeps slots [0, prefix) and `kept` is unused.
  int32_t prefix = -1;
  std::vector<int32_t> kept;

  int32_t keptCount() const {
    return prefix >= 0 ? prefix : static_cast<int32_t>(kept.size());
  }
  int32_t keptSlot(int32_t index) const {
    return prefix >= 0 ? index : kept[index];
  }
};

/// The edits of some heads of one cache, run all-or-nothing: prepare (may
/// throw, changes nothing), take pagesNeeded() pages, run (queues the data
/// movement; on failure nothing is committed), commit (cannot fail).
class EditPlan {
public:
  /// Plans `edits`; the heads' sequences are locked by the caller.
  void prepare(kvrt_cache &cache, std::vector<HeadEdit> edits);
  /// Copies of shared pages the edits need.
  int64_t pagesNeeded() const { return needed; }
  /// Queues the copies and moves, writing copies to `fresh` (pagesNeeded()
  /// pages taken for this cache).
  kvrt_status run(const int32_t *fresh, void *stream, const char *function);
  /// Enters the new tables and frees the pages they no longer hold.
  void commit();

private:
  struct Prepared {
    HeadEdit edit;
    std::vector<int32_t> newPages;
    std::vector<int32_t> newPositions;
    /// Indices into newPages of shared pages to copy.
    std::vector<int32_t> copied;
    /// References to drop at commit (pages past the new length, then the
    /// originals of copied pages).
    std::vector<int32_t> dropped;
  };
  kvrt_cache *cache = nullptr;
  std::vector<Prepared> heads;
  int64_t needed = 0;
};

} // namespace kvrt

#endif // KVRT_LIB_COMPACTION_H
