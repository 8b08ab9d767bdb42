//===- DeviceTablesTest.cpp - Incremental device page tables ----*- C++ -*-===//
//
// planDeviceTables is the host half of getDeviceTables: these tests run it
// on host caches and apply its uploads to an emulated device arena, then
// check the rows' arena regions against the page tables, and that steady
// decode steps upload only what changed.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"

using namespace kvrt::test;

namespace {

class DeviceTablesTest : public ::testing::Test {
protected:
  void SetUp() override {
    desc = makeDesc(2, 4, KVRT_DTYPE_F32, 4, 512);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 512);
    cache = makeCache(pool.get(), desc);
  }

  void append(const std::vector<int32_t> &ids, int32_t tokens) {
    Tensor data(KVRT_DTYPE_F32, int64_t(ids.size()) * tokens * 2 * 4);
    ASSERT_EQ(kvrt_append(cache, int32_t(ids.size()), ids.data(), tokens,
                          data.data(), data.data(), nullptr),
              KVRT_OK);
  }

  /// Plans without applying: what the next launch of `ids` would upload.
  kvrt::TablePlan peek(const std::vector<int32_t> &ids) {
    kvrt::SequenceLocks locks;
    EXPECT_EQ(locks.lock(*pool, ids.data(), int32_t(ids.size()), "test"),
              KVRT_OK);
    std::lock_guard<std::mutex> lock(cache->deviceMutex);
    kvrt::TablePlan plan;
    kvrt::planDeviceTables(cache, locks, plan);
    return plan;
  }

  kvrt_cache_desc desc{};
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
  EmulatedDevice device;
};

TEST_F(DeviceTablesTest, FirstLaunchUploadsTheArenaThenOnlyChanges) {
  int32_t a = makeSequence(pool.get()), b = makeSequence(pool.get());
  append({a, b}, 10);
  EXPECT_TRUE(peek({a, b}).uploadArena);
  device.launch(cache, {a, b});
  // Nothing changed: nothing to upload but the batch's O(rows) header.
  kvrt::TablePlan plan = peek({a, b});
  EXPECT_FALSE(plan.uploadArena);
  EXPECT_EQ(plan.numUpdates, 0);
  EXPECT_EQ(plan.totalPages, 2 * 2 * 3);
  // Decode steps inside a page change no page id.
  append({a, b}, 1);
  EXPECT_EQ(peek({a, b}).numUpdates, 0);
  device.launch(cache, {a, b});
  // Crossing a page boundary adds one page id per head.
  append({a, b}, 2);
  plan = peek({a, b});
  EXPECT_FALSE(plan.uploadArena);
  EXPECT_EQ(plan.numUpdates, 2 * 2);
  device.launch(cache, {a, b});
  // The batch order and subset are free; duplicates are fine for reads.
  device.launch(cache, {b, a, b});
  device.launch(cache, {b});
}

TEST_F(DeviceTablesTest, RegionsGrowMoveAndAreReused) {
  int32_t a = makeSequence(pool.get());
  append({a}, 4);
  device.launch(cache, {a});
  const kvrt::HeadTable &head = internalState(cache, a)->heads[0];
  const int32_t firstRegion = head.mirrorOffset;
  EXPECT_EQ(head.mirrorSlots, 8);
  // Past 8 pages the region moves to one of 16 slots.
  append({a}, 4 * 8);
  device.launch(cache, {a});
  EXPECT_EQ(head.mirrorSlots, 16);
  EXPECT_NE(head.mirrorOffset, firstRegion);
  // A finished sequence's regions serve the next one.
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), a), KVRT_OK);
  int32_t b = makeSequence(pool.get());
  append({b}, 3);
  device.launch(cache, {b});
  const kvrt::HeadTable &reused = internalState(cache, b)->heads[1];
  EXPECT_EQ(reused.mirrorSlots, 8);
  const size_t arena = cache->mirror.shadow.size();
  int32_t c = makeSequence(pool.get());
  append({c}, 4 * 9);
  device.launch(cache, {b, c});
  EXPECT_EQ(cache->mirror.shadow.size(), arena); // a's regions, reused
  EXPECT_GT(cacheStats(cache).table_bytes, 0);
}

TEST_F(DeviceTablesTest, EditsInvalidateWhatTheyChange) {
  int32_t parent = makeSequence(pool.get());
  append({parent}, 16);
  device.launch(cache, {parent});
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  device.launch(cache, {parent, child});
  // Copy on write replaces one page id of the child's head 1.
  const int32_t slots[] = {-1, 5};
  Tensor data(KVRT_DTYPE_F32, 2 * 4);
  ASSERT_EQ(kvrt_append_evict(cache, 1, &child, data.data(), data.data(), slots,
                              nullptr),
            KVRT_OK);
  // Head 0's new page; head 1's copied page 1 and the ids after it (the
  // mirror tracks a valid prefix per head).
  kvrt::TablePlan plan = peek({child});
  EXPECT_EQ(plan.numUpdates, 1 + 3);
  device.launch(cache, {child, parent});
  // Selection shrinks heads to different lengths, one to nothing.
  const int32_t indptr[] = {0, 0, 3};
  const int32_t kept[] = {2, 9, 15};
  ASSERT_EQ(kvrt_cache_select(cache, parent, indptr, kept, nullptr), KVRT_OK);
  device.launch(cache, {parent, child});
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), child, 3, nullptr), KVRT_OK);
  device.launch(cache, {parent, child});
  // A sequence that never touched the cache has empty rows.
  int32_t idle = makeSequence(pool.get());
  device.launch(cache, {idle, parent});
  EXPECT_TRUE(checkInvariants(pool.get()));
}

} // namespace
