// An empty batch (N = 0) flows through the UNet's ops forward and backward: empty outputs of the
// right shape and empty gradients, never a division by zero or an out-of-range read.

#include <gtest/gtest.h>

#include "autograd/ops.h"

namespace diffkd {
namespace {

TEST(EmptyBatch, ConvNormPoolAttentionAndLinearForwardAndBackward) {
  Generator gen(1);
  for (DType dtype : {DType::F32, DType::F64}) {
    Tensor x = zeros({0, 4, 6, 6}, dtype).requires_grad_();
    Tensor w = randn({8, 4, 3, 3}, gen, dtype).requires_grad_();
    Tensor b = zeros({8}, dtype).requires_grad_();
    Tensor gamma = ones({8}, dtype).requires_grad_();
    Tensor y = conv2d(x, w, b, {{1, 1}, {1, 1}});
    EXPECT_EQ(y.shape(), (Shape{0, 8, 6, 6}));
    y = group_norm(y, 4, gamma, b);
    y = avg_pool2d(y, 2);
    EXPECT_EQ(y.shape(), (Shape{0, 8, 3, 3}));
    Tensor q = reshape(y, {0, 8, 9});
    Tensor a = scaled_dot_product_attention(q, q, q);
    Tensor l = linear(reshape(a, {0, 72}), randn({5, 72}, gen, dtype));
    EXPECT_EQ(l.shape(), (Shape{0, 5}));
    sum(l).backward();
    EXPECT_EQ(x.grad().shape(), x.shape());
    ASSERT_TRUE(w.grad().defined());
    for (double g : w.grad().to_vector()) EXPECT_EQ(g, 0.0);  // no images: no gradient
  }
}

}  // namespace
}  // namespace diffkd
