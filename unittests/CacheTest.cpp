//===- CacheTest.cpp - Cache creation, descriptors and checks ---*- C++ -*-===//
//
// Descriptor validation, page sizes, kvrt_cache_check messages and the
// ownership of caches by pools.
//
//===----------------------------------------------------------------------===//
#include "TestHelpers.h"

using namespace kvrt::test;

namespace {

TEST(CacheTest, PageBytes) {
  kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 16, 4096);
  EXPECT_EQ(kvrt_cache_page_bytes(&desc), 2 * 16 * 128 * 2);
  desc.dtype = KVRT_DTYPE_F32;
  EXPECT_EQ(kvrt_cache_page_bytes(&desc), 2 * 16 * 128 * 4);
  desc.dtype = static_cast<kvrt_dtype>(5);
  EXPECT_EQ(kvrt_cache_page_bytes(&desc), 0);
  desc = makeDesc(8, 0, KVRT_DTYPE_F16, 16, 4096);
  EXPECT_EQ(kvrt_cache_page_bytes(&desc), 0);
  EXPECT_EQ(kvrt_cache_page_bytes(nullptr), 0);
}

TEST(CacheTest, CreateAndDescribe) {
  kvrt_cache_desc desc = makeDesc(4, 64, KVRT_DTYPE_BF16, 8, 100);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 8);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  ASSERT_NE(cache, nullptr);
  kvrt_cache_desc read;
  ASSERT_EQ(kvrt_cache_get_desc(cache, &read), KVRT_OK);
  EXPECT_EQ(read.num_kv_heads, 4);
  EXPECT_EQ(read.head_dim, 64);
  EXPECT_EQ(read.dtype, KVRT_DTYPE_BF16);
  EXPECT_EQ(read.page_size, 8);
  EXPECT_EQ(read.capacity, 100);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.num_caches, 1);
  EXPECT_EQ(kvrt_cache_destroy(cache), KVRT_OK);
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.num_caches, 0);
}

TEST(CacheTest, RejectsBadDescriptors) {
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 1 << 20, 4);
  kvrt_cache *cache = nullptr;
  kvrt_cache_desc good = makeDesc(2, 64, KVRT_DTYPE_F16, 16, 64);
  kvrt_cache_desc desc = good;
  EXPECT_KVRT_ERROR(kvrt_cache_create(nullptr, &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), nullptr, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "desc must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  desc.num_kv_heads = 0;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->num_kv_heads must be positive, got 0");
  desc = good;
  desc.head_dim = -3;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->head_dim must be positive, got -3");
  desc = good;
  desc.dtype = static_cast<kvrt_dtype>(9);
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->dtype 9 is not a kvrt_dtype");
  desc = good;
  desc.page_size = 0;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->page_size must be positive");
  desc.page_size = 24;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->page_size 24 is not a power of two");
  desc = good;
  desc.capacity = 0;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "desc->capacity must be positive");
  desc.capacity = int64_t(1) << 40;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT, "32-bit lengths");
  EXPECT_EQ(cache, nullptr);
}

TEST(CacheTest, PageLargerThanPoolPage) {
  kvrt_cache_desc desc = makeDesc(2, 128, KVRT_DTYPE_F32, 16, 64);
  // The cache needs 16 KiB pages; the pool has 8 KiB ones.
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 8192, 4);
  kvrt_cache *cache = nullptr;
  EXPECT_KVRT_ERROR(kvrt_cache_create(pool.get(), &desc, &cache),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "needs 16384 bytes (2 x 16 tokens x 128 dims x 4 bytes), "
                    "more than the pool's page size of 8192 bytes");
  // Smaller pages than the pool's are fine (the rest of each page idles).
  desc.dtype = KVRT_DTYPE_F16;
  desc.page_size = 8;
  EXPECT_NE(makeCache(pool.get(), desc), nullptr);
}

TEST(CacheTest, CheckNamesFirstDifferingField) {
  kvrt_cache_desc desc = makeDesc(4, 64, KVRT_DTYPE_F16, 16, 4096);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 2);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  ASSERT_NE(cache, nullptr);
  const kvrt_device host = KVRT_DEVICE_HOST;
  EXPECT_EQ(kvrt_cache_check(cache, host, 4, 64, KVRT_DTYPE_F16, 16, 4096),
            KVRT_OK);
  EXPECT_KVRT_ERROR(kvrt_cache_check(cache, KVRT_DEVICE_CUDA, 4, 64,
                                     KVRT_DTYPE_F16, 16, 4096),
                    KVRT_ERROR_MISMATCH,
                    "cache lives on host, the program was compiled for cuda");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, host, 8, 32, KVRT_DTYPE_F32, 16, 4096),
      KVRT_ERROR_MISMATCH,
      "cache has 4 kv heads, the program was compiled for 8");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, host, 4, 128, KVRT_DTYPE_F16, 16, 4096),
      KVRT_ERROR_MISMATCH,
      "cache has head_dim 64, the program was compiled for 128");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, host, 4, 64, KVRT_DTYPE_BF16, 16, 4096),
      KVRT_ERROR_MISMATCH,
      "cache has dtype f16, the program was compiled for bf16");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, host, 4, 64, KVRT_DTYPE_F16, 32, 4096),
      KVRT_ERROR_MISMATCH,
      "cache has page_size 16, the program was compiled for 32");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(cache, host, 4, 64, KVRT_DTYPE_F16, 16, 2048),
      KVRT_ERROR_MISMATCH,
      "cache has capacity 4096, the program was compiled for 2048");
  EXPECT_KVRT_ERROR(
      kvrt_cache_check(nullptr, host, 4, 64, KVRT_DTYPE_F16, 16, 4096),
      KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
}

TEST(CacheTest, AccessorsRejectNullsAndUnknownSequences) {
  kvrt_cache_desc desc = makeDesc(1, 16, KVRT_DTYPE_F32, 4, 16);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 2);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  int64_t length = -1;
  kvrt_cache_desc out;
  EXPECT_KVRT_ERROR(kvrt_cache_get_desc(nullptr, &out),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_get_desc(cache, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_sequence_length(nullptr, 0, &length),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_sequence_length(cache, 0, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_sequence_length(cache, 3, &length),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 3 does not exist");
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
  EXPECT_EQ(length, 0);
}

TEST(CacheTest, PoolDestroyDestroysCaches) {
  // Caches are owned by the pool: destroying the pool frees them (ASan
  // would report a leak otherwise); their handles are dead afterwards.
  kvrt_cache_desc desc = makeDesc(2, 32, KVRT_DTYPE_F16, 4, 32);
  kvrt_pool *pool = nullptr;
  ASSERT_EQ(kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 16,
                             &pool),
            KVRT_OK);
  kvrt_cache *first = makeCache(pool, desc);
  kvrt_cache *second = makeCache(pool, desc);
  ASSERT_TRUE(first && second);
  int32_t id = makeSequence(pool);
  kvrt::test::Tensor data(KVRT_DTYPE_F16, 5 * 2 * 32);
  EXPECT_EQ(kvrt_append(first, 1, &id, 5, data.data(), data.data(), nullptr),
            KVRT_OK);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(pool, &stats), KVRT_OK);
  EXPECT_EQ(stats.num_caches, 2);
  EXPECT_EQ(kvrt_pool_destroy(pool), KVRT_OK);
}

} // namespace
