//===- QuantizeWeights.cpp - weight quantization of linear layers ---------===//
//
// Implements `quench-quantize-weights`: every quench.linear with a constant
// weight becomes a quench.matmul_nbits over codes chosen by round-to-nearest
// (lib/Quant/RTN.cpp), GPTQ (lib/Quant/GPTQ.cpp, with the input Gram
// matrices of calibration), HQQ (lib/Quant/HQQ.cpp) or AWQ (lib/Quant/AWQ.cpp:
// per-channel scales migrated into the layers' inputs by ScaleMigration.cpp,
// then clipping or GPTQ), group-wise or per output channel, or, with
// activation quantization (W8A8), a quench.qlinear over int8 codes. The
// numerics live in the MLIR-free QuenchQuant library; this file decides
// which layers get which scheme (options, recipe) and rewrites the IR.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"
#include "quench/Dialect/Quench/Transforms/WeightConstants.h"
#include "quench/Quant/AWQ.h"
#include "quench/Quant/BitsBudget.h"
#include "quench/Quant/GPTQ.h"
#include "quench/Quant/HQQ.h"
#include "quench/Quant/Outliers.h"
#include "quench/Quant/RTN.h"
#include "quench/Support/Progress.h"
#include "quench/Quant/Sparse.h"
#include "quench/Support/Communicator.h"
#include "quench/Support/LLVM.h"
#include "llvm/ADT/DenseSet.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/GlobPattern.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <unordered_map>

namespace quench {
#define GEN_PASS_DEF_QUENCHQUANTIZEWEIGHTS
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace quench;
namespace qq = quench::quant;

namespace {

/// The quantization scheme of one layer.
struct Scheme {
  bool skip = false;
  unsigned bits = 8;
  int64_t groupSize = 0;
  bool symmetric = true;
  qq::ScaleType scaleType = qq::ScaleType::F16;
  /// Round with GPTQ (needs the layer's input Gram matrix) instead of RTN.
  bool gptq = false;
  /// Choose scales and zero points with HQQ (data-free) instead of RTN's
  /// min/max.
  bool hqq = false;
  /// AWQ: per-channel scales of the input migrated into the weight (per
  /// group of linears sharing the input), then clipping search (or, with
  /// `gptq`, GPTQ on the scaled weight). Needs the input's Gram matrix and
  /// mean |x|.
  bool awq = false;
  bool gptqActOrder = true;
  double gptqDampening = 0.01;
  /// The recipe's "sparsity" for the layer (read by quench-prune-weights
  /// through readRecipeSparsity; empty: none given).
  std::string sparsity;
  /// A recipe's outlier splitting for the layer (W8A8): -1 automatic, 0
  /// none, N the N largest channels; unset: the `outliers` option.
  std::optional<int64_t> outliers;
};

/// A recipe rule: layers whose name matches `pattern` get `scheme`.
struct Rule {
  /// The glob's text. llvm::GlobPattern keeps a StringRef to the text it
  /// was created from (LLVM 22), so the text lives on the heap, where
  /// moving or copying the rule leaves it in place (a pattern made from a
  /// recipe's parsed JSON, or from a moved std::string, read freed memory:
  /// layers matched at random).
  std::shared_ptr<const std::string> text;
  llvm::GlobPattern pattern;
  Scheme scheme;

  /// A rule for the glob `text`, or the glob's error.
  static llvm::Expected<Rule> create(StringRef text, const Scheme &scheme) {
    Rule rule;
    rule.text = std::make_shared<const std::string>(text.str());
    llvm::Expected<llvm::GlobPattern> glob =
        llvm::GlobPattern::create(*rule.text);
    if (!glob)
      return glob.takeError();
    rule.pattern = std::move(*glob);
    rule.scheme = scheme;
    return rule;
  }
};

std::string describe(const Scheme &s) {
  if (s.skip)
    return "float";
  std::string out = "int" + std::to_string(s.bits) + " ";
  out += s.groupSize ? "g" + std::to_string(s.groupSize) : "per-channel";
  out += s.symmetric ? " sym " : " asym ";
  out += s.scaleType == qq::ScaleType::F16 ? "f16" : "f32";
  if (s.awq)
    out += s.gptq ? " awq+gptq" : " awq";
  else if (s.gptq)
    out += " gptq";
  if (s.hqq)
    out += " hqq";
  return out;
}

/// How a layer's input is quantized (WeightQuantOptions::activations).
enum class ActQuant { None, Static, Dynamic };

/// The record's scheme of a W8A8 layer.
std::string describeW8A8(ActQuant act) {
  return act == ActQuant::Static
             ? "int8 per-channel sym f32, act int8 static per-tensor"
             : "int8 per-channel sym f32, act int8 dynamic per-token";
}

LogicalResult checkScheme(const Scheme &s, const Twine &where,
                          Location loc) {
  if (s.skip)
    return success();
  if (s.bits < 2 || s.bits > 8)
    return emitError(loc) << where << ": bits must be in [2, 8], got "
                          << s.bits;
  if (s.groupSize > qq::kMaxGroupSize)
    return emitError(loc) << where << ": group size " << s.groupSize
                          << " is above the limit of " << qq::kMaxGroupSize
                          << " (0 is one group per output channel)";
  if (s.groupSize < 0 || (s.groupSize * s.bits) % 8 != 0)
    return emitError(loc) << where << ": group size " << s.groupSize
                          << " times " << s.bits
                          << " bits is not a whole number of bytes";
  if (s.gptq && !(s.gptqDampening >= 0.0 && std::isfinite(s.gptqDampening)))
    return emitError(loc) << where << ": GPTQ dampening must be >= 0, got "
                          << s.gptqDampening;
  return success();
}

/// Parses a rounding algorithm name into `s.gptq` / `s.hqq` / `s.awq`.
LogicalResult parseAlgo(StringRef algo, Scheme &s, const Twine &where,
                        Location loc) {
  if (algo != "rtn" && algo != "gptq" && algo != "hqq" && algo != "awq" &&
      algo != "awq+gptq")
    return emitError(loc) << where
                          << ": algorithm must be rtn, gptq, hqq, awq or "
                             "awq+gptq, got '"
                          << algo << "'";
  s.gptq = algo == "gptq" || algo == "awq+gptq";
  s.hqq = algo == "hqq";
  s.awq = algo == "awq" || algo == "awq+gptq";
  return success();
}

FailureOr<qq::ScaleType> parseScaleType(StringRef s, Location loc) {
  if (s == "f16")
    return qq::ScaleType::F16;
  if (s == "f32")
    return qq::ScaleType::F32;
  return emitError(loc) << "scale type must be f16 or f32, got '" << s
                        << "'";
}

/// Reads the fields of a recipe object into `s` (fields absent keep their
/// value).
LogicalResult readSchemeFields(const llvm::json::Object &obj, Scheme &s,
                               const Twine &where, Location loc) {
  static const StringRef known[] = {
      "match",     "skip",       "bits", "group_size",     "symmetric",
      "scale_type", "algo", "gptq_act_order", "gptq_dampening", "sparsity",
      "outliers"};
  for (const auto &kv : obj)
    if (!llvm::is_contained(known, StringRef(kv.first)))
      return emitError(loc) << where << ": unknown field '"
                            << StringRef(kv.first) << "'";
  if (auto v = obj.get("skip")) {
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return emitError(loc) << where << ": 'skip' must be a boolean";
    s.skip = *b;
  }
  if (auto v = obj.get("bits")) {
    std::optional<int64_t> i = v->getAsInteger();
    if (!i)
      return emitError(loc) << where << ": 'bits' must be an integer";
    s.bits = static_cast<unsigned>(*i);
  }
  if (auto v = obj.get("group_size")) {
    std::optional<int64_t> i = v->getAsInteger();
    if (!i)
      return emitError(loc) << where << ": 'group_size' must be an integer";
    s.groupSize = *i;
  }
  if (auto v = obj.get("symmetric")) {
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return emitError(loc) << where << ": 'symmetric' must be a boolean";
    s.symmetric = *b;
  }
  if (auto v = obj.get("scale_type")) {
    std::optional<StringRef> str = v->getAsString();
    if (!str)
      return emitError(loc) << where << ": 'scale_type' must be a string";
    FailureOr<qq::ScaleType> t = parseScaleType(*str, loc);
    if (failed(t))
      return failure();
    s.scaleType = *t;
  }
  if (auto v = obj.get("algo")) {
    std::optional<StringRef> str = v->getAsString();
    if (!str)
      return emitError(loc) << where << ": 'algo' must be a string (rtn, "
                                        "gptq, hqq, awq or awq+gptq)";
    if (failed(parseAlgo(*str, s, where, loc)))
      return failure();
  }
  if (auto v = obj.get("gptq_act_order")) {
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return emitError(loc) << where << ": 'gptq_act_order' must be a boolean";
    s.gptqActOrder = *b;
  }
  if (auto v = obj.get("gptq_dampening")) {
    std::optional<double> d = v->getAsNumber();
    if (!d)
      return emitError(loc) << where << ": 'gptq_dampening' must be a number";
    s.gptqDampening = *d;
  }
  if (auto v = obj.get("sparsity")) {
    std::optional<StringRef> str = v->getAsString();
    qq::SparsityPattern pattern;
    std::string error;
    if (!str)
      return emitError(loc) << where << ": 'sparsity' must be a string (2:4, "
                                        "N:M, unstructured:F or none)";
    if (!qq::parseSparsityPattern(str->str(), pattern, error))
      return emitError(loc) << where << ": " << error;
    s.sparsity = str->str();
  }
  if (auto v = obj.get("outliers")) {
    std::optional<StringRef> str = v->getAsString();
    std::optional<int64_t> i = v->getAsInteger();
    if (str && *str == "auto")
      s.outliers = -1;
    else if (i && *i >= 0)
      s.outliers = *i;
    else
      return emitError(loc) << where << ": 'outliers' must be \"auto\" or "
                                        "a number of channels";
  }
  // GPTQ settings on a layer rounded by RTN are a mistake, not a no-op.
  if (!s.gptq && !s.skip)
    for (StringRef key : {"gptq_act_order", "gptq_dampening"})
      if (obj.get(key))
        return emitError(loc) << where << ": '" << key
                              << "' needs \"algo\": \"gptq\" or "
                                 "\"awq+gptq\"";
  return checkScheme(s, where, loc);
}

/// The deepest nesting of arrays and objects in JSON text (brackets inside
/// strings do not count). llvm::json::parse recurses once per level: a
/// hostile recipe of 100,000 brackets would overflow the stack.
int64_t jsonNestingDepth(StringRef text) {
  int64_t depth = 0, deepest = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (inString) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

/// Recipes nest three levels deep; anything past this is not a recipe.
constexpr int64_t kMaxRecipeNesting = 64;

/// Parses a recipe file: {"version": 1, "default": {...}, "layers": [...]}.
LogicalResult parseRecipe(StringRef path, Scheme &defaults,
                          SmallVectorImpl<Rule> &rules, Location loc) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf)
    return emitError(loc) << "cannot read recipe '" << path
                          << "': " << buf.getError().message();
  if (jsonNestingDepth((*buf)->getBuffer()) > kMaxRecipeNesting)
    return emitError(loc) << "recipe '" << path << "' nests arrays or "
                          << "objects deeper than " << kMaxRecipeNesting
                          << " levels";
  llvm::Expected<llvm::json::Value> json =
      llvm::json::parse((*buf)->getBuffer());
  if (!json)
    return emitError(loc) << "recipe '" << path << "' is not valid JSON: "
                          << llvm::toString(json.takeError());
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return emitError(loc) << "recipe '" << path << "' must be a JSON object";
  for (const auto &kv : *root)
    if (!llvm::is_contained({"version", "default", "layers"},
                            StringRef(kv.first)))
      return emitError(loc) << "recipe '" << path << "': unknown field '"
                            << StringRef(kv.first) << "'";
  std::optional<int64_t> version = root->getInteger("version");
  if (!version || *version != 1)
    return emitError(loc) << "recipe '" << path
                          << "': \"version\": 1 is required";
  if (const llvm::json::Value *d = root->get("default")) {
    const llvm::json::Object *obj = d->getAsObject();
    if (!obj || obj->get("match"))
      return emitError(loc) << "recipe '" << path
                            << "': \"default\" must be an object without "
                               "\"match\"";
    if (failed(readSchemeFields(*obj, defaults,
                                "recipe '" + path + "' default", loc)))
      return failure();
  }
  if (const llvm::json::Value *l = root->get("layers")) {
    const llvm::json::Array *arr = l->getAsArray();
    if (!arr)
      return emitError(loc) << "recipe '" << path
                            << "': \"layers\" must be an array";
    for (auto [i, v] : llvm::enumerate(*arr)) {
      std::string where =
          "recipe '" + path.str() + "' layers[" + std::to_string(i) + "]";
      const llvm::json::Object *obj = v.getAsObject();
      std::optional<StringRef> match =
          obj ? obj->getString("match") : std::nullopt;
      if (!match)
        return emitError(loc) << where
                              << ": an object with a \"match\" glob is "
                                 "required";
      llvm::Expected<Rule> rule = Rule::create(*match, defaults);
      if (!rule)
        return emitError(loc) << where << ": bad glob '" << *match
                              << "': " << llvm::toString(rule.takeError());
      if (failed(readSchemeFields(*obj, rule->scheme, where, loc)))
        return failure();
      rules.push_back(std::move(*rule));
    }
  }
  return success();
}

/// The layer name of an op: the first name in its location (the ONNX node
/// name for imported models), else its printed location.
std::string layerName(Location loc) {
  std::string found = getNodeName(loc);
  if (!found.empty())
    return found;
  std::string s;
  llvm::raw_string_ostream os(s);
  loc.print(os);
  return s;
}

/// True when the value reaches a func.return, possibly through ops that
/// only reshape it.
bool reachesReturn(Value v) {
  for (Operation *user : v.getUsers()) {
    if (isa<func::ReturnOp>(user))
      return true;
    if (isa<ReshapeOp, SqueezeOp, UnsqueezeOp>(user) &&
        reachesReturn(user->getResult(0)))
      return true;
  }
  return false;
}

std::string constantName(ConstantOp cst, StringRef suffix) {
  std::string base = "weight";
  if (auto res = dyn_cast<DenseResourceElementsAttr>(cst.getValue()))
    base = res.getRawHandle().getKey().str();
  return base + suffix.str();
}

/// A layer's quantized weight as constant attributes, built as soon as the
/// layer is quantized: large ones go to the weight arena, so that the codes
/// of every layer are not held in memory until the rewrite.
struct QuantizedWeight {
  ElementsAttr codes, scales, zeroPoints; ///< zeroPoints: null if symmetric
  int64_t bits = 0, groupSize = 0;
  /// Bytes of codes, scales and zero points.
  int64_t bytes = 0;
};

/// The quench.matmul_nbits operands of `m`: packed codes [N, groups,
/// groupBytes] u8, scales [N, groups] (f16 or f32) and, if asymmetric, packed
/// zero points.
QuantizedWeight makeNBitsWeight(ConstantOp cst, const qq::QuantizedMatrix &m,
                                const Scheme &s) {
  int64_t n = m.rows;
  MLIRContext *ctx = cst.getContext();
  Type u8 = IntegerType::get(ctx, 8, IntegerType::Unsigned);
  int64_t groupBytes = m.groupSize * m.bits / 8;
  QuantizedWeight w;
  w.bits = static_cast<int64_t>(m.bits);
  w.groupSize = m.groupSize;
  auto packedType = RankedTensorType::get({n, m.groups, groupBytes}, u8);
  ArrayRef<char> packedBytes(reinterpret_cast<const char *>(m.packed.data()),
                             m.packed.size());
  w.codes = createConstantAttr(packedType, packedBytes, constantName(cst, "_q"));

  Type scaleElt = s.scaleType == qq::ScaleType::F16
                      ? Type(Float16Type::get(ctx))
                      : Type(Float32Type::get(ctx));
  auto scaleType = RankedTensorType::get({n, m.groups}, scaleElt);
  std::vector<char> scaleBytes;
  if (s.scaleType == qq::ScaleType::F16) {
    scaleBytes.resize(m.scales.size() * 2);
    for (size_t i = 0; i < m.scales.size(); ++i) {
      uint16_t h = qq::floatToF16Bits(m.scales[i]);
      std::memcpy(&scaleBytes[2 * i], &h, 2);
    }
  } else {
    scaleBytes.resize(m.scales.size() * 4);
    std::memcpy(scaleBytes.data(), m.scales.data(), scaleBytes.size());
  }
  w.scales =
      createConstantAttr(scaleType, scaleBytes, constantName(cst, "_scales"));
  w.bytes = static_cast<int64_t>(m.packed.size() + scaleBytes.size());
  if (!s.symmetric) {
    auto zpType =
        RankedTensorType::get({n, (m.groups * m.bits + 7) / 8}, u8);
    ArrayRef<char> bytes(reinterpret_cast<const char *>(m.zeroPoints.data()),
                         m.zeroPoints.size());
    w.zeroPoints = createConstantAttr(zpType, bytes, constantName(cst, "_zp"));
    w.bytes += static_cast<int64_t>(m.zeroPoints.size());
  }
  return w;
}

Value constantOf(OpBuilder &b, Location loc, ElementsAttr attr) {
  return ConstantOp::create(b, loc, cast<RankedTensorType>(attr.getType()),
                            attr);
}

/// Rewrites one linear with its quantized weight `w`; returns the bytes of
/// the quantized weight.
int64_t quantizeLinear(LinearOp op, ConstantOp cst, const QuantizedWeight &w) {
  OpBuilder b(op);
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  int64_t n = wType.getDimSize(0), k = wType.getDimSize(1);
  Value packed = constantOf(b, cst.getLoc(), w.codes);
  Value scales = constantOf(b, cst.getLoc(), w.scales);
  Value zp;
  if (w.zeroPoints)
    zp = constantOf(b, cst.getLoc(), w.zeroPoints);
  auto q = MatMulNBitsOp::create(b, op.getLoc(), op.getType(), op.getInput(),
                                 packed, scales, zp, op.getBias(), k, n,
                                 w.bits, w.groupSize);
  // The pruning mark stays with the layer: quench-pack-sparse-weights
  // stores its codes compressed.
  if (Attribute sparsity = op->getAttr(kSparsityAttrName))
    q->setAttr(kSparsityAttrName, sparsity);
  op.replaceAllUsesWith(q.getResult());
  op.erase();
  return w.bytes;
}

/// The signed int8 codes [rows, cols] of 8-bit symmetric per-row codes:
/// RTN's unsigned codes minus the zero point 128 (8-bit codes are their
/// bytes; RTN pads a row's single group to a multiple of 8 codes, which are
/// dropped here).
std::vector<char> signedInt8Codes(const qq::QuantizedMatrix &m) {
  int64_t n = m.rows, k = m.cols, rowBytes = m.groups * m.groupSize;
  std::vector<char> codes(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      codes[r * k + c] =
          static_cast<char>(static_cast<int>(m.packed[r * rowBytes + c]) - 128);
  return codes;
}

/// Rewrites an embedding lookup `gather %table[%ids] {axis = 0}` of a
/// constant f32 table [V, D] into lookups of `bits`-bit group-wise codes in
/// the quench.matmul_nbits layout ([V, groups, groupSize * bits / 8] bytes)
/// and of their scales [V, groups] (and float zero points when asymmetric),
/// expanded after the gather by quench.dequantize_nbits: only the looked-up
/// rows are dequantized. Returns the bytes of codes, scales and zero points.
int64_t quantizeEmbeddingNBits(GatherOp op, ConstantOp cst,
                               const std::vector<float> &w, const Scheme &s) {
  auto tType = cast<RankedTensorType>(cst.getType());
  int64_t v = tType.getDimSize(0), d = tType.getDimSize(1);
  qq::QuantizedMatrix m = qq::quantizeMatrixRTN(
      w.data(), v, d, s.bits, s.groupSize, s.symmetric, s.scaleType);
  Scheme symmetricScheme = s;
  symmetricScheme.symmetric = true; // zero points are made here, as floats
  QuantizedWeight q = makeNBitsWeight(cst, m, symmetricScheme);
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto resType = cast<RankedTensorType>(op.getType());
  auto scaleType = cast<RankedTensorType>(q.scales.getType());
  // Gathered rows keep the table's trailing dims: [ids..., groups(, J)].
  auto gathered = [&](ElementsAttr table) -> Value {
    auto type = cast<RankedTensorType>(table.getType());
    SmallVector<int64_t> shape(resType.getShape().drop_back());
    shape.append(type.getShape().begin() + 1, type.getShape().end());
    return GatherOp::create(
        b, loc, RankedTensorType::get(shape, type.getElementType()),
        constantOf(b, cst.getLoc(), table), op.getIndices(), op.getAxisAttr());
  };
  Value codes = gathered(q.codes);
  Value scales = gathered(q.scales);
  Value zeroPoints;
  int64_t bytes = q.bytes;
  if (!s.symmetric) {
    // Integer zero points stored in the scales' float type (exact: < 256).
    Type elt = scaleType.getElementType();
    size_t width = elt.isF16() ? 2 : 4;
    std::vector<char> zpBytes(m.params.size() * width);
    for (size_t i = 0; i < m.params.size(); ++i) {
      float z = static_cast<float>(m.params[i].zeroPoint);
      if (width == 2) {
        uint16_t h = qq::floatToF16Bits(z);
        std::memcpy(&zpBytes[2 * i], &h, 2);
      } else {
        std::memcpy(&zpBytes[4 * i], &z, 4);
      }
    }
    zeroPoints = gathered(
        createConstantAttr(scaleType, zpBytes, constantName(cst, "_zp")));
    bytes += static_cast<int64_t>(zpBytes.size());
  }
  Value out = DequantizeNBitsOp::create(
      b, loc, resType, codes, scales, zeroPoints,
      b.getI64IntegerAttr(s.bits), b.getI64IntegerAttr(m.groupSize));
  op.replaceAllUsesWith(out);
  op.erase();
  return bytes;
}

/// The quench.qlinear operands of `m` (8-bit symmetric per-channel codes
/// with f32 scales, from RTN or GPTQ): int8 codes [N, K] (the unsigned codes
/// minus the zero point 128) and f32 scales [N].
QuantizedWeight makeW8A8Weight(ConstantOp cst, const qq::QuantizedMatrix &m) {
  assert(m.bits == 8 && m.symmetric && m.groups == 1 &&
         "W8A8 takes 8-bit symmetric per-channel codes");
  int64_t n = m.rows, k = m.cols;
  MLIRContext *ctx = cst.getContext();
  QuantizedWeight w;
  w.bits = 8;
  std::vector<char> codes = signedInt8Codes(m);
  auto codeType = RankedTensorType::get({n, k}, IntegerType::get(ctx, 8));
  w.codes = createConstantAttr(codeType, codes, constantName(cst, "_q"));
  auto scaleType = RankedTensorType::get({n}, Float32Type::get(ctx));
  std::vector<char> scaleBytes(m.scales.size() * 4);
  std::memcpy(scaleBytes.data(), m.scales.data(), scaleBytes.size());
  w.scales =
      createConstantAttr(scaleType, scaleBytes, constantName(cst, "_scales"));
  w.bytes = static_cast<int64_t>(codes.size() + scaleBytes.size());
  return w;
}

/// Rewrites one linear into a quench.qlinear over `w` (makeW8A8Weight) and
/// the input scale `inputScale` (static) or none (dynamic); with
/// `outliers`, those input channels stay in float with the weight columns
/// `outlierCols` (row-major [N, outliers.size()]). Returns the bytes of the
/// quantized weight (float columns included).
int64_t quantizeLinearW8A8(LinearOp op, ConstantOp cst,
                           const QuantizedWeight &w,
                           std::optional<float> inputScale,
                           ArrayRef<int64_t> outliers,
                           const std::vector<float> &outlierCols) {
  OpBuilder b(op);
  Value wq = constantOf(b, cst.getLoc(), w.codes);
  Value scales = constantOf(b, cst.getLoc(), w.scales);
  FloatAttr scaleAttr;
  if (inputScale)
    scaleAttr = b.getF32FloatAttr(*inputScale);
  Value wo;
  DenseI64ArrayAttr channels;
  int64_t bytes = w.bytes;
  if (!outliers.empty()) {
    int64_t n = cast<RankedTensorType>(w.scales.getType()).getDimSize(0);
    int64_t c = static_cast<int64_t>(outliers.size());
    auto type = RankedTensorType::get({n, c}, b.getF32Type());
    ArrayRef<char> raw(reinterpret_cast<const char *>(outlierCols.data()),
                       outlierCols.size() * sizeof(float));
    wo = constantOf(b, cst.getLoc(),
                    createConstantAttr(type, raw,
                                       constantName(cst, "_outliers")));
    channels = b.getDenseI64ArrayAttr(outliers);
    bytes += static_cast<int64_t>(raw.size());
  }
  auto q = QLinearOp::create(b, op.getLoc(), op.getType(), op.getInput(), wq,
                             scales, op.getBias(), scaleAttr, wo, channels);
  op.replaceAllUsesWith(q.getResult());
  op.erase();
  return bytes;
}

/// One layer's result as a process sends it to rank 0: the plan's index and
/// its codes, or an error message (which ends that process's results).
struct LayerMessage {
  uint64_t plan = 0;
  std::string error;
  qq::QuantizedMatrix matrix;
};

template <typename T> void putPod(std::string &out, const T &v) {
  out.append(reinterpret_cast<const char *>(&v), sizeof v);
}
template <typename T> void putArray(std::string &out, const std::vector<T> &v) {
  putPod<uint64_t>(out, v.size());
  out.append(reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
}
template <typename T> void getPod(const char *&p, T &v) {
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
}
template <typename T> void getArray(const char *&p, std::vector<T> &v) {
  uint64_t n;
  getPod(p, n);
  v.resize(n);
  std::memcpy(v.data(), p, n * sizeof(T));
  p += n * sizeof(T);
}

std::string writeLayerMessage(const LayerMessage &msg) {
  std::string out;
  putPod(out, msg.plan);
  putPod<uint8_t>(out, msg.error.empty() ? 0 : 1);
  if (!msg.error.empty())
    return out + msg.error;
  const qq::QuantizedMatrix &m = msg.matrix;
  for (int64_t v : {m.rows, m.cols, m.groupSize, m.groups})
    putPod(out, v);
  putPod<int32_t>(out, m.bits);
  putPod<uint8_t>(out, m.symmetric);
  putArray(out, m.packed);
  putArray(out, m.scales);
  putArray(out, m.zeroPoints);
  return out;
}

/// Reads what writeLayerMessage wrote (in another process of this
/// compile: the same program, so no field is checked).
void readLayerMessage(const std::string &bytes, LayerMessage &msg) {
  const char *p = bytes.data();
  getPod(p, msg.plan);
  uint8_t isError;
  getPod(p, isError);
  if (isError) {
    msg.error.assign(p, bytes.data() + bytes.size());
    return;
  }
  qq::QuantizedMatrix &m = msg.matrix;
  getPod(p, m.rows);
  getPod(p, m.cols);
  getPod(p, m.groupSize);
  getPod(p, m.groups);
  int32_t bits;
  getPod(p, bits);
  m.bits = bits;
  uint8_t symmetric;
  getPod(p, symmetric);
  m.symmetric = symmetric;
  getArray(p, m.packed);
  getArray(p, m.scales);
  getArray(p, m.zeroPoints);
}

/// One layer's quantization, decided before any layer is quantized.
struct Plan {
  LinearOp op;
  /// The weight's constant: the weight itself, or stored [K, N] behind
  /// `transpose` (quench-raise-ops' form of a MatMul's initializer).
  ConstantOp cst;
  TransposeOp transpose;
  LayerQuantRecord rec;
  Scheme scheme;
  QuantizedWeight q;
  bool w8a8 = false;
  std::optional<float> inputScale; ///< static W8A8
  /// W8A8 input channels kept in float (sorted), and their weight
  /// columns (row-major [N, outliers.size()], filled with the codes).
  std::vector<int64_t> outliers;
  std::vector<float> outlierCols;
};

/// The constant of a linear's weight (Plan::cst) and the 2-D transpose it
/// is read through, if any; a null constant when the weight is computed.
std::pair<ConstantOp, TransposeOp> weightConstantOf(LinearOp op) {
  auto transpose = op.getWeight().getDefiningOp<TransposeOp>();
  if (transpose && transpose.getPermutation() != ArrayRef<int64_t>{1, 0})
    transpose = nullptr;
  auto cst = (transpose ? transpose.getInput() : op.getWeight())
                 .getDefiningOp<ConstantOp>();
  return {cst, cst ? transpose : nullptr};
}

/// The Gram matrix of x / s from that of x: G[i, j] / (s_i s_j).
std::shared_ptr<const std::vector<double>>
scaledGram(const std::vector<double> &gram, ArrayRef<float> s) {
  size_t k = s.size();
  auto out = std::make_shared<std::vector<double>>(gram);
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < k; ++j)
      (*out)[i * k + j] /=
          static_cast<double>(s[i]) * static_cast<double>(s[j]);
  return out;
}

/// The AWQ searches' configuration for a layer of scheme `s`.
qq::AWQConfig awqConfig(const Scheme &s, const WeightQuantOptions &options) {
  qq::AWQConfig cfg;
  cfg.bits = static_cast<int>(s.bits);
  cfg.groupSize = s.groupSize;
  cfg.symmetric = s.symmetric;
  cfg.scaleType = s.scaleType;
  cfg.powerOfTwo = options.awqPowerOfTwo;
  cfg.threads = options.threads;
  return cfg;
}

/// Whether two schemes quantize alike (one AWQ search serves both).
bool sameFormat(const Scheme &a, const Scheme &b) {
  return a.bits == b.bits && a.groupSize == b.groupSize &&
         a.symmetric == b.symmetric && a.scaleType == b.scaleType;
}

/// Whether this process prints progress: with several processes only rank
/// 0 does (each computes the same AWQ scales and budget).
bool showsProgress(const WeightQuantOptions &options) {
  return options.progress && (!options.comm || options.comm->rank() == 0);
}

using GramLookup = llvm::function_ref<
    llvm::Expected<std::shared_ptr<const std::vector<double>>>(StringRef)>;

/// AWQ's scale search and migration (docs/quantization.md, "AWQ"): for
/// every group of linears sharing an input (findScaleGroups) whose
/// quantized members are all AWQ layers of one format, searchAWQScales on
/// the group's Gram matrix and mean |x|; the scales found are migrated
/// (x / s into the producer, W diag(s) into every member) once every
/// group's search succeeded, recorded per layer in `scales`, and the plans
/// then read their (new) weight constants. One remark says what was
/// migrated and which AWQ layers kept their input unscaled, and why.
LogicalResult
migrateAWQScales(ModuleOp module, std::vector<Plan> &plans,
                 const std::unordered_map<std::string, std::vector<float>>
                     &meanAbs,
                 const WeightQuantOptions &options, GramLookup gramOf,
                 std::unordered_map<std::string, std::vector<float>> &scales) {
  Location loc = module.getLoc();
  llvm::DenseMap<Operation *, Plan *> planOf;
  for (Plan &p : plans)
    planOf[p.op.getOperation()] = &p;
  std::vector<ScaleGroup> groups = findScaleGroups(module);
  std::vector<std::pair<const ScaleGroup *, std::vector<float>>> migrations;
  std::vector<std::string> unscaled;
  int64_t awqGroups = 0, betterUnscaled = 0, migratedLayers = 0;
  // The groups to search (all of whose quantized members are AWQ layers of
  // one format, with an absorber for 1 / s), with those members.
  std::vector<std::pair<const ScaleGroup *, std::vector<Plan *>>> searches;
  for (const ScaleGroup &g : groups) {
    std::vector<Plan *> members;
    bool otherSchemes = false;
    for (LinearOp op : g.linears) {
      Plan *p = planOf.lookup(op.getOperation());
      if (!p || p->scheme.skip)
        continue;
      if (!p->scheme.awq ||
          (!members.empty() && !sameFormat(members.front()->scheme, p->scheme)))
        otherSchemes = true;
      if (p->scheme.awq)
        members.push_back(p);
    }
    if (members.empty())
      continue;
    std::string reason = !g.absorber ? g.reason
                         : otherSchemes
                             ? "input shared with layers of other schemes"
                             : "";
    if (!reason.empty()) {
      for (Plan *p : members)
        unscaled.push_back(p->rec.name + " (" + reason + ")");
      continue;
    }
    searches.emplace_back(&g, std::move(members));
  }
  // The searches, with progress: each tries 21 alphas of RTN over the
  // group's weights and evaluates tr(dW H dW^T), ~ 21 rows K^2.
  auto searchWork = [](const ScaleGroup &g, const std::vector<Plan *> &ms) {
    double rows = 0;
    for (const Plan *p : ms)
      rows += static_cast<double>(p->rec.outFeatures);
    double k = static_cast<double>(g.channels);
    return 21.0 * rows * k * k;
  };
  double totalWork = 0;
  for (auto &[g, members] : searches)
    totalWork += searchWork(*g, members);
  StageProgress progress("awq", "scale search of group",
                         static_cast<int64_t>(searches.size()), totalWork,
                         showsProgress(options));
  for (auto &[gp, members] : searches) {
    const ScaleGroup &g = *gp;
    ++awqGroups;
    std::vector<std::vector<float>> weights;
    std::vector<const float *> ptrs;
    std::vector<int64_t> rows;
    for (Plan *p : members) {
      weights.push_back(
          *readFloatWeights(p->cst, static_cast<bool>(p->transpose)));
      ptrs.push_back(weights.back().data());
      rows.push_back(p->rec.outFeatures);
    }
    const std::string &name = members.front()->rec.name;
    auto gram = gramOf(name);
    if (!gram)
      return emitError(loc) << "AWQ: layer '" << name
                            << "': " << llvm::toString(gram.takeError());
    size_t k = static_cast<size_t>(g.channels);
    if (!*gram || (*gram)->size() != k * k)
      return emitError(loc) << "AWQ: no usable input Gram matrix for layer '"
                            << name << "'";
    qq::AWQScaleResult best = qq::searchAWQScales(
        ptrs, rows, g.channels, (*gram)->data(), meanAbs.at(name).data(),
        awqConfig(members.front()->scheme, options));
    if (best.alpha > 0)
      migrations.emplace_back(&g, std::move(best.scales));
    else
      ++betterUnscaled;
    progress.step(name, searchWork(g, members));
  }
  for (auto &[g, s] : migrations) {
    migrateScales(*g, s);
    for (const std::string &name : g->names)
      scales[name] = s;
    migratedLayers += static_cast<int64_t>(g->names.size());
  }
  // Migration replaced weight constants (of the groups' members and of
  // linears that absorbed 1 / s): every plan reads its weight anew.
  if (!migrations.empty())
    for (Plan &p : plans)
      std::tie(p.cst, p.transpose) = weightConstantOf(p.op);
  InFlightDiagnostic remark =
      emitRemark(loc) << "AWQ: scales migrated into " << migratedLayers
                      << " linear" << (migratedLayers == 1 ? "" : "s") << " ("
                      << migrations.size() << " of " << awqGroups << " group"
                      << (awqGroups == 1 ? "" : "s") << ")";
  if (betterUnscaled)
    remark << "; " << betterUnscaled << " group"
           << (betterUnscaled == 1 ? "" : "s")
           << " quantize best unscaled (alpha 0)";
  if (!unscaled.empty())
    remark << "; inputs left unscaled (clipping only): "
           << llvm::join(unscaled, ", ");
  return success();
}

struct QuenchQuantizeWeightsPass
    : public quench::impl::QuenchQuantizeWeightsBase<
          QuenchQuantizeWeightsPass> {
  using Base::Base;
  /// With calibration results and a report (createQuenchQuantizeWeights
  /// with WeightQuantOptions).
  QuenchQuantizeWeightsPass(WeightQuantOptions options,
                            std::vector<LayerQuantRecord> *report)
      : Base(options), inputRange(std::move(options.inputRange)),
        inputChannelMax(std::move(options.inputChannelMax)),
        inputGram(std::move(options.inputGram)),
        hasInputGram(std::move(options.hasInputGram)),
        inputMeanAbs(std::move(options.inputMeanAbs)),
        progress(options.progress), comm(options.comm), report(report) {}

  void runOnOperation() override {
    WeightQuantOptions o;
    o.bits = bits;
    o.groupSize = groupSize;
    o.symmetric = symmetric;
    o.scaleType = scaleType;
    o.quantizeHead = quantizeHead;
    o.exclude.assign(exclude.begin(), exclude.end());
    o.recipe = recipe;
    o.quantizeEmbeddings = quantizeEmbeddings;
    o.embeddingBits = embeddingBits;
    o.embeddingGroupSize = embeddingGroupSize;
    o.algo = algo;
    o.gptqActOrder = gptqActOrder;
    o.gptqDampening = gptqDampening;
    o.threads = threads;
    o.activations = activations;
    o.staticInputRange = staticInputRange;
    o.outliers = outliers;
    o.outlierThreshold = outlierThreshold;
    o.outlierCap = outlierCap;
    o.testChannelMax.assign(testChannelMax.begin(), testChannelMax.end());
    o.inputChannelMax = inputChannelMax;
    o.bitsBudget = bitsBudget;
    o.hqqLpNorm = hqqLpNorm;
    o.awqPowerOfTwo = awqPowerOfTwo;
    o.inputRange = inputRange;
    o.inputMeanAbs = inputMeanAbs;
    o.inputGram = inputGram;
    o.hasInputGram = hasInputGram;
    o.progress = progress;
    o.comm = comm;
    if (failed(quantizeWeights(getOperation(), o, report)))
      signalPassFailure();
  }

  std::function<std::optional<float>(llvm::StringRef)> inputRange;
  decltype(WeightQuantOptions::inputChannelMax) inputChannelMax;
  decltype(WeightQuantOptions::inputGram) inputGram;
  decltype(WeightQuantOptions::hasInputGram) hasInputGram;
  decltype(WeightQuantOptions::inputMeanAbs) inputMeanAbs;
  bool progress = false;
  Communicator *comm = nullptr;
  std::vector<LayerQuantRecord> *report = nullptr;
};

} // namespace

std::unique_ptr<Pass>
quench::createQuenchQuantizeWeights(WeightQuantOptions options,
                                    std::vector<LayerQuantRecord> *report) {
  return std::make_unique<QuenchQuantizeWeightsPass>(std::move(options),
                                                     report);
}

LogicalResult quench::quantizeWeights(ModuleOp module,
                                      const WeightQuantOptions &options,
                                      std::vector<LayerQuantRecord> *report) {
  Location loc = module.getLoc();
  Scheme defaults;
  defaults.bits = options.bits;
  defaults.groupSize = options.groupSize;
  defaults.symmetric = options.symmetric;
  FailureOr<qq::ScaleType> st = parseScaleType(options.scaleType, loc);
  if (failed(st))
    return failure();
  defaults.scaleType = *st;
  if (failed(parseAlgo(options.algo, defaults, "weight quantization", loc)))
    return failure();
  defaults.gptqActOrder = options.gptqActOrder;
  defaults.gptqDampening = options.gptqDampening;
  if (failed(checkScheme(defaults, "weight quantization", loc)))
    return failure();
  SmallVector<Rule> rules;
  for (const std::string &e : options.exclude) {
    Scheme skip;
    skip.skip = true;
    llvm::Expected<Rule> rule = Rule::create(e, skip);
    if (!rule)
      return emitError(loc) << "bad exclude pattern '" << e
                            << "': " << llvm::toString(rule.takeError());
    rules.push_back(std::move(*rule));
  }
  if (!options.recipe.empty() &&
      failed(parseRecipe(options.recipe, defaults, rules, loc)))
    return failure();
  ActQuant act;
  if (options.activations == "none")
    act = ActQuant::None;
  else if (options.activations == "static")
    act = ActQuant::Static;
  else if (options.activations == "dynamic")
    act = ActQuant::Dynamic;
  else
    return emitError(loc) << "activations must be none, static or dynamic, "
                             "got '"
                          << options.activations << "'";
  auto isW8A8Scheme = [](const Scheme &s) {
    return s.bits == 8 && s.groupSize == 0 && s.symmetric;
  };
  if (act != ActQuant::None && !isW8A8Scheme(defaults))
    return emitError(loc) << "activation quantization (W8A8) needs 8-bit "
                             "per-channel symmetric weights, got "
                          << describe(defaults);
  // AWQ's search measures the weights' error alone (activations exact).
  if (act != ActQuant::None &&
      (defaults.awq || llvm::any_of(rules, [](const Rule &r) {
         return !r.scheme.skip && r.scheme.awq;
       })))
    return emitError(loc) << "AWQ is for weight-only schemes; it does not "
                             "combine with activations="
                          << options.activations;

  // Embedding tables: RTN codes of embedding-bits in groups of
  // embedding-group-size (8 bits per row: int8 codes with f32 row scales).
  Scheme embScheme;
  embScheme.bits = static_cast<unsigned>(options.embeddingBits);
  embScheme.groupSize = options.embeddingGroupSize;
  embScheme.symmetric = options.symmetric;
  embScheme.scaleType = *st;
  if (options.quantizeEmbeddings) {
    int64_t eb = options.embeddingBits, eg = options.embeddingGroupSize;
    if (eb != 2 && eb != 4 && eb != 8)
      return emitError(loc) << "embedding bits must be 8, 4 or 2, got " << eb;
    if (eg < 0 || eg > qq::kMaxGroupSize || (eg * eb) % 8 != 0)
      return emitError(loc)
             << "embedding group size must be 0 (one scale per row) or a "
                "positive multiple of "
             << 8 / eb << " up to " << qq::kMaxGroupSize << ", got " << eg;
  }

  // Outlier splitting (W8A8 only): the option's rule (count 0: off),
  // which a recipe's "outliers" replaces per layer.
  qq::OutlierRule outlierRule;
  outlierRule.count = 0;
  bool recipeOutliers = defaults.outliers && *defaults.outliers != 0;
  for (const Rule &r : rules)
    recipeOutliers |= r.scheme.outliers && *r.scheme.outliers != 0;
  if (!options.outliers.empty() || recipeOutliers) {
    StringRef v = options.outliers;
    unsigned long long count;
    if (v.empty())
      outlierRule.count = 0;
    else if (v == "auto")
      outlierRule.count = -1;
    else if (!v.getAsInteger(10, count) && count <= (1ull << 40))
      outlierRule.count = static_cast<int64_t>(count);
    else
      return emitError(loc) << "outliers must be auto or a number of "
                               "channels, got '"
                            << v << "'";
    if (act == ActQuant::None)
      return emitError(loc) << "outlier splitting ("
                            << (v.empty() ? std::string("recipe")
                                          : "outliers=" + v.str())
                            << ") needs W8A8 (activations=static or "
                               "dynamic)";
    if (!(options.outlierThreshold > 1.0) ||
        !std::isfinite(options.outlierThreshold))
      return emitError(loc) << "outlier-threshold must be a number above 1, "
                               "got "
                            << options.outlierThreshold;
    if (options.outlierCap < 0)
      return emitError(loc) << "outlier-cap must be 0 (K / 8) or a positive "
                               "number of channels, got "
                            << options.outlierCap;
    outlierRule.threshold = options.outlierThreshold;
    outlierRule.cap = options.outlierCap;
  }

  // Decide every layer's scheme, then quantize them all, then rewrite: an
  // error (missing calibration, a bad Gram matrix) leaves the module as it
  // was, and every layer that lacks statistics is named at once.
  // W8A8 weights: int8 per output channel, symmetric, f32 scales.
  Scheme w8a8Scheme;
  w8a8Scheme.scaleType = qq::ScaleType::F32;
  SmallVector<LinearOp> linears;
  module.walk([&](LinearOp op) { linears.push_back(op); });
  std::vector<Plan> plans;
  SmallVector<std::string> noRange, notW8A8, noChannelMax;
  for (LinearOp op : linears) {
    auto [cst, transpose] = weightConstantOf(op);
    if (!cst)
      continue;
    Plan plan;
    plan.op = op;
    plan.cst = cst;
    plan.transpose = transpose;
    LayerQuantRecord &rec = plan.rec;
    rec.name = layerName(op.getLoc());
    auto wType = cast<RankedTensorType>(op.getWeight().getType());
    rec.outFeatures = wType.getDimSize(0);
    rec.inFeatures = wType.getDimSize(1);
    rec.bytesBefore = wType.getNumElements() *
                      getStorageBytesPerElement(wType.getElementType());
    rec.bytesAfter = rec.bytesBefore;
    Scheme &scheme = plan.scheme;
    scheme = defaults;
    std::string why;
    for (const Rule &r : rules)
      if (r.pattern.match(rec.name)) {
        scheme = r.scheme;
        if (scheme.skip)
          why = " (matches '" + *r.text + "')";
        break;
      }
    if (!scheme.skip && !options.quantizeHead && reachesReturn(op)) {
      scheme.skip = true;
      why = " (output head)";
    }
    // The floats are read when the layer is quantized: one layer's copy at
    // a time, not every weight of the model at once.
    if (!scheme.skip && !hasReadableFloatWeights(cst)) {
      scheme.skip = true;
      why = " (weight type not supported)";
    }
    // A group wider than the layer is one group per output channel (it
    // would only pad every row with zero codes; docs/quantization.md).
    if (!scheme.skip && scheme.groupSize > rec.inFeatures)
      scheme.groupSize = 0;
    rec.scheme = describe(scheme) + why;
    if (!scheme.skip && act != ActQuant::None) {
      if (!isW8A8Scheme(scheme)) {
        Scheme shown = scheme;
        shown.gptq = shown.hqq = false;
        notW8A8.push_back(rec.name + " (" + describe(shown) + ")");
      } else if (!op.getInput().getType().getElementType().isF32()) {
        rec.scheme += " (W8A8 needs f32 activations)";
      } else if (rec.inFeatures > QLinearOp::kMaxInFeatures) {
        rec.scheme += " (W8A8: in_features above " +
                      std::to_string(QLinearOp::kMaxInFeatures) + ")";
      } else {
        plan.w8a8 = true;
        rec.scheme = describeW8A8(act) + (scheme.gptq  ? " gptq"
                                          : scheme.hqq ? " hqq"
                                                       : "");
        std::optional<float> range;
        qq::OutlierRule rule = outlierRule;
        if (scheme.outliers)
          rule.count = *scheme.outliers;
        if (rule.count != 0) {
          std::optional<std::vector<float>> maxima;
          if (options.inputChannelMax)
            maxima = options.inputChannelMax(rec.name);
          else if (static_cast<int64_t>(options.testChannelMax.size()) ==
                   rec.inFeatures)
            maxima = std::vector<float>(options.testChannelMax.begin(),
                                        options.testChannelMax.end());
          if (!maxima ||
              static_cast<int64_t>(maxima->size()) != rec.inFeatures) {
            noChannelMax.push_back(rec.name);
          } else {
            plan.outliers = qq::selectOutlierChannels(
                maxima->data(), rec.inFeatures, rule);
            if (!plan.outliers.empty()) {
              rec.scheme += ", " + std::to_string(plan.outliers.size()) +
                            " f32 outlier channel" +
                            (plan.outliers.size() == 1 ? "" : "s");
              // The int8 part's minmax range: the other channels'.
              range = qq::inlierRange(maxima->data(), rec.inFeatures,
                                      plan.outliers);
            }
          }
        }
        if (act == ActQuant::Static) {
          // Without outlier channels: the calibrated range.
          if (range) {
          } else if (options.inputRange) {
            range = options.inputRange(rec.name);
          } else if (options.staticInputRange > 0) {
            range = static_cast<float>(options.staticInputRange);
          }
          if (!range || !std::isfinite(*range) || *range < 0)
            noRange.push_back(rec.name);
          else
            // A layer whose input was always zero gets scale 1 (as a
            // dynamic row of zeros).
            plan.inputScale = *range > 0 ? *range / 127.0f : 1.0f;
        }
      }
    }
    plans.push_back(std::move(plan));
  }
  if (!notW8A8.empty())
    return emitError(loc) << "activation quantization (W8A8) needs 8-bit "
                             "per-channel symmetric weights; the recipe "
                             "gives other schemes to layers: "
                          << llvm::join(notW8A8, ", ");
  if (!noChannelMax.empty())
    return emitError(loc)
           << "outlier splitting needs calibration (--calib or "
              "--calib-cache); no channel maxima for layers: "
           << llvm::join(noChannelMax, ", ");
  if (!noRange.empty())
    return emitError(loc)
           << "--quant=w8a8 needs calibration (--calib or --calib-cache); "
              "no range for layers: "
           << llvm::join(noRange, ", ");

  // Every layer rounded by GPTQ needs its input statistics; name all the
  // missing ones at once. The matrices themselves are fetched one layer at
  // a time below.
  auto gramOf = [&](StringRef layer)
      -> llvm::Expected<std::shared_ptr<const std::vector<double>>> {
    if (!options.inputGram)
      return nullptr;
    return options.inputGram(layer);
  };
  // Mixed precision under a bits budget (docs/quantization.md): every
  // layer the pass quantizes gets the candidate scheme (bits, group size,
  // or float) that minimizes the sum of predicted errors with the average
  // storage bits per weight at most the budget.
  if (!(options.hqqLpNorm > 0.0 && options.hqqLpNorm <= 2.0))
    return emitError(loc) << "hqq-lp-norm must be in (0, 2], got "
                          << options.hqqLpNorm;
  if (options.bitsBudget < 0 || !std::isfinite(options.bitsBudget))
    return emitError(loc) << "bits-budget must be a positive number of bits "
                             "per weight, got "
                          << options.bitsBudget;
  if (options.bitsBudget > 0) {
    if (act != ActQuant::None)
      return emitError(loc) << "bits-budget chooses weight-only schemes; it "
                               "does not combine with activations="
                            << options.activations;
    struct Candidate {
      bool skip;
      unsigned bits;
      int64_t groupSize;
    };
    static const Candidate candidates[] = {
        {true, 0, 0},  {false, 8, 0},  {false, 4, 128}, {false, 4, 32},
        {false, 3, 128}, {false, 3, 32}, {false, 2, 32}};
    std::vector<Plan *> budgeted;
    for (Plan &p : plans)
      if (!p.scheme.skip)
        budgeted.push_back(&p);
    // Hessian-weighted errors need every layer's Gram matrix (errors of
    // the two kinds are not comparable).
    bool hessian = options.inputGram != nullptr;
    for (Plan *p : budgeted) {
      if (!hessian)
        break;
      if (options.hasInputGram) {
        hessian = options.hasInputGram(p->rec.name);
      } else {
        auto g = gramOf(p->rec.name);
        if (!g)
          return emitError(loc) << "bits budget: layer '" << p->rec.name
                                << "': " << llvm::toString(g.takeError());
        hessian = *g != nullptr;
      }
    }
    if (!hessian && !budgeted.empty())
      emitRemark(loc) << "bits budget: no calibration statistics for every "
                         "layer (--calib); layer sensitivities are their "
                         "relative weight errors |dW|^2 / |W|^2, not the "
                         "output errors tr(dW H dW^T) / tr(W H W^T)";
    std::vector<qq::BudgetLayer> layers;
    int64_t weights = 0;
    // Each candidate's error costs ~K^2 N / 2 with Gram matrices (N K
    // without).
    auto errorWork = [&](const Plan *p) {
      double n = static_cast<double>(p->rec.outFeatures),
             k = static_cast<double>(p->rec.inFeatures);
      return hessian ? n * k * k : n * k;
    };
    double budgetWork = 0;
    for (const Plan *p : budgeted)
      budgetWork += errorWork(p);
    StageProgress budgetProgress("quantize", "bits budget: errors of layer",
                                 static_cast<int64_t>(budgeted.size()),
                                 budgetWork, showsProgress(options));
    // H factored once per Gram matrix (layers reading one input, listed
    // one after the other, have equal ones): the energy and every
    // candidate's error are then ||dW P L||^2.
    std::shared_ptr<const std::vector<double>> factoredGram;
    std::optional<qq::GramFactor> factor;
    for (Plan *p : budgeted) {
      int64_t n = p->rec.outFeatures, k = p->rec.inFeatures;
      weights += n * k;
      std::vector<float> w =
          *readFloatWeights(p->cst, static_cast<bool>(p->transpose));
      std::shared_ptr<const std::vector<double>> gram;
      if (hessian) {
        auto g = gramOf(p->rec.name);
        if (!g)
          return emitError(loc) << "bits budget: layer '" << p->rec.name
                                << "': " << llvm::toString(g.takeError());
        gram = *g;
        if (!gram || gram->size() != static_cast<size_t>(k * k))
          return emitError(loc) << "bits budget: no usable input Gram matrix "
                                   "for layer '"
                                << p->rec.name << "'";
      }
      if (gram && (!factoredGram || *gram != *factoredGram)) {
        factor.emplace(gram->data(), k, options.threads);
        factoredGram = gram;
      }
      // Errors relative to the layer's own output energy (noise-to-signal
      // ratios): comparable across layers of different scales.
      double energy =
          gram ? qq::outputEnergy(w.data(), n, k, *factor, options.threads)
               : qq::outputEnergy(w.data(), n, k, nullptr, options.threads);
      qq::BudgetLayer layer;
      for (const Candidate &c : candidates) {
        if (c.skip) {
          layer.bits.push_back(p->rec.bytesBefore * 8);
          layer.error.push_back(0.0);
          continue;
        }
        const Scheme &s = p->scheme;
        // GPTQ layers are predicted with RTN's error (GPTQ per candidate
        // would cost a GPTQ run each).
        qq::HQQOptions hqqOptions;
        hqqOptions.threads = options.threads;
        hqqOptions.lpNorm = static_cast<float>(options.hqqLpNorm);
        qq::QuantizedMatrix m =
            s.hqq ? qq::quantizeMatrixHQQ(w.data(), n, k, c.bits,
                                          c.groupSize, s.symmetric,
                                          s.scaleType, hqqOptions)
                  : qq::quantizeMatrixRTN(w.data(), n, k, c.bits,
                                          c.groupSize, s.symmetric,
                                          s.scaleType, options.threads);
        layer.bits.push_back(qq::storageBits(n, k, c.bits, c.groupSize,
                                             s.symmetric, s.scaleType));
        double error =
            gram ? qq::quantizationError(w.data(), m, *factor, options.threads)
                 : qq::quantizationError(w.data(), m, nullptr, options.threads);
        layer.error.push_back(energy > 0 ? error / energy : 0.0);
      }
      layers.push_back(std::move(layer));
      budgetProgress.step(p->rec.name, errorWork(p));
    }
    int64_t maxBits =
        static_cast<int64_t>(std::floor(options.bitsBudget * weights));
    std::vector<size_t> choice;
    std::string why;
    if (!qq::allocateBudget(layers, maxBits, choice, why)) {
      int64_t minBits = 0;
      for (const qq::BudgetLayer &l : layers)
        minBits += *std::min_element(l.bits.begin(), l.bits.end());
      std::string msg;
      llvm::raw_string_ostream os(msg);
      os << "bits budget " << llvm::format("%.3f", options.bitsBudget)
         << " bits per weight is below the smallest candidate schemes: "
         << llvm::format("%.3f", static_cast<double>(minBits) / weights)
         << " bits per weight over the " << budgeted.size()
         << " quantized layers";
      return emitError(loc) << msg;
    }
    for (size_t i = 0; i < budgeted.size(); ++i) {
      const Candidate &c = candidates[choice[i]];
      Scheme &s = budgeted[i]->scheme;
      s.skip = c.skip;
      s.bits = c.bits;
      s.groupSize = c.groupSize;
      budgeted[i]->rec.scheme =
          c.skip ? "float (bits budget)" : describe(s);
    }
  }

  // Whether calibration has the input Gram matrix of `p` (asked without
  // reading it when the driver can); an error (a damaged statistics file)
  // is reported for `algo` and fails.
  auto hasGram = [&](const Plan &p, StringRef algo) -> FailureOr<bool> {
    if (options.hasInputGram)
      return options.hasInputGram(p.rec.name);
    auto g = gramOf(p.rec.name);
    if (!g)
      return emitError(loc) << algo << ": layer '" << p.rec.name
                            << "': " << llvm::toString(g.takeError());
    return *g != nullptr;
  };

  // AWQ layers need their input's Gram matrix and per-channel mean |x|
  // (the mean is small and kept; the matrices are read when used).
  std::unordered_map<std::string, std::vector<float>> awqMeanAbs;
  bool anyAWQ = false;
  {
    std::vector<std::string> missing;
    for (Plan &p : plans) {
      if (p.scheme.skip || !p.scheme.awq)
        continue;
      anyAWQ = true;
      FailureOr<bool> present = hasGram(p, "AWQ");
      if (failed(present))
        return failure();
      std::optional<std::vector<float>> mean;
      if (*present && options.inputMeanAbs)
        mean = options.inputMeanAbs(p.rec.name);
      if (!mean) {
        missing.push_back(p.rec.name);
        continue;
      }
      if (static_cast<int64_t>(mean->size()) != p.rec.inFeatures)
        return emitError(loc)
               << "AWQ: the mean |x| of layer '" << p.rec.name << "' has "
               << mean->size() << " channels, expected " << p.rec.inFeatures;
      awqMeanAbs[p.rec.name] = std::move(*mean);
    }
    if (!missing.empty())
      return emitError(loc) << "AWQ needs calibration (--calib or "
                               "--calib-cache, with --calib-gram); no input "
                               "statistics for layers: "
                            << llvm::join(missing, ", ");
  }

  int64_t gptqLayers = 0;
  {
    std::vector<std::string> missing;
    for (Plan &p : plans) {
      if (p.scheme.skip || !p.scheme.gptq)
        continue;
      ++gptqLayers;
      if (p.scheme.awq)
        continue; // checked above
      FailureOr<bool> present = hasGram(p, "GPTQ");
      if (failed(present))
        return failure();
      if (!*present)
        missing.push_back(p.rec.name);
    }
    if (!missing.empty()) {
      InFlightDiagnostic diag =
          emitError(loc) << "GPTQ needs calibration (--calib or "
                            "--calib-cache); no input statistics for layers: ";
      llvm::interleaveComma(missing, diag);
      return diag;
    }
  }

  // AWQ's scales: searched for every group first (an error leaves the
  // module unchanged), then migrated, and the plans take the new weights.
  std::unordered_map<std::string, std::vector<float>> awqScales;
  if (anyAWQ &&
      failed(migrateAWQScales(module, plans, awqMeanAbs, options, gramOf,
                              awqScales)))
    return failure();

  // One layer at a time: its floats, its codes, then constants (in the
  // weight arena when large) and the source weight's pages released.
  Communicator *comm = options.comm;
  int rank = comm ? comm->rank() : 0;
  int numProcs = comm ? comm->size() : 1;
  bool progress = showsProgress(options);
  // Progress over every layer quantized here, weighted by an estimate of
  // its cost (multiply-adds, roughly): RTN N K, HQQ ~20 iterations of a few
  // passes, AWQ's clipping search ~11 ratios of a group-sized quadratic
  // form per weight, GPTQ K^2 (K + N).
  auto layerWork = [](const Plan &p) {
    double n = static_cast<double>(p.rec.outFeatures),
           k = static_cast<double>(p.rec.inFeatures);
    if (p.scheme.gptq)
      return k * k * (k + n);
    if (p.scheme.awq)
      return 11.0 * n * k * static_cast<double>(p.scheme.groupSize ? p.scheme.groupSize : k);
    if (p.scheme.hqq)
      return 80.0 * n * k;
    return n * k;
  };
  auto algoOf = [](const Plan &p) -> StringRef {
    if (p.w8a8)
      return "w8a8";
    if (p.scheme.awq)
      return p.scheme.gptq ? "awq+gptq" : "awq";
    return p.scheme.gptq ? "gptq" : p.scheme.hqq ? "hqq" : "rtn";
  };
  int64_t quantizedLayers = 0;
  double totalWork = 0;
  for (const Plan &p : plans)
    if (!p.scheme.skip) {
      ++quantizedLayers;
      totalWork += layerWork(p);
    }
  StageProgress layerProgress("quantize", "layer", quantizedLayers, totalWork,
                              progress);
  // A layer's codes, or an error message.
  auto compute = [&](Plan &p, qq::QuantizedMatrix &out) -> std::string {
    const Scheme &s = p.w8a8 ? w8a8Scheme : p.scheme;
    std::vector<float> w = *readFloatWeights(p.cst, static_cast<bool>(p.transpose));
    releaseConstantPages(p.cst.getValue());
    // A layer pruned by quench-prune-weights must keep its zeros exactly
    // (every scheme maps 0 to its integer zero point, so it does; checked,
    // since compressed formats and kernels will rely on it).
    const bool pruned = p.op->hasAttr(kSparsityAttrName);
    auto checkZeros = [&]() -> std::string {
      if (!pruned)
        return "";
      const int64_t k = p.rec.inFeatures;
      for (size_t i = 0; i < w.size(); ++i)
        if (w[i] == 0.0f &&
            qq::dequantizeAt(out, static_cast<int64_t>(i) / k,
                             static_cast<int64_t>(i) % k) != 0.0f)
          return "layer '" + p.rec.name +
                 "': quantization moved a pruned weight off zero";
      return "";
    };
    // Outlier columns leave the int8 part (kept as they are in float).
    if (!p.outliers.empty())
      p.outlierCols = qq::splitOutlierColumns(w.data(), p.rec.outFeatures,
                                              p.rec.inFeatures, p.outliers);
    if (p.scheme.hqq) {
      qq::HQQOptions hqqOptions;
      hqqOptions.threads = options.threads;
      hqqOptions.lpNorm = static_cast<float>(options.hqqLpNorm);
      out = qq::quantizeMatrixHQQ(w.data(), p.rec.outFeatures,
                                  p.rec.inFeatures, static_cast<int>(s.bits),
                                  s.groupSize, s.symmetric, s.scaleType,
                                  hqqOptions);
      return checkZeros();
    }
    if (!p.scheme.gptq && !p.scheme.awq) {
      out = qq::quantizeMatrixRTN(w.data(), p.rec.outFeatures, p.rec.inFeatures,
                                  static_cast<int>(s.bits), s.groupSize,
                                  s.symmetric, s.scaleType);
      return checkZeros();
    }
    // This layer's Gram matrix only, dropped at the end of the call.
    const char *algoName = p.scheme.gptq ? "GPTQ" : "AWQ";
    auto gram = gramOf(p.rec.name);
    if (!gram)
      return std::string(algoName) + ": layer '" + p.rec.name +
             "': " + llvm::toString(gram.takeError());
    size_t k = static_cast<size_t>(p.rec.inFeatures);
    if (!*gram)
      return std::string(algoName) + ": no input Gram matrix for layer '" +
             p.rec.name + "'";
    if ((*gram)->size() != k * k)
      return std::string(algoName) + ": the input Gram matrix of layer '" +
             p.rec.name + "' has " + std::to_string((*gram)->size()) +
             " elements, expected " + std::to_string(k) + " x " +
             std::to_string(k);
    // Outlier channels are not inputs of the int8 part: as dead inputs
    // (zero rows and columns of H) GPTQ moves no error onto them.
    if (!p.outliers.empty()) {
      auto copy = std::make_shared<std::vector<double>>(**gram);
      for (int64_t j : p.outliers)
        for (size_t i = 0; i < k; ++i)
          (*copy)[i * k + j] = (*copy)[j * k + i] = 0.0;
      *gram = std::move(copy);
    }
    // A layer whose input AWQ scaled reads x / s: its Gram matrix is
    // S^-1 H S^-1.
    if (auto it = awqScales.find(p.rec.name); it != awqScales.end())
      *gram = scaledGram(**gram, it->second);
    if (!p.scheme.gptq) {
      qq::AWQConfig cfg = awqConfig(s, options);
      std::vector<float> clip =
          qq::searchAWQClip(w.data(), p.rec.outFeatures, p.rec.inFeatures,
                            (*gram)->data(), cfg);
      out = qq::quantizeMatrixClipped(w.data(), p.rec.outFeatures,
                                      p.rec.inFeatures, cfg, clip.data());
      return checkZeros();
    }
    qq::GPTQOptions gptqOptions;
    // A layer pruned by quench-prune-weights keeps its zeros: GPTQ
    // compensates on the kept weights only (docs/sparsity.md).
    std::vector<uint8_t> keep;
    if (pruned) {
      keep.resize(w.size());
      for (size_t i = 0; i < w.size(); ++i)
        keep[i] = w[i] != 0.0f;
      gptqOptions.keepMask = keep.data();
    }
    gptqOptions.actOrder = p.scheme.gptqActOrder;
    gptqOptions.dampening = p.scheme.gptqDampening;
    gptqOptions.threads = options.threads;
    gptqOptions.computeLoss = false; // not reported
    qq::GPTQResult res;
    std::string error;
    if (!qq::quantizeMatrixGPTQ(w.data(), p.rec.outFeatures, p.rec.inFeatures,
                                (*gram)->data(), static_cast<int>(s.bits),
                                s.groupSize, s.symmetric, s.scaleType,
                                gptqOptions, res, error))
      return "layer '" + p.rec.name + "': " + error;
    out = std::move(res.matrix);
    return checkZeros();
  };
  // The codes become constants (on rank 0 only), with GPTQ's progress.
  auto finish = [&](Plan &p, const qq::QuantizedMatrix &m) {
    const Scheme &s = p.w8a8 ? w8a8Scheme : p.scheme;
    p.q = p.w8a8 ? makeW8A8Weight(p.cst, m) : makeNBitsWeight(p.cst, m, s);
    // Codes computed by another process: the float columns from here.
    if (!p.outliers.empty() && p.outlierCols.empty()) {
      std::vector<float> w =
          *readFloatWeights(p.cst, static_cast<bool>(p.transpose));
      p.outlierCols = qq::splitOutlierColumns(w.data(), p.rec.outFeatures,
                                              p.rec.inFeatures, p.outliers);
    }
    layerProgress.step((p.rec.name + " [" + algoOf(p) + "]").str(),
                       layerWork(p));
  };

  // Several processes (docs/scaling.md): the layers are dealt out by their
  // estimated work (largest first, each to the least loaded process); each
  // process quantizes its own in model order and streams the codes to rank
  // 0, which makes the constants and rewrites the module. The others stop
  // after this stage.
  std::vector<int> owner(plans.size(), 0);
  if (numProcs > 1) {
    std::vector<std::pair<double, size_t>> byWork;
    for (size_t i = 0; i < plans.size(); ++i) {
      if (plans[i].scheme.skip)
        continue;
      double n = static_cast<double>(plans[i].rec.outFeatures);
      double k = static_cast<double>(plans[i].rec.inFeatures);
      byWork.push_back({plans[i].scheme.gptq ? k * k * (k + n) : k * n, i});
    }
    std::stable_sort(
        byWork.begin(), byWork.end(),
        [](const auto &a, const auto &b) { return a.first > b.first; });
    std::vector<double> load(numProcs, 0.0);
    for (auto &[work, i] : byWork) {
      int least = static_cast<int>(std::min_element(load.begin(), load.end()) -
                                   load.begin());
      owner[i] = least;
      load[least] += work;
    }
  }
  std::string error;
  std::optional<size_t> errorPlan;
  if (rank == 0) {
    // Results still due from each process (an error ends its stream).
    std::vector<size_t> due(numProcs, 0);
    size_t dueTotal = 0;
    for (size_t i = 0; i < plans.size(); ++i)
      if (!plans[i].scheme.skip && owner[i] != 0) {
        ++due[owner[i]];
        ++dueTotal;
      }
    int source = 0;
    std::string bytes;
    auto handle = [&]() {
      LayerMessage msg;
      readLayerMessage(bytes, msg);
      bytes.clear();
      if (!msg.error.empty()) {
        if (error.empty()) {
          error = msg.error;
          errorPlan = msg.plan;
        }
        dueTotal -= due[source];
        due[source] = 0;
        return;
      }
      --due[source];
      --dueTotal;
      if (error.empty())
        finish(plans[msg.plan], msg.matrix);
    };
    for (size_t i = 0; i < plans.size() && error.empty(); ++i) {
      if (plans[i].scheme.skip || owner[i] != 0)
        continue;
      while (dueTotal &&
             comm->receive(Communicator::kQuantizedLayerTag, source, bytes,
                           /*wait=*/false))
        handle();
      qq::QuantizedMatrix m;
      std::string e = compute(plans[i], m);
      if (!e.empty()) {
        error = std::move(e);
        errorPlan = i;
        break;
      }
      finish(plans[i], m);
    }
    while (dueTotal) {
      comm->receive(Communicator::kQuantizedLayerTag, source, bytes,
                    /*wait=*/true);
      handle();
    }
  } else {
    for (size_t i = 0; i < plans.size(); ++i) {
      if (plans[i].scheme.skip || owner[i] != rank)
        continue;
      LayerMessage msg;
      msg.plan = i;
      msg.error = compute(plans[i], msg.matrix);
      comm->send(0, Communicator::kQuantizedLayerTag, writeLayerMessage(msg));
      if (!msg.error.empty()) {
        error = msg.error;
        break;
      }
    }
    comm->flushSends();
  }
  if (numProcs > 1)
    error = comm->agree(error);
  if (!error.empty())
    return emitError(errorPlan ? plans[*errorPlan].op.getLoc() : loc) << error;
  // The total time: always after GPTQ (calibrated runs are long anyway),
  // else when progress was shown.
  if (progress && (gptqLayers > 0 || layerProgress.printedAny())) {
    llvm::errs() << "quantize: ";
    if (gptqLayers > 0)
      llvm::errs() << "GPTQ of " << gptqLayers << " layer"
                   << (gptqLayers == 1 ? "" : "s");
    if (quantizedLayers > gptqLayers)
      llvm::errs() << (gptqLayers > 0 ? " and " : "")
                   << quantizedLayers - gptqLayers << " other layer"
                   << (quantizedLayers - gptqLayers == 1 ? "" : "s");
    llvm::errs() << " took " << llvm::format("%.1f s", layerProgress.elapsed())
                 << (numProcs > 1
                         ? " on " + std::to_string(numProcs) + " processes"
                         : std::string())
                 << "\n";
  }
  if (rank != 0)
    return success();

  // Rewrite. A float weight may serve several ops (an embedding table tied
  // to the output head): it is erased with its last use, and every record
  // says at the end whether its float weight is still there.
  std::vector<std::pair<LayerQuantRecord, Operation *>> records;
  llvm::DenseSet<Operation *> erased;
  auto eraseIfUnused = [&](ConstantOp cst) {
    if (cst->use_empty()) {
      erased.insert(cst.getOperation());
      cst->erase();
    }
  };
  for (Plan &p : plans) {
    Operation *cstOp = p.cst.getOperation();
    if (!p.scheme.skip) {
      p.rec.bytesAfter =
          p.w8a8 ? quantizeLinearW8A8(p.op, p.cst, p.q, p.inputScale,
                                      p.outliers, p.outlierCols)
                 : quantizeLinear(p.op, p.cst, p.q);
      // A transpose shared by several linears (CSE) goes with the last.
      if (p.transpose && p.transpose->use_empty())
        p.transpose->erase();
      eraseIfUnused(p.cst);
    }
    records.emplace_back(std::move(p.rec), p.scheme.skip ? nullptr : cstOp);
  }

  // Embedding tables (after the linears: a table tied to the output head
  // has been read for the head's codes by now). Without the option they are
  // reported as float, so that reports total every large weight.
  SmallVector<GatherOp> gathers;
  module.walk([&](GatherOp op) { gathers.push_back(op); });
  for (GatherOp op : gathers) {
    auto cst = op.getData().getDefiningOp<ConstantOp>();
    auto tType =
        cst ? dyn_cast<RankedTensorType>(cst.getType()) : RankedTensorType();
    auto resType = dyn_cast<RankedTensorType>(op.getType());
    if (!tType || !resType || op.getAxis() != 0 || tType.getRank() != 2 ||
        !isa<FloatType>(tType.getElementType()) || !tType.hasStaticShape())
      continue;
    LayerQuantRecord rec;
    rec.embedding = true;
    rec.name = layerName(op.getLoc());
    rec.outFeatures = tType.getDimSize(0);
    rec.inFeatures = tType.getDimSize(1);
    rec.bytesBefore = rec.bytesAfter =
        tType.getNumElements() *
        (tType.getElementType().getIntOrFloatBitWidth() / 8);
    // --quant-exclude (and a recipe's "skip") keeps a table float too;
    // other recipe schemes are for linears.
    const Rule *skipRule = nullptr;
    for (const Rule &r : rules)
      if (r.pattern.match(rec.name)) {
        skipRule = r.scheme.skip ? &r : nullptr;
        break;
      }
    if (!options.quantizeEmbeddings || skipRule) {
      rec.scheme = "float (embedding";
      rec.scheme += skipRule ? "; matches '" + *skipRule->text + "')" : ")";
      records.emplace_back(std::move(rec), nullptr);
      continue;
    }
    std::optional<std::vector<float>> w = readFloatWeights(cst);
    releaseConstantPages(cst.getValue());
    Operation *cstOp = cst.getOperation();
    // A group as wide as a row is one group per row, as for linears.
    Scheme es = embScheme;
    if (es.groupSize >= rec.inFeatures)
      es.groupSize = 0;
    if (!w) {
      rec.scheme = "float embedding (weight type not supported)";
      cstOp = nullptr;
    } else {
      // int8 per row (the default of --quant-embeddings) is the same form:
      // symmetric 8-bit codes with f32 row scales, V D + 4 V bytes.
      if (es.bits == 8 && es.groupSize == 0) {
        es.symmetric = true;
        es.scaleType = qq::ScaleType::F32;
      }
      std::string d = describe(es);
      if (es.groupSize == 0)
        d.replace(d.find("per-channel"), 11, "per-row");
      rec.scheme = d + " (embedding)";
      rec.bytesAfter = quantizeEmbeddingNBits(op, cst, *w, es);
      eraseIfUnused(cst);
    }
    records.emplace_back(std::move(rec), cstOp);
  }

  for (auto &[rec, cstOp] : records) {
    rec.floatKept = cstOp && !erased.contains(cstOp);
    if (report)
      report->push_back(std::move(rec));
  }
  return success();
}

std::string quench::getLayerName(Location loc) { return layerName(loc); }

bool quench::isOutputProjection(Operation *op) {
  return reachesReturn(op->getResult(0));
}

LogicalResult
quench::readRecipeSparsity(StringRef path, Location loc,
                           ArrayRef<std::string> layers,
                           std::vector<std::optional<std::string>> &out) {
  Scheme defaults;
  SmallVector<Rule> rules;
  if (failed(parseRecipe(path, defaults, rules, loc)))
    return failure();
  out.clear();
  for (const std::string &layer : layers) {
    const Scheme *scheme = &defaults;
    for (const Rule &r : rules)
      if (r.pattern.match(layer)) {
        scheme = &r.scheme;
        break;
      }
    out.push_back(scheme->sparsity.empty()
                      ? std::nullopt
                      : std::optional<std::string>(scheme->sparsity));
  }
  return success();
}
