//===- SmallRows.cpp - row-by-row versions of dynamic-M contractions ------===//
//
// Part of quench-cpu-tile-and-vectorize. A decoder's prefill and decode
// steps share one function, so the rows of its linears (M = tokens of the
// step) are only known at run time. The tile plan of a dynamic M is the
// blocked kernel (tasks of mt rows, register tiles of mr rows): a decode
// step (M = 1) then runs one masked tile of mr rows, mr times the work of
// the matrix-vector kernel that a static M = 1 gets (the 125M model's fp32
// decode ran 4.8x slower than its one-token forward).
//
// Each such contraction (with its fused epilogue, when it has one) becomes
//
//   scf.if M < kSmallRows:  scf.for each row: the contraction (and epilogue)
//                           on that row, a static M = 1: the matrix-vector
//                           plan; its result inserted into the output
//   else:                   the contraction as it was: the blocked plan
//
// Below kSmallRows rows, passes of the matrix-vector kernel over B (memory
// bound) cost less than one masked register tile of mr rows (compute
// bound). The grouped-query attention products of a decode step (M = the
// query heads per key head) take the row loop too. See docs/lowering.md.
//
//===----------------------------------------------------------------------===//

#include "TileAndVectorize.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

#include "llvm/ADT/DenseMap.h"

using namespace mlir;
using namespace quench::cpu;

namespace {

/// Offsets, sizes and strides of row `row` of `v` (indexed through `map`)
/// along loop `loop`; false when no dim of `v` is indexed by `loop`.
bool rowSlice(OpBuilder &b, Location loc, Value v, AffineMap map,
              unsigned loop, Value row, SmallVectorImpl<OpFoldResult> &offsets,
              SmallVectorImpl<OpFoldResult> &sizes,
              SmallVectorImpl<OpFoldResult> &strides) {
  auto type = cast<RankedTensorType>(v.getType());
  bool indexed = false;
  llvm::append_range(sizes, tensor::getMixedSizes(b, loc, v));
  offsets.append(type.getRank(), b.getIndexAttr(0));
  strides.append(type.getRank(), b.getIndexAttr(1));
  for (unsigned r = 0; r < type.getRank(); ++r) {
    auto dim = dyn_cast<AffineDimExpr>(map.getResult(r));
    if (dim && dim.getPosition() == loop) {
      indexed = true;
      offsets[r] = row;
      sizes[r] = b.getIndexAttr(1);
    }
  }
  return indexed;
}

/// Row `row` of `v` (see rowSlice), or `v` itself when it has no such dim.
Value sliceRow(OpBuilder &b, Location loc, Value v, AffineMap map,
               unsigned loop, Value row) {
  SmallVector<OpFoldResult> offsets, sizes, strides;
  if (!rowSlice(b, loc, v, map, loop, row, offsets, sizes, strides))
    return v;
  return tensor::ExtractSliceOp::create(b, loc, v, offsets, sizes, strides);
}

/// Row `row` of an init operand: a fill of the row (not a slice of a fill
/// of every row, which would stay outside the loop) where `init` is one.
Value initRow(OpBuilder &b, Location loc, Value init, AffineMap map,
              unsigned loop, Value row) {
  if (auto fill = init.getDefiningOp<linalg::FillOp>()) {
    Value dest = sliceRow(b, loc, fill.getOutputs()[0], map, loop, row);
    return linalg::FillOp::create(b, loc, fill.getInputs()[0], dest)
        .getResult(0);
  }
  return sliceRow(b, loc, init, map, loop, row);
}

/// `op` with the operands `operands` (same types as its own, or rows of
/// them): results typed like its init operands.
Operation *cloneOn(OpBuilder &b, linalg::LinalgOp op, ValueRange operands) {
  SmallVector<Type> resultTypes;
  for (OpOperand &init : op.getDpsInitsMutable())
    resultTypes.push_back(operands[init.getOperandNumber()].getType());
  return mlir::clone(b, op, resultTypes, operands);
}

/// A fresh copy of the fill that produces `v` (so that each version of a
/// contraction has its own accumulators), or `v`.
Value refill(OpBuilder &b, Value v) {
  if (auto fill = v.getDefiningOp<linalg::FillOp>())
    return b.clone(*fill)->getResult(0);
  return v;
}

/// The run-time extent of loop `loop` of `op`.
Value loopExtent(OpBuilder &b, Location loc, linalg::LinalgOp op,
                 unsigned loop) {
  for (OpOperand &o : op->getOpOperands()) {
    AffineMap map = op.getMatchingIndexingMap(&o);
    for (unsigned r = 0; r < map.getNumResults(); ++r)
      if (auto dim = dyn_cast<AffineDimExpr>(map.getResult(r));
          dim && dim.getPosition() == loop)
        return tensor::DimOp::create(b, loc, o.get(), r);
  }
  return {};
}

} // namespace

void quench::cpu::versionSmallRows(func::FuncOp func, RewriterBase &rw,
                                   TileAndVectorize &driver) {
  // Versioning erases the contractions, their epilogues and fills: the
  // candidates are collected first.
  SmallVector<linalg::LinalgOp> contractions;
  llvm::DenseMap<Operation *, linalg::LinalgOp> epilogueOf;
  func.walk([&](linalg::LinalgOp op) {
    if (linalg::isaContractionOpInterface(op))
      contractions.push_back(op);
    else if (linalg::LinalgOp contraction = driver.fusableContraction(op))
      epilogueOf[contraction] = op;
  });

  for (linalg::LinalgOp c : contractions) {
    if (!isTileable(c) ||
        c->getNumResults() != 1 || c->hasAttr(kVectorSizesAttr) ||
        c->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
      continue;
    FailureOr<linalg::ContractionDimensions> dims =
        linalg::inferContractionDims(c);
    if (failed(dims) || dims->m.empty() || dims->k.empty())
      continue;
    SmallVector<int64_t> ranges = c.getStaticLoopRanges();
    unsigned m = dims->m.back();
    if (!ShapedType::isDynamic(ranges[m]) ||
        llvm::any_of(ArrayRef<unsigned>(dims->m).drop_back(),
                     [&](unsigned d) { return ShapedType::isDynamic(ranges[d]); }))
      continue;
    linalg::LinalgOp consumer = epilogueOf.lookup(c);
    AffineMap outMap = c.getMatchingIndexingMap(c.getDpsInitOperand(0));
    // The consumer's loops are the contraction's result dims.
    std::optional<unsigned> consumerRow;
    if (consumer) {
      consumerRow = outMap.getResultPosition(rw.getAffineDimExpr(m));
      if (!consumerRow)
        consumer = {};
    }
    linalg::LinalgOp last = consumer ? consumer : c;
    Location loc = c.getLoc();
    rw.setInsertionPoint(last);
    Value rows = loopExtent(rw, loc, c, m);
    if (!rows)
      continue;
    Value few = arith::CmpIOp::create(
        rw, loc, arith::CmpIPredicate::ult, rows,
        arith::ConstantIndexOp::create(rw, loc, kSmallRows));
    Value lastInit = last.getDpsInitOperand(0)->get();
    Value contractionInit = c.getDpsInitOperand(0)->get();
    // The row loop writes every row: it starts from the fill's destination.
    Value loopInit = lastInit;
    if (auto fill = lastInit.getDefiningOp<linalg::FillOp>())
      loopInit = fill.getOutputs()[0];
    unsigned lastRow = consumer ? *consumerRow : m;
    AffineMap lastOutMap =
        last.getMatchingIndexingMap(last.getDpsInitOperand(0));

    auto ifOp = scf::IfOp::create(
        rw, loc, few,
        [&](OpBuilder &b, Location loc) {
          Value zero = arith::ConstantIndexOp::create(b, loc, 0);
          Value one = arith::ConstantIndexOp::create(b, loc, 1);
          auto loop = scf::ForOp::create(
              b, loc, zero, rows, one, ValueRange{loopInit},
              [&](OpBuilder &b, Location loc, Value row, ValueRange acc) {
                SmallVector<Value> operands;
                for (OpOperand &o : c->getOpOperands()) {
                  AffineMap map = c.getMatchingIndexingMap(&o);
                  bool init = c.isDpsInit(&o);
                  Value v = o.get();
                  if (init && !consumer && !v.getDefiningOp<linalg::FillOp>())
                    v = acc[0];
                  operands.push_back(init ? initRow(b, loc, v, map, m, row)
                                          : sliceRow(b, loc, v, map, m, row));
                }
                Value result = cloneOn(b, c, operands)->getResult(0);
                if (consumer) {
                  operands.clear();
                  for (OpOperand &o : consumer->getOpOperands()) {
                    AffineMap map = consumer.getMatchingIndexingMap(&o);
                    if (o.get() == c->getResult(0)) {
                      operands.push_back(result);
                      continue;
                    }
                    bool init = consumer.isDpsInit(&o);
                    Value v = o.get();
                    if (init && !v.getDefiningOp<linalg::FillOp>())
                      v = acc[0];
                    operands.push_back(
                        init ? initRow(b, loc, v, map, *consumerRow, row)
                             : sliceRow(b, loc, v, map, *consumerRow, row));
                  }
                  result = cloneOn(b, consumer, operands)->getResult(0);
                }
                SmallVector<OpFoldResult> offsets, sizes, strides;
                rowSlice(b, loc, acc[0], lastOutMap, lastRow, row, offsets,
                         sizes, strides);
                Value updated = tensor::InsertSliceOp::create(
                    b, loc, result, acc[0], offsets, sizes, strides);
                scf::YieldOp::create(b, loc, updated);
              });
          scf::YieldOp::create(b, loc, loop.getResult(0));
        },
        [&](OpBuilder &b, Location loc) {
          SmallVector<Value> operands;
          for (OpOperand &o : c->getOpOperands())
            operands.push_back(c.isDpsInit(&o) ? refill(b, o.get())
                                               : o.get());
          Value result = cloneOn(b, c, operands)->getResult(0);
          if (consumer) {
            operands.clear();
            for (OpOperand &o : consumer->getOpOperands())
              operands.push_back(o.get() == c->getResult(0) ? result
                                 : consumer.isDpsInit(&o)   ? refill(b, o.get())
                                                            : o.get());
            result = cloneOn(b, consumer, operands)->getResult(0);
          }
          scf::YieldOp::create(b, loc, result);
        });
    rw.replaceOp(last, ifOp.getResults());
    if (consumer)
      rw.eraseOp(c);
    // Fills left without users.
    auto lastFill = lastInit.getDefiningOp<linalg::FillOp>();
    auto contractionFill = contractionInit.getDefiningOp<linalg::FillOp>();
    for (linalg::FillOp fill : {lastFill, contractionFill})
      if (fill && fill->use_empty()) {
        rw.eraseOp(fill);
        if (lastFill == contractionFill)
          break;
      }
  }
}
