//===- TileAndVectorize.h - the CPU tile pass (private) ---------*- C++ -*-===//
//
// What the files of quench-cpu-tile-and-vectorize share: the tile plans
// (TilePlan.cpp), the tiling driver (Tiling.cpp) and the vectorization of
// the marked tiles (Vectorization.cpp); the pass itself is
// TileAndVectorize.cpp. Private to lib/Codegen/CPU.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CODEGEN_CPU_TILEANDVECTORIZE_H
#define QUENCH_LIB_CODEGEN_CPU_TILEANDVECTORIZE_H

#include "KernelUtils.h"

#include "quench/Support/LLVM.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/SCF/Transforms/TileUsingInterface.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/LoopLikeInterface.h"

namespace quench::cpu {

//===----------------------------------------------------------------------===//
// Tile plans (TilePlan.cpp)
//===----------------------------------------------------------------------===//

/// Register tile of the contraction micro kernel, in elements: `mr` rows of
/// the result, `nr` = nrVectors SIMD vectors of columns, `kr` reduction steps
/// unrolled per iteration. Outer (cache) tiles: `mt` x `nt` per scf.forall
/// task, `kc` reduction elements per pass over a task's accumulators.
/// The defaults fit AVX2's 16 registers (12 accumulators, 2 vectors of B,
/// 1 broadcast of A: 8x16 spills and runs 3x slower); AVX-512's 32 take
/// 8 rows.
struct ContractionTiles {
  int64_t mr = 6, nrVectors = 2, kr = 1;
  int64_t mt = 48, nt = 256, kc = 256;
  /// Matrix-vector products (M below mr): memory bound, so the reduction is
  /// the outer loop (kr rows of B streamed at a time) and each task sweeps
  /// gemvNt contiguous columns.
  int64_t gemvNrVectors = 8, gemvKr = 4, gemvNt = 1024;
  /// gemvKr of f32 (and wider) products: 8 rows of B per step took the
  /// 125M LLaMA shape's seq-1 fp32 step from 28-29 to 25 ms (1 thread).
  int64_t gemvKrFloat = 8;
};

/// Elements a parallel task should cover at least (scf.forall chunks).
inline constexpr int64_t kTaskElements = 1 << 14;
/// Contractions of at least this many multiply-adds are split into about
/// kMinTasks parallel tasks along N.
inline constexpr int64_t kSplitMacs = 1 << 20;
inline constexpr int64_t kMinTasks = 4;
/// Matrix-vector products (the thin plan) are split into about kMinTasks
/// tasks along N from this many bytes of multiplicands on (B's, mostly).
inline constexpr int64_t kSplitGemvBytes = 256 << 10;
/// Contractions whose M is dynamic run row by row (the matrix-vector plan)
/// below this many rows at run time (see versionSmallRows).
inline constexpr int64_t kSmallRows = 4;
/// Small batches: a contraction with a static M of at most kMaxThinRows
/// rows whose B has at least kThinMinBytes (beyond L2: streamed from L3 or
/// memory) takes the matrix-vector (thin) plan, which streams B once with
/// the reduction outermost, 8 rows of B per step. The blocked plan re-read
/// B's [K, N] strips per 8-row register tile: 4096 x 14336 fp32 took
/// 2.2-3.1x the CPU time at M = 8-32 (docs/lowering.md, "Small batches").
/// Cache-resident products keep the blocked plan (and its epilogue fusion
/// into register tiles).
inline constexpr int64_t kMaxThinRows = 32;
inline constexpr int64_t kThinMinBytes = 4 << 20;

/// Whether a contraction of `rows` static rows whose B has `bBytes` bytes
/// (0: unknown) takes the thin plan with `mr` rows per blocked register
/// tile: fewer rows than a register tile, or a small batch of a large B.
inline bool isThinProduct(int64_t rows, int64_t bBytes, int64_t mr) {
  return rows < mr || (rows <= kMaxThinRows && bBytes >= kThinMinBytes);
}
/// SIMD registers' worth of elements per vectorized elementwise tile.
inline constexpr int64_t kElementwiseVectors = 4;

/// Contractions with an epilogue fused into their register tiles (see
/// TileAndVectorize::runEpilogue) drop the cache blocking of K:
/// each register tile runs over the whole reduction before its epilogue.
/// Up to this K the B panel of a register tile (K x 2 SIMD vectors) stays
/// in L2.
inline constexpr int64_t kMaxFusedK = 1024;

/// How runContraction tiles a contraction, in its loop space (0: untiled).
struct ContractionPlan {
  /// scf.forall tasks; scf.for over K blocks; register tiles.
  SmallVector<int64_t> outer, kBlock, inner;
  /// Loop order of the register tiles.
  SmallVector<int64_t> interchange;
  /// Vector sizes of a register tile (upper bounds of dynamic extents).
  SmallVector<int64_t> vecSizes;
  /// The innermost reduction loop.
  unsigned k = 0;
  /// M below the register tile's rows (matrix x vector: K outermost).
  bool thin = false;
  /// B read [N, K]: horizontal reductions instead of outer products.
  bool transposedB = false;
};

/// The widest element type of `op`'s shaped operands, in bits (at least 8):
/// what a SIMD register's lanes are counted in.
int64_t elementBits(linalg::LinalgOp op);

/// True when the tile pass tiles `op` at all: tensors, a non-empty
/// iteration space, whole-byte (or index) elements.
bool isTileable(linalg::LinalgOp op);

/// How to tile the contraction `op` (dims: linalg::inferContractionDims)
/// for `vectorBits`-wide SIMD registers, starting from `tiles`: tasks,
/// K blocks and register tiles, matrix-vector and B-read-[N, K] variants.
ContractionPlan planContraction(linalg::LinalgOp op,
                                const linalg::ContractionDimensions &dims,
                                unsigned vectorBits,
                                const ContractionTiles &tiles);

/// True when `contraction`'s epilogue can go into its register tiles (else
/// only into its tasks): the register-tile kernel (not the matrix-vector
/// one, whose K loop is outermost, nor horizontal reductions for B read
/// [N, K]), one reduction dim, static and at most kMaxFusedK, and register
/// tiles smaller than the result.
bool fusesRegisterTiles(linalg::LinalgOp contraction,
                        const linalg::ContractionDimensions &dims,
                        const ContractionPlan &plan);

//===----------------------------------------------------------------------===//
// Tiling (Tiling.cpp; vectorizeAll in Vectorization.cpp)
//===----------------------------------------------------------------------===//

/// Tiles linalg ops on tensors following their plans and marks the tiles
/// for vectorization (kVectorSizesAttr); vectorizeTile vectorizes them
/// once the peeled loops have been canonicalized.
class TileAndVectorize {
public:
  TileAndVectorize(RewriterBase &rw, unsigned vectorBits)
      : rw(rw), vectorBits(vectorBits) {}

  void run(linalg::LinalgOp op);
  /// The contraction whose result `consumer` takes as an epilogue (see
  /// runEpilogue), or null.
  linalg::LinalgOp fusableContraction(linalg::LinalgOp consumer);
  /// Tiles `contraction` and its epilogue `consumer` together: the
  /// consumer's tiles (tasks, register tiles) compute their slice of the
  /// contraction over the whole K, so the accumulators go through the
  /// epilogue in registers. Call only when fusableContraction(consumer)
  /// returned `contraction`.
  void runEpilogue(linalg::GenericOp consumer, linalg::LinalgOp contraction);

private:
  /// Tiles `op` with `sizes` (0 = untiled). Returns the tiled ops and the
  /// generated loops; the original op is replaced.
  FailureOr<scf::SCFTilingResult> tile(Operation *op, ArrayRef<int64_t> sizes,
                                       bool forall,
                                       ArrayRef<int64_t> interchange = {});
  void fuseFillInits(scf::SCFTilingResult &res);
  /// Peels the partial last iteration off each scf.for of `loops`; returns
  /// the loops to vectorize: the first loop and every partial iteration.
  SmallVector<Operation *> peelLoops(ArrayRef<LoopLikeOpInterface> loops);
  void vectorizeAll(ArrayRef<Operation *> roots, ArrayRef<int64_t> vectorSizes,
                    bool contraction);
  ContractionPlan planContraction(linalg::LinalgOp op,
                                  const linalg::ContractionDimensions &dims) {
    return cpu::planContraction(op, dims, vectorBits, tiles);
  }
  void runContraction(linalg::LinalgOp op, const linalg::ContractionDimensions &dims);
  /// Levels 2a and 2b of runContraction (K blocks, register tiles) on one
  /// task's contraction, then vectorization.
  void runContractionTask(Operation *op, const ContractionPlan &plan);
  /// Elementwise ops and reductions; `tasks`: split into scf.forall tasks
  /// (not inside another op's task).
  void runGeneric(linalg::LinalgOp op, bool tasks = true);
  void runDequantMatmul(linalg::LinalgOp op);

  RewriterBase &rw;
  unsigned vectorBits;
  ContractionTiles tiles;
};

/// Gives each contraction whose M is only known at run time (a decoder's
/// prefill and decode steps share a function) a row-by-row version for
/// fewer than kSmallRows rows, beside the blocked one, with its fused
/// epilogue (driver.fusableContraction) in both (SmallRows.cpp).
void versionSmallRows(func::FuncOp func, RewriterBase &rw,
                      TileAndVectorize &driver);

//===----------------------------------------------------------------------===//
// Vectorization (Vectorization.cpp)
//===----------------------------------------------------------------------===//

/// Marks of the tiles to vectorize (see TileAndVectorize::vectorizeAll):
/// their vector sizes (also set by the int8 kernel on the tiles it builds),
/// and whether they are contractions (vectorized as vector.contract).
inline constexpr llvm::StringLiteral kVectorSizesAttr =
    kPreTiledVectorSizesAttr;
inline constexpr llvm::StringLiteral kContractionAttr = "__quench_contraction";
/// Loops over the rows of a fused epilogue, unrolled after vectorization.
inline constexpr llvm::StringLiteral kUnrollAttr = "__quench_unroll";

/// Marks `op` for vectorization with `sizes` (see vectorizeAll).
void markTile(RewriterBase &rw, Operation *op, ArrayRef<int64_t> sizes,
              bool contraction);

/// Vectorizes one marked tile: unmasked when its shape is static, else
/// masked to its vector sizes. Ops that cannot be vectorized are left alone
/// (they become loops).
void vectorizeTile(RewriterBase &rw, linalg::LinalgOp op);

/// Drops the masks of masked contractions whose factors are both read
/// from memory, the reads padding with zeros (Vectorization.cpp).
void unmaskContractions(func::FuncOp func, RewriterBase &rw);

/// Rewrites generic contractions whose body is exactly `out + a * b` on one
/// element type, or `out + extsi(a) * extsi(b)` on integers, as
/// linalg.contract with the same indexing maps (vectorized as
/// vector.contract, i.e. outer products).
void nameContractions(func::FuncOp func, RewriterBase &rw);

/// Unrolls the loops over the rows of fused epilogues (marked kUnrollAttr
/// by TileAndVectorize::runEpilogue) where their trip count is a constant.
void unrollEpilogueRows(func::FuncOp func);

} // namespace quench::cpu

#endif // QUENCH_LIB_CODEGEN_CPU_TILEANDVECTORIZE_H
