//===- SizeReport.cpp - quench-compile's size report ----------------------===//

#include "SizeReport.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "quench/Support/FileUtils.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/JSON.h"

using namespace quench;

quench::ConstantBytes quench::measureConstants(mlir::ModuleOp module) {
  ConstantBytes bytes;
  module.walk([&](ConstantOp cst) {
    auto type = llvm::cast<mlir::RankedTensorType>(cst.getType());
    if (!type.hasStaticShape())
      return;
    int64_t size = type.getNumElements() *
                   std::max<int64_t>(
                       getStorageBytesPerElement(type.getElementType()), 1);
    bytes.total += size;
    bytes.largest = std::max(bytes.largest, size);
  });
  return bytes;
}

static std::string megabytes(int64_t bytes) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%.3f MB", static_cast<double>(bytes) / 1e6);
  return s;
}

namespace {
/// Bytes and weight count of the linears or of the embedding tables of a
/// report.
struct WeightTotals {
  int64_t before = 0, after = 0, weights = 0;
  double bitsPerWeight() const {
    return weights > 0 ? 8.0 * static_cast<double>(after) / weights : 0.0;
  }
};
} // namespace

static WeightTotals totals(const SizeReport &r, bool embeddings) {
  WeightTotals t;
  for (const LayerQuantRecord &l : r.layers)
    if (l.embedding == embeddings) {
      t.before += l.bytesBefore;
      t.after += l.bytesAfter;
      t.weights += l.outFeatures * l.inFeatures;
    }
  return t;
}

/// The linears of the report: the quantizer's records, or without
/// quantization the pruner's (float weights, unchanged bytes).
static std::vector<quench::LayerQuantRecord>
reportLayers(const quench::SizeReport &r) {
  std::vector<quench::LayerQuantRecord> layers = r.layers;
  if (layers.empty())
    for (const quench::LayerPruneRecord &p : r.pruned) {
      quench::LayerQuantRecord l;
      l.name = p.name;
      l.outFeatures = p.outFeatures;
      l.inFeatures = p.inFeatures;
      l.scheme = "float";
      l.bytesBefore = l.bytesAfter = p.bytes;
      layers.push_back(std::move(l));
    }
  // Layers in compressed storage: their bytes are the packed ones.
  llvm::StringMap<const quench::LayerPackRecord *> packed;
  for (const quench::LayerPackRecord &p : r.packed)
    packed.try_emplace(p.name, &p);
  for (quench::LayerQuantRecord &l : layers)
    if (auto it = packed.find(l.name);
        it != packed.end() && it->second->compressed)
      l.bytesAfter = it->second->bytesAfter;
  return layers;
}

/// The storage record of each layer name.
static llvm::StringMap<const quench::LayerPackRecord *>
packRecords(const quench::SizeReport &r) {
  llvm::StringMap<const quench::LayerPackRecord *> byName;
  for (const quench::LayerPackRecord &p : r.packed)
    byName.try_emplace(p.name, &p);
  return byName;
}

/// The pruning record of each layer name.
static llvm::StringMap<const quench::LayerPruneRecord *>
pruneRecords(const quench::SizeReport &r) {
  llvm::StringMap<const quench::LayerPruneRecord *> byName;
  for (const quench::LayerPruneRecord &p : r.pruned)
    byName.try_emplace(p.name, &p);
  return byName;
}

void quench::printSizeReport(const SizeReport &report,
                             llvm::raw_ostream &os) {
  // Pruned layers show their pattern and density, and how they are
  // stored (compressed: the bytes are the packed ones).
  SizeReport r = report;
  r.layers = reportLayers(report);
  auto pruned = pruneRecords(report);
  auto packed = packRecords(report);
  int64_t compressedLayers = 0, prunedLayers = 0;
  for (LayerQuantRecord &l : r.layers)
    if (auto it = pruned.find(l.name);
        it != pruned.end() && it->second->density < 1.0) {
      ++prunedLayers;
      l.scheme += llvm::formatv(", {0} d={1:F3}", it->second->sparsity,
                                it->second->density)
                      .str();
      if (auto p = packed.find(l.name); p != packed.end()) {
        l.scheme += p->second->compressed ? ", compressed" : ", dense";
        compressedLayers += p->second->compressed;
      }
    }
  size_t nameWidth = 5;
  for (const LayerQuantRecord &l : r.layers)
    nameWidth = std::max(nameWidth, l.name.size());
  nameWidth = std::min<size_t>(nameWidth, 48);
  // W8A8 schemes ("..., act int8 dynamic per-token") are wider than the
  // weight-only ones.
  size_t schemeWidth = 26;
  for (const LayerQuantRecord &l : r.layers)
    schemeWidth = std::max(schemeWidth, l.scheme.size() +
                                            (l.floatKept ? 7 : 0));
  schemeWidth = std::min<size_t>(schemeWidth, 64);
  os << "size report (--quant=" << r.quant << ")\n";
  if (!r.pruned.empty()) {
    int64_t weights = 0;
    double nonzero = 0.0;
    for (const LayerPruneRecord &p : r.pruned) {
      weights += p.outFeatures * p.inFeatures;
      nonzero += p.density * static_cast<double>(p.outFeatures * p.inFeatures);
    }
    if (weights > 0)
      os << llvm::format("density of the linear weights: %.4f (pruned; "
                         "%lld of %lld pruned layers stored compressed)\n",
                         nonzero / static_cast<double>(weights),
                         (long long)compressedLayers, (long long)prunedLayers);
  }
  os << llvm::format("%-*s %-11s %-*s %12s %12s %7s\n", (int)nameWidth,
                     "layer", "[N x K]", (int)schemeWidth, "scheme", "bytes before",
                     "bytes after", "ratio");
  for (const LayerQuantRecord &l : r.layers) {
    std::string shape =
        std::to_string(l.outFeatures) + "x" + std::to_string(l.inFeatures);
    std::string name = l.name.size() > nameWidth
                           ? "..." + l.name.substr(l.name.size() - nameWidth + 3)
                           : l.name;
    std::string scheme = l.scheme + (l.floatKept ? " +float" : "");
    os << llvm::format("%-*s %-11s %-*s %12lld %12lld %6.2fx\n",
                       (int)nameWidth, name.c_str(), shape.c_str(),
                       (int)schemeWidth, scheme.c_str(), (long long)l.bytesBefore,
                       (long long)l.bytesAfter,
                       l.bytesAfter ? double(l.bytesBefore) / l.bytesAfter
                                    : 0.0);
  }
  auto totalRow = [&](const char *what, const WeightTotals &t) {
    os << llvm::format("%-*s %-11s %-*s %12lld %12lld %6.2fx\n",
                       (int)nameWidth, what, "", (int)schemeWidth, "",
                       (long long)t.before, (long long)t.after,
                       t.after ? double(t.before) / t.after : 0.0);
  };
  WeightTotals linears = totals(r, /*embeddings=*/false);
  WeightTotals tables = totals(r, /*embeddings=*/true);
  totalRow("linear weights", linears);
  if (tables.weights > 0)
    totalRow("embedding tables", tables);
  if (linears.weights > 0)
    os << llvm::format(
        "bits per linear weight: %.3f (codes, scales, zero points)\n",
        linears.bitsPerWeight());
  if (tables.weights > 0)
    os << llvm::format("bits per embedding weight: %.3f\n",
                       tables.bitsPerWeight());
  os << "all constants: " << megabytes(r.constantBytesBefore) << " -> "
     << megabytes(r.constantBytesAfter) << "\n";
  if (r.artifactBytes >= 0)
    os << "artifact " << r.artifact << ": " << megabytes(r.artifactBytes)
       << "\n";
}

void quench::writeSizeReportJSON(const SizeReport &report,
                                 llvm::raw_ostream &os) {
  SizeReport r = report;
  r.layers = reportLayers(report);
  auto pruned = pruneRecords(report);
  auto packed = packRecords(report);
  llvm::json::Array layers;
  for (const LayerQuantRecord &l : r.layers) {
    llvm::json::Object obj{{"name", l.name},
                           {"kind", l.embedding ? "embedding" : "linear"},
                           {"out_features", l.outFeatures},
                           {"in_features", l.inFeatures},
                           {"scheme", l.scheme},
                           {"bytes_before", l.bytesBefore},
                           {"bytes_after", l.bytesAfter},
                           {"float_weight_kept", l.floatKept}};
    // With the prune stage: the layer's pattern and method (or "dense"
    // and why) and its fraction of nonzero weights.
    if (auto it = pruned.find(l.name); it != pruned.end()) {
      obj["sparsity"] = it->second->sparsity;
      obj["density"] = it->second->density;
    }
    // With the pack-sparse stage: "2:4 compressed int8" or "dense (why)",
    // and the bytes of the dense storage.
    if (auto it = packed.find(l.name); it != packed.end()) {
      obj["storage"] = it->second->storage;
      obj["bytes_dense"] = it->second->bytesBefore;
    }
    layers.push_back(std::move(obj));
  }
  WeightTotals linears = totals(r, /*embeddings=*/false);
  WeightTotals tables = totals(r, /*embeddings=*/true);
  llvm::json::Object doc{
      {"schema", "quench-size-report"},
      {"version", 1},
      {"model", r.model},
      {"quant", r.quant},
      {"layers", std::move(layers)},
      {"linear_weight_bytes_before", linears.before},
      {"linear_weight_bytes_after", linears.after},
      {"linear_weight_bits_per_weight", linears.bitsPerWeight()},
      {"embedding_bytes_before", tables.before},
      {"embedding_bytes_after", tables.after},
      {"embedding_bits_per_weight", tables.bitsPerWeight()},
      {"constant_bytes_before", r.constantBytesBefore},
      {"constant_bytes_after", r.constantBytesAfter},
      {"artifact", r.artifact},
      {"artifact_bytes", r.artifactBytes}};
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(doc))) << "\n";
}

std::string quench::finishSizeReport(SizeReport &report,
                                     llvm::StringRef artifact, bool print,
                                     llvm::StringRef jsonPath,
                                     llvm::raw_ostream &os) {
  report.artifact = artifact.str();
  uint64_t size;
  if (!artifact.empty() && artifact != "-" &&
      !llvm::sys::fs::file_size(artifact, size))
    report.artifactBytes = static_cast<int64_t>(size);
  if (print)
    printSizeReport(report, os);
  if (jsonPath.empty())
    return "";
  return writeFileAtomically(jsonPath, [&](llvm::raw_ostream &out) {
    writeSizeReportJSON(report, out);
    return true;
  });
}

void quench::updateSizeReport(SizeReport &report, llvm::StringRef stage,
                              mlir::ModuleOp module) {
  if (stage == "input" || stage == "prepare")
    report.constantBytesBefore = report.constantBytesAfter =
        measureConstants(module).total;
  else if (stage == "quantize" || stage == "pack-sparse")
    report.constantBytesAfter = measureConstants(module).total;
}
