//===- CPUCodegen.cpp - tiling and vectorization for the CPU ---------------===//
//
// The `codegen` stage of quench-cpu-pipeline, on tensors: every linalg op is
// tiled (outermost parallel tiles as scf.forall for the thread pool, then
// scf.for down to a register tile), partial tiles are peeled off so that the
// main loops see static tiles, and each tile is vectorized (unmasked when
// static, masked otherwise; ops the vectorizer rejects stay linalg and become
// loops in to-llvm). Contractions get a register-blocked micro kernel
// (vector.contract lowered to outer products, i.e. broadcast + FMA);
// elementwise ops and reductions get a few SIMD registers' worth of elements
// along their innermost dims. Also the registration of the codegen passes
// that run on their own in quench-opt.
//
// The smaller passes of the pipeline have files of their own:
// FuseElementwise.cpp, PretransposeRhs.cpp, UnshareInits.cpp (which the tile
// pass calls first), ForwardSubvectors.cpp and, for the `to-llvm` stage,
// VectorLowering.cpp. See docs/lowering.md.
//
//===----------------------------------------------------------------------===//

#include "CPUCodegen.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/Transforms.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/Vector/Transforms/LoweringPatterns.h"
#include "mlir/Dialect/Vector/Transforms/VectorRewritePatterns.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/TilingInterface.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include "llvm/ADT/SetVector.h"

#include <algorithm>


using namespace mlir;

namespace {

//===----------------------------------------------------------------------===//
// Tile plans
//===----------------------------------------------------------------------===//

/// Register tile of the contraction micro kernel, in elements: `mr` rows of
/// the result, `nr` = nrVectors SIMD vectors of columns, `kr` reduction steps
/// unrolled per iteration. Outer (cache) tiles: `mt` x `nt` per scf.forall
/// task, `kc` reduction elements per pass over a task's accumulators.
/// The defaults fit AVX2's 16 registers (12 accumulators, 2 vectors of B,
/// 1 broadcast of A: 8x16 spills and runs 3x slower); AVX-512's 32 take
/// 8 rows.
struct ContractionTiles {
  int64_t mr = 6, nrVectors = 2, kr = 1;
  int64_t mt = 48, nt = 256, kc = 256;
  /// Matrix-vector products (M below mr): memory bound, so the reduction is
  /// the outer loop (kr rows of B streamed at a time) and each task sweeps
  /// gemvNt contiguous columns.
  int64_t gemvNrVectors = 8, gemvKr = 4, gemvNt = 1024;
};

/// Elements a parallel task should cover at least (scf.forall chunks).
constexpr int64_t kTaskElements = 1 << 14;
/// Contractions of at least this many multiply-adds are split into about
/// kMinTasks parallel tasks along N.
constexpr int64_t kSplitMacs = 1 << 20;
constexpr int64_t kMinTasks = 4;
/// SIMD registers' worth of elements per vectorized elementwise tile.
constexpr int64_t kElementwiseVectors = 4;

/// Contractions with an epilogue fused into their register tiles (see
/// TileAndVectorize::runFusedContraction) drop the cache blocking of K:
/// each register tile runs over the whole reduction before its epilogue.
/// Up to this K the B panel of a register tile (K x 2 SIMD vectors) stays
/// in L2.
constexpr int64_t kMaxFusedK = 1024;

/// How runContraction tiles a contraction, in its loop space (0: untiled).
struct ContractionPlan {
  /// scf.forall tasks; scf.for over K blocks; register tiles.
  SmallVector<int64_t> outer, kBlock, inner;
  /// Loop order of the register tiles.
  SmallVector<int64_t> interchange;
  /// Vector sizes of a register tile (upper bounds of dynamic extents).
  SmallVector<int64_t> vecSizes;
  /// The innermost reduction loop.
  unsigned k = 0;
  /// M below the register tile's rows (matrix x vector: K outermost).
  bool thin = false;
  /// B read [N, K]: horizontal reductions instead of outer products.
  bool transposedB = false;
};

int64_t elementBits(linalg::LinalgOp op) {
  unsigned bits = 8;
  for (OpOperand &o : op->getOpOperands())
    if (auto t = dyn_cast<ShapedType>(o.get().getType()))
      if (t.getElementType().isIntOrFloat())
        bits = std::max(bits, t.getElementType().getIntOrFloatBitWidth());
  return bits;
}

/// True when run() tiles `op` at all: tensors, a non-empty iteration
/// space, whole-byte (or index) elements.
static bool isTileable(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumLoops() == 0)
    return false;
  // Empty iteration spaces: nothing to compute (and tiling asserts).
  if (llvm::is_contained(op.getStaticLoopRanges(), 0))
    return false;
  // Sub-byte elements (i1 masks) are bit-packed in vector registers but
  // byte-sized in memory: vector loads and stores of them would be wrong.
  for (Type t : llvm::concat<const Type>(op->getOperandTypes(),
                                         op->getResultTypes())) {
    Type e = getElementTypeOrSelf(t);
    if (!e.isIntOrIndexOrFloat())
      return false;
    if (!e.isIndex() && e.getIntOrFloatBitWidth() % 8 != 0)
      return false;
  }
  return true;
}

class TileAndVectorize {
public:
  TileAndVectorize(RewriterBase &rw, unsigned vectorBits)
      : rw(rw), vectorBits(vectorBits) {}

  void run(linalg::LinalgOp op);
  /// The contraction whose result `consumer` takes as an epilogue (see
  /// runFusedContraction), or null.
  linalg::LinalgOp fusableContraction(linalg::LinalgOp consumer);
  static bool fusesRegisterTiles(linalg::LinalgOp contraction,
                                 const linalg::ContractionDimensions &dims,
                                 const ContractionPlan &plan);
  /// Tiles `contraction` and its epilogue `consumer` together: the
  /// consumer's tiles (tasks, register tiles) compute their slice of the
  /// contraction over the whole K, so the accumulators go through the
  /// epilogue in registers. Call only when fusableContraction(consumer)
  /// returned `contraction`.
  void runEpilogue(linalg::GenericOp consumer, linalg::LinalgOp contraction);

private:
  /// Tiles `op` with `sizes` (0 = untiled). Returns the tiled ops and the
  /// generated loops; the original op is replaced.
  FailureOr<scf::SCFTilingResult> tile(Operation *op, ArrayRef<int64_t> sizes,
                                       bool forall,
                                       ArrayRef<int64_t> interchange = {});
  void fuseFillInits(scf::SCFTilingResult &res);
  /// Peels the partial last iteration off each scf.for of `loops`; returns
  /// the loops to vectorize: the first loop and every partial iteration.
  SmallVector<Operation *> peelLoops(ArrayRef<LoopLikeOpInterface> loops);
  void vectorizeAll(ArrayRef<Operation *> roots, ArrayRef<int64_t> vectorSizes,
                    bool contraction);
  ContractionPlan planContraction(linalg::LinalgOp op,
                                  const linalg::ContractionDimensions &dims);
  void runContraction(linalg::LinalgOp op, const linalg::ContractionDimensions &dims);
  /// Levels 2a and 2b of runContraction (K blocks, register tiles) on one
  /// task's contraction, then vectorization.
  void runContractionTask(Operation *op, const ContractionPlan &plan);
  /// Elementwise ops and reductions; `tasks`: split into scf.forall tasks
  /// (not inside another op's task).
  void runGeneric(linalg::LinalgOp op, bool tasks = true);
  void runDequantMatmul(linalg::LinalgOp op);

  RewriterBase &rw;
  unsigned vectorBits;
  ContractionTiles tiles;
};

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

constexpr llvm::StringLiteral kVectorSizesAttr =
    quench::kPreTiledVectorSizesAttr;
constexpr llvm::StringLiteral kContractionAttr = "__quench_contraction";
/// Loops over the rows of a fused epilogue, unrolled after vectorization.
constexpr llvm::StringLiteral kUnrollAttr = "__quench_unroll";

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

/// Vectorizes one marked tile: unmasked when its shape is static, else
/// masked to its vector sizes. Ops that cannot be vectorized are left alone
/// (they become loops).
void vectorizeTile(RewriterBase &rw, linalg::LinalgOp op) {
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

ContractionPlan
TileAndVectorize::planContraction(linalg::LinalgOp op,
                                  const linalg::ContractionDimensions &dims) {
  ContractionPlan plan;
  unsigned numLoops = op.getNumLoops();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  int64_t lanes = std::max<int64_t>(1, vectorBits / elementBits(op));
  int64_t nr = tiles.nrVectors * lanes;
  std::optional<unsigned> m, n;
  if (!dims.m.empty())
    m = dims.m.back();
  if (!dims.n.empty())
    n = dims.n.back();
  unsigned k = dims.k.back();
  plan.k = k;
  ContractionTiles t = tiles;
  if (vectorBits >= 512) {
    t.mr = 8;
    t.mt = 64;
  }
  bool thin = !m || (!ShapedType::isDynamic(ranges[*m]) && ranges[*m] < t.mr);
  plan.thin = thin;
  if (thin) {
    // Accumulators: M rows x nr vectors, within about 12 (AVX2) or 24
    // (AVX-512) registers.
    int64_t rows = m ? std::max<int64_t>(ranges[*m], 1) : 1;
    int64_t budget = vectorBits >= 512 ? 24 : 12;
    nr = std::clamp<int64_t>(budget / rows, 1, t.gemvNrVectors) * lanes;
    t.kr = t.gemvKr;
    t.kc = t.gemvKr;
    t.nt = t.gemvNt;
  }

  // B stored [N, K] (quench.linear's weight): broadcasting its elements
  // along N would need gathers. Instead each tile multiplies rows of A and
  // B elementwise along K (whole SIMD vectors) and reduces horizontally
  // into an mr x nr accumulator kept in registers.
  bool transposedB = false;
  if (n) {
    AffineMap rhsMap = op.getMatchingIndexingMap(op.getDpsInputOperand(1));
    transposedB = rhsMap.getNumResults() > 0 &&
                  rhsMap.getResults().back() == rw.getAffineDimExpr(k);
  }
  plan.transposedB = transposedB;
  if (transposedB) {
    nr = thin ? 8 : 4;
    if (!thin)
      t.mr = 4;
    t.kr = 4 * lanes;
    t.kc = int64_t(1) << 30;
  }

  // Level 1: parallel tasks over batch x M x N.
  SmallVector<int64_t> &outer = plan.outer;
  outer.assign(numLoops, 0);
  for (unsigned d : dims.batch)
    outer[d] = 1;
  for (unsigned d : dims.m)
    outer[d] = 1;
  for (unsigned d : dims.n)
    outer[d] = 1;
  auto clampTile = [&](unsigned d, int64_t t) {
    if (!ShapedType::isDynamic(ranges[d]) && ranges[d] <= t)
      return int64_t(0);
    return t;
  };
  // Enough tasks for a few threads: a product of at least kSplitMacs
  // multiply-adds is cut along N into about kMinTasks tasks of whole
  // register tiles even when it would fit one cache tile (the char-GPT's
  // 32 x 192 x 768 projection ran on one thread otherwise).
  int64_t macs = 1;
  for (int64_t r : ranges)
    macs *= ShapedType::isDynamic(r) ? 1 : r;
  auto splitForTasks = [&](unsigned d, int64_t tile, int64_t unit) {
    if (ShapedType::isDynamic(ranges[d]) || macs < kSplitMacs)
      return tile;
    int64_t share = llvm::divideCeil(ranges[d], kMinTasks);
    return std::min<int64_t>(
        tile, std::max<int64_t>(unit, llvm::alignTo(share, unit)));
  };
  if (m)
    outer[*m] = clampTile(*m, t.mt);
  if (n)
    outer[*n] = clampTile(*n, splitForTasks(*n, t.nt, nr));
  // Unit loops need no tiling.
  for (unsigned d = 0; d < numLoops; ++d)
    if (ranges[d] == 1)
      outer[d] = 0;

  // Level 2a: cache blocking of the reduction.
  plan.kBlock.assign(numLoops, 0);
  plan.kBlock[k] = clampTile(k, t.kc);

  // Level 2b: register tiles, loops ordered (other dims, n, m, k).
  SmallVector<int64_t> &inner = plan.inner;
  inner.assign(numLoops, 1);
  for (unsigned d = 0; d < numLoops; ++d)
    if (ranges[d] == 1)
      inner[d] = 0;
  if (m)
    inner[*m] = clampTile(*m, t.mr);
  if (n)
    inner[*n] = clampTile(*n, nr);
  inner[k] = clampTile(k, t.kr);
  for (unsigned d = 0; d < numLoops; ++d)
    if (d != m && d != n && d != k)
      plan.interchange.push_back(d);
  if (n)
    plan.interchange.push_back(*n);
  if (m)
    plan.interchange.push_back(*m);
  plan.interchange.push_back(k);
  for (unsigned d = 0; d < numLoops; ++d)
    plan.vecSizes.push_back(inner[d] > 0 ? inner[d] : ranges[d]);
  return plan;
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
      consumer->hasAttr("quench.dequant_matmul"))
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
  if (!found || !isTileable(found) || found->hasAttr("quench.dequant_matmul"))
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

/// True when `contraction`'s epilogue can go into its register tiles (else
/// only into its tasks): the register-tile kernel (not the matrix-vector
/// one, whose K loop is outermost, nor horizontal reductions for B read
/// [N, K]), one reduction dim, static and at most kMaxFusedK, and register
/// tiles smaller than the result.
bool TileAndVectorize::fusesRegisterTiles(
    linalg::LinalgOp contraction, const linalg::ContractionDimensions &dims,
    const ContractionPlan &plan) {
  int64_t kRange = contraction.getStaticLoopRanges()[plan.k];
  if (plan.thin || plan.transposedB || ShapedType::isDynamic(kRange) ||
      kRange > kMaxFusedK || dims.k.size() != 1)
    return false;
  AffineMap outMap =
      contraction.getMatchingIndexingMap(contraction.getDpsInitOperand(0));
  return llvm::any_of(outMap.getResults(), [&](AffineExpr e) {
    return plan.inner[cast<AffineDimExpr>(e).getPosition()] != 0;
  });
}

/// Marks `op` for vectorization with `sizes` (see vectorizeAll).
static void markTile(RewriterBase &rw, Operation *op, ArrayRef<int64_t> sizes,
                     bool contraction) {
  op->setAttr(kVectorSizesAttr, rw.getDenseI64ArrayAttr(sizes));
  if (contraction)
    op->setAttr(kContractionAttr, rw.getUnitAttr());
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
  if (op->hasAttr("quench.dequant_matmul") && op.getNumLoops() >= 5) {
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

} // namespace

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

/// True when `body` is exactly `out + extsi(a) * extsi(b)` with `out` of
/// the integer type `et` and `a`, `b` narrower integers (quench.qlinear's
/// i8 x i8 -> i32 product): linalg.contract's default (signed) casts of its
/// inputs to the result type are the same computation.
bool quench::isWideningIntMulAdd(Block &body, Type et) {
  if (!isa<IntegerType>(et) || body.getNumArguments() != 3 ||
      body.getArgument(2).getType() != et ||
      body.getOperations().size() != 5)
    return false;
  auto add = dyn_cast_or_null<arith::AddIOp>(
      body.getTerminator()->getOperand(0).getDefiningOp());
  if (!add)
    return false;
  Value out = body.getArgument(2), prod = add.getRhs();
  if (add.getRhs() == out)
    prod = add.getLhs();
  else if (add.getLhs() != out)
    return false;
  auto mul = prod.getDefiningOp<arith::MulIOp>();
  if (!mul)
    return false;
  // The factors: sign extensions (to `et`) of the two inputs, either order.
  auto source = [&](Value v) -> Value {
    auto ext = v.getDefiningOp<arith::ExtSIOp>();
    return ext && ext.getType() == et ? ext.getIn() : Value();
  };
  Value a = source(mul.getLhs()), b = source(mul.getRhs());
  Value x = body.getArgument(0), y = body.getArgument(1);
  return (a == x && b == y) || (a == y && b == x);
}

/// Rewrites generic contractions whose body is exactly `out + a * b` on one
/// element type (quench.linear's and quench.matmul's lowering of any rank),
/// or `out + extsi(a) * extsi(b)` on integers (quench.qlinear's), as
/// linalg.contract with the same indexing maps: the vectorizer turns
/// named contractions into vector.contract, which lowers to outer products
/// (broadcast + FMA per row); a generic would come out as transposes and
/// horizontal sums (mul + multi_reduction).
static void nameContractions(func::FuncOp func, RewriterBase &rw) {
  SmallVector<linalg::GenericOp> generics;
  func.walk([&](linalg::GenericOp op) { generics.push_back(op); });
  for (linalg::GenericOp op : generics) {
    if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
        op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
        !linalg::isaContractionOpInterface(op) ||
        op->hasAttr("quench.dequant_matmul"))
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
static void unrollEpilogueRows(func::FuncOp func) {
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

namespace {

struct CPUTileAndVectorizePass
    : PassWrapper<CPUTileAndVectorizePass, OperationPass<func::FuncOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(CPUTileAndVectorizePass)

  explicit CPUTileAndVectorizePass(unsigned vectorBits)
      : vectorBits(vectorBits) {}

  StringRef getArgument() const override { return "quench-cpu-tile-and-vectorize"; }
  StringRef getDescription() const override {
    return "Tile linalg ops on tensors (scf.forall tasks, scf.for register "
           "tiles) and vectorize the tiles";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<scf::SCFDialect, vector::VectorDialect,
                    tensor::TensorDialect, arith::ArithDialect,
                    affine::AffineDialect>();
  }

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    IRRewriter rw(&getContext());
    // One fill per consumer (CSE merges identical fills), so that each can
    // move into its consumer's tasks; fills are tiled last, once their
    // consumers have taken them in.
    quench::unshareInitTensors(func, rw);
    nameContractions(func, rw);
    SmallVector<linalg::LinalgOp> ops, fillOps;
    func.walk([&](linalg::LinalgOp op) {
      (isa<linalg::FillOp>(op) ? fillOps : ops).push_back(op);
    });
    ops.append(fillOps.begin(), fillOps.end());
    TileAndVectorize driver(rw, vectorBits);
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

  unsigned vectorBits;
};

} // namespace

std::unique_ptr<Pass> quench::createCPUTileAndVectorizePass(unsigned vectorBits) {
  return std::make_unique<CPUTileAndVectorizePass>(vectorBits);
}

void quench::registerCPUCodegenPasses() {
  registerPass([] { return createCPUFuseElementwisePass(); });
  registerPass([] { return createCPUPretransposeRhsPass(); });
  registerPass([] { return createCPUUnshareInitsPass(); });
  registerPass([] { return createCPUForwardSubvectorsPass(); });
  registerPass([] { return createExpandShapeToCastPass(); });
  registerPass([] { return createFullRankWritesPass(); });
}
