//===- QuenchDialect.cpp - quench dialect registration --------------------===//
//
// Registers the quench ops and materializes folded constants.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/AffineMap.h"
#include "mlir/IR/MLIRContext.h"

using namespace quench;

#include "quench/Dialect/Quench/IR/QuenchOpsDialect.cpp.inc"

void QuenchDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "quench/Dialect/Quench/IR/QuenchOps.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "quench/Dialect/Quench/IR/QuenchSparseOps.cpp.inc"
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

SmallVector<AffineMap>
QuenchDialect::getDequantMatmulIndexingMaps(MLIRContext *ctx,
                                            int64_t batchDims,
                                            bool zeroPoints) {
  int64_t b = batchDims, j = b + 1, h = b + 2, n = b + 3, numLoops = b + 4;
  auto dim = [&](int64_t d) { return getAffineDimExpr(d, ctx); };
  SmallVector<AffineExpr> xExprs, outExprs;
  for (int64_t d = 0; d < batchDims; ++d) {
    xExprs.push_back(dim(d));
    outExprs.push_back(dim(d));
  }
  xExprs.append({dim(b), dim(j), dim(h)});
  outExprs.push_back(dim(n));
  AffineMap perGroup = AffineMap::get(numLoops, 0, {dim(b), dim(n)}, ctx);
  SmallVector<AffineMap> maps{
      AffineMap::get(numLoops, 0, xExprs, ctx),
      AffineMap::get(numLoops, 0, {dim(b), dim(j), dim(n)}, ctx), perGroup};
  if (zeroPoints)
    maps.push_back(perGroup);
  maps.push_back(AffineMap::get(numLoops, 0, outExprs, ctx));
  return maps;
}
