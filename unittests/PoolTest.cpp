//===- PoolTest.cpp - Pools, sequences and errors ---------------*- C++ -*-===//
//
// Pool creation rules, statistics, sequence ids, and the error reporting
// conventions (status names, thread-local messages).
//
//===----------------------------------------------------------------------===//
#include "TestHelpers.h"

#include <cstring>
#include <thread>

using namespace kvrt::test;

namespace {

TEST(PoolTest, CreateHostPoolReportsStats) {
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 4096, 10);
  ASSERT_TRUE(pool);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.device, KVRT_DEVICE_HOST);
  EXPECT_EQ(stats.page_bytes, 4096);
  EXPECT_EQ(stats.pages_total, 10);
  EXPECT_EQ(stats.pages_free, 10);
  EXPECT_EQ(stats.num_sequences, 0);
  EXPECT_EQ(stats.num_caches, 0);
}

TEST(PoolTest, DestroyNullIsNoOp) {
  EXPECT_EQ(kvrt_pool_destroy(nullptr), KVRT_OK);
  EXPECT_EQ(kvrt_cache_destroy(nullptr), KVRT_OK);
}

TEST(PoolTest, RejectsBadArguments) {
  kvrt_pool *pool = nullptr;
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, 256, 4, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_pool_create(static_cast<kvrt_device>(7), 256, 4, &pool),
      KVRT_ERROR_INVALID_ARGUMENT, "device 7 is not a kvrt_device");
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, 0, 4, &pool),
                    KVRT_ERROR_INVALID_ARGUMENT, "page_bytes must be positive");
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, -16, 4, &pool),
                    KVRT_ERROR_INVALID_ARGUMENT, "page_bytes must be positive");
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, 100, 4, &pool),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "page_bytes 100 is not a multiple of 16");
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, 256, 0, &pool),
                    KVRT_ERROR_INVALID_ARGUMENT, "num_pages must be positive");
  EXPECT_KVRT_ERROR(
      kvrt_pool_create(KVRT_DEVICE_HOST, 256, int64_t(1) << 32, &pool),
      KVRT_ERROR_INVALID_ARGUMENT, "page ids are 32-bit");
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_HOST, int64_t(1) << 40,
                                     int64_t(1) << 30, &pool),
                    KVRT_ERROR_INVALID_ARGUMENT, "overflow");
  EXPECT_EQ(pool, nullptr);
}

TEST(PoolTest, HugeHostPoolIsOutOfMemory) {
  kvrt_pool *pool = nullptr;
  // 4 pages of 2^60 bytes: far beyond any machine, but no 64-bit overflow.
  // (Under ASan this needs allocator_may_return_null=1, set by CMake.)
  kvrt_status status =
      kvrt_pool_create(KVRT_DEVICE_HOST, int64_t(1) << 60, 4, &pool);
  EXPECT_EQ(status, KVRT_ERROR_OUT_OF_MEMORY) << kvrt_last_error();
  EXPECT_EQ(pool, nullptr);
}

TEST(PoolTest, CudaPoolWithoutCudaIsUnsupported) {
  if (kvrt_has_cuda())
    GTEST_SKIP() << "this kvrt was built with CUDA";
  kvrt_pool *pool = nullptr;
  EXPECT_KVRT_ERROR(kvrt_pool_create(KVRT_DEVICE_CUDA, 256, 4, &pool),
                    KVRT_ERROR_UNSUPPORTED, "built without CUDA");
  EXPECT_EQ(pool, nullptr);
}

TEST(PoolTest, StatsRejectNulls) {
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 256, 1);
  kvrt_pool_stats stats;
  EXPECT_KVRT_ERROR(kvrt_pool_get_stats(nullptr, &stats),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  EXPECT_KVRT_ERROR(kvrt_pool_get_stats(pool.get(), nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
}

TEST(PoolTest, StatusNames) {
  EXPECT_STREQ(kvrt_status_name(KVRT_OK), "KVRT_OK");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_INVALID_ARGUMENT),
               "KVRT_ERROR_INVALID_ARGUMENT");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_OUT_OF_MEMORY),
               "KVRT_ERROR_OUT_OF_MEMORY");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_CAPACITY), "KVRT_ERROR_CAPACITY");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_UNKNOWN_SEQUENCE),
               "KVRT_ERROR_UNKNOWN_SEQUENCE");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_MISMATCH), "KVRT_ERROR_MISMATCH");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_UNSUPPORTED),
               "KVRT_ERROR_UNSUPPORTED");
  EXPECT_STREQ(kvrt_status_name(KVRT_ERROR_CUDA), "KVRT_ERROR_CUDA");
  EXPECT_STREQ(kvrt_status_name(99), "KVRT_ERROR_UNKNOWN_STATUS");
}

TEST(PoolTest, DtypeSizes) {
  EXPECT_EQ(kvrt_dtype_size(KVRT_DTYPE_F16), 2u);
  EXPECT_EQ(kvrt_dtype_size(KVRT_DTYPE_BF16), 2u);
  EXPECT_EQ(kvrt_dtype_size(KVRT_DTYPE_F32), 4u);
  EXPECT_EQ(kvrt_dtype_size(static_cast<kvrt_dtype>(3)), 0u);
}

TEST(PoolTest, LastErrorIsPerThread) {
  kvrt_pool_get_stats(nullptr, nullptr);
  std::string here = kvrt_last_error();
  std::string there;
  std::thread worker([&] {
    there = kvrt_last_error();
    kvrt_sequence_create(nullptr, nullptr);
  });
  worker.join();
  EXPECT_EQ(there, "");
  EXPECT_EQ(std::string(kvrt_last_error()), here);
}

TEST(SequenceTest, CreateAndDestroy) {
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 256, 4);
  int32_t a = makeSequence(pool.get());
  int32_t b = makeSequence(pool.get());
  EXPECT_GE(a, 0);
  EXPECT_GE(b, 0);
  EXPECT_NE(a, b);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.num_sequences, 2);

  EXPECT_EQ(kvrt_sequence_destroy(pool.get(), a), KVRT_OK);
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.num_sequences, 1);
  EXPECT_KVRT_ERROR(kvrt_sequence_destroy(pool.get(), a),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence");
  EXPECT_KVRT_ERROR(kvrt_sequence_destroy(pool.get(), 12345),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "12345");
  EXPECT_KVRT_ERROR(kvrt_sequence_destroy(pool.get(), -1),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "-1");

  // Freed ids may come back; a live id never is handed out twice.
  int32_t c = makeSequence(pool.get());
  EXPECT_NE(c, b);
  ASSERT_EQ(kvrt_pool_get_stats(pool.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.num_sequences, 2);
}

TEST(SequenceTest, RejectsNulls) {
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, 256, 4);
  int32_t id;
  EXPECT_KVRT_ERROR(kvrt_sequence_create(nullptr, &id),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
  EXPECT_KVRT_ERROR(kvrt_sequence_create(pool.get(), nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out_id must not be null");
  EXPECT_KVRT_ERROR(kvrt_sequence_destroy(nullptr, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "pool must not be null");
}

} // namespace
