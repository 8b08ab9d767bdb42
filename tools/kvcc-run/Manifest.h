//===- Manifest.h - kvcc entry-point manifests ------------------*- C++ -*-===//
//
// kvcc writes, next to every compiled library, a line-based text manifest
// (NAME.kvcc) listing the library's entry points, their C parameters and the
// ops each one performs. kvcc-run reads it to know how to call the library
// and what the outputs must be. This file only parses and validates; it knows
// nothing about kvrt or the reference computation.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_RUN_MANIFEST_H
#define KVCC_RUN_MANIFEST_H

#include <cstdint>
#include <string>
#include <vector>

namespace kvcc {
namespace run {

/// Element types a manifest may name; mirrors kvrt_dtype.
enum class DType { F16, BF16, F32 };

/// Manifest spelling of a dtype ("f16", "bf16", "f32").
const char *dtypeName(DType dtype);
/// Size in bytes of one element.
unsigned dtypeSize(DType dtype);

/// One layer's cache as an entry point expects it (mirrors kvrt_cache_desc).
struct CacheDesc {
  int32_t numKvHeads = 0;
  int32_t headDim = 0;
  DType dtype = DType::F32;
  int32_t pageSize = 0;
  int64_t capacity = 0;

  bool operator==(const CacheDesc &other) const;
  bool operator!=(const CacheDesc &other) const { return !(*this == other); }
};

/// A static tensor type: dtype and a non-empty list of positive dimensions.
struct TensorType {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numElements() const;
  /// "4x1x32x128 f16", as printed in kvcc-run's report.
  std::string str() const;
};

/// One `arg` line: a C parameter of the entry point.
struct Arg {
  enum Kind { Cache, Seqs, Tensor };
  Kind kind = Tensor;
  unsigned line = 0;
  /// Kind == Cache: the cache description and which layer it is (the k-th
  /// cache argument of every entry is layer k).
  CacheDesc cache;
  unsigned layer = 0;
  /// Kind == Seqs: how many sequence ids the parameter points to.
  int32_t batch = 0;
  /// Kind == Tensor: the input's type.
  TensorType type;
};

/// One `op` line. Indices refer to the entry's args (and results for
/// Attention::result); they are validated when the entry ends.
struct Op {
  enum Kind { Append, Attention };
  Kind kind = Append;
  unsigned line = 0;
  unsigned cacheArg = 0;
  unsigned seqsArg = 0;
  /// Append only.
  unsigned keyArg = 0;
  unsigned valueArg = 0;
  /// Attention only.
  unsigned queryArg = 0;
  unsigned result = 0;
  double scale = 0;
  bool causal = false;
};

/// One `result` line: a caller-allocated output buffer.
struct Result {
  unsigned line = 0;
  TensorType type;
};

struct Entry {
  std::string name;
  unsigned line = 0;
  std::vector<Arg> args;
  std::vector<Result> results;
  std::vector<Op> ops;
};

struct Manifest {
  /// Path as given on the command line and its directory ("." if none), which
  /// relative library paths are resolved against.
  std::string path;
  std::string directory;
  bool targetCuda = false;
  /// The library as written in the manifest and its resolved path.
  std::string library;
  std::string libraryPath;
  unsigned libraryLine = 0;
  std::vector<Entry> entries;
  /// Every physical cache, indexed by layer.
  std::vector<CacheDesc> layers;
  /// Largest batch of any `arg seqs`: how many sequences kvcc-run creates.
  int32_t maxBatch = 0;

  /// Number of C parameters of `entry` (args, results, trailing stream).
  unsigned numParams(const Entry &entry) const;
  const Entry *findEntry(const std::string &name) const;
};

/// Most parameters an entry point may take: kvcc-run calls through a table of
/// function-pointer types generated up to this arity.
constexpr unsigned kMaxParams = 64;

/// Reads and validates the manifest at `path`. On failure returns false and
/// sets `error` to "PATH:LINE: message".
bool parseManifest(const std::string &path, Manifest &manifest,
                   std::string &error);

} // namespace run
} // namespace kvcc

#endif // KVCC_RUN_MANIFEST_H
