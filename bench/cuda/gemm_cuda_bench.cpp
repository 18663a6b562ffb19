// GEMM on cuBLAS (f32, C = A @ B, batched): a large square product for the device's peak, and the
// UNet's own products at batch 128: attention scores at 16x16 (256 tokens of 256 channels, one
// head) and the time-embedding MLP (128 x 512 x 512). FLOPs: 2 m n k per product.

#include "bench/cuda/cuda_bench_util.h"
#include "tensor/backend.h"

namespace diffkd::bench {
namespace {

void BM_CudaGemm(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const int64_t batch = state.range(0), m = state.range(1), k = state.range(2), n = state.range(3);
  Generator gen(0);
  const Tensor a = randn({batch, m, k}, gen), b = randn({batch, k, n}, gen);
  const Tensor a_gpu = on_gpu(a), b_gpu = on_gpu(b), c_gpu = zeros({batch, m, n}, DType::F32, cuda_device());
  Backend& gpu = backend(cuda_device());
  gpu.gemm(false, false, 1.0, a_gpu, b_gpu, 0.0, c_gpu);
  const Tensor c = zeros({batch, m, n});
  backend(cpu()).gemm(false, false, 1.0, a, b, 0.0, c);
  if (!verified(state, "gemm", relative_error(c_gpu, c), matmul_tolerance())) return;
  time_on_gpu(state, [&] { gpu.gemm(false, false, 1.0, a_gpu, b_gpu, 0.0, c_gpu); });
  report_flops(state, 2.0 * batch * m * n * k);
}

BENCHMARK(BM_CudaGemm)
    ->ArgNames({"batch", "m", "k", "n"})
    ->Args({1, 4096, 4096, 4096})
    ->Args({128, 256, 256, 256})  // attention scores, 16x16 level
    ->Args({1, 128, 512, 512})    // time-embedding MLP
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();

}  // namespace
}  // namespace diffkd::bench
