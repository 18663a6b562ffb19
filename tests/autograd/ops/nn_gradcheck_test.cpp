// Gradchecks of the network ops: matmul/linear (matmul.cpp), conv2d and conv_transpose2d
// (conv2d.cpp), pooling (pool.cpp), resampling (resize.cpp), normalisation (norm.cpp), softmax
// (softmax.cpp), dropout (dropout.cpp), losses (loss.cpp) and attention (attention.cpp).

#include "tests/autograd/gradcheck_harness.h"

namespace diffkd::testing {
namespace {

using L = const TensorList&;

Tensor classes(std::vector<double> v, Shape shape) { return from_vector(v, shape, DType::I64); }

std::vector<GradCase> linear_cases() {
  return {
      {"matmul_3x4_4x5", {{3, 4}, {4, 5}}, [](L x) { return matmul(x[0], x[1]); }, -1, 1, true},
      {"matmul_batched_2x3x4_2x4x2", {{2, 3, 4}, {2, 4, 2}}, [](L x) { return matmul(x[0], x[1]); }, -1, 1, true},
      {"matmul_broadcast_2x3x4_4x2", {{2, 3, 4}, {4, 2}}, [](L x) { return matmul(x[0], x[1]); }, -1, 1, true},
      {"matmul_vector_4_4x3", {{4}, {4, 3}}, [](L x) { return matmul(x[0], x[1]); }},
      {"linear_5x4_w3x4_b3", {{5, 4}, {3, 4}, {3}}, [](L x) { return linear(x[0], x[1], x[2]); }, -1, 1, true},
      {"linear_2x2x4_w3x4", {{2, 2, 4}, {3, 4}}, [](L x) { return linear(x[0], x[1]); }},
  };
}

std::vector<GradCase> conv_cases() {
  auto conv = [](std::vector<int64_t> s, std::vector<int64_t> p) {
    return [s, p](L x) { return conv2d(x[0], x[1], x[2], {s, p, {0, 0}}); };
  };
  auto convt = [](std::vector<int64_t> s, std::vector<int64_t> p, std::vector<int64_t> op) {
    return [s, p, op](L x) { return conv_transpose2d(x[0], x[1], x[2], {s, p, op}); };
  };
  return {
      {"conv2d_n2_c2_h5_w5_o3_k3_s1_p1", {{2, 2, 5, 5}, {3, 2, 3, 3}, {3}}, conv({1, 1}, {1, 1}), -1, 1, true},
      {"conv2d_n1_c2_h6_w5_o2_k3_s2_p1", {{1, 2, 6, 5}, {2, 2, 3, 3}, {2}}, conv({2, 2}, {1, 1})},
      {"conv2d_n2_c3_h4_w4_o2_k1_s1_p0", {{2, 3, 4, 4}, {2, 3, 1, 1}, {2}}, conv({1, 1}, {0, 0})},
      {"conv2d_n1_c2_h6_w6_o2_k4_s2_p1", {{1, 2, 6, 6}, {2, 2, 4, 4}, {2}}, conv({2, 2}, {1, 1}), -1, 1, true},
      {"conv_transpose2d_n1_c2_h3_w3_o2_k3_s2_p1_op1", {{1, 2, 3, 3}, {2, 2, 3, 3}, {2}}, convt({2, 2}, {1, 1}, {1, 1}), -1, 1, true},
      {"conv_transpose2d_n2_c2_h3_w2_o3_k4_s2_p1", {{2, 2, 3, 2}, {2, 3, 4, 4}, {3}}, convt({2, 2}, {1, 1}, {0, 0})},
  };
}

std::vector<GradCase> pool_resize_cases() {
  return {
      {"avg_pool2d_n2_c2_h4_w6_k2", {{2, 2, 4, 6}}, [](L x) { return avg_pool2d(x[0], 2); }, -1, 1, true},
      {"avg_pool2d_n1_c2_h5_w5_k3_s2_p1", {{1, 2, 5, 5}}, [](L x) { return avg_pool2d(x[0], 3, 2, 1); }},
      {"max_pool2d_n2_c2_h4_w4_k2", {{2, 2, 4, 4}}, [](L x) { return max_pool2d(x[0], 2); }},
      {"max_pool2d_n1_c1_h5_w5_k3_s2_p1", {{1, 1, 5, 5}}, [](L x) { return max_pool2d(x[0], 3, 2, 1); }},
      {"upsample_nearest_n1_c2_h3_w2_x2", {{1, 2, 3, 2}}, [](L x) { return square(upsample_nearest(x[0], 2)); }, -1, 1, true},
      {"resize_bilinear_n1_c2_h3_w4_to_5x7", {{1, 2, 3, 4}}, [](L x) { return square(resize_bilinear(x[0], 5, 7)); }, -1, 1, true},
      {"resize_bilinear_n1_c1_h6_w6_to_4x3", {{1, 1, 6, 6}}, [](L x) { return resize_bilinear(x[0], 4, 3); }},
  };
}

std::vector<GradCase> norm_cases() {
  return {
      {"group_norm_n2_c4_h3_w3_g2", {{2, 4, 3, 3}, {4}, {4}}, [](L x) { return group_norm(x[0], 2, x[1], x[2]); }, -1, 1, true},
      {"group_norm_n2_c3_h2_w2_g3_noaffine", {{2, 3, 2, 2}}, [](L x) { return group_norm(x[0], 3); }},
      {"group_norm_silu_n2_c4_h3_w3_g2", {{2, 4, 3, 3}, {4}, {4}}, [](L x) { return group_norm_silu(x[0], 2, x[1], x[2]); }, -1, 1, true},
      {"group_norm_silu_n2_c3_h2_w2_g3_noaffine", {{2, 3, 2, 2}}, [](L x) { return group_norm_silu(x[0], 3); }},
      {"layer_norm_3x5_last", {{3, 5}, {5}, {5}}, [](L x) { return layer_norm(x[0], {5}, x[1], x[2]); }, -1, 1, true},
      {"layer_norm_2x3x4_last2", {{2, 3, 4}}, [](L x) { return layer_norm(x[0], {3, 4}); }},
      {"batch_norm2d_train_n3_c2_h2_w3", {{3, 2, 2, 3}, {2}, {2}}, [](L x) {
         Tensor rm = zeros({2}, DType::F64), rv = ones({2}, DType::F64);
         return batch_norm(x[0], rm, rv, x[1], x[2], true);
       }, -1, 1, true},
      {"batch_norm1d_train_n5_c3", {{5, 3}, {3}, {3}}, [](L x) {
         return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true);
       }, -1, 1, true},
      {"batch_norm2d_eval_n2_c2_h2_w2", {{2, 2, 2, 2}, {2}, {2}}, [](L x) {
         Tensor rm = from_vector({0.1, -0.2}, {2}, DType::F64);
         Tensor rv = from_vector({0.5, 2.0}, {2}, DType::F64);
         return batch_norm(x[0], rm, rv, x[1], x[2], false);
       }, -1, 1, true},
      {"softmax_dim1_3x5", {{3, 5}}, [](L x) { return softmax(x[0], 1); }, -2, 2, true},
      {"softmax_dim0_2x3x4", {{2, 3, 4}}, [](L x) { return softmax(x[0], 0); }},
      {"log_softmax_dim1_3x5", {{3, 5}}, [](L x) { return log_softmax(x[0], 1); }, -2, 2, true},
      {"log_softmax_dim2_2x3x4", {{2, 3, 4}}, [](L x) { return log_softmax(x[0], -1); }},
      {"normalize_dim1_3x4", {{3, 4}}, [](L x) { return normalize(x[0], 1); }, 0.2, 1, true},
      {"dropout_p03_train_4x5", {{4, 5}}, [](L x) {
         Generator gen(7);  // the same mask at every evaluation
         return dropout(x[0], 0.3, true, gen);
       }},
  };
}

std::vector<GradCase> loss_attention_cases() {
  return {
      {"mse_loss_3x4", {{3, 4}, {3, 4}}, [](L x) { return mse_loss(x[0], x[1]); }, -1, 1, true},
      {"mse_loss_sum_3x4", {{3, 4}, {3, 4}}, [](L x) { return mse_loss(x[0], x[1], Reduction::Sum); }},
      {"l1_loss_3x4", {{3, 4}}, [](L x) { return l1_loss(x[0], full({3, 4}, 2.0, DType::F64)); }},
      {"cross_entropy_4x3", {{4, 3}}, [](L x) { return cross_entropy(x[0], classes({0, 2, 1, 2}, {4})); }, -2, 2, true},
      {"cross_entropy_smooth_sum_4x3", {{4, 3}}, [](L x) {
         return cross_entropy(x[0], classes({1, 0, 2, 2}, {4}), Reduction::Sum, 0.1);
       }},
      {"cross_entropy_spatial_2x3x2x2", {{2, 3, 2, 2}}, [](L x) {
         return cross_entropy(x[0], classes({0, 1, 2, 0, 2, 2, 1, 0}, {2, 2, 2}));
       }},
      {"kl_div_batchmean_3x4", {{3, 4}, {3, 4}}, [](L x) {
         return kl_div(log_softmax(x[0], 1), softmax(x[1], 1), Reduction::BatchMean);
       }, -1, 1, true},
      {"kl_div_log_target_sum_3x4", {{3, 4}, {3, 4}}, [](L x) {
         return kl_div(log_softmax(x[0], 1), log_softmax(x[1], 1), Reduction::Sum, true);
       }},
      {"attention_b2_l3_d4_lk5_dv2", {{2, 3, 4}, {2, 5, 4}, {2, 5, 2}}, [](L x) {
         return scaled_dot_product_attention(x[0], x[1], x[2]);
       }, -1, 1, true},
      {"attention_heads_b1_h2_l3_d2", {{1, 2, 3, 2}, {1, 2, 3, 2}, {1, 2, 3, 2}}, [](L x) {
         return scaled_dot_product_attention(x[0], x[1], x[2], 0.7);
       }},
  };
}

}  // namespace

DK_GRADCHECK_SUITE(LinearGradcheck, linear_cases());
DK_GRADCHECK_SUITE(ConvGradcheck, conv_cases());
DK_GRADCHECK_SUITE(PoolResizeGradcheck, pool_resize_cases());
DK_GRADCHECK_SUITE(NormGradcheck, norm_cases());
DK_GRADCHECK_SUITE(LossAttentionGradcheck, loss_attention_cases());

// A zero vector (a pixel a ReLU zeroed) has y = x / eps: PyTorch's gradient there is w / eps
// through the numerator and nothing through the clamped norm, never NaN.
TEST(Normalize, AZeroVectorHasAFiniteGradient) {
  Tensor x = from_vector({0, 0, 3, 4}, {2, 2}, DType::F64);
  x.requires_grad_();
  const Tensor w = from_vector({1, 2, 1, 2}, {2, 2}, DType::F64);
  sum(normalize(x, 1) * w).backward();
  const std::vector<double> g = x.grad().to_vector();
  EXPECT_DOUBLE_EQ(g[0], 1e12);
  EXPECT_DOUBLE_EQ(g[1], 2e12);
  // At (3, 4): (w - y (w . y)) / 5 with y = (0.6, 0.8), w . y = 2.2.
  EXPECT_NEAR(g[2], (1 - 0.6 * 2.2) / 5, 1e-15);
  EXPECT_NEAR(g[3], (2 - 0.8 * 2.2) / 5, 1e-15);
}

}  // namespace diffkd::testing
