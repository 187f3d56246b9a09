//===- QuenchToLinalg.cpp - the convert-quench-to-linalg pass -------------===//
//
// Pass driver, type converter, conversion target and the helpers shared by
// the pattern files (Elementwise.cpp, Contractions.cpp, Shapes.cpp,
// MatMulNBits.cpp, Quantization.cpp, QLinear.cpp).
// docs/lowering.md explains the decisions.
//
//===----------------------------------------------------------------------===//

#include "quench/Conversion/Passes.h"

#include "Common.h"
#include "SparseLinear.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Func/Transforms/FuncConversions.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

namespace quench {
#define GEN_PASS_DEF_CONVERTQUENCHTOLINALG
#include "quench/Conversion/Passes.h.inc"
} // namespace quench

using namespace quench;
using namespace quench::to_linalg;

//===----------------------------------------------------------------------===//
// Shared helpers
//===----------------------------------------------------------------------===//

bool to_linalg::isUnsignedLike(Type t) {
  auto it = dyn_cast<IntegerType>(t);
  return it && (it.isUnsigned() || it.getWidth() == 1);
}

Type to_linalg::accumulatorType(Type t) {
  if (t.isF16() || t.isBF16())
    return Float32Type::get(t.getContext());
  return t;
}

Value to_linalg::floatConst(OpBuilder &b, Location loc, Type type,
                            double value) {
  return arith::ConstantOp::create(b, loc, b.getFloatAttr(type, value));
}

Value to_linalg::intConst(OpBuilder &b, Location loc, Type type,
                          int64_t value) {
  unsigned width = type.getIntOrFloatBitWidth();
  return arith::ConstantOp::create(
      b, loc,
      IntegerAttr::get(type, APInt(width, (uint64_t)value, /*isSigned=*/true,
                                   /*implicitTrunc=*/true)));
}

Value to_linalg::indexConst(OpBuilder &b, Location loc, int64_t value) {
  return arith::ConstantIndexOp::create(b, loc, value);
}

Value to_linalg::convertFloat(OpBuilder &b, Location loc, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  unsigned fw = from.getIntOrFloatBitWidth(), tw = to.getIntOrFloatBitWidth();
  if (fw < tw)
    return arith::ExtFOp::create(b, loc, to, v);
  if (fw > tw)
    return arith::TruncFOp::create(b, loc, to, v);
  // f16 <-> bf16: exact through f32, then one rounding.
  Value wide = arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  return arith::TruncFOp::create(b, loc, to, wide);
}

Value to_linalg::dimValue(OpBuilder &b, Location loc, Value tensor,
                          int64_t dim) {
  auto type = cast<RankedTensorType>(tensor.getType());
  if (!type.isDynamicDim(dim))
    return indexConst(b, loc, type.getDimSize(dim));
  return tensor::DimOp::create(b, loc, tensor, dim);
}

Value to_linalg::emptyTensor(OpBuilder &b, Location loc,
                             ArrayRef<OpFoldResult> sizes, Type elementType) {
  return tensor::EmptyOp::create(b, loc, sizes, elementType);
}

Value to_linalg::filledTensor(OpBuilder &b, Location loc,
                              ArrayRef<OpFoldResult> sizes, Value value) {
  Value empty = emptyTensor(b, loc, sizes, value.getType());
  return linalg::FillOp::create(b, loc, ValueRange{value}, ValueRange{empty})
      .getResult(0);
}

SmallVector<OpFoldResult> to_linalg::broadcastSizes(OpBuilder &b, Location loc,
                                                    RankedTensorType resultType,
                                                    ValueRange operands) {
  int64_t rank = resultType.getRank();
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < rank; ++d) {
    if (!resultType.isDynamicDim(d)) {
      sizes.push_back(b.getIndexAttr(resultType.getDimSize(d)));
      continue;
    }
    Value found;
    for (Value v : operands) {
      auto t = cast<RankedTensorType>(v.getType());
      int64_t od = d - (rank - t.getRank());
      if (od < 0 || t.getDimSize(od) == 1)
        continue;
      found = tensor::DimOp::create(b, loc, v, od);
      break;
    }
    // Every operand has a static 1 here although the result is dynamic: the
    // extent is 1 (the verifier allows the looser result type).
    sizes.push_back(found ? OpFoldResult(found) : b.getIndexAttr(1));
  }
  return sizes;
}

AffineMap to_linalg::broadcastMap(MLIRContext *ctx,
                                  ArrayRef<int64_t> operandShape,
                                  ArrayRef<int64_t> resultShape) {
  int64_t rank = resultShape.size(), orank = operandShape.size();
  SmallVector<AffineExpr> exprs;
  for (int64_t od = 0; od < orank; ++od) {
    int64_t d = od + rank - orank;
    if (operandShape[od] == 1 && resultShape[d] != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(d, ctx));
  }
  return AffineMap::get(rank, 0, exprs, ctx);
}

/// Run-time checks that every operand extent the loops assume equal to the
/// result's (`sizes`) is: a dynamic extent against the result's, or a static
/// one against a dynamic result. Operands whose extent is a static 1
/// broadcast; pairs known equal (the same value, or equal constants) need no
/// check. A failed check ends the run with an error naming the node
/// (convert-assert-to-quench-runtime, docs/reliability.md) instead of
/// reading out of bounds.
static void checkBroadcastExtents(OpBuilder &b, Location loc,
                                  RankedTensorType resultType,
                                  ValueRange operands,
                                  ArrayRef<OpFoldResult> sizes) {
  int64_t rank = resultType.getRank();
  std::string node = describeNode(loc, "an elementwise op");
  for (int64_t d = 0; d < rank; ++d) {
    std::optional<int64_t> want = getConstantIntValue(sizes[d]);
    for (auto [i, v] : llvm::enumerate(operands)) {
      auto t = cast<RankedTensorType>(v.getType());
      int64_t od = d - (rank - t.getRank());
      if (od < 0 || t.getDimSize(od) == 1)
        continue;
      if (!t.isDynamicDim(od) && want)
        continue; // both static: the verifier checked them
      Value have = t.isDynamicDim(od)
                       ? (Value)tensor::DimOp::create(b, loc, v, od)
                       : (Value)arith::ConstantIndexOp::create(
                             b, loc, t.getDimSize(od));
      Value expected = getValueOrCreateConstantIndexOp(b, loc, sizes[d]);
      if (have == expected)
        continue;
      Value same = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq,
                                         have, expected);
      std::string msg =
          node + ": operand " + std::to_string(i) + " has another extent in " +
          "dimension " + std::to_string(od) +
          " than the result at run time ({0} against {1}; inconsistent "
          "input shapes: a run-time extent of 1 does not broadcast)";
      emitRuntimeCheck(b, loc, same, msg, {have, expected});
    }
  }
}

Value to_linalg::buildElementwise(OpBuilder &b, Location loc,
                                  RankedTensorType resultType,
                                  ValueRange operands, ScalarFn body) {
  MLIRContext *ctx = b.getContext();
  SmallVector<OpFoldResult> sizes =
      broadcastSizes(b, loc, resultType, operands);
  checkBroadcastExtents(b, loc, resultType, operands, sizes);
  Value init = emptyTensor(b, loc, sizes, resultType.getElementType());
  SmallVector<AffineMap> maps;
  for (Value v : operands)
    maps.push_back(broadcastMap(
        ctx, cast<RankedTensorType>(v.getType()).getShape(),
        resultType.getShape()));
  maps.push_back(b.getMultiDimIdentityMap(resultType.getRank()));
  SmallVector<utils::IteratorType> iters(resultType.getRank(),
                                         utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, operands, ValueRange{init}, maps,
      iters, [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value r = body(nb, nloc, args.drop_back());
        linalg::YieldOp::create(nb, nloc, r);
      });
  Value result = generic.getResult(0);
  if (result.getType() != resultType)
    result = tensor::CastOp::create(b, loc, resultType, result);
  return result;
}

SmallVector<ReassociationIndices>
to_linalg::unitDimReassociation(int64_t bigRank,
                                ArrayRef<int64_t> unitPositions) {
  SmallVector<ReassociationIndices> groups;
  ReassociationIndices pending;
  for (int64_t p = 0; p < bigRank; ++p) {
    if (llvm::is_contained(unitPositions, p)) {
      if (groups.empty())
        pending.push_back(p);
      else
        groups.back().push_back(p);
      continue;
    }
    pending.push_back(p);
    groups.push_back(pending);
    pending.clear();
  }
  return groups;
}

to_linalg::MatMulLoops::MatMulLoops(int64_t lhsRank, int64_t rhsRank,
                                    int64_t resultRank) {
  bool hasM = lhsRank >= 2, hasN = rhsRank >= 2;
  numBatch = resultRank - hasM - hasN;
  m = hasM ? numBatch : -1;
  n = hasN ? numBatch + hasM : -1;
  k = resultRank;
}

AffineMap to_linalg::matmulOperandMap(MLIRContext *ctx, int64_t numLoops,
                                      int64_t numBatch,
                                      ArrayRef<int64_t> shape,
                                      ArrayRef<int64_t> resultShape,
                                      ArrayRef<int64_t> trailing) {
  int64_t rank = shape.size(), batchRank = rank - trailing.size();
  assert(batchRank >= 0 && batchRank <= numBatch && "too many batch dims");
  SmallVector<AffineExpr> exprs;
  for (int64_t od = 0; od < batchRank; ++od) {
    int64_t d = od + numBatch - batchRank;
    if (shape[od] == 1 && resultShape[d] != 1)
      exprs.push_back(getAffineConstantExpr(0, ctx));
    else
      exprs.push_back(getAffineDimExpr(d, ctx));
  }
  for (int64_t loop : trailing)
    exprs.push_back(loop < 0 ? getAffineConstantExpr(0, ctx)
                             : getAffineDimExpr(loop, ctx));
  return AffineMap::get(numLoops, 0, exprs, ctx);
}

SmallVector<OpFoldResult>
to_linalg::matmulResultSizes(OpBuilder &b, Location loc,
                             RankedTensorType resultType, Value lhs,
                             Value rhs) {
  auto lt = cast<RankedTensorType>(lhs.getType());
  auto rt = cast<RankedTensorType>(rhs.getType());
  MatMulLoops loops(lt.getRank(), rt.getRank(), resultType.getRank());
  SmallVector<OpFoldResult> sizes;
  for (int64_t d = 0; d < loops.numBatch; ++d) {
    if (!resultType.isDynamicDim(d)) {
      sizes.push_back(b.getIndexAttr(resultType.getDimSize(d)));
      continue;
    }
    OpFoldResult size = b.getIndexAttr(1);
    for (auto [v, t] : {std::pair{lhs, lt}, std::pair{rhs, rt}}) {
      int64_t od = d - (loops.numBatch - (t.getRank() - 2));
      if (t.getRank() >= 2 && od >= 0 && t.getDimSize(od) != 1) {
        size = tensor::getMixedSize(b, loc, v, od);
        break;
      }
    }
    sizes.push_back(size);
  }
  if (loops.m >= 0)
    sizes.push_back(tensor::getMixedSize(b, loc, lhs, lt.getRank() - 2));
  if (loops.n >= 0)
    sizes.push_back(tensor::getMixedSize(b, loc, rhs, rt.getRank() - 1));
  return sizes;
}

RankedTensorType to_linalg::convertedResultType(const TypeConverter *converter,
                                                Operation *op, unsigned i) {
  return dyn_cast_or_null<RankedTensorType>(
      converter->convertType(op->getResult(i).getType()));
}

//===----------------------------------------------------------------------===//
// Type converter and target
//===----------------------------------------------------------------------===//

static Value bitcastMaterialization(OpBuilder &b, Type type, ValueRange inputs,
                                    Location loc) {
  if (inputs.size() != 1 || !isa<RankedTensorType>(type) ||
      !isa<RankedTensorType>(inputs[0].getType()))
    return Value();
  return tensor::BitcastOp::create(b, loc, type, inputs[0]);
}

QuenchToLinalgTypeConverter::QuenchToLinalgTypeConverter() {
  addConversion([](Type t) { return t; });
  addConversion([](RankedTensorType t) -> Type {
    auto it = dyn_cast<IntegerType>(t.getElementType());
    if (!it || it.isSignless())
      return t;
    return t.clone(IntegerType::get(t.getContext(), it.getWidth()));
  });
  addSourceMaterialization(bitcastMaterialization);
  addTargetMaterialization(bitcastMaterialization);
}

static bool hasQuantElementType(Operation *op) {
  auto isQuant = [](Type t) {
    return isa<quant::QuantizedType>(getElementTypeOrSelf(t));
  };
  return llvm::any_of(op->getOperandTypes(), isQuant) ||
         llvm::any_of(op->getResultTypes(), isQuant);
}

void quench::configureQuenchToLinalgTarget(ConversionTarget &target) {
  // cf: the run-time checks (cf.assert); scf and llvm: those whose message
  // carries values (emitRuntimeCheck).
  target.addLegalDialect<arith::ArithDialect, cf::ControlFlowDialect,
                         linalg::LinalgDialect, LLVM::LLVMDialect,
                         math::MathDialect, scf::SCFDialect,
                         tensor::TensorDialect>();
  target.addDynamicallyLegalDialect<QuenchDialect>(
      [](Operation *op) { return hasQuantElementType(op); });
  // A backend lowers fused attention itself (quench-cpu-attention) or with
  // quench-decompose-attention.
  target.addLegalOp<AttentionOp>();
}

void quench::populateQuenchToLinalgConversionPatterns(
    const TypeConverter &converter, RewritePatternSet &patterns) {
  populateElementwisePatterns(converter, patterns);
  populateContractionPatterns(converter, patterns);
  populateShapePatterns(converter, patterns);
  populateMatMulNBitsPatterns(converter, patterns);
  populateQuantizationPatterns(converter, patterns);
  populateQLinearPatterns(converter, patterns);
  populateSparseLinearPatterns(converter, patterns);
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

namespace {
struct ConvertQuenchToLinalgPass
    : public quench::impl::ConvertQuenchToLinalgBase<
          ConvertQuenchToLinalgPass> {
  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    QuenchToLinalgTypeConverter converter;
    ConversionTarget target(*ctx);
    configureQuenchToLinalgTarget(target);
    RewritePatternSet patterns(ctx);
    populateQuenchToLinalgConversionPatterns(converter, patterns);
    // Signed/unsigned tensors also leave function signatures, calls and
    // returns, so that no tensor.bitcast (which does not bufferize) remains
    // between converted functions.
    populateFunctionOpInterfaceTypeConversionPattern<func::FuncOp>(patterns,
                                                                   converter);
    populateCallOpTypeConversionPattern(patterns, converter);
    populateReturnOpTypeConversionPattern(patterns, converter);
    target.addDynamicallyLegalOp<func::FuncOp>([&](func::FuncOp op) {
      return converter.isSignatureLegal(op.getFunctionType()) &&
             converter.isLegal(&op.getBody());
    });
    target.addDynamicallyLegalOp<func::CallOp>(
        [&](func::CallOp op) { return converter.isLegal(op); });
    target.addDynamicallyLegalOp<func::ReturnOp>(
        [&](func::ReturnOp op) { return converter.isLegal(op); });
    if (failed(applyPartialConversion(getOperation(), target,
                                      std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
