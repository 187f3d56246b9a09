//===- Calibrate.h - run the float model on samples, record stats -*- C++ -*-===//
//
// Calibration compiles an instrumented copy of the float model with the
// project's own CPU pipeline, loads the object into this process with
// LLVM's ORC JIT (the Quench runtime it calls is linked into the compiler),
// runs it on every sample, and records Statistics.h's statistics of the
// observed tensors: the inputs of every quench.linear.
//
// Samples are `.npy` files named after the graph inputs, one directory per
// sample (docs/calibration.md):
//   DIR/<sample>/<input>.npy    several samples, in sorted order, or
//   DIR/<input>.npy             one sample.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_CALIBRATION_CALIBRATE_H
#define QUENCH_CALIBRATION_CALIBRATE_H

#include "quench/Calibration/Statistics.h"
#include "quench/Support/Communicator.h"
#include "quench/Target/CPU/CPUTargetBackend.h"
#include "quench/Target/CPU/ModelABI.h"
#include "quench/runtime.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace mlir::func {
class FuncOp;
} // namespace mlir::func

namespace quench::calib {

/// One observed tensor of an instrumented function.
struct Probe {
  std::string name;
  std::vector<std::string> layers;
  int64_t channels = 0;
  /// Where its values come from at run time: the model input of that index
  /// (a linear reading a graph input directly), else the function result
  /// of index `resultIndex`.
  int inputIndex = -1;
  int resultIndex = -1;
};

/// Makes every float activation that feeds a quench.linear in `func` (the
/// prepared float graph) observable: values not already returned become
/// extra results, appended after the original ones. Values shared by
/// several linears are observed once. Linears inside nested regions, and
/// inputs that are not f32 tensors with a static last dim, are skipped.
std::vector<Probe> instrumentForCalibration(mlir::func::FuncOp func);

/// One calibration sample: a .npy path per graph input, in input order. An
/// empty path is an input the sample leaves to GenerationInputs (below).
struct Sample {
  std::string name;
  std::vector<std::string> inputPaths;
};

/// The inputs of a decoder exported with past key/values that calibration
/// fills itself when a sample gives only the token ids: the past (empty:
/// zero positions), an all-ones attention mask and positions 0..S-1 for
/// the S tokens of the sample's ids. Names as quench-kv-cache's options.
struct GenerationInputs {
  std::string past;          ///< pattern with {i} and {kv}
  std::string inputIds;      ///< token ids [1, S]
  std::string attentionMask; ///< [1, S] ones
  std::string positionIds;   ///< [1, S] = 0 .. S-1
};

/// The file name an input's samples use: its graph name with every
/// character outside [A-Za-z0-9._-] replaced by '_', plus ".npy".
std::string sampleFileName(llvm::StringRef inputName);

/// Lists the samples in `dir` for a model with inputs `sig.inputs` (see the
/// file comment). With `generation`, a sample that has the token ids may
/// leave out the past, mask and position inputs (their paths stay empty;
/// readSampleInput makes them). Fails with one message naming what is
/// missing.
llvm::Expected<std::vector<Sample>>
listSamples(llvm::StringRef dir, const ModelSignature &sig,
            const GenerationInputs *generation = nullptr);

/// The number of token ids of a sample that leaves inputs to
/// `generation` (its input_ids' last dim, read once); -1 when it gives
/// every input.
llvm::Expected<int64_t> sampleTokenCount(const Sample &sample,
                                         const ModelSignature &sig,
                                         const GenerationInputs *generation);

/// Input `index` of `sample` as a tensor (quench_tensor_free it): read from
/// its file and checked against the signature, or, for an empty path, made
/// as GenerationInputs says for `seq` tokens (sampleTokenCount).
llvm::Error readSampleInput(const Sample &sample, const ModelSignature &sig,
                            size_t index, const GenerationInputs *generation,
                            int64_t seq, quench_tensor &out);

/// A checksum of the samples' names and contents ("fnv1a64:<hex>").
llvm::Expected<std::string> checksumSamples(const std::vector<Sample> &samples);

/// A checksum of a file's contents ("sha256:<hex>").
llvm::Expected<std::string> checksumFile(llvm::StringRef path);

struct CalibrateOptions {
  /// Accumulate the input Gram matrix X^T X of every linear (for GPTQ):
  /// channels^2 doubles per observed tensor.
  bool gram = true;
  /// Threads of the runs (0: every core).
  int threads = 0;
  /// Progress lines on stderr.
  bool progress = true;
  /// Upper bound (an estimate) on the float weights plus statistics of one
  /// segment, in bytes: the model runs segment by segment
  /// (partitionForCalibration), every sample through one segment before
  /// the next. 0: the whole model is one segment.
  uint64_t segmentBytes = kDefaultSegmentBytes;
  static constexpr uint64_t kDefaultSegmentBytes = uint64_t(512) << 20;
  /// When set, the statistics are written to this file (the cache format,
  /// CacheWriter) as each segment completes, and the returned statistics
  /// keep their Gram matrices there (TensorStats::gramPath), not in memory.
  std::string statsFile;
  /// The checksums the statistics (and the file's header) record.
  std::string modelChecksum, dataChecksum;
  /// CPU code generation, as for the compiled model (calibration always
  /// runs on this machine: the host CPU, or the --cpu the model is compiled
  /// for when this machine can run it); the int8 and table-lookup kernels
  /// are not used.
  CPUTargetOptions cpu;
  /// The processes that calibrate together (null: this one alone). Sample
  /// i runs on process i mod size; each segment's statistics are
  /// all-reduced before they are completed, so every process ends with the
  /// statistics of all samples (and writes them to its own statsFile).
  /// Every process must call calibrate with the same model and samples.
  Communicator *comm = nullptr;
  /// Inputs of a decoder with past that samples may leave out
  /// (GenerationInputs); null: every sample gives every input.
  const GenerationInputs *generation = nullptr;
};

/// Calibrates: `module` holds the prepared float model, `entry` names its
/// function (which `sig` describes); the module is not modified. The
/// function is split into segments (options.segmentBytes); each is
/// instrumented, compiled and loaded on its own, all samples run through
/// it, the values later segments read are kept (in memory) and its
/// statistics completed before the next segment starts. Every sample runs
/// once through every segment.
llvm::Expected<CalibrationStats> calibrate(mlir::ModuleOp module,
                                           llvm::StringRef entry,
                                           const ModelSignature &sig,
                                           const std::vector<Sample> &samples,
                                           const CalibrateOptions &options);

} // namespace quench::calib

#endif // QUENCH_CALIBRATION_CALIBRATE_H
