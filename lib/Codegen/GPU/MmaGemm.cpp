//===- MmaGemm.cpp - tensor-core GEMM kernels -----------------------------===//
//
// `quench-gpu-mma-gemm`: a contraction on device buffers with f16
// operands and f32 accumulation (prefill matmuls and linear layers of f16
// models), or int8 operands and i32 accumulation (the W8A8 contraction),
// becomes one gpu.launch of a block-tiled tensor-core kernel instead of
// the generic one-thread-per-output mapping.
//
//   grid (ceil(N / 64), ceil(rows / 64), batch), 128 threads = 4 warps;
//   block tile 64 x 64, K steps of 64 bytes (32 halves, 64 int8); warp w
//   owns the 32 x 32 warp tile at (32 (w / 2), 32 (w % 2)): 2 x 4
//   mma.sync m16n8k16 per 16 of K (m16n8k32 per 32 for int8), 8
//   vector<2x2> accumulators in registers;
//   A [64][64 + 16 bytes] and B [64 bytes of K][64 + 8 halves] (or
//   [64][64 + 16 bytes] for B stored [N, K]) tiles per stage in shared
//   memory, 3 stages: cp.async of 16 bytes per thread and chunk (2 chunks
//   of A and 2 of B per thread and stage), zero-filled (src-size 0)
//   outside the matrix, so edge tiles need no other predication; the 16
//   bytes of padding per row make the 8 row addresses of an ldmatrix hit
//   distinct banks;
//   per 16 (int8: 32) of K: one ldmatrix.x4 per m16 tile of A, one
//   ldmatrix.x4 per pair of n8 tiles of B (.trans for B [K, N], 16-bit
//   elements only);
//   epilogue: each accumulator pair (row g or g + 8, columns 2c, 2c + 1 of
//   its m16n8 tile, g = lane / 4, c = lane % 4) is added to the output
//   when in range.
//
// Pipeline: the first 2 K tiles are requested before the loop; iteration
// kt waits until tile kt has landed (cp.async.wait_group 1), synchronizes
// the block (tile kt visible to every warp, and every warp done with
// tile kt - 1), requests tile kt + 2 into tile kt - 1's stage, then
// computes on tile kt.
//
// The host emulation (`emulate`) keeps the grid, the tiles, the copies'
// addresses and zero-filling, the pipeline order, the ldmatrix lane
// addresses, the fragments and the epilogue; the copies are a loop over the
// block's 128 threads (so that no barrier is needed), and ldmatrix and
// mma.sync are computed by their PTX definitions warp by warp over buffers
// holding the 32 lanes' fragment registers. docs/gpu.md, "Tensor-core
// GEMM".
//
//===----------------------------------------------------------------------===//

#include "LaunchUtils.h"
#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUMMAGEMM
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// Block tile (rows, columns; the K step is 64 bytes: 32 halves or 64
/// bytes of int8), warps and pipeline stages.
constexpr int64_t kBM = 64, kBN = 64, kBKBytes = 64;
constexpr int64_t kWarpsM = 2, kWarpsN = 2;
constexpr int64_t kThreads = 32 * kWarpsM * kWarpsN;
constexpr int64_t kWM = kBM / kWarpsM, kWN = kBN / kWarpsN;
/// m16 tiles and n8 tiles of a warp tile.
constexpr int64_t kMT = kWM / 16, kNT = kWN / 8;
constexpr int64_t kStages = 3;
/// Padding per shared-memory row, and the size of a copy, in bytes: 16
/// (rows stay aligned for cp.async and ldmatrix, and 8 consecutive rows
/// start in distinct bank groups).
constexpr int64_t kChunkBytes = 16;

/// A matched contraction: C[batch..., M, N] += A[batch..., M, K] x B.
struct Gemm {
  linalg::LinalgOp op;
  Value a, b, c;
  /// B stored [N, K] (a linear layer's weight) instead of [K, N].
  bool bNK = false;
  /// B has the batch dims (grid z); otherwise they fold into the rows.
  bool bBatched = false;
  int64_t batchDims = 0, k = 0, n = 0;
  /// f16 operands into f32 (mma.sync m16n8k16), or i8 into i32
  /// (m16n8k32).
  Type elementType, accType;
  bool integer = false;
  /// Elements per 16-byte copy, per K tile and per mma.sync K.
  int64_t chunk = 8, bk = 32, mmaK = 16;
};

bool matchGemm(linalg::LinalgOp op, Gemm &g, int64_t minRows,
               SmallVectorImpl<memref::GetGlobalOp> &globals) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2 ||
      op.getNumDpsInits() != 1 || op.getNumReductionLoops() != 1)
    return false;
  int64_t loops = op.getNumLoops();
  int64_t r = loops - 1;
  if (r < 2 ||
      op.getIteratorTypesArray().back() != utils::IteratorType::reduction)
    return false;
  g.op = op;
  g.a = op.getDpsInputs()[0];
  g.b = op.getDpsInputs()[1];
  g.c = op.getDpsInits()[0];
  auto at = dyn_cast<MemRefType>(g.a.getType());
  auto bt = dyn_cast<MemRefType>(g.b.getType());
  auto ct = dyn_cast<MemRefType>(g.c.getType());
  if (!at || !bt || !ct)
    return false;
  g.elementType = at.getElementType();
  g.accType = ct.getElementType();
  g.integer = g.elementType.isInteger(8);
  // bf16: nvgpu.mma.sync's lowering (MLIR 22) deduces no PTX type for it.
  bool half = g.elementType.isF16();
  if (!(half && g.accType.isF32()) && !(g.integer && g.accType.isInteger(32)))
    return false;
  if (bt.getElementType() != g.elementType || !quench::isMulAddBody(op, g.integer))
    return false;
  int64_t bytes = g.integer ? 1 : 2;
  g.chunk = kChunkBytes / bytes;
  g.bk = kBKBytes / bytes;
  g.mmaK = 32 / bytes;

  // Loops (batch..., m, n, k); C indexed (batch..., m, n), A (batch..., m,
  // k), B (k, n) or (n, k), with or without the batch dims.
  MLIRContext *ctx = op.getContext();
  auto dims = [&](ArrayRef<int64_t> ds) {
    SmallVector<AffineExpr> e;
    for (int64_t d : ds)
      e.push_back(getAffineDimExpr(d, ctx));
    return AffineMap::get(loops, 0, e, ctx);
  };
  SmallVector<int64_t> batch, cDims, aDims;
  for (int64_t d = 0; d < r - 2; ++d)
    batch.push_back(d);
  int64_t m = r - 2, n = r - 1, k = r;
  cDims = batch;
  cDims.append({m, n});
  aDims = batch;
  aDims.append({m, k});
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  if (maps[2] != dims(cDims) || maps[0] != dims(aDims))
    return false;
  SmallVector<int64_t> withBatch = batch;
  if (maps[1] == dims({k, n}) || maps[1] == dims({n, k})) {
    g.bNK = maps[1] == dims({n, k});
  } else {
    withBatch.append({k, n});
    g.bNK = false;
    if (maps[1] != dims(withBatch)) {
      withBatch.resize(batch.size());
      withBatch.append({n, k});
      if (maps[1] != dims(withBatch))
        return false;
      g.bNK = true;
    }
    g.bBatched = !batch.empty();
  }
  g.batchDims = batch.size();
  // ldmatrix transposes 16-bit elements only: int8 B must be [N, K] (as
  // W8A8 weights are stored).
  if (g.integer && !g.bNK)
    return false;

  // 16-byte rows: K (and N for B [K, N]) static multiples of 16 bytes
  // (cp.async copies 16 aligned bytes); N a multiple of 8 (the epilogue
  // adds column pairs).
  g.k = at.getDimSize(r - 1);
  g.n = ct.getDimSize(r - 1);
  if (ShapedType::isDynamic(g.k) || ShapedType::isDynamic(g.n) ||
      g.k % g.chunk || g.n % 8 || (!g.bNK && g.n % g.chunk) || g.k == 0 ||
      g.n == 0)
    return false;
  // Decode (few static rows) keeps the GEMV/generic kernels.
  int64_t rows = 1;
  bool staticRows = true;
  for (int64_t d = 0; d < r - 1; ++d) {
    if (g.bBatched && d < r - 2)
      continue;
    if (ct.isDynamicDim(d))
      staticRows = false;
    else
      rows *= ct.getDimSize(d);
  }
  if (staticRows && rows < minRows)
    return false;
  SmallVector<memref::GetGlobalOp> gets;
  if (!quench::isAlignedDeviceBuffer(g.a, gets, /*throughReshapes=*/true) ||
      !quench::isAlignedDeviceBuffer(g.b, gets, /*throughReshapes=*/true))
    return false;
  // The output is read and written with scalar accesses: any device buffer
  // with an identity layout (flattened to one dimension).
  if (!ct.getLayout().isIdentity() || ct.getMemorySpace())
    return false;
  globals.append(gets.begin(), gets.end());
  return true;
}

class GemmBuilder : quench::KernelBuilderBase {
public:
  GemmBuilder(const Gemm &g, bool emulate)
      : KernelBuilderBase(g.op->getContext(), g.op->getLoc()), g(g),
        emulate(emulate) {}
  void build();

private:
  Value both(Value x, Value y) { return arith::AndIOp::create(rw, loc, x, y); }
  /// `memref` as a one-dimensional buffer (identity layout: contiguous).
  Value flatten(Value memref);
  /// Runs `body(tid)` for the block's threads: the thread's own id on the
  /// device, a loop over the 128 threads in the emulation.
  void forThreads(function_ref<void(Value)> body);
  /// Thread `tid`'s 16-byte copies of K tile `kt` into stage `stage`.
  void copyTile(Value tid, Value kt, Value stage);
  /// One 16-byte copy of `src[offset, offset + 8)` to `dst[indices]`, zero
  /// when not `valid` (offset is then 0).
  void copyChunk(Value dst, ValueRange indices, Value offset, Value valid);
  /// The device's accumulator update for stage `stage`.
  SmallVector<Value> mmaStage(Value tid, Value stage, ValueRange acc);
  /// The emulation's, for warp `warp`: ldmatrix and mma.sync by their PTX
  /// definitions over the warp's 32 lanes.
  void emulateStage(Value warp, Value stage);
  /// The row and column (stage buffer indices) that `lane` of warp `warp`
  /// gives ldmatrix for the A fragment of m16 tile `i` at K offset `kk`.
  std::pair<Value, Value> aAddress(Value warp, Value lane, int64_t i,
                                   int64_t kk);
  /// The same for the B fragments of n8 tiles 2 jj and 2 jj + 1.
  std::pair<Value, Value> bAddress(Value warp, Value lane, int64_t jj,
                                   int64_t kk);
  /// Row and column in the block tile of accumulator element (i, j, r, e)
  /// of thread `tid` (the m16n8 tile's layout).
  std::pair<Value, Value> accPosition(Value tid, int64_t i, int64_t j,
                                      int64_t r, int64_t e);
  /// Adds the thread's accumulators to the output (in range only).
  void epilogue(Value tid, function_ref<Value(int64_t)> accAt);

  const Gemm &g;
  bool emulate;
  // Kernel values.
  Value a1, b1, c1, aSmem, bSmem, accBuf, aRegs, bRegs, rows, m0, n0, aBase,
      bBase, cBase;
};

Value GemmBuilder::flatten(Value memref) {
  auto type = cast<MemRefType>(memref.getType());
  if (type.getRank() == 1)
    return memref;
  SmallVector<ReassociationIndices> all(1);
  for (int64_t d = 0; d < type.getRank(); ++d)
    all[0].push_back(d);
  return memref::CollapseShapeOp::create(rw, loc, memref, all);
}

void GemmBuilder::forThreads(function_ref<void(Value)> body) {
  if (!emulate)
    return body(Value());
  OpBuilder::InsertionGuard guard(rw);
  auto loop = scf::ForOp::create(rw, loc, cst(0), cst(kThreads), cst(1));
  rw.setInsertionPointToStart(loop.getBody());
  body(loop.getInductionVar());
}

void GemmBuilder::copyChunk(Value dst, ValueRange indices, Value offset,
                            Value valid) {
  Value src = a1;
  if (dst == bSmem)
    src = b1;
  if (!emulate) {
    // Zero-filled beyond src-size: 8 elements when valid, else none.
    Value srcElements =
        arith::SelectOp::create(rw, loc, valid, cst(g.chunk), cst(0));
    nvgpu::DeviceAsyncCopyOp::create(
        rw, loc, dst, indices, src, ValueRange{offset},
        rw.getIndexAttr(g.chunk), srcElements, rw.getUnitAttr());
    return;
  }
  auto vt = VectorType::get({g.chunk}, g.elementType);
  auto ifValid = scf::IfOp::create(
      rw, loc, valid,
      [&](OpBuilder &b, Location l) {
        Value v = vector::LoadOp::create(b, l, vt, src, ValueRange{offset});
        scf::YieldOp::create(b, l, v);
      },
      [&](OpBuilder &b, Location l) {
        Value zero = arith::ConstantOp::create(
            b, l, vt, DenseElementsAttr::get(vt, b.getZeroAttr(g.elementType)));
        scf::YieldOp::create(b, l, zero);
      });
  vector::StoreOp::create(rw, loc, ifValid.getResult(0), dst, indices);
}

void GemmBuilder::copyTile(Value tid, Value kt, Value stage) {
  Value k0 = mul(kt, g.bk);
  Value kSize = cst(g.k), nSize = cst(g.n);
  constexpr int64_t chunksPerThread = kBM * kBKBytes / kChunkBytes / kThreads;
  static_assert(kBM == kBN, "A and B tiles of one size");
  int64_t rowChunks = g.bk / g.chunk;
  for (int64_t i = 0; i < chunksPerThread; ++i) {
    Value chunk = add(tid, i * kThreads);
    // A: row-major [rows, K] tile rows of 4 chunks.
    {
      Value row = div(chunk, rowChunks);
      Value col = mul(rem(chunk, rowChunks), g.chunk);
      Value gm = add(m0, row), gk = add(k0, col);
      Value valid = both(lt(gm, rows), lt(gk, kSize));
      Value offset = add(aBase, add(mul(gm, g.k), gk));
      offset = arith::SelectOp::create(rw, loc, valid, offset, cst(0));
      copyChunk(aSmem, {stage, row, col}, offset, valid);
    }
    // B: [K, N] tile rows of 8 chunks, or [N, K] tile rows of 4.
    if (g.bNK) {
      Value row = div(chunk, rowChunks);
      Value col = mul(rem(chunk, rowChunks), g.chunk);
      Value gn = add(n0, row), gk = add(k0, col);
      Value valid = both(lt(gn, nSize), lt(gk, kSize));
      Value offset = add(bBase, add(mul(gn, g.k), gk));
      offset = arith::SelectOp::create(rw, loc, valid, offset, cst(0));
      copyChunk(bSmem, {stage, row, col}, offset, valid);
    } else {
      Value row = div(chunk, kBN / g.chunk);
      Value col = mul(rem(chunk, kBN / g.chunk), g.chunk);
      Value gk = add(k0, row), gn = add(n0, col);
      Value valid = both(lt(gk, kSize), lt(gn, nSize));
      Value offset = add(bBase, add(mul(gk, g.n), gn));
      offset = arith::SelectOp::create(rw, loc, valid, offset, cst(0));
      copyChunk(bSmem, {stage, row, col}, offset, valid);
    }
  }
}

std::pair<Value, Value> GemmBuilder::accPosition(Value tid, int64_t i,
                                                 int64_t j, int64_t r,
                                                 int64_t e) {
  Value warp = div(tid, 32), lane = rem(tid, 32);
  Value wm = mul(div(warp, kWarpsN), kWM), wn = mul(rem(warp, kWarpsN), kWN);
  Value row = add(add(wm, div(lane, 4)), 16 * i + 8 * r);
  Value col = add(add(wn, mul(rem(lane, 4), 2)), 8 * j + e);
  return {row, col};
}

SmallVector<Value> GemmBuilder::mmaStage(Value tid, Value stage,
                                         ValueRange acc) {
  Type et = g.elementType;
  // 4 (A) or 2 (B) registers of 32 bits per fragment.
  int64_t perReg = g.integer ? 4 : 2;
  auto v4x2 = VectorType::get({4, perReg}, et);
  auto v2x2 = VectorType::get({2, perReg}, et);
  Value warp = div(tid, 32), lane = rem(tid, 32);
  // Rows {first, first + 1} of a vector<4x2> as a vector<2x2>.
  auto half = [&](Value v, int64_t first) {
    Value out = arith::ConstantOp::create(
        rw, loc, v2x2, DenseElementsAttr::get(v2x2, rw.getZeroAttr(et)));
    for (int64_t q = 0; q < 2; ++q) {
      Value row = vector::ExtractOp::create(rw, loc, v, first + q);
      out = vector::InsertOp::create(rw, loc, row, out, q);
    }
    return out;
  };
  SmallVector<Value> result(acc.begin(), acc.end());
  for (int64_t kk = 0; kk < g.bk; kk += g.mmaK) {
    // A fragments: lanes 0-15 address rows 0-15 at k, lanes 16-31 the same
    // rows 16 bytes further (matrices a0..a3 of m16n8k16, of m16n8k32 for
    // int8: an 8 x 8 matrix of b16 is 8 rows of 16 bytes).
    SmallVector<Value> aFrag;
    for (int64_t i = 0; i < kMT; ++i) {
      auto [row, col] = aAddress(warp, lane, i, kk);
      aFrag.push_back(nvgpu::LdMatrixOp::create(
          rw, loc, v4x2, aSmem, ValueRange{stage, row, col},
          /*transpose=*/false, /*numTiles=*/4));
    }
    // B fragments of n8 tiles 2jj and 2jj + 1: matrices (k 0-7, n 0-7),
    // (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15) (k in units of
    // 16 bits).
    SmallVector<Value> bFrag;
    for (int64_t jj = 0; jj < kNT / 2; ++jj) {
      auto [row, col] = bAddress(warp, lane, jj, kk);
      // Rows of B [K, N] are k: transposed 8 x 8 matrices.
      Value frag = nvgpu::LdMatrixOp::create(rw, loc, v4x2, bSmem,
                                             ValueRange{stage, row, col},
                                             /*transpose=*/!g.bNK, 4);
      bFrag.push_back(half(frag, 0));
      bFrag.push_back(half(frag, 2));
    }
    for (int64_t i = 0; i < kMT; ++i)
      for (int64_t j = 0; j < kNT; ++j) {
        Value &c = result[i * kNT + j];
        c = nvgpu::MmaSyncOp::create(rw, loc, aFrag[i], bFrag[j], c,
                                     ArrayRef<int64_t>{16, 8, g.mmaK});
      }
  }
  return result;
}

std::pair<Value, Value> GemmBuilder::aAddress(Value warp, Value lane, int64_t i,
                                              int64_t kk) {
  // Lanes 0-15 address rows 0-15 at k, lanes 16-31 the same rows 16 bytes
  // further: matrices a0..a3 of m16n8k16 (m16n8k32 for int8: an 8 x 8
  // matrix of b16 is 8 rows of 16 bytes).
  Value wm = mul(div(warp, kWarpsN), kWM);
  Value row = add(add(wm, rem(lane, 16)), 16 * i);
  Value col = add(mul(div(lane, 16), g.chunk), kk);
  return {row, col};
}

std::pair<Value, Value> GemmBuilder::bAddress(Value warp, Value lane,
                                              int64_t jj, int64_t kk) {
  // Matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
  // (k 8-15, n 8-15) (k in units of 16 bits): b0, b1 of n8 tile 2 jj, then
  // of 2 jj + 1; lanes 8q .. 8q + 7 address matrix q.
  Value wn = mul(rem(warp, kWarpsN), kWN);
  Value laneHi = div(lane, 16);
  if (g.bNK) {
    // Rows are n.
    Value row = add(add(wn, add(rem(lane, 8), mul(laneHi, 8))), 16 * jj);
    Value col = add(mul(rem(div(lane, 8), 2), g.chunk), kk);
    return {row, col};
  }
  // Rows are k (read transposed).
  Value row = add(rem(lane, 16), kk);
  Value col = add(add(wn, mul(laneHi, 8)), 16 * jj);
  return {row, col};
}

void GemmBuilder::emulateStage(Value warp, Value stage) {
  Type acc = g.accType;
  // Elements per 32-bit register.
  int64_t p32 = g.integer ? 4 : 2;
  // ldmatrix.x4 by its definition: register q of lane t is word t % 4 of
  // row t / 4 of matrix q, whose rows lanes 8q .. 8q + 7 address;
  // transposed (16-bit): element e of register q is column t / 4 of row
  // 2 (t % 4) + e of matrix q.
  auto ldmatrix = [&](Value smem, bool transpose,
                      function_ref<std::pair<Value, Value>(Value)> address,
                      function_ref<void(Value, int64_t, int64_t, Value)> put) {
    forEachLane([&](Value t) {
      for (int64_t q = 0; q < 4; ++q)
        for (int64_t e = 0; e < p32; ++e) {
          Value v;
          if (!transpose) {
            auto [row, col] = address(add(div(t, 4), 8 * q));
            v = load(smem, {stage, row, add(col, add(mul(rem(t, 4), p32), e))});
          } else {
            auto [row, col] = address(add(add(mul(rem(t, 4), 2), e), 8 * q));
            v = load(smem, {stage, row, add(col, div(t, 4))});
          }
          put(t, q, e, v);
        }
    });
  };
  for (int64_t kk = 0; kk < g.bk; kk += g.mmaK) {
    // Registers of the fragments: A [lane][m16 tile][4][p32], B [lane][n8
    // tile][2][p32].
    for (int64_t i = 0; i < kMT; ++i)
      ldmatrix(
          aSmem, false, [&](Value l) { return aAddress(warp, l, i, kk); },
          [&](Value t, int64_t q, int64_t e, Value v) {
            store(v, aRegs, {t, cst(i), cst(q), cst(e)});
          });
    for (int64_t jj = 0; jj < kNT / 2; ++jj)
      ldmatrix(
          bSmem, !g.bNK, [&](Value l) { return bAddress(warp, l, jj, kk); },
          [&](Value t, int64_t q, int64_t e, Value v) {
            store(v, bRegs, {t, cst(2 * jj + q / 2), cst(q % 2), cst(e)});
          });
    // mma.sync m16n8k16 (k32 for int8) by its definition: A element
    // (row, k) is element k % p32 of register row / 8 + 2 (k / 4p32) of
    // lane 4 (row % 8) + (k % 4p32) / p32; B element (k, n) is element
    // k % p32 of register k / 4p32 of lane 4 n + (k % 4p32) / p32; C
    // element (r, e) of lane t is (t / 4 + 8 r, 2 (t % 4) + e).
    int64_t regK = 4 * p32;
    forEachLane([&](Value t) {
      Value tid = add(mul(warp, 32), t);
      for (int64_t i = 0; i < kMT; ++i)
        for (int64_t j = 0; j < kNT; ++j)
          for (int64_t r = 0; r < 2; ++r)
            for (int64_t e = 0; e < 2; ++e) {
              Value row = add(div(t, 4), 8 * r);
              Value col = add(mul(rem(t, 4), 2), e);
              Value slot = cst(((i * kNT + j) * 2 + r) * 2 + e);
              Value init = load(accBuf, {tid, slot});
              auto loop = scf::ForOp::create(rw, loc, cst(0), cst(g.mmaK),
                                             cst(1), ValueRange{init});
              OpBuilder::InsertionGuard guard(rw);
              rw.setInsertionPointToStart(loop.getBody());
              Value k = loop.getInductionVar();
              Value kIn = rem(k, regK);
              Value x = load(
                  aRegs, {add(mul(rem(row, 8), 4), div(kIn, p32)), cst(i),
                          add(div(row, 8), mul(div(k, regK), 2)), rem(k, p32)});
              Value y = load(bRegs, {add(mul(col, 4), div(kIn, p32)), cst(j),
                                     div(k, regK), rem(k, p32)});
              Value sum;
              if (g.integer) {
                x = arith::ExtSIOp::create(rw, loc, acc, x);
                y = arith::ExtSIOp::create(rw, loc, acc, y);
                sum =
                    arith::AddIOp::create(rw, loc, loop.getRegionIterArgs()[0],
                                          arith::MulIOp::create(rw, loc, x, y));
              } else {
                x = arith::ExtFOp::create(rw, loc, acc, x);
                y = arith::ExtFOp::create(rw, loc, acc, y);
                sum =
                    arith::AddFOp::create(rw, loc, loop.getRegionIterArgs()[0],
                                          arith::MulFOp::create(rw, loc, x, y));
              }
              scf::YieldOp::create(rw, loc, sum);
              rw.setInsertionPointAfter(loop);
              store(loop.getResult(0), accBuf, {tid, slot});
            }
    });
  }
}

void GemmBuilder::epilogue(Value tid, function_ref<Value(int64_t)> accAt) {
  Value nSize = cst(g.n);
  for (int64_t i = 0; i < kMT; ++i)
    for (int64_t j = 0; j < kNT; ++j)
      for (int64_t r = 0; r < 2; ++r) {
        auto [row, col] = accPosition(tid, i, j, r, 0);
        Value gm = add(m0, row), gn = add(n0, col);
        // N is a multiple of 8: column gn + 1 is in range with gn.
        Value valid = both(lt(gm, rows), lt(gn, nSize));
        SmallVector<Value> values;
        for (int64_t e = 0; e < 2; ++e)
          values.push_back(accAt(((i * kNT + j) * 2 + r) * 2 + e));
        auto ifValid = scf::IfOp::create(rw, loc, valid, /*withElse=*/false);
        OpBuilder::InsertionGuard guard(rw);
        rw.setInsertionPointToStart(&ifValid.getThenRegion().front());
        Value offset = add(cBase, add(mul(gm, g.n), gn));
        for (int64_t e = 0; e < 2; ++e) {
          Value at = add(offset, e);
          Value old = memref::LoadOp::create(rw, loc, c1, ValueRange{at});
          Value sum =
              g.integer ? (Value)arith::AddIOp::create(rw, loc, old, values[e])
                        : (Value)arith::AddFOp::create(rw, loc, old, values[e]);
          memref::StoreOp::create(rw, loc, sum, c1, ValueRange{at});
        }
      }
}

void GemmBuilder::build() {
  MLIRContext *ctx = rw.getContext();
  rw.setInsertionPoint(g.op);
  auto ct = cast<MemRefType>(g.c.getType());
  int64_t r = ct.getRank();
  // Batch (grid z when B has the batch dims) and rows.
  Value batch = cst(1);
  for (int64_t d = 0; d < g.batchDims; ++d)
    batch = mul(batch, memref::DimOp::create(rw, loc, g.c, d));
  Value m = memref::DimOp::create(rw, loc, g.c, r - 2);
  Value hostRows = g.bBatched ? m : mul(batch, m);
  Value gridZ = cst(1);
  if (g.bBatched) {
    // An empty batch has no rows.
    Value empty =
        arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::eq, batch, cst(0));
    hostRows = arith::SelectOp::create(rw, loc, empty, cst(0), hostRows);
    gridZ = arith::MaxUIOp::create(rw, loc, batch, cst(1));
  }
  Value gridY = arith::MaxUIOp::create(
      rw, loc, arith::CeilDivUIOp::create(rw, loc, hostRows, cst(kBM)), cst(1));
  Value gridX = cst(llvm::divideCeil(g.n, kBN));
  Value a1Host = flatten(g.a), b1Host = flatten(g.b), c1Host = flatten(g.c);

  Type et = g.elementType;
  Attribute workgroup;
  if (!emulate)
    workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  int64_t pad = g.chunk;
  auto aSmemType = MemRefType::get({kStages, kBM, g.bk + pad}, et,
                                   MemRefLayoutAttrInterface(), workgroup);
  auto bSmemType =
      MemRefType::get(g.bNK ? ArrayRef<int64_t>{kStages, kBN, g.bk + pad}
                            : ArrayRef<int64_t>{kStages, g.bk, kBN + pad},
                      et, MemRefLayoutAttrInterface(), workgroup);
  SmallVector<Type> attributions;
  if (!emulate)
    attributions = {aSmemType, bSmemType};
  Value blockX = cst(emulate ? 1 : kThreads);
  auto launch = gpu::LaunchOp::create(rw, loc, gridX, gridY, gridZ, blockX,
                                      cst(1), cst(1), nullptr, nullptr,
                                      ValueRange{}, attributions);
  launch->setAttr("quench.kernel", rw.getStringAttr("mma_gemm"));
  Block &body = launch.getBody().front();
  rw.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(rw, loc);
  rw.setInsertionPoint(terminator);
  // Values from the host are used directly (outlining makes them kernel
  // parameters).
  a1 = a1Host;
  b1 = b1Host;
  c1 = c1Host;
  rows = hostRows;
  if (emulate) {
    aSmem = memref::AllocOp::create(rw, loc, aSmemType);
    bSmem = memref::AllocOp::create(rw, loc, bSmemType);
    accBuf = memref::AllocOp::create(
        rw, loc, MemRefType::get({kThreads, kMT * kNT * 4}, g.accType));
    // One warp's fragment registers (32-bit registers of 2 halves or 4
    // int8).
    int64_t p32 = g.integer ? 4 : 2;
    aRegs = memref::AllocOp::create(
        rw, loc, MemRefType::get({32, kMT, 4, p32}, g.elementType));
    bRegs = memref::AllocOp::create(
        rw, loc, MemRefType::get({32, kNT, 2, p32}, g.elementType));
  } else {
    aSmem = launch.getWorkgroupAttributions()[0];
    bSmem = launch.getWorkgroupAttributions()[1];
  }
  Value bz = launch.getBlockIds().z;
  m0 = mul(launch.getBlockIds().y, kBM);
  n0 = mul(launch.getBlockIds().x, kBN);
  aBase = mul(mul(bz, rows), g.k);
  bBase = g.bBatched ? mul(bz, g.k * g.n) : cst(0);
  cBase = mul(mul(bz, rows), g.n);
  int64_t numK = llvm::divideCeil(g.k, g.bk);

  Value tid = emulate ? Value() : (Value)launch.getThreadIds().x;
  auto thread = [&](Value loopTid) { return emulate ? loopTid : tid; };
  auto tokenType = nvgpu::DeviceAsyncTokenType::get(ctx);
  auto accVector = VectorType::get({2, 2}, g.accType);
  Value lastGroup;
  auto commit = [&]() {
    if (!emulate)
      lastGroup = nvgpu::DeviceAsyncCreateGroupOp::create(rw, loc, tokenType,
                                                          ValueRange{});
  };

  // Prologue: K tiles 0 .. stages - 2.
  for (int64_t s = 0; s + 1 < kStages; ++s) {
    forThreads([&](Value t) { copyTile(thread(t), cst(s), cst(s)); });
    commit();
  }
  Value prologueGroup = lastGroup;
  SmallVector<Value> acc;
  if (emulate) {
    Value zero = arith::ConstantOp::create(rw, loc, rw.getZeroAttr(g.accType));
    forThreads([&](Value t) {
      for (int64_t q = 0; q < kMT * kNT * 4; ++q)
        memref::StoreOp::create(rw, loc, zero, accBuf,
                                ValueRange{thread(t), cst(q)});
    });
  } else {
    Value zero = arith::ConstantOp::create(
        rw, loc, accVector,
        DenseElementsAttr::get(accVector, rw.getZeroAttr(g.accType)));
    acc.assign(kMT * kNT, zero);
  }
  auto loop = scf::ForOp::create(rw, loc, cst(0), cst(numK), cst(1), acc);
  {
    OpBuilder::InsertionGuard guard(rw);
    // The emulation's loop has its (empty) yield already.
    if (emulate)
      rw.setInsertionPoint(loop.getBody()->getTerminator());
    else
      rw.setInsertionPointToStart(loop.getBody());
    Value kt = loop.getInductionVar();
    if (!emulate) {
      // Tile kt landed (at most stages - 2 newer groups pending), and is
      // visible to the block; every warp is done with tile kt - 1.
      nvgpu::DeviceAsyncWaitOp::create(rw, loc, prologueGroup,
                                       rw.getI32IntegerAttr(kStages - 2));
      gpu::BarrierOp::create(rw, loc);
    }
    Value next = add(kt, kStages - 1);
    Value nextStage = rem(next, kStages);
    forThreads([&](Value t) { copyTile(thread(t), next, nextStage); });
    commit();
    Value stage = rem(kt, kStages);
    if (emulate) {
      // Warp by warp: ldmatrix and mma.sync read other lanes' values.
      OpBuilder::InsertionGuard guard(rw);
      auto warps =
          scf::ForOp::create(rw, loc, cst(0), cst(kWarpsM * kWarpsN), cst(1));
      rw.setInsertionPointToStart(warps.getBody());
      emulateStage(warps.getInductionVar(), stage);
    } else {
      scf::YieldOp::create(rw, loc,
                           mmaStage(tid, stage, loop.getRegionIterArgs()));
    }
  }
  if (emulate) {
    forThreads([&](Value t) {
      epilogue(thread(t), [&](int64_t slot) -> Value {
        return memref::LoadOp::create(rw, loc, accBuf,
                                      ValueRange{thread(t), cst(slot)});
      });
    });
    for (Value buffer : {aSmem, bSmem, accBuf, aRegs, bRegs})
      memref::DeallocOp::create(rw, loc, buffer);
  } else {
    // Drain the (empty) trailing groups before the block exits.
    nvgpu::DeviceAsyncWaitOp::create(rw, loc, prologueGroup,
                                     rw.getI32IntegerAttr(0));
    epilogue(tid, [&](int64_t slot) -> Value {
      int64_t tile = slot / 4, r = (slot / 2) % 2, e = slot % 2;
      return vector::ExtractOp::create(rw, loc, loop.getResult(tile),
                                       ArrayRef<int64_t>{r, e});
    });
  }
  rw.eraseOp(g.op);
}

struct QuenchGPUMmaGemmPass
    : public quench::impl::QuenchGPUMmaGemmBase<QuenchGPUMmaGemmPass> {
  using Base::Base;
  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (minRows < 0) {
      func.emitError("min-rows must not be negative");
      return signalPassFailure();
    }
    SmallVector<linalg::LinalgOp> ops;
    func.walk([&](linalg::LinalgOp op) { ops.push_back(op); });
    for (linalg::LinalgOp op : ops) {
      Gemm g;
      SmallVector<memref::GetGlobalOp> globals;
      // Anything else keeps the generic kernels.
      if (!matchGemm(op, g, minRows, globals))
        continue;
      GemmBuilder(g, emulate).build();
      // 16-byte copies from the constants: their globals promise it.
      quench::alignGlobalsTo16(func, globals);
    }
  }
};

} // namespace
