//===- SCFToQuenchRuntime.cpp - the convert-scf-to-quench-runtime pass ----===//
//
// Every outermost `scf.forall`/`scf.parallel` without results of a function
// becomes one call
//
//   quench_parallel_for_work(quench_current_threadpool(), n, cost, body, ctx)
//
// where n is the product of the trip counts, `cost` the estimated operations
// of one iteration (the runtime picks the chunks from n * cost and its
// measured dispatch cost), `body` a new private function
// `(ctx: !llvm.ptr, begin: i64, end: i64)` that runs the linear iterations
// [begin, end) of the loop (delinearized into the induction variables), and
// `ctx` a stack struct holding every value the loop body captures. A loop
// with constant trip counts whose work n * cost is below `min-parallel-work`
// is left alone: it runs serially, where it is. Packing and
// unpacking are emitted as LLVM dialect ops already (alloca, GEP, store/load),
// bridged to memref/index values with `builtin.unrealized_conversion_cast`
// and `arith.index_cast`; the rest of the body keeps its dialects and is
// lowered by the same passes as the function it came from.
// docs/lowering.md ("Threading") explains the design.
//
//===----------------------------------------------------------------------===//

#include "quench/Conversion/Passes.h"

#include "mlir/Conversion/LLVMCommon/TypeConverter.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/Utils/Utils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/SetVector.h"

#include <limits>

namespace quench {
#define GEN_PASS_DEF_CONVERTSCFTOQUENCHRUNTIME
#include "quench/Conversion/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench;

namespace {

/// The parts of an `scf.forall` or `scf.parallel` the rewrite needs.
struct LoopParts {
  SmallVector<OpFoldResult> lbs, ubs, steps;
  SmallVector<Value> ivs;
  Block *body = nullptr;
};

} // namespace

static LoopParts getLoopParts(Operation *loop) {
  LoopParts parts;
  if (auto forall = dyn_cast<scf::ForallOp>(loop)) {
    parts.lbs = forall.getMixedLowerBound();
    parts.ubs = forall.getMixedUpperBound();
    parts.steps = forall.getMixedStep();
    parts.ivs = forall.getInductionVars();
    parts.body = forall.getBody();
    return parts;
  }
  auto par = cast<scf::ParallelOp>(loop);
  parts.lbs = getAsOpFoldResult(par.getLowerBound());
  parts.ubs = getAsOpFoldResult(par.getUpperBound());
  parts.steps = getAsOpFoldResult(par.getStep());
  parts.ivs = llvm::to_vector(par.getInductionVars());
  parts.body = par.getBody();
  return parts;
}

static int64_t saturatingMul(int64_t a, int64_t b) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (a != 0 && b > kMax / a)
    return kMax;
  return a * b;
}

static int64_t saturatingAdd(int64_t a, int64_t b) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  return a > kMax - b ? kMax : a + b;
}

/// Trip count of one dimension when lb, ub and step are constants.
static std::optional<int64_t> staticTripCount(OpFoldResult lb, OpFoldResult ub,
                                              OpFoldResult step) {
  std::optional<int64_t> l = getConstantIntValue(lb),
                         u = getConstantIntValue(ub),
                         s = getConstantIntValue(step);
  if (!l || !u || !s || *s <= 0)
    return std::nullopt;
  return *u <= *l ? 0 : (*u - *l + *s - 1) / *s;
}

//===----------------------------------------------------------------------===//
// Cost estimate
//===----------------------------------------------------------------------===//

/// Whether `e` never decreases when one of its dimensions or symbols grows
/// (sums, products with a nonnegative constant, divisions by a positive
/// constant).
static bool isMonotone(AffineExpr e) {
  if (isa<AffineDimExpr, AffineSymbolExpr, AffineConstantExpr>(e))
    return true;
  auto bin = dyn_cast<AffineBinaryOpExpr>(e);
  if (!bin)
    return false;
  auto rhs = dyn_cast<AffineConstantExpr>(bin.getRHS());
  switch (e.getKind()) {
  case AffineExprKind::Add:
    return isMonotone(bin.getLHS()) && isMonotone(bin.getRHS());
  case AffineExprKind::Mul:
    return rhs && rhs.getValue() >= 0 && isMonotone(bin.getLHS());
  case AffineExprKind::FloorDiv:
  case AffineExprKind::CeilDiv:
    return rhs && rhs.getValue() > 0 && isMonotone(bin.getLHS());
  default:
    return false;
  }
}

/// A constant upper bound of the index value `v`: constants, `affine.min`
/// (the smallest bound among its results), `affine.apply` of a monotone
/// expression and `arith.minsi`/`minui`, whose operands have bounds in turn
/// (tiled loops run to `min(tile, extent - iv)`).
static std::optional<int64_t> getConstantUpperBound(Value v, int depth = 0) {
  if (std::optional<int64_t> c = getConstantIntValue(v))
    return c;
  Operation *def = v.getDefiningOp();
  if (!def || depth > 8)
    return std::nullopt;
  auto evaluate = [&](AffineMap map,
                      ValueRange operands) -> std::optional<int64_t> {
    std::optional<int64_t> best;
    for (AffineExpr e : map.getResults()) {
      if (!isMonotone(e))
        continue;
      SmallVector<AffineExpr> dims, symbols;
      bool bounded = true;
      for (auto [i, operand] : llvm::enumerate(operands)) {
        unsigned numDims = map.getNumDims();
        bool used = i < numDims ? e.isFunctionOfDim(i)
                                : e.isFunctionOfSymbol(i - numDims);
        std::optional<int64_t> b =
            used ? getConstantUpperBound(operand, depth + 1) : 0;
        if (!b) {
          bounded = false;
          break;
        }
        (i < map.getNumDims() ? dims : symbols)
            .push_back(getAffineConstantExpr(*b, v.getContext()));
      }
      if (!bounded)
        continue;
      if (auto c = dyn_cast<AffineConstantExpr>(
              e.replaceDimsAndSymbols(dims, symbols)))
        best = best ? std::min(*best, c.getValue()) : c.getValue();
    }
    return best;
  };
  if (auto minOp = dyn_cast<affine::AffineMinOp>(def))
    return evaluate(minOp.getAffineMap(), minOp.getMapOperands());
  if (auto apply = dyn_cast<affine::AffineApplyOp>(def))
    return evaluate(apply.getAffineMap(), apply.getMapOperands());
  if (isa<arith::MinSIOp, arith::MinUIOp>(def)) {
    std::optional<int64_t> a = getConstantUpperBound(def->getOperand(0),
                                                     depth + 1),
                           b = getConstantUpperBound(def->getOperand(1),
                                                     depth + 1);
    if (a && b)
      return std::min(*a, *b);
    return a ? a : b;
  }
  return std::nullopt;
}

/// Trip count of one dimension for the cost estimate: exact when the bounds
/// are constants, else bounded from a constant upper bound of `ub` (the lower
/// bound taken as its constant or 0), else `unknownTrip`.
static int64_t estimateTripCount(OpFoldResult lb, OpFoldResult ub,
                                 OpFoldResult step, int64_t unknownTrip) {
  if (std::optional<int64_t> n = staticTripCount(lb, ub, step))
    return *n;
  std::optional<int64_t> s = getConstantIntValue(step);
  std::optional<int64_t> u = isa<Value>(ub)
                                 ? getConstantUpperBound(cast<Value>(ub))
                                 : getConstantIntValue(ub);
  if (!s || *s <= 0 || !u)
    return unknownTrip;
  int64_t l = getConstantIntValue(lb).value_or(0);
  return *u <= l ? 0 : (*u - l + *s - 1) / *s;
}

static int64_t estimateOpCost(Operation &op, int64_t unknownTrip);

static int64_t estimateBlockCost(Block &block, int64_t unknownTrip) {
  int64_t cost = 0;
  for (Operation &op : block)
    if (!op.hasTrait<OpTrait::IsTerminator>())
      cost = saturatingAdd(cost, estimateOpCost(op, unknownTrip));
  return cost;
}

static int64_t estimateOpCost(Operation &op, int64_t unknownTrip) {
  auto trips = [&](ArrayRef<OpFoldResult> lbs, ArrayRef<OpFoldResult> ubs,
                   ArrayRef<OpFoldResult> steps) {
    int64_t n = 1;
    for (auto [lb, ub, step] : llvm::zip_equal(lbs, ubs, steps))
      n = saturatingMul(n, estimateTripCount(lb, ub, step, unknownTrip));
    return n;
  };
  if (auto forOp = dyn_cast<scf::ForOp>(op)) {
    int64_t n = trips({forOp.getLowerBound()}, {forOp.getUpperBound()},
                      {forOp.getStep()});
    return saturatingMul(n, estimateBlockCost(*forOp.getBody(), unknownTrip));
  }
  if (isa<scf::ForallOp, scf::ParallelOp>(op)) {
    LoopParts parts = getLoopParts(&op);
    return saturatingMul(trips(parts.lbs, parts.ubs, parts.steps),
                         estimateBlockCost(*parts.body, unknownTrip));
  }
  if (auto whileOp = dyn_cast<scf::WhileOp>(op))
    return saturatingMul(
        unknownTrip,
        saturatingAdd(estimateBlockCost(*whileOp.getBeforeBody(), unknownTrip),
                      estimateBlockCost(*whileOp.getAfterBody(), unknownTrip)));
  // A vector op does about one instruction per 8 elements (256-bit registers
  // of f32).
  int64_t cost = 1;
  for (Type t : op.getResultTypes())
    if (auto vt = dyn_cast<VectorType>(t))
      cost = std::max<int64_t>(cost, (vt.getNumElements() + 7) / 8);
  for (Region &region : op.getRegions())
    for (Block &block : region)
      cost = saturatingAdd(cost, estimateBlockCost(block, unknownTrip));
  return cost;
}

int64_t quench::estimateParallelIterationCost(Block &body,
                                              int64_t unknownTripCount) {
  return std::max<int64_t>(1, estimateBlockCost(body, unknownTripCount));
}

//===----------------------------------------------------------------------===//
// Captured values
//===----------------------------------------------------------------------===//

static bool isConstantLike(Value v) {
  Operation *def = v.getDefiningOp();
  return def && def->getNumOperands() == 0 && def->getNumRegions() == 0 &&
         def->hasTrait<OpTrait::ConstantLike>();
}

/// The type a captured value has in the context struct, or null when it
/// cannot be stored there.
static Type getContextFieldType(Type type, const LLVMTypeConverter &converter) {
  Type converted = converter.convertType(type);
  if (!converted || !LLVM::isCompatibleType(converted))
    return nullptr;
  return converted;
}

/// Every value the loop needs from outside: values defined above and used in
/// the body, plus the dynamic lower bounds and steps. (Dynamic trip counts
/// are computed before the loop and added by the rewrite.)
static llvm::SetVector<Value> getCapturedValues(Operation *loop,
                                                const LoopParts &parts) {
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(loop->getRegion(0), captured);
  for (ArrayRef<OpFoldResult> list :
       {ArrayRef(parts.lbs), ArrayRef(parts.steps)})
    for (OpFoldResult ofr : list)
      if (auto v = dyn_cast<Value>(ofr))
        captured.insert(v);
  return captured;
}

std::string
quench::getRuntimeParallelLoopMismatch(Operation *loop,
                                       const LLVMTypeConverter &converter) {
  if (auto forall = dyn_cast<scf::ForallOp>(loop)) {
    if (forall.getNumResults() != 0 || !forall.getOutputs().empty())
      return "scf.forall with shared_outs (tensors) is left for bufferization";
    if (forall.getMapping() && !forall.getMapping()->empty())
      return "scf.forall with a mapping belongs to another lowering";
  } else if (auto par = dyn_cast<scf::ParallelOp>(loop)) {
    if (par.getNumResults() != 0)
      return "scf.parallel with reductions stays sequential";
  } else {
    return "not an scf.forall or scf.parallel";
  }
  Operation *scope = loop->getParentWithTrait<OpTrait::IsIsolatedFromAbove>();
  if (!isa_and_nonnull<func::FuncOp>(scope))
    return "the loop is not directly inside a func.func";
  LoopParts parts = getLoopParts(loop);
  if (parts.ivs.empty())
    return "the loop has no dimensions";
  for (Value v : getCapturedValues(loop, parts)) {
    if (isConstantLike(v) || getContextFieldType(v.getType(), converter))
      continue;
    std::string reason;
    llvm::raw_string_ostream os(reason);
    os << "a captured value of type " << v.getType()
       << " has no LLVM representation";
    return reason;
  }
  return "";
}

//===----------------------------------------------------------------------===//
// Rewrite
//===----------------------------------------------------------------------===//

/// Converts `v` to its context field type `fieldType`.
static Value toField(OpBuilder &b, Location loc, Value v, Type fieldType) {
  if (v.getType() == fieldType)
    return v;
  if (v.getType().isIndex())
    return arith::IndexCastOp::create(b, loc, fieldType, v);
  return UnrealizedConversionCastOp::create(b, loc, fieldType, v).getResult(0);
}

/// Converts a context field back to the captured value's type.
static Value fromField(OpBuilder &b, Location loc, Value field, Type type) {
  if (field.getType() == type)
    return field;
  if (type.isIndex())
    return arith::IndexCastOp::create(b, loc, type, field);
  return UnrealizedConversionCastOp::create(b, loc, type, field).getResult(0);
}

/// Finds or declares a runtime function; fails if the name is taken by
/// something else.
static FailureOr<func::FuncOp> getRuntimeFunction(SymbolTable &symbols,
                                                  Location loc, StringRef name,
                                                  FunctionType type) {
  Operation *existing = symbols.lookup(name);
  if (auto fn = dyn_cast_or_null<func::FuncOp>(existing)) {
    if (fn.getFunctionType() == type)
      return fn;
  }
  if (existing)
    return existing->emitError("'") << name << "' must be a func.func of type "
                                    << type << " (the Quench runtime function)";
  auto fn = func::FuncOp::create(loc, name, type);
  fn.setPrivate();
  symbols.insert(fn, symbols.getOp()->getRegion(0).front().begin());
  return fn;
}

/// Trip count of one dimension, a constant when the bounds are. With
/// step > 0, `(ub - lb + step - 1) / step` (rounding toward zero) is the
/// trip count when ub > lb and <= 0 otherwise, so its maximum with 0 is the
/// trip count in every case.
static Value buildTripCount(OpBuilder &b, Location loc, OpFoldResult lb,
                            OpFoldResult ub, OpFoldResult step) {
  if (std::optional<int64_t> n = staticTripCount(lb, ub, step))
    return arith::ConstantIndexOp::create(b, loc, *n);
  Value diff = getValueOrCreateConstantIndexOp(b, loc, ub);
  if (!isConstantIntValue(lb, 0))
    diff = arith::SubIOp::create(b, loc, diff,
                                 getValueOrCreateConstantIndexOp(b, loc, lb));
  if (!isConstantIntValue(step, 1)) {
    Value s = getValueOrCreateConstantIndexOp(b, loc, step);
    Value sMinus1;
    if (std::optional<int64_t> c = getConstantIntValue(step))
      sMinus1 = arith::ConstantIndexOp::create(b, loc, *c - 1);
    else
      sMinus1 = arith::SubIOp::create(
          b, loc, s, arith::ConstantIndexOp::create(b, loc, 1));
    diff = arith::DivSIOp::create(
        b, loc, arith::AddIOp::create(b, loc, diff, sMinus1), s);
  }
  return arith::MaxSIOp::create(b, loc, diff,
                                arith::ConstantIndexOp::create(b, loc, 0));
}

/// Fills the outlined function: unpacks the context, then runs the linear
/// iterations [begin, end). A 1-D loop is one scf.for. An n-D loop walks
/// [begin, end) in runs along the innermost dimension (scf.while): each run
/// delinearizes its first index once (div/rem by the trip counts) and then
/// runs an scf.for over the innermost dimension, so the division cost is per
/// row, not per iteration.
static void buildOutlinedBody(OpBuilder &b, Location loc,
                              const LoopParts &parts, func::FuncOp outlined,
                              LLVM::LLVMStructType ctxType,
                              ArrayRef<Value> fields, ArrayRef<Value> constants,
                              ArrayRef<OpFoldResult> trips) {
  Block *entry = outlined.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value ctx = entry->getArgument(0);
  IRMapping map;

  // Unpack the context and re-create the constants.
  auto ptrType = LLVM::LLVMPointerType::get(b.getContext());
  for (auto [i, v] : llvm::enumerate(fields)) {
    Type fieldType = ctxType.getBody()[i];
    Value addr = LLVM::GEPOp::create(b, loc, ptrType, ctxType, ctx,
                                     ArrayRef<LLVM::GEPArg>{0, (int32_t)i});
    Value loaded = LLVM::LoadOp::create(b, loc, fieldType, addr);
    map.map(v, fromField(b, loc, loaded, v.getType()));
  }
  for (Value v : constants)
    b.clone(*v.getDefiningOp(), map);

  // Index values: mapped captures, or constants created once, up front.
  llvm::DenseMap<int64_t, Value> indexConstants;
  auto materialize = [&](OpFoldResult ofr) -> Value {
    if (auto v = dyn_cast<Value>(ofr))
      return map.lookupOrDefault(v);
    int64_t c = *getConstantIntValue(ofr);
    Value &cst = indexConstants[c];
    if (!cst) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(entry);
      cst = arith::ConstantIndexOp::create(b, loc, c);
    }
    return cst;
  };
  // `lb + i * step`, without the trivial multiplication and addition.
  auto inductionValue = [&](OpBuilder &nb, Value i, OpFoldResult lb,
                            OpFoldResult step) {
    Value v = i;
    if (!isConstantIntValue(step, 1))
      v = arith::MulIOp::create(nb, loc, v, materialize(step));
    if (!isConstantIntValue(lb, 0))
      v = arith::AddIOp::create(nb, loc, materialize(lb), v);
    return v;
  };

  Type indexType = b.getIndexType();
  Value begin =
      arith::IndexCastOp::create(b, loc, indexType, entry->getArgument(1));
  Value end =
      arith::IndexCastOp::create(b, loc, indexType, entry->getArgument(2));
  size_t rank = parts.ivs.size();
  size_t last = rank - 1;

  // Clones the loop body into an scf.for over [from, to) of the innermost
  // dimension; the outer induction variables are already mapped.
  auto buildInnerLoop = [&](OpBuilder &nb, Value from, Value to) {
    auto forOp =
        scf::ForOp::create(nb, loc, from, to, materialize(nb.getIndexAttr(1)));
    OpBuilder::InsertionGuard guard(nb);
    nb.setInsertionPoint(forOp.getBody()->getTerminator());
    map.map(parts.ivs[last],
            inductionValue(nb, forOp.getInductionVar(), parts.lbs[last],
                           parts.steps[last]));
    for (Operation &op : parts.body->without_terminator())
      nb.clone(op, map);
  };

  if (rank == 1) {
    buildInnerLoop(b, begin, end);
    func::ReturnOp::create(b, loc);
    return;
  }

  SmallVector<Value> tripValues;
  for (OpFoldResult trip : trips)
    tripValues.push_back(isa<Value>(trip) && !map.contains(cast<Value>(trip))
                             ? Value()
                             : materialize(trip));
  scf::WhileOp::create(
      b, loc, TypeRange{indexType}, ValueRange{begin},
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value more = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::slt,
                                           args[0], end);
        scf::ConditionOp::create(nb, l, more, args);
      },
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value i = args[0];
        // i = ((c0 * t1 + c1) * t2 + ...) * t_last + inner.
        Value inner = arith::RemUIOp::create(nb, l, i, tripValues[last]);
        Value row = arith::DivUIOp::create(nb, l, i, tripValues[last]);
        SmallVector<Value> coords(rank);
        for (size_t d = last - 1; d > 0; --d) {
          coords[d] = arith::RemUIOp::create(nb, l, row, tripValues[d]);
          row = arith::DivUIOp::create(nb, l, row, tripValues[d]);
        }
        coords[0] = row;
        for (size_t d = 0; d < last; ++d)
          map.map(parts.ivs[d],
                  inductionValue(nb, coords[d], parts.lbs[d], parts.steps[d]));
        // The run stops at the end of the row or of the chunk.
        Value left = arith::SubIOp::create(nb, l, end, i);
        Value runEnd = arith::MinSIOp::create(
            nb, l, tripValues[last], arith::AddIOp::create(nb, l, inner, left));
        buildInnerLoop(nb, inner, runEnd);
        Value next = arith::AddIOp::create(
            nb, l, i, arith::SubIOp::create(nb, l, runEnd, inner));
        scf::YieldOp::create(nb, l, next);
      });
  func::ReturnOp::create(b, loc);
}

FailureOr<func::FuncOp> quench::convertParallelLoopToRuntimeCall(
    RewriterBase &rewriter, Operation *loop, SymbolTable &symbols,
    const LLVMTypeConverter &converter, int64_t cost) {
  MLIRContext *ctx = rewriter.getContext();
  Location loc = loop->getLoc();
  auto parent = cast<func::FuncOp>(
      loop->getParentWithTrait<OpTrait::IsIsolatedFromAbove>());
  LoopParts parts = getLoopParts(loop);

  // A loop that never runs needs no function.
  for (auto [lb, ub, step] :
       llvm::zip_equal(parts.lbs, parts.ubs, parts.steps)) {
    if (staticTripCount(lb, ub, step) == 0) {
      rewriter.eraseOp(loop);
      return func::FuncOp();
    }
  }

  auto ptrType = LLVM::LLVMPointerType::get(ctx);
  Type i64 = rewriter.getI64Type();
  auto bodyType = FunctionType::get(ctx, {ptrType, i64, i64}, {});
  FailureOr<func::FuncOp> currentPool =
      getRuntimeFunction(symbols, loc, kCurrentThreadpoolFnName,
                         FunctionType::get(ctx, {}, {ptrType}));
  if (failed(currentPool))
    return failure();
  FailureOr<func::FuncOp> parallelFor = getRuntimeFunction(
      symbols, loc, kParallelForWorkFnName,
      FunctionType::get(ctx, {ptrType, i64, i64, bodyType, ptrType},
                        {rewriter.getI32Type()}));
  if (failed(parallelFor))
    return failure();

  // Trip counts and the total iteration count, before the loop.
  rewriter.setInsertionPoint(loop);
  SmallVector<OpFoldResult> trips;
  int64_t staticTotal = 1;
  SmallVector<Value> dynamicTrips;
  for (auto [lb, ub, step] :
       llvm::zip_equal(parts.lbs, parts.ubs, parts.steps)) {
    if (std::optional<int64_t> n = staticTripCount(lb, ub, step)) {
      trips.push_back(rewriter.getIndexAttr(*n));
      staticTotal = saturatingMul(staticTotal, *n);
      continue;
    }
    Value trip = buildTripCount(rewriter, loc, lb, ub, step);
    trips.push_back(trip);
    dynamicTrips.push_back(trip);
  }
  Value total;
  if (staticTotal != 1 || dynamicTrips.empty())
    total = arith::ConstantIndexOp::create(rewriter, loc, staticTotal);
  for (Value trip : dynamicTrips)
    total = total ? arith::MulIOp::create(rewriter, loc, total, trip) : trip;

  // What travels through the context: captured values that are not
  // constants, plus dynamic trip counts of the inner dimensions.
  llvm::SetVector<Value> captured = getCapturedValues(loop, parts);
  for (OpFoldResult trip : ArrayRef(trips).drop_front())
    if (auto v = dyn_cast<Value>(trip))
      captured.insert(v);
  SmallVector<Value> fields, constants;
  SmallVector<Type> fieldTypes;
  for (Value v : captured) {
    if (isConstantLike(v)) {
      constants.push_back(v);
      continue;
    }
    fields.push_back(v);
    fieldTypes.push_back(getContextFieldType(v.getType(), converter));
    assert(fieldTypes.back() && "checked by getRuntimeParallelLoopMismatch");
  }
  auto ctxType = LLVM::LLVMStructType::getLiteral(ctx, fieldTypes);

  // The outlined body, next to its function.
  auto outlined = func::FuncOp::create(
      loc, (parent.getSymName() + "_parallel_body").str(), bodyType);
  outlined.setPrivate();
  outlined->setAttr(kParallelBodyAttrName, rewriter.getUnitAttr());
  outlined->setAttr("llvm.linkage",
                    LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
  // After the function and the bodies already outlined from it, so that the
  // bodies follow the loops' order.
  Operation *insertAfter = parent;
  std::string prefix = (parent.getSymName() + "_parallel_body").str();
  while (auto next =
             dyn_cast_or_null<func::FuncOp>(insertAfter->getNextNode())) {
    if (!next->hasAttr(kParallelBodyAttrName) ||
        !next.getSymName().starts_with(prefix))
      break;
    insertAfter = next;
  }
  symbols.insert(outlined, std::next(Block::iterator(insertAfter)));
  {
    OpBuilder b(ctx);
    buildOutlinedBody(b, loc, parts, outlined, ctxType, fields, constants,
                      trips);
  }

  // Pack the context into a stack slot allocated once at function entry (not
  // per loop execution: the loop may sit in a sequential loop).
  Value ctxPtr;
  if (fields.empty()) {
    ctxPtr = LLVM::ZeroOp::create(rewriter, loc, ptrType);
  } else {
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointToStart(&parent.getBody().front());
    Value one = LLVM::ConstantOp::create(rewriter, loc, i64,
                                         rewriter.getI64IntegerAttr(1));
    ctxPtr = LLVM::AllocaOp::create(rewriter, loc, ptrType, ctxType, one);
  }
  for (auto [i, v] : llvm::enumerate(fields)) {
    Value addr = LLVM::GEPOp::create(rewriter, loc, ptrType, ctxType, ctxPtr,
                                     ArrayRef<LLVM::GEPArg>{0, (int32_t)i});
    LLVM::StoreOp::create(rewriter, loc,
                          toField(rewriter, loc, v, fieldTypes[i]), addr);
  }

  Value pool = func::CallOp::create(rewriter, loc, *currentPool, ValueRange{})
                   .getResult(0);
  Value fn = func::ConstantOp::create(rewriter, loc, bodyType,
                                      SymbolRefAttr::get(outlined));
  Value n = arith::IndexCastOp::create(rewriter, loc, i64, total);
  Value costValue = arith::ConstantIntOp::create(rewriter, loc, i64, cost);
  func::CallOp::create(rewriter, loc, *parallelFor,
                       ValueRange{pool, n, costValue, fn, ctxPtr});
  rewriter.eraseOp(loop);
  return outlined;
}

//===----------------------------------------------------------------------===//
// Pass
//===----------------------------------------------------------------------===//

/// Trip count times `cost` when every trip count is a constant.
static std::optional<int64_t> getStaticLoopWork(const LoopParts &parts,
                                                int64_t cost) {
  int64_t work = cost;
  for (auto [lb, ub, step] :
       llvm::zip_equal(parts.lbs, parts.ubs, parts.steps)) {
    std::optional<int64_t> n = staticTripCount(lb, ub, step);
    if (!n)
      return std::nullopt;
    work = saturatingMul(work, *n);
  }
  return work;
}

namespace {

struct ConvertSCFToQuenchRuntimePass
    : public quench::impl::ConvertSCFToQuenchRuntimeBase<
          ConvertSCFToQuenchRuntimePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The default options: the same index width and memref descriptors as
    // finalize-memref-to-llvm and convert-func-to-llvm in the CPU pipeline.
    LLVMTypeConverter converter(&getContext());

    // Outermost convertible loops; loops with results are walked into, so a
    // parallel loop nested in a reduction loop still runs on the pool.
    SmallVector<Operation *> loops;
    for (auto fn : module.getOps<func::FuncOp>()) {
      if (fn.isExternal() || fn->hasAttr(kParallelBodyAttrName))
        continue;
      fn.walk<WalkOrder::PreOrder>([&](Operation *op) {
        if (!isa<scf::ForallOp, scf::ParallelOp>(op))
          return WalkResult::advance();
        if (!getRuntimeParallelLoopMismatch(op, converter).empty())
          return WalkResult::advance();
        loops.push_back(op);
        return WalkResult::skip();
      });
    }

    SymbolTable symbols(module);
    IRRewriter rewriter(&getContext());
    for (Operation *loop : loops) {
      LoopParts parts = getLoopParts(loop);
      int64_t cost = estimateParallelIterationCost(*parts.body);
      if (std::optional<int64_t> work = getStaticLoopWork(parts, cost);
          work && *work < minParallelWork)
        continue; // Serial: less work than a dispatch could win back.
      if (failed(convertParallelLoopToRuntimeCall(rewriter, loop, symbols,
                                                  converter, cost)))
        return signalPassFailure();
    }
  }
};

} // namespace
