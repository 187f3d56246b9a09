//===- GGUFImporter.cpp - GGUF decoder models to quench ops ---------------===//
//
// Activations are 2-D [seq, features] inside the graph (the batch is 1);
// attention reshapes to [1, heads, seq, head_dim] and is written as exports
// write it (matmul, scale, additive causal mask built from position ranges,
// softmax, matmul; kv heads expanded for GQA), which quench-fuse-attention
// fuses and quench-derive-kv-cache turns into a generation model. The sequence length is a
// run-time value: every reshape with it takes a shape operand built from
// shape_of(input_ids). Everything about the model is checked (metadata,
// every tensor's presence, type and shape) before anything is built, so
// that a bad file gives one error and no partial module.
//
// RoPE: `llama` files rotate pairs (x[2i], x[2i+1]) (llama.cpp's "norm"
// mode, the layout its converter permutes Hugging Face's q/k rows into),
// `qwen2` pairs (x[i], x[i + d/2]) ("neox" mode). Angle of pair i at
// position p: p * freq_scale * base^(-2i/d) / freq_factor[i] (inverse
// frequencies computed here in double, rounded once to f32).
//
//===----------------------------------------------------------------------===//

#include "quench/Frontend/GGUF/GGUFImporter.h"

#include "quench/Dialect/Quench/IR/ModuleAttrs.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Frontend/GGUF/GGUFReader.h"
#include "quench/Quant/GGMLBlocks.h"
#include "quench/Quant/RTN.h"
#include "quench/Support/MappedFile.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace quench;
namespace qquant = quench::quant;
using qquant::GGMLType;

namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;

/// The model's hyperparameters, from the metadata.
struct Config {
  std::string arch;
  int64_t dim = 0, layers = 0, ff = 0, heads = 0, kvHeads = 0, headDim = 0;
  int64_t vocab = 0, ropeDims = 0;
  double eps = 0, ropeBase = 10000, freqScale = 1;
  bool neoxRope = false; ///< pairs (i, i + d/2) instead of (2i, 2i + 1)
  bool qkvBias = false;
  bool tiedOutput = false;
};

/// A block-quantized weight as matmul_nbits / dequantize_nbits operands.
struct NBitsWeight {
  qquant::NBitsForm form;
  int64_t rows = 0, k = 0, blocks = 0;
  Value codes;  ///< ui8 [rows, blocks, group * bits / 8]
  Value scales; ///< f16 (when exact) or f32 [rows, blocks]
  Value mins;   ///< f32 [rows, blocks] or null
};

class Importer {
public:
  Importer(MLIRContext *ctx, const gguf::File &file,
           std::shared_ptr<MappedFile> mapping, Location loc)
      : ctx(ctx), b(ctx), loc(loc), file(file),
        mapping(std::move(mapping)) {}

  LogicalResult readConfig();
  LogicalResult checkTensors();
  void build(ModuleOp module);

private:
  // Metadata.
  InFlightDiagnostic error() { return emitError(loc); }
  /// The metadata value of `key`; nullptr when it is absent and the caller
  /// has a default, an error naming the key when it is absent otherwise.
  FailureOr<const gguf::Value *> lookup(StringRef key, bool hasDefault);
  FailureOr<int64_t> getInt(StringRef key, std::optional<int64_t> dflt = {});
  FailureOr<double> getFloat(StringRef key, std::optional<double> dflt = {});
  FailureOr<std::string> getString(StringRef key,
                                   std::optional<std::string> dflt = {});
  LogicalResult expectTensor(const std::string &name,
                             ArrayRef<int64_t> shape, bool optional = false);

  // Graph building.
  RankedTensorType f32(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  }
  Value constI64(ArrayRef<int64_t> values, ArrayRef<int64_t> shape);
  Value constF32(ArrayRef<float> values, ArrayRef<int64_t> shape);
  Value shapeOperand(ArrayRef<int64_t> dims);
  Value reshape(Value x, ArrayRef<int64_t> dims);
  Value floatTensor(const gguf::TensorInfo &t, ArrayRef<int64_t> shape);
  Value smallF32(const gguf::TensorInfo &t);
  NBitsWeight &nbits(const gguf::TensorInfo &t);
  Value linear(Value x, const std::string &name, Value bias = nullptr);
  Value linearAt(Value x, const gguf::TensorInfo &t, StringRef layer,
                 Value bias);
  Value embedding(Value ids, const std::string &name);
  Value rope(Value x, int64_t heads, Value cos, Value sin);
  Value block(Value x, int64_t layer, Value cos, Value sin, Value mask);

  const gguf::TensorInfo &tensor(const std::string &name) {
    return *file.tensor(name);
  }

  MLIRContext *ctx;
  OpBuilder b;
  Location loc;
  const gguf::File &file;
  std::shared_ptr<MappedFile> mapping;
  Config cfg;
  Value seq1; ///< tensor<1xi64>: the sequence length
  llvm::StringMap<Value> floatWeights;
  llvm::StringMap<NBitsWeight> nbitsWeights;
};

FailureOr<const gguf::Value *> Importer::lookup(StringRef key,
                                                bool hasDefault) {
  if (const gguf::Value *v = file.find(key))
    return v;
  if (hasDefault)
    return static_cast<const gguf::Value *>(nullptr);
  return error() << "GGUF metadata key '" << key << "' is missing", failure();
}

FailureOr<int64_t> Importer::getInt(StringRef key,
                                    std::optional<int64_t> dflt) {
  FailureOr<const gguf::Value *> found = lookup(key, dflt.has_value());
  if (failed(found))
    return failure();
  if (!*found)
    return *dflt;
  const gguf::Value *v = *found;
  switch (v->type) {
  case gguf::ValueType::U8: case gguf::ValueType::U16:
  case gguf::ValueType::U32: case gguf::ValueType::U64:
    if (v->u > uint64_t(1) << 40)
      break;
    return int64_t(v->u);
  case gguf::ValueType::I8: case gguf::ValueType::I16:
  case gguf::ValueType::I32: case gguf::ValueType::I64:
    if (v->i < 0 || v->i > int64_t(1) << 40)
      break;
    return v->i;
  default:
    return error() << "GGUF metadata '" << key << "' must be an integer, got "
                   << gguf::valueTypeName(v->type),
           failure();
  }
  return error() << "GGUF metadata '" << key << "' is out of range",
         failure();
}

FailureOr<double> Importer::getFloat(StringRef key,
                                     std::optional<double> dflt) {
  FailureOr<const gguf::Value *> found = lookup(key, dflt.has_value());
  if (failed(found))
    return failure();
  if (!*found)
    return *dflt;
  const gguf::Value *v = *found;
  if (v->type != gguf::ValueType::F32 && v->type != gguf::ValueType::F64)
    return error() << "GGUF metadata '" << key << "' must be a float, got "
                   << gguf::valueTypeName(v->type),
           failure();
  if (!std::isfinite(v->f))
    return error() << "GGUF metadata '" << key << "' is not finite",
           failure();
  return v->f;
}

FailureOr<std::string> Importer::getString(StringRef key,
                                           std::optional<std::string> dflt) {
  FailureOr<const gguf::Value *> found = lookup(key, dflt.has_value());
  if (failed(found))
    return failure();
  if (!*found)
    return *dflt;
  const gguf::Value *v = *found;
  if (v->type != gguf::ValueType::String)
    return error() << "GGUF metadata '" << key << "' must be a string, got "
                   << gguf::valueTypeName(v->type),
           failure();
  return v->str.str();
}

LogicalResult Importer::readConfig() {
  FailureOr<std::string> arch = getString("general.architecture");
  if (failed(arch))
    return failure();
  cfg.arch = *arch;
  if (cfg.arch != "llama" && cfg.arch != "qwen2")
    return error() << "GGUF architecture '" << cfg.arch
                   << "' is not supported (Quench imports llama and qwen2)",
           failure();
  std::string p = cfg.arch + ".";
  auto i = [&](StringRef key, int64_t &out,
               std::optional<int64_t> dflt = {}) -> LogicalResult {
    FailureOr<int64_t> v = getInt(p + key.str(), dflt);
    if (failed(v))
      return failure();
    out = *v;
    return success();
  };
  if (failed(i("embedding_length", cfg.dim)) ||
      failed(i("block_count", cfg.layers)) ||
      failed(i("feed_forward_length", cfg.ff)) ||
      failed(i("attention.head_count", cfg.heads)))
    return failure();
  if (failed(i("attention.head_count_kv", cfg.kvHeads, cfg.heads)))
    return failure();
  if (cfg.dim <= 0 || cfg.layers <= 0 || cfg.ff <= 0 || cfg.heads <= 0 ||
      cfg.kvHeads <= 0)
    return error() << "GGUF model dimensions must be positive", failure();
  if (cfg.dim % cfg.heads != 0 || cfg.heads % cfg.kvHeads != 0)
    return error() << "GGUF model: embedding_length " << cfg.dim
                   << " and head counts " << cfg.heads << "/" << cfg.kvHeads
                   << " do not divide",
           failure();
  cfg.headDim = cfg.dim / cfg.heads;
  int64_t keyLen, valueLen;
  if (failed(i("attention.key_length", keyLen, cfg.headDim)) ||
      failed(i("attention.value_length", valueLen, cfg.headDim)))
    return failure();
  if (keyLen != cfg.headDim || valueLen != cfg.headDim)
    return error() << "GGUF model: key/value length " << keyLen << "/"
                   << valueLen << " other than embedding_length / "
                   << "head_count is not supported",
           failure();
  if (failed(i("rope.dimension_count", cfg.ropeDims, cfg.headDim)))
    return failure();
  if (cfg.ropeDims != cfg.headDim || cfg.headDim % 2 != 0)
    return error() << "GGUF model: RoPE over " << cfg.ropeDims
                   << " of " << cfg.headDim
                   << " head dimensions (partial or odd) is not supported",
           failure();
  FailureOr<double> eps = getFloat(p + "attention.layer_norm_rms_epsilon");
  FailureOr<double> base = getFloat(p + "rope.freq_base", 10000.0);
  if (failed(eps) || failed(base))
    return failure();
  if (!(*eps >= 0) || !(*base > 0))
    return error() << "GGUF model: bad RMSNorm epsilon or RoPE base",
           failure();
  cfg.eps = *eps;
  cfg.ropeBase = *base;
  FailureOr<std::string> scaling = getString(p + "rope.scaling.type", "none");
  if (failed(scaling))
    return failure();
  if (*scaling == "linear") {
    FailureOr<double> factor = getFloat(p + "rope.scaling.factor");
    if (failed(factor))
      return failure();
    if (!(*factor > 0))
      return error() << "GGUF model: rope.scaling.factor must be positive",
             failure();
    cfg.freqScale = 1.0 / *factor;
  } else if (*scaling != "none") {
    return error() << "GGUF RoPE scaling '" << *scaling
                   << "' is not supported (none and linear are)",
           failure();
  }
  cfg.neoxRope = cfg.arch == "qwen2";
  cfg.qkvBias = cfg.arch == "qwen2";

  const gguf::TensorInfo *embd = file.tensor("token_embd.weight");
  if (!embd)
    return error() << "GGUF model has no tensor 'token_embd.weight'",
           failure();
  if (embd->dims.size() != 2 || int64_t(embd->dims[0]) != cfg.dim)
    return error() << "GGUF tensor 'token_embd.weight' must be [" << cfg.dim
                   << ", vocab] (ggml order)",
           failure();
  cfg.vocab = embd->dims[1];
  if (FailureOr<int64_t> v = getInt(p + "vocab_size", cfg.vocab);
      failed(v) || *v != cfg.vocab)
    return failed(v) ? failure()
                     : (error() << "GGUF vocab_size " << *v
                                << " does not match token_embd.weight's "
                                << cfg.vocab << " rows",
                        failure());
  cfg.tiedOutput = !file.tensor("output.weight");
  return success();
}

LogicalResult Importer::expectTensor(const std::string &name,
                                     ArrayRef<int64_t> shape, bool optional) {
  const gguf::TensorInfo *t = file.tensor(name);
  if (!t) {
    if (optional)
      return success();
    return error() << "GGUF model (" << cfg.arch << ") has no tensor '"
                   << name << "'",
           failure();
  }
  const qquant::GGMLTypeTraits *traits = qquant::getGGMLTypeTraits(t->type);
  qquant::NBitsForm form;
  bool isFloat = t->type == uint32_t(GGMLType::F32) ||
                 t->type == uint32_t(GGMLType::F16) ||
                 t->type == uint32_t(GGMLType::BF16);
  if (!traits->supported ||
      (!isFloat && !qquant::getNBitsForm(GGMLType(t->type), form)))
    return error() << "GGUF tensor '" << name << "' has type "
                   << traits->name << ", which Quench does not support",
           failure();
  // `shape` is in ggml order (contiguous dimension first).
  bool ok = t->dims.size() == shape.size();
  for (size_t d = 0; ok && d < shape.size(); ++d)
    ok = int64_t(t->dims[d]) == shape[d];
  if (!ok) {
    auto diag = error() << "GGUF tensor '" << name << "' has dims [";
    llvm::interleaveComma(t->dims, diag);
    diag << "], expected [";
    llvm::interleaveComma(shape, diag);
    diag << "] (ggml order) for this " << cfg.arch << " model";
    return failure();
  }
  return success();
}

LogicalResult Importer::checkTensors() {
  int64_t q = cfg.heads * cfg.headDim, kv = cfg.kvHeads * cfg.headDim;
  if (failed(expectTensor("output_norm.weight", {cfg.dim})) ||
      failed(expectTensor("token_embd.weight", {cfg.dim, cfg.vocab})) ||
      failed(expectTensor("output.weight", {cfg.dim, cfg.vocab}, true)) ||
      failed(expectTensor("rope_freqs.weight", {cfg.headDim / 2}, true)))
    return failure();
  for (int64_t l = 0; l < cfg.layers; ++l) {
    std::string blk = "blk." + std::to_string(l) + ".";
    struct Expect {
      const char *name;
      SmallVector<int64_t, 2> shape;
    } expect[] = {{"attn_norm.weight", {cfg.dim}},
                  {"attn_q.weight", {cfg.dim, q}},
                  {"attn_k.weight", {cfg.dim, kv}},
                  {"attn_v.weight", {cfg.dim, kv}},
                  {"attn_output.weight", {q, cfg.dim}},
                  {"ffn_norm.weight", {cfg.dim}},
                  {"ffn_gate.weight", {cfg.dim, cfg.ff}},
                  {"ffn_up.weight", {cfg.dim, cfg.ff}},
                  {"ffn_down.weight", {cfg.ff, cfg.dim}}};
    for (const Expect &e : expect)
      if (failed(expectTensor(blk + e.name, e.shape)))
        return failure();
    if (cfg.qkvBias &&
        (failed(expectTensor(blk + "attn_q.bias", {q})) ||
         failed(expectTensor(blk + "attn_k.bias", {kv})) ||
         failed(expectTensor(blk + "attn_v.bias", {kv}))))
      return failure();
  }
  // Vectors (norms, biases, frequency factors) are read as f32 values; block
  // types need whole blocks, which a 1-D tensor of a K-quant may not have.
  return success();
}

Value Importer::constI64(ArrayRef<int64_t> values, ArrayRef<int64_t> shape) {
  auto type = RankedTensorType::get(shape, b.getI64Type());
  return ConstantOp::create(b, loc, DenseElementsAttr::get(type, values));
}

Value Importer::constF32(ArrayRef<float> values, ArrayRef<int64_t> shape) {
  auto type = f32(shape);
  ArrayRef<char> raw(reinterpret_cast<const char *>(values.data()),
                     values.size() * sizeof(float));
  return ConstantOp::create(b, loc, createConstantAttr(type, raw, "gguf_c"));
}

Value Importer::shapeOperand(ArrayRef<int64_t> dims) {
  SmallVector<Value> parts;
  for (int64_t d : dims)
    parts.push_back(d == kDyn ? seq1 : constI64({d}, {1}));
  return ConcatOp::create(
      b, loc, RankedTensorType::get({int64_t(dims.size())}, b.getI64Type()),
      parts, uint64_t(0));
}

Value Importer::reshape(Value x, ArrayRef<int64_t> dims) {
  auto type = RankedTensorType::get(
      dims, cast<RankedTensorType>(x.getType()).getElementType());
  bool dynamic = llvm::is_contained(dims, kDyn);
  return ReshapeOp::create(b, loc, type, x,
                           dynamic ? shapeOperand(dims) : Value());
}

Value Importer::floatTensor(const gguf::TensorInfo &t,
                            ArrayRef<int64_t> shape) {
  auto it = floatWeights.find(t.name);
  if (it != floatWeights.end())
    return it->second;
  Type et = t.type == uint32_t(GGMLType::F32)   ? b.getF32Type()
            : t.type == uint32_t(GGMLType::F16) ? (Type)b.getF16Type()
                                                : (Type)b.getBF16Type();
  auto type = RankedTensorType::get(shape, et);
  Value v = ConstantOp::create(
      b, loc, createBorrowedConstantAttr(type, t.data, mapping, t.name));
  floatWeights[t.name] = v;
  return v;
}

Value Importer::smallF32(const gguf::TensorInfo &t) {
  std::vector<float> values(t.numElements());
  qquant::dequantizeGGML(GGMLType(t.type),
                        reinterpret_cast<const uint8_t *>(t.data.data()),
                        values.size(), values.data());
  return constF32(values, {int64_t(values.size())});
}

NBitsWeight &Importer::nbits(const gguf::TensorInfo &t) {
  auto it = nbitsWeights.find(t.name);
  if (it != nbitsWeights.end())
    return it->second;
  NBitsWeight w;
  qquant::getNBitsForm(GGMLType(t.type), w.form);
  w.k = t.dims[0];
  w.rows = t.dims[1];
  w.blocks = w.k / w.form.group;
  int64_t groupBytes = w.form.group * w.form.bits / 8;
  std::vector<uint8_t> codes(w.rows * w.blocks * groupBytes);
  std::vector<float> scales(w.rows * w.blocks),
      mins(w.form.hasMin ? w.rows * w.blocks : 0);
  qquant::unpackGGMLRows(GGMLType(t.type),
                        reinterpret_cast<const uint8_t *>(t.data.data()),
                        w.rows, w.k, codes.data(), scales.data(),
                        w.form.hasMin ? mins.data() : nullptr);
  releaseMappedPages(t.data);
  auto raw = [](const auto &v) {
    return ArrayRef<char>(reinterpret_cast<const char *>(v.data()),
                          v.size() * sizeof(v[0]));
  };
  w.codes = ConstantOp::create(
      b, loc,
      createConstantAttr(
          RankedTensorType::get({w.rows, w.blocks, groupBytes},
                                b.getIntegerType(8, /*isSigned=*/false)),
          raw(codes), t.name + "_codes"));
  // Scales that are all f16 values (q4_0, q4_1, q5_0, q5_1 and q8_0 store
  // d in f16; the K-quants' d * sub-scale rarely is one) are stored in f16:
  // the same values in half the bytes (q4_0 4.5 bits per weight instead of
  // 5), which the kernels widen exactly, as Quench's own f16 scales.
  std::vector<uint16_t> halves(scales.size());
  bool allHalf = true;
  for (size_t i = 0; i < scales.size() && allHalf; ++i) {
    halves[i] = qquant::floatToF16Bits(scales[i]);
    allHalf = qquant::f16BitsToFloat(halves[i]) == scales[i];
  }
  w.scales = ConstantOp::create(
      b, loc,
      allHalf ? createConstantAttr(RankedTensorType::get({w.rows, w.blocks},
                                                         b.getF16Type()),
                                   raw(halves), t.name + "_scales")
              : createConstantAttr(f32({w.rows, w.blocks}), raw(scales),
                                   t.name + "_scales"));
  if (w.form.hasMin)
    w.mins = ConstantOp::create(
        b, loc,
        createConstantAttr(f32({w.rows, w.blocks}), raw(mins),
                           t.name + "_mins"));
  return nbitsWeights[t.name] = w;
}

Value Importer::linear(Value x, const std::string &name, Value bias) {
  const gguf::TensorInfo &t = tensor(name);
  // The layer is named after its tensor ("blk.0.attn_q"): size reports,
  // recipes and --quant-exclude match it.
  StringRef layer = StringRef(name).rsplit(".weight").first;
  Location saved = loc;
  loc = NameLoc::get(b.getStringAttr(layer), saved);
  Value y = linearAt(x, t, layer, bias);
  loc = saved;
  return y;
}

Value Importer::linearAt(Value x, const gguf::TensorInfo &t, StringRef layer,
                         Value bias) {
  Location saved = loc;
  int64_t k = t.dims[0], n = t.dims[1];
  // x is [..., k] (the layers' [seq, k], the head's [1, seq, k]).
  SmallVector<int64_t> lead(cast<RankedTensorType>(x.getType()).getShape());
  lead.pop_back();
  auto withLast = [&](ArrayRef<int64_t> last) {
    SmallVector<int64_t> shape(lead);
    shape.append(last.begin(), last.end());
    return shape;
  };
  RankedTensorType outType = f32(withLast({n}));
  qquant::NBitsForm form;
  if (!qquant::getNBitsForm(GGMLType(t.type), form))
    return LinearOp::create(b, loc, outType, x, floatTensor(t, {n, k}), bias);
  NBitsWeight &w = nbits(t);
  Value zp;
  if (form.zeroPoint != 1 << (form.bits - 1)) {
    // Explicit packed zero points (all form.zeroPoint, which is 0).
    int64_t rowBytes = (w.blocks * form.bits + 7) / 8;
    auto zt = RankedTensorType::get({n * rowBytes},
                                    b.getIntegerType(8, /*isSigned=*/false));
    zp = ConstantOp::create(
        b, loc, DenseElementsAttr::get(zt, b.getIntegerAttr(
                                               b.getIntegerType(8, false), 0)));
  }
  Value y = MatMulNBitsOp::create(b, loc, outType, x, w.codes, w.scales, zp,
                                  bias, uint64_t(k), uint64_t(n),
                                  uint64_t(form.bits), uint64_t(form.group));
  if (!w.mins)
    return y;
  // + sum_g min[n, g] * (sum of x over group g): the offset term of
  // x · (q * scale + min), exact up to the order of the sums.
  loc = NameLoc::get(b.getStringAttr(layer + ".min_offset"),
                     cast<NameLoc>(saved).getChildLoc());
  Value groups = reshape(x, withLast({w.blocks, form.group}));
  Value sums = ReduceOp::create(b, loc, f32(withLast({w.blocks})),
                                ReduceKind::sum, groups,
                                ArrayRef<int64_t>{int64_t(lead.size()) + 1},
                                false);
  Value offset = LinearOp::create(b, loc, outType, sums, w.mins, Value());
  loc = saved;
  return AddOp::create(b, loc, outType, y, offset);
}

Value Importer::embedding(Value ids, const std::string &name) {
  const gguf::TensorInfo &t = tensor(name);
  int64_t dim = t.dims[0], rows = t.dims[1];
  RankedTensorType outType = f32({kDyn, dim});
  qquant::NBitsForm form;
  if (!qquant::getNBitsForm(GGMLType(t.type), form)) {
    Value table = floatTensor(t, {rows, dim});
    Type et = cast<RankedTensorType>(table.getType()).getElementType();
    Value rowsOut = GatherOp::create(
        b, loc, RankedTensorType::get({kDyn, dim}, et), table, ids,
        uint64_t(0));
    return et.isF32() ? rowsOut : CastOp::create(b, loc, outType, rowsOut);
  }
  NBitsWeight &w = nbits(t);
  int64_t groupBytes = form.group * form.bits / 8;
  Value codes = GatherOp::create(
      b, loc,
      RankedTensorType::get({kDyn, w.blocks, groupBytes},
                            b.getIntegerType(8, false)),
      w.codes, ids, uint64_t(0));
  // The zero points are of the scales' type (f16 or f32).
  Type scaleType =
      cast<RankedTensorType>(w.scales.getType()).getElementType();
  auto scaleTensor = [&](int64_t n) {
    return RankedTensorType::get({n, w.blocks}, scaleType);
  };
  Value scales =
      GatherOp::create(b, loc, scaleTensor(kDyn), w.scales, ids, uint64_t(0));
  Value zp;
  if (form.zeroPoint != 1 << (form.bits - 1))
    zp = GatherOp::create(
        b, loc, scaleTensor(kDyn),
        ConstantOp::create(
            b, loc,
            DenseElementsAttr::get(
                scaleTensor(rows),
                FloatAttr::get(scaleType, double(form.zeroPoint)))),
        ids, uint64_t(0));
  Value x = DequantizeNBitsOp::create(b, loc, outType, codes, scales, zp,
                                      uint64_t(form.bits),
                                      uint64_t(form.group));
  if (!w.mins)
    return x;
  Value mins = GatherOp::create(b, loc, f32({kDyn, w.blocks}), w.mins, ids,
                                uint64_t(0));
  Value grouped = reshape(x, {kDyn, w.blocks, form.group});
  Value shifted =
      AddOp::create(b, loc, grouped.getType(), grouped,
                    reshape(mins, {kDyn, w.blocks, 1}));
  return reshape(shifted, {kDyn, dim});
}

/// x [seq, heads, d] rotated by the angles whose cos/sin are given in the
/// pair layout of the model ([seq, 1, d/2, 1] interleaved, [seq, 1, 1, d/2]
/// half-split).
Value Importer::rope(Value x, int64_t heads, Value cos, Value sin) {
  int64_t d = cfg.headDim, h = d / 2;
  SmallVector<int64_t> pairShape =
      cfg.neoxRope ? SmallVector<int64_t>{kDyn, heads, 2, h}
                   : SmallVector<int64_t>{kDyn, heads, h, 2};
  int64_t axis = cfg.neoxRope ? 2 : 3;
  Value pairs = reshape(x, pairShape);
  SmallVector<int64_t> halfShape(pairShape);
  halfShape[axis] = 1;
  RankedTensorType halfType = f32(halfShape);
  auto split = SplitOp::create(b, loc, TypeRange{halfType, halfType}, pairs,
                               uint64_t(axis), ArrayRef<int64_t>{1, 1});
  Value x0 = split.getResult(0), x1 = split.getResult(1);
  auto mul = [&](Value a, Value c) {
    return MulOp::create(b, loc, halfType, a, c).getResult();
  };
  Value r0 = SubOp::create(b, loc, halfType, mul(x0, cos), mul(x1, sin));
  Value r1 = AddOp::create(b, loc, halfType, mul(x0, sin), mul(x1, cos));
  Value joined = ConcatOp::create(b, loc, f32(pairShape), ValueRange{r0, r1},
                                  uint64_t(axis));
  return reshape(joined, {kDyn, heads, d});
}

Value Importer::block(Value x, int64_t layer, Value cos, Value sin,
                      Value mask) {
  std::string blk = "blk." + std::to_string(layer) + ".";
  int64_t dim = cfg.dim, hd = cfg.headDim, h = cfg.heads, hk = cfg.kvHeads;
  auto norm = [&](Value v, const std::string &name) {
    return RMSNormOp::create(b, loc, v.getType(), v, smallF32(tensor(name)),
                             uint64_t(1), APFloat(cfg.eps))
        .getResult();
  };
  auto bias = [&](const std::string &name) -> Value {
    return cfg.qkvBias ? smallF32(tensor(name)) : Value();
  };
  Value a = norm(x, blk + "attn_norm.weight");
  Value q = linear(a, blk + "attn_q.weight", bias(blk + "attn_q.bias"));
  Value k = linear(a, blk + "attn_k.weight", bias(blk + "attn_k.bias"));
  Value v = linear(a, blk + "attn_v.weight", bias(blk + "attn_v.bias"));
  q = rope(reshape(q, {kDyn, h, hd}), h, cos, sin);
  k = rope(reshape(k, {kDyn, hk, hd}), hk, cos, sin);
  v = reshape(v, {kDyn, hk, hd});
  // [seq, n, d] -> [1, n, seq, d] as exports write it (view, then
  // transpose): a transpose, not a reshape, feeds the GQA repetition below,
  // so that no reshape chain folds into one and quench-derive-kv-cache
  // finds the repetition and caches the kv heads before it (the cache and
  // the attention read hk heads, not h).
  auto heads = [&](Value t, int64_t n) {
    return TransposeOp::create(b, loc, f32({1, n, kDyn, hd}),
                               reshape(t, {1, kDyn, n, hd}),
                               ArrayRef<int64_t>{0, 2, 1, 3})
        .getResult();
  };
  // The exported form of attention (scores, scale, mask, softmax, product
  // with V; kv heads repeated for GQA): quench-fuse-attention makes it one
  // quench.attention, and quench-derive-kv-cache recognizes it.
  auto repeat = [&](Value t) {
    if (hk == h)
      return t;
    int64_t g = h / hk;
    // Hugging Face's repeat_kv (unsqueeze, expand, reshape), which
    // quench-raise-ops turns into products on the hk heads as they are.
    Value r = UnsqueezeOp::create(b, loc, f32({1, hk, 1, kDyn, hd}), t,
                                  ArrayRef<int64_t>{2});
    r = ExpandOp::create(b, loc, f32({1, hk, g, kDyn, hd}), r,
                         shapeOperand({1, hk, g, kDyn, hd}));
    return reshape(r, {1, h, kDyn, hd});
  };
  Value qh = heads(q, h), kh = repeat(heads(k, hk)), vh = repeat(heads(v, hk));
  Value kt = TransposeOp::create(b, loc, f32({1, h, hd, kDyn}), kh,
                                 ArrayRef<int64_t>{0, 1, 3, 2});
  RankedTensorType scoreType = f32({1, h, kDyn, kDyn});
  Value scores = MatMulOp::create(b, loc, scoreType, qh, kt);
  float scale = float(1.0 / std::sqrt(double(hd)));
  scores = MulOp::create(b, loc, scoreType, scores, constF32({scale}, {}));
  scores = AddOp::create(b, loc, scoreType, scores, mask);
  Value probs = SoftmaxOp::create(b, loc, scoreType, scores, int64_t(3));
  Value attn = MatMulOp::create(b, loc, f32({1, h, kDyn, hd}), probs, vh);
  // [1, h, seq, d] -> [1, seq, h, d] by a transpose (the grouped product's
  // reshape back to h heads must stay a rank-4 reshape of its own).
  Value merged = TransposeOp::create(b, loc, f32({1, kDyn, h, hd}), attn,
                                     ArrayRef<int64_t>{0, 2, 1, 3});
  Value o = linear(reshape(merged, {kDyn, h * hd}), blk + "attn_output.weight");
  x = AddOp::create(b, loc, f32({kDyn, dim}), x, o);

  Value f = norm(x, blk + "ffn_norm.weight");
  Value gate = linear(f, blk + "ffn_gate.weight");
  Value up = linear(f, blk + "ffn_up.weight");
  RankedTensorType ffType = f32({kDyn, cfg.ff});
  Value act = MulOp::create(b, loc, ffType,
                            SiluOp::create(b, loc, ffType, gate), up);
  Value down = linear(act, blk + "ffn_down.weight");
  return AddOp::create(b, loc, f32({kDyn, dim}), x, down);
}

void Importer::build(ModuleOp module) {
  b.setInsertionPointToEnd(module.getBody());
  auto idsType = RankedTensorType::get({1, kDyn}, b.getI64Type());
  auto logitsType = f32({1, kDyn, cfg.vocab});
  auto func = func::FuncOp::create(b, loc, "main",
                                   b.getFunctionType({idsType}, {logitsType}));
  func.setArgAttr(0, QuenchDialect::getNameAttrName(),
                  b.getStringAttr("input_ids"));
  func.setResultAttr(0, QuenchDialect::getNameAttrName(),
                     b.getStringAttr("logits"));
  Block *entry = func.addEntryBlock();
  b.setInsertionPointToStart(entry);
  Value inputIds = entry->getArgument(0);
  auto i64 = b.getI64Type();

  Value shape = ShapeOfOp::create(b, loc, RankedTensorType::get({2}, i64),
                                  inputIds);
  seq1 = SliceOp::create(b, loc, RankedTensorType::get({1}, i64), shape,
                         ArrayRef<int64_t>{1}, ArrayRef<int64_t>{2},
                         ArrayRef<int64_t>{1});
  Value ids = reshape(inputIds, {kDyn});

  // Positions, RoPE tables and the causal mask.
  Value seq0 = ReshapeOp::create(b, loc, RankedTensorType::get({}, i64), seq1,
                                 Value());
  // One range per use (positions, query and key axes of the mask), as
  // exports have them: quench-derive-kv-cache shifts each its own way.
  auto positions = [&]() -> Value {
    return RangeOp::create(b, loc, RankedTensorType::get({kDyn}, i64),
                           constI64({0}, {}), seq0, constI64({1}, {}));
  };
  Value posF = CastOp::create(b, loc, f32({kDyn}), positions());
  int64_t half = cfg.headDim / 2;
  std::vector<float> factors(half, 1.0f);
  if (const gguf::TensorInfo *ff = file.tensor("rope_freqs.weight"))
    qquant::dequantizeGGML(GGMLType(ff->type),
                          reinterpret_cast<const uint8_t *>(ff->data.data()),
                          half, factors.data());
  std::vector<float> invFreq(half);
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = float(cfg.freqScale *
                       std::pow(cfg.ropeBase, -2.0 * double(i) /
                                                  double(cfg.ropeDims)) /
                       double(factors[i]));
  Value angles = MulOp::create(b, loc, f32({kDyn, half}),
                               reshape(posF, {kDyn, 1}),
                               constF32(invFreq, {1, half}));
  SmallVector<int64_t> tableShape =
      cfg.neoxRope ? SmallVector<int64_t>{kDyn, 1, 1, half}
                   : SmallVector<int64_t>{kDyn, 1, half, 1};
  Value cos = reshape(CosOp::create(b, loc, angles.getType(), angles),
                      tableShape);
  Value sin = reshape(SinOp::create(b, loc, angles.getType(), angles),
                      tableShape);
  Value rows = UnsqueezeOp::create(b, loc, RankedTensorType::get({kDyn, 1}, i64),
                                   positions(), ArrayRef<int64_t>{1});
  Value cols = UnsqueezeOp::create(b, loc, RankedTensorType::get({1, kDyn}, i64),
                                   positions(), ArrayRef<int64_t>{0});
  Value future =
      CmpOp::create(b, loc, RankedTensorType::get({kDyn, kDyn}, b.getI1Type()),
                    CmpPredicate::gt, cols, rows);
  Value mask = WhereOp::create(
      b, loc, f32({kDyn, kDyn}), future,
      constF32({-std::numeric_limits<float>::infinity()}, {1, 1}),
      constF32({0.0f}, {1, 1}));
  mask = UnsqueezeOp::create(b, loc, f32({1, 1, kDyn, kDyn}), mask,
                             ArrayRef<int64_t>{0, 1});

  Value x = embedding(ids, "token_embd.weight");
  for (int64_t l = 0; l < cfg.layers; ++l)
    x = block(x, l, cos, sin, mask);
  // The final norm and the head on [1, seq, dim], so that the logits
  // output is their result: quench-kv-cache (logits of the last position
  // only) then moves its slice of the last row above them, and a
  // generation step's prompt projects one row, not all (a reshape between
  // the head and the output would keep the head on every row).
  x = reshape(x, {1, kDyn, cfg.dim});
  x = RMSNormOp::create(b, loc, x.getType(), x,
                        smallF32(tensor("output_norm.weight")), uint64_t(2),
                        APFloat(cfg.eps));
  Value logits = linear(x, cfg.tiedOutput ? "token_embd.weight"
                                          : "output.weight");
  func::ReturnOp::create(b, loc, logits);

  // Model facts for later stages and tools (the tokenizer's small scalars;
  // its arrays are in quench.metadata below: docs/gguf.md).
  SmallVector<NamedAttribute> facts;
  for (const auto &[key, value] : file.metadata) {
    if (!(StringRef(key).starts_with("general.") ||
          StringRef(key).starts_with("tokenizer.")))
      continue;
    Attribute a;
    switch (value.type) {
    case gguf::ValueType::String:
      if (value.str.size() <= 256)
        a = b.getStringAttr(value.str);
      break;
    case gguf::ValueType::U8: case gguf::ValueType::U16:
    case gguf::ValueType::U32: case gguf::ValueType::U64:
    case gguf::ValueType::I8: case gguf::ValueType::I16:
    case gguf::ValueType::I32: case gguf::ValueType::I64:
    case gguf::ValueType::Bool:
      a = b.getI64IntegerAttr(value.i);
      break;
    default:
      break;
    }
    if (a)
      facts.push_back(b.getNamedAttr(key, a));
  }
  module->setAttr(kGGUFMetadataAttrName, b.getDictionaryAttr(facts));
  // Everything of the tokenizer (tokens, scores, types, merges, special
  // ids) and the general facts, for the compiled artifact's users.
  module->setAttr(kModelMetadataAttrName,
                  b.getStringAttr(gguf::metadataToJSON(
                      file, {"general.", "tokenizer."})));
  // The compiled model is the float model with dequantized weights: no
  // kernel may quantize the activations by default (docs/gguf.md).
  module->setAttr(kFloatActivationsAttrName, b.getUnitAttr());
}

} // namespace

bool quench::isGGUFFile(StringRef path) {
  // Only regular files: opening a FIFO could block.
  if (!llvm::sys::fs::is_regular_file(path))
    return false;
  auto buf = llvm::MemoryBuffer::getFileSlice(path, 4, 0);
  return buf && gguf::hasGGUFMagic(
                    ArrayRef<char>((*buf)->getBufferStart(), 4));
}

OwningOpRef<ModuleOp> quench::importGGUFFile(StringRef path,
                                             MLIRContext *context) {
  context->loadDialect<QuenchDialect, func::FuncDialect>();
  Location loc = FileLineColLoc::get(context, path, 0, 0);
  llvm::Expected<std::shared_ptr<MappedFile>> mapped = MappedFile::open(path);
  if (!mapped) {
    emitError(loc) << "cannot read '" << path
                   << "': " << llvm::toString(mapped.takeError());
    return nullptr;
  }
  llvm::Expected<gguf::File> file = gguf::parseGGUF((*mapped)->data());
  if (!file) {
    emitError(loc) << "'" << path << "': " << llvm::toString(file.takeError());
    return nullptr;
  }
  Importer importer(context, *file, *mapped, loc);
  if (failed(importer.readConfig()) || failed(importer.checkTensors()))
    return nullptr;
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  importer.build(*module);
  if (failed(verify(*module)))
    return nullptr;
  return module;
}
