// Elementwise ops of the UNet at its largest activation ([64, 32, 28, 28], 1.6M floats): a
// same-shape add, a per-channel broadcast add (bias, time embedding), and SiLU forward and
// forward+backward. Reported as GB/s of the output written.

#include "bench/bench_util.h"

namespace diffkd::bench {
namespace {

const Shape kActivation{kBatch, 32, 28, 28};

void BM_AddSameShape(benchmark::State& state) {
  Generator gen(0);
  Tensor a = randn(kActivation, gen), b = randn(kActivation, gen);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize((a + b).raw_data());
  set_bytes(state, 4.0 * a.numel());
}

void BM_AddChannelBroadcast(benchmark::State& state) {
  Generator gen(0);
  Tensor a = randn(kActivation, gen), b = randn({1, 32, 1, 1}, gen);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize((a + b).raw_data());
  set_bytes(state, 4.0 * a.numel());
}

void BM_SiluForward(benchmark::State& state) {
  Generator gen(0);
  Tensor a = randn(kActivation, gen);
  NoGradGuard no_grad;
  for (auto _ : state) benchmark::DoNotOptimize(silu(a).raw_data());
  set_bytes(state, 4.0 * a.numel());
}

void BM_SiluForwardBackward(benchmark::State& state) {
  Generator gen(0);
  Tensor a = randn(kActivation, gen).requires_grad_();
  const Tensor gy = randn(kActivation, gen);
  for (auto _ : state) {
    silu(a).backward(gy);
    benchmark::DoNotOptimize(a.grad().raw_data());
    a.zero_grad();
  }
  set_bytes(state, 4.0 * a.numel());
}

BENCHMARK(BM_AddSameShape)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AddChannelBroadcast)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SiluForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SiluForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
