//===- QuenchDialect.cpp - quench dialect registration --------------------===//
//
// Registers the quench ops and materializes folded constants.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/LLVM.h"

using namespace quench;

#include "quench/Dialect/Quench/IR/QuenchOpsDialect.cpp.inc"

void QuenchDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "quench/Dialect/Quench/IR/QuenchOps.cpp.inc"
      >();
}

Operation *QuenchDialect::materializeConstant(OpBuilder &builder,
                                              Attribute value, Type type,
                                              Location loc) {
  auto elements = dyn_cast<ElementsAttr>(value);
  if (!elements || elements.getType() != type)
    return nullptr;
  return ConstantOp::create(builder, loc, type, elements);
}
