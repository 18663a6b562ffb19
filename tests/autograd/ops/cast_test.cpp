// to_dtype: the f32 <-> f64 cast passes gradients through, cast back to the input's dtype.
// (A finite-difference gradcheck cannot run through an f32 round trip at f64 precision, so the
// gradient is checked exactly instead: it is the identity.)

#include <gtest/gtest.h>

#include "autograd/ops.h"

namespace diffkd::testing {
namespace {

TEST(Cast, GradientIsTheUpstreamGradientInTheInputsDtype) {
  Generator gen(0);
  const Tensor x = randn({3, 4}, gen).requires_grad_();  // f32
  const Tensor w = randn({3, 4}, gen, DType::F64);
  const Tensor y = to_dtype(x, DType::F64);
  EXPECT_EQ(y.dtype(), DType::F64);
  EXPECT_EQ(y.to_vector(), x.to_vector());  // f32 -> f64 is exact
  sum(y * w).backward();
  ASSERT_EQ(x.grad().dtype(), DType::F32);
  EXPECT_EQ(x.grad().to_vector(), to_dtype(w, DType::F32).to_vector());
}

TEST(Cast, SameDtypeIsTheTensorItselfAndIntegersAreRejected) {
  const Tensor x = ones({2});
  EXPECT_EQ(to_dtype(x, DType::F32).storage(), x.storage());
  EXPECT_THROW(to_dtype(x, DType::I64), Error);
}

}  // namespace
}  // namespace diffkd::testing

#include "autograd/flop_counter.h"

namespace diffkd::testing {
namespace {

TEST(FlopCounter, CountsConvAndMatmulMultiplyAddsTwiceOnlyWhileAlive) {
  Generator gen(0);
  const Tensor x = randn({2, 3, 8, 8}, gen), w = randn({5, 3, 3, 3}, gen);
  const Tensor a = randn({4, 6, 7}, gen), b = randn({7, 9}, gen);
  conv2d(x, w);  // not counted: no counter alive
  FlopCounter counter;
  conv2d(x, w, Tensor(), {{2, 2}, {1, 1}, {0, 0}});  // out [2, 5, 4, 4]
  EXPECT_EQ(counter.flops(), 2 * (2 * 5 * 4 * 4) * (3 * 3 * 3));
  const int64_t before = counter.flops();
  matmul(a, b);  // 4 x [6x7] @ [7x9]
  EXPECT_EQ(counter.flops() - before, 2 * 4 * 6 * 7 * 9);
}

}  // namespace
}  // namespace diffkd::testing
