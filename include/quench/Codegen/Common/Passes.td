//===- Passes.td - target-independent codegen passes -------*- tablegen -*-===//
//
// Code generation passes that do not depend on the target: fusion and
// clean-ups on linalg/vector/tensor IR, and workarounds for upstream MLIR
// defects. One implementation file each in lib/Codegen/Common/. The CPU
// pipeline (lib/Target/CPU/CPUPipeline.cpp) runs them; target-specific passes live in
// include/quench/Codegen/<Target>/Passes.td.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_COMMON_PASSES_TD
#define QUENCH_CODEGEN_COMMON_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchFuseElementwise
    : Pass<"quench-fuse-elementwise", "::mlir::func::FuncOp"> {
  let summary = "Fuse elementwise linalg producers into their consumers "
                "without recomputation";
  let description = [{
    Upstream's elementwise fusion of linalg ops on tensors
    (`linalg::populateElementwiseOpsFusionPatterns`), restricted to fusions
    that recompute nothing: a producer fuses into a consumer only when the
    consumer reads each of its elements once (its operand's indexing map is
    a permutation) and is the producer's only user. Producers that compute
    nothing (a `linalg.generic` whose body only yields block arguments:
    broadcasts, transposes, copies) fuse regardless.

    Fusing a multi-user producer would duplicate it in every consumer: a
    transformer's residual stream, read by the next layer's normalization
    (two reductions and the normalization itself) and by the next residual
    add, was recomputed from the embedding onwards at every layer. Fusing
    into a contraction or a broadcasting consumer would recompute the
    producer once per reduction step or broadcast copy.

    The first pass of the CPU pipeline's `codegen` stage (docs/lowering.md,
    "Fusion without recomputation").
  }];
  let dependentDialects = [
    "::mlir::linalg::LinalgDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def QuenchUnshareInits
    : Pass<"quench-unshare-inits", "::mlir::func::FuncOp"> {
  let summary = "Give every user of a constant-initialized tensor its own "
                "initializing op";
  let description = [{
    Every user of a constant-initialized tensor gets its own copy of the
    initializing op (and of its `tensor.empty`); the first user in program
    order keeps the original. Constant initializations are a `linalg.fill`
    on tensors, or an unmasked `vector.transfer_write` of an
    `arith.constant` over a whole static `tensor.empty` at all-zero indices
    (a vectorized fill).

    CSE merges identical fills, and one-shot bufferization then copies a
    fill shared by several destination-passing consumers for each of them
    (`memref.alloc` + `memref.copy` per use). The CPU pipeline runs this
    pass right before bufferization, after the last CSE;
    `quench-cpu-tile-and-vectorize` does the same first
    (`quench::unshareInitTensors`).

    Example:

    ```mlir
    %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x4xf32>)
        -> tensor<4x4xf32>
    %0 = linalg.matmul ins(%a, %b : ...) outs(%f : tensor<4x4xf32>) -> ...
    %1 = linalg.matmul ins(%b, %a : ...) outs(%f : tensor<4x4xf32>) -> ...
    ```

    becomes two `tensor.empty` + `linalg.fill` pairs, one per matmul.
  }];
}

def QuenchForwardSubvectors
    : Pass<"quench-forward-subvectors", "::mlir::func::FuncOp"> {
  let summary = "Read parts of a vector just written to a tensor from the "
                "vector itself";
  let description = [{
    A `vector.transfer_read` of a static, in-bounds box inside the box a
    `vector.transfer_write` just wrote to a tensor (the read's source is
    the write's result, directly or through a static unit-stride
    `tensor.extract_slice` without rank reduction) becomes a
    `vector.extract_strided_slice` of the written vector. Both transfers
    must be unmasked, have minor-identity permutation maps, constant
    indices, the same rank and element type, and fixed-size vectors; a
    read of the whole written box is left to `vector.transfer_read`'s own
    folding.

    The CPU pipeline runs it after `loop-invariant-subset-hoisting`, when
    a fused contraction's accumulators are the K loop's vector results:
    the fused epilogue then reads them row by row from registers instead
    of through a tensor (docs/lowering.md, "Epilogue fusion").
  }];
  let dependentDialects = ["::mlir::vector::VectorDialect"];
}

def QuenchFullRankWrites : Pass<"quench-full-rank-writes"> {
  let summary = "Give tensor transfer_writes at the origin the destination's "
                "rank, so that one-shot bufferization sees that they read it";
  let description = [{
    Works around an MLIR 22 defect. One-shot bufferization asks every
    `vector.transfer_write` on a tensor whether it reads its destination (a
    partial write keeps the other elements). MLIR 22 answers "no, it
    overwrites everything" for a write at all-zero indices whenever each
    destination dim is at most the vector dim it is zipped with, zipping
    the shapes from the front: a `vector<16xf32>` written at `[0, 0]` of a
    `tensor<8x48xf32>` compares 8 with 16 and is taken for a full
    overwrite. Two chains of writes that start from the same tensor (CSE
    merges identical zero-filled accumulators) may then share one buffer,
    and the second accumulates on top of the first one's results.

    This pass rewrites exactly the writes the check can misjudge (tensor
    destination with a static shape, no mask, all-constant-zero indices, a
    minor-identity map of a lower-rank vector) into a write of the
    destination's rank through a unit-dim `vector.shape_cast`
    (`vector<16xf32>` at `[0, 0]` becomes `vector<1x16xf32>`), for which
    the check compares the right dims. The CPU pipeline runs it right
    before `one-shot-bufferize`. A no-op to delete once the LLVM version
    has the fix.
  }];
  let dependentDialects = ["::mlir::vector::VectorDialect"];
}

def QuenchExpandShapeToCast : Pass<"quench-expand-shape-to-cast"> {
  let summary = "Rewrite memref.expand_shape ops with several dynamic sizes "
                "in one group (unsupported by MLIR 22's "
                "expand-strided-metadata) into memref.reinterpret_cast";
  let description = [{
    Works around an MLIR 22 defect: `expand-strided-metadata` assumes at
    most one dynamic size per reassociation group of a
    `memref.expand_shape` and crashes on a group such as
    `[[0, 1], [2]] output_shape [%b, %t, 32] : memref<?x32xf32> into
    memref<?x?x32xf32>` (llvm/llvm-project#186830, fixed after 22 by
    #187844). Quench produces such groups when a kernel collapses two
    dynamic leading dims (batch and sequence) into rows and expands its
    result back.

    Each such `memref.expand_shape` becomes what it means:

    ```
    base, offset, sizes, strides = memref.extract_strided_metadata %src
    memref.reinterpret_cast %base to offset: [offset],
        sizes: output_shape, strides: per group, innermost first,
        stride[g.back] = strides[g], stride[i] = stride[i+1] * size[i+1]
    ```

    which `expand-strided-metadata` then lowers like any other view.
    Groups with at most one dynamic size are left to upstream. The CPU
    pipeline runs it right before `expand-strided-metadata`. A no-op to
    delete once the LLVM version has the fix.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

def QuenchShareKernels : Pass<"quench-share-kernels", "::mlir::ModuleOp"> {
  let summary = "Outline loop nests that occur several times into one shared "
                "function";
  let description = [{
    A transformer's layers have the same shapes, so after bufferization
    each layer's loop nests (the quantized matmul kernels, normalizations,
    attention, elementwise chains) are the same code on different buffers:
    every layer got its own copy of every kernel in the object. This pass
    finds the loop nests at the top level of a function (`scf.for`,
    `scf.forall`, `scf.parallel`, `scf.if`, `scf.while` with at least
    `min-ops` nested operations) that are identical up to the values they
    read from outside (buffers, weights as `memref.get_global` results,
    sizes: those become arguments; constants are cloned in), and replaces
    each group of two or more by calls of one private function
    `<function>_kernel_<n>` (internal linkage, not inlined). A nest that
    occurs once stays where it is. Identity is decided on the outlined
    function's printed IR (generic form, no locations), so two nests share
    a function only when they are the same operations on operands of the
    same types.

    On memrefs, before `convert-scf-to-quench-runtime` (which then outlines
    the parallel loops of each shared function once). docs/lowering.md,
    "Shared kernels".
  }];
  let options = [
    Option<"minOps", "min-ops", "int64_t", /*default=*/"8",
           "Loop nests with fewer nested operations stay inline">,
  ];
  let dependentDialects = [
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
  ];
}

#endif // QUENCH_CODEGEN_COMMON_PASSES_TD
