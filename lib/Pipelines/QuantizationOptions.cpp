//===- QuantizationOptions.cpp - --quant presets and command-line options -===//
//
// The compile driver's quantization options. They are registered by the
// library (as CIRCT's registerFirtoolCLOptions does) so that the driver
// only parses its command line: every option maps onto one field of the
// options quench-quantize-weights declares in Passes.td (WeightQuantOptions
// derives from the generated struct), which is the one definition of what
// weight quantization can be told.
//
//===----------------------------------------------------------------------===//

#include "quench/Pipelines/Pipelines.h"
#include "quench/Quant/RTN.h"
#include "quench/Quant/Sparse.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/ManagedStatic.h"

using namespace llvm;

std::string quench::parseQuantPreset(StringRef preset, int64_t groupSize,
                                     std::optional<WeightQuantOptions> &out) {
  out.reset();
  if (preset == "none")
    return "";
  unsigned bits = StringSwitch<unsigned>(preset)
                      .Cases({"w8a16", "w8a8", "w8a8-dynamic"}, 8)
                      .Case("w4a16", 4)
                      .Case("w3a16", 3)
                      .Case("w2a16", 2)
                      .Default(0);
  if (!bits)
    return "unknown quantization '" + preset.str() +
           "': use none, w8a16, w4a16, w3a16, w2a16, w8a8 or w8a8-dynamic";
  WeightQuantOptions q;
  q.bits = bits;
  if (preset == "w8a8")
    q.activations = "static";
  else if (preset == "w8a8-dynamic")
    q.activations = "dynamic";
  if (q.activations != "none" && groupSize > 0)
    return "--quant=" + preset.str() +
           " quantizes weights per output channel: --group-size must be 0";
  q.groupSize = groupSize >= 0 ? groupSize : (bits == 8 ? 0 : 32);
  if ((q.groupSize * bits) % 8 != 0)
    return "group size " + std::to_string(q.groupSize) + " does not pack " +
           std::to_string(bits) + "-bit codes into whole bytes (use a "
           "multiple of 8)";
  out = q;
  return "";
}

namespace {
/// The options, created by registerQuantizationCLOptions (tools that do
/// not call it, such as quench-opt, do not get them).
struct QuantizationCLOptions {
  cl::OptionCategory category{"quench-compile quantization options"};
  cl::opt<std::string> quant{
      "quant",
      cl::desc("Weight quantization of the linear layers: none (default), "
               "w8a16 (int8 per output channel, symmetric: the W8A16 of the "
               "founding example), w4a16, w3a16, w2a16 (group-wise, see "
               "--group-size; activations stay float), w8a8 (int8 weights "
               "per channel and int8 activations with static per-tensor "
               "scales: needs calibration, --calib or --calib-cache), "
               "w8a8-dynamic (int8 activations with per-token scales "
               "computed at run time)"),
      cl::init("none"), cl::value_desc("SCHEME"), cl::cat(category)};
  cl::opt<int64_t> groupSize{
      "group-size",
      cl::desc("Input features per quantization group (default: 0 = per "
               "output channel for w8a16, 32 for w4a16/w3a16/w2a16)"),
      cl::init(-1), cl::value_desc("N"), cl::cat(category)};
  cl::opt<bool> asymmetric{
      "asymmetric",
      cl::desc("Asymmetric codes with a zero point per group (default: "
               "symmetric)"),
      cl::cat(category)};
  cl::opt<std::string> scaleType{
      "scale-type", cl::desc("Storage of the scales: f16 (default) or f32"),
      cl::init("f16"), cl::cat(category)};
  cl::opt<bool> quantHead{
      "quant-head",
      cl::desc("Quantize the output projection too (default: true; "
               "--quant-head=false keeps it float)"),
      cl::init(true), cl::cat(category)};
  cl::opt<std::string> quantEmbeddings{
      "quant-embeddings",
      cl::desc("Also quantize embedding tables, dequantized after the lookup "
               "(default: off): int8 (the value when none is given: int8 "
               "per row, f32 scales), int4 or int2 (groups of "
               "--embedding-group-size, --scale-type scales)"),
      cl::value_desc("int8|int4|int2"), cl::ValueOptional, cl::cat(category)};
  cl::opt<int64_t> embeddingGroupSize{
      "embedding-group-size",
      cl::desc("Columns of an embedding table per scale (default: 0 = per "
               "row for int8, 32 for int4 and int2)"),
      cl::init(-1), cl::value_desc("G"), cl::cat(category)};
  cl::list<std::string> exclude{
      "quant-exclude",
      cl::desc("Keep layers whose name (ONNX node name) matches this glob "
               "in float (repeatable)"),
      cl::value_desc("GLOB"), cl::cat(category)};
  cl::opt<std::string> recipe{
      "quant-recipe",
      cl::desc("JSON file of per-layer overrides (docs/quantization.md)"),
      cl::value_desc("FILE"), cl::cat(category)};
  cl::opt<std::string> algo{
      "algo",
      cl::desc("Weight rounding algorithm: rtn (round to nearest, default), "
               "gptq (GPTQ error compensation; needs calibration "
               "statistics, --calib or --calib-cache), hqq (half-quadratic "
               "optimization of scales and zero points, data-free; implies "
               "--asymmetric for weight-only schemes unless "
               "--asymmetric=false), awq (activation-aware per-channel "
               "scales and clipping; needs calibration statistics) or "
               "awq+gptq (AWQ's scales, then GPTQ)"),
      cl::init("rtn"), cl::value_desc("rtn|gptq|hqq|awq|awq+gptq"),
      cl::cat(category)};
  cl::opt<bool> awqPowerOfTwo{
      "awq-power-of-two",
      cl::desc("AWQ: round the migrated per-channel scales to powers of two "
               "(exact migration; default: true)"),
      cl::init(true), cl::cat(category)};
  cl::opt<bool> gptqActOrder{
      "gptq-act-order",
      cl::desc("GPTQ: quantize input features by decreasing calibration "
               "energy (default: true; groups stay contiguous, no run-time "
               "cost)"),
      cl::init(true), cl::cat(category)};
  cl::opt<double> hqqLpNorm{
      "hqq-lp-norm",
      cl::desc("HQQ: the p of the l_p weight error it minimizes, in (0, 2] "
               "(default 0.7, the paper's; 2 is the squared error)"),
      cl::init(0.7), cl::value_desc("P"), cl::cat(category)};
  cl::opt<double> bitsBudget{
      "bits-budget",
      cl::desc("Mixed precision: the average storage bits per linear weight "
               "(codes, scales and zero points; the size report's) that each "
               "layer's scheme is chosen within, by predicted error "
               "(Hessian-weighted with --calib, else weight error); replaces "
               "--quant's bits and group size per layer (0: off)"),
      cl::init(0.0), cl::value_desc("B"), cl::cat(category)};
  cl::opt<std::string> sparsity{
      "sparsity",
      cl::desc("Prune the linear layers' weights (docs/sparsity.md): 2:4, "
               "4:8, N:M (keep N of every M weights along the input "
               "features), unstructured:FRACTION (prune that fraction of "
               "each output row) or none (default); weights stay in their "
               "dense format (float, or --quant's codes with exact zeros)"),
      cl::init("none"), cl::value_desc("PATTERN"), cl::cat(category)};
  cl::opt<std::string> prune{
      "prune",
      cl::desc("Pruning method: magnitude (default: keep the largest |w|) "
               "or sparsegpt (SparseGPT error compensation; needs "
               "calibration, --calib or --calib-cache)"),
      cl::init("magnitude"), cl::value_desc("magnitude|sparsegpt"),
      cl::cat(category)};
  cl::opt<std::string> sparseStorage{
      "sparse-storage",
      cl::desc("Storage of N:M pruned layers (docs/sparsity.md): auto "
               "(default: compressed, kept values plus 2- or 4-bit indices, "
               "where the target has a sparse kernel: the CPU, M = 4 or 8, "
               "f32 or 8-bit symmetric weights; else dense), compressed "
               "(the same, an error on a target without kernels) or dense"),
      cl::init("auto"), cl::value_desc("auto|compressed|dense"),
      cl::cat(category)};
  cl::opt<bool> sparsityHead{
      "sparsity-head",
      cl::desc("Prune the output projection too (default: false)"),
      cl::cat(category)};
  cl::opt<std::string> outliers{
      "outliers",
      cl::desc("W8A8 outlier splitting (LLM.int8()): input channels whose "
               "calibrated max |x| stands out stay in float, the rest run "
               "int8; auto (above --outlier-threshold x the median channel) "
               "or N (the N largest channels per layer); needs --calib or "
               "--calib-cache"),
      cl::value_desc("auto|N"), cl::cat(category)};
  cl::opt<double> outlierThreshold{
      "outlier-threshold",
      cl::desc("--outliers=auto: the factor over the median channel maximum "
               "above which a channel stays in float (default 6)"),
      cl::init(6.0), cl::value_desc("T"), cl::cat(category)};
  cl::opt<int64_t> outlierCap{
      "outlier-cap",
      cl::desc("--outliers: at most this many float channels per layer "
               "(default: 0 = in_features / 8)"),
      cl::init(0), cl::value_desc("N"), cl::cat(category)};
  cl::opt<unsigned> threads{
      "quant-threads",
      cl::desc("Threads of the GPTQ, HQQ and SparseGPT numerics (default: "
               "0 = the hardware concurrency; the result is the same for "
               "every count)"),
      cl::init(0), cl::value_desc("N"), cl::cat(category)};
};
} // namespace

static ManagedStatic<QuantizationCLOptions> clOptions;

namespace quench {
void registerRotationCLOptions(); // RotationOptions.cpp
} // namespace quench

void quench::registerQuantizationCLOptions() {
  *clOptions;
  registerRotationCLOptions();
}

cl::OptionCategory &quench::getQuantizationCLOptionCategory() {
  return clOptions->category;
}

StringRef quench::getQuantPresetFromCL() {
  if (!clOptions.isConstructed())
    return "none";
  return clOptions->quant;
}

Expected<std::optional<quench::WeightQuantOptions>>
quench::getQuantizationOptionsFromCL() {
  auto error = [](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), msg);
  };
  std::optional<WeightQuantOptions> out;
  if (!clOptions.isConstructed())
    return out;
  QuantizationCLOptions &o = *clOptions;
  if (o.groupSize.getNumOccurrences() &&
      (o.groupSize < 0 || o.groupSize > quench::quant::kMaxGroupSize))
    return error("--group-size must be 0 (one group per output channel) or "
                 "a number of input features up to " +
                 Twine(quench::quant::kMaxGroupSize) + ", got " +
                 Twine(o.groupSize.getValue()));
  if (std::string err = parseQuantPreset(o.quant, o.groupSize, out);
      !err.empty())
    return error(err);
  const bool pruning = o.sparsity != "none";
  if (!out) {
    // Options that only mean something with weight quantization: the ones
    // given are named.
    SmallVector<StringRef> given;
    auto note = [&](const cl::Option &opt) {
      if (opt.getNumOccurrences())
        given.push_back(opt.ArgStr);
    };
    note(o.groupSize);
    note(o.asymmetric);
    note(o.exclude);
    if (!pruning) // a recipe may give per-layer sparsity alone
      note(o.recipe);
    note(o.algo);
    note(o.quantEmbeddings);
    note(o.embeddingGroupSize);
    note(o.bitsBudget);
    note(o.awqPowerOfTwo);
    if (!given.empty()) {
      std::string names;
      for (size_t i = 0; i < given.size(); ++i)
        names += (i == 0 ? "--" : i + 1 == given.size() ? " and --" : ", --") +
                 given[i].str();
      return error(names + (given.size() == 1 ? " needs" : " need") +
                   " --quant (e.g. --quant=w4a16)");
    }
  }
  if ((o.outliers.getNumOccurrences() ||
       o.outlierThreshold.getNumOccurrences() ||
       o.outlierCap.getNumOccurrences()) &&
      (!out || out->activations == "none"))
    return error("--outliers, --outlier-threshold and --outlier-cap need "
                 "--quant=w8a8 or --quant=w8a8-dynamic");
  if (o.algo != "rtn" && o.algo != "gptq" && o.algo != "hqq" &&
      o.algo != "awq" && o.algo != "awq+gptq")
    return error("--algo must be rtn, gptq, hqq, awq or awq+gptq, got '" +
                 o.algo + "'");
  if (out) {
    WeightQuantOptions &q = *out;
    q.symmetric = !o.asymmetric;
    // HQQ optimizes zero points: asymmetric unless asked otherwise (W8A8
    // needs symmetric weights).
    if (o.algo == "hqq" && !o.asymmetric.getNumOccurrences() &&
        q.activations == "none")
      q.symmetric = false;
    q.scaleType = o.scaleType;
    q.quantizeHead = o.quantHead;
    if (o.quantEmbeddings.getNumOccurrences()) {
      int64_t bits = StringSwitch<int64_t>(o.quantEmbeddings.getValue())
                         .Cases({"", "int8", "true", "1"}, 8)
                         .Case("int4", 4)
                         .Case("int2", 2)
                         .Cases({"false", "0"}, 0)
                         .Default(-1);
      if (bits < 0)
        return error("--quant-embeddings must be int8, int4 or int2, got '" +
                     o.quantEmbeddings.getValue() + "'");
      q.quantizeEmbeddings = bits > 0;
      q.embeddingBits = bits > 0 ? bits : 8;
    } else if (o.embeddingGroupSize.getNumOccurrences()) {
      return error("--embedding-group-size needs --quant-embeddings");
    }
    if (o.embeddingGroupSize.getNumOccurrences() && o.embeddingGroupSize < 0)
      return error("--embedding-group-size must be >= 0, got " +
                   Twine(o.embeddingGroupSize.getValue()));
    q.embeddingGroupSize = o.embeddingGroupSize >= 0
                               ? o.embeddingGroupSize.getValue()
                               : (q.embeddingBits == 8 ? 0 : 32);
    if (q.embeddingGroupSize > quench::quant::kMaxGroupSize ||
        (q.embeddingGroupSize * q.embeddingBits) % 8 != 0)
      return error("--embedding-group-size must be 0 (per row) or a positive "
                   "multiple of " +
                   Twine(8 / q.embeddingBits) + " up to " +
                   Twine(quench::quant::kMaxGroupSize) + ", got " +
                   Twine(q.embeddingGroupSize));
    q.exclude.assign(o.exclude.begin(), o.exclude.end());
    q.recipe = o.recipe;
    q.algo = o.algo;
    q.gptqActOrder = o.gptqActOrder;
    q.threads = o.threads;
    q.bitsBudget = o.bitsBudget;
    q.hqqLpNorm = o.hqqLpNorm;
    q.awqPowerOfTwo = o.awqPowerOfTwo;
    q.outliers = o.outliers;
    q.outlierThreshold = o.outlierThreshold;
    q.outlierCap = o.outlierCap;
  }
  return out;
}

Expected<std::optional<quench::PruneOptions>> quench::getPruneOptionsFromCL() {
  auto error = [](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), msg);
  };
  std::optional<PruneOptions> out;
  if (!clOptions.isConstructed())
    return out;
  QuantizationCLOptions &o = *clOptions;
  quench::quant::SparsityPattern pattern;
  std::string why;
  if (!quench::quant::parseSparsityPattern(o.sparsity, pattern, why))
    return error("--" + why);
  if (o.prune != "magnitude" && o.prune != "sparsegpt")
    return error("--prune must be magnitude or sparsegpt, got '" + o.prune +
                 "'");
  // A recipe may prune layers with --sparsity=none (its "sparsity" fields).
  if (o.sparseStorage != "auto" && o.sparseStorage != "compressed" &&
      o.sparseStorage != "dense")
    return error("--sparse-storage must be auto, compressed or dense, got '" +
                 o.sparseStorage + "'");
  if (pattern.isDense() && o.recipe.empty()) {
    if (o.prune.getNumOccurrences() || o.sparsityHead.getNumOccurrences() ||
        o.sparseStorage.getNumOccurrences())
      return error("--prune, --sparsity-head and --sparse-storage need "
                   "--sparsity (e.g. --sparsity=2:4)");
    return out;
  }
  PruneOptions p;
  p.sparsity = o.sparsity;
  p.method = o.prune;
  p.pruneHead = o.sparsityHead;
  p.recipe = o.recipe;
  p.threads = o.threads;
  out = p;
  return out;
}

llvm::StringRef quench::getSparseStorageFromCL() {
  if (!clOptions.isConstructed())
    return "auto";
  return clOptions->sparseStorage.getValue();
}
