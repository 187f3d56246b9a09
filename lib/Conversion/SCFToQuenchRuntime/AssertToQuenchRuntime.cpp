//===- AssertToQuenchRuntime.cpp - failed checks return an error ----------===//
//
// `convert-assert-to-quench-runtime`: every `cf.assert` becomes a branch to a
// block that calls `quench_rt_check_failed(message)`, which unwinds the run
// to `quench_model_run` (runtime/lib/model.c); that returns an error status
// with the message instead of aborting the process. See the pass description
// in Passes.td and docs/reliability.md.
//
//===----------------------------------------------------------------------===//

#include "quench/Conversion/Passes.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Builders.h"
#include "mlir/Interfaces/FunctionInterfaces.h"

namespace quench {
#define GEN_PASS_DEF_CONVERTASSERTTOQUENCHRUNTIME
#include "quench/Conversion/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

struct ConvertAssertToQuenchRuntime
    : quench::impl::ConvertAssertToQuenchRuntimeBase<
          ConvertAssertToQuenchRuntime> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Host functions only: device code (gpu.module) keeps its own lowering.
    SmallVector<cf::AssertOp> asserts;
    for (auto func : module.getOps<FunctionOpInterface>())
      func->walk([&](cf::AssertOp op) { asserts.push_back(op); });
    if (asserts.empty())
      return;
    MLIRContext *ctx = module.getContext();
    auto ptr = LLVM::LLVMPointerType::get(ctx);
    OpBuilder b(ctx);
    b.setInsertionPointToStart(module.getBody());
    FailureOr<LLVM::LLVMFuncOp> fail = LLVM::lookupOrCreateFn(
        b, module, "quench_rt_check_failed", {ptr},
        LLVM::LLVMVoidType::get(ctx));
    if (failed(fail)) {
      module.emitError("quench_rt_check_failed is declared with another type");
      return signalPassFailure();
    }
    // One global per distinct message.
    llvm::StringMap<std::string> globals;
    for (cf::AssertOp op : asserts) {
      Location loc = op.getLoc();
      Block *block = op->getBlock();
      Block *cont = block->splitBlock(std::next(op->getIterator()));
      auto *failed = new Block();
      block->getParent()->getBlocks().insertAfter(block->getIterator(),
                                                  failed);
      b.setInsertionPointToStart(failed);
      std::string &name = globals[op.getMsg()];
      Value message;
      if (name.empty()) {
        name = "quench_check_message_" + std::to_string(globals.size() - 1);
        message = LLVM::createGlobalString(loc, b, name,
                                           op.getMsg().str() + '\0',
                                           LLVM::Linkage::Internal);
      } else {
        auto global = module.lookupSymbol<LLVM::GlobalOp>(name);
        message = LLVM::AddressOfOp::create(b, loc, global);
      }
      LLVM::CallOp::create(b, loc, *fail, ValueRange{message});
      LLVM::UnreachableOp::create(b, loc);
      b.setInsertionPoint(op);
      cf::CondBranchOp::create(b, loc, op.getArg(), cont, ValueRange{},
                               failed, ValueRange{});
      op.erase();
    }
  }
};

} // namespace
