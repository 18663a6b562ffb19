// The machine's measured f32 peak: independent fused multiply-add chains that never touch
// memory, one OpenMP team at the benchmark's thread count. Every other kernel's GFLOP/s is read
// as a fraction of this number (bench/RESULTS.md).
//
// A core with two FMA pipes of latency L needs 2 L independent accumulators to keep both pipes
// busy (L = 4 on Zen 4/5 and Skylake-X); 24 chains cover L <= 12 on the widest vectors we build for.

#include <omp.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include "bench/bench_util.h"

namespace diffkd::bench {
namespace {

constexpr int kChains = 24;

template <int N>
float sum_lanes(const float (&lanes)[N]) {
  float sum = 0;
  for (float v : lanes) sum += v;
  return sum;
}
constexpr int64_t kIterations = 1 << 20;  // per thread and benchmark iteration

#if defined(__AVX512F__)
constexpr int kLanes = 16;
// kIterations x kChains FMAs of 16 lanes on one thread; returns a value that depends on all of
// them so the compiler keeps every chain.
float fma_chains(float seed) {
  __m512 acc[kChains];
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(seed * 1e-3f);
#pragma GCC unroll 24
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(seed + i);
  for (int64_t it = 0; it < kIterations; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 total = acc[0];
#pragma GCC unroll 24
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, acc[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, total);
  return sum_lanes(lanes);
}
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
float fma_chains(float seed) {
  constexpr int kAvx2Chains = 12;  // 16 registers: 12 chains plus the two operands
  __m256 acc[kAvx2Chains];
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(seed * 1e-3f);
  for (int i = 0; i < kAvx2Chains; ++i) acc[i] = _mm256_set1_ps(seed + i);
  for (int64_t it = 0; it < kIterations * kChains / kAvx2Chains; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kAvx2Chains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 total = acc[0];
  for (int i = 1; i < kAvx2Chains; ++i) total = _mm256_add_ps(total, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  return sum_lanes(lanes);
}
#else
constexpr int kLanes = 1;
float fma_chains(float seed) {
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = seed + i;
  for (int64_t it = 0; it < kIterations; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * 0.999f + seed * 1e-3f;
  return sum_lanes(acc);
}
#endif

// One iteration: every thread of the team runs its chains; FLOPs = threads x 2 x lanes x FMAs.
void BM_PeakFma(benchmark::State& state) {
  const int threads = omp_get_max_threads();
  float sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += fma_chains(1.0f + static_cast<float>(omp_get_thread_num()));
    benchmark::DoNotOptimize(sink);
  }
  set_flops(state, 2.0 * kLanes * kChains * static_cast<double>(kIterations) * threads);
  state.SetLabel(std::to_string(threads) + " threads, " + std::to_string(kLanes) + " lanes");
}

BENCHMARK(BM_PeakFma)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench
