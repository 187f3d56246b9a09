//===- ONNXImporter.cpp - ONNX graph to quench IR -------------------------===//
//
// Builds one `func.func` from a validated, shape-inferred ONNX graph:
// initializers and Constant nodes become `quench.constant` (large ones as
// `dense_resource` blobs), nodes are converted in topological order by
// their operator table entries (OpTable.h), and small integer computations
// on constants (the shape arithmetic exporters emit) are folded at import.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Verifier.h"

#include <set>

using namespace quench;
using namespace quench::onnximport;

GraphImporter::GraphImporter(MLIRContext *ctx, onnx::ModelProto &model,
                             ExternalTensors external, llvm::StringRef path)
    : ctx(ctx), builder(ctx), model(model), path(path.str()),
      mutableModel(model), external(std::move(external)) {
  for (const auto &imp : model.opset_import())
    if (imp.domain().empty() || imp.domain() == "ai.onnx")
      opset = imp.version();
  const onnx::GraphProto &g = model.graph();
  for (const auto &vi : g.input())
    types[vi.name()] = &vi.type();
  for (const auto &vi : g.value_info())
    types[vi.name()] = &vi.type();
  for (const auto &vi : g.output())
    types[vi.name()] = &vi.type();
}

int64_t GraphImporter::opsetOf(llvm::StringRef domain) const {
  if (domain.empty() || domain == "ai.onnx")
    return opset;
  int64_t version = 0;
  for (const auto &imp : model.opset_import())
    if (imp.domain() == domain)
      version = imp.version();
  return version;
}

Location GraphImporter::nodeLoc(const onnx::NodeProto &node) {
  std::string name = node.name().empty()
                         ? (node.output_size() ? node.output(0) : "")
                         : node.name();
  return NameLoc::get(StringAttr::get(ctx, name));
}

InFlightDiagnostic GraphImporter::nodeError(const onnx::NodeProto &node) {
  InFlightDiagnostic diag = emitError(nodeLoc(node));
  diag << "node '" << (node.name().empty() ? "<unnamed>" : node.name())
       << "' (" << node.op_type() << "): ";
  return diag;
}

bool GraphImporter::hasInput(const onnx::NodeProto &node, int i) const {
  return i < node.input_size() && !node.input(i).empty();
}

Value GraphImporter::input(const onnx::NodeProto &node, int i) {
  if (!hasInput(node, i))
    return nullptr;
  return values.lookup(node.input(i));
}

Value GraphImporter::output(const onnx::NodeProto &node, int i) {
  if (i >= node.output_size() || node.output(i).empty())
    return nullptr;
  return values.lookup(node.output(i));
}

static FailureOr<RankedTensorType> toTensorType(const onnx::TypeProto &t,
                                                MLIRContext *ctx) {
  if (!t.has_tensor_type() || !t.tensor_type().has_shape())
    return failure();
  Type et = convertElementType(t.tensor_type().elem_type(), ctx);
  if (!et)
    return failure();
  SmallVector<int64_t> shape;
  for (const auto &d : t.tensor_type().shape().dim())
    shape.push_back(d.has_dim_value() && d.dim_value() >= 0
                        ? d.dim_value()
                        : ShapedType::kDynamic);
  return RankedTensorType::get(shape, et);
}

/// A negative extent of `t`'s shape, as "-5 in dimension 1" (ONNX allows
/// none; inside the graph they are read as unknown, but a graph input or
/// output that declares one is malformed).
static std::optional<std::string> negativeDim(const onnx::TypeProto &t) {
  if (!t.has_tensor_type() || !t.tensor_type().has_shape())
    return std::nullopt;
  for (auto [i, d] : llvm::enumerate(t.tensor_type().shape().dim()))
    if (d.has_dim_value() && d.dim_value() < 0)
      return std::to_string(d.dim_value()) + " in dimension " +
             std::to_string(i);
  return std::nullopt;
}

/// Why `t` cannot become a ranked tensor type (for graph inputs/outputs).
static std::string typeProblem(const onnx::TypeProto &t, MLIRContext *ctx) {
  if (!t.has_tensor_type())
    return "is not a tensor (sequences, maps and optionals are not supported)";
  if (!convertElementType(t.tensor_type().elem_type(), ctx))
    return "has unsupported element type " +
           onnxTypeName(t.tensor_type().elem_type());
  return "has no known rank (give the model a shape, e.g. with ONNX shape "
         "inference, or re-export it with static ranks)";
}

FailureOr<RankedTensorType>
GraphImporter::outputType(const onnx::NodeProto &node, int i) {
  if (i >= node.output_size())
    return failure();
  auto it = types.find(node.output(i));
  if (it == types.end())
    return failure();
  return toTensorType(*it->second, ctx);
}

RankedTensorType GraphImporter::outputTypeOr(const onnx::NodeProto &node,
                                             int i, RankedTensorType fallback) {
  FailureOr<RankedTensorType> t = outputType(node, i);
  if (failed(t) || t->getRank() != fallback.getRank() ||
      t->getElementType() != fallback.getElementType())
    return fallback;
  // Take the more static of the two for every dimension.
  SmallVector<int64_t> shape;
  for (auto [a, b] : llvm::zip(t->getShape(), fallback.getShape()))
    shape.push_back(a != ShapedType::kDynamic ? a : b);
  return RankedTensorType::get(shape, fallback.getElementType());
}

void GraphImporter::setOutput(const onnx::NodeProto &node, int i, Value v) {
  if (i < node.output_size() && !node.output(i).empty())
    values[node.output(i)] = v;
}

std::optional<IntTensor> GraphImporter::knownInts(const onnx::NodeProto &node,
                                                  int i) {
  if (!hasInput(node, i))
    return std::nullopt;
  auto it = known.find(node.input(i));
  if (it != known.end())
    return it->second;
  Value v = values.lookup(node.input(i));
  if (!v)
    return std::nullopt;
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return std::nullopt;
  auto dense = dyn_cast<DenseIntElementsAttr>(cst.getValue());
  auto type = cast<RankedTensorType>(cst.getType());
  if (!dense && type.getElementType().isInteger() &&
      type.getNumElements() <= 4096) {
    // Resource-backed integer constant: read the raw bytes.
    std::optional<ArrayRef<char>> raw = getRawConstantData(cst.getValue());
    if (!raw)
      return std::nullopt;
    IntTensor t;
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    unsigned bytes = getStorageBytesPerElement(type.getElementType());
    bool isUnsigned = type.getElementType().isUnsignedInteger();
    for (int64_t e = 0; e < type.getNumElements(); ++e) {
      int64_t val = 0;
      const char *p = raw->data() + e * bytes;
      switch (bytes) {
      case 1: val = isUnsigned ? (int64_t)*(const uint8_t *)p : *(const int8_t *)p; break;
      case 2: val = isUnsigned ? (int64_t)*(const uint16_t *)p : *(const int16_t *)p; break;
      case 4: val = isUnsigned ? (int64_t)*(const uint32_t *)p : *(const int32_t *)p; break;
      default: std::memcpy(&val, p, 8); break;
      }
      t.data.push_back(val);
    }
    return t;
  }
  if (!dense || dense.getNumElements() > 4096)
    return std::nullopt;
  IntTensor t;
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  bool isUnsigned = type.getElementType().isUnsignedInteger();
  for (const APInt &a : dense.getValues<APInt>())
    t.data.push_back(isUnsigned || a.getBitWidth() == 1 ? (int64_t)a.getZExtValue()
                                                        : a.getSExtValue());
  return t;
}

std::optional<double> GraphImporter::knownScalar(const onnx::NodeProto &node,
                                                 int i) {
  Value v = input(node, i);
  if (!v)
    return std::nullopt;
  if (auto cst = v.getDefiningOp<ConstantOp>())
    return getUniformValue(cst.getValue());
  return std::nullopt;
}

Value GraphImporter::constant(Location loc, ElementsAttr attr) {
  return ConstantOp::create(builder, loc, cast<RankedTensorType>(attr.getType()),
                            attr);
}

Value GraphImporter::intConstant(Location loc, const IntTensor &t, Type et) {
  auto type = RankedTensorType::get(t.shape, et);
  SmallVector<APInt> vals;
  unsigned width = et.getIntOrFloatBitWidth();
  for (int64_t v : t.data)
    vals.push_back(APInt(width, (uint64_t)v, /*isSigned=*/true,
                         /*implicitTrunc=*/true));
  return constant(loc, DenseElementsAttr::get(type, vals));
}

const onnx::AttributeProto *
GraphImporter::attr(const onnx::NodeProto &node, llvm::StringRef name) const {
  for (const auto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t GraphImporter::attrInt(const onnx::NodeProto &node,
                               llvm::StringRef name, int64_t dflt) const {
  const auto *a = attr(node, name);
  return a ? a->i() : dflt;
}

float GraphImporter::attrFloat(const onnx::NodeProto &node,
                               llvm::StringRef name, float dflt) const {
  const auto *a = attr(node, name);
  return a ? a->f() : dflt;
}

std::optional<SmallVector<int64_t>>
GraphImporter::attrInts(const onnx::NodeProto &node,
                        llvm::StringRef name) const {
  const auto *a = attr(node, name);
  if (!a)
    return std::nullopt;
  return SmallVector<int64_t>(a->ints().begin(), a->ints().end());
}

/// Blob keys: identifier characters only, so that they print unquoted.
static std::string blobName(llvm::StringRef name) {
  std::string out;
  for (char c : name)
    out += (isalnum((unsigned char)c) || c == '_' || c == '.') ? c : '_';
  if (out.empty() || isdigit((unsigned char)out[0]))
    out = "w_" + out;
  return out;
}

template <typename T>
static void appendBytes(std::vector<char> &out, T v) {
  const char *p = reinterpret_cast<const char *>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

FailureOr<RankedTensorType>
GraphImporter::tensorType(const onnx::TensorProto &t, llvm::StringRef what,
                          Location loc) {
  Type et = convertElementType(t.data_type(), ctx);
  if (!et)
    return emitError(loc) << what << " has unsupported element type "
                          << onnxTypeName(t.data_type()),
           failure();
  SmallVector<int64_t> shape(t.dims().begin(), t.dims().end());
  for (int64_t d : shape)
    if (d < 0)
      return emitError(loc) << what << " has a negative dimension", failure();
  return RankedTensorType::get(shape, et);
}

FailureOr<ElementsAttr> GraphImporter::constantFromBytes(
    RankedTensorType type, ArrayRef<char> data,
    std::shared_ptr<const void> owner, llvm::StringRef what, Location loc) {
  Type et = type.getElementType();
  int64_t n = type.getNumElements();
  int64_t bytes = et.isInteger(1) ? 1 : getStorageBytesPerElement(et);
  if ((int64_t)data.size() != n * bytes)
    return emitError(loc) << what << " holds " << data.size()
                          << " bytes of data but its shape and type need "
                          << n * bytes,
           failure();
  if (et.isInteger(1)) {
    SmallVector<bool> bits;
    for (char c : data)
      bits.push_back(c != 0);
    return ElementsAttr(DenseElementsAttr::get(type, bits));
  }
  if (owner)
    return createBorrowedConstantAttr(type, data, std::move(owner),
                                      blobName(what));
  return createConstantAttr(type, data, blobName(what));
}

FailureOr<ElementsAttr>
GraphImporter::convertTensor(const onnx::TensorProto &t, llvm::StringRef what,
                             Location loc) {
  using TP = onnx::TensorProto;
  FailureOr<RankedTensorType> type = tensorType(t, what, loc);
  if (failed(type))
    return failure();
  if (t.has_raw_data())
    return constantFromBytes(*type,
                             ArrayRef<char>(t.raw_data().data(),
                                            t.raw_data().size()),
                             nullptr,
                             what, loc);
  Type et = type->getElementType();
  int64_t bytes = et.isInteger(1) ? 1 : getStorageBytesPerElement(et);
  std::vector<char> data;
  // Reserve for the values the typed fields hold, not for the declared
  // dims: hostile dims reserved terabytes before the element count check
  // below (onnx-import-fuzzer finding, regress-typed-data-huge-dims).
  size_t present = size_t(t.float_data_size()) + t.double_data_size() +
                   t.int64_data_size() + t.uint64_data_size() +
                   t.int32_data_size();
  data.reserve(present * bytes);
  switch (t.data_type()) {
  case TP::FLOAT:
    for (float v : t.float_data()) appendBytes(data, v);
    break;
  case TP::DOUBLE:
    for (double v : t.double_data()) appendBytes(data, v);
    break;
  case TP::INT64:
    for (int64_t v : t.int64_data()) appendBytes(data, v);
    break;
  case TP::UINT32: case TP::UINT64:
    for (uint64_t v : t.uint64_data())
      t.data_type() == TP::UINT32 ? appendBytes(data, (uint32_t)v)
                                  : appendBytes(data, v);
    break;
  case TP::INT32:
    for (int32_t v : t.int32_data()) appendBytes(data, v);
    break;
  case TP::INT16: case TP::UINT16: case TP::FLOAT16: case TP::BFLOAT16:
    for (int32_t v : t.int32_data()) appendBytes(data, (uint16_t)v);
    break;
  case TP::INT8: case TP::UINT8: case TP::BOOL:
    for (int32_t v : t.int32_data()) appendBytes(data, (uint8_t)v);
    break;
  default:
    break;
  }
  return constantFromBytes(*type, data, nullptr, what, loc);
}

FailureOr<ElementsAttr> GraphImporter::convertInitializer(int index,
                                                          llvm::StringRef what,
                                                          Location loc) {
  onnx::TensorProto &t = *mutableModel.mutable_graph()->mutable_initializer(index);
  auto ext = external.find(index);
  if (ext != external.end()) {
    FailureOr<RankedTensorType> type = tensorType(t, what, loc);
    if (failed(type))
      return failure();
    ExternalTensor e = std::move(ext->second);
    external.erase(ext);
    FailureOr<ElementsAttr> attr =
        constantFromBytes(*type, e.data, e.file, what, loc);
    // Pages only a copy (a misaligned tensor, i1) has read.
    releaseMappedPages(e.data);
    return attr;
  }
  if (!t.has_raw_data())
    return convertTensor(t, what, loc);
  // The blob takes the protobuf's string: the model holds each weight once.
  FailureOr<RankedTensorType> type = tensorType(t, what, loc);
  if (failed(type))
    return failure();
  auto bytes = std::make_shared<std::string>(std::move(*t.mutable_raw_data()));
  t.clear_raw_data();
  ArrayRef<char> data(bytes->data(), bytes->size());
  return constantFromBytes(*type, data, std::move(bytes), what, loc);
}

LogicalResult GraphImporter::importGraph(ModuleOp module,
                                         llvm::StringRef name) {
  const onnx::GraphProto &g = model.graph();
  Location fileLoc = FileLineColLoc::get(ctx, path, 0, 0);

  // Report every unsupported op at once, before building anything.
  SmallVector<std::string> unsupported;
  for (const auto &node : g.node())
    if (!isSupportedOp(node.domain(), node.op_type(),
                       opsetOf(node.domain())))
      unsupported.push_back(
          "'" + (node.name().empty() ? std::string("<unnamed>") : node.name()) +
          "' (" + (node.domain().empty() ? "" : node.domain() + ".") +
          node.op_type() + ")");
  if (!unsupported.empty()) {
    auto diag = emitError(fileLoc) << unsupported.size()
                                   << " node(s) use operators Quench does not "
                                      "support: ";
    llvm::interleave(unsupported, diag, ", ");
    return failure();
  }

  std::set<std::string> initNames;
  for (const auto &t : g.initializer())
    initNames.insert(t.name());

  SmallVector<Type> argTypes, resultTypes;
  SmallVector<std::string> argNames;
  for (const auto &in : g.input()) {
    if (initNames.count(in.name()))
      continue;
    if (std::optional<std::string> neg = negativeDim(in.type()))
      return emitError(fileLoc) << "graph input '" << in.name()
                                << "' has a negative extent (" << *neg
                                << "); use a symbolic dimension for an "
                                   "unknown size";
    FailureOr<RankedTensorType> t = toTensorType(in.type(), ctx);
    if (failed(t))
      return emitError(fileLoc) << "graph input '" << in.name() << "' "
                                << typeProblem(in.type(), ctx);
    argTypes.push_back(*t);
    argNames.push_back(in.name());
  }
  for (const auto &out : g.output()) {
    if (std::optional<std::string> neg = negativeDim(out.type()))
      return emitError(fileLoc) << "graph output '" << out.name()
                                << "' has a negative extent (" << *neg
                                << "); use a symbolic dimension for an "
                                   "unknown size";
    FailureOr<RankedTensorType> t = toTensorType(out.type(), ctx);
    if (failed(t))
      return emitError(fileLoc) << "graph output '" << out.name() << "' "
                                << typeProblem(out.type(), ctx);
    resultTypes.push_back(*t);
  }

  builder.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(builder, fileLoc, name,
                                   builder.getFunctionType(argTypes,
                                                           resultTypes));
  Block *entry = func.addEntryBlock();
  for (auto [i, n] : llvm::enumerate(argNames)) {
    func.setArgAttr(i, QuenchDialect::getNameAttrName(),
                    builder.getStringAttr(n));
    values[n] = entry->getArgument(i);
  }
  for (auto [i, out] : llvm::enumerate(g.output()))
    func.setResultAttr(i, QuenchDialect::getNameAttrName(),
                       builder.getStringAttr(out.name()));
  builder.setInsertionPointToStart(entry);

  for (int i = 0, e = g.initializer_size(); i < e; ++i) {
    const std::string &name = g.initializer(i).name();
    Location loc = NameLoc::get(StringAttr::get(ctx, name));
    FailureOr<ElementsAttr> attr =
        convertInitializer(i, "initializer '" + name + "'", loc);
    if (failed(attr))
      return failure();
    values[name] = constant(loc, *attr);
  }

  for (const auto &node : g.node()) {
    for (int i = 0; i < node.input_size(); ++i)
      if (!node.input(i).empty() && !values.count(node.input(i)))
        return nodeError(node) << "input '" << node.input(i)
                               << "' is not produced by any earlier node "
                                  "(the graph is not topologically sorted)";
    if (failed(importNode(node)))
      return failure();
  }

  SmallVector<Value> results;
  for (const auto &out : g.output()) {
    Value v = values.lookup(out.name());
    if (!v)
      return emitError(fileLoc) << "graph output '" << out.name()
                                << "' is not produced by any node";
    results.push_back(v);
  }
  // Inference may have refined the declared output types (or the reverse):
  // use what the body produces.
  func.setType(builder.getFunctionType(argTypes, ValueRange(results).getTypes()));
  func::ReturnOp::create(builder, fileLoc, results);
  return success();
}

LogicalResult GraphImporter::importNode(const onnx::NodeProto &node) {
  if (failed(convertNode(*this, node)))
    return failure();
  for (int i = 0; i < node.output_size(); ++i)
    if (!node.output(i).empty() && !values.count(node.output(i)))
      return nodeError(node) << "output " << i << " ('" << node.output(i)
                             << "') is not supported by the importer";
  return success();
}

/// The bytes of a tensor of static `shape` and element type `et`; none
/// when the element count or the byte size overflows 64 bits.
static std::optional<uint64_t> staticTensorBytes(ArrayRef<int64_t> shape,
                                                 Type et) {
  uint64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return uint64_t(0); // dynamic: checked at run time, not here
    if (__builtin_mul_overflow(count, (uint64_t)d, &count))
      return std::nullopt;
  }
  uint64_t bits = et.isIntOrFloat() ? et.getIntOrFloatBitWidth() : 64;
  uint64_t totalBits;
  if (__builtin_mul_overflow(count, bits, &totalBits))
    return std::nullopt;
  return (totalBits + 7) / 8;
}

/// Every statically shaped tensor the import produced (graph inputs, node
/// results, constants) within `limit` bytes: a declared extent of 2^40 or
/// an element count that overflows is a malformed or hostile model, not
/// one to compile (docs/reliability.md). One error, on the first such
/// value.
static LogicalResult checkTensorSizes(ModuleOp module, uint64_t limit) {
  auto check = [&](Value v, Location loc, StringRef what) -> LogicalResult {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    if (!t)
      return success();
    std::optional<uint64_t> bytes =
        staticTensorBytes(t.getShape(), t.getElementType());
    if (bytes && *bytes <= limit)
      return success();
    InFlightDiagnostic d = emitError(loc) << what << " of type " << t;
    if (!bytes)
      d << " has a size in bytes that does not fit in 64 bits";
    else
      d << " would take " << *bytes << " bytes, above the limit of "
        << limit << " (--max-tensor-bytes)";
    return failure();
  };
  for (auto func : module.getOps<func::FuncOp>())
    for (BlockArgument a : func.getArguments()) {
      auto name = func.getArgAttrOfType<StringAttr>(a.getArgNumber(),
                                                    "quench.name");
      std::string what =
          name ? "graph input '" + name.str() + "'"
               : "graph input " + std::to_string(a.getArgNumber());
      if (failed(check(a, func.getLoc(), what)))
        return failure();
    }
  WalkResult r = module.walk([&](Operation *op) {
    for (Value v : op->getResults())
      if (failed(check(v, op->getLoc(), "the result")))
        return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return failure(r.wasInterrupted());
}

OwningOpRef<ModuleOp> quench::importONNXFile(llvm::StringRef path,
                                             MLIRContext *context,
                                             const ONNXImportOptions &options) {
  context->loadDialect<QuenchDialect, func::FuncDialect>();
  Location fileLoc = FileLineColLoc::get(context, path, 0, 0);
  auto model = std::make_unique<onnx::ModelProto>();
  onnximport::ExternalTensors external;
  std::string err;
  try {
    err = onnximport::loadModel(path, options, *model, external);
  } catch (const std::exception &e) {
    err = "'" + path.str() + "': " + onnximport::oneLine(e.what());
  }
  if (!err.empty()) {
    emitError(fileLoc) << err;
    return nullptr;
  }
  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  try {
    GraphImporter importer(context, *model, std::move(external), path);
    if (failed(importer.importGraph(*module, options.functionName)))
      return nullptr;
  } catch (const std::exception &e) {
    emitError(fileLoc) << "import failed: " << onnximport::oneLine(e.what());
    return nullptr;
  }
  if (failed(checkTensorSizes(*module, options.maxTensorBytes)))
    return nullptr;
  if (failed(verify(*module)))
    return nullptr;
  return module;
}
