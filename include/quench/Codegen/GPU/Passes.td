//===- Passes.td - GPU code generation passes ---------------*- tablegen -*-===//
//
// The passes of the CUDA backend's code generation stages
// (lib/Target/CUDA/CUDAPipeline.cpp) that upstream MLIR has no equivalent
// for: where buffers live (host or device), how loop nests become kernel
// launches, and one device module per model. Implementations in
// lib/Codegen/GPU/; docs/gpu.md explains the design.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CODEGEN_GPU_PASSES_TD
#define QUENCH_CODEGEN_GPU_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuenchGPUPlaceBuffers
    : Pass<"quench-gpu-place-buffers", "::mlir::ModuleOp"> {
  let summary = "Put a bufferized model's buffers in device memory, copying "
                "its inputs in and its outputs out";
  let description = [{
    Runs on bufferized public functions (after the deallocation pipeline and
    `convert-bufferization-to-memref`). Every `memref.alloc`/`dealloc`
    becomes `gpu.alloc`/`gpu.dealloc`; every memref argument (host memory,
    the caller's tensors) is copied once into a device buffer that replaces
    it; every returned memref is copied into a fresh host buffer (through a
    contiguous device copy when it is a strided view), and the device
    allocation it views is freed. Constant globals (`memref.get_global`)
    are left alone: the backend places the whole weight image in device
    memory at serialization (docs/gpu.md, "Weights").

    `memref.copy` becomes `linalg.copy`, which the launch mapping turns into
    a kernel like any other loop nest.

    Shape computations stay on the host: a buffer the host reads (a scalar
    `memref.load` outside any linalg op, the shape operand of
    `memref.reshape`) stays a host allocation, the linalg ops writing it
    run as host loops (and the buffers they read become host buffers in
    turn), and constant globals read there get a host copy (a mutable
    global marked `quench.host`, outside the weight image). A device op
    reading a host buffer reads a device copy made just before it.

    Fails on a returned value whose allocation cannot be traced through
    view-like ops.
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
    "::mlir::linalg::LinalgDialect",
    "::mlir::memref::MemRefDialect",
  ];
}

def QuenchGPUDequantGemv
    : Pass<"quench-gpu-dequant-gemv", "::mlir::func::FuncOp"> {
  let summary = "Quantized linear layers with few activation rows as "
                "bandwidth-bound GEMV kernels";
  let description = [{
    Runs on device buffers (after `quench-gpu-place-buffers`, before
    `quench-gpu-parallel-dims-outer`). A `linalg.generic` marked
    `quench.dequant_matmul` (the fast form of MatMulNBits.cpp: 2, 4 or 8
    bit codes [groups, bytes per group, N] i8 with N innermost, scales and
    optional zero points [groups, N]) whose row count M (the product of the
    batch dims) is dynamic or at most `max-rows` becomes two explicit
    `gpu.launch` kernels (docs/gpu.md, "W4A16/W8A16 GEMV"):

    1. each thread owns 16 consecutive output features and a range of the
       K rows of code bytes (split-K); per code row it reads the 16 bytes
       with one 16-byte aligned `vector.load` (consecutive threads,
       consecutive chunks), dequantizes in registers (shift, mask, the
       2^23 float bit trick, zero point, scale; scales and zero points
       loaded once per group) and accumulates rows x 16 sums in f32; M is
       covered by tiles of up to `row-tile` rows (grid y);
    2. when K is split, the partial sums go to a device scratch buffer
       [splits, M, N] and a second launch, one thread per output, adds them
       to the output.

    No barriers, shared memory or shuffles, so `--cuda-emulate` runs the
    kernels. Other layouts (N not a multiple of 16, codes or scales that
    are not contiguous device buffers, static M above `max-rows`) keep the
    generic mapping.
  }];
  let options = [
    Option<"maxRows", "max-rows", "int64_t", /*default=*/"8",
           "Largest static row count handled (dynamic counts always are)">,
    Option<"rowTile", "row-tile", "int64_t", /*default=*/"4",
           "Rows per thread (grid y covers the rest): 16 f32 accumulators "
           "each">,
    Option<"targetThreads", "target-threads", "int64_t", /*default=*/"32768",
           "Threads the K split aims at">,
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block (the partial kernel takes at most 128)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchGPUMmaGemm : Pass<"quench-gpu-mma-gemm", "::mlir::func::FuncOp"> {
  let summary = "Matmuls with f16 operands and f32 accumulation, or "
                "int8 operands and i32 accumulation, as tensor-core GEMM "
                "kernels (mma.sync)";
  let description = [{
    Runs on device buffers (after `quench-gpu-place-buffers`, before
    `quench-gpu-parallel-dims-outer`). A contraction on buffers (a
    `linalg.matmul`, `linalg.batch_matmul` or `linalg.generic` whose body
    is `out + extf(a) * extf(b)`) with f16 operands and an f32 output (not
    bf16: MLIR 22's `nvgpu.mma.sync` lowering has no bf16 types), or `out + extsi(a) * extsi(b)` with i8 operands and an i32
    output (the W8A8 contraction), becomes one `gpu.launch` of a
    block-tiled tensor-core kernel (docs/gpu.md, "Tensor-core GEMM"):
    blocks of 128 threads compute 64 x 64 output tiles, each of the 4 warps
    a 32 x 32 warp tile with `nvgpu.mma.sync` m16n8k16 (m16n8k32 for int8;
    accumulators in registers); the A and B tiles (K steps of 64 bytes) are
    staged in shared memory by `cp.async` (`nvgpu.device_async_copy`, 16
    bytes, zero-filled outside the matrix) in a 3-stage pipeline and read
    with `nvgpu.ldmatrix` (transposed for a B stored [K, N]). Any M; K and
    N static multiples of 16 bytes (16-byte rows); A [batch..., M, K]; B
    [K, N] (not int8: ldmatrix transposes 16-bit elements only) or [N, K]
    (linear layers), shared by every batch (the batch dims fold into M) or
    with A's batch dims (grid z); A and B contiguous 16-byte aligned device
    buffers. A static row count below `min-rows` (decode) keeps the
    GEMV/generic kernels.

    With `emulate`, the same kernel (grid, tiles, pipeline order,
    zero-filling copies, ldmatrix lane addresses, fragments, the
    predicated epilogue) is emitted for `--cuda-emulate` on the CPU with
    sequential loops in place of the block's threads: the copies loop over
    the 128 threads (cp.async becomes a masked 16-byte copy), and
    `ldmatrix` and `mma.sync` are computed by their PTX definitions warp by
    warp over buffers holding the 32 lanes' fragment registers.
  }];
  let options = [
    Option<"minRows", "min-rows", "int64_t", /*default=*/"16",
           "Smallest static row count M handled (dynamic counts always "
           "are)">,
    Option<"emulate", "emulate", "bool", /*default=*/"false",
           "Emit the kernel for the host emulation (no warp-collective "
           "operations)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchGPUMmaSpGemm : Pass<"quench-gpu-mma-sp-gemm", "::mlir::ModuleOp"> {
  let summary = "2:4 sparse linear layers with f16 or int8 operands as "
                "sparse tensor-core kernels (mma.sp)";
  let description = [{
    Runs on device buffers (after `quench-gpu-place-buffers`, before
    `quench-gpu-parallel-dims-outer`). The specification generic of a
    2:4 `quench.sparse_linear` (marked `quench.sparse_matmul`: values and
    indices `[N, K / 4, 2]`, x `[rows..., K / 4, 4]`) with f16 operands and
    f32 sums, or i8 operands and i32 sums (no scales), becomes one
    `gpu.launch` of a kernel on the sparse tensor cores
    (docs/gpu.md, "Sparse tensor-core GEMM"): the compressed weight is the
    sparse operand A (`nvgpu.mma.sp.sync` m16n8k32 for f16, m16n8k64 for
    int8, sparsity selector 0), the activations are B; blocks of 128
    threads, each warp 16 output features x 32 rows (4 n8 tiles sharing one
    A fragment). The constant indices are re-laid out at compile time into
    a constant of mma.sp metadata words in the lanes' register order. N a
    static multiple of 16, K of 32 (f16) or 64 (int8); any row count; x and
    the values contiguous 16-byte aligned device buffers or weight-image
    constants, the indices a constant. A dense contraction of the shapes
    the dense tensor-core pass takes (`out + ext(x) * ext(w)`, f16 into f32
    or i8 into i32, x `[batch..., M, K]`) whose weight (`[N, K]`, or
    `[K, N]` read transposed) is a
    constant that is 2:4 along K (at most 2 nonzeros per group of 4: a
    pruned f16 model, or the W8A8 codes of `--sparsity=2:4
    --quant=w8a8-dynamic`) takes the same kernel: the pass compresses the
    weight into a values constant at compile time. Anything else keeps the
    dense tensor-core or generic kernels (the pass runs before
    `quench-gpu-mma-gemm`).

    With `emulate`, the same kernel (grid, warp tiles, the lanes' load
    addresses, the metadata constant, the predicated epilogue) is emitted
    for `--cuda-emulate` on the CPU with sequential loops in place of the
    block's warps and lanes, and `mma.sp` is computed by its PTX definition
    over buffers holding the 32 lanes' fragment and metadata registers.
  }];
  let options = [
    Option<"emulate", "emulate", "bool", /*default=*/"false",
           "Emit the kernel for the host emulation (no warp-collective "
           "operations)">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::nvgpu::NVGPUDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def QuenchGPUMapToLaunch
    : Pass<"quench-gpu-map-to-launch", "::mlir::func::FuncOp"> {
  let summary = "Turn the outermost parallel loop nests of host code into "
                "gpu.launch kernels";
  let description = [{
    Every outermost `scf.parallel` of a function (the loop nests
    `convert-linalg-to-parallel-loops` makes of linalg ops on device
    buffers) becomes a `gpu.launch` with one thread per iteration: the
    iteration space is linearized, blocks of `block-size` threads cover it,
    each thread recovers its indices by delinearization and runs the loop
    body (including its sequential reduction loops) when its linear index is
    in range (an empty iteration space launches one block whose threads
    all stay idle, so that every launch stays on the run's stream chain).

    Host code that reads or writes memory outside any parallel loop (loop
    nests with no parallel dimension, rank-0 ops) runs as a single-thread
    kernel; a host value computed from device memory is an error.

    This generic mapping is correct for every loop nest; the tensor-core and
    quantized kernels of docs/gpu.md replace it where they apply.
  }];
  let options = [
    Option<"blockSize", "block-size", "int64_t", /*default=*/"256",
           "Threads per block">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def QuenchGPUMergeModules
    : Pass<"quench-gpu-merge-modules", "::mlir::ModuleOp"> {
  let summary = "Move every outlined kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` makes one `gpu.module` per kernel; a model has
    hundreds. This pass moves every `gpu.func` (and the symbols it uses)
    into the first module, renaming on conflicts, and retargets the
    `gpu.launch_func` ops, so that the model has one device binary: one
    `ptxas` run at compile time and one module load at run time. Workgroup
    attributions of every kernel get `llvm.align = 16` (unless set): the
    tensor-core kernels copy and `ldmatrix` 16-byte rows of them.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def QuenchGPUEmulateOnHost
    : Pass<"quench-gpu-emulate-on-host", "::mlir::func::FuncOp"> {
  let summary = "Run gpu.launch kernels and device buffers on the host CPU";
  let description = [{
    Verification without a GPU (docs/gpu.md, "Verification"): the CUDA
    backend's IR after buffer placement and launch mapping, before
    outlining, runs on the CPU. Device allocations, frees and copies become
    their memref counterparts; every `gpu.launch` becomes an `scf.parallel`
    over its blocks holding sequential loops over its threads (z, y, x), in
    which the kernel body runs with the block and thread ids, grid and block
    sizes of that iteration. Kernels that synchronize threads (`gpu.barrier`)
    or use workgroup memory are rejected: the sequential thread loops cannot
    honour them.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

def QuenchGPUParallelDimsOuter
    : Pass<"quench-gpu-parallel-dims-outer", "::mlir::func::FuncOp"> {
  let summary = "Put the parallel dimensions of linalg ops outermost";
  let description = [{
    `convert-linalg-to-parallel-loops` makes one `scf.parallel` per run of
    consecutive parallel dimensions and sequential loops for reductions: a
    quantized matmul with iterators (parallel, parallel, reduction,
    reduction, reduction, parallel) would become a parallel loop over rows
    around sequential loops around a parallel loop over columns, which the
    launch mapping runs one row per thread (or not at all when the rows
    fold away). This pass interchanges every linalg op (generalizing named
    ones) so that its parallel dimensions come first, in their order, then
    its reductions: every output element is one thread of the generic
    kernel, reductions run inside it. Ops that run on the host (outside any
    device buffer) are left alone.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

#endif // QUENCH_CODEGEN_GPU_PASSES_TD
