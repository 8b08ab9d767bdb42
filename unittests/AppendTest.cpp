//===- AppendTest.cpp - kvrt_append, kvrt_cache_read, accounting ---*- C++ -*-//
//
// Appends on host pools checked against a dense shadow copy, page
// accounting, and the all-or-nothing rule of failing appends.
//
//===----------------------------------------------------------------------===//
#include "TestHelpers.h"

#include <map>

using namespace kvrt::test;

namespace {

/// A host pool with one cache and a dense shadow copy of what every
/// sequence should hold.
class AppendTest : public ::testing::Test {
protected:
  void init(kvrt_cache_desc cacheDesc, int64_t numPages) {
    desc = cacheDesc;
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), numPages);
    ASSERT_TRUE(pool);
    cache = makeCache(pool.get(), desc);
    ASSERT_NE(cache, nullptr);
  }

  int64_t rowBytes() const {
    return int64_t(desc.head_dim) * kvrt_dtype_size(desc.dtype);
  }
  int64_t tokenBytes() const { return desc.num_kv_heads * rowBytes(); }

  /// Appends `tokens` random tokens to every sequence of `ids` in one call
  /// and, when it succeeds, to the shadow copies.
  kvrt_status append(const std::vector<int32_t> &ids, int32_t tokens) {
    int64_t elements =
        int64_t(ids.size()) * tokens * desc.num_kv_heads * desc.head_dim;
    Tensor keys = randomTensor(desc.dtype, elements, rng);
    Tensor values = randomTensor(desc.dtype, elements, rng);
    kvrt_status status =
        kvrt_append(cache, static_cast<int32_t>(ids.size()), ids.data(), tokens,
                    keys.data(), values.data(), nullptr);
    if (status != KVRT_OK)
      return status;
    int64_t chunk = tokens * tokenBytes();
    for (size_t b = 0; b < ids.size(); ++b) {
      auto &entry = shadow[ids[b]];
      entry.first.insert(entry.first.end(), keys.bytes.begin() + b * chunk,
                         keys.bytes.begin() + (b + 1) * chunk);
      entry.second.insert(entry.second.end(), values.bytes.begin() + b * chunk,
                          values.bytes.begin() + (b + 1) * chunk);
    }
    return status;
  }

  /// Expects the cache to hold exactly the shadow copy of sequence `id`.
  void expectHolds(int32_t id) {
    const auto &entry = shadow[id];
    int64_t length = -1;
    ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
    ASSERT_EQ(length * tokenBytes(), int64_t(entry.first.size()));
    std::vector<unsigned char> keys(entry.first.size() + 1, 0xab);
    std::vector<unsigned char> values(entry.second.size() + 1, 0xab);
    ASSERT_EQ(kvrt_cache_read(cache, id, keys.data(), values.data()), KVRT_OK)
        << kvrt_last_error();
    // The byte past the end must stay untouched.
    EXPECT_EQ(keys.back(), 0xab);
    EXPECT_EQ(values.back(), 0xab);
    keys.pop_back();
    values.pop_back();
    EXPECT_TRUE(keys == entry.first) << "keys of sequence " << id;
    EXPECT_TRUE(values == entry.second) << "values of sequence " << id;
  }

  int64_t length(int32_t id) {
    int64_t result = -1;
    EXPECT_EQ(kvrt_cache_sequence_length(cache, id, &result), KVRT_OK);
    return result;
  }

  int64_t freePages() {
    kvrt_pool_stats stats;
    EXPECT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
    return stats.pages_free;
  }

  kvrt_cache_desc desc{};
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
  std::mt19937 rng{1234};
  std::map<int32_t,
           std::pair<std::vector<unsigned char>, std::vector<unsigned char>>>
      shadow;
};

TEST_F(AppendTest, SingleSequenceAcrossPages) {
  init(makeDesc(2, 16, KVRT_DTYPE_F32, 4, 64), 32);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append({id}, 3), KVRT_OK) << kvrt_last_error();
  expectHolds(id);
  EXPECT_EQ(freePages(), 32 - 2); // one page per head
  ASSERT_EQ(append({id}, 6), KVRT_OK) << kvrt_last_error();
  expectHolds(id);
  EXPECT_EQ(length(id), 9);
  EXPECT_EQ(freePages(), 32 - 3 * 2); // ceil(9 / 4) pages per head
  ASSERT_EQ(append({id}, 1), KVRT_OK);
  ASSERT_EQ(append({id}, 2), KVRT_OK);
  expectHolds(id);
  EXPECT_EQ(freePages(), 32 - 3 * 2);
  ASSERT_EQ(append({id}, 1), KVRT_OK);
  EXPECT_EQ(freePages(), 32 - 4 * 2);
  expectHolds(id);
}

TEST_F(AppendTest, BatchedAppendsOfUnevenSequences) {
  for (kvrt_dtype dtype : {KVRT_DTYPE_F16, KVRT_DTYPE_BF16, KVRT_DTYPE_F32}) {
    SCOPED_TRACE(kvrt::dtypeName(dtype));
    shadow.clear();
    init(makeDesc(3, 8, dtype, 8, 200), 200);
    int32_t a = makeSequence(pool.get());
    int32_t b = makeSequence(pool.get());
    int32_t c = makeSequence(pool.get());
    ASSERT_EQ(append({a}, 5), KVRT_OK);
    ASSERT_EQ(append({c}, 16), KVRT_OK);
    // a: 5 -> 12 (crosses a page), b: 0 -> 7, c: 16 -> 23 (starts a page).
    ASSERT_EQ(append({a, b, c}, 7), KVRT_OK) << kvrt_last_error();
    ASSERT_EQ(append({c, a}, 30), KVRT_OK) << kvrt_last_error();
    for (int32_t id : {a, b, c})
      expectHolds(id);
    EXPECT_EQ(length(a), 42);
    EXPECT_EQ(length(b), 7);
    EXPECT_EQ(length(c), 53);
    // ceil(42/8) + ceil(7/8) + ceil(53/8) = 6 + 1 + 7 pages per head.
    EXPECT_EQ(freePages(), 200 - 14 * 3);
  }
}

TEST_F(AppendTest, SequenceDestroyReturnsPagesOfEveryCache) {
  init(makeDesc(2, 16, KVRT_DTYPE_F16, 4, 64), 64);
  kvrt_cache *other = makeCache(pool.get(), desc);
  int32_t a = makeSequence(pool.get());
  int32_t b = makeSequence(pool.get());
  ASSERT_EQ(append({a, b}, 10), KVRT_OK);
  Tensor data = randomTensor(desc.dtype, 5 * 2 * 16, rng);
  ASSERT_EQ(kvrt_append(other, 1, &a, 5, data.data(), data.data(), nullptr),
            KVRT_OK);
  // a: 3 pages x 2 heads in cache, 2 x 2 in other; b: 3 x 2.
  EXPECT_EQ(freePages(), 64 - 6 - 4 - 6);
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), a), KVRT_OK);
  EXPECT_EQ(freePages(), 64 - 6);
  expectHolds(b);
  int64_t result;
  EXPECT_EQ(kvrt_cache_sequence_length(cache, a, &result),
            KVRT_ERROR_UNKNOWN_SEQUENCE);
  // Destroying a cache returns its pages too.
  ASSERT_EQ(kvrt_cache_destroy(cache), KVRT_OK);
  cache = nullptr;
  EXPECT_EQ(freePages(), 64);
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), b), KVRT_OK);
  EXPECT_EQ(freePages(), 64);
}

TEST_F(AppendTest, CapacityErrorLeavesSequenceUnchanged) {
  init(makeDesc(1, 16, KVRT_DTYPE_F32, 4, 10), 16);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append({id}, 8), KVRT_OK);
  int64_t before = freePages();
  EXPECT_KVRT_ERROR(append({id}, 3), KVRT_ERROR_CAPACITY,
                    "sequence " + std::to_string(id) +
                        " would hold 11 tokens, beyond the cache's capacity "
                        "of 10");
  EXPECT_EQ(length(id), 8);
  EXPECT_EQ(freePages(), before);
  ASSERT_EQ(append({id}, 2), KVRT_OK);
  expectHolds(id);
}

TEST_F(AppendTest, OutOfPagesLeavesStateUnchanged) {
  init(makeDesc(2, 16, KVRT_DTYPE_BF16, 4, 64), 10);
  int32_t a = makeSequence(pool.get());
  int32_t b = makeSequence(pool.get());
  ASSERT_EQ(append({a}, 8), KVRT_OK); // 2 pages x 2 heads
  ASSERT_EQ(freePages(), 6);
  // a needs 3 more pages per head, b 3: 12 pages, 6 free.
  EXPECT_KVRT_ERROR(append({a, b}, 12), KVRT_ERROR_OUT_OF_MEMORY,
                    "the batch needs 12 pages, 6 free");
  EXPECT_EQ(freePages(), 6);
  EXPECT_EQ(length(a), 8);
  EXPECT_EQ(length(b), 0);
  expectHolds(a);
  // What fits still works afterwards.
  ASSERT_EQ(append({a, b}, 4), KVRT_OK) << kvrt_last_error();
  EXPECT_EQ(freePages(), 2);
  expectHolds(a);
  expectHolds(b);
}

TEST_F(AppendTest, RejectsDuplicateSequenceIds) {
  init(makeDesc(1, 16, KVRT_DTYPE_F32, 4, 64), 16);
  int32_t a = makeSequence(pool.get());
  int32_t b = makeSequence(pool.get());
  EXPECT_KVRT_ERROR(append({a, b, a}, 2), KVRT_ERROR_INVALID_ARGUMENT,
                    "seq_ids[0] and seq_ids[2] are both sequence " +
                        std::to_string(a));
  EXPECT_EQ(length(a), 0);
  EXPECT_EQ(length(b), 0);
  EXPECT_EQ(freePages(), 16);
}

TEST_F(AppendTest, RejectsUnknownSequences) {
  init(makeDesc(1, 16, KVRT_DTYPE_F32, 4, 64), 16);
  int32_t a = makeSequence(pool.get());
  int32_t b = makeSequence(pool.get());
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), b), KVRT_OK);
  EXPECT_KVRT_ERROR(append({a, b}, 2), KVRT_ERROR_UNKNOWN_SEQUENCE,
                    "sequence " + std::to_string(b) + " does not exist");
  EXPECT_KVRT_ERROR(append({77}, 2), KVRT_ERROR_UNKNOWN_SEQUENCE,
                    "sequence 77 does not exist");
  EXPECT_EQ(length(a), 0);
  EXPECT_EQ(freePages(), 16);
}

TEST_F(AppendTest, RejectsBadArguments) {
  init(makeDesc(1, 16, KVRT_DTYPE_F32, 4, 64), 16);
  int32_t id = makeSequence(pool.get());
  Tensor data(KVRT_DTYPE_F32, 16);
  const void *d = data.data();
  EXPECT_KVRT_ERROR(kvrt_append(nullptr, 1, &id, 1, d, d, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_append(cache, 0, &id, 1, d, d, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "batch must be positive");
  EXPECT_KVRT_ERROR(kvrt_append(cache, 1, nullptr, 1, d, d, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "seq_ids must not be null");
  EXPECT_KVRT_ERROR(kvrt_append(cache, 1, &id, -2, d, d, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "num_tokens must be positive, got -2");
  EXPECT_KVRT_ERROR(kvrt_append(cache, 1, &id, 1, nullptr, d, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "keys must not be null");
  EXPECT_KVRT_ERROR(kvrt_append(cache, 1, &id, 1, d, nullptr, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "values must not be null");
  EXPECT_EQ(length(id), 0);
}

TEST_F(AppendTest, ReadEdgeCases) {
  init(makeDesc(2, 16, KVRT_DTYPE_F16, 4, 64), 16);
  int32_t id = makeSequence(pool.get());
  // A sequence that never appended reads as empty; null outputs are fine.
  EXPECT_EQ(kvrt_cache_read(cache, id, nullptr, nullptr), KVRT_OK);
  ASSERT_EQ(append({id}, 5), KVRT_OK);
  std::vector<unsigned char> keys(5 * tokenBytes());
  ASSERT_EQ(kvrt_cache_read(cache, id, keys.data(), nullptr), KVRT_OK);
  EXPECT_TRUE(keys == shadow[id].first);
  EXPECT_KVRT_ERROR(kvrt_cache_read(nullptr, id, keys.data(), nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_read(cache, 99, keys.data(), nullptr),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 99");
}

} // namespace
