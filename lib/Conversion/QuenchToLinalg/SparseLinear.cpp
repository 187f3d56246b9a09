//===- SparseLinear.cpp - quench.sparse_linear to linalg ------------------===//
//
// A linear layer with an N:M weight in compressed storage (kept values and
// their in-group indices; docs/sparsity.md) as ONE linalg.generic over
// (batch..., n, g, j, t) that reads the compressed weight only: slot (g, j)
// of row n contributes x[..., g, t] * value where t is the slot's index (a
// select on t == index). The packed indices (2 or 4 bits each) are unpacked
// at compile time into one byte per slot ([N, G, keep]); x [..., K] is
// viewed as [..., G, group] and the values [N, S] as [N, G, keep]. The generic carries `quench.sparse_matmul`: it is the
// specification, which the CPU codegen replaces by its sparse kernel
// (lib/Codegen/CPU/SparseMatmul.cpp); elsewhere it runs as loops (group
// times the work of the kept weights, exact). Indices that are not
// constants have no lowering (quench-pack-sparse-weights makes constants).
// f16 inputs multiply extended to f32 and sum in f32; i8 inputs (the CUDA
// target's int8 sparse tensor cores) sum exact products in i32. 4-bit codes
// (value_bits = 4, two per byte) are unpacked at compile time to one signed
// i8 per slot like the indices, and the generic is marked
// `quench.sparse_value_bits = 4` so that the CPU kernel packs them again.
//
//===----------------------------------------------------------------------===//

#include "SparseLinear.h"

#include "Common.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"
#include "quench/Quant/SparseStorage.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"

using namespace quench;
using namespace quench::to_linalg;

namespace {

/// The bytes of a constant i8 operand (`splat` holds a splat's expansion),
/// or std::nullopt.
std::optional<ArrayRef<char>> constantData(Value v, std::vector<char> &splat) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return std::nullopt;
  if (auto dense = dyn_cast<DenseElementsAttr>(cst.getValue());
      dense && dense.isSplat()) {
    splat.assign(dense.getNumElements(), dense.getRawData().front());
    return ArrayRef<char>(splat);
  }
  return getRawConstantData(cst.getValue());
}

struct SparseLinearLowering : OpConversionPattern<SparseLinearOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(SparseLinearOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    if (!resultType)
      return failure();
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    std::vector<char> splat;
    std::optional<ArrayRef<char>> packed =
        constantData(op.getIndices(), splat);
    auto xt = cast<RankedTensorType>(adaptor.getInput().getType());
    auto vt = cast<RankedTensorType>(adaptor.getValues().getType());
    const int64_t keep = op.getKeep(), group = op.getGroup(),
                  k = xt.getShape().back(), n = vt.getDimSize(0),
                  groups = k / group, slots = groups * keep;
    const int64_t rowBytes = quench::quant::nmIndexBytesPerRow(slots, group);
    if (!packed || ShapedType::isDynamic(n) ||
        int64_t(packed->size()) != n * rowBytes)
      return rewriter.notifyMatchFailure(op, "indices are not a constant");

    // One byte per slot: the index of slot s of row r.
    std::vector<char> unpacked(n * slots);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t s = 0; s < slots; ++s)
        unpacked[r * slots + s] = static_cast<char>(quench::quant::nmIndexAt(
            reinterpret_cast<const uint8_t *>(packed->data()) + r * rowBytes,
            s, static_cast<int>(group)));
    auto i8 = rewriter.getI8Type();
    auto idxType = RankedTensorType::get({n, groups, keep}, i8);
    Value idx = arith::ConstantOp::create(
        rewriter, loc,
        cast<TypedAttr>(
            createConstantAttr(idxType, unpacked, "quench_sparse_indices")));

    // x [..., K] viewed as [..., G, group].
    Value x = adaptor.getInput();
    int64_t r = xt.getRank(), nb = r - 1;
    SmallVector<OpFoldResult> sizes;
    SmallVector<int64_t> shape;
    SmallVector<ReassociationIndices> reassoc;
    for (int64_t d = 0; d < nb; ++d) {
      sizes.push_back(tensor::getMixedSize(rewriter, loc, x, d));
      shape.push_back(xt.getDimSize(d));
      reassoc.push_back({d});
    }
    sizes.append({rewriter.getIndexAttr(groups), rewriter.getIndexAttr(group)});
    shape.append({groups, group});
    reassoc.push_back({nb, nb + 1});
    Value xe = tensor::ExpandShapeOp::create(
        rewriter, loc, RankedTensorType::get(shape, xt.getElementType()), x,
        reassoc, sizes);

    Value scales = adaptor.getScales();
    int64_t groupsPerBlock = 0;
    if (scales)
      groupsPerBlock = std::max<int64_t>(1, *op.getBlockSize() / group);
    SmallVector<AffineMap> maps =
        getSparseMatmulIndexingMaps(ctx, nb, groupsPerBlock);
    Value values;
    if (!op.hasNibbleValues()) {
      // Values [N, S] viewed as [N, G, keep].
      values = tensor::ExpandShapeOp::create(
          rewriter, loc,
          RankedTensorType::get({n, groups, keep}, vt.getElementType()),
          adaptor.getValues(), ArrayRef<ReassociationIndices>{{0}, {1, 2}});
    } else {
      // One signed code (-8 .. 7) per slot of the 4-bit codes.
      std::vector<char> nibSplat;
      std::optional<ArrayRef<char>> nib =
          constantData(op.getValues(), nibSplat);
      const int64_t nibRow = quench::quant::nmNibbleBytesPerRow(slots);
      if (!nib || int64_t(nib->size()) != n * nibRow)
        return rewriter.notifyMatchFailure(op,
                                           "4-bit values are not a constant");
      std::vector<char> codes(n * slots);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t s = 0; s < slots; ++s)
          codes[r * slots + s] = static_cast<char>(
              quench::quant::nmNibbleAt(reinterpret_cast<const uint8_t *>(
                                            nib->data()) +
                                            r * nibRow,
                                        s) -
              8);
      values = arith::ConstantOp::create(
          rewriter, loc,
          cast<TypedAttr>(createConstantAttr(
              RankedTensorType::get({n, groups, keep}, i8), codes,
              "quench_sparse_values")));
    }
    SmallVector<Value> inputs{xe, values, idx};
    if (scales)
      inputs.push_back(scales);
    SmallVector<utils::IteratorType> iters(nb + 1,
                                           utils::IteratorType::parallel);
    iters.append(3, utils::IteratorType::reduction);

    // f32 sums (f32 or f16 operands), or exact i32 sums of i8 operands.
    Type f32 = rewriter.getF32Type();
    Type xType = xt.getElementType();
    bool integer = xType.isInteger(8);
    Type accType = integer ? (Type)rewriter.getI32Type() : f32;
    SmallVector<OpFoldResult> outSizes(sizes.begin(), sizes.begin() + nb);
    outSizes.push_back(rewriter.getIndexAttr(n));
    Value zero = integer ? (Value)arith::ConstantOp::create(
                               rewriter, loc, rewriter.getI32IntegerAttr(0))
                         : floatConst(rewriter, loc, f32, 0.0);
    Value init = filledTensor(rewriter, loc, outSizes, zero);
    const int64_t tLoop = nb + 3;
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange a) {
          Value xv = a[0], w = a[1];
          if (scales)
            w = arith::MulFOp::create(b, l,
                                      arith::SIToFPOp::create(b, l, f32, w),
                                      convertFloat(b, l, a[3], f32));
          else if (integer) {
            xv = arith::ExtSIOp::create(b, l, accType, xv);
            w = arith::ExtSIOp::create(b, l, accType, w);
          } else if (xType.isF16()) {
            xv = arith::ExtFOp::create(b, l, f32, xv);
            w = arith::ExtFOp::create(b, l, f32, w);
          }
          Value t = arith::IndexCastOp::create(
              b, l, i8, linalg::IndexOp::create(b, l, tLoop));
          Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq,
                                            a[2], t);
          Value p = integer ? (Value)arith::MulIOp::create(b, l, xv, w)
                            : (Value)arith::MulFOp::create(b, l, xv, w);
          Value zeroTerm =
              integer ? (Value)arith::ConstantOp::create(
                            b, l, b.getI32IntegerAttr(0))
                      : floatConst(b, l, f32, 0.0);
          Value term = arith::SelectOp::create(b, l, hit, p, zeroTerm);
          linalg::YieldOp::create(
              b, l,
              integer ? (Value)arith::AddIOp::create(b, l, a.back(), term)
                      : (Value)arith::AddFOp::create(b, l, a.back(), term));
        });
    generic->setAttr(kSparseMatmulAttrName, rewriter.getUnitAttr());
    if (op.hasNibbleValues())
      generic->setAttr(kSparseValueBitsAttrName,
                       rewriter.getI64IntegerAttr(4));
    Value product = generic.getResult(0);
    if (Value bias = adaptor.getBias())
      product = buildElementwise(
          rewriter, loc, resultType, ValueRange{product, bias},
          [&](OpBuilder &b, Location l, ValueRange a) {
            return (Value)arith::AddFOp::create(b, l, a[0], a[1]);
          });
    else if (product.getType() != resultType)
      product = tensor::CastOp::create(rewriter, loc, resultType, product);
    rewriter.replaceOp(op, product);
    return success();
  }
};

} // namespace

void to_linalg::populateSparseLinearPatterns(const TypeConverter &converter,
                                             RewritePatternSet &patterns) {
  patterns.add<SparseLinearLowering>(converter, patterns.getContext());
}
