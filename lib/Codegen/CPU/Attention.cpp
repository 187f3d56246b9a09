//===- Attention.cpp - the CPU kernel of quench.attention -----------------===//
//
// `quench-cpu-attention` replaces each `quench.attention` (f32 query) by an
// explicit kernel on tensors: scf.forall tasks, scf.for loops and vector ops
// that one-shot bufferization and the rest of the CPU pipeline lower like
// the other kernels. Nothing of size T (the key positions) is materialized:
// the softmax is computed online (one pass over the keys and values).
//
// Tasks: batch x groups of `hg` query heads that share one kv head (all
// rep = H / Hk of them when rep <= 8) x blocks of `sb` query positions.
// Within a task the rows (hg heads x sb positions, about kBlockRows) are
// computed together so that each K and V row is read once per block of rows;
// a task's positions that do not fill a block run one position at a time.
//
// Per block of rows, with L = the f32 lanes of a SIMD vector:
//
//   q'[r]  = q[r] * scale                                (read once)
//   m = -inf, l = 0, acc[r] = 0   (per row: m, l and ceil(Dv / L)
//                                  accumulator vectors, in registers)
//   for t0 = 0; t0 < T; t0 += L:                         (L keys a step)
//     k[u] = K row min(t0 + u, T - 1), converted to f32 on load
//            (f16/bf16: extf; i8: sitofp, its scale applied to the score)
//     s[r] = (q'[r] . k[u] for u < L)  (L partial vectors, summed lane-wise
//            by a transposing shuffle tree: lane u of s is key t0 + u)
//     s[r] = s[r] * key_scale + bias;  lanes t0 + u >= T: -inf
//     m'   = max(m, max_u s[r]);  ms = (m' == -inf ? 0 : m')
//     c    = exp(m - ms);  p = exp(s[r] - ms)
//     l    = l * c + p  (lane-wise: L partial sums, added up at the end)
//     acc[r] = acc[r] * c + sum_u p_u * v[u]
//            (v[u]: V row min(t0 + u, T - 1); i8: p * value_scale first)
//     m    = m'  (kept in every lane: a butterfly max, no scalar)
//   result[r] = acc[r] / sum(l)
//
// `ms` keeps a row whose first keys are all -inf (a padding mask) from
// computing exp(-inf - -inf) = NaN: its p and c are 0 until a finite score
// arrives. A row whose scores are all -inf ends with 0 / 0 = NaN, like the
// unfused softmax. The exps go through math.exp, which quench-cpu-lower-vector
// turns into polynomials on whole vectors. See docs/lowering.md ("Attention
// kernel").
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/CPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUATTENTION
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Query rows computed together (heads of a group x positions): enough to
/// reuse each K/V vector a few times, few enough that the accumulators of
/// head dims up to 64 stay in AVX-512 registers.
constexpr int64_t kBlockRows = 4;
/// Most query heads of one kv head in a task (grouped-query models with more
/// split them, so that the unrolled block stays a reasonable size).
constexpr int64_t kMaxGroupHeads = 8;

/// One quench.attention as the kernel sees it.
struct AttentionOperands {
  Value query, key, value, bias;
  /// The i8 operands' scales collapsed to [B, Hk, T]; null for float ones.
  Value keyScale, valueScale;
  int64_t rep = 1;   ///< query heads per kv head (H / Hk)
  int64_t groupHeads = 1; ///< query heads per task (hg, divides rep)
  int64_t d = 0, dv = 0;
  int64_t lanes = 8; ///< f32 lanes per SIMD vector = keys per step
  double scale = 1.0;
  /// Bias dims of static size 1 (broadcast); the others are indexed.
  bool biasBroadcast[4] = {false, false, false, false};
};

/// Builds the kernel's loops at the builder's insertion point.
class AttentionEmitter {
public:
  AttentionEmitter(OpBuilder &b, Location loc, const AttentionOperands &a)
      : b(b), loc(loc), a(a) {
    f32 = b.getF32Type();
    vf = VectorType::get({a.lanes}, f32);
  }

  /// The rows of query heads [head, head + hg) (all of kv head
  /// head / rep) at positions [pos, pos + np) of batch `batch`: computed
  /// and written into `out` ([1, hg, n, Dv], the task's part of the result)
  /// at [0, 0, outPos, 0]. Returns the updated `out`.
  Value emitBlock(Value out, Value batch, Value head, Value pos, Value outPos,
                  int64_t np);

private:
  struct Row {
    int64_t g, i;     ///< head in the group, position in the block
    Value head, pos;  ///< query head and position
  };

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value addIdx(Value x, int64_t c) {
    return c == 0 ? x : arith::AddIOp::create(b, loc, x, idx(c)).getResult();
  }
  Value f32Const(float v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value splat(Value scalar) {
    return vector::BroadcastOp::create(b, loc, vf, scalar);
  }
  /// `v` (a scalar or vector of f32, f16, bf16 or i8 codes) as f32.
  Value toF32(Value v);
  /// L elements of the innermost dim of `src` from `at` (whose last index
  /// is ignored) starting at element j * L, as f32; masked (zeros) past
  /// `width`.
  Value readChunk(Value src, ArrayRef<Value> at, int64_t j, int64_t width);
  /// Partial score vectors of a row being summed (see pushPartial): the
  /// combined vectors of 2^level keys each.
  using PartialStack = SmallVector<std::pair<int64_t, Value>>;
  /// Adds the partial vector of the next key to `stack`, combining it with
  /// the vectors of as many keys as soon as they exist. After L keys the
  /// stack holds one vector: lane u the sum of the lanes of key u's.
  void pushPartial(PartialStack &stack, Value partial);
  /// The maximum of the lanes of `v`, in every lane.
  Value maxAll(Value v);
  /// max(x, y) lane by lane: x > y ? x : y (one vmaxps; a NaN in x gives y).
  Value maxOf(Value x, Value y) {
    Value gt = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, y);
    return arith::SelectOp::create(b, loc, gt, x, y);
  }
  /// The bias of `row` for keys t0 .. t0 + L (a broadcast vector when the
  /// bias has one key column: then t0 is ignored).
  Value readBias(const Row &row, Value batch, Value t0);

  OpBuilder &b;
  Location loc;
  const AttentionOperands &a;
  Type f32;
  VectorType vf;
};

Value AttentionEmitter::toF32(Value v) {
  Type et = getElementTypeOrSelf(v.getType());
  Type to = f32;
  if (auto vt = dyn_cast<VectorType>(v.getType()))
    to = vt.clone(f32);
  if (isa<IntegerType>(et))
    return arith::SIToFPOp::create(b, loc, to, v);
  if (et == f32)
    return v;
  return arith::ExtFOp::create(b, loc, to, v);
}

Value AttentionEmitter::readChunk(Value src, ArrayRef<Value> at, int64_t j,
                                  int64_t width) {
  Type et = getElementTypeOrSelf(src.getType());
  SmallVector<Value> indices(at.drop_back());
  indices.push_back(idx(j * a.lanes));
  Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(et));
  bool inBounds = (j + 1) * a.lanes <= width;
  Value v = vector::TransferReadOp::create(
      b, loc, VectorType::get({a.lanes}, et), src, indices, pad,
      ArrayRef<bool>{inBounds});
  return toF32(v);
}

// The partial sums of L keys form an L x L matrix (row u: the products of
// key u's vector); its row sums are a transpose-and-add tree. Two vectors
// x, y holding the sums of equal groups of keys in blocks of w lanes become
//   shuffle(x, y, lo) + shuffle(x, y, hi)
// whose blocks of 2w lanes alternate x's (even) and y's (odd) blocks, each
// the sum of two neighbouring blocks of w. L - 1 combines of 2 shuffles and
// an add instead of L horizontal reductions; combining as soon as two
// groups of a size exist keeps about log2(L) vectors per row alive.
void AttentionEmitter::pushPartial(PartialStack &stack, Value partial) {
  const int64_t n = a.lanes;
  int64_t level = 0;
  while (!stack.empty() && stack.back().first == level) {
    int64_t w = int64_t(1) << level;
    SmallVector<int64_t> lo(n), hi(n);
    for (int64_t k = 0; k < n; ++k) {
      int64_t pair = k / (2 * w), off = k % w;
      lo[k] = ((k / w) % 2 == 0 ? 0 : n) + pair * 2 * w + off;
      hi[k] = lo[k] + w;
    }
    Value x = stack.pop_back_val().second;
    Value l = vector::ShuffleOp::create(b, loc, x, partial, lo);
    Value h = vector::ShuffleOp::create(b, loc, x, partial, hi);
    partial = arith::AddFOp::create(b, loc, l, h);
    ++level;
  }
  stack.push_back({level, partial});
}

// A butterfly: after the step with lanes k and k xor w exchanged, each lane
// holds the maximum of its block of 2w lanes.
Value AttentionEmitter::maxAll(Value v) {
  for (int64_t w = a.lanes / 2; w >= 1; w /= 2) {
    SmallVector<int64_t> perm(a.lanes);
    for (int64_t k = 0; k < a.lanes; ++k)
      perm[k] = k ^ w;
    v = maxOf(v, vector::ShuffleOp::create(b, loc, v, v, perm));
  }
  return v;
}

Value AttentionEmitter::readBias(const Row &row, Value batch, Value t0) {
  Value zero = idx(0);
  SmallVector<Value> at{a.biasBroadcast[0] ? zero : batch,
                        a.biasBroadcast[1] ? zero : row.head,
                        a.biasBroadcast[2] ? zero : row.pos};
  if (a.biasBroadcast[3]) {
    at.push_back(zero);
    return splat(toF32(tensor::ExtractOp::create(b, loc, a.bias, at)));
  }
  Type et = getElementTypeOrSelf(a.bias.getType());
  at.push_back(t0);
  Value pad = arith::ConstantOp::create(b, loc, b.getZeroAttr(et));
  return toF32(vector::TransferReadOp::create(
      b, loc, VectorType::get({a.lanes}, et), a.bias, at, pad,
      ArrayRef<bool>{false}));
}

Value AttentionEmitter::emitBlock(Value out, Value batch, Value head,
                                  Value pos, Value outPos, int64_t np) {
  const int64_t lanes = a.lanes;
  const int64_t nd = llvm::divideCeil(a.d, lanes);
  const int64_t ndv = llvm::divideCeil(a.dv, lanes);
  Value kvHead = arith::DivUIOp::create(b, loc, head, idx(a.rep));

  SmallVector<Row> rows;
  for (int64_t g = 0; g < a.groupHeads; ++g)
    for (int64_t i = 0; i < np; ++i)
      rows.push_back({g, i, addIdx(head, g), addIdx(pos, i)});
  const size_t nr = rows.size();

  // The query rows, scaled, and the biases that do not depend on the key.
  SmallVector<SmallVector<Value>> q(nr);
  Value scale = splat(f32Const(static_cast<float>(a.scale)));
  for (size_t r = 0; r < nr; ++r)
    for (int64_t j = 0; j < nd; ++j)
      q[r].push_back(arith::MulFOp::create(
          b, loc,
          readChunk(a.query, {batch, rows[r].head, rows[r].pos, Value()}, j,
                    a.d),
          scale));
  SmallVector<Value> rowBias(nr);
  if (a.bias && a.biasBroadcast[3])
    for (size_t r = 0; r < nr; ++r)
      rowBias[r] = readBias(rows[r], batch, Value());

  // Loop-carried state per row, all vectors: m (the running max in every
  // lane), l (per-lane running sums, added up at the end), then the ndv
  // accumulator vectors.
  const size_t stride = 2 + ndv;
  Value negInf = splat(f32Const(-INFINITY));
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vf));
  SmallVector<Value> init;
  for (size_t r = 0; r < nr; ++r) {
    init.push_back(negInf);
    init.push_back(zero);
    init.append(ndv, zero);
  }
  Value t = tensor::DimOp::create(b, loc, a.key, 2);
  auto loop = scf::ForOp::create(b, loc, idx(0), t, idx(lanes), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value t0 = loop.getInductionVar();
    ValueRange state = loop.getRegionIterArgs();

    // Keys t0 + u past T read row T - 1 (any row in bounds) and are
    // masked out of the scores.
    Value valid = vector::CreateMaskOp::create(
        b, loc, VectorType::get({lanes}, b.getI1Type()),
        ValueRange{arith::SubIOp::create(b, loc, t, t0)});
    Value last = arith::SubIOp::create(b, loc, t, idx(1));
    SmallVector<Value> keyRow;
    for (int64_t u = 0; u < lanes; ++u)
      keyRow.push_back(
          arith::MinSIOp::create(b, loc, addIdx(t0, u), last));

    // Scores: per key u, the L-lane products q'[r] . k[u] (each key vector
    // read once for all rows), summed into lane u of the row's scores.
    SmallVector<PartialStack> partials(nr);
    for (int64_t u = 0; u < lanes; ++u) {
      SmallVector<Value> partial(nr);
      for (int64_t j = 0; j < nd; ++j) {
        Value k = readChunk(a.key, {batch, kvHead, keyRow[u], Value()}, j,
                            a.d);
        for (size_t r = 0; r < nr; ++r)
          partial[r] =
              j == 0 ? arith::MulFOp::create(b, loc, q[r][j], k).getResult()
                     : vector::FMAOp::create(b, loc, q[r][j], k, partial[r])
                           .getResult();
      }
      for (size_t r = 0; r < nr; ++r)
        pushPartial(partials[r], partial[r]);
    }
    auto readScales = [&](Value scales) -> Value {
      if (!scales)
        return Value();
      Value pad = f32Const(0.0f);
      return vector::TransferReadOp::create(b, loc, vf, scales,
                                            ValueRange{batch, kvHead, t0}, pad,
                                            ArrayRef<bool>{false});
    };
    Value keyScale = readScales(a.keyScale);
    Value valueScale = readScales(a.valueScale);

    // The online softmax update of each row; p (times the value scales)
    // weighs the value rows below.
    SmallVector<Value> next(state.begin(), state.end());
    SmallVector<Value> weights(nr);
    for (size_t r = 0; r < nr; ++r) {
      Value m = state[r * stride], l = state[r * stride + 1];
      assert(partials[r].size() == 1 && "L is a power of two");
      Value s = partials[r].front().second;
      if (keyScale)
        s = arith::MulFOp::create(b, loc, s, keyScale);
      if (a.bias)
        s = arith::AddFOp::create(
            b, loc, s, rowBias[r] ? rowBias[r] : readBias(rows[r], batch, t0));
      s = arith::SelectOp::create(b, loc, valid, s, negInf);
      Value mNew = maxOf(maxAll(s), m);
      Value isNegInf = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                             mNew, negInf);
      Value mSafe = arith::SelectOp::create(b, loc, isNegInf, zero, mNew);
      Value c = math::ExpOp::create(
          b, loc, arith::SubFOp::create(b, loc, m, mSafe));
      Value p = math::ExpOp::create(
          b, loc, arith::SubFOp::create(b, loc, s, mSafe));
      next[r * stride] = mNew;
      next[r * stride + 1] = vector::FMAOp::create(b, loc, l, c, p);
      weights[r] =
          valueScale ? arith::MulFOp::create(b, loc, p, valueScale).getResult()
                     : p;
      for (int64_t j = 0; j < ndv; ++j)
        next[r * stride + 2 + j] =
            arith::MulFOp::create(b, loc, state[r * stride + 2 + j], c);
    }
    // acc[r] += p_u * v[u]: each value vector read once for all rows.
    for (int64_t u = 0; u < lanes; ++u) {
      SmallVector<Value> pu(nr);
      for (size_t r = 0; r < nr; ++r)
        pu[r] = splat(vector::ExtractOp::create(b, loc, weights[r],
                                                ArrayRef<int64_t>{u}));
      for (int64_t j = 0; j < ndv; ++j) {
        Value v = readChunk(a.value, {batch, kvHead, keyRow[u], Value()}, j,
                            a.dv);
        for (size_t r = 0; r < nr; ++r) {
          Value &acc = next[r * stride + 2 + j];
          acc = vector::FMAOp::create(b, loc, pu[r], v, acc);
        }
      }
    }
    scf::YieldOp::create(b, loc, next);
  }

  // result = acc / l, row by row into `out`.
  for (size_t r = 0; r < nr; ++r) {
    Value l = splat(vector::ReductionOp::create(
        b, loc, vector::CombiningKind::ADD, loop.getResult(r * stride + 1)));
    Value outRow = addIdx(outPos, rows[r].i);
    for (int64_t j = 0; j < ndv; ++j) {
      Value y = arith::DivFOp::create(
          b, loc, loop.getResult(r * stride + 2 + j), l);
      bool inBounds = (j + 1) * lanes <= a.dv;
      out = vector::TransferWriteOp::create(
                b, loc, y, out,
                ValueRange{idx(0), idx(rows[r].g), outRow, idx(j * lanes)},
                ArrayRef<bool>{inBounds})
                .getResult();
    }
  }
  return out;
}

/// `scale` ([B, Hk, T, 1]) as [B, Hk, T], so that L consecutive positions
/// are one minor-dim transfer.
Value collapseScale(OpBuilder &b, Location loc, Value scale) {
  if (!scale)
    return scale;
  return tensor::CollapseShapeOp::create(
      b, loc, scale, SmallVector<ReassociationIndices>{{0}, {1}, {2, 3}});
}

/// Element types the kernel reads: f32, f16, bf16 (and i8 codes where
/// `codes`), which convert to f32 with one SIMD instruction.
bool isKernelElementType(Type t, bool codes) {
  return t.isF32() || t.isF16() || t.isBF16() ||
         (codes && t.isSignlessInteger(8));
}

/// Replaces `op` by the kernel; fails (op unchanged) when the kernel does
/// not handle it (a query other than f32; keys, values or bias of another
/// type, such as f64 or 8-bit floats).
/// Run-time checks of the extents the kernel takes to be equal: keys and
/// values (batch, positions) and the query's batch, and every bias dim that
/// is not a static 1 against the extent it stands for (batch, heads, query
/// positions, key positions). A mask sliced from a fixed-size table of a
/// model given more tokens than the table has rows fails here with an error
/// naming the node (convert-assert-to-quench-runtime) instead of reading
/// outside the mask. Pairs that are both static were checked by the
/// verifier.
static void checkAttentionExtents(OpBuilder &b, Location loc,
                                  quench::AttentionOp op) {
  std::string name = quench::getNodeName(loc);
  std::string node = name.empty() ? "fused attention"
                                  : "node '" + name + "' (fused attention)";
  auto check = [&](Value x, int64_t xd, Value y, int64_t yd,
                   const std::string &what) {
    auto xt = cast<RankedTensorType>(x.getType());
    auto yt = cast<RankedTensorType>(y.getType());
    if (!xt.isDynamicDim(xd) && !yt.isDynamicDim(yd))
      return;
    Value a = tensor::DimOp::create(b, loc, x, xd);
    Value c = tensor::DimOp::create(b, loc, y, yd);
    Value same =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, a, c);
    cf::AssertOp::create(b, loc, same,
                         node + ": " + what +
                             " differ at run time (inconsistent input "
                             "shapes, e.g. more tokens than the model's "
                             "position or mask tables)");
  };
  Value q = op.getQuery(), k = op.getKey(), v = op.getValue();
  check(k, 0, q, 0, "the batch sizes of keys and queries");
  check(v, 0, k, 0, "the batch sizes of values and keys");
  check(v, 2, k, 2, "the numbers of value and key positions");
  if (Value bias = op.getBias()) {
    auto bt = cast<RankedTensorType>(bias.getType());
    static const char *what[] = {
        "the bias's batch size and the queries'",
        "the bias's head count and the queries'",
        "the bias's rows and the query positions",
        "the bias's columns and the key positions"};
    // Bias [B, H, S, T]: query dims 0-2, the keys' dim 2.
    Value ref[] = {q, q, q, k};
    int64_t refDim[] = {0, 1, 2, 2};
    for (int64_t i = 0; i < 4; ++i)
      if (bt.getDimSize(i) != 1)
        check(bias, i, ref[i], refDim[i], what[i]);
  }
}

LogicalResult buildAttentionKernel(RewriterBase &rw, quench::AttentionOp op,
                                   int64_t lanes) {
  auto qt = cast<RankedTensorType>(op.getQuery().getType());
  auto kt = cast<RankedTensorType>(op.getKey().getType());
  auto vt = cast<RankedTensorType>(op.getValue().getType());
  auto rt = cast<RankedTensorType>(op.getResult().getType());
  Value bias = op.getBias();
  if (!qt.getElementType().isF32() ||
      !isKernelElementType(kt.getElementType(), /*codes=*/true) ||
      !isKernelElementType(vt.getElementType(), /*codes=*/true) ||
      (bias && !isKernelElementType(getElementTypeOrSelf(bias.getType()),
                                    /*codes=*/false)))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  checkAttentionExtents(rw, loc, op);

  AttentionOperands a;
  a.query = op.getQuery();
  a.key = op.getKey();
  a.value = op.getValue();
  a.bias = bias;
  a.keyScale = collapseScale(rw, loc, op.getKeyScale());
  a.valueScale = collapseScale(rw, loc, op.getValueScale());
  int64_t heads = qt.getDimSize(1), kvHeads = kt.getDimSize(1);
  a.rep = heads / kvHeads;
  a.groupHeads = 1;
  for (int64_t g = std::min(a.rep, kMaxGroupHeads); g >= 1; --g)
    if (a.rep % g == 0) {
      a.groupHeads = g;
      break;
    }
  a.d = qt.getDimSize(3);
  a.dv = vt.getDimSize(3);
  a.lanes = lanes;
  a.scale = op.getScale().convertToDouble();
  if (a.bias) {
    auto bt = cast<RankedTensorType>(a.bias.getType());
    // A dynamic bias dim is taken to be the full size (no broadcast at run
    // time), as linalg's elementwise ops take their dynamic dims.
    for (int64_t i = 0; i < 4; ++i)
      a.biasBroadcast[i] = bt.getDimSize(i) == 1;
  }

  // Positions per block: the group's heads times sb positions make about
  // kBlockRows rows; a static S below that takes all of them.
  int64_t seq = qt.getDimSize(2);
  int64_t sb = std::max<int64_t>(1, kBlockRows / a.groupHeads);
  if (!ShapedType::isDynamic(seq))
    sb = std::max<int64_t>(1, std::min(sb, seq));

  // The result, filled by tasks (batch, head group, position block).
  SmallVector<OpFoldResult> resultSizes{tensor::getMixedSize(rw, loc, a.query, 0),
                                        rw.getIndexAttr(heads),
                                        tensor::getMixedSize(rw, loc, a.query, 2),
                                        rw.getIndexAttr(a.dv)};
  Value init = tensor::EmptyOp::create(rw, loc, resultSizes, rw.getF32Type());
  Value seqV = getValueOrCreateConstantIndexOp(rw, loc, resultSizes[2]);
  auto cst = [&](int64_t v) {
    return arith::ConstantIndexOp::create(rw, loc, v).getResult();
  };
  OpFoldResult blocks =
      ShapedType::isDynamic(seq)
          ? OpFoldResult(arith::CeilDivUIOp::create(rw, loc, seqV, cst(sb))
                             .getResult())
          : OpFoldResult(rw.getIndexAttr(llvm::divideCeil(seq, sb)));
  SmallVector<OpFoldResult> taskCounts{
      resultSizes[0], rw.getIndexAttr(heads / a.groupHeads), blocks};
  auto forall = scf::ForallOp::create(rw, loc, taskCounts, ValueRange{init},
                                      std::nullopt);
  {
    OpBuilder::InsertionGuard guard(rw);
    rw.setInsertionPoint(forall.getTerminator());
    Value batch = forall.getInductionVar(0);
    Value head = arith::MulIOp::create(rw, loc, forall.getInductionVar(1),
                                       cst(a.groupHeads));
    Value pos = arith::MulIOp::create(rw, loc, forall.getInductionVar(2),
                                      cst(sb));
    // The task's positions: sb, fewer in the last block of a dynamic S or
    // one that sb does not divide.
    Value n = cst(sb);
    if (ShapedType::isDynamic(seq) || seq % sb != 0)
      n = arith::MinSIOp::create(rw, loc, n,
                                 arith::SubIOp::create(rw, loc, seqV, pos));
    Value shared = forall.getRegionIterArgs()[0];
    SmallVector<OpFoldResult> offsets{batch, head, pos, rw.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes{rw.getIndexAttr(1),
                                    rw.getIndexAttr(a.groupHeads),
                                    getAsOpFoldResult(n),
                                    rw.getIndexAttr(a.dv)};
    SmallVector<OpFoldResult> strides(4, rw.getIndexAttr(1));
    Value slice = tensor::ExtractSliceOp::create(rw, loc, shared, offsets,
                                                 sizes, strides);
    AttentionEmitter emitter(rw, loc, a);
    // Whole blocks of sb positions, then the rest one position at a time.
    auto positions = [&](Value from, Value to, int64_t step, Value acc) {
      auto loop = scf::ForOp::create(rw, loc, from, to, cst(step),
                                     ValueRange{acc});
      OpBuilder::InsertionGuard g(rw);
      rw.setInsertionPointToStart(loop.getBody());
      Value i = loop.getInductionVar();
      Value p = arith::AddIOp::create(rw, loc, pos, i);
      scf::YieldOp::create(
          rw, loc,
          emitter.emitBlock(loop.getRegionIterArgs()[0], batch, head, p, i,
                            step));
      return loop.getResult(0);
    };
    Value full = arith::MulIOp::create(
        rw, loc, arith::DivUIOp::create(rw, loc, n, cst(sb)), cst(sb));
    Value result = positions(cst(0), full, sb, slice);
    if (sb > 1)
      result = positions(full, n, 1, result);
    rw.setInsertionPointToEnd(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(rw, loc, result, shared, offsets,
                                          sizes, strides);
  }
  Value result = forall.getResult(0);
  if (result.getType() != rt)
    result = tensor::CastOp::create(rw, loc, rt, result);
  rw.replaceOp(op, result);
  return success();
}

struct QuenchCPUAttentionPass
    : public quench::impl::QuenchCPUAttentionBase<QuenchCPUAttentionPass> {
  using Base::Base;

  void runOnOperation() override {
    // The shuffle tree of the scores needs a power-of-two lane count.
    if (vectorBits < 128 || !llvm::isPowerOf2_32(vectorBits))
      return;
    SmallVector<quench::AttentionOp> found;
    getOperation().walk([&](quench::AttentionOp op) { found.push_back(op); });
    IRRewriter rw(&getContext());
    for (quench::AttentionOp op : found)
      (void)buildAttentionKernel(rw, op, vectorBits / 32);
  }
};

} // namespace
