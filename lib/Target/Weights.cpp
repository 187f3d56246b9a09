//===- Weights.cpp - a model's weights, streamed into artifacts -----------===//
//
// See Weights.h and docs/scaling.md.
//
//===----------------------------------------------------------------------===//

#include "quench/Target/Weights.h"

#include "quench/Dialect/Quench/IR/QuenchConstants.h"
#include "quench/Support/FileUtils.h"
#include "quench/Support/MappedFile.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/bit.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/GlobalVariable.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Object/ObjectFile.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/Errno.h"
#include "llvm/Support/MathExtras.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace llvm;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

quench::WeightTable quench::extractWeights(mlir::ModuleOp module,
                                           uint64_t minBytes) {
  WeightTable table;
  uint64_t end = 0;
  SmallVector<mlir::LLVM::GlobalOp> globals(
      module.getOps<mlir::LLVM::GlobalOp>());
  // The globals something still refers to (one walk, not one per global).
  DenseSet<mlir::StringAttr> used;
  module.walk([&](mlir::LLVM::AddressOfOp op) {
    used.insert(op.getGlobalNameAttr().getAttr());
  });
  for (mlir::LLVM::GlobalOp global : globals) {
    if (!global.getConstant() || !global.getInitializerRegion().empty())
      continue;
    auto value = dyn_cast_or_null<mlir::ElementsAttr>(global.getValueOrNull());
    if (!value)
      continue;
    std::optional<ArrayRef<char>> raw = getRawConstantData(value);
    if (!raw || raw->size() < minBytes)
      continue;
    // A constant that nothing uses any more (a weight that a pass replaced
    // by a transformed copy) takes no room.
    if (!used.contains(global.getSymNameAttr())) {
      global.erase();
      continue;
    }
    // The global keeps its name (renaming would walk the module once per
    // weight) and becomes a declaration.
    std::string symbol = global.getSymName().str();
    global.removeValueAttr();
    global.setLinkage(mlir::LLVM::Linkage::External);
    global.removeUnnamedAddrAttr();
    global.setDsoLocal(false);
    uint64_t align = std::max<uint64_t>(WeightTable::kEntryAlignment,
                                        global.getAlignment().value_or(1));
    // The declaration promises no more alignment than the bytes have where
    // they are (a borrowed ONNX tensor, an inline attribute): code resolved
    // to them in place (the calibration JIT) must not assume more. In an
    // image every entry is at `align`.
    uint64_t have = uint64_t(1) << llvm::countr_zero(
                        reinterpret_cast<uintptr_t>(raw->data()) | align);
    global.setAlignment(std::min(align, have));
    end = alignTo(end, align);
    table.entries.push_back({symbol, *raw, end});
    end += raw->size();
  }
  table.size = alignTo(end, WeightTable::kImageAlignment);
  return table;
}

GlobalVariable *quench::declareWeightImage(Module &module,
                                           const WeightTable &table,
                                           WeightStorage storage) {
  assert(storage != WeightStorage::External);
  if (table.entries.empty())
    return nullptr;
  LLVMContext &ctx = module.getContext();
  auto *i8 = Type::getInt8Ty(ctx);
  auto *i64 = Type::getInt64Ty(ctx);
  auto *type = ArrayType::get(i8, table.size);
  bool appended = storage == WeightStorage::Appended;
  auto *image = new GlobalVariable(module, type, /*isConstant=*/!appended,
                                   GlobalValue::ExternalLinkage, nullptr,
                                   kWeightImageSymbol);
  // Embedded: a section of its own, found again in the object to write the
  // bytes into. Appended: large zero-initialized data, which the code
  // generator puts in .lbss (SHT_NOBITS: no bytes in any file).
  if (!appended)
    image->setSection(kWeightSectionName);
  image->setAlignment(Align(WeightTable::kImageAlignment));
  // Reached with 64-bit addressing wherever the image lands: it may be
  // gigabytes, beyond the +-2 GB of the small code model's references.
  image->setCodeModel(CodeModel::Large);
  for (const WeightEntry &entry : table.entries) {
    GlobalVariable *decl = module.getGlobalVariable(entry.symbol);
    if (!decl)
      continue; // no use survived
    Constant *address = ConstantExpr::getInBoundsGetElementPtr(
        i8, image, ConstantInt::get(i64, entry.offset));
    decl->replaceAllUsesWith(address);
    decl->eraseFromParent();
  }
  return image;
}

void quench::defineWeightImage(Module &module) {
  GlobalVariable *image = module.getGlobalVariable(kWeightImageSymbol);
  if (!image || !image->isDeclaration())
    return;
  image->setInitializer(ConstantAggregateZero::get(image->getValueType()));
  image->setLinkage(GlobalValue::InternalLinkage);
  // The zeros are placeholders: the bytes are written into the artifact
  // afterwards, so the code generator must not assume them.
  image->setExternallyInitialized(true);
}

/// writeAllAt with the file named in the error.
static Error writeAll(int fd, ArrayRef<char> data, uint64_t offset,
                      StringRef what) {
  if (std::error_code ec = quench::writeAllAt(fd, data, offset))
    return makeError("cannot write '" + what + "': " + ec.message());
  return Error::success();
}

Error quench::writeWeightImage(int fd, uint64_t fileOffset,
                               const WeightTable &table, StringRef what) {
  // Chunks small enough that a mapped source never has more than this
  // resident on its account.
  constexpr uint64_t kChunk = 32ull << 20;
  for (const WeightEntry &entry : table.entries) {
    ArrayRef<char> data = entry.data;
    for (uint64_t done = 0; done < data.size(); done += kChunk) {
      ArrayRef<char> chunk =
          data.slice(done, std::min<uint64_t>(kChunk, data.size() - done));
      if (Error e =
              writeAll(fd, chunk, fileOffset + entry.offset + done, what))
        return e;
      releaseMappedPages(chunk);
    }
  }
  return Error::success();
}

Error quench::writeWeightSection(StringRef objectPath,
                                 const WeightTable &table) {
  if (table.entries.empty())
    return Error::success();
  // Only the headers are read: the (mapped) zero fill is never touched.
  auto binary = object::ObjectFile::createObjectFile(objectPath);
  if (!binary)
    return makeError("cannot read the object '" + objectPath +
                     "': " + toString(binary.takeError()));
  std::optional<uint64_t> offset;
  uint64_t size = 0;
  for (const object::SectionRef &section : binary->getBinary()->sections()) {
    Expected<StringRef> name = section.getName();
    if (!name) {
      consumeError(name.takeError());
      continue;
    }
    if (*name != kWeightSectionName || !isa<object::ELFObjectFileBase>(
                                           binary->getBinary()))
      continue;
    offset = object::ELFSectionRef(section).getOffset();
    size = section.getSize();
  }
  if (!offset || size != table.size)
    return makeError("the object '" + objectPath + "' has no section " +
                     kWeightSectionName + " of " + Twine(table.size) +
                     " bytes");
  int fd;
  if (std::error_code ec = sys::fs::openFileForReadWrite(
          objectPath, fd, sys::fs::CD_OpenExisting, sys::fs::OF_None))
    return makeError("cannot open '" + objectPath + "': " + ec.message());
  Error e = writeWeightImage(fd, *offset, table, objectPath);
  ::close(fd);
  return e;
}

Error quench::appendWeightsToExecutable(StringRef path,
                                        const WeightTable &table) {
  if (table.entries.empty())
    return Error::success();
  std::string p = path.str();
  int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return makeError("cannot open '" + path + "': " + sys::StrError(errno));
  scope_exit closeFd([&] { ::close(fd); });
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return makeError("cannot read '" + path + "': " + sys::StrError(errno));
  uint64_t offset = alignTo((uint64_t)st.st_size, WeightTable::kImageAlignment);
  if (Error e = writeWeightImage(fd, offset, table, path))
    return e;
  // The trailer goes right after the image (whose padding is a hole).
  char trailer[AppendedWeightsTrailer::kTrailerBytes] = {};
  std::memcpy(trailer, AppendedWeightsTrailer::kMagic.data(), 8);
  support::endian::write64le(trailer + 8, 1); // trailer version
  support::endian::write64le(trailer + 16, offset);
  support::endian::write64le(trailer + 24, table.size);
  if (Error e = writeAll(fd, trailer, offset + table.size, path))
    return e;
  return Error::success();
}
