//===- KQuantMatmul.cpp - 6-bit two-level-scale form of the kernel --------===//
//
// GGUF's q6_K tensors are imported as `quench.matmul_nbits` with 8-bit codes
// (q + 96, implicit zero point 128) and an f32 scale per group of 16 (the
// block's f16 d times its int8 sub-scale): 10 bits per weight against the
// file's 6.56. This form of the quantized matmul kernel holds them at the
// file's size again, by a lossless compile-time relayout
// (quant::buildSixBitPanels): the 6-bit code q6 = code - 96 as a plane of
// low nibbles (8 per 32-bit word) and a plane of high 2-bit pairs (16 per
// word), an int8 scale per group and an f16 scale per super-block of 16
// groups, all in panels of nr output features so that a register tile
// streams contiguous bytes.
//
// The tile computes, per group b (16 codes along K) and output vector,
//
//   part  = Σ_j x[j] * (lut_lo[lo_j] + lut_hi[hi_j])    lut_lo[i] = i - 32,
//                                                       lut_hi[i] = 16 (i & 3)
//   acc  += (f32(d) * sc[b]) * part
//
// where lo_j / hi_j are the word shifted so that code j's bits are the
// lowest (vpermps reads the low 4 bits of each lane: no mask). The two
// looked-up floats add up to q6 - 32 exactly, and f32(d) * sc[b] is the
// import's f32 scale bit for bit (checked when the panels are built), so
// the result is the 8-bit form's sum, reassociated the same way. The super-
// block's d is loaded and widened once per 256 codes. AVX-512 only (the
// lookups); other targets and every layer whose codes or scales are not in
// this form keep the 8-bit form (DequantMatmul.cpp decides).
//
//===----------------------------------------------------------------------===//

#include "KQuantMatmul.h"
#include "KernelUtils.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Quant/KQuantPanels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace quench::dequant;

/// The bytes of the constant `attr`; a splat (hand-written IR) expanded
/// into `storage`.
static std::optional<ArrayRef<char>> rawOrSplat(ElementsAttr attr,
                                                std::vector<char> &storage) {
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense || !dense.isSplat())
    return quench::getRawConstantData(attr);
  ArrayRef<char> one = dense.getRawData();
  int64_t eb = quench::getStorageBytesPerElement(dense.getElementType());
  if (eb == 0 || int64_t(one.size()) != eb)
    return std::nullopt;
  storage.resize(dense.getNumElements() * eb);
  for (size_t i = 0; i < storage.size(); i += eb)
    std::copy_n(one.data(), eb, storage.data() + i);
  return ArrayRef<char>(storage);
}

std::optional<SixBitOperands>
quench::dequant::panelizeSixBit(RewriterBase &rw, Value codes, Value scales,
                                int64_t nr, bool bytes) {
  auto ccst = codes.getDefiningOp<arith::ConstantOp>();
  auto scst = scales.getDefiningOp<arith::ConstantOp>();
  auto ct = dyn_cast<RankedTensorType>(codes.getType());
  auto st = dyn_cast<RankedTensorType>(scales.getType());
  if (!ccst || !scst || !ct || !st || !ct.hasStaticShape() ||
      !st.hasStaticShape() || ct.getRank() != 3 || st.getRank() != 2 ||
      !ct.getElementType().isInteger(8) || !st.getElementType().isF32())
    return std::nullopt;
  int64_t blocks = ct.getDimSize(0), jn = ct.getDimSize(1),
          n = ct.getDimSize(2);
  // Super-blocks of 256 codes: q6_K's 16 groups of 16.
  if (jn != 16 || st.getDimSize(0) != blocks || st.getDimSize(1) != n)
    return std::nullopt;
  const int64_t superGroups = 256 / jn;
  auto cattr = dyn_cast<ElementsAttr>(ccst.getValue());
  auto sattr = dyn_cast<ElementsAttr>(scst.getValue());
  if (!cattr || !sattr)
    return std::nullopt;
  std::vector<char> csplat, ssplat;
  std::optional<ArrayRef<char>> craw = rawOrSplat(cattr, csplat);
  std::optional<ArrayRef<char>> sraw = rawOrSplat(sattr, ssplat);
  if (!craw || !sraw || int64_t(craw->size()) != blocks * jn * n ||
      int64_t(sraw->size()) != blocks * n * 4)
    return std::nullopt;
  quench::quant::SixBitPanels p;
  if (!quench::quant::buildSixBitPanels(
          reinterpret_cast<const uint8_t *>(craw->data()),
          reinterpret_cast<const float *>(sraw->data()), blocks, jn, n, nr,
          superGroups, p, bytes))
    return std::nullopt;
  quench::releaseConstantPages(cattr); // read once
  quench::releaseConstantPages(sattr);
  rw.setInsertionPoint(ccst);
  Location loc = ccst.getLoc();
  auto make = [&](ArrayRef<int64_t> shape, Type et, const void *data,
                  size_t bytes, StringRef name) -> Value {
    return arith::ConstantOp::create(
        rw, loc,
        cast<TypedAttr>(quench::createConstantAttr(
            RankedTensorType::get(shape, et),
            ArrayRef<char>(static_cast<const char *>(data), bytes), name)));
  };
  SixBitOperands k;
  k.superGroups = superGroups;
  k.lo = make({p.panels, blocks, jn / 8, nr}, rw.getI32Type(), p.lo.data(),
              p.lo.size() * 4, "quench_q6_lo");
  k.hi = make({p.panels, blocks, jn / 16, nr}, rw.getI32Type(), p.hi.data(),
              p.hi.size() * 4, "quench_q6_hi");
  k.sc = make({p.panels, blocks, nr}, rw.getI8Type(), p.sc.data(), p.sc.size(),
              "quench_q6_sc");
  k.d = make({p.panels, blocks / superGroups, nr}, rw.getF16Type(), p.d.data(),
             p.d.size() * 2, "quench_q6_d");
  return k;
}

/// The f16 scales `d` of super-block `s` for the tile's `vecs` column
/// vectors, widened to f32 (once per 256 codes).
static SmallVector<Value> superBlockScales(OpBuilder &b, Location loc,
                                           const DequantOperands &d,
                                           const SixBitOperands &k,
                                           const TileFrame &f, Value s,
                                           int64_t vecs) {
  auto vf = VectorType::get({d.lanes}, b.getF32Type());
  auto vh = VectorType::get({d.lanes}, b.getF16Type());
  SmallVector<Value> scales;
  for (int64_t v = 0; v < vecs; ++v)
    scales.push_back(arith::ExtFOp::create(
        b, loc, vf,
        quench::readVector(b, loc, vh, k.d, {f.panel, s, f.wcols[v]}, true)));
  return scales;
}

/// Group `blk`'s scale f32(d) * sc of column vector `v` (`dv`: its
/// super-block's widened d), exactly the import's f32 scale.
static Value groupScale(OpBuilder &b, Location loc, const DequantOperands &d,
                        const SixBitOperands &k, const TileFrame &f, Value blk,
                        int64_t v, Value dv) {
  auto vf = VectorType::get({d.lanes}, b.getF32Type());
  auto vi8 = VectorType::get({d.lanes}, b.getI8Type());
  Value sc = arith::SIToFPOp::create(
      b, loc, vf,
      quench::readVector(b, loc, vi8, k.sc, {f.panel, blk, f.wcols[v]}, true));
  return arith::MulFOp::create(b, loc, dv, sc);
}

/// The int16 tile of the 6-bit form (d.int16: activations quantized per
/// row and group into the high and low bytes `xh` / `xl`, 8-bit code
/// layout, qmax 32639): per word step s of a group, the 64 code bytes of a
/// vector (4 codes of 16 features) are assembled from the byte-ordered
/// planes, ((lo >> 4 (s % 2)) & 0x0F) | ((hi << 4 - 2 s) & 0x30), and
/// multiplied with the activation words by two vpdpbusd, exactly in int32;
/// once per group t = 256 Σhigh + Σlow - 32 qsum (the 6-bit code's zero
/// point) times f32(d) * sc * amax / qmax.
static Value buildSixBitInt16Tile(OpBuilder &b, Location loc,
                                  const DequantOperands &d,
                                  const SixBitOperands &k, Value acc0,
                                  Value row, Value colBase, Value col,
                                  int64_t rows, int64_t vecs, bool inBounds) {
  TileFrame f =
      buildTileFrame(b, loc, d, acc0, row, colBase, col, rows, vecs, inBounds);
  Type f32 = b.getF32Type(), i8 = b.getI8Type(), i32 = b.getI32Type();
  auto vf = VectorType::get({d.lanes}, f32);
  auto vi32 = VectorType::get({d.lanes}, i32);
  auto bytes = VectorType::get({4 * d.lanes}, i8);
  int64_t tileVecs = rows * vecs;
  auto cidx = [&](OpBuilder &ob, int64_t v) -> Value {
    return arith::ConstantIndexOp::create(ob, loc, v);
  };
  auto splat = [&](OpBuilder &ob, int32_t v) {
    return quench::splatI32(ob, loc, vi32, v);
  };
  auto dpbusd = [&](OpBuilder &ob, Value acc, Value u8, Value s8) {
    return quench::callDotBytes(ob, loc, kDotIntrinsic512, acc, u8, s8);
  };
  // The four activation bytes at [row, blk, 0, j .. j + 3], broadcast.
  auto wordOf = [&](OpBuilder &ob, Value src, ValueRange at) {
    return quench::broadcastByteWord(ob, loc, src, at, d.lanes);
  };
  Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vi32));
  int64_t supers = d.blocks / k.superGroups;
  auto superLoop = scf::ForOp::create(
      b, loc, cidx(b, 0), cidx(b, supers), cidx(b, 1), f.accInit,
      [&](OpBuilder &sb, Location, Value s, ValueRange accs) {
        SmallVector<Value> dv = superBlockScales(sb, loc, d, k, f, s, vecs);
        Value blk0 = arith::MulIOp::create(sb, loc, s, cidx(sb, k.superGroups));
        auto groupLoop = scf::ForOp::create(
            sb, loc, cidx(sb, 0), cidx(sb, k.superGroups), cidx(sb, 1), accs,
            [&](OpBuilder &gb, Location, Value g, ValueRange gaccs) {
              Value blk = arith::AddIOp::create(gb, loc, blk0, g);
              // Partial sums of the high [0, tileVecs) and low bytes.
              SmallVector<Value> p(2 * tileVecs, zero);
              Value zi = cidx(gb, 0);
              Value lowMask = splat(gb, 0x0F0F0F0F),
                    highMask = splat(gb, 0x30303030);
              for (int64_t u = 0; u < d.jn / 16; ++u) {
                SmallVector<Value> hw, lw[2];
                for (int64_t v = 0; v < vecs; ++v) {
                  hw.push_back(quench::readVector(
                      gb, loc, vi32, k.hi,
                      {f.panel, blk, cidx(gb, u), f.wcols[v]}, true));
                  for (int64_t m = 0; m < 2; ++m)
                    lw[m].push_back(quench::readVector(
                        gb, loc, vi32, k.lo,
                        {f.panel, blk, cidx(gb, 2 * u + m), f.wcols[v]}, true));
                }
                for (int64_t st = 0; st < 4; ++st) {
                  int64_t j = 16 * u + 4 * st;
                  SmallVector<Value> hiW, loW;
                  for (int64_t i = 0; i < rows; ++i) {
                    hiW.push_back(
                        wordOf(gb, d.xh, {f.rows[i], blk, zi, cidx(gb, j)}));
                    loW.push_back(
                        wordOf(gb, d.xl, {f.rows[i], blk, zi, cidx(gb, j)}));
                  }
                  for (int64_t v = 0; v < vecs; ++v) {
                    Value lo = lw[st / 2][v];
                    if (st % 2)
                      lo = arith::ShRUIOp::create(gb, loc, lo, splat(gb, 4));
                    lo = arith::AndIOp::create(gb, loc, lo, lowMask);
                    Value hi = hw[v];
                    int64_t sh = 4 - 2 * st;
                    if (sh > 0)
                      hi = arith::ShLIOp::create(gb, loc, hi, splat(gb, sh));
                    else if (sh < 0)
                      hi = arith::ShRUIOp::create(gb, loc, hi, splat(gb, -sh));
                    hi = arith::AndIOp::create(gb, loc, hi, highMask);
                    Value c = vector::BitCastOp::create(
                        gb, loc, bytes, arith::OrIOp::create(gb, loc, lo, hi));
                    for (int64_t i = 0; i < rows; ++i) {
                      Value &hs = p[i * vecs + v];
                      Value &ls = p[tileVecs + i * vecs + v];
                      hs = dpbusd(gb, hs, c, hiW[i]);
                      ls = dpbusd(gb, ls, c, loW[i]);
                    }
                  }
                }
              }
              // Once per group: t = 256 high + low - 32 qsum, times the
              // scale f32(d) * sc and amax / qmax.
              SmallVector<Value> acc(gaccs), sxs, qsi;
              for (int64_t i = 0; i < rows; ++i) {
                Value am = tensor::ExtractOp::create(
                    gb, loc, d.amax, ValueRange{f.rows[i], blk});
                Value sx = arith::MulFOp::create(
                    gb, loc, am,
                    arith::ConstantOp::create(
                        gb, loc, gb.getF32FloatAttr(1.0f / float(d.qmax))));
                sxs.push_back(vector::BroadcastOp::create(gb, loc, vf, sx));
                Value qs = tensor::ExtractOp::create(
                    gb, loc, d.qsum, ValueRange{f.rows[i], blk});
                qs = arith::MulIOp::create(
                    gb, loc, qs,
                    arith::ConstantOp::create(gb, loc,
                                              gb.getI32IntegerAttr(32)));
                qsi.push_back(vector::BroadcastOp::create(gb, loc, vi32, qs));
              }
              for (int64_t v = 0; v < vecs; ++v) {
                Value scale = groupScale(gb, loc, d, k, f, blk, v, dv[v]);
                for (int64_t i = 0; i < rows; ++i) {
                  int64_t at = i * vecs + v;
                  Value t = arith::AddIOp::create(
                      gb, loc,
                      arith::ShLIOp::create(gb, loc, p[at], splat(gb, 8)),
                      p[tileVecs + at]);
                  t = arith::SubIOp::create(gb, loc, t, qsi[i]);
                  Value tf = arith::SIToFPOp::create(gb, loc, vf, t);
                  acc[at] = vector::FMAOp::create(
                      gb, loc, arith::MulFOp::create(gb, loc, scale, sxs[i]),
                      tf, acc[at]);
                }
              }
              scf::YieldOp::create(gb, loc, acc);
            });
        scf::YieldOp::create(sb, loc, groupLoop.getResults());
      });
  return writeTileBack(b, loc, acc0, f, superLoop.getResults(), vecs, inBounds);
}

Value quench::dequant::buildSixBitKernel(RewriterBase &rw, Location loc,
                                         const DequantOperands &d,
                                         const SixBitOperands &k, Value out,
                                         int64_t mr, int64_t nv) {
  if (d.int16)
    return buildDequantTiles(
        rw, loc, d, out, mr, nv,
        [&](OpBuilder &b, Value acc0, Value row, Value colBase, Value col,
            int64_t rows, int64_t vecs, bool inBounds) -> Value {
          return buildSixBitInt16Tile(b, loc, d, k, acc0, row, colBase, col,
                                      rows, vecs, inBounds);
        });
  auto tile = [&](OpBuilder &b, Value acc0, Value row, Value colBase, Value col,
                  int64_t rows, int64_t vecs, bool inBounds) -> Value {
    TileFrame f = buildTileFrame(b, loc, d, acc0, row, colBase, col, rows, vecs,
                                 inBounds);
    Type f32 = b.getF32Type();
    auto vf = VectorType::get({d.lanes}, f32);
    auto vi32 = VectorType::get({d.lanes}, b.getI32Type());
    int64_t tileVecs = rows * vecs;
    // One row: two sets of partial sums (even and odd codes) keep enough
    // FMA chains in flight, as in the 4-bit lookup form.
    int64_t sets = tileVecs < 8 ? 2 : 1;
    auto cidx = [&](OpBuilder &ob, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(ob, loc, v);
    };
    SmallVector<float> lo, hi;
    for (int64_t i = 0; i < 16; ++i) {
      lo.push_back(float(i) - 32.0f);
      hi.push_back(float(16 * (i & 3)));
    }
    Value tabLo = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vf, ArrayRef<float>(lo)));
    Value tabHi = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(vf, ArrayRef<float>(hi)));
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vf));
    SmallVector<Value> zeros(tileVecs * sets, zero);
    auto lookup = [&](OpBuilder &ob, Value tab, Value w,
                      int64_t shift) -> Value {
      if (shift)
        w = arith::ShRUIOp::create(
            ob, loc, w,
            arith::ConstantOp::create(
                ob, loc,
                DenseElementsAttr::get(vi32, ob.getI32IntegerAttr(shift))));
      return func::CallOp::create(ob, loc, kPermuteIntrinsic, TypeRange{vf},
                                  ValueRange{tab, w})
          .getResult(0);
    };
    int64_t supers = d.blocks / k.superGroups;
    auto superLoop = scf::ForOp::create(
        b, loc, cidx(b, 0), cidx(b, supers), cidx(b, 1), f.accInit,
        [&](OpBuilder &sb, Location, Value s, ValueRange accs) {
          SmallVector<Value> dv = superBlockScales(sb, loc, d, k, f, s, vecs);
          Value blk0 =
              arith::MulIOp::create(sb, loc, s, cidx(sb, k.superGroups));
          auto groupLoop = scf::ForOp::create(
              sb, loc, cidx(sb, 0), cidx(sb, k.superGroups), cidx(sb, 1), accs,
              [&](OpBuilder &gb, Location, Value g, ValueRange gaccs) {
                Value blk = arith::AddIOp::create(gb, loc, blk0, g);
                SmallVector<Value> p(zeros);
                for (int64_t u = 0; u < d.jn / 16; ++u) {
                  SmallVector<Value> hw;
                  for (int64_t v = 0; v < vecs; ++v)
                    hw.push_back(quench::readVector(
                        gb, loc, vi32, k.hi,
                        {f.panel, blk, cidx(gb, u), f.wcols[v]}, true));
                  for (int64_t w = 0; w < 2; ++w) {
                    SmallVector<Value> lw;
                    for (int64_t v = 0; v < vecs; ++v)
                      lw.push_back(quench::readVector(
                          gb, loc, vi32, k.lo,
                          {f.panel, blk, cidx(gb, 2 * u + w), f.wcols[v]},
                          true));
                    for (int64_t t = 0; t < 8; ++t) {
                      int64_t j = 16 * u + 8 * w + t;
                      SmallVector<Value> xs;
                      for (int64_t i = 0; i < rows; ++i) {
                        Value x = tensor::ExtractOp::create(
                            gb, loc, d.x,
                            ValueRange{f.rows[i], blk, cidx(gb, j),
                                       cidx(gb, 0)});
                        if (x.getType() != f32)
                          x = arith::ExtFOp::create(gb, loc, f32, x);
                        xs.push_back(
                            vector::BroadcastOp::create(gb, loc, vf, x));
                      }
                      int64_t set = j % sets;
                      for (int64_t v = 0; v < vecs; ++v) {
                        Value q = arith::AddFOp::create(
                            gb, loc, lookup(gb, tabLo, lw[v], 4 * t),
                            lookup(gb, tabHi, hw[v], 2 * (8 * w + t)));
                        for (int64_t i = 0; i < rows; ++i) {
                          Value &a = p[set * tileVecs + i * vecs + v];
                          a = vector::FMAOp::create(gb, loc, xs[i], q, a);
                        }
                      }
                    }
                  }
                }
                // The group's scale f32(d) * sc, exactly the import's.
                SmallVector<Value> acc(gaccs);
                for (int64_t v = 0; v < vecs; ++v) {
                  Value scale = groupScale(gb, loc, d, k, f, blk, v, dv[v]);
                  for (int64_t i = 0; i < rows; ++i) {
                    int64_t at = i * vecs + v;
                    Value part = p[at];
                    for (int64_t set = 1; set < sets; ++set)
                      part = arith::AddFOp::create(gb, loc, part,
                                                   p[set * tileVecs + at]);
                    acc[at] =
                        vector::FMAOp::create(gb, loc, scale, part, acc[at]);
                  }
                }
                scf::YieldOp::create(gb, loc, acc);
              });
          scf::YieldOp::create(sb, loc, groupLoop.getResults());
        });
    return writeTileBack(b, loc, acc0, f, superLoop.getResults(), vecs,
                         inBounds);
  };
  return buildDequantTiles(rw, loc, d, out, mr, nv, tile);
}
