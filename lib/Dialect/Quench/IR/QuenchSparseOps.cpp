//===- QuenchSparseOps.cpp - ops of compressed sparse weights -------------===//
//
// The verifier of quench.sparse_linear and the indexing maps of its
// generic (include/quench/Dialect/Quench/IR/QuenchSparseOps.h).
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"

#include "quench/Support/LLVM.h"

#include "mlir/IR/AffineExpr.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace quench;

#define GET_OP_CLASSES
#include "quench/Dialect/Quench/IR/QuenchSparseOps.cpp.inc"

static constexpr int64_t kDyn = ShapedType::kDynamic;

//===----------------------------------------------------------------------===//
// SparseLinearOp
//===----------------------------------------------------------------------===//

LogicalResult SparseLinearOp::verify() {
  auto x = getInput().getType();
  auto v = getValues().getType();
  auto idx = getIndices().getType();
  int64_t keep = getKeep(), group = getGroup();
  if (!(keep >= 1 && keep < group && group <= 16))
    return emitOpError() << "requires 1 <= keep < group <= 16, got " << keep
                         << ":" << group;
  if (x.getRank() < 1 || x.getShape().back() == kDyn)
    return emitOpError("requires an input of rank >= 1 with static features");
  int64_t k = x.getShape().back();
  if (k % group != 0)
    return emitOpError() << "input features " << k
                         << " are not a multiple of the group " << group;
  if (v.getRank() != 2 || idx.getRank() != 2)
    return emitOpError("requires 2-D values and indices");
  int64_t n = v.getDimSize(0), slots = k / group * keep;
  std::optional<int64_t> valueBits = getValueBits();
  if (valueBits && *valueBits != 4 && *valueBits != 8)
    return emitOpError() << "requires value_bits 4 or 8, got " << *valueBits;
  bool nibbles = hasNibbleValues();
  int64_t valueCols = nibbles ? (slots + 1) / 2 : slots;
  if (v.getDimSize(1) != kDyn && v.getDimSize(1) != valueCols)
    return emitOpError() << "requires values [N, " << valueCols
                         << "] (K / group * keep"
                         << (nibbles ? " 4-bit codes, two per byte" : "")
                         << "), got " << v.getDimSize(1) << " columns";
  int64_t idxBytes = (slots * getIndexBits() + 7) / 8;
  if ((idx.getDimSize(0) != kDyn && n != kDyn && idx.getDimSize(0) != n) ||
      (idx.getDimSize(1) != kDyn && idx.getDimSize(1) != idxBytes))
    return emitOpError() << "requires indices [N, " << idxBytes << "] ("
                         << getIndexBits() << "-bit indices)";
  // f32 input: f32 values, or i8 codes with scales; f16 input: f16 values;
  // i8 input: i8 values into an i32 result (the CUDA target's mma.sp forms).
  Type xe = x.getElementType(), ve = v.getElementType(),
       re = getResult().getType().getElementType();
  bool intInput = xe.isInteger(8);
  if ((xe.isF16() && !ve.isF16()) || (intInput && !ve.isInteger(8)) ||
      (xe.isF32() && ve.isF16()))
    return emitOpError() << "values of type " << ve
                         << " do not match an input of type " << xe;
  if (intInput != re.isInteger(32))
    return emitOpError("requires an i32 result exactly with an i8 input");
  if (intInput && getBias())
    return emitOpError("requires no bias with an i8 input");
  bool quantized = ve.isInteger(8) && xe.isF32();
  if (nibbles && !quantized)
    return emitOpError("requires i8 values and an f32 input with value_bits "
                       "= 4");
  Value scales = getScales();
  std::optional<int64_t> blockSize = getBlockSize();
  if (quantized != static_cast<bool>(scales) ||
      static_cast<bool>(scales) != blockSize.has_value())
    return emitOpError("requires scales and block_size exactly with i8 values "
                       "and an f32 input");
  if (scales) {
    int64_t bs = *blockSize;
    if (bs <= 0 || (bs < k && bs % group != 0))
      return emitOpError() << "requires a block_size that is a multiple of "
                              "the group or at least K, got "
                           << bs;
    auto st = cast<RankedTensorType>(scales.getType());
    int64_t blocks = (k + bs - 1) / bs;
    if (st.getRank() != 2 ||
        (st.getDimSize(0) != kDyn && n != kDyn && st.getDimSize(0) != n) ||
        (st.getDimSize(1) != kDyn && st.getDimSize(1) != blocks))
      return emitOpError() << "requires scales [N, " << blocks << "]";
  }
  if (Value bias = getBias()) {
    auto b = cast<RankedTensorType>(bias.getType());
    if (b.getRank() != 1 ||
        (b.getDimSize(0) != kDyn && n != kDyn && b.getDimSize(0) != n))
      return emitOpError() << "requires a 1-D bias of length " << n;
  }
  SmallVector<int64_t> expected(x.getShape().drop_back());
  expected.push_back(n);
  ArrayRef<int64_t> got = getResult().getType().getShape();
  if (got.size() != expected.size() ||
      llvm::any_of(llvm::zip(expected, got), [](auto p) {
        auto [e, g] = p;
        return e != kDyn && g != kDyn && e != g;
      }))
    return emitOpError() << "result shape does not match input.shape[:-1] + "
                            "[N]";
  return success();
}


SmallVector<AffineMap>
quench::getSparseMatmulIndexingMaps(MLIRContext *ctx,
                                    int64_t batchDims,
                                    int64_t groupsPerBlock) {
  int64_t n = batchDims, g = n + 1, j = n + 2, t = n + 3,
          numLoops = n + 4;
  auto dim = [&](int64_t d) { return getAffineDimExpr(d, ctx); };
  SmallVector<AffineExpr> xExprs, outExprs;
  for (int64_t d = 0; d < batchDims; ++d) {
    xExprs.push_back(dim(d));
    outExprs.push_back(dim(d));
  }
  xExprs.append({dim(g), dim(t)});
  outExprs.push_back(dim(n));
  AffineMap slots = AffineMap::get(numLoops, 0, {dim(n), dim(g), dim(j)}, ctx);
  SmallVector<AffineMap> maps{AffineMap::get(numLoops, 0, xExprs, ctx), slots,
                              slots};
  if (groupsPerBlock > 0)
    maps.push_back(AffineMap::get(
        numLoops, 0, {dim(n), dim(g).floorDiv(groupsPerBlock)}, ctx));
  maps.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
  return maps;
}
