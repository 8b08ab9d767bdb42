//===- EvictionTest.cpp - Eviction, replacement, selection ------*- C++ -*-===//
//
// kvrt_append_evict, kvrt_cache_replace_slot and kvrt_cache_select on host
// pools: contents and positions after each, pages freed, copy on write of
// pages shared with a fork, every error path, and reference attention over
// heads left with different lengths.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"

using namespace kvrt::test;

namespace {

/// Rows are f32 [head_dim = 4]: a token's key row is {position, head, seq,
/// 1}, its value row {position, head, seq, 2}, so contents identify tokens.
class EvictionTest : public ::testing::Test {
protected:
  void init(int32_t numHeads, int32_t pageSize, int64_t numPages,
            int64_t capacity = 64) {
    desc = makeDesc(numHeads, 4, KVRT_DTYPE_F32, pageSize, capacity);
    pool = makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), numPages);
    ASSERT_TRUE(pool);
    cache = makeCache(pool.get(), desc);
    ASSERT_NE(cache, nullptr);
  }

  /// Dense rows for `tokens` tokens of sequence `id` from `position` on.
  Tensor rows(int32_t id, int64_t position, int32_t tokens, float kind) {
    Tensor tensor(KVRT_DTYPE_F32, int64_t(tokens) * desc.num_kv_heads * 4);
    for (int32_t t = 0; t < tokens; ++t)
      for (int32_t h = 0; h < desc.num_kv_heads; ++h) {
        int64_t base = (int64_t(t) * desc.num_kv_heads + h) * 4;
        tensor.set(base, float(position + t));
        tensor.set(base + 1, float(h));
        tensor.set(base + 2, float(id));
        tensor.set(base + 3, kind);
      }
    return tensor;
  }

  kvrt_status append(int32_t id, int32_t tokens) {
    int64_t length = -1;
    EXPECT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
    Tensor keys = rows(id, length, tokens, 1),
           values = rows(id, length, tokens, 2);
    return kvrt_append(cache, 1, &id, tokens, keys.data(), values.data(),
                       nullptr);
  }

  /// Expects head `h` of `id` to hold tokens of `owner` at `positions`.
  void expectHead(int32_t id, int32_t h, const std::vector<int32_t> &positions,
                  int32_t owner = -1) {
    if (owner < 0)
      owner = id;
    EXPECT_EQ(headPositions(cache, id, h), positions) << "head " << h;
    HeadRows keys = readHeads(cache, id, false);
    HeadRows values = readHeads(cache, id, true);
    ASSERT_EQ(keys[h].size(), positions.size());
    for (size_t slot = 0; slot < positions.size(); ++slot) {
      float key[4], value[4];
      std::memcpy(key, keys[h][slot].data(), sizeof(key));
      std::memcpy(value, values[h][slot].data(), sizeof(value));
      EXPECT_EQ(key[0], float(positions[slot])) << "slot " << slot;
      EXPECT_EQ(key[1], float(h));
      EXPECT_EQ(key[2], float(owner));
      EXPECT_EQ(key[3], 1.0f);
      EXPECT_EQ(value[0], float(positions[slot]));
      EXPECT_EQ(value[3], 2.0f);
    }
  }

  kvrt_cache_desc desc{};
  PoolPtr pool;
  kvrt_cache *cache = nullptr;
};

std::vector<int32_t> iota(int32_t count, int32_t first = 0) {
  std::vector<int32_t> values(static_cast<size_t>(count));
  for (int32_t i = 0; i < count; ++i)
    values[i] = first + i;
  return values;
}

TEST_F(EvictionTest, AppendEvictReplacesSlotsAndKeepsPositions) {
  init(2, 4, 16, 6);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append(id, 5), KVRT_OK);
  const int64_t freeBefore = freePages(pool.get());
  // Head 0 appends (below its capacity), head 1 evicts slot 2.
  const int32_t slots[] = {-1, 2};
  Tensor keys = rows(id, 5, 1, 1), values = rows(id, 5, 1, 2);
  ASSERT_EQ(kvrt_append_evict(cache, 1, &id, keys.data(), values.data(), slots,
                              nullptr),
            KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(headLengths(cache, id), (std::vector<int64_t>{6, 5}));
  expectHead(id, 0, iota(6));
  expectHead(id, 1, {0, 1, 5, 3, 4});
  EXPECT_EQ(freePages(pool.get()), freeBefore); // no page moved or taken
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
  EXPECT_EQ(length, 6);

  // Head 0 is now at capacity 6: it must evict; head 1 appends into a
  // slot that needs a new page (slot 5 is on page 1, which exists).
  const int32_t full[] = {-1, -1};
  Tensor more = rows(id, 6, 1, 1);
  EXPECT_KVRT_ERROR(
      kvrt_append_evict(cache, 1, &id, more.data(), more.data(), full, nullptr),
      KVRT_ERROR_CAPACITY, "would hold 7 tokens");
  const int32_t next[] = {0, -1};
  Tensor nextValues = rows(id, 6, 1, 2);
  ASSERT_EQ(kvrt_append_evict(cache, 1, &id, more.data(), nextValues.data(),
                              next, nullptr),
            KVRT_OK);
  expectHead(id, 0, {6, 1, 2, 3, 4, 5});
  expectHead(id, 1, {0, 1, 5, 3, 4, 6});
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, AppendEvictErrorsLeaveStateUnchanged) {
  init(2, 4, 16);
  int32_t a = makeSequence(pool.get()), b = makeSequence(pool.get());
  ASSERT_EQ(append(a, 3), KVRT_OK);
  Tensor data = rows(a, 3, 2, 1);
  const int32_t badSlot[] = {-1, -1, 3, 0};
  const int32_t ids[] = {b, a};
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 2, ids, data.data(), data.data(),
                                      badSlot, nullptr),
                    KVRT_ERROR_OUT_OF_RANGE,
                    "slots[2] = 3, but head 0 of sequence " +
                        std::to_string(a) + " holds 3 tokens");
  const int32_t dup[] = {a, a};
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 2, dup, data.data(), data.data(),
                                      badSlot, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "are both sequence");
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 1, &a, data.data(), data.data(),
                                      nullptr, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "slots must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_append_evict(cache, 1, &a, nullptr, data.data(), badSlot, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "keys must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_append_evict(cache, 1, &a, data.data(), nullptr, badSlot, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "values must not be null");
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 0, &a, data.data(), data.data(),
                                      badSlot, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "batch must be positive");
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 1, nullptr, data.data(),
                                      data.data(), badSlot, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "seq_ids must not be null");
  EXPECT_KVRT_ERROR(kvrt_append_evict(nullptr, 1, &a, data.data(), data.data(),
                                      badSlot, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  const int32_t unknown = 42;
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 1, &unknown, data.data(),
                                      data.data(), badSlot, nullptr),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 42 does not exist");
  expectHead(a, 0, iota(3));
  EXPECT_EQ(headLengths(cache, b), (std::vector<int64_t>{0, 0}));
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, AppendEvictOutOfPagesTakesNothing) {
  init(2, 4, 3);
  int32_t a = makeSequence(pool.get()), b = makeSequence(pool.get());
  ASSERT_EQ(append(a, 4), KVRT_OK); // 2 pages, one free
  const int32_t ids[] = {a, b};
  const int32_t slots[] = {-1, -1, -1, -1}; // a needs 2 pages, b 2
  Tensor data = rows(a, 4, 2, 1);
  EXPECT_KVRT_ERROR(kvrt_append_evict(cache, 2, ids, data.data(), data.data(),
                                      slots, nullptr),
                    KVRT_ERROR_OUT_OF_MEMORY,
                    "the batch needs 4 pages, 1 free");
  EXPECT_EQ(freePages(pool.get()), 1);
  expectHead(a, 1, iota(4));
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, EvictingWritesCopySharedPages) {
  init(1, 4, 16);
  int32_t parent = makeSequence(pool.get());
  ASSERT_EQ(append(parent, 8), KVRT_OK); // two full pages
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 14); // both pages shared
  const int32_t slot[] = {5};
  Tensor keys = rows(child, 8, 1, 1), values = rows(child, 8, 1, 2);
  ASSERT_EQ(kvrt_append_evict(cache, 1, &child, keys.data(), values.data(),
                              slot, nullptr),
            KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 13); // page 1 copied for the child
  expectHead(parent, 0, iota(8));
  std::vector<int32_t> positions = iota(8);
  positions[5] = 8;
  EXPECT_EQ(headPositions(cache, child, 0), positions);
  HeadRows childKeys = readHeads(cache, child, false);
  float key[4];
  std::memcpy(key, childKeys[0][5].data(), sizeof(key));
  EXPECT_EQ(key[0], 8.0f);
  EXPECT_EQ(key[2], float(child));
  std::memcpy(key, childKeys[0][4].data(), sizeof(key));
  EXPECT_EQ(key[2], float(parent)); // the rest of the copied page
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, ReplaceSlot) {
  init(2, 4, 16);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append(id, 6), KVRT_OK);
  Tensor keys = rows(id, 40, 1, 1), values = rows(id, 40, 1, 2);
  // Row of head 1 of the single token: offset 4 floats.
  const float *key = reinterpret_cast<const float *>(keys.data()) + 4;
  const float *value = reinterpret_cast<const float *>(values.data()) + 4;
  ASSERT_EQ(kvrt_cache_replace_slot(cache, id, 1, 4, key, value, 40, nullptr),
            KVRT_OK)
      << kvrt_last_error();
  expectHead(id, 1, {0, 1, 2, 3, 40, 5});
  expectHead(id, 0, iota(6));
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
  EXPECT_EQ(length, 41); // the next token takes position 41
  ASSERT_EQ(append(id, 1), KVRT_OK);
  EXPECT_EQ(headPositions(cache, id, 0),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 41}));

  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 1, 0, key, value, 5, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "position 5 is already held by slot 5");
  // Replacing a slot with its own position is fine.
  EXPECT_EQ(kvrt_cache_replace_slot(cache, id, 1, 4, key, value, 40, nullptr),
            KVRT_OK);
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 1, 7, key, value, 50, nullptr),
      KVRT_ERROR_OUT_OF_RANGE, "slot 7 is not in [0, 7)");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 1, -1, key, value, 50, nullptr),
      KVRT_ERROR_OUT_OF_RANGE, "slot -1");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 2, 0, key, value, 50, nullptr),
      KVRT_ERROR_OUT_OF_RANGE, "head 2 is not in [0, 2)");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 0, 0, key, value, -3, nullptr),
      KVRT_ERROR_OUT_OF_RANGE, "position -3 is negative");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 0, 0, nullptr, value, 50, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "key must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, id, 0, 0, key, nullptr, 50, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "value must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(nullptr, id, 0, 0, key, value, 50, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, 9, 0, 0, key, value, 50, nullptr),
      KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 9");
  int32_t empty = makeSequence(pool.get());
  EXPECT_KVRT_ERROR(
      kvrt_cache_replace_slot(cache, empty, 0, 0, key, value, 0, nullptr),
      KVRT_ERROR_OUT_OF_RANGE, "slot 0 is not in [0, 0)");
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, ReplaceSlotCopiesSharedPageAndFailsCleanlyWithoutPages) {
  init(1, 4, 2);
  int32_t parent = makeSequence(pool.get());
  ASSERT_EQ(append(parent, 8), KVRT_OK); // both pages of the pool
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  Tensor keys = rows(child, 9, 1, 1);
  EXPECT_KVRT_ERROR(kvrt_cache_replace_slot(cache, child, 0, 1, keys.data(),
                                            keys.data(), 9, nullptr),
                    KVRT_ERROR_OUT_OF_MEMORY,
                    "the copy on write needs 1 pages, 0 free");
  expectHead(child, 0, iota(8), parent);
  // Once the parent is gone the child owns the pages and writes in place.
  ASSERT_EQ(kvrt_sequence_destroy(pool.get(), parent), KVRT_OK);
  Tensor values = rows(child, 9, 1, 2);
  ASSERT_EQ(kvrt_cache_replace_slot(cache, child, 0, 1, keys.data(),
                                    values.data(), 9, nullptr),
            KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 0);
  std::vector<int32_t> positions = iota(8);
  positions[1] = 9;
  EXPECT_EQ(headPositions(cache, child, 0), positions);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, SelectCompactsEachHeadAndFreesPages) {
  init(3, 4, 32);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append(id, 11), KVRT_OK); // 3 pages per head
  EXPECT_EQ(freePages(pool.get()), 32 - 9);
  // Head 0 keeps 5 scattered slots, head 1 a prefix of 4, head 2 nothing.
  const int32_t indptr[] = {0, 5, 9, 9};
  const int32_t kept[] = {0, 3, 4, 9, 10, 0, 1, 2, 3};
  ASSERT_EQ(kvrt_cache_select(cache, id, indptr, kept, nullptr), KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(headLengths(cache, id), (std::vector<int64_t>{5, 4, 0}));
  expectHead(id, 0, {0, 3, 4, 9, 10});
  expectHead(id, 1, iota(4));
  expectHead(id, 2, {});
  EXPECT_EQ(freePages(pool.get()), 32 - 3); // 2 + 1 + 0 pages
  int64_t length = -1;
  ASSERT_EQ(kvrt_cache_sequence_length(cache, id, &length), KVRT_OK);
  EXPECT_EQ(length, 11);
  // Decode continues at position 11 on every head.
  ASSERT_EQ(append(id, 2), KVRT_OK);
  expectHead(id, 0, {0, 3, 4, 9, 10, 11, 12});
  expectHead(id, 1, {0, 1, 2, 3, 11, 12});
  expectHead(id, 2, {11, 12});
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, SelectCopiesSharedPagesItWrites) {
  init(1, 4, 16);
  int32_t parent = makeSequence(pool.get());
  ASSERT_EQ(append(parent, 8), KVRT_OK);
  int32_t child = -1;
  ASSERT_EQ(kvrt_sequence_fork(pool.get(), parent, nullptr, &child), KVRT_OK);
  // A prefix of 6 leaves page 1 partly filled: it is copied although
  // nothing moves, so the fork's full page stays intact and unshared
  // pages alone are ever appended to.
  const int32_t indptr[] = {0, 6};
  const int32_t kept[] = {0, 1, 2, 3, 4, 5};
  ASSERT_EQ(kvrt_cache_select(cache, child, indptr, kept, nullptr), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 13);
  ASSERT_EQ(append(child, 1), KVRT_OK);
  expectHead(parent, 0, iota(8));
  EXPECT_EQ(headPositions(cache, child, 0),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 8}));
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST_F(EvictionTest, SelectRejectsBadSlotLists) {
  init(2, 4, 16);
  int32_t id = makeSequence(pool.get());
  ASSERT_EQ(append(id, 6), KVRT_OK);
  const int32_t kept[] = {0, 2, 1, 7};
  const int32_t startsAtOne[] = {1, 2, 3};
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, startsAtOne, kept, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "kept_indptr[0] is 1, not 0");
  const int32_t decreasing[] = {0, 3, 2};
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, decreasing, kept, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "kept_indptr decreases from 3 to 2 at head 1");
  const int32_t unsorted[] = {0, 3, 3};
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, unsorted, kept, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "kept slots of head 0 are not strictly increasing (1 "
                    "after 2)");
  const int32_t outOfRange[] = {0, 0, 1};
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, outOfRange, kept + 3, nullptr),
                    KVRT_ERROR_OUT_OF_RANGE,
                    "kept slot 7 of head 1 is not in [0, 6)");
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, unsorted, nullptr, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "kept_slots must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, id, nullptr, kept, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT,
                    "kept_indptr must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_select(nullptr, id, unsorted, kept, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "cache must not be null");
  EXPECT_KVRT_ERROR(kvrt_cache_select(cache, 5, unsorted, kept, nullptr),
                    KVRT_ERROR_UNKNOWN_SEQUENCE, "sequence 5");
  expectHead(id, 0, iota(6));
  expectHead(id, 1, iota(6));
  // Empty lists need no slot array; a sequence that never appended has
  // nothing to select.
  const int32_t none[] = {0, 0, 0};
  int32_t fresh = makeSequence(pool.get());
  EXPECT_EQ(kvrt_cache_select(cache, fresh, none, nullptr, nullptr), KVRT_OK);
  EXPECT_EQ(kvrt_cache_select(cache, id, none, nullptr, nullptr), KVRT_OK);
  EXPECT_EQ(freePages(pool.get()), 16);
  EXPECT_TRUE(checkInvariants(pool.get()));
}

TEST(PerHeadAttentionTest, HostReferenceMatchesFloat64) {
  // Heads end with different lengths (one with none): every query of a
  // head attends over that head's slots only.
  for (int causal = 0; causal < 2; ++causal)
    for (int numTokens : {1, 3}) {
      kvrt_cache_desc desc = makeDesc(4, 32, KVRT_DTYPE_F32, 8, 256);
      PoolPtr pool =
          makePool(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 256);
      kvrt_cache *cache = makeCache(pool.get(), desc);
      std::mt19937 rng(11 + causal + numTokens);
      std::vector<int32_t> ids;
      for (int length : {40, 17}) {
        int32_t id = makeSequence(pool.get());
        ids.push_back(id);
        Tensor keys = randomTensor(KVRT_DTYPE_F32, length * 4 * 32, rng);
        Tensor values = randomTensor(KVRT_DTYPE_F32, length * 4 * 32, rng);
        ASSERT_EQ(kvrt_append(cache, 1, &id, length, keys.data(), values.data(),
                              nullptr),
                  KVRT_OK);
        // Keep every second slot in head 0, the last 9 in head 1, a
        // prefix of 2 in head 2, nothing in head 3.
        std::vector<int32_t> indptr = {0}, kept;
        for (int32_t s = 0; s < length; s += 2)
          kept.push_back(s);
        indptr.push_back(int32_t(kept.size()));
        for (int32_t s = length - 9; s < length; ++s)
          kept.push_back(s);
        indptr.push_back(int32_t(kept.size()));
        kept.push_back(0);
        kept.push_back(1);
        indptr.push_back(int32_t(kept.size()));
        indptr.push_back(int32_t(kept.size()));
        ASSERT_EQ(
            kvrt_cache_select(cache, id, indptr.data(), kept.data(), nullptr),
            KVRT_OK);
      }
      std::vector<std::vector<std::vector<double>>> keys, values;
      for (int32_t id : ids) {
        HeadRows k = readHeads(cache, id, false),
                 v = readHeads(cache, id, true);
        keys.emplace_back(4);
        values.emplace_back(4);
        for (int h = 0; h < 4; ++h)
          for (size_t s = 0; s < k[h].size(); ++s)
            for (int d = 0; d < 32; ++d) {
              keys.back()[h].push_back(
                  kvrt::loadAsFloat(k[h][s].data(), KVRT_DTYPE_F32, d));
              values.back()[h].push_back(
                  kvrt::loadAsFloat(v[h][s].data(), KVRT_DTYPE_F32, d));
            }
      }
      const int numQHeads = 8;
      Tensor queries =
          randomTensor(KVRT_DTYPE_F32, 2 * numTokens * numQHeads * 32, rng);
      Tensor out(KVRT_DTYPE_F32, queries.count);
      out.poison();
      const float scale = 0.2f;
      ASSERT_EQ(kvrt_attention_host(cache, 2, ids.data(), numTokens, numQHeads,
                                    queries.data(), out.data(), scale, causal),
                KVRT_OK)
          << kvrt_last_error();
      std::vector<double> expected =
          perHeadReference(keys, values, toDoubles(queries), numTokens,
                           numQHeads, 32, scale, causal);
      EXPECT_LT(relativeError(out, expected), 1e-5)
          << "causal " << causal << " tokens " << numTokens;
      // q heads 6 and 7 read kv head 3, which holds nothing: zeros.
      for (int64_t i = 0; i < out.count; ++i)
        if ((i / 32) % numQHeads >= 6)
          ASSERT_EQ(out.at(i), 0.0f) << i;
    }
}

} // namespace
