#pragma once
// Per-sample noise: sample i's draw in stream k is a pure function of (seed, k, i), so an image
// depends on its index and the seed, never on the batch it was generated in (DESIGN.md). Stream 0
// is the initial x_T; sampler step j uses stream j + 1.

#include <cstdint>

#include "tensor/creation.h"

namespace diffkd::diffusion {

// Standard normal noise for samples [first, first + count), each of shape sample_shape, drawn on
// `device` (the same numbers on every device: Philox draws keyed by position).
Tensor sample_noise(const Shape& sample_shape, int64_t first, int64_t count, uint64_t seed,
                    uint64_t stream, Device device = cpu());

}  // namespace diffkd::diffusion
