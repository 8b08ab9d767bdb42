//===- ConstantEvaluator.cpp - Fold small constant tensors ------*- C++ -*-===//

#include "kvcc/Dialect/KV/Transforms/ConstantEvaluator.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace kvcc::kv;

double ConstTensor::at(ArrayRef<int64_t> index) const {
  int64_t linear = 0;
  for (auto [i, d] : llvm::zip_equal(index, shape))
    linear = linear * d + i;
  return data[linear];
}

namespace {

/// Row-major strides of a shape.
SmallVector<int64_t, 4> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t, 4> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// Converts a double holding an integer of `type`'s width to its signed or
/// unsigned reading.
int64_t asSigned(double v) { return static_cast<int64_t>(v); }
uint64_t asUnsigned(double v, unsigned width) {
  uint64_t bits = static_cast<uint64_t>(static_cast<int64_t>(v));
  return width >= 64 ? bits : bits & ((uint64_t(1) << width) - 1);
}

bool compareInts(arith::CmpIPredicate pred, double a, double b,
                 unsigned width) {
  switch (pred) {
  case arith::CmpIPredicate::eq:
    return asSigned(a) == asSigned(b);
  case arith::CmpIPredicate::ne:
    return asSigned(a) != asSigned(b);
  case arith::CmpIPredicate::slt:
    return asSigned(a) < asSigned(b);
  case arith::CmpIPredicate::sle:
    return asSigned(a) <= asSigned(b);
  case arith::CmpIPredicate::sgt:
    return asSigned(a) > asSigned(b);
  case arith::CmpIPredicate::sge:
    return asSigned(a) >= asSigned(b);
  case arith::CmpIPredicate::ult:
    return asUnsigned(a, width) < asUnsigned(b, width);
  case arith::CmpIPredicate::ule:
    return asUnsigned(a, width) <= asUnsigned(b, width);
  case arith::CmpIPredicate::ugt:
    return asUnsigned(a, width) > asUnsigned(b, width);
  case arith::CmpIPredicate::uge:
    return asUnsigned(a, width) >= asUnsigned(b, width);
  }
  llvm_unreachable("unknown cmpi predicate");
}

bool compareFloats(arith::CmpFPredicate pred, double a, double b) {
  bool unordered = std::isnan(a) || std::isnan(b);
  switch (pred) {
  case arith::CmpFPredicate::AlwaysFalse:
    return false;
  case arith::CmpFPredicate::AlwaysTrue:
    return true;
  case arith::CmpFPredicate::OEQ:
    return !unordered && a == b;
  case arith::CmpFPredicate::OGT:
    return !unordered && a > b;
  case arith::CmpFPredicate::OGE:
    return !unordered && a >= b;
  case arith::CmpFPredicate::OLT:
    return !unordered && a < b;
  case arith::CmpFPredicate::OLE:
    return !unordered && a <= b;
  case arith::CmpFPredicate::ONE:
    return !unordered && a != b;
  case arith::CmpFPredicate::ORD:
    return !unordered;
  case arith::CmpFPredicate::UEQ:
    return unordered || a == b;
  case arith::CmpFPredicate::UGT:
    return unordered || a > b;
  case arith::CmpFPredicate::UGE:
    return unordered || a >= b;
  case arith::CmpFPredicate::ULT:
    return unordered || a < b;
  case arith::CmpFPredicate::ULE:
    return unordered || a <= b;
  case arith::CmpFPredicate::UNE:
    return unordered || a != b;
  case arith::CmpFPredicate::UNO:
    return unordered;
  }
  llvm_unreachable("unknown cmpf predicate");
}

/// Rounds a double to the precision of float type `type`.
double roundTo(Type type, double v) {
  if (type.isF32())
    return static_cast<double>(static_cast<float>(v));
  if (auto floatType = dyn_cast<FloatType>(type)) {
    if (type.isF64())
      return v;
    bool losesInfo;
    APFloat f(v);
    f.convert(floatType.getFloatSemantics(), APFloat::rmNearestTiesToEven,
              &losesInfo);
    return f.convertToDouble();
  }
  return v;
}

/// Evaluates one scalar arith op on already-evaluated operands. Returns
/// nullopt for an op it does not know.
std::optional<double> evaluateScalarOp(Operation *op, ArrayRef<double> in) {
  auto intWidth = [](Type t) {
    return t.isIndex() ? 64u : t.getIntOrFloatBitWidth();
  };
  return llvm::TypeSwitch<Operation *, std::optional<double>>(op)
      .Case([&](arith::ConstantOp c) -> std::optional<double> {
        if (auto f = dyn_cast<FloatAttr>(c.getValue()))
          return f.getValueAsDouble();
        if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
          return c.getType().isInteger(1)
                     ? double(i.getValue().getBoolValue())
                     : double(i.getValue().getSExtValue());
        return std::nullopt;
      })
      .Case([&](arith::CmpIOp c) -> std::optional<double> {
        return compareInts(c.getPredicate(), in[0], in[1],
                           intWidth(c.getLhs().getType()));
      })
      .Case([&](arith::CmpFOp c) -> std::optional<double> {
        return compareFloats(c.getPredicate(), in[0], in[1]);
      })
      .Case([&](arith::SelectOp) -> std::optional<double> {
        return in[0] != 0.0 ? in[1] : in[2];
      })
      .Case<arith::AddIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) + asSigned(in[1]));
      })
      .Case<arith::SubIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) - asSigned(in[1]));
      })
      .Case<arith::MulIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) * asSigned(in[1]));
      })
      .Case<arith::AndIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) & asSigned(in[1]));
      })
      .Case<arith::OrIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) | asSigned(in[1]));
      })
      .Case<arith::XOrIOp>([&](auto) -> std::optional<double> {
        return double(asSigned(in[0]) ^ asSigned(in[1]));
      })
      .Case<arith::IndexCastOp, arith::ExtSIOp, arith::SIToFPOp,
            arith::TruncIOp, arith::IndexCastUIOp>(
          [&](auto) -> std::optional<double> { return in[0]; })
      .Case([&](arith::ExtUIOp e) -> std::optional<double> {
        return double(asUnsigned(in[0], intWidth(e.getIn().getType())));
      })
      .Case([&](arith::UIToFPOp e) -> std::optional<double> {
        return double(asUnsigned(in[0], intWidth(e.getIn().getType())));
      })
      .Case([&](arith::TruncFOp t) -> std::optional<double> {
        return roundTo(t.getType(), in[0]);
      })
      .Case<arith::ExtFOp>(
          [&](auto) -> std::optional<double> { return in[0]; })
      .Case<arith::AddFOp>(
          [&](auto) -> std::optional<double> { return in[0] + in[1]; })
      .Case<arith::SubFOp>(
          [&](auto) -> std::optional<double> { return in[0] - in[1]; })
      .Case<arith::MulFOp>(
          [&](auto) -> std::optional<double> { return in[0] * in[1]; })
      .Case<arith::DivFOp>(
          [&](auto) -> std::optional<double> { return in[0] / in[1]; })
      .Case<arith::NegFOp>(
          [&](auto) -> std::optional<double> { return -in[0]; })
      .Case<arith::MaximumFOp, arith::MaxNumFOp>(
          [&](auto) -> std::optional<double> {
            return std::fmax(in[0], in[1]);
          })
      .Case<arith::MinimumFOp, arith::MinNumFOp>(
          [&](auto) -> std::optional<double> {
            return std::fmin(in[0], in[1]);
          })
      .Default([](Operation *) { return std::nullopt; });
}

} // namespace

std::shared_ptr<const ConstTensor>
ConstantEvaluator::fail(const llvm::Twine &why) {
  reason = why.str();
  return nullptr;
}

std::shared_ptr<const ConstTensor> ConstantEvaluator::evaluate(Value value) {
  auto it = cache.find(value);
  if (it != cache.end())
    return it->second;
  std::shared_ptr<const ConstTensor> result = evaluateUncached(value);
  if (result)
    cache[value] = result;
  return result;
}

std::optional<double> ConstantEvaluator::evaluateScalar(Value value) {
  if (isa<ShapedType>(value.getType())) {
    std::shared_ptr<const ConstTensor> t = evaluate(value);
    if (!t || t->data.empty())
      return std::nullopt;
    for (double v : t->data)
      if (v != t->data.front())
        return std::nullopt;
    return t->data.front();
  }
  Operation *op = value.getDefiningOp();
  if (!op) {
    reason = "it depends on a block argument";
    return std::nullopt;
  }
  SmallVector<double> operands;
  for (Value operand : op->getOperands()) {
    std::optional<double> v = evaluateScalar(operand);
    if (!v)
      return std::nullopt;
    operands.push_back(*v);
  }
  std::optional<double> result = evaluateScalarOp(op, operands);
  if (!result)
    reason = ("'" + op->getName().getStringRef() + "' is not evaluated").str();
  return result;
}

std::shared_ptr<const ConstTensor>
ConstantEvaluator::evaluateUncached(Value value) {
  auto type = dyn_cast<RankedTensorType>(value.getType());
  if (!type || !type.hasStaticShape())
    return fail("it is not a statically shaped tensor");
  if (type.getNumElements() > maxElements)
    return fail("it has more than " + Twine(maxElements) + " elements");
  Operation *op = value.getDefiningOp();
  if (!op)
    return fail("it depends on a function argument");

  auto result = std::make_shared<ConstTensor>();
  result->shape.assign(type.getShape().begin(), type.getShape().end());
  int64_t n = type.getNumElements();

  if (auto constant = dyn_cast<arith::ConstantOp>(op)) {
    auto dense = dyn_cast<DenseElementsAttr>(constant.getValue());
    if (!dense)
      return fail("its constant is not a dense elements attribute");
    result->data.reserve(n);
    if (isa<FloatType>(dense.getElementType())) {
      for (const APFloat &f : dense.getValues<APFloat>())
        result->data.push_back(f.convertToDouble());
    } else if (isa<IntegerType, IndexType>(dense.getElementType())) {
      bool isBool = dense.getElementType().isInteger(1);
      for (const APInt &i : dense.getValues<APInt>())
        result->data.push_back(isBool ? double(i.getBoolValue())
                                      : double(i.getSExtValue()));
    } else {
      return fail("its constant has an unsupported element type");
    }
    return result;
  }
  if (isa<tensor::EmptyOp>(op)) {
    // Only ever read as a destination whose contents are overwritten.
    result->data.assign(n, 0.0);
    return result;
  }
  if (auto fill = dyn_cast<linalg::FillOp>(op)) {
    std::optional<double> v = evaluateScalar(fill.getInputs()[0]);
    if (!v)
      return nullptr;
    result->data.assign(n, *v);
    return result;
  }
  if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(op)) {
    std::shared_ptr<const ConstTensor> src = evaluate(op->getOperand(0));
    if (!src)
      return nullptr;
    result->data = src->data;
    return result;
  }
  if (auto slice = dyn_cast<tensor::ExtractSliceOp>(op)) {
    std::shared_ptr<const ConstTensor> src = evaluate(slice.getSource());
    if (!src)
      return nullptr;
    if (!slice.hasUnitStride() || slice.getSourceType().getRank() !=
                                      slice.getResultType().getRank())
      return fail("its extract_slice drops dims or has strides");
    SmallVector<int64_t> offsets(slice.getStaticOffsets());
    if (llvm::any_of(offsets, ShapedType::isDynamic))
      return fail("its extract_slice has dynamic offsets");
    SmallVector<int64_t> srcStrides = stridesOf(src->shape);
    SmallVector<int64_t> dstStrides = stridesOf(result->shape);
    result->data.resize(n);
    for (int64_t linear = 0; linear < n; ++linear) {
      int64_t srcLinear = 0;
      for (size_t d = 0; d < result->shape.size(); ++d)
        srcLinear += ((linear / dstStrides[d]) % result->shape[d] + offsets[d]) *
                     srcStrides[d];
      result->data[linear] = src->data[srcLinear];
    }
    return result;
  }
  if (auto transpose = dyn_cast<linalg::TransposeOp>(op)) {
    std::shared_ptr<const ConstTensor> src = evaluate(transpose.getInput());
    if (!src)
      return nullptr;
    ArrayRef<int64_t> perm = transpose.getPermutation();
    SmallVector<int64_t> srcStrides = stridesOf(src->shape);
    SmallVector<int64_t> dstStrides = stridesOf(result->shape);
    result->data.resize(n);
    for (int64_t linear = 0; linear < n; ++linear) {
      int64_t srcLinear = 0;
      for (size_t d = 0; d < perm.size(); ++d)
        srcLinear +=
            ((linear / dstStrides[d]) % result->shape[d]) * srcStrides[perm[d]];
      result->data[linear] = src->data[srcLinear];
    }
    return result;
  }
  auto generic = dyn_cast<linalg::GenericOp>(op);
  if (!generic)
    return fail(("'" + op->getName().getStringRef() + "' is not evaluated")
                    .str());
  if (generic.getNumReductionLoops() != 0)
    return fail("its linalg.generic has reduction loops");

  SmallVector<int64_t> ranges = generic.getStaticLoopRanges();
  if (llvm::any_of(ranges, ShapedType::isDynamic))
    return fail("its linalg.generic has dynamic loop ranges");
  SmallVector<std::shared_ptr<const ConstTensor>> inputs;
  SmallVector<std::optional<double>> scalarInputs;
  for (OpOperand *input : generic.getDpsInputOperands()) {
    if (!isa<ShapedType>(input->get().getType())) {
      std::optional<double> v = evaluateScalar(input->get());
      if (!v)
        return nullptr;
      scalarInputs.push_back(v);
      inputs.push_back(nullptr);
      continue;
    }
    std::shared_ptr<const ConstTensor> t = evaluate(input->get());
    if (!t)
      return nullptr;
    inputs.push_back(t);
    scalarInputs.push_back(std::nullopt);
  }
  unsigned resultNumber = cast<OpResult>(value).getResultNumber();
  OpOperand *init = generic.getDpsInitOperand(resultNumber);
  AffineMap outMap = generic.getMatchingIndexingMap(init);
  if (!outMap.isProjectedPermutation())
    return fail("its linalg.generic writes through a non-permutation map");
  Block &body = generic.getRegion().front();
  bool readsInit = !body.getArgument(generic.getNumDpsInputs() + resultNumber)
                        .use_empty();
  std::shared_ptr<const ConstTensor> initValue;
  if (readsInit && !(initValue = evaluate(init->get())))
    return nullptr;

  // Every value the body reads gets a slot: captured constants are filled
  // once, block arguments and op results at every point.
  llvm::DenseMap<Value, unsigned> slots;
  std::vector<double> env;
  auto slotOf = [&](Value v) {
    auto [it, inserted] = slots.try_emplace(v, env.size());
    if (inserted)
      env.push_back(0.0);
    return it->second;
  };
  for (BlockArgument arg : body.getArguments())
    slotOf(arg);
  struct Step {
    Operation *op;
    SmallVector<unsigned, 3> operands;
    unsigned result;
    int64_t indexDim = -1;
  };
  SmallVector<Step> steps;
  for (Operation &bodyOp : body.without_terminator()) {
    if (bodyOp.getNumResults() != 1 || bodyOp.getNumRegions() != 0)
      return fail(("'" + bodyOp.getName().getStringRef() +
                   "' in a linalg.generic body is not evaluated")
                      .str());
    Step step{&bodyOp, {}, 0};
    for (Value operand : bodyOp.getOperands()) {
      if (operand.getParentBlock() != &body && !slots.count(operand)) {
        std::optional<double> v = evaluateScalar(operand);
        if (!v)
          return nullptr;
        env[slotOf(operand)] = *v;
      }
      step.operands.push_back(slotOf(operand));
    }
    if (auto indexOp = dyn_cast<linalg::IndexOp>(bodyOp))
      step.indexDim = indexOp.getDim();
    step.result = slotOf(bodyOp.getResult(0));
    steps.push_back(std::move(step));
  }
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  unsigned yieldSlot = slotOf(yield.getOperand(resultNumber));
  SmallVector<AffineMap> inputMaps;
  for (OpOperand *input : generic.getDpsInputOperands())
    inputMaps.push_back(generic.getMatchingIndexingMap(input));
  for (AffineMap map : inputMaps)
    for (AffineExpr expr : map.getResults())
      if (!isa<AffineDimExpr, AffineConstantExpr>(expr))
        return fail("its linalg.generic reads through a non-trivial map");

  result->data.assign(n, 0.0);
  SmallVector<int64_t> dstStrides = stridesOf(result->shape);
  SmallVector<int64_t> point(ranges.size(), 0);
  SmallVector<int64_t, 4> index;
  SmallVector<double, 3> operands;
  auto indexAt = [&](AffineMap map) {
    index.clear();
    for (AffineExpr expr : map.getResults()) {
      if (auto dim = dyn_cast<AffineDimExpr>(expr))
        index.push_back(point[dim.getPosition()]);
      else
        index.push_back(cast<AffineConstantExpr>(expr).getValue());
    }
  };
  for (bool done = llvm::is_contained(ranges, 0); !done;) {
    for (auto [i, input] : llvm::enumerate(inputs)) {
      if (!input) {
        env[i] = *scalarInputs[i];
        continue;
      }
      indexAt(inputMaps[i]);
      env[i] = input->at(index);
    }
    indexAt(outMap);
    if (readsInit)
      env[generic.getNumDpsInputs() + resultNumber] = initValue->at(index);
    for (const Step &step : steps) {
      if (step.indexDim >= 0) {
        env[step.result] = double(point[step.indexDim]);
        continue;
      }
      operands.clear();
      for (unsigned slot : step.operands)
        operands.push_back(env[slot]);
      std::optional<double> v = evaluateScalarOp(step.op, operands);
      if (!v)
        return fail(("'" + step.op->getName().getStringRef() +
                     "' in a linalg.generic body is not evaluated")
                        .str());
      env[step.result] = *v;
    }
    int64_t linear = 0;
    for (size_t d = 0; d < index.size(); ++d)
      linear += index[d] * dstStrides[d];
    result->data[linear] = env[yieldSlot];

    // Next point of the iteration space, last dimension fastest.
    int d = static_cast<int>(ranges.size()) - 1;
    for (; d >= 0; --d) {
      if (++point[d] < ranges[d])
        break;
      point[d] = 0;
    }
    done = d < 0;
  }
  return result;
}
