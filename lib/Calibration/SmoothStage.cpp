//===- SmoothStage.cpp - SmoothQuant in the front pipeline ----------------===//
//
// The `smooth` stage (--smooth=ALPHA): quench-smooth on the calibrated
// float model, with the per-channel maxima calibration recorded, and the
// statistics the quantize stage then needs, those of x / s (derived, or
// recalibrated; docs/quantization.md, "SmoothQuant").
//
//===----------------------------------------------------------------------===//

#include "quench/Calibration/CalibrationStage.h"

#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"

#include "mlir/IR/Diagnostics.h"

using namespace llvm;
using namespace quench::calib;

std::function<mlir::LogicalResult(mlir::ModuleOp)>
quench::calib::makeSmoothStage(CalibrationStage &stage,
                               bool staticActivations) {
  return [&stage,
          staticActivations](mlir::ModuleOp module) -> mlir::LogicalResult {
    auto error = [&]() {
      return mlir::emitError(mlir::UnknownLoc::get(module.getContext()));
    };
    if (!stage.stats)
      return error() << "--smooth needs calibration (--calib or "
                        "--calib-cache)";
    const CalibrationStats &stats = *stage.stats;
    SmoothOptions options;
    options.alpha = *stage.request.smoothAlpha;
    options.autoAlpha = stage.request.smoothAuto;
    std::string gramError;
    options.inputStats = [&stats, &gramError](StringRef layer, bool withSquares)
        -> std::optional<quench::quant::SmoothInputStats> {
      const TensorStats *t = stats.findLayerInput(layer.str());
      if (!t || t->channelAbsMax.empty())
        return std::nullopt;
      quench::quant::SmoothInputStats out;
      out.absMax = t->channelAbsMax;
      out.rows = static_cast<double>(t->rows);
      if (withSquares) {
        // The sums of squares are the Gram matrix's diagonal.
        if (!t->hasGram())
          return std::nullopt;
        std::vector<double> gram;
        std::string err = t->loadGram(gram);
        size_t k = out.absMax.size();
        if (!err.empty() || gram.size() != k * k) {
          if (gramError.empty())
            gramError = err.empty() ? "the Gram matrix of layer '" +
                                          layer.str() + "' has the wrong size"
                                    : err;
          return std::nullopt;
        }
        out.sumSquares.resize(k);
        for (size_t j = 0; j < k; ++j)
          out.sumSquares[j] = gram[j * k + j];
      }
      return out;
    };
    std::vector<SmoothRecord> records;
    if (failed(smoothLinears(module, options, &records))) {
      if (!gramError.empty())
        return error() << gramError;
      return mlir::failure();
    }
    stage.smoothScales.clear();
    for (SmoothRecord &r : records)
      if (!r.scales.empty())
        for (const std::string &layer : r.layers)
          stage.smoothScales[layer] = r.scales;
    // The minmax range of x / s is exact from the per-channel maxima; a
    // histogram of x / s cannot be derived from the one of x.
    if (!staticActivations ||
        stage.request.rangeMethod == RangeMethod::MinMax ||
        stage.smoothScales.empty())
      return mlir::success();
    if (stage.request.samplesDir.empty())
      return error() << "--smooth with --calib-method="
                     << rangeMethodName(stage.request.rangeMethod)
                     << " recalibrates the smoothed model: give the samples "
                        "(--calib=DIR), or use --calib-method=minmax";
    CalibrationRequest again = stage.request;
    again.cachePath.clear(); // the cache holds the float model's statistics
    mlir::emitRemark(mlir::UnknownLoc::get(module.getContext()))
        << "recalibrating the smoothed model for --calib-method="
        << rangeMethodName(stage.request.rangeMethod);
    auto smoothed =
        obtainCalibration(module, stage.entry, *stage.signature, again);
    if (!smoothed)
      return error() << toString(smoothed.takeError());
    stage.stats = std::move(*smoothed);
    stage.smoothScales.clear();
    return mlir::success();
  };
}
