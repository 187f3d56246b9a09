//===- Calibrate.cpp - run the float model on samples, record stats -------===//

#include "quench/Calibration/Calibrate.h"

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/Weights.h"
#include "quench/runtime_abi.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ExecutionEngine/Orc/AbsoluteSymbols.h"
#include "llvm/ExecutionEngine/Orc/ExecutionUtils.h"
#include "llvm/ExecutionEngine/Orc/LLJIT.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mlir;
using namespace quench;
using namespace quench::calib;
using llvm::Expected;
using llvm::StringRef;

static llvm::Error makeError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

//===----------------------------------------------------------------------===//
// Instrumentation
//===----------------------------------------------------------------------===//

std::vector<Probe> quench::calib::instrumentForCalibration(func::FuncOp func) {
  std::vector<Probe> probes;
  if (func.isDeclaration())
    return probes;
  Block &body = func.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret)
    return probes;
  llvm::DenseMap<Value, size_t> index;
  SmallVector<Value> newResults;
  unsigned numResults = ret.getNumOperands();
  func.walk([&](LinearOp op) {
    Value x = op.getInput();
    if (op->getBlock() != &body || x.getParentBlock() != &body)
      return;
    // The channel count is the weight's K: an exporter's Reshape with a
    // computed shape can leave the input's last dim dynamic.
    auto type = dyn_cast<RankedTensorType>(x.getType());
    auto wType = dyn_cast<RankedTensorType>(op.getWeight().getType());
    if (!type || !type.getElementType().isF32() || type.getRank() < 1 ||
        !wType || wType.getRank() != 2 || wType.isDynamicDim(1))
      return;
    if (x.getDefiningOp<ConstantOp>())
      return;
    std::string layer = getLayerName(op.getLoc());
    auto [it, inserted] = index.try_emplace(x, probes.size());
    if (!inserted) {
      probes[it->second].layers.push_back(layer);
      return;
    }
    Probe p;
    p.name = layer + ":input";
    p.layers.push_back(layer);
    p.channels = wType.getDimSize(1);
    if (auto arg = dyn_cast<BlockArgument>(x)) {
      // Observed from the input itself: returning an argument would hand
      // the caller's buffer back as an output.
      p.inputIndex = static_cast<int>(arg.getArgNumber());
    } else {
      for (unsigned i = 0; i < numResults; ++i)
        if (ret.getOperand(i) == x)
          p.resultIndex = static_cast<int>(i);
      if (p.resultIndex < 0) {
        p.resultIndex = static_cast<int>(numResults + newResults.size());
        newResults.push_back(x);
      }
    }
    probes.push_back(std::move(p));
  });
  if (!newResults.empty()) {
    ret->insertOperands(ret.getNumOperands(), newResults);
    SmallVector<Type> resultTypes(func.getFunctionType().getResults());
    for (Value v : newResults)
      resultTypes.push_back(v.getType());
    func.setFunctionType(FunctionType::get(
        func.getContext(), func.getFunctionType().getInputs(), resultTypes));
  }
  return probes;
}

//===----------------------------------------------------------------------===//
// Samples
//===----------------------------------------------------------------------===//

std::string quench::calib::sampleFileName(StringRef inputName) {
  std::string out;
  for (char c : inputName)
    out += (llvm::isAlnum(c) || c == '.' || c == '_' || c == '-') ? c : '_';
  return out + ".npy";
}

Expected<std::vector<Sample>>
quench::calib::listSamples(StringRef dir, const ModelSignature &sig) {
  if (!llvm::sys::fs::is_directory(dir))
    return makeError("calibration directory '" + dir +
                     "' does not exist or is not a directory");
  std::string expected;
  for (const TensorSignature &in : sig.inputs)
    expected += (expected.empty() ? "" : ", ") + sampleFileName(in.name);
  auto sampleIn = [&](StringRef d, StringRef name,
                      std::string &missing) -> std::optional<Sample> {
    Sample s;
    s.name = name.str();
    for (const TensorSignature &in : sig.inputs) {
      llvm::SmallString<256> p(d);
      llvm::sys::path::append(p, sampleFileName(in.name));
      if (!llvm::sys::fs::exists(p)) {
        missing += (missing.empty() ? "" : ", ") + sampleFileName(in.name);
        continue;
      }
      s.inputPaths.push_back(std::string(p));
    }
    if (!missing.empty())
      return std::nullopt;
    return s;
  };

  std::vector<Sample> samples;
  // One sample directly in DIR?
  bool anyDirect = false;
  for (const TensorSignature &in : sig.inputs) {
    llvm::SmallString<256> p(dir);
    llvm::sys::path::append(p, sampleFileName(in.name));
    anyDirect |= llvm::sys::fs::exists(p);
  }
  if (anyDirect) {
    std::string missing;
    auto s = sampleIn(dir, ".", missing);
    if (!s)
      return makeError("calibration sample '" + dir + "' lacks " + missing +
                       " (the model's inputs: " + expected + ")");
    samples.push_back(std::move(*s));
    return samples;
  }
  std::vector<std::string> subdirs;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::sys::fs::is_directory(it->path()))
      subdirs.push_back(it->path());
  if (ec)
    return makeError("cannot list calibration directory '" + dir +
                     "': " + ec.message());
  llvm::sort(subdirs);
  for (const std::string &d : subdirs) {
    std::string missing;
    auto s = sampleIn(d, llvm::sys::path::filename(d), missing);
    if (!s)
      return makeError("calibration sample '" + d + "' lacks " + missing +
                       " (the model's inputs: " + expected + ")");
    samples.push_back(std::move(*s));
  }
  if (samples.empty())
    return makeError("no calibration samples in '" + dir +
                     "': expected one directory per sample holding " +
                     expected + " (or those files in '" + dir +
                     "' itself for one sample)");
  return samples;
}

Expected<std::string>
quench::calib::checksumSamples(const std::vector<Sample> &samples) {
  uint64_t h = fnv1a("quench-calib-samples", 20);
  for (const Sample &s : samples) {
    h = fnv1a(s.name.data(), s.name.size(), h);
    for (const std::string &p : s.inputPaths) {
      auto buf = llvm::MemoryBuffer::getFile(p);
      if (!buf)
        return makeError("cannot read '" + p + "': " +
                         buf.getError().message());
      StringRef file = llvm::sys::path::filename(p);
      h = fnv1a(file.data(), file.size(), h);
      h = fnv1a((*buf)->getBufferStart(), (*buf)->getBufferSize(), h);
    }
  }
  return "fnv1a64:" + llvm::utohexstr(h, /*LowerCase=*/true, 16);
}

Expected<std::string> quench::calib::checksumFile(StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                         /*RequiresNullTerminator=*/false);
  if (!buf)
    return makeError("cannot read '" + path + "': " + buf.getError().message());
  llvm::SHA256 sha;
  sha.update(llvm::arrayRefFromStringRef((*buf)->getBuffer()));
  std::array<uint8_t, 32> digest = sha.final();
  return "sha256:" + llvm::toHex(digest, /*LowerCase=*/true);
}

//===----------------------------------------------------------------------===//
// Compile and load
//===----------------------------------------------------------------------===//

namespace {
/// The instrumented model, compiled and loaded into this process.
struct LoadedModel {
  std::unique_ptr<llvm::orc::LLJIT> jit;
  const quench_model *model = nullptr;
};
} // namespace

/// The Quench runtime functions compiled models may call, by name: the JIT
/// resolves them to the copies linked into this program. Every external
/// function of runtime/lib that generated code can reference must be here
/// (generated code calls nothing else but the C library).
static llvm::orc::SymbolMap runtimeSymbols(llvm::orc::LLJIT &jit) {
  llvm::orc::SymbolMap map;
  auto add = [&](StringRef name, auto *fn) {
    map[jit.mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(fn),
                                      llvm::JITSymbolFlags::Exported};
  };
  add("quench_parallel_for", &quench_parallel_for);
  add("quench_current_threadpool", &quench_current_threadpool);
  add("quench_model_run", &quench_model_run);
  add("quench_buffer_alloc", &quench_buffer_alloc);
  add("quench_buffer_free", &quench_buffer_free);
  add("quench_error_set", &quench_error_set);
  add("_mlir_memref_to_llvm_alloc", &_mlir_memref_to_llvm_alloc);
  add("_mlir_memref_to_llvm_aligned_alloc",
      &_mlir_memref_to_llvm_aligned_alloc);
  add("_mlir_memref_to_llvm_free", &_mlir_memref_to_llvm_free);
  add("memrefCopy", &memrefCopy);
  return map;
}

static Expected<LoadedModel> compileAndLoad(ModuleOp module, StringRef entry,
                                            const ModelSignature &sig,
                                            const CalibrateOptions &options) {
  // The shared stages after prepare (the module is prepared and stays
  // float) and the CPU backend's: the same code the compiled model gets,
  // without the int8 and table-lookup kernels, at -O2.
  CPUTargetOptions cpu = options.cpu;
  cpu.int8Dot = false;
  cpu.codeLookup = false;
  cpu.optLevel = 2;
  auto backend = createCPUTargetBackend(cpu);
  if (!backend)
    return backend.takeError();
  FrontPipelineOptions front;
  front.prepare = false;
  std::vector<PipelineStage> stages = getFrontPipelineStages(front);
  (*backend)->appendCodegenStages(stages);
  if (failed(runPipelineStages(module, stages)))
    return makeError("compiling the calibration model failed (see above)");
  // The float weights stay where they are (mapped or in the context's
  // blobs): the JIT resolves the model's weight symbols to their bytes.
  WeightTable weights = extractWeights(module);
  llvm::LLVMContext llvmContext;
  ModelABIRequest abi;
  abi.signature = &sig;
  abi.entryCInterface = cInterfaceName(entry);
  abi.weights = &weights;
  abi.weightStorage = WeightStorage::External;
  auto llvmModule = (*backend)->translateToLLVMIR(module, llvmContext, abi);
  if (!llvmModule)
    return llvmModule.takeError();
  (*backend)->optimizeLLVMIR(**llvmModule);
  llvm::SmallVector<char, 0> object;
  {
    llvm::raw_svector_ostream os(object);
    if (llvm::Error e = (*backend)->emitObject(**llvmModule, os))
      return std::move(e);
  }
  llvmModule->reset();

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto jit = llvm::orc::LLJITBuilder().create();
  if (!jit)
    return jit.takeError();
  llvm::orc::JITDylib &lib = (*jit)->getMainJITDylib();
  llvm::orc::SymbolMap symbols = runtimeSymbols(**jit);
  for (const WeightEntry &w : weights.entries)
    symbols[(*jit)->mangleAndIntern(w.symbol)] = {
        llvm::orc::ExecutorAddr::fromPtr(w.data.data()),
        llvm::JITSymbolFlags::Exported};
  if (llvm::Error e = lib.define(llvm::orc::absoluteSymbols(std::move(symbols))))
    return std::move(e);
  // libc (memcpy, memset, math functions).
  auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
      (*jit)->getDataLayout().getGlobalPrefix());
  if (!process)
    return process.takeError();
  lib.addGenerator(std::move(*process));
  if (llvm::Error e = (*jit)->addObjectFile(llvm::MemoryBuffer::getMemBufferCopy(
          StringRef(object.data(), object.size()), "calibration.o")))
    return std::move(e);
  auto sym = (*jit)->lookup(sig.modelName + "_model");
  if (!sym)
    return sym.takeError();
  LoadedModel loaded;
  loaded.model = sym->toPtr<const quench_model *>();
  loaded.jit = std::move(*jit);
  return loaded;
}

//===----------------------------------------------------------------------===//
// calibrate
//===----------------------------------------------------------------------===//

namespace {
/// Frees quench tensors on scope exit.
struct TensorList {
  std::vector<quench_tensor> tensors;
  explicit TensorList(size_t n) : tensors(n) {
    for (quench_tensor &t : tensors)
      t = quench_tensor{};
  }
  ~TensorList() {
    for (quench_tensor &t : tensors)
      quench_tensor_free(&t);
  }
};

/// quench_threadpool with RAII.
struct Pool {
  quench_threadpool *pool = nullptr;
  ~Pool() {
    if (pool)
      quench_threadpool_destroy(pool);
  }
};
} // namespace

Expected<CalibrationStats>
quench::calib::calibrate(ModuleOp module, StringRef entry,
                         const ModelSignature &sig,
                         const std::vector<Sample> &samples,
                         const CalibrateOptions &options) {
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  OwningOpRef<ModuleOp> clone(cast<ModuleOp>(module->clone()));
  auto func = clone->lookupSymbol<func::FuncOp>(entry);
  if (!func)
    return makeError("calibration: the module has no function '" + entry +
                     "'");
  std::vector<Probe> probes = instrumentForCalibration(func);
  if (probes.empty())
    return makeError("calibration: the model has no linear layer with a "
                     "float input to observe");
  // The instrumented function's signature: the model's inputs, its outputs
  // plus the observed tensors.
  ModelSignature isig = sig;
  isig.modelName = sig.modelName + "_calib";
  FunctionType ftype = func.getFunctionType();
  for (unsigned i = sig.outputs.size(); i < ftype.getNumResults(); ++i) {
    auto t = cast<RankedTensorType>(ftype.getResult(i));
    TensorSignature out;
    out.name = "calib_" + std::to_string(i);
    out.dtype = QUENCH_DTYPE_F32;
    for (int64_t d : t.getShape())
      out.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
    isig.outputs.push_back(std::move(out));
  }
  if (options.progress)
    llvm::errs() << "calibrate: compiling the float model with "
                 << probes.size() << " observed tensor"
                 << (probes.size() == 1 ? "" : "s") << "\n";
  auto loaded = compileAndLoad(*clone, entry, isig, options);
  if (!loaded)
    return loaded.takeError();
  clone = nullptr;

  CalibrationStats stats;
  for (const Probe &p : probes) {
    TensorStats t(p.name, p.channels, /*perChannel=*/true, options.gram);
    t.layers = p.layers;
    stats.tensors.push_back(std::move(t));
  }
  quench_error err;
  Pool pool;
  pool.pool = quench_threadpool_create(options.threads, &err);
  if (!pool.pool)
    return makeError(llvm::Twine("calibration: ") + err.message);
  const quench_model *model = loaded->model;
  double lastReport = 0;
  bool tty = llvm::sys::Process::StandardErrIsDisplayed();
  for (size_t s = 0; s < samples.size(); ++s) {
    const Sample &sample = samples[s];
    TensorList inputs(sig.inputs.size());
    for (size_t i = 0; i < sig.inputs.size(); ++i) {
      const quench_io_info &info = model->inputs[i];
      if (quench_npy_read_expect(sample.inputPaths[i].c_str(),
                                 sig.inputs[i].name.c_str(), info.dtype,
                                 info.rank, info.shape, &inputs.tensors[i],
                                 &err) != QUENCH_OK)
        return makeError(llvm::Twine("calibration sample '") + sample.name +
                         "': " + err.message);
    }
    TensorList outputs(isig.outputs.size());
    if (quench_model_run(model, inputs.tensors.data(), inputs.tensors.size(),
                         outputs.tensors.data(), outputs.tensors.size(),
                         pool.pool, &err) != QUENCH_OK)
      return makeError(llvm::Twine("calibration sample '") + sample.name +
                       "': " + err.message);
    for (size_t p = 0; p < probes.size(); ++p) {
      const quench_tensor &t = probes[p].inputIndex >= 0
                                   ? inputs.tensors[probes[p].inputIndex]
                                   : outputs.tensors[probes[p].resultIndex];
      if (t.rank < 1 || t.shape[t.rank - 1] != probes[p].channels)
        return makeError(llvm::Twine("calibration sample '") + sample.name +
                         "': " + probes[p].name + " has " +
                         llvm::Twine(t.rank ? t.shape[t.rank - 1] : 0) +
                         " channels at run time, the layer expects " +
                         llvm::Twine(probes[p].channels));
      stats.tensors[p].observe(static_cast<const float *>(t.data),
                               static_cast<size_t>(
                                   quench_tensor_num_elements(&t)));
    }
    ++stats.samples;
    double now = seconds();
    if (options.progress && (s + 1 == samples.size() || now - lastReport >= 1.0)) {
      lastReport = now;
      llvm::errs() << (tty ? "\r" : "") << "calibrate: sample " << (s + 1)
                   << "/" << samples.size() << " ("
                   << llvm::format("%.1f", now) << " s)"
                   << (tty && s + 1 < samples.size() ? "" : "\n");
    }
  }
  for (TensorStats &t : stats.tensors)
    t.finalize();
  quench_buffer_cache_trim();
  return stats;
}
