//===- Transfer.h - Taking pages, moving bytes in a pool --------*- C++ -*-===//
//
// Every mutating call follows the same pattern, which is what makes it
// all-or-nothing:
//   1. check everything and work out the pages it needs;
//   2. take them all at once (PageGrant), or fail with nothing changed;
//   3. queue the data movement (runCopies, runWrites) on the pool's device;
//      a failure returns the pages (the grant's destructor) and changes no
//      table;
//   4. commit the page-table changes, which cannot fail.
// The same descriptions of the data movement run on host pools (memcpy)
// and CUDA pools (kernels), so the host unit tests exercise the exact index
// arithmetic the kernels use.
//
//===----------------------------------------------------------------------===//
#ifndef KVRT_LIB_TRANSFER_H
#define KVRT_LIB_TRANSFER_H

#include "Handles.h"

#include <cstdint>
#include <utility>
#include <vector>

namespace kvrt {

/// Pages taken from a pool for one call, split among caches, and not yet
/// entered into page tables. Unless commit() is called they go back to the
/// pool when the grant dies, so errors and exceptions after taking pages
/// leak nothing.
class PageGrant {
public:
  PageGrant() = default;
  PageGrant(const PageGrant &) = delete;
  PageGrant &operator=(const PageGrant &) = delete;
  ~PageGrant();

  /// Asks for `count` pages for `cache`; returns the share's index.
  size_t want(kvrt_cache *cache, int64_t count);
  /// Pages asked for so far.
  int64_t total() const { return static_cast<int64_t>(pages.size()); }
  /// Takes every page asked for from `pool`, or fails with
  /// KVRT_ERROR_OUT_OF_MEMORY: "<function>: <what> needs N pages, M free".
  kvrt_status take(kvrt_pool &pool, const char *what, const char *function);
  /// The pages of share `share` (valid after take()).
  const int32_t *pagesOf(size_t share) const {
    return pages.data() + shares[share].first;
  }
  /// The tables own the pages now.
  void commit() { committed = true; }

private:
  struct Share {
    kvrt_cache *cache;
    int64_t count;
  };
  std::vector<int32_t> pages;
  /// (first page index, share) pairs.
  std::vector<std::pair<int64_t, Share>> shares;
  bool taken = false;
  bool committed = false;
};

/// Byte copies inside one cache's pages, run by runCopies.
struct CopyList {
  /// Whole-page copies as (source page, destination page); they run first.
  std::vector<int32_t> pageCopies;
  /// (source offset, destination offset, bytes) from the pool base; they run
  /// after the page copies, as if every source were read before any
  /// destination is written (they go through a staging buffer).
  std::vector<int64_t> rowMoves;

  bool empty() const { return pageCopies.empty() && rowMoves.empty(); }
  /// Moves the token in `fromSlot` of `fromPage` to `toSlot` of `toPage`:
  /// one row per region of the cache's page layout.
  void moveSlot(const kvrt_cache &cache, int32_t fromPage, int32_t fromSlot,
                int32_t toPage, int32_t toSlot);
};

/// Runs `list` on the cache's device (CUDA pools: queued on `stream`).
kvrt_status runCopies(const kvrt_cache &cache, const CopyList &list,
                      void *stream, const char *function);

/// Token rows to store from dense K/V [batch, numTokens, numHeads,
/// head_dim]: row (b, h) writes its tokens from slot starts[b * numHeads +
/// h] on, into pages[(b * numHeads + h) * stride + k] (k = 0 is the page
/// holding the start slot). The layout of cuda::AppendLaunch.
struct RowWrites {
  const void *keys = nullptr;
  const void *values = nullptr;
  int32_t batch = 0;
  int32_t numTokens = 0;
  int32_t numHeads = 0;
  int32_t stride = 1;
  std::vector<int32_t> starts;
  std::vector<int32_t> pages;
};

/// Stores the rows on the cache's device (unquantized caches).
kvrt_status runWrites(const kvrt_cache &cache, const RowWrites &writes,
                      void *stream, const char *function);

/// Reference count of `page` in the cache's pool.
int32_t refCount(const kvrt_cache &cache, int32_t page);

} // namespace kvrt

#endif // KVRT_LIB_TRANSFER_H
