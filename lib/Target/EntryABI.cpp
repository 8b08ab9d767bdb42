//===- EntryABI.cpp - C ABI of compiled kv entry points ---------*- C++ -*-===//

#include "kvcc/Target/EntryABI.h"

#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/Twine.h"

using namespace mlir;
using namespace kvcc;

std::optional<Target> kvcc::parseTarget(StringRef name) {
  return llvm::StringSwitch<std::optional<Target>>(name)
      .Case("cpu", Target::CPU)
      .Case("cuda", Target::CUDA)
      .Default(std::nullopt);
}

StringRef kvcc::stringifyTarget(Target target) {
  return target == Target::CPU ? "cpu" : "cuda";
}

unsigned EntryABI::paramOfResult(unsigned resultNumber) const {
  for (auto [position, param] : llvm::enumerate(params))
    if (param.kind == ParamKind::Output && param.index == resultNumber)
      return position;
  llvm_unreachable("result without an output parameter");
}

SmallVector<func::FuncOp> kvcc::getEntryFunctions(ModuleOp module) {
  SmallVector<func::FuncOp> entries;
  for (auto func : module.getOps<func::FuncOp>())
    if (func.isPublic() && !func.isDeclaration())
      entries.push_back(func);
  return entries;
}

StringRef kvcc::getCType(ParamKind kind) {
  switch (kind) {
  case ParamKind::Cache:
    return "kvrt_cache *";
  case ParamKind::SeqIds:
    return "const int32_t *";
  case ParamKind::Input:
    return "const void *";
  case ParamKind::Output:
  case ParamKind::Stream:
    return "void *";
  }
  llvm_unreachable("unknown parameter kind");
}

StringRef kvcc::getKvrtDType(Type elementType) {
  if (elementType.isF16())
    return "KVRT_DTYPE_F16";
  if (elementType.isBF16())
    return "KVRT_DTYPE_BF16";
  return "KVRT_DTYPE_F32";
}

StringRef kvcc::getDTypeName(Type elementType) {
  if (elementType.isF16())
    return "f16";
  if (elementType.isBF16())
    return "bf16";
  return "f32";
}

/// A seq-ids argument: a 1-D tensor of i32.
static bool isSeqIdsType(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && tensor.getRank() == 1 && tensor.hasStaticShape() &&
         tensor.getElementType().isInteger(32);
}

/// A data tensor kvrt can read or write.
static bool isDataTensorType(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor || !tensor.hasStaticShape())
    return false;
  Type element = tensor.getElementType();
  return element.isF16() || element.isBF16() || element.isF32();
}

/// Name of an input tensor from its first use: the role a reader expects.
static StringRef roleOfInput(BlockArgument arg) {
  for (OpOperand &use : arg.getUses()) {
    if (auto append = dyn_cast<kv::AppendOp>(use.getOwner()))
      return use.get() == append.getKey() ? "key" : "value";
    if (isa<kv::AttentionOp>(use.getOwner()))
      return "query";
  }
  return "unused";
}

FailureOr<EntryABI> kvcc::computeEntryABI(func::FuncOp func, Target target) {
  if (!func.getBody().hasOneBlock())
    return func.emitError("entry point '")
           << func.getSymName() << "' must have a single block";

  EntryABI abi;
  abi.name = func.getSymName().str();
  llvm::StringMap<unsigned> roleCounts;
  auto nextName = [&](StringRef role) {
    return (role + Twine(roleCounts[role]++)).str();
  };

  for (BlockArgument arg : func.getArguments()) {
    Type type = arg.getType();
    EntryParam param{ParamKind::Input, "", type, arg.getArgNumber()};
    if (isa<kv::CacheType>(type)) {
      param.kind = ParamKind::Cache;
      param.name = nextName("cache");
    } else if (isSeqIdsType(type)) {
      param.kind = ParamKind::SeqIds;
      param.name = nextName("seq_ids");
    } else if (isDataTensorType(type)) {
      param.name = nextName(roleOfInput(arg));
    } else {
      return func.emitError("argument #")
             << arg.getArgNumber() << " of '" << func.getSymName()
             << "' has type " << type
             << ", which has no kvcc entry-point ABI; expected !kv.cache, "
                "tensor<Nxi32> sequence ids or a static f16/bf16/f32 tensor";
    }
    abi.params.push_back(std::move(param));
  }

  // Every value the function returns must be produced by a kv op in its body,
  // so that the caller's output buffer is what that op writes.
  llvm::SmallPtrSet<Value, 4> returned;
  for (Operation &op : func.getBody().front()) {
    if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (auto [number, value] : llvm::enumerate(ret.getOperands())) {
        if (!value.getDefiningOp<kv::AttentionOp>())
          return ret.emitError("result #")
                 << number
                 << " must be the result of a kv.attention in this function; "
                    "kvcc writes results into caller-owned buffers";
        if (!returned.insert(value).second)
          return ret.emitError("result #")
                 << number << " returns the same value as an earlier result";
        abi.params.push_back({ParamKind::Output, nextName("out"),
                              value.getType(), static_cast<unsigned>(number)});
      }
      continue;
    }
    if (!isa<kv::AppendOp, kv::AttentionOp>(op))
      return op.emitOpError("is not supported in a kvcc entry point; the ")
             << "body of '" << func.getSymName()
             << "' may only hold kv.append and kv.attention ops";
    if (auto attention = dyn_cast<kv::AttentionOp>(op);
        attention && attention.getMask())
      return attention.emitOpError(
          "with a mask operand is supported in model graphs only "
          "(kv-lower-to-calls, CPU target); kvcc entry points and "
          "kv-lower-to-emitc do not lower masks yet");
    for (Value operand : op.getOperands())
      if (!isa<BlockArgument>(operand))
        return op.emitOpError("operand produced by '")
               << operand.getDefiningOp()->getName()
               << "' is not supported; kv ops in an entry point must read "
                  "the function's arguments";
  }

  if (target == Target::CUDA)
    abi.params.push_back({ParamKind::Stream, "stream", Type(), 0});
  return abi;
}
