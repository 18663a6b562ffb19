// GroupNorm (32 groups, with affine weights) at the ddpm-cifar10 UNet's levels, batch 128, and the
// softmax of its attention scores (batch 128 x 256 rows of 256 at the 16x16 level): memory-bound
// kernels, reported in GB/s of the bytes that must move at least once (forward: read x, write y;
// forward and backward: also read the output gradient and write the input gradient). Each run
// starts with a cold L2 (cuda_bench_util.h).

#include "bench/cuda/cuda_bench_util.h"

namespace diffkd::bench {
namespace {

constexpr int64_t kGroups = 32;
constexpr double kNormTolerance = 1e-4;  // f32 statistics over <= 8192 values summed in another order

void BM_CudaGroupNormForward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const UnetLevel level = kCifarLevels[state.range(0)];
  const int64_t c = level.channels, s = level.size;
  Generator gen(0);
  const Tensor x = randn({kCifarBatch, c, s, s}, gen), w = randn({c}, gen), b = randn({c}, gen);
  const Tensor x_gpu = on_gpu(x), w_gpu = on_gpu(w), b_gpu = on_gpu(b);
  NoGradGuard no_grad;
  if (!verified(state, "group_norm", relative_error(group_norm(x_gpu, kGroups, w_gpu, b_gpu), group_norm(x, kGroups, w, b)),
                kNormTolerance))
    return;
  time_on_gpu(state, [&] { benchmark::DoNotOptimize(group_norm(x_gpu, kGroups, w_gpu, b_gpu)); });
  report_bytes(state, 2.0 * x.numel() * sizeof(float));
  state.SetLabel(shape_label(kCifarBatch, c, s) + "_g32");
}

void BM_CudaGroupNormForwardBackward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const UnetLevel level = kCifarLevels[state.range(0)];
  const int64_t c = level.channels, s = level.size;
  Generator gen(0);
  const Tensor x = randn({kCifarBatch, c, s, s}, gen), gy = randn({kCifarBatch, c, s, s}, gen);
  Tensor x_cpu = x.clone_data().requires_grad_(), x_gpu = on_gpu(x).requires_grad_();
  const Tensor gy_gpu = on_gpu(gy);
  group_norm(x_cpu, kGroups).backward(gy);
  group_norm(x_gpu, kGroups).backward(gy_gpu);
  if (!verified(state, "group_norm backward", relative_error(x_gpu.grad(), x_cpu.grad()), kNormTolerance)) return;
  time_on_gpu(state, [&] {
    group_norm(x_gpu, kGroups).backward(gy_gpu);
    x_gpu.zero_grad();
  });
  report_bytes(state, 4.0 * x.numel() * sizeof(float));
  state.SetLabel(shape_label(kCifarBatch, c, s) + "_g32");
}

void BM_CudaSoftmaxForward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  constexpr int64_t kTokens = 256;  // the 16x16 level
  Generator gen(0);
  const Tensor scores = randn({kCifarBatch, kTokens, kTokens}, gen);
  const Tensor scores_gpu = on_gpu(scores);
  NoGradGuard no_grad;
  if (!verified(state, "softmax", relative_error(softmax(scores_gpu, -1), softmax(scores, -1)), 1e-6)) return;
  time_on_gpu(state, [&] { benchmark::DoNotOptimize(softmax(scores_gpu, -1)); });
  report_bytes(state, 2.0 * scores.numel() * sizeof(float));
  state.SetLabel("n128_256x256");
}

BENCHMARK(BM_CudaGroupNormForward)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_CudaGroupNormForwardBackward)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_CudaSoftmaxForward)->Unit(benchmark::kMicrosecond)->UseManualTime();

}  // namespace
}  // namespace diffkd::bench
