//===- CPUTargetBackend.cpp - the CPU target backend ----------------------===//
//
// Configuration (the TargetMachine from the host's real features or an
// explicit CPU, the vector width and kernels that follow from them), the
// code generation stages (CPUPipeline.cpp), LLVM IR with the model's C ABI
// (ModelABI.cpp), object emission (CPUTarget.cpp) and the artifacts:
// object + header, static archive + header, or an executable linked with
// the runtime archive by the system's C compiler driver (the only external
// program a compile runs).
//
//===----------------------------------------------------------------------===//

#include "quench/Target/CPU/CPUTargetBackend.h"

#include "quench/Support/FileUtils.h"
#include "quench/Support/MappedFile.h"
#include "quench/Target/CPU/CPUPipeline.h"
#include "quench/Target/CPU/CPUTarget.h"
#include "quench/Target/CPU/ModelABI.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/ManagedStatic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Target/TargetMachine.h"

using namespace llvm;

static Error makeError(const Twine &msg) {
  return createStringError(inconvertibleErrorCode(), msg);
}

//===----------------------------------------------------------------------===//
// Artifacts
//===----------------------------------------------------------------------===//

/// Writes `bytes` to `path` atomically.
static Error writeBytes(StringRef path, StringRef bytes) {
  std::string err = quench::writeFileAtomically(path, [&](raw_ostream &os) {
    os << bytes;
    return true;
  });
  return err.empty() ? Error::success() : makeError(err);
}

/// Path of the runtime archive `name`.
static std::string runtimeArchive(StringRef runtimeDir, StringRef name) {
  SmallString<256> dir;
  if (!runtimeDir.empty()) {
    dir = runtimeDir;
  } else {
    static int anchor;
    dir = sys::path::parent_path(
        sys::fs::getMainExecutable("quench-compile", &anchor));
    sys::path::append(dir, "..", "lib");
  }
  sys::path::append(dir, name);
  return std::string(dir);
}

/// Links `object` with `libs` into the executable `out` (atomically) with
/// the C compiler driver `linker` (or the first of clang-22, cc, gcc);
/// `finish` completes the linked file before it is renamed into place.
static Error
linkExecutable(StringRef object, StringRef out,
               const quench::RuntimeLibraries &libs, StringRef runtimeDir,
               StringRef linker,
               function_ref<Error(StringRef linked)> finish) {
  SmallVector<std::string> archives;
  for (const std::string &name : libs.archives) {
    archives.push_back(runtimeArchive(runtimeDir, name));
    if (!sys::fs::exists(archives.back()))
      return makeError("cannot find the Quench runtime library '" +
                       archives.back() + "' (set --runtime-dir)");
  }
  std::string cc = linker.str();
  if (cc.empty()) {
    for (StringRef candidate : {"clang-22", "cc", "gcc"})
      if (auto p = sys::findProgramByName(candidate)) {
        cc = *p;
        break;
      }
    if (cc.empty())
      return makeError("no C compiler driver found to link the executable "
                       "(tried clang-22, cc, gcc; set --linker)");
  } else if (!sys::fs::can_execute(cc)) {
    if (auto p = sys::findProgramByName(cc))
      cc = *p;
    else
      return makeError("linker '" + cc + "' not found");
  }
  SmallString<256> tmp(out);
  tmp += ".tmp-link";
  quench::TemporaryFileCleanup tmpCleanup(tmp);
  SmallVector<StringRef> args = {cc, "-o", tmp, object};
  for (const std::string &a : archives)
    args.push_back(a);
  for (const std::string &l : libs.systemLibraries)
    args.push_back(l);
  std::string errMsg;
  SmallString<128> log;
  int logFd;
  if (sys::fs::createTemporaryFile("quench-link", "log", logFd, log))
    return makeError("cannot create a temporary file");
  quench::TemporaryFileCleanup logCleanup(log);
  sys::Process::SafelyCloseFileDescriptor(logFd);
  std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                          StringRef(log)};
  int rc = sys::ExecuteAndWait(cc, args, std::nullopt, redirects, 0, 0,
                               &errMsg);
  auto logText = MemoryBuffer::getFile(log);
  sys::fs::remove(log);
  if (rc != 0) {
    sys::fs::remove(tmp);
    std::string detail = logText ? (*logText)->getBuffer().trim().str() : "";
    return makeError("linking the executable with '" + cc + "' failed" +
                     (errMsg.empty() ? "" : ": " + errMsg) +
                     (detail.empty() ? "" : ":\n" + detail));
  }
  if (Error e = finish(tmp)) {
    sys::fs::remove(tmp);
    return e;
  }
  if (std::error_code ec = sys::fs::rename(tmp, out)) {
    sys::fs::remove(tmp);
    return makeError("cannot write '" + out + "': " + ec.message());
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// The backend
//===----------------------------------------------------------------------===//

namespace {
class CPUTargetBackend final : public quench::TargetBackend {
public:
  CPUTargetBackend(quench::CPUTargetOptions options,
                   std::unique_ptr<TargetMachine> tm,
                   quench::CPUCodegenOptions codegen)
      : options(std::move(options)), tm(std::move(tm)), codegen(codegen) {}

  StringRef getName() const override { return "cpu"; }
  StringRef getDisplayName() const override { return "CPU"; }

  /// The sparse kernel (quench-cpu-sparse-matmul) at 256 and 512 bits;
  /// without vectorization the specification generic runs as loops.
  bool supportsCompressedSparseWeights() const override {
    return codegen.vectorBits == 0 || codegen.vectorBits == 256 ||
           codegen.vectorBits == 512;
  }

  /// The int16 8-bit kernel's vpexpandb form (quench-cpu-dequant-matmul
  /// `bitmask-expand`): AVX512-VBMI2 and VNNI at 512 bits.
  bool supportsBitmaskSparseWeights() const override {
    return codegen.bitmaskExpand;
  }

  void appendCodegenStages(
      std::vector<quench::PipelineStage> &stages) const override {
    quench::appendCPUCodegenStages(stages, codegen);
  }

  std::vector<std::pair<std::string, std::string>>
  describeSerialization() const override {
    return {{"llvm", "translation to LLVM IR, the model's C ABI, LLVM -O" +
                         std::to_string(options.optLevel)},
            {"codegen-obj", "object code for the target CPU (in-process)"}};
  }

  Expected<std::unique_ptr<Module>>
  translateToLLVMIR(mlir::ModuleOp module, LLVMContext &context,
                    const quench::ModelABIRequest &abi) const override {
    const quench::ModelSignature &sig = *abi.signature;
    std::unique_ptr<Module> llvmModule =
        mlir::translateModuleToLLVMIR(module, context, sig.modelName);
    if (!llvmModule)
      return makeError("translation to LLVM IR failed (see above)");
    llvmModule->setDataLayout(tm->createDataLayout());
    // Weights (declarations since extractWeights) become addresses in the
    // weight image, unless something else resolves them by name.
    GlobalVariable *image = nullptr;
    if (abi.weights && abi.weightStorage != quench::WeightStorage::External)
      image = quench::declareWeightImage(*llvmModule, *abi.weights,
                                         abi.weightStorage);
    if (Error e = quench::addModelABI(*llvmModule, sig, abi.entryCInterface,
                                      abi.withMain, image, abi.weightStorage))
      return std::move(e);
    return std::move(llvmModule);
  }

  void optimizeLLVMIR(Module &module) const override {
    quench::optimizeModule(module, *tm, options.optLevel);
  }

  Error emitObject(Module &module, raw_pwrite_stream &os) const override {
    quench::defineWeightImage(module);
    return quench::emitObjectFile(module, *tm, os);
  }

  quench::RuntimeLibraries getRuntimeLibraries() const override {
    return {{"libquench_runtime.a"}, {"-lm", "-lpthread"}};
  }

  Expected<std::string> writeArtifact(quench::ArtifactKind kind,
                                      StringRef out,
                                      const quench::ModelABIRequest &abi,
                                      StringRef objectPath) const override;

private:
  quench::CPUTargetOptions options;
  std::unique_ptr<TargetMachine> tm;
  quench::CPUCodegenOptions codegen;
};
} // namespace

Expected<std::string>
CPUTargetBackend::writeArtifact(quench::ArtifactKind kind, StringRef out,
                                const quench::ModelABIRequest &abi,
                                StringRef objectPath) const {
  StringRef modelName = abi.signature->modelName;
  std::string header = quench::generateHeader(*abi.signature, abi.sourcePath);
  static const quench::WeightTable noWeights;
  const quench::WeightTable &weights = abi.weights ? *abi.weights : noWeights;
  switch (kind) {
  case quench::ArtifactKind::LLVMIR:
    return makeError("the CPU backend writes LLVM IR through serializeModel");
  case quench::ArtifactKind::Object: {
    // The header first: the object is renamed into place last, so that a
    // failure leaves neither.
    std::string base = quench::withoutExtension(out, ".o");
    if (Error e = quench::writeWeightSection(objectPath, weights))
      return std::move(e);
    if (Error e = writeBytes(base + ".h", header))
      return std::move(e);
    if (std::error_code ec = sys::fs::rename(objectPath, base + ".o")) {
      sys::fs::remove(base + ".h");
      return makeError("cannot write '" + base + ".o': " + ec.message());
    }
    return base + ".o";
  }
  case quench::ArtifactKind::StaticLibrary: {
    std::string base = quench::withoutExtension(out, ".a");
    SmallString<256> lib(sys::path::parent_path(base));
    StringRef stem = sys::path::filename(base);
    sys::path::append(lib, (stem.starts_with("lib") ? "" : "lib") +
                               stem.str() + ".a");
    SmallString<256> headerPath(sys::path::parent_path(base));
    sys::path::append(headerPath,
                      (stem.starts_with("lib") ? stem.drop_front(3) : stem) +
                          ".h");
    if (Error e = quench::writeWeightSection(objectPath, weights))
      return std::move(e);
    auto object = quench::MappedFile::open(objectPath);
    if (!object)
      return object.takeError();
    ArrayRef<char> bytes = (*object)->data();
    std::string member = modelName.str() + ".o";
    if (Error e = writeBytes(headerPath, header))
      return std::move(e);
    std::string archiveError;
    std::string err = quench::writeFileAtomically(lib, [&](raw_ostream &os) {
      if (Error e = quench::writeStaticArchive(
              os, member,
              MemoryBufferRef(StringRef(bytes.data(), bytes.size()), member))) {
        archiveError = toString(std::move(e));
        return false;
      }
      return true;
    });
    if (!archiveError.empty() || !err.empty()) {
      sys::fs::remove(headerPath);
      return makeError(!archiveError.empty() ? archiveError : err);
    }
    return lib.str().str();
  }
  case quench::ArtifactKind::Executable: {
    // The weights follow the linked program in the same file (the linker
    // never sees them), behind a trailer the runtime maps them from.
    auto appendWeights = [&](StringRef linked) {
      return quench::appendWeightsToExecutable(linked, weights);
    };
    if (Error e = linkExecutable(objectPath, out, getRuntimeLibraries(),
                                 options.runtimeDir, options.linker,
                                 appendWeights))
      return std::move(e);
    return out.str();
  }
  }
  llvm_unreachable("unknown artifact kind");
}

Expected<std::unique_ptr<quench::TargetBackend>>
quench::createCPUTargetBackend(const CPUTargetOptions &options) {
  if (options.optLevel > 3)
    return makeError("-O takes 0, 1, 2 or 3");
  auto target = resolveCPUTarget(options.cpu, options.features);
  if (!target)
    return target.takeError();
  CPUCodegenOptions codegen;
  codegen.vectorBits = options.vectorBits ? *options.vectorBits
                                          : getPreferredVectorBits(*target);
  codegen.codeLookup =
      options.codeLookup ? *options.codeLookup
                         : codegen.vectorBits == 512 &&
                               hasCPUFeature(*target, "avx512f");
  codegen.attentionKernel = options.attentionKernel;
  if (options.int8Dot)
    codegen.int8Dot = selectInt8DotProduct(
        codegen.vectorBits,
        [&](StringRef feature) { return hasCPUFeature(*target, feature); });
  if (options.prefillActivations != "auto" &&
      options.prefillActivations != "float" &&
      options.prefillActivations != "int8")
    return makeError("--prefill-activations takes 'auto', 'int8' or "
                     "'float', not '" +
                     options.prefillActivations + "'");
  if (options.prefillRows < 2)
    return makeError("--prefill-rows must be at least 2 (decode steps keep "
                     "the 16-bit activations)");
  codegen.int8PrefillRows =
      options.prefillActivations == "float" ? 0 : options.prefillRows;
  // auto: 4-bit codes only, where the weights' error dominates
  // (docs/accuracy.md, "Int8 activations for prefill").
  codegen.int8PrefillBits = options.prefillActivations == "int8" ? 8 : 4;
  codegen.bitmaskExpand = codegen.vectorBits == 512 &&
                          codegen.int8Dot == quench::Int8DotProduct::VNNI &&
                          hasCPUFeature(*target, "avx512vbmi2") &&
                          hasCPUFeature(*target, "avx512bw");
  auto tm = createTargetMachine(*target);
  if (!tm)
    return tm.takeError();
  return std::make_unique<CPUTargetBackend>(options, std::move(*tm),
                                            codegen);
}

//===----------------------------------------------------------------------===//
// Registration and command-line options
//===----------------------------------------------------------------------===//

namespace {
struct CPUTargetCLOptions {
  cl::OptionCategory &category = quench::getTargetCLOptionCategory();
  cl::opt<std::string> cpu{
      "cpu",
      cl::desc("CPU to generate code for: 'host' (default; the features "
               "this machine really has) or an LLVM CPU name such as "
               "x86-64-v3, skylake-avx512, znver4 (portable objects)"),
      cl::init("host"), cl::cat(category)};
  cl::opt<std::string> cpuFeatures{
      "cpu-features", cl::desc("Extra CPU features, e.g. +avx2,+fma,-avx512f"),
      cl::value_desc("+f,-g,..."), cl::cat(category)};
  cl::opt<unsigned> vectorBits{
      "vector-bits",
      cl::desc("Vector width the code generator targets, in bits (default: "
               "from the CPU: 512 with AVX-512F, 256 with AVX, else 128; 0: "
               "scalar loops)"),
      cl::cat(category)};
  cl::opt<bool> int8Dot{
      "int8-dot",
      cl::desc("Use the CPU's integer multiply-add instructions (vpdpbusd "
               "with AVX-VNNI/AVX512-VNNI, else vpmaddwd with "
               "AVX2/AVX-512BW) for int8 x int8 products with constant "
               "weights, and, with VNNI, for 4- and 8-bit weights times "
               "the activations quantized to int16 per group or block "
               "(default: on; --int8-dot=false keeps the generic "
               "contraction and the float 4- and 8-bit kernels)"),
      cl::init(true), cl::cat(category)};
  cl::opt<std::string> prefillActivations{
      "prefill-activations",
      cl::desc("Activations of 4- and 8-bit weight products with at least "
               "--prefill-rows rows (prompt prefill), on VNNI targets: "
               "'int8' quantizes them to int8 per row and quantization "
               "group (one vpdpbusd per 4 weights and row), 'float' keeps "
               "the 16-bit form that decode uses, 'auto' (default) is "
               "int8 for 4-bit weights and float for 8-bit ones"),
      cl::value_desc("auto|int8|float"), cl::init("auto"), cl::cat(category)};
  cl::opt<unsigned> prefillRows{
      "prefill-rows",
      cl::desc("Rows (tokens) from which int8 prefill activations apply "
               "(default 16; checked at run time when the row count is "
               "dynamic; at least 2)"),
      cl::init(16), cl::cat(category)};
  cl::opt<bool> attentionKernel{
      "attention-kernel",
      cl::desc("Compute attention (quench.attention) with the vectorized "
               "online-softmax kernel (default: on; --attention-kernel=false "
               "keeps its linalg decomposition; no effect at "
               "--vector-bits=0)"),
      cl::init(true), cl::cat(category)};
  cl::opt<unsigned> optLevel{
      "O", cl::desc("LLVM optimization level 0-3 (default 3)"), cl::Prefix,
      cl::init(3), cl::cat(category)};
  cl::opt<std::string> runtimeDir{
      "runtime-dir",
      cl::desc("Directory holding libquench_runtime.a, for --emit=exe "
               "(default: ../lib next to quench-compile)"),
      cl::value_desc("DIR"), cl::cat(category)};
  cl::opt<std::string> linker{
      "linker",
      cl::desc("C compiler driver used to link executables (default: "
               "clang-22, else cc)"),
      cl::value_desc("PATH"), cl::cat(category)};
};
} // namespace

static ManagedStatic<CPUTargetCLOptions> clOptions;

void quench::registerCPUTargetCLOptions() { *clOptions; }

quench::CPUTargetOptions quench::getCPUTargetOptionsFromCL() {
  CPUTargetOptions o;
  if (!clOptions.isConstructed())
    return o;
  o.cpu = clOptions->cpu;
  o.features = clOptions->cpuFeatures;
  if (clOptions->vectorBits.getNumOccurrences())
    o.vectorBits = clOptions->vectorBits;
  o.int8Dot = clOptions->int8Dot;
  o.attentionKernel = clOptions->attentionKernel;
  o.prefillActivations = clOptions->prefillActivations;
  o.prefillRows = clOptions->prefillRows;
  o.optLevel = clOptions->optLevel;
  o.runtimeDir = clOptions->runtimeDir;
  o.linker = clOptions->linker;
  return o;
}

void quench::registerCPUTargetBackend() {
  registerTargetBackend(
      "cpu",
      "native code for the host CPU (its real features) or --cpu=NAME: "
      "AVX2/FMA, AVX-512, VNNI kernels",
      [] { return createCPUTargetBackend(getCPUTargetOptionsFromCL()); });
}
