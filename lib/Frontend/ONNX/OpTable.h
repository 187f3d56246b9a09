//===- OpTable.h - the ONNX operator table and its helpers ------*- C++ -*-===//
//
// The importer's one list of ONNX operators. Each entry names a (domain, op
// type), the opset range it implements, the conversion that builds quench
// ops for a node and, optionally, an import-time folder that evaluates the
// node when it computes on integers known at import (the shape arithmetic
// exporters emit). The family files (Elementwise.cpp, Shapes.cpp, ...) each
// register their operators with a `populate<Family>Ops` function;
// isSupportedOp, getSupportedONNXOps (`quench-import --list-supported-ops`)
// and the node dispatcher (OpTable.cpp) read the table built from them, so
// adding an operator is one entry and one conversion in its family's file.
//
// Also declares what several family files share: the per-node conversion
// context `Conv`, and shape values known in part at import time
// (ShapeValues.cpp). Private to lib/Frontend/ONNX; includes ONNX headers
// through ImporterImpl.h.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_FRONTEND_ONNX_OPTABLE_H
#define QUENCH_LIB_FRONTEND_ONNX_OPTABLE_H

#include "ImporterImpl.h"

#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include <functional>
#include <limits>
#include <map>
#include <optional>

namespace quench::onnximport {

inline constexpr int64_t kDyn = ShapedType::kDynamic;

inline RankedTensorType tensorType(Value v) {
  return cast<RankedTensorType>(v.getType());
}

//===----------------------------------------------------------------------===//
// Per-node conversion context
//===----------------------------------------------------------------------===//

/// What a conversion works with: the importer, the node, its location and
/// the builder, plus the small helpers every conversion uses.
struct Conv {
  GraphImporter &imp;
  const onnx::NodeProto &node;
  Location loc;
  OpBuilder &b;

  Conv(GraphImporter &imp, const onnx::NodeProto &node)
      : imp(imp), node(node), loc(imp.nodeLoc(node)), b(imp.builder) {}

  Value in(int i) { return imp.input(node, i); }
  bool has(int i) { return imp.hasInput(node, i); }
  InFlightDiagnostic error() { return imp.nodeError(node); }
  LogicalResult out(Value v, int i = 0) {
    imp.setOutput(node, i, v);
    return success();
  }
  RankedTensorType outType(RankedTensorType fallback, int i = 0) {
    return imp.outputTypeOr(node, i, fallback);
  }
  FailureOr<int64_t> axis(int64_t a, int64_t rank) {
    return normalizeAxis(imp, node, a, rank);
  }
  /// Every axis of `axes` normalized (axis()), in their order.
  FailureOr<SmallVector<int64_t>> axes(ArrayRef<int64_t> list, int64_t rank) {
    SmallVector<int64_t> out;
    for (int64_t a : list) {
      FailureOr<int64_t> n = axis(a, rank);
      if (failed(n))
        return failure();
      out.push_back(*n);
    }
    return out;
  }
  Value cast(Value v, Type et) {
    auto ty = tensorType(v);
    if (ty.getElementType() == et)
      return v;
    return CastOp::create(b, loc, ty.clone(et), v);
  }
  /// The broadcast result type of `vals` with element type `et`; null when
  /// their shapes do not broadcast.
  RankedTensorType broadcastType(ValueRange vals, Type et) {
    SmallVector<int64_t> shape;
    for (Value v : vals) {
      SmallVector<int64_t> next;
      if (failed(broadcastShapes(shape, tensorType(v).getShape(), next)))
        return nullptr;
      shape = next;
    }
    return outType(RankedTensorType::get(shape, et));
  }
  /// A 0-D constant `v` of element type `et` (float or integer).
  Value scalar(double v, Type et) {
    auto ty = RankedTensorType::get({}, et);
    Attribute a = isa<FloatType>(et)
                      ? Attribute(b.getFloatAttr(et, v))
                      : Attribute(b.getIntegerAttr(et, (int64_t)v));
    return ConstantOp::create(b, loc, ty, DenseElementsAttr::get(ty, a));
  }
};

//===----------------------------------------------------------------------===//
// Import-time folding
//===----------------------------------------------------------------------===//

/// What an import-time folder sees of a node.
struct FoldArgs {
  FoldArgs(GraphImporter &imp, const onnx::NodeProto &node);

  GraphImporter &imp;
  const onnx::NodeProto &node;
  /// ONNX shape inference's type of output 0, and its element type (null
  /// when inference gave none).
  FailureOr<RankedTensorType> outTy;
  Type outEt;
  /// The integer contents of every input, once knownInputs() succeeded; an
  /// absent optional input is an empty tensor.
  SmallVector<IntTensor> ins;

  /// Fills `ins`; false when an input is not known at import time or the
  /// node has no inputs.
  bool knownInputs();

  /// Set by a folder whose known inputs make the node invalid (a zero
  /// integer divisor, a Range of too many elements): the import fails with
  /// this message on the node instead of converting it into code that would
  /// fault at run time.
  std::string error;
};

/// A folded value: its integer data and the element type of the constant it
/// becomes (the data is wrapped to that type when it is narrower).
struct Folded {
  IntTensor value;
  Type elementType;
};

/// Evaluates a node at import; std::nullopt when it cannot (the node is then
/// converted).
using Folder = std::function<std::optional<Folded>(FoldArgs &)>;

/// Builds the quench ops for a node and binds its outputs.
using Converter = std::function<LogicalResult(Conv &)>;

/// Number of elements of a static shape; -1 when a dim is negative or the
/// product overflows (a hostile shape: fuzz finding).
int64_t numElements(ArrayRef<int64_t> shape);

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

/// Opset versions [since, until] of an operator's domain that an entry
/// implements.
struct OpsetRange {
  int64_t since = kMinDefaultOpset;
  int64_t until = kMaxDefaultOpset;

  /// Every version: for domains whose version the importer does not check.
  static OpsetRange any() {
    return {std::numeric_limits<int64_t>::min(),
            std::numeric_limits<int64_t>::max()};
  }
  bool contains(int64_t v) const { return since <= v && v <= until; }
};

/// One operator the importer converts.
struct OpEntry {
  /// "" for the default ONNX domain ("ai.onnx" is looked up as "").
  std::string domain;
  std::string opType;
  OpsetRange opsets;
  Converter convert;
  /// Optional: tried before `convert`.
  Folder fold;
};

/// The operator table: entries per (domain, op type), several when an
/// operator's definition changed between opsets (their ranges must not
/// overlap).
class OpTable {
public:
  /// Registers `opType` of the default domain for opsets 13-17.
  void add(llvm::StringRef opType, Converter convert, Folder fold = nullptr) {
    add("", opType, OpsetRange(), std::move(convert), std::move(fold));
  }
  /// Registers `opType` of `domain` for `opsets`.
  void add(llvm::StringRef domain, llvm::StringRef opType, OpsetRange opsets,
           Converter convert, Folder fold = nullptr);

  /// The entry for `opType` of `domain` at opset `version` of that domain;
  /// null when there is none.
  const OpEntry *lookup(llvm::StringRef domain, llvm::StringRef opType,
                        int64_t version) const;

  /// Every (domain, op type) with at least one entry, sorted.
  std::vector<std::pair<std::string, std::string>> ops() const;

private:
  std::map<std::pair<std::string, std::string>, SmallVector<OpEntry, 1>>
      entries;
};

/// "" for the default domain's two spellings, the domain otherwise.
llvm::StringRef normalizeDomain(llvm::StringRef domain);

/// The table, populated by every family on first use.
const OpTable &getOpTable();

/// The families (one file each).
void populateConstantOps(OpTable &table);       // Constants.cpp
void populateElementwiseOps(OpTable &table);    // Elementwise.cpp
void populateCompositeOps(OpTable &table);      // Composite.cpp
void populateShapeOps(OpTable &table);          // Shapes.cpp
void populateIndexingOps(OpTable &table);       // Indexing.cpp
void populateReductionOps(OpTable &table);      // Reductions.cpp
void populateContractionOps(OpTable &table);    // Contractions.cpp
void populateQuantizationOps(OpTable &table);   // Quantization.cpp

//===----------------------------------------------------------------------===//
// Shared by several families
//===----------------------------------------------------------------------===//

/// Per element of a small 0-D or 1-D integer tensor: its value if known at
/// import time.
using PartialInts = SmallVector<std::optional<int64_t>>;

/// What is known at import time of each element of `v`, a 0-D or 1-D integer
/// tensor of static size (up to 64 elements), from the quench ops already
/// built; std::nullopt for other values. (ShapeValues.cpp)
std::optional<PartialInts> partialInts(Value v);
bool allKnown(const PartialInts &p);

/// A 1-D (or, with `scalar`, 0-D) i64 constant.
Value i64Constant(Conv &c, ArrayRef<int64_t> vals, bool scalar = false);
/// The run-time extents of `x` (1-D i64).
Value shapeOf(Conv &c, Value x);
/// Element `i` of the 1-D i64 tensor `v`, as a 1-element 1-D tensor.
Value elementAt(Conv &c, Value v, int64_t i);
/// A 1-element tensor as a 0-D tensor.
Value toScalar(Conv &c, Value v);
/// Concatenates 1-D i64 pieces.
Value concatI64(Conv &c, ArrayRef<Value> pieces);
/// The product of the entries of a 1-D i64 tensor, as a 1-element tensor.
Value productOf(Conv &c, Value v);

/// Reduces `x` over the node's axes (attribute or input, with ONNX's
/// defaults) with `kind`; `keepOverride` overrides the node's keepdims.
/// Returns `x` itself for noop_with_empty_axes. (Reductions.cpp)
FailureOr<Value> reduceValue(Conv &c, Value x, ReduceKind kind,
                             std::optional<bool> keepOverride = {});

/// NumPy matmul result type of `a` x `bv` with element type `et`; null when
/// the batch dimensions do not broadcast. (Contractions.cpp)
RankedTensorType matmulType(Conv &c, Value a, Value bv, Type et);

} // namespace quench::onnximport

#endif // QUENCH_LIB_FRONTEND_ONNX_OPTABLE_H
