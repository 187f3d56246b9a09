//===- Residency.cpp - where a buffer of the CUDA backend lives -----------===//

#include "Residency.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ViewLikeInterface.h"

using namespace mlir;

Value quench::rootAllocation(Value value) {
  while (Operation *def = value.getDefiningOp()) {
    if (auto view = dyn_cast<ViewLikeOpInterface>(def)) {
      value = view.getViewSource();
      continue;
    }
    if (auto meta = dyn_cast<memref::ExtractStridedMetadataOp>(def)) {
      value = meta.getSource();
      continue;
    }
    break;
  }
  return value;
}

bool quench::isHostResident(Value memref) {
  Value root = rootAllocation(memref);
  if (isa<BlockArgument>(root))
    return true;
  Operation *def = root.getDefiningOp();
  if (isa<memref::AllocOp, memref::AllocaOp>(def))
    return true;
  if (auto get = dyn_cast<memref::GetGlobalOp>(def)) {
    auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(
        get, get.getNameAttr());
    return global && global->hasAttr(kHostGlobalAttr);
  }
  return false;
}
