//===- RuntimeChecks.cpp - run-time checks in generated code --------------===//

#include "quench/Conversion/RuntimeChecks.h"
#include "quench/Dialect/Quench/IR/QuenchOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/LLVMIR/FunctionCallUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/xxhash.h"

using namespace mlir;

/// The global holding `text` (NUL-terminated) in `module`: an existing one
/// of the same contents, else a new one named after the text's hash (so one
/// message checked many times is stored once, and a lookup costs one
/// symbol search, not a search for a free number).
static LLVM::GlobalOp messageGlobal(OpBuilder &b, Location loc,
                                    ModuleOp module, StringRef text) {
  std::string base = "quench_check_values_message_" +
                     llvm::utohexstr(llvm::xxh3_64bits(text), true);
  for (unsigned i = 0;; ++i) {
    std::string name = i == 0 ? base : base + "_" + std::to_string(i);
    auto existing = module.lookupSymbol(name);
    if (!existing) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto type = LLVM::LLVMArrayType::get(b.getI8Type(), text.size());
      return LLVM::GlobalOp::create(b, loc, type, /*isConstant=*/true,
                                    LLVM::Linkage::Internal, name,
                                    b.getStringAttr(text), /*alignment=*/0);
    }
    auto global = dyn_cast<LLVM::GlobalOp>(existing);
    auto value = global ? dyn_cast_or_null<StringAttr>(global.getValueOrNull())
                        : StringAttr();
    if (value && value.getValue() == text)
      return global;
  }
}

std::string quench::describeNode(Location loc, StringRef fallback) {
  std::string name = getNodeName(loc);
  return name.empty() ? fallback.str() : "node '" + name + "'";
}

void quench::emitRuntimeCheck(OpBuilder &b, Location loc, Value ok,
                              StringRef message, ValueRange values) {
  assert(values.size() <= 2 && "at most two values in a check's message");
  if (values.empty()) {
    cf::AssertOp::create(b, loc, ok, message);
    return;
  }
  MLIRContext *ctx = b.getContext();
  Operation *parent = b.getInsertionBlock()->getParentOp();
  auto module = isa<ModuleOp>(parent) ? cast<ModuleOp>(parent)
                                      : parent->getParentOfType<ModuleOp>();
  Type i64 = b.getI64Type();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  FailureOr<LLVM::LLVMFuncOp> fail;
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    fail = LLVM::lookupOrCreateFn(b, module, kCheckFailedValuesFnName,
                                  {ptr, i64, i64}, LLVM::LLVMVoidType::get(ctx));
  }
  assert(succeeded(fail) && "quench_rt_check_failed_values has another type");
  LLVM::GlobalOp global =
      messageGlobal(b, loc, module, (message + Twine('\0')).str());
  Value bad = arith::XOrIOp::create(
      b, loc, ok, arith::ConstantIntOp::create(b, loc, b.getI1Type(), 1));
  auto ifOp = scf::IfOp::create(b, loc, bad, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  Value address = LLVM::AddressOfOp::create(b, loc, global);
  Value first = LLVM::GEPOp::create(
      b, loc, ptr, global.getType(), address, ArrayRef<LLVM::GEPArg>{0, 0});
  SmallVector<Value> args{first};
  for (unsigned i = 0; i < 2; ++i) {
    Value v = i < values.size() ? values[i]
                                : arith::ConstantIntOp::create(b, loc, i64, 0);
    if (v.getType().isIndex())
      v = arith::IndexCastOp::create(b, loc, i64, v);
    else if (v.getType().getIntOrFloatBitWidth() < 64)
      v = arith::ExtSIOp::create(b, loc, i64, v);
    args.push_back(v);
  }
  LLVM::CallOp::create(b, loc, *fail, args);
}
