//===- MmaSpGemm.cpp - 2:4 sparse tensor-core GEMM kernels ----------------===//
//
// `quench-gpu-mma-sp-gemm`: the specification generic of a 2:4
// `quench.sparse_linear` (marked `quench.sparse_matmul`,
// lib/Conversion/QuenchToLinalg/SparseLinear.cpp) with f16 operands and f32
// sums, or i8 operands and i32 sums (W8A8), becomes one gpu.launch of a
// kernel on NVIDIA's sparse tensor cores (`mma.sp`).
//
// Orientation: the compressed weight is the sparse operand A (16 output
// features x 32 logical K for f16, m16n8k32; x 64 for int8, m16n8k64) and
// the activations are B (K x 8 rows; B is "col" major, i.e. row m of x
// [M, K] is column m of B, as x is stored), so the kernel computes
// y^T = W x^T; accumulator element (r, e) of a lane is feature g + 8 r and
// activation row 2 c + e (g = lane / 4, c = lane % 4).
//
//   grid (ceil(N / 64), ceil(rows / 32)), 128 threads = 4 warps; warp w
//   owns features [64 bx + 16 w, + 16) and the block's 32 rows: 4 n8
//   tiles, one A fragment per K step shared by the 4 mma.sp;
//   per K step (32 halves or 64 int8 of logical K) and lane: 4 32-bit
//   loads of the compressed values (the A fragment, m16n8k16 / m16n8k32
//   layout of the compressed 16 x 16 / 16 x 32 matrix), 4 per n8 tile of
//   activations (the B fragment), and one 32-bit metadata word;
//   epilogue: accumulators added to the output when the row is in range.
//
// Metadata: the 2-bit indices of quench.sparse_linear (docs/sparsity.md:
// per row, the two indices of a group of 4 form a nibble, low index in the
// low bits, groups in increasing order) are exactly the row-wise metadata
// of mma.sp; only which lane holds which 16 bits differs. At compile time
// the pass builds a constant [N / 16, K steps, 32 lanes] of 32-bit words:
// lane 4 g + c holds bits [0, 16) = the 4 nibbles of row g for logical K
// [16 c, 16 c + 16) of the step, bits [16, 32) the same of row g + 8
// (sparsity selector 0; f16 reads lanes with c < 2 only, int8 all).
//
// Loads are plain global loads (no shared-memory staging, no cp.async):
// the values, metadata and activations of a K step are read once per warp
// and reused across its 4 mma.sp (A) or by the block's 4 warps through L1
// (B). Not tuned: no GPU measured it (docs/gpu.md).
//
// The host emulation (`emulate`) keeps the grid, the warps' tiles, the
// lanes' load addresses and the metadata words, and computes mma.sp by its
// PTX definition over buffers holding the 32 lanes' fragment registers.
//
//===----------------------------------------------------------------------===//

#include "LaunchUtils.h"
#include "quench/Codegen/GPU/Passes.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"
#include "quench/Quant/SparseStorage.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include <cstring>

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUMMASPGEMM
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Warps per block (one 16-feature tile each) and n8 tiles of rows per
/// warp.
constexpr int64_t kWarps = 4, kNT = 4;
constexpr int64_t kThreads = 32 * kWarps;
constexpr int64_t kBlockRows = 8 * kNT, kBlockFeatures = 16 * kWarps;

/// A matched 2:4 sparse contraction: out[rows, N] += x[rows, K] W^T with
/// W [N, K] given as values [N, K / 2] and indices [N, K / 4, 2].
struct SparseGemm {
  linalg::LinalgOp op;
  Value x, values, out;
  /// The global next to which the pass's constants go.
  memref::GlobalOp anchor;
  /// The in-group index (0-3) of every slot, [N, K / 2].
  std::vector<int8_t> slotIndex;
  /// The compressed values [N, K / 2] as raw bytes, when the pass makes
  /// them (from a dense weight); otherwise `values` holds them.
  std::vector<char> valueBytes;
  int64_t k = 0, n = 0;
  bool integer = false;
  Type elementType, accType;
  /// Elements per 32-bit register, logical K per mma.sp.
  int64_t p32 = 2, kStep = 32;
};

/// The body is the specification's: out + select(index == t, ext(x) *
/// ext(w), 0), and nothing else (no scales).
bool isSparseBody(linalg::GenericOp op, bool integer) {
  int selects = 0;
  for (Operation &inner : op.getBlock()->without_terminator()) {
    if (!isa<arith::ConstantOp, arith::IndexCastOp, linalg::IndexOp,
             arith::CmpIOp, arith::SelectOp>(inner) &&
        (integer ? !isa<arith::ExtSIOp, arith::MulIOp, arith::AddIOp>(inner)
                 : !isa<arith::ExtFOp, arith::MulFOp, arith::AddFOp>(inner)))
      return false;
    selects += isa<arith::SelectOp>(inner);
  }
  return selects == 1;
}

/// The constant global `value` reads (a memref.get_global, possibly
/// through reshapes), or null.
memref::GlobalOp constantGlobal(Value value, SymbolTable &symbols) {
  while (Operation *def = value.getDefiningOp()) {
    if (auto get = dyn_cast<memref::GetGlobalOp>(def)) {
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      return global && global.getConstant() ? global : memref::GlobalOp();
    }
    if (!isa<memref::ExpandShapeOp, memref::CollapseShapeOp>(def))
      return {};
    value = def->getOperand(0);
  }
  return {};
}

/// The operand and accumulator types the sparse kernels take: f16 -> f32
/// (m16n8k32) or i8 -> i32 (m16n8k64); sets g.elementType, g.accType and
/// g.integer.
bool matchElementTypes(SparseGemm &g, MemRefType xt, MemRefType ot) {
  g.elementType = xt.getElementType();
  g.accType = ot.getElementType();
  g.integer = g.elementType.isInteger(8);
  return (g.elementType.isF16() && g.accType.isF32()) ||
         (g.integer && g.accType.isInteger(32));
}

bool matchSparseGemm(linalg::GenericOp op, SparseGemm &g, SymbolTable &symbols,
                     SmallVectorImpl<memref::GetGlobalOp> &globals) {
  if (!op->hasAttr(quench::kSparseMatmulAttrName) ||
      !op.hasPureBufferSemantics() || op.getNumDpsInputs() != 3 ||
      op.getNumDpsInits() != 1)
    return false;
  g.op = op;
  g.x = op.getDpsInputs()[0];
  g.values = op.getDpsInputs()[1];
  g.out = op.getDpsInits()[0];
  auto xt = dyn_cast<MemRefType>(g.x.getType());
  auto vt = dyn_cast<MemRefType>(g.values.getType());
  auto it = dyn_cast<MemRefType>(op.getDpsInputs()[2].getType());
  auto ot = dyn_cast<MemRefType>(g.out.getType());
  if (!xt || !vt || !it || !ot || vt.getRank() != 3 || xt.getRank() < 2 ||
      !vt.hasStaticShape() || !it.hasStaticShape())
    return false;
  if (!matchElementTypes(g, xt, ot))
    return false;
  if (vt.getElementType() != g.elementType ||
      !it.getElementType().isInteger(8) || !isSparseBody(op, g.integer))
    return false;
  // 2:4 only: x [rows..., G, 4], values and indices [N, G, 2].
  int64_t nb = xt.getRank() - 2;
  SmallVector<AffineMap> maps =
      quench::getSparseMatmulIndexingMaps(op.getContext(), nb, 0);
  if (xt.getShape().back() != 4 || vt.getDimSize(2) != 2 ||
      it.getShape() != vt.getShape() || ot.getRank() != nb + 1 ||
      op.getIndexingMapsArray() != maps)
    return false;
  g.n = vt.getDimSize(0);
  g.k = vt.getDimSize(1) * 4;
  g.p32 = g.integer ? 4 : 2;
  g.kStep = g.integer ? 64 : 32;
  // Whole 16-feature tiles and K steps.
  if (g.n % 16 || g.k % g.kStep || g.k == 0 || g.n == 0)
    return false;
  g.anchor = constantGlobal(op.getDpsInputs()[2], symbols);
  if (!g.anchor)
    return false;
  auto init = dyn_cast_or_null<ElementsAttr>(
      g.anchor.getInitialValue().value_or(Attribute()));
  if (!init)
    return false;
  if (init.isSplat()) {
    auto dense = dyn_cast<DenseElementsAttr>(init);
    if (!dense)
      return false;
    g.slotIndex.assign(g.n * g.k / 2, static_cast<int8_t>(
                                          dense.getSplatValue<APInt>()
                                              .getZExtValue()));
  } else {
    std::optional<ArrayRef<char>> raw = quench::getRawConstantData(init);
    if (!raw || int64_t(raw->size()) != g.n * g.k / 2)
      return false;
    g.slotIndex.assign(raw->begin(), raw->end());
  }
  SmallVector<memref::GetGlobalOp> gets;
  if (!quench::isAlignedDeviceBuffer(g.x, gets, /*throughReshapes=*/true) ||
      !quench::isAlignedDeviceBuffer(g.values, gets, /*throughReshapes=*/true))
    return false;
  if (!ot.getLayout().isIdentity() || ot.getMemorySpace())
    return false;
  globals.append(gets.begin(), gets.end());
  return true;
}

/// A dense contraction out[batch..., M, N] += x[batch..., M, K] W^T, W
/// [N, K] or stored [K, N],
/// (f16 into f32, i8 into i32: the bodies the dense tensor-core pass
/// takes) whose weight W is a constant that is 2:4 sparse along K (every
/// group of 4 holds at most 2 nonzeros): the pass compresses it (kept
/// values in column order, zero values at the lowest free columns, as
/// quench-pack-sparse-weights does) and runs the sparse kernel.
bool matchDenseSparseWeight(linalg::LinalgOp op, SparseGemm &g,
                            SymbolTable &symbols,
                            SmallVectorImpl<memref::GetGlobalOp> &globals) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumReductionLoops() != 1)
    return false;
  int64_t loops = op.getNumLoops(), r = loops - 1;
  if (r < 2 ||
      op.getIteratorTypesArray().back() != utils::IteratorType::reduction)
    return false;
  g.op = op;
  g.x = op.getDpsInputs()[0];
  Value w = op.getDpsInputs()[1];
  g.out = op.getDpsInits()[0];
  auto xt = dyn_cast<MemRefType>(g.x.getType());
  auto wt = dyn_cast<MemRefType>(w.getType());
  auto ot = dyn_cast<MemRefType>(g.out.getType());
  if (!xt || !wt || !ot || wt.getRank() != 2 || !wt.hasStaticShape())
    return false;
  if (!matchElementTypes(g, xt, ot))
    return false;
  if (wt.getElementType() != g.elementType ||
      !quench::isMulAddBody(op, g.integer))
    return false;
  // Loops (batch..., m, n, k): x (batch..., m, k), W (n, k), out
  // (batch..., m, n).
  MLIRContext *ctx = op.getContext();
  auto dims = [&](ArrayRef<int64_t> ds) {
    SmallVector<AffineExpr> e;
    for (int64_t d : ds)
      e.push_back(getAffineDimExpr(d, ctx));
    return AffineMap::get(loops, 0, e, ctx);
  };
  SmallVector<int64_t> xDims, oDims;
  for (int64_t d = 0; d < r - 2; ++d) {
    xDims.push_back(d);
    oDims.push_back(d);
  }
  xDims.append({r - 2, r});
  oDims.append({r - 2, r - 1});
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  // W stored [N, K] (linear layers, W8A8 codes) or [K, N] (an ONNX
  // MatMul's initializer): read transposed at compile time.
  bool kn = maps[1] == dims({r, r - 1});
  if (maps[0] != dims(xDims) || (!kn && maps[1] != dims({r - 1, r})) ||
      maps[2] != dims(oDims))
    return false;
  g.n = wt.getDimSize(kn ? 1 : 0);
  g.k = wt.getDimSize(kn ? 0 : 1);
  g.p32 = g.integer ? 4 : 2;
  g.kStep = g.integer ? 64 : 32;
  if (g.n % 16 || g.k % g.kStep || g.k == 0 || g.n == 0 ||
      ot.getDimSize(r - 1) != g.n)
    return false;
  g.anchor = constantGlobal(w, symbols);
  if (!g.anchor)
    return false;
  auto init = dyn_cast_or_null<ElementsAttr>(
      g.anchor.getInitialValue().value_or(Attribute()));
  std::optional<ArrayRef<char>> raw =
      init ? quench::getRawConstantData(init) : std::nullopt;
  int64_t bytes = g.integer ? 1 : 2;
  if (!raw || int64_t(raw->size()) != g.n * g.k * bytes)
    return false;
  // Nonzero: any bit but the sign (f16 -0 is a zero).
  auto at = [&](int64_t row, int64_t col) {
    return raw->data() + (kn ? col * g.n + row : row * g.k + col) * bytes;
  };
  auto element = [&](int64_t row, int64_t col) -> uint16_t {
    const char *p = at(row, col);
    if (g.integer)
      return static_cast<uint8_t>(*p);
    return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) |
                                 (static_cast<uint8_t>(p[1]) << 8));
  };
  auto nonzero = [&](int64_t row, int64_t col) {
    uint16_t v = element(row, col);
    return g.integer ? v != 0 : (v & 0x7fff) != 0;
  };
  quench::quant::NMPositions pos;
  if (!quench::quant::selectNMPositions(g.n, g.k, 2, 4, nonzero, pos))
    return false;
  SmallVector<memref::GetGlobalOp> gets;
  if (!quench::isAlignedDeviceBuffer(g.x, gets, /*throughReshapes=*/true) ||
      !ot.getLayout().isIdentity() || ot.getMemorySpace())
    return false;
  int64_t slots = g.k / 2;
  g.slotIndex.resize(g.n * slots);
  g.valueBytes.resize(g.n * slots * bytes);
  for (int64_t row = 0; row < g.n; ++row)
    for (int64_t s = 0; s < slots; ++s) {
      int32_t col = pos.columns[row * slots + s];
      g.slotIndex[row * slots + s] = static_cast<int8_t>(col % 4);
      std::memcpy(&g.valueBytes[(row * slots + s) * bytes], at(row, col),
                  bytes);
    }
  globals.append(gets.begin(), gets.end());
  return true;
}

class SparseGemmBuilder : quench::KernelBuilderBase {
public:
  SparseGemmBuilder(const SparseGemm &g, bool emulate)
      : KernelBuilderBase(g.op->getContext(), g.op->getLoc()), g(g),
        emulate(emulate) {}
  void build(memref::GlobalOp metadata, memref::GlobalOp values);

private:
  Value flatten(Value memref);
  /// Flat offsets of lane `lane`'s register q of the A fragment (values
  /// [N, K / 2]) at K step `ks`, of its register q of n8 tile j's B
  /// fragment (x [rows, K]; rows past the end read the last row), and of
  /// its metadata word.
  Value aOffset(Value f0, Value lane, Value ks, int64_t q);
  Value bOffset(Value lane, Value ks, int64_t j, int64_t q);
  Value metaOffset(Value f0, Value lane, Value ks);
  /// Adds accumulator element (j, r, e) of lane `lane` to the output when
  /// its row is in range.
  void accumulate(Value f0, Value lane, int64_t j, int64_t r, int64_t e,
                  Value value);
  /// The emulation of one warp's K step: loads into the lanes' register
  /// buffers, then mma.sp by its definition into accBuf.
  void emulateStep(Value f0, Value ks);

  const SparseGemm &g;
  bool emulate;
  Value x1, v1, c1, meta1, rows, lastRow, m0, aRegs, bRegs, metaRegs, accBuf;
};

Value SparseGemmBuilder::flatten(Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  if (type.getRank() == 1)
    return memref;
  SmallVector<ReassociationIndices> all(1);
  for (int64_t d = 0; d < type.getRank(); ++d)
    all[0].push_back(d);
  return memref::CollapseShapeOp::create(rw, loc, memref, all);
}

Value SparseGemmBuilder::aOffset(Value f0, Value lane, Value ks, int64_t q) {
  // Compressed A (16 x kStep / 2): register q of lane 4 g + c holds row
  // g + 8 (q % 2), columns c p32 + 4 p32 (q / 2) .. + p32 (the dense
  // m16n8k16 / m16n8k32 A layout).
  Value row = add(add(f0, div(lane, 4)), 8 * (q % 2));
  Value col = add(add(mul(ks, g.kStep / 2), mul(rem(lane, 4), g.p32)),
                  (q / 2) * 4 * g.p32);
  return add(mul(row, g.k / 2), col);
}

Value SparseGemmBuilder::bOffset(Value lane, Value ks, int64_t j, int64_t q) {
  // B (kStep x 8): register q of lane 4 g + c holds column g (activation
  // row m0 + 8 j + g), K rows c p32 + 4 p32 q .. + p32.
  Value row = arith::MinUIOp::create(rw, loc, add(add(m0, div(lane, 4)), 8 * j),
                                     lastRow);
  Value col =
      add(add(mul(ks, g.kStep), mul(rem(lane, 4), g.p32)), q * 4 * g.p32);
  return add(mul(row, g.k), col);
}

Value SparseGemmBuilder::metaOffset(Value f0, Value lane, Value ks) {
  // Two i16 halves per word.
  int64_t steps = g.k / g.kStep;
  Value tile = div(f0, 16);
  return mul(add(mul(add(mul(tile, steps), ks), 32), lane), 2);
}

void SparseGemmBuilder::accumulate(Value f0, Value lane, int64_t j, int64_t r,
                                   int64_t e, Value value) {
  Value feature = add(add(f0, div(lane, 4)), 8 * r);
  Value row = add(add(m0, 8 * j), add(mul(rem(lane, 4), 2), e));
  auto ifValid = scf::IfOp::create(rw, loc, lt(row, rows), /*withElse=*/false);
  OpBuilder::InsertionGuard guard(rw);
  rw.setInsertionPointToStart(&ifValid.getThenRegion().front());
  Value at = add(mul(row, g.n), feature);
  Value old = memref::LoadOp::create(rw, loc, c1, ValueRange{at});
  Value sum = g.integer ? (Value)arith::AddIOp::create(rw, loc, old, value)
                        : (Value)arith::AddFOp::create(rw, loc, old, value);
  memref::StoreOp::create(rw, loc, sum, c1, ValueRange{at});
}

void SparseGemmBuilder::emulateStep(Value f0, Value ks) {
  // Every lane's registers, from the addresses the device code uses.
  forEachLane([&](Value t) {
    for (int64_t q = 0; q < 4; ++q)
      for (int64_t e = 0; e < g.p32; ++e) {
        store(load(v1, {add(aOffset(f0, t, ks, q), e)}), aRegs,
              {t, cst(q), cst(e)});
        for (int64_t j = 0; j < kNT; ++j)
          store(load(x1, {add(bOffset(t, ks, j, q), e)}), bRegs,
                {t, cst(j), cst(q), cst(e)});
      }
    Value mo = metaOffset(f0, t, ks);
    for (int64_t h = 0; h < 2; ++h)
      store(load(meta1, {add(mo, h)}), metaRegs, {t, cst(h)});
  });
  // mma.sp (2:4, sparsity selector 0) by its definition: D (16 x 8) += A
  // (16 x kStep, of which each group of 4 columns holds 2 values) x B.
  // Row `row`'s compressed column cc = 2 gr + s (group gr, slot s) is
  // element cc % p32 of register row / 8 + 2 (cc / 4p32) of lane
  // 4 (row % 8) + (cc % 4p32) / p32; its logical column is 4 gr + idx,
  // idx = bits [4 (gr % 4) + 2 s, + 2) of the metadata half row / 8 of
  // lane 4 (row % 8) + gr / 4. B element (k, col) is element k % p32 of
  // register k / 4p32 of lane 4 col + (k % 4p32) / p32. Accumulator
  // element (r, e) of lane t is (t / 4 + 8 r, 2 (t % 4) + e).
  Type i16 = rw.getI16Type();
  int64_t regK = 4 * g.p32;
  forEachLane([&](Value t) {
    for (int64_t j = 0; j < kNT; ++j)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t e = 0; e < 2; ++e) {
          Value row = add(div(t, 4), 8 * r);
          Value col = add(mul(rem(t, 4), 2), e);
          Value slot = cst((j * 2 + r) * 2 + e);
          Value init = load(accBuf, {t, slot});
          auto loop = scf::ForOp::create(rw, loc, cst(0), cst(g.kStep / 2),
                                         cst(1), ValueRange{init});
          OpBuilder::InsertionGuard guard(rw);
          rw.setInsertionPointToStart(loop.getBody());
          Value cc = loop.getInductionVar();
          Value gr = div(cc, 2), s = rem(cc, 2);
          Value aLane = add(mul(rem(row, 8), 4), div(rem(cc, regK), g.p32));
          Value a = load(aRegs, {aLane, add(div(row, 8), mul(div(cc, regK), 2)),
                                 rem(cc, g.p32)});
          Value half = load(metaRegs, {add(mul(rem(row, 8), 4), div(gr, 4)),
                                       div(row, 8)});
          Value shift = arith::IndexCastOp::create(
              rw, loc, i16, add(mul(rem(gr, 4), 4), mul(s, 2)));
          Value bits = arith::AndIOp::create(
              rw, loc, arith::ShRUIOp::create(rw, loc, half, shift),
              arith::ConstantOp::create(rw, loc, rw.getI16IntegerAttr(3)));
          Value idx =
              arith::IndexCastUIOp::create(rw, loc, rw.getIndexType(), bits);
          Value kk = add(mul(gr, 4), idx);
          Value b = load(bRegs, {add(mul(col, 4), div(rem(kk, regK), g.p32)),
                                 cst(j), div(kk, regK), rem(kk, g.p32)});
          Value sum;
          Value acc = loop.getRegionIterArgs()[0];
          if (g.integer) {
            a = arith::ExtSIOp::create(rw, loc, g.accType, a);
            b = arith::ExtSIOp::create(rw, loc, g.accType, b);
            sum = arith::AddIOp::create(rw, loc, acc,
                                        arith::MulIOp::create(rw, loc, a, b));
          } else {
            a = arith::ExtFOp::create(rw, loc, g.accType, a);
            b = arith::ExtFOp::create(rw, loc, g.accType, b);
            sum = arith::AddFOp::create(rw, loc, acc,
                                        arith::MulFOp::create(rw, loc, a, b));
          }
          scf::YieldOp::create(rw, loc, sum);
          rw.setInsertionPointAfter(loop);
          store(loop.getResult(0), accBuf, {t, slot});
        }
  });
}

void SparseGemmBuilder::build(memref::GlobalOp metadata,
                              memref::GlobalOp values) {
  rw.setInsertionPoint(g.op);
  auto ot = cast<MemRefType>(g.out.getType());
  // Rows: the output's dimensions but the last.
  Value hostRows = cst(1);
  for (int64_t d = 0; d + 1 < ot.getRank(); ++d)
    hostRows = mul(hostRows, memref::DimOp::create(rw, loc, g.out, d));
  Value gridY = arith::MaxUIOp::create(
      rw, loc, arith::CeilDivUIOp::create(rw, loc, hostRows, cst(kBlockRows)),
      cst(1));
  Value gridX = cst(llvm::divideCeil(g.n, kBlockFeatures));
  Value x1Host = flatten(g.x), c1Host = flatten(g.out);
  Value v1Host = values ? (Value)memref::GetGlobalOp::create(
                              rw, loc, values.getType(), values.getSymName())
                        : flatten(g.values);
  Value metaHost = memref::GetGlobalOp::create(
      rw, loc, metadata.getType(), metadata.getSymName());
  Value blockX = cst(emulate ? 1 : kThreads);
  auto launch =
      gpu::LaunchOp::create(rw, loc, gridX, gridY, cst(1), blockX, cst(1),
                            cst(1), nullptr, nullptr, ValueRange{}, {});
  launch->setAttr("quench.kernel", rw.getStringAttr("mma_sp_gemm"));
  Block &body = launch.getBody().front();
  rw.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(rw, loc);
  rw.setInsertionPoint(terminator);
  x1 = x1Host;
  v1 = v1Host;
  c1 = c1Host;
  meta1 = metaHost;
  rows = hostRows;
  m0 = mul(launch.getBlockIds().y, kBlockRows);
  // No rows (an empty batch): nothing to read.
  auto ifRows = scf::IfOp::create(rw, loc, lt(m0, rows), /*withElse=*/false);
  rw.setInsertionPointToStart(&ifRows.getThenRegion().front());
  lastRow = arith::SubIOp::create(rw, loc, rows, cst(1));
  Value featureBase = mul(launch.getBlockIds().x, kBlockFeatures);
  int64_t steps = g.k / g.kStep;
  Type et = g.elementType;

  if (emulate) {
    aRegs = memref::AllocOp::create(rw, loc,
                                    MemRefType::get({32, 4, g.p32}, et));
    bRegs = memref::AllocOp::create(
        rw, loc, MemRefType::get({32, kNT, 4, g.p32}, et));
    metaRegs = memref::AllocOp::create(
        rw, loc, MemRefType::get({32, 2}, rw.getI16Type()));
    accBuf = memref::AllocOp::create(
        rw, loc, MemRefType::get({32, kNT * 4}, g.accType));
    {
      OpBuilder::InsertionGuard guard(rw);
      auto warps = scf::ForOp::create(rw, loc, cst(0), cst(kWarps), cst(1));
      rw.setInsertionPointToStart(warps.getBody());
      Value f0 = add(featureBase, mul(warps.getInductionVar(), 16));
      auto ifTile =
          scf::IfOp::create(rw, loc, lt(f0, cst(g.n)), /*withElse=*/false);
      rw.setInsertionPointToStart(&ifTile.getThenRegion().front());
      Value zero = arith::ConstantOp::create(rw, loc, rw.getZeroAttr(g.accType));
      {
        OpBuilder::InsertionGuard inner(rw);
        auto lanes = scf::ForOp::create(rw, loc, cst(0), cst(32), cst(1));
        rw.setInsertionPointToStart(lanes.getBody());
        for (int64_t q = 0; q < kNT * 4; ++q)
          memref::StoreOp::create(rw, loc, zero, accBuf,
                                  ValueRange{lanes.getInductionVar(), cst(q)});
      }
      {
        OpBuilder::InsertionGuard inner(rw);
        auto kLoop = scf::ForOp::create(rw, loc, cst(0), cst(steps), cst(1));
        rw.setInsertionPointToStart(kLoop.getBody());
        emulateStep(f0, kLoop.getInductionVar());
      }
      auto lanes = scf::ForOp::create(rw, loc, cst(0), cst(32), cst(1));
      rw.setInsertionPointToStart(lanes.getBody());
      Value t = lanes.getInductionVar();
      for (int64_t j = 0; j < kNT; ++j)
        for (int64_t r = 0; r < 2; ++r)
          for (int64_t e = 0; e < 2; ++e) {
            Value v = memref::LoadOp::create(
                rw, loc, accBuf, ValueRange{t, cst((j * 2 + r) * 2 + e)});
            accumulate(f0, t, j, r, e, v);
          }
    }
    for (Value buffer : {aRegs, bRegs, metaRegs, accBuf})
      memref::DeallocOp::create(rw, loc, buffer);
  } else {
    Value tid = launch.getThreadIds().x;
    Value lane = rem(tid, 32);
    Value f0 = add(featureBase, mul(div(tid, 32), 16));
    // Warp-uniform: the warp's 16 features exist (N is a multiple of 16).
    auto ifTile =
        scf::IfOp::create(rw, loc, lt(f0, cst(g.n)), /*withElse=*/false);
    rw.setInsertionPointToStart(&ifTile.getThenRegion().front());
    auto accVector = VectorType::get({2, 2}, g.accType);
    Value zero = arith::ConstantOp::create(
        rw, loc, accVector,
        DenseElementsAttr::get(accVector, rw.getZeroAttr(g.accType)));
    SmallVector<Value> acc(kNT, zero);
    auto kLoop =
        scf::ForOp::create(rw, loc, cst(0), cst(steps), cst(1), acc);
    {
      OpBuilder::InsertionGuard guard(rw);
      rw.setInsertionPointToStart(kLoop.getBody());
      Value ks = kLoop.getInductionVar();
      auto regType = VectorType::get({g.p32}, et);
      auto fragType = VectorType::get({4, g.p32}, et);
      auto loadFragment = [&](Value buffer, function_ref<Value(int64_t)> at) {
        Value frag = arith::ConstantOp::create(
            rw, loc, fragType,
            DenseElementsAttr::get(fragType, rw.getZeroAttr(et)));
        for (int64_t q = 0; q < 4; ++q) {
          // 4-byte aligned: rows are whole K steps, registers 32 bits.
          Value reg = vector::LoadOp::create(rw, loc, regType, buffer,
                                             ValueRange{at(q)},
                                             /*nontemporal=*/false,
                                             llvm::MaybeAlign(4));
          frag = vector::InsertOp::create(rw, loc, reg, frag,
                                          ArrayRef<int64_t>{q});
        }
        return frag;
      };
      Value a = loadFragment(
          v1, [&](int64_t q) { return aOffset(f0, lane, ks, q); });
      auto metaType = VectorType::get({2}, rw.getI16Type());
      Value meta = vector::LoadOp::create(
          rw, loc, metaType, meta1, ValueRange{metaOffset(f0, lane, ks)},
          /*nontemporal=*/false, llvm::MaybeAlign(4));
      SmallVector<Value> next;
      for (int64_t j = 0; j < kNT; ++j) {
        Value b = loadFragment(
            x1, [&](int64_t q) { return bOffset(lane, ks, j, q); });
        next.push_back(nvgpu::MmaSparseSyncOp::create(
            rw, loc, a, b, kLoop.getRegionIterArgs()[j], meta,
            ArrayRef<int64_t>{16, 8, g.kStep}));
      }
      scf::YieldOp::create(rw, loc, next);
    }
    for (int64_t j = 0; j < kNT; ++j)
      for (int64_t r = 0; r < 2; ++r)
        for (int64_t e = 0; e < 2; ++e)
          accumulate(f0, lane, j, r, e,
                     vector::ExtractOp::create(rw, loc, kLoop.getResult(j),
                                               ArrayRef<int64_t>{r, e}));
  }
  rw.eraseOp(g.op);
}

/// A constant global holding `bytes` as a 1-D `elementType` array, inserted
/// before `g.anchor` under a unique name derived from `name`.
memref::GlobalOp createConstantGlobal(const SparseGemm &g, StringRef name,
                                      Type elementType, ArrayRef<char> bytes,
                                      SymbolTable &symbols) {
  memref::GlobalOp anchor = g.anchor;
  int64_t count =
      static_cast<int64_t>(bytes.size()) / (elementType.getIntOrFloatBitWidth() / 8);
  auto tensorType = RankedTensorType::get({count}, elementType);
  ElementsAttr value = quench::createConstantAttr(tensorType, bytes, name);
  OpBuilder b(anchor);
  auto global = memref::GlobalOp::create(
      b, anchor.getLoc(), ("__" + name).str(), b.getStringAttr("private"),
      MemRefType::get({count}, elementType), value, /*constant=*/true,
      b.getI64IntegerAttr(16));
  symbols.insert(global);
  return global;
}

/// The mma.sp metadata words of `g`'s slot indices, as a constant of i16
/// halves (low half first).
memref::GlobalOp createMetadataGlobal(const SparseGemm &g,
                                      SymbolTable &symbols) {
  int64_t slots = g.k / 2;
  std::vector<uint32_t> words = quench::quant::mmaSpMetadata(
      g.n, g.k, g.kStep, [&](int64_t row, int64_t group, int64_t slot) {
        return static_cast<int>(g.slotIndex[row * slots + group * 2 + slot]);
      });
  std::vector<char> bytes(words.size() * 4);
  for (size_t i = 0; i < words.size(); ++i)
    for (int b = 0; b < 4; ++b)
      bytes[i * 4 + b] = static_cast<char>((words[i] >> (8 * b)) & 0xff);
  return createConstantGlobal(g, "quench_mma_sp_metadata",
                              IntegerType::get(g.op->getContext(), 16), bytes,
                              symbols);
}

struct QuenchGPUMmaSpGemmPass
    : public quench::impl::QuenchGPUMmaSpGemmBase<QuenchGPUMmaSpGemmPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    for (auto func : module.getOps<func::FuncOp>()) {
      SmallVector<linalg::LinalgOp> ops;
      func.walk([&](linalg::LinalgOp op) { ops.push_back(op); });
      for (linalg::LinalgOp op : ops) {
        SparseGemm g;
        SmallVector<memref::GetGlobalOp> globals;
        auto generic = dyn_cast<linalg::GenericOp>(op.getOperation());
        // Anything else keeps the dense tensor-core or generic kernels.
        if (!(generic && matchSparseGemm(generic, g, symbols, globals)) &&
            !matchDenseSparseWeight(op, g, symbols, globals))
          continue;
        memref::GlobalOp metadata = createMetadataGlobal(g, symbols);
        memref::GlobalOp values;
        if (!g.valueBytes.empty())
          values = createConstantGlobal(g, "quench_mma_sp_values",
                                        g.elementType, g.valueBytes, symbols);
        SparseGemmBuilder(g, emulate).build(metadata, values);
        // 32-bit loads from the constants: 16-byte aligned globals.
        quench::alignGlobalsTo16(func, globals);
      }
    }
  }
};

} // namespace
