//===- CUDAPipeline.cpp - the CUDA backend's code generation stages -------===//

#include "quench/Target/CUDA/CUDAPipeline.h"

#include "quench/Codegen/Common/Passes.h"
#include "quench/Codegen/GPU/Passes.h"
#include "quench/Conversion/Passes.h"
#include "quench/Target/CPU/CPUPipeline.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/SetVector.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassRegistry.h"

using namespace mlir;

namespace {
/// Run-time checks whose messages carry values (`scf.if` on the failed
/// condition around a call of the host function
/// quench_rt_check_failed_values, docs/reliability.md) become plain
/// `cf.assert`s, their "{0}"/"{1}" placeholders reading "?": the checks
/// that read device results land in kernels, where a host function
/// cannot be called (ptxas: unresolved extern) and `cf.assert` becomes
/// the device's assert.
struct ValueChecksToAsserts
    : PassWrapper<ValueChecksToAsserts, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(ValueChecksToAsserts)
  StringRef getArgument() const final {
    return "quench-cuda-value-checks-to-asserts";
  }
  void getDependentDialects(DialectRegistry &registry) const override {
    registry.insert<arith::ArithDialect, cf::ControlFlowDialect>();
  }
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Canonicalization may have merged checks on one condition into one
    // scf.if: each call becomes an assert, then the if goes.
    llvm::SetVector<scf::IfOp> ifs;
    WalkResult walk = module.walk([&](LLVM::CallOp call) {
      if (call.getCallee() != "quench_rt_check_failed_values")
        return WalkResult::advance();
      auto ifOp = dyn_cast<scf::IfOp>(call->getParentOp());
      if (!ifOp || ifOp.getNumResults() != 0 || ifOp.elseBlock()) {
        call.emitError("run-time check of an unexpected form");
        return WalkResult::interrupt();
      }
      ifs.insert(ifOp);
      return WalkResult::advance();
    });
    if (walk.wasInterrupted())
      return signalPassFailure();
    for (scf::IfOp ifOp : ifs) {
      OpBuilder b(ifOp);
      Location loc = ifOp.getLoc();
      Value ok = arith::XOrIOp::create(
          b, loc, ifOp.getCondition(),
          arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1));
      for (auto call : ifOp.thenBlock()->getOps<LLVM::CallOp>()) {
        if (call.getCallee() != "quench_rt_check_failed_values")
          continue;
        auto gep = call.getOperand(0).getDefiningOp<LLVM::GEPOp>();
        auto addr = gep ? gep.getBase().getDefiningOp<LLVM::AddressOfOp>()
                        : LLVM::AddressOfOp();
        auto global =
            addr ? SymbolTable::lookupNearestSymbolFrom<LLVM::GlobalOp>(
                       addr, addr.getGlobalNameAttr())
                 : LLVM::GlobalOp();
        auto text = global
                        ? dyn_cast_or_null<StringAttr>(global.getValueOrNull())
                        : StringAttr();
        if (!text) {
          call.emitError("run-time check of an unexpected form");
          return signalPassFailure();
        }
        std::string message = text.getValue().rtrim(StringRef("\0", 1)).str();
        for (StringRef hole : {"{0}", "{1}"})
          for (size_t at;
               (at = message.find(hole.str())) != std::string::npos;)
            message.replace(at, hole.size(), "?");
        cf::AssertOp::create(b, loc, ok, message);
      }
      ifOp.erase();
    }
  }
};
} // namespace

llvm::ArrayRef<llvm::StringRef> quench::getSupportedCUDAArchs() {
  static const llvm::StringRef archs[] = {"sm_80", "sm_86", "sm_89", "sm_90",
                                          "sm_90a"};
  return archs;
}

void quench::appendCUDACodegenStages(std::vector<PipelineStage> &stages,
                                     const CUDACodegenOptions &opts) {
  // codegen (fusion on tensors) and bufferize are the CPU backend's
  // without vectorization; its scalar to-llvm lowers the emulation.
  std::vector<PipelineStage> cpu;
  CPUCodegenOptions scalar;
  scalar.vectorBits = 0;
  appendCPUCodegenStages(cpu, scalar);
  auto takeCPUStage = [&](StringRef name) {
    for (PipelineStage &stage : cpu)
      if (stage.name == name)
        return std::move(stage);
    llvm_unreachable("the CPU backend has no such stage");
  };
  stages.push_back(takeCPUStage("codegen"));
  stages.back().description = "fusion on tensors";
  stages.push_back(takeCPUStage("bufferize"));
  int64_t blockSize = opts.blockSize;
  bool emulate = opts.emulate;
  stages.push_back(
      {"gpu-kernels",
       emulate ? "device buffers, loop nests as kernels, run on the host"
               : "device buffers, loop nests as kernels, one device module",
       [blockSize, emulate](OpPassManager &pm) {
         addTextualPassPipeline(pm, "convert-bufferization-to-memref");
         // Host buffers with run-time extents: size checks (as the CPU's).
         pm.addPass(createQuenchCheckBufferSizes());
         if (!emulate)
           pm.addPass(std::make_unique<ValueChecksToAsserts>());
         pm.addPass(createQuenchGPUPlaceBuffers());
         // Quantized layers with few rows: bandwidth-bound GEMV kernels
         // (docs/gpu.md, "W4A16/W8A16 GEMV"); the rest maps generically.
         QuenchGPUDequantGemvOptions gemv;
         gemv.blockSize = blockSize;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUDequantGemv(gemv));
         // 2:4 sparse linear layers (f16, int8; compressed, or dense
         // constants that are 2:4): sparse tensor cores (docs/gpu.md,
         // "Sparse tensor-core GEMM"), before the dense GEMM takes them.
         QuenchGPUMmaSpGemmOptions mmaSp;
         mmaSp.emulate = emulate;
         pm.addPass(createQuenchGPUMmaSpGemm(mmaSp));
         // Matmuls with f16/bf16 operands and f32 accumulation (prefill):
         // tensor-core kernels (docs/gpu.md, "Tensor-core GEMM").
         QuenchGPUMmaGemmOptions mma;
         mma.emulate = emulate;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUMmaGemm(mma));
         pm.addNestedPass<func::FuncOp>(createQuenchGPUParallelDimsOuter());
         addTextualPassPipeline(pm, "convert-linalg-to-parallel-loops,"
                                    "canonicalize");
         QuenchGPUMapToLaunchOptions map;
         map.blockSize = blockSize;
         pm.addNestedPass<func::FuncOp>(createQuenchGPUMapToLaunch(map));
         if (emulate) {
           pm.addNestedPass<func::FuncOp>(createQuenchGPUEmulateOnHost());
           addTextualPassPipeline(pm, "canonicalize,cse");
           return;
         }
         // Constants (shift counts, masks, sizes) move into the kernels
         // that use them instead of becoming kernel parameters.
         addTextualPassPipeline(pm, "func.func(gpu-launch-sink-index-"
                                    "computations),gpu-kernel-outlining");
         pm.addPass(createQuenchGPUMergeModules());
         // One stream per run: every GPU op of a function becomes
         // asynchronous on it, the host waits where it needs results.
         addTextualPassPipeline(pm, "func.func(gpu-async-region),"
                                    "canonicalize,cse");
       },
       nullptr});
  if (emulate) {
    stages.push_back(takeCPUStage("to-llvm"));
    return;
  }
  std::string target = "nvvm-attach-target{chip=" + opts.chip +
                       " features=" + opts.features + " O=3}";
  stages.push_back(
      {"to-llvm", "kernels to NVVM and PTX, host code to the LLVM dialect",
       [target](OpPassManager &pm) {
         addTextualPassPipeline(
             pm, target +
                     ",gpu.module(lower-affine,convert-scf-to-cf,"
                     // Tensor-core GEMM kernels: mma.sync, ldmatrix,
                     // cp.async.
                     "convert-nvgpu-to-nvvm,"
                     // Vector ops of the GEMV kernels (16-byte loads).
                     "convert-vector-to-llvm,"
                     "expand-strided-metadata,lower-affine,"
                     "convert-gpu-to-nvvm,canonicalize,cse,"
                     "reconcile-unrealized-casts)");
         addTextualPassPipeline(pm, "func.func(convert-scf-to-cf)");
         // Failed run-time checks of the host code return an error status.
         pm.addPass(createConvertAssertToQuenchRuntime());
         pm.addPass(createQuenchExpandShapeToCast());
         addTextualPassPipeline(
             pm, "expand-strided-metadata,lower-affine,"
                 // Outputs are allocated by the runtime's allocator, which
                 // the caller frees (docs/runtime.md).
                 "finalize-memref-to-llvm{use-generic-functions=1},"
                 "convert-arith-to-llvm,convert-index-to-llvm,"
                 "convert-func-to-llvm,convert-cf-to-llvm,gpu-to-llvm,"
                 "convert-ub-to-llvm,reconcile-unrealized-casts,"
                 // PTX here; the backend assembles it with the Toolkit's
                 // ptxas when it serializes.
                 "gpu-module-to-binary{format=isa},canonicalize");
       },
       nullptr});
}

void quench::registerCUDAPipelines() {
  PassPipelineRegistration<CUDAPipelineOptions>(
      "quench-cuda-pipeline",
      "Lower a quench model to the LLVM dialect and PTX for NVIDIA GPUs "
      "(stages prepare, to-linalg, codegen, bufferize, gpu-kernels, "
      "to-llvm)",
      [](OpPassManager &pm, const CUDAPipelineOptions &opts) {
        FrontPipelineOptions front;
        front.prepare = opts.prepare;
        std::vector<PipelineStage> stages = getFrontPipelineStages(front);
        appendCUDACodegenStages(stages, opts.getCodegenOptions());
        for (const PipelineStage &stage : stages)
          stage.build(pm);
      });
}
