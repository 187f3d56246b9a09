//===- ImporterImpl.h - ONNX importer internals -----------------*- C++ -*-===//
//
// Shared between the model loader (ONNXModel.cpp), the graph importer
// (ONNXImporter.cpp) and the operator table with its conversions
// (OpTable.h/.cpp and the family files). Includes ONNX headers, so it may
// only be included by this library's exception-enabled translation units.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_FRONTEND_ONNX_IMPORTERIMPL_H
#define QUENCH_LIB_FRONTEND_ONNX_IMPORTERIMPL_H

#include "quench/Frontend/ONNX/ONNXImporter.h"
#include "quench/Support/LLVM.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringMap.h"

#include "onnx/onnx_pb.h"

#include <memory>
#include <string>
#include <unordered_map>

namespace quench::onnximport {

/// The default-domain opsets the importer implements: the loader refuses
/// models outside them, and the operator table's default-domain entries
/// cover them unless an entry says otherwise (OpTable.h).
inline constexpr int64_t kMinDefaultOpset = 13;
inline constexpr int64_t kMaxDefaultOpset = 17;

/// Loads, validates (checker) and types (shape inference) a model. Resolves
/// external data into the in-memory model. Returns an error message on
/// failure.
std::string loadModel(llvm::StringRef path, const ONNXImportOptions &options,
                      onnx::ModelProto &model);

/// Converts an ONNX element type; null for types Quench does not handle.
Type convertElementType(int32_t onnxType, MLIRContext *ctx);

/// Human-readable ONNX element type name.
std::string onnxTypeName(int32_t onnxType);

/// Collapses whitespace runs (libonnx messages span several lines) so that
/// every error stays one line.
std::string oneLine(llvm::StringRef message);

/// Integer data of a small tensor known at import time.
struct IntTensor {
  SmallVector<int64_t> shape;
  std::vector<int64_t> data;
};

/// Builds the quench IR for one graph.
class GraphImporter {
public:
  GraphImporter(MLIRContext *ctx, const onnx::ModelProto &model,
                llvm::StringRef path);

  /// Imports the main graph into `module` as a function named `name`.
  LogicalResult importGraph(ModuleOp module, llvm::StringRef name);

  // ----- Used by the op conversions (OpTable.h) -----
  MLIRContext *ctx;
  OpBuilder builder;
  const onnx::ModelProto &model;
  std::string path;
  /// The opset of the default domain.
  int64_t opset = 0;

  /// The opset version the model imports `domain` at ("" and "ai.onnx" are
  /// the default domain); 0 when it does not import the domain.
  int64_t opsetOf(llvm::StringRef domain) const;

  /// Emits an error attached to `node`: "node 'NAME' (OP): ...".
  InFlightDiagnostic nodeError(const onnx::NodeProto &node);
  Location nodeLoc(const onnx::NodeProto &node);

  /// The value of input `i` of `node`; null if absent (optional input).
  Value input(const onnx::NodeProto &node, int i);
  /// The value bound to output `i` of `node`; null if none (yet).
  Value output(const onnx::NodeProto &node, int i);
  bool hasInput(const onnx::NodeProto &node, int i) const;
  /// The result type ONNX shape inference gave output `i`, if it is ranked.
  FailureOr<RankedTensorType> outputType(const onnx::NodeProto &node, int i);
  /// Like outputType, but falls back to `fallback` when inference gave none.
  RankedTensorType outputTypeOr(const onnx::NodeProto &node, int i,
                                RankedTensorType fallback);
  void setOutput(const onnx::NodeProto &node, int i, Value v);

  /// Integer contents of input `i` when known at import time.
  std::optional<IntTensor> knownInts(const onnx::NodeProto &node, int i);
  /// A known single float/int value of input `i`.
  std::optional<double> knownScalar(const onnx::NodeProto &node, int i);

  /// Materializes a constant.
  Value constant(Location loc, ElementsAttr attr);
  /// A constant from integer data with element type `et`.
  Value intConstant(Location loc, const IntTensor &t, Type et);

  /// Attribute accessors.
  const onnx::AttributeProto *attr(const onnx::NodeProto &node,
                                   llvm::StringRef name) const;
  int64_t attrInt(const onnx::NodeProto &node, llvm::StringRef name,
                  int64_t dflt) const;
  float attrFloat(const onnx::NodeProto &node, llvm::StringRef name,
                  float dflt) const;
  std::optional<SmallVector<int64_t>> attrInts(const onnx::NodeProto &node,
                                               llvm::StringRef name) const;

  /// Converts a TensorProto (initializer or Constant value) to an attribute;
  /// emits an error naming `what` on malformed data.
  FailureOr<ElementsAttr> convertTensor(const onnx::TensorProto &t,
                                        llvm::StringRef what, Location loc);

  /// Records the integer contents of a folded value.
  void setKnown(const std::string &name, IntTensor t) {
    known[name] = std::move(t);
  }

private:
  LogicalResult importNode(const onnx::NodeProto &node);

  llvm::StringMap<Value> values;
  std::unordered_map<std::string, IntTensor> known;
  std::unordered_map<std::string, const onnx::TypeProto *> types;
};

/// True when the operator table has an entry for op `opType` of `domain` at
/// opset `version` of that domain.
bool isSupportedOp(llvm::StringRef domain, llvm::StringRef opType,
                   int64_t version);

/// Converts one node (all inputs are available) with its operator table
/// entry. Defined in OpTable.cpp.
LogicalResult convertNode(GraphImporter &imp, const onnx::NodeProto &node);

/// Normalizes a possibly negative axis; emits an error when out of range.
FailureOr<int64_t> normalizeAxis(GraphImporter &imp,
                                 const onnx::NodeProto &node, int64_t axis,
                                 int64_t rank);

} // namespace quench::onnximport

#endif // QUENCH_LIB_FRONTEND_ONNX_IMPORTERIMPL_H
