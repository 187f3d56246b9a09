//===- ScaleMigration.cpp - per-channel scales between ops ----------------===//
//
// Groups of linears sharing an input, and the folding of a per-channel
// scale of that input into its producer and the linears' weights
// (ScaleMigration.h). Shared by SmoothQuant (Smooth.cpp) and AWQ.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/Transforms/WeightConstants.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/DenseMap.h"

#include <cstring>
#include <vector>

using namespace mlir;
using namespace quench;

namespace {

/// The values of an f32 constant (a uniform value or raw data); migrated
/// constants are written back as f32.
std::optional<std::vector<float>> readF32(ConstantOp cst) {
  if (!cast<RankedTensorType>(cst.getType()).getElementType().isF32())
    return std::nullopt;
  return readFloatWeights(cst);
}

/// A constant operand that readF32 can read, with `elements` values.
ConstantOp f32Constant(Value v, int64_t elements) {
  auto cst = v ? v.getDefiningOp<ConstantOp>() : ConstantOp();
  if (!cst)
    return nullptr;
  auto type = dyn_cast<RankedTensorType>(cst.getType());
  if (!type || !type.getElementType().isF32() || !type.hasStaticShape() ||
      type.getNumElements() != elements || !hasReadableFloatWeights(cst))
    return nullptr;
  return cst;
}

/// The constant holding a linear's weight, and whether it is stored [K, N]
/// behind a 2-D transpose; null when the weight is not such a constant.
std::pair<ConstantOp, TransposeOp> weightConstant(LinearOp op) {
  Value w = op.getWeight();
  auto transpose = w.getDefiningOp<TransposeOp>();
  if (transpose && transpose.getPermutation() != ArrayRef<int64_t>{1, 0})
    return {nullptr, nullptr};
  auto wType = cast<RankedTensorType>(w.getType());
  ConstantOp cst =
      f32Constant(transpose ? transpose.getInput() : w, wType.getNumElements());
  return {cst, cst ? transpose : nullptr};
}

/// Whether `op` has a constant f32 weight (and bias, if any), so that its
/// output rows can absorb a scale.
bool rowsCanAbsorb(LinearOp op) {
  if (!weightConstant(op).first)
    return false;
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  return !op.getBias() || f32Constant(op.getBias(), wType.getDimSize(0));
}

std::string opName(Operation *op) { return op->getName().getStringRef().str(); }

/// The op that can absorb 1 / s for x (see findScaleGroups), or null with
/// `reason` set.
Operation *findAbsorber(Value x, int64_t channels, std::string &reason) {
  Operation *def = x.getDefiningOp();
  if (!def) {
    reason = "input is a function argument";
    return nullptr;
  }
  auto lastAxis = [&](int64_t axis) {
    int64_t rank = cast<RankedTensorType>(x.getType()).getRank();
    return axis == rank - 1 || axis == -1;
  };
  if (auto norm = dyn_cast<RMSNormOp>(def)) {
    if (lastAxis(norm.getAxis()) && f32Constant(norm.getScale(), channels))
      return def;
    reason = "input from a quench.rms_norm without a constant f32 scale over "
             "the last axis";
    return nullptr;
  }
  if (auto norm = dyn_cast<LayerNormOp>(def)) {
    if (lastAxis(norm.getAxis()) && f32Constant(norm.getScale(), channels) &&
        (!norm.getBias() || f32Constant(norm.getBias(), channels)))
      return def;
    reason = "input from a quench.layer_norm without a constant f32 scale "
             "and bias over the last axis";
    return nullptr;
  }
  if (auto linear = dyn_cast<LinearOp>(def)) {
    if (rowsCanAbsorb(linear))
      return def;
    reason = "input from a quench.linear without a constant f32 weight and "
             "bias";
    return nullptr;
  }
  if (auto mul = dyn_cast<MulOp>(def)) {
    // x = a * b elementwise: scaling b's channels scales x's, when b is a
    // linear's output read by nothing else.
    Type t = mul.getType();
    if (mul.getLhs().getType() == t && mul.getRhs().getType() == t) {
      for (Value operand : {mul.getRhs(), mul.getLhs()}) {
        auto linear = operand.getDefiningOp<LinearOp>();
        if (linear && operand.hasOneUse() && rowsCanAbsorb(linear))
          return linear;
      }
    }
    reason = "input from a quench.mul without a linear operand read only "
             "there";
    return nullptr;
  }
  reason = "input from " + opName(def);
  return nullptr;
}

std::string constantName(ConstantOp cst, StringRef suffix) {
  std::string base = "weight";
  if (auto res = dyn_cast<DenseResourceElementsAttr>(cst.getValue()))
    base = res.getRawHandle().getKey().str();
  return base + suffix.str();
}

/// A new f32 constant like `cst` holding `values`, created at `b`'s
/// insertion point, named after `cst` with `suffix`.
Value newConstant(OpBuilder &b, ConstantOp cst, ArrayRef<float> values,
                  StringRef suffix = "_scaled") {
  auto type = cast<RankedTensorType>(cst.getType());
  ArrayRef<char> bytes(reinterpret_cast<const char *>(values.data()),
                       values.size() * sizeof(float));
  return ConstantOp::create(
      b, cst.getLoc(), type,
      createConstantAttr(type, bytes, constantName(cst, suffix)));
}

void eraseIfUnused(Operation *op) {
  if (op && op->use_empty())
    op->erase();
}

/// operand <- operand / s (one value per channel; `rows` values per channel
/// when the channel is a row of a [channels, rows] matrix).
void divideOperand(Operation *user, unsigned index, ArrayRef<float> s,
                   int64_t perChannel) {
  auto cst = user->getOperand(index).getDefiningOp<ConstantOp>();
  std::vector<float> v = *readF32(cst);
  for (size_t j = 0; j < s.size(); ++j)
    for (int64_t i = 0; i < perChannel; ++i)
      v[j * perChannel + i] /= s[j];
  replaceF32Operand(user, index, v);
}

} // namespace

ConstantOp quench::getF32Constant(Value v, int64_t elements) {
  return f32Constant(v, elements);
}

bool quench::hasF32LinearWeight(LinearOp op) {
  return static_cast<bool>(weightConstant(op).first);
}

void quench::replaceF32Operand(Operation *user, unsigned index,
                               ArrayRef<float> values) {
  auto cst = user->getOperand(index).getDefiningOp<ConstantOp>();
  OpBuilder b(user);
  user->setOperand(index, newConstant(b, cst, values));
  eraseIfUnused(cst);
}

std::optional<std::vector<float>> quench::readLinearWeight(LinearOp op) {
  auto [cst, transpose] = weightConstant(op);
  if (!cst)
    return std::nullopt;
  return readFloatWeights(cst, static_cast<bool>(transpose));
}

std::vector<ScaleGroup> quench::findScaleGroups(ModuleOp module) {
  std::vector<ScaleGroup> groups;
  llvm::DenseMap<Value, size_t> byInput;
  module.walk([&](LinearOp op) {
    Value x = op.getInput();
    auto [it, inserted] = byInput.try_emplace(x, groups.size());
    if (!inserted)
      return;
    ScaleGroup g;
    g.input = x;
    auto xType = cast<RankedTensorType>(x.getType());
    g.channels = xType.getDimSize(xType.getRank() - 1);
    // Every user, in program order: the linears reading x as their input.
    SmallVector<Operation *> users(x.getUsers().begin(), x.getUsers().end());
    llvm::sort(users, [](Operation *a, Operation *b) {
      return a->getBlock() == b->getBlock() ? a->isBeforeInBlock(b) : a < b;
    });
    users.erase(std::unique(users.begin(), users.end()), users.end());
    for (Operation *user : users) {
      auto linear = dyn_cast<LinearOp>(user);
      if (!linear || linear.getInput() != x || linear.getWeight() == x ||
          linear.getBias() == x) {
        if (g.reason.empty())
          g.reason = "input also read by " + opName(user);
        continue;
      }
      g.linears.push_back(linear);
      g.names.push_back(getLayerName(linear.getLoc()));
      if (g.reason.empty() && !weightConstant(linear).first)
        g.reason = "layer " + g.names.back() + " has no constant f32 weight";
    }
    if (g.reason.empty() && !xType.getElementType().isF32())
      g.reason = "input is not f32";
    if (g.reason.empty() && ShapedType::isDynamic(g.channels))
      g.reason = "input has a dynamic channel count";
    if (g.reason.empty())
      g.absorber = findAbsorber(x, g.channels, g.reason);
    groups.push_back(std::move(g));
  });
  return groups;
}

void quench::replaceLinearWeight(LinearOp linear, std::vector<float> w,
                                 int64_t n, int64_t k, StringRef suffix) {
  auto [cst, transpose] = weightConstant(linear);
  OpBuilder b(linear);
  if (transpose) {
    std::vector<float> stored(w.size());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j)
        stored[j * n + r] = w[r * k + j];
    Value c = newConstant(b, cst, stored, suffix);
    Value t = TransposeOp::create(b, transpose.getLoc(), transpose.getType(),
                                  c, transpose.getPermutationAttr());
    linear.getWeightMutable().assign(t);
    eraseIfUnused(transpose);
  } else {
    linear.getWeightMutable().assign(newConstant(b, cst, w, suffix));
  }
  eraseIfUnused(cst);
}

void quench::migrateScales(const ScaleGroup &group, ArrayRef<float> s) {
  assert(group.absorber && static_cast<int64_t>(s.size()) == group.channels &&
         "migrateScales needs an absorber and one scale per channel");
  Operation *absorber = group.absorber;
  if (auto norm = dyn_cast<RMSNormOp>(absorber)) {
    divideOperand(norm, norm.getScaleMutable().getOperandNumber(), s, 1);
  } else if (auto norm = dyn_cast<LayerNormOp>(absorber)) {
    divideOperand(norm, norm.getScaleMutable().getOperandNumber(), s, 1);
    if (norm.getBias())
      divideOperand(norm, norm.getBiasMutable()[0].getOperandNumber(), s, 1);
  } else {
    // A linear's output rows: row j of W [N = channels, K] and bias[j].
    auto linear = cast<LinearOp>(absorber);
    std::vector<float> w = *readLinearWeight(linear);
    int64_t k = static_cast<int64_t>(w.size()) / group.channels;
    for (int64_t j = 0; j < group.channels; ++j)
      for (int64_t i = 0; i < k; ++i)
        w[j * k + i] /= s[j];
    replaceLinearWeight(linear, std::move(w), group.channels, k);
    if (linear.getBias())
      divideOperand(linear, linear.getBiasMutable()[0].getOperandNumber(), s,
                    1);
  }
  // Column j of every consumer's weight times s_j.
  for (LinearOp linear : group.linears) {
    std::vector<float> w = *readLinearWeight(linear);
    int64_t k = group.channels;
    int64_t n = static_cast<int64_t>(w.size()) / k;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j)
        w[r * k + j] *= s[j];
    replaceLinearWeight(linear, std::move(w), n, k);
  }
}
