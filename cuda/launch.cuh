#pragma once
// What every kernel file shares: the block size, the grid-stride loop (a grid capped by
// blocks_for in cuda/runtime.h covers any n) and the block-wide reduction.

#include <cstdint>

namespace diffkd::cuda {

constexpr int kThreads = 256;
static_assert((kThreads & (kThreads - 1)) == 0, "block_reduce needs a power-of-two block");

// Combines every thread's `value` with `combine` across the block (blockDim.x a power of two,
// scratch of blockDim.x entries) and returns the result to every thread. The tree has a fixed
// shape, so the result is deterministic.
template <typename Acc, typename Combine>
__device__ Acc block_reduce(Acc value, Acc* scratch, Combine combine) {
  scratch[threadIdx.x] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) scratch[threadIdx.x] = combine(scratch[threadIdx.x], scratch[threadIdx.x + width]);
    __syncthreads();
  }
  const Acc result = scratch[0];
  __syncthreads();
  return result;
}

__device__ inline double block_sum(double value, double* scratch) {
  return block_reduce(value, scratch, [](double a, double b) { return a + b; });
}

}  // namespace diffkd::cuda

#define DK_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)
