//===- Attention.cpp - quench.attention as linalg, op by op ---------------===//
//
// The pass `quench-decompose-attention`: the generic lowering of the fused
// attention op for backends without a kernel for it (the CPU backend
// without vector code, the CUDA backend). convert-quench-to-linalg keeps
// the op so that the CPU backend can give it its own kernel
// (quench-cpu-attention).
//
// With g = H / Hk query heads per kv head, the query is viewed as
// [B, Hk, g, S, D] and every step is one linalg.generic whose indexing maps
// are projected permutations (or constant 0 for a broadcast bias dim):
//
//   s[b,k,j,i,t]  = sum_d q[b,k,j,i,d] * key(b,k,t,d)      key read as stored
//   s             = s * scale + bias[..]
//   m[b,k,j,i]    = max_t s
//   e             = exp(s - m)
//   l[b,k,j,i]    = sum_t e
//   o[b,k,j,i,c]  = sum_t e[b,k,j,i,t] * value(b,k,t,c)  value read as stored
//   result        = collapse(o / l) -> [B, H, S, Dv]
//
// "Read as stored": an f16 key is extended inside the contraction's body,
// an i8 key is converted and multiplied by its scale there, so that no
// dequantized copy of a KV cache is made.
//
//===----------------------------------------------------------------------===//

#include "quench/Conversion/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHDECOMPOSEATTENTION
#include "quench/Conversion/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench;

namespace {

/// An element of `x` (the block argument `elt`, of x's element type) as a
/// value of `type`: float types are extended or truncated, i8 codes are
/// converted and multiplied by `scale` (their block argument, f32).
Value readAs(OpBuilder &b, Location loc, Value elt, Value scale, Type type) {
  Type et = elt.getType();
  if (isa<FloatType>(et)) {
    unsigned from = et.getIntOrFloatBitWidth(),
             to = type.getIntOrFloatBitWidth();
    if (et == type)
      return elt;
    if (from < to || (from == to && et.isBF16()))
      return arith::ExtFOp::create(b, loc, type, elt);
    return arith::TruncFOp::create(b, loc, type, elt);
  }
  Value f = arith::SIToFPOp::create(b, loc, type, elt);
  if (scale.getType() != type)
    scale = readAs(b, loc, scale, Value(), type);
  return arith::MulFOp::create(b, loc, f, scale);
}

/// An empty tensor of `sizes` filled with `value`, or just empty when
/// `value` is null.
Value makeInit(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
               Type type, TypedAttr value) {
  Value empty = tensor::EmptyOp::create(b, loc, sizes, type);
  if (!value)
    return empty;
  Value c = arith::ConstantOp::create(b, loc, value);
  return linalg::FillOp::create(b, loc, c, empty).getResult(0);
}

struct DecomposeAttention : OpRewritePattern<AttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(AttentionOp op,
                                PatternRewriter &rw) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = rw.getContext();
    Value q = op.getQuery(), key = op.getKey(), value = op.getValue();
    auto qt = cast<RankedTensorType>(q.getType());
    auto kt = cast<RankedTensorType>(key.getType());
    auto vt = cast<RankedTensorType>(value.getType());
    Type resultElt = qt.getElementType();
    // f16/bf16 models compute in f32 and round the result once.
    Type acc = resultElt.getIntOrFloatBitWidth() < 32 ? rw.getF32Type()
                                                      : resultElt;
    int64_t hk = kt.getDimSize(1), g = qt.getDimSize(1) / hk;
    int64_t d = qt.getDimSize(3), dv = vt.getDimSize(3);

    // Extents: batch, query positions, key positions.
    OpFoldResult bSize = tensor::getMixedSize(rw, loc, q, 0),
                 sSize = tensor::getMixedSize(rw, loc, q, 2),
                 tSize = tensor::getMixedSize(rw, loc, key, 2);
    auto idx = [&](int64_t n) -> OpFoldResult { return rw.getIndexAttr(n); };

    // q as [B, Hk, g, S, D].
    SmallVector<ReassociationIndices> split{{0}, {1, 2}, {3}, {4}};
    auto q5Type = RankedTensorType::get(
        {qt.getDimSize(0), hk, g, qt.getDimSize(2), d}, qt.getElementType());
    Value q5 = tensor::ExpandShapeOp::create(
        rw, loc, q5Type, q, split, {bSize, idx(hk), idx(g), sSize, idx(d)});

    auto par = utils::IteratorType::parallel;
    auto red = utils::IteratorType::reduction;
    auto map = [&](unsigned n, ArrayRef<unsigned> dims) {
      SmallVector<AffineExpr> e;
      for (unsigned x : dims)
        e.push_back(getAffineDimExpr(x, ctx));
      return AffineMap::get(n, 0, e, ctx);
    };
    auto scaleMap = [&](unsigned n, unsigned b, unsigned k, unsigned t) {
      return AffineMap::get(n, 0,
                            {getAffineDimExpr(b, ctx), getAffineDimExpr(k, ctx),
                             getAffineDimExpr(t, ctx),
                             getAffineConstantExpr(0, ctx)},
                            ctx);
    };
    SmallVector<OpFoldResult> scoreSizes{bSize, idx(hk), idx(g), sSize, tSize};
    TypedAttr accZero = rw.getFloatAttr(acc, 0.0);

    // out[b,k,j,i,x] = sum_y lhs · cache, loops (b,k,j,i,x,y): `lhs` at
    // `lhsDims`, the cache at `cacheDims` converted as it is read (its
    // scales, if any, at [cacheDims[0], cacheDims[1], cacheDims[2], 0]).
    auto contract = [&](Value lhs, ArrayRef<unsigned> lhsDims, Value cache,
                        ArrayRef<unsigned> cacheDims, Value cacheScale,
                        Value init) {
      SmallVector<Value> in{lhs, cache};
      SmallVector<AffineMap> maps{map(6, lhsDims), map(6, cacheDims)};
      if (cacheScale) {
        in.push_back(cacheScale);
        maps.push_back(scaleMap(6, cacheDims[0], cacheDims[1], cacheDims[2]));
      }
      maps.push_back(map(6, {0, 1, 2, 3, 4}));
      return linalg::GenericOp::create(
                 rw, loc, init.getType(), in, init, maps,
                 {par, par, par, par, par, red},
                 [&](OpBuilder &b, Location l, ValueRange a) {
                   Value x = readAs(b, l, a[0], Value(), acc);
                   Value y = readAs(b, l, a[1],
                                    cacheScale ? a[2] : Value(), acc);
                   Value p = arith::MulFOp::create(b, l, x, y);
                   Value r = arith::AddFOp::create(b, l, a.back(), p);
                   linalg::YieldOp::create(b, l, r);
                 })
          .getResult(0);
    };

    // s = q · keyᵀ. Loops (b,k,j,i,t,d).
    Value s = contract(q5, {0, 1, 2, 3, 5}, key, {0, 1, 4, 5}, op.getKeyScale(),
                       makeInit(rw, loc, scoreSizes, acc, accZero));

    // s = s * scale + bias. Loops (b,k,j,i,t).
    SmallVector<Value> biasIn{s};
    SmallVector<AffineMap> biasMaps{map(5, {0, 1, 2, 3, 4})};
    if (Value bias = op.getBias()) {
      auto bt = cast<RankedTensorType>(bias.getType());
      // [b', h', i', t'] as [b', k', j', i', t'] (h' = H splits as the query).
      bool perHead = bt.getDimSize(1) != 1;
      SmallVector<int64_t> b5{bt.getDimSize(0), perHead ? hk : 1,
                              perHead ? g : 1, bt.getDimSize(2),
                              bt.getDimSize(3)};
      SmallVector<OpFoldResult> m = tensor::getMixedSizes(rw, loc, bias);
      SmallVector<OpFoldResult> b5Sizes{m[0], idx(b5[1]), idx(b5[2]), m[2],
                                        m[3]};
      Value bias5 = tensor::ExpandShapeOp::create(
          rw, loc, RankedTensorType::get(b5, bt.getElementType()), bias,
          split, b5Sizes);
      SmallVector<AffineExpr> e;
      for (auto [i, extent] : llvm::enumerate(b5))
        e.push_back(extent == 1 ? getAffineConstantExpr(0, ctx)
                                : getAffineDimExpr(i, ctx));
      biasIn.push_back(bias5);
      biasMaps.push_back(AffineMap::get(5, 0, e, ctx));
    }
    biasMaps.push_back(map(5, {0, 1, 2, 3, 4}));
    double scale = op.getScale().convertToDouble();
    Value scaled =
        linalg::GenericOp::create(
            rw, loc, s.getType(), biasIn,
            makeInit(rw, loc, scoreSizes, acc, nullptr), biasMaps,
            SmallVector<utils::IteratorType>(5, par),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value c = arith::ConstantOp::create(
                  b, l, b.getFloatAttr(acc, scale));
              Value r = arith::MulFOp::create(b, l, a[0], c);
              if (a.size() == 3)
                r = arith::AddFOp::create(
                    b, l, r, readAs(b, l, a[1], Value(), acc));
              linalg::YieldOp::create(b, l, r);
            })
            .getResult(0);

    // Row maximum and row sum of exp(s - max): loops (b,k,j,i,t).
    SmallVector<OpFoldResult> rowSizes{bSize, idx(hk), idx(g), sSize};
    auto rowMap = map(5, {0, 1, 2, 3});
    auto allMap = map(5, {0, 1, 2, 3, 4});
    SmallVector<utils::IteratorType> rowIters{par, par, par, par, red};
    Value maxInit = makeInit(
        rw, loc, rowSizes, acc,
        rw.getFloatAttr(acc, -std::numeric_limits<double>::infinity()));
    Value rowMax =
        linalg::GenericOp::create(
            rw, loc, maxInit.getType(), scaled, maxInit, {allMap, rowMap},
            rowIters,
            [&](OpBuilder &b, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  b, l, arith::MaximumFOp::create(b, l, a[0], a[1]).getResult());
            })
            .getResult(0);
    Value exps =
        linalg::GenericOp::create(
            rw, loc, s.getType(), ValueRange{scaled, rowMax},
            makeInit(rw, loc, scoreSizes, acc, nullptr),
            {allMap, rowMap, allMap}, SmallVector<utils::IteratorType>(5, par),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value x = arith::SubFOp::create(b, l, a[0], a[1]);
              linalg::YieldOp::create(b, l,
                                      math::ExpOp::create(b, l, x).getResult());
            })
            .getResult(0);
    Value sumInit = makeInit(rw, loc, rowSizes, acc, accZero);
    Value rowSum =
        linalg::GenericOp::create(
            rw, loc, sumInit.getType(), exps, sumInit, {allMap, rowMap},
            rowIters,
            [&](OpBuilder &b, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  b, l, arith::AddFOp::create(b, l, a[0], a[1]).getResult());
            })
            .getResult(0);

    // o = exps · value. Loops (b,k,j,i,c,t).
    SmallVector<OpFoldResult> outSizes{bSize, idx(hk), idx(g), sSize, idx(dv)};
    Value o = contract(exps, {0, 1, 2, 3, 5}, value, {0, 1, 5, 4},
                       op.getValueScale(),
                       makeInit(rw, loc, outSizes, acc, accZero));

    // result = collapse(o / l), rounded to the query's type.
    Value normInit = makeInit(rw, loc, outSizes, resultElt, nullptr);
    Value norm =
        linalg::GenericOp::create(
            rw, loc, normInit.getType(), ValueRange{o, rowSum}, normInit,
            {map(5, {0, 1, 2, 3, 4}), map(5, {0, 1, 2, 3}),
             map(5, {0, 1, 2, 3, 4})},
            SmallVector<utils::IteratorType>(5, par),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value r = arith::DivFOp::create(b, l, a[0], a[1]);
              linalg::YieldOp::create(b, l,
                                      readAs(b, l, r, Value(), resultElt));
            })
            .getResult(0);
    rw.replaceOpWithNewOp<tensor::CollapseShapeOp>(op, op.getType(), norm,
                                                   split);
    return success();
  }
};

struct QuenchDecomposeAttentionPass
    : public quench::impl::QuenchDecomposeAttentionBase<
          QuenchDecomposeAttentionPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeAttention>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
