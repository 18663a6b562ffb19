// The CUDA backend against the CPU backend: every kernel family from the same inputs, values and
// gradients compared by max-abs and relative error. Without a usable GPU (no device, or no
// driver as on the build machine) every test skips with one line saying why.
//
// Tolerances: elementwise maps and index ops are exact up to the libm/CUDA-math difference of
// transcendentals (a few f32 ulps: 1e-5 relative); reductions, softmax and normalisation sum in
// a different order (double accumulators on both sides: 1e-5); GEMM and convolutions accumulate
// K products in a different order in f32 (error grows like sqrt(K) ulps: 1e-4 relative for the
// K <= 600 used here). Random draws and copies must match bit for bit.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/creation.h"
#include "tensor/cuda_support.h"
#include "tests/cuda/require_gpu.h"

namespace diffkd {
namespace {

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFKD_SKIP_UNLESS_GPUS(1, testing::no_gpu_reason());
  }
};

struct Mismatch {
  double max_abs = 0, max_rel = 0;
};

// Largest |a - b|, and that relative to the tensor's scale: max |e|, floored at 1e-3. Per tensor,
// not per entry: a sum of products computed in another order (GEMM, convolution gradients) differs
// by rounding of its partial sums' size, so an entry that happens to land near zero would show a
// large per-entry relative error although the result is as accurate as its neighbours.
Mismatch compare(const Tensor& expected, const Tensor& actual) {
  EXPECT_EQ(expected.shape(), actual.shape());
  const std::vector<double> e = expected.to_vector(), a = actual.to_vector();
  Mismatch err;
  double scale = 1e-3;
  for (size_t i = 0; i < e.size() && i < a.size(); ++i) {
    const double d = std::abs(e[i] - a[i]);
    if (std::isnan(e[i]) != std::isnan(a[i])) return {INFINITY, INFINITY};
    if (std::isnan(d)) continue;  // both NaN
    err.max_abs = std::max(err.max_abs, d);
    scale = std::max(scale, std::abs(e[i]));
  }
  err.max_rel = err.max_abs / scale;
  return err;
}

void expect_close(const Tensor& expected, const Tensor& actual, double rel, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  EXPECT_EQ(actual.device().type, DeviceType::CUDA) << what;
  const Mismatch err = compare(expected, actual);
  EXPECT_LE(err.max_rel, rel) << what << ": max abs error " << err.max_abs << ", max relative " << err.max_rel;
}

using OpFn = std::function<Tensor(const TensorList&)>;

// Runs f on random CPU inputs and on the same inputs on the GPU, with the same upstream gradient,
// and compares the outputs and every input's gradient. `positive` draws inputs in (0.5, 2).
void check_op(const std::string& name, const std::vector<Shape>& shapes, const OpFn& f, double rel = 1e-5,
              bool positive = false, DType dtype = DType::F32) {
  SCOPED_TRACE(name);
  Generator gen(7);
  TensorList cpu_in, gpu_in;
  for (const Shape& s : shapes) {
    Tensor x = positive ? uniform(s, 0.5, 2.0, gen, dtype) : randn(s, gen, dtype);
    cpu_in.push_back(x.detach().requires_grad_());
    gpu_in.push_back(to_device(x, cuda_device()).detach().requires_grad_());
  }
  const Tensor y_cpu = f(cpu_in), y_gpu = f(gpu_in);
  expect_close(y_cpu, y_gpu, rel, name + " forward");
  const Tensor g = randn(y_cpu.shape(), gen, dtype);
  sum(mul(y_cpu, g)).backward();
  sum(mul(y_gpu, to_device(g, cuda_device()))).backward();
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (!cpu_in[i].grad().defined()) continue;
    expect_close(cpu_in[i].grad(), gpu_in[i].grad(), rel, name + " gradient of input " + std::to_string(i));
  }
}

TEST_F(Cuda, CopiesRoundTripExactlyInEveryLayout) {
  Generator gen(1);
  const Tensor x = randn({3, 4, 5}, gen);
  const Tensor on_gpu = to_device(x, cuda_device());
  EXPECT_EQ(compare(x, to_device(on_gpu, cpu())).max_abs, 0.0);
  // Strided source and destination on the device, and dtype conversion on the way.
  const Tensor t = transpose(on_gpu, 0, 2);
  EXPECT_EQ(compare(transpose(x, 0, 2), contiguous(t)).max_abs, 0.0);
  EXPECT_EQ(compare(to_dtype(x, DType::F64), to_dtype(on_gpu, DType::F64)).max_abs, 0.0);
  const Tensor idx = from_vector({2, 0, 1}, {3}, DType::I64);
  EXPECT_EQ(compare(idx, to_device(to_device(idx, cuda_device()), cpu())).max_abs, 0.0);
}

// to_device is differentiable: the gradient returns to the input's device, both ways.
TEST_F(Cuda, ToDeviceCarriesGradientsBack) {
  Generator gen(2);
  const Tensor x = randn({3, 5}, gen, DType::F64).requires_grad_();
  const Tensor w = randn({3, 5}, gen, DType::F64);
  sum(mul(to_device(x, cuda_device()), to_device(w, cuda_device()))).backward();
  ASSERT_EQ(x.grad().device(), cpu());
  EXPECT_EQ(compare(w, to_device(x.grad(), cuda_device())).max_abs, 0.0);
  const Tensor xg = to_device(x.detach(), cuda_device()).requires_grad_();
  sum(mul(to_device(xg, cpu()), w)).backward();
  ASSERT_EQ(xg.grad().device(), cuda_device());
  EXPECT_EQ(compare(w, xg.grad()).max_abs, 0.0);
}

// Uniform draws and f32 normals match bit for bit. f64 normals go through log, sin and cos, which
// CUDA's libm computes within 1-2 ulp and glibc within 0.5: the last bit may differ.
TEST_F(Cuda, RandomDrawsMatchTheCpu) {
  for (DType dtype : {DType::F32, DType::F64}) {
    Generator a(123), b(123);
    const Tensor cpu_n = randn({1001}, a, dtype), gpu_n = randn({1001}, b, dtype, cuda_device());
    if (dtype == DType::F32) EXPECT_EQ(compare(cpu_n, gpu_n).max_abs, 0.0);
    else EXPECT_LE(compare(cpu_n, gpu_n).max_rel, 1e-15);
    const Tensor cpu_u = rand({7, 13}, a, dtype), gpu_u = rand({7, 13}, b, dtype, cuda_device());
    EXPECT_EQ(compare(cpu_u, gpu_u).max_abs, 0.0);
  }
}

TEST_F(Cuda, FillAndArange) {
  EXPECT_EQ(compare(full({5, 3}, 2.5), full({5, 3}, 2.5, DType::F32, cuda_device())).max_abs, 0.0);
  EXPECT_EQ(compare(arange(0, 10, 0.5), arange(0, 10, 0.5, DType::F32, cuda_device())).max_abs, 0.0);
}

TEST_F(Cuda, UnaryOps) {
  const std::vector<std::pair<std::string, OpFn>> ops = {
      {"neg", [](const TensorList& x) { return neg(x[0]); }},
      {"exp", [](const TensorList& x) { return exp(x[0]); }},
      {"abs", [](const TensorList& x) { return abs(x[0]); }},
      {"square", [](const TensorList& x) { return square(x[0]); }},
      {"relu", [](const TensorList& x) { return relu(x[0]); }},
      {"leaky_relu", [](const TensorList& x) { return leaky_relu(x[0], 0.2); }},
      {"sigmoid", [](const TensorList& x) { return sigmoid(x[0]); }},
      {"tanh", [](const TensorList& x) { return tanh(x[0]); }},
      {"silu", [](const TensorList& x) { return silu(x[0]); }},
      {"softplus", [](const TensorList& x) { return softplus(x[0]); }},
      {"affine", [](const TensorList& x) { return x[0] * 3.0 - 1.0; }},
      {"clamp", [](const TensorList& x) { return clamp(x[0], -0.5, 0.7); }},
      {"pow 3", [](const TensorList& x) { return pow(x[0], 3.0); }},
  };
  for (const auto& [name, f] : ops) check_op(name, {{4, 33, 5}}, f);
  const std::vector<std::pair<std::string, OpFn>> positive_ops = {
      {"log", [](const TensorList& x) { return log(x[0]); }},
      {"sqrt", [](const TensorList& x) { return sqrt(x[0]); }},
      {"rsqrt", [](const TensorList& x) { return rsqrt(x[0]); }},
      {"reciprocal", [](const TensorList& x) { return 1.0 / x[0]; }},
      {"pow 1.7", [](const TensorList& x) { return pow(x[0], 1.7); }},
  };
  for (const auto& [name, f] : positive_ops) check_op(name, {{4, 33, 5}}, f, 1e-5, true);
}

TEST_F(Cuda, BroadcastBinaryOpsAndStridedViews) {
  const std::vector<std::pair<std::string, OpFn>> ops = {
      {"add", [](const TensorList& x) { return x[0] + x[1]; }},
      {"sub", [](const TensorList& x) { return x[0] - x[1]; }},
      {"mul", [](const TensorList& x) { return x[0] * x[1]; }},
      {"maximum", [](const TensorList& x) { return maximum(x[0], x[1]); }},
      {"minimum", [](const TensorList& x) { return minimum(x[0], x[1]); }},
      {"where", [](const TensorList& x) { return where(gt(x[0], x[1]), x[0], x[1] * 2.0); }},
      {"mul of a transposed view", [](const TensorList& x) { return transpose(x[0], 0, 2) * transpose(x[1], 0, 2); }},
  };
  for (const auto& [name, f] : ops) check_op(name, {{6, 1, 9}, {1, 5, 9}}, f);
  check_op("div", {{6, 1, 9}, {1, 5, 9}}, [](const TensorList& x) { return x[0] / x[1]; }, 1e-5, true);
  check_op("pow", {{6, 1, 9}, {1, 5, 9}}, [](const TensorList& x) { return pow(x[0], x[1]); }, 1e-5, true);
}

TEST_F(Cuda, Reductions) {
  check_op("sum all", {{7, 300}}, [](const TensorList& x) { return sum(x[0]); });
  check_op("sum dims 0 2", {{4, 6, 70}}, [](const TensorList& x) { return sum(x[0], {0, 2}); });
  check_op("sum short dim", {{40, 3}}, [](const TensorList& x) { return sum(x[0], {1}, true); });
  check_op("mean of a transpose", {{9, 130}}, [](const TensorList& x) { return mean(transpose(x[0], 0, 1), {1}); });
  check_op("max", {{5, 200}}, [](const TensorList& x) { return max(x[0], {1}); });
  check_op("var", {{5, 8, 30}}, [](const TensorList& x) { return var(x[0], {2}); });
}

TEST_F(Cuda, SoftmaxAndLosses) {
  check_op("softmax last", {{6, 257}}, [](const TensorList& x) { return softmax(x[0], -1); });
  check_op("log_softmax inner", {{3, 10, 7}}, [](const TensorList& x) { return log_softmax(x[0], 1); });
  check_op("mse", {{8, 20}, {8, 20}}, [](const TensorList& x) { return mse_loss(x[0], x[1]); });
  check_op("l1", {{8, 20}, {8, 20}}, [](const TensorList& x) { return l1_loss(x[0], x[1]); });
}

// Sizes past one block per output and past the grid's cap (65535 x 16 blocks), where a kernel
// that launches one block per row without striding, or indexes in 32 bits, first goes wrong.
TEST_F(Cuda, ShapesPastOneBlockAndPastTheGridCap) {
  check_op("sum of 70,000 rows of 200", {{70000, 200}}, [](const TensorList& x) { return sum(x[0], {1}); });
  check_op("sum of 70,000 rows of 3 (one thread per output)", {{70000, 3}},
           [](const TensorList& x) { return sum(x[0], {1}); });
  check_op("softmax of 70,000 rows", {{70000, 10}}, [](const TensorList& x) { return softmax(x[0], -1); });
  check_op("softmax of 1,100,000 rows (past the grid cap)", {{1100000, 2}},
           [](const TensorList& x) { return softmax(x[0], -1); });
  check_op("softmax of long rows", {{5, 1000}}, [](const TensorList& x) { return softmax(x[0], -1); });
  check_op("group_norm, 1,000 elements per group", {{2, 40, 10, 10}, {40}, {40}},
           [](const TensorList& x) { return group_norm(x[0], 4, x[1], x[2]); });
  check_op("matmul with k = 0", {{5, 0}, {0, 7}}, [](const TensorList& x) { return matmul(x[0], x[1]); });
  // Few outputs over long reductions are split into chunks and combined in a second pass.
  check_op("sum of 4 rows of 100,003 (6 chunks each)", {{4, 100003}},
           [](const TensorList& x) { return sum(x[0], {1}); });
  check_op("full sum of 1,000,001 (61 chunks)", {{1000001}}, [](const TensorList& x) { return sum(x[0]); });
  check_op("max of 3 strided columns of 70,001 (4 chunks each)", {{70001, 3}},
           [](const TensorList& x) { return max(x[0], {0}); });
  check_op("a conv bias gradient: sum over N, H, W of [32, 64, 32, 32] (2 chunks each)", {{32, 64, 32, 32}},
           [](const TensorList& x) { return sum(x[0], {0, 2, 3}); });
}

// 2^31 + 5 elements (8 GiB of f32): the last one is reached and summed only with 64-bit indexing.
TEST_F(Cuda, MoreThanTwoToThe31ElementsAreAllReached) {
  const int64_t n = (int64_t{1} << 31) + 5;
  Tensor x;
  try {
    x = full({n}, 1.0, DType::F32, cuda_device());
  } catch (const Error& e) {
    GTEST_SKIP() << "cannot allocate 8 GiB on this GPU: " << e.what();
  }
  const double big = 1 << 20;  // the last 3 elements: far above the f32 result's rounding (256)
  backend(x.device()).fill(narrow(x, 0, n - 3, 3), big);
  EXPECT_NEAR(sum(x, {0}).item(), static_cast<double>(n - 3) + 3 * big, 512.0);
  EXPECT_DOUBLE_EQ(narrow(x, 0, n - 1, 1).item(), big);
}

// Element-wise kernels cap their grid at 65535 x 16 blocks of 256 and stride over the rest: at
// 300M elements (1.2 GB) the second pass of the grid-stride loop runs, and must reach the end.
TEST_F(Cuda, ElementwisePastTheGridStridePass) {
  const int64_t n = 300'000'000, first_pass = int64_t{65535} * 16 * 256;
  Tensor x;
  try {
    x = full({n}, 1.0, DType::F32, cuda_device());
  } catch (const Error& e) {
    GTEST_SKIP() << "cannot allocate 1.2 GB on this GPU: " << e.what();
  }
  const Tensor y = x * 2.0 + 1.0;
  for (const int64_t i : {int64_t{0}, first_pass - 1, first_pass, first_pass + 7, n - 1})
    EXPECT_EQ(narrow(y, 0, i, 1).item(), 3.0) << "element " << i;
  EXPECT_NEAR(sum(y, {0}).item(), 3.0 * static_cast<double>(n), 1e-5 * 3.0 * static_cast<double>(n));
}

// The gradchecks' dtype on the GPU: cuBLAS's Dgemm, cuDNN's double convolutions and the f64
// instantiation of our kernels agree with the CPU to double rounding (summation order only).
TEST_F(Cuda, Float64PathsMatchTheCpu) {
  const double rel = 1e-11;
  const DType f64 = DType::F64;
  check_op("f64 silu", {{4, 33, 5}}, [](const TensorList& x) { return silu(x[0]); }, rel, false, f64);
  check_op("f64 log", {{4, 33, 5}}, [](const TensorList& x) { return log(x[0]); }, rel, true, f64);
  check_op("f64 broadcast mul", {{6, 1, 9}, {1, 5, 9}}, [](const TensorList& x) { return x[0] * x[1]; }, rel, false,
           f64);
  check_op("f64 sum dims 0 2", {{4, 6, 70}}, [](const TensorList& x) { return sum(x[0], {0, 2}); }, rel, false, f64);
  check_op("f64 softmax", {{6, 257}}, [](const TensorList& x) { return softmax(x[0], -1); }, rel, false, f64);
  check_op("f64 group_norm", {{3, 16, 5, 7}, {16}, {16}},
           [](const TensorList& x) { return group_norm(x[0], 4, x[1], x[2]); }, rel, false, f64);
  check_op("f64 matmul of transposed views", {{61, 37}, {29, 61}},
           [](const TensorList& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }, rel, false, f64);
  check_op("f64 conv2d 3x3 pad 1", {{2, 5, 9, 11}, {7, 5, 3, 3}, {7}},
           [](const TensorList& x) { return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 1}}); }, rel, false, f64);
  check_op("f64 avg_pool2d", {{2, 3, 8, 10}}, [](const TensorList& x) { return avg_pool2d(x[0], 2); }, rel, false,
           f64);
}

// Dropout's mask comes from the generator's Philox stream on either device: the same seed drops
// the same elements, so a training run's dropout does not depend on where it runs.
TEST_F(Cuda, DropoutDrawsTheCpusMask) {
  Generator data(4);
  const Tensor x = randn({3, 70, 33}, data);
  Generator a(9), b(9);
  const Tensor xc = x.detach().requires_grad_(), xg = to_device(x, cuda_device()).detach().requires_grad_();
  const Tensor yc = dropout(xc, 0.3, true, a), yg = dropout(xg, 0.3, true, b);
  EXPECT_EQ(compare(yc, yg).max_abs, 0.0);
  sum(yc).backward();
  sum(yg).backward();
  EXPECT_EQ(compare(xc.grad(), xg.grad()).max_abs, 0.0);
}

TEST_F(Cuda, GroupNorm) {
  check_op("group_norm", {{3, 16, 5, 7}, {16}, {16}},
           [](const TensorList& x) { return group_norm(x[0], 4, x[1], x[2]); });
  check_op("group_norm without affine", {{2, 8, 33}}, [](const TensorList& x) { return group_norm(x[0], 2); });
  check_op("group_norm_silu (the Backend's default composition on CUDA)", {{3, 16, 5, 7}, {16}, {16}},
           [](const TensorList& x) { return group_norm_silu(x[0], 4, x[1], x[2]); });
  // 16,384 elements per group: each thread of a 256-thread block loops 64 times over its group.
  check_op("group_norm, 16,384 elements per group", {{2, 8, 64, 64}, {8}, {8}},
           [](const TensorList& x) { return group_norm(x[0], 2, x[1], x[2]); });
}

TEST_F(Cuda, MatmulInEveryLayout) {
  check_op("matmul", {{37, 61}, {61, 29}}, [](const TensorList& x) { return matmul(x[0], x[1]); }, 1e-4);
  check_op("batched matmul with broadcast", {{3, 17, 40}, {1, 40, 11}},
           [](const TensorList& x) { return matmul(x[0], x[1]); }, 1e-4);
  check_op("matmul of transposed views", {{61, 37}, {29, 61}},
           [](const TensorList& x) { return matmul(transpose(x[0], 0, 1), transpose(x[1], 0, 1)); }, 1e-4);
  check_op("batched matmul, one operand transposed", {{3, 40, 17}, {3, 40, 11}},
           [](const TensorList& x) { return matmul(transpose(x[0], 1, 2), x[1]); }, 1e-4);
  check_op("linear", {{9, 50}, {20, 50}, {20}}, [](const TensorList& x) { return linear(x[0], x[1], x[2]); }, 1e-4);
  check_op("linear with one output (expanded gradient)", {{9, 50}, {1, 50}},
           [](const TensorList& x) { return linear(x[0], x[1]); }, 1e-4);
  check_op("attention", {{2, 16, 8}, {2, 16, 8}, {2, 16, 8}},
           [](const TensorList& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }, 1e-4);
}

TEST_F(Cuda, Convolutions) {
  check_op("conv2d 3x3 pad 1", {{2, 5, 9, 11}, {7, 5, 3, 3}, {7}},
           [](const TensorList& x) { return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 1}}); }, 1e-4);
  check_op("conv2d stride 2", {{2, 4, 10, 10}, {6, 4, 3, 3}},
           [](const TensorList& x) { return conv2d(x[0], x[1], Tensor(), {{2, 2}, {1, 1}}); }, 1e-4);
  check_op("conv2d 1x1", {{3, 16, 6, 6}, {8, 16, 1, 1}, {8}},
           [](const TensorList& x) { return conv2d(x[0], x[1], x[2]); }, 1e-4);
  check_op("conv_transpose2d with output padding", {{2, 6, 5, 5}, {6, 3, 3, 3}, {3}},
           [](const TensorList& x) { return conv_transpose2d(x[0], x[1], x[2], {{2, 2}, {1, 1}, {1, 1}}); }, 1e-4);
  check_op("conv2d of a permuted input", {{9, 11, 2, 5}, {7, 5, 3, 3}},
           [](const TensorList& x) { return conv2d(permute(x[0], {2, 3, 0, 1}), x[1], Tensor(), {{1, 1}, {1, 1}}); },
           1e-4);
}

TEST_F(Cuda, PoolingAndResampling) {
  check_op("avg_pool2d", {{2, 3, 8, 10}}, [](const TensorList& x) { return avg_pool2d(x[0], 2); });
  check_op("avg_pool2d padded", {{2, 3, 7, 7}}, [](const TensorList& x) { return avg_pool2d(x[0], 3, 2, 1); });
  check_op("max_pool2d", {{2, 3, 8, 10}}, [](const TensorList& x) { return max_pool2d(x[0], 2); });
  check_op("upsample_nearest", {{2, 3, 4, 5}}, [](const TensorList& x) { return upsample_nearest(x[0], 2); });
  check_op("resize_bilinear down", {{2, 3, 9, 13}}, [](const TensorList& x) { return resize_bilinear(x[0], 4, 6); });
  check_op("resize_bilinear up", {{2, 3, 4, 5}}, [](const TensorList& x) { return resize_bilinear(x[0], 9, 11); });
}

TEST_F(Cuda, IndexingAndJoins) {
  const Tensor idx = from_vector({3, 0, 3, 1}, {4}, DType::I64);
  const Tensor idx_gpu = to_device(idx, cuda_device());
  Generator gen(3);
  const Tensor x = randn({5, 6}, gen);
  const Tensor xg = to_device(x, cuda_device()).detach().requires_grad_();
  const Tensor xc = x.detach().requires_grad_();
  const Tensor yc = index_select(xc, 0, idx), yg = index_select(xg, 0, idx_gpu);
  expect_close(yc, yg, 0, "index_select");
  const Tensor g = randn(yc.shape(), gen);
  sum(mul(yc, g)).backward();
  sum(mul(yg, to_device(g, cuda_device()))).backward();
  expect_close(xc.grad(), xg.grad(), 1e-6, "index_select gradient (index_add with a repeated index)");
  check_op("concat and slice", {{3, 4, 5}, {3, 2, 5}},
           [](const TensorList& t) { return slice(concat({t[0], t[1]}, 1), 1, 1, 6, 2); });
  check_op("pad", {{2, 3, 4, 4}}, [](const TensorList& t) { return pad(t[0], {1, 2, 0, 1}); });
}

TEST_F(Cuda, OptimiserKernels) {
  Generator gen(5);
  const Tensor p = randn({1000}, gen), g = randn({1000}, gen), m = randn({1000}, gen), v = abs(randn({1000}, gen));
  std::vector<Tensor> cpu_t = {p.clone_data(), m.clone_data(), v.clone_data()};
  std::vector<Tensor> gpu_t = {to_device(p, cuda_device()), to_device(m, cuda_device()), to_device(v, cuda_device())};
  AdamHyper h;
  h.lr = 1e-2;
  h.weight_decay = 0.1;
  h.decoupled_weight_decay = true;
  h.step = 3;
  backend(cpu()).adam_update(cpu_t[0], g, cpu_t[1], cpu_t[2], h);
  backend(cuda_device()).adam_update(gpu_t[0], to_device(g, cuda_device()), gpu_t[1], gpu_t[2], h);
  for (int i = 0; i < 3; ++i) expect_close(cpu_t[i], gpu_t[i], 1e-6, "adam state " + std::to_string(i));
  backend(cpu()).axpby(0.25, g, 0.75, cpu_t[0]);
  backend(cuda_device()).axpby(0.25, to_device(g, cuda_device()), 0.75, gpu_t[0]);
  expect_close(cpu_t[0], gpu_t[0], 1e-6, "axpby");
}

TEST_F(Cuda, BadIndexIsAnErrorNotACrash) {
  const Tensor x = to_device(ones({3, 2}), cuda_device());
  EXPECT_THROW(index_select(x, 0, from_vector({0, 5}, {2}, DType::I64)), diffkd::Error);
}

// What runs everywhere: the build knows whether it has CUDA, and asking a CUDA-less build (or a
// machine without a GPU) for a device tensor is one clear error.
TEST(CudaSupport, NoDeviceIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  try {
    zeros({2}, DType::F32, cuda_device());
    FAIL() << "allocating on a missing device did not throw";
  } catch (const diffkd::Error& e) {
    EXPECT_NE(std::string(e.what()).find(cuda_built() ? "no usable CUDA device" : "built without CUDA"),
              std::string::npos)
        << e.what();
  }
}

// The run-time-loaded libraries are present and complete: checked wherever CUDA is built, GPU or
// not, so a broken toolkit shows up on the build machine.
TEST(CudaSupport, RunTimeLibrariesLoad) {
  if (!cuda_built()) {
    EXPECT_THROW(cuda_load_libraries(), diffkd::Error);
    DIFFKD_SKIP_UNLESS_GPUS(1, std::string("diffkd was built without CUDA"));
  }
  EXPECT_NO_THROW(cuda_load_libraries());
}

TEST(CudaSupport, ParseDevice) {
  EXPECT_EQ(parse_device("cpu"), cpu());
  EXPECT_EQ(parse_device("cuda"), cuda_device(0));
  EXPECT_EQ(parse_device("cuda:1"), cuda_device(1));
  EXPECT_THROW(parse_device("gpu"), diffkd::Error);
  EXPECT_THROW(parse_device("cuda:"), diffkd::Error);
  EXPECT_THROW(parse_device("cuda:x"), diffkd::Error);
}

// The backend's handles, allocator and caches live on one GPU: another index is refused, not
// silently run on GPU 0 (checked before any GPU is touched, so it runs on the build machine too).
TEST(CudaSupport, OnlyTheFirstGpuIsAddressable) {
  try {
    backend(cuda_device(1));
    ADD_FAILURE() << "backend(cuda:1) was accepted";
  } catch (const diffkd::Error& e) {
    const std::string why = e.what();
    if (cuda_built()) EXPECT_NE(why.find("one GPU per process, cuda:0"), std::string::npos) << why;
    else EXPECT_NE(why.find("built without CUDA"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace diffkd
