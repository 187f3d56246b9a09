//===- MaskEvaluator.h - a tiny interpreter for attention masks -*- C++ -*-===//
//
// Evaluates the values of a function (masks, shape computations) on small
// sizes, for quench-derive-kv-cache (DeriveKVCache.cpp): every dynamic
// dimension of an activation is `seq`, of a past input `past`; shapes are
// computed through the ops between the caches and attention, so a shape
// read after a concatenation with the past counts past + seq. Private to
// the library.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_LIB_DIALECT_QUENCH_TRANSFORMS_MASKEVALUATOR_H
#define QUENCH_LIB_DIALECT_QUENCH_TRANSFORMS_MASKEVALUATOR_H

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Support/LLVM.h"

#include "llvm/ADT/DenseSet.h"

#include <optional>
#include <vector>

namespace quench::derive {

using namespace mlir;

/// A dense tensor of doubles (integers and booleans are exact).
struct Tensor {
  SmallVector<int64_t> shape;
  std::vector<double> data;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

inline SmallVector<int64_t> stridesOf(ArrayRef<int64_t> shape) {
  SmallVector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/// Evaluates values of the function with every dynamic dimension of an
/// activation equal to `seq` and every dynamic dimension of a past input
/// (its sequence) equal to `past`.
class Evaluator {
public:
  /// The inputs the evaluation knows: the past inputs (shape only, the
  /// sequence `past`), an attention mask input over `past + seq` keys
  /// (all ones, as generation sessions feed it) and a position ids input
  /// (`past .. past+seq-1`). Either may be null.
  struct Inputs {
    const DenseSet<Value> *pastArgs = nullptr;
    Value attentionMask, positionIds;
  };

  Evaluator(int64_t seq, int64_t past, Inputs inputs)
      : seq(seq), past(past), inputs(inputs) {}

  /// The value, or failure with `failedAt` set to the op it cannot
  /// evaluate.
  FailureOr<Tensor> eval(Value v) {
    auto it = memo.find(v);
    if (it != memo.end())
      return it->second;
    FailureOr<Tensor> t = compute(v);
    if (succeeded(t))
      memo[v] = *t;
    return t;
  }

  Operation *failedAt = nullptr;
  Value failedValue;

private:
  /// The run-time shape of `v`: computed through the ops between the
  /// caches and attention (whose key length is P + S), else its type with
  /// every dynamic dimension S (P for a past input).
  FailureOr<SmallVector<int64_t>> dimsOf(Value v) {
    auto it = shapes.find(v);
    if (it != shapes.end())
      return it->second;
    FailureOr<SmallVector<int64_t>> dims = computeDims(v);
    if (succeeded(dims))
      shapes[v] = *dims;
    return dims;
  }

  FailureOr<SmallVector<int64_t>> computeDims(Value v);

  static std::optional<SmallVector<int64_t>>
  broadcast(ArrayRef<ArrayRef<int64_t>> shapes) {
    size_t rank = 0;
    for (ArrayRef<int64_t> s : shapes)
      rank = std::max(rank, s.size());
    SmallVector<int64_t> out(rank, 1);
    for (ArrayRef<int64_t> s : shapes)
      for (size_t i = 0; i < s.size(); ++i) {
        int64_t &o = out[rank - s.size() + i];
        if (s[i] == o || s[i] == 1)
          continue;
        if (o != 1)
          return std::nullopt;
        o = s[i];
      }
    return out;
  }

  /// Element `idx` (of the broadcast shape `out`) of `t`.
  static double at(const Tensor &t, ArrayRef<int64_t> out,
                   ArrayRef<int64_t> idx) {
    int64_t flat = 0, stride = 1;
    for (int64_t i = static_cast<int64_t>(t.shape.size()) - 1; i >= 0; --i) {
      int64_t o = idx[out.size() - t.shape.size() + i];
      flat += (t.shape[i] == 1 ? 0 : o) * stride;
      stride *= t.shape[i];
    }
    return t.data[flat];
  }

  template <typename F>
  FailureOr<Tensor> elementwise(ArrayRef<Tensor> ins, F f) {
    SmallVector<ArrayRef<int64_t>> shapes;
    for (const Tensor &t : ins)
      shapes.push_back(t.shape);
    auto shape = broadcast(shapes);
    if (!shape)
      return failure();
    Tensor r;
    r.shape = *shape;
    r.data.resize(r.numel());
    SmallVector<int64_t> idx(shape->size(), 0);
    SmallVector<double> args(ins.size());
    for (int64_t n = 0; n < r.numel(); ++n) {
      int64_t rem = n;
      for (int64_t i = static_cast<int64_t>(shape->size()) - 1; i >= 0; --i) {
        idx[i] = rem % (*shape)[i];
        rem /= (*shape)[i];
      }
      for (size_t k = 0; k < ins.size(); ++k)
        args[k] = at(ins[k], *shape, idx);
      r.data[n] = f(args);
    }
    return r;
  }

  FailureOr<Tensor> constant(quench::ConstantOp op);

  FailureOr<Tensor> compute(Value v);

  int64_t seq, past;
  Inputs inputs;
  DenseMap<Value, Tensor> memo;
  DenseMap<Value, SmallVector<int64_t>> shapes;
};

} // namespace quench::derive

#endif // QUENCH_LIB_DIALECT_QUENCH_TRANSFORMS_MASKEVALUATOR_H
