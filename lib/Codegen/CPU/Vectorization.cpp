//===- Vectorization.cpp - vectorizing the CPU tiles ----------------------===//
//
// The vectorization half of quench-cpu-tile-and-vectorize: tiles are marked
// with their vector sizes while tiling, and vectorized with
// linalg::vectorize once the peeled loops have been canonicalized (static
// tiles unmasked, dynamic ones masked to their sizes; ops the vectorizer
// rejects stay linalg and become loops in to-llvm). Also the naming of
// generic contractions as linalg.contract (vectorized as vector.contract,
// lowered to outer products) and the unrolling of fused epilogue rows.
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace quench::cpu;

/// Marks every linalg op nested in `roots` (the tiles) for vectorization
/// with `vectorSizes` (the tile sizes: upper bounds of the extents that are
/// still dynamic). Vectorization itself waits until the peeled loops have
/// been canonicalized, when the main tiles' shapes have become static.
void TileAndVectorize::vectorizeAll(ArrayRef<Operation *> roots,
                                    ArrayRef<int64_t> vectorSizes,
                                    bool contraction) {
  for (Operation *root : roots)
    root->walk([&](linalg::LinalgOp op) {
      op->setAttr(kVectorSizesAttr, rw.getDenseI64ArrayAttr(vectorSizes));
      if (contraction)
        op->setAttr(kContractionAttr, rw.getUnitAttr());
    });
}

/// Marks `op` for vectorization with `sizes` (see vectorizeAll).
void quench::cpu::markTile(RewriterBase &rw, Operation *op,
                           ArrayRef<int64_t> sizes, bool contraction) {
  op->setAttr(kVectorSizesAttr, rw.getDenseI64ArrayAttr(sizes));
  if (contraction)
    op->setAttr(kContractionAttr, rw.getUnitAttr());
}

/// Vectorizes one marked tile: unmasked when its shape is static, else
/// masked to its vector sizes. Ops that cannot be vectorized are left alone
/// (they become loops).
void quench::cpu::vectorizeTile(RewriterBase &rw, linalg::LinalgOp op) {
  auto vectorSizes = op->getAttrOfType<DenseI64ArrayAttr>(kVectorSizesAttr);
  bool contraction = op->hasAttr(kContractionAttr);
  op->removeAttr(kVectorSizesAttr);
  op->removeAttr(kContractionAttr);
  if (!vectorSizes)
    return;
  // Gathers (tensor.extract in the body) would become vector.gather:
  // scalar loops are as good on AVX2 and always lower.
  bool hasExtract = false;
  op->walk([&](tensor::ExtractOp) { hasExtract = true; });
  if (hasExtract)
    return;
  SmallVector<int64_t> sizes;
  if (op.hasDynamicShape()) {
    // Integer divisions stay loops: masked-off lanes read poison, and a
    // zero divisor traps.
    bool divides = false;
    op->walk([&](Operation *inner) {
      divides |= isa<arith::DivSIOp, arith::DivUIOp, arith::RemSIOp,
                     arith::RemUIOp, arith::CeilDivSIOp, arith::CeilDivUIOp,
                     arith::FloorDivSIOp>(inner);
    });
    if (divides)
      return;
    SmallVector<int64_t> ranges = op.getStaticLoopRanges();
    if (static_cast<int64_t>(ranges.size()) != vectorSizes.size())
      return;
    for (auto [r, v] : llvm::zip(ranges, vectorSizes.asArrayRef())) {
      if (ShapedType::isDynamic(r) && v <= 0)
        return;
      sizes.push_back(ShapedType::isDynamic(r) ? v : r);
    }
  }
  rw.setInsertionPoint(op);
  // One flag per vector size: an empty list makes masks whose type differs
  // from the one the masked ops expect (same printed form).
  SmallVector<bool> scalable(sizes.size(), false);
  if (failed(linalg::vectorizeOpPrecondition(op, sizes, scalable)))
    return;
  FailureOr<linalg::VectorizationResult> res = linalg::vectorize(
      rw, op, sizes, scalable, /*vectorizeNDExtract=*/false,
      /*flatten1DDepthwiseConv=*/false,
      /*assumeDynamicDimsMatchVecSizes=*/false,
      /*createNamedContraction=*/contraction);
  if (failed(res))
    return;
  if (res->replacements.empty())
    rw.eraseOp(op);
  else
    rw.replaceOp(op, res->replacements);
}

/// True when `body` is exactly `out + a * b` on the float type `et` (all
/// operands of type `et`).
static bool isFloatMulAdd(Block &body, Type et) {
  if (!isa<FloatType>(et) ||
      llvm::any_of(body.getArgumentTypes(), [&](Type t) { return t != et; }))
    return false;
  return body.getOperations().size() == 3 &&
         isa<arith::MulFOp>(body.front()) &&
         isa<arith::AddFOp>(*std::next(body.begin()));
}

/// Rewrites generic contractions whose body is exactly `out + a * b` on one
/// element type (quench.linear's and quench.matmul's lowering of any rank),
/// or `out + extsi(a) * extsi(b)` on integers (quench.qlinear's), as
/// linalg.contract with the same indexing maps: the vectorizer turns
/// named contractions into vector.contract, which lowers to outer products
/// (broadcast + FMA per row); a generic would come out as transposes and
/// horizontal sums (mul + multi_reduction).
void quench::cpu::nameContractions(func::FuncOp func, RewriterBase &rw) {
  SmallVector<linalg::GenericOp> generics;
  func.walk([&](linalg::GenericOp op) { generics.push_back(op); });
  for (linalg::GenericOp op : generics) {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
        !linalg::isaContractionOpInterface(op) ||
        op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
      continue;
    Type et = getElementTypeOrSelf(op->getResult(0).getType());
    Block &body = op.getRegion().front();
    if (!isFloatMulAdd(body, et) && !quench::isWideningIntMulAdd(body, et))
      continue;
    rw.setInsertionPoint(op);
    auto named = linalg::ContractOp::create(
        rw, op.getLoc(), op->getResultTypes(), op.getDpsInputs(),
        op.getDpsInits(), op.getIndexingMaps());
    rw.replaceOp(op, named->getResults());
  }
}

/// Unrolls the loops over the rows of fused epilogues (marked by
/// runEpilogue) where their trip count is a constant (full register tiles;
/// partial ones keep the loop).
void quench::cpu::unrollEpilogueRows(func::FuncOp func) {
  SmallVector<scf::ForOp> loops;
  func.walk([&](scf::ForOp loop) {
    if (loop->hasAttr(kUnrollAttr))
      loops.push_back(loop);
  });
  for (scf::ForOp loop : loops) {
    loop->removeAttr(kUnrollAttr);
    (void)loopUnrollFull(loop);
  }
}

/// The transfer_read that `v` comes from (masked or not), through element
/// type extensions (the widening of int8 contractions).
static vector::TransferReadOp readOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto read = dyn_cast<vector::TransferReadOp>(def))
      return read;
    if (auto mask = dyn_cast<vector::MaskOp>(def))
      return dyn_cast_or_null<vector::TransferReadOp>(mask.getMaskableOp());
    if (!isa<arith::ExtFOp, arith::ExtSIOp, arith::ExtUIOp>(def))
      return {};
    v = def->getOperand(0);
  }
  return {};
}

/// Masked contractions (the partial tiles of dynamic shapes) lower to one
/// select per outer product. Where both factors are read from memory, the
/// reads' masked-off lanes are made zeros instead of poison: the lanes
/// outside the mask then add zero to the reduction and only produce
/// accumulator lanes that the masked write drops, so the contraction
/// itself needs no mask.
void quench::cpu::unmaskContractions(func::FuncOp func, RewriterBase &rw) {
  SmallVector<vector::MaskOp> masks;
  func.walk([&](vector::MaskOp mask) {
    if (isa_and_nonnull<vector::ContractionOp>(mask.getMaskableOp()))
      masks.push_back(mask);
  });
  for (vector::MaskOp mask : masks) {
    auto contract = cast<vector::ContractionOp>(mask.getMaskableOp());
    vector::TransferReadOp lhs = readOf(contract.getLhs());
    vector::TransferReadOp rhs = readOf(contract.getRhs());
    if (!lhs || !rhs || mask.hasPassthru())
      continue;
    for (vector::TransferReadOp read : {lhs, rhs}) {
      Type et = read.getPadding().getType();
      rw.setInsertionPoint(read);
      Value zero = arith::ConstantOp::create(rw, read.getLoc(),
                                             rw.getZeroAttr(et));
      rw.modifyOpInPlace(read,
                         [&] { read.getPaddingMutable().assign(zero); });
    }
    rw.setInsertionPoint(mask);
    Operation *bare = rw.clone(*contract);
    rw.replaceOp(mask, bare->getResults());
  }
}
