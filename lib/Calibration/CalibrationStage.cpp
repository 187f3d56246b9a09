//===- CalibrationStage.cpp - calibration in the front pipeline -----------===//

#include "quench/Calibration/CalibrationStage.h"

#include "mlir/IR/Diagnostics.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/Support/Signals.h"

using namespace llvm;
using namespace quench::calib;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

Expected<CalibrationStats>
quench::calib::obtainCalibration(mlir::ModuleOp module, StringRef entry,
                                 const ModelSignature &sig,
                                 const CalibrationRequest &request) {
  // With several processes, every one takes each decision below on the
  // same files; they agree on every failure and on using the cache, so
  // that all of them calibrate (or none does).
  Communicator *comm = request.comm;
  bool root = !comm || comm->rank() == 0;
  auto agreeOn = [&](Error e) -> Error {
    if (!comm)
      return e;
    std::string message = comm->agree(e ? toString(std::move(e)) : "");
    return message.empty() ? Error::success() : makeError(message);
  };
  auto note = [&]() {
    return mlir::emitRemark(mlir::UnknownLoc::get(module.getContext()));
  };
  std::string modelKey, dataKey;
  const std::string &dir = request.samplesDir, &cache = request.cachePath;
  std::vector<Sample> samples;
  auto keys = [&]() -> Error {
    auto modelSum = checksumFile(request.modelPath);
    if (!modelSum)
      return modelSum.takeError();
    // The statistics depend on the model file and on the shapes it was
    // compiled with.
    modelKey = *modelSum;
    for (const std::string &s : request.shapes)
      modelKey += ";shape=" + s;
    if (!request.entryName.empty())
      modelKey += ";entry=" + request.entryName;
    if (!request.modelVariant.empty())
      modelKey += ";" + request.modelVariant;
    if (!dir.empty()) {
      auto listed = listSamples(
          dir, sig, request.generation ? &*request.generation : nullptr);
      if (!listed)
        return listed.takeError();
      samples = std::move(*listed);
      auto sum = checksumSamples(samples);
      if (!sum)
        return sum.takeError();
      dataKey = *sum + (request.gram ? ";gram" : "");
    }
    return Error::success();
  };
  if (Error e = agreeOn(keys()))
    return std::move(e);

  bool cacheExists = !cache.empty() && sys::fs::exists(cache);
  if (comm) {
    int64_t all = cacheExists;
    comm->allReduceMin(&all, 1);
    cacheExists = all;
  }
  if (cacheExists) {
    CalibrationStats cached;
    std::string why = readCache(cache, cached, /*gramsInMemory=*/false);
    bool unreadable = !why.empty();
    if (why.empty() && cached.modelChecksum != modelKey)
      why = "calibration cache '" + cache +
            "' was made for another model (or other --shape options)";
    if (why.empty() && !dir.empty() && cached.dataChecksum != dataKey)
      why = "the samples in '" + dir + "' differ from those '" + cache +
            "' was made from";
    if (comm) {
      // The reason of the lowest process that cannot use the cache.
      std::string agreed = comm->agree(why);
      if (why.empty() && !agreed.empty())
        unreadable = true;
      why = agreed;
    }
    if (why.empty()) {
      note() << "using the calibration statistics in '" << cache << "' ("
             << cached.samples << " sample"
             << (cached.samples == 1 ? "" : "s") << ")";
      return cached;
    }
    if (dir.empty())
      return makeError(unreadable ? why
                                  : why + "; give --calib=DIR to recalibrate");
    note() << why << "; recalibrating";
  } else if (dir.empty()) {
    return makeError("calibration cache '" + cache +
                     "' does not exist; give --calib=DIR to create it");
  }

  // The statistics go to the cache file, or to a scratch file removed with
  // the last copy of the statistics, as each segment completes; Gram
  // matrices are read back one at a time by the quantize stage.
  CalibrateOptions opts;
  opts.gram = request.gram;
  opts.cpu = request.cpu;
  opts.segmentBytes = request.segmentBytes;
  opts.modelChecksum = modelKey;
  opts.dataChecksum = dataKey;
  opts.comm = comm;
  opts.progress = root;
  opts.threads = request.threads;
  opts.generation = request.generation ? &*request.generation : nullptr;
  std::shared_ptr<const void> scratch;
  std::error_code scratchError;
  if (!cache.empty() && root) {
    opts.statsFile = cache;
  } else {
    SmallString<128> path;
    scratchError = sys::fs::createTemporaryFile("quench-calib", "stats", path);
    if (scratchError && !comm)
      return makeError("cannot create a scratch file for the calibration "
                       "statistics: " +
                       scratchError.message());
    sys::RemoveFileOnSignal(path);
    opts.statsFile = std::string(path);
    scratch = std::shared_ptr<const std::string>(
        new std::string(path.str()), [](const std::string *p) {
          sys::fs::remove(*p);
          sys::DontRemoveFileOnSignal(*p);
          delete p;
        });
  }
  if (Error e = agreeOn(scratchError
                            ? makeError("cannot create a scratch file for the "
                                        "calibration statistics: " +
                                        scratchError.message())
                            : Error::success()))
    return std::move(e);
  auto stats = calibrate(module, entry, sig, samples, opts);
  if (!stats)
    return stats.takeError();
  stats->scratchFile = std::move(scratch);
  return std::move(*stats);
}

void quench::calib::addCalibrationStage(FrontPipelineOptions &opts,
                                        CalibrationStage &stage) {
  opts.calibrate = [&stage](mlir::ModuleOp module) -> mlir::LogicalResult {
    auto stats = obtainCalibration(module, stage.entry, *stage.signature,
                                   stage.request);
    if (!stats)
      return mlir::emitError(mlir::UnknownLoc::get(module.getContext()))
             << toString(stats.takeError());
    stage.stats = std::move(*stats);
    return mlir::success();
  };
  if (stage.request.smoothAlpha)
    opts.smooth = makeSmoothStage(
        stage, opts.weightQuant && opts.weightQuant->activations == "static");
  if (!opts.weightQuant && !opts.prune)
    return;
  const CalibrationStage *s = &stage;
  // After SmoothQuant a layer reads x / s: its minmax range is the largest
  // channel maximum of x / s (other estimators need a histogram of x / s:
  // the smooth stage recalibrates then, and smoothScales is empty).
  auto smoothScalesOf = [s](StringRef layer) -> const std::vector<float> * {
    auto it = s->smoothScales.find(layer.str());
    return it == s->smoothScales.end() ? nullptr : &it->second;
  };
  auto inputRange = [s, smoothScalesOf](
                        StringRef layer) -> std::optional<float> {
    const TensorStats *t = s->stats ? s->stats->findLayerInput(layer.str())
                                    : nullptr;
    if (!t)
      return std::nullopt;
    if (const std::vector<float> *scales = smoothScalesOf(layer)) {
      if (t->channelAbsMax.size() != scales->size())
        return std::nullopt;
      double range = 0;
      for (size_t j = 0; j < scales->size(); ++j)
        range = std::max(range, static_cast<double>(t->channelAbsMax[j]) /
                                    (*scales)[j]);
      return static_cast<float>(range);
    }
    return static_cast<float>(
        t->range(s->request.rangeMethod, s->request.percentile, 8));
  };
  // Outlier splitting: the channel maxima of what the layer reads (x / s
  // after SmoothQuant).
  opts.weightQuant->inputChannelMax =
      [s, smoothScalesOf](
          StringRef layer) -> std::optional<std::vector<float>> {
    const TensorStats *t = s->stats ? s->stats->findLayerInput(layer.str())
                                    : nullptr;
    if (!t || t->channelAbsMax.empty())
      return std::nullopt;
    std::vector<float> maxima = t->channelAbsMax;
    if (const std::vector<float> *scales = smoothScalesOf(layer)) {
      if (scales->size() != maxima.size())
        return std::nullopt;
      for (size_t j = 0; j < maxima.size(); ++j)
        maxima[j] /= (*scales)[j];
    }
    return maxima;
  };
  // Gram matrices are read from the statistics file when a layer is
  // quantized and dropped after it.
  auto hasInputGram = [s](StringRef layer) {
    const TensorStats *t = s->stats ? s->stats->findLayerInput(layer.str())
                                    : nullptr;
    return t && t->hasGram();
  };
  auto inputGram =
      [s, smoothScalesOf](StringRef layer)
      -> Expected<std::shared_ptr<const std::vector<double>>> {
    const TensorStats *t = s->stats ? s->stats->findLayerInput(layer.str())
                                    : nullptr;
    if (!t || !t->hasGram())
      return nullptr;
    auto gram = std::make_shared<std::vector<double>>();
    std::string err = t->loadGram(*gram);
    if (!err.empty())
      return makeError(err);
    // The Gram matrix of x / s: G[i, j] / (s_i s_j).
    if (const std::vector<float> *scales = smoothScalesOf(layer)) {
      size_t k = scales->size();
      if (gram->size() != k * k)
        return makeError("the Gram matrix of layer '" + layer +
                         "' does not match its SmoothQuant scales");
      for (size_t i = 0; i < k; ++i)
        for (size_t j = 0; j < k; ++j)
          (*gram)[i * k + j] /= static_cast<double>((*scales)[i]) *
                                static_cast<double>((*scales)[j]);
    }
    return gram;
  };
  // Pruning (before quantization) and quantization read the same
  // statistics.
  if (opts.prune) {
    opts.prune->hasInputGram = hasInputGram;
    opts.prune->inputGram = inputGram;
  }
  if (!opts.weightQuant)
    return;
  opts.weightQuant->inputRange = inputRange;
  opts.weightQuant->hasInputGram = hasInputGram;
  opts.weightQuant->inputGram = inputGram;
  // AWQ's per-channel mean |x| (of x / s after SmoothQuant: exact).
  opts.weightQuant->inputMeanAbs =
      [s, smoothScalesOf](StringRef layer) -> std::optional<std::vector<float>> {
    const TensorStats *t = s->stats ? s->stats->findLayerInput(layer.str())
                                    : nullptr;
    if (!t || t->channelAbsSum.empty() || t->rows == 0)
      return std::nullopt;
    const std::vector<float> *scales = smoothScalesOf(layer);
    if (scales && scales->size() != t->channelAbsSum.size())
      return std::nullopt;
    std::vector<float> mean(t->channelAbsSum.size());
    for (size_t j = 0; j < mean.size(); ++j)
      mean[j] = static_cast<float>(t->channelMeanAbs(static_cast<int64_t>(j)) /
                                   (scales ? (*scales)[j] : 1.0f));
    return mean;
  };
  opts.weightQuant->progress = true;
}

namespace {
struct CalibrationCLOptions {
  cl::OptionCategory category{"quench-compile calibration options"};
  cl::opt<std::string> dir{
      "calib",
      cl::desc("Calibrate on the samples in DIR: DIR/<sample>/<input>.npy "
               "(one directory per sample, files named after the graph "
               "inputs) or DIR/<input>.npy (one sample); "
               "docs/calibration.md"),
      cl::value_desc("DIR"), cl::cat(category)};
  cl::opt<std::string> cache{
      "calib-cache",
      cl::desc("Calibration statistics file: read when it exists and was "
               "made for this model (and, with --calib, these samples), else "
               "written after calibrating"),
      cl::value_desc("FILE"), cl::cat(category)};
  cl::opt<std::string> method{
      "calib-method",
      cl::desc("Activation range estimator for static quantization: minmax "
               "(default), percentile, mse, entropy"),
      cl::init("minmax"), cl::cat(category)};
  cl::opt<double> percentile{
      "calib-percentile",
      cl::desc("Percentile of |x| for --calib-method=percentile (default "
               "99.99)"),
      cl::init(99.99), cl::cat(category)};
  cl::opt<double> segmentMB{
      "calib-segment-mb",
      cl::desc("Calibrate the model segment by segment, each holding at most "
               "about this many MB of float weights and statistics (cut "
               "between layers; default 512; 0: the whole model at once)"),
      cl::init(CalibrateOptions::kDefaultSegmentBytes / 1048576.0),
      cl::value_desc("MB"), cl::cat(category)};
  cl::opt<unsigned> threads{
      "calib-threads",
      cl::desc("Threads of the calibration runs and statistics (default 0: "
               "every core; quench-compile-mpi: the cores divided among its "
               "processes on this machine)"),
      cl::init(0), cl::cat(category)};
  cl::opt<bool> gram{
      "calib-gram",
      cl::desc("Record the Gram matrix X^T X of every linear's input (for "
               "GPTQ; K*K doubles each; default true)"),
      cl::init(true), cl::cat(category)};
  cl::opt<std::string> smooth{
      "smooth", cl::ValueOptional,
      cl::desc("SmoothQuant: migrate activation outliers into the weights "
               "with strength ALPHA in [0, 1] (--smooth alone: 0.5; auto: "
               "chosen per group by the predicted W8A8 error), from the "
               "calibrated per-channel maxima; the float model is "
               "unchanged; for --quant=w8a8 (docs/quantization.md)"),
      cl::value_desc("ALPHA|auto"), cl::cat(category)};
};
} // namespace

static ManagedStatic<CalibrationCLOptions> clOptions;

void quench::calib::registerCalibrationCLOptions() { *clOptions; }

cl::OptionCategory &quench::calib::getCalibrationCLOptionCategory() {
  return clOptions->category;
}

Expected<std::optional<CalibrationRequest>>
quench::calib::getCalibrationRequestFromCL() {
  std::optional<CalibrationRequest> out;
  if (!clOptions.isConstructed())
    return out;
  CalibrationCLOptions &o = *clOptions;
  std::optional<RangeMethod> method = parseRangeMethod(o.method);
  if (!method)
    return makeError("unknown --calib-method '" + o.method +
                     "': use minmax, percentile, mse or entropy");
  if (!(o.percentile > 0 && o.percentile <= 100))
    return makeError("--calib-percentile must be in (0, 100]");
  if (!(o.segmentMB >= 0) || o.segmentMB > 1e9)
    return makeError("--calib-segment-mb must be >= 0");
  std::optional<double> smoothAlpha;
  bool smoothAuto = o.smooth.getNumOccurrences() && o.smooth == "auto";
  if (o.smooth.getNumOccurrences()) {
    double alpha = 0.5;
    if (!o.smooth.empty() && !smoothAuto &&
        (StringRef(o.smooth).getAsDouble(alpha) || !(alpha >= 0.0) ||
         alpha > 1.0))
      return makeError("--smooth=ALPHA needs a number in [0, 1] or 'auto', "
                       "got '" +
                       o.smooth + "'");
    if (smoothAuto && !o.gram)
      return makeError("--smooth=auto needs the Gram matrices "
                       "(--calib-gram=true)");
    if (o.dir.empty() && o.cache.empty())
      return makeError("--smooth needs calibration (--calib or "
                       "--calib-cache)");
    smoothAlpha = alpha;
  }
  if (o.dir.empty() && o.cache.empty())
    return out;
  out.emplace();
  out->samplesDir = o.dir;
  out->cachePath = o.cache;
  out->rangeMethod = *method;
  out->percentile = o.percentile;
  out->gram = o.gram;
  out->smoothAlpha = smoothAlpha;
  out->smoothAuto = smoothAuto;
  out->threads = static_cast<int>(std::min<unsigned>(o.threads, 1024));
  // At least one byte: a positive option never means "one segment".
  out->segmentBytes =
      o.segmentMB > 0
          ? std::max<uint64_t>(1, static_cast<uint64_t>(o.segmentMB * 1048576))
          : 0;
  return out;
}
