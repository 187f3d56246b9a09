//===- QuenchConstants.cpp - constant data helpers ------------------------===//
//
// See QuenchConstants.h. Weights live in `dense_resource` blobs so that a
// large model's IR prints without inlined data; these helpers give passes a
// single way to read and write either representation.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Dialect/Quench/IR/QuenchDialect.h"
#include "quench/Support/LLVM.h"
#include "quench/Support/MappedFile.h"
#include "quench/Support/WeightArena.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectResourceBlobManager.h"

#include <atomic>

using namespace quench;

int64_t quench::getStorageBytesPerElement(Type elementType) {
  if (isa<FloatType>(elementType) || isa<IntegerType>(elementType) ||
      isa<IndexType>(elementType)) {
    unsigned bits = isa<IndexType>(elementType)
                        ? 64
                        : elementType.getIntOrFloatBitWidth();
    if (bits % 8 != 0)
      return 0;
    return bits / 8;
  }
  return 0;
}

std::optional<ArrayRef<char>> quench::getRawConstantData(ElementsAttr attr) {
  auto type = cast<ShapedType>(attr.getType());
  if (getStorageBytesPerElement(type.getElementType()) == 0)
    return std::nullopt;
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    if (dense.isSplat() && dense.getNumElements() != 1)
      return std::nullopt;
    return dense.getRawData();
  }
  if (auto res = dyn_cast<DenseResourceElementsAttr>(attr)) {
    const AsmResourceBlob *blob = res.getRawHandle().getBlob();
    // A blob whose size disagrees with its type (hand-written IR) is not
    // usable data.
    if (!blob || (int64_t)blob->getData().size() !=
                     type.getNumElements() *
                         getStorageBytesPerElement(type.getElementType()))
      return std::nullopt;
    return blob->getData();
  }
  return std::nullopt;
}

ElementsAttr quench::createConstantAttr(RankedTensorType type,
                                        ArrayRef<char> data,
                                        StringRef nameHint) {
  int64_t bytes = getStorageBytesPerElement(type.getElementType());
  assert(bytes > 0 && "element type has no byte storage");
  assert((int64_t)data.size() == bytes * type.getNumElements() &&
         "data size does not match the type");
  if (data.size() <= kInlineConstantBytes) {
    bool splat = false;
    if (DenseElementsAttr::isValidRawBuffer(type, data, splat))
      return DenseElementsAttr::getFromRawBuffer(type, data);
  }
  size_t align = std::max<size_t>(bytes, alignof(uint64_t));
  WeightArena &arena = WeightArena::get();
  if (arena.accepts(data.size())) {
    llvm::Expected<std::shared_ptr<MappedFile>> stored = arena.store(data);
    if (stored) {
      // Page aligned: `align` holds.
      ArrayRef<char> copy = (*stored)->data();
      return DenseResourceElementsAttr::get(
          type, nameHint,
          AsmResourceBlob(
              copy, align,
              [owner = std::move(*stored)](void *, size_t, size_t) mutable {
                owner.reset();
              },
              /*dataIsMutable=*/false));
    }
    // The callers are rewrites that cannot fail halfway: keep the blob on
    // the heap (correct, only no longer memory bounded) and say why once.
    static std::atomic<bool> warned{false};
    std::string why = llvm::toString(stored.takeError());
    if (!warned.exchange(true))
      emitWarning(UnknownLoc::get(type.getContext()))
          << why << "; derived weights stay in memory (set TMPDIR to a "
                    "directory with free space)";
  }
  AsmResourceBlob blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
      data, align);
  return DenseResourceElementsAttr::get(type, nameHint, std::move(blob));
}

ElementsAttr quench::createBorrowedConstantAttr(
    RankedTensorType type, ArrayRef<char> data,
    std::shared_ptr<const void> owner, StringRef nameHint) {
  size_t bytes = (size_t)getStorageBytesPerElement(type.getElementType());
  assert(bytes > 0 && "element type has no byte storage");
  assert(data.size() == bytes * (size_t)type.getNumElements() &&
         "data size does not match the type");
  auto aligned = [&](size_t a) {
    return reinterpret_cast<uintptr_t>(data.data()) % a == 0;
  };
  if (data.size() <= kInlineConstantBytes || !aligned(bytes))
    return createConstantAttr(type, data, nameHint);
  // Claim what createConstantAttr's blobs claim when the address has it.
  size_t align = std::max<size_t>(bytes, alignof(uint64_t));
  if (!aligned(align))
    align = bytes;
  return DenseResourceElementsAttr::get(
      type, nameHint,
      AsmResourceBlob(
          data, align,
          [owner = std::move(owner)](void *, size_t, size_t) mutable {
            owner.reset();
          },
          /*dataIsMutable=*/false));
}

void quench::releaseConstantPages(ElementsAttr attr) {
  auto res = dyn_cast_or_null<DenseResourceElementsAttr>(attr);
  if (!res)
    return;
  if (const AsmResourceBlob *blob = res.getRawHandle().getBlob())
    releaseMappedPages(blob->getData());
}

std::optional<double> quench::getUniformValue(Attribute attr) {
  auto dense = dyn_cast_or_null<DenseElementsAttr>(attr);
  if (!dense || (!dense.isSplat() && dense.getNumElements() != 1))
    return std::nullopt;
  Type et = dense.getElementType();
  if (isa<FloatType>(et))
    return (*dense.value_begin<APFloat>()).convertToDouble();
  if (auto it = dyn_cast<IntegerType>(et)) {
    APInt v = *dense.value_begin<APInt>();
    return it.isUnsigned() ? (double)v.getZExtValue()
                           : (double)v.getSExtValue();
  }
  return std::nullopt;
}

/// Transposes a rows x cols matrix of `Bytes`-byte items from `src` to `dst`
/// in cache blocks (fixed-size copies: loads and stores, whatever the
/// alignment).
template <int64_t Bytes>
static void transposeItems(const char *src, char *dst, int64_t rows,
                           int64_t cols) {
  constexpr int64_t kBlock = 64;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      int64_t r1 = std::min(rows, r0 + kBlock), c1 = std::min(cols, c0 + kBlock);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t r = r0; r < r1; ++r)
          std::memcpy(dst + (c * rows + r) * Bytes,
                      src + (r * cols + c) * Bytes, Bytes);
    }
}

std::vector<char> quench::transposeBytes(ArrayRef<char> data, int64_t rows,
                                        int64_t cols, int64_t itemBytes) {
  std::vector<char> out(data.size());
  const char *src = data.data();
  switch (itemBytes) {
  case 1: transposeItems<1>(src, out.data(), rows, cols); return out;
  case 2: transposeItems<2>(src, out.data(), rows, cols); return out;
  case 4: transposeItems<4>(src, out.data(), rows, cols); return out;
  case 8: transposeItems<8>(src, out.data(), rows, cols); return out;
  default: break;
  }
  constexpr int64_t kBlock = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock)
    for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
      for (int64_t r = r0; r < std::min(rows, r0 + kBlock); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c)
          std::memcpy(&out[(c * rows + r) * itemBytes],
                      src + (r * cols + c) * itemBytes, itemBytes);
  return out;
}

ElementsAttr quench::transpose2DConstant(ElementsAttr attr,
                                         StringRef nameHint) {
  auto type = cast<RankedTensorType>(attr.getType());
  assert(type.getRank() == 2 && type.hasStaticShape());
  auto outType = RankedTensorType::get({type.getDimSize(1), type.getDimSize(0)},
                                       type.getElementType());
  if (auto dense = dyn_cast<DenseElementsAttr>(attr); dense && dense.isSplat())
    return dense.reshape(outType);
  // A transpose of a transpose is the original.
  auto *dialect = attr.getContext()->getLoadedDialect<QuenchDialect>();
  if (dialect) {
    std::lock_guard<std::mutex> lock(dialect->transposeSourcesMutex);
    auto it = dialect->transposeSources.find(attr);
    if (it != dialect->transposeSources.end() &&
        it->second.getType() == outType)
      return it->second;
  }
  std::optional<ArrayRef<char>> raw = getRawConstantData(attr);
  if (!raw)
    return nullptr;
  std::vector<char> out =
      transposeBytes(*raw, type.getDimSize(0), type.getDimSize(1),
                     getStorageBytesPerElement(type.getElementType()));
  // Read once: the source's pages need not stay resident.
  releaseConstantPages(attr);
  ElementsAttr result = createConstantAttr(outType, out, nameHint);
  if (dialect && result) {
    std::lock_guard<std::mutex> lock(dialect->transposeSourcesMutex);
    dialect->transposeSources[result] = attr;
  }
  return result;
}
