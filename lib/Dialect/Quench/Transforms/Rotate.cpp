//===- Rotate.cpp - residual-stream rotation (QuaRot/SpinQuant) -----------===//
//
// Implements `quench-rotate` (Passes.td): the residual stream of an RMSNorm
// or LayerNorm transformer is traced through the IR, checked to be one that
// an orthogonal Q can pass through, and then Q is folded into every weight
// that reads or writes it (the numerics of Q: lib/Quant/Rotation.cpp). A
// stream that LayerNorms read is first centered (SliceGPT): everything
// written into it has its channel mean removed, after which every
// LayerNorm of it is an RMSNorm plus its bias. Nothing changes unless the
// whole stream can be rotated.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
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

/// The operands of a quench.rms_norm or quench.layer_norm.
struct NormParts {
  Value input, scale, bias;
  int64_t axis = 0;
  double epsilon = 0;
  bool layerNorm = false;
};

std::optional<NormParts> getNormParts(Operation *op) {
  if (auto n = dyn_cast<RMSNormOp>(op))
    return NormParts{n.getInput(), n.getScale(), Value(),
                     static_cast<int64_t>(n.getAxis()),
                     n.getEpsilon().convertToDouble(), false};
  if (auto n = dyn_cast<LayerNormOp>(op))
    return NormParts{n.getInput(), n.getScale(), n.getBias(),
                     static_cast<int64_t>(n.getAxis()),
                     n.getEpsilon().convertToDouble(), true};
  return std::nullopt;
}

/// What the rotation does to one linear.
struct LinearPlan {
  /// Its input is rotated: W <- W diag(g) Q (g: `norm`'s scale, or 1 when
  /// the linear reads the stream itself); a LayerNorm's bias b moves into
  /// the linear's bias: c <- c + W b.
  bool reads = false;
  Operation *norm = nullptr;
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
  /// Norms (quench.rms_norm, quench.layer_norm) whose scale (and bias) is
  /// folded into the linears reading them.
  llvm::SetVector<Operation *> norms;
  /// Every norm reading the stream (folded or with a unit scale).
  llvm::SetVector<Operation *> readers;
  /// LayerNorms read the stream: it is centered before it is rotated.
  bool centered = false;
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
    if (error.empty() && s->centered)
      checkCentered();
    return error.empty();
  }

  std::string error;
  Operation *errorOp = nullptr;

private:
  /// A centered stream (LayerNorms read it) may be read only through
  /// LayerNorms: centering changes the stream itself, which a LayerNorm
  /// does not see (it subtracts the mean anyway) but anything else would.
  void checkCentered() {
    for (Operation *norm : s->readers)
      if (isa<RMSNormOp>(norm))
        return fail(norm, describe(norm) +
                              " reads a stream that LayerNorms also read: "
                              "centering it for them would change this "
                              "norm's input");
    for (auto &[op, plan] : s->linears)
      if (plan.reads && !plan.norm)
        return fail(op, describe(op) +
                            " reads the stream directly: it is centered "
                            "for its LayerNorms, which would change this "
                            "linear's input");
  }

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
    // Reshapes and broadcasts of leading dimensions: add() checks that
    // both sides keep the hidden dimension last, so rows map to rows.
    if (isa<ReshapeOp, SqueezeOp, UnsqueezeOp, ExpandOp>(def))
      return add(def->getOperand(0), def);
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
    } else if (isa<ReshapeOp, SqueezeOp, UnsqueezeOp, ExpandOp>(op)) {
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
      if (isa<ShapeOfOp>(user))
        continue; // reads the shape only, which the rotation keeps
      if (isa<AddOp, SubOp>(user)) {
        add(user->getResult(0), user);
      } else if (isa<MulOp, DivOp>(user)) {
        visitScaling(user, v, /*fromResult=*/false);
      } else if (isa<ReshapeOp, TransposeOp, SliceOp, SqueezeOp,
                     UnsqueezeOp>(user) ||
                 (isa<GatherOp, ExpandOp>(user) && index == 0)) {
        passThrough(user, /*fromResult=*/false);
      } else if (auto linear = dyn_cast<LinearOp>(user)) {
        if (linear.getInput() != v || linear.getWeight() == v ||
            linear.getBias() == v || !hasF32LinearWeight(linear))
          return fail(user, describe(user) + " reads the stream without a "
                                             "constant f32 weight");
        s->linears[user].reads = true;
      } else if (isa<RMSNormOp, LayerNormOp>(user)) {
        visitNorm(user, v);
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

  /// An RMSNorm or LayerNorm of the stream: its scale (and bias) is folded
  /// into the linears that read it; with a scale of ones (and no bias or a
  /// zero one) its output may go anywhere the stream can.
  void visitNorm(Operation *op, Value v) {
    if (s->readers.contains(op))
      return;
    NormParts norm = *getNormParts(op);
    int64_t rank = cast<RankedTensorType>(v.getType()).getRank();
    if (norm.input != v || !isLastAxis(norm.axis, rank) ||
        !getF32Constant(norm.scale, s->dim) ||
        (norm.bias && !getF32Constant(norm.bias, s->dim)))
      return fail(op, describe(op) + " is not over the last axis with a "
                                     "constant f32 scale" +
                          (norm.layerNorm ? " and bias" : ""));
    s->readers.insert(op);
    s->centered |= norm.layerNorm;
    Value out = op->getResult(0);
    bool allLinears = llvm::all_of(out.getUses(), [&](OpOperand &use) {
      if (isa<ShapeOfOp>(use.getOwner()))
        return true;
      auto linear = dyn_cast<LinearOp>(use.getOwner());
      return linear && use.getOperandNumber() == 0 &&
             linear.getWeight() != out && linear.getBias() != out;
    });
    if (allLinears) {
      s->norms.insert(op);
      for (Operation *user : out.getUsers()) {
        if (isa<ShapeOfOp>(user))
          continue;
        if (!hasF32LinearWeight(cast<LinearOp>(user)))
          return fail(user, describe(user) + " reads the stream without a "
                                             "constant f32 weight");
        LinearPlan &plan = s->linears[user];
        plan.reads = true;
        plan.norm = op;
      }
      return;
    }
    std::vector<float> g =
        *readFloatWeights(getF32Constant(norm.scale, s->dim));
    std::vector<float> b(s->dim, 0.0f);
    if (norm.bias)
      b = *readFloatWeights(getF32Constant(norm.bias, s->dim));
    if (llvm::any_of(g, [](float x) { return x != 1.0f; }) ||
        llvm::any_of(b, [](float x) { return x != 0.0f; })) {
      Operation *other = nullptr;
      for (OpOperand &use : out.getUses())
        if (!isa<LinearOp, ShapeOfOp>(use.getOwner()) ||
            (isa<LinearOp>(use.getOwner()) && use.getOperandNumber() != 0))
          other = use.getOwner();
      return fail(op, "the output of " + describe(op) + " is read by " +
                          describe(other) +
                          ", which cannot absorb the norm's scale" +
                          (norm.layerNorm ? " and bias" : ""));
    }
    add(out, op);
  }

  Stream *s = nullptr;
  SmallVector<Value> worklist;
};

/// A small f32 constant of `shape` holding `values`.
Value smallConstant(OpBuilder &b, Location loc, ArrayRef<int64_t> shape,
                    ArrayRef<float> values) {
  auto type = RankedTensorType::get(shape, b.getF32Type());
  return ConstantOp::create(b, loc, type,
                            DenseElementsAttr::get(type, values));
}

/// x R along the last axis of `x` (width r.dim()), computed at run time:
/// x * (s / sqrt(2^k)); the odd factor as a matmul over a [..., 2^k, m]
/// view (static shapes only); then quench.hadamard of order 2^k (the fast
/// Walsh-Hadamard transform with stride m, H_{2^k} (x) I_m).
Value emitOnlineRotation(OpBuilder &b, Location loc, Value x,
                         const qq::RandomRotation &r) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t n = r.dim(), p = r.hadamardOrder(), m = r.oddOrder();
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
  if (p > 1)
    t = HadamardOp::create(b, loc, type, t, p);
  return t;
}

/// What the online rotations did.
struct OnlineCounts {
  int64_t rotated = 0, skipped = 0;
};

/// x <- x P for `rows` consecutive rows of `d` values, P = I - 1 1^T / d:
/// each row loses its mean.
void centerRows(std::vector<float> &x, int64_t d) {
  for (size_t r = 0; r + d <= x.size(); r += d) {
    double mean = 0;
    for (int64_t j = 0; j < d; ++j)
      mean += x[r + j];
    mean /= static_cast<double>(d);
    for (int64_t j = 0; j < d; ++j)
      x[r + j] = static_cast<float>(x[r + j] - mean);
  }
}

/// W <- P W for a row-major [d, cols] matrix: each column loses its mean.
void centerColumns(std::vector<float> &w, int64_t d, int64_t cols) {
  for (int64_t c = 0; c < cols; ++c) {
    double mean = 0;
    for (int64_t r = 0; r < d; ++r)
      mean += w[r * cols + c];
    mean /= static_cast<double>(d);
    for (int64_t r = 0; r < d; ++r)
      w[r * cols + c] = static_cast<float>(w[r * cols + c] - mean);
  }
}

/// The f32 values of constant `v` (`elements` of them).
std::vector<float> readConstant(Value v, int64_t elements) {
  return *readFloatWeights(getF32Constant(v, elements));
}

/// Sets `linear`'s bias to `b` (a new constant when it had none).
void setBias(LinearOp linear, ArrayRef<float> b) {
  if (linear.getBias()) {
    replaceF32Operand(linear, linear.getBiasMutable()[0].getOperandNumber(),
                      b);
    return;
  }
  OpBuilder builder(linear);
  auto type = RankedTensorType::get({static_cast<int64_t>(b.size())},
                                    builder.getF32Type());
  ArrayRef<char> bytes(reinterpret_cast<const char *>(b.data()),
                       b.size() * sizeof(float));
  std::string name = "bias_rotated";
  if (std::string node = getNodeName(linear.getLoc()); !node.empty())
    name = node + "_bias_rotated";
  Value cst = ConstantOp::create(builder, linear.getLoc(), type,
                                 createConstantAttr(type, bytes, name));
  linear.getBiasMutable().assign(cst);
}

/// Replaces a LayerNorm of a centered stream (its scale and bias already
/// folded, or one and zero) by the RMSNorm it equals there.
void replaceLayerNorm(LayerNormOp norm, int64_t d) {
  OpBuilder b(norm);
  auto scaleType = cast<RankedTensorType>(norm.getScale().getType());
  std::vector<float> ones(d, 1.0f);
  Value scale = ConstantOp::create(
      b, norm.getLoc(), scaleType, DenseElementsAttr::get(scaleType, ArrayRef<float>(ones)));
  auto rms = RMSNormOp::create(b, norm.getLoc(), norm.getType(),
                               norm.getInput(), scale, norm.getAxisAttr(),
                               norm.getEpsilonAttr());
  Operation *oldScale = norm.getScale().getDefiningOp();
  Operation *oldBias = norm.getBias() ? norm.getBias().getDefiningOp()
                                      : nullptr;
  norm.getResult().replaceAllUsesWith(rms.getResult());
  norm.erase();
  if (oldScale && oldScale->use_empty())
    oldScale->erase();
  if (oldBias && oldBias != oldScale && oldBias->use_empty())
    oldBias->erase();
}

/// Rotates a traced stream by `q` (centering it first when LayerNorms
/// read it); with `onlineSeed`, also the inputs of the linears writing
/// into it (their own rotation each, seeds *onlineSeed, *onlineSeed + 1,
/// ...).
void applyRotation(const Stream &s, const qq::RandomRotation &q,
                   std::optional<uint64_t> onlineSeed,
                   OnlineCounts &online) {
  int64_t d = s.dim;
  for (GatherOp gather : s.tables) {
    auto cst = gather.getData().getDefiningOp<ConstantOp>();
    std::vector<float> e = *readFloatWeights(cst);
    if (s.centered)
      centerRows(e, d);
    q.applyRight(e.data(), static_cast<int64_t>(e.size()) / d);
    replaceF32Operand(gather, gather.getDataMutable().getOperandNumber(), e);
  }
  for (ConstantOp cst : s.constants) {
    std::vector<float> c = *readFloatWeights(cst);
    if (s.centered)
      centerRows(c, d);
    q.applyRight(c.data(), static_cast<int64_t>(c.size()) / d);
    SmallVector<OpOperand *> uses;
    for (OpOperand &use : cst->getUses())
      uses.push_back(&use);
    for (OpOperand *use : uses)
      replaceF32Operand(use->getOwner(), use->getOperandNumber(), c);
  }
  // Linears before norms: they read the norms' scales and biases.
  for (auto [op, plan] : s.linears) {
    auto linear = cast<LinearOp>(op);
    std::vector<float> w = *readLinearWeight(linear);
    auto wType = cast<RankedTensorType>(linear.getWeight().getType());
    int64_t n = wType.getDimSize(0), k = wType.getDimSize(1);
    std::optional<std::vector<float>> bias;
    if (linear.getBias())
      bias = readConstant(linear.getBias(), n);
    bool biasChanged = false;
    if (plan.reads && plan.norm) {
      NormParts norm = *getNormParts(plan.norm);
      if (norm.bias) {
        biasChanged = true;
        // c <- c + W b, with the linear's weight before anything else.
        std::vector<float> nb = readConstant(norm.bias, d);
        if (!bias)
          bias = std::vector<float>(n, 0.0f);
        for (int64_t r = 0; r < n; ++r) {
          double acc = (*bias)[r];
          for (int64_t j = 0; j < k; ++j)
            acc += static_cast<double>(w[r * k + j]) * nb[j];
          (*bias)[r] = static_cast<float>(acc);
        }
      }
      std::vector<float> g = readConstant(norm.scale, d);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < k; ++j)
          w[r * k + j] *= g[j];
    }
    if (plan.reads)
      q.applyRight(w.data(), n);
    if (plan.writes) {
      if (s.centered) {
        centerColumns(w, n, k);
        if (bias)
          centerRows(*bias, n);
      }
      q.applyLeftTranspose(w.data(), k);
      if (bias) {
        q.applyRight(bias->data(), 1);
        biasChanged = true;
      }
    }
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
    if (biasChanged)
      setBias(linear, *bias);
  }
  std::vector<float> ones(d, 1.0f);
  for (Operation *op : s.readers) {
    if (auto norm = dyn_cast<LayerNormOp>(op)) {
      replaceLayerNorm(norm, d);
    } else if (s.norms.contains(op)) {
      auto rms = cast<RMSNormOp>(op);
      replaceF32Operand(rms, rms.getScaleMutable().getOperandNumber(), ones);
    }
  }
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
    WalkResult walk = module.walk([&](Operation *norm) {
      std::optional<NormParts> parts = getNormParts(norm);
      if (!parts)
        return WalkResult::advance();
      Value x = parts->input;
      for (const Stream &s : streams)
        if (s.values.contains(x))
          return WalkResult::advance();
      std::optional<int64_t> d = lastDim(x);
      auto type = cast<RankedTensorType>(x.getType());
      if (!d || !isLastAxis(parts->axis, type.getRank()))
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
      emitError(module.getLoc())
          << "rotation: no residual stream found (the rotation needs "
             "quench.rms_norm or quench.layer_norm over the last axis of "
             "the hidden state: transformer models)";
      return signalPassFailure();
    }
    for (auto [i, s] : llvm::enumerate(streams)) {
      qq::RandomRotation q(s.dim, seed + i);
      // The online rotations' seeds follow the streams'.
      OnlineCounts counts;
      std::optional<uint64_t> onlineSeed;
      if (online)
        onlineSeed = seed + streams.size() + 1000 * i;
      int64_t layerNorms = llvm::count_if(
          s.readers, [](Operation *op) { return isa<LayerNormOp>(op); });
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
      if (s.centered)
        remark << "; centered first: " << layerNorms << " LayerNorm"
               << (layerNorms == 1 ? "" : "s") << " now RMSNorm"
               << (layerNorms == 1 ? "" : "s");
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
