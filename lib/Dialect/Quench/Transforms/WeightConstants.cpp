//===- WeightConstants.cpp - reading float weight constants ---------------===//
//
// WeightConstants.h: the float values of weight constants, shared by the
// quantization and scale-migration passes.
//
//===----------------------------------------------------------------------===//

#include "quench/Dialect/Quench/Transforms/WeightConstants.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Quant/RTN.h"

#include <algorithm>
#include <cstring>

using namespace mlir;
using namespace quench;
namespace qq = quench::quant;

bool quench::hasReadableFloatWeights(ConstantOp cst) {
  auto type = cast<RankedTensorType>(cst.getType());
  Type et = type.getElementType();
  if (getUniformValue(cst.getValue()))
    return true;
  std::optional<ArrayRef<char>> raw = getRawConstantData(cst.getValue());
  if (!raw)
    return false;
  size_t count = static_cast<size_t>(type.getNumElements());
  return (et.isF32() && raw->size() == count * 4) ||
         ((et.isF16() || et.isBF16()) && raw->size() == count * 2);
}

/// Converts `count` stored f32/f16/bf16 values at `p` to floats.
static void toFloats(Type et, const char *p, float *out, int64_t count) {
  if (et.isF32()) {
    std::memcpy(out, p, count * 4);
  } else if (et.isF16()) {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = qq::f16BitsToFloat(h);
    }
  } else { // bf16
    for (int64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      uint32_t u = static_cast<uint32_t>(h) << 16;
      std::memcpy(&out[i], &u, 4);
    }
  }
}

std::optional<std::vector<float>>
quench::readFloatWeights(ConstantOp cst, bool transposed) {
  if (!hasReadableFloatWeights(cst))
    return std::nullopt;
  auto type = cast<RankedTensorType>(cst.getType());
  Type et = type.getElementType();
  int64_t count = type.getNumElements();
  std::vector<float> out(count);
  if (std::optional<double> uniform = getUniformValue(cst.getValue())) {
    std::fill(out.begin(), out.end(), static_cast<float>(*uniform));
    return out;
  }
  const char *p = getRawConstantData(cst.getValue())->data();
  if (!transposed) {
    toFloats(et, p, out.data(), count);
    return out;
  }
  // Stored [rows = K, cols = N]: a block of kBlock stored rows is converted
  // (sequential reads), then scattered into the columns of `out`.
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  int64_t bytes = getStorageBytesPerElement(et);
  constexpr int64_t kBlock = 16;
  std::vector<float> block(kBlock * cols);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    int64_t nr = std::min(kBlock, rows - r0);
    toFloats(et, p + r0 * cols * bytes, block.data(), nr * cols);
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = 0; r < nr; ++r)
        out[c * rows + r0 + r] = block[r * cols + c];
  }
  return out;
}

