//===- TilePlan.cpp - tile plans of the CPU tile pass ---------------------===//
//
// How quench-cpu-tile-and-vectorize tiles a contraction for a SIMD width:
// parallel tasks (scf.forall), cache blocks of K and a register tile whose
// vector.contract lowers to outer products (broadcast + FMA), with the
// matrix-vector (K outermost) and B-read-[N, K] (horizontal reductions)
// variants; and whether an epilogue can be fused into the register tiles.
// The sizes are in ContractionTiles (TileAndVectorize.h). See
// docs/lowering.md ("Code generation").
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include <algorithm>

using namespace mlir;
using namespace quench::cpu;

int64_t quench::cpu::elementBits(linalg::LinalgOp op) {
  unsigned bits = 8;
  for (OpOperand &o : op->getOpOperands())
    if (auto t = dyn_cast<ShapedType>(o.get().getType()))
      if (t.getElementType().isIntOrFloat())
        bits = std::max(bits, t.getElementType().getIntOrFloatBitWidth());
  return bits;
}

bool quench::cpu::isTileable(linalg::LinalgOp op) {
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

ContractionPlan
quench::cpu::planContraction(linalg::LinalgOp op,
                             const linalg::ContractionDimensions &dims,
                             unsigned vectorBits,
                             const ContractionTiles &tiles) {
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
  int64_t bBytes = 0;
  if (auto bt = dyn_cast<ShapedType>(op.getDpsInputOperand(1)->get().getType());
      bt && bt.hasStaticShape() && bt.getElementType().isIntOrFloat())
    bBytes = bt.getNumElements() * bt.getElementTypeBitWidth() / 8;
  bool thin = !m || (!ShapedType::isDynamic(ranges[*m]) &&
                     isThinProduct(ranges[*m], bBytes, t.mr));
  plan.thin = thin;
  if (thin) {
    // Accumulators: the register tile's rows (M, at most mr) x nr vectors,
    // within about 12 (AVX2) or 24 (AVX-512) registers.
    int64_t rows = m ? std::clamp<int64_t>(ranges[*m], 1, t.mr) : 1;
    int64_t budget = vectorBits >= 512 ? 24 : 12;
    nr = std::clamp<int64_t>(budget / rows, 1, t.gemvNrVectors) * lanes;
    // Float products stream twice the rows per step (half the
    // accumulator loads and stores per byte of B); the int8 kernels keep
    // theirs.
    Type bType = getElementTypeOrSelf(op.getDpsInputOperand(1)->get());
    int64_t kr = isa<FloatType>(bType) && bType.getIntOrFloatBitWidth() >= 32
                     ? t.gemvKrFloat
                     : t.gemvKr;
    t.kr = kr;
    t.kc = kr;
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
                  rhsMap.getResults().back() == getAffineDimExpr(k, op.getContext());
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
  // Matrix-vector products are memory bound: what counts is the bytes of
  // B they stream (a 768 x 768 f32 projection of a decode step, 2.4 MB,
  // is below kSplitMacs multiply-adds but worth two threads).
  bool split = thin ? macs * elementBits(op) / 8 >= kSplitGemvBytes
                    : macs >= kSplitMacs;
  auto splitForTasks = [&](unsigned d, int64_t tile, int64_t unit) {
    if (ShapedType::isDynamic(ranges[d]) || !split)
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

bool quench::cpu::fusesRegisterTiles(
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
