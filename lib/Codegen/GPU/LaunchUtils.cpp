//===- LaunchUtils.cpp - building gpu.launch kernels ----------------------===//

#include "LaunchUtils.h"
#include "Residency.h"

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
  Value inRange =
      arith::CmpIOp::create(rw, loc, arith::CmpIPredicate::ult, linear, total);
  auto guard = scf::IfOp::create(rw, loc, inRange, /*withElse=*/false);
  rw.setInsertionPointToStart(&guard.getThenRegion().front());
  return linear;
}

bool quench::isAlignedDeviceBuffer(
    Value memref, SmallVectorImpl<memref::GetGlobalOp> &globals,
    bool throughReshapes) {
  auto type = dyn_cast<MemRefType>(memref.getType());
  if (!type || (!throughReshapes && !type.hasStaticShape()) ||
      !type.getLayout().isIdentity() || type.getMemorySpace())
    return false;
  Operation *def = memref.getDefiningOp();
  if (throughReshapes) {
    if (auto collapse = dyn_cast_if_present<memref::CollapseShapeOp>(def))
      return isAlignedDeviceBuffer(collapse.getSrc(), globals, true);
    if (auto expand = dyn_cast_if_present<memref::ExpandShapeOp>(def))
      return isAlignedDeviceBuffer(expand.getSrc(), globals, true);
  }
  if (isa_and_present<gpu::AllocOp>(def))
    return true;
  auto get = dyn_cast_if_present<memref::GetGlobalOp>(def);
  if (!get || quench::isHostResident(memref))
    return false;
  globals.push_back(get);
  return true;
}

void quench::alignGlobalsTo16(Operation *from,
                              ArrayRef<memref::GetGlobalOp> globals) {
  for (memref::GetGlobalOp get : globals) {
    auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
        from, get.getNameAttr());
    if (global && global.getAlignment().value_or(1) < 16)
      global.setAlignment(16);
  }
}

bool quench::isMulAddBody(linalg::LinalgOp op, bool integer) {
  Block *body = op.getBlock();
  int count = 0;
  for (Operation &inner : body->without_terminator()) {
    if (integer ? !isa<arith::ExtSIOp, arith::MulIOp, arith::AddIOp>(inner)
                : !isa<arith::ExtFOp, arith::MulFOp, arith::AddFOp>(inner))
      return false;
    ++count;
  }
  return count == 4 && linalg::isaContractionOpInterface(op);
}
