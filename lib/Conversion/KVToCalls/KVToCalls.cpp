//===- KVToCalls.cpp - Lower kv ops among tensor code to kvrt calls -*- C++ -*-===//
//
// kv ops in a model graph sit among linalg and tensor code that upstream
// MLIR bufferizes and lowers to LLVM. This pass turns each kv op into a call
// of kvrt's C API on contiguous buffers, so the whole graph goes down the
// upstream pipeline and links against kvrt.
//
//===----------------------------------------------------------------------===//

#include "kvcc/Conversion/KVToCalls/KVToCalls.h"

#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace kvcc {
#define GEN_PASS_DEF_KVLOWERTOCALLS
#include "kvcc/Conversion/Passes.h.inc"
} // namespace kvcc

using namespace mlir;
using namespace kvcc;

namespace {

/// Values of kvrt.h's enums the calls pass.
constexpr int32_t kDeviceHost = 0;
int32_t kvrtDType(Type element) {
  if (element.isF16())
    return 0;
  if (element.isBF16())
    return 1;
  return 2;
}

class Lowering {
public:
  explicit Lowering(ModuleOp module)
      : module(module), ctx(module.getContext()),
        ptrType(LLVM::LLVMPointerType::get(ctx)) {}

  LogicalResult run();

private:
  /// Declares (once) a kvrt function returning a status.
  func::FuncOp declare(StringRef name, ArrayRef<Type> params);
  /// A pointer to a fresh contiguous copy of `tensor`'s contents.
  Value pointerToCopy(OpBuilder &b, Location loc, Value tensor);
  /// A fresh contiguous buffer for a result and a pointer to it.
  std::pair<Value, Value> allocate(OpBuilder &b, Location loc,
                                   RankedTensorType type);
  Value pointerOf(OpBuilder &b, Location loc, Value buffer);
  Value i32(OpBuilder &b, Location loc, int64_t v) {
    return arith::ConstantIntOp::create(b, loc, v, 32);
  }
  /// Calls `callee` and asserts it returned KVRT_OK.
  void callChecked(OpBuilder &b, Location loc, func::FuncOp callee,
                   ValueRange args, StringRef what);

  ModuleOp module;
  MLIRContext *ctx;
  Type ptrType;
};

} // namespace

func::FuncOp Lowering::declare(StringRef name, ArrayRef<Type> params) {
  if (auto existing = module.lookupSymbol<func::FuncOp>(name))
    return existing;
  OpBuilder b = OpBuilder::atBlockBegin(module.getBody());
  auto fn = func::FuncOp::create(
      b, module.getLoc(), name,
      b.getFunctionType(params, {b.getI32Type()}));
  fn.setPrivate();
  return fn;
}

Value Lowering::pointerOf(OpBuilder &b, Location loc, Value buffer) {
  Value index =
      memref::ExtractAlignedPointerAsIndexOp::create(b, loc, buffer);
  Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), index);
  return LLVM::IntToPtrOp::create(b, loc, ptrType, i64);
}

std::pair<Value, Value> Lowering::allocate(OpBuilder &b, Location loc,
                                           RankedTensorType type) {
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  Value buffer = memref::AllocOp::create(b, loc, memrefType);
  return {buffer, pointerOf(b, loc, buffer)};
}

Value Lowering::pointerToCopy(OpBuilder &b, Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
  // The source buffer may be strided or shared: kvrt reads a dense copy.
  Value source =
      bufferization::ToBufferOp::create(b, loc, memrefType, tensor, true);
  auto [copy, pointer] = allocate(b, loc, type);
  memref::CopyOp::create(b, loc, source, copy);
  return pointer;
}

void Lowering::callChecked(OpBuilder &b, Location loc, func::FuncOp callee,
                           ValueRange args, StringRef what) {
  auto call = func::CallOp::create(b, loc, callee, args);
  Value zero = i32(b, loc, 0);
  Value ok = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                   call.getResult(0), zero);
  cf::AssertOp::create(b, loc, ok, what);
}

LogicalResult Lowering::run() {
  Type i32Type = IntegerType::get(ctx, 32);
  Type i64Type = IntegerType::get(ctx, 64);
  Type f32Type = Float32Type::get(ctx);
  func::FuncOp check = declare(
      "kvrt_cache_check", {ptrType, i32Type, i32Type, i32Type, i32Type,
                           i32Type, i64Type});
  func::FuncOp append =
      declare("kvrt_append", {ptrType, i32Type, ptrType, i32Type, ptrType,
                              ptrType, ptrType});
  func::FuncOp attention = declare(
      "kvrt_attention_host", {ptrType, i32Type, ptrType, i32Type, i32Type,
                              ptrType, ptrType, f32Type, i32Type});

  for (auto func : llvm::to_vector(module.getOps<func::FuncOp>())) {
    if (func.isDeclaration())
      continue;
    // Cache handles become kvrt_cache pointers, checked on entry.
    Block &entry = func.getBody().front();
    OpBuilder b = OpBuilder::atBlockBegin(&entry);
    SmallVector<Type> argTypes(func.getArgumentTypes());
    for (BlockArgument arg : entry.getArguments()) {
      auto cache = dyn_cast<kv::CacheType>(arg.getType());
      if (!cache)
        continue;
      arg.setType(ptrType);
      argTypes[arg.getArgNumber()] = ptrType;
      Location loc = arg.getLoc();
      Value capacity = arith::ConstantIntOp::create(
          b, loc, cache.getCapacity(), 64);
      callChecked(b, loc, check,
                  {arg, i32(b, loc, kDeviceHost),
                   i32(b, loc, cache.getNumHeads()),
                   i32(b, loc, cache.getHeadDim()),
                   i32(b, loc, kvrtDType(cache.getElementType())),
                   i32(b, loc, cache.getPageSize()), capacity},
                  ("kvrt_cache_check failed in " + func.getSymName() +
                   " for argument #" + Twine(arg.getArgNumber()))
                      .str());
    }
    func.setType(FunctionType::get(ctx, argTypes, func.getResultTypes()));
    // kv.* argument attributes describe the ABI to kv-level readers only;
    // LLVM has no use for them.
    for (unsigned i = 0, e = func.getNumArguments(); i < e; ++i) {
      DictionaryAttr attrs = func.getArgAttrDict(i);
      if (!attrs)
        continue;
      SmallVector<NamedAttribute> kept;
      for (NamedAttribute attr : attrs.getValue())
        if (!attr.getName().getValue().starts_with("kv."))
          kept.push_back(attr);
      func.setArgAttrs(i, kept);
    }

    SmallVector<Operation *> kvOps;
    func.walk([&](Operation *op) {
      if (isa<kv::AppendOp, kv::AttentionOp>(op))
        kvOps.push_back(op);
    });
    for (Operation *op : kvOps) {
      OpBuilder b(op);
      Location loc = op->getLoc();
      if (auto app = dyn_cast<kv::AppendOp>(op)) {
        RankedTensorType keyType = app.getKey().getType();
        Value seqs = pointerToCopy(b, loc, app.getSeqIds());
        Value keys = pointerToCopy(b, loc, app.getKey());
        Value values = pointerToCopy(b, loc, app.getValue());
        Value null = LLVM::ZeroOp::create(b, loc, ptrType);
        callChecked(b, loc, append,
                    {app.getCache(), i32(b, loc, keyType.getDimSize(0)), seqs,
                     i32(b, loc, keyType.getDimSize(1)), keys, values, null},
                    ("kvrt_append failed in " + func.getSymName()).str());
        op->erase();
        continue;
      }
      auto att = cast<kv::AttentionOp>(op);
      RankedTensorType queryType = att.getQuery().getType();
      Value seqs = pointerToCopy(b, loc, att.getSeqIds());
      Value queries = pointerToCopy(b, loc, att.getQuery());
      auto [out, outPointer] = allocate(b, loc, queryType);
      Value scale = arith::ConstantOp::create(
          b, loc, b.getF32FloatAttr(att.getEffectiveScale()));
      SmallVector<Value> args = {
          att.getCache(), i32(b, loc, queryType.getDimSize(0)), seqs,
          i32(b, loc, queryType.getDimSize(1)),
          i32(b, loc, queryType.getDimSize(2)), queries, outPointer,
          scale, i32(b, loc, att.getCausal() ? 1 : 0)};
      if (Value mask = att.getMask()) {
        // The mask [B, T, S] f32, contiguous, and its key count S.
        args.push_back(pointerToCopy(b, loc, mask));
        args.push_back(i32(b, loc,
                           cast<RankedTensorType>(mask.getType()).getDimSize(2)));
        func::FuncOp maskedAttention =
            declare("kvrt_attention_host_masked",
                    {ptrType, i32Type, ptrType, i32Type, i32Type, ptrType,
                     ptrType, f32Type, i32Type, ptrType, i32Type});
        callChecked(b, loc, maskedAttention, args,
                    ("kvrt_attention_host_masked failed in " +
                     func.getSymName())
                        .str());
      } else {
        callChecked(
            b, loc, attention, args,
            ("kvrt_attention_host failed in " + func.getSymName()).str());
      }
      Value result = bufferization::ToTensorOp::create(
          b, loc, queryType, out, /*restrict=*/true, /*writable=*/true);
      att.getResult().replaceAllUsesWith(result);
      op->erase();
    }
  }
  return success();
}

namespace {
struct KVLowerToCallsPass
    : public kvcc::impl::KVLowerToCallsBase<KVLowerToCallsPass> {
  void runOnOperation() override {
    if (failed(Lowering(getOperation()).run()))
      signalPassFailure();
  }
};
} // namespace
