//===- PackSparseWeights.cpp - quench-pack-sparse-weights -----------------===//
//
// Stores the weights that quench-prune-weights pruned to an N:M pattern in
// compressed form: a pruned quench.linear (f32 weight) or quench.matmul_nbits
// (8-bit or 4-bit symmetric codes) becomes quench.sparse_linear with the kept
// values (4-bit codes two per byte) and their in-group indices (lib/Quant/SparseStorage.h; docs/sparsity.md,
// "Compressed storage"). The packing reads the exact zeros of the dense
// weight (the pruner's and the quantizer's invariant), so it needs no mask
// and works after any quantization method. Layers it cannot pack stay dense
// and the report says why.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/ModuleAttrs.h"
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/IR/QuenchSparseOps.h"
#include "quench/Dialect/Quench/Transforms/PackSparseWeights.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"
#include "quench/Quant/Sparse.h"
#include "quench/Quant/SparseStorage.h"
#include "quench/Support/LLVM.h"

#include "llvm/Support/FormatVariadic.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHPACKSPARSEWEIGHTS
#include "quench/Dialect/Quench/Transforms/SparsePasses.h.inc"
} // namespace quench

using namespace quench;
namespace qq = quench::quant;

namespace {

struct QuenchPackSparseWeightsPass
    : public quench::impl::QuenchPackSparseWeightsBase<
          QuenchPackSparseWeightsPass> {
  using Base::Base;
  QuenchPackSparseWeightsPass(QuenchPackSparseWeightsOptions options,
                              std::vector<LayerPackRecord> *report)
      : Base(options), report(report) {}

  void runOnOperation() override {
    QuenchPackSparseWeightsOptions o;
    o.maxGroup = maxGroup;
    o.bitmask = bitmask;
    packSparseWeights(getOperation(), o, report);
  }

  std::vector<LayerPackRecord> *report = nullptr;
};

/// The N:M pattern of a pruned op's mark ("2:4 magnitude"), or an error.
std::string parseMark(Operation *op, qq::SparsityPattern &pattern) {
  auto mark = op->getAttrOfType<StringAttr>(kSparsityAttrName);
  std::string error;
  if (!mark ||
      !qq::parseSparsityPattern(mark.getValue().split(' ').first.str(),
                                pattern, error))
    return "unreadable mark";
  return "";
}

Value constantOf(OpBuilder &b, Location loc, RankedTensorType type,
                 ArrayRef<char> bytes, StringRef name) {
  return ConstantOp::create(b, loc, type,
                            createConstantAttr(type, bytes, name));
}

/// Erases `v`'s producer chain of constants and transposes once unused.
void eraseIfUnused(Value v) {
  Operation *def = v ? v.getDefiningOp() : nullptr;
  if (!def || !def->use_empty() || !isa<ConstantOp, TransposeOp>(def))
    return;
  SmallVector<Value> operands(def->getOperands());
  def->erase();
  for (Value o : operands)
    eraseIfUnused(o);
}

/// Packs a pruned f32 linear; returns why not (empty when packed).
std::string packLinear(LinearOp op, const qq::SparsityPattern &pat,
                       LayerPackRecord &rec) {
  auto wType = cast<RankedTensorType>(op.getWeight().getType());
  const int64_t n = wType.getDimSize(0), k = wType.getDimSize(1);
  rec.bytesBefore = n * k * 4;
  if (!wType.getElementType().isF32() || !hasF32LinearWeight(op))
    return "weight not a constant f32";
  std::vector<float> w = *readLinearWeight(op);
  qq::NMPositions pos;
  if (!qq::selectNMPositions(
          n, k, pat.n, pat.m,
          [&](int64_t r, int64_t c) { return w[r * k + c] != 0.0f; }, pos))
    return "not " + pat.str() + " sparse";
  std::vector<float> vals = qq::gatherNMValues(w.data(), k, pos);
  std::vector<uint8_t> idx = qq::packNMIndices(pos, pat.m);
  w = {};
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto valType = RankedTensorType::get({n, pos.slots}, b.getF32Type());
  auto idxType = RankedTensorType::get(
      {n, static_cast<int64_t>(idx.size()) / n}, b.getI8Type());
  Value v = constantOf(
      b, loc, valType,
      ArrayRef<char>(reinterpret_cast<const char *>(vals.data()),
                     vals.size() * 4),
      "quench_sparse_values");
  Value i = constantOf(
      b, loc, idxType,
      ArrayRef<char>(reinterpret_cast<const char *>(idx.data()), idx.size()),
      "quench_sparse_indices");
  auto sparse = SparseLinearOp::create(
      b, loc, op.getType(), op.getInput(), v, i, Value(), op.getBias(),
      pat.n, pat.m, IntegerAttr(), IntegerAttr());
  sparse->setAttr(kSparsityAttrName, op->getAttr(kSparsityAttrName));
  rec.bytesAfter = static_cast<int64_t>(vals.size() * 4 + idx.size());
  Value weight = op.getWeight();
  op.replaceAllUsesWith(sparse.getResult());
  op.erase();
  eraseIfUnused(weight);
  return "";
}

/// Packs a pruned matmul_nbits with 8-bit or 4-bit symmetric codes (4-bit
/// only when the compressed form is smaller); returns why not.
std::string packNBits(MatMulNBitsOp op, const qq::SparsityPattern &pat,
                      LayerPackRecord &rec) {
  const int64_t n = op.getOutFeatures(), k = op.getInFeatures(),
                bits = op.getBits(), gs = op.getBlockSize();
  auto codesCst = op.getWeight().getDefiningOp<ConstantOp>();
  auto scalesCst = op.getScales().getDefiningOp<ConstantOp>();
  auto st = cast<RankedTensorType>(op.getScales().getType());
  const int64_t groups = (k + gs - 1) / gs;
  const int64_t scaleBytes =
      st.getNumElements() * getStorageBytesPerElement(st.getElementType());
  rec.bytesBefore =
      cast<RankedTensorType>(op.getWeight().getType()).getNumElements() +
      scaleBytes;
  if (bits != 8 && bits != 4)
    return llvm::formatv("{0}-bit codes: no compressed format yet", bits);
  if (op.getZeroPoints())
    return "zero points: no compressed format";
  if (gs < k && gs % pat.m != 0)
    return "quantization group not a multiple of M";
  if (!codesCst || !scalesCst || !st.hasStaticShape() ||
      st.getNumElements() != n * groups)
    return "codes or scales not constants";
  std::optional<ArrayRef<char>> codes = getRawConstantData(codesCst.getValue());
  std::optional<ArrayRef<char>> scales =
      getRawConstantData(scalesCst.getValue());
  if (!codes || !scales ||
      int64_t(codes->size()) != n * groups * gs * bits / 8 ||
      int64_t(scales->size()) != scaleBytes)
    return "codes or scales not readable";
  // Unsigned codes of [N, K] (a little-endian bit stream per row: 4-bit
  // codes two per byte, low nibble first), and their signed values (the
  // zero point 2^(bits - 1) is the implicit one).
  auto ucode = [&](int64_t r, int64_t c) -> uint8_t {
    int64_t i = r * groups * gs + c;
    auto byte = static_cast<uint8_t>((*codes)[bits == 8 ? i : i / 2]);
    return bits == 8 ? byte : (byte >> (i % 2 * 4)) & 15;
  };
  auto code = [&](int64_t r, int64_t c) {
    return static_cast<int8_t>(int(ucode(r, c)) - (1 << (bits - 1)));
  };
  qq::NMPositions pos;
  if (!qq::selectNMPositions(
          n, k, pat.n, pat.m,
          [&](int64_t r, int64_t c) { return code(r, c) != 0; }, pos))
    return "not " + pat.str() + " sparse";
  std::vector<char> vals;
  int64_t valueCols = pos.slots;
  if (bits == 4) {
    std::vector<uint8_t> nibbles = qq::gatherNMNibbles(pos, ucode);
    vals.assign(nibbles.begin(), nibbles.end());
    valueCols = qq::nmNibbleBytesPerRow(pos.slots);
  } else {
    vals.resize(pos.columns.size());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t s = 0; s < pos.slots; ++s)
        vals[r * pos.slots + s] =
            static_cast<char>(code(r, pos.columns[r * pos.slots + s]));
  }
  std::vector<uint8_t> idx = qq::packNMIndices(pos, pat.m);
  rec.bytesAfter = static_cast<int64_t>(vals.size() + idx.size()) + scaleBytes;
  // 4:8 int4 (4-bit indices) is exactly as large as the dense codes.
  if (rec.bytesAfter >= rec.bytesBefore)
    return llvm::formatv("compressed int{0} not smaller ({1} bytes)", bits,
                         rec.bytesAfter);
  OpBuilder b(op);
  Location loc = op.getLoc();
  auto valType = RankedTensorType::get({n, valueCols}, b.getI8Type());
  auto idxType = RankedTensorType::get(
      {n, static_cast<int64_t>(idx.size()) / n}, b.getI8Type());
  auto scaleType = RankedTensorType::get({n, groups}, st.getElementType());
  Value v = constantOf(b, loc, valType, vals, "quench_sparse_values");
  Value i = constantOf(
      b, loc, idxType,
      ArrayRef<char>(reinterpret_cast<const char *>(idx.data()), idx.size()),
      "quench_sparse_indices");
  Value s = op.getScales();
  if (st != scaleType)
    s = constantOf(b, loc, scaleType, *scales, "quench_sparse_scales");
  auto sparse = SparseLinearOp::create(
      b, loc, op.getType(), op.getInput(), v, i, s, op.getBias(), pat.n, pat.m,
      b.getI64IntegerAttr(gs),
      bits == 4 ? b.getI64IntegerAttr(4) : IntegerAttr());
  sparse->setAttr(kSparsityAttrName, op->getAttr(kSparsityAttrName));
  Value oldCodes = op.getWeight(), oldScales = op.getScales();
  op.replaceAllUsesWith(sparse.getResult());
  op.erase();
  eraseIfUnused(oldCodes);
  eraseIfUnused(oldScales);
  return "";
}

/// Marks an unstructured pruned matmul_nbits with 8-bit symmetric codes for
/// bitmask storage (kSparseStorageAttrName: the CPU kernel keeps a mask
/// bit per weight plus the codes other than the zero point 128) when that
/// is smaller than the dense codes; returns why not.
std::string markBitmask(MatMulNBitsOp op, LayerPackRecord &rec) {
  const int64_t n = op.getOutFeatures(), k = op.getInFeatures(),
                gs = op.getBlockSize();
  auto codesCst = op.getWeight().getDefiningOp<ConstantOp>();
  auto st = cast<RankedTensorType>(op.getScales().getType());
  const int64_t groups = (k + gs - 1) / gs;
  const int64_t scaleBytes =
      st.getNumElements() * getStorageBytesPerElement(st.getElementType());
  const int64_t codeBytes =
      cast<RankedTensorType>(op.getWeight().getType()).getNumElements();
  rec.bytesBefore = codeBytes + scaleBytes;
  if (op.getBits() != 8)
    return llvm::formatv("unstructured {0}-bit codes: no bitmask kernel yet",
                         op.getBits());
  if (op.getZeroPoints())
    return "zero points: no bitmask kernel";
  std::optional<ArrayRef<char>> codes =
      codesCst ? getRawConstantData(codesCst.getValue()) : std::nullopt;
  if (!codes || int64_t(codes->size()) != n * groups * gs)
    return "codes not a readable constant";
  int64_t nonzeros = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      nonzeros += static_cast<uint8_t>((*codes)[r * groups * gs + c]) != 128;
  rec.bytesAfter = qq::bitmaskStorageBytes(n, k, nonzeros, 8) + scaleBytes;
  if (rec.bytesAfter >= rec.bytesBefore)
    return llvm::formatv("bitmask not smaller (density {0:f3})",
                         double(nonzeros) / double(n * k));
  op->setAttr(kSparseStorageAttrName,
              StringAttr::get(op.getContext(), "bitmask"));
  return "";
}

} // namespace

std::unique_ptr<Pass> quench::createQuenchPackSparseWeights(
    QuenchPackSparseWeightsOptions options,
    std::vector<LayerPackRecord> *report) {
  return std::make_unique<QuenchPackSparseWeightsPass>(options, report);
}

void quench::packSparseWeights(ModuleOp module,
                               const QuenchPackSparseWeightsOptions &options,
                               std::vector<LayerPackRecord> *report) {
  SmallVector<Operation *> pruned;
  module.walk([&](Operation *op) {
    if (isa<LinearOp, MatMulNBitsOp>(op) && op->hasAttr(kSparsityAttrName))
      pruned.push_back(op);
  });
  for (Operation *op : pruned) {
    LayerPackRecord rec;
    rec.name = getLayerName(op->getLoc());
    qq::SparsityPattern pat;
    std::string why = parseMark(op, pat);
    auto inFeatures = [&]() -> int64_t {
      if (auto l = dyn_cast<LinearOp>(op))
        return cast<RankedTensorType>(l.getWeight().getType()).getDimSize(1);
      return cast<MatMulNBitsOp>(op).getInFeatures();
    };
    if (why.empty() && pat.kind != qq::SparsityPattern::Kind::NM) {
      // Unstructured: bitmask storage of 8-bit codes where the target has
      // the kernel, else dense.
      auto nbits = dyn_cast<MatMulNBitsOp>(op);
      // Models that promise float activations (GGUF) keep the float int8
      // kernel, which has no bitmask form.
      bool floatActs = module->hasAttr(kFloatActivationsAttrName);
      if (floatActs)
        why = "unstructured: float activations, no bitmask kernel";
      else if (!options.bitmask)
        why = "unstructured: no bitmask kernel on this target";
      else if (!nbits)
        why = "unstructured f32: no bitmask kernel yet";
      else
        why = markBitmask(nbits, rec);
      rec.compressed = why.empty();
      rec.storage =
          rec.compressed ? "unstructured bitmask int8" : "dense (" + why + ")";
      if (!rec.compressed) {
        if (auto l = dyn_cast<LinearOp>(op))
          rec.bytesBefore =
              cast<RankedTensorType>(l.getWeight().getType()).getNumElements() *
              4;
        rec.bytesAfter = rec.bytesBefore;
      }
      if (report)
        report->push_back(std::move(rec));
      continue;
    }
    if (why.empty() && pat.m > options.maxGroup)
      why = llvm::formatv("M = {0} above max-group {1}", pat.m,
                          options.maxGroup);
    else if (why.empty() && pat.m > qq::kMaxCompressedGroup)
      why = "M above 16";
    else if (why.empty() && inFeatures() % pat.m != 0)
      why = "K not a multiple of M";
    std::string kind;
    if (why.empty()) {
      if (auto l = dyn_cast<LinearOp>(op)) {
        kind = "f32";
        why = packLinear(l, pat, rec);
      } else {
        auto nbits = cast<MatMulNBitsOp>(op);
        kind = nbits.getBits() == 4 ? "int4" : "int8";
        why = packNBits(nbits, pat, rec);
      }
    }
    rec.compressed = why.empty();
    rec.storage = rec.compressed ? pat.str() + " compressed " + kind
                                 : "dense (" + why + ")";
    if (!rec.compressed)
      rec.bytesAfter = rec.bytesBefore;
    if (report)
      report->push_back(std::move(rec));
  }
}
