//===- AllocatorTest.cpp - Pages, formats, handles, statistics --*- C++ -*-===//
//
// The free list and reference counts, page formats and their layouts,
// caches created with per-head capacities, handle checks (destroyed and
// foreign handles are errors) and the statistics.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"
#include "PageAllocator.h"
#include "TileRuns.h"

#include <cstdlib>
#include <numeric>
#include <string>

using namespace kvrt::test;

namespace {

TEST(PageAllocatorTest, AllocateReleaseAndCounts) {
  kvrt::PageAllocator pages;
  pages.init(4);
  EXPECT_EQ(pages.totalCount(), 4);
  EXPECT_EQ(pages.freeCount(), 4);
  int32_t taken[4] = {-1, -1, -1, -1};
  ASSERT_TRUE(pages.allocate(3, taken));
  // A fresh pool hands out low ids first.
  EXPECT_EQ(taken[0], 0);
  EXPECT_EQ(taken[1], 1);
  EXPECT_EQ(taken[2], 2);
  EXPECT_EQ(pages.freeCount(), 1);
  EXPECT_EQ(pages.refCount(1), 1);
  EXPECT_EQ(pages.refCount(3), 0);

  // All or nothing: two pages do not fit, nothing is taken.
  int32_t more[2] = {-1, -1};
  EXPECT_FALSE(pages.allocate(2, more));
  EXPECT_EQ(more[0], -1);
  EXPECT_EQ(pages.freeCount(), 1);
  EXPECT_TRUE(pages.allocate(0, more));

  pages.retain(&taken[1], 1);
  EXPECT_EQ(pages.refCount(1), 2);
  EXPECT_EQ(pages.release(taken, 3), 2); // page 1 keeps one reference
  EXPECT_EQ(pages.freeCount(), 3);
  EXPECT_EQ(pages.refCount(1), 1);
  // The pages freed last are reused first, in the order they were given.
  ASSERT_TRUE(pages.allocate(1, more));
  EXPECT_EQ(more[0], 0);
}

TEST(PageAllocatorTest, ReleasedRunsComeBackInOrder) {
  kvrt::PageAllocator pages;
  pages.init(16);
  int32_t first[6], second[4];
  ASSERT_TRUE(pages.allocate(6, first)); // 0 .. 5
  ASSERT_TRUE(pages.allocate(4, second)); // 6 .. 9
  // A sequence's pages, released in token order, return as the same run
  // for the next allocation, after the pages released since (taken first).
  EXPECT_EQ(pages.release(first, 6), 6);
  EXPECT_EQ(pages.release(second + 1, 2), 2); // pages 7, 8
  int32_t again[8];
  ASSERT_TRUE(pages.allocate(8, again));
  const int32_t expected[8] = {7, 8, 0, 1, 2, 3, 4, 5};
  for (int i = 0; i < 8; ++i)
    EXPECT_EQ(again[i], expected[i]) << "page " << i;
}

TEST(TileRunsTest, ShareOfWholeTilesOnRuns) {
  // Pages of 16, tiles of 128 keys: 8 pages a tile.
  std::vector<int32_t> run(64);
  std::iota(run.begin(), run.end(), 100); // 8 tiles, all on a run
  std::vector<int32_t> broken = run;
  std::swap(broken[9], broken[10]); // tile 1 off its run
  std::vector<int32_t> descending(run.rbegin(), run.rend());
  using kvrt::mostTilesOnRuns;
  EXPECT_TRUE(mostTilesOnRuns({{run.data(), 1024}}, 16, 128));
  // 7 of 8: still most.
  EXPECT_TRUE(mostTilesOnRuns({{broken.data(), 1024}}, 16, 128));
  // Descending ids are no run (the tensor copy takes pages n, n + 1, ...).
  EXPECT_FALSE(mostTilesOnRuns({{descending.data(), 1024}}, 16, 128));
  // 8 of 16 whole tiles on runs: not most.
  EXPECT_FALSE(mostTilesOnRuns(
      {{run.data(), 1024}, {descending.data(), 1024}}, 16, 128));
  // 8 of 10 (4/5): most; a partial last tile does not count.
  EXPECT_TRUE(mostTilesOnRuns(
      {{run.data(), 1024}, {descending.data(), 2 * 128 + 127}}, 16, 128));
  // No whole tile at all (rows shorter than 128 keys): never.
  EXPECT_FALSE(mostTilesOnRuns({{run.data(), 127}, {run.data(), 0}}, 16, 128));
  EXPECT_FALSE(mostTilesOnRuns({}, 16, 128));
  // Pages of 64: two a tile.
  EXPECT_TRUE(mostTilesOnRuns({{run.data(), 64 * 64}}, 64, 128));
  EXPECT_FALSE(mostTilesOnRuns({{descending.data(), 64 * 64}}, 64, 128));

  // Past kRunSampleTiles whole tiles a sample decides: 4096 rows of 2
  // tiles each; then every second row's tiles broken.
  std::vector<int32_t> pages(16 * 4096);
  std::iota(pages.begin(), pages.end(), 0);
  std::vector<kvrt::RowPages> rows;
  for (int r = 0; r < 4096; ++r)
    rows.push_back({pages.data() + 16 * r, 256});
  EXPECT_TRUE(mostTilesOnRuns(rows, 16, 128));
  for (int r = 0; r < 4096; r += 2)
    for (int t = 0; t < 2; ++t)
      std::swap(pages[16 * r + 8 * t], pages[16 * r + 8 * t + 1]);
  EXPECT_FALSE(mostTilesOnRuns(rows, 16, 128)); // half on runs
}

TEST(PageFormatTest, UnquantizedLayoutIsTheCompiledOne) {
  kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 16, 4096);
  kvrt_page_layout layout;
  ASSERT_EQ(kvrt_page_layout_compute(&desc, nullptr, &layout), KVRT_OK);
  EXPECT_EQ(layout.page_bytes, kvrt_cache_page_bytes(&desc));
  EXPECT_EQ(layout.key_offset, 0);
  EXPECT_EQ(layout.key_row_bytes, 256);
  EXPECT_EQ(layout.value_offset, 16 * 256);
  EXPECT_EQ(layout.value_row_bytes, 256);
  EXPECT_EQ(layout.key_meta_row_bytes, 0);
  EXPECT_EQ(layout.value_meta_row_bytes, 0);
  EXPECT_EQ(layout.token_bytes, 512);
  kvrt_page_format plain{};
  kvrt_page_layout same;
  ASSERT_EQ(kvrt_page_layout_compute(&desc, &plain, &same), KVRT_OK);
  EXPECT_EQ(same.page_bytes, layout.page_bytes);
}

TEST(PageFormatTest, QuantizedLayouts) {
  kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 16, 4096);
  // KIVI-like: 2-bit K and V, groups of 32, f16 scale/zero pairs.
  kvrt_page_format format{2, 2, 32, KVRT_DTYPE_F16};
  kvrt_page_layout layout;
  ASSERT_EQ(kvrt_page_layout_compute(&desc, &format, &layout), KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(layout.key_row_bytes, 32);      // 128 x 2 bits
  EXPECT_EQ(layout.key_meta_row_bytes, 16); // 4 groups x (scale, zero) x 2
  EXPECT_EQ(layout.value_offset, 16 * 32);
  EXPECT_EQ(layout.key_meta_offset, 2 * 16 * 32);
  EXPECT_EQ(layout.value_meta_offset, 2 * 16 * 32 + 16 * 16);
  EXPECT_EQ(layout.page_bytes, 2 * 16 * 32 + 2 * 16 * 16);
  EXPECT_EQ(layout.token_bytes, 96);

  // 8-bit keys, unquantized values; regions stay 16-byte aligned.
  kvrt_cache_desc small = makeDesc(1, 8, KVRT_DTYPE_F32, 1, 16);
  kvrt_page_format mixed{8, 0, 8, KVRT_DTYPE_F32};
  ASSERT_EQ(kvrt_page_layout_compute(&small, &mixed, &layout), KVRT_OK);
  EXPECT_EQ(layout.key_row_bytes, 8);
  EXPECT_EQ(layout.value_offset, 16);
  EXPECT_EQ(layout.value_row_bytes, 32);
  EXPECT_EQ(layout.key_meta_offset, 48);
  EXPECT_EQ(layout.key_meta_row_bytes, 8);
  EXPECT_EQ(layout.value_meta_row_bytes, 0);
  EXPECT_EQ(layout.page_bytes, 64);
}

TEST(PageFormatTest, RejectsBadEncodings) {
  kvrt_cache_desc desc = makeDesc(2, 12, KVRT_DTYPE_F16, 16, 64);
  kvrt_page_layout layout;
  kvrt_page_format format{3, 0, 4, KVRT_DTYPE_F16};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "format->key_bits 3 is not 0 (unquantized), 2, 4 or 8");
  format = {0, 16, 4, KVRT_DTYPE_F16};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT, "format->value_bits 16");
  format = {4, 4, 0, KVRT_DTYPE_F16};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "format->group_size must be positive");
  format = {4, 4, 5, KVRT_DTYPE_F16};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "group_size 5 does not divide head_dim 12");
  format = {2, 2, 3, KVRT_DTYPE_F16};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "a group of 3 elements of 2 bits is not a whole number");
  format = {4, 4, 4, static_cast<kvrt_dtype>(9)};
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT, "format->scale_dtype 9");
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(nullptr, &format, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT, "desc must not be null");
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, &format, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  desc.page_size = 3;
  EXPECT_KVRT_ERROR(kvrt_page_layout_compute(&desc, nullptr, &layout),
                    KVRT_ERROR_INVALID_ARGUMENT, "not a power of two");
}

TEST(CacheConfigTest, PerHeadCapacitiesAndFormat) {
  kvrt_cache_desc desc = makeDesc(3, 16, KVRT_DTYPE_F32, 4, 32);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 1024, 32);
  const int64_t capacities[] = {32, 16, 8};
  kvrt_cache_config config{desc, nullptr, capacities};
  kvrt_cache *cache = nullptr;
  ASSERT_EQ(kvrt_cache_create_with_config(pool.get(), &config, &cache), KVRT_OK)
      << kvrt_last_error();
  int32_t id = makeSequence(pool.get());
  int64_t lengths[3], got[3];
  ASSERT_EQ(kvrt_cache_get_heads(cache, id, lengths, got), KVRT_OK);
  EXPECT_EQ(lengths[0] + lengths[1] + lengths[2], 0);
  EXPECT_EQ(got[0], 32);
  EXPECT_EQ(got[1], 16);
  EXPECT_EQ(got[2], 8);
  // Either output may be null.
  EXPECT_EQ(kvrt_cache_get_heads(cache, id, nullptr, nullptr), KVRT_OK);

  // The smallest head limits appends, which write every head.
  Tensor data(KVRT_DTYPE_F32, 9 * 3 * 16);
  EXPECT_KVRT_ERROR(
      kvrt_append(cache, 1, &id, 9, data.data(), data.data(), nullptr),
      KVRT_ERROR_CAPACITY,
      "head 2 of sequence " + std::to_string(id) +
          " would hold 9 tokens, beyond its capacity of 8");
  ASSERT_EQ(kvrt_append(cache, 1, &id, 6, data.data(), data.data(), nullptr),
            KVRT_OK);

  // Per-sequence capacities: not below a head's length, within the cache's.
  const int64_t tooSmall[] = {8, 8, 5};
  EXPECT_KVRT_ERROR(kvrt_cache_set_capacities(cache, id, tooSmall),
                    KVRT_ERROR_CAPACITY,
                    "head 2 of sequence " + std::to_string(id) +
                        " holds 6 tokens, more than the new capacity 5");
  const int64_t tooLarge[] = {8, 33, 8};
  EXPECT_KVRT_ERROR(kvrt_cache_set_capacities(cache, id, tooLarge),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "head_capacities[1] = 33 is not in [1, 32]");
  EXPECT_KVRT_ERROR(kvrt_cache_set_capacities(cache, id, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "head_capacities must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_set_capacities(cache, 99, capacities),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 99 does not exist");
  const int64_t raised[] = {6, 32, 32};
  ASSERT_EQ(kvrt_cache_set_capacities(cache, id, raised), KVRT_OK);
  ASSERT_EQ(kvrt_cache_get_heads(cache, id, lengths, got), KVRT_OK);
  EXPECT_EQ(got[0], 6);
  EXPECT_EQ(got[2], 32);
  EXPECT_EQ(lengths[1], 6);
  EXPECT_KVRT_ERROR(
      kvrt_append(cache, 1, &id, 1, data.data(), data.data(), nullptr),
      KVRT_ERROR_CAPACITY, "head 0 of sequence");
  // A new sequence starts from the cache's defaults again.
  int32_t other = makeSequence(pool.get());
  ASSERT_EQ(kvrt_cache_get_heads(cache, other, nullptr, got), KVRT_OK);
  EXPECT_EQ(got[2], 8);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST(CacheConfigTest, RejectsBadConfigs) {
  kvrt_cache_desc desc = makeDesc(2, 16, KVRT_DTYPE_F16, 4, 16);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 4);
  kvrt_cache *cache = nullptr;
  const int64_t zero[] = {16, 0};
  kvrt_cache_config config{desc, nullptr, zero};
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(pool.get(), &config, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "head_capacities[1] = 0 is not in [1, 16]");
  kvrt_page_format bad{5, 0, 4, KVRT_DTYPE_F16};
  config = {desc, &bad, nullptr};
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(pool.get(), &config, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "format->key_bits 5");
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(pool.get(), nullptr, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "config must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(nullptr, &config, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  config = {desc, nullptr, nullptr};
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(pool.get(), &config, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  // A quantized page larger than the pool's pages.
  desc.head_dim = 64;
  kvrt_page_format quantized{8, 8, 64, KVRT_DTYPE_F32};
  config = {desc, &quantized, nullptr};
  EXPECT_KVRT_ERROR(kvrt_cache_create_with_config(pool.get(), &config, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "more than the pool's page size");
  EXPECT_EQ(cache, nullptr);
}

TEST(CacheConfigTest, QuantizedCachesAreAllocationOnly) {
  kvrt_cache_desc desc = makeDesc(2, 32, KVRT_DTYPE_F16, 4, 64);
  kvrt_page_format format{4, 2, 16, KVRT_DTYPE_F16};
  kvrt_page_layout layout;
  ASSERT_EQ(kvrt_page_layout_compute(&desc, &format, &layout), KVRT_OK);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, layout.page_bytes, 16);
  kvrt_cache_config config{desc, &format, nullptr};
  kvrt_cache *cache = nullptr;
  ASSERT_EQ(kvrt_cache_create_with_config(pool.get(), &config, &cache),
            KVRT_OK);
  kvrt_page_layout got;
  ASSERT_EQ(kvrt_cache_get_layout(cache, &got), KVRT_OK);
  EXPECT_EQ(got.page_bytes, layout.page_bytes);
  EXPECT_EQ(got.value_meta_row_bytes, layout.value_meta_row_bytes);
  EXPECT_KVRT_ERROR(kvrt_cache_get_layout(cache, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, KVRT_DEVICE_HOST, 2, 32, KVRT_DTYPE_F16, 4, 64),
      KVRT_ERROR_MISMATCH, "quantized pages");

  int32_t id = makeSequence(pool.get());
  Tensor data(KVRT_DTYPE_F16, 2 * 32);
  EXPECT_KVRT_ERROR(
      kvrt_append(cache, 1, &id, 1, data.data(), data.data(), nullptr),
      KVRT_ERROR_UNSUPPORTED, "quantized pages");
  int32_t slot = -1;
  int32_t slots[2] = {-1, -1};
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 1, &id, data.data(), data.data(),
                                      slots, nullptr),
                    KVRT_ERROR_UNSUPPORTED, "quantized pages");
  EXPECT_KVRT_ERROR(kvrt_cache_replace_slot(cache, id, 0, slot, data.data(),
                                            data.data(), 0, nullptr),
                    KVRT_ERROR_UNSUPPORTED, "quantized pages");
  EXPECT_KVRT_ERROR(kvrt_cache_read(cache, id, data.data(), nullptr),
                    KVRT_ERROR_UNSUPPORTED, "quantized pages");
  Tensor out(KVRT_DTYPE_F16, 2 * 32);
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 2, data.data(),
                                        out.data(), 1.0f, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "fewer than num_tokens");
  // Reservations allocate quantized pages like any others.
  ASSERT_EQ(kvrt_reserve(1, &cache, 1, &id, 6), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 16 - 2 * 2);
  EXPECT_EQ(cacheStats(cache).reserved_pages, 4);
}

TEST(CacheConfigTest, CompactionMovesEveryRegionOfQuantizedPages) {
  // White-box: quantized tokens cannot be written through the C API yet,
  // so the test writes page bytes directly and checks that selection,
  // forks (copy on write) and truncation move all four regions.
  kvrt_cache_desc desc = makeDesc(1, 32, KVRT_DTYPE_F16, 4, 64);
  kvrt_page_format format{4, 8, 16, KVRT_DTYPE_F32};
  kvrt_page_layout layout;
  ASSERT_EQ(kvrt_page_layout_compute(&desc, &format, &layout), KVRT_OK);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, layout.page_bytes, 16);
  kvrt_cache_config config{desc, &format, nullptr};
  kvrt_cache *cache = nullptr;
  ASSERT_EQ(kvrt_cache_create_with_config(pool.get(), &config, &cache),
            KVRT_OK);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(kvrt_reserve(1, &cache, 1, &id, 7), KVRT_OK);
  // Give the head 7 tokens whose every region byte encodes the token.
  kvrt::HeadTable &head =
      const_cast<kvrt::CacheSequence *>(internalState(cache, id))->heads[0];
  const std::pair<int64_t, int64_t> regions[] = {
      {layout.key_offset, layout.key_row_bytes},
      {layout.value_offset, layout.value_row_bytes},
      {layout.key_meta_offset, layout.key_meta_row_bytes},
      {layout.value_meta_offset, layout.value_meta_row_bytes}};
  auto rowOf = [&](int32_t slot, int region) {
    char *page = pool->pageAddress(head.pages[slot / 4]);
    return page + regions[region].first + (slot % 4) * regions[region].second;
  };
  for (int32_t slot = 0; slot < 7; ++slot)
    for (int region = 0; region < 4; ++region)
      std::memset(rowOf(slot, region), 10 * slot + region,
                  size_t(regions[region].second));
  head.length = 7;
  const_cast<kvrt::CacheSequence *>(internalState(cache, id))->nextPosition = 7;

  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), id, nullptr, &child), KVRT_OK);
  const int32_t indptr[] = {0, 3};
  const int32_t kept[] = {1, 5, 6};
  ASSERT_EQ(kvrt_cache_select(cache, id, indptr, kept, nullptr), KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(headPositions(cache, id, 0), (std::vector<int32_t>{1, 5, 6}));
  for (int32_t slot = 0; slot < 3; ++slot)
    for (int region = 0; region < 4; ++region) {
      const char *row = rowOf(slot, region);
      for (int64_t i = 0; i < regions[region].second; ++i)
        ASSERT_EQ(row[i], char(10 * kept[slot] + region))
            << "slot " << slot << " region " << region;
    }
  // The fork still holds its own copy of the original order.
  const kvrt::HeadTable &childHead = internalState(cache, child)->heads[0];
  EXPECT_EQ(childHead.length, 7);
  const char *childRow = pool->pageAddress(childHead.pages[1]) +
                         layout.value_meta_offset +
                         1 * layout.value_meta_row_bytes;
  EXPECT_EQ(childRow[0], char(10 * 5 + 3));
  EXPECT_TRUE(checkInvariants(pool.get()));
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), child, 2, nullptr), KVRT_OK);
  EXPECT_EQ(headLengths(cache, child)[0], 2);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST(HandleTest, DestroyedAndForeignHandlesAreErrors) {
  kvrt_cache_desc desc = makeDesc(1, 16, KVRT_DTYPE_F32, 4, 16);
  kvrt_pool *pool = nullptr;
  ASSERT_EQ(kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 4,
                             &pool),
            KVRT_OK);
  kvrt_cache *cache = makeCache(pool, desc);
  kvrt_cache *second = makeCache(pool, desc);
  ASSERT_EQ(kvrt_cache_destroy(cache), KVRT_OK);
  // Double destroy and use after destroy.
  EXPECT_KVRT_ERROR(kvrt_cache_destroy(cache), KVRT_ERROR_INVALID_HANDLE,
                    "is not a live cache");
  kvrt_cache_desc out;
  EXPECT_KVRT_ERROR(kvrt_cache_get_desc(cache, &out), KVRT_ERROR_INVALID_HANDLE,
                    "kvrt_cache_get_desc");
  // A pool is not a cache, and a cache not a pool.
  EXPECT_KVRT_ERROR(
      kvrt_cache_get_desc(reinterpret_cast<kvrt_cache *>(pool), &out),
      KVRT_ERROR_INVALID_HANDLE, "is not a live cache");
  int32_t id;
  EXPECT_KVRT_ERROR(
      kvrt_sequence_create(reinterpret_cast<kvrt_pool *>(second), &id),
      KVRT_ERROR_INVALID_HANDLE, "is not a live pool");
  // The surviving cache took no harm and its slot is reused.
  kvrt_cache *third = makeCache(pool, desc);
  EXPECT_EQ(kvrt_cache_get_desc(second, &out), KVRT_OK);
  EXPECT_EQ(kvrt_cache_get_desc(third, &out), KVRT_OK);
  ASSERT_EQ(kvrt_pool_destroy(pool), KVRT_OK);
  // Caches die with their pool.
  EXPECT_KVRT_ERROR(kvrt_cache_get_desc(second, &out),
                    KVRT_ERROR_INVALID_HANDLE, "already destroyed");
  EXPECT_KVRT_ERROR(kvrt_cache_destroy(third), KVRT_ERROR_INVALID_HANDLE,
                    "is not a live cache");
  EXPECT_KVRT_ERROR(kvrt_pool_destroy(pool), KVRT_ERROR_INVALID_HANDLE,
                    "is not a live pool");
  kvrt_pool_stats stats;
  EXPECT_KVRT_ERROR(kvrt_pool_get_stats(pool, &stats),
                    KVRT_ERROR_INVALID_HANDLE, "kvrt_pool_get_stats");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_INVALID_HANDLE),
               "KVRT_ERROR_INVALID_HANDLE");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_OUT_OF_RANGE),
               "KVRT_ERROR_OUT_OF_RANGE");
}

TEST(StatsTest, PagesTokensWasteAndTables) {
  // Pages of 4 tokens of 16 f32: 512 bytes; a token of a head: 128 bytes.
  kvrt_cache_desc desc = makeDesc(2, 16, KVRT_DTYPE_F32, 4, 64);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 32);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  kvrt_cache *empty = makeCache(pool.get(), desc);
  int32_t id = makeSequence(pool.get());
  Tensor data(KVRT_DTYPE_F32, 6 * 2 * 16);
  ASSERT_EQ(kvrt_append(cache, 1, &id, 6, data.data(), data.data(), nullptr),
            KVRT_OK);
  kvrt_cache_stats stats = cacheStats(cache);
  EXPECT_EQ(stats.sequences, 1);
  EXPECT_EQ(stats.pages, 4);
  EXPECT_EQ(stats.page_refs, 4);
  EXPECT_EQ(stats.reserved_pages, 0);
  EXPECT_EQ(stats.partial_pages, 2);
  EXPECT_EQ(stats.tokens, 12);
  EXPECT_EQ(stats.bytes_held, 4 * 512);
  EXPECT_EQ(stats.bytes_used, 12 * 128);
  EXPECT_EQ(stats.waste_bytes, 4 * 512 - 12 * 128);
  EXPECT_EQ(stats.table_bytes, 4 * 4); // four page ids, no positions

  // A fork shares the two full pages and copies the two partial ones.
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), id, nullptr, &child), KVRT_OK);
  stats = cacheStats(cache);
  EXPECT_EQ(stats.sequences, 2);
  EXPECT_EQ(stats.pages, 6);
  EXPECT_EQ(stats.page_refs, 8);
  EXPECT_EQ(stats.tokens, 24);
  // Shared tokens count once: 2 full pages + 2 x 2 partial pages.
  EXPECT_EQ(stats.bytes_used, (8 + 2 * 4) * 128);
  EXPECT_EQ(stats.waste_bytes, stats.bytes_held - stats.bytes_used);

  kvrt_pool_usage usage;
  ASSERT_EQ(kvrt_pool_get_usage(pool.get(), &usage), KVRT_OK);
  EXPECT_EQ(usage.pages_total, 32);
  EXPECT_EQ(usage.pages_used, 6);
  EXPECT_EQ(usage.pages_free, 26);
  EXPECT_EQ(usage.bytes_total, 32 * 512);
  EXPECT_EQ(usage.bytes_held, 6 * 512);
  EXPECT_EQ(usage.bytes_used, stats.bytes_used);
  EXPECT_EQ(usage.waste_bytes, usage.bytes_held - usage.bytes_used);
  EXPECT_EQ(usage.table_bytes, stats.table_bytes);
  EXPECT_EQ(cacheStats(empty).pages, 0);
  EXPECT_EQ(cacheStats(empty).sequences, 0);

  EXPECT_KVRT_ERROR(kvrt_cache_get_stats(cache, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_get_stats(nullptr, &stats),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_pool_get_usage(pool.get(), nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(kvrt_pool_get_usage(nullptr, &usage),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST(StatsTest, CacheDestroyReturnsPagesOfEverySequence) {
  kvrt_cache_desc desc = makeDesc(2, 16, KVRT_DTYPE_F32, 4, 64);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 32);
  kvrt_cache *first = makeCache(pool.get(), desc);
  kvrt_cache *second = makeCache(pool.get(), desc);
  int32_t a = makeSequence(pool.get()), b = makeSequence(pool.get());
  const int32_t ids[] = {a, b};
  Tensor data(KVRT_DTYPE_F32, 2 * 5 * 2 * 16);
  ASSERT_EQ(kvrt_append(first, 2, ids, 5, data.data(), data.data(), nullptr),
            KVRT_OK);
  ASSERT_EQ(kvrt_append(second, 2, ids, 5, data.data(), data.data(), nullptr),
            KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 32 - 16);
  ASSERT_EQ(kvrt_cache_destroy(first), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 32 - 8);
  EXPECT_TRUE(checkInvariants(pool.get()));
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(second, a, &length), KVRT_OK);
  EXPECT_EQ(length, 5);
}

/// The pages the next allocation of `count` pages on `pool` takes, handed
/// back afterwards (white-box: the pool's allocator).
std::vector<int32_t> nextPages(kvrt_pool *pool, int64_t count) {
  std::vector<int32_t> taken(static_cast<size_t>(count));
  EXPECT_TRUE(pool->pages.allocate(count, taken.data()));
  // Released in the order taken: the next allocation takes them so again.
  pool->pages.release(taken.data(), count);
  return taken;
}

/// Sets (or, with null, unsets) KVRT_RELEASE_ORDER until destroyed, then
/// restores what the process had.
class ScopedReleaseOrder {
public:
  explicit ScopedReleaseOrder(const char *order) {
    if (const char *old = std::getenv("KVRT_RELEASE_ORDER")) {
      saved = old;
      hadValue = true;
    }
    if (order)
      setenv("KVRT_RELEASE_ORDER", order, 1);
    else
      unsetenv("KVRT_RELEASE_ORDER");
  }
  ~ScopedReleaseOrder() {
    if (hadValue)
      setenv("KVRT_RELEASE_ORDER", saved.c_str(), 1);
    else
      unsetenv("KVRT_RELEASE_ORDER");
  }

private:
  std::string saved;
  bool hadValue = false;
};

/// A pool of 32 pages and one cache of two heads (pages of 4 tokens),
/// created with KVRT_RELEASE_ORDER=`order` (unset: null): sequence A's
/// prompt of 8 tokens (head 0 takes pages 0, 1 and head 1 pages 2, 3), then
/// A and B decoding in step, taking their pages a step at a time,
/// interleaved (A's head 0 ends with 0, 1, 4, 8, 12, 16 and head 1 with 2,
/// 3, 5, 9, 13, 17), then A destroyed.
class ReleaseOrderTest : public ::testing::Test {
protected:
  void destroyAfterDecodeInStep(const char *order) {
    kvrt_cache_desc desc = makeDesc(2, 16, KVRT_DTYPE_F32, 4, 64);
    {
      ScopedReleaseOrder scoped(order);
      pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 32);
    }
    ASSERT_TRUE(pool);
    cache = makeCache(pool.get(), desc);
    ASSERT_NE(cache, nullptr);
    const int32_t ids[] = {makeSequence(pool.get()), makeSequence(pool.get())};
    Tensor prompt(KVRT_DTYPE_F32, 8 * 2 * 16);
    ASSERT_EQ(
        kvrt_append(cache, 1, ids, 8, prompt.data(), prompt.data(), nullptr),
        KVRT_OK)
        << kvrt_last_error();
    Tensor step(KVRT_DTYPE_F32, 2 * 1 * 2 * 16);
    for (int i = 0; i < 16; ++i)
      ASSERT_EQ(
          kvrt_append(cache, 2, ids, 1, step.data(), step.data(), nullptr),
          KVRT_OK)
          << kvrt_last_error();
    EXPECT_EQ(freePages(pool.get()), 32 - 20);
    ASSERT_EQ(kvrt_sequence_destroy(pool.get(), ids[0]), KVRT_OK);
    EXPECT_TRUE(checkInvariants(pool.get()));
  }

  PoolPtr pool;
  kvrt_cache *cache = nullptr;
};

TEST_F(ReleaseOrderTest, DestroyedSequenceReturnsPagesInAscendingOrder) {
  destroyAfterDecodeInStep(nullptr);
  ASSERT_FALSE(HasFatalFailure());
  // Both heads' pages together in id order (the prompt's runs and the
  // decode steps' single pages merged), so that a new sequence's append
  // takes adjacent pages as runs.
  const std::vector<int32_t> expected = {0, 1, 2,  3,  4,  5,
                                         8, 9, 12, 13, 16, 17};
  EXPECT_EQ(nextPages(pool.get(), 12), expected);
  // A new sequence of 8 tokens gets them head by head: 0, 1 / 2, 3.
  int32_t c = makeSequence(pool.get());
  Tensor data(KVRT_DTYPE_F32, 8 * 2 * 16);
  ASSERT_EQ(kvrt_append(cache, 1, &c, 8, data.data(), data.data(), nullptr),
            KVRT_OK);
  kvrt::Sequence *sequence = pool->findSequence(c);
  ASSERT_NE(sequence, nullptr);
  const kvrt::CacheSequence *state = cache->state(*sequence);
  ASSERT_NE(state, nullptr);
  EXPECT_EQ(state->heads[0].pages, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(state->heads[1].pages, (std::vector<int32_t>{2, 3}));
}

TEST(ReleaseOrderRunsTest, SequenceAppendedAtOnceComesBackInOrder) {
  // One run a head (0, 1 and 2, 3), already ascending head after head:
  // returned as they are, the first head's taken first.
  kvrt_cache_desc desc = makeDesc(2, 16, KVRT_DTYPE_F32, 4, 64);
  PoolPtr pool;
  {
    ScopedReleaseOrder scoped(nullptr);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 8);
  }
  kvrt_cache *cache = makeCache(pool.get(), desc);
  int32_t a = makeSequence(pool.get());
  Tensor data(KVRT_DTYPE_F32, 8 * 2 * 16);
  ASSERT_EQ(kvrt_append(cache, 1, &a, 8, data.data(), data.data(), nullptr),
            KVRT_OK);
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), a), KVRT_OK);
  EXPECT_EQ(nextPages(pool.get(), 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(ReleaseOrderTest, HeadsOrderKnob) {
  // KVRT_RELEASE_ORDER=heads, read when the pool is created: head by head
  // in token order, as before (the last head's pages on top).
  destroyAfterDecodeInStep("heads");
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<int32_t> expected = {2, 3, 5, 9, 13, 17,
                                         0, 1, 4, 8, 12, 16};
  EXPECT_EQ(nextPages(pool.get(), 12), expected);
}

} // namespace
