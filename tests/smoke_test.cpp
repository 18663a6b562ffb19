#include <gtest/gtest.h>

#include "autograd/ops.h"

namespace diffkd {
TEST(Smoke, SumOfSquaresGradient) {
  Tensor x = from_vector({1, 2, 3}, {3}, DType::F64).requires_grad_();
  Tensor y = sum(x * x);
  y.backward();
  EXPECT_EQ(y.item(), 14.0);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 4, 6}));
}
}  // namespace diffkd
