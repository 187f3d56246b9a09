//===- PackRhsPanels.cpp - constant f32 right-hand sides in panels --------===//
//
// `quench-cpu-pack-rhs-panels` (codegen stage, after
// quench-cpu-pretranspose-rhs): a float contraction whose right-hand side
// is a constant [K, N] (or [N, K]) matrix and whose M can be small (decode
// steps) reads it in panels [N / P, K, P] of P = 8 SIMD vectors of
// columns, packed at compile time, so that a task of the matrix-vector
// kernel streams one contiguous block of memory, its P columns' sums in
// registers over the whole K. In [K, N] a task's columns are a strip of
// short runs one row of B apart, which the hardware prefetchers follow
// badly (the 125M LLaMA shape's fp32 decode streamed its weights at about
// half the read bandwidth). See docs/lowering.md ("B in panels").
//
// The contraction gets one more loop: N splits into (panel, column in
// panel), its result is [..., N / P, P] and a tensor.collapse_shape gives
// the [..., N] its users see; the collapse is then moved below the
// elementwise consumers (their loops expanded the same way), so that an
// epilogue still reads the product with the identity map and fuses into
// its tiles.
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include "quench/Codegen/CPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cstring>

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUPACKRHSPANELS
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

/// Marks the collapse_shape ops that give a packed contraction's result
/// back its [..., N] shape, until they are moved below its consumers.
static constexpr llvm::StringLiteral kPanelCollapseAttr =
    "__quench_panel_collapse";

/// The bytes of `data`, a row-major [K, N] (`kMajor`) or [N, K] matrix of
/// `itemBytes`-byte elements, as panels [N / p, K, p].
static std::vector<char> packPanelBytes(ArrayRef<char> data, int64_t k,
                                        int64_t n, int64_t p, int64_t itemBytes,
                                        bool kMajor) {
  std::vector<char> out(data.size());
  char *dst = out.data();
  for (int64_t panel = 0; panel < n / p; ++panel)
    for (int64_t kk = 0; kk < k; ++kk) {
      if (kMajor) {
        std::memcpy(dst, data.data() + (kk * n + panel * p) * itemBytes,
                    p * itemBytes);
        dst += p * itemBytes;
        continue;
      }
      for (int64_t c = 0; c < p; ++c, dst += itemBytes)
        std::memcpy(dst, data.data() + ((panel * p + c) * k + kk) * itemBytes,
                    itemBytes);
    }
  return out;
}

/// `map` with loop dim `n` split into (n, n + 1): dims after n shift by one.
static AffineExpr shiftDim(AffineExpr e, unsigned n, MLIRContext *ctx) {
  unsigned d = cast<AffineDimExpr>(e).getPosition();
  return getAffineDimExpr(d > n ? d + 1 : d, ctx);
}

/// Rewrites `op` to read its constant right-hand side in panels of `p`
/// columns (see the file comment); returns false when it does not apply.
static bool packContraction(linalg::GenericOp op, int64_t p, RewriterBase &rw) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
      !linalg::isaContractionOpInterface(op) ||
      op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()) ||
      // computed inside the int8 kernel's tiles (Int8Matmul.cpp)
      op->hasAttr(quench::QuenchDialect::getOutlierProductAttrName()))
    return false;
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(op);
  if (failed(dims) || dims->k.size() != 1 || dims->n.size() != 1 ||
      dims->m.empty())
    return false;
  // f32 throughout: what the panel width is counted in.
  for (Value v : op->getOperands())
    if (!getElementTypeOrSelf(v.getType()).isF32())
      return false;
  // Only where the matrix-vector kernel can run: M known only at run time
  // (row-by-row version) or below the register tile's rows. Blocked
  // products of a static M keep [K, N].
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t mRange = ranges[dims->m.back()];
  if (!ShapedType::isDynamic(mRange) && mRange >= quench::cpu::kSmallRows)
    return false;

  OpOperand *rhs = op.getDpsInputOperand(1);
  auto cst = rhs->get().getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(rhs->get().getType());
  if (!cst || !type || type.getRank() != 2 || !type.hasStaticShape())
    return false;
  auto value = dyn_cast<ElementsAttr>(cst.getValue());
  if (!value)
    return false;
  unsigned kDim = dims->k.front(), nDim = dims->n.front();
  MLIRContext *ctx = op.getContext();
  AffineExpr k = getAffineDimExpr(kDim, ctx), n = getAffineDimExpr(nDim, ctx);
  AffineMap rhsMap = op.getMatchingIndexingMap(rhs);
  bool kMajor = rhsMap.getResult(0) == k && rhsMap.getResult(1) == n;
  if (!kMajor && !(rhsMap.getResult(0) == n && rhsMap.getResult(1) == k))
    return false;
  int64_t kSize = type.getDimSize(kMajor ? 0 : 1);
  int64_t nSize = type.getDimSize(kMajor ? 1 : 0);
  if (nSize % p != 0 || nSize / p < 2)
    return false;
  // The result's last dim is N (the one split); A reads no N.
  OpOperand *init = op.getDpsInitOperand(0);
  AffineMap outMap = op.getMatchingIndexingMap(init);
  if (!outMap.isProjectedPermutation() || outMap.getNumResults() == 0 ||
      outMap.getResults().back() != n)
    return false;
  AffineMap lhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(0));
  if (!lhsMap.isProjectedPermutation())
    return false;

  auto packedType =
      RankedTensorType::get({nSize / p, kSize, p}, type.getElementType());
  ElementsAttr packedAttr;
  if (auto dense = dyn_cast<DenseElementsAttr>(value); dense && dense.isSplat()) {
    packedAttr = dense.reshape(packedType);
  } else {
    std::optional<ArrayRef<char>> raw = quench::getRawConstantData(value);
    if (!raw)
      return false;
    packedAttr = quench::createConstantAttr(
        packedType,
        packPanelBytes(*raw, kSize, nSize, p,
                       quench::getStorageBytesPerElement(type.getElementType()),
                       kMajor),
        "quench_weight_panels");
    if (!packedAttr)
      return false;
    // Read once: the source's pages need not stay resident.
    quench::releaseConstantPages(value);
  }

  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  Value packed =
      arith::ConstantOp::create(rw, cst.getLoc(), cast<TypedAttr>(packedAttr));

  // Loops: N (dim nDim) becomes (panel = nDim, column = nDim + 1).
  unsigned numLoops = op.getNumLoops() + 1;
  AffineExpr panel = getAffineDimExpr(nDim, ctx);
  AffineExpr column = getAffineDimExpr(nDim + 1, ctx);
  AffineExpr kNew = shiftDim(k, nDim, ctx);
  SmallVector<AffineExpr> lhsExprs;
  for (AffineExpr e : lhsMap.getResults())
    lhsExprs.push_back(shiftDim(e, nDim, ctx));
  SmallVector<AffineExpr> outExprs;
  for (AffineExpr e : outMap.getResults().drop_back())
    outExprs.push_back(shiftDim(e, nDim, ctx));
  outExprs.append({panel, column});
  SmallVector<AffineMap> maps = {
      AffineMap::get(numLoops, 0, lhsExprs, ctx),
      AffineMap::get(numLoops, 0, {panel, kNew, column}, ctx),
      AffineMap::get(numLoops, 0, outExprs, ctx)};
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  iterators.insert(iterators.begin() + nDim + 1, utils::IteratorType::parallel);

  // The accumulator [..., N / P, P]: a fresh fill where it is one (the
  // tile pass fuses fills into the tasks), else a view of the old one.
  auto initType = cast<RankedTensorType>(init->get().getType());
  SmallVector<int64_t> expandedShape(initType.getShape().drop_back());
  expandedShape.append({nSize / p, p});
  auto expandedType =
      RankedTensorType::get(expandedShape, initType.getElementType());
  SmallVector<ReassociationIndices> reassociation;
  for (int64_t d = 0; d + 1 < initType.getRank(); ++d)
    reassociation.push_back({d});
  reassociation.push_back({initType.getRank() - 1, initType.getRank()});
  SmallVector<OpFoldResult> expandedSizes =
      tensor::getMixedSizes(rw, loc, init->get());
  expandedSizes.pop_back();
  expandedSizes.append({rw.getIndexAttr(nSize / p), rw.getIndexAttr(p)});
  Value newInit;
  auto fill = init->get().getDefiningOp<linalg::FillOp>();
  if (fill && fill.getOutputs()[0].getDefiningOp<tensor::EmptyOp>()) {
    Value empty = tensor::EmptyOp::create(rw, loc, expandedSizes,
                                          initType.getElementType());
    newInit = linalg::FillOp::create(rw, loc, fill.getInputs()[0], empty)
                  .getResult(0);
  } else {
    newInit = tensor::ExpandShapeOp::create(rw, loc, expandedType, init->get(),
                                            reassociation, expandedSizes);
  }

  auto packedOp = linalg::GenericOp::create(
      rw, loc, TypeRange{expandedType},
      ValueRange{op.getDpsInputOperand(0)->get(), packed}, ValueRange{newInit},
      maps, iterators);
  rw.inlineRegionBefore(op.getRegion(), packedOp.getRegion(),
                        packedOp.getRegion().begin());
  auto collapse = tensor::CollapseShapeOp::create(
      rw, loc, initType, packedOp.getResult(0), reassociation);
  collapse->setAttr(kPanelCollapseAttr, rw.getUnitAttr());
  rw.replaceOp(op, collapse.getResult());
  if (cst->use_empty())
    rw.eraseOp(cst);
  if (fill && fill->use_empty()) {
    Operation *empty = fill.getOutputs()[0].getDefiningOp();
    rw.eraseOp(fill);
    if (empty->use_empty())
      rw.eraseOp(empty);
  }
  return true;
}

namespace {
struct QuenchCPUPackRhsPanelsPass
    : public quench::impl::QuenchCPUPackRhsPanelsBase<
          QuenchCPUPackRhsPanelsPass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (vectorBits < 128)
      return;
    // P: the matrix-vector kernel's columns per step (its accumulators).
    int64_t p = quench::cpu::ContractionTiles().gemvNrVectors * (vectorBits / 32);
    IRRewriter rw(&getContext());
    SmallVector<linalg::GenericOp> candidates;
    func.walk([&](linalg::GenericOp op) { candidates.push_back(op); });
    bool changed = false;
    for (linalg::GenericOp op : candidates)
      changed |= packContraction(op, p, rw);
    if (!changed)
      return;

    // Move the collapses below elementwise consumers (their loops expanded
    // alike), so that epilogues read the product with the identity map.
    RewritePatternSet patterns(&getContext());
    linalg::populateFoldReshapeOpsByExpansionPatterns(
        patterns, [](OpOperand *fused) {
          auto collapse =
              fused->get().getDefiningOp<tensor::CollapseShapeOp>();
          auto consumer = dyn_cast<linalg::GenericOp>(fused->getOwner());
          if (!collapse || !collapse->hasAttr(kPanelCollapseAttr) ||
              !consumer || !consumer.hasPureTensorSemantics())
            return false;
          if (consumer.getNumParallelLoops() != consumer.getNumLoops() ||
              !consumer.getMatchingIndexingMap(fused).isIdentity())
            return false;
          // Gathers stay as they are.
          return !consumer
                      ->walk([](tensor::ExtractOp) {
                        return WalkResult::interrupt();
                      })
                      .wasInterrupted();
        });
    GreedyRewriteConfig config;
    config.enableFolding(false);
    config.setRegionSimplificationLevel(GreedySimplifyRegionLevel::Disabled);
    if (failed(applyPatternsGreedily(func, std::move(patterns), config)))
      return signalPassFailure();
    func.walk([&](tensor::CollapseShapeOp op) {
      op->removeAttr(kPanelCollapseAttr);
    });
  }
};
} // namespace
