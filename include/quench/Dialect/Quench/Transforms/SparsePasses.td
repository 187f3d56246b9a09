//===- SparsePasses.td - passes of compressed sparse weights -*- tablegen -*-===//
//
// The pass that stores pruned weights compressed (docs/sparsity.md). Its
// declarations are generated apart from Passes.td's (PackSparseWeights.h)
// so that only its users see them.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_SPARSEPASSES_TD
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_SPARSEPASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchPackSparseWeights
    : Pass<"quench-pack-sparse-weights", "::mlir::ModuleOp"> {
  let summary = "Store N:M pruned weights compressed (quench.sparse_linear)";
  let description = [{
    Rewrites every layer that `quench-prune-weights` pruned to an N:M
    pattern (the `quench.sparsity` mark) into `quench.sparse_linear`: the
    kept values and their in-group indices (2 bits for groups of at most 4,
    4 bits up to 16; docs/sparsity.md, "Compressed storage"). Takes a
    `quench.linear` with a constant f32 weight (values f32) and a
    `quench.matmul_nbits` with constant 8-bit symmetric codes (values: the
    signed codes, scales as stored; the zero code is the zero point 128).
    Layers stay dense when K is not a multiple of M, M exceeds
    `max-group`, a group holds more nonzeros than N (the weight is not N:M
    sparse any more), the pattern is unstructured, or the codes have
    another width or zero points; quench-compile's size report gives each
    layer's storage and bytes.

    Unstructured pruned layers: with `bitmask`, a `quench.matmul_nbits`
    with constant 8-bit symmetric codes whose bitmask storage (one mask bit
    per weight plus the codes other than the zero point 128, scales as
    stored) is smaller than its dense codes keeps its op and gets
    `quench.sparse_storage = "bitmask"`: its lowering carries the mark to
    the dequantizing generic, whose CPU kernel (quench-cpu-dequant-matmul
    `bitmask-expand`) stores masks and kept codes only and expands them in
    registers (docs/sparsity.md, "Unstructured storage"). Other
    unstructured layers stay dense.

    ```mlir
    %y = quench.linear %x, %w {quench.sparsity = "2:4 magnitude"} : ...
    // becomes
    %y = quench.sparse_linear %x, %v, %i {group = 4, keep = 2,
                                          quench.sparsity = "2:4 magnitude"} : ...
    ```
  }];
  let options = [
    Option<"maxGroup", "max-group", "int64_t", "8",
           "Largest M stored compressed (the CPU kernel takes 4 and 8)">,
    Option<"bitmask", "bitmask", "bool", "false",
           "Mark unstructured pruned quench.matmul_nbits with 8-bit "
           "symmetric codes for bitmask storage (quench.sparse_storage = "
           "\"bitmask\") where that is smaller than the dense codes (the "
           "CPU kernel with AVX512-VBMI2)">,
  ];
  let dependentDialects = ["::quench::QuenchDialect"];
}

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_SPARSEPASSES_TD
