//===- DequantMatmulInt8.cpp - int8-activation form of the dequant kernel -===//
//
// The prefill form of the quench.dequant_matmul kernel (DequantMatmul.cpp):
// where the int16-activation form applies (4- and 8-bit codes, VNNI), a
// product of at least `int8-prefill-rows` rows quantizes its activations
// to int8 per row and block, q = round(x * 127 / amax), and multiplies them
// with the codes as they are stored (the int16 form's word panels) by one
// vpdpbusd per four codes and row, instead of two (a high and a low byte).
// The block sums are exact in int32 and rescaled once per block:
//
//   t[r, b, n] = Σ_{j,h} c[b, j, h, n] * q[r, b, j, h] - z[b, n] * Σ q
//   y[r, n]   += s[b, n] * (amax[r, b] / 127) * float(t)
//
// which is llama.cpp's q4_0 x q8_0 dot product (integer dot per block,
// then both scales) on Quench's layouts. With the implicit zero point
// 2^(bits-1) the partial sums start at -2^(bits-1) * Σ q instead of 0 (one
// broadcast per row and block). Register tile: 6 rows x the int16 form's
// nv vectors (same panels), int32 partial sums and f32 accumulators in
// registers. See docs/lowering.md ("Int8 activations for prefill").
//
//===----------------------------------------------------------------------===//

#include "DequantMatmul.h"
#include "KernelUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace quench::dequant;

namespace {

/// x [R, blocks, J, P] quantized to int8 per row and block: sets d.amax,
/// d.xq ([R, blocks, P, J] i8, the int16 form's byte layout) and d.qsum
/// (the block sums of q, i32), three small linalg generics left to the
/// tile pass.
void buildInt8Activations(RewriterBase &rw, Location loc, Value x,
                          DequantOperands &d) {
  auto xt = cast<RankedTensorType>(x.getType());
  int64_t jn = xt.getDimSize(2), p = xt.getDimSize(3);
  Type f32 = rw.getF32Type(), i8 = rw.getI8Type(), i32 = rw.getI32Type();
  OpFoldResult rows = tensor::getMixedSize(rw, loc, x, 0);
  MLIRContext *ctx = rw.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap block = AffineMap::get(4, 0, {dim(0), dim(1)}, ctx);

  d.amax = buildBlockAbsMax(rw, loc, x, d.blocks);
  // q over (r, b, h, j): x read transposed.
  auto qType =
      RankedTensorType::get({xt.getDimSize(0), d.blocks, p, jn}, i8);
  Value qInit = tensor::EmptyOp::create(
      rw, loc,
      SmallVector<OpFoldResult>{rows, rw.getIndexAttr(d.blocks),
                                rw.getIndexAttr(p), rw.getIndexAttr(jn)},
      i8);
  d.xq = linalg::GenericOp::create(
             rw, loc, TypeRange{qType}, ValueRange{x, d.amax},
             ValueRange{qInit},
             SmallVector<AffineMap>{
                 AffineMap::get(4, 0, {dim(0), dim(1), dim(3), dim(2)}, ctx),
                 block, id4},
             SmallVector<utils::IteratorType>{par, par, par, par},
             [&](OpBuilder &b, Location l, ValueRange a) {
               Value v = a[0];
               if (v.getType() != f32)
                 v = arith::ExtFOp::create(b, l, f32, v);
               Value q = quantizeToInt(b, l, v, a[1], 127);
               linalg::YieldOp::create(
                   b, l, (Value)arith::TruncIOp::create(b, l, i8, q));
             })
             .getResult(0);

  // qsum[r, b] = Σ q.
  Value sumInit =
      linalg::FillOp::create(
          rw, loc,
          ValueRange{arith::ConstantOp::create(rw, loc, rw.getZeroAttr(i32))},
          ValueRange{tensor::EmptyOp::create(
              rw, loc,
              SmallVector<OpFoldResult>{rows, rw.getIndexAttr(d.blocks)},
              i32)})
          .getResult(0);
  d.qsum = linalg::GenericOp::create(
               rw, loc, TypeRange{sumInit.getType()}, ValueRange{d.xq},
               ValueRange{sumInit}, SmallVector<AffineMap>{id4, block},
               SmallVector<utils::IteratorType>{par, par, red, red},
               [&](OpBuilder &b, Location l, ValueRange a) {
                 Value q = arith::ExtSIOp::create(b, l, i32, a[0]);
                 linalg::YieldOp::create(
                     b, l, (Value)arith::AddIOp::create(b, l, a[1], q));
               })
               .getResult(0);
}

/// One register tile of the int8 form (see buildTileFrame for the
/// arguments); returns the updated `out`.
Value emitInt8Tile(OpBuilder &b, Location loc, const DequantOperands &d,
                   Value out, Value row, Value colBase, Value col, int64_t mr,
                   int64_t nv, bool inBounds) {
  auto at = [&](int64_t i, int64_t v) { return i * nv + v; };
  TileFrame f =
      buildTileFrame(b, loc, d, out, row, colBase, col, mr, nv, inBounds);
  Value panel = f.panel;
  ArrayRef<Value> wcols = f.wcols, rows = f.rows;

  Type f32 = b.getF32Type(), i8 = b.getI8Type(), i32 = b.getI32Type();
  auto vf = VectorType::get({d.lanes}, f32);
  auto vi8 = VectorType::get({d.lanes}, i8);
  auto vi32 = VectorType::get({d.lanes}, i32);
  auto bytes = VectorType::get({4 * d.lanes}, i8);
  StringRef dot = d.lanes == 16 ? kDotIntrinsic512 : kDotIntrinsic256;
  auto idx = [&](OpBuilder &ob, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(ob, loc, v);
  };
  auto read = [&](OpBuilder &ob, VectorType t, Value src, ValueRange ix) {
    return quench::readVector(ob, loc, t, src, ix, /*inBounds=*/true);
  };
  auto readF32 = [&](OpBuilder &ob, Value src, ValueRange ix) -> Value {
    Type et = getElementTypeOrSelf(src.getType());
    Value v = read(ob, VectorType::get({d.lanes}, et), src, ix);
    return et == f32 ? v : (Value)arith::ExtFOp::create(ob, loc, vf, v);
  };
  // The four activation bytes at [row, blk, h, j .. j + 3] as one word in
  // every lane, viewed as bytes (a vpbroadcastd from memory).
  auto wordOf = [&](OpBuilder &ob, ValueRange ix) {
    return quench::broadcastByteWord(ob, loc, d.xq, ix, d.lanes);
  };
  auto dpbusd = [&](OpBuilder &ob, Value acc, Value u8, Value s8) {
    return quench::callDotBytes(ob, loc, dot, acc, u8, s8);
  };
  auto splatI32 = [&](OpBuilder &ob, int32_t v) {
    return quench::splatI32(ob, loc, vi32, v);
  };

  // One word step (four codes per byte lane) at j4: the partial sums `p`
  // of tile vector (i, v) at i * nv + v.
  auto wordStep = [&](OpBuilder &jb, Value blk, Value j4,
                      SmallVectorImpl<Value> &p) {
    Value j = arith::MulIOp::create(jb, loc, j4, idx(jb, 4));
    if (d.bits == 8) {
      // Four codes of one feature per lane, unsigned, as stored.
      SmallVector<Value> xw;
      for (int64_t i = 0; i < mr; ++i)
        xw.push_back(wordOf(jb, {rows[i], blk, idx(jb, 0), j}));
      for (int64_t v = 0; v < nv; ++v) {
        Value c = vector::BitCastOp::create(
            jb, loc, bytes, read(jb, vi32, d.codes, {panel, blk, j4, wcols[v]}));
        for (int64_t i = 0; i < mr; ++i)
          p[at(i, v)] = dpbusd(jb, p[at(i, v)], c, xw[i]);
      }
      return;
    }
    // 4-bit codes: the codes of parity h of a word (byte t: code h of
    // j = 4 j4 + t) as bytes, against x at [.., h, j ..].
    SmallVector<Value> xw; // [i * 2 + h]
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t h = 0; h < 2; ++h)
        xw.push_back(wordOf(jb, {rows[i], blk, idx(jb, h), j}));
    Value nibbles = splatI32(jb, 0x0F0F0F0F);
    for (int64_t v = 0; v < nv; ++v) {
      Value w = read(jb, vi32, d.codes, {panel, blk, j4, wcols[v]});
      Value codes[2] = {
          arith::AndIOp::create(jb, loc, w, nibbles),
          arith::AndIOp::create(
              jb, loc, arith::ShRUIOp::create(jb, loc, w, splatI32(jb, 4)),
              nibbles)};
      for (int64_t h = 0; h < 2; ++h) {
        Value c = vector::BitCastOp::create(jb, loc, bytes, codes[h]);
        for (int64_t i = 0; i < mr; ++i)
          p[at(i, v)] = dpbusd(jb, p[at(i, v)], c, xw[i * 2 + h]);
      }
    }
  };

  auto blockLoop = scf::ForOp::create(
      b, loc, idx(b, 0), idx(b, d.blocks), idx(b, 1), f.accInit,
      [&](OpBuilder &bb, Location, Value blk, ValueRange accs) {
        // Per row: the block sum of q; the partial sums start at -z * Σ q
        // for the implicit zero point z = 2^(bits-1), at 0 otherwise.
        SmallVector<Value> qs, parts;
        for (int64_t i = 0; i < mr; ++i)
          qs.push_back(tensor::ExtractOp::create(bb, loc, d.qsum,
                                                 ValueRange{rows[i], blk}));
        for (int64_t i = 0; i < mr; ++i) {
          Value start = splatI32(bb, 0);
          if (!d.zp)
            start = vector::BroadcastOp::create(
                bb, loc, vi32,
                arith::MulIOp::create(
                    bb, loc, qs[i],
                    arith::ConstantOp::create(
                        bb, loc, bb.getI32IntegerAttr(-(1 << (d.bits - 1))))));
          parts.append(nv, start);
        }
        // Word steps, `unroll` per iteration (all of a short block).
        int64_t steps = d.jn / 4, unroll = steps <= 8 ? steps : 1;
        auto codeLoop = scf::ForOp::create(
            bb, loc, idx(bb, 0), idx(bb, steps), idx(bb, unroll), parts,
            [&](OpBuilder &jb, Location, Value j40, ValueRange ps) {
              SmallVector<Value> p(ps);
              for (int64_t u = 0; u < unroll; ++u)
                wordStep(jb, blk, quench::addIndex(jb, loc, j40, u), p);
              scf::YieldOp::create(jb, loc, p);
            });
        // Once per block: explicit zero points, then scale * amax / 127.
        SmallVector<Value> acc(accs), part(codeLoop.getResults());
        SmallVector<Value> sxs, qsv;
        for (int64_t i = 0; i < mr; ++i) {
          Value am = tensor::ExtractOp::create(bb, loc, d.amax,
                                               ValueRange{rows[i], blk});
          Value sx = arith::MulFOp::create(
              bb, loc, am,
              arith::ConstantOp::create(bb, loc,
                                        bb.getF32FloatAttr(1.0f / 127.0f)));
          sxs.push_back(vector::BroadcastOp::create(bb, loc, vf, sx));
          if (d.zp) {
            Value q = vector::BroadcastOp::create(bb, loc, vi32, qs[i]);
            qsv.push_back(d.floatZp
                              ? (Value)arith::SIToFPOp::create(bb, loc, vf, q)
                              : q);
          }
        }
        for (int64_t v = 0; v < nv; ++v) {
          Value s = readF32(bb, d.scales, {panel, blk, wcols[v]});
          Value z;
          if (d.zp && d.floatZp)
            z = readF32(bb, d.zp, {panel, blk, wcols[v]});
          else if (d.zp)
            z = arith::ExtUIOp::create(
                bb, loc, vi32, read(bb, vi8, d.zp, {panel, blk, wcols[v]}));
          for (int64_t i = 0; i < mr; ++i) {
            Value t = part[at(i, v)], tf;
            if (d.zp && d.floatZp) {
              tf = arith::SubFOp::create(
                  bb, loc, arith::SIToFPOp::create(bb, loc, vf, t),
                  arith::MulFOp::create(bb, loc, z, qsv[i]));
            } else {
              if (d.zp)
                t = arith::SubIOp::create(
                    bb, loc, t, arith::MulIOp::create(bb, loc, z, qsv[i]));
              tf = arith::SIToFPOp::create(bb, loc, vf, t);
            }
            acc[at(i, v)] = vector::FMAOp::create(
                bb, loc, arith::MulFOp::create(bb, loc, s, sxs[i]), tf,
                acc[at(i, v)]);
          }
        }
        scf::YieldOp::create(bb, loc, acc);
      });
  return writeTileBack(b, loc, out, f, blockLoop.getResults(), nv, inBounds);
}

} // namespace

Value quench::dequant::buildInt8ActivationKernel(RewriterBase &rw,
                                                 Location loc,
                                                 DequantOperands &d, Value out,
                                                 int64_t mr, int64_t nv) {
  buildInt8Activations(rw, loc, d.x, d);
  return buildDequantTiles(
      rw, loc, d, out, mr, nv,
      [&](OpBuilder &b, Value acc, Value row, Value colBase, Value col,
          int64_t rows, int64_t vecs, bool inBounds) -> Value {
        return emitInt8Tile(b, loc, d, acc, row, colBase, col, rows, vecs,
                            inBounds);
      });
}
