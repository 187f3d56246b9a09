//===- ShareKernels.cpp - one function per distinct loop nest -------------===//
//
// The layers of a transformer have identical shapes, so after bufferization
// the loop nests of one layer (the quantized matmul kernels, the
// normalizations, attention, the elementwise chains) repeat in every layer on
// different buffers and weights. Emitted inline, each copy became its own
// machine code (and its own LLVM optimization and instruction selection).
//
// This pass outlines every top-level loop nest of a function into a
// candidate function whose arguments are the values the nest reads from
// outside (constants are cloned in instead), prints the candidate in generic
// form without locations, and groups the candidates by that text: a group of
// two or more nests becomes one private function, called from each place; a
// nest that occurs once stays inline (nothing changes for it). Comparing the
// printed IR is exact (same operations, attributes and types, operands
// numbered in order) and costs one print of the nests.
//
//===----------------------------------------------------------------------===//

#include "quench/Codegen/Common/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/SetVector.h"

namespace quench {
#define GEN_PASS_DEF_QUENCHSHAREKERNELS
#include "quench/Codegen/Common/Passes.h.inc"
} // namespace quench

using namespace mlir;

namespace {

/// A loop nest at the top level of a function, outlined into `func`
/// (not yet inserted into the module).
struct Candidate {
  Operation *op;
  func::FuncOp func;
};

bool isConstantLike(Value v) {
  Operation *def = v.getDefiningOp();
  return def && def->getNumOperands() == 0 && def->getNumRegions() == 0 &&
         def->hasTrait<OpTrait::ConstantLike>();
}

bool isKernelCandidate(Operation *op, int64_t minOps) {
  if (!isa<scf::ForOp, scf::ForallOp, scf::ParallelOp, scf::IfOp,
           scf::WhileOp>(op))
    return false;
  // scf.forall with shared_outs works on tensors (not bufferized).
  if (auto forall = dyn_cast<scf::ForallOp>(op))
    if (!forall.getOutputs().empty())
      return false;
  int64_t count = 0;
  op->walk([&](Operation *) { ++count; });
  return count - 1 >= minOps;
}

/// What `op` reads from outside, in the order of first use: its operands and
/// the values its regions use from above, split into constants (cloned into
/// the outlined function) and the rest (its arguments).
void collectInputs(Operation *op, SmallVectorImpl<Value> &args,
                   SmallVectorImpl<Value> &constants) {
  llvm::SetVector<Value> inputs;
  for (Value v : op->getOperands())
    inputs.insert(v);
  for (Region &r : op->getRegions())
    getUsedValuesDefinedAbove(r, inputs);
  for (Value v : inputs)
    (isConstantLike(v) ? constants : args).push_back(v);
}

/// Outlines `op` into a detached private function: arguments for its
/// operands and the values it uses from above (constants cloned instead),
/// results returned.
Candidate outline(Operation *op, MLIRContext *ctx) {
  SmallVector<Value> args, constants;
  collectInputs(op, args, constants);

  Location loc = op->getLoc();
  auto type = FunctionType::get(ctx, ValueRange(args).getTypes(),
                                op->getResultTypes());
  auto func = func::FuncOp::create(loc, "kernel", type);
  func.setPrivate();
  Block *entry = func.addEntryBlock();
  OpBuilder b = OpBuilder::atBlockEnd(entry);
  IRMapping map;
  for (auto [v, arg] : llvm::zip_equal(args, entry->getArguments()))
    map.map(v, arg);
  for (Value v : constants)
    b.clone(*v.getDefiningOp(), map);
  Operation *clone = b.clone(*op, map);
  func::ReturnOp::create(b, loc, clone->getResults());
  return {op, func};
}

/// The text that identifies a candidate: its function printed in generic
/// form without locations.
std::string printKey(func::FuncOp func) {
  std::string text;
  llvm::raw_string_ostream os(text);
  OpPrintingFlags flags;
  flags.printGenericOpForm();
  flags.enableDebugInfo(false);
  func->print(os, flags);
  return text;
}

struct ShareKernelsPass
    : public quench::impl::QuenchShareKernelsBase<ShareKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();

    // Candidates grouped by their printed function, in program order.
    llvm::MapVector<StringRef, SmallVector<Candidate>> groups;
    std::vector<std::unique_ptr<std::string>> keys;
    llvm::StringMap<size_t> keyIndex;
    SmallVector<func::FuncOp> functions(module.getOps<func::FuncOp>());
    for (func::FuncOp fn : functions) {
      if (fn.isExternal() || fn->hasAttr("quench.parallel_body"))
        continue;
      for (Block &block : fn.getBody())
        for (Operation &op : block) {
          if (!isKernelCandidate(&op, minOps))
            continue;
          Candidate c = outline(&op, ctx);
          std::string key = printKey(c.func);
          auto it = keyIndex.find(key);
          if (it == keyIndex.end()) {
            keys.push_back(std::make_unique<std::string>(std::move(key)));
            it = keyIndex.try_emplace(*keys.back(), keys.size() - 1).first;
          }
          groups[*keys[it->second]].push_back(c);
        }
    }

    SymbolTable symbols(module);
    llvm::StringMap<unsigned> perFunction;
    for (auto &[key, members] : groups) {
      if (members.size() < 2) {
        for (Candidate &c : members)
          c.func.erase();
        continue;
      }
      // The first member's function is the shared one, named after the
      // function that holds the first occurrence.
      func::FuncOp shared = members.front().func;
      auto parent = members.front().op->getParentOfType<func::FuncOp>();
      unsigned n = perFunction[parent.getSymName()]++;
      shared.setSymName(
          (parent.getSymName() + "_kernel_" + Twine(n)).str());
      shared->setAttr("llvm.linkage",
                      LLVM::LinkageAttr::get(ctx, LLVM::Linkage::Internal));
      // Not inlined back into its callers: sharing the code is the point
      // (convert-func-to-llvm passes `passthrough` on to LLVM).
      shared->setAttr("passthrough",
                      ArrayAttr::get(ctx, {StringAttr::get(ctx, "noinline")}));
      symbols.insert(shared, std::next(Block::iterator(parent)));
      for (Candidate &c : members) {
        if (c.func != shared)
          c.func.erase();
        // The inputs again: a nest replaced earlier may have produced some
        // of them (its results are the call's now). Same uses, same order.
        SmallVector<Value> args, constants;
        collectInputs(c.op, args, constants);
        OpBuilder b(c.op);
        auto call = func::CallOp::create(b, c.op->getLoc(), shared, args);
        c.op->replaceAllUsesWith(call.getResults());
        c.op->erase();
      }
    }
  }
};

} // namespace
