//===- KVTranslate.h - Translate kv programs to C++/CUDA ---------*- C++ -*-===//

#ifndef KVCC_TARGET_KVTRANSLATE_H
#define KVCC_TARGET_KVTRANSLATE_H

#include "kvcc/Target/EntryABI.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/raw_ostream.h"

namespace kvcc {

/// Lowers a copy of the kv-level `module` with kv-lower-to-emitc and prints
/// the resulting translation unit (.cpp for CPU, .cu for CUDA). `module`
/// itself is not changed.
mlir::LogicalResult translateToSource(mlir::ModuleOp module, Target target,
                                      llvm::raw_ostream &os);

/// Prints a C header declaring the module's entry points.
mlir::LogicalResult translateToHeader(mlir::ModuleOp module, Target target,
                                      llvm::StringRef moduleName,
                                      llvm::raw_ostream &os);

/// Prints the manifest kvcc-run reads to call and check the entry points:
/// their parameters and, in program order, the kv ops they perform.
mlir::LogicalResult translateToManifest(mlir::ModuleOp module, Target target,
                                        llvm::StringRef libraryName,
                                        llvm::raw_ostream &os);

/// Registers --kv-to-cpp, --kv-to-cuda, --kv-to-header and --kv-to-manifest
/// with mlir-translate's registry.
void registerKVTranslations();

} // namespace kvcc

#endif // KVCC_TARGET_KVTRANSLATE_H
