// The weight arena and the file mappings it is built on (lib/Support):
// stored data round-trips and is page aligned, the threshold decides what
// goes to the arena, dropping a mapping's pages never changes what it reads,
// and an arena that cannot create its file says where and why.
#include "quench/Support/MappedFile.h"
#include "quench/Support/WeightArena.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

using namespace llvm;

namespace {

std::vector<char> randomBytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<char> v(n);
  for (char &c : v)
    c = char(gen());
  return v;
}

bool sameBytes(ArrayRef<char> a, ArrayRef<char> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

TEST(WeightArena, RoundTripsAndAlignsEntries) {
  quench::WeightArena arena(quench::WeightArena::get().getDirectory());
  // Odd sizes: every entry must start on its own page regardless.
  std::vector<std::vector<char>> inputs;
  std::vector<std::shared_ptr<quench::MappedFile>> stored;
  for (size_t n : {size_t(1), size_t(4097), size_t(3) << 20, size_t(12345)}) {
    inputs.push_back(randomBytes(n, unsigned(n)));
    auto m = arena.store(inputs.back());
    ASSERT_TRUE(bool(m)) << toString(m.takeError());
    stored.push_back(std::move(*m));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    ArrayRef<char> d = stored[i]->data();
    EXPECT_TRUE(sameBytes(d, inputs[i])) << "entry " << i;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d.data()) % 4096, 0u) << "entry " << i;
  }
  EXPECT_EQ(arena.getBytesStored(), 1u + 4097u + (3u << 20) + 12345u);
}

TEST(WeightArena, Threshold) {
  quench::WeightArena arena(quench::WeightArena::get().getDirectory());
  EXPECT_EQ(arena.getThreshold(), quench::WeightArena::kDefaultThreshold);
  EXPECT_FALSE(arena.accepts(quench::WeightArena::kDefaultThreshold - 1));
  EXPECT_TRUE(arena.accepts(quench::WeightArena::kDefaultThreshold));
  arena.setThreshold(100);
  EXPECT_TRUE(arena.accepts(100));
  EXPECT_FALSE(arena.accepts(99));
  arena.setThreshold(SIZE_MAX); // what QUENCH_WEIGHT_ARENA=0 sets
  EXPECT_FALSE(arena.accepts(size_t(1) << 40));
}

TEST(WeightArena, ReleasedPagesReadBackTheSame) {
  quench::WeightArena arena(quench::WeightArena::get().getDirectory());
  std::vector<char> in = randomBytes(size_t(5) << 20, 7);
  auto m = arena.store(in);
  ASSERT_TRUE(bool(m)) << toString(m.takeError());
  ArrayRef<char> d = (*m)->data();
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(sameBytes(d, in)) << "round " << round;
    quench::releaseMappedPages(d);
    // Parts too: pages only partly inside the range are kept.
    quench::releaseMappedPages(d.slice(100, 10000));
  }
  EXPECT_TRUE(sameBytes(d, in));
  // Heap memory is left alone.
  quench::releaseMappedPages(in);
  EXPECT_TRUE(sameBytes(d, in));
}

TEST(WeightArena, EntriesOutliveTheirArena) {
  std::vector<char> in = randomBytes(size_t(1) << 20, 9);
  std::shared_ptr<quench::MappedFile> m;
  {
    quench::WeightArena arena(quench::WeightArena::get().getDirectory());
    auto stored = arena.store(in);
    ASSERT_TRUE(bool(stored)) << toString(stored.takeError());
    m = std::move(*stored);
  }
  quench::releaseMappedPages(m->data());
  EXPECT_TRUE(sameBytes(m->data(), in));
}

TEST(WeightArena, ReportsWhereItCannotCreateItsFile) {
  quench::WeightArena arena("/nonexistent/quench-arena-test");
  std::vector<char> in(16, 'x');
  auto m = arena.store(in);
  ASSERT_FALSE(bool(m));
  std::string msg = toString(m.takeError());
  EXPECT_NE(msg.find("cannot create the weight arena in "
                     "'/nonexistent/quench-arena-test'"),
            std::string::npos)
      << msg;
}

TEST(WeightArena, LeavesNoFileBehind) {
  // A directory of its own: the arena's file must not appear in it.
  SmallString<128> dir;
  ASSERT_FALSE(sys::fs::createUniqueDirectory("quench-arena", dir));
  {
    quench::WeightArena arena{std::string(dir)};
    auto m = arena.store(randomBytes(8192, 1));
    ASSERT_TRUE(bool(m)) << toString(m.takeError());
    std::error_code ec;
    sys::fs::directory_iterator it(dir, ec), end;
    EXPECT_TRUE(it == end) << "found " << it->path();
  }
  EXPECT_FALSE(sys::fs::remove(dir));
}

TEST(MappedFile, MapsARangeOfAFile) {
  SmallString<128> path;
  int fd;
  ASSERT_FALSE(sys::fs::createTemporaryFile("quench-map", "bin", fd, path));
  std::vector<char> in = randomBytes(20000, 3);
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    os.write(in.data(), in.size());
  }
  auto m = quench::MappedFile::open(path, 5000, 10000);
  ASSERT_TRUE(bool(m)) << toString(m.takeError());
  EXPECT_TRUE(sameBytes((*m)->data(), ArrayRef<char>(in).slice(5000, 10000)));
  quench::releaseMappedPages((*m)->data());
  EXPECT_TRUE(sameBytes((*m)->data(), ArrayRef<char>(in).slice(5000, 10000)));
  auto past = quench::MappedFile::open(path, 15000, 10000);
  ASSERT_FALSE(bool(past));
  EXPECT_NE(toString(past.takeError()).find("exceeds the 20000 bytes"),
            std::string::npos);
  sys::fs::remove(path);
}

} // namespace
