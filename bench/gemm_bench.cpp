// GEMM (f32, row-major, C = A @ B) at 512^3 and at the im2col shapes of the UNet's 3x3 convs
// (M = C_out, K = 9 C_in, N = H W). Peak on this machine: about 200 GFLOP/s with 2 cores (AVX2+FMA).

#include "bench/bench_util.h"
#include "tensor/backend.h"

namespace diffkd::bench {
namespace {

void BM_Gemm(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Generator gen(0);
  Tensor a = randn({1, m, k}, gen), b = randn({1, k, n}, gen), c = zeros({1, m, n});
  Backend& be = backend(cpu());
  for (auto _ : state) {
    be.gemm(false, false, 1.0, a, b, 0.0, c);
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(state, 2.0 * m * n * k);
}

BENCHMARK(BM_Gemm)
    ->Args({512, 512, 512})
    ->Args({32, 288, 784})    // conv 32ch @ 28x28, one image
    ->Args({64, 576, 196})    // conv 64ch @ 14x14
    ->Args({128, 1152, 49})   // conv 128ch @ 7x7
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
