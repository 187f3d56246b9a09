//===- PlaceBuffers.cpp - host and device buffers of a model --------------===//
//
// `quench-gpu-place-buffers`: a bufferized model function computes in
// device memory. Its allocations become device allocations, its memref
// arguments (the caller's tensors, in host memory) are copied into device
// buffers once on entry, and its results are copied into fresh host
// buffers on exit (what the runtime hands to the caller, docs/runtime.md),
// freeing the device allocations they were views of. Shape computations
// (buffers the host reads to size allocations or reshape) stay on the host.
// docs/gpu.md, "Buffers".
//
//===----------------------------------------------------------------------===//

#include "Residency.h"
#include "quench/Codegen/GPU/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "llvm/ADT/SetVector.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHGPUPLACEBUFFERS
#include "quench/Codegen/GPU/Passes.h.inc"
} // namespace quench

using namespace mlir;
using quench::rootAllocation;

/// The dynamic sizes of `value` (a memref), as index values at `b`'s
/// insertion point.
static SmallVector<Value> dynamicSizes(OpBuilder &b, Location loc,
                                       Value value) {
  auto type = cast<MemRefType>(value.getType());
  SmallVector<Value> sizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sizes.push_back(memref::DimOp::create(b, loc, value, d));
  return sizes;
}

/// `type` with the identity layout and the default memory space.
static MemRefType contiguous(MemRefType type) {
  return MemRefType::get(type.getShape(), type.getElementType());
}

/// Whether `op` runs on the host as it is: outside every linalg op and
/// parallel loop.
static bool atHostLevel(Operation *op) {
  return !op->getParentOfType<linalg::LinalgOp>() &&
         !op->getParentOfType<scf::ParallelOp>();
}

/// Memrefs a linalg op reads: its inputs, and the buffers its body loads
/// from (gathers).
static SmallVector<Value> readBuffers(linalg::LinalgOp op) {
  SmallVector<Value> buffers;
  for (OpOperand *input : op.getDpsInputOperands())
    if (isa<MemRefType>(input->get().getType()))
      buffers.push_back(input->get());
  op->walk([&](memref::LoadOp load) {
    if (!op->isAncestor(load.getMemref().getParentBlock()->getParentOp()))
      buffers.push_back(load.getMemref());
  });
  return buffers;
}

namespace {
class BufferPlacer {
public:
  BufferPlacer(func::FuncOp func, SymbolTable &symbols)
      : func(func), symbols(symbols), rw(func.getContext()) {}

  LogicalResult run();

private:
  LogicalResult findHostBuffers();
  LogicalResult runHostOpsOnHost();
  Value hostVersion(Value value);
  void fillSplatConstants();
  void copyHostReadsToDevice();
  LogicalResult convertAllocations();
  void copyArguments();
  LogicalResult copyResults();

  func::FuncOp func;
  SymbolTable &symbols;
  IRRewriter rw;
  /// Root buffers that must be in host memory.
  llvm::SetVector<Value> hostRoots;
  /// Linalg ops that write host buffers: they run as host loops.
  llvm::SetVector<Operation *> hostOps;
  /// Host copies of constant globals and of views of them.
  DenseMap<Value, Value> hostVersions;
  /// Device buffers freed on every return.
  llvm::SetVector<Value> freeOnReturn;
};
} // namespace

LogicalResult BufferPlacer::run() {
  // Copies between buffers are kernels like any other loop nest.
  func.walk([&](memref::CopyOp copy) {
    rw.setInsertionPoint(copy);
    rw.replaceOpWithNewOp<linalg::CopyOp>(copy, copy.getSource(),
                                          copy.getTarget());
  });
  if (failed(findHostBuffers()) || failed(runHostOpsOnHost()))
    return failure();
  fillSplatConstants();
  copyHostReadsToDevice();
  if (failed(convertAllocations()))
    return failure();
  copyArguments();
  return copyResults();
}

LogicalResult BufferPlacer::findHostBuffers() {
  SmallVector<Value> work;
  auto requireHost = [&](Value memref) {
    Value root = rootAllocation(memref);
    if (hostRoots.insert(root))
      work.push_back(root);
  };
  func.walk([&](Operation *op) {
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      if (atHostLevel(op))
        requireHost(load.getMemref());
    } else if (auto store = dyn_cast<memref::StoreOp>(op)) {
      if (atHostLevel(op))
        requireHost(store.getMemref());
    } else if (auto reshape = dyn_cast<memref::ReshapeOp>(op)) {
      requireHost(reshape.getShape());
    } else if (auto get = dyn_cast<memref::GetGlobalOp>(op)) {
      // Boolean constants are bit-packed in MLIR and have no bytes for the
      // weight image: they stay host constants, copied to the device where
      // kernels read them (masks: small).
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      auto value = dyn_cast_or_null<DenseElementsAttr>(
          global ? global.getInitialValue().value_or(Attribute())
                 : Attribute());
      if (value && !value.isSplat() &&
          value.getElementType().isInteger(1))
        requireHost(get.getResult());
    }
  });
  // Uses of every root through views.
  DenseMap<Value, SmallVector<OpOperand *>> usesOfRoot;
  func.walk([&](Operation *op) {
    if (isa<ViewLikeOpInterface, memref::ExtractStridedMetadataOp>(op))
      return;
    for (OpOperand &operand : op->getOpOperands())
      if (isa<MemRefType>(operand.get().getType()))
        usesOfRoot[rootAllocation(operand.get())].push_back(&operand);
  });
  while (!work.empty()) {
    Value root = work.pop_back_val();
    Operation *def = root.getDefiningOp();
    if (!def || isa<memref::GetGlobalOp>(def))
      continue; // arguments are host memory; constants get a host copy
    if (!isa<memref::AllocOp>(def))
      return def->emitOpError("defines a buffer the host reads that the "
                              "CUDA backend cannot keep in host memory");
    // Whatever writes a host buffer runs on the host, and reads host
    // buffers.
    for (OpOperand *use : usesOfRoot.lookup(root)) {
      auto linalgOp = dyn_cast<linalg::LinalgOp>(use->getOwner());
      if (!linalgOp || !linalgOp.isDpsInit(use) ||
          !hostOps.insert(linalgOp))
        continue;
      for (Value read : readBuffers(linalgOp))
        requireHost(read);
    }
  }
  return success();
}

/// The host version of `value`, a view of a host root: a host copy of a
/// constant global, a clone of a view op over the host version of its
/// source; other roots are their own host version.
Value BufferPlacer::hostVersion(Value value) {
  if (Value done = hostVersions.lookup(value))
    return done;
  Operation *def = value.getDefiningOp();
  Value result = value;
  if (auto get = dyn_cast_if_present<memref::GetGlobalOp>(def)) {
    auto global = symbols.lookup<memref::GlobalOp>(get.getName());
    auto copy = cast<memref::GlobalOp>(global->clone());
    copy.setConstant(false);
    copy.setSymVisibility("private");
    copy->setAttr(quench::kHostGlobalAttr, UnitAttr::get(copy.getContext()));
    symbols.insert(copy, std::next(Block::iterator(global)));
    rw.setInsertionPointAfter(get);
    result = memref::GetGlobalOp::create(rw, get.getLoc(), get.getType(),
                                         copy.getSymName());
  } else if (def && isa<ViewLikeOpInterface>(def)) {
    Value source = cast<ViewLikeOpInterface>(def).getViewSource();
    Value hostSource = hostVersion(source);
    if (hostSource != source) {
      rw.setInsertionPointAfter(def);
      IRMapping mapping;
      mapping.map(source, hostSource);
      result = rw.clone(*def, mapping)
                   ->getResult(cast<OpResult>(value).getResultNumber());
    }
  }
  hostVersions[value] = result;
  return result;
}

LogicalResult BufferPlacer::runHostOpsOnHost() {
  // Host reads of constants read their host copies.
  func.walk([&](Operation *op) {
    bool hostUser =
        hostOps.contains(op) ||
        (isa<memref::LoadOp, memref::StoreOp>(op) && atHostLevel(op)) ||
        isa<memref::ReshapeOp>(op);
    if (auto load = dyn_cast<memref::LoadOp>(op))
      for (Operation *parent = op->getParentOp(); parent;
           parent = parent->getParentOp())
        hostUser |= hostOps.contains(parent);
    if (!hostUser)
      return;
    for (OpOperand &operand : op->getOpOperands())
      if (isa<MemRefType>(operand.get().getType()) &&
          hostRoots.contains(rootAllocation(operand.get())) &&
          !isa<memref::ReshapeOp>(op))
        operand.set(hostVersion(operand.get()));
    if (auto reshape = dyn_cast<memref::ReshapeOp>(op))
      reshape.getShapeMutable().set(hostVersion(reshape.getShape()));
  });
  for (Operation *op : hostOps) {
    rw.setInsertionPoint(op);
    if (failed(linalg::linalgOpToLoops(rw, cast<linalg::LinalgOp>(op))))
      return op->emitOpError("cannot be lowered to host loops");
    rw.eraseOp(op);
  }
  return success();
}

void BufferPlacer::fillSplatConstants() {
  // Splat constants have no bytes for the weight image: the device reads a
  // buffer filled on each run instead (they are small: masks, zeros).
  func.walk([&](memref::GetGlobalOp get) {
    if (hostRoots.contains(get.getResult()))
      return;
    auto global = symbols.lookup<memref::GlobalOp>(get.getName());
    auto value = dyn_cast_or_null<DenseElementsAttr>(
        global ? global.getInitialValue().value_or(Attribute()) : Attribute());
    if (!value || !value.isSplat() || global->hasAttr(quench::kHostGlobalAttr))
      return;
    rw.setInsertionPoint(get);
    Location loc = get.getLoc();
    auto type = cast<MemRefType>(get.getType());
    Value buffer = gpu::AllocOp::create(rw, loc, contiguous(type), Type(),
                                        ValueRange{}, ValueRange{},
                                        ValueRange{}, nullptr)
                       .getMemref();
    Value splat = arith::ConstantOp::create(
        rw, loc, cast<TypedAttr>(value.getSplatValue<Attribute>()));
    linalg::FillOp::create(rw, loc, splat, buffer);
    if (buffer.getType() != type)
      buffer = memref::CastOp::create(rw, loc, type, buffer);
    rw.replaceOp(get, buffer);
    freeOnReturn.insert(rootAllocation(buffer));
  });
}

void BufferPlacer::copyHostReadsToDevice() {
  // A kernel reading a host buffer (a shape the model also computes with)
  // reads a device copy of the whole buffer, made just before it.
  func.walk([&](linalg::LinalgOp op) {
    for (Value read : readBuffers(op)) {
      Value root = rootAllocation(read);
      if (!hostRoots.contains(root))
        continue;
      Value hostRoot = hostVersion(root);
      Location loc = op.getLoc();
      rw.setInsertionPoint(op);
      auto rootType = cast<MemRefType>(root.getType());
      Value device =
          gpu::AllocOp::create(rw, loc, contiguous(rootType), Type(),
                               ValueRange{}, dynamicSizes(rw, loc, hostRoot),
                               ValueRange{}, nullptr)
              .getMemref();
      gpu::MemcpyOp::create(rw, loc, Type(), ValueRange{}, device, hostRoot);
      // The view chain from the root to `read`, replayed on the copy.
      SmallVector<Operation *> chain;
      for (Value v = read; v != root;) {
        Operation *def = v.getDefiningOp();
        chain.push_back(def);
        v = isa<ViewLikeOpInterface>(def)
                ? cast<ViewLikeOpInterface>(def).getViewSource()
                : cast<memref::ExtractStridedMetadataOp>(def).getSource();
      }
      IRMapping mapping;
      mapping.map(root, device);
      for (Operation *def : llvm::reverse(chain))
        rw.clone(*def, mapping);
      Value deviceRead = mapping.lookup(read);
      op->walk([&](Operation *user) {
        for (OpOperand &operand : user->getOpOperands())
          if (operand.get() == read)
            operand.set(deviceRead);
      });
      rw.setInsertionPointAfter(op);
      gpu::DeallocOp::create(rw, loc, Type(), ValueRange{}, device);
    }
  });
}

LogicalResult BufferPlacer::convertAllocations() {
  // Every other allocation the bufferization made is a device allocation.
  WalkResult walk = func.walk([&](Operation *op) {
    if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
      if (hostRoots.contains(alloc.getResult()))
        return WalkResult::advance();
      if (alloc.getType().getMemorySpace()) {
        alloc.emitOpError("has a memory space the CUDA backend does not "
                          "place");
        return WalkResult::interrupt();
      }
      rw.setInsertionPoint(alloc);
      auto gpuAlloc = gpu::AllocOp::create(
          rw, alloc.getLoc(), alloc.getType(), /*asyncToken=*/Type(),
          ValueRange{}, alloc.getDynamicSizes(), alloc.getSymbolOperands(),
          /*hostShared=*/nullptr);
      rw.replaceOp(alloc, gpuAlloc.getMemref());
    } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
      if (hostRoots.contains(rootAllocation(dealloc.getMemref())))
        return WalkResult::advance();
      rw.setInsertionPoint(dealloc);
      gpu::DeallocOp::create(rw, dealloc.getLoc(), Type(), ValueRange{},
                             dealloc.getMemref());
      rw.eraseOp(dealloc);
    } else if (isa<memref::AllocaOp, memref::ReallocOp>(op)) {
      op->emitOpError("is not supported by the CUDA backend's buffer "
                      "placement");
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

void BufferPlacer::copyArguments() {
  Block &entry = func.getBody().front();
  rw.setInsertionPointToStart(&entry);
  for (BlockArgument arg : entry.getArguments()) {
    auto type = dyn_cast<MemRefType>(arg.getType());
    if (!type)
      continue;
    // Host code keeps reading the argument itself.
    auto isDeviceUse = [&](OpOperand &use) {
      Operation *user = use.getOwner();
      if (isa<memref::DimOp>(user))
        return false;
      if (isa<memref::LoadOp, memref::StoreOp>(user) && atHostLevel(user))
        return false;
      if (auto reshape = dyn_cast<memref::ReshapeOp>(user))
        return use.get() != reshape.getShape();
      return true;
    };
    if (llvm::none_of(arg.getUses(), isDeviceUse))
      continue;
    SmallVector<OpOperand *> deviceUses;
    for (OpOperand &use : arg.getUses())
      if (isDeviceUse(use))
        deviceUses.push_back(&use);
    Location loc = arg.getLoc();
    SmallVector<Value> sizes = dynamicSizes(rw, loc, arg);
    Value copy = gpu::AllocOp::create(rw, loc, contiguous(type), Type(),
                                      ValueRange{}, sizes, ValueRange{},
                                      nullptr)
                     .getMemref();
    gpu::MemcpyOp::create(rw, loc, Type(), ValueRange{}, copy, arg);
    Value replacement = copy;
    if (type != cast<MemRefType>(copy.getType()))
      replacement = memref::CastOp::create(rw, loc, type, copy);
    for (OpOperand *use : deviceUses)
      use->set(replacement);
    freeOnReturn.insert(copy);
  }
}

LogicalResult BufferPlacer::copyResults() {
  WalkResult walk = func.walk([&](func::ReturnOp ret) {
    rw.setInsertionPoint(ret);
    SmallVector<Value> results;
    llvm::SetVector<Value> toFree = freeOnReturn;
    llvm::SetVector<Value> hostToFree;
    DenseMap<Value, Value> hostCopies;
    for (Value value : ret.getOperands()) {
      auto type = dyn_cast<MemRefType>(value.getType());
      if (!type) {
        results.push_back(value);
        continue;
      }
      // A value returned twice is one host buffer (the runtime frees each
      // allocation once).
      if (Value done = hostCopies.lookup(value)) {
        results.push_back(done);
        continue;
      }
      Location loc = ret.getLoc();
      SmallVector<Value> sizes = dynamicSizes(rw, loc, value);
      Value root = rootAllocation(value);
      bool onHost = quench::isHostResident(value);
      Value source = value;
      if (!type.getLayout().isIdentity()) {
        // A strided view: gathered into a contiguous buffer first.
        Value dense =
            onHost ? memref::AllocOp::create(rw, loc, contiguous(type), sizes)
                         .getResult()
                   : gpu::AllocOp::create(rw, loc, contiguous(type), Type(),
                                          ValueRange{}, sizes, ValueRange{},
                                          nullptr)
                         .getMemref();
        linalg::CopyOp::create(rw, loc, value, dense);
        (onHost ? hostToFree : toFree).insert(dense);
        source = dense;
      }
      Value host = memref::AllocOp::create(rw, loc, contiguous(type), sizes)
                       .getResult();
      gpu::MemcpyOp::create(rw, loc, Type(), ValueRange{}, host, source);
      hostCopies[value] = host;
      results.push_back(host);
      Operation *def = root.getDefiningOp();
      if (isa_and_present<gpu::AllocOp>(def)) {
        toFree.insert(root);
      } else if (isa_and_present<memref::AllocOp>(def)) {
        hostToFree.insert(root);
      } else if (def && !isa<memref::GetGlobalOp>(def)) {
        ret.emitOpError("returns a buffer whose allocation cannot be traced "
                        "(result #")
            << results.size() - 1 << ")";
        return WalkResult::interrupt();
      }
    }
    for (Value value : toFree)
      gpu::DeallocOp::create(rw, ret.getLoc(), Type(), ValueRange{}, value);
    for (Value value : hostToFree)
      memref::DeallocOp::create(rw, ret.getLoc(), value);
    rw.modifyOpInPlace(ret, [&] { ret->setOperands(results); });
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

namespace {
struct QuenchGPUPlaceBuffersPass
    : public quench::impl::QuenchGPUPlaceBuffersBase<
          QuenchGPUPlaceBuffersPass> {
  void runOnOperation() override {
    SymbolTable symbols(getOperation());
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal())
        continue;
      if (failed(BufferPlacer(func, symbols).run()))
        return signalPassFailure();
    }
  }
};
} // namespace
