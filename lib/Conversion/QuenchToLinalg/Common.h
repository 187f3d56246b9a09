//===- Common.h - helpers shared by the quench-to-linalg patterns -*- C++ -*-===//
//
// Private to lib/Conversion/QuenchToLinalg: scalar constants, dynamic sizes,
// NumPy broadcasting maps, the elementwise linalg.generic builder that
// every pattern file uses, and the loop structure of NumPy matmuls.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CONVERSION_QUENCHTOLINALG_COMMON_H
#define QUENCH_LIB_CONVERSION_QUENCHTOLINALG_COMMON_H

#include "quench/Conversion/RuntimeChecks.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/LLVM.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/DialectConversion.h"

namespace quench::to_linalg {

/// Body builder of an elementwise generic: scalar block arguments (one per
/// input) in, the scalar result out.
using ScalarFn = llvm::function_ref<Value(OpBuilder &, Location, ValueRange)>;

/// True for integer types that the original (pre-conversion) IR marks as
/// unsigned, and for i1 (booleans compare and extend as unsigned).
bool isUnsignedLike(Type elementType);

/// f32 for f16/bf16, the type itself otherwise: where reductions, norms and
/// contractions accumulate.
Type accumulatorType(Type elementType);

/// Scalar constants of a float or (signless) integer type.
Value floatConst(OpBuilder &b, Location loc, Type type, double value);
Value intConst(OpBuilder &b, Location loc, Type type, int64_t value);
Value indexConst(OpBuilder &b, Location loc, int64_t value);

/// Converts a float scalar between float types (extf / truncf, RNE).
Value convertFloat(OpBuilder &b, Location loc, Value v, Type to);

/// The extent of dimension `dim` of `tensor` as an index value.
Value dimValue(OpBuilder &b, Location loc, Value tensor, int64_t dim);


using quench::describeNode;
using quench::emitRuntimeCheck;

/// Ends the run with an error naming the node (quench op `op`) when
/// dimension `ld` of `lhs`, an extent a contraction sums over, differs from
/// `want` at run time (nothing is emitted when both are static: the
/// verifier compared them). The loops run over one and would read past the
/// other.
void checkContractedExtent(OpBuilder &b, Location loc, StringRef op,
                           Value lhs, int64_t ld, OpFoldResult want);

/// `tensor.empty` of the given sizes.
Value emptyTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                  Type elementType);

/// `linalg.fill` of a fresh tensor with `value`.
Value filledTensor(OpBuilder &b, Location loc, ArrayRef<OpFoldResult> sizes,
                   Value value);

/// Sizes of `resultType` where every dynamic extent is read (`tensor.dim`)
/// from the first operand that has the same dimension (right-aligned) and
/// does not broadcast it. Dynamic-vs-dynamic is assumed equal at run time.
SmallVector<OpFoldResult> broadcastSizes(OpBuilder &b, Location loc,
                                         RankedTensorType resultType,
                                         ValueRange operands);

/// NumPy broadcasting map from the result's loops to an operand: static
/// size-1 dimensions that the result does not have as static 1 read index
/// 0; leading dimensions the operand lacks are dropped.
AffineMap broadcastMap(MLIRContext *ctx, ArrayRef<int64_t> operandShape,
                       ArrayRef<int64_t> resultShape);

/// An all-parallel linalg.generic computing `resultType` from broadcast
/// `operands` with the scalar `body`.
Value buildElementwise(OpBuilder &b, Location loc, RankedTensorType resultType,
                       ValueRange operands, ScalarFn body);

/// Reassociation between a shape of rank `bigRank` and the shape without
/// the unit dimensions at `unitPositions` (sorted): each unit dimension joins
/// the group of the preceding kept dimension (leading ones the first group).
SmallVector<ReassociationIndices>
unitDimReassociation(int64_t bigRank, ArrayRef<int64_t> unitPositions);

/// Loops of a NumPy (ONNX MatMul) product of operands of rank `lhsRank` and
/// `rhsRank` into a result of rank `resultRank`: (batch..., [m], [n], k),
/// where m exists when lhsRank >= 2 and n when rhsRank >= 2 (a 1-D operand
/// is promoted to a matrix and the promoted dimension dropped).
struct MatMulLoops {
  MatMulLoops(int64_t lhsRank, int64_t rhsRank, int64_t resultRank);
  int64_t numBatch;
  /// Loop positions; `m` and `n` are -1 when absent.
  int64_t m, n, k;
  int64_t numLoops() const { return k + 1; }
};

/// Map from `numLoops` loops, whose first `numBatch` are the batch loops of
/// a matmul producing `resultShape`, to an operand of shape `shape`: its
/// last `trailing.size()` dimensions read the loops listed there (-1: index
/// 0); the dimensions before them are batch dimensions, right-aligned with
/// the result's and broadcast as in NumPy (a static 1 against a result
/// extent that is not a static 1 reads index 0).
AffineMap matmulOperandMap(MLIRContext *ctx, int64_t numLoops,
                           int64_t numBatch, ArrayRef<int64_t> shape,
                           ArrayRef<int64_t> resultShape,
                           ArrayRef<int64_t> trailing);

/// Extents of the result of a NumPy matmul of `lhs` and `rhs`: a dynamic
/// batch extent is read from the first operand that does not broadcast it
/// (dynamic-vs-dynamic is assumed equal at run time), m from `lhs`, n from
/// `rhs`.
SmallVector<OpFoldResult> matmulResultSizes(OpBuilder &b, Location loc,
                                            RankedTensorType resultType,
                                            Value lhs, Value rhs);

/// Converted (signless) ranked result type of `op`'s result `i`.
RankedTensorType convertedResultType(const TypeConverter *converter,
                                     Operation *op, unsigned i = 0);

void populateElementwisePatterns(const TypeConverter &converter,
                                 RewritePatternSet &patterns);
void populateContractionPatterns(const TypeConverter &converter,
                                 RewritePatternSet &patterns);
void populateShapePatterns(const TypeConverter &converter,
                           RewritePatternSet &patterns);
void populateMatMulNBitsPatterns(const TypeConverter &converter,
                                 RewritePatternSet &patterns);
void populateQuantizationPatterns(const TypeConverter &converter,
                                  RewritePatternSet &patterns);
void populateQLinearPatterns(const TypeConverter &converter,
                             RewritePatternSet &patterns);

} // namespace quench::to_linalg

#endif // QUENCH_LIB_CONVERSION_QUENCHTOLINALG_COMMON_H
