//===- KVCache.cpp - past keys/values into a caller-owned cache -----------===//
//
// Implements `quench-kv-cache` (Passes.td has the contract). A decoder
// exported with past keys/values computes, per layer,
//
//   present = concat(past, new, axis = seq)
//
// and reads `present` in attention. Run step by step that copies the whole
// past every step. The pass turns each past input into a cache buffer that
// the caller owns and keeps between steps (a memref argument with a dynamic
// capacity), adds a `past_length` input, and rewrites
//
//   past     -> extract_slice(cache)[.., 0 : past_length, ..]   (a view)
//   concat   -> insert_slice(new, cache)[.., past_length : +new, ..],
//               materialized in the cache buffer,
//               then extract_slice(..)[.., 0 : past_length + new, ..]
//
// so that one-shot bufferization writes the new positions into the cache in
// place and attention reads the cache through subviews: no step copies the
// past. The present outputs disappear. docs/generation.md describes the
// design and the runtime side (sessions).
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Support/LLVM.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/Regex.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHKVCACHE
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;
using namespace mlir;

namespace {

/// A name pattern with `{i}` (layer) and `{kv}` (key|value) as a regex.
std::string patternToRegex(StringRef pattern) {
  std::string re = "^";
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i).starts_with("{i}")) {
      re += "([0-9]+)";
      i += 3;
    } else if (pattern.substr(i).starts_with("{kv}")) {
      re += "(key|value)";
      i += 4;
    } else {
      char c = pattern[i++];
      if (StringRef("\\^$.|?*+()[]{}").contains(c))
        re += '\\';
      re += c;
    }
  }
  return re + "$";
}

/// `pattern` with {i} and {kv} replaced.
std::string instantiate(StringRef pattern, StringRef layer, StringRef kv) {
  std::string out;
  for (size_t i = 0; i < pattern.size();) {
    if (pattern.substr(i).starts_with("{i}")) {
      out += layer;
      i += 3;
    } else if (pattern.substr(i).starts_with("{kv}")) {
      out += kv;
      i += 4;
    } else {
      out += pattern[i++];
    }
  }
  return out;
}

struct CachePair {
  unsigned argIndex;
  unsigned resultIndex;
  std::string name;
  unsigned layer;
  bool isValue;
};

struct QuenchKVCachePass
    : public quench::impl::QuenchKVCacheBase<QuenchKVCachePass> {
  using Base::Base;

  void runOnOperation() override {
    func::FuncOp func = getOperation();
    if (func.isDeclaration())
      return;
    QuenchKVCacheOptions options;
    options.past = past;
    options.present = present;
    options.inputIds = inputIds;
    options.attentionMask = attentionMask;
    options.positionIds = positionIds;
    options.logits = logits;
    options.pastLength = pastLength;
    options.cacheType = cacheType;
    options.maxSeq = maxSeq;
    options.logitsPositions = logitsPositions;
    if (failed(applyKVCache(func, options)))
      signalPassFailure();
  }
};

StringAttr nameOfArg(func::FuncOp func, unsigned i) {
  return func.getArgAttrOfType<StringAttr>(i,
                                           QuenchDialect::getNameAttrName());
}
StringAttr nameOfResult(func::FuncOp func, unsigned i) {
  return func.getResultAttrOfType<StringAttr>(
      i, QuenchDialect::getNameAttrName());
}

} // namespace

bool quench::isPastInputName(StringRef name, StringRef pastPattern) {
  return llvm::Regex(patternToRegex(pastPattern)).match(name);
}

bool quench::hasPastInputs(func::FuncOp func, StringRef pastPattern) {
  llvm::Regex matcher(patternToRegex(pastPattern));
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (StringAttr n = nameOfArg(func, i); n && matcher.match(n.getValue()))
      return true;
  return false;
}

LogicalResult quench::applyKVCache(func::FuncOp func,
                                   const QuenchKVCacheOptions &options) {
  const std::string &past = options.past, &present = options.present,
                    &inputIds = options.inputIds,
                    &attentionMask = options.attentionMask,
                    &positionIds = options.positionIds,
                    &logits = options.logits, &pastLength = options.pastLength,
                    &cacheType = options.cacheType;
  int64_t maxSeq = options.maxSeq;
  MLIRContext *ctx = func.getContext();
  // Also called outside a pass manager (quench-compile's kv-cache stage).
  ctx->loadDialect<arith::ArithDialect, bufferization::BufferizationDialect,
                   tensor::TensorDialect>();
  Location loc = func.getLoc();
  if (maxSeq <= 0)
    return emitError(loc) << "max-seq must be positive, got " << maxSeq;
  Type cacheElem;
  bool int8 = cacheType == "int8";
  if (cacheType == "f16")
    cacheElem = Float16Type::get(ctx);
  else if (int8)
    cacheElem = IntegerType::get(ctx, 8);
  else if (cacheType == "f32")
    cacheElem = Float32Type::get(ctx);
  else if (cacheType != "model")
    return emitError(loc) << "unknown cache type '" << cacheType
                          << "' (expected model, f32, f16 or int8)";
  if (options.logitsPositions != "last" && options.logitsPositions != "all")
    return emitError(loc) << "unknown logits positions '"
                          << options.logitsPositions
                          << "' (expected last or all)";

  // Pair the past inputs with the present outputs by name.
  std::string pastRe = patternToRegex(past), presentRe = patternToRegex(present);
  llvm::Regex pastMatcher(pastRe), presentMatcher(presentRe);
  std::string reErr;
  if (!pastMatcher.isValid(reErr) || !presentMatcher.isValid(reErr))
    return emitError(loc) << "bad past/present name pattern: " << reErr;
  llvm::StringMap<unsigned> resultByName;
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    if (StringAttr n = nameOfResult(func, i))
      resultByName[n.getValue()] = i;
  SmallVector<CachePair> pairs;
  llvm::DenseSet<unsigned> pairedResults;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    StringAttr n = nameOfArg(func, i);
    SmallVector<StringRef> groups;
    if (!n || !pastMatcher.match(n.getValue(), &groups))
      continue;
    // Groups: whole match, then {i} and {kv} in pattern order.
    StringRef layer, kv;
    size_t posI = StringRef(past).find("{i}"), posKV = StringRef(past).find("{kv}");
    if (posI == StringRef::npos || posKV == StringRef::npos)
      return emitError(loc) << "the past pattern '" << past
                            << "' must contain {i} and {kv}";
    layer = groups[posI < posKV ? 1 : 2];
    kv = groups[posI < posKV ? 2 : 1];
    std::string presentName = instantiate(present, layer, kv);
    auto it = resultByName.find(presentName);
    if (it == resultByName.end())
      return emitError(loc) << "past input '" << n.getValue()
                            << "' has no present output '" << presentName
                            << "'";
    unsigned layerIndex = 0;
    layer.getAsInteger(10, layerIndex);
    pairs.push_back({i, it->second, n.getValue().str(), layerIndex,
                     kv == "value"});
    pairedResults.insert(it->second);
  }
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    StringAttr n = nameOfResult(func, i);
    if (n && presentMatcher.match(n.getValue()) && !pairedResults.count(i))
      return emitError(loc) << "present output '" << n.getValue()
                            << "' has no past input matching '" << past
                            << "'";
  }
  if (pairs.empty())
    return emitError(loc) << "no past key/value inputs: no input name "
                             "matches '"
                          << past << "' (set the pattern with --kv-past)";

  // The roles of the other inputs and outputs.
  auto findArg = [&](StringRef name) -> int {
    for (unsigned i = 0; i < func.getNumArguments(); ++i)
      if (StringAttr n = nameOfArg(func, i); n && n.getValue() == name)
        return i;
    return -1;
  };
  if (findArg(inputIds) < 0)
    return emitError(loc) << "no token ids input named '" << inputIds
                          << "' (set it with --kv-input-ids)";
  if (findArg(pastLength) >= 0)
    return emitError(loc) << "the model already has an input named '"
                          << pastLength << "'";
  int logitsIndex = -1;
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    if (StringAttr n = nameOfResult(func, i); n && n.getValue() == logits)
      logitsIndex = i;
  if (logitsIndex < 0 && func.getNumResults() == pairs.size() + 1)
    for (unsigned i = 0; i < func.getNumResults(); ++i)
      if (!pairedResults.count(i))
        logitsIndex = i;
  if (logitsIndex < 0)
    return emitError(loc) << "no logits output named '" << logits
                          << "' (set it with --kv-logits)";
  auto logitsType =
      dyn_cast<RankedTensorType>(func.getResultTypes()[logitsIndex]);
  if (!logitsType || (logitsType.getRank() != 2 && logitsType.getRank() != 3) ||
      logitsType.isDynamicDim(logitsType.getRank() - 1) ||
      !isa<FloatType>(logitsType.getElementType()))
    return emitError(loc) << "the logits output must be a float tensor "
                             "[batch, seq, vocab] or [batch, vocab] with a "
                             "static vocabulary, got "
                          << func.getResultTypes()[logitsIndex];
  std::string logitsName =
      nameOfResult(func, logitsIndex)
          ? nameOfResult(func, logitsIndex).getValue().str()
          : std::string();

  // Check every pair before changing anything.
  auto returnOp = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  SmallVector<quench::ConcatOp> concats;
  SmallVector<int64_t> axes;
  for (const CachePair &p : pairs) {
    BlockArgument arg = func.getArgument(p.argIndex);
    auto type = dyn_cast<RankedTensorType>(arg.getType());
    Value presentValue = returnOp.getOperand(p.resultIndex);
    auto concat = presentValue.getDefiningOp<quench::ConcatOp>();
    if (!concat || concat.getInputs().size() != 2 ||
        concat.getInputs()[0] != arg) {
      InFlightDiagnostic d = emitError(presentValue.getLoc())
                             << "present output '"
                             << nameOfResult(func, p.resultIndex).getValue()
                             << "' is not concat(past '" << p.name
                             << "', new positions)";
      if (Operation *def = presentValue.getDefiningOp())
        d << ": it is produced by '" << def->getName() << "'";
      return d;
    }
    int64_t axis = concat.getAxis();
    if (!type || type.getRank() < 2 || axis <= 0 || axis >= type.getRank() ||
        !isa<FloatType>(type.getElementType()))
      return emitError(arg.getLoc())
             << "past input '" << p.name
             << "' must be a float tensor [batch, ...] concatenated along a "
                "dimension after the batch, got "
             << arg.getType() << " along axis " << axis;
    for (int64_t d = 1; d < type.getRank(); ++d)
      if (d != axis && type.isDynamicDim(d))
        return emitError(arg.getLoc())
               << "past input '" << p.name << "' has a dynamic dimension "
               << d << " (" << arg.getType()
               << "); only batch and sequence may be dynamic (fix the "
                  "others with --shape)";
    if (!type.isDynamicDim(0) && type.getDimSize(0) != 1)
      return emitError(arg.getLoc())
             << "past input '" << p.name << "' has batch "
             << type.getDimSize(0) << "; generation runs batch 1";
    for (Operation *user : concat->getUsers())
      if (isa<quench::ConcatOp>(user) && user != concat &&
          llvm::is_contained(user->getOperands(), arg))
        return emitError(user->getLoc())
               << "past input '" << p.name << "' is concatenated twice";
    concats.push_back(concat);
    axes.push_back(axis);
  }

  // The past length, as an index.
  OpBuilder b(ctx);
  Block &entry = func.getBody().front();
  unsigned lenIndex = func.getNumArguments();
  auto i64 = IntegerType::get(ctx, 64);
  if (failed(func.insertArgument(
          lenIndex, RankedTensorType::get({}, i64),
          b.getDictionaryAttr(b.getNamedAttr(QuenchDialect::getNameAttrName(),
                                             b.getStringAttr(pastLength))),
          loc)))
    return emitError(loc) << "cannot add the past-length input";
  b.setInsertionPointToStart(&entry);
  Value lenTensor = func.getArgument(lenIndex);
  Value len = arith::IndexCastOp::create(
      b, loc, b.getIndexType(),
      tensor::ExtractOp::create(b, loc, lenTensor, ValueRange{}));

  // Each past input: a cache argument (appended; the old one is erased
  // below) and a view of its first past_length positions.
  llvm::BitVector eraseArgs(func.getNumArguments() + pairs.size());
  llvm::BitVector eraseResults(func.getNumResults());
  SmallVector<Attribute> stateNames;
  for (auto [p, concat, axis] : llvm::zip(pairs, concats, axes)) {
    BlockArgument oldArg = func.getArgument(p.argIndex);
    auto pastType = cast<RankedTensorType>(oldArg.getType());
    int64_t rank = pastType.getRank();
    SmallVector<int64_t> cacheShape(pastType.getShape());
    cacheShape[0] = 1;
    cacheShape[axis] = ShapedType::kDynamic;
    Type elem = cacheElem ? cacheElem : pastType.getElementType();
    // An int8 cache has one f32 scale per head and position: the dim
    // reduced is head_dim, the last one (or the one before if the sequence
    // is last).
    int64_t reduced = axis == rank - 1 ? rank - 2 : rank - 1;
    SmallVector<int64_t> scaleShape(cacheShape);
    scaleShape[reduced] = 1;
    auto f32 = Float32Type::get(ctx);

    // The buffers: the cache (and its scales) as arguments and tensors.
    auto addBuffer = [&](ArrayRef<int64_t> shape, Type type,
                         StringRef name) -> FailureOr<std::pair<Value, Value>> {
      unsigned index = func.getNumArguments();
      if (failed(func.insertArgument(
              index, MemRefType::get(shape, type),
              b.getDictionaryAttr(b.getNamedAttr(
                  QuenchDialect::getNameAttrName(), b.getStringAttr(name))),
              oldArg.getLoc())))
        return failure();
      BlockArgument arg = func.getArgument(index);
      stateNames.push_back(b.getStringAttr(name));
      b.setInsertionPointAfter(len.getDefiningOp());
      Value t = bufferization::ToTensorOp::create(
          b, oldArg.getLoc(), RankedTensorType::get(shape, type), arg,
          /*restrict=*/true, /*writable=*/true);
      return std::make_pair(Value(arg), t);
    };
    auto data = addBuffer(cacheShape, elem, p.name);
    FailureOr<std::pair<Value, Value>> scales;
    if (int8) {
      scales = addBuffer(scaleShape, f32, p.name + ".scale");
      if (failed(scales))
        return emitError(loc) << "cannot add the cache input";
    }
    if (failed(data))
      return emitError(loc) << "cannot add the cache input";
    eraseArgs.resize(func.getNumArguments());
    eraseArgs.set(p.argIndex);

    auto sizesWith = [&](ArrayRef<int64_t> shape, OpFoldResult seq) {
      SmallVector<OpFoldResult> sizes;
      for (int64_t d = 0; d < rank; ++d)
        sizes.push_back(d == axis ? seq
                                  : OpFoldResult(b.getIndexAttr(shape[d])));
      return sizes;
    };
    SmallVector<OpFoldResult> zeros(rank, b.getIndexAttr(0));
    SmallVector<OpFoldResult> ones(rank, b.getIndexAttr(1));
    auto scalar = [&](Location l, float v) -> Value {
      auto t = RankedTensorType::get({}, f32);
      return quench::ConstantOp::create(b, l, t,
                                        DenseElementsAttr::get(t, v));
    };
    // The first `count` positions of the cache(s) in the model's type.
    auto read = [&](Location l, Value dataT, Value scaleT, Value count,
                    RankedTensorType want) -> Value {
      Value v = tensor::ExtractSliceOp::create(
          b, l, dataT, zeros, sizesWith(cacheShape, count), ones);
      auto have = cast<RankedTensorType>(v.getType());
      if (int8) {
        v = quench::CastOp::create(b, l, have.clone(f32), v);
        Value sv = tensor::ExtractSliceOp::create(
            b, l, scaleT, zeros, sizesWith(scaleShape, count), ones);
        v = quench::MulOp::create(b, l, have.clone(f32), v, sv);
        have = have.clone(f32);
      }
      if (have.getElementType() != want.getElementType())
        v = quench::CastOp::create(b, l, have.clone(want.getElementType()),
                                   v);
      if (v.getType() != want)
        v = tensor::CastOp::create(b, l, want, v);
      return v;
    };
    // (The data's to_tensor was created first, so it comes last.)
    b.setInsertionPointAfter(data->second.getDefiningOp());
    Value pastView = read(oldArg.getLoc(), data->second,
                          int8 ? scales->second : Value(), len, pastType);

    // The concatenation: write the new positions, read the whole.
    b.setInsertionPoint(concat);
    Location cl = concat.getLoc();
    Value fresh = concat.getInputs()[1];
    auto freshType = cast<RankedTensorType>(fresh.getType());
    SmallVector<int64_t> freshShape(cacheShape);
    freshShape[axis] = freshType.getDimSize(axis);
    auto freshModelType =
        RankedTensorType::get(freshShape, freshType.getElementType());
    if (fresh.getType() != freshModelType)
      fresh = tensor::CastOp::create(b, cl, freshModelType, fresh);
    Value count = tensor::DimOp::create(b, cl, fresh, axis);
    // A static count (a decode step compiled for one token) stays static,
    // as the inserted slice's type requires.
    OpFoldResult countSize =
        freshShape[axis] == ShapedType::kDynamic
            ? OpFoldResult(count)
            : OpFoldResult(b.getIndexAttr(freshShape[axis]));
    SmallVector<OpFoldResult> offsets(zeros);
    offsets[axis] = len;
    auto write = [&](Value v, ArrayRef<int64_t> shape,
                     std::pair<Value, Value> buffer) {
      Value updated = tensor::InsertSliceOp::create(
          b, cl, v, buffer.second, offsets, sizesWith(shape, countSize),
          ones);
      bufferization::MaterializeInDestinationOp::create(
          b, cl, TypeRange{}, updated, buffer.first, /*restrict=*/false,
          /*writable=*/true);
      return updated;
    };
    Value updatedData, updatedScales;
    if (int8) {
      // Symmetric int8 per head and position: scale = max |x| / 127
      // (at least 1e-30, so zeros stay zeros), code = round(x / scale).
      Value x = fresh;
      auto xt = cast<RankedTensorType>(x.getType());
      if (xt.getElementType() != f32) {
        xt = xt.clone(f32);
        x = quench::CastOp::create(b, cl, xt, x);
      }
      SmallVector<int64_t> sShape(freshShape);
      sShape[reduced] = 1;
      auto st = RankedTensorType::get(sShape, f32);
      Value amax = quench::ReduceOp::create(
          b, cl, st, quench::ReduceKind::max,
          quench::AbsOp::create(b, cl, xt, x), ArrayRef<int64_t>{reduced},
          true);
      Value scale = quench::MaxOp::create(
          b, cl, st,
          quench::DivOp::create(b, cl, st, amax, scalar(cl, 127.0f)),
          scalar(cl, 1e-30f));
      Value q = quench::FloorOp::create(
          b, cl, xt,
          quench::AddOp::create(b, cl, xt,
                                quench::DivOp::create(b, cl, xt, x, scale),
                                scalar(cl, 0.5f)));
      q = quench::ClipOp::create(b, cl, xt, q, b.getF64FloatAttr(-127.0),
                                 b.getF64FloatAttr(127.0));
      q = quench::CastOp::create(b, cl, xt.clone(elem), q);
      updatedData = write(q, cacheShape, *data);
      updatedScales = write(scale, scaleShape, *scales);
    } else {
      Value v = fresh;
      if (freshType.getElementType() != elem)
        v = quench::CastOp::create(
            b, cl, cast<RankedTensorType>(v.getType()).clone(elem), v);
      updatedData = write(v, cacheShape, *data);
    }
    Value total = arith::AddIOp::create(b, cl, len, count);
    Value whole =
        read(cl, updatedData, updatedScales, total,
             cast<RankedTensorType>(concat.getResult().getType()));
    concat.getResult().replaceUsesWithIf(whole, [&](OpOperand &use) {
      return use.getOwner() != returnOp;
    });
    oldArg.replaceAllUsesWith(pastView);
    eraseResults.set(p.resultIndex);
  }

  // Drop the present outputs and the past inputs.
  SmallVector<Value> kept;
  for (auto [i, v] : llvm::enumerate(returnOp.getOperands()))
    if (!eraseResults.test(i))
      kept.push_back(v);
  returnOp->setOperands(kept);
  if (failed(func.eraseResults(eraseResults)) ||
      failed(func.eraseArguments(eraseArgs)))
    return emitError(loc) << "cannot update the function's signature";
  for (quench::ConcatOp concat : concats)
    if (concat->use_empty())
      concat->erase();

  if (options.logitsPositions == "last") {
    unsigned index = 0;
    for (unsigned i = 0; i < (unsigned)logitsIndex; ++i)
      index += !eraseResults.test(i);
    if (failed(keepLastLogits(func, index)))
      return failure();
  }

  // The roles, for the model ABI and the runtime's sessions.
  SmallVector<NamedAttribute> roles = {
      b.getNamedAttr("input_ids", b.getStringAttr(inputIds)),
      b.getNamedAttr("past_length", b.getStringAttr(pastLength)),
      b.getNamedAttr("logits", b.getStringAttr(logitsName)),
      b.getNamedAttr("state", b.getArrayAttr(stateNames)),
      b.getNamedAttr("capacity", b.getI64IntegerAttr(maxSeq))};
  if (findArg(attentionMask) >= 0)
    roles.push_back(
        b.getNamedAttr("attention_mask", b.getStringAttr(attentionMask)));
  if (findArg(positionIds) >= 0)
    roles.push_back(
        b.getNamedAttr("position_ids", b.getStringAttr(positionIds)));
  func->setAttr("quench.generation", b.getDictionaryAttr(roles));
  return success();
}
