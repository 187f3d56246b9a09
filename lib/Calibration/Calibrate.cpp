//===- Calibrate.cpp - run the float model on samples, record stats -------===//

#include "quench/Calibration/Calibrate.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"

#include "quench/Calibration/Segments.h"
#include "quench/Quant/RTN.h"

#include "quench/Dialect/Quench/IR/QuenchOps.h"
#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Pipelines/Pipelines.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Support/MappedFile.h"
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
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <cassert>
#include <chrono>
#include <cmath>
#include <optional>
#include <cstring>

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

namespace {
/// A value instrumentation observes, with its probe's name and layers.
struct ObservedValue {
  Value value;
  Probe probe;
};
} // namespace

/// Whether calibration observes activations of this element type: f32, and
/// f16/bf16 (widened to f32 exactly before the statistics see them).
static bool isObservedElementType(Type t) {
  return t.isF32() || t.isF16() || t.isBF16();
}

/// The float (f32, f16, bf16) inputs of the top-level quench.linear ops of
/// `func`, in walk order, each value once (the layers that read it listed in
/// its probe).
static std::vector<ObservedValue> findObservedValues(func::FuncOp func) {
  std::vector<ObservedValue> out;
  if (func.isDeclaration())
    return out;
  Block &body = func.getBody().front();
  llvm::DenseMap<Value, size_t> index;
  func.walk([&](LinearOp op) {
    Value x = op.getInput();
    if (op->getBlock() != &body || x.getParentBlock() != &body)
      return;
    // The channel count is the weight's K: an exporter's Reshape with a
    // computed shape can leave the input's last dim dynamic.
    auto type = dyn_cast<RankedTensorType>(x.getType());
    auto wType = dyn_cast<RankedTensorType>(op.getWeight().getType());
    if (!type || !isObservedElementType(type.getElementType()) ||
        type.getRank() < 1 ||
        !wType || wType.getRank() != 2 || wType.isDynamicDim(1))
      return;
    if (x.getDefiningOp<ConstantOp>())
      return;
    std::string layer = getLayerName(op.getLoc());
    auto [it, inserted] = index.try_emplace(x, out.size());
    if (!inserted) {
      out[it->second].probe.layers.push_back(layer);
      return;
    }
    ObservedValue o;
    o.value = x;
    o.probe.name = layer + ":input";
    o.probe.layers.push_back(layer);
    o.probe.channels = wType.getDimSize(1);
    out.push_back(std::move(o));
  });
  return out;
}

std::vector<Probe> quench::calib::instrumentForCalibration(func::FuncOp func) {
  std::vector<Probe> probes;
  if (func.isDeclaration())
    return probes;
  auto ret = dyn_cast<func::ReturnOp>(func.getBody().front().getTerminator());
  if (!ret)
    return probes;
  SmallVector<Value> newResults;
  unsigned numResults = ret.getNumOperands();
  for (ObservedValue &o : findObservedValues(func)) {
    Probe p = std::move(o.probe);
    if (auto arg = dyn_cast<BlockArgument>(o.value)) {
      // Observed from the input itself: returning an argument would hand
      // the caller's buffer back as an output.
      p.inputIndex = static_cast<int>(arg.getArgNumber());
    } else {
      for (unsigned i = 0; i < numResults; ++i)
        if (ret.getOperand(i) == o.value)
          p.resultIndex = static_cast<int>(i);
      if (p.resultIndex < 0) {
        p.resultIndex = static_cast<int>(numResults + newResults.size());
        newResults.push_back(o.value);
      }
    }
    probes.push_back(std::move(p));
  }
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

/// Whether `name` is an input calibration makes itself (GenerationInputs).
static bool isGenerationInput(StringRef name, const GenerationInputs &g) {
  return name == g.attentionMask || name == g.positionIds ||
         quench::isPastInputName(name, g.past);
}

Expected<std::vector<Sample>>
quench::calib::listSamples(StringRef dir, const ModelSignature &sig,
                           const GenerationInputs *generation) {
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
    bool hasIds = false;
    if (generation) {
      llvm::SmallString<256> p(d);
      llvm::sys::path::append(p, sampleFileName(generation->inputIds));
      hasIds = llvm::sys::fs::exists(p);
    }
    for (const TensorSignature &in : sig.inputs) {
      llvm::SmallString<256> p(d);
      llvm::sys::path::append(p, sampleFileName(in.name));
      if (!llvm::sys::fs::exists(p)) {
        if (hasIds && isGenerationInput(in.name, *generation)) {
          s.inputPaths.push_back("");
          continue;
        }
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
      if (p.empty()) {
        h = fnv1a("<generated>", 11, h);
        continue;
      }
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

Expected<int64_t>
quench::calib::sampleTokenCount(const Sample &sample,
                                const ModelSignature &sig,
                                const GenerationInputs *generation) {
  if (!generation || llvm::all_of(sample.inputPaths, [](const std::string &p) {
        return !p.empty();
      }))
    return -1;
  for (size_t i = 0; i < sig.inputs.size(); ++i)
    if (sig.inputs[i].name == generation->inputIds &&
        !sample.inputPaths[i].empty()) {
      quench_tensor ids{};
      quench_error err;
      if (quench_npy_read(sample.inputPaths[i].c_str(), &ids, &err) !=
          QUENCH_OK)
        return makeError("calibration sample '" + sample.name +
                         "': " + err.message);
      int64_t seq = ids.rank >= 1 ? ids.shape[ids.rank - 1] : -1;
      quench_tensor_free(&ids);
      return seq;
    }
  return -1;
}

/// The first NaN or infinity among the `n` elements of a float tensor, with
/// its flat index; none for other dtypes.
static std::optional<std::pair<int64_t, double>>
firstNonFinite(const quench_tensor &t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double v;
    switch (t.dtype) {
    case QUENCH_DTYPE_F32: v = static_cast<const float *>(t.data)[i]; break;
    case QUENCH_DTYPE_F64: v = static_cast<const double *>(t.data)[i]; break;
    case QUENCH_DTYPE_F16:
      v = quench::quant::f16BitsToFloat(static_cast<const uint16_t *>(t.data)[i]);
      break;
    case QUENCH_DTYPE_BF16: {
      uint32_t bits = uint32_t(static_cast<const uint16_t *>(t.data)[i]) << 16;
      float f;
      std::memcpy(&f, &bits, sizeof f);
      v = f;
      break;
    }
    default:
      return std::nullopt;
    }
    if (!std::isfinite(v))
      return std::make_pair(i, v);
  }
  return std::nullopt;
}

llvm::Error quench::calib::readSampleInput(const Sample &sample,
                                           const ModelSignature &sig,
                                           size_t index,
                                           const GenerationInputs *generation,
                                           int64_t seq, quench_tensor &out) {
  const TensorSignature &in = sig.inputs[index];
  quench_error err;
  auto fail = [&](const llvm::Twine &msg) {
    return makeError("calibration sample '" + sample.name + "': " + msg);
  };
  if (!sample.inputPaths[index].empty()) {
    if (quench_npy_read_expect(sample.inputPaths[index].c_str(),
                               in.name.c_str(),
                               static_cast<quench_dtype>(in.dtype),
                               static_cast<int32_t>(in.shape.size()),
                               in.shape.data(), &out, &err) != QUENCH_OK)
      return fail(err.message);
    // Statistics of NaN, infinities or nothing at all would give ranges and
    // Gram matrices that silently ruin the quantized model.
    const std::string &file = sample.inputPaths[index];
    int64_t n = quench_tensor_num_elements(&out);
    std::string bad;
    if (n == 0)
      bad = "has no elements";
    else if (std::optional<std::pair<int64_t, double>> nf =
                 firstNonFinite(out, n))
      bad = "holds " +
            std::string(std::isnan(nf->second) ? "NaN"
                        : nf->second > 0       ? "inf"
                                               : "-inf") +
            " at flat index " + std::to_string(nf->first) +
            " (calibration needs finite values)";
    if (!bad.empty()) {
      quench_tensor_free(&out);
      return fail("input '" + in.name + "' ('" + file + "') " + bad);
    }
    return llvm::Error::success();
  }
  if (!generation || seq < 0)
    return fail("cannot make input '" + in.name + "' without the token ids");
  std::vector<int64_t> shape(in.shape);
  bool past = quench::isPastInputName(in.name, generation->past);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] < 0)
      shape[d] = d == 0 ? 1 : past ? 0 : seq;
  if (!past && (shape.size() != 2 || shape[1] != seq))
    return fail("cannot make input '" + in.name + "' of type " +
                in.typeString() + " for " + llvm::Twine(seq) +
                " tokens (give " + sampleFileName(in.name) + ")");
  if (quench_tensor_alloc(&out, static_cast<quench_dtype>(in.dtype),
                          static_cast<int32_t>(shape.size()), shape.data(),
                          &err) != QUENCH_OK)
    return fail(err.message);
  if (past)
    return llvm::Error::success(); // zero positions (or zeros)
  bool positions = in.name == generation->positionIds;
  for (int64_t i = 0; i < seq; ++i) {
    int64_t v = positions ? i : 1;
    switch (static_cast<quench_dtype>(in.dtype)) {
    case QUENCH_DTYPE_I64: static_cast<int64_t *>(out.data)[i] = v; break;
    case QUENCH_DTYPE_I32:
      static_cast<int32_t *>(out.data)[i] = static_cast<int32_t>(v);
      break;
    case QUENCH_DTYPE_F32:
      static_cast<float *>(out.data)[i] = static_cast<float>(v);
      break;
    case QUENCH_DTYPE_BOOL:
      static_cast<uint8_t *>(out.data)[i] = 1;
      break;
    default:
      quench_tensor_free(&out);
      return fail("cannot make input '" + in.name + "' of type " +
                  in.typeString() + " (give " + sampleFileName(in.name) +
                  ")");
    }
  }
  return llvm::Error::success();
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
  /// The weights it reads, in place.
  WeightTable weights;
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
  add("quench_parallel_for_work", &quench_parallel_for_work);
  add("quench_current_threadpool", &quench_current_threadpool);
  add("quench_rt_check_failed", &quench_rt_check_failed);
  add("quench_rt_check_failed_values", &quench_rt_check_failed_values);
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
  // In place: extractWeights declared each weight with the alignment its
  // bytes have.
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
  loaded.weights = std::move(weights);
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

/// A value that crosses a cut: one tensor per sample, owned.
struct CarriedValue {
  std::vector<quench_tensor> perSample;
  explicit CarriedValue(size_t n) : perSample(n, quench_tensor{}) {}
  CarriedValue(const CarriedValue &) = delete;
  CarriedValue &operator=(const CarriedValue &) = delete;
  ~CarriedValue() {
    for (quench_tensor &t : perSample)
      quench_tensor_free(&t);
  }
};
} // namespace

/// The values of an observed tensor as f32: f32 data in place, f16 and bf16
/// widened (exactly) into `buffer`.
static const float *observedValues(const quench_tensor &t, size_t n,
                                   std::vector<float> &buffer) {
  if (t.dtype == QUENCH_DTYPE_F32)
    return static_cast<const float *>(t.data);
  const auto *bits = static_cast<const uint16_t *>(t.data);
  buffer.resize(n);
  if (t.dtype == QUENCH_DTYPE_F16) {
    for (size_t i = 0; i < n; ++i)
      buffer[i] = quench::quant::f16BitsToFloat(bits[i]);
  } else {
    assert(t.dtype == QUENCH_DTYPE_BF16 && "observed dtypes: f32, f16, bf16");
    for (size_t i = 0; i < n; ++i) {
      uint32_t w = static_cast<uint32_t>(bits[i]) << 16;
      std::memcpy(&buffer[i], &w, sizeof w);
    }
  }
  return buffer.data();
}

/// "12.3 s", or "4 min 05 s" from 100 s on.
static std::string formatSeconds(double s) {
  if (s < 100)
    return llvm::formatv("{0:F1} s", s).str();
  int m = static_cast<int>(s / 60);
  return llvm::formatv("{0} min {1:D2} s", m, static_cast<int>(s - 60 * m))
      .str();
}

Expected<CalibrationStats> quench::calib::calibrate(
    ModuleOp module, StringRef entry, const ModelSignature &sig,
    const std::vector<Sample> &samplesIn, const CalibrateOptions &options) {
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  };
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func || func.isDeclaration())
    return makeError("calibration: the module has no function '" + entry +
                     "'");
  std::vector<ObservedValue> observed = findObservedValues(func);
  if (observed.empty())
    return makeError("calibration: the model has no linear layer with a "
                     "float input to observe");
  llvm::DenseMap<Value, size_t> observedIndex;
  for (size_t i = 0; i < observed.size(); ++i)
    observedIndex[observed[i].value] = i;
  // This process's share of the samples (all of them without a
  // communicator): sample i runs on process i mod size.
  Communicator *comm = options.comm;
  int rank = comm ? comm->rank() : 0, numProcs = comm ? comm->size() : 1;
  const std::vector<Sample> &allSamples = samplesIn;
  std::vector<Sample> mine;
  for (size_t i = rank; i < allSamples.size(); i += numProcs)
    mine.push_back(allSamples[i]);
  // Every process stops at the same points when any of them failed since
  // the last one (Communicator::agree).
  auto agreeOn = [&](llvm::Error e) -> llvm::Error {
    if (!comm || numProcs == 1)
      return e;
    std::string message = comm->agree(e ? llvm::toString(std::move(e)) : "");
    return message.empty() ? llvm::Error::success() : makeError(message);
  };
  std::vector<Segment> segments =
      partitionForCalibration(func, options.segmentBytes, options.gram);
  int64_t totalLinears = 0;
  uint64_t maxSegmentBytes = 0;
  for (const Segment &seg : segments) {
    totalLinears += seg.linears;
    maxSegmentBytes = std::max(maxSegmentBytes, seg.bytes);
  }
  if (options.progress)
    llvm::errs() << "calibrate: " << observed.size() << " observed tensor"
                 << (observed.size() == 1 ? "" : "s") << " in "
                 << segments.size() << " segment"
                 << (segments.size() == 1 ? "" : "s") << " (at most "
                 << llvm::format("%.0f", maxSegmentBytes / 1048576.0)
                 << " MB of weights and statistics each), " << allSamples.size()
                 << " sample" << (allSamples.size() == 1 ? "" : "s");
  if (options.progress && numProcs > 1)
    llvm::errs() << " on " << numProcs << " processes (" << mine.size()
                 << " here)";
  if (options.progress)
    llvm::errs() << "\n";

  CalibrationStats stats;
  stats.modelChecksum = options.modelChecksum;
  stats.dataChecksum = options.dataChecksum;
  stats.samples = allSamples.size();
  // From here on `samples` are this process's.
  const std::vector<Sample> &samples = mine;
  CacheWriter writer;
  if (!options.statsFile.empty()) {
    std::string e = writer.open(options.statsFile, stats, observed.size());
    if (llvm::Error err =
            agreeOn(e.empty() ? llvm::Error::success() : makeError(e)))
      return std::move(err);
  }
  stats.tensors.resize(observed.size());
  std::vector<bool> started(observed.size(), false);
  size_t finished = 0; // tensors [0, finished) are complete

  // The values that cross cuts, per sample, from the segment that makes
  // them (or the sample files) to the last segment that reads them.
  quench_error err;
  llvm::DenseMap<Value, std::unique_ptr<CarriedValue>> carried;
  std::vector<std::vector<Value>> dropAfter(segments.size());
  {
    llvm::DenseMap<Value, size_t> lastReader;
    for (size_t k = 0; k < segments.size(); ++k)
      for (Value v : segments[k].inputs)
        lastReader[v] = k;
    for (auto &[v, k] : lastReader)
      dropAfter[k].push_back(v);
    // Every sample's inputs are read (and checked against the model's
    // signature) up front.
    Block &body = func.getBody().front();
    auto readInputs = [&]() -> llvm::Error {
      // The token count of each sample, for the inputs calibration makes.
      std::vector<int64_t> seqs;
      for (const Sample &sample : samples) {
        auto seq = sampleTokenCount(sample, sig, options.generation);
        if (!seq)
          return seq.takeError();
        seqs.push_back(*seq);
      }
      for (size_t i = 0; i < sig.inputs.size(); ++i) {
        auto value = std::make_unique<CarriedValue>(samples.size());
        for (size_t s = 0; s < samples.size(); ++s)
          if (llvm::Error e = readSampleInput(samples[s], sig, i,
                                              options.generation, seqs[s],
                                              value->perSample[s]))
            return e;
        Value arg = body.getArgument(i);
        if (lastReader.count(arg))
          carried[arg] = std::move(value);
      }
      return llvm::Error::success();
    };
    if (llvm::Error e = agreeOn(readInputs()))
      return std::move(e);
  }

  Pool pool;
  pool.pool = quench_threadpool_create(options.threads, &err);
  if (llvm::Error e = agreeOn(
          pool.pool ? llvm::Error::success()
                    : makeError(llvm::Twine("calibration: ") + err.message)))
    return std::move(e);
  bool tty = llvm::sys::Process::StandardErrIsDisplayed();
  double lastReport = 0;
  int64_t linearsDone = 0;
  size_t numSegments = segments.size();
  for (size_t k = 0; k < numSegments; ++k) {
    const Segment &seg = segments[k];
    // Compile the segment and run this process's samples through it; then
    // every process agrees that all did, and the statistics it started are
    // all-reduced.
    std::optional<LoadedModel> loaded;
    std::vector<std::unique_ptr<CarriedValue>> outputs;
    std::vector<size_t> segTensors;
    auto runSegment = [&]() -> llvm::Error {
      llvm::DenseMap<Value, Value> origin;
      OwningOpRef<ModuleOp> segModule =
          buildSegmentModule(module, func, seg, origin);
      auto segFunc = segModule->lookupSymbol<func::FuncOp>(entry);
      std::vector<Probe> probes = instrumentForCalibration(segFunc);
      // Each probe feeds the statistics of the model's observed value it
      // copies, unless an earlier segment observed that value already.
      Block &segBody = segFunc.getBody().front();
      auto segRet = cast<func::ReturnOp>(segBody.getTerminator());
      std::vector<int> statOf(probes.size(), -1);
      for (size_t p = 0; p < probes.size(); ++p) {
        Value v = probes[p].inputIndex >= 0
                      ? Value(segBody.getArgument(probes[p].inputIndex))
                      : segRet.getOperand(probes[p].resultIndex);
        auto it = observedIndex.find(origin.lookup(v));
        if (it == observedIndex.end() || started[it->second])
          continue;
        size_t g = it->second;
        started[g] = true;
        segTensors.push_back(g);
        statOf[p] = static_cast<int>(g);
        const Probe &global = observed[g].probe;
        stats.tensors[g] = TensorStats(global.name, global.channels,
                                       /*perChannel=*/true, options.gram);
        stats.tensors[g].layers = global.layers;
      }
      ModelSignature ssig;
      {
        auto got = getModelSignature(segFunc, sig.modelName + "_calib");
        if (!got)
          return got.takeError();
        ssig = std::move(*got);
      }
      if (options.progress && (numSegments > 1 || !tty))
        llvm::errs() << "calibrate: segment " << (k + 1) << "/" << numSegments
                     << ": compiling " << seg.ops.size() << " ops, "
                     << seg.linears << " linear"
                     << (seg.linears == 1 ? "" : "s") << ", " << probes.size()
                     << " observed tensor" << (probes.size() == 1 ? "" : "s")
                     << "\n";
      auto compiled = compileAndLoad(*segModule, entry, ssig, options);
      if (!compiled)
        return compiled.takeError();
      loaded = std::move(*compiled);
      segModule = nullptr;
      const quench_model *model = loaded->model;

      for (size_t o = 0; o < seg.outputs.size(); ++o)
        outputs.push_back(std::make_unique<CarriedValue>(samples.size()));
      for (size_t s = 0; s < samples.size(); ++s) {
        const Sample &sample = samples[s];
        std::vector<quench_tensor> inputs;
        for (Value v : seg.inputs)
          inputs.push_back(carried[v]->perSample[s]);
        TensorList results(ssig.outputs.size());
        std::vector<float> widened; // f16/bf16 observed values as f32
        if (quench_model_run(model, inputs.data(), inputs.size(),
                             results.tensors.data(), results.tensors.size(),
                             pool.pool, &err) != QUENCH_OK)
          return makeError(llvm::Twine("calibration sample '") + sample.name +
                           "': " + err.message);
        for (size_t p = 0; p < probes.size(); ++p) {
          if (statOf[p] < 0)
            continue;
          const quench_tensor &t = probes[p].inputIndex >= 0
                                       ? inputs[probes[p].inputIndex]
                                       : results.tensors[probes[p].resultIndex];
          if (t.rank < 1 || t.shape[t.rank - 1] != probes[p].channels)
            return makeError(llvm::Twine("calibration sample '") + sample.name +
                             "': " + observed[statOf[p]].probe.name + " has " +
                             llvm::Twine(t.rank ? t.shape[t.rank - 1] : 0) +
                             " channels at run time, the layer expects " +
                             llvm::Twine(probes[p].channels));
          size_t n = static_cast<size_t>(quench_tensor_num_elements(&t));
          stats.tensors[statOf[p]].observe(
              observedValues(t, n, widened), n,
              static_cast<unsigned>(std::max(options.threads, 0)));
        }
        // The carried results are kept; the rest is freed with `results`.
        for (size_t o = 0; o < seg.outputs.size(); ++o) {
          outputs[o]->perSample[s] = results.tensors[o];
          results.tensors[o] = quench_tensor{};
        }
        double now = seconds();
        bool last = k + 1 == numSegments && s + 1 == samples.size();
        if (options.progress &&
            (last || s + 1 == samples.size() || now - lastReport >= 1.0)) {
          lastReport = now;
          // Work is counted in linears (a segment's share of the model).
          double done =
              (linearsDone + seg.linears * double(s + 1) / samples.size()) /
              std::max<int64_t>(totalLinears, 1);
          llvm::errs() << (tty ? "\r" : "") << "calibrate: segment " << (k + 1)
                       << "/" << numSegments << ", sample " << (s + 1) << "/"
                       << samples.size() << " (" << formatSeconds(now);
          if (!last && done > 0)
            llvm::errs() << ", ETA " << formatSeconds(now * (1 - done) / done);
          llvm::errs() << ")" << (tty ? "\x1b[K" : "")
                       << (tty && !last ? "" : "\n");
        }
      }
      return llvm::Error::success();
    };
    if (llvm::Error e = agreeOn(runSegment()))
      return std::move(e);
    if (comm)
      for (size_t g : segTensors)
        allReduceStats(stats.tensors[g], *comm);
    linearsDone += seg.linears;
    for (size_t o = 0; o < seg.outputs.size(); ++o)
      carried[seg.outputs[o]] = std::move(outputs[o]);
    for (Value v : dropAfter[k])
      carried.erase(v);
    // The segment's weights are not read again.
    for (const WeightEntry &w : loaded->weights.entries)
      releaseMappedPages(w.data);
    loaded.reset();
    quench_buffer_cache_trim();

    // Its statistics are complete: to the file, and out of memory.
    std::string e;
    for (; e.empty() && finished < observed.size() && started[finished];
         ++finished) {
      TensorStats &t = stats.tensors[finished];
      t.finalize();
      if (options.statsFile.empty())
        continue;
      uint64_t offset = 0;
      e = writer.append(t, &offset);
      if (e.empty() && !t.gram.empty())
        t.releaseGram(options.statsFile, offset);
    }
    if (llvm::Error err =
            agreeOn(e.empty() ? llvm::Error::success() : makeError(e)))
      return std::move(err);
  }
  if (finished != observed.size())
    return makeError("calibration: " + observed[finished].probe.name +
                     " was not observed (segments out of order)");
  if (!options.statsFile.empty()) {
    std::string e = writer.commit();
    if (llvm::Error err =
            agreeOn(e.empty() ? llvm::Error::success() : makeError(e)))
      return std::move(err);
  }
  return stats;
}
