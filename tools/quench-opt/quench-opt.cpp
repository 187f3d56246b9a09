//===- quench-opt.cpp - the quench optimizer driver -----------------------===//
//
// mlir-opt with the quench dialect, passes and pipelines added to every
// upstream dialect and pass. Out of memory is one error line
// (OutOfMemory.h; no stage: quench-opt runs one pipeline).
//
//===----------------------------------------------------------------------===//

#include "quench/InitAllDialects.h"
#include "quench/Support/OutOfMemory.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  // MlirOptMain's InitLLVM installs LLVM's new handler again; it reports
  // through the bad-alloc handler installed here.
  quench::installOutOfMemoryHandler("quench-opt");
  mlir::DialectRegistry registry;
  quench::registerAllDialects(registry);
  // gpu-module-to-binary (quench-cuda-pipeline) translates device modules
  // to LLVM IR.
  mlir::registerAllToLLVMIRTranslations(registry);
  quench::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Quench optimizer driver\n", registry));
}
