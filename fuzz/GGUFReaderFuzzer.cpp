//===- GGUFReaderFuzzer.cpp - Fuzz the GGUF reader and block relayout -----===//
//
// Bytes -> gguf::parseGGUF (a pure function of the bytes: no file is
// written). Properties checked beyond "no crash, no leak":
// - a rejected file has a non-empty message;
// - in an accepted file, every key and tensor is found by its name (the
//   indexes agree with the lists), strings and arrays lie inside the bytes,
//   every tensor has 1-4 non-zero dims, an offset aligned to the file's
//   alignment, and data inside the bytes whose size is exactly the type's
//   block size times the block count;
// - gguf::writeGGUF (the export's writer) of the file's key/values and
//   tensors parses back to the same bytes of key/values, tensors and data;
// - gguf::metadataToJSON of every key/value gives valid JSON (an object);
// - every tensor of a type Quench compiles (up to 2^20 elements) is
//   dequantized by quant::dequantizeGGML (the block relayout of the
//   importer, unpackGGMLRows, and the NBitsForm formula), which must succeed
//   on any bytes; F32 tensors come back bit for bit.
//
//===----------------------------------------------------------------------===//

#include "FuzzInput.h"

#include "quench/Frontend/GGUF/GGUFReader.h"
#include "quench/Quant/GGMLBlocks.h"

#include "llvm/Support/JSON.h"

#include <cstring>
#include <vector>

using namespace quench;

namespace {

bool inside(llvm::ArrayRef<char> bytes, const char *p, uint64_t n) {
  return p >= bytes.data() && n <= uint64_t(bytes.end() - p);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::ArrayRef<char> bytes(reinterpret_cast<const char *>(data), size);
  llvm::Expected<gguf::File> parsed = gguf::parseGGUF(bytes);
  if (!parsed) {
    std::string msg = llvm::toString(parsed.takeError());
    FUZZ_CHECK(!msg.empty());
    return 0;
  }
  FUZZ_CHECK(gguf::hasGGUFMagic(bytes));
  const gguf::File &file = *parsed;
  FUZZ_CHECK(file.version == 2 || file.version == 3);
  FUZZ_CHECK(file.alignment > 0 &&
             (file.alignment & (file.alignment - 1)) == 0);

  for (const auto &[key, value] : file.metadata) {
    FUZZ_CHECK(file.find(key) == &value);
    if (value.type == gguf::ValueType::String)
      FUZZ_CHECK(inside(bytes, value.str.data(), value.str.size()));
    if (value.type == gguf::ValueType::Array) {
      if (value.elemType == gguf::ValueType::String) {
        FUZZ_CHECK(value.strings.size() == value.count);
        for (llvm::StringRef s : value.strings)
          FUZZ_CHECK(inside(bytes, s.data(), s.size()));
      } else {
        FUZZ_CHECK(inside(bytes, value.raw.data(), value.raw.size()));
      }
    }
  }

  // The JSON of the metadata (what the importer keeps in the artifact) is
  // valid JSON with one member per key.
  std::string json = gguf::metadataToJSON(file, {""});
  llvm::Expected<llvm::json::Value> back = llvm::json::parse(json);
  FUZZ_CHECK(static_cast<bool>(back));
  FUZZ_CHECK(back->getAsObject() != nullptr);
  FUZZ_CHECK(back->getAsObject()->size() <= file.metadata.size());

  // What the export writes (the key/values as stored, the tensors) parses
  // back to the same key/values, tensors and data.
  {
    std::vector<gguf::TensorToWrite> out;
    for (const gguf::TensorInfo &t : file.tensors)
      out.push_back({t.name, t.dims, t.type, t.data});
    std::string bytesOut;
    llvm::raw_string_ostream os(bytesOut);
    gguf::writeGGUF(os, file.metadata.size(), file.kvBytes, out,
                    file.alignment);
    llvm::Expected<gguf::File> again =
        gguf::parseGGUF(llvm::ArrayRef<char>(bytesOut.data(), bytesOut.size()));
    FUZZ_CHECK(static_cast<bool>(again));
    FUZZ_CHECK(again->kvBytes.size() == file.kvBytes.size() &&
               std::memcmp(again->kvBytes.data(), file.kvBytes.data(),
                           file.kvBytes.size()) == 0);
    FUZZ_CHECK(again->tensors.size() == file.tensors.size());
    for (size_t i = 0; i < file.tensors.size(); ++i) {
      const gguf::TensorInfo &a = file.tensors[i], &b = again->tensors[i];
      FUZZ_CHECK(a.name == b.name && a.dims == b.dims && a.type == b.type);
      FUZZ_CHECK(a.data.size() == b.data.size() &&
                 std::memcmp(a.data.data(), b.data.data(), a.data.size()) ==
                     0);
    }
  }

  for (const gguf::TensorInfo &t : file.tensors) {
    FUZZ_CHECK(file.tensor(t.name) == &t);
    FUZZ_CHECK(!t.dims.empty() && t.dims.size() <= 4);
    for (uint64_t d : t.dims)
      FUZZ_CHECK(d > 0);
    FUZZ_CHECK(t.offset % file.alignment == 0);
    FUZZ_CHECK(inside(bytes, t.data.data(), t.data.size()));
    const quant::GGMLTypeTraits *traits = quant::getGGMLTypeTraits(t.type);
    FUZZ_CHECK(traits != nullptr);
    if (traits->blockBytes == 0)
      continue;
    uint64_t n = t.numElements();
    FUZZ_CHECK(t.dims[0] % uint64_t(traits->blockElems) == 0);
    FUZZ_CHECK(t.data.size() ==
               n / uint64_t(traits->blockElems) * uint64_t(traits->blockBytes));
    if (!traits->supported || n > (uint64_t(1) << 20))
      continue;
    auto type = static_cast<quant::GGMLType>(t.type);
    std::vector<float> values(n);
    FUZZ_CHECK(quant::dequantizeGGML(
        type, reinterpret_cast<const uint8_t *>(t.data.data()), int64_t(n),
        values.data()));
    if (type == quant::GGMLType::F32)
      FUZZ_CHECK(std::memcmp(values.data(), t.data.data(), n * 4) == 0);
  }
  return 0;
}
