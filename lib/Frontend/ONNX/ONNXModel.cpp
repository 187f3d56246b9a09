//===- ONNXModel.cpp - load, validate and type an ONNX model --------------===//
//
// Everything that happens before IR is built: reading the file (binary or
// textual), resolving external data safely, the opset check, the ONNX
// checker, `--shape` specialization and ONNX shape inference. libonnx and
// protobuf report problems by throwing; every call is guarded here and turned
// into one message.
//
//===----------------------------------------------------------------------===//

#include "ImporterImpl.h"

#include "quench/Support/OutOfMemory.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include "onnx/checker.h"
#include "onnx/defs/parser.h"
#include "onnx/shape_inference/implementation.h"

#include <google/protobuf/io/zero_copy_stream.h>

#include <map>

using namespace quench;
using namespace quench::onnximport;

Type onnximport::convertElementType(int32_t t, MLIRContext *ctx) {
  using TP = onnx::TensorProto;
  Builder b(ctx);
  switch (t) {
  case TP::FLOAT: return b.getF32Type();
  case TP::FLOAT16: return b.getF16Type();
  case TP::BFLOAT16: return b.getBF16Type();
  case TP::DOUBLE: return b.getF64Type();
  case TP::INT8: return b.getIntegerType(8);
  case TP::INT16: return b.getIntegerType(16);
  case TP::INT32: return b.getIntegerType(32);
  case TP::INT64: return b.getIntegerType(64);
  case TP::UINT8: return b.getIntegerType(8, /*isSigned=*/false);
  case TP::UINT16: return b.getIntegerType(16, false);
  case TP::UINT32: return b.getIntegerType(32, false);
  case TP::UINT64: return b.getIntegerType(64, false);
  case TP::BOOL: return b.getI1Type();
  default: return nullptr;
  }
}

std::string onnximport::oneLine(llvm::StringRef message) {
  std::string out;
  bool space = false;
  for (char c : message.trim()) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = true;
      continue;
    }
    if (space && !out.empty())
      out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::string onnximport::onnxTypeName(int32_t t) {
  if (onnx::TensorProto_DataType_IsValid(t))
    return onnx::TensorProto_DataType_Name(t);
  return "dtype " + std::to_string(t);
}

/// Resolves `location` against `modelDir`, refusing absolute paths and any
/// path that leaves the model's directory (lexically or through links).
static std::string resolveExternalPath(llvm::StringRef modelDir,
                                       llvm::StringRef location,
                                       std::string &error) {
  if (location.empty() || llvm::sys::path::is_absolute(location)) {
    error = "external data location '" + location.str() +
            "' must be a relative path inside the model's directory";
    return {};
  }
  for (auto it = llvm::sys::path::begin(location),
            e = llvm::sys::path::end(location);
       it != e; ++it)
    if (*it == "..") {
      error = "external data location '" + location.str() +
              "' leaves the model's directory";
      return {};
    }
  SmallString<256> full(modelDir);
  llvm::sys::path::append(full, location);
  SmallString<256> realDir, realFile;
  if (llvm::sys::fs::real_path(modelDir, realDir) ||
      llvm::sys::fs::real_path(full, realFile)) {
    error = "external data file '" + std::string(full) + "' does not exist";
    return {};
  }
  if (!llvm::StringRef(realFile).starts_with(std::string(realDir) + "/")) {
    error = "external data location '" + location.str() +
            "' resolves outside the model's directory";
    return {};
  }
  // A FIFO or device would block or never end: weights are regular files.
  llvm::sys::fs::file_status status;
  if (llvm::sys::fs::status(realFile, status) ||
      status.type() != llvm::sys::fs::file_type::regular_file) {
    error = "external data file '" + std::string(full) +
            "' is not a regular file";
    return {};
  }
  return std::string(realFile);
}

/// The bytes of external data the graph's initializers declare (their
/// `length` entries), for the out-of-memory estimate (OutOfMemory.h).
static uint64_t declaredExternalDataBytes(const onnx::GraphProto &graph) {
  uint64_t total = 0;
  for (const onnx::TensorProto &t : graph.initializer())
    if (t.data_location() == onnx::TensorProto::EXTERNAL)
      for (const auto &kv : t.external_data())
        if (kv.key() == "length")
          total += std::strtoull(kv.value().c_str(), nullptr, 10);
  return total;
}

/// Maps the external data files of the graph's initializers (each file
/// once): copies small tensors into the model (shape inference may need
/// their values) and leaves large ones in the mapping, recorded in
/// `external`, without reading them.
static std::string loadExternalData(llvm::StringRef modelPath,
                                    onnx::GraphProto &graph,
                                    ExternalTensors &external) {
  SmallString<256> dir(modelPath);
  llvm::sys::path::remove_filename(dir);
  if (dir.empty())
    dir = ".";
  std::map<std::string, std::shared_ptr<MappedFile>> files;
  for (int i = 0, e = graph.initializer_size(); i < e; ++i) {
    onnx::TensorProto &t = *graph.mutable_initializer(i);
    if (t.data_location() != onnx::TensorProto::EXTERNAL)
      continue;
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto &kv : t.external_data()) {
      if (kv.key() == "location")
        location = kv.value();
      else if (kv.key() == "offset" || kv.key() == "length") {
        char *end = nullptr;
        long long v = std::strtoll(kv.value().c_str(), &end, 10);
        if (kv.value().empty() || *end != '\0' || v < 0)
          return "initializer '" + t.name() + "' has a malformed external " +
                 kv.key() + " '" + kv.value() + "'";
        (kv.key() == "offset" ? offset : length) = v;
      }
    }
    std::string error;
    std::string file = resolveExternalPath(dir, location, error);
    if (file.empty())
      return "initializer '" + t.name() + "': " + error;
    std::shared_ptr<MappedFile> &mapping = files[file];
    if (!mapping) {
      llvm::Expected<std::shared_ptr<MappedFile>> m = MappedFile::open(file);
      if (!m) {
        llvm::consumeError(m.takeError());
        return "cannot read external data file '" + file + "'";
      }
      mapping = std::move(*m);
    }
    uint64_t size = mapping->data().size();
    if (length < 0)
      length = (int64_t)size - offset;
    if (offset > (int64_t)size || length < 0 ||
        (uint64_t)(offset + length) > size)
      return "initializer '" + t.name() + "': external data range [" +
             std::to_string(offset) + ", " + std::to_string(offset + length) +
             ") exceeds the " + std::to_string(size) + " bytes of '" +
             location + "'";
    llvm::ArrayRef<char> bytes =
        mapping->data().slice((size_t)offset, (size_t)length);
    if ((size_t)length < kMinMappedExternalBytes) {
      t.set_raw_data(bytes.data(), bytes.size());
      t.clear_external_data();
      t.set_data_location(onnx::TensorProto::DEFAULT);
      continue;
    }
    external[i] = {bytes, mapping};
    // The tensor stays EXTERNAL for the checker, which (libonnx 1.12) looks
    // for the file relative to the current directory: give it the resolved
    // path (checked above to lie inside the model's directory).
    for (auto &kv : *t.mutable_external_data())
      if (kv.key() == "location")
        kv.set_value(file);
  }
  return {};
}

static std::string applyShapeOverrides(const ONNXImportOptions &options,
                                       onnx::GraphProto &graph) {
  std::set<std::string> inits;
  for (const auto &t : graph.initializer())
    inits.insert(t.name());
  for (const auto &entry : options.inputShapes) {
    onnx::ValueInfoProto *target = nullptr;
    std::string names;
    for (onnx::ValueInfoProto &in : *graph.mutable_input()) {
      if (inits.count(in.name()))
        continue;
      names += (names.empty() ? "" : ", ") + in.name();
      if (in.name() == entry.getKey())
        target = &in;
    }
    if (!target)
      return "--shape names '" + entry.getKey().str() +
             "', which is not a graph input (inputs: " + names + ")";
    if (!target->type().has_tensor_type())
      return "--shape: input '" + entry.getKey().str() + "' is not a tensor";
    auto *shape = target->mutable_type()->mutable_tensor_type()->mutable_shape();
    const std::vector<int64_t> &dims = entry.getValue();
    if (shape->dim_size() != 0 && shape->dim_size() != (int)dims.size())
      return "--shape gives " + std::to_string(dims.size()) +
             " dimensions for input '" + entry.getKey().str() + "' of rank " +
             std::to_string(shape->dim_size());
    for (int i = 0; i < shape->dim_size(); ++i) {
      const auto &dim = shape->dim(i);
      if (dim.has_dim_value() && dim.dim_value() != dims[i])
        return "--shape gives size " + std::to_string(dims[i]) +
               " to dimension " + std::to_string(i) + " of input '" +
               entry.getKey().str() + "', which the model fixes at " +
               std::to_string(dim.dim_value());
    }
    shape->clear_dim();
    for (int64_t d : dims)
      shape->add_dim()->set_dim_value(d);
  }
  // Values inferred before the override may now disagree: drop them.
  graph.clear_value_info();
  return {};
}

namespace {
/// The bytes of a mapped file in chunks, dropping the resident pages of
/// chunks the parser has moved past: parsing a model with inline weights
/// holds the parsed copy, not also the file's.
class ReleasingInputStream : public google::protobuf::io::ZeroCopyInputStream {
public:
  explicit ReleasingInputStream(llvm::ArrayRef<char> data) : data(data) {}
  bool Next(const void **out, int *size) override {
    if (pos >= data.size())
      return false;
    // One chunk of margin behind the parser (releasing is always safe: a
    // read faults the page in again).
    if (pos >= released + 2 * kChunk) {
      releaseMappedPages(data.slice(released, pos - kChunk - released));
      released = pos - kChunk;
    }
    size_t n = std::min(kChunk, data.size() - pos);
    *out = data.data() + pos;
    *size = (int)n;
    pos += n;
    return true;
  }
  void BackUp(int count) override { pos -= (size_t)count; }
  bool Skip(int count) override {
    if ((size_t)count > data.size() - pos) {
      pos = data.size();
      return false;
    }
    pos += (size_t)count;
    return true;
  }
  int64_t ByteCount() const override { return (int64_t)pos; }

private:
  static constexpr size_t kChunk = 8 << 20;
  llvm::ArrayRef<char> data;
  size_t pos = 0, released = 0;
};
} // namespace

std::string onnximport::loadModel(llvm::StringRef path,
                                  const ONNXImportOptions &options,
                                  onnx::ModelProto &model,
                                  ExternalTensors &external) {
  // Binary models are parsed from a mapping whose pages are dropped as the
  // parser goes; textual ones (small), and files that cannot be mapped
  // (pipes), from a buffer.
  std::shared_ptr<MappedFile> mapped;
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  llvm::StringRef data;
  if (llvm::Expected<std::shared_ptr<MappedFile>> m = MappedFile::open(path)) {
    mapped = std::move(*m);
    data = llvm::StringRef(mapped->data().data(), mapped->data().size());
  } else {
    llvm::consumeError(m.takeError());
  }
  bool textual = path.ends_with(".onnxtxt") || data.ltrim().starts_with("<");
  if (!mapped || textual) {
    auto bufOr = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                             /*RequiresNullTerminator=*/true);
    if (!bufOr)
      return "cannot read '" + path.str() + "': " + bufOr.getError().message();
    buffer = std::move(*bufOr);
    mapped.reset();
    data = buffer->getBuffer();
    textual = path.ends_with(".onnxtxt") || data.ltrim().starts_with("<");
  }
  if (data.empty())
    return "'" + path.str() + "' is empty";

  try {
    if (textual) {
      onnx::OnnxParser parser(data.data());
      auto status = parser.Parse(model);
      if (!status.IsOK())
        return "'" + path.str() +
               "' is not valid ONNX textual syntax: " + oneLine(status.ErrorMessage());
    } else if (data.size() > (size_t)INT_MAX ||
               !(mapped ? [&] {
                   ReleasingInputStream in(mapped->data());
                   return model.ParseFromZeroCopyStream(&in);
                 }()
                        : model.ParseFromArray(data.data(), (int)data.size()))) {
      return "'" + path.str() +
             "' is not a valid ONNX model (protobuf parsing failed: the file "
             "is truncated or not ONNX)";
    }
  } catch (const std::exception &e) {
    return "'" + path.str() + "' could not be parsed: " + oneLine(e.what());
  }
  mapped.reset();
  buffer.reset();
  if (!model.has_graph() || model.graph().node_size() == 0)
    return "'" + path.str() + "' has no graph nodes";

  // Opset: the default domain must be within what the importer implements.
  bool sawDefault = false;
  for (const auto &imp : model.opset_import()) {
    if (imp.domain().empty() || imp.domain() == "ai.onnx") {
      sawDefault = true;
      if (imp.version() < kMinDefaultOpset || imp.version() > kMaxDefaultOpset)
        return "'" + path.str() + "' uses ONNX opset " +
               std::to_string(imp.version()) + "; Quench imports opsets " +
               std::to_string(kMinDefaultOpset) + " to " +
               std::to_string(kMaxDefaultOpset) + " (re-export with " +
               "opset_version=" + std::to_string(kMinDefaultOpset) + ".." +
               std::to_string(kMaxDefaultOpset) + ")";
    }
  }
  if (!sawDefault)
    return "'" + path.str() + "' does not import the default ONNX domain";

  quench::addExternalWeightBytes(declaredExternalDataBytes(model.graph()));
  if (std::string err =
          loadExternalData(path, *model.mutable_graph(), external);
      !err.empty())
    return err;

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception &e) {
    return "'" + path.str() + "' fails the ONNX checker: " + oneLine(e.what());
  }

  if (std::string err = applyShapeOverrides(options, *model.mutable_graph());
      !err.empty())
    return err;

  try {
    onnx::ShapeInferenceOptions opts(/*check_type=*/false, /*error_mode=*/0,
                                     /*enable_data_propagation=*/true);
    onnx::shape_inference::InferShapes(
        model, onnx::OpSchemaRegistry::Instance(), opts);
  } catch (const std::exception &e) {
    return "ONNX shape inference failed on '" + path.str() +
           "': " + oneLine(e.what());
  }
  return {};
}

std::string quench::parseShapeOverride(llvm::StringRef spec,
                                       ONNXImportOptions &opts) {
  SmallVector<llvm::StringRef> items;
  spec.split(items, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [name, dims] = item.split('=');
    if (name.empty() || dims.empty())
      return "malformed --shape '" + item.str() + "' (expected NAME=1x32)";
    std::vector<int64_t> shape;
    SmallVector<llvm::StringRef> parts;
    dims.split(parts, 'x');
    for (llvm::StringRef p : parts) {
      int64_t d;
      if (p.getAsInteger(10, d) || d < 0)
        return "malformed --shape '" + item.str() + "': '" + p.str() +
               "' is not a non-negative dimension";
      shape.push_back(d);
    }
    opts.inputShapes[name] = shape;
  }
  return {};
}
