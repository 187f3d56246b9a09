//===- GGUFReader.h - bounds-checked parser of GGUF files -------*- C++ -*-===//
//
// GGUF (llama.cpp's model format, versions 2 and 3): a header ("GGUF",
// version, tensor and key/value counts), typed metadata key/values, tensor
// infos (name, dims, ggml type, offset) and an aligned data section.
// parseGGUF takes the file's bytes (a mapping: nothing is copied but the
// names) and validates every count, length and offset against them, so that
// it can be given arbitrary bytes (a fuzz target is a call of it). It never
// reads tensor data; tensors keep views into the bytes.
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_FRONTEND_GGUF_GGUFREADER_H
#define QUENCH_FRONTEND_GGUF_GGUFREADER_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace quench::gguf {

/// GGUF metadata value types.
enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7,
  String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12,
};

/// The name of a value type ("u32", "string", ...).
llvm::StringRef valueTypeName(ValueType type);

/// One metadata value. Scalars are kept converted (integers in `i` or `u`,
/// floats in `f`); strings and arrays are views into the file's bytes.
struct Value {
  ValueType type = ValueType::U8;
  int64_t i = 0;              ///< signed integers and bool
  uint64_t u = 0;             ///< unsigned integers
  double f = 0;               ///< f32, f64
  llvm::StringRef str;        ///< string
  ValueType elemType = ValueType::U8; ///< array element type
  uint64_t count = 0;         ///< array length
  llvm::ArrayRef<char> raw;   ///< array of scalars: their bytes
  std::vector<llvm::StringRef> strings; ///< array of strings
};

/// One tensor info; `data` is its bytes in the data section.
struct TensorInfo {
  std::string name;
  llvm::SmallVector<uint64_t, 4> dims; ///< ggml order: dims[0] contiguous
  uint32_t type = 0;                   ///< ggml type id (GGMLType)
  uint64_t offset = 0;                 ///< from the data section's start
  llvm::ArrayRef<char> data;
  /// The element count (product of dims).
  uint64_t numElements() const;
};

/// A parsed GGUF file (views into the bytes given to parseGGUF).
struct File {
  uint32_t version = 0;
  uint64_t alignment = 32;
  std::vector<std::pair<std::string, Value>> metadata; ///< in file order
  std::vector<TensorInfo> tensors;                     ///< in file order
  /// The key/value section as stored (every key/value, in file order).
  llvm::ArrayRef<char> kvBytes;

  /// The value of `key`, or nullptr.
  const Value *find(llvm::StringRef key) const;
  /// The tensor named `name`, or nullptr.
  const TensorInfo *tensor(llvm::StringRef name) const;

  llvm::StringMap<size_t> keyIndex;
  llvm::StringMap<size_t> tensorIndex;
};

/// Parses and validates `bytes` as a GGUF file. Errors (one message each):
/// truncation at any field, bad magic, unsupported version, unknown value or
/// tensor types, counts that cannot fit in the file, nested arrays,
/// duplicate keys or tensor names, a bad general.alignment, tensors with
/// zero or too many dims, overflowing sizes, a row length not a multiple of
/// the type's block, misaligned offsets, and data past the end of the file.
llvm::Expected<File> parseGGUF(llvm::ArrayRef<char> bytes);

/// The key/values of `file` whose keys start with one of `prefixes`, as one
/// JSON object `{"KEY": VALUE, ...}` in file order: strings as JSON strings
/// (invalid UTF-8 sequences replaced by U+FFFD), integers and bools as
/// numbers and true/false, floats as numbers (shortest round-trip form of
/// the double; NaN and infinities as null), arrays as JSON arrays of those.
std::string metadataToJSON(const File &file,
                           llvm::ArrayRef<llvm::StringRef> prefixes);

/// One tensor to write: its data is `data` (the size its type and dims
/// take).
struct TensorToWrite {
  std::string name;
  llvm::SmallVector<uint64_t, 4> dims; ///< ggml order
  uint32_t type = 0;
  llvm::ArrayRef<char> data;
};

/// Writes a GGUF version 3 file: the header, `kvCount` key/values stored as
/// `kvBytes` (a File's kvBytes), the tensor infos and the data section, each
/// tensor at the next multiple of `alignment` (which must be the file's
/// general.alignment, 32 when it has none) and padded to the next one. A
/// file without tensors ends after its key/values.
void writeGGUF(llvm::raw_ostream &os, uint64_t kvCount,
               llvm::ArrayRef<char> kvBytes,
               llvm::ArrayRef<TensorToWrite> tensors, uint64_t alignment);

/// True when `bytes` starts with the GGUF magic.
bool hasGGUFMagic(llvm::ArrayRef<char> bytes);

} // namespace quench::gguf

#endif // QUENCH_FRONTEND_GGUF_GGUFREADER_H
