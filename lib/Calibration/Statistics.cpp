//===- Statistics.cpp - calibration statistics and range estimators -------===//

#include "quench/Calibration/Statistics.h"

#include "quench/Support/Communicator.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

using namespace quench::calib;

//===----------------------------------------------------------------------===//
// AbsHistogram
//===----------------------------------------------------------------------===//

AbsHistogram::AbsHistogram(int bins) : counts_(std::max(bins, 1), 0) {}

AbsHistogram::AbsHistogram(double limit, std::vector<uint64_t> counts,
                           uint64_t pendingZeros)
    : limit_(limit), counts_(std::move(counts)), pendingZeros_(pendingZeros) {
  total_ = pendingZeros_;
  for (uint64_t c : counts_)
    total_ += c;
}

void AbsHistogram::rescaleTo(double limit) {
  if (limit == limit_ || limit == 0)
    return;
  if (limit_ == 0) {
    limit_ = limit;
    counts_[0] += pendingZeros_;
    pendingZeros_ = 0;
    return;
  }
  int shift = 0;
  for (double l = limit_; l < limit; l *= 2)
    ++shift;
  size_t n = counts_.size();
  std::vector<uint64_t> merged(n, 0);
  for (size_t i = 0; i < n; ++i)
    merged[shift >= 63 ? 0 : (i >> shift)] += counts_[i];
  counts_ = std::move(merged);
  limit_ = limit;
}

void AbsHistogram::growTo(double a) {
  if (limit_ == 0) {
    // The first nonzero value: the smallest power of two above it
    // (a = m 2^e with m in [0.5, 1), so 2^e > a).
    int e = 0;
    std::frexp(a, &e);
    rescaleTo(std::ldexp(1.0, e));
    return;
  }
  double l = limit_;
  while (!(a < l))
    l *= 2;
  rescaleTo(l);
}

void AbsHistogram::addAbs(double a, uint64_t times) {
  total_ += times;
  if (a == 0 && limit_ == 0) {
    pendingZeros_ += times;
    return;
  }
  if (!(a < limit_))
    growTo(a);
  size_t n = counts_.size();
  size_t bin = static_cast<size_t>(a / limit_ * static_cast<double>(n));
  counts_[std::min(bin, n - 1)] += times;
}

void AbsHistogram::add(const float *x, size_t n) {
  // One pass for the block's maximum, so that the limit grows at most once.
  float m = 0;
  for (size_t i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    if (std::isfinite(a) && a > m)
      m = a;
  }
  if (m > 0 && !(m < limit_))
    growTo(m);
  if (limit_ == 0) { // only zeros so far
    for (size_t i = 0; i < n; ++i)
      if (std::isfinite(x[i])) {
        ++pendingZeros_;
        ++total_;
      }
    return;
  }
  size_t bins = counts_.size();
  double perUnit = static_cast<double>(bins) / limit_;
  for (size_t i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    if (!std::isfinite(a))
      continue;
    size_t bin = static_cast<size_t>(a * perUnit);
    counts_[std::min(bin, bins - 1)] += 1;
    ++total_;
  }
}

//===----------------------------------------------------------------------===//
// Range estimators
//===----------------------------------------------------------------------===//

std::optional<RangeMethod>
quench::calib::parseRangeMethod(const std::string &name) {
  if (name == "minmax")
    return RangeMethod::MinMax;
  if (name == "percentile")
    return RangeMethod::Percentile;
  if (name == "mse")
    return RangeMethod::MSE;
  if (name == "entropy")
    return RangeMethod::Entropy;
  return std::nullopt;
}

const char *quench::calib::rangeMethodName(RangeMethod m) {
  switch (m) {
  case RangeMethod::MinMax:
    return "minmax";
  case RangeMethod::Percentile:
    return "percentile";
  case RangeMethod::MSE:
    return "mse";
  case RangeMethod::Entropy:
    return "entropy";
  }
  return "?";
}

double quench::calib::percentileRange(const AbsHistogram &h,
                                      double percentile) {
  if (h.total() == 0 || h.limit() == 0)
    return 0;
  double target = std::clamp(percentile, 0.0, 100.0) / 100.0 *
                  static_cast<double>(h.total());
  double cum = 0, w = h.binWidth();
  const std::vector<uint64_t> &c = h.counts();
  for (int j = 0; j < h.bins(); ++j) {
    double next = cum + static_cast<double>(c[j]);
    if (c[j] && next >= target)
      return (j + std::clamp((target - cum) / c[j], 0.0, 1.0)) * w;
    cum = next;
  }
  return h.limit();
}

double quench::calib::mseRange(const AbsHistogram &h, int levels) {
  if (h.total() == 0 || h.limit() == 0)
    return 0;
  const std::vector<uint64_t> &c = h.counts();
  int n = h.bins();
  double w = h.binWidth();
  // The last nonempty bin bounds the useful thresholds.
  int last = n - 1;
  while (last > 0 && c[last] == 0)
    --last;
  double best = std::numeric_limits<double>::infinity();
  double bestT = (last + 1) * w;
  for (int i = 0; i <= last; ++i) {
    double t = (i + 1) * w;
    double step = t / levels;
    double rounding = step * step / 12.0;
    double err = 0;
    for (int j = 0; j <= last; ++j) {
      if (!c[j])
        continue;
      double center = (j + 0.5) * w;
      double e = center > t ? (center - t) * (center - t) : rounding;
      err += static_cast<double>(c[j]) * e;
    }
    if (err <= best) {
      best = err;
      bestT = t;
    }
  }
  return bestT;
}

double quench::calib::entropyRange(const AbsHistogram &h, int levels) {
  if (h.total() == 0 || h.limit() == 0)
    return 0;
  const std::vector<uint64_t> &c = h.counts();
  int n = h.bins();
  int last = n - 1;
  while (last > 0 && c[last] == 0)
    --last;
  double w = h.binWidth();
  // Too few bins hold data to merge them: the full range is exact.
  if (last + 1 <= levels)
    return (last + 1) * w;
  std::vector<double> suffix(n + 1, 0);
  for (int j = n - 1; j >= 0; --j)
    suffix[j] = suffix[j + 1] + static_cast<double>(c[j]);
  double total = suffix[0];
  double best = std::numeric_limits<double>::infinity();
  int bestI = last + 1;
  std::vector<double> q;
  for (int i = levels; i <= last + 1; ++i) {
    // Q: c[0, i) merged into `levels` chunks, each chunk's mass spread over
    // its nonzero bins.
    q.assign(i, 0.0);
    for (int k = 0; k < levels; ++k) {
      int begin = static_cast<int>(static_cast<int64_t>(k) * i / levels);
      int end = static_cast<int>(static_cast<int64_t>(k + 1) * i / levels);
      double sum = 0;
      int nonzero = 0;
      for (int j = begin; j < end; ++j)
        if (c[j]) {
          sum += static_cast<double>(c[j]);
          ++nonzero;
        }
      for (int j = begin; j < end; ++j)
        if (c[j])
          q[j] = sum / nonzero;
    }
    double qTotal = total - suffix[i];
    // P: c[0, i) with the outliers folded into the last bin; sums to total.
    double kl = 0;
    for (int j = 0; j < i; ++j) {
      double p = static_cast<double>(c[j]);
      if (j == i - 1)
        p += suffix[i];
      if (p == 0)
        continue;
      p /= total;
      // A bin P has and Q lacks (only the outlier bin can be one): a tiny
      // probability, as the usual smoothing does, so it costs a lot.
      double qq = q[j] > 0 ? q[j] / qTotal : 1e-12;
      kl += p * std::log(p / qq);
    }
    if (kl < best) {
      best = kl;
      bestI = i;
    }
  }
  return bestI * w;
}

//===----------------------------------------------------------------------===//
// TensorStats
//===----------------------------------------------------------------------===//

TensorStats::TensorStats(std::string name, int64_t channels, bool perChannel,
                         bool withGram)
    : name(std::move(name)), channels(channels),
      min(std::numeric_limits<float>::infinity()),
      max(-std::numeric_limits<float>::infinity()) {
  assert(channels > 0 && "a tensor has at least one channel");
  if (perChannel) {
    channelAbsMax.assign(channels, 0.0f);
    channelAbsSum.assign(channels, 0.0);
  }
  if (withGram)
    gram.assign(static_cast<size_t>(channels) * channels, 0.0);
}

/// Adds xᵀx of `numRows` rows of `data` to the upper triangle of the Gram
/// matrix. The rows are converted to double once (non-finite values count
/// as 0); the triangle's rows are split among threads in chunks of equal
/// work, each element summed by one thread in the same order as on one
/// thread (row blocks, then rows): the result does not depend on the
/// thread count.
namespace {
// The Gram matrix's upper triangle is updated in tiles of kTileRows x
// kPanel elements held in registers while a chunk of rows streams past
// (G[i][j] += x[r][i] * x[r][j], r in order), from the rows packed into
// panels of kPanel columns (panel p: x[r][kPanel p .. kPanel p + kPanel)
// for every r, contiguous, zero past the last channel). Every element is
// still the sequential sum over the rows in order, one multiply and one add
// per row (no fused multiply-add: the file is built with -ffp-contract=off
// and the AVX2 kernel does not enable FMA), so the matrix is the same bit
// for bit whatever the tiling, the thread count or the instruction set.
constexpr size_t kPanel = 8;
constexpr size_t kTileRows = 4;
// Rows per pass over a block of the triangle: one panel's chunk (16 KB)
// stays in L1, the block's rows (kBlockRows / kPanel panels) in L2.
constexpr size_t kRowChunk = 256;
constexpr size_t kBlockRows = 64;

/// acc[kTileRows][kPanel] (row stride `ld`) += a^T b over `n` rows; a and b
/// advance by kPanel doubles per row (a: kTileRows of them used).
void gramTileGeneric(const double *a, const double *b, size_t n, double *acc,
                     size_t ld) {
  double c[kTileRows][kPanel];
  for (size_t i = 0; i < kTileRows; ++i)
    for (size_t j = 0; j < kPanel; ++j)
      c[i][j] = acc[i * ld + j];
  for (size_t r = 0; r < n; ++r, a += kPanel, b += kPanel)
    for (size_t i = 0; i < kTileRows; ++i) {
      double ai = a[i];
      for (size_t j = 0; j < kPanel; ++j)
        c[i][j] = c[i][j] + ai * b[j];
    }
  for (size_t i = 0; i < kTileRows; ++i)
    for (size_t j = 0; j < kPanel; ++j)
      acc[i * ld + j] = c[i][j];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QUENCH_GRAM_AVX2 1
__attribute__((target("avx2"))) void
gramTileAVX2(const double *a, const double *b, size_t n, double *acc,
             size_t ld) {
  static_assert(kTileRows == 4 && kPanel == 8, "the kernel's shape");
  __m256d c00 = _mm256_loadu_pd(acc), c01 = _mm256_loadu_pd(acc + 4);
  __m256d c10 = _mm256_loadu_pd(acc + ld), c11 = _mm256_loadu_pd(acc + ld + 4);
  __m256d c20 = _mm256_loadu_pd(acc + 2 * ld);
  __m256d c21 = _mm256_loadu_pd(acc + 2 * ld + 4);
  __m256d c30 = _mm256_loadu_pd(acc + 3 * ld);
  __m256d c31 = _mm256_loadu_pd(acc + 3 * ld + 4);
  for (size_t r = 0; r < n; ++r, a += kPanel, b += kPanel) {
    __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
    __m256d x = _mm256_broadcast_sd(a);
    c00 = _mm256_add_pd(c00, _mm256_mul_pd(x, b0));
    c01 = _mm256_add_pd(c01, _mm256_mul_pd(x, b1));
    x = _mm256_broadcast_sd(a + 1);
    c10 = _mm256_add_pd(c10, _mm256_mul_pd(x, b0));
    c11 = _mm256_add_pd(c11, _mm256_mul_pd(x, b1));
    x = _mm256_broadcast_sd(a + 2);
    c20 = _mm256_add_pd(c20, _mm256_mul_pd(x, b0));
    c21 = _mm256_add_pd(c21, _mm256_mul_pd(x, b1));
    x = _mm256_broadcast_sd(a + 3);
    c30 = _mm256_add_pd(c30, _mm256_mul_pd(x, b0));
    c31 = _mm256_add_pd(c31, _mm256_mul_pd(x, b1));
  }
  _mm256_storeu_pd(acc, c00);
  _mm256_storeu_pd(acc + 4, c01);
  _mm256_storeu_pd(acc + ld, c10);
  _mm256_storeu_pd(acc + ld + 4, c11);
  _mm256_storeu_pd(acc + 2 * ld, c20);
  _mm256_storeu_pd(acc + 2 * ld + 4, c21);
  _mm256_storeu_pd(acc + 3 * ld, c30);
  _mm256_storeu_pd(acc + 3 * ld + 4, c31);
}
#endif

using GramTileFn = void (*)(const double *, const double *, size_t, double *,
                            size_t);

/// The AVX2 kernel where the processor has it, unless QUENCH_GRAM_GENERIC
/// is set (tests compare the two).
GramTileFn selectGramTile() {
#ifdef QUENCH_GRAM_AVX2
  if (!std::getenv("QUENCH_GRAM_GENERIC") && __builtin_cpu_supports("avx2"))
    return gramTileAVX2;
#endif
  return gramTileGeneric;
}
} // namespace

void TensorStats::accumulateGram(const float *data, size_t numRows,
                                 unsigned threads) {
  size_t k = static_cast<size_t>(channels);
  size_t numPanels = (k + kPanel - 1) / kPanel;
  // Panel p, row r: packed[(p * numRows + r) * kPanel + c] = x[r][p kPanel + c].
  std::vector<double> packed(numPanels * numRows * kPanel, 0.0);
  for (size_t r = 0; r < numRows; ++r) {
    const float *row = data + r * k;
    for (size_t j = 0; j < k; ++j) {
      float v = row[j];
      packed[((j / kPanel) * numRows + r) * kPanel + j % kPanel] =
          std::isfinite(v) ? v : 0.0;
    }
  }
  GramTileFn tile = selectGramTile();
  // Rows [iBegin, iEnd) of the triangle (iBegin a multiple of kTileRows).
  auto update = [&](size_t iBegin, size_t iEnd) {
    double edge[kTileRows * kPanel];
    for (size_t r0 = 0; r0 < numRows; r0 += kRowChunk) {
      size_t nr = std::min(kRowChunk, numRows - r0);
      for (size_t ib = iBegin; ib < iEnd; ib += kBlockRows) {
        size_t ie = std::min(ib + kBlockRows, iEnd);
        for (size_t p = ib / kPanel; p < numPanels; ++p) {
          size_t j0 = p * kPanel;
          const double *b = packed.data() + (p * numRows + r0) * kPanel;
          for (size_t i0 = ib; i0 < ie; i0 += kTileRows) {
            if (j0 + kPanel <= i0)
              continue; // below the diagonal
            const double *a = packed.data() +
                              ((i0 / kPanel) * numRows + r0) * kPanel +
                              i0 % kPanel;
            double *g = gram.data() + i0 * k + j0;
            bool full = j0 >= i0 + kTileRows - 1 && j0 + kPanel <= k &&
                        i0 + kTileRows <= ie;
            if (full) {
              tile(a, b, nr, g, k);
              continue;
            }
            // A tile on the diagonal or the edge: only elements j >= i
            // inside the matrix (and rows of this thread) are kept.
            size_t ni = std::min(kTileRows, ie - i0);
            size_t nj = std::min(kPanel, k - j0);
            auto valid = [&](size_t i, size_t j) {
              return i < ni && j < nj && j0 + j >= i0 + i;
            };
            for (size_t i = 0; i < kTileRows; ++i)
              for (size_t j = 0; j < kPanel; ++j)
                edge[i * kPanel + j] = valid(i, j) ? g[i * k + j] : 0.0;
            tile(a, b, nr, edge, kPanel);
            for (size_t i = 0; i < kTileRows; ++i)
              for (size_t j = 0; j < kPanel; ++j)
                if (valid(i, j))
                  g[i * k + j] = edge[i * kPanel + j];
          }
        }
      }
    }
  };
  // Threads only where the work (numRows * k^2 / 2 multiply-adds) dwarfs
  // starting them.
  if (threads == 0)
    threads = std::max(1u, std::thread::hardware_concurrency());
  threads = std::min<unsigned>(threads, 16);
  if (threads == 1 || k < 128 ||
      static_cast<double>(numRows) * k * k < double(1 << 24)) {
    update(0, k);
    return;
  }
  // Row i of the triangle costs k - i: chunk t ends where the remaining
  // work is (1 - (t + 1) / T) of the whole, i = k (1 - sqrt(1 - (t+1)/T)),
  // rounded to whole tiles.
  std::vector<size_t> bounds(threads + 1, 0);
  for (unsigned t = 1; t < threads; ++t) {
    size_t i = static_cast<size_t>(static_cast<double>(k) *
                                   (1.0 - std::sqrt(1.0 - double(t) / threads)));
    bounds[t] = std::min(k, std::max(bounds[t - 1], i / kTileRows * kTileRows));
  }
  bounds[threads] = k;
  std::vector<std::thread> workers;
  for (unsigned t = 1; t < threads; ++t)
    workers.emplace_back(update, bounds[t], bounds[t + 1]);
  update(bounds[0], bounds[1]);
  for (std::thread &w : workers)
    w.join();
}

void TensorStats::observe(const float *data, size_t numElements,
                          unsigned threads) {
  assert(!finalized_ && "observe after finalize");
  assert(numElements % channels == 0 && "whole rows only");
  size_t k = static_cast<size_t>(channels);
  size_t numRows = numElements / k;
  for (size_t i = 0; i < numElements; ++i) {
    float v = data[i];
    if (!std::isfinite(v)) {
      ++nonFinite;
      continue;
    }
    ++count;
    min = std::min(min, v);
    max = std::max(max, v);
  }
  hist.add(data, numElements);
  if (!channelAbsMax.empty()) {
    for (size_t r = 0; r < numRows; ++r) {
      const float *row = data + r * k;
      for (size_t j = 0; j < k; ++j) {
        float a = std::fabs(row[j]);
        if (!std::isfinite(a))
          continue;
        channelAbsMax[j] = std::max(channelAbsMax[j], a);
        channelAbsSum[j] += a;
      }
    }
  }
  if (!gram.empty())
    accumulateGram(data, numRows, threads);
  rows += numRows;
}

void TensorStats::finalize() {
  if (finalized_)
    return;
  finalized_ = true;
  size_t k = static_cast<size_t>(channels);
  if (!gram.empty())
    for (size_t i = 0; i < k; ++i)
      for (size_t j = 0; j < i; ++j)
        gram[i * k + j] = gram[j * k + i];
}

double TensorStats::absMax() const {
  if (count == 0)
    return 0;
  return std::max(std::fabs(static_cast<double>(min)),
                  std::fabs(static_cast<double>(max)));
}

double TensorStats::range(RangeMethod method, double percentile,
                          int bits) const {
  double m = absMax();
  double r = m;
  int positiveLevels = (1 << (bits - 1)) - 1;
  switch (method) {
  case RangeMethod::MinMax:
    break;
  case RangeMethod::Percentile:
    r = percentileRange(hist, percentile);
    break;
  case RangeMethod::MSE:
    r = mseRange(hist, positiveLevels);
    break;
  case RangeMethod::Entropy:
    r = entropyRange(hist, positiveLevels + 1);
    break;
  }
  return std::min(r, m);
}

void quench::calib::allReduceStats(TensorStats &t, Communicator &comm) {
  if (comm.size() == 1)
    return;
  uint64_t counts[] = {t.rows, t.count, t.nonFinite};
  comm.allReduceSum(counts, 3);
  t.rows = counts[0];
  t.count = counts[1];
  t.nonFinite = counts[2];
  comm.allReduceMin(&t.min, 1);
  comm.allReduceMax(&t.max, 1);
  // Histograms: every limit is a power of two (or 0), so each rescales to
  // the largest exactly and the counts add up.
  double limit = t.hist.limit();
  comm.allReduceMax(&limit, 1);
  t.hist.rescaleTo(limit);
  std::vector<uint64_t> bins = t.hist.counts();
  bins.push_back(t.hist.pendingZeros());
  comm.allReduceSum(bins.data(), bins.size());
  uint64_t pendingZeros = bins.back();
  bins.pop_back();
  t.hist = AbsHistogram(limit, std::move(bins), pendingZeros);
  if (!t.channelAbsMax.empty()) {
    comm.allReduceMax(t.channelAbsMax.data(), t.channelAbsMax.size());
    comm.allReduceSum(t.channelAbsSum.data(), t.channelAbsSum.size());
  }
  if (t.gram.empty())
    return;
  // The upper triangle (all that is accumulated before finalize), packed
  // in pieces of about 16 MB: half the bytes of the whole matrix, and a
  // bounded copy.
  size_t k = static_cast<size_t>(t.channels);
  std::vector<double> piece;
  for (size_t i = 0; i < k;) {
    size_t first = i;
    piece.clear();
    for (; i < k && piece.size() < (size_t(2) << 20); ++i)
      piece.insert(piece.end(), t.gram.begin() + i * k + i,
                   t.gram.begin() + (i + 1) * k);
    comm.allReduceSum(piece.data(), piece.size());
    const double *p = piece.data();
    for (size_t r = first; r < i; ++r) {
      std::copy(p, p + (k - r), t.gram.begin() + r * k + r);
      p += k - r;
    }
  }
}

//===----------------------------------------------------------------------===//
// CalibrationStats
//===----------------------------------------------------------------------===//

const TensorStats *CalibrationStats::find(const std::string &name) const {
  for (const TensorStats &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

const TensorStats *
CalibrationStats::findLayerInput(const std::string &layer) const {
  for (const TensorStats &t : tensors)
    for (const std::string &l : t.layers)
      if (l == layer)
        return &t;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Cache file
//===----------------------------------------------------------------------===//

uint64_t quench::calib::fnv1a(const void *data, size_t size, uint64_t seed) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {
constexpr char kMagic[8] = {'Q', 'N', 'C', 'C', 'A', 'L', 'I', 'B'};

/// Little-endian fields (the hosts Quench runs on are little-endian; the
/// runtime checks the same), collected for one CacheWriter::write.
class Fields {
public:
  template <typename T> void pod(T v) {
    buf.append(reinterpret_cast<const char *>(&v), sizeof v);
  }
  template <typename T> void array(const std::vector<T> &v) {
    pod<uint64_t>(v.size());
    buf.append(reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
  }
  void str(const std::string &s) {
    pod<uint32_t>(static_cast<uint32_t>(s.size()));
    buf.append(s);
  }
  std::string buf;
};

/// Reads what CacheWriter wrote from a file as a stream, checking every
/// length against what is left and hashing every byte it passes.
class StreamReader {
public:
  StreamReader(std::FILE *file, uint64_t end) : file(file), end(end) {}
  bool bytes(void *out, uint64_t n) {
    if (end - pos < n || (n && std::fread(out, 1, n, file) != n))
      return false;
    hash = fnv1a(out, n, hash);
    pos += n;
    return true;
  }
  template <typename T> bool pod(T &v) { return bytes(&v, sizeof v); }
  /// An array of `expected` elements into `v`, or (v null) passed over.
  template <typename T> bool array(std::vector<T> *v, uint64_t expected) {
    uint64_t n;
    if (!pod(n) || n != expected || (end - pos) / sizeof(T) < n)
      return false;
    if (v) {
      v->resize(n);
      return bytes(v->data(), n * sizeof(T));
    }
    char chunk[1 << 16];
    for (uint64_t left = n * sizeof(T); left;) {
      uint64_t m = std::min<uint64_t>(left, sizeof chunk);
      if (!bytes(chunk, m))
        return false;
      left -= m;
    }
    return true;
  }
  bool str(std::string &s) {
    uint32_t n;
    if (!pod(n) || end - pos < n)
      return false;
    s.resize(n);
    return bytes(s.data(), n);
  }
  uint64_t offset() const { return pos; }
  bool atEnd() const { return pos == end; }
  uint64_t hash = 0xcbf29ce484222325ull;

private:
  std::FILE *file;
  uint64_t end;
  uint64_t pos = 0;
};

/// A FILE closed on scope exit.
struct FileCloser {
  std::FILE *f;
  ~FileCloser() {
    if (f)
      std::fclose(f);
  }
};
} // namespace

std::string TensorStats::loadGram(std::vector<double> &out) const {
  if (!gram.empty()) {
    out = gram;
    return "";
  }
  if (gramPath.empty())
    return "no Gram matrix was recorded for '" + name + "'";
  FileCloser f{std::fopen(gramPath.c_str(), "rb")};
  size_t n = static_cast<size_t>(channels) * static_cast<size_t>(channels);
  out.resize(n);
  if (!f.f || fseeko(f.f, static_cast<off_t>(gramOffset), SEEK_SET) != 0 ||
      std::fread(out.data(), sizeof(double), n, f.f) != n) {
    out.clear();
    return "cannot read the Gram matrix of '" + name + "' from '" + gramPath +
           "'" + (errno ? std::string(": ") + std::strerror(errno) : "");
  }
  return "";
}

void TensorStats::releaseGram(std::string path, uint64_t offset) {
  gramPath = std::move(path);
  gramOffset = offset;
  std::vector<double>().swap(gram);
}

CacheWriter::~CacheWriter() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

std::string CacheWriter::write(const void *data, size_t size) {
  if (size && std::fwrite(data, 1, size, file_) != size)
    return "cannot write calibration cache '" + path_ + "': " +
           std::strerror(errno);
  hash_ = fnv1a(data, size, hash_);
  offset_ += size;
  return "";
}

std::string CacheWriter::open(const std::string &path,
                              const CalibrationStats &stats,
                              uint64_t numTensors) {
  path_ = path;
  tmp_ = path + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_)
    return "cannot write calibration cache '" + path + "': " +
           std::strerror(errno);
  offset_ = 0;
  hash_ = fnv1a(nullptr, 0);
  expected_ = numTensors;
  appended_ = 0;
  Fields w;
  w.buf.append(kMagic, sizeof kMagic);
  w.pod<uint32_t>(kCacheVersion);
  w.str(stats.modelChecksum);
  w.str(stats.dataChecksum);
  w.pod<uint64_t>(stats.samples);
  w.pod<uint64_t>(numTensors);
  return write(w.buf.data(), w.buf.size());
}

std::string CacheWriter::append(const TensorStats &t, uint64_t *gramOffset) {
  Fields w;
  w.str(t.name);
  w.pod<uint64_t>(t.layers.size());
  for (const std::string &l : t.layers)
    w.str(l);
  w.pod<int64_t>(t.channels);
  w.pod<uint64_t>(t.rows);
  w.pod<uint64_t>(t.count);
  w.pod<uint64_t>(t.nonFinite);
  w.pod<float>(t.min);
  w.pod<float>(t.max);
  w.pod<double>(t.hist.limit());
  w.array(t.hist.counts());
  uint8_t flags = (t.channelAbsMax.empty() ? 0 : 1) | (t.hasGram() ? 2 : 0);
  w.pod<uint8_t>(flags);
  if (flags & 1) {
    w.array(t.channelAbsMax);
    w.array(t.channelAbsSum);
  }
  if (gramOffset)
    *gramOffset = 0;
  if (flags & 2) {
    std::vector<double> fromFile;
    const std::vector<double> *g = &t.gram;
    if (t.gram.empty()) {
      std::string err = t.loadGram(fromFile);
      if (!err.empty())
        return err;
      g = &fromFile;
    }
    w.pod<uint64_t>(g->size());
    if (std::string err = write(w.buf.data(), w.buf.size()); !err.empty())
      return err;
    if (gramOffset)
      *gramOffset = offset_;
    if (std::string err = write(g->data(), g->size() * sizeof(double));
        !err.empty())
      return err;
  } else if (std::string err = write(w.buf.data(), w.buf.size());
             !err.empty()) {
    return err;
  }
  ++appended_;
  return "";
}

std::string CacheWriter::commit() {
  if (appended_ != expected_)
    return "calibration cache '" + path_ + "': " +
           std::to_string(appended_) + " tensors written, " +
           std::to_string(expected_) + " announced";
  uint64_t sum = hash_;
  if (std::string err = write(&sum, sizeof sum); !err.empty())
    return err;
  bool ok = std::fflush(file_) == 0;
  ok &= std::fclose(file_) == 0;
  file_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    return "cannot write calibration cache '" + path_ + "'";
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    std::string err = std::strerror(errno);
    std::remove(tmp_.c_str());
    return "cannot write calibration cache '" + path_ + "': " + err;
  }
  return "";
}

std::string quench::calib::writeCache(const std::string &path,
                                      const CalibrationStats &stats) {
  CacheWriter w;
  std::string err = w.open(path, stats, stats.tensors.size());
  for (size_t i = 0; err.empty() && i < stats.tensors.size(); ++i)
    err = w.append(stats.tensors[i]);
  return err.empty() ? w.commit() : err;
}

std::string quench::calib::readCache(const std::string &path,
                                     CalibrationStats &stats,
                                     bool gramsInMemory) {
  FileCloser f{std::fopen(path.c_str(), "rb")};
  if (!f.f)
    return "cannot read calibration cache '" + path + "': " +
           std::strerror(errno);
  auto malformed = [&](const std::string &what) {
    return "calibration cache '" + path + "' is malformed (" + what +
           "); delete it to recalibrate";
  };
  uint64_t size = 0;
  if (fseeko(f.f, 0, SEEK_END) == 0)
    size = static_cast<uint64_t>(ftello(f.f));
  std::rewind(f.f);
  char magic[sizeof kMagic];
  uint32_t version;
  if (size < sizeof kMagic + 4 + 8 ||
      std::fread(magic, 1, sizeof magic, f.f) != sizeof magic ||
      std::memcmp(magic, kMagic, sizeof kMagic) != 0)
    return "'" + path + "' is not a Quench calibration cache";
  if (std::fread(&version, 4, 1, f.f) != 1)
    return malformed("header");
  if (version != kCacheVersion)
    return "calibration cache '" + path + "' has format version " +
           std::to_string(version) + ", this Quench reads version " +
           std::to_string(kCacheVersion) + "; delete it to recalibrate";
  std::rewind(f.f);
  uint64_t body = size - 8;
  uint64_t sum = 0;
  if (fseeko(f.f, static_cast<off_t>(body), SEEK_SET) != 0 ||
      std::fread(&sum, 8, 1, f.f) != 1)
    return malformed("trailer");
  std::rewind(f.f);
  // A corrupted file is reported as such (by the checksum), not by the
  // field that happened to break: on a parse error the whole content is
  // hashed.
  StreamReader r(f.f, body);
  CalibrationStats out;
  auto parse = [&]() -> std::string {
    char m[sizeof kMagic];
    r.bytes(m, sizeof m);
    r.pod(version);
    uint64_t numTensors;
    if (!r.str(out.modelChecksum) || !r.str(out.dataChecksum) ||
        !r.pod(out.samples) || !r.pod(numTensors))
      return malformed("header");
    for (uint64_t i = 0; i < numTensors; ++i) {
      TensorStats t;
      uint64_t numLayers;
      if (!r.str(t.name) || !r.pod(numLayers) || numLayers > body)
        return malformed("tensor " + std::to_string(i));
      t.layers.resize(numLayers);
      for (std::string &l : t.layers)
        if (!r.str(l))
          return malformed("layer names of '" + t.name + "'");
      double limit;
      std::vector<uint64_t> counts;
      if (!r.pod(t.channels) || t.channels <= 0 || !r.pod(t.rows) ||
          !r.pod(t.count) || !r.pod(t.nonFinite) || !r.pod(t.min) ||
          !r.pod(t.max) || !r.pod(limit) || !(limit >= 0))
        return malformed("statistics of '" + t.name + "'");
      {
        // The bin count is read ahead: it bounds the allocation.
        uint64_t numBins;
        off_t at = ftello(f.f);
        if (std::fread(&numBins, 8, 1, f.f) != 1 || numBins == 0 ||
            numBins > (1u << 20) || fseeko(f.f, at, SEEK_SET) != 0)
          return malformed("histogram of '" + t.name + "'");
        if (!r.array(&counts, numBins))
          return malformed("histogram of '" + t.name + "'");
      }
      t.hist = AbsHistogram(limit, std::move(counts));
      uint8_t flags;
      if (!r.pod(flags) || flags > 3)
        return malformed("flags of '" + t.name + "'");
      uint64_t k = static_cast<uint64_t>(t.channels);
      if ((flags & 1) && (!r.array(&t.channelAbsMax, k) ||
                          !r.array(&t.channelAbsSum, k)))
        return malformed("channel statistics of '" + t.name + "'");
      // A cache holds finished statistics: the Gram matrix is read as it
      // was written (finalizing first, while it is empty, mirrors
      // nothing), the same whether it is read now or later by loadGram.
      t.finalize();
      if (flags & 2) {
        if (k > (1u << 20))
          return malformed("Gram matrix of '" + t.name + "'");
        uint64_t at = r.offset() + 8;
        if (!r.array(gramsInMemory ? &t.gram : nullptr, k * k))
          return malformed("Gram matrix of '" + t.name + "'");
        if (!gramsInMemory) {
          t.gramPath = path;
          t.gramOffset = at;
        }
      }
      out.tensors.push_back(std::move(t));
    }
    if (!r.atEnd())
      return malformed("trailing bytes");
    if (r.hash != sum)
      return malformed("checksum mismatch: truncated or corrupted");
    return "";
  };
  if (std::string err = parse(); !err.empty()) {
    // Hash the whole content to tell corruption from a malformed writer.
    std::rewind(f.f);
    uint64_t h = fnv1a(nullptr, 0);
    char chunk[1 << 16];
    for (uint64_t left = body; left;) {
      size_t m = static_cast<size_t>(std::min<uint64_t>(left, sizeof chunk));
      if (std::fread(chunk, 1, m, f.f) != m)
        return err;
      h = fnv1a(chunk, m, h);
      left -= m;
    }
    return h != sum ? malformed("checksum mismatch: truncated or corrupted")
                    : err;
  }
  stats = std::move(out);
  return "";
}
