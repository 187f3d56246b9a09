// Status codes, errors and dtypes.
#include "quench/runtime.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

TEST(Status, EveryStatusHasADistinctString) {
  const char *expected[QUENCH_STATUS_COUNT] = {
      "ok",           "invalid argument", "dtype mismatch",
      "shape mismatch", "I/O error",      "malformed file",
      "out of memory", "unsupported",     "internal error"};
  std::set<std::string> seen;
  for (int i = 0; i < QUENCH_STATUS_COUNT; ++i) {
    const char *s = quench_status_string(static_cast<quench_status>(i));
    ASSERT_NE(s, nullptr);
    EXPECT_STREQ(s, expected[i]) << "status " << i;
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(QUENCH_STATUS_COUNT));
  EXPECT_STREQ(quench_status_string(static_cast<quench_status>(QUENCH_STATUS_COUNT)),
               "unknown status");
  EXPECT_STREQ(quench_status_string(static_cast<quench_status>(-1)),
               "unknown status");
}

TEST(Status, ErrorSetFormatsAndReturnsCode) {
  quench_error err;
  EXPECT_EQ(quench_error_set(&err, QUENCH_ERR_IO, "file '%s' line %d", "a.npy", 3),
            QUENCH_ERR_IO);
  EXPECT_EQ(err.code, QUENCH_ERR_IO);
  EXPECT_STREQ(err.message, "file 'a.npy' line 3");
  quench_error_clear(&err);
  EXPECT_EQ(err.code, QUENCH_OK);
  EXPECT_STREQ(err.message, "");
  // NULL error objects are fine.
  EXPECT_EQ(quench_error_set(nullptr, QUENCH_ERR_INTERNAL, "x"), QUENCH_ERR_INTERNAL);
  quench_error_clear(nullptr);
}

TEST(Status, ErrorMessageIsOneLineAndTruncated) {
  quench_error err;
  std::string longText(2000, 'x');
  quench_error_set(&err, QUENCH_ERR_INTERNAL, "a\nb\r%s", longText.c_str());
  EXPECT_EQ(std::strlen(err.message), static_cast<size_t>(QUENCH_ERROR_MESSAGE_SIZE - 1));
  EXPECT_EQ(std::string(err.message).substr(0, 4), "a b ");
  EXPECT_EQ(std::strchr(err.message, '\n'), nullptr);
}

TEST(Dtype, SizesAndNames) {
  struct {
    quench_dtype dtype;
    size_t size;
    const char *name;
  } cases[] = {
      {QUENCH_DTYPE_F32, 4, "f32"}, {QUENCH_DTYPE_F16, 2, "f16"},
      {QUENCH_DTYPE_BF16, 2, "bf16"}, {QUENCH_DTYPE_F64, 8, "f64"},
      {QUENCH_DTYPE_I8, 1, "i8"},   {QUENCH_DTYPE_U8, 1, "u8"},
      {QUENCH_DTYPE_I16, 2, "i16"}, {QUENCH_DTYPE_U16, 2, "u16"},
      {QUENCH_DTYPE_I32, 4, "i32"}, {QUENCH_DTYPE_U32, 4, "u32"},
      {QUENCH_DTYPE_I64, 8, "i64"}, {QUENCH_DTYPE_U64, 8, "u64"},
      {QUENCH_DTYPE_BOOL, 1, "bool"},
  };
  ASSERT_EQ(sizeof cases / sizeof cases[0], static_cast<size_t>(QUENCH_DTYPE_COUNT - 1));
  for (const auto &c : cases) {
    EXPECT_EQ(quench_dtype_size(c.dtype), c.size) << c.name;
    EXPECT_STREQ(quench_dtype_name(c.dtype), c.name);
    EXPECT_EQ(quench_dtype_from_name(c.name), c.dtype);
  }
  EXPECT_EQ(quench_dtype_size(QUENCH_DTYPE_INVALID), 0u);
  EXPECT_EQ(quench_dtype_size(static_cast<quench_dtype>(QUENCH_DTYPE_COUNT)), 0u);
  EXPECT_EQ(quench_dtype_size(static_cast<quench_dtype>(-3)), 0u);
  EXPECT_STREQ(quench_dtype_name(static_cast<quench_dtype>(99)), "invalid");
  EXPECT_EQ(quench_dtype_from_name("float32"), QUENCH_DTYPE_INVALID);
  EXPECT_EQ(quench_dtype_from_name(nullptr), QUENCH_DTYPE_INVALID);
}
