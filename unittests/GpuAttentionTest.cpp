//===- GpuAttentionTest.cpp - CUDA pools and compiled kernels ---*- C++ -*-===//
//
// Runs only where a CUDA device exists (skips otherwise): fills a CUDA pool
// and a host pool with the same random K/V through kvrt_append, checks the
// device append against the host one byte for byte, then compares every
// kernel of GpuKernels.cu, launched through kvrt_attention_launch, with
// kvrt_attention_host.
//
//===----------------------------------------------------------------------===//
#include "GpuKernels.h"
#include "TestHelpers.h"

#include "GpuTestHelpers.h"

#include <cuda_runtime.h>

using namespace kvrt::test;

namespace {

/// Device memory freed at scope exit.
class DeviceBuffer {
public:
  explicit DeviceBuffer(size_t bytes) : size(bytes) {
    EXPECT_EQ(cudaMalloc(&pointer, bytes), cudaSuccess);
  }
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() { cudaFree(pointer); }
  void *get() const { return pointer; }
  void upload(const Tensor &tensor) {
    ASSERT_EQ(tensor.bytes.size(), size);
    ASSERT_EQ(cudaMemcpy(pointer, tensor.data(), size, cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  void download(Tensor &tensor) {
    ASSERT_EQ(tensor.bytes.size(), size);
    ASSERT_EQ(cudaMemcpy(tensor.data(), pointer, size, cudaMemcpyDeviceToHost),
              cudaSuccess);
  }

private:
  void *pointer = nullptr;
  size_t size;
};

/// A host cache and a CUDA cache of the same shape that always receive the
/// same appends.
class TwinCaches {
public:
  TwinCaches(const kvrt_cache_desc &cacheDesc, int64_t numPages)
      : desc(cacheDesc) {
    int64_t pageBytes = kvrt_cache_page_bytes(&desc);
    host = makePool(KVRT_DEVICE_HOST, pageBytes, numPages);
    device = makePool(KVRT_DEVICE_CUDA, pageBytes, numPages);
    if (!host || !device)
      return;
    hostCache = makeCache(host.get(), desc);
    deviceCache = makeCache(device.get(), desc);
  }

  bool ok() const { return hostCache && deviceCache; }

  /// Creates a sequence in both pools; ids agree since both pools hand
  /// out ids the same way.
  int32_t newSequence() {
    int32_t id = makeSequence(host.get());
    EXPECT_EQ(makeSequence(device.get()), id);
    return id;
  }

  /// Appends the same random tokens to both caches.
  void append(const std::vector<int32_t> &ids, int tokens, std::mt19937 &rng) {
    int64_t elements =
        int64_t(ids.size()) * tokens * desc.num_kv_heads * desc.head_dim;
    Tensor keys = randomTensor(desc.dtype, elements, rng);
    Tensor values = randomTensor(desc.dtype, elements, rng);
    append(ids, tokens, keys, values);
  }

  /// Fills every free page of both pools with NaN keys and values (0xff
  /// bytes) and frees them again, so that the rows past a sequence's end in
  /// its last page hold NaN: kernels must neither read them nor multiply
  /// them by a probability of 0.
  void poisonFreePages() {
    std::vector<int32_t> poisoned;
    const int64_t most = desc.capacity / desc.page_size * desc.page_size;
    for (;;) {
      kvrt_pool_stats stats;
      ASSERT_EQ(kvrt_pool_get_stats(device.get(), &stats), KVRT_OK);
      const int64_t tokens = std::min(
          most, stats.pages_free / desc.num_kv_heads * desc.page_size);
      if (tokens == 0)
        break;
      poisoned.push_back(newSequence());
      const int64_t elements = tokens * desc.num_kv_heads * desc.head_dim;
      Tensor keys(desc.dtype, elements), values(desc.dtype, elements);
      keys.poison();
      values.poison();
      append({poisoned.back()}, static_cast<int>(tokens), keys, values);
      ASSERT_FALSE(::testing::Test::HasFatalFailure());
    }
    for (int32_t id : poisoned) {
      ASSERT_EQ(kvrt_sequence_destroy(host.get(), id), KVRT_OK);
      ASSERT_EQ(kvrt_sequence_destroy(device.get(), id), KVRT_OK);
    }
  }

  /// Appends `keys` and `values` ([batch, tokens, heads, head_dim]) to both
  /// caches.
  void append(const std::vector<int32_t> &ids, int tokens, const Tensor &keys,
              const Tensor &values) {
    int32_t batch = static_cast<int32_t>(ids.size());
    ASSERT_EQ(kvrt_append(hostCache, batch, ids.data(), tokens, keys.data(),
                          values.data(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
    DeviceBuffer deviceKeys(keys.bytes.size()), deviceValues(keys.bytes.size());
    deviceKeys.upload(keys);
    deviceValues.upload(values);
    ASSERT_EQ(kvrt_append(deviceCache, batch, ids.data(), tokens,
                          deviceKeys.get(), deviceValues.get(), nullptr),
              KVRT_OK)
        << kvrt_last_error();
    // The append kernel reads the buffers freed at scope exit.
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  }

  /// Expects both caches to hold the same bytes for sequence `id`.
  void expectSameContents(int32_t id) {
    int64_t hostLength = -1, deviceLength = -2;
    ASSERT_EQ(kvrt_cache_sequence_length(hostCache, id, &hostLength), KVRT_OK);
    ASSERT_EQ(kvrt_cache_sequence_length(deviceCache, id, &deviceLength),
              KVRT_OK);
    ASSERT_EQ(hostLength, deviceLength);
    int64_t elements = hostLength * desc.num_kv_heads * desc.head_dim;
    Tensor hostKeys(desc.dtype, elements), hostValues(desc.dtype, elements);
    Tensor deviceKeys(desc.dtype, elements), deviceValues(desc.dtype, elements);
    deviceKeys.poison();
    deviceValues.poison();
    ASSERT_EQ(
        kvrt_cache_read(hostCache, id, hostKeys.data(), hostValues.data()),
        KVRT_OK);
    ASSERT_EQ(kvrt_cache_read(deviceCache, id, deviceKeys.data(),
                              deviceValues.data()),
              KVRT_OK)
        << kvrt_last_error();
    EXPECT_TRUE(hostKeys.bytes == deviceKeys.bytes) << "keys of " << id;
    EXPECT_TRUE(hostValues.bytes == deviceValues.bytes) << "values of " << id;
  }

  kvrt_cache_desc desc;
  PoolPtr host, device;
  kvrt_cache *hostCache = nullptr;
  kvrt_cache *deviceCache = nullptr;
};

/// Which prefill body a prefill-layout launch on sm_90 runs.
enum class PrefillBody {
  /// The runtime's choice: for these rows (up to 1000 keys), the
  /// warp-specialized body where the kernel allows it (prefillWsPays).
  Default,
  /// KVRT_PREFILL_WS=1: the warp-specialized body where the kernel allows
  /// its 384 threads (GpuKernels.cu's kernels, as kvcc emits them), else
  /// the 64-row wgmma one.
  WarpSpecialized,
  /// KVRT_PREFILL_WS=1 and KVRT_PREFILL_TMA=0: the warp-specialized body
  /// with its producer copying K/V by cp.async instead of tensor copies.
  WarpSpecializedCpAsync,
  /// KVRT_PREFILL_WS=1 and KVRT_PREFILL_TMA_RUNS=0: the warp-specialized
  /// body copying every tile a page at a time (tensor copies on pages of
  /// 32 and more, cp.async on smaller ones), none as a run of pages.
  WarpSpecializedNoRuns,
  /// KVRT_PREFILL_WS=0: the 64-row wgmma body.
  Wgmma,
  /// KVRT_PREFILL_WGMMA=0: the mma.sync body older GPUs run.
  MmaSync,
};

/// One kernel of GpuKernels.cu run on one query chunk size.
struct KernelCase {
  const GpuKernel *kernel;
  int numTokens;
  PrefillBody prefill = PrefillBody::Default;
};

const char *prefillSuffix(PrefillBody body) {
  switch (body) {
  case PrefillBody::Default:
    return "";
  case PrefillBody::WarpSpecialized:
    return "_ws";
  case PrefillBody::WarpSpecializedCpAsync:
    return "_ws_cpasync";
  case PrefillBody::WarpSpecializedNoRuns:
    return "_ws_noruns";
  case PrefillBody::Wgmma:
    return "_wgmma64";
  case PrefillBody::MmaSync:
    return "_mmasync";
  }
  return "";
}

/// Keeps test names stable (gtest would otherwise print the pointer).
void PrintTo(const KernelCase &c, std::ostream *os) {
  *os << c.kernel->name << " with " << c.numTokens << " query tokens"
      << prefillSuffix(c.prefill);
}

std::vector<KernelCase> kernelCases() {
  std::vector<KernelCase> cases;
  for (const GpuKernel &kernel : gpuKernels()) {
    // 70 tokens: the prefill layout (params.h) where the runtime picks it,
    // with a partial last tile of query rows; on sm_90 with each of its
    // bodies: the warp-specialized one (which the runtime takes for rows
    // of more keys), the 64-row wgmma one and the mma.sync one older GPUs
    // run.
    for (int tokens : {1, 5, 70})
      cases.push_back({&kernel, tokens});
    cases.push_back({&kernel, 70, PrefillBody::WarpSpecialized});
    cases.push_back({&kernel, 70, PrefillBody::WarpSpecializedCpAsync});
    cases.push_back({&kernel, 70, PrefillBody::WarpSpecializedNoRuns});
    cases.push_back({&kernel, 70, PrefillBody::Wgmma});
    cases.push_back({&kernel, 70, PrefillBody::MmaSync});
  }
  return cases;
}

std::string kernelCaseName(const ::testing::TestParamInfo<KernelCase> &info) {
  return std::string(info.param.kernel->name) + "_t" +
         std::to_string(info.param.numTokens) +
         prefillSuffix(info.param.prefill);
}

class GpuAttentionTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(GpuAttentionTest, MatchesHostReference) {
  SKIP_WITHOUT_GPU();
  const GpuKernel &kernel = *GetParam().kernel;
  const int numTokens = GetParam().numTokens;
  const PrefillBody prefill = GetParam().prefill;
  ScopedEnv noWgmma("KVRT_PREFILL_WGMMA",
                    prefill == PrefillBody::MmaSync ? "0" : nullptr);
  const bool warpSpecializedBody =
      prefill == PrefillBody::WarpSpecialized ||
      prefill == PrefillBody::WarpSpecializedCpAsync ||
      prefill == PrefillBody::WarpSpecializedNoRuns;
  ScopedEnv warpSpecialized("KVRT_PREFILL_WS",
                            prefill == PrefillBody::Wgmma ? "0"
                            : warpSpecializedBody         ? "1"
                                                          : nullptr);
  ScopedEnv tensorCopies(
      "KVRT_PREFILL_TMA",
      prefill == PrefillBody::WarpSpecializedCpAsync ? "0" : nullptr);
  ScopedEnv tensorCopyRuns(
      "KVRT_PREFILL_TMA_RUNS",
      prefill == PrefillBody::WarpSpecializedNoRuns ? "0" : nullptr);
  // GQA 32/8 for groups of 4, 8/8 for groups of 1, 16/2 for groups of 8.
  const int numKvHeads = kernel.groupSize == 8 ? 2 : 8;
  const int numQHeads = numKvHeads * kernel.groupSize;
  // Lengths not multiples of the page or of the 64-key prefill tile; the
  // second is shorter than a prefill chunk plus one page.
  const std::vector<int> lengths = {1000, numTokens + 13, 517};
  const int batch = static_cast<int>(lengths.size());
  kvrt_cache_desc desc =
      makeDesc(numKvHeads, kernel.headDim, kernel.dtype, kernel.pageSize, 2048);
  int64_t numPages = 0;
  for (int length : lengths)
    numPages += (length + kernel.pageSize - 1) / kernel.pageSize * numKvHeads;
  TwinCaches twins(desc, numPages + 8);
  ASSERT_TRUE(twins.ok());
  twins.poisonFreePages();
  ASSERT_FALSE(HasFatalFailure());

  std::mt19937 rng(7 * kernel.headDim + numTokens);
  std::vector<int32_t> ids;
  for (int b = 0; b < batch; ++b) {
    ids.push_back(twins.newSequence());
    twins.append({ids[b]}, lengths[b] - numTokens, rng);
  }
  // The queries' own tokens arrive as one batched append.
  twins.append(ids, numTokens, rng);
  ASSERT_FALSE(HasFatalFailure());
  for (int32_t id : ids)
    twins.expectSameContents(id);

  const int64_t queryElements =
      int64_t(batch) * numTokens * numQHeads * kernel.headDim;
  Tensor queries = randomTensor(kernel.dtype, queryElements, rng, 2.0f);
  const float scale = 1.0f / std::sqrt(float(kernel.headDim));
  Tensor expected(kernel.dtype, queryElements);
  expected.poison();
  ASSERT_EQ(kvrt_attention_host(twins.hostCache, batch, ids.data(), numTokens,
                                numQHeads, queries.data(), expected.data(),
                                scale, kernel.causal),
            KVRT_OK)
      << kvrt_last_error();

  DeviceBuffer deviceQueries(queries.bytes.size());
  DeviceBuffer deviceOut(queries.bytes.size());
  deviceQueries.upload(queries);
  ASSERT_EQ(cudaMemset(deviceOut.get(), 0xff, queries.bytes.size()),
            cudaSuccess);
  // The upload and the memset run on the legacy default stream, which a
  // non-blocking stream does not wait for (a pageable upload may return
  // before its DMA ends): finish them before the launch.
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  // The warp-specialized body gathers K/V by tensor copies wherever they
  // apply (sm_90, fp16/bf16, head_dim a multiple of 64) unless
  // KVRT_PREFILL_TMA=0: whole tiles on runs of consecutive pages at once
  // on pages of 16 to 64 (unless KVRT_PREFILL_TMA_RUNS=0), the others a
  // page at a time. On pages of 16 kvrt passes the maps only where most
  // tiles lie on runs, as here: the sequences' first appends take the
  // poisoned pages, which came back in order, so all but a few of the
  // whole tiles do. Pages of 2 and 8 never.
  kvrt_attention_plan_info plan;
  ASSERT_EQ(kvrt_attention_plan(twins.deviceCache, batch, ids.data(),
                                numTokens, numQHeads, kernel.causal,
                                kernel.function, attentionThreads(), 0, &plan),
            KVRT_OK)
      << kvrt_last_error();
  const bool expectMaps =
      plan.query_tile_rows == 128 && deviceIsSm90() &&
      prefill != PrefillBody::WarpSpecializedCpAsync &&
      kernel.headDim % 64 == 0 && kernel.dtype != KVRT_DTYPE_F32;
  EXPECT_EQ(plan.tensor_copies, expectMaps && kernel.pageSize >= 16 ? 1 : 0);
  EXPECT_EQ(plan.tensor_copy_runs,
            expectMaps && kernel.pageSize >= 16 && kernel.pageSize < 128 &&
                    prefill != PrefillBody::WarpSpecializedNoRuns
                ? 1
                : 0);
  RecordProperty("query_tile_rows", plan.query_tile_rows);
  RecordProperty("tensor_copies", plan.tensor_copies);
  RecordProperty("tensor_copy_runs", plan.tensor_copy_runs);

  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
            cudaSuccess);
  ASSERT_EQ(kvrt_attention_launch(twins.deviceCache, batch, ids.data(),
                                  numTokens, numQHeads, deviceQueries.get(),
                                  deviceOut.get(), scale, kernel.causal,
                                  kernel.function, attentionThreads(), stream),
            KVRT_OK)
      << kvrt_last_error();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  cudaStreamDestroy(stream);
  Tensor actual(kernel.dtype, queryElements);
  deviceOut.download(actual);

  std::vector<double> reference = toDoubles(expected);
  double error = relativeError(actual, reference);
  EXPECT_LT(error, toleranceFor(kernel.dtype)) << kernel.name;
  RecordProperty("relative_error", std::to_string(error));
}

INSTANTIATE_TEST_SUITE_P(Kernels, GpuAttentionTest,
                         ::testing::ValuesIn(kernelCases()), kernelCaseName);

/// On pages of 16 tokens kvrt passes a cache's tensor maps to a prefill
/// launch only where most of the batch's whole 128-key tiles lie on runs
/// of consecutive pages (TileRuns.h): a fresh pool's pages do, a pool whose
/// free pages were released in scrambled order does not.
TEST(GpuPoolTest, PageSixteenTensorCopiesFollowPageRuns) {
  SKIP_WITHOUT_GPU();
  if (!deviceIsSm90())
    GTEST_SKIP() << "tensor maps are made on sm_90 devices only";
  const GpuKernel *kernel = nullptr;
  for (const GpuKernel &candidate : gpuKernels())
    if (std::string(candidate.name) == "f16_d128_g4_p16_full")
      kernel = &candidate;
  ASSERT_NE(kernel, nullptr);
  ScopedEnv warpSpecialized("KVRT_PREFILL_WS", "1");
  const int tokens = 1024, pages = 8 * tokens / 16 + 7;
  const kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 16, tokens);
  const kvrt_cache_desc one = makeDesc(1, 128, KVRT_DTYPE_F16, 16, 16);
  DeviceBuffer zeros(size_t(8) * tokens * 128 * 2);
  ASSERT_EQ(cudaMemset(zeros.get(), 0, size_t(8) * tokens * 128 * 2),
            cudaSuccess);
  for (bool scrambled : {false, true}) {
    SCOPED_TRACE(scrambled ? "scrambled free pages" : "a fresh pool");
    PoolPtr pool =
        makePool(KVRT_DEVICE_CUDA, kvrt_cache_page_bytes(&desc), pages);
    ASSERT_TRUE(pool);
    if (scrambled) {
      // Every page to a one-token sequence of a one-head cache, then the
      // sequences destroyed 7 apart: no two pages taken one after the
      // other are consecutive.
      kvrt_cache *filler = makeCache(pool.get(), one);
      ASSERT_NE(filler, nullptr);
      std::vector<int32_t> ids;
      for (int i = 0; i < pages; ++i)
        ids.push_back(makeSequence(pool.get()));
      ASSERT_EQ(kvrt_append(filler, pages, ids.data(), 1, zeros.get(),
                            zeros.get(), nullptr),
                KVRT_OK)
          << kvrt_last_error();
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      for (int i = 0; i < pages; ++i)
        ASSERT_EQ(kvrt_sequence_destroy(pool.get(), ids[(7 * i) % pages]),
                  KVRT_OK);
    }
    kvrt_cache *cache = makeCache(pool.get(), desc);
    ASSERT_NE(cache, nullptr);
    const int32_t id = makeSequence(pool.get());
    ASSERT_EQ(kvrt_append(cache, 1, &id, tokens, zeros.get(), zeros.get(),
                          nullptr),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    kvrt_attention_plan_info plan;
    ASSERT_EQ(kvrt_attention_plan(cache, 1, &id, tokens, 32, 0,
                                  kernel->function, attentionThreads(), 0,
                                  &plan),
              KVRT_OK)
        << kvrt_last_error();
    ASSERT_EQ(plan.query_tile_rows, 128);
    EXPECT_EQ(plan.tensor_copies, scrambled ? 0 : 1);
    EXPECT_EQ(plan.tensor_copy_runs, scrambled ? 0 : 1);
  }
}

TEST(GpuPoolTest, AccountingAndLaunchChecks) {
  SKIP_WITHOUT_GPU();
  const GpuKernel *kernel = nullptr;
  for (const GpuKernel &candidate : gpuKernels())
    if (std::string(candidate.name) == "f16_d128_g4_p16_causal")
      kernel = &candidate;
  ASSERT_NE(kernel, nullptr);
  kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 16, 256);
  TwinCaches twins(desc, 64);
  ASSERT_TRUE(twins.ok());
  std::mt19937 rng(5);
  int32_t id = twins.newSequence();
  twins.append({id}, 20, rng);
  kvrt_pool_stats stats;
  ASSERT_EQ(kvrt_pool_get_stats(twins.device.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.device, KVRT_DEVICE_CUDA);
  EXPECT_EQ(stats.pages_free, 64 - 2 * 8);

  DeviceBuffer queries(32 * 128 * 2), out(32 * 128 * 2);
  EXPECT_KVRT_ERROR(
      kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32, queries.get(),
                            out.get(), 1.0f, 1, kernel->function, 48, nullptr),
      KVRT_ERROR_INVALID_ARGUMENT, "threads 48 must be a multiple of 32");
  EXPECT_KVRT_ERROR(kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32,
                                          queries.get(), out.get(), 1.0f, 1,
                                          nullptr, 128, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "kernel must not be null");
  EXPECT_KVRT_ERROR(kvrt_attention_launch(twins.deviceCache, 1, &id, 21, 32,
                                          queries.get(), out.get(), 1.0f, 1,
                                          kernel->function, 128, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "fewer than num_tokens 21");
  // Query rows are read as 16-byte vectors: one element off is refused.
  char *queryBytes = static_cast<char *>(queries.get());
  char *outBytes = static_cast<char *>(out.get());
  EXPECT_KVRT_ERROR(kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32,
                                          queryBytes + 2, out.get(), 1.0f, 1,
                                          kernel->function, 128, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "queries (");
  EXPECT_KVRT_ERROR(kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32,
                                          queries.get(), outBytes + 8, 1.0f, 1,
                                          kernel->function, 128, nullptr),
                    KVRT_ERROR_INVALID_ARGUMENT, "must be aligned to 16 bytes");
  // A stream capturing a CUDA graph is refused (a replay would reuse this
  // call's tables), and nothing was captured; outside the capture the same
  // stream works.
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
            cudaSuccess);
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed),
            cudaSuccess);
  EXPECT_KVRT_ERROR(kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32,
                                          queries.get(), out.get(), 1.0f, 1,
                                          kernel->function, 128, stream),
                    KVRT_ERROR_UNSUPPORTED, "capturing a CUDA graph");
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  size_t nodes = 1;
  EXPECT_EQ(cudaGraphGetNodes(graph, nullptr, &nodes), cudaSuccess);
  EXPECT_EQ(nodes, 0u);
  cudaGraphDestroy(graph);
  EXPECT_EQ(kvrt_attention_launch(twins.deviceCache, 1, &id, 1, 32,
                                  queries.get(), out.get(), 1.0f, 1,
                                  kernel->function, 128, stream),
            KVRT_OK)
      << kvrt_last_error();
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(stream), cudaSuccess);

  Tensor hostOut(KVRT_DTYPE_F16, 32 * 128);
  EXPECT_KVRT_ERROR(kvrt_attention_host(twins.deviceCache, 1, &id, 1, 32,
                                        queries.get(), hostOut.data(), 1.0f, 1),
                    KVRT_ERROR_UNSUPPORTED, "CUDA pool");

  ASSERT_EQ(kvrt_sequence_destroy(twins.device.get(), id), KVRT_OK);
  ASSERT_EQ(kvrt_pool_get_stats(twins.device.get(), &stats), KVRT_OK);
  EXPECT_EQ(stats.pages_free, 64);
}

TEST(GpuPoolTest, KernelRefusesMismatchedCache) {
  SKIP_WITHOUT_GPU();
  // A kernel compiled for pages of 16 launched on a cache of pages of 64
  // must not read the cache with the wrong layout: it writes NaN.
  const GpuKernel *kernel = nullptr;
  for (const GpuKernel &candidate : gpuKernels())
    if (std::string(candidate.name) == "f16_d128_g4_p16_causal")
      kernel = &candidate;
  ASSERT_NE(kernel, nullptr);
  kvrt_cache_desc desc = makeDesc(8, 128, KVRT_DTYPE_F16, 64, 256);
  TwinCaches twins(desc, 32);
  ASSERT_TRUE(twins.ok());
  std::mt19937 rng(9);
  int32_t id = twins.newSequence();
  twins.append({id}, 10, rng);
  DeviceBuffer queries(32 * 128 * 2), out(32 * 128 * 2);
  ASSERT_EQ(cudaMemset(queries.get(), 0, 32 * 128 * 2), cudaSuccess);
  ASSERT_EQ(kvrt_attention_launch(
                twins.deviceCache, 1, &id, 1, 32, queries.get(), out.get(),
                1.0f, 1, kernel->function, attentionThreads(), nullptr),
            KVRT_OK)
      << kvrt_last_error();
  Tensor result(KVRT_DTYPE_F16, 32 * 128);
  out.download(result);
  for (int64_t i = 0; i < result.count; ++i)
    ASSERT_TRUE(std::isnan(result.at(i))) << i;
}

} // namespace
