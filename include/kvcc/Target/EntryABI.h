//===- EntryABI.h - C ABI of compiled kv entry points ------------*- C++ -*-===//
//
// One description of how a kv-level function becomes a C entry point, shared
// by the EmitC lowering (which builds it), the header printer (which declares
// it) and the manifest printer (which tells kvcc-run how to call it), so the
// three can never disagree.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_TARGET_ENTRYABI_H
#define KVCC_TARGET_ENTRYABI_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/SmallVector.h"

#include <optional>
#include <string>

namespace kvcc {

/// Where generated code runs.
enum class Target { CPU, CUDA };

/// Parses "cpu" or "cuda".
std::optional<Target> parseTarget(llvm::StringRef name);
/// The spelling parseTarget accepts.
llvm::StringRef stringifyTarget(Target target);

/// The role of one C parameter of an entry point.
enum class ParamKind {
  Cache,  ///< `kvrt_cache *`
  SeqIds, ///< `const int32_t *`, host memory
  Input,  ///< `const void *` tensor data
  Output, ///< `void *` tensor data, one per function result
  Stream  ///< `void *` cudaStream_t (CUDA target only)
};

/// One C parameter of an entry point.
struct EntryParam {
  ParamKind kind;
  /// C identifier, derived from how the parameter is used.
  std::string name;
  /// The kv-level type (cache, seq ids or tensor); null for the stream.
  mlir::Type type;
  /// Function argument or result number this parameter comes from.
  unsigned index = 0;
};

/// The C signature of one entry point.
struct EntryABI {
  std::string name;
  llvm::SmallVector<EntryParam> params;

  /// Position in `params` of function argument `argNumber`.
  unsigned paramOfArgument(unsigned argNumber) const { return argNumber; }
  /// Position in `params` of function result `resultNumber`.
  unsigned paramOfResult(unsigned resultNumber) const;
};

/// Public functions with a body: the ones that become entry points.
llvm::SmallVector<mlir::func::FuncOp> getEntryFunctions(mlir::ModuleOp module);

/// Checks that `func` is a kv program kvcc can compile to an entry point and
/// returns its C ABI; emits errors at the offending location otherwise.
mlir::FailureOr<EntryABI> computeEntryABI(mlir::func::FuncOp func,
                                          Target target);

/// The C type of a parameter, e.g. "const int32_t *".
llvm::StringRef getCType(ParamKind kind);

/// The kvrt_dtype enumerator for an element type, e.g. "KVRT_DTYPE_F16".
llvm::StringRef getKvrtDType(mlir::Type elementType);

/// Short dtype name used in manifests and messages: f16, bf16 or f32.
llvm::StringRef getDTypeName(mlir::Type elementType);

} // namespace kvcc

#endif // KVCC_TARGET_ENTRYABI_H
