#pragma once
// Shared helpers of the microbenchmarks: the UNet shapes they run at, and FLOP counters.

#include <benchmark/benchmark.h>

#include "autograd/ops.h"

namespace diffkd::bench {

// The shapes of a 28x28 MNIST UNet (base 32, mults 1,2,4-ish): batch 64 and channel counts
// 32 / 64 / 128 at 28x28 / 14x14 / 7x7.
struct UnetLevel {
  int64_t channels, size;
};
inline constexpr UnetLevel kLevels[] = {{32, 28}, {64, 14}, {128, 7}};
inline constexpr int64_t kBatch = 64;

inline void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
inline void set_bytes(benchmark::State& state, double bytes_per_iter) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iter) * state.iterations());
}

}  // namespace diffkd::bench
