//===- KQuantPanels.cpp - two-level scales and 6-bit code panels ----------===//
//
// See include/quench/Quant/KQuantPanels.h.
//
//===----------------------------------------------------------------------===//

#include "quench/Quant/KQuantPanels.h"
#include "quench/Quant/RTN.h"

#include <cmath>

using namespace quench::quant;

bool quench::quant::factorTwoLevelScales(const float *s, int64_t count,
                                         uint16_t &d, int8_t *sc) {
  float m = 0.0f;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(s[i]))
      return false;
    m = std::max(m, std::fabs(s[i]));
  }
  if (m == 0.0f) {
    d = 0;
    for (int64_t i = 0; i < count; ++i)
      sc[i] = 0;
    return true;
  }
  // The largest |sc| first (the finest d): q6_K's quantizer gives the group
  // of the largest scale |sc| = 127 or 128, so this usually ends at once. A
  // candidate is accepted only when every product is exact.
  for (int c = 128; c >= 1; --c)
    for (float sign : {1.0f, -1.0f}) {
      float dd = sign * (m / float(c));
      uint16_t bits = floatToF16Bits(dd);
      if (f16BitsToFloat(bits) != dd || dd == 0.0f)
        continue;
      bool ok = true;
      for (int64_t i = 0; i < count && ok; ++i) {
        float r = std::nearbyint(s[i] / dd);
        ok = r >= -128.0f && r <= 127.0f && dd * r == s[i];
        if (ok)
          sc[i] = int8_t(r);
      }
      if (ok) {
        d = bits;
        return true;
      }
    }
  return false;
}

namespace {
/// Bit offsets of code t in a lo word (t < 8) and a hi word (t < 16).
int loShift(bool bytes, int64_t t) {
  return bytes ? 8 * int(t % 4) + 4 * int(t / 4) : 4 * int(t);
}
int hiShift(bool bytes, int64_t t) {
  return bytes ? 8 * int(t % 4) + 2 * int(t / 4) : 2 * int(t);
}
} // namespace

bool quench::quant::buildSixBitPanels(const uint8_t *codes, const float *scales,
                                      int64_t blocks, int64_t jn, int64_t n,
                                      int64_t nr, int64_t superGroups,
                                      SixBitPanels &out, bool bytes) {
  if (jn <= 0 || jn % 16 != 0 || nr <= 0 || n <= 0 || superGroups <= 0 ||
      blocks % superGroups != 0)
    return false;
  // Codes first: the cheap test that rejects every ordinary 8-bit layer.
  for (int64_t i = 0, e = blocks * jn * n; i < e; ++i)
    if (codes[i] < 96 || codes[i] > 159)
      return false;
  int64_t panels = (n + nr - 1) / nr, supers = blocks / superGroups;
  out.panels = panels;
  out.blocks = blocks;
  out.jn = jn;
  out.nr = nr;
  out.superGroups = superGroups;
  out.bytes = bytes;
  out.lo.assign(panels * blocks * (jn / 8) * nr, 0);
  out.hi.assign(panels * blocks * (jn / 16) * nr, 0);
  out.sc.assign(panels * blocks * nr, 0);
  out.d.assign(panels * supers * nr, 0);
  std::vector<float> s(superGroups);
  std::vector<int8_t> sc(superGroups);
  for (int64_t c = 0; c < n; ++c) {
    int64_t p = c / nr, pc = c % nr;
    for (int64_t sb = 0; sb < supers; ++sb) {
      for (int64_t g = 0; g < superGroups; ++g)
        s[g] = scales[(sb * superGroups + g) * n + c];
      uint16_t d;
      if (!factorTwoLevelScales(s.data(), superGroups, d, sc.data()))
        return false;
      out.d[(p * supers + sb) * nr + pc] = d;
      for (int64_t g = 0; g < superGroups; ++g)
        out.sc[(p * blocks + sb * superGroups + g) * nr + pc] = sc[g];
    }
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t j = 0; j < jn; ++j) {
        uint32_t q = uint32_t(codes[(b * jn + j) * n + c]) - 96;
        out.lo[((p * blocks + b) * (jn / 8) + j / 8) * nr + pc] |=
            (q & 15) << loShift(bytes, j % 8);
        out.hi[((p * blocks + b) * (jn / 16) + j / 16) * nr + pc] |=
            (q >> 4) << hiShift(bytes, j % 16);
      }
  }
  return true;
}

float quench::quant::sixBitPanelValue(const SixBitPanels &p, int64_t k,
                                      int64_t col) {
  int64_t b = k / p.jn, j = k % p.jn, pn = col / p.nr, pc = col % p.nr;
  uint32_t lo = p.lo[((pn * p.blocks + b) * (p.jn / 8) + j / 8) * p.nr + pc];
  uint32_t hi = p.hi[((pn * p.blocks + b) * (p.jn / 16) + j / 16) * p.nr + pc];
  int32_t q = int32_t(((lo >> loShift(p.bytes, j % 8)) & 15) |
                      (((hi >> hiShift(p.bytes, j % 16)) & 3) << 4));
  int64_t supers = p.blocks / p.superGroups;
  float d = f16BitsToFloat(p.d[(pn * supers + b / p.superGroups) * p.nr + pc]);
  float scale = d * float(p.sc[(pn * p.blocks + b) * p.nr + pc]);
  return float(q - 32) * scale;
}
