//===- Parallel.h - row-parallel loops of the quantization numerics -*- C++ -*-===//
//
// Private to lib/Quant: the one thread-pool loop that GPTQ, HQQ, AWQ and
// the bits budget share, and the row-parallel sum of squares of the
// budget's weight errors. Callers make every element's result independent
// of the chunk (and thread) it is computed in, so results do not depend on
// the thread count.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_QUANT_PARALLEL_H
#define QUENCH_LIB_QUANT_PARALLEL_H

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace quench::quant::detail {

/// The thread count of `threads` (0: the hardware concurrency).
inline unsigned resolveThreads(unsigned threads) {
  if (threads)
    return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

/// Runs fn(begin, end) on the chunks [c * grain, (c + 1) * grain) of
/// [0, count), handed out dynamically to `threads` threads (0: the hardware
/// concurrency; the caller is one of them).
template <typename F>
void parallelFor(unsigned threads, int64_t count, int64_t grain, F &&fn) {
  if (count <= 0)
    return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (count + grain - 1) / grain;
  const unsigned t = static_cast<unsigned>(
      std::min<int64_t>(resolveThreads(threads), chunks));
  std::atomic<int64_t> next{0};
  auto worker = [&] {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1))
      fn(c * grain, std::min(count, (c + 1) * grain));
  };
  std::vector<std::thread> pool;
  pool.reserve(t > 0 ? t - 1 : 0);
  for (unsigned i = 1; i < t; ++i)
    pool.emplace_back(worker);
  worker();
  for (std::thread &th : pool)
    th.join();
}

/// sum_r |d_r|^2 over the rows r of a [rows, k] matrix whose rows
/// `fill(r, d)` writes, rows over `threads` threads: the weight errors of
/// the bits budget without calibration (its output errors go through a
/// GramFactor). The same for every thread count.
template <typename Fill>
double squaredSum(int64_t rows, int64_t k, unsigned threads, Fill fill) {
  // One partial sum per row, added in row order at the end: the result
  // does not depend on the thread count.
  std::vector<double> rowError(rows, 0.0);
  detail::parallelFor(threads, rows, /*grain=*/8, [&](int64_t r0, int64_t r1) {
    std::vector<double> d(k);
    for (int64_t r = r0; r < r1; ++r) {
      fill(r, d.data());
      double total = 0.0;
      for (int64_t c = 0; c < k; ++c)
        total += d[c] * d[c];
      rowError[r] = total;
    }
  });
  double total = 0.0;
  for (double e : rowError)
    total += e;
  return total;
}

} // namespace quench::quant::detail

#endif // QUENCH_LIB_QUANT_PARALLEL_H
