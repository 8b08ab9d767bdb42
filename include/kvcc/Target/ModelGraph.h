//===- ModelGraph.h - Compile whole model graphs for the CPU -----*- C++ -*-===//
//
// A model graph (e.g. the output of kv-raise-attention) mixes kv ops with
// linalg/tensor code. kvcc compiles it for the CPU through kv-lower-to-calls
// and upstream MLIR's bufferization and LLVM lowering; entry points use
// MLIR's C interface (_mlir_ciface_<name>, memref descriptors), declared in
// a generated header.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_TARGET_MODELGRAPH_H
#define KVCC_TARGET_MODELGRAPH_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace kvcc {

/// True when every entry function consists only of kv ops (the EmitC path
/// compiles it); false for model graphs that need the LLVM path.
bool isKVOnlyModule(mlir::ModuleOp module);

/// The passes (textual, to nest in `builtin.module(...)`) that lower a kv
/// model graph to the LLVM dialect: C wrappers, kv-lower-to-calls,
/// bufferization, LLVM lowering.
llvm::StringRef getModelToLLVMPipeline();

/// Lowers a copy of `module` with that pipeline and prints LLVM IR.
mlir::LogicalResult translateModelToLLVMIR(mlir::ModuleOp module,
                                           llvm::raw_ostream &os);

/// Prints a C header declaring the C-interface entry points of a kv-level
/// model graph, with the memref descriptor types they take.
mlir::LogicalResult translateModelToHeader(mlir::ModuleOp module,
                                           llvm::StringRef moduleName,
                                           llvm::raw_ostream &os);

} // namespace kvcc

#endif // KVCC_TARGET_MODELGRAPH_H
