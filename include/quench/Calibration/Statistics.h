//===- Statistics.h - calibration statistics and range estimators -*- C++ -*-===//
//
// What calibration records about the tensors it observes, and the range
// estimators that turn those records into quantization ranges. Free of
// MLIR: the JIT runner (Calibrate.h) feeds observers with the float
// model's activations; passes read the results; unit tests
// (unittests/Calibration) check every estimator on known distributions.
//
// Ranges are symmetric (a threshold on |x|), the form W8A8's symmetric
// int8 activations use. Histograms are therefore histograms of |x|; the
// signed minimum and maximum are recorded exactly besides.
//
// The cache file (writeCache / readCache) is a versioned little-endian
// binary format tied to the model and to the calibration samples by
// checksums; docs/calibration.md describes it.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CALIBRATION_STATISTICS_H
#define QUENCH_CALIBRATION_STATISTICS_H

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace quench {
class Communicator;
} // namespace quench

namespace quench::calib {

/// A histogram of |x| over [0, limit) in a fixed number of equal bins. The
/// limit is a power of two: the smallest one above the first nonzero
/// magnitude, doubled (adjacent bins merged) as larger values arrive. So
/// the histogram does not depend on the order in which values arrive, and
/// histograms of parts of the data merge exactly (rescaleTo the larger
/// limit, add the counts): calibration split across processes gets the
/// histogram of one process. Values >= limit cannot occur: the limit grows
/// first.
class AbsHistogram {
public:
  static constexpr int kDefaultBins = 2048;

  explicit AbsHistogram(int bins = kDefaultBins);
  /// A histogram with the given limit and counts (as read from a cache, or
  /// reduced across processes), plus zeros seen while the limit was 0.
  AbsHistogram(double limit, std::vector<uint64_t> counts,
               uint64_t pendingZeros = 0);

  /// Raises the limit to `limit` (0, or a power of two no smaller than
  /// limit()), merging bins as growth does: the histogram is then the one
  /// this data would give had a value just below `limit` arrived.
  void rescaleTo(double limit);
  /// Zeros counted while the limit is still 0 (they join bin 0 when it
  /// grows).
  uint64_t pendingZeros() const { return pendingZeros_; }

  /// Adds |x[i]| for every finite x[i].
  void add(const float *x, size_t n);
  /// Adds one value's magnitude `a` (finite, >= 0) `times` times.
  void addAbs(double a, uint64_t times = 1);

  int bins() const { return static_cast<int>(counts_.size()); }
  /// Upper end of the last bin; 0 while only zeros were seen.
  double limit() const { return limit_; }
  double binWidth() const { return limit_ / counts_.size(); }
  const std::vector<uint64_t> &counts() const { return counts_; }
  /// Values counted (including zeros).
  uint64_t total() const { return total_; }

private:
  /// Makes the limit exceed `a` (doubling it, merging bins pairwise).
  void growTo(double a);

  double limit_ = 0;
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  /// Zeros seen while limit_ was still 0.
  uint64_t pendingZeros_ = 0;
};

/// The range estimators.
enum class RangeMethod {
  MinMax,     ///< max |x| seen
  Percentile, ///< the given percentile of |x|
  MSE,        ///< the clipping threshold with the least expected squared
              ///< quantization error (clipping + rounding)
  Entropy,    ///< the threshold whose quantized distribution is closest to
              ///< the observed one in KL divergence (TensorRT's method)
};

/// Parses "minmax", "percentile", "mse" or "entropy".
std::optional<RangeMethod> parseRangeMethod(const std::string &name);
const char *rangeMethodName(RangeMethod m);

/// The `percentile`-th percentile (0 < percentile <= 100) of the
/// histogram's values, interpolated linearly inside its bin. 0 for an empty
/// histogram.
double percentileRange(const AbsHistogram &h, double percentile);

/// The threshold t (a bin's upper edge) minimizing the expected error of
/// symmetric quantization with `levels` positive steps (127 for int8):
/// sum over bins of count * ((c - t)^2 if c > t else (t / levels)^2 / 12),
/// c the bin's center. Ties go to the larger threshold.
double mseRange(const AbsHistogram &h, int levels = 127);

/// TensorRT's entropy calibration: for every candidate threshold of at least
/// `levels` bins, the clipped distribution P (outliers folded into the last
/// bin) is compared with its quantization Q to `levels` bins (expanded back
/// over P's nonzero bins); the threshold with the smallest KL(P || Q) wins.
/// `levels` is 128 for int8.
double entropyRange(const AbsHistogram &h, int levels = 128);

/// What calibration recorded about one observed tensor.
struct TensorStats {
  /// Probe name: "<layer>:input" for a linear's input.
  std::string name;
  /// The layers (quench.linear names) whose input this tensor is.
  std::vector<std::string> layers;
  /// Size of the last dim (the linear's in_features).
  int64_t channels = 0;
  /// Vectors of `channels` elements seen.
  uint64_t rows = 0;
  /// Finite elements seen; non-finite ones (NaN, inf) are only counted.
  uint64_t count = 0;
  uint64_t nonFinite = 0;
  /// Signed extremes of the finite elements (+inf/-inf while none).
  float min = 0, max = 0;
  AbsHistogram hist;
  /// Per channel (empty unless perChannel): max |x| and sum |x| over rows.
  std::vector<float> channelAbsMax;
  std::vector<double> channelAbsSum;
  /// Row-major [channels, channels] X^T X summed over rows (empty unless
  /// withGram). Only the upper triangle is accumulated while observing;
  /// finalize() mirrors it.
  std::vector<double> gram;
  /// Where the Gram matrix lives when `gram` does not hold it (a large
  /// model's matrices stay on disk until quantization reads them one at a
  /// time): the cache file, or calibration's scratch file, and the byte
  /// offset of its channels^2 doubles. Empty: nowhere but `gram`.
  std::string gramPath;
  uint64_t gramOffset = 0;

  /// Starts a tensor of `channels` channels.
  TensorStats(std::string name, int64_t channels, bool perChannel,
              bool withGram);
  TensorStats() = default;

  /// Adds `numElements` (a multiple of `channels`) row-major values; the
  /// Gram matrix's update runs on up to `threads` threads (0: every core).
  void observe(const float *data, size_t numElements, unsigned threads = 0);
  /// Completes the Gram matrix (mirrors the upper triangle).
  void finalize();

  /// max(|min|, |max|): 0 while nothing finite was seen.
  double absMax() const;
  /// Whether a Gram matrix was recorded (in memory or on file).
  bool hasGram() const { return !gram.empty() || !gramPath.empty(); }
  /// The Gram matrix into `out`: a copy of `gram`, or read from gramPath.
  /// Returns an error message (naming the file) or "".
  std::string loadGram(std::vector<double> &out) const;
  /// Frees `gram` once the matrix is also at gramPath/gramOffset.
  void releaseGram(std::string path, uint64_t offset);

  /// Mean |x| of channel k over all rows.
  double channelMeanAbs(int64_t k) const {
    return rows ? channelAbsSum[k] / static_cast<double>(rows) : 0.0;
  }
  /// The symmetric range by `method` (percentile: `percentile`; MSE and
  /// entropy: for `bits`-bit symmetric codes). Never above absMax().
  double range(RangeMethod method, double percentile = 99.99,
               int bits = 8) const;

private:
  void accumulateGram(const float *data, size_t numRows, unsigned threads);
  bool finalized_ = false;
};

/// Adds the statistics `t` of the other processes of `comm` to this
/// process's, every process calling it for the same tensor (before
/// finalize): counts and sums are summed, extremes taken, histograms merged
/// at the largest limit. Every process then holds the statistics of all
/// their data, equal to one process's up to the order of floating-point
/// sums (Gram matrices, per-channel sums).
void allReduceStats(TensorStats &t, Communicator &comm);

/// Everything one calibration run recorded.
struct CalibrationStats {
  /// Identify what the statistics were computed from (see docs).
  std::string modelChecksum;
  std::string dataChecksum;
  uint64_t samples = 0;
  std::vector<TensorStats> tensors;
  /// Keeps a scratch file that tensors' gramPath point at (calibration
  /// without a cache file) until the last copy of these statistics goes.
  std::shared_ptr<const void> scratchFile;

  /// The tensor observed under `name`, or null.
  const TensorStats *find(const std::string &name) const;
  /// The input statistics of layer `layer`, or null.
  const TensorStats *findLayerInput(const std::string &layer) const;
};

/// Cache format version written by writeCache and required by readCache.
constexpr uint32_t kCacheVersion = 1;

/// Writes a cache file one tensor at a time, so that a calibration can put
/// each finished tensor (its Gram matrix above all) on disk and forget it.
/// The file is written under a temporary name and renamed by commit(); a
/// writer destroyed before commit() removes it.
class CacheWriter {
public:
  CacheWriter() = default;
  CacheWriter(const CacheWriter &) = delete;
  CacheWriter &operator=(const CacheWriter &) = delete;
  ~CacheWriter();

  /// Starts `path` with the header of `stats` (checksums, sample count)
  /// and a count of `numTensors` tensors, which append() must then supply.
  std::string open(const std::string &path, const CalibrationStats &stats,
                   uint64_t numTensors);
  /// Appends one tensor (its Gram matrix from memory or from its file).
  /// `gramOffset`, when given, receives the offset of the Gram matrix's
  /// doubles in the file (0 without one). Returns an error message or "".
  std::string append(const TensorStats &t, uint64_t *gramOffset = nullptr);
  /// Writes the trailing checksum and renames the file into place.
  std::string commit();

private:
  std::string write(const void *data, size_t size);
  std::string path_, tmp_;
  std::FILE *file_ = nullptr;
  uint64_t offset_ = 0, hash_ = 0, expected_ = 0, appended_ = 0;
};

/// Writes `stats` to `path` atomically. Returns an error message or "".
std::string writeCache(const std::string &path, const CalibrationStats &stats);

/// Reads a cache written by writeCache into `stats`. Checks magic, version,
/// every length against the file size, and a trailing checksum of the
/// content (the file is read as a stream, never held whole). With
/// `gramsInMemory` false the Gram matrices are left in the file: each
/// tensor's gramPath/gramOffset say where (TensorStats::loadGram).
/// Returns an error message (naming the file) or "".
std::string readCache(const std::string &path, CalibrationStats &stats,
                      bool gramsInMemory = true);

/// 64-bit FNV-1a of `data`, continuing from `seed` (chain calls to hash
/// several pieces; the default seed is FNV's offset basis).
uint64_t fnv1a(const void *data, size_t size,
               uint64_t seed = 0xcbf29ce484222325ull);

} // namespace quench::calib

#endif // QUENCH_CALIBRATION_STATISTICS_H
