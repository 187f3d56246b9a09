//===- DequantMatmul.h - the quantized matmul kernels (private) -*- C++ -*-===//
//
// What the forms of the quench.dequant_matmul kernel share: the kernel's
// operands (DequantMatmul.cpp prepares them: panels of codes, scales and
// zero points, x collapsed to rows and blocks), its tile loops and tile
// frame, the group max |x| and rounding of the integer activation forms,
// and the int8-activation (prefill) form of DequantMatmulInt8.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_CODEGEN_CPU_DEQUANTMATMUL_H
#define QUENCH_LIB_CODEGEN_CPU_DEQUANTMATMUL_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace quench::dequant {

/// The operands of the kernel, rows collapsed into one dimension R.
struct DequantOperands {
  mlir::Value x;      ///< [R, blocks, J, P], the activation's element type.
  /// The constants in panels of nr output features, zero padded to whole
  /// panels: codes [N/nr, blocks, J, nr] i8 (P codes of `bits` bits per
  /// byte), scales [N/nr, blocks, nr] (f32/f16/bf16), zero points likewise
  /// (i8 codes or floats; null: 2^(bits-1)). A register tile then streams
  /// one contiguous run of bytes instead of one row per page.
  mlir::Value codes, scales, zp;
  mlir::Value sx;     ///< [R, blocks] f32: Σ_{j,h} x.
  bool floatZp = false;
  int64_t bits = 4, perByte = 2, jn = 16, blocks = 1, n = 1, lanes = 8;
  int64_t nr = 32;
  /// Codes converted by table lookup (vpermps, see kPermuteIntrinsic):
  /// `codes` is then [N/nr, blocks, J/4, nr] i32, each word the 4 bytes of
  /// j = 4 j4 .. 4 j4 + 3 of one output feature (4 * perByte codes, code
  /// t at bits [bits * t, bits * t + bits)); the table holds the codes'
  /// values minus the implicit zero point when there is none (`sx` then
  /// unused).
  bool lookup = false;
  /// Codes multiplied with int16 activations (int16-dot, 4-bit codes in the
  /// lookup's word layout): `xh` / `xl` [R, blocks, P, J] i8, the high
  /// (signed) and low (unsigned) bytes of x quantized to int16 per row and
  /// group, code h of byte j at [.., h, j] so that the four bytes of a
  /// word's codes of parity h are contiguous; `amax` [R, blocks] f32, the
  /// group's max |x| (scale amax / 32767); `qsum` [R, blocks] i32, the
  /// group sums of the int16 values (zero point term).
  bool int16 = false;
  mlir::Value xh, xl, amax, qsum;
  /// The int8 (prefill) form's activations, same layout as `xh`: x
  /// quantized to int8 per row and block, q = round(x * 127 / amax); `amax`
  /// and `qsum` (the block sums of q) as above.
  mlir::Value xq;
  /// int16 values per amax: 32767 for 4-bit codes (low byte unsigned);
  /// 32639 = 127 * 257 for 8-bit codes, whose high byte (q + 128) >> 8 and
  /// low byte q - 256 * high (both signed) then stay within [-127, 127].
  int64_t qmax = 32767;
  /// 8-bit codes of an unstructured pruned layer in bitmask storage
  /// (int16 path, 16 lanes; docs/sparsity.md, "Unstructured storage"):
  /// each 64-byte code vector of the panels (panel p, vector v of the
  /// panel, block, word step j4) is one mask word `masks` [N/nr, nr/16,
  /// blocks, J/4] i64 (bit 4 l + t: byte t of lane l differs from the zero
  /// point 128) plus its kept bytes, packed in the order (p, v, block, j4)
  /// into `packed` (1-D i8, 64 bytes of padding at the end); `starts`
  /// [N/nr, nr/16] i32 is where the run of (p, v) begins. The kernel
  /// expands a vector by vpexpandb (AVX512-VBMI2) with 128 in the
  /// masked-off bytes: exactly the dense code vector.
  bool bitmask = false;
  mlir::Value masks, packed, starts;
};

/// vpermps on 16 floats (AVX-512F): result[i] = table[index[i] & 15], the
/// lookup forms' conversion of codes (declared in the module by the pass).
inline constexpr char kPermuteIntrinsic[] = "llvm.x86.avx512.permvar.sf.512";

/// vpdpbusd (AVX512-VNNI / AVX-VNNI): acc[i] += sum over the 4 bytes of
/// lane i of zext(a) * sext(b).
inline constexpr char kDotIntrinsic512[] = "llvm.x86.avx512.vpdpbusd.512";
inline constexpr char kDotIntrinsic256[] = "llvm.x86.avx512.vpdpbusd.256";

/// What every form of a register tile starts from: the weights' panel of
/// the first vector (`panel`) and of each vector v (`panels`: a tile wider
/// than a panel spans several), the columns of vector v in its panel
/// (`wcols`) and in `out` (`ocols`), the rows, and the accumulators read
/// from `out` (tile vector (i, v) at i * nv + v).
struct TileFrame {
  mlir::Value panel;
  llvm::SmallVector<mlir::Value> panels, wcols, ocols, rows, accInit;
};
/// The frame of the tile at task-local rows [row, row + mr) and columns
/// [col, col + nv * lanes) of `out` ([R, N'] f32, the task's columns
/// starting at `colBase` of the weights); `inBounds` false: the last
/// vector may run past N (masked transfers).
TileFrame buildTileFrame(mlir::OpBuilder &b, mlir::Location loc,
                         const DequantOperands &d, mlir::Value out,
                         mlir::Value row, mlir::Value colBase, mlir::Value col,
                         int64_t mr, int64_t nv, bool inBounds);
/// Writes the tile's accumulators `acc` back into `out`; returns it.
mlir::Value writeTileBack(mlir::OpBuilder &b, mlir::Location loc,
                          mlir::Value out, const TileFrame &f,
                          mlir::ValueRange acc, int64_t nv, bool inBounds);

/// Builds one register tile (see buildTileFrame for the arguments);
/// returns the updated `out`.
using TileBuilder = llvm::function_ref<mlir::Value(
    mlir::OpBuilder &b, mlir::Value out, mlir::Value row, mlir::Value colBase,
    mlir::Value col, int64_t mr, int64_t nv, bool inBounds)>;
/// The kernel's loops over `out` ([R, N] f32): scf.forall tasks of output
/// features, in a task whole tiles of nv vectors then single vectors, per
/// column tile row tiles of `mr` then single rows, each built by `tile`.
/// With `gemvVecs` > 0, a single row (R = 1, decided at run time when R
/// is dynamic) takes one-row tiles of `gemvVecs` vectors first (a multiple
/// of nr / lanes: whole panels, each one concurrent stream of codes), then
/// the tiles above. Returns the new `out`.
mlir::Value buildDequantTiles(mlir::RewriterBase &rw, mlir::Location loc,
                              const DequantOperands &d, mlir::Value out,
                              int64_t mr, int64_t nv, TileBuilder tile,
                              int64_t gemvVecs = 0);

/// amax[r, b] = max |x[r, b, j, h]| of x [R, blocks, J, P] ([R, blocks]
/// f32), a linalg reduction left to the tile pass.
mlir::Value buildBlockAbsMax(mlir::RewriterBase &rw, mlir::Location loc,
                             mlir::Value x, int64_t blocks);
/// round(v * qmax / amax), half away from zero, as i32 (0 when amax is not
/// positive): the integer activation forms' quantization of an f32 `v`.
mlir::Value quantizeToInt(mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
                          mlir::Value amax, int64_t qmax);

/// The int8-activation form (DequantMatmulInt8.cpp) for operands prepared
/// for the int16 path (`d.int16`; codes in word panels): quantizes x to
/// int8 per row and block and builds the kernel's tiles over `out` with
/// register tiles of `mr` rows and nv vectors (nv * lanes == d.nr).
/// Returns the new `out`.
mlir::Value buildInt8ActivationKernel(mlir::RewriterBase &rw,
                                      mlir::Location loc, DequantOperands &d,
                                      mlir::Value out, int64_t mr, int64_t nv);

} // namespace quench::dequant

#endif // QUENCH_LIB_CODEGEN_CPU_DEQUANTMATMUL_H
