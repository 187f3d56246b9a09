//===- QuenchSparseOps.td - compressed sparse weights ------*- tablegen -*-===//
//
// The ops of weights in compressed sparse storage (docs/sparsity.md), kept
// apart from QuenchOps.td: their own generated declarations
// (QuenchSparseOps.h), registered by the quench dialect with the others.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_TD
#define QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_TD

include "quench/Dialect/Quench/IR/QuenchDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Quench_SparseLinearOp : Quench_Op<"sparse_linear",
                                      [Pure, AttrSizedOperandSegments]> {
  let summary = "linear layer with an N:M sparse weight in compressed storage";
  let description = [{
    A fully connected layer `result = input · Wᵀ (+ bias)` whose weight
    `W [N, K]` is N:M sparse (at most `keep` nonzeros in every group of
    `group` consecutive weights of a row, along K) and stored compressed:
    the kept values and the index of each within its group
    (docs/sparsity.md, "Compressed storage"). `quench-pack-sparse-weights`
    makes it from a pruned `quench.linear` (f32 values) or
    `quench.matmul_nbits` (8-bit or 4-bit symmetric codes).

    ```
    G = K / group; S = G * keep          # slots per row
    ib = 2 if group <= 4 else 4           # bits per index
    for n, g < G, j < keep:  s = g * keep + j
      idx = (indices[n, s * ib / 8] >> (s * ib % 8)) & (2^ib - 1)   # < group
      W[n, g * group + idx] += values[n, s]                       # f32 values
                            |  values[n, s] * scales[n, g * group / block_size]
                                                                  # i8 values
    result[..., n] = sum_k input[..., k] * W[n, k] (+ bias[n])
    ```

    All other weights are 0. `values` is `[N, S]` f32, or signed i8 codes
    with `scales` (`[N, ceil(K / block_size)]`, f32, f16 or bf16) and
    `block_size` (a multiple of `group`, or at least K: one block). For
    2:4 a group's two 2-bit indices form one nibble, the first in its low
    bits: the row metadata of NVIDIA's `mma.sp`. Indices of a group are
    expected distinct (duplicates add up).

    With `value_bits = 4` (4-bit symmetric codes, i8 values and scales
    only) `values` is `[N, ceil(S / 2)]` i8 holding two 4-bit codes per
    byte, slot 2i in the low nibble and 2i + 1 in the high, each the code
    of matmul_nbits (0 .. 15, the implicit zero point 8): the value of slot
    s is `((values[n, s / 2] >> (s % 2 * 4)) & 15) - 8`. Without it (or 8)
    values are one signed code per byte.

    Two integer/half forms feed the CUDA target's sparse tensor cores
    (`mma.sp`, docs/gpu.md "Sparse tensor-core GEMM"): an f16 input with
    f16 values (products and sums in f32, an f32 result), and an i8 input
    with i8 values (the W8A8 contraction: exact products summed into an i32
    result; no scales, no bias).
    The verifier checks: an f32, f16 or i8 input of rank >= 1 with a static
    `K = input.shape[-1]`, a multiple of `group`; 1 <= keep < group <= 16;
    2-D `values` [N, S] (f32 or i8 for an f32 input, f16 for f16, i8 for
    i8; [N, ceil(S / 2)] i8 with `value_bits = 4`, only with scales); 2-D i8 `indices` [N, ceil(S * ib / 8)]; `scales` and `block_size`
    present exactly with i8 values and an f32 input, of the shape above; an
    f32 `bias` [N] (not with an i8 input); a result of shape
    `input.shape[:-1] + [N]`, i32 for an i8 input, else f32.

    ```mlir
    %y = quench.sparse_linear %x, %v, %i bias(%b) {group = 4, keep = 2}
        : (tensor<?x64xf32>, tensor<32x32xf32>, tensor<32x8xi8>,
           tensor<32xf32>) -> tensor<?x32xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F16, I8]>:$input,
                       RankedTensorOf<[F32, F16, I8]>:$values,
                       RankedTensorOf<[I8]>:$indices,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$scales,
                       Optional<RankedTensorOf<[F32]>>:$bias,
                       I64Attr:$keep, I64Attr:$group,
                       OptionalAttr<I64Attr>:$block_size,
                       OptionalAttr<I64Attr>:$value_bits);
  let results = (outs RankedTensorOf<[F32, I32]>:$result);
  let assemblyFormat = "$input `,` $values `,` $indices "
                       "(`scales` `(` $scales^ `)`)? "
                       "(`bias` `(` $bias^ `)`)? "
                       "attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Bits per index: 2 for groups of at most 4 weights, else 4.
    int64_t getIndexBits() { return getGroup() <= 4 ? 2 : 4; }
    /// Bits per value: 4 (two codes per byte) or the element type's.
    bool hasNibbleValues() {
      return getValueBits() && *getValueBits() == 4;
    }
  }];
}


#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHSPARSEOPS_TD
