//===- GGUFReaderTest.cpp - the GGUF reader on valid and broken bytes -----===//
//
// gguf::parseGGUF is a pure function of the bytes: a small valid file is
// parsed field by field, and every prefix of it and every single-byte
// corruption of it (a deterministic sweep, the kind of input a fuzzer
// gives) is either parsed or rejected with an error, never read out of
// bounds (the test runs under the sanitizers of sanitizer builds).
//
//===----------------------------------------------------------------------===//

#include "quench/Frontend/GGUF/GGUFReader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace quench::gguf;

namespace {

struct Bytes {
  std::vector<char> v;
  template <typename T> void put(T x) {
    const char *p = reinterpret_cast<const char *>(&x);
    v.insert(v.end(), p, p + sizeof(T));
  }
  void str(const std::string &s) {
    put<uint64_t>(s.size());
    v.insert(v.end(), s.begin(), s.end());
  }
  void pad(size_t a) {
    while (v.size() % a)
      v.push_back(0);
  }
};

/// A GGUF v3 file: three key/values (a string, a u32, an array of strings)
/// and two tensors (f32 [4, 2] and q8_0 [32]).
std::vector<char> validFile() {
  Bytes b;
  b.v = {'G', 'G', 'U', 'F'};
  b.put<uint32_t>(3);
  b.put<uint64_t>(2); // tensors
  b.put<uint64_t>(3); // key/values
  b.str("general.architecture");
  b.put<uint32_t>(uint32_t(ValueType::String));
  b.str("llama");
  b.str("llama.block_count");
  b.put<uint32_t>(uint32_t(ValueType::U32));
  b.put<uint32_t>(7);
  b.str("tokenizer.ggml.tokens");
  b.put<uint32_t>(uint32_t(ValueType::Array));
  b.put<uint32_t>(uint32_t(ValueType::String));
  b.put<uint64_t>(2);
  b.str("a");
  b.str("bc");
  b.str("w");
  b.put<uint32_t>(2);
  b.put<uint64_t>(4);
  b.put<uint64_t>(2);
  b.put<uint32_t>(0); // f32
  b.put<uint64_t>(0);
  b.str("q");
  b.put<uint32_t>(1);
  b.put<uint64_t>(32);
  b.put<uint32_t>(8);  // q8_0: 34 bytes
  b.put<uint64_t>(32); // after the 32 bytes of "w"
  b.pad(32);
  for (int i = 0; i < 8; ++i)
    b.put<float>(float(i));
  for (int i = 0; i < 34; ++i)
    b.v.push_back(char(i));
  return b.v;
}

TEST(GGUFReader, ParsesAValidFile) {
  std::vector<char> bytes = validFile();
  llvm::Expected<File> f = parseGGUF(bytes);
  ASSERT_TRUE(bool(f)) << llvm::toString(f.takeError());
  EXPECT_EQ(f->version, 3u);
  EXPECT_EQ(f->find("general.architecture")->str, "llama");
  EXPECT_EQ(f->find("llama.block_count")->u, 7u);
  const Value *tokens = f->find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_EQ(tokens->strings.size(), 2u);
  EXPECT_EQ(tokens->strings[1], "bc");
  const TensorInfo *w = f->tensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->numElements(), 8u);
  ASSERT_EQ(w->data.size(), 32u);
  float third;
  std::memcpy(&third, w->data.data() + 8, 4);
  EXPECT_EQ(third, 2.0f);
  const TensorInfo *q = f->tensor("q");
  ASSERT_NE(q, nullptr);
  ASSERT_EQ(q->data.size(), 34u);
  EXPECT_EQ(q->data[33], char(33));
}

TEST(GGUFReader, EveryPrefixIsAnError) {
  std::vector<char> bytes = validFile();
  for (size_t n = 0; n < bytes.size(); ++n) {
    llvm::Expected<File> f =
        parseGGUF(llvm::ArrayRef<char>(bytes.data(), n));
    EXPECT_FALSE(bool(f)) << "prefix of " << n << " bytes parsed";
    if (!f)
      llvm::consumeError(f.takeError());
  }
}

TEST(GGUFReader, SingleByteCorruptionsNeverReadOutOfBounds) {
  std::vector<char> bytes = validFile();
  int parsed = 0, rejected = 0;
  for (size_t i = 0; i < bytes.size(); ++i)
    for (int x : {0x00, 0x01, 0x7f, 0x80, 0xff}) {
      std::vector<char> c = bytes;
      c[i] = char(x);
      // A copy of exactly the file's size, so that a read past the end
      // is a heap overflow for the sanitizers.
      std::vector<char> exact(c.begin(), c.end());
      llvm::Expected<File> f = parseGGUF(exact);
      if (f) {
        ++parsed;
        for (const TensorInfo &t : f->tensors) {
          EXPECT_GE(t.data.data(), exact.data());
          EXPECT_LE(t.data.data() + t.data.size(),
                    exact.data() + exact.size());
        }
      } else {
        ++rejected;
        llvm::consumeError(f.takeError());
      }
    }
  EXPECT_GT(parsed, 0);   // e.g. tensor data bytes
  EXPECT_GT(rejected, 0); // e.g. the magic
}

TEST(GGUFReader, NamedErrors) {
  auto message = [](std::vector<char> bytes) {
    llvm::Expected<File> f = parseGGUF(bytes);
    return f ? std::string("parsed") : llvm::toString(f.takeError());
  };
  std::vector<char> bytes = validFile();
  std::vector<char> bad = bytes;
  bad[0] = 'X';
  EXPECT_NE(message(bad).find("bad magic"), std::string::npos);
  bad = bytes;
  bad[4] = 9;
  EXPECT_NE(message(bad).find("unsupported GGUF version 9"),
            std::string::npos);
  // The second tensor's type (q8_0 = 8) becomes 77.
  bad = bytes;
  size_t typeAt = 0;
  for (size_t i = 1; i + 1 < bad.size(); ++i)
    if (bad[i] == 'q' && bad[i - 1] == 0 && bad[i + 1] == 1) {
      typeAt = i + 1 + 4 + 8; // name, rank, one dim
      break;
    }
  ASSERT_NE(typeAt, 0u);
  ASSERT_EQ(bad[typeAt], 8);
  bad[typeAt] = 77;
  EXPECT_NE(message(bad).find("tensor 'q' has unknown ggml type 77"),
            std::string::npos);
}

} // namespace
