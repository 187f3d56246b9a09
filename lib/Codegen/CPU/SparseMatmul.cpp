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
// shifts and a conversion. See docs/sparsity.md ("CPU kernel").
//
//===----------------------------------------------------------------------===//

#include "KernelUtils.h"
#include "quench/Codegen/CPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

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

struct SparseOperands {
  Value x;                  ///< [R, G, group] f32
  Value vals, idx, scales;  ///< panels (see the file comment)
  int64_t keep = 2, group = 4, groups = 1, n = 1, slots = 2;
  int64_t lanes = 8, nv = 1, nr = 8, words = 1, indexBits = 2;
  int64_t blocks = 1, groupsPerBlock = 1;
  bool quantized = false;
  bool nibbles = false; ///< 4-bit codes, two slots per panel byte
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
    Value panel = arith::DivUIOp::create(
        b, loc, arith::AddIOp::create(b, loc, colBase, col), idx(b, d.nr));
    SmallVector<Value> rows, ocols, init;
    for (int64_t i = 0; i < mr; ++i)
      rows.push_back(add(b, row, i));
    for (int64_t v = 0; v < d.nv; ++v)
      ocols.push_back(add(b, col, v * d.lanes));
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t v = 0; v < d.nv; ++v)
        init.push_back(read(b, vf, out, {rows[i], ocols[v]}, inBounds));
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
    for (int64_t i = 0; i < mr; ++i)
      for (int64_t v = 0; v < d.nv; ++v)
        out = vector::TransferWriteOp::create(
                  b, loc, result[i * d.nv + v], out,
                  ValueRange{rows[i], ocols[v]}, ArrayRef<bool>{inBounds})
                  .getResult();
    return out;
  }

private:
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
                                      unsigned vectorBits) {
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
  d.nv = oneRow ? 4 : (d.lanes == 16 ? 2 : 1);
  d.nr = d.nv * d.lanes;
  rw.setInsertionPoint(op);
  if (!buildPanels(rw, op, d))
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
      any |= succeeded(buildSparseMatmulKernel(rw, op, vectorBits));
    if (!any)
      return;
    MLIRContext *ctx = &getContext();
    int64_t lanes = vectorBits / 32;
    auto vf = VectorType::get({lanes}, Float32Type::get(ctx));
    auto vi = VectorType::get({lanes}, IntegerType::get(ctx, 32));
    quench::declareIntrinsic(module, lanes == 16 ? kPermute512 : kPermute256,
                             FunctionType::get(ctx, {vf, vi}, {vf}));
  }
};

} // namespace
