//===- AllocatorBench.cpp - Benchmarks of kvrt's allocator ------*- C++ -*-===//
//
//   PageAllocFree      one page taken from and returned to the free list
//                      (the allocator every kvrt call uses), 1 and 2 threads
//   ApiReserveRelease  the same through the C API: kvrt_reserve of one page,
//                      then kvrt_cache_select freeing it (validation, locks)
//   Tables*            per decode step and layer: the device page tables of
//                      a batch kept incrementally (planDeviceTables) against
//                      rebuilding the whole CSR as the first runtime did;
//                      both include a one-token append (TablesAppendOnly)
//   SequenceDestroy    kvrt_sequence_destroy of a sequence whose pages are
//                      one run a row or every page its own run, in kvrt's
//                      release order (sorted) and head by head
//   ServingTrace       thousands of sequences of random lengths arriving and
//                      finishing; per-layer budgets from the PyramidKV
//                      schedule, per-head budgets spread 4x (AdaKV-style),
//                      SnapKV-style selection after prefill, H2O-style
//                      eviction at decode. Reports memory waste (% of bytes
//                      held), table overhead (% of KV bytes), what an
//                      allocator whose blocks span all heads would hold,
//                      and how many neighbouring table entries are
//                      neighbouring pages (kvrt's release order or head
//                      by head)
//
// Results and the exact command: bench/results/allocator.md.
//
//===----------------------------------------------------------------------===//
#include "DeviceTables.h"
#include "Handles.h"
#include "PageAllocator.h"
#include "kvrt/kvrt.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

namespace {

/// A page allocator shared by the threads of a benchmark.
kvrt::PageAllocator &sharedAllocator() {
  static kvrt::PageAllocator pages;
  static const bool ready = (pages.init(1 << 20), true);
  (void)ready;
  return pages;
}

void PageAllocFree(benchmark::State &state) {
  kvrt::PageAllocator &pages = sharedAllocator();
  int32_t page = -1;
  for (auto _ : state) {
    pages.allocate(1, &page);
    pages.release(&page, 1);
  }
  benchmark::DoNotOptimize(page);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(PageAllocFree)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime()
    ->Repetitions(3)
    ->ReportAggregatesOnly(true);

/// 64 pages per call: the per-page cost of a batched step.
void PageAllocFreeBatch64(benchmark::State &state) {
  kvrt::PageAllocator &pages = sharedAllocator();
  int32_t batch[64];
  for (auto _ : state) {
    pages.allocate(64, batch);
    pages.release(batch, 64);
  }
  benchmark::DoNotOptimize(batch);
  state.SetItemsProcessed(state.iterations() * 64);
}
BENCHMARK(PageAllocFreeBatch64)->Repetitions(3)->ReportAggregatesOnly(true);

void ApiReserveRelease(benchmark::State &state) {
  kvrt_cache_desc desc{1, 128, KVRT_DTYPE_F16, 16, 4096};
  kvrt_pool *pool = nullptr;
  kvrt_cache *cache = nullptr;
  int32_t id = -1;
  kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), 16, &pool);
  kvrt_cache_create(pool, &desc, &cache);
  kvrt_sequence_create(pool, &id);
  const int32_t nothing[] = {0, 0};
  for (auto _ : state) {
    if (kvrt_reserve(1, &cache, 1, &id, 1) != KVRT_OK ||
        kvrt_cache_select(cache, id, nothing, nullptr, nullptr) != KVRT_OK)
      state.SkipWithError(kvrt_last_error());
  }
  state.SetItemsProcessed(state.iterations());
  kvrt_pool_destroy(pool);
}
BENCHMARK(ApiReserveRelease)->Repetitions(3)->ReportAggregatesOnly(true);

/// A host cache with `batch` sequences of `length` tokens, 8 heads.
struct TableFixture {
  static constexpr int32_t kHeads = 8;
  kvrt_pool *pool = nullptr;
  kvrt_cache *cache = nullptr;
  std::vector<int32_t> ids;
  std::vector<unsigned char> row;

  TableFixture(int32_t batch, int32_t length) {
    // Tables do not depend on head_dim: a small one keeps the pool small.
    kvrt_cache_desc desc{kHeads, 8, KVRT_DTYPE_F32, 16, 1 << 20};
    const int64_t pages = int64_t(batch) * kHeads * (length / 16 + 64);
    kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc), pages,
                     &pool);
    kvrt_cache_create(pool, &desc, &cache);
    ids.resize(size_t(batch));
    for (int32_t &id : ids)
      kvrt_sequence_create(pool, &id);
    std::vector<unsigned char> prompt(size_t(batch) * length * kHeads * 32);
    kvrt_append(cache, batch, ids.data(), length, prompt.data(), prompt.data(),
                nullptr);
    row.resize(size_t(batch) * kHeads * 32);
  }
  ~TableFixture() { kvrt_pool_destroy(pool); }

  void appendOne() {
    kvrt_append(cache, int32_t(ids.size()), ids.data(), 1, row.data(),
                row.data(), nullptr);
  }
};

/// The append alone, the part of the two benchmarks below they share.
void TablesAppendOnly(benchmark::State &state) {
  TableFixture fixture(int32_t(state.range(0)), int32_t(state.range(1)));
  for (auto _ : state)
    fixture.appendOne();
}
BENCHMARK(TablesAppendOnly)->Args({64, 2048})->Args({256, 4096});

/// One decode step of one layer: append a token, then bring the batch's
/// device tables up to date (host side of getDeviceTables).
void TablesIncremental(benchmark::State &state) {
  TableFixture fixture(int32_t(state.range(0)), int32_t(state.range(1)));
  int64_t uploaded = 0;
  for (auto _ : state) {
    fixture.appendOne();
    kvrt::SequenceLocks locks;
    locks.lock(*fixture.pool, fixture.ids.data(), int32_t(fixture.ids.size()),
               "bench");
    std::lock_guard<std::mutex> lock(fixture.cache->deviceMutex);
    kvrt::TablePlan plan;
    kvrt::planDeviceTables(fixture.cache, locks, plan);
    // What getDeviceTables does once the upload is queued.
    kvrt::DeviceMirror &mirror = fixture.cache->mirror;
    mirror.arenaSlots =
        std::max<int64_t>(mirror.arenaSlots, int64_t(mirror.shadow.size()));
    mirror.dirty.clear();
    mirror.stale = false;
    // The device receives all but indptr (host bookkeeping).
    uploaded +=
        int64_t((plan.upload.size() - size_t(plan.rows + 1)) * sizeof(int32_t));
  }
  state.counters["upload_bytes_per_step"] =
      benchmark::Counter(double(uploaded) / double(state.iterations()));
}
BENCHMARK(TablesIncremental)->Args({64, 2048})->Args({256, 4096});

/// The same step with the first runtime's table building: the whole CSR of
/// the batch, every page id, each launch.
void TablesRebuild(benchmark::State &state) {
  TableFixture fixture(int32_t(state.range(0)), int32_t(state.range(1)));
  int64_t uploaded = 0;
  for (auto _ : state) {
    fixture.appendOne();
    kvrt::SequenceLocks locks;
    locks.lock(*fixture.pool, fixture.ids.data(), int32_t(fixture.ids.size()),
               "bench");
    const int64_t rows = int64_t(fixture.ids.size()) * TableFixture::kHeads;
    std::vector<int32_t> table(size_t(2 * rows + 1), 0);
    int64_t total = 0;
    for (size_t b = 0; b < fixture.ids.size(); ++b) {
      const kvrt::CacheSequence *sequence = fixture.cache->state(locks[b]);
      for (int64_t h = 0; h < TableFixture::kHeads; ++h) {
        const kvrt::HeadTable &head = sequence->heads[h];
        const int64_t row = int64_t(b) * TableFixture::kHeads + h;
        table[row] = int32_t(total);
        table[rows + 1 + row] = head.length;
        table.insert(table.end(), head.pages.begin(), head.pages.end());
        total += int64_t(head.pages.size());
      }
    }
    table[rows] = int32_t(total);
    benchmark::DoNotOptimize(table.data());
    uploaded += int64_t(table.size() * sizeof(int32_t));
  }
  state.counters["upload_bytes_per_step"] =
      benchmark::Counter(double(uploaded) / double(state.iterations()));
}
BENCHMARK(TablesRebuild)->Args({64, 2048})->Args({256, 4096});

/// Shape and workload of a serving trace.
struct TraceConfig {
  int32_t layers;
  int32_t kvHeads;
  int32_t headDim;
  int32_t pageSize;
  int32_t sequences; // served in total
  int32_t maxActive; // decoding at once
  int32_t promptMin, promptMax;
  int32_t outputMin, outputMax;
  int32_t averageBudget; // PyramidKV B: average tokens per head and layer
  int32_t window;        // SnapKV observation window / recent tokens kept
  double beta;           // PyramidKV
  double headSpread;     // largest / smallest head weight
  int64_t poolPages;
  uint32_t seed;
  /// Pages of destroyed sequences back head by head in token order
  /// (KVRT_RELEASE_ORDER=heads) instead of kvrt's ascending order.
  bool headsRelease = false;
};

/// PyramidKV's per-layer budgets (excluding the window) for a prompt of
/// `length` tokens: a linear schedule from layer 0 (largest) down, averaging
/// averageBudget - window, clamped to what the prompt holds.
std::vector<double> pyramidBudgets(const TraceConfig &config, int32_t length) {
  const double average = config.averageBudget - config.window;
  double lowest = average / config.beta;
  double highest = 2 * average - lowest;
  if (highest > length - config.window) {
    highest = std::max(0.0, double(length - config.window));
    lowest = 2 * average - highest;
  }
  std::vector<double> budgets(static_cast<size_t>(config.layers));
  for (int32_t l = 0; l < config.layers; ++l)
    budgets[l] = config.layers == 1
                     ? average
                     : highest - l * (highest - lowest) / (config.layers - 1);
  return budgets;
}

/// Runs one trace; counters as described in the file comment.
class TraceDriver {
public:
  explicit TraceDriver(const TraceConfig &traceConfig)
      : config(traceConfig), rng(traceConfig.seed) {
    kvrt_cache_desc desc{config.kvHeads, config.headDim, KVRT_DTYPE_F16,
                         config.pageSize, 1 << 16};
    if (config.headsRelease)
      setenv("KVRT_RELEASE_ORDER", "heads", 1);
    kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc),
                     config.poolPages, &pool);
    unsetenv("KVRT_RELEASE_ORDER");
    caches.resize(size_t(config.layers));
    for (kvrt_cache *&cache : caches)
      kvrt_cache_create(pool, &desc, &cache);
    rowBytes = int64_t(config.headDim) * 2;
    data.resize(size_t(config.promptMax) * config.kvHeads * rowBytes);
    for (unsigned char &byte : data)
      byte = static_cast<unsigned char>(rng());
  }
  ~TraceDriver() { kvrt_pool_destroy(pool); }

  /// Serves every sequence; returns false (with the error in `error`) when
  /// a call fails.
  bool run() {
    while (served < config.sequences || !active.empty()) {
      while (int32_t(active.size()) < config.maxActive &&
             served < config.sequences)
        if (!admit())
          return false;
      if (!decodeStep())
        return false;
      if (++steps % 8 == 0)
        snapshot();
    }
    return true;
  }

  TraceConfig config;
  std::string error;
  int64_t steps = 0;
  int32_t served = 0;
  int64_t snapshots = 0;
  double wasteSum = 0, wasteMax = 0, tableMax = 0, spanningRatioSum = 0;
  double partialPerHeadMax = 0, adjacentSum = 0;
  int64_t reservedMax = 0, bytesHeldPeak = 0, tokensPeak = 0;

private:
  struct Active {
    int32_t id;
    int32_t remaining;
    /// lengths[layer][head] and capacities[layer][head].
    std::vector<std::vector<int32_t>> lengths, capacities;
  };

  bool fail(const char *what) {
    error = std::string(what) + ": " + kvrt_last_error();
    return false;
  }

  int32_t uniform(int32_t low, int32_t high) {
    return low + int32_t(rng() % uint32_t(high - low + 1));
  }

  /// Prefill, then per-head selection to the head budgets.
  bool admit() {
    Active sequence;
    if (kvrt_sequence_create(pool, &sequence.id) != KVRT_OK)
      return fail("create");
    ++served;
    const int32_t length = uniform(config.promptMin, config.promptMax);
    sequence.remaining = uniform(config.outputMin, config.outputMax);
    // The whole prefill fits or fails before any layer is written.
    if (kvrt_reserve(int32_t(caches.size()), caches.data(), 1, &sequence.id,
                     length) != KVRT_OK)
      return fail("reserve prefill");
    const std::vector<double> layerBudgets = pyramidBudgets(config, length);
    const int32_t heads = config.kvHeads;
    std::vector<int32_t> order;
    for (int32_t l = 0; l < config.layers; ++l) {
      if (kvrt_append(caches[l], 1, &sequence.id, length, data.data(),
                      data.data(), nullptr) != KVRT_OK)
        return fail("append prefill");
      // AdaKV-style: heads share the layer's budget by weights in
      // [1, headSpread], so the largest head gets up to 4x the smallest.
      std::vector<double> weights(static_cast<size_t>(heads));
      double total = 0;
      for (double &weight : weights) {
        weight = 1.0 + (config.headSpread - 1.0) * double(rng() % 1001) / 1000;
        total += weight;
      }
      std::vector<int32_t> indptr = {0}, kept, capacities, lengths;
      for (int32_t h = 0; h < heads; ++h) {
        const int32_t budget = std::max<int32_t>(
            1,
            int32_t(std::lround(layerBudgets[l] * heads * weights[h] / total)) +
                config.window);
        capacities.push_back(budget);
        if (length <= budget) {
          for (int32_t s = 0; s < length; ++s)
            kept.push_back(s);
        } else {
          // SnapKV: the window plus the best-voted earlier tokens (random
          // votes here: the allocator only sees which slots stay).
          const int32_t older = length - config.window;
          order.resize(size_t(older));
          std::iota(order.begin(), order.end(), 0);
          const int32_t chosen = budget - config.window;
          for (int32_t i = 0; i < chosen; ++i)
            std::swap(order[i], order[i + rng() % uint32_t(older - i)]);
          std::sort(order.begin(), order.begin() + chosen);
          kept.insert(kept.end(), order.begin(), order.begin() + chosen);
          for (int32_t s = older; s < length; ++s)
            kept.push_back(s);
        }
        lengths.push_back(int32_t(kept.size()) - indptr.back());
        indptr.push_back(int32_t(kept.size()));
      }
      if (kvrt_cache_select(caches[l], sequence.id, indptr.data(), kept.data(),
                            nullptr) != KVRT_OK)
        return fail("select");
      std::vector<int64_t> limits(capacities.begin(), capacities.end());
      if (kvrt_cache_set_capacities(caches[l], sequence.id, limits.data()) !=
          KVRT_OK)
        return fail("set capacities");
      sequence.lengths.push_back(lengths);
      sequence.capacities.push_back(capacities);
    }
    active.push_back(std::move(sequence));
    return true;
  }

  /// One token for every active sequence, in every layer: heads below
  /// their budget append, heads at it evict an older (non-window) token.
  bool decodeStep() {
    const int32_t heads = config.kvHeads;
    std::vector<int32_t> ids;
    for (const Active &sequence : active)
      ids.push_back(sequence.id);
    const int32_t batch = int32_t(ids.size());
    if (kvrt_reserve(int32_t(caches.size()), caches.data(), batch, ids.data(),
                     1) != KVRT_OK)
      return fail("reserve step");
    std::vector<int32_t> slots(size_t(batch) * heads);
    for (int32_t l = 0; l < config.layers; ++l) {
      for (int32_t b = 0; b < batch; ++b)
        for (int32_t h = 0; h < heads; ++h) {
          int32_t &length = active[b].lengths[l][h];
          int32_t &slot = slots[size_t(b) * heads + h];
          if (length < active[b].capacities[l][h]) {
            slot = -1;
            ++length;
          } else {
            const int32_t older = std::max(1, length - config.window);
            slot = int32_t(rng() % uint32_t(older));
          }
        }
      if (kvrt_append_evict(caches[l], batch, ids.data(), data.data(),
                            data.data(), slots.data(), nullptr) != KVRT_OK)
        return fail("append_evict");
    }
    for (size_t b = 0; b < active.size();) {
      if (--active[b].remaining > 0) {
        ++b;
        continue;
      }
      if (kvrt_sequence_destroy(pool, active[b].id) != KVRT_OK)
        return fail("destroy");
      active.erase(active.begin() + long(b));
    }
    return true;
  }

  void snapshot() {
    kvrt_pool_usage usage;
    kvrt_pool_get_usage(pool, &usage);
    int64_t partial = 0, reserved = 0, tokens = 0, spanningPages = 0;
    for (kvrt_cache *cache : caches) {
      kvrt_cache_stats stats;
      kvrt_cache_get_stats(cache, &stats);
      partial += stats.partial_pages;
      reserved += stats.reserved_pages;
      tokens += stats.tokens;
    }
    // A paged allocator whose blocks span all heads stores every head as
    // long as the longest one of its (sequence, layer).
    for (const Active &sequence : active)
      for (const std::vector<int32_t> &lengths : sequence.lengths) {
        const int32_t longest =
            *std::max_element(lengths.begin(), lengths.end());
        spanningPages +=
            kvrt::pagesFor(longest, config.pageSize) * config.kvHeads;
      }
    const double headRows =
        double(active.size()) * config.layers * config.kvHeads;
    if (usage.bytes_held == 0 || headRows == 0)
      return;
    ++snapshots;
    const double waste =
        100.0 * double(usage.waste_bytes) / double(usage.bytes_held);
    wasteSum += waste;
    wasteMax = std::max(wasteMax, waste);
    tableMax = std::max(tableMax, 100.0 * double(usage.table_bytes) /
                                      double(usage.bytes_used));
    partialPerHeadMax = std::max(partialPerHeadMax, double(partial) / headRows);
    reservedMax = std::max(reservedMax, reserved);
    bytesHeldPeak = std::max(bytesHeldPeak, usage.bytes_held);
    tokensPeak = std::max(tokensPeak, tokens);
    spanningRatioSum += double(spanningPages) / double(usage.pages_used);
    adjacentSum += adjacentShare();
  }

  /// Of the active rows' neighbouring table entries (page j, page j + 1),
  /// the share whose ids are adjacent too: how much of what decode reads
  /// lies on runs of consecutive pages (white-box: kvrt's tables).
  double adjacentShare() const {
    int64_t pairs = 0, adjacent = 0;
    for (const Active &sequence : active) {
      const kvrt::Sequence *record = pool->findSequence(sequence.id);
      for (const kvrt_cache *cache : caches) {
        const kvrt::CacheSequence *state =
            record ? cache->state(*record) : nullptr;
        if (!state)
          continue;
        for (const kvrt::HeadTable &head : state->heads)
          for (size_t j = 1; j < head.pages.size(); ++j) {
            ++pairs;
            adjacent += head.pages[j] == head.pages[j - 1] + 1;
          }
      }
    }
    return pairs ? 100.0 * double(adjacent) / double(pairs) : 0.0;
  }

  kvrt_pool *pool = nullptr;
  std::vector<kvrt_cache *> caches;
  std::mt19937 rng;
  int64_t rowBytes = 0;
  std::vector<unsigned char> data;
  std::vector<Active> active;
};

void ServingTrace(benchmark::State &state, TraceConfig config) {
  for (auto _ : state) {
    TraceDriver trace(config);
    if (!trace.run()) {
      state.SkipWithError(trace.error.c_str());
      return;
    }
    state.counters["sequences"] = trace.served;
    state.counters["decode_steps"] = double(trace.steps);
    state.counters["waste_pct_mean"] = trace.wasteSum / double(trace.snapshots);
    state.counters["waste_pct_max"] = trace.wasteMax;
    state.counters["table_overhead_pct_max"] = trace.tableMax;
    state.counters["partial_pages_per_head_max"] = trace.partialPerHeadMax;
    state.counters["reserved_pages_max"] = double(trace.reservedMax);
    state.counters["bytes_held_peak_MiB"] =
        double(trace.bytesHeldPeak) / (1 << 20);
    state.counters["head_spanning_alloc_ratio"] =
        trace.spanningRatioSum / double(trace.snapshots);
    state.counters["adjacent_pages_pct_mean"] =
        trace.adjacentSum / double(trace.snapshots);
  }
}

// Llama-3-8B attention shape (8 kv heads of 128 f16 dims, pages of 16), 8 of
// its 32 layers to bound the copying; 2000 requests, 32 at a time.
BENCHMARK_CAPTURE(ServingTrace, llama3_8b_8layers,
                  TraceConfig{8, 8, 128, 16, 2000, 32, 64, 2048, 16, 256, 256,
                              32, 20.0, 4.0, 1 << 16, 1})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
// The same with pages back head by head (KVRT_RELEASE_ORDER=heads).
BENCHMARK_CAPTURE(ServingTrace, llama3_8b_8layers_heads_release,
                  TraceConfig{8, 8, 128, 16, 2000, 32, 64, 2048, 16, 256, 256,
                              32, 20.0, 4.0, 1 << 16, 1, true})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
// For the test suite: seconds under sanitizers.
BENCHMARK_CAPTURE(ServingTrace, smoke,
                  TraceConfig{2, 2, 16, 16, 24, 4, 16, 200, 4, 24, 48, 8, 20.0,
                              4.0, 4096, 1})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

/// kvrt_sequence_destroy of a sequence holding range(0) pages per row
/// (pages of one token) in 4 caches of 8 heads: with range(1) = 0 each
/// row's pages one run (appended at once), with 1 every page a run of its
/// own (decoded in step with a second sequence); range(2) = 0 kvrt's
/// release order (sorted), 1 head by head (KVRT_RELEASE_ORDER=heads).
void SequenceDestroy(benchmark::State &state) {
  constexpr int32_t kLayers = 4, kHeads = 8;
  const int32_t tokens = static_cast<int32_t>(state.range(0));
  const bool interleaved = state.range(1) != 0;
  kvrt_cache_desc desc{kHeads, 4, KVRT_DTYPE_F16, 1, tokens};
  if (state.range(2) != 0)
    setenv("KVRT_RELEASE_ORDER", "heads", 1);
  kvrt_pool *pool = nullptr;
  kvrt_status status =
      kvrt_pool_create(KVRT_DEVICE_HOST, kvrt_cache_page_bytes(&desc),
                       2 * int64_t(kLayers) * kHeads * tokens + 16, &pool);
  unsetenv("KVRT_RELEASE_ORDER");
  std::vector<kvrt_cache *> caches(kLayers, nullptr);
  for (kvrt_cache *&cache : caches)
    if (status == KVRT_OK)
      status = kvrt_cache_create(pool, &desc, &cache);
  std::vector<unsigned char> rows(size_t(2) * tokens * kHeads * 4 * 2);
  for (auto _ : state) {
    state.PauseTiming();
    int32_t ids[2] = {-1, -1};
    for (int32_t &id : ids)
      if (status == KVRT_OK)
        status = kvrt_sequence_create(pool, &id);
    for (int32_t t = 0; status == KVRT_OK && t < (interleaved ? tokens : 1);
         ++t)
      for (kvrt_cache *cache : caches)
        if (status == KVRT_OK)
          status = kvrt_append(cache, interleaved ? 2 : 1, ids,
                               interleaved ? 1 : tokens, rows.data(),
                               rows.data(), nullptr);
    if (status != KVRT_OK) {
      state.SkipWithError(kvrt_last_error());
      break;
    }
    state.ResumeTiming();
    status = kvrt_sequence_destroy(pool, ids[0]);
    state.PauseTiming();
    if (status == KVRT_OK)
      status = kvrt_sequence_destroy(pool, ids[1]);
    state.ResumeTiming();
  }
  state.counters["pages"] = double(kLayers) * kHeads * tokens;
  kvrt_pool_destroy(pool);
}
BENCHMARK(SequenceDestroy)
    ->ArgsProduct({{8192}, {0, 1}, {0, 1}})
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
