//===- quench-opt.cpp - the quench optimizer driver -----------------------===//
//
// mlir-opt with the quench dialect, passes and pipelines added to every
// upstream dialect and pass.
//
//===----------------------------------------------------------------------===//

#include "quench/InitAllDialects.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  quench::registerAllDialects(registry);
  quench::registerAllPasses();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Quench optimizer driver\n", registry));
}
