//===- Passes.td - quench conversion passes ----------------*- tablegen -*-===//
//
// Conversions out of the quench dialect; one folder each in lib/Conversion/.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CONVERSION_PASSES_TD
#define QUENCH_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertQuenchToLinalg : Pass<"convert-quench-to-linalg"> {
  let summary = "Lower float/integer quench ops to linalg, tensor, arith and math";
  let description = [{
    The first step of the CPU backend. Every quench op on float, integer and
    bool tensors becomes `linalg` on tensors (`linalg.generic` with
    broadcasting indexing maps for the elementwise ops, `linalg.matmul` or a
    `linalg.generic` contraction for `matmul`/`linear`, reductions as
    `linalg.generic` with reduction iterators) plus `tensor` ops for the
    shape manipulations and `arith`/`math` for the scalar bodies. Dynamic
    dimensions are supported everywhere (`tensor.dim` feeding
    `tensor.empty`).

    Decisions (docs/lowering.md has the details):
    * NumPy broadcasting of a dimension that is dynamic on both sides
      assumes the extents are equal at run time (a run-time 1 broadcasting
      against a larger extent is not supported), as TOSA/StableHLO lowerings
      do. Static 1s broadcast.
    * `matmul` and `linear` on f16/bf16 accumulate in f32 and round once;
      `reduce` sum/mean/prod, `softmax`, `layer_norm` and `rms_norm` compute
      in f32 for f16/bf16 as well.
    * Float `min`/`max` (and `reduce` max/min, `clip`) propagate NaN
      (`arith.minimumf`/`maximumf`), like NumPy `minimum`/`maximum`.
    * Signed/unsigned integer tensors (`si*`/`ui*`) become signless ones,
      `func.func` signatures, calls and returns included (arith only takes
      signless integers); the ops pick signed or unsigned arithmetic from
      the original type. `tensor.bitcast` appears only next to ops that stay
      unconverted.
    * Constants keep their attribute as is: a `dense_resource` blob stays a
      blob (`arith.constant dense_resource<...>`).

    Not converted yet (left legal): the quantization ops `quantize_linear`,
    `dequantize_linear`, `dynamic_quantize_linear`, `matmul_integer`,
    `qlinear_matmul`, `matmul_nbits`, `quantize`, `dequantize`, and any op
    whose operands or results have `!quant` element types.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::math::MathDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

#endif // QUENCH_CONVERSION_PASSES_TD
