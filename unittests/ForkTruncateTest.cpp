//===- ForkTruncateTest.cpp - Forks, truncation, reservations ---*- C++ -*-===//
//
// kvrt_sequence_fork (sharing full pages, copying the partly filled one),
// kvrt_sequence_truncate (by position, also after eviction) and
// kvrt_reserve (all-or-nothing across caches), with their error paths.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"

using namespace kvrt::test;

namespace {

/// A host pool with two caches of different shapes.
class ForkTest : public ::testing::Test {
protected:
  void init(int64_t numPages) {
    first = makeDesc(2, 8, KVRT_DTYPE_F32, 4, 64);
    second = makeDesc(1, 8, KVRT_DTYPE_F16, 8, 64);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&first), numPages);
    ASSERT_TRUE(pool);
    caches[0] = makeCache(pool.get(), first);
    caches[1] = makeCache(pool.get(), second);
  }

  /// Appends `tokens` random tokens to `id` in both caches.
  void append(int32_t id, int32_t tokens) {
    for (int c = 0; c < 2; ++c) {
      const kvrt_cache_desc &desc = c ? second : first;
      Tensor data = randomTensor(
          desc.dtype, tokens * desc.num_kv_heads * desc.head_dim, rng);
      ASSERT_EQ(kvrt_append(caches[c], 1, &id, tokens, data.data(), data.data(),
                            nullptr),
                KVRT_OK)
          << kvrt_last_error();
    }
  }

  kvrt_cache_desc first{}, second{};
  PoolPtr pool;
  kvrt_cache *caches[2] = {nullptr, nullptr};
  std::mt19937 rng{3};
};

TEST_F(ForkTest, ForkSharesFullPagesAndCopiesThePartialOne) {
  init(64);
  int32_t parent = makeSequence(pool.get());
  append(parent, 10); // cache 0: 3 pages/head (2 full); cache 1: 2 (1 full)
  const int64_t before = freePages(pool.get());
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK)
      << kvrt_last_error();
  EXPECT_NE(child, parent);
  // One page copied per (cache, head): 2 + 1.
  EXPECT_EQ(freePages(pool.get()), before - 3);
  for (kvrt_cache *cache : caches) {
    EXPECT_TRUE(readHeads(cache, child, false) ==
                readHeads(cache, parent, false));
    EXPECT_TRUE(readHeads(cache, child, true) ==
                readHeads(cache, parent, true));
  }
  // Writes to either side stay on that side.
  HeadRows parentKeys = readHeads(caches[0], parent, false);
  append(child, 3);
  EXPECT_TRUE(readHeads(caches[0], parent, false) == parentKeys);
  EXPECT_EQ(headLengths(caches[0], child), (std::vector<int64_t>{13, 13}));
  EXPECT_TRUE(checkInvariants(pool.get()));
  // The child outlives its parent.
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), parent), KVRT_OK);
  EXPECT_TRUE(checkInvariants(pool.get()));
  HeadRows childKeys = readHeads(caches[0], child, false);
  ASSERT_EQ(childKeys[0].size(), 13u);
  for (size_t slot = 0; slot < 10; ++slot)
    EXPECT_TRUE(childKeys[0][slot] == parentKeys[0][slot]);
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), child), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 64);
}

TEST_F(ForkTest, ForkKeepsPositionsAndCapacitiesAndNotReservations) {
  init(64);
  int32_t parent = makeSequence(pool.get());
  append(parent, 6);
  const int64_t capacities[] = {8, 12};
  ASSERT_EQ(kvrt_cache_set_capacities(caches[0], parent, capacities), KVRT_OK);
  const int32_t indptr[] = {0, 2, 6};
  const int32_t kept[] = {1, 4, 0, 1, 2, 5};
  ASSERT_EQ(kvrt_cache_select(caches[0], parent, indptr, kept, nullptr),
            KVRT_OK);
  ASSERT_EQ(kvrt_reserve(2, caches, 1, &parent, 20), KVRT_OK);
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  EXPECT_EQ(headPositions(caches[0], child, 0), (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(headPositions(caches[0], child, 1),
            (std::vector<int32_t>{0, 1, 2, 5}));
  int64_t got[2];
  ASSERT_EQ(kvrt_cache_get_heads(caches[0], child, nullptr, got), KVRT_OK);
  EXPECT_EQ(got[0], 8);
  EXPECT_EQ(got[1], 12);
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(caches[0], child, &length), KVRT_OK);
  EXPECT_EQ(length, 6);
  // Head 0: 2 tokens, 8 reserved -> 1 extra page; head 1: 4 and 12 -> 2.
  EXPECT_EQ(cacheStats(caches[0]).reserved_pages, 1 + 2); // the parent's only
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(ForkTest, ForkErrors) {
  init(5);
  int32_t parent = makeSequence(pool.get());
  append(parent, 5); // 2 x 2 pages in cache 0, 1 in cache 1: the pool is full
  ASSERT_EQ(freePages(pool.get()), 0);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  int32_t child = -7;
  EXPECT_KVRT_ERROR(kvrt_sequence_fork(pool.get(), parent, nullptr, &child),
                    KVRT_ERROR_OUT_OF_MEMORY, "the fork needs 3 pages, 0 free");
  EXPECT_EQ(child, -7);
  kvrt_pool_stats after;
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &after), KVRT_OK);
  EXPECT_EQ(after.num_sequences, stats.num_sequences);
  EXPECT_KVRT_ERROR(kvrt_sequence_fork(pool.get(), 17, nullptr, &child),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 17 does not exist");
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), parent), KVRT_OK);
  EXPECT_KVRT_ERROR(kvrt_sequence_fork(pool.get(), parent, nullptr, &child),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "does not exist");
  EXPECT_KVRT_ERROR(kvrt_sequence_fork(pool.get(), parent, nullptr, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out_child must not be null");
  EXPECT_KVRT_ERROR(kvrt_sequence_fork(nullptr, parent, nullptr, &child),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &after), KVRT_OK);
  EXPECT_EQ(after.num_sequences, 0);
  EXPECT_EQ(after.pages_free, 5);
  // An empty sequence forks into an empty one.
  int32_t empty = makeSequence(pool.get());
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), empty, nullptr, &child), KVRT_OK);
  EXPECT_EQ(headLengths(caches[0], child), (std::vector<int64_t>{0, 0}));
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(ForkTest, TruncateByPosition) {
  init(64);
  int32_t id = makeSequence(pool.get());
  append(id, 11);
  HeadRows keys = readHeads(caches[0], id, false);
  // Cache 0, head 1 evicts slot 2 for position 11; head 0 grows.
  const int32_t slots[] = {-1, 2};
  Tensor data = randomTensor(KVRT_DTYPE_F32, 2 * 8, rng);
  ASSERT_EQ(kvrt_append_evict(caches[0], 1, &id, data.data(), data.data(),
                              slots, nullptr),
            KVRT_OK);
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), id, 7, nullptr), KVRT_OK)
      << kvrt_last_error();
  // Head 1 held positions 0 1 11 3 4 ... 10: keeps those below 7, in slot
  // order, compacted.
  EXPECT_EQ(headPositions(caches[0], id, 0),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(headPositions(caches[0], id, 1),
            (std::vector<int32_t>{0, 1, 3, 4, 5, 6}));
  HeadRows after = readHeads(caches[0], id, false);
  EXPECT_TRUE(after[1][2] == keys[1][3]);
  EXPECT_TRUE(after[1][5] == keys[1][6]);
  EXPECT_EQ(headLengths(caches[1], id), (std::vector<int64_t>{7}));
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(caches[1], id, &length), KVRT_OK);
  EXPECT_EQ(length, 7);
  // Cache 0: 2 pages per head; cache 1: 1 page.
  EXPECT_EQ(freePages(pool.get()), 64 - 5);
  // The next token takes position 7 everywhere.
  append(id, 1);
  EXPECT_EQ(headPositions(caches[0], id, 1),
            (std::vector<int32_t>{0, 1, 3, 4, 5, 6, 7}));
  // Truncating at or past the end changes nothing.
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), id, 8, nullptr), KVRT_OK);
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), id, 100, nullptr), KVRT_OK);
  EXPECT_EQ(headLengths(caches[0], id), (std::vector<int64_t>{8, 7}));
  // To zero frees everything.
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), id, 0, nullptr), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 64);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(ForkTest, TruncateErrorsAndSharedPages) {
  init(6);
  int32_t parent = makeSequence(pool.get());
  append(parent, 8); // cache 0: 2 heads x 2 full pages; cache 1: 1 page
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 1);
  // Truncating the child to 6 leaves shared pages partly filled (page 1 of
  // each cache-0 head, cache 1's only page): three copies, one page free.
  EXPECT_KVRT_ERROR(kvrt_sequence_truncate(pool.get(), child, 6, nullptr),
                    KVRT_ERROR_OUT_OF_MEMORY,
                    "the truncation needs 3 pages, 1 free");
  EXPECT_EQ(headLengths(caches[0], child), (std::vector<int64_t>{8, 8}));
  // To 4, cache 0 keeps whole pages (the rest are only dropped, the parent
  // still holds them) and cache 1's page is copied.
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), child, 4, nullptr), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 0);
  EXPECT_EQ(headLengths(caches[1], child), (std::vector<int64_t>{4}));
  EXPECT_TRUE(checkInvariants(pool.get()));
  EXPECT_KVRT_ERROR(kvrt_sequence_truncate(pool.get(), child, -1, nullptr),
                    KVRT_ERROR_OUT_OF_RANGE, "length -1 is negative");
  EXPECT_KVRT_ERROR(kvrt_sequence_truncate(pool.get(), 33, 1, nullptr),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 33");
  EXPECT_KVRT_ERROR(kvrt_sequence_truncate(nullptr, child, 1, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
}

TEST_F(ForkTest, ReserveAcrossCaches) {
  init(32);
  int32_t a = makeSequence(pool.get()), b = makeSequence(pool.get());
  append(a, 3);
  const int32_t ids[] = {a, b};
  ASSERT_EQ(kvrt_reserve(2, caches, 2, ids, 6), KVRT_OK) << kvrt_last_error();
  // Cache 0: a needs 3 + 6 = 9 -> 3 pages/head (has 1), b 2/head: 8 pages.
  // Cache 1: a 9 -> 2 (has 1), b 1: 2 pages. 3 held before.
  EXPECT_EQ(freePages(pool.get()), 32 - 3 - 10);
  EXPECT_EQ(cacheStats(caches[0]).reserved_pages, 8);
  // Appends inside the reservation take no page.
  append(a, 6);
  append(b, 6);
  EXPECT_EQ(freePages(pool.get()), 32 - 13);
  EXPECT_EQ(cacheStats(caches[0]).reserved_pages, 0);
  EXPECT_TRUE(checkInvariants(pool.get()));

  // Reservations stop at a head's capacity.
  const int64_t capacities[] = {10, 64};
  ASSERT_EQ(kvrt_cache_set_capacities(caches[0], a, capacities), KVRT_OK);
  ASSERT_EQ(kvrt_reserve(1, caches, 1, &a, 40), KVRT_OK);
  // Head 0: 9 -> 10 tokens, no new page; head 1: 49 tokens, 13 pages (has 3).
  EXPECT_EQ(freePages(pool.get()), 32 - 13 - 10);
  // All or nothing: this one does not fit in cache 1 after cache 0.
  EXPECT_KVRT_ERROR(kvrt_reserve(2, caches, 2, ids, 64),
                    KVRT_ERROR_OUT_OF_MEMORY, "the reservation needs");
  EXPECT_EQ(freePages(pool.get()), 32 - 23);
  // Truncation and selection give reserved pages back.
  ASSERT_EQ(kvrt_sequence_truncate(pool.get(), a, 8, nullptr), KVRT_OK);
  EXPECT_EQ(cacheStats(caches[0]).reserved_pages, 0);
  EXPECT_EQ(freePages(pool.get()), 32 - 2 * 2 - 2 * 2 - 1 - 1);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(ForkTest, ReserveErrors) {
  init(8);
  int32_t a = makeSequence(pool.get());
  kvrt_cache *twice[] = {caches[0], caches[0]};
  EXPECT_KVRT_ERROR(kvrt_reserve(2, twice, 1, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "caches[0] and caches[1] are the same cache");
  PoolPtr other = makePool(KVRT_DEVICE_HOST, 1024, 2);
  kvrt_cache *foreign = makeCache(other.get(), first);
  kvrt_cache *mixed[] = {caches[0], foreign};
  EXPECT_KVRT_ERROR(kvrt_reserve(2, mixed, 1, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "caches[1] belongs to another pool");
  EXPECT_KVRT_ERROR(kvrt_reserve(0, caches, 1, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "num_caches must be positive");
  EXPECT_KVRT_ERROR(kvrt_reserve(1, nullptr, 1, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "caches must not be null");
  kvrt_cache *null[] = {nullptr};
  EXPECT_KVRT_ERROR(kvrt_reserve(1, null, 1, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_reserve(1, caches, 0, &a, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "batch must be positive");
  EXPECT_KVRT_ERROR(kvrt_reserve(1, caches, 1, nullptr, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "seq_ids must not be null");
  EXPECT_KVRT_ERROR(kvrt_reserve(1, caches, 1, &a, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "num_tokens must be positive");
  const int32_t dup[] = {a, a};
  EXPECT_KVRT_ERROR(kvrt_reserve(1, caches, 2, dup, 1),
                    KVRT_ERROR_INVALID_ARGUMENT, "are both sequence");
  const int32_t unknown = 8;
  EXPECT_KVRT_ERROR(kvrt_reserve(1, caches, 1, &unknown, 1),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 8");
  EXPECT_EQ(freePages(pool.get()), 8);
}

} // namespace
