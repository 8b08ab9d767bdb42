//===- KVToEmitC.cpp - Lower kv programs to EmitC ---------------*- C++ -*-===//
//
// Each public kv function becomes an `extern "C"` emitc.func calling kvrt.
// For CUDA, each kv.attention additionally becomes a `__global__` wrapper
// that instantiates a kvrt device template with the op's constants.
//
//===----------------------------------------------------------------------===//

#include "kvcc/Conversion/KVToEmitC/KVToEmitC.h"

#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "kvcc/Target/EntryABI.h"
#include "mlir/Dialect/EmitC/IR/EmitC.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace kvcc {
#define GEN_PASS_DEF_KVLOWERTOEMITC
#include "kvcc/Conversion/Passes.h.inc"
} // namespace kvcc

using namespace mlir;
using namespace kvcc;

namespace {

/// The device templates generated attention kernels instantiate: the full
/// one (decode and prefill bodies) for ops with at least one prefill tile
/// of query rows, the decode-only one (fewer registers) for the others.
constexpr llvm::StringLiteral kAttentionTemplate =
    "kvrt::device::pagedAttention";
constexpr llvm::StringLiteral kDecodeTemplate = "kvrt::device::pagedDecode";
/// Query rows (tokens x group) of one prefill block:
/// kvrt::device::kPrefillRows, the runtime's threshold for the prefill
/// layout.
constexpr int64_t kPrefillRows = 64;
/// Block size the device template is written for.
constexpr llvm::StringLiteral kAttentionThreads =
    "kvrt::device::kAttentionThreads";
/// __launch_bounds__ of kernels with the prefill body: blocks of up to
/// kPrefillMaxThreads threads (the warp-specialized body's), at least
/// kPrefillMinBlocks per SM.
constexpr llvm::StringLiteral kPrefillMaxThreads =
    "kvrt::device::kPrefillMaxThreads";
constexpr llvm::StringLiteral kPrefillMinBlocks =
    "kvrt::device::kPrefillMinBlocks";
/// __launch_bounds__ of decode-only kernels, per template arguments: up to
/// kWideDecodeThreads threads where the tensor-core body runs at head_dim
/// 64/128 (the runtime launches such blocks for about one row per SM).
constexpr llvm::StringLiteral kDecodeMaxThreads =
    "kvrt::device::kDecodeMaxThreads";
constexpr llvm::StringLiteral kDecodeMinBlocks =
    "kvrt::device::kDecodeMinBlocks";

/// Builds the EmitC form of one entry point.
class EntryLowering {
public:
  EntryLowering(func::FuncOp func, const EntryABI &abi, Target target,
                llvm::StringMap<emitc::FuncOp> &kernels)
      : func(func), abi(abi), target(target), kernels(kernels),
        ctx(func.getContext()), builder(func) {}

  void lower();

private:
  Type paramType(ParamKind kind) {
    StringRef pointee = llvm::StringSwitch<StringRef>(getCType(kind))
                            .Case("kvrt_cache *", "kvrt_cache")
                            .Case("const int32_t *", "const int32_t")
                            .Case("const void *", "const void")
                            .Default("void");
    return emitc::PointerType::get(emitc::OpaqueType::get(ctx, pointee));
  }
  Attribute opaque(StringRef text) { return emitc::OpaqueAttr::get(ctx, text); }
  Attribute i32(int64_t value) {
    return builder.getI32IntegerAttr(static_cast<int32_t>(value));
  }
  /// Refers to operand `n` of the call being built.
  Attribute operand(unsigned n) { return builder.getIndexAttr(n); }

  /// Calls a kvrt function returning a status and returns early on failure.
  void callChecked(Location loc, StringRef callee, ValueRange operands,
                   ArrayRef<Attribute> args);
  /// The `__global__` wrapper for `op`'s template instantiation, shared by
  /// every attention of the module with the same constants.
  emitc::FuncOp getOrBuildAttentionKernel(kv::AttentionOp op);
  void lowerAppend(kv::AppendOp op);
  void lowerAttention(kv::AttentionOp op, emitc::FuncOp kernel);
  Value param(unsigned position) { return entry.getArgument(position); }
  Value argParam(Value kvValue) {
    return param(abi.paramOfArgument(cast<BlockArgument>(kvValue).getArgNumber()));
  }
  StringRef deviceEnum() const {
    return target == Target::CUDA ? "KVRT_DEVICE_CUDA" : "KVRT_DEVICE_HOST";
  }
  Attribute streamArg() {
    return target == Target::CUDA ? operand(streamOperand) : opaque("NULL");
  }

  func::FuncOp func;
  const EntryABI &abi;
  Target target;
  llvm::StringMap<emitc::FuncOp> &kernels;
  MLIRContext *ctx;
  OpBuilder builder;
  emitc::FuncOp entry;
  /// Index of the stream parameter in the current call's operand list.
  unsigned streamOperand = 0;
};

} // namespace

void EntryLowering::callChecked(Location loc, StringRef callee,
                                ValueRange operands, ArrayRef<Attribute> args) {
  auto call = emitc::CallOpaqueOp::create(builder, loc, builder.getI32Type(),
                                          callee, operands,
                                          builder.getArrayAttr(args));
  emitc::VerbatimOp::create(builder, loc, "if ({} != KVRT_OK) return {};",
                            ValueRange{call.getResult(0), call.getResult(0)});
}

emitc::FuncOp EntryLowering::getOrBuildAttentionKernel(kv::AttentionOp op) {
  kv::CacheType cache = op.getCache().getType();
  Type element = cache.getElementType();
  int64_t group =
      op.getQuery().getType().getDimSize(2) / cache.getNumHeads();
  // Ops with fewer query rows than a prefill tile never run in the prefill
  // layout: their kernels leave the prefill body out.
  bool decodeOnly = op.getQuery().getType().getDimSize(1) * group < kPrefillRows;
  std::string name =
      ((decodeOnly ? "kvcc_decode_" : "kvcc_attention_") +
       getDTypeName(element) + "_d" +
       Twine(cache.getHeadDim()) + "_g" + Twine(group) + "_p" +
       Twine(cache.getPageSize()) + (op.getCausal() ? "_causal" : ""))
          .str();
  emitc::FuncOp &kernel = kernels[name];
  if (kernel)
    return kernel;

  Type paramsType = emitc::OpaqueType::get(ctx, "kvrt_attention_params");
  kernel = emitc::FuncOp::create(builder, op.getLoc(), name,
                                 builder.getFunctionType({paramsType}, {}));
  StringRef deviceType = element.isF16()    ? "__half"
                         : element.isBF16() ? "__nv_bfloat16"
                                            : "float";
  // Kernels with the prefill body ask for kvrt's prefill occupancy;
  // decode-only ones for what their body allows (wide blocks or not).
  std::string bounds;
  if (decodeOnly) {
    std::string arguments =
        ("<" + deviceType + ", " + Twine(cache.getHeadDim()) + ", " +
         Twine(group) + ", " + Twine(cache.getPageSize()) + ">")
            .str();
    bounds = ("__launch_bounds__(" + kDecodeMaxThreads + arguments + ", " +
              kDecodeMinBlocks + arguments + ")")
                 .str();
  } else {
    bounds = ("__launch_bounds__(" + kPrefillMaxThreads + ", " +
              kPrefillMinBlocks + ")")
                 .str();
  }
  kernel.setSpecifiersAttr(builder.getStrArrayAttr({"__global__", bounds}));
  Block *body = kernel.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(body);

  SmallVector<Attribute> templateArgs = {
      TypeAttr::get(emitc::OpaqueType::get(ctx, deviceType)),
      i32(cache.getHeadDim()), i32(group), i32(cache.getPageSize()),
      builder.getBoolAttr(op.getCausal())};
  emitc::CallOpaqueOp::create(builder, op.getLoc(), TypeRange{},
                              decodeOnly ? kDecodeTemplate : kAttentionTemplate,
                              body->getArguments(),
                              /*args=*/ArrayAttr(),
                              builder.getArrayAttr(templateArgs));
  emitc::ReturnOp::create(builder, op.getLoc(), Value());
  return kernel;
}

void EntryLowering::lowerAppend(kv::AppendOp op) {
  RankedTensorType keyType = op.getKey().getType();
  SmallVector<Value> operands = {argParam(op.getCache()),
                                 argParam(op.getSeqIds()),
                                 argParam(op.getKey()),
                                 argParam(op.getValue())};
  if (target == Target::CUDA) {
    streamOperand = operands.size();
    operands.push_back(param(abi.params.size() - 1));
  }
  // kvrt_append(cache, batch, seq_ids, num_tokens, keys, values, stream)
  callChecked(op.getLoc(), "kvrt_append", operands,
              {operand(0), i32(keyType.getDimSize(0)), operand(1),
               i32(keyType.getDimSize(1)), operand(2), operand(3),
               streamArg()});
}

void EntryLowering::lowerAttention(kv::AttentionOp op, emitc::FuncOp kernel) {
  RankedTensorType queryType = op.getQuery().getType();
  unsigned resultNumber = op.getResult().getUses().begin()->getOperandNumber();
  SmallVector<Value> operands = {argParam(op.getCache()),
                                 argParam(op.getSeqIds()),
                                 argParam(op.getQuery()),
                                 param(abi.paramOfResult(resultNumber))};
  SmallVector<Attribute> args = {
      operand(0),
      i32(queryType.getDimSize(0)),
      operand(1),
      i32(queryType.getDimSize(1)),
      i32(queryType.getDimSize(2)),
      operand(2),
      operand(3),
      builder.getF32FloatAttr(op.getEffectiveScale()),
      i32(op.getCausal() ? 1 : 0)};
  if (target == Target::CPU) {
    callChecked(op.getLoc(), "kvrt_attention_host", operands, args);
    return;
  }
  streamOperand = operands.size();
  operands.push_back(param(abi.params.size() - 1));
  args.push_back(opaque(("(const void *)&" + kernel.getSymName()).str()));
  args.push_back(opaque(kAttentionThreads));
  args.push_back(streamArg());
  callChecked(op.getLoc(), "kvrt_attention_launch", operands, args);
}

void EntryLowering::lower() {
  // Kernels first: C++ needs them declared before the entry launches them.
  SmallVector<std::pair<kv::AttentionOp, emitc::FuncOp>> attentions;
  func.walk([&](kv::AttentionOp op) {
    if (op.getResult().use_empty())
      return; // Reads only: nothing observes it.
    emitc::FuncOp kernel;
    if (target == Target::CUDA)
      kernel = getOrBuildAttentionKernel(op);
    attentions.push_back({op, kernel});
  });

  SmallVector<Type> paramTypes;
  for (const EntryParam &p : abi.params)
    paramTypes.push_back(paramType(p.kind));
  entry = emitc::FuncOp::create(
      builder, func.getLoc(), abi.name,
      builder.getFunctionType(paramTypes, {builder.getI32Type()}));
  entry.setSpecifiersAttr(builder.getStrArrayAttr({"extern \"C\""}));
  Block *body = entry.addEntryBlock();
  builder.setInsertionPointToStart(body);

  // A cache built with other parameters than compiled for must be refused,
  // not misread.
  for (auto [position, p] : llvm::enumerate(abi.params)) {
    if (p.kind != ParamKind::Cache)
      continue;
    auto cache = cast<kv::CacheType>(p.type);
    callChecked(func.getLoc(), "kvrt_cache_check", {param(position)},
                {operand(0), opaque(deviceEnum()), i32(cache.getNumHeads()),
                 i32(cache.getHeadDim()),
                 opaque(getKvrtDType(cache.getElementType())),
                 i32(cache.getPageSize()),
                 builder.getI64IntegerAttr(cache.getCapacity())});
  }

  unsigned next = 0;
  for (Operation &op : func.getBody().front()) {
    if (auto append = dyn_cast<kv::AppendOp>(op))
      lowerAppend(append);
    else if (next < attentions.size() && attentions[next].first == &op) {
      lowerAttention(attentions[next].first, attentions[next].second);
      ++next;
    }
  }
  Value ok = emitc::LiteralOp::create(builder, func.getLoc(),
                                      builder.getI32Type(), "KVRT_OK");
  emitc::ReturnOp::create(builder, func.getLoc(), ok);
}

namespace {
struct KVLowerToEmitCPass
    : public kvcc::impl::KVLowerToEmitCBase<KVLowerToEmitCPass> {
  using KVLowerToEmitCBase::KVLowerToEmitCBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    std::optional<Target> parsed = parseTarget(target);
    if (!parsed) {
      module.emitError("kv-lower-to-emitc: unknown target '")
          << target << "'; expected 'cpu' or 'cuda'";
      return signalPassFailure();
    }

    SmallVector<std::pair<func::FuncOp, EntryABI>> entries;
    for (func::FuncOp func : getEntryFunctions(module)) {
      FailureOr<EntryABI> abi = computeEntryABI(func, *parsed);
      if (failed(abi))
        return signalPassFailure();
      entries.push_back({func, std::move(*abi)});
    }

    OpBuilder builder = OpBuilder::atBlockBegin(module.getBody());
    Location loc = module.getLoc();
    emitc::IncludeOp::create(builder, loc, "kvrt/kvrt.h");
    if (*parsed == Target::CUDA)
      emitc::IncludeOp::create(builder, loc, "kvrt/device/attention.cuh");

    llvm::StringMap<emitc::FuncOp> kernels;
    for (auto &[func, abi] : entries) {
      EntryLowering(func, abi, *parsed, kernels).lower();
      func.erase();
    }
  }
};
} // namespace
