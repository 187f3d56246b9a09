//===- Statistics.cpp - calibration statistics and range estimators -------===//

#include "quench/Calibration/Statistics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <unistd.h>

using namespace quench::calib;

//===----------------------------------------------------------------------===//
// AbsHistogram
//===----------------------------------------------------------------------===//

AbsHistogram::AbsHistogram(int bins) : counts_(std::max(bins, 1), 0) {}

AbsHistogram::AbsHistogram(double limit, std::vector<uint64_t> counts)
    : limit_(limit), counts_(std::move(counts)) {
  for (uint64_t c : counts_)
    total_ += c;
}

void AbsHistogram::growTo(double a) {
  if (limit_ == 0) {
    // The first nonzero value: its magnitude sits in the middle of the last
    // bin's range of a histogram that can still double cheaply.
    limit_ = a * (1.0 + 1.0 / counts_.size()) * (1.0 + 1e-12);
    if (!(limit_ > a)) // denormal corner cases
      limit_ = std::nextafter(a, std::numeric_limits<double>::infinity()) * 2;
    counts_[0] += pendingZeros_;
    pendingZeros_ = 0;
    return;
  }
  int shift = 0;
  double l = limit_;
  while (!(a < l)) {
    l *= 2;
    ++shift;
  }
  if (!shift)
    return;
  size_t n = counts_.size();
  std::vector<uint64_t> merged(n, 0);
  for (size_t i = 0; i < n; ++i)
    merged[shift >= 63 ? 0 : (i >> shift)] += counts_[i];
  counts_ = std::move(merged);
  limit_ = l;
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

void TensorStats::observe(const float *data, size_t numElements) {
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
  if (!gram.empty()) {
    // Upper triangle, in blocks of rows converted to double once; the inner
    // loop runs along a row of the block (vectorizes).
    constexpr size_t kBlock = 32;
    std::vector<double> block(kBlock * k);
    for (size_t r0 = 0; r0 < numRows; r0 += kBlock) {
      size_t nr = std::min(kBlock, numRows - r0);
      for (size_t r = 0; r < nr; ++r)
        for (size_t j = 0; j < k; ++j) {
          float v = data[(r0 + r) * k + j];
          block[r * k + j] = std::isfinite(v) ? v : 0.0;
        }
      for (size_t i = 0; i < k; ++i) {
        double *g = gram.data() + i * k;
        for (size_t r = 0; r < nr; ++r) {
          const double *row = block.data() + r * k;
          double xi = row[i];
          if (xi == 0)
            continue;
          for (size_t j = i; j < k; ++j)
            g[j] += xi * row[j];
        }
      }
    }
  }
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

/// Appends little-endian fields to a byte string (the hosts Quench runs on
/// are little-endian; the runtime checks the same).
class Writer {
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

/// Reads what Writer wrote, checking every length against what is left.
class Reader {
public:
  Reader(const std::string &data, size_t end) : data(data), end(end) {}
  template <typename T> bool pod(T &v) {
    if (end - pos < sizeof v)
      return false;
    std::memcpy(&v, data.data() + pos, sizeof v);
    pos += sizeof v;
    return true;
  }
  template <typename T> bool array(std::vector<T> &v, uint64_t expected) {
    uint64_t n;
    if (!pod(n) || n != expected || (end - pos) / sizeof(T) < n)
      return false;
    v.resize(n);
    std::memcpy(v.data(), data.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
    return true;
  }
  bool str(std::string &s) {
    uint32_t n;
    if (!pod(n) || end - pos < n)
      return false;
    s.assign(data.data() + pos, n);
    pos += n;
    return true;
  }
  bool atEnd() const { return pos == end; }

private:
  const std::string &data;
  size_t end;
  size_t pos = 0;
};
} // namespace

std::string quench::calib::writeCache(const std::string &path,
                                      const CalibrationStats &stats) {
  Writer w;
  w.buf.append(kMagic, sizeof kMagic);
  w.pod<uint32_t>(kCacheVersion);
  w.str(stats.modelChecksum);
  w.str(stats.dataChecksum);
  w.pod<uint64_t>(stats.samples);
  w.pod<uint64_t>(stats.tensors.size());
  for (const TensorStats &t : stats.tensors) {
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
    uint8_t flags = (t.channelAbsMax.empty() ? 0 : 1) | (t.gram.empty() ? 0 : 2);
    w.pod<uint8_t>(flags);
    if (flags & 1) {
      w.array(t.channelAbsMax);
      w.array(t.channelAbsSum);
    }
    if (flags & 2)
      w.array(t.gram);
  }
  w.pod<uint64_t>(fnv1a(w.buf.data(), w.buf.size()));

  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os)
      return "cannot write calibration cache '" + path + "': " +
             std::strerror(errno);
    os.write(w.buf.data(), static_cast<std::streamsize>(w.buf.size()));
    os.flush();
    if (!os) {
      std::remove(tmp.c_str());
      return "cannot write calibration cache '" + path + "'";
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = std::strerror(errno);
    std::remove(tmp.c_str());
    return "cannot write calibration cache '" + path + "': " + err;
  }
  return "";
}

std::string quench::calib::readCache(const std::string &path,
                                     CalibrationStats &stats) {
  std::ifstream is(path, std::ios::binary);
  if (!is)
    return "cannot read calibration cache '" + path + "': " +
           std::strerror(errno);
  std::stringstream ss;
  ss << is.rdbuf();
  std::string data = ss.str();
  auto malformed = [&](const std::string &what) {
    return "calibration cache '" + path + "' is malformed (" + what +
           "); delete it to recalibrate";
  };
  if (data.size() < sizeof kMagic + 4 + 8 ||
      std::memcmp(data.data(), kMagic, sizeof kMagic) != 0)
    return "'" + path + "' is not a Quench calibration cache";
  uint32_t version;
  std::memcpy(&version, data.data() + sizeof kMagic, 4);
  if (version != kCacheVersion)
    return "calibration cache '" + path + "' has format version " +
           std::to_string(version) + ", this Quench reads version " +
           std::to_string(kCacheVersion) + "; delete it to recalibrate";
  size_t body = data.size() - 8;
  uint64_t sum;
  std::memcpy(&sum, data.data() + body, 8);
  if (fnv1a(data.data(), body) != sum)
    return malformed("checksum mismatch: truncated or corrupted");

  Reader r(data, body);
  std::string magic(sizeof kMagic, '\0');
  for (char &c : magic)
    r.pod(c);
  r.pod(version);
  CalibrationStats out;
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
    uint64_t numBins;
    std::vector<uint64_t> counts;
    if (!r.pod(t.channels) || t.channels <= 0 || !r.pod(t.rows) ||
        !r.pod(t.count) || !r.pod(t.nonFinite) || !r.pod(t.min) ||
        !r.pod(t.max) || !r.pod(limit) || !(limit >= 0))
      return malformed("statistics of '" + t.name + "'");
    {
      Reader peek = r;
      if (!peek.pod(numBins) || numBins == 0 || numBins > (1u << 20))
        return malformed("histogram of '" + t.name + "'");
    }
    if (!r.array(counts, numBins))
      return malformed("histogram of '" + t.name + "'");
    t.hist = AbsHistogram(limit, std::move(counts));
    uint8_t flags;
    if (!r.pod(flags) || flags > 3)
      return malformed("flags of '" + t.name + "'");
    uint64_t k = static_cast<uint64_t>(t.channels);
    if ((flags & 1) && (!r.array(t.channelAbsMax, k) ||
                        !r.array(t.channelAbsSum, k)))
      return malformed("channel statistics of '" + t.name + "'");
    if ((flags & 2) && (k > (1u << 20) || !r.array(t.gram, k * k)))
      return malformed("Gram matrix of '" + t.name + "'");
    t.finalize();
    out.tensors.push_back(std::move(t));
  }
  if (!r.atEnd())
    return malformed("trailing bytes");
  stats = std::move(out);
  return "";
}
