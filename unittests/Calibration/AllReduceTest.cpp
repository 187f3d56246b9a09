//===- AllReduceTest.cpp - statistics reduced across processes ------------===//
//
// allReduceStats and Communicator::agree without MPI: "processes" are
// threads sharing a ThreadCommunicator (below), each observing its share of
// the rows, as quench-compile-mpi's ranks observe their samples. The
// reduced statistics must be those of one TensorStats that observed every
// row: exactly for counts, extremes and histograms, to rounding for sums.
//
//===----------------------------------------------------------------------===//

#include "quench/Calibration/Statistics.h"
#include "quench/Support/Communicator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

using namespace quench;
using namespace quench::calib;

namespace {

/// What the threads of one "job" share.
struct Shared {
  explicit Shared(int n) : size(n), slots(n) {}
  int size;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<std::string> slots;
  struct Message {
    int source, dest, tag;
    std::string bytes;
  };
  std::deque<Message> mailbox;

  void barrier() {
    std::unique_lock<std::mutex> lock(mutex);
    uint64_t gen = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
      return;
    }
    cv.wait(lock, [&] { return generation != gen; });
  }
};

/// A Communicator over threads: collectives exchange through Shared's
/// slots between barriers; every rank reduces the slots in rank order.
class ThreadCommunicator final : public Communicator {
public:
  ThreadCommunicator(Shared &shared, int rank) : shared(shared), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared.size; }

protected:
  void allReduceImpl(void *data, size_t n, Type type, Op op) override {
    size_t bytes = n * sizeOf(type);
    shared.slots[rank_].assign(static_cast<const char *>(data), bytes);
    shared.barrier();
    for (size_t i = 0; i < n; ++i) {
      switch (type) {
      case Type::F32:
        reduce<float>(data, i, op);
        break;
      case Type::F64:
        reduce<double>(data, i, op);
        break;
      case Type::U64:
        reduce<uint64_t>(data, i, op);
        break;
      case Type::I64:
        reduce<int64_t>(data, i, op);
        break;
      }
    }
    shared.barrier();
  }
  void broadcastImpl(std::string &bytes, int root) override {
    if (rank_ == root)
      shared.slots[root] = bytes;
    shared.barrier();
    bytes = shared.slots[root];
    shared.barrier();
  }
  void sendImpl(int dest, int tag, std::string bytes) override {
    std::lock_guard<std::mutex> lock(shared.mutex);
    shared.mailbox.push_back({rank_, dest, tag, std::move(bytes)});
    shared.cv.notify_all();
  }
  void flushSendsImpl() override {}
  bool receiveImpl(int tag, int &source, std::string &bytes,
                   bool wait) override {
    std::unique_lock<std::mutex> lock(shared.mutex);
    for (;;) {
      for (auto it = shared.mailbox.begin(); it != shared.mailbox.end(); ++it)
        if (it->dest == rank_ && it->tag == tag) {
          source = it->source;
          bytes = std::move(it->bytes);
          shared.mailbox.erase(it);
          return true;
        }
      if (!wait)
        return false;
      shared.cv.wait(lock);
    }
  }

private:
  template <typename T> void reduce(void *data, size_t i, Op op) {
    T acc;
    std::memcpy(&acc, shared.slots[0].data() + i * sizeof(T), sizeof(T));
    for (int r = 1; r < shared.size; ++r) {
      T v;
      std::memcpy(&v, shared.slots[r].data() + i * sizeof(T), sizeof(T));
      acc = op == Op::Sum   ? acc + v
            : op == Op::Min ? std::min(acc, v)
                            : std::max(acc, v);
    }
    static_cast<T *>(data)[i] = acc;
  }
  Shared &shared;
  int rank_;
};

/// Runs fn(comm) on `n` threads, one per rank.
void runRanks(int n, const std::function<void(Communicator &)> &fn) {
  Shared shared(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      ThreadCommunicator comm(shared, r);
      fn(comm);
    });
  for (std::thread &t : threads)
    t.join();
}

double relDiff(const std::vector<double> &a, const std::vector<double> &b) {
  double scale = 1e-300, diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::fabs(a[i]));
    diff = std::max(diff, std::fabs(a[i] - b[i]));
  }
  return diff / scale;
}

} // namespace

TEST(AllReduceStats, RanksTogetherEqualOneProcess) {
  // 7 "samples" of 5 rows x 9 channels, one with NaN and inf, one all
  // zeros, one with a large outlier (the histogram limit grows on one rank
  // only); sample i observed by rank i mod size, as calibrate splits them.
  const int64_t channels = 9;
  const size_t rowsPerSample = 5, numSamples = 7;
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 1.5f);
  std::vector<std::vector<float>> samples(numSamples);
  for (size_t s = 0; s < numSamples; ++s) {
    samples[s].resize(rowsPerSample * channels);
    for (float &v : samples[s])
      v = s == 3 ? 0.0f : dist(rng);
  }
  samples[1][4] = NAN;
  samples[1][7] = INFINITY;
  samples[5][10] = -300.0f;

  TensorStats whole("x", channels, true, true);
  for (const auto &s : samples)
    whole.observe(s.data(), s.size(), 1);
  whole.finalize();

  for (int numRanks : {2, 3}) {
    std::vector<TensorStats> results(numRanks);
    runRanks(numRanks, [&](Communicator &comm) {
      TensorStats t("x", channels, true, true);
      for (size_t s = comm.rank(); s < numSamples; s += comm.size())
        t.observe(samples[s].data(), samples[s].size(), 1);
      allReduceStats(t, comm);
      t.finalize();
      results[comm.rank()] = std::move(t);
    });
    for (int r = 0; r < numRanks; ++r) {
      SCOPED_TRACE("ranks " + std::to_string(numRanks) + ", rank " +
                   std::to_string(r));
      const TensorStats &t = results[r];
      EXPECT_EQ(t.rows, whole.rows);
      EXPECT_EQ(t.count, whole.count);
      EXPECT_EQ(t.nonFinite, whole.nonFinite);
      EXPECT_EQ(t.min, whole.min);
      EXPECT_EQ(t.max, whole.max);
      EXPECT_EQ(t.hist.limit(), whole.hist.limit());
      EXPECT_EQ(t.hist.counts(), whole.hist.counts());
      EXPECT_EQ(t.hist.total(), whole.hist.total());
      EXPECT_EQ(t.channelAbsMax, whole.channelAbsMax);
      EXPECT_LT(relDiff(t.channelAbsSum, whole.channelAbsSum), 1e-14);
      EXPECT_LT(relDiff(t.gram, whole.gram), 1e-14);
      // The mirrored lower triangle too.
      EXPECT_EQ(t.gram[1 * channels + 0], t.gram[0 * channels + 1]);
    }
  }
}

TEST(AllReduceStats, ARankWithoutSamplesContributesNothing) {
  // More ranks than samples: rank 1 observes nothing (its min/max are
  // +inf/-inf, its histogram empty) and the result is rank 0's data.
  std::vector<float> x = {0.5f, -2.0f, 3.0f, 0.0f};
  TensorStats whole("x", 2, true, true);
  whole.observe(x.data(), x.size(), 1);
  whole.finalize();
  std::vector<TensorStats> results(2);
  runRanks(2, [&](Communicator &comm) {
    TensorStats t("x", 2, true, true);
    if (comm.rank() == 0)
      t.observe(x.data(), x.size(), 1);
    allReduceStats(t, comm);
    t.finalize();
    results[comm.rank()] = std::move(t);
  });
  for (const TensorStats &t : results) {
    EXPECT_EQ(t.count, 4u);
    EXPECT_EQ(t.min, -2.0f);
    EXPECT_EQ(t.max, 3.0f);
    EXPECT_EQ(t.hist.counts(), whole.hist.counts());
    EXPECT_EQ(t.gram, whole.gram);
  }
}

TEST(Communicator, AgreeGivesEveryRankTheLowestFailure) {
  std::vector<std::string> got(3);
  runRanks(3, [&](Communicator &comm) {
    std::string mine = comm.rank() >= 1
                           ? "rank " + std::to_string(comm.rank()) + " failed"
                           : "";
    got[comm.rank()] = comm.agree(mine);
  });
  for (const std::string &g : got)
    EXPECT_EQ(g, "rank 1 failed");
  runRanks(3, [&](Communicator &comm) { got[comm.rank()] = comm.agree(""); });
  for (const std::string &g : got)
    EXPECT_EQ(g, "");
}

TEST(Communicator, SingleProcessLeavesDataAlone) {
  SingleProcessCommunicator one;
  double d[] = {1.5, -2.0};
  one.allReduceSum(d, 2);
  EXPECT_EQ(d[0], 1.5);
  EXPECT_EQ(d[1], -2.0);
  EXPECT_EQ(one.agree("bad"), "bad");
  EXPECT_EQ(one.agree(""), "");
  EXPECT_EQ(one.bytesSent(), 0u);
}
