//===- RaiseAttention.cpp - Raise linalg attention to kv ops ----*- C++ -*-===//
//
// Finds softmax(scale * Q·Kᵀ + mask)·V in linalg-on-tensors IR, together with
// the KV-cache update around it (past K/V concatenated with the new token's
// K/V and returned, Hugging Face style), and replaces it with kv.append and
// kv.attention over a !kv.cache argument.
//
// Matching starts at each P·V contraction and walks up its operands,
// looking through the reshapes, transposes and GQA repeats front ends put
// there. Masks are not matched by spelling: when they only depend on
// constants they are evaluated and a causal or empty result becomes the
// `causal` flag; any other per-sequence mask on [B, H, Tq, Tk] scores (a
// padding mask derived from an argument) is passed at run time as
// kv.attention's mask operand. Anything that does not fit is left as it
// was; with `remarks` the pass says why at the contraction.
//
//===----------------------------------------------------------------------===//

#include "kvcc/Dialect/KV/Transforms/Passes.h"

#include "kvcc/Dialect/KV/IR/KVOps.h"
#include "kvcc/Dialect/KV/Transforms/ConstantEvaluator.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/Support/Error.h"

#include <cmath>

namespace kvcc::kv {
#define GEN_PASS_DEF_KVRAISEATTENTION
#include "kvcc/Dialect/KV/Transforms/Passes.h.inc"
} // namespace kvcc::kv

using namespace mlir;
using namespace kvcc;
using namespace kvcc::kv;

namespace {

/// A match result, or why there is none.
template <typename T> using Matched = llvm::Expected<T>;

llvm::Error failMatch(const Twine &why) {
  return llvm::make_error<llvm::StringError>(why.str(),
                                             llvm::inconvertibleErrorCode());
}

/// A batched contraction C[.., m, n] = sum_k A[.., m, k] * B[.., k, n] (or
/// B[.., n, k] when `transposedB`): a linalg.batch_matmul on [B*H, ..]
/// operands, a linalg.matmul when B*H is 1, or a linalg.generic on 4-D
/// [B, H, ..] operands.
struct Contraction {
  Operation *op = nullptr;
  Value lhs, rhs, result;
  bool transposedB = false;

  explicit operator bool() const { return op != nullptr; }
};

/// Recognizes `op` as a contraction, or returns an empty one.
Contraction asContraction(Operation *op) {
  if (!op)
    return {};
  MLIRContext *ctx = op->getContext();
  if (auto bmm = dyn_cast<linalg::BatchMatmulOp>(op)) {
    Contraction c{op, bmm.getDpsInputOperand(0)->get(),
                  bmm.getDpsInputOperand(1)->get(), bmm->getResult(0)};
    if (!bmm.hasUserDefinedMaps())
      return c;
    AffineExpr b, m, n, k;
    bindDims(ctx, b, m, n, k);
    SmallVector<AffineMap> maps = bmm.getIndexingMapsArray();
    if (maps[0] == AffineMap::get(4, 0, {b, m, k}, ctx) &&
        maps[1] == AffineMap::get(4, 0, {b, n, k}, ctx) &&
        maps[2] == AffineMap::get(4, 0, {b, m, n}, ctx)) {
      c.transposedB = true;
      return c;
    }
    return {};
  }
  if (auto mm = dyn_cast<linalg::MatmulOp>(op)) {
    Contraction c{op, mm.getDpsInputOperand(0)->get(),
                  mm.getDpsInputOperand(1)->get(), mm->getResult(0)};
    if (!mm.hasUserDefinedMaps())
      return c;
    AffineExpr m, n, k;
    bindDims(ctx, m, n, k);
    SmallVector<AffineMap> maps = mm.getIndexingMapsArray();
    if (maps[0] == AffineMap::get(3, 0, {m, k}, ctx) &&
        maps[1] == AffineMap::get(3, 0, {n, k}, ctx) &&
        maps[2] == AffineMap::get(3, 0, {m, n}, ctx)) {
      c.transposedB = true;
      return c;
    }
    return {};
  }
  auto generic = dyn_cast<linalg::GenericOp>(op);
  if (!generic || generic.getNumDpsInputs() != 2 ||
      generic.getNumDpsInits() != 1 || generic.getNumLoops() != 5 ||
      generic.getNumReductionLoops() != 1 ||
      generic.getIteratorTypesArray()[4] != utils::IteratorType::reduction)
    return {};
  // Body: yield(acc + a * b), in either operand order.
  Block *body = generic.getBody();
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto add = yield.getOperand(0).getDefiningOp<arith::AddFOp>();
  if (!add)
    return {};
  Value acc = body->getArgument(2);
  Value product = add.getLhs() == acc ? add.getRhs() : add.getLhs();
  auto mul = product.getDefiningOp<arith::MulFOp>();
  if (!mul || (add.getLhs() != acc && add.getRhs() != acc))
    return {};
  llvm::SmallDenseSet<Value, 2> factors = {mul.getLhs(), mul.getRhs()};
  if (!factors.contains(body->getArgument(0)) ||
      !factors.contains(body->getArgument(1)))
    return {};
  AffineExpr b, h, m, n, k;
  bindDims(ctx, b, h, m, n, k);
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(5, 0, {b, h, m, k}, ctx) ||
      maps[2] != AffineMap::get(5, 0, {b, h, m, n}, ctx))
    return {};
  Contraction c{op, generic.getDpsInputOperand(0)->get(),
                generic.getDpsInputOperand(1)->get(), generic->getResult(0)};
  if (maps[1] == AffineMap::get(5, 0, {b, h, n, k}, ctx))
    c.transposedB = true;
  else if (maps[1] != AffineMap::get(5, 0, {b, h, k, n}, ctx))
    return {};
  return c;
}

/// A key or value operand traced back to the kv-head level.
struct HeadTensor {
  /// [B, Hkv, T, D].
  Value kvHeads;
  /// Query heads per kv head (the GQA repeat factor).
  int64_t group = 1;
  /// The repeat tiles whole copies (query head h reads kv head h % Hkv)
  /// instead of repeating each head (h reads h / group).
  bool tiled = false;
};

/// Everything the rewrite needs about one attention.
/// One additive mask on the scores: the tensor, the indexing map it is read
/// through (score dims -> mask dims) and the product of the scales applied
/// to the scores after it was added (it scales the mask too).
struct MaskTerm {
  Value value;
  AffineMap map;
  double scaleAfter = 1.0;
};

struct AttentionMatch {
  Contraction pv;
  /// [B, Hq, Tq, D].
  Value query;
  HeadTensor key, value;
  double scale = 1.0;
  bool causal = false;
  /// Masks passed at run time (summed into kv.attention's [B, T, S] mask
  /// operand); empty when the mask was resolved at compile time.
  SmallVector<MaskTerm> masks;
  /// The past cache arguments (decode) or null (prefill).
  BlockArgument pastKey, pastValue;
  /// The new tokens' keys and values [B, Hkv, T, D].
  Value newKey, newValue;
  /// The full keys/values (concatenation, or the new ones for a prefill)
  /// the function returns as its updated cache.
  Value presentKey, presentValue;
};

bool isIdentityReassociation(ArrayRef<ReassociationIndices> reassociation,
                             ArrayRef<ReassociationIndices> expected) {
  if (reassociation.size() != expected.size())
    return false;
  for (auto [a, b] : llvm::zip_equal(reassociation, expected))
    if (ArrayRef<int64_t>(a) != ArrayRef<int64_t>(b))
      return false;
  return true;
}

/// The single operation of a linalg.generic body feeding its yield, when the
/// body is exactly `op; yield op`. Ops that only compute from constants
/// (e.g. a truncf of a captured f64) may precede it.
Operation *singleComputation(linalg::GenericOp generic) {
  auto yield = cast<linalg::YieldOp>(generic.getBody()->getTerminator());
  if (yield.getNumOperands() < 1)
    return nullptr;
  return yield.getOperand(0).getDefiningOp();
}

bool allParallel(linalg::GenericOp generic) {
  return generic.getNumReductionLoops() == 0;
}

/// The reassociation that collapses [B, H, X, Y] to `rank` dims: [B*H, X, Y]
/// or, for single-head single-batch graphs, [B*H*X, Y].
SmallVector<ReassociationIndices> batchHeadsCollapse(int64_t rank) {
  if (rank == 2)
    return {{0, 1, 2}, {3}};
  return {{0, 1}, {2}, {3}};
}

/// The value of [B*H, X, Y] `v` (or [X, Y] when B*H is 1) as the
/// [B, H, X, Y] it was collapsed from.
Value uncollapseBatchHeads(Value v) {
  int64_t rank = cast<ShapedType>(v.getType()).getRank();
  if (rank == 4)
    return v;
  auto collapse = v.getDefiningOp<tensor::CollapseShapeOp>();
  if (collapse && collapse.getSrcType().getRank() == 4 &&
      (rank == 3 || rank == 2) &&
      isIdentityReassociation(collapse.getReassociationIndices(),
                              batchHeadsCollapse(rank)) &&
      (rank == 3 || collapse.getSrcType().getDimSize(0) *
                            collapse.getSrcType().getDimSize(1) == 1))
    return collapse.getSrc();
  return {};
}

/// Matches a broadcast of [B, Hkv, T, D] to [B, Hkv, g, T, D] (repeat_kv's
/// expand), as a linalg.generic or linalg.broadcast. Returns the source.
Value matchRepeatBroadcast(Value v5) {
  if (auto broadcast = v5.getDefiningOp<linalg::BroadcastOp>()) {
    if (broadcast.getDimensions() == ArrayRef<int64_t>{2})
      return broadcast.getInput();
    return {};
  }
  auto generic = v5.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic.getNumDpsInputs() != 1 || !allParallel(generic) ||
      generic.getNumResults() != 1)
    return {};
  MLIRContext *ctx = generic.getContext();
  AffineExpr d0, d1, d2, d3, d4;
  bindDims(ctx, d0, d1, d2, d3, d4);
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  auto yield = cast<linalg::YieldOp>(generic.getBody()->getTerminator());
  if (!maps[1].isIdentity() ||
      yield.getOperand(0) != generic.getBody()->getArgument(0))
    return {};
  Value input = generic.getDpsInputOperand(0)->get();
  if (maps[0] == AffineMap::get(5, 0, {d0, d1, d3, d4}, ctx))
    return input;
  // torch's x[:, :, None].expand(...): a unit group dim added by an
  // expand_shape, then broadcast along it.
  auto expand = input.getDefiningOp<tensor::ExpandShapeOp>();
  if (maps[0] == AffineMap::get(5, 0,
                                {d0, d1, getAffineConstantExpr(0, ctx), d3, d4},
                                ctx) &&
      expand && expand.getSrcType().getRank() == 4 &&
      isIdentityReassociation(expand.getReassociationIndices(),
                              {{0}, {1, 2}, {3}, {4}}))
    return expand.getSrc();
  return {};
}

/// Matches repeat_kv as a gather along the heads (torch.index_select): a
/// linalg.generic reading an index vector idx[Hq] that yields
/// `tensor.extract %kv[i0, idx[i1], i2, i3]`. The indices must be constant
/// and either repeat each head (h / g) or tile the head set (h mod Hkv).
/// Returns nullopt when `v` is not such a gather.
std::optional<Matched<HeadTensor>> matchHeadGather(Value v, StringRef what) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic.getNumDpsInputs() != 1 ||
      generic.getNumResults() != 1 || generic.getNumLoops() != 4 ||
      !allParallel(generic))
    return std::nullopt;
  MLIRContext *ctx = generic.getContext();
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(4, 0, {getAffineDimExpr(1, ctx)}, ctx) ||
      !maps[1].isIdentity())
    return std::nullopt;
  Block *body = generic.getBody();
  auto yield = cast<linalg::YieldOp>(body->getTerminator());
  auto extract = yield.getOperand(0).getDefiningOp<tensor::ExtractOp>();
  if (!extract || extract.getTensor().getParentBlock() == body ||
      extract.getIndices().size() != 4)
    return std::nullopt;
  auto isLoopIndex = [](Value index, int64_t dim) {
    auto op = index.getDefiningOp<linalg::IndexOp>();
    return op && op.getDim() == static_cast<uint64_t>(dim);
  };
  Value headIndex = extract.getIndices()[1];
  if (auto cast = headIndex.getDefiningOp<arith::IndexCastOp>())
    headIndex = cast.getIn();
  if (!isLoopIndex(extract.getIndices()[0], 0) ||
      !isLoopIndex(extract.getIndices()[2], 2) ||
      !isLoopIndex(extract.getIndices()[3], 3) ||
      headIndex != body->getArgument(0))
    return std::nullopt;

  Value source = extract.getTensor();
  auto sourceType = dyn_cast<RankedTensorType>(source.getType());
  ConstantEvaluator evaluator;
  std::shared_ptr<const ConstTensor> indices =
      evaluator.evaluate(generic.getDpsInputOperand(0)->get());
  if (!sourceType || sourceType.getRank() != 4 || !indices)
    return Matched<HeadTensor>(failMatch(
        what + " gathers heads through indices that are not constant"));
  int64_t kvHeads = sourceType.getDimSize(1);
  int64_t heads = static_cast<int64_t>(indices->data.size());
  if (kvHeads <= 0 || heads % kvHeads != 0)
    return Matched<HeadTensor>(
        failMatch(what + " gathers a head count that is not a multiple of "
                         "its kv heads"));
  int64_t group = heads / kvHeads;
  bool repeated = true, tiled = true;
  for (int64_t h = 0; h < heads; ++h) {
    repeated &= indices->data[h] == double(h / group);
    tiled &= indices->data[h] == double(h % kvHeads);
  }
  if (!repeated && !tiled)
    return Matched<HeadTensor>(failMatch(
        what + " gathers kv heads in an order that is not a GQA repeat"));
  return Matched<HeadTensor>(HeadTensor{source, group, !repeated});
}

/// Traces a [B, Hq, T, D] operand (or its [B*Hq, T, D] collapse) back
/// through repeat_kv to [B, Hkv, T, D].
Matched<HeadTensor> traceHeads(Value v, StringRef what) {
  auto type = cast<ShapedType>(v.getType());
  if (auto collapse = v.getDefiningOp<tensor::CollapseShapeOp>()) {
    // [B, Hkv, g, T, D] -> [B*Hkv*g, T, D] or -> [B, Hkv*g, T, D].
    if (collapse.getSrcType().getRank() == 5 &&
        (isIdentityReassociation(collapse.getReassociationIndices(),
                                 {{0, 1, 2}, {3}, {4}}) ||
         isIdentityReassociation(collapse.getReassociationIndices(),
                                 {{0}, {1, 2}, {3}, {4}}))) {
      Value source = matchRepeatBroadcast(collapse.getSrc());
      if (!source)
        return failMatch(what + " is a collapse of a rank-5 tensor that is "
                                "not a repeat_kv broadcast");
      return HeadTensor{source, collapse.getSrcType().getDimSize(2)};
    }
  }
  if (type.getRank() == 3 || type.getRank() == 2) {
    Value four = uncollapseBatchHeads(v);
    if (!four)
      return failMatch(what + " is not a [batch*heads, tokens, dim] collapse "
                              "of a 4-D tensor");
    return traceHeads(four, what);
  }
  if (type.getRank() != 4)
    return failMatch(what + " is not a 4-D [batch, heads, tokens, dim] "
                            "tensor");
  if (std::optional<Matched<HeadTensor>> gathered = matchHeadGather(v, what))
    return std::move(*gathered);
  // repeat_kv as copies of the whole head set concatenated along the heads.
  if (auto concat = v.getDefiningOp<tensor::ConcatOp>();
      concat && concat.getDim() == 1 && concat.getInputs().size() > 1 &&
      llvm::all_equal(concat.getInputs()))
    return HeadTensor{concat.getInputs()[0],
                      static_cast<int64_t>(concat.getInputs().size()),
                      /*tiled=*/true};
  return HeadTensor{v, 1};
}

/// Traces the right operand of Q·Kᵀ, [B*H, D, Tk] or [B, H, D, Tk], to K.
Matched<HeadTensor> traceTransposedKey(Value v) {
  Value four = uncollapseBatchHeads(v);
  if (!four)
    return failMatch("the key operand is not a [batch*heads, dim, keys] "
                     "collapse of a 4-D tensor");
  if (auto transpose = four.getDefiningOp<linalg::TransposeOp>()) {
    if (transpose.getPermutation() != ArrayRef<int64_t>{0, 1, 3, 2})
      return failMatch("the key transpose does not swap the last two dims");
    return traceHeads(transpose.getInput(), "the key");
  }
  if (auto generic = four.getDefiningOp<linalg::GenericOp>()) {
    MLIRContext *ctx = generic.getContext();
    AffineExpr d0, d1, d2, d3;
    bindDims(ctx, d0, d1, d2, d3);
    SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
    auto yield = cast<linalg::YieldOp>(generic.getBody()->getTerminator());
    if (generic.getNumDpsInputs() == 1 && allParallel(generic) &&
        maps[0] == AffineMap::get(4, 0, {d0, d1, d3, d2}, ctx) &&
        maps[1].isIdentity() &&
        yield.getOperand(0) == generic.getBody()->getArgument(0))
      return traceHeads(generic.getDpsInputOperand(0)->get(), "the key");
  }
  return failMatch("the key operand of Q·Kᵀ is not a transpose of K");
}

/// Matches a linalg.generic whose only computation is `op(in0, in1)` with
/// identity maps on every operand but `broadcastInput`, which is the row
/// reduction of the same shape (trailing dim dropped or kept as 1).
template <typename OpTy>
linalg::GenericOp matchRowBinary(Value v) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic || !allParallel(generic) || generic.getNumDpsInputs() != 2)
    return {};
  Operation *op = singleComputation(generic);
  if (!op || !isa<OpTy>(op) ||
      op->getOperand(0) != generic.getBody()->getArgument(0) ||
      op->getOperand(1) != generic.getBody()->getArgument(1))
    return {};
  SmallVector<AffineMap> maps = generic.getIndexingMapsArray();
  if (!maps[0].isIdentity() || !maps[2].isIdentity())
    return {};
  unsigned rank = maps[0].getNumDims();
  AffineMap row = maps[1];
  for (unsigned i = 0; i + 1 < rank; ++i)
    if (row.getNumResults() <= i || row.getResult(i) != getAffineDimExpr(i, generic.getContext()))
      return {};
  bool dropped = row.getNumResults() == rank - 1;
  bool keptAsOne =
      row.getNumResults() == rank &&
      row.getResult(rank - 1) == getAffineConstantExpr(0, generic.getContext());
  return dropped || keptAsOne ? generic : linalg::GenericOp();
}

/// Matches a reduction of `input` over its last dim whose body combines with
/// OpTy (first result). Returns true on a match.
template <typename... OpTys>
bool isRowReduction(Value v, Value input) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic || generic.getNumReductionLoops() != 1 ||
      generic.getNumDpsInputs() != 1 ||
      generic.getDpsInputOperand(0)->get() != input ||
      cast<OpResult>(v).getResultNumber() != 0)
    return false;
  SmallVector<utils::IteratorType> iterators =
      generic.getIteratorTypesArray();
  if (iterators.back() != utils::IteratorType::reduction)
    return false;
  auto yield = cast<linalg::YieldOp>(generic.getBody()->getTerminator());
  Operation *combine = yield.getOperand(0).getDefiningOp();
  return combine && isa<OpTys...>(combine);
}

/// True when `exp` computes e^x of the generic's input x: math.exp(x), or
/// math.exp2(x * log2(e)) as exp2-based softmaxes spell it.
bool isExpOfInput(Operation *exp, linalg::GenericOp generic) {
  Value in = generic.getBody()->getArgument(0);
  if (isa<math::ExpOp>(exp))
    return exp->getOperand(0) == in;
  if (!isa<math::Exp2Op>(exp))
    return false;
  auto mul = exp->getOperand(0).getDefiningOp<arith::MulFOp>();
  if (!mul)
    return false;
  Value factor = mul.getLhs() == in ? mul.getRhs() : mul.getLhs();
  FloatAttr c;
  constexpr double kLog2E = 1.4426950408889634;
  return (mul.getLhs() == in || mul.getRhs() == in) &&
         matchPattern(factor, m_Constant(&c)) &&
         std::abs(c.getValueAsDouble() - kLog2E) < 1e-3;
}

/// Looks through an elementwise float cast (extf/truncf), as front ends put
/// around a softmax computed in f32.
Value throughFloatCast(Value v) {
  auto generic = v.getDefiningOp<linalg::GenericOp>();
  if (!generic || !allParallel(generic) || generic.getNumDpsInputs() != 1 ||
      !generic.getIndexingMapsArray()[0].isIdentity())
    return v;
  Operation *cast = singleComputation(generic);
  if (cast && isa<arith::ExtFOp, arith::TruncFOp>(cast) &&
      cast->getOperand(0) == generic.getBody()->getArgument(0))
    return generic.getDpsInputOperand(0)->get();
  return v;
}

/// Matches P = softmax(S) over the last dimension and returns S.
Matched<Value> matchSoftmax(Value p) {
  p = throughFloatCast(p);
  auto type = cast<ShapedType>(p.getType());
  if (auto softmax = p.getDefiningOp<linalg::SoftmaxOp>()) {
    if (softmax.getDimension() != static_cast<uint64_t>(type.getRank() - 1))
      return failMatch("the softmax is not over the last (key) dimension");
    return throughFloatCast(softmax.getInput());
  }
  // exp(S - max S) / sum exp(S - max S), or * (1 / sum).
  linalg::GenericOp normalize = matchRowBinary<arith::DivFOp>(p);
  if (!normalize)
    normalize = matchRowBinary<arith::MulFOp>(p);
  if (!normalize)
    return failMatch("the probabilities are not a softmax");
  Value exps = normalize.getDpsInputOperand(0)->get();
  Value sum = normalize.getDpsInputOperand(1)->get();
  if (isa<arith::MulFOp>(singleComputation(normalize))) {
    auto reciprocal = sum.getDefiningOp<linalg::GenericOp>();
    Operation *div = reciprocal ? singleComputation(reciprocal) : nullptr;
    if (!div || !isa<arith::DivFOp>(div) || !matchPattern(div->getOperand(0), m_OneFloat()))
      return failMatch("the softmax multiplies by something other than a "
                       "reciprocal of the sum");
    sum = reciprocal.getDpsInputOperand(0)->get();
  }
  auto expGeneric = exps.getDefiningOp<linalg::GenericOp>();
  Operation *exp = expGeneric ? singleComputation(expGeneric) : nullptr;
  if (!exp || expGeneric.getNumDpsInputs() != 1 || !isExpOfInput(exp, expGeneric))
    return failMatch("the softmax numerator is not an exp");
  if (!isRowReduction<arith::AddFOp>(sum, exps))
    return failMatch("the softmax denominator is not a row sum of the "
                     "numerator");
  auto sumGeneric = sum.getDefiningOp<linalg::GenericOp>();
  ConstantEvaluator initEvaluator;
  std::optional<double> sumInit =
      initEvaluator.evaluateScalar(sumGeneric.getDpsInitOperand(0)->get());
  if (!sumInit || *sumInit != 0.0)
    return failMatch("the softmax denominator does not start from zero");
  Value shifted = expGeneric.getDpsInputOperand(0)->get();
  linalg::GenericOp sub = matchRowBinary<arith::SubFOp>(shifted);
  if (!sub)
    return failMatch("the softmax does not subtract the row maximum");
  Value scores = sub.getDpsInputOperand(0)->get();
  Value max = sub.getDpsInputOperand(1)->get();
  if (auto expand = max.getDefiningOp<tensor::ExpandShapeOp>())
    max = expand.getSrc();
  if (!isRowReduction<arith::MaximumFOp, arith::MaxNumFOp>(max, scores))
    return failMatch("the softmax subtracts something other than the row "
                     "maximum of its input");
  return throughFloatCast(scores);
}

/// What the elementwise ops between Q·Kᵀ and the softmax do.
struct ScoreChain {
  Contraction qk;
  double scale = 1.0;
  SmallVector<MaskTerm> masks;
};

/// Walks from the softmax input back to the Q·Kᵀ contraction.
Matched<ScoreChain> traceScores(Value scores, ConstantEvaluator &evaluator) {
  ScoreChain chain;
  Value v = scores;
  while (true) {
    if (Contraction qk = asContraction(v.getDefiningOp())) {
      chain.qk = qk;
      return chain;
    }
    if (auto expand = v.getDefiningOp<tensor::ExpandShapeOp>()) {
      int64_t srcRank = expand.getSrcType().getRank();
      if ((srcRank == 3 || srcRank == 2) &&
          isIdentityReassociation(expand.getReassociationIndices(),
                                  batchHeadsCollapse(srcRank))) {
        v = expand.getSrc();
        continue;
      }
      return failMatch("the scores are reshaped in a way kvcc does not "
                       "follow");
    }
    auto generic = v.getDefiningOp<linalg::GenericOp>();
    if (!generic || !allParallel(generic) || generic.getNumResults() != 1)
      return failMatch("the scores come from an op that is not Q·Kᵀ, a "
                       "scale or a mask");
    Operation *op = singleComputation(generic);
    // Find which input carries the scores: the one read through an identity
    // map that the computation uses directly.
    int chainInput = -1;
    for (OpOperand *input : generic.getDpsInputOperands()) {
      if (!generic.getMatchingIndexingMap(input).isIdentity())
        continue;
      BlockArgument arg = generic.getMatchingBlockArgument(input);
      if (op && llvm::is_contained(op->getOperands(), arg)) {
        chainInput = input->getOperandNumber();
        break;
      }
    }
    if (!op || chainInput < 0 || op->getNumOperands() != 2)
      return failMatch("an elementwise op on the scores is not a scale or "
                       "an additive mask");
    BlockArgument chainArg = generic.getBody()->getArgument(chainInput);
    Value other = op->getOperand(0) == chainArg ? op->getOperand(1)
                                                : op->getOperand(0);
    // The other operand: a constant (scale) or another input (mask or a
    // broadcast scalar).
    OpOperand *otherInput = nullptr;
    if (auto arg = dyn_cast<BlockArgument>(other);
        arg && arg.getOwner() == generic.getBody())
      otherInput = generic.getMatchingOpOperand(arg);
    // A splat tensor or a scalar computed from constants.
    std::optional<double> constant = evaluator.evaluateScalar(
        otherInput ? otherInput->get() : other);
    if (isa<arith::MulFOp>(op) && constant) {
      chain.scale *= *constant;
    } else if (isa<arith::DivFOp>(op) && constant &&
               op->getOperand(0) == chainArg) {
      chain.scale /= *constant;
    } else if (isa<arith::AddFOp>(op) && otherInput && !constant) {
      // Walking back from the softmax: chain.scale so far is what the
      // scores get after this addition.
      chain.masks.push_back({otherInput->get(),
                             generic.getMatchingIndexingMap(otherInput),
                             chain.scale});
    } else if (isa<arith::AddFOp>(op) && constant && *constant == 0.0) {
      // Adding zero: nothing to do.
    } else {
      return failMatch("an elementwise '" + op->getName().getStringRef() +
                       "' on the scores is not a constant scale or an "
                       "additive mask");
    }
    v = generic.getDpsInputOperand(chainInput)->get();
  }
}

/// True when `value` is at or below the most negative finite float: the
/// spellings front ends use for "masked out".
bool isMaskedOut(double value) { return value <= -3.0e38; }

/// Classifies the sum of the additive masks on [.., Tq, Tk] scores: causal
/// (key j visible to query i iff j <= i + Tk - Tq) or no mask at all.
llvm::Expected<bool> classifyMasks(const ScoreChain &chain,
                                   ArrayRef<int64_t> scoreShape,
                                   ConstantEvaluator &evaluator) {
  if (chain.masks.empty())
    return false;
  int64_t rank = scoreShape.size();
  int64_t tq = scoreShape[rank - 2], tk = scoreShape[rank - 1];
  SmallVector<std::shared_ptr<const ConstTensor>> values;
  for (const MaskTerm &term : chain.masks) {
    std::shared_ptr<const ConstTensor> value = evaluator.evaluate(term.value);
    if (!value)
      return failMatch("the additive mask cannot be evaluated at compile "
                       "time (" + evaluator.whyNot() + ")");
    values.push_back(value);
  }
  int64_t rows = 1;
  for (int64_t d : scoreShape.drop_back(2))
    rows *= d;
  bool sawMasked = false;
  SmallVector<int64_t> point(rank, 0), index;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t rest = r;
    for (int64_t d = rank - 3; d >= 0; --d) {
      point[d] = rest % scoreShape[d];
      rest /= scoreShape[d];
    }
    for (int64_t i = 0; i < tq; ++i) {
      for (int64_t j = 0; j < tk; ++j) {
        point[rank - 2] = i;
        point[rank - 1] = j;
        double total = 0.0;
        for (auto [k, value] : llvm::enumerate(values)) {
          AffineMap map = chain.masks[k].map;
          index.clear();
          for (AffineExpr expr : map.getResults()) {
            if (auto dim = dyn_cast<AffineDimExpr>(expr))
              index.push_back(point[dim.getPosition()]);
            else if (auto c = dyn_cast<AffineConstantExpr>(expr))
              index.push_back(c.getValue());
            else
              return failMatch("the mask is read through a non-trivial map");
          }
          total += value->at(index);
        }
        bool visible = j <= i + tk - tq;
        if (visible && total != 0.0)
          return failMatch("the mask changes visible scores (it is not a "
                           "causal mask)");
        if (!visible && !isMaskedOut(total))
          return failMatch("the mask leaves a future key visible (it is not "
                           "a causal mask)");
        sawMasked |= !visible;
      }
    }
  }
  return sawMasked;
}

/// Checks that the masks of `chain` can become kv.attention's run-time mask
/// operand [B, T, S]: scores are [B, H, T, S] and no mask differs between
/// heads (kv.attention's mask is per sequence, as padding masks are).
llvm::Error checkRuntimeMasks(const ScoreChain &chain,
                              ArrayRef<int64_t> scoreShape) {
  if (scoreShape.size() != 4)
    return failMatch("a mask that is not a compile-time causal mask needs "
                     "[batch, heads, tokens, keys] scores, not " +
                     std::to_string(scoreShape.size()) + "-D ones");
  for (const MaskTerm &term : chain.masks) {
    auto type = dyn_cast<RankedTensorType>(term.value.getType());
    if (!type || !isa<FloatType>(type.getElementType()) ||
        type.getElementType().getIntOrFloatBitWidth() > 32)
      return failMatch("the mask is not a tensor of f16, bf16 or f32");
    for (auto [result, expr] : llvm::enumerate(term.map.getResults())) {
      if (isa<AffineConstantExpr>(expr))
        continue;
      auto dim = dyn_cast<AffineDimExpr>(expr);
      if (!dim)
        return failMatch("the mask is read through a non-trivial map");
      if (dim.getPosition() == 1 && type.getDimSize(result) != 1)
        return failMatch("the mask differs between heads; kv.attention's "
                         "mask is per sequence [batch, tokens, keys]");
    }
  }
  return llvm::Error::success();
}

/// Resolves where the cache for one side (keys or values) comes from.
llvm::Error traceCacheUpdate(Value kvHeads, BlockArgument &past,
                             Value &fresh) {
  if (auto concat = kvHeads.getDefiningOp<tensor::ConcatOp>()) {
    if (concat.getDim() != 2 || concat.getInputs().size() != 2)
      return failMatch("the cache update concatenates along a dim other "
                       "than tokens, or more than two pieces");
    auto arg = dyn_cast<BlockArgument>(concat.getInputs()[0]);
    if (!arg || !isa<func::FuncOp>(arg.getOwner()->getParentOp()))
      return failMatch("the past keys/values are not a function argument");
    if (!arg.hasOneUse())
      return failMatch("the past keys/values argument is used elsewhere");
    past = arg;
    fresh = concat.getInputs()[1];
    return llvm::Error::success();
  }
  if (auto insert = kvHeads.getDefiningOp<tensor::InsertSliceOp>()) {
    // The new tokens written at the end of the past buffer: the same as a
    // concatenation with the buffer's leading tokens.
    auto arg = dyn_cast<BlockArgument>(insert.getDest());
    RankedTensorType destType = insert.getDestType();
    RankedTensorType sourceType = insert.getSourceType();
    ArrayRef<int64_t> offsets = insert.getStaticOffsets();
    if (!arg || !isa<func::FuncOp>(arg.getOwner()->getParentOp()) ||
        !arg.hasOneUse())
      return failMatch("the cache update inserts into something other than a "
                       "past keys/values argument used only there");
    if (!insert.hasUnitStride() || sourceType.getRank() != 4 ||
        !destType.hasStaticShape() || !sourceType.hasStaticShape() ||
        llvm::any_of(offsets, ShapedType::isDynamic) ||
        offsets != ArrayRef<int64_t>{0, 0, offsets[2], 0} ||
        sourceType.getDimSize(0) != destType.getDimSize(0) ||
        sourceType.getDimSize(1) != destType.getDimSize(1) ||
        sourceType.getDimSize(3) != destType.getDimSize(3) ||
        offsets[2] + sourceType.getDimSize(2) != destType.getDimSize(2))
      return failMatch("the cache update inserts somewhere other than the "
                       "end of the past keys/values");
    past = arg;
    fresh = insert.getSource();
    return llvm::Error::success();
  }
  past = BlockArgument();
  fresh = kvHeads;
  return llvm::Error::success();
}

/// True when, apart from the function's return, `from` feeds `to` through a
/// chain of single-use single-result ops: everything on the way dies once
/// `to` is replaced.
bool feedsOnlyThrough(Value from, Operation *to) {
  constexpr int kMaxChain = 16;
  for (int step = 0; step < kMaxChain; ++step) {
    Operation *next = nullptr;
    for (Operation *use : from.getUsers()) {
      // A use inside a region (a gather's tensor.extract) counts as a use
      // by the op that owns the region.
      Operation *user = from.getParentBlock()->findAncestorOpInBlock(*use);
      if (!user)
        return false;
      if (isa<func::ReturnOp>(user) && step == 0)
        continue;
      if (next && next != user)
        return false;
      next = user;
    }
    if (!next)
      return false;
    if (next == to)
      return true;
    if (next->getNumResults() != 1)
      return false;
    from = next->getResult(0);
  }
  return false;
}

Matched<AttentionMatch> matchAttention(Contraction pv,
                                       ConstantEvaluator &evaluator) {
  AttentionMatch m;
  m.pv = pv;
  Value probs = pv.lhs;
  if (Value four = uncollapseBatchHeads(probs))
    probs = four;
  Matched<Value> scores = matchSoftmax(probs);
  if (!scores)
    return scores.takeError();
  if (pv.transposedB)
    return failMatch("P·V reads V transposed");
  Matched<ScoreChain> chain = traceScores(*scores, evaluator);
  if (!chain)
    return chain.takeError();
  m.scale = chain->scale;
  auto scoreShape = cast<ShapedType>(scores->getType()).getShape();
  llvm::Expected<bool> causal = classifyMasks(*chain, scoreShape, evaluator);
  if (causal) {
    m.causal = *causal;
  } else {
    // Not a compile-time causal (or empty) mask: pass the masks at run time
    // as kv.attention's mask operand, when they fit it.
    std::string why = llvm::toString(causal.takeError());
    if (llvm::Error err = checkRuntimeMasks(*chain, scoreShape))
      return failMatch(why + "; as a run-time mask: " +
                       llvm::toString(std::move(err)));
    m.masks = chain->masks;
    m.causal = false;
  }

  Contraction qk = chain->qk;
  Matched<HeadTensor> key = qk.transposedB ? traceHeads(qk.rhs, "the key")
                                           : traceTransposedKey(qk.rhs);
  if (!key)
    return key.takeError();
  m.key = *key;
  m.query = uncollapseBatchHeads(qk.lhs);
  if (!m.query)
    return failMatch("the query is not a [batch*heads, tokens, dim] collapse "
                     "of a 4-D tensor");
  Matched<HeadTensor> value = traceHeads(pv.rhs, "the value");
  if (!value)
    return value.takeError();
  m.value = *value;

  // Shapes: Q [B, Hq, Tq, D], K/V [B, Hkv, Tk, D] with Hq = g * Hkv.
  auto qType = cast<RankedTensorType>(m.query.getType());
  auto kType = cast<RankedTensorType>(m.key.kvHeads.getType());
  auto vType = cast<RankedTensorType>(m.value.kvHeads.getType());
  if (!qType.hasStaticShape() || !kType.hasStaticShape() || kType != vType)
    return failMatch("query, key and value shapes are dynamic or keys and "
                     "values differ");
  if (m.key.tiled != m.value.tiled)
    return failMatch("keys and values repeat their heads differently");
  if (m.key.group != m.value.group ||
      kType.getDimSize(1) * m.key.group != qType.getDimSize(1) ||
      kType.getDimSize(0) != qType.getDimSize(0) ||
      kType.getDimSize(3) != qType.getDimSize(3) ||
      scoreShape.back() != kType.getDimSize(2) ||
      qType.getDimSize(2) > kType.getDimSize(2))
    return failMatch("query, key and value shapes do not line up as "
                     "attention with GQA");
  Type element = qType.getElementType();
  if (!element.isF16() && !element.isBF16() && !element.isF32())
    return failMatch("the element type is not f16, bf16 or f32");
  auto resultType = cast<RankedTensorType>(pv.result.getType());
  int64_t b = qType.getDimSize(0), hq = qType.getDimSize(1),
          tq = qType.getDimSize(2), d = qType.getDimSize(3);
  bool resultShapeOk =
      resultType.getShape() == ArrayRef<int64_t>{b, hq, tq, d} ||
      resultType.getShape() == ArrayRef<int64_t>{b * hq, tq, d} ||
      (b * hq == 1 && resultType.getShape() == ArrayRef<int64_t>{tq, d});
  if (resultType.getElementType() != element || !resultShapeOk)
    return failMatch("P·V's result is not [batch, heads, tokens, dim] in the "
                     "query's element type");
  if (!std::isfinite(m.scale) || m.scale <= 0.0)
    return failMatch("the scale is not positive and finite");

  if (llvm::Error err =
          traceCacheUpdate(m.key.kvHeads, m.pastKey, m.newKey))
    return std::move(err);
  if (llvm::Error err =
          traceCacheUpdate(m.value.kvHeads, m.pastValue, m.newValue))
    return std::move(err);
  if (bool(m.pastKey) != bool(m.pastValue))
    return failMatch("only one of keys and values comes from a past cache");
  m.presentKey = m.key.kvHeads;
  m.presentValue = m.value.kvHeads;
  auto isReturned = [](Value v) {
    return llvm::any_of(v.getUsers(),
                        [](Operation *u) { return isa<func::ReturnOp>(u); });
  };
  if (!isReturned(m.presentKey) || !isReturned(m.presentValue))
    return failMatch("the keys and values are not returned as an updated "
                     "cache, so there is no KV cache to raise");
  if (!feedsOnlyThrough(m.presentKey, qk.op) ||
      !feedsOnlyThrough(m.presentValue, pv.op))
    return failMatch("the keys or values are used elsewhere in ways the "
                     "raised form cannot provide");
  return m;
}

class KVRaiseAttentionPass
    : public kv::impl::KVRaiseAttentionBase<KVRaiseAttentionPass> {
public:
  using KVRaiseAttentionBase::KVRaiseAttentionBase;

  void runOnOperation() override {
    if (pageSize < 1 || pageSize > 1024 || (pageSize & (pageSize - 1)))
      return emitBadOption("page-size must be a power of two in [1, 1024]");
    if (capacity < 1)
      return emitBadOption("capacity must be positive");
    ConstantEvaluator evaluator;
    for (auto func : getOperation().getOps<func::FuncOp>())
      if (!func.isDeclaration() && failed(raiseFunction(func, evaluator)))
        return signalPassFailure();
  }

private:
  void emitBadOption(StringRef message) {
    getOperation().emitError("kv-raise-attention: ") << message;
    signalPassFailure();
  }

  LogicalResult raiseFunction(func::FuncOp func, ConstantEvaluator &evaluator);
};

/// Inserts a [0, 2, 1, 3] transpose of a 4-D tensor.
Value swapHeadsAndTokens(OpBuilder &b, Location loc, Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> shape = {type.getDimSize(0), type.getDimSize(2),
                                type.getDimSize(1), type.getDimSize(3)};
  Value init = tensor::EmptyOp::create(b, loc, shape, type.getElementType());
  return linalg::TransposeOp::create(b, loc, v, init,
                                     ArrayRef<int64_t>{0, 2, 1, 3})
      ->getResult(0);
}

/// Reorders the heads of [B, outer * inner, T, D] `v` from outer-major to
/// inner-major: head o * inner + i moves to i * outer + o.
Value swapHeadGroups(OpBuilder &b, Location loc, Value v, int64_t outer,
                     int64_t inner) {
  auto type = cast<RankedTensorType>(v.getType());
  int64_t batch = type.getDimSize(0), tokens = type.getDimSize(2),
          dim = type.getDimSize(3);
  Type element = type.getElementType();
  SmallVector<ReassociationIndices> split = {{0}, {1, 2}, {3}, {4}};
  Value grouped = tensor::ExpandShapeOp::create(
      b, loc, RankedTensorType::get({batch, outer, inner, tokens, dim}, element),
      v, split);
  Value init = tensor::EmptyOp::create(
      b, loc, ArrayRef<int64_t>{batch, inner, outer, tokens, dim}, element);
  Value swapped = linalg::TransposeOp::create(b, loc, grouped, init,
                                              ArrayRef<int64_t>{0, 2, 1, 3, 4})
                      ->getResult(0);
  return tensor::CollapseShapeOp::create(b, loc, type, swapped, split);
}

/// Replaces the matched attention by kv.append + kv.attention on `cache`,
/// converting between the graph's [B, H, T, D] and kv's [B, T, H, D].
/// kv.attention's mask [B, T, S] f32: the sum of the matched masks, each
/// read at head 0 through its own map and times the scale applied after it.
Value buildMask(OpBuilder &b, Location loc, const AttentionMatch &m) {
  auto qType = cast<RankedTensorType>(m.query.getType());
  auto kType = cast<RankedTensorType>(m.key.kvHeads.getType());
  Type f32 = b.getF32Type();
  auto type = RankedTensorType::get(
      {qType.getDimSize(0), qType.getDimSize(2), kType.getDimSize(2)}, f32);
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(), f32);
  MLIRContext *ctx = b.getContext();
  // Mask point (b, t, j) is score point (b, 0, t, j).
  AffineMap toScores = AffineMap::get(
      3, 0,
      {getAffineDimExpr(0, ctx), getAffineConstantExpr(0, ctx),
       getAffineDimExpr(1, ctx), getAffineDimExpr(2, ctx)},
      ctx);
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  for (const MaskTerm &term : m.masks) {
    inputs.push_back(term.value);
    maps.push_back(term.map.compose(toScores));
  }
  maps.push_back(b.getMultiDimIdentityMap(3));
  SmallVector<utils::IteratorType> iterators(3, utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{type}, inputs, ValueRange{init}, maps, iterators,
      [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        Value sum;
        for (auto [term, arg] : llvm::zip(m.masks, args.drop_back())) {
          Value x = arg;
          if (x.getType() != f32)
            x = arith::ExtFOp::create(nested, nestedLoc, f32, x);
          if (term.scaleAfter != 1.0) {
            Value c = arith::ConstantOp::create(
                nested, nestedLoc,
                nested.getF32FloatAttr(static_cast<float>(term.scaleAfter)));
            x = arith::MulFOp::create(nested, nestedLoc, x, c);
          }
          sum = sum ? arith::AddFOp::create(nested, nestedLoc, sum, x)
                          .getResult()
                    : x;
        }
        linalg::YieldOp::create(nested, nestedLoc, sum);
      });
  return generic.getResult(0);
}

void rewriteAttention(const AttentionMatch &m, Value cache, Value seqIds) {
  OpBuilder b(m.pv.op);
  Location loc = m.pv.op->getLoc();
  Value key = swapHeadsAndTokens(b, loc, m.newKey);
  Value value = swapHeadsAndTokens(b, loc, m.newValue);
  kv::AppendOp::create(b, loc, key, value, cache, seqIds);
  // kv.attention pairs query head h with kv head h / group; tiled copies
  // pair it with h % Hkv, so reorder the query heads around the call.
  bool permute = m.key.tiled &&
                 cast<ShapedType>(m.key.kvHeads.getType()).getDimSize(1) > 1;
  int64_t kvHeads = cast<ShapedType>(m.key.kvHeads.getType()).getDimSize(1);
  Value query = m.query;
  if (permute)
    query = swapHeadGroups(b, loc, query, m.key.group, kvHeads);
  query = swapHeadsAndTokens(b, loc, query);
  Value mask = m.masks.empty() ? Value() : buildMask(b, loc, m);
  auto attention = kv::AttentionOp::create(
      b, loc, query.getType(), query, cache, seqIds, mask,
      b.getF32FloatAttr(static_cast<float>(m.scale)),
      m.causal ? b.getUnitAttr() : UnitAttr());
  Value out = swapHeadsAndTokens(b, loc, attention.getResult());
  if (permute)
    out = swapHeadGroups(b, loc, out, kvHeads, m.key.group);
  Value result = m.pv.result;
  int64_t resultRank = cast<ShapedType>(result.getType()).getRank();
  if (resultRank != 4)
    out = tensor::CollapseShapeOp::create(b, loc, result.getType(), out,
                                          batchHeadsCollapse(resultRank));
  result.replaceAllUsesWith(out);
}

LogicalResult KVRaiseAttentionPass::raiseFunction(func::FuncOp func,
                                                  ConstantEvaluator &evaluator) {
  SmallVector<AttentionMatch> matches;
  func.walk([&](Operation *op) {
    Contraction pv = asContraction(op);
    if (!pv)
      return;
    Matched<AttentionMatch> m = matchAttention(pv, evaluator);
    if (m) {
      matches.push_back(std::move(*m));
      return;
    }
    std::string why = llvm::toString(m.takeError());
    // Contractions whose left side is not a softmax are not attention at
    // all: no need to explain why they stay.
    if (remarks && why != "the probabilities are not a softmax")
      op->emitRemark("kv-raise-attention: not raised: ") << why;
  });
  if (matches.empty())
    return success();

  int64_t batch = cast<ShapedType>(matches.front().query.getType()).getDimSize(0);
  for (const AttentionMatch &m : matches)
    if (cast<ShapedType>(m.query.getType()).getDimSize(0) != batch)
      return m.pv.op->emitError("kv-raise-attention: attentions of one "
                                "function have different batch sizes");

  // New arguments: one cache per attention (program order), then the
  // sequence ids of the batch.
  MLIRContext *ctx = func.getContext();
  SmallVector<Value> caches;
  for (const AttentionMatch &m : matches) {
    auto kType = cast<RankedTensorType>(m.presentKey.getType());
    int64_t tokens = kType.getDimSize(2);
    int64_t cap = std::max<int64_t>(capacity,
                                    (tokens + pageSize - 1) / pageSize * pageSize);
    auto cacheType = kv::CacheType::get(
        ctx, kType.getDimSize(1), kType.getDimSize(3), kType.getElementType(),
        cap, kv::PagedEncodingAttr::get(ctx, pageSize));
    unsigned index = func.getNumArguments();
    if (failed(func.insertArgument(index, cacheType, {}, m.pv.op->getLoc())))
      return failure();
    caches.push_back(func.getArgument(index));
  }
  unsigned seqIndex = func.getNumArguments();
  if (failed(func.insertArgument(
          seqIndex, RankedTensorType::get({batch}, IntegerType::get(ctx, 32)),
          {}, func.getLoc())))
    return failure();
  Value seqIds = func.getArgument(seqIndex);
  func.setArgAttr(seqIndex, "kv.seq_ids", UnitAttr::get(ctx));

  // Record, on each cache argument, which original arguments and results it
  // replaces, so callers can map their past/present K/V tensors to it.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  auto resultNumber = [&](Value v) {
    return static_cast<int64_t>(
        llvm::find(ret.getOperands(), v) - ret.getOperands().begin());
  };
  for (auto [m, cache] : llvm::zip_equal(matches, caches)) {
    unsigned argNo = cast<BlockArgument>(cache).getArgNumber();
    if (m.pastKey)
      func.setArgAttr(argNo, "kv.replaced_args",
                      DenseI64ArrayAttr::get(ctx, {m.pastKey.getArgNumber(),
                                                   m.pastValue.getArgNumber()}));
    func.setArgAttr(argNo, "kv.replaced_results",
                    DenseI64ArrayAttr::get(ctx, {resultNumber(m.presentKey),
                                                 resultNumber(m.presentValue)}));
  }

  llvm::BitVector deadArgs(func.getNumArguments());
  llvm::SmallPtrSet<Value, 8> deadResults;
  for (auto [m, cache] : llvm::zip_equal(matches, caches)) {
    rewriteAttention(m, cache, seqIds);
    deadResults.insert(m.presentKey);
    deadResults.insert(m.presentValue);
    if (m.pastKey) {
      deadArgs.set(m.pastKey.getArgNumber());
      deadArgs.set(m.pastValue.getArgNumber());
    }
  }

  // Drop the returned caches: the kv.cache handles now carry them.
  llvm::BitVector deadResultBits(func.getNumResults());
  SmallVector<Value> kept;
  for (auto [i, operand] : llvm::enumerate(ret.getOperands())) {
    if (deadResults.contains(operand))
      deadResultBits.set(i);
    else
      kept.push_back(operand);
  }
  ret->setOperands(kept);
  if (failed(func.eraseResults(deadResultBits)))
    return failure();

  // Everything that only fed the old attention is dead now.
  RewritePatternSet none(ctx);
  (void)applyPatternsGreedily(func, std::move(none));
  for (unsigned i = 0; i < deadArgs.size(); ++i)
    if (deadArgs.test(i) && !func.getArgument(i).use_empty())
      return func.emitError("kv-raise-attention: past cache argument #")
             << i << " is still used after raising";
  return func.eraseArguments(deadArgs);
}

} // namespace
