//===- FuseParallelLinears.cpp - one product for linears sharing an input -===//
//
// quench-fuse-parallel-linears: linears (quench.linear with a constant
// weight, quench.matmul_nbits with constant codes) that read the same input
// become one product whose weights are the members' concatenated along the
// output features N, and a quench.split of its last dimension gives each
// member's result. Every operand that is indexed by N (the weight rows or,
// for a [K, N] weight under a transpose, its columns; codes, scales and zero
// points, per output feature; the bias) is concatenated, so the fused
// product computes each output feature exactly as its layer did.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/Transforms/FuseParallelLinears.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/MappedFile.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/MapVector.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHFUSEPARALLELLINEARS
#include "quench/Dialect/Quench/Transforms/FusePasses.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench;

namespace {

/// The raw bytes of `v` when it is a non-splat quench.constant.
std::optional<ArrayRef<char>> constantBytes(Value v) {
  auto cst = v ? v.getDefiningOp<ConstantOp>() : ConstantOp();
  if (!cst)
    return std::nullopt;
  return getRawConstantData(cst.getValue());
}

/// The splat `dense` literal `v` is defined by, if any (an all-zero bias,
/// equal scales).
DenseElementsAttr splatConstant(Value v) {
  auto cst = v ? v.getDefiningOp<ConstantOp>() : ConstantOp();
  auto dense = cst ? dyn_cast<DenseElementsAttr>(cst.getValue())
                   : DenseElementsAttr();
  if (!dense || !dense.isSplat() ||
      getStorageBytesPerElement(dense.getElementType()) == 0)
    return {};
  return dense;
}

/// Whether appendConstantBytes can read `v`.
bool isConstantData(Value v) {
  return constantBytes(v) || splatConstant(v);
}

/// Appends the row-major bytes of the constant `v` (isConstantData). The
/// members' data is read once: its mapped pages are dropped from the RSS
/// after the copy (the fused constant goes to the weight arena), so fusing
/// every layer does not keep every member's weights resident (issue #20).
void appendConstantBytes(Value v, std::vector<char> &bytes) {
  if (std::optional<ArrayRef<char>> data = constantBytes(v)) {
    bytes.insert(bytes.end(), data->begin(), data->end());
    releaseMappedPages(*data);
    return;
  }
  DenseElementsAttr splat = splatConstant(v);
  ArrayRef<char> one = splat.getRawData();
  size_t item = static_cast<size_t>(
      getStorageBytesPerElement(splat.getElementType()));
  for (int64_t i = 0, e = splat.getNumElements(); i < e; ++i)
    bytes.insert(bytes.end(), one.begin(), one.begin() + item);
}

/// A weight operand of quench.linear: a constant [N, K], or a constant
/// [K, N] under a 2-D transpose.
struct LinearWeight {
  ArrayRef<char> bytes;
  RankedTensorType storedType;
  bool transposed = false;
};

std::optional<LinearWeight> getLinearWeight(Value weight) {
  LinearWeight w;
  if (auto t = weight.getDefiningOp<TransposeOp>()) {
    if (t.getPermutation() != ArrayRef<int64_t>{1, 0})
      return std::nullopt;
    weight = t.getInput();
    w.transposed = true;
  }
  std::optional<ArrayRef<char>> bytes = constantBytes(weight);
  auto type = dyn_cast<RankedTensorType>(weight.getType());
  if (!bytes || !type || type.getRank() != 2 || !type.hasStaticShape())
    return std::nullopt;
  w.bytes = *bytes;
  w.storedType = type;
  return w;
}

/// The type of an operand of `op`, or a null type when it is absent (the
/// compatibility key compares both).
Type typeOrNull(Value v) { return v ? v.getType() : Type(); }

/// Whether every static dim but the first of `a` and `b` match (operands
/// indexed by N in their first dimension).
bool sameTrailingShape(Type a, Type b) {
  if (!a || !b)
    return !a && !b;
  auto ta = dyn_cast<RankedTensorType>(a), tb = dyn_cast<RankedTensorType>(b);
  if (!ta || !tb || ta.getElementType() != tb.getElementType() ||
      ta.getRank() != tb.getRank() || !ta.hasStaticShape() ||
      !tb.hasStaticShape())
    return false;
  return ta.getShape().drop_front() == tb.getShape().drop_front();
}

/// Whether `op` can be a member of a fused product, and its N.
std::optional<int64_t> fusableOutputFeatures(Operation *op) {
  auto resultType = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!resultType || resultType.getRank() < 1 ||
      resultType.isDynamicDim(resultType.getRank() - 1))
    return std::nullopt;
  if (auto linear = dyn_cast<LinearOp>(op)) {
    std::optional<LinearWeight> w = getLinearWeight(linear.getWeight());
    if (!w || (linear.getBias() && !isConstantData(linear.getBias())))
      return std::nullopt;
    return w->storedType.getDimSize(w->transposed ? 1 : 0);
  }
  if (auto nbits = dyn_cast<MatMulNBitsOp>(op)) {
    if (!isConstantData(nbits.getWeight()) ||
        !isConstantData(nbits.getScales()) ||
        (nbits.getZeroPoints() && !isConstantData(nbits.getZeroPoints())) ||
        (nbits.getBias() && !isConstantData(nbits.getBias())))
      return std::nullopt;
    // The flat forms of scales and zero points are [N * blocks] and
    // [N * bytes per row]: concatenation along N is concatenation of the
    // flat arrays as long as every operand has N rows of equal length.
    return nbits.getOutFeatures();
  }
  return std::nullopt;
}

/// Whether `a` and `b` (both fusable) can be one product.
bool compatible(Operation *a, Operation *b) {
  if (a->getName() != b->getName() ||
      a->getDiscardableAttrDictionary() != b->getDiscardableAttrDictionary())
    return false;
  auto ra = cast<RankedTensorType>(a->getResult(0).getType());
  auto rb = cast<RankedTensorType>(b->getResult(0).getType());
  if (ra.getElementType() != rb.getElementType() ||
      ra.getShape().drop_back() != rb.getShape().drop_back())
    return false;
  if (auto la = dyn_cast<LinearOp>(a)) {
    auto lb = cast<LinearOp>(b);
    LinearWeight wa = *getLinearWeight(la.getWeight());
    LinearWeight wb = *getLinearWeight(lb.getWeight());
    if (wa.transposed != wb.transposed ||
        wa.storedType.getElementType() != wb.storedType.getElementType())
      return false;
    // The K dimension: the rows of a [K, N] weight, the columns of [N, K].
    int kDim = wa.transposed ? 0 : 1;
    return wa.storedType.getDimSize(kDim) == wb.storedType.getDimSize(kDim) &&
           !la.getBias() == !lb.getBias() &&
           (!la.getBias() || sameTrailingShape(typeOrNull(la.getBias()),
                                               typeOrNull(lb.getBias())));
  }
  auto na = cast<MatMulNBitsOp>(a), nb = cast<MatMulNBitsOp>(b);
  if (na.getBits() != nb.getBits() || na.getBlockSize() != nb.getBlockSize() ||
      na.getInFeatures() != nb.getInFeatures() ||
      !sameTrailingShape(typeOrNull(na.getWeight()),
                         typeOrNull(nb.getWeight())) ||
      !sameTrailingShape(typeOrNull(na.getBias()), typeOrNull(nb.getBias())))
    return false;
  // Scales and zero points: [N, x] compares x; the flat [N * x] forms
  // compare x = size / N.
  auto samePerRow = [&](Value va, Value vb) {
    if (!va || !vb)
      return !va && !vb;
    auto ta = dyn_cast<RankedTensorType>(va.getType());
    auto tb = dyn_cast<RankedTensorType>(vb.getType());
    if (!ta || !tb || !ta.hasStaticShape() || !tb.hasStaticShape() ||
        ta.getElementType() != tb.getElementType() ||
        ta.getRank() != tb.getRank())
      return false;
    if (ta.getRank() != 1)
      return sameTrailingShape(ta, tb);
    return ta.getNumElements() % na.getOutFeatures() == 0 &&
           tb.getNumElements() % nb.getOutFeatures() == 0 &&
           ta.getNumElements() / na.getOutFeatures() ==
               tb.getNumElements() / nb.getOutFeatures();
  };
  return samePerRow(na.getScales(), nb.getScales()) &&
         samePerRow(na.getZeroPoints(), nb.getZeroPoints());
}

/// A constant whose first dimension (N) is the sum of the members'
/// operands' first dimensions and whose bytes are theirs in order.
Value concatRows(OpBuilder &b, Location loc, ArrayRef<Value> parts,
                 StringRef nameHint) {
  auto first = cast<RankedTensorType>(parts.front().getType());
  int64_t rows = 0;
  std::vector<char> bytes;
  for (Value v : parts) {
    auto type = cast<RankedTensorType>(v.getType());
    rows += type.getDimSize(0);
    appendConstantBytes(v, bytes);
  }
  SmallVector<int64_t> shape(first.getShape());
  shape[0] = rows;
  auto type = RankedTensorType::get(shape, first.getElementType());
  return ConstantOp::create(b, loc, type,
                            createConstantAttr(type, bytes, nameHint));
}

/// The [K, sum N] constant of the members' [K, N_i] weights side by side.
Value concatColumns(OpBuilder &b, Location loc, ArrayRef<LinearWeight> parts,
                    StringRef nameHint) {
  Type elementType = parts.front().storedType.getElementType();
  int64_t itemBytes = getStorageBytesPerElement(elementType);
  int64_t k = parts.front().storedType.getDimSize(0), n = 0;
  for (const LinearWeight &w : parts)
    n += w.storedType.getDimSize(1);
  std::vector<char> bytes;
  bytes.reserve(static_cast<size_t>(k * n * itemBytes));
  for (int64_t row = 0; row < k; ++row)
    for (const LinearWeight &w : parts) {
      int64_t rowBytes = w.storedType.getDimSize(1) * itemBytes;
      const char *src = w.bytes.data() + row * rowBytes;
      bytes.insert(bytes.end(), src, src + rowBytes);
    }
  for (const LinearWeight &w : parts)
    releaseMappedPages(w.bytes); // read once, as appendConstantBytes
  auto type = RankedTensorType::get({k, n}, elementType);
  return ConstantOp::create(b, loc, type,
                            createConstantAttr(type, bytes, nameHint));
}

/// Replaces the members (in program order, same block, same input) by one
/// product and a split.
void fuse(ArrayRef<Operation *> members, ArrayRef<int64_t> sizes) {
  Operation *first = members.front();
  OpBuilder b(first);
  SmallVector<Location> locs;
  for (Operation *op : members)
    locs.push_back(op->getLoc());
  Location loc = b.getFusedLoc(locs);
  int64_t total = 0;
  for (int64_t n : sizes)
    total += n;
  auto firstType = cast<RankedTensorType>(first->getResult(0).getType());
  SmallVector<int64_t> shape(firstType.getShape());
  shape.back() = total;
  auto resultType = RankedTensorType::get(shape, firstType.getElementType());
  auto collect = [&](auto getter) {
    SmallVector<Value> values;
    for (Operation *op : members)
      values.push_back(getter(op));
    return values;
  };

  Value fused;
  if (auto linear = dyn_cast<LinearOp>(first)) {
    SmallVector<LinearWeight> weights;
    for (Operation *op : members)
      weights.push_back(*getLinearWeight(cast<LinearOp>(op).getWeight()));
    Value weight;
    if (weights.front().transposed) {
      Value stored = concatColumns(b, loc, weights, "fused_linear_weight");
      auto type = cast<RankedTensorType>(stored.getType());
      weight = TransposeOp::create(
          b, loc,
          RankedTensorType::get({type.getDimSize(1), type.getDimSize(0)},
                                type.getElementType()),
          stored, b.getDenseI64ArrayAttr({1, 0}));
    } else {
      weight = concatRows(
          b, loc,
          collect([](Operation *op) { return cast<LinearOp>(op).getWeight(); }),
          "fused_linear_weight");
    }
    Value bias;
    if (linear.getBias())
      bias = concatRows(
          b, loc,
          collect([](Operation *op) { return cast<LinearOp>(op).getBias(); }),
          "fused_linear_bias");
    fused = LinearOp::create(b, loc, resultType, linear.getInput(), weight,
                             bias)
                .getResult();
  } else {
    auto nbits = cast<MatMulNBitsOp>(first);
    auto operand = [&](auto getter, StringRef hint) -> Value {
      if (!getter(nbits))
        return Value();
      return concatRows(b, loc, collect([&](Operation *op) {
                          return getter(cast<MatMulNBitsOp>(op));
                        }),
                        hint);
    };
    Value weight = operand([](MatMulNBitsOp o) { return o.getWeight(); },
                           "fused_nbits_codes");
    Value scales = operand([](MatMulNBitsOp o) { return o.getScales(); },
                           "fused_nbits_scales");
    Value zeroPoints = operand(
        [](MatMulNBitsOp o) { return o.getZeroPoints(); }, "fused_nbits_zp");
    Value bias = operand([](MatMulNBitsOp o) { return o.getBias(); },
                         "fused_nbits_bias");
    auto op = MatMulNBitsOp::create(
        b, loc, resultType, nbits.getInput(), weight, scales, zeroPoints, bias,
        nbits.getInFeaturesAttr(), b.getI64IntegerAttr(total),
        nbits.getBitsAttr(), nbits.getBlockSizeAttr());
    fused = op.getResult();
  }
  fused.getDefiningOp()->setDiscardableAttrs(
      first->getDiscardableAttrDictionary());

  SmallVector<Type> types;
  for (Operation *op : members)
    types.push_back(op->getResult(0).getType());
  auto split = SplitOp::create(b, loc, types, fused,
                               b.getI64IntegerAttr(shape.size() - 1),
                               b.getDenseI64ArrayAttr(sizes));
  for (auto [op, result] : llvm::zip_equal(members, split.getResults())) {
    op->getResult(0).replaceAllUsesWith(result);
    op->erase();
  }
}

struct FuseParallelLinearsPass
    : public quench::impl::QuenchFuseParallelLinearsBase<
          FuseParallelLinearsPass> {
  void runOnOperation() override {
    // Per block, per input value: groups of compatible products in program
    // order (a product joins the first group it is compatible with).
    struct Group {
      SmallVector<Operation *> members;
      SmallVector<int64_t> sizes;
    };
    SmallVector<Group> groups;
    getOperation().walk([&](Block *block) {
      llvm::MapVector<Value, SmallVector<size_t>> byInput;
      for (Operation &op : *block) {
        if (!isa<LinearOp, MatMulNBitsOp>(op))
          continue;
        std::optional<int64_t> n = fusableOutputFeatures(&op);
        if (!n)
          continue;
        SmallVector<size_t> &candidates = byInput[op.getOperand(0)];
        bool placed = false;
        for (size_t g : candidates)
          if (compatible(groups[g].members.front(), &op)) {
            groups[g].members.push_back(&op);
            groups[g].sizes.push_back(*n);
            placed = true;
            break;
          }
        if (!placed) {
          candidates.push_back(groups.size());
          groups.push_back({{&op}, {*n}});
        }
      }
    });
    for (Group &g : groups)
      if (g.members.size() > 1)
        fuse(g.members, g.sizes);
  }
};

} // namespace
