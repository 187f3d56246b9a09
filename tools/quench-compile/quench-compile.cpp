//===- quench-compile.cpp - model to object / library / executable --------===//
//
// quench-compile MODEL.onnx|MODEL.mlir -o OUT --emit=mlir|llvm|obj|lib|exe
//
// The driver only sequences library calls: import (lib/Frontend), the
// registered CPU pipeline's named stages (lib/Pipelines, the same passes as
// `quench-opt --quench-cpu-pipeline`), translation to LLVM IR, the model's C
// ABI and code generation in-process (lib/Target). Only linking an
// executable runs an external program (the system's C compiler driver).
// Every output is written to a temporary file and renamed into place, so a
// failure leaves no partial output.
//
//===----------------------------------------------------------------------===//

#include "SizeReport.h"

#include "quench/Calibration/Calibrate.h"
#include "quench/Frontend/ONNX/ONNXImporter.h"
#include "quench/InitAllDialects.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Support/FileUtils.h"
#include "quench/Target/CPUTarget.h"
#include "quench/Target/ModelABI.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Target/TargetMachine.h"

#include <chrono>
#include <sys/resource.h>

using namespace llvm;

static cl::OptionCategory category("quench-compile options");

static cl::opt<std::string> inputPath(cl::Positional,
                                      cl::desc("<model.onnx|model.mlir>"),
                                      cl::cat(category));
static cl::opt<std::string> outputPath(
    "o",
    cl::desc("Output path. --emit=obj writes OUT.o and OUT.h, lib writes "
             "DIR/libNAME.a and OUT.h, exe writes OUT, mlir OUT.mlir, "
             "llvm OUT.ll (an extension already there is kept; '-' is "
             "stdout for mlir/llvm)"),
    cl::value_desc("OUT"), cl::cat(category));

enum class Emit { MLIR, LLVM, Obj, Lib, Exe };
static cl::opt<Emit> emit(
    "emit", cl::desc("What to produce (default: exe)"), cl::init(Emit::Exe),
    cl::values(clEnumValN(Emit::MLIR, "mlir",
                          "MLIR after the last stage run (see --stop-after-stage)"),
               clEnumValN(Emit::LLVM, "llvm", "optimized LLVM IR (.ll)"),
               clEnumValN(Emit::Obj, "obj", "object file + C header"),
               clEnumValN(Emit::Lib, "lib", "static library + C header"),
               clEnumValN(Emit::Exe, "exe",
                          "standalone executable (--input NAME=FILE.npy ...; "
                          "run it with --help)")),
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

static cl::opt<std::string> target("target",
                                   cl::desc("Target: cpu (default)"),
                                   cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    cpu("cpu",
        cl::desc("CPU to generate code for: 'host' (default; the features "
                 "this machine really has) or an LLVM CPU name such as "
                 "x86-64-v3, skylake-avx512, znver4 (portable objects)"),
        cl::init("host"), cl::cat(category));
static cl::opt<std::string>
    cpuFeatures("cpu-features",
                cl::desc("Extra CPU features, e.g. +avx2,+fma,-avx512f"),
                cl::value_desc("+f,-g,..."), cl::cat(category));
static cl::opt<unsigned> vectorBits(
    "vector-bits",
    cl::desc("Vector width the code generator targets, in bits (default: "
             "from the CPU: 512 with AVX-512F, 256 with AVX, else 128; 0: "
             "scalar loops)"),
    cl::cat(category));
static cl::opt<bool> int8Dot(
    "int8-dot",
    cl::desc("Use the CPU's integer multiply-add instructions (vpdpbusd with "
             "AVX-VNNI/AVX512-VNNI, else vpmaddwd with AVX2/AVX-512BW) for "
             "int8 x int8 products with constant weights (default: on; "
             "--int8-dot=false keeps the generic contraction)"),
    cl::init(true), cl::cat(category));
static cl::opt<unsigned> optLevel("O",
                                  cl::desc("LLVM optimization level 0-3 "
                                           "(default 3)"),
                                  cl::Prefix, cl::init(3), cl::cat(category));
static cl::opt<bool> noPrepare("no-prepare",
                               cl::desc("Skip the prepare stage "
                                        "(quench-prepare)"),
                               cl::cat(category));

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
static cl::opt<bool> listStages("list-stages",
                                cl::desc("Print the pipeline's stages and "
                                         "exit"),
                                cl::cat(category));
static cl::opt<bool> timePhases(
    "time", cl::desc("Print the time of every phase and the peak memory to "
                     "stderr"),
    cl::cat(category));

static cl::opt<std::string> runtimeDir(
    "runtime-dir",
    cl::desc("Directory holding libquench_runtime.a, for --emit=exe "
             "(default: ../lib next to quench-compile)"),
    cl::value_desc("DIR"), cl::cat(category));
static cl::opt<std::string>
    linker("linker",
           cl::desc("C compiler driver used to link executables (default: "
                    "clang-22, else cc)"),
           cl::value_desc("PATH"), cl::cat(category));

static cl::OptionCategory quantCategory("quench-compile quantization options");
static cl::opt<std::string> quant(
    "quant",
    cl::desc("Weight quantization of the linear layers: none (default), "
             "w8a16 (int8 per output channel, symmetric: the W8A16 of the "
             "founding example), w4a16, w3a16, w2a16 (group-wise, see "
             "--group-size; activations stay float), w8a8 (int8 weights "
             "per channel and int8 activations with static per-tensor "
             "scales: needs calibration, --calib or --calib-cache), "
             "w8a8-dynamic (int8 activations with per-token scales computed "
             "at run time)"),
    cl::init("none"), cl::value_desc("SCHEME"), cl::cat(quantCategory));
static cl::opt<int64_t> groupSize(
    "group-size",
    cl::desc("Input features per quantization group (default: 0 = per "
             "output channel for w8a16, 32 for w4a16/w3a16/w2a16)"),
    cl::init(-1), cl::value_desc("N"), cl::cat(quantCategory));
static cl::opt<bool> asymmetric(
    "asymmetric",
    cl::desc("Asymmetric codes with a zero point per group (default: "
             "symmetric)"),
    cl::cat(quantCategory));
static cl::opt<std::string> scaleType(
    "scale-type", cl::desc("Storage of the scales: f16 (default) or f32"),
    cl::init("f16"), cl::cat(quantCategory));
static cl::opt<bool> quantHead(
    "quant-head",
    cl::desc("Quantize the output projection too (default: true; "
             "--quant-head=false keeps it float)"),
    cl::init(true), cl::cat(quantCategory));
static cl::opt<bool> quantEmbeddings(
    "quant-embeddings",
    cl::desc("Also quantize embedding tables: int8 per row (symmetric, f32 "
             "scales), dequantized after the lookup (default: false)"),
    cl::cat(quantCategory));
static cl::list<std::string> quantExclude(
    "quant-exclude",
    cl::desc("Keep layers whose name (ONNX node name) matches this glob in "
             "float (repeatable)"),
    cl::value_desc("GLOB"), cl::cat(quantCategory));
static cl::opt<std::string> quantRecipe(
    "quant-recipe",
    cl::desc("JSON file of per-layer overrides (docs/quantization.md)"),
    cl::value_desc("FILE"), cl::cat(quantCategory));
static cl::opt<std::string> algo(
    "algo",
    cl::desc("Weight rounding algorithm: rtn (round to nearest, default) or "
             "gptq (GPTQ error compensation; needs calibration statistics, "
             "--calib or --calib-cache)"),
    cl::init("rtn"), cl::value_desc("rtn|gptq"), cl::cat(quantCategory));
static cl::opt<bool> gptqActOrder(
    "gptq-act-order",
    cl::desc("GPTQ: quantize input features by decreasing calibration "
             "energy (default: true; groups stay contiguous, no run-time "
             "cost)"),
    cl::init(true), cl::cat(quantCategory));
static cl::opt<unsigned> quantThreads(
    "quant-threads",
    cl::desc("Threads of the GPTQ numerics (default: 0 = the hardware "
             "concurrency; the result is the same for every count)"),
    cl::init(0), cl::value_desc("N"), cl::cat(quantCategory));
static cl::opt<std::string> reportPath(
    "report",
    cl::desc("Write the size report (weight bytes per layer before/after "
             "quantization, the artifact's size) to FILE.json; the table is "
             "printed on stdout whenever --quant is not none"),
    cl::value_desc("FILE.json"), cl::cat(quantCategory));

static cl::OptionCategory calibCategory("quench-compile calibration options");
static cl::opt<std::string> calibDir(
    "calib",
    cl::desc("Calibrate on the samples in DIR: DIR/<sample>/<input>.npy "
             "(one directory per sample, files named after the graph "
             "inputs) or DIR/<input>.npy (one sample); docs/calibration.md"),
    cl::value_desc("DIR"), cl::cat(calibCategory));
static cl::opt<std::string> calibCache(
    "calib-cache",
    cl::desc("Calibration statistics file: read when it exists and was made "
             "for this model (and, with --calib, these samples), else "
             "written after calibrating"),
    cl::value_desc("FILE"), cl::cat(calibCategory));
static cl::opt<std::string> calibMethod(
    "calib-method",
    cl::desc("Activation range estimator for static quantization: minmax "
             "(default), percentile, mse, entropy"),
    cl::init("minmax"), cl::cat(calibCategory));
static cl::opt<double> calibPercentile(
    "calib-percentile",
    cl::desc("Percentile of |x| for --calib-method=percentile (default "
             "99.99)"),
    cl::init(99.99), cl::cat(calibCategory));
static cl::opt<bool> calibGram(
    "calib-gram",
    cl::desc("Record the Gram matrix X^T X of every linear's input (for "
             "GPTQ; K*K doubles each; default true)"),
    cl::init(true), cl::cat(calibCategory));

static const char *toolName = "quench-compile";

static int fail(const Twine &msg) {
  WithColor::error(errs(), toolName) << msg << "\n";
  return 1;
}

namespace {
/// Prints phase times with --time.
class PhaseTimer {
public:
  void start(StringRef phase) {
    stop();
    current = phase.str();
    begin = std::chrono::steady_clock::now();
  }
  void stop() {
    if (current.empty())
      return;
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             begin)
                   .count();
    total += s;
    if (timePhases)
      errs() << format("time: %-22s %8.3f s\n", current.c_str(), s);
    current.clear();
  }
  void finish() {
    stop();
    if (!timePhases)
      return;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    errs() << format("time: %-22s %8.3f s\n", "total", total)
           << format("peak memory: %.1f MB\n", ru.ru_maxrss / 1024.0);
  }

private:
  std::string current;
  std::chrono::steady_clock::time_point begin;
  double total = 0;
};
} // namespace

/// A location as users read it: `file:line:col` for source files, the
/// node name for imported ONNX nodes ('/blocks.0/Mul' (model.onnx)), empty
/// when unknown.
static std::string locationString(mlir::Location loc) {
  if (auto fl = dyn_cast<mlir::FileLineColLoc>(loc)) {
    if (fl.getLine() == 0)
      return fl.getFilename().str();
    return (fl.getFilename().getValue() + ":" + Twine(fl.getLine()) + ":" +
            Twine(fl.getColumn()))
        .str();
  }
  if (auto nl = dyn_cast<mlir::NameLoc>(loc)) {
    std::string inner = locationString(nl.getChildLoc());
    return "'" + nl.getName().str() + "'" +
           (inner.empty() ? "" : " (" + inner + ")");
  }
  if (auto fused = dyn_cast<mlir::FusedLoc>(loc)) {
    std::string out;
    for (mlir::Location l : fused.getLocations()) {
      std::string part = locationString(l);
      if (!part.empty())
        out += (out.empty() ? "" : ", ") + part;
    }
    return out;
  }
  if (auto cs = dyn_cast<mlir::CallSiteLoc>(loc))
    return locationString(cs.getCallee());
  return "";
}

/// OUT with `ext` appended unless it already ends with it.
static std::string withExtension(StringRef out, StringRef ext) {
  if (out == "-" || out.ends_with(ext))
    return out.str();
  return (out + ext).str();
}

/// The public function to compile.
static FailureOr<mlir::func::FuncOp> findEntry(mlir::ModuleOp module) {
  SmallVector<mlir::func::FuncOp> candidates;
  for (auto f : module.getOps<mlir::func::FuncOp>()) {
    if (!entryName.empty() ? f.getSymName() == entryName
                           : (f.isPublic() && !f.isDeclaration()))
      candidates.push_back(f);
  }
  if (candidates.size() == 1 && !candidates.front().isDeclaration())
    return candidates.front();
  if (!entryName.empty()) {
    fail("the module has no function '" + entryName + "' with a body");
    return failure();
  }
  std::string names;
  for (auto f : candidates)
    names += " @" + f.getSymName().str();
  fail(candidates.empty()
           ? Twine("the module has no public function to compile")
           : Twine("the module has several public functions:") + names +
                 "; choose one with --entry");
  return failure();
}

/// Path of the runtime archive.
static std::string runtimeArchive(const char *argv0) {
  SmallString<256> dir;
  if (!runtimeDir.empty()) {
    dir = runtimeDir;
  } else {
    static int anchor;
    dir = sys::path::parent_path(sys::fs::getMainExecutable(argv0, &anchor));
    sys::path::append(dir, "..", "lib");
  }
  sys::path::append(dir, "libquench_runtime.a");
  return std::string(dir);
}

/// Links `object` and the runtime into the executable `out` (atomically).
static int linkExecutable(StringRef object, StringRef out, const char *argv0) {
  std::string runtime = runtimeArchive(argv0);
  if (!sys::fs::exists(runtime))
    return fail("cannot find the Quench runtime library '" + runtime +
                "' (set --runtime-dir)");
  std::string cc = linker;
  if (cc.empty()) {
    for (StringRef candidate : {"clang-22", "cc", "gcc"})
      if (auto p = sys::findProgramByName(candidate)) {
        cc = *p;
        break;
      }
    if (cc.empty())
      return fail("no C compiler driver found to link the executable (tried "
                  "clang-22, cc, gcc; set --linker)");
  } else if (!sys::fs::can_execute(cc)) {
    if (auto p = sys::findProgramByName(cc))
      cc = *p;
    else
      return fail("linker '" + cc + "' not found");
  }
  SmallString<256> tmp(out);
  tmp += ".tmp-link";
  SmallVector<StringRef> args = {cc,      "-o",  tmp,        object,
                                 runtime, "-lm", "-lpthread"};
  std::string errMsg;
  SmallString<128> log;
  int logFd;
  if (sys::fs::createTemporaryFile("quench-link", "log", logFd, log))
    return fail("cannot create a temporary file");
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
    return fail("linking the executable with '" + cc + "' failed" +
                (errMsg.empty() ? "" : ": " + errMsg) +
                (detail.empty() ? "" : ":\n" + detail));
  }
  if (std::error_code ec = sys::fs::rename(tmp, out)) {
    sys::fs::remove(tmp);
    return fail("cannot write '" + out + "': " + ec.message());
  }
  return 0;
}

/// The calibration statistics for --calib / --calib-cache: read from the
/// cache when it was made for this model (and, with --calib, for these
/// samples), else computed by running the prepared float model `module`
/// (entry `entry`, C signature `sig`) on the samples and written to the
/// cache. Fails with one message; warnings and notes go to stderr.
static FailureOr<quench::calib::CalibrationStats>
obtainCalibration(mlir::ModuleOp module, StringRef entry,
                  const quench::ModelSignature &sig,
                  const quench::CPUTarget &cpuTarget, unsigned vectorBits) {
  namespace qc = quench::calib;
  auto modelSum = qc::checksumFile(inputPath);
  if (!modelSum) {
    fail(toString(modelSum.takeError()));
    return failure();
  }
  // The statistics depend on the model file and on the shapes it was
  // compiled with.
  std::string modelKey = *modelSum;
  for (const std::string &s : shapes)
    modelKey += ";shape=" + s;
  if (!entryName.empty())
    modelKey += ";entry=" + entryName;

  std::vector<qc::Sample> samples;
  std::string dataKey;
  if (!calibDir.empty()) {
    auto listed = qc::listSamples(calibDir, sig);
    if (!listed) {
      fail(toString(listed.takeError()));
      return failure();
    }
    samples = std::move(*listed);
    auto sum = qc::checksumSamples(samples);
    if (!sum) {
      fail(toString(sum.takeError()));
      return failure();
    }
    dataKey = *sum + (calibGram ? ";gram" : "");
  }

  if (!calibCache.empty() && sys::fs::exists(calibCache)) {
    qc::CalibrationStats cached;
    std::string why = qc::readCache(calibCache, cached);
    bool unreadable = !why.empty();
    if (why.empty() && cached.modelChecksum != modelKey)
      why = "calibration cache '" + calibCache +
            "' was made for another model (or other --shape options)";
    if (why.empty() && !calibDir.empty() && cached.dataChecksum != dataKey)
      why = "the samples in '" + calibDir + "' differ from those '" +
            calibCache + "' was made from";
    if (why.empty()) {
      WithColor::note(errs(), toolName)
          << "using the calibration statistics in '" << calibCache << "' ("
          << cached.samples << " sample" << (cached.samples == 1 ? "" : "s")
          << ")\n";
      return cached;
    }
    if (calibDir.empty()) {
      fail(unreadable ? why : why + "; give --calib=DIR to recalibrate");
      return failure();
    }
    WithColor::note(errs(), toolName) << why << "; recalibrating\n";
  } else if (calibDir.empty()) {
    fail("calibration cache '" + calibCache +
         "' does not exist; give --calib=DIR to create it");
    return failure();
  }

  qc::CalibrateOptions opts;
  opts.gram = calibGram;
  opts.target = cpuTarget;
  opts.vectorBits = vectorBits;
  auto stats = qc::calibrate(module, entry, sig, samples, opts);
  if (!stats) {
    fail(toString(stats.takeError()));
    return failure();
  }
  stats->modelChecksum = modelKey;
  stats->dataChecksum = dataKey;
  if (!calibCache.empty()) {
    std::string err = qc::writeCache(calibCache, *stats);
    if (!err.empty()) {
      fail(err);
      return failure();
    }
  }
  return std::move(*stats);
}

int main(int argc, char **argv) {
  InitLLVM y(argc, argv);
  mlir::registerPassManagerCLOptions();
  mlir::registerDefaultTimingManagerCLOptions();
  cl::HideUnrelatedOptions({&category, &quantCategory, &calibCategory});
  cl::ParseCommandLineOptions(
      argc, argv,
      "quench-compile: compile an ONNX or quench MLIR model into an object "
      "file, a static library or a standalone executable for the CPU\n\n"
      "  quench-compile model.onnx -o model            # ./model --help\n"
      "  quench-compile model.onnx -o out/m --emit=obj # out/m.o + out/m.h\n"
      "  quench-compile model.onnx -o out/m --emit=lib # out/libm.a + "
      "out/m.h\n"
      "  quench-compile model.onnx -o - --emit=mlir --stop-after-stage=to-linalg\n");

  // Resolve the target first: a bad --cpu should fail before a long import,
  // and the pipeline's vector width follows the target's registers.
  auto cpuTarget = quench::resolveCPUTarget(cpu, cpuFeatures);
  if (!cpuTarget)
    return fail(toString(cpuTarget.takeError()));
  quench::CPUPipelineOptions pipelineOpts;
  pipelineOpts.prepare = !noPrepare;
  pipelineOpts.vectorBits = vectorBits.getNumOccurrences()
                                ? unsigned(vectorBits)
                                : quench::getPreferredVectorBits(*cpuTarget);
  pipelineOpts.codeLookup = pipelineOpts.vectorBits == 512 &&
                            quench::hasCPUFeature(*cpuTarget, "avx512f");
  if (int8Dot)
    pipelineOpts.int8Dot = quench::selectInt8DotProduct(
        pipelineOpts.vectorBits, [&](StringRef feature) {
          return quench::hasCPUFeature(*cpuTarget, feature);
        });
  if (std::string err =
          quench::parseQuantPreset(quant, groupSize, pipelineOpts.weightQuant);
      !err.empty())
    return fail(err);
  if (!pipelineOpts.weightQuant &&
      (asymmetric || !quantExclude.empty() || !quantRecipe.empty() ||
       groupSize.getNumOccurrences() || algo.getNumOccurrences() ||
       quantEmbeddings))
    return fail("--group-size, --asymmetric, --quant-exclude, --quant-recipe, "
                "--quant-embeddings and --algo need --quant (e.g. "
                "--quant=w4a16)");
  if (algo != "rtn" && algo != "gptq")
    return fail("--algo must be rtn or gptq, got '" + algo + "'");
  if (pipelineOpts.weightQuant) {
    quench::WeightQuantOptions &q = *pipelineOpts.weightQuant;
    q.symmetric = !asymmetric;
    q.scaleType = scaleType;
    q.quantizeHead = quantHead;
    q.quantizeEmbeddings = quantEmbeddings;
    q.exclude.assign(quantExclude.begin(), quantExclude.end());
    q.recipe = quantRecipe;
    q.algo = algo;
    q.gptqActOrder = gptqActOrder;
    q.threads = quantThreads;
  }
  std::optional<quench::calib::RangeMethod> rangeMethod =
      quench::calib::parseRangeMethod(calibMethod);
  if (!rangeMethod)
    return fail("unknown --calib-method '" + calibMethod +
                "': use minmax, percentile, mse or entropy");
  if (!(calibPercentile > 0 && calibPercentile <= 100))
    return fail("--calib-percentile must be in (0, 100]");
  std::vector<quench::PipelineStage> stages =
      quench::getCPUPipelineStages(pipelineOpts);
  if (listStages) {
    for (const quench::PipelineStage &s : stages)
      outs() << format("%-10s ", s.name.c_str()) << s.description << "\n";
    outs() << format("%-10s ", "llvm")
           << "translation to LLVM IR, the model's C ABI, LLVM -O"
           << optLevel << "\n"
           << format("%-10s ", "codegen-obj")
           << "object code for the target CPU (in-process)\n";
    return 0;
  }
  if (inputPath.empty())
    return fail("no input model given (see --help)");
  if (outputPath.empty())
    return fail("no output given: use -o OUT (see --help)");
  if (target != "cpu")
    return fail("unsupported --target '" + target + "': this build supports "
                "'cpu'");
  if (optLevel > 3)
    return fail("-O takes 0, 1, 2 or 3");
  if (!stopAfter.empty()) {
    if (!llvm::any_of(stages, [](const quench::PipelineStage &s) {
          return s.name == stopAfter;
        })) {
      std::string names;
      for (const auto &s : stages)
        names += " " + s.name;
      return fail("unknown stage '" + stopAfter + "'; stages:" + names);
    }
    emit = Emit::MLIR;
  }
  if (outputPath == "-" && emit != Emit::MLIR && emit != Emit::LLVM)
    return fail("-o - (stdout) is only for --emit=mlir and --emit=llvm");
  if (!dumpStages.empty()) {
    if (std::error_code ec = sys::fs::create_directories(dumpStages))
      return fail("cannot create '" + dumpStages + "': " + ec.message());
  }

  std::string name = modelName.empty()
                         ? quench::modelNameFromPath(
                               outputPath == "-" ? inputPath : outputPath)
                         : modelName.getValue();
  if (!quench::isValidModelName(name))
    return fail("invalid model name '" + name +
                "': use --name with a C identifier (letters, digits, '_'; "
                "not a C keyword, not starting with 'quench_')");


  mlir::DialectRegistry registry;
  quench::registerAllDialects(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  quench::registerAllPasses();
  mlir::MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  context.getDiagEngine().registerHandler([](mlir::Diagnostic &diag) {
    auto &os = diag.getSeverity() == mlir::DiagnosticSeverity::Error
                   ? WithColor::error(errs(), toolName)
               : diag.getSeverity() == mlir::DiagnosticSeverity::Warning
                   ? WithColor::warning(errs(), toolName)
                   : WithColor::note(errs(), toolName);
    std::string loc = locationString(diag.getLocation());
    if (!loc.empty())
      os << loc << ": ";
    os << diag.str() << "\n";
    for (const mlir::Diagnostic &note : diag.getNotes())
      WithColor::note(errs(), toolName) << note.str() << "\n";
    return mlir::success();
  });

  PhaseTimer timer;
  // 1. Load.
  timer.start("import");
  mlir::OwningOpRef<mlir::ModuleOp> module;
  StringRef ext = sys::path::extension(inputPath);
  if (ext == ".mlir" || ext == ".mlirbc") {
    if (!shapes.empty())
      return fail("--shape applies to ONNX models only");
    context.loadAllAvailableDialects();
    module = mlir::parseSourceFile<mlir::ModuleOp>(inputPath, &context);
    if (!module)
      return 1;
  } else {
    quench::ONNXImportOptions importOpts;
    for (const std::string &s : shapes)
      if (std::string err = quench::parseShapeOverride(s, importOpts);
          !err.empty())
        return fail(err);
    module = quench::importONNXFile(inputPath, &context, importOpts);
    if (!module)
      return 1;
  }

  // 2. The entry function and its C signature.
  FailureOr<mlir::func::FuncOp> entry = findEntry(*module);
  if (failed(entry))
    return 1;
  auto sig = quench::getModelSignature(*entry, name);
  if (!sig)
    return fail(toString(sig.takeError()));
  // A private, model-specific name: `main` stays free for executables and
  // the symbol cannot clash with another model's.
  std::string graphName = name + "_graph";
  if (module->lookupSymbol(graphName))
    return fail("the module already has a symbol '" + graphName + "'");
  if (failed(mlir::SymbolTable::replaceAllSymbolUses(
          *entry, mlir::StringAttr::get(&context, graphName), *module)))
    return fail("cannot rename the entry function");
  entry->setSymName(graphName);
  (*entry)->setAttr("llvm.emit_c_interface", mlir::UnitAttr::get(&context));
  // The names now live in the signature; LLVM has no use for them.
  for (unsigned i = 0; i < entry->getNumArguments(); ++i)
    entry->removeArgAttr(i, "quench.name");
  for (unsigned i = 0; i < entry->getNumResults(); ++i)
    entry->removeResultAttr(
        i, mlir::StringAttr::get(&context, "quench.name"));

  // 3. The pipeline, stage by stage.
  unsigned dumpIndex = 0;
  auto dump = [&](StringRef stage, function_ref<void(raw_ostream &)> print) {
    if (dumpStages.empty())
      return true;
    SmallString<256> path(dumpStages);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%02u-", dumpIndex++);
    sys::path::append(path, prefix + stage.str());
    std::string err = quench::writeFileAtomically(path, [&](raw_ostream &os) {
      print(os);
      return true;
    });
    if (!err.empty()) {
      fail(err);
      return false;
    }
    return true;
  };
  if (!dump("input.mlir", [&](raw_ostream &os) { module->print(os); }))
    return 1;
  quench::SizeReport report;
  report.model = inputPath;
  report.quant = quant;
  report.constantBytesBefore = report.constantBytesAfter =
      quench::constantBytes(*module);
  // Printed (and written with --report) once the artifact exists.
  auto finishReport = [&](StringRef artifact) -> int {
    if (!pipelineOpts.weightQuant && reportPath.empty())
      return 0;
    report.artifact = artifact.str();
    uint64_t size;
    if (!artifact.empty() && artifact != "-" &&
        !sys::fs::file_size(artifact, size))
      report.artifactBytes = static_cast<int64_t>(size);
    if (pipelineOpts.weightQuant && outputPath != "-")
      quench::printSizeReport(report, outs());
    if (reportPath.empty())
      return 0;
    std::string err = quench::writeFileAtomically(
        reportPath, [&](raw_ostream &os) {
          quench::writeSizeReportJSON(report, os);
          return true;
        });
    return err.empty() ? 0 : fail(err);
  };
  // Calibration runs on the prepared float model, before quantization.
  std::optional<quench::calib::CalibrationStats> calibStats;
  bool calibrationPending = !calibDir.empty() || !calibCache.empty();
  for (const quench::PipelineStage &stage : stages) {
    if (calibrationPending &&
        (stage.name == "quantize" || stage.name == "to-linalg")) {
      calibrationPending = false;
      timer.start("calibrate");
      auto stats = obtainCalibration(*module, graphName, *sig, *cpuTarget,
                                     pipelineOpts.vectorBits);
      if (failed(stats))
        return 1;
      calibStats = std::move(*stats);
      if (pipelineOpts.weightQuant) {
        const quench::calib::CalibrationStats *cs = &*calibStats;
        quench::calib::RangeMethod method = *rangeMethod;
        double pct = calibPercentile;
        pipelineOpts.weightQuant->inputRange =
            [cs, method, pct](StringRef layer) -> std::optional<float> {
          const quench::calib::TensorStats *t = cs->findLayerInput(layer.str());
          if (!t)
            return std::nullopt;
          return static_cast<float>(t->range(method, pct, 8));
        };
        pipelineOpts.weightQuant->inputGram =
            [cs](StringRef layer) -> const std::vector<double> * {
          const quench::calib::TensorStats *t = cs->findLayerInput(layer.str());
          return t && !t->gram.empty() ? &t->gram : nullptr;
        };
      }
    }
    timer.start(stage.name);
    if (stage.name == "quantize") {
      // The pass itself, called directly for its per-layer records.
      if (failed(quench::quantizeWeights(*module, *pipelineOpts.weightQuant,
                                         &report.layers)))
        return fail("stage 'quantize' failed (see above)");
    } else {
      mlir::PassManager pm(&context);
      if (failed(mlir::applyPassManagerCLOptions(pm)))
        return 1;
      stage.build(pm);
      if (failed(pm.run(*module)))
        return fail("stage '" + stage.name + "' failed (see above)");
    }
    // The float model as compiled is the one after prepare (CSE merges
    // duplicate constants there).
    if (stage.name == "prepare")
      report.constantBytesBefore = quench::constantBytes(*module);
    if (stage.name == "prepare" || stage.name == "quantize")
      report.constantBytesAfter = quench::constantBytes(*module);
    // Ops the CPU lowering does not handle yet would only fail later, in
    // bufferization, with an obscure message: list them all now.
    if (stage.name == "to-linalg") {
      unsigned count = 0;
      module->walk([&](mlir::Operation *op) {
        if (op->getDialect() && op->getDialect()->getNamespace() == "quench") {
          mlir::emitError(op->getLoc())
              << "'" << op->getName() << "' has no CPU lowering yet";
          ++count;
        }
      });
      if (count)
        return fail(Twine(count) + " operation" + (count > 1 ? "s" : "") +
                    " cannot be compiled for the CPU yet (see above)");
    }
    if (!dump(stage.name + ".mlir", [&](raw_ostream &os) { module->print(os); }))
      return 1;
    if (stage.name == stopAfter)
      break;
  }

  if (emit == Emit::MLIR) {
    timer.start("write");
    std::string err = quench::writeFileAtomically(
        withExtension(outputPath, ".mlir"), [&](raw_ostream &os) {
          module->print(os);
          return true;
        });
    timer.finish();
    if (!err.empty())
      return fail(err);
    return finishReport(outputPath == "-" ? ""
                                          : withExtension(outputPath, ".mlir"));
  }

  // 4. LLVM IR, the model's C ABI, optimization.
  timer.start("translate");
  LLVMContext llvmContext;
  std::unique_ptr<Module> llvmModule =
      mlir::translateModuleToLLVMIR(*module, llvmContext, name);
  if (!llvmModule)
    return fail("translation to LLVM IR failed (see above)");
  module = nullptr; // the MLIR module (and its weights) are no longer needed
  if (Error e = quench::addModelABI(*llvmModule, *sig,
                                    quench::cInterfaceName(graphName),
                                    emit == Emit::Exe))
    return fail(toString(std::move(e)));
  auto tm = quench::createTargetMachine(*cpuTarget);
  if (!tm)
    return fail(toString(tm.takeError()));
  // Weights become byte blobs: emitted as one block each, and opaque to the
  // optimizer, which has nothing to gain from scanning them.
  (*llvmModule).setDataLayout((*tm)->createDataLayout());
  quench::packLargeConstants(*llvmModule);
  if (!dump("llvm.ll", [&](raw_ostream &os) { llvmModule->print(os, nullptr); }))
    return 1;
  timer.start("llvm-opt");
  quench::optimizeModule(*llvmModule, **tm, optLevel);
  if (!dump("llvm-opt.ll",
            [&](raw_ostream &os) { llvmModule->print(os, nullptr); }))
    return 1;

  if (emit == Emit::LLVM) {
    timer.start("write");
    std::string err = quench::writeFileAtomically(
        withExtension(outputPath, ".ll"), [&](raw_ostream &os) {
          llvmModule->print(os, nullptr);
          return true;
        });
    timer.finish();
    if (!err.empty())
      return fail(err);
    return finishReport(outputPath == "-" ? ""
                                          : withExtension(outputPath, ".ll"));
  }

  // 5. Object code, in memory.
  timer.start("codegen-obj");
  SmallVector<char, 0> object;
  {
    raw_svector_ostream os(object);
    if (Error e = quench::emitObjectFile(*llvmModule, **tm, os))
      return fail(toString(std::move(e)));
  }
  llvmModule.reset();

  timer.start("write");
  std::string header = quench::generateHeader(*sig, inputPath);
  StringRef out = outputPath;
  auto writeBytes = [&](StringRef path, StringRef bytes) {
    std::string err = quench::writeFileAtomically(path, [&](raw_ostream &os) {
      os << bytes;
      return true;
    });
    return err.empty() ? 0 : fail(err);
  };
  int rc = 0;
  std::string artifactPath;
  StringRef objBytes(object.data(), object.size());
  switch (emit) {
  case Emit::Obj: {
    std::string base = out.ends_with(".o") ? out.drop_back(2).str() : out.str();
    artifactPath = base + ".o";
    rc = writeBytes(artifactPath, objBytes);
    if (!rc)
      rc = writeBytes(base + ".h", header);
    break;
  }
  case Emit::Lib: {
    std::string base = out.ends_with(".a") ? out.drop_back(2).str() : out.str();
    SmallString<256> lib(sys::path::parent_path(base));
    StringRef stem = sys::path::filename(base);
    sys::path::append(lib, (stem.starts_with("lib") ? "" : "lib") + stem.str() +
                               ".a");
    SmallString<256> headerPath(sys::path::parent_path(base));
    sys::path::append(headerPath,
                      (stem.starts_with("lib") ? stem.drop_front(3) : stem) +
                          ".h");
    std::string err = quench::writeFileAtomically(lib, [&](raw_ostream &os) {
      if (Error e = quench::writeStaticArchive(
              os, name + ".o", MemoryBufferRef(objBytes, name + ".o"))) {
        fail(toString(std::move(e)));
        return false;
      }
      return true;
    });
    if (!err.empty())
      return fail(err);
    rc = writeBytes(headerPath, header);
    artifactPath = lib.str().str();
    break;
  }
  case Emit::Exe: {
    SmallString<128> objPath;
    int fd;
    if (sys::fs::createTemporaryFile("quench-" + name, "o", fd, objPath))
      return fail("cannot create a temporary object file");
    {
      raw_fd_ostream os(fd, /*shouldClose=*/true);
      os << objBytes;
      if (os.has_error()) {
        sys::fs::remove(objPath);
        return fail("cannot write a temporary object file");
      }
    }
    timer.start("link");
    rc = linkExecutable(objPath, out, argv[0]);
    sys::fs::remove(objPath);
    artifactPath = out.str();
    break;
  }
  default:
    break;
  }
  timer.finish();
  if (rc)
    return rc;
  return finishReport(artifactPath);
}
