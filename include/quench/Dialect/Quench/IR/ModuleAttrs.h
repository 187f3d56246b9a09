//===- ModuleAttrs.h - attributes that describe a whole model ----*- C++ -*-===//
//
// Names of discardable attributes set on the top-level module by importers
// and read by later stages. (Kept apart from QuenchDialect.td's attribute
// names so that adding one does not rebuild every user of the dialect.)
//
//===----------------------------------------------------------------------===//

#ifndef QUENCH_DIALECT_QUENCH_IR_MODULEATTRS_H
#define QUENCH_DIALECT_QUENCH_IR_MODULEATTRS_H

#include "llvm/ADT/StringRef.h"

namespace quench {

/// `quench.float_activations` (a UnitAttr) on a module whose weight
/// products must keep their activations in float: kernels then never
/// quantize activations on their own (the int16 activations of
/// quench-cpu-dequant-matmul's `int16-dot`). Set by the GGUF importer,
/// whose models promise the float model with dequantized weights
/// (docs/gguf.md).
inline constexpr llvm::StringLiteral kFloatActivationsAttrName =
    "quench.float_activations";

/// `quench.gguf` (a DictionaryAttr) on a module imported from GGUF: the
/// file's `general.*` and `tokenizer.*` scalar metadata.
inline constexpr llvm::StringLiteral kGGUFMetadataAttrName = "quench.gguf";

/// `quench.metadata` (a StringAttr holding a JSON object) on a module: data
/// the importer keeps for the model's users, carried unchanged into the
/// compiled artifact (quench_model.metadata, quench_model_metadata(), the
/// executable's --metadata). The GGUF importer stores the file's
/// `general.*` and `tokenizer.*` key/values there (docs/gguf.md).
inline constexpr llvm::StringLiteral kModelMetadataAttrName =
    "quench.metadata";

} // namespace quench

#endif // QUENCH_DIALECT_QUENCH_IR_MODULEATTRS_H
