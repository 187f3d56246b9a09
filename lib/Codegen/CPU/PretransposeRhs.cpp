//===- PretransposeRhs.cpp - [N, K] right-hand sides as [K, N] ------------===//
//
// `quench-cpu-pretranspose-rhs` (codegen stage): contractions whose
// right-hand side is stored [N, K] (reduction dim innermost; quench.linear's
// PyTorch weight layout, attention's Q·Kᵀ) read it as [K, N] instead, so
// that the outer-product micro kernel of quench-cpu-tile-and-vectorize
// streams contiguous rows of B and needs no horizontal sums: constants are
// transposed once at compile time, computed operands get a linalg.transpose
// when M is static and at least 4. See docs/lowering.md ("B stored
// [N, K]").
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/CPU/Passes.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUPRETRANSPOSERHS
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

/// A contraction whose right-hand side is computed, stored [..., N, K]
/// (attention's Q·Kᵀ), gets an explicit transpose to [..., K, N] in front
/// when it has enough rows (M) to amortize it: the copy costs N·K per batch,
/// the horizontal reductions it saves cost about as much per output.
static void transposeActivationRhs(linalg::GenericOp op, OpOperand *rhs,
                                   const linalg::ContractionDimensions &dims,
                                   RewriterBase &rw) {
  if (dims.m.size() != 1)
    return;
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t m = ranges[dims.m.front()];
  if (ShapedType::isDynamic(m) || m < 4)
    return;
  auto type = dyn_cast<RankedTensorType>(rhs->get().getType());
  if (!type)
    return;
  unsigned rank = type.getRank();
  SmallVector<int64_t> perm = llvm::to_vector(llvm::seq<int64_t>(0, rank));
  std::swap(perm[rank - 2], perm[rank - 1]);
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  SmallVector<OpFoldResult> sizes =
      tensor::getMixedSizes(rw, loc, rhs->get());
  std::swap(sizes[rank - 2], sizes[rank - 1]);
  Value init =
      tensor::EmptyOp::create(rw, loc, sizes, type.getElementType());
  Value transposed =
      linalg::TransposeOp::create(rw, loc, rhs->get(), init, perm)
          ->getResult(0);
  AffineMap map = op.getMatchingIndexingMap(rhs);
  SmallVector<AffineExpr> results(map.getResults());
  std::swap(results[rank - 2], results[rank - 1]);
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  maps[rhs->getOperandNumber()] =
      AffineMap::get(map.getNumDims(), 0, results, rw.getContext());
  rw.modifyOpInPlace(op, [&] {
    rhs->set(transposed);
    op.setIndexingMapsAttr(rw.getAffineMapArrayAttr(maps));
  });
}

/// Stores [N, K] right-hand sides of contractions (constants: see below;
/// computed ones: transposeActivationRhs). Constant [N, K] right-hand sides (quench.linear's
/// weight layout, PyTorch's) as [K, N]: the outer-product micro kernel then
/// streams contiguous rows of B and needs no horizontal reductions, which
/// cost as much as the FMAs for the short K of small models' layers. The
/// constant is transposed once, at compile time.
static void pretransposeRhs(func::FuncOp func, RewriterBase &rw) {
  SmallVector<linalg::GenericOp> candidates;
  func.walk([&](linalg::GenericOp op) { candidates.push_back(op); });
  for (linalg::GenericOp op : candidates) {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
        op.getNumDpsInits() != 1 || !linalg::isaContractionOpInterface(op))
      continue;
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (failed(dims) || dims->k.size() != 1 || dims->n.size() != 1)
      continue;
    OpOperand *rhs = op.getDpsInputOperand(1);
    AffineMap map = op.getMatchingIndexingMap(rhs);
    AffineExpr k = rw.getAffineDimExpr(dims->k.front());
    AffineExpr n = rw.getAffineDimExpr(dims->n.front());
    unsigned rank = map.getNumResults();
    if (rank < 2 || map.getResult(rank - 2) != n ||
        map.getResult(rank - 1) != k || !map.isProjectedPermutation())
      continue;
    if (!rhs->get().getDefiningOp<arith::ConstantOp>() || rank != 2) {
      transposeActivationRhs(op, rhs, *dims, rw);
      continue;
    }
    auto cst = rhs->get().getDefiningOp<arith::ConstantOp>();
    auto type = dyn_cast<RankedTensorType>(rhs->get().getType());
    auto value = dyn_cast<ElementsAttr>(cst.getValue());
    if (!type || !type.hasStaticShape() || !value)
      continue;
    ElementsAttr transposedAttr =
        quench::transpose2DConstant(value, "quench_weight_t");
    if (!transposedAttr)
      continue;
    rw.setInsertionPoint(cst);
    Value transposed =
        arith::ConstantOp::create(rw, cst.getLoc(), cast<TypedAttr>(transposedAttr));
    SmallVector<AffineMap> maps = op.getIndexingMapsArray();
    maps[rhs->getOperandNumber()] =
        AffineMap::get(map.getNumDims(), 0, {k, n}, rw.getContext());
    rw.modifyOpInPlace(op, [&] {
      rhs->set(transposed);
      op.setIndexingMapsAttr(rw.getAffineMapArrayAttr(maps));
    });
    if (cst->use_empty())
      rw.eraseOp(cst);
  }
}

namespace {
struct QuenchCPUPretransposeRhsPass
    : public quench::impl::QuenchCPUPretransposeRhsBase<
          QuenchCPUPretransposeRhsPass> {
  void runOnOperation() override {
    IRRewriter rw(&getContext());
    pretransposeRhs(getOperation(), rw);
  }
};
} // namespace
