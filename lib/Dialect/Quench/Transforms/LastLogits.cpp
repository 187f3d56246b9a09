//===- LastLogits.cpp - a generation step's logits, last position only ----===//
//
// Part of quench-kv-cache (`logits-positions=last`, the compile driver's
// default): sampling the next token needs the logits of the last position
// only, and the vocabulary projection is a large share of a prompt's work
// (768 x 32000 against 85M multiply-adds per position in the 125M LLaMA
// shape: 22%). The chain of row-wise ops that ends in the logits output
// (final norm, LM head — float, weight-quantized or int8 — casts, a
// softcap) takes the last row of its input instead of all of them, so the
// logits output becomes [batch, 1, vocab]. Where no such op precedes the
// output, the output itself is sliced: the result is the same either way.
// See docs/generation.md ("Design").
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"

using namespace mlir;

namespace {

/// Whether `t` does not vary along the row axis `axis` of a result of rank
/// `rank` (right-aligned broadcasting): lower rank or extent 1 there.
bool constantAlongRows(Type t, int64_t axis, int64_t rank) {
  auto type = dyn_cast<RankedTensorType>(t);
  if (!type)
    return false;
  int64_t at = axis - (rank - type.getRank());
  return at < 0 || type.getDimSize(at) == 1;
}

/// The operand of `op` that carries the rows (axis `axis` of its result),
/// when each row of the result depends only on the same row of that
/// operand: projections of the last dim by constant weights, norms over
/// the last dim, elementwise ops whose other operands do not vary along
/// the rows.
std::optional<unsigned> rowOperand(Operation *op, int64_t axis) {
  if (op->getNumResults() != 1 || op->getNumOperands() == 0)
    return std::nullopt;
  auto result = dyn_cast<RankedTensorType>(op->getResult(0).getType());
  if (!result || axis >= result.getRank() - 1)
    return std::nullopt;
  int64_t rank = result.getRank();
  auto weightsOnly = [&] {
    return llvm::all_of(op->getOperands().drop_front(), [&](Value w) {
      return w.getDefiningOp() &&
             w.getDefiningOp()->hasTrait<OpTrait::ConstantLike>();
    });
  };
  if (isa<quench::LinearOp, quench::MatMulNBitsOp, quench::QLinearOp>(op))
    return weightsOnly() ? std::optional<unsigned>(0) : std::nullopt;
  if (auto mm = dyn_cast<quench::MatMulOp>(op))
    return cast<RankedTensorType>(mm.getRhs().getType()).getRank() == 2 &&
                   weightsOnly()
               ? std::optional<unsigned>(0)
               : std::nullopt;
  // Norms over the last dim only (the axis attribute is a signed i64).
  auto lastAxis = [&](uint64_t axis) {
    return (int64_t)axis == rank - 1 || (int64_t)axis == -1;
  };
  if (auto n = dyn_cast<quench::RMSNormOp>(op))
    return lastAxis(n.getAxis()) ? std::optional<unsigned>(0) : std::nullopt;
  if (auto n = dyn_cast<quench::LayerNormOp>(op))
    return lastAxis(n.getAxis()) ? std::optional<unsigned>(0) : std::nullopt;
  // Elementwise: unary ops and casts; binary ops of which one operand has
  // the result's shape and the other does not vary along the rows.
  if (op->getNumOperands() == 1 &&
      (op->hasTrait<OpTrait::SameOperandsAndResultType>() ||
       isa<quench::CastOp>(op)))
    return 0;
  if (!isa<quench::AddOp, quench::SubOp, quench::MulOp, quench::DivOp,
           quench::PowOp, quench::MinOp, quench::MaxOp>(op))
    return std::nullopt;
  for (unsigned i = 0; i < 2; ++i) {
    auto t = dyn_cast<RankedTensorType>(op->getOperand(i).getType());
    if (t && t.getShape() == result.getShape() &&
        constantAlongRows(op->getOperand(1 - i).getType(), axis, rank))
      return i;
  }
  return std::nullopt;
}

} // namespace

LogicalResult quench::keepLastLogits(func::FuncOp func, unsigned resultIndex) {
  auto returnOp = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  Value logits = returnOp.getOperand(resultIndex);
  auto type = dyn_cast<RankedTensorType>(logits.getType());
  // [batch, vocab]: one position already.
  if (!type || type.getRank() != 3)
    return success();
  const int64_t axis = 1;
  if (type.getDimSize(axis) == 1)
    return success();

  // The chain of row-wise ops ending in the logits, each read only by the
  // next; `rowsIn` is the value the first one reads.
  SmallVector<std::pair<Operation *, unsigned>> chain;
  Value rowsIn = logits;
  while (Operation *def = rowsIn.getDefiningOp()) {
    if (!rowsIn.hasOneUse())
      break;
    std::optional<unsigned> operand = rowOperand(def, axis);
    if (!operand)
      break;
    chain.push_back({def, *operand});
    rowsIn = def->getOperand(*operand);
  }
  std::reverse(chain.begin(), chain.end());

  OpBuilder b(func.getContext());
  if (chain.empty())
    b.setInsertionPoint(returnOp);
  else
    b.setInsertionPoint(chain.front().first);
  Location loc = rowsIn.getLoc();
  // rowsIn[.., n - 1 : n, ..].
  auto inType = cast<RankedTensorType>(rowsIn.getType());
  SmallVector<OpFoldResult> sizes = tensor::getMixedSizes(b, loc, rowsIn);
  SmallVector<OpFoldResult> offsets(inType.getRank(), b.getIndexAttr(0));
  SmallVector<OpFoldResult> strides(inType.getRank(), b.getIndexAttr(1));
  Value rows = getValueOrCreateConstantIndexOp(b, loc, sizes[axis]);
  offsets[axis] = arith::SubIOp::create(
                      b, loc, rows, arith::ConstantIndexOp::create(b, loc, 1))
                      .getResult();
  sizes[axis] = b.getIndexAttr(1);
  Value last =
      tensor::ExtractSliceOp::create(b, loc, rowsIn, offsets, sizes, strides);
  if (chain.empty()) {
    returnOp.setOperand(resultIndex, last);
  } else {
    chain.front().first->setOperand(chain.front().second, last);
    for (auto [op, operand] : chain) {
      auto t = cast<RankedTensorType>(op->getResult(0).getType());
      SmallVector<int64_t> shape(t.getShape());
      shape[axis] = 1;
      op->getResult(0).setType(t.clone(shape));
    }
  }
  SmallVector<Type> results(func.getResultTypes());
  results[resultIndex] = returnOp.getOperand(resultIndex).getType();
  func.setType(FunctionType::get(func.getContext(), func.getArgumentTypes(),
                                 results));
  return success();
}
