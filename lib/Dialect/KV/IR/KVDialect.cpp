//===- KVDialect.cpp - kv dialect, types, attributes and ops ----*- C++ -*-===//

#include "kvcc/Dialect/KV/IR/KVOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>

using namespace mlir;
using namespace kvcc::kv;

#include "kvcc/Dialect/KV/IR/KVDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "kvcc/Dialect/KV/IR/KVAttrs.cpp.inc"

#define GET_TYPEDEF_CLASSES
#include "kvcc/Dialect/KV/IR/KVTypes.cpp.inc"

#define GET_OP_CLASSES
#include "kvcc/Dialect/KV/IR/KVOps.cpp.inc"

void KVDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "kvcc/Dialect/KV/IR/KVAttrs.cpp.inc"
      >();
  addTypes<
#define GET_TYPEDEF_LIST
#include "kvcc/Dialect/KV/IR/KVTypes.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "kvcc/Dialect/KV/IR/KVOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// Attributes and types
//===----------------------------------------------------------------------===//

/// Largest page kvrt supports: bigger pages waste memory on short sequences
/// and gain nothing in bandwidth.
static constexpr int64_t kMaxPageSize = 1024;

LogicalResult
PagedEncodingAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                          int64_t page) {
  if (page < 1 || page > kMaxPageSize || !llvm::isPowerOf2_64(page))
    return emitError() << "page size (" << page
                       << ") must be a power of two between 1 and "
                       << kMaxPageSize;
  return success();
}

/// Element types kvrt stores and computes with.
static bool isSupportedElementType(Type type) {
  return type.isF16() || type.isBF16() || type.isF32();
}

LogicalResult CacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                int64_t numHeads, int64_t headDim,
                                Type elementType, int64_t capacity,
                                Attribute encoding) {
  if (numHeads <= 0)
    return emitError() << "kv head count (" << numHeads
                       << ") must be positive";
  if (headDim <= 0)
    return emitError() << "head dim (" << headDim << ") must be positive";
  if (!isSupportedElementType(elementType))
    return emitError() << "element type " << elementType
                       << " is not supported; use f16, bf16 or f32";
  if (capacity <= 0)
    return emitError() << "capacity (" << capacity << ") must be positive";
  if (!isa_and_nonnull<PagedEncodingAttr>(encoding))
    return emitError() << "encoding " << encoding
                       << " is not a cache encoding; expected #kv.paged";
  return success();
}

//===----------------------------------------------------------------------===//
// Op verifiers
//===----------------------------------------------------------------------===//

/// Checks a [B, T, heads, dim] tensor against the cache it reads or writes.
/// `what` names the operand, `headsWhat` the expectation on dim 2.
static LogicalResult verifyTokenTensor(Operation *op, StringRef what,
                                       RankedTensorType type, CacheType cache,
                                       int64_t batch) {
  if (type.getRank() != 4)
    return op->emitOpError() << what << " must have rank 4 [batch, tokens, "
                             << "heads, head_dim], got " << type;
  if (!type.hasStaticShape())
    return op->emitOpError() << what << " must have a static shape, got "
                             << type;
  if (type.getElementType() != cache.getElementType())
    return op->emitOpError()
           << what << " element type (" << type.getElementType()
           << ") must match the cache's element type ("
           << cache.getElementType() << ")";
  if (type.getDimSize(0) != batch)
    return op->emitOpError() << what << " batch size (" << type.getDimSize(0)
                             << ") must equal the number of sequence ids ("
                             << batch << ")";
  if (type.getDimSize(1) < 1)
    return op->emitOpError() << what << " must hold at least one token";
  if (type.getDimSize(1) > cache.getCapacity())
    return op->emitOpError()
           << what << " token count (" << type.getDimSize(1)
           << ") exceeds the cache capacity (" << cache.getCapacity() << ")";
  if (type.getDimSize(3) != cache.getHeadDim())
    return op->emitOpError() << what << " head dim (" << type.getDimSize(3)
                             << ") must equal the cache's head dim ("
                             << cache.getHeadDim() << ")";
  return success();
}

/// Checks the sequence ids operand and returns the batch size it implies.
static FailureOr<int64_t> verifySeqIds(Operation *op, RankedTensorType type) {
  if (type.isDynamicDim(0))
    return op->emitOpError("sequence ids must have a static length, got ")
           << type;
  if (type.getDimSize(0) < 1)
    return op->emitOpError("sequence ids must name at least one sequence");
  return type.getDimSize(0);
}

LogicalResult AppendOp::verify() {
  CacheType cache = getCache().getType();
  FailureOr<int64_t> batch = verifySeqIds(*this, getSeqIds().getType());
  if (failed(batch))
    return failure();
  if (getKey().getType() != getValue().getType())
    return emitOpError() << "key type (" << getKey().getType()
                         << ") and value type (" << getValue().getType()
                         << ") must be equal";
  if (failed(verifyTokenTensor(*this, "key", getKey().getType(), cache, *batch)))
    return failure();
  if (getKey().getType().getDimSize(2) != cache.getNumHeads())
    return emitOpError() << "key head count (" << getKey().getType().getDimSize(2)
                         << ") must equal the cache's kv head count ("
                         << cache.getNumHeads() << ")";
  return success();
}

LogicalResult AttentionOp::verify() {
  CacheType cache = getCache().getType();
  FailureOr<int64_t> batch = verifySeqIds(*this, getSeqIds().getType());
  if (failed(batch))
    return failure();
  RankedTensorType queryType = getQuery().getType();
  if (failed(verifyTokenTensor(*this, "query", queryType, cache, *batch)))
    return failure();
  int64_t queryHeads = queryType.getDimSize(2);
  if (queryHeads < 1 || queryHeads % cache.getNumHeads() != 0)
    return emitOpError() << "query head count (" << queryHeads
                         << ") must be a multiple of the cache's kv head "
                            "count ("
                         << cache.getNumHeads() << ")";
  if (getResult().getType() != queryType)
    return emitOpError() << "result type (" << getResult().getType()
                         << ") must equal the query type (" << queryType
                         << ")";
  if (FloatAttr scale = getScaleAttr()) {
    double value = scale.getValueAsDouble();
    if (!std::isfinite(value) || value <= 0.0)
      return emitOpError() << "scale (" << value
                           << ") must be positive and finite";
  }
  if (Value mask = getMask()) {
    auto maskType = cast<RankedTensorType>(mask.getType());
    if (!maskType.hasStaticShape())
      return emitOpError() << "mask type (" << maskType
                           << ") must have a static shape";
    int64_t tokens = queryType.getDimSize(1);
    if (maskType.getDimSize(0) != *batch || maskType.getDimSize(1) != tokens)
      return emitOpError() << "mask shape (" << maskType
                           << ") must be [batch = " << *batch
                           << ", tokens = " << tokens << ", keys]";
    int64_t keys = maskType.getDimSize(2);
    if (keys < tokens || keys > cache.getCapacity())
      return emitOpError() << "mask key count (" << keys
                           << ") must be at least the query tokens ("
                           << tokens << ") and at most the cache capacity ("
                           << cache.getCapacity() << ")";
  }
  return success();
}

float AttentionOp::getEffectiveScale() {
  if (FloatAttr scale = getScaleAttr())
    return static_cast<float>(scale.getValueAsDouble());
  return 1.0f / std::sqrt(static_cast<float>(getCache().getType().getHeadDim()));
}
