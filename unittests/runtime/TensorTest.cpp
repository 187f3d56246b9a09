// Tensor descriptors.
#include "quench/runtime.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

TEST(Tensor, ElementCountAndByteSize) {
  quench_tensor t{};
  t.dtype = QUENCH_DTYPE_F32;
  t.rank = 3;
  t.shape[0] = 2;
  t.shape[1] = 3;
  t.shape[2] = 4;
  EXPECT_EQ(quench_tensor_num_elements(&t), 24);
  EXPECT_EQ(quench_tensor_byte_size(&t), 96u);
  t.rank = 0;
  EXPECT_EQ(quench_tensor_num_elements(&t), 1);
  EXPECT_EQ(quench_tensor_byte_size(&t), 4u);
  t.rank = 2;
  t.shape[1] = 0;
  EXPECT_EQ(quench_tensor_num_elements(&t), 0);
  EXPECT_EQ(quench_tensor_byte_size(&t), 0u);
}

TEST(Tensor, SizeRejectsBadDescriptors) {
  quench_tensor t{};
  quench_error err;
  t.dtype = QUENCH_DTYPE_INVALID;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
  t.dtype = QUENCH_DTYPE_I8;
  t.rank = QUENCH_MAX_RANK + 1;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::strstr(err.message, "rank 9"), nullptr) << err.message;
  t.rank = -1;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
  t.rank = 2;
  t.shape[0] = 3;
  t.shape[1] = -1;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_tensor_num_elements(&t), -1);
  EXPECT_EQ(quench_tensor_byte_size(&t), static_cast<size_t>(-1));
  EXPECT_EQ(quench_tensor_size(nullptr, nullptr, nullptr, &err), QUENCH_ERR_INVALID_ARGUMENT);
}

TEST(Tensor, SizeOverflow) {
  quench_tensor t{};
  quench_error err;
  t.dtype = QUENCH_DTYPE_F64;
  t.rank = 3;
  t.shape[0] = INT64_C(1) << 32;
  t.shape[1] = INT64_C(1) << 32;
  t.shape[2] = 1;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_OUT_OF_MEMORY);
  // Count fits in int64 but bytes do not.
  t.rank = 1;
  t.shape[0] = INT64_C(1) << 62;
  EXPECT_EQ(quench_tensor_size(&t, nullptr, nullptr, &err), QUENCH_ERR_OUT_OF_MEMORY);
  // An overflowing prefix followed by a zero dim is an empty tensor.
  t.rank = 3;
  t.shape[0] = INT64_MAX;
  t.shape[1] = INT64_MAX;
  t.shape[2] = 0;
  int64_t n = -1;
  size_t bytes = 1;
  EXPECT_EQ(quench_tensor_size(&t, &n, &bytes, &err), QUENCH_OK) << err.message;
  EXPECT_EQ(n, 0);
  EXPECT_EQ(bytes, 0u);
}

TEST(Tensor, AllocIsAlignedAndZeroed) {
  const int64_t shape[] = {3, 5, 7};
  for (int r = 0; r <= 3; ++r) {
    quench_tensor t;
    quench_error err;
    ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_I16, r, shape, &err), QUENCH_OK)
        << err.message;
    ASSERT_NE(t.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % QUENCH_TENSOR_ALIGNMENT, 0u);
    EXPECT_EQ(t.rank, r);
    size_t bytes = quench_tensor_byte_size(&t);
    for (size_t i = 0; i < bytes; ++i)
      ASSERT_EQ(static_cast<unsigned char *>(t.data)[i], 0);
    for (int i = r; i < QUENCH_MAX_RANK; ++i)
      EXPECT_EQ(t.shape[i], 0);
    quench_tensor_free(&t);
    EXPECT_EQ(t.data, nullptr);
    quench_tensor_free(&t); // twice is fine
  }
  quench_tensor_free(nullptr);
}

TEST(Tensor, AllocZeroElementsGivesNonNullBuffer) {
  const int64_t shape[] = {0, 4};
  quench_tensor t;
  ASSERT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_F32, 2, shape, nullptr), QUENCH_OK);
  EXPECT_NE(t.data, nullptr);
  quench_tensor_free(&t);
}

TEST(Tensor, AllocFailuresLeaveZeroedDescriptor) {
  quench_tensor t;
  quench_error err;
  const int64_t huge[] = {INT64_C(1) << 40, INT64_C(1) << 40};
  EXPECT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_F32, 2, huge, &err), QUENCH_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(t.data, nullptr);
  EXPECT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_F32, 2, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(quench_tensor_alloc(nullptr, QUENCH_DTYPE_F32, 0, nullptr, &err),
            QUENCH_ERR_INVALID_ARGUMENT);
  // Allocation that passes the overflow checks but cannot be satisfied.
  const int64_t big[] = {INT64_C(1) << 60};
  EXPECT_EQ(quench_tensor_alloc(&t, QUENCH_DTYPE_U8, 1, big, &err), QUENCH_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(t.data, nullptr);
}

TEST(Tensor, FormatType) {
  char buf[64];
  const int64_t shape[] = {1, -1, 8};
  EXPECT_EQ(quench_format_type(QUENCH_DTYPE_F32, 3, shape, buf, sizeof buf), 12);
  EXPECT_STREQ(buf, "f32[1, ?, 8]");
  quench_format_type(QUENCH_DTYPE_BOOL, 0, nullptr, buf, sizeof buf);
  EXPECT_STREQ(buf, "bool[]");
  quench_format_type(QUENCH_DTYPE_I64, 2, shape, buf, 5);
  EXPECT_STREQ(buf, "i64[");
}
