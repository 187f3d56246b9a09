//===- RaiseOps.cpp - raise decomposed patterns to quench ops -------------===//
//
// Implements `quench-raise-ops`: exporters write LayerNorm, RMSNorm, GELU,
// SiLU and linear layers as chains of primitive ops; quantization and code
// generation want them as single ops. Every pattern here matches one
// decomposed form (with the commutations exporters are known to produce) and
// rewrites only when the intermediate values have no other users.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHRAISEOPS
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;

namespace {

//===----------------------------------------------------------------------===//
// Matching helpers
//===----------------------------------------------------------------------===//

/// The uniform value of a constant operand, if `v` is one.
std::optional<double> constantValue(Value v) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return std::nullopt;
  return getUniformValue(cst.getValue());
}

bool isConstant(Value v, double expected) {
  std::optional<double> got = constantValue(v);
  return got && std::abs(*got - expected) <= 1e-3 * std::abs(expected) + 1e-7;
}

/// For a commutative binary op, returns the operand that is not `known`, or
/// null when neither operand is `known`.
template <typename OpTy>
Value otherOperand(OpTy op, Value known) {
  if (op.getLhs() == known)
    return op.getRhs();
  if (op.getRhs() == known)
    return op.getLhs();
  return nullptr;
}

/// If one operand of `op` is a constant with value `c`, returns the other.
template <typename OpTy>
Value operandBesideConstant(OpTy op, double c) {
  if (isConstant(op.getRhs(), c))
    return op.getLhs();
  if (isConstant(op.getLhs(), c))
    return op.getRhs();
  return nullptr;
}

/// Matches `x^2` written as `pow(x, 2)` or `x * x`; returns x.
Value matchSquare(Value v) {
  if (auto pow = v.getDefiningOp<PowOp>())
    if (isConstant(pow.getRhs(), 2.0))
      return pow.getLhs();
  if (auto mul = v.getDefiningOp<MulOp>())
    if (mul.getLhs() == mul.getRhs())
      return mul.getLhs();
  return nullptr;
}

/// Matches `x^3` as `pow(x, 3)`, `x * (x * x)` or `(x * x) * x`; returns x.
Value matchCube(Value v) {
  if (auto pow = v.getDefiningOp<PowOp>())
    if (isConstant(pow.getRhs(), 3.0))
      return pow.getLhs();
  if (auto mul = v.getDefiningOp<MulOp>()) {
    if (Value x = matchSquare(mul.getRhs()); x && x == mul.getLhs())
      return x;
    if (Value x = matchSquare(mul.getLhs()); x && x == mul.getRhs())
      return x;
  }
  return nullptr;
}

/// Matches a keep-dims mean over the trailing dimensions of its input;
/// returns the input and sets `axis` to the first reduced dimension.
Value matchTrailingMean(Value v, int64_t &axis) {
  auto red = v.getDefiningOp<ReduceOp>();
  if (!red || red.getKind() != ReduceKind::mean || !red.getKeepDims())
    return nullptr;
  int64_t rank = red.getInput().getType().getRank();
  ArrayRef<int64_t> axes = red.getAxes();
  if (axes.empty())
    return nullptr;
  for (size_t i = 0; i < axes.size(); ++i)
    if (axes[i] != rank - (int64_t)axes.size() + (int64_t)i)
      return nullptr;
  axis = axes.front();
  return red.getInput();
}

/// Matches `1 / sqrt(s)` written as rsqrt, reciprocal(sqrt) or div(1, sqrt).
Value matchInverseSqrt(Value v) {
  if (auto r = v.getDefiningOp<RsqrtOp>())
    return r.getInput();
  Value sqrtOf;
  if (auto rec = v.getDefiningOp<ReciprocalOp>())
    sqrtOf = rec.getInput();
  else if (auto div = v.getDefiningOp<DivOp>(); div && isConstant(div.getLhs(), 1.0))
    sqrtOf = div.getRhs();
  if (sqrtOf)
    if (auto s = sqrtOf.getDefiningOp<SqrtOp>())
      return s.getInput();
  return nullptr;
}

/// Matches `mean(x^2 over trailing dims) + eps`; returns x.
Value matchMeanSquarePlusEps(Value v, int64_t &axis, double &eps) {
  auto add = v.getDefiningOp<AddOp>();
  if (!add)
    return nullptr;
  for (auto [meanSide, epsSide] :
       {std::pair(add.getLhs(), add.getRhs()), std::pair(add.getRhs(), add.getLhs())}) {
    std::optional<double> e = constantValue(epsSide);
    if (!e)
      continue;
    if (Value sq = matchTrailingMean(meanSide, axis))
      if (Value x = matchSquare(sq)) {
        eps = *e;
        return x;
      }
  }
  return nullptr;
}

/// A constant with exactly the normalized shape, suitable as a norm scale.
bool isNormParam(Value v, RankedTensorType input, int64_t axis) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return false;
  auto ty = cast<RankedTensorType>(cst.getType());
  return ty.getElementType() == input.getElementType() &&
         ty.getShape() == input.getShape().drop_front(axis) &&
         ty.hasStaticShape();
}

Value createOnes(PatternRewriter &rewriter, Location loc,
                 RankedTensorType input, int64_t axis) {
  auto ty = RankedTensorType::get(input.getShape().drop_front(axis),
                                  input.getElementType());
  auto attr = DenseElementsAttr::get(
      ty, rewriter.getFloatAttr(input.getElementType(), 1.0));
  return ConstantOp::create(rewriter, loc, ty, attr);
}

/// If the only user of `v` multiplies it by a norm-shaped constant, returns
/// that user (and the constant in `scale`).
MulOp matchScaleUser(Value v, RankedTensorType input, int64_t axis,
                     Value &scale) {
  if (!v.hasOneUse())
    return nullptr;
  auto mul = dyn_cast<MulOp>(*v.getUsers().begin());
  if (!mul || mul.getType() != input)
    return nullptr;
  Value other = otherOperand(mul, v);
  if (!other || !isNormParam(other, input, axis))
    return nullptr;
  scale = other;
  return mul;
}

//===----------------------------------------------------------------------===//
// Normalizations
//===----------------------------------------------------------------------===//

/// x * rsqrt(mean(x^2) + eps) [* w]  or  x / sqrt(mean(x^2) + eps) [* w].
struct RaiseRMSNorm : public RewritePattern {
  RaiseRMSNorm(MLIRContext *ctx) : RewritePattern(MatchAnyOpTypeTag(), 1, ctx) {}

  LogicalResult matchAndRewrite(Operation *op,
                                PatternRewriter &rewriter) const override {
    Value x, core = op->getResult(0);
    int64_t axis = 0;
    double eps = 0;
    if (auto mul = dyn_cast<MulOp>(op)) {
      for (auto [a, b] : {std::pair(mul.getLhs(), mul.getRhs()),
                          std::pair(mul.getRhs(), mul.getLhs())}) {
        if (Value s = matchInverseSqrt(b))
          if (Value sx = matchMeanSquarePlusEps(s, axis, eps); sx && sx == a) {
            x = a;
            break;
          }
      }
    } else if (auto div = dyn_cast<DivOp>(op)) {
      if (auto sqrt = div.getRhs().getDefiningOp<SqrtOp>())
        if (Value sx = matchMeanSquarePlusEps(sqrt.getInput(), axis, eps);
            sx && sx == div.getLhs())
          x = div.getLhs();
    }
    if (!x)
      return failure();
    auto inType = cast<RankedTensorType>(x.getType());
    if (core.getType() != inType || !isa<FloatType>(inType.getElementType()))
      return failure();
    Value scale;
    Operation *root = op;
    if (MulOp user = matchScaleUser(core, inType, axis, scale))
      root = user;
    else
      scale = createOnes(rewriter, op->getLoc(), inType, axis);
    rewriter.setInsertionPoint(root);
    rewriter.replaceOpWithNewOp<RMSNormOp>(root, inType, x, scale,
                                           rewriter.getI64IntegerAttr(axis),
                                           rewriter.getF64FloatAttr(eps));
    return success();
  }
};

/// (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) [* gamma] [+ beta].
struct RaiseLayerNorm : public OpRewritePattern<DivOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(DivOp div,
                                PatternRewriter &rewriter) const override {
    auto centered = div.getLhs().getDefiningOp<SubOp>();
    auto sqrt = div.getRhs().getDefiningOp<SqrtOp>();
    if (!centered || !sqrt)
      return failure();
    int64_t meanAxis = 0, varAxis = 0;
    double eps = 0;
    Value x = matchTrailingMean(centered.getRhs(), meanAxis);
    if (!x || x != centered.getLhs())
      return failure();
    Value varOf = matchMeanSquarePlusEps(sqrt.getInput(), varAxis, eps);
    if (varOf != centered.getResult() || varAxis != meanAxis)
      return failure();
    auto inType = cast<RankedTensorType>(x.getType());
    if (div.getType() != inType)
      return failure();

    Value scale, bias;
    Operation *root = div;
    if (MulOp user = matchScaleUser(div.getResult(), inType, meanAxis, scale)) {
      root = user;
      if (user.getResult().hasOneUse())
        if (auto add = dyn_cast<AddOp>(*user.getResult().getUsers().begin())) {
          Value other = otherOperand(add, user.getResult());
          if (other && add.getType() == inType &&
              isNormParam(other, inType, meanAxis)) {
            bias = other;
            root = add;
          }
        }
    }
    if (!scale)
      scale = createOnes(rewriter, div.getLoc(), inType, meanAxis);
    rewriter.setInsertionPoint(root);
    rewriter.replaceOpWithNewOp<LayerNormOp>(
        root, inType, x, scale, bias, rewriter.getI64IntegerAttr(meanAxis),
        rewriter.getF64FloatAttr(eps));
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

/// Flattens a tree of single-use multiplications into its leaf factors.
void collectFactors(Value v, bool isRoot, SmallVectorImpl<Value> &leaves,
                    SmallVectorImpl<Operation *> &muls, int depth = 0) {
  auto mul = v.getDefiningOp<MulOp>();
  if (mul && depth < 4 && (isRoot || v.hasOneUse())) {
    muls.push_back(mul);
    collectFactors(mul.getLhs(), false, leaves, muls, depth + 1);
    collectFactors(mul.getRhs(), false, leaves, muls, depth + 1);
    return;
  }
  leaves.push_back(v);
}

/// Matches `1 + erf(x / sqrt(2))` or `1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))`
/// and returns x with the approximation kind.
Value matchGeluInner(Value v, GeluApproximation &approx) {
  auto add = v.getDefiningOp<AddOp>();
  if (!add)
    return nullptr;
  Value t = operandBesideConstant(add, 1.0);
  if (!t)
    return nullptr;
  if (auto erf = t.getDefiningOp<ErfOp>()) {
    Value arg = erf.getInput();
    approx = GeluApproximation::none;
    if (auto div = arg.getDefiningOp<DivOp>())
      if (isConstant(div.getRhs(), M_SQRT2))
        return div.getLhs();
    if (auto mul = arg.getDefiningOp<MulOp>())
      return operandBesideConstant(mul, M_SQRT1_2);
    return nullptr;
  }
  if (auto tanh = t.getDefiningOp<TanhOp>()) {
    approx = GeluApproximation::tanh;
    auto mul = tanh.getInput().getDefiningOp<MulOp>();
    if (!mul)
      return nullptr;
    Value poly = operandBesideConstant(mul, std::sqrt(2.0 / M_PI));
    auto sum = poly ? poly.getDefiningOp<AddOp>() : AddOp();
    if (!sum)
      return nullptr;
    for (auto [x, cubic] : {std::pair(sum.getLhs(), sum.getRhs()),
                            std::pair(sum.getRhs(), sum.getLhs())}) {
      auto cm = cubic.getDefiningOp<MulOp>();
      if (!cm)
        continue;
      Value cube = operandBesideConstant(cm, 0.044715);
      if (cube && matchCube(cube) == x)
        return x;
    }
  }
  return nullptr;
}

/// x * 0.5 * (1 + erf(x / sqrt(2))) and the tanh form, factors in any order.
struct RaiseGelu : public OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    SmallVector<Value> leaves;
    SmallVector<Operation *> muls;
    collectFactors(op.getResult(), /*isRoot=*/true, leaves, muls);
    if (leaves.size() != 3)
      return failure();
    // One leaf is 0.5, one is the `1 + f(x)` term, one is x itself.
    for (size_t half = 0; half < 3; ++half) {
      if (!isConstant(leaves[half], 0.5))
        continue;
      for (size_t inner = 0; inner < 3; ++inner) {
        if (inner == half)
          continue;
        size_t xi = 3 - half - inner;
        GeluApproximation approx;
        Value x = matchGeluInner(leaves[inner], approx);
        if (!x || x != leaves[xi] || x.getType() != op.getType())
          continue;
        rewriter.replaceOpWithNewOp<GeluOp>(op, op.getType(), x, approx);
        return success();
      }
    }
    return failure();
  }
};

/// x * sigmoid(x) -> silu(x).
struct RaiseSilu : public OpRewritePattern<MulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MulOp op,
                                PatternRewriter &rewriter) const override {
    for (auto [a, b] : {std::pair(op.getLhs(), op.getRhs()),
                        std::pair(op.getRhs(), op.getLhs())}) {
      auto sig = b.getDefiningOp<SigmoidOp>();
      if (sig && sig.getInput() == a && a.getType() == op.getType()) {
        rewriter.replaceOpWithNewOp<SiluOp>(op, op.getType(), a);
        return success();
      }
    }
    return failure();
  }
};

//===----------------------------------------------------------------------===//
// Linear layers
//===----------------------------------------------------------------------===//

/// A constant weight seen through what exporters put between an initializer
/// and the product: a widening `Cast` of a half-precision initializer to f32
/// (an f32 model with f16/bf16 weights: onnxconverter-common's float16
/// conversion with keep_io_types, mixed-precision exporters) and a 2-D
/// `Transpose` (a weight stored [N, K]), each at most once, in either order.
struct WeightSource {
  /// The initializer, in its own element type (f16/bf16 behind a cast).
  ConstantOp cst;
  /// The value is `cstᵀ`: `cst` is stored the other way round.
  bool transposed = false;
  /// The value is a widening cast of `cst`.
  bool widened = false;
};

std::optional<WeightSource> matchConstantWeight(Value v) {
  WeightSource src;
  while (true) {
    if (auto cst = v.getDefiningOp<ConstantOp>()) {
      src.cst = cst;
      break;
    }
    if (auto castOp = v.getDefiningOp<CastOp>(); castOp && !src.widened) {
      // Only exact widenings: the linear computes on the stored weight.
      Type from = castOp.getInput().getType().getElementType();
      Type to = castOp.getType().getElementType();
      if (!to.isF32() || !(from.isF16() || from.isBF16()))
        return std::nullopt;
      src.widened = true;
      v = castOp.getInput();
      continue;
    }
    if (auto tr = v.getDefiningOp<TransposeOp>(); tr && !src.transposed) {
      if (tr.getPermutation() != ArrayRef<int64_t>{1, 0})
        return std::nullopt;
      src.transposed = true;
      v = tr.getInput();
      continue;
    }
    return std::nullopt;
  }
  auto type = cast<RankedTensorType>(src.cst.getType());
  if (type.getRank() != 2 || !type.hasStaticShape())
    return std::nullopt;
  return src;
}

/// A bias operand: a constant, or a cast of one (the f16 bias of an f32
/// model with half-precision initializers).
bool isConstantBias(Value v) {
  if (auto castOp = v.getDefiningOp<CastOp>())
    v = castOp.getInput();
  return static_cast<bool>(v.getDefiningOp<ConstantOp>());
}

/// matmul(x, W) [+ b] with constant W [K, N] -> linear(x, transpose(W), b):
/// the weight [N, K] is a transpose of the constant as stored (a splat is
/// reshaped). W may be a transpose of a constant [N, K] (then the linear's
/// weight as it is) and a widening cast of an f16/bf16 constant (the
/// linear's weight is then the half-precision constant, see quench.linear).
struct RaiseLinear : public OpRewritePattern<MatMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(MatMulOp op,
                                PatternRewriter &rewriter) const override {
    auto xType = op.getLhs().getType();
    if (xType.getRank() < 2 || !isa<FloatType>(xType.getElementType()))
      return failure();
    std::optional<WeightSource> src = matchConstantWeight(op.getRhs());
    if (!src)
      return failure();
    ConstantOp wCst = src->cst;
    auto wType = cast<RankedTensorType>(wCst.getType());
    int64_t n = wType.getDimSize(src->transposed ? 0 : 1);

    Value bias;
    Operation *root = op;
    if (op.getResult().hasOneUse())
      if (auto add = dyn_cast<AddOp>(*op.getResult().getUsers().begin())) {
        Value other = otherOperand(add, op.getResult());
        if (other && isConstantBias(other) && add.getType() == op.getType()) {
          auto bType = cast<RankedTensorType>(other.getType());
          // Any bias that only varies along the last dimension: [N], [1, N]...
          if (bType.hasStaticShape() && bType.getNumElements() == n &&
              bType.getShape().back() == n) {
            bias = other;
            if (bType.getRank() != 1)
              bias = ReshapeOp::create(
                  rewriter, add.getLoc(),
                  RankedTensorType::get({n}, bType.getElementType()), bias,
                  Value());
            root = add;
          }
        }
      }

    rewriter.setInsertionPoint(root);
    Value w = wCst.getResult();
    if (!src->transposed) {
      auto tType =
          RankedTensorType::get({wType.getDimSize(1), wType.getDimSize(0)},
                                wType.getElementType());
      auto splat = dyn_cast<DenseElementsAttr>(wCst.getValue());
      if (splat && splat.isSplat())
        w = ConstantOp::create(rewriter, wCst.getLoc(), tType,
                               splat.reshape(tType));
      else
        // Not copied: the [K, N] constant stays as stored, behind a
        // transpose that the quantizer reads through and the lowering
        // indexes (docs/scaling.md, "Weight transposes").
        w = TransposeOp::create(rewriter, wCst.getLoc(), tType, w,
                                ArrayRef<int64_t>{1, 0});
    }
    // The layer is named after the MatMul (first in the fused location):
    // that is the node exporters and ONNX Runtime's tools name the layer by.
    Location loc = root == op.getOperation()
                       ? op.getLoc()
                       : rewriter.getFusedLoc({op.getLoc(), root->getLoc()});
    auto linear = LinearOp::create(rewriter, loc, op.getType(), op.getLhs(), w,
                                   bias);
    rewriter.replaceOp(root, linear.getResult());
    return success();
  }
};

/// linear(x, cast(W)) -> linear(x, W) for an f16/bf16 constant W of an f32
/// layer (ONNX `Gemm(x, Cast(W), transB=1)`, imported as a linear): the
/// weight stays in half precision, as quench.linear allows.
struct LinearHalfWeight : public OpRewritePattern<LinearOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(LinearOp op,
                                PatternRewriter &rewriter) const override {
    if (op.getWeight().getDefiningOp<ConstantOp>())
      return failure();
    std::optional<WeightSource> src = matchConstantWeight(op.getWeight());
    if (!src || !src->widened || src->transposed)
      return failure();
    rewriter.modifyOpInPlace(
        op, [&] { op.getWeightMutable().assign(src->cst.getResult()); });
    return success();
  }
};

//===----------------------------------------------------------------------===//
// Grouped-query attention without repeated keys/values
//===----------------------------------------------------------------------===//

/// `v` = reshape(expand(unsqueeze(K, axes = [2]))): K [B, kvh, T, d] with
/// each head repeated `rep` times into [B, kvh * rep, T, d] (Hugging Face's
/// repeat_kv). Returns K, or null.
Value matchRepeatedHeads(Value v, int64_t &rep) {
  auto reshape = v.getDefiningOp<ReshapeOp>();
  if (!reshape)
    return nullptr;
  auto expand = reshape.getInput().getDefiningOp<ExpandOp>();
  if (!expand)
    return nullptr;
  auto unsqueeze = expand.getInput().getDefiningOp<UnsqueezeOp>();
  if (!unsqueeze || unsqueeze.getAxes() != ArrayRef<int64_t>{2})
    return nullptr;
  Value k = unsqueeze.getInput();
  auto kt = dyn_cast<RankedTensorType>(k.getType());
  auto et = dyn_cast<RankedTensorType>(expand.getType());
  auto rt = dyn_cast<RankedTensorType>(reshape.getType());
  if (!kt || !et || !rt || kt.getRank() != 4 || et.getRank() != 5 ||
      rt.getRank() != 4)
    return nullptr;
  int64_t kvh = kt.getDimSize(1), d = kt.getDimSize(3);
  rep = et.getDimSize(2);
  if (ShapedType::isDynamic(kvh) || ShapedType::isDynamic(d) ||
      ShapedType::isDynamic(rep) || rep < 2 || et.getDimSize(1) != kvh ||
      et.getDimSize(4) != d || rt.getDimSize(1) != kvh * rep ||
      rt.getDimSize(3) != d)
    return nullptr;
  // The batch and sequence dims pass through unchanged.
  for (auto [a, b] : {std::pair{kt.getDimSize(0), et.getDimSize(0)},
                      std::pair{kt.getDimSize(2), et.getDimSize(3)},
                      std::pair{kt.getDimSize(0), rt.getDimSize(0)},
                      std::pair{kt.getDimSize(2), rt.getDimSize(2)}})
    if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
      return nullptr;
  return k;
}

/// Attention of grouped-query models multiplies by keys/values whose heads
/// were repeated (a copy of K and V, `rep` times, per layer and step):
///   matmul(X, transpose(repeat(K)))  (scores, X = Q [B, h, S, d])
///   matmul(X, repeat(V))             (context, X = P [B, h, S, T])
/// become the same product on K/V as they are, with the `rep` heads of a
/// group stacked as rows:
///   reshape(matmul(reshape(X → [B, kvh, rep*S, .]), transpose(K) | V)
///           → [B, h, S, N])
/// (X's heads h = g * rep + r are consecutive, so the row-major reshape is
/// exact).
struct GroupedQueryMatmul : public OpRewritePattern<MatMulOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(MatMulOp op,
                                PatternRewriter &rewriter) const override {
    Value x = op.getLhs(), rhs = op.getRhs();
    auto xt = dyn_cast<RankedTensorType>(x.getType());
    auto yt = dyn_cast<RankedTensorType>(op.getType());
    if (!xt || !yt || xt.getRank() != 4 || yt.getRank() != 4)
      return failure();
    TransposeOp transpose = rhs.getDefiningOp<TransposeOp>();
    bool scores = transpose &&
                  transpose.getPermutation() == ArrayRef<int64_t>{0, 1, 3, 2};
    int64_t rep = 0;
    Value k = matchRepeatedHeads(scores ? transpose.getInput() : rhs, rep);
    if (!k)
      return failure();
    auto kt = cast<RankedTensorType>(k.getType());
    int64_t kvh = kt.getDimSize(1);
    if (xt.getDimSize(1) != kvh * rep)
      return failure();
    Location loc = op.getLoc();
    Type i64 = rewriter.getI64Type();
    auto vec = [&](int64_t n) { return RankedTensorType::get({n}, i64); };
    auto constant = [&](ArrayRef<int64_t> values) -> Value {
      auto t = vec(values.size());
      return ConstantOp::create(rewriter, loc, t,
                                DenseElementsAttr::get(t, values));
    };
    auto dimOf = [&](Value shape, int64_t d) -> Value {
      return SliceOp::create(rewriter, loc, vec(1), shape,
                             rewriter.getDenseI64ArrayAttr({d}),
                             rewriter.getDenseI64ArrayAttr({d + 1}),
                             rewriter.getDenseI64ArrayAttr({1}));
    };
    auto concat = [&](ArrayRef<Value> parts) -> Value {
      return ConcatOp::create(rewriter, loc, vec(parts.size()), parts, 0);
    };
    auto mulDyn = [](int64_t a, int64_t b) {
      return ShapedType::isDynamic(a) || ShapedType::isDynamic(b)
                 ? ShapedType::kDynamic
                 : a * b;
    };
    Value xShape = ShapeOfOp::create(rewriter, loc, vec(4), x);
    Value batch = dimOf(xShape, 0), seq = dimOf(xShape, 2),
          last = dimOf(xShape, 3);
    // X → [B, kvh, rep * S, last].
    Value rows = MulOp::create(rewriter, loc, vec(1), seq, constant({rep}));
    auto xgType = RankedTensorType::get(
        {xt.getDimSize(0), kvh, mulDyn(rep, xt.getDimSize(2)),
         xt.getDimSize(3)},
        xt.getElementType());
    Value xg = ReshapeOp::create(rewriter, loc, xgType, x,
                                 concat({batch, constant({kvh}), rows, last}));
    Value other = k;
    if (scores)
      other = TransposeOp::create(
          rewriter, loc,
          RankedTensorType::get({kt.getDimSize(0), kvh, kt.getDimSize(3),
                                 kt.getDimSize(2)},
                                kt.getElementType()),
          k, rewriter.getDenseI64ArrayAttr({0, 1, 3, 2}));
    auto ot = cast<RankedTensorType>(other.getType());
    auto ygType = RankedTensorType::get(
        {xgType.getDimSize(0), kvh, xgType.getDimSize(2), ot.getDimSize(3)},
        yt.getElementType());
    Value yg = MatMulOp::create(rewriter, loc, ygType, xg, other);
    Value n = scores ? dimOf(ShapeOfOp::create(rewriter, loc, vec(4), k), 2)
                     : constant({kt.getDimSize(3)});
    rewriter.replaceOpWithNewOp<ReshapeOp>(
        op, yt, yg, concat({batch, constant({kvh * rep}), seq, n}));
    return success();
  }
};

struct QuenchRaiseOpsPass
    : public quench::impl::QuenchRaiseOpsBase<QuenchRaiseOpsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populateRaiseOpsPatterns(patterns);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace

void quench::populateRaiseOpsPatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  // GELU before SiLU/RMSNorm: its factor trees contain plain multiplications.
  patterns.add<RaiseGelu>(ctx, /*benefit=*/3);
  patterns.add<RaiseLayerNorm, RaiseSilu, RaiseLinear, LinearHalfWeight>(ctx);
  patterns.add<RaiseRMSNorm>(ctx);
  patterns.add<GroupedQueryMatmul>(ctx);
}
