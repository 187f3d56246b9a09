//===- SparseMatmul.cpp - the CPU kernel of quench.sparse_linear ----------===//
//
// The generic that SparseLinear.cpp lowers quench.sparse_linear to (loops
// (batch..., n, g, j, t), marked `quench.sparse_matmul`) is the
// specification: it visits every column t of a group to find the kept one.
// Here it is replaced by an explicit kernel on tensors (scf + vector ops)
// that streams the compressed weight only and expands it in registers:
//
//   for each group g of `group` inputs and slot j of the `keep` kept ones:
//     index vector  = the slot's in-group indices of P output features
//                     (one broadcast 32-bit word, a variable right shift per
//                     lane: each lane's field lands in the low bits)
//     x vector      = vpermps(x[r, g, 0 .. group) repeated, index vector)
//     acc[r]       += x vector * values[g, j, features]   (one FMA per row)
//
// vpermps reads only the low 4 (16 lanes) or 3 (8 lanes) bits of each index
// lane, so the neighbouring lanes' fields above a 2-bit index need no mask:
// the table repeats with period 4 (the group's 4 values broadcast), and a
// 4-bit index of a group of 8 reads 3 or 4 bits of which the top one is 0.
// No dense weight exists in memory; the constants are re-laid out at
// compile time in panels of nr output features: values [N/nr, G, keep, nr]
// (f32 or i8 codes), index words [N/nr, G, keep, nr / lanes, words],
// scales [N/nr, blocks, nr]. int8 codes are converted (vpmovsxbd,
// vcvtdq2ps) and their partial sums scaled once per scale block. 4-bit codes
// (`quench.sparse_value_bits = 4`) are stored two per byte: values
// [N/nr, G, ceil(keep / 2), nr], slot 2p of a lane in the low nibble and
// 2p + 1 in the high one. With 16 lanes a nibble is the code + 8 and its
// float is one vpermps of the table [-8, 7] (which reads the low 4 bits of
// each lane: the low nibble as loaded, the high one after a shift by 4);
// with 8 lanes (vpermps reads 3 bits) it is two's complement, decoded by
// shifts and a conversion. 2:4 4-bit codes on AVX512-VNNI take an int16
// form (the dense W4A16 kernel's int16 activations and vpdpbusd): the
// activations gathered per lane by vpshufb, or with `bitmask-expand`
// (VBMI2) the kept codes expanded to their dense positions by vpexpandb
// (see emitInt16). See docs/sparsity.md ("CPU kernel", "2:4 int4").
//
//===----------------------------------------------------------------------===//

#include "KernelUtils.h"
#include "quench/Codegen/CPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"

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

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUSPARSEMATMUL
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// vpermps: result[i] = table[index[i] mod lanes] (16 lanes: AVX-512F, 8:
/// AVX2), declared in the module by the pass.
constexpr char kPermute512[] = "llvm.x86.avx512.permvar.sf.512";
constexpr char kPermute256[] = "llvm.x86.avx2.permps";
/// vpdpbusd (AVX512-VNNI): acc[i] += sum over the 4 bytes of lane i of
/// zext(a) * sext(b); vpshufb (AVX512BW): bytes of a 16-byte table per
/// 128-bit lane, picked by the low 4 bits of each index byte.
constexpr char kDot512[] = "llvm.x86.avx512.vpdpbusd.512";
constexpr char kShuffleBytes512[] = "llvm.x86.avx512.pshuf.b.512";
/// vpexpandb (AVX512-VBMI2): the first operand's bytes, in order, at the
/// lanes the mask sets; the second operand's bytes elsewhere.
constexpr char kExpand512[] = "llvm.x86.avx512.mask.expand.v64i8";
/// The int16 activations' scale: q = round(x * kInt16Max / amax).
constexpr float kInt16Max = 32767.0f;

struct SparseOperands {
  Value x;                  ///< [R, G, group] f32
  Value vals, idx, scales;  ///< panels (see the file comment)
  int64_t keep = 2, group = 4, groups = 1, n = 1, slots = 2;
  int64_t lanes = 8, nv = 1, nr = 8, words = 1, indexBits = 2;
  int64_t blocks = 1, groupsPerBlock = 1;
  bool quantized = false;
  bool nibbles = false; ///< 4-bit codes, two slots per panel byte
  /// The int16 form (2:4 4-bit codes, AVX512-VNNI; see buildInt16Panels):
  /// codes [P, steps, nv, 32] and index bytes [P, steps, nv, 16] per step
  /// of two groups, the activations' amax [R, blocks] and bytes [R, steps,
  /// 16].
  bool int16 = false;
  /// The expand form of the int16 one (AVX512-VBMI2; see buildInt16Panels):
  /// codes [P, steps, nv, 32] and masks [P, steps, nv, 2] i64, the
  /// activations' signed high bytes and their sums per block qsum [R,
  /// blocks] i32.
  bool expand = false;
  Value amax, xbytes, qsum;
  int64_t steps = 0, stepsPerBlock = 0;
};

/// Recognizes the generic of quench.sparse_linear with constant operands;
/// fills the shapes of `d` (not the panels).
bool matchSparseMatmul(linalg::GenericOp op, SparseOperands &d) {
  if (!op->hasAttr(quench::kSparseMatmulAttrName) ||
      !op.hasPureTensorSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 3 || op.getNumDpsInputs() > 4 ||
      op.getNumLoops() < 4)
    return false;
  unsigned nb = op.getNumLoops() - 4;
  auto xt = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto vt = dyn_cast<RankedTensorType>(op.getDpsInputs()[1].getType());
  auto it = dyn_cast<RankedTensorType>(op.getDpsInputs()[2].getType());
  auto ot = dyn_cast<RankedTensorType>(op.getDpsInits()[0].getType());
  if (!xt || !vt || !it || !ot || xt.getRank() != nb + 2 ||
      vt.getRank() != 3 || it.getRank() != 3 || ot.getRank() != nb + 1 ||
      !vt.hasStaticShape() || it.getShape() != vt.getShape() ||
      !xt.getElementType().isF32() || !ot.getElementType().isF32() ||
      !it.getElementType().isInteger(8))
    return false;
  d.groups = xt.getDimSize(nb);
  d.group = xt.getDimSize(nb + 1);
  d.n = vt.getDimSize(0);
  d.keep = vt.getDimSize(2);
  d.slots = d.groups * d.keep;
  if (ShapedType::isDynamic(d.groups) || ShapedType::isDynamic(d.group) ||
      vt.getDimSize(1) != d.groups || ot.getShape().back() != d.n)
    return false;
  d.quantized = vt.getElementType().isInteger(8);
  auto bitsAttr = op->getAttrOfType<IntegerAttr>(quench::kSparseValueBitsAttrName);
  d.nibbles = bitsAttr && bitsAttr.getInt() == 4;
  if (d.nibbles && !d.quantized)
    return false;
  if (d.quantized != (op.getNumDpsInputs() == 4) ||
      (!d.quantized && !vt.getElementType().isF32()))
    return false;
  d.groupsPerBlock = 0;
  d.blocks = 1;
  if (d.quantized) {
    auto st = dyn_cast<RankedTensorType>(op.getDpsInputs()[3].getType());
    if (!st || st.getRank() != 2 || !st.hasStaticShape() ||
        st.getDimSize(0) != d.n || !isa<FloatType>(st.getElementType()))
      return false;
    d.blocks = st.getDimSize(1);
    AffineExpr e = op.getIndexingMapsArray()[3].getResult(1);
    d.groupsPerBlock = 1;
    if (auto bin = dyn_cast<AffineBinaryOpExpr>(e);
        bin && bin.getKind() == AffineExprKind::FloorDiv)
      if (auto c = dyn_cast<AffineConstantExpr>(bin.getRHS()))
        d.groupsPerBlock = c.getValue();
  }
  if (op.getIndexingMapsArray() !=
      quench::getSparseMatmulIndexingMaps(op.getContext(), nb,
                                          d.groupsPerBlock))
    return false;
  if (!d.quantized)
    d.groupsPerBlock = d.groups;
  return true;
}

/// The raw row-major bytes of a constant operand (a view of its data, or
/// `storage` filled with a splat's expansion), or std::nullopt.
std::optional<ArrayRef<char>> constantBytes(Value v,
                                            std::vector<char> &storage) {
  // The lowering views the values [N, S] as [N, G, keep]: same bytes.
  if (auto expand = v.getDefiningOp<tensor::ExpandShapeOp>())
    v = expand.getSrc();
  auto cst = v.getDefiningOp<arith::ConstantOp>();
  auto attr = cst ? dyn_cast<ElementsAttr>(cst.getValue()) : ElementsAttr();
  if (!attr)
    return std::nullopt;
  if (auto dense = dyn_cast<DenseElementsAttr>(attr);
      dense && dense.isSplat()) {
    ArrayRef<char> one = dense.getRawData();
    if (quench::getStorageBytesPerElement(dense.getElementType()) !=
        int64_t(one.size()))
      return std::nullopt;
    storage.clear();
    for (int64_t i = 0, e = dense.getNumElements(); i < e; ++i)
      storage.insert(storage.end(), one.begin(), one.end());
    return ArrayRef<char>(storage);
  }
  return quench::getRawConstantData(attr);
}

Value makeConstant(RewriterBase &rw, Location loc, RankedTensorType type,
                   ArrayRef<char> data, StringRef name) {
  return arith::ConstantOp::create(
      rw, loc,
      cast<TypedAttr>(quench::createConstantAttr(type, data, name)));
}

/// [N, rest] row-major elements of `eb` bytes -> [ceil(N / nr), rest, nr],
/// zero padded.
std::vector<char> panelRows(ArrayRef<char> src, int64_t n, int64_t rest,
                            int64_t eb, int64_t nr) {
  int64_t panels = llvm::divideCeil(n, nr);
  std::vector<char> out(panels * rest * nr * eb, 0);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t e = 0; e < rest; ++e)
      std::memcpy(&out[((r / nr * rest + e) * nr + r % nr) * eb],
                  &src[(r * rest + e) * eb], eb);
  return out;
}

/// Re-lays out values, indices and scales in panels (null values when an
/// operand is not a readable constant).
bool buildPanels(RewriterBase &rw, linalg::GenericOp op, SparseOperands &d) {
  Location loc = op.getLoc();
  Value valsIn = op.getDpsInputs()[1], idxIn = op.getDpsInputs()[2];
  std::vector<char> valStorage, idxStorage, scaleStorage;
  auto vals = constantBytes(valsIn, valStorage),
       idx = constantBytes(idxIn, idxStorage);
  auto vt = cast<RankedTensorType>(valsIn.getType());
  int64_t eb = d.quantized ? 1 : 4;
  if (!vals || !idx || int64_t(vals->size()) != d.n * d.slots * eb ||
      int64_t(idx->size()) != d.n * d.slots)
    return false;
  int64_t panels = llvm::divideCeil(d.n, d.nr);
  std::optional<ArrayRef<char>> scales;
  Type scaleType;
  if (d.quantized) {
    Value s = op.getDpsInputs()[3];
    scaleType = cast<RankedTensorType>(s.getType()).getElementType();
    scales = constantBytes(s, scaleStorage);
    int64_t sb = quench::getStorageBytesPerElement(scaleType);
    if (!scales || sb == 0 || int64_t(scales->size()) != d.n * d.blocks * sb)
      return false;
    d.scales = makeConstant(
        rw, loc, RankedTensorType::get({panels, d.blocks, d.nr}, scaleType),
        panelRows(*scales, d.n, d.blocks, sb, d.nr), "quench_sparse_scales");
  }
  if (!d.nibbles) {
    d.vals = makeConstant(
        rw, loc,
        RankedTensorType::get({panels, d.groups, d.keep, d.nr},
                              vt.getElementType()),
        panelRows(*vals, d.n, d.slots, eb, d.nr), "quench_sparse_values");
  } else {
    // Nibbles: slot 2p low, 2p + 1 high, per lane; the code + 8 for the
    // table lookup of 16 lanes, else two's complement.
    int64_t pairs = (d.keep + 1) / 2;
    int bias = d.lanes == 16 ? 8 : 0;
    std::vector<char> packed(panels * d.groups * pairs * d.nr, 0);
    for (int64_t r = 0; r < d.n; ++r)
      for (int64_t s = 0; s < d.slots; ++s) {
        int v = static_cast<int8_t>((*vals)[r * d.slots + s]);
        if (v < -8 || v > 7)
          return false;
        int64_t g = s / d.keep, j = s % d.keep;
        char &byte = packed[((r / d.nr * d.groups + g) * pairs + j / 2) * d.nr +
                            r % d.nr];
        byte = static_cast<char>(static_cast<uint8_t>(byte) |
                                 (((v + bias) & 15) << (j % 2 * 4)));
      }
    d.vals = makeConstant(
        rw, loc,
        RankedTensorType::get({panels, d.groups, pairs, d.nr},
                              rw.getI8Type()),
        packed, "quench_sparse_values");
  }
  // Index words: lane l of vector v has its field at bit l * indexBits of
  // the vector's words.
  std::vector<uint32_t> words(panels * d.slots * d.nv * d.words, 0);
  for (int64_t r = 0; r < d.n; ++r)
    for (int64_t s = 0; s < d.slots; ++s) {
      int64_t c = r % d.nr, v = c / d.lanes, l = c % d.lanes;
      int64_t bit = l * d.indexBits;
      uint32_t field = static_cast<uint8_t>((*idx)[r * d.slots + s]);
      words[((r / d.nr * d.slots + s) * d.nv + v) * d.words + bit / 32] |=
          field << (bit % 32);
    }
  std::vector<char> bytes(words.size() * 4);
  std::memcpy(bytes.data(), words.data(), bytes.size());
  d.idx = makeConstant(
      rw, loc,
      RankedTensorType::get({panels, d.groups, d.keep, d.nv, d.words},
                            rw.getI32Type()),
      bytes, "quench_sparse_index_words");
  return true;
}

/// The int16 form's panels (2:4 4-bit codes, two groups = 8 inputs per
/// step, 16 lanes): per (panel, step, vector) 32 bytes of codes (code + 8
/// per nibble) in the order of the expanded 64-byte vector, whose byte k =
/// 4 l + 2 h + j holds lane l's code of group h of the step, slot j: byte
/// k < 32 of the panel holds code k in its low nibble and code k + 32 in
/// its high one, so that the 32 bytes broadcast to both halves, the upper
/// half shifted right by 4 and masked give the codes in one pass; and 16
/// index bytes, two 64-bit
/// planes of the low and the high bits of the 64 indices (bit 4 l + 2 h +
/// j: lane l, group h of the step, slot j), so that two masked byte
/// operations give the index bytes in the codes' order. Padding
/// lanes get code 0 (nibble 8). Reads the unpacked values and indices of
/// the generic; false when they are not readable constants.
bool buildInt16Panels(RewriterBase &rw, linalg::GenericOp op,
                      SparseOperands &d) {
  Location loc = op.getLoc();
  std::vector<char> valStorage, idxStorage, scaleStorage;
  auto vals = constantBytes(op.getDpsInputs()[1], valStorage),
       idx = constantBytes(op.getDpsInputs()[2], idxStorage);
  if (!vals || !idx || int64_t(vals->size()) != d.n * d.slots ||
      int64_t(idx->size()) != d.n * d.slots)
    return false;
  Value s = op.getDpsInputs()[3];
  Type scaleType = cast<RankedTensorType>(s.getType()).getElementType();
  auto scales = constantBytes(s, scaleStorage);
  int64_t sb = quench::getStorageBytesPerElement(scaleType);
  if (!scales || sb == 0 || int64_t(scales->size()) != d.n * d.blocks * sb)
    return false;
  int64_t panels = llvm::divideCeil(d.n, d.nr);
  std::vector<char> codes(panels * d.steps * d.nv * 32, char(0x88));
  std::vector<char> ib(panels * d.steps * d.nv * 16, 0);
  if (d.expand) {
    // Masks: bit 4 l + t of word h set where lane l keeps input t of group
    // h; the kept codes of group h in the nibbles h of bytes 2 l + j.
    // Padding lanes keep inputs 0 and 1 with code 0 (nibble 8).
    std::vector<uint64_t> masks(panels * d.steps * d.nv * 2, 0);
    for (int64_t r = 0; r < panels * d.nr; ++r) {
      int64_t c = r % d.nr, v = c / 16, l = c % 16;
      for (int64_t st = 0; st < d.steps; ++st) {
        int64_t base = (r / d.nr * d.steps + st) * d.nv + v;
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t j = 0; j < 2; ++j) {
            int64_t slot = (2 * st + h) * 2 + j;
            int code = 0, index = static_cast<int>(j);
            if (r < d.n) {
              code = static_cast<int8_t>((*vals)[r * d.slots + slot]);
              index = static_cast<uint8_t>((*idx)[r * d.slots + slot]);
            }
            if (code < -8 || code > 7 || index > 3)
              return false;
            masks[base * 2 + h] |= uint64_t(1) << (4 * l + index);
            char &cb = codes[base * 32 + 2 * l + j];
            cb = static_cast<char>((static_cast<uint8_t>(cb) &
                                    ~(15 << (4 * h))) |
                                   ((code + 8) << (4 * h)));
          }
      }
    }
    for (uint64_t m : masks)
      if (llvm::popcount(m) != 32)
        return false; // indices not distinct
    std::vector<char> mb(masks.size() * 8);
    std::memcpy(mb.data(), masks.data(), mb.size());
    d.idx = makeConstant(
        rw, loc,
        RankedTensorType::get({panels, d.steps, d.nv, 2}, rw.getI64Type()),
        mb, "quench_sparse_masks");
  }
  for (int64_t r = 0; r < d.n && !d.expand; ++r) {
    int64_t c = r % d.nr, v = c / 16, l = c % 16;
    for (int64_t st = 0; st < d.steps; ++st) {
      int64_t base = (r / d.nr * d.steps + st) * d.nv + v;
      for (int64_t h = 0; h < 2; ++h) {
        for (int64_t j = 0; j < 2; ++j) {
          int64_t slot = (2 * st + h) * 2 + j;
          int code = static_cast<int8_t>((*vals)[r * d.slots + slot]);
          int index = static_cast<uint8_t>((*idx)[r * d.slots + slot]);
          if (code < -8 || code > 7 || index > 3)
            return false;
          // Byte k = 4 l + 2 h + j of the expanded vector: the low nibble
          // of stored byte k (k < 32) or the high one of byte k - 32.
          int64_t k = 4 * l + 2 * h + j;
          char &cb = codes[base * 32 + k % 32];
          int shift = k < 32 ? 0 : 4;
          cb = static_cast<char>((static_cast<uint8_t>(cb) & ~(15 << shift)) |
                                 ((code + 8) << shift));
          // Bit k of the low and the high bit plane.
          for (int64_t bit = 0; bit < 2; ++bit)
            if (index >> bit & 1)
              ib[base * 16 + 8 * bit + k / 8] |= static_cast<char>(1 << (k % 8));
        }
      }
    }
  }
  d.scales = makeConstant(
      rw, loc, RankedTensorType::get({panels, d.blocks, d.nr}, scaleType),
      panelRows(*scales, d.n, d.blocks, sb, d.nr), "quench_sparse_scales");
  d.vals = makeConstant(
      rw, loc,
      RankedTensorType::get({panels, d.steps, d.nv, 32}, rw.getI8Type()),
      codes, "quench_sparse_values");
  if (!d.expand)
    d.idx = makeConstant(
        rw, loc,
        RankedTensorType::get({panels, d.steps, d.nv, 16}, rw.getI8Type()),
        ib, "quench_sparse_index_bytes");
  return true;
}

/// The int16 activations of x [R, G, 4] per row and scale block (the
/// dense W4A16 kernel's: amax = max |x|, q = round(x * 32767 / amax) half
/// away from zero, 0 for an all-zero block): d.amax [R, blocks] f32 and
/// d.xbytes [R, steps, 16] i8, per step the high bytes of its 8 inputs'
/// q plus 128 (unsigned: (q >> 8) ^ 0x80; in the expand form the signed
/// q >> 8), then their low bytes (q & 255); the expand form also sums q
/// per row and block into d.qsum [R, blocks] i32. Linalg generics, left to
/// the tile pass.
void buildInt16Activations(RewriterBase &rw, Location loc,
                           SparseOperands &d) {
  MLIRContext *ctx = rw.getContext();
  Type f32 = rw.getF32Type(), i8 = rw.getI8Type(), i32 = rw.getI32Type();
  auto xt = cast<RankedTensorType>(d.x.getType());
  OpFoldResult rows = tensor::getMixedSize(rw, loc, d.x, 0);
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  auto par = utils::IteratorType::parallel;
  auto red = utils::IteratorType::reduction;
  int64_t gpb = 2 * d.stepsPerBlock;
  // amax over (r, b, g in block, t) of x viewed as [R, blocks, gpb, 4].
  SmallVector<OpFoldResult> xSizes{rows, rw.getIndexAttr(d.blocks),
                                   rw.getIndexAttr(gpb), rw.getIndexAttr(4)};
  Value xb = tensor::ExpandShapeOp::create(
      rw, loc,
      RankedTensorType::get({xt.getDimSize(0), d.blocks, gpb, 4}, f32), d.x,
      ArrayRef<ReassociationIndices>{{0}, {1, 2}, {3}}, xSizes);
  Value empty = tensor::EmptyOp::create(
      rw, loc, ArrayRef<OpFoldResult>{rows, rw.getIndexAttr(d.blocks)}, f32);
  Value zero = arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(0));
  Value init = linalg::FillOp::create(rw, loc, zero, empty).getResult(0);
  d.amax =
      linalg::GenericOp::create(
          rw, loc,
          TypeRange{RankedTensorType::get({xt.getDimSize(0), d.blocks}, f32)},
          ValueRange{xb}, ValueRange{init},
          SmallVector<AffineMap>{
              AffineMap::getMultiDimIdentityMap(4, ctx),
              AffineMap::get(4, 0, {dim(0), dim(1)}, ctx)},
          SmallVector<utils::IteratorType>{par, par, red, red},
          [&](OpBuilder &b, Location l, ValueRange a) {
            Value v = math::AbsFOp::create(b, l, a[0]);
            linalg::YieldOp::create(
                b, l, (Value)arith::MaximumFOp::create(b, l, a[1], v));
          })
          .getResult(0);
  // q of x and its block's amax (the dense kernel's rounding).
  auto quantize = [&](OpBuilder &b, Location l, Value x, Value amax) {
    auto cf = [&](float c) -> Value {
      return arith::ConstantOp::create(b, l, b.getF32FloatAttr(c));
    };
    Value inv = arith::SelectOp::create(
        b, l,
        arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, amax, cf(0)),
        arith::DivFOp::create(b, l, cf(kInt16Max), amax), cf(0));
    Value half = arith::SelectOp::create(
        b, l, arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, cf(0)),
        cf(-0.5f), cf(0.5f));
    return (Value)arith::FPToSIOp::create(
        b, l, i32,
        arith::AddFOp::create(b, l, arith::MulFOp::create(b, l, x, inv),
                              half));
  };
  if (d.expand) {
    // qsum over (r, b, g in block, t): the block's Σ q.
    Value zi = arith::ConstantOp::create(rw, loc, rw.getI32IntegerAttr(0));
    Value sumInit =
        linalg::FillOp::create(
            rw, loc, zi,
            tensor::EmptyOp::create(
                rw, loc,
                ArrayRef<OpFoldResult>{rows, rw.getIndexAttr(d.blocks)}, i32)
                .getResult())
            .getResult(0);
    d.qsum =
        linalg::GenericOp::create(
            rw, loc,
            TypeRange{
                RankedTensorType::get({xt.getDimSize(0), d.blocks}, i32)},
            ValueRange{xb, d.amax}, ValueRange{sumInit},
            SmallVector<AffineMap>{
                AffineMap::getMultiDimIdentityMap(4, ctx),
                AffineMap::get(4, 0, {dim(0), dim(1)}, ctx),
                AffineMap::get(4, 0, {dim(0), dim(1)}, ctx)},
            SmallVector<utils::IteratorType>{par, par, red, red},
            [&](OpBuilder &b, Location l, ValueRange a) {
              linalg::YieldOp::create(
                  b, l,
                  (Value)arith::AddIOp::create(b, l, a[2],
                                               quantize(b, l, a[0], a[1])));
            })
            .getResult(0);
  }
  // Bytes over (r, s, e): input 8 s + e mod 8 = x[r, 2 s + (e mod 8) / 4,
  // e mod 4]; e < 8 the high byte.
  AffineExpr e8 = dim(2) % 8;
  Value bytesInit = tensor::EmptyOp::create(
      rw, loc,
      ArrayRef<OpFoldResult>{rows, rw.getIndexAttr(d.steps),
                             rw.getIndexAttr(16)},
      i8);
  d.xbytes =
      linalg::GenericOp::create(
          rw, loc,
          TypeRange{RankedTensorType::get({xt.getDimSize(0), d.steps, 16}, i8)},
          ValueRange{d.x, d.amax}, ValueRange{bytesInit},
          SmallVector<AffineMap>{
              AffineMap::get(3, 0,
                             {dim(0), dim(1) * 2 + e8.floorDiv(4), dim(2) % 4},
                             ctx),
              AffineMap::get(3, 0,
                             {dim(0), dim(1).floorDiv(d.stepsPerBlock)}, ctx),
              AffineMap::getMultiDimIdentityMap(3, ctx)},
          SmallVector<utils::IteratorType>{par, par, par},
          [&](OpBuilder &b, Location l, ValueRange a) {
            auto ci = [&](int32_t c) -> Value {
              return arith::ConstantOp::create(b, l, b.getI32IntegerAttr(c));
            };
            Value q = quantize(b, l, a[0], a[1]);
            Value hi = arith::ShRSIOp::create(b, l, q, ci(8));
            if (!d.expand)
              hi = arith::XOrIOp::create(b, l, hi, ci(128));
            Value e = arith::IndexCastOp::create(
                b, l, i32, linalg::IndexOp::create(b, l, 2));
            Value isHigh =
                arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, e, ci(8));
            Value v = arith::SelectOp::create(b, l, isHigh, hi, q);
            linalg::YieldOp::create(b, l,
                                    (Value)arith::TruncIOp::create(b, l, i8, v));
          })
          .getResult(0);
}

/// Builds one register tile: rows [row, row + mr), the nr output features
/// at task-local column `col` (global `colBase + col`, a panel start).
class TileEmitter {
public:
  TileEmitter(OpBuilder &b, Location loc, const SparseOperands &d)
      : b(b), loc(loc), d(d) {
    f32 = b.getF32Type();
    vf = VectorType::get({d.lanes}, f32);
    vi32 = VectorType::get({d.lanes}, b.getI32Type());
  }

  Value emit(Value out, Value row, Value colBase, Value col, int64_t mr,
             bool inBounds) {
    if (d.int16)
      return emitInt16(out, row, colBase, col, mr, inBounds);
    Tile t = beginTile(out, row, colBase, col, mr, d.lanes, inBounds);
    Value panel = t.panel;
    SmallVector<Value> &rows = t.rows, &init = t.init;
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(vf));
    SmallVector<Value> zeros(init.size(), zero);

    // Groups [g0, g1) into the sums `acc`.
    auto groupLoop = [&](OpBuilder &ob, Value g0, Value g1,
                         ValueRange acc) -> ValueRange {
      auto loop = scf::ForOp::create(
          ob, loc, g0, g1, idx(ob, 1), acc,
          [&](OpBuilder &gb, Location, Value g, ValueRange sums) {
            SmallVector<Value> p(sums);
            step(gb, g, panel, rows, p);
            scf::YieldOp::create(gb, loc, p);
          });
      return loop.getResults();
    };
    ValueRange result;
    if (!d.quantized) {
      result = groupLoop(b, idx(b, 0), idx(b, d.groups), init);
    } else {
      auto blockLoop = scf::ForOp::create(
          b, loc, idx(b, 0), idx(b, d.blocks), idx(b, 1), init,
          [&](OpBuilder &bb, Location, Value blk, ValueRange accs) {
            Value g0 = arith::MulIOp::create(bb, loc, blk,
                                             idx(bb, d.groupsPerBlock));
            Value g1 = arith::MinUIOp::create(
                bb, loc, add(bb, g0, d.groupsPerBlock), idx(bb, d.groups));
            ValueRange part = groupLoop(bb, g0, g1, zeros);
            SmallVector<Value> acc(accs);
            for (int64_t v = 0; v < d.nv; ++v) {
              Type st = getElementTypeOrSelf(d.scales.getType());
              Value s = read(bb, VectorType::get({d.lanes}, st), d.scales,
                             {panel, blk, idx(bb, v * d.lanes)}, true);
              if (st != f32)
                s = arith::ExtFOp::create(bb, loc, vf, s);
              for (int64_t i = 0; i < mr; ++i)
                acc[i * d.nv + v] = vector::FMAOp::create(
                    bb, loc, s, part[i * d.nv + v], acc[i * d.nv + v]);
            }
            scf::YieldOp::create(bb, loc, acc);
          });
      result = blockLoop.getResults();
    }
    return endTile(out, t, result, inBounds);
  }

private:
  /// The int16 form's tile (see buildInt16Panels): per step of two groups
  /// and vector, the 32 code bytes expanded to 64 signed codes (a
  /// broadcast load, vpsrlvq of the upper half, mask, minus 8), the index
  /// bytes from the
  /// two bit planes (two masked byte operations on the group offsets 0 and
  /// 4), and the codes' sum (vpdpbusd with ones); per row the step's 8 high
  /// and 8 low activation bytes, each broadcast as a vpshufb table,
  /// gathered by the indices, and two vpdpbusd. Per block t = 256 (Σ c h' - 128 Σ c) + Σ c l = Σ c q
  /// exactly, and acc += (scale * amax / 32767) * t as the dense kernel.
  Value emitInt16(Value out, Value row, Value colBase, Value col, int64_t mr,
                  bool inBounds) {
    Tile t = beginTile(out, row, colBase, col, mr, 16, inBounds);
    Value panel = t.panel;
    SmallVector<Value> &rows = t.rows, &init = t.init;
    Type i8 = b.getI8Type();
    auto vb = VectorType::get({64}, i8);
    auto splat = [&](OpBuilder &ob, VectorType t, int64_t c) -> Value {
      return arith::ConstantOp::create(
          ob, loc,
          DenseElementsAttr::get(
              t, IntegerAttr::get(t.getElementType(), APInt(
                                      t.getElementTypeBitWidth(), c, true))));
    };
    auto dot = [&](OpBuilder &ob, Value acc, Value u8, Value s8) -> Value {
      return func::CallOp::create(ob, loc, kDot512, TypeRange{vi32},
                                  ValueRange{acc, u8, s8})
          .getResult(0);
    };
    const int64_t tileVecs = mr * d.nv;
    Value zeroI = splat(b, vi32, 0);
    // Iteration values: hi sums, lo sums (tileVecs each), code sums (nv;
    // not updated in the expand form).
    SmallVector<Value> zeros(2 * tileVecs + d.nv, zeroI);
    SmallVector<int64_t> both32;
    for (int64_t q = 0; q < 64; ++q)
      both32.push_back(q % 32);
    auto vq = VectorType::get({8}, b.getI64Type());
    Value halfShift = arith::ConstantOp::create(
        b, loc,
        DenseElementsAttr::get(vq, ArrayRef<int64_t>{0, 0, 0, 0, 4, 4, 4, 4}));
    // The expand form's step: per vector the two groups' kept codes (low
    // and high nibbles of the 32 bytes: a mask, a shift) expanded to their
    // dense positions with the zero point 8 elsewhere (two vpexpandb); per
    // row the four activation words broadcast and four vpdpbusd: Σ (c + 8)
    // h with the codes unsigned and the high bytes signed, Σ l (c + 8)
    // with the low bytes unsigned.
    auto expandStep = [&](OpBuilder &sb, Value st, SmallVectorImpl<Value> &p) {
      auto v32 = VectorType::get({32}, i8);
      auto vm = VectorType::get({64}, sb.getI1Type());
      // The 32 codes as the low half of a 64-byte vector (upper half
      // poison: no instruction).
      SmallVector<int64_t> widen;
      for (int64_t q = 0; q < 64; ++q)
        widen.push_back(q < 32 ? q : vector::ShuffleOp::kPoisonIndex);
      Value fill = splat(sb, vb, 8);
      SmallVector<Value> codes; // [v][h]
      for (int64_t v = 0; v < d.nv; ++v) {
        Value vv = idx(sb, v);
        Value c32 = read(sb, v32, d.vals, {panel, st, vv, idx(sb, 0)}, true);
        Value nib[2] = {
            arith::AndIOp::create(sb, loc, c32, splat(sb, v32, 0x0F)),
            arith::ShRUIOp::create(sb, loc, c32, splat(sb, v32, 4))};
        for (int64_t h = 0; h < 2; ++h) {
          Value m = tensor::ExtractOp::create(sb, loc, d.idx,
                                              ValueRange{panel, st, vv,
                                                         idx(sb, h)});
          Value mv = vector::BitCastOp::create(
              sb, loc, vm,
              vector::BroadcastOp::create(
                  sb, loc, VectorType::get({1}, m.getType()), m));
          Value src = vector::ShuffleOp::create(sb, loc, nib[h], nib[h], widen);
          codes.push_back(func::CallOp::create(sb, loc, kExpand512,
                                               TypeRange{vb},
                                               ValueRange{src, fill, mv})
                              .getResult(0));
        }
      }
      for (int64_t i = 0; i < mr; ++i) {
        // Activation words: high bytes of groups 0 and 1, low bytes.
        Value words[4];
        for (int64_t w = 0; w < 4; ++w) {
          Value x4 = read(sb, VectorType::get({4}, i8), d.xbytes,
                          {rows[i], st, idx(sb, 4 * w)}, true);
          Value x1 = vector::BitCastOp::create(
              sb, loc, VectorType::get({1}, sb.getI32Type()), x4);
          words[w] = vector::BitCastOp::create(
              sb, loc, vb, vector::BroadcastOp::create(sb, loc, vi32,
                                                       vector::ExtractOp::create(
                                                           sb, loc, x1, 0)));
        }
        for (int64_t v = 0; v < d.nv; ++v)
          for (int64_t h = 0; h < 2; ++h) {
            Value c = codes[2 * v + h];
            p[i * d.nv + v] = dot(sb, p[i * d.nv + v], c, words[h]);
            p[tileVecs + i * d.nv + v] =
                dot(sb, p[tileVecs + i * d.nv + v], words[2 + h], c);
          }
      }
    };
    auto blockLoop = scf::ForOp::create(
        b, loc, idx(b, 0), idx(b, d.blocks), idx(b, 1), init,
        [&](OpBuilder &bb, Location, Value blk, ValueRange accs) {
          Value s0 = arith::MulIOp::create(bb, loc, blk,
                                           idx(bb, d.stepsPerBlock));
          auto stepLoop = scf::ForOp::create(
              bb, loc, s0, add(bb, s0, d.stepsPerBlock), idx(bb, 1), zeros,
              [&](OpBuilder &sb, Location, Value st, ValueRange it) {
                SmallVector<Value> p(it);
                if (d.expand) {
                  expandStep(sb, st, p);
                  scf::YieldOp::create(sb, loc, p);
                  return;
                }
                SmallVector<Value> codes, ih;
                for (int64_t v = 0; v < d.nv; ++v) {
                  Value vv = idx(sb, v);
                  // The 32 code bytes in both halves (a broadcast load),
                  // the upper half shifted by 4 (vpsrlvq), the nibbles
                  // masked, minus 8: 3 operations for 64 codes.
                  Value c32 = read(sb, VectorType::get({32}, i8), d.vals,
                                   {panel, st, vv, idx(sb, 0)}, true);
                  Value both =
                      vector::ShuffleOp::create(sb, loc, c32, c32, both32);
                  Value q = arith::ShRUIOp::create(
                      sb, loc, vector::BitCastOp::create(sb, loc, vq, both),
                      halfShift);
                  Value nib = arith::AndIOp::create(
                      sb, loc, vector::BitCastOp::create(sb, loc, vb, q),
                      splat(sb, vb, 0x0F));
                  Value c = arith::SubIOp::create(sb, loc, nib,
                                                  splat(sb, vb, 8));
                  codes.push_back(c);
                  p[2 * tileVecs + v] =
                      dot(sb, p[2 * tileVecs + v], splat(sb, vb, 1), c);
                  // Index bytes: 4 for the second group's bytes (b >= 2
                  // of each lane), + 1 where the low plane is set, + 2
                  // where the high one is.
                  auto vm = VectorType::get({64}, sb.getI1Type());
                  auto plane = [&](int64_t at) -> Value {
                    return vector::BitCastOp::create(
                        sb, loc, vm,
                        read(sb, VectorType::get({8}, i8), d.idx,
                             {panel, st, vv, idx(sb, at)}, true));
                  };
                  SmallVector<int8_t> off, off1;
                  for (int64_t q = 0; q < 64; ++q) {
                    off.push_back(q % 4 >= 2 ? 4 : 0);
                    off1.push_back(off.back() + 1);
                  }
                  auto bytesOf = [&](ArrayRef<int8_t> c) -> Value {
                    return arith::ConstantOp::create(
                        sb, loc, DenseElementsAttr::get(vb, c));
                  };
                  Value x = arith::SelectOp::create(sb, loc, plane(0),
                                                    bytesOf(off1),
                                                    bytesOf(off));
                  x = arith::SelectOp::create(
                      sb, loc, plane(8),
                      arith::AddIOp::create(sb, loc, x, splat(sb, vb, 2)), x);
                  ih.push_back(x);
                }
                SmallVector<int64_t> rep8;
                for (int64_t q = 0; q < 64; ++q)
                  rep8.push_back(q % 8);
                for (int64_t i = 0; i < mr; ++i) {
                  // The step's 8 high bytes, and its 8 low bytes, in every
                  // 8 bytes (vpshufb reads indices 0-7 only).
                  auto tableAt = [&](int64_t at) -> Value {
                    Value t8 = read(sb, VectorType::get({8}, i8), d.xbytes,
                                    {rows[i], st, idx(sb, at)}, true);
                    return vector::ShuffleOp::create(sb, loc, t8, t8, rep8);
                  };
                  Value table = tableAt(0), tableLo = tableAt(8);
                  for (int64_t v = 0; v < d.nv; ++v) {
                    Value gh = func::CallOp::create(
                                   sb, loc, kShuffleBytes512, TypeRange{vb},
                                   ValueRange{table, ih[v]})
                                   .getResult(0);
                    Value gl = func::CallOp::create(
                                   sb, loc, kShuffleBytes512, TypeRange{vb},
                                   ValueRange{tableLo, ih[v]})
                                   .getResult(0);
                    p[i * d.nv + v] = dot(sb, p[i * d.nv + v], gh, codes[v]);
                    p[tileVecs + i * d.nv + v] =
                        dot(sb, p[tileVecs + i * d.nv + v], gl, codes[v]);
                  }
                }
                scf::YieldOp::create(sb, loc, p);
              });
          SmallVector<Value> acc(accs), part(stepLoop.getResults());
          SmallVector<Value> sxs, qs;
          for (int64_t i = 0; i < mr; ++i) {
            Value am = tensor::ExtractOp::create(bb, loc, d.amax,
                                                 ValueRange{rows[i], blk});
            Value sx = arith::MulFOp::create(
                bb, loc, am,
                arith::ConstantOp::create(bb, loc,
                                          bb.getF32FloatAttr(1.0f / kInt16Max)));
            sxs.push_back(vector::BroadcastOp::create(bb, loc, vf, sx));
            if (d.expand) {
              Value q8 = arith::ShLIOp::create(
                  bb, loc,
                  tensor::ExtractOp::create(bb, loc, d.qsum,
                                            ValueRange{rows[i], blk}),
                  arith::ConstantOp::create(bb, loc, bb.getI32IntegerAttr(3)));
              qs.push_back(vector::BroadcastOp::create(bb, loc, vi32, q8));
            }
          }
          for (int64_t v = 0; v < d.nv; ++v) {
            Type st = getElementTypeOrSelf(d.scales.getType());
            Value sc = read(bb, VectorType::get({16}, st), d.scales,
                            {panel, blk, idx(bb, v * 16)}, true);
            if (st != f32)
              sc = arith::ExtFOp::create(bb, loc, vf, sc);
            // t = 256 (H - 128 Σ c) + L, or in the expand form 256 H + L
            // - 8 Σ q (codes + 8 against every input of the block).
            Value csum = arith::ShLIOp::create(bb, loc, part[2 * tileVecs + v],
                                               splat(bb, vi32, 7));
            for (int64_t i = 0; i < mr; ++i) {
              Value t = arith::AddIOp::create(
                  bb, loc,
                  arith::ShLIOp::create(
                      bb, loc,
                      d.expand ? part[i * d.nv + v]
                               : (Value)arith::SubIOp::create(
                                     bb, loc, part[i * d.nv + v], csum),
                      splat(bb, vi32, 8)),
                  part[tileVecs + i * d.nv + v]);
              if (d.expand)
                t = arith::SubIOp::create(bb, loc, t, qs[i]);
              acc[i * d.nv + v] = vector::FMAOp::create(
                  bb, loc, arith::MulFOp::create(bb, loc, sc, sxs[i]),
                  arith::SIToFPOp::create(bb, loc, vf, t), acc[i * d.nv + v]);
            }
          }
          scf::YieldOp::create(bb, loc, acc);
        });
    ValueRange result = blockLoop.getResults();
    return endTile(out, t, result, inBounds);
  }

  /// One group g: every slot's values times the permuted x of every row.
  void step(OpBuilder &ob, Value g, Value panel, ArrayRef<Value> rows,
            SmallVectorImpl<Value> &p) {
    // The group's x values repeated over the lanes: the permute's table.
    SmallVector<int64_t> repeat;
    for (int64_t l = 0; l < d.lanes; ++l)
      repeat.push_back(l % d.group);
    auto vg = VectorType::get({d.group}, f32);
    SmallVector<Value> tables;
    for (Value r : rows) {
      Value xs = read(ob, vg, d.x, {r, g, idx(ob, 0)}, true);
      tables.push_back(vector::ShuffleOp::create(ob, loc, xs, xs, repeat));
    }
    // Per lane: the right shift that brings its index field to bit 0.
    SmallVector<int32_t> shifts;
    for (int64_t l = 0; l < d.lanes; ++l)
      shifts.push_back(static_cast<int32_t>((l * d.indexBits) % 32));
    Value shiftVec = arith::ConstantOp::create(
        ob, loc, DenseElementsAttr::get(vi32, ArrayRef<int32_t>(shifts)));
    StringRef permute = d.lanes == 16 ? kPermute512 : kPermute256;
    Type valType = getElementTypeOrSelf(d.vals.getType());
    // 4-bit codes: the sign-extended byte vector of slot pair (j / 2, v).
    SmallVector<Value> pairBytes(((d.keep + 1) / 2) * d.nv);
    auto splat32 = [&](int32_t c) -> Value {
      return arith::ConstantOp::create(
          ob, loc, DenseElementsAttr::get(vi32, ArrayRef<int32_t>(c)));
    };
    for (int64_t j = 0; j < d.keep; ++j)
      for (int64_t v = 0; v < d.nv; ++v) {
        Value jj = idx(ob, j), vv = idx(ob, v);
        Value index;
        if (d.words == 1) {
          Value w = tensor::ExtractOp::create(
              ob, loc, d.idx, ValueRange{panel, g, jj, vv, idx(ob, 0)});
          index = vector::BroadcastOp::create(ob, loc, vi32, w);
        } else {
          auto vw = VectorType::get({d.words}, ob.getI32Type());
          Value w = read(ob, vw, d.idx, {panel, g, jj, vv, idx(ob, 0)}, true);
          SmallVector<int64_t> pick;
          for (int64_t l = 0; l < d.lanes; ++l)
            pick.push_back(l * d.indexBits / 32);
          index = vector::ShuffleOp::create(ob, loc, w, w, pick);
        }
        index = arith::ShRUIOp::create(ob, loc, index, shiftVec);
        Value wv;
        if (d.nibbles) {
          Value &bytes = pairBytes[j / 2 * d.nv + v];
          if (!bytes)
            bytes = arith::ExtSIOp::create(
                ob, loc, vi32,
                read(ob, VectorType::get({d.lanes}, valType), d.vals,
                     {panel, g, idx(ob, j / 2), idx(ob, v * d.lanes)}, true));
          Value w = bytes;
          if (d.lanes == 16) {
            // table[low 4 bits]: the low nibble, or the high one >> 4.
            if (j % 2 == 1)
              w = arith::ShRUIOp::create(ob, loc, w, splat32(4));
            wv = func::CallOp::create(ob, loc, permute, TypeRange{vf},
                                      ValueRange{codeTable(ob), w})
                     .getResult(0);
          } else {
            // Low nibble: (b << 28) >> 28; high: b >> 4 (arithmetic).
            if (j % 2 == 0)
              w = arith::ShLIOp::create(ob, loc, w, splat32(28));
            w = arith::ShRSIOp::create(ob, loc, w,
                                       splat32(j % 2 == 0 ? 28 : 4));
            wv = arith::SIToFPOp::create(ob, loc, vf, w);
          }
        } else {
          wv = read(ob, VectorType::get({d.lanes}, valType), d.vals,
                    {panel, g, jj, idx(ob, v * d.lanes)}, true);
        }
        if (d.quantized && !d.nibbles)
          wv = arith::SIToFPOp::create(
              ob, loc, vf, arith::ExtSIOp::create(ob, loc, vi32, wv));
        for (size_t i = 0; i < rows.size(); ++i) {
          Value xv = func::CallOp::create(ob, loc, permute, TypeRange{vf},
                                          ValueRange{tables[i], index})
                         .getResult(0);
          p[i * d.nv + v] =
              vector::FMAOp::create(ob, loc, xv, wv, p[i * d.nv + v]);
        }
      }
  }

  /// A tile's output rows and columns (columns `colStep` apart), its
  /// weight panel and the output vectors it accumulates onto.
  struct Tile {
    Value panel;
    SmallVector<Value> rows, ocols, init;
  };
  Tile beginTile(Value out, Value row, Value colBase, Value col, int64_t mr,
                 int64_t colStep, bool inBounds) {
    Tile t;
    t.panel = arith::DivUIOp::create(
        b, loc, arith::AddIOp::create(b, loc, colBase, col), idx(b, d.nr));
    for (int64_t i = 0; i < mr; ++i)
      t.rows.push_back(add(b, row, i));
    for (int64_t v = 0; v < d.nv; ++v)
      t.ocols.push_back(add(b, col, v * colStep));
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t v = 0; v < d.nv; ++v)
        t.init.push_back(read(b, vf, out, {t.rows[i], t.ocols[v]}, inBounds));
    return t;
  }
  /// Writes the tile's sums `result` (row-major, d.nv per row) into `out`.
  Value endTile(Value out, const Tile &t, ValueRange result, bool inBounds) {
    for (size_t i = 0; i < t.rows.size(); ++i)
      for (int64_t v = 0; v < d.nv; ++v)
        out = vector::TransferWriteOp::create(
                  b, loc, result[i * d.nv + v], out,
                  ValueRange{t.rows[i], t.ocols[v]}, ArrayRef<bool>{inBounds})
                  .getResult();
    return out;
  }

  Value idx(OpBuilder &ob, int64_t v) {
    return arith::ConstantIndexOp::create(ob, loc, v);
  }
  /// The floats of the 4-bit codes + 8: [-8, -7, ..., 7] (16 lanes).
  Value codeTable(OpBuilder &ob) {
    SmallVector<float> t;
    for (int i = 0; i < 16; ++i)
      t.push_back(float(i - 8));
    return arith::ConstantOp::create(
        ob, loc, DenseElementsAttr::get(vf, ArrayRef<float>(t)));
  }
  Value add(OpBuilder &ob, Value a, int64_t c) {
    return quench::addIndex(ob, loc, a, c);
  }
  Value read(OpBuilder &ob, VectorType t, Value src, ValueRange at,
             bool inBounds) {
    return quench::readVector(ob, loc, t, src, at, inBounds);
  }

  OpBuilder &b;
  Location loc;
  const SparseOperands &d;
  Type f32;
  VectorType vf, vi32;
};

/// Replaces `op` by the kernel; fails, changing nothing, when it does not
/// apply.
LogicalResult buildSparseMatmulKernel(RewriterBase &rw, linalg::GenericOp op,
                                      unsigned vectorBits, bool int16Dot,
                                      bool bitmaskExpand) {
  SparseOperands d;
  if ((vectorBits != 256 && vectorBits != 512) || !matchSparseMatmul(op, d))
    return failure();
  d.lanes = vectorBits / 32;
  if ((d.group != 4 && d.group != 8) || d.group > d.lanes)
    return failure();
  d.indexBits = d.group <= 4 ? 2 : 4;
  d.words = llvm::divideCeil(d.lanes * d.indexBits, 32);
  Value x = op.getDpsInputs()[0], init = op.getDpsInits()[0];
  unsigned nb = op.getNumLoops() - 4;
  auto xt = cast<RankedTensorType>(x.getType());
  // One row (decode): 4 vectors of features; more rows: mr rows share
  // each index decode and value load.
  bool oneRow = nb == 1 && xt.getDimSize(0) == 1;
  int64_t mr = oneRow ? 1 : 4;
  // The int16 form: 2:4 4-bit codes at 512 bits with VNNI, scale blocks of
  // whole steps (two groups) dividing K; the block's exact int32 sum
  // |t| <= kept * 8 * 32767 stays below 2^31.
  int64_t gpb = std::min(d.groupsPerBlock, d.groups);
  d.int16 = int16Dot && d.lanes == 16 && d.nibbles && d.group == 4 &&
            d.keep == 2 && gpb % 2 == 0 && d.groups % gpb == 0 &&
            d.groups / gpb == d.blocks && gpb * 2 < 8192;
  if (d.int16) {
    d.steps = d.groups / 2;
    d.stepsPerBlock = gpb / 2;
    // The expand form: |t| <= 256 * 4 gpb * 15 * 128 + ... as the dense
    // kernel's groups of at most 1024 inputs.
    d.expand = bitmaskExpand && 4 * gpb <= 1024;
  }
  d.nv = oneRow ? 4 : (d.lanes == 16 && !d.int16 ? 2 : 1);
  d.nr = d.nv * d.lanes;
  rw.setInsertionPoint(op);
  if (d.int16 ? !buildInt16Panels(rw, op, d) : !buildPanels(rw, op, d))
    return failure();
  Location loc = op.getLoc();
  rw.setInsertionPoint(op);
  Value out = init;
  if (nb != 1) {
    // Rows: the batch dims collapsed into one (none: one row).
    ReassociationIndices rowsX, rowsO;
    for (unsigned i = 0; i < nb; ++i) {
      rowsX.push_back(i);
      rowsO.push_back(i);
    }
    if (nb == 0) {
      x = tensor::ExpandShapeOp::create(
          rw, loc, RankedTensorType::get({1, d.groups, d.group}, rw.getF32Type()),
          x, ArrayRef<ReassociationIndices>{{0, 1}, {2}});
      out = tensor::ExpandShapeOp::create(
          rw, loc, RankedTensorType::get({1, d.n}, rw.getF32Type()), out,
          ArrayRef<ReassociationIndices>{{0, 1}});
    } else {
      x = tensor::CollapseShapeOp::create(
          rw, loc, x,
          ArrayRef<ReassociationIndices>{rowsX, {nb}, {nb + 1}});
      out = tensor::CollapseShapeOp::create(
          rw, loc, out, ArrayRef<ReassociationIndices>{rowsO, {nb}});
    }
  }
  d.x = x;
  if (d.int16)
    buildInt16Activations(rw, loc, d);
  int64_t taskCols = std::max<int64_t>(d.nr, llvm::alignTo(128, d.nr));
  bool aligned = d.n % d.nr == 0;
  auto taskBody = [&](OpBuilder &tb, const quench::ColumnTask &task) -> Value {
    auto cst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(tb, loc, v).getResult();
    };
    Value fullRows = arith::MulIOp::create(
        tb, loc, arith::DivUIOp::create(tb, loc, task.rows, cst(mr)),
        cst(mr));
    auto colLoop = scf::ForOp::create(
        tb, loc, cst(0), task.width, cst(d.nr), ValueRange{task.slice},
        [&](OpBuilder &cb, Location, Value col, ValueRange a) {
          auto main = scf::ForOp::create(
              cb, loc, cst(0), fullRows, cst(mr), a,
              [&](OpBuilder &rb, Location, Value row, ValueRange acc) {
                TileEmitter te(rb, loc, d);
                scf::YieldOp::create(
                    rb, loc,
                    te.emit(acc[0], row, task.colBase, col, mr, aligned));
              });
          Value res = main.getResult(0);
          if (mr > 1)
            res = scf::ForOp::create(
                      cb, loc, fullRows, task.rows, cst(1), ValueRange{res},
                      [&](OpBuilder &rb, Location, Value row,
                          ValueRange acc) {
                        TileEmitter te(rb, loc, d);
                        scf::YieldOp::create(
                            rb, loc,
                            te.emit(acc[0], row, task.colBase, col, 1,
                                    aligned));
                      })
                      .getResult(0);
          scf::YieldOp::create(cb, loc, res);
        });
    return colLoop.getResult(0);
  };
  Value res = quench::buildColumnTasks(rw, loc, out, d.n, taskCols, taskBody);
  res = quench::restoreLeadingDims(rw, loc, res, op.getResult(0).getType(),
                                   nb, init);
  rw.replaceOp(op, res);
  return success();
}

struct QuenchCPUSparseMatmulPass
    : public quench::impl::QuenchCPUSparseMatmulBase<
          QuenchCPUSparseMatmulPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<linalg::GenericOp> found;
    module.walk([&](linalg::GenericOp op) {
      if (op->hasAttr(quench::kSparseMatmulAttrName))
        found.push_back(op);
    });
    IRRewriter rw(&getContext());
    bool any = false;
    for (linalg::GenericOp op : found)
      any |= succeeded(buildSparseMatmulKernel(rw, op, vectorBits, int16Dot,
                                               bitmaskExpand));
    if (!any)
      return;
    MLIRContext *ctx = &getContext();
    if (vectorBits == 512 && int16Dot) {
      auto vi = VectorType::get({16}, IntegerType::get(ctx, 32));
      auto vb = VectorType::get({64}, IntegerType::get(ctx, 8));
      quench::declareIntrinsic(module, kDot512,
                               FunctionType::get(ctx, {vi, vb, vb}, {vi}));
      quench::declareIntrinsic(module, kShuffleBytes512,
                               FunctionType::get(ctx, {vb, vb}, {vb}));
      if (bitmaskExpand)
        quench::declareIntrinsic(
            module, kExpand512,
            FunctionType::get(
                ctx, {vb, vb, VectorType::get({64}, IntegerType::get(ctx, 1))},
                {vb}));
    }
    int64_t lanes = vectorBits / 32;
    auto vf = VectorType::get({lanes}, Float32Type::get(ctx));
    auto vi = VectorType::get({lanes}, IntegerType::get(ctx, 32));
    quench::declareIntrinsic(module, lanes == 16 ? kPermute512 : kPermute256,
                             FunctionType::get(ctx, {vf, vi}, {vf}));
  }
};

} // namespace
