//===- Passes.td - quench dialect passes -------------------*- tablegen -*-===//
//
// Every pass of the quench dialect; one implementation file each in
// lib/Dialect/Quench/Transforms/.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD
#define QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchRaiseOps : Pass<"quench-raise-ops"> {
  let summary = "Raise decomposed exporter patterns to single quench ops";
  let description = [{
    Exporters decompose the units quantization reasons about into chains of
    primitive ops. This pass recognizes them and replaces each chain with one
    op:

    * LayerNorm (opset < 17): `(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`
      with optional `* gamma + beta` → `quench.layer_norm`.
    * RMSNorm / T5 LayerNorm: `x * rsqrt(mean(x^2) + eps) [* w]` (also written
      with `reciprocal(sqrt(...))`, `1 / sqrt(...)` or `x / sqrt(...)`)
      → `quench.rms_norm` (a missing weight becomes ones).
    * GELU: the erf form `x * 0.5 * (1 + erf(x / sqrt(2)))` and the tanh form
      `0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`, factors in any
      order → `quench.gelu`.
    * SiLU: `x * sigmoid(x)` → `quench.silu`.
    * `matmul(x, W)` with a constant 2-D `W` (and a following `add` of a
      constant 1-D bias) → `quench.linear` with the weight stored transposed
      to `[out_features, in_features]` (the transpose is done on the constant
      data, blob to blob).

    Constants are matched with a relative tolerance of 1e-3 so that f16
    exports are recognized. Only chains whose intermediate values have no
    other users are rewritten.
  }];
  let dependentDialects = ["::quench::QuenchDialect"];
}

#endif // QUENCH_DIALECT_QUENCH_TRANSFORMS_PASSES_TD
