//===- CalibrationStage.h - calibration in the front pipeline ---*- C++ -*-===//
//
// The `calibrate` stage of the shared front pipeline: statistics read from
// a calibration cache made for this model (and these samples), or computed
// by running the prepared float model on the samples (Calibrate.h) and
// written to the cache; the quantize stage then looks up each layer's
// input range and Gram matrix in them. Also the compile driver's
// calibration options (--calib, --calib-cache, --calib-method,
// --calib-percentile, --calib-gram), registered by the library.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CALIBRATION_CALIBRATIONSTAGE_H
#define QUENCH_CALIBRATION_CALIBRATIONSTAGE_H

#include "quench/Calibration/Calibrate.h"
#include "quench/Pipelines/Pipelines.h"

#include "llvm/Support/CommandLine.h"

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace quench::calib {

/// What to calibrate on and where to cache it.
struct CalibrationRequest {
  /// Samples directory (--calib); empty: the cache must exist.
  std::string samplesDir;
  /// Statistics file (--calib-cache); empty: no cache.
  std::string cachePath;
  /// Activation range estimator for static activation quantization.
  RangeMethod rangeMethod = RangeMethod::MinMax;
  double percentile = 99.99;
  /// Record the Gram matrix of every linear's input (for GPTQ).
  bool gram = true;
  /// CalibrateOptions::segmentBytes (--calib-segment-mb).
  uint64_t segmentBytes = CalibrateOptions::kDefaultSegmentBytes;
  /// The model file, whose checksum keys the cache, and what else changes
  /// the compiled model (--shape, --entry), appended to the key.
  std::string modelPath;
  std::vector<std::string> shapes;
  std::string entryName;
  /// The rewrites before calibration that change what it observes (e.g.
  /// "rotate=hadamard,seed=0" for --rotate), appended to the key; empty:
  /// none.
  std::string modelVariant;
  /// How the instrumented model is compiled.
  CPUTargetOptions cpu;
  /// Threads of the runs and of the statistics (--calib-threads; 0: every
  /// core).
  int threads = 0;
  /// The processes that calibrate together (CalibrateOptions::comm; null:
  /// this one alone). Rank 0 writes the cache; the others keep their copy
  /// of the statistics in a scratch file of their own.
  Communicator *comm = nullptr;
  /// Inputs of a decoder with past that samples may leave out (the token
  /// ids suffice); unset: samples give every input.
  std::optional<GenerationInputs> generation;
  /// SmoothQuant's alpha (--smooth): the `smooth` stage migrates scales
  /// after calibration (docs/quantization.md, "SmoothQuant"); unset: none.
  std::optional<double> smoothAlpha;
  /// --smooth=auto: alpha chosen per group (quench-smooth's auto-alpha).
  bool smoothAuto = false;
};

/// The statistics for `request`: read from the cache when it was made for
/// this model (and, with samples, for these samples), else computed by
/// running the prepared float model `module` (entry `entry`, C signature
/// `sig`) on the samples and written to the cache (or, without one, to a
/// scratch file removed with the statistics). Either way the Gram matrices
/// stay in that file (TensorStats::gramPath) until loaded. Fails with one message;
/// notes ("using the calibration statistics in ...", "recalibrating") are
/// emitted as remarks on the module's context.
llvm::Expected<CalibrationStats>
obtainCalibration(mlir::ModuleOp module, llvm::StringRef entry,
                  const ModelSignature &sig, const CalibrationRequest &request);

/// The calibrate stage of one compile.
struct CalibrationStage {
  CalibrationRequest request;
  /// The entry function's name and C signature: set by the driver once the
  /// model is loaded, before the stage runs.
  std::string entry;
  const ModelSignature *signature = nullptr;
  /// The statistics, once the stage ran.
  std::optional<CalibrationStats> stats;
  /// Layer name -> SmoothQuant scales s of its input, once the smooth stage
  /// ran: `stats` describe x, the model now computes x / s, and the
  /// quantize stage's lookups derive the statistics of x / s (per-channel
  /// maxima, sums and Gram matrices transform exactly). Empty after a
  /// recalibration of the smoothed model (then `stats` describe x / s).
  std::unordered_map<std::string, std::vector<float>> smoothScales;
};

/// Adds `stage` to the front pipeline `opts` (its `calibrate` function,
/// and its `smooth` function with request.smoothAlpha) and makes the
/// quantize stage (when opts.weightQuant is set) look up
/// layer input ranges, with the request's estimator, and Gram matrices in
/// the stage's statistics (each read from its file when its layer is
/// quantized), with GPTQ progress on stderr. `stage` must outlive the pipeline run.
void addCalibrationStage(FrontPipelineOptions &opts, CalibrationStage &stage);

/// The `smooth` stage of `stage` (SmoothQuant with request.smoothAlpha on
/// the calibrated model; SmoothStage.cpp): quench-smooth with the
/// statistics' per-channel maxima, then either the scales recorded for the
/// quantize stage's lookups or, when static activation ranges come from a
/// histogram (--calib-method other than minmax) and `staticActivations`,
/// a recalibration of the smoothed model (which needs the samples).
std::function<mlir::LogicalResult(mlir::ModuleOp)>
makeSmoothStage(CalibrationStage &stage, bool staticActivations);

/// Registers the compile driver's calibration options in their own
/// category.
void registerCalibrationCLOptions();
/// The category of registerCalibrationCLOptions' options.
llvm::cl::OptionCategory &getCalibrationCLOptionCategory();
/// The calibration the command line asks for: std::nullopt when neither
/// --calib nor --calib-cache is given; an error for a bad --calib-method or
/// --calib-percentile. The model path, shapes, entry and CPU options are
/// left for the caller.
llvm::Expected<std::optional<CalibrationRequest>>
getCalibrationRequestFromCL();

} // namespace quench::calib

#endif // QUENCH_CALIBRATION_CALIBRATIONSTAGE_H
