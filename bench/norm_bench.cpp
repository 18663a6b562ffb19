// group_norm (8 groups) and softmax at the UNet
// shapes, forward and forward+backward. Reported as GB/s of the activation read once.

#include "bench/bench_util.h"

namespace diffkd::bench {
namespace {

void BM_GroupNormForward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen), w = ones({c}), b = zeros({c});
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = group_norm(x, 8, w, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 4.0 * x.numel());
  state.SetLabel("n64_c" + std::to_string(c) + "_" + std::to_string(s) + "x" + std::to_string(s) + "_g8");
}

void BM_GroupNormForwardBackward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen).requires_grad_();
  Tensor w = ones({c}).requires_grad_(), b = zeros({c}).requires_grad_();
  const Tensor gy = randn({kBatch, c, s, s}, gen);
  for (auto _ : state) {
    group_norm(x, 8, w, b).backward(gy);
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
  }
  set_bytes(state, 4.0 * x.numel());
  state.SetLabel("n64_c" + std::to_string(c) + "_" + std::to_string(s) + "x" + std::to_string(s) + "_g8");
}

// Softmax over the last dim of attention scores: [batch * heads, tokens, tokens].
void BM_SoftmaxForward(benchmark::State& state) {
  const int64_t rows = state.range(0), len = state.range(1);
  Generator gen(0);
  Tensor x = randn({rows, len, len}, gen);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = softmax(x, -1);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 4.0 * x.numel());
}

BENCHMARK(BM_GroupNormForward)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNormForwardBackward)->DenseRange(0, 2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SoftmaxForward)->Args({256, 49})->Args({64, 196})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
