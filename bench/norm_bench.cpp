// group_norm (8 groups), group_norm followed by silu (fused, and as two ops) and softmax at the
// UNet shapes, forward and forward+backward. Reported as GB/s of the activation read once.

#include "bench/bench_util.h"

namespace diffkd::bench {
namespace {

// The normalisation a benchmark runs, picked by range(1).
enum class NormOp { GroupNorm = -1, GroupNormThenSilu = 0, GroupNormSiluFused = 1 };

NormOp norm_op(const benchmark::State& state) { return static_cast<NormOp>(state.range(1)); }

Tensor run_norm(NormOp op, const Tensor& x, const Tensor& w, const Tensor& b) {
  switch (op) {
    case NormOp::GroupNorm: return group_norm(x, 8, w, b);
    case NormOp::GroupNormThenSilu: return silu(group_norm(x, 8, w, b));
    case NormOp::GroupNormSiluFused: return group_norm_silu(x, 8, w, b);
  }
  return Tensor();
}

void label_norm(benchmark::State& state, int64_t c, int64_t s) {
  const NormOp op = norm_op(state);
  const std::string prefix = op == NormOp::GroupNorm ? "" : op == NormOp::GroupNormSiluFused ? "fused " : "two ops ";
  state.SetLabel(prefix + "n64_c" + std::to_string(c) + "_" + std::to_string(s) + "x" + std::to_string(s) + "_g8");
}

// range(0): the UNet level; range(1): the NormOp.
void BM_GroupNormForward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen), w = ones({c}), b = zeros({c});
  const NormOp op = norm_op(state);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = run_norm(op, x, w, b);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_bytes(state, 4.0 * x.numel());
  label_norm(state, c, s);
}

void BM_GroupNormForwardBackward(benchmark::State& state) {
  const UnetLevel level = kLevels[state.range(0)];
  Generator gen(0);
  const int64_t c = level.channels, s = level.size;
  Tensor x = randn({kBatch, c, s, s}, gen).requires_grad_();
  Tensor w = ones({c}).requires_grad_(), b = zeros({c}).requires_grad_();
  const Tensor gy = randn({kBatch, c, s, s}, gen);
  const NormOp op = norm_op(state);
  for (auto _ : state) {
    run_norm(op, x, w, b).backward(gy);
    benchmark::DoNotOptimize(x.grad().raw_data());
    x.zero_grad();
    w.zero_grad();
    b.zero_grad();
  }
  set_bytes(state, 4.0 * x.numel());
  label_norm(state, c, s);
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

BENCHMARK(BM_GroupNormForward)->ArgsProduct({{0, 1, 2}, {-1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNormForwardBackward)->ArgsProduct({{0, 1, 2}, {-1}})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNormForward)->Name("BM_GroupNormSiluForward")->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GroupNormForwardBackward)->Name("BM_GroupNormSiluForwardBackward")->ArgsProduct({{0, 1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SoftmaxForward)->Args({256, 49})->Args({64, 196})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
