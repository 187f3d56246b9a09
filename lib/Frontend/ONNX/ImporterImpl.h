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
#include "quench/Support/MappedFile.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringMap.h"

#include "onnx/onnx_pb.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace quench::onnximport {

/// The default-domain opsets the importer implements: the loader refuses
/// models outside them, and the operator table's default-domain entries
/// cover them unless an entry says otherwise (OpTable.h).
inline constexpr int64_t kMinDefaultOpset = 13;
inline constexpr int64_t kMaxDefaultOpset = 17;

/// External initializers of at least this many bytes are not read at load
/// time: they stay in their file's mapping (ExternalTensor). Smaller ones
/// are copied into the model like inline data, so that ONNX shape inference
/// sees the values of shape-like initializers.
inline constexpr size_t kMinMappedExternalBytes = 64 * 1024;

/// The bytes of a large external initializer, inside the mapping of its
/// data file (one mapping per file, shared by its tensors).
struct ExternalTensor {
  llvm::ArrayRef<char> data;
  std::shared_ptr<MappedFile> file;
};
/// By index in the graph's initializer list.
using ExternalTensors = std::unordered_map<int, ExternalTensor>;

/// Loads, validates (checker) and types (shape inference) a model. Maps
/// external data files: small external initializers are copied into the
/// model, large ones are returned in `external` and stay EXTERNAL in the
/// model (with their location made absolute for the checker). Returns an
/// error message on failure.
std::string loadModel(llvm::StringRef path, const ONNXImportOptions &options,
                      onnx::ModelProto &model, ExternalTensors &external);

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

/// The most elements of an integer tensor that the importer folds into a
/// known value or constant (2^16): shape arithmetic, not data.
constexpr int64_t kMaxFoldedElements = int64_t(1) << 16;

/// The element count of the static `shape`; none when a dim is negative or
/// the product overflows 64 bits.
inline std::optional<uint64_t> staticElementCount(ArrayRef<int64_t> shape) {
  uint64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, uint64_t(d), &count))
      return std::nullopt;
  return count;
}

/// Builds the quench IR for one graph.
class GraphImporter {
public:
  /// `model`'s inline initializer data is moved into the IR by
  /// importGraph; `external` holds its large external initializers.
  GraphImporter(MLIRContext *ctx, onnx::ModelProto &model,
                ExternalTensors external, llvm::StringRef path);

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
  /// Converts initializer `index` without copying its data: external data
  /// stays in its mapping, inline raw data is moved out of the model.
  FailureOr<ElementsAttr> convertInitializer(int index, llvm::StringRef what,
                                             Location loc);
  /// The type of `t`; emits an error naming `what` when unsupported.
  FailureOr<RankedTensorType> tensorType(const onnx::TensorProto &t,
                                         llvm::StringRef what, Location loc);
  /// A constant of `type` from its row-major bytes (one byte per i1), kept
  /// where they are when `owner` owns them, copied otherwise.
  FailureOr<ElementsAttr> constantFromBytes(RankedTensorType type,
                                            llvm::ArrayRef<char> data,
                                            std::shared_ptr<const void> owner,
                                            llvm::StringRef what, Location loc);

  onnx::ModelProto &mutableModel;
  ExternalTensors external;

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
