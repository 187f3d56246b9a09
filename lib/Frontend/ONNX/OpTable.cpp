//===- OpTable.cpp - the ONNX operator table and the node dispatcher ------===//
//
// Builds the operator table once from every family's `populate<Family>Ops`
// and answers from it which operators are supported (the importer's
// up-front check, `quench-import --list-supported-ops`). Converts a node by
// its entry: the entry's import-time folder first, then its conversion;
// afterwards any output that turned out to be a small integer tensor known
// entirely at import becomes a constant, so that exporters' shape arithmetic
// disappears at import.
//
//===----------------------------------------------------------------------===//

#include "OpTable.h"

#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/Support/ErrorHandling.h"

#include <numeric>

using namespace quench;
using namespace quench::onnximport;

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

llvm::StringRef onnximport::normalizeDomain(llvm::StringRef domain) {
  return domain == "ai.onnx" ? llvm::StringRef() : domain;
}

void OpTable::add(llvm::StringRef domain, llvm::StringRef opType,
                  OpsetRange opsets, Converter convert, Folder fold) {
  SmallVector<OpEntry, 1> &list =
      entries[{normalizeDomain(domain).str(), opType.str()}];
  for (const OpEntry &e : list)
    if (e.opsets.since <= opsets.until && opsets.since <= e.opsets.until)
      llvm::report_fatal_error("ONNX operator table: two entries for " +
                               llvm::Twine(opType) +
                               " with overlapping opset ranges");
  list.push_back(OpEntry{normalizeDomain(domain).str(), opType.str(), opsets,
                         std::move(convert), std::move(fold)});
}

const OpEntry *OpTable::lookup(llvm::StringRef domain, llvm::StringRef opType,
                               int64_t version) const {
  auto it = entries.find({normalizeDomain(domain).str(), opType.str()});
  if (it == entries.end())
    return nullptr;
  for (const OpEntry &e : it->second)
    if (e.opsets.contains(version))
      return &e;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> OpTable::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto &[key, list] : entries)
    out.push_back(key);
  return out; // std::map keeps the keys sorted
}

const OpTable &onnximport::getOpTable() {
  static const OpTable table = [] {
    OpTable t;
    populateConstantOps(t);
    populateElementwiseOps(t);
    populateCompositeOps(t);
    populateShapeOps(t);
    populateIndexingOps(t);
    populateReductionOps(t);
    populateContractionOps(t);
    populateQuantizationOps(t);
    return t;
  }();
  return table;
}

bool onnximport::isSupportedOp(llvm::StringRef domain, llvm::StringRef opType,
                               int64_t version) {
  return getOpTable().lookup(domain, opType, version) != nullptr;
}

std::vector<std::pair<std::string, std::string>> quench::getSupportedONNXOps() {
  return getOpTable().ops();
}

FailureOr<int64_t> onnximport::normalizeAxis(GraphImporter &imp,
                                             const onnx::NodeProto &node,
                                             int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return imp.nodeError(node) << "axis " << axis << " is out of range for rank "
                               << rank,
           failure();
  return a;
}

//===----------------------------------------------------------------------===//
// Import-time folding
//===----------------------------------------------------------------------===//

int64_t onnximport::numElements(ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count))
      return -1;
  return count;
}

FoldArgs::FoldArgs(GraphImporter &imp, const onnx::NodeProto &node)
    : imp(imp), node(node), outTy(imp.outputType(node, 0)),
      outEt(succeeded(outTy) ? outTy->getElementType() : Type()) {}

bool FoldArgs::knownInputs() {
  ins.clear();
  for (int i = 0; i < node.input_size(); ++i) {
    if (node.input(i).empty()) {
      ins.emplace_back();
      continue;
    }
    std::optional<IntTensor> k = imp.knownInts(node, i);
    if (!k)
      return false;
    ins.push_back(std::move(*k));
  }
  return !ins.empty();
}

/// Binds output 0 of `node` to the constant `folded`; false (nothing bound)
/// when its element type is not an integer or its data does not fill its
/// shape.
static bool bindFolded(GraphImporter &imp, const onnx::NodeProto &node,
                       Folded folded) {
  IntTensor &t = folded.value;
  Type et = folded.elementType;
  if (!et || !et.isInteger() || numElements(t.shape) != (int64_t)t.data.size())
    return false;
  // Values as the element type holds them (Cast to bool is `x != 0`,
  // narrower integers wrap), so that later folds see the same numbers.
  unsigned width = et.getIntOrFloatBitWidth();
  for (int64_t &v : t.data) {
    if (width == 1) {
      v = v != 0;
    } else if (width < 64) {
      APInt w = APInt(64, (uint64_t)v, /*isSigned=*/true).trunc(width);
      v = et.isUnsignedInteger() ? (int64_t)w.getZExtValue()
                                 : w.getSExtValue();
    }
  }
  imp.setOutput(node, 0, imp.intConstant(imp.nodeLoc(node), t, et));
  imp.setKnown(node.output(0), std::move(t));
  return true;
}

/// After `node` was converted: outputs that are small integer tensors known
/// entirely at import time (e.g. `Gather(Shape(x), 2)` of a static dimension
/// of a dynamic tensor) become constants, so that later folds see them. When
/// every output folded, the ops the conversion built are erased if unused.
static void foldKnownOutputs(GraphImporter &imp, const onnx::NodeProto &node,
                             ArrayRef<Operation *> created) {
  bool allConstant = true, folded = false;
  for (int i = 0; i < node.output_size(); ++i) {
    if (node.output(i).empty())
      continue;
    Value v = imp.output(node, i);
    if (!v || v.getDefiningOp<ConstantOp>())
      continue;
    std::optional<PartialInts> p = partialInts(v);
    if (!p || !allKnown(*p)) {
      allConstant = false;
      continue;
    }
    auto ty = tensorType(v);
    IntTensor t;
    t.shape.assign(ty.getShape().begin(), ty.getShape().end());
    for (std::optional<int64_t> e : *p)
      t.data.push_back(*e);
    imp.setOutput(node, i, imp.intConstant(imp.nodeLoc(node), t, ty.getElementType()));
    imp.setKnown(node.output(i), std::move(t));
    folded = true;
  }
  if (!folded || !allConstant)
    return;
  for (Operation *op : llvm::reverse(created))
    if (isOpTriviallyDead(op))
      op->erase();
}

//===----------------------------------------------------------------------===//
// The dispatcher
//===----------------------------------------------------------------------===//

static LogicalResult convertNodeImpl(GraphImporter &imp,
                                     const onnx::NodeProto &node) {
  Conv c(imp, node);
  const OpEntry *entry = getOpTable().lookup(node.domain(), node.op_type(),
                                             imp.opsetOf(node.domain()));
  // Unreachable after the importer's up-front check of every node.
  if (!entry)
    return c.error() << "no conversion", failure();
  if (entry->fold) {
    FoldArgs args(imp, node);
    if (std::optional<Folded> folded = entry->fold(args)) {
      if (bindFolded(imp, node, std::move(*folded)))
        return success();
    } else if (!args.error.empty()) {
      return c.error() << args.error, failure();
    }
  }
  return entry->convert(c);
}

LogicalResult onnximport::convertNode(GraphImporter &imp,
                                      const onnx::NodeProto &node) {
  // The importer appends to the end of the function's block.
  Block *block = imp.builder.getInsertionBlock();
  Operation *last = block->empty() ? nullptr : &block->back();
  if (failed(convertNodeImpl(imp, node)))
    return failure();
  SmallVector<Operation *> created;
  for (Operation &op : last ? llvm::make_range(std::next(last->getIterator()),
                                               block->end())
                            : llvm::make_range(block->begin(), block->end()))
    created.push_back(&op);
  foldKnownOutputs(imp, node, created);
  return success();
}
