//===- DequantMatmul.cpp - the CPU kernel of quench.matmul_nbits ----------===//
//
// The fused dequantizing matmul that MatMulNBits.cpp lowers
// quench.matmul_nbits to (a linalg.generic over (batch..., b, j, h, n)
// marked `quench.dequant_matmul`) is replaced here by an explicit kernel on
// tensors (scf + vector ops), because the per-weight form of the generic
// (extend, shift, mask, subtract the zero point, convert, scale, FMA) is
// compute bound at about 6 cycles per 32 weights. The kernel computes the
// same sum reassociated per quantization group b:
//
//   y[r, n] += s[b, n] * (Σ_{j,h} x[r, b, j, h] * q[b, j, h, n])
//              - (z[b, n] * s[b, n]) * Σ_{j,h} x[r, b, j, h]
//
// so that the inner loop is, per SIMD vector of codes: one zero-extending
// load of bytes (shared by the 8 / bits codes of a byte), a shift or a mask
// per code, an int-to-float conversion and one FMA per row; the scale and
// the zero point cost a few operations per group. The group sums of x
// (Σ x per row and group) are a small linalg reduction computed first.
// Register tile: mr rows x nv SIMD vectors of output features, partial sums
// and accumulators loop-carried in registers; parallel tasks of output
// features (scf.forall). See docs/lowering.md ("Quantized matmul kernel").
//
//===----------------------------------------------------------------------===//

#include "CPUCodegen.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include <numeric>

using namespace mlir;

namespace {

/// The operands of the kernel, rows collapsed into one dimension R.
struct DequantOperands {
  Value x;      ///< [R, blocks, J, P], the activation's element type.
  /// The constants in panels of nr output features, zero padded to whole
  /// panels: codes [N/nr, blocks, J, nr] i8 (P codes of `bits` bits per
  /// byte), scales [N/nr, blocks, nr] (f32/f16/bf16), zero points likewise
  /// (i8 codes or floats; null: 2^(bits-1)). A register tile then streams
  /// one contiguous run of bytes instead of one row per page.
  Value codes, scales, zp;
  Value sx;     ///< [R, blocks] f32: Σ_{j,h} x.
  bool floatZp = false;
  int64_t bits = 4, perByte = 2, jn = 16, blocks = 1, n = 1, lanes = 8;
  int64_t nr = 32;
};

/// Builds the register tile at rows [row, row + mr) and output features
/// [col, col + nv * lanes) of `out` ([R, N'] f32, the task's columns
/// starting at `colBase` of the weights); returns the updated tensor.
/// `inBounds` false: the last vector may run past N (masked transfers).
class TileEmitter {
public:
  TileEmitter(OpBuilder &b, Location loc, const DequantOperands &d)
      : b(b), loc(loc), d(d) {
    f32 = b.getF32Type();
    vf = VectorType::get({d.lanes}, f32);
    vi8 = VectorType::get({d.lanes}, b.getI8Type());
    vi32 = VectorType::get({d.lanes}, b.getI32Type());
  }

  /// The tile at task-local row `row` and column `col` (see above).
  Value emit(Value out, Value row, Value colBase, Value col, int64_t mr,
             int64_t nv, bool inBounds);

private:
  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(OpBuilder &ob, Value a, int64_t c) {
    return c == 0 ? a
                  : (Value)arith::AddIOp::create(
                        ob, loc, a, arith::ConstantIndexOp::create(ob, loc, c));
  }
  Value read(OpBuilder &ob, VectorType t, Value src, ValueRange at,
             bool inBounds) {
    Type et = t.getElementType();
    Value pad = arith::ConstantOp::create(ob, loc, ob.getZeroAttr(et));
    return vector::TransferReadOp::create(ob, loc, t, src, at, pad,
                                          ArrayRef<bool>{inBounds});
  }
  /// A vector of floats of `t`'s element type widened to f32.
  Value readF32(OpBuilder &ob, Value src, ValueRange at, bool inBounds) {
    Type et = getElementTypeOrSelf(src.getType());
    Value v = read(ob, VectorType::get({d.lanes}, et), src, at, inBounds);
    if (et != f32)
      v = arith::ExtFOp::create(ob, loc, vf, v);
    return v;
  }
  Value scalarF32(OpBuilder &ob, Value src, ValueRange at) {
    Value v = tensor::ExtractOp::create(ob, loc, src, at);
    if (v.getType() != f32)
      v = arith::ExtFOp::create(ob, loc, f32, v);
    return vector::BroadcastOp::create(ob, loc, vf, v);
  }

  OpBuilder &b;
  Location loc;
  const DequantOperands &d;
  Type f32;
  VectorType vf, vi8, vi32;
};

Value TileEmitter::emit(Value out, Value row, Value colBase, Value col,
                        int64_t mr, int64_t nv, bool inBounds) {
  int64_t tileVecs = mr * nv;
  auto at = [&](int64_t i, int64_t v) { return i * nv + v; };
  // Panel and offset of vector v's weights, output columns (task-local).
  Value gcol = arith::AddIOp::create(b, loc, colBase, col);
  Value panel = arith::DivUIOp::create(b, loc, gcol, idx(d.nr));
  Value off = arith::RemUIOp::create(b, loc, gcol, idx(d.nr));
  SmallVector<Value> wcols, ocols, rows;
  for (int64_t v = 0; v < nv; ++v) {
    wcols.push_back(add(b, off, v * d.lanes));
    ocols.push_back(add(b, col, v * d.lanes));
  }
  for (int64_t i = 0; i < mr; ++i)
    rows.push_back(add(b, row, i));

  SmallVector<Value> accInit;
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nv; ++v)
      accInit.push_back(read(b, vf, out, {rows[i], ocols[v]}, inBounds));
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vf));
  SmallVector<Value> zeros(tileVecs, zero);

  // j steps unrolled per iteration of the code loop.
  int64_t unroll = std::gcd<int64_t>(d.jn, 4);
  auto blockLoop = scf::ForOp::create(
      b, loc, idx(0), idx(d.blocks), idx(1), accInit,
      [&](OpBuilder &bb, Location, Value blk, ValueRange accs) {
        auto codeLoop = scf::ForOp::create(
            bb, loc, arith::ConstantIndexOp::create(bb, loc, 0),
            arith::ConstantIndexOp::create(bb, loc, d.jn),
            arith::ConstantIndexOp::create(bb, loc, unroll), zeros,
            [&](OpBuilder &jb, Location, Value j0, ValueRange parts) {
              SmallVector<Value> p(parts);
              for (int64_t u = 0; u < unroll; ++u) {
                Value j = add(jb, j0, u);
                // x[r, b, j, h] broadcast, per row and code of the byte.
                SmallVector<Value> xs;
                for (int64_t i = 0; i < mr; ++i)
                  for (int64_t h = 0; h < d.perByte; ++h)
                    xs.push_back(scalarF32(
                        jb, d.x,
                        {rows[i], blk, j,
                         arith::ConstantIndexOp::create(jb, loc, h)}));
                for (int64_t v = 0; v < nv; ++v) {
                  Value bytes =
                      read(jb, vi8, d.codes, {panel, blk, j, wcols[v]}, true);
                  Value wide = arith::ExtUIOp::create(jb, loc, vi32, bytes);
                  for (int64_t h = 0; h < d.perByte; ++h) {
                    Value q = wide;
                    // Bytes are zero-extended: the top code needs no mask,
                    // the bottom one no shift.
                    if (h > 0)
                      q = arith::ShRUIOp::create(
                          jb, loc, q,
                          arith::ConstantOp::create(
                              jb, loc,
                              DenseElementsAttr::get(
                                  vi32, jb.getI32IntegerAttr(h * d.bits))));
                    if (h + 1 < d.perByte)
                      q = arith::AndIOp::create(
                          jb, loc, q,
                          arith::ConstantOp::create(
                              jb, loc,
                              DenseElementsAttr::get(
                                  vi32, jb.getI32IntegerAttr((1 << d.bits) -
                                                             1))));
                    Value qf = arith::SIToFPOp::create(jb, loc, vf, q);
                    for (int64_t i = 0; i < mr; ++i)
                      p[at(i, v)] = vector::FMAOp::create(
                          jb, loc, xs[i * d.perByte + h], qf, p[at(i, v)]);
                  }
                }
              }
              scf::YieldOp::create(jb, loc, p);
            });
        // Once per group: scale the partial sums, subtract the zero point
        // times the group sum of x.
        SmallVector<Value> acc(accs);
        SmallVector<Value> sxs;
        for (int64_t i = 0; i < mr; ++i)
          sxs.push_back(scalarF32(bb, d.sx, {rows[i], blk}));
        for (int64_t v = 0; v < nv; ++v) {
          Value s = readF32(bb, d.scales, {panel, blk, wcols[v]}, true);
          Value z;
          if (!d.zp)
            z = arith::ConstantOp::create(
                bb, loc,
                DenseElementsAttr::get(
                    vf, bb.getF32FloatAttr(float(1 << (d.bits - 1)))));
          else if (d.floatZp)
            z = readF32(bb, d.zp, {panel, blk, wcols[v]}, true);
          else
            z = arith::SIToFPOp::create(
                bb, loc, vf,
                arith::ExtUIOp::create(
                    bb, loc, vi32,
                    read(bb, vi8, d.zp, {panel, blk, wcols[v]}, true)));
          Value zs = arith::MulFOp::create(bb, loc, z, s);
          for (int64_t i = 0; i < mr; ++i) {
            Value a = vector::FMAOp::create(
                bb, loc, s, codeLoop.getResult(at(i, v)), acc[at(i, v)]);
            acc[at(i, v)] = arith::SubFOp::create(
                bb, loc, a, arith::MulFOp::create(bb, loc, zs, sxs[i]));
          }
        }
        scf::YieldOp::create(bb, loc, acc);
      });
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nv; ++v)
      out = vector::TransferWriteOp::create(
                b, loc, blockLoop.getResult(at(i, v)), out,
                ValueRange{rows[i], ocols[v]}, ArrayRef<bool>{inBounds})
                .getResult();
  return out;
}

/// True when `op` is exactly the fast form MatMulNBits.cpp builds (maps
/// included), with the shapes the kernel needs.
bool matchDequantMatmul(linalg::GenericOp op, DequantOperands &d) {
  if (!op->hasAttr("quench.dequant_matmul") || !op.hasPureTensorSemantics() ||
      op.getNumDpsInits() != 1 || op.getNumDpsInputs() < 3 ||
      op.getNumDpsInputs() > 4)
    return false;
  unsigned numLoops = op.getNumLoops();
  if (numLoops < 5)
    return false;
  unsigned nb = numLoops - 4;
  auto xt = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto wt = dyn_cast<RankedTensorType>(op.getDpsInputs()[1].getType());
  auto st = dyn_cast<RankedTensorType>(op.getDpsInputs()[2].getType());
  auto ot = dyn_cast<RankedTensorType>(op.getDpsInits()[0].getType());
  if (!xt || !wt || !st || !ot || xt.getRank() != nb + 3 ||
      wt.getRank() != 3 || st.getRank() != 2 || ot.getRank() != nb + 1 ||
      !wt.hasStaticShape() || !st.hasStaticShape() ||
      !wt.getElementType().isInteger(8) || !ot.getElementType().isF32() ||
      !isa<FloatType>(xt.getElementType()) ||
      !isa<FloatType>(st.getElementType()))
    return false;
  ArrayRef<int64_t> xs = xt.getShape();
  int64_t perByte = xs[nb + 2];
  if (ShapedType::isDynamic(perByte) || (perByte != 1 && perByte != 2 &&
                                         perByte != 4))
    return false;
  d.perByte = perByte;
  d.bits = 8 / perByte;
  d.blocks = wt.getDimSize(0);
  d.jn = wt.getDimSize(1);
  d.n = wt.getDimSize(2);
  if (xs[nb] != d.blocks || xs[nb + 1] != d.jn ||
      st.getShape() != ArrayRef<int64_t>{d.blocks, d.n} ||
      ot.getShape().back() != d.n)
    return false;
  if (op.getNumDpsInputs() == 4) {
    auto zt = dyn_cast<RankedTensorType>(op.getDpsInputs()[3].getType());
    if (!zt || zt.getShape() != st.getShape())
      return false;
    d.floatZp = isa<FloatType>(zt.getElementType());
    if (d.floatZp ? zt.getElementType() != st.getElementType()
                  : !zt.getElementType().isInteger(8))
      return false;
  }
  // Maps: x (batch..., b, j, h), codes (b, j, n), scales/zp (b, n),
  // out (batch..., n).
  MLIRContext *ctx = op.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> xExprs, outExprs;
  for (unsigned i = 0; i < nb; ++i) {
    xExprs.push_back(dim(i));
    outExprs.push_back(dim(i));
  }
  xExprs.append({dim(nb), dim(nb + 1), dim(nb + 2)});
  outExprs.push_back(dim(nb + 3));
  SmallVector<AffineMap> want{
      AffineMap::get(numLoops, 0, xExprs, ctx),
      AffineMap::get(numLoops, 0, {dim(nb), dim(nb + 1), dim(nb + 3)}, ctx),
      AffineMap::get(numLoops, 0, {dim(nb), dim(nb + 3)}, ctx)};
  if (op.getNumDpsInputs() == 4)
    want.push_back(want.back());
  want.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
  return op.getIndexingMapsArray() == want;
}

/// The constant `v`, row-major [rows..., n], as panels of `nr` columns:
/// [ceil(n / nr), rows..., nr], zero padded. Null when `v` is not a
/// constant whose bytes are readable.
Value panelize(RewriterBase &rw, Value v, int64_t nr) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!cst || !type || !type.hasStaticShape())
    return {};
  auto attr = dyn_cast<ElementsAttr>(cst.getValue());
  if (!attr)
    return {};
  int64_t n = type.getShape().back();
  int64_t rows = type.getNumElements() / n, panels = llvm::divideCeil(n, nr);
  SmallVector<int64_t> shape{panels};
  shape.append(type.getShape().begin(), type.getShape().end() - 1);
  shape.push_back(nr);
  auto panelType = RankedTensorType::get(shape, type.getElementType());
  rw.setInsertionPoint(cst);
  if (auto dense = dyn_cast<DenseElementsAttr>(attr); dense && dense.isSplat())
    return arith::ConstantOp::create(rw, cst.getLoc(),
                                     dense.resizeSplat(panelType));
  int64_t eb = quench::getStorageBytesPerElement(type.getElementType());
  std::optional<ArrayRef<char>> raw = quench::getRawConstantData(attr);
  if (eb == 0 || !raw || int64_t(raw->size()) != rows * n * eb)
    return {};
  std::vector<char> data(panels * rows * nr * eb, 0);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t cols = std::min(nr, n - p * nr);
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(raw->data() + (r * n + p * nr) * eb, cols * eb,
                  data.data() + ((p * rows + r) * nr) * eb);
  }
  return arith::ConstantOp::create(
      rw, cst.getLoc(),
      cast<TypedAttr>(
          quench::createConstantAttr(panelType, data, "quench_nbits_panel")));
}

} // namespace

FailureOr<linalg::LinalgOp>
quench::buildDequantMatmulKernel(RewriterBase &rw, linalg::LinalgOp linalgOp,
                                 unsigned vectorBits) {
  auto op = dyn_cast<linalg::GenericOp>(linalgOp.getOperation());
  DequantOperands d;
  if (!op || vectorBits < 128 || !matchDequantMatmul(op, d))
    return failure();
  d.lanes = vectorBits / 32;
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  Value x = op.getDpsInputs()[0], init = op.getDpsInits()[0];
  unsigned nb = op.getNumLoops() - 4;
  // Register tile (partial sums and accumulators: 2 * mr * nv registers).
  // One row streams nv = 4 vectors of features. Several rows share each
  // converted code vector: mr = 6 rows x 2 vectors with AVX-512's 32
  // registers, 4 x 1 with AVX2's 16 (measured on 4096 x 14336 at M = 32:
  // 6 x 2 and 4 x 2 best, 4 x 1 and 8 x 1 about 20 % slower, 12 x 1
  // spills).
  bool oneRow =
      nb == 1 && cast<RankedTensorType>(x.getType()).getDimSize(0) == 1;
  int64_t mr = 1, nv = 4;
  if (!oneRow) {
    mr = vectorBits >= 512 ? 6 : 4;
    nv = vectorBits >= 512 ? 2 : 1;
  }
  int64_t nr = nv * d.lanes;
  d.nr = nr;
  d.codes = panelize(rw, op.getDpsInputs()[1], nr);
  d.scales = panelize(rw, op.getDpsInputs()[2], nr);
  if (op.getNumDpsInputs() == 4)
    d.zp = panelize(rw, op.getDpsInputs()[3], nr);
  if (!d.codes || !d.scales || (op.getNumDpsInputs() == 4 && !d.zp))
    return failure();
  rw.setInsertionPoint(op);

  // Rows: the batch dims collapsed into one.
  Value out = init;
  if (nb > 1) {
    ReassociationIndices rowsX, rowsO;
    for (unsigned i = 0; i < nb; ++i) {
      rowsX.push_back(i);
      rowsO.push_back(i);
    }
    x = tensor::CollapseShapeOp::create(
        rw, loc, x,
        ArrayRef<ReassociationIndices>{rowsX, {nb}, {nb + 1}, {nb + 2}});
    out = tensor::CollapseShapeOp::create(
        rw, loc, out, ArrayRef<ReassociationIndices>{rowsO, {nb}});
  }
  d.x = x;

  // Group sums of x: [R, blocks] f32, a reduction tiled by the caller.
  Type f32 = rw.getF32Type();
  SmallVector<OpFoldResult> sxSizes{tensor::getMixedSize(rw, loc, x, 0),
                                    rw.getIndexAttr(d.blocks)};
  Value zeroF32 = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0));
  Value sxEmpty = tensor::EmptyOp::create(rw, loc, sxSizes, f32);
  Value sxInit =
      linalg::FillOp::create(rw, loc, zeroF32, sxEmpty).getResult(0);
  MLIRContext *ctx = rw.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto sxOp = linalg::GenericOp::create(
      rw, loc, TypeRange{sxInit.getType()}, ValueRange{x}, ValueRange{sxInit},
      SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(4, ctx),
                             AffineMap::get(4, 0, {dim(0), dim(1)}, ctx)},
      SmallVector<utils::IteratorType>{utils::IteratorType::parallel,
                                       utils::IteratorType::parallel,
                                       utils::IteratorType::reduction,
                                       utils::IteratorType::reduction},
      [&](OpBuilder &b, Location l, ValueRange a) {
        Value v = a[0];
        if (v.getType() != f32)
          v = arith::ExtFOp::create(b, l, f32, v);
        linalg::YieldOp::create(b, l,
                                (Value)arith::AddFOp::create(b, l, a[1], v));
      });
  d.sx = sxOp.getResult(0);

  // Tasks: 128 features (whole register tiles) each.
  int64_t nt = std::max<int64_t>(nr, llvm::alignTo(128, nr));
  int64_t tasks = llvm::divideCeil(d.n, nt);

  auto forall = scf::ForallOp::create(
      rw, loc, ArrayRef<OpFoldResult>{rw.getIndexAttr(tasks)},
      ValueRange{out}, std::nullopt);
  {
    OpBuilder::InsertionGuard guard(rw);
    rw.setInsertionPoint(forall.getTerminator());
    Value t = forall.getInductionVar(0);
    Value shared = forall.getRegionIterArgs()[0];
    auto cst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(rw, loc, v).getResult();
    };
    Value colBase = arith::MulIOp::create(rw, loc, t, cst(nt));
    Value width = arith::MinSIOp::create(
        rw, loc, cst(nt), arith::SubIOp::create(rw, loc, cst(d.n), colBase));
    Value rowsV = tensor::DimOp::create(rw, loc, shared, 0);
    auto slice = tensor::ExtractSliceOp::create(
        rw, loc, shared,
        ArrayRef<OpFoldResult>{rw.getIndexAttr(0), colBase},
        ArrayRef<OpFoldResult>{rowsV, width},
        ArrayRef<OpFoldResult>{rw.getIndexAttr(1), rw.getIndexAttr(1)});
    // Columns: whole nr-wide tiles, then single vectors (masked at N).
    Value fullCols = arith::MulIOp::create(
        rw, loc, arith::DivUIOp::create(rw, loc, width, cst(nr)), cst(nr));
    Value fullRows = arith::MulIOp::create(
        rw, loc, arith::DivUIOp::create(rw, loc, rowsV, cst(mr)), cst(mr));
    auto rowLoops = [&](OpBuilder &b, Value acc, Value col, int64_t vecs,
                        bool inBounds) -> Value {
      auto main = scf::ForOp::create(
          b, loc, cst(0), fullRows, cst(mr), ValueRange{acc},
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(rb, loc,
                                 TileEmitter(rb, loc, d).emit(
                                     a[0], row, colBase, col, mr, vecs,
                                     inBounds));
          });
      if (mr == 1)
        return main.getResult(0);
      auto rest = scf::ForOp::create(
          b, loc, fullRows, rowsV, cst(1), main.getResults(),
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(rb, loc,
                                 TileEmitter(rb, loc, d).emit(
                                     a[0], row, colBase, col, 1, vecs,
                                     inBounds));
          });
      return rest.getResult(0);
    };
    auto colMain = scf::ForOp::create(
        rw, loc, cst(0), fullCols, cst(nr), ValueRange{slice.getResult()},
        [&](OpBuilder &cb, Location, Value col, ValueRange a) {
          scf::YieldOp::create(cb, loc,
                               rowLoops(cb, a[0], col, nv, /*inBounds=*/true));
        });
    Value result = colMain.getResult(0);
    if (d.n % nr != 0) {
      auto colRest = scf::ForOp::create(
          rw, loc, fullCols, width, cst(d.lanes), ValueRange{result},
          [&](OpBuilder &cb, Location, Value col, ValueRange a) {
            scf::YieldOp::create(
                cb, loc,
                rowLoops(cb, a[0], col, 1, /*inBounds=*/d.n % d.lanes == 0));
          });
      result = colRest.getResult(0);
    }
    rw.setInsertionPointToEnd(forall.getTerminator().getBody());
    tensor::ParallelInsertSliceOp::create(
        rw, loc, result, shared,
        ArrayRef<OpFoldResult>{rw.getIndexAttr(0), colBase},
        ArrayRef<OpFoldResult>{rowsV, width},
        ArrayRef<OpFoldResult>{rw.getIndexAttr(1), rw.getIndexAttr(1)});
  }
  Value res = forall.getResult(0);
  if (nb > 1) {
    ReassociationIndices rowsO;
    for (unsigned i = 0; i < nb; ++i)
      rowsO.push_back(i);
    res = tensor::ExpandShapeOp::create(
        rw, loc, op.getResult(0).getType(), res,
        ArrayRef<ReassociationIndices>{rowsO, {nb}},
        tensor::getMixedSizes(rw, loc, init));
  }
  rw.replaceOp(op, res);
  return cast<linalg::LinalgOp>(sxOp.getOperation());
}
