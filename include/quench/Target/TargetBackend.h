//===- TargetBackend.h - the interface every code generation target implements -*- C++ -*-===//
//
// A target backend turns a model that went through the shared front
// pipeline (include/quench/Pipelines/Pipelines.h: prepare, calibrate,
// quantize, to-linalg) into an artifact for one kind of processor:
//
//   front stages ─► appendCodegenStages (target's passes, down to the LLVM
//   dialect) ─► translateToLLVMIR (host LLVM IR + the model's C ABI; device
//   code serialized and embedded here) ─► optimizeLLVMIR ─► emitObject
//   ─► writeArtifact (object + C header, static library, or executable
//   linked with getRuntimeLibraries()).
//
// Backends register themselves by name (registerTargetBackend); drivers
// pick one with `--target=NAME` (createTargetBackendFromCLOptions). Each
// backend owns its options: programmatic (its own options struct and
// factory, e.g. createCPUTargetBackend) and command-line options that it
// registers itself, so that the driver only parses its command line.
// lib/Target/CPU is the first implementation; docs/architecture.md has the
// recipe for adding one.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_TARGETBACKEND_H
#define QUENCH_TARGET_TARGETBACKEND_H

#include "quench/Target/Weights.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace llvm {
class LLVMContext;
class Module;
class raw_pwrite_stream;
} // namespace llvm

namespace quench {

class PhaseTimer;
class StageDumper;
struct ModelSignature;
struct PipelineStage;

/// What a compile produces after the code generation stages.
enum class ArtifactKind {
  /// Optimized LLVM IR as text (OUT.ll), for reading.
  LLVMIR,
  /// OUT.o and its C header OUT.h.
  Object,
  /// DIR/libNAME.a (one member) and its C header DIR/NAME.h.
  StaticLibrary,
  /// A standalone executable (`OUT --input NAME=FILE.npy ...`).
  Executable,
};

/// The runtime pieces an artifact links besides its own object.
struct RuntimeLibraries {
  /// Archives of the Quench runtime, by file name
  /// ("libquench_runtime.a"), found next to the compiler.
  std::vector<std::string> archives;
  /// System libraries, as linker arguments ("-lm").
  std::vector<std::string> systemLibraries;
};

/// The model facts serialization needs, fixed once the entry function is
/// known (lib/Target/CPU/ModelABI).
struct ModelABIRequest {
  /// The C signature (inputs, outputs, the model name that prefixes every
  /// exported symbol).
  const ModelSignature *signature = nullptr;
  /// The lowered entry function's C-interface wrapper (cInterfaceName).
  std::string entryCInterface;
  /// Also define a C `main` (standalone executables).
  bool withMain = false;
  /// The input model's path, named in the generated header.
  std::string sourcePath;
  /// The model's weights (extractWeights), which the artifact places as
  /// `weightStorage` says; null when the module kept its constants.
  const WeightTable *weights = nullptr;
  WeightStorage weightStorage = WeightStorage::Embedded;
};

/// One code generation target. Instances are configured (options resolved,
/// e.g. the host CPU's features) when created; every method may be called
/// for several modules.
class TargetBackend {
public:
  virtual ~TargetBackend();

  /// The name `--target` selects ("cpu").
  virtual llvm::StringRef getName() const = 0;
  /// The target as messages name it ("CPU": "has no CPU lowering yet").
  virtual llvm::StringRef getDisplayName() const = 0;

  /// Appends the target's code generation stages, which take the module
  /// from the front pipeline's last stage (`to-linalg`: linalg, tensor,
  /// arith, math on tensors) to the LLVM dialect (host code, plus device
  /// modules for accelerators).
  virtual void appendCodegenStages(std::vector<PipelineStage> &stages) const = 0;

  /// Constant globals of at least this many bytes become the weight image
  /// (extractWeights); smaller ones stay constants of the host code. A
  /// target whose kernels cannot read host memory returns 0.
  virtual uint64_t getMinWeightBytes() const { return 4096; }

  /// Whether the target compiles entry functions with memref arguments the
  /// model updates in place (the KV caches of generation models,
  /// quench-kv-cache; docs/generation.md).
  virtual bool supportsInPlaceInputs() const { return true; }

  /// Whether the target has kernels for N:M weights in compressed storage
  /// (quench.sparse_linear, quench-pack-sparse-weights; docs/sparsity.md).
  /// Pruned layers of other targets stay dense.
  virtual bool supportsCompressedSparseWeights() const { return false; }

  /// Whether the target has a kernel for unstructured pruned 8-bit codes in
  /// bitmask storage (quench-pack-sparse-weights' `bitmask` option;
  /// docs/sparsity.md, "Unstructured storage").
  virtual bool supportsBitmaskSparseWeights() const { return false; }

  /// Writes the device code of the lowered `module` (after the code
  /// generation stages) as assembly text, PTX for CUDA, at `outputPath`
  /// (".ptx" appended when it has no extension; "-" is stdout). Returns
  /// the path written ("" for stdout). Targets without device code fail.
  virtual llvm::Expected<std::string>
  writeDeviceAssembly(mlir::ModuleOp module, llvm::StringRef outputPath) const;

  /// The steps after the code generation stages, as (name, description)
  /// pairs for `quench-compile --list-stages` (e.g. "llvm", "codegen-obj").
  virtual std::vector<std::pair<std::string, std::string>>
  describeSerialization() const = 0;

  /// Translates the lowered `module` to host LLVM IR in `context` and adds
  /// the model's C ABI (the `<name>_model` descriptor, `<name>_run`, and
  /// `main` if asked). Device code is serialized to binaries and embedded
  /// here. The weights of `abi.weights` (already declarations in `module`)
  /// are addressed where `abi.weightStorage` puts them.
  virtual llvm::Expected<std::unique_ptr<llvm::Module>>
  translateToLLVMIR(mlir::ModuleOp module, llvm::LLVMContext &context,
                    const ModelABIRequest &abi) const = 0;

  /// Optimizes host LLVM IR for the target at the backend's level.
  virtual void optimizeLLVMIR(llvm::Module &module) const = 0;

  /// Writes `module` as a host object file (the weight image, if any, as
  /// zero fill that writeArtifact overwrites).
  virtual llvm::Error emitObject(llvm::Module &module,
                                 llvm::raw_pwrite_stream &os) const = 0;

  /// The runtime pieces an artifact of this target links.
  virtual RuntimeLibraries getRuntimeLibraries() const = 0;

  /// Writes the artifact of `kind` (not LLVMIR) at `outputPath` (the path
  /// conventions of quench-compile -o) from the host object file
  /// `objectPath` (a temporary in the output's directory that this call
  /// may rename or modify; the caller removes it if it is still there),
  /// with the weights of `abi` and its C header, atomically: a failure
  /// leaves no partial output. Returns the path of the main file written
  /// (the object, archive or executable).
  virtual llvm::Expected<std::string>
  writeArtifact(ArtifactKind kind, llvm::StringRef outputPath,
                const ModelABIRequest &abi,
                llvm::StringRef objectPath) const = 0;
};

/// Everything after the code generation stages: takes the weights out of
/// `module` (extractWeights), translates it with `backend` (then releases
/// it), dumps
/// the LLVM IR before and after optimization through `dumper`
/// (llvm.ll, llvm-opt.ll), and writes the artifact of `kind` at
/// `outputPath` (LLVMIR: OUT.ll, or stdout for "-"). `timer` sees the
/// phases translate, llvm-opt, codegen-obj and write (link for
/// executables). Returns the path of the main file written ("" for
/// stdout).
llvm::Expected<std::string>
serializeModel(const TargetBackend &backend,
               mlir::OwningOpRef<mlir::ModuleOp> &module,
               const ModelABIRequest &abi, ArtifactKind kind,
               llvm::StringRef outputPath, StageDumper &dumper,
               PhaseTimer &timer);

/// Creates a configured backend, or fails with one message (e.g. an
/// unknown CPU name).
using TargetBackendFactory =
    std::function<llvm::Expected<std::unique_ptr<TargetBackend>>()>;

/// Registers a backend under `name` (what --target selects). Later
/// registrations of the same name are ignored.
void registerTargetBackend(llvm::StringRef name, llvm::StringRef description,
                           TargetBackendFactory factory);

/// A registered backend.
struct RegisteredTargetBackend {
  std::string name;
  std::string description;
};
/// The registered backends, in registration order.
std::vector<RegisteredTargetBackend> getRegisteredTargetBackends();

/// Creates the backend registered as `name`. An unknown name fails with
/// one line listing the registered ones.
llvm::Expected<std::unique_ptr<TargetBackend>>
createTargetBackend(llvm::StringRef name);

/// Registers the generic target options of the compile driver (--target)
/// in their own category; each backend registers its own
/// (registerAllTargetBackends calls both).
void registerTargetCLOptions();
/// The category of the target options (generic and per backend).
llvm::cl::OptionCategory &getTargetCLOptionCategory();
/// The backend the command line selects (--target, default "cpu"),
/// configured from its command-line options.
llvm::Expected<std::unique_ptr<TargetBackend>>
createTargetBackendFromCLOptions();

} // namespace quench

#endif // QUENCH_TARGET_TARGETBACKEND_H
