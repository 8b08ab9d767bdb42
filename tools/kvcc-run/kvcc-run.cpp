//===- kvcc-run.cpp - Run and check a kvcc-compiled library ---*- C++ -*-===//
//
// kvcc-run is the end-to-end check of the compiler: it loads a compiled
// library through its manifest, gives it real kvrt caches and sequences,
// calls its entry points on random inputs following a schedule, and compares
// every output (and every cache it appended to) with the float64 reference
// in Reference.cpp. It deliberately uses no LLVM so it also builds on
// machines where only the runtime is built.
//
//===----------------------------------------------------------------------===//

#include "Manifest.h"
#include "Reference.h"

#include "kvrt/kvrt.h"

#include <dlfcn.h>

#if KVCC_RUN_HAS_CUDA
#include <cuda_runtime.h>
#endif

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

using namespace kvcc::run;

namespace {

//===----------------------------------------------------------------------===//
// Calling entry points of any arity
//===----------------------------------------------------------------------===//

/// Every entry-point parameter is pointer sized, so an entry with N
/// parameters can be called as `int32_t (*)(void *, ... N times)`. The
/// trampolines below are instantiated for every N up to kMaxParams.
using Trampoline = int32_t (*)(void *symbol, void *const *params);

template <size_t I> using PointerParam = void *;

template <size_t... I>
int32_t invokeWith(void *symbol, void *const *params,
                   std::index_sequence<I...>) {
  using Function = int32_t (*)(PointerParam<I>...);
  (void)params;
  return reinterpret_cast<Function>(symbol)(params[I]...);
}

template <size_t N> int32_t invokeArity(void *symbol, void *const *params) {
  return invokeWith(symbol, params, std::make_index_sequence<N>());
}

template <size_t... N>
constexpr std::array<Trampoline, sizeof...(N)>
makeTrampolines(std::index_sequence<N...>) {
  return {{&invokeArity<N>...}};
}

constexpr auto kTrampolines =
    makeTrampolines(std::make_index_sequence<kMaxParams + 1>());

//===----------------------------------------------------------------------===//
// Options
//===----------------------------------------------------------------------===//

struct Options {
  std::string manifest;
  std::string device; // "" = the manifest's target
  std::string calls;
  uint64_t seed = 0;
  double rtol = -1;   // < 0 = per-dtype default
  int64_t pages = -1; // < 0 = enough for every cache at full capacity
  bool quiet = false;
};

const char *const kUsage =
    "usage: kvcc-run MANIFEST [--device cpu|cuda] [--calls SCHEDULE]\n"
    "                [--seed N] [--rtol X] [--pages N] [--quiet]\n"
    "  SCHEDULE: comma-separated entry names, each optionally '*COUNT',\n"
    "            e.g. prefill,decode_step*8 (default: every entry once)\n";

/// Prints "kvcc-run: error: ..." to stderr; for bad usage, manifests and
/// libraries, all of which exit with status 2.
void error(const char *format, ...) {
  std::fputs("kvcc-run: error: ", stderr);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

bool parseOptions(int argc, char **argv, Options &options) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--quiet") {
      options.quiet = true;
      continue;
    }
    if (arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      if (!options.manifest.empty()) {
        error("more than one manifest given ('%s', '%s')",
              options.manifest.c_str(), arg.c_str());
        return false;
      }
      options.manifest = arg;
      continue;
    }
    // Accept both "--flag value" and "--flag=value".
    std::string name = arg, value;
    size_t equals = arg.find('=');
    if (equals != std::string::npos) {
      name = arg.substr(0, equals);
      value = arg.substr(equals + 1);
    } else if (name == "--device" || name == "--calls" || name == "--seed" ||
               name == "--rtol" || name == "--pages") {
      if (i + 1 == argc) {
        error("%s needs a value", name.c_str());
        return false;
      }
      value = argv[++i];
    }
    char *end = nullptr;
    if (name == "--device") {
      if (value != "cpu" && value != "cuda") {
        error("bad --device '%s' (expected cpu or cuda)", value.c_str());
        return false;
      }
      options.device = value;
    } else if (name == "--calls") {
      options.calls = value;
    } else if (name == "--seed") {
      options.seed = std::strtoull(value.c_str(), &end, 0);
      if (value.empty() || *end || value[0] == '-') {
        error("bad --seed '%s'", value.c_str());
        return false;
      }
    } else if (name == "--rtol") {
      options.rtol = std::strtod(value.c_str(), &end);
      if (value.empty() || *end || !(options.rtol >= 0) ||
          options.rtol == HUGE_VAL) {
        error("bad --rtol '%s'", value.c_str());
        return false;
      }
    } else if (name == "--pages") {
      options.pages = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end || options.pages <= 0) {
        error("bad --pages '%s'", value.c_str());
        return false;
      }
    } else {
      error("unknown option '%s'", arg.c_str());
      return false;
    }
  }
  if (options.manifest.empty()) {
    error("no manifest given");
    return false;
  }
  return true;
}

/// One call of the schedule and how it is printed ("decode_step #3").
struct Call {
  const Entry *entry;
  std::string label;
};

bool parseSchedule(const Manifest &manifest, const std::string &text,
                   std::vector<Call> &calls) {
  std::vector<const Entry *> entries;
  if (text.empty()) {
    for (const Entry &entry : manifest.entries)
      entries.push_back(&entry);
  } else {
    size_t start = 0;
    while (start <= text.size()) {
      size_t comma = text.find(',', start);
      if (comma == std::string::npos)
        comma = text.size();
      std::string item = text.substr(start, comma - start);
      start = comma + 1;
      std::string name = item;
      long long count = 1;
      size_t star = item.find('*');
      if (star != std::string::npos) {
        name = item.substr(0, star);
        std::string countText = item.substr(star + 1);
        char *end = nullptr;
        count = std::strtoll(countText.c_str(), &end, 10);
        if (countText.empty() || *end || count <= 0 || count > 1000000) {
          error("bad repeat count in --calls item '%s'", item.c_str());
          return false;
        }
      }
      const Entry *entry = manifest.findEntry(name);
      if (!entry) {
        error("--calls names '%s', which is not an entry of %s", name.c_str(),
              manifest.path.c_str());
        return false;
      }
      entries.insert(entries.end(), count, entry);
    }
  }

  // Number the calls of an entry only when it runs more than once.
  std::map<const Entry *, unsigned> total, seen;
  for (const Entry *entry : entries)
    ++total[entry];
  for (const Entry *entry : entries) {
    std::string label = entry->name;
    if (total[entry] > 1)
      label += " #" + std::to_string(++seen[entry]);
    calls.push_back({entry, label});
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Buffers on the host or a CUDA device
//===----------------------------------------------------------------------===//

/// One input or output buffer as the entry point sees it: host memory for
/// target cpu, cudaMalloc'd memory for target cuda. Methods return an error
/// message, "" on success.
class DeviceBuffer {
public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer &) = delete;
  DeviceBuffer &operator=(const DeviceBuffer &) = delete;
  ~DeviceBuffer() {
#if KVCC_RUN_HAS_CUDA
    if (cuda && pointer)
      cudaFree(pointer);
#endif
  }

  std::string allocate(bool onCuda, size_t bytes) {
    cuda = onCuda;
    size = bytes;
    if (!cuda) {
      host.resize(bytes);
      pointer = host.data();
      return "";
    }
#if KVCC_RUN_HAS_CUDA
    return check(cudaMalloc(&pointer, bytes), "cudaMalloc");
#else
    return "built without CUDA";
#endif
  }

  std::string upload(const std::vector<uint8_t> &bytes) {
    if (!cuda) {
      host = bytes;
      return "";
    }
#if KVCC_RUN_HAS_CUDA
    return check(
        cudaMemcpy(pointer, bytes.data(), size, cudaMemcpyHostToDevice),
        "cudaMemcpy");
#else
    return "built without CUDA";
#endif
  }

  std::string fill(uint8_t byte) {
    if (!cuda) {
      std::fill(host.begin(), host.end(), byte);
      return "";
    }
#if KVCC_RUN_HAS_CUDA
    return check(cudaMemset(pointer, byte, size), "cudaMemset");
#else
    return "built without CUDA";
#endif
  }

  std::string download(std::vector<uint8_t> &bytes) const {
    if (!cuda) {
      bytes = host;
      return "";
    }
#if KVCC_RUN_HAS_CUDA
    bytes.resize(size);
    return check(
        cudaMemcpy(bytes.data(), pointer, size, cudaMemcpyDeviceToHost),
        "cudaMemcpy");
#else
    return "built without CUDA";
#endif
  }

  void *data() const { return pointer; }

private:
#if KVCC_RUN_HAS_CUDA
  static std::string check(cudaError_t status, const char *what) {
    if (status == cudaSuccess)
      return "";
    return std::string(what) + " failed: " + cudaGetErrorString(status);
  }
#endif

  bool cuda = false;
  size_t size = 0;
  void *pointer = nullptr;
  /// Backing store when the buffer lives on the host.
  std::vector<uint8_t> host;
};

//===----------------------------------------------------------------------===//
// The runner
//===----------------------------------------------------------------------===//

kvrt_dtype toKvrt(DType dtype) {
  switch (dtype) {
  case DType::F16:
    return KVRT_DTYPE_F16;
  case DType::BF16:
    return KVRT_DTYPE_BF16;
  case DType::F32:
    return KVRT_DTYPE_F32;
  }
  return KVRT_DTYPE_F32;
}

kvrt_cache_desc toKvrt(const CacheDesc &desc) {
  kvrt_cache_desc result;
  result.num_kv_heads = desc.numKvHeads;
  result.head_dim = desc.headDim;
  result.dtype = toKvrt(desc.dtype);
  result.page_size = desc.pageSize;
  result.capacity = desc.capacity;
  return result;
}

/// "KVRT_ERROR_CAPACITY", or the number for a status kvrt does not name
/// (an entry point may return anything).
std::string statusName(kvrt_status status) {
  const char *name = kvrt_status_name(status);
  return name ? name : "kvrt status " + std::to_string(status);
}

/// "KVRT_ERROR_CAPACITY: <kvrt_last_error()>".
std::string kvrtError(kvrt_status status) {
  std::string text = statusName(status);
  const char *message = kvrt_last_error();
  if (message && *message)
    text += std::string(": ") + message;
  return text;
}

std::string format(const char *format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

/// "[b, t, h, d]" for a flat index into a tensor of `shape`.
std::string formatIndex(const std::vector<int64_t> &shape, int64_t flat) {
  std::vector<int64_t> index(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    index[i] = flat % shape[i];
    flat /= shape[i];
  }
  std::string text = "[";
  for (size_t i = 0; i < index.size(); ++i)
    text += (i ? ", " : "") + std::to_string(index[i]);
  return text + "]";
}

class Runner {
public:
  Runner(const Manifest &manifest, const Options &options, bool cuda)
      : manifest(manifest), options(options), cuda(cuda), rng(options.seed) {}
  ~Runner() { kvrt_pool_destroy(pool); }

  /// Creates the pool, caches and sequences. Returns "" or why it failed.
  std::string setUp();
  /// Runs one call and checks it. Returns "" when the schedule may go on
  /// (even if a check failed) and the reason when it must stop.
  std::string run(const Call &call, void *symbol);

  unsigned numCalls = 0;
  unsigned numOutputs = 0;
  unsigned numFailed = 0;

private:
  /// Uniform in [-1, 1), computed from raw 64-bit draws so that the inputs
  /// for a seed do not depend on the standard library's distributions.
  double nextRandom() { return double(rng() >> 11) * 0x1.0p-52 - 1.0; }
  /// Compares the lengths and contents kvrt holds for every sequence of
  /// cache `layer` with the reference; clears `ok` on a mismatch.
  void checkCache(unsigned layer, bool &ok);
  /// Prints a line of the call's report; in quiet mode lines are held back
  /// and printed only if the call fails.
  void report(const std::string &line) { pending.push_back(line); }
  void flushReport(bool failed) {
    if (!options.quiet || failed)
      for (const std::string &line : pending)
        std::printf("%s\n", line.c_str());
    pending.clear();
  }

  const Manifest &manifest;
  const Options &options;
  bool cuda;
  std::mt19937_64 rng;
  kvrt_pool *pool = nullptr;
  std::vector<kvrt_cache *> caches;
  std::vector<int32_t> sequenceIds;
  std::vector<ReferenceCache> references;
  std::vector<std::string> pending;
};

} // namespace

std::string Runner::setUp() {
  // Every cache may fill every sequence to capacity, so reserve that many
  // pages: a failure then means a bug, not an undersized pool.
  int64_t pageBytes = 0, pages = 0;
  for (const CacheDesc &layer : manifest.layers) {
    kvrt_cache_desc desc = toKvrt(layer);
    pageBytes = std::max<int64_t>(pageBytes, kvrt_cache_page_bytes(&desc));
    int64_t pagesPerHead = (layer.capacity - 1) / layer.pageSize + 1;
    int64_t layerPages;
    if (__builtin_mul_overflow(pagesPerHead,
                               int64_t(layer.numKvHeads) * manifest.maxBatch,
                               &layerPages) ||
        __builtin_add_overflow(pages, layerPages, &pages))
      return "caches at full capacity need more than 2^63 pages; use --pages";
  }
  if (manifest.layers.empty()) // sequences alone still need a pool
    pageBytes = 64;
  if (options.pages > 0)
    pages = options.pages;
  pages = std::max<int64_t>(pages, 1);

  kvrt_status status = kvrt_pool_create(
      cuda ? KVRT_DEVICE_CUDA : KVRT_DEVICE_HOST, pageBytes, pages, &pool);
  if (status != KVRT_OK)
    return format("kvrt_pool_create(%" PRId64 " pages x %" PRId64
                  " B) returned ",
                  pages, pageBytes) +
           kvrtError(status);
  for (const CacheDesc &layer : manifest.layers) {
    kvrt_cache_desc desc = toKvrt(layer);
    kvrt_cache *cache = nullptr;
    if ((status = kvrt_cache_create(pool, &desc, &cache)) != KVRT_OK)
      return format("kvrt_cache_create(cache %zu) returned ", caches.size()) +
             kvrtError(status);
    caches.push_back(cache);
    references.emplace_back(layer, manifest.maxBatch);
  }
  for (int32_t i = 0; i < manifest.maxBatch; ++i) {
    int32_t id = -1;
    if ((status = kvrt_sequence_create(pool, &id)) != KVRT_OK)
      return "kvrt_sequence_create returned " + kvrtError(status);
    sequenceIds.push_back(id);
  }
  if (!options.quiet)
    std::printf("kvcc-run: %zu caches, %d sequences, pool %" PRId64
                " pages x %" PRId64 " B\n",
                caches.size(), manifest.maxBatch, pages, pageBytes);
  return "";
}

void Runner::checkCache(unsigned layer, bool &ok) {
  const ReferenceCache &reference = references[layer];
  const CacheDesc &desc = reference.desc();
  const size_t elementBytes = dtypeSize(desc.dtype);
  const size_t tokenElements = size_t(desc.numKvHeads) * desc.headDim;
  int64_t minLength = INT64_MAX, maxLength = 0;
  std::vector<uint8_t> keys, values;
  std::string failure;
  for (unsigned seq = 0; seq < reference.numSequences() && failure.empty();
       ++seq) {
    int64_t length = -1;
    kvrt_status status =
        kvrt_cache_sequence_length(caches[layer], sequenceIds[seq], &length);
    if (status != KVRT_OK) {
      failure = "kvrt_cache_sequence_length returned " + kvrtError(status);
      break;
    }
    if (length != reference.length(seq)) {
      failure =
          format("sequence %u holds %" PRId64 " tokens, expected %" PRId64, seq,
                 length, reference.length(seq));
      break;
    }
    minLength = std::min(minLength, length);
    maxLength = std::max(maxLength, length);
    if (!length)
      continue;
    keys.assign(length * tokenElements * elementBytes, 0);
    values.assign(keys.size(), 0);
    status = kvrt_cache_read(caches[layer], sequenceIds[seq], keys.data(),
                             values.data());
    if (status != KVRT_OK) {
      failure = "kvrt_cache_read returned " + kvrtError(status);
      break;
    }
    const std::vector<uint8_t> *got[2] = {&keys, &values};
    const std::vector<uint8_t> *want[2] = {&reference.keyBytes(seq),
                                           &reference.valueBytes(seq)};
    for (int kv = 0; kv < 2 && failure.empty(); ++kv) {
      if (std::memcmp(got[kv]->data(), want[kv]->data(), got[kv]->size()) == 0)
        continue;
      size_t element = 0;
      while (std::memcmp(got[kv]->data() + element * elementBytes,
                         want[kv]->data() + element * elementBytes,
                         elementBytes) == 0)
        ++element;
      failure = format(
          "sequence %u %s %s: got %g, expected %g", seq, kv ? "value" : "key",
          formatIndex({length, desc.numKvHeads, desc.headDim}, element).c_str(),
          loadElement(desc.dtype, got[kv]->data(), element),
          loadElement(desc.dtype, want[kv]->data(), element));
    }
  }
  std::string line = format("  append -> cache %u: ", layer);
  if (!failure.empty()) {
    ok = false;
    ++numFailed;
    report(line + failure + " FAILED");
    return;
  }
  if (minLength == maxLength)
    line += format("%u sequences of %" PRId64 " tokens",
                   reference.numSequences(), maxLength);
  else
    line += format("%u sequences of %" PRId64 "..%" PRId64 " tokens",
                   reference.numSequences(), minLength, maxLength);
  report(line + ", K/V bit-exact");
}

std::string Runner::run(const Call &call, void *symbol) {
  const Entry &entry = *call.entry;
  ++numCalls;

  // Fresh inputs for every call; the buffers stay alive until the checks
  // are done because the reference reads the same host copies.
  std::vector<HostTensor> inputs;
  std::vector<DeviceBuffer> inputBuffers(entry.args.size());
  std::vector<DeviceBuffer> outputBuffers(entry.results.size());
  std::vector<void *> params;
  std::vector<int> inputOf(entry.args.size(), -1);
  std::string failure;
  for (size_t i = 0; i < entry.args.size(); ++i) {
    const Arg &arg = entry.args[i];
    switch (arg.kind) {
    case Arg::Cache:
      params.push_back(caches[arg.layer]);
      break;
    case Arg::Seqs:
      params.push_back(sequenceIds.data());
      break;
    case Arg::Tensor: {
      HostTensor tensor(arg.type);
      std::vector<double> random(tensor.values.size());
      for (double &value : random)
        value = nextRandom();
      tensor.assign(random);
      inputOf[i] = inputs.size();
      inputs.push_back(std::move(tensor));
      if (!(failure =
                inputBuffers[i].allocate(cuda, inputs.back().bytes.size()))
               .empty() ||
          !(failure = inputBuffers[i].upload(inputs.back().bytes)).empty())
        return "call " + call.label + ": " + failure;
      params.push_back(inputBuffers[i].data());
      break;
    }
    }
  }
  for (size_t i = 0; i < entry.results.size(); ++i) {
    const TensorType &type = entry.results[i].type;
    // All-ones bytes are NaN in every dtype, so an element the entry never
    // writes cannot pass the check.
    if (!(failure = outputBuffers[i].allocate(cuda, type.numElements() *
                                                        dtypeSize(type.dtype)))
             .empty() ||
        !(failure = outputBuffers[i].fill(0xFF)).empty())
      return "call " + call.label + ": " + failure;
    params.push_back(outputBuffers[i].data());
  }
  if (cuda)
    params.push_back(nullptr); // the stream: the default stream

  int32_t status = kTrampolines[params.size()](symbol, params.data());
  if (status != KVRT_OK) {
    report("call " + call.label + ": " + statusName(status));
    flushReport(true);
    return "call " + call.label + ": entry returned " + kvrtError(status);
  }
#if KVCC_RUN_HAS_CUDA
  if (cuda) {
    cudaError_t synced = cudaDeviceSynchronize();
    if (synced != cudaSuccess)
      return "call " + call.label +
             ": cudaDeviceSynchronize failed: " + cudaGetErrorString(synced);
  }
#endif
  report("call " + call.label + ": ok");

  // Replay the ops on the reference, in order, as the entry should have.
  std::vector<std::vector<double>> expected(entry.results.size());
  std::vector<const Op *> producer(entry.results.size());
  std::set<unsigned> appended;
  for (const Op &op : entry.ops) {
    ReferenceCache &reference = references[entry.args[op.cacheArg].layer];
    std::string problem;
    if (op.kind == Op::Append) {
      problem = reference.append(inputs[inputOf[op.keyArg]],
                                 inputs[inputOf[op.valueArg]]);
      appended.insert(entry.args[op.cacheArg].layer);
    } else {
      problem = reference.attention(inputs[inputOf[op.queryArg]], op.scale,
                                    op.causal, expected[op.result]);
      producer[op.result] = &op;
    }
    if (!problem.empty()) {
      flushReport(true);
      return format("call %s: the entry succeeded, but op %s at line %u is "
                    "invalid: ",
                    call.label.c_str(),
                    op.kind == Op::Append ? "append" : "attention", op.line) +
             problem;
    }
  }

  bool ok = true;
  for (size_t i = 0; i < entry.results.size(); ++i) {
    const TensorType &type = entry.results[i].type;
    HostTensor output(type);
    if (!(failure = outputBuffers[i].download(output.bytes)).empty()) {
      flushReport(true);
      return "call " + call.label + ": " + failure;
    }
    output.decodeBytes();
    ++numOutputs;
    Comparison comparison = compareOutputs(output.values, expected[i]);
    const double bound =
        options.rtol >= 0 ? options.rtol : defaultTolerance(type.dtype);
    std::string line =
        format("  attention -> result %zu [%s]: ", i, type.str().c_str());
    bool passed = false;
    if (comparison.numNonFinite) {
      line += format(
          "%" PRId64 " of %" PRId64 " elements are NaN or inf (first at %s)",
          comparison.numNonFinite, type.numElements(),
          formatIndex(type.shape, comparison.firstNonFinite).c_str());
    } else {
      line += format("rel_err %.1e (bound %.1e) max_abs %.1e",
                     comparison.relErr, bound, comparison.maxAbs);
      passed = comparison.relErr <= bound;
    }
    if (!passed) {
      line += format(" FAILED (op at line %u)", producer[i]->line);
      ok = false;
      ++numFailed;
    }
    report(line);
  }
  for (unsigned layer : appended)
    checkCache(layer, ok);
  flushReport(!ok);
  return "";
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
  Options options;
  if (!parseOptions(argc, argv, options)) {
    std::fputs(kUsage, stderr);
    return 2;
  }

  try {
    Manifest manifest;
    std::string problem;
    if (!parseManifest(options.manifest, manifest, problem)) {
      error("%s", problem.c_str());
      return 2;
    }
    const char *target = manifest.targetCuda ? "cuda" : "cpu";
    if (!options.device.empty() && options.device != target) {
      error("%s targets %s; it cannot run with --device %s",
            manifest.path.c_str(), target, options.device.c_str());
      return 2;
    }
#if !KVCC_RUN_HAS_CUDA
    if (manifest.targetCuda) {
      error("%s targets cuda, but kvcc-run was built without CUDA",
            manifest.path.c_str());
      return 2;
    }
#endif
    if (manifest.targetCuda && !kvrt_has_cuda()) {
      error("%s targets cuda, but kvrt was built without CUDA",
            manifest.path.c_str());
      return 2;
    }
#if KVCC_RUN_HAS_CUDA
    // Said up front, so that a machine without a GPU is not mistaken for a
    // failing check (tests skip on this message).
    int numDevices = 0;
    if (manifest.targetCuda) {
      cudaError_t status = cudaGetDeviceCount(&numDevices);
      if (status != cudaSuccess || numDevices == 0) {
        error("no CUDA device available (%s)", status != cudaSuccess
                                                   ? cudaGetErrorString(status)
                                                   : "device count is 0");
        return 2;
      }
    }
#endif

    std::vector<Call> calls;
    if (!parseSchedule(manifest, options.calls, calls))
      return 2;

    // RTLD_NOW: a library with unresolved symbols should fail here, with a
    // message, rather than in the middle of a call.
    void *library = dlopen(manifest.libraryPath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library) {
      error("%s:%u: cannot load library '%s': %s", manifest.path.c_str(),
            manifest.libraryLine, manifest.library.c_str(), dlerror());
      return 2;
    }
    std::map<const Entry *, void *> symbols;
    for (const Entry &entry : manifest.entries) {
      dlerror();
      void *symbol = dlsym(library, entry.name.c_str());
      if (!symbol) {
        const char *reason = dlerror();
        error("%s:%u: library '%s' has no entry point '%s'%s%s",
              manifest.path.c_str(), entry.line, manifest.library.c_str(),
              entry.name.c_str(), reason ? ": " : "", reason ? reason : "");
        return 2;
      }
      symbols[&entry] = symbol;
    }

    if (!options.quiet) {
      size_t slash = manifest.path.rfind('/');
      std::string name = slash == std::string::npos
                             ? manifest.path
                             : manifest.path.substr(slash + 1);
      std::printf("kvcc-run: %s: target %s, device %s, library %s\n",
                  name.c_str(), target, target, manifest.library.c_str());
    }

    // Scoped so that the pool is destroyed before the library is closed.
    int exitCode = 0;
    {
      Runner runner(manifest, options, manifest.targetCuda);
      std::string fatal = runner.setUp();
      for (size_t i = 0; i < calls.size() && fatal.empty(); ++i)
        fatal = runner.run(calls[i], symbols[calls[i].entry]);
      if (!fatal.empty()) {
        std::printf("FAIL: %s\n", fatal.c_str());
        exitCode = 1;
      } else {
        std::printf("%s: %u calls, %u outputs checked, %u failed\n",
                    runner.numFailed ? "FAIL" : "PASS", runner.numCalls,
                    runner.numOutputs, runner.numFailed);
        exitCode = runner.numFailed ? 1 : 0;
      }
    }
    std::fflush(stdout);
    dlclose(library);
    return exitCode;
  } catch (const std::bad_alloc &) {
    std::printf("FAIL: out of memory\n");
    return 1;
  }
}
