//===- QuenchOps.cpp - quench op verifiers --------------------------------===//
//
// Verifiers for the quench ops. Every static fact a verifier can check is
// checked; dynamic dimensions are left to run time.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallSet.h"

using namespace quench;

#include "quench/Dialect/Quench/IR/QuenchEnums.cpp.inc"

static constexpr int64_t kDyn = ShapedType::kDynamic;

std::string quench::getNodeName(Location loc) {
  std::string found;
  loc->walk([&](Location l) {
    if (auto name = dyn_cast<NameLoc>(l)) {
      found = name.getName().str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return found;
}

LogicalResult quench::broadcastShapes(ArrayRef<int64_t> a, ArrayRef<int64_t> b,
                                      SmallVectorImpl<int64_t> &out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == 1) {
      out[i] = db;
    } else if (db == 1) {
      out[i] = da;
    } else if (da == kDyn) {
      out[i] = db;
    } else if (db == kDyn) {
      out[i] = da;
    } else if (da == db) {
      out[i] = da;
    } else {
      return failure();
    }
  }
  return success();
}

static std::string shapeStr(ArrayRef<int64_t> shape) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "[";
  llvm::interleave(
      shape, os,
      [&](int64_t d) {
        if (d == kDyn)
          os << "?";
        else
          os << d;
      },
      "x");
  os << "]";
  return s;
}

/// Checks that `actual` refines `expected` (equal where both are static).
static LogicalResult verifyShapeMatches(Operation *op, ArrayRef<int64_t> expected,
                                        ArrayRef<int64_t> actual,
                                        StringRef what) {
  if (expected.size() != actual.size())
    return op->emitOpError() << what << " rank " << actual.size()
                             << " does not match the expected rank "
                             << expected.size() << " (shape "
                             << shapeStr(expected) << ")";
  for (auto [e, a] : llvm::zip(expected, actual))
    if (e != kDyn && a != kDyn && e != a)
      return op->emitOpError()
             << what << " shape " << shapeStr(actual)
             << " does not match the expected shape " << shapeStr(expected);
  return success();
}

/// Verifies NumPy broadcasting of all `inputs` into `result`.
static LogicalResult verifyBroadcastOp(Operation *op, ValueRange inputs,
                                       Value result) {
  SmallVector<int64_t> shape;
  for (Value v : inputs) {
    auto ty = cast<RankedTensorType>(v.getType());
    SmallVector<int64_t> next;
    if (failed(broadcastShapes(shape, ty.getShape(), next)))
      return op->emitOpError()
             << "operand shapes are not broadcast-compatible: "
             << shapeStr(shape) << " vs " << shapeStr(ty.getShape());
    shape = std::move(next);
  }
  return verifyShapeMatches(op, shape,
                            cast<RankedTensorType>(result.getType()).getShape(),
                            "result");
}

static Type elementTypeOf(Value v) {
  return cast<ShapedType>(v.getType()).getElementType();
}

static LogicalResult verifyAxis(Operation *op, int64_t axis, int64_t rank,
                                StringRef name = "axis") {
  if (axis < 0 || axis >= rank)
    return op->emitOpError() << name << " " << axis
                             << " is out of range for rank " << rank;
  return success();
}

static LogicalResult verifyAxesList(Operation *op, ArrayRef<int64_t> axes,
                                    int64_t rank, StringRef name) {
  for (size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] < 0 || axes[i] >= rank)
      return op->emitOpError() << name << " entry " << axes[i]
                               << " is out of range for rank " << rank;
    if (i > 0 && axes[i] <= axes[i - 1])
      return op->emitOpError() << name << " must be sorted and unique";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

#define QUENCH_BINARY_VERIFIER(OP)                                             \
  LogicalResult OP::verify() {                                                 \
    if (elementTypeOf(getLhs()) != elementTypeOf(getRhs()) ||                  \
        elementTypeOf(getLhs()) != elementTypeOf(getResult()))                 \
      return emitOpError("requires the same element type for operands and "    \
                         "result");                                            \
    return verifyBroadcastOp(*this, {getLhs(), getRhs()}, getResult());        \
  }
QUENCH_BINARY_VERIFIER(AddOp)
QUENCH_BINARY_VERIFIER(SubOp)
QUENCH_BINARY_VERIFIER(MulOp)
QUENCH_BINARY_VERIFIER(DivOp)
QUENCH_BINARY_VERIFIER(PowOp)
QUENCH_BINARY_VERIFIER(MinOp)
QUENCH_BINARY_VERIFIER(MaxOp)
QUENCH_BINARY_VERIFIER(ModOp)
#undef QUENCH_BINARY_VERIFIER

LogicalResult CmpOp::verify() {
  if (elementTypeOf(getLhs()) != elementTypeOf(getRhs()))
    return emitOpError("requires operands of the same element type");
  return verifyBroadcastOp(*this, {getLhs(), getRhs()}, getResult());
}

LogicalResult LogicalOp::verify() {
  return verifyBroadcastOp(*this, {getLhs(), getRhs()}, getResult());
}

LogicalResult WhereOp::verify() {
  if (elementTypeOf(getLhs()) != elementTypeOf(getRhs()) ||
      elementTypeOf(getLhs()) != elementTypeOf(getResult()))
    return emitOpError("requires the same element type for both branches and "
                       "the result");
  return verifyBroadcastOp(*this, {getCondition(), getLhs(), getRhs()},
                           getResult());
}

LogicalResult ClipOp::verify() {
  if (getMin() && getMax() &&
      getMin()->convertToDouble() > getMax()->convertToDouble())
    return emitOpError("requires min <= max");
  return success();
}

//===----------------------------------------------------------------------===//
// Contractions
//===----------------------------------------------------------------------===//

/// Verifies the shapes of an ONNX/NumPy `matmul` (1-D operands promoted and
/// the promoted dimension dropped; batch dimensions broadcast).
static LogicalResult verifyMatMulShapes(Operation *op, RankedTensorType lhs,
                                        RankedTensorType rhs,
                                        RankedTensorType result) {
  if (lhs.getRank() == 0 || rhs.getRank() == 0)
    return op->emitOpError("requires operands of rank >= 1");
  SmallVector<int64_t> a(lhs.getShape()), b(rhs.getShape());
  bool lhsVec = a.size() == 1, rhsVec = b.size() == 1;
  if (lhsVec)
    a.insert(a.begin(), 1);
  if (rhsVec)
    b.push_back(1);
  int64_t k1 = a.back(), k2 = b[b.size() - 2];
  if (k1 != kDyn && k2 != kDyn && k1 != k2)
    return op->emitOpError() << "contracting dimensions differ: " << k1
                             << " vs " << k2;
  SmallVector<int64_t> batch;
  if (failed(broadcastShapes(ArrayRef(a).drop_back(2), ArrayRef(b).drop_back(2),
                             batch)))
    return op->emitOpError("batch dimensions are not broadcast-compatible");
  SmallVector<int64_t> expected(batch);
  if (!lhsVec)
    expected.push_back(a[a.size() - 2]);
  if (!rhsVec)
    expected.push_back(b.back());
  return verifyShapeMatches(op, expected, result.getShape(), "result");
}

LogicalResult MatMulOp::verify() {
  auto lhs = getLhs().getType();
  auto rhs = getRhs().getType();
  if (lhs.getElementType() != rhs.getElementType() ||
      lhs.getElementType() != getResult().getType().getElementType())
    return emitOpError("requires the same element type for operands and "
                       "result");
  return verifyMatMulShapes(*this, lhs, rhs, getResult().getType());
}

/// The shape rules quench.linear and quench.qlinear share: a 2-D weight
/// [N, K], an input [..., K] and a result [..., N]. Sets `n` and `k` to the
/// weight's dims (possibly dynamic).
static LogicalResult verifyLinearShapes(Operation *op, RankedTensorType x,
                                        RankedTensorType w,
                                        RankedTensorType result, int64_t &n,
                                        int64_t &k) {
  if (w.getRank() != 2)
    return op->emitOpError(
        "requires a 2-D weight [out_features, in_features]");
  if (x.getRank() < 1)
    return op->emitOpError("requires an input of rank >= 1");
  n = w.getDimSize(0);
  k = w.getDimSize(1);
  int64_t xk = x.getShape().back();
  if (k != kDyn && xk != kDyn && k != xk)
    return op->emitOpError() << "input features " << xk
                             << " do not match weight in_features " << k;
  SmallVector<int64_t> expected(x.getShape().drop_back());
  expected.push_back(n);
  return verifyShapeMatches(op, expected, result.getShape(), "result");
}

LogicalResult LinearOp::verify() {
  auto x = getInput().getType();
  auto w = getWeight().getType();
  Type et = x.getElementType(), wt = w.getElementType();
  if (getResult().getType().getElementType() != et)
    return emitOpError("requires the same element type for input and result");
  // A half-precision weight of an f32 layer is widened exactly (an f32 model
  // with f16/bf16 weights); any other weight has the input's type.
  if (wt != et && !(et.isF32() && (wt.isF16() || wt.isBF16())))
    return emitOpError("requires the weight element type to be the input's, "
                       "or f16/bf16 for an f32 input");
  int64_t n, k;
  if (failed(verifyLinearShapes(*this, x, w, getResult().getType(), n, k)))
    return failure();
  if (Value bias = getBias()) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getElementType() != et)
      return emitOpError("requires the bias element type to match the input");
    if (b.getRank() != 1 || (b.getDimSize(0) != kDyn && n != kDyn &&
                             b.getDimSize(0) != n))
      return emitOpError() << "requires a 1-D bias of length " << n;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Normalization, softmax, gather
//===----------------------------------------------------------------------===//

static LogicalResult verifyNormParam(Operation *op, Value param,
                                     RankedTensorType input, int64_t axis,
                                     StringRef name) {
  auto ty = cast<RankedTensorType>(param.getType());
  if (ty.getElementType() != input.getElementType())
    return op->emitOpError() << "requires the " << name
                             << " element type to match the input";
  return verifyShapeMatches(op, input.getShape().drop_front(axis),
                            ty.getShape(), name);
}

LogicalResult LayerNormOp::verify() {
  auto x = getInput().getType();
  if (failed(verifyAxis(*this, getAxis(), x.getRank())))
    return failure();
  if (getEpsilon().convertToDouble() < 0)
    return emitOpError("requires a non-negative epsilon");
  if (failed(verifyNormParam(*this, getScale(), x, getAxis(), "scale")))
    return failure();
  if (getBias() &&
      failed(verifyNormParam(*this, getBias(), x, getAxis(), "bias")))
    return failure();
  if (getResult().getType() != x)
    return emitOpError("requires the result type to equal the input type");
  return success();
}

LogicalResult RMSNormOp::verify() {
  auto x = getInput().getType();
  if (failed(verifyAxis(*this, getAxis(), x.getRank())))
    return failure();
  if (getEpsilon().convertToDouble() < 0)
    return emitOpError("requires a non-negative epsilon");
  if (failed(verifyNormParam(*this, getScale(), x, getAxis(), "scale")))
    return failure();
  if (getResult().getType() != x)
    return emitOpError("requires the result type to equal the input type");
  return success();
}

LogicalResult SoftmaxOp::verify() {
  return verifyAxis(*this, getAxis(), getInput().getType().getRank());
}

LogicalResult AttentionOp::verify() {
  auto q = getQuery().getType(), k = cast<RankedTensorType>(getKey().getType()),
       v = cast<RankedTensorType>(getValue().getType());
  if (q.getRank() != 4 || k.getRank() != 4 || v.getRank() != 4)
    return emitOpError("requires rank-4 query, key and value ([batch, heads, "
                       "positions, features])");
  int64_t h = q.getDimSize(1), hk = k.getDimSize(1);
  if (h == kDyn || hk == kDyn || hk <= 0 || h % hk != 0)
    return emitOpError() << "requires static head counts with the query's ("
                         << h << ") a multiple of the key's (" << hk << ")";
  int64_t b = q.getDimSize(0), t = k.getDimSize(2);
  if (failed(verifyShapeMatches(*this, {b, hk, t, q.getDimSize(3)},
                                k.getShape(), "key")) ||
      failed(verifyShapeMatches(*this, {b, hk, t, v.getDimSize(3)},
                                v.getShape(), "value")))
    return failure();
  if (q.getDimSize(3) == kDyn || v.getDimSize(3) == kDyn)
    return emitOpError("requires static feature dimensions");
  auto checkOperand = [&](RankedTensorType ty, Value scale,
                          StringRef what) -> LogicalResult {
    Type et = ty.getElementType();
    if (isa<FloatType>(et)) {
      if (scale)
        return emitOpError() << "requires no " << what
                             << "_scale with a float " << what;
      return success();
    }
    if (!et.isSignlessInteger(8))
      return emitOpError() << "requires a float or signless i8 " << what;
    if (!scale)
      return emitOpError() << "requires " << what << "_scale with an i8 "
                           << what;
    auto st = cast<RankedTensorType>(scale.getType());
    if (!st.getElementType().isF32())
      return emitOpError() << "requires an f32 " << what << "_scale";
    return verifyShapeMatches(*this, {b, hk, t, 1}, st.getShape(),
                              (what + "_scale").str());
  };
  if (failed(checkOperand(k, getKeyScale(), "key")) ||
      failed(checkOperand(v, getValueScale(), "value")))
    return failure();
  if (Value bias = getBias()) {
    auto bt = cast<RankedTensorType>(bias.getType());
    SmallVector<int64_t> full{b, h, q.getDimSize(2), t};
    if (bt.getRank() != 4)
      return emitOpError("requires a rank-4 bias");
    for (auto [d, f] : llvm::zip(bt.getShape(), full))
      if (d != 1 && d != kDyn && f != kDyn && d != f)
        return emitOpError() << "bias shape " << shapeStr(bt.getShape())
                             << " does not broadcast to "
                             << shapeStr(full);
  }
  auto r = cast<RankedTensorType>(getResult().getType());
  if (r.getElementType() != q.getElementType())
    return emitOpError("requires the result element type to match the query");
  return verifyShapeMatches(*this, {b, h, q.getDimSize(2), v.getDimSize(3)},
                            r.getShape(), "result");
}

LogicalResult GatherOp::verify() {
  auto data = cast<RankedTensorType>(getData().getType());
  auto idx = getIndices().getType();
  if (failed(verifyAxis(*this, getAxis(), data.getRank())))
    return failure();
  if (data.getElementType() != elementTypeOf(getResult()))
    return emitOpError("requires the result element type to match the data");
  SmallVector<int64_t> expected(data.getShape().take_front(getAxis()));
  llvm::append_range(expected, idx.getShape());
  llvm::append_range(expected, data.getShape().drop_front(getAxis() + 1));
  return verifyShapeMatches(
      *this, expected, cast<RankedTensorType>(getResult().getType()).getShape(),
      "result");
}

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

LogicalResult ReduceOp::verify() {
  auto x = getInput().getType();
  if (x.getElementType() != getResult().getType().getElementType())
    return emitOpError("requires the result element type to match the input");
  if (failed(verifyAxesList(*this, getAxes(), x.getRank(), "axes")))
    return failure();
  SmallVector<int64_t> expected;
  for (int64_t d = 0; d < x.getRank(); ++d) {
    if (llvm::is_contained(getAxes(), d)) {
      if (getKeepDims())
        expected.push_back(1);
    } else {
      expected.push_back(x.getDimSize(d));
    }
  }
  return verifyShapeMatches(*this, expected, getResult().getType().getShape(),
                            "result");
}

//===----------------------------------------------------------------------===//
// Shape manipulation
//===----------------------------------------------------------------------===//

static LogicalResult verifySameElementType(Operation *op, Value a, Value b) {
  if (elementTypeOf(a) != elementTypeOf(b))
    return op->emitOpError(
        "requires the result element type to match the input");
  return success();
}

LogicalResult ReshapeOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (Value shape = getShape()) {
    auto st = cast<RankedTensorType>(shape.getType());
    if (!st.isDynamicDim(0) && st.getDimSize(0) != out.getRank())
      return emitOpError() << "shape operand has " << st.getDimSize(0)
                           << " entries for a result of rank "
                           << out.getRank();
  } else if (!out.hasStaticShape()) {
    return emitOpError("requires a shape operand when the result shape is "
                       "dynamic");
  }
  if (in.hasStaticShape() && out.hasStaticShape() &&
      in.getNumElements() != out.getNumElements())
    return emitOpError() << "cannot reshape " << in.getNumElements()
                         << " elements into " << out.getNumElements();
  return success();
}

LogicalResult TransposeOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  ArrayRef<int64_t> perm = getPermutation();
  if ((int64_t)perm.size() != in.getRank())
    return emitOpError() << "permutation has " << perm.size()
                         << " entries for rank " << in.getRank();
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> expected;
  for (int64_t p : perm) {
    if (p < 0 || p >= in.getRank() || seen[p])
      return emitOpError("permutation is not a permutation of [0, rank)");
    seen[p] = true;
    expected.push_back(in.getDimSize(p));
  }
  return verifyShapeMatches(
      *this, expected, cast<RankedTensorType>(getResult().getType()).getShape(),
      "result");
}

LogicalResult ConcatOp::verify() {
  if (getInputs().empty())
    return emitOpError("requires at least one input");
  auto out = cast<RankedTensorType>(getResult().getType());
  if (failed(verifyAxis(*this, getAxis(), out.getRank())))
    return failure();
  SmallVector<int64_t> expected;
  int64_t total = 0;
  for (Value v : getInputs()) {
    auto ty = cast<RankedTensorType>(v.getType());
    if (ty.getElementType() != out.getElementType())
      return emitOpError("requires all inputs to have the result element "
                         "type");
    if (ty.getRank() != out.getRank())
      return emitOpError("requires all inputs to have the result rank");
    if (expected.empty())
      expected.assign(ty.getShape().begin(), ty.getShape().end());
    for (int64_t d = 0; d < ty.getRank(); ++d) {
      if (d == getAxis())
        continue;
      int64_t a = expected[d], b = ty.getDimSize(d);
      if (a != kDyn && b != kDyn && a != b)
        return emitOpError() << "inputs differ in non-concatenated dimension "
                             << d;
      if (a == kDyn)
        expected[d] = b;
    }
    int64_t len = ty.getDimSize(getAxis());
    total = (total == kDyn || len == kDyn) ? kDyn : total + len;
  }
  expected[getAxis()] = total;
  return verifyShapeMatches(*this, expected, out.getShape(), "result");
}

/// Number of elements selected by a normalized slice of one dimension.
static int64_t sliceExtent(int64_t start, int64_t end, int64_t step) {
  if (step > 0)
    return end > start ? (end - start + step - 1) / step : 0;
  return start > end ? (start - end - step - 1) / -step : 0;
}

LogicalResult SliceOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  int64_t rank = in.getRank();
  if ((int64_t)getStarts().size() != rank ||
      (int64_t)getEnds().size() != rank || (int64_t)getSteps().size() != rank)
    return emitOpError() << "requires starts, ends and steps with one entry "
                            "per dimension ("
                         << rank << ")";
  SmallVector<int64_t> expected;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t s = getStarts()[d], e = getEnds()[d], st = getSteps()[d];
    if (st == 0)
      return emitOpError("requires non-zero steps");
    if (s < 0)
      return emitOpError("requires non-negative (normalized) starts");
    int64_t dim = in.getDimSize(d);
    if (dim == kDyn) {
      expected.push_back(kDyn);
      continue;
    }
    if (s > dim || e > dim || e < -1)
      return emitOpError() << "bounds [" << s << ", " << e
                           << ") are not normalized for dimension " << d
                           << " of size " << dim;
    expected.push_back(sliceExtent(std::min(s, st > 0 ? dim : dim - 1), e, st));
  }
  return verifyShapeMatches(
      *this, expected, cast<RankedTensorType>(getResult().getType()).getShape(),
      "result");
}

LogicalResult SplitOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  if (failed(verifyAxis(*this, getAxis(), in.getRank())))
    return failure();
  if (getSizes().size() != getResults().size())
    return emitOpError() << "has " << getSizes().size() << " sizes for "
                         << getResults().size() << " results";
  int64_t total = 0;
  for (auto [size, res] : llvm::zip(getSizes(), getResults())) {
    if (size < 0)
      return emitOpError("requires non-negative sizes");
    total += size;
    if (elementTypeOf(res) != in.getElementType())
      return emitOpError("requires results with the input element type");
    SmallVector<int64_t> expected(in.getShape());
    expected[getAxis()] = size;
    if (failed(verifyShapeMatches(
            *this, expected, cast<RankedTensorType>(res.getType()).getShape(),
            "result")))
      return failure();
  }
  int64_t dim = in.getDimSize(getAxis());
  if (dim != kDyn && dim != total)
    return emitOpError() << "sizes sum to " << total << " but dimension "
                         << getAxis() << " has size " << dim;
  return success();
}

LogicalResult ExpandOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  if (in.getRank() > out.getRank())
    return emitOpError("cannot broadcast to a lower rank");
  if (!getShape() && !out.hasStaticShape())
    return emitOpError("requires a shape operand when the result shape is "
                       "dynamic");
  int64_t off = out.getRank() - in.getRank();
  for (int64_t d = 0; d < in.getRank(); ++d) {
    int64_t a = in.getDimSize(d), b = out.getDimSize(d + off);
    if (a != 1 && a != kDyn && b != kDyn && a != b)
      return emitOpError() << "input dimension " << d << " of size " << a
                           << " cannot broadcast to " << b;
  }
  return success();
}

LogicalResult SqueezeOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  if (failed(verifyAxesList(*this, getAxes(), in.getRank(), "axes")))
    return failure();
  SmallVector<int64_t> expected;
  for (int64_t d = 0; d < in.getRank(); ++d) {
    if (llvm::is_contained(getAxes(), d)) {
      if (in.getDimSize(d) != 1 && in.getDimSize(d) != kDyn)
        return emitOpError() << "cannot squeeze dimension " << d
                             << " of size " << in.getDimSize(d);
      continue;
    }
    expected.push_back(in.getDimSize(d));
  }
  return verifyShapeMatches(
      *this, expected, cast<RankedTensorType>(getResult().getType()).getShape(),
      "result");
}

LogicalResult UnsqueezeOp::verify() {
  if (failed(verifySameElementType(*this, getInput(), getResult())))
    return failure();
  auto in = cast<RankedTensorType>(getInput().getType());
  int64_t outRank = in.getRank() + getAxes().size();
  if (failed(verifyAxesList(*this, getAxes(), outRank, "axes")))
    return failure();
  SmallVector<int64_t> expected;
  int64_t src = 0;
  for (int64_t d = 0; d < outRank; ++d)
    expected.push_back(llvm::is_contained(getAxes(), d)
                           ? 1
                           : in.getDimSize(src++));
  return verifyShapeMatches(
      *this, expected, cast<RankedTensorType>(getResult().getType()).getShape(),
      "result");
}

LogicalResult TriluOp::verify() {
  if (getInput().getType().getRank() < 2)
    return emitOpError("requires an input of rank >= 2");
  return success();
}

LogicalResult ShapeOfOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = getResult().getType();
  if (!out.isDynamicDim(0) && out.getDimSize(0) != in.getRank())
    return emitOpError() << "result has " << out.getDimSize(0)
                         << " entries for an input of rank " << in.getRank();
  return success();
}

LogicalResult RangeOp::verify() {
  Type et = getResult().getType().getElementType();
  for (Value v : {getStart(), getLimit(), getDelta()}) {
    auto ty = cast<RankedTensorType>(v.getType());
    if (ty.getRank() != 0 || ty.getElementType() != et)
      return emitOpError("requires 0-D start, limit and delta of the result "
                         "element type");
  }
  if (getResult().getType().getRank() != 1)
    return emitOpError("requires a 1-D result");
  return success();
}

//===----------------------------------------------------------------------===//
// Quantization
//===----------------------------------------------------------------------===//

/// Checks a scale / zero-point operand: 0-D (per tensor), or 1-D with the
/// extent of `input.shape[axis]` (per axis).
static LogicalResult verifyQuantParam(Operation *op, Value param,
                                      RankedTensorType input, int64_t axis,
                                      StringRef name) {
  auto ty = cast<RankedTensorType>(param.getType());
  if (ty.getRank() == 0)
    return success();
  if (ty.getRank() != 1)
    return op->emitOpError() << "requires a 0-D or 1-D " << name;
  if (failed(verifyAxis(op, axis, input.getRank())))
    return failure();
  int64_t dim = input.getDimSize(axis), len = ty.getDimSize(0);
  if (dim != kDyn && len != kDyn && dim != len)
    return op->emitOpError() << name << " has " << len
                             << " entries but the quantized axis has " << dim;
  return success();
}

static LogicalResult verifyLinearQuant(Operation *op, RankedTensorType input,
                                       Value scale, Value zp, int64_t axis,
                                       Type intType) {
  if (failed(verifyQuantParam(op, scale, input, axis, "scale")))
    return failure();
  if (zp) {
    if (failed(verifyQuantParam(op, zp, input, axis, "zero point")))
      return failure();
    if (elementTypeOf(zp) != intType)
      return op->emitOpError("requires the zero point to have the quantized "
                             "element type");
    if (cast<ShapedType>(zp.getType()).getShape() !=
        cast<ShapedType>(scale.getType()).getShape())
      return op->emitOpError("requires scale and zero point of one shape");
  }
  return success();
}

LogicalResult QuantizeLinearOp::verify() {
  if (getInput().getType().getShape() != getResult().getType().getShape())
    return emitOpError("requires the result shape to equal the input shape");
  return verifyLinearQuant(*this, getInput().getType(), getScale(),
                           getZeroPoint(), getAxis(),
                           getResult().getType().getElementType());
}

LogicalResult DequantizeLinearOp::verify() {
  if (getInput().getType().getShape() != getResult().getType().getShape())
    return emitOpError("requires the result shape to equal the input shape");
  if (getScale().getType().getElementType() !=
      getResult().getType().getElementType())
    return emitOpError("requires the result element type to be the scale's");
  return verifyLinearQuant(*this, getInput().getType(), getScale(),
                           getZeroPoint(), getAxis(),
                           getInput().getType().getElementType());
}

LogicalResult DynamicQuantizeLinearOp::verify() {
  if (getInput().getType().getShape() != getResult().getType().getShape())
    return emitOpError("requires the result shape to equal the input shape");
  if (!getResult().getType().getElementType().isUnsignedInteger(8) ||
      !getZeroPoint().getType().getElementType().isUnsignedInteger(8))
    return emitOpError("requires ui8 result and zero point");
  if (getScale().getType().getRank() != 0 ||
      getZeroPoint().getType().getRank() != 0)
    return emitOpError("requires 0-D scale and zero point");
  return success();
}

static bool isInt8Like(Type t) { return t.isInteger(8); }

LogicalResult MatMulIntegerOp::verify() {
  Type a = getLhs().getType().getElementType();
  Type b = getRhs().getType().getElementType();
  if (!isInt8Like(a) || !isInt8Like(b))
    return emitOpError("requires 8-bit integer operands");
  if (getLhsZeroPoint() && elementTypeOf(getLhsZeroPoint()) != a)
    return emitOpError("requires the lhs zero point to have the lhs type");
  if (getRhsZeroPoint() && elementTypeOf(getRhsZeroPoint()) != b)
    return emitOpError("requires the rhs zero point to have the rhs type");
  return verifyMatMulShapes(*this, getLhs().getType(), getRhs().getType(),
                            getResult().getType());
}

LogicalResult QLinearMatMulOp::verify() {
  Type a = getLhs().getType().getElementType();
  Type b = getRhs().getType().getElementType();
  Type y = getResult().getType().getElementType();
  if (!isInt8Like(a) || !isInt8Like(b) || !isInt8Like(y))
    return emitOpError("requires 8-bit integer operands and result");
  if (elementTypeOf(getLhsZeroPoint()) != a ||
      elementTypeOf(getRhsZeroPoint()) != b ||
      elementTypeOf(getResultZeroPoint()) != y)
    return emitOpError("requires each zero point to have its operand's type");
  return verifyMatMulShapes(*this, getLhs().getType(), getRhs().getType(),
                            getResult().getType());
}

LogicalResult HadamardOp::verify() {
  int64_t order = getOrder();
  if (order < 1 || (order & (order - 1)) != 0)
    return emitOpError() << "order must be a power of two, got " << order;
  auto type = getInput().getType();
  if (type.getRank() < 1)
    return emitOpError("requires an input of rank >= 1");
  int64_t k = type.getShape().back();
  if (k == kDyn)
    return emitOpError("requires a static last dimension");
  if (k % order != 0)
    return emitOpError() << "order " << order
                         << " does not divide the last dimension " << k;
  return success();
}

LogicalResult DequantizeNBitsOp::verify() {
  int64_t bits = getBits(), block = getBlockSize();
  if (bits != 2 && bits != 4 && bits != 8)
    return emitOpError() << "bits must be 2, 4 or 8, got " << bits;
  if (block < 1 || (block * bits) % 8 != 0)
    return emitOpError() << "block_size * bits must be a positive multiple "
                            "of 8, got "
                         << block << " * " << bits;
  auto codes = getCodes().getType();
  if (!codes.getElementType().isUnsignedInteger(8))
    return emitOpError("requires ui8 codes");
  if (codes.getRank() < 2)
    return emitOpError("requires codes of rank >= 2 ([..., blocks, bytes])");
  auto result = getResult().getType();
  int64_t k = result.getShape().back();
  if (result.getRank() != codes.getRank() - 1)
    return emitOpError() << "result rank " << result.getRank()
                         << " must be the codes' rank minus one";
  int64_t blocks = codes.getShape()[codes.getRank() - 2];
  if (k == kDyn || blocks == kDyn)
    return emitOpError("requires static features and blocks");
  if (blocks != (k + block - 1) / block)
    return emitOpError() << blocks << " blocks of " << block
                         << " do not hold " << k << " features";
  SmallVector<int64_t> expectCodes(result.getShape().drop_back());
  expectCodes.append({blocks, block * bits / 8});
  if (failed(verifyShapeMatches(*this, expectCodes, codes.getShape(),
                                "codes")))
    return failure();
  SmallVector<int64_t> expectScales(result.getShape().drop_back());
  expectScales.push_back(blocks);
  auto scales = getScales().getType();
  if (failed(verifyShapeMatches(*this, expectScales, scales.getShape(),
                                "scales")))
    return failure();
  if (Value zp = getZeroPoints()) {
    auto zt = cast<RankedTensorType>(zp.getType());
    if (zt.getElementType() != scales.getElementType())
      return emitOpError("requires zero points of the scales' element type");
    if (failed(verifyShapeMatches(*this, expectScales, zt.getShape(),
                                  "zero points")))
      return failure();
  }
  return success();
}

LogicalResult QLinearOp::verify() {
  auto x = getInput().getType();
  auto w = getWeight().getType();
  int64_t n, k;
  if (failed(verifyLinearShapes(*this, x, w, getResult().getType(), n, k)))
    return failure();
  int64_t kKnown = k != kDyn ? k : x.getShape().back();
  if (kKnown != kDyn && kKnown > kMaxInFeatures)
    return emitOpError() << "in_features " << kKnown << " exceeds "
                         << kMaxInFeatures
                         << ": the int32 sum of int8 products could overflow";
  auto lengthN = [&](Value v, StringRef what) -> LogicalResult {
    auto t = cast<RankedTensorType>(v.getType());
    if (t.getRank() != 1 ||
        (t.getDimSize(0) != kDyn && n != kDyn && t.getDimSize(0) != n))
      return emitOpError() << "requires a 1-D " << what << " of length " << n;
    return success();
  };
  if (failed(lengthN(getWeightScale(), "weight_scale")))
    return failure();
  if (Value bias = getBias(); bias && failed(lengthN(bias, "bias")))
    return failure();
  if (FloatAttr scale = getInputScaleAttr()) {
    const APFloat &s = scale.getValue();
    if (!s.isFiniteNonZero() || s.isNegative())
      return emitOpError("requires a finite positive input_scale");
  }
  Value wo = getOutlierWeight();
  std::optional<ArrayRef<int64_t>> channels = getOutlierChannels();
  if (!wo != !channels)
    return emitOpError("requires both an outlier_weight and "
                       "outlier_channels, or neither");
  if (!wo)
    return success();
  auto woType = cast<RankedTensorType>(wo.getType());
  int64_t c = static_cast<int64_t>(channels->size());
  if (c == 0)
    return emitOpError("requires at least one outlier channel");
  if (woType.getRank() != 2 ||
      (woType.getDimSize(0) != kDyn && n != kDyn &&
       woType.getDimSize(0) != n) ||
      (woType.getDimSize(1) != kDyn && woType.getDimSize(1) != c))
    return emitOpError() << "requires an outlier_weight of shape [" << n
                         << ", " << c << "]";
  for (int64_t i = 0; i < c; ++i) {
    int64_t ch = (*channels)[i];
    if (ch < 0 || (kKnown != kDyn && ch >= kKnown) ||
        (i > 0 && ch <= (*channels)[i - 1]))
      return emitOpError() << "requires outlier_channels strictly "
                              "increasing in [0, "
                           << kKnown << "), got " << ch;
  }
  return success();
}

LogicalResult MatMulNBitsOp::verify() {
  int64_t bits = getBits(), block = getBlockSize();
  int64_t k = getInFeatures(), n = getOutFeatures();
  if (bits < 2 || bits > 8)
    return emitOpError() << "bits must be in [2, 8], got " << bits;
  // ONNX Runtime's MatMulNBits also wants a power of two >= 16 (the
  // importer checks that); Quench's own quantization uses any whole-byte
  // block (e.g. one block per output channel).
  if (block < 1 || (block * bits) % 8 != 0)
    return emitOpError() << "block_size * bits must be a positive multiple "
                            "of 8, got "
                         << block << " * " << bits;
  if (k <= 0 || n <= 0)
    return emitOpError("requires positive in_features and out_features");
  if (!getWeight().getType().getElementType().isUnsignedInteger(8))
    return emitOpError("requires a ui8 packed weight");
  int64_t blocks = (k + block - 1) / block;
  int64_t blobBytes = block * bits / 8;
  auto w = getWeight().getType();
  SmallVector<int64_t> expectW{n, blocks, blobBytes};
  if (failed(verifyShapeMatches(*this, expectW, w.getShape(), "weight")))
    return failure();
  auto s = getScales().getType();
  if (!s.hasStaticShape() || s.getNumElements() != n * blocks)
    return emitOpError() << "requires " << n * blocks << " scales";
  auto x = getInput().getType();
  int64_t xk = x.getShape().back();
  if (xk != kDyn && xk != k)
    return emitOpError() << "input features " << xk
                         << " do not match in_features " << k;
  if (Value zp = getZeroPoints()) {
    auto zt = cast<RankedTensorType>(zp.getType());
    if (zt.getElementType() == s.getElementType()) {
      if (!zt.hasStaticShape() || zt.getNumElements() != n * blocks)
        return emitOpError() << "requires " << n * blocks
                             << " float zero points";
    } else if (zt.getElementType().isUnsignedInteger(8)) {
      int64_t packed = n * ((blocks * bits + 7) / 8);
      if (!zt.hasStaticShape() || zt.getNumElements() != packed)
        return emitOpError() << "requires " << packed
                             << " bytes of packed zero points";
    } else {
      return emitOpError("requires ui8 packed zero points or zero points of "
                         "the scales' element type");
    }
  }
  if (getBias()) {
    auto b = cast<RankedTensorType>(getBias().getType());
    if (b.getRank() != 1 || b.getDimSize(0) != n)
      return emitOpError() << "requires a 1-D bias of length " << n;
    if (b.getElementType() != x.getElementType())
      return emitOpError("requires the bias element type to match the input");
  }
  if (getResult().getType().getElementType() != x.getElementType())
    return emitOpError("requires the result element type to match the input");
  SmallVector<int64_t> expected(x.getShape().drop_back());
  expected.push_back(n);
  return verifyShapeMatches(*this, expected, getResult().getType().getShape(),
                            "result");
}

#define GET_OP_CLASSES
#include "quench/Dialect/Quench/IR/QuenchOps.cpp.inc"
