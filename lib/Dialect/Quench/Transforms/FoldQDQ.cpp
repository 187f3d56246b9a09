//===- FoldQDQ.cpp - fold QDQ matmul patterns into integer ops ------------===//
//
// Implements `quench-fold-qdq`: pre-quantized ONNX models in the QDQ format
// (ONNX Runtime's quantizer, PyTorch's exporter) express an int8 matmul as
// float ops between DequantizeLinear and QuantizeLinear nodes. This pass
// turns
//
//   quantize_linear(matmul(dequantize_linear(a), dequantize_linear(b)))
//       -> qlinear_matmul(a, b)                  (integer product, requantized)
//   matmul(dequantize_linear(a), dequantize_linear(b)) [linear: + bias]
//       -> cast(matmul_integer(a, b)) * (a_scale * b_scale) [+ bias]
//
// so that the product is computed exactly in int32 instead of in float on
// dequantized values. The rewrite is algebraic (sum_k (a - za) sa (b - zb) sb
// = sa sb sum_k (a - za)(b - zb)), valid whenever a's scale is one value and
// b's is one value or one per output column; the float results differ from
// the unfolded graph only by rounding (docs/quantization.md).
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFOLDQDQ
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;

namespace {

//===----------------------------------------------------------------------===//
// Matching
//===----------------------------------------------------------------------===//

/// The integer side of a dequantize_linear that feeds a product: codes,
/// scale and (possibly null) zero point, and whether the scale has one value
/// per output column (else one value for the whole tensor).
struct Dequantized {
  Value codes, scale, zeroPoint;
  bool perColumn = false;
};

/// Whether a scale / zero point holds exactly one value (0-D, or 1-D of
/// static length 1).
bool isPerTensor(Value param) {
  auto ty = cast<RankedTensorType>(param.getType());
  return ty.getRank() == 0 || (ty.getRank() == 1 && ty.getDimSize(0) == 1);
}

/// Matches `v = dequantize_linear(codes, scale, zp)` with 8-bit codes and an
/// f32 scale and result. The scale must be per tensor, or, when
/// `columnAxis` is set, per axis along that dimension of 2-D codes whose
/// extent is static (one scale per output column of the product). Anything
/// else (per-axis on another axis, a scale of unknown length, f16 scales,
/// 16-bit codes) does not match.
std::optional<Dequantized> matchDequantize(Value v,
                                           std::optional<int64_t> columnAxis) {
  auto dq = v.getDefiningOp<DequantizeLinearOp>();
  if (!dq)
    return std::nullopt;
  auto codesType = dq.getInput().getType();
  if (!codesType.getElementType().isInteger(8) ||
      !dq.getScale().getType().getElementType().isF32() ||
      !dq.getType().getElementType().isF32())
    return std::nullopt;
  Dequantized d{dq.getInput(), dq.getScale(), dq.getZeroPoint()};
  if (isPerTensor(d.scale))
    return d;
  if (!columnAxis || codesType.getRank() != 2)
    return std::nullopt;
  int64_t axis = static_cast<int64_t>(dq.getAxis());
  if (axis < 0)
    axis += 2;
  int64_t n = codesType.getDimSize(*columnAxis);
  if (axis != *columnAxis || ShapedType::isDynamic(n) ||
      d.scale.getType() != RankedTensorType::get({n}, Float32Type::get(
                                                         v.getContext())))
    return std::nullopt;
  d.perColumn = true;
  return d;
}

/// The two quantized operands of a matmul or linear whose operands both
/// come from dequantize_linear: `a` per tensor, `b` per tensor or per output
/// column. `weightTransposed` is true for quench.linear (weight [N, K]).
struct QuantizedProduct {
  Dequantized a, b;
  bool weightTransposed = false;
};

/// Matches the operands of a product: `rhs` a dequantized 2-D weight (per
/// tensor or per output column), `lhs` a dequantized value per tensor.
std::optional<QuantizedProduct> matchProduct(Value lhs, Value rhs,
                                             bool weightTransposed) {
  auto b = matchDequantize(rhs, weightTransposed ? 0 : 1);
  if (!b || cast<RankedTensorType>(b->codes.getType()).getRank() != 2)
    return std::nullopt;
  auto a = matchDequantize(lhs, std::nullopt);
  if (!a)
    return std::nullopt;
  return QuantizedProduct{*a, *b, weightTransposed};
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

/// A per-tensor parameter as 0-D (a [1] vector becomes a scalar so that no
/// consumer mistakes it for a per-row/per-column vector of length 1).
Value asScalar(PatternRewriter &rewriter, Location loc, Value param) {
  auto ty = cast<RankedTensorType>(param.getType());
  if (ty.getRank() == 0)
    return param;
  return ReshapeOp::create(rewriter, loc,
                           RankedTensorType::get({}, ty.getElementType()),
                           param, Value());
}

/// A scale parameter ready for the integer ops: 0-D when per tensor.
Value normalizeParam(PatternRewriter &rewriter, Location loc, Value param,
                     bool perColumn) {
  return perColumn ? param : asScalar(rewriter, loc, param);
}

/// The zero point of `d` in the form the integer ops take (shaped like its
/// normalized scale), or a zero constant of the codes' type when the
/// dequantize had none.
Value zeroPointOf(PatternRewriter &rewriter, Location loc,
                  const Dequantized &d) {
  if (d.zeroPoint)
    return normalizeParam(rewriter, loc, d.zeroPoint, d.perColumn);
  auto ty = RankedTensorType::get(
      {}, cast<RankedTensorType>(d.codes.getType()).getElementType());
  return ConstantOp::create(rewriter, loc, ty,
                            cast<ElementsAttr>(rewriter.getZeroAttr(ty)));
}

/// The weight codes as the [K, N] right-hand side of an integer matmul:
/// transposed for quench.linear (on the constant data when it is one).
Value rhsCodes(PatternRewriter &rewriter, Location loc,
               const QuantizedProduct &p) {
  Value codes = p.b.codes;
  if (!p.weightTransposed)
    return codes;
  auto ty = cast<RankedTensorType>(codes.getType());
  auto outTy = RankedTensorType::get({ty.getDimSize(1), ty.getDimSize(0)},
                                     ty.getElementType());
  if (auto cst = codes.getDefiningOp<ConstantOp>(); cst && ty.hasStaticShape())
    if (ElementsAttr t = transpose2DConstant(cst.getValue(), "qdq_weight_t"))
      return ConstantOp::create(rewriter, loc, outTy, t);
  return TransposeOp::create(rewriter, loc, outTy, codes,
                             ArrayRef<int64_t>{1, 0});
}

/// Emits `cast(matmul_integer(a, b)) * (a_scale * b_scale) [+ bias]`, the
/// float value of the product `resultType`.
Value buildRescaledProduct(PatternRewriter &rewriter, Location loc,
                           const QuantizedProduct &p, Value bias,
                           RankedTensorType resultType) {
  Value aZp = zeroPointOf(rewriter, loc, p.a);
  Value bZp = zeroPointOf(rewriter, loc, p.b);
  Value b = rhsCodes(rewriter, loc, p);
  auto accType = RankedTensorType::get(resultType.getShape(),
                                       rewriter.getIntegerType(32));
  Value acc = MatMulIntegerOp::create(rewriter, loc, accType, p.a.codes, b,
                                      aZp, bZp);
  Value accF = CastOp::create(rewriter, loc, resultType, acc);
  Value aScale = asScalar(rewriter, loc, p.a.scale);
  Value bScale = normalizeParam(rewriter, loc, p.b.scale, p.b.perColumn);
  Value scale = MulOp::create(rewriter, loc, bScale.getType(), aScale, bScale);
  Value y = MulOp::create(rewriter, loc, resultType, accF, scale);
  if (bias)
    y = AddOp::create(rewriter, loc, resultType, y, bias);
  return y;
}

/// If the only user of `product` is a per-tensor 8-bit quantize_linear of
/// f32, returns it.
QuantizeLinearOp outputQuantize(Value product) {
  if (!product.hasOneUse())
    return nullptr;
  auto q = dyn_cast<QuantizeLinearOp>(*product.getUsers().begin());
  if (!q || !q.getType().getElementType().isInteger(8) ||
      !q.getScale().getType().getElementType().isF32() ||
      !isPerTensor(q.getScale()))
    return nullptr;
  return q;
}

//===----------------------------------------------------------------------===//
// Patterns
//===----------------------------------------------------------------------===//

/// Folds the QDQ form of a matmul or linear. With a per-tensor 8-bit
/// quantize_linear as the only user (and no bias) the whole chain becomes
/// one qlinear_matmul; otherwise the product becomes an exact integer
/// matmul followed by a float rescale, and a following quantize_linear
/// stays.
template <typename OpTy>
struct FoldQDQProduct : public OpRewritePattern<OpTy> {
  using OpRewritePattern<OpTy>::OpRewritePattern;

  LogicalResult matchAndRewrite(OpTy op,
                                PatternRewriter &rewriter) const override {
    constexpr bool isLinear = std::is_same_v<OpTy, LinearOp>;
    Value lhs, rhs, bias;
    if constexpr (isLinear) {
      lhs = op.getInput();
      rhs = op.getWeight();
      bias = op.getBias();
    } else {
      lhs = op.getLhs();
      rhs = op.getRhs();
    }
    auto resultType = cast<RankedTensorType>(op.getType());
    if (!resultType.getElementType().isF32())
      return failure();
    std::optional<QuantizedProduct> p = matchProduct(lhs, rhs, isLinear);
    if (!p)
      return failure();
    Location loc = op.getLoc();

    if (QuantizeLinearOp q = outputQuantize(op.getResult()); q && !bias) {
      rewriter.setInsertionPoint(q);
      Value yZp = q.getZeroPoint();
      if (yZp) {
        yZp = asScalar(rewriter, loc, yZp);
      } else {
        auto ty = RankedTensorType::get({}, q.getType().getElementType());
        yZp = ConstantOp::create(rewriter, loc, ty,
                                 cast<ElementsAttr>(rewriter.getZeroAttr(ty)));
      }
      Value aScale = asScalar(rewriter, loc, p->a.scale);
      Value aZp = zeroPointOf(rewriter, loc, p->a);
      Value bScale =
          normalizeParam(rewriter, loc, p->b.scale, p->b.perColumn);
      Value bZp = zeroPointOf(rewriter, loc, p->b);
      Value b = rhsCodes(rewriter, loc, *p);
      Value yScale = asScalar(rewriter, loc, q.getScale());
      rewriter.replaceOpWithNewOp<QLinearMatMulOp>(
          q, q.getType(), p->a.codes, aScale, aZp, b, bScale, bZp, yScale,
          yZp);
      rewriter.eraseOp(op);
      return success();
    }

    rewriter.replaceOp(
        op, buildRescaledProduct(rewriter, loc, *p, bias, resultType));
    return success();
  }
};

struct QuenchFoldQDQPass
    : public quench::impl::QuenchFoldQDQBase<QuenchFoldQDQPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateFoldQDQPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void quench::populateFoldQDQPatterns(RewritePatternSet &patterns) {
  patterns.add<FoldQDQProduct<MatMulOp>, FoldQDQProduct<LinearOp>>(
      patterns.getContext());
}
