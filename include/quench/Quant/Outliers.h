//===- Outliers.h - LLM.int8()-style outlier channel splitting --*- C++ -*-===//
//
// The numerical core of outlier splitting (Dettmers et al. 2022,
// "LLM.int8()"), free of MLIR: which input channels of a W8A8 linear stay
// in float, and how the weight is split. A linear y = x W^T becomes
//   y = x_O W[:, O]^T  (float)  +  Q(x_R) Q(W[:, R])^T  (int8 x int8)
// where O are the outlier channels and R the rest; the int8 part's
// activation scale is computed over R only (docs/quantization.md,
// "Outlier splitting").
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_QUANT_OUTLIERS_H
#define QUENCH_QUANT_OUTLIERS_H

#include <cstdint>
#include <vector>

namespace quench::quant {

/// How a layer's outlier channels are chosen.
struct OutlierRule {
  /// < 0: automatic (every channel whose calibrated max |x_j| exceeds
  /// `threshold` times the median channel maximum); >= 0: the `count`
  /// channels with the largest maxima (0: none).
  int64_t count = -1;
  /// The relative threshold of the automatic rule (> 1).
  double threshold = 6.0;
  /// At most this many channels per layer, whatever the rule; 0: the
  /// default, kDefaultOutlierCapDivisor-th of the channels (at least 1).
  int64_t cap = 0;
};

/// The default cap is K / kDefaultOutlierCapDivisor channels (at least 1):
/// the float part's cost (N x 4 bytes and N float multiply-adds per
/// channel, 4x an int8 column's bytes) stays a small share of the layer.
constexpr int64_t kDefaultOutlierCapDivisor = 8;

/// The cap `rule` gives a layer of `k` input channels.
int64_t outlierCap(const OutlierRule &rule, int64_t k);

/// The outlier channels of a layer of `k` input channels with calibrated
/// per-channel maxima `channelMax[k]` (max |x_j| over the calibration rows):
/// chosen by `rule` among the channels with a finite positive maximum,
/// largest maximum first (ties: lower index first), at most the cap; the
/// result is sorted by channel index. The median is that of all `k`
/// maxima (the lower middle one for even k); with a median of 0 the
/// automatic rule takes every channel with a positive maximum (up to the
/// cap).
std::vector<int64_t> selectOutlierChannels(const float *channelMax, int64_t k,
                                           const OutlierRule &rule);

/// The largest maximum among the channels that are not outliers: the
/// int8 part's minmax range (0 when every channel is an outlier or k = 0).
/// `outliers` sorted, as selectOutlierChannels returns them.
float inlierRange(const float *channelMax, int64_t k,
                  const std::vector<int64_t> &outliers);

/// Splits the row-major weight `w[n][k]` in place: the outlier columns are
/// copied to the returned row-major [n][outliers.size()] matrix (float, as
/// they were) and set to 0 in `w`, so that the int8 part quantizes only the
/// other columns (its per-row scales no longer see the outlier columns).
std::vector<float> splitOutlierColumns(float *w, int64_t n, int64_t k,
                                       const std::vector<int64_t> &outliers);

} // namespace quench::quant

#endif // QUENCH_QUANT_OUTLIERS_H
