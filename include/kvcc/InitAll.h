//===- InitAll.h - Register everything kvcc provides -------------*- C++ -*-===//

#ifndef KVCC_INITALL_H
#define KVCC_INITALL_H

#include "kvcc/Conversion/Passes.h"
#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "kvcc/Dialect/KV/Transforms/Passes.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"

namespace kvcc {

/// Adds the kv dialect and the dialects kv programs are written with.
inline void registerAllDialects(mlir::DialectRegistry &registry) {
  registry.insert<kv::KVDialect, mlir::func::FuncDialect,
                  mlir::emitc::EmitCDialect>();
}

/// Registers every kvcc pass with the global pass registry.
inline void registerAllPasses() {
  registerKVConversionPasses();
  kv::registerKVTransformsPasses();
}

} // namespace kvcc

#endif // KVCC_INITALL_H
