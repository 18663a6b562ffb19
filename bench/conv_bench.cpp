// conv2d forward and forward+backward (3x3, stride 1, padding 1, C_in = C_out) at the UNet shapes.
// FLOPs: forward 2 * N * C_out * H * W * C_in * 9; backward twice that (input and weight grads).

#include "bench/bench_util.h"
#include "tensor/backend.h"

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
