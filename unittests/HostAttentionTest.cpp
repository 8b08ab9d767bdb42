//===- HostAttentionTest.cpp - The CPU reference attention ------*- C++ -*-===//
//
// kvrt_attention_host against the independent float64 reference of
// TestHelpers.h on random data, plus exact special cases and argument
// checking (shared with kvrt_attention_launch).
//
//===----------------------------------------------------------------------===//
#include "TestHelpers.h"

#include <cmath>
#include <tuple>

using namespace kvrt::test;

namespace {

/// Shapes of one random attention case.
struct AttentionCase {
  int numQHeads;
  int numKvHeads;
  int headDim;
  kvrt_dtype dtype;
  bool causal;
  int numTokens;
};

/// Keeps test names readable (gtest would otherwise print raw bytes).
void PrintTo(const AttentionCase &c, std::ostream *os) {
  *os << c.numQHeads << "/" << c.numKvHeads << " heads, d " << c.headDim << ", "
      << kvrt::dtypeName(c.dtype) << (c.causal ? ", causal" : "") << ", "
      << c.numTokens << " tokens";
}

std::string caseName(const ::testing::TestParamInfo<AttentionCase> &info) {
  const AttentionCase &c = info.param;
  return "q" + std::to_string(c.numQHeads) + "kv" +
         std::to_string(c.numKvHeads) + "d" + std::to_string(c.headDim) + "_" +
         kvrt::dtypeName(c.dtype) + (c.causal ? "_causal" : "_full") + "_t" +
         std::to_string(c.numTokens);
}

class HostAttentionRandomTest : public ::testing::TestWithParam<AttentionCase> {
};

TEST_P(HostAttentionRandomTest, MatchesFloat64Reference) {
  const AttentionCase &c = GetParam();
  const int pageSize = 16;
  // Final lengths, none a multiple of the page size but one.
  const std::vector<int> lengths = {37, 64, 101};
  const int batch = static_cast<int>(lengths.size());
  kvrt_cache_desc desc =
      makeDesc(c.numKvHeads, c.headDim, c.dtype, pageSize, 256);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc),
                          batch * c.numKvHeads * 8);
  ASSERT_TRUE(pool);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  ASSERT_NE(cache, nullptr);

  std::mt19937 rng(42 + c.headDim + c.numQHeads + c.numTokens);
  const int64_t tokenElements = int64_t(c.numKvHeads) * c.headDim;
  std::vector<int32_t> ids;
  std::vector<SequenceData> keys(batch), values(batch);
  // Prefill each sequence alone, then append the query tokens as one batch.
  for (int b = 0; b < batch; ++b) {
    ids.push_back(makeSequence(pool.get()));
    int prefix = lengths[b] - c.numTokens;
    Tensor k = randomTensor(c.dtype, prefix * tokenElements, rng);
    Tensor v = randomTensor(c.dtype, prefix * tokenElements, rng);
    ASSERT_EQ(
        kvrt_append(cache, 1, &ids[b], prefix, k.data(), v.data(), nullptr),
        KVRT_OK)
        << kvrt_last_error();
    keys[b] = toDoubles(k);
    values[b] = toDoubles(v);
  }
  Tensor k = randomTensor(c.dtype, batch * c.numTokens * tokenElements, rng);
  Tensor v = randomTensor(c.dtype, batch * c.numTokens * tokenElements, rng);
  ASSERT_EQ(kvrt_append(cache, batch, ids.data(), c.numTokens, k.data(),
                        v.data(), nullptr),
            KVRT_OK)
      << kvrt_last_error();
  std::vector<double> newKeys = toDoubles(k), newValues = toDoubles(v);
  const int64_t chunk = c.numTokens * tokenElements;
  for (int b = 0; b < batch; ++b) {
    keys[b].insert(keys[b].end(), newKeys.begin() + b * chunk,
                   newKeys.begin() + (b + 1) * chunk);
    values[b].insert(values[b].end(), newValues.begin() + b * chunk,
                     newValues.begin() + (b + 1) * chunk);
  }

  const int64_t queryElements =
      int64_t(batch) * c.numTokens * c.numQHeads * c.headDim;
  // Wide queries make the softmax peaked, which tests the max subtraction.
  Tensor queries = randomTensor(c.dtype, queryElements, rng, 2.0f);
  Tensor out(c.dtype, queryElements);
  out.poison();
  const float scale = 1.0f / std::sqrt(float(c.headDim));
  ASSERT_EQ(kvrt_attention_host(cache, batch, ids.data(), c.numTokens,
                                c.numQHeads, queries.data(), out.data(), scale,
                                c.causal),
            KVRT_OK)
      << kvrt_last_error();
  std::vector<double> expected =
      referenceAttention(keys, values, toDoubles(queries), c.numTokens,
                         c.numQHeads, c.numKvHeads, c.headDim, scale, c.causal);
  double error = relativeError(out, expected);
  EXPECT_LT(error, toleranceFor(c.dtype));
  RecordProperty("relative_error", std::to_string(error));
}

std::vector<AttentionCase> allCases() {
  std::vector<AttentionCase> cases;
  for (auto heads : {std::make_pair(32, 8), std::make_pair(8, 8)})
    for (int headDim : {64, 128})
      for (kvrt_dtype dtype : {KVRT_DTYPE_F32, KVRT_DTYPE_F16, KVRT_DTYPE_BF16})
        for (bool causal : {true, false})
          for (int tokens : {1, 5})
            cases.push_back(
                {heads.first, heads.second, headDim, dtype, causal, tokens});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, HostAttentionRandomTest,
                         ::testing::ValuesIn(allCases()), caseName);

/// A one-head f32 cache holding `length` tokens whose value row i is all
/// (i + 1) and whose keys are zero (so attention weights are uniform).
class HostAttentionExactTest : public ::testing::Test {
protected:
  void SetUp() override {
    desc = makeDesc(1, 16, KVRT_DTYPE_F32, 4, 64);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 16);
    ASSERT_TRUE(pool);
    cache = makeCache(pool.get(), desc);
    id = makeSequence(pool.get());
    Tensor keys(KVRT_DTYPE_F32, length * 16),
        values(KVRT_DTYPE_F32, length * 16);
    for (int i = 0; i < length; ++i)
      for (int d = 0; d < 16; ++d)
        values.set(i * 16 + d, float(i + 1));
    ASSERT_EQ(
        kvrt_append(cache, 1, &id, length, keys.data(), values.data(), nullptr),
        KVRT_OK);
  }

  static constexpr int length = 6;
  kvrt_cache_desc desc{};
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
  int32_t id = -1;
};

TEST_F(HostAttentionExactTest, CausalMaskAndUniformWeights) {
  // All 6 tokens are queries: query t sees keys 0..t, whose values average
  // to (t + 2) / 2.
  std::mt19937 rng(3);
  Tensor queries = randomTensor(KVRT_DTYPE_F32, length * 16, rng);
  Tensor out(KVRT_DTYPE_F32, length * 16);
  out.poison();
  ASSERT_EQ(kvrt_attention_host(cache, 1, &id, length, 1, queries.data(),
                                out.data(), 0.5f, 1),
            KVRT_OK)
      << kvrt_last_error();
  for (int t = 0; t < length; ++t)
    for (int d = 0; d < 16; ++d)
      EXPECT_FLOAT_EQ(out.at(t * 16 + d), (t + 2) / 2.0f) << t;
  // Without the mask every query sees all 6 tokens: mean 3.5.
  ASSERT_EQ(kvrt_attention_host(cache, 1, &id, length, 1, queries.data(),
                                out.data(), 0.5f, 0),
            KVRT_OK);
  for (int i = 0; i < length * 16; ++i)
    EXPECT_FLOAT_EQ(out.at(i), 3.5f);
}

TEST_F(HostAttentionExactTest, AdditiveMaskWeightsKeys) {
  // Keys are zero, so the weights are exp(mask): query t of 2 gets mask
  // log(k + 1) on key k (weights k + 1) for t = 0, and -inf on odd keys
  // plus the causal rule for t = 1 (query 1 is slot 5: all keys visible).
  std::mt19937 rng(5);
  const int tokens = 2;
  Tensor queries = randomTensor(KVRT_DTYPE_F32, tokens * 16, rng);
  std::vector<float> mask(tokens * length);
  for (int k = 0; k < length; ++k) {
    mask[k] = std::log(float(k + 1));
    mask[length + k] = k % 2 ? -INFINITY : 0.0f;
  }
  Tensor out(KVRT_DTYPE_F32, tokens * 16);
  out.poison();
  ASSERT_EQ(kvrt_attention_host_masked(cache, 1, &id, tokens, 1,
                                       queries.data(), out.data(), 0.5f, 1,
                                       mask.data(), length),
            KVRT_OK)
      << kvrt_last_error();
  // Query 0 is slot 4 (causal: keys 0..4): sum (k+1)^2 / sum (k+1) over
  // k = 0..4 = 55 / 15.
  for (int d = 0; d < 16; ++d)
    EXPECT_NEAR(out.at(d), 55.0f / 15.0f, 1e-5f);
  // Query 1: keys 0, 2, 4 with values 1, 3, 5.
  for (int d = 0; d < 16; ++d)
    EXPECT_NEAR(out.at(16 + d), 3.0f, 1e-5f);

  // Every key masked out: zeros, not NaN.
  std::vector<float> none(length, -INFINITY);
  ASSERT_EQ(kvrt_attention_host_masked(cache, 1, &id, 1, 1, queries.data(),
                                       out.data(), 0.5f, 0, none.data(),
                                       length),
            KVRT_OK);
  for (int d = 0; d < 16; ++d)
    EXPECT_EQ(out.at(d), 0.0f);
}

TEST_F(HostAttentionExactTest, KeyScoresAccumulateProbabilities) {
  // Keys are zero: causal query t (all 6 tokens are queries) gives each of
  // keys 0..t probability 1 / (t + 1); key j collects sum_{t >= j} 1/(t+1).
  std::mt19937 rng(4);
  Tensor queries = randomTensor(KVRT_DTYPE_F32, length * 16, rng);
  Tensor out(KVRT_DTYPE_F32, length * 16);
  std::vector<float> scores(8, 0.0f);
  for (int call = 1; call <= 2; ++call) {
    ASSERT_EQ(kvrt_attention_host_scored(cache, 1, &id, length, 1,
                                         queries.data(), out.data(), 0.5f, 1,
                                         scores.data(), 8),
              KVRT_OK)
        << kvrt_last_error();
    for (int j = 0; j < length; ++j) {
      float want = 0.0f;
      for (int t = j; t < length; ++t)
        want += 1.0f / float(t + 1);
      EXPECT_NEAR(scores[j], call * want, 1e-5f) << j; // accumulated
    }
    EXPECT_EQ(scores[6], 0.0f);
    EXPECT_EQ(scores[7], 0.0f);
  }
  EXPECT_KVRT_ERROR(kvrt_attention_host_scored(cache, 1, &id, 1, 1,
                                               queries.data(), out.data(), 1,
                                               0, scores.data(), 5),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "key_scores_stride 5 is below the longest sequence of "
                    "the batch (6 tokens)");
  EXPECT_KVRT_ERROR(kvrt_attention_host_scored(cache, 1, &id, 1, 1,
                                               queries.data(), out.data(), 1,
                                               0, nullptr, 8),
                    KVRT_ERROR_INVALID_ARGUMENT, "key_scores is null");
}

TEST_F(HostAttentionExactTest, MaskMustCoverTheSequence) {
  Tensor queries(KVRT_DTYPE_F32, 16), out(KVRT_DTYPE_F32, 16);
  std::vector<float> mask(length + 1, 0.0f);
  EXPECT_KVRT_ERROR(
      kvrt_attention_host_masked(cache, 1, &id, 1, 1, queries.data(),
                                 out.data(), 1, 0, mask.data(), length + 1),
      KVRT_ERROR_MISMATCH, "holds 6 tokens but the mask covers 7 keys");
  EXPECT_KVRT_ERROR(kvrt_attention_host_masked(cache, 1, &id, 1, 1,
                                               queries.data(), out.data(), 1,
                                               0, nullptr, length),
                    KVRT_ERROR_INVALID_ARGUMENT, "mask is null");
  EXPECT_KVRT_ERROR(
      kvrt_attention_host_masked(cache, 1, &id, 2, 1, queries.data(),
                                 out.data(), 1, 0, mask.data(), 1),
      KVRT_ERROR_INVALID_ARGUMENT, "the mask covers 1 keys, fewer than the 2");
}

TEST_F(HostAttentionExactTest, RejectsBadArguments) {
  Tensor queries(KVRT_DTYPE_F32, 64 * 16), out(KVRT_DTYPE_F32, 64 * 16);
  void *q = queries.data(), *o = out.data();
  EXPECT_KVRT_ERROR(kvrt_attention_host(nullptr, 1, &id, 1, 1, q, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 0, &id, 1, 1, q, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "batch must be positive");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, nullptr, 1, 1, q, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "seq_ids must not be null");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 0, 1, q, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "num_tokens must be positive");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 0, q, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "num_q_heads must be positive");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 1, nullptr, o, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "queries must not be null");
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 1, q, nullptr, 1, 0),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_attention_host(cache, 1, &id, length + 1, 1, q, o, 1, 0),
      KVRT_ERROR_INVALID_ARGUMENT, "holds 6 tokens, fewer than num_tokens 7");
  int32_t unknown = 1000;
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &unknown, 1, 1, q, o, 1, 0),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 1000");
}

TEST_F(HostAttentionExactTest, RejectsScalesWithoutASoftmax) {
  // Zero, negative, infinite and NaN scales, on every host entry point.
  Tensor queries(KVRT_DTYPE_F32, 16), out(KVRT_DTYPE_F32, 16);
  void *q = queries.data(), *o = out.data();
  std::vector<float> mask(length, 0.0f), scores(length, 0.0f);
  for (float scale : {0.0f, -0.25f, INFINITY, -INFINITY, NAN}) {
    EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 1, q, o, scale, 0),
                      KVRT_ERROR_INVALID_ARGUMENT,
                      "must be positive and finite");
    EXPECT_KVRT_ERROR(kvrt_attention_host_masked(cache, 1, &id, 1, 1, q, o,
                                                 scale, 1, mask.data(),
                                                 length),
                      KVRT_ERROR_INVALID_ARGUMENT,
                      "must be positive and finite");
    EXPECT_KVRT_ERROR(kvrt_attention_host_scored(cache, 1, &id, 1, 1, q, o,
                                                 scale, 0, scores.data(),
                                                 length),
                      KVRT_ERROR_INVALID_ARGUMENT,
                      "must be positive and finite");
  }
  EXPECT_KVRT_ERROR(kvrt_attention_host(cache, 1, &id, 1, 1, q, o, -0.25f, 0),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "kvrt_attention_host: scale -0.25 must be positive and "
                    "finite");
  for (float score : scores)
    EXPECT_EQ(score, 0.0f); // nothing accumulated by a refused call
  // A tiny positive scale is still a scale.
  EXPECT_EQ(kvrt_attention_host(cache, 1, &id, 1, 1, q, o, 1e-30f, 0), KVRT_OK)
      << kvrt_last_error();
}

TEST(HostAttentionTest, QueryHeadsMustBeMultipleOfKvHeads) {
  kvrt_cache_desc desc = makeDesc(4, 16, KVRT_DTYPE_F32, 4, 16);
  PoolPtr pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 8);
  kvrt_cache *cache = makeCache(pool.get(), desc);
  int32_t id = makeSequence(pool.get());
  Tensor kv(KVRT_DTYPE_F32, 4 * 16);
  ASSERT_EQ(kvrt_append(cache, 1, &id, 1, kv.data(), kv.data(), nullptr),
            KVRT_OK);
  Tensor q(KVRT_DTYPE_F32, 6 * 16), out(KVRT_DTYPE_F32, 6 * 16);
  EXPECT_KVRT_ERROR(
      kvrt_attention_host(cache, 1, &id, 1, 6, q.data(), out.data(), 1, 1),
      KVRT_ERROR_INVALID_ARGUMENT,
      "num_q_heads 6 is not a multiple of the cache's 4 kv heads");
}

/// A host cache of one kv head holding one token: what the CUDA entry
/// points must refuse.
class OneTokenHostCacheTest : public ::testing::Test {
protected:
  void SetUp() override {
    desc = makeDesc(1, 16, KVRT_DTYPE_F32, 4, 16);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 8);
    ASSERT_TRUE(pool);
    cache = makeCache(pool.get(), desc);
    id = makeSequence(pool.get());
    Tensor kv(KVRT_DTYPE_F32, 16);
    ASSERT_EQ(kvrt_append(cache, 1, &id, 1, kv.data(), kv.data(), nullptr),
              KVRT_OK);
  }

  kvrt_cache_desc desc{};
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
  int32_t id = -1;
};

TEST_F(OneTokenHostCacheTest, LaunchNeedsCudaPool) {
  Tensor q(KVRT_DTYPE_F32, 16), out(KVRT_DTYPE_F32, 16);
  int dummyKernel = 0;
  kvrt_status status =
      kvrt_attention_launch(cache, 1, &id, 1, 1, q.data(), out.data(), 1.0f, 1,
                            &dummyKernel, 128, nullptr);
  EXPECT_EQ(status, KVRT_ERROR_UNSUPPORTED) << kvrt_last_error();
  if (kvrt_has_cuda())
    EXPECT_NE(std::string(kvrt_last_error()).find("host pool"),
              std::string::npos)
        << kvrt_last_error();
  else
    EXPECT_NE(std::string(kvrt_last_error()).find("built without CUDA"),
              std::string::npos)
        << kvrt_last_error();
}

TEST_F(OneTokenHostCacheTest, LaunchChecksTheScaleBeforeThePool) {
  // The scale is an argument error, reported before the pool's device.
  if (!kvrt_has_cuda())
    GTEST_SKIP() << "kvrt built without CUDA: launches stop at that";
  Tensor q(KVRT_DTYPE_F32, 16), out(KVRT_DTYPE_F32, 16);
  int dummyKernel = 0;
  float scores[1] = {0.0f};
  for (float scale : {0.0f, -1.0f, INFINITY, NAN}) {
    EXPECT_KVRT_ERROR(kvrt_attention_launch(cache, 1, &id, 1, 1, q.data(),
                                            out.data(), scale, 1, &dummyKernel,
                                            128, nullptr),
                      KVRT_ERROR_INVALID_ARGUMENT,
                      "must be positive and finite");
    EXPECT_KVRT_ERROR(kvrt_attention_launch_scored(
                          cache, 1, &id, 1, 1, q.data(), out.data(), scale, 1,
                          &dummyKernel, 128, scores, 1, nullptr),
                      KVRT_ERROR_INVALID_ARGUMENT,
                      "must be positive and finite");
  }
}

TEST_F(OneTokenHostCacheTest, PlanNeedsCudaPoolAndChecksArguments) {
  int dummyKernel = 0;
  kvrt_attention_plan_info info;
  if (!kvrt_has_cuda()) {
    EXPECT_KVRT_ERROR(kvrt_attention_plan(cache, 1, &id, 1, 1, 1, &dummyKernel,
                                          128, 0, &info),
                      KVRT_ERROR_UNSUPPORTED, "built without CUDA");
    return;
  }
  EXPECT_KVRT_ERROR(
      kvrt_attention_plan(cache, 1, &id, 1, 1, 1, &dummyKernel, 128, 0, &info),
      KVRT_ERROR_UNSUPPORTED, "host pool");
  EXPECT_KVRT_ERROR(kvrt_attention_plan(cache, 1, &id, 1, 1, 1, &dummyKernel,
                                        128, 0, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "out must not be null");
  EXPECT_KVRT_ERROR(kvrt_attention_plan(nullptr, 1, &id, 1, 1, 1, &dummyKernel,
                                        128, 0, &info),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_attention_plan(cache, 1, &id, 2, 1, 1, &dummyKernel, 128, 0, &info),
      KVRT_ERROR_INVALID_ARGUMENT, "holds 1 tokens, fewer than num_tokens 2");
}

} // namespace
