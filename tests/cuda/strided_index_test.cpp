// The CUDA kernels' strided addressing (cuda/strided.cuh), on the CPU: for every element, the
// offsets it computes, merged dims and 32-bit path included, against the definition
// sum_d index_d * stride_d over the unmerged shape.

#include "cuda/strided.cuh"

#include <gtest/gtest.h>

#include <vector>

namespace diffkd::cuda {
namespace {

// Offsets of element i of `shape` for each operand's strides, by the definition.
std::vector<int64_t> reference_offsets(int64_t i, const Shape& shape, const std::vector<Shape>& strides) {
  std::vector<int64_t> off(strides.size(), 0);
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t index = i % shape[d];
    i /= shape[d];
    for (size_t k = 0; k < strides.size(); ++k) off[k] += index * strides[k][d];
  }
  return off;
}

template <int N>
void expect_every_offset(const Shape& shape, const std::vector<Shape>& strides, int expected_dims, bool narrow) {
  ASSERT_EQ(strides.size(), static_cast<size_t>(N));
  StridedIndex<N> index;
  if constexpr (N == 2) index = strided_index<2>("test", shape, {&strides[0], &strides[1]});
  if constexpr (N == 3) index = strided_index<3>("test", shape, {&strides[0], &strides[1], &strides[2]});
  EXPECT_EQ(index.ndim, expected_dims) << shape_str(shape);
  EXPECT_EQ(index.narrow, narrow) << shape_str(shape);
  int64_t numel = 1;
  for (const int64_t s : shape) numel *= s;
  const int64_t step = numel > 100000 ? numel / 99991 : 1;  // every element, or ~100k spread over all
  for (int64_t i = 0; i < numel; i += step) {
    int64_t off[N];
    index.offsets(i, off);
    const std::vector<int64_t> expected = reference_offsets(i, shape, strides);
    for (int k = 0; k < N; ++k) ASSERT_EQ(off[k], expected[k]) << shape_str(shape) << " element " << i << " operand " << k;
  }
}

TEST(StridedIndex, BroadcastAndTransposedOperandsMatchTheDefinition) {
  // out [6, 5, 9] contiguous; a broadcast over dim 1; b broadcast over dim 0.
  expect_every_offset<3>({6, 5, 9}, {{45, 9, 1}, {9, 0, 1}, {0, 9, 1}}, 3, true);
  // out contiguous, x the transpose of a [9, 5, 6] tensor.
  expect_every_offset<2>({6, 5, 9}, {{45, 9, 1}, {1, 6, 30}}, 3, true);
}

TEST(StridedIndex, DimsEveryOperandWalksAsOneAreMerged) {
  // 3 of 5 channels of NCHW images: C, H and W merge (one run of 36 per image), N does not.
  expect_every_offset<2>({2, 3, 3, 4}, {{36, 12, 4, 1}, {60, 12, 4, 1}}, 2, true);
  // Nine contiguous dims against one broadcast row: the first eight merge into one dim.
  const Shape shape{2, 2, 2, 2, 2, 2, 2, 2, 3};
  const Shape row{0, 0, 0, 0, 0, 0, 0, 0, 1};
  expect_every_offset<2>(shape, {contiguous_strides(shape), row}, 2, true);
  // Size-1 dims are dropped before merging.
  expect_every_offset<2>({4, 1, 5}, {{5, 5, 1}, {1, 7, 4}}, 2, true);
}

TEST(StridedIndex, OffsetsPast31BitsTakeThe64BitPath) {
  // 3 x 4 elements whose operand strides reach past 2^31 (a view into a large buffer).
  const int64_t big = int64_t{1} << 30;
  expect_every_offset<2>({3, 4}, {{4, 1}, {big, 2 * big}}, 2, false);
  // More than 2^31 elements: 64-bit indices, sampled.
  expect_every_offset<2>({3, int64_t{1} << 30}, {{int64_t{1} << 30, 1}, {1, 0}}, 2, false);
}

TEST(StridedIndex, MoreDimsThanTheKernelsTakeIsOneClearError) {
  const Shape shape{2, 2, 2, 2, 2, 2, 2, 2, 2};
  Shape transposed(9);  // every dim reversed: nothing merges
  for (int d = 0; d < 9; ++d) transposed[d] = int64_t{1} << d;
  const Shape contiguous = contiguous_strides(shape);
  try {
    strided_index<2>("add", shape, {&contiguous, &transposed});
    FAIL() << "nine unmergeable dims were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: operands of shape [2,2,2,2,2,2,2,2,2] need 9 strided dims"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace diffkd::cuda
