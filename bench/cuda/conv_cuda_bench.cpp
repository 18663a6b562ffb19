// conv2d on cuDNN (3x3, stride 1, padding 1, C_in = C_out, with bias) at the ddpm-cifar10 UNet's
// levels, batch 128: forward, and forward + backward (input, weight and bias gradients).
// FLOPs: forward 2 N C_out H W C_in 9; backward twice that.

#include "bench/cuda/cuda_bench_util.h"

namespace diffkd::bench {
namespace {

constexpr int64_t kVerifyImages = 2;  // the CPU reference: the first images of the batch

void BM_CudaConv2dForward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const UnetLevel level = kCifarLevels[state.range(0)];
  const int64_t c = level.channels, s = level.size;
  Generator gen(0);
  const Tensor x = randn({kCifarBatch, c, s, s}, gen), w = randn({c, c, 3, 3}, gen), b = randn({c}, gen);
  const Tensor x_gpu = on_gpu(x), w_gpu = on_gpu(w), b_gpu = on_gpu(b);
  NoGradGuard no_grad;
  const Conv2dOptions options{{1, 1}, {1, 1}, {0, 0}};
  const Tensor y_gpu = conv2d(x_gpu, w_gpu, b_gpu, options);
  const Tensor y = conv2d(narrow(x, 0, 0, kVerifyImages), w, b, options);
  if (!verified(state, "conv2d", relative_error(narrow(y_gpu, 0, 0, kVerifyImages), y), matmul_tolerance())) return;
  time_on_gpu(state, [&] { benchmark::DoNotOptimize(conv2d(x_gpu, w_gpu, b_gpu, options)); });
  report_flops(state, 2.0 * kCifarBatch * c * s * s * c * 9);
  state.SetLabel(shape_label(kCifarBatch, c, s));
}

void BM_CudaConv2dForwardBackward(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const UnetLevel level = kCifarLevels[state.range(0)];
  const int64_t c = level.channels, s = level.size;
  Generator gen(0);
  const Tensor x = randn({kVerifyImages, c, s, s}, gen), gy = randn({kVerifyImages, c, s, s}, gen);
  const Tensor w = randn({c, c, 3, 3}, gen), b = randn({c}, gen);
  const Conv2dOptions options{{1, 1}, {1, 1}, {0, 0}};
  // Verification on a small batch: the weight gradient sums over images, so both sides see the same ones.
  {
    Tensor xc = x.clone_data().requires_grad_(), wc = w.clone_data().requires_grad_();
    Tensor xg = on_gpu(x).requires_grad_(), wg = on_gpu(w).requires_grad_();
    conv2d(xc, wc, b, options).backward(gy);
    conv2d(xg, wg, on_gpu(b), options).backward(on_gpu(gy));
    const double error = std::max(relative_error(xg.grad(), xc.grad()), relative_error(wg.grad(), wc.grad()));
    if (!verified(state, "conv2d backward", error, matmul_tolerance())) return;
  }
  Tensor x_gpu = on_gpu(randn({kCifarBatch, c, s, s}, gen)).requires_grad_();
  Tensor w_gpu = on_gpu(w).requires_grad_(), b_gpu = on_gpu(b).requires_grad_();
  const Tensor gy_gpu = on_gpu(randn({kCifarBatch, c, s, s}, gen));
  time_on_gpu(state, [&] {
    conv2d(x_gpu, w_gpu, b_gpu, options).backward(gy_gpu);
    x_gpu.zero_grad();
    w_gpu.zero_grad();
    b_gpu.zero_grad();
  });
  report_flops(state, 3 * 2.0 * kCifarBatch * c * s * s * c * 9);
  state.SetLabel(shape_label(kCifarBatch, c, s));
}

BENCHMARK(BM_CudaConv2dForward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseManualTime();
BENCHMARK(BM_CudaConv2dForwardBackward)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseManualTime();

}  // namespace
}  // namespace diffkd::bench
