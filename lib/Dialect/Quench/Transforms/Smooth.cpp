//===- Smooth.cpp - SmoothQuant scale migration ---------------------------===//
//
// Implements `quench-smooth`: per group of linears sharing an input, the
// SmoothQuant scales of lib/Quant/Smooth.cpp from the calibrated activation
// maxima and the weights' column maxima, folded by ScaleMigration.cpp.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/Transforms/ScaleMigration.h"

#include "quench/Quant/Smooth.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

namespace quench {
#define GEN_PASS_DEF_QUENCHSMOOTH
#include "quench/Dialect/Quench/Transforms/Passes.h.inc"
} // namespace quench

using namespace mlir;
using namespace quench;
namespace qq = quench::quant;

/// auto-alpha's grid: alpha = 0, 1/kAlphaSteps, ..., 1.
static constexpr int kAlphaSteps = 20;

/// alpha as printf's %g (0.5, not 5.000000e-01).
static std::string formatAlpha(double alpha) {
  std::string s;
  llvm::raw_string_ostream(s) << llvm::format("%g", alpha);
  return s;
}

LogicalResult quench::smoothLinears(ModuleOp module,
                                    const SmoothOptions &options,
                                    std::vector<SmoothRecord> *report) {
  Location loc = module.getLoc();
  double alpha = options.alpha;
  if (!(alpha >= 0.0 && alpha <= 1.0))
    return emitError(loc) << "SmoothQuant: alpha must be in [0, 1], got "
                          << alpha;
  std::vector<ScaleGroup> groups = findScaleGroups(module);

  // The statistics of every group that can migrate, before anything
  // changes: all layers without them are named at once.
  bool search = options.autoAlpha;
  std::vector<std::optional<qq::SmoothInputStats>> stats(groups.size());
  std::vector<std::string> missing, badSize;
  for (auto [i, g] : llvm::enumerate(groups)) {
    if (!g.absorber)
      continue;
    if (options.inputStats) {
      // The linears of a group read one tensor: any of their names finds
      // its statistics.
      for (const std::string &name : g.names)
        if ((stats[i] = options.inputStats(name, search)))
          break;
    } else if (options.testActMax > 0) {
      qq::SmoothInputStats t;
      double r = options.testActMax;
      t.absMax.assign(g.channels, static_cast<float>(r));
      t.sumSquares.assign(g.channels, r * r / 3.0);
      t.rows = 1;
      stats[i] = std::move(t);
    }
    if (!stats[i])
      missing.insert(missing.end(), g.names.begin(), g.names.end());
    else if (static_cast<int64_t>(stats[i]->absMax.size()) != g.channels ||
             (search &&
              static_cast<int64_t>(stats[i]->sumSquares.size()) != g.channels))
      badSize.push_back(
          g.names.front() + " (" + std::to_string(stats[i]->absMax.size()) +
          " channels, expected " + std::to_string(g.channels) + ")");
  }
  if (!missing.empty())
    return emitError(loc) << "SmoothQuant needs calibration (--calib or "
                             "--calib-cache"
                          << (search ? ", with --calib-gram" : "")
                          << "); no input statistics for layers: "
                          << llvm::join(missing, ", ");
  if (!badSize.empty())
    return emitError(loc) << "SmoothQuant: the per-channel statistics do not "
                             "match the layers' inputs: "
                          << llvm::join(badSize, ", ");

  std::vector<std::string> skipped;
  int64_t smoothedLayers = 0, smoothedGroups = 0, unscaledGroups = 0;
  for (auto [i, g] : llvm::enumerate(groups)) {
    SmoothRecord rec;
    rec.layers = g.names;
    if (!g.absorber) {
      rec.skipped = g.reason;
      for (const std::string &name : g.names)
        skipped.push_back(name + " (" + g.reason + ")");
    } else {
      std::vector<std::vector<float>> weights;
      std::vector<const float *> ptrs;
      std::vector<int64_t> rows;
      for (LinearOp op : g.linears) {
        weights.push_back(*readLinearWeight(op));
        ptrs.push_back(weights.back().data());
        rows.push_back(static_cast<int64_t>(weights.back().size()) /
                       g.channels);
      }
      if (search) {
        qq::SmoothSearchResult best = qq::searchSmoothScales(
            *stats[i], ptrs, rows, kAlphaSteps, /*powerOfTwo=*/true);
        rec.alpha = best.alpha;
        if (best.alpha >= 0)
          rec.scales = std::move(best.scales);
        else
          ++unscaledGroups;
      } else {
        std::vector<float> weightMax(g.channels, 0.0f);
        for (size_t l = 0; l < ptrs.size(); ++l)
          qq::accumulateColumnAbsMax(ptrs[l], rows[l], g.channels,
                                     weightMax.data());
        rec.alpha = alpha;
        rec.scales =
            qq::smoothQuantScales(stats[i]->absMax.data(), weightMax.data(),
                                  g.channels, alpha, /*powerOfTwo=*/true);
      }
      if (!rec.scales.empty()) {
        migrateScales(g, rec.scales);
        ++smoothedGroups;
        smoothedLayers += static_cast<int64_t>(g.names.size());
      }
    }
    if (report)
      report->push_back(std::move(rec));
  }
  InFlightDiagnostic remark =
      emitRemark(loc) << "SmoothQuant (alpha "
                      << (search ? std::string("auto") : formatAlpha(alpha))
                      << "): scales migrated into " << smoothedLayers
                      << " linear" << (smoothedLayers == 1 ? "" : "s") << " ("
                      << smoothedGroups << " group"
                      << (smoothedGroups == 1 ? "" : "s") << ")";
  if (unscaledGroups)
    remark << "; " << unscaledGroups << " group"
           << (unscaledGroups == 1 ? "" : "s")
           << " predicted to quantize better unscaled";
  if (!skipped.empty())
    remark << "; left as they are: " << llvm::join(skipped, ", ");
  return success();
}

namespace {
struct QuenchSmoothPass
    : public quench::impl::QuenchSmoothBase<QuenchSmoothPass> {
  using Base::Base;
  QuenchSmoothPass(SmoothOptions options, std::vector<SmoothRecord> *report)
      : Base(options), inputStats(std::move(options.inputStats)),
        report(report) {}

  void runOnOperation() override {
    SmoothOptions o;
    o.alpha = alpha;
    o.testActMax = testActMax;
    o.autoAlpha = autoAlpha;
    o.inputStats = inputStats;
    if (failed(smoothLinears(getOperation(), o, report)))
      signalPassFailure();
  }

  decltype(SmoothOptions::inputStats) inputStats;
  std::vector<SmoothRecord> *report = nullptr;
};
} // namespace

std::unique_ptr<Pass>
quench::createQuenchSmooth(SmoothOptions options,
                           std::vector<SmoothRecord> *report) {
  return std::make_unique<QuenchSmoothPass>(std::move(options), report);
}
