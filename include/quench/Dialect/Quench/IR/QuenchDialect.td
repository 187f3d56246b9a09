//===- QuenchDialect.td - The quench dialect ---------------*- tablegen -*-===//
//
// The quench dialect is the tensor-level graph IR that Quench imports models
// into, raises decomposed patterns in, and quantizes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_TD
#define QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def Quench_Dialect : Dialect {
  let name = "quench";
  let cppNamespace = "::quench";
  let summary = "Tensor-level model graphs for quantization and code generation";
  let description = [{
    The `quench` dialect holds a trained model as a graph of value-semantic
    tensor operations on ranked tensors. Its ops are the units that
    quantization reasons about: `quench.linear`, `quench.layer_norm`,
    `quench.rms_norm`, `quench.gelu`, `quench.silu`, ... together with the
    elementwise, reduction and shape ops that exporters emit around them.

    Conventions shared by every op:
    * Operands and results are ranked tensors; dimensions may be dynamic
      (`?`). Verifiers check every static fact they can and leave dynamic
      dimensions to run time.
    * Binary elementwise ops broadcast with NumPy/ONNX multidirectional
      rules and require identical element types: implicit type promotion
      is never performed (the importer inserts `quench.cast`).
    * Axes attributes are non-negative after import (the importer
      normalizes ONNX's negative axes); verifiers reject out-of-range axes.
    * Large constants are `dense_resource` blobs so that IR stays small.
    * Quantized values are plain integer tensors with explicit scale and
      zero-point operands: the ONNX-faithful ops (`quantize_linear`,
      `dequantize_linear`, `matmul_integer`, ...) and the packed weights of
      `matmul_nbits` and `qlinear`. The constant and shape ops also accept
      upstream `!quant.uniform` element types, but no op produces them yet
      and no lowering handles them.
  }];
  let extraClassDeclaration = [{
    /// `quench.name` (a StringAttr) on a function's arguments and results:
    /// the graph tensor's name (an ONNX graph input or output), which the
    /// compiled model's C signature and runtime use.
    static constexpr ::llvm::StringLiteral getNameAttrName() {
      return "quench.name";
    }
    /// `quench.dequant_matmul` (a UnitAttr) on the `linalg.generic` that
    /// convert-quench-to-linalg makes of a `quench.matmul_nbits` (the fused
    /// dequantizing matmul): the CPU codegen recognizes it by this mark.
    static constexpr ::llvm::StringLiteral getDequantMatmulAttrName() {
      return "quench.dequant_matmul";
    }
    /// `quench.outlier_product` (a UnitAttr) on the f32 contraction that
    /// convert-quench-to-linalg makes of a `quench.qlinear`'s float outlier
    /// channels (`x[:, O] * outlier_weight^T`, read only by the layer's
    /// epilogue): the CPU int8 kernel computes it inside its register
    /// tiles, and the float-matmul passes leave its layout alone.
    static constexpr ::llvm::StringLiteral getOutlierProductAttrName() {
      return "quench.outlier_product";
    }
    /// The indexing maps of that generic, whose loops are (batch..., b, j,
    /// h, n): x (batch..., b, j, h), codes (b, j, n), scales (b, n), zero
    /// points (b, n) when `zeroPoints`, output (batch..., n). The lowering
    /// builds them and the kernels that recognize the op compare with them.
    static ::llvm::SmallVector<::mlir::AffineMap>
    getDequantMatmulIndexingMaps(::mlir::MLIRContext *ctx,
                                 int64_t batchDims, bool zeroPoints);

    /// The constants quench::transpose2DConstant made in this context,
    /// mapped to the constant each transposes: transposing one of them
    /// again gives back the original (no copy, no second pass over the
    /// bytes). Attributes live as long as the context, so entries never
    /// dangle.
    ::llvm::DenseMap<::mlir::Attribute, ::mlir::ElementsAttr> transposeSources;
    std::mutex transposeSourcesMutex;
  }];
  let useDefaultAttributePrinterParser = 0;
  let hasConstantMaterializer = 1;
  let dependentDialects = ["::mlir::quant::QuantDialect"];
}

class Quench_Op<string mnemonic, list<Trait> traits = []>
    : Op<Quench_Dialect, mnemonic, traits>;

#endif // QUENCH_DIALECT_QUENCH_IR_QUENCHDIALECT_TD
