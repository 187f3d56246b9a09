//===- MergeModules.cpp - one device module per model ---------------------===//
//
// `quench-gpu-merge-modules`: gpu-kernel-outlining makes one gpu.module
// per kernel; this pass moves every kernel into the first one so that a
// model compiles to one device binary (one ptxas run, one module load).
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUMERGEMODULES
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {
struct QuenchGPUMergeModulesPass
    : public quench::impl::QuenchGPUMergeModulesBase<
          QuenchGPUMergeModulesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Workgroup buffers are 16-byte aligned (the default is the element's
    // alignment): the tensor-core kernels copy and ldmatrix 16-byte rows.
    module.walk([&](gpu::GPUFuncOp func) {
      for (unsigned i = 0, e = func.getNumWorkgroupAttributions(); i < e; ++i)
        if (!func.getWorkgroupAttributionAttr(i, "llvm.align"))
          func.setWorkgroupAttributionAttr(
              i, "llvm.align",
              IntegerAttr::get(IntegerType::get(&getContext(), 64), 16));
    });
    SmallVector<gpu::GPUModuleOp> modules(module.getOps<gpu::GPUModuleOp>());
    if (modules.size() < 2)
      return;
    gpu::GPUModuleOp target = modules.front();
    SymbolTable table(target);
    // (module, symbol) -> the symbol's name in the target module.
    DenseMap<std::pair<StringAttr, StringAttr>, StringAttr> renamed;
    for (gpu::GPUModuleOp other : ArrayRef(modules).drop_front()) {
      Block *body = other.getBody();
      for (Operation &op : llvm::make_early_inc_range(*body)) {
        auto symbol = dyn_cast<SymbolOpInterface>(&op);
        if (!symbol) {
          op.emitOpError("in a device module is not a symbol; cannot merge "
                         "device modules");
          return signalPassFailure();
        }
        StringAttr old = symbol.getNameAttr();
        op.remove();
        StringAttr name = table.insert(&op);
        renamed[{other.getNameAttr(), old}] = name;
      }
    }
    // Kernels only reach each other through launches (device functions
    // are private to their module and were moved with it).
    module.walk([&](gpu::LaunchFuncOp launch) {
      auto it =
          renamed.find({launch.getKernelModuleName(), launch.getKernelName()});
      if (it == renamed.end())
        return;
      launch.setKernelAttr(SymbolRefAttr::get(
          target.getNameAttr(), {FlatSymbolRefAttr::get(it->second)}));
    });
    for (gpu::GPUModuleOp other : ArrayRef(modules).drop_front())
      other.erase();
  }
};
} // namespace
