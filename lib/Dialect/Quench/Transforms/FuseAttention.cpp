//===- FuseAttention.cpp - exported attention chains to quench.attention --===//
//
// Implements `quench-fuse-attention` (Passes.td has the contract). Exporters
// write one attention core as a chain of primitive ops,
//
//   P = softmax(f(matmul(Q, transpose(K))), axis = -1),  O = matmul(P, V)
//
// where f scales the scores by constants and adds masks (an additive
// tensor, or a `where` that replaces masked scores by a very negative
// fill). The pass matches the chain backwards from each softmax and
// replaces it with one `quench.attention`, so that a backend computes it
// without materializing the scores, and reads a KV cache in its stored
// element type: the conversions that quench-kv-cache inserts on reads (an
// f16 cache widened to f32, an int8 cache dequantized with one scale per
// head and position) become the attention's key/value (and scales).
//
// Only what is exactly the op's semantics is rewritten: anything else
// keeps the chain as exported (never an error). docs/generation.md
// ("Attention reads the cache as stored") lists what is fused and why.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Support/LLVM.h"

#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SetVector.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFUSEATTENTION
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;
using namespace mlir;

namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;

/// A `where` fill at or below this (or -inf) is a "minus infinity" mask:
/// adding it to any finite score gives the fill again (up to rounding of
/// scores far below 1e30), so `where(c, s, fill) == s + where(c, 0, fill)`.
constexpr double kMinusInfinityFill = -1e30;

RankedTensorType rankedType(Value v) {
  return dyn_cast<RankedTensorType>(v.getType());
}

//===----------------------------------------------------------------------===//
// Run-time dimensions
//===----------------------------------------------------------------------===//

/// A dimension's run-time extent, named as far as the IR tells: a static
/// size, or an opaque root (dimension `index` of the tensor `root`, or
/// element `index` of the shape tensor `root`). Two dims with the same
/// name are equal at run time.
struct Dim {
  int64_t size = kDyn;
  Value root;
  int64_t index = -1;
  bool element = false;

  bool operator==(const Dim &o) const {
    if (size != kDyn || o.size != kDyn)
      return size == o.size;
    return root && root == o.root && index == o.index && element == o.element;
  }
};

/// The value of a constant holding one distinct value (a splat), if `v` is
/// one.
std::optional<double> uniformConstant(Value v) {
  auto c = v.getDefiningOp<ConstantOp>();
  if (!c)
    return std::nullopt;
  return getUniformValue(c.getValue());
}

Dim resolveElement(Value shape, int64_t i, SmallVectorImpl<Dim> &trail);

/// Dimension `d` of `v`, followed back through ops that pass it on:
/// reshapes (their shape operand), matmuls, transposes, casts, slices,
/// projections, norms and elementwise ops. Every name met on the way (all
/// equal to the dim) is appended to `trail`.
Dim resolveDim(Value v, int64_t d, SmallVectorImpl<Dim> &trail) {
  auto type = rankedType(v);
  if (!type || d < 0 || d >= type.getRank())
    return Dim{kDyn, v, d, false};
  if (!type.isDynamicDim(d))
    return Dim{type.getDimSize(d)};
  trail.push_back(Dim{kDyn, v, d, false});
  Operation *op = v.getDefiningOp();
  if (!op || trail.size() > 32)
    return trail.back();
  if (auto r = dyn_cast<ReshapeOp>(op); r && r.getShape())
    return resolveElement(r.getShape(), d, trail);
  if (auto mm = dyn_cast<MatMulOp>(op)) {
    auto lt = rankedType(mm.getLhs()), rt = rankedType(mm.getRhs());
    if (lt && rt && lt.getRank() == type.getRank() &&
        rt.getRank() == type.getRank()) {
      int64_t rank = type.getRank();
      if (d == rank - 1)
        return resolveDim(mm.getRhs(), d, trail);
      // Rows, and batch dims (the lhs's unless it broadcasts).
      if (d == rank - 2 || lt.getDimSize(d) != 1)
        return resolveDim(mm.getLhs(), d, trail);
      return resolveDim(mm.getRhs(), d, trail);
    }
  }
  if (auto t = dyn_cast<TransposeOp>(op))
    return resolveDim(t.getInput(), t.getPermutation()[d], trail);
  // The pieces of a split keep the other dims.
  if (auto split = dyn_cast<SplitOp>(op);
      split && static_cast<int64_t>(split.getAxis()) != d)
    return resolveDim(split.getInput(), d, trail);
  // Projections and norms keep the leading dims of their input.
  if (isa<LinearOp, RMSNormOp, LayerNormOp>(op) &&
      (d < type.getRank() - 1 || !isa<LinearOp>(op)))
    return resolveDim(op->getOperand(0), d, trail);
  if (auto s = dyn_cast<tensor::ExtractSliceOp>(op)) {
    // The cache views of quench-kv-cache: a size operand names the dim.
    if (s.getSourceType().getRank() == type.getRank())
      if (Value size = dyn_cast_if_present<Value>(s.getMixedSizes()[d])) {
        trail.push_back(Dim{kDyn, size, -1, true});
        return trail.back();
      }
  }
  if (isa<tensor::CastOp, quench::CastOp, SoftmaxOp>(op) ||
      op->hasTrait<OpTrait::SameOperandsAndResultType>())
    return resolveDim(op->getOperand(0), d, trail);
  if (isa<AddOp, SubOp, MulOp, DivOp, WhereOp>(op))
    for (Value operand : op->getOperands())
      if (operand.getType() == v.getType())
        return resolveDim(operand, d, trail);
  return trail.back();
}

/// Element `i` of the 1-D i64 shape tensor `shape`: constants, concats and
/// slices of `shape_of(x)` (which give x's dims).
Dim resolveElement(Value shape, int64_t i, SmallVectorImpl<Dim> &trail) {
  Operation *op = shape.getDefiningOp();
  Dim opaque{kDyn, shape, i, true};
  trail.push_back(opaque);
  if (!op || trail.size() > 32)
    return opaque;
  if (auto c = dyn_cast<ConstantOp>(op)) {
    auto values = dyn_cast<DenseIntElementsAttr>(c.getValue());
    if (values && i < values.getNumElements()) {
      int64_t n = values.getValues<APInt>()[i].getSExtValue();
      return n >= 0 ? Dim{n} : opaque;
    }
    return opaque;
  }
  if (auto c = dyn_cast<ConcatOp>(op)) {
    int64_t offset = 0;
    for (Value part : c.getInputs()) {
      auto pt = rankedType(part);
      if (!pt || pt.getRank() != 1 || pt.isDynamicDim(0))
        return opaque;
      if (i < offset + pt.getDimSize(0))
        return resolveElement(part, i - offset, trail);
      offset += pt.getDimSize(0);
    }
    return opaque;
  }
  if (auto s = dyn_cast<SliceOp>(op)) {
    if (s.getStarts().size() == 1 && s.getSteps()[0] == 1 &&
        s.getStarts()[0] >= 0)
      return resolveElement(s.getInput(), s.getStarts()[0] + i, trail);
    return opaque;
  }
  if (auto s = dyn_cast<ShapeOfOp>(op))
    return resolveDim(s.getInput(), i, trail);
  // A scalar or vector reshaped to a vector keeps its elements.
  if (auto r = dyn_cast<ReshapeOp>(op))
    if (auto in = rankedType(r.getInput()); in && in.getRank() <= 1)
      return resolveElement(r.getInput(), i, trail);
  // One element picked by a constant index: gather(shape, k) (0-d k).
  if (auto g = dyn_cast<GatherOp>(op)) {
    auto data = rankedType(g.getData());
    std::optional<double> k = uniformConstant(g.getIndices());
    if (data && data.getRank() == 1 && g.getAxis() == 0 && i == 0 &&
        rankedType(g.getIndices()).getRank() == 0 && k && *k >= 0)
      return resolveElement(g.getData(), static_cast<int64_t>(*k), trail);
  }
  return opaque;
}

/// Whether dim `da` of `a` and dim `db` of `b` are the same at run time:
/// equal static sizes, or a name common to their trails (two ways of
/// reaching one quantity may meet before they end).
bool sameDim(Value a, int64_t da, Value b, int64_t db) {
  SmallVector<Dim> trailA, trailB;
  Dim x = resolveDim(a, da, trailA), y = resolveDim(b, db, trailB);
  if (x.size != kDyn || y.size != kDyn)
    return x.size == y.size;
  return llvm::any_of(trailA, [&](const Dim &n) {
    return llvm::is_contained(trailB, n);
  });
}

//===----------------------------------------------------------------------===//
// Matching
//===----------------------------------------------------------------------===//

/// `v` = `x * c` or `x / c` (also `c * x`) for a uniform constant c that
/// does not broadcast x: returns x and multiplies `factor` by c (or 1/c).
Value stripConstantFactor(Value v, double &factor) {
  Operation *op = v.getDefiningOp();
  if (!op || !isa<MulOp, DivOp>(op))
    return nullptr;
  for (unsigned i = 0; i < 2; ++i) {
    Value x = op->getOperand(i);
    if (x.getType() != v.getType())
      continue;
    std::optional<double> c = uniformConstant(op->getOperand(1 - i));
    if (!c || *c == 0.0 || (isa<DivOp>(op) && i == 1))
      continue;
    factor *= isa<DivOp>(op) ? 1.0 / *c : *c;
    return x;
  }
  return nullptr;
}

/// `v` with every scaling by a uniform constant stripped (their product
/// multiplied into `factor`).
Value stripConstantFactors(Value v, double &factor) {
  while (Value x = stripConstantFactor(v, factor))
    v = x;
  return v;
}

/// One additive term of the scores: `factor * value`, or for a mask
/// `where(cond, 0, fill * factor)` (`where(cond, fill * factor, 0)` when
/// `fillWhenTrue`).
struct BiasTerm {
  Value value;
  double factor = 1.0;
  Value cond;
  double fill = 0.0;
  bool fillWhenTrue = false;
};

/// The scores product: scores [B, H, S, T] = Q·Kᵀ (`rep` = 1), or, for
/// grouped-query attention as quench-raise-ops writes it, the rows of the
/// `rep` query heads of a kv head stacked:
///   scores = reshape(matmul(A [B, Hk, rep·S, D], Kᵀ) → [B, H, S, T]).
struct ScoresMatch {
  Value rows;             // Q [B, H, S, D], or A [B, Hk, rep·S, D]
  Value key;              // K [B, Hk, T, D], or X with K = transpose(X, keyPerm)
  SmallVector<int64_t, 4> keyPerm; // empty: K is `key`
  int64_t rep = 1;
  ReshapeOp split;        // the reshape to [B, H, S, T] (grouped only)
  double factor = 1.0;    // constants scaling Q, Kᵀ or K
  SmallVector<Operation *> ops;
};

/// `t` = Kᵀ = transpose(K, [0, 1, 3, 2]) of a rank-4 K (constant factors
/// on the transpose or on K multiplied into `factor`): returns K. When the
/// exporter's transposes were folded into one (Kᵀ = transpose(X, p) of X
/// [B, T, H, D], p = [0, 2, 3, 1]), returns X and sets `perm` to the
/// permutation that gives K from X (p with its last two entries swapped).
Value matchTransposedKey(Value t, double &factor,
                         SmallVectorImpl<int64_t> &perm) {
  auto transpose = stripConstantFactors(t, factor).getDefiningOp<TransposeOp>();
  if (!transpose || transpose.getPermutation().size() != 4 ||
      transpose.getPermutation()[0] != 0)
    return nullptr;
  ArrayRef<int64_t> p = transpose.getPermutation();
  if (p == ArrayRef<int64_t>{0, 1, 3, 2})
    return stripConstantFactors(transpose.getInput(), factor);
  perm.assign({p[0], p[1], p[3], p[2]});
  return transpose.getInput();
}

/// The type of K (see ScoresMatch).
RankedTensorType keyTypeOf(Value key, ArrayRef<int64_t> perm) {
  auto t = key ? rankedType(key) : RankedTensorType();
  if (!t || perm.empty())
    return t;
  SmallVector<int64_t> shape;
  for (int64_t d : perm)
    shape.push_back(t.getDimSize(d));
  return t.clone(shape);
}

/// Whether `r` splits dimension 1 of its rank-4 input (of `inHeads`) into
/// `outHeads` (one of the two a multiple of the other) with dims 0 and 3
/// unchanged: the row-major reshape between [B, Hk, rep·R, N] and
/// [B, Hk·rep, R, N].
bool isHeadRowReshape(ReshapeOp r, int64_t outHeads) {
  auto in = rankedType(r.getInput()), out = rankedType(r.getResult());
  if (!in || !out || in.getRank() != 4 || out.getRank() != 4 ||
      out.getDimSize(1) != outHeads)
    return false;
  return sameDim(r.getResult(), 0, r.getInput(), 0) &&
         sameDim(r.getResult(), 3, r.getInput(), 3);
}

/// The scores product `v` (see ScoresMatch), or std::nullopt.
std::optional<ScoresMatch> matchScores(Value v) {
  ScoresMatch m;
  auto scoresType = rankedType(v);
  if (!scoresType || scoresType.getRank() != 4 || scoresType.isDynamicDim(1))
    return std::nullopt;
  int64_t heads = scoresType.getDimSize(1);
  Value product = v;
  if (auto split = v.getDefiningOp<ReshapeOp>()) {
    m.split = split;
    product = split.getInput();
    if (!product.hasOneUse())
      return std::nullopt;
  }
  auto mm = product.getDefiningOp<MatMulOp>();
  if (!mm)
    return std::nullopt;
  m.key = matchTransposedKey(mm.getRhs(), m.factor, m.keyPerm);
  m.rows = stripConstantFactors(mm.getLhs(), m.factor);
  auto rowsType = rankedType(m.rows);
  auto keyType = keyTypeOf(m.key, m.keyPerm);
  if (!keyType || !rowsType || rowsType.getRank() != 4 ||
      keyType.getRank() != 4 || keyType.isDynamicDim(1) ||
      rowsType.isDynamicDim(1) || rowsType.isDynamicDim(3) ||
      keyType.getDimSize(3) != rowsType.getDimSize(3))
    return std::nullopt;
  int64_t kvHeads = keyType.getDimSize(1);
  if (kvHeads <= 0 || heads % kvHeads != 0)
    return std::nullopt;
  if (m.split) {
    // [B, Hk, rep·S, T] → [B, H, S, T] with the same B and T.
    m.rep = heads / kvHeads;
    if (rowsType.getDimSize(1) != kvHeads || !isHeadRowReshape(m.split, heads))
      return std::nullopt;
    m.ops.push_back(m.split);
  } else if (rowsType.getDimSize(1) != heads ||
             (kvHeads != heads && kvHeads != 1)) {
    return std::nullopt;
  }
  // The batch is the query's for the key too (no broadcasting).
  if (!sameDim(m.rows, 0, m.key, m.keyPerm.empty() ? 0 : m.keyPerm[0]))
    return std::nullopt;
  m.ops.push_back(mm);
  return m;
}

/// The chain from the scores to the softmax input, as
///   softmax input = factor · scores + Σ bias terms.
struct ChainMatch {
  ScoresMatch scores;
  double factor = 1.0;
  SmallVector<BiasTerm> terms;
  SmallVector<Operation *> ops;
};

/// Matches `v` = factor · (scores chain) + terms (`factor` and `terms`
/// describe what the ops after `v` do to it). Each intermediate has one
/// use. Tries either operand of an `add` as the scores side.
bool matchChain(Value v, double factor, ChainMatch &m, int depth = 0) {
  if (depth > 32)
    return false;
  if (std::optional<ScoresMatch> s = matchScores(v)) {
    m.scores = std::move(*s);
    m.factor = factor;
    return true;
  }
  Operation *op = v.getDefiningOp();
  if (!op || !isa<AddOp, SubOp, MulOp, DivOp, WhereOp>(op))
    return false;
  size_t termsBefore = m.terms.size(), opsBefore = m.ops.size();
  // `x` continues the chain, scaled by `f`, with an extra term if `term`.
  auto tryOperand = [&](Value x, double f,
                        std::optional<BiasTerm> term) -> bool {
    if (x.getType() != v.getType() || !x.hasOneUse())
      return false;
    m.ops.push_back(op);
    if (term)
      m.terms.push_back(*term);
    if (matchChain(x, f, m, depth + 1))
      return true;
    m.terms.resize(termsBefore);
    m.ops.resize(opsBefore);
    return false;
  };
  Value a = op->getOperand(0), b = op->getOperand(1);
  if (isa<MulOp, DivOp>(op)) {
    double f = factor;
    Value x = stripConstantFactor(v, f);
    return x && tryOperand(x, f, std::nullopt);
  }
  if (isa<AddOp>(op))
    return tryOperand(a, factor, BiasTerm{b, factor}) ||
           tryOperand(b, factor, BiasTerm{a, factor});
  if (isa<SubOp>(op))
    return tryOperand(a, factor, BiasTerm{b, -factor}) ||
           tryOperand(b, -factor, BiasTerm{a, factor});
  // where(cond, x, fill) = x + where(cond, 0, fill) for a "minus infinity"
  // fill only.
  auto where = cast<WhereOp>(op);
  for (bool scoresWhenTrue : {true, false}) {
    Value x = scoresWhenTrue ? where.getLhs() : where.getRhs();
    std::optional<double> fill =
        uniformConstant(scoresWhenTrue ? where.getRhs() : where.getLhs());
    if (!fill || !(*fill <= kMinusInfinityFill))
      continue;
    BiasTerm mask;
    mask.cond = where.getCondition();
    mask.factor = factor;
    mask.fill = *fill;
    mask.fillWhenTrue = !scoresWhenTrue;
    if (tryOperand(x, factor, mask))
      return true;
  }
  return false;
}

/// A key or value as the cache stores it: `data` (f16/bf16, i8 codes, or
/// the f32 tensor itself) and for i8 the f32 `scale` [B, Hk, T, 1]; `ops`
/// are the read conversions it replaces.
struct StoredMatch {
  Value data;
  Value scale;
  SmallVector<Operation *> ops;
};

/// Looks through the conversions of a cache read: a widening cast from
/// f16/bf16, or `cast(codes : i8) * scale` with one scale per head and
/// position (quench-kv-cache's int8 cache), optionally behind a
/// tensor.cast. `v` itself when neither applies.
StoredMatch matchStored(Value v) {
  StoredMatch m{v, nullptr, {}};
  Value x = v;
  auto typeCast = x.getDefiningOp<tensor::CastOp>();
  if (typeCast) {
    x = typeCast.getSource();
    m.ops.push_back(typeCast);
  }
  auto xt = rankedType(x);
  if (!xt || !xt.getElementType().isF32())
    return StoredMatch{v, nullptr, {}};
  auto widenedFrom = [](Value c) -> Value {
    auto cast = c.getDefiningOp<quench::CastOp>();
    return cast ? cast.getInput() : nullptr;
  };
  // f16 / bf16.
  if (Value src = widenedFrom(x)) {
    Type et = rankedType(src).getElementType();
    if (et.isF16() || et.isBF16()) {
      m.ops.push_back(x.getDefiningOp());
      m.data = src;
      return m;
    }
  }
  // i8 codes times [B, Hk, T, 1] f32 scales.
  if (auto mul = x.getDefiningOp<MulOp>()) {
    for (unsigned i = 0; i < 2; ++i) {
      Value codesF32 = mul->getOperand(i), scale = mul->getOperand(1 - i);
      Value codes = widenedFrom(codesF32);
      auto st = rankedType(scale);
      if (!codes || codesF32.getType() != x.getType() ||
          !rankedType(codes).getElementType().isSignlessInteger(8) || !st ||
          !st.getElementType().isF32() || st.getRank() != 4 ||
          st.getDimSize(3) != 1)
        continue;
      if (!sameDim(scale, 0, codes, 0) || !sameDim(scale, 1, codes, 1) ||
          !sameDim(scale, 2, codes, 2))
        continue;
      m.ops.push_back(mul);
      m.ops.push_back(codesF32.getDefiningOp());
      m.data = codes;
      m.scale = scale;
      return m;
    }
  }
  return StoredMatch{v, nullptr, {}};
}

/// The product with the values: `matmul(P, V)` (`rep` = 1), or
/// `reshape(matmul(reshape(P → [B, Hk, rep·S, T]), V) → [B, H, S, Dv])`.
struct ValuesMatch {
  Value value;
  Operation *last = nullptr; // its result is the attention's
  SmallVector<Operation *> ops;
};

/// The values product reading the softmax result P. Reads of P's shape
/// (the exporter's reshape targets) are allowed besides: they are rebuilt
/// from the query and key.
std::optional<ValuesMatch> matchValues(SoftmaxOp softmax, int64_t rep,
                                       int64_t heads) {
  Value p = softmax.getResult();
  Operation *reader = nullptr;
  for (Operation *u : p.getUsers())
    if (!isa<ShapeOfOp>(u)) {
      if (reader)
        return std::nullopt;
      reader = u;
    }
  ValuesMatch m;
  if (!reader)
    return std::nullopt;
  Value lhs = p;
  ReshapeOp group;
  if (rep > 1) {
    group = dyn_cast<ReshapeOp>(reader);
    if (!group || !isHeadRowReshape(group, heads / rep) ||
        !group.getResult().hasOneUse())
      return std::nullopt;
    lhs = group.getResult();
    reader = *lhs.getUsers().begin();
    m.ops.push_back(group);
  }
  auto mm = dyn_cast<MatMulOp>(reader);
  if (!mm || mm.getLhs() != lhs || mm.getRhs() == lhs)
    return std::nullopt;
  m.value = mm.getRhs();
  m.ops.push_back(mm);
  m.last = mm;
  if (rep > 1) {
    // [B, Hk, rep·S, Dv] → [B, H, S, Dv].
    if (!mm.getResult().hasOneUse())
      return std::nullopt;
    auto ungroup = dyn_cast<ReshapeOp>(*mm->getUsers().begin());
    if (!ungroup || !isHeadRowReshape(ungroup, heads))
      return std::nullopt;
    m.ops.push_back(ungroup);
    m.last = ungroup;
  }
  return m;
}

//===----------------------------------------------------------------------===//
// Rewriting
//===----------------------------------------------------------------------===//

/// `v` with leading unit dims up to rank 4.
Value toRank4(OpBuilder &b, Location loc, Value v) {
  auto t = rankedType(v);
  int64_t missing = 4 - t.getRank();
  if (missing == 0)
    return v;
  SmallVector<int64_t> axes, shape(missing, 1);
  for (int64_t i = 0; i < missing; ++i)
    axes.push_back(i);
  llvm::append_range(shape, t.getShape());
  return UnsqueezeOp::create(b, loc, t.clone(shape), v,
                             b.getDenseI64ArrayAttr(axes));
}

/// The sum of the bias terms on their own (broadcast) shapes, rank 4; null
/// without terms.
Value buildBias(OpBuilder &b, Location loc, ArrayRef<BiasTerm> terms,
                Type elementType) {
  auto scalar = [&](double x) -> Value {
    auto t = RankedTensorType::get({}, elementType);
    return ConstantOp::create(
        b, loc, t, DenseElementsAttr::get(t, b.getFloatAttr(elementType, x)));
  };
  Value sum;
  for (const BiasTerm &term : terms) {
    Value v;
    if (term.cond) {
      auto ct = rankedType(term.cond);
      Value zero = scalar(0.0), fill = scalar(term.fill * term.factor);
      v = WhereOp::create(b, loc, ct.clone(elementType), term.cond,
                          term.fillWhenTrue ? fill : zero,
                          term.fillWhenTrue ? zero : fill);
    } else {
      v = term.value;
      if (term.factor != 1.0)
        v = MulOp::create(b, loc, v.getType(), v, scalar(term.factor));
    }
    v = toRank4(b, loc, v);
    if (!sum) {
      sum = v;
      continue;
    }
    // The terms were all added to the scores: they broadcast together.
    SmallVector<int64_t> shape;
    (void)broadcastShapes(rankedType(sum).getShape(), rankedType(v).getShape(),
                          shape);
    sum = AddOp::create(b, loc, rankedType(sum).clone(shape), sum, v);
  }
  return sum;
}

/// Erases the ops of `ops` that are now unused, and then the producers of
/// their operands that become unused in turn (the shape computations of
/// the reshapes).
void eraseDead(ArrayRef<Operation *> ops,
               llvm::SmallPtrSetImpl<Operation *> &erased) {
  llvm::SetVector<Operation *> work(ops.begin(), ops.end());
  while (!work.empty()) {
    Operation *op = work.pop_back_val();
    if (!isOpTriviallyDead(op))
      continue;
    for (Value operand : op->getOperands())
      if (Operation *def = operand.getDefiningOp())
        work.insert(def);
    erased.insert(op);
    op->erase();
  }
}

/// Fuses the attention core around `softmax`; false (and nothing changed)
/// when it does not match. Ops it erases are added to `erased`.
bool fuseAttention(SoftmaxOp softmax,
                   llvm::SmallPtrSetImpl<Operation *> &erased) {
  auto type = rankedType(softmax.getResult());
  // (The verifier keeps the axis in [0, rank).)
  if (!type || type.getRank() != 4 || softmax.getAxis() != 3 ||
      !type.getElementType().isF32() || type.isDynamicDim(1))
    return false;
  int64_t heads = type.getDimSize(1);
  ChainMatch chain;
  if (!softmax.getInput().hasOneUse() ||
      !matchChain(softmax.getInput(), 1.0, chain))
    return false;
  ScoresMatch &scores = chain.scores;
  std::optional<ValuesMatch> values = matchValues(softmax, scores.rep, heads);
  if (!values)
    return false;
  auto keyType = keyTypeOf(scores.key, scores.keyPerm);
  auto valueType = rankedType(values->value);
  auto resultType = rankedType(values->last->getResult(0));
  auto rowsType = rankedType(scores.rows);
  if (!valueType || valueType.getRank() != 4 || valueType.isDynamicDim(3) ||
      valueType.getDimSize(1) != keyType.getDimSize(1) ||
      !sameDim(values->value, 0, scores.rows, 0) || !resultType ||
      !rowsType.getElementType().isF32() ||
      resultType.getElementType() != rowsType.getElementType())
    return false;
  // Every op of the core must sit in the softmax's block, so that the
  // fused op (at the last one) sees all operands.
  Block *block = softmax->getBlock();
  for (Operation *op : llvm::concat<Operation *const>(
           chain.ops, scores.ops, values->ops))
    if (op->getBlock() != block)
      return false;

  // (A cache is read as K itself, never through a transpose.)
  StoredMatch key = scores.keyPerm.empty() ? matchStored(scores.key)
                                           : StoredMatch{scores.key, {}, {}};
  StoredMatch value = matchStored(values->value);
  OpBuilder b(values->last);
  Location loc = softmax.getLoc();
  // The new ops go right before the last op of the core.
  Operation *before = values->last->getPrevNode();
  auto eraseCreated = [&] {
    while (before->getNextNode() != values->last)
      values->last->getPrevNode()->erase();
  };
  Type i64 = b.getI64Type();
  auto sliceOf = [&](Value shape, int64_t from, int64_t to) -> Value {
    return SliceOp::create(b, loc, RankedTensorType::get({to - from}, i64),
                           shape, b.getDenseI64ArrayAttr({from}),
                           b.getDenseI64ArrayAttr({to}),
                           b.getDenseI64ArrayAttr({1}));
  };
  auto concat = [&](ValueRange parts, int64_t n) -> Value {
    return ConcatOp::create(b, loc, RankedTensorType::get({n}, i64), parts, 0);
  };

  // The query: Q, or the grouped rows [B, Hk, rep·S, D] → [B, H, S, D]
  // with the extents of the scores' split [B, H, S, T].
  Value query = scores.rows;
  if (scores.rep > 1) {
    auto splitType = rankedType(scores.split.getResult());
    auto queryType = rowsType.clone({splitType.getDimSize(0), heads,
                                     splitType.getDimSize(2),
                                     rowsType.getDimSize(3)});
    Value shape;
    if (Value splitShape = scores.split.getShape()) {
      auto dt = RankedTensorType::get({1}, i64);
      Value d = ConstantOp::create(
          b, loc, dt,
          DenseElementsAttr::get(dt, ArrayRef<int64_t>{rowsType.getDimSize(3)}));
      shape = concat({sliceOf(splitShape, 0, 3), d}, 4);
    } else if (!queryType.hasStaticShape()) {
      return false;
    }
    query = ReshapeOp::create(b, loc, queryType, scores.rows, shape);
  }
  if (!scores.keyPerm.empty())
    key.data = TransposeOp::create(b, loc, keyType, scores.key,
                                   b.getDenseI64ArrayAttr(scores.keyPerm));
  Value bias = buildBias(b, loc, chain.terms, rowsType.getElementType());
  auto attention = AttentionOp::create(
      b, loc, resultType, query, key.data, value.data, key.scale, value.scale,
      bias, b.getF64FloatAttr(chain.factor * scores.factor));
  {
    // Not expected after the checks above; should it happen, the chain
    // stays as exported, without a diagnostic.
    ScopedDiagnosticHandler quiet(attention.getContext(),
                                  [](Diagnostic &) { return success(); });
    if (failed(mlir::verify(attention, /*verifyRecursively=*/false))) {
      eraseCreated();
      return false;
    }
  }
  values->last->getResult(0).replaceAllUsesWith(attention.getResult());
  // Shape reads of the converted keys/values (the exporter's reshape
  // targets) read the stored tensor, of the same shape, so that the
  // conversion dies.
  for (const StoredMatch *stored : {&key, &value})
    for (Operation *op : stored->ops)
      for (Operation *u : llvm::make_early_inc_range(op->getUsers()))
        if (auto shapeOf = dyn_cast<ShapeOfOp>(u))
          shapeOf.getInputMutable().assign(stored->data);

  // What still reads the probabilities' shape gets it from the result
  // ([B, H, S]) and the key (T).
  SmallVector<Operation *> dead(chain.ops);
  llvm::append_range(dead, scores.ops);
  llvm::append_range(dead, key.ops);
  llvm::append_range(dead, value.ops);
  llvm::append_range(dead, values->ops);
  dead.push_back(softmax);
  for (Operation *u : llvm::make_early_inc_range(softmax->getUsers())) {
    // P [B, H, S, T]: B, H, S of the scores, T of the key, from values
    // defined before the softmax.
    auto shapeOf = dyn_cast<ShapeOfOp>(u);
    if (!shapeOf)
      continue;
    b.setInsertionPoint(shapeOf);
    Value bhs;
    if (scores.rep == 1)
      bhs = sliceOf(ShapeOfOp::create(b, loc, shapeOf.getType(), scores.rows),
                    0, 3);
    else if (Value splitShape = scores.split.getShape())
      bhs = sliceOf(splitShape, 0, 3);
    else
      bhs = sliceOf(ShapeOfOp::create(b, loc, shapeOf.getType(),
                                      scores.split.getResult()),
                    0, 3);
    int64_t tDim = scores.keyPerm.empty() ? 2 : scores.keyPerm[2];
    Value t = sliceOf(ShapeOfOp::create(b, loc, shapeOf.getType(),
                                        scores.keyPerm.empty() ? key.data
                                                               : scores.key),
                      tDim, tDim + 1);
    Value shape = concat({bhs, t}, 4);
    shapeOf.getResult().replaceAllUsesWith(shape);
    shapeOf->erase();
    dead.push_back(shape.getDefiningOp());
  }
  eraseDead(dead, erased);
  return true;
}

struct QuenchFuseAttentionPass
    : public quench::impl::QuenchFuseAttentionBase<QuenchFuseAttentionPass> {
  void runOnOperation() override {
    SmallVector<SoftmaxOp> softmaxes;
    getOperation()->walk([&](SoftmaxOp op) { softmaxes.push_back(op); });
    llvm::SmallPtrSet<Operation *, 32> erased;
    for (SoftmaxOp op : softmaxes)
      if (!erased.count(op) && fuseAttention(op, erased))
        ++numFused;
  }
};

} // namespace
