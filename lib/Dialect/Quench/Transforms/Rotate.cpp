//===- Rotate.cpp - residual-stream rotation (QuaRot/SpinQuant) -----------===//
//
// Implements `quench-rotate` (Passes.td): the residual stream of an RMSNorm
// transformer is traced through the IR, checked to be one that an
// orthogonal Q can pass through, and then Q is folded into every weight
// that reads or writes it (the numerics of Q: lib/Quant/Rotation.cpp).
// Nothing changes unless the whole stream can be rotated.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"
#include "quench/Dialect/Quench/Transforms/WeightConstants.h"

#include "quench/Quant/Rotation.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

#include <cmath>
#include <optional>
#include <string>

namespace quench {
#define GEN_PASS_DEF_QUENCHROTATE
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench;
namespace qq = quench::quant;

namespace {

/// What the rotation does to one linear.
struct LinearPlan {
  /// Its input is rotated: W <- W diag(g) Q (g: `norm`'s scale, or 1 when
  /// the linear reads the stream itself).
  bool reads = false;
  RMSNormOp norm;
  /// Its output is rotated (added into the stream): W <- Q^T W, b <- b Q.
  bool writes = false;
};

/// One residual stream of width `dim` and everything the rotation touches.
struct Stream {
  int64_t dim = 0;
  /// The values that carry x Q after the rotation.
  llvm::SetVector<Value> values;
  /// Embedding lookups: their table becomes E Q.
  llvm::SetVector<GatherOp> tables;
  /// Constants on the stream (added into it): c <- c Q.
  llvm::SetVector<ConstantOp> constants;
  /// RMSNorms whose scale is folded into the linears reading them.
  llvm::SetVector<RMSNormOp> norms;
  llvm::MapVector<Operation *, LinearPlan> linears;
};

/// "'quench.add' (node /layers.0/Add)" for messages.
std::string describe(Operation *op) {
  std::string s = "'" + op->getName().getStringRef().str() + "'";
  std::string node = getNodeName(op->getLoc());
  if (!node.empty())
    s += " (node " + node + ")";
  return s;
}

/// The static size of `v`'s last dimension (1 for a rank-0 tensor), or
/// std::nullopt when dynamic or not a ranked tensor.
std::optional<int64_t> lastDim(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!type)
    return std::nullopt;
  if (type.getRank() == 0)
    return 1;
  int64_t d = type.getDimSize(type.getRank() - 1);
  if (ShapedType::isDynamic(d))
    return std::nullopt;
  return d;
}

bool isLastAxis(int64_t axis, int64_t rank) {
  return axis == rank - 1 || axis == -1;
}

/// Traces the streams of a module; the first problem found stops it.
class StreamTracer {
public:
  /// Traces the stream through `seed` (the input of an RMSNorm, of width
  /// `stream.dim`) into `stream`. False (with `error` and `errorOp` set)
  /// when it cannot be rotated.
  bool trace(Value seed, Stream &stream) {
    s = &stream;
    worklist.push_back(seed);
    while (!worklist.empty() && error.empty()) {
      Value v = worklist.pop_back_val();
      visitProducer(v);
      if (error.empty())
        visitUsers(v);
    }
    return error.empty();
  }

  std::string error;
  Operation *errorOp = nullptr;

private:
  void fail(Operation *op, const std::string &why) {
    if (!error.empty())
      return;
    errorOp = op;
    error = why;
  }

  /// Adds `v` to the stream (to be visited) after checking its type.
  void add(Value v, Operation *where) {
    if (s->values.contains(v))
      return;
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.getElementType().isF32())
      return fail(where, "the stream is not f32 at " + describe(where) +
                             " (only f32 models are rotated)");
    if (lastDim(v) != s->dim)
      return fail(where, describe(where) + " changes the hidden dimension");
    s->values.insert(v);
    worklist.push_back(v);
  }

  /// The op that produced stream value `v`.
  void visitProducer(Value v) {
    Operation *def = v.getDefiningOp();
    if (!def) {
      Operation *owner = cast<BlockArgument>(v).getOwner()->getParentOp();
      return fail(owner, "the stream is a function input (argument " +
                             std::to_string(
                                 cast<BlockArgument>(v).getArgNumber()) +
                             "), not an embedding lookup");
    }
    if (isa<AddOp, SubOp>(def)) {
      for (Value operand : def->getOperands()) {
        if (lastDim(operand) == 1)
          return fail(def, describe(def) + " adds a value broadcast over the "
                                           "hidden dimension");
        add(operand, def);
      }
      return;
    }
    if (isa<MulOp, DivOp>(def))
      return visitScaling(def, v, /*fromResult=*/true);
    if (auto reshape = dyn_cast<ReshapeOp>(def))
      return add(reshape.getInput(), def);
    if (isa<TransposeOp, SliceOp>(def))
      return passThrough(def, /*fromResult=*/true);
    if (auto gather = dyn_cast<GatherOp>(def)) {
      auto data = cast<RankedTensorType>(gather.getData().getType());
      if (data.getRank() == 2 && gather.getAxis() == 0 &&
          getF32Constant(gather.getData(), data.getNumElements())) {
        s->tables.insert(gather);
        return;
      }
      return passThrough(def, /*fromResult=*/true);
    }
    if (auto linear = dyn_cast<LinearOp>(def)) {
      if (!hasF32LinearWeight(linear) ||
          (linear.getBias() && !getF32Constant(linear.getBias(), s->dim)))
        return fail(def, describe(def) + " writes into the stream without a "
                                         "constant f32 weight and bias");
      s->linears[def].writes = true;
      return;
    }
    if (auto cst = dyn_cast<ConstantOp>(def)) {
      auto type = cast<RankedTensorType>(cst.getType());
      if (!type.hasStaticShape() ||
          !getF32Constant(cst.getResult(), type.getNumElements()))
        return fail(def, "a constant on the stream is not readable f32");
      s->constants.insert(cst);
      return;
    }
    fail(def, "the stream is produced by " + describe(def) +
                  ", which the rotation cannot pass through");
  }

  /// x * c or x / c with a per-row c (last dimension 1): commutes with Q.
  void visitScaling(Operation *op, Value stream, bool fromResult) {
    Value lhs = op->getOperand(0), rhs = op->getOperand(1);
    Value x = fromResult ? (lastDim(lhs) == s->dim ? lhs : rhs) : stream;
    Value c = x == lhs ? rhs : lhs;
    if (lastDim(c) != 1 || (isa<DivOp>(op) && x != lhs))
      return fail(op, describe(op) + " scales the stream per channel, which "
                                     "the rotation cannot pass through");
    add(fromResult ? x : op->getResult(0), op);
  }

  /// Reshapes, transposes, slices and gathers that keep the last axis
  /// whole: `op`'s stream input and its result are both on the stream.
  void passThrough(Operation *op, bool fromResult) {
    Value input = op->getOperand(0);
    int64_t rank = cast<RankedTensorType>(input.getType()).getRank();
    bool keeps = false;
    if (auto t = dyn_cast<TransposeOp>(op)) {
      keeps = t.getPermutation().back() == rank - 1;
    } else if (auto slice = dyn_cast<SliceOp>(op)) {
      keeps = slice.getStarts().back() == 0 && slice.getSteps().back() == 1 &&
              slice.getEnds().back() >= s->dim;
    } else if (auto gather = dyn_cast<GatherOp>(op)) {
      keeps = !isLastAxis(gather.getAxis(), rank);
    } else if (isa<ReshapeOp>(op)) {
      keeps = true;
    }
    if (!keeps)
      return fail(op, describe(op) + " rearranges the hidden dimension");
    add(fromResult ? input : op->getResult(0), op);
  }

  /// Every op reading stream value `v`.
  void visitUsers(Value v) {
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      unsigned index = use.getOperandNumber();
      if (isa<AddOp, SubOp>(user)) {
        add(user->getResult(0), user);
      } else if (isa<MulOp, DivOp>(user)) {
        visitScaling(user, v, /*fromResult=*/false);
      } else if (isa<ReshapeOp, TransposeOp, SliceOp>(user) ||
                 (isa<GatherOp>(user) && index == 0)) {
        passThrough(user, /*fromResult=*/false);
      } else if (auto linear = dyn_cast<LinearOp>(user)) {
        if (linear.getInput() != v || linear.getWeight() == v ||
            linear.getBias() == v || !hasF32LinearWeight(linear))
          return fail(user, describe(user) + " reads the stream without a "
                                             "constant f32 weight");
        s->linears[user].reads = true;
      } else if (auto norm = dyn_cast<RMSNormOp>(user)) {
        visitNorm(norm, v);
      } else if (isa<LayerNormOp>(user)) {
        return fail(user, describe(user) +
                              " reads the stream: LayerNorm subtracts the "
                              "channel mean, which a rotation does not "
                              "preserve (only RMSNorm models are rotated)");
      } else if (isa<func::ReturnOp>(user)) {
        return fail(user, "the stream is a function result (result " +
                              std::to_string(index) + ")");
      } else {
        return fail(user, describe(user) + " reads the stream, which the "
                                           "rotation cannot pass through");
      }
      if (!error.empty())
        return;
    }
  }

  /// An RMSNorm of the stream: its scale is folded into the linears that
  /// read it; with a scale of ones its output may go anywhere the stream
  /// can.
  void visitNorm(RMSNormOp norm, Value v) {
    if (s->norms.contains(norm))
      return;
    Operation *op = norm;
    int64_t rank = cast<RankedTensorType>(v.getType()).getRank();
    if (norm.getInput() != v || !isLastAxis(norm.getAxis(), rank) ||
        !getF32Constant(norm.getScale(), s->dim))
      return fail(op, describe(op) + " is not over the last axis with a "
                                     "constant f32 scale");
    Value out = norm.getResult();
    bool allLinears = llvm::all_of(out.getUses(), [&](OpOperand &use) {
      auto linear = dyn_cast<LinearOp>(use.getOwner());
      return linear && use.getOperandNumber() == 0 &&
             linear.getWeight() != out && linear.getBias() != out;
    });
    if (allLinears) {
      s->norms.insert(norm);
      for (Operation *user : out.getUsers()) {
        if (!hasF32LinearWeight(cast<LinearOp>(user)))
          return fail(user, describe(user) + " reads the stream without a "
                                             "constant f32 weight");
        LinearPlan &plan = s->linears[user];
        plan.reads = true;
        plan.norm = norm;
      }
      return;
    }
    std::vector<float> g = *readFloatWeights(
        getF32Constant(norm.getScale(), s->dim));
    if (llvm::any_of(g, [](float x) { return x != 1.0f; })) {
      Operation *other = nullptr;
      for (OpOperand &use : out.getUses())
        if (!isa<LinearOp>(use.getOwner()) || use.getOperandNumber() != 0)
          other = use.getOwner();
      return fail(op, "the output of " + describe(op) + " is read by " +
                          describe(other) +
                          ", which cannot absorb the norm's scale");
    }
    add(out, op);
  }

  Stream *s = nullptr;
  SmallVector<Value> worklist;
};

/// A small f32 or i64 constant of `shape` holding `values`.
Value smallConstant(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                    ArrayRef<float> values) {
  auto type = RankedTensorType::get(shape, b.getF32Type());
  return ConstantOp::create(b, loc, type,
                            DenseElementsAttr::get(type, values));
}
Value indexConstant(OpBuilder &b, Location loc, ArrayRef<int64_t> values) {
  auto type = RankedTensorType::get({static_cast<int64_t>(values.size())},
                                    b.getI64Type());
  return ConstantOp::create(b, loc, type,
                            DenseElementsAttr::get(type, values));
}

/// x R along the last axis of `x` (width r.dim()), computed at run time
/// with existing quench ops: x * (s / sqrt(2^k)); the odd factor as a
/// matmul over a [..., 2^k, m] view (static shapes only); then the
/// constant-geometry Walsh-Hadamard transform, log2(2^k) stages of
/// y = concat(x_even + x_odd, x_even - x_odd) over the pairs (2i, 2i + 1)
/// of the Hadamard index, which leaves H x in natural order.
Value emitOnlineRotation(OpBuilder &b, Location loc, Value x,
                         const qq::RandomRotation &r) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t n = r.dim(), p = r.hadamardOrder(), m = r.oddOrder();
  int64_t rank = type.getRank();
  std::vector<float> scale(n);
  double norm = 1.0 / std::sqrt(static_cast<double>(p));
  for (int64_t i = 0; i < n; ++i)
    scale[i] = static_cast<float>(r.signs()[i] * norm);
  Value t = MulOp::create(b, loc, type, x, smallConstant(b, loc, {n}, scale));
  if (m > 1) {
    SmallVector<int64_t> shape(type.getShape());
    shape.back() = p;
    shape.push_back(m);
    auto viewType = RankedTensorType::get(shape, type.getElementType());
    std::vector<float> odd(r.oddMatrix().begin(), r.oddMatrix().end());
    Value view = ReshapeOp::create(b, loc, viewType, t, Value());
    Value mixed = MatMulOp::create(b, loc, viewType, view,
                                   smallConstant(b, loc, {m, m}, odd));
    t = ReshapeOp::create(b, loc, type, mixed, Value());
  }
  if (p > 1) {
    std::vector<int64_t> even, oddIdx;
    for (int64_t i = 0; i < p / 2; ++i)
      for (int64_t j = 0; j < m; ++j) {
        even.push_back(2 * i * m + j);
        oddIdx.push_back((2 * i + 1) * m + j);
      }
    Value evenIdx = indexConstant(b, loc, even);
    Value oddIndices = indexConstant(b, loc, oddIdx);
    SmallVector<int64_t> half(type.getShape());
    half.back() = n / 2;
    auto halfType = RankedTensorType::get(half, type.getElementType());
    for (int64_t stage = 1; stage < p; stage *= 2) {
      Value a = GatherOp::create(b, loc, halfType, t, evenIdx, rank - 1);
      Value c = GatherOp::create(b, loc, halfType, t, oddIndices, rank - 1);
      Value sum = AddOp::create(b, loc, halfType, a, c);
      Value diff = SubOp::create(b, loc, halfType, a, c);
      t = ConcatOp::create(b, loc, type, ValueRange{sum, diff}, rank - 1);
    }
  }
  return t;
}

/// What the online rotations did.
struct OnlineCounts {
  int64_t rotated = 0, skipped = 0;
};

/// Rotates a traced stream by `q`; with `onlineSeed`, also the inputs of
/// the linears writing into it (their own rotation each, seeds
/// *onlineSeed, *onlineSeed + 1, ...).
void applyRotation(const Stream &s, const qq::RandomRotation &q,
                   std::optional<uint64_t> onlineSeed,
                   OnlineCounts &online) {
  int64_t d = s.dim;
  for (GatherOp gather : s.tables) {
    auto cst = gather.getData().getDefiningOp<ConstantOp>();
    std::vector<float> e = *readFloatWeights(cst);
    q.applyRight(e.data(), static_cast<int64_t>(e.size()) / d);
    replaceF32Operand(gather, gather.getDataMutable().getOperandNumber(), e);
  }
  for (ConstantOp cst : s.constants) {
    std::vector<float> c = *readFloatWeights(cst);
    q.applyRight(c.data(), static_cast<int64_t>(c.size()) / d);
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : cst->getUses())
      uses.push_back(&use);
    for (OpOperand *use : uses)
      replaceF32Operand(use->getOwner(), use->getOperandNumber(), c);
  }
  // Linears before norms: they read the norms' scales.
  for (auto [op, plan] : s.linears) {
    auto linear = cast<LinearOp>(op);
    std::vector<float> w = *readLinearWeight(linear);
    auto wType = cast<RankedTensorType>(linear.getWeight().getType());
    int64_t n = wType.getDimSize(0), k = wType.getDimSize(1);
    if (plan.reads) {
      if (plan.norm) {
        std::vector<float> g =
            *readFloatWeights(getF32Constant(plan.norm.getScale(), d));
        for (int64_t r = 0; r < n; ++r)
          for (int64_t j = 0; j < k; ++j)
            w[r * k + j] *= g[j];
      }
      q.applyRight(w.data(), n);
    }
    if (plan.writes)
      q.applyLeftTranspose(w.data(), k);
    if (plan.writes && onlineSeed) {
      auto inType = cast<RankedTensorType>(linear.getInput().getType());
      qq::RandomRotation r(k, *onlineSeed + online.rotated + online.skipped);
      if (r.oddOrder() > 1 && !inType.hasStaticShape()) {
        ++online.skipped;
      } else {
        ++online.rotated;
        r.applyRight(w.data(), n);
        OpBuilder b(linear);
        linear.getInputMutable().assign(
            emitOnlineRotation(b, linear.getLoc(), linear.getInput(), r));
      }
    }
    replaceLinearWeight(linear, std::move(w), n, k, "_rotated");
    if (plan.writes && linear.getBias()) {
      std::vector<float> b = *readFloatWeights(
          linear.getBias().getDefiningOp<ConstantOp>());
      q.applyRight(b.data(), 1);
      replaceF32Operand(linear, linear.getBiasMutable()[0].getOperandNumber(),
                        b);
    }
  }
  std::vector<float> ones(d, 1.0f);
  for (RMSNormOp norm : s.norms)
    replaceF32Operand(norm, norm.getScaleMutable().getOperandNumber(), ones);
}

struct QuenchRotatePass
    : public quench::impl::QuenchRotateBase<QuenchRotatePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (rotation == "none")
      return;
    if (rotation != "hadamard") {
      emitError(module.getLoc())
          << "rotation: unknown rotation '" << rotation
          << "': use hadamard or none";
      return signalPassFailure();
    }
    // Every stream first; nothing changes unless all can be rotated.
    std::vector<Stream> streams;
    StreamTracer tracer;
    WalkResult walk = module.walk([&](RMSNormOp norm) {
      Value x = norm.getInput();
      for (const Stream &s : streams)
        if (s.values.contains(x))
          return WalkResult::advance();
      std::optional<int64_t> d = lastDim(x);
      auto type = cast<RankedTensorType>(x.getType());
      if (!d || !isLastAxis(norm.getAxis(), type.getRank()))
        return WalkResult::advance();
      // A norm of per-head views (Qwen3's and Gemma 3's q/k norms, after
      // a reshape that splits the hidden dimension) is not on a residual
      // stream.
      if (auto reshape = x.getDefiningOp<ReshapeOp>())
        if (lastDim(reshape.getInput()) != d)
          return WalkResult::advance();
      Stream s;
      s.dim = *d;
      s.values.insert(x);
      if (!type.getElementType().isF32()) {
        tracer.errorOp = norm;
        tracer.error = "the stream is not f32 (only f32 models are rotated)";
        return WalkResult::interrupt();
      }
      if (!tracer.trace(x, s))
        return WalkResult::interrupt();
      streams.push_back(std::move(s));
      return WalkResult::advance();
    });
    if (walk.wasInterrupted()) {
      emitError(tracer.errorOp->getLoc())
          << "rotation: the residual stream cannot be rotated: "
          << tracer.error << "; the model is left as it is";
      return signalPassFailure();
    }
    if (streams.empty()) {
      InFlightDiagnostic error =
          emitError(module.getLoc())
          << "rotation: no residual stream found (the rotation needs "
             "quench.rms_norm over the last axis: LLaMA-style models)";
      if (module.walk([](LayerNormOp) { return WalkResult::interrupt(); })
              .wasInterrupted())
        error << "; the model normalizes with quench.layer_norm, which "
                 "subtracts the channel mean: a rotation does not preserve "
                 "it, so LayerNorm models are not rotated";
      return signalPassFailure();
    }
    for (auto [i, s] : llvm::enumerate(streams)) {
      qq::RandomRotation q(s.dim, seed + i);
      // The online rotations' seeds follow the streams'.
      OnlineCounts counts;
      std::optional<uint64_t> onlineSeed;
      if (online)
        onlineSeed = seed + streams.size() + 1000 * i;
      applyRotation(s, q, onlineSeed, counts);
      int64_t reads = 0, writes = 0;
      for (auto &entry : s.linears) {
        reads += entry.second.reads;
        writes += entry.second.writes;
      }
      InFlightDiagnostic remark = emitRemark(module.getLoc())
                                  << "rotation (hadamard, seed " << seed + i
                                  << "): residual stream of width " << s.dim
                                  << " rotated (Hadamard order "
                                  << q.hadamardOrder();
      if (q.oddOrder() > 1)
        remark << " x random orthogonal order " << q.oddOrder();
      remark << "): " << s.tables.size() << " embedding table"
             << (s.tables.size() == 1 ? "" : "s") << ", " << s.norms.size()
             << " norm scale" << (s.norms.size() == 1 ? "" : "s")
             << " folded, " << reads << " linear" << (reads == 1 ? "" : "s")
             << " reading it, " << writes << " writing into it";
      if (online) {
        remark << "; online Hadamard on the inputs of " << counts.rotated
               << " of them";
        if (counts.skipped)
          remark << " (" << counts.skipped
                 << " skipped: dynamic shape with an odd factor)";
      }
    }
  }
};

} // namespace
