//===- TargetBackend.cpp - the target registry and --target ---------------===//

#include "quench/Target/TargetBackend.h"

#include "quench/Support/DriverUtils.h"
#include "quench/Support/FileUtils.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/ManagedStatic.h"

#include <mutex>

using namespace llvm;

quench::TargetBackend::~TargetBackend() = default;

Expected<std::string> quench::serializeModel(
    const TargetBackend &backend, mlir::OwningOpRef<mlir::ModuleOp> &module,
    const ModelABIRequest &abi, ArtifactKind kind, StringRef outputPath,
    StageDumper &dumper, PhaseTimer &timer) {
  auto error = [](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), msg);
  };
  timer.start("translate");
  LLVMContext llvmContext;
  auto llvmModule = backend.translateToLLVMIR(*module, llvmContext, abi);
  if (!llvmModule)
    return llvmModule.takeError();
  module = nullptr; // the MLIR module (and its weights) are no longer needed
  auto print = [&](raw_ostream &os) { (*llvmModule)->print(os, nullptr); };
  if (std::string err = dumper.dump("llvm.ll", print); !err.empty())
    return error(err);
  timer.start("llvm-opt");
  backend.optimizeLLVMIR(**llvmModule);
  if (std::string err = dumper.dump("llvm-opt.ll", print); !err.empty())
    return error(err);
  if (kind == ArtifactKind::LLVMIR) {
    timer.start("write");
    std::string err;
    std::string path = writeTextOutput(outputPath, ".ll", print, err);
    if (!err.empty())
      return error(err);
    return path;
  }
  timer.start("codegen-obj");
  SmallVector<char, 0> object;
  {
    raw_svector_ostream os(object);
    if (Error e = backend.emitObject(**llvmModule, os))
      return std::move(e);
  }
  llvmModule->reset();
  timer.start(kind == ArtifactKind::Executable ? "link" : "write");
  return backend.writeArtifact(kind, outputPath, abi, object);
}

namespace {
struct Registry {
  std::mutex mutex;
  std::vector<quench::RegisteredTargetBackend> backends;
  StringMap<quench::TargetBackendFactory> factories;
};

struct TargetCLOptions {
  cl::opt<std::string> target{
      "target",
      cl::desc("Target to generate code for (default: cpu; see "
               "--list-targets)"),
      cl::init("cpu"), cl::value_desc("NAME"),
      cl::cat(quench::getTargetCLOptionCategory())};
};
} // namespace

static ManagedStatic<Registry> registry;
static ManagedStatic<TargetCLOptions> clOptions;

void quench::registerTargetBackend(StringRef name, StringRef description,
                                   TargetBackendFactory factory) {
  std::lock_guard<std::mutex> lock(registry->mutex);
  if (!registry->factories.try_emplace(name, std::move(factory)).second)
    return;
  registry->backends.push_back({name.str(), description.str()});
}

std::vector<quench::RegisteredTargetBackend>
quench::getRegisteredTargetBackends() {
  std::lock_guard<std::mutex> lock(registry->mutex);
  return registry->backends;
}

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createTargetBackend(StringRef name) {
  TargetBackendFactory factory;
  {
    std::lock_guard<std::mutex> lock(registry->mutex);
    auto it = registry->factories.find(name);
    if (it != registry->factories.end())
      factory = it->second;
  }
  if (!factory) {
    std::string names;
    for (const RegisteredTargetBackend &b : getRegisteredTargetBackends())
      names += (names.empty() ? "" : ", ") + b.name;
    return createStringError(inconvertibleErrorCode(),
                             "unknown --target '" + name +
                                 "': registered targets: " +
                                 (names.empty() ? "none" : names));
  }
  return factory();
}

cl::OptionCategory &quench::getTargetCLOptionCategory() {
  static cl::OptionCategory category("quench-compile target options");
  return category;
}

void quench::registerTargetCLOptions() { *clOptions; }

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createTargetBackendFromCLOptions() {
  return createTargetBackend(clOptions.isConstructed()
                                 ? StringRef(clOptions->target)
                                 : StringRef("cpu"));
}
