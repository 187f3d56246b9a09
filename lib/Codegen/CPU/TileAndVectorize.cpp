//===- TileAndVectorize.cpp - tiling and vectorization for the CPU --------===//
//
// `quench-cpu-tile-and-vectorize`, the core of the `codegen` stage of
// quench-cpu-pipeline, on tensors: every linalg op is tiled (outermost
// parallel tiles as scf.forall for the thread pool, then scf.for down to a
// register tile), partial tiles are peeled off so that the main loops see
// static tiles, and each tile is vectorized (unmasked when static, masked
// otherwise; ops the vectorizer rejects stay linalg and become loops in
// to-llvm). Contractions get a register-blocked micro kernel
// (vector.contract lowered to outer products, i.e. broadcast + FMA);
// elementwise ops and reductions get a few SIMD registers' worth of
// elements along their innermost dims.
//
// This file is the pass; the tile plans are in TilePlan.cpp, the tiling
// driver in Tiling.cpp and the vectorization of the tiles in
// Vectorization.cpp (declarations shared in TileAndVectorize.h). The
// smaller passes of the stage have files of their own:
// lib/Codegen/Common/FuseElementwise.cpp, PretransposeRhs.cpp,
// lib/Codegen/Common/UnshareInits.cpp (which this pass calls first),
// SmallRows.cpp (row-by-row versions of dynamic-M contractions),
// lib/Codegen/Common/ForwardSubvectors.cpp and, for the `to-llvm` stage,
// VectorLowering.cpp. See docs/lowering.md.
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include "quench/Codegen/CPU/Passes.h"
#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUTILEANDVECTORIZE
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench::cpu;

namespace {

struct QuenchCPUTileAndVectorizePass
    : public quench::impl::QuenchCPUTileAndVectorizeBase<
          QuenchCPUTileAndVectorizePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    IRRewriter rw(&getContext());
    // One fill per consumer (CSE merges identical fills), so that each can
    // move into its consumer's tasks; fills are tiled last, once their
    // consumers have taken them in.
    quench::unshareInitTensors(func, rw);
    nameContractions(func, rw);
    TileAndVectorize driver(rw, vectorBits);
    versionSmallRows(func, rw, driver);
    SmallVector<linalg::LinalgOp> ops, fillOps;
    func.walk([&](linalg::LinalgOp op) {
      (isa<linalg::FillOp>(op) ? fillOps : ops).push_back(op);
    });
    ops.append(fillOps.begin(), fillOps.end());
    // Contractions with an elementwise epilogue are tiled with it, when
    // their consumer's turn comes (after theirs: program order).
    llvm::DenseMap<Operation *, linalg::LinalgOp> epilogueOf;
    llvm::SmallPtrSet<Operation *, 8> fused;
    for (linalg::LinalgOp op : ops)
      if (linalg::LinalgOp contraction = driver.fusableContraction(op)) {
        epilogueOf[op] = contraction;
        fused.insert(contraction);
      }
    for (linalg::LinalgOp op : ops) {
      // Tiles built by the int8 kernel (its fused epilogue rows) are only
      // vectorized.
      if (fused.contains(op) || op->hasAttr(kVectorSizesAttr))
        continue;
      if (isa<linalg::FillOp>(op) && op->use_empty()) {
        rw.eraseOp(op);
        continue;
      }
      if (auto it = epilogueOf.find(op); it != epilogueOf.end()) {
        driver.runEpilogue(cast<linalg::GenericOp>(op.getOperation()),
                           it->second);
        continue;
      }
      driver.run(op);
    }

    // Fold the peeled loops' bounds so that the main tiles get static
    // shapes, then vectorize the marked tiles.
    MLIRContext *ctx = &getContext();
    {
      RewritePatternSet patterns(ctx);
      for (Dialect *dialect : ctx->getLoadedDialects())
        dialect->getCanonicalizationPatterns(patterns);
      for (RegisteredOperationName op : ctx->getRegisteredOperations())
        op.getCanonicalizationPatterns(patterns, ctx);
      if (failed(applyPatternsGreedily(func, std::move(patterns))))
        return signalPassFailure();
    }
    SmallVector<linalg::LinalgOp> tiles;
    func.walk([&](linalg::LinalgOp op) {
      if (op->hasAttr(kVectorSizesAttr))
        tiles.push_back(op);
    });
    for (linalg::LinalgOp op : tiles)
      vectorizeTile(rw, op);
    unmaskContractions(func, rw);
    unrollEpilogueRows(func);

    // Clean up. (The tensor-subset-into-transfer folds are not used: they
    // break masked transfers; bufferization turns the slices into views.)
    // Masked transfers take their mask as an operand from here on: the
    // buffer deallocation pass puts ops into vector.mask regions that hold
    // memref accesses, which makes them invalid.
    RewritePatternSet patterns(&getContext());
    vector::populateVectorMaskLoweringPatternsForSideEffectingOps(patterns);
    scf::ForOp::getCanonicalizationPatterns(patterns, &getContext());
    vector::TransferReadOp::getCanonicalizationPatterns(patterns, &getContext());
    vector::TransferWriteOp::getCanonicalizationPatterns(patterns, &getContext());
    if (failed(applyPatternsGreedily(func, std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
