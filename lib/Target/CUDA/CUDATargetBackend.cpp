//===- CUDATargetBackend.cpp - the CUDA target backend --------------------===//
//
// Configuration (architecture, Toolkit, the host CPU backend that compiles
// the host side), the code generation stages (CUDAPipeline.cpp), device
// code serialization (PTX -> ptxas -> fatbin with cubin and PTX, embedded
// in the host object by MLIR's gpu.binary translation), weights addressed
// in a device copy of the weight image, and the artifacts, which are the
// CPU backend's (the host object links the Quench runtime, which loads the
// CUDA driver at run time: runtime/lib/cuda.c). docs/gpu.md.
//
//===----------------------------------------------------------------------===//

#include "quench/Target/CUDA/CUDATargetBackend.h"

#include "quench/Support/FileUtils.h"
#include "quench/Target/CUDA/CUDAPipeline.h"
#include "quench/Target/Weights.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/ReplaceConstant.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

//===----------------------------------------------------------------------===//
// The CUDA Toolkit
//===----------------------------------------------------------------------===//

Expected<std::string> quench::findCUDAToolkit(StringRef explicitPath) {
  SmallVector<std::pair<std::string, std::string>> candidates;
  if (!explicitPath.empty())
    candidates.push_back({explicitPath.str(), "--cuda-path"});
  else {
    if (std::optional<std::string> home = sys::Process::GetEnv("CUDA_HOME");
        home && !home->empty())
      candidates.push_back({*home, "CUDA_HOME"});
    candidates.push_back({"/usr/local/cuda", "the default"});
  }
  std::string tried;
  for (const auto &[dir, source] : candidates) {
    SmallString<256> ptxas(dir), fatbinary(dir);
    sys::path::append(ptxas, "bin", "ptxas");
    sys::path::append(fatbinary, "bin", "fatbinary");
    if (sys::fs::can_execute(ptxas) && sys::fs::can_execute(fatbinary))
      return dir;
    tried += (tried.empty() ? "" : ", ") + dir + " (" + source + ")";
  }
  return makeError("the CUDA Toolkit was not found: no executable bin/ptxas "
                   "and bin/fatbinary in " +
                   tried +
                   "; install the CUDA Toolkit or pass --cuda-path=DIR");
}

namespace {
/// A temporary file removed when it goes out of scope.
struct TempFile {
  SmallString<128> path;
  ~TempFile() {
    if (!path.empty())
      sys::fs::remove(path);
  }
  Error create(StringRef suffix) {
    int fd;
    if (std::error_code ec =
            sys::fs::createTemporaryFile("quench-cuda", suffix, fd, path))
      return makeError("cannot create a temporary file: " + ec.message());
    sys::Process::SafelyCloseFileDescriptor(fd);
    return Error::success();
  }
};
} // namespace

/// Runs `program` with `args`; fails with its output when it fails.
static Error runTool(StringRef program, ArrayRef<StringRef> args) {
  TempFile log;
  if (Error e = log.create("log"))
    return e;
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log.path),
                                          StringRef(log.path)};
  std::string errMsg;
  int rc = sys::ExecuteAndWait(program, args, std::nullopt, redirects, 0, 0,
                               &errMsg);
  if (rc == 0)
    return Error::success();
  auto text = MemoryBuffer::getFile(log.path);
  std::string detail = text ? (*text)->getBuffer().trim().str() : "";
  return makeError("'" + program + "' failed" +
                   (errMsg.empty() ? "" : ": " + errMsg) +
                   (detail.empty() ? "" : ":\n" + detail));
}

Expected<std::string> quench::assembleFatbin(StringRef toolkit, StringRef ptx,
                                             StringRef arch) {
  SmallString<256> ptxas(toolkit), fatbinary(toolkit);
  sys::path::append(ptxas, "bin", "ptxas");
  sys::path::append(fatbinary, "bin", "fatbinary");
  TempFile ptxFile, cubin, fatbin;
  if (Error e = ptxFile.create("ptx"))
    return std::move(e);
  if (Error e = cubin.create("cubin"))
    return std::move(e);
  if (Error e = fatbin.create("fatbin"))
    return std::move(e);
  {
    std::error_code ec;
    raw_fd_ostream os(ptxFile.path, ec);
    if (ec)
      return makeError("cannot write '" + ptxFile.path + "': " + ec.message());
    os << ptx;
  }
  std::string archFlag = ("-arch=" + arch).str();
  if (Error e = runTool(ptxas, {ptxas, archFlag, "-O3", "-o", cubin.path,
                                ptxFile.path}))
    return std::move(e);
  std::string sm = arch.drop_front(3).str(); // "sm_90a" -> "90a"
  std::string create = ("--create=" + fatbin.path).str();
  std::string elf = "--image3=kind=elf,sm=" + sm + ",file=" +
                    cubin.path.str().str();
  std::string ptxImage = "--image3=kind=ptx,sm=" + sm + ",file=" +
                         ptxFile.path.str().str();
  if (Error e = runTool(fatbinary, {fatbinary, create, "-64", elf, ptxImage}))
    return std::move(e);
  auto bytes = MemoryBuffer::getFile(fatbin.path, /*IsText=*/false,
                                     /*RequiresNullTerminator=*/false);
  if (!bytes)
    return makeError("cannot read '" + fatbin.path +
                     "': " + bytes.getError().message());
  return (*bytes)->getBuffer().str();
}

//===----------------------------------------------------------------------===//
// Device code
//===----------------------------------------------------------------------===//

/// The PTX objects of `module`'s gpu.binary ops (gpu-module-to-binary,
/// format isa), with the op holding each.
static SmallVector<std::pair<mlir::gpu::BinaryOp, mlir::gpu::ObjectAttr>>
getPTXObjects(mlir::ModuleOp module) {
  SmallVector<std::pair<mlir::gpu::BinaryOp, mlir::gpu::ObjectAttr>> objects;
  module.walk([&](mlir::gpu::BinaryOp binary) {
    for (mlir::Attribute attr : binary.getObjects())
      if (auto object = dyn_cast<mlir::gpu::ObjectAttr>(attr))
        if (object.getFormat() == mlir::gpu::CompilationTarget::Assembly)
          objects.push_back({binary, object});
  });
  return objects;
}

/// Replaces the PTX of every gpu.binary of `module` by a fatbin holding
/// its cubin for `arch` and the PTX.
static Error assembleDeviceCode(mlir::ModuleOp module, StringRef toolkit,
                                StringRef arch) {
  for (auto [binary, object] : getPTXObjects(module)) {
    auto fatbin =
        quench::assembleFatbin(toolkit, object.getObject().getValue(), arch);
    if (!fatbin)
      return makeError("assembling the device code of '" +
                       binary.getSymName() + "' for " + arch + ": " +
                       toString(fatbin.takeError()));
    mlir::MLIRContext *ctx = module.getContext();
    auto assembled = mlir::gpu::ObjectAttr::get(
        ctx, object.getTarget(), mlir::gpu::CompilationTarget::Fatbin,
        mlir::StringAttr::get(ctx, *fatbin), object.getProperties(),
        object.getKernels());
    binary.setObjectsAttr(mlir::ArrayAttr::get(ctx, {assembled}));
  }
  return Error::success();
}

/// The name of the runtime function returning the device copy of a weight
/// image (runtime/lib/cuda.c).
static constexpr StringLiteral kDeviceWeightsFunction = "quench_cuda_weights";

/// Host code addresses every weight in the device copy of the weight image:
/// each function using the image calls quench_cuda_weights(image, size) on
/// entry and offsets the device address it returns instead.
static void addressWeightsOnDevice(Module &module) {
  GlobalVariable *image = module.getGlobalVariable(quench::kWeightImageSymbol);
  if (!image)
    return;
  convertUsersOfConstantsToInstructions({image});
  LLVMContext &ctx = module.getContext();
  auto *ptr = PointerType::getUnqual(ctx);
  auto *i64 = Type::getInt64Ty(ctx);
  FunctionCallee deviceWeights = module.getOrInsertFunction(
      kDeviceWeightsFunction, FunctionType::get(ptr, {ptr, i64}, false));
  uint64_t size = module.getDataLayout().getTypeAllocSize(image->getValueType());
  DenseMap<Function *, Value *> bases;
  for (Use &use : make_early_inc_range(image->uses())) {
    auto *inst = dyn_cast<Instruction>(use.getUser());
    if (!inst)
      continue;
    Function *f = inst->getFunction();
    Value *&base = bases[f];
    if (!base) {
      IRBuilder<> b(&*f->getEntryBlock().getFirstInsertionPt());
      base = b.CreateCall(deviceWeights, {image, ConstantInt::get(i64, size)},
                          "device_weights");
    }
    use.set(base);
  }
}

//===----------------------------------------------------------------------===//
// The backend
//===----------------------------------------------------------------------===//

namespace {
class CUDATargetBackend final : public quench::TargetBackend {
public:
  CUDATargetBackend(quench::CUDATargetOptions options,
                    std::unique_ptr<quench::TargetBackend> host)
      : options(std::move(options)), host(std::move(host)) {}

  StringRef getName() const override { return "cuda"; }
  StringRef getDisplayName() const override { return "CUDA"; }

  void appendCodegenStages(
      std::vector<quench::PipelineStage> &stages) const override {
    quench::CUDACodegenOptions codegen;
    codegen.chip = options.arch;
    codegen.blockSize = options.blockSize;
    codegen.emulate = options.emulate;
    quench::appendCUDACodegenStages(stages, codegen);
  }

  // Kernels read constants from device memory: all of them are weights.
  uint64_t getMinWeightBytes() const override { return 0; }
  // Buffer placement copies inputs to the device and never back: caches
  // updated in place would stay stale on the host.
  bool supportsInPlaceInputs() const override { return false; }

  std::vector<std::pair<std::string, std::string>>
  describeSerialization() const override {
    std::vector<std::pair<std::string, std::string>> steps;
    if (!options.emulate)
      steps.push_back({"ptxas", "PTX -> cubin for --cuda-arch (the CUDA "
                                "Toolkit's ptxas), packed with the PTX by "
                                "its fatbinary"});
    for (auto &step : host->describeSerialization())
      steps.push_back(step);
    return steps;
  }

  Expected<std::string>
  writeDeviceAssembly(mlir::ModuleOp module,
                      StringRef outputPath) const override {
    auto objects = getPTXObjects(module);
    if (objects.empty())
      return makeError("the module has no device code (run the stages up to "
                       "to-llvm)");
    std::string err;
    std::string path = quench::writeTextOutput(
        outputPath, ".ptx",
        [&](raw_ostream &os) {
          for (auto [binary, object] : objects)
            os << "// gpu.binary @" << binary.getSymName() << "\n"
               << object.getObject().getValue();
        },
        err);
    if (!err.empty())
      return makeError(err);
    return path;
  }

  Expected<std::unique_ptr<Module>>
  translateToLLVMIR(mlir::ModuleOp module, LLVMContext &context,
                    const quench::ModelABIRequest &abi) const override {
    // Kernels cannot read host memory: every constant they may read must
    // have reached the weight image (extractWeights with no minimum
    // size), which the device addresses.
    DenseSet<mlir::StringAttr> used;
    module.walk([&](mlir::LLVM::AddressOfOp op) {
      used.insert(op.getGlobalNameAttr().getAttr());
    });
    if (!options.emulate)
      for (auto global : module.getOps<mlir::LLVM::GlobalOp>())
        if (global.getConstant() && used.contains(global.getSymNameAttr()) &&
            isa_and_nonnull<mlir::ElementsAttr>(global.getValueOrNull()))
          return makeError("internal error: the constant '" +
                           global.getSymName() +
                           "' was not placed in device memory");
    if (!getPTXObjects(module).empty()) {
      auto toolkit = quench::findCUDAToolkit(options.cudaPath);
      if (!toolkit)
        return toolkit.takeError();
      if (Error e = assembleDeviceCode(module, *toolkit, options.arch))
        return std::move(e);
    }
    auto llvmModule = host->translateToLLVMIR(module, context, abi);
    if (!llvmModule)
      return llvmModule.takeError();
    if (!options.emulate)
      addressWeightsOnDevice(**llvmModule);
    return llvmModule;
  }

  void optimizeLLVMIR(Module &module) const override {
    host->optimizeLLVMIR(module);
  }

  Error emitObject(Module &module, raw_pwrite_stream &os) const override {
    return host->emitObject(module, os);
  }

  quench::RuntimeLibraries getRuntimeLibraries() const override {
    return host->getRuntimeLibraries();
  }

  Expected<std::string> writeArtifact(quench::ArtifactKind kind,
                                      StringRef out,
                                      const quench::ModelABIRequest &abi,
                                      StringRef objectPath) const override {
    return host->writeArtifact(kind, out, abi, objectPath);
  }

private:
  quench::CUDATargetOptions options;
  /// Compiles, optimizes and links the host side.
  std::unique_ptr<quench::TargetBackend> host;
};
} // namespace

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createCUDATargetBackend(const CUDATargetOptions &options) {
  ArrayRef<StringRef> archs = getSupportedCUDAArchs();
  if (!llvm::is_contained(archs, options.arch))
    return makeError("unknown --cuda-arch '" + options.arch +
                     "' (supported: " + join(archs, ", ") + ")");
  if (options.blockSize < 32 || options.blockSize > 1024 ||
      options.blockSize % 32)
    return makeError("--cuda-block-size must be a multiple of 32 in [32, "
                     "1024]");
  // The host side runs on this machine's CPU kind; its kernels are never
  // used (the host code only drives the GPU), so no vectorization options
  // matter.
  auto host = createCPUTargetBackend(options.host);
  if (!host)
    return host.takeError();
  return std::make_unique<CUDATargetBackend>(options, std::move(*host));
}

//===----------------------------------------------------------------------===//
// Registration and command-line options
//===----------------------------------------------------------------------===//

namespace {
struct CUDATargetCLOptions {
  cl::OptionCategory &category = quench::getTargetCLOptionCategory();
  cl::opt<std::string> arch{
      "cuda-arch",
      cl::desc("GPU architecture for --target=cuda: sm_80 (default; A100, "
               "and newer GPUs through the embedded PTX), sm_86, sm_89, "
               "sm_90, sm_90a (H100 with wgmma/TMA)"),
      cl::init("sm_80"), cl::cat(category)};
  cl::opt<std::string> cudaPath{
      "cuda-path",
      cl::desc("CUDA Toolkit directory holding bin/ptxas and bin/fatbinary "
               "(default: $CUDA_HOME, then /usr/local/cuda)"),
      cl::value_desc("DIR"), cl::cat(category)};
  cl::opt<int64_t> blockSize{
      "cuda-block-size",
      cl::desc("Threads per block of the generic CUDA kernels (default "
               "256)"),
      cl::init(256), cl::cat(category)};
  cl::opt<bool> emulate{
      "cuda-emulate",
      cl::desc("Run the CUDA kernels on this machine's CPU instead of a GPU "
               "(verification without a GPU: the same buffer placement and "
               "kernel mapping, executed by sequential thread loops)"),
      cl::init(false), cl::cat(category)};
};
} // namespace

static ManagedStatic<CUDATargetCLOptions> clOptions;

void quench::registerCUDATargetCLOptions() { *clOptions; }

quench::CUDATargetOptions quench::getCUDATargetOptionsFromCL() {
  CUDATargetOptions o;
  o.host = getCPUTargetOptionsFromCL();
  if (!clOptions.isConstructed())
    return o;
  o.arch = clOptions->arch;
  o.cudaPath = clOptions->cudaPath;
  o.blockSize = clOptions->blockSize;
  o.emulate = clOptions->emulate;
  return o;
}

void quench::registerCUDATargetBackend() {
  registerTargetBackend(
      "cuda",
      "NVIDIA GPUs (--cuda-arch=sm_80|sm_86|sm_89|sm_90|sm_90a): kernels "
      "assembled by the CUDA Toolkit's ptxas, host code for this CPU; runs "
      "where the CUDA driver is",
      [] { return createCUDATargetBackend(getCUDATargetOptionsFromCL()); });
}
