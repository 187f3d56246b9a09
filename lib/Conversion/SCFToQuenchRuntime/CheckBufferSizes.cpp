//===- CheckBufferSizes.cpp - run-time checks of dynamic buffer sizes -----===//
//
// `quench-check-buffer-sizes`: before each allocation with run-time extents,
// a check that the extents are non-negative and that the buffer's size stays
// below a limit far from the 64-bit wrap of the memref lowering's size
// arithmetic. See the pass description in Passes.td and
// docs/reliability.md ("Checks at run time").
//
//===----------------------------------------------------------------------===//

#include "quench/Conversion/Passes.h"
#include "quench/Conversion/RuntimeChecks.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHCHECKBUFFERSIZES
#include "quench/Conversion/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// The shape as "?x4x?xf32" for the message.
std::string shapeString(MemRefType type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  for (int64_t d : type.getShape())
    os << (ShapedType::isDynamic(d) ? std::string("?") : std::to_string(d))
       << 'x';
  os << type.getElementType();
  return text;
}

struct QuenchCheckBufferSizes
    : quench::impl::QuenchCheckBufferSizesBase<QuenchCheckBufferSizes> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SmallVector<Operation *> allocs;
    // Host functions only; device code (gpu.module, gpu.launch bodies)
    // cannot call the runtime.
    for (auto func : module.getOps<FunctionOpInterface>())
      func->walk([&](Operation *op) {
        if (isa<gpu::LaunchOp>(op))
          return WalkResult::skip();
        if (isa<memref::AllocOp, memref::AllocaOp>(op) &&
            cast<MemRefType>(op->getResult(0).getType()).getNumDynamicDims())
          allocs.push_back(op);
        return WalkResult::advance();
      });
    if (allocs.empty())
      return;
    DataLayout layout(module);
    for (Operation *op : allocs) {
      if (failed(check(op, layout)))
        return signalPassFailure();
    }
  }

  LogicalResult check(Operation *op, const DataLayout &layout) {
    auto type = cast<MemRefType>(op->getResult(0).getType());
    ValueRange sizes = isa<memref::AllocOp>(op)
                           ? cast<memref::AllocOp>(op).getDynamicSizes()
                           : cast<memref::AllocaOp>(op).getDynamicSizes();
    Type elementType = type.getElementType();
    if (!elementType.isIntOrIndexOrFloat() && !isa<VectorType>(elementType))
      return op->emitError("buffer of an element type without a size: ")
             << elementType;
    double staticBytes = static_cast<double>(layout.getTypeSize(elementType));
    for (int64_t d : type.getShape())
      if (!ShapedType::isDynamic(d))
        staticBytes *= static_cast<double>(d);
    OpBuilder b(op);
    Location loc = op->getLoc();
    Type i64 = b.getI64Type(), f64 = b.getF64Type();
    Value zero = arith::ConstantIntOp::create(b, loc, i64, 0);
    Value bytes = arith::ConstantFloatOp::create(
        b, loc, cast<FloatType>(f64), APFloat(staticBytes));
    Value ok;
    SmallVector<Value> extents;
    for (Value size : sizes) {
      Value extent = arith::IndexCastOp::create(b, loc, i64, size);
      extents.push_back(extent);
      Value nonNegative = arith::CmpIOp::create(
          b, loc, arith::CmpIPredicate::sge, extent, zero);
      ok = ok ? arith::AndIOp::create(b, loc, ok, nonNegative) : nonNegative;
      bytes = arith::MulFOp::create(
          b, loc, bytes, arith::SIToFPOp::create(b, loc, f64, extent));
    }
    Value limit = arith::ConstantFloatOp::create(
        b, loc, cast<FloatType>(f64), APFloat(static_cast<double>(maxBytes)));
    ok = arith::AndIOp::create(
        b, loc, ok,
        arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OLE, bytes,
                              limit));
    std::string message =
        quench::describeNode(loc, "an op") + ": a buffer of shape " + shapeString(type) +
        " with run-time extents " +
        (extents.size() == 1 ? "{0}"
         : extents.size() == 2 ? "{0} and {1}"
                               : "{0}, {1}, ...") +
        " is larger than " + std::to_string(maxBytes) +
        " bytes or has a negative extent (sizes computed from input values)";
    quench::emitRuntimeCheck(
        b, loc, ok, message,
        ArrayRef<Value>(extents).take_front(std::min<size_t>(2, extents.size())));
    return success();
  }
};

} // namespace
