//===- quench-compile.cpp - model to object / library / executable --------===//
//
// quench-compile MODEL.onnx|MODEL.mlir|MODEL.gguf -o OUT
//                --emit=mlir|llvm|obj|lib|exe|gguf
//
// The driver parses its command line and sequences library calls: import
// (lib/Frontend), the shared front pipeline's stages (lib/Pipelines, with
// calibration from lib/Calibration) and the target backend's (lib/Target,
// chosen by --target), then the backend's LLVM IR, object and artifact.
// Option groups for quantization, calibration and the targets are
// registered by those libraries. Every output is written to a temporary
// file and renamed into place, so a failure leaves no partial output; out
// of memory in any stage is one error naming the stage (OutOfMemory.h).
//
// Built a second time with QUENCH_MPI as quench-compile-mpi (when CMake
// finds MPI): `mpirun -np N quench-compile-mpi ...` runs the same compile
// in N processes that split calibration by samples and weight quantization
// by layers (docs/scaling.md, "Beyond one machine"); rank 0 alone prints
// and writes the outputs, the others stop after the quantize stage.
//
//===----------------------------------------------------------------------===//

#include "SizeReport.h"
#ifdef QUENCH_MPI
#include "MPICommunicator.h"
#endif

#include "quench/Frontend/GGUF/GGUFExport.h"
#include "quench/Frontend/GGUF/GGUFImporter.h"
#include "quench/Calibration/CalibrationStage.h"
#include "quench/Dialect/Quench/IR/ModuleAttrs.h"
#include "quench/Frontend/ModelLoader.h"
#include "quench/Frontend/ONNX/ONNXImporter.h"
#include "quench/InitAllDialects.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Support/DriverUtils.h"
#include "quench/Support/FileUtils.h"
#include "quench/Support/OutOfMemory.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/CPU/ModelABI.h"
#include "quench/Target/TargetBackend.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"

#include <cstring>
#include <thread>

using namespace llvm;

static cl::OptionCategory category("quench-compile options");
static cl::opt<std::string> inputPath(
    cl::Positional, cl::desc("<model.onnx|model.mlir>"), cl::cat(category));
static cl::opt<std::string> outputPath(
    "o",
    cl::desc("Output path. --emit=obj writes OUT.o and OUT.h, lib writes "
             "DIR/libNAME.a and OUT.h, exe writes OUT, mlir OUT.mlir, "
             "llvm OUT.ll, ptx OUT.ptx (an extension already there is kept; '-' is "
             "stdout for mlir/llvm)"),
    cl::value_desc("OUT"), cl::cat(category));
enum class Emit { MLIR, LLVM, PTX, Obj, Lib, Exe, GGUF };
static cl::opt<Emit> emit(
    "emit", cl::desc("What to produce (default: exe)"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::MLIR, "mlir",
                          "MLIR after the last stage run (see --stop-after-stage)"),
               clEnumValN(Emit::LLVM, "llvm", "optimized LLVM IR (.ll)"),
               clEnumValN(Emit::PTX, "ptx",
                          "the device code as PTX (.ptx; --target=cuda)"),
               clEnumValN(Emit::Obj, "obj", "object file + C header"),
               clEnumValN(Emit::Lib, "lib", "static library + C header"),
               clEnumValN(Emit::Exe, "exe",
                          "standalone executable (--input NAME=FILE.npy ...; "
                          "run it with --help)"),
               clEnumValN(Emit::GGUF, "gguf",
                          "a GGUF file (llama.cpp) of a model imported from "
                          "GGUF or recognized as a LLaMA decoder, its "
                          "matrices in Quench's --quant codes "
                          "(q4_0/q4_1/q8_0; docs/gguf.md, \"Export\")")),
    cl::cat(category));
static cl::opt<std::string> modelName(
    "name",
    cl::desc("Model name: the prefix of every exported symbol (NAME_run, "
             "NAME_model) and the header's name; a C identifier (default: "
             "from the output file name)"),
    cl::cat(category));
static cl::opt<std::string> entryName(
    "entry",
    cl::desc("For MLIR input: the function to compile (default: the only "
             "public function)"),
    cl::cat(category));
static cl::list<std::string>
    shapes("shape",
           cl::desc("For ONNX input: fix an input's shape, e.g. --shape "
                    "tokens=1x32 (repeatable)"),
           cl::value_desc("NAME=DxD..."), cl::cat(category));
static cl::opt<uint64_t> maxTensorBytes(
    "max-tensor-bytes",
    cl::desc("Largest statically shaped tensor an ONNX model may declare, in "
             "bytes (default 2^36 = 64 GiB)"),
    cl::init(quench::ONNXImportOptions::kDefaultMaxTensorBytes),
    cl::cat(category));
enum class GGUFActivations { Float, Int16 };
static cl::opt<GGUFActivations> ggufActivations(
    "gguf-activations",
    cl::desc("Activations of a GGUF model's block-quantized products "
             "(default: float)"),
    cl::init(GGUFActivations::Float),
    cl::values(
        clEnumValN(GGUFActivations::Float, "float",
                   "exact: the float model with every weight dequantized by "
                   "its type's definition (docs/gguf.md)"),
        clEnumValN(GGUFActivations::Int16, "int16",
                   "faster decode on VNNI hosts: 4- and 8-bit codes "
                   "multiplied with the activations quantized to int16 per "
                   "group, as --int8-dot does for Quench's own schemes "
                   "(error at most max|x|/65534 per activation)")),
    cl::cat(category));
static cl::opt<bool> noPrepare(
    "no-prepare", cl::desc("Skip the prepare stage (quench-prepare)"),
    cl::cat(category));
static cl::opt<bool> fuseAttention(
    "fuse-attention",
    cl::desc("Form quench.attention from the exported attention chains "
             "(the attention stage, quench-fuse-attention; "
             "--fuse-attention=0 keeps the chains as exported)"),
    cl::init(true), cl::cat(category));
static cl::opt<bool> fuseLinears(
    "fuse-linears",
    cl::desc("Fuse linears that read the same input (q/k/v, gate/up) into "
             "one product (the fuse-linears stage, "
             "quench-fuse-parallel-linears; --fuse-linears=0 keeps them "
             "apart)"),
    cl::init(true), cl::cat(category));
static cl::opt<std::string> stopAfter(
    "stop-after-stage",
    cl::desc("Stop after this pipeline stage (implies --emit=mlir); see "
             "--list-stages"),
    cl::value_desc("STAGE"), cl::cat(category));
static cl::opt<std::string> dumpStages(
    "dump-stages",
    cl::desc("Write the IR after every stage to DIR/NN-STAGE.mlir, and the "
             "LLVM IR before and after optimization to DIR/NN-llvm*.ll"),
    cl::value_desc("DIR"), cl::cat(category));
static cl::opt<bool> listStages(
    "list-stages", cl::desc("Print the pipeline's stages and exit"),
    cl::cat(category));
static cl::opt<bool> listTargets(
    "list-targets", cl::desc("Print the registered targets and exit"),
    cl::cat(category));
static cl::opt<bool> timePhases(
    "time", cl::desc("Print the time of every phase and the peak memory to "
                     "stderr"),
    cl::cat(category));
static cl::opt<std::string> reportPath(
    "report",
    cl::desc("Write the size report (weight bytes per layer before/after "
             "quantization, the artifact's size) to FILE.json; the table is "
             "printed on stdout whenever --quant is not none"),
    cl::value_desc("FILE.json"),
    cl::cat(quench::getQuantizationCLOptionCategory()));

#ifdef QUENCH_MPI
static const char *toolName = "quench-compile-mpi";
#else
static const char *toolName = "quench-compile";
#endif
/// Whether this process reports errors: the only one, or rank 0 of several
/// (the others meet the same errors, or theirs reach rank 0 through the
/// library's agreement points).
static bool printErrors = true;
static int fail(const Twine &msg) {
  if (printErrors)
    WithColor::error(errs(), toolName) << msg << "\n";
  return 1;
}

namespace {
/// What one process of quench-compile-mpi reports to rank 0 at the end.
struct ProcessSummary {
  uint64_t peakRSS = 0, bytesSent = 0, bytesReceived = 0;
};
} // namespace

int main(int argc, char **argv) {
#ifdef QUENCH_MPI
  // MPI first (it may rewrite the command line); MPI_Finalize when main
  // returns.
  quench::MPICommunicator mpi(&argc, &argv);
  quench::Communicator *comm = &mpi;
#else
  quench::Communicator *comm = nullptr;
#endif
  bool root = !comm || comm->rank() == 0;
  printErrors = root;
  InitLLVM y(argc, argv);
  quench::installOutOfMemoryHandler(toolName);
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  quench::registerAllTargetCLOptions();
  quench::registerQuantizationCLOptions();
  quench::calib::registerCalibrationCLOptions();
  quench::registerGenerationCLOptions();
  cl::HideUnrelatedOptions({&category, &quench::getTargetCLOptionCategory(),
                            &quench::getQuantizationCLOptionCategory(),
                            &quench::getGenerationCLOptionCategory(),
                            &quench::calib::getCalibrationCLOptionCategory()});
  cl::ParseCommandLineOptions(
      argc, argv,
      "quench-compile: compile an ONNX or quench MLIR model into an object "
      "file, a static library or a standalone executable\n\n"
      "  quench-compile model.onnx -o model            # ./model --help\n"
      "  quench-compile model.onnx -o out/m --emit=obj # out/m.o + out/m.h\n"
      "  quench-compile model.onnx -o out/m --emit=lib # out/libm.a + "
      "out/m.h\n"
      "  quench-compile model.onnx -o - --emit=mlir --stop-after-stage=to-linalg\n");
  quench::registerAllTargetBackends();
  if (!root && (listTargets || listStages))
    return 0;
  if (listTargets) {
    for (const auto &t : quench::getRegisteredTargetBackends())
      outs() << format("%-6s ", t.name.c_str()) << t.description << "\n";
    return 0;
  }

  // The target first: a bad --cpu should fail before a long import.
  auto backend = quench::createTargetBackendFromCLOptions();
  if (!backend)
    return fail(toString(backend.takeError()));
  auto weightQuant = quench::getQuantizationOptionsFromCL();
  if (!weightQuant)
    return fail(toString(weightQuant.takeError()));
  auto prune = quench::getPruneOptionsFromCL();
  if (!prune)
    return fail(toString(prune.takeError()));
  auto rotation = quench::getRotationOptionsFromCL();
  if (!rotation)
    return fail(toString(rotation.takeError()));
  auto calibRequest = quench::calib::getCalibrationRequestFromCL();
  if (!calibRequest)
    return fail(toString(calibRequest.takeError()));
  auto kvRequest = quench::getKVCacheRequestFromCL();
  if (!kvRequest)
    return fail(toString(kvRequest.takeError()));

  // The cores of this machine are shared by the processes on it: each
  // calibrates and quantizes on its share unless told otherwise.
  int threadsPerProcess = 0;
#ifdef QUENCH_MPI
  threadsPerProcess =
      std::max<int>(1, static_cast<int>(std::thread::hardware_concurrency()) /
                           mpi.localSize());
  if (*weightQuant && (*weightQuant)->threads == 0)
    (*weightQuant)->threads = threadsPerProcess;
#endif
  if (*weightQuant) {
    (*weightQuant)->comm = comm;
    // Long quantizations say how far they are (quench/Support/Progress.h:
    // nothing for compiles under a second).
    (*weightQuant)->progress = true;
  }

  quench::SizeReport report;
  quench::FrontPipelineOptions front;
  front.prepare = !noPrepare;
  front.fuseAttention = fuseAttention;
  front.fuseLinears = fuseLinears;
  front.weightQuant = *weightQuant;
  front.rotate = *rotation;
  front.quantReport = &report.layers;
  front.prune = *prune;
  if (front.prune && front.prune->threads == 0)
    front.prune->threads = threadsPerProcess;
  if (front.prune)
    front.prune->progress = comm ? comm->rank() == 0 : true;
  front.pruneReport = &report.pruned;
  // N:M pruned layers in compressed storage where the target has sparse
  // kernels (docs/sparsity.md, "Compressed storage").
  if (front.prune) {
    StringRef storage = quench::getSparseStorageFromCL();
    if (storage != "dense") {
      if ((*backend)->supportsCompressedSparseWeights()) {
        front.packSparse = quench::QuenchPackSparseWeightsOptions();
        // Unstructured 8-bit layers as bitmasks where the kernel expands
        // them (docs/sparsity.md, "Unstructured storage").
        front.packSparse->bitmask = (*backend)->supportsBitmaskSparseWeights();
      } else if (storage == "compressed")
        return fail("--sparse-storage=compressed: the " +
                    (*backend)->getDisplayName().str() +
                    " target has no sparse kernels with these options "
                    "(use --sparse-storage=dense or auto)");
    }
  }
  front.packReport = &report.packed;
  quench::calib::CalibrationStage calibration;
  if (*calibRequest) {
    calibration.request = **calibRequest;
    calibration.request.modelPath = inputPath;
    calibration.request.shapes.assign(shapes.begin(), shapes.end());
    calibration.request.entryName = entryName;
    if (*rotation)
      calibration.request.modelVariant =
          "rotate=" + (*rotation)->rotation +
          ",seed=" + std::to_string((*rotation)->seed) +
          ((*rotation)->online ? ",online" : "");
    // The instrumented model runs on this machine (the CPU options apply).
    calibration.request.cpu = quench::getCPUTargetOptionsFromCL();
    calibration.request.comm = comm;
    // Samples of a decoder with past may give only the token ids.
    if (*kvRequest) {
      const quench::QuenchKVCacheOptions &kv = (*kvRequest)->options;
      calibration.request.generation = quench::calib::GenerationInputs{
          kv.past, kv.inputIds, kv.attentionMask, kv.positionIds};
    }
    if (calibration.request.threads == 0)
      calibration.request.threads = threadsPerProcess;
    quench::calib::addCalibrationStage(front, calibration);
  }
  // The entry (its signature) exists once the model is loaded; the stage
  // runs later.
  quench::ModelEntry *preparedEntry = nullptr;
  if (*kvRequest) {
    quench::KVCacheRequest request = **kvRequest;
    std::string target = (*backend)->supportsInPlaceInputs()
                             ? std::string()
                             : (*backend)->getDisplayName().str();
    front.kvCache = [request, target,
                     &preparedEntry](mlir::ModuleOp m) -> mlir::LogicalResult {
      if (Error e = quench::applyKVCacheToEntry(
              m, *preparedEntry, request.options, request.required, target,
              request.derive))
        return mlir::failure(fail(toString(std::move(e))) != 0);
      return mlir::success();
    };
  }
  std::vector<quench::PipelineStage> stages =
      quench::getFrontPipelineStages(front);
  (*backend)->appendCodegenStages(stages);
  if (listStages) {
    std::vector<std::pair<std::string, std::string>> all;
    for (const quench::PipelineStage &s : stages)
      all.push_back({s.name, s.description});
    for (const auto &s : (*backend)->describeSerialization())
      all.push_back(s);
    for (const auto &[stage, description] : all)
      outs() << format("%-10s ", stage.c_str()) << description << "\n";
    return 0;
  }
  if (inputPath.empty())
    return fail("no input model given (see --help)");
  if (outputPath.empty())
    return fail("no output given: use -o OUT (see --help)");
  if (!stopAfter.empty()) {
    if (!llvm::any_of(stages, [](const quench::PipelineStage &s) {
          return s.name == stopAfter;
        }))
      return fail("unknown stage '" + stopAfter +
                  "'; stages: " + quench::getStageNames(stages));
    emit = Emit::MLIR;
  }
  // A missing output directory fails now, not after a long compile.
  if (outputPath != "-") {
    SmallString<256> dir(sys::path::parent_path(outputPath));
    if (dir.empty())
      dir = ".";
    if (!sys::fs::is_directory(dir))
      return fail("cannot write '" + outputPath + "': directory '" + dir +
                  "' does not exist");
  }
  if (emit == Emit::GGUF) {
    // A GGUF source's export writes Quench's codes into the source file's
    // tensors; what changes other weights (norm weights, earlier layers) is
    // not carried. Other models are written from the module (AWQ's scales
    // already folded into its norm and projection weights).
    bool fromGGUF = !inputPath.empty() && quench::isGGUFFile(inputPath);
    if (*rotation && fromGGUF)
      return fail("--emit=gguf does not carry --rotate's rotation (it "
                  "changes the norm and embedding weights)");
    if (*rotation && (*rotation)->online)
      return fail("--emit=gguf does not carry --rotate-online's run-time "
                  "Hadamard products (llama.cpp's llama graph has none)");
    if (*prune)
      return fail("--emit=gguf does not export pruned layers (--sparsity)");
    if (*weightQuant) {
      StringRef algo = (*weightQuant)->algo;
      if (algo.starts_with("awq") && fromGGUF)
        return fail("--emit=gguf does not carry --algo=" + algo.str() +
                    "'s scale migration into the preceding norm weights "
                    "(rtn, gptq and hqq codes are exported)");
      if ((*weightQuant)->activations != "none")
        return fail("--emit=gguf exports weight-only schemes (--quant=" +
                    quench::getQuantPresetFromCL().str() +
                    " quantizes activations)");
    }
    if (calibration.request.smoothAlpha || calibration.request.smoothAuto)
      return fail("--emit=gguf does not carry --smooth's scale migration");
    if (!stopAfter.empty())
      return fail("--emit=gguf runs the stages up to quantization; "
                  "--stop-after-stage does not apply");
  }
  if (outputPath == "-" && emit != Emit::MLIR && emit != Emit::LLVM &&
      emit != Emit::PTX)
    return fail("-o - (stdout) is only for --emit=mlir, llvm and ptx");
  // Outputs never replace the model, nor a device node or FIFO
  // (docs/reliability.md): checked for every file the emit kind writes
  // (the CPU backend's names: OUT.mlir/.ll/.ptx; OUT; OUT.o and OUT.h;
  // libOUT.a and OUT.h) and the report.
  // The files the emit kind writes (also removed if the report fails).
  std::vector<std::string> outputs;
  {
    std::vector<std::string> inputs = {inputPath};
    if (outputPath != "-") {
      switch (emit) {
      case Emit::MLIR:
        outputs = {quench::withExtension(outputPath, ".mlir")};
        break;
      case Emit::LLVM:
        outputs = {quench::withExtension(outputPath, ".ll")};
        break;
      case Emit::PTX:
        outputs = {quench::withExtension(outputPath, ".ptx")};
        break;
      case Emit::Exe:
      case Emit::GGUF:
        outputs = {outputPath};
        break;
      case Emit::Obj: {
        std::string base = quench::withoutExtension(outputPath, ".o");
        outputs = {base + ".o", base + ".h"};
        break;
      }
      case Emit::Lib: {
        std::string base = quench::withoutExtension(outputPath, ".a");
        StringRef dir = sys::path::parent_path(base);
        StringRef stem = sys::path::filename(base);
        SmallString<256> lib(dir), header(dir);
        sys::path::append(lib, (stem.starts_with("lib") ? "" : "lib") +
                                   stem.str() + ".a");
        sys::path::append(header, (stem.starts_with("lib") ? stem.drop_front(3)
                                                           : stem) +
                                      ".h");
        outputs = {std::string(lib), std::string(header)};
        break;
      }
      }
    }
    // Text (MLIR, LLVM IR, PTX, the report) may go into /dev/null or a
    // FIFO; binaries are linked and renamed into place.
    bool text = emit == Emit::MLIR || emit == Emit::LLVM || emit == Emit::PTX;
    for (const std::string &out : outputs)
      if (std::string err = quench::checkOutputPath(out, inputs, text);
          !err.empty())
        return fail(err);
    if (!reportPath.empty()) {
      SmallString<256> dir(sys::path::parent_path(reportPath));
      if (dir.empty())
        dir = ".";
      if (!sys::fs::is_directory(dir))
        return fail("cannot write the report '" + reportPath +
                    "': directory '" + dir + "' does not exist");
      if (std::string err = quench::checkOutputPath(reportPath, inputs,
                                                    /*streamable=*/true);
          !err.empty())
        return fail(err);
    }
  }
  quench::PhaseTimer timer(timePhases && root);
  // The processes other than rank 0 stop after the last stage they share
  // (or earlier, with --stop-after-stage), then report to rank 0.
  std::string lastShared;
  for (const quench::PipelineStage &s : stages) {
    if (s.name == "calibrate" || s.name == "smooth" || s.name == "quantize")
      lastShared = s.name;
    if (s.name == stopAfter)
      break;
  }
  auto reportToRoot = [&](int rc) {
    if (!comm || comm->size() == 1 || rc != 0)
      return rc;
    ProcessSummary mine{timer.peakResidentSet(), comm->bytesSent(),
                        comm->bytesReceived()};
    if (!root) {
      comm->send(
          0, quench::Communicator::kSummaryTag,
          std::string(reinterpret_cast<const char *>(&mine), sizeof mine));
      comm->flushSends();
      return rc;
    }
    std::vector<ProcessSummary> all(comm->size());
    all[0] = mine;
    for (int i = 1; i < comm->size(); ++i) {
      int source = 0;
      std::string bytes;
      comm->receive(quench::Communicator::kSummaryTag, source, bytes,
                    /*wait=*/true);
      if (bytes.size() == sizeof(ProcessSummary))
        std::memcpy(&all[source], bytes.data(), sizeof(ProcessSummary));
    }
    for (size_t i = 0; i < all.size(); ++i)
      errs() << toolName << ": rank " << i << "/" << all.size()
             << format(": peak RSS %.0f MB, sent %.1f MB, received %.1f MB",
                       all[i].peakRSS / 1048576.0, all[i].bytesSent / 1048576.0,
                       all[i].bytesReceived / 1048576.0)
             << "\n";
    return rc;
  };
  if (!root && lastShared.empty())
    return reportToRoot(0);
  if (!dumpStages.empty() && root) {
    if (std::error_code ec = sys::fs::create_directories(dumpStages))
      return fail("cannot create '" + dumpStages + "': " + ec.message());
  }
  auto name = quench::resolveModelName(
      modelName, outputPath == "-" ? inputPath : outputPath);
  if (!name)
    return fail(toString(name.takeError()));

  mlir::DialectRegistry registry;
  quench::registerAllDialects(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  quench::registerAllPasses();
  mlir::MLIRContext context(registry);
  quench::installDiagnosticPrinter(context, toolName);
  if (!root)
    context.getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });

  // 1. Load.
  // The out-of-memory estimate: the input file is held in memory (inline
  // weights), external data is streamed; after import, the module's
  // constants say how large the largest weight is.
  uint64_t inputBytes = 0;
  if (!sys::fs::file_size(inputPath, inputBytes))
    quench::setModelWeights({inputBytes, inputBytes, 0});
  timer.start("import");
  mlir::OwningOpRef<mlir::ModuleOp> module =
      quench::loadModelFile(inputPath, context, shapes, maxTensorBytes);
  if (!module)
    return 1;
  // GGUF models promise float activations (the importer marks them);
  // --gguf-activations=int16 lets the dequant kernel take its int16 form.
  if (ggufActivations == GGUFActivations::Int16)
    (*module)->removeAttr(quench::kFloatActivationsAttrName);
  quench::ConstantBytes constants = quench::measureConstants(*module);
  quench::setModelWeights({(uint64_t)constants.total, inputBytes,
                           (uint64_t)constants.largest});

  // 2. The entry function and its C signature.
  auto entry = quench::prepareModelEntry(*module, entryName, *name);
  if (!entry)
    return fail(toString(entry.takeError()));
  calibration.entry = entry->graphFunc;
  calibration.signature = &entry->signature;
  preparedEntry = &*entry;

  // 3. The pipeline, stage by stage.
  quench::StageDumper dumper(root ? std::string(dumpStages) : std::string());
  auto dump = [&](StringRef stage, function_ref<void(raw_ostream &)> print) {
    std::string err = dumper.dump(stage, print);
    return err.empty() ? 0 : fail(err);
  };
  if (dump("input.mlir", [&](raw_ostream &os) { module->print(os); }))
    return 1;
  report.model = inputPath;
  report.quant = quench::getQuantPresetFromCL().str();
  quench::updateSizeReport(report, "input", *module);
  quench::StageRunOptions run;
  run.stopAfter = root ? std::string(stopAfter) : lastShared;
  if (emit == Emit::GGUF)
    run.stopAfter = llvm::any_of(stages, [](const quench::PipelineStage &s) {
                      return s.name == "quantize";
                    })
                        ? "quantize"
                        : "prepare";
  run.applyPassManagerCLOptions = true;
  run.beforeStage = [&](const quench::PipelineStage &s) {
    timer.start(s.name);
  };
  run.afterStage = [&](const quench::PipelineStage &s) -> mlir::LogicalResult {
    quench::updateSizeReport(report, s.name, *module);
    if (s.name == "to-linalg" &&
        failed(quench::verifyNoQuenchOpsLeft(*module,
                                             (*backend)->getDisplayName())))
      return mlir::failure();
    // Calibration only reads the module.
    if (s.name == "calibrate")
      return mlir::success();
    return mlir::success(
        !dump(s.name + ".mlir", [&](raw_ostream &os) { module->print(os); }));
  };
  if (failed(quench::runPipelineStages(*module, stages, run)))
    return 1;
  if (!root)
    return reportToRoot(0);
  // Printed (and written with --report) once the artifact exists.
  auto finishReport = [&](StringRef artifact) -> int {
    const bool compressed = front.weightQuant || front.prune;
    if (!compressed && reportPath.empty())
      return 0;
    std::string err = quench::finishSizeReport(
        report, artifact, compressed && outputPath != "-", reportPath,
        outs());
    if (err.empty())
      return 0;
    // The compile failed as a whole: no artifact without its report.
    for (const std::string &out : outputs)
      if (sys::fs::is_regular_file(out))
        sys::fs::remove(out);
    return fail(err);
  };

  if (emit == Emit::MLIR) {
    timer.start("write");
    std::string err;
    std::string path = quench::writeTextOutput(
        outputPath, ".mlir", [&](raw_ostream &os) { module->print(os); }, err);
    timer.finish();
    return reportToRoot(!err.empty() ? fail(err) : finishReport(path));
  }

  if (emit == Emit::GGUF) {
    timer.start("write");
    bool ok = succeeded(quench::exportGGUF(*module, inputPath, outputPath));
    timer.finish();
    return reportToRoot(ok ? finishReport(outputPath) : 1);
  }

  if (emit == Emit::PTX) {
    timer.start("write");
    auto path = (*backend)->writeDeviceAssembly(*module, outputPath);
    timer.finish();
    if (!path)
      return reportToRoot(fail(toString(path.takeError())));
    return reportToRoot(0);
  }

  // 4. LLVM IR with the model's C ABI, object code, the artifact.
  quench::ModelABIRequest abi;
  abi.signature = &entry->signature;
  abi.entryCInterface = quench::cInterfaceName(entry->graphFunc);
  abi.withMain = emit == Emit::Exe;
  abi.sourcePath = inputPath;
  using Kind = quench::ArtifactKind;
  Kind kind = emit == Emit::LLVM  ? Kind::LLVMIR
              : emit == Emit::Obj ? Kind::Object
              : emit == Emit::Lib ? Kind::StaticLibrary
                                  : Kind::Executable;
  auto artifact = quench::serializeModel(**backend, module, abi, kind,
                                         outputPath, dumper, timer);
  timer.finish();
  if (!artifact)
    return fail(toString(artifact.takeError()));
  return reportToRoot(finishReport(*artifact));
}
