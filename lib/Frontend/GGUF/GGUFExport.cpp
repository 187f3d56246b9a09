//===- GGUFExport.cpp - quench models back to GGUF files ------------------===//
//
// The export reads the quantized module only for what Quench chose (the
// codes, scales and zero points of each quench.matmul_nbits) and takes
// everything else from the source file, so that the file llama.cpp loads
// computes what the Quench model computes with the same codes.
//
//===----------------------------------------------------------------------===//

#include "quench/Frontend/GGUF/GGUFExport.h"
#include "GGUFExportCommon.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Frontend/GGUF/GGUFReader.h"
#include "quench/Quant/GGMLBlocks.h"
#include "quench/Quant/RTN.h"
#include "quench/Support/FileUtils.h"
#include "quench/Support/MappedFile.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinDialect.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/StringMap.h"

#include <cstring>

using namespace mlir;
using namespace quench;
namespace qquant = quench::quant;
using qquant::GGMLType;
using quench::gguf_export::constantBytes;
using quench::gguf_export::packLayer;
using quench::gguf_export::Replacement;

namespace {

/// The resource key of a quench.constant, or "".
StringRef resourceKey(Value v) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return "";
  auto res = dyn_cast<DenseResourceElementsAttr>(cst.getValue());
  return res ? res.getRawHandle().getKey() : StringRef();
}

/// The scheme of a matmul_nbits in words, for errors.
std::string schemeName(MatMulNBitsOp op) {
  std::string s = "int" + std::to_string(op.getBits()) +
                  (op.getZeroPoints() ? " asymmetric" : " symmetric");
  if (op.getBlockSize() >= op.getInFeatures())
    return s + " per output channel";
  return s + " in groups of " + std::to_string(op.getBlockSize());
}

} // namespace

std::optional<ArrayRef<char>> quench::gguf_export::constantBytes(Value v) {
  auto cst = v.getDefiningOp<ConstantOp>();
  if (!cst)
    return std::nullopt;
  return getRawConstantData(cast<ElementsAttr>(cst.getValue()));
}

FailureOr<Replacement> quench::gguf_export::packLayer(MatMulNBitsOp op,
                                                      StringRef name) {
  auto fail = [&](const Twine &why) {
    op.emitError() << "--emit=gguf: layer '" << name << "' (" << schemeName(op)
                   << "): " << why;
    return failure();
  };
  int64_t bits = op.getBits(), group = op.getBlockSize();
  int64_t n = op.getOutFeatures(), k = op.getInFeatures();
  if (group == 32 && k % 32 != 0 && (bits == 4 || bits == 8))
    return fail("its " + Twine(k) +
                " inputs are no multiple of 32, the elements of a GGUF "
                "block (--quant-exclude the layer)");
  if (group != 32 || (bits != 4 && bits != 8))
    return fail("no GGUF block type holds it (Quench exports int4 and int8 "
                "in groups of 32: q4_0, q4_1, q8_0; compile with "
                "--group-size=32, or --quant-exclude the layer)");
  GGMLType type = bits == 8 ? GGMLType::Q8_0
                  : op.getZeroPoints() ? GGMLType::Q4_1
                                       : GGMLType::Q4_0;
  if (bits == 8 && op.getZeroPoints())
    return fail("asymmetric int8 has no GGUF block type (q8_0 is symmetric)");
  if (op.getBias())
    return fail("the layer has a bias inside the product");
  int64_t groups = k / group;
  std::optional<ArrayRef<char>> codeBytes = constantBytes(op.getWeight());
  std::optional<ArrayRef<char>> scaleBytes = constantBytes(op.getScales());
  if (!codeBytes || !scaleBytes ||
      int64_t(codeBytes->size()) != n * groups * group * bits / 8)
    return fail("its codes or scales are not constants of the expected size");
  std::vector<uint8_t> codes(n * k);
  qquant::unpackCodes(reinterpret_cast<const uint8_t *>(codeBytes->data()),
                      codes.size(), int(bits), codes.data());
  std::vector<float> scales(n * groups);
  Type scaleType =
      cast<ShapedType>(op.getScales().getType()).getElementType();
  if (scaleType.isF16() && int64_t(scaleBytes->size()) == n * groups * 2) {
    for (int64_t i = 0; i < n * groups; ++i) {
      uint16_t h;
      std::memcpy(&h, scaleBytes->data() + 2 * i, 2);
      scales[i] = qquant::f16BitsToFloat(h);
    }
  } else if (scaleType.isF32() &&
             int64_t(scaleBytes->size()) == n * groups * 4) {
    std::memcpy(scales.data(), scaleBytes->data(), n * groups * 4);
  } else {
    return fail("its scales are neither f16 nor f32 constants [N, groups]");
  }
  std::vector<int32_t> zeroPoints(n * groups, int32_t(1) << (bits - 1));
  if (Value zp = op.getZeroPoints()) {
    auto zpType = cast<ShapedType>(zp.getType());
    std::optional<ArrayRef<char>> zpBytes = constantBytes(zp);
    int64_t rowBytes = (groups * bits + 7) / 8;
    if (!zpBytes || !zpType.getElementType().isUnsignedInteger(8) ||
        int64_t(zpBytes->size()) != n * rowBytes)
      return fail("its zero points are not packed integer codes (float zero "
                  "points, e.g. from --algo=hqq, have no GGUF block type)");
    std::vector<uint8_t> row(groups);
    for (int64_t r = 0; r < n; ++r) {
      qquant::unpackCodes(
          reinterpret_cast<const uint8_t *>(zpBytes->data()) + r * rowBytes,
          groups, int(bits), row.data());
      for (int64_t g = 0; g < groups; ++g)
        zeroPoints[r * groups + g] = row[g];
    }
  }
  Replacement out;
  out.type = uint32_t(type);
  const qquant::GGMLTypeTraits &traits = *qquant::getGGMLTypeTraits(out.type);
  out.blocks.resize(n * groups * traits.blockBytes);
  std::string why = qquant::packGGMLRows(
      type, int(bits), codes.data(), scales.data(), zeroPoints.data(), n, k,
      reinterpret_cast<uint8_t *>(out.blocks.data()));
  if (!why.empty())
    return fail(Twine("not exactly ") + traits.name + ": " + why);
  return out;
}

LogicalResult quench::exportGGUF(ModuleOp module, StringRef sourcePath,
                                 StringRef outPath) {
  Location loc = module.getLoc();
  llvm::Expected<std::shared_ptr<MappedFile>> mapped =
      MappedFile::open(sourcePath);
  if (!mapped)
    return emitError(loc) << "--emit=gguf: cannot read '" << sourcePath
                          << "': " << llvm::toString(mapped.takeError());
  if (!gguf::hasGGUFMagic((*mapped)->data()))
    return exportRecognizedLlama(module, sourcePath, outPath);
  llvm::Expected<gguf::File> file = gguf::parseGGUF((*mapped)->data());
  if (!file)
    return emitError(loc) << "--emit=gguf: '" << sourcePath
                          << "': " << llvm::toString(file.takeError());

  // Every constant quench-quantize-weights made from a source tensor
  // (`<tensor>_q`) must be the codes of matmul_nbits products we can
  // write.
  llvm::StringMap<Replacement> replaced;
  WalkResult walk = module.walk([&](ConstantOp cst) -> WalkResult {
    StringRef key = resourceKey(cst.getResult());
    if (!key.consume_back("_q"))
      return WalkResult::advance();
    const gguf::TensorInfo *t = file->tensor(key);
    if (!t) {
      cst.emitError() << "--emit=gguf: the quantized weight '" << key
                      << "' is not a tensor of the GGUF file (the "
                         "importer's own products, such as the min offsets "
                         "of q4_1/q5_1/q4_K/q5_K tensors, stay float: "
                         "--quant-exclude='*.min_offset')";
      return WalkResult::interrupt();
    }
    for (Operation *user : cst->getUsers()) {
      auto mm = dyn_cast<MatMulNBitsOp>(user);
      if (!mm || mm.getWeight() != cst.getResult()) {
        user->emitError() << "--emit=gguf: tensor '" << key
                          << "' is quantized for '" << user->getName()
                          << "', which has no GGUF block type (Quench "
                             "exports the codes of quench.matmul_nbits: "
                             "weight-only int4/int8 in groups of 32)";
        return WalkResult::interrupt();
      }
      if (replaced.count(key))
        continue;
      FailureOr<Replacement> r = packLayer(mm, key);
      if (failed(r))
        return WalkResult::interrupt();
      if (t->dims.size() != 2 || int64_t(t->dims[0]) != mm.getInFeatures() ||
          int64_t(t->dims[1]) != mm.getOutFeatures()) {
        mm.emitError() << "--emit=gguf: tensor '" << key
                       << "' does not have the layer's shape";
        return WalkResult::interrupt();
      }
      replaced[key] = std::move(*r);
    }
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  // A tied output head is the embedding table: llama.cpp would look up the
  // quantized rows where the Quench model gathers float ones.
  if (replaced.count("token_embd.weight") && !file->tensor("output.weight"))
    return emitError(loc)
           << "--emit=gguf: 'token_embd.weight' is both the embedding table "
              "and the tied output head, and only the head was quantized: "
              "a GGUF file has one tensor for both (compile with "
              "--quant-head=false)";

  std::vector<gguf::TensorToWrite> tensors;
  for (const gguf::TensorInfo &t : file->tensors) {
    gguf::TensorToWrite w;
    w.name = t.name;
    w.dims = t.dims;
    w.type = t.type;
    w.data = t.data;
    auto it = replaced.find(t.name);
    if (it != replaced.end()) {
      w.type = it->second.type;
      w.data = it->second.blocks;
    }
    tensors.push_back(std::move(w));
  }
  std::string err = writeFileAtomically(outPath, [&](llvm::raw_ostream &os) {
    gguf::writeGGUF(os, file->metadata.size(), file->kvBytes, tensors,
                    file->alignment);
    return true; // writeFileAtomically checks the stream's errors
  });
  if (!err.empty())
    return emitError(loc) << "--emit=gguf: " << err;
  return success();
}
