//===- Weights.h - a model's weights, streamed into artifacts ---*- C++ -*-===//
//
// Weights never become LLVM constants. Before translation to LLVM IR,
// extractWeights turns every large constant global of the lowered module
// into an external declaration and records where its bytes are (the MLIR
// context's resource blobs: a mapped ONNX external-data file, the weight
// arena, or the heap). Backends then place the bytes:
//
//  - Embedded (objects, static libraries): one "weight image" global in its
//    own large-data section (.lrodata.quench_weights), emitted by LLVM as
//    zero fill and overwritten in the object file (writeWeightSection);
//  - Appended (executables): the image is a .lbss (no file bytes) region
//    of the executable, and the bytes are appended to the executable file
//    behind a trailer; the runtime maps them over the region at load time
//    (quench_model_load);
//  - External (the calibration JIT): the declarations are resolved to the
//    blobs' own addresses, without any copy.
//
// Either way the bytes go from their source to the output file one chunk at
// a time, and mapped sources are released as they are written, so compile
// memory does not grow with the weights (docs/scaling.md).
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_TARGET_WEIGHTS_H
#define QUENCH_TARGET_WEIGHTS_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llvm {
class Module;
class GlobalVariable;
} // namespace llvm

namespace quench {

/// Where an artifact keeps its weights (see the file comment).
enum class WeightStorage { External, Embedded, Appended };

/// One weight: a constant global of the lowered module.
struct WeightEntry {
  /// The external declaration that replaced the global.
  std::string symbol;
  /// Its bytes (owned by the MLIR context's resource blobs).
  llvm::ArrayRef<char> data;
  /// Offset in the weight image.
  uint64_t offset = 0;
};

/// The weights of one model, laid out as one image.
struct WeightTable {
  /// Alignment of the image, its size, and of each entry's offset
  /// (at least).
  static constexpr uint64_t kImageAlignment = 4096;
  static constexpr uint64_t kEntryAlignment = 64;
  std::vector<WeightEntry> entries;
  /// Bytes of the image: the last entry's end, rounded up to
  /// kImageAlignment (0 without entries).
  uint64_t size = 0;
};

/// Turns every constant `llvm.mlir.global` of `module` (LLVM dialect) whose
/// value holds at least `minBytes` of raw data into an external declaration
/// of the same name and type, and returns them laid out as one image.
/// Smaller constants, and those whose element type has no byte layout (i1,
/// i4), stay where they are; unused ones are erased.
WeightTable extractWeights(mlir::ModuleOp module, uint64_t minBytes = 4096);

/// The section of the weight image in objects and libraries.
constexpr llvm::StringLiteral kWeightSectionName = ".lrodata.quench_weights";
/// The symbol of the weight image in LLVM IR (internal once defined).
constexpr llvm::StringLiteral kWeightImageSymbol = "__quench_weight_image";

/// Declares the weight image of `table` in `module` (Embedded: in section
/// kWeightSectionName; Appended: large zero-initialized data, in .lbss) and
/// replaces every weight declaration
/// by its address in the image. Returns the image declaration (what a model
/// descriptor points at), or null when `table` is empty. The image stays a
/// declaration through optimization so that nothing can read its (not yet
/// written) contents; defineWeightImage gives it its zero-filled body just
/// before object emission.
llvm::GlobalVariable *declareWeightImage(llvm::Module &module,
                                         const WeightTable &table,
                                         WeightStorage storage);

/// Turns the declaration of declareWeightImage, if `module` has one, into an
/// internal, externally initialized, zero-filled definition in its section.
void defineWeightImage(llvm::Module &module);

/// Writes the entries of `table` into the open file `fd` at `fileOffset` +
/// each entry's offset (bytes in between are left as they are: zeros in a
/// fresh object section or a hole), a chunk at a time, releasing mapped
/// source pages as they are written. `what` names the file in errors.
llvm::Error writeWeightImage(int fd, uint64_t fileOffset,
                             const WeightTable &table, llvm::StringRef what);

/// Writes the image of `table` into the section kWeightSectionName of the
/// ELF object `objectPath` (emitted with defineWeightImage's zero fill),
/// checking that the section has the image's size. Nothing to do for an
/// empty table.
llvm::Error writeWeightSection(llvm::StringRef objectPath,
                               const WeightTable &table);

/// The trailer behind weights appended to an executable: the last
/// kTrailerBytes of the file. Little-endian; the runtime reads the same
/// layout (runtime/lib/weights.c).
struct AppendedWeightsTrailer {
  static constexpr llvm::StringLiteral kMagic = "QUENCHW1"; // 8 bytes
  static constexpr uint64_t kTrailerBytes = 32;
  uint64_t offset = 0; // file offset of the image (page aligned)
  uint64_t size = 0;   // bytes of the image
};

/// Appends the weight image of `table` to the executable `path` (page
/// aligned, then the trailer); nothing for an empty table.
llvm::Error appendWeightsToExecutable(llvm::StringRef path,
                                      const WeightTable &table);

} // namespace quench

#endif // QUENCH_TARGET_WEIGHTS_H
