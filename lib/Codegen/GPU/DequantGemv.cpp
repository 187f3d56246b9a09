//===- DequantGemv.cpp - quantized GEMV kernels for decode ----------------===//
//
// `quench-gpu-dequant-gemv`: the fused dequantizing matmul of
// MatMulNBits.cpp (a linalg.generic over (batch..., b, j, h, n) marked
// `quench.dequant_matmul`: codes [B, J, N] i8 with N innermost, scales and
// zero points [B, N]) becomes, when few activation rows read it (decode),
// explicit gpu.launch kernels designed for memory bandwidth instead of the
// generic one-thread-per-output mapping:
//
//   partial kernel: thread (split s, chunk c) owns output features
//     [16 c, 16 c + 16) and the code rows r = b * J + j in split s; per
//     row one 16-byte aligned load of codes (consecutive threads read
//     consecutive chunks), dequantized in registers, times the rows' x,
//     accumulated in f32 (rows x 16 sums); scales and zero points are read
//     once per group;
//   reduce kernel (K split in several parts): one thread per output adds
//   the [splits, M, N] partial sums to the output.
//
// Dequantization: the 16 bytes are 4 words; byte t of word i is feature
// 4 i + t, code h of a byte at bits [h * bits, h * bits + bits). Lane i of
//   ((words >> (8 t + bits h)) & mask) | 0x4B000000   (as f32: 2^23 + code)
// minus (2^23 + zero point) is the exact code - zp of feature 4 i + t, so
// one shift, one and-or and one subtraction convert 4 codes; the scale
// multiplies, then one FMA per row. The sums of features 4 i + t live in
// vector<4xf32> accumulator t; scales and zero points are shuffled the
// same way once per group. docs/gpu.md, "W4A16/W8A16 GEMV".
//
//===----------------------------------------------------------------------===//

#include "Residency.h"
#include "LaunchUtils.h"
#include "quench/Codegen/GPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUDEQUANTGEMV
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Output features per thread: 16 bytes of codes per row.
constexpr int64_t kChunk = 16;
/// A split reads at least this many code rows (16-byte loads).
constexpr int64_t kMinRowsPerSplit = 8;
/// Code rows per iteration of the row loop: their 16-byte loads are issued
/// together (memory-level parallelism for a bandwidth-bound kernel).
constexpr int64_t kUnroll = 4;
/// Threads per block of the partial kernel (at most).
constexpr int64_t kGemvBlock = 128;
/// Partial sums may cost at most 1 / kScratchRatio of the code bytes in
/// traffic (written and read once, 8 bytes per row and feature).
constexpr int64_t kScratchRatio = 8;

/// The operands of a dequantizing matmul on buffers.
struct Gemv {
  linalg::GenericOp op;
  Value x, codes, scales, zp, out;
  int64_t batchDims = 0, bits = 4, perByte = 2, groups = 1, rowsPerGroup = 1,
          n = 16;
  bool floatZp = false;
  Type xType, scaleType;
};

/// The fast form of MatMulNBits.cpp on device buffers, with N a multiple
/// of 16 and codes, scales and zero points aligned contiguous buffers.
bool matchGemv(linalg::GenericOp op, Gemv &g,
               SmallVectorImpl<memref::GetGlobalOp> &globals) {
  if (!op->hasAttr(quench::QuenchDialect::getDequantMatmulAttrName()) ||
      !op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 ||
      op.getNumDpsInputs() < 3 || op.getNumDpsInputs() > 4)
    return false;
  unsigned numLoops = op.getNumLoops();
  if (numLoops < 5)
    return false;
  unsigned nb = numLoops - 4;
  g.op = op;
  g.batchDims = nb;
  g.x = op.getDpsInputs()[0];
  g.codes = op.getDpsInputs()[1];
  g.scales = op.getDpsInputs()[2];
  if (op.getNumDpsInputs() == 4)
    g.zp = op.getDpsInputs()[3];
  g.out = op.getDpsInits()[0];
  auto xt = dyn_cast<MemRefType>(g.x.getType());
  auto wt = dyn_cast<MemRefType>(g.codes.getType());
  auto st = dyn_cast<MemRefType>(g.scales.getType());
  auto ot = dyn_cast<MemRefType>(g.out.getType());
  if (!xt || !wt || !st || !ot || xt.getRank() != nb + 3 ||
      wt.getRank() != 3 || st.getRank() != 2 || ot.getRank() != nb + 1 ||
      !wt.getElementType().isInteger(8) || !ot.getElementType().isF32() ||
      !isa<FloatType>(xt.getElementType()) ||
      !isa<FloatType>(st.getElementType()))
    return false;
  g.xType = xt.getElementType();
  g.scaleType = st.getElementType();
  SmallVector<memref::GetGlobalOp> gets;
  if (!quench::isAlignedDeviceBuffer(g.codes, gets) ||
      !quench::isAlignedDeviceBuffer(g.scales, gets) ||
      (g.zp && !quench::isAlignedDeviceBuffer(g.zp, gets)))
    return false;
  int64_t perByte = xt.getShape()[nb + 2];
  if (perByte != 1 && perByte != 2 && perByte != 4)
    return false;
  g.perByte = perByte;
  g.bits = 8 / perByte;
  g.groups = wt.getDimSize(0);
  g.rowsPerGroup = wt.getDimSize(1);
  g.n = wt.getDimSize(2);
  if (g.n % kChunk != 0 || xt.getShape()[nb] != g.groups ||
      xt.getShape()[nb + 1] != g.rowsPerGroup ||
      st.getShape() != ArrayRef<int64_t>{g.groups, g.n} ||
      ot.getShape().back() != g.n)
    return false;
  for (unsigned d = 0; d < nb; ++d)
    if (xt.getShape()[d] != ot.getShape()[d] &&
        !ShapedType::isDynamic(xt.getShape()[d]) &&
        !ShapedType::isDynamic(ot.getShape()[d]))
      return false;
  if (g.zp) {
    auto zt = cast<MemRefType>(g.zp.getType());
    if (zt.getShape() != st.getShape())
      return false;
    g.floatZp = isa<FloatType>(zt.getElementType());
    if (g.floatZp ? zt.getElementType() != g.scaleType
                  : !zt.getElementType().isInteger(8))
      return false;
  }
  if (op.getIndexingMapsArray() !=
      quench::QuenchDialect::getDequantMatmulIndexingMaps(op.getContext(), nb,
                                                          bool(g.zp)))
    return false;
  globals.append(gets.begin(), gets.end());
  return true;
}

/// Builds the kernels of one matched op.
class GemvBuilder {
public:
  GemvBuilder(const Gemv &g, int64_t maxRows, int64_t rowTile,
              int64_t targetThreads, int64_t blockSize)
      : g(g), rw(g.op->getContext()), loc(g.op->getLoc()), maxRows(maxRows),
        rowTile(rowTile), targetThreads(targetThreads), blockSize(blockSize) {}

  /// Replaces the op; false (nothing changed) when M is static and above
  /// maxRows.
  bool build();

private:
  Value cst(OpBuilder &b, int64_t v) {
    return arith::ConstantIndexOp::create(b, loc, v);
  }
  Value i32Splat(OpBuilder &b, uint32_t v) {
    auto type = VectorType::get({4}, b.getI32Type());
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, b.getI32IntegerAttr(v)));
  }
  Value f32Splat(OpBuilder &b, float v) {
    auto type = VectorType::get({4}, b.getF32Type());
    return arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(type, b.getF32FloatAttr(v)));
  }
  /// Lanes {t, 4 + t, 8 + t, 12 + t} of a vector<16xf32>.
  Value lanesOf(OpBuilder &b, Value v16, int64_t t) {
    return vector::ShuffleOp::create(b, loc, v16, v16,
                                     ArrayRef<int64_t>{t, 4 + t, 8 + t,
                                                       12 + t});
  }
  /// Batch indices of output row `row` (delinearized, innermost fastest).
  SmallVector<Value> batchIndices(OpBuilder &b, Value row) {
    SmallVector<Value> idx(g.batchDims);
    Value rest = row;
    for (int64_t d = g.batchDims - 1; d >= 0; --d) {
      if (d == 0) {
        idx[d] = rest;
        break;
      }
      idx[d] = arith::RemUIOp::create(b, loc, rest, batchSizes[d]);
      rest = arith::DivUIOp::create(b, loc, rest, batchSizes[d]);
    }
    return idx;
  }
  void buildPartialKernel(Value scratch, int64_t tile, int64_t splits,
                          int64_t rowsPerSplit);
  void buildReduceKernel(Value scratch, int64_t splits);

  Gemv g;
  IRRewriter rw;
  Location loc;
  int64_t maxRows, rowTile, targetThreads, blockSize;
  /// Host values: the batch dim sizes of the output and M, their product.
  SmallVector<Value> batchSizes;
  Value rows;
};

} // namespace

bool GemvBuilder::build() {
  auto ot = cast<MemRefType>(g.out.getType());
  std::optional<int64_t> staticRows = 1;
  for (int64_t d = 0; d < g.batchDims; ++d)
    if (ot.isDynamicDim(d))
      staticRows.reset();
    else if (staticRows)
      *staticRows *= ot.getDimSize(d);
  if (staticRows && (*staticRows > maxRows || *staticRows == 0))
    return false;
  // Rows per thread: 16 f32 accumulators each (at 8 rows ptxas needs all
  // 255 registers, which leaves 8 warps per SM; 4 rows take about 100).
  int64_t tile = staticRows ? std::min(*staticRows, rowTile) : rowTile;
  int64_t rowsWritten = staticRows ? *staticRows : rowTile;

  // The K split: enough threads (targetThreads over N / 16 chunks), at
  // least kMinRowsPerSplit rows per split, partial sums a small fraction
  // of the code bytes; whole groups per split when a split spans one.
  int64_t totalRows = g.groups * g.rowsPerGroup;
  int64_t chunks = g.n / kChunk;
  int64_t splits = llvm::divideCeil(targetThreads, chunks);
  splits = std::min<int64_t>(splits,
                            totalRows / (8 * kScratchRatio * rowsWritten));
  splits = std::min<int64_t>(splits,
                            llvm::divideCeil(totalRows, kMinRowsPerSplit));
  splits = std::max<int64_t>(splits, 1);
  int64_t rowsPerSplit = llvm::divideCeil(totalRows, splits);
  if (rowsPerSplit > g.rowsPerGroup)
    rowsPerSplit = llvm::alignTo(rowsPerSplit, g.rowsPerGroup);
  splits = llvm::divideCeil(totalRows, rowsPerSplit);

  rw.setInsertionPoint(g.op);
  rows = cst(rw, 1);
  for (int64_t d = 0; d < g.batchDims; ++d) {
    Value size = ot.isDynamicDim(d)
                     ? (Value)memref::DimOp::create(rw, loc, g.out, d)
                     : cst(rw, ot.getDimSize(d));
    batchSizes.push_back(size);
    rows = arith::MulIOp::create(rw, loc, rows, size);
  }
  Value scratch;
  if (splits > 1) {
    SmallVector<int64_t> shape{splits, staticRows ? *staticRows
                                                  : ShapedType::kDynamic,
                               g.n};
    auto type = MemRefType::get(shape, rw.getF32Type());
    SmallVector<Value> dyn;
    if (!staticRows)
      dyn.push_back(rows);
    scratch = gpu::AllocOp::create(rw, loc, type, Type(), ValueRange{}, dyn,
                                   ValueRange{}, nullptr)
                  .getMemref();
  }
  buildPartialKernel(scratch, tile, splits, rowsPerSplit);
  if (scratch) {
    buildReduceKernel(scratch, splits);
    gpu::DeallocOp::create(rw, loc, Type(), ValueRange{}, scratch);
  }
  rw.eraseOp(g.op);
  return true;
}

void GemvBuilder::buildPartialKernel(Value scratch, int64_t tile,
                                     int64_t splits, int64_t rowsPerSplit) {
  int64_t chunks = g.n / kChunk;
  int64_t threads = chunks * splits;
  // Blocks of at most kGemvBlock threads: the few tens of thousands of
  // threads spread over every SM (112 blocks of 256 would leave SMs of an
  // H100 idle).
  int64_t block = std::clamp<int64_t>(llvm::alignTo(threads, 32), 32,
                                      std::min(blockSize, kGemvBlock));
  Value one = cst(rw, 1);
  Value gridX = cst(rw, llvm::divideCeil(threads, block));
  // Row tiles of `tile` rows on grid y (one block row when M is 0).
  Value gridY = arith::MaxUIOp::create(
      rw, loc, arith::CeilDivUIOp::create(rw, loc, rows, cst(rw, tile)), one);
  auto launch = gpu::LaunchOp::create(rw, loc, gridX, gridY, one,
                                      cst(rw, block), one, one);
  launch->setAttr("quench.kernel", rw.getStringAttr("dequant_gemv"));
  OpBuilder::InsertionGuard guard(rw);
  Block &body = launch.getBody().front();
  rw.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(rw, loc);
  rw.setInsertionPoint(terminator);

  Type f32 = rw.getF32Type(), i32 = rw.getI32Type();
  auto v4f32 = VectorType::get({4}, f32);
  auto v16f32 = VectorType::get({kChunk}, f32);
  Value linear = arith::AddIOp::create(
      rw, loc, arith::MulIOp::create(rw, loc, launch.getBlockIds().x,
                                     cst(rw, block)),
      launch.getThreadIds().x);
  Value row0 = arith::MulIOp::create(rw, loc, launch.getBlockIds().y,
                                     cst(rw, tile));
  Value inRange = arith::AndIOp::create(
      rw, loc,
      arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, linear,
                            cst(rw, threads)),
      arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, row0, rows));
  auto ifIn = scf::IfOp::create(rw, loc, inRange, /*withElse=*/false);
  rw.setInsertionPointToStart(&ifIn.getThenRegion().front());

  Value chunk = arith::RemUIOp::create(rw, loc, linear, cst(rw, chunks));
  Value split = arith::DivUIOp::create(rw, loc, linear, cst(rw, chunks));
  Value col0 = arith::MulIOp::create(rw, loc, chunk, cst(rw, kChunk));
  // Rows of the tile past M read row M - 1 (in bounds) and are not
  // written.
  Value lastRow = arith::SubIOp::create(rw, loc, rows, one);
  SmallVector<Value> tileRows, valid;
  SmallVector<SmallVector<Value>> xIdx;
  for (int64_t m = 0; m < tile; ++m) {
    Value row = arith::AddIOp::create(rw, loc, row0, cst(rw, m));
    valid.push_back(arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult,
                                          row, rows));
    row = arith::MinUIOp::create(rw, loc, row, lastRow);
    tileRows.push_back(row);
    xIdx.push_back(batchIndices(rw, row));
  }

  // Code rows [rLo, rHi) of this split: groups [bLo, bHi).
  int64_t jn = g.rowsPerGroup;
  Value rLo = arith::MulIOp::create(rw, loc, split, cst(rw, rowsPerSplit));
  Value rHi = arith::MinUIOp::create(
      rw, loc, arith::AddIOp::create(rw, loc, rLo, cst(rw, rowsPerSplit)),
      cst(rw, g.groups * jn));
  Value bLo = arith::DivUIOp::create(rw, loc, rLo, cst(rw, jn));
  Value bHi = arith::CeilDivUIOp::create(rw, loc, rHi, cst(rw, jn));

  // Accumulators: tile rows x 4 vectors (lane i of vector t: feature
  // 4 i + t).
  SmallVector<Value> zeros(tile * 4, f32Splat(rw, 0.0f));
  auto groupLoop = scf::ForOp::create(rw, loc, bLo, bHi, one, zeros);
  {
    OpBuilder::InsertionGuard g2(rw);
    rw.setInsertionPointToStart(groupLoop.getBody());
    Value b = groupLoop.getInductionVar();
    ValueRange accs = groupLoop.getRegionIterArgs();
    auto loadVec16 = [&](Value memref) -> Value {
      auto et = cast<MemRefType>(memref.getType()).getElementType();
      auto vt = VectorType::get({kChunk}, et);
      return vector::LoadOp::create(rw, loc, vt, memref, ValueRange{b, col0},
                                    /*nontemporal=*/false, llvm::MaybeAlign(16));
    };
    Value s16 = loadVec16(g.scales);
    if (g.scaleType != f32)
      s16 = arith::ExtFOp::create(rw, loc, v16f32, s16);
    // What the magic float 2^23 + code loses to become code - zp.
    constexpr float kMagic = 8388608.0f; // 2^23
    SmallVector<Value> scale(4), bias(4), floatZp(4);
    Value bias16;
    if (g.zp && !g.floatZp) {
      Value z16 = loadVec16(g.zp);
      z16 = arith::ExtUIOp::create(
          rw, loc, VectorType::get({kChunk}, i32), z16);
      z16 = arith::UIToFPOp::create(rw, loc, v16f32, z16);
      bias16 = arith::AddFOp::create(
          rw, loc, z16,
          arith::ConstantOp::create(
              rw, loc,
              DenseElementsAttr::get(v16f32, rw.getF32FloatAttr(kMagic))));
    }
    Value fz16;
    if (g.floatZp) {
      fz16 = loadVec16(g.zp);
      if (g.scaleType != f32)
        fz16 = arith::ExtFOp::create(rw, loc, v16f32, fz16);
    }
    for (int64_t t = 0; t < 4; ++t) {
      scale[t] = lanesOf(rw, s16, t);
      if (bias16)
        bias[t] = lanesOf(rw, bias16, t);
      else if (g.floatZp)
        bias[t] = f32Splat(rw, kMagic);
      else
        bias[t] = f32Splat(rw, kMagic + float(1 << (g.bits - 1)));
      if (fz16)
        floatZp[t] = lanesOf(rw, fz16, t);
    }
    Value bjn = arith::MulIOp::create(rw, loc, b, cst(rw, jn));
    Value jLo = arith::SubIOp::create(
        rw, loc, arith::MaxUIOp::create(rw, loc, rLo, bjn), bjn);
    Value jHi = arith::SubIOp::create(
        rw, loc,
        arith::MinUIOp::create(
            rw, loc, rHi, arith::AddIOp::create(rw, loc, bjn, cst(rw, jn))),
        bjn);
    // `count` code rows from row j on: their 16-byte loads first (count
    // loads in flight per thread), then dequantization and FMAs.
    uint32_t mask = (1u << g.bits) - 1;
    auto emitRows = [&](Value j0, int64_t count, SmallVector<Value> &acc) {
      SmallVector<Value> rowsJ, words;
      for (int64_t u = 0; u < count; ++u) {
        Value j = u ? (Value)arith::AddIOp::create(rw, loc, j0, cst(rw, u))
                    : j0;
        rowsJ.push_back(j);
        // 16 bytes of codes: features col0 .. col0 + 15 of row (b, j).
        Value bytes = vector::LoadOp::create(
            rw, loc, VectorType::get({kChunk}, rw.getI8Type()), g.codes,
            ValueRange{b, j, col0}, /*nontemporal=*/false,
            llvm::MaybeAlign(16));
        words.push_back(vector::BitCastOp::create(
            rw, loc, VectorType::get({4}, i32), bytes));
      }
      for (int64_t u = 0; u < count; ++u) {
        for (int64_t h = 0; h < g.perByte; ++h) {
          SmallVector<Value> xs;
          for (int64_t m = 0; m < tile; ++m) {
            SmallVector<Value> idx(xIdx[m]);
            idx.append({b, rowsJ[u], cst(rw, h)});
            Value xv = memref::LoadOp::create(rw, loc, g.x, idx);
            if (g.xType != f32)
              xv = arith::ExtFOp::create(rw, loc, f32, xv);
            xs.push_back(vector::BroadcastOp::create(rw, loc, v4f32, xv));
          }
          for (int64_t t = 0; t < 4; ++t) {
            int64_t shift = 8 * t + g.bits * h;
            Value q = words[u];
            if (shift)
              q = arith::ShRUIOp::create(rw, loc, q, i32Splat(rw, shift));
            if (shift + g.bits < 32)
              q = arith::AndIOp::create(rw, loc, q, i32Splat(rw, mask));
            q = arith::OrIOp::create(rw, loc, q, i32Splat(rw, 0x4B000000u));
            Value w = arith::BitcastOp::create(rw, loc, v4f32, q);
            w = arith::SubFOp::create(rw, loc, w, bias[t]);
            if (g.floatZp)
              w = arith::SubFOp::create(rw, loc, w, floatZp[t]);
            w = arith::MulFOp::create(rw, loc, w, scale[t]);
            for (int64_t m = 0; m < tile; ++m) {
              Value &a = acc[m * 4 + t];
              a = vector::FMAOp::create(rw, loc, xs[m], w, a);
            }
          }
        }
      }
    };
    // Rows [jLo, jHi) by kUnroll, then the remaining rows one by one.
    Value jMain = arith::AddIOp::create(
        rw, loc, jLo,
        arith::MulIOp::create(
            rw, loc,
            arith::DivUIOp::create(
                rw, loc, arith::SubIOp::create(rw, loc, jHi, jLo),
                cst(rw, kUnroll)),
            cst(rw, kUnroll)));
    auto mainLoop =
        scf::ForOp::create(rw, loc, jLo, jMain, cst(rw, kUnroll), accs);
    {
      OpBuilder::InsertionGuard g3(rw);
      rw.setInsertionPointToStart(mainLoop.getBody());
      SmallVector<Value> acc(mainLoop.getRegionIterArgs());
      emitRows(mainLoop.getInductionVar(), kUnroll, acc);
      scf::YieldOp::create(rw, loc, acc);
    }
    auto restLoop = scf::ForOp::create(rw, loc, jMain, jHi, one,
                                       mainLoop.getResults());
    {
      OpBuilder::InsertionGuard g3(rw);
      rw.setInsertionPointToStart(restLoop.getBody());
      SmallVector<Value> acc(restLoop.getRegionIterArgs());
      emitRows(restLoop.getInductionVar(), 1, acc);
      scf::YieldOp::create(rw, loc, acc);
    }
    scf::YieldOp::create(rw, loc, restLoop.getResults());
  }

  // Features in order: lane f of the result is lane f / 4 of vector f % 4.
  SmallVector<int64_t> order;
  for (int64_t f = 0; f < kChunk; ++f)
    order.push_back((f % 4) * 4 + f / 4);
  ValueRange sums = groupLoop.getResults();
  for (int64_t m = 0; m < tile; ++m) {
    Value lo = vector::ShuffleOp::create(rw, loc, sums[m * 4], sums[m * 4 + 1],
                                         ArrayRef<int64_t>{0, 1, 2, 3, 4, 5,
                                                           6, 7});
    Value hi = vector::ShuffleOp::create(
        rw, loc, sums[m * 4 + 2], sums[m * 4 + 3],
        ArrayRef<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
    Value v = vector::ShuffleOp::create(rw, loc, lo, hi, order);
    auto ifValid = scf::IfOp::create(rw, loc, valid[m], /*withElse=*/false);
    OpBuilder::InsertionGuard g4(rw);
    rw.setInsertionPointToStart(&ifValid.getThenRegion().front());
    if (scratch) {
      vector::StoreOp::create(rw, loc, v, scratch,
                              ValueRange{split, tileRows[m], col0},
                              /*nontemporal=*/false, llvm::MaybeAlign(16));
      continue;
    }
    // One split: added to the output (the generic accumulates into it).
    for (int64_t f = 0; f < kChunk; ++f) {
      SmallVector<Value> idx(xIdx[m]);
      idx.push_back(arith::AddIOp::create(rw, loc, col0, cst(rw, f)));
      Value old = memref::LoadOp::create(rw, loc, g.out, idx);
      Value add = arith::AddFOp::create(
          rw, loc, old, vector::ExtractOp::create(rw, loc, v, f));
      memref::StoreOp::create(rw, loc, add, g.out, idx);
    }
  }
}

void GemvBuilder::buildReduceKernel(Value scratch, int64_t splits) {
  // One thread per output (m, n), n fastest: out += Σ_s scratch[s, m, n].
  Value one = cst(rw, 1);
  Value n = cst(rw, g.n);
  Value total = arith::MulIOp::create(rw, loc, rows, n);
  OpBuilder::InsertionGuard guard(rw);
  gpu::LaunchOp launch;
  Value linear =
      quench::createLinearLaunch(rw, loc, total, cst(rw, blockSize), &launch);
  launch->setAttr("quench.kernel", rw.getStringAttr("dequant_gemv_reduce"));
  Value col = arith::RemUIOp::create(rw, loc, linear, n);
  Value row = arith::DivUIOp::create(rw, loc, linear, n);
  SmallVector<Value> idx = batchIndices(rw, row);
  idx.push_back(col);
  Value init = memref::LoadOp::create(rw, loc, g.out, idx);
  auto loop = scf::ForOp::create(rw, loc, cst(rw, 0), cst(rw, splits), one,
                                 ValueRange{init});
  {
    OpBuilder::InsertionGuard g2(rw);
    rw.setInsertionPointToStart(loop.getBody());
    Value part = memref::LoadOp::create(
        rw, loc, scratch, ValueRange{loop.getInductionVar(), row, col});
    scf::YieldOp::create(
        rw, loc,
        ValueRange{arith::AddFOp::create(rw, loc,
                                         loop.getRegionIterArgs()[0], part)});
  }
  memref::StoreOp::create(rw, loc, loop.getResult(0), g.out, idx);
}

namespace {
struct QuenchGPUDequantGemvPass
    : public quench::impl::QuenchGPUDequantGemvBase<QuenchGPUDequantGemvPass> {
  using Base::Base;
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (blockSize < 32 || blockSize > 1024 || blockSize % 32) {
      func.emitError("block-size must be a multiple of 32 in [32, 1024]");
      return signalPassFailure();
    }
    if (maxRows < 1 || rowTile < 1 || rowTile > 16) {
      func.emitError("max-rows must be positive and row-tile in [1, 16]");
      return signalPassFailure();
    }
    if (targetThreads < 1) {
      func.emitError("target-threads must be positive");
      return signalPassFailure();
    }
    SmallVector<linalg::GenericOp> ops;
    func.walk([&](linalg::GenericOp op) { ops.push_back(op); });
    for (linalg::GenericOp op : ops) {
      Gemv g;
      SmallVector<memref::GetGlobalOp> globals;
      // Anything else keeps the generic kernels (after
      // quench-gpu-parallel-dims-outer: one thread per output).
      if (!matchGemv(op, g, globals) ||
          !GemvBuilder(g, maxRows, rowTile, targetThreads, blockSize).build())
        continue;
      // 16-byte loads from the constants: their globals promise it.
      quench::alignGlobalsTo16(func, globals);
    }
  }
};
} // namespace
