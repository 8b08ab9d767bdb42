//===- Manifest.cpp - kvcc entry-point manifest parser ---------*- C++ -*-===//
//
// The manifest is produced by the compiler, but kvcc-run is also pointed at
// hand-written and broken ones, so every token is checked and every error
// names the offending line instead of crashing later on a bad index.
//
//===----------------------------------------------------------------------===//

#include "Manifest.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace kvcc::run;

const char *kvcc::run::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::F32:
    return "f32";
  }
  return "?";
}

unsigned kvcc::run::dtypeSize(DType dtype) {
  return dtype == DType::F32 ? 4 : 2;
}

bool CacheDesc::operator==(const CacheDesc &other) const {
  return numKvHeads == other.numKvHeads && headDim == other.headDim &&
         dtype == other.dtype && pageSize == other.pageSize &&
         capacity == other.capacity;
}

int64_t TensorType::numElements() const {
  int64_t count = 1;
  for (int64_t dim : shape)
    count *= dim;
  return count;
}

std::string TensorType::str() const {
  std::string text;
  for (size_t i = 0; i < shape.size(); ++i)
    text += (i ? "x" : "") + std::to_string(shape[i]);
  return text + " " + dtypeName(dtype);
}

unsigned Manifest::numParams(const Entry &entry) const {
  return entry.args.size() + entry.results.size() + (targetCuda ? 1 : 0);
}

const Entry *Manifest::findEntry(const std::string &name) const {
  for (const Entry &entry : entries)
    if (entry.name == name)
      return &entry;
  return nullptr;
}

namespace {

/// Largest tensor kvcc-run accepts. Inputs are generated and kept in float64,
/// so an absurd shape in a broken manifest must be rejected here rather than
/// end in a failed allocation.
constexpr int64_t kMaxElements = int64_t(1) << 30;

/// Parses a whole decimal integer in [minValue, maxValue].
bool parseInt(const std::string &token, int64_t minValue, int64_t maxValue,
              int64_t &value) {
  if (token.empty() || !(std::isdigit((unsigned char)token[0]) ||
                         (token[0] == '-' && token.size() > 1)))
    return false;
  errno = 0;
  char *end = nullptr;
  long long parsed = std::strtoll(token.c_str(), &end, 10);
  if (errno || *end || parsed < minValue || parsed > maxValue)
    return false;
  value = parsed;
  return true;
}

bool parseDType(const std::string &token, DType &dtype) {
  if (token == "f16")
    dtype = DType::F16;
  else if (token == "bf16")
    dtype = DType::BF16;
  else if (token == "f32")
    dtype = DType::F32;
  else
    return false;
  return true;
}

bool isIdentifier(const std::string &name) {
  if (name.empty() || std::isdigit((unsigned char)name[0]))
    return false;
  for (char c : name)
    if (!std::isalnum((unsigned char)c) && c != '_')
      return false;
  return true;
}

class Parser {
public:
  Parser(Manifest &manifest, std::string &error)
      : manifest(manifest), error(error) {}

  bool run(std::istream &input);

private:
  /// Records "PATH:LINE: message" and returns false, so that callers can
  /// write `return fail(...)`.
  bool fail(unsigned atLine, const std::string &message) {
    error = manifest.path + ":" + std::to_string(atLine) + ": " + message;
    return false;
  }
  bool fail(const std::string &message) { return fail(line, message); }

  bool expectTokens(const std::vector<std::string> &tokens, size_t count,
                    const char *syntax);
  bool parseTensorType(const std::string &dtype, const std::string &shape,
                       TensorType &type);
  bool parseLine(const std::vector<std::string> &tokens);
  bool parseArg(const std::vector<std::string> &tokens);
  bool parseOp(const std::vector<std::string> &tokens);
  bool finishEntry();
  bool checkOp(const Entry &entry, const Op &op, std::vector<bool> &written);
  bool checkArgKind(const Entry &entry, const Op &op, unsigned index,
                    Arg::Kind kind, const char *role);

  Manifest &manifest;
  std::string &error;
  unsigned line = 0;
  bool sawHeader = false;
  bool sawTarget = false;
  /// Whether `manifest.entries.back()` is still open (no `end` yet).
  bool inEntry = false;
  /// Line that first described each layer, for mismatch messages.
  std::vector<unsigned> layerLines;
};

} // namespace

bool Parser::expectTokens(const std::vector<std::string> &tokens, size_t count,
                          const char *syntax) {
  if (tokens.size() == count)
    return true;
  return fail("expected '" + std::string(syntax) + "', got " +
              std::to_string(tokens.size()) + " tokens");
}

bool Parser::parseTensorType(const std::string &dtype, const std::string &shape,
                             TensorType &type) {
  if (!parseDType(dtype, type.dtype))
    return fail("bad dtype '" + dtype + "' (expected f16, bf16 or f32)");
  type.shape.clear();
  int64_t elements = 1;
  std::stringstream dims(shape);
  std::string dim;
  while (std::getline(dims, dim, 'x')) {
    int64_t value;
    if (!parseInt(dim, 1, kMaxElements, value))
      return fail("bad shape '" + shape +
                  "' (expected positive dimensions joined by 'x')");
    elements *= value;
    if (elements > kMaxElements)
      return fail("shape '" + shape + "' is too large");
    type.shape.push_back(value);
  }
  // getline drops a trailing empty field, so "4x" must be caught here.
  if (type.shape.empty() || shape.back() == 'x')
    return fail("bad shape '" + shape +
                "' (expected positive dimensions joined by 'x')");
  return true;
}

bool Parser::parseArg(const std::vector<std::string> &tokens) {
  Entry &entry = manifest.entries.back();
  Arg arg;
  arg.line = line;
  const std::string kind = tokens.size() > 1 ? tokens[1] : "";
  if (kind == "cache") {
    if (!expectTokens(tokens, 7,
                      "arg cache KV_HEADS HEAD_DIM DTYPE PAGE_SIZE CAPACITY"))
      return false;
    arg.kind = Arg::Cache;
    int64_t kvHeads, headDim, pageSize, capacity;
    if (!parseInt(tokens[2], 1, INT32_MAX, kvHeads))
      return fail("bad kv_heads '" + tokens[2] + "'");
    if (!parseInt(tokens[3], 1, INT32_MAX, headDim))
      return fail("bad head_dim '" + tokens[3] + "'");
    if (!parseDType(tokens[4], arg.cache.dtype))
      return fail("bad dtype '" + tokens[4] + "' (expected f16, bf16 or f32)");
    if (!parseInt(tokens[5], 1, INT32_MAX, pageSize))
      return fail("bad page_size '" + tokens[5] + "'");
    if (pageSize & (pageSize - 1))
      return fail("page_size " + tokens[5] + " is not a power of two");
    if (!parseInt(tokens[6], 1, INT64_MAX, capacity))
      return fail("bad capacity '" + tokens[6] + "'");
    arg.cache.numKvHeads = kvHeads;
    arg.cache.headDim = headDim;
    arg.cache.pageSize = pageSize;
    arg.cache.capacity = capacity;

    // The k-th cache argument of every entry is the same physical cache, so
    // all entries must agree on what it looks like.
    unsigned layer = 0;
    for (const Arg &other : entry.args)
      layer += other.kind == Arg::Cache;
    arg.layer = layer;
    if (layer == manifest.layers.size()) {
      manifest.layers.push_back(arg.cache);
      layerLines.push_back(line);
    } else if (manifest.layers[layer] != arg.cache) {
      return fail("cache " + std::to_string(layer) +
                  " differs from its description at line " +
                  std::to_string(layerLines[layer]) +
                  " (every entry must describe each cache identically)");
    }
  } else if (kind == "seqs") {
    if (!expectTokens(tokens, 3, "arg seqs BATCH"))
      return false;
    arg.kind = Arg::Seqs;
    int64_t batch;
    if (!parseInt(tokens[2], 1, 1 << 20, batch))
      return fail("bad batch '" + tokens[2] + "'");
    arg.batch = batch;
    if (arg.batch > manifest.maxBatch)
      manifest.maxBatch = arg.batch;
  } else if (kind == "tensor") {
    if (!expectTokens(tokens, 4, "arg tensor DTYPE SHAPE"))
      return false;
    arg.kind = Arg::Tensor;
    if (!parseTensorType(tokens[2], tokens[3], arg.type))
      return false;
  } else {
    return fail("unknown arg kind '" + kind +
                "' (expected cache, seqs or tensor)");
  }
  entry.args.push_back(arg);
  return true;
}

bool Parser::parseOp(const std::vector<std::string> &tokens) {
  Op op;
  op.line = line;
  const std::string kind = tokens.size() > 1 ? tokens[1] : "";
  int64_t index[4];
  if (kind == "append") {
    if (!expectTokens(tokens, 6, "op append CACHE SEQS KEY VALUE"))
      return false;
    op.kind = Op::Append;
  } else if (kind == "attention") {
    if (!expectTokens(tokens, 8,
                      "op attention CACHE SEQS QUERY RESULT SCALE CAUSAL"))
      return false;
    op.kind = Op::Attention;
  } else {
    return fail("unknown op '" + kind + "' (expected append or attention)");
  }
  for (unsigned i = 0; i < 4; ++i)
    if (!parseInt(tokens[2 + i], 0, INT32_MAX, index[i]))
      return fail("bad index '" + tokens[2 + i] + "'");
  op.cacheArg = index[0];
  op.seqsArg = index[1];
  if (op.kind == Op::Append) {
    op.keyArg = index[2];
    op.valueArg = index[3];
  } else {
    op.queryArg = index[2];
    op.result = index[3];
    char *end = nullptr;
    op.scale = std::strtod(tokens[6].c_str(), &end);
    if (*end || !std::isfinite(op.scale))
      return fail("bad scale '" + tokens[6] + "'");
    if (tokens[7] != "0" && tokens[7] != "1")
      return fail("bad causal flag '" + tokens[7] + "' (expected 0 or 1)");
    op.causal = tokens[7] == "1";
  }
  manifest.entries.back().ops.push_back(op);
  return true;
}

bool Parser::checkArgKind(const Entry &entry, const Op &op, unsigned index,
                          Arg::Kind kind, const char *role) {
  static const char *const kindNames[] = {"cache", "seqs", "tensor"};
  if (index >= entry.args.size())
    return fail(op.line, std::string(role) + " index " + std::to_string(index) +
                             " is out of range (entry has " +
                             std::to_string(entry.args.size()) + " args)");
  if (entry.args[index].kind != kind)
    return fail(op.line, std::string(role) + " arg " + std::to_string(index) +
                             " is a " + kindNames[entry.args[index].kind] +
                             " arg, not a " + kindNames[kind] + " arg");
  return true;
}

bool Parser::checkOp(const Entry &entry, const Op &op,
                     std::vector<bool> &written) {
  if (!checkArgKind(entry, op, op.cacheArg, Arg::Cache, "cache") ||
      !checkArgKind(entry, op, op.seqsArg, Arg::Seqs, "seqs"))
    return false;
  const CacheDesc &cache = entry.args[op.cacheArg].cache;
  int64_t batch = entry.args[op.seqsArg].batch;

  // Both ops take a [B, T, heads, head_dim] tensor in the cache's dtype; only
  // the meaning of `heads` differs.
  auto checkTensor = [&](const TensorType &type, const std::string &what,
                         bool kvHeads) {
    if (type.dtype != cache.dtype)
      return fail(op.line, what + " is " + dtypeName(type.dtype) +
                               " but the cache is " + dtypeName(cache.dtype));
    if (type.shape.size() != 4)
      return fail(op.line, what + " must have rank 4 [B, T, heads, head_dim]");
    if (type.shape[0] != batch)
      return fail(op.line, what + " has batch " +
                               std::to_string(type.shape[0]) +
                               " but the seqs arg holds " +
                               std::to_string(batch) + " ids");
    if (type.shape[3] != cache.headDim)
      return fail(op.line,
                  what + " has head_dim " + std::to_string(type.shape[3]) +
                      " but the cache has " + std::to_string(cache.headDim));
    if (kvHeads && type.shape[2] != cache.numKvHeads)
      return fail(op.line, what + " has " + std::to_string(type.shape[2]) +
                               " heads but the cache has " +
                               std::to_string(cache.numKvHeads));
    if (!kvHeads && type.shape[2] % cache.numKvHeads != 0)
      return fail(op.line, what + " has " + std::to_string(type.shape[2]) +
                               " heads, not a multiple of the cache's " +
                               std::to_string(cache.numKvHeads) + " kv heads");
    return true;
  };

  if (op.kind == Op::Append) {
    if (!checkArgKind(entry, op, op.keyArg, Arg::Tensor, "key") ||
        !checkArgKind(entry, op, op.valueArg, Arg::Tensor, "value"))
      return false;
    const TensorType &key = entry.args[op.keyArg].type;
    const TensorType &value = entry.args[op.valueArg].type;
    if (!checkTensor(key, "key arg " + std::to_string(op.keyArg), true) ||
        !checkTensor(value, "value arg " + std::to_string(op.valueArg), true))
      return false;
    if (key.shape != value.shape)
      return fail(op.line, "key and value args have different shapes");
    return true;
  }

  if (!checkArgKind(entry, op, op.queryArg, Arg::Tensor, "query"))
    return false;
  const TensorType &query = entry.args[op.queryArg].type;
  if (!checkTensor(query, "query arg " + std::to_string(op.queryArg), false))
    return false;
  if (op.result >= entry.results.size())
    return fail(op.line, "result index " + std::to_string(op.result) +
                             " is out of range (entry has " +
                             std::to_string(entry.results.size()) +
                             " results)");
  const TensorType &result = entry.results[op.result].type;
  if (result.dtype != query.dtype || result.shape != query.shape)
    return fail(op.line, "result " + std::to_string(op.result) + " is " +
                             result.str() + " but the query is " + query.str());
  written[op.result] = true;
  return true;
}

bool Parser::finishEntry() {
  const Entry &entry = manifest.entries.back();
  if (manifest.numParams(entry) > kMaxParams)
    return fail(entry.line, "entry '" + entry.name + "' has " +
                                std::to_string(manifest.numParams(entry)) +
                                " parameters; at most " +
                                std::to_string(kMaxParams) + " are supported");
  std::vector<bool> written(entry.results.size(), false);
  for (const Op &op : entry.ops)
    if (!checkOp(entry, op, written))
      return false;
  // A result no op writes could never be checked, so it is a manifest bug
  // rather than something to skip silently.
  for (size_t i = 0; i < entry.results.size(); ++i)
    if (!written[i])
      return fail(entry.results[i].line,
                  "result " + std::to_string(i) + " is written by no op");
  inEntry = false;
  return true;
}

bool Parser::parseLine(const std::vector<std::string> &tokens) {
  const std::string &keyword = tokens[0];
  if (!sawHeader) {
    if (keyword != "kvcc-manifest")
      return fail("expected 'kvcc-manifest 1' as the first line");
    if (!expectTokens(tokens, 2, "kvcc-manifest VERSION"))
      return false;
    if (tokens[1] != "1")
      return fail("unsupported manifest version '" + tokens[1] + "'");
    sawHeader = true;
    return true;
  }

  if (keyword == "arg" || keyword == "result" || keyword == "op" ||
      keyword == "end") {
    if (!inEntry)
      return fail("'" + keyword + "' outside of an entry");
    if (keyword == "arg")
      return parseArg(tokens);
    if (keyword == "op")
      return parseOp(tokens);
    if (keyword == "end")
      return expectTokens(tokens, 1, "end") && finishEntry();
    if (!expectTokens(tokens, 3, "result DTYPE SHAPE"))
      return false;
    Result result;
    result.line = line;
    if (!parseTensorType(tokens[1], tokens[2], result.type))
      return false;
    manifest.entries.back().results.push_back(result);
    return true;
  }

  if (inEntry)
    return fail("'" + keyword + "' inside entry '" +
                manifest.entries.back().name + "' (missing 'end'?)");

  if (keyword == "target") {
    if (!expectTokens(tokens, 2, "target cpu|cuda"))
      return false;
    if (sawTarget)
      return fail("duplicate 'target'");
    if (tokens[1] != "cpu" && tokens[1] != "cuda")
      return fail("bad target '" + tokens[1] + "' (expected cpu or cuda)");
    manifest.targetCuda = tokens[1] == "cuda";
    sawTarget = true;
    return true;
  }
  if (keyword == "library") {
    if (!expectTokens(tokens, 2, "library PATH"))
      return false;
    if (manifest.libraryLine)
      return fail("duplicate 'library'");
    manifest.library = tokens[1];
    manifest.libraryLine = line;
    manifest.libraryPath =
        tokens[1][0] == '/' ? tokens[1] : manifest.directory + "/" + tokens[1];
    return true;
  }
  if (keyword == "entry") {
    if (!expectTokens(tokens, 2, "entry NAME"))
      return false;
    if (!isIdentifier(tokens[1]))
      return fail("entry name '" + tokens[1] + "' is not a C identifier");
    if (manifest.findEntry(tokens[1]))
      return fail("duplicate entry '" + tokens[1] + "'");
    // The trailing stream parameter depends on the target, so it must be
    // known before any entry's arity is checked.
    if (!sawTarget)
      return fail("'entry' before 'target'");
    Entry entry;
    entry.name = tokens[1];
    entry.line = line;
    manifest.entries.push_back(entry);
    inEntry = true;
    return true;
  }
  return fail("unknown keyword '" + keyword + "'");
}

bool Parser::run(std::istream &input) {
  std::string text;
  while (std::getline(input, text)) {
    ++line;
    text = text.substr(0, text.find('#'));
    std::vector<std::string> tokens;
    std::istringstream words(text);
    std::string word;
    while (words >> word)
      tokens.push_back(word);
    if (!tokens.empty() && !parseLine(tokens))
      return false;
  }
  if (!sawHeader)
    return fail(1, "empty manifest (expected 'kvcc-manifest 1')");
  if (inEntry)
    return fail(manifest.entries.back().line,
                "entry '" + manifest.entries.back().name + "' has no 'end'");
  if (!sawTarget)
    return fail(line, "missing 'target'");
  if (!manifest.libraryLine)
    return fail(line, "missing 'library'");
  if (manifest.entries.empty())
    return fail(line, "no entries");
  return true;
}

bool kvcc::run::parseManifest(const std::string &path, Manifest &manifest,
                              std::string &error) {
  manifest = Manifest();
  manifest.path = path;
  size_t slash = path.rfind('/');
  manifest.directory = slash == std::string::npos ? "."
                       : slash == 0               ? "/"
                                                  : path.substr(0, slash);
  std::ifstream input(path);
  if (!input) {
    error = path + ": cannot open manifest";
    return false;
  }
  return Parser(manifest, error).run(input);
}
