//===- Passes.h - kv dialect transformations ---------------------*- C++ -*-===//

#ifndef KVCC_DIALECT_KV_TRANSFORMS_PASSES_H
#define KVCC_DIALECT_KV_TRANSFORMS_PASSES_H

#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Pass/Pass.h"

namespace kvcc::kv {

#define GEN_PASS_DECL
#include "kvcc/Dialect/KV/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "kvcc/Dialect/KV/Transforms/Passes.h.inc"

} // namespace kvcc::kv

#endif // KVCC_DIALECT_KV_TRANSFORMS_PASSES_H
