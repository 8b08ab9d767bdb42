//===- ModelGraph.cpp - Compile whole model graphs for the CPU --*- C++ -*-===//

#include "kvcc/Target/ModelGraph.h"

#include "kvcc/Conversion/Passes.h"
#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "kvcc/Target/EntryABI.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

#include <map>

using namespace mlir;
using namespace kvcc;

bool kvcc::isKVOnlyModule(ModuleOp module) {
  for (func::FuncOp func : getEntryFunctions(module))
    for (Operation &op : func.getBody().getOps())
      if (!isa<kv::AppendOp, kv::AttentionOp, func::ReturnOp>(op))
        return false;
  return true;
}

StringRef kvcc::getModelToLLVMPipeline() {
  return "func.func(llvm-request-c-wrappers),"
         "kv-lower-to-calls,"
         "one-shot-bufferize{bufferize-function-boundaries=1 "
         "function-boundary-type-conversion=identity-layout-map},"
         "func.func(convert-linalg-to-loops),expand-strided-metadata,"
         "lower-affine,convert-scf-to-cf,convert-math-to-llvm,"
         "finalize-memref-to-llvm,convert-arith-to-llvm,"
         "convert-index-to-llvm,convert-cf-to-llvm,convert-func-to-llvm,"
         "reconcile-unrealized-casts";
}

/// Decomposes ops that upstream's lowering to loops does not handle, such as
/// linalg.softmax (left by attentions that were not raised), into generics.
static LogicalResult decomposeAggregates(ModuleOp module) {
  SmallVector<linalg::AggregatedOpInterface> aggregates;
  module.walk([&](linalg::AggregatedOpInterface op) {
    aggregates.push_back(op);
  });
  IRRewriter rewriter(module.getContext());
  for (linalg::AggregatedOpInterface op : aggregates) {
    rewriter.setInsertionPoint(op);
    FailureOr<SmallVector<Value>> results = op.decomposeOperation(rewriter);
    if (failed(results))
      return op->emitError("kvcc: cannot decompose this op for the CPU");
    rewriter.replaceOp(op, *results);
  }
  return success();
}

LogicalResult kvcc::translateModelToLLVMIR(ModuleOp module, raw_ostream &os) {
  OwningOpRef<ModuleOp> copy = module.clone();
  if (failed(decomposeAggregates(*copy)))
    return failure();
  PassManager pm(module.getContext());
  if (failed(parsePassPipeline(getModelToLLVMPipeline(), pm)))
    return module.emitError("kvcc: cannot build the model lowering pipeline");
  if (failed(pm.run(*copy)))
    return failure();
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*copy, llvmContext, module.getName().value_or("kvcc_model"));
  if (!llvmModule)
    return module.emitError("kvcc: translation to LLVM IR failed");
  llvmModule->print(os, nullptr);
  return success();
}

namespace {
/// The C spelling of an element type in a memref descriptor.
std::optional<StringRef> cElementType(Type type) {
  if (type.isF32())
    return StringRef("float");
  if (type.isF64())
    return StringRef("double");
  if (type.isF16() || type.isBF16())
    return StringRef("uint16_t");
  if (type.isInteger(64))
    return StringRef("int64_t");
  if (type.isInteger(32))
    return StringRef("int32_t");
  if (type.isInteger(8))
    return StringRef("int8_t");
  if (type.isInteger(1))
    return StringRef("bool");
  return std::nullopt;
}

std::string memrefTypeName(RankedTensorType type) {
  std::string element;
  llvm::raw_string_ostream os(element);
  type.getElementType().print(os);
  return "kvcc_memref_" + element + "_" + std::to_string(type.getRank()) + "d";
}
} // namespace

LogicalResult kvcc::translateModelToHeader(ModuleOp module, StringRef name,
                                           raw_ostream &os) {
  std::string guard = "KVCC_GENERATED_" + name.upper() + "_H";
  for (char &c : guard)
    if (!llvm::isAlnum(c))
      c = '_';
  // First collect every descriptor type the entry points use.
  std::map<std::string, std::pair<std::string, int64_t>> descriptors;
  auto useTensor = [&](Location loc, Type type) -> LogicalResult {
    auto tensor = dyn_cast<RankedTensorType>(type);
    std::optional<StringRef> element =
        tensor && tensor.hasStaticShape() ? cElementType(tensor.getElementType())
                                          : std::nullopt;
    if (!element)
      return emitError(loc, "kvcc: type ")
             << type << " has no C interface in a model graph entry point";
    descriptors[memrefTypeName(tensor)] = {element->str(), tensor.getRank()};
    return success();
  };
  SmallVector<func::FuncOp> entries = getEntryFunctions(module);
  for (func::FuncOp func : entries) {
    for (BlockArgument arg : func.getArguments())
      if (!isa<kv::CacheType>(arg.getType()) &&
          failed(useTensor(arg.getLoc(), arg.getType())))
        return failure();
    for (Type type : func.getResultTypes())
      if (failed(useTensor(func.getLoc(), type)))
        return failure();
  }

  os << "// Generated by kvcc (target cpu, model graph). Do not edit.\n"
     << "// Entry points use MLIR's C interface: tensors are passed as memref\n"
     << "// descriptors, results are written to *out. Caches are kvrt "
        "handles;\n// a failing kvrt call aborts with a message.\n"
     << "#ifndef " << guard << "\n#define " << guard << "\n\n"
     << "#include <stdbool.h>\n#include <stdint.h>\n\n"
     << "#include \"kvrt/kvrt.h\"\n\n#ifdef __cplusplus\nextern \"C\" {\n"
     << "#endif\n\n";
  for (auto &[typeName, info] : descriptors)
    os << "typedef struct {\n  " << info.first << " *allocated;\n  "
       << info.first << " *aligned;\n  int64_t offset;\n  int64_t sizes["
       << info.second << "];\n  int64_t strides[" << info.second << "];\n} "
       << typeName << ";\n";

  for (func::FuncOp func : entries) {
    StringRef fn = func.getSymName();
    os << "\n/// Results of " << fn << ".\ntypedef struct {\n";
    for (auto [i, type] : llvm::enumerate(func.getResultTypes()))
      os << "  " << memrefTypeName(cast<RankedTensorType>(type)) << " result"
         << i << ";\n";
    os << "} " << fn << "_results;\n\n/// " << fn << "\n";
    unsigned cacheCount = 0;
    SmallVector<std::string> params = {(fn + "_results *out").str()};
    for (BlockArgument arg : func.getArguments()) {
      unsigned n = arg.getArgNumber();
      if (auto cache = dyn_cast<kv::CacheType>(arg.getType())) {
        std::string pname = "cache" + std::to_string(cacheCount++);
        os << "///   " << pname << ": kvrt cache, " << cache.getNumHeads()
           << " kv heads x " << cache.getHeadDim() << " "
           << getDTypeName(cache.getElementType()) << ", page "
           << cache.getPageSize() << ", capacity " << cache.getCapacity();
        if (auto args = func.getArgAttrOfType<DenseI64ArrayAttr>(
                n, "kv.replaced_args"))
          os << "; replaces past K/V arguments #" << args[0] << ", #"
             << args[1];
        if (auto results = func.getArgAttrOfType<DenseI64ArrayAttr>(
                n, "kv.replaced_results"))
          os << " and updated K/V results #" << results[0] << ", #"
             << results[1];
        os << "\n";
        params.push_back("kvrt_cache *" + pname);
        continue;
      }
      std::string pname = func.getArgAttr(n, "kv.seq_ids")
                              ? std::string("seq_ids")
                              : "arg" + std::to_string(n);
      params.push_back(memrefTypeName(cast<RankedTensorType>(arg.getType())) +
                       " *" + pname);
    }
    os << "void _mlir_ciface_" << fn << "(";
    llvm::interleaveComma(params, os);
    os << ");\n";
  }
  os << "\n#ifdef __cplusplus\n}\n#endif\n\n#endif // " << guard << "\n";
  return success();
}
