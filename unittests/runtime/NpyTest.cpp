// .npy reading and writing with the runtime alone (NumpyFilesTest.cpp covers
// files written by NumPy).
#include "TestUtil.h"

#include <sys/stat.h>

#include <cstring>
#include <string>
#include <vector>

using quench_test::npyFile;
using quench_test::readBytes;
using quench_test::ScratchDir;
using quench_test::writeBytes;

namespace {

const quench_dtype kAllDtypes[] = {
    QUENCH_DTYPE_F32, QUENCH_DTYPE_F16, QUENCH_DTYPE_BF16, QUENCH_DTYPE_F64,
    QUENCH_DTYPE_I8,  QUENCH_DTYPE_U8,  QUENCH_DTYPE_I16,  QUENCH_DTYPE_U16,
    QUENCH_DTYPE_I32, QUENCH_DTYPE_U32, QUENCH_DTYPE_I64,  QUENCH_DTYPE_U64,
    QUENCH_DTYPE_BOOL};

/// Reads path expecting failure with the given code; checks that the
/// message mentions every needle and that *out was zeroed.
void expectReadFails(const std::string &path, quench_status code,
                     std::vector<std::string> needles) {
  quench_tensor t;
  std::memset(&t, 0xab, sizeof t);
  quench_error err;
  EXPECT_EQ(quench_npy_read(path.c_str(), &t, &err), code) << err.message;
  EXPECT_EQ(err.code, code);
  EXPECT_EQ(t.data, nullptr);
  EXPECT_EQ(t.rank, 0);
  needles.push_back(path);
  for (const auto &n : needles)
    EXPECT_NE(std::string(err.message).find(n), std::string::npos)
        << "message '" << err.message << "' lacks '" << n << "'";
  EXPECT_EQ(std::strchr(err.message, '\n'), nullptr);
  quench_tensor_free(&t);
}

std::string header(const std::string &descr, const std::string &fortran,
                   const std::string &shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + fortran +
         ", 'shape': " + shape + ", }\n";
}

class Npy : public ::testing::Test {
protected:
  ScratchDir dir;
  std::string write(const std::string &name, const std::string &bytes) {
    std::string p = dir.file(name);
    writeBytes(p, bytes);
    return p;
  }
};

} // namespace

TEST_F(Npy, RoundTripEveryDtypeAndRank) {
  for (quench_dtype dtype : kAllDtypes) {
    for (int rank = 0; rank <= QUENCH_MAX_RANK; ++rank) {
      int64_t shape[QUENCH_MAX_RANK];
      for (int i = 0; i < rank; ++i)
        shape[i] = 1 + (i + rank) % 3; // 1..3, at most 3^8 elements
      quench_tensor t;
      quench_error err;
      ASSERT_EQ(quench_tensor_alloc(&t, dtype, rank, shape, &err), QUENCH_OK) << err.message;
      size_t bytes = quench_tensor_byte_size(&t);
      auto *p = static_cast<unsigned char *>(t.data);
      for (size_t i = 0; i < bytes; ++i)
        p[i] = dtype == QUENCH_DTYPE_BOOL ? (i % 3 == 0)
                                          : static_cast<unsigned char>(i * 37 + rank);
      std::string path = dir.file(std::string(quench_dtype_name(dtype)) + "_" +
                                  std::to_string(rank) + ".npy");
      ASSERT_EQ(quench_npy_write(path.c_str(), &t, &err), QUENCH_OK) << err.message;
      EXPECT_EQ(err.code, QUENCH_OK);
      // NumPy's layout: header padded so that data starts at a multiple of 64.
      std::string file = readBytes(path);
      ASSERT_GE(file.size(), 10u);
      size_t hlen = static_cast<unsigned char>(file[8]) | static_cast<unsigned char>(file[9]) << 8;
      EXPECT_EQ((10 + hlen) % 64, 0u);
      EXPECT_EQ(file[6], 1);
      EXPECT_EQ(file[10 + hlen - 1], '\n');
      EXPECT_EQ(file.size(), 10 + hlen + bytes);

      quench_tensor back;
      ASSERT_EQ(quench_npy_read(path.c_str(), &back, &err), QUENCH_OK) << err.message;
      EXPECT_EQ(back.dtype, dtype);
      ASSERT_EQ(back.rank, rank);
      for (int i = 0; i < rank; ++i)
        EXPECT_EQ(back.shape[i], shape[i]);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(back.data) % QUENCH_TENSOR_ALIGNMENT, 0u);
      EXPECT_EQ(std::memcmp(back.data, t.data, bytes), 0);
      quench_tensor_free(&back);
      quench_tensor_free(&t);
    }
  }
}

TEST_F(Npy, WriterHeaderText) {
  quench_tensor t;
  const int64_t shape[] = {3};
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_I8, 1, shape, nullptr), QUENCH_OK);
  std::string p = dir.file("v.npy");
  ASSERT_EQ(quench_npy_write(p.c_str(), &t, nullptr), QUENCH_OK);
  std::string f = readBytes(p);
  EXPECT_NE(f.find("{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }"),
            std::string::npos) << f;
  quench_tensor_free(&t);
}

TEST_F(Npy, EmptyTensorRoundTrip) {
  quench_tensor t{};
  t.dtype = QUENCH_DTYPE_F32;
  t.rank = 2;
  t.shape[0] = 0;
  t.shape[1] = 5;
  std::string p = dir.file("e.npy");
  quench_error err;
  ASSERT_EQ(quench_npy_write(p.c_str(), &t, &err), QUENCH_OK) << err.message; // data NULL ok
  quench_tensor back;
  ASSERT_EQ(quench_npy_read(p.c_str(), &back, &err), QUENCH_OK) << err.message;
  EXPECT_EQ(back.rank, 2);
  EXPECT_EQ(back.shape[0], 0);
  EXPECT_EQ(back.shape[1], 5);
  EXPECT_NE(back.data, nullptr);
  quench_tensor_free(&back);
}

TEST_F(Npy, HeaderSyntaxVariantsAccepted) {
  const std::string data(8, '\x01');
  struct {
    const char *hdr;
    int rank;
  } ok[] = {
      {"{'descr':'<i4','fortran_order':False,'shape':(2,)}", 1},
      {"{\"shape\": (1, 2), \"descr\": \"<i4\", \"fortran_order\": False}\n", 2},
      {"  { 'fortran_order' : False , 'shape' : ( 2 , ) , 'descr' : '=i4' , }   \n", 1},
      {"{'descr': '|i4', 'fortran_order': False, 'shape': (1, 1, 2)}", 3},
      {"{'descr': '<u1', 'fortran_order': False, 'shape': (8,), }", 1},
      {"{'descr': '>u1', 'fortran_order': False, 'shape': (2, 4,), }", 2},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 0},
      {"{'descr': 'i2', 'fortran_order': False, 'shape': (+4,), }", 1},
  };
  for (const auto &c : ok) {
    std::string p = write("ok.npy", npyFile(c.hdr, data));
    quench_tensor t;
    quench_error err;
    EXPECT_EQ(quench_npy_read(p.c_str(), &t, &err), QUENCH_OK) << c.hdr << ": " << err.message;
    EXPECT_EQ(t.rank, c.rank) << c.hdr;
    quench_tensor_free(&t);
  }
  // Version 2.0 and 3.0 preambles.
  for (int major : {2, 3}) {
    std::string p = write("v.npy", npyFile(header("<i8", "False", "(1,)"), data, major));
    quench_tensor t;
    quench_error err;
    EXPECT_EQ(quench_npy_read(p.c_str(), &t, &err), QUENCH_OK) << err.message;
    EXPECT_EQ(t.dtype, QUENCH_DTYPE_I64);
    quench_tensor_free(&t);
  }
}

TEST_F(Npy, MissingFile) {
  expectReadFails(dir.file("nope.npy"), QUENCH_ERR_IO, {"cannot open", "No such file"});
}

TEST_F(Npy, DirectoryInsteadOfFile) {
  expectReadFails(dir.path(), QUENCH_ERR_IO, {"is a directory"});
}

TEST_F(Npy, FifoIsNotARegularFile) {
  std::string p = dir.file("fifo.npy");
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  expectReadFails(p, QUENCH_ERR_IO, {"not a regular file"}); // must not block
}

TEST_F(Npy, EmptyFile) {
  expectReadFails(write("e.npy", ""), QUENCH_ERR_MALFORMED_FILE, {"empty"});
}

TEST_F(Npy, BadMagic) {
  expectReadFails(write("m.npy", "PK\x03\x04 this is a zip"), QUENCH_ERR_MALFORMED_FILE,
                  {"bad magic"});
  expectReadFails(write("m2.npy", "\x93NUM"), QUENCH_ERR_MALFORMED_FILE, {"bad magic"});
}

TEST_F(Npy, BadVersion) {
  std::string f = npyFile(header("<f4", "False", "(1,)"), std::string(4, '\0'));
  f[6] = 4;
  expectReadFails(write("v.npy", f), QUENCH_ERR_MALFORMED_FILE, {"version 4.0"});
  f[6] = 1;
  f[7] = 1;
  expectReadFails(write("v2.npy", f), QUENCH_ERR_MALFORMED_FILE, {"version 1.1"});
}

TEST_F(Npy, TruncatedHeader) {
  std::string f = npyFile(header("<f4", "False", "(1,)"), "");
  expectReadFails(write("a.npy", f.substr(0, 7)), QUENCH_ERR_MALFORMED_FILE, {"truncated"});
  expectReadFails(write("b.npy", f.substr(0, 9)), QUENCH_ERR_MALFORMED_FILE, {"truncated"});
  expectReadFails(write("c.npy", f.substr(0, 30)), QUENCH_ERR_MALFORMED_FILE,
                  {"truncated", "header length"});
  // A version-2.0 preamble cut inside its 4-byte length.
  std::string g = npyFile(header("<f4", "False", "(1,)"), "", 2);
  expectReadFails(write("d.npy", g.substr(0, 11)), QUENCH_ERR_MALFORMED_FILE, {"truncated"});
}

TEST_F(Npy, TruncatedData) {
  std::string f = npyFile(header("<f4", "False", "(2, 3)"), std::string(23, '\0'));
  expectReadFails(write("t.npy", f), QUENCH_ERR_MALFORMED_FILE,
                  {"f32[2, 3]", "needs 24", "has 23", "truncated"});
}

TEST_F(Npy, TrailingBytes) {
  std::string f = npyFile(header("<f4", "False", "(2, 3)"), std::string(25, '\0'));
  expectReadFails(write("t.npy", f), QUENCH_ERR_MALFORMED_FILE, {"has 25", "trailing"});
}

TEST_F(Npy, BadDicts) {
  struct {
    const char *hdr;
    const char *needle;
  } bad[] = {
      {"", "expected '{'"},
      {"[1, 2]", "expected '{'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"},
      {"{'fortran_order': False, 'shape': (1,)}", "missing key 'descr'"},
      {"{'descr': '<f4', 'shape': (1,)}", "missing key 'fortran_order'"},
      {"{}", "missing key"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
       "unknown key 'extra'"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
       "duplicate key 'descr'"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}", "expected ',' or '}'"},
      {"{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}", "expected ':'"},
      {"{'descr': <f4, 'fortran_order': False, 'shape': (1,)}", "quoted string"},
      {"{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}", "expected ',' or '}'"},
      {"{'descr': '<f4', 'fortran_order': false, 'shape': (1,)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}", "True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': [1]}", "must be a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1)}", "not a tuple"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}", "expected an integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (a,)}", "expected an integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1 2)}", "expected ',' or ')'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "unexpected text"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}}", "unexpected text"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
       "does not fit"},
      {"{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}", "unsupported character"},
  };
  for (const auto &c : bad) {
    SCOPED_TRACE(c.hdr);
    expectReadFails(write("d.npy", npyFile(c.hdr, std::string(4, '\0'))),
                    QUENCH_ERR_MALFORMED_FILE, {"bad .npy header", c.needle});
  }
  std::string nul = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}";
  nul[3] = '\0';
  expectReadFails(write("n.npy", npyFile(nul, std::string(4, '\0'))),
                  QUENCH_ERR_MALFORMED_FILE, {"NUL byte"});
}

TEST_F(Npy, UnknownDescr) {
  for (const char *d : {"<c8", "<f16", "|O", "<M8[ns]", "float32", "<U3", "|V4"}) {
    SCOPED_TRACE(d);
    expectReadFails(write("u.npy", npyFile(header(d, "False", "(1,)"), std::string(4, '\0'))),
                    QUENCH_ERR_UNSUPPORTED, {"unsupported dtype", d});
  }
}

TEST_F(Npy, BigEndianRejected) {
  expectReadFails(write("b.npy", npyFile(header(">f4", "False", "(2,)"), std::string(8, '\0'))),
                  QUENCH_ERR_UNSUPPORTED, {"big-endian", "'>f4'", "astype('<f4')"});
}

TEST_F(Npy, FortranOrderRejected) {
  expectReadFails(write("f.npy", npyFile(header("<f4", "True", "(2, 3)"), std::string(24, '\0'))),
                  QUENCH_ERR_UNSUPPORTED, {"fortran_order True"});
}

TEST_F(Npy, NegativeDim) {
  expectReadFails(write("n.npy", npyFile(header("<f4", "False", "(2, -3)"), "")),
                  QUENCH_ERR_MALFORMED_FILE, {"negative dimension -3"});
}

TEST_F(Npy, RankAboveMaximum) {
  expectReadFails(write("r.npy", npyFile(header("|u1", "False", "(1, 1, 1, 1, 1, 1, 1, 1, 1)"),
                                         std::string(1, '\0'))),
                  QUENCH_ERR_UNSUPPORTED, {"maximum of 8"});
}

TEST_F(Npy, HugeDimsOverflow) {
  expectReadFails(write("h.npy", npyFile(header("<f8", "False",
                                                "(4294967296, 4294967296, 4)"), "")),
                  QUENCH_ERR_MALFORMED_FILE, {"overflows"});
  // Count fits, bytes do not.
  expectReadFails(write("h2.npy", npyFile(header("<f8", "False", "(4611686018427387904,)"), "")),
                  QUENCH_ERR_MALFORMED_FILE, {"overflows"});
  // No overflow but far larger than the file: rejected before allocating.
  expectReadFails(write("h3.npy", npyFile(header("<f8", "False", "(1000000000000,)"), "")),
                  QUENCH_ERR_MALFORMED_FILE, {"needs 8000000000000", "truncated"});
}

TEST_F(Npy, NullArguments) {
  quench_tensor t;
  quench_error err;
  EXPECT_EQ(quench_npy_read(nullptr, &t, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_npy_read("x.npy", nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_npy_write(nullptr, &t, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_npy_write("x.npy", nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
}

TEST_F(Npy, ReadExpect) {
  quench_tensor t;
  const int64_t shape[] = {1, 8};
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_I64, 2, shape, nullptr), QUENCH_OK);
  std::string p = dir.file("x.npy");
  ASSERT_EQ(quench_npy_write(p.c_str(), &t, nullptr), QUENCH_OK);
  quench_tensor_free(&t);

  quench_error err;
  EXPECT_EQ(quench_npy_read_expect(p.c_str(), "x", QUENCH_DTYPE_F32, 2, shape, &t, &err),
            QUENCH_ERR_DTYPE_MISMATCH);
  EXPECT_EQ(std::string(err.message),
            "input 'x': expected f32[1, 8], got i64[1, 8] (file '" + p + "')");
  EXPECT_EQ(t.data, nullptr);

  const int64_t other[] = {2, -1};
  EXPECT_EQ(quench_npy_read_expect(p.c_str(), "ids", QUENCH_DTYPE_I64, 2, other, &t, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(err.message).find("input 'ids': expected i64[2, ?], got i64[1, 8]"),
            std::string::npos) << err.message;
  const int64_t rank3[] = {1, 8, 1};
  EXPECT_EQ(quench_npy_read_expect(p.c_str(), "ids", QUENCH_DTYPE_I64, 3, rank3, &t, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  EXPECT_EQ(quench_npy_read_expect(p.c_str(), nullptr, QUENCH_DTYPE_INVALID, 1, shape, &t, &err),
            QUENCH_ERR_SHAPE_MISMATCH);
  EXPECT_NE(std::string(err.message).find("input 'tensor': expected any[1], got i64[1, 8]"),
            std::string::npos) << err.message;

  const int64_t wild[] = {-1, 8};
  ASSERT_EQ(quench_npy_read_expect(p.c_str(), "x", QUENCH_DTYPE_I64, 2, wild, &t, &err),
            QUENCH_OK) << err.message;
  EXPECT_EQ(err.code, QUENCH_OK);
  quench_tensor_free(&t);
  ASSERT_EQ(quench_npy_read_expect(p.c_str(), "x", QUENCH_DTYPE_INVALID, -1, nullptr, &t, &err),
            QUENCH_OK);
  quench_tensor_free(&t);

  // Read errors get the display name too.
  std::string missing = dir.file("missing.npy");
  EXPECT_EQ(quench_npy_read_expect(missing.c_str(), "x", QUENCH_DTYPE_F32, 2, shape, &t, &err),
            QUENCH_ERR_IO);
  EXPECT_EQ(std::string(err.message).rfind("input 'x': cannot open '" + missing, 0), 0u)
      << err.message;
  EXPECT_EQ(quench_npy_read_expect(p.c_str(), "x", QUENCH_DTYPE_F32, 9, shape, &t, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
}

TEST_F(Npy, WriteLeavesNoTempFileWhenDirectoryIsMissing) {
  quench_tensor t;
  const int64_t shape[] = {4};
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_F32, 1, shape, nullptr), QUENCH_OK);
  std::string p = dir.file("no-such-dir/out.npy");
  quench_error err;
  EXPECT_EQ(quench_npy_write(p.c_str(), &t, &err), QUENCH_ERR_IO);
  EXPECT_NE(std::string(err.message).find(p), std::string::npos) << err.message;
  EXPECT_NE(std::string(err.message).find("No such file or directory"), std::string::npos)
      << err.message;
  EXPECT_TRUE(dir.entries().empty());
  quench_tensor_free(&t);
}

TEST_F(Npy, FailedWriteKeepsExistingTarget) {
  std::string p = write("out.npy", "previous contents");
  // Invalid tensors fail before anything is created.
  quench_tensor bad{};
  bad.dtype = QUENCH_DTYPE_F32;
  bad.rank = 1;
  bad.shape[0] = -2;
  quench_error err;
  EXPECT_EQ(quench_npy_write(p.c_str(), &bad, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(err.message).find("negative"), std::string::npos) << err.message;
  bad.shape[0] = 2; // data NULL with elements
  EXPECT_EQ(quench_npy_write(p.c_str(), &bad, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(readBytes(p), "previous contents");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});
}

TEST_F(Npy, FailedRenameRemovesTempFile) {
  // The target is a non-empty directory: the temporary file is written, the
  // rename fails, and the temporary file must be gone afterwards.
  std::string target = dir.file("out.npy");
  ASSERT_EQ(mkdir(target.c_str(), 0755), 0);
  writeBytes(target + "/keep", "x");
  quench_tensor t;
  const int64_t shape[] = {4};
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_F32, 1, shape, nullptr), QUENCH_OK);
  quench_error err;
  EXPECT_EQ(quench_npy_write(target.c_str(), &t, &err), QUENCH_ERR_IO);
  EXPECT_NE(std::string(err.message).find("rename"), std::string::npos) << err.message;
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});
  EXPECT_EQ(ScratchDir::listDir(target), std::vector<std::string>{"keep"});
  quench_tensor_free(&t);
}

TEST_F(Npy, WriteReplacesExistingTargetAtomically) {
  std::string p = write("out.npy", "old");
  quench_tensor t;
  const int64_t shape[] = {2};
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_U8, 1, shape, nullptr), QUENCH_OK);
  ASSERT_EQ(quench_npy_write(p.c_str(), &t, nullptr), QUENCH_OK);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.npy"});
  quench_tensor back;
  ASSERT_EQ(quench_npy_read(p.c_str(), &back, nullptr), QUENCH_OK);
  EXPECT_EQ(back.shape[0], 2);
  quench_tensor_free(&back);
  quench_tensor_free(&t);
}
