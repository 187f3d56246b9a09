// Where quench::createConstantAttr and createBorrowedConstantAttr put a
// constant's bytes (QuenchConstants.h): small ones in `dense` literals,
// large derived ones in the weight arena, borrowed ones where they already
// are (no copy) unless misaligned, and releaseConstantPages never changes
// what a constant reads.
#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/InitAllDialects.h"
#include "quench/Support/WeightArena.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace mlir;

namespace {

std::vector<char> pattern(size_t n) {
  std::vector<char> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = char(i * 131 + (i >> 12));
  return v;
}

ArrayRef<char> blobData(ElementsAttr attr) {
  auto res = dyn_cast<DenseResourceElementsAttr>(attr);
  if (!res || !res.getRawHandle().getBlob())
    return {};
  return res.getRawHandle().getBlob()->getData();
}

bool sameBytes(ArrayRef<char> a, ArrayRef<char> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

struct Constants : ::testing::Test {
  Constants() {
    DialectRegistry registry;
    quench::registerAllDialects(registry);
    ctx.appendDialectRegistry(registry);
    ctx.loadAllAvailableDialects();
  }
  RankedTensorType f32(int64_t n) {
    return RankedTensorType::get({n}, Float32Type::get(&ctx));
  }
  MLIRContext ctx;
};

TEST_F(Constants, LargeDerivedConstantsGoToTheArena) {
  quench::WeightArena &arena = quench::WeightArena::get();
  size_t threshold = arena.getThreshold();
  arena.setThreshold(quench::WeightArena::kDefaultThreshold);
  std::vector<char> big = pattern(2 << 20), small = pattern(4096);
  uint64_t before = arena.getBytesStored();
  ElementsAttr a = quench::createConstantAttr(f32(big.size() / 4), big, "big");
  EXPECT_EQ(arena.getBytesStored() - before, big.size());
  ArrayRef<char> d = blobData(a);
  EXPECT_TRUE(sameBytes(d, big));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(d.data()) % 64, 0u);
  // Released pages read back the same.
  quench::releaseConstantPages(a);
  EXPECT_TRUE(sameBytes(*quench::getRawConstantData(a), big));

  before = arena.getBytesStored();
  ElementsAttr b =
      quench::createConstantAttr(f32(small.size() / 4), small, "small");
  EXPECT_EQ(arena.getBytesStored(), before) << "below the threshold: heap";
  EXPECT_TRUE(sameBytes(blobData(b), small));
  quench::releaseConstantPages(b); // heap: a no-op
  EXPECT_TRUE(sameBytes(blobData(b), small));

  // Tiny ones stay literals.
  std::vector<char> tiny = pattern(16);
  EXPECT_TRUE(isa<DenseElementsAttr>(
      quench::createConstantAttr(f32(4), tiny, "tiny")));
  arena.setThreshold(threshold);
}

TEST_F(Constants, BorrowedDataIsNotCopied) {
  auto owner = std::make_shared<std::string>(std::string(1 << 16, '\0'));
  std::vector<char> ref = pattern(owner->size());
  std::memcpy(owner->data(), ref.data(), ref.size());
  std::weak_ptr<std::string> watch = owner;
  ArrayRef<char> data(owner->data(), owner->size());
  ElementsAttr a;
  {
    a = quench::createBorrowedConstantAttr(f32(data.size() / 4), data,
                                           std::move(owner), "borrowed");
  }
  ArrayRef<char> d = blobData(a);
  EXPECT_EQ(d.data(), data.data());
  EXPECT_EQ(d.size(), data.size());
  EXPECT_FALSE(watch.expired()) << "the blob keeps its owner";

  // Misaligned for f32: copied, and the owner is not kept.
  auto odd = std::make_shared<std::string>(ref.size() + 1, '\0');
  std::memcpy(odd->data() + 1, ref.data(), ref.size());
  std::weak_ptr<std::string> oddWatch = odd;
  ArrayRef<char> oddData(odd->data() + 1, ref.size());
  ElementsAttr c = quench::createBorrowedConstantAttr(
      f32(ref.size() / 4), oddData, std::move(odd), "odd");
  EXPECT_NE(blobData(c).data(), oddData.data());
  EXPECT_TRUE(sameBytes(blobData(c), ref));
  EXPECT_TRUE(oddWatch.expired());
}

} // namespace
