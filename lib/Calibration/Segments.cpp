//===- Segments.cpp - split a model for block-by-block calibration --------===//
//
// The cut search is a liveness count over the body's ops in order: a value
// is live across the cut before op c when it is defined before c (or is a
// function argument) and used at or after c, uses by the return excluded.
// Operand-free pure ops (constants, weights), and pure ops of those alone
// (a weight's transpose, left by quench-raise-ops), are never live: every
// segment copies the ones it needs, sharing the weights' blobs.
//
//===----------------------------------------------------------------------===//

#include "quench/Calibration/Segments.h"

#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/DenseSet.h"

#include <algorithm>
#include <climits>
#include <functional>

using namespace mlir;
using namespace quench;
using namespace quench::calib;

/// Ops every segment copies instead of receiving their results: constants
/// and pure ops computed from them alone (a few ops deep: a transpose or a
/// cast of a weight, which must not cross a cut as a tensor).
static bool isRematerializable(Operation *op, int depth = 0) {
  if (op->getNumRegions() != 0 || op->getNumResults() == 0 ||
      !isMemoryEffectFree(op) || (depth >= 2 && op->getNumOperands() != 0))
    return false;
  return llvm::all_of(op->getOperands(), [&](Value v) {
    Operation *def = v.getDefiningOp();
    return def && isRematerializable(def, depth + 1);
  });
}

/// Calls `fn` for every value of `body` that `op` (or an op nested in it)
/// uses.
static void forEachBodyUse(Operation *op, Block &body,
                           llvm::function_ref<void(Value)> fn) {
  op->walk([&](Operation *inner) {
    for (Value v : inner->getOperands())
      if (v.getParentBlock() == &body)
        fn(v);
  });
}

/// Whether a value can cross a cut: a ranked tensor of a dtype the model
/// ABI has, of rank <= 8.
static bool isTransferable(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || t.getRank() > 8)
    return false;
  Type e = t.getElementType();
  if (e.isF32() || e.isF16() || e.isBF16() || e.isF64())
    return true;
  auto i = dyn_cast<IntegerType>(e);
  if (!i)
    return false;
  unsigned w = i.getWidth();
  return w == 1 ? i.isSignless() : (w == 8 || w == 16 || w == 32 || w == 64);
}

static uint64_t constantBytes(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  if (!t || !t.hasStaticShape())
    return 0;
  unsigned bits = t.getElementType().isIntOrFloat()
                      ? t.getElementType().getIntOrFloatBitWidth()
                      : 0;
  return static_cast<uint64_t>(t.getNumElements()) * ((bits + 7) / 8);
}

std::vector<Segment> quench::calib::partitionForCalibration(func::FuncOp func,
                                                            uint64_t maxBytes,
                                                            bool gram) {
  std::vector<Segment> segments;
  if (func.isDeclaration())
    return segments;
  Block &body = func.getBody().front();
  std::vector<Operation *> order;
  llvm::DenseMap<Operation *, int> pos;
  for (Operation &op : body.without_terminator())
    if (!isRematerializable(&op)) {
      pos[&op] = static_cast<int>(order.size());
      order.push_back(&op);
    }
  int n = static_cast<int>(order.size());
  auto defPos = [&](Value v) {
    Operation *def = v.getDefiningOp();
    return def ? pos.lookup(def) : -1;
  };
  auto isCarried = [&](Value v) {
    Operation *def = v.getDefiningOp();
    return !def || !isRematerializable(def);
  };
  // Last use of every carried value, and the live count across each cut
  // (difference arrays: cut c lies before order[c]).
  llvm::DenseMap<Value, int> lastUse;
  for (int i = 0; i < n; ++i)
    forEachBodyUse(order[i], body, [&](Value v) {
      if (isCarried(v))
        lastUse[v] = i;
    });
  std::vector<int> liveDelta(n + 2, 0), blockedDelta(n + 2, 0);
  for (auto &[v, last] : lastUse) {
    int first = defPos(v) + 1;
    if (first > last)
      continue;
    liveDelta[first] += 1;
    liveDelta[last + 1] -= 1;
    if (!isTransferable(v.getType())) {
      blockedDelta[first] += 1;
      blockedDelta[last + 1] -= 1;
    }
  }
  std::vector<int> linearsBefore(n + 1, 0);
  for (int i = 0; i < n; ++i)
    linearsBefore[i + 1] = linearsBefore[i] + (isa<LinearOp>(order[i]) ? 1 : 0);
  int totalLinears = linearsBefore[n];

  // Candidate cuts: linears on both sides, every live value transferable.
  std::vector<int> live(n + 1, 0);
  std::vector<bool> candidate(n + 1, false);
  int best = INT_MAX;
  for (int c = 0, l = 0, b = 0; c <= n; ++c) {
    l += liveDelta[c];
    b += blockedDelta[c];
    live[c] = l;
    candidate[c] = c > 0 && c < n && b == 0 && linearsBefore[c] > 0 &&
                   linearsBefore[c] < totalLinears;
    if (candidate[c])
      best = std::min(best, l);
  }
  // The cuts with the fewest live values; of several with no linear
  // between them, the first (a segment ends as soon as its output exists).
  std::vector<int> bounds = {0};
  if (maxBytes > 0)
    for (int c = 1; c < n; ++c)
      if (candidate[c] && live[c] == best &&
          linearsBefore[c] != linearsBefore[bounds.back()])
        bounds.push_back(c);
  bounds.push_back(n);

  // The cost of each piece, then greedy grouping.
  auto pieceBytes = [&](int from, int to) {
    llvm::DenseSet<Value> seen;
    uint64_t bytes = 0;
    for (int i = from; i < to; ++i) {
      forEachBodyUse(order[i], body, [&](Value v) {
        if (!isCarried(v) && seen.insert(v).second)
          bytes += constantBytes(v);
      });
      if (auto lin = dyn_cast<LinearOp>(order[i]); lin && gram) {
        auto w = dyn_cast<RankedTensorType>(lin.getWeight().getType());
        if (w && w.getRank() == 2 && !w.isDynamicDim(1) &&
            seen.insert(lin.getInput()).second)
          bytes += static_cast<uint64_t>(w.getDimSize(1)) * w.getDimSize(1) *
                   sizeof(double);
      }
    }
    return bytes;
  };
  std::vector<int> segBounds = {0};
  uint64_t current = 0;
  for (size_t p = 0; p + 1 < bounds.size(); ++p) {
    uint64_t b = pieceBytes(bounds[p], bounds[p + 1]);
    if (segBounds.back() != bounds[p] && current + b > maxBytes) {
      segBounds.push_back(bounds[p]);
      current = 0;
    }
    current += b;
  }
  segBounds.push_back(n);

  // The segments, their inputs and outputs.
  std::vector<int> segmentOf(n);
  for (size_t s = 0; s + 1 < segBounds.size(); ++s)
    for (int i = segBounds[s]; i < segBounds[s + 1]; ++i)
      segmentOf[i] = static_cast<int>(s);
  segments.resize(segBounds.size() - 1);
  for (size_t s = 0; s < segments.size(); ++s) {
    Segment &seg = segments[s];
    seg.ops.assign(order.begin() + segBounds[s],
                   order.begin() + segBounds[s + 1]);
    seg.linears = linearsBefore[segBounds[s + 1]] - linearsBefore[segBounds[s]];
    seg.bytes = pieceBytes(segBounds[s], segBounds[s + 1]);
  }
  // Inputs in order of first use; outputs in order of definition.
  std::vector<llvm::DenseSet<Value>> inputSets(segments.size());
  for (int i = 0; i < n; ++i) {
    int s = segmentOf[i];
    forEachBodyUse(order[i], body, [&](Value v) {
      if (!isCarried(v))
        return;
      int d = defPos(v);
      if ((d < 0 || segmentOf[d] != s) && inputSets[s].insert(v).second)
        segments[s].inputs.push_back(v);
    });
  }
  for (int i = 0; i < n; ++i) {
    int s = segmentOf[i];
    for (Value r : order[i]->getResults()) {
      auto it = lastUse.find(r);
      if (it != lastUse.end() && segmentOf[it->second] != s)
        segments[s].outputs.push_back(r);
    }
  }
  return segments;
}

OwningOpRef<ModuleOp>
quench::calib::buildSegmentModule(ModuleOp module, func::FuncOp func,
                                  const Segment &segment,
                                  llvm::DenseMap<Value, Value> &origin) {
  MLIRContext *ctx = module.getContext();
  OpBuilder b(ctx);
  OwningOpRef<ModuleOp> out = ModuleOp::create(module.getLoc());
  (*out)->setAttrs(module->getAttrs());
  b.setInsertionPointToEnd(out->getBody());
  for (Operation &op : module.getBody()->getOperations())
    if (&op != func.getOperation())
      b.clone(op);
  SmallVector<Type> inputs, results;
  for (Value v : segment.inputs)
    inputs.push_back(v.getType());
  for (Value v : segment.outputs)
    results.push_back(v.getType());
  auto f = func::FuncOp::create(b, func.getLoc(), func.getName(),
                                FunctionType::get(ctx, inputs, results));
  for (NamedAttribute a : func->getAttrs())
    if (a.getName() != func.getFunctionTypeAttrName() &&
        a.getName() != func.getArgAttrsAttrName() &&
        a.getName() != func.getResAttrsAttrName() &&
        a.getName() != func.getSymNameAttrName())
      f->setAttr(a.getName(), a.getValue());
  Block *entry = f.addEntryBlock();
  Block &body = func.getBody().front();
  IRMapping map;
  for (auto [v, arg] : llvm::zip(segment.inputs, entry->getArguments())) {
    map.map(v, arg);
    origin[arg] = v;
  }
  b.setInsertionPointToEnd(entry);
  auto cloneOp = [&](Operation *op) {
    Operation *c = b.clone(*op, map);
    for (auto [from, to] : llvm::zip(op->getResults(), c->getResults()))
      origin[to] = from;
  };
  // The segment's own copy of a rematerializable op, operands first.
  std::function<void(Operation *)> copyConstant = [&](Operation *op) {
    for (Value v : op->getOperands())
      if (!map.contains(v))
        copyConstant(v.getDefiningOp());
    cloneOp(op);
  };
  for (Operation *op : segment.ops) {
    forEachBodyUse(op, body, [&](Value v) {
      if (!map.contains(v))
        copyConstant(v.getDefiningOp());
    });
    cloneOp(op);
  }
  SmallVector<Value> rets;
  for (Value v : segment.outputs)
    rets.push_back(map.lookup(v));
  func::ReturnOp::create(b, func.getLoc(), rets);
  return out;
}
