//===- ModelABI.h - the C ABI of compiled models ----------------*- C++ -*-===//
//
// What quench-compile adds around the lowered model so that C code can call
// it: the model's signature (names, element types and shapes of its inputs
// and outputs), a `<name>_model` descriptor and `<name>_run` function in the
// object (the layout is `quench_model` in runtime/include/quench/runtime.h),
// optionally a C `main` for standalone executables, the generated C header,
// and static archives. docs/compile.md describes the ABI for users.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_MODELABI_H
#define QUENCH_TARGET_MODELABI_H

#include "quench/Dialect/Quench/Transforms/Passes.h"
#include "quench/Target/Weights.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/MemoryBufferRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace llvm {
class Module;
} // namespace llvm

namespace mlir {
class ModuleOp;
namespace func {
class FuncOp;
} // namespace func
} // namespace mlir

namespace quench {

/// One input or output of a compiled model.
struct TensorSignature {
  std::string name;
  /// A `quench_dtype` value of the runtime (QUENCH_DTYPE_F32 = 1, ...).
  int dtype = 0;
  /// Dims; -1 marks a dynamic dim.
  std::vector<int64_t> shape;
  /// Human-readable type, as the runtime prints it: "f32[1, ?, 65]".
  std::string typeString() const;
};

/// The roles of a generation model's inputs and outputs (a decoder whose
/// past keys/values became caches, quench-kv-cache): indices into the
/// signature's inputs/outputs, -1 for an absent optional role.
struct GenerationSignature {
  int inputIds = -1;
  int attentionMask = -1;
  int positionIds = -1;
  int pastLength = -1;
  int logits = -1;
  /// The cache inputs, updated in place by every run.
  std::vector<int> state;
  /// Default capacity of a session (positions).
  int64_t capacity = 0;
};

/// The C-visible signature of a compiled model.
struct ModelSignature {
  /// C identifier that prefixes every exported symbol.
  std::string modelName;
  std::vector<TensorSignature> inputs;
  std::vector<TensorSignature> outputs;
  /// Set for generation models (`quench.generation` on the function).
  std::optional<GenerationSignature> generation;
  /// The model's metadata JSON (the module's `quench.metadata`), or empty.
  std::string metadata;
};

/// Whether `name` is usable as a model name: a C identifier (letters, digits,
/// '_', not starting with a digit), at most 64 characters, not a C keyword.
bool isValidModelName(llvm::StringRef name);

/// A model name derived from an output path: its file name without
/// extension (and without a leading "lib"), with every other character than
/// [A-Za-z0-9_] replaced by '_' and a '_' prepended if it would start with
/// a digit.
std::string modelNameFromPath(llvm::StringRef path);

/// The model name: `explicitName` when given, else modelNameFromPath(
/// `path`); fails unless it is a valid model name.
llvm::Expected<std::string> resolveModelName(llvm::StringRef explicitName,
                                             llvm::StringRef path);

/// Reads the signature of `func` (tensor arguments and results, names from
/// `quench.name` attributes, else input_<i>/output_<i>; memref arguments
/// are buffers the model updates in place, such as KV caches) and its
/// `quench.generation` roles. Fails with a clear message for unranked
/// tensors, other values, ranks above 8, element types the runtime has no
/// dtype for, and duplicate names.
llvm::Expected<ModelSignature> getModelSignature(mlir::func::FuncOp func,
                                                 llvm::StringRef modelName);

/// The name of the C-interface wrapper MLIR generates for a function that
/// carries `llvm.emit_c_interface`.
std::string cInterfaceName(llvm::StringRef funcName);

/// The function of `module` to compile: the one named `entryName`, else
/// the only public function with a body. Fails with one message naming the
/// candidates.
llvm::Expected<mlir::func::FuncOp> findEntryFunction(mlir::ModuleOp module,
                                                     llvm::StringRef entryName);

/// A model's entry function, ready for the C ABI.
struct ModelEntry {
  /// The function's new name, `<modelName>_graph` (its C-interface wrapper
  /// is cInterfaceName(graphFunc)).
  std::string graphFunc;
  ModelSignature signature;
};

/// Finds the entry function (findEntryFunction), reads its signature
/// (getModelSignature) and the module's metadata (`quench.metadata`), then
/// renames it
/// (and its uses) to the private, model-specific `<modelName>_graph` (so
/// that `main` stays free for executables and no two models' symbols
/// clash), marks it `llvm.emit_c_interface` and drops the `quench.name`
/// argument and result attributes, which now live in the signature.
llvm::Expected<ModelEntry> prepareModelEntry(mlir::ModuleOp module,
                                             llvm::StringRef entryName,
                                             llvm::StringRef modelName);

/// Applies quench-kv-cache (`options`) to the entry function of a prepared
/// model (prepareModelEntry) and updates entry.signature: its past inputs
/// become caches, a past-length input is added, the present outputs go,
/// and the signature gets its generation roles. Unless `required`, a model
/// without inputs matching the past pattern is left as it is. Fails with
/// the pass's error. A non-empty `unsupportedTarget` (a target that cannot
/// run generation models yet) turns a rewrite that would happen into an
/// error naming it. With `derive`, quench-derive-kv-cache first gives a
/// model exported without past its past inputs and present outputs
/// (docs/generation.md, "Deriving the cache"), then the cache rewrite
/// follows as for a model exported with past.
llvm::Error applyKVCacheToEntry(mlir::ModuleOp module, ModelEntry &entry,
                                const QuenchKVCacheOptions &options,
                                bool required,
                                llvm::StringRef unsupportedTarget = "",
                                bool derive = false);

/// The sizes in bytes of the buffers the code in `module` asks the runtime's
/// allocator for where the size is a compile-time constant: one entry per
/// call of `_mlir_memref_to_llvm_alloc`, or of
/// `_mlir_memref_to_llvm_aligned_alloc` with a constant alignment of at
/// most QUENCH_TENSOR_ALIGNMENT (over-aligned buffers are never cached), in
/// the order of the functions and their instructions. Calls with run-time
/// sizes are left out. This is the table of quench_model.buffer_sizes.
std::vector<uint64_t> collectStaticBufferSizes(const llvm::Module &module);

/// Adds the model's C ABI to `module`, which holds the lowered model whose
/// C-interface wrapper is `cInterfaceFunc`: the `<name>_model` descriptor,
/// `<name>_run`, and with `withMain` a C `main` that calls
/// quench_model_main. Every other symbol the module defines gets internal
/// linkage, so that several models link into one program. The descriptor
/// points at `weightImage` (declareWeightImage; null: the weights are
/// resolved by symbol, or there are none) with its storage kind, and at
/// the table of collectStaticBufferSizes(`module`), which the runtime
/// warms its buffer cache with at load.
llvm::Error addModelABI(llvm::Module &module, const ModelSignature &sig,
                        llvm::StringRef cInterfaceFunc, bool withMain,
                        llvm::GlobalVariable *weightImage = nullptr,
                        WeightStorage storage = WeightStorage::External);

/// The C header declaring `<name>_model` and `<name>_run` with the model's
/// inputs and outputs documented. `source` names the input model.
std::string generateHeader(const ModelSignature &sig, llvm::StringRef source);

/// Writes a static archive (GNU format with a symbol table) holding one
/// member, `object`, named `memberName`, to `os`. Large members are
/// written a chunk at a time, releasing the pages of `object` if it is a
/// MappedFile, so that an archive of a multi-gigabyte object does not take
/// its size in memory.
llvm::Error writeStaticArchive(llvm::raw_ostream &os, llvm::StringRef memberName,
                               llvm::MemoryBufferRef object);

} // namespace quench

#endif // QUENCH_TARGET_MODELABI_H
