//===- FusePasses.td - fusion of parallel linears ------------*- tablegen -*-===//
//
// The pass that fuses linears sharing their input into one product
// (docs/lowering.md, "Parallel linears"). Its declarations are generated
// apart from Passes.td's (FuseParallelLinears.h) so that only its users see
// them.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPASSES_TD
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchFuseParallelLinears
    : Pass<"quench-fuse-parallel-linears", "::mlir::func::FuncOp"> {
  let summary = "Fuse linears that read the same input into one product";
  let description = [{
    Linears that read the same value (a transformer's q, k and v
    projections, an MLP's gate and up projections) become one product
    over their weights concatenated along the output features N, followed
    by a `quench.split` of its last dimension into the original results.
    One kernel streams all the weights with one pass over the input (and,
    for W8A16/W4A16 with int16 activations, one quantization of it), and
    the model has one function for it instead of two or three.

    Fused, in groups of ops of one kind whose every property matches:
    - `quench.linear` with a constant weight (stored [N, K], or [K, N]
      under a 2-D `quench.transpose`), the same weight and result element
      types, and a constant bias on all or none;
    - `quench.matmul_nbits` with constant codes, scales and zero points
      (or none) and the same `bits`, `block_size`, `in_features`, storage
      types and ranks, and a constant bias on all or none;
    and the same discardable attributes (marks such as `quench.sparsity`).
    Other products (W8A8's `quench.qlinear`, compressed sparse layers,
    computed weights) stay as they are.

    Runs after quantization (stage `fuse-linears`, before `to-linalg`), so
    calibration statistics, GPTQ/AWQ, pruning and per-layer recipes see the
    layers by their names as imported; layers that a recipe gave different
    schemes come out of quantization with different bits, groups or scale
    types and are not fused. Concatenating along N leaves every per-output
    -channel or group-wise code, scale and zero point as it was, and each
    output feature's sum over K is computed in the same order: the results
    are bit-identical to the unfused layers' (e2e/fuse-linears checks).
  }];
  let dependentDialects = ["::quench::QuenchDialect"];
}

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_FUSEPASSES_TD
