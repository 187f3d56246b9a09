//===- GGUFReader.cpp - bounds-checked parser of GGUF files ---------------===//
//
// A cursor over the file's bytes reads each field after checking that it
// fits; counts are checked against the bytes left before anything is
// allocated for them (every key/value and tensor info takes at least 8
// bytes, every array element at least one), so hostile counts fail fast.
//
//===----------------------------------------------------------------------===//

#include "quench/Frontend/GGUF/GGUFReader.h"

#include "quench/Quant/GGMLBlocks.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"

#include <cmath>
#include <cstring>

using namespace quench::gguf;
using llvm::ArrayRef;
using llvm::StringRef;

namespace {

constexpr uint64_t kMaxDims = 4;        // GGML_MAX_DIMS
constexpr uint64_t kMaxStringBytes = 1 << 30;

llvm::Error fail(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg);
}

class Cursor {
public:
  explicit Cursor(ArrayRef<char> bytes) : bytes(bytes) {}

  uint64_t pos() const { return at; }
  uint64_t left() const { return bytes.size() - at; }

  /// Reads a little-endian scalar; `what` names it in the error.
  template <typename T> llvm::Error read(T &out, StringRef what) {
    if (left() < sizeof(T))
      return truncated(what);
    std::memcpy(&out, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return llvm::Error::success();
  }

  llvm::Error readString(StringRef &out, StringRef what) {
    uint64_t n;
    if (llvm::Error e = read(n, what))
      return e;
    if (n > left() || n > kMaxStringBytes)
      return truncated(what);
    out = StringRef(bytes.data() + at, n);
    at += n;
    return llvm::Error::success();
  }

  llvm::Error skip(uint64_t n, StringRef what) {
    if (n > left())
      return truncated(what);
    at += n;
    return llvm::Error::success();
  }

  ArrayRef<char> view(uint64_t from, uint64_t n) const {
    return bytes.slice(from, n);
  }

  llvm::Error truncated(StringRef what) const {
    return fail(llvm::formatv("truncated GGUF file: {0} at byte {1} runs "
                              "past the end ({2} bytes)",
                              what, at, bytes.size()));
  }

private:
  ArrayRef<char> bytes;
  uint64_t at = 0;
};

/// Bytes of one scalar of `type`; 0 for strings and arrays.
uint64_t scalarBytes(ValueType type) {
  switch (type) {
  case ValueType::U8: case ValueType::I8: case ValueType::Bool: return 1;
  case ValueType::U16: case ValueType::I16: return 2;
  case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
  case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
  default: return 0;
  }
}

bool knownValueType(uint32_t t) { return t <= uint32_t(ValueType::F64); }

llvm::Error readScalar(Cursor &c, ValueType type, Value &v, StringRef what) {
  v.type = type;
  switch (type) {
  case ValueType::U8: { uint8_t x; if (auto e = c.read(x, what)) return e; v.u = x; v.i = x; break; }
  case ValueType::I8: { int8_t x; if (auto e = c.read(x, what)) return e; v.i = x; break; }
  case ValueType::U16: { uint16_t x; if (auto e = c.read(x, what)) return e; v.u = x; v.i = x; break; }
  case ValueType::I16: { int16_t x; if (auto e = c.read(x, what)) return e; v.i = x; break; }
  case ValueType::U32: { uint32_t x; if (auto e = c.read(x, what)) return e; v.u = x; v.i = x; break; }
  case ValueType::I32: { int32_t x; if (auto e = c.read(x, what)) return e; v.i = x; break; }
  case ValueType::U64: { uint64_t x; if (auto e = c.read(x, what)) return e; v.u = x; v.i = int64_t(x); break; }
  case ValueType::I64: { int64_t x; if (auto e = c.read(x, what)) return e; v.i = x; break; }
  case ValueType::F32: { float x; if (auto e = c.read(x, what)) return e; v.f = x; break; }
  case ValueType::F64: { double x; if (auto e = c.read(x, what)) return e; v.f = x; break; }
  case ValueType::Bool: {
    uint8_t x;
    if (auto e = c.read(x, what))
      return e;
    if (x > 1)
      return fail(llvm::formatv("{0} is a bool holding {1}", what, x));
    v.i = x;
    break;
  }
  default:
    return fail("internal: not a scalar type");
  }
  // Signed values read through `u` see them as 64-bit two's complement.
  if (type == ValueType::I8 || type == ValueType::I16 ||
      type == ValueType::I32 || type == ValueType::I64 ||
      type == ValueType::Bool)
    v.u = uint64_t(v.i);
  return llvm::Error::success();
}

llvm::Error readValue(Cursor &c, uint32_t rawType, Value &v,
                      StringRef what) {
  if (!knownValueType(rawType))
    return fail(llvm::formatv("{0} has unknown value type {1}", what,
                              rawType));
  ValueType type = ValueType(rawType);
  if (type == ValueType::String) {
    v.type = type;
    return c.readString(v.str, what);
  }
  if (type != ValueType::Array)
    return readScalar(c, type, v, what);
  v.type = type;
  uint32_t et;
  if (auto e = c.read(et, what))
    return e;
  if (!knownValueType(et))
    return fail(llvm::formatv("{0} is an array of unknown value type {1}",
                              what, et));
  if (ValueType(et) == ValueType::Array)
    return fail(llvm::formatv("{0} is an array of arrays, which Quench does "
                              "not read",
                              what));
  v.elemType = ValueType(et);
  if (auto e = c.read(v.count, what))
    return e;
  if (v.elemType == ValueType::String) {
    // Every string takes at least its 8-byte length.
    if (v.count > c.left() / 8)
      return c.truncated(what);
    v.strings.reserve(v.count);
    for (uint64_t i = 0; i < v.count; ++i) {
      StringRef s;
      if (auto e = c.readString(s, what))
        return e;
      v.strings.push_back(s);
    }
    return llvm::Error::success();
  }
  uint64_t each = scalarBytes(v.elemType);
  if (v.count > c.left() / each)
    return c.truncated(what);
  uint64_t start = c.pos();
  if (v.elemType == ValueType::Bool) {
    for (uint64_t i = 0; i < v.count; ++i) {
      Value b;
      if (auto e = readScalar(c, ValueType::Bool, b, what))
        return e;
    }
  } else if (auto e = c.skip(v.count * each, what)) {
    return e;
  }
  v.raw = c.view(start, v.count * each);
  return llvm::Error::success();
}

} // namespace

StringRef quench::gguf::valueTypeName(ValueType type) {
  static const char *const names[] = {"u8",  "i8",   "u16",    "i16", "u32",
                                      "i32", "f32",  "bool",   "string",
                                      "array", "u64", "i64",   "f64"};
  uint32_t t = uint32_t(type);
  return t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

uint64_t TensorInfo::numElements() const {
  uint64_t n = 1;
  for (uint64_t d : dims)
    n *= d;
  return n;
}

const Value *File::find(StringRef key) const {
  auto it = keyIndex.find(key);
  return it == keyIndex.end() ? nullptr : &metadata[it->second].second;
}

const TensorInfo *File::tensor(StringRef name) const {
  auto it = tensorIndex.find(name);
  return it == tensorIndex.end() ? nullptr : &tensors[it->second];
}

bool quench::gguf::hasGGUFMagic(ArrayRef<char> bytes) {
  return bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0;
}

llvm::Expected<File> quench::gguf::parseGGUF(ArrayRef<char> bytes) {
  Cursor c(bytes);
  File file;
  if (bytes.size() < 4)
    return c.truncated("the magic");
  if (!hasGGUFMagic(bytes))
    return fail("not a GGUF file: bad magic (expected \"GGUF\")");
  if (auto e = c.skip(4, "the magic"))
    return std::move(e);
  if (auto e = c.read(file.version, "the version"))
    return std::move(e);
  if (file.version != 2 && file.version != 3)
    return fail(llvm::formatv("unsupported GGUF version {0} (Quench reads "
                              "versions 2 and 3)",
                              file.version));
  uint64_t tensorCount, kvCount;
  if (auto e = c.read(tensorCount, "the tensor count"))
    return std::move(e);
  if (auto e = c.read(kvCount, "the key/value count"))
    return std::move(e);
  // A key/value takes at least 12 bytes, a tensor info at least 24 (the
  // tensor count is checked once the key/values are read).
  if (kvCount > c.left() / 12)
    return fail(llvm::formatv("truncated or corrupt GGUF file: {0} "
                              "key/values cannot fit in the {1} bytes after "
                              "the header",
                              kvCount, c.left()));

  file.metadata.reserve(kvCount);
  uint64_t kvStart = c.pos();
  for (uint64_t i = 0; i < kvCount; ++i) {
    StringRef key;
    std::string what = llvm::formatv("key/value #{0}", i).str();
    if (auto e = c.readString(key, what))
      return std::move(e);
    what = "metadata '" + key.str() + "'";
    uint32_t type;
    if (auto e = c.read(type, what))
      return std::move(e);
    Value v;
    if (auto e = readValue(c, type, v, what))
      return std::move(e);
    if (!file.keyIndex.try_emplace(key, file.metadata.size()).second)
      return fail("duplicate metadata key '" + key + "'");
    file.metadata.emplace_back(key.str(), std::move(v));
  }
  file.kvBytes = c.view(kvStart, c.pos() - kvStart);

  if (const Value *a = file.find("general.alignment")) {
    if (a->type != ValueType::U32)
      return fail("general.alignment must be a u32, got " +
                  valueTypeName(a->type));
    if (a->u == 0 || (a->u & (a->u - 1)) != 0)
      return fail(llvm::formatv("general.alignment {0} is not a power of two",
                                a->u));
    file.alignment = a->u;
  }

  if (tensorCount > c.left() / 24)
    return fail(llvm::formatv("truncated or corrupt GGUF file: {0} tensor "
                              "infos cannot fit in the {1} bytes after the "
                              "key/values",
                              tensorCount, c.left()));
  file.tensors.reserve(tensorCount);
  for (uint64_t i = 0; i < tensorCount; ++i) {
    TensorInfo t;
    StringRef name;
    std::string what = llvm::formatv("tensor info #{0}", i).str();
    if (auto e = c.readString(name, what))
      return std::move(e);
    t.name = name.str();
    what = "tensor '" + t.name + "'";
    uint32_t rank;
    if (auto e = c.read(rank, what))
      return std::move(e);
    if (rank == 0 || rank > kMaxDims)
      return fail(llvm::formatv("{0} has {1} dimensions (1 to {2} allowed)",
                                what, rank, kMaxDims));
    uint64_t n = 1;
    for (uint32_t d = 0; d < rank; ++d) {
      uint64_t dim;
      if (auto e = c.read(dim, what))
        return std::move(e);
      if (dim == 0 || dim > (uint64_t(1) << 40) || n > (uint64_t(1) << 48) / dim)
        return fail(llvm::formatv("{0} has an invalid or too large dimension "
                                  "{1}",
                                  what, dim));
      n *= dim;
      t.dims.push_back(dim);
    }
    if (auto e = c.read(t.type, what))
      return std::move(e);
    if (auto e = c.read(t.offset, what))
      return std::move(e);
    if (!file.tensorIndex.try_emplace(t.name, file.tensors.size()).second)
      return fail("duplicate tensor name '" + t.name + "'");
    file.tensors.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  uint64_t dataStart =
      (c.pos() + file.alignment - 1) / file.alignment * file.alignment;
  if (dataStart > bytes.size() && !file.tensors.empty())
    return fail(llvm::formatv("truncated GGUF file: the data section would "
                              "start at byte {0}, past the end ({1} bytes)",
                              dataStart, bytes.size()));
  uint64_t dataBytes = dataStart <= bytes.size() ? bytes.size() - dataStart : 0;
  for (TensorInfo &t : file.tensors) {
    std::string what = "tensor '" + t.name + "'";
    const quant::GGMLTypeTraits *traits = quant::getGGMLTypeTraits(t.type);
    if (!traits)
      return fail(llvm::formatv("{0} has unknown ggml type {1}", what,
                                t.type));
    if (traits->blockBytes == 0)
      return fail(llvm::formatv("{0} has type {1}, which Quench does not "
                                "support",
                                what, traits->name));
    if (t.dims[0] % traits->blockElems != 0)
      return fail(llvm::formatv("{0} of type {1} has rows of {2} elements, "
                                "not a multiple of the type's block of {3}",
                                what, traits->name, t.dims[0],
                                traits->blockElems));
    uint64_t size = t.numElements() / traits->blockElems * traits->blockBytes;
    if (t.offset % file.alignment != 0)
      return fail(llvm::formatv("{0} has offset {1}, not a multiple of the "
                                "alignment {2}",
                                what, t.offset, file.alignment));
    if (t.offset > dataBytes || size > dataBytes - t.offset)
      return fail(llvm::formatv("{0} ({1} bytes at data offset {2}) extends "
                                "past the end of the file (data section of "
                                "{3} bytes)",
                                what, size, t.offset, dataBytes));
    t.data = c.view(dataStart + t.offset, size);
  }
  return std::move(file);
}

namespace {

llvm::json::Value jsonString(StringRef s) {
  if (llvm::json::isUTF8(s))
    return s.str();
  return llvm::json::fixUTF8(s);
}

llvm::json::Value jsonNumber(double f) {
  if (!std::isfinite(f))
    return nullptr;
  return f;
}

/// Element `i` of an array of scalars of `type` held in `raw`.
llvm::json::Value jsonElement(ValueType type, ArrayRef<char> raw, uint64_t i) {
  auto get = [&](auto x) {
    std::memcpy(&x, raw.data() + i * sizeof(x), sizeof(x));
    return x;
  };
  switch (type) {
  case ValueType::U8: return int64_t(get(uint8_t()));
  case ValueType::I8: return int64_t(get(int8_t()));
  case ValueType::U16: return int64_t(get(uint16_t()));
  case ValueType::I16: return int64_t(get(int16_t()));
  case ValueType::U32: return int64_t(get(uint32_t()));
  case ValueType::I32: return int64_t(get(int32_t()));
  case ValueType::U64: return get(uint64_t());
  case ValueType::I64: return get(int64_t());
  case ValueType::F32: return jsonNumber(get(float()));
  case ValueType::F64: return jsonNumber(get(double()));
  case ValueType::Bool: return get(uint8_t()) != 0;
  default: return nullptr;
  }
}

llvm::json::Value jsonValue(const Value &v) {
  switch (v.type) {
  case ValueType::String:
    return jsonString(v.str);
  case ValueType::U64:
    return v.u;
  case ValueType::U8: case ValueType::U16: case ValueType::U32:
  case ValueType::I8: case ValueType::I16: case ValueType::I32:
  case ValueType::I64:
    return v.i;
  case ValueType::Bool:
    return v.i != 0;
  case ValueType::F32: case ValueType::F64:
    return jsonNumber(v.f);
  case ValueType::Array: {
    llvm::json::Array a;
    if (v.elemType == ValueType::String) {
      a.reserve(v.strings.size());
      for (StringRef s : v.strings)
        a.push_back(jsonString(s));
    } else {
      a.reserve(v.count);
      for (uint64_t i = 0; i < v.count; ++i)
        a.push_back(jsonElement(v.elemType, v.raw, i));
    }
    return a;
  }
  }
  return nullptr;
}

} // namespace

std::string quench::gguf::metadataToJSON(const File &file,
                                         ArrayRef<StringRef> prefixes) {
  std::string out;
  llvm::raw_string_ostream os(out);
  llvm::json::OStream j(os);
  j.object([&] {
    for (const auto &kv : file.metadata) {
      StringRef key = kv.first;
      if (llvm::any_of(prefixes,
                       [&](StringRef p) { return key.starts_with(p); }))
        j.attribute(llvm::json::isUTF8(key) ? key.str()
                                            : llvm::json::fixUTF8(key),
                    jsonValue(kv.second));
    }
  });
  return out;
}

void quench::gguf::writeGGUF(llvm::raw_ostream &os, uint64_t kvCount,
                             ArrayRef<char> kvBytes,
                             ArrayRef<TensorToWrite> tensors,
                             uint64_t alignment) {
  uint64_t written = 0;
  auto put = [&](const void *p, size_t n) {
    os.write(static_cast<const char *>(p), n);
    written += n;
  };
  auto u32 = [&](uint32_t x) { put(&x, 4); };
  auto u64 = [&](uint64_t x) { put(&x, 8); };
  auto pad = [&] {
    static const char zeros[64] = {};
    uint64_t n = (alignment - written % alignment) % alignment;
    for (; n > 0; n -= std::min<uint64_t>(n, sizeof zeros))
      put(zeros, std::min<uint64_t>(n, sizeof zeros));
  };
  put("GGUF", 4);
  u32(3);
  u64(tensors.size());
  u64(kvCount);
  put(kvBytes.data(), kvBytes.size());
  uint64_t offset = 0;
  for (const TensorToWrite &t : tensors) {
    u64(t.name.size());
    put(t.name.data(), t.name.size());
    u32(t.dims.size());
    for (uint64_t d : t.dims)
      u64(d);
    u32(t.type);
    u64(offset);
    offset += (t.data.size() + alignment - 1) / alignment * alignment;
  }
  // No data section without tensors: a file may declare any power-of-two
  // alignment (up to 2^31), which only tensor data pays for.
  if (tensors.empty())
    return;
  pad();
  for (const TensorToWrite &t : tensors) {
    put(t.data.data(), t.data.size());
    pad();
  }
}
