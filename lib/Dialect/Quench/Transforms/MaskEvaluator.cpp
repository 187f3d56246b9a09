//===- MaskEvaluator.cpp - a tiny interpreter for attention masks ---------===//
//
// The out-of-line parts of MaskEvaluator.h: shapes, constants and the ops
// it evaluates.
//
//===----------------------------------------------------------------------===//

#include "MaskEvaluator.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <cstring>

using namespace quench;
using namespace quench::derive;
using namespace mlir;

FailureOr<SmallVector<int64_t>> Evaluator::computeDims(Value v) {
  auto type = cast<RankedTensorType>(v.getType());
  SmallVector<int64_t> fallback;
  // A dynamic batch is 1 (generation runs batch 1): the first dim of an
  // input of rank >= 2 and of an activation of rank >= 3 ([b, s, ..]).
  bool input = isa<BlockArgument>(v);
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    fallback.push_back(
        d != ShapedType::kDynamic ? d
        : i == 0 && type.getRank() >= (input ? 2 : 3)       ? 1
        : inputs.pastArgs && inputs.pastArgs->contains(v) ? past
        : v == inputs.attentionMask                        ? past + seq
                                                           : seq);
  Operation *op = v.getDefiningOp();
  if (!op || type.hasStaticShape())
    return fallback;
  auto operandDims = [&](unsigned i) { return dimsOf(op->getOperand(i)); };
  if (isa<ConcatOp>(op)) {
    int64_t axis = cast<ConcatOp>(op).getAxis();
    if (axis < 0)
      axis += type.getRank();
    SmallVector<int64_t> out;
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      FailureOr<SmallVector<int64_t>> d = operandDims(i);
      if (failed(d))
        return failure();
      if (i == 0)
        out = *d;
      else
        out[axis] += (*d)[axis];
    }
    return out;
  }
  if (auto t = dyn_cast<TransposeOp>(op)) {
    FailureOr<SmallVector<int64_t>> d = operandDims(0);
    if (failed(d))
      return failure();
    SmallVector<int64_t> out;
    for (int64_t p : t.getPermutation())
      out.push_back((*d)[p]);
    return out;
  }
  if (isa<ReshapeOp, ExpandOp>(op) && op->getNumOperands() == 2) {
    FailureOr<Tensor> s = eval(op->getOperand(1));
    if (failed(s))
      return failure();
    SmallVector<int64_t> out;
    for (double x : s->data)
      out.push_back(static_cast<int64_t>(x));
    if (isa<ExpandOp>(op)) {
      FailureOr<SmallVector<int64_t>> d = operandDims(0);
      if (failed(d))
        return failure();
      auto b = broadcast({ArrayRef<int64_t>(out), ArrayRef<int64_t>(*d)});
      if (!b)
        return failure();
      out = *b;
    }
    return out;
  }
  if (auto u = dyn_cast<UnsqueezeOp>(op)) {
    FailureOr<SmallVector<int64_t>> d = operandDims(0);
    if (failed(d))
      return failure();
    SmallVector<int64_t> out;
    size_t k = 0;
    for (int64_t i = 0; i < type.getRank(); ++i)
      out.push_back(llvm::is_contained(u.getAxes(), i) ? 1 : (*d)[k++]);
    return out;
  }
  if (auto m = dyn_cast<MatMulOp>(op)) {
    FailureOr<SmallVector<int64_t>> l = operandDims(0), r = operandDims(1);
    if (failed(l) || failed(r) || l->size() < 2 || r->size() < 2)
      return failure();
    SmallVector<int64_t> lb(l->begin(), l->end() - 2),
        rb(r->begin(), r->end() - 2);
    auto out = broadcast({ArrayRef<int64_t>(lb), ArrayRef<int64_t>(rb)});
    if (!out)
      return failure();
    out->push_back((*l)[l->size() - 2]);
    out->push_back(r->back());
    return *out;
  }
  if (isa<quench::AddOp, quench::SubOp, quench::MulOp, quench::DivOp,
          quench::MinOp, quench::MaxOp, CmpOp, LogicalOp, WhereOp>(op)) {
    SmallVector<SmallVector<int64_t>> all;
    for (unsigned i = 0; i < op->getNumOperands(); ++i) {
      FailureOr<SmallVector<int64_t>> d = operandDims(i);
      if (failed(d))
        return failure();
      all.push_back(*d);
    }
    SmallVector<ArrayRef<int64_t>> refs(all.begin(), all.end());
    auto out = broadcast(refs);
    if (!out)
      return failure();
    return *out;
  }
  if (op->getNumOperands() >= 1 &&
      (op->hasTrait<OpTrait::SameOperandsAndResultType>() ||
       op->hasTrait<OpTrait::SameOperandsAndResultShape>()))
    return operandDims(0);
  if (isa<RangeOp>(op)) {
    FailureOr<Tensor> t = eval(v);
    if (failed(t))
      return failure();
    return t->shape;
  }
  return fallback;
}

FailureOr<Tensor> Evaluator::constant(quench::ConstantOp op) {
  auto type = cast<RankedTensorType>(op.getType());
  Tensor t;
  t.shape.assign(type.getShape().begin(), type.getShape().end());
  int64_t n = t.numel();
  if (n > (1 << 22))
    return failure();
  Type elem = type.getElementType();
  if (auto dense = dyn_cast<DenseElementsAttr>(op.getValue())) {
    if (elem.isInteger(1)) {
      for (bool b : dense.getValues<bool>())
        t.data.push_back(b);
    } else if (isa<FloatType>(elem)) {
      for (APFloat f : dense.getValues<APFloat>())
        t.data.push_back(f.convertToDouble());
    } else if (isa<IntegerType>(elem)) {
      for (APInt i : dense.getValues<APInt>())
        t.data.push_back(static_cast<double>(i.getSExtValue()));
    } else {
      return failure();
    }
    if (dense.isSplat())
      t.data.assign(n, t.data.front());
    return t;
  }
  auto raw = getRawConstantData(op.getValue());
  if (!raw)
    return failure();
  t.data.resize(n);
  const char *p = raw->data();
  for (int64_t i = 0; i < n; ++i) {
    if (elem.isF32()) {
      float f;
      memcpy(&f, p + 4 * i, 4);
      t.data[i] = f;
    } else if (elem.isF64()) {
      memcpy(&t.data[i], p + 8 * i, 8);
    } else if (elem.isInteger(64)) {
      int64_t x;
      memcpy(&x, p + 8 * i, 8);
      t.data[i] = static_cast<double>(x);
    } else if (elem.isInteger(32)) {
      int32_t x;
      memcpy(&x, p + 4 * i, 4);
      t.data[i] = x;
    } else if (elem.isInteger(8)) {
      t.data[i] = static_cast<int8_t>(p[i]);
    } else {
      return failure();
    }
  }
  return t;
}

FailureOr<Tensor> Evaluator::compute(Value v) {
  Operation *op = v.getDefiningOp();
  auto fail = [&]() -> FailureOr<Tensor> {
    if (!failedAt && !failedValue) {
      failedAt = op;
      failedValue = v;
    }
    return failure();
  };
  if (!op && (v == inputs.attentionMask || v == inputs.positionIds)) {
    // Ones over past + seq keys; positions past .. past+seq-1.
    FailureOr<SmallVector<int64_t>> dims = dimsOf(v);
    if (failed(dims))
      return fail();
    Tensor t;
    t.shape = *dims;
    t.data.resize(t.numel(), 1.0);
    if (v == inputs.positionIds)
      for (int64_t i = 0; i < t.numel(); ++i)
        t.data[i] = static_cast<double>(past + i % std::max<int64_t>(
                                                   t.shape.back(), 1));
    return t;
  }
  if (!op)
    return fail();
  SmallVector<Tensor> in;
  auto operands = [&](ValueRange vs) -> LogicalResult {
    for (Value x : vs) {
      FailureOr<Tensor> t = eval(x);
      if (failed(t))
        return failure();
      in.push_back(std::move(*t));
    }
    return success();
  };
  auto resultType = dyn_cast<RankedTensorType>(v.getType());
  if (!resultType)
    return fail();
  bool intResult = isa<IntegerType>(resultType.getElementType());
  auto binary = [&](auto f) -> FailureOr<Tensor> {
    if (failed(operands(op->getOperands())))
      return failure();
    FailureOr<Tensor> r =
        elementwise(in, [&](ArrayRef<double> a) { return f(a[0], a[1]); });
    return failed(r) ? fail() : r;
  };
  auto truncIf = [&](double x) { return intResult ? std::trunc(x) : x; };

  return llvm::TypeSwitch<Operation *, FailureOr<Tensor>>(op)
      .Case([&](quench::ConstantOp c) -> FailureOr<Tensor> {
        FailureOr<Tensor> t = constant(c);
        return failed(t) ? fail() : t;
      })
      .Case([&](ShapeOfOp s) -> FailureOr<Tensor> {
        Tensor t;
        FailureOr<SmallVector<int64_t>> dims = dimsOf(s.getInput());
        if (failed(dims))
          return fail();
        t.shape = {static_cast<int64_t>(dims->size())};
        for (int64_t d : *dims)
          t.data.push_back(static_cast<double>(d));
        return t;
      })
      .Case([&](quench::AddOp) { return binary(std::plus<double>()); })
      .Case([&](quench::SubOp) { return binary(std::minus<double>()); })
      .Case([&](quench::MulOp) { return binary(std::multiplies<double>()); })
      .Case([&](quench::DivOp) {
        return binary([&](double a, double b) { return truncIf(a / b); });
      })
      .Case([&](quench::MinOp) {
        return binary([](double a, double b) { return std::min(a, b); });
      })
      .Case([&](quench::MaxOp) {
        return binary([](double a, double b) { return std::max(a, b); });
      })
      .Case([&](CmpOp c) {
        CmpPredicate p = c.getPredicate();
        return binary([p](double a, double b) -> double {
          switch (p) {
          case CmpPredicate::eq: return a == b;
          case CmpPredicate::ne: return a != b;
          case CmpPredicate::lt: return a < b;
          case CmpPredicate::le: return a <= b;
          case CmpPredicate::gt: return a > b;
          case CmpPredicate::ge: return a >= b;
          }
          return 0;
        });
      })
      .Case([&](LogicalOp l) {
        LogicalKind k = l.getKind();
        return binary([k](double a, double b) -> double {
          bool x = a != 0, y = b != 0;
          return k == LogicalKind::and_ ? (x && y)
                 : k == LogicalKind::or_ ? (x || y)
                                         : (x != y);
        });
      })
      .Case([&](WhereOp) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperands())))
          return failure();
        FailureOr<Tensor> r = elementwise(in, [](ArrayRef<double> a) {
          return a[0] != 0 ? a[1] : a[2];
        });
        return failed(r) ? fail() : r;
      })
      .Case<NotOp, NegOp, quench::CastOp>([&](Operation *) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperands())))
          return failure();
        Tensor r = in[0];
        Type elem = resultType.getElementType();
        for (double &x : r.data) {
          if (isa<NotOp>(op))
            x = x == 0;
          else if (isa<NegOp>(op))
            x = -x;
          else if (elem.isInteger(1))
            x = x != 0;
          else if (isa<IntegerType>(elem))
            x = std::isfinite(x) ? std::trunc(x) : 0;
        }
        return r;
      })
      .Case([&](RangeOp r) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperands())))
          return failure();
        double start = in[0].data[0], limit = in[1].data[0],
               delta = in[2].data[0];
        if (delta == 0)
          return fail();
        Tensor t;
        for (double x = start; delta > 0 ? x < limit : x > limit;
             x += delta) {
          t.data.push_back(x);
          if (t.data.size() > (1u << 20))
            return fail();
        }
        t.shape = {static_cast<int64_t>(t.data.size())};
        return t;
      })
      .Case([&](GatherOp g) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperands())))
          return failure();
        const Tensor &data = in[0], &idx = in[1];
        int64_t axis = g.getAxis();
        int64_t rank = data.shape.size();
        if (axis < 0)
          axis += rank;
        if (axis < 0 || axis >= rank)
          return fail();
        int64_t outer = 1, inner = 1, n = data.shape[axis];
        for (int64_t i = 0; i < axis; ++i)
          outer *= data.shape[i];
        for (int64_t i = axis + 1; i < rank; ++i)
          inner *= data.shape[i];
        Tensor t;
        t.shape.assign(data.shape.begin(), data.shape.begin() + axis);
        t.shape.append(idx.shape.begin(), idx.shape.end());
        t.shape.append(data.shape.begin() + axis + 1, data.shape.end());
        for (int64_t o = 0; o < outer; ++o)
          for (double xi : idx.data) {
            // quench.gather: negative indices count from the end, then
            // clamped.
            int64_t j = static_cast<int64_t>(xi);
            if (j < 0)
              j += n;
            j = std::clamp<int64_t>(j, 0, n - 1);
            for (int64_t k = 0; k < inner; ++k)
              t.data.push_back(data.data[(o * n + j) * inner + k]);
          }
        return t;
      })
      .Case<UnsqueezeOp, SqueezeOp, ReshapeOp>(
          [&](Operation *) -> FailureOr<Tensor> {
            if (failed(operands(op->getOperand(0))))
              return failure();
            Tensor t = in[0];
            SmallVector<int64_t> dims;
            if (auto r = dyn_cast<ReshapeOp>(op); r && r.getShape()) {
              FailureOr<Tensor> s = eval(r.getShape());
              if (failed(s))
                return failure();
              for (double d : s->data)
                dims.push_back(static_cast<int64_t>(d));
            } else if (auto u = dyn_cast<UnsqueezeOp>(op)) {
              size_t k = 0;
              for (int64_t i = 0; i < resultType.getRank(); ++i)
                dims.push_back(llvm::is_contained(u.getAxes(), i)
                                   ? 1
                                   : t.shape[k++]);
            } else if (auto sq = dyn_cast<SqueezeOp>(op)) {
              for (auto [i, d] : llvm::enumerate(t.shape))
                if (!llvm::is_contained(sq.getAxes(),
                                        static_cast<int64_t>(i)))
                  dims.push_back(d);
            } else {
              // Static reshapes: the result type,
              // its dynamic dims from the operand's element count.
              int64_t known = 1, unknown = -1;
              for (auto [i, d] : llvm::enumerate(resultType.getShape())) {
                dims.push_back(d);
                if (d == ShapedType::kDynamic)
                  unknown = unknown < 0 ? i : -2;
                else
                  known *= d;
              }
              if (unknown == -2 || known == 0)
                return fail();
              if (unknown >= 0)
                dims[unknown] = t.numel() / known;
            }
            Tensor r;
            r.shape = dims;
            if (r.numel() != t.numel())
              return fail();
            r.data = std::move(t.data);
            return r;
          })
      .Case([&](ExpandOp e) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperand(0))))
          return failure();
        SmallVector<int64_t> dims;
        if (e.getShape()) {
          FailureOr<Tensor> s = eval(e.getShape());
          if (failed(s))
            return failure();
          for (double d : s->data)
            dims.push_back(static_cast<int64_t>(d));
        } else {
          dims.assign(resultType.getShape().begin(),
                      resultType.getShape().end());
        }
        auto shape = broadcast({ArrayRef<int64_t>(dims), in[0].shape});
        if (!shape)
          return fail();
        Tensor ones;
        ones.shape = *shape;
        ones.data.assign(ones.numel(), 0);
        in.push_back(ones);
        FailureOr<Tensor> r =
            elementwise(in, [](ArrayRef<double> a) { return a[0]; });
        return failed(r) ? fail() : r;
      })
      .Case([&](ConcatOp c) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperands())) || in.empty())
          return failure();
        int64_t rank = in[0].shape.size(), axis = c.getAxis();
        if (axis < 0)
          axis += rank;
        Tensor t;
        t.shape = in[0].shape;
        t.shape[axis] = 0;
        for (const Tensor &x : in)
          t.shape[axis] += x.shape[axis];
        int64_t outer = 1;
        for (int64_t i = 0; i < axis; ++i)
          outer *= t.shape[i];
        for (int64_t o = 0; o < outer; ++o)
          for (const Tensor &x : in) {
            int64_t block = x.numel() / std::max<int64_t>(outer, 1);
            t.data.insert(t.data.end(), x.data.begin() + o * block,
                          x.data.begin() + (o + 1) * block);
          }
        return t;
      })
      .Case([&](SliceOp s) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperand(0))))
          return failure();
        const Tensor &x = in[0];
        int64_t rank = x.shape.size();
        SmallVector<SmallVector<int64_t>> picks(rank);
        for (int64_t d = 0; d < rank; ++d) {
          int64_t start = s.getStarts()[d], end = s.getEnds()[d],
                  step = s.getSteps()[d], n = x.shape[d];
          if (end > n)
            end = n;
          for (int64_t i = start; step > 0 ? i < end : i > end; i += step)
            if (i >= 0 && i < n)
              picks[d].push_back(i);
        }
        Tensor t;
        for (auto &p : picks)
          t.shape.push_back(p.size());
        SmallVector<int64_t> strides = stridesOf(x.shape);
        SmallVector<int64_t> idx(rank, 0);
        for (int64_t n = 0; n < t.numel(); ++n) {
          int64_t rem = n, flat = 0;
          for (int64_t d = rank - 1; d >= 0; --d) {
            flat += picks[d][rem % t.shape[d]] * strides[d];
            rem /= t.shape[d];
          }
          t.data.push_back(x.data[flat]);
        }
        return t;
      })
      .Case([&](TransposeOp tr) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperand(0))))
          return failure();
        const Tensor &x = in[0];
        ArrayRef<int64_t> perm = tr.getPermutation();
        Tensor t;
        for (int64_t p : perm)
          t.shape.push_back(x.shape[p]);
        SmallVector<int64_t> strides = stridesOf(x.shape);
        for (int64_t n = 0; n < t.numel(); ++n) {
          int64_t rem = n, flat = 0;
          for (int64_t d = static_cast<int64_t>(perm.size()) - 1; d >= 0;
               --d) {
            flat += (rem % t.shape[d]) * strides[perm[d]];
            rem /= t.shape[d];
          }
          t.data.push_back(x.data[flat]);
        }
        return t;
      })
      .Case([&](TriluOp tr) -> FailureOr<Tensor> {
        if (failed(operands(op->getOperand(0))))
          return failure();
        Tensor t = in[0];
        int64_t rank = t.shape.size();
        if (rank < 2)
          return fail();
        int64_t rows = t.shape[rank - 2], cols = t.shape[rank - 1];
        for (int64_t n = 0; n < t.numel(); ++n) {
          int64_t c = n % cols, r = (n / cols) % rows;
          int64_t k = static_cast<int64_t>(tr.getK());
          bool keep = tr.getUpper() ? c - r >= k : c - r <= k;
          if (!keep)
            t.data[n] = 0;
        }
        return t;
      })
      .Default([&](Operation *) { return fail(); });
}

