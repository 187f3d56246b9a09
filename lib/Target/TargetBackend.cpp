//===- TargetBackend.cpp - the target registry and --target ---------------===//

#include "quench/Target/TargetBackend.h"

#include "quench/Support/DriverUtils.h"
#include "quench/Support/FileUtils.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <mutex>

using namespace llvm;

quench::TargetBackend::~TargetBackend() = default;

Expected<std::string>
quench::TargetBackend::writeDeviceAssembly(mlir::ModuleOp,
                                           StringRef) const {
  return createStringError(inconvertibleErrorCode(),
                           "the " + getDisplayName() +
                               " target has no device code to write "
                               "(--emit=ptx is for --target=cuda)");
}

Expected<std::string> quench::serializeModel(
    const TargetBackend &backend, mlir::OwningOpRef<mlir::ModuleOp> &module,
    const ModelABIRequest &request, ArtifactKind kind, StringRef outputPath,
    StageDumper &dumper, PhaseTimer &timer) {
  auto error = [](const Twine &msg) {
    return createStringError(inconvertibleErrorCode(), msg);
  };
  timer.start("translate");
  // The weights leave the module before translation: they never become
  // LLVM constants, and reach the artifact by streaming (Weights.h).
  WeightTable weights = extractWeights(*module, backend.getMinWeightBytes());
  ModelABIRequest abi = request;
  abi.weights = &weights;
  abi.weightStorage = kind == ArtifactKind::Executable
                          ? WeightStorage::Appended
                          : WeightStorage::Embedded;
  LLVMContext llvmContext;
  auto llvmModule = backend.translateToLLVMIR(*module, llvmContext, abi);
  if (!llvmModule)
    return llvmModule.takeError();
  // The MLIR module is no longer needed (the weights' bytes stay in the
  // context's resource blobs until they are written).
  module = nullptr;
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
  // The object goes to a temporary file next to the output (the weight
  // image in it is zero fill, gigabytes for large models: never in memory).
  SmallString<256> objectPath(sys::path::parent_path(outputPath));
  if (objectPath.empty())
    objectPath = ".";
  sys::path::append(objectPath, sys::path::filename(outputPath) +
                                    ".tmp-%%%%%%.o");
  int fd;
  if (std::error_code ec =
          sys::fs::createUniqueFile(objectPath, fd, objectPath))
    return error("cannot create a temporary object file in '" +
                 sys::path::parent_path(objectPath) + "': " + ec.message());
  TemporaryFileCleanup objectCleanup(objectPath);
  scope_exit removeObject([&] { sys::fs::remove(objectPath); });
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    if (Error e = backend.emitObject(**llvmModule, os))
      return std::move(e);
    os.close();
    if (os.has_error()) {
      std::string msg = os.error().message();
      os.clear_error();
      return error("cannot write '" + objectPath + "': " + msg);
    }
  }
  llvmModule->reset();
  timer.start(kind == ArtifactKind::Executable ? "link" : "write");
  return backend.writeArtifact(kind, outputPath, abi, objectPath);
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
