//===- MatMulNBits.cpp - quench.matmul_nbits to linalg --------------------===//
//
// Block-quantized weight matmul (ONNX Runtime MatMulNBits and the output of
// quench-quantize-weights) as ONE linalg.generic that reads the packed codes
// and dequantizes them in its body: no dequantized weight matrix exists.
//
// Fast form (bits 2, 4 or 8, constant weight, scales and zero points): the
// constants are laid out again at compile time, K-major, so that the codes
// of consecutive output features are contiguous (docs/lowering.md):
//   codes  [N, blocks, J] bytes -> [blocks, J, N]   (J = block * bits / 8)
//   scales [N * blocks]         -> [blocks, N]
//   zero points (packed)        -> [blocks, N] one code per byte
// and x [..., K] is padded to blocks * block and viewed as
// [..., blocks, J, 8 / bits]. Loops (batch..., b, j, h, n): code
// (w[b, j, n] >> h * bits) & mask dequantizes as (code - zp) * scale and
// multiplies x[..., b, j, h]. The generic carries `quench.dequant_matmul`:
// it is the specification, which the CPU codegen stage replaces by an
// explicit vector kernel (lib/Codegen/CPU/DequantMatmul.cpp: partial sums per
// group, codes in panels) or, where that does not apply, tiles like a
// matmul and vectorizes the unpacking.
//
// General form (any other case: 3/5/6/7 bits, weights computed at run
// time): loops (batch..., n, k) reading the byte(s) of each code with
// tensor.extract; scalar loops, but exact.
//
//===----------------------------------------------------------------------===//

#include "Common.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"
#include "quench/Quant/RTN.h"

#include "mlir/Dialect/Utils/StructuredOpsUtils.h"


using namespace quench;
using namespace quench::to_linalg;

namespace {

/// The row-major bytes of a constant operand: a view of its data (not a
/// copy: weights are large), or `storage` filled with a splat's expansion.
std::optional<ArrayRef<char>> constantBytes(Value v,
                                            std::vector<char> &storage) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return std::nullopt;
  if (auto dense = dyn_cast<DenseElementsAttr>(cst.getValue());
      dense && dense.isSplat()) {
    ArrayRef<char> one = dense.getRawData();
    int64_t count = dense.getNumElements();
    if (getStorageBytesPerElement(dense.getElementType()) !=
        int64_t(one.size()))
      return std::nullopt;
    storage.clear();
    storage.reserve(one.size() * count);
    for (int64_t i = 0; i < count; ++i)
      storage.insert(storage.end(), one.begin(), one.end());
    return ArrayRef<char>(storage);
  }
  return getRawConstantData(cst.getValue());
}

/// Drops the resident pages of a constant operand read by the relayout.
void releaseOperandPages(Value v) {
  if (auto cst = v ? v.getDefiningOp<ConstantOp>() : ConstantOp())
    releaseConstantPages(cst.getValue());
}

Value constantTensor(OpBuilder &b, Location loc, RankedTensorType type,
                     ArrayRef<char> data, StringRef name) {
  return arith::ConstantOp::create(
      b, loc, cast<TypedAttr>(createConstantAttr(type, data, name)));
}

struct MatMulNBitsLowering : OpConversionPattern<MatMulNBitsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(MatMulNBitsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    RankedTensorType resultType = convertedResultType(getTypeConverter(), op);
    if (!resultType)
      return failure();
    Value x = adaptor.getInput();
    checkContractedExtent(rewriter, op.getLoc(), "MatMulNBits", x,
                          cast<RankedTensorType>(x.getType()).getRank() - 1,
                          rewriter.getIndexAttr(op.getInFeatures()));
    FailureOr<Value> fast = fastForm(op, adaptor, rewriter);
    Value product =
        succeeded(fast) ? *fast : generalForm(op, adaptor, rewriter);
    rewriter.replaceOp(op, finish(op, adaptor, rewriter, product, resultType));
    return success();
  }

private:
  /// Accumulator [batch..., N] -> result: bias, element type.
  Value finish(MatMulNBitsOp op, OpAdaptor adaptor, OpBuilder &b,
               Value product, RankedTensorType resultType) const {
    Location loc = op.getLoc();
    Type et = resultType.getElementType(), acc = accumulatorType(et);
    Value bias = adaptor.getBias();
    if (!bias && acc == et) {
      if (product.getType() != resultType)
        product = tensor::CastOp::create(b, loc, resultType, product);
      return product;
    }
    SmallVector<Value> operands{product};
    if (bias)
      operands.push_back(bias);
    return buildElementwise(
        b, loc, resultType, operands,
        [&](OpBuilder &nb, Location l, ValueRange a) {
          Value v = a[0];
          if (a.size() > 1)
            v = arith::AddFOp::create(nb, l, v,
                                      convertFloat(nb, l, a[1], acc));
          return convertFloat(nb, l, v, et);
        });
  }

  /// Zero-filled accumulator [batch..., N].
  Value accumulator(OpBuilder &b, Location loc, Value x, int64_t n,
                    Type acc) const {
    auto xt = cast<RankedTensorType>(x.getType());
    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d + 1 < xt.getRank(); ++d)
      sizes.push_back(tensor::getMixedSize(b, loc, x, d));
    sizes.push_back(b.getIndexAttr(n));
    return filledTensor(b, loc, sizes, floatConst(b, loc, acc, 0.0));
  }

  FailureOr<Value> fastForm(MatMulNBitsOp op, OpAdaptor adaptor,
                            ConversionPatternRewriter &rewriter) const {
    int64_t bits = op.getBits(), block = op.getBlockSize();
    int64_t k = op.getInFeatures(), n = op.getOutFeatures();
    if (8 % bits != 0 || block % (8 / bits) != 0)
      return failure();
    std::vector<char> wSplat, sSplat, zSplat;
    std::optional<ArrayRef<char>> w = constantBytes(op.getWeight(), wSplat);
    std::optional<ArrayRef<char>> s = constantBytes(op.getScales(), sSplat);
    std::optional<ArrayRef<char>> z;
    if (op.getZeroPoints()) {
      z = constantBytes(op.getZeroPoints(), zSplat);
      if (!z)
        return failure();
    }
    auto sType = cast<RankedTensorType>(op.getScales().getType());
    Type st = sType.getElementType();
    int64_t sBytes = st.getIntOrFloatBitWidth() / 8;
    int64_t blocks = (k + block - 1) / block, perByte = 8 / bits;
    int64_t jn = block / perByte;
    if (!w || !s || int64_t(w->size()) != n * blocks * jn ||
        int64_t(s->size()) != n * blocks * sBytes)
      return failure();
    bool floatZp = false;
    if (z) {
      auto zt = cast<RankedTensorType>(op.getZeroPoints().getType());
      floatZp = isa<FloatType>(zt.getElementType());
      int64_t zBytes = floatZp ? n * blocks * sBytes
                               : n * ((blocks * bits + 7) / 8);
      if ((floatZp && zt.getElementType() != st) ||
          int64_t(z->size()) != zBytes)
        return failure();
    }

    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    Type i8 = rewriter.getI8Type();
    // Compile-time relayout, K-major: [N, X] -> [X, N] for every operand.
    Value wtV = constantTensor(rewriter, loc,
                               RankedTensorType::get({blocks, jn, n}, i8),
                               transposeBytes(*w, n, blocks * jn, 1),
                               "quench_nbits_codes");
    Value stV = constantTensor(rewriter, loc,
                               RankedTensorType::get({blocks, n}, st),
                               transposeBytes(*s, n, blocks, sBytes),
                               "quench_nbits_scales");
    releaseOperandPages(op.getWeight());
    releaseOperandPages(op.getScales());
    Value ztV;
    if (z && floatZp) {
      ztV = constantTensor(rewriter, loc, RankedTensorType::get({blocks, n}, st),
                           transposeBytes(*z, n, blocks, sBytes),
                           "quench_nbits_zero_points");
    } else if (z) {
      // Packed rows of codes -> one code per byte, then K-major.
      int64_t rowBytes = (blocks * bits + 7) / 8;
      std::vector<char> codes(n * blocks);
      for (int64_t r = 0; r < n; ++r)
        quench::quant::unpackCodes(
            reinterpret_cast<const uint8_t *>(z->data()) + r * rowBytes,
            blocks, static_cast<int>(bits),
            reinterpret_cast<uint8_t *>(codes.data()) + r * blocks);
      ztV = constantTensor(rewriter, loc, RankedTensorType::get({blocks, n}, i8),
                           transposeBytes(codes, n, blocks, 1),
                           "quench_nbits_zero_points");
    }
    releaseOperandPages(op.getZeroPoints());

    // x [..., K] -> [..., blocks * block] (zero padded) -> [..., blocks, J, h].
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t r = xt.getRank();
    Type et = xt.getElementType(), acc = accumulatorType(et);
    if (xt.isDynamicDim(r - 1))
      x = tensor::CastOp::create(
          rewriter, loc,
          RankedTensorType::get(
              [&] {
                SmallVector<int64_t> shape(xt.getShape());
                shape.back() = k;
                return shape;
              }(),
              et),
          x);
    if (blocks * block != k) {
      SmallVector<OpFoldResult> lo(r, rewriter.getIndexAttr(0)),
          hi(r, rewriter.getIndexAttr(0));
      hi.back() = rewriter.getIndexAttr(blocks * block - k);
      SmallVector<int64_t> padded(cast<RankedTensorType>(x.getType()).getShape());
      padded.back() = blocks * block;
      x = tensor::PadOp::create(rewriter, loc,
                                RankedTensorType::get(padded, et), x, lo, hi,
                                floatConst(rewriter, loc, et, 0.0));
    }
    SmallVector<OpFoldResult> expandedSizes;
    SmallVector<int64_t> expandedShape;
    for (int64_t d = 0; d + 1 < r; ++d) {
      expandedSizes.push_back(tensor::getMixedSize(rewriter, loc, x, d));
      expandedShape.push_back(xt.getDimSize(d));
    }
    for (int64_t e : {blocks, jn, perByte}) {
      expandedSizes.push_back(rewriter.getIndexAttr(e));
      expandedShape.push_back(e);
    }
    SmallVector<ReassociationIndices> reassoc;
    for (int64_t d = 0; d + 1 < r; ++d)
      reassoc.push_back({d});
    reassoc.push_back({r - 1, r, r + 1});
    Value xe = tensor::ExpandShapeOp::create(
        rewriter, loc, RankedTensorType::get(expandedShape, et), x, reassoc,
        expandedSizes);

    // Loops (batch..., b, j, h, n): n innermost, so that vectors run
    // along contiguous output features (and codes).
    int64_t nb = r - 1;  // batch dims
    int64_t hd = nb + 2; // code within the byte
    SmallVector<AffineMap> maps =
        QuenchDialect::getDequantMatmulIndexingMaps(ctx, nb, bool(ztV));
    SmallVector<Value> inputs{xe, wtV, stV};
    if (ztV)
      inputs.push_back(ztV);
    SmallVector<utils::IteratorType> iters(nb, utils::IteratorType::parallel);
    iters.append(3, utils::IteratorType::reduction);
    iters.push_back(utils::IteratorType::parallel);
    Value init = accumulator(rewriter, loc, adaptor.getInput(), n, acc);
    Type i32 = rewriter.getI32Type();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange a) {
          Value code = arith::ExtUIOp::create(b, l, i32, a[1]);
          if (bits < 8) {
            Value h = linalg::IndexOp::create(b, l, hd);
            Value shift = arith::MulIOp::create(
                b, l, arith::IndexCastUIOp::create(b, l, i32, h),
                intConst(b, l, i32, bits));
            code = arith::ShRUIOp::create(b, l, code, shift);
            code = arith::AndIOp::create(b, l, code,
                                         intConst(b, l, i32, (1 << bits) - 1));
          }
          Value scale = convertFloat(b, l, a[2], acc);
          Value w;
          if (ztV && floatZp) {
            Value q = arith::UIToFPOp::create(b, l, acc, code);
            w = arith::MulFOp::create(
                b, l,
                arith::SubFOp::create(b, l, q, convertFloat(b, l, a[3], acc)),
                scale);
          } else {
            Value zp = ztV ? (Value)arith::ExtUIOp::create(b, l, i32, a[3])
                           : intConst(b, l, i32, 1 << (bits - 1));
            Value d = arith::SubIOp::create(b, l, code, zp);
            w = arith::MulFOp::create(
                b, l, arith::SIToFPOp::create(b, l, acc, d), scale);
          }
          Value xv = convertFloat(b, l, a[0], acc);
          Value p = arith::MulFOp::create(b, l, xv, w);
          linalg::YieldOp::create(
              b, l, (Value)arith::AddFOp::create(b, l, a.back(), p));
        });
    generic->setAttr(quench::QuenchDialect::getDequantMatmulAttrName(),
                     rewriter.getUnitAttr());
    // Bitmask sparse storage, for the CPU kernel (QuenchSparseOps.h).
    if (Attribute storage = op->getAttr(quench::kSparseStorageAttrName))
      generic->setAttr(quench::kSparseStorageAttrName, storage);
    return generic.getResult(0);
  }

  /// Loops (batch..., n, k); each code read from its byte(s).
  Value generalForm(MatMulNBitsOp op, OpAdaptor adaptor,
                    ConversionPatternRewriter &rewriter) const {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    int64_t bits = op.getBits(), block = op.getBlockSize();
    int64_t k = op.getInFeatures(), n = op.getOutFeatures();
    int64_t blocks = (k + block - 1) / block;
    Value x = adaptor.getInput();
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t r = xt.getRank();
    Type et = xt.getElementType(), acc = accumulatorType(et);
    Value w = adaptor.getWeight(), s = adaptor.getScales(),
          z = adaptor.getZeroPoints();
    bool floatZp = z && isa<FloatType>(getElementTypeOrSelf(z.getType()));
    int64_t zpRowBytes = (blocks * bits + 7) / 8;
    int64_t blockBytes = block * bits / 8;
    // Scales and float zero points as [N * blocks]; packed zero points as
    // [N * rowBytes].
    auto flatten = [&](Value v) -> Value {
      auto t = cast<RankedTensorType>(v.getType());
      if (t.getRank() == 1)
        return v;
      ReassociationIndices all;
      for (int64_t d = 0; d < t.getRank(); ++d)
        all.push_back(d);
      return tensor::CollapseShapeOp::create(rewriter, loc, v,
                                             ArrayRef<ReassociationIndices>{all});
    };
    s = flatten(s);
    if (z)
      z = flatten(z);

    int64_t nd = r - 1, kd = r;
    auto dim = [&](int64_t d) { return getAffineDimExpr(d, ctx); };
    SmallVector<AffineExpr> xExprs, outExprs;
    for (int64_t d = 0; d < nd; ++d) {
      xExprs.push_back(dim(d));
      outExprs.push_back(dim(d));
    }
    xExprs.push_back(dim(kd));
    outExprs.push_back(dim(nd));
    SmallVector<AffineMap> maps{AffineMap::get(r + 1, 0, xExprs, ctx),
                                AffineMap::get(r + 1, 0, outExprs, ctx)};
    SmallVector<utils::IteratorType> iters(r, utils::IteratorType::parallel);
    iters.push_back(utils::IteratorType::reduction);
    Value init = accumulator(rewriter, loc, x, n, acc);
    Type i32 = rewriter.getI32Type();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, ValueRange{x},
        ValueRange{init}, maps, iters,
        [&](OpBuilder &b, Location l, ValueRange a) {
          auto idx = [&](int64_t v) { return indexConst(b, l, v); };
          Value nIdx = linalg::IndexOp::create(b, l, nd);
          Value kIdx = linalg::IndexOp::create(b, l, kd);
          Value g = arith::DivUIOp::create(b, l, kIdx, idx(block));
          Value within = arith::RemUIOp::create(b, l, kIdx, idx(block));
          // The code starting at bit `bit` of the byte tensor `base`
          // (indexed by `prefix` + byte); `limit` bytes along that dim.
          auto readCode = [&](Value base, ValueRange prefix, Value bit,
                              int64_t limit) -> Value {
            Value byte = arith::DivUIOp::create(b, l, bit, idx(8));
            Value off = arith::IndexCastUIOp::create(
                b, l, i32, arith::RemUIOp::create(b, l, bit, idx(8)));
            SmallVector<Value> at(prefix);
            at.push_back(byte);
            Value lo = arith::ExtUIOp::create(
                b, l, i32, tensor::ExtractOp::create(b, l, base, at));
            Value v = arith::ShRUIOp::create(b, l, lo, off);
            if (8 % bits != 0) {
              // The code may continue in the next byte (clamped read: the
              // extra bits are masked off when it does not).
              at.back() = arith::MinUIOp::create(
                  b, l, arith::AddIOp::create(b, l, byte, idx(1)),
                  idx(limit - 1));
              Value hi = arith::ExtUIOp::create(
                  b, l, i32, tensor::ExtractOp::create(b, l, base, at));
              Value sh = arith::SubIOp::create(b, l, intConst(b, l, i32, 8),
                                               off);
              v = arith::OrIOp::create(b, l, v,
                                       arith::ShLIOp::create(b, l, hi, sh));
            }
            return arith::AndIOp::create(b, l, v,
                                         intConst(b, l, i32, (1 << bits) - 1));
          };
          Value code =
              readCode(w, ValueRange{nIdx, g},
                       arith::MulIOp::create(b, l, within, idx(bits)),
                       blockBytes);
          Value sIdx = arith::AddIOp::create(
              b, l, arith::MulIOp::create(b, l, nIdx, idx(blocks)), g);
          Value scale =
              convertFloat(b, l, tensor::ExtractOp::create(b, l, s, sIdx), acc);
          Value wv;
          if (floatZp) {
            Value zpv = convertFloat(
                b, l, tensor::ExtractOp::create(b, l, z, sIdx), acc);
            wv = arith::MulFOp::create(
                b, l,
                arith::SubFOp::create(
                    b, l, arith::UIToFPOp::create(b, l, acc, code), zpv),
                scale);
          } else {
            // Packed zero points: rows of zpRowBytes bytes, code g of row n.
            Value zpv =
                z ? readCode(z, ValueRange{},
                             arith::AddIOp::create(
                                 b, l,
                                 arith::MulIOp::create(b, l, nIdx,
                                                       idx(zpRowBytes * 8)),
                                 arith::MulIOp::create(b, l, g, idx(bits))),
                             n * zpRowBytes)
                  : intConst(b, l, i32, 1 << (bits - 1));
            wv = arith::MulFOp::create(
                b, l,
                arith::SIToFPOp::create(
                    b, l, acc, arith::SubIOp::create(b, l, code, zpv)),
                scale);
          }
          Value p =
              arith::MulFOp::create(b, l, convertFloat(b, l, a[0], acc), wv);
          linalg::YieldOp::create(b, l,
                                  (Value)arith::AddFOp::create(b, l, a[1], p));
        });
    return generic.getResult(0);
  }
};

/// quench.dequantize_nbits (bits 2, 4 or 8): one all-parallel generic over
/// (lead..., block, byte, code-in-byte) writing [lead..., blocks, J, 8/bits],
/// collapsed to [lead..., blocks * block] and sliced to K when the last block
/// is padded. Every index map is a projection, so it vectorizes like any
/// elementwise op.
struct DequantizeNBitsLowering : OpConversionPattern<DequantizeNBitsOp> {
  using OpConversionPattern::OpConversionPattern;

  LogicalResult
  matchAndRewrite(DequantizeNBitsOp op, OpAdaptor adaptor,
                  ConversionPatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    MLIRContext *ctx = getContext();
    RankedTensorType resType = convertedResultType(getTypeConverter(), op);
    if (!resType)
      return failure();
    int64_t bits = op.getBits(), block = op.getBlockSize();
    int64_t perByte = 8 / bits, blockBytes = block * bits / 8;
    Value codes = adaptor.getCodes(), scales = adaptor.getScales(),
          zp = adaptor.getZeroPoints();
    auto codeType = cast<RankedTensorType>(codes.getType());
    int64_t lead = codeType.getRank() - 2;
    int64_t blocks = codeType.getShape()[lead];
    Type et = resType.getElementType(), acc = accumulatorType(et);

    SmallVector<OpFoldResult> sizes;
    for (int64_t d = 0; d < lead; ++d)
      sizes.push_back(codeType.isDynamicDim(d)
                          ? OpFoldResult(dimValue(rewriter, loc, codes, d))
                          : OpFoldResult(rewriter.getIndexAttr(
                                codeType.getDimSize(d))));
    SmallVector<OpFoldResult> outSizes(sizes);
    outSizes.append({rewriter.getIndexAttr(blocks),
                     rewriter.getIndexAttr(blockBytes),
                     rewriter.getIndexAttr(perByte)});
    Value init = emptyTensor(rewriter, loc, outSizes, et);

    int64_t loops = lead + 3;
    auto dims = [&](ArrayRef<int64_t> ds) {
      SmallVector<AffineExpr> e;
      for (int64_t d = 0; d < lead; ++d)
        e.push_back(getAffineDimExpr(d, ctx));
      for (int64_t d : ds)
        e.push_back(getAffineDimExpr(lead + d, ctx));
      return AffineMap::get(loops, 0, e, ctx);
    };
    SmallVector<Value> inputs{codes, scales};
    SmallVector<AffineMap> maps{dims({0, 1}), dims({0})};
    if (zp) {
      inputs.push_back(zp);
      maps.push_back(dims({0}));
    }
    maps.push_back(dims({0, 1, 2}));
    SmallVector<utils::IteratorType> iters(loops,
                                           utils::IteratorType::parallel);
    Type i32 = rewriter.getI32Type();
    auto generic = linalg::GenericOp::create(
        rewriter, loc, TypeRange{init.getType()}, inputs, ValueRange{init},
        maps, iters, [&](OpBuilder &b, Location l, ValueRange a) {
          Value h = arith::IndexCastUIOp::create(
              b, l, i32, linalg::IndexOp::create(b, l, lead + 2));
          Value shift =
              arith::MulIOp::create(b, l, h, intConst(b, l, i32, bits));
          Value byte = arith::ExtUIOp::create(b, l, i32, a[0]);
          Value code = arith::AndIOp::create(
              b, l, arith::ShRUIOp::create(b, l, byte, shift),
              intConst(b, l, i32, (1 << bits) - 1));
          Value scale = convertFloat(b, l, a[1], acc);
          Value centered =
              zp ? (Value)arith::SubFOp::create(
                       b, l, arith::UIToFPOp::create(b, l, acc, code),
                       convertFloat(b, l, a[2], acc))
                 : (Value)arith::SIToFPOp::create(
                       b, l, acc,
                       arith::SubIOp::create(
                           b, l, code, intConst(b, l, i32, 1 << (bits - 1))));
          Value v = arith::MulFOp::create(b, l, centered, scale);
          linalg::YieldOp::create(b, l, convertFloat(b, l, v, et));
        });

    SmallVector<ReassociationIndices> reassoc;
    for (int64_t d = 0; d < lead; ++d)
      reassoc.push_back({d});
    reassoc.push_back({lead, lead + 1, lead + 2});
    Value flat = tensor::CollapseShapeOp::create(rewriter, loc,
                                                 generic.getResult(0), reassoc);
    int64_t k = resType.getShape().back();
    if (k != blocks * block) {
      SmallVector<OpFoldResult> offsets(lead + 1, rewriter.getIndexAttr(0));
      SmallVector<OpFoldResult> strides(lead + 1, rewriter.getIndexAttr(1));
      SmallVector<OpFoldResult> sliceSizes(sizes);
      sliceSizes.push_back(rewriter.getIndexAttr(k));
      flat = tensor::ExtractSliceOp::create(rewriter, loc, resType, flat,
                                            offsets, sliceSizes, strides);
    }
    rewriter.replaceOp(op, flat);
    return success();
  }
};

} // namespace

void to_linalg::populateMatMulNBitsPatterns(const TypeConverter &converter,
                                            RewritePatternSet &patterns) {
  patterns.add<MatMulNBitsLowering, DequantizeNBitsLowering>(
      converter, patterns.getContext());
}
