//===- LaunchUtils.cpp - building gpu.launch kernels ----------------------===//

#include "LaunchUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

Value quench::createLinearLaunch(RewriterBase &rw, Location loc, Value total,
                                 Value threads, gpu::LaunchOp *launchOut) {
  Value one = arith::ConstantIndexOp::create(rw, loc, 1);
  Value blocks = arith::MaxUIOp::create(
      rw, loc, arith::CeilDivUIOp::create(rw, loc, total, threads), one);
  auto launch =
      gpu::LaunchOp::create(rw, loc, blocks, one, one, threads, one, one);
  if (launchOut)
    *launchOut = launch;
  Block &body = launch.getBody().front();
  rw.setInsertionPointToEnd(&body);
  auto terminator = gpu::TerminatorOp::create(rw, loc);
  rw.setInsertionPoint(terminator);
  Value linear = arith::AddIOp::create(
      rw, loc, arith::MulIOp::create(rw, loc, launch.getBlockIds().x, threads),
      launch.getThreadIds().x);
  Value inRange = arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult,
                                        linear, total);
  auto guard = scf::IfOp::create(rw, loc, inRange, /*withElse=*/false);
  rw.setInsertionPointToStart(&guard.getThenRegion().front());
  return linear;
}
