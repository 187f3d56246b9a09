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
// features (scf.forall). On AVX-512F targets 4- and 2-bit codes are stored
// as words of four code bytes and converted by a vpermps table lookup
// instead (one shift per code; no widening load, mask or conversion; the
// table centres symmetric codes, so they need no group sums of x). With
// VNNI (int16-dot), 4- and 8-bit codes are multiplied in exact int32 with
// the activations quantized to int16 per row and block (vpdpbusd on their
// high and low bytes), rescaled once per block; products of at least
// `int8-prefill-rows` rows take the int8-activation form of
// DequantMatmulInt8.cpp instead (on the same panels; scf.if on a dynamic
// row count). The pass quench-cpu-dequant-matmul applies the kernel before
// tiling. See docs/lowering.md ("Quantized matmul kernel", "Int8
// activations for prefill").
//
//===----------------------------------------------------------------------===//

#include "DequantMatmul.h"
#include "KQuantMatmul.h"
#include "KernelUtils.h"
#include "quench/Codegen/CPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"

#include "quench/Dialect/Quench/IR/ModuleAttrs.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Quant/SparseStorage.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include "llvm/ADT/bit.h"

#include <cstring>
#include <numeric>

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUDEQUANTMATMUL
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench::dequant;

namespace {


/// vpexpandb (AVX512-VBMI2): the bytes of the first operand, in order, at
/// the lanes the mask sets; the second operand's bytes elsewhere.
constexpr char kExpandIntrinsic[] = "llvm.x86.avx512.mask.expand.v64i8";

/// Largest quantization group (codes) of the int16 path: the int32 group
/// sums stay below 2^31 (|code| <= 15, |x| <= 32767, and the zero-point
/// term as large again).
constexpr int64_t kMaxInt16Group = 1024;

/// Longest activation block (codes along K with one amax) of the 8-bit
/// int16 path: the exact int32 block sum t = Σ (c - z) q has |c - z| <= 128
/// with the implicit zero point 128 (512 * 128 * 32639 < 2^31) and up to
/// 255 with explicit ones (256 * 255 * 32639 < 2^31; float zero points
/// need Σ c q below 2^31 likewise). Longer groups (per output channel:
/// one group of K) are split into blocks of at most this many codes.
constexpr int64_t kMaxInt8Block = 512, kMaxInt8BlockZp = 256;

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
  /// The same tile with int16 activations (DequantOperands::int16).
  Value emitInt16(Value out, Value row, Value colBase, Value col,
                  int64_t mr, int64_t nv, bool inBounds);

private:
  using Frame = TileFrame;
  Frame frame(Value out, Value row, Value colBase, Value col, int64_t mr,
              int64_t nv, bool inBounds) {
    return buildTileFrame(b, loc, d, out, row, colBase, col, mr, nv,
                          inBounds);
  }
  Value writeBack(Value out, const Frame &f, ValueRange acc, int64_t nv,
                  bool inBounds) {
    return writeTileBack(b, loc, out, f, acc, nv, inBounds);
  }

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value add(OpBuilder &ob, Value a, int64_t c) {
    return quench::addIndex(ob, loc, a, c);
  }
  Value read(OpBuilder &ob, VectorType t, Value src, ValueRange at,
             bool inBounds) {
    return quench::readVector(ob, loc, t, src, at, inBounds);
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
  /// `v` >> `amount` (logical) on every lane.
  Value shiftRight(OpBuilder &ob, Value v, int64_t amount) {
    return arith::ShRUIOp::create(
        ob, loc, v,
        arith::ConstantOp::create(
            ob, loc,
            DenseElementsAttr::get(vi32, ob.getI32IntegerAttr(amount))));
  }
  /// One word step of the lookup form: for each of the 4 * perByte codes of
  /// the words at j4 (one word per feature and vector v), the codes' values
  /// from the table (vpermps reads the low 4 bits of each lane, so one
  /// shift, no mask) and an FMA per row into the partial sums `p` (set t %
  /// sets of tile vector (i, v)).
  void lookupStep(OpBuilder &ob, Value blk, Value j4, Value panel,
                  ArrayRef<Value> wcols, ArrayRef<Value> rows, int64_t nv,
                  int64_t sets, SmallVectorImpl<Value> &p);

  OpBuilder &b;
  Location loc;
  const DequantOperands &d;
  Type f32;
  VectorType vf, vi8, vi32;
};

} // namespace

TileFrame quench::dequant::buildTileFrame(OpBuilder &b, Location loc,
                                          const DequantOperands &d, Value out,
                                          Value row, Value colBase, Value col,
                                          int64_t mr, int64_t nv,
                                          bool inBounds) {
  TileFrame f;
  VectorType vf = VectorType::get({d.lanes}, b.getF32Type());
  auto idx = [&](int64_t v) -> Value {
    return arith::ConstantIndexOp::create(b, loc, v);
  };
  // Panel and offset of vector v's weights, output columns (task-local).
  Value gcol = arith::AddIOp::create(b, loc, colBase, col);
  f.panel = arith::DivUIOp::create(b, loc, gcol, idx(d.nr));
  Value off = arith::RemUIOp::create(b, loc, gcol, idx(d.nr));
  // A tile wider than a panel starts at a panel's first column (one-row
  // tiles of buildDequantTiles' `gemvVecs`): vector v is then at column
  // v * lanes mod nr of panel `panel` + v * lanes / nr.
  assert((nv * d.lanes <= d.nr || nv * d.lanes % d.nr == 0) &&
         "a tile spans one panel or whole panels");
  for (int64_t v = 0; v < nv; ++v) {
    f.panels.push_back(quench::addIndex(b, loc, f.panel, v * d.lanes / d.nr));
    f.wcols.push_back(quench::addIndex(b, loc, off, v * d.lanes % d.nr));
    f.ocols.push_back(quench::addIndex(b, loc, col, v * d.lanes));
  }
  for (int64_t i = 0; i < mr; ++i)
    f.rows.push_back(quench::addIndex(b, loc, row, i));
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nv; ++v)
      f.accInit.push_back(quench::readVector(b, loc, vf, out,
                                             {f.rows[i], f.ocols[v]},
                                             inBounds));
  return f;
}

Value quench::dequant::writeTileBack(OpBuilder &b, Location loc, Value out,
                                     const TileFrame &f, ValueRange acc,
                                     int64_t nv, bool inBounds) {
  for (size_t i = 0; i < f.rows.size(); ++i)
    for (int64_t v = 0; v < nv; ++v)
      out = vector::TransferWriteOp::create(
                b, loc, acc[i * nv + v], out,
                ValueRange{f.rows[i], f.ocols[v]}, ArrayRef<bool>{inBounds})
                .getResult();
  return out;
}

namespace {

Value TileEmitter::emit(Value out, Value row, Value colBase, Value col,
                        int64_t mr, int64_t nv, bool inBounds) {
  int64_t tileVecs = mr * nv;
  auto at = [&](int64_t i, int64_t v) { return i * nv + v; };
  Frame f = frame(out, row, colBase, col, mr, nv, inBounds);
  Value panel = f.panel;
  ArrayRef<Value> wcols = f.wcols, rows = f.rows;
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vf));
  // With few tile vectors (one row), two sets of partial sums (even and odd
  // codes) keep enough FMA chains in flight for the lookup's throughput.
  int64_t sets = d.lookup && tileVecs < 8 ? 2 : 1;
  SmallVector<Value> zeros(tileVecs * sets, zero);

  // Steps of the code loop: j (one byte per feature) or, with the lookup,
  // j4 (one word: four bytes); j steps unrolled per iteration.
  int64_t steps = d.lookup ? d.jn / 4 : d.jn;
  int64_t unroll = d.lookup ? 1 : std::gcd<int64_t>(d.jn, 4);
  auto blockLoop = scf::ForOp::create(
      b, loc, idx(0), idx(d.blocks), idx(1), f.accInit,
      [&](OpBuilder &bb, Location, Value blk, ValueRange accs) {
        auto codeLoop = scf::ForOp::create(
            bb, loc, arith::ConstantIndexOp::create(bb, loc, 0),
            arith::ConstantIndexOp::create(bb, loc, steps),
            arith::ConstantIndexOp::create(bb, loc, unroll), zeros,
            [&](OpBuilder &jb, Location, Value j0, ValueRange parts) {
              SmallVector<Value> p(parts);
              if (d.lookup) {
                lookupStep(jb, blk, j0, panel, wcols, rows, nv, sets, p);
                scf::YieldOp::create(jb, loc, p);
                return;
              }
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
                      q = shiftRight(jb, q, h * d.bits);
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
        SmallVector<Value> acc(accs), part(codeLoop.getResults());
        for (int64_t k = 0; k < tileVecs; ++k)
          for (int64_t set = 1; set < sets; ++set)
            part[k] = arith::AddFOp::create(bb, loc, part[k],
                                            part[set * tileVecs + k]);
        // Looked-up codes without zero points are centred already: no zero
        // point term.
        bool centred = d.lookup && !d.zp;
        SmallVector<Value> sxs;
        if (!centred)
          for (int64_t i = 0; i < mr; ++i)
            sxs.push_back(scalarF32(bb, d.sx, {rows[i], blk}));
        for (int64_t v = 0; v < nv; ++v) {
          Value s = readF32(bb, d.scales, {panel, blk, wcols[v]}, true);
          if (centred) {
            for (int64_t i = 0; i < mr; ++i)
              acc[at(i, v)] = vector::FMAOp::create(bb, loc, s, part[at(i, v)],
                                                    acc[at(i, v)]);
            continue;
          }
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
            Value a = vector::FMAOp::create(bb, loc, s, part[at(i, v)],
                                            acc[at(i, v)]);
            acc[at(i, v)] = arith::SubFOp::create(
                bb, loc, a, arith::MulFOp::create(bb, loc, zs, sxs[i]));
          }
        }
        scf::YieldOp::create(bb, loc, acc);
      });
  return writeBack(out, f, blockLoop.getResults(), nv, inBounds);
}

Value TileEmitter::emitInt16(Value out, Value row, Value colBase, Value col,
                             int64_t mr, int64_t nv, bool inBounds) {
  int64_t tileVecs = mr * nv;
  auto at = [&](int64_t i, int64_t v) { return i * nv + v; };
  Frame f = frame(out, row, colBase, col, mr, nv, inBounds);
  ArrayRef<Value> panels = f.panels, wcols = f.wcols, rows = f.rows;

  auto i8 = b.getI8Type();
  auto bytes = VectorType::get({4 * d.lanes}, i8);
  StringRef dot = d.lanes == 16 ? kDotIntrinsic512 : kDotIntrinsic256;
  auto splatI32 = [&](OpBuilder &ob, int32_t v) {
    return quench::splatI32(ob, loc, vi32, v);
  };
  auto dpbusd = [&](OpBuilder &ob, Value acc, Value u8, Value s8) {
    return quench::callDotBytes(ob, loc, dot, acc, u8, s8);
  };
  // The four activation bytes at [row, blk, h, j .. j + 3], broadcast.
  auto wordOf = [&](OpBuilder &ob, Value src, ValueRange idxs) {
    return quench::broadcastByteWord(ob, loc, src, idxs, d.lanes);
  };

  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vi32));
  SmallVector<Value> zeros(2 * tileVecs, zero);
  // Bitmask storage: vector v's run of kept bytes (its panel vector
  // `vsel[v]`) starts at starts[panel, vsel[v]]; the offsets advance by
  // each mask's population count, loop-carried after the sums.
  SmallVector<Value> vsel, blockInit(f.accInit);
  auto vbytes = VectorType::get({64}, i8);
  auto vmask = VectorType::get({64}, b.getI1Type());
  Value fill;
  if (d.bitmask) {
    fill = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vbytes, b.getI8IntegerAttr(-128)));
    for (int64_t v = 0; v < nv; ++v) {
      vsel.push_back(arith::DivUIOp::create(b, loc, wcols[v], idx(16)));
      Value s0 = tensor::ExtractOp::create(b, loc, d.starts,
                                           ValueRange{panels[v], vsel[v]});
      blockInit.push_back(arith::IndexCastOp::create(
          b, loc, b.getIndexType(),
          arith::ExtUIOp::create(b, loc, b.getI64Type(), s0)));
    }
  }
  int64_t nacc = tileVecs;
  auto blockLoop = scf::ForOp::create(
      b, loc, idx(0), idx(d.blocks), idx(1), blockInit,
      [&](OpBuilder &bb, Location, Value blk, ValueRange carried) {
        ValueRange accs = carried.take_front(nacc);
        SmallVector<Value> codeInit(zeros);
        codeInit.append(carried.begin() + nacc, carried.end());
        // Per word step: partial sums of the high bytes [0, tileVecs) and
        // of the low bytes [tileVecs, 2 tileVecs), exact in int32 (then
        // the bitmask offsets).
        auto codeLoop = scf::ForOp::create(
            bb, loc, arith::ConstantIndexOp::create(bb, loc, 0),
            arith::ConstantIndexOp::create(bb, loc, d.jn / 4),
            arith::ConstantIndexOp::create(bb, loc, 1), codeInit,
            [&](OpBuilder &jb, Location, Value j4, ValueRange parts) {
              SmallVector<Value> p(parts);
              Value j = arith::MulIOp::create(
                  jb, loc, j4, arith::ConstantIndexOp::create(jb, loc, 4));
              if (d.bits == 8) {
                // 8-bit codes: the word is four codes of one feature as
                // they are (unsigned operand), the activation bytes both
                // signed: two vpdpbusd per row and vector.
                Value zi = arith::ConstantIndexOp::create(jb, loc, 0);
                SmallVector<Value> hiW, loW;
                for (int64_t i = 0; i < mr; ++i) {
                  hiW.push_back(wordOf(jb, d.xh, {rows[i], blk, zi, j}));
                  loW.push_back(wordOf(jb, d.xl, {rows[i], blk, zi, j}));
                }
                for (int64_t v = 0; v < nv; ++v) {
                  Value c;
                  if (d.bitmask) {
                    // The code vector expanded from its mask and the next
                    // kept bytes (128 elsewhere: the dense codes).
                    Value &off = p[2 * tileVecs + v];
                    Value m = tensor::ExtractOp::create(
                        jb, loc, d.masks, ValueRange{panels[v], vsel[v], blk, j4});
                    Value run = read(jb, vbytes, d.packed, {off}, true);
                    Value mv = vector::BitCastOp::create(
                        jb, loc, vmask,
                        vector::BroadcastOp::create(
                            jb, loc, VectorType::get({1}, m.getType()), m));
                    c = func::CallOp::create(jb, loc, kExpandIntrinsic,
                                             TypeRange{vbytes},
                                             ValueRange{run, fill, mv})
                            .getResult(0);
                    off = arith::AddIOp::create(
                        jb, loc, off,
                        arith::IndexCastOp::create(
                            jb, loc, jb.getIndexType(),
                            math::CtPopOp::create(jb, loc, m)));
                  } else {
                    c = vector::BitCastOp::create(
                        jb, loc, bytes,
                        read(jb, vi32, d.codes, {panels[v], blk, j4, wcols[v]},
                             true));
                  }
                  for (int64_t i = 0; i < mr; ++i) {
                    Value &hs = p[at(i, v)];
                    Value &ls = p[tileVecs + at(i, v)];
                    hs = dpbusd(jb, hs, c, hiW[i]);
                    ls = dpbusd(jb, ls, c, loW[i]);
                  }
                }
                scf::YieldOp::create(jb, loc, p);
                return;
              }
              SmallVector<Value> hiW, loW; // [i * 2 + h]
              for (int64_t i = 0; i < mr; ++i)
                for (int64_t h = 0; h < 2; ++h) {
                  Value hv = arith::ConstantIndexOp::create(jb, loc, h);
                  hiW.push_back(wordOf(jb, d.xh, {rows[i], blk, hv, j}));
                  loW.push_back(wordOf(jb, d.xl, {rows[i], blk, hv, j}));
                }
              Value nibbles = splatI32(jb, 0x0F0F0F0F);
              for (int64_t v = 0; v < nv; ++v) {
                Value w =
                    read(jb, vi32, d.codes, {panels[v], blk, j4, wcols[v]}, true);
                // Codes of parity h (byte t: code h of j = 4 j4 + t) as
                // bytes 0..15.
                Value codes[2] = {
                    arith::AndIOp::create(jb, loc, w, nibbles),
                    arith::AndIOp::create(jb, loc, shiftRight(jb, w, 4),
                                          nibbles)};
                for (int64_t h = 0; h < 2; ++h) {
                  Value c = vector::BitCastOp::create(jb, loc, bytes, codes[h]);
                  for (int64_t i = 0; i < mr; ++i) {
                    Value &hs = p[at(i, v)];
                    Value &ls = p[tileVecs + at(i, v)];
                    hs = dpbusd(jb, hs, c, hiW[i * 2 + h]); // u8 codes
                    ls = dpbusd(jb, ls, loW[i * 2 + h], c); // u8 low bytes
                  }
                }
              }
              scf::YieldOp::create(jb, loc, p);
            });
        // Once per group: sum = 256 high + low - zero point * qsum, in f32
        // times scale * amax / qmax (the implicit zero point 2^(bits-1)).
        SmallVector<Value> acc(accs), part(codeLoop.getResults());
        ValueRange offsets = codeLoop.getResults().drop_front(2 * tileVecs);
        SmallVector<Value> sxs, qsi, qsf;
        for (int64_t i = 0; i < mr; ++i) {
          Value am = tensor::ExtractOp::create(bb, loc, d.amax,
                                               ValueRange{rows[i], blk});
          Value sx = arith::MulFOp::create(
              bb, loc, am,
              arith::ConstantOp::create(
                  bb, loc, bb.getF32FloatAttr(1.0f / float(d.qmax))));
          sxs.push_back(vector::BroadcastOp::create(bb, loc, vf, sx));
          Value qs = tensor::ExtractOp::create(bb, loc, d.qsum,
                                               ValueRange{rows[i], blk});
          if (!d.zp)
            qs = arith::MulIOp::create(
                bb, loc, qs,
                arith::ConstantOp::create(
                    bb, loc, bb.getI32IntegerAttr(1 << (d.bits - 1))));
          Value q = vector::BroadcastOp::create(bb, loc, vi32, qs);
          qsi.push_back(q);
          if (d.floatZp)
            qsf.push_back(arith::SIToFPOp::create(bb, loc, vf, q));
        }
        for (int64_t v = 0; v < nv; ++v) {
          Value s = readF32(bb, d.scales, {panels[v], blk, wcols[v]}, true);
          Value z;
          if (d.zp && d.floatZp)
            z = readF32(bb, d.zp, {panels[v], blk, wcols[v]}, true);
          else if (d.zp)
            z = arith::ExtUIOp::create(
                bb, loc, vi32,
                read(bb, vi8, d.zp, {panels[v], blk, wcols[v]}, true));
          for (int64_t i = 0; i < mr; ++i) {
            Value t = arith::AddIOp::create(
                bb, loc,
                arith::ShLIOp::create(bb, loc, part[at(i, v)],
                                      splatI32(bb, 8)),
                part[tileVecs + at(i, v)]);
            Value tf;
            if (d.floatZp) {
              tf = arith::SubFOp::create(
                  bb, loc, arith::SIToFPOp::create(bb, loc, vf, t),
                  arith::MulFOp::create(bb, loc, z, qsf[i]));
            } else {
              // Implicit zero point: qsi holds 2^(bits-1) * qsum already.
              t = arith::SubIOp::create(
                  bb, loc, t,
                  z ? (Value)arith::MulIOp::create(bb, loc, z, qsi[i])
                    : qsi[i]);
              tf = arith::SIToFPOp::create(bb, loc, vf, t);
            }
            acc[at(i, v)] = vector::FMAOp::create(
                bb, loc, arith::MulFOp::create(bb, loc, s, sxs[i]), tf,
                acc[at(i, v)]);
          }
        }
        acc.append(offsets.begin(), offsets.end());
        scf::YieldOp::create(bb, loc, acc);
      });
  return writeBack(out, f, blockLoop.getResults().take_front(nacc), nv,
                   inBounds);
}

void TileEmitter::lookupStep(OpBuilder &ob, Value blk, Value j4, Value panel,
                             ArrayRef<Value> wcols, ArrayRef<Value> rows,
                             int64_t nv, int64_t sets,
                             SmallVectorImpl<Value> &p) {
  int64_t mr = rows.size(), tileVecs = mr * nv;
  // table[i] = (i mod 2^bits) - implicit zero point: vpermps uses index
  // bits [0, 4), which hold code t (and, for 2 bits, code t + 1 above it).
  SmallVector<float> table;
  for (int64_t i = 0; i < 16; ++i)
    table.push_back(float(i % (1 << d.bits)) -
                    (d.zp ? 0.f : float(1 << (d.bits - 1))));
  Value tab = arith::ConstantOp::create(
      ob, loc, DenseElementsAttr::get(vf, ArrayRef<float>(table)));
  SmallVector<Value> words;
  for (int64_t v = 0; v < nv; ++v)
    words.push_back(read(ob, vi32, d.codes, {panel, blk, j4, wcols[v]}, true));
  Value j0 = arith::MulIOp::create(ob, loc, j4, idx(4));
  for (int64_t t = 0; t < 4 * d.perByte; ++t) {
    Value j = add(ob, j0, t / d.perByte);
    Value h = arith::ConstantIndexOp::create(ob, loc, t % d.perByte);
    SmallVector<Value> xs;
    for (int64_t i = 0; i < mr; ++i)
      xs.push_back(scalarF32(ob, d.x, {rows[i], blk, j, h}));
    int64_t set = t % sets;
    for (int64_t v = 0; v < nv; ++v) {
      Value q = t == 0 ? words[v] : shiftRight(ob, words[v], t * d.bits);
      Value qf = func::CallOp::create(ob, loc, kPermuteIntrinsic,
                                      TypeRange{vf}, ValueRange{tab, q})
                     .getResult(0);
      for (int64_t i = 0; i < mr; ++i) {
        Value &acc = p[set * tileVecs + i * nv + v];
        acc = vector::FMAOp::create(ob, loc, xs[i], qf, acc);
      }
    }
  }
}

/// True when `op` is exactly the fast form MatMulNBits.cpp builds (maps
/// included), with the shapes the kernel needs.
bool matchDequantMatmul(linalg::GenericOp op, DequantOperands &d) {
  if (!op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()) ||
      !op.hasPureTensorSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 3 || op.getNumDpsInputs() > 4)
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
  return op.getIndexingMapsArray() ==
         quench::QuenchDialect::getDequantMatmulIndexingMaps(
             op.getContext(), nb, op.getNumDpsInputs() == 4);
}

/// The constant `v`, row-major [rows..., n], as panels of `nr` columns:
/// [ceil(n / nr), rows..., nr], zero padded; with `repeat` > 1 (`v` of rank
/// 2: scales or zero points per group) each row repeated as many times,
/// [ceil(n / nr), rows * repeat, nr] (one per activation block of the
/// 8-bit int16 path). Null when `v` is not a constant whose bytes are
/// readable.
Value panelize(RewriterBase &rw, Value v, int64_t nr, int64_t repeat = 1) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!cst || !type || !type.hasStaticShape())
    return {};
  auto attr = dyn_cast<ElementsAttr>(cst.getValue());
  if (!attr)
    return {};
  if (repeat > 1 && type.getRank() != 2)
    return {};
  int64_t n = type.getShape().back();
  int64_t rows = type.getNumElements() / n, panels = llvm::divideCeil(n, nr);
  SmallVector<int64_t> shape{panels};
  shape.append(type.getShape().begin(), type.getShape().end() - 1);
  shape[1] *= repeat;
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
  int64_t outRows = rows * repeat;
  std::vector<char> data(panels * outRows * nr * eb, 0);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t cols = std::min(nr, n - p * nr);
    for (int64_t r = 0; r < outRows; ++r)
      std::copy_n(raw->data() + (r / repeat * n + p * nr) * eb, cols * eb,
                  data.data() + ((p * outRows + r) * nr) * eb);
  }
  quench::releaseConstantPages(attr); // read once
  return arith::ConstantOp::create(
      rw, cst.getLoc(),
      cast<TypedAttr>(
          quench::createConstantAttr(panelType, data, "quench_nbits_panel")));
}

/// The words of panelizeWords (below) from the raw codes [groups, jn, n],
/// the bytes past J or N set to `fill`.
std::vector<uint32_t> buildPanelWords(ArrayRef<char> raw, int64_t groups,
                                      int64_t jn, int64_t n, int64_t nr,
                                      int64_t split, int64_t len,
                                      uint8_t fill) {
  int64_t blocks = groups * split, jw = len / 4,
          panels = llvm::divideCeil(n, nr);
  std::vector<uint32_t> words(panels * blocks * jw * nr, fill * 0x01010101u);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t w = 0; w < jw; ++w)
      for (int64_t t = 0; t < 4; ++t) {
        int64_t j = b % split * len + w * 4 + t;
        if (j >= jn)
          continue;
        const char *row = raw.data() + (b / split * jn + j) * n;
        for (int64_t c = 0; c < n; ++c) {
          uint32_t &word =
              words[((c / nr * blocks + b) * jw + w) * nr + c % nr];
          word = (word & ~(0xffu << (8 * t))) | uint32_t(uint8_t(row[c]))
                                                    << (8 * t);
        }
      }
  return words;
}

/// The constant 8-bit codes `v` in bitmask storage (DequantOperands::
/// bitmask): the panel words of panelizeWords cut into 64-byte vectors of
/// 16 lanes, each a mask word and its bytes other than the zero point 128
/// (lib/Quant/SparseStorage.h, packBitmaskBlocks), in the order (panel,
/// panel vector, block, word step). Sets d.masks, d.packed and d.starts;
/// false when `v` is not a readable constant.
bool panelizeBitmask(RewriterBase &rw, Value v, int64_t nr, int64_t split,
                     int64_t len, DequantOperands &d) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!cst || !type || !type.hasStaticShape() || type.getRank() != 3 ||
      !type.getElementType().isInteger(8) || len % 4 != 0 || nr % 16 != 0 ||
      split * len < type.getDimSize(1))
    return false;
  auto attr = dyn_cast<ElementsAttr>(cst.getValue());
  std::optional<ArrayRef<char>> raw =
      attr ? quench::getRawConstantData(attr) : std::nullopt;
  int64_t groups = type.getDimSize(0), jn = type.getDimSize(1),
          n = type.getDimSize(2), blocks = groups * split, jw = len / 4,
          panels = llvm::divideCeil(n, nr), nvp = nr / 16;
  if (!raw || int64_t(raw->size()) != groups * jn * n)
    return false;
  std::vector<uint32_t> words =
      buildPanelWords(*raw, groups, jn, n, nr, split, len, 128);
  // The 64-byte vectors in stream order, then their masks and kept bytes.
  std::vector<uint8_t> vecs(words.size() * 4);
  std::vector<int32_t> starts(panels * nvp);
  {
    uint8_t *o = vecs.data();
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t q = 0; q < nvp; ++q)
        for (int64_t b = 0; b < blocks; ++b)
          for (int64_t w = 0; w < jw; ++w, o += 64)
            std::memcpy(o, &words[((p * blocks + b) * jw + w) * nr + q * 16],
                        64);
  }
  words = {};
  quench::quant::BitmaskBlocks<uint8_t> bm = quench::quant::packBitmaskBlocks(
      vecs.data(), int64_t(vecs.size()), 64, uint8_t(128));
  if (bm.values.size() + 64 > size_t(INT32_MAX))
    return false;
  for (int64_t s = 0, off = 0, vec = 0; s < panels * nvp; ++s) {
    starts[s] = int32_t(off);
    for (int64_t e = 0; e < blocks * jw; ++e, ++vec)
      off += llvm::popcount(bm.masks[vec]);
  }
  bm.values.resize(bm.values.size() + 64, 128);
  rw.setInsertionPoint(cst);
  Location loc = cst.getLoc();
  auto make = [&](RankedTensorType t, const void *p, size_t bytes,
                  StringRef name) -> Value {
    return arith::ConstantOp::create(
        rw, loc,
        cast<TypedAttr>(quench::createConstantAttr(
            t, ArrayRef<char>(static_cast<const char *>(p), bytes), name)));
  };
  d.masks =
      make(RankedTensorType::get({panels, nvp, blocks, jw}, rw.getI64Type()),
           bm.masks.data(), bm.masks.size() * 8, "quench_bitmask_masks");
  d.packed =
      make(RankedTensorType::get({int64_t(bm.values.size())}, rw.getI8Type()),
           bm.values.data(), bm.values.size(), "quench_bitmask_values");
  d.starts = make(RankedTensorType::get({panels, nvp}, rw.getI32Type()),
                  starts.data(), starts.size() * 4, "quench_bitmask_starts");
  quench::releaseConstantPages(attr); // read once
  return true;
}

/// The constant codes `v` ([blocks, J, n] i8) as panels of `nr` features
/// of words: [ceil(n / nr), blocks, J / 4, nr] i32, word (p, b, j4, c) =
/// bytes (b, 4 j4 + t, p nr + c) at bits 8 t, t < 4; zero padded. With
/// `split` > 1 or `len` != J each group's J code rows are cut into `split`
/// blocks of `len` (a multiple of 4, split * len >= J; the rows past J
/// zero): [ceil(n / nr), blocks * split, len / 4, nr], block b * split + s
/// holding rows s * len .. s * len + len - 1. Null when `v` is not a
/// constant whose bytes are readable.
Value panelizeWords(RewriterBase &rw, Value v, int64_t nr, int64_t split,
                    int64_t len) {
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto type = dyn_cast<RankedTensorType>(v.getType());
  if (!cst || !type || !type.hasStaticShape() || type.getRank() != 3 ||
      !type.getElementType().isInteger(8) || len % 4 != 0 ||
      split * len < type.getDimSize(1))
    return {};
  auto attr = dyn_cast<ElementsAttr>(cst.getValue());
  if (!attr)
    return {};
  int64_t groups = type.getDimSize(0), jn = type.getDimSize(1),
          blocks = groups * split, jw = len / 4, n = type.getDimSize(2),
          panels = llvm::divideCeil(n, nr);
  auto i32 = rw.getI32Type();
  auto panelType = RankedTensorType::get({panels, blocks, jw, nr}, i32);
  rw.setInsertionPoint(cst);
  if (auto dense = dyn_cast<DenseElementsAttr>(attr); dense && dense.isSplat()) {
    uint32_t byte = dense.getSplatValue<APInt>().getZExtValue() & 0xff;
    return arith::ConstantOp::create(
        rw, cst.getLoc(),
        DenseElementsAttr::get(panelType, int32_t(byte * 0x01010101u)));
  }
  std::optional<ArrayRef<char>> raw = quench::getRawConstantData(attr);
  if (!raw || int64_t(raw->size()) != groups * jn * n)
    return {};
  std::vector<uint32_t> words =
      buildPanelWords(*raw, groups, jn, n, nr, split, len, 0);
  quench::releaseConstantPages(attr); // read once
  std::vector<char> data(words.size() * 4);
  std::memcpy(data.data(), words.data(), data.size());
  return arith::ConstantOp::create(
      rw, cst.getLoc(),
      cast<TypedAttr>(quench::createConstantAttr(panelType, data,
                                                 "quench_nbits_words")));
}

/// Σ_{j,h} x[r, b, j, h] of x [R, blocks, J, P]: [R, blocks] f32, a
/// linalg reduction.
Value buildGroupSums(RewriterBase &rw, Location loc, Value x, int64_t blocks) {
  Type f32 = rw.getF32Type();
  SmallVector<OpFoldResult> sizes{tensor::getMixedSize(rw, loc, x, 0),
                                  rw.getIndexAttr(blocks)};
  Value zero = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0));
  Value empty = tensor::EmptyOp::create(rw, loc, sizes, f32);
  Value init = linalg::FillOp::create(rw, loc, zero, empty).getResult(0);
  MLIRContext *ctx = rw.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto sums = linalg::GenericOp::create(
      rw, loc, TypeRange{init.getType()}, ValueRange{x}, ValueRange{init},
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
  return sums.getResult(0);
}

} // namespace

Value quench::dequant::buildBlockAbsMax(RewriterBase &rw, Location loc,
                                        Value x, int64_t blocks) {
  Type f32 = rw.getF32Type();
  MLIRContext *ctx = rw.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  SmallVector<OpFoldResult> sizes{tensor::getMixedSize(rw, loc, x, 0),
                                  rw.getIndexAttr(blocks)};
  Value init = linalg::FillOp::create(
                   rw, loc,
                   ValueRange{arith::ConstantOp::create(rw, loc,
                                                        rw.getZeroAttr(f32))},
                   ValueRange{tensor::EmptyOp::create(rw, loc, sizes, f32)})
                   .getResult(0);
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;
  return linalg::GenericOp::create(
             rw, loc, TypeRange{init.getType()}, ValueRange{x},
             ValueRange{init},
             SmallVector<AffineMap>{AffineMap::getMultiDimIdentityMap(4, ctx),
                                    AffineMap::get(4, 0, {dim(0), dim(1)},
                                                   ctx)},
             SmallVector<utils::IteratorType>{par, par, red, red},
             [&](OpBuilder &b, Location l, ValueRange a) {
               Value v = a[0];
               if (v.getType() != f32)
                 v = arith::ExtFOp::create(b, l, f32, v);
               v = math::AbsFOp::create(b, l, v);
               linalg::YieldOp::create(
                   b, l, (Value)arith::MaximumFOp::create(b, l, a[1], v));
             })
      .getResult(0);
}

Value quench::dequant::quantizeToInt(OpBuilder &b, Location l, Value v,
                                     Value amax, int64_t qmax) {
  auto cf = [&](float c) -> Value {
    return arith::ConstantOp::create(b, l, b.getF32FloatAttr(c));
  };
  // qmax / amax, 0 for an all-zero group.
  Value inv = arith::SelectOp::create(
      b, l,
      arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, amax, cf(0)),
      arith::DivFOp::create(b, l, cf(float(qmax)), amax), cf(0));
  Value half = arith::SelectOp::create(
      b, l, arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, v, cf(0)),
      cf(-0.5f), cf(0.5f));
  return arith::FPToSIOp::create(
      b, l, b.getI32Type(),
      arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, v, inv), half));
}

namespace {

/// x [R, blocks, J, P] quantized to int16 per row and group for the
/// int16 path (DequantOperands::int16): sets d.amax (a max |x| reduction),
/// d.xh and d.xl (the high and low bytes of q = round(x * qmax / amax),
/// half away from zero, laid out [R, blocks, P, J]; 4-bit codes: q >> 8
/// and q & 255, 8-bit codes: (q + 128) >> 8 and q - 256 * that, both
/// signed) and d.qsum (the group sums of q), four small linalg generics
/// left to the tile pass.
void buildInt16Activations(RewriterBase &rw, Location loc, Value x,
                           DequantOperands &d) {
  auto xt = cast<RankedTensorType>(x.getType());
  int64_t jn = xt.getDimSize(2), p = xt.getDimSize(3);
  Type f32 = rw.getF32Type(), i8 = rw.getI8Type(), i32 = rw.getI32Type();
  OpFoldResult rows = tensor::getMixedSize(rw, loc, x, 0);
  MLIRContext *ctx = rw.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;
  auto filled = [&](ArrayRef<OpFoldResult> sizes, Type et) -> Value {
    Value empty = tensor::EmptyOp::create(rw, loc, sizes, et);
    Value zero = arith::ConstantOp::create(rw, loc, rw.getZeroAttr(et));
    return linalg::FillOp::create(rw, loc, zero, empty).getResult(0);
  };
  auto widen = [&](OpBuilder &b, Location l, Value v) -> Value {
    return v.getType() == f32 ? v : (Value)arith::ExtFOp::create(b, l, f32, v);
  };
  SmallVector<OpFoldResult> groupSizes{rows, rw.getIndexAttr(d.blocks)};
  AffineMap id4 = AffineMap::getMultiDimIdentityMap(4, ctx);
  AffineMap group = AffineMap::get(4, 0, {dim(0), dim(1)}, ctx);

  d.amax = buildBlockAbsMax(rw, loc, x, d.blocks);

  // The bytes, over (r, b, h, j): x read transposed.
  SmallVector<OpFoldResult> byteSizes{rows, rw.getIndexAttr(d.blocks),
                                      rw.getIndexAttr(p),
                                      rw.getIndexAttr(jn)};
  auto byteType = RankedTensorType::get(
      {xt.getDimSize(0), d.blocks, p, jn}, i8);
  AffineMap xMap =
      AffineMap::get(4, 0, {dim(0), dim(1), dim(3), dim(2)}, ctx);
  auto quantizeBytes = [&](bool high) {
    Value init = tensor::EmptyOp::create(rw, loc, byteSizes, i8);
    return linalg::GenericOp::create(
               rw, loc, TypeRange{byteType}, ValueRange{x, d.amax},
               ValueRange{init}, SmallVector<AffineMap>{xMap, group, id4},
               SmallVector<utils::IteratorType>{par, par, par, par},
               [&](OpBuilder &b, Location l, ValueRange a) {
                 Value q =
                     quantizeToInt(b, l, widen(b, l, a[0]), a[1], d.qmax);
                 // The low byte is q's in both forms (trunci); the 8-bit
                 // form's high byte rounds, so that the low one is signed.
                 if (high && d.bits == 8)
                   q = arith::AddIOp::create(
                       b, l, q,
                       arith::ConstantOp::create(b, l,
                                                 b.getI32IntegerAttr(128)));
                 if (high)
                   q = arith::ShRSIOp::create(
                       b, l, q,
                       arith::ConstantOp::create(b, l,
                                                 b.getI32IntegerAttr(8)));
                 linalg::YieldOp::create(
                     b, l, (Value)arith::TruncIOp::create(b, l, i8, q));
               })
        .getResult(0);
  };
  d.xh = quantizeBytes(true);
  d.xl = quantizeBytes(false);

  // qsum[r, b] = sum of 256 * high + low.
  d.qsum = linalg::GenericOp::create(
               rw, loc, TypeRange{RankedTensorType::get(
                            {xt.getDimSize(0), d.blocks}, i32)},
               ValueRange{d.xh, d.xl}, ValueRange{filled(groupSizes, i32)},
               SmallVector<AffineMap>{id4, id4, group},
               SmallVector<utils::IteratorType>{par, par, red, red},
               [&](OpBuilder &b, Location l, ValueRange a) {
                 Value hi = arith::ShLIOp::create(
                     b, l, arith::ExtSIOp::create(b, l, i32, a[0]),
                     arith::ConstantOp::create(b, l,
                                               b.getI32IntegerAttr(8)));
                 Value lo =
                     d.bits == 8
                         ? (Value)arith::ExtSIOp::create(b, l, i32, a[1])
                         : (Value)arith::ExtUIOp::create(b, l, i32, a[1]);
                 Value v = arith::AddIOp::create(b, l, hi, lo);
                 linalg::YieldOp::create(
                     b, l, (Value)arith::AddIOp::create(b, l, a[2], v));
               })
               .getResult(0);
}

} // namespace

Value quench::dequant::buildDequantTiles(RewriterBase &rw, Location loc,
                                         const DequantOperands &d, Value out,
                                         int64_t mr, int64_t nv,
                                         TileBuilder tile, int64_t gemvVecs) {
  int64_t nr = d.nr;
  assert((gemvVecs == 0 || gemvVecs * d.lanes % nr == 0) &&
         "one-row tiles of whole panels");
  // Tasks: 128 features (whole register tiles) each.
  int64_t nt = std::max<int64_t>(nr, llvm::alignTo(128, nr));
  auto taskBody = [&](OpBuilder &tb, const quench::ColumnTask &task) -> Value {
    auto cst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(tb, loc, v).getResult();
    };
    // Columns: whole nr-wide tiles, then single vectors (masked at N).
    Value fullCols = arith::MulIOp::create(
        tb, loc, arith::DivUIOp::create(tb, loc, task.width, cst(nr)),
        cst(nr));
    Value fullRows = arith::MulIOp::create(
        tb, loc, arith::DivUIOp::create(tb, loc, task.rows, cst(mr)),
        cst(mr));
    auto rowLoops = [&](OpBuilder &b, Value acc, Value col, int64_t vecs,
                        bool inBounds) -> Value {
      auto main = scf::ForOp::create(
          b, loc, cst(0), fullRows, cst(mr), ValueRange{acc},
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(
                rb, loc,
                tile(rb, a[0], row, task.colBase, col, mr, vecs, inBounds));
          });
      if (mr == 1)
        return main.getResult(0);
      auto rest = scf::ForOp::create(
          b, loc, fullRows, task.rows, cst(1), main.getResults(),
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(
                rb, loc,
                tile(rb, a[0], row, task.colBase, col, 1, vecs, inBounds));
          });
      return rest.getResult(0);
    };
    // The column tiles from `start`: whole nr-wide tiles, then single
    // vectors (masked at N).
    auto colLoops = [&](OpBuilder &b, Value acc, Value start) -> Value {
      auto colMain = scf::ForOp::create(
          b, loc, start, fullCols, cst(nr), ValueRange{acc},
          [&](OpBuilder &cb, Location, Value col, ValueRange a) {
            scf::YieldOp::create(
                cb, loc, rowLoops(cb, a[0], col, nv, /*inBounds=*/true));
          });
      Value result = colMain.getResult(0);
      if (d.n % nr != 0) {
        auto colRest = scf::ForOp::create(
            b, loc, fullCols, task.width, cst(d.lanes), ValueRange{result},
            [&](OpBuilder &cb, Location, Value col, ValueRange a) {
              scf::YieldOp::create(
                  cb, loc,
                  rowLoops(cb, a[0], col, 1,
                           /*inBounds=*/d.n % d.lanes == 0));
            });
        result = colRest.getResult(0);
      }
      return result;
    };
    if (gemvVecs == 0)
      return colLoops(tb, task.slice, cst(0));
    // One row: tiles of gemvVecs vectors (gemvVecs * lanes / nr panels
    // streamed side by side), then the tiles above for the rest.
    int64_t wide = gemvVecs * d.lanes;
    auto gemv = [&](OpBuilder &b) -> Value {
      Value wideCols = arith::MulIOp::create(
          b, loc, arith::DivUIOp::create(b, loc, task.width, cst(wide)),
          cst(wide));
      auto wideLoop = scf::ForOp::create(
          b, loc, cst(0), wideCols, cst(wide), ValueRange{task.slice},
          [&](OpBuilder &cb, Location, Value col, ValueRange a) {
            scf::YieldOp::create(cb, loc,
                                 tile(cb, a[0], cst(0), task.colBase, col, 1,
                                      gemvVecs, /*inBounds=*/true));
          });
      return colLoops(b, wideLoop.getResult(0), wideCols);
    };
    if (cast<RankedTensorType>(out.getType()).getDimSize(0) == 1)
      return gemv(tb);
    Value one = arith::CmpIOp::create(tb, loc, arith::CmpIPredicate::eq,
                                      task.rows, cst(1));
    auto ifOp = scf::IfOp::create(tb, loc, TypeRange{task.slice.getType()},
                                  one, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard g(tb);
      tb.setInsertionPointToStart(ifOp.thenBlock());
      scf::YieldOp::create(tb, loc, gemv(tb));
      tb.setInsertionPointToStart(ifOp.elseBlock());
      scf::YieldOp::create(tb, loc, colLoops(tb, task.slice, cst(0)));
    }
    return ifOp.getResult(0);
  };
  return quench::buildColumnTasks(rw, loc, out, d.n, nt, taskBody);
}

/// Replaces the fused dequantizing matmul `linalgOp` (the linalg.generic
/// marked `quench.dequant_matmul`, fast form) by the kernel: scf.forall
/// tasks of output features, register tiles of partial sums per
/// quantization group, vector ops on tensors, and (with zero points) a
/// linalg reduction for the group sums of x, left to the tile pass. With
/// `codeLookup` (the target has AVX-512F) and 16 lanes, 4- and 2-bit codes
/// are converted by a table lookup (a call of kPermuteIntrinsic, which the
/// caller declares; `*usedLookup` says whether it did). Where the int16
/// form applies, products of at least `int8PrefillRows` rows (> 0) with
/// codes of at most `int8PrefillBits` bits take the int8-activation form (both forms under scf.if when the rows are
/// dynamic). Fails, changing nothing, on any other op or when `vectorBits`
/// is below 128.
static LogicalResult
buildDequantMatmulKernel(RewriterBase &rw, linalg::LinalgOp linalgOp,
                         unsigned vectorBits, bool codeLookup, bool int16Dot,
                         bool bitmaskExpand, int64_t int8PrefillRows,
                         int64_t int8PrefillBits, bool *usedLookup,
                         bool *usedInt16, bool *usedExpand) {
  auto op = dyn_cast<linalg::GenericOp>(linalgOp.getOperation());
  DequantOperands d;
  if (!op || vectorBits < 128 || !matchDequantMatmul(op, d))
    return failure();
  d.lanes = vectorBits / 32;
  // 4- and 2-bit codes by table lookup on 16 lanes (vpermps): no widening
  // load, mask or conversion (docs/lowering.md).
  d.lookup = codeLookup && d.lanes == 16 && (d.bits == 4 || d.bits == 2) &&
             d.jn % 4 == 0;
  // 4-bit codes times int16 activations by vpdpbusd (the lookup's word
  // layout; docs/lowering.md, "Int16 activations").
  d.int16 = int16Dot && (d.lanes == 16 || d.lanes == 8) && d.bits == 4 &&
            d.jn % 4 == 0 && 2 * d.jn <= kMaxInt16Group;
  // 8-bit codes times int16 activations likewise, in activation blocks of
  // at most kMaxInt8Block(Zp) codes: a longer group (per output channel)
  // is cut into `split` blocks of `len` codes (x zero padded to split *
  // len, scales and zero points repeated per block).
  int64_t groups = d.blocks, split = 1, len = d.jn;
  if (int16Dot && (d.lanes == 16 || d.lanes == 8) && d.bits == 8) {
    int64_t maxLen =
        op.getNumDpsInputs() == 4 ? kMaxInt8BlockZp : kMaxInt8Block;
    split = llvm::divideCeil(d.jn, maxLen);
    len = llvm::alignTo(llvm::divideCeil(d.jn, split), 4);
    d.int16 = true;
    d.qmax = 32639;
  }
  if (d.int16)
    d.lookup = false;
  // Bitmask storage (unstructured pruned 8-bit codes): the expanding form
  // of the 8-bit int16 path; needs AVX512-VBMI2 (`bitmask-expand`).
  auto storage = op->getAttrOfType<StringAttr>(quench::kSparseStorageAttrName);
  d.bitmask = bitmaskExpand && storage && storage.getValue() == "bitmask" &&
              d.int16 && d.bits == 8 && d.lanes == 16 &&
              op.getNumDpsInputs() == 3;
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
    // The int16 path holds three accumulators per tile vector.
    if (d.int16)
      mr = 4;
  }
  int64_t nr = nv * d.lanes;
  d.nr = nr;
  // GGUF q6_K layers (8-bit codes in a 6-bit range, f32 scales that factor
  // into two levels) at the file's size: the 6-bit forms of
  // KQuantMatmul.cpp (AVX-512: float activations by lookups, int16 ones by
  // vpdpbusd where the 8-bit int16 form would apply). Four rows per tile.
  std::optional<SixBitOperands> six;
  if (codeLookup && d.lanes == 16 && d.bits == 8 && !d.bitmask &&
      op.getNumDpsInputs() == 3 && split == 1)
    six = panelizeSixBit(rw, op.getDpsInputs()[1], op.getDpsInputs()[2], nr,
                         /*bytes=*/d.int16);
  if (six) {
    mr = oneRow ? 1 : 4;
  } else {
    if (d.bitmask &&
        !panelizeBitmask(rw, op.getDpsInputs()[1], nr, split, len, d))
      return failure();
    d.codes = d.bitmask ? d.masks
              : d.lookup || d.int16
                  ? panelizeWords(rw, op.getDpsInputs()[1], nr, split, len)
                  : panelize(rw, op.getDpsInputs()[1], nr);
    d.scales = panelize(rw, op.getDpsInputs()[2], nr, split);
    if (op.getNumDpsInputs() == 4)
      d.zp = panelize(rw, op.getDpsInputs()[3], nr, split);
    if (!d.codes || !d.scales || (op.getNumDpsInputs() == 4 && !d.zp))
      return failure();
  }
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
  if (split > 1 || len != d.jn) {
    // The 8-bit int16 path's activation blocks: [R, groups, J, 1] padded
    // with zeros to [R, groups, split * len, 1], then viewed as [R, groups
    // * split, len, 1].
    auto xt = cast<RankedTensorType>(x.getType());
    Type et = xt.getElementType();
    SmallVector<OpFoldResult> lo(4, rw.getIndexAttr(0)),
        hi(4, rw.getIndexAttr(0));
    hi[2] = rw.getIndexAttr(split * len - d.jn);
    Value zero = arith::ConstantOp::create(rw, loc, rw.getZeroAttr(et));
    if (split * len != d.jn)
      x = tensor::PadOp::create(
          rw, loc,
          RankedTensorType::get({xt.getDimSize(0), groups, split * len, 1},
                                et),
          x, lo, hi, zero);
    x = tensor::ExpandShapeOp::create(
        rw, loc,
        RankedTensorType::get({xt.getDimSize(0), groups, split, len, 1}, et),
        x, ArrayRef<ReassociationIndices>{{0}, {1}, {2, 3}, {4}},
        SmallVector<OpFoldResult>{tensor::getMixedSize(rw, loc, x, 0),
                                  rw.getIndexAttr(groups),
                                  rw.getIndexAttr(split), rw.getIndexAttr(len),
                                  rw.getIndexAttr(1)});
    x = tensor::CollapseShapeOp::create(
        rw, loc, x, ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}, {4}});
  }
  d.blocks = groups * split;
  d.jn = len;
  d.x = x;

  // The int8-activation (prefill) form from `int8PrefillRows` rows up
  // (DequantMatmulInt8.cpp), on the same panels: a static row count picks
  // one form, a dynamic one both, under scf.if rows >= int8PrefillRows.
  int64_t staticRows = cast<RankedTensorType>(x.getType()).getDimSize(0);
  bool int8Form =
      !six && d.int16 && !d.bitmask && !oneRow && int8PrefillRows > 0 &&
      d.bits <= int8PrefillBits &&
      (ShapedType::isDynamic(staticRows) || staticRows >= int8PrefillRows);
  auto buildInt8 = [&]() {
    DequantOperands d8 = d;
    return buildInt8ActivationKernel(rw, loc, d8, out, /*mr=*/6, nv);
  };
  // One row (decode) in the int16 form: tiles of 8 vectors at 512 bits (4
  // at 256), i.e. 2 to 4 panels read side by side. One panel per tile is
  // a single sequential stream of codes, which one core reads at ~11 GB/s
  // on the Intel host; several concurrent streams keep more cache-line
  // fetches in flight (docs/lowering.md, "One-row tiles of several
  // panels").
  int64_t gemvVecs = 0;
  if (d.int16 && !d.bitmask)
    gemvVecs = d.lanes == 16 ? 8 : 4;
  auto buildOther = [&]() {
    // Group sums of x for the zero points: [R, blocks] f32, a reduction
    // (tiled and vectorized later by quench-cpu-tile-and-vectorize).
    if (d.int16)
      buildInt16Activations(rw, loc, x, d);
    else if (!d.lookup || d.zp)
      d.sx = buildGroupSums(rw, loc, x, d.blocks);
    return buildDequantTiles(
        rw, loc, d, out, mr, nv,
        [&](OpBuilder &b, Value acc, Value row, Value colBase, Value col,
            int64_t rows, int64_t vecs, bool inBounds) -> Value {
          TileEmitter te(b, loc, d);
          return d.int16 ? te.emitInt16(acc, row, colBase, col, rows, vecs,
                                        inBounds)
                         : te.emit(acc, row, colBase, col, rows, vecs,
                                   inBounds);
        },
        gemvVecs);
  };
  Value res;
  if (six) {
    if (d.int16)
      buildInt16Activations(rw, loc, x, d);
    res = buildSixBitKernel(rw, loc, d, *six, out, mr, nv);
    d.lookup = !d.int16; // the float form's conversions are lookups
  } else if (!int8Form) {
    res = buildOther();
  } else if (!ShapedType::isDynamic(staticRows)) {
    res = buildInt8();
  } else {
    Value rows = tensor::DimOp::create(rw, loc, x, 0);
    Value cond = arith::CmpIOp::create(
        rw, loc, arith::CmpIPredicate::uge, rows,
        arith::ConstantIndexOp::create(rw, loc, int8PrefillRows));
    auto ifOp = scf::IfOp::create(rw, loc, TypeRange{out.getType()}, cond,
                                  /*withElseRegion=*/true);
    rw.setInsertionPointToStart(ifOp.thenBlock());
    scf::YieldOp::create(rw, loc, buildInt8());
    rw.setInsertionPointToStart(ifOp.elseBlock());
    scf::YieldOp::create(rw, loc, buildOther());
    rw.setInsertionPointAfter(ifOp);
    res = ifOp.getResult(0);
  }
  if (nb > 1)
    res = quench::restoreLeadingDims(rw, loc, res, op.getResult(0).getType(),
                                     nb, init);
  rw.replaceOp(op, res);
  if (usedLookup)
    *usedLookup = d.lookup;
  if (usedInt16)
    *usedInt16 = d.int16;
  if (usedExpand)
    *usedExpand = d.bitmask;
  return success();
}

namespace {

struct QuenchCPUDequantMatmulPass
    : public quench::impl::QuenchCPUDequantMatmulBase<
          QuenchCPUDequantMatmulPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<linalg::GenericOp> found;
    module.walk([&](linalg::GenericOp op) {
      if (op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
        found.push_back(op);
    });
    IRRewriter rw(&getContext());
    bool anyLookup = false, anyInt16 = false, anyExpand = false;
    // Models that promise float activations (GGUF) keep the float kernel.
    bool useInt16 =
        int16Dot && !module->hasAttr(quench::kFloatActivationsAttrName);
    for (linalg::GenericOp op : found) {
      bool lookup = false, int16 = false, expand = false;
      if (succeeded(buildDequantMatmulKernel(rw, op, vectorBits, codeLookup,
                                             useInt16, bitmaskExpand,
                                             int8PrefillRows, int8PrefillBits,
                                             &lookup,
                                             &int16, &expand))) {
        anyLookup |= lookup;
        anyInt16 |= int16;
        anyExpand |= expand;
      }
      if (!expand && op->hasAttr(quench::kSparseStorageAttrName)) {
        // A layer promised bitmask storage but the kernel cannot expand it
        // here: the dense codes would end up in the artifact.
        op.emitError("bitmask sparse storage needs the int16 8-bit kernel "
                     "at 512 bits with bitmask-expand (AVX512-VBMI2)");
        return signalPassFailure();
      }
    }
    if (anyInt16) {
      MLIRContext *ctx = &getContext();
      int64_t lanes = vectorBits / 32;
      auto vi = VectorType::get({lanes}, IntegerType::get(ctx, 32));
      auto vb = VectorType::get({4 * lanes}, IntegerType::get(ctx, 8));
      quench::declareIntrinsic(
          module, lanes == 16 ? kDotIntrinsic512 : kDotIntrinsic256,
          FunctionType::get(ctx, {vi, vb, vb}, {vi}));
    }
    if (anyExpand) {
      MLIRContext *ctx = &getContext();
      auto vb = VectorType::get({64}, IntegerType::get(ctx, 8));
      auto vm = VectorType::get({64}, IntegerType::get(ctx, 1));
      quench::declareIntrinsic(module, kExpandIntrinsic,
                               FunctionType::get(ctx, {vb, vb, vm}, {vb}));
    }
    if (anyLookup) {
      MLIRContext *ctx = &getContext();
      auto vf = VectorType::get({16}, Float32Type::get(ctx));
      auto vi = VectorType::get({16}, IntegerType::get(ctx, 32));
      quench::declareIntrinsic(module, kPermuteIntrinsic,
                               FunctionType::get(ctx, {vf, vi}, {vf}));
    }
  }
};

} // namespace
