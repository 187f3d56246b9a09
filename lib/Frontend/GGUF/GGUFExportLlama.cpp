//===- GGUFExportLlama.cpp - LLaMA graphs of any origin to GGUF -----------===//
//
// `quench-compile MODEL.onnx --quant=... --emit=gguf` (docs/gguf.md,
// "Export of ONNX models"): the LLaMA decoder is recognized in the quench
// graph by its structure, not by initializer names (torch.onnx.export names
// most MatMul weights `onnx::MatMul_123`):
//
//   logits = head(rms_norm(x_L))          head: a linear layer
//   x_{i+1} = x_i + down(silu(gate(h)) * up(h)),   h = rms_norm(x_i)
//   x_{i+1} = x_i + o(attention(q(h), k(h), v(h))), h = rms_norm(x_i)
//   x_0 = gather(table, input_ids)
//
// walked backwards from the function's first result along the residual
// stream. Inside an attention block, q, k and v are the linear layers the
// two matmuls (scores = q kᵀ, softmax(scores) v) reach through data (float)
// operands; the rotary embedding's pair layout and frequency base are read
// from the ops and constants between q and the scores.
//
//===----------------------------------------------------------------------===//

#include "GGUFExportCommon.h"
#include "quench/Frontend/GGUF/GGUFExport.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Frontend/GGUF/GGUFReader.h"
#include "quench/Quant/GGMLBlocks.h"
#include "quench/Quant/RTN.h"
#include "quench/Support/FileUtils.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SetVector.h"
#include "llvm/ADT/SmallPtrSet.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace quench;
namespace qquant = quench::quant;
using qquant::GGMLType;
using quench::gguf_export::constantBytes;
using quench::gguf_export::packLayer;
using quench::gguf_export::Replacement;

namespace {

//===----------------------------------------------------------------------===//
// Graph helpers
//===----------------------------------------------------------------------===//

/// `v` with quench.cast ops skipped (f16 exports cast around norms).
Value skipCasts(Value v) {
  while (auto c = v.getDefiningOp<CastOp>())
    v = c.getInput();
  return v;
}

/// A linear layer: quench.linear or (after quantization) matmul_nbits.
bool isLinear(Operation *op) { return op && isa<LinearOp, MatMulNBitsOp>(op); }

Value linearInput(Operation *op) {
  if (auto l = dyn_cast<LinearOp>(op))
    return l.getInput();
  return cast<MatMulNBitsOp>(op).getInput();
}

/// What a backward walk over float data operands found, stopping at linear
/// layers, norms and constants.
struct Reach {
  llvm::SetVector<Operation *> linears;
  llvm::SetVector<Operation *> ops; ///< every op visited (linears excluded)
  std::vector<ConstantOp> constants;
};

bool isFloatValue(Value v) {
  auto t = dyn_cast<ShapedType>(v.getType());
  return t && isa<FloatType>(t.getElementType());
}

/// Walks backwards from `start` over operands of float element type (data,
/// not shapes, indices or positions), through every op but linear layers
/// (collected), rms_norm and `stopAt` ops. `firstOf` (optional) ends the walk
/// at the first op it accepts, which is returned.
Operation *walkBack(Value start, Reach &reach,
                    function_ref<bool(Operation *)> firstOf = nullptr) {
  SmallVector<Value> work = {start};
  llvm::SmallPtrSet<Operation *, 32> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || !seen.insert(def).second)
      continue;
    if (firstOf && firstOf(def))
      return def;
    if (isLinear(def)) {
      reach.linears.insert(def);
      continue;
    }
    if (auto c = dyn_cast<ConstantOp>(def)) {
      reach.constants.push_back(c);
      continue;
    }
    reach.ops.insert(def);
    if (isa<RMSNormOp>(def))
      continue;
    for (Value operand : def->getOperands())
      if (isFloatValue(operand))
        work.push_back(operand);
  }
  return nullptr;
}

/// The float values of a constant (f32, f16 or bf16; splats expanded).
std::optional<std::vector<float>> readFloats(ConstantOp cst) {
  auto attr = dyn_cast<ElementsAttr>(cst.getValue());
  if (!attr)
    return std::nullopt;
  Type et = attr.getElementType();
  int64_t n = attr.getNumElements();
  std::vector<float> out(n);
  if (auto dense = dyn_cast<DenseElementsAttr>(attr);
      dense && dense.isSplat()) {
    if (!isa<FloatType>(et))
      return std::nullopt;
    float f = dense.getSplatValue<APFloat>().convertToDouble();
    std::fill(out.begin(), out.end(), f);
    return out;
  }
  std::optional<ArrayRef<char>> raw = getRawConstantData(attr);
  if (!raw)
    return std::nullopt;
  GGMLType type;
  if (et.isF32())
    type = GGMLType::F32;
  else if (et.isF16())
    type = GGMLType::F16;
  else if (et.isBF16())
    type = GGMLType::BF16;
  else
    return std::nullopt;
  if (int64_t(raw->size()) != n * getStorageBytesPerElement(et) ||
      !qquant::dequantizeGGML(
          type, reinterpret_cast<const uint8_t *>(raw->data()), n, out.data()))
    return std::nullopt;
  return out;
}

//===----------------------------------------------------------------------===//
// The recognized model
//===----------------------------------------------------------------------===//

/// An RMSNorm: quench.rms_norm, possibly followed by a product with a
/// constant vector (torch's f16 LlamaRMSNorm: the norm in f32, a cast to
/// f16, then the f16 weight), the GGUF weight being the product of both.
struct Norm {
  RMSNormOp op;
  ConstantOp extraScale; ///< the constant of the product, if any
  explicit operator bool() const { return bool(op); }
  bool operator==(const Norm &o) const { return op == o.op; }
  bool operator!=(const Norm &o) const { return op != o.op; }
};

/// The norm whose result `v` is (through casts), or a null Norm.
Norm findNorm(Value v) {
  v = skipCasts(v);
  if (auto rms = v.getDefiningOp<RMSNormOp>())
    return {rms, nullptr};
  auto mul = v.getDefiningOp<MulOp>();
  if (!mul)
    return {};
  for (auto [a, b] : {std::pair(mul.getLhs(), mul.getRhs()),
                      std::pair(mul.getRhs(), mul.getLhs())}) {
    auto rms = skipCasts(a).getDefiningOp<RMSNormOp>();
    auto cst = b.getDefiningOp<ConstantOp>();
    if (rms && cst && cast<ShapedType>(cst.getType()).getRank() == 1)
      return {rms, cst};
  }
  return {};
}

struct Block {
  Norm attnNorm, ffnNorm;
  Operation *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
  Operation *gate = nullptr, *up = nullptr, *down = nullptr;
};

struct Llama {
  GatherOp embedding;
  ConstantOp embeddingTable;
  std::vector<Block> blocks; ///< in order
  Norm outputNorm;
  Operation *head = nullptr;
  int64_t dim = 0, vocab = 0, ffn = 0, heads = 0, kvHeads = 0, headDim = 0;
  int64_t contextLength = 0;
  double epsilon = 0, ropeBase = 0;
  bool halfSplitRope = false; ///< rotate-half (HF): rows to permute
};

/// Recognition errors name what did not match, at the op where it failed.
struct Recognizer {
  std::string error;
  Operation *errorAt = nullptr;

  bool fail(Operation *at, const Twine &why) {
    if (error.empty()) {
      errorAt = at;
      error = why.str();
    }
    return false;
  }

  /// The residual branch of `add`: the operand made by a linear layer.
  bool splitResidual(AddOp add, Value &residual, Operation *&branch) {
    Operation *a = skipCasts(add.getLhs()).getDefiningOp();
    Operation *b = skipCasts(add.getRhs()).getDefiningOp();
    if (isLinear(a) == isLinear(b))
      return fail(add, "a residual add whose operands are not the stream and "
                       "one linear layer's result");
    branch = isLinear(a) ? a : b;
    residual = isLinear(a) ? add.getRhs() : add.getLhs();
    return true;
  }

  /// The rms_norm that feeds linear `op`, which must normalize `residual`.
  bool normOf(Operation *op, Value residual, Norm &norm, StringRef what) {
    norm = findNorm(linearInput(op));
    if (!norm)
      return fail(op, "the input of the " + what +
                          " projection is not an RMSNorm (quench.rms_norm)");
    if (skipCasts(norm.op.getInput()) != skipCasts(residual))
      return fail(norm.op,
                  "the " + what +
                      " RMSNorm does not normalize the residual stream");
    return true;
  }

  /// The one linear layer `v` reaches, as `what`.
  bool oneLinear(Value v, Operation *&out, StringRef what,
                 Reach *keep = nullptr) {
    Reach r;
    walkBack(v, r);
    if (r.linears.size() != 1)
      return fail(v.getDefiningOp(),
                  "the attention's " + what + " comes from " +
                      Twine(r.linears.size()) +
                      " linear layers, expected one (separate q, k and v "
                      "projections)");
    out = r.linears.front();
    if (keep)
      *keep = std::move(r);
    return true;
  }

  bool ffnBlock(Operation *down, Value residual, Block &b) {
    auto mul = skipCasts(linearInput(down)).getDefiningOp<MulOp>();
    if (!mul)
      return fail(down, "the down projection's input is not a product "
                        "(SwiGLU: silu(gate(x)) * up(x))");
    Reach ra, rb;
    walkBack(mul.getLhs(), ra);
    walkBack(mul.getRhs(), rb);
    auto gated = [](const Reach &r) {
      return llvm::any_of(
          r.ops, [](Operation *op) { return isa<SiluOp, SigmoidOp>(op); });
    };
    if (ra.linears.size() != 1 || rb.linears.size() != 1 ||
        gated(ra) == gated(rb))
      return fail(mul, "the feed-forward block is not SwiGLU "
                       "(silu(gate(x)) * up(x), two linear layers)");
    b.down = down;
    b.gate = gated(ra) ? ra.linears.front() : rb.linears.front();
    b.up = gated(ra) ? rb.linears.front() : ra.linears.front();
    Norm upNorm;
    return normOf(b.gate, residual, b.ffnNorm, "gate") &&
           normOf(b.up, residual, upNorm, "up") &&
           (upNorm == b.ffnNorm ||
            fail(b.up, "the gate and up projections read different norms"));
  }

  bool attentionBlock(Operation *o, Value residual, Block &b, Reach &qReach) {
    Reach r;
    auto pv = dyn_cast_or_null<MatMulOp>(walkBack(
        linearInput(o), r, [](Operation *op) { return isa<MatMulOp>(op); }));
    if (!pv)
      return fail(o, "no attention product (quench.matmul) before the "
                     "output projection");
    Reach rp;
    auto softmax = dyn_cast_or_null<SoftmaxOp>(walkBack(
        pv.getLhs(), rp, [](Operation *op) { return isa<SoftmaxOp>(op); }));
    if (!softmax)
      return fail(pv, "the attention's weights are not a softmax");
    Reach rs;
    auto scores = dyn_cast_or_null<MatMulOp>(
        walkBack(softmax.getInput(), rs,
                 [](Operation *op) { return isa<MatMulOp>(op); }));
    if (!scores)
      return fail(softmax, "no score product (q kᵀ) before the softmax");
    b.o = o;
    if (!oneLinear(pv.getRhs(), b.v, "value") ||
        !oneLinear(scores.getLhs(), b.q, "query", &qReach) ||
        !oneLinear(scores.getRhs(), b.k, "key"))
      return false;
    if (b.q == b.k || b.q == b.v || b.k == b.v)
      return fail(b.q, "q, k and v come from one fused projection");
    Norm nk, nv;
    return normOf(b.q, residual, b.attnNorm, "query") &&
           normOf(b.k, residual, nk, "key") &&
           normOf(b.v, residual, nv, "value") &&
           ((nk == b.attnNorm && nv == b.attnNorm) ||
            fail(b.k, "q, k and v read different norms"));
  }

  /// Heads and head dimension from the reshape that splits `linear`'s
  /// result into heads (`[..., heads, head_dim]`).
  bool headSplit(Operation *linear, int64_t &heads, int64_t &headDim) {
    auto type = cast<ShapedType>(linear->getResult(0).getType());
    int64_t n = type.getDimSize(type.getRank() - 1);
    SmallVector<Value> work = {linear->getResult(0)};
    while (!work.empty()) {
      Value v = work.pop_back_val();
      for (Operation *user : v.getUsers()) {
        if (isa<CastOp>(user)) {
          work.push_back(user->getResult(0));
          continue;
        }
        auto rs = dyn_cast<ReshapeOp>(user);
        if (!rs)
          continue;
        auto t = cast<ShapedType>(rs.getType());
        if (t.getRank() < 2 || t.isDynamicDim(t.getRank() - 1) ||
            t.isDynamicDim(t.getRank() - 2))
          continue;
        int64_t h = t.getDimSize(t.getRank() - 2);
        int64_t d = t.getDimSize(t.getRank() - 1);
        if (h * d == n && d > 1) {
          heads = h;
          headDim = d;
          return true;
        }
      }
    }
    return fail(linear, "no reshape of the projection into [..., heads, "
                        "head_dim] with static heads and head_dim");
  }

  /// The rotary embedding between q and the scores: pair layout and base.
  bool rope(const Reach &r, Llama &m) {
    int64_t d = m.headDim;
    bool half = false, interleaved = false;
    for (Operation *op : r.ops) {
      if (auto s = dyn_cast<SliceOp>(op)) {
        auto in = cast<ShapedType>(s.getInput().getType());
        auto out = cast<ShapedType>(s.getType());
        int64_t last = in.getRank() - 1;
        if (in.getDimSize(last) == d && out.getDimSize(last) == d / 2)
          half = true;
      } else if (auto sp = dyn_cast<SplitOp>(op)) {
        auto in = cast<ShapedType>(sp.getInput().getType());
        int64_t axis = int64_t(sp.getAxis());
        if (axis == in.getRank() - 1 && in.getDimSize(axis) == d &&
            sp.getSizes().size() == 2 && sp.getSizes()[0] == d / 2)
          half = true;
      } else if (auto rs = dyn_cast<ReshapeOp>(op)) {
        auto t = cast<ShapedType>(rs.getType());
        int64_t rank = t.getRank();
        if (rank >= 2 && t.getDimSize(rank - 1) == 2 &&
            t.getDimSize(rank - 2) == d / 2)
          interleaved = true;
        if (rank >= 2 && t.getDimSize(rank - 1) == d / 2 &&
            t.getDimSize(rank - 2) == 2)
          half = true;
      }
    }
    if (half == interleaved)
      return fail(m.blocks.back().q,
                  half ? "the rotary embedding splits heads both into halves "
                         "and into pairs"
                       : "no rotary embedding between the query projection "
                         "and the scores (expected slices of the head into "
                         "halves, rotate-half, or a reshape into pairs)");
    m.halfSplitRope = half;

    // The inverse frequencies inv[i] = base^(-2i/d), i < d/2: from a 1-D
    // table of them (cos/sin computed in the graph), or from precomputed
    // cos and sin tables [positions, d or d/2] (angle at position 1).
    std::vector<double> inv;
    double tolerance = 0;
    int64_t positions = 0;
    std::optional<std::vector<float>> cosT, sinT;
    int64_t cols = 0;
    for (ConstantOp c : r.constants) {
      auto t = cast<ShapedType>(c.getType());
      if (!isa<FloatType>(t.getElementType()) || t.getRank() < 1)
        continue;
      int64_t n = t.getNumElements();
      bool halfPrecision = !t.getElementType().isF32();
      double tol = halfPrecision ? 2e-3 : 2e-5;
      std::optional<std::vector<float>> vals = readFloats(c);
      if (!vals)
        continue;
      if (n == d / 2 && (*vals)[0] == 1.0f) {
        inv.assign(vals->begin(), vals->end());
        tolerance = tol;
        continue;
      }
      int64_t c2 = t.getDimSize(t.getRank() - 1);
      if ((c2 != d && c2 != d / 2) || n / c2 < 2)
        continue;
      bool ones = llvm::all_of(ArrayRef<float>(*vals).take_front(c2),
                               [](float x) { return x == 1.0f; });
      bool zeros = llvm::all_of(ArrayRef<float>(*vals).take_front(c2),
                                [](float x) { return x == 0.0f; });
      if (ones && !cosT) {
        cosT = std::move(vals);
        cols = c2;
        positions = n / c2;
        tolerance = tol;
      } else if (zeros && !sinT) {
        sinT = std::move(vals);
      }
    }
    if (inv.empty() && cosT && sinT && sinT->size() == cosT->size()) {
      m.contextLength = positions;
      for (int64_t i = 0; i < d / 2; ++i)
        inv.push_back(
            std::atan2(double((*sinT)[cols + i]), double((*cosT)[cols + i])));
    }
    if (inv.empty())
      return fail(m.blocks.back().q,
                  "cannot find the rotary embedding's frequencies (a 1-D "
                  "constant of head_dim/2 inverse frequencies, or cos and "
                  "sin tables [positions, head_dim])");
    // base from the last frequency (the most digits), rounded to an integer
    // or two significant digits where the frequencies still match.
    double last = inv[d / 2 - 1];
    if (!(last > 0 && last < 1) || d < 4)
      return fail(m.blocks.back().q, "the rotary frequencies are not "
                                     "base^(-2i/head_dim)");
    double estimate = std::pow(last, -double(d) / double(d - 2));
    double mag = std::pow(10.0, std::floor(std::log10(estimate)) - 1);
    double candidates[] = {std::round(estimate / mag) * mag,
                           std::round(estimate), estimate};
    auto matches = [&](double base) {
      for (int64_t i = 0; i < d / 2; ++i) {
        double want = std::pow(base, -2.0 * i / d);
        if (std::fabs(inv[i] - want) > tolerance * want + 1e-7)
          return false;
      }
      return true;
    };
    for (double base : candidates)
      if (matches(base)) {
        m.ropeBase = base;
        return true;
      }
    return fail(m.blocks.back().q,
                "the rotary frequencies are not base^(-2i/head_dim) for any "
                "base (RoPE scaling is not exported)");
  }

  std::optional<Llama> recognize(ModuleOp module) {
    // The model's entry: the function quench-compile prepared for the C
    // ABI (prepareModelEntry marks it), else the first with a body.
    func::FuncOp func;
    for (auto f : module.getOps<func::FuncOp>())
      if (!f.isExternal() &&
          (!func || (f->hasAttr("llvm.emit_c_interface") &&
                     !func->hasAttr("llvm.emit_c_interface"))))
        func = f;
    if (!func) {
      fail(module, "no function with a body");
      return std::nullopt;
    }
    Operation *ret = func.front().getTerminator();
    if (ret->getNumOperands() == 0) {
      fail(ret, "the model has no result");
      return std::nullopt;
    }
    Llama m;
    m.head = skipCasts(ret->getOperand(0)).getDefiningOp();
    if (!isLinear(m.head)) {
      fail(ret, "the first result (logits) is not a linear layer's output "
                "(the LM head)");
      return std::nullopt;
    }
    m.outputNorm = findNorm(linearInput(m.head));
    if (!m.outputNorm) {
      fail(m.head, "the LM head's input is not an RMSNorm");
      return std::nullopt;
    }
    Value x = m.outputNorm.op.getInput();
    std::vector<Block> reversed;
    Block pending; // the feed-forward half, waiting for its attention
    bool haveFfn = false;
    Reach qReach;
    while (true) {
      Value s = skipCasts(x);
      if (auto g = s.getDefiningOp<GatherOp>()) {
        m.embedding = g;
        break;
      }
      auto add = s.getDefiningOp<AddOp>();
      if (!add) {
        Operation *at = s.getDefiningOp();
        fail(at ? at : ret, "the residual stream is neither a residual add "
                            "nor the token embedding (quench.gather)");
        return std::nullopt;
      }
      Value residual;
      Operation *branch;
      if (!splitResidual(add, residual, branch))
        return std::nullopt;
      if (!haveFfn) {
        if (!ffnBlock(branch, residual, pending))
          return std::nullopt;
        haveFfn = true;
      } else {
        Reach r;
        if (!attentionBlock(branch, residual, pending, r))
          return std::nullopt;
        qReach = std::move(r);
        reversed.push_back(pending);
        pending = Block();
        haveFfn = false;
      }
      x = residual;
    }
    if (haveFfn || reversed.empty()) {
      fail(m.embedding, "the layers are not pairs of an attention and a "
                        "feed-forward block");
      return std::nullopt;
    }
    m.blocks.assign(reversed.rbegin(), reversed.rend());

    // The embedding table.
    m.embeddingTable = m.embedding.getData().getDefiningOp<ConstantOp>();
    auto tableType = cast<ShapedType>(m.embedding.getData().getType());
    if (!m.embeddingTable || m.embedding.getAxis() != 0 ||
        tableType.getRank() != 2 ||
        !isa<FloatType>(tableType.getElementType())) {
      fail(m.embedding, "the token embedding is not a float table gathered "
                        "by rows (a quantized embedding table, "
                        "--quant-embedding, has no GGUF export)");
      return std::nullopt;
    }
    m.vocab = tableType.getDimSize(0);
    m.dim = tableType.getDimSize(1);

    // Shapes, and the same hyperparameters in every block.
    auto features = [](Operation *op, bool in) -> int64_t {
      if (auto l = dyn_cast<LinearOp>(op)) {
        auto t = cast<ShapedType>(l.getWeight().getType());
        return t.getDimSize(in ? 1 : 0);
      }
      auto nb = cast<MatMulNBitsOp>(op);
      return in ? nb.getInFeatures() : nb.getOutFeatures();
    };
    Block &b0 = m.blocks.front();
    m.ffn = features(b0.gate, false);
    m.epsilon = b0.attnNorm.op.getEpsilon().convertToDouble();
    if (!headSplit(b0.q, m.heads, m.headDim))
      return std::nullopt;
    int64_t kvHeadDim = 0;
    if (!headSplit(b0.k, m.kvHeads, kvHeadDim))
      return std::nullopt;
    if (kvHeadDim != m.headDim || m.heads * m.headDim != m.dim ||
        m.heads % m.kvHeads != 0) {
      fail(b0.k, "heads do not fit: " + Twine(m.heads) + " query heads and " +
                     Twine(m.kvHeads) + " key/value heads of " +
                     Twine(m.headDim) + " and " + Twine(kvHeadDim) +
                     " for width " + Twine(m.dim));
      return std::nullopt;
    }
    for (auto [i, b] : llvm::enumerate(m.blocks)) {
      struct Want {
        Operation *op;
        int64_t in, out;
      } wants[] = {{b.q, m.dim, m.dim},
                   {b.k, m.dim, m.kvHeads * m.headDim},
                   {b.v, m.dim, m.kvHeads * m.headDim},
                   {b.o, m.dim, m.dim},
                   {b.gate, m.dim, m.ffn},
                   {b.up, m.dim, m.ffn},
                   {b.down, m.ffn, m.dim}};
      for (const Want &w : wants)
        if (features(w.op, true) != w.in || features(w.op, false) != w.out) {
          fail(w.op, "block " + Twine(i) + ": a projection of [" +
                         Twine(features(w.op, false)) + ", " +
                         Twine(features(w.op, true)) + "], expected [" +
                         Twine(w.out) + ", " + Twine(w.in) + "]");
          return std::nullopt;
        }
      for (Norm n : {b.attnNorm, b.ffnNorm})
        if (n.op.getEpsilon().convertToDouble() != m.epsilon) {
          fail(n.op, "RMSNorm epsilons differ between layers");
          return std::nullopt;
        }
    }
    if (features(m.head, true) != m.dim || features(m.head, false) != m.vocab) {
      fail(m.head, "the LM head is not [vocab, width]");
      return std::nullopt;
    }
    // The rotary embedding of the last block (walked last).
    if (!rope(qReach, m))
      return std::nullopt;
    return m;
  }
};

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

/// A GGUF key/value section being written.
struct KeyValues {
  std::string bytes;
  uint64_t count = 0;

  template <typename T> void raw(T v) {
    bytes.append(reinterpret_cast<const char *>(&v), sizeof(T));
  }
  void str(StringRef s) {
    raw<uint64_t>(s.size());
    bytes.append(s.data(), s.size());
  }
  void key(StringRef k, gguf::ValueType t) {
    str(k);
    raw<uint32_t>(uint32_t(t));
    ++count;
  }
  void addString(StringRef k, StringRef v) {
    key(k, gguf::ValueType::String);
    str(v);
  }
  void addU32(StringRef k, int64_t v) {
    key(k, gguf::ValueType::U32);
    raw<uint32_t>(uint32_t(v));
  }
  void addF32(StringRef k, double v) {
    key(k, gguf::ValueType::F32);
    raw<float>(float(v));
  }
};

/// A tensor to write, owning its bytes.
struct OwnedTensor {
  std::string name;
  SmallVector<uint64_t, 4> dims;
  uint32_t type = 0;
  std::vector<char> data;
};

/// The bytes of F32 data.
std::vector<char> floatBytes(ArrayRef<float> v) {
  std::vector<char> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

/// The weight of linear `op` as a GGUF tensor named `name`: its blocks when
/// quantized, else its float rows [out, in] (F16 when stored in f16, else
/// F32).
FailureOr<OwnedTensor> linearTensor(Operation *op, StringRef name) {
  OwnedTensor t;
  t.name = name.str();
  if (auto nb = dyn_cast<MatMulNBitsOp>(op)) {
    FailureOr<Replacement> r = packLayer(nb, name);
    if (failed(r))
      return failure();
    t.dims = {uint64_t(nb.getInFeatures()), uint64_t(nb.getOutFeatures())};
    t.type = r->type;
    t.data = std::move(r->blocks);
    return t;
  }
  auto lin = cast<LinearOp>(op);
  if (lin.getBias()) {
    op->emitError() << "--emit=gguf: layer '" << name
                    << "' has a bias (LLaMA projections have none)";
    return failure();
  }
  // The weight is [N, K], or a 2-D transpose of a [K, N] constant.
  Value w = lin.getWeight();
  bool transposed = false;
  if (auto tr = w.getDefiningOp<TransposeOp>()) {
    w = tr.getInput();
    transposed = true;
  }
  auto cst = w.getDefiningOp<ConstantOp>();
  std::optional<std::vector<float>> vals;
  if (cst)
    vals = readFloats(cst);
  if (!vals) {
    op->emitError() << "--emit=gguf: the weight of layer '" << name
                    << "' is not a float constant";
    return failure();
  }
  auto wt = cast<ShapedType>(lin.getWeight().getType());
  int64_t n = wt.getDimSize(0), k = wt.getDimSize(1);
  std::vector<float> rows(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      rows[r * k + c] = transposed ? (*vals)[c * n + r] : (*vals)[r * k + c];
  t.dims = {uint64_t(k), uint64_t(n)};
  if (wt.getElementType().isF16()) {
    t.type = uint32_t(GGMLType::F16);
    t.data.resize(n * k * 2);
    for (int64_t i = 0; i < n * k; ++i) {
      uint16_t h = qquant::floatToF16Bits(rows[i]);
      std::memcpy(t.data.data() + 2 * i, &h, 2);
    }
  } else {
    t.type = uint32_t(GGMLType::F32);
    t.data = floatBytes(rows);
  }
  return t;
}

/// llama.cpp's q/k row order from Hugging Face's: within each head, row
/// j * d/2 + i (rotate-half: pair (i, i + d/2)) moves to 2i + j
/// (interleaved pairs), as llama.cpp's convert_hf_to_gguf.py permutes them.
void permuteRope(OwnedTensor &t, int64_t heads, int64_t headDim) {
  int64_t rows = int64_t(t.dims[1]);
  size_t rowBytes = t.data.size() / rows;
  std::vector<char> out(t.data.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t i = 0; i < headDim / 2; ++i) {
        int64_t from = h * headDim + j * (headDim / 2) + i;
        int64_t to = h * headDim + 2 * i + j;
        std::memcpy(out.data() + to * rowBytes, t.data.data() + from * rowBytes,
                    rowBytes);
      }
  t.data = std::move(out);
}

/// The norm's weight (F32): its scale, times the extra product's constant.
FailureOr<OwnedTensor> normTensor(Norm norm, StringRef name, int64_t dim) {
  auto cst = norm.op.getScale().getDefiningOp<ConstantOp>();
  std::optional<std::vector<float>> vals, extra;
  if (cst)
    vals = readFloats(cst);
  if (norm.extraScale)
    extra = readFloats(norm.extraScale);
  if (!vals || int64_t(vals->size()) != dim ||
      (norm.extraScale && (!extra || int64_t(extra->size()) != dim))) {
    norm.op.emitError() << "--emit=gguf: the weight of '" << name
                        << "' is not a float constant of " << dim << " values";
    return failure();
  }
  if (extra)
    for (int64_t i = 0; i < dim; ++i)
      (*vals)[i] *= (*extra)[i];
  OwnedTensor t;
  t.name = name.str();
  t.dims = {uint64_t(dim)};
  t.type = uint32_t(GGMLType::F32);
  t.data = floatBytes(*vals);
  return t;
}

} // namespace

LogicalResult quench::exportRecognizedLlama(ModuleOp module,
                                            StringRef sourcePath,
                                            StringRef outPath) {
  Recognizer rec;
  std::optional<Llama> found = rec.recognize(module);
  if (!found) {
    InFlightDiagnostic d =
        (rec.errorAt ? rec.errorAt->emitError() : emitError(module.getLoc()));
    d << "--emit=gguf: '" << sourcePath
      << "' is not recognized as a LLaMA decoder (GGUF architecture "
         "'llama'): "
      << rec.error;
    return failure();
  }
  Llama &m = *found;

  std::vector<OwnedTensor> tensors;
  bool ok = true;
  auto add = [&](FailureOr<OwnedTensor> t) {
    if (failed(t))
      ok = false;
    else
      tensors.push_back(std::move(*t));
    return ok;
  };
  // token_embd: the table's rows as stored (F16 stays F16).
  {
    std::optional<std::vector<float>> vals = readFloats(m.embeddingTable);
    if (!vals)
      return m.embedding.emitError()
             << "--emit=gguf: the embedding table is not a float constant";
    OwnedTensor t;
    t.name = "token_embd.weight";
    t.dims = {uint64_t(m.dim), uint64_t(m.vocab)};
    auto et = cast<ShapedType>(m.embeddingTable.getType()).getElementType();
    if (et.isF16()) {
      t.type = uint32_t(GGMLType::F16);
      t.data.resize(vals->size() * 2);
      for (size_t i = 0; i < vals->size(); ++i) {
        uint16_t h = qquant::floatToF16Bits((*vals)[i]);
        std::memcpy(t.data.data() + 2 * i, &h, 2);
      }
    } else {
      t.type = uint32_t(GGMLType::F32);
      t.data = floatBytes(*vals);
    }
    tensors.push_back(std::move(t));
  }
  for (auto [i, b] : llvm::enumerate(m.blocks)) {
    std::string p = "blk." + std::to_string(i) + ".";
    if (!add(normTensor(b.attnNorm, p + "attn_norm.weight", m.dim)))
      return failure();
    FailureOr<OwnedTensor> q = linearTensor(b.q, p + "attn_q.weight");
    if (failed(q))
      return failure();
    FailureOr<OwnedTensor> k = linearTensor(b.k, p + "attn_k.weight");
    if (failed(k))
      return failure();
    if (m.halfSplitRope) {
      permuteRope(*q, m.heads, m.headDim);
      permuteRope(*k, m.kvHeads, m.headDim);
    }
    tensors.push_back(std::move(*q));
    tensors.push_back(std::move(*k));
    if (!add(linearTensor(b.v, p + "attn_v.weight")) ||
        !add(linearTensor(b.o, p + "attn_output.weight")) ||
        !add(normTensor(b.ffnNorm, p + "ffn_norm.weight", m.dim)) ||
        !add(linearTensor(b.gate, p + "ffn_gate.weight")) ||
        !add(linearTensor(b.up, p + "ffn_up.weight")) ||
        !add(linearTensor(b.down, p + "ffn_down.weight")))
      return failure();
  }
  if (!add(normTensor(m.outputNorm, "output_norm.weight", m.dim)))
    return failure();
  // The head is written as its own tensor (also when tied to the embedding
  // in the source: its codes may differ from the float table).
  if (!add(linearTensor(m.head, "output.weight")))
    return failure();

  KeyValues kv;
  kv.addString("general.architecture", "llama");
  kv.addString("general.name", llvm::sys::path::stem(sourcePath));
  kv.addU32("llama.context_length", m.contextLength ? m.contextLength : 2048);
  kv.addU32("llama.embedding_length", m.dim);
  kv.addU32("llama.block_count", m.blocks.size());
  kv.addU32("llama.feed_forward_length", m.ffn);
  kv.addU32("llama.attention.head_count", m.heads);
  kv.addU32("llama.attention.head_count_kv", m.kvHeads);
  kv.addF32("llama.attention.layer_norm_rms_epsilon", m.epsilon);
  kv.addF32("llama.rope.freq_base", m.ropeBase);
  kv.addU32("llama.rope.dimension_count", m.headDim);
  kv.addU32("llama.vocab_size", m.vocab);
  // llama.cpp requires a tokenizer model; "no_vocab" loads without token
  // data (llama_vocab::impl::load adds vocab_size dummy tokens).
  kv.addString("tokenizer.ggml.model", "no_vocab");

  std::vector<gguf::TensorToWrite> out;
  for (OwnedTensor &t : tensors) {
    gguf::TensorToWrite w;
    w.name = t.name;
    w.dims = t.dims;
    w.type = t.type;
    w.data = t.data;
    out.push_back(std::move(w));
  }
  std::string err = writeFileAtomically(outPath, [&](llvm::raw_ostream &os) {
    gguf::writeGGUF(os, kv.count,
                    ArrayRef<char>(kv.bytes.data(), kv.bytes.size()), out,
                    /*alignment=*/32);
    return true;
  });
  if (!err.empty())
    return emitError(module.getLoc()) << "--emit=gguf: " << err;
  return success();
}
