//===- GpuAllocatorTest.cpp - Allocator on CUDA pools -----------*- C++ -*-===//
//
// Runs only where a CUDA device exists (skips otherwise). A host pool and a
// CUDA pool receive the same operations (appends, per-head selection that
// leaves heads of different lengths and one head empty, a fork, evicting
// writes and slot replacement into shared pages, truncation after
// eviction); after each one the device contents must equal the host's byte
// for byte. Then the compiled kernels of GpuKernels.cu read the device page
// tables (kept on the device and updated incrementally) and must match the
// CPU reference, kvrt_attention_host, including zeros for the empty head.
//
//===----------------------------------------------------------------------===//
#include "AllocatorHelpers.h"
#include "GpuKernels.h"

#include "GpuTestHelpers.h"

#include <cuda_runtime.h>

#include <memory>

using namespace kvrt::test;

namespace {

/// Device copy of a host tensor, freed at scope exit.
class DeviceCopy {
public:
  explicit DeviceCopy(const Tensor &tensor) : size(tensor.bytes.size()) {
    EXPECT_EQ(cudaMalloc(&pointer, size ? size : 1), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(pointer, tensor.data(), size, cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  DeviceCopy(const DeviceCopy &) = delete;
  DeviceCopy &operator=(const DeviceCopy &) = delete;
  ~DeviceCopy() {
    // kvrt queues its work on the default stream here; let it finish
    // before the memory goes.
    cudaDeviceSynchronize();
    cudaFree(pointer);
  }
  void *get() const { return pointer; }
  void download(Tensor &tensor) const {
    ASSERT_EQ(cudaMemcpy(tensor.data(), pointer, size, cudaMemcpyDeviceToHost),
              cudaSuccess);
  }

private:
  void *pointer = nullptr;
  size_t size;
};

/// A host and a CUDA pool with one cache each, receiving the same calls.
class Twins {
public:
  Twins(const kvrt_cache_desc &cacheDesc, int64_t numPages) : desc(cacheDesc) {
    const int64_t pageBytes = kvrt_cache_page_bytes(&desc);
    pools[0] = makePool(KVRT_DEVICE_HOST, pageBytes, numPages);
    pools[1] = makePool(KVRT_DEVICE_CUDA, pageBytes, numPages);
    for (int i = 0; i < 2; ++i)
      caches[i] = pools[i] ? makeCache(pools[i].get(), desc) : nullptr;
  }
  bool ok() const { return caches[0] && caches[1]; }

  int32_t newSequence() {
    int32_t id = makeSequence(pools[0].get());
    EXPECT_EQ(makeSequence(pools[1].get()), id);
    return id;
  }

  Tensor randomRows(int64_t rows, std::mt19937 &rng) const {
    return randomTensor(desc.dtype, rows * desc.head_dim, rng);
  }

  void append(const std::vector<int32_t> &ids, int32_t tokens,
              std::mt19937 &rng) {
    const int64_t rows = int64_t(ids.size()) * tokens * desc.num_kv_heads;
    Tensor keys = randomRows(rows, rng), values = randomRows(rows, rng);
    DeviceCopy deviceKeys(keys), deviceValues(values);
    const int32_t batch = int32_t(ids.size());
    ASSERT_EQ(kvrt_append(caches[0], batch, ids.data(), tokens, keys.data(),
                          values.data(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(kvrt_append(caches[1], batch, ids.data(), tokens,
                          deviceKeys.get(), deviceValues.get(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
  }

  void appendEvict(const std::vector<int32_t> &ids,
                   const std::vector<int32_t> &slots, std::mt19937 &rng) {
    const int64_t rows = int64_t(ids.size()) * desc.num_kv_heads;
    Tensor keys = randomRows(rows, rng), values = randomRows(rows, rng);
    DeviceCopy deviceKeys(keys), deviceValues(values);
    const int32_t batch = int32_t(ids.size());
    ASSERT_EQ(kvrt_append_evict(caches[0], batch, ids.data(), keys.data(),
                                values.data(), slots.data(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(kvrt_append_evict(caches[1], batch, ids.data(), deviceKeys.get(),
                                deviceValues.get(), slots.data(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
  }

  void replace(int32_t id, int32_t head, int32_t slot, int32_t position,
               std::mt19937 &rng) {
    Tensor key = randomRows(1, rng), value = randomRows(1, rng);
    DeviceCopy deviceKey(key), deviceValue(value);
    ASSERT_EQ(kvrt_cache_replace_slot(caches[0], id, head, slot, key.data(),
                                      value.data(), position, nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(kvrt_cache_replace_slot(caches[1], id, head, slot,
                                      deviceKey.get(), deviceValue.get(),
                                      position, nullptr),
              KVRT_OK)
        << kvrt_last_error();
  }

  void select(int32_t id, const std::vector<int32_t> &indptr,
              const std::vector<int32_t> &kept) {
    for (kvrt_cache *cache : caches)
      ASSERT_EQ(
          kvrt_cache_select(cache, id, indptr.data(), kept.data(), nullptr),
          KVRT_OK)
          << kvrt_last_error();
  }

  int32_t fork(int32_t parent) {
    int32_t children[2] = {-1, -2};
    for (int i = 0; i < 2; ++i)
      EXPECT_EQ(
          kvrt_sequence_fork(pools[i].get(), parent, nullptr, &children[i]),
          KVRT_OK)
          << kvrt_last_error();
    EXPECT_EQ(children[0], children[1]);
    return children[0];
  }

  void truncate(int32_t id, int64_t length) {
    for (const PoolPtr &pool : pools)
      ASSERT_EQ(kvrt_sequence_truncate(pool.get(), id, length, nullptr),
                KVRT_OK)
          << kvrt_last_error();
  }

  /// Both caches hold the same lengths, positions and bytes for `id`.
  void expectSame(int32_t id) {
    ASSERT_EQ(headLengths(caches[0], id), headLengths(caches[1], id));
    for (int32_t h = 0; h < desc.num_kv_heads; ++h)
      ASSERT_EQ(headPositions(caches[0], id, h),
                headPositions(caches[1], id, h))
          << "head " << h;
    for (bool values : {false, true})
      ASSERT_TRUE(readHeads(caches[0], id, values) ==
                  readHeads(caches[1], id, values))
          << (values ? "values" : "keys") << " of sequence " << id;
  }

  kvrt_cache_desc desc;
  PoolPtr pools[2];
  kvrt_cache *caches[2] = {nullptr, nullptr};
};

const GpuKernel *findKernel(const char *name) {
  for (const GpuKernel &kernel : gpuKernels())
    if (std::string(kernel.name) == name)
      return &kernel;
  return nullptr;
}

/// One attention call of a batch on both twins: the host reference is
/// computed at construction, the device launch queued by launch().
struct TwinAttention {
  TwinAttention(Twins &twins, const GpuKernel &kernel,
                const std::vector<int32_t> &batchIds, int tokens,
                std::mt19937 &rng)
      : twins(twins), kernel(kernel), ids(batchIds), numTokens(tokens),
        numQHeads(twins.desc.num_kv_heads * kernel.groupSize),
        elements(int64_t(ids.size()) * numTokens * numQHeads * kernel.headDim),
        scale(1.0f / std::sqrt(float(kernel.headDim))),
        queries(randomTensor(kernel.dtype, elements, rng, 2.0f)),
        expected(kernel.dtype, elements) {
    expected.poison();
    EXPECT_EQ(kvrt_attention_host(twins.caches[0], int32_t(ids.size()),
                                  ids.data(), numTokens, numQHeads,
                                  queries.data(), expected.data(), scale,
                                  kernel.causal),
              KVRT_OK)
        << kvrt_last_error();
    Tensor poisoned(kernel.dtype, elements);
    poisoned.poison();
    deviceQueries = std::make_unique<DeviceCopy>(queries);
    deviceOut = std::make_unique<DeviceCopy>(poisoned);
  }

  void launch(cudaStream_t stream) {
    ASSERT_EQ(kvrt_attention_launch(
                  twins.caches[1], int32_t(ids.size()), ids.data(), numTokens,
                  numQHeads, deviceQueries->get(), deviceOut->get(), scale,
                  kernel.causal, kernel.function, attentionThreads(), stream),
              KVRT_OK)
        << kvrt_last_error();
  }

  /// The device's output after the launch finished (synchronizes).
  Tensor result() const {
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    Tensor actual(kernel.dtype, elements);
    deviceOut->download(actual);
    EXPECT_LT(relativeError(actual, toDoubles(expected)),
              toleranceFor(kernel.dtype))
        << kernel.name << ", batch " << ids.size() << ", " << numTokens
        << " query tokens";
    return actual;
  }

  Twins &twins;
  const GpuKernel &kernel;
  std::vector<int32_t> ids;
  int numTokens, numQHeads;
  int64_t elements;
  float scale;
  Tensor queries, expected;
  std::unique_ptr<DeviceCopy> deviceQueries, deviceOut;
};

/// Two non-blocking streams, finished and destroyed at scope exit.
struct TwoStreams {
  cudaStream_t stream[2] = {nullptr, nullptr};
  TwoStreams() {
    for (cudaStream_t &s : stream)
      EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                cudaSuccess);
  }
  ~TwoStreams() {
    for (cudaStream_t s : stream) {
      EXPECT_EQ(cudaStreamSynchronize(s), cudaSuccess);
      EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
    }
  }
  TwoStreams(const TwoStreams &) = delete;
  TwoStreams &operator=(const TwoStreams &) = delete;
};

/// Runs `kernel` on the device twin and kvrt_attention_host on the host
/// twin; expects agreement within the dtype's tolerance and exact zeros for
/// the q heads of kv heads that hold no token of a sequence.
void expectAttentionMatches(Twins &twins, const GpuKernel &kernel,
                            const std::vector<int32_t> &ids, int numTokens,
                            std::mt19937 &rng) {
  const int numQHeads = twins.desc.num_kv_heads * kernel.groupSize;
  const int batch = int(ids.size());
  TwinAttention call(twins, kernel, ids, numTokens, rng);
  ASSERT_FALSE(::testing::Test::HasFailure());
  call.launch(nullptr);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const Tensor actual = call.result();
  for (int b = 0; b < batch; ++b) {
    std::vector<int64_t> lengths = headLengths(twins.caches[0], ids[b]);
    for (int t = 0; t < numTokens; ++t)
      for (int qh = 0; qh < numQHeads; ++qh) {
        if (lengths[qh / kernel.groupSize] != 0)
          continue;
        const int64_t base =
            ((int64_t(b) * numTokens + t) * numQHeads + qh) * kernel.headDim;
        for (int d = 0; d < kernel.headDim; ++d)
          ASSERT_EQ(actual.at(base + d), 0.0f)
              << "empty head must give zeros: sequence " << ids[b] << " q head "
              << qh;
      }
  }
}

class GpuAllocatorTest : public ::testing::TestWithParam<const char *> {};

TEST_P(GpuAllocatorTest, PerHeadLengthsMatchHostReference) {
  SKIP_WITHOUT_GPU();
  const GpuKernel *kernel = findKernel(GetParam());
  ASSERT_NE(kernel, nullptr) << GetParam();
  const int numKvHeads = 4;
  kvrt_cache_desc desc = makeDesc(numKvHeads, kernel->headDim, kernel->dtype,
                                  kernel->pageSize, 4096);
  Twins twins(desc, 2048);
  ASSERT_TRUE(twins.ok());
  std::mt19937 rng(kernel->headDim * 31 + kernel->pageSize);
  const int32_t pageSize = kernel->pageSize;

  // Three prompts, then SnapKV-style selection leaving each head its own
  // length: head 0 every third slot, head 1 the last 40 (or nothing for
  // sequence 1), head 2 a prefix, head 3 everything.
  std::vector<int32_t> ids;
  for (int32_t length : {700, 90, 333}) {
    ids.push_back(twins.newSequence());
    twins.append({ids.back()}, length, rng);
    std::vector<int32_t> indptr = {0}, kept;
    for (int32_t s = 0; s < length; s += 3)
      kept.push_back(s);
    indptr.push_back(int32_t(kept.size()));
    if (ids.size() != 2)
      for (int32_t s = length - 40; s < length; ++s)
        kept.push_back(s);
    indptr.push_back(int32_t(kept.size()));
    for (int32_t s = 0; s < length / 2 + 1; ++s)
      kept.push_back(s);
    indptr.push_back(int32_t(kept.size()));
    for (int32_t s = 0; s < length; ++s)
      kept.push_back(s);
    indptr.push_back(int32_t(kept.size()));
    twins.select(ids.back(), indptr, kept);
    ASSERT_FALSE(HasFatalFailure());
    twins.expectSame(ids.back());
  }
  for (int numTokens : {1, 5})
    expectAttentionMatches(twins, *kernel, ids, numTokens, rng);

  // A fork shares full pages; evicting writes into them copy on write, on
  // the device. Sequence 2 evicts in heads 0 and 3 and appends in 1 and 2.
  const int32_t child = twins.fork(ids[0]);
  twins.expectSame(child);
  twins.appendEvict({child, ids[2]}, {3, 1, -1, pageSize + 2, 0, -1, -1, 100},
                    rng);
  ASSERT_FALSE(HasFatalFailure());
  twins.replace(ids[0], 2, 5, 5000, rng);
  ASSERT_FALSE(HasFatalFailure());
  for (int32_t id : {ids[0], child, ids[2]})
    twins.expectSame(id);
  // Truncation after eviction compacts by position, on the device.
  twins.truncate(ids[2], 300);
  twins.truncate(child, 650);
  ASSERT_FALSE(HasFatalFailure());
  twins.expectSame(ids[2]);
  twins.expectSame(child);

  // Decode steps: the device tables are updated, not rebuilt. Batches of
  // at most KVRT_INLINE_ROWS rows carry their lengths and region offsets in
  // the launch's arguments; the step-1 batch (the sequences repeated, 17
  // entries x 4 heads = 68 rows) reads them from the device.
  std::vector<int32_t> all = {ids[0], ids[1], ids[2], child};
  auto repeated = [&](int entries) {
    std::vector<int32_t> batch;
    for (int i = 0; i < entries; ++i)
      batch.push_back(all[i % all.size()]);
    return batch;
  };
  static_assert(KVRT_INLINE_ROWS == 64, "the batches below straddle it");
  for (int step = 0; step < 3; ++step) {
    twins.append(all, 5, rng);
    ASSERT_FALSE(HasFatalFailure());
    for (int numTokens : {1, 5})
      expectAttentionMatches(twins, *kernel, step == 1 ? repeated(17) : all,
                             numTokens, rng);
  }
  for (int32_t id : all)
    twins.expectSame(id);
  // A batch in another order, with a sequence twice; the largest inline
  // batch and the smallest beyond it.
  expectAttentionMatches(twins, *kernel, {child, ids[1], child}, 1, rng);
  expectAttentionMatches(twins, *kernel, repeated(16), 1, rng);
  expectAttentionMatches(twins, *kernel, repeated(17), 1, rng);
}

// Launches of one cache on two streams: stream 0 is held (holdStream)
// while a 68-row batch, whose tables go to the scratch buffer, waits behind
// the hold; stream 1 then runs an inline batch (it uploads nothing) and
// another 68-row batch, whose upload writes the scratch buffer; a launch
// back on stream 0 follows. Every result must match the host's. (The held
// batch's own copy of its tables is queued behind the hold too, so this
// checks the results across streams; the race that a missing wait opens is
// pinned down by ArenaWrittenOnOneStreamIsReadOnAnother.)
TEST(GpuAllocatorStreamsTest, LaunchesOnTwoStreamsKeepTheirTables) {
  SKIP_WITHOUT_GPU();
  const GpuKernel *kernel = findKernel("f16_d128_g4_p16_causal");
  ASSERT_NE(kernel, nullptr);
  const int numKvHeads = 4;
  kvrt_cache_desc desc =
      makeDesc(numKvHeads, kernel->headDim, kernel->dtype, 16, 8192);
  Twins twins(desc, 17 * numKvHeads * (6000 / 16 + 2) + 64);
  ASSERT_TRUE(twins.ok());
  std::mt19937 rng(7);
  // 17 sequences of different lengths: 68 rows of device tables.
  std::vector<int32_t> longBatch;
  for (int i = 0; i < 17; ++i) {
    longBatch.push_back(twins.newSequence());
    twins.append({longBatch.back()}, 4000 + 113 * i, rng);
    ASSERT_FALSE(HasFatalFailure());
  }
  // Other lengths per row in the second batch: its tables differ.
  std::vector<int32_t> otherBatch(longBatch.rbegin(), longBatch.rend());
  otherBatch.resize(16);
  otherBatch.push_back(longBatch[3]);
  const std::vector<int32_t> smallBatch = {longBatch[2], longBatch[9],
                                           longBatch[5]};
  TwoStreams two;
  ASSERT_FALSE(HasFailure());
  cudaStream_t *streams = two.stream;
  for (int round = 0; round < 2; ++round) {
    TwinAttention first(twins, *kernel, longBatch, 1, rng);
    TwinAttention small(twins, *kernel, smallBatch, 1, rng);
    TwinAttention second(twins, *kernel, otherBatch, 1, rng);
    TwinAttention back(twins, *kernel, longBatch, 1, rng);
    ASSERT_FALSE(HasFailure());
    ASSERT_TRUE(holdStream(streams[0], 20000));
    first.launch(streams[0]);
    small.launch(streams[1]);
    second.launch(streams[1]);
    back.launch(streams[0]);
    ASSERT_FALSE(HasFatalFailure());
    for (TwinAttention *call : {&first, &small, &second, &back})
      call->result();
    ASSERT_FALSE(HasFailure()) << "round " << round;
  }
}

// A launch that uploads nothing must still wait for the arena writes of a
// launch on another stream. Sequences X are mirrored and destroyed (their
// arena regions, holding X's page ids, go to the free lists; their pages to
// Z, appended next), then sequences Y are filled: Y's first launch, on a
// held stream 0, writes Y's page ids into X's old regions behind the hold;
// the same batch launched at once on stream 1 has nothing to write and
// would read X's ids (Z's keys) if it did not wait for stream 0. The calls
// take 16 query tokens (64 rows of group 4: the prefill layout, no split):
// split launches share the device's split-K workspace, whose own wait
// would order them and hide a missing table wait.
TEST(GpuAllocatorStreamsTest, ArenaWrittenOnOneStreamIsReadOnAnother) {
  SKIP_WITHOUT_GPU();
  const GpuKernel *kernel = findKernel("f16_d128_g4_p16_causal");
  ASSERT_NE(kernel, nullptr);
  kvrt_cache_desc desc = makeDesc(4, kernel->headDim, kernel->dtype, 16, 4096);
  Twins twins(desc, 1024);
  ASSERT_TRUE(twins.ok());
  std::mt19937 rng(11);
  auto fill = [&](int count) {
    std::vector<int32_t> ids;
    for (int i = 0; i < count; ++i) {
      ids.push_back(twins.newSequence());
      twins.append({ids.back()}, 300 + 7 * i, rng);
    }
    return ids;
  };
  const std::vector<int32_t> x = fill(3);
  ASSERT_FALSE(HasFatalFailure());
  expectAttentionMatches(twins, *kernel, x, 1, rng); // mirrors X
  for (int32_t id : x)
    for (const PoolPtr &pool : twins.pools)
      ASSERT_EQ(kvrt_sequence_destroy(pool.get(), id), KVRT_OK)
          << kvrt_last_error();
  const std::vector<int32_t> z = fill(3); // takes X's pages
  const std::vector<int32_t> y = fill(3); // fresh pages, X's regions next
  ASSERT_FALSE(HasFatalFailure());
  TwoStreams two;
  ASSERT_FALSE(HasFailure());
  cudaStream_t *streams = two.stream;
  TwinAttention written(twins, *kernel, y, 16, rng);
  TwinAttention read(twins, *kernel, y, 16, rng);
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(holdStream(streams[0], 20000));
  written.launch(streams[0]);
  read.launch(streams[1]);
  ASSERT_FALSE(HasFatalFailure());
  written.result();
  read.result();
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, GpuAllocatorTest,
    ::testing::Values("f16_d128_g4_p16_causal", "f16_d128_g4_p16_full",
                      "bf16_d128_g4_p64_full", "f32_d64_g1_p16_causal"),
    [](const ::testing::TestParamInfo<const char *> &info) {
      return std::string(info.param);
    });

} // namespace
