//===- Tiling.cpp - tiling driver of the CPU tile pass --------------------===//
//
// The tiling half of quench-cpu-tile-and-vectorize, on tensors: every
// linalg op is tiled following its plan (TilePlan.cpp) — outermost parallel
// tiles as scf.forall for the thread pool, then scf.for down to a register
// tile — partial tiles are peeled off so that the main loops see static
// tiles, and the tiles are marked for vectorization (Vectorization.cpp).
// Contractions with an elementwise consumer are tiled together with it
// (epilogue fusion); elementwise ops and reductions get a few SIMD
// registers' worth of elements along their innermost dims. See
// docs/lowering.md ("Code generation", "Epilogue fusion").
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Interfaces/TilingInterface.h"

#include <algorithm>

using namespace mlir;
using namespace quench::cpu;

FailureOr<scf::SCFTilingResult>
TileAndVectorize::tile(Operation *op, ArrayRef<int64_t> sizes, bool forall,
                       ArrayRef<int64_t> interchange) {
  auto tilingOp = dyn_cast<TilingInterface>(op);
  if (!tilingOp || llvm::all_of(sizes, [](int64_t s) { return s == 0; }))
    return failure();
  scf::SCFTilingOptions options;
  options.setTileSizes(getAsIndexOpFoldResult(rw.getContext(), sizes));
  options.setLoopType(forall ? scf::SCFTilingOptions::LoopType::ForallOp
                             : scf::SCFTilingOptions::LoopType::ForOp);
  if (!interchange.empty())
    options.setInterchange(interchange);
  rw.setInsertionPoint(op);
  FailureOr<scf::SCFTilingResult> res = scf::tileUsingSCF(rw, tilingOp, options);
  if (failed(res))
    return failure();
  rw.replaceOp(op, res->replacements);
  if (forall)
    fuseFillInits(*res);
  return res;
}

/// Moves the fills that initialize a task's results (zero accumulators,
/// -inf running maxima) into the task: each task fills its own tile, and a
/// fill shared by several consumers no longer has to be copied for each of
/// them at bufferization.
void TileAndVectorize::fuseFillInits(scf::SCFTilingResult &res) {
  if (res.loops.empty())
    return;
  SmallVector<LoopLikeOpInterface> loops(res.loops.begin(), res.loops.end());
  for (Operation *tiled : res.tiledOps) {
    auto dps = dyn_cast<DestinationStyleOpInterface>(tiled);
    if (!dps)
      continue;
    for (OpOperand &init : dps.getDpsInitsMutable()) {
      auto slice = init.get().getDefiningOp<tensor::ExtractSliceOp>();
      if (!slice)
        continue;
      Value src = slice.getSource();
      // Through the loops' shared outputs to the value they start from.
      while (auto arg = dyn_cast<BlockArgument>(src)) {
        auto loop = dyn_cast<LoopLikeOpInterface>(arg.getOwner()->getParentOp());
        if (!loop)
          break;
        OpOperand *tied = loop.getTiedLoopInit(arg);
        if (!tied)
          break;
        src = tied->get();
      }
      if (!src.getDefiningOp<linalg::FillOp>())
        continue;
      rw.setInsertionPoint(slice);
      (void)scf::tileAndFuseProducerOfSlice(rw, slice, loops);
    }
  }
}

SmallVector<Operation *>
TileAndVectorize::peelLoops(ArrayRef<LoopLikeOpInterface> loops) {
  SmallVector<Operation *> roots;
  if (loops.empty())
    return roots;
  roots.push_back(loops.front());
  for (LoopLikeOpInterface loop : loops) {
    auto forOp = dyn_cast<scf::ForOp>(loop.getOperation());
    if (!forOp)
      continue;
    scf::ForOp partial;
    if (succeeded(scf::peelForLoopAndSimplifyBounds(rw, forOp, partial)) &&
        partial)
      roots.push_back(partial);
  }
  return roots;
}

void TileAndVectorize::runContraction(
    linalg::LinalgOp op, const linalg::ContractionDimensions &dims) {
  ContractionPlan plan = planContraction(op, dims);
  Operation *current = op;
  if (FailureOr<scf::SCFTilingResult> res = tile(current, plan.outer, true);
      succeeded(res))
    current = res->tiledOps.back();
  runContractionTask(current, plan);
}

void TileAndVectorize::runContractionTask(Operation *current,
                                          const ContractionPlan &plan) {
  SmallVector<LoopLikeOpInterface> loops;
  if (FailureOr<scf::SCFTilingResult> res = tile(current, plan.kBlock, false);
      succeeded(res)) {
    current = res->tiledOps.back();
    loops.append(res->loops.begin(), res->loops.end());
  }

  if (FailureOr<scf::SCFTilingResult> res =
          tile(current, plan.inner, false, plan.interchange);
      succeeded(res)) {
    current = res->tiledOps.back();
    loops.append(res->loops.begin(), res->loops.end());
  }
  SmallVector<Operation *> roots = peelLoops(loops);
  if (roots.empty())
    roots.push_back(current);
  vectorizeAll(roots, plan.vecSizes, /*contraction=*/!plan.transposedB);
}

/// Epilogue fusion. A contraction whose only user is an elementwise
/// linalg.generic (all loops parallel) that reads the whole result through
/// the identity map (the consumer's loops are the result's dims) is
/// computed inside the consumer's tiles: each register tile of the
/// consumer computes its mr x nr slice of the contraction over the whole
/// K, then applies the epilogue (bias, activation, int32 -> f32 rescale,
/// requantization) to the accumulators in registers and stores only the
/// consumer's result. Where the register tiles cannot take it (see
/// fusesRegisterTiles: matrix x vector products, whose K loop is
/// outermost; B read [N, K]; K dynamic or above kMaxFusedK) the epilogue
/// goes into the contraction's parallel tasks instead. Not fused: several
/// users (the product would be recomputed per user), broadcasting,
/// reducing or permuting reads, gathers in the epilogue, a contraction
/// with a single task.
linalg::LinalgOp
TileAndVectorize::fusableContraction(linalg::LinalgOp consumer) {
  auto generic = dyn_cast<linalg::GenericOp>(consumer.getOperation());
  if (!generic || generic->getNumResults() != 1 || !isTileable(consumer) ||
      consumer.getNumReductionLoops() != 0 ||
      consumer->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
    return {};
  bool hasExtract = false;
  generic->walk([&](tensor::ExtractOp) { hasExtract = true; });
  if (hasExtract)
    return {};
  linalg::LinalgOp found;
  for (OpOperand *in : consumer.getDpsInputOperands()) {
    auto result = dyn_cast<OpResult>(in->get());
    auto producer =
        result ? dyn_cast<linalg::LinalgOp>(result.getOwner()) : nullptr;
    if (!producer || !linalg::isaContractionOpInterface(producer))
      continue;
    // One contraction per epilogue, read once, by nobody else.
    if (found || !result.hasOneUse() || producer->getNumResults() != 1 ||
        !consumer.getMatchingIndexingMap(in).isIdentity())
      return {};
    found = producer;
  }
  if (!found || !isTileable(found) ||
      found->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
    return {};
  FailureOr<linalg::ContractionDimensions> dims =
      linalg::inferContractionDims(found);
  if (failed(dims) || dims->k.empty())
    return {};
  AffineMap outMap = found.getMatchingIndexingMap(found.getDpsInitOperand(0));
  if (!outMap.isProjectedPermutation() ||
      outMap.getNumResults() != consumer.getNumLoops())
    return {};
  ContractionPlan plan = planContraction(found, *dims);
  if (fusesRegisterTiles(found, *dims, plan) ||
      llvm::any_of(outMap.getResults(), [&](AffineExpr e) {
        return plan.outer[cast<AffineDimExpr>(e).getPosition()] != 0;
      }))
    return found;
  return {};
}

void TileAndVectorize::runEpilogue(linalg::GenericOp consumer,
                                   linalg::LinalgOp contraction) {
  linalg::ContractionDimensions dims =
      *linalg::inferContractionDims(contraction);
  ContractionPlan plan = planContraction(contraction, dims);
  bool registerTiles = fusesRegisterTiles(contraction, dims, plan);
  // The fused form has no K blocks: each register tile runs over all of K.
  if (registerTiles)
    plan.kBlock.assign(plan.kBlock.size(), 0);
  AffineMap outMap =
      contraction.getMatchingIndexingMap(contraction.getDpsInitOperand(0));
  unsigned rank = outMap.getNumResults();
  // The consumer's loops are the result's dims: sizes and loop order in
  // its loop space.
  auto toConsumer = [&](ArrayRef<int64_t> sizes) {
    SmallVector<int64_t> r;
    for (unsigned i = 0; i < rank; ++i)
      r.push_back(sizes[outMap.getDimPosition(i)]);
    return r;
  };
  SmallVector<int64_t> interchange;
  for (int64_t d : plan.interchange)
    if (std::optional<unsigned> pos =
            outMap.getResultPosition(rw.getAffineDimExpr(d)))
      interchange.push_back(*pos);
  unsigned operand = 0;
  for (OpOperand *in : consumer.getDpsInputOperands())
    if (in->get().getDefiningOp() == contraction)
      operand = in->getOperandNumber();

  // Moves the slice of the contraction that `tiled` (a tile of the
  // consumer) reads into the innermost of `loops`, with the fill of its
  // accumulators; returns the contraction's tile.
  auto fuseInto = [&](Operation *tiled,
                      MutableArrayRef<LoopLikeOpInterface> loops)
      -> linalg::LinalgOp {
    auto slice =
        tiled->getOperand(operand).getDefiningOp<tensor::ExtractSliceOp>();
    if (!slice)
      return {};
    rw.setInsertionPoint(slice);
    std::optional<scf::SCFFuseProducerOfSliceResult> fused =
        scf::tileAndFuseProducerOfSlice(rw, slice, loops);
    if (!fused)
      return {};
    auto tile = fused->tiledAndFusedProducer.getDefiningOp<linalg::LinalgOp>();
    if (!tile)
      return {};
    auto init = tile.getDpsInitOperand(0)->get();
    if (auto initSlice = init.getDefiningOp<tensor::ExtractSliceOp>();
        initSlice && initSlice.getSource().getDefiningOp<linalg::FillOp>()) {
      rw.setInsertionPoint(initSlice);
      (void)scf::tileAndFuseProducerOfSlice(rw, initSlice, loops);
    }
    return tile;
  };
  auto eraseIfDead = [&](Operation *op) {
    if (op && op->use_empty())
      rw.eraseOp(op);
  };

  // Level 1: the consumer's tasks, each computing its slice of the
  // contraction.
  Operation *current = consumer;
  linalg::LinalgOp contractionTile = contraction;
  if (FailureOr<scf::SCFTilingResult> res =
          tile(current, toConsumer(plan.outer), true);
      succeeded(res)) {
    current = res->tiledOps.back();
    SmallVector<LoopLikeOpInterface> loops(res->loops.begin(),
                                           res->loops.end());
    contractionTile = fuseInto(current, loops);
    if (!contractionTile) {
      // Unfused after all: the contraction on its own, the consumer's
      // task as an elementwise op.
      run(contraction);
      runGeneric(cast<linalg::LinalgOp>(current), /*tasks=*/false);
      return;
    }
    eraseIfDead(contraction);
  }
  if (!registerTiles) {
    // Fused into the tasks only: each task computes its slice of the
    // product as runContraction would, then its epilogue as an
    // elementwise op, while the slice is in cache (and without a second
    // parallel loop).
    runContractionTask(contractionTile, plan);
    runGeneric(cast<linalg::LinalgOp>(current), /*tasks=*/false);
    return;
  }

  // Level 2: the consumer's register tiles, each accumulating its slice of
  // the contraction over K in registers.
  SmallVector<int64_t> inner = toConsumer(plan.inner);
  FailureOr<scf::SCFTilingResult> res =
      tile(current, inner, false, interchange);
  linalg::LinalgOp registerTile;
  if (succeeded(res)) {
    current = res->tiledOps.back();
    SmallVector<LoopLikeOpInterface> loops(res->loops.begin(),
                                           res->loops.end());
    registerTile = fuseInto(current, loops);
  }
  if (!registerTile) {
    runContractionTask(contractionTile, plan);
    vectorizeAll({current}, toConsumer(plan.vecSizes), /*contraction=*/false);
    return;
  }
  Operation *fillTile =
      registerTile.getDpsInitOperand(0)->get().getDefiningOp<linalg::FillOp>();
  Operation *deadTile = contractionTile == contraction
                            ? nullptr
                            : contractionTile.getOperation();
  Operation *deadFill =
      deadTile ? cast<linalg::LinalgOp>(deadTile)
                     .getDpsInitOperand(0)
                     ->get()
                     .getDefiningOp<linalg::FillOp>()
               : nullptr;
  eraseIfDead(deadTile);
  eraseIfDead(deadFill);
  eraseIfDead(contraction);

  // The reduction loop inside the register tile.
  SmallVector<LoopLikeOpInterface> loops(res->loops.begin(), res->loops.end());
  SmallVector<int64_t> kTile(plan.inner.size(), 0);
  kTile[plan.k] = plan.inner[plan.k];
  Operation *kernel = registerTile;
  if (FailureOr<scf::SCFTilingResult> kRes =
          tile(registerTile, kTile, false);
      succeeded(kRes)) {
    kernel = kRes->tiledOps.back();
    loops.append(kRes->loops.begin(), kRes->loops.end());
  }
  // The epilogue one row of the register tile at a time, rows unrolled
  // once vectorized (see unrollEpilogueRows): LLVM then sees each row's
  // chain of operations in order instead of every operation on all rows
  // at once, whose temporaries (a polynomial erf on 12-16 vectors) spill.
  SmallVector<int64_t> epilogueSizes = toConsumer(plan.vecSizes);
  std::optional<unsigned> rowDim;
  if (!dims.m.empty())
    rowDim = outMap.getResultPosition(rw.getAffineDimExpr(dims.m.back()));
  if (rowDim && epilogueSizes[*rowDim] > 1) {
    SmallVector<int64_t> rows(rank, 0);
    rows[*rowDim] = 1;
    if (FailureOr<scf::SCFTilingResult> rowRes = tile(current, rows, false);
        succeeded(rowRes)) {
      current = rowRes->tiledOps.back();
      for (LoopLikeOpInterface loop : rowRes->loops)
        loop->setAttr(kUnrollAttr, rw.getUnitAttr());
      epilogueSizes[*rowDim] = 1;
    }
  }
  // Marked before peeling: the peeled copies keep the marks.
  markTile(rw, kernel, plan.vecSizes, /*contraction=*/true);
  markTile(rw, current, epilogueSizes, /*contraction=*/false);
  if (fillTile)
    markTile(rw, fillTile, toConsumer(plan.vecSizes), /*contraction=*/false);
  (void)peelLoops(loops);
}

void TileAndVectorize::runGeneric(linalg::LinalgOp op, bool tasks) {
  unsigned numLoops = op.getNumLoops();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  int64_t lanes = std::max<int64_t>(1, vectorBits / elementBits(op));

  // Vector tile: a few registers' worth along the innermost dims.
  SmallVector<int64_t> vec(numLoops, 1);
  int64_t budget = kElementwiseVectors * lanes;
  for (int d = numLoops - 1; d >= 0 && budget > 1; --d) {
    int64_t r = ranges[d];
    if (ShapedType::isDynamic(r)) {
      vec[d] = budget;
      break;
    }
    if (r > budget) {
      // Whole SIMD vectors of it.
      vec[d] = std::max<int64_t>(budget / lanes, 1) * lanes;
      if (vec[d] > budget)
        vec[d] = budget;
      break;
    }
    vec[d] = r;
    budget /= std::max<int64_t>(r, 1);
  }

  // Level 1: the outermost parallel dim as scf.forall chunks.
  Operation *current = op;
  std::optional<unsigned> par;
  for (unsigned d = 0; d < numLoops; ++d)
    if (iters[d] == utils::IteratorType::parallel && ranges[d] != 1) {
      par = d;
      break;
    }
  if (par && tasks) {
    int64_t innerElems = 1;
    for (unsigned d = *par + 1; d < numLoops; ++d)
      innerElems *= ShapedType::isDynamic(ranges[d]) ? 64 : ranges[d];
    int64_t chunk = std::max<int64_t>(1, kTaskElements / std::max<int64_t>(innerElems, 1));
    chunk = llvm::alignTo(chunk, vec[*par]);
    if (ShapedType::isDynamic(ranges[*par]) || ranges[*par] > chunk) {
      SmallVector<int64_t> outer(numLoops, 0);
      outer[*par] = chunk;
      if (FailureOr<scf::SCFTilingResult> res = tile(current, outer, true);
          succeeded(res))
        current = res->tiledOps.back();
    }
  }

  // Level 2: vector tiles.
  SmallVector<int64_t> inner(numLoops, 0);
  for (unsigned d = 0; d < numLoops; ++d)
    if (ShapedType::isDynamic(ranges[d]) || ranges[d] > vec[d])
      inner[d] = vec[d];
  SmallVector<Operation *> roots;
  if (FailureOr<scf::SCFTilingResult> res = tile(current, inner, false);
      succeeded(res))
    roots = peelLoops(res->loops);
  else
    roots.push_back(current);
  vectorizeAll(roots, vec, /*contraction=*/false);
}

/// The fused dequantizing matmul of quench.matmul_nbits (loops batch...,
/// b, j, h, n; see lib/Conversion/QuenchToLinalg/MatMulNBits.cpp) where
/// quench-cpu-dequant-matmul's explicit kernel did not apply: tasks of
/// output features, register tiles of mr rows x nr features kept in
/// registers across the reduction loops (b, j, h inside n), codes unpacked
/// as whole vectors of consecutive features.
void TileAndVectorize::runDequantMatmul(linalg::LinalgOp op) {
  unsigned numLoops = op.getNumLoops();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  unsigned nDim = numLoops - 1, batch = numLoops - 4;
  int64_t lanes = std::max<int64_t>(1, vectorBits / 32);
  auto clampTile = [&](unsigned d, int64_t t) {
    if (!ShapedType::isDynamic(ranges[d]) && ranges[d] <= t)
      return int64_t(0);
    return t;
  };
  // The row dim: the innermost batch dim that is not 1.
  std::optional<unsigned> m;
  for (unsigned d = 0; d < batch; ++d)
    if (ranges[d] != 1)
      m = d;
  int64_t mr = m ? 4 : 1;
  int64_t nr = (m ? 2 : 4) * lanes;

  SmallVector<int64_t> outer(numLoops, 0);
  for (unsigned d = 0; d < batch; ++d)
    if (ranges[d] != 1)
      outer[d] = 1;
  if (m)
    outer[*m] = clampTile(*m, 64);
  outer[nDim] = clampTile(nDim, 4 * nr);
  Operation *current = op;
  if (FailureOr<scf::SCFTilingResult> res = tile(current, outer, true);
      succeeded(res))
    current = res->tiledOps.back();

  SmallVector<int64_t> inner(numLoops, 1), vec(numLoops, 1);
  for (unsigned d = 0; d < numLoops; ++d)
    if (ranges[d] == 1)
      inner[d] = 0;
  if (m) {
    inner[*m] = clampTile(*m, mr);
    vec[*m] = mr;
    if (!ShapedType::isDynamic(ranges[*m]) && ranges[*m] < mr)
      vec[*m] = ranges[*m];
  }
  inner[nDim] = clampTile(nDim, nr);
  vec[nDim] = inner[nDim] ? nr : ranges[nDim];
  // Loop order: batch dims, n, then the reductions (accumulators stay in
  // registers across them).
  SmallVector<int64_t> interchange;
  for (unsigned d = 0; d < batch; ++d)
    interchange.push_back(d);
  interchange.push_back(nDim);
  for (unsigned d = batch; d < nDim; ++d)
    interchange.push_back(d);
  SmallVector<Operation *> roots;
  if (FailureOr<scf::SCFTilingResult> res =
          tile(current, inner, false, interchange);
      succeeded(res))
    roots = peelLoops(res->loops);
  else
    roots.push_back(current);
  vectorizeAll(roots, vec, /*contraction=*/false);
}

void TileAndVectorize::run(linalg::LinalgOp op) {
  if (!isTileable(op))
    return;
  if (op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()) &&
      op.getNumLoops() >= 5) {
    runDequantMatmul(op);
    return;
  }
  if (linalg::isaContractionOpInterface(op)) {
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(op);
    if (succeeded(dims) && !dims->k.empty()) {
      runContraction(op, *dims);
      return;
    }
  }
  runGeneric(op);
}
