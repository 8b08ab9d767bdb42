//===- ConstantEvaluator.h - Fold small tensors computed from constants -*- C++ -*-===//
//
// Attention masks reach kvcc spelled in many ways: index/cmpi/select
// generics, constant tensors, slices of a larger constant mask. Rather than
// match each spelling, kv-raise-attention evaluates the mask (everything it
// depends on must be constant) and then checks what it computes.
//
//===----------------------------------------------------------------------===//

#ifndef KVCC_DIALECT_KV_TRANSFORMS_CONSTANTEVALUATOR_H
#define KVCC_DIALECT_KV_TRANSFORMS_CONSTANTEVALUATOR_H

#include "mlir/IR/Value.h"
#include "llvm/ADT/DenseMap.h"

#include <memory>
#include <string>
#include <vector>

namespace kvcc::kv {

/// A dense row-major tensor of values held as doubles (integers up to 2^53
/// and i1 are exact).
struct ConstTensor {
  llvm::SmallVector<int64_t, 4> shape;
  std::vector<double> data;

  int64_t numElements() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  /// Element at a multi-index of this tensor's rank.
  double at(llvm::ArrayRef<int64_t> index) const;
};

/// Evaluates tensors (and scalars) that depend only on constants: arith
/// constants, tensor.empty/linalg.fill, reshapes, static slices, transposes,
/// broadcasts and all-parallel linalg.generic ops whose bodies use arith,
/// linalg.index and linalg.yield. Results are memoized, so masks shared by
/// many layers are evaluated once.
class ConstantEvaluator {
public:
  /// Evaluations stop beyond this many elements in one tensor.
  explicit ConstantEvaluator(int64_t maxElements = int64_t(1) << 24)
      : maxElements(maxElements) {}

  /// The value of `value`, or null with `whyNot()` explaining the failure.
  std::shared_ptr<const ConstTensor> evaluate(mlir::Value value);

  /// The value of a scalar (or any-shaped splat) that depends only on
  /// constants.
  std::optional<double> evaluateScalar(mlir::Value value);

  /// Why the last evaluation failed.
  const std::string &whyNot() const { return reason; }

private:
  std::shared_ptr<const ConstTensor> evaluateUncached(mlir::Value value);
  std::shared_ptr<const ConstTensor> fail(const llvm::Twine &why);

  int64_t maxElements;
  llvm::DenseMap<mlir::Value, std::shared_ptr<const ConstTensor>> cache;
  std::string reason;
};

} // namespace kvcc::kv

#endif // KVCC_DIALECT_KV_TRANSFORMS_CONSTANTEVALUATOR_H
