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
    Target-independent: it has no options and reads no target attribute;
    its result is upstream IR that a backend's code generation takes from
    there (the CPU pipeline runs it as its `to-linalg` stage). Every quench
    op on float, integer and bool tensors becomes `linalg` on tensors
    (`linalg.generic` with broadcasting indexing maps for the elementwise
    ops, `linalg.matmul` or a `linalg.generic` contraction for
    `matmul`/`linear`, reductions as `linalg.generic` with reduction
    iterators) plus `tensor` ops for the shape manipulations and
    `arith`/`math` for the scalar bodies. Dynamic dimensions are supported
    everywhere (`tensor.dim` feeding `tensor.empty`). `quench.attention`
    stays: a backend lowers it with its own kernel or with
    quench-decompose-attention.

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
    * The ONNX quantization ops on integer tensors (`quantize_linear`,
      `dequantize_linear`, `dynamic_quantize_linear`, `matmul_integer`,
      `qlinear_matmul`) divide by the scale, round half to even and
      saturate by clamping in float (NaN gives the lower bound of the
      range); integer products accumulate exactly in i32 (one two-input
      contraction plus zero-point corrections).
    * `matmul_nbits` becomes one `linalg.generic` that reads the packed
      codes and dequantizes them in its body (no dequantized weight matrix
      exists). With 2-, 4- or 8-bit codes and constant weights, scales and
      zero points, the constants are laid out again K-major and the generic
      carries the unit attribute `quench.dequant_matmul`, which code
      generation may use to replace it by a dedicated kernel.
    * `qlinear` (W8A8) quantizes its input to int8 (per row when dynamic),
      contracts int8 x int8 into i32 and rescales in an elementwise
      epilogue.

    Not converted yet (left legal): any op whose operands or results have
    `!quant` element types (the constant and shape ops accept them).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def QuenchDecomposeAttention : Pass<"quench-decompose-attention"> {
  let summary = "Lower quench.attention to linalg on tensors, op by op";
  let description = [{
    `convert-quench-to-linalg` keeps `quench.attention` (a backend may have
    a fused kernel for it: quench-cpu-attention); this pass is the generic
    lowering for the others (the CPU backend without vector code, the CUDA
    backend). Query heads are split as `[B, Hk, H/Hk, S, D]` so that every
    indexing map is a projected permutation; the scores `Q·Kᵀ` are one
    `linalg.generic` contraction that converts the key as it reads it (f16
    → f32, or i8 code × its scale: no dequantized copy of a cache), then
    scale and bias, the row maximum, `exp(s − max)`, its row sum and the
    contraction with the values (converted likewise) are one generic each,
    and the result is divided by the row sum. Computation is in f32 for
    f16/bf16 queries (the result is rounded once), else in the query's
    type. A dynamic bias dimension is taken to equal the full extent (as
    in convert-quench-to-linalg's broadcasting).
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::cf::ControlFlowDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::tensor::TensorDialect",
  ];
}

def ConvertSCFToQuenchRuntime
    : Pass<"convert-scf-to-quench-runtime", "::mlir::ModuleOp"> {
  let summary = "Run parallel loops on the runtime's thread pool "
                "(quench_parallel_for_work)";
  let description = [{
    Replaces every outermost `scf.forall` and `scf.parallel` of a
    `func.func` that has no results, unless its trip counts are constants
    and its work (iterations times the estimated cost of one) is below
    `min-parallel-work`, by one call

    ```
    quench_parallel_for_work(quench_current_threadpool(), n, cost, body, ctx)
    ```

    of the Quench runtime (runtime/include/quench/runtime_abi.h): `n` is the
    product of the trip counts `max(0, ceil((ub - lb) / step))` (a loop
    with a constant trip count of 0 is erased; with n = 0 at run time the
    runtime calls nothing), `body` a new function that runs the linear
    iterations `[begin, end)`, and `ctx` a pointer to a stack struct holding
    every value the loop captures. With no pool (outside a model run) the
    runtime calls `body(ctx, 0, n)` on the calling thread. The returned
    status is ignored: it only reports n < 0 or a null function, which the
    generated call cannot pass.

    Runs on buffers (after bufferization) and before `convert-scf-to-cf`;
    the result still needs the usual lowering to the LLVM dialect
    (`finalize-memref-to-llvm`, `convert-func-to-llvm`, ...,
    `reconcile-unrealized-casts`), which it is written for, and the program
    must be linked with the runtime (the two functions are external
    references, not weak ones).

    Design:
    * The body is outlined into `func.func private @<f>_parallel_body[_N]
      (%ctx: !llvm.ptr, %begin: i64, %end: i64)` with internal linkage
      (`llvm.linkage`), next to its function: the C signature
      `void (*)(void *, int64_t, int64_t)` of `quench_parallel_fn`, and a
      name that is unique in the module and never clashes across objects.
      It carries the unit attribute `quench.parallel_body`; loops in it
      (those nested in the parallel loop) stay sequential, also if the pass
      runs again.
    * A 1-D loop becomes `scf.for %i = begin to end` with the induction
      variable `lb + i * step`. An n-D loop walks `[begin, end)` in runs
      along its innermost dimension (`scf.while` around an `scf.for`): each
      run delinearizes its first index once (`divui`/`remui` by the trip
      counts), so there is one division per row, not per iteration.
    * Captures (values defined above the loop and used in it, dynamic lower
      bounds, steps and inner trip counts) are packed with LLVM dialect ops
      (`llvm.alloca` of a literal struct in the function's entry block,
      `llvm.getelementptr`, `llvm.store`/`llvm.load`); a field has the type
      the default `LLVMTypeConverter` gives the value (a memref becomes its
      descriptor struct, `index` becomes `i64`), and
      `builtin.unrealized_conversion_cast` / `arith.index_cast` bridge
      between the two, for `reconcile-unrealized-casts` to remove.
      Constant-like captures are cloned into the body instead. The runtime
      functions are declared as private `func.func`s and the body's address
      is a `func.constant`, so `convert-func-to-llvm` lowers everything to
      `llvm.call`/`llvm.mlir.addressof`.
    * `cost` estimates the operations of one iteration (nested loops
      multiply by their trip count: the constant count, else the bound of an
      upper bound that is a tile size (`affine.min`, a monotone
      `affine.apply`, `arith.minsi`/`minui` of a constant), else 256; vector
      ops count one per 8 elements). Parallelism is decided per loop from its
      work `n * cost`: at compile time, a loop with constant trip counts
      whose work is below `min-parallel-work` (two chunks' worth at the
      smallest dispatch cost the runtime measures) is left sequential,
      where it is; at run time, the runtime runs the loop inline unless
      each of at least two chunks carries a multiple of the pool's
      measured dispatch cost, and otherwise sizes the chunks from it
      (docs/runtime.md, "Thread pool").

    Left sequential (lowered by `convert-scf-to-cf` as before):
    * loops with results: `scf.parallel` with reductions (a parallel
      reduction needs per-chunk partial results and a combine step) and
      `scf.forall` with `shared_outs` (tensors: not bufferized yet);
    * `scf.forall` with a `mapping` (GPU or other device lowerings own it);
    * loops whose captured values have no LLVM type (e.g. tensors), and
      loops not directly in a `func.func`.
    Loops inside a loop that is left sequential are still considered.

    Example:

    ```mlir
    scf.forall (%i) in (%n) {
      %x = memref.load %in[%i] : memref<?xf32>
      memref.store %x, %out[%i] : memref<?xf32>
    }
    ```

    becomes (`%in` and `%out` travel in the context struct; `%n` only
    feeds the trip count, computed before the call)

    ```mlir
    %ctx = llvm.alloca %c1 x !llvm.struct<(struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>, ...)>
    ...
    %pool = call @quench_current_threadpool() : () -> !llvm.ptr
    %fn = constant @f_parallel_body : (!llvm.ptr, i64, i64) -> ()
    %r = call @quench_parallel_for_work(%pool, %n64, %cost, %fn, %ctx) : ...
    ```
  }];
  let options = [
    Option<"minParallelWork", "min-parallel-work", "int64_t",
           /*default=*/"16384",
           "Loops with constant trip counts and less estimated work "
           "(iterations x operations per iteration) stay sequential; 0 "
           "sends every loop to the runtime">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::func::FuncDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def ConvertAssertToQuenchRuntime
    : Pass<"convert-assert-to-quench-runtime", "::mlir::ModuleOp"> {
  let summary = "Failed run-time checks (cf.assert) return an error status";
  let description = [{
    Every `cf.assert %ok, "message"` becomes a branch to a block that calls
    the runtime's `quench_rt_check_failed(message)` (runtime_abi.h), which
    never returns: it unwinds the run to `quench_model_run`, which returns
    QUENCH_ERR_INVALID_ARGUMENT with the message (the executable prints it
    and exits 1 without writing outputs). Without this pass MLIR's own
    lowering prints the message and aborts the process. The checks come
    from the lowering to linalg (dims that broadcasting assumes equal) and
    sit at the top level of functions, never in parallel-loop bodies
    (docs/reliability.md). Runs before convert-cf-to-llvm.

    ```mlir
    cf.assert %ok, "node 'add': ..."
    // becomes
    cf.cond_br %ok, ^continue, ^failed
    ^failed:
      %m = llvm.mlir.addressof @quench_check_message_0 ...
      llvm.call @quench_rt_check_failed(%m) : (!llvm.ptr) -> ()
      llvm.unreachable
    ```
  }];
  let dependentDialects = [
    "::mlir::cf::ControlFlowDialect",
    "::mlir::LLVM::LLVMDialect",
  ];
}

def QuenchCheckBufferSizes
    : Pass<"quench-check-buffer-sizes", "::mlir::ModuleOp"> {
  let summary = "Run-time checks of the sizes of buffers with run-time extents";
  let description = [{
    A buffer whose extents come from input values (`ConstantOfShape`,
    `Range`, `Expand`, `Tile` driven by the model's inputs) can ask for a
    size that overflows the 64-bit arithmetic of the memref lowering: the
    allocator then sees a small size and the loops write past it. Before
    every `memref.alloc`/`memref.alloca` with dynamic sizes in a host
    function, this pass checks at run time that every dynamic extent is
    non-negative and that the buffer's bytes (computed in f64, which cannot
    overflow for any rank the importer accepts) are at most `max-bytes`
    (default 2^62, far below the wrap point and above any allocation a
    machine can satisfy: sizes below it reach the allocator, which reports
    out-of-memory cleanly). A failed check ends the run with an error
    naming the node and the first two run-time extents
    (docs/reliability.md). Device code (`gpu.module`, `gpu.launch`) is
    left alone. Runs on buffers, before the parallel loops are outlined.

    ```mlir
    %b = memref.alloc(%n, %m) : memref<?x?xf32>
    // gains before it:
    //   ok = %n >= 0 && %m >= 0 && 4.0 * f64(%n) * f64(%m) <= max-bytes
    //   scf.if !ok { llvm.call @quench_rt_check_failed_values(msg, %n, %m) }
    ```
  }];
  let options = [
    Option<"maxBytes", "max-bytes", "uint64_t",
           /*default=*/"uint64_t(1) << 62",
           "Largest buffer, in bytes, a run-time size may ask for">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // QUENCH_CONVERSION_PASSES_TD
