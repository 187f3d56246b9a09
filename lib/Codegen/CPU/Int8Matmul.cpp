//===- Int8Matmul.cpp - the CPU kernel of int8 x int8 -> int32 products ---===//
//
// quench.qlinear lowers its product to a generic contraction
// `acc + extsi(q) * extsi(w)` (i8 x i8 -> i32, rows x K times a constant
// weight). Vectorized as outer products on i32 lanes it costs a 32-bit
// multiply and an add per multiply-accumulate (`vpmulld` + `vpaddd`), no
// faster than the fp32 GEMM. This file replaces it, on targets with the
// integer multiply-add instructions, by an explicit kernel on tensors (scf +
// vector ops + LLVM intrinsics):
//
//   vpmaddwd (AVX2, AVX-512BW): q and w as i16, pairs of products summed
//     into i32 lanes: 2 MACs per lane and instruction, plus one vpaddd.
//   vpdpbusd (AVX-VNNI, AVX512-VNNI): four u8 x s8 products summed into
//     each i32 accumulator lane. The activations are made unsigned,
//     u = q + 128 (q xor 0x80), and the constant 128 * sum_k w[k, n] is
//     subtracted from the accumulator once:
//       sum_k q[k] w[k, n] = sum_k u[k] w[k, n] - 128 * sum_k w[k, n].
//
// Exactness. Every product and pair or quadruple sum is exact in the
// instruction (|u w| <= 255 * 128, four of them < 2^17; vpmaddwd's only
// overflow, -2^15 * -2^15 twice, needs i16 operands beyond i8's range), and
// the accumulation wraps modulo 2^32 (vpaddd, non-saturating vpdpbusd, the
// compile-time constant computed modulo 2^32): the kernel's i32 result is
// the exact sum modulo 2^32, i.e. bit-identical to the generic
// contraction's for every input. Where the exact sum fits in int32 (for
// quench.qlinear: |q| <= 127, |w| <= 128, K <= 132104, its verifier's bound)
// it is the exact sum, even when the biased sum of u w overflows on the
// way.
//
// Layout. The weight is re-laid out at compile time into panels of nr
// output columns with K in groups of g (2 for vpmaddwd, 4 for vpdpbusd)
// interleaved per column: [ceil(N / nr), ceil(K / g), nr * g] bytes, zero
// padded. One SIMD vector of weights is then `lanes` columns x g
// consecutive k, loaded with one contiguous load; the activations' g
// values at k are broadcast to every 32-bit lane. See docs/lowering.md
// ("Int8 matmul kernel").
//
// Epilogue. When the product's only user is an elementwise generic (the
// int32 -> f32 rescale, bias, activation, the next layer's quantization),
// each register tile row applies a copy of it to its accumulators and
// stores only its result: no i32 [rows..., N] tensor.
//
// Outlier channels. When the epilogue also reads a quench.qlinear's float
// outlier product (`yo = x[:, O] * wo^T`, marked quench.outlier_product,
// C = |O| columns of float weights), that product is not stored either:
// after a tile's K loop, per column vector, a loop over the C channels
// loads the weight vector (wo packed [C, N] at compile time) once and adds
// its product with each row's broadcast x[row, O[c]] into one f32 vector
// per row; the epilogue takes those vectors in place of the tensor.
//
//===----------------------------------------------------------------------===//

#include "KernelUtils.h"

#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Codegen/CPU/Passes.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

#include <cstring>

namespace quench {
#define GEN_PASS_DEF_QUENCHCPUINT8MATMUL
#include "quench/Codegen/CPU/Passes.h.inc"
} // namespace quench

using namespace mlir;
using quench::Int8DotProduct;

namespace {

/// An int8 contraction the kernel handles: x [rows..., K] i8 times the
/// constant w ([K, N] when `kn`, else [N, K]) i8, accumulated into init
/// [rows..., N] i32.
struct Int8Contraction {
  linalg::GenericOp op;
  Value x, init;
  arith::ConstantOp w;
  bool kn = true;
  int64_t k = 0, n = 0;
  unsigned rowDims = 0;
};

/// The kernel's operands, rows collapsed into one dimension R.
struct Int8Operands {
  Int8DotProduct kind = Int8DotProduct::None;
  /// [R, K]: the activations as the instruction takes them: i16
  /// (vpmaddwd) or u8 = q + 128 stored as i8 (vpdpbusd).
  Value x;
  /// [ceil(N / nr), ceil(K / group), nr * group] i8: the packed weights.
  Value w;
  /// vpdpbusd: [ceil(N / nr), nr] i32, 128 * sum_k w[k, n] modulo 2^32.
  Value comp;
  /// The accumulators' initial value when the init is a fill of a
  /// constant (the usual zero); null: read from the init tensor.
  Value initValue;
  int64_t k = 0, n = 0, group = 4, lanes = 16, nr = 64;
};

/// The LLVM intrinsic of `kind` on `vectorBits`-wide vectors (256 or 512).
/// vpdpbusd's 256-bit form is also AVX-VNNI's (VEX encoded without
/// AVX512VL).
StringRef getIntrinsicName(Int8DotProduct kind, unsigned vectorBits) {
  if (kind == Int8DotProduct::VNNI)
    return vectorBits == 512 ? "llvm.x86.avx512.vpdpbusd.512"
                             : "llvm.x86.avx512.vpdpbusd.256";
  return vectorBits == 512 ? "llvm.x86.avx512.pmaddw.d.512"
                           : "llvm.x86.avx2.pmadd.wd";
}

/// Declares the intrinsic of `kind` in `module` (quench::declareIntrinsic).
void declareIntrinsic(ModuleOp module, Int8DotProduct kind,
                      unsigned vectorBits) {
  MLIRContext *ctx = module.getContext();
  int64_t lanes = vectorBits / 32;
  auto i32v = VectorType::get({lanes}, IntegerType::get(ctx, 32));
  auto i8v = VectorType::get({4 * lanes}, IntegerType::get(ctx, 8));
  auto i16v = VectorType::get({2 * lanes}, IntegerType::get(ctx, 16));
  SmallVector<Type> args;
  if (kind == Int8DotProduct::VNNI)
    args = {i32v, i8v, i8v};
  else
    args = {i16v, i16v};
  quench::declareIntrinsic(module, getIntrinsicName(kind, vectorBits),
                           FunctionType::get(ctx, args, {i32v}));
}

/// True when `body` is exactly `out + extsi(a) * extsi(b)` with `a`, `b`
/// the two i8 inputs (either order) and `out` the i32 accumulator.
bool isI8WideningMulAdd(Block &body) {
  return body.getNumArguments() == 3 &&
         body.getArgument(0).getType().isInteger(8) &&
         body.getArgument(1).getType().isInteger(8) &&
         body.getArgument(2).getType().isInteger(32) &&
         quench::isWideningIntMulAdd(body, body.getArgument(2).getType());
}

/// Matches quench.qlinear's contraction (loops rows..., n, k; x indexed
/// (rows..., k), the result (rows..., n), the weight (k, n) once
/// quench-cpu-pretranspose-rhs has run, else (n, k)) with a constant
/// weight whose bytes are readable.
bool matchInt8Contraction(linalg::GenericOp op, Int8Contraction &c) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1)
    return false;
  auto xt = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto wt = dyn_cast<RankedTensorType>(op.getDpsInputs()[1].getType());
  auto ot = dyn_cast<RankedTensorType>(op.getDpsInits()[0].getType());
  if (!xt || !wt || !ot || xt.getRank() < 1 || wt.getRank() != 2 ||
      ot.getRank() != xt.getRank() || !wt.hasStaticShape() ||
      !xt.getElementType().isInteger(8) || !wt.getElementType().isInteger(8) ||
      !ot.getElementType().isInteger(32))
    return false;
  unsigned nb = xt.getRank() - 1, numLoops = op.getNumLoops();
  if (numLoops != nb + 2)
    return false;
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  for (unsigned d = 0; d < numLoops; ++d)
    if (iters[d] != (d + 1 < numLoops ? utils::IteratorType::parallel
                                      : utils::IteratorType::reduction))
      return false;
  MLIRContext *ctx = op.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  SmallVector<AffineExpr> xe, oe;
  for (unsigned i = 0; i < nb; ++i) {
    xe.push_back(dim(i));
    oe.push_back(dim(i));
  }
  xe.push_back(dim(nb + 1));
  oe.push_back(dim(nb));
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(numLoops, 0, xe, ctx) ||
      maps[2] != AffineMap::get(numLoops, 0, oe, ctx))
    return false;
  if (maps[1] == AffineMap::get(numLoops, 0, {dim(nb + 1), dim(nb)}, ctx))
    c.kn = true;
  else if (maps[1] == AffineMap::get(numLoops, 0, {dim(nb), dim(nb + 1)}, ctx))
    c.kn = false;
  else
    return false;
  if (!isI8WideningMulAdd(op.getRegion().front()))
    return false;
  c.w = op.getDpsInputs()[1].getDefiningOp<arith::ConstantOp>();
  if (!c.w)
    return false;
  auto attr = dyn_cast<ElementsAttr>(c.w.getValue());
  auto dense = dyn_cast_or_null<DenseElementsAttr>(attr);
  if (!attr || (!(dense && dense.isSplat()) && !quench::getRawConstantData(attr)))
    return false;
  c.k = wt.getDimSize(c.kn ? 0 : 1);
  c.n = wt.getDimSize(c.kn ? 1 : 0);
  if (c.k < 1 || c.n < 1 || xt.getShape().back() != c.k ||
      ot.getShape().back() != c.n)
    return false;
  c.op = op;
  c.x = op.getDpsInputs()[0];
  c.init = op.getDpsInits()[0];
  c.rowDims = nb;
  return true;
}

/// The elementwise consumer of a kernel's product, computed inside the
/// kernel's register tiles (epilogue fusion, as in the tile pass's
/// TileAndVectorize::fusableContraction, Tiling.cpp): no i32 [rows..., N] tensor, the
/// tile's accumulators go through the consumer's body and only its result
/// is stored.
struct Int8Epilogue {
  linalg::GenericOp consumer;
  /// The consumer's input that reads the product.
  unsigned accInput = 0;
  /// The consumer's input that reads a float outlier product (-1: none),
  /// the product's op, its activations xo [rows..., C], its constant
  /// weight ([C, N] when `outlierKN`, else [N, C]) and its accumulators'
  /// initial value (a constant).
  int outlierInput = -1;
  linalg::GenericOp outlierOp;
  Value outlierX, outlierInit;
  arith::ConstantOp outlierW;
  bool outlierKN = true;
  int64_t outlierC = 0;
  /// Per consumer input: indexed by the (collapsed) rows, by the columns.
  SmallVector<bool> hasRow, hasCol;
};

/// Matches `v` as the float outlier product of a quench.qlinear (see the
/// file header) read only by the epilogue: a contraction over (rows...,
/// n, c) marked quench.outlier_product, of xo [rows..., C] and a constant
/// f32 weight, into a fill of a constant. Fills e's outlier fields.
bool matchOutlierProduct(Value v, unsigned rowDims, int64_t n,
                         Int8Epilogue &e) {
  auto op = v.getDefiningOp<linalg::GenericOp>();
  if (!op || !v.hasOneUse() ||
      !op->hasAttr(quench::QuenchDialect::getOutlierProductAttrName()) ||
      !op.hasPureTensorSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumLoops() != rowDims + 2)
    return false;
  auto fill = op.getDpsInits()[0].getDefiningOp<linalg::FillOp>();
  auto wt = dyn_cast<RankedTensorType>(op.getDpsInputs()[1].getType());
  auto xt = dyn_cast<RankedTensorType>(op.getDpsInputs()[0].getType());
  auto w = op.getDpsInputs()[1].getDefiningOp<arith::ConstantOp>();
  if (!fill || !matchPattern(fill.getInputs()[0], m_Constant()) || !w ||
      !wt || !xt || wt.getRank() != 2 || !wt.hasStaticShape() ||
      !wt.getElementType().isF32() || !xt.getElementType().isF32() ||
      xt.getRank() != static_cast<int64_t>(rowDims) + 1 ||
      ShapedType::isDynamic(xt.getShape().back()))
    return false;
  MLIRContext *ctx = op.getContext();
  auto dim = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
  unsigned nd = rowDims, cd = rowDims + 1, numLoops = rowDims + 2;
  SmallVector<AffineExpr> xe, oe;
  for (unsigned i = 0; i < rowDims; ++i) {
    xe.push_back(dim(i));
    oe.push_back(dim(i));
  }
  xe.push_back(dim(cd));
  oe.push_back(dim(nd));
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[0] != AffineMap::get(numLoops, 0, xe, ctx) ||
      maps[2] != AffineMap::get(numLoops, 0, oe, ctx))
    return false;
  int64_t c = xt.getShape().back();
  if (maps[1] == AffineMap::get(numLoops, 0, {dim(cd), dim(nd)}, ctx))
    e.outlierKN = true;
  else if (maps[1] == AffineMap::get(numLoops, 0, {dim(nd), dim(cd)}, ctx))
    e.outlierKN = false;
  else
    return false;
  if (wt.getDimSize(e.outlierKN ? 0 : 1) != c ||
      wt.getDimSize(e.outlierKN ? 1 : 0) != n)
    return false;
  // [N, C] is transposed at compile time: its bytes must be readable.
  auto attr = dyn_cast<ElementsAttr>(w.getValue());
  if (!e.outlierKN && (!attr || !(isa<DenseElementsAttr>(attr) ||
                                  quench::getRawConstantData(attr))))
    return false;
  e.outlierOp = op;
  e.outlierX = op.getDpsInputs()[0];
  e.outlierW = w;
  e.outlierInit = fill.getInputs()[0];
  e.outlierC = c;
  return true;
}

/// Matches the single user of `c`'s product that the kernel fuses: an
/// all-parallel linalg.generic with one result (written through the
/// identity map, its initial value unread) that reads the product once
/// through the identity map and its other inputs through projected
/// permutations in dimension order that take all of the row dims or none
/// (bias [N], per-row scales [rows...], scalars, tensors shaped like the
/// result); no gathers or linalg.index in its body. The product must start
/// from a fill of a constant (the accumulators are never read back).
bool matchInt8Epilogue(const Int8Contraction &c, Int8Epilogue &e) {
  Value product = c.op->getResult(0);
  auto fill = c.init.getDefiningOp<linalg::FillOp>();
  if (!product.hasOneUse() || !fill ||
      !matchPattern(fill.getInputs()[0], m_Constant()))
    return false;
  auto consumer = dyn_cast<linalg::GenericOp>(*product.getUsers().begin());
  if (!consumer || !consumer.hasPureTensorSemantics() ||
      consumer->getNumResults() != 1 || consumer.getNumDpsInits() != 1 ||
      consumer.getNumReductionLoops() != 0 ||
      consumer.getNumLoops() != c.rowDims + 1 ||
      consumer->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()))
    return false;
  bool unsupported = false;
  consumer->walk([&](Operation *op) {
    unsupported |= isa<tensor::ExtractOp, linalg::IndexOp>(op);
  });
  OpOperand *init = consumer.getDpsInitOperand(0);
  if (unsupported || consumer.payloadUsesValueFromOperand(init) ||
      !consumer.getMatchingIndexingMap(init).isIdentity())
    return false;
  unsigned nb = c.rowDims;
  e = Int8Epilogue();
  e.consumer = consumer;
  bool seen = false;
  for (OpOperand *in : consumer.getDpsInputOperands()) {
    AffineMap map = consumer.getMatchingIndexingMap(in);
    if (!isa<RankedTensorType>(in->get().getType()) ||
        !map.isProjectedPermutation())
      return false;
    if (in->get() == product) {
      if (seen || !map.isIdentity())
        return false;
      seen = true;
      e.accInput = in->getOperandNumber();
      e.hasRow.push_back(nb > 0);
      e.hasCol.push_back(true);
      continue;
    }
    if (e.outlierInput < 0 && map.isIdentity() &&
        matchOutlierProduct(in->get(), nb, c.n, e)) {
      e.outlierInput = static_cast<int>(in->getOperandNumber());
      e.hasRow.push_back(nb > 0);
      e.hasCol.push_back(true);
      continue;
    }
    unsigned rows = 0, last = 0;
    bool col = false, first = true;
    for (AffineExpr r : map.getResults()) {
      unsigned pos = cast<AffineDimExpr>(r).getPosition();
      if (!first && pos <= last)
        return false;
      first = false;
      last = pos;
      if (pos < nb)
        ++rows;
      else
        col = true;
    }
    if (rows != 0 && rows != nb)
      return false;
    e.hasRow.push_back(rows != 0);
    e.hasCol.push_back(col);
  }
  return seen;
}

/// Packs the constant weight of `c` for `d` (see the file header) and, for
/// vpdpbusd, computes the per-column correction; sets d.w and d.comp.
void packWeights(RewriterBase &rw, const Int8Contraction &c,
                 Int8Operands &d) {
  arith::ConstantOp w = c.w;
  auto attr = cast<ElementsAttr>(w.getValue());
  const char *raw = nullptr;
  int8_t splat = 0;
  if (auto dense = dyn_cast<DenseElementsAttr>(attr); dense && dense.isSplat())
    splat = int8_t(dense.getSplatValue<APInt>().getSExtValue());
  else
    raw = quench::getRawConstantData(attr)->data();
  int64_t k = c.k, n = c.n, g = d.group, nr = d.nr;
  int64_t panels = llvm::divideCeil(n, nr), groups = llvm::divideCeil(k, g);
  std::vector<char> packed(panels * groups * nr * g, 0);
  std::vector<int64_t> colSums(panels * nr, 0);
  for (int64_t kk = 0; kk < k; ++kk) {
    int64_t gi = kk / g, j = kk % g;
    for (int64_t nn = 0; nn < n; ++nn) {
      int8_t v = raw ? int8_t(raw[c.kn ? kk * n + nn : nn * k + kk]) : splat;
      int64_t p = nn / nr, col = nn % nr;
      packed[((p * groups + gi) * nr + col) * g + j] = char(v);
      colSums[nn] += v;
    }
  }
  quench::releaseConstantPages(attr); // read once
  Location loc = w.getLoc();
  rw.setInsertionPoint(w);
  auto packedType = RankedTensorType::get({panels, groups, nr * g},
                                          rw.getI8Type());
  d.w = arith::ConstantOp::create(
      rw, loc,
      cast<TypedAttr>(quench::createConstantAttr(packedType, packed,
                                                 "quench_int8_panel")));
  if (d.kind != Int8DotProduct::VNNI)
    return;
  // 128 * sum modulo 2^32 (unsigned arithmetic wraps by definition).
  std::vector<char> comp(panels * nr * 4);
  for (int64_t i = 0; i < panels * nr; ++i) {
    uint32_t v = uint32_t(uint64_t(colSums[i]) * 128u);
    std::memcpy(comp.data() + 4 * i, &v, 4);
  }
  auto compType = RankedTensorType::get({panels, nr}, rw.getI32Type());
  d.comp = arith::ConstantOp::create(
      rw, loc,
      cast<TypedAttr>(quench::createConstantAttr(compType, comp,
                                                 "quench_int8_colsum")));
}

/// A fused epilogue as one task of the kernel sees it.
struct EpilogueTask {
  const Int8Epilogue *e = nullptr;
  /// The consumer's inputs with their rows collapsed like the kernel's
  /// (the product's entry unused).
  SmallVector<Value> inputs;
  /// The task's columns (quench::buildColumnTasks).
  quench::ColumnTask columns;
  /// With an outlier product: its activations [R, C] and weights [C, N].
  Value outlierX, outlierW;
};

/// Emits register tiles of the kernel: mr rows x nv SIMD vectors of output
/// columns, accumulators loop-carried across the K groups.
class TileEmitter {
public:
  TileEmitter(OpBuilder &b, Location loc, const Int8Operands &d,
              const EpilogueTask *epi = nullptr)
      : b(b), loc(loc), d(d), epi(epi) {
    i32 = b.getI32Type();
    vi32 = VectorType::get({d.lanes}, i32);
    xElem = getElementTypeOrSelf(d.x.getType());
    // One weight vector: lanes columns x group bytes.
    vw8 = VectorType::get({d.lanes * d.group}, b.getI8Type());
    vw16 = VectorType::get({d.lanes * d.group}, b.getI16Type());
    // The instruction's view of a broadcast activation group.
    vx = d.kind == Int8DotProduct::VNNI ? vw8 : vw16;
  }

  /// The tile at rows [row, row + mr) and task-local columns [col, col +
  /// nv * lanes) of `out` (a task's [R, width] i32 slice, or of the fused
  /// epilogue's result), whose weights are panel `panel`; returns the
  /// updated slice. `inBounds` false: the columns may run past N (masked
  /// result transfers).
  Value emit(Value out, Value row, Value panel, Value col, int64_t mr,
             int64_t nv, bool inBounds);

private:
  /// The fused epilogue of one tile row: its accumulators `acc` (nv
  /// vectors) go through a copy of the consumer on [1, columns] tensors,
  /// inserted into `out` at (`row`, `col`).
  Value emitEpilogueRow(Value out, Value row, Value col,
                        ArrayRef<Value> acc, ArrayRef<Value> outlier,
                        int64_t nv, bool inBounds);
  /// The tile's float outlier product at task-local columns from `col`:
  /// per row i and vector v, sum_c xo[rows[i], c] * wo[c, columns] from the
  /// fill value (row-major, mr x nv vectors). One column vector at a time
  /// over all rows, so that each weight vector is loaded once per tile.
  SmallVector<Value> outlierTile(ArrayRef<Value> rows, Value col, int64_t nv,
                                 bool inBounds);
  Value idx(OpBuilder &ob, int64_t v) {
    return arith::ConstantIndexOp::create(ob, loc, v);
  }
  Value add(OpBuilder &ob, Value a, int64_t c) {
    return quench::addIndex(ob, loc, a, c);
  }
  Value read(OpBuilder &ob, VectorType t, Value src, ValueRange at,
             bool inBounds) {
    return quench::readVector(ob, loc, t, src, at, inBounds);
  }
  /// x[row, k0 .. k0 + group) as one 32-bit value broadcast to every lane,
  /// in the instruction's element type. `inBounds` false: the group may
  /// run past K (zero padded; the packed weights are zero there).
  Value broadcastGroup(OpBuilder &ob, Value row, Value k0, bool inBounds) {
    Value v = read(ob, VectorType::get({d.group}, xElem), d.x, {row, k0},
                   inBounds);
    Value word = vector::BitCastOp::create(ob, loc, VectorType::get({1}, i32),
                                           v);
    Value s = vector::ExtractOp::create(ob, loc, word, ArrayRef<int64_t>{0});
    Value splat = vector::BroadcastOp::create(ob, loc, vi32, s);
    return vector::BitCastOp::create(ob, loc, vx, splat);
  }
  /// A call of the LLVM intrinsic `name` (declared in the module).
  Value intrinsic(OpBuilder &ob, StringRef name, ValueRange args) {
    return func::CallOp::create(ob, loc, name, TypeRange{vi32}, args)
        .getResult(0);
  }
  /// One K group: acc[i][v] += x[rows[i], group g] . w[panel, g, vector v].
  void step(OpBuilder &ob, Value g, ArrayRef<Value> rows, Value panel,
            int64_t nv, SmallVectorImpl<Value> &acc, bool inBounds);

  OpBuilder &b;
  Location loc;
  const Int8Operands &d;
  const EpilogueTask *epi;
  Type i32, xElem;
  VectorType vi32, vw8, vw16, vx;
};

void TileEmitter::step(OpBuilder &ob, Value g, ArrayRef<Value> rows,
                       Value panel, int64_t nv, SmallVectorImpl<Value> &acc,
                       bool inBounds) {
  int64_t mr = rows.size();
  Value k0 = arith::MulIOp::create(ob, loc, g, idx(ob, d.group));
  SmallVector<Value> xs;
  for (Value r : rows)
    xs.push_back(broadcastGroup(ob, r, k0, inBounds));
  bool vnni = d.kind == Int8DotProduct::VNNI;
  StringRef intrin = getIntrinsicName(d.kind, d.lanes * 32);
  for (int64_t v = 0; v < nv; ++v) {
    Value w = read(ob, vw8, d.w,
                   {panel, g, idx(ob, v * d.lanes * d.group)}, true);
    if (!vnni)
      w = arith::ExtSIOp::create(ob, loc, vw16, w);
    for (int64_t i = 0; i < mr; ++i) {
      Value &a = acc[i * nv + v];
      if (vnni) {
        // vpdpbusd(acc, unsigned bytes, signed bytes).
        a = intrinsic(ob, intrin, {a, xs[i], w});
      } else {
        Value p = intrinsic(ob, intrin, {xs[i], w});
        a = arith::AddIOp::create(ob, loc, a, p);
      }
    }
  }
}

Value TileEmitter::emit(Value out, Value row, Value panel, Value col,
                        int64_t mr, int64_t nv, bool inBounds) {
  SmallVector<Value> rows, ocols;
  for (int64_t i = 0; i < mr; ++i)
    rows.push_back(add(b, row, i));
  for (int64_t v = 0; v < nv; ++v)
    ocols.push_back(add(b, col, v * d.lanes));
  // Accumulators: the initial values, minus 128 * sum_k w for vpdpbusd.
  SmallVector<Value> acc;
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nv; ++v) {
      Value a = d.initValue
                    ? (Value)vector::BroadcastOp::create(b, loc, vi32,
                                                         d.initValue)
                    : read(b, vi32, out, {rows[i], ocols[v]}, inBounds);
      if (d.comp)
        a = arith::SubIOp::create(
            b, loc, a,
            read(b, vi32, d.comp, {panel, idx(b, v * d.lanes)}, true));
      acc.push_back(a);
    }
  int64_t fullGroups = d.k / d.group;
  if (fullGroups > 0) {
    auto loop = scf::ForOp::create(
        b, loc, idx(b, 0), idx(b, fullGroups), idx(b, 1), acc,
        [&](OpBuilder &lb, Location, Value g, ValueRange carried) {
          SmallVector<Value> a(carried);
          step(lb, g, rows, panel, nv, a, /*inBounds=*/true);
          scf::YieldOp::create(lb, loc, a);
        });
    acc.assign(loop.getResults().begin(), loop.getResults().end());
  }
  // The last, partial group of K (masked activation reads).
  if (d.k % d.group != 0)
    step(b, idx(b, fullGroups), rows, panel, nv, acc, /*inBounds=*/false);
  if (epi) {
    SmallVector<Value> outlier;
    if (epi->e->outlierInput >= 0)
      outlier = outlierTile(rows, col, nv, inBounds);
    for (int64_t i = 0; i < mr; ++i)
      out = emitEpilogueRow(
          out, rows[i], col, ArrayRef<Value>(acc).slice(i * nv, nv),
          outlier.empty() ? ArrayRef<Value>()
                          : ArrayRef<Value>(outlier).slice(i * nv, nv),
          nv, inBounds);
    return out;
  }
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t v = 0; v < nv; ++v)
      out = vector::TransferWriteOp::create(b, loc, acc[i * nv + v], out,
                                            ValueRange{rows[i], ocols[v]},
                                            ArrayRef<bool>{inBounds})
                .getResult();
  return out;
}

SmallVector<Value> TileEmitter::outlierTile(ArrayRef<Value> rows, Value col,
                                            int64_t nv, bool inBounds) {
  Type f32 = b.getF32Type();
  auto vf32 = VectorType::get({d.lanes}, f32);
  int64_t mr = rows.size();
  Value gcol = arith::AddIOp::create(b, loc, epi->columns.colBase, col);
  Value init = vector::BroadcastOp::create(
      b, loc, vf32,
      b.clone(*epi->e->outlierInit.getDefiningOp())->getResult(0));
  SmallVector<Value> tile(mr * nv);
  for (int64_t v = 0; v < nv; ++v) {
    Value at = add(b, gcol, v * d.lanes);
    auto loop = scf::ForOp::create(
        b, loc, idx(b, 0), idx(b, epi->e->outlierC), idx(b, 1),
        SmallVector<Value>(mr, init),
        [&](OpBuilder &lb, Location, Value c, ValueRange carried) {
          Value w = read(lb, vf32, epi->outlierW, {c, at}, inBounds);
          SmallVector<Value> next;
          for (int64_t i = 0; i < mr; ++i) {
            Value xv = tensor::ExtractOp::create(lb, loc, epi->outlierX,
                                                 ValueRange{rows[i], c});
            Value xb = vector::BroadcastOp::create(lb, loc, vf32, xv);
            next.push_back(vector::FMAOp::create(lb, loc, xb, w, carried[i]));
          }
          scf::YieldOp::create(lb, loc, next);
        });
    for (int64_t i = 0; i < mr; ++i)
      tile[i * nv + v] = loop.getResult(i);
  }
  return tile;
}

Value TileEmitter::emitEpilogueRow(Value out, Value row, Value col,
                                   ArrayRef<Value> acc,
                                   ArrayRef<Value> outlier, int64_t nv,
                                   bool inBounds) {
  MLIRContext *ctx = b.getContext();
  int64_t cols = nv * d.lanes;
  // Columns of the tile inside N: all of them, or min(cols, width - col).
  OpFoldResult size = b.getIndexAttr(cols);
  if (!inBounds) {
    Value left = arith::SubIOp::create(b, loc, epi->columns.width, col);
    size = arith::MinSIOp::create(b, loc, idx(b, cols), left).getResult();
  }
  // A row of nv vectors as one [1, cols] vector written to a fresh
  // tensor: the vectorized epilogue's read of it folds into the vector
  // (a masked read, in a partial panel, reads the tensor).
  auto rowTile = [&](ArrayRef<Value> vecs, Type elem) -> Value {
    Value row1 = arith::ConstantOp::create(
        b, loc, b.getZeroAttr(VectorType::get({cols}, elem)));
    for (int64_t v = 0; v < nv; ++v)
      row1 = vector::InsertStridedSliceOp::create(
          b, loc, vecs[v], row1, ArrayRef<int64_t>{v * d.lanes},
          ArrayRef<int64_t>{1});
    auto rowType = VectorType::get({1, cols}, elem);
    Value vec = vector::ShapeCastOp::create(b, loc, rowType, row1);
    Value tile =
        tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{1, cols}, elem);
    tile = vector::TransferWriteOp::create(b, loc, vec, tile,
                                           ValueRange{idx(b, 0), idx(b, 0)},
                                           ArrayRef<bool>{true, true})
               .getResult();
    if (!inBounds)
      tile = tensor::ExtractSliceOp::create(
          b, loc, tile,
          ArrayRef<OpFoldResult>{b.getIndexAttr(0), b.getIndexAttr(0)},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), size},
          ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
    return tile;
  };
  Value tile = rowTile(acc, i32);
  Value gcol = arith::AddIOp::create(b, loc, epi->columns.colBase, col);
  const Int8Epilogue &e = *epi->e;
  linalg::GenericOp consumer = e.consumer;
  // The consumer's inputs on this row's columns, indexed in the (row,
  // column) loops of the copy.
  SmallVector<Value> inputs;
  SmallVector<AffineMap> maps;
  for (auto [i, in] : llvm::enumerate(epi->inputs)) {
    if (i == e.accInput) {
      inputs.push_back(tile);
      maps.push_back(AffineMap::getMultiDimIdentityMap(2, ctx));
      continue;
    }
    if (static_cast<int>(i) == e.outlierInput) {
      inputs.push_back(rowTile(outlier, b.getF32Type()));
      maps.push_back(AffineMap::getMultiDimIdentityMap(2, ctx));
      continue;
    }
    SmallVector<OpFoldResult> offsets, sizes, strides;
    SmallVector<AffineExpr> exprs;
    if (e.hasRow[i]) {
      offsets.push_back(row);
      sizes.push_back(b.getIndexAttr(1));
      strides.push_back(b.getIndexAttr(1));
      exprs.push_back(getAffineDimExpr(0, ctx));
    }
    if (e.hasCol[i]) {
      offsets.push_back(gcol);
      sizes.push_back(size);
      strides.push_back(b.getIndexAttr(1));
      exprs.push_back(getAffineDimExpr(1, ctx));
    }
    Value v = in;
    if (!offsets.empty())
      v = tensor::ExtractSliceOp::create(b, loc, in, offsets, sizes, strides);
    inputs.push_back(v);
    maps.push_back(AffineMap::get(2, 0, exprs, ctx));
  }
  auto outSlice = tensor::ExtractSliceOp::create(
      b, loc, out, ArrayRef<OpFoldResult>{row, col},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), size},
      ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)});
  maps.push_back(AffineMap::getMultiDimIdentityMap(2, ctx));
  Block &body = consumer.getRegion().front();
  auto copy = linalg::GenericOp::create(
      b, loc, TypeRange{outSlice.getType()}, inputs,
      ValueRange{outSlice.getResult()}, maps,
      SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
      [&](OpBuilder &bb, Location, ValueRange args) {
        IRMapping map;
        map.map(body.getArguments(), args);
        for (Operation &op : body.without_terminator())
          bb.clone(op, map);
        SmallVector<Value> results;
        for (Value v : body.getTerminator()->getOperands())
          results.push_back(map.lookupOrDefault(v));
        linalg::YieldOp::create(bb, loc, results);
      });
  // Vectorized as one [1, cols] tile by quench-cpu-tile-and-vectorize.
  copy->setAttr(quench::kPreTiledVectorSizesAttr,
                b.getDenseI64ArrayAttr({1, cols}));
  return tensor::InsertSliceOp::create(
             b, loc, copy.getResult(0), out, ArrayRef<OpFoldResult>{row, col},
             ArrayRef<OpFoldResult>{b.getIndexAttr(1), size},
             ArrayRef<OpFoldResult>{b.getIndexAttr(1), b.getIndexAttr(1)})
      .getResult();
}

/// Builds the kernel for `c` (see the file header) and replaces its op;
/// with `epi`, the kernel computes the epilogue's result instead (both ops
/// replaced).
void buildKernel(RewriterBase &rw, const Int8Contraction &c,
                 Int8DotProduct kind, unsigned vectorBits,
                 const Int8Epilogue *epi) {
  linalg::GenericOp op = c.op;
  Location loc = op.getLoc();
  MLIRContext *ctx = rw.getContext();
  Int8Operands d;
  d.kind = kind;
  d.k = c.k;
  d.n = c.n;
  d.lanes = vectorBits / 32;
  d.group = kind == Int8DotProduct::VNNI ? 4 : 2;
  auto xType = cast<RankedTensorType>(c.x.getType());
  int64_t rowsStatic = 1;
  for (int64_t s : xType.getShape().drop_back())
    rowsStatic = ShapedType::isDynamic(s) || ShapedType::isDynamic(rowsStatic)
                     ? ShapedType::kDynamic
                     : rowsStatic * s;
  // Register tile (accumulators mr x nv, plus nv weight vectors and the
  // broadcasts; vpmaddwd also needs a product register): one row streams
  // nv = 4 vectors of columns (memory bound); several rows fill 32 zmm
  // registers with 6 x 4 (vpdpbusd) or 6 x 3 (vpmaddwd), 16 ymm with
  // 6 x 2 (vpdpbusd) or 4 x 2 (vpmaddwd).
  int64_t mr = 1, nv = 4;
  if (rowsStatic != 1) {
    bool wide = vectorBits >= 512, vnni = kind == Int8DotProduct::VNNI;
    mr = vnni || wide ? 6 : 4;
    nv = wide ? (vnni ? 4 : 3) : 2;
  }
  d.nr = nv * d.lanes;
  packWeights(rw, c, d);
  // The epilogue's other inputs may be defined after the contraction.
  if (epi)
    rw.setInsertionPoint(epi->consumer);
  else
    rw.setInsertionPoint(op);

  // Rows collapsed into one dimension (a 1-D x becomes one row).
  unsigned nb = c.rowDims;
  Value x = c.x, out = c.init;
  // A fill of a constant (quench.qlinear's zeros) is not read: the
  // accumulators start from the constant and the result goes to a fresh
  // tensor. (Reading a fill that CSE shares with another kernel's init
  // would let one-shot bufferization write both in place, the second
  // kernel then reading the first one's results.)
  if (auto fill = c.init.getDefiningOp<linalg::FillOp>()) {
    Value v = fill.getInputs()[0];
    if (matchPattern(v, m_Constant())) {
      d.initValue = rw.clone(*v.getDefiningOp())->getResult(0);
      out = tensor::EmptyOp::create(
          rw, loc, tensor::getMixedSizes(rw, loc, c.init), rw.getI32Type());
    }
  }
  // Fused: the tasks write the epilogue's result, into a fresh tensor
  // (its init is not read).
  EpilogueTask task;
  Operation *oldEpilogueInit = nullptr;
  if (epi) {
    linalg::GenericOp consumer = epi->consumer;
    Value init = consumer.getDpsInits()[0];
    oldEpilogueInit = init.getDefiningOp();
    out = tensor::EmptyOp::create(
        rw, loc, tensor::getMixedSizes(rw, loc, init),
        getElementTypeOrSelf(init.getType()));
    task.e = epi;
    if (epi->outlierInput >= 0) {
      // xo with its rows collapsed like x's; the weights [C, N].
      Value xo = epi->outlierX;
      if (nb == 0) {
        xo = tensor::ExpandShapeOp::create(
            rw, loc, RankedTensorType::get({1, epi->outlierC}, rw.getF32Type()),
            xo, ArrayRef<ReassociationIndices>{{0, 1}});
      } else if (nb > 1) {
        ReassociationIndices lead;
        for (unsigned r = 0; r < nb; ++r)
          lead.push_back(r);
        xo = tensor::CollapseShapeOp::create(
            rw, loc, xo, ArrayRef<ReassociationIndices>{lead, {nb}});
      }
      task.outlierX = xo;
      arith::ConstantOp wo = epi->outlierW;
      if (epi->outlierKN) {
        task.outlierW = wo;
      } else {
        ElementsAttr t = quench::transpose2DConstant(
            cast<ElementsAttr>(wo.getValue()), "quench_outlier_t");
        OpBuilder::InsertionGuard guard(rw);
        rw.setInsertionPoint(wo);
        task.outlierW =
            arith::ConstantOp::create(rw, wo.getLoc(), cast<TypedAttr>(t));
      }
    }
    for (auto [i, in] : llvm::enumerate(consumer.getDpsInputs())) {
      Value v = in;
      if (static_cast<int>(i) == epi->outlierInput) {
        task.inputs.push_back(v); // unused: computed in the tiles
        continue;
      }
      if (epi->hasRow[i] && nb > 1 && i != epi->accInput) {
        SmallVector<ReassociationIndices> groups(1);
        for (unsigned r = 0; r < nb; ++r)
          groups[0].push_back(r);
        if (epi->hasCol[i])
          groups.push_back({nb});
        v = tensor::CollapseShapeOp::create(rw, loc, v, groups);
      }
      task.inputs.push_back(v);
    }
  }
  Type outElem = getElementTypeOrSelf(out.getType());
  if (nb == 0) {
    x = tensor::ExpandShapeOp::create(
        rw, loc, RankedTensorType::get({1, d.k}, xType.getElementType()), x,
        ArrayRef<ReassociationIndices>{{0, 1}});
    out = tensor::ExpandShapeOp::create(
        rw, loc, RankedTensorType::get({1, d.n}, outElem), out,
        ArrayRef<ReassociationIndices>{{0, 1}});
  } else if (nb > 1) {
    ReassociationIndices lead;
    for (unsigned i = 0; i < nb; ++i)
      lead.push_back(i);
    x = tensor::CollapseShapeOp::create(
        rw, loc, x, ArrayRef<ReassociationIndices>{lead, {nb}});
    out = tensor::CollapseShapeOp::create(
        rw, loc, out, ArrayRef<ReassociationIndices>{lead, {nb}});
  }

  // The activations as the instruction takes them: i16, or q + 128 as
  // unsigned bytes (q xor 0x80); an elementwise generic tiled by the
  // caller.
  Type prepType = kind == Int8DotProduct::VNNI ? rw.getI8Type()
                                                : (Type)rw.getI16Type();
  SmallVector<OpFoldResult> xSizes = tensor::getMixedSizes(rw, loc, x);
  Value prepEmpty = tensor::EmptyOp::create(rw, loc, xSizes, prepType);
  AffineMap id = AffineMap::getMultiDimIdentityMap(2, ctx);
  d.x = linalg::GenericOp::create(
            rw, loc, TypeRange{prepEmpty.getType()}, ValueRange{x},
            ValueRange{prepEmpty}, ArrayRef<AffineMap>{id, id},
            SmallVector<utils::IteratorType>(2, utils::IteratorType::parallel),
            [&](OpBuilder &b, Location l, ValueRange a) {
              Value v;
              if (kind == Int8DotProduct::VNNI)
                v = arith::XOrIOp::create(
                    b, l, a[0],
                    arith::ConstantOp::create(b, l,
                                              b.getIntegerAttr(b.getI8Type(),
                                                               -128)));
              else
                v = arith::ExtSIOp::create(b, l, b.getI16Type(), a[0]);
              linalg::YieldOp::create(b, l, v);
            })
            .getResult(0);

  // Tasks: 128 columns (whole panels) each.
  int64_t nr = d.nr;
  int64_t nt = std::max<int64_t>(nr, llvm::alignTo(128, nr));
  auto taskBody = [&](OpBuilder &tb, const quench::ColumnTask &ct) -> Value {
    auto cst = [&](int64_t v) {
      return arith::ConstantIndexOp::create(tb, loc, v).getResult();
    };
    Value panelBase = arith::MulIOp::create(tb, loc, ct.index, cst(nt / nr));
    task.columns = ct;
    const EpilogueTask *ep = epi ? &task : nullptr;
    Value fullCols = arith::MulIOp::create(
        tb, loc, arith::DivUIOp::create(tb, loc, ct.width, cst(nr)), cst(nr));
    Value fullRows = arith::MulIOp::create(
        tb, loc, arith::DivUIOp::create(tb, loc, ct.rows, cst(mr)), cst(mr));
    // Row tiles of one column panel: mr rows at a time, then the rest (one
    // tile when the row count is static, single rows otherwise).
    auto rowLoops = [&](OpBuilder &b, Value acc, Value col,
                        bool inBounds) -> Value {
      Value panel = arith::AddIOp::create(
          b, loc, panelBase, arith::DivUIOp::create(b, loc, col, cst(nr)));
      auto main = scf::ForOp::create(
          b, loc, cst(0), fullRows, cst(mr), ValueRange{acc},
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(rb, loc,
                                 TileEmitter(rb, loc, d, ep).emit(
                                     a[0], row, panel, col, mr, nv, inBounds));
          });
      Value res = main.getResult(0);
      if (mr == 1)
        return res;
      if (!ShapedType::isDynamic(rowsStatic)) {
        if (int64_t rest = rowsStatic % mr)
          res = TileEmitter(b, loc, d, ep).emit(res, fullRows, panel, col, rest,
                                            nv, inBounds);
        return res;
      }
      auto tail = scf::ForOp::create(
          b, loc, fullRows, ct.rows, cst(1), ValueRange{res},
          [&](OpBuilder &rb, Location, Value row, ValueRange a) {
            scf::YieldOp::create(rb, loc,
                                 TileEmitter(rb, loc, d, ep).emit(
                                     a[0], row, panel, col, 1, nv, inBounds));
          });
      return tail.getResult(0);
    };
    auto colMain = scf::ForOp::create(
        tb, loc, cst(0), fullCols, cst(nr), ValueRange{ct.slice},
        [&](OpBuilder &cb, Location, Value col, ValueRange a) {
          scf::YieldOp::create(cb, loc,
                               rowLoops(cb, a[0], col, /*inBounds=*/true));
        });
    Value result = colMain.getResult(0);
    if (d.n % nr != 0) {
      // The last task's partial panel (zero padded weights; masked result
      // transfers).
      auto colRest = scf::ForOp::create(
          tb, loc, fullCols, ct.width, cst(nr), ValueRange{result},
          [&](OpBuilder &cb, Location, Value col, ValueRange a) {
            scf::YieldOp::create(cb, loc,
                                 rowLoops(cb, a[0], col, /*inBounds=*/false));
          });
      result = colRest.getResult(0);
    }
    return result;
  };
  Value res = quench::buildColumnTasks(rw, loc, out, d.n, nt, taskBody);
  res = quench::restoreLeadingDims(
      rw, loc, res,
      epi ? epi->consumer->getResult(0).getType() : op.getResult(0).getType(),
      nb, c.init);
  Operation *oldW = c.w;
  Operation *oldInit = c.init.getDefiningOp();
  if (epi) {
    rw.replaceOp(epi->consumer, res);
    rw.eraseOp(op);
    // The outlier product was computed in the tiles.
    if (linalg::GenericOp yo = epi->outlierOp; yo && yo->use_empty()) {
      Operation *fill = yo.getDpsInits()[0].getDefiningOp();
      arith::ConstantOp yoWOp = epi->outlierW;
      Operation *yoW = yoWOp;
      rw.eraseOp(yo);
      if (fill && fill->use_empty()) {
        Operation *empty =
            cast<linalg::FillOp>(fill).getOutputs()[0].getDefiningOp();
        rw.eraseOp(fill);
        if (empty && isa<tensor::EmptyOp>(empty) && empty->use_empty())
          rw.eraseOp(empty);
      }
      if (yoW->use_empty())
        rw.eraseOp(yoW);
    }
    if (oldEpilogueInit && isa<tensor::EmptyOp>(oldEpilogueInit) &&
        oldEpilogueInit->use_empty())
      rw.eraseOp(oldEpilogueInit);
  } else {
    rw.replaceOp(op, res);
  }
  // Dead weights and a dead fill (later passes expect fills to have uses).
  if (oldW->use_empty())
    rw.eraseOp(oldW);
  if (auto fill = dyn_cast_or_null<linalg::FillOp>(oldInit);
      fill && fill->use_empty()) {
    Operation *empty = fill.getOutputs()[0].getDefiningOp();
    rw.eraseOp(fill);
    if (empty && isa<tensor::EmptyOp>(empty) && empty->use_empty())
      rw.eraseOp(empty);
  }
}

} // namespace

namespace {

struct QuenchCPUInt8MatmulPass
    : public quench::impl::QuenchCPUInt8MatmulBase<QuenchCPUInt8MatmulPass> {
  using Base::Base;

  void runOnOperation() override {
    Int8DotProduct kind = int8Dot;
    if (kind == Int8DotProduct::None ||
        (vectorBits != 256 && vectorBits != 512))
      return;
    ModuleOp module = getOperation();
    SmallVector<linalg::GenericOp> found;
    module.walk([&](linalg::GenericOp op) {
      Int8Contraction c;
      if (matchInt8Contraction(op, c))
        found.push_back(op);
    });
    if (found.empty())
      return;
    declareIntrinsic(module, kind, vectorBits);
    IRRewriter rw(&getContext());
    // Matched again when built: a fused epilogue replaced by the previous
    // kernel may have been the next contraction's input.
    for (linalg::GenericOp op : found) {
      Int8Contraction c;
      if (!matchInt8Contraction(op, c))
        continue;
      Int8Epilogue epi;
      bool fused = matchInt8Epilogue(c, epi);
      buildKernel(rw, c, kind, vectorBits, fused ? &epi : nullptr);
    }
  }
};

} // namespace
