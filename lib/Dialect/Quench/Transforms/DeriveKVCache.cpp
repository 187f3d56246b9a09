//===- DeriveKVCache.cpp - past keys/values for an export without past ----===//
//
// Implements `quench-derive-kv-cache` (Passes.td has the contract). A causal
// language model exported without past (the usual torch.onnx.export of
// forward: input_ids [1, S] -> logits [1, S, vocab]) computes, per layer,
//
//   softmax(mask(scale(Q · Kᵀ))) · V
//
// over the S tokens it is given. The pass recognizes each such attention
// core and rewrites the function into the with-past form that
// `quench-kv-cache` turns into caches (docs/generation.md):
//
//   * per core i, inputs past_key_values.{i}.key|value [b, kv_heads, P,
//     head_dim] and outputs present.{i}.key|value = concat(past, new) on the
//     sequence axis, K and V taken before any grouped-query repetition;
//   * the causal mask is rebuilt for queries at positions P .. P+S-1 over
//     keys 0 .. P+S-1 (every position index in it -- ranges, triangles,
//     tables gathered at positions -- is shifted or extended);
//   * the reshape targets on the key side get the key length P + S;
//   * the other position ranges (rotary or learned position tables
//     gathered at 0 .. S-1) become P .. P+S-1.
//
// P is the past inputs' sequence length. Everything is checked before the
// function changes: each mask is evaluated on small sizes (a tiny
// interpreter below) to prove it causal and to prove the rebuilt mask equal
// to the rows P.. of the original one; whatever is not recognized fails
// with an error naming the ONNX node.
//
//===----------------------------------------------------------------------===//

#include "MaskEvaluator.h"

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Support/LLVM.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <map>

namespace quench {
#define GEN_PASS_DEF_QUENCHDERIVEKVCACHE
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;
using namespace mlir;

using namespace quench::derive;

namespace {

/// The ONNX node name of an op (its location's first name).
std::string nodeOf(Operation *op) {
  return "'" + getLayerName(op->getLoc()) + "' (" +
         op->getName().getStringRef().str() + ")";
}

/// A value is "very negative" (a masked score) at or below this.
constexpr double kMaskedBelow = -1e4;

//===----------------------------------------------------------------------===//
// Recognition
//===----------------------------------------------------------------------===//

/// Where a mask meets the scores: `add(scores, mask)` or
/// `where(cond, fill, scores)` / `where(cond, scores, fill)`.
struct MaskSite {
  Operation *op;
  unsigned scoresOperand;
};

/// One attention core.
struct Core {
  SoftmaxOp softmax;
  MatMulOp qk, pv;
  /// Reshapes between Q·Kᵀ and the softmax and between the softmax and
  /// P·V (grouped-query attention raised by quench-raise-ops).
  SmallVector<ReshapeOp> scoreReshapes;
  SmallVector<MaskSite> masks;
};

/// Whether `v` is a scalar-like constant (one element).
bool isScalarConstant(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && type.hasStaticShape() && type.getNumElements() == 1 &&
         v.getDefiningOp<quench::ConstantOp>();
}

/// Whether the scores path from `v` backwards (through the ops a core may
/// have between Q·Kᵀ and the softmax) reaches a matmul.
bool reachesScores(Value v, int depth = 0) {
  if (depth > 16)
    return false;
  Operation *op = v.getDefiningOp();
  if (!op)
    return false;
  if (auto mm = dyn_cast<MatMulOp>(op))
    return !mm.getLhs().getDefiningOp<quench::ConstantOp>() &&
           !mm.getRhs().getDefiningOp<quench::ConstantOp>();
  if (isa<ReshapeOp, quench::CastOp>(op))
    return reachesScores(op->getOperand(0), depth + 1);
  if (isa<quench::MulOp, quench::DivOp, quench::AddOp, quench::SubOp>(op))
    return reachesScores(op->getOperand(0), depth + 1) ||
           reachesScores(op->getOperand(1), depth + 1);
  if (isa<WhereOp>(op))
    return reachesScores(op->getOperand(1), depth + 1) ||
           reachesScores(op->getOperand(2), depth + 1);
  return false;
}

/// The core around `softmax`, or an error naming the node where the
/// pattern breaks.
FailureOr<Core> matchCore(SoftmaxOp softmax) {
  Core core;
  core.softmax = softmax;
  auto type = cast<RankedTensorType>(softmax.getType());
  int64_t rank = type.getRank();
  int64_t axis = static_cast<int64_t>(softmax.getAxis());
  if (axis < 0)
    axis += rank;
  if (rank < 2 || axis != rank - 1)
    return emitError(softmax.getLoc())
           << "--derive-kv-cache: softmax " << nodeOf(softmax)
           << " is not over the last axis of rank >= 2 scores, so it is not "
              "recognized as attention";
  // Backwards to Q·Kᵀ.
  Value v = softmax.getInput();
  for (int steps = 0;; ++steps) {
    Operation *op = v.getDefiningOp();
    if (steps > 32 || !op)
      return emitError(softmax.getLoc())
             << "--derive-kv-cache: the scores of softmax " << nodeOf(softmax)
             << " do not come from a product Q·Kᵀ";
    if (auto mm = dyn_cast<MatMulOp>(op)) {
      if (!reachesScores(v))
        return emitError(op->getLoc())
               << "--derive-kv-cache: " << nodeOf(op)
               << " multiplies by a constant; attention scores are Q·Kᵀ of "
                  "activations";
      core.qk = mm;
      break;
    }
    if (auto r = dyn_cast<ReshapeOp>(op)) {
      core.scoreReshapes.push_back(r);
      v = r.getInput();
      continue;
    }
    if (isa<quench::CastOp>(op)) {
      v = op->getOperand(0);
      continue;
    }
    if (isa<quench::MulOp, quench::DivOp>(op)) {
      Value a = op->getOperand(0), b = op->getOperand(1);
      if (isScalarConstant(b)) {
        v = a;
        continue;
      }
      if (isa<quench::MulOp>(op) && isScalarConstant(a)) {
        v = b;
        continue;
      }
      return emitError(op->getLoc())
             << "--derive-kv-cache: " << nodeOf(op)
             << " scales the attention scores by a non-constant";
    }
    if (isa<quench::AddOp>(op)) {
      bool a = reachesScores(op->getOperand(0)),
           b = reachesScores(op->getOperand(1));
      if (a == b)
        return emitError(op->getLoc())
               << "--derive-kv-cache: " << nodeOf(op)
               << " adds two score-like tensors; not a mask";
      core.masks.push_back({op, a ? 0u : 1u});
      v = op->getOperand(a ? 0 : 1);
      continue;
    }
    if (isa<WhereOp>(op)) {
      bool a = reachesScores(op->getOperand(1)),
           b = reachesScores(op->getOperand(2));
      if (a == b || reachesScores(op->getOperand(0)))
        return emitError(op->getLoc())
               << "--derive-kv-cache: " << nodeOf(op)
               << " selects between two score-like tensors; not a mask";
      core.masks.push_back({op, a ? 1u : 2u});
      v = op->getOperand(a ? 1 : 2);
      continue;
    }
    return emitError(op->getLoc())
           << "--derive-kv-cache: the scores of softmax " << nodeOf(softmax)
           << " pass through " << nodeOf(op)
           << ", which is not recognized in attention (expected Q·Kᵀ, "
              "scaling by a constant, a mask added or selected, reshapes)";
  }
  if (core.masks.empty())
    return emitError(softmax.getLoc())
           << "--derive-kv-cache: the attention of softmax " << nodeOf(softmax)
           << " has no mask; a cache needs causal attention";
  // Forwards to P·V.
  v = softmax.getResult();
  for (int steps = 0;; ++steps) {
    // Shape computations may read the probabilities' shape; one op reads
    // the values.
    SmallVector<Operation *> readers;
    for (Operation *u : v.getUsers())
      if (!isa<ShapeOfOp>(u))
        readers.push_back(u);
    if (readers.size() != 1 || steps > 8)
      return emitError(softmax.getLoc())
             << "--derive-kv-cache: the probabilities of softmax "
             << nodeOf(softmax) << " are not used by one product P·V";
    Operation *user = readers.front();
    if (auto mm = dyn_cast<MatMulOp>(user); mm && mm.getLhs() == v) {
      core.pv = mm;
      break;
    }
    if (auto r = dyn_cast<ReshapeOp>(user)) {
      core.scoreReshapes.push_back(r);
      v = r.getResult();
      continue;
    }
    if (isa<quench::CastOp>(user)) {
      v = user->getResult(0);
      continue;
    }
    return emitError(user->getLoc())
           << "--derive-kv-cache: the probabilities of softmax "
           << nodeOf(softmax) << " go to " << nodeOf(user)
           << ", not to a product P·V";
  }
  return core;
}

/// The index of the key (sequence) axis of a tensor on the key/value path:
/// its one dynamic dimension after the batch.
std::optional<int64_t> keyAxis(Type t) {
  auto type = dyn_cast<RankedTensorType>(t);
  if (!type)
    return std::nullopt;
  std::optional<int64_t> axis;
  for (int64_t d = 1; d < type.getRank(); ++d)
    if (type.isDynamicDim(d)) {
      if (axis)
        return std::nullopt;
      axis = d;
    }
  return axis;
}

/// The keys or values of a core as cached: `stored` [b, kv_heads, T,
/// head_dim] and the ops that turn it into what attention reads (the
/// grouped-query repetition), in order.
struct KVPath {
  Value stored;
  SmallVector<Operation *> repeat;
};

/// Recognizes the repetition of kv heads (Hugging Face's repeat_kv:
/// unsqueeze or reshape to [b, kv, 1, T, d], expand to [b, kv, rep, T, d],
/// reshape to [b, kv·rep, T, d]) above `v`, if any.
KVPath unwrapRepeat(Value v) {
  KVPath path{v, {}};
  auto r4 = v.getDefiningOp<ReshapeOp>();
  if (!r4)
    return path;
  auto expand = r4.getInput().getDefiningOp<ExpandOp>();
  if (!expand)
    return path;
  Operation *five = expand.getInput().getDefiningOp();
  if (!five || !isa<UnsqueezeOp, ReshapeOp>(five))
    return path;
  auto inType = dyn_cast<RankedTensorType>(five->getOperand(0).getType());
  auto fiveType = cast<RankedTensorType>(five->getResult(0).getType());
  if (!inType || inType.getRank() != 4 || fiveType.getRank() != 5 ||
      fiveType.getDimSize(2) != 1)
    return path;
  return {five->getOperand(0), {five, expand, r4}};
}

/// Checks a cached tensor's type: [b, heads, T, d] with T dynamic, heads
/// and d static.
LogicalResult checkStored(Value v, Operation *at, StringRef what) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type || type.getRank() != 4 || !type.isDynamicDim(2) ||
      type.isDynamicDim(1) || type.isDynamicDim(3) ||
      !isa<FloatType>(type.getElementType()))
    return emitError(at->getLoc())
           << "--derive-kv-cache: the " << what << " of attention "
           << nodeOf(at) << " are " << v.getType()
           << ", not [batch, heads, seq, head_dim] with a dynamic sequence "
              "and static heads and head_dim";
  return success();
}

//===----------------------------------------------------------------------===//
// The rewrite
//===----------------------------------------------------------------------===//

enum class Role : char { none = '.', query = 'q', key = 'k' };

class Deriver {
public:
  Deriver(func::FuncOp func, const QuenchKVCacheOptions &options)
      : func(func), options(options), b(func.getContext()) {}

  LogicalResult run(std::string &tokenInput);

private:
  Value i64Scalar(Location loc, int64_t x) {
    auto t = RankedTensorType::get({}, b.getI64Type());
    return quench::ConstantOp::create(b, loc, t, DenseElementsAttr::get(t, x));
  }
  /// P in the element type of `like` (a 0-d integer tensor).
  Value pastAs(Location loc, Type like) {
    auto t = cast<RankedTensorType>(like);
    if (t.getElementType() == b.getI64Type())
      return pastLen;
    return quench::CastOp::create(
        b, loc, RankedTensorType::get({}, t.getElementType()), pastLen);
  }
  /// `shape` (1-D i64) with the entries in `axes` replaced by the key
  /// length P + S.
  Value withKeyLength(Location loc, Value shape, ArrayRef<int64_t> axes) {
    auto type = cast<RankedTensorType>(shape.getType());
    int64_t n = type.getDimSize(0);
    SmallVector<int64_t> onehot(n, 0), keep(n, 1);
    for (int64_t a : axes) {
      onehot[a] = 1;
      keep[a] = 0;
    }
    auto vt = RankedTensorType::get({n}, b.getI64Type());
    auto vec = [&](ArrayRef<int64_t> x) -> Value {
      return quench::ConstantOp::create(b, loc, vt,
                                        DenseElementsAttr::get(vt, x));
    };
    Value kept = quench::MulOp::create(b, loc, vt, shape, vec(keep));
    Value keys = quench::MulOp::create(b, loc, vt, vec(onehot), keyLen);
    return quench::AddOp::create(b, loc, vt, kept, keys);
  }

  /// The shape of the scores reshape `r` (grouped-query rows, raised by
  /// quench-raise-ops) with its entry `last`, the key length, taken from
  /// dim 2 of `keys` (the keys as read, [b, kv_heads, P + S, head_dim]):
  /// concat(shape[0, last), shape_of(keys)[2]). quench-fuse-attention
  /// traces that entry to the keys' sequence dim (as in a model exported
  /// with past) and so sees that the reshape keeps the key axis.
  Value keyLengthFrom(ReshapeOp r, int64_t last, Value keys) {
    Location loc = r.getLoc();
    auto vec = [&](int64_t n) {
      return RankedTensorType::get({n}, b.getI64Type());
    };
    auto slice = [&](Value shape, int64_t from, int64_t to) -> Value {
      return SliceOp::create(b, loc, vec(to - from), shape,
                             b.getDenseI64ArrayAttr({from}),
                             b.getDenseI64ArrayAttr({to}),
                             b.getDenseI64ArrayAttr({1}));
    };
    Value keyShape = ShapeOfOp::create(b, loc, vec(4), keys);
    return ConcatOp::create(
        b, loc, vec(last + 1),
        ValueRange{slice(r.getShape(), 0, last), slice(keyShape, 2, 3)}, 0);
  }

  FailureOr<Value> rebuild(Value v, ArrayRef<Role> roles);
  LogicalResult checkMasks(const Core &core,
                           ArrayRef<SmallVector<Value>> before,
                           ArrayRef<SmallVector<Value>> after);
  FailureOr<Value> cacheSide(Operation *at, Value rhs, bool keys,
                             unsigned layer);
  Value replay(Value stored, ArrayRef<Operation *> ops);

  func::FuncOp func;
  const QuenchKVCacheOptions &options;
  OpBuilder b;
  /// P (the past inputs' sequence length) and P + S (S: the token ids'),
  /// 0-d i64 computed at the function's start.
  Value pastLen, keyLen;
  Value tokenIds, attentionMask, positionIds;
  DenseSet<Value> pastArgs;
  Evaluator::Inputs evalInputs() const {
    return {&pastArgs, attentionMask, positionIds};
  }
  /// The values of 0-d `start` and `limit` in the rewritten function with
  /// P = 3, S = 2 (they tell whether a range counts P already).
  std::optional<std::pair<int64_t, int64_t>> probe(Value start, Value limit) {
    Evaluator ev(2, 3, evalInputs());
    FailureOr<Tensor> s = ev.eval(start), l = ev.eval(limit);
    if (failed(s) || failed(l) || s->data.size() != 1 || l->data.size() != 1)
      return std::nullopt;
    return std::make_pair(static_cast<int64_t>(s->data[0]),
                          static_cast<int64_t>(l->data[0]));
  }
  SmallVector<std::pair<std::string, Value>> presents;
  std::map<std::pair<void *, std::string>, Value> rebuilt;
  DenseSet<Operation *> created;
};

/// `v` recomputed with the axes marked `query` indexing positions P ..
/// P+S-1 instead of 0 .. S-1 and those marked `key` indexing 0 .. P+S-1.
FailureOr<Value> Deriver::rebuild(Value v, ArrayRef<Role> roles) {
  if (llvm::all_of(roles, [](Role r) { return r == Role::none; }))
    return v;
  std::string key(roles.size(), '.');
  for (auto [i, r] : llvm::enumerate(roles))
    key[i] = static_cast<char>(r);
  auto memo = rebuilt.find({v.getAsOpaquePointer(), key});
  if (memo != rebuilt.end())
    return memo->second;
  Operation *op = v.getDefiningOp();
  auto type = cast<RankedTensorType>(v.getType());
  if (!op) {
    // The attention mask input spans the keys (P + S as sessions feed
    // it), the position ids input the queries (P .. P+S-1).
    bool keysOnly = llvm::none_of(roles, [](Role r) { return r == Role::query; });
    bool queriesOnly = llvm::none_of(roles, [](Role r) { return r == Role::key; });
    if ((v == attentionMask && keysOnly) || (v == positionIds && queriesOnly))
      return v;
    return emitError(func.getLoc())
           << "--derive-kv-cache: input " << cast<BlockArgument>(v).getArgNumber()
           << " of the function indexes positions in an attention mask "
              "along an axis it does not span";
  }
  auto cannot = [&](StringRef why) -> FailureOr<Value> {
    return emitError(op->getLoc())
           << "--derive-kv-cache: cannot shift the positions of the "
              "attention mask through "
           << nodeOf(op) << ": " << why;
  };
  for (auto [d, r] : llvm::enumerate(roles))
    if (r != Role::none && !type.isDynamicDim(d))
      return cannot("its sequence dimension is static (export the model "
                    "with a dynamic sequence length)");
  // Roles of an operand broadcast (right-aligned) to this result.
  auto operandRoles = [&](Value x) {
    auto xt = cast<RankedTensorType>(x.getType());
    SmallVector<Role> r(xt.getRank(), Role::none);
    for (int64_t i = 0; i < xt.getRank(); ++i)
      if (xt.getDimSize(i) != 1)
        r[i] = roles[type.getRank() - xt.getRank() + i];
    return r;
  };
  // The result type with the key dims dynamic (they are already).
  Location loc = op->getLoc();
  FailureOr<Value> out = failure();
  if (isa<quench::AddOp, quench::SubOp, quench::MulOp, quench::DivOp,
          quench::MinOp, quench::MaxOp, CmpOp, LogicalOp, WhereOp, NotOp,
          NegOp, quench::CastOp>(op)) {
    SmallVector<Value> ins;
    for (Value x : op->getOperands()) {
      FailureOr<Value> nx = rebuild(x, operandRoles(x));
      if (failed(nx))
        return failure();
      ins.push_back(*nx);
    }
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    Operation *c = b.clone(*op);
    c->setOperands(ins);
    created.insert(c);
    out = c->getResult(0);
  } else if (auto u = dyn_cast<UnsqueezeOp>(op)) {
    SmallVector<Role> r;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (!llvm::is_contained(u.getAxes(), d))
        r.push_back(roles[d]);
      else if (roles[d] != Role::none)
        return cannot("an inserted axis indexes positions");
    FailureOr<Value> nx = rebuild(u.getInput(), r);
    if (failed(nx))
      return failure();
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    Operation *c = b.clone(*op);
    c->setOperand(0, *nx);
    created.insert(c);
    out = c->getResult(0);
  } else if (auto t = dyn_cast<TransposeOp>(op)) {
    SmallVector<Role> r(roles.size(), Role::none);
    for (auto [i, p] : llvm::enumerate(t.getPermutation()))
      r[p] = roles[i];
    FailureOr<Value> nx = rebuild(t.getInput(), r);
    if (failed(nx))
      return failure();
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    Operation *c = b.clone(*op);
    c->setOperand(0, *nx);
    created.insert(c);
    out = c->getResult(0);
  } else if (auto gather = dyn_cast<GatherOp>(op)) {
    auto dt = cast<RankedTensorType>(gather.getData().getType());
    auto it = cast<RankedTensorType>(gather.getIndices().getType());
    int64_t axis = static_cast<int64_t>(gather.getAxis());
    if (axis < 0)
      axis += dt.getRank();
    SmallVector<Role> dr, ir;
    for (int64_t d = 0; d < axis; ++d)
      dr.push_back(roles[d]);
    dr.push_back(Role::none);
    for (int64_t d = axis + 1; d < dt.getRank(); ++d)
      dr.push_back(roles[d - 1 + it.getRank()]);
    for (int64_t d = 0; d < it.getRank(); ++d)
      ir.push_back(roles[axis + d]);
    FailureOr<Value> nd = rebuild(gather.getData(), dr);
    if (failed(nd))
      return failure();
    FailureOr<Value> ni = rebuild(gather.getIndices(), ir);
    if (failed(ni))
      return failure();
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    Operation *c = b.clone(*op);
    c->setOperands({*nd, *ni});
    created.insert(c);
    out = c->getResult(0);
  } else if (auto range = dyn_cast<RangeOp>(op)) {
    // Queries at P .. P+S-1, keys at 0 .. P+S-1. A bound computed from
    // the new tokens counts S; one from an input over all positions (the
    // attention mask's length) counts P + S already: evaluated with P = 3,
    // S = 2 to tell.
    auto bounds = probe(range.getStart(), range.getLimit());
    bool query = roles[0] == Role::query;
    using Bounds = std::pair<int64_t, int64_t>;
    Bounds want = query ? Bounds(3, 5) : Bounds(0, 5);
    if (!bounds || (*bounds != want && *bounds != Bounds(0, 2)))
      return cannot("its bounds are not positions 0 .. S-1 of the new "
                    "tokens, nor already those of the cached sequence");
    if (*bounds == want) {
      out = v;
    } else {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(op);
      Value p = pastAs(loc, range.getLimit().getType());
      Value start = range.getStart();
      if (query)
        start = quench::AddOp::create(b, loc, start.getType(), start, p);
      Value limit = quench::AddOp::create(b, loc, range.getLimit().getType(),
                                          range.getLimit(), p);
      Operation *c = RangeOp::create(b, loc, type, start, limit,
                                     range.getDelta());
      created.insert(c);
      out = c->getResult(0);
    }
  } else if (auto e = dyn_cast<ExpandOp>(op)) {
    auto it = cast<RankedTensorType>(e.getInput().getType());
    SmallVector<Role> r(it.getRank(), Role::none);
    for (int64_t i = 0; i < it.getRank(); ++i)
      if (it.getDimSize(i) != 1)
        r[i] = roles[type.getRank() - it.getRank() + i];
    FailureOr<Value> nx = rebuild(e.getInput(), r);
    if (failed(nx))
      return failure();
    if (!e.getShape())
      return cannot("it has no run-time shape");
    SmallVector<int64_t> keys;
    for (auto [d, role] : llvm::enumerate(roles))
      if (role == Role::key)
        keys.push_back(d);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    Value shape = keys.empty() ? e.getShape()
                               : withKeyLength(loc, e.getShape(), keys);
    Operation *c = ExpandOp::create(b, loc, type, *nx, shape);
    created.insert(c);
    out = c->getResult(0);
  } else if (auto tr = dyn_cast<TriluOp>(op)) {
    // The triangle of a [.., S, T] tensor counts rows from 0: with queries
    // at P.. it becomes an explicit comparison of positions.
    int64_t rank = type.getRank();
    if (rank < 2 || roles[rank - 2] != Role::query ||
        roles[rank - 1] != Role::key)
      return cannot("its triangle is not over (query, key) positions");
    FailureOr<Value> nx = rebuild(tr.getInput(), roles);
    if (failed(nx))
      return failure();
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(op);
    auto i64 = b.getI64Type();
    auto vec = RankedTensorType::get({rank}, i64);
    auto scalar = RankedTensorType::get({}, i64);
    auto dyn1 = RankedTensorType::get({ShapedType::kDynamic}, i64);
    Value shape = ShapeOfOp::create(b, loc, vec, *nx);
    Value rows = GatherOp::create(b, loc, scalar, shape,
                                  i64Scalar(loc, rank - 2), 0);
    Value cols = keyLen;
    Value one = i64Scalar(loc, 1), zero = i64Scalar(loc, 0);
    Value q = RangeOp::create(
        b, loc, dyn1, pastLen,
        quench::AddOp::create(b, loc, scalar, rows, pastLen), one);
    q = UnsqueezeOp::create(
        b, loc, RankedTensorType::get({ShapedType::kDynamic, 1}, i64), q,
        ArrayRef<int64_t>{1});
    Value k = RangeOp::create(b, loc, dyn1, zero, cols, one);
    auto qk = RankedTensorType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic}, i64);
    Value diff = quench::SubOp::create(b, loc, qk, k, q);
    Value cond = CmpOp::create(
        b, loc, RankedTensorType::get(qk.getShape(), b.getI1Type()),
        tr.getUpper() ? CmpPredicate::ge : CmpPredicate::le, diff,
        i64Scalar(loc, tr.getK()));
    auto elemScalar = RankedTensorType::get({}, type.getElementType());
    Attribute zeroAttr =
        isa<FloatType>(type.getElementType())
            ? Attribute(b.getFloatAttr(type.getElementType(), 0.0))
            : Attribute(b.getIntegerAttr(type.getElementType(), 0));
    Value z = quench::ConstantOp::create(
        b, loc, elemScalar, DenseElementsAttr::get(elemScalar, zeroAttr));
    Operation *c = WhereOp::create(b, loc, type, cond, *nx, z);
    created.insert(c);
    out = c->getResult(0);
  } else {
    return cannot("this operation is not recognized in a mask (ranges, "
                  "comparisons, selections, triangles, gathers from "
                  "constant tables, unsqueeze, transpose and broadcasts "
                  "are)");
  }
  rebuilt[{v.getAsOpaquePointer(), key}] = *out;
  return out;
}

/// The cached keys (`keys`) or values of a core whose attention reads
/// `rhs` (Kᵀ or V): adds the past input, concat(past, new), the present
/// output, and returns what attention reads instead of `rhs`.
FailureOr<Value> Deriver::cacheSide(Operation *at, Value rhs, bool keys,
                                    unsigned layer) {
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(at);
  Location loc = at->getLoc();
  Value k4 = rhs;
  SmallVector<int64_t> perm;
  if (keys) {
    // rhs = Kᵀ: transpose(X, perm) with K = X permuted by perm then the
    // last two dims swapped.
    auto t = rhs.getDefiningOp<TransposeOp>();
    if (!t)
      return emitError(loc) << "--derive-kv-cache: the right operand of "
                            << nodeOf(at)
                            << " is not a transpose of the keys";
    perm.assign(t.getPermutation().begin(), t.getPermutation().end());
    int64_t rank = perm.size();
    SmallVector<int64_t> q(perm);
    std::swap(q[rank - 1], q[rank - 2]);
    bool identity = true;
    for (int64_t i = 0; i < rank; ++i)
      identity &= q[i] == i;
    if (identity) {
      k4 = t.getInput();
    } else {
      auto xt = cast<RankedTensorType>(t.getInput().getType());
      SmallVector<int64_t> shape;
      for (int64_t p : q)
        shape.push_back(xt.getDimSize(p));
      k4 = TransposeOp::create(b, loc,
                               RankedTensorType::get(shape,
                                                     xt.getElementType()),
                               t.getInput(), q);
    }
  }
  KVPath path = unwrapRepeat(k4);
  if (failed(checkStored(path.stored, at, keys ? "keys" : "values")))
    return failure();
  auto storedType = cast<RankedTensorType>(path.stored.getType());
  // The past input.
  std::string name =
      (options.past.empty() ? std::string("past_key_values.{i}.{kv}")
                            : options.past);
  auto fill = [&](std::string pattern) {
    std::string out;
    for (size_t i = 0; i < pattern.size();) {
      if (StringRef(pattern).substr(i).starts_with("{i}")) {
        out += std::to_string(layer);
        i += 3;
      } else if (StringRef(pattern).substr(i).starts_with("{kv}")) {
        out += keys ? "key" : "value";
        i += 4;
      } else {
        out += pattern[i++];
      }
    }
    return out;
  };
  std::string pastName = fill(name), presentName = fill(options.present);
  unsigned index = func.getNumArguments();
  if (failed(func.insertArgument(
          index, storedType,
          b.getDictionaryAttr(b.getNamedAttr(QuenchDialect::getNameAttrName(),
                                             b.getStringAttr(pastName))),
          func.getLoc())))
    return emitError(loc) << "cannot add the past input";
  Value past = func.getArgument(index);
  pastArgs.insert(past);
  if (!pastLen) {
    OpBuilder::InsertionGuard g2(b);
    b.setInsertionPointToStart(&func.getBody().front());
    Location fl = func.getLoc();
    auto scalar = RankedTensorType::get({}, b.getI64Type());
    Value shape = ShapeOfOp::create(
        b, fl, RankedTensorType::get({4}, b.getI64Type()), past);
    pastLen = GatherOp::create(b, fl, scalar, shape, i64Scalar(fl, 2), 0);
    Value ids = ShapeOfOp::create(
        b, fl, RankedTensorType::get({2}, b.getI64Type()), tokenIds);
    Value seq = GatherOp::create(b, fl, scalar, ids, i64Scalar(fl, 1), 0);
    keyLen = quench::AddOp::create(b, fl, scalar, pastLen, seq);
  }
  Value present = ConcatOp::create(b, loc, storedType,
                                   ValueRange{past, path.stored}, 2);
  presents.push_back({presentName, present});
  Value read = replay(present, path.repeat);
  if (!keys)
    return read;
  auto rt = cast<RankedTensorType>(read.getType());
  int64_t rank = rt.getRank();
  SmallVector<int64_t> swap, shape(rt.getShape());
  for (int64_t i = 0; i < rank; ++i)
    swap.push_back(i);
  std::swap(swap[rank - 1], swap[rank - 2]);
  std::swap(shape[rank - 1], shape[rank - 2]);
  return Value(TransposeOp::create(
      b, loc, RankedTensorType::get(shape, rt.getElementType()), read, swap));
}

/// The ops of a grouped-query repetition applied again to `stored`, their
/// run-time shapes with the key length P + S.
Value Deriver::replay(Value stored, ArrayRef<Operation *> ops) {
  Value v = stored;
  for (Operation *op : ops) {
    // The run-time shape first: the clone must come after the ops that
    // compute it.
    Value shape;
    if (op->getNumOperands() > 1)
      if (std::optional<int64_t> axis = keyAxis(op->getResult(0).getType()))
        shape = withKeyLength(op->getLoc(), op->getOperand(1), {*axis});
    Operation *c = b.clone(*op);
    c->setOperand(0, v);
    if (shape)
      c->setOperand(1, shape);
    v = c->getResult(0);
  }
  return v;
}

/// Evaluates the masks of a core as exported (`before[k]`: the operands of
/// `core.masks[k]` that are not the scores) with S = 5, proves that
/// together they hide exactly the later keys, and proves each rebuilt mask
/// (`after[k]`, evaluated with P = 3, S = 2 and P = 4, S = 1) equal to the
/// last rows of the original at P + S.
LogicalResult Deriver::checkMasks(const Core &core,
                                  ArrayRef<SmallVector<Value>> before,
                                  ArrayRef<SmallVector<Value>> after) {
  constexpr int64_t kSeq = 5;
  Operation *last = core.masks.front().op;
  // Whether `t` is [.., rows or 1, cols or 1] with every leading dim 1.
  auto fits = [](const Tensor &t, int64_t rows, int64_t cols) {
    int64_t rank = t.shape.size();
    for (int64_t d = 0; d + 2 < rank; ++d)
      if (t.shape[d] != 1)
        return false;
    if (rank >= 2 && t.shape[rank - 2] != 1 && t.shape[rank - 2] != rows)
      return false;
    return rank < 1 || t.shape[rank - 1] == 1 || t.shape[rank - 1] == cols;
  };
  auto entry = [](const Tensor &t, int64_t i, int64_t j) -> double {
    int64_t rank = t.shape.size();
    int64_t rows = rank >= 2 ? t.shape[rank - 2] : 1;
    int64_t cols = rank >= 1 ? t.shape[rank - 1] : 1;
    return t.data[(rows == 1 ? 0 : i) * cols + (cols == 1 ? 0 : j)];
  };
  Evaluator whole(kSeq, 0, evalInputs());
  SmallVector<SmallVector<Tensor>> orig;
  std::vector<bool> hidden(kSeq * kSeq, false);
  for (auto [site, values] : llvm::zip(core.masks, before)) {
    Operation *op = site.op;
    SmallVector<Tensor> m;
    for (Value v : values) {
      FailureOr<Tensor> t = whole.eval(v);
      if (failed(t)) {
        InFlightDiagnostic d = emitError(op->getLoc())
                               << "--derive-kv-cache: cannot evaluate the "
                                  "attention mask of "
                               << nodeOf(op);
        if (whole.failedAt)
          d << " at " << nodeOf(whole.failedAt);
        return d;
      }
      if (!fits(*t, kSeq, kSeq))
        return emitError(op->getLoc())
               << "--derive-kv-cache: the attention mask of " << nodeOf(op)
               << " varies over more than (query, key) positions";
      m.push_back(*t);
    }
    // A score is hidden when the mask adds a very negative value or
    // selects a very negative fill.
    for (int64_t i = 0; i < kSeq; ++i)
      for (int64_t j = 0; j < kSeq; ++j) {
        bool h;
        if (!isa<WhereOp>(op)) {
          h = entry(m[0], i, j) <= kMaskedBelow;
        } else {
          bool cond = entry(m[0], i, j) != 0;
          bool takesFill = site.scoresOperand == 2 ? cond : !cond;
          h = takesFill && entry(m[1], i, j) <= kMaskedBelow;
        }
        hidden[i * kSeq + j] = hidden[i * kSeq + j] || h;
      }
    orig.push_back(std::move(m));
  }
  for (int64_t i = 0; i < kSeq; ++i)
    for (int64_t j = 0; j < kSeq; ++j)
      if (hidden[i * kSeq + j] != (j > i))
        return emitError(last->getLoc())
               << "--derive-kv-cache: the attention mask of " << nodeOf(last)
               << " is not causal: query " << i << " "
               << (j > i ? "sees" : "does not see") << " key " << j
               << " (a cache needs each position to see exactly the "
                  "positions up to itself)";
  for (auto [past, seq] : {std::pair<int64_t, int64_t>{3, 2}, {4, 1}}) {
    Evaluator step(seq, past, evalInputs());
    for (auto [site, values, m] : llvm::zip(core.masks, after, orig))
      for (auto [k, v] : llvm::enumerate(values)) {
        FailureOr<Tensor> t = step.eval(v);
        bool same = succeeded(t) && fits(*t, seq, past + seq);
        for (int64_t i = 0; same && i < seq; ++i)
          for (int64_t j = 0; same && j < past + seq; ++j) {
            double x = entry(*t, i, j), y = entry(m[k], past + i, j);
            same = x == y || (std::isnan(x) && std::isnan(y));
          }
        if (!same) {
          InFlightDiagnostic d = emitError(site.op->getLoc())
                                 << "--derive-kv-cache: cannot shift the "
                                    "positions of the attention mask of "
                                 << nodeOf(site.op);
          if (failed(t) && step.failedAt)
            d << " (cannot evaluate " << nodeOf(step.failedAt) << ")";
          else
            d << " (the mask with past differs from the mask without)";
          return d;
        }
      }
  }
  return success();
}

LogicalResult Deriver::run(std::string &tokenInput) {
  Location loc = func.getLoc();
  StringRef nameAttr = QuenchDialect::getNameAttrName();
  // The token ids: the input named so, else the only integer input.
  int tokens = -1, integers = 0;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto n = func.getArgAttrOfType<StringAttr>(i, nameAttr);
    if (n && isPastInputName(n.getValue(), options.past))
      return emitError(loc) << "--derive-kv-cache: the model already has "
                               "past inputs ('"
                            << n.getValue()
                            << "'); compile it without --derive-kv-cache";
    auto t = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (t && isa<IntegerType>(t.getElementType()))
      ++integers;
    if (n && n.getValue() == options.inputIds)
      tokens = i;
  }
  if (tokens < 0 && integers == 1)
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (auto t = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
          t && isa<IntegerType>(t.getElementType()))
        tokens = i;
  if (tokens < 0)
    return emitError(loc) << "--derive-kv-cache: no token ids input named '"
                          << options.inputIds
                          << "' and not exactly one integer input (set the "
                             "name with --kv-input-ids)";
  auto tokenType = dyn_cast<RankedTensorType>(func.getArgument(tokens).getType());
  auto tokenName = func.getArgAttrOfType<StringAttr>(tokens, nameAttr);
  tokenInput = tokenName ? tokenName.getValue().str() : options.inputIds;
  tokenIds = func.getArgument(tokens);
  if (!tokenType || tokenType.getRank() != 2 || !tokenType.isDynamicDim(1))
    return emitError(loc)
           << "--derive-kv-cache: the token ids input '" << tokenInput
           << "' is " << func.getArgument(tokens).getType()
           << "; it needs a dynamic sequence length [batch, seq] (export "
              "with a dynamic sequence axis, e.g. torch.onnx.export's "
              "dynamic_axes)";
  for (BlockArgument a : func.getArguments()) {
    auto t = dyn_cast<RankedTensorType>(a.getType());
    auto n = func.getArgAttrOfType<StringAttr>(a.getArgNumber(), nameAttr);
    if (a.getArgNumber() == static_cast<unsigned>(tokens) || !t ||
        t.hasStaticShape())
      continue;
    // Hugging Face's signature: the mask over all positions (P + S once
    // derived; sessions feed ones), the positions of the new tokens.
    bool likeIds = t.getRank() == 2 && t.getDimSize(0) == 1 &&
                   t.isDynamicDim(1);
    if (n && likeIds && n.getValue() == options.attentionMask) {
      attentionMask = a;
      continue;
    }
    if (n && likeIds && n.getValue() == options.positionIds &&
        isa<IntegerType>(t.getElementType())) {
      positionIds = a;
      continue;
    }
    return emitError(loc) << "--derive-kv-cache: the model has another "
                             "input with a dynamic shape ("
                          << (n ? n.getValue() : StringRef("unnamed"))
                          << "); only the token ids, an attention mask "
                             "and position ids [1, seq] may be dynamic";
  }

  // Recognize every core before changing anything.
  SmallVector<Core> cores;
  WalkResult walk = func.walk([&](SoftmaxOp s) {
    FailureOr<Core> c = matchCore(s);
    if (failed(c))
      return WalkResult::interrupt();
    cores.push_back(*c);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  if (cores.empty())
    return emitError(loc) << "--derive-kv-cache: no attention (softmax of "
                             "Q·Kᵀ) found";
  for (Core &c : cores) {
    for (ReshapeOp r : c.scoreReshapes) {
      auto rt = cast<RankedTensorType>(r.getType());
      if (!rt.isDynamicDim(rt.getRank() - 1) || !r.getShape())
        return emitError(r.getLoc())
               << "--derive-kv-cache: " << nodeOf(r)
               << " reshapes attention scores to a static key length";
    }
    if (failed(checkStored(unwrapRepeat(c.pv.getRhs()).stored, c.pv,
                           "values")))
      return failure();
  }
  // Position ranges outside the masks: collected now, shifted last.
  SmallVector<RangeOp> ranges;
  func.walk([&](RangeOp r) {
    if (!cast<RankedTensorType>(r.getType()).hasStaticShape())
      ranges.push_back(r);
  });

  // Caches, masks and key lengths, core by core.
  for (auto [layer, core] : llvm::enumerate(cores)) {
    FailureOr<Value> kt =
        cacheSide(core.qk, core.qk.getRhs(), /*keys=*/true, layer);
    if (failed(kt))
      return failure();
    FailureOr<Value> v =
        cacheSide(core.pv, core.pv.getRhs(), /*keys=*/false, layer);
    if (failed(v))
      return failure();
    core.qk->setOperand(1, *kt);
    core.pv->setOperand(1, *v);
    // The keys as read (cacheSide returns their transpose).
    auto keysT = kt->getDefiningOp<TransposeOp>();
    for (ReshapeOp r : core.scoreReshapes) {
      b.setInsertionPoint(r);
      int64_t last = cast<RankedTensorType>(r.getType()).getRank() - 1;
      r->setOperand(1, keysT ? keyLengthFrom(r, last, keysT.getInput())
                             : withKeyLength(r.getLoc(), r.getShape(), {last}));
    }
    auto scoresType = cast<RankedTensorType>(core.softmax.getType());
    SmallVector<SmallVector<unsigned>> operandsOf;
    SmallVector<SmallVector<Value>> before, after;
    for (const MaskSite &site : core.masks) {
      SmallVector<unsigned> maskOperands;
      if (isa<WhereOp>(site.op))
        maskOperands = {0u, site.scoresOperand == 1 ? 2u : 1u};
      else
        maskOperands = {site.scoresOperand == 0 ? 1u : 0u};
      SmallVector<Value> b0, a0;
      for (unsigned i : maskOperands) {
        Value m = site.op->getOperand(i);
        auto mt = cast<RankedTensorType>(m.getType());
        SmallVector<Role> roles(mt.getRank(), Role::none);
        int64_t shift = scoresType.getRank() - mt.getRank();
        if (shift < 0)
          return emitError(site.op->getLoc())
                 << "--derive-kv-cache: the mask of " << nodeOf(site.op)
                 << " has a higher rank than the scores";
        if (mt.getRank() >= 1 && mt.getDimSize(mt.getRank() - 1) != 1)
          roles[mt.getRank() - 1] = Role::key;
        if (mt.getRank() >= 2 && mt.getDimSize(mt.getRank() - 2) != 1)
          roles[mt.getRank() - 2] = Role::query;
        FailureOr<Value> nm = rebuild(m, roles);
        if (failed(nm))
          return failure();
        b0.push_back(m);
        a0.push_back(*nm);
      }
      operandsOf.push_back(maskOperands);
      before.push_back(b0);
      after.push_back(a0);
    }
    if (failed(checkMasks(core, before, after)))
      return failure();
    for (auto [site, idx, nms] : llvm::zip(core.masks, operandsOf, after))
      for (auto [i, nm] : llvm::zip(idx, nms))
        site.op->setOperand(i, nm);
  }

  // The old mask computations are dead now; the ranges left index the
  // positions of the new tokens (rotary tables, position embeddings).
  auto eraseDead = [&] {
    bool changed = true;
    while (changed) {
      changed = false;
      SmallVector<Operation *> dead;
      func.walk([&](Operation *op) {
        if (op != func && !op->hasTrait<OpTrait::IsTerminator>() &&
            isOpTriviallyDead(op))
          dead.push_back(op);
      });
      for (Operation *op : llvm::reverse(dead)) {
        if (auto r = dyn_cast<RangeOp>(op))
          llvm::erase(ranges, r);
        op->erase();
        changed = true;
      }
    }
  };
  eraseDead();
  for (RangeOp r : ranges) {
    if (created.contains(r))
      continue;
    auto bounds = probe(r.getStart(), r.getLimit());
    if (bounds && (*bounds == std::make_pair<int64_t, int64_t>(3, 5) ||
                   *bounds == std::make_pair<int64_t, int64_t>(0, 5)))
      continue; // positions of the whole cached sequence already
    if (!bounds || *bounds != std::make_pair<int64_t, int64_t>(0, 2))
      return emitError(r.getLoc())
             << "--derive-kv-cache: " << nodeOf(r)
             << " is a range of a dynamic length that is not the positions "
                "0 .. S-1 of the new tokens";
    b.setInsertionPoint(r);
    Location l = r.getLoc();
    Value p = pastAs(l, r.getLimit().getType());
    Value start =
        quench::AddOp::create(b, l, r.getStart().getType(), r.getStart(), p);
    Value limit =
        quench::AddOp::create(b, l, r.getLimit().getType(), r.getLimit(), p);
    r->setOperands({start, limit, r.getDelta()});
  }

  // The present outputs.
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  SmallVector<Value> results(ret.getOperands());
  for (auto &[name, value] : presents) {
    unsigned index = func.getNumResults();
    if (failed(func.insertResult(
            index, value.getType(),
            b.getDictionaryAttr(b.getNamedAttr(nameAttr,
                                               b.getStringAttr(name))))))
      return emitError(loc) << "cannot add the present output";
    results.push_back(value);
  }
  ret->setOperands(results);
  return success();
}

struct QuenchDeriveKVCachePass
    : public quench::impl::QuenchDeriveKVCacheBase<QuenchDeriveKVCachePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isDeclaration())
      return;
    QuenchKVCacheOptions options;
    options.past = past;
    options.present = present;
    options.inputIds = inputIds;
    options.attentionMask = attentionMask;
    options.positionIds = positionIds;
    std::string tokens;
    if (failed(applyDeriveKVCache(func, options, tokens)))
      signalPassFailure();
  }
};

} // namespace

LogicalResult quench::applyDeriveKVCache(func::FuncOp func,
                                         const QuenchKVCacheOptions &options,
                                         std::string &tokenInput) {
  return Deriver(func, options).run(tokenInput);
}
