#pragma once
// What every kernel file shares: the block size and the grid-stride loop (a grid capped by
// blocks_for in cuda/runtime.h covers any n).

#include <cstdint>

namespace diffkd::cuda {

constexpr int kThreads = 256;

}  // namespace diffkd::cuda

#define DK_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)
