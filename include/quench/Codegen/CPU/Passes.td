//===- Passes.td - CPU codegen passes ----------------------*- tablegen -*-===//
//
// Code generation passes for the CPU (x86 SIMD: AVX2, AVX-512): tiling and
// vectorization with the register tile plan, the explicit kernels, and the
// vector lowering. One implementation file each in lib/Codegen/CPU/ (the
// tile pass spreads over its plan, tiling and vectorization files).
// quench-cpu-pipeline (lib/Target/CPU/CPUPipeline.cpp) runs them with its own `vector-bits`,
// `int8-dot` and `code-lookup` options; the defaults here are the
// pipeline's.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_CPU_PASSES_TD
#define QUENCH_CODEGEN_CPU_PASSES_TD

include "mlir/Pass/PassBase.td"

// The SIMD register width, shared by the passes that plan for it.
class VectorBitsOption<string what>
    : Option<"vectorBits", "vector-bits", "unsigned", "256",
             "SIMD register width in bits " # what # " (256: AVX2, 512: "
             "AVX-512)">;

def QuenchCPUTileAndVectorize
    : Pass<"quench-cpu-tile-and-vectorize", "::mlir::func::FuncOp"> {
  let summary = "Tile linalg ops on tensors (scf.forall tasks, scf.for "
                "register tiles) and vectorize the tiles";
  let description = [{
    The core of the CPU pipeline's `codegen` stage, on tensors. First every
    user of a constant-initialized tensor gets its own fill
    (`quench::unshareInitTensors`), and generic contractions whose body is
    exactly `out + a * b` on one float type, or `out + extsi(a) * extsi(b)`
    on integers, become `linalg.contract` (which vectorizes to
    `vector.contract`, i.e. outer products). Then every linalg op with
    tensor semantics, a non-empty iteration space and whole-byte elements
    is tiled:

    * contractions: `scf.forall` tasks over batch x M x N (48 x 256; 64
      rows at 512 bits; cut along N into about 4 tasks of whole register
      tiles from 2^20 multiply-adds on), an `scf.for` over K blocks of 256,
      then register tiles of 6 rows x 2 SIMD vectors (8 rows at 512 bits),
      loops ordered N, M, K. Matrix x vector products (M static below the
      tile's rows) put K outermost (4 rows of B at a time) and take up to
      8 vectors of columns; a right-hand side read [N, K] gets 4 x 4
      output tiles of horizontal reductions over 4 vectors of K;
    * a contraction whose only user is an elementwise `linalg.generic`
      reading it through the identity map is tiled with that epilogue:
      into the consumer's register tiles (whole K in registers, epilogue
      applied row by row) when K is static, at most 1024 and the plan uses
      register tiles, else into the contraction's parallel tasks;
    * the fused dequantizing matmul (`quench.dequant_matmul`) where
      `quench-cpu-dequant-matmul` did not apply: tasks of output features,
      register tiles of 4 rows x 2 vectors kept across the reductions;
    * everything else (elementwise ops, reductions, fills): tasks of at
      least 16K elements along the outermost parallel dim, `scf.for`
      tiles of 4 SIMD vectors along the innermost dims.

    Partial `scf.for` iterations are peeled so that the main tiles are
    static; after canonicalization each tile is vectorized with
    `linalg::vectorize`, unmasked when static and masked to the tile size
    otherwise. Ops marked with a `__quench_vector_sizes` attribute (tiles
    the int8 kernel built) are only vectorized, with those sizes. Tiles
    that do not vectorize stay linalg (loops later): gathers
    (`tensor.extract`), masked tiles that divide integers, whatever the
    vectorizer rejects. Finally masked transfers take their mask as an
    operand (the buffer deallocation pass breaks `vector.mask` regions).
    See docs/lowering.md ("Code generation").
  }];
  let options = [
    VectorBitsOption<"the tiles are planned for">,
  ];
  let dependentDialects = [
    "::mlir::affine::AffineDialect",
    "::mlir::arith::ArithDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchCPUPretransposeRhs
    : Pass<"quench-cpu-pretranspose-rhs", "::mlir::func::FuncOp"> {
  let summary = "Store [N, K] right-hand sides of contractions as [K, N]: "
                "constants at compile time, computed ones with a transpose "
                "when M >= 4";
  let description = [{
    A two-input `linalg.generic` contraction (one K dim, one N dim) whose
    right-hand side is indexed `(..., n, k)` (reduction dim innermost:
    quench.linear's PyTorch weight layout, attention's Q·Kᵀ) reads it as
    `(..., k, n)` instead, so that the outer-product micro kernel of
    `quench-cpu-tile-and-vectorize` streams contiguous rows of B and needs
    no horizontal sums:

    * a 2-D constant is transposed once, at compile time
      (`quench::transpose2DConstant`, blob to blob);
    * a computed operand gets a `linalg.transpose` in front when the
      contraction has one M dim, static and at least 4 (the copy costs
      N·K per batch, about what the horizontal reductions it saves cost
      per output); with fewer rows (decode) the dot products stay.

    See docs/lowering.md ("B stored [N, K]").
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def QuenchCPUPackRhsPanels
    : Pass<"quench-cpu-pack-rhs-panels", "::mlir::func::FuncOp"> {
  let summary = "Store constant f32 right-hand sides of contractions with a "
                "small or dynamic M in panels [N/P, K, P]";
  let description = [{
    A two-input f32 `linalg.generic` contraction (one K dim, one N dim,
    the result's last dim N) whose right-hand side is a 2-D constant read
    `(k, n)` or `(n, k)`, whose M is dynamic or below 4 (the products the
    matrix-vector kernel of `quench-cpu-tile-and-vectorize` computes:
    decode steps) and whose N is a multiple of P (at least 2P), with P = 8
    SIMD vectors of f32 (128 columns at `vector-bits=512`, 64 at 256),
    reads it as panels `[N/P, K, P]` packed at compile time: N splits into
    a loop over panels and one over the P columns of a panel, the result
    is `[..., N/P, P]` and a `tensor.collapse_shape` gives its users
    `[..., N]`. A task of the matrix-vector kernel then streams one
    contiguous panel (instead of a strip of short rows of B) with the P
    sums in registers over the whole K. The collapse is moved below
    elementwise consumers (`linalg` fold-reshape-by-expansion: their loops
    are split alike), so that fused epilogues still read the product with
    the identity map. See docs/lowering.md ("B in panels").
  }];
  let options = [
    VectorBitsOption<"the panels are sized for">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def QuenchCPULowerVector
    : Pass<"quench-cpu-lower-vector", "::mlir::func::FuncOp"> {
  let summary = "Lower contractions, reductions, transposes and masks to 1-D "
                "vector operations";
  let description = [{
    The vector lowering of the CPU pipeline's `to-llvm` stage, in four
    greedy rounds:

    1. transcendentals (`exp`, `expm1`, `erf`, `tanh`, `log`, `log1p`,
       `log2`) become MLIR's polynomial approximations, on vectors and
       scalars alike (a loop's peeled tail computes what its vector body
       computes);
    2. masked transfers take their mask as an operand, and integer
       `vector.contract`s get their narrower operands sign-extended to the
       accumulator type (the contraction lowerings unroll only operands of
       the accumulator's element type);
    3. contractions become outer products, multi-reductions inner
       (horizontal) reductions, transfer permutation maps minor identities;
    4. outer products become `vector.fma`, transposes 1-D shuffles, and
       broadcasts, shape casts and masks 1-D operations.

    What remains maps onto SIMD instructions through
    `convert-vector-to-scf{full-unroll=1 target-rank=1}` and
    `convert-vector-to-llvm`. See docs/lowering.md ("Vector lowering").
  }];
  // The polynomial approximations build arith, math and vector ops (the
  // pipeline has loaded these dialects long before; run alone, the input
  // may hold none of them).
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchCPUSparseMatmul
    : Pass<"quench-cpu-sparse-matmul", "::mlir::ModuleOp"> {
  let summary = "Replace quench.sparse_linear's generics by the CPU sparse "
                "kernel";
  let description = [{
    Replaces every generic of `quench.sparse_linear` (marked
    `quench.sparse_matmul`; loops (batch..., n, g, j, t), constant values,
    indices and scales, group 4 or 8) by an explicit kernel on tensors
    (scf + vector ops) that reads the compressed weight only: the values
    and indices re-laid out at compile time in panels of output features
    (values [N/P, G, keep, P], indices as 32-bit words of the lanes'
    fields), and per group and slot one index decode (a broadcast and a
    variable shift), one permute of the group's x values (`vpermps`:
    `llvm.x86.avx512.permvar.sf.512` with 16 lanes,
    `llvm.x86.avx2.permps` with 8; declared by the pass), a conversion for
    int8 codes and one FMA per row; int8 partial sums are scaled once per
    scale block. 4-bit codes (`quench.sparse_value_bits = 4`) are stored two
    per panel byte and decoded in registers; with `int16-dot` (512 bits,
    AVX512-VNNI) 2:4 4-bit layers take the int16 form: the activations
    quantized to int16 per row and scale block as the dense W4A16 kernel
    does, gathered per lane by the indices (`vpshufb`) and multiplied with
    the kept codes by `vpdpbusd` (bit-identical to the dense kernel); with
    `bitmask-expand` (AVX512-VBMI2) the kept codes are instead expanded to
    their dense positions (`vpexpandb`, the zero point elsewhere) and
    multiplied with the broadcast activations (no gather per row). Needs
    `vector-bits` 256 or 512; otherwise (or for other generics) the generic
    stays and runs as loops. See docs/sparsity.md ("CPU kernel", "2:4
    int4").
  }];
  let options = [
    VectorBitsOption<"the kernel is built for">,
    Option<"int16Dot", "int16-dot", "bool", "false",
           "2:4 4-bit codes at 512 bits: multiply int16 activations with "
           "vpdpbusd (AVX512-VNNI), as the dense W4A16 kernel does">,
    Option<"bitmaskExpand", "bitmask-expand", "bool", "false",
           "with int16-dot: expand the kept 4-bit codes of 2:4 layers to "
           "the dense positions by vpexpandb (AVX512-VBMI2) and multiply "
           "them with the broadcast activations as the dense W4A16 kernel "
           "does, instead of gathering the activations per lane">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::func::FuncDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchCPUDequantMatmul
    : Pass<"quench-cpu-dequant-matmul", "::mlir::ModuleOp"> {
  let summary = "Replace quench.matmul_nbits' fused dequantizing generics by "
                "the CPU kernel";
  let description = [{
    Replaces every fused dequantizing matmul of `quench.matmul_nbits` (the
    `linalg.generic` over `(batch..., b, j, h, n)` marked
    `quench.dequant_matmul`, fast form: 2, 4 or 8 bits, constant codes,
    scales and zero points) by an explicit kernel on tensors (scf + vector
    ops): the sum reassociated per quantization group,

    ```
    y[r, n] += s[b, n] * (sum_{j,h} x[r, b, j, h] * q[b, j, h, n])
               - (z[b, n] * s[b, n]) * sum_{j,h} x[r, b, j, h]
    ```

    with the constants re-laid out at compile time in panels of output
    features, `scf.forall` tasks of output features, register tiles of
    partial sums per group loop-carried in registers, and (with zero
    points) a linalg reduction for the group sums of x, left to
    `quench-cpu-tile-and-vectorize`. With `code-lookup` and 16 lanes
    (`vector-bits=512`), 4- and 2-bit codes are stored as words of four
    code bytes and converted by a table lookup (a call of the vpermps
    intrinsic `llvm.x86.avx512.permvar.sf.512`, which the pass declares
    in the module). With `int16-dot`, 4-bit codes in groups of at most
    1024 are multiplied instead by the activations quantized to int16 per
    row and group (scale = max |x| / 32767, computed per call): each
    16-bit value split into a signed high and an unsigned low byte, the
    products summed exactly in int32 by `vpdpbusd`
    (`llvm.x86.avx512.vpdpbusd.512` / `.256`, declared by the pass), then
    scaled per group in f32. 8-bit codes likewise, in activation blocks of
    at most 512 codes (256 with zero points; longer groups are split, x
    zero padded), with scale max |x| / 32639 and both bytes signed.
    With `int8-prefill-rows=N` (N > 0; needs `int16-dot`), products of
    at least N rows with codes of at most `int8-prefill-bits` bits take
    the int8-activation (prefill) form instead:
    x quantized to int8 per row and block (scale = max |x| / 127), one
    `vpdpbusd` per four codes and row on the same code panels, rescaled
    per block; with a dynamic row count both forms are built, under
    `scf.if rows >= N`.
    A module marked `quench.float_activations` (GGUF models) keeps the
    float kernel whatever `int16-dot` and `int8-prefill-rows` say. Generics the kernel does not handle, and every generic
    when `vector-bits` is below 128, are left unchanged (the tile pass
    handles them). See docs/lowering.md ("Quantized matmul kernel").
  }];
  let options = [
    VectorBitsOption<"the kernel is built for">,
    Option<"codeLookup", "code-lookup", "bool", "false",
           "Convert 4- and 2-bit weight codes by a 16-entry table lookup "
           "(vpermps; the target must have AVX-512F and vector-bits be "
           "512)">,
    Option<"int16Dot", "int16-dot", "bool", "false",
           "Multiply 4- and 8-bit codes with the activations quantized to "
           "int16 per group or block (exact integer sums by vpdpbusd on a "
           "high and a low byte; the target must have AVX512-VNNI at "
           "vector-bits 512 or AVX-VNNI / AVX512-VNNI+VL at 256)">,
    Option<"int8PrefillRows", "int8-prefill-rows", "int64_t", "0",
           "Products of at least this many rows (dynamic rows: checked at "
           "run time) multiply the codes with the activations quantized to "
           "int8 per row and block instead of int16 (the int16-dot form's "
           "prefill variant; 0: never)">,
    Option<"int8PrefillBits", "int8-prefill-bits", "int64_t", "8",
           "Widest codes that take the int8 form of `int8-prefill-rows` "
           "(4: 4-bit codes only; 8: 4- and 8-bit codes)">,
    Option<"bitmaskExpand", "bitmask-expand", "bool", "false",
           "Expand 8-bit codes in bitmask sparse storage (generics marked "
           "`quench.sparse_storage = \"bitmask\"`) by vpexpandb in the "
           "int16 path (the target must have AVX512-VBMI2 and VNNI at "
           "vector-bits 512); a marked generic the kernel cannot expand is "
           "an error">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchCPUInt8Matmul : Pass<"quench-cpu-int8-matmul", "::mlir::ModuleOp"> {
  let summary = "Replace int8 x int8 -> int32 contractions with constant "
                "weights by the vpmaddwd / vpdpbusd kernel";
  let description = [{
    Replaces every int8 x int8 -> int32 contraction with a constant
    right-hand side (quench.qlinear's `acc + extsi(q) * extsi(w)`, rows x K
    times K x N or N x K) by an explicit kernel on tensors: the weights
    re-laid out at compile time in panels of K groups interleaved per
    output column (2 bytes for `vpmaddwd`, 4 for `vpdpbusd`, whose
    activations are made unsigned with `q xor 0x80` and corrected by a
    constant -128 * column sums), the intrinsic called on broadcast
    activation groups (declared in the module as private functions named
    like the LLVM intrinsic), `scf.forall` tasks of output columns. A
    product whose only user is an elementwise generic (rescale, bias,
    activation, requantization) computes that generic in its register
    tiles (no i32 product tensor): the kernel leaves one copy per tile row,
    marked with the vector sizes `quench-cpu-tile-and-vectorize` gives it.
    The elementwise generics that prepare the activations (i16, or u8) are
    left to that pass too.

    Results are bit-identical to the generic contraction's (i32
    wrap-around). Does nothing for `int8-dot=none` or a `vector-bits` other
    than 256 and 512; the target must have the instructions at that width
    (quench-compile chooses with `quench::selectInt8DotProduct`). See
    docs/lowering.md ("Int8 matmul kernel").
  }];
  let options = [
    VectorBitsOption<"the kernel is built for">,
    Option<"int8Dot", "int8-dot", "::quench::Int8DotProduct",
           "::quench::Int8DotProduct::None",
           "Integer multiply-add instructions for int8 x int8 -> int32 "
           "products with constant weights (the target must have them at "
           "vector-bits)",
           [{::llvm::cl::values(
               clEnumValN(::quench::Int8DotProduct::None, "none",
                          "generic contraction (outer products on i32 "
                          "lanes)"),
               clEnumValN(::quench::Int8DotProduct::PMAddWD, "pmaddwd",
                          "vpmaddwd on i16 pairs (AVX2, AVX-512BW)"),
               clEnumValN(::quench::Int8DotProduct::VNNI, "vnni",
                          "vpdpbusd on u8 x s8 quadruples (AVX-VNNI, "
                          "AVX512-VNNI)"))}]>,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchCPUAttention
    : Pass<"quench-cpu-attention", "::mlir::func::FuncOp"> {
  let summary = "Replace quench.attention by a vectorized kernel with an "
                "online softmax";
  let description = [{
    Rewrites every `quench.attention` whose query is f32 into an explicit
    kernel on tensors: an `scf.forall` over batch x groups of query heads
    that share a kv head (all `H / Hk` of them up to 8) x blocks of query
    positions (about 4 rows per block: 4 positions with MHA, one with 4
    heads per kv head; the positions that do not fill a block one at a
    time), and in each task an `scf.for` over the keys, L = `vector-bits` /
    32 keys a step, carrying per row the running max, the running sum and
    the output row in registers (`ceil(Dv / L)` vectors):

    ```
    s = (q * scale) . k  (per key, L-lane partial sums summed by a shuffle
                          tree; f16/bf16 keys extended, i8 codes converted
                          and the score times key_scale)
    s = s + bias; keys past T: -inf
    m' = max(m, max s); ms = m' == -inf ? 0 : m'
    c = exp(m - ms); p = exp(s - ms)
    l = l * c + p (lane-wise); acc = acc * c + sum_u p_u * v_u
                                            (i8: p * value_scale)
    result = acc / sum(l)
    ```

    Each K and V vector is read once per block of rows; no tensor of
    scores exists. Keys past T (the last step of a T that L does not
    divide) read row T - 1 and are masked to -inf; feature dims that L
    does not divide are masked transfers. A row whose scores are all -inf
    is NaN, as with the unfused softmax. A dynamic bias dimension is taken
    to be full size. The exps are `math.exp`, polynomials after
    `quench-cpu-lower-vector`. Ops with another query type or with keys,
    values or a bias of a type other than f32, f16, bf16 (or i8 codes), and
    every op when `vector-bits` is not a power of two of at least 128, are
    left for `quench-decompose-attention`. See docs/lowering.md ("Attention
    kernel").
  }];
  let options = [
    VectorBitsOption<"the kernel is built for">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // QUENCH_CODEGEN_CPU_PASSES_TD
