// conv2d forward and forward+backward (3x3, stride 1, padding 1, C_in = C_out) at the UNet shapes.
// FLOPs: forward 2 * N * C_out * H * W * C_in * 9; backward twice that (input and weight grads).

#include "bench/bench_util.h"
#include "tensor/backend.h"
#include "tensor/cpu/conv_direct.h"
#include "tensor/cpu/conv_winograd.h"

namespace diffkd::bench {
namespace {

void BM_Conv2dForward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen), w = randn({c, c, 3, 3}, gen), b = randn({c}, gen);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = conv2d(x, w, b, {{1, 1}, {1, 1}, {0, 0}});
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_flops(state, 2.0 * kBatch * c * s * s * c * 9);
  state.SetLabel("n64_c" + std::to_string(c) + "_" + std::to_string(s) + "x" + std::to_string(s));
}

void BM_Conv2dForwardBackward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen).requires_grad_();
  Tensor w = randn({c, c, 3, 3}, gen).requires_grad_();
  Tensor b = randn({c}, gen).requires_grad_();
  const Tensor gy = randn({kBatch, c, s, s}, gen);
  for (auto _ : state) {
    Tensor y = conv2d(x, w, b, {{1, 1}, {1, 1}, {0, 0}});
    y.backward(gy);
    benchmark::DoNotOptimize(w.grad().raw_data());
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
  }
  set_flops(state, 3 * 2.0 * kBatch * c * s * s * c * 9);
  state.SetLabel("n64_c" + std::to_string(c) + "_" + std::to_string(s) + "x" + std::to_string(s));
}

BENCHMARK(BM_Conv2dForward)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Conv2dForwardBackward)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench

namespace diffkd::bench {
namespace {

// The two backward kernels alone (no autograd), to see where fwd+bwd time goes.
void BM_Conv2dKernelBackwardInput(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor gy = randn({kBatch, c, s, s}, gen), w = randn({c, c, 3, 3}, gen);
  Tensor gx = Tensor::empty({kBatch, c, s, s});
  for (auto _ : state) backend(cpu()).conv2d_backward_input(gy, w, gx, {1, 1, 1, 1});
  set_flops(state, 2.0 * kBatch * c * s * s * c * 9);
}

void BM_Conv2dKernelBackwardWeight(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen), gy = randn({kBatch, c, s, s}, gen);
  Tensor gw = Tensor::empty({c, c, 3, 3});
  for (auto _ : state) backend(cpu()).conv2d_backward_weight(x, gy, gw, {1, 1, 1, 1});
  set_flops(state, 2.0 * kBatch * c * s * s * c * 9);
}

BENCHMARK(BM_Conv2dKernelBackwardInput)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Conv2dKernelBackwardWeight)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench

namespace diffkd::bench {
namespace {

// The three kernels at the CIFAR-10 UNet's shapes (ddpm-cifar10: C 128 at 32x32, 256 below;
// training batch 8) and its batch-1 inference, each against its FLOPs (2 N C_out H W C_in 9).
struct ConvShape {
  int64_t batch, channels, size;
};
constexpr ConvShape kCifarShapes[] = {{8, 128, 32}, {8, 256, 16}, {8, 256, 8}, {8, 256, 4},
                                      {1, 128, 32}, {1, 256, 16}, {1, 256, 8}, {1, 256, 4}};

std::string shape_label(const ConvShape& s) {
  return "n" + std::to_string(s.batch) + "_c" + std::to_string(s.channels) + "_" +
         std::to_string(s.size) + "x" + std::to_string(s.size);
}

void BM_Conv2dCifarKernel(benchmark::State& state) {
  const ConvShape s = kCifarShapes[state.range(0)];
  // 0 forward, 1 input grad, 2 weight grad, 3 forward reusing the packed weight (inference)
  const int kernel = static_cast<int>(state.range(1));
  Generator gen(0);
  const int64_t n = s.batch, c = s.channels, h = s.size;
  Tensor x = randn({n, c, h, h}, gen), w = randn({c, c, 3, 3}, gen), b = randn({c}, gen);
  Tensor gy = randn({n, c, h, h}, gen), out = Tensor::empty({n, c, h, h});
  Tensor gw = Tensor::empty({c, c, 3, 3});
  Backend& be = backend(cpu());
  const Conv2dParams p{1, 1, 1, 1};
  Conv2dParams reuse = p;
  reuse.reuse_packed_weight = true;
  for (auto _ : state) {
    if (kernel == 0) be.conv2d_forward(x, w, b, out, p);
    else if (kernel == 3) be.conv2d_forward(x, w, b, out, reuse);
    else if (kernel == 1) be.conv2d_backward_input(gy, w, out, p);
    else be.conv2d_backward_weight(x, gy, gw, p);
  }
  set_flops(state, 2.0 * n * c * h * h * c * 9);
  const char* names[] = {"forward", "input_grad", "weight_grad", "forward_reusing_weights"};
  state.SetLabel(std::string(names[kernel]) + " " + shape_label(s));
}

BENCHMARK(BM_Conv2dCifarKernel)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 7, 1), {0, 1, 2, 3}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The rule that picks Winograd F(2x2, 3x3) over the direct kernel (conv.cpp winograd_applies) is
// measured here: both forward kernels on pre-packed weights (the inference path; training packs
// per call: 0.3 ms Winograd, 0.08 ms direct at C = O = 256, BM_Conv2dCifarKernel's
// forward rows), at the CIFAR-10 shapes above and MNIST's training shapes.
// GFLOP/s are the direct convolution's FLOPs over the time, so the two rows compare as speed.
constexpr ConvShape kRuleShapes[] = {{8, 128, 32}, {8, 256, 16}, {8, 256, 8}, {8, 256, 4},
                                     {1, 128, 32}, {1, 256, 16}, {1, 256, 8}, {1, 256, 4},
                                     {64, 32, 28}, {64, 64, 14}, {64, 128, 7}, {1, 32, 28},
                                     {1, 64, 14},  {1, 128, 7},  {64, 128, 14}, {8, 128, 14}};

void BM_Conv2dWinogradRule(benchmark::State& state) {
#if defined(__AVX512F__)
  const ConvShape s = kRuleShapes[state.range(0)];
  const bool winograd = state.range(1) == 1;
  Generator gen(0);
  const int64_t n = s.batch, c = s.channels, h = s.size;
  auto floats = [](const Tensor& t) {
    const std::vector<double> v = t.to_vector();
    return std::vector<float>(v.begin(), v.end());
  };
  const std::vector<float> x = floats(randn({n, c, h, h}, gen));
  const std::vector<float> w = floats(randn({c, c, 3, 3}, gen)), b = floats(randn({c}, gen));
  std::vector<float> y(n * c * h * h);
  std::vector<float> packed(winograd ? cpu_impl::conv::winograd_weight_size(c, c)
                                     : cpu_impl::conv::packed_weight_direct_size(c, c, 3, 3));
  if (winograd) cpu_impl::conv::pack_weight_winograd(w.data(), c, c, false, packed.data());
  else cpu_impl::conv::pack_weight_direct(w.data(), c, c, 3, 3, false, packed.data());
  for (auto _ : state) {
    if (winograd)
      cpu_impl::conv::conv2d_winograd(x.data(), packed.data(), b.data(), y.data(), {n, c, h, h, c, 1, 1});
    else
      cpu_impl::conv::conv2d_direct(x.data(), packed.data(), b.data(), y.data(), {n, c, h, h, c, 3, 3, 1, 1});
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(state, 2.0 * n * c * h * h * c * 9);
  state.SetLabel(std::string(winograd ? "winograd " : "direct ") + shape_label(s));
#else
  state.SkipWithError("the direct and Winograd kernels are built with AVX-512 only");
#endif
}

BENCHMARK(BM_Conv2dWinogradRule)
    ->ArgsProduct({benchmark::CreateDenseRange(0, 15, 1), {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
